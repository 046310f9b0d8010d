//! One pass over the spool: list the files that are ready, read each, admit its
//! orders to the store, hand them to the scheduler, then quarantine what was bad and
//! remove the file. A step that fails after the orders are recorded is remembered
//! and only that step is retried, so nothing is lost or counted twice.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::parse::{parse_text, SpoolOrder};
use super::quarantine::{rejected_lines_text, QUARANTINE_DIR};
use super::read::{read_spool_file, stamp_of, FileProblem, FileStamp, MTIME_AHEAD_TOLERANCE};
use super::{Spool, SpoolError};
use crate::clock::unix_now_ms;
use crate::error::Chain;
use crate::store::{Admission, PendingState};

/// Totals of one scan (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanTotals {
    pub files: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    pub quarantined_files: u64,
    /// Files left for later: modified a moment ago, or waiting for the store to
    /// take writes again.
    pub deferred: u64,
}

/// First wait before a failed last step is tried again; it doubles with every failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between tries (a cause fixed by the operator is noticed this late at most).
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What is left to do for a file that could not be finished.
#[derive(Debug, Clone)]
pub(super) struct Unfinished {
    /// The file as it was handled; a changed file is read again.
    seen: FileStamp,
    step: FinishStep,
    /// Failed tries so far (the first is logged as an error, the others at debug level).
    failures: u32,
    /// Not tried again before this.
    retry_at: Instant,
}

/// Failed tries of a file's last step before this one (0: the first try).
#[derive(Debug, Clone, Copy)]
struct Tries(u32);

impl Tries {
    /// The wait after this try fails: `RETRY_FIRST` doubling up to `RETRY_MAX`.
    fn backoff(self) -> Duration {
        RETRY_FIRST
            .saturating_mul(1 << self.0.min(16))
            .min(RETRY_MAX)
    }
}

#[derive(Debug, Clone)]
enum FinishStep {
    /// Write these rejected lines to quarantine (if any), then remove the file.
    Lines { rejected: Option<String> },
    /// Move the whole file to quarantine.
    Whole(FileProblem),
}

impl Spool {
    /// Reads every file in the spool once.
    pub fn scan(&self, stop: &AtomicBool) -> Result<ScanTotals, SpoolError> {
        // An operator may have deleted the quarantine folder; failures show up per file.
        let _ = self.quarantine.create();
        let (files, deferred) = self.ready_files()?;
        if !self.store.is_healthy() {
            // The files are safe where they are; taking them would only fail to record
            // their orders. The scheduler reopens the store; counting them as deferred
            // has the spool look again soon instead of after a whole rescan interval.
            tracing::debug!(
                waiting = files.len(),
                "the state database takes no writes; spool files wait in the spool"
            );
            return Ok(ScanTotals {
                deferred: deferred + files.len() as u64,
                ..ScanTotals::default()
            });
        }
        let mut totals = ScanTotals {
            deferred,
            ..ScanTotals::default()
        };
        for path in files {
            if stop.load(Ordering::Relaxed) || !self.store.is_healthy() {
                break;
            }
            self.process_file(&path, &mut totals);
        }
        Ok(totals)
    }

    /// The files to read now, oldest first (so orders enter roughly in issue order),
    /// and how many were left because they were modified a moment ago. Files left
    /// unfinished by an earlier scan are finished here instead of read again.
    fn ready_files(&self) -> Result<(Vec<PathBuf>, u64), SpoolError> {
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
        entries.sort();
        Ok((
            entries.into_iter().map(|(_, path)| path).collect(),
            deferred,
        ))
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
        if Instant::now() < left.retry_at {
            // Backing off: not read, not tried, not logged.
            unfinished.insert(path.to_path_buf(), left);
            return true;
        }
        drop(unfinished);
        let tries = Tries(left.failures);
        match left.step {
            FinishStep::Lines { rejected } => self.finish(path, stamp, rejected, tries),
            FinishStep::Whole(problem) => {
                self.quarantine_whole(path, stamp, &problem, tries);
            }
        }
        true
    }

    /// Makes every remembered file due for its next try now (tests: time moved by hand).
    #[cfg(test)]
    pub(super) fn retry_unfinished_now(&self) {
        if let Ok(mut unfinished) = self.unfinished.lock() {
            for left in unfinished.values_mut() {
                left.retry_at = Instant::now();
            }
        }
    }

    fn process_file(&self, path: &Path, totals: &mut ScanTotals) {
        let shown = path.display();
        let now = unix_now_ms();
        let file = match read_spool_file(path, self.max_file_bytes, now) {
            Ok(file) => file,
            Err(FileProblem::Unreadable(e)) if !path.exists() => {
                // Taken away between listing and reading: nothing to do.
                tracing::debug!(file = %shown, error = %e, "spool file vanished");
                return;
            }
            Err(problem) => {
                self.quarantine_whole(path, stamp_of(path), &problem, Tries(0));
                totals.quarantined_files += 1;
                return;
            }
        };
        totals.files += 1;
        let parsed = parse_text(&file.text, &self.rules, file.issued_ms, now);
        let Some((accepted, duplicates)) = self.admit(path, parsed.orders) else {
            // Keep the file: its orders are not safe anywhere else yet.
            return;
        };
        for bad in &parsed.rejected {
            tracing::warn!(file = %shown, line = bad.line_no, reason = %bad.reason, "spool line rejected");
        }
        let (n_accepted, n_rejected) = (accepted.len() as u64, parsed.rejected.len() as u64);
        self.count_lines(n_accepted, duplicates, n_rejected, totals);
        if !accepted.is_empty() {
            // The scheduler may be gone during shutdown; the orders are in the store.
            let _ = self.orders.send(accepted);
        }
        tracing::info!(file = %shown, accepted = n_accepted, duplicate = duplicates, rejected = n_rejected, "spool file consumed");
        let rejected =
            (!parsed.rejected.is_empty()).then(|| rejected_lines_text(path, &parsed.rejected));
        self.finish(path, file.stamp, rejected, Tries(0));
    }

