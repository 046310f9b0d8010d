//! A state file that is empty, truncated or damaged is never silently replaced, and
//! damage never panics (issue 8, defects 3 and 4).
//!
//! The fuzz test damages copies of a real state file (written through the store's own
//! API: several commits of admitted, progressed and finalized orders) in hundreds of
//! seeded ways and opens and loads each: every copy either loads orders of the original
//! (and then takes a write) or is refused with an error naming the file and what to do.

mod common;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::*;
use itnio_otp_exporter::error::Chain;
use itnio_otp_exporter::store::{OnDamage, Opened, PendingState, Store};

const ORDERS: usize = 300;
const PAGE: usize = 4096;

/// A real state file: 300 orders admitted in 10 commits, then progress and 40
/// finalized in two more; returns its bytes and every id it ever held. `closed`: as a
/// stopped daemon leaves it; otherwise as kill -9 does (no close: the newest commit is
/// one-phase, so redb's repair may go back to the commit before it).
fn real_state_file(closed: bool) -> (Vec<u8>, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("fuzz-order-{i:05}")).collect();
    for (batch, chunk) in ids.chunks(30).enumerate() {
        let orders: Vec<(&str, PendingState)> = chunk
            .iter()
            .map(|id| (id.as_str(), PendingState::new("app-a".into(), batch as i64)))
            .collect();
        store.admit(&orders, 1_000 + batch as i64).unwrap();
    }
    let mut progressed = PendingState::new("app-a".into(), 1);
    progressed.polls = 3;
    progressed.answers = 2;
    let updates: Vec<(&str, &PendingState)> = ids[..100]
        .iter()
        .map(|id| (id.as_str(), &progressed))
        .collect();
    store.apply(&updates, &[], &[], 2_000).unwrap();
    let finalized: Vec<&str> = ids[100..140].iter().map(String::as_str).collect();
    store.apply(&[], &finalized, &[], 3_000).unwrap();
    let bytes = std::fs::read(store.path()).unwrap();
    if closed {
        drop(store);
    } else {
        // The leaked handle keeps only this function's temporary file locked.
        std::mem::forget(store);
    }
    (bytes, ids.into_iter().collect())
}

/// The `n`th damaged copy of `original`, and what was done to it. `written` are the
/// offsets of its non-zero bytes: flips there hit headers, tree pages and rows rather
/// than the file's unused preallocated space.
fn damage(original: &[u8], written: &[usize], n: u64) -> (Vec<u8>, String) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + n);
    let mut bytes = original.to_vec();
    let what = match n % 5 {
        0 if n == 0 => {
            bytes.clear();
            "zero length".to_string()
        }
        0 => {
            let len = rng.gen_range(1..bytes.len());
            bytes.truncate(len);
            format!("truncated to {len} bytes")
        }
        1 => {
            let at = rng.gen_range(0..bytes.len());
            bytes[at] ^= 1 << rng.gen_range(0..8);
            format!("bit flip at {at}")
        }
        2 | 3 => {
            let flips = rng.gen_range(1..=4);
            let mut at = Vec::new();
            for _ in 0..flips {
                let i = written[rng.gen_range(0..written.len())];
                bytes[i] ^= 1 << rng.gen_range(0..8);
                at.push(i);
            }
            format!("bit flips in written bytes at {at:?}")
        }
        _ => {
            let page = written[rng.gen_range(0..written.len())] / PAGE;
            let end = ((page + 1) * PAGE).min(bytes.len());
            bytes[page * PAGE..end].fill(0);
            format!("page {page} zeroed")
        }
    };
    (bytes, what)
}

/// How one damaged copy ended.
#[derive(Debug, Default)]
struct Tally {
    loaded: usize,
    loaded_with_undecodable: usize,
    /// Loaded the commit before the newest (300 pending instead of 260): redb fell back
    /// because the newest failed its checksums.
    loaded_previous_commit: usize,
    refused: usize,
    write_failed: usize,
}

