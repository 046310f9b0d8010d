//! Durable state in one redb file under `state_dir`: the pending orders and the ids
//! finalized in the last 24 hours (for duplicate detection). Every change is one
//! ACID transaction, so kill -9 at any instant leaves either the old or the new state.
//!
//! A state file that exists but cannot be used (empty, truncated, damaged, not ours) is
//! never replaced silently: opening it is a [`StoreError::Damaged`] naming the file and
//! what to do, unless the caller asked for [`OnDamage::SetAside`]. redb can panic on
//! damaged data, so the open and the load run under `catch_unwind` and a panic is a
//! `Damaged` error too.

mod journal;
mod journal_read;
pub use journal_read::{JournalReadError, MAX_SCAN_PER_PAGE};
mod recovery;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::outcome::{Counted, Outcome};
use crate::status::Status;
pub(crate) use journal::{JOURNAL, JOURNAL_BY_ISSUE, JOURNAL_META, META_BYTES, META_ENTRIES};
use recovery::Db;
pub use recovery::StoreOp;

/// order id → JSON of [`PendingState`].
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
/// order id → Unix ms when it was finalized.
const FINALIZED: TableDefinition<&str, i64> = TableDefinition::new("finalized");

/// How long a finalized id still counts as a duplicate.
pub const FINALIZED_MEMORY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    /// The file exists but cannot be used (boxed: it is rare and large).
    #[error(transparent)]
    Damaged(Box<DamagedFile>),
    #[error("cannot move the damaged state file {path} aside to {aside}")]
    SetAside {
        path: PathBuf,
        aside: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database error")]
    Db(#[source] redb::Error),
    /// After a write failure, until the database is reopened (retried with backoff).
    #[error("state database {path} is not writable after a failure; it is reopened and the write retried")]
    Unavailable { path: PathBuf },
    #[error("cannot reopen state database {path} after a write failure")]
    Reopen {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
}

/// A state file that exists but cannot be used. What to do is part of the message
/// because it ends the daemon's start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open state database {path}: {damage}; restore it from a backup, or move it away (or run with --reset-state) to start with an empty state")]
pub struct DamagedFile {
    pub path: PathBuf,
    pub damage: Damage,
    #[source]
    pub source: Option<redb::Error>,
}

impl StoreError {
    fn damaged(path: &Path, damage: Damage, source: Option<redb::Error>) -> StoreError {
        StoreError::Damaged(Box::new(DamagedFile {
            path: path.to_path_buf(),
            damage,
            source,
        }))
    }
}

/// Why an existing state file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Zero bytes: what some crashes and failed restores leave. redb would initialize
    /// it as a new database, losing every pending order without a word.
    Empty,
    /// redb cannot read it: truncated, bit flips, not a redb file.
    Unreadable,
    /// A readable redb database that lacks this daemon's tables.
    MissingTables { found: Vec<String> },
    /// redb panicked on it (it does on some damaged pages).
    Panicked { message: String },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Empty => write!(f, "the file is empty (0 bytes, as a crash or a failed restore can leave it)"),
            Damage::Unreadable => write!(f, "the file is damaged or not a redb database"),
            Damage::MissingTables { found } => write!(
                f,
                "the file is a redb database without this daemon's tables `{}` and `{}` (it has: {})",
                PENDING.name(),
                FINALIZED.name(),
                found.join(", ")
            ),
            Damage::Panicked { message } => {
                write!(f, "the file is damaged (reading it failed: {message})")
            }
        }
    }
}

/// What opening does with a state file that exists but cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDamage {
    /// Fail with [`StoreError::Damaged`] (the default: the operator decides).
    #[default]
    Refuse,
    /// Rename it to `state.redb.damaged-<unix seconds>` (kept, never deleted) and start
    /// with an empty state (`run --reset-state`).
    SetAside,
}

/// An opened store, and where a damaged file was moved if one was.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    pub set_aside: Option<SetAside>,
    /// The newest commit failed its checksums and redb went back to the one before:
    /// what a power cut during a commit leaves (that commit never returned, nothing is
    /// lost), but also what damage to the newest commit looks like (then the orders it
    /// admitted or finalized are pending again or gone). Worth a warning, not a refusal.
    pub rolled_back: bool,
}

/// A damaged state file that was moved aside instead of being used.
#[derive(Debug)]
pub struct SetAside {
    pub aside: PathBuf,
    /// Why it could not be used.
    pub error: StoreError,
}

