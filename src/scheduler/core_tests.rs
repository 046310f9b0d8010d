//! The core driven by hand: every `now` is chosen by the test, every answer is a
//! prepared `Query` standing in for the provider's, and the store is a real redb file.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;

use super::super::tests::config;
use super::*;
use crate::api::wire::decode_reply;

/// Issue time of the test orders; the default limits apply (first poll after 5 s,
/// window 300 s, settle 120 s, not-found grace 120 s, max age 1,800 s, interval ≤ 60 s).
const T0: i64 = 1_800_000_000_000;
const S: i64 = 1000;

struct Harness {
    core: Core,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    harness_in(dir)
}

/// A core over the store in `dir` (a "restart" when the store already has orders).
fn harness_in(dir: tempfile::TempDir) -> Harness {
    let cfg = config(dir.path());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let status = Arc::new(Status::new());
    let outputs = Outputs {
        store: store.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
    };
    let core = Core::new(&cfg, outputs);
    Harness {
        core,
        store,
        metrics,
        status,
        _dir: dir,
    }
}

fn query(outcome: QueryOutcome, label: &str, answered: bool) -> Query {
    Query {
        outcome,
        status_label: label.into(),
        answered,
        duration: Duration::from_millis(20),
    }
}

/// A record with `matched` and one SMS in `sms_status` (-1 sending, 0 delivered, 1 failed).
fn record(matched: i64, sms_status: i64) -> Query {
    let body = format!(
        r#"{{"status":"0","data":{{"verifications":{{"matched":{matched}}},
        "sms":[{{"status":{sms_status},"submitTm":"2027-01-15T08:00:00+08:00","mcc":404,"mnc":10}}]}}}}"#
    );
    let data = decode_reply(body.as_bytes()).unwrap().data.unwrap();
    query(QueryOutcome::Record(data), "0", true)
}

fn no_record() -> Query {
    query(QueryOutcome::NoRecord, "0", true)
}

fn timeout() -> Query {
    let outcome = QueryOutcome::Transient {
        retry_after: None,
        detail: "timeout: deadline".into(),
    };
    query(outcome, "timeout", false)
}

fn rejected() -> Query {
    let outcome = QueryOutcome::Rejected {
        status: -1,
        reason: "bad key".into(),
    };
    query(outcome, "-1", true)
}

impl Harness {
    /// A new core over the same store, as after a restart.
    fn restart(self) -> Harness {
        let Harness {
            core, store, _dir, ..
        } = self;
        drop((core, store));
        harness_in(_dir)
    }

    fn add(&mut self, id: &str, issued_ms: i64) {
        let order = SpoolOrder {
            order_id: id.into(),
            app_id: "app".into(),
            issued_ms,
        };
        self.core.add_from_spool(vec![order], issued_ms);
    }

    /// What the loop does at `now`: hold due orders if paused, then hand out a job.
    fn job(&mut self, now_ms: i64) -> Option<Job> {
        self.core.hold_due(now_ms);
        self.core.next_job(now_ms)
    }

    fn answer(&mut self, job: Job, answer: Option<Query>, now_ms: i64) {
        let mut changes = Changes::default();
        let done = Done {
            order_id: job.order_id,
            slot: job.slot,
            query: answer,
        };
        self.core.on_done(done, now_ms, &mut changes);
        self.core.commit(changes, now_ms);
    }

    /// Polls the due order at `now` with `answer`; returns its next due time.
    fn poll(&mut self, now_ms: i64, answer: Query) -> Option<i64> {
        let job = self.job(now_ms).expect("an order is due");
        self.answer(job, Some(answer), now_ms);
        self.core.queue.peek_due()
    }

    fn finalized(&self, outcome: &str) -> u64 {
        let mut total = 0;
        for family in self.metrics.orders.collect() {
            for m in family.get_metric() {
                if m.get_label()
                    .iter()
                    .any(|l| l.name() == "outcome" && l.value() == outcome)
                {
                    total += m.get_counter().get_value() as u64;
                }
            }
        }
        total
    }

    fn pending_gauge(&self) -> i64 {
        self.metrics
            .orders_pending
            .with_label_values(&["app"])
            .get()
    }

