//! Property tests of the two parsers that read what others write: the provider's
//! record (`api::wire::decode_reply`, then `outcome::observe`, `samples` and the
//! metrics) and the spool line (`spool::parse_line`). Hostile input never panics,
//! every value that gets through is bounded, and every refused line says why.
//!
//! Each property runs a few thousand cases (a few seconds in all, debug build);
//! `PROPTEST_CASES` raises that for a longer hunt.

use chrono::{FixedOffset, TimeZone};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use itnio_otp_exporter::api::wire::decode_reply;
use itnio_otp_exporter::metrics::Metrics;
use itnio_otp_exporter::outcome::{
    observe, samples, Outcome, ReadFor, Reading, MAX_SEGMENTS_PER_SMS, TIME_SLACK_MS,
    VALIDATED_FIELDS,
};
use itnio_otp_exporter::spool::{parse_line, LineRules, MAX_ISSUED_AHEAD_MS, MAX_ORDER_ID_LEN};

/// 2026-11-28 13:00 UTC: the order's issue; "now" is an hour later.
const ISSUED_MS: i64 = 1_795_870_800_000;
const NOW_MS: i64 = ISSUED_MS + 3_600_000;

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Failures are reported with their shrunk input; no files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn zone() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// A provider time: near the order (most believable), or anywhere from year 1 to
/// 9999, written in each format the provider uses, or not a time at all.
fn time_text() -> impl Strategy<Value = String> {
    let near = (-2 * 3_600_000i64..2 * 3_600_000).prop_map(|d| ISSUED_MS + d);
    let anywhere = -62_135_596_800_000i64..253_402_300_799_000;
    (prop_oneof![3 => near, 1 => anywhere], 0..4u8).prop_map(|(ms, format)| {
        let utc = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let local = zone().from_utc_datetime(&utc.naive_utc());
        match format {
            0 => local.to_rfc3339(),
            1 => local.format("%Y-%m-%d %H:%M:%S").to_string(),
            2 => local.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
            _ => utc.format("%Y/%m/%d %H:%M:%S").to_string(),
        }
    })
}

/// Any text up to `max` characters (cheaper to generate than a `\PC*` regex).
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

/// Any JSON scalar the provider might put in a field, with the dangerous ones
/// (huge, negative, not a number, absurd times) well represented.
fn hostile_scalar() -> impl Strategy<Value = Value> {
    // At most 10 arms: proptest builds larger unions eagerly (every arm, every value).
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![any::<i64>(), -1_000i64..1_000].prop_map(Value::from),
        prop_oneof![any::<f64>(), 0.0f64..20.0]
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "1e308",
            "-1e308",
            "1e309",
            "-1",
            "-0",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "0.000002",
            "10.0000001",
            "",
            " ",
            "0x10",
            "1_000",
            "9223372036854775808",
            "4294967296",
            "1900-01-01 00:00:00",
            "2100-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31 23:59:59",
            "2026-02-30 10:00:00",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        time_text().prop_map(Value::String),
        any_text(24).prop_map(Value::String),
        any::<i64>().prop_map(|n| Value::String(n.to_string())),
        any::<f64>().prop_map(|f| Value::String(f.to_string())),
    ]
}

/// An object with the given keys, each present or not, with hostile values.
fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::weighted(0.8, hostile_scalar()), keys.len()).prop_map(
        move |values| {
            let map: Map<String, Value> = keys
                .iter()
                .zip(values)
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect();
            Value::Object(map)
        },
    )
}

const SMS_KEYS: &[&str] = &[
    "submitTm",
    "sendTm",
    "doneTm",
    "mcc",
    "mnc",
    "chargeCnt",
    "pay",
    "status",
    "reason",
];
const CALL_KEYS: &[&str] = &[
    "terminationCode",
    "terminationReason",
    "submitTime",
    "answerTime",
    "hangupTime",
    "cost",
];
const SNA_KEYS: &[&str] = &[
    "postVerificationTime",
    "verificationBackTime",
    "mcc",
    "mnc",
    "status",
    "reason",
];
const VERIFICATION_KEYS: &[&str] = &["matched", "verifiedDate", "oriReceiver", "channel"];

/// A channel's attempts: an array, a lone object, or junk. Arrays stay short (the
/// cap is exercised with small caps, see [`reading`]) to keep cases cheap.
fn attempts_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::collection::vec(object_of(keys), 0..5).prop_map(Value::Array),
        1 => object_of(keys),
        1 => hostile_scalar(),
    ]
}