/// redb's page cache (its default is 1 GiB): 16 MiB, about 17 B per pending order at
/// 1,000,000 (64 MiB was 67 B, a third of the per-order budget); the footprint bench's
/// poll throughput did not drop with it (the operating system caches the file too).
const STORE_CACHE_BYTES: usize = 16 << 20;

/// The file name of the state database under `state_dir`.
pub const STATE_FILE: &str = "state.redb";

/// Every redb error type converts into `redb::Error`, which keeps the cause.
macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What is persisted of a pending order between polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingState {
    pub app_id: String,
    pub issued_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_absent_ms: Option<i64>,
    /// Queries sent for the order, answered or not (`otp_exporter_polls_per_order`).
    #[serde(default)]
    pub polls: u32,
    /// Queries answered with a record or "no record": the polling backoff resumes from
    /// here after a restart. Records of earlier versions lack it (0: the backoff
    /// starts over once, as it always did then).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub answers: u32,
    /// What the early-signal metrics already counted of the order, so that a restart
    /// does not count it again (records of earlier versions: nothing yet).
    #[serde(default, skip_serializing_if = "Counted::is_empty")]
    pub counted: Counted,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PendingState {
    /// A freshly issued order: nothing known about it yet.
    pub fn new(app_id: String, issued_ms: i64) -> Self {
        PendingState {
            app_id,
            issued_ms,
            outcome: None,
            decided_ms: None,
            first_absent_ms: None,
            polls: 0,
            answers: 0,
            counted: Counted::default(),
        }
    }
}

/// A pending order as loaded at start.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOrder {
    pub order_id: String,
    pub state: PendingState,
}

/// Whether the store took a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted,
    Duplicate,
}

