//! The query parameters of lists and breakdowns: parsed and checked, every mistake
//! named with its value; the filter they build and how it matches index rows; the
//! list cursor.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::breakdown::By;
use super::time::parse_time;
use crate::journal::model::{IndexRow, State};
use crate::outcome::{Channel, Outcome};

/// Orders a list returns when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The filter parameters every list and breakdown takes.
pub const FILTER_PARAMS: [&str; 10] = [
    "app_id", "country", "mcc", "mnc", "operator", "channel", "outcome", "state", "since", "until",
];

/// A parameter that is unknown or whose value is wrong: a 400 naming both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter `{name}` (known: {known})")]
    Unknown { name: String, known: String },
    #[error("bad value {value:?} for parameter `{name}`: {why}")]
    Bad {
        name: String,
        value: String,
        why: String,
    },
    #[error("parameter `{name}` given twice")]
    Repeated { name: String },
}

fn bad(name: &str, value: &str, why: impl Into<String>) -> QueryError {
    QueryError::Bad {
        name: name.to_string(),
        value: value.to_string(),
        why: why.into(),
    }
}

/// Which orders a list or breakdown covers. Every field compares exactly; `unknown`
/// (country, operator) and `none` (channel) match orders without that value, as the
/// metrics' label values say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    pub app_id: Option<String>,
    pub country: Option<String>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// The operator's label form (`airtel`, `vodafone_idea`).
    pub operator: Option<String>,
    pub channel: Option<String>,
    /// Any of these outcomes (the parameter takes one word or several, comma-separated).
    pub outcomes: Vec<Outcome>,
    pub state: Option<State>,
    /// Issued at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Issued at or before (Unix ms).
    pub until_ms: Option<i64>,
}

impl OrderFilter {
    /// Whether an order's index row passes every field but the time range (the walk
    /// over the time index bounds that).
    pub fn matches(&self, row: &IndexRow) -> bool {
        fn opt(want: &Option<String>, have: &Option<String>, missing: &str) -> bool {
            match want {
                None => true,
                Some(w) => match have {
                    Some(h) => h == w,
                    None => w == missing,
                },
            }
        }
        self.app_id.as_ref().is_none_or(|a| *a == row.app_id)
            && opt(&self.country, &row.country, "unknown")
            && opt(&self.operator, &row.operator_label, "unknown")
            && opt(&self.channel, &row.channel, "none")
            && self.mcc.is_none_or(|m| row.mcc == Some(m))
            && self.mnc.is_none_or(|m| row.mnc == Some(m))
            && self.state.is_none_or(|s| s == row.state)
            && (self.outcomes.is_empty() || row.outcome.is_some_and(|o| self.outcomes.contains(&o)))
    }

    /// The filter as query parameters (for links and next pages), in a fixed order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k, v));
            }
        };
        put("app_id", self.app_id.clone());
        put("country", self.country.clone());
        put("mcc", self.mcc.map(|m| m.to_string()));
        put("mnc", self.mnc.map(|m| m.to_string()));
        put("operator", self.operator.clone());
        put("channel", self.channel.clone());
        put(
            "outcome",
            (!self.outcomes.is_empty()).then(|| {
                let words: Vec<&str> = self.outcomes.iter().map(|o| o.as_str()).collect();
                words.join(",")
            }),
        );
        put("state", self.state.map(|s| s.as_str().to_string()));
        put("since", self.since_ms.map(|m| m.to_string()));
        put("until", self.until_ms.map(|m| m.to_string()));
        p
    }
}

/// Where the next page of a list starts: just older than the last order examined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub issued_ms: i64,
    pub order_id: String,
}

impl Cursor {
    /// Opaque to clients: base64url of `<issued ms>:<order id>`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.issued_ms, self.order_id))
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (ms, id) = text.split_once(':')?;
        Some(Cursor {
            issued_ms: ms.parse().ok()?,
            order_id: id.to_string(),
        })
    }
}