/// Opens, loads and writes to `state_dir` under `catch_unwind`; an `Err` is a test
/// failure (panic, silent empty start, foreign ids, or an error that does not say
/// what to do).
fn open_load_write(
    state_dir: &Path,
    file: &Path,
    ids: &BTreeSet<String>,
    tally: &mut Tally,
) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let loaded = Store::open_with(state_dir, OnDamage::Refuse).and_then(|opened| {
            let loaded = opened.store.load_pending()?;
            Ok((opened, loaded))
        });
        let (
            Opened {
                store, rolled_back, ..
            },
            (pending, undecodable),
        ) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                let message = Chain(&e).to_string();
                let names_file = message.contains(&file.display().to_string());
                let says_what_to_do = message.contains("restore it from a backup")
                    && message.contains("--reset-state");
                if names_file && says_what_to_do {
                    tally.refused += 1;
                    return Ok(());
                }
                return Err(format!(
                    "refused without naming the file and what to do: {message}"
                ));
            }
        };
        if pending.is_empty() && undecodable.is_empty() {
            return Err("started with an empty state although the file had orders".into());
        }
        if let Some(foreign) = pending.iter().find(|o| !ids.contains(&o.order_id)) {
            return Err(format!(
                "loaded an order that never was: {:?}",
                foreign.order_id
            ));
        }
        tally.loaded += 1;
        if pending.len() + undecodable.len() == ORDERS {
            if !rolled_back {
                return Err("went back to the previous commit without saying so".into());
            }
            tally.loaded_previous_commit += 1;
        }
        if !undecodable.is_empty() {
            tally.loaded_with_undecodable += 1;
        }
        // The daemon's first writes: an intake and a finalization.
        let wrote = store
            .admit(&[("fuzz-new", PendingState::new("app-a".into(), 5))], 5_000)
            .and_then(|_| {
                let first = pending.first().map(|o| o.order_id.as_str());
                store.apply(&[], first.as_slice(), &[], 5_001)
            });
        if wrote.is_err() {
            tally.write_failed += 1;
        }
        Ok(())
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Hundreds of copies are opened and written (each with fsyncs): on tmpfs when the
/// machine has one, so that the test takes seconds, not half a minute of disk syncs.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn damaged_copies_of_a_real_state_file_load_or_are_refused_by_name_never_panic() {
    let originals = [real_state_file(true), real_state_file(false)];
    let ids = &originals[0].1;
    let written: Vec<Vec<usize>> = originals
        .iter()
        .map(|(bytes, _)| (0..bytes.len()).filter(|&i| bytes[i] != 0).collect())
        .collect();
    let tmp = scratch_dir();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let mut previous = Vec::new();
    const COPIES: u64 = 300;
    for n in 0..COPIES {
        let state_dir = tmp.path().join(format!("copy-{n}"));
        std::fs::create_dir_all(&state_dir).unwrap();
        let file = state_dir.join("state.redb");
        // Alternately the file of a stopped daemon and of a killed one.
        let which = (n % 2) as usize;
        let (bytes, what) = damage(&originals[which].0, &written[which], n);
        let what = format!("{} file, {what}", ["closed", "kill -9"][which]);
        std::fs::write(&file, &bytes).unwrap();
        let before = tally.loaded_previous_commit;
        if let Err(problem) = open_load_write(&state_dir, &file, ids, &mut tally) {
            failures.push(format!("copy {n} ({what}): {problem}"));
        }
        // Whatever happened, the damaged file was neither deleted nor replaced.
        if !failures.is_empty() && std::fs::metadata(&file).is_err() {
            failures.push(format!("copy {n} ({what}): the file is gone"));
        }
        if tally.loaded_previous_commit > before {
            previous.push(format!("{n}: {what}"));
        }
        std::fs::remove_dir_all(&state_dir).unwrap();
    }
    eprintln!("{COPIES} damaged copies of two state files: {tally:?}");
    eprintln!("the commit before the newest loaded from: {previous:?}");
    assert!(
        failures.is_empty(),
        "{} of {COPIES} damaged copies failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The seeds reach both ends: some copies still load, some are refused.
    assert!(tally.loaded > 0 && tally.refused > 0, "{tally:?}");
}

