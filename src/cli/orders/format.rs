//! Pure formatting of the API's answers (tested without a daemon).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// Rows of cells printed in columns as wide as their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |col: usize| {
        rows.iter()
            .map(|r| r.get(col).map_or(0, |c| c.chars().count()))
            .chain([header[col].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A field as text: strings as they are, numbers as written, null or absent `-`.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// An RFC 3339 time in UTC: `HH:MM:SS` today, `YYYY-MM-DD HH:MM:SS` another day;
/// what does not parse is shown as written.
pub fn time(v: &Value, key: &str, today: NaiveDate, millis: bool) -> String {
    let Some(s) = v.get(key).and_then(Value::as_str) else {
        return "-".into();
    };
    let Ok(t) = DateTime::parse_from_rfc3339(s) else {
        return s.to_string();
    };
    let t = t.with_timezone(&Utc);
    let clock = if millis { "%H:%M:%S%.3f" } else { "%H:%M:%S" };
    if t.date_naive() == today {
        t.format(clock).to_string()
    } else {
        t.format(&format!("%Y-%m-%d {clock}")).to_string()
    }
}

/// Seconds as `1.2s` (`95s`, `12m05s` when long).
pub fn seconds(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_f64) {
        None => "-".into(),
        Some(s) if s < 100.0 => format!("{s:.1}s"),
        Some(s) if s < 600.0 => format!("{s:.0}s"),
        Some(s) => {
            let s = s.round() as u64;
            format!("{}m{:02}s", s / 60, s % 60)
        }
    }
}

/// USD as `$0.0123`.
pub fn usd(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_f64) {
        None => "-".into(),
        // `+ 0.0` turns a negative zero into zero: no `$-0.0000`.
        Some(c) => format!("${:.4}", c + 0.0),
    }
}

/// `404/45` (MCC/MNC), `404` without the MNC.
fn network(v: &Value) -> String {
    match (text(v, "mcc"), text(v, "mnc")) {
        (mcc, mnc) if mcc == "-" && mnc == "-" => "-".into(),
        (mcc, mnc) if mnc == "-" => mcc,
        (mcc, mnc) => format!("{mcc}/{mnc}"),
    }
}

/// `sms 1`: the channel and the attempt's number in it, as the timeline names it
/// (`seq` is the 0-based position in the channel's list).
fn attempt_name(a: &Value) -> String {
    match a.get("seq").and_then(Value::as_u64) {
        Some(seq) => format!("{} {}", text(a, "channel"), seq + 1),
        None => text(a, "channel"),
    }
}

/// The outcome of a final order, `pending` for one still tracked.
fn outcome(v: &Value) -> String {
    match v.get("outcome").and_then(Value::as_str) {
        Some(outcome) => outcome.to_string(),
        None => text(v, "state"),
    }
}

pub fn orders_table(orders: &[Value], next_cursor: Option<&Value>, today: NaiveDate) -> String {
    if orders.is_empty() {
        return "no orders match\n".into();
    }
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                time(o, "issued_at", today, false),
                text(o, "order_id"),
                text(o, "app_id"),
                outcome(o),
                text(o, "country"),
                text(o, "channel"),
                network(o),
                text(o, "operator"),
                seconds(o, "latency_seconds"),
                usd(o, "cost_usd"),
                text(o, "queries"),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ISSUED (UTC)",
            "ORDER",
            "APP",
            "OUTCOME",
            "COUNTRY",
            "CHANNEL",
            "MCC/MNC",
            "OPERATOR",
            "LATENCY",
            "COST",
            "QUERIES",
        ],
        &rows,
    );
    let n = orders.len();
    let plural = if n == 1 { "" } else { "s" };
    match next_cursor.and_then(Value::as_str) {
        Some(cursor) => out.push_str(&format!(
            "{n} order{plural}, newest first; more with --cursor {cursor}\n"
        )),
        None => out.push_str(&format!("{n} order{plural}, newest first\n")),
    }
    out
}

/// `order ID`: a header, the attempts and the timeline.
pub fn order_view(o: &Value, today: NaiveDate) -> String {
    let mut out = order_header(o, today);
    out.push_str(&attempts_section(o, today));
    out.push_str(&timeline_section(o, today));
    out
}

