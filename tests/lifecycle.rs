//! Crash safety and API failure modes, with the real binary and simulator.

mod common;

use std::time::Duration;

use common::*;

fn send_orders(sim: &Sim, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i:03}");
            sim.send("app-a", &format!("9198{:08}", i), &id);
            id
        })
        .collect()
}

/// The tests' config, with orders kept long enough to outlive an outage or a restart.
fn config_with_max_age_120s(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    sim: &Sim,
) -> std::path::PathBuf {
    let config = exporter_config(dir, addr, &sim.base_url(), "");
    edit_config(&config, &[("max_age: 15s", "max_age: 120s")]);
    config
}

/// Each outcome's count in `otp_orders_total` equals the simulator's truth.
fn assert_outcomes_match_truth(m: &Metrics, sim: &Sim, outcomes: &[&str]) {
    let truth = sim.truth();
    for outcome in outcomes {
        let want = truth
            .orders
            .iter()
            .filter(|o| o.outcome == *outcome)
            .count() as f64;
        metric("otp_orders_total")
            .label("outcome", outcome)
            .value(want)
            .assert_in(m);
    }
}

/// kill -9 after the spool is consumed and before any order is final; the restarted
/// daemon counts every order exactly once.
#[test]
fn kill_9_loses_nothing_and_counts_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Validity 15 s; the first query only 3 s after issue, so that nothing can be final
    // before the kill (the test checks that too).
    let sim = Sim::start(&["--seed", "11", "--time-scale", "0.05"]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    edit_config(
        &config,
        &[
            ("verification_window: 6s", "verification_window: 15s"),
            ("settle_timeout: 2400ms", "settle_timeout: 6s"),
            ("not_found_grace: 2400ms", "not_found_grace: 6s"),
            ("max_age: 15s", "max_age: 30s"),
            ("first_delay: 200ms", "first_delay: 3s"),
            ("max_interval: 1s", "max_interval: 3s"),
        ],
    );

    let mut first = Exporter::start(tmp.path(), &config, addr, "info");
    let ids = send_orders(&sim, "crash", 60);
    let mut listing = ids.join("\n");
    listing.push_str("\nnever-sent-1\n");
    drop_spool_file(&first.spool(), "orders", &listing);
    let expected = ids.len() as f64 + 1.0;
    wait_for(Duration::from_secs(20), || {
        let m = first.metrics();
        (m.sum("otp_exporter_orders_pending", &[]) == expected
            && !first.spool().join("orders").exists())
        .then_some(())
    })
    .unwrap_or_else(|| panic!("spool not consumed:\n{}", first.proc.log()));
    // Killed before any order is final.
    metric("otp_orders_total")
        .value(0.0)
        .assert_in(&first.metrics());
    first.proc.kill9();

    let second = Exporter::start(tmp.path(), &config, addr, "info");
    assert!(
        second.proc.log().contains("resumed=61") || second.proc.log().contains("resumed\":61"),
        "{}",
        second.proc.log()
    );
    // The orders are finalized after the restart...
    let m = assert_all_eventually(
        &second.metrics_url(),
        Duration::from_secs(120),
        &[
            metric("otp_exporter_orders_pending").value(0.0),
            metric("otp_orders_total").at_least(expected),
        ],
    );
    // ...each counted exactly once.
    metric("otp_orders_total").value(expected).assert_in(&m);
    metric("otp_orders_total")
        .label("outcome", "not_found")
        .value(1.0)
        .assert_in(&m);
    // The outcomes match the simulator's truth.
    assert_outcomes_match_truth(
        &m,
        &sim,
        &["verified", "failed", "unverified", "undelivered", "expired"],
    );
    // A third start finds nothing pending and counts nothing again.
    drop(second);
    let third = Exporter::start(tmp.path(), &config, addr, "info");
    std::thread::sleep(Duration::from_secs(2));
    let m = third.metrics();
    metric("otp_exporter_orders_pending")
        .value(0.0)
        .assert_in(&m);
    metric("otp_orders_total").value(0.0).assert_in(&m);
    // Re-dropping the same ids: duplicates within 24 h.
    drop_spool_file(&third.spool(), "again", &listing);
    metric("otp_exporter_spool_lines_total")
        .label("result", "duplicate")
        .value(expected)
        .assert_eventually(&third.metrics_url(), Duration::from_secs(10));
}

