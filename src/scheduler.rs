//! One scheduler drives every poll: a time-ordered queue of (due time, order), a fixed
//! pool of `max_in_flight` workers, and a shared rate limiter. No task or timer per
//! order, so a million pending orders cost memory, not threads.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::sync::{mpsc, watch, Mutex};

use crate::api::{ApiClient, Query, QueryOutcome};
use crate::clock::unix_now_ms as now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outcome::{self, Limits, Sighting, Step, Tracking};
use crate::spool::SpoolOrder;
use crate::status::Status;
use crate::store::{PendingOrder, PendingState, Store};

/// While the API rejects our credentials or IP, probe at most this often.
const AUTH_PROBE_INTERVAL_MS: i64 = 30_000;
/// This many queries in a row without any answer turn `otp_exporter_api_up` to 0.
const UNANSWERED_BEFORE_DOWN: u32 = 10;

/// One pending order in memory.
#[derive(Debug)]
struct Entry {
    app: u16,
    tracking: Tracking,
    /// Ticket of the order's live queue entry; stale heap entries carry older tickets.
    ticket: u64,
    in_flight: bool,
    /// Queries spent, successful or not (for `otp_exporter_polls_per_order`).
    queries: u32,
}

/// A query for a worker.
struct Job {
    order_id: Arc<str>,
    app_id: Arc<str>,
    /// The one query allowed while the API rejects us.
    probe: bool,
}

/// A worker's answer; `query` is `None` when the job was handed back unsent (API
/// paused or shutting down).
struct Done {
    order_id: Arc<str>,
    query: Option<Query>,
}

/// The scheduler's view of the API as a whole.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ApiState {
    Up,
    /// Credentials or IP rejected: probe with one order at `next_probe_ms`.
    Rejected {
        next_probe_ms: i64,
        probing: bool,
    },
}

pub struct Scheduler {
    apps: Vec<Arc<str>>,
    limits: Vec<Limits>,
    zone: FixedOffset,
    orders: HashMap<Arc<str>, Entry>,
    queue: BinaryHeap<Reverse<(i64, u64, Arc<str>)>>,
    next_ticket: u64,
    pending_per_app: Vec<i64>,
    api_state: ApiState,
    /// Queries in a row that got no decodable answer at all.
    unanswered_in_row: u32,
    /// Unexpected statuses already logged at warning level.
    statuses_seen: std::collections::HashSet<i64>,
    /// Shutting down: answers still update state, but no order is finalized, because
    /// metrics counted now would never be scraped; the next run finalizes them.
    draining: bool,
    /// Set while the API rejects us: workers hand queued jobs back unsent (only the
    /// probe goes out).
    held: Arc<std::sync::atomic::AtomicBool>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

impl Scheduler {
    pub fn new(
        config: &Config,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        status: Arc<Status>,
    ) -> Self {
        let apps: Vec<Arc<str>> = config
            .apps
            .iter()
            .map(|a| Arc::from(a.id.as_str()))
            .collect();
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let limits = config
            .apps
            .iter()
            .map(|a| Limits {
                verification_window_ms: ms(config.window_of(&a.id)),
                settle_timeout_ms: ms(config.tracking.settle_timeout),
                not_found_grace_ms: ms(config.tracking.not_found_grace),
                max_age_ms: ms(config.tracking.max_age),
                first_delay_ms: ms(config.polling.first_delay),
                max_interval_ms: ms(config.polling.max_interval),
            })
            .collect();
        Scheduler {
            pending_per_app: vec![0; apps.len()],
            apps,
            limits,
            zone: config.api.timezone,
            orders: HashMap::new(),
            queue: BinaryHeap::new(),
            next_ticket: 1,
            api_state: ApiState::Up,
            unanswered_in_row: 0,
            statuses_seen: Default::default(),
            draining: false,
            held: Default::default(),
            store,
            metrics,
            status,
        }
    }

    fn app_index(&self, app_id: &str) -> Option<u16> {
        self.apps
            .iter()
            .position(|a| &**a == app_id)
            .map(|i| i as u16)
    }

    fn schedule(&mut self, order_id: Arc<str>, due_ms: i64) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(entry) = self.orders.get_mut(&order_id) {
            entry.ticket = ticket;
            entry.in_flight = false;
            self.queue.push(Reverse((due_ms, ticket, order_id)));
        }
    }

