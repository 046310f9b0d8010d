//! The whole loop with real workers and a real store, a hand-moved clock, and a
//! scripted stand-in for the provider that answers when the test says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::*;
use crate::api::wire::decode_reply;
use crate::api::{BalanceOutcome, BalanceQuery, Query, QueryOutcome};
use crate::clock::ManualClock;
use crate::store::PendingState;

const T0: i64 = 1_800_000_000_000;

/// A minimal configuration (default limits) with one app, `app`, and the balance
/// poller off (a test of it turns it on).
pub(super) fn config(dir: &std::path::Path) -> Config {
    config_with(dir, "account:\n  enabled: false\n")
}

fn config_with(dir: &std::path::Path, more: &str) -> Config {
    let yaml = format!(
        "state_dir: {}\napi:\n  base_url: http://127.0.0.1:1/otp\n  api_key: k\n  api_secret: s\napps:\n  - id: app\n{more}",
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
    let pending = || metrics.orders_pending.with_label_values(&["app"]).get();
    // Counted and taken out of the pending gauge by the same commit, one after the
    // other: wait for both.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (verified() == 0 || pending() != 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(verified(), 1);
    assert_eq!(pending(), 0);
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

/// Answers "no record" and notes the runtime each query ran on: whether a
/// current-thread one, and its thread.
#[derive(Default)]
struct NotingRuntime(std::sync::Mutex<Vec<(bool, std::thread::ThreadId)>>);

impl RecordSource for NotingRuntime {
    async fn query(&self, _app_id: &str, _order_id: &str) -> Query {
        let current_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        self.0
            .lock()
            .unwrap()
            .push((current_thread, std::thread::current().id()));
        no_record()
    }
}

/// A scheduler over a fresh store in `dir`, spawned as the daemon spawns it, with the
/// sender of its intake and of its shutdown.
struct Spawned {
    store: Arc<Store>,
    intake: mpsc::UnboundedSender<Vec<SpoolOrder>>,
    stop: watch::Sender<bool>,
    run: tokio::task::JoinHandle<Result<(), SchedulerError>>,
}

impl Spawned {
    fn start(
        dir: &std::path::Path,
        source: Arc<NotingRuntime>,
        before: impl FnOnce(&Store),
    ) -> Spawned {
        let cfg = config(dir);
        let store = Arc::new(Store::open(dir).unwrap());
        before(&store);
        let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
        let clock = ManualClock::at(T0 + 10_000);
        let scheduler =
            Scheduler::with_clock(&cfg, store.clone(), metrics, Arc::new(Status::new()), clock);
        let (intake, intake_rx) = mpsc::unbounded_channel();
        let (stop, shutdown) = watch::channel(false);
        let run = scheduler.spawn(source, 4, 1000, intake_rx, shutdown, Duration::from_secs(1));
        Spawned {
            store,
            intake,
            stop,
            run,
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), self.run)
            .await
            .expect("the scheduler stops when asked");
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_scheduler_queries_on_a_thread_and_runtime_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(NotingRuntime::default());
    let spawned = Spawned::start(dir.path(), source.clone(), |_| {});
    spawned
        .intake
        .send(["a", "b", "c", "d", "e", "f"].map(order).to_vec())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.0.lock().unwrap().len() < 6 {
        assert!(Instant::now() < deadline, "the orders were not queried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spawned.stop().await;
    let queried = source.0.lock().unwrap().clone();
    let test_thread = std::thread::current().id();
    for (current_thread, thread) in &queried {
        assert!(current_thread, "a current-thread runtime");
        assert_eq!(
            *thread, queried[0].1,
            "every query on the scheduler's one thread"
        );
        assert_ne!(*thread, test_thread);
    }
}

/// With nothing staged nor being written, only housekeeping reopens a failed store
/// (so that the spool resumes): on the blocking pool, the loop going on meanwhile.
#[tokio::test]
async fn an_idle_scheduler_reopens_a_failed_store_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let spawned = Spawned::start(dir.path(), Arc::default(), Store::fail_as_a_write_would);
    assert!(!spawned.store.is_healthy());
    // The first reopen is due half a second after the failure, and housekeeping ticks
    // every second: reopened at the second tick. The journal's eviction, whose write
    // would reopen it too, first runs at the fifth.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !spawned.store.is_healthy() {
        assert!(Instant::now() < deadline, "the store was not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    spawned.stop().await;
}

fn no_record() -> Query {
    Query {
        outcome: QueryOutcome::NoRecord,
        status_label: "0".into(),
        answered: true,
        duration: Duration::from_millis(1),
    }
}

/// A scheduler over `dir` with orders `(id, due, purpose)` already in its queue.
fn scheduler_with_polls(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    clock: &ManualClock,
    polls: &[(&str, i64, PollPurpose)],
) -> Scheduler<ManualClock> {
    let store = Arc::new(Store::open(&cfg.state_dir).unwrap());
    let mut scheduler = Scheduler::with_clock(
        cfg,
        store,
        metrics.clone(),
        Arc::new(Status::new()),
        clock.clone(),
    );
    scheduler.add_from_spool(polls.iter().map(|(id, _, _)| order(id)).collect());
    for (id, due, purpose) in polls {
        // Replaces the first poll the order got (that entry goes stale).
        scheduler
            .core
            .queue
            .schedule(&Arc::from(*id), *due, *purpose);
    }
    scheduler
}

/// The next query the loop sends, answered with "no record" (the order is then due
/// again only after its polling interval, which the hand-moved clock never reaches).
async fn next_call(
    calls: &mut mpsc::UnboundedReceiver<(String, oneshot::Sender<Query>)>,
) -> String {
    let (id, answer) = tokio::time::timeout(Duration::from_secs(10), calls.recv())
        .await
        .expect("a query goes out")
        .unwrap();
    let _ = answer.send(no_record());
    id
}

use crate::outcome::PollPurpose::{self, Decisive, Expected, Routine};

/// The budget is short: decisive polls that become due go out before routine polls
/// that were due earlier (within the head start), because the loop picks a job only
/// when a rate-limit cell is there. With the limiter in the workers instead, the
/// routine polls due first were all handed out (one per worker plus one per channel
/// slot) before the decisive ones were due, and went out first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_short_budget_decisive_polls_overtake_routine_ones_already_due() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let x = T0 + 100_000;
    let clock = ManualClock::at(x);
    let routine: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    let decisive = ["d0", "d1", "d2"];
    let mut polls: Vec<(&str, i64, PollPurpose)> = routine
        .iter()
        .map(|id| (id.as_str(), x - 10_000, Routine))
        .collect();
    polls.extend(decisive.iter().map(|id| (*id, x + 2_000, Decisive)));
    let scheduler = scheduler_with_polls(&cfg, &metrics, &clock, &polls);

    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let (_intake_tx, intake) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let per_second = 4;
    let run = tokio::spawn(scheduler.run(
        Arc::new(Scripted { calls: calls_tx }),
        4,
        per_second,
        intake,
        shutdown,
        Duration::from_millis(100),
    ));
    // Only the routine polls are due: one goes out.
    let (first, answer) = tokio::time::timeout(Duration::from_secs(10), calls.recv())
        .await
        .expect("a due order is polled")
        .unwrap();
    let started = Instant::now();
    assert!(first.starts_with('r'), "{first}");
    // Now the decisive polls are due too, while the routine ones still wait for budget.
    clock.set(x + 2_000);
    let _ = answer.send(no_record());
    let mut next = Vec::new();
    for _ in 0..3 {
        next.push(next_call(&mut calls).await);
    }
    let spent = started.elapsed();
    next.sort();
    assert_eq!(next, decisive, "the decisive polls go out first");
    let after = next_call(&mut calls).await;
    assert!(after.starts_with('r'), "then the routine ones: {after}");
    // Evenly spaced, no burst: 3 more queries take at least 3 intervals (less a margin
    // for the clock granularity).
    let interval = Duration::from_secs(1) / per_second;
    assert!(
        spent >= interval * 3 - Duration::from_millis(50),
        "{spent:?}"
    );
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}

/// Among due orders: the earliest `due - head start` first, so a routine poll due
/// longer ago than the decisive head start goes before a decisive one (no
/// starvation), and the lateness of each query is recorded under its purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_orders_go_out_by_purpose_within_bounded_head_starts_and_their_lateness_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let x = T0 + 100_000;
    let clock = ManualClock::at(x);
    let polls = [
        ("routine-new", x - 10_000, Routine),
        ("expected", x - 3_000, Expected),
        ("decisive", x - 2_000, Decisive),
        ("routine-old", x - 40_000, Routine),
    ];
    let scheduler = scheduler_with_polls(&cfg, &metrics, &clock, &polls);
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let (_intake_tx, intake) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(scheduler.run(
        Arc::new(Scripted { calls: calls_tx }),
        4,
        10,
        intake,
        shutdown,
        Duration::from_millis(100),
    ));
    let mut order = Vec::new();
    for _ in 0..polls.len() {
        order.push(next_call(&mut calls).await);
    }
    assert_eq!(
        order,
        ["routine-old", "decisive", "expected", "routine-new"],
        "keys: routine-old x-40 s, decisive x-32 s, expected x-18 s, routine-new x-10 s"
    );
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();

    let delay = |purpose: &str| {
        let h = metrics.poll_delay.with_label_values(&[purpose]);
        (h.get_sample_count(), h.get_sample_sum())
    };
    assert_eq!(delay("decisive"), (1, 2.0));
    assert_eq!(delay("expected"), (1, 3.0));
    assert_eq!(delay("routine"), (2, 50.0));
    let text = String::from_utf8(metrics.render()).unwrap();
    for line in [
        r#"otp_exporter_poll_delay_seconds_bucket{purpose="routine",le="10"} 1"#,
        r#"otp_exporter_poll_delay_seconds_bucket{purpose="routine",le="30"} 1"#,
        r#"otp_exporter_poll_delay_seconds_bucket{purpose="routine",le="60"} 2"#,
        r#"otp_exporter_poll_delay_seconds_bucket{purpose="decisive",le="2"} 1"#,
        r#"otp_exporter_poll_delay_seconds_bucket{purpose="decisive",le="1"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[test]
fn every_purpose_has_a_delay_series_from_the_start() {
    let text = String::from_utf8(Metrics::new(&[]).render()).unwrap();
    assert!(text.contains("# HELP otp_exporter_poll_delay_seconds How late each record query went out against the time it was planned for"), "{text}");
    for purpose in PollPurpose::ALL {
        let line = format!(
            "otp_exporter_poll_delay_seconds_count{{purpose=\"{}\"}} 0",
            purpose.as_str()
        );
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
}

/// Hands record and balance queries to the test, which answers them.
struct WithBalance {
    calls: mpsc::UnboundedSender<(String, oneshot::Sender<Query>)>,
    balances: mpsc::UnboundedSender<oneshot::Sender<BalanceQuery>>,
}

impl RecordSource for WithBalance {
    async fn query(&self, app_id: &str, order_id: &str) -> Query {
        Scripted {
            calls: self.calls.clone(),
        }
        .query(app_id, order_id)
        .await
    }

    async fn balance(&self) -> BalanceQuery {
        let (answer, answered) = oneshot::channel();
        let _ = self.balances.send(answer);
        match answered.await {
            Ok(query) => query,
            Err(_) => std::future::pending().await,
        }
    }
}

async fn next_balance(
    balances: &mut mpsc::UnboundedReceiver<oneshot::Sender<BalanceQuery>>,
) -> oneshot::Sender<BalanceQuery> {
    tokio::time::timeout(Duration::from_secs(5), balances.recv())
        .await
        .expect("a balance query")
        .unwrap()
}

fn balance_query(outcome: BalanceOutcome, status_label: &str) -> BalanceQuery {
    BalanceQuery {
        outcome,
        status_label: status_label.into(),
        answered: true,
        duration: Duration::from_millis(5),
    }
}

/// The balance poller asks at once and then every interval, through the loop; a -1
/// pauses record polling as a record query's would, and a good balance answer resumes
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_balance_query_pauses_polling_until_an_answer_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), "account:\n  balance_interval: 1s\n");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let status = Arc::new(Status::new());
    let clock = ManualClock::at(T0);
    let scheduler = Scheduler::with_clock(&cfg, store, metrics.clone(), status, clock.clone());
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let (balances_tx, mut balances) = mpsc::unbounded_channel();
    let source = Arc::new(WithBalance {
        calls: calls_tx,
        balances: balances_tx,
    });
    let (intake_tx, intake) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(scheduler.run(
        source,
        2,
        1000,
        intake,
        shutdown,
        Duration::from_millis(100),
    ));
    let started = Instant::now();
    let rejected = BalanceOutcome::Failed(QueryOutcome::Rejected {
        status: -1,
        reason: "auth".into(),
    });
    next_balance(&mut balances)
        .await
        .send(balance_query(rejected, "-1"))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the first goes at once"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.api_up.get() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        metrics.api_up.get(),
        0,
        "-1 on the balance sets api_up to 0"
    );
    // An order falls due while paused: no record query goes out.
    intake_tx.send(vec![order("a")]).unwrap();
    clock.set(T0 + 5_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(calls.try_recv().is_err(), "polling is paused");
    // The retry (after min(interval, 30 s) = 1 s) is answered: polling resumes.
    let good = BalanceOutcome::Balance([
        crate::api::Amount::Usd(42.5),
        crate::api::Amount::Usd(0.0),
        crate::api::Amount::Usd(10.0),
    ]);
    let retry = next_balance(&mut balances).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before its interval"
    );
    retry.send(balance_query(good, "0")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.api_up.get() != 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Orders held while paused were moved to their next poll: let it come.
    clock.set(T0 + 65_000);
    let (id, _answer) = tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("polling resumed")
        .unwrap();
    assert_eq!(id, "a");
    assert_eq!(metrics.api_up.get(), 1);
    assert_eq!(
        metrics
            .account_balance
            .with_label_values(&["balance"])
            .get(),
        42.5
    );
    assert_eq!(
        metrics
            .account_last_success
            .with_label_values::<&str>(&[])
            .get(),
        (T0 + 5_000) as f64 / 1000.0,
        "the clock when the answer came"
    );
    for status in ["-1", "0"] {
        assert_eq!(
            metrics.balance_requests.with_label_values(&[status]).get(),
            1,
            "{status}"
        );
    }
    assert_eq!(
        metrics.api_requests.with_label_values(&["-1"]).get(),
        0,
        "the record endpoint's series are the record queries'"
    );
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}
