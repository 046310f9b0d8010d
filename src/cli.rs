//! Command line: `run`, `check-config`, `simulate`, `demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, Offset, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, DaemonError};
use itnio_sim as sim;

#[derive(Debug, Parser)]
#[command(
    name = "itnio-otp-exporter",
    version,
    about = "Prometheus exporter for ITNIO Tech OTP delivery health"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info`, `debug`, `itnio_otp_exporter=debug`); RUST_LOG wins when set.
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter daemon.
    Run {
        #[arg(long, short, default_value = "/etc/itnio-otp-exporter/config.yml")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (0 when valid).
    CheckConfig {
        #[arg(long, short, default_value = "/etc/itnio-otp-exporter/config.yml")]
        config: PathBuf,
    },
    /// Run a stand-in for the ITNIO API (record and send endpoints) for tests and demos.
    Simulate(sim::SimulateArgs),
    /// Run simulator, traffic generator and exporter together, with no configuration.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the exporter serves /metrics.
    #[arg(long, default_value = "127.0.0.1:8467")]
    pub listen: SocketAddr,
    /// Where the simulator listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_listen: SocketAddr,
    /// Speed of simulated time: 0.2 turns the 5 min OTP validity into 1 min.
    #[arg(long, default_value_t = 0.2)]
    pub time_scale: f64,
    /// OTPs sent per second by the traffic generator.
    #[arg(long, default_value_t = 5.0)]
    pub orders_per_second: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fault scenario for the simulator (YAML, see `simulate --help`).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Keep state and spool here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error("{0}")]
    Other(String),
}

/// A watch channel that turns true on SIGINT or SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        let _ = tx.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

pub async fn execute(command: Command) -> Result<(), CliError> {
    match command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            daemon::run(config, shutdown_signal()).await?;
            Ok(())
        }
        Command::CheckConfig { config: path } => {
            let config = Config::load(&path)?;
            println!(
                "{}: valid ({} app(s), spool {}, state {}, API {})",
                path.display(),
                config.apps.len(),
                config.spool.dir.display(),
                config.state_dir.display(),
                config.api.base_url
            );
            Ok(())
        }
        Command::Simulate(args) => Ok(sim::run(args).await?),
        Command::Demo(args) => demo(args).await,
    }
}

/// Scales a provider-realistic duration for the demo, keeping it usable.
fn scaled(d: Duration, scale: f64, floor: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * scale).max(floor)
}

/// The demo's credentials: the simulator accepts them and the exporter sends them.
const DEMO_API_KEY: &str = "demo-key";
const DEMO_API_SECRET: &str = "demo-secret";
/// The simulated apps' OTP validity, before scaling (the provider's default).
const DEMO_VALIDITY: Duration = Duration::from_secs(300);

/// The simulator's settings: `simulate`'s defaults except where the demo decides.
fn demo_sim_args(args: &DemoArgs) -> sim::SimulateArgs {
    sim::SimulateArgs {
        listen: args.sim_listen,
        api_key: DEMO_API_KEY.into(),
        api_secret: DEMO_API_SECRET.into(),
        seed: args.seed,
        time_scale: args.time_scale,
        validity: DEMO_VALIDITY,
        scenario: args.scenario.clone(),
        ..sim::SimulateArgs::default()
    }
}

/// The exporter's settings for the demo: the provider's durations scaled like the
/// simulator's clock, with floors that keep polling sane at small scales. Values are
/// valid by construction (time scale in (0, 10]: `max_age` stays above the window and
/// under the 7-day limit, `first_delay` under `max_interval`).
fn demo_config(
    listen: SocketAddr,
    state_dir: PathBuf,
    spool_dir: PathBuf,
    base_url: &str,
    scale: f64,
) -> config::Config {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    config::Config {
        listen,
        state_dir,
        api: config::ApiConfig {
            base_url: base_url.to_string(),
            api_key: DEMO_API_KEY.into(),
            api_secret: Some(config::Secret::new(DEMO_API_SECRET)),
            api_secret_file: None,
            timeout: secs(5),
            max_in_flight: 16,
            max_requests_per_second: 200,
            // +08:00, the provider's zone (the config's default), which the simulator
            // uses for times it writes without an offset; `east_opt` fails only past 24 h.
            timezone: FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix()),
        },
        default_app: Some("demo-app".into()),
        apps: ["demo-app", "demo-shop"]
            .map(|id| config::AppConfig {
                id: id.into(),
                verification_window: None,
            })
            .into(),
        spool: config::SpoolConfig {
            dir: spool_dir,
            rescan_interval: secs(5),
            ..config::SpoolConfig::default()
        },
        tracking: config::TrackingConfig {
            verification_window: scaled(DEMO_VALIDITY, scale, ms(1000)),
            settle_timeout: scaled(secs(120), scale, ms(1000)),
            not_found_grace: scaled(secs(120), scale, ms(1000)),
            max_age: scaled(secs(1800), scale, ms(5000)),
        },
        polling: config::PollingConfig {
            first_delay: scaled(secs(5), scale, ms(200)),
            max_interval: scaled(secs(60), scale, ms(500)),
        },
    }
}

async fn demo(args: DemoArgs) -> Result<(), CliError> {
    if !(args.time_scale > 0.0 && args.time_scale <= 10.0) {
        return Err(CliError::Other("--time-scale must be in (0, 10]".into()));
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("itnio-otp-demo-")
                .tempdir()
                .map_err(|e| {
                    CliError::Other(format!("cannot create a temporary directory: {e}"))
                })?;
            temp.path().to_path_buf()
        }
    };
    let spool_dir = dir.join("spool");
    std::fs::create_dir_all(&spool_dir)
        .map_err(|e| CliError::Other(format!("cannot create {}: {e}", spool_dir.display())))?;

    let simulator = sim::start(demo_sim_args(&args)).await?;
    let base_url = simulator.base_url();
    let config = demo_config(
        args.listen,
        dir.join("state"),
        spool_dir.clone(),
        &base_url,
        args.time_scale,
    );
    let shutdown = shutdown_signal();

    let traffic = sim::TrafficOptions {
        base_url: base_url.clone(),
        api_key: DEMO_API_KEY.into(),
        api_secret: DEMO_API_SECRET.into(),
        spool_dir: spool_dir.clone(),
        app_ids: config.app_ids(),
        orders_per_second: args.orders_per_second,
        seed: args.seed,
        max_orders: None,
        unknown_ratio: 0.02,
    };
    let traffic_task = tokio::spawn(sim::run_traffic(traffic));
    println!(
        "demo: simulator at {base_url}, spool {}, metrics at http://{}/metrics (Ctrl-C stops)",
        spool_dir.display(),
        args.listen
    );
    let result = daemon::run(config, shutdown).await;
    traffic_task.abort();
    simulator.shutdown().await;
    result.map_err(CliError::from)
}