    /// Records the orders of `path` in the store: the new ones and how many were
    /// duplicates, or `None` (logged) if the store failed.
    fn admit(&self, path: &Path, orders: Vec<SpoolOrder>) -> Option<(Vec<SpoolOrder>, u64)> {
        let batch: Vec<(&str, PendingState)> = orders
            .iter()
            .map(|o| {
                let state = PendingState::new(o.app_id.clone(), o.issued_ms);
                (o.order_id.as_str(), state)
            })
            .collect();
        let admissions = match self.store.admit(&batch, unix_now_ms()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %Chain(&e), "cannot record spool orders; the file stays in the spool and is retried");
                return None;
            }
        };
        drop(batch);
        let mut accepted = Vec::with_capacity(orders.len());
        let mut duplicates = 0u64;
        for (order, admission) in orders.into_iter().zip(admissions) {
            match admission {
                Admission::Accepted => accepted.push(order),
                Admission::Duplicate => {
                    tracing::info!(order_id = %order.order_id, file = %path.display(), "duplicate order id ignored");
                    duplicates += 1;
                }
            }
        }
        Some((accepted, duplicates))
    }

    fn count_lines(&self, accepted: u64, duplicate: u64, rejected: u64, totals: &mut ScanTotals) {
        for (result, n) in [
            ("accepted", accepted),
            ("duplicate", duplicate),
            ("rejected", rejected),
        ] {
            self.metrics
                .spool_lines
                .with_label_values(&[result])
                .inc_by(n);
        }
        totals.accepted += accepted;
        totals.duplicate += duplicate;
        totals.rejected += rejected;
    }

    /// The last steps for a file whose orders are recorded: its rejected lines to
    /// quarantine, then the file out of the spool. A failure leaves the file in place
    /// and remembers what is left, so nothing is lost or counted twice.
    fn finish(&self, path: &Path, stamp: FileStamp, rejected: Option<String>, tries: Tries) {
        if let Some(text) = &rejected {
            if let Err(e) = self.quarantine.write_rejected(path, text) {
                log_failed_try(tries, path, &e, "cannot write rejected lines to quarantine");
                self.remember(path, stamp, FinishStep::Lines { rejected }, tries);
                return;
            }
        }
        if let Err(e) = fs::remove_file(path) {
            if path.exists() {
                log_failed_try(tries, path, &e, "cannot remove consumed spool file");
                self.remember(path, stamp, FinishStep::Lines { rejected: None }, tries);
                return;
            }
        }
        log_done_after(tries, path);
    }

    /// Moves a file to quarantine whole and counts it in
    /// `otp_exporter_spool_files_quarantined_total` once it is moved (not before: a
    /// move that keeps failing is not a quarantined file). On failure the file stays
    /// and is retried with backoff. Returns whether it was moved.
    fn quarantine_whole(
        &self,
        path: &Path,
        stamp: FileStamp,
        problem: &FileProblem,
        tries: Tries,
    ) -> bool {
        match self.quarantine.move_whole(path, problem) {
            Ok(target) => {
                self.metrics
                    .spool_files_quarantined
                    .with_label_values(&[problem.label()])
                    .inc();
                tracing::warn!(file = %path.display(), quarantined_as = %target.display(), reason = %problem, "spool file quarantined whole");
                log_done_after(tries, path);
                true
            }
            Err(e) => {
                if path.exists() {
                    let what = format!("cannot quarantine spool file that {problem}");
                    log_failed_try(tries, path, &e, &what);
                    self.remember(path, stamp, FinishStep::Whole(problem.clone()), tries);
                }
                false
            }
        }
    }

    /// Remembers the step left after failed try `tries`, due again after its backoff.
    fn remember(&self, path: &Path, seen: FileStamp, step: FinishStep, tries: Tries) {
        let left = Unfinished {
            seen,
            step,
            failures: tries.0.saturating_add(1),
            retry_at: Instant::now() + tries.backoff(),
        };
        if let Ok(mut unfinished) = self.unfinished.lock() {
            unfinished.insert(path.to_path_buf(), left);
        }
    }
}

/// A failed last step: an error the first time, then at debug level, so that a cause
/// that lasts (a quarantine folder in the way, a directory that cannot move) gives one
/// line, not one per scan.
fn log_failed_try(tries: Tries, path: &Path, error: &std::io::Error, what: &str) {
    if tries.0 == 0 {
        tracing::error!(file = %path.display(), error = %error, "{what}; the file stays in the spool and is retried with backoff (further failures are logged at debug level)");
    } else {
        tracing::debug!(file = %path.display(), error = %error, tries = tries.0 + 1, retry_in = ?tries.backoff(), "{what}; retried later");
    }
}

/// A last step that succeeded after failures: the error logged before is over.
fn log_done_after(tries: Tries, path: &Path) {
    if tries.0 > 0 {
        tracing::info!(file = %path.display(), tries = tries.0 + 1, "spool file finished after earlier failures");
    }
}