/// Credentials rejected: polling pauses, orders stay pending, api_up is 0 and the log
/// says what to fix once; when the API accepts us again everything proceeds.
#[test]
fn auth_outage_pauses_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "3", "--time-scale", TIME_SCALE]);
    sim.set_faults("auth_outage: true\n");
    let addr = free_addr();
    let config = config_with_max_age_120s(tmp.path(), addr, &sim);
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids = send_orders(&sim, "auth", 20);
    drop_spool_file(&exporter.spool(), "orders", &ids.join("\n"));
    assert_all_eventually(
        &exporter.metrics_url(),
        Duration::from_secs(15),
        &[
            metric("otp_exporter_api_up").value(0.0),
            metric("otp_exporter_orders_pending").value(20.0),
        ],
    );
    // Paused: the queries stop (after those already on the wire, at most one probe per
    // 30 s; jobs queued for workers are handed back unsent).
    std::thread::sleep(Duration::from_millis(500));
    let before = exporter
        .metrics()
        .sum("otp_exporter_api_requests_total", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let after = exporter
        .metrics()
        .sum("otp_exporter_api_requests_total", &[]);
    assert!(after - before <= 1.0, "polling paused: {before} -> {after}");
    let log = exporter.proc.log();
    assert_eq!(
        log.matches("rejects our credentials").count(),
        1,
        "one clear error:\n{log}"
    );
    let (_, page) = get(addr, "/").unwrap();
    assert!(page.contains("rejects our credentials"), "{page}");
    metric("otp_orders_total")
        .value(0.0)
        .assert_in(&exporter.metrics());

    // Credentials fixed, but the provider now fails with HTTP errors: the probe gets
    // no answer, which must neither resume polling nor stop the probing.
    sim.set_faults("http_error_rate: 1.0\n");
    let http_errors = |m: &Metrics| -> f64 {
        ["http_500", "http_502", "http_503"]
            .iter()
            .map(|s| m.sum("otp_exporter_api_requests_total", &[("status", s)]))
            .sum()
    };
    wait_for(Duration::from_secs(40), || {
        (http_errors(&exporter.metrics()) >= 1.0).then_some(())
    })
    .unwrap_or_else(|| panic!("no probe during the outage:\n{}", exporter.proc.log()));
    let m = exporter.metrics();
    metric("otp_exporter_api_up").value(0.0).assert_in(&m);
    assert_eq!(http_errors(&m), 1.0, "one probe, not a resumed polling");

    // Fixed: the next probe (within 30 s) resumes polling and every order finalizes.
    sim.set_faults("{}\n");
    let m = metric("otp_orders_total")
        .value(20.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(60));
    metric("otp_exporter_api_up").value(1.0).assert_in(&m);
    assert!(exporter
        .proc
        .log()
        .contains("accepts our credentials again"));
    metric("otp_exporter_api_requests_total")
        .label("status", "-1")
        .at_least(1.0)
        .assert_in(&m);
}

/// SIGTERM while queries are in flight: they finish, but the orders they decide are
/// not counted by a process about to exit (nobody would scrape it); the next run
/// counts each of them exactly once.
#[test]
fn sigterm_drains_in_flight_queries_and_counts_in_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "17", "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = config_with_max_age_120s(tmp.path(), addr, &sim);
    let issued = unix_now();
    let ids = send_orders(&sim, "drain", 16);
    // Let the simulated orders play out (validity 6 s at this time scale), so that the
    // first answers already decide most of them.
    std::thread::sleep(Duration::from_secs(10));
    sim.set_faults("slow_rate: 1.0\nslow: 2s\n");
    let mut first = Exporter::start(tmp.path(), &config, addr, "info");
    let lines: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"orderId":"{id}","issuedAt":{issued}}}"#))
        .collect();
    drop_spool_file(&first.spool(), "orders", &lines.join("\n"));
    metric("otp_exporter_orders_pending")
        .value(16.0)
        .assert_eventually(&first.metrics_url(), Duration::from_secs(10));
    // The first queries are under way (first_delay 200 ms, answers take 2 s).
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(first.proc.terminate(Duration::from_secs(15)), Some(0));
    let log = first.proc.log();
    let drained = log
        .lines()
        .find(|l| l.contains("scheduler stopped"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        !drained.contains("answered_while_draining=0"),
        "queries were in flight at SIGTERM: {drained}"
    );
    assert!(
        !log.contains("order finalized"),
        "nothing is counted while stopping:\n{log}"
    );

    sim.set_faults("{}\n");
    let second = Exporter::start(tmp.path(), &config, addr, "info");
    let m = metric("otp_exporter_orders_pending")
        .value(0.0)
        .assert_eventually(&second.metrics_url(), Duration::from_secs(60));
    // Each order counted once.
    metric("otp_orders_total").value(16.0).assert_in(&m);
    assert_outcomes_match_truth(
        &m,
        &sim,
        &["verified", "failed", "unverified", "undelivered"],
    );
}

