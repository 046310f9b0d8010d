//! Questions to the journal, without I/O: the query parameters of `/api/v1/orders`,
//! `/api/v1/breakdown` and the pages (parsed and checked, every mistake named), the
//! filter lists and breakdowns apply to index rows, the breakdown's arithmetic, and the
//! JSON views of an order with its timeline in plain English.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::{json, Value};

use super::model::{Answer, AttemptDetail, Change, Entry, EventKind, IndexRow, State};
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

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Country,
    Operator,
    Channel,
    AppId,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Country => "country",
            By::Operator => "operator",
            By::Channel => "channel",
            By::AppId => "app_id",
        }
    }

    fn parse(text: &str) -> Option<By> {
        Some(match text {
            "country" => By::Country,
            "operator" => By::Operator,
            "channel" => By::Channel,
            "app_id" => By::AppId,
            _ => return None,
        })
    }

    /// An index row's group (the value a filter of the same name matches).
    pub fn key(self, row: &IndexRow) -> String {
        match self {
            By::Country => row.country.clone().unwrap_or_else(|| "unknown".into()),
            By::Operator => row
                .operator_label
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            By::Channel => row.channel.clone().unwrap_or_else(|| "none".into()),
            By::AppId => row.app_id.clone(),
        }
    }
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

/// A time parameter: RFC 3339, a duration back from now (`15m`, `2h`, `7d`, `90s`),
/// or Unix milliseconds (what Grafana's `${__from}` gives).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| "Unix milliseconds out of range".to_string());
    }
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic) {
        let digits = &text[..text.len() - unit.len_utf8()];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let per: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(TIME_FORMS.to_string()),
            };
            let n: i64 = digits.parse().map_err(|_| TIME_FORMS.to_string())?;
            return n
                .checked_mul(per)
                .map(|back| now_ms.saturating_sub(back))
                .ok_or_else(|| TIME_FORMS.to_string());
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| TIME_FORMS.to_string())
}

const TIME_FORMS: &str =
    "a time as RFC 3339 (2026-11-30T16:45:00Z), back from now (15m, 2h, 7d) or Unix milliseconds";

/// RFC 3339 in UTC with milliseconds, as every time in the API.
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// One order in a list (from its index row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub order_id: String,
    pub app_id: String,
    pub issued_at: String,
    pub state: State,
    pub outcome: Option<Outcome>,
    pub country: Option<String>,
    pub channel: Option<String>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub operator: Option<String>,
    pub latency_seconds: Option<f64>,
    pub cost_usd: f64,
    pub queries: u32,
    pub finalized_at: Option<String>,
}

impl Summary {
    pub fn of_row(order_id: &str, issued_ms: i64, row: &IndexRow) -> Summary {
        Summary {
            order_id: order_id.to_string(),
            app_id: row.app_id.clone(),
            issued_at: rfc3339(issued_ms),
            state: row.state,
            outcome: row.outcome,
            country: row.country.clone(),
            channel: row.channel.clone(),
            mcc: row.mcc,
            mnc: row.mnc,
            operator: row.operator.clone(),
            latency_seconds: row.latency_ms.map(seconds),
            cost_usd: row.cost_usd,
            queries: row.queries,
            finalized_at: row.finalized_ms.map(rfc3339),
        }
    }
}

/// One order of a list page, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub order_id: String,
    pub issued_ms: i64,
    pub row: IndexRow,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrdersPage {
    pub orders: Vec<Listed>,
    /// Where the next page starts; `None` on the last page. A page may hold fewer
    /// than `limit` orders and still have a next one (the walk is bounded per page).
    pub next_cursor: Option<Cursor>,
    /// Index rows that could not be decoded (skipped).
    pub damaged: u64,
}

impl OrdersPage {
    pub fn to_json(&self) -> Value {
        let orders: Vec<Summary> = self
            .orders
            .iter()
            .map(|o| Summary::of_row(&o.order_id, o.issued_ms, &o.row))
            .collect();
        json!({
            "orders": orders,
            "next_cursor": self.next_cursor.as_ref().map(Cursor::encode),
        })
    }
}

