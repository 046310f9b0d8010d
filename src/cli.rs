//! Command line: `run`, `check-config`, `simulate`, `demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    #[arg(long = "outage", value_name = "COUNTRY:CHANNEL[:silent]", value_parser = parse_outage)]
    pub outages: Vec<sim::Outage>,
    /// When the `--outage` outages start: wall-clock time after the demo starts.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub outage_after: Duration,
    /// Keep state and spool here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
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
    #[error(
        "--web.telemetry-path must start with / and be none of /, /healthz, /readyz, not {0:?}"
    )]
    TelemetryPath(String),
    #[error("--time-scale must be in (0, 10], not {0}")]
    TimeScale(f64),
    #[error("cannot create a temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
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

/// Parses `--outage COUNTRY:CHANNEL[:KIND]` (KIND `fail` or `silent`); the outage
/// starts at 0 until `--outage-after` sets it.
fn parse_outage(text: &str) -> Result<sim::Outage, String> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let (country, channel, kind) =
        match parts.as_slice() {
            [country, channel] => (*country, *channel, None),
            [country, channel, kind] => (*country, *channel, Some(*kind)),
            _ => return Err(
                "expected COUNTRY:CHANNEL or COUNTRY:CHANNEL:silent, e.g. IN:sms or ID:sms:silent"
                    .into(),
            ),
        };
    let profile = sim::profile::profile_for_country(country).ok_or_else(|| {
        format!(
            "country {country:?} is not simulated (simulated: {})",
            sim::profile::supported_countries()
        )
    })?;
    let channel = match channel.to_ascii_lowercase().as_str() {
        "sms" => sim::Channel::Sms,
        "call" => sim::Channel::Call,
        "sna" => sim::Channel::Sna,
        other => return Err(format!("channel {other:?} is none of sms, call, sna")),
    };
    let kind = match kind.map(str::to_ascii_lowercase).as_deref() {
        None | Some("fail") => sim::OutageKind::Fail,
        Some("silent") => sim::OutageKind::Silent,
        Some(other) => return Err(format!("outage kind {other:?} is neither fail nor silent")),
    };
    Ok(sim::Outage {
        country: profile.country.to_string(),
        channel,
        kind,
        from: Duration::ZERO,
        until: None,
    })
}

