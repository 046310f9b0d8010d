//! A stand-in for ITNIO Tech's OTP API, for integration tests and the `demo` command.
//!
//! The simulator accepts OTP sends (`POST /otp/verification/send`), draws each order's
//! whole life at send time from a seeded RNG (country profile, attempts, fallbacks,
//! DLRs, the user's verification), and answers record queries
//! (`POST /otp/verification/orderId/record`) with the record as it stands at that
//! moment. `GET /sim/truth` tells what the exporter must conclude about every order;
//! a fault scenario makes queries fail the ways the real API does.
//!
//! Endpoints: `POST /otp/verification/send`, `POST /otp/verification/orderId/record`
//! and `GET /sms/getBalance` (signed like the provider's: `Api-Key`, `Timestamp`,
//! `Sign`), `GET /sim/truth`, `GET|PUT /sim/faults` (the live scenario),
//! `POST /sim/unsent` (ids handed out but never sent, for the truth),
//! `GET|PUT /sim/account` (the account's pots, the sends refused for want of balance;
//! a top-up), `GET /` (a one-line description). Faults apply to record queries, except
//! `balance_status`, which applies to balance queries only.
//!
//! Money: sends spend a simulated account (`--balance-usd`, `--gift-usd`,
//! `--credit-usd`); once it cannot pay for an order, the send is refused with `-10`
//! and the order never gets a record (see [`account`]).
//!
//! Time: every simulated delay and the validity are multiplied by `--time-scale`, so
//! an exporter watching this simulator needs `verification_window` = validity ×
//! time scale and a `settle_timeout` of at least 0.3 × validity × time scale (late
//! DLRs of verified orders arrive within that after the verification). Below scale 1
//! record times carry milliseconds so that compressed events keep their order.
//!
//! Modules: [`account`] (balance and billing), [`profile`] (countries), [`timeline`]
//! (an order's life), [`quirks`] (how its records deviate from the documentation),
//! [`record`] (rendering), [`truth`], [`faults`], [`auth`] (the signature), `server`
//! (HTTP), [`traffic`] (the demo's order generator), [`seed`] (per-order RNG seeds),
//! [`oracle`] (the fewest record queries per order, for the polling bench:
//! [`SimHandle::oracle_queries`]).

pub mod account;
pub mod auth;
mod error;
pub mod faults;
pub mod oracle;
pub mod profile;
pub mod quirks;
pub mod record;
pub mod secret;
pub mod seed;
mod server;
#[cfg(test)]
mod testutil;
pub mod timeline;
pub mod traffic;
pub mod truth;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use account::{AccountSnapshot, AccountUpdate, Usd};
pub use error::SimError;
pub use faults::{BalanceStatus, Faults, InjectedStatus, Outage, OutageKind};
pub use oracle::OracleRules;
pub use profile::Channel;
pub use secret::ApiSecret;
pub use traffic::{run_traffic, TrafficOptions};
pub use truth::{Truth, TruthAttempt, TruthOrder};

/// The shortest validity the timelines are shaped for (fallbacks, late DLRs and the
/// settle margin need room).
pub const MIN_VALIDITY: Duration = Duration::from_secs(30);
/// The longest validity (timeline offsets are 32-bit milliseconds).
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);

pub const API_KEY_ENV: &str = "ITNIO_SIM_API_KEY";
pub const API_SECRET_ENV: &str = "ITNIO_SIM_API_SECRET";

/// The account's starting balance unless told otherwise: enough that no test or bench
/// runs out (tens of millions of orders at the simulated prices).
pub const DEFAULT_BALANCE: Usd = Usd::from_dollars(1_000_000);

