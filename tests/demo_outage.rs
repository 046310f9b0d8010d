//! The demo's outage flags with the real binary: a bad `--outage` is refused naming the
//! flag and the value, and the printed start instant is `--outage-after` after the start.
//! The demo's terminal: the URLs to open, warnings only, the full log in the file it names.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn a_bad_outage_flag_is_refused_with_the_flag_and_the_value() {
    for (value, why) in [
        ("FR:sms", "not simulated"),
        ("IN:fax", "none of sms, call, sna"),
        ("IN:sms:quiet", "neither fail nor silent"),
        ("IN", "expected COUNTRY:CHANNEL"),
    ] {
        let out = Command::new(BIN)
            .args(["demo", "--listen", "127.0.0.1:0", "--outage", value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains("--outage") && stderr.contains(&format!("'{value}'")),
            "{value}: {stderr}"
        );
        assert!(stderr.contains(why), "{value}: {stderr}");
        assert!(out.stdout.is_empty(), "{value}: started anyway");
    }
}

#[test]
fn the_demo_prints_when_each_outage_starts() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr().to_string();
    let before = unix_ms();
    let mut demo = Proc::spawn(
        "demo",
        &[
            "demo",
            "--listen",
            &listen,
            "--dir",
            dir.path().to_str().unwrap(),
            "--time-scale",
            "0.5",
            "--orders-per-second",
            "1",
            "--outage",
            "IN:sms",
            "--outage",
            "id:sms:silent",
            "--outage-after",
            "90s",
        ],
        &[],
    );
    let lines = wait_for(Duration::from_secs(30), || {
        let log = demo.log();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("demo: outage "))
            .map(str::to_string)
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .unwrap_or_else(|| panic!("no outage lines:\n{}", demo.log()));
    let after = unix_ms();
    for (line, prefix) in lines.iter().zip([
        "demo: outage IN sms (fail) starts at ",
        "demo: outage ID sms (silent) starts at ",
    ]) {
        let at = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
        assert!(at.ends_with('Z'), "UTC: {at}");
        let at_ms = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap_or_else(|e| panic!("{at:?}: {e}"))
            .timestamp_millis();
        // The simulator starts between `before` and the line; the outage 90 s later.
        assert!(
            (before + 90_000..=after + 90_000).contains(&at_ms),
            "{at} not 90 s after the start ({before}..{after})"
        );
    }
    // The terminal names the pages to open and the full log's file, which carries the
    // outage too (the terminal only gets warnings and summaries).
    let terminal = demo.log();
    for want in [
        format!(
            "demo: open http://{listen}/ (on-call overview) and http://{listen}/orders (orders)"
        ),
        format!("full log in {}", dir.path().join("demo.log").display()),
    ] {
        assert!(terminal.contains(&want), "{want:?} not in:\n{terminal}");
    }
    assert!(
        !terminal.contains(" INFO "),
        "info lines on the terminal:\n{terminal}"
    );
    let full_log = std::fs::read_to_string(dir.path().join("demo.log")).unwrap();
    assert!(
        full_log.contains("demo: outage scheduled") && full_log.contains(" INFO "),
        "{full_log}"
    );
    stops_cleanly(&mut demo);
}

/// `--log-file -` (a container, whose output is the log): the full log on stderr.
#[test]
fn the_demo_logs_in_full_on_stderr_with_log_file_dash() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr().to_string();
    let mut demo = Proc::spawn(
        "demo",
        &[
            "demo",
            "--listen",
            &listen,
            "--dir",
            dir.path().to_str().unwrap(),
            "--log-file",
            "-",
        ],
        &[],
    );
    let full = wait_for(Duration::from_secs(30), || {
        let log = demo.log();
        (log.contains("full log on stderr") && log.contains(" INFO ")).then_some(())
    });
    assert!(full.is_some(), "{}", demo.log());
    assert!(!dir.path().join("demo.log").exists());
    stops_cleanly(&mut demo);
}

/// `--listen 127.0.0.1:0`: the system picks the port, and the demo names the one its
/// exporter listens on: the pages answer there, and the 30 s summary counts from it.
#[test]
fn a_port_picked_by_the_system_is_the_one_the_demo_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Proc::spawn(
        "demo",
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
            "--orders-per-second",
            "2",
        ],
        &[],
    );
    let address = wait_for(Duration::from_secs(30), || {
        demo.log().lines().find_map(|l| {
            let rest = l.strip_prefix("demo: open http://")?;
            rest.split('/').next().map(str::to_string)
        })
    })
    .unwrap_or_else(|| panic!("no URL printed:\n{}", demo.log()));
    let address: std::net::SocketAddr = address.parse().unwrap();
    assert_ne!(address.port(), 0, "{}", demo.log());
    assert!(
        answers_ok(address, "/metrics", Duration::from_secs(20)),
        "nothing answers at {address}:\n{}",
        demo.log()
    );
    let summary = wait_for(Duration::from_secs(45), || {
        demo.log()
            .lines()
            .find(|l| l.starts_with("demo: ") && l.contains("; open http://"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no summary:\n{}", demo.log()));
    assert!(
        summary.contains("orders tracked") && !summary.contains("unavailable"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("open http://{address}/ ")),
        "{summary}"
    );
    stops_cleanly(&mut demo);
}

/// An address the demo cannot listen on is named, with the flag to change, before
/// anything starts.
#[test]
fn an_address_the_demo_cannot_listen_on_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--listen", "192.0.2.1:0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:0 (choose another with --listen)"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "started anyway");
}

/// SIGTERM ends the demo with status 0 within 20 s.
fn stops_cleanly(demo: &mut Proc) {
    assert_eq!(
        demo.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        demo.log()
    );
}