/// What a breakdown adds up per group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub orders: u64,
    pub final_orders: u64,
    pub pending: u64,
    /// Final orders per outcome, in [`Outcome::ALL`] order.
    pub outcomes: [u64; 6],
    pub delivered: u64,
    pub failed_attempts: u64,
    pub latencies_ms: Vec<i64>,
    pub cost_usd: f64,
    /// An operator's display name (by operator).
    pub name: Option<String>,
}

impl Group {
    pub fn add(&mut self, row: &IndexRow) {
        self.orders += 1;
        match row.state {
            State::Pending => self.pending += 1,
            State::Final => {
                self.final_orders += 1;
                if let Some(i) = row
                    .outcome
                    .and_then(|o| Outcome::ALL.iter().position(|x| *x == o))
                {
                    self.outcomes[i] += 1;
                }
            }
        }
        self.delivered += u64::from(row.attempts_delivered);
        self.failed_attempts += u64::from(row.attempts_failed);
        if let Some(ms) = row.latency_ms {
            self.latencies_ms.push(ms);
        }
        self.cost_usd += row.cost_usd;
        if self.name.is_none() {
            self.name.clone_from(&row.operator);
        }
    }

    pub fn verified(&self) -> u64 {
        self.outcomes[0]
    }

    /// Verified among final orders.
    pub fn conversion(&self) -> Option<f64> {
        (self.final_orders > 0).then(|| self.verified() as f64 / self.final_orders as f64)
    }

    /// Delivered among settled (delivered or failed) attempts.
    pub fn delivery_ratio(&self) -> Option<f64> {
        let settled = self.delivered + self.failed_attempts;
        (settled > 0).then(|| self.delivered as f64 / settled as f64)
    }
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One group of a breakdown, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakdownRow {
    pub key: String,
    /// The operator's display name (by operator), else null.
    pub name: Option<String>,
    pub orders: u64,
    #[serde(rename = "final")]
    pub final_orders: u64,
    pub pending: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub conversion: Option<f64>,
    pub delivery_ratio: Option<f64>,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub cost_usd: f64,
    pub cost_per_verified_usd: Option<f64>,
}

/// A breakdown: groups worst first.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub by: By,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub rows: Vec<BreakdownRow>,
    pub damaged: u64,
}

impl Breakdown {
    /// Turns the groups into rows, lowest conversion first (groups without a final
    /// order last), then by key.
    pub fn from_groups(
        by: By,
        filter: &OrderFilter,
        groups: BTreeMap<String, Group>,
        damaged: u64,
    ) -> Breakdown {
        let mut rows: Vec<BreakdownRow> = groups
            .into_iter()
            .map(|(key, mut g)| {
                g.latencies_ms.sort_unstable();
                let verified = g.verified();
                BreakdownRow {
                    outcomes: Outcome::ALL
                        .iter()
                        .zip(g.outcomes)
                        .map(|(o, n)| (o.as_str(), n))
                        .collect(),
                    conversion: g.conversion(),
                    delivery_ratio: g.delivery_ratio(),
                    latency_p50_seconds: quantile(&g.latencies_ms, 0.5).map(seconds),
                    latency_p95_seconds: quantile(&g.latencies_ms, 0.95).map(seconds),
                    cost_per_verified_usd: (verified > 0).then(|| g.cost_usd / verified as f64),
                    cost_usd: g.cost_usd,
                    name: if by == By::Operator { g.name } else { None },
                    orders: g.orders,
                    final_orders: g.final_orders,
                    pending: g.pending,
                    key,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            let rank = |c: Option<f64>| c.unwrap_or(f64::INFINITY);
            rank(a.conversion)
                .total_cmp(&rank(b.conversion))
                .then_with(|| a.key.cmp(&b.key))
        });
        Breakdown {
            by,
            since_ms: filter.since_ms,
            until_ms: filter.until_ms,
            rows,
            damaged,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "by": self.by.as_str(),
            "since": self.since_ms.map(rfc3339),
            "until": self.until_ms.map(rfc3339),
            "rows": self.rows,
        })
    }
}

