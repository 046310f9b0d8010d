//! The account's balance against the simulator, through the real binary: the balance
//! read and spent by real traffic, -13 "user locked", -1 pausing and resuming polling,
//! and the empty account (sends refused with -10, orders ending `not_found`) paged by
//! Debian's Prometheus with the project's rules before the first order ends
//! `not_found`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::prometheus::{self, Prometheus};
use common::*;
use itnio_sim::AccountSnapshot;

fn account_config(dir: &Path, listen: std::net::SocketAddr, sim: &Sim, more: &str) -> PathBuf {
    exporter_config(
        dir,
        listen,
        &sim.base_url(),
        &format!("account:\n  balance_interval: 1s\n{more}"),
    )
}

/// The simulator (`--seed seed`, the tests' time scale, `sim_args`) and the exporter
/// polling its balance every second.
fn start(tmp: &Path, seed: &str, sim_args: &[&str]) -> (Sim, Exporter) {
    let mut args = vec!["--seed", seed, "--time-scale", TIME_SCALE];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args);
    let addr = free_addr();
    let config = account_config(tmp, addr, &sim, "");
    let exporter = Exporter::start(tmp, &config, addr, "info");
    (sim, exporter)
}

/// Sends `n` OTPs accepted by the simulator and spools their ids in one file.
fn send_and_spool(sim: &Sim, exporter: &Exporter, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i:03}");
            sim.send("app-a", &format!("9198{i:08}"), &id);
            id
        })
        .collect();
    drop_spool_file(&exporter.spool(), prefix, &ids.join("\n"));
    ids
}