    /// Takes an order (from the spool or the store); returns false for an unknown app
    /// or an order already tracked.
    fn track(&mut self, order_id: &str, state: &PendingState, now: i64) -> bool {
        let Some(app) = self.app_index(&state.app_id) else {
            tracing::warn!(order_id, app_id = %state.app_id, "pending order of an app no longer configured; it is not polled");
            return false;
        };
        if self.orders.contains_key(order_id) {
            return false;
        }
        let mut tracking = Tracking::new(state.issued_ms);
        tracking.outcome = state.outcome;
        tracking.decided_ms = state.decided_ms;
        tracking.first_absent_ms = state.first_absent_ms;
        let due = tracking.first_poll_ms(&self.limits[app as usize], now);
        let key: Arc<str> = Arc::from(order_id);
        self.orders.insert(
            key.clone(),
            Entry {
                app,
                tracking,
                ticket: 0,
                in_flight: false,
                queries: state.polls,
            },
        );
        self.count_pending(app, 1);
        self.schedule(key, due);
        true
    }

    /// Loads the pending orders of a previous run.
    pub fn load(&mut self, pending: Vec<PendingOrder>) -> usize {
        let now = now_ms();
        let mut loaded = 0;
        for order in pending {
            if self.track(&order.order_id, &order.state, now) {
                loaded += 1;
            }
        }
        self.update_gauges(now);
        loaded
    }

    /// Starts tracking orders the spool accepted.
    pub fn add_from_spool(&mut self, batch: Vec<SpoolOrder>) {
        let now = now_ms();
        for order in batch {
            let state = PendingState::new(order.app_id, order.issued_ms);
            if self.track(&order.order_id, &state, now) {
                tracing::debug!(order_id = %order.order_id, app_id = %state.app_id, "tracking order");
            }
        }
    }

    /// Due time of the next live queue entry, dropping stale ones.
    fn peek_due(&mut self) -> Option<i64> {
        while let Some(Reverse((due, ticket, id))) = self.queue.peek() {
            match self.orders.get(id) {
                Some(entry) if entry.ticket == *ticket && !entry.in_flight => return Some(*due),
                _ => {
                    self.queue.pop();
                }
            }
        }
        None
    }

    fn pop_due(&mut self, now: i64) -> Option<Arc<str>> {
        match self.peek_due() {
            Some(due) if due <= now => self.queue.pop().map(|Reverse((_, _, id))| id),
            _ => None,
        }
    }

    /// Applies what happened to one order; returns the persisted-state change, if any,
    /// and whether it was finalized.
    fn advance(
        &mut self,
        order_id: &Arc<str>,
        sighting: Sighting,
        now: i64,
        changes: &mut Changes,
    ) {
        let Some(entry) = self.orders.get_mut(order_id) else {
            return;
        };
        let limits = self.limits[entry.app as usize];
        let before = (entry.tracking.outcome, entry.tracking.first_absent_ms);
        let step = entry.tracking.apply(sighting, now, &limits);
        match step {
            Step::Finalize(_) if self.draining => {
                if before != (entry.tracking.outcome, entry.tracking.first_absent_ms) {
                    changes.updated.push(order_id.clone());
                }
            }
            Step::Finalize(outcome) => {
                // Counted out of `orders_pending` in `commit`, once its metrics are in.
                if let Some(entry) = self.orders.remove(order_id) {
                    changes.finalized.push((order_id.clone(), outcome, entry));
                }
            }
            Step::PollAt(due) => {
                if before != (entry.tracking.outcome, entry.tracking.first_absent_ms) {
                    changes.updated.push(order_id.clone());
                }
                self.schedule(order_id.clone(), due);
            }
        }
    }

