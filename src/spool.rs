//! The spool: issuing applications drop files of order ids into `spool.dir`.
//!
//! The directory is the truth: notify events only wake the scanner early, a periodic
//! rescan catches whatever events were lost. A file leaves the spool only after its
//! orders are committed to the store; bad lines and unreadable files go to
//! `quarantine/` with their reasons.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::Value;
use tokio::sync::mpsc as tokio_mpsc;

use crate::clock::unix_now_ms as now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Admission, PendingState, Store};

/// Folder inside the spool that the daemon keeps for itself.
pub const QUARANTINE_DIR: &str = "quarantine";
pub const MAX_ORDER_ID_LEN: usize = 64;
/// `issuedAt` may lead our clock by this much (writers' clocks drift); beyond it the
/// line is rejected, since an order "issued" in the future would be tracked for ever.
pub const MAX_ISSUED_AHEAD_MS: i64 = 3_600_000;
/// A file whose modification time leads our clock by more than this is read at once
/// (waiting for it to turn quiet would wait until that time) and issued "now".
const MTIME_AHEAD_TOLERANCE: Duration = Duration::from_secs(60);

/// A line that names an order.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolOrder {
    pub order_id: String,
    pub app_id: String,
    pub issued_ms: i64,
}

/// What the parser needs to know about the configuration.
#[derive(Debug, Clone)]
pub struct LineRules {
    pub apps: HashSet<String>,
    pub default_app: Option<String>,
}

impl LineRules {
    pub fn from_config(config: &Config) -> Self {
        LineRules {
            apps: config.apps.iter().map(|a| a.id.clone()).collect(),
            default_app: config.default_app.clone(),
        }
    }
}

/// Parses one spool line. `Ok(None)` for blank and `#` lines; `Err(reason)` for a bad line.
/// `now_ms` bounds `issuedAt` (see [`MAX_ISSUED_AHEAD_MS`]).
pub fn parse_line(
    line: &str,
    rules: &LineRules,
    file_mtime_ms: i64,
    now_ms: i64,
) -> Result<Option<SpoolOrder>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (order_id, app_id, issued_ms) = if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let object = value.as_object().ok_or("invalid JSON: not an object")?;
        let order_id = match object.get("orderId") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Null) | None => return Err("missing orderId".into()),
            Some(_) => return Err("orderId is not a string".into()),
        };
        let app_id = match object.get("appId") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err("appId is not a string".into()),
        };
        let issued_ms = match object.get("issuedAt") {
            Some(Value::Null) | None => file_mtime_ms,
            Some(v) => parse_issued_at(v)?,
        };
        if issued_ms > now_ms.saturating_add(MAX_ISSUED_AHEAD_MS) {
            return Err(format!(
                "issuedAt is {} s in the future (more than 1 h ahead of this host's clock)",
                (issued_ms - now_ms) / 1000
            ));
        }
        (order_id, app_id, issued_ms)
    } else {
        (line.to_string(), None, file_mtime_ms)
    };
    check_order_id(&order_id)?;
    let app_id = match app_id.or_else(|| rules.default_app.clone()) {
        Some(app) if rules.apps.contains(&app) => app,
        Some(app) => {
            return Err(format!(
                "unknown app {:?} (not in apps[].id)",
                truncate(&app, 80)
            ))
        }
        None => return Err("no appId and no default_app configured".into()),
    };
    Ok(Some(SpoolOrder {
        order_id,
        app_id,
        issued_ms,
    }))
}

fn check_order_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty order id".into());
    }
    if id.len() > MAX_ORDER_ID_LEN {
        return Err(format!(
            "order id longer than {MAX_ORDER_ID_LEN} characters ({})",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "not an order id: {:?} contains {bad:?} (only visible ASCII, no spaces)",
            truncate(id, 80)
        ));
    }
    Ok(())
}

