//! The scheduler's decisions, without timers or channels: it takes `now` and events
//! (orders added, a job answered or handed back, shutdown), keeps the queue and the
//! API's health, and commits what changed (store first, then metrics).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::health::ApiHealth;
use super::note::{note, operator_name, Noted, Said};
use super::pool::{Done, Job};
use super::queue::{DueQueue, Entry};
use crate::api::{Query, QueryOutcome};
use crate::config::Config;
use crate::journal;
use crate::metrics::Metrics;
use crate::outcome::{
    self, Counted, Estimates, Expecting, Limits, Outcome, OverdueRule, Sighting, Step, Tracking,
};
use crate::spool::SpoolOrder;
use crate::status::Status;
use crate::store::{PendingOrder, PendingState, Store};

mod commit;

use self::commit::Committing;
pub(super) use self::commit::{Batch, Changes};

pub(super) struct Core {
    apps: Arc<[Arc<str>]>,
    /// Per app, in the order of `apps`.
    limits: Vec<Limits>,
    /// How records are read (zone, believable values).
    reading: outcome::Reading,
    /// What is expected of each country and channel, per app (in the order of `apps`).
    estimates: Vec<Estimates>,
    overdue_rule: OverdueRule,
    pub(super) queue: DueQueue,
    pending_per_app: Vec<i64>,
    pub(super) health: ApiHealth,
    /// Unexpected statuses already logged at warning level.
    statuses_seen: HashSet<i64>,
    /// Journal updates are made (`journal.enabled`).
    journal: bool,
    journal_bounds: JournalBounds,
    /// An eviction runs (one at a time, off the scheduler).
    evicting: Arc<std::sync::atomic::AtomicBool>,
    /// A store reopen after a failure is under way on the blocking pool.
    recovering: Arc<std::sync::atomic::AtomicBool>,
    /// Shutting down: answers still update state, but no order is finalized, because
    /// metrics counted now would never be scraped; the next run finalizes them.
    draining: bool,
    /// Changes whose commit failed: kept (finalized orders still pending, not counted)
    /// and committed with the next batch or on the next housekeeping tick.
    unsaved: Changes,
    /// Answers staged in `unsaved` for the next group commit.
    staged_answers: usize,
    /// A batch being written (its finalized orders still count as pending).
    committing: Option<Committing>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

/// What of an order's tracking is persisted and worth a write when it changes: the
/// outcome, the first "no record", the polling interval (the answers count only
/// matters while it still moves the interval, so it is not written on every answer)
/// and what the early signals counted.
fn persisted_view(
    t: &Tracking,
    limits: &Limits,
) -> (Option<Outcome>, Option<i64>, Duration, Counted) {
    (
        t.outcome,
        t.first_absent_ms,
        t.poll_interval(limits),
        t.counted,
    )
}

/// The time rules of `app_id`'s orders as configured (the app's own verification
/// window, the shared tracking and polling settings).
pub fn app_limits(config: &Config, app_id: &str) -> Limits {
    Limits {
        verification_window: config.window_of(app_id),
        settle_timeout: config.tracking.settle_timeout,
        not_found_grace: config.tracking.not_found_grace,
        max_age: config.tracking.max_age,
        first_delay: config.polling.first_delay,
        max_interval: config.polling.max_interval,
    }
}

/// Where the core's work lands: the store first, then the metrics and the status page.
pub(super) struct Outputs {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
}

impl Core {
    pub fn new(config: &Config, outputs: Outputs) -> Self {
        let Outputs {
            store,
            metrics,
            status,
        } = outputs;
        let apps: Arc<[Arc<str>]> = config
            .apps
            .iter()
            .map(|a| Arc::from(a.id.as_str()))
            .collect();
        let limits = config
            .apps
            .iter()
            .map(|a| app_limits(config, &a.id))
            .collect();
        Core {
            pending_per_app: vec![0; apps.len()],
            apps,
            limits,
            reading: outcome::Reading::new(config),
            estimates: config.apps.iter().map(|_| Estimates::default()).collect(),
            journal: config.journal.enabled,
            journal_bounds: JournalBounds {
                retention_ms: i64::try_from(config.journal.retention.as_millis())
                    .unwrap_or(i64::MAX),
                max_bytes: config.journal.max_bytes,
            },
            evicting: Arc::default(),
            recovering: Arc::default(),
            overdue_rule: OverdueRule {
                delivery_fallback: config.tracking.overdue_delivery_after,
                verification_fallback: config.tracking.overdue_verification_after,
            },
            queue: DueQueue::new(),
            health: ApiHealth::new(status.clone(), metrics.clone()),
            statuses_seen: HashSet::new(),
            draining: false,
            unsaved: Changes::default(),
            staged_answers: 0,
            committing: None,
            store,
            metrics,
            status,
        }
    }

