//! Command line: `run`, `check-config`, `simulate`, `demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
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

/// Builds the simulator's arguments exactly as its command line would.
pub fn simulate_args(argv: &[String]) -> Result<sim::SimulateArgs, CliError> {
    #[derive(Parser)]
    struct Simulate {
        #[command(flatten)]
        args: sim::SimulateArgs,
    }
    Simulate::try_parse_from(argv)
        .map(|s| s.args)
        .map_err(|e| CliError::Other(format!("simulator arguments: {e}")))
}

/// Scales a provider-realistic duration for the demo, keeping it usable.
fn scaled(d: Duration, scale: f64, floor: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * scale).max(floor)
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

    let (api_key, api_secret) = ("demo-key".to_string(), "demo-secret".to_string());
    let validity = Duration::from_secs(300);
    let mut sim_argv: Vec<String> = [
        "simulate",
        "--listen",
        &args.sim_listen.to_string(),
        "--api-key",
        &api_key,
        "--api-secret",
        &api_secret,
        "--seed",
        &args.seed.to_string(),
        "--time-scale",
        &args.time_scale.to_string(),
        "--validity",
        &format!("{}s", validity.as_secs()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(scenario) = &args.scenario {
        sim_argv.extend(["--scenario".to_string(), scenario.display().to_string()]);
    }
    let sim_args = simulate_args(&sim_argv)?;
    let simulator = sim::start(sim_args).await?;
    let base_url = simulator.base_url();

    let s = args.time_scale;
    let ms = Duration::from_millis;
    let yaml = format!(
        r#"listen: "{listen}"
state_dir: "{state}"
api:
  base_url: "{base_url}"
  api_key: "{api_key}"
  api_secret: "{api_secret}"
  timeout: 5s
  max_in_flight: 16
  max_requests_per_second: 200
apps:
  - id: demo-app
  - id: demo-shop
default_app: demo-app
spool:
  dir: "{spool}"
  rescan_interval: 5s
tracking:
  verification_window: {window}ms
  settle_timeout: {settle}ms
  not_found_grace: {grace}ms
  max_age: {max_age}ms
polling:
  first_delay: {first}ms
  max_interval: {interval}ms
"#,
        listen = args.listen,
        state = dir.join("state").display(),
        spool = spool_dir.display(),
        window = scaled(validity, s, ms(1000)).as_millis(),
        settle = scaled(Duration::from_secs(120), s, ms(1000)).as_millis(),
        grace = scaled(Duration::from_secs(120), s, ms(1000)).as_millis(),
        max_age = scaled(Duration::from_secs(1800), s, ms(5000)).as_millis(),
        first = scaled(Duration::from_secs(5), s, ms(200)).as_millis(),
        interval = scaled(Duration::from_secs(60), s, ms(500)).as_millis(),
    );
    let config = Config::from_yaml(&yaml, std::path::Path::new("<demo>"), &|_| None)?;
    let shutdown = shutdown_signal();

    let traffic = sim::TrafficOptions {
        base_url: base_url.clone(),
        api_key,
        api_secret,
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
