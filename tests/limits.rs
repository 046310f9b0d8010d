//! `api.max_in_flight` and `api.max_requests_per_second` hold under a backlog, measured
//! by a provider stand-in that records when each query arrives and how many overlap.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use common::stand_in::StandIn;
use common::*;

const LATENCY: Duration = Duration::from_millis(150);

/// What the provider stand-in saw: when each query arrived, how many overlapped.
#[derive(Default)]
struct Counts {
    arrivals: Mutex<Vec<Instant>>,
    current: AtomicUsize,
    max_concurrent: AtomicUsize,
}

/// Answers a record query with "no record" after `LATENCY`, noting what it saw.
async fn answer(req: Request<Incoming>, counts: Arc<Counts>) -> Response<Full<Bytes>> {
    // A query counts once it has fully arrived, body included.
    let _ = req.into_body().collect().await;
    let now = counts.current.fetch_add(1, Ordering::SeqCst) + 1;
    counts.max_concurrent.fetch_max(now, Ordering::SeqCst);
    counts.arrivals.lock().unwrap().push(Instant::now());
    tokio::time::sleep(LATENCY).await;
    counts.current.fetch_sub(1, Ordering::SeqCst);
    let answer = r#"{"status":"0","reason":"success","data":null}"#;
    Response::builder()
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from_static(answer.as_bytes())))
        .unwrap()
}

/// Runs the exporter with a 300-order backlog against a fresh provider for `secs`.
fn run_backlog(max_in_flight: u32, max_rps: u32, secs: u64) -> (Vec<Instant>, usize) {
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    let provider = StandIn::start(move |req| answer(req, shared.clone()));
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &provider.base_url(), "");
    edit_config(
        &config,
        &[
            (
                "max_in_flight: 16",
                &format!("max_in_flight: {max_in_flight}"),
            ),
            (
                "max_requests_per_second: 400",
                &format!("max_requests_per_second: {max_rps}"),
            ),
            ("not_found_grace: 2400ms", "not_found_grace: 60s"),
            ("max_age: 15s", "max_age: 120s"),
        ],
    );
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids: Vec<String> = (0..300).map(|i| format!("limit-{i}")).collect();
    drop_spool_file(&exporter.spool(), "many", &ids.join("\n"));
    std::thread::sleep(Duration::from_secs(secs));
    drop(exporter);
    let arrivals = counts.arrivals.lock().unwrap().clone();
    (arrivals, counts.max_concurrent.load(Ordering::SeqCst))
}

/// The most queries that arrived within any one second.
fn busiest_second(arrivals: &[Instant]) -> usize {
    busiest(arrivals, Duration::from_secs(1))
}

/// Most arrivals within any `window` (half-open).
fn busiest(arrivals: &[Instant], window: Duration) -> usize {
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| t.duration_since(arrivals[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn queries_never_exceed_max_requests_per_second_even_at_a_spike() {
    // Eight connections could carry 53 queries a second: the rate limit is what binds,
    // including in the first second of a 300-order backlog.
    let (arrivals, _) = run_backlog(8, 20, 5);
    assert!(
        arrivals.len() >= 60,
        "a backlog kept the daemon busy: {}",
        arrivals.len()
    );
    // The limiter spaces queries 50 ms apart when they leave; they are timed when they
    // arrive, after the scheduling of two loaded processes, so the 21st of a run can
    // land a few milliseconds inside the first one's second. One more than the limit
    // is that jitter; a burst (two cells at once) or a limiter in the wrong place
    // shows as more, and over two seconds as more than 41.
    let one = busiest_second(&arrivals);
    assert!(
        one <= 21,
        "{one} queries within one second (limit 20, 21 with arrival jitter)"
    );
    let two = busiest(&arrivals, Duration::from_secs(2));
    assert!(
        two <= 41,
        "{two} queries within two seconds (limit 40, 41 with arrival jitter)"
    );
    assert!(one >= 15, "the limit is used, not undershot: {one}");
}

#[test]
fn queries_never_exceed_max_in_flight() {
    // A generous rate: the three connections are what binds.
    let (arrivals, concurrent) = run_backlog(3, 400, 4);
    assert!(arrivals.len() >= 30, "{}", arrivals.len());
    assert_eq!(
        concurrent, 3,
        "in flight at once (limit 3, and the backlog fills it)"
    );
}
