//! A full disk while orders finalize, on a real small filesystem: the state directory
//! is a tmpfs of a few MiB that the test mounts (as root, as CI runs) and fills with a
//! filler file. While full, the daemon is not ready and says why, exports the store
//! metrics and leaves spool files in the spool; once the filler is gone it recovers by
//! itself (no restart); and across that run and a restart every order is counted
//! exactly once, as the simulator's ground truth says.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

type Counts = BTreeMap<Vec<String>, f64>;

const PREFIXES: &[&str] = &["91", "62", "55", "234", "63", "1", "44", "52", "84", "86"];

/// A tmpfs mounted for the test, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs for the state directory and must run as root \
             (as CI does); `mount -t tmpfs -o size={size} tmpfs {}` failed: {}",
            dir.display(),
            output_text(&out)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process not yet reaped): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Keeps the filesystem of `dir` full with `dir/filler` until stopped: it fills it,
/// then takes whatever room appears again (redb may shrink its file on reopen), so the
/// disk stays full for as long as the test says.
struct Filler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
    path: PathBuf,
}

impl Filler {
    fn start(dir: &Path) -> Filler {
        let path = dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let first = top_up(&mut file);
        eprintln!("filled the state filesystem with {first} bytes");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut more = 0;
            while !stopped.load(Ordering::Relaxed) {
                more += top_up(&mut file);
                std::thread::sleep(Duration::from_millis(20));
            }
            more
        });
        Filler {
            stop,
            thread: Some(thread),
            path,
        }
    }

    /// Stops filling and frees the room.
    fn free(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let more = thread.join().unwrap_or(0);
            eprintln!("took {more} more bytes while the disk was to stay full");
        }
        std::fs::remove_file(&self.path).unwrap();
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes to `file` until the filesystem has no room left; returns the bytes written.
fn top_up(file: &mut std::fs::File) -> u64 {
    let mut written = 0u64;
    for size in [64 * 1024, 4096, 1] {
        let chunk = vec![0x55u8; size];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the state filesystem: {e}"),
            }
        }
    }
    written
}

fn orders_by_key(m: &Metrics) -> Counts {
    m.by(
        "otp_orders_total",
        &["app_id", "channel", "country", "outcome"],
    )
}

fn send_orders(sim: &Sim, from: usize, to: usize) -> String {
    let mut text = String::new();
    for i in from..to {
        let prefix = PREFIXES[i % PREFIXES.len()];
        let phone = format!("{prefix}{:09}", 700_000_000 + i * 7919 % 99_999_999);
        // Long ids (the longest allowed is 64) make every write take more pages.
        let order_id = format!("disk-{i:04}-{}", "0123456789".repeat(5));
        sim.send("app-a", &phone, &order_id);
        text.push_str(&order_id);
        text.push('\n');
    }
    text
}

fn add(into: &mut Counts, from: &Counts) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0.0) += v;
    }
}