    fn stored(&self, id: &str) -> Option<PendingState> {
        let (pending, _) = self.store.load_pending().unwrap();
        pending
            .into_iter()
            .find(|o| o.order_id == id)
            .map(|o| o.state)
    }
}

#[test]
fn credentials_rejected_pause_polling_and_an_answered_probe_resumes_it() {
    let mut h = harness();
    h.add("a", T0);
    h.add("b", T0);
    assert_eq!(h.poll(T0 + 5 * S, rejected()), Some(T0 + 5 * S), "b is due");
    assert_eq!(h.metrics.api_up.get(), 0);
    assert!(!h.status.api_up.load(Ordering::Relaxed));
    // Paused: due orders are not sent, they move on (and keep their deadlines).
    assert!(h.job(T0 + 6 * S).is_none());
    assert!(h.job(T0 + 34 * S).is_none());
    // Woken for the probe at 35 s, before the next due order (39 s).
    assert_eq!(h.core.next_wake(T0 + 34_500), (false, 500));
    // From the probe time on, the next due order goes out as the probe, and only it.
    let probe = h.job(T0 + 39 * S).expect("the probe");
    assert!(probe.probe);
    assert!(h.job(T0 + 45 * S).is_none(), "one probe at a time");
    h.answer(probe, Some(no_record()), T0 + 45 * S);
    assert_eq!(h.metrics.api_up.get(), 1);
    assert_eq!(h.status.api_problem(), "");
    let next = h.job(T0 + 50 * S).expect("polling resumed");
    assert!(!next.probe);
    assert_eq!(h.core.pending(), 2, "nothing was lost while paused");
}

#[test]
fn a_probe_that_gets_no_answer_probes_again_30_s_later() {
    let mut h = harness();
    h.add("a", T0);
    h.poll(T0 + 5 * S, rejected());
    let probe = h.job(T0 + 35 * S).expect("the probe");
    assert!(probe.probe);
    h.answer(probe, Some(timeout()), T0 + 36 * S);
    assert!(h.job(T0 + 65 * S).is_none(), "not before 30 s");
    let again = h.job(T0 + 70 * S).expect("probing again");
    assert!(again.probe);
}

#[test]
fn draining_records_answers_but_finalizes_nothing() {
    let mut h = harness();
    h.add("a", T0);
    let job = h.job(T0 + 5 * S).unwrap();
    h.core.begin_drain();
    // Verified and delivered: final, were it not for the shutdown.
    h.answer(job, Some(record(0, 0)), T0 + 6 * S);
    assert_eq!(h.finalized("verified"), 0);
    assert_eq!(h.core.pending(), 1);
    assert_eq!(h.pending_gauge(), 1);
    let stored = h.stored("a").expect("still pending in the store");
    assert_eq!(stored.outcome, Some(Outcome::Verified));
    assert_eq!(stored.decided_ms, Some(T0 + 6 * S));
    // The next run finalizes it at its first poll, whatever the API says then.
    let mut next = h.restart();
    let (pending, _) = next.store.load_pending().unwrap();
    assert_eq!(next.core.load(pending, T0 + 60 * S), 1);
    let job = next.job(T0 + 60 * S).unwrap();
    next.answer(job, Some(timeout()), T0 + 61 * S);
    assert_eq!(next.finalized("verified"), 0, "settling: not yet");
    let job = next.job(T0 + 126 * S).unwrap();
    next.answer(job, None, T0 + 126 * S);
    assert_eq!(
        next.finalized("verified"),
        0,
        "settle deadline without an answer: it waits for one"
    );
    let due = next.core.queue.peek_due().unwrap();
    assert_eq!(next.poll(due, record(0, -1)), None);
    assert_eq!(
        next.finalized("verified"),
        1,
        "the first answer after the settle deadline"
    );
}

#[test]
fn failed_queries_back_off_exponentially_with_jitter() {
    let mut h = harness();
    h.add("a", T0);
    let mut now = T0 + 5 * S;
    for base in [5 * S, 10 * S, 20 * S, 40 * S, 60 * S, 60 * S] {
        let due = h.poll(now, timeout()).unwrap();
        let gap = due - now;
        assert!(
            gap >= base * 8 / 10 && gap <= base * 12 / 10,
            "gap {gap} ms, expected {base} ms ± 20 %"
        );
        now = due;
    }
    // One answer ends the error streak.
    let due = h.poll(now, record(1, -1)).unwrap();
    assert_eq!(due - now, 5 * S);
}