    fn on_done(&mut self, done: Done, now: i64, changes: &mut Changes) {
        let Done { order_id, query } = done;
        let Some(query) = query else {
            // Handed back unsent (paused or stopping): the order keeps its deadlines.
            if let Some(entry) = self.orders.get_mut(&order_id) {
                entry.in_flight = false;
            }
            self.advance(&order_id, Sighting::Skipped, now, changes);
            return;
        };
        self.metrics
            .api_requests
            .with_label_values(&[query.status_label.as_str()])
            .inc();
        self.metrics
            .api_duration
            .observe(query.duration.as_secs_f64());
        if let Some(entry) = self.orders.get_mut(&order_id) {
            entry.queries = entry.queries.saturating_add(1);
            entry.in_flight = false;
        }
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        let sighting = match query.outcome {
            QueryOutcome::Rejected { status, reason } => {
                self.on_rejected(status, &reason, now);
                Sighting::Skipped
            }
            other => {
                let answered = query.status_label.parse::<i64>().is_ok();
                let detail = match &other {
                    QueryOutcome::Transient { detail, .. } => detail.as_str(),
                    _ => "",
                };
                if !answered {
                    if let ApiState::Rejected { probing: true, .. } = self.api_state {
                        // The probe learnt nothing: probe again later, or polling would
                        // stay paused forever.
                        tracing::debug!(%detail, "the credentials probe got no answer; probing again in 30 s");
                        self.api_state = ApiState::Rejected {
                            next_probe_ms: now + AUTH_PROBE_INTERVAL_MS,
                            probing: false,
                        };
                    }
                }
                self.on_api_answered(answered, detail);
                match other {
                    QueryOutcome::Record(record) => {
                        Sighting::Record(outcome::observe(&record, &self.zone))
                    }
                    QueryOutcome::NoRecord => Sighting::NoRecord,
                    QueryOutcome::ClockSkew { offset_secs } => {
                        match offset_secs {
                            Some(offset) => {
                                self.status
                                    .clock_offset_secs
                                    .store(offset, Ordering::Relaxed);
                                tracing::warn!(offset_secs = offset, order_id = %order_id, "the API says our timestamp expired (status -16): our clock differs from the provider's by {offset} s; signing with the corrected time. Fix the host clock (NTP).");
                            }
                            None => {
                                tracing::warn!(order_id = %order_id, "the API says our timestamp expired (status -16) and sent no Date header to correct it; check the host clock (NTP)")
                            }
                        }
                        Sighting::Failed {
                            retry_after_ms: Some(0),
                            jitter,
                        }
                    }
                    QueryOutcome::Transient {
                        retry_after,
                        detail,
                    } => {
                        tracing::debug!(order_id = %order_id, %detail, "record query failed; retrying with backoff");
                        Sighting::Failed {
                            retry_after_ms: retry_after.map(|d| d.as_millis() as i64),
                            jitter,
                        }
                    }
                    QueryOutcome::OtherStatus { status, reason } => {
                        // Warn once per status; otp_exporter_api_requests_total counts them all.
                        if self.statuses_seen.insert(status) {
                            let meaning = if status == -22 {
                                "parameter error"
                            } else {
                                "not documented"
                            };
                            tracing::warn!(order_id = %order_id, status, %reason, "the API answered status {status} ({meaning}); the order keeps its schedule. Further answers with this status are logged at debug level and counted in otp_exporter_api_requests_total");
                        } else {
                            tracing::debug!(order_id = %order_id, status, %reason, "the API answered an unexpected status");
                        }
                        Sighting::Skipped
                    }
                    QueryOutcome::Rejected { .. } => Sighting::Skipped,
                }
            }
        };
        self.advance(&order_id, sighting, now, changes);
    }

    fn on_rejected(&mut self, status: i64, reason: &str, now: i64) {
        let was_up = matches!(self.api_state, ApiState::Up);
        self.held.store(true, Ordering::Relaxed);
        self.api_state = ApiState::Rejected {
            next_probe_ms: now + AUTH_PROBE_INTERVAL_MS,
            probing: false,
        };
        if was_up {
            let what = if status == -2 {
                "the API refuses our IP address (status -2): add this host's public IP to the allow-list of the ITNIO account"
            } else {
                "the API rejects our credentials (status -1): check api.api_key and the api secret in the configuration"
            };
            tracing::error!(
                status,
                reason,
                "{what}; polling is paused and probed every 30 s, pending orders are kept"
            );
            self.status
                .set_api_problem(format!("{what} (provider said: {reason})"));
            self.status.api_up.store(false, Ordering::Relaxed);
            self.metrics.api_up.set(0);
        }
    }

    /// Tracks whether the API answers at all: any decoded status counts as an answer;
    /// timeouts, refused connections, HTTP errors and garbage do not.
    fn on_api_answered(&mut self, answered: bool, detail: &str) {
        if !answered {
            self.unanswered_in_row = self.unanswered_in_row.saturating_add(1);
            if self.unanswered_in_row == UNANSWERED_BEFORE_DOWN
                && matches!(self.api_state, ApiState::Up)
            {
                let what = format!("the API does not answer ({UNANSWERED_BEFORE_DOWN} queries in a row failed, last: {detail}); check api.base_url and the network");
                tracing::error!("{what}; orders stay pending and are retried with backoff");
                self.status.set_api_problem(what);
                self.status.api_up.store(false, Ordering::Relaxed);
                self.metrics.api_up.set(0);
            }
            return;
        }
        let was_unanswered = self.unanswered_in_row >= UNANSWERED_BEFORE_DOWN;
        self.unanswered_in_row = 0;
        if let ApiState::Rejected { .. } = self.api_state {
            tracing::info!("the API accepts our credentials again; polling resumes");
            self.api_state = ApiState::Up;
            self.held.store(false, Ordering::Relaxed);
        } else if was_unanswered {
            tracing::info!("the API answers again");
        }
        self.status.api_up.store(true, Ordering::Relaxed);
        self.status.set_api_problem("");
        self.metrics.api_up.set(1);
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
            .store(self.orders.len() as u64, Ordering::Relaxed);
    }