/// A whole answer shaped like the provider's, every value hostile.
fn hostile_reply() -> impl Strategy<Value = Value> {
    let verifications = prop_oneof![
        3 => object_of(VERIFICATION_KEYS),
        1 => prop::collection::vec(object_of(VERIFICATION_KEYS), 0..4).prop_map(Value::Array),
        1 => hostile_scalar(),
    ];
    (
        prop_oneof![Just(json!("0")), Just(json!(0)), hostile_scalar()],
        hostile_scalar(),
        prop_oneof![Just(json!("order-1")), hostile_scalar()],
        verifications,
        attempts_of(SMS_KEYS),
        attempts_of(CALL_KEYS),
        attempts_of(SNA_KEYS),
    )
        .prop_map(
            |(status, reason, order_id, verifications, sms, call, sna)| {
                json!({"status": status, "reason": reason, "data": {
                "orderId": order_id, "flowId": 1, "verifications": verifications,
                "sms": sms, "call": call, "sna": sna}})
            },
        )
}

fn reading() -> impl Strategy<Value = Reading> {
    (1usize..10, prop_oneof![Just(10.0f64), 0.001f64..1_000.0]).prop_map(|(max, ceiling)| Reading {
        zone: zone(),
        max_attempts: max,
        max_cost_per_attempt_usd: ceiling,
    })
}

/// Every value an observed record lets through, checked against the bounds.
fn check_bounded(body: &[u8], reading: &Reading, metrics: &Metrics) -> Result<(), TestCaseError> {
    let Ok(reply) = decode_reply(body) else {
        return Ok(());
    };
    let Some(record) = reply.data else {
        return Ok(());
    };
    let order = ReadFor {
        issued_ms: ISSUED_MS,
        now_ms: NOW_MS,
    };
    let o = observe(&record, reading, order);
    let total = record.sms.len() + record.call.len() + record.sna.len();
    prop_assert!(o.attempts.len() <= reading.max_attempts);
    prop_assert_eq!(o.attempts.len() + o.attempts_dropped, total);
    let (earliest, latest) = (ISSUED_MS - TIME_SLACK_MS, NOW_MS + TIME_SLACK_MS);
    let believable = |ms: i64| (earliest..=latest).contains(&ms);
    for a in &o.attempts {
        prop_assert!(a.cost_usd.is_finite(), "{a:?}");
        prop_assert!(
            (0.0..=reading.max_cost_per_attempt_usd).contains(&a.cost_usd),
            "{a:?}"
        );
        prop_assert!(a.segments <= MAX_SEGMENTS_PER_SMS, "{a:?}");
        prop_assert!(a.submit_ms.is_none_or(believable), "{a:?}");
        prop_assert!(
            a.latency_ms
                .is_none_or(|l| (0..=latest - earliest).contains(&l)),
            "{a:?}"
        );
    }
    prop_assert!(o.verified_ms.is_none_or(believable));
    for (field, _) in o.invalid_values.iter() {
        prop_assert!(VALIDATED_FIELDS.contains(&field), "{field}");
    }
    let most_seconds = (latest - earliest) as f64 / 1000.0;
    for outcome in [Outcome::Verified, Outcome::Unverified] {
        let s = samples(outcome, Some(&o));
        prop_assert!(s.attempts.len() <= reading.max_attempts);
        for a in &s.attempts {
            prop_assert!(
                a.mcc == "unknown"
                    || (a.mcc.len() == 3 && a.mcc.bytes().all(|b| b.is_ascii_digit()))
            );
            prop_assert!(a
                .latency_seconds
                .is_none_or(|l| (0.0..=most_seconds).contains(&l)));
        }
        prop_assert!(s
            .verification_latency_seconds
            .is_none_or(|l| (0.0..=most_seconds).contains(&l)));
        metrics.record_order("app", &s, 1);
    }
    Ok(())
}

/// No sample of the exposition is infinite or not a number (`le="+Inf"` is a label).
fn check_exposition(metrics: &Metrics) -> Result<(), TestCaseError> {
    let text = String::from_utf8(metrics.render()).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or_default();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        prop_assert!(value.is_finite() && value >= 0.0, "{line}");
    }
    Ok(())
}

/// One registry for the cases of the byte-level properties (building one per case
/// would cost more than the case).
static SHARED_METRICS: std::sync::LazyLock<Metrics> =
    std::sync::LazyLock::new(|| Metrics::new(&["app".to_string()]));

const DEFAULT_READING: Reading = Reading {
    zone: match FixedOffset::east_opt(8 * 3600) {
        Some(zone) => zone,
        None => panic!("+08:00 is an offset"),
    },
    max_attempts: 64,
    max_cost_per_attempt_usd: 10.0,
};

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn the_decoder_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        check_bounded(&body, &DEFAULT_READING, &SHARED_METRICS)?;
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn the_decoder_takes_any_json_like_text(body in r#"[{}\[\]":,0-9a-zA-Z .eE+-]{0,200}"#) {
        check_bounded(body.as_bytes(), &DEFAULT_READING, &SHARED_METRICS)?;
    }
}

proptest! {
    // Generating a whole hostile record costs a few ms in a debug build.
    #![proptest_config(cases(1000))]

    #[test]
    fn hostile_records_yield_only_bounded_values(reply in hostile_reply(), reading in reading()) {
        let metrics = Metrics::new(&["app".to_string()]);
        check_bounded(reply.to_string().as_bytes(), &reading, &metrics)?;
        check_exposition(&metrics)?;
    }
}