#[test]
fn answers_back_off_and_the_backoff_survives_a_restart() {
    let mut h = harness();
    h.add("a", T0);
    let mut now = T0 + 5 * S;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let due = h.poll(now, record(1, -1)).unwrap();
        gaps.push((due - now) / S);
        now = due;
    }
    assert_eq!(gaps, [5, 10, 20, 40, 60, 60]);
    let stored = h.stored("a").unwrap();
    assert_eq!(stored.polls, 5, "written when the interval last grew");
    assert_eq!(stored.answers, 5);
    let mut next = h.restart();
    let (pending, _) = next.store.load_pending().unwrap();
    next.core.load(pending, now);
    let due = next.poll(now, record(1, -1)).unwrap();
    assert_eq!(due - now, 60 * S, "the backoff goes on where it was");
}

#[test]
fn a_longer_poll_interval_alone_is_saved_but_adds_no_journal_line() {
    let mut h = harness();
    h.add("a", T0);
    let timeline = |h: &Harness| h.store.journal_get("a").unwrap().unwrap().timeline;
    let mut now = T0 + 5 * S;
    now = h.poll(now, record(-1, -1)).unwrap();
    let first = timeline(&h).len();
    // The same record four times: each answer lengthens the interval (10, 20, 40, 60 s)
    // and is saved for the backoff, but the order's timeline has nothing new.
    for _ in 0..4 {
        now = h.poll(now, record(-1, -1)).unwrap();
    }
    assert_eq!(h.stored("a").unwrap().answers, 5, "the backoff is saved");
    assert_eq!(timeline(&h).len(), first, "no line for the backoff alone");
    // The next news writes its line, after one line for the four quiet queries.
    h.poll(now, record(-1, 0));
    let lines = timeline(&h);
    assert_eq!(lines.len(), first + 2, "{lines:?}");
    assert!(
        matches!(
            lines[first].what,
            journal::EventKind::Quiet {
                queries: 4,
                errors: 0
            }
        ),
        "{lines:?}"
    );
}

#[test]
fn a_poll_lands_on_the_window_close() {
    let mut h = harness();
    h.add("a", T0);
    // The SMS failed, nothing verified: undecided until the window closes at 300 s.
    let mut now = T0 + 5 * S;
    let mut due = h.poll(now, record(-1, 1)).unwrap();
    while due < T0 + 300 * S {
        now = due;
        due = h.poll(now, record(-1, 1)).unwrap();
        assert_eq!(h.finalized("undelivered"), 0);
    }
    assert_eq!(due, T0 + 300 * S);
    assert_eq!(h.poll(due, record(-1, 1)), None);
    assert_eq!(h.finalized("undelivered"), 1);
    assert_eq!(h.pending_gauge(), 0);
    assert_eq!(h.stored("a"), None, "finalized in the store too");
}

/// The API rejecting us is no answer either: the settle deadline passes, the order
/// waits for the probe to be answered and then settles on its own next answer.
#[test]
fn the_settle_deadline_waits_for_an_answer_while_the_api_rejects_us() {
    let mut h = harness();
    h.add("a", T0);
    h.add("b", T0 + 95 * S);
    // Verified at 5 s, the SMS still sending: wait for it, at most 120 s.
    for at in [5, 10, 20, 40, 80] {
        h.poll(T0 + at * S, record(0, -1));
    }
    assert_eq!(
        h.core.queue.get("a").unwrap().decided_ms(),
        Some(T0 + 5 * S)
    );
    // b's first poll finds our credentials rejected: paused until the probe at 130 s.
    let b = h.job(T0 + 100 * S).unwrap();
    assert_eq!(&*b.order_id, "b");
    h.answer(b, Some(rejected()), T0 + 100 * S);
    for at in [110, 120, 124] {
        h.core.hold_due(T0 + at * S);
    }
    assert_eq!(h.finalized("verified"), 0, "not before the deadline");
    assert_eq!(h.core.queue.peek_due(), Some(T0 + 125 * S));
    h.core.hold_due(T0 + 125 * S);
    assert_eq!(
        h.finalized("verified"),
        0,
        "no answer at 5 s + 120 s: waiting"
    );
    assert!(h.stored("a").is_some());
    // The probe (b, due first) is answered: polling resumes, a is polled and settles.
    let probe = h.job(T0 + 130 * S).expect("the probe");
    assert!(probe.probe && &*probe.order_id == "b");
    h.answer(probe, Some(no_record()), T0 + 130 * S);
    let now = T0 + 190 * S;
    while let Some(job) = h.job(now) {
        let answer = if &*job.order_id == "a" {
            record(0, -1)
        } else {
            no_record()
        };
        h.answer(job, Some(answer), now);
    }
    assert_eq!(h.finalized("verified"), 1, "settled on the answer after");
    assert_eq!(h.stored("a"), None);
}

