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
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("verification_window: 6s", "verification_window: 15s")
        .replace("settle_timeout: 2400ms", "settle_timeout: 6s")
        .replace("not_found_grace: 2400ms", "not_found_grace: 6s")
        .replace("max_age: 15s", "max_age: 30s")
        .replace("first_delay: 200ms", "first_delay: 3s")
        .replace("max_interval: 1s", "max_interval: 3s");
    std::fs::write(&config, text).unwrap();

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
    assert_eq!(
        first.metrics().sum("otp_orders_total", &[]),
        0.0,
        "killed before any order is final"
    );
    first.proc.kill9();

    let second = Exporter::start(tmp.path(), &config, addr, "info");
    assert!(
        second.proc.log().contains("resumed=61") || second.proc.log().contains("resumed\":61"),
        "{}",
        second.proc.log()
    );
    let m = wait_for(Duration::from_secs(120), || {
        let m = second.metrics();
        (m.sum("otp_exporter_orders_pending", &[]) == 0.0
            && m.sum("otp_orders_total", &[]) >= expected)
            .then_some(m)
    })
    .unwrap_or_else(|| panic!("orders not finalized after restart:\n{}", second.proc.log()));
    assert_eq!(
        m.sum("otp_orders_total", &[]),
        expected,
        "each order counted exactly once"
    );
    assert_eq!(m.sum("otp_orders_total", &[("outcome", "not_found")]), 1.0);
    // The outcomes match the simulator's truth.
    let truth = sim.truth();
    for outcome in ["verified", "failed", "unverified", "undelivered", "expired"] {
        let want = truth["orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["outcome"] == outcome)
            .count() as f64;
        assert_eq!(
            m.sum("otp_orders_total", &[("outcome", outcome)]),
            want,
            "{outcome}"
        );
    }
    // A third start finds nothing pending and counts nothing again.
    drop(second);
    let third = Exporter::start(tmp.path(), &config, addr, "info");
    std::thread::sleep(Duration::from_secs(2));
    let m = third.metrics();
    assert_eq!(m.sum("otp_exporter_orders_pending", &[]), 0.0);
    assert_eq!(m.sum("otp_orders_total", &[]), 0.0);
    // Re-dropping the same ids: duplicates within 24 h.
    drop_spool_file(&third.spool(), "again", &listing);
    let m = wait_for(Duration::from_secs(10), || {
        let m = third.metrics();
        (m.sum("otp_exporter_spool_lines_total", &[("result", "duplicate")]) == expected)
            .then_some(m)
    });
    assert!(
        m.is_some(),
        "re-dropped ids count as duplicates:\n{}",
        third.proc.log()
    );
}

/// Credentials rejected: polling pauses, orders stay pending, api_up is 0 and the log
/// says what to fix once; when the API accepts us again everything proceeds.
#[test]
fn auth_outage_pauses_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "3", "--time-scale", TIME_SCALE]);
    sim.set_faults("auth_outage: true\n");
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_age: 15s", "max_age: 120s");
    std::fs::write(&config, text).unwrap();
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids = send_orders(&sim, "auth", 20);
    drop_spool_file(&exporter.spool(), "orders", &ids.join("\n"));
    wait_for(Duration::from_secs(15), || {
        let m = exporter.metrics();
        (m.sum("otp_exporter_api_up", &[]) == 0.0
            && m.sum("otp_exporter_orders_pending", &[]) == 20.0)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("api_up did not drop:\n{}", exporter.proc.log()));
    // Paused: the queries stop (at most the in-flight ones and one probe per 30 s).
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
    assert_eq!(exporter.metrics().sum("otp_orders_total", &[]), 0.0);

    // Fixed: the next probe (within 30 s) resumes polling and every order finalizes.
    sim.set_faults("{}\n");
    let m = wait_for(Duration::from_secs(60), || {
        let m = exporter.metrics();
        (m.sum("otp_orders_total", &[]) == 20.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("no recovery:\n{}", exporter.proc.log()));
    assert_eq!(m.sum("otp_exporter_api_up", &[]), 1.0);
    assert!(exporter
        .proc
        .log()
        .contains("accepts our credentials again"));
    assert!(m.sum("otp_exporter_api_requests_total", &[("status", "-1")]) >= 1.0);
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
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let ids = send_orders(&sim, "skew", 10);
    drop_spool_file(&exporter.spool(), "orders", &ids.join("\n"));
    let m = wait_for(Duration::from_secs(60), || {
        let m = exporter.metrics();
        (m.sum("otp_orders_total", &[]) == 10.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("orders not final:\n{}", exporter.proc.log()));
    assert!(m.sum("otp_exporter_api_requests_total", &[("status", "-16")]) >= 1.0);
    let log = exporter.proc.log();
    assert!(
        log.contains("timestamp expired") && log.contains("offset_secs=6"),
        "{log}"
    );
}
