//! The whole loop with real workers and a real store, a hand-moved clock, and a
//! scripted stand-in for the provider that answers when the test says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::*;
use crate::api::wire::decode_reply;
use crate::api::{Query, QueryOutcome};
use crate::clock::ManualClock;
use crate::store::PendingState;

const T0: i64 = 1_800_000_000_000;

/// A minimal configuration (default limits) with one app, `app`.
pub(super) fn config(dir: &std::path::Path) -> Config {
    let yaml = format!(
        "state_dir: {}\napi:\n  base_url: http://127.0.0.1:1/otp\n  api_key: k\n  api_secret: s\napps:\n  - id: app\n",
        dir.display()
    );
    Config::from_yaml(&yaml, std::path::Path::new("test"), &|_| None).unwrap()
}

/// Hands every query to the test, which answers it (or drops it: a query that hangs).
struct Scripted {
    calls: mpsc::UnboundedSender<(String, oneshot::Sender<Query>)>,
}

impl RecordSource for Scripted {
    async fn query(&self, _app_id: &str, order_id: &str) -> Query {
        let (answer, answered) = oneshot::channel();
        let _ = self.calls.send((order_id.to_string(), answer));
        match answered.await {
            Ok(query) => query,
            Err(_) => std::future::pending().await,
        }
    }
}

fn verified_and_delivered() -> Query {
    let body = r#"{"status":"0","data":{"verifications":{"matched":0},
        "sms":[{"status":0,"submitTm":"2027-01-15T08:00:00+08:00"}]}}"#;
    Query {
        outcome: QueryOutcome::Record(decode_reply(body.as_bytes()).unwrap().data.unwrap()),
        status_label: "0".into(),
        answered: true,
        duration: Duration::from_millis(5),
    }
}

fn order(id: &str) -> SpoolOrder {
    SpoolOrder {
        order_id: id.into(),
        app_id: "app".into(),
        issued_ms: T0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_queries_in_flight_finish_and_finalizes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let status = Arc::new(Status::new());
    let clock = ManualClock::at(T0 + 10_000);
    let mut scheduler = Scheduler::with_clock(&cfg, store.clone(), metrics.clone(), status, clock);
    // Admitted as the spool would, so that the store knows them.
    let admitted: Vec<(&str, PendingState)> = ["a", "b"]
        .iter()
        .map(|id| (*id, PendingState::new("app".into(), T0)))
        .collect();
    store.admit(&admitted, T0).unwrap();
    scheduler.add_from_spool(vec![order("a"), order("b")]);

    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let source = Arc::new(Scripted { calls: calls_tx });
    let (_intake_tx, intake) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let drain = Duration::from_millis(300);
    let run = tokio::spawn(scheduler.run(source, 2, 1000, intake, shutdown, drain));

    // Both orders are due: both queries go out and wait for their answers.
    let mut in_flight = Vec::new();
    for _ in 0..2 {
        in_flight.push(calls.recv().await.unwrap());
    }
    in_flight.sort_by(|x, y| x.0.cmp(&y.0));
    let started = Instant::now();
    stop.send(true).unwrap();
    let (b, b_answer) = in_flight.pop().unwrap();
    let (a, a_answer) = in_flight.pop().unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
    // a is answered after the stop; b never is.
    a_answer.send(verified_and_delivered()).unwrap();
    drop(b_answer);
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the scheduler stops within its drain time")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= drain, "it waited for b");

    let orders = |outcome: &str| {
        metrics
            .orders
            .with_label_values(&["app", "sms", "unknown", outcome])
            .get()
    };
    assert_eq!(orders("verified"), 0, "nothing counted while stopping");
    assert_eq!(metrics.api_requests.with_label_values(&["0"]).get(), 1);
    assert_eq!(metrics.orders_pending.with_label_values(&["app"]).get(), 2);
    let (mut pending, _) = store.load_pending().unwrap();
    pending.sort_by(|x, y| x.order_id.cmp(&y.order_id));
    assert_eq!(pending.len(), 2, "both stay pending for the next run");
    assert_eq!(
        pending[0].state.outcome,
        Some(crate::outcome::Outcome::Verified)
    );
    assert_eq!(pending[0].state.decided_ms, Some(T0 + 10_000));
    assert_eq!(pending[1].state.outcome, None);
    assert!(calls.try_recv().is_err(), "no query after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_polls_when_the_clock_says_an_order_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let clock = ManualClock::at(T0);
    let scheduler = Scheduler::with_clock(
        &cfg,
        store,
        metrics.clone(),
        Arc::new(Status::new()),
        clock.clone(),
    );
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let (intake_tx, intake) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(scheduler.run(
        Arc::new(Scripted { calls: calls_tx }),
        1,
        1000,
        intake,
        shutdown,
        Duration::from_millis(100),
    ));
    intake_tx.send(vec![order("a")]).unwrap();
    // Due at T0 + 5 s: nothing goes out while the clock stands before that.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(calls.try_recv().is_err(), "polled before its time");
    clock.set(T0 + 5_000);
    let (id, answer) = tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("polled once due")
        .unwrap();
    assert_eq!(id, "a");
    answer.send(verified_and_delivered()).unwrap();
    let verified = || {
        metrics
            .orders
            .with_label_values(&["app", "sms", "unknown", "verified"])
            .get()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while verified() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(verified(), 1);
    assert_eq!(metrics.orders_pending.with_label_values(&["app"]).get(), 0);
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}

/// A provider stand-in whose answer makes the worker panic (as a bug in decoding
/// would): the worker is gone with its job.
struct Panicking;

impl RecordSource for Panicking {
    async fn query(&self, _app_id: &str, order_id: &str) -> Query {
        panic!("test fault: worker panics on {order_id}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_stops_the_scheduler_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let scheduler = Scheduler::with_clock(
        &cfg,
        store,
        metrics,
        Arc::new(Status::new()),
        ManualClock::at(T0 + 10_000),
    );
    let (intake_tx, intake) = mpsc::unbounded_channel();
    let (_stop, shutdown) = watch::channel(false);
    let drain = Duration::from_millis(100);
    let run = tokio::spawn(scheduler.run(Arc::new(Panicking), 2, 1000, intake, shutdown, drain));
    intake_tx.send(vec![order("a")]).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the scheduler stops instead of waiting for the lost job forever")
        .unwrap();
    let Err(SchedulerError::WorkerEnded { how, source }) = ended else {
        panic!("{ended:?}")
    };
    assert_eq!(how, "panicked");
    assert!(source.is_some_and(|e| e.is_panic()));
}