#[test]
fn no_record_until_the_grace_ends_is_not_found() {
    let mut h = harness();
    h.add("a", T0);
    let mut now = T0 + 5 * S;
    let mut due = h.poll(now, no_record()).unwrap();
    while due < T0 + 125 * S {
        now = due;
        due = h.poll(now, no_record()).unwrap();
    }
    assert_eq!(
        due,
        T0 + 125 * S,
        "the grace ends 120 s after the first 'no record'"
    );
    assert_eq!(h.finalized("not_found"), 0);
    assert_eq!(h.stored("a").unwrap().first_absent_ms, Some(T0 + 5 * S));
    assert_eq!(h.poll(due, no_record()), None);
    assert_eq!(h.finalized("not_found"), 1);
}

#[test]
fn an_order_never_decided_expires_at_max_age() {
    let mut h = harness();
    h.add("a", T0);
    let mut now = T0 + 5 * S;
    let mut due = h.poll(now, record(1, -1)).unwrap();
    let mut late_once = true;
    while due < T0 + 1_800 * S {
        now = due;
        if late_once && now > T0 + 300 * S {
            // One poll 7 s late (a busy worker), so that the 60 s steps no longer
            // happen to meet the max age on their own.
            now += 7 * S;
            late_once = false;
        }
        due = h.poll(now, record(1, -1)).unwrap();
    }
    assert_eq!(due, T0 + 1_800 * S);
    assert_eq!(h.finalized("expired"), 0);
    assert_eq!(h.poll(due, timeout()), None);
    assert_eq!(h.finalized("expired"), 1);
}

#[test]
fn a_job_handed_back_unsent_keeps_the_order_and_is_not_a_poll() {
    let mut h = harness();
    h.add("a", T0);
    let job = h.job(T0 + 5 * S).unwrap();
    assert_eq!(h.core.queue.peek_due(), None, "in flight");
    h.answer(job, None, T0 + 5 * S);
    assert_eq!(h.core.pending(), 1);
    assert_eq!(h.core.queue.peek_due(), Some(T0 + 10 * S));
    assert_eq!(h.core.queue.get("a").unwrap().polls, 0);
    let requests: u64 = h.metrics.api_requests.with_label_values(&["0"]).get();
    assert_eq!(requests, 0);
}

impl Harness {
    /// Attempts of finalized orders with `result` (`otp_delivery_attempts_total`).
    fn attempts(&self, result: &str) -> u64 {
        let mut total = 0;
        for family in self.metrics.attempts.collect() {
            for m in family.get_metric() {
                if m.get_label()
                    .iter()
                    .any(|l| l.name() == "result" && l.value() == result)
                {
                    total += m.get_counter().get_value() as u64;
                }
            }
        }
        total
    }

    /// Polls with `answer` at every due time until the order is due at or after `at`.
    fn poll_until(&mut self, at: i64, answer: impl Fn() -> Query) -> i64 {
        let mut due = self.poll(T0 + 5 * S, answer()).unwrap();
        while due < at {
            due = self.poll(due, answer()).unwrap();
        }
        due
    }
}

