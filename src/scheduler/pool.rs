//! The queries in flight: one task per query, whose output is the answer, and the
//! rate limiter the loop consults before it picks a job: at most `max_in_flight`
//! queries at once, whatever the number of pending orders.
//!
//! A task per query (not long-lived workers sharing a job channel): no hand-off
//! through a shared receiver, so queries start and finish on whichever runtime
//! thread is free, and the loop collects answers from the [`JoinSet`] directly.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::task::{JoinError, JoinSet};

use crate::api::{ApiClient, Query};

/// Where record queries go: the real [`ApiClient`] in production, a scripted stand-in
/// for the provider in tests.
pub trait RecordSource: Send + Sync + 'static {
    fn query(&self, app_id: &str, order_id: &str) -> impl Future<Output = Query> + Send;
}

impl RecordSource for ApiClient {
    fn query(&self, app_id: &str, order_id: &str) -> impl Future<Output = Query> + Send {
        ApiClient::query(self, app_id, order_id)
    }
}

/// A query to send.
#[derive(Debug)]
pub(super) struct Job {
    pub order_id: Arc<str>,
    pub app_id: Arc<str>,
    /// The one query allowed while the API rejects us.
    pub probe: bool,
}

/// A query's answer; `query` is `None` when the job was handed back unsent (API
/// paused or shutting down).
#[derive(Debug)]
pub(super) struct Done {
    pub order_id: Arc<str>,
    pub query: Option<Query>,
}

pub(super) struct WorkerPool<R> {
    source: Arc<R>,
    /// `max_in_flight`.
    pub size: usize,
    /// Taken by the loop before it picks a job: a job is chosen only when it can go
    /// out now, so under a short budget the priorities of the due queue decide what
    /// goes out instead of a backlog committed in advance.
    pub limiter: Arc<DefaultDirectRateLimiter>,
    /// While set, only probes are sent; other jobs come back unsent.
    held: Arc<AtomicBool>,
    /// Set at shutdown: jobs come back unsent.
    stopping: bool,
    /// One task per query sent and not yet collected; a task that panics lost its
    /// order's answer (the order would stay "in flight" forever).
    queries: JoinSet<Done>,
}

/// At most `per_second` cells in any one-second window. Up to 1,000/s the cells are
/// evenly spaced (no burst). Above that, a millisecond's worth may go at once: the
/// loop's timers tick in milliseconds, so even spacing there would cap the rate at
/// 1,000/s; the refill is lowered by that burst, so a second still never holds more
/// than `per_second`.
fn rate_limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let burst = (per_second / 1000).max(1);
    let refill = per_second.saturating_sub(burst - 1);
    let refill = NonZeroU32::new(refill).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(refill).allow_burst(burst))
}

impl<R: RecordSource> WorkerPool<R> {
    /// A pool of at most `workers` (at least one) queries in flight, sending at most
    /// `max_requests_per_second`. While `held` is set, only probes are sent.
    pub fn start(
        source: Arc<R>,
        workers: usize,
        max_requests_per_second: u32,
        held: Arc<AtomicBool>,
    ) -> Self {
        let limiter = Arc::new(rate_limiter(max_requests_per_second));
        WorkerPool {
            source,
            size: workers.max(1),
            limiter,
            held,
            stopping: false,
            queries: JoinSet::new(),
        }
    }

    /// Sends `job` (or hands it back unsent while paused or stopping).
    pub fn send(&mut self, job: Job) {
        let hand_back = self.stopping || (self.held.load(Ordering::Relaxed) && !job.probe);
        let source = self.source.clone();
        self.queries.spawn(async move {
            let query = if hand_back {
                None
            } else {
                Some(source.query(&job.app_id, &job.order_id).await)
            };
            Done {
                order_id: job.order_id,
                query,
            }
        });
    }

    /// The next answer (cancel-safe); `None` with nothing in flight.
    pub async fn next_done(&mut self) -> Option<Result<Done, JoinError>> {
        self.queries.join_next().await
    }

    /// An answer that is already there, without waiting.
    pub fn try_next_done(&mut self) -> Option<Result<Done, JoinError>> {
        self.queries.try_join_next()
    }

    /// Queries sent and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.queries.len()
    }

    /// Shutdown: queries already sent finish; jobs sent from now on come back unsent.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Another query can go out now.
    pub fn has_free_worker(&self) -> bool {
        self.queries.len() < self.size
    }

    /// Ends the queries still waiting for an answer (after the drain time).
    pub fn abort(&mut self) {
        self.queries.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::QueryOutcome;
    use std::time::Duration;

    /// Answers "no record" to everything and counts the queries it got.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl RecordSource for Counting {
        async fn query(&self, _app_id: &str, _order_id: &str) -> Query {
            self.0.fetch_add(1, Ordering::Relaxed);
            Query {
                outcome: QueryOutcome::NoRecord,
                status_label: "0".into(),
                answered: true,
                duration: Duration::ZERO,
            }
        }
    }

    fn job(id: &str, probe: bool) -> Job {
        Job {
            order_id: Arc::from(id),
            app_id: Arc::from("app"),
            probe,
        }
    }

    #[tokio::test]
    async fn held_jobs_come_back_unsent_except_the_probe() {
        let source = Arc::new(Counting::default());
        let held = Arc::new(AtomicBool::new(true));
        let mut pool = WorkerPool::start(source.clone(), 2, 1000, held.clone());
        pool.send(job("a", false));
        let a = pool.next_done().await.unwrap().unwrap();
        assert_eq!((&*a.order_id, a.query.is_none()), ("a", true));
        pool.send(job("p", true));
        let p = pool.next_done().await.unwrap().unwrap();
        assert!(p.query.is_some(), "the probe goes out");
        held.store(false, Ordering::Relaxed);
        pool.send(job("b", false));
        assert!(pool.next_done().await.unwrap().unwrap().query.is_some());
        assert_eq!(source.0.load(Ordering::Relaxed), 2);
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_stopped_pool_sends_nothing_more() {
        let source = Arc::new(Counting::default());
        let mut pool = WorkerPool::start(source.clone(), 1, 1000, Default::default());
        pool.stop();
        pool.send(job("a", false));
        assert!(
            !pool.has_free_worker(),
            "a job handed back is in flight until collected"
        );
        let a = pool.next_done().await.unwrap().unwrap();
        assert!(a.query.is_none());
        assert!(pool.next_done().await.is_none());
        assert_eq!(source.0.load(Ordering::Relaxed), 0);
    }
}
