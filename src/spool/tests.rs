//! The scan against real files: a spool and a store in a temporary folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc as tokio_mpsc;

use super::parse::tests::rules;
use super::*;
use crate::clock::unix_now_ms as now_ms;
use crate::error::Chain;
use crate::metrics::Metrics;
use crate::store::Store;

fn spool_in(
    dir: &Path,
    max_file_bytes: u64,
) -> (
    Spool,
    tokio_mpsc::UnboundedReceiver<Vec<SpoolOrder>>,
    Arc<Store>,
) {
    let store = Arc::new(Store::open(&dir.join("state")).unwrap());
    let (tx, rx) = tokio_mpsc::unbounded_channel();
    let spool_dir = dir.join("spool");
    fs::create_dir_all(&spool_dir).unwrap();
    let spool = Spool::new(
        SpoolOptions {
            dir: spool_dir,
            rules: rules(),
            max_file_bytes,
            min_file_age: Duration::ZERO,
        },
        store.clone(),
        Arc::new(Metrics::new(&["ad454212".into()])),
        tx,
    );
    spool.prepare().unwrap();
    (spool, rx, store)
}

/// A spool that reads files only after a minute without change, holding one file.
fn spool_waiting_for_quiet(
    dir: &Path,
    name: &str,
    text: &str,
) -> (
    Spool,
    tokio_mpsc::UnboundedReceiver<Vec<SpoolOrder>>,
    PathBuf,
) {
    let (mut spool, rx, _store) = spool_in(dir, 1 << 20);
    spool.min_file_age = Duration::from_secs(60);
    let path = spool.dir.join(name);
    fs::write(&path, text).unwrap();
    (spool, rx, path)
}

/// Sets a file's modification time, as a writer with another clock would.
fn set_modified(path: &Path, time: SystemTime) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(time).unwrap();
}

fn quarantine_texts(spool: &Spool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(spool.dir.join(QUARANTINE_DIR))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            (name, text)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_file_with_good_and_bad_lines_keeps_the_good_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, mut rx, store) = spool_in(tmp.path(), 1 << 20);
    fs::write(
        spool.dir.join("batch-1"),
        "o1\n\n# comment\nbad id\n{\"orderId\":\"o2\",\"appId\":\"other\"}\n{\"orderId\":\"o3\",\"appId\":\"ghost\"}\no1\n",
    )
    .unwrap();
    // Ignored: in-progress writes and hidden files.
    fs::write(spool.dir.join("batch-2.tmp"), "o9\n").unwrap();
    fs::write(spool.dir.join(".hidden"), "o9\n").unwrap();
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!(
        (totals.accepted, totals.duplicate, totals.rejected),
        (2, 1, 2)
    );
    let got: Vec<String> = rx
        .try_recv()
        .unwrap()
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    assert_eq!(got, vec!["o1", "o2"]);
    assert!(
        !spool.dir.join("batch-1").exists(),
        "consumed file is removed"
    );
    assert!(spool.dir.join("batch-2.tmp").exists());
    assert!(spool.dir.join(".hidden").exists());
    assert_eq!(store.counts().unwrap().0, 2);
    let q = quarantine_texts(&spool);
    assert_eq!(q.len(), 1);
    assert!(
        q[0].0.starts_with("batch-1.") && q[0].0.ends_with(".rejected"),
        "{q:?}"
    );
    assert!(q[0].1.contains("# line 4: not an order id"), "{}", q[0].1);
    assert!(q[0].1.contains("\nbad id\n"));
    assert!(
        q[0].1.contains("# line 6: unknown app \"ghost\""),
        "{}",
        q[0].1
    );
    // The same ids again are duplicates.
    fs::write(spool.dir.join("batch-3"), "o1\no2\no4\n").unwrap();
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!((totals.accepted, totals.duplicate), (1, 2));
    let text = String::from_utf8(spool.metrics.render()).unwrap();
    assert!(
        text.contains("otp_exporter_spool_lines_total{result=\"accepted\"} 3"),
        "{text}"
    );
    assert!(text.contains("otp_exporter_spool_lines_total{result=\"duplicate\"} 3"));
    assert!(text.contains("otp_exporter_spool_lines_total{result=\"rejected\"} 2"));
}