/// The provider's clock is 10 minutes ahead: status -16, corrected from `Date`.
#[test]
fn clock_skew_is_measured_and_corrected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(&[
        "--seed",
        "5",
        "--time-scale",
        TIME_SCALE,
        "--clock-offset",
        "+10m",
    ]);
    sim.clock_offset_secs = 600;
    let addr = free_addr();
    // The balance poller off: its first query would meet the -16 first and correct the
    // clock for every record query (tests/account.rs shows that).
    let config = exporter_config(
        tmp.path(),
        addr,
        &sim.base_url(),
        "account:\n  enabled: false\n",
    );
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids = send_orders(&sim, "skew", 10);
    drop_spool_file(&exporter.spool(), "orders", &ids.join("\n"));
    let m = metric("otp_orders_total")
        .value(10.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(60));
    metric("otp_exporter_api_requests_total")
        .label("status", "-16")
        .at_least(1.0)
        .assert_in(&m);
    let log = exporter.proc.log();
    assert!(
        log.contains("timestamp expired") && log.contains("offset_secs=6"),
        "{log}"
    );
}

/// A dead spool thread is fatal: `/healthz` says so at once, the scheduler drains
/// (pending orders stay saved) and the daemon exits non-zero for its supervisor to
/// restart it; the restarted daemon reads the spool again. Nothing real kills the
/// spool thread alone, so the test uses the debug-build fault switch
/// `ITNIO_OTP_EXPORTER_TEST_SPOOL_PANIC_FILE` (the thread panics once that file is in
/// the spool). Slow answers keep queries in flight, so the drain takes a moment.
#[test]
fn a_dead_spool_thread_fails_healthz_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "5", "--time-scale", TIME_SCALE]);
    sim.set_faults("slow_rate: 1.0\nslow: 2500ms\n");
    let addr = free_addr();
    let config = config_with_max_age_120s(tmp.path(), addr, &sim);
    let config_arg = config.display().to_string();
    let mut exporter = Proc::spawn(
        "exporter",
        &["--log-level", "info", "run", "--config", &config_arg],
        &[
            ("TEST_ITNIO_SECRET", API_SECRET),
            (
                "ITNIO_OTP_EXPORTER_TEST_SPOOL_PANIC_FILE",
                ".panic-spool-thread",
            ),
        ],
    );
    assert!(
        answers_ok(addr, "/readyz", Duration::from_secs(20)),
        "not ready:\n{}",
        exporter.log()
    );
    let spool = tmp.path().join("spool");
    let ids = send_orders(&sim, "dead", 20);
    drop_spool_file(&spool, "orders", &ids.join("\n"));
    metric("otp_exporter_orders_pending")
        .value(20.0)
        .assert_eventually(&format!("http://{addr}/metrics"), Duration::from_secs(10));
    assert_eq!(get(addr, "/healthz").unwrap().0, 200);
    // Queries are on the wire (answered after 2.5 s) when the thread dies.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(spool.join(".panic-spool-thread"), "").unwrap();
    // The thread meets the file at its next rescan (every 2 s); a machine busy with
    // other tests (CI runs three at once) may take longer.
    let (code, body) = wait_for(Duration::from_secs(5), || {
        get(addr, "/healthz").ok().filter(|(code, _)| *code != 200)
    })
    .unwrap_or_else(|| panic!("/healthz stayed 200:\n{}", exporter.log()));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the spool thread panicked"), "{body}");
    let exit = wait_for(Duration::from_secs(15), || {
        exporter.child.try_wait().ok().flatten()
    })
    .unwrap_or_else(|| panic!("still running:\n{}", exporter.log()));
    let log = exporter.log();
    assert!(!exit.success(), "exit {exit:?}:\n{log}");
    assert!(
        log.contains("error: the spool thread panicked: test fault"),
        "{log}"
    );
    // Restarted (as its supervisor would), the daemon resumes the saved orders and
    // reads the spool again.
    std::fs::remove_file(spool.join(".panic-spool-thread")).unwrap();
    let restarted = Exporter::start(tmp.path(), &config, addr, "info");
    assert!(restarted.proc.log().contains("pending orders loaded"));
    assert!(!restarted.proc.log().contains("resumed=0"));
    drop_spool_file(&restarted.spool(), "more", "dead-extra\n");
    metric("otp_exporter_spool_lines_total")
        .label("result", "accepted")
        .value(1.0)
        .assert_eventually(&restarted.metrics_url(), Duration::from_secs(10));
}