/// The header: one labelled line per fact (state, times, network, cost, fallbacks).
fn order_header(o: &Value, today: NaiveDate) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<10}{value}\n"));
    field(
        "order",
        format!("{}  (app {})", text(o, "order_id"), text(o, "app_id")),
    );
    let state = match o.get("outcome").and_then(Value::as_str) {
        Some(outcome) => format!("{}: {outcome}", text(o, "state")),
        None => text(o, "state"),
    };
    let rule = match text(o, "rule").as_str() {
        "-" => String::new(),
        rule => format!("  (rule: {rule})"),
    };
    field("state", format!("{state}{rule}"));
    let mut times = format!("issued {} UTC", time(o, "issued_at", today, false));
    for (label, key) in [("decided", "decided_at"), ("finalized", "finalized_at")] {
        if o.get(key).is_some_and(|v| !v.is_null()) {
            times.push_str(&format!(", {label} {}", time(o, key, today, false)));
        }
    }
    if let Some(reason) = o.get("finalize_reason").and_then(Value::as_str) {
        times.push_str(&format!(": {reason}"));
    }
    field("times", times);
    field(
        "network",
        format!(
            "{} {}  {}",
            text(o, "country"),
            network(o),
            text(o, "operator")
        ),
    );
    field("receiver", text(o, "receiver"));
    let mut spent = format!(
        "{} queries, cost {}, delivery latency {}",
        text(o, "queries"),
        usd(o, "cost_usd"),
        seconds(o, "latency_seconds")
    );
    if o.get("verified_at").is_some_and(|v| !v.is_null()) {
        spent.push_str(&format!(
            ", verified {} (after {})",
            time(o, "verified_at", today, false),
            seconds(o, "verification_latency_seconds")
        ));
    }
    field("spent", spent);
    let fallbacks: Vec<String> = o
        .get("fallbacks")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| format!("{} → {}", text(f, "from"), text(f, "to")))
                .collect()
        })
        .unwrap_or_default();
    if !fallbacks.is_empty() {
        field("fallbacks", fallbacks.join(", "));
    }
    out
}

/// The attempts as a table, or "none yet".
fn attempts_section(o: &Value, today: NaiveDate) -> String {
    let mut out = String::new();
    let attempts = o.get("attempts").and_then(Value::as_array);
    match attempts {
        Some(list) if !list.is_empty() => {
            out.push_str("\nattempts\n");
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        attempt_name(a),
                        network(a),
                        text(a, "operator"),
                        text(a, "result"),
                        text(a, "provider_status"),
                        text(a, "provider_reason"),
                        time(a, "submitted_at", today, false),
                        time(a, "done_at", today, false),
                        time(a, "answered_at", today, false),
                        seconds(a, "latency_seconds"),
                        usd(a, "cost_usd"),
                        text(a, "segments"),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "ATTEMPT",
                    "MCC/MNC",
                    "OPERATOR",
                    "RESULT",
                    "STATUS",
                    "REASON",
                    "SUBMITTED",
                    "DONE",
                    "ANSWERED",
                    "LATENCY",
                    "COST",
                    "SEGMENTS",
                ],
                &rows,
            ));
        }
        _ => out.push_str("\nattempts  none yet\n"),
    }
    out
}

