//! A request budget far below what the orders need: the real binary against the
//! simulator with `api.max_requests_per_second: 2` while order ids arrive at 4 a
//! second for 20 s (80 ids: 64 the simulator sent, 16 it never saw), each wanting 3-4
//! queries (~14 a second in all). Queries go out late, decisive ones first; every
//! order is still finalized with the outcome the simulator's ground truth gives (none
//! starved), and `otp_exporter_poll_delay_seconds` shows the lateness the budget alert
//! fires on (more than half of the queries more than 10 s late).
//!
//! Fails with the due queue's head starts at 0 (decisive polls as late as the rest)
//! and with the rate limiter back in the workers (jobs handed out long before they
//! can go out: the histogram no longer shows the lateness).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

const PREFIXES: &[&str] = &["91", "62", "55", "234", "63", "1", "44", "52", "84", "86"];
/// Time scale 0.05: the simulator's 5 min validity is 15 s.
const SIM_TIME_SCALE: &str = "0.05";
/// Ids arriving per second, and for how long; every fifth id is one the provider
/// never saw (`not_found`).
const IDS_PER_SECOND: usize = 4;
const SECONDS: usize = 20;
const BUDGET_PER_SECOND: u32 = 2;

/// `otp_exporter_poll_delay_seconds` of one purpose: (count, sum, count at most 10 s).
fn delay(m: &Metrics, purpose: &str) -> (f64, f64, f64) {
    let filter = [("purpose", purpose)];
    (
        m.sum("otp_exporter_poll_delay_seconds_count", &filter),
        m.sum("otp_exporter_poll_delay_seconds_sum", &filter),
        m.sum(
            "otp_exporter_poll_delay_seconds_bucket",
            &[("purpose", purpose), ("le", "10")],
        ),
    )
}

#[test]
fn a_short_request_budget_serves_decisive_polls_first_and_starves_no_order() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "11", "--time-scale", SIM_TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    // The simulator's times at scale 0.05 (window = validity, settle >= 0.3 x window).
    // Polls 3 then 6 s apart: an order is polled at +3 s (expected), then routinely,
    // at its window close or settle deadline when that comes first (decisive); a
    // ghost at +3 s, +6 s and at its not-found grace end (decisive).
    edit_config(
        &config,
        &[
            (
                "max_requests_per_second: 400",
                &format!("max_requests_per_second: {BUDGET_PER_SECOND}"),
            ),
            ("verification_window: 6s", "verification_window: 15s"),
            ("settle_timeout: 2400ms", "settle_timeout: 6s"),
            ("not_found_grace: 2400ms", "not_found_grace: 6s"),
            ("max_age: 15s", "max_age: 45s"),
            ("first_delay: 200ms", "first_delay: 3s"),
            ("max_interval: 1s", "max_interval: 6s"),
        ],
    );
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");

    let started = Instant::now();
    let (mut sent, mut ghosts) = (0usize, 0usize);
    for second in 0..SECONDS {
        let mut ids = String::new();
        for k in 0..IDS_PER_SECOND {
            let i = second * IDS_PER_SECOND + k;
            if i % 5 == 4 {
                ids.push_str(&format!("ghost-{i:04}\n"));
                ghosts += 1;
                continue;
            }
            let prefix = PREFIXES[i % PREFIXES.len()];
            let to = format!("{prefix}{:09}", 700_000_000 + i * 7919 % 99_999_999);
            let order_id = format!("budget-{i:04}");
            sim.send("app-a", &to, &order_id);
            ids.push_str(&order_id);
            ids.push('\n');
            sent += 1;
        }
        drop_spool_file(&exporter.spool(), &format!("second-{second:03}"), &ids);
        let next = Duration::from_secs(second as u64 + 1);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }

    let expected = (sent + ghosts) as f64;
    let m = wait_for(Duration::from_secs(240), || {
        let m = exporter.metrics();
        (m.sum("otp_orders_total", &[]) >= expected
            && m.sum("otp_exporter_orders_pending", &[]) == 0.0)
            .then_some(m)
    })
    .unwrap_or_else(|| {
        let m = exporter.metrics();
        panic!(
            "orders did not all finalize: {} of {expected}\n{}\n{}",
            m.sum("otp_orders_total", &[]),
            m.list("otp_exporter_poll_delay_seconds_count"),
            exporter.proc.log()
        )
    });

    // None starved: every outcome is the one the ground truth gives (an order whose
    // decisive moment never got a query would end `expired` at max_age instead).
    let mut want: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for o in sim.truth().orders {
        let key = [&*o.app_id, &*o.channel, &*o.country, &*o.outcome].map(str::to_string);
        *want.entry(key.to_vec()).or_insert(0.0) += 1.0;
    }
    let not_found = ["app-a", "none", "unknown", "not_found"].map(str::to_string);
    *want.entry(not_found.to_vec()).or_insert(0.0) += ghosts as f64;
    assert_eq!(
        m.by(
            "otp_orders_total",
            &["app_id", "channel", "country", "outcome"]
        ),
        want
    );

    let (decisive, expected_, routine) = (
        delay(&m, "decisive"),
        delay(&m, "expected"),
        delay(&m, "routine"),
    );
    let queries = m.sum("otp_exporter_api_requests_total", &[]);
    let observed = decisive.0 + expected_.0 + routine.0;
    let report = format!(
        "{queries} queries; (count, sum s, count <= 10 s): decisive {decisive:?}, expected {expected_:?}, routine {routine:?}"
    );
    eprintln!("{report}");
    // Every query sent was planned and its lateness recorded.
    assert!(observed >= queries, "{report}");
    assert!(
        decisive.0 >= 3.0 && routine.0 >= 5.0,
        "the run has both kinds: {report}"
    );
    // Decisive polls first: on average far less late than routine ones.
    let mean = |(count, sum, _): (f64, f64, f64)| sum / count;
    assert!(
        mean(decisive) * 2.0 < mean(routine),
        "decisive polls are served first: {report}"
    );
    // The budget alert's condition ("more than half of the queries went out more than
    // 10 s late"), in real seconds as the alert sees them.
    let late = observed - (decisive.2 + expected_.2 + routine.2);
    assert!(
        late / observed > 0.5,
        "{late} of {observed} queries more than 10 s late: {report}"
    );
}