// The spool line parser.

fn rules() -> LineRules {
    LineRules {
        apps: ["app-a", "app-b"].iter().map(|a| a.to_string()).collect(),
        default_app: Some("app-a".into()),
    }
}

const MTIME_MS: i64 = 1_795_870_000_000;

/// The parser's verdict on one line, with its invariants checked: an order is valid
/// and bounded, a refusal has a reason on one line (it is written into a
/// `# line N: reason` quarantine comment).
fn verdict(line: &str) -> Result<Option<String>, TestCaseError> {
    let rules = rules();
    match parse_line(line, &rules, MTIME_MS, NOW_MS) {
        Ok(None) => {
            let t = line.trim();
            prop_assert!(t.is_empty() || t.starts_with('#'), "{line:?} skipped");
            Ok(None)
        }
        Ok(Some(order)) => {
            let id = &order.order_id;
            prop_assert!(!id.is_empty() && id.len() <= MAX_ORDER_ID_LEN, "{order:?}");
            prop_assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{order:?}");
            prop_assert!(rules.apps.contains(&order.app_id), "{order:?}");
            prop_assert!(order.issued_ms <= NOW_MS + MAX_ISSUED_AHEAD_MS, "{order:?}");
            Ok(None)
        }
        Err(reason) => {
            let reason = reason.to_string();
            prop_assert!(!reason.trim().is_empty(), "{line:?}");
            prop_assert!(!reason.contains(['\n', '\r']), "{line:?}: {reason:?}");
            Ok(Some(reason))
        }
    }
}

/// A good line: a plain id, or JSON with some of appId and issuedAt.
fn good_line() -> impl Strategy<Value = (String, String)> {
    let id = "[!-~]{1,64}".prop_filter("not a comment", |id| !id.starts_with('#'));
    (
        id,
        prop::option::of(prop::sample::select(vec!["app-a", "app-b"])),
        any::<bool>(),
        0..3u8,
    )
        .prop_map(|(id, app, json, issued)| {
            let line = if json || id.starts_with('{') {
                let mut o = json!({"orderId": id});
                if let Some(app) = app {
                    o["appId"] = json!(app);
                }
                match issued {
                    0 => {}
                    1 => o["issuedAt"] = json!(ISSUED_MS / 1000),
                    _ => o["issuedAt"] = json!("2026-11-28T13:00:00Z"),
                }
                o.to_string()
            } else {
                id.clone()
            };
            (line, id)
        })
}

/// A line that is wrong in one known way.
fn bad_line() -> impl Strategy<Value = String> {
    prop_oneof![
        // Ids with a space, a control or non-ASCII character, or too long.
        "[!-~]{0,10}[ \t\u{0}\u{1b}é€][!-~]{1,10}"
            .prop_filter("plain", |l| !l.trim().starts_with(['#', '{'])
                && l.trim().contains(|c: char| !c.is_ascii_graphic())),
        "[a-z0-9]{65,200}",
        // JSON lines with a wrong field.
        "[a-z]{1,10}"
            .prop_map(|app| json!({"orderId": "o-1", "appId": format!("x{app}")}).to_string()),
        hostile_scalar()
            .prop_filter("not an id", |v| !matches!(
                v,
                Value::String(_) | Value::Number(_)
            ))
            .prop_map(|v| json!({"orderId": v}).to_string()),
        hostile_scalar()
            .prop_filter("not an app", |v| !matches!(
                v,
                Value::String(_) | Value::Null
            ))
            .prop_map(|v| json!({"orderId": "o-1", "appId": v}).to_string()),
        (NOW_MS / 1000 + 3_601..NOW_MS / 1000 + 1_000_000_000)
            .prop_map(|s| json!({"orderId": "o-1", "issuedAt": s}).to_string()),
        "\\PC{0,30}"
            .prop_map(|t| json!({"orderId": "o-1", "issuedAt": format!("soon {t}")}).to_string()),
        "\\{[^}]{0,40}".prop_filter("not JSON", |l| serde_json::from_str::<Value>(l).is_err()),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn any_line_is_accepted_valid_or_refused_with_a_reason(line in "\\PC{0,120}") {
        verdict(&line)?;
    }

    #[test]
    fn any_json_line_is_accepted_valid_or_refused_with_a_reason(
        order_id in hostile_scalar(), app_id in hostile_scalar(), issued_at in hostile_scalar(),
    ) {
        let line = json!({"orderId": order_id, "appId": app_id, "issuedAt": issued_at}).to_string();
        verdict(&line)?;
    }

    #[test]
    fn good_lines_are_accepted_as_written((line, id) in good_line()) {
        let order = parse_line(&line, &rules(), MTIME_MS, NOW_MS);
        let order = order.map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
        prop_assert_eq!(order.map(|o| o.order_id), Some(id));
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason(line in bad_line()) {
        prop_assert!(verdict(&line)?.is_some(), "{:?} was not refused", line);
    }
}
