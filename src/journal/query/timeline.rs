//! The detail view of an order, with its timeline in plain English.

use super::*;

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

pub(super) fn channel_name(channel: Channel) -> &'static str {
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

pub(super) fn attempt_of(entry: &Entry, channel: Channel, seq: u8) -> Option<&AttemptDetail> {
    entry
        .attempts
        .iter()
        .find(|a| a.channel == channel && a.seq == seq)
}

/// "(MCC 404, MNC 45, Airtel)" of an attempt, empty when nothing is known.
pub(super) fn network_words(a: Option<&AttemptDetail>) -> String {
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
pub(super) fn status_words(a: Option<&AttemptDetail>) -> String {
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

pub(super) fn change_text(entry: &Entry, change: &Change) -> (String, Value) {
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
