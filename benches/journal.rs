//! Journal bench: what the order journal costs the poll path, and how fast the
//! drill-down answers with millions of journaled orders.
//!
//! `cargo bench --bench journal` runs, in one process:
//!
//! 1. **Poll path.** The real daemon (in-process, `daemon::run`) polls `POLL_ORDERS`
//!    orders against a minimal loopback record server (hyper, on its own runtime and
//!    thread) that answers each order's queries from a script: an SMS appears pending,
//!    stays so for two queries, is delivered, then the code is verified (5 queries, 3 of
//!    them changing the journal). Polls per second are read from
//!    `otp_exporter_api_requests_total` over the same window of each run, with the
//!    journal off and on, alternately, three times each; the ratio of the medians
//!    on/off is the cost.
//! 2. **Drill-down.** `JOURNAL_BENCH_ORDERS` (default 10,000,000) finalized orders,
//!    issued evenly over the last 7 days across 20 countries, are written into a
//!    state database through `Store::apply` (the daemon's own write path), then the
//!    daemon is started on it and the JSON API is timed over HTTP: the list
//!    `orders?country=IN&since=10m`, the same with `limit=1000`, a country with no
//!    order in the window (the whole window is walked), one order by id (random ids),
//!    and a 15-minute breakdown by country. Bytes per order are the journal's encoded
//!    bytes and the state file's size, each divided by the orders.
//!
//! Environment: `JOURNAL_BENCH_ORDERS`, `JOURNAL_BENCH_POLL_ORDERS` (default 60,000),
//! `JOURNAL_BENCH_DIR` (where the big state file goes; default a temporary directory;
//! it takes about 0.6 KB per order on disk), `JOURNAL_BENCH_SKIP` (`poll` or `drill`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use itnio_otp_exporter::config::Config;
use itnio_otp_exporter::daemon;
use itnio_otp_exporter::http::{ServeOptions, WebConfig, DEFAULT_TELEMETRY_PATH};
use itnio_otp_exporter::journal::{Answer, AttemptDetail, Snapshot, Update};
use itnio_otp_exporter::outcome::{AttemptResult, Channel, Outcome};
use itnio_otp_exporter::store::{OnDamage, Store};

#[path = "common/mod.rs"]
mod scripted;

use scripted::{env_number, free_addr};

const API_KEY: &str = "bench-key";
const API_SECRET: &str = "bench-secret";
const COUNTRIES: [(&str, u16, u16, &str); 20] = [
    ("IN", 404, 45, "Airtel"),
    ("ID", 510, 10, "Telkomsel"),
    ("BR", 724, 5, "Claro"),
    ("NG", 621, 30, "MTN"),
    ("PH", 515, 2, "Globe"),
    ("VN", 452, 4, "Viettel"),
    ("MX", 334, 20, "Telcel"),
    ("PK", 410, 1, "Jazz"),
    ("BD", 470, 1, "Grameenphone"),
    ("EG", 602, 1, "Orange"),
    ("TR", 286, 1, "Turkcell"),
    ("TH", 520, 3, "AIS"),
    ("CO", 732, 101, "Claro"),
    ("KE", 639, 2, "Safaricom"),
    ("ZA", 655, 10, "MTN"),
    ("MY", 502, 12, "Maxis"),
    ("SA", 420, 1, "STC"),
    ("AR", 722, 310, "Claro"),
    ("PE", 716, 10, "Claro"),
    ("US", 310, 260, "T-Mobile"),
];

fn config(listen: SocketAddr, base_url: &str, dir: &Path, journal_on: bool) -> Config {
    let yaml = format!(
        "listen: \"{listen}\"\nstate_dir: {state}\napi:\n  base_url: {base_url}\n  api_key: {API_KEY}\n  api_secret: {API_SECRET}\n  timeout: 5s\n  max_in_flight: 64\n  max_requests_per_second: 1000000\ndefault_app: bench\napps:\n  - id: bench\nspool:\n  dir: {spool}\n  rescan_interval: 1s\ntracking:\n  max_age: 30m\npolling:\n  first_delay: 100ms\n  max_interval: 200ms\njournal:\n  enabled: {journal_on}\n  max_bytes: 1TiB\n",
        state = dir.join("state").display(),
        spool = dir.join("spool").display(),
    );
    Config::from_yaml(&yaml, Path::new("<journal bench>"), &|_| None).expect("bench config")
}

/// The value of a sample (first line starting with `name`) in a text exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------
// 1. The poll path.

/// Starts the scripted record server on its own thread and runtime.
fn record_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            scripted::serve(listener).await;
        });
    });
    addr
}