#[test]
fn files_still_being_written_wait_for_a_quiet_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, mut rx, path) = spool_waiting_for_quiet(tmp.path(), "in-place", "w1\n");
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!((totals.files, totals.deferred), (0, 1));
    assert!(path.exists());
    let old = SystemTime::now() - Duration::from_secs(120);
    set_modified(&path, old);
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!((totals.files, totals.accepted, totals.deferred), (1, 1, 0));
    assert_eq!(
        rx.try_recv().unwrap()[0].issued_ms / 1000,
        old.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    );
}

#[test]
fn files_modified_in_the_future_are_read_now_and_issued_now() {
    let tmp = tempfile::tempdir().unwrap();
    // A byte-order mark is not part of the first id.
    let (spool, mut rx, path) =
        spool_waiting_for_quiet(tmp.path(), "from-the-future", "\u{feff}t1\nt2\n");
    let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
    set_modified(&path, tomorrow);
    let before = now_ms();
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!(
        (totals.accepted, totals.rejected, totals.deferred),
        (2, 0, 0)
    );
    let orders = rx.try_recv().unwrap();
    assert_eq!(orders[0].order_id, "t1");
    assert!((before..=now_ms()).contains(&orders[0].issued_ms));
    assert!(!path.exists());
}

#[test]
fn a_quarantine_that_cannot_be_written_keeps_the_file_and_counts_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, mut rx, _store) = spool_in(tmp.path(), 1 << 20);
    let quarantine = spool.dir.join(QUARANTINE_DIR);
    // A file where the quarantine folder should be: every write into it fails.
    fs::remove_dir(&quarantine).unwrap();
    fs::write(&quarantine, "in the way").unwrap();
    fs::write(spool.dir.join("mixed"), "g1\nbad line\n").unwrap();
    fs::write(spool.dir.join("latin1"), b"caf\xe9\n").unwrap();
    let scan = || spool.scan(&AtomicBool::new(false)).unwrap();
    let first = scan();
    assert_eq!(
        (first.accepted, first.rejected, first.quarantined_files),
        (1, 1, 1)
    );
    assert_eq!(rx.try_recv().unwrap()[0].order_id, "g1");
    assert!(spool.dir.join("mixed").exists(), "bad lines are not lost");
    assert!(spool.dir.join("latin1").exists());
    let quarantined = |reason: &str| {
        spool
            .metrics
            .spool_files_quarantined
            .with_label_values(&[reason])
            .get()
    };
    assert_eq!(quarantined("not_utf8"), 0, "not moved, so not counted");
    // Later scans retry the last step only: nothing is read or counted again.
    let second = scan();
    assert_eq!(second, ScanTotals::default());
    assert!(spool.dir.join("mixed").exists());
    spool.retry_unfinished_now();
    assert_eq!(scan(), ScanTotals::default());
    assert_eq!(quarantined("not_utf8"), 0);
    fs::remove_file(&quarantine).unwrap();
    fs::create_dir(&quarantine).unwrap();
    // Backing off: the next scan does not try yet.
    assert_eq!(scan(), ScanTotals::default());
    assert!(spool.dir.join("mixed").exists());
    spool.retry_unfinished_now();
    assert_eq!(scan(), ScanTotals::default());
    assert!(!spool.dir.join("mixed").exists());
    assert!(!spool.dir.join("latin1").exists());
    let q = quarantine_texts(&spool);
    assert_eq!(q.len(), 3, "{q:?}");
    assert!(q
        .iter()
        .any(|(n, t)| n.ends_with(".rejected") && t.contains("\nbad line\n")));
    assert!(q
        .iter()
        .any(|(n, t)| n.ends_with(".reason") && t.contains("not UTF-8")));
    let text = String::from_utf8(spool.metrics.render()).unwrap();
    assert!(text.contains("otp_exporter_spool_lines_total{result=\"accepted\"} 1"));
    assert!(text.contains("otp_exporter_spool_lines_total{result=\"duplicate\"} 0"));
    assert!(text.contains("otp_exporter_spool_lines_total{result=\"rejected\"} 1"));
    assert!(text.contains("otp_exporter_spool_files_quarantined_total{reason=\"not_utf8\"} 1"));
    assert!(rx.try_recv().is_err());
}