#[test]
fn reset_sets_a_damaged_file_aside_and_starts_empty_but_never_moves_a_busy_file() {
    use itnio_otp_exporter::store::{Damage, StoreError};
    let (original, _) = real_state_file(true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    // Everything after the header page zeroed: both commit slots point at zeros.
    let mut bytes = original.clone();
    bytes[PAGE..].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Damaged(d)) => {
            assert_eq!(d.path, file);
            assert_eq!(d.damage, Damage::Unreadable);
        }
        other => panic!("not refused as damaged: {other:?}"),
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the refused file was changed"
    );

    let opened = Store::open_with(dir.path(), OnDamage::SetAside).unwrap();
    let set_aside = opened.set_aside.expect("the damaged file was set aside");
    let name = set_aside.aside.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("state.redb.damaged-"), "{name}");
    assert_eq!(
        std::fs::read(&set_aside.aside).unwrap(),
        bytes,
        "the damaged copy is kept as it was"
    );
    assert_eq!(opened.store.load_pending().unwrap().0.len(), 0);
    assert_eq!(opened.store.path(), file);

    // A healthy file held open by another daemon is busy, not damaged: --reset-state
    // must not move it aside.
    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("state.redb"), &original).unwrap();
    let holder = Store::open(busy.path()).unwrap();
    let err = Store::open_with(busy.path(), OnDamage::SetAside).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let entries = std::fs::read_dir(busy.path()).unwrap().count();
    assert_eq!(entries, 1, "a busy file was moved aside");
    assert_eq!(holder.load_pending().unwrap().0.len(), ORDERS - 40);
}

#[test]
fn a_redb_file_without_our_tables_is_refused_by_name() {
    use itnio_otp_exporter::store::{Damage, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        let other: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("something_else");
        txn.open_table(other).unwrap().insert("k", 1).unwrap();
        txn.commit().unwrap();
    }
    match Store::open(dir.path()) {
        Err(StoreError::Damaged(d)) => {
            assert_eq!(
                d.damage,
                Damage::MissingTables {
                    found: vec!["something_else".into()]
                }
            );
            let message = d.to_string();
            assert!(
                message.contains("something_else") && message.contains("--reset-state"),
                "{message}"
            );
        }
        other => panic!("not refused: {other:?}"),
    }
}

/// The daemon with the test config and an API that never answers (orders stay pending).
fn daemon(dir: &Path, addr: std::net::SocketAddr, run_flags: &[&str]) -> Proc {
    let config = exporter_config(dir, addr, "http://127.0.0.1:9", "");
    let config = config.display().to_string();
    let mut args = vec!["run", "--config", &config];
    args.extend(run_flags);
    Proc::spawn("exporter", &args, &[("TEST_ITNIO_SECRET", API_SECRET)])
}

/// Starts the daemon with `run_flags`, waits until it is ready and checks that it
/// tracks `pending` orders.
fn ready_daemon_with_pending(dir: &Path, run_flags: &[&str], pending: f64) -> Proc {
    let addr = free_addr();
    let daemon = daemon(dir, addr, run_flags);
    assert!(
        answers_ok(addr, "/readyz", Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    let text = get(addr, "/metrics").unwrap().1;
    assert_eq!(
        metric::Metrics::parse(&text).sum("otp_exporter_orders_pending", &[]),
        pending
    );
    daemon
}

/// Starts the daemon, which must exit 1 (the state file is refused); returns its log.
fn refused_start(dir: &Path) -> String {
    let mut refused = daemon(dir, free_addr(), &[]);
    assert_eq!(
        exit_code(&mut refused, Duration::from_secs(20)),
        Some(1),
        "{}",
        refused.log()
    );
    refused.log()
}

fn exit_code(proc: &mut Proc, within: Duration) -> Option<i32> {
    wait_for(within, || proc.child.try_wait().ok().flatten()).and_then(|s| s.code())
}

/// The state file of a real run: the daemon takes `n` orders from the spool, keeps
/// them pending (the API does not answer) and stops on SIGTERM.
fn state_file_of_a_real_run(dir: &Path, n: usize) -> PathBuf {
    let addr = free_addr();
    let mut exporter = daemon(dir, addr, &[]);
    assert!(
        answers_ok(addr, "/readyz", Duration::from_secs(20)),
        "{}",
        exporter.log()
    );
    let ids: String = (0..n).map(|i| format!("real-order-{i:04}\n")).collect();
    drop_spool_file(&dir.join("spool"), "orders", &ids);
    let pending = wait_for(Duration::from_secs(20), || {
        let text = get(addr, "/metrics").ok()?.1;
        let pending = metric::Metrics::parse(&text).sum("otp_exporter_orders_pending", &[]);
        (pending as usize == n).then_some(pending)
    });
    assert!(pending.is_some(), "orders not taken:\n{}", exporter.log());
    assert_eq!(
        exporter.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        exporter.log()
    );
    dir.join("state/state.redb")
}

fn error_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{log}"))
}

#[test]
fn the_daemon_refuses_an_empty_or_damaged_state_file_by_name_and_resets_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let file = state_file_of_a_real_run(dir.path(), 300);
    let real = std::fs::read(&file).unwrap();

    // What some crashes and bad restores leave: zero bytes. Today's daemon must not
    // start on it as if it were new (300 orders would vanish without a word).
    std::fs::write(&file, b"").unwrap();
    let log = refused_start(dir.path());
    let line = error_line(&log);
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("empty"), "{line}");
    assert!(
        line.contains("restore it from a backup") && line.contains("--reset-state"),
        "{line}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        0,
        "the file was replaced"
    );

    // Damaged pages: the same refusal, and no panic.
    let mut damaged = real.clone();
    damaged[PAGE..].fill(0);
    std::fs::write(&file, &damaged).unwrap();
    let log = refused_start(dir.path());
    let line = error_line(&log);
    assert!(
        line.contains(&file.display().to_string()) && line.contains("--reset-state"),
        "{line}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // Told to start anew: it starts, empty, and the damaged file is kept aside.
    let mut reset = ready_daemon_with_pending(dir.path(), &["--reset-state"], 0.0);
    let log = reset.log();
    assert!(log.contains("moved aside"), "{log}");
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.redb.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), damaged);
    assert!(log.contains(&aside[0].display().to_string()), "{log}");
    assert_eq!(
        reset.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        reset.log()
    );

    // A healthy file is never set aside, with or without the flag: its orders resume.
    std::fs::write(&file, &real).unwrap();
    let mut healthy = ready_daemon_with_pending(dir.path(), &["--reset-state"], 300.0);
    assert_eq!(
        healthy.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        healthy.log()
    );
}