/// Polls per second of the daemon over a steady window, with the journal on or off.
async fn polls_per_second(server: SocketAddr, orders: u64, journal_on: bool) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(dir.path().join("spool")).expect("spool");
    let ids: String = (0..orders)
        .map(|i| format!("bench-{journal_on}-{i}\n"))
        .collect();
    std::fs::write(dir.path().join("spool/orders.txt"), ids).expect("spool file");
    let listen = free_addr();
    let base_url = format!("http://{server}");
    let config = config(listen, &base_url, dir.path(), journal_on);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = ServeOptions {
        telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
        web: WebConfig::plain(),
    };
    let daemon = tokio::spawn(daemon::run(config, options, OnDamage::Refuse, stop_rx));
    let metrics = format!("http://{listen}/metrics");
    let requests = || async {
        let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        Some(sample(&text, "otp_exporter_api_requests_total"))
    };
    // Warm up: intake done and polls flowing.
    let mut warm = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(n) = requests().await.filter(|n| *n > 2.0 * orders as f64 / 10.0) {
            warm = Some(n);
            break;
        }
    }
    let before = warm.expect("the daemon polls");
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = requests().await.expect("metrics");
    let rate = (after - before) / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = daemon.await;
    rate
}

async fn poll_path() {
    let orders = env_number("JOURNAL_BENCH_POLL_ORDERS", 60_000);
    let server = record_server();
    let mut off = Vec::new();
    let mut on = Vec::new();
    // Alternating runs, compared by their medians: the machine is shared and noisy.
    for _ in 0..3 {
        off.push(polls_per_second(server, orders, false).await);
        on.push(polls_per_second(server, orders, true).await);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "poll path, journal off: median {:.0} polls/s (runs: {:.0?})",
        median(&off),
        off
    );
    println!(
        "poll path, journal on:  median {:.0} polls/s (runs: {:.0?})",
        median(&on),
        on
    );
    println!(
        "poll path: journal on / off = {:.2} (target >= 0.80)",
        median(&on) / median(&off)
    );
}

// ---------------------------------------------------------------------------------
// 2. The drill-down with millions of journaled orders.

/// The finalized order `i` of `total`, issued evenly over the 7 days before `now_ms`.
fn order(i: u64, total: u64, now_ms: i64) -> (String, Update) {
    let week_ms = 7 * 24 * 3600 * 1000_i64;
    // Newest a minute ago, so that the daemon's first eviction keeps them all.
    let issued_ms = now_ms - 60_000 - week_ms
        + 1
        + (i as i128 * (week_ms - 120_000) as i128 / total as i128) as i64;
    let (country, mcc, mnc, operator) = COUNTRIES[(i % COUNTRIES.len() as u64) as usize];
    let delivered = !i.is_multiple_of(10);
    let outcome = match i % 10 {
        0 => Outcome::Undelivered,
        1 | 2 => Outcome::Unverified,
        _ => Outcome::Verified,
    };
    let submit = issued_ms + 1_000;
    let attempt = AttemptDetail {
        channel: Channel::Sms,
        seq: 0,
        mcc: Some(mcc),
        mnc: Some(mnc),
        operator: Some(operator.to_string()),
        result: if delivered {
            AttemptResult::Delivered
        } else {
            AttemptResult::Failed
        },
        provider_status: Some(if delivered { 0 } else { 1 }),
        provider_reason: Some(if delivered { "DELIVRD" } else { "UNDELIV" }.to_string()),
        submit_ms: Some(submit),
        done_ms: Some(submit + 3_000),
        answer_ms: None,
        latency_ms: delivered.then_some(3_000),
        cost_usd: 0.012,
        segments: 1,
    };
    let snapshot = Snapshot {
        country: Some(country.to_string()),
        channel: Some("sms".to_string()),
        mcc: Some(mcc),
        mnc: Some(mnc),
        operator: Some(operator.to_string()),
        receiver: Some("+91 ••••••••42".to_string()),
        attempts: vec![attempt],
        fallbacks: Vec::new(),
        verified_ms: (outcome == Outcome::Verified).then_some(submit + 20_000),
        verification_latency_ms: (outcome == Outcome::Verified).then_some(20_000),
        matched: Some(if outcome == Outcome::Verified { 0 } else { -1 }),
    };
    let at = issued_ms + 30_000;
    let update = Update {
        app_id: "bench".to_string(),
        issued_ms,
        quiet_queries: 3,
        quiet_errors: 0,
        failure: None,
        answer: Some((issued_ms + 5_000, Answer::Record)),
        snapshot: Some(snapshot),
        decided: Some((at, outcome, format!("rule of {}", outcome.as_str()))),
        finalized: Some((at, outcome, "every attempt has a final result".to_string())),
        queries: 5,
    };
    (format!("ORD-{i:010}"), update)
}

