//! Descriptor exhaustion through the HTTP port (issue 8, defect 7): the real binary,
//! limited to 1,024 descriptors by `prlimit`, gets 2,000 idle TCP connections that
//! never send a byte. Connections past the cap are closed at once, idle ones are
//! closed by the header-read timeout, the spool keeps taking files meanwhile and
//! scrapes work again, with a handful of log lines rather than one per connection.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const IDLE_CONNECTIONS: usize = 2_000;
const DAEMON_NOFILE: &str = "--nofile=1024:1024";

/// The soft descriptor limit of this process, from /proc (no libc in the tests).
fn own_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line.split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The test itself holds the 2,000 connections: make sure it may.
fn raise_own_nofile_limit() {
    if own_nofile_limit() >= 4_096 {
        return;
    }
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=8192:8192",
        ])
        .status()
        .expect("prlimit (util-linux)");
    assert!(
        status.success(),
        "cannot raise the test's own descriptor limit"
    );
}

/// Opens idle connections (they never send a byte); stops early if the port stops
/// completing handshakes, which is itself a failure the test reports.
fn open_idle(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(count);
    let mut failures = 0;
    while open.len() < count && failures < 20 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => open.push(stream),
            Err(_) => failures += 1,
        }
    }
    open
}

/// True when the server closes (EOF or reset) the connection within `within`
/// without having been sent anything.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn idle_connections_past_the_descriptor_limit_stop_neither_scrapes_nor_intake() {
    raise_own_nofile_limit();
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let mut cmd = Command::new("prlimit");
    cmd.arg(DAEMON_NOFILE)
        .arg(BIN)
        .args(["--log-level", "info", "run", "--config"])
        .arg(&config)
        .env("TEST_ITNIO_SECRET", API_SECRET);
    let exporter = Proc::spawn_command("exporter", cmd);
    assert!(
        answers_ok(addr, "/readyz", Duration::from_secs(20)),
        "exporter not ready:\n{}",
        exporter.log()
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", exporter.child.id()))
        .expect("the daemon's limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")),
        "prlimit did not apply:\n{limits}"
    );

    let flood_started = Instant::now();
    let mut idle = open_idle(addr, IDLE_CONNECTIONS);
    assert_eq!(
        idle.len(),
        IDLE_CONNECTIONS,
        "the port stopped completing handshakes:\n{}",
        exporter.log()
    );

    // Past the cap a new connection is closed at once, not left hanging.
    let mut extra = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    assert!(
        closed_by_server(&mut extra, Duration::from_secs(2)),
        "a connection past the cap was left open"
    );

    // Intake goes on while the idle connections are held: the spool needs descriptors.
    let spool = tmp.path().join("spool");
    drop_spool_file(&spool, "during-flood", "flood-order-1\nflood-order-2\n");
    let taken = wait_for(Duration::from_secs(20), || {
        (!spool.join("during-flood").exists()).then_some(())
    });
    assert!(
        taken.is_some(),
        "the spool file was not taken in during the flood:\n{}",
        exporter.log()
    );

    // The first connections never sent a request: the header-read timeout closes them.
    assert!(
        closed_by_server(&mut idle[0], Duration::from_secs(20)),
        "an idle connection was never closed by the server"
    );

    // Scrapes work again while the test still holds every one of its sockets.
    let scraped = wait_for(Duration::from_secs(30), || {
        get(addr, "/metrics")
            .ok()
            .filter(|(status, _)| *status == 200)
    });
    let (_, text) = scraped.unwrap_or_else(|| {
        panic!(
            "no scrape succeeded within {:?} of the flood:\n{}",
            flood_started.elapsed(),
            exporter.log()
        )
    });
    let metrics = Metrics::parse(&text);
    assert_eq!(
        metrics.sum("otp_exporter_spool_lines_total", &[("result", "accepted")]),
        2.0,
        "{text}"
    );

    // A spool file after the flood is taken in too.
    drop_spool_file(&spool, "after-flood", "flood-order-3\n");
    metric("otp_exporter_spool_lines_total")
        .label("result", "accepted")
        .value(3.0)
        .assert_eventually(&format!("http://{addr}/metrics"), Duration::from_secs(20));

    // No line per connection: the flood is reported, not narrated.
    let log = exporter.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    assert!(
        warnings <= 10,
        "{warnings} warning/error lines for one flood:\n{log}"
    );
    drop(idle);
}

/// A keep-alive connection idle between requests is closed by the header-read
/// timeout (10 s); a client that stops reading its responses is cut by the idle
/// timeout (30 s) instead of holding its slot forever.
#[test]
fn idle_keep_alive_and_stalled_readers_are_closed() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");

    let mut keep_alive = TcpStream::connect(addr).unwrap();
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut first = [0u8; 17];
    keep_alive.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    let idle_since = Instant::now();
    let mut rest = [0u8; 4096];
    while keep_alive.read(&mut rest).map(|n| n > 0).unwrap_or(false) {}
    // Drained: the next read waits for the server to close.
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let closed = matches!(keep_alive.read(&mut rest), Ok(0) | Err(_));
    let after = idle_since.elapsed();
    assert!(
        closed && after >= Duration::from_secs(8) && after < Duration::from_secs(20),
        "an idle keep-alive connection was closed after {after:?} (closed: {closed})"
    );

    // Pipelined scrape requests, never reading: the socket buffers fill, no byte
    // moves, and the server cuts the connection.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    let cut = (0..1_000_000).any(|_| {
        stalled
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .is_err()
    });
    let after = started.elapsed();
    assert!(
        cut && after < Duration::from_secs(55),
        "a client that never reads was not cut (after {after:?}):\n{}",
        exporter.proc.log()
    );
}
