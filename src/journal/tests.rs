//! The journal's pure rules: a scripted order's timeline, what collapses, the cap,
//! the sentences, and the view of a real provider record.

use std::time::Duration;

use chrono::FixedOffset;

use super::*;
use crate::api::wire::decode_reply;
use crate::outcome::{self, AttemptResult, Channel, Limits, Outcome, ReadFor, Reading};

const ISSUED: i64 = 1_700_000_000_000;

fn zone() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or(FixedOffset::east_opt(0).unwrap())
}

fn limits() -> Limits {
    Limits {
        verification_window: Duration::from_secs(300),
        settle_timeout: Duration::from_secs(120),
        not_found_grace: Duration::from_secs(120),
        max_age: Duration::from_secs(1800),
        first_delay: Duration::from_secs(5),
        max_interval: Duration::from_secs(60),
    }
}

fn names(mcc: u16, mnc: u16) -> Option<&'static str> {
    (mcc == 404 && mnc == 45).then_some("Airtel")
}

/// The journal's view of a provider answer `data` (JSON) read at `now_ms`.
fn view(data: &str, now_ms: i64) -> Snapshot {
    let body = format!(r#"{{"status":0,"data":{data}}}"#);
    let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
    let reading = Reading {
        zone: zone(),
        max_attempts: 64,
        max_cost_per_attempt_usd: 10.0,
    };
    let obs = outcome::observe(
        &record,
        &reading,
        ReadFor {
            issued_ms: ISSUED,
            now_ms,
        },
    );
    snapshot(&record, &obs, &zone(), &names)
}

const PENDING: &str = r#"{"verifications":{"matched":-1,"oriReceiver":"+919812345642"},
  "sms":[{"submitTm":"2023-11-14T22:13:21+00:00","mcc":404,"mnc":45,"status":-1,"pay":0.01,"chargeCnt":1}]}"#;
const FAILED_THEN_CALL: &str = r#"{"verifications":{"matched":1,"oriReceiver":"+919812345642"},
  "sms":[{"submitTm":"2023-11-14T22:13:21+00:00","doneTm":"2023-11-14T22:13:31+00:00","mcc":404,"mnc":45,"status":1,"reason":"UNDELIV <b>","pay":0.01,"chargeCnt":1}],
  "call":[{"submitTime":"2023-11-14T22:13:40+00:00","answerTime":"2023-11-14T22:13:50+00:00","hangupTime":"2023-11-14T22:14:00+00:00","terminationCode":0,"cost":0.05}]}"#;
const VERIFIED: &str = r#"{"verifications":{"matched":0,"verifiedDate":"2023-11-14T22:14:05+00:00","oriReceiver":"+919812345642","channel":"call"},
  "sms":[{"submitTm":"2023-11-14T22:13:21+00:00","doneTm":"2023-11-14T22:13:31+00:00","mcc":404,"mnc":45,"status":1,"reason":"UNDELIV <b>","pay":0.01,"chargeCnt":1}],
  "call":[{"submitTime":"2023-11-14T22:13:40+00:00","answerTime":"2023-11-14T22:13:50+00:00","hangupTime":"2023-11-14T22:14:00+00:00","terminationCode":0,"cost":0.05}]}"#;

fn update(at_ms: i64) -> Update {
    Update {
        app_id: "app".into(),
        issued_ms: ISSUED,
        ..Update::default()
    }
    .at(at_ms)
}

impl Update {
    /// Test shorthand: an answer with a record at `at_ms`.
    fn at(mut self, at_ms: i64) -> Update {
        self.answer = Some((at_ms, Answer::Record));
        self
    }
}

fn kinds(entry: &Entry) -> Vec<String> {
    entry
        .timeline
        .iter()
        .map(|e| match &e.what {
            EventKind::Issued => "issued".to_string(),
            EventKind::Answered { answer, changes } => format!("{answer:?} {}", changes.len()),
            EventKind::Quiet { queries, errors } => format!("quiet {queries}/{errors}"),
            EventKind::QueryFailed { .. } => "failed".to_string(),
            EventKind::Decided { outcome, .. } => format!("decided {}", outcome.as_str()),
            EventKind::Finalized { outcome, .. } => format!("final {}", outcome.as_str()),
        })
        .collect()
}

