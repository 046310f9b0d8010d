//! The dashboards, recording rules and alerts against a real Prometheus (Debian's
//! `prometheus`) scraping the real daemon in demo mode while the simulator injects a
//! country outage. Every process started here is owned by the test and stopped by it.

mod common;
mod grafana;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::{self, Prometheus};
use common::*;

const OUTAGE_COUNTRY: &str = "IN";

/// Recording rules that need history this test's Prometheus cannot have: the early-signal
/// baselines of rules.yml read the counters `offset 5m` and `offset 30m` (the hours before an
/// outage), and the `:ratio_baseline` rules combine those. The Prometheus here starts minutes
/// before the checks (with only yesterday's backfill), so they have no series yet: they are
/// skipped by the "recording rule without series" check, and only them (each must still exist
/// in rules.yml, and still parse as a query). Their values are covered by promtool's unit tests
/// (deploy/prometheus/tests/early_signals_test.yml).
const NEEDS_HISTORY: &[&str] = &[
    "app_channel_country:otp_attempt_results:rate1h_offset5m",
    "app_channel_country:otp_attempt_results_delivered:rate1h_offset5m",
    "app_channel_country:otp_attempt_delivery_success:ratio_rate1h_offset5m",
    "app_channel_country:otp_orders_sent:rate1h_offset5m",
    "app_country:otp_orders_sent:rate1h_offset5m",
    "app_country:otp_verifications:rate1h_offset5m",
    "app_country:otp_conversion:ratio_rate1h_offset5m",
    "app_channel_country_stage:otp_orders_overdue:rate1h_offset5m",
    "app_channel_country_stage:otp_orders_overdue_per_sent:ratio_rate1h_offset5m",
    "app_channel_country:otp_attempt_results:rate6h_offset30m",
    "app_channel_country:otp_attempt_results_delivered:rate6h_offset30m",
    "app_channel_country:otp_attempt_delivery_success:ratio_rate6h_offset30m",
    "app_channel_country:otp_orders_sent:rate6h_offset30m",
    "app_country:otp_orders_sent:rate6h_offset30m",
    "app_country:otp_verifications:rate6h_offset30m",
    "app_country:otp_conversion:ratio_rate6h_offset30m",
    "app_channel_country_stage:otp_orders_overdue:rate6h_offset30m",
    "app_channel_country_stage:otp_orders_overdue_per_sent:ratio_rate6h_offset30m",
    "app_channel_country:otp_attempt_delivery_success:ratio_baseline",
    "app_country:otp_conversion:ratio_baseline",
    "app_channel_country_stage:otp_orders_overdue_per_sent:ratio_baseline",
];

fn has_series(result: &serde_json::Value) -> bool {
    match result {
        serde_json::Value::Array(items) => !items.is_empty(),
        // Scalars (e.g. a constant) count as a result.
        serde_json::Value::String(_) | serde_json::Value::Number(_) => true,
        _ => false,
    }
}

