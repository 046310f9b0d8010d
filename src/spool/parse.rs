//! Spool lines → orders. Pure: no files, no clock (the caller passes "now").

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::config::Config;

pub const MAX_ORDER_ID_LEN: usize = 64;
/// `issuedAt` may lead our clock by this much (writers' clocks drift); beyond it the
/// line is rejected, since an order "issued" in the future would be tracked for ever.
pub const MAX_ISSUED_AHEAD_MS: i64 = 3_600_000;
/// How much of an unknown app id a reason shows (the line itself is quarantined whole).
const SHOWN_APP_CHARS: usize = 80;

/// A line that names an order.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolOrder {
    pub order_id: String,
    pub app_id: String,
    pub issued_ms: i64,
}

/// What the parser needs to know about the configuration.
#[derive(Debug, Clone)]
pub struct LineRules {
    pub apps: HashSet<String>,
    pub default_app: Option<String>,
}

impl LineRules {
    pub fn from_config(config: &Config) -> Self {
        LineRules {
            apps: config.apps.iter().map(|a| a.id.clone()).collect(),
            default_app: config.default_app.clone(),
        }
    }
}

/// Why a line was rejected. The texts are a contract: they are written into
/// quarantine files (`# line N: reason`) and logs, and read by people and tools
/// outside this repository. Causes from `serde_json` and `chrono` are kept as typed
/// values but shown inside the reason, not as `source()`, so no chain repeats them.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error("missing orderId")]
    MissingOrderId,
    #[error("orderId is not a string")]
    OrderIdNotString,
    #[error("appId is not a string")]
    AppIdNotString,
    #[error("issuedAt {text:?} is not RFC 3339 ({cause})")]
    IssuedAtNotRfc3339 {
        text: String,
        cause: chrono::ParseError,
    },
    #[error("issuedAt {0} is not Unix seconds")]
    IssuedAtNotUnixSeconds(serde_json::Number),
    #[error("issuedAt is neither RFC 3339 text nor Unix seconds")]
    IssuedAtWrongType,
    #[error("issuedAt is {ahead_secs} s in the future (more than 1 h ahead of this host's clock)")]
    IssuedInFuture { ahead_secs: i64 },
    #[error("empty order id")]
    EmptyOrderId,
    #[error("order id longer than {MAX_ORDER_ID_LEN} characters ({len})")]
    OrderIdTooLong { len: usize },
    /// `order_id` is at most [`MAX_ORDER_ID_LEN`] bytes here, so it is shown whole.
    #[error("not an order id: {order_id:?} contains {bad:?} (only visible ASCII, no spaces)")]
    NotAnOrderId { order_id: String, bad: char },
    #[error("unknown app {:?} (not in apps[].id)", shown_app(.0))]
    UnknownApp(String),
    #[error("no appId and no default_app configured")]
    NoApp,
}

fn shown_app(app: &str) -> String {
    app.chars().take(SHOWN_APP_CHARS).collect()
}

/// Parses one spool line. `Ok(None)` for blank and `#` lines; `Err` for a bad line.
/// Lines without `issuedAt` count as issued at `file_mtime_ms`; `now_ms` bounds
/// `issuedAt` (see [`MAX_ISSUED_AHEAD_MS`]).
pub fn parse_line(
    line: &str,
    rules: &LineRules,
    file_mtime_ms: i64,
    now_ms: i64,
) -> Result<Option<SpoolOrder>, LineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (order_id, app_id, issued_ms) = if line.starts_with('{') {
        parse_json_line(line, file_mtime_ms, now_ms)?
    } else {
        (line.to_string(), None, file_mtime_ms)
    };
    check_order_id(&order_id)?;
    let app_id = match app_id.or_else(|| rules.default_app.clone()) {
        Some(app) if rules.apps.contains(&app) => app,
        Some(app) => return Err(LineError::UnknownApp(app)),
        None => return Err(LineError::NoApp),
    };
    Ok(Some(SpoolOrder {
        order_id,
        app_id,
        issued_ms,
    }))
}