/// A state file as kill -9 leaves it: the newest commit is a one-phase commit (redb's
/// default) and the file was not closed, so a damaged newest commit is repaired by
/// going back to the commit before it. That is never silent: `Opened::rolled_back`
/// (the daemon logs a warning naming the file).
#[test]
fn a_fall_back_to_the_previous_commit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("kill9-order-{i:05}")).collect();
    let orders: Vec<(&str, PendingState)> = ids
        .iter()
        .map(|id| (id.as_str(), PendingState::new("app-a".into(), 1)))
        .collect();
    store.admit(&orders, 1_000).unwrap();
    let finalized: Vec<&str> = ids[..40].iter().map(String::as_str).collect();
    store.apply(&[], &finalized, &[], 2_000).unwrap();
    let original = std::fs::read(store.path()).unwrap();
    // As kill -9: no close (the leaked handle keeps only this test's directory locked).
    std::mem::forget(store);

    let open = |bytes: &[u8]| -> Result<(Opened, usize), String> {
        let copy = tempfile::tempdir().unwrap();
        std::fs::write(copy.path().join("state.redb"), bytes).unwrap();
        let opened = Store::open_with(copy.path(), OnDamage::Refuse).map_err(|e| e.to_string())?;
        let (pending, _) = opened.store.load_pending().map_err(|e| e.to_string())?;
        Ok((opened, pending.len()))
    };
    let (undamaged, pending) = open(&original).unwrap();
    assert!(!undamaged.rolled_back);
    assert_eq!(pending, ORDERS - 40);

    // Zero each written page in turn: whenever the commit before the newest is what
    // loads (all 300 pending), the open said so.
    let (mut rolled_back, mut newest, mut refused) = (0, 0, 0);
    for page in 1..original.len() / PAGE {
        let range = page * PAGE..(page + 1) * PAGE;
        if original[range.clone()].iter().all(|&b| b == 0) {
            continue;
        }
        let mut bytes = original.clone();
        bytes[range].fill(0);
        match open(&bytes) {
            Ok((opened, pending)) if pending == ORDERS => {
                assert!(
                    opened.rolled_back,
                    "page {page}: silently back to the previous commit"
                );
                rolled_back += 1;
            }
            Ok((opened, pending)) => {
                assert_eq!(pending, ORDERS - 40, "page {page}");
                assert!(!opened.rolled_back, "page {page}");
                newest += 1;
            }
            Err(message) => {
                assert!(message.contains("--reset-state"), "page {page}: {message}");
                refused += 1;
            }
        }
    }
    eprintln!(
        "pages zeroed: {rolled_back} rolled back, {newest} newest commit kept, {refused} refused"
    );
    assert!(rolled_back > 0, "no page of the newest commit was hit");
}
