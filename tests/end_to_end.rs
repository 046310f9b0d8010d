//! The real binary against the real simulator: orders sent through the simulator's
//! send endpoint, their ids dropped into a real spool directory, and `/metrics`
//! compared exactly with the simulator's own ground truth — under injected faults.

mod common;
#[path = "common/exposition_tests.rs"]
mod exposition_tests;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

const PREFIXES: &[&str] = &["91", "62", "55", "234", "63", "1", "44", "52", "84", "86"];

type Counts = BTreeMap<Vec<String>, f64>;

fn add(map: &mut Counts, key: &[&str], by: f64) {
    *map.entry(key.iter().map(|s| s.to_string()).collect())
        .or_insert(0.0) += by;
}

#[test]
fn metrics_match_the_simulators_ground_truth_under_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::with_scenario(tmp.path(), "7", TIME_SCALE, "status_rates: {\"-18\": 0.05, \"-22\": 0.02}\nhttp_error_rate: 0.04\nrate_limited_rate: 0.02\ninvalid_body_rate: 0.02\nslow_rate: 0.02\nslow: 300ms\n");
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "debug");

    // 240 OTPs across ten countries and two apps, sent the way traffic enters the provider.
    let total_sent = 240;
    let mut bare = String::from("# app-a orders as bare ids\n");
    let mut json = String::from("# app-b orders as JSON lines\n");
    for i in 0..total_sent {
        let prefix = PREFIXES[i % PREFIXES.len()];
        let to = format!("{prefix}{:09}", 700_000_000 + i * 7919 % 99_999_999);
        let order_id = format!("e2e-{i:04}");
        let app = if i % 3 == 0 { "app-b" } else { "app-a" };
        sim.send(app, &to, &order_id);
        if app == "app-a" {
            bare.push_str(&order_id);
            bare.push('\n');
        } else {
            json.push_str(&format!(
                "{{\"orderId\":\"{order_id}\",\"appId\":\"app-b\",\"issuedAt\":{}}}\n",
                unix_now()
            ));
        }
    }
    // Ten ids the provider never saw (not_found), three bad lines, two duplicates.
    for i in 0..10 {
        bare.push_str(&format!("ghost-{i}\n"));
    }
    json.push_str(
        "this is not an id\n{\"orderId\": \"x\", \"appId\": \"nobody\"}\n{\"orderId\": \n",
    );
    json.push_str("e2e-0001\n");
    bare.push_str("e2e-0001\n");
    drop_spool_file(&exporter.spool(), "batch-a", &bare);
    drop_spool_file(&exporter.spool(), "batch-b", &json);

    let expected_orders = (total_sent + 10) as f64;
    // Each accepted order is either pending or finalized at (nearly) every scrape: the
    // pending gauge follows every change, not a periodic refresh. A scrape reads the
    // metrics one after another (not atomically), so a change in between may rarely
    // show as a mismatch.
    let (mut scrapes, mut mismatches) = (0, Vec::new());
    let done = wait_for(Duration::from_secs(90), || {
        let m = exporter.metrics();
        let accepted = m.sum("otp_exporter_spool_lines_total", &[("result", "accepted")]);
        let accounted = m.sum("otp_exporter_orders_pending", &[]) + m.sum("otp_orders_total", &[]);
        scrapes += 1;
        if accepted != accounted {
            mismatches.push((accepted, accounted));
        }
        (m.sum("otp_orders_total", &[]) >= expected_orders
            && m.sum("otp_exporter_orders_pending", &[]) == 0.0)
            .then_some(m)
    });
    let m = done.unwrap_or_else(|| {
        panic!(
            "orders did not all finalize: {}\n{}",
            exporter.metrics().sum("otp_orders_total", &[]),
            exporter.proc.log()
        )
    });
    // Refreshing the gauge once a second instead fails about half of the scrapes.
    assert!(
        mismatches.len() * 10 <= scrapes,
        "{} of {scrapes} scrapes showed accepted orders neither pending nor finalized: {mismatches:?}",
        mismatches.len()
    );

    // Expected samples from the simulator's ground truth.
    let truth = sim.truth();
    assert_eq!(
        truth.orders.len(),
        total_sent,
        "the simulator knows every order sent"
    );
    let (mut want_orders, mut want_fallbacks, mut want_attempts) =
        (Counts::new(), Counts::new(), Counts::new());
    let (mut want_latency, mut want_verify_latency, mut want_cost, mut want_segments) =
        (Counts::new(), Counts::new(), Counts::new(), Counts::new());
    // The early signals: each fact once, so with every order final they equal the truth.
    let (mut want_results, mut want_sent, mut want_verified) =
        (Counts::new(), Counts::new(), Counts::new());
    for o in &truth.orders {
        if let Some(first) = o.attempts.first() {
            add(
                &mut want_sent,
                &[&o.app_id, &first.channel, &o.country],
                1.0,
            );
        }
        if o.outcome == "verified" {
            add(
                &mut want_verified,
                &[&o.app_id, &o.channel, &o.country],
                1.0,
            );
        }
        for a in o.attempts.iter().filter(|a| a.result != "pending") {
            let key = [
                &*o.app_id,
                &*a.channel,
                &*a.country,
                a.mcc.as_str(),
                &*a.result,
            ];
            add(&mut want_results, &key, 1.0);
        }
    }
    for o in &truth.orders {
        let (app, channel, country, outcome) =
            (o.app_id.as_str(), &*o.channel, &*o.country, &*o.outcome);
        add(&mut want_orders, &[app, channel, country, outcome], 1.0);
        for [from, to] in &o.fallbacks {
            add(&mut want_fallbacks, &[app, from, to, country], 1.0);
        }
        for a in &o.attempts {
            let (ch, co, mcc, result) = (&*a.channel, &*a.country, a.mcc.as_str(), &*a.result);
            add(&mut want_attempts, &[app, ch, co, mcc, result], 1.0);
            if a.latency {
                add(&mut want_latency, &[ch, co], 1.0);
            }
        }
        if o.verified_latency {
            add(&mut want_verify_latency, &[app, channel, country], 1.0);
        }
        add(&mut want_cost, &[app], o.cost_usd);
        add(&mut want_segments, &[app], f64::from(o.sms_segments));
    }
    add(
        &mut want_orders,
        &["app-a", "none", "unknown", "not_found"],
        10.0,
    );
    want_cost.retain(|_, v| *v != 0.0);
    want_segments.retain(|_, v| *v != 0.0);

    assert_eq!(
        m.by(
            "otp_orders_total",
            &["app_id", "channel", "country", "outcome"]
        ),
        want_orders
    );
    assert_eq!(
        m.by(
            "otp_channel_fallbacks_total",
            &["app_id", "from", "to", "country"]
        ),
        want_fallbacks
    );
    assert_eq!(
        m.by(
            "otp_delivery_attempts_total",
            &["app_id", "channel", "country", "mcc", "result"]
        ),
        want_attempts
    );
    assert_eq!(
        m.by(
            "otp_delivery_latency_seconds_count",
            &["channel", "country"]
        ),
        want_latency
    );
    assert_eq!(
        m.by(
            "otp_verification_latency_seconds_count",
            &["app_id", "channel", "country"]
        ),
        want_verify_latency
    );
    let got_cost = m.by("otp_cost_usd_total", &["app_id"]);
    assert_eq!(
        got_cost.keys().collect::<Vec<_>>(),
        want_cost.keys().collect::<Vec<_>>()
    );
    for (app, want) in &want_cost {
        assert!(
            (got_cost[app] - want).abs() < 1e-6,
            "cost of {app:?}: {} != {want}",
            got_cost[app]
        );
    }
    assert_eq!(m.by("otp_sms_segments_total", &["app_id"]), want_segments);
    assert_eq!(
        m.by(
            "otp_attempt_results_total",
            &["app_id", "channel", "country", "mcc", "result"]
        ),
        want_results
    );
    assert_eq!(
        m.by("otp_orders_sent_total", &["app_id", "channel", "country"]),
        want_sent
    );
    assert_eq!(
        m.by("otp_verifications_total", &["app_id", "channel", "country"]),
        want_verified
    );
    let outcomes: Vec<&str> = want_orders.keys().map(|k| k[3].as_str()).collect();
    for outcome in ["verified", "not_found"] {
        assert!(
            outcomes.contains(&outcome),
            "the run covers {outcome}: {outcomes:?}"
        );
    }

    // Spool accounting, queries, and retries under faults.
    let spool_lines = |result| metric("otp_exporter_spool_lines_total").label("result", result);
    spool_lines("accepted").value(expected_orders).assert_in(&m);
    spool_lines("rejected").value(3.0).assert_in(&m);
    spool_lines("duplicate").value(2.0).assert_in(&m);
    metric("otp_exporter_polls_per_order_count")
        .value(expected_orders)
        .assert_in(&m);
    let failed_queries: f64 = m
        .by("otp_exporter_api_requests_total", &["status"])
        .iter()
        .filter(|(k, _)| k[0] != "0")
        .map(|(_, v)| v)
        .sum();
    assert!(failed_queries > 0.0, "faults were injected and retried");
    metric("otp_exporter_api_up").value(1.0).assert_in(&m);
    metric("otp_exporter_build_info").value(1.0).assert_in(&m);

    // Quarantine holds the rejected lines with their reasons.
    let quarantined: Vec<String> = std::fs::read_dir(exporter.spool().join("quarantine"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let all = quarantined.join("");
    assert!(
        all.contains("this is not an id")
            && all.contains("unknown app \"nobody\"")
            && all.contains("invalid JSON"),
        "{all}"
    );

    // promtool finds nothing to complain about in a live scrape.
    let (clean, output) = promtool_check(&exporter.metrics_text());
    assert!(clean, "promtool check metrics: {output}");

    // The landing page and probes.
    let (status, page) = get(addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains(env!("CARGO_PKG_VERSION")) && page.contains("/metrics"),
        "{page}"
    );
    assert_eq!(get(addr, "/healthz").unwrap().0, 200);
    assert_eq!(get(addr, "/nope").unwrap().0, 404);

    // Graceful stop: exit 0.
    let mut exporter = exporter;
    assert_eq!(
        exporter.proc.terminate(Duration::from_secs(15)),
        Some(0),
        "{}",
        exporter.proc.log()
    );
    let log = exporter.proc.log();
    assert!(
        log.contains("order finalized") && log.contains("order_id"),
        "one line per order, with its id"
    );
    assert!(
        !log.contains(API_SECRET),
        "the secret never appears in logs"
    );
}
