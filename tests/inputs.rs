//! Bad input gets a clear error and loses nothing; secrets stay secret; the example
//! snippets really drop orders the spool accepts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use itnio_otp_exporter::spool::{parse_line, LineRules};

fn check_config(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["check-config", "--config", path.to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), output_text(&out))
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys_with_lines() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.yml"))
            .unwrap();
    let (ok, out) = check_config(&example, &[("ITNIO_API_SECRET", "x")]);
    assert!(ok, "{out}");
    assert!(out.contains("valid"), "{out}");

    let (ok, out) = check_config(&example, &[]);
    assert!(!ok);
    assert!(
        out.contains("ITNIO_API_SECRET") && out.contains("api.api_secret"),
        "{out}"
    );

    let bad = example.replace("  timeout: 10s", "  timeout: ten seconds");
    let (ok, out) = check_config(&bad, &[("ITNIO_API_SECRET", "x")]);
    assert!(!ok);
    let line = example
        .lines()
        .position(|l| l.starts_with("  timeout:"))
        .unwrap()
        + 1;
    assert!(
        out.contains("api.timeout") && out.contains(&format!("line {line}")),
        "{out}"
    );

    let bad = example.replace(
        "  rescan_interval: 30s",
        "  rescan_interval: 30s\n  rescan_intervall: 5s",
    );
    let (ok, out) = check_config(&bad, &[("ITNIO_API_SECRET", "x")]);
    assert!(!ok);
    assert!(
        out.contains("rescan_intervall") && out.contains("line "),
        "{out}"
    );

    let (ok, out) = check_config("", &[]);
    assert!(!ok && out.contains("error"), "{out}");
    let missing = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/c.yml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/c.yml"));
}

#[test]
fn the_secret_never_shows_in_errors_logs_pages_or_metrics() {
    // In a config error about another key.
    let text = format!(
        "api:\n  api_key: k\n  api_secret: \"{API_SECRET}\"\n  max_in_flight: 0\napps:\n  - id: a\n"
    );
    let (ok, out) = check_config(&text, &[]);
    assert!(!ok && out.contains("max_in_flight"));
    assert!(!out.contains(API_SECRET), "{out}");

    // In a running daemon at debug level, talking to the simulator.
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "2", "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let started = unix_now();
    let exporter = Exporter::start(tmp.path(), &config, addr, "trace");
    sim.send("app-a", "4477001234", "secret-1");
    drop_spool_file(&exporter.spool(), "o", "secret-1\n");
    metric("otp_orders_total")
        .value(1.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(30));
    let signatures: Vec<String> = (started - 2..unix_now() + 2)
        .map(|ts| sign(API_KEY, API_SECRET, &ts.to_string()))
        .collect();
    let mut seen = exporter.proc.log();
    seen.push_str(&get(addr, "/").unwrap().1);
    seen.push_str(&get(addr, "/metrics").unwrap().1);
    assert!(seen.contains("order finalized"), "the log was captured");
    assert!(!seen.contains(API_SECRET), "secret leaked");
    for sig in &signatures {
        assert!(!seen.contains(sig.as_str()), "signature leaked");
    }
}

#[test]
fn an_unreachable_api_keeps_orders_pending_and_the_daemon_up() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let dead = free_addr();
    let config = exporter_config(tmp.path(), addr, &format!("http://{dead}/otp"), "");
    let exporter = Exporter::start_with(tmp.path(), &config, addr, &["--log-format", "json"]);
    drop_spool_file(&exporter.spool(), "o", "p1\np2\n");
    let pending = metric("otp_exporter_orders_pending").value(2.0);
    let m = assert_all_eventually(
        &exporter.metrics_url(),
        Duration::from_secs(10),
        &[
            metric("otp_exporter_api_requests_total")
                .label("status", "connect_error")
                .at_least(2.0),
            pending.clone(),
        ],
    );
    pending.assert_in(&m);
    assert_eq!(get(addr, "/healthz").unwrap().0, 200);
    // api_up does not stay 1 while nothing answers.
    metric("otp_exporter_api_up")
        .value(0.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(10));
    assert!(exporter.proc.log().contains("the API does not answer"));
    // max_age (15 s) passes with the API unreachable: the orders expire, counted once.
    let m = metric("otp_orders_total")
        .value(2.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(30));
    metric("otp_orders_total")
        .label("outcome", "expired")
        .label("channel", "none")
        .label("country", "unknown")
        .value(2.0)
        .assert_in(&m);
}