#[test]
fn a_scripted_order_tells_what_the_provider_said_and_why() {
    let t = |s: i64| ISSUED + s * 1000;
    // First answer: an SMS appears, pending.
    let mut e = merge(
        None,
        "o1",
        Update {
            snapshot: Some(view(PENDING, t(5))),
            queries: 1,
            ..update(t(5))
        },
    );
    // Three answers that change nothing, one of which failed, then the SMS fails and a
    // call appears.
    e = merge(
        Some(e),
        "o1",
        Update {
            quiet_queries: 3,
            quiet_errors: 1,
            snapshot: Some(view(FAILED_THEN_CALL, t(50))),
            queries: 5,
            ..update(t(50))
        },
    );
    // The same record again: folded into a quiet line, no answer line.
    e = merge(
        Some(e),
        "o1",
        Update {
            snapshot: Some(view(FAILED_THEN_CALL, t(60))),
            queries: 6,
            ..update(t(60))
        },
    );
    let verified = view(VERIFIED, t(70));
    e = merge(
        Some(e),
        "o1",
        Update {
            snapshot: Some(verified),
            decided: Some((
                t(70),
                Outcome::Verified,
                decision_rule(Outcome::Verified, None, &limits()),
            )),
            finalized: Some((
                t(70),
                Outcome::Verified,
                "every attempt has a final result".into(),
            )),
            queries: 7,
            ..update(t(70))
        },
    );
    assert_eq!(
        kinds(&e),
        [
            "issued",
            "Record 1",
            "quiet 3/1",
            "Record 3",
            "quiet 1/0",
            "Record 1",
            "decided verified",
            "final verified"
        ],
        "{:#?}",
        e.timeline
    );
    let EventKind::Answered { changes, .. } = &e.timeline[3].what else {
        panic!("{:?}", e.timeline[3]);
    };
    assert_eq!(
        changes,
        &[
            Change::AttemptChanged {
                channel: Channel::Sms,
                seq: 0,
                from: AttemptResult::Pending,
                to: AttemptResult::Failed
            },
            Change::AttemptAppeared {
                channel: Channel::Call,
                seq: 0,
                result: AttemptResult::Delivered
            },
            Change::Matched {
                from: Some(-1),
                to: Some(1)
            },
        ]
    );
    assert_eq!(e.state, State::Final);
    assert_eq!(e.outcome, Some(Outcome::Verified));
    assert!(
        e.rule.as_deref().unwrap_or_default().contains("VERIFIED"),
        "{:?}",
        e.rule
    );
    assert_eq!(e.queries, 7);
    assert_eq!(e.country.as_deref(), Some("IN"));
    assert_eq!(
        (e.mcc, e.mnc, e.operator.as_deref()),
        (Some(404), Some(45), Some("Airtel"))
    );
    assert_eq!(e.receiver.as_deref(), Some("+91 ••••••••42"));
    assert_eq!(e.fallbacks, vec![(Channel::Sms, Channel::Call)]);
    let sms = &e.attempts[0];
    assert_eq!(
        (sms.provider_status, sms.provider_reason.as_deref()),
        (Some(1), Some("UNDELIV <b>"))
    );
    assert_eq!(sms.done_ms, Some(1_700_000_011_000));
    let call = &e.attempts[1];
    assert_eq!(
        (call.provider_status, call.answer_ms, call.done_ms),
        (Some(0), Some(1_700_000_030_000), Some(1_700_000_040_000))
    );
    assert_eq!(e.verification_latency_ms, Some(44_000));
    // The index row adds up what lists and breakdowns need.
    let row = index_row(&e, 300, Some("airtel"));
    assert_eq!((row.attempts_delivered, row.attempts_failed), (1, 1));
    assert!((row.cost_usd - 0.06).abs() < 1e-9, "{}", row.cost_usd);
    assert_eq!(row.finalized_ms, Some(t(70)));
    // Written with the entry's strings borrowed, read back owned: the same bytes.
    let stored: IndexRow = crate::journal::decode(&crate::journal::encode(&row)).unwrap();
    assert_eq!(
        crate::journal::encode(&stored),
        crate::journal::encode(&row)
    );
    assert_eq!(
        (
            stored.app_id.as_str(),
            stored.country.as_deref(),
            stored.operator_label.as_deref()
        ),
        (row.app_id, row.country, Some("airtel"))
    );
}

#[test]
fn failures_and_repeated_no_records_collapse_and_recovery_is_shown() {
    let t = |s: i64| ISSUED + s * 1000;
    let no_record = |at| Update {
        answer: Some((at, Answer::NoRecord)),
        ..update(at)
    };
    let mut e = merge(None, "o2", no_record(t(5)));
    e = merge(Some(e), "o2", no_record(t(10)));
    e = merge(Some(e), "o2", no_record(t(20)));
    e = merge(
        Some(e),
        "o2",
        Update {
            failure: Some((t(30), "timeout".into())),
            answer: None,
            ..update(t(30))
        },
    );
    e = merge(
        Some(e),
        "o2",
        Update {
            quiet_queries: 4,
            quiet_errors: 4,
            ..no_record(t(90))
        },
    );
    assert_eq!(
        kinds(&e),
        [
            "issued",
            "NoRecord 0",
            "quiet 2/0",
            "failed",
            "quiet 4/4",
            "NoRecord 0"
        ],
        "{:#?}",
        e.timeline
    );
    // A missing entry (evicted, or an order older than the journal) starts anew.
    let fresh = merge(
        None,
        "o3",
        Update {
            finalized: Some((t(200), Outcome::NotFound, "grace".into())),
            answer: None,
            ..update(t(200))
        },
    );
    assert_eq!(kinds(&fresh), ["issued", "final not_found"]);
    assert_eq!(fresh.rule.as_deref(), Some("grace"));
}

#[test]
fn the_timeline_is_capped_keeping_the_first_line_and_the_latest() {
    let mut e = new_entry("o4", "app", ISSUED);
    for i in 0..200 {
        e = merge(
            Some(e),
            "o4",
            Update {
                failure: Some((ISSUED + i, format!("e{i}"))),
                answer: None,
                ..update(ISSUED + i)
            },
        );
        e = merge(Some(e), "o4", update(ISSUED + i));
    }
    assert_eq!(e.timeline.len(), MAX_TIMELINE);
    assert_eq!(e.timeline[0].what, EventKind::Issued);
    assert_eq!(e.timeline_dropped as usize, 1 + 400 - MAX_TIMELINE);
    let EventKind::Answered { .. } = &e.timeline[MAX_TIMELINE - 1].what else {
        panic!("{:?}", e.timeline.last());
    };
}

#[test]
fn every_outcome_has_its_own_reason_naming_its_rule() {
    let l = limits();
    let rules: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| decision_rule(*o, None, &l))
        .collect();
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(rules[3].contains("5m"), "{rules:?}");
    assert!(decision_rule(Outcome::NotFound, None, &l).contains("tracking.not_found_grace (2m)"));
    assert!(decision_rule(Outcome::Expired, None, &l).contains("tracking.max_age (30m)"));
}
