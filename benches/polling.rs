//! Polling bench: record queries per finalized order, against the simulator's oracle
//! (the fewest queries an exporter that knew every order's future would need, see
//! `itnio_sim::oracle`).
//!
//! `cargo bench --bench polling` starts the simulator in-process at time scale 0.1,
//! sends `ORDERS` OTPs at `ORDERS_PER_SECOND` with the demo's traffic generator (2% of
//! the ids never sent), runs the real daemon on them (configuration built here, the
//! provider's durations scaled like `demo` scales them, spool and state in a temporary
//! directory) until every id is finalized, then reads `otp_exporter_polls_per_order`
//! from its /metrics and prints the ratio to the oracle. Only public APIs that exist
//! in every version of the daemon since issue 8 are used, so the figure can be
//! compared before and after a scheduler change. The oracle's tolerance (how soon a
//! fact must be seen) is 5 s at real time, scaled like every other duration.
//!
//! Environment: `POLLING_BENCH_ORDERS` (default 600), `POLLING_BENCH_SEED` (default 1).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use itnio_otp_exporter::config::Config;
use itnio_otp_exporter::daemon;
use itnio_otp_exporter::http::{ServeOptions, WebConfig, DEFAULT_TELEMETRY_PATH};
use itnio_otp_exporter::store::OnDamage;
use itnio_sim::{OracleRules, SimulateArgs, TrafficOptions};

const TIME_SCALE: f64 = 0.1;
const ORDERS_PER_SECOND: f64 = 20.0;
const API_KEY: &str = "bench-key";
const API_SECRET: &str = "bench-secret";
/// The simulator's OTP validity (its default, the provider's), before scaling.
const VALIDITY: Duration = Duration::from_secs(300);
/// `max_age` is 10 min instead of the default 30 min (before scaling) so that the
/// orders nothing ever decides (stuck ones) end within the bench; the oracle plays by
/// the same value.
const MAX_AGE: Duration = Duration::from_secs(600);
const APPS: [&str; 2] = ["bench-app", "bench-shop"];

fn scaled(d: Duration, floor: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * TIME_SCALE).max(floor)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// The exporter's durations: the provider's defaults scaled like `demo_config` does.
struct Scaled {
    window: Duration,
    settle: Duration,
    grace: Duration,
    max_age: Duration,
    first_delay: Duration,
    max_interval: Duration,
}

fn durations() -> Scaled {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    Scaled {
        window: scaled(VALIDITY, ms(1000)),
        settle: scaled(secs(120), ms(1000)),
        grace: scaled(secs(120), ms(1000)),
        max_age: scaled(MAX_AGE, ms(5000)),
        first_delay: scaled(secs(5), ms(200)),
        max_interval: scaled(secs(60), ms(500)),
    }
}

fn config(listen: SocketAddr, base_url: &str, dir: &Path, d: &Scaled) -> Config {
    let text = |d: Duration| format!("{}ms", d.as_millis());
    let yaml = format!(
        "listen: \"{listen}\"\nstate_dir: {state}\napi:\n  base_url: {base_url}\n  api_key: {API_KEY}\n  api_secret: {API_SECRET}\n  timeout: 5s\n  max_in_flight: 16\n  max_requests_per_second: 200\ndefault_app: {app}\napps:\n  - id: {app}\n  - id: {shop}\nspool:\n  dir: {spool}\n  rescan_interval: 1s\ntracking:\n  verification_window: {window}\n  settle_timeout: {settle}\n  not_found_grace: {grace}\n  max_age: {max_age}\npolling:\n  first_delay: {first}\n  max_interval: {max_interval}\n",
        state = dir.join("state").display(),
        spool = dir.join("spool").display(),
        app = APPS[0],
        shop = APPS[1],
        window = text(d.window),
        settle = text(d.settle),
        grace = text(d.grace),
        max_age = text(d.max_age),
        first = text(d.first_delay),
        max_interval = text(d.max_interval),
    );
    Config::from_yaml(&yaml, Path::new("<polling bench>"), &|_| None).expect("bench config")
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn polls_per_order(metrics_url: &str) -> Option<(f64, f64)> {
    let text = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
    Some((
        sample(&text, "otp_exporter_polls_per_order_sum")?,
        sample(&text, "otp_exporter_polls_per_order_count")?,
    ))
}

fn main() {
    let orders = env_number("POLLING_BENCH_ORDERS", 600);
    let seed = env_number("POLLING_BENCH_SEED", 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(dir.path().join("spool")).expect("spool directory");
    runtime.block_on(bench(orders, seed, dir.path()));
}

async fn bench(orders: u64, seed: u64, dir: &Path) {
    let sim = itnio_sim::start(SimulateArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        seed,
        time_scale: TIME_SCALE,
        validity: VALIDITY,
        ..SimulateArgs::default()
    })
    .await
    .expect("simulator");
    let d = durations();
    let listen = free_addr();
    let config = config(listen, &sim.base_url(), dir, &d);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = ServeOptions {
        telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
        web: WebConfig::plain(),
    };
    let daemon = tokio::spawn(daemon::run(config, options, OnDamage::Refuse, stop_rx));

    let started = Instant::now();
    itnio_sim::run_traffic(TrafficOptions {
        base_url: sim.base_url(),
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        spool_dir: dir.join("spool"),
        app_ids: APPS.iter().map(|a| a.to_string()).collect(),
        orders_per_second: ORDERS_PER_SECOND,
        seed,
        max_orders: Some(orders),
        unknown_ratio: 0.02,
    })
    .await
    .expect("traffic");
    let ids = sim.truth().orders.len();

    // Every id written to the spool is finalized once: wait for that many observations.
    let metrics_url = format!("http://{listen}{DEFAULT_TELEMETRY_PATH}");
    let deadline = started + d.max_age * 3 + Duration::from_secs(120);
    let (sum, count) = loop {
        if let Some((sum, count)) = polls_per_order(&metrics_url).await {
            if count >= ids as f64 {
                break (sum, count);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not finalize the {ids} orders in time"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let _ = daemon.await;

    let rules = OracleRules {
        verification_window: d.window,
        settle_timeout: d.settle,
        not_found_grace: d.grace,
        max_age: d.max_age,
        tolerance: Duration::from_secs_f64(
            OracleRules::DEFAULT_TOLERANCE.as_secs_f64() * TIME_SCALE,
        ),
    };
    let oracle = sim.oracle_queries(&rules);
    sim.shutdown().await;
    let oracle_sum: u64 = oracle.iter().map(|o| u64::from(o.queries)).sum();
    let oracle_mean = oracle_sum as f64 / oracle.len().max(1) as f64;
    let mean = sum / count.max(1.0);

    println!(
        "polling bench: {ids} ids ({orders} asked, {ORDERS_PER_SECOND}/s), time scale {TIME_SCALE}, seed {seed}, all finalized after {:.0} s",
        elapsed.as_secs_f64()
    );
    println!(
        "queries per finalized order: {mean:.2} (oracle: {oracle_mean:.2}, ratio X/Y = {:.2})",
        mean / oracle_mean
    );
    let mut outcomes: Vec<&str> = oracle.iter().map(|o| o.outcome).collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    for outcome in outcomes {
        let of: Vec<u32> = oracle
            .iter()
            .filter(|o| o.outcome == outcome)
            .map(|o| o.queries)
            .collect();
        let mean = f64::from(of.iter().sum::<u32>()) / of.len() as f64;
        println!(
            "  oracle {outcome}: {mean:.2} queries per order ({} orders)",
            of.len()
        );
    }
}
