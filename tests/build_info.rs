//! The exporter conventions of Prometheus' own exporters, on the real binary:
//! `--version` names the revision it was built from, and a live scrape carries
//! `otp_exporter_build_info{version,revision,rustc}` and the standard `process_*` metrics.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The revision build.rs must have recorded: git's, when the crate root is a checkout
/// git can read; else the documented override; else `unknown`.
fn expected_revision() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if root.join(".git").exists() {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success());
        if let Some(out) = out {
            let revision = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(revision.len(), 12, "git rev-parse --short=12: {revision:?}");
            return revision;
        }
    }
    match option_env!("ITNIO_OTP_EXPORTER_REVISION").map(str::trim) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => "unknown".to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn version_names_the_checkouts_revision_build_date_and_rustc() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let revision = expected_revision();
    let first = text.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!(
            "itnio-otp-exporter {} (revision: {revision})",
            env!("CARGO_PKG_VERSION")
        ),
        "{text}"
    );
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    let date = field("build date:");
    assert!(is_utc_timestamp(&date), "build date {date:?}");
    // Not in the future; with SOURCE_DATE_EPOCH, exactly that instant.
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    let now = String::from_utf8_lossy(&now.stdout).trim().to_string();
    assert!(date <= now, "build date {date} after now {now}");
    if let Some(epoch) = option_env!("SOURCE_DATE_EPOCH") {
        let want = Command::new("date")
            .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date");
        assert_eq!(date, String::from_utf8_lossy(&want.stdout).trim());
    }
    let rustc = field("rustc version:");
    let parts: Vec<&str> = rustc.split(['.', '-']).collect();
    assert!(
        parts.len() >= 3 && parts[..3].iter().all(|p| p.parse::<u32>().is_ok()),
        "rustc version {rustc:?}"
    );
    assert!(!field("target:").is_empty());

    // -V: the same facts on one line.
    let short = Command::new(BIN).arg("-V").output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        format!(
            "itnio-otp-exporter {} (revision: {revision}, build date: {date})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn a_live_scrape_has_build_info_and_the_process_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let spawned_at = unix_now() as f64;

    let text = exporter.metrics_text();
    let build_info: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("otp_exporter_build_info"))
        .collect();
    let prefix = format!(
        r#"otp_exporter_build_info{{revision="{}",rustc=""#,
        expected_revision()
    );
    let suffix = format!(r#"",version="{}"}} 1"#, env!("CARGO_PKG_VERSION"));
    let rustc = match build_info.as_slice() {
        [line] => line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .unwrap_or_else(|| panic!("want {prefix}…{suffix}, got {line}")),
        other => panic!("want one otp_exporter_build_info series, got {other:?}"),
    };
    // The same compiler as `--version` names.
    let version_out = Command::new(BIN).arg("--version").output().expect("run");
    let version_text = String::from_utf8_lossy(&version_out.stdout);
    assert!(
        version_text
            .lines()
            .any(|l| l.trim() == format!("rustc version: {rustc}")),
        "rustc={rustc:?} vs --version:\n{version_text}"
    );

    // The process_* metrics describe the exporter's own process, as /proc shows it.
    let m = Metrics::parse(&text);
    let pid = exporter.proc.child.id();
    let fds_now = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    let open_fds = m.sum("process_open_fds", &[]);
    // The scrape's own connection comes and goes; a handful either way is the same process.
    assert!(
        open_fds >= 5.0 && (open_fds - fds_now).abs() <= 8.0,
        "process_open_fds {open_fds}, /proc/{pid}/fd has {fds_now}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let vm_rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let rss = m.sum("process_resident_memory_bytes", &[]);
    assert!(
        rss > 0.0 && (rss - vm_rss_kib * 1024.0).abs() < 64.0 * 1024.0 * 1024.0,
        "process_resident_memory_bytes {rss}, VmRSS {vm_rss_kib} KiB"
    );
    let start = m.sum("process_start_time_seconds", &[]);
    assert!(
        start <= spawned_at + 1.0 && start >= spawned_at - 60.0,
        "process_start_time_seconds {start}, spawned by {spawned_at}"
    );
    metric("process_cpu_seconds_total").assert_in(&m);
    metric("process_max_fds").at_least(open_fds).assert_in(&m);
    metric("process_threads").at_least(2.0).assert_in(&m);
    metric("process_virtual_memory_bytes")
        .at_least(rss)
        .assert_in(&m);

    let (clean, output) = promtool_check(&text);
    assert!(clean, "promtool check metrics: {output}");
}