/// The detail view of an order (`/api/v1/orders/{orderId}`).
pub fn detail_json(entry: &Entry) -> Value {
    let attempts: Vec<Value> = entry
        .attempts
        .iter()
        .map(|a| {
            json!({
                "channel": a.channel.as_str(),
                "seq": a.seq,
                "mcc": a.mcc,
                "mnc": a.mnc,
                "operator": a.operator,
                "result": a.result.as_str(),
                "provider_status": a.provider_status,
                "provider_reason": a.provider_reason,
                "submitted_at": a.submit_ms.map(rfc3339),
                "done_at": a.done_ms.map(rfc3339),
                "answered_at": a.answer_ms.map(rfc3339),
                "latency_seconds": a.latency_ms.map(seconds),
                "cost_usd": a.cost_usd,
                "segments": a.segments,
            })
        })
        .collect();
    let fallbacks: Vec<Value> = entry
        .fallbacks
        .iter()
        .map(|(from, to)| json!({"from": from.as_str(), "to": to.as_str()}))
        .collect();
    let timeline: Vec<Value> = timeline_lines(entry)
        .into_iter()
        .map(|line| line.json)
        .collect();
    let latency_ms = entry
        .attempts
        .iter()
        .find(|a| a.result == crate::outcome::AttemptResult::Delivered)
        .and_then(|a| a.latency_ms);
    json!({
        "order_id": entry.order_id,
        "app_id": entry.app_id,
        "issued_at": rfc3339(entry.issued_ms),
        "state": entry.state,
        "outcome": entry.outcome,
        "country": entry.country,
        "channel": entry.channel,
        "mcc": entry.mcc,
        "mnc": entry.mnc,
        "operator": entry.operator,
        "latency_seconds": latency_ms.map(seconds),
        "cost_usd": entry.attempts.iter().map(|a| a.cost_usd).sum::<f64>(),
        "queries": entry.queries,
        "finalized_at": entry.finalized_ms.map(rfc3339),
        "rule": entry.rule,
        "decided_at": entry.decided_ms.map(rfc3339),
        "finalize_reason": entry.finalize_reason,
        "receiver": entry.receiver,
        "attempts": attempts,
        "fallbacks": fallbacks,
        "verified_at": entry.verified_ms.map(rfc3339),
        "verification_latency_seconds": entry.verification_latency_ms.map(seconds),
        "timeline": timeline,
        "timeline_dropped": entry.timeline_dropped,
    })
}

/// One timeline line: when, what kind, the sentence, and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineLine {
    pub at_ms: i64,
    pub event: &'static str,
    pub text: String,
    pub json: Value,
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "SMS",
        Channel::Call => "Call",
        Channel::Sna => "SNA",
    }
}

/// The provider's verification state (`matched`) in words.
pub fn matched_name(matched: Option<i64>) -> String {
    match matched {
        None => "none".to_string(),
        Some(-1) => "not verified yet (-1)".to_string(),
        Some(0) => "VERIFIED (0)".to_string(),
        Some(1) => "sending (1)".to_string(),
        Some(2) => "FAILED (2)".to_string(),
        Some(3) => "no such verification (3)".to_string(),
        Some(4) => "CODE_ALREADY_USED (4)".to_string(),
        Some(n) => format!("undocumented ({n})"),
    }
}

fn attempt_of(entry: &Entry, channel: Channel, seq: u8) -> Option<&AttemptDetail> {
    entry
        .attempts
        .iter()
        .find(|a| a.channel == channel && a.seq == seq)
}