/// A list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: OrderFilter,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A breakdown request. Without `since` it covers the last 15 minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownQuery {
    pub by: By,
    pub filter: OrderFilter,
}

/// The time range a breakdown covers when `since` is not given.
pub const DEFAULT_BREAKDOWN_MS: i64 = 15 * 60 * 1000;

/// Splits a query string into decoded (name, value) pairs.
pub fn split_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The parameters of a list: the filter, `limit`, `cursor`; names in `extra` are
/// accepted and left to the caller (the pages' `sort` and `dir`).
pub fn parse_list(
    params: &[(String, String)],
    now_ms: i64,
    extra: &[&str],
) -> Result<ListQuery, QueryError> {
    let mut known: Vec<&str> = FILTER_PARAMS.to_vec();
    known.extend(["limit", "cursor"]);
    known.extend(extra);
    let given = check_names(params, &known)?;
    let filter = parse_filter(&given, now_ms)?;
    let limit = match given.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    v,
                    format!("a whole number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let cursor = match given.get("cursor").copied() {
        None => None,
        Some("") => None,
        Some(v) => Some(Cursor::decode(v).ok_or_else(|| {
            bad(
                "cursor",
                v,
                "not a cursor of this API (use next_cursor as given)",
            )
        })?),
    };
    Ok(ListQuery {
        filter,
        limit,
        cursor,
    })
}

/// The parameters of a breakdown: `by` and the filter.
pub fn parse_breakdown(
    params: &[(String, String)],
    now_ms: i64,
) -> Result<BreakdownQuery, QueryError> {
    let mut known: Vec<&str> = FILTER_PARAMS.to_vec();
    known.push("by");
    let given = check_names(params, &known)?;
    let by = match given.get("by") {
        None => {
            return Err(bad(
                "by",
                "",
                "missing: one of country, operator, channel, app_id",
            ))
        }
        Some(v) => {
            By::parse(v).ok_or_else(|| bad("by", v, "one of country, operator, channel, app_id"))?
        }
    };
    let mut filter = parse_filter(&given, now_ms)?;
    if filter.since_ms.is_none() {
        filter.since_ms = Some(now_ms - DEFAULT_BREAKDOWN_MS);
    }
    Ok(BreakdownQuery { by, filter })
}

/// Refuses unknown and repeated names; the rest by name.
fn check_names<'a>(
    params: &'a [(String, String)],
    known: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>, QueryError> {
    let mut given = BTreeMap::new();
    for (name, value) in params {
        if !known.contains(&name.as_str()) {
            return Err(QueryError::Unknown {
                name: name.clone(),
                known: known.join(", "),
            });
        }
        if given.insert(name.as_str(), value.as_str()).is_some() {
            return Err(QueryError::Repeated { name: name.clone() });
        }
    }
    Ok(given)
}