/// The timeline, one line per event, with a note where the cap dropped lines.
fn timeline_section(o: &Value, today: NaiveDate) -> String {
    let mut out = String::new();
    out.push_str("\ntimeline (UTC)\n");
    let dropped = o
        .get("timeline_dropped")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let lines = o
        .get("timeline")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, line) in lines.iter().enumerate() {
        // The first event is kept when the cap drops the oldest others.
        if i == 1 && dropped > 0 {
            out.push_str(&format!("  … {dropped} earlier lines dropped (cap)\n"));
        }
        out.push_str(&format!(
            "  {}  {}\n",
            time(line, "at", today, true),
            text(line, "text")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date")
    }

    #[test]
    fn tables_align_on_the_widest_cell() {
        let t = table(
            &["A", "BBB"],
            &[
                vec!["long cell".into(), "x".into()],
                vec!["•x".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          BBB\nlong cell  x\n•x         y\n");
    }

    #[test]
    fn times_durations_and_money_read_at_a_glance() {
        let v = json!({"a": "2026-11-30T16:45:01.123Z", "b": "2026-11-29T23:59:59.000Z",
                       "c": "2026-12-01T01:00:00.000+08:00", "s": 1.234, "l": 725.0, "m": 0.01234});
        assert_eq!(time(&v, "a", day(), false), "16:45:01");
        assert_eq!(time(&v, "a", day(), true), "16:45:01.123");
        assert_eq!(time(&v, "b", day(), false), "2026-11-29 23:59:59");
        // Another zone is shown in UTC.
        assert_eq!(time(&v, "c", day(), false), "17:00:00");
        assert_eq!(time(&v, "missing", day(), false), "-");
        assert_eq!(seconds(&v, "s"), "1.2s");
        assert_eq!(seconds(&v, "l"), "12m05s");
        assert_eq!(usd(&v, "m"), "$0.0123");
        assert_eq!(usd(&v, "missing"), "-");
        assert_eq!(usd(&json!({"z": -0.0}), "z"), "$0.0000");
    }

    #[test]
    fn the_orders_table_shows_outcome_or_state_and_the_cursor() {
        let orders = [
            json!({"order_id": "o-1", "app_id": "shop", "issued_at": "2026-11-30T10:00:00.000Z",
                   "state": "final", "outcome": "undelivered", "country": "IN", "channel": "sms",
                   "mcc": 404, "mnc": 45, "operator": "Airtel", "latency_seconds": null,
                   "cost_usd": 0.0042, "queries": 3, "finalized_at": null}),
            json!({"order_id": "o-22", "app_id": "shop", "issued_at": "2026-11-30T09:59:00.000Z",
                   "state": "pending", "outcome": null, "country": null, "channel": null,
                   "mcc": null, "mnc": null, "operator": null, "latency_seconds": 2.5,
                   "cost_usd": 0.0, "queries": 1, "finalized_at": null}),
        ];
        let t = orders_table(&orders, Some(&json!("abc")), day());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ISSUED (UTC)  ORDER  APP "), "{t}");
        assert!(lines[1].contains("o-1    shop  undelivered  IN"), "{t}");
        assert!(
            lines[1].contains("404/45") && lines[1].contains("$0.0042"),
            "{t}"
        );
        assert!(lines[2].contains("o-22   shop  pending "), "{t}");
        assert!(lines[2].contains("2.5s"), "{t}");
        assert_eq!(lines[3], "2 orders, newest first; more with --cursor abc");
        assert_eq!(orders_table(&[], None, day()), "no orders match\n");
    }

    #[test]
    fn the_order_view_has_header_attempts_and_timeline() {
        let o = json!({"order_id": "o-1", "app_id": "shop", "issued_at": "2026-11-30T10:00:00.000Z",
            "state": "final", "outcome": "verified", "rule": "verified in time", "country": "IN",
            "mcc": 404, "mnc": 45, "operator": "Airtel", "receiver": "+91 ••••••••42",
            "queries": 4, "cost_usd": 0.01, "latency_seconds": 3.0,
            "decided_at": "2026-11-30T10:01:00.000Z", "finalized_at": "2026-11-30T10:01:00.000Z",
            "finalize_reason": "decided", "verified_at": "2026-11-30T10:00:30.000Z",
            "verification_latency_seconds": 30.0, "fallbacks": [{"from": "sms", "to": "call"}],
            "attempts": [{"seq": 0, "channel": "sms", "mcc": 404, "mnc": 45, "operator": "Airtel",
                "result": "failed", "provider_status": 2, "provider_reason": "UNDELIV",
                "submitted_at": "2026-11-30T10:00:01.000Z", "done_at": null, "answered_at": null,
                "latency_seconds": null, "cost_usd": 0.004, "segments": 1}],
            "timeline": [{"at": "2026-11-30T10:00:00.000Z", "event": "issued", "text": "issued"},
                         {"at": "2026-11-30T10:00:05.250Z", "event": "answered", "text": "record: sms 1 failed"}],
            "timeline_dropped": 3});
        let v = order_view(&o, day());
        for want in [
            "order     o-1  (app shop)\n",
            "state     final: verified  (rule: verified in time)\n",
            "network   IN 404/45  Airtel\n",
            "receiver  +91 ••••••••42\n",
            "fallbacks sms → call\n",
            "\nATTEMPT  MCC/MNC  OPERATOR  RESULT  STATUS  REASON   SUBMITTED  DONE  ANSWERED  LATENCY  COST     SEGMENTS\nsms 1    404/45   Airtel    failed  2       UNDELIV  10:00:01   -     -         -        $0.0040  1\n",
            "times     issued 10:00:00 UTC, decided 10:01:00, finalized 10:01:00: decided\n",
            "  10:00:00.000  issued\n  … 3 earlier lines dropped (cap)\n  10:00:05.250  record: sms 1 failed\n",
        ] {
            assert!(v.contains(want), "{want:?} not in:\n{v}");
        }
    }
}