/// The environment's value, else `default`. (The crate's clap is built without its
/// `env` feature, so the environment is read for the default instead; the secret's
/// default is hidden from `--help`.)
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Command-line options of `simulate` (also built by `demo` and by tests).
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8468")]
    pub listen: SocketAddr,
    /// API key the simulator accepts [env: ITNIO_SIM_API_KEY]
    #[arg(long, default_value_t = env_or(API_KEY_ENV, "demo-key"))]
    pub api_key: String,
    /// API secret the simulator accepts [default: demo-secret]
    #[arg(long, env = API_SECRET_ENV, default_value = "demo-secret", hide_default_value = true, hide_env_values = true, value_parser = secret::parse)]
    pub api_secret: ApiSecret,
    /// Seed for every random choice (same seed + same order ids/sends => same records)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Multiply every simulated delay (DLR latency, verification delay, fallback delay, OTP validity) by this, e.g. 0.02 turns 5 min into 6 s for tests
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// OTP validity of the simulated app before scaling (the provider's default is 5 min; at least 30 s)
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub validity: Duration,
    /// Fault scenario YAML (or JSON) file; the flags below override its fields
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Shift the simulator's clock (e.g. "+10m", "-10m") to provoke status -16; the Date header follows the shifted clock
    #[arg(long, default_value = "0s", allow_hyphen_values = true)]
    pub clock_offset: String,
    /// Render records exactly as documented (no numbers as strings, no offset-less times, no extra fields, ...)
    #[arg(long)]
    pub no_quirks: bool,
    /// Share of record queries answered with status -2 (IP restricted)
    #[arg(long, value_name = "SHARE")]
    pub error_rate_2: Option<f64>,
    /// Share of record queries answered with status -18 (system error)
    #[arg(long, value_name = "SHARE")]
    pub error_rate_18: Option<f64>,
    /// Share of record queries answered with status -22 (parameter error)
    #[arg(long, value_name = "SHARE")]
    pub error_rate_22: Option<f64>,
    /// Share of record queries answered with HTTP 500, 502 or 503
    #[arg(long, value_name = "SHARE")]
    pub http_error_rate: Option<f64>,
    /// Share of record queries answered with HTTP 429 and Retry-After: 1
    #[arg(long, value_name = "SHARE")]
    pub rate_limited_rate: Option<f64>,
    /// Share of record queries answered with a truncated JSON body
    #[arg(long, value_name = "SHARE")]
    pub invalid_body_rate: Option<f64>,
    /// Share of record queries answered only after --slow
    #[arg(long, value_name = "SHARE")]
    pub slow_rate: Option<f64>,
    /// Delay of slow answers (not scaled), default 2s
    #[arg(long, value_parser = humantime::parse_duration)]
    pub slow: Option<Duration>,
    /// Answer every record query with status -1
    #[arg(long)]
    pub auth_outage: bool,
    /// Answer every record query with status -2
    #[arg(long)]
    pub ip_restricted: bool,
    /// Starting balance of the simulated account, in USD (up to 4 decimals); sends spend balance, then gift, then credit, and are refused with -10 when the three cannot pay for the order
    #[arg(long, value_name = "USD", default_value = "1000000", allow_negative_numbers = true, value_parser = account::parse_usd)]
    pub balance_usd: Usd,
    /// Starting gift balance, in USD
    #[arg(long, value_name = "USD", default_value = "0", allow_negative_numbers = true, value_parser = account::parse_usd)]
    pub gift_usd: Usd,
    /// Starting credit line, in USD
    #[arg(long, value_name = "USD", default_value = "0", allow_negative_numbers = true, value_parser = account::parse_usd)]
    pub credit_usd: Usd,
    /// Outages added to the scenario file's (the demo's `--outage` flags).
    #[arg(skip)]
    pub extra_outages: Vec<Outage>,
}

impl Default for SimulateArgs {
    /// The command line's defaults, without reading the environment.
    fn default() -> Self {
        SimulateArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 8468)),
            api_key: "demo-key".into(),
            api_secret: "demo-secret".into(),
            seed: 1,
            time_scale: 1.0,
            validity: Duration::from_secs(300),
            scenario: None,
            clock_offset: "0s".into(),
            no_quirks: false,
            error_rate_2: None,
            error_rate_18: None,
            error_rate_22: None,
            http_error_rate: None,
            rate_limited_rate: None,
            invalid_body_rate: None,
            slow_rate: None,
            slow: None,
            auth_outage: false,
            ip_restricted: false,
            balance_usd: DEFAULT_BALANCE,
            gift_usd: Usd::ZERO,
            credit_usd: Usd::ZERO,
            extra_outages: Vec::new(),
        }
    }
}

/// Parses `--clock-offset`: a humantime duration with an optional sign.
fn parse_clock_offset(text: &str) -> Result<i64, SimError> {
    let invalid = |detail: String| SimError::InvalidOption {
        option: "--clock-offset",
        detail,
    };
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = humantime::parse_duration(rest.trim())
        .map_err(|e| invalid(format!("{text:?}: {e} (use e.g. +10m, -10m, 0s)")))?;
    i64::try_from(d.as_millis())
        .map(|ms| sign * ms)
        .map_err(|_| invalid(format!("{text:?} is too large")))
}

