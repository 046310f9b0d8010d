//! Wires the parts into the running daemon and shuts them down in order.
//!
//! ```text
//! spool dir ──notify/rescan──▶ spool ──admit──▶ store (redb)
//!                                 │                 ▲
//!                                 ▼ new orders      │ progress, finalized
//!                             scheduler ────────────┘
//!                 time-ordered queue ──▶ workers (max_in_flight, rate limit) ──▶ ITNIO API
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
use crate::http::{self, BindError, PageInfo};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::spool::{LineRules, Spool, SpoolError, SpoolOptions, SpoolRunner};
use crate::status::Status;
use crate::store::{Store, StoreError};

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
}

/// A spool file must be this quiet before it is read (in-place writers, see `spool`).
const SPOOL_MIN_FILE_AGE: Duration = Duration::from_millis(500);

/// Runs the daemon until `shutdown` turns true, then stops taking files, lets
/// in-flight queries finish (bounded), persists and returns.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    let status = Arc::new(Status::new());
    let metrics = Arc::new(Metrics::new(&config.app_ids()));
    let listener = http::bind(config.listen).await?;
    let state_dir = config.state_dir.clone();
    let store = Arc::new(blocking(move || Store::open(&state_dir)).await??);
    store.report_health_to(status.clone(), metrics.clone());
    let client =
        Arc::new(ApiClient::new(&config.api)?.with_clock_offset(status.clock_offset_secs.clone()));

    let page = PageInfo {
        spool_dir: config.spool.dir.display().to_string(),
        state_dir: config.state_dir.display().to_string(),
        api_url: client.record_url().to_string(),
        apps: config.app_ids(),
    };
    let server = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        status.clone(),
        page,
        shutdown.clone(),
    ));
    tracing::info!(listen = %config.listen, api = client.record_url(), spool = %config.spool.dir.display(), state = %store.path().display(), "itnio-otp-exporter {} started", env!("CARGO_PKG_VERSION"));

    let mut scheduler = Scheduler::new(&config, store.clone(), metrics.clone(), status.clone());
    resume_pending(&mut scheduler, &store, &status).await?;

    let (orders_tx, orders_rx) = mpsc::unbounded_channel();
    let spool = Spool::new(
        SpoolOptions {
            dir: config.spool.dir.clone(),
            rules: LineRules::from_config(&config),
            max_file_bytes: config.spool.max_file_bytes,
            min_file_age: SPOOL_MIN_FILE_AGE,
        },
        store.clone(),
        metrics.clone(),
        orders_tx,
    );
    let spool_stopper = start_spool(spool, &config, &status, shutdown.clone())?;

    let shutdown_requested = shutdown.clone();
    let drain = config.api.timeout.min(Duration::from_secs(10)) + Duration::from_secs(1);
    // A task of its own: the scheduler blocks briefly (block_in_place) to commit.
    let scheduler = tokio::spawn(scheduler.run(
        client,
        config.api.max_in_flight as usize,
        config.api.max_requests_per_second,
        orders_rx,
        shutdown,
        drain,
    ));
    // The scheduler returns only at shutdown; anything else is fatal, so that a
    // supervisor restarts the daemon instead of it serving frozen metrics.
    let stopped = scheduler.await;
    if !*shutdown_requested.borrow() || stopped.is_err() {
        return Err(match stopped {
            Err(e) if e.is_panic() => DaemonError::SchedulerStopped("panicked", Some(e)),
            Err(e) => DaemonError::SchedulerStopped("failed", Some(e)),
            Ok(()) => DaemonError::SchedulerStopped("stopped unexpectedly", None),
        });
    }
    let _ = spool_stopper.await;
    let _ = server.await;
    tracing::info!("itnio-otp-exporter stopped");
    Ok(())
}

/// Runs a start-up step that touches the disk off the async workers.
async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(DaemonError::StartupTask)
}

/// Loads the pending orders of the last run into the scheduler; the daemon is ready
/// only after this (`/readyz`).
async fn resume_pending(
    scheduler: &mut Scheduler,
    store: &Arc<Store>,
    status: &Status,
) -> Result<(), DaemonError> {
    let load_store = store.clone();
    let (pending, broken) = blocking(move || load_store.load_pending()).await??;
    for id in &broken {
        tracing::error!(order_id = %id, "pending order in the state database cannot be decoded; it is skipped");
    }
    let loaded = scheduler.load(pending);
    status.state_loaded.store(true, Ordering::Release);
    tracing::info!(resumed = loaded, "pending orders loaded");
    Ok(())
}

/// Starts the spool thread and a task that stops it first at shutdown, so that no
/// new file is taken while the scheduler drains.
fn start_spool(
    spool: Spool,
    config: &Config,
    status: &Arc<Status>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let stop_spool = Arc::new(AtomicBool::new(false));
    let runner = SpoolRunner::start(
        spool,
        config.spool.rescan_interval,
        stop_spool.clone(),
        status.clone(),
    )?;
    let status = status.clone();
    Ok(tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        status.stopping.store(true, Ordering::Release);
        stop_spool.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || runner.stop()).await;
    }))
}
