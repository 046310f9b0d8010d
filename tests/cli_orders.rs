//! `orders` and `order ID` on the real binary, asking a real daemon (polling the
//! simulator, India failing on every channel) through its JSON API: tables for people,
//! the API's JSON for scripts, filters, limit and cursor passed through, the address
//! from `--url` or the configuration's `listen`, and clear errors with exit code 1 for
//! a bad parameter, an unknown order and a daemon that is not there.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use common::*;

const ORDERS: usize = 24;

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        // The daemon's secret variable is not set: the CLI does not need it.
        .env_remove("TEST_ITNIO_SECRET")
        .output()
        .expect("run the binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        output_text(&out)
    );
    stdout(&out)
}

fn api(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The order ids of a table (second column), header and footer left out.
fn table_ids(table: &str) -> Vec<String> {
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|h| h.starts_with("ISSUED (UTC)  ORDER")),
        "{table}"
    );
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
        .collect()
}

fn json_ids(v: &Value) -> Vec<String> {
    v["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("no orders: {v}"))
        .iter()
        .map(|o| o["order_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn orders_and_order_against_the_real_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::with_scenario(tmp.path(), "11", TIME_SCALE, &country_outage("IN"));
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let mut ids = String::new();
    let mut india = BTreeSet::new();
    for i in 0..ORDERS {
        let (prefix, country) = [("91", "IN"), ("44", "GB"), ("62", "ID")][i % 3];
        let id = format!("cli-{i:02}");
        sim.send("app-a", &format!("{prefix}{:09}", 798_765_400 + i), &id);
        if country == "IN" {
            india.insert(id.clone());
        }
        ids.push_str(&id);
        ids.push('\n');
    }
    drop_spool_file(&exporter.spool(), "cli-orders", &ids);
    let done = wait_for(Duration::from_secs(60), || {
        let v = api(addr, "/api/v1/orders?state=final&limit=1000");
        (json_ids(&v).len() == ORDERS).then_some(())
    });
    assert!(
        done.is_some(),
        "not every order final:\n{}",
        exporter.proc.log()
    );

    let url = format!("http://{addr}");
    // The table lists every order, newest first, one line each.
    let table = ok(&["orders", "--url", &url]);
    let listed = table_ids(&table);
    assert_eq!(listed.len(), ORDERS, "{table}");
    assert_eq!(
        listed,
        json_ids(&api(addr, "/api/v1/orders")),
        "the API's order"
    );
    assert!(
        table.ends_with(&format!("{ORDERS} orders, newest first\n")),
        "{table}"
    );
    // The address from the configuration's listen (its secret variable unset).
    let config_arg = config.display().to_string();
    assert_eq!(table_ids(&ok(&["orders", "--config", &config_arg])), listed);

    // Filters are passed through: --json prints what the API answers for them.
    let filtered = ok(&[
        "orders",
        "--url",
        &url,
        "--country",
        "IN",
        "--state",
        "final",
        "--outcome",
        "undelivered",
        "--since",
        "1h",
        "--json",
    ]);
    let filtered: Value =
        serde_json::from_str(&filtered).unwrap_or_else(|e| panic!("{e}: {filtered}"));
    assert_eq!(
        filtered,
        api(
            addr,
            "/api/v1/orders?country=IN&state=final&outcome=undelivered&since=1h"
        )
    );
    assert_eq!(
        json_ids(&filtered).into_iter().collect::<BTreeSet<_>>(),
        india,
        "India's orders are the undelivered ones"
    );
    let table = ok(&["orders", "--url", &url, "--country", "IN"]);
    for line in table.lines().skip(1).take(india.len()) {
        assert!(line.contains("  undelivered  IN  "), "{line}");
    }
    // A time range before every order matches none.
    let none = ok(&["orders", "--url", &url, "--until", "2020-01-01T00:00:00Z"]);
    assert_eq!(none, "no orders match\n");

    // Limit and cursor: two pages, no order twice, the footer says how to go on.
    let page1 = ok(&["orders", "--url", &url, "--limit", "10"]);
    let cursor = page1
        .lines()
        .last()
        .and_then(|l| l.split_once("more with --cursor "))
        .map(|(_, c)| c.to_string())
        .unwrap_or_else(|| panic!("no cursor:\n{page1}"));
    let page2 = ok(&[
        "orders", "--url", &url, "--limit", "10", "--cursor", &cursor,
    ]);
    let (ids1, ids2) = (table_ids(&page1), table_ids(&page2));
    assert_eq!((ids1.len(), ids2.len()), (10, 10));
    assert_eq!([ids1, ids2].concat(), listed[..20]);

    // One order: header, attempts, timeline; --json is the API's entry.
    let india_id = india.iter().next().unwrap().clone();
    let view = ok(&["order", &india_id, "--url", &url]);
    for want in [
        format!("order     {india_id}  (app app-a)\n"),
        "state     final: undelivered".to_string(),
        "network   IN ".to_string(),
        "receiver  +91 ".to_string(),
        "\nattempts\nATTEMPT  MCC/MNC".to_string(),
        "\ntimeline (UTC)\n".to_string(),
    ] {
        assert!(view.contains(&want), "{want:?} not in:\n{view}");
    }
    assert!(
        !view.contains("798765"),
        "the receiver is shown in full:\n{view}"
    );
    let timeline = view.split("\ntimeline (UTC)\n").nth(1).unwrap_or_default();
    let entry = api(addr, &format!("/api/v1/orders/{india_id}"));
    let lines = entry["timeline"].as_array().unwrap();
    assert!(timeline.lines().count() >= lines.len(), "{view}");
    for line in lines {
        let text = line["text"].as_str().unwrap();
        assert!(timeline.contains(text), "{text:?} not in:\n{view}");
    }
    let json: Value =
        serde_json::from_str(&ok(&["order", &india_id, "--url", &url, "--json"])).expect("JSON");
    assert_eq!(json, entry);

    // Every `orders` / `order` command the runbooks give runs, placeholders filled in.
    let commands = runbook_commands();
    assert!(commands.len() >= 3, "{commands:?}");
    for command in &commands {
        let filled = command
            .replace("<CC>", "IN")
            .replace("<app>", "app-a")
            .replace("<operator>", "airtel")
            .replace("<order id>", &india_id)
            .replace("<id>", &india_id);
        assert!(!filled.contains('<'), "unknown placeholder in {command:?}");
        let mut args: Vec<&str> = filled.split_whitespace().skip(1).collect();
        args.extend(["--url", &url]);
        let out = ok(&args);
        assert!(!out.trim().is_empty(), "{command}");
    }

    // An unknown order: the API's message, exit 1.
    let out = cli(&["order", "no-such-order", "--url", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("\"no-such-order\"") && stderr(&out).contains("HTTP 404"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    // A bad parameter: the API's message naming it and the value, exit 1.
    let out = cli(&["orders", "--url", &url, "--state", "bogus"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("state") && stderr(&out).contains("bogus"),
        "{}",
        stderr(&out)
    );
}

/// The `itnio-otp-exporter orders …` / `order …` commands of docs/runbooks.md, each
/// up to its closing backtick or the end of its line.
fn runbook_commands() -> BTreeSet<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"),
    )
    .unwrap();
    let mut commands = BTreeSet::new();
    for line in text.lines() {
        for (start, _) in line.match_indices("itnio-otp-exporter order") {
            let rest = &line[start..];
            let end = rest.find('`').unwrap_or(rest.len());
            commands.insert(rest[..end].trim().to_string());
        }
    }
    commands
}

#[test]
fn an_absent_daemon_is_named_with_how_to_point_elsewhere() {
    let addr = free_addr();
    let url = format!("http://{addr}");
    for args in [
        vec!["orders", "--url", url.as_str()],
        vec!["order", "some-id", "--url", url.as_str()],
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot reach the exporter at http://{addr}/api/v1/orders"
            )) && err.contains("--url")
                && err.contains("--config"),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
    }
    // A password in --url stays out of the message.
    let out = cli(&["orders", "--url", &format!("http://bob:hunter2@{addr}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("http://bob:***@{addr}/api/v1/orders:"))
            && !stderr(&out).contains("hunter2"),
        "{}",
        stderr(&out)
    );
    // The configuration names the address; its file must exist.
    let tmp = tempfile::tempdir().unwrap();
    let config = exporter_config(tmp.path(), addr, "http://127.0.0.1:9/otp", "");
    let out = cli(&["orders", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("cannot reach the exporter at http://{addr}/")),
        "{}",
        stderr(&out)
    );
    let missing = tmp.path().join("missing.yml");
    let out = cli(&["orders", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}