#[test]
fn a_full_disk_makes_the_daemon_not_ready_and_no_order_is_counted_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    // Declared before the exporter, so the exporter is killed before the unmount.
    let disk = Tmpfs::mount(&state, "4m");
    let sim = Sim::start(&["--seed", "11", "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    let url = exporter.metrics_url();
    // Every problem found, so that one run reports all of them.
    let mut problems: Vec<String> = Vec::new();

    // The first orders enter while there is room; the disk fills before they finalize.
    let (first, second) = (120, 40);
    let text = send_orders(&sim, 0, first);
    drop_spool_file(&exporter.spool(), "before-full", &text);
    metric("otp_exporter_spool_lines_total")
        .label("result", "accepted")
        .value(first as f64)
        .assert_eventually(&url, Duration::from_secs(20));
    let filler = Filler::start(&state);

    // Not ready, with the reason, and the store metrics say so. redb reuses pages it
    // freed inside its file, so a full filesystem fails a write only once the database
    // needs to grow; while no write has failed yet, more orders arrive (each file's
    // orders are new data, so growth comes soon).
    let mut sent = first;
    let mut last_file = std::time::Instant::now();
    let not_ready = wait_for(Duration::from_secs(40), || {
        let answer = get(addr, "/readyz").ok().filter(|(s, _)| *s == 503);
        if answer.is_none() && last_file.elapsed() > Duration::from_secs(2) && sent < first * 5 {
            let text = send_orders(&sim, sent, sent + 40);
            drop_spool_file(&exporter.spool(), &format!("more-{sent}"), &text);
            sent += 40;
            last_file = std::time::Instant::now();
        }
        answer
    });
    eprintln!("{} orders sent before a write failed", sent);
    match &not_ready {
        Some((_, body)) if body.contains("No space left on device") => {}
        Some((_, body)) => problems.push(format!(
            "/readyz is 503 but does not name the cause: {body:?}"
        )),
        None => problems.push("/readyz stayed 200 while the state disk was full".into()),
    }
    let m = exporter.metrics();
    if m.sum("otp_exporter_store_healthy", &[]) != 0.0
        || m.sum("otp_exporter_store_errors_total", &[]) < 1.0
    {
        problems.push(format!(
            "store metrics while full:\n{}\n{}",
            m.list("otp_exporter_store_healthy"),
            m.list("otp_exporter_store_errors_total")
        ));
    }
    // New orders arrive while the disk is full: their file waits in the spool.
    let text = send_orders(&sim, sent, sent + second);
    drop_spool_file(&exporter.spool(), "while-full", &text);
    // Long enough for every first order to reach its decision (max_age 15 s). A nearly
    // full disk may still take a write now and then (redb reuses free pages), so the
    // file may be taken in such a moment; then its orders are recorded. Either way
    // nothing is lost: it is in the spool or accepted.
    std::thread::sleep(Duration::from_secs(16));
    let accepted = exporter
        .metrics()
        .sum("otp_exporter_spool_lines_total", &[("result", "accepted")]);
    let waiting = exporter.spool().join("while-full").exists();
    let total = (sent + second) as f64;
    if !waiting && accepted != total {
        problems.push(format!(
            "the spool file left the spool while the disk was full, but only {accepted} orders were accepted"
        ));
    }
    let during = exporter.metrics();
    eprintln!(
        "while full: {} orders counted, {} pending, store errors:\n{}",
        during.sum("otp_orders_total", &[]),
        during.sum("otp_exporter_orders_pending", &[]),
        during.list("otp_exporter_store_errors_total")
    );
    let errors_logged = exporter.proc.log().matches(" ERROR ").count();
    eprintln!("error lines logged so far: {errors_logged}");
    if errors_logged > 10 {
        problems.push(format!(
            "{errors_logged} error lines while the disk was full: logged per order or per \
             retry, not once per distinct error"
        ));
    }

    // Room again: ready without a restart, the waiting file is taken, all finalize.
    filler.free();
    if !answers_ok(addr, "/readyz", Duration::from_secs(30)) {
        problems.push(format!(
            "not ready 30 s after the disk had room again: {:?}",
            get(addr, "/readyz").ok()
        ));
    }
    let run1 = wait_for(Duration::from_secs(40), || {
        let m = exporter.metrics();
        (m.sum("otp_exporter_spool_lines_total", &[("result", "accepted")]) == total
            && m.sum("otp_exporter_orders_pending", &[]) == 0.0)
            .then_some(m)
    });
    let run1 = run1.unwrap_or_else(|| {
        let m = exporter.metrics();
        problems.push(format!(
            "intake did not resume or orders did not finalize after the disk had room: \
             accepted {}, pending {}, counted {}",
            m.sum("otp_exporter_spool_lines_total", &[("result", "accepted")]),
            m.sum("otp_exporter_orders_pending", &[]),
            m.sum("otp_orders_total", &[])
        ));
        m
    });
    if run1.sum("otp_exporter_store_healthy", &[]) != 1.0 {
        problems.push(format!(
            "store not healthy after recovery:\n{}",
            run1.list("otp_exporter_store_healthy")
        ));
    }
    let mut counted = orders_by_key(&run1);
    let mut exporter = exporter;
    assert_eq!(exporter.proc.terminate(Duration::from_secs(20)), Some(0));
    let first_log = exporter.proc.log();
    drop(exporter);

    // A restart on the same state: whatever run 1 did not save is finalized now, and
    // whatever it counted is not counted again.
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    // Orders left pending are re-polled and finalize within max_age.
    std::thread::sleep(Duration::from_secs(3));
    let run2 = wait_for(Duration::from_secs(30), || {
        let m = exporter.metrics();
        (m.sum("otp_exporter_orders_pending", &[]) == 0.0).then_some(m)
    })
    .unwrap_or_else(|| exporter.metrics());
    add(&mut counted, &orders_by_key(&run2));

    let mut want = Counts::new();
    let truth = sim.truth();
    assert_eq!(truth.orders.len() as f64, total);
    for o in &truth.orders {
        let key = [&*o.app_id, &*o.channel, &*o.country, &*o.outcome];
        *want
            .entry(key.iter().map(|s| s.to_string()).collect())
            .or_insert(0.0) += 1.0;
    }
    let (got_total, run2_total) = (
        counted.values().sum::<f64>(),
        run2.sum("otp_orders_total", &[]),
    );
    if counted != want {
        problems.push(format!(
            "orders counted over both runs ({got_total}, {run2_total} of them after the \
             restart) differ from the {} orders sent:\n got {counted:?}\nwant {want:?}",
            truth.orders.len()
        ));
    }
    drop(exporter);
    drop(disk);
    if !problems.is_empty() {
        panic!(
            "{}\n----- first run log (tail) -----\n{}",
            problems.join("\n"),
            tail(&first_log, 60)
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
