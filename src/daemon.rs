//! Wires the parts into the running daemon and shuts them down in order.
//!
//! ```text
//! spool dir ──notify/rescan──▶ spool ──admit──▶ store (redb)
//!                                 │                 ▲
//!                                 ▼ new orders      │ progress, finalized
//!                             scheduler ────────────┘
//!                 time-ordered queue ──▶ workers (max_in_flight, rate limit) ──▶ ITNIO API
//!                   balance poller (account.balance_interval) ──▶ same limiter ──┘
//!                                 │ outcome rules
//!                                 ▼
//!                              metrics ──▶ http (/metrics, /, /healthz, /readyz)
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::api::{ApiClient, ApiError};
use crate::config::Config;
use crate::error::Chain;
use crate::http::{self, BindError, PageInfo};
use crate::metrics::Metrics;
use crate::scheduler::{Scheduler, SchedulerError};
use crate::spool::{LineRules, Spool, SpoolEnd, SpoolError, SpoolOptions, SpoolRunner};
use crate::status::Status;
use crate::store::{OnDamage, Opened, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A blocking start-up step (opening or loading the state) did not complete.
    #[error("a start-up task failed")]
    StartupTask(#[source] tokio::task::JoinError),
    /// The scheduler returns only at shutdown; anything else is fatal, so that a
    /// supervisor restarts the daemon instead of it serving frozen metrics.
    #[error("the scheduler {0}; exiting so that a supervisor restarts the daemon (pending orders are saved)")]
    SchedulerStopped(&'static str, #[source] Option<tokio::task::JoinError>),
    #[error("the scheduler stopped; exiting so that a supervisor restarts the daemon (pending orders are saved)")]
    SchedulerFailed(#[source] SchedulerError),
    /// Another long-lived thread or task ended before shutdown: fatal for the same reason.
    #[error("the {task} {how}; exiting so that a supervisor restarts the daemon (pending orders are saved)")]
    TaskStopped { task: &'static str, how: String },
}

/// What ended the daemon's normal run: the shutdown it was asked for, or a
/// long-lived thread or task that ended on its own.
enum Ended {
    Shutdown,
    Scheduler(SchedulerEnd),
    Spool(SpoolEnd),
    Server(Result<(), tokio::task::JoinError>),
}

/// How the scheduler's task ended.
type SchedulerEnd = Result<Result<(), SchedulerError>, tokio::task::JoinError>;

impl DaemonError {
    fn scheduler(stopped: SchedulerEnd) -> DaemonError {
        match stopped {
            Err(e) if e.is_panic() => DaemonError::SchedulerStopped("panicked", Some(e)),
            Err(e) => DaemonError::SchedulerStopped("failed", Some(e)),
            Ok(Err(e)) => DaemonError::SchedulerFailed(e),
            Ok(Ok(())) => DaemonError::SchedulerStopped("stopped unexpectedly", None),
        }
    }

    fn task(task: &'static str, how: impl ToString) -> DaemonError {
        DaemonError::TaskStopped {
            task,
            how: how.to_string(),
        }
    }
}

/// A spool file must be this quiet before it is read (in-place writers, see `spool`).
const SPOOL_MIN_FILE_AGE: Duration = Duration::from_millis(500);

/// Runs the daemon until `shutdown` turns true, then stops taking files, lets
/// in-flight queries finish (bounded), persists and returns. A damaged state file
/// ends the start with an error naming it, unless `on_damage` says to set it aside
/// (`run --reset-state`).
///
/// Every long-lived thread and task is supervised: the scheduler, the spool thread and
/// the HTTP server only end at shutdown, so one that ends before is fatal. `/healthz`
/// reports it at once, the others stop in order (pending orders are saved), and the
/// error makes the process exit non-zero so that its supervisor restarts it.
pub async fn run(
    config: Config,
    web: http::ServeOptions,
    on_damage: OnDamage,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let status = Arc::new(Status::new());
    let metrics = Arc::new(Metrics::new(&config.app_ids()));
    let listener = http::bind(config.listen).await?;
    let state_dir = config.state_dir.clone();
    let opened = blocking(move || Store::open_with(&state_dir, on_damage)).await??;
    let store = opened_store(opened);
    if !config.journal.enabled {
        store.disable_journal();
    }
    let mut client =
        ApiClient::new(&config.api)?.with_clock_offset(status.clock_offset_secs.clone());
    if let Some(every) = config.account.balance_interval {
        client = client.with_balance_url(&config.account.balance_url)?;
        tracing::info!(balance_url = %config.account.balance_url, every = %humantime::format_duration(every), "the account's balance is polled");
    }
    let client = Arc::new(client);

    let page = PageInfo {
        spool_dir: config.spool.dir.display().to_string(),
        state_dir: config.state_dir.display().to_string(),
        api_url: client.record_url().to_string(),
        apps: config.app_ids(),
        journal: http::JournalHandle::default(),
    };
    let journal = page.journal.clone();
    // The server stops on a signal of its own: after a failure it keeps answering
    // (`/healthz` says what failed) while the scheduler drains.
    let (stop_server, server_stopping) = watch::channel(false);
    let server = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        status.clone(),
        page,
        web.clone(),
        server_stopping,
    ));
    tracing::info!(web = %web.web.describe(), telemetry_path = %web.telemetry_path, "HTTP server");
    tracing::info!(listen = %config.listen, api = %client.record_url(), spool = %config.spool.dir.display(), state = %store.path().display(), "itnio-otp-exporter {} started", env!("CARGO_PKG_VERSION"));

    let (store, pending) = load_pending(store, on_damage).await?;
    store.report_health_to(status.clone(), metrics.clone());
    let store = Arc::new(store);
    // The journal's pages and API read the store from now on.
    let _ = journal.set(store.clone());
    let mut scheduler = Scheduler::new(&config, store.clone(), metrics.clone(), status.clone());
    let loaded = scheduler.load(pending);
    status.state_loaded.store(true, Ordering::Release);
    tracing::info!(resumed = loaded, "pending orders loaded");

    let (orders_tx, orders_rx) = mpsc::unbounded_channel();
    let stop_spool = Arc::new(AtomicBool::new(false));
    let spool_runner = start_spool(
        &config,
        store.clone(),
        &metrics,
        &status,
        orders_tx,
        &stop_spool,
    )?;

    let drain = config.api.timeout.min(Duration::from_secs(10)) + Duration::from_secs(1);
    // The scheduler stops on a signal of its own, sent at shutdown or after a failure.
    let (stop_scheduler, scheduler_stopping) = watch::channel(false);
    // A thread and runtime of its own; its group commits are written on a blocking
    // thread.
    let scheduler = scheduler.spawn(
        client,
        config.api.max_in_flight as usize,
        config.api.max_requests_per_second,
        orders_rx,
        scheduler_stopping,
        drain,
    );
    let mut running = Running {
        status,
        server,
        stop_server,
        scheduler,
        stop_scheduler,
        spool_runner,
        stop_spool,
    };
    let failure = running.wait_for_end(&mut shutdown).await;
    running.stop(failure).await
}

/// Starts the spool thread: it admits files to `store` and hands new orders over.
fn start_spool(
    config: &Config,
    store: Arc<Store>,
    metrics: &Arc<Metrics>,
    status: &Arc<Status>,
    orders: mpsc::UnboundedSender<Vec<crate::spool::SpoolOrder>>,
    stop: &Arc<AtomicBool>,
) -> Result<SpoolRunner, DaemonError> {
    let spool = Spool::new(
        SpoolOptions {
            dir: config.spool.dir.clone(),
            rules: LineRules::from_config(config),
            max_file_bytes: config.spool.max_file_bytes,
            min_file_age: SPOOL_MIN_FILE_AGE,
        },
        store,
        metrics.clone(),
        orders,
    );
    Ok(SpoolRunner::start(
        spool,
        config.spool.rescan_interval,
        stop.clone(),
        status.clone(),
    )?)
}

/// The long-lived parts of a started daemon and the signals that stop each.
struct Running {
    status: Arc<Status>,
    server: tokio::task::JoinHandle<()>,
    stop_server: watch::Sender<bool>,
    scheduler: tokio::task::JoinHandle<Result<(), SchedulerError>>,
    stop_scheduler: watch::Sender<bool>,
    spool_runner: SpoolRunner,
    stop_spool: Arc<AtomicBool>,
}

/// A failure of a supervised part, and whether the scheduler's and the server's tasks
/// have already ended (they are not awaited twice).
struct Failure {
    error: Option<DaemonError>,
    scheduler_done: bool,
    server_done: bool,
}

impl Running {
    /// Waits for the shutdown that was asked for, or for a long-lived part that ended
    /// on its own (a failure, reported on `/healthz` at once).
    async fn wait_for_end(&mut self, shutdown: &mut watch::Receiver<bool>) -> Failure {
        let mut spool_ended = self.spool_runner.take_ended();
        let ended = tokio::select! {
            // An error means the sender is gone: nobody can ask any more, so stop too.
            _ = shutdown.wait_for(|stop| *stop) => Ended::Shutdown,
            stopped = &mut self.scheduler => Ended::Scheduler(stopped),
            end = async { spool_ended.as_mut()?.await.ok() } => {
                Ended::Spool(end.unwrap_or(SpoolEnd::Panicked("ended without a word".into())))
            }
            served = &mut self.server => Ended::Server(served),
        };
        let failure = match ended {
            Ended::Shutdown => Failure {
                error: None,
                scheduler_done: false,
                server_done: false,
            },
            Ended::Scheduler(stopped) => Failure {
                error: Some(DaemonError::scheduler(stopped)),
                scheduler_done: true,
                server_done: false,
            },
            Ended::Spool(end) => Failure {
                error: Some(DaemonError::task("spool thread", end)),
                scheduler_done: false,
                server_done: false,
            },
            Ended::Server(served) => {
                let how = match served {
                    Ok(()) => "stopped unexpectedly".to_string(),
                    Err(e) => format!("failed: {e}"),
                };
                Failure {
                    error: Some(DaemonError::task("HTTP server", how)),
                    scheduler_done: false,
                    server_done: true,
                }
            }
        };
        if let Some(error) = &failure.error {
            self.status.task_failed(Chain(error).to_string());
            tracing::error!(error = %Chain(error), "stopping");
        } else {
            let _ = self.stop_server.send(true);
        }
        failure
    }

    /// Stops in order: the spool first (no new file while the scheduler drains), then
    /// the scheduler (in-flight queries finish, state is saved), then the server.
    async fn stop(self, failure: Failure) -> Result<(), DaemonError> {
        let Failure {
            error: mut failure,
            scheduler_done,
            server_done,
        } = failure;
        self.status.stopping.store(true, Ordering::Release);
        self.stop_spool.store(true, Ordering::Relaxed);
        let spool_runner = self.spool_runner;
        let spool_stopped = tokio::task::spawn_blocking(move || spool_runner.stop());
        let _ = self.stop_scheduler.send(true);
        if !scheduler_done {
            let stopped = self.scheduler.await;
            if !matches!(stopped, Ok(Ok(()))) && failure.is_none() {
                failure = Some(DaemonError::scheduler(stopped));
            }
        }
        let _ = spool_stopped.await;
        let _ = self.stop_server.send(true);
        if !server_done {
            let _ = self.server.await;
        }
        match failure {
            Some(failure) => Err(failure),
            None => {
                tracing::info!("itnio-otp-exporter stopped");
                Ok(())
            }
        }
    }
}

/// Runs a start-up step that touches the disk off the async workers.
async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(DaemonError::StartupTask)
}

/// The store of an open, after saying loudly that a damaged file was set aside.
fn opened_store(opened: Opened) -> Store {
    if opened.rolled_back {
        tracing::warn!(
            state = %opened.store.path().display(),
            "the newest commit in the state file failed its checksums and was rolled back to the one before: after a power cut this loses nothing; if the file was damaged, orders of that commit may be pending again or missing"
        );
    }
    if let Some(set_aside) = &opened.set_aside {
        tracing::warn!(
            state = %opened.store.path().display(),
            moved_to = %set_aside.aside.display(),
            problem = %Chain(&set_aside.error),
            "--reset-state: the damaged state file was moved aside (kept, not deleted); starting with an empty state"
        );
    }
    opened.store
}

/// Loads the pending orders of the last run; the daemon is ready only after they are
/// in the scheduler (`/readyz`). Damage found only now (a page the open's check did
/// not reach) is refused, or set aside under `--reset-state`, like damage at open.
async fn load_pending(
    store: Store,
    on_damage: OnDamage,
) -> Result<(Store, Vec<crate::store::PendingOrder>), DaemonError> {
    let (store, (pending, broken)) = blocking(move || match store.load_pending() {
        Ok(loaded) => Ok((store, loaded)),
        Err(error @ StoreError::Damaged(_)) if on_damage == OnDamage::SetAside => {
            let store = opened_store(store.set_aside_and_reopen(error)?);
            let loaded = store.load_pending()?;
            Ok((store, loaded))
        }
        Err(error) => Err(error),
    })
    .await??;
    for id in &broken {
        tracing::error!(order_id = %id, "pending order in the state database cannot be decoded; it is skipped");
    }
    Ok((store, pending))
}