pub struct Store {
    /// The database, reopened after a write failure (see `recovery`).
    db: Db,
    path: PathBuf,
    /// `journal.enabled` (on until the daemon turns it off).
    journal_enabled: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) `state_dir/state.redb`; a file that exists but cannot be
    /// used is an error ([`OnDamage::Refuse`]).
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::open_with(state_dir, OnDamage::Refuse)?.store)
    }

    /// Opens (or creates) `state_dir/state.redb`. A missing file is a first start; a
    /// file that exists but cannot be used is refused or set aside per `on_damage`.
    pub fn open_with(state_dir: &Path, on_damage: OnDamage) -> Result<Opened, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(STATE_FILE);
        match open_file(&path) {
            Err(error @ StoreError::Damaged(_)) if on_damage == OnDamage::SetAside => {
                open_aside(&path, error)
            }
            opened => {
                let (store, rolled_back) = opened?;
                Ok(Opened {
                    store,
                    set_aside: None,
                    rolled_back,
                })
            }
        }
    }

    /// After [`Store::load_pending`] found the file damaged: moves it aside and opens
    /// an empty state in its place (`--reset-state`).
    pub fn set_aside_and_reopen(self, error: StoreError) -> Result<Opened, StoreError> {
        let path = self.path.clone();
        // Closing a database that panicked may panic again; the file is set aside anyway.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(self)));
        open_aside(&path, error)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shows the store's health on `/readyz` and in the store metrics from now on.
    pub fn report_health_to(&self, status: Arc<Status>, metrics: Arc<Metrics>) {
        self.db.report_to(status, metrics);
    }

    /// False from a failed write until a write (or [`Self::recover`]) succeeds again.
    pub fn is_healthy(&self) -> bool {
        self.db.is_healthy()
    }

    /// Marks the database failed, as a failed write does (tests of the recovery paths).
    #[cfg(test)]
    pub(crate) fn fail_as_a_write_would(&self) {
        self.db.fail_as_a_write_would();
    }

    /// After a failure, reopens and verifies the database if its backoff has passed;
    /// for when no write is waiting to be retried (an idle scheduler).
    pub fn recover(&self) -> Result<(), StoreError> {
        self.db.recover()
    }

    /// Every pending order. A value that cannot be decoded (written by a future
    /// version, say) is reported by id instead of aborting the load. Damaged pages (an
    /// error or a panic of redb) are [`StoreError::Damaged`].
    pub fn load_pending(&self) -> Result<(Vec<PendingOrder>, Vec<String>), StoreError> {
        let loaded = guarded(&self.path, || self.read_pending());
        loaded.map_err(|e| damaged_if_corrupt(&self.path, e))
    }

    fn read_pending(&self) -> Result<(Vec<PendingOrder>, Vec<String>), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
        // A damaged length must not reserve absurd memory: the rows are counted as read.
        let mut orders = Vec::with_capacity((table.len()? as usize).min(1 << 20));
        let mut broken = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            match serde_json::from_slice::<PendingState>(value.value()) {
                Ok(state) => orders.push(PendingOrder {
                    order_id: key.value().to_string(),
                    state,
                }),
                Err(_) => broken.push(key.value().to_string()),
            }
        }
        Ok((orders, broken))
    }

    /// Records new orders in one transaction; an id already pending or finalized in
    /// the last 24 h (or repeated within `orders`) is a duplicate.
    pub fn admit(
        &self,
        orders: &[(&str, PendingState)],
        now_ms: i64,
    ) -> Result<Vec<Admission>, StoreError> {
        self.db.write(StoreOp::Admit, |txn| {
            let mut admissions = Vec::with_capacity(orders.len());
            let mut pending = txn.open_table(PENDING)?;
            let finalized = txn.open_table(FINALIZED)?;
            for (order_id, state) in orders {
                let recently_final = finalized
                    .get(*order_id)?
                    .is_some_and(|at| now_ms - at.value() < FINALIZED_MEMORY_MS);
                if recently_final || pending.get(*order_id)?.is_some() {
                    admissions.push(Admission::Duplicate);
                    continue;
                }
                pending.insert(*order_id, encode(state).as_slice())?;
                admissions.push(Admission::Accepted);
            }
            Ok(admissions)
        })
    }

    /// Persists progress of pending orders, finalizes others and updates their journal
    /// entries, in one transaction.
    pub fn apply(
        &self,
        updates: &[(&str, &PendingState)],
        finalized_ids: &[&str],
        journal_updates: &[(&str, &crate::journal::Update)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if updates.is_empty() && finalized_ids.is_empty() && journal_updates.is_empty() {
            return Ok(());
        }
        self.db.write(StoreOp::Commit, |txn| {
            let mut pending = txn.open_table(PENDING)?;
            let mut finalized = txn.open_table(FINALIZED)?;
            for (order_id, state) in updates {
                pending.insert(*order_id, encode(state).as_slice())?;
            }
            for order_id in finalized_ids {
                pending.remove(*order_id)?;
                finalized.insert(*order_id, now_ms)?;
            }
            if self.journal_on() && !journal_updates.is_empty() {
                let mut journal = journal::Writer::open(txn)?;
                for (order_id, update) in journal_updates {
                    journal.update(order_id, (*update).clone())?;
                }
                journal.finish()?;
            }
            Ok(())
        })
    }

    /// Whether orders are journaled (`journal.enabled`).
    pub fn journal_on(&self) -> bool {
        self.journal_enabled.load(Ordering::Relaxed)
    }

    /// Turns the journal off (`journal.enabled: false`): nothing more is written; what
    /// was written stays until evicted.
    pub fn disable_journal(&self) {
        self.journal_enabled.store(false, Ordering::Relaxed);
    }

    /// Evicts journal entries issued before `before_ms`, and the oldest while the
    /// journal is over `max_bytes`, at most `batch` in one transaction (short, so the
    /// scheduler's commits wait little); returns how many went.
    pub fn evict_journal(
        &self,
        before_ms: i64,
        max_bytes: u64,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.db.write(StoreOp::Evict, |txn| {
            let mut journal = journal::Writer::open(txn)?;
            let evicted = journal.evict(before_ms, max_bytes, batch)?;
            journal.finish()?;
            Ok(evicted)
        })
    }

    /// The journal's (encoded bytes, entries).
    pub fn journal_size(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(JOURNAL_META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(e.into()),
        };
        let get =
            |key: &str| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(0, |v| v.value())) };
        Ok((get(META_BYTES)?, get(META_ENTRIES)?))
    }

    /// Forgets finalized ids older than 24 h; returns how many.
    pub fn purge_finalized(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.db.write(StoreOp::Purge, |txn| {
            let mut finalized = txn.open_table(FINALIZED)?;
            let before = finalized.len()?;
            finalized.retain(|_, at| now_ms - at < FINALIZED_MEMORY_MS)?;
            let after = finalized.len()?;
            Ok((before - after) as usize)
        })
    }

    /// Counts of (pending, finalized) rows.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_read()?;
        Ok((
            txn.open_table(PENDING)?.len()?,
            txn.open_table(FINALIZED)?.len()?,
        ))
    }
}