/// `issuedAt`: RFC 3339 text or Unix seconds.
fn parse_issued_at(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|d| d.timestamp_millis())
            .map_err(|e| format!("issuedAt {s:?} is not RFC 3339 ({e})")),
        Value::Number(n) => n
            .as_f64()
            .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs < 1e11)
            .map(|secs| (secs * 1000.0) as i64)
            .ok_or_else(|| format!("issuedAt {n} is not Unix seconds")),
        _ => Err("issuedAt is neither RFC 3339 text nor Unix seconds".into()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Why a whole file was quarantined (label `reason` of the quarantine counter).
#[derive(Debug, Clone, PartialEq)]
pub enum FileProblem {
    Symlink,
    Directory,
    NotRegular,
    TooLarge { bytes: u64, max: u64 },
    NotUtf8 { offset: usize },
    Unreadable(String),
}

impl FileProblem {
    pub fn label(&self) -> &'static str {
        match self {
            FileProblem::Symlink => "symlink",
            FileProblem::Directory => "directory",
            FileProblem::NotRegular => "not_regular",
            FileProblem::TooLarge { .. } => "too_large",
            FileProblem::NotUtf8 { .. } => "not_utf8",
            FileProblem::Unreadable(_) => "unreadable",
        }
    }
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::Symlink => write!(
                f,
                "is a symbolic link (spool entries must be regular files)"
            ),
            FileProblem::Directory => {
                write!(f, "is a directory (spool entries must be regular files)")
            }
            FileProblem::NotRegular => write!(f, "is not a regular file"),
            FileProblem::TooLarge { bytes, max } => {
                write!(
                    f,
                    "is {bytes} bytes, larger than spool.max_file_bytes ({max})"
                )
            }
            FileProblem::NotUtf8 { offset } => {
                write!(f, "is not UTF-8 text (invalid byte at offset {offset})")
            }
            FileProblem::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// Orders the spool accepted, on their way to the scheduler.
pub type OrderSender = tokio_mpsc::UnboundedSender<Vec<SpoolOrder>>;

/// Everything the spool scanner needs.
pub struct Spool {
    pub dir: PathBuf,
    pub rules: LineRules,
    pub max_file_bytes: u64,
    /// Files modified more recently than this are left for the next scan, so that a
    /// writer that writes in place (instead of renaming) is not read half-way.
    pub min_file_age: Duration,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub orders: OrderSender,
    /// Files whose orders are recorded but whose last step (writing the quarantine,
    /// removing the file) failed; retried on every scan instead of read again.
    pub unfinished: Mutex<HashMap<PathBuf, Unfinished>>,
}

/// What is left to do for a file that could not be finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    /// The file as it was handled; a changed file is read again.
    pub seen: FileStamp,
    pub step: FinishStep,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FinishStep {
    /// Write these rejected lines to quarantine (if any), then remove the file.
    Lines { rejected: Option<String> },
    /// Move the whole file to quarantine.
    Whole(FileProblem),
}

/// Modification time and length: enough to notice that a file changed.
pub type FileStamp = (SystemTime, u64);

/// Totals of one scan (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanTotals {
    pub files: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    pub quarantined_files: u64,
    /// Files left for later because they were modified a moment ago.
    pub deferred: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch spool directory {path}: {detail}")]
    Watch { path: PathBuf, detail: String },
}

impl Spool {
    /// Creates the spool and quarantine directories if needed.
    pub fn prepare(&self) -> Result<(), SpoolError> {
        let quarantine = self.dir.join(QUARANTINE_DIR);
        fs::create_dir_all(&quarantine).map_err(|source| SpoolError::Dir {
            path: quarantine,
            source,
        })
    }

    /// Reads every file in the spool once.
    pub fn scan(&self, stop: &AtomicBool) -> Result<ScanTotals, SpoolError> {
        // An operator may have deleted the quarantine folder; failures show up per file.
        let _ = fs::create_dir_all(self.dir.join(QUARANTINE_DIR));
        let mut entries: Vec<(SystemTime, PathBuf)> = Vec::new();
        let mut deferred = 0;
        let now = SystemTime::now();
        let fresh_after = now.checked_sub(self.min_file_age).unwrap_or(UNIX_EPOCH);
        let far_future = now + MTIME_AHEAD_TOLERANCE;
        let listing = fs::read_dir(&self.dir).map_err(|source| SpoolError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.ends_with(".tmp") || name == QUARANTINE_DIR {
                continue;
            }
            let meta = entry.metadata().ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .unwrap_or(UNIX_EPOCH);
            let len = meta.as_ref().map_or(0, |m| m.len());
            if modified > fresh_after && modified <= far_future {
                deferred += 1;
                continue;
            }
            let path = entry.path();
            if self.retry_unfinished(&path, (modified, len)) {
                continue;
            }
            entries.push((modified, path));
        }
        // Oldest first, so orders enter roughly in issue order.
        entries.sort();
        let mut totals = ScanTotals {
            deferred,
            ..ScanTotals::default()
        };
        for (_, path) in entries {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.process_file(&path, &mut totals);
        }
        Ok(totals)
    }

