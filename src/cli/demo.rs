//! `demo`: simulator, traffic generator and exporter in one process, with no
//! configuration. The terminal shows the URLs to open, warnings and a short summary
//! every 30 s; the full log goes to a file named at the start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{shutdown_signal, CliError, DemoArgs};
use crate::config::{self, ConfigError};
use crate::daemon;
use crate::store::OnDamage;
use itnio_sim as sim;

/// Scales a provider-realistic duration for the demo, keeping it usable.
fn scaled(d: Duration, scale: f64, floor: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * scale).max(floor)
}

/// The demo's credentials: the simulator accepts them and the exporter sends them.
const DEMO_API_KEY: &str = "demo-key";
const DEMO_API_SECRET: &str = "demo-secret";
/// The simulated apps' OTP validity, before scaling (the provider's default).
const DEMO_VALIDITY: Duration = Duration::from_secs(300);
/// Share of the traffic's ids written to the spool without being sent.
const UNKNOWN_RATIO: f64 = 0.02;
/// How long `--low-balance` makes the account last (wall clock): long enough to see
/// the balance fall, short enough that the refusals follow within minutes.
const LOW_BALANCE_RUNWAY: Duration = Duration::from_secs(180);
/// Orders drawn to estimate what an id costs (about 10 ms in a release build, 2 s in
/// a debug one; the estimate is within a few percent).
const PRICE_SAMPLES: u32 = 5_000;

/// The simulated account's start, when `--low-balance` or `--balance-usd` asks for
/// one, with what the traffic spends.
#[derive(Debug, Clone, PartialEq)]
struct BalancePlan {
    balance: sim::Usd,
    /// What one spooled id costs on average (ids never sent cost nothing).
    price_per_id: sim::Usd,
    orders_per_second: f64,
    low: bool,
}

impl BalancePlan {
    /// `None` unless `--low-balance` or `--balance-usd` was given: the demo then keeps
    /// the simulator's default balance, which it never spends.
    fn of(args: &DemoArgs) -> Result<Option<BalancePlan>, CliError> {
        if !args.low_balance && args.balance_usd.is_none() {
            return Ok(None);
        }
        // The traffic as `demo` runs it; where it goes does not change its price.
        let traffic = sim::TrafficOptions {
            base_url: String::new(),
            api_key: DEMO_API_KEY.into(),
            api_secret: DEMO_API_SECRET.into(),
            spool_dir: PathBuf::new(),
            app_ids: Vec::new(),
            orders_per_second: args.orders_per_second,
            seed: args.seed,
            max_orders: None,
            unknown_ratio: UNKNOWN_RATIO,
        };
        let price_per_id = sim::traffic::mean_price_per_id(&traffic, DEMO_VALIDITY, PRICE_SAMPLES)?;
        let balance = args
            .balance_usd
            .unwrap_or_else(|| low_balance(price_per_id, args.orders_per_second));
        Ok(Some(BalancePlan {
            balance,
            price_per_id,
            orders_per_second: args.orders_per_second,
            low: args.balance_usd.is_none(),
        }))
    }

    /// Wall-clock time until the balance runs out at the mean price; `None` when
    /// the traffic costs nothing.
    fn runway(&self) -> Option<Duration> {
        let per_second = self.price_per_id.as_f64() * self.orders_per_second;
        if per_second <= 0.0 {
            return None;
        }
        let secs = (self.balance.as_f64() / per_second).round();
        Duration::try_from_secs_f64(secs).ok()
    }

    /// The startup line.
    fn describe(&self) -> String {
        let runway = match self.runway() {
            Some(d) => format!("runs out in about {}", humantime::format_duration(d)),
            None => "is never spent".into(),
        };
        let rate = format!(
            "{} orders/s, ${} an id on average",
            self.orders_per_second, self.price_per_id
        );
        if self.low {
            format!(
                "low balance: the simulated account starts with ${} and {runway} ({rate}); then sends fail with -10 (balance too low) and their ids, still spooled, turn not_found",
                self.balance
            )
        } else {
            format!(
                "the simulated account starts with ${} and {runway} ({rate})",
                self.balance
            )
        }
    }
}

