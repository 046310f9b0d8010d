//! Durable state in one redb file under `state_dir`: the pending orders and the ids
//! finalized in the last 24 hours (for duplicate detection). Every change is one
//! ACID transaction, so kill -9 at any instant leaves either the old or the new state.

mod recovery;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::status::Status;
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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) `state_dir/state.redb`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("state.redb");
        let open_err = |source: redb::Error| StoreError::Open {
            path: path.clone(),
            source,
        };
        let db = Database::create(&path).map_err(|e| open_err(e.into()))?;
        // Create the tables so that readers never see them missing.
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        txn.open_table(PENDING).map_err(|e| open_err(e.into()))?;
        txn.open_table(FINALIZED).map_err(|e| open_err(e.into()))?;
        txn.commit().map_err(|e| open_err(e.into()))?;
        Ok(Store {
            db: Db::new(db, &path),
            path,
        })
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

    /// After a failure, reopens and verifies the database if its backoff has passed;
    /// for when no write is waiting to be retried (an idle scheduler).
    pub fn recover(&self) -> Result<(), StoreError> {
        self.db.recover()
    }

    /// Every pending order. A value that cannot be decoded (written by a future
    /// version, say) is reported by id instead of aborting the load.
    pub fn load_pending(&self) -> Result<(Vec<PendingOrder>, Vec<String>), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING)?;
        let mut orders = Vec::with_capacity(table.len()? as usize);
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

    /// Persists progress of pending orders and finalizes others, in one transaction.
    pub fn apply(
        &self,
        updates: &[(&str, &PendingState)],
        finalized_ids: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if updates.is_empty() && finalized_ids.is_empty() {
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
            Ok(())
        })
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
        store.apply(&[], &["b"], 100).unwrap();
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
            store.apply(&[("x", &progressed)], &["y"], 60).unwrap();
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