    /// Finishes a file recorded earlier, if `path` is one and has not changed since;
    /// true when the file needs no reading.
    fn retry_unfinished(&self, path: &Path, stamp: FileStamp) -> bool {
        let Ok(mut unfinished) = self.unfinished.lock() else {
            return false;
        };
        let Some(left) = unfinished.remove(path) else {
            return false;
        };
        if left.seen != stamp {
            // Rewritten since: it is a new file.
            return false;
        }
        drop(unfinished);
        match left.step {
            FinishStep::Lines { rejected } => self.finish(path, stamp, rejected),
            FinishStep::Whole(problem) => {
                self.quarantine_whole(path, stamp, &problem);
            }
        }
        true
    }

    /// The last steps for a file whose orders are recorded: its rejected lines to
    /// quarantine, then the file out of the spool. A failure leaves the file in place
    /// and remembers what is left, so nothing is lost or counted twice.
    fn finish(&self, path: &Path, stamp: FileStamp, rejected: Option<String>) {
        let shown = path.display();
        if let Some(text) = &rejected {
            if let Err(e) = self.quarantine_lines(path, text) {
                tracing::error!(file = %shown, error = %e, "cannot write rejected lines to quarantine; the file stays in the spool and is retried");
                self.remember(path, stamp, FinishStep::Lines { rejected });
                return;
            }
        }
        if let Err(e) = fs::remove_file(path) {
            if path.exists() {
                tracing::error!(file = %shown, error = %e, "cannot remove consumed spool file; retried on the next scan");
                self.remember(path, stamp, FinishStep::Lines { rejected: None });
            }
        }
    }

    fn remember(&self, path: &Path, seen: FileStamp, step: FinishStep) {
        if let Ok(mut unfinished) = self.unfinished.lock() {
            unfinished.insert(path.to_path_buf(), Unfinished { seen, step });
        }
    }