/// The scenario file, with the fault flags on top.
fn faults_from_args(args: &SimulateArgs) -> Result<Faults, SimError> {
    let mut f = match &args.scenario {
        Some(path) => Faults::load(path)?,
        None => Faults::default(),
    };
    for (code, rate) in [
        (-2, args.error_rate_2),
        (-18, args.error_rate_18),
        (-22, args.error_rate_22),
    ] {
        if let (Some(status), Some(rate)) = (InjectedStatus::new(code), rate) {
            f.status_rates.insert(status, rate);
        }
    }
    let overrides = [
        (&mut f.http_error_rate, args.http_error_rate),
        (&mut f.rate_limited_rate, args.rate_limited_rate),
        (&mut f.invalid_body_rate, args.invalid_body_rate),
        (&mut f.slow_rate, args.slow_rate),
    ];
    for (field, value) in overrides {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(slow) = args.slow {
        f.slow = slow;
    }
    f.auth_outage |= args.auth_outage;
    f.ip_restricted |= args.ip_restricted;
    f.outages.extend(args.extra_outages.iter().cloned());
    f.validate().map_err(|detail| SimError::InvalidOption {
        option: "fault flags",
        detail,
    })?;
    Ok(f)
}

fn settings_from_args(args: &SimulateArgs) -> Result<server::Settings, SimError> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err(SimError::InvalidOption {
            option: "--time-scale",
            detail: format!("{} is not a positive number", args.time_scale),
        });
    }
    if args.validity < MIN_VALIDITY || args.validity > MAX_VALIDITY {
        return Err(SimError::InvalidOption {
            option: "--validity",
            detail: format!(
                "{} is outside {}..{}",
                humantime::format_duration(args.validity),
                humantime::format_duration(MIN_VALIDITY),
                humantime::format_duration(MAX_VALIDITY)
            ),
        });
    }
    Ok(server::Settings {
        api_key: args.api_key.clone(),
        api_secret: args.api_secret.clone(),
        seed: args.seed,
        scale: args.time_scale,
        validity_ms: u32::try_from(args.validity.as_millis()).unwrap_or(u32::MAX),
        quirks: !args.no_quirks,
        clock_offset_ms: parse_clock_offset(&args.clock_offset)?,
    })
}

/// One order's oracle count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleCount {
    pub order_id: String,
    /// The truth's outcome word (`verified`, ..., `not_found`).
    pub outcome: &'static str,
    pub queries: u32,
}

/// A simulator serving in the background.
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<server::State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The bound address (the real port when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/otp`, the exporter's `api.base_url`. A wildcard listen address is
    /// given as loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            _ => {}
        }
        format!("http://{addr}/otp")
    }

    /// Replaces the live fault scenario (as `PUT /sim/faults` does).
    pub fn set_faults(&self, f: Faults) {
        self.state.set_faults(f);
    }

    /// The account now (as `GET /sim/account` returns it).
    pub fn account(&self) -> AccountSnapshot {
        self.state.account()
    }

    /// Sets the pots `update` names (as `PUT /sim/account` does); the account after it.
    pub fn update_account(&self, update: &AccountUpdate) -> AccountSnapshot {
        self.state.update_account(update)
    }

    /// The ground truth so far (as `GET /sim/truth` returns it).
    pub fn truth(&self) -> Truth {
        self.state.truth()
    }

    /// For every order so far (sent or handed out unsent), the fewest record queries
    /// an exporter playing by `rules` and knowing the future would need (see
    /// [`oracle`]). Not part of `GET /sim/truth`: it depends on the exporter's settings,
    /// which only the caller knows.
    pub fn oracle_queries(&self, rules: &OracleRules) -> Vec<OracleCount> {
        self.state.oracle_queries(rules)
    }

    /// Each outage of the live scenario with the wall-clock instant (Unix ms, system
    /// clock) it starts at: the simulator's start plus `from` times the time scale.
    pub fn outage_starts(&self) -> Vec<(Outage, i64)> {
        let started = self.state.started_unix_ms();
        let scale = self.state.scale();
        self.state
            .faults()
            .outages
            .iter()
            .map(|o| {
                let offset_ms = (o.from.as_secs_f64() * 1000.0 * scale).round() as i64;
                (o.clone(), started.saturating_add(offset_ms))
            })
            .collect()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    /// A dropped handle stops its server too, so tests cannot leak one.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds `args.listen` (port 0 allowed) and serves in the background.
pub async fn start(args: SimulateArgs) -> Result<SimHandle, SimError> {
    let settings = settings_from_args(&args)?;
    let faults = faults_from_args(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: args.listen,
        source,
    })?;
    let scale = settings.scale;
    let quirks = settings.quirks;
    let account = account::Account::new(args.balance_usd, args.gift_usd, args.credit_usd);
    let state = Arc::new(server::State::new(settings, faults, account));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, state.clone(), stop_rx));
    let handle = SimHandle {
        addr,
        state,
        stop,
        task: Some(task),
    };
    info!(
        url = %handle.base_url(),
        seed = args.seed,
        time_scale = scale,
        validity = %humantime::format_duration(args.validity),
        exporter_verification_window = %humantime::format_duration(Duration::from_secs_f64(
            args.validity.as_secs_f64() * scale
        )),
        quirks,
        clock_offset = %args.clock_offset,
        balance_usd = %args.balance_usd,
        gift_usd = %args.gift_usd,
        credit_usd = %args.credit_usd,
        "ITNIO OTP simulator listening"
    );
    Ok(handle)
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: SimulateArgs) -> Result<(), SimError> {
    let handle = start(args).await?;
    let signal = wait_for_signal().await;
    info!("simulator shutting down");
    handle.shutdown().await;
    signal
}

async fn wait_for_signal() -> Result<(), SimError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(SimError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(SimError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(SimError::Signal)
    }
}

#[cfg(test)]
mod tests;