    /// The oldest pending order's age (a scan of all orders, so once a second).
    fn update_gauges(&self, now: i64) {
        let oldest = self.orders.values().map(|e| e.tracking.issued_ms).min();
        let age = oldest.map_or(0.0, |issued| (now - issued).max(0) as f64 / 1000.0);
        self.metrics.oldest_pending_age.set(age);
        self.status
            .pending
            .store(self.orders.len() as u64, Ordering::Relaxed);
    }

    /// Writes the batch's changes in one transaction, then emits the metrics of the
    /// finalized orders (after the commit, so a crash cannot count an order twice
    /// within one process's life).
    fn commit(&mut self, changes: Changes, now: i64) {
        if changes.updated.is_empty() && changes.finalized.is_empty() {
            return;
        }
        let states: Vec<(Arc<str>, PendingState)> = changes
            .updated
            .iter()
            .filter_map(|id| {
                self.orders.get(id).map(|e| {
                    (
                        id.clone(),
                        PendingState {
                            app_id: self.apps[e.app as usize].to_string(),
                            issued_ms: e.tracking.issued_ms,
                            outcome: e.tracking.outcome,
                            decided_ms: e.tracking.decided_ms,
                            first_absent_ms: e.tracking.first_absent_ms,
                            polls: e.queries,
                        },
                    )
                })
            })
            .collect();
        let updates: Vec<(&str, &PendingState)> = states.iter().map(|(id, s)| (&**id, s)).collect();
        let finalized: Vec<&str> = changes.finalized.iter().map(|(id, _, _)| &**id).collect();
        let store = self.store.clone();
        let result = tokio::task::block_in_place(|| store.apply(&updates, &finalized, now));
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist order progress; finalized orders may be counted again after a restart");
        }
        for (order_id, outcome, entry) in changes.finalized {
            let samples = outcome::samples(outcome, entry.tracking.last.as_deref());
            let app = self.apps[entry.app as usize].clone();
            self.metrics.record_order(&app, &samples, entry.queries);
            self.count_pending(entry.app, -1);
            tracing::info!(
                order_id = %order_id,
                app_id = %app,
                outcome = outcome.as_str(),
                channel = samples.channel,
                country = samples.country,
                attempts = samples.attempts.len(),
                queries = entry.queries,
                "order finalized"
            );
        }
    }

    /// Runs until `shutdown` turns true; then lets in-flight queries finish (bounded by
    /// `drain`), persists, and returns.
    pub async fn run(
        mut self,
        client: Arc<ApiClient>,
        workers: usize,
        max_requests_per_second: u32,
        mut intake: mpsc::UnboundedReceiver<Vec<SpoolOrder>>,
        mut shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let workers = workers.max(1);
        let per_second = NonZeroU32::new(max_requests_per_second).unwrap_or(NonZeroU32::MIN);
        let limiter: Arc<DefaultDirectRateLimiter> =
            // No burst: requests are spaced evenly, so no one-second window ever holds more
            // than `max_requests_per_second` (a burst allowance would double it at a spike).
            Arc::new(RateLimiter::direct(
                Quota::per_second(per_second).allow_burst(NonZeroU32::MIN),
            ));
        let (job_tx, job_rx) = mpsc::channel::<Job>(workers);
        // Set at shutdown: jobs still buffered are handed back unsent.
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut pool = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (jobs, done, client, limiter, stopping, held) = (
                job_rx.clone(),
                done_tx.clone(),
                client.clone(),
                limiter.clone(),
                stopping.clone(),
                self.held.clone(),
            );
            pool.spawn(async move {
                loop {
                    let job = { jobs.lock().await.recv().await };
                    let Some(job) = job else { break };
                    let hand_back = stopping.load(Ordering::Relaxed)
                        || (held.load(Ordering::Relaxed) && !job.probe);
                    let query = if hand_back {
                        None
                    } else {
                        limiter.until_ready().await;
                        Some(client.query(&job.app_id, &job.order_id).await)
                    };
                    if done
                        .send(Done {
                            order_id: job.order_id,
                            query,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        let mut in_flight: usize = 0;
        let mut intake_open = true;

        loop {
            let now = now_ms();
            // While the API rejects us, due orders are not queried (only a probe is);
            // they still meet their deadlines.
            if let ApiState::Rejected {
                next_probe_ms,
                probing,
            } = self.api_state
            {
                if probing || now < next_probe_ms {
                    let mut changes = Changes::default();
                    while let Some(id) = self.pop_due(now) {
                        self.advance(&id, Sighting::Skipped, now, &mut changes);
                    }
                    self.commit(changes, now);
                }
            }
            let next_due = self.peek_due();
            let dispatchable = next_due.is_some_and(|due| due <= now);
            // Wake at the next due order, or at the next probe while due orders are held.
            let mut wake_at = next_due;
            if let ApiState::Rejected { next_probe_ms, .. } = self.api_state {
                if next_probe_ms > now {
                    wake_at = Some(wake_at.map_or(next_probe_ms, |due| due.min(next_probe_ms)));
                }
            }
            let sleep_ms = wake_at.map_or(1000, |at| (at - now).clamp(1, 1000));
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(done) = done_rx.recv() => {
                    let now = now_ms();
                    let mut changes = Changes::default();
                    in_flight -= 1;
                    self.on_done(done, now, &mut changes);
                    // Take whatever else finished, so one transaction covers the batch.
                    while let Ok(done) = done_rx.try_recv() {
                        in_flight -= 1;
                        self.on_done(done, now, &mut changes);
                    }
                    self.commit(changes, now);
                }
                batch = intake.recv(), if intake_open => match batch {
                    Some(batch) => {
                        self.add_from_spool(batch);
                        while let Ok(batch) = intake.try_recv() {
                            self.add_from_spool(batch);
                        }
                    }
                    None => intake_open = false,
                },
                permit = job_tx.reserve(), if dispatchable => {
                    let Ok(permit) = permit else { break };
                    if let Some(id) = self.pop_due(now_ms()) {
                        if let Some(entry) = self.orders.get_mut(&id) {
                            entry.in_flight = true;
                            let app_id = self.apps[entry.app as usize].clone();
                            let probe = matches!(self.api_state, ApiState::Rejected { .. });
                            permit.send(Job { order_id: id, app_id, probe });
                            in_flight += 1;
                            if let ApiState::Rejected { next_probe_ms, .. } = self.api_state {
                                self.api_state = ApiState::Rejected { next_probe_ms, probing: true };
                            }
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)), if !dispatchable => {}
                _ = housekeeping.tick() => {
                    ticks += 1;
                    let now = now_ms();
                    self.status.scheduler_heartbeat_ms.store(now, Ordering::Relaxed);
                    self.update_gauges(now);
                    if ticks % 600 == 1 {
                        // Off the scheduler: a day of finalized ids may take a while to delete.
                        let store = self.store.clone();
                        tokio::task::spawn_blocking(move || match store.purge_finalized(now) {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(purged = n, "forgot finalized ids older than 24 h"),
                            Err(e) => tracing::warn!(error = %e, "cannot purge old finalized ids"),
                        });
                    }
                }
            }
        }

        // Shutdown: no new queries; let those in flight finish, within `drain`.
        stopping.store(true, Ordering::Relaxed);
        self.draining = true;
        drop(job_tx);
        let deadline = tokio::time::Instant::now() + drain;
        let mut changes = Changes::default();
        let mut answered_while_draining = 0usize;
        while in_flight > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => {
                    in_flight -= 1;
                    answered_while_draining += usize::from(done.query.is_some());
                    self.on_done(done, now_ms(), &mut changes);
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        in_flight,
                        "in-flight queries did not finish in time; their orders stay pending"
                    );
                    break;
                }
            }
        }
        self.commit(changes, now_ms());
        pool.abort_all();
        self.update_gauges(now_ms());
        tracing::info!(
            pending = self.orders.len(),
            answered_while_draining,
            "scheduler stopped; pending orders are saved (orders answered while stopping are finalized by the next run)"
        );
    }

    pub fn pending(&self) -> usize {
        self.orders.len()
    }
}

/// What one batch of events changed.
#[derive(Default)]
struct Changes {
    updated: Vec<Arc<str>>,
    finalized: Vec<(Arc<str>, outcome::Outcome, Entry)>,
}