fn encode(state: &PendingState) -> Vec<u8> {
    // Serializing a plain struct of strings and numbers cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// Opens an existing state file or creates a missing one; see [`Damage`] for what is
/// refused. Also says whether redb rolled back to the commit before the newest.
fn open_file(path: &Path) -> Result<(Store, bool), StoreError> {
    let exists = match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => {
            return Err(StoreError::damaged(path, Damage::Empty, None));
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                source: redb::Error::Io(e),
            })
        }
    };
    let (db, rolled_back) = guarded(path, || open_database(path, exists))?;
    let store = Store {
        db: Db::new(db, path),
        path: path.to_path_buf(),
        journal_enabled: AtomicBool::new(true),
    };
    Ok((store, rolled_back))
}

/// Moves the damaged file at `path` aside (because of `error`) and opens an empty
/// state in its place.
fn open_aside(path: &Path, error: StoreError) -> Result<Opened, StoreError> {
    let aside = set_aside(path)?;
    let (store, rolled_back) = open_file(path)?;
    Ok(Opened {
        store,
        set_aside: Some(SetAside { aside, error }),
        rolled_back,
    })
}

fn open_database(path: &Path, exists: bool) -> Result<(Database, bool), StoreError> {
    let fail = |e: redb::Error| {
        damaged_if_corrupt(
            path,
            StoreError::Open {
                path: path.to_path_buf(),
                source: e,
            },
        )
    };
    let mut builder = Database::builder();
    // Verify every page's checksum at open: a file damaged outside redb is then an
    // error instead of a panic later. It reads the whole file once per start.
    builder.set_check_integrity_on_open(true);
    // redb caches up to 1 GiB of pages by default, all of it in the daemon's RSS; the
    // operating system's page cache serves reads as well, outside it.
    builder.set_cache_size(STORE_CACHE_BYTES);
    let rolled_back = Arc::new(AtomicBool::new(false));
    let seen = rolled_back.clone();
    builder.set_repair_callback(move |session| {
        // redb 4 reports progress 0.3 only when the newest commit failed its checksums
        // and the repair falls back to the one before (`Database::do_repair`).
        if (session.progress() - 0.3).abs() < 1e-6 {
            seen.store(true, Ordering::Relaxed);
        }
    });
    // `open`, not `create`, for an existing file: `create` would initialize a file that
    // is not a database yet instead of refusing it.
    let db = if exists {
        builder.open(path)
    } else {
        builder.create(path)
    }
    .map_err(|e| fail(e.into()))?;
    let found: Vec<String> = {
        let txn = db.begin_read().map_err(|e| fail(e.into()))?;
        let tables = txn.list_tables().map_err(|e| fail(e.into()))?;
        tables.map(|t| t.name().to_string()).collect()
    };
    let ours = [PENDING.name(), FINALIZED.name()];
    let rolled_back = rolled_back.load(Ordering::Relaxed);
    if ours.iter().all(|name| found.iter().any(|f| f == name)) {
        // A state file of a version without the journal gains its tables.
        if !found.iter().any(|f| f == JOURNAL.name()) {
            let txn = db.begin_write().map_err(|e| fail(e.into()))?;
            create_journal_tables(&txn).map_err(|e| fail(e.into()))?;
            txn.commit().map_err(|e| fail(e.into()))?;
        }
        return Ok((db, rolled_back));
    }
    // No table at all: a new file, or one whose first start stopped before its tables
    // were committed; no order can be in it. Anything else is not our state.
    if !found.is_empty() {
        return Err(StoreError::damaged(
            path,
            Damage::MissingTables { found },
            None,
        ));
    }
    // Create the tables so that readers never see them missing.
    let txn = db.begin_write().map_err(|e| fail(e.into()))?;
    txn.open_table(PENDING).map_err(|e| fail(e.into()))?;
    txn.open_table(FINALIZED).map_err(|e| fail(e.into()))?;
    create_journal_tables(&txn).map_err(|e| fail(e.into()))?;
    txn.commit().map_err(|e| fail(e.into()))?;
    Ok((db, rolled_back))
}

/// Creates the journal's tables, so that readers never see them missing.
fn create_journal_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(JOURNAL)?;
    txn.open_table(JOURNAL_BY_ISSUE)?;
    txn.open_table(JOURNAL_META)?;
    Ok(())
}

/// Runs a step that reads the file, turning a panic of redb into a `Damaged` error.
fn guarded<T>(path: &Path, step: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".to_string());
        Err(StoreError::damaged(
            path,
            Damage::Panicked { message },
            None,
        ))
    })
}

