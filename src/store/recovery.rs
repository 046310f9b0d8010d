//! Write failures and recovery from them at run time (a full disk, say).
//!
//! After an I/O error redb fails every later transaction with "Previous I/O error
//! occurred" until the database is closed and opened again (redb 4, `CachedFile`
//! latches the failure). So every write goes through [`Db::write`]: a failure marks
//! the store unhealthy (reported once per distinct error, counted per failed write)
//! and asks for a reopen; the next write, or [`super::Store::recover`], first closes
//! the database, opens it again (redb repairs what the failed commit left), checks
//! its integrity and commits an empty transaction. Attempts back off while they fail,
//! so a full disk costs one try every few seconds, not one per order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::StoreError;
use crate::error::Chain;
use crate::metrics::Metrics;
use crate::status::Status;

/// The first wait before a reopen after a failure; doubled per failed try.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two tries, so recovery follows the disk within seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A failure this soon after recovering continues the same episode: its errors are
/// not logged again and the backoff keeps growing. A nearly full disk lets some
/// commits through (redb reuses free pages) and fails others; without this it would
/// log and retry at full speed on every flip.
const QUIET_PERIOD: Duration = Duration::from_secs(60);

/// What a write was for (label `op` of `otp_exporter_store_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// Recording spool orders.
    Admit,
    /// Persisting the scheduler's progress and finalizations.
    Commit,
    /// Forgetting finalized ids older than a day.
    Purge,
    /// Evicting journal entries past `journal.retention` or `journal.max_bytes`.
    Evict,
    /// Closing, opening, checking and test-writing the database after a failure.
    Reopen,
}

impl StoreOp {
    pub const ALL: [StoreOp; 5] = [
        StoreOp::Admit,
        StoreOp::Commit,
        StoreOp::Purge,
        StoreOp::Evict,
        StoreOp::Reopen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Admit => "admit",
            StoreOp::Commit => "commit",
            StoreOp::Purge => "purge",
            StoreOp::Evict => "evict",
            StoreOp::Reopen => "reopen",
        }
    }
}

/// Where the store's health is shown: `/readyz` and the two store metrics.
struct Report {
    status: Arc<Status>,
    metrics: Arc<Metrics>,
}

/// One episode of failures: from a failed write until the store has been healthy
/// for `QUIET_PERIOD`.
#[derive(Debug, Default)]
struct Failures {
    /// Errors logged in this episode (each once).
    logged: HashSet<String>,
    /// Failed writes in this episode.
    count: u64,
    /// Recoveries in this episode (the first is logged at info level).
    recoveries: u64,
    backoff: Duration,
    /// No reopen before this.
    next_try: Option<Instant>,
    /// When the store last became healthy again.
    recovered_at: Option<Instant>,
}

/// The open database, closed and opened again after a write failure.
pub(super) struct Db {
    /// `None` between closing a failed database and a successful reopen.
    current: RwLock<Option<Database>>,
    path: PathBuf,
    healthy: AtomicBool,
    needs_reopen: AtomicBool,
    failures: Mutex<Failures>,
    report: OnceLock<Report>,
}