/// "(MCC 404, MNC 45, Airtel)" of an attempt, empty when nothing is known.
fn network_words(a: Option<&AttemptDetail>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(mcc) = a.mcc {
        parts.push(format!("MCC {mcc}"));
    }
    if let Some(mnc) = a.mnc {
        parts.push(format!("MNC {mnc}"));
    }
    if let Some(op) = &a.operator {
        parts.push(op.clone());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// "(status 1: UNDELIV)" when the attempt's provider status is known.
fn status_words(a: Option<&AttemptDetail>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    let code = match a.channel {
        Channel::Call => "termination code",
        _ => "status",
    };
    match (a.provider_status, &a.provider_reason) {
        (Some(s), Some(r)) => format!(" ({code} {s}: {r})"),
        (Some(s), None) => format!(" ({code} {s})"),
        (None, Some(r)) => format!(" ({r})"),
        (None, None) => String::new(),
    }
}

fn change_text(entry: &Entry, change: &Change) -> (String, Value) {
    match change {
        Change::AttemptAppeared {
            channel,
            seq,
            result,
        } => {
            let a = attempt_of(entry, *channel, *seq);
            // The provider's code is the latest one: shown when still this result.
            let status = if a.is_some_and(|a| a.result == *result)
                && *result != crate::outcome::AttemptResult::Pending
            {
                status_words(a)
            } else {
                String::new()
            };
            (
                format!(
                    "{} attempt {} appeared: {}{}{}",
                    channel_name(*channel),
                    u16::from(*seq) + 1,
                    result.as_str(),
                    network_words(a),
                    status
                ),
                json!({"change": "attempt_appeared", "channel": channel.as_str(), "seq": seq, "result": result.as_str()}),
            )
        }
        Change::AttemptChanged {
            channel,
            seq,
            from,
            to,
        } => {
            let a = attempt_of(entry, *channel, *seq);
            let status = if a.is_some_and(|a| a.result == *to) {
                status_words(a)
            } else {
                String::new()
            };
            (
                format!(
                    "{} attempt {}: {} → {}{}",
                    channel_name(*channel),
                    u16::from(*seq) + 1,
                    from.as_str(),
                    to.as_str(),
                    status
                ),
                json!({"change": "attempt_changed", "channel": channel.as_str(), "seq": seq, "from": from.as_str(), "to": to.as_str()}),
            )
        }
        Change::Matched { from, to } => (
            format!(
                "verification: {} → {}",
                matched_name(*from),
                matched_name(*to)
            ),
            json!({"change": "matched", "from": from, "to": to}),
        ),
    }
}

/// The timeline in plain English, one line per event.
pub fn timeline_lines(entry: &Entry) -> Vec<TimelineLine> {
    entry
        .timeline
        .iter()
        .map(|event| {
            let at = rfc3339(event.at_ms);
            let (kind, text, fields) = match &event.what {
                EventKind::Issued => (
                    "issued",
                    format!("order issued (app {})", entry.app_id),
                    json!({}),
                ),
                EventKind::Answered { answer, changes } => {
                    let (answer_word, said) = match answer {
                        Answer::Record => ("record", "the provider answered with a record"),
                        Answer::NoRecord => {
                            ("no_record", "the provider has no record of the order (yet)")
                        }
                    };
                    let (texts, jsons): (Vec<String>, Vec<Value>) =
                        changes.iter().map(|c| change_text(entry, c)).unzip();
                    let text = if texts.is_empty() {
                        match answer {
                            Answer::Record => format!("{said}, nothing new"),
                            Answer::NoRecord => said.to_string(),
                        }
                    } else {
                        texts.join("; ")
                    };
                    (
                        "answered",
                        text,
                        json!({"answer": answer_word, "changes": jsons}),
                    )
                }
                EventKind::Quiet { queries, errors } => {
                    let noun = if *queries == 1 { "query" } else { "queries" };
                    let failed = if *errors > 0 {
                        format!(" ({errors} failed)")
                    } else {
                        String::new()
                    };
                    (
                        "quiet",
                        format!("{queries} {noun}, nothing changed{failed}"),
                        json!({"queries": queries, "errors": errors}),
                    )
                }
                EventKind::QueryFailed { detail } => (
                    "query_failed",
                    format!("query failed: {detail}"),
                    json!({"detail": detail}),
                ),
                EventKind::Decided { outcome, rule } => (
                    "decided",
                    format!("decided {}: {rule}", outcome.as_str()),
                    json!({"outcome": outcome.as_str(), "rule": rule}),
                ),
                EventKind::Finalized { outcome, reason } => (
                    "finalized",
                    format!("finalized as {}: {reason}", outcome.as_str()),
                    json!({"outcome": outcome.as_str(), "reason": reason}),
                ),
            };
            let mut json = json!({"at": at, "event": kind, "text": text});
            if let (Value::Object(line), Value::Object(extra)) = (&mut json, fields) {
                line.extend(extra);
            }
            TimelineLine {
                at_ms: event.at_ms,
                event: kind,
                text,
                json,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{new_entry, Event};
    use crate::outcome::AttemptResult;

    const NOW: i64 = 1_800_000_000_000;

    fn params(q: &str) -> Vec<(String, String)> {
        split_query(Some(q))
    }

    fn list_error(q: &str) -> String {
        parse_list(&params(q), NOW, &[]).unwrap_err().to_string()
    }

    #[test]
    fn times_are_rfc3339_relative_or_unix_ms() {
        assert_eq!(parse_time("15m", NOW), Ok(NOW - 900_000));
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_time("7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("1700000000123", NOW), Ok(1_700_000_000_123));
        assert_eq!(
            parse_time("2026-11-30T16:45:01.123Z", NOW),
            Ok(1_796_057_101_123)
        );
        assert_eq!(
            parse_time("2026-11-30T17:45:01.123+01:00", NOW),
            Ok(1_796_057_101_123)
        );
        for bad in [
            "",
            "15x",
            "m",
            "-5m",
            "yesterday",
            "2026-11-30",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?}");
        }
        assert_eq!(rfc3339(1_796_057_101_123), "2026-11-30T16:45:01.123Z");
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

    #[test]
    fn the_timeline_reads_as_plain_english() {
        let mut e = new_entry("o1", "app", NOW);
        e.attempts.push(AttemptDetail {
            channel: Channel::Sms,
            seq: 0,
            mcc: Some(404),
            mnc: Some(45),
            operator: Some("Airtel".into()),
            result: AttemptResult::Failed,
            provider_status: Some(1),
            provider_reason: Some("UNDELIV".into()),
            submit_ms: Some(NOW),
            done_ms: None,
            answer_ms: None,
            latency_ms: None,
            cost_usd: 0.0,
            segments: 1,
        });
        let sms = |from: Option<AttemptResult>, to: AttemptResult| match from {
            None => Change::AttemptAppeared {
                channel: Channel::Sms,
                seq: 0,
                result: to,
            },
            Some(from) => Change::AttemptChanged {
                channel: Channel::Sms,
                seq: 0,
                from,
                to,
            },
        };
        let at = |ms: i64, what: EventKind| Event {
            at_ms: NOW + ms,
            what,
        };
        e.timeline.extend([
            at(
                1000,
                EventKind::Answered {
                    answer: Answer::Record,
                    changes: vec![sms(None, AttemptResult::Pending)],
                },
            ),
            at(
                7000,
                EventKind::Quiet {
                    queries: 6,
                    errors: 2,
                },
            ),
            at(
                8000,
                EventKind::Answered {
                    answer: Answer::Record,
                    changes: vec![
                        sms(Some(AttemptResult::Pending), AttemptResult::Failed),
                        Change::Matched {
                            from: None,
                            to: Some(-1),
                        },
                    ],
                },
            ),
            at(
                9000,
                EventKind::QueryFailed {
                    detail: "timeout".into(),
                },
            ),
            at(
                9500,
                EventKind::Answered {
                    answer: Answer::NoRecord,
                    changes: vec![],
                },
            ),
            at(
                10_000,
                EventKind::Decided {
                    outcome: Outcome::Undelivered,
                    rule: "no attempt was delivered".into(),
                },
            ),
            at(
                11_000,
                EventKind::Finalized {
                    outcome: Outcome::Undelivered,
                    reason: "every attempt has a final result".into(),
                },
            ),
        ]);
        let lines = timeline_lines(&e);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "order issued (app app)",
                "SMS attempt 1 appeared: pending (MCC 404, MNC 45, Airtel)",
                "6 queries, nothing changed (2 failed)",
                "SMS attempt 1: pending → failed (status 1: UNDELIV); verification: none → not verified yet (-1)",
                "query failed: timeout",
                "the provider has no record of the order (yet)",
                "decided undelivered: no attempt was delivered",
                "finalized as undelivered: every attempt has a final result",
            ]
        );
        let json = detail_json(&e);
        assert_eq!(json["timeline"][2]["event"], "quiet");
        assert_eq!(json["timeline"][2]["queries"], 6);
        assert_eq!(json["timeline"][3]["changes"][0]["to"], "failed");
        assert_eq!(json["timeline"][0]["at"], "2027-01-15T08:00:00.000Z");
        assert_eq!(json["attempts"][0]["provider_reason"], "UNDELIV");
    }
}