    fn process_file(&self, path: &Path, totals: &mut ScanTotals) {
        let shown = path.display().to_string();
        let (text, mtime_ms, stamp) = match self.read(path) {
            Ok(read) => read,
            Err(FileProblem::Unreadable(e)) if !path.exists() => {
                // Taken away between listing and reading: nothing to do.
                tracing::debug!(file = %shown, error = %e, "spool file vanished");
                return;
            }
            Err(problem) => {
                self.metrics
                    .spool_files_quarantined
                    .with_label_values(&[problem.label()])
                    .inc();
                let stamp = fs::symlink_metadata(path)
                    .map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len()))
                    .unwrap_or((UNIX_EPOCH, 0));
                self.quarantine_whole(path, stamp, &problem);
                totals.quarantined_files += 1;
                return;
            }
        };
        totals.files += 1;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let now = now_ms();
        // A byte-order mark (Windows editors) is not part of the first order id.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for (index, line) in text.lines().enumerate() {
            match parse_line(line, &self.rules, mtime_ms, now) {
                Ok(Some(order)) => good.push(order),
                Ok(None) => {}
                Err(reason) => bad.push((index + 1, reason, line)),
            }
        }
        let batch: Vec<(&str, PendingState)> = good
            .iter()
            .map(|o| {
                (
                    o.order_id.as_str(),
                    PendingState::new(o.app_id.clone(), o.issued_ms),
                )
            })
            .collect();
        let admissions = match self.store.admit(&batch, now_ms()) {
            Ok(a) => a,
            Err(e) => {
                // Keep the file: its orders are not safe anywhere else yet.
                tracing::error!(file = %shown, error = %e, "cannot record spool orders; the file stays in the spool and is retried");
                return;
            }
        };
        drop(batch);
        let mut accepted = Vec::with_capacity(good.len());
        let mut duplicates = 0u64;
        for (order, admission) in good.into_iter().zip(admissions) {
            match admission {
                Admission::Accepted => accepted.push(order),
                Admission::Duplicate => {
                    tracing::info!(order_id = %order.order_id, file = %shown, "duplicate order id ignored");
                    duplicates += 1;
                }
            }
        }
        for (line_no, reason, _) in &bad {
            tracing::warn!(file = %shown, line = line_no, reason = %reason, "spool line rejected");
        }
        let rejected = (!bad.is_empty()).then(|| rejected_lines_text(path, &bad));
        let (n_accepted, n_rejected) = (accepted.len() as u64, bad.len() as u64);
        self.metrics
            .spool_lines
            .with_label_values(&["accepted"])
            .inc_by(n_accepted);
        self.metrics
            .spool_lines
            .with_label_values(&["duplicate"])
            .inc_by(duplicates);
        self.metrics
            .spool_lines
            .with_label_values(&["rejected"])
            .inc_by(n_rejected);
        totals.accepted += n_accepted;
        totals.duplicate += duplicates;
        totals.rejected += n_rejected;
        if !accepted.is_empty() {
            // The scheduler may be gone during shutdown; the orders are in the store.
            let _ = self.orders.send(accepted);
        }
        tracing::info!(file = %shown, accepted = n_accepted, duplicate = duplicates, rejected = n_rejected, "spool file consumed");
        self.finish(path, stamp, rejected);
    }

    /// The file's text, its issue time for lines without `issuedAt` (the modification
    /// time, or now if that lies in the future) and its stamp.
    fn read(&self, path: &Path) -> Result<(String, i64, FileStamp), FileProblem> {
        let meta =
            fs::symlink_metadata(path).map_err(|e| FileProblem::Unreadable(e.to_string()))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(FileProblem::Symlink);
        }
        if kind.is_dir() {
            return Err(FileProblem::Directory);
        }
        if !kind.is_file() {
            return Err(FileProblem::NotRegular);
        }
        if meta.len() > self.max_file_bytes {
            return Err(FileProblem::TooLarge {
                bytes: meta.len(),
                max: self.max_file_bytes,
            });
        }
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let stamp = (modified, meta.len());
        let mtime_ms = modified
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(now_ms);
        let now = now_ms();
        if mtime_ms > now + MTIME_AHEAD_TOLERANCE.as_millis() as i64 {
            tracing::warn!(file = %path.display(), "spool file modified in the future (the writer's clock is ahead?); its orders without issuedAt count as issued now");
        }
        let mtime_ms = mtime_ms.min(now);
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        fs::File::open(path)
            .and_then(|f| f.take(self.max_file_bytes + 1).read_to_end(&mut bytes))
            .map_err(|e| FileProblem::Unreadable(e.to_string()))?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(FileProblem::TooLarge {
                bytes: bytes.len() as u64,
                max: self.max_file_bytes,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| FileProblem::NotUtf8 {
            offset: e.utf8_error().valid_up_to(),
        })?;
        Ok((text, mtime_ms, stamp))
    }

    /// A unique name in quarantine for something that came from `path`.
    fn quarantine_name(&self, path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let quarantine = self.dir.join(QUARANTINE_DIR);
        let taken = |base: &str| {
            ["", ".reason", ".rejected"]
                .iter()
                .any(|ext| quarantine.join(format!("{base}{ext}")).exists())
        };
        let mut base = format!("{name}.{stamp}");
        let mut n = 1;
        while taken(&base) {
            n += 1;
            base = format!("{name}.{stamp}.{n}");
        }
        quarantine.join(base)
    }

    /// Moves a file to quarantine beside a `.reason` file. On failure the file stays
    /// and is retried on the next scan (already counted, so not counted again).
    fn quarantine_whole(&self, path: &Path, stamp: FileStamp, problem: &FileProblem) {
        let target = self.quarantine_name(path);
        let reason_file = PathBuf::from(format!("{}.reason", target.display()));
        let reason = format!("{}: {problem}\n", path.display());
        let written = write_durably(&reason_file, reason.as_bytes());
        match written.and_then(|()| fs::rename(path, &target)) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), quarantined_as = %target.display(), reason = %problem, "spool file quarantined whole");
            }
            Err(e) => {
                let _ = fs::remove_file(&reason_file);
                if path.exists() {
                    tracing::error!(file = %path.display(), reason = %problem, error = %e, "cannot quarantine spool file; retried on the next scan");
                    self.remember(path, stamp, FinishStep::Whole(problem.clone()));
                }
            }
        }
    }

    fn quarantine_lines(&self, path: &Path, text: &str) -> std::io::Result<()> {
        let target = PathBuf::from(format!("{}.rejected", self.quarantine_name(path).display()));
        write_durably(&target, text.as_bytes())
    }
}