/// A JSON line's order id, app id (if given) and issue time.
fn parse_json_line(
    line: &str,
    file_mtime_ms: i64,
    now_ms: i64,
) -> Result<(String, Option<String>, i64), LineError> {
    // A line that starts with `{` is an object or not JSON at all.
    let object: Map<String, Value> = serde_json::from_str(line).map_err(LineError::InvalidJson)?;
    let order_id = match object.get("orderId") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Null) | None => return Err(LineError::MissingOrderId),
        Some(_) => return Err(LineError::OrderIdNotString),
    };
    let app_id = match object.get("appId") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(_) => return Err(LineError::AppIdNotString),
    };
    let issued_ms = match object.get("issuedAt") {
        Some(Value::Null) | None => file_mtime_ms,
        Some(v) => parse_issued_at(v)?,
    };
    if issued_ms > now_ms.saturating_add(MAX_ISSUED_AHEAD_MS) {
        return Err(LineError::IssuedInFuture {
            ahead_secs: (issued_ms - now_ms) / 1000,
        });
    }
    Ok((order_id, app_id, issued_ms))
}

fn check_order_id(id: &str) -> Result<(), LineError> {
    if id.is_empty() {
        return Err(LineError::EmptyOrderId);
    }
    if id.len() > MAX_ORDER_ID_LEN {
        return Err(LineError::OrderIdTooLong { len: id.len() });
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(LineError::NotAnOrderId {
            order_id: id.to_string(),
            bad,
        });
    }
    Ok(())
}

/// `issuedAt`: RFC 3339 text or Unix seconds.
fn parse_issued_at(v: &Value) -> Result<i64, LineError> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|d| d.timestamp_millis())
            .map_err(|cause| LineError::IssuedAtNotRfc3339 {
                text: s.clone(),
                cause,
            }),
        Value::Number(n) => n
            .as_f64()
            .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs < 1e11)
            .map(|secs| (secs * 1000.0) as i64)
            .ok_or_else(|| LineError::IssuedAtNotUnixSeconds(n.clone())),
        _ => Err(LineError::IssuedAtWrongType),
    }
}

/// A line the parser refused, with where it stood in its file.
#[derive(Debug)]
pub struct RejectedLine<'a> {
    /// 1-based, as editors count.
    pub line_no: usize,
    pub reason: LineError,
    pub line: &'a str,
}

/// A whole file's text, sorted into orders and rejected lines.
#[derive(Debug, Default)]
pub struct ParsedText<'a> {
    pub orders: Vec<SpoolOrder>,
    pub rejected: Vec<RejectedLine<'a>>,
}

