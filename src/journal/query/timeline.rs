//! An order's timeline in plain English, one sentence (and its JSON) per event.

use serde_json::{json, Value};

use super::time::rfc3339;
use crate::journal::model::{Answer, AttemptDetail, Change, Entry, EventKind};
use crate::outcome::Channel;

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
    use super::super::view::detail_json;
    use super::*;
    use crate::journal::{new_entry, Event};
    use crate::outcome::{AttemptResult, Outcome};

    const NOW: i64 = 1_800_000_000_000;

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