#[test]
fn unreadable_files_are_quarantined_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, mut rx, _store) = spool_in(tmp.path(), 64);
    fs::write(spool.dir.join("latin1"), b"caf\xe9\n").unwrap();
    fs::write(spool.dir.join("big"), "x\n".repeat(40)).unwrap();
    fs::create_dir(spool.dir.join("subdir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", spool.dir.join("link")).unwrap();
    fs::write(spool.dir.join("fine"), "ok1\n").unwrap();
    let totals = spool.scan(&AtomicBool::new(false)).unwrap();
    assert_eq!(totals.quarantined_files, 4);
    assert_eq!(totals.accepted, 1);
    assert_eq!(rx.try_recv().unwrap()[0].order_id, "ok1");
    let q = quarantine_texts(&spool);
    let reason = |prefix: &str| {
        q.iter()
            .find(|(n, _)| n.starts_with(prefix) && n.ends_with(".reason"))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no reason for {prefix}: {q:?}"))
    };
    assert!(reason("latin1").contains("not UTF-8 text (invalid byte at offset 3)"));
    assert!(reason("big").contains("larger than spool.max_file_bytes (64)"));
    assert!(reason("subdir").contains("is a directory"));
    assert!(reason("link").contains("symbolic link"));
    assert!(q
        .iter()
        .any(|(n, t)| n.starts_with("latin1.") && !n.ends_with(".reason") && t.contains("caf")));
    let left: Vec<_> = fs::read_dir(&spool.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(QUARANTINE_DIR)],
        "spool is empty but for quarantine"
    );
    assert!(
        fs::metadata("/etc/hostname").is_ok(),
        "a symlink's target is untouched"
    );
}

#[test]
fn spool_errors_say_what_failed_and_keep_their_cause() {
    use std::error::Error as _;
    let tmp = tempfile::tempdir().unwrap();
    // A file where the spool directory should be: its quarantine cannot be created.
    let blocked = tmp.path().join("spool");
    fs::write(&blocked, "in the way").unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("state")).unwrap());
    let options = SpoolOptions {
        dir: blocked.clone(),
        rules: rules(),
        max_file_bytes: 1 << 20,
        min_file_age: Duration::ZERO,
    };
    let metrics = Arc::new(Metrics::new(&["ad454212".into()]));
    let spool = Spool::new(options, store, metrics, tokio_mpsc::unbounded_channel().0);
    let stop = Arc::new(AtomicBool::new(false));
    let status = Arc::new(crate::status::Status::new());
    let Err(err) = SpoolRunner::start(spool, Duration::from_secs(1), stop, status) else {
        panic!("a spool under a file started");
    };
    let quarantine = blocked.join(QUARANTINE_DIR);
    assert!(
        matches!(&err, SpoolError::Dir { path, .. } if *path == quarantine),
        "{err:?}"
    );
    let prefix = format!("spool directory {}: ", quarantine.display());
    assert!(Chain(&err).to_string().starts_with(&prefix), "{err}");
    let cause = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>());
    assert!(cause.is_some(), "{err:?}");

    let thread = SpoolError::ThreadStart(std::io::Error::other("no more threads"));
    assert_eq!(
        Chain(&thread).to_string(),
        "cannot start the spool thread: no more threads"
    );
    assert_eq!(thread.source().unwrap().to_string(), "no more threads");
}