fn parse_filter(given: &BTreeMap<&str, &str>, now_ms: i64) -> Result<OrderFilter, QueryError> {
    // An empty value (a form's untouched field) is no filter.
    let get = |name: &str| given.get(name).copied().filter(|v| !v.trim().is_empty());
    let number = |name: &str| -> Result<Option<u16>, QueryError> {
        get(name)
            .map(|v| {
                v.trim()
                    .parse::<u16>()
                    .map_err(|_| bad(name, v, "a number from 0 to 65535"))
            })
            .transpose()
    };
    let text = |name: &str| get(name).map(|v| v.trim().to_string());
    let channel = match get("channel") {
        None => None,
        Some("none") => Some("none".to_string()),
        Some(v) => Some(
            Channel::parse(v)
                .ok_or_else(|| bad("channel", v, "one of sms, call, sna, none"))?
                .as_str()
                .to_string(),
        ),
    };
    let outcomes = match get("outcome") {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .map(|word| {
                let word = word.trim();
                Outcome::ALL
                    .into_iter()
                    .find(|o| o.as_str() == word)
                    .ok_or_else(|| {
                        let why = if word == "pending" {
                            "pending is a state, not an outcome: use state=pending".to_string()
                        } else {
                            "one of verified, failed, unverified, undelivered, not_found, expired (or several, comma-separated)".to_string()
                        };
                        bad("outcome", v, why)
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let state = match get("state") {
        None => None,
        Some("pending") => Some(State::Pending),
        Some("final") => Some(State::Final),
        Some(v) => return Err(bad("state", v, "pending or final")),
    };
    let time = |name: &str| -> Result<Option<i64>, QueryError> {
        get(name)
            .map(|v| parse_time(v, now_ms).map_err(|why| bad(name, v, why)))
            .transpose()
    };
    let filter = OrderFilter {
        app_id: text("app_id"),
        country: text("country").map(|c| {
            if c.eq_ignore_ascii_case("unknown") {
                "unknown".to_string()
            } else {
                c.to_ascii_uppercase()
            }
        }),
        mcc: number("mcc")?,
        mnc: number("mnc")?,
        operator: text("operator").map(|o| crate::geo::operator_label(&o)),
        channel,
        outcomes,
        state,
        since_ms: time("since")?,
        until_ms: time("until")?,
    };
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms) {
        if until < since {
            let value = given.get("until").copied().unwrap_or_default();
            return Err(bad("until", value, "before `since`"));
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn params(q: &str) -> Vec<(String, String)> {
        split_query(Some(q))
    }

    fn list_error(q: &str) -> String {
        parse_list(&params(q), NOW, &[]).unwrap_err().to_string()
    }
    #[test]
    fn bad_parameters_are_named_with_their_value() {
        assert!(list_error("contry=IN").contains("unknown parameter `contry`"));
        let e = list_error("since=yesterday");
        assert!(e.contains("`since`") && e.contains("\"yesterday\""), "{e}");
        let e = list_error("limit=1001");
        assert!(e.contains("`limit`") && e.contains("1001"), "{e}");
        assert!(list_error("limit=0").contains("`limit`"));
        assert!(list_error("mcc=abc").contains("`mcc`"));
        assert!(list_error("channel=fax").contains("`channel`"));
        assert!(list_error("state=done").contains("`state`"));
        assert!(list_error("outcome=pending").contains("use state=pending"));
        assert!(list_error("outcome=verified,nope").contains("`outcome`"));
        assert!(list_error("cursor=%%%").contains("`cursor`"));
        assert!(list_error("since=1h&until=2h").contains("`until`"));
        assert!(list_error("country=IN&country=DE").contains("twice"));
        let e = parse_breakdown(&params("by=planet"), NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`by`") && e.contains("planet"), "{e}");
        assert!(parse_breakdown(&params(""), NOW).is_err());
    }

    #[test]
    fn filters_are_normalised_and_defaulted() {
        let q = parse_list(
            &params("country=in&operator=Vodafone+Idea&channel=SMS&outcome=failed,expired&state=final&since=15m&app_id=&sort=x"),
            NOW,
            &["sort"],
        )
        .unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.filter.country.as_deref(), Some("IN"));
        assert_eq!(q.filter.operator.as_deref(), Some("vodafone_idea"));
        assert_eq!(q.filter.channel.as_deref(), Some("sms"));
        assert_eq!(q.filter.outcomes, [Outcome::Failed, Outcome::Expired]);
        assert_eq!(q.filter.state, Some(State::Final));
        assert_eq!(q.filter.since_ms, Some(NOW - 900_000));
        assert_eq!(q.filter.app_id, None, "an empty field is no filter");
        let b = parse_breakdown(&params("by=operator"), NOW).unwrap();
        assert_eq!(b.filter.since_ms, Some(NOW - DEFAULT_BREAKDOWN_MS));
        let c = Cursor {
            issued_ms: NOW,
            order_id: "a:b<c>".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }
}