fn sim_account(sim: &Sim) -> AccountSnapshot {
    let (status, body) = get(sim.addr, "/sim/account").expect("GET /sim/account");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn set_account(sim: &Sim, json: &str) -> AccountSnapshot {
    let (status, body) = http(
        sim.addr,
        "PUT",
        "/sim/account",
        &[("Content-Type", "application/json")],
        json,
    )
    .expect("PUT /sim/account");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Sends an OTP as an issuing app does; returns the provider's status. The id goes to
/// the spool either way: the app hands every id it issued to the exporter.
fn send(sim: std::net::SocketAddr, order_id: &str, i: usize) -> String {
    send_otp(
        sim,
        0,
        "app-a",
        &format!("9198{:08}", i % 100_000_000),
        order_id,
    )
}

fn gauge(e: &Exporter, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let m = e.metrics();
    m.list(name)
        .lines()
        .any(|l| {
            filter
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .then(|| m.sum(name, filter))
}

#[test]
fn the_balance_is_read_and_what_it_lost_is_the_cost_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, exporter) = start(
        tmp.path(),
        "21",
        &[
            "--balance-usd",
            "50",
            "--gift-usd",
            "2.5",
            "--credit-usd",
            "100",
        ],
    );
    let url = exporter.metrics_url();
    assert_all_eventually(
        &url,
        Duration::from_secs(10),
        &[
            metric("otp_account_balance_usd")
                .label("kind", "balance")
                .value(50.0),
            metric("otp_account_balance_usd")
                .label("kind", "gift")
                .value(2.5),
            metric("otp_account_balance_usd")
                .label("kind", "credit")
                .value(100.0),
            metric("otp_account_locked").value(0.0),
            metric("otp_exporter_balance_requests_total")
                .label("status", "0")
                .at_least(1.0),
        ],
    );
    let read_at = gauge(
        &exporter,
        "otp_account_balance_last_success_timestamp_seconds",
        &[],
    )
    .expect("the last success");
    assert!((read_at - unix_now() as f64).abs() < 30.0, "{read_at}");

    // Real traffic spends the balance; the exporter counts the same money per order.
    send_and_spool(&sim, &exporter, "spend", 40);
    let spent = sim_account(&sim);
    assert_eq!(spent.charged_sends, 40);
    assert!(spent.spent.as_f64() > 0.0, "{spent:?}");
    metric("otp_orders_total")
        .at_least(40.0)
        .assert_eventually(&url, Duration::from_secs(60));
    metric("otp_exporter_orders_pending")
        .value(0.0)
        .assert_eventually(&url, Duration::from_secs(60));
    let counted = exporter.metrics().sum("otp_cost_usd_total", &[]);
    assert!(
        (counted - spent.spent.as_f64()).abs() < 1e-6,
        "the exporter counted {counted} USD, the account lost {}",
        spent.spent
    );
    // The gauges follow the account, kind by kind (balance first).
    let left = spent.balance.as_f64();
    assert!(
        left < 50.0 && (50.0 - left - counted).abs() < 1e-6,
        "{spent:?}"
    );
    metric("otp_account_balance_usd")
        .label("kind", "balance")
        .value(left)
        .assert_eventually(&url, Duration::from_secs(10));
    assert_eq!(
        exporter
            .metrics()
            .sum("otp_exporter_api_requests_total", &[("status", "-13")]),
        0.0
    );
    // The secret and the signature never reach the log or the metrics.
    let text = exporter.metrics_text() + &exporter.proc.log();
    assert!(!text.contains(API_SECRET), "the secret leaked");
}

#[test]
fn a_locked_account_and_refused_credentials_say_so_and_polling_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, exporter) = start(tmp.path(), "22", &[]);
    let url = exporter.metrics_url();
    metric("otp_account_balance_usd")
        .label("kind", "balance")
        .at_least(1.0)
        .assert_eventually(&url, Duration::from_secs(10));

    // -13: locked, logged once; the API still answers, so it stays up.
    sim.set_faults("balance_status: -13\n");
    metric("otp_account_locked")
        .value(1.0)
        .assert_eventually(&url, Duration::from_secs(10));
    assert_eq!(gauge(&exporter, "otp_exporter_api_up", &[]), Some(1.0));
    assert!(
        exporter
            .proc
            .log()
            .contains("the ITNIO account is locked (status -13"),
        "{}",
        exporter.proc.log()
    );
    sim.set_faults("{}\n");
    metric("otp_account_locked")
        .value(0.0)
        .assert_eventually(&url, Duration::from_secs(10));

    // -1 on the balance query: api_up 0 and record polling paused, as for a record query.
    sim.set_faults("balance_status: -1\n");
    metric("otp_exporter_api_up")
        .value(0.0)
        .assert_eventually(&url, Duration::from_secs(10));
    let ids = send_and_spool(&sim, &exporter, "paused", 10);
    metric("otp_exporter_orders_pending")
        .value(10.0)
        .assert_eventually(&url, Duration::from_secs(10));
    let before = exporter
        .metrics()
        .sum("otp_exporter_api_requests_total", &[]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        exporter
            .metrics()
            .sum("otp_exporter_api_requests_total", &[]),
        before,
        "no record query while the credentials are refused"
    );
    assert!(
        exporter
            .proc
            .log()
            .contains("the API rejects our credentials (status -1)"),
        "{}",
        exporter.proc.log()
    );
    // Credentials accepted again: the next balance answer resumes polling, and every
    // order held meanwhile is finalized.
    sim.set_faults("{}\n");
    metric("otp_exporter_api_up")
        .value(1.0)
        .assert_eventually(&url, Duration::from_secs(10));
    assert_all_eventually(
        &url,
        Duration::from_secs(40),
        &[
            metric("otp_exporter_orders_pending").value(0.0),
            metric("otp_orders_total").value(10.0),
        ],
    );
    // Held, not lost: each order ends as the simulator says it must (an SMS that never
    // reports ends `expired` at max_age, 15 s).
    let m = exporter.metrics();
    let truth = sim.truth();
    for outcome in ["verified", "unverified", "expired", "not_found", "failed"] {
        let expected = truth
            .orders
            .iter()
            .filter(|o| ids.contains(&o.order_id) && o.outcome == outcome)
            .count();
        assert_eq!(
            m.sum("otp_orders_total", &[("outcome", outcome)]),
            expected as f64,
            "{outcome}: {}",
            m.list("otp_orders_total")
        );
    }
    for status in ["-13", "-1", "0"] {
        assert!(
            m.sum("otp_exporter_balance_requests_total", &[("status", status)]) >= 1.0,
            "{status}: {}",
            m.list("otp_exporter_balance_requests_total")
        );
    }
}

/// The balance query shares the clock correction: the provider's clock is 10 minutes
/// ahead, the first balance query meets the -16 and corrects the clock, and the record
/// queries after it never do.
#[test]
fn a_minus_16_to_the_balance_query_corrects_the_clock_of_record_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut sim, exporter) = start(tmp.path(), "24", &["--clock-offset", "+10m"]);
    sim.clock_offset_secs = 600;
    let url = exporter.metrics_url();
    assert_all_eventually(
        &url,
        Duration::from_secs(10),
        &[
            metric("otp_exporter_balance_requests_total")
                .label("status", "-16")
                .value(1.0),
            metric("otp_account_balance_usd")
                .label("kind", "balance")
                .at_least(1.0),
        ],
    );
    send_and_spool(&sim, &exporter, "skew", 10);
    let m = metric("otp_orders_total")
        .value(10.0)
        .assert_eventually(&url, Duration::from_secs(60));
    assert_eq!(
        m.sum("otp_exporter_api_requests_total", &[("status", "-16")]),
        0.0
    );
    assert_eq!(m.sum("otp_orders_total", &[("outcome", "not_found")]), 0.0);
}