/// Parses every line of a spool file (see [`parse_line`]).
pub fn parse_text<'a>(
    text: &'a str,
    rules: &LineRules,
    file_mtime_ms: i64,
    now_ms: i64,
) -> ParsedText<'a> {
    // A byte-order mark (Windows editors) is not part of the first order id.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = ParsedText::default();
    for (index, line) in text.lines().enumerate() {
        match parse_line(line, rules, file_mtime_ms, now_ms) {
            Ok(Some(order)) => parsed.orders.push(order),
            Ok(None) => {}
            Err(reason) => parsed.rejected.push(RejectedLine {
                line_no: index + 1,
                reason,
                line,
            }),
        }
    }
    parsed
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Two apps, the first the default; shared with the scan's tests.
    pub(in crate::spool) fn rules() -> LineRules {
        LineRules {
            apps: ["ad454212".to_string(), "other".to_string()]
                .into_iter()
                .collect(),
            default_app: Some("ad454212".into()),
        }
    }

    fn parse(line: &str) -> Result<Option<SpoolOrder>, LineError> {
        parse_line(line, &rules(), 1_000, NOW_MS)
    }

    /// The reason a line is rejected for, as written into quarantine.
    fn reason(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    /// 2026-11-28T13:00:00Z, the "now" of line parsing tests.
    const NOW_MS: i64 = 1_795_870_800_000;

    #[test]
    fn bare_ids_blank_and_comment_lines() {
        assert_eq!(
            parse("1234566").unwrap(),
            Some(SpoolOrder {
                order_id: "1234566".into(),
                app_id: "ad454212".into(),
                issued_ms: 1_000
            })
        );
        assert_eq!(parse("  order-1\r").unwrap().unwrap().order_id, "order-1");
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
        assert_eq!(parse(&"x".repeat(64)).unwrap().unwrap().order_id.len(), 64);
    }

    #[test]
    fn bad_bare_ids() {
        assert!(reason("two words").contains("not an order id"));
        assert!(reason(&"x".repeat(65)).contains("longer than 64"));
        assert!(reason("caf\u{e9}").contains("not an order id"));
        assert!(reason("tab\there").contains("not an order id"));
    }

    #[test]
    fn json_lines() {
        let o = parse(r#"{"orderId": "a1", "appId": "other", "issuedAt": "2026-11-28T13:00:00Z"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((o.order_id.as_str(), o.app_id.as_str()), ("a1", "other"));
        assert_eq!(o.issued_ms, 1_795_870_800_000);
        let o = parse(r#"{"orderId": "a2", "issuedAt": 1764334800}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.app_id.as_str(), o.issued_ms),
            ("ad454212", 1_764_334_800_000)
        );
        let o = parse(r#"{"orderId": 42, "issuedAt": null, "extra": true}"#)
            .unwrap()
            .unwrap();
        assert_eq!((o.order_id.as_str(), o.issued_ms), ("42", 1_000));
        let o = parse(r#"{"orderId":"a3","issuedAt":"2026-11-28T21:00:00+08:00"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(o.issued_ms, 1_795_870_800_000);
    }

    #[test]
    fn bad_json_lines() {
        let cases = [
            (r#"{"orderId": "a1""#, "invalid JSON"),
            (r#"{"appId": "other"}"#, "missing orderId"),
            (r#"{"orderId": ["x"]}"#, "orderId is not a string"),
            (r#"{"orderId": "a", "appId": "nope"}"#, "unknown app"),
            (r#"{"orderId": "a", "appId": 5}"#, "appId"),
            (r#"{"orderId": "a b"}"#, "not an order id"),
            (r#"{"orderId": "a", "issuedAt": "yesterday"}"#, "issuedAt"),
            (r#"{"orderId": "a", "issuedAt": -5}"#, "issuedAt"),
            (r#"{"orderId": "a", "issuedAt": 1764334800000}"#, "issuedAt"),
            (r#"{"orderId": ""}"#, "empty"),
        ];
        for (line, part) in cases {
            assert!(reason(line).contains(part), "{line}: {}", reason(line));
        }
    }

    #[test]
    fn issued_at_far_in_the_future_is_rejected() {
        let at = |secs: i64| format!(r#"{{"orderId":"f1","issuedAt":{secs}}}"#);
        let now_secs = NOW_MS / 1000;
        assert!(
            parse(&at(now_secs + 1800)).is_ok(),
            "30 min of writer clock drift is fine"
        );
        let err = reason(&at(now_secs + 7200));
        assert!(err.contains("issuedAt is 7200 s in the future"), "{err}");
        assert!(
            reason(r#"{"orderId":"f2","issuedAt":"2126-01-01T00:00:00Z"}"#)
                .contains("in the future")
        );
    }

    #[test]
    fn no_default_app() {
        let rules = LineRules {
            apps: ["a".to_string(), "b".to_string()].into_iter().collect(),
            default_app: None,
        };
        assert!(parse_line("x1", &rules, 0, NOW_MS)
            .unwrap_err()
            .to_string()
            .contains("no appId"));
        assert!(parse_line(r#"{"orderId":"x1","appId":"b"}"#, &rules, 0, NOW_MS).is_ok());
    }

    /// Every reason text exactly as written into quarantine files and logs (readers
    /// outside this repository match on them), and the variant behind it.
    #[test]
    fn reason_texts_are_exact() {
        use LineError as E;
        let future = format!(r#"{{"orderId":"f1","issuedAt":{}}}"#, NOW_MS / 1000 + 7200);
        let too_long = "x".repeat(65);
        type IsVariant = fn(&LineError) -> bool;
        let cases: [(&str, &str, IsVariant); 20] = [
            (
                r#"{"orderId": "a1""#,
                "invalid JSON: EOF while parsing an object at line 1 column 16",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (
                "{orderId: 1}",
                "invalid JSON: key must be a string at line 1 column 2",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (
                r#"{"orderId": "a1"} x"#,
                "invalid JSON: trailing characters at line 1 column 19",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (
                r#"{"orderId": "a1",}"#,
                "invalid JSON: trailing comma at line 1 column 18",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (
                r#"{"orderId": tru}"#,
                "invalid JSON: expected ident at line 1 column 16",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (
                r#"{"orderId": 1e999}"#,
                "invalid JSON: number out of range at line 1 column 17",
                |e| matches!(e, E::InvalidJson(_)),
            ),
            (r#"{"appId": "other"}"#, "missing orderId", |e| {
                matches!(e, E::MissingOrderId)
            }),
            (r#"{"orderId": null}"#, "missing orderId", |e| {
                matches!(e, E::MissingOrderId)
            }),
            (r#"{"orderId": ["x"]}"#, "orderId is not a string", |e| {
                matches!(e, E::OrderIdNotString)
            }),
            (
                r#"{"orderId": "a", "appId": 5}"#,
                "appId is not a string",
                |e| matches!(e, E::AppIdNotString),
            ),
            (
                &future,
                "issuedAt is 7200 s in the future (more than 1 h ahead of this host's clock)",
                |e| matches!(e, E::IssuedInFuture { ahead_secs: 7200 }),
            ),
            (
                r#"{"orderId": "a", "appId": "nope"}"#,
                r#"unknown app "nope" (not in apps[].id)"#,
                |e| matches!(e, E::UnknownApp(_)),
            ),
            (r#"{"orderId": ""}"#, "empty order id", |e| {
                matches!(e, E::EmptyOrderId)
            }),
            (&too_long, "order id longer than 64 characters (65)", |e| {
                matches!(e, E::OrderIdTooLong { len: 65 })
            }),
            (
                "two words",
                r#"not an order id: "two words" contains ' ' (only visible ASCII, no spaces)"#,
                |e| matches!(e, E::NotAnOrderId { bad: ' ', .. }),
            ),
            (
                "caf\u{e9}",
                "not an order id: \"caf\u{e9}\" contains '\u{e9}' (only visible ASCII, no spaces)",
                |e| matches!(e, E::NotAnOrderId { .. }),
            ),
            (
                r#"{"orderId": "a", "issuedAt": "yesterday"}"#,
                r#"issuedAt "yesterday" is not RFC 3339 (premature end of input)"#,
                |e| matches!(e, E::IssuedAtNotRfc3339 { .. }),
            ),
            (
                r#"{"orderId": "a", "issuedAt": -5}"#,
                "issuedAt -5 is not Unix seconds",
                |e| matches!(e, E::IssuedAtNotUnixSeconds(_)),
            ),
            (
                r#"{"orderId": "a", "issuedAt": 1764334800000}"#,
                "issuedAt 1764334800000 is not Unix seconds",
                |e| matches!(e, E::IssuedAtNotUnixSeconds(_)),
            ),
            (
                r#"{"orderId": "a", "issuedAt": true}"#,
                "issuedAt is neither RFC 3339 text nor Unix seconds",
                |e| matches!(e, E::IssuedAtWrongType),
            ),
        ];
        for (line, text, is_variant) in cases {
            let err = parse(line).unwrap_err();
            assert_eq!(err.to_string(), text, "{line}");
            assert!(is_variant(&err), "{line}: {err:?}");
        }
        // An unknown app is shown cut to 80 characters; the error keeps it whole.
        let line = format!(r#"{{"orderId": "a", "appId": "{}"}}"#, "a".repeat(100));
        let err = parse(&line).unwrap_err();
        let shown = format!(r#"unknown app "{}" (not in apps[].id)"#, "a".repeat(80));
        assert_eq!(err.to_string(), shown);
        assert!(
            matches!(&err, E::UnknownApp(app) if app.len() == 100),
            "{err:?}"
        );
        let no_default = LineRules {
            apps: rules().apps,
            default_app: None,
        };
        let err = parse_line("x1", &no_default, 0, NOW_MS).unwrap_err();
        assert_eq!(err.to_string(), "no appId and no default_app configured");
        assert!(matches!(err, E::NoApp));
    }

    #[test]
    fn a_text_is_sorted_into_orders_and_numbered_rejected_lines() {
        // A byte-order mark is not part of the first id; blank and comment lines count.
        let text = "\u{feff}t1\n\n# note\nbad id\r\nt2\n{\"orderId\":\"t3\",\"appId\":\"ghost\"}";
        let parsed = parse_text(text, &rules(), 1_000, NOW_MS);
        let ids: Vec<&str> = parsed.orders.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["t1", "t2"]);
        let rejected: Vec<(usize, &str)> = parsed
            .rejected
            .iter()
            .map(|r| (r.line_no, r.line))
            .collect();
        assert_eq!(
            rejected,
            [(4, "bad id"), (6, r#"{"orderId":"t3","appId":"ghost"}"#)]
        );
        assert!(matches!(
            parsed.rejected[1].reason,
            LineError::UnknownApp(ref app) if app == "ghost"
        ));
    }
}