impl Db {
    pub(super) fn new(db: Database, path: &Path) -> Db {
        Db {
            current: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            healthy: AtomicBool::new(true),
            needs_reopen: AtomicBool::new(false),
            failures: Mutex::default(),
            report: OnceLock::new(),
        }
    }

    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.path.clone(),
        }
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let db = current.as_ref().ok_or_else(|| self.unavailable())?;
        Ok(db.begin_read()?)
    }

    /// A bare write transaction, outside health tracking (tests and start-up only).
    #[cfg(test)]
    pub(super) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let db = current.as_ref().ok_or_else(|| self.unavailable())?;
        Ok(db.begin_write()?)
    }

    /// Marks the database failed, as a failed write does (tests of the recovery paths).
    #[cfg(test)]
    pub(super) fn fail_as_a_write_would(&self) {
        self.failed(
            StoreOp::Commit,
            &StoreError::Db(redb::Error::DatabaseAlreadyOpen),
        );
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) fn report_to(&self, status: Arc<Status>, metrics: Arc<Metrics>) {
        metrics.store_healthy.set(i64::from(self.is_healthy()));
        let _ = self.report.set(Report { status, metrics });
    }

    /// Runs one write transaction built by `fill`, reopening the database first if
    /// an earlier write failed. The read lock is held until the transaction ends, so a
    /// reopen never meets a live transaction (redb would defer the close).
    pub(super) fn write<T>(
        &self,
        op: StoreOp,
        fill: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.needs_reopen.load(Ordering::Acquire) {
            self.reopen_when_due()?;
        }
        let result = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            let db = current.as_ref().ok_or_else(|| self.unavailable())?;
            db.begin_write().map_err(StoreError::from).and_then(|txn| {
                let value = fill(&txn)?;
                txn.commit()?;
                Ok(value)
            })
        };
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(op, e),
        }
        result
    }

    /// Tries a reopen now if one is needed and its backoff has passed (the reopen
    /// commits a test transaction), for when no real write is waiting to be retried;
    /// healthy again afterwards. Without a failure this does nothing.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        if self.needs_reopen.load(Ordering::Acquire) {
            self.reopen_when_due()?;
        }
        self.succeeded();
        Ok(())
    }

    fn reopen_when_due(&self) -> Result<(), StoreError> {
        {
            let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            if failures.next_try.is_some_and(|at| Instant::now() < at) {
                return Err(self.unavailable());
            }
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have reopened while this one waited for the lock.
        if !self.needs_reopen.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(old) = current.take() {
            // Closing a failed database reports the failure again; what matters is
            // that the file lock is released, which close does either way.
            if let Err(e) = old.close() {
                tracing::debug!(error = %Chain(&e), "closing the failed state database");
            }
        }
        match self.open_and_verify() {
            Ok(db) => {
                *current = Some(db);
                self.needs_reopen.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "state database reopened and verified after a write failure; retrying the writes");
                Ok(())
            }
            Err(e) => {
                drop(current);
                self.failed(StoreOp::Reopen, &e);
                Err(e)
            }
        }
    }

    /// Opens the file again (redb repairs an interrupted commit), checks it and proves
    /// that a commit goes through.
    fn open_and_verify(&self) -> Result<Database, StoreError> {
        let reopen_err = |source: redb::Error| StoreError::Reopen {
            path: self.path.clone(),
            source,
        };
        let mut db = Database::open(&self.path).map_err(|e| reopen_err(e.into()))?;
        if !db.check_integrity().map_err(|e| reopen_err(e.into()))? {
            tracing::warn!(path = %self.path.display(), "the state database was repaired after a write failure");
        }
        let probe = db.begin_write().map_err(|e| reopen_err(e.into()))?;
        probe.commit().map_err(|e| reopen_err(e.into()))?;
        Ok(db)
    }

    /// A write went through.
    fn succeeded(&self) {
        if self.healthy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (failed_writes, first_recovery) = {
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            failures.recovered_at = Some(Instant::now());
            failures.recoveries += 1;
            (failures.count, failures.recoveries == 1)
        };
        if first_recovery {
            tracing::info!(path = %self.path.display(), failed_writes, "the state database is writable again; taking spool files again");
        } else {
            tracing::debug!(path = %self.path.display(), failed_writes, "the state database is writable again");
        }
        if let Some(report) = self.report.get() {
            report.metrics.store_healthy.set(1);
            report.status.set_store_problem(None);
        }
    }

    fn failed(&self, op: StoreOp, error: &StoreError) {
        if matches!(error, StoreError::Unavailable { .. }) {
            // Waiting for the next reopen: no new write reached the disk.
            return;
        }
        self.healthy.store(false, Ordering::Release);
        self.needs_reopen.store(true, Ordering::Release);
        let text = Chain(error).to_string();
        let first_time = {
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if failures
                .recovered_at
                .is_some_and(|at| now.duration_since(at) >= QUIET_PERIOD)
            {
                *failures = Failures::default();
            }
            failures.recovered_at = None;
            failures.count += 1;
            failures.backoff = (failures.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            failures.next_try = Some(now + failures.backoff);
            failures.logged.insert(format!("{}: {text}", op.as_str()))
        };
        if first_time {
            tracing::error!(op = op.as_str(), error = %text, path = %self.path.display(), "state database write failed: not ready, spool files wait in the spool, unsaved orders stay pending and are retried (logged once per distinct error; see otp_exporter_store_errors_total)");
        }
        if let Some(report) = self.report.get() {
            report
                .metrics
                .store_errors
                .with_label_values(&[op.as_str()])
                .inc();
            report.metrics.store_healthy.set(0);
            report
                .status
                .set_store_problem(Some(format!("{} failed: {text}", op.as_str())));
        }
    }
}