/// When the money runs out, sends fail with -10 and those orders end `not_found` a
/// little later, in every country at once. The time-to-empty page must come first.
#[test]
fn the_empty_account_pages_before_the_first_order_ends_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, exporter) = start(tmp.path(), "23", &[]);
    let tsdb = tmp.path().join("tsdb");
    let prom = Prometheus::start(
        tmp.path(),
        &prometheus::config(exporter.addr, "1s", "1s"),
        &tsdb,
    );

    // Traffic as an issuing app sends it: 4 OTPs a second, every id to the spool, the
    // refused ones too.
    let started = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        let spool = exporter.spool();
        let sim_addr = sim.addr;
        std::thread::spawn(move || {
            let mut i = 0;
            let mut refused = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<String> = (0..4)
                    .map(|_| {
                        i += 1;
                        let id = format!("empty-{i:05}");
                        if send(sim_addr, &id, i) == "-10" {
                            refused += 1;
                        }
                        id
                    })
                    .collect();
                drop_spool_file(&spool, &format!("batch-{i:05}"), &batch.join("\n"));
                std::thread::sleep(Duration::from_millis(1000));
            }
            refused
        })
    };

    // Measure what the traffic costs, then leave the account about 100 s of it (the
    // page takes `for: 1m` after the first rate; it came at about 63 s in a run where
    // the first not_found came at 213 s of a 150 s balance).
    std::thread::sleep(Duration::from_secs(10));
    let measured = sim_account(&sim);
    let per_second = measured.spent.as_f64() / started.elapsed().as_secs_f64();
    assert!(per_second > 0.0, "{measured:?}");
    let left = per_second * 100.0;
    let emptied_from = Instant::now();
    let set_at_ms = chrono::Utc::now().timestamp_millis();
    set_account(
        &sim,
        &format!(r#"{{"balance": "{left:.4}", "gift": "0", "credit": "0"}}"#),
    );
    println!(
        "traffic costs {per_second:.4} USD/s; the account is left {left:.4} USD (about 100 s)"
    );

    let mut fired: Option<f64> = None;
    let mut not_found: Option<f64> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while not_found.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let now = emptied_from.elapsed().as_secs_f64();
        if fired.is_none() {
            let alerts = prom.alerts().unwrap_or_default();
            if alerts.iter().any(|a| {
                a["labels"]["alertname"] == "OtpAccountRunsOutWithin3h" && a["state"] == "firing"
            }) {
                fired = Some(now);
                println!("OtpAccountRunsOutWithin3h firing {now:.0} s after the balance was set");
            }
        }
        if exporter
            .metrics()
            .sum("otp_orders_total", &[("outcome", "not_found")])
            > 0.0
        {
            not_found = Some(now);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = sender.join().expect("the sender");
    let account = sim_account(&sim);
    let not_found = not_found.unwrap_or_else(|| {
        panic!(
            "no order ended not_found within 5 minutes; account {account:?}\n{}",
            exporter.proc.log()
        )
    });
    println!("first order ended not_found {not_found:.0} s after the balance was set");
    assert!(refused > 0 && account.refused_sends > 0, "{account:?}");
    let first_refusal = account.first_refusal_unix_ms.expect("a refusal");
    println!(
        "the first send was refused with -10 {:.0} s after the balance was set",
        (first_refusal - set_at_ms) as f64 / 1000.0
    );
    let fired = fired.unwrap_or_else(|| {
        panic!(
            "OtpAccountRunsOutWithin3h never fired; alerts: {:?}; time to empty: {:?}",
            prom.alerts(),
            prom.query("otp:account_time_to_empty:seconds")
        )
    });
    assert!(
        fired < not_found,
        "paged {fired:.0} s after the balance was set, after the first not_found at {not_found:.0} s"
    );
    // The refused ids are the ones that end not_found, after the first refusal.
    assert!(first_refusal > 0);
    assert_eq!(
        exporter
            .metrics()
            .sum("otp_orders_total", &[("outcome", "not_found")])
            .min(1.0),
        1.0
    );
}
