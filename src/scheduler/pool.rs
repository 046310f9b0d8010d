//! A fixed pool of workers sharing one job channel, and the rate limiter the loop
//! consults before it picks a job: at most `max_in_flight` queries at once, whatever
//! the number of pending orders.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

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

/// A query for a worker.
#[derive(Debug)]
pub(super) struct Job {
    pub order_id: Arc<str>,
    pub app_id: Arc<str>,
    /// The one query allowed while the API rejects us.
    pub probe: bool,
}

/// A worker's answer; `query` is `None` when the job was handed back unsent (API
/// paused or shutting down).
#[derive(Debug)]
pub(super) struct Done {
    pub order_id: Arc<str>,
    pub query: Option<Query>,
}

pub(super) struct WorkerPool {
    /// Bounded to the number of workers; the loop hands out a job only while fewer
    /// than that are in flight, so a worker takes it at once.
    pub jobs: mpsc::Sender<Job>,
    /// Number of workers.
    pub size: usize,
    /// Taken by the loop before it picks a job (not by the workers after): a job is
    /// chosen only when it can go out now, so under a short budget the priorities of
    /// the due queue decide what goes out instead of a backlog committed in advance.
    pub limiter: Arc<DefaultDirectRateLimiter>,
    pub done: mpsc::UnboundedReceiver<Done>,
    /// Jobs sent and not yet answered or handed back.
    pub in_flight: usize,
    /// Set at shutdown: jobs still buffered are handed back unsent.
    stopping: Arc<AtomicBool>,
    /// Watched by the loop: workers end only after `stop`, so one that ends before
    /// (a panic) lost the job it held.
    pub workers: JoinSet<()>,
}

impl WorkerPool {
    /// Starts `workers` workers (at least one) sending at most `max_requests_per_second`.
    /// While `held` is set, only probes are sent; other jobs are handed back.
    pub fn start<R: RecordSource>(
        source: Arc<R>,
        workers: usize,
        max_requests_per_second: u32,
        held: Arc<AtomicBool>,
    ) -> Self {
        let workers = workers.max(1);
        let per_second = NonZeroU32::new(max_requests_per_second).unwrap_or(NonZeroU32::MIN);
        // No burst: requests are spaced evenly, so no one-second window ever holds more
        // than `max_requests_per_second` (a burst allowance would double it at a spike).
        let limiter: Arc<DefaultDirectRateLimiter> = Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(NonZeroU32::MIN),
        ));
        let (jobs, job_rx) = mpsc::channel::<Job>(workers);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = mpsc::unbounded_channel::<Done>();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut pool = JoinSet::new();
        for _ in 0..workers {
            pool.spawn(work(
                job_rx.clone(),
                done_tx.clone(),
                source.clone(),
                stopping.clone(),
                held.clone(),
            ));
        }
        WorkerPool {
            jobs,
            size: workers,
            limiter,
            done,
            in_flight: 0,
            stopping,
            workers: pool,
        }
    }

    /// Shutdown: queries already sent finish, jobs still buffered come back unsent,
    /// and no new job can be sent.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // A closed channel makes the workers end once it is empty.
        let (closed, _) = mpsc::channel(1);
        self.jobs = closed;
    }

    /// A worker can take a job now.
    pub fn has_free_worker(&self) -> bool {
        self.in_flight < self.size
    }

    /// Ends the workers still waiting for an answer (after the drain time).
    pub fn abort(&mut self) {
        self.workers.abort_all();
    }
}

async fn work<R: RecordSource>(
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::UnboundedSender<Done>,
    source: Arc<R>,
    stopping: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
) {
    loop {
        let job = { jobs.lock().await.recv().await };
        let Some(job) = job else { break };
        let hand_back =
            stopping.load(Ordering::Relaxed) || (held.load(Ordering::Relaxed) && !job.probe);
        let query = if hand_back {
            None
        } else {
            Some(source.query(&job.app_id, &job.order_id).await)
        };
        let answer = Done {
            order_id: job.order_id,
            query,
        };
        if done.send(answer).is_err() {
            break;
        }
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
        pool.jobs.send(job("a", false)).await.unwrap();
        let a = pool.done.recv().await.unwrap();
        assert_eq!((&*a.order_id, a.query.is_none()), ("a", true));
        pool.jobs.send(job("p", true)).await.unwrap();
        let p = pool.done.recv().await.unwrap();
        assert!(p.query.is_some(), "the probe goes out");
        held.store(false, Ordering::Relaxed);
        pool.jobs.send(job("b", false)).await.unwrap();
        assert!(pool.done.recv().await.unwrap().query.is_some());
        assert_eq!(source.0.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_stopped_pool_sends_nothing_more() {
        let source = Arc::new(Counting::default());
        let mut pool = WorkerPool::start(source.clone(), 1, 1000, Default::default());
        // Queued before the stop, taken after it: handed back unsent.
        let permit = pool.jobs.reserve().await.unwrap();
        pool.stopping.store(true, Ordering::Relaxed);
        permit.send(job("a", false));
        let a = pool.done.recv().await.unwrap();
        assert!(a.query.is_none());
        pool.stop();
        assert!(pool.jobs.send(job("b", false)).await.is_err());
        assert_eq!(source.0.load(Ordering::Relaxed), 0);
    }
}
