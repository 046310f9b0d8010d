//! Command line: `run`, `check-config`, `simulate`, `demo` (in `demo`), and `orders` /
//! `order` (in `orders`), which ask a running daemon's journal API.

pub mod demo;
pub mod orders;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, DaemonError};
use crate::http;
use crate::store::OnDamage;
use itnio_sim as sim;

#[derive(Debug, Parser)]
#[command(
    name = "itnio-otp-exporter",
    version = crate::build_info::SHORT_VERSION,
    long_version = crate::build_info::LONG_VERSION,
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
        #[command(flatten)]
        web: WebFlags,
        /// Start with an empty state when the state file (`state_dir/state.redb`) is
        /// empty, truncated or damaged: the file is renamed to
        /// `state.redb.damaged-<unix seconds>` (kept, never deleted) and its pending
        /// orders are not tracked. Without it such a file stops the start with an error.
        #[arg(long)]
        reset_state: bool,
    },
    /// Validate a configuration file and exit (0 when valid).
    CheckConfig {
        #[arg(long, short, default_value = "/etc/itnio-otp-exporter/config.yml")]
        config: PathBuf,
        /// Also check this web configuration file (exporter-toolkit format).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Run a stand-in for the ITNIO API (record and send endpoints) for tests and demos.
    Simulate(sim::SimulateArgs),
    /// Run simulator, traffic generator and exporter together, with no configuration.
    Demo(DemoArgs),
    /// List orders from the running daemon's journal, newest first (filters as the
    /// API's `/api/v1/orders`).
    Orders(orders::OrdersArgs),
    /// Show one order from the running daemon's journal: attempts and timeline.
    Order(orders::OrderArgs),
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
    /// Fault scenario for the simulator (YAML, see `simulate --help` and
    /// examples/scenario-*.yml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Start an outage of a simulated country's channel (sms, call, sna): `fail` (the
    /// default) fails its attempts, `silent` accepts them and never reports a result.
    /// Repeatable; added to the scenario file's outages. E.g. `IN:sms`, `ID:sms:silent`.
    #[arg(long = "outage", value_name = "COUNTRY:CHANNEL[:silent]", value_parser = demo::parse_outage)]
    pub outages: Vec<sim::Outage>,
    /// When the `--outage` outages start: wall-clock time after the demo starts.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub outage_after: Duration,
    /// Start the simulated account with little balance: enough for about 3 minutes of
    /// the traffic at --orders-per-second. Then sends fail with -10 (balance too low)
    /// and their ids, still spooled, turn not_found, as in production.
    #[arg(long, conflicts_with = "balance_usd")]
    pub low_balance: bool,
    /// Starting balance of the simulated account, in USD (default: the simulator's
    /// 1000000, which the demo never spends).
    #[arg(long, value_name = "USD", allow_negative_numbers = true, value_parser = sim::account::parse_usd)]
    pub balance_usd: Option<sim::Usd>,
    /// Keep state and spool here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the full log here (appended). Default: `demo.log` in `--dir`, else
    /// `itnio-otp-demo-<pid>.log` in the temporary directory, kept after the demo ends.
    /// The terminal gets warnings and a summary every 30 s. `-`: the full log on
    /// stderr, as `run` logs (in a container).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[command(flatten)]
    pub web: WebFlags,
}

/// The exporter conventions' `--web.*` flags, named as Prometheus exporter-toolkit
/// names them so that deploy tooling written for other exporters applies.
#[derive(Debug, Clone, clap::Args)]
pub struct WebFlags {
    /// Listen here instead of the configuration's `listen` (IP:PORT, :PORT or localhost:PORT).
    #[arg(long = "web.listen-address", value_name = "ADDRESS", value_parser = config::parse_listen)]
    pub listen_address: Option<SocketAddr>,
    /// Path under which the metrics are served.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = http::DEFAULT_TELEMETRY_PATH)]
    pub telemetry_path: String,
    /// Web configuration file in exporter-toolkit's format (TLS, basic auth, headers); read at start.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
}

impl WebFlags {
    /// The server options these flags ask for, the web configuration file read and checked.
    pub fn serve_options(&self) -> Result<http::ServeOptions, CliError> {
        let path = &self.telemetry_path;
        if !path.starts_with('/') || matches!(path.as_str(), "/" | "/healthz" | "/readyz") {
            return Err(CliError::TelemetryPath(path.clone()));
        }
        let web = match &self.config_file {
            Some(file) => http::WebConfig::load(file)?,
            None => http::WebConfig::plain(),
        };
        Ok(http::ServeOptions {
            telemetry_path: path.clone(),
            web,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error(transparent)]
    WebConfig(#[from] http::WebConfigError),
    #[error(transparent)]
    Client(#[from] orders::ClientError),
    #[error(
        "--web.telemetry-path must start with / and be none of /, /healthz, /readyz, not {0:?}"
    )]
    TelemetryPath(String),
    #[error("--time-scale must be in (0, 10], not {0}")]
    TimeScale(f64),
    #[error("cannot create a temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error("cannot open the demo's log file {path} (choose another with --log-file)")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {address} (choose another with --listen)")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
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
        Command::Run {
            config,
            web,
            reset_state,
        } => {
            let mut config = Config::load(&config)?;
            let options = web.serve_options()?;
            if let Some(listen) = web.listen_address {
                config.listen = listen;
            }
            let on_damage = if reset_state {
                OnDamage::SetAside
            } else {
                OnDamage::Refuse
            };
            daemon::run(config, options, on_damage, shutdown_signal()).await?;
            Ok(())
        }
        Command::CheckConfig {
            config: path,
            web_config_file,
        } => {
            let config = Config::load(&path)?;
            if let Some(web_path) = web_config_file {
                let web = http::WebConfig::load(&web_path)?;
                println!("{}: valid ({})", web_path.display(), web.describe());
            }
            let balance = match config.account.balance_interval {
                Some(every) => format!(
                    "balance every {} from {}",
                    humantime::format_duration(every),
                    config.account.balance_url
                ),
                None => "balance poller off".to_string(),
            };
            println!(
                "{}: valid ({} app(s), spool {}, state {}, API {}, {balance})",
                path.display(),
                config.apps.len(),
                config.spool.dir.display(),
                config.state_dir.display(),
                config.api.base_url
            );
            Ok(())
        }
        Command::Simulate(args) => Ok(sim::run(args).await?),
        Command::Demo(args) => demo::demo(args).await,
        Command::Orders(args) => orders::orders(args).await,
        Command::Order(args) => orders::order(args).await,
    }
}