#[test]
fn a_failed_query_at_the_settle_deadline_does_not_finalize_the_next_answer_does() {
    let mut h = harness();
    h.add("a", T0);
    // Verified at 5 s with the SMS still sending: settle deadline at 125 s.
    let due = h.poll_until(T0 + 125 * S, || record(0, -1));
    assert_eq!(due, T0 + 125 * S, "a poll lands on the settle deadline");
    let retry = h
        .poll(due, timeout())
        .expect("still pending after a timeout");
    assert_eq!(
        h.finalized("verified"),
        0,
        "not finalized on a failed query"
    );
    assert!(
        retry > due && retry <= due + 6 * S,
        "retried with backoff: {retry}"
    );
    assert!(h.stored("a").is_some(), "still pending in the store");
    // The provider has the SMS's result by now: the next answer decides with it.
    assert_eq!(h.poll(retry, record(0, 0)), None);
    assert_eq!(h.finalized("verified"), 1);
    assert_eq!((h.attempts("delivered"), h.attempts("pending")), (1, 0));
}

#[test]
fn a_failed_query_at_the_window_close_decides_nothing() {
    let mut h = harness();
    h.add("a", T0);
    // Nothing verified, the SMS sending: undecided until the window closes at 300 s.
    let due = h.poll_until(T0 + 300 * S, || record(-1, -1));
    assert_eq!(due, T0 + 300 * S);
    let retry = h
        .poll(due, timeout())
        .expect("still pending after a timeout");
    assert_eq!(h.core.queue.get("a").unwrap().outcome(), None);
    assert_eq!(h.poll(retry, record(-1, 0)), None);
    assert_eq!(h.finalized("unverified"), 1, "decided by the answer after");
    assert_eq!(h.attempts("delivered"), 1);
}

#[test]
fn a_failed_query_at_the_grace_end_is_not_not_found() {
    let mut h = harness();
    h.add("a", T0);
    let due = h.poll_until(T0 + 125 * S, no_record);
    assert_eq!(
        due,
        T0 + 125 * S,
        "the grace ends 120 s after the first 'no record'"
    );
    let retry = h
        .poll(due, timeout())
        .expect("still pending after a timeout");
    assert_eq!(h.finalized("not_found"), 0);
    // The record shows up at the next answer: tracked on, never not_found.
    assert!(h.poll(retry, record(-1, -1)).is_some());
    assert_eq!(h.finalized("not_found"), 0);
    assert_eq!(h.core.pending(), 1);
}

/// The sum of a metric family's samples in the exposition.
fn total(metrics: &Metrics, family: &str) -> f64 {
    let text = String::from_utf8(metrics.render()).unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each early fact is counted once: not again on the next poll, not again after a
/// restart (the store remembers it), and not while draining (the next run counts it).
#[test]
fn early_signals_are_counted_once_across_polls_restarts_and_drains() {
    let mut h = harness();
    h.add("a", T0);
    h.poll(T0 + 5 * S, record(-1, 1));
    let counts = |h: &Harness| {
        [
            "otp_orders_sent_total",
            "otp_attempt_results_total",
            "otp_verifications_total",
        ]
        .map(|f| total(&h.metrics, f))
    };
    assert_eq!(counts(&h), [1.0, 1.0, 0.0]);
    let text = String::from_utf8(h.metrics.render()).unwrap();
    assert!(
        text.contains(r#"otp_attempt_results_total{app_id="app",channel="sms",country="IN",mcc="404",result="failed"} 1"#),
        "{text}"
    );
    let due = h.core.queue.peek_due().unwrap();
    h.poll(due, record(-1, 1));
    assert_eq!(counts(&h), [1.0, 1.0, 0.0], "nothing new");
    assert!(h.stored("a").unwrap().counted != Counted::default());

    // A new process counts from zero: a fact counted again would show as 1.
    let mut h = h.restart();
    h.core.load(h.store.load_pending().unwrap().0, T0 + 20 * S);
    let due = h.core.queue.peek_due().unwrap();
    h.poll(due, record(-1, 1));
    assert_eq!(
        counts(&h),
        [0.0, 0.0, 0.0],
        "already counted before the restart"
    );

    // Verified while draining: not counted now, but by the next run.
    h.core.begin_drain();
    let due = h.core.queue.peek_due().unwrap();
    h.poll(due, record(0, 1));
    assert_eq!(counts(&h), [0.0, 0.0, 0.0]);
    let mut h = h.restart();
    h.core.load(h.store.load_pending().unwrap().0, T0 + 60 * S);
    let due = h.core.queue.peek_due().unwrap();
    h.poll(due, record(0, 1));
    assert_eq!(counts(&h), [0.0, 0.0, 1.0]);
    assert_eq!(h.finalized("verified"), 1);
}
