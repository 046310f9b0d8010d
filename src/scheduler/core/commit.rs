//! The group commit: what a batch of answers changed, staged until it is written in
//! one transaction (off the loop's thread: [`Core::begin_commit`], [`Batch::write`],
//! [`Core::end_commit`]), and counted in the metrics only once saved, so that a restart
//! cannot count an order twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Core;
use crate::journal;
use crate::metrics::Metrics;
use crate::outcome::{self, Fact, Outcome};
use crate::scheduler::queue::Entry;
use crate::store::{PendingState, Store, StoreError};

/// What one batch of events changed.
#[derive(Debug, Default)]
pub(in crate::scheduler) struct Changes {
    /// Pending orders whose persisted state changed, with their queue slots then
    /// (checked against the id at commit: the order may have gone since).
    pub(super) updated: Vec<(Arc<str>, u32)>,
    /// Orders taken out of the queue, to be committed and then counted.
    pub(super) finalized: Vec<(Arc<str>, Outcome, Entry)>,
    /// Facts polls revealed first (app index, order), counted once committed.
    pub(super) facts: Vec<(u16, Arc<str>, Fact)>,
    /// Journal updates, written in the same transaction. Boxed: an update is a few
    /// hundred bytes, and staging copies these lists as they grow (large copies into
    /// freshly mapped pages showed in the poll path's profile).
    pub(super) journal: Vec<(Arc<str>, Box<journal::Update>)>,
}

impl Changes {
    pub(super) fn is_empty(&self) -> bool {
        self.updated.is_empty()
            && self.finalized.is_empty()
            && self.facts.is_empty()
            && self.journal.is_empty()
    }

    /// Adds `later` to changes not yet committed (an order updated twice is written
    /// once, with its state at commit time).
    pub(super) fn merge(&mut self, later: Changes) {
        if self.is_empty() {
            *self = later;
            return;
        }
        // Deduplicated once, at commit: a group commit merges many batches.
        self.updated.extend(later.updated);
        self.finalized.extend(later.finalized);
        self.facts.extend(later.facts);
        self.journal.extend(later.journal);
    }
}

impl Core {
    /// Keeps changes for the next [`Core::commit`] (a group commit); returns how many
    /// answers are staged.
    pub fn stage(&mut self, changes: Changes, answers: usize) -> usize {
        self.unsaved.merge(changes);
        self.staged_answers += answers;
        self.staged_answers
    }

    /// Applies an answer (or a job handed back) and stages what it changed in place,
    /// with no batch of its own to merge; returns how many answers are staged.
    pub fn stage_done(&mut self, done: super::Done, now_ms: i64) -> usize {
        let mut unsaved = std::mem::take(&mut self.unsaved);
        self.on_done(done, now_ms, &mut unsaved);
        self.unsaved = unsaved;
        self.staged_answers += 1;
        self.staged_answers
    }