/// Enough for [`LOW_BALANCE_RUNWAY`] of traffic at `orders_per_second`, rounded up to
/// a cent (at least one).
fn low_balance(price_per_id: sim::Usd, orders_per_second: f64) -> sim::Usd {
    let units = price_per_id.units() as f64 * orders_per_second * LOW_BALANCE_RUNWAY.as_secs_f64();
    // A float-to-int cast saturates; from_units caps absurd rates.
    let cents = (units / 100.0).ceil().max(1.0) as u64;
    sim::Usd::from_units(cents.saturating_mul(100))
}

/// Parses `--outage COUNTRY:CHANNEL[:KIND]` (KIND `fail` or `silent`); the outage
/// starts at 0 until `--outage-after` sets it.
pub(super) fn parse_outage(text: &str) -> Result<sim::Outage, String> {
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

/// `HH:MM:SS` in UTC, for the summary line.
fn clock_utc(unix_ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

/// The simulator's settings: `simulate`'s defaults except where the demo decides.
fn demo_sim_args(args: &DemoArgs, balance: Option<&BalancePlan>) -> sim::SimulateArgs {
    let defaults = sim::SimulateArgs::default();
    sim::SimulateArgs {
        balance_usd: balance.map_or(defaults.balance_usd, |b| b.balance),
        listen: args.sim_listen,
        api_key: DEMO_API_KEY.into(),
        api_secret: DEMO_API_SECRET.into(),
        seed: args.seed,
        time_scale: args.time_scale,
        validity: DEMO_VALIDITY,
        scenario: args.scenario.clone(),
        extra_outages: demo_outages(args),
        ..defaults
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
        // Often enough that the balance panel and the time to empty move while one
        // watches (the default is 5m).
        account: config::AccountSection {
            balance_interval: Some(secs(30)),
            ..config::AccountSection::default()
        },
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

pub async fn demo(args: DemoArgs) -> Result<(), CliError> {
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
    let listen = concrete(args.web.listen_address.unwrap_or(args.listen))?;
    let balance = BalancePlan::of(&args)?;
    let simulator = sim::start(demo_sim_args(&args, balance.as_ref())).await?;
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
        unknown_ratio: UNKNOWN_RATIO,
    };
    let traffic_task = tokio::spawn(sim::run_traffic(traffic));
    let web = DemoWeb::new(listen, &options);
    println!(
        "demo: open {} (on-call overview) and {} (orders); metrics at {}",
        web.url("/"),
        web.url("/orders"),
        web.url(&options.telemetry_path),
    );
    println!(
        "demo: simulator at {base_url}, spool {}, full log {} (Ctrl-C stops)",
        spool_dir.display(),
        where_the_log_is(&args),
    );
    // The instant each outage starts, so that a watcher can time what follows it.
    let outages = simulator.outage_starts();
    for (outage, starts_ms) in &outages {
        let at = rfc3339_utc(*starts_ms);
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
    // With a balance to watch, the summary says how it stands.
    let account_url = balance.as_ref().map(|plan| {
        let root = base_url.strip_suffix("/otp").unwrap_or(&base_url);
        println!("demo: {}; account at {root}/sim/account", plan.describe());
        tracing::info!(
            balance_usd = %plan.balance,
            price_per_id_usd = %plan.price_per_id,
            runway = %plan.runway().map(humantime::format_duration).map_or_else(|| "never".into(), |d| d.to_string()),
            "demo: simulated account"
        );
        format!("{root}/sim/account")
    });
    let summary_task = tokio::spawn(summaries(
        web,
        options.telemetry_path.clone(),
        outages,
        account_url,
    ));
    let result = daemon::run(config, options, OnDamage::Refuse, shutdown).await;
    summary_task.abort();
    traffic_task.abort();
    simulator.shutdown().await;
    println!("demo: stopped; full log {}", where_the_log_is(&args));
    result.map_err(CliError::from)
}

/// `--log-file -`: the full log on stderr, as `run` logs (for a container, whose
/// output is the log collector's input).
pub fn logs_to_stderr(args: &DemoArgs) -> bool {
    args.log_file.as_deref() == Some(Path::new("-"))
}

fn where_the_log_is(args: &DemoArgs) -> String {
    if logs_to_stderr(args) {
        "on stderr".into()
    } else {
        format!("in {}", log_file_path(args).display())
    }
}

/// The demo's full log: `--log-file`, else `demo.log` in `--dir`, else a file next to
/// (not inside) the temporary directory, which is removed at the end: the log is what
/// one reads after the demo, so it outlives it. Named by process id, so that `main`
/// (which opens it) and the demo (which prints it) agree.
fn log_file_path(args: &DemoArgs) -> PathBuf {
    match (&args.log_file, &args.dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.join("demo.log"),
        (None, None) => {
            std::env::temp_dir().join(format!("itnio-otp-demo-{}.log", std::process::id()))
        }
    }
}

/// Opens the demo's full log for appending (creating its directory); `None` for
/// `--log-file -`.
pub fn open_log_file(args: &DemoArgs) -> Result<Option<std::fs::File>, CliError> {
    if logs_to_stderr(args) {
        return Ok(None);
    }
    let path = log_file_path(args);
    let open = || {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    };
    match open() {
        Ok(file) => Ok(Some(file)),
        Err(source) => Err(CliError::LogFile { path, source }),
    }
}

/// How to reach the demo's own web server, for the URLs it prints and its summaries.
/// `listen` with port 0 made concrete: the system picks a free port now, and the
/// exporter binds it a moment later, so that the URLs the demo prints and the
/// summaries' scrapes name the port it really listens on.
fn concrete(listen: SocketAddr) -> Result<SocketAddr, CliError> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    let failed = |source| CliError::Listen {
        address: listen,
        source,
    };
    let probe = std::net::TcpListener::bind(listen).map_err(failed)?;
    probe.local_addr().map_err(failed)
}

struct DemoWeb {
    base: String,
    tls: bool,
}

impl DemoWeb {
    fn new(listen: SocketAddr, options: &crate::http::ServeOptions) -> DemoWeb {
        let tls = options.web.tls.is_some();
        let scheme = if tls { "https" } else { "http" };
        let address = super::orders::connect_address(listen);
        DemoWeb {
            base: format!("{scheme}://{address}"),
            tls,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// How often the terminal gets a summary line.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// Prints a summary line every 30 s, counted from the demo's own `/metrics`: the
/// numbers are the exporter's, as Prometheus sees them. With `account_url` (a balance
/// was asked for), the simulated account's state is added from the simulator.
async fn summaries(
    web: DemoWeb,
    telemetry_path: String,
    outages: Vec<(sim::Outage, i64)>,
    account_url: Option<String>,
) {
    // Our own server on the loopback: its certificate (if any) is the one we were
    // given, not one to check against public roots.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(web.tls)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %crate::error::Chain(&e), "demo: no periodic summary");
            return;
        }
    };
    let metrics_url = web.url(&telemetry_path);
    let mut tick = tokio::time::interval(SUMMARY_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let counts = match client.get(&metrics_url).send().await {
            Ok(answer) if answer.status().is_success() => match answer.text().await {
                Ok(text) => Counts::from_exposition(&text).describe(),
                Err(e) => format!("counts unavailable ({e})"),
            },
            Ok(answer) => format!(
                "counts unavailable ({metrics_url} answered {})",
                answer.status()
            ),
            Err(e) => format!("counts unavailable ({e})"),
        };
        let now = crate::clock::unix_now_ms();
        let active: Vec<String> = outages
            .iter()
            .filter(|(_, starts_ms)| *starts_ms <= now)
            .map(|(o, starts_ms)| {
                format!(
                    "{} {} ({}) since {}",
                    o.country,
                    o.channel.as_str(),
                    o.kind.as_str(),
                    clock_utc(*starts_ms)
                )
            })
            .collect();
        let outage = if active.is_empty() {
            String::new()
        } else {
            format!("; outage {}", active.join(", "))
        };
        let account = match &account_url {
            Some(url) => format!("; {}", account_summary(&client, url).await),
            None => String::new(),
        };
        println!(
            "demo: {} {counts}{outage}{account}; open {} and {}",
            clock_utc(now),
            web.url("/"),
            web.url("/orders"),
        );
    }
}

/// The simulated account for the summary line, from the simulator's `/sim/account`.
async fn account_summary(client: &reqwest::Client, url: &str) -> String {
    let answer = match client.get(url).send().await {
        Ok(answer) if answer.status().is_success() => answer,
        Ok(answer) => return format!("account unavailable ({url} answered {})", answer.status()),
        Err(e) => return format!("account unavailable ({e})"),
    };
    let account = match answer.bytes().await {
        Ok(body) => serde_json::from_slice::<sim::AccountSnapshot>(&body),
        Err(e) => return format!("account unavailable ({e})"),
    };
    match account {
        Ok(account) => describe_account(&account),
        Err(e) => format!("account unavailable ({e})"),
    }
}

/// `account balance $12.3400` or, once a send was refused,
/// `sends refused with -10 since 14:10:00 (40 so far), account balance $0.0015`
/// (true also after a top-up: the refusals happened).
fn describe_account(account: &sim::AccountSnapshot) -> String {
    let balance = format!("account balance ${}", account.balance);
    match account.first_refusal_unix_ms {
        Some(since) => format!(
            "sends refused with -10 since {} ({} so far), {balance}",
            clock_utc(since),
            account.refused_sends,
        ),
        None => balance,
    }
}

/// What the summary line counts, from a `/metrics` text.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    pending: f64,
    /// By outcome word, in `Outcome::ALL`'s order.
    finalized: Vec<(&'static str, f64)>,
}

impl Counts {
    fn from_exposition(text: &str) -> Counts {
        let mut counts = Counts {
            pending: 0.0,
            finalized: crate::outcome::Outcome::ALL
                .iter()
                .map(|o| (o.as_str(), 0.0))
                .collect(),
        };
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series.starts_with("otp_exporter_orders_pending{") {
                counts.pending += value;
            } else if series.starts_with("otp_orders_total{") {
                let outcome = series
                    .split_once("outcome=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(word, _)| word);
                if let Some(slot) = counts
                    .finalized
                    .iter_mut()
                    .find(|(word, _)| Some(*word) == outcome)
                {
                    slot.1 += value;
                }
            }
        }
        counts
    }

    /// `orders tracked 150 (finalized 120, pending 30): verified 80, undelivered 40`.
    fn describe(&self) -> String {
        let finalized: f64 = self.finalized.iter().map(|(_, n)| n).sum();
        let outcomes: Vec<String> = self
            .finalized
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(word, n)| format!("{word} {n}"))
            .collect();
        let mut text = format!(
            "orders tracked {} (finalized {finalized}, pending {})",
            finalized + self.pending,
            self.pending
        );
        if !outcomes.is_empty() {
            text.push_str(&format!(": {}", outcomes.join(", ")));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_summary_counts_come_from_the_exposition() {
        let text = "# HELP otp_orders_total x\n\
            otp_orders_total{app_id=\"a\",channel=\"sms\",country=\"IN\",outcome=\"verified\"} 7\n\
            otp_orders_total{app_id=\"b\",channel=\"sms\",country=\"IN\",outcome=\"verified\"} 3\n\
            otp_orders_total{app_id=\"a\",channel=\"sms\",country=\"IN\",outcome=\"undelivered\"} 5\n\
            otp_orders_total_other{outcome=\"verified\"} 100\n\
            otp_exporter_orders_pending{app_id=\"a\"} 4\n\
            otp_exporter_orders_pending{app_id=\"b\"} 2\n";
        let counts = Counts::from_exposition(text);
        assert_eq!(counts.pending, 6.0);
        assert_eq!(
            counts.describe(),
            "orders tracked 21 (finalized 15, pending 6): verified 10, undelivered 5"
        );
        assert_eq!(
            Counts::from_exposition("").describe(),
            "orders tracked 0 (finalized 0, pending 0)"
        );
    }

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

    fn demo_args(extra: &[&str]) -> Result<DemoArgs, clap::Error> {
        let mut argv = vec!["itnio-otp-exporter", "demo"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Demo(args) => Ok(args),
            other => panic!("not demo: {other:?}"),
        }
    }

    /// Without a balance flag the simulator keeps its default balance, which the demo
    /// never spends; nothing is estimated or printed.
    #[test]
    fn without_a_balance_flag_the_account_is_the_simulators_default() {
        let args = demo_args(&[]).expect("valid");
        assert_eq!(BalancePlan::of(&args).expect("plan"), None);
        assert_eq!(
            demo_sim_args(&args, None).balance_usd,
            sim::SimulateArgs::default().balance_usd
        );
    }

    /// `--low-balance` sizes the balance for about three minutes of the traffic.
    #[test]
    fn low_balance_lasts_about_three_minutes_of_traffic() {
        for rate in ["5", "20"] {
            let args = demo_args(&["--low-balance", "--orders-per-second", rate]).expect("valid");
            let plan = BalancePlan::of(&args).expect("plan").expect("asked for");
            assert!(plan.low);
            let runway = plan.runway().expect("traffic costs money");
            assert!(
                (Duration::from_secs(175)..=Duration::from_secs(185)).contains(&runway),
                "{runway:?} at {rate}/s"
            );
            assert_eq!(plan.balance.units() % 100, 0, "whole cents");
            assert_eq!(demo_sim_args(&args, Some(&plan)).balance_usd, plan.balance);
            let text = plan.describe();
            assert!(
                text.starts_with("low balance: the simulated account starts with $")
                    && text.contains("runs out in about 3m")
                    && text.contains("-10"),
                "{text}"
            );
        }
        // At the default rate, the balance is a few tens of dollars.
        let plan = BalancePlan::of(&demo_args(&["--low-balance"]).expect("valid"))
            .expect("plan")
            .expect("asked for");
        assert!(
            ("5".parse::<sim::Usd>().expect("usd")..="60".parse().expect("usd"))
                .contains(&plan.balance),
            "{}",
            plan.balance
        );
        assert_eq!(
            low_balance(sim::Usd::ZERO, 5.0).units(),
            100,
            "at least a cent"
        );
    }

    #[test]
    fn balance_usd_passes_through_and_excludes_low_balance() {
        let args = demo_args(&["--balance-usd", "12.5"]).expect("valid");
        let plan = BalancePlan::of(&args).expect("plan").expect("asked for");
        assert_eq!(
            (plan.balance.to_string().as_str(), plan.low),
            ("12.5000", false)
        );
        assert_eq!(
            demo_sim_args(&args, Some(&plan)).balance_usd.to_string(),
            "12.5000"
        );
        assert!(plan
            .describe()
            .starts_with("the simulated account starts with $12.5000 and runs out in about"));
        let err = demo_args(&["--balance-usd", "5", "--low-balance"]).expect_err("conflict");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        for bad in ["-5", "0.00001", "lots"] {
            let err = demo_args(&["--balance-usd", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--balance-usd"), "{err}");
        }
        // A traffic rate the generator refuses is named before anything starts.
        let args = demo_args(&["--low-balance", "--orders-per-second", "0"]).expect("parses");
        let err = BalancePlan::of(&args).expect_err("no rate").to_string();
        assert!(err.contains("orders_per_second"), "{err}");
    }

    #[test]
    fn the_summary_tells_how_the_account_stands() {
        let mut account = sim::AccountSnapshot {
            balance: "1.25".parse().expect("usd"),
            gift: sim::Usd::ZERO,
            credit: sim::Usd::ZERO,
            spent: "3".parse().expect("usd"),
            charged_sends: 120,
            refused_sends: 0,
            first_refusal_unix_ms: None,
        };
        assert_eq!(describe_account(&account), "account balance $1.2500");
        account.refused_sends = 40;
        account.first_refusal_unix_ms = Some(1_796_047_800_000);
        assert_eq!(
            describe_account(&account),
            "sends refused with -10 since 14:10:00 (40 so far), account balance $1.2500"
        );
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
        assert_eq!(demo_sim_args(&args, None).extra_outages, outages);
        assert_eq!(rfc3339_utc(1_796_047_800_000), "2026-11-30T14:10:00.000Z");
    }
}