/// An error of redb that means the file's content is bad becomes `Damaged`; others
/// (permissions, another process holding the file, an old format) stay as they are,
/// so that `--reset-state` never moves aside a file that is merely busy or unreadable.
fn damaged_if_corrupt(path: &Path, error: StoreError) -> StoreError {
    let source = match error {
        StoreError::Open { source, .. } | StoreError::Db(source) => source,
        other => return other,
    };
    let corrupt = match &source {
        redb::Error::Corrupted(_) => true,
        redb::Error::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    };
    if corrupt {
        StoreError::damaged(path, Damage::Unreadable, Some(source))
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Renames a damaged state file to `<name>.damaged-<unix seconds>` (never deleting it).
fn set_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| STATE_FILE.to_string());
    let stamp = crate::clock::unix_now_secs();
    let mut aside = path.with_file_name(format!("{name}.damaged-{stamp}"));
    // Two resets within a second must not overwrite the first damaged copy.
    let mut n = 1;
    while aside.exists() {
        aside = path.with_file_name(format!("{name}.damaged-{stamp}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside).map_err(|source| StoreError::SetAside {
        path: path.to_path_buf(),
        aside: aside.clone(),
        source,
    })?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(issued_ms: i64) -> PendingState {
        PendingState::new("app".into(), issued_ms)
    }

    #[test]
    fn admit_detects_duplicates_pending_finalized_and_within_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let got = store
            .admit(&[("a", state(1)), ("b", state(2)), ("a", state(3))], 10)
            .unwrap();
        assert_eq!(
            got,
            vec![
                Admission::Accepted,
                Admission::Accepted,
                Admission::Duplicate
            ]
        );
        store.apply(&[], &["b"], &[], 100).unwrap();
        let got = store
            .admit(&[("a", state(4)), ("b", state(5)), ("c", state(6))], 200)
            .unwrap();
        assert_eq!(
            got,
            vec![
                Admission::Duplicate,
                Admission::Duplicate,
                Admission::Accepted
            ]
        );
        // After 24 h a finalized id is forgotten.
        let later = 100 + FINALIZED_MEMORY_MS;
        assert_eq!(
            store.admit(&[("b", state(7))], later).unwrap(),
            vec![Admission::Accepted]
        );
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .admit(&[("x", state(1)), ("y", state(2))], 10)
                .unwrap();
            let mut progressed = state(1);
            progressed.outcome = Some(Outcome::Verified);
            progressed.decided_ms = Some(50);
            progressed.polls = 3;
            progressed.answers = 2;
            store.apply(&[("x", &progressed)], &["y"], &[], 60).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let (pending, broken) = store.load_pending().unwrap();
        assert!(broken.is_empty());
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].order_id, "x");
        assert_eq!(pending[0].state.outcome, Some(Outcome::Verified));
        assert_eq!(pending[0].state.polls, 3);
        assert_eq!(pending[0].state.answers, 2);
        assert_eq!(store.counts().unwrap(), (1, 1));
        assert_eq!(store.purge_finalized(60 + FINALIZED_MEMORY_MS).unwrap(), 1);
        assert_eq!(store.counts().unwrap(), (1, 0));
    }

    #[test]
    fn records_of_the_previous_version_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Exactly what the version before `answers` wrote.
        let old = br#"{"app_id":"app","issued_ms":1,"outcome":"verified","decided_ms":50,"first_absent_ms":7,"polls":3}"#;
        let minimal = br#"{"app_id":"app","issued_ms":2}"#;
        let txn = store.db.begin_write().unwrap();
        {
            let mut pending = txn.open_table(PENDING).unwrap();
            pending.insert("old", old.as_slice()).unwrap();
            pending.insert("minimal", minimal.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let (mut pending, broken) = store.load_pending().unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        pending.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        let mut expected = state(1);
        expected.outcome = Some(Outcome::Verified);
        expected.decided_ms = Some(50);
        expected.first_absent_ms = Some(7);
        expected.polls = 3;
        assert_eq!(pending[1].state, expected);
        assert_eq!(pending[0].state, state(2));
        // And what this version writes keeps the old names.
        let text = String::from_utf8(encode(&expected)).unwrap();
        assert_eq!(text, std::str::from_utf8(old).unwrap());
    }

    #[test]
    fn unusable_state_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = Store::open(&file.join("sub")).unwrap_err().to_string();
        assert!(err.contains("cannot create state directory"), "{err}");
    }
}