/// Rejected lines, each preceded by a `#` comment with its reason, so that a fixed
/// file can be moved back into the spool as it is.
fn rejected_lines_text(path: &Path, bad: &[(usize, String, &str)]) -> String {
    let mut text = format!("# rejected lines of {}\n", path.display());
    for (line_no, reason, line) in bad {
        text.push_str(&format!("# line {line_no}: {reason}\n{line}\n"));
    }
    text
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Why the scanner woke up.
enum Wake {
    Event,
    Stop,
}

/// Runs the scanner on its own thread: a scan at start, on every relevant watcher
/// event, and every `rescan_interval`. Returns once `stop` is set and it noticed.
pub struct SpoolRunner {
    wake: mpsc::Sender<Wake>,
    thread: Option<std::thread::JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl SpoolRunner {
    pub fn start(
        spool: Spool,
        rescan_interval: Duration,
        stop: Arc<AtomicBool>,
        status: Arc<crate::status::Status>,
    ) -> Result<SpoolRunner, SpoolError> {
        spool.prepare()?;
        let (wake, wakes) = mpsc::channel::<Wake>();
        let event_wake = wake.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    // Overflow or an error: rescan everything.
                    Err(_) => true,
                    Ok(e) => {
                        e.need_rescan()
                            || matches!(
                                e.kind,
                                EventKind::Access(notify::event::AccessKind::Close(
                                    notify::event::AccessMode::Write
                                )) | EventKind::Modify(notify::event::ModifyKind::Name(_))
                                    | EventKind::Create(notify::event::CreateKind::Folder)
                                    | EventKind::Create(notify::event::CreateKind::Other)
                                    | EventKind::Other
                            )
                    }
                };
                if relevant {
                    let _ = event_wake.send(Wake::Event);
                }
            })
            .map_err(|e| SpoolError::Watch {
                path: spool.dir.clone(),
                detail: e.to_string(),
            })?;
        watcher
            .watch(&spool.dir, RecursiveMode::NonRecursive)
            .map_err(|e| SpoolError::Watch {
                path: spool.dir.clone(),
                detail: e.to_string(),
            })?;
        let thread = std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut wait = rescan_interval;
                    match spool.scan(&stop) {
                        Ok(t) => {
                            if t.files + t.quarantined_files > 0 {
                                tracing::debug!(?t, "spool scanned");
                            }
                            if t.deferred > 0 {
                                // Look again once the fresh files have been quiet long enough.
                                wait = wait.min(spool.min_file_age + Duration::from_millis(50));
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "spool scan failed"),
                    }
                    status.spool_scanned.store(true, Ordering::Release);
                    match wakes.recv_timeout(wait) {
                        Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Ok(Wake::Event) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    // Let a burst of events settle into one scan.
                    std::thread::sleep(Duration::from_millis(20));
                    while let Ok(w) = wakes.try_recv() {
                        if matches!(w, Wake::Stop) {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| SpoolError::Watch {
                path: PathBuf::from("spool thread"),
                detail: e.to_string(),
            })?;
        Ok(SpoolRunner {
            wake,
            thread: Some(thread),
            _watcher: Some(watcher),
        })
    }

    /// Stops taking new files and waits for the file in hand to finish.
    pub fn stop(mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LineRules {
        LineRules {
            apps: ["ad454212".to_string(), "other".to_string()]
                .into_iter()
                .collect(),
            default_app: Some("ad454212".into()),
        }
    }

    fn parse(line: &str) -> Result<Option<SpoolOrder>, String> {
        parse_line(line, &rules(), 1_000, NOW_MS)
    }

    /// 2026-11-28T13:00:00Z, the "now" of line parsing tests.
    const NOW_MS: i64 = 1_795_870_800_000;

    #[test]
    fn bare_ids_blank_and_comment_lines() {
        assert_eq!(
            parse("1234566").unwrap(),
            Some(SpoolOrder {
                order_id: "1234566".into(),
                app_id: "ad454212".into(),
                issued_ms: 1_000
            })
        );
        assert_eq!(parse("  order-1\r").unwrap().unwrap().order_id, "order-1");
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
        assert_eq!(parse(&"x".repeat(64)).unwrap().unwrap().order_id.len(), 64);
    }

    #[test]
    fn bad_bare_ids() {
        assert!(parse("two words").unwrap_err().contains("not an order id"));
        assert!(parse(&"x".repeat(65))
            .unwrap_err()
            .contains("longer than 64"));
        assert!(parse("caf\u{e9}").unwrap_err().contains("not an order id"));
        assert!(parse("tab\there").unwrap_err().contains("not an order id"));
    }

    #[test]
    fn json_lines() {
        let o = parse(r#"{"orderId": "a1", "appId": "other", "issuedAt": "2026-11-28T13:00:00Z"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((o.order_id.as_str(), o.app_id.as_str()), ("a1", "other"));
        assert_eq!(o.issued_ms, 1_795_870_800_000);
        let o = parse(r#"{"orderId": "a2", "issuedAt": 1764334800}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.app_id.as_str(), o.issued_ms),
            ("ad454212", 1_764_334_800_000)
        );
        let o = parse(r#"{"orderId": 42, "issuedAt": null, "extra": true}"#)
            .unwrap()
            .unwrap();
        assert_eq!((o.order_id.as_str(), o.issued_ms), ("42", 1_000));
        let o = parse(r#"{"orderId":"a3","issuedAt":"2026-11-28T21:00:00+08:00"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(o.issued_ms, 1_795_870_800_000);
    }

    #[test]
    fn bad_json_lines() {
        assert!(parse(r#"{"orderId": "a1""#)
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(parse(r#"{"appId": "other"}"#)
            .unwrap_err()
            .contains("missing orderId"));
        assert!(parse(r#"{"orderId": ["x"]}"#)
            .unwrap_err()
            .contains("orderId is not a string"));
        assert!(parse(r#"{"orderId": "a", "appId": "nope"}"#)
            .unwrap_err()
            .contains("unknown app"));
        assert!(parse(r#"{"orderId": "a", "appId": 5}"#)
            .unwrap_err()
            .contains("appId"));
        assert!(parse(r#"{"orderId": "a b"}"#)
            .unwrap_err()
            .contains("not an order id"));
        assert!(parse(r#"{"orderId": "a", "issuedAt": "yesterday"}"#)
            .unwrap_err()
            .contains("issuedAt"));
        assert!(parse(r#"{"orderId": "a", "issuedAt": -5}"#)
            .unwrap_err()
            .contains("issuedAt"));
        assert!(parse(r#"{"orderId": "a", "issuedAt": 1764334800000}"#)
            .unwrap_err()
            .contains("issuedAt"));
        assert!(parse(r#"{"orderId": ""}"#).unwrap_err().contains("empty"));
    }

    #[test]
    fn issued_at_far_in_the_future_is_rejected() {
        let at = |secs: i64| format!(r#"{{"orderId":"f1","issuedAt":{secs}}}"#);
        let now_secs = NOW_MS / 1000;
        assert!(
            parse(&at(now_secs + 1800)).is_ok(),
            "30 min of writer clock drift is fine"
        );
        let err = parse(&at(now_secs + 7200)).unwrap_err();
        assert!(err.contains("issuedAt is 7200 s in the future"), "{err}");
        assert!(
            parse(r#"{"orderId":"f2","issuedAt":"2126-01-01T00:00:00Z"}"#)
                .unwrap_err()
                .contains("in the future")
        );
    }

    #[test]
    fn no_default_app() {
        let rules = LineRules {
            apps: ["a".to_string(), "b".to_string()].into_iter().collect(),
            default_app: None,
        };
        assert!(parse_line("x1", &rules, 0, NOW_MS)
            .unwrap_err()
            .contains("no appId"));
        assert!(parse_line(r#"{"orderId":"x1","appId":"b"}"#, &rules, 0, NOW_MS).is_ok());
    }

    /// Every reason text exactly as written into quarantine files and logs (readers
    /// outside this repository match on them).
    #[test]
    fn reason_texts_are_exact() {
        let long_app = "a".repeat(100);
        let future = format!(r#"{{"orderId":"f1","issuedAt":{}}}"#, NOW_MS / 1000 + 7200);
        let cases: [(&str, &str); 20] = [
            (
                r#"{"orderId": "a1""#,
                "invalid JSON: EOF while parsing an object at line 1 column 16",
            ),
            (
                "{orderId: 1}",
                "invalid JSON: key must be a string at line 1 column 2",
            ),
            (
                r#"{"orderId": "a1"} x"#,
                "invalid JSON: trailing characters at line 1 column 19",
            ),
            (
                r#"{"orderId": "a1",}"#,
                "invalid JSON: trailing comma at line 1 column 18",
            ),
            (
                r#"{"orderId": tru}"#,
                "invalid JSON: expected ident at line 1 column 16",
            ),
            (
                r#"{"orderId": 1e999}"#,
                "invalid JSON: number out of range at line 1 column 17",
            ),
            (r#"{"appId": "other"}"#, "missing orderId"),
            (r#"{"orderId": null}"#, "missing orderId"),
            (r#"{"orderId": ["x"]}"#, "orderId is not a string"),
            (r#"{"orderId": "a", "appId": 5}"#, "appId is not a string"),
            (
                &future,
                "issuedAt is 7200 s in the future (more than 1 h ahead of this host's clock)",
            ),
            (
                r#"{"orderId": "a", "appId": "nope"}"#,
                r#"unknown app "nope" (not in apps[].id)"#,
            ),
            (r#"{"orderId": ""}"#, "empty order id"),
            (&"x".repeat(65), "order id longer than 64 characters (65)"),
            (
                "two words",
                r#"not an order id: "two words" contains ' ' (only visible ASCII, no spaces)"#,
            ),
            (
                "caf\u{e9}",
                "not an order id: \"caf\u{e9}\" contains '\u{e9}' (only visible ASCII, no spaces)",
            ),
            (
                r#"{"orderId": "a", "issuedAt": "yesterday"}"#,
                r#"issuedAt "yesterday" is not RFC 3339 (premature end of input)"#,
            ),
            (
                r#"{"orderId": "a", "issuedAt": -5}"#,
                "issuedAt -5 is not Unix seconds",
            ),
            (
                r#"{"orderId": "a", "issuedAt": 1764334800000}"#,
                "issuedAt 1764334800000 is not Unix seconds",
            ),
            (
                r#"{"orderId": "a", "issuedAt": true}"#,
                "issuedAt is neither RFC 3339 text nor Unix seconds",
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(parse(line).unwrap_err().to_string(), reason, "{line}");
        }
        // An unknown app is shown cut to 80 characters.
        let line = format!(r#"{{"orderId": "a", "appId": "{long_app}"}}"#);
        let shown = format!(r#"unknown app "{}" (not in apps[].id)"#, "a".repeat(80));
        assert_eq!(parse(&line).unwrap_err().to_string(), shown);
        let no_default = LineRules {
            apps: rules().apps,
            default_app: None,
        };
        assert_eq!(
            parse_line("x1", &no_default, 0, NOW_MS)
                .unwrap_err()
                .to_string(),
            "no appId and no default_app configured"
        );
    }

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
        let spool = Spool {
            dir: spool_dir,
            rules: rules(),
            max_file_bytes,
            min_file_age: Duration::ZERO,
            store: store.clone(),
            metrics: Arc::new(Metrics::new(&["ad454212".into()])),
            orders: tx,
            unfinished: Default::default(),
        };
        spool.prepare().unwrap();
        (spool, rx, store)
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
        let (mut spool, mut rx, _store) = spool_in(tmp.path(), 1 << 20);
        spool.min_file_age = Duration::from_secs(60);
        let path = spool.dir.join("in-place");
        fs::write(&path, "w1\n").unwrap();
        let totals = spool.scan(&AtomicBool::new(false)).unwrap();
        assert_eq!((totals.files, totals.deferred), (0, 1));
        assert!(path.exists());
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
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
        let (mut spool, mut rx, _store) = spool_in(tmp.path(), 1 << 20);
        spool.min_file_age = Duration::from_secs(60);
        let path = spool.dir.join("from-the-future");
        // A byte-order mark is not part of the first id.
        fs::write(&path, "\u{feff}t1\nt2\n").unwrap();
        let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(tomorrow)
            .unwrap();
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
        // Later scans retry the last step only: nothing is read or counted again.
        let second = scan();
        assert_eq!(second, ScanTotals::default());
        assert!(spool.dir.join("mixed").exists());
        fs::remove_file(&quarantine).unwrap();
        fs::create_dir(&quarantine).unwrap();
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
        assert!(q.iter().any(|(n, t)| n.starts_with("latin1.")
            && !n.ends_with(".reason")
            && t.contains("caf")));
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
}