    /// Writes the batch's changes, with any left unsaved by a failed commit, in one
    /// transaction, then emits the metrics of the finalized orders. Only after the
    /// commit: an order is counted once its finalization is saved, so a restart cannot
    /// count it again. A failed commit keeps the whole batch for the next try (the
    /// store logs and reports the failure, once per distinct error).
    ///
    /// Synchronous, on the calling thread (tests, and the drain at shutdown); the loop
    /// writes off its thread with [`Core::begin_commit`] and [`Core::end_commit`].
    pub fn commit(&mut self, changes: Changes, now_ms: i64) {
        debug_assert!(self.committing.is_none(), "one write at a time, in order");
        self.unsaved.merge(changes);
        if let Some(batch) = self.begin_commit(now_ms) {
            let store = self.store.clone();
            let mut batch = batch;
            let result = batch.write(&store);
            self.end_commit(batch, result);
        }
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Changes are staged or left by a failed commit.
    pub fn has_unsaved(&self) -> bool {
        !self.unsaved.is_empty()
    }

    /// Takes everything staged as one batch to write, with the pending states as they
    /// are now; `None` with nothing to write. Until [`Core::end_commit`], its finalized
    /// orders still count as pending.
    pub fn begin_commit(&mut self, now_ms: i64) -> Option<Batch> {
        if self.unsaved.is_empty() {
            return None;
        }
        let mut changes = std::mem::take(&mut self.unsaved);
        self.staged_answers = 0;
        changes.updated.sort_unstable();
        changes.updated.dedup_by(|a, b| a.0 == b.0);
        let mut states = Vec::with_capacity(changes.updated.len());
        for (id, slot) in &changes.updated {
            if let Some(entry) = self.queue.find(*slot, id).and_then(|s| self.queue.at(s)) {
                states.push((id.clone(), self.pending_state(entry)));
            }
        }
        self.committing = Some(Committing {
            finalized: changes.finalized.len(),
            oldest_issued_ms: changes
                .finalized
                .iter()
                .map(|(_, _, e)| e.issued_ms())
                .min(),
        });
        Some(Batch {
            changes,
            states,
            now_ms,
            counting: Counting {
                metrics: self.metrics.clone(),
                apps: self.apps.clone(),
            },
            finalized_per_app: Vec::new(),
        })
    }

    /// After a batch's write: the pending gauges of what it saved (its metrics were
    /// counted by [`Batch::write`]), or keeps it (before anything staged since) for the
    /// next try.
    pub fn end_commit(&mut self, batch: Batch, result: Result<(), StoreError>) {
        self.committing = None;
        if let Err(e) = result {
            let changes = batch.changes;
            tracing::debug!(error = %crate::error::Chain(&e), updated = changes.updated.len(), finalized = changes.finalized.len(), "order progress not saved; kept pending and retried");
            let newer = std::mem::replace(&mut self.unsaved, changes);
            self.unsaved.merge(newer);
            return;
        }
        for (app, finalized) in batch.finalized_per_app.iter().enumerate() {
            if *finalized > 0 {
                self.count_pending(app as u16, -finalized);
            }
        }
    }

    /// Housekeeping: with nothing staged or being written, lets the store reopen
    /// itself after a failure so that the spool resumes, on the blocking pool (a reopen
    /// verifies the file: at a million orders, long enough to hold every query of the
    /// scheduler's thread). Staged changes, and those a failed commit left, are the
    /// loop's group commit's to write (a second after a failure).
    pub fn recover_store(&self) {
        if self.committing.is_none()
            && self.unsaved.is_empty()
            && !self.store.is_healthy()
            && !self.recovering.swap(true, Ordering::AcqRel)
        {
            let store = self.store.clone();
            let recovering = self.recovering.clone();
            tokio::task::spawn_blocking(move || {
                // Failures are logged and reported by the store.
                let _ = store.recover();
                recovering.store(false, Ordering::Release);
            });
        }
    }
}

/// What the loop writes in one transaction, off its thread.
pub(in crate::scheduler) struct Batch {
    changes: Changes,
    /// The pending states of `changes.updated` when the batch was taken.
    states: Vec<(Arc<str>, PendingState)>,
    now_ms: i64,
    counting: Counting,
    /// Orders the write finalized, per app index (for the loop's pending gauges).
    finalized_per_app: Vec<i64>,
}

/// Where a saved batch's orders and facts are counted.
struct Counting {
    metrics: Arc<Metrics>,
    apps: Arc<[Arc<str>]>,
}

impl Batch {
    /// Writes the batch in one transaction, then counts what it saved: the finalized
    /// orders' metrics and log lines, and the facts (blocking; on the writing thread,
    /// so that counting a thousand finalized orders does not hold the loop's queries).
    /// A failed write counts nothing and keeps the batch whole for the next try.
    pub fn write(&mut self, store: &Store) -> Result<(), StoreError> {
        self.save(store)?;
        let facts = std::mem::take(&mut self.changes.facts);
        self.counting.count_facts(&facts);
        self.finalized_per_app = vec![0; self.counting.apps.len()];
        for (order_id, outcome, entry) in std::mem::take(&mut self.changes.finalized) {
            self.counting.count_finalized(&order_id, outcome, &entry);
            self.finalized_per_app[entry.app as usize] += 1;
        }
        // Dropped here rather than on the loop's thread.
        self.changes.journal = Vec::new();
        Ok(())
    }

    fn save(&self, store: &Store) -> Result<(), StoreError> {
        let updates: Vec<(&str, &PendingState)> =
            self.states.iter().map(|(id, s)| (&**id, s)).collect();
        let finalized: Vec<&str> = self
            .changes
            .finalized
            .iter()
            .map(|(id, _, _)| &**id)
            .collect();
        let journal: Vec<(&str, &journal::Update)> = self
            .changes
            .journal
            .iter()
            .map(|(id, u)| (&**id, &**u))
            .collect();
        store.apply(&updates, &finalized, &journal, self.now_ms)
    }
}

/// The batch being written, as far as `pending` and the oldest-age gauge need it.
pub(super) struct Committing {
    pub(super) finalized: usize,
    pub(super) oldest_issued_ms: Option<i64>,
}

impl Counting {
    fn count_finalized(&self, order_id: &str, outcome: Outcome, entry: &Entry) {
        let samples = outcome::samples(outcome, entry.last());
        let app = self.apps[entry.app as usize].clone();
        if samples.attempts_dropped > 0 {
            tracing::warn!(order_id = %order_id, app_id = %app, dropped = samples.attempts_dropped, "the order's record has more attempts than tracking.max_attempts_per_order; only the earliest are counted");
        }
        self.metrics.record_order(&app, &samples, entry.polls);
        let latency_seconds = samples.attempts.iter().find_map(|a| a.latency_seconds);
        let cost_usd: f64 = samples.attempts.iter().map(|a| a.cost_usd).sum();
        tracing::info!(
            order_id = %order_id,
            app_id = %app,
            outcome = outcome.as_str(),
            channel = samples.channel,
            country = samples.country,
            operator = samples.operator_name,
            mcc = samples.network.map(|n| n.0),
            mnc = samples.network.map(|n| n.1),
            latency_seconds,
            cost_usd,
            attempts = samples.attempts.len(),
            queries = entry.polls,
            "order finalized"
        );
    }

    /// Counts committed facts; the per-order debug line lets a test check that no fact
    /// is counted twice across restarts.
    fn count_facts(&self, facts: &[(u16, Arc<str>, Fact)]) {
        for (app, order_id, fact) in facts {
            self.metrics.record_fact(&self.apps[*app as usize], fact);
            if tracing::enabled!(tracing::Level::DEBUG) {
                tracing::debug!(order_id = %order_id, fact = fact.describe(), "early signal counted");
            }
        }
    }
}