/// Writes "yesterday" for the series the daemon exports now, so that the Regions
/// dashboard's `offset 1d` comparison has data: `promtool tsdb create-blocks-from openmetrics`.
fn backfill_yesterday(metrics_text: &str, tsdb: &Path) {
    let now = unix_now() as i64;
    let mut families: BTreeSet<String> = BTreeSet::new();
    let mut series = Vec::new();
    for line in metrics_text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').unwrap();
        let name = name_labels.split('{').next().unwrap().to_string();
        if !name.starts_with("otp_") {
            continue;
        }
        families.insert(name.clone());
        series.push((
            name,
            name_labels.to_string(),
            value.parse::<f64>().unwrap_or(0.0),
        ));
    }
    let mut om = String::new();
    for family in &families {
        om.push_str(&format!("# TYPE {family} unknown\n"));
        for (name, name_labels, value) in series.iter().filter(|(n, _, _)| n == family) {
            let _ = name;
            // Two hours around the same time yesterday, one sample every 15 s, growing
            // steadily like a counter (gauges just hold their value).
            let start = now - 86_400 - 3_600;
            for step in 0..(2 * 3_600 / 15) {
                let t = start + step * 15;
                let v = if family.ends_with("_total")
                    || family.ends_with("_count")
                    || family.ends_with("_bucket")
                    || family.ends_with("_sum")
                {
                    value * (1.0 + step as f64 / 10.0)
                } else {
                    *value
                };
                om.push_str(&format!("{name_labels} {v} {t}\n"));
            }
        }
    }
    om.push_str("# EOF\n");
    let file = tsdb.with_extension("om");
    std::fs::write(&file, om).unwrap();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(tsdb)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "backfill failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboards_rules_and_alerts_work_against_a_real_prometheus() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("outage.yml");
    std::fs::write(&scenario, country_outage(OUTAGE_COUNTRY)).unwrap();

    // The daemon in demo mode: simulator + traffic + exporter, with the outage.
    let demo_addr = free_addr();
    let listen = demo_addr.to_string();
    let scenario_arg = scenario.display().to_string();
    let demo = Proc::spawn(
        "demo",
        &[
            "demo",
            "--listen",
            &listen,
            "--time-scale",
            "0.05",
            "--orders-per-second",
            "25",
            "--seed",
            "4",
            "--scenario",
            &scenario_arg,
        ],
        &[],
    );
    wait_for(Duration::from_secs(30), || {
        get(demo_addr, "/readyz").ok().filter(|(s, _)| *s == 200)
    })
    .unwrap_or_else(|| panic!("demo not ready:\n{}", demo.log()));
    // Let some orders finalize, so that every series family exists.
    let text = wait_for(Duration::from_secs(90), || {
        let text = get(demo_addr, "/metrics").ok()?.1;
        let m = Metrics::parse(&text);
        let countries = m.by("otp_orders_total", &["country"]).len();
        (m.sum("otp_orders_total", &[("outcome", "verified")]) > 20.0
            && countries >= 5
            && m.sum("otp_channel_fallbacks_total", &[]) > 0.0)
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("demo produced no outcomes:\n{}", demo.log()));

    // The operator metrics resolve the demo's networks through the MCC/MNC table: the Regions
    // operator table has real operators to show, not only `unknown`.
    let m = Metrics::parse(&text);
    let operators = m.by("otp_operator_attempts_total", &["country", "operator"]);
    assert!(
        operators.keys().any(|k| k[1] != "unknown")
            && !m.by("otp_operator_orders_total", &["operator"]).is_empty(),
        "no otp_operator_* series with a resolved operator: {operators:?}"
    );

    let tsdb = tmp.path().join("tsdb");
    std::fs::create_dir_all(&tsdb).unwrap();
    backfill_yesterday(&text, &tsdb);

    // Prometheus with the repository's rule files, scraping every second.
    let prom = Prometheus::start(
        tmp.path(),
        &prometheus::config(demo_addr, "1s", "1s"),
        &tsdb,
    );

    // Every query of every dashboard panel parses and returns at least one series.
    let queries = std::fs::read_to_string(format!("{root}/dashboards/queries.jsonl")).unwrap();
    let queries: Vec<serde_json::Value> = queries
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        queries.len() >= 20,
        "the dashboards have their queries listed"
    );
    // Recording rule names.
    let rules_text =
        std::fs::read_to_string(format!("{root}/deploy/prometheus/rules.yml")).unwrap();
    let records: BTreeSet<String> = rules_text
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- record:")
                .map(|r| r.trim().to_string())
        })
        .collect();
    assert!(!records.is_empty());
    for name in NEEDS_HISTORY {
        assert!(
            records.contains(*name),
            "NEEDS_HISTORY names {name}, which rules.yml no longer records"
        );
    }

    let started = Instant::now();
    let mut missing: Vec<String>;
    loop {
        missing = Vec::new();
        for q in &queries {
            let expr = grafana::substitute(q["expr"].as_str().unwrap()).unwrap();
            match prom.query(&expr) {
                Ok(result) if has_series(&result) => {}
                Ok(_) => missing.push(format!(
                    "no series: {} / {}: {expr}",
                    q["dashboard"], q["panel"]
                )),
                Err(e) => panic!(
                    "query does not parse: {} / {}: {expr}: {e}",
                    q["dashboard"], q["panel"]
                ),
            }
        }
        for record in &records {
            match prom.query(record) {
                Ok(result) if has_series(&result) => {}
                Ok(_) if NEEDS_HISTORY.contains(&record.as_str()) => {}
                Ok(_) => missing.push(format!("recording rule without series: {record}")),
                Err(e) => panic!("recording rule {record}: {e}"),
            }
        }
        if missing.is_empty() || started.elapsed() > Duration::from_secs(240) {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(
        missing.is_empty(),
        "after {:?}:\n{}",
        started.elapsed(),
        missing.join("\n")
    );

    // The Regions operator table with the outage country selected: its count and ratio
    // columns (A-D: attempts, delivery success, orders, conversion) have a row per operator of
    // that country, resolved operators among them. (The cost columns of a country whose every
    // attempt fails may be empty: nothing verified. The loop above covers them on all countries.)
    let operator_table: Vec<&serde_json::Value> = queries
        .iter()
        .filter(|q| {
            q["panel"]
                .as_str()
                .is_some_and(|p| p.starts_with("Operators of"))
        })
        .filter(|q| matches!(q["ref_id"].as_str(), Some("A" | "B" | "C" | "D")))
        .collect();
    assert_eq!(
        operator_table.len(),
        4,
        "the Regions operator table's columns"
    );
    for q in operator_table {
        let expr = q["expr"]
            .as_str()
            .unwrap()
            .replace("$country", OUTAGE_COUNTRY);
        let result = prom.query(&grafana::substitute(&expr).unwrap()).unwrap();
        let rows: BTreeSet<(String, String)> = result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let label = |l: &str| s["metric"][l].as_str().unwrap_or("").to_string();
                (label("country"), label("operator"))
            })
            .collect();
        assert!(
            !rows.is_empty()
                && rows.iter().all(|(c, _)| c == OUTAGE_COUNTRY)
                && rows.iter().any(|(_, o)| o != "unknown" && !o.is_empty()),
            "operator table column {} for {OUTAGE_COUNTRY}: {rows:?}\n{expr}",
            q["ref_id"]
        );
    }

    // The exact per-operator columns (E-G: p95 delivery latency, spend, cost per verified OTP)
    // over every country: some resolved operator has a real number in each (a histogram
    // without delivered attempts in range would give only NaN, a missing cost series nothing).
    for (ref_id, column) in [
        ("E", "p95 delivery latency"),
        ("F", "spend"),
        ("G", "cost per verified"),
    ] {
        let q = queries
            .iter()
            .find(|q| {
                q["panel"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("Operators of"))
                    && q["ref_id"] == ref_id
            })
            .unwrap_or_else(|| panic!("the Regions operator table has no column {ref_id}"));
        let expr = grafana::substitute(q["expr"].as_str().unwrap()).unwrap();
        let result = prom.query(&expr).unwrap();
        let resolved: Vec<(String, f64)> = result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let operator = s["metric"]["operator"].as_str()?;
                let value: f64 = s["value"][1].as_str()?.parse().ok()?;
                (operator != "unknown" && value.is_finite() && value > 0.0)
                    .then(|| (operator.to_string(), value))
            })
            .collect();
        assert!(
            !resolved.is_empty(),
            "operator table column {ref_id} ({column}) has no positive value for a resolved operator: {result}\n{expr}"
        );
    }

    // No exporter-health alert on a healthy daemon, and no country alert for a country the
    // outage does not touch. (Whether the outage's alert fires, and how fast, is measured at real
    // time by the time-to-alert test: the country alerts compare with a baseline of the previous
    // hours, which this young Prometheus at time scale 0.05 does not have.)
    let (_, body) = get(prom.addr, "/api/v1/alerts").expect("prometheus answers /api/v1/alerts");
    let v: serde_json::Value = serde_json::from_str(&body).expect("alerts JSON");
    let alerts = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"], a["labels"]["country"], a["state"]
            )
        })
        .collect();
    for a in &alerts {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        assert!(
            !name.starts_with("OtpExporter"),
            "exporter-health alert on a healthy daemon: {names:?}"
        );
        if name.starts_with("OtpCountry") {
            assert_eq!(
                a["labels"]["country"], OUTAGE_COUNTRY,
                "only the outage country alerts: {names:?}"
            );
        }
    }
    eprintln!("alerts: {names:?}");

    drop(prom);
    let mut demo = demo;
    assert_eq!(
        demo.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        demo.log()
    );
}