/// The `--outage` outages starting `--outage-after` (wall clock) after the start:
/// an outage's `from` is simulated time, so the wall-clock delay is divided by the scale.
fn demo_outages(args: &DemoArgs) -> Vec<sim::Outage> {
    let from = Duration::try_from_secs_f64(args.outage_after.as_secs_f64() / args.time_scale)
        .unwrap_or(Duration::MAX);
    args.outages
        .iter()
        .map(|o| sim::Outage { from, ..o.clone() })
        .collect()
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-30T14:10:00.000Z`.
fn rfc3339_utc(unix_ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(unix_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{unix_ms} ms after the Unix epoch"))
}

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
        extra_outages: demo_outages(args),
        ..sim::SimulateArgs::default()
    }
}

/// The exporter's settings for the demo: the provider's durations scaled like the
/// simulator's clock, with floors that keep polling sane at small scales. Built in
/// code and checked by the same `validate()` as a configuration file.
fn demo_config(
    listen: SocketAddr,
    state_dir: PathBuf,
    spool_dir: PathBuf,
    base_url: &str,
    scale: f64,
) -> Result<config::Config, ConfigError> {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    config::ConfigFile {
        listen: Some(listen),
        state_dir: Some(state_dir),
        api: config::ApiSection {
            base_url: Some(base_url.to_string()),
            api_key: Some(DEMO_API_KEY.into()),
            api_secret: Some(config::Secret::new(DEMO_API_SECRET)),
            timeout: Some(secs(5)),
            max_in_flight: Some(16),
            max_requests_per_second: Some(200),
            // The timezone stays the default (+08:00), the provider's zone, which the
            // simulator uses for times it writes without an offset.
            ..config::ApiSection::default()
        },
        default_app: Some("demo-app".into()),
        journal: config::JournalSection::default(),
        apps: vec![
            config::AppEntry::new("demo-app"),
            config::AppEntry::new("demo-shop"),
        ],
        spool: config::SpoolSection {
            dir: Some(spool_dir),
            rescan_interval: Some(secs(5)),
            ..config::SpoolSection::default()
        },
        tracking: config::TrackingSection {
            verification_window: Some(scaled(DEMO_VALIDITY, scale, ms(1000))),
            settle_timeout: Some(scaled(secs(120), scale, ms(1000))),
            not_found_grace: Some(scaled(secs(120), scale, ms(1000))),
            max_age: Some(scaled(secs(1800), scale, ms(5000))),
            overdue_delivery_after: Some(scaled(secs(120), scale, ms(1000))),
            overdue_verification_after: Some(scaled(secs(180), scale, ms(1000))),
            ..config::TrackingSection::default()
        },
        polling: config::PollingSection {
            first_delay: Some(scaled(secs(5), scale, ms(200))),
            max_interval: Some(scaled(secs(60), scale, ms(500))),
        },
    }
    .validate(Path::new("<demo settings>"), &|_| None)
}

/// The demo's working directory when `--dir` is not given: new under the system's
/// temporary directory, removed when the demo ends.
struct DemoDir(PathBuf);

impl DemoDir {
    fn create() -> std::io::Result<DemoDir> {
        let unique = format!(
            "itnio-otp-demo-{}-{}",
            std::process::id(),
            crate::clock::unix_now_ms()
        );
        let path = std::env::temp_dir().join(unique);
        // `create_dir`, not `create_dir_all`: a directory that already exists is not ours.
        std::fs::create_dir(&path)?;
        Ok(DemoDir(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn demo(args: DemoArgs) -> Result<(), CliError> {
    if !(args.time_scale > 0.0 && args.time_scale <= 10.0) {
        return Err(CliError::TimeScale(args.time_scale));
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = DemoDir::create().map_err(CliError::TempDir)?;
            temp.0.clone()
        }
    };
    let spool_dir = dir.join("spool");
    std::fs::create_dir_all(&spool_dir).map_err(|source| CliError::CreateDir {
        path: spool_dir.clone(),
        source,
    })?;

    let options = args.web.serve_options()?;
    let listen = args.web.listen_address.unwrap_or(args.listen);
    let simulator = sim::start(demo_sim_args(&args)).await?;
    let base_url = simulator.base_url();
    let config = demo_config(
        listen,
        dir.join("state"),
        spool_dir.clone(),
        &base_url,
        args.time_scale,
    )?;
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
        "demo: simulator at {base_url}, spool {}, metrics at {}://{listen}{} (Ctrl-C stops)",
        spool_dir.display(),
        if options.web.tls.is_some() {
            "https"
        } else {
            "http"
        },
        options.telemetry_path,
    );
    // The instant each outage starts, so that a watcher can time what follows it.
    for (outage, starts_ms) in simulator.outage_starts() {
        let at = rfc3339_utc(starts_ms);
        println!(
            "demo: outage {} {} ({}) starts at {at}",
            outage.country,
            outage.channel.as_str(),
            outage.kind.as_str()
        );
        tracing::info!(
            country = %outage.country,
            channel = outage.channel.as_str(),
            kind = outage.kind.as_str(),
            starts_at = %at,
            "demo: outage scheduled"
        );
    }
    let result = daemon::run(config, options, OnDamage::Refuse, shutdown).await;
    traffic_task.abort();
    simulator.shutdown().await;
    result.map_err(CliError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_flags_parse_with_fail_as_the_default_kind() {
        let o = parse_outage("in:SMS").expect("valid");
        assert_eq!(
            (o.country.as_str(), o.channel, o.kind),
            ("IN", sim::Channel::Sms, sim::OutageKind::Fail)
        );
        let o = parse_outage("ID:sms:silent").expect("valid");
        assert_eq!(o.kind, sim::OutageKind::Silent);
        assert_eq!(parse_outage("GU:call:fail").expect("valid").country, "GU");
        for (bad, why) in [
            ("FR:sms", "not simulated"),
            ("IN:fax", "none of sms, call, sna"),
            ("IN:sms:quiet", "neither fail nor silent"),
            ("IN", "expected COUNTRY:CHANNEL"),
            ("IN:sms:silent:x", "expected COUNTRY:CHANNEL"),
        ] {
            let err = parse_outage(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// `--outage-after` is wall-clock time; the simulator's `from` is simulated time.
    #[test]
    fn outage_after_is_converted_with_the_time_scale() {
        let cli = Cli::try_parse_from([
            "itnio-otp-exporter",
            "demo",
            "--time-scale",
            "0.2",
            "--outage",
            "IN:sms",
            "--outage",
            "ID:sms:silent",
            "--outage-after",
            "1m",
        ])
        .expect("valid flags");
        let Command::Demo(args) = cli.command else {
            panic!("not demo")
        };
        let outages = demo_outages(&args);
        assert_eq!(outages.len(), 2);
        assert!(outages.iter().all(|o| o.from == Duration::from_secs(300)));
        assert_eq!(demo_sim_args(&args).extra_outages, outages);
        assert_eq!(rfc3339_utc(1_796_047_800_000), "2026-11-30T14:10:00.000Z");
    }
}
