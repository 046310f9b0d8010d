//! The queries in flight: one task per query, whose output is the answer, and the
//! rate limiter the loop consults before it picks a job: at most `max_in_flight`
//! queries at once, whatever the number of pending orders.
//!
//! A task per query (not long-lived workers sharing a job channel): no hand-off
//! through a shared receiver; the tasks run on the scheduler's own runtime (see
//! `Scheduler::spawn`), and the loop collects answers from the [`JoinSet`] directly.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::task::{JoinError, JoinSet};

use crate::api::{ApiClient, BalanceQuery, Query};

/// Where record (and balance) queries go: the real [`ApiClient`] in production, a
/// scripted stand-in for the provider in tests.
pub trait RecordSource: Send + Sync + 'static {
    fn query(&self, app_id: &str, order_id: &str) -> impl Future<Output = Query> + Send;

    /// The account's balance. A stand-in without one never answers (the poller then
    /// waits on its one query; it is off in such tests anyway).
    fn balance(&self) -> impl Future<Output = BalanceQuery> + Send {
        std::future::pending()
    }
}

impl RecordSource for ApiClient {
    fn query(&self, app_id: &str, order_id: &str) -> impl Future<Output = Query> + Send {
        ApiClient::query(self, app_id, order_id)
    }

    fn balance(&self) -> impl Future<Output = BalanceQuery> + Send {
        ApiClient::balance(self)
    }
}

/// A query to send.
#[derive(Debug)]
pub(super) struct Job {
    pub order_id: Arc<str>,
    /// Where the order's queue entry was when the job was taken (checked against the
    /// id when the answer comes back: [`super::queue::DueQueue::find`]).
    pub slot: u32,
    pub app_id: Arc<str>,
    /// The one query allowed while the API rejects us.
    pub probe: bool,
}

/// A query's answer; `query` is `None` when the job was handed back unsent (API
/// paused or shutting down).
#[derive(Debug)]
pub(super) struct Done {
    pub order_id: Arc<str>,
    /// The job's slot.
    pub slot: u32,
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
    /// `max_requests_per_second`.
    per_second: u32,
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
    RateLimiter::direct(quota(per_second))
}

fn quota(per_second: u32) -> Quota {
    let per_second = per_second.max(1);
    let burst = (per_second / 1000).max(1);
    let refill = u64::from(per_second - (burst - 1));
    // The period rounded up to whole nanoseconds (`Quota::per_second` rounds it down,
    // which lets a second hold a little more than asked at high rates).
    let period = Duration::from_nanos(1_000_000_000u64.div_ceil(refill));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
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
            per_second: max_requests_per_second,
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
                slot: job.slot,
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

    /// The rate limit's cells are awaited precisely (up to 1,000/s; see
    /// [`rate_limiter`]).
    pub fn paced_precisely(&self) -> bool {
        self.per_second <= 1000
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
            slot: 0,
            app_id: Arc::from("app"),
            probe,
        }
    }

    /// Cells granted by the limiter of `per_second`, polled every `step`, over `total`
    /// of a hand-moved clock: their times in nanoseconds.
    fn granted(per_second: u32, step: Duration, total: Duration) -> Vec<u64> {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(per_second), clock.clone());
        let mut at = Vec::new();
        let mut now = Duration::ZERO;
        while now < total {
            while limiter.check().is_ok() {
                at.push(now.as_nanos() as u64);
            }
            clock.advance(step);
            now += step;
        }
        at
    }

    #[test]
    fn no_second_holds_more_than_the_limit_and_the_limit_is_reached() {
        // Up to 1,000/s the loop awaits cells with governor's timer (modelled by polling
        // every 50 µs); above, it sleeps on its millisecond timer.
        for per_second in [1, 20, 999, 1000, 1001, 5000, 50_000, 1_000_000] {
            let steps = if per_second <= 1000 {
                vec![Duration::from_micros(50)]
            } else {
                vec![Duration::from_millis(1), Duration::from_micros(50)]
            };
            for step in steps {
                let at = granted(per_second, step, Duration::from_secs(3));
                let mut end = 0;
                for (i, start) in at.iter().enumerate() {
                    while end < at.len() && at[end] < start + 1_000_000_000 {
                        end += 1;
                    }
                    let within = end - i;
                    assert!(
                        within <= per_second as usize,
                        "{per_second}/s polled every {step:?}: {within} cells in one second"
                    );
                }
                // Over 3 s, nine tenths of the limit at least: a cell taken late moves
                // the next one (the limiter has no memory of time lost), by at most
                // the polling step here.
                let least = (3 * per_second as usize) * 9 / 10;
                assert!(
                    at.len() >= least,
                    "{per_second}/s polled every {step:?}: only {} cells in 3 s",
                    at.len()
                );
            }
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