    /// Orders not finalized in the store: those queued and those whose finalization
    /// is not committed yet.
    pub fn pending(&self) -> usize {
        self.queue.len()
            + self.unsaved.finalized.len()
            + self.committing.as_ref().map_or(0, |c| c.finalized)
    }

    fn app_index(&self, app_id: &str) -> Option<u16> {
        self.apps
            .iter()
            .position(|a| &**a == app_id)
            .map(|i| i as u16)
    }

    /// Takes an order (from the spool or the store); returns false for an unknown app
    /// or an order already tracked.
    fn track(&mut self, order_id: &str, state: &PendingState, now_ms: i64) -> bool {
        let Some(app) = self.app_index(&state.app_id) else {
            tracing::warn!(order_id, app_id = %state.app_id, "pending order of an app no longer configured; it is not polled");
            return false;
        };
        let mut tracking = Tracking::new(state.issued_ms);
        tracking.outcome = state.outcome;
        tracking.decided_ms = state.decided_ms;
        tracking.first_absent_ms = state.first_absent_ms;
        tracking.answers = state.answers;
        tracking.counted = state.counted;
        let due = tracking.first_poll_ms(&self.limits[app as usize], now_ms);
        let entry = Entry::new(app, tracking, state.polls);
        match self.queue.insert(order_id, entry, due) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::error!(order_id, error = %e, "pending order cannot be tracked; it is not polled");
                return false;
            }
        }
        self.count_pending(app, 1);
        true
    }

    /// Loads the pending orders of a previous run.
    pub fn load(&mut self, pending: Vec<PendingOrder>, now_ms: i64) -> usize {
        let mut loaded = 0;
        for order in pending {
            if self.track(&order.order_id, &order.state, now_ms) {
                loaded += 1;
            }
        }
        self.update_gauges(now_ms);
        loaded
    }

    /// Starts tracking orders the spool accepted.
    pub fn add_from_spool(&mut self, batch: Vec<SpoolOrder>, now_ms: i64) {
        for order in batch {
            let state = PendingState::new(order.app_id, order.issued_ms);
            if self.track(&order.order_id, &state, now_ms) {
                tracing::debug!(order_id = %order.order_id, app_id = %state.app_id, "tracking order");
            }
        }
    }

    /// While the API rejects us, due orders are not queried (only a probe is); they
    /// still meet their deadlines.
    pub fn hold_due(&mut self, now_ms: i64) {
        if !self.health.holds_due_orders(now_ms) {
            return;
        }
        let mut changes = Changes::default();
        while let Some(poll) = self.queue.take_due(now_ms) {
            let slot = Some(poll.slot);
            self.advance(
                &poll.order_id,
                slot,
                Sighting::Skipped,
                None,
                now_ms,
                &mut changes,
            );
        }
        // Written by the loop's next group commit.
        self.stage(changes, 0);
    }

    /// Whether an order is due now, and otherwise how long to sleep (at most a second):
    /// until the next due order, or the next probe while due orders are held.
    pub fn next_wake(&mut self, now_ms: i64) -> (bool, i64) {
        let next_due = self.queue.peek_due();
        let dispatchable = next_due.is_some_and(|due| due <= now_ms);
        let mut wake_at = next_due;
        if let Some(probe_ms) = self.health.next_probe_ms(now_ms) {
            wake_at = Some(wake_at.map_or(probe_ms, |due| due.min(probe_ms)));
        }
        let sleep_ms = wake_at.map_or(1000, |at| (at - now_ms).clamp(1, 1000));
        (dispatchable, sleep_ms)
    }

    /// Some order is due at `now_ms` (cheap: peeks the queue).
    pub fn has_due(&mut self, now_ms: i64) -> bool {
        self.queue.peek_due().is_some_and(|due| due <= now_ms)
    }

    /// The next due order as a job for a worker (marked in flight), if any: decisive
    /// polls first, then expected, then routine (see [`DueQueue::take_due`]). The loop
    /// calls this only with a rate-limit cell in hand, so the query goes out now and
    /// its lateness against the plan is observed here.
    pub fn next_job(&mut self, now_ms: i64) -> Option<Job> {
        let poll = self.queue.take_due(now_ms)?;
        let app = self.queue.start_flight(poll.slot)?.app;
        let late_seconds = (now_ms - poll.due_ms).max(0) as f64 / 1000.0;
        self.metrics
            .poll_delay
            .with_label_values(&[poll.purpose.as_str()])
            .observe(late_seconds);
        Some(Job {
            order_id: poll.order_id,
            slot: poll.slot,
            app_id: self.apps[app as usize].clone(),
            probe: self.health.on_send(),
        })
    }

    /// Shutdown: answers still count, but nothing is finalized any more.
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// A worker's answer, or a job handed back unsent.
    pub fn on_done(&mut self, done: Done, now_ms: i64, changes: &mut Changes) {
        let Done {
            order_id,
            slot,
            query,
        } = done;
        // The order's one lookup for this answer.
        let slot = self.queue.find(slot, &order_id);
        let Some(query) = query else {
            // Handed back unsent (paused or stopping): the order keeps its deadlines.
            self.advance(&order_id, slot, Sighting::Skipped, None, now_ms, changes);
            return;
        };
        self.metrics
            .api_requests
            .with_label_values(&[query.status_label.as_str()])
            .inc();
        self.metrics
            .api_duration
            .observe(query.duration.as_secs_f64());
        if let Some(entry) = slot.and_then(|s| self.queue.at_mut(s)) {
            entry.polls = entry.polls.saturating_add(1);
        }
        let (sighting, said) = self.sighting(&order_id, slot, query, now_ms);
        self.advance(&order_id, slot, sighting, Some(said), now_ms, changes);
    }

    /// What an answer says about the order, updating the API's health on the way, and
    /// what the journal notes of it.
    fn sighting(
        &mut self,
        order_id: &str,
        slot: Option<u32>,
        query: Query,
        now_ms: i64,
    ) -> (Sighting, Said) {
        let mut said = Said::default();
        let sighting = self.read_answer(order_id, slot, query, now_ms, &mut said);
        (sighting, said)
    }

    fn read_answer(
        &mut self,
        order_id: &str,
        slot: Option<u32>,
        query: Query,
        now_ms: i64,
        said: &mut Said,
    ) -> Sighting {
        let jitter = || rand::thread_rng().gen_range(0.8..1.2);
        if !matches!(query.outcome, QueryOutcome::Rejected { .. }) {
            let detail = match &query.outcome {
                QueryOutcome::Transient { detail, .. } => detail.as_str(),
                _ => "",
            };
            self.health.on_result(query.answered, detail, now_ms);
        }
        match query.outcome {
            QueryOutcome::Rejected { status, reason } => {
                said.failure = Some(format!(
                    "status {status}: {}",
                    journal::clip_reason(&reason).unwrap_or_default()
                ));
                self.health.on_rejected(status, &reason, now_ms);
                Sighting::Skipped
            }
            QueryOutcome::Record(record) => {
                let last = slot
                    .and_then(|s| self.queue.at(s))
                    .map(|e| (e.issued_ms(), e.last()));
                let issued_ms = last.map_or(now_ms, |l| l.0);
                let order = outcome::ReadFor { issued_ms, now_ms };
                let obs = outcome::observe(&record, &self.reading, order);
                said.answer = Some(if obs.is_absent() {
                    journal::Answer::NoRecord
                } else {
                    journal::Answer::Record
                });
                // The journal's view only when the record may show something new: the
                // poll path stays free of it otherwise.
                let unchanged = last.and_then(|l| l.1) == Some(&obs);
                if self.journal && !obs.is_absent() && !unchanged {
                    said.snapshot = Some(journal::snapshot(
                        &record,
                        &obs,
                        &self.reading.zone,
                        &operator_name,
                    ));
                }
                Sighting::Record(obs)
            }
            QueryOutcome::NoRecord => {
                said.answer = Some(journal::Answer::NoRecord);
                Sighting::NoRecord
            }
            QueryOutcome::ClockSkew { offset_secs } => {
                said.failure = Some("the API says our timestamp expired (status -16)".to_string());
                // The client already signs with the corrected time (and the status page
                // shows it); this is for the operator.
                match offset_secs {
                    Some(offset) => tracing::warn!(offset_secs = offset, order_id, "the API says our timestamp expired (status -16): our clock differs from the provider's by {offset} s; signing with the corrected time. Fix the host clock (NTP)."),
                    None => tracing::warn!(order_id, "the API says our timestamp expired (status -16) and sent no Date header to correct it; check the host clock (NTP)"),
                }
                Sighting::Failed {
                    retry_after: Some(Duration::ZERO),
                    jitter: jitter(),
                }
            }
            QueryOutcome::Transient {
                retry_after,
                detail,
            } => {
                tracing::debug!(order_id, %detail, "record query failed; retrying with backoff");
                said.failure = Some(detail);
                Sighting::Failed {
                    retry_after,
                    jitter: jitter(),
                }
            }
            QueryOutcome::OtherStatus { status, reason } => {
                said.failure = Some(format!(
                    "status {status}: {}",
                    journal::clip_reason(&reason).unwrap_or_default()
                ));
                self.log_other_status(order_id, status, &reason);
                Sighting::Skipped
            }
        }
    }

    /// Warns once per status; `otp_exporter_api_requests_total` counts them all.
    fn log_other_status(&mut self, order_id: &str, status: i64, reason: &str) {
        if self.statuses_seen.insert(status) {
            let meaning = if status == -22 {
                "parameter error"
            } else {
                "not documented"
            };
            tracing::warn!(order_id, status, %reason, "the API answered status {status} ({meaning}); the order keeps its schedule. Further answers with this status are logged at debug level and counted in otp_exporter_api_requests_total");
        } else {
            tracing::debug!(order_id, status, %reason, "the API answered an unexpected status");
        }
    }

    /// Applies what happened to one order: reschedules it or takes it out as
    /// finalized, and notes in `changes` what must be persisted.
    fn advance(
        &mut self,
        order_id: &Arc<str>,
        slot: Option<u32>,
        sighting: Sighting,
        said: Option<Said>,
        now_ms: i64,
        changes: &mut Changes,
    ) {
        // Out of flight, whatever happens next (an unsent job handed back included).
        let Some((slot, entry)) = slot.and_then(|s| Some((s, self.queue.land_flight(s)?))) else {
            return;
        };
        let app = entry.app;
        let limits = self.limits[app as usize];
        // The rules work on the unpacked tracking (its record moved out, not cloned);
        // it is packed back below.
        let mut tracking = entry.take_tracking();
        let before = persisted_view(&tracking, &limits);
        let decided_before = tracking.outcome.is_some();
        let estimates = &mut self.estimates[app as usize];
        // While draining, facts are left for the next run: counted now, they would
        // never be scraped.
        if let (Sighting::Record(obs), false) = (&sighting, self.draining) {
            let expecting = Expecting {
                estimates,
                rule: &self.overdue_rule,
                batch: limits.first_delay,
            };
            let facts = outcome::reveal(obs, &mut tracking.counted, now_ms, &expecting);
            for fact in facts {
                fact.teach(estimates);
                changes.facts.push((app, order_id.clone(), fact));
            }
        }
        let latest = match &sighting {
            Sighting::Record(obs) => Some(obs),
            _ => tracking.last.as_deref(),
        };
        let expecting = Expecting {
            estimates,
            rule: &self.overdue_rule,
            batch: limits.first_delay,
        };
        let expected = latest
            .and_then(|obs| outcome::next_expected(obs, &tracking.counted, now_ms, &expecting));
        let step = tracking.apply_expecting(sighting, now_ms, &limits, expected);
        let purpose = tracking.next_purpose;
        let after = persisted_view(&tracking, &limits);
        let changed = before != after;
        // A longer poll interval alone is no news in the order's timeline: such a
        // query stays quiet there (the state is still saved, for the backoff).
        let news = (before.0, before.1, before.3) != (after.0, after.1, after.3);
        if self.journal {
            let finalized = match step {
                Step::Finalize(outcome) if !self.draining => Some(outcome),
                _ => None,
            };
            let app_id = &self.apps[app as usize];
            let noted = note(
                entry,
                &tracking,
                said,
                Noted {
                    decided_before,
                    changed: news,
                    finalized,
                    now_ms,
                    limits: &limits,
                    app_id,
                },
            );
            if let Some(update) = noted {
                changes.journal.push((order_id.clone(), Box::new(update)));
            }
        }
        entry.put_tracking(tracking);
        match step {
            Step::Finalize(outcome) if !self.draining => {
                // Counted out of `orders_pending` in `commit`, once its metrics are in.
                if let Some(entry) = self.queue.remove(order_id) {
                    changes.finalized.push((order_id.clone(), outcome, entry));
                }
            }
            Step::Finalize(_) => {
                if changed {
                    changes.updated.push((order_id.clone(), slot));
                }
            }
            Step::PollAt(due_ms) => {
                if changed {
                    changes.updated.push((order_id.clone(), slot));
                }
                self.queue.schedule_at(slot, due_ms, purpose);
            }
        }
    }

    fn pending_state(&self, entry: &Entry) -> PendingState {
        PendingState {
            app_id: self.apps[entry.app as usize].to_string(),
            issued_ms: entry.issued_ms(),
            outcome: entry.outcome(),
            decided_ms: entry.decided_ms(),
            first_absent_ms: entry.first_absent_ms(),
            polls: entry.polls,
            answers: entry.answers(),
            counted: entry.counted(),
        }
    }

    /// Updates `otp_exporter_orders_pending` with every change (not once a second), so
    /// that scrapes do not see accepted orders as neither pending nor finalized.
    fn count_pending(&mut self, app: u16, delta: i64) {
        let count = &mut self.pending_per_app[app as usize];
        *count += delta;
        self.metrics
            .orders_pending
            .with_label_values(&[&*self.apps[app as usize]])
            .set(*count);
        self.status
            .pending
            .store(self.pending() as u64, Ordering::Relaxed);
    }

    /// The oldest pending order's age (a scan of all orders, so once a second).
    pub fn update_gauges(&self, now_ms: i64) {
        let unsaved = self.unsaved.finalized.iter().map(|(_, _, e)| e);
        let committing = self.committing.as_ref().and_then(|c| c.oldest_issued_ms);
        let oldest = self
            .queue
            .entries()
            .chain(unsaved)
            .map(|e| e.issued_ms())
            .chain(committing)
            .min();
        let age = oldest.map_or(0.0, |issued| (now_ms - issued).max(0) as f64 / 1000.0);
        self.metrics.oldest_pending_age.set(age);
        self.status
            .pending
            .store(self.pending() as u64, Ordering::Relaxed);
    }

    /// Evicts journal entries past the retention or beyond the size bound, off the
    /// scheduler, in short transactions (the scheduler's commits wait for one at most).
    /// Eviction runs even with the journal off, so that what an earlier run wrote
    /// still goes in time.
    pub fn evict_journal(&self, now_ms: i64) {
        if self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.store.clone();
        let bounds = self.journal_bounds;
        let evicting = self.evicting.clone();
        let before_ms = now_ms.saturating_sub(bounds.retention_ms);
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            loop {
                match store.evict_journal(before_ms, bounds.max_bytes, EVICTION_BATCH) {
                    Ok(n) => {
                        total += n;
                        if n < EVICTION_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::error::Chain(&e), "cannot evict old journal entries");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::debug!(
                    evicted = total,
                    "evicted journal entries past journal.retention or journal.max_bytes"
                );
            }
            evicting.store(false, Ordering::Release);
        });
    }

    /// Forgets finalized ids older than a day, off the scheduler (a day of ids may
    /// take a while to delete).
    pub fn purge_finalized(&self, now_ms: i64) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || match store.purge_finalized(now_ms) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot finalized ids older than 24 h"),
            Err(e) => {
                tracing::warn!(error = %crate::error::Chain(&e), "cannot purge old finalized ids")
            }
        });
    }
}

/// Entries deleted per eviction transaction: a few milliseconds of the single writer.
const EVICTION_BATCH: usize = 500;

/// `journal.retention` and `journal.max_bytes`.
#[derive(Debug, Clone, Copy)]
struct JournalBounds {
    retention_ms: i64,
    max_bytes: u64,
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
