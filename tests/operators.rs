//! The operator metrics of the real binary against the real simulator: the operator
//! breakdown counts exactly the attempts and orders the other metrics count, and its
//! labels are the MCC/MNC table's names of the networks the simulator used.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use itnio_otp_exporter::geo::operator_label;
use itnio_sim::profile::PROFILES;

type Counts = BTreeMap<Vec<String>, f64>;

/// `data/mcc-mnc.csv` read here on its own: (mcc, mnc as written) → (country, name).
fn table() -> HashMap<(String, String), (String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mcc-mnc.csv");
    let text = std::fs::read_to_string(&path).expect("data/mcc-mnc.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            assert_eq!(cols.len(), 5, "bad row {line:?}");
            (
                (cols[0].to_string(), cols[1].to_string()),
                (cols[2].to_string(), cols[4].to_string()),
            )
        })
        .collect()
}

/// Sums `counts` onto the label positions `keep`.
fn project(counts: &Counts, keep: &[usize]) -> Counts {
    let mut out = Counts::new();
    for (key, v) in counts {
        *out.entry(keep.iter().map(|i| key[*i].clone()).collect())
            .or_insert(0.0) += v;
    }
    out
}

#[test]
fn operator_metrics_break_down_the_simulators_traffic_by_its_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "23", "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");

    // Every simulated country, several orders each, over both apps.
    let total_sent = 12 * PROFILES.len();
    let mut spool = String::new();
    for i in 0..total_sent {
        let profile = &PROFILES[i % PROFILES.len()];
        let to = format!("{}{:09}", profile.calling_code, 700_000_000 + i * 7919);
        let order_id = format!("op-{i:04}");
        let app = if i % 4 == 0 { "app-b" } else { "app-a" };
        sim.send(app, &to, &order_id);
        spool.push_str(&format!(
            "{{\"orderId\":\"{order_id}\",\"appId\":\"{app}\",\"issuedAt\":{}}}\n",
            unix_now()
        ));
    }
    // Orders the provider never saw: not_found, without any network.
    for i in 0..5 {
        spool.push_str(&format!("ghost-{i}\n"));
    }
    drop_spool_file(&exporter.spool(), "batch", &spool);
    let expected_orders = (total_sent + 5) as f64;
    let m = wait_for(Duration::from_secs(90), || {
        let m = exporter.metrics();
        (m.sum("otp_orders_total", &[]) >= expected_orders
            && m.sum("otp_exporter_orders_pending", &[]) == 0.0)
            .then_some(m)
    })
    .unwrap_or_else(|| panic!("orders did not all finalize\n{}", exporter.proc.log()));

    // The same attempts as otp_delivery_attempts_total, per (country, mcc, channel, result).
    let attempts = m.by(
        "otp_delivery_attempts_total",
        &["country", "mcc", "channel", "result"],
    );
    let operator_attempts = m.by(
        "otp_operator_attempts_total",
        &["country", "mcc", "mnc", "operator", "channel", "result"],
    );
    assert!(!attempts.is_empty());
    assert_eq!(project(&operator_attempts, &[0, 1, 4, 5]), attempts);
    assert_eq!(
        project(&operator_attempts, &[0, 4, 5]),
        project(&attempts, &[0, 2, 3])
    );
    // The same orders as otp_orders_total, per (app_id, country, outcome).
    let orders = m.by("otp_orders_total", &["app_id", "country", "outcome"]);
    let operator_orders = m.by(
        "otp_operator_orders_total",
        &["app_id", "country", "operator", "outcome"],
    );
    assert_eq!(project(&operator_orders, &[0, 1, 3]), orders);

    // The same money as otp_cost_usd_total, per (app_id, country); sums of floats added
    // in another order may differ in the last bits.
    let cost = project(
        &m.by(
            "otp_cost_usd_total",
            &["app_id", "country", "channel", "mcc"],
        ),
        &[0, 1],
    );
    let operator_cost = m.by(
        "otp_operator_cost_usd_total",
        &["app_id", "country", "operator"],
    );
    let operator_cost_by_country = project(&operator_cost, &[0, 1]);
    assert!(
        cost.values().sum::<f64>() > 0.0,
        "the simulator charges: {cost:?}"
    );
    assert_eq!(
        operator_cost_by_country.keys().collect::<Vec<_>>(),
        cost.keys().collect::<Vec<_>>()
    );
    for (key, money) in &cost {
        let by_operator = operator_cost_by_country[key];
        assert!(
            (by_operator - money).abs() <= 1e-9 * money.abs().max(1.0),
            "{key:?}: {by_operator} by operator, {money} in otp_cost_usd_total"
        );
    }
    // The same delivered attempts as otp_delivery_latency_seconds, per country.
    let latency_count = project(
        &m.by(
            "otp_delivery_latency_seconds_count",
            &["channel", "country"],
        ),
        &[1],
    );
    let operator_latency = m.by(
        "otp_operator_delivery_latency_seconds_count",
        &["country", "operator"],
    );
    assert!(!latency_count.is_empty());
    assert_eq!(project(&operator_latency, &[0]), latency_count);
    // Buckets and sums too: the same observations, split by operator.
    for (suffix, keys) in [
        ("_sum", &["country"][..]),
        ("_bucket", &["country", "le"][..]),
    ] {
        let plain = m.by(&format!("otp_delivery_latency_seconds{suffix}"), keys);
        let by_operator = m.by(
            &format!("otp_operator_delivery_latency_seconds{suffix}"),
            keys,
        );
        assert_eq!(
            plain.keys().collect::<Vec<_>>(),
            by_operator.keys().collect::<Vec<_>>()
        );
        for (key, v) in &plain {
            assert!(
                (by_operator[key] - v).abs() <= 1e-9 * v.max(1.0),
                "{suffix} {key:?}"
            );
        }
    }
    // Operators of the latency and cost series are operators of the attempts.
    let attempt_operators: BTreeSet<(String, String)> = operator_attempts
        .keys()
        .map(|k| (k[0].clone(), k[3].clone()))
        .collect();
    for key in operator_latency.keys() {
        assert!(
            attempt_operators.contains(&(key[0].clone(), key[1].clone())),
            "{key:?}"
        );
    }
    for key in operator_cost.keys() {
        assert!(
            attempt_operators.contains(&(key[1].clone(), key[2].clone())),
            "{key:?}"
        );
    }
    assert!(
        operator_latency.keys().any(|k| k[1] != "unknown"),
        "{operator_latency:?}"
    );

    // Labels are the table's: the row of (mcc, mnc as written), in the series' country,
    // is one of the networks the simulator has for that country, and the operator label
    // is that row's name normalised.
    let table = table();
    let simulated: BTreeSet<(String, String, u16)> = PROFILES
        .iter()
        .flat_map(|p| {
            p.networks
                .iter()
                .map(|n| (p.country.to_string(), n.mcc.to_string(), n.mnc))
        })
        .collect();
    let mut networks_seen = BTreeSet::new();
    let mut operators_of_country: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in operator_attempts.keys() {
        let [country, mcc, mnc, operator, ..] = &key[..] else {
            unreachable!()
        };
        if mcc == "unknown" {
            // Only a call-only order lacks a network (its country is the receiver's).
            assert_eq!(
                (mnc.as_str(), operator.as_str()),
                ("unknown", "unknown"),
                "{key:?}"
            );
            assert_eq!(key[4], "call", "{key:?}");
            continue;
        }
        let (row_country, name) = table
            .get(&(mcc.clone(), mnc.clone()))
            .unwrap_or_else(|| panic!("{mcc}/{mnc} is not a row of data/mcc-mnc.csv: {key:?}"));
        assert_eq!(row_country, country, "{key:?}");
        let mnc_value: u16 = mnc.parse().unwrap();
        assert!(
            simulated.contains(&(country.clone(), mcc.clone(), mnc_value)),
            "{key:?} is not a simulated network"
        );
        assert_eq!(
            operator,
            &operator_label(name),
            "{key:?}: table name {name:?}"
        );
        networks_seen.insert((country.clone(), mcc.clone(), mnc_value));
        operators_of_country
            .entry(country.clone())
            .or_default()
            .insert(operator.clone());
    }
    // 12 orders a country spread over its 2 to 5 networks: most networks show up.
    assert!(
        networks_seen.len() * 3 >= simulated.len() * 2,
        "only {networks_seen:?} of {simulated:?}"
    );
    // MNCs as the table writes them: the simulator renders 404/45 as 45, the row is 045.
    let mncs: BTreeSet<&str> = operator_attempts.keys().map(|k| k[2].as_str()).collect();
    assert!(
        mncs.iter().any(|m| m.len() == 3 && m.starts_with('0')),
        "{mncs:?}"
    );

    // An order's operator is one of its country's, and unknown exactly for orders
    // without an SMS/SNA attempt (the simulator's truth) and the ghosts.
    let truth = sim.truth();
    assert_eq!(truth.orders.len(), total_sent);
    let mut want_unknown = Counts::new();
    for o in &truth.orders {
        if o.attempts.iter().all(|a| a.channel == "call") {
            *want_unknown
                .entry(vec![
                    o.app_id.clone(),
                    o.country.to_string(),
                    o.outcome.to_string(),
                ])
                .or_insert(0.0) += 1.0;
        }
    }
    *want_unknown
        .entry(vec!["app-a".into(), "unknown".into(), "not_found".into()])
        .or_insert(0.0) += 5.0;
    let mut got_unknown = Counts::new();
    for (key, v) in &operator_orders {
        let [app, country, operator, outcome] = &key[..] else {
            unreachable!()
        };
        if operator == "unknown" {
            *got_unknown
                .entry(vec![app.clone(), country.clone(), outcome.clone()])
                .or_insert(0.0) += v;
        } else {
            assert!(
                operators_of_country
                    .get(country)
                    .is_some_and(|ops| ops.contains(operator)),
                "{key:?}: not an operator of {country}'s attempts {operators_of_country:?}"
            );
        }
    }
    assert_eq!(got_unknown, want_unknown);

    // promtool finds nothing to complain about in a live scrape with the new families.
    let text = exporter.metrics_text();
    for (family, kind) in [
        ("otp_operator_orders_total", "counter"),
        ("otp_operator_attempts_total", "counter"),
        ("otp_operator_cost_usd_total", "counter"),
        ("otp_operator_delivery_latency_seconds", "histogram"),
    ] {
        assert!(
            text.contains(&format!("# HELP {family} "))
                && text.contains(&format!("# TYPE {family} {kind}")),
            "{family} is not described\n{text}"
        );
    }
    let (clean, output) = promtool_check(&text);
    assert!(clean, "promtool check metrics: {output}");
}