fn build_state(dir: &Path, total: u64, now_ms: i64) -> (u64, u64) {
    let store = Store::open(&dir.join("state")).expect("state");
    let started = Instant::now();
    const BATCH: u64 = 20_000;
    let mut next = 0;
    while next < total {
        let end = (next + BATCH).min(total);
        let orders: Vec<(String, Update)> = (next..end).map(|i| order(i, total, now_ms)).collect();
        let refs: Vec<(&str, &Update)> = orders.iter().map(|(id, u)| (id.as_str(), u)).collect();
        store.apply(&[], &[], &refs, now_ms).expect("journal write");
        next = end;
        if next.is_multiple_of(1_000_000) {
            eprintln!("  {next} orders journaled in {:.0?}", started.elapsed());
        }
    }
    let elapsed = started.elapsed();
    let (bytes, entries) = store.journal_size().expect("journal size");
    println!(
        "drill-down: wrote {entries} journal entries in {elapsed:.1?} ({:.0} orders/s through Store::apply)",
        entries as f64 / elapsed.as_secs_f64()
    );
    (bytes, entries)
}

/// Median and slowest of `reps` GETs of `url` (each must answer 200).
async fn time_get(client: &reqwest::Client, url: &str, reps: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(reps);
    let mut size = 0;
    for _ in 0..reps {
        let started = Instant::now();
        let response = client.get(url).send().await.expect("GET");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        times.push(started.elapsed());
        assert!(
            status.is_success(),
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        size = body.len();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], size)
}

async fn drill_down() {
    let total = env_number("JOURNAL_BENCH_ORDERS", 10_000_000);
    let base = std::env::var_os("JOURNAL_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    std::fs::create_dir_all(dir.path().join("spool")).expect("spool");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (bytes, entries) = tokio::task::block_in_place(|| build_state(dir.path(), total, now_ms));
    let file = std::fs::metadata(dir.path().join("state/state.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "drill-down: {:.0} journal bytes per order (encoded entry + index row), {:.0} bytes per order in the state file ({:.2} GB)",
        bytes as f64 / entries as f64,
        file as f64 / entries as f64,
        file as f64 / 1e9
    );
    let listen = free_addr();
    // No order is pending: the record endpoint is never asked.
    let config = config(listen, "http://127.0.0.1:9", dir.path(), true);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = ServeOptions {
        telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
        web: WebConfig::plain(),
    };
    let started = Instant::now();
    let daemon = tokio::spawn(daemon::run(config, options, OnDamage::Refuse, stop_rx));
    let client = reqwest::Client::new();
    let ready = format!("http://{listen}/readyz");
    loop {
        if client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "drill-down: daemon ready on {entries} journaled orders in {:.1?}",
        started.elapsed()
    );
    let api = format!("http://{listen}/api/v1");
    let some_id = |k: u64| format!("ORD-{:010}", (k * 7_919_993) % total);
    for (what, url, reps, target_ms) in [
        (
            "orders?country=IN&since=10m",
            format!("{api}/orders?country=IN&since=10m"),
            30,
            100,
        ),
        (
            "orders?country=IN&since=10m&limit=1000",
            format!("{api}/orders?country=IN&since=10m&limit=1000"),
            30,
            100,
        ),
        (
            "orders?country=FR&since=10m (no match: the whole window walked)",
            format!("{api}/orders?country=FR&since=10m"),
            30,
            100,
        ),
        (
            "breakdown?by=country&since=15m",
            format!("{api}/breakdown?by=country&since=15m"),
            10,
            100,
        ),
    ] {
        let (median, slowest, size) = time_get(&client, &url, reps).await;
        println!(
            "drill-down: {what}: median {:.1} ms, slowest {:.1} ms of {reps} ({size} bytes); median / target {target_ms} ms = {:.3}",
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3 / target_ms as f64
        );
    }
    let mut times = Vec::new();
    for k in 0..200 {
        let url = format!("{api}/orders/{}", some_id(k));
        times.push(time_get(&client, &url, 1).await.0);
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64() * 1e3;
    println!(
        "drill-down: orders/{{id}} (200 random ids): median {median:.2} ms, slowest {:.2} ms; median / target 10 ms = {:.3}",
        times[times.len() - 1].as_secs_f64() * 1e3,
        median / 10.0
    );
    let _ = stop.send(true);
    let _ = daemon.await;
}

fn main() {
    let skip = std::env::var("JOURNAL_BENCH_SKIP").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if skip != "poll" {
            poll_path().await;
        }
        if skip != "drill" {
            drill_down().await;
        }
    });
}