fn rules() -> LineRules {
    LineRules {
        apps: ["ad454212".to_string()].into_iter().collect(),
        default_app: Some("ad454212".into()),
    }
}

/// Runs a snippet that should leave exactly one spool file naming `order_id`.
fn assert_snippet_drops(
    what: &str,
    run: impl FnOnce(&std::path::Path) -> std::process::Output,
    order_id: &str,
) {
    let spool = tempfile::tempdir().unwrap();
    let out = run(spool.path());
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(spool.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{what}: exactly one file, no leftovers");
    let name = files[0].file_name().to_string_lossy().into_owned();
    assert!(
        !name.starts_with('.') && !name.ends_with(".tmp"),
        "{what}: {name}"
    );
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let orders: Vec<_> = text
        .lines()
        .filter_map(|l| parse_line(l, &rules(), 0, i64::MAX / 2).unwrap())
        .collect();
    assert_eq!(orders.len(), 1, "{what}: {text}");
    assert_eq!(orders[0].order_id, order_id);
    assert!(
        orders[0].issued_ms > 1_700_000_000_000,
        "{what}: issuedAt is now"
    );
}

#[test]
fn example_snippets_drop_orders_atomically() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/drop-order");
    // (what, interpreter, snippet, order id). Java 11+ runs a single source file
    // directly. Every interpreter is installed by the test command: a missing one
    // fails here instead of skipping its snippet.
    let snippets = [
        ("shell", "sh", "drop-order.sh", "SH-1"),
        ("python", "python3", "drop_order.py", "PY-1"),
        ("java", "java", "DropOrder.java", "JAVA-1"),
        ("php", "php", "drop_order.php", "PHP-1"),
    ];
    for (what, interpreter, snippet, order_id) in snippets {
        assert_snippet_drops(
            what,
            |spool| {
                Command::new(interpreter)
                    .arg(format!("{examples}/{snippet}"))
                    .arg(order_id)
                    .arg(spool)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run {interpreter} for the {what} snippet ({e}); scripts/test.sh installs it")
                    })
            },
            order_id,
        );
    }
}

/// A tmpfs mounted for a test, unmounted on drop (also when the test fails).
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(at: &std::path::Path) -> Mounted {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount tmpfs on {} (needs root)",
            at.display()
        );
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A spool subdirectory that cannot be moved (a mount point: rename(2) answers EBUSY,
/// also to root) is logged once, retried with backoff, and counted in
/// `otp_exporter_spool_files_quarantined_total` only once it has really been moved.
#[test]
fn a_spool_directory_that_cannot_be_moved_logs_once_and_counts_only_when_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let dead = free_addr();
    let config = exporter_config(tmp.path(), addr, &format!("http://{dead}/otp"), "");
    let held = tmp.path().join("spool").join("held");
    std::fs::create_dir(&held).unwrap();
    let mount = Mounted::tmpfs(&held);
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let quarantined = |m: &Metrics| {
        m.sum(
            "otp_exporter_spool_files_quarantined_total",
            &[("reason", "directory")],
        )
    };
    let failures = |log: &str| log.matches("cannot quarantine spool file").count();
    wait_for(Duration::from_secs(10), || {
        (failures(&exporter.proc.log()) > 0).then_some(())
    })
    .expect("the failed move is logged");
    // Several rescans (every 2 s) later: still one line, nothing counted, still there.
    std::thread::sleep(Duration::from_secs(7));
    let log = exporter.proc.log();
    assert_eq!(failures(&log), 1, "logged once:\n{log}");
    assert!(log.contains("Device or resource busy"), "{log}");
    assert_eq!(
        quarantined(&exporter.metrics()),
        0.0,
        "not moved, not counted"
    );
    assert!(held.exists());
    // The cause goes away: a later try moves it, and only now is it counted.
    drop(mount);
    metric("otp_exporter_spool_files_quarantined_total")
        .label("reason", "directory")
        .value(1.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(30));
    assert!(!held.exists(), "moved out of the spool");
    assert_eq!(failures(&exporter.proc.log()), 1);
}
