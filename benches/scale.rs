//! Scale benchmark: memory of a million pending orders, and the daemon's own work per
//! poll next to a real HTTP round trip to the simulator over loopback.
//!
//! `cargo bench --bench scale` prints figures and ratios measured in one run; these
//! machines are shared and noisy, so read ratios, not absolute times. Targets (from the
//! design): 1,000,000 pending orders in well under 1 GiB; per-poll overhead small next
//! to the HTTP round trip (ratio well below 1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use itnio_otp_exporter::api::wire::decode_reply;
use itnio_otp_exporter::api::ApiClient;
use itnio_otp_exporter::config::Config;
use itnio_otp_exporter::metrics::Metrics;
use itnio_otp_exporter::outcome::{self, Sighting, Tracking};
use itnio_otp_exporter::scheduler::{app_limits, Scheduler};
use itnio_otp_exporter::spool::SpoolOrder;
use itnio_otp_exporter::status::Status;
use itnio_otp_exporter::store::Store;

const ORDERS: usize = 1_000_000;

const RECORD: &str = r#"{"status":"0","reason":"success","data":{"orderId":"1234566","flowId":1,
"verifications":{"matched":-1,"verifiedDate":null,"oriReceiver":"91856321412","channel":"call","orderId":"1234566"},
"sms":[{"submitTm":"2022-07-12T13:39:45+08:00","sendTm":"2022-07-12T13:39:45+08:00","doneTm":"2022-07-12T13:39:49+08:00",
"mcc":404,"mnc":10,"sender":"","chargeCnt":1,"pay":"0.000002","status":1,"reason":"failed"}],
"call":[{"terminationCode":null,"terminationReason":null,"submitTime":"2022-07-12T13:59:55+08:00","callTime":null,
"ringingTime":null,"answerTime":null,"hangupTime":null,"callDuration":0,"chargedDuration":0,"displayNum":null,
"billPeriodstring":"20+20","code":"661","rate":"0.138","cost":"0"}]}}"#;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn config(base_url: &str, dir: &std::path::Path) -> Config {
    let yaml = format!(
        "state_dir: {}\napi:\n  base_url: {base_url}\n  api_key: bench-key\n  api_secret: bench-secret\napps:\n  - id: bench\n",
        dir.display()
    );
    Config::from_yaml(&yaml, std::path::Path::new("bench"), &|_| None).expect("bench config")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    // 1. Memory of a million pending orders in the scheduler.
    let cfg = config("http://127.0.0.1:1/otp", dir.path());
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let metrics = Arc::new(Metrics::new(&cfg.app_ids()));
    let before = rss_bytes();
    let mut scheduler = Scheduler::new(&cfg, store, metrics, Arc::new(Status::new()));
    let started = Instant::now();
    let now_ms = 1_800_000_000_000i64;
    for chunk in 0..ORDERS / 10_000 {
        let batch: Vec<SpoolOrder> = (0..10_000)
            .map(|i| SpoolOrder {
                order_id: format!("ORD-2026-11-28-{:010}", chunk * 10_000 + i),
                app_id: "bench".into(),
                issued_ms: now_ms + i as i64,
            })
            .collect();
        scheduler.add_from_spool(batch);
    }
    let load_time = started.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "memory: {} pending orders: +{:.0} MiB RSS ({:.0} bytes/order); tracked in {:.2?}",
        scheduler.pending(),
        grown as f64 / (1 << 20) as f64,
        grown as f64 / ORDERS as f64,
        load_time
    );
    println!(
        "memory: ratio to the 1 GiB budget: {:.3}",
        grown as f64 / (1u64 << 30) as f64
    );
    drop(scheduler);

    // 2. The daemon's own work per poll: decode, reduce, apply the rules.
    let reading = outcome::Reading::new(&cfg);
    // The daemon's own limits for the bench app (the configuration's defaults).
    let limits = app_limits(&cfg, "bench");
    let iterations = 100_000;
    let started = Instant::now();
    let mut finalized = 0usize;
    for i in 0..iterations {
        let reply = decode_reply(RECORD.as_bytes()).expect("decode");
        let record = reply.data.expect("data");
        // The record's own day (2022-07-12 13:00 +08:00, an hour later), so that its
        // times are believed and checked like a live order's.
        let order = outcome::ReadFor {
            issued_ms: 1_657_602_000_000,
            now_ms: 1_657_605_600_000,
        };
        let obs = outcome::observe(&record, &reading, order);
        let mut tracking = Tracking::new(0);
        if let outcome::Step::Finalize(o) =
            tracking.apply(Sighting::Record(obs), 300_000 + i, &limits)
        {
            finalized += outcome::samples(o, tracking.last.as_deref()).attempts.len();
        }
    }
    let per_poll = started.elapsed() / iterations as u32;
    std::hint::black_box(finalized);

    // 3. A real round trip: the simulator on loopback, queried by the real client.
    let round_trip = runtime.block_on(async {
        let args = itnio_sim::SimulateArgs {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "bench-key".into(),
            api_secret: "bench-secret".into(),
            ..itnio_sim::SimulateArgs::default()
        };
        let sim = itnio_sim::start(args).await.expect("simulator");
        let cfg = config(&sim.base_url(), dir.path());
        let client = ApiClient::new(&cfg.api).expect("client");
        // Warm the connection, then time sequential queries.
        let _ = client.query("bench", "warm-up").await;
        let n = 500;
        let started = Instant::now();
        for i in 0..n {
            let q = client.query("bench", &format!("o-{i}")).await;
            std::hint::black_box(q);
        }
        let rtt = started.elapsed() / n;
        sim.shutdown().await;
        rtt
    });
    println!("per poll: daemon work {per_poll:.2?}, loopback HTTP round trip {round_trip:.2?}");
    println!(
        "per poll: ratio work / round trip = {:.3} (the real API is across the internet: its round trip is 100x a loopback one)",
        per_poll.as_secs_f64() / round_trip.max(Duration::from_nanos(1)).as_secs_f64()
    );
}
