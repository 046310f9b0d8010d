//! The simulator over real HTTP: sends, records, faults, truth and the command line's
//! options. (A file of its own so that `lib.rs` shows the crate's shape.)

use super::*;
use clap::Parser;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Validity 30 s at scale 0.05: every order is decided 1.6 s after its send.
fn test_args() -> SimulateArgs {
    SimulateArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        time_scale: 0.05,
        validity: Duration::from_secs(30),
        no_quirks: true,
        ..SimulateArgs::default()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Reply {
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.expect("body"),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// A signed provider request.
async fn call(url: &str, body: &str, key: &str, secret: &str, ts: i64) -> Reply {
    let ts = ts.to_string();
    let resp = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Api-Key", key)
        .header("Timestamp", &ts)
        .header("Sign", auth::sign(key, secret, &ts))
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    Reply::read(resp).await
}

async fn send(sim: &SimHandle, body: Value) -> Value {
    let url = format!("{}/verification/send", sim.base_url());
    call(
        &url,
        &body.to_string(),
        "demo-key",
        "demo-secret",
        now_secs(),
    )
    .await
    .json()
}

async fn record(sim: &SimHandle, order_id: &str) -> Reply {
    let url = format!("{}/verification/orderId/record", sim.base_url());
    let body = json!({ "appId": "app", "orderId": order_id }).to_string();
    call(&url, &body, "demo-key", "demo-secret", now_secs()).await
}

async fn plain(method: reqwest::Method, url: &str, body: &str) -> Reply {
    let resp = reqwest::Client::new()
        .request(method, url)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    Reply::read(resp).await
}

fn root(sim: &SimHandle) -> String {
    format!("http://{}", sim.local_addr())
}

#[tokio::test]
async fn sends_and_reads_a_record_over_http() {
    let sim = start(test_args()).await.expect("start");
    assert!(sim.base_url().ends_with("/otp"));
    let home = plain(reqwest::Method::GET, &format!("{}/", root(&sim)), "").await;
    assert!(home.status == 200 && home.text.contains("simulator"));

    let sent = send(
        &sim,
        json!({"appId": "app", "to": "+919856321412", "orderId": "it-1"}),
    )
    .await;
    assert_eq!(sent["status"], "0", "{sent}");
    assert_eq!(
        sent["data"]["verificationId"].as_str().map(str::len),
        Some(16)
    );
    let again = send(
        &sim,
        json!({"appId": "app", "to": "+919856321412", "orderId": "it-1"}),
    )
    .await;
    assert_eq!(again["status"], "-22");
    let france = send(&sim, json!({"to": "+33612345678", "orderId": "it-2"})).await;
    assert!(
        france["status"] == "-22"
            && france["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not simulated"))
    );

    let first = record(&sim, "it-1").await;
    assert_eq!(first.status, 200);
    let date = first
        .headers
        .get("date")
        .and_then(|d| d.to_str().ok())
        .expect("Date");
    let date = chrono::DateTime::parse_from_rfc2822(date).expect("IMF-fixdate");
    assert!((date.timestamp() - now_secs()).abs() <= 2);
    let reply = first.json();
    assert_eq!(reply["status"], "0");
    assert_eq!(reply["data"]["orderId"], "it-1");
    assert_eq!(
        reply["data"]["verifications"]["oriReceiver"],
        "919856321412"
    );

    let unknown = record(&sim, "never-sent").await.json();
    assert_eq!(unknown["status"], "0");
    assert!(unknown["data"].is_null());

    // Refusals: the provider's statuses with HTTP 200.
    let url = format!("{}/verification/orderId/record", sim.base_url());
    let body = r#"{"orderId":"it-1"}"#;
    let wrong_secret = call(&url, body, "demo-key", "nope", now_secs()).await;
    assert_eq!(
        (wrong_secret.status, wrong_secret.json()["status"].clone()),
        (200, json!("-1"))
    );
    assert_eq!(
        call(&url, body, "other", "demo-secret", now_secs())
            .await
            .json()["status"],
        "-1"
    );
    assert_eq!(
        call(&url, body, "demo-key", "demo-secret", now_secs() - 600)
            .await
            .json()["status"],
        "-16"
    );
    assert_eq!(
        call(&url, "{", "demo-key", "demo-secret", now_secs())
            .await
            .json()["status"],
        "-22"
    );
    assert_eq!(
        call(&url, "{}", "demo-key", "demo-secret", now_secs())
            .await
            .json()["status"],
        "-22"
    );
    let unsigned = plain(reqwest::Method::POST, &url, body).await;
    assert_eq!(unsigned.json()["status"], "-1");

    // Once decided, the record says what the truth says.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let data = record(&sim, "it-1").await.json()["data"].clone();
    let view = testutil::seen(&data);
    let truth_reply = plain(
        reqwest::Method::GET,
        &format!("{}/sim/truth", root(&sim)),
        "",
    )
    .await;
    let truth = truth_reply.json();
    let orders = truth["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "{truth}");
    let order = &orders[0];
    assert_eq!(order["orderId"], "it-1");
    assert_eq!(order["appId"], "app");
    assert_eq!(order["country"], "IN");
    assert_eq!(order["outcome"], view.outcome(), "{data}\n{order}");
    let results: Vec<&str> = view.attempts.iter().map(|a| a.result).collect();
    let expected: Vec<&str> = order["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["result"].as_str())
        .collect();
    assert_eq!(results, expected);
    assert_eq!(sim.truth().orders.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_change_answers_not_records() {
    let sim = start(test_args()).await.expect("start");
    let faults_url = format!("{}/sim/faults", root(&sim));
    send(
        &sim,
        json!({"to": "+5511987654321", "orderId": "f-1", "channel": "sna"}),
    )
    .await;

    sim.set_faults(Faults::parse(r#"status_rates: {"-18": 1}"#).expect("valid"));
    assert_eq!(record(&sim, "f-1").await.json()["status"], "-18");

    let put = plain(reqwest::Method::PUT, &faults_url, "http_error_rate: 1").await;
    assert_eq!(put.status, 200, "{}", put.text);
    let shown = plain(reqwest::Method::GET, &faults_url, "").await.json();
    assert_eq!(shown["http_error_rate"], 1.0);
    let failed = record(&sim, "f-1").await;
    assert!(
        [500, 502, 503].contains(&failed.status),
        "{}",
        failed.status
    );

    plain(reqwest::Method::PUT, &faults_url, "rate_limited_rate: 1").await;
    let limited = record(&sim, "f-1").await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(limited.headers.contains_key("date"));

    plain(
        reqwest::Method::PUT,
        &faults_url,
        r#"{"invalid_body_rate": 1}"#,
    )
    .await;
    let truncated = record(&sim, "f-1").await;
    assert_eq!(truncated.status, 200);
    assert!(serde_json::from_str::<Value>(&truncated.text).is_err());
    assert!(truncated.text.starts_with('{'));

    plain(reqwest::Method::PUT, &faults_url, "auth_outage: true").await;
    assert_eq!(record(&sim, "f-1").await.json()["status"], "-1");
    plain(reqwest::Method::PUT, &faults_url, "ip_restricted: true").await;
    assert_eq!(record(&sim, "f-1").await.json()["status"], "-2");

    let bad = plain(reqwest::Method::PUT, &faults_url, "slow_rat: 1").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("slow_rat"), "{}", bad.text);
    assert_eq!(
        plain(reqwest::Method::GET, &faults_url, "").await.json()["ip_restricted"],
        true
    );

    plain(
        reqwest::Method::PUT,
        &faults_url,
        "slow_rate: 1\nslow: 300ms",
    )
    .await;
    let started = Instant::now();
    let slow = record(&sim, "f-1").await.json();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow["status"], "0");

    plain(reqwest::Method::PUT, &faults_url, "").await;
    let ok = record(&sim, "f-1").await.json();
    assert_eq!(ok["status"], "0");
    assert_eq!(ok["data"]["flowId"], 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn clock_offset_shifts_the_date_and_expires_timestamps() {
    let args = SimulateArgs {
        clock_offset: "+10m".into(),
        ..test_args()
    };
    let sim = start(args).await.expect("start");
    let reply = record(&sim, "x").await;
    assert_eq!(reply.json()["status"], "-16");
    let date = reply
        .headers
        .get("date")
        .and_then(|d| d.to_str().ok())
        .expect("Date");
    let shifted = chrono::DateTime::parse_from_rfc2822(date)
        .expect("date")
        .timestamp();
    assert!((shifted - now_secs() - 600).abs() <= 2, "{date}");
    let url = format!("{}/verification/orderId/record", sim.base_url());
    let in_sim_time = call(
        &url,
        r#"{"orderId":"x"}"#,
        "demo-key",
        "demo-secret",
        now_secs() + 600,
    )
    .await;
    assert_eq!(in_sim_time.json()["status"], "0");
    sim.shutdown().await;
}

/// Traffic to `sim` at 500 orders/s, without apps or unknown ids, forever: tests
/// set what they count.
fn fast_traffic(sim: &SimHandle, spool_dir: PathBuf) -> TrafficOptions {
    TrafficOptions {
        base_url: sim.base_url(),
        api_key: "demo-key".into(),
        api_secret: "demo-secret".into(),
        spool_dir,
        app_ids: Vec::new(),
        orders_per_second: 500.0,
        seed: 1,
        max_orders: None,
        unknown_ratio: 0.0,
    }
}

#[tokio::test]
async fn traffic_generator_fills_the_spool_and_the_truth() {
    let sim = start(test_args()).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = TrafficOptions {
        app_ids: vec!["a".into(), "b".into()],
        seed: 3,
        max_orders: Some(60),
        unknown_ratio: 0.25,
        ..fast_traffic(&sim, dir.path().join("spool"))
    };
    run_traffic(opts).await.expect("traffic");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("spool")).expect("spool") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        assert!(
            name.starts_with("traffic-") && name.ends_with(".jsonl"),
            "{name}"
        );
        let text = std::fs::read_to_string(&path).expect("read");
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json line")),
        );
    }
    assert_eq!(lines.len(), 60);
    for line in &lines {
        assert!(line["orderId"].is_string() && line["issuedAt"].is_string());
        assert!(line["appId"] == "a" || line["appId"] == "b");
    }
    let truth = sim.truth();
    assert_eq!(truth.orders.len(), 60);
    let not_found = truth
        .orders
        .iter()
        .filter(|o| o.outcome == "not_found")
        .count();
    assert!((5..=25).contains(&not_found), "{not_found}");
    for o in truth.orders.iter().filter(|o| o.outcome == "not_found") {
        assert!(o.attempts.is_empty());
        assert_eq!(record(&sim, &o.order_id).await.json()["data"], Value::Null);
    }
    sim.shutdown().await;
}

/// The traffic generator's draws for a fixed seed (unknown or sent, app, destination
/// country, requested channel), read back from the simulator's truth: refactoring the
/// generator must not move a draw. Change the pinned digest only with a change that is
/// meant to alter the draws.
#[tokio::test]
async fn traffic_generator_draws_what_it_always_drew() {
    use md5::{Digest, Md5};

    let sim = start(test_args()).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = TrafficOptions {
        app_ids: vec!["a".into(), "b".into(), "c".into()],
        seed: 9,
        max_orders: Some(40),
        unknown_ratio: 0.2,
        ..fast_traffic(&sim, dir.path().join("spool"))
    };
    run_traffic(opts).await.expect("traffic");
    // Order ids end in the generator's round number; the run part is the wall clock.
    let mut draws: Vec<(String, String)> = sim
        .truth()
        .orders
        .iter()
        .map(|o| {
            let round = o.order_id.rsplit('-').next().unwrap_or("").to_string();
            // The first attempt is on the requested channel (SMS when none was asked).
            let start = o.attempts.first().map_or("-", |a| &*a.channel);
            let draw = format!(
                "{}:{}:{}:{}",
                o.app_id,
                o.outcome == "not_found",
                o.country,
                start
            );
            (round, draw)
        })
        .collect();
    draws.sort();
    let summary: Vec<String> = draws.into_iter().map(|(_, draw)| draw).collect();
    let summary = summary.join(" ");
    let digest: String = Md5::digest(summary.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, "613dbb79f5bf78732d9a36ddaa9c4ce7", "{summary}");
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_options_are_named() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = start(SimulateArgs {
        listen: addr,
        ..test_args()
    })
    .await
    .err()
    .expect("in use");
    assert!(matches!(err, SimError::Bind { .. }) && err.to_string().contains(&addr.to_string()));

    let missing = PathBuf::from("/nonexistent/scenario.yaml");
    let err = start(SimulateArgs {
        scenario: Some(missing),
        ..test_args()
    })
    .await
    .err()
    .expect("missing");
    assert!(
        err.to_string().contains("/nonexistent/scenario.yaml"),
        "{err}"
    );

    for (args, option) in [
        (
            SimulateArgs {
                clock_offset: "soon".into(),
                ..test_args()
            },
            "--clock-offset",
        ),
        (
            SimulateArgs {
                validity: Duration::from_secs(5),
                ..test_args()
            },
            "--validity",
        ),
        (
            SimulateArgs {
                time_scale: 0.0,
                ..test_args()
            },
            "--time-scale",
        ),
        (
            SimulateArgs {
                error_rate_18: Some(2.0),
                ..test_args()
            },
            "fault flags",
        ),
    ] {
        let err = start(args).await.err().expect("invalid");
        assert!(err.to_string().contains(option), "{err}");
    }
}

#[test]
fn command_line_flags_build_the_scenario() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }
    let cli = Cli::try_parse_from([
        "simulate",
        "--clock-offset",
        "-10m",
        "--error-rate-18",
        "0.1",
        "--http-error-rate",
        "0.02",
        "--slow-rate",
        "0.5",
        "--slow",
        "3s",
        "--auth-outage",
        "--no-quirks",
        "--api-secret",
        "hush",
    ])
    .expect("parses");
    let args = cli.args;
    assert_eq!(
        parse_clock_offset(&args.clock_offset).expect("offset"),
        -600_000
    );
    let f = faults_from_args(&args).expect("faults");
    assert_eq!(
        f.status_rates
            .get(&InjectedStatus::new(-18).expect("known")),
        Some(&0.1)
    );
    assert_eq!(f.http_error_rate, 0.02);
    assert_eq!((f.slow_rate, f.slow), (0.5, Duration::from_secs(3)));
    assert!(f.auth_outage && !f.ip_restricted);
    assert!(args.no_quirks);
    assert!(!format!("{args:?}").contains("hush"));
    assert_eq!(parse_clock_offset("+10m").expect("offset"), 600_000);
    assert_eq!(parse_clock_offset("0s").expect("offset"), 0);
    assert_eq!(parse_clock_offset("90s").expect("offset"), 90_000);
}

/// Outages from the options join the scenario file's, and each starts at the
/// simulator's start plus `from` times the scale.
#[tokio::test]
async fn extra_outages_join_the_scenario_and_report_their_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("s.yml");
    std::fs::write(&scenario, "outages: [{country: BR, channel: call}]\n").expect("write");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let sim = start(SimulateArgs {
        scenario: Some(scenario),
        extra_outages: vec![Outage {
            country: "IN".into(),
            channel: Channel::Sms,
            kind: OutageKind::Silent,
            from: Duration::from_secs(600),
            until: None,
        }],
        ..test_args()
    })
    .await
    .expect("start");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let starts = sim.outage_starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        (starts[0].0.country.as_str(), starts[0].0.kind),
        ("BR", OutageKind::Fail)
    );
    assert!((before..=after).contains(&starts[0].1));
    // 600 s of simulated time at scale 0.05: 30 s after the start.
    assert_eq!(starts[1].0.kind, OutageKind::Silent);
    assert!((before + 30_000..=after + 30_000).contains(&starts[1].1));
    sim.shutdown().await;
}

/// The oracle counts every id the simulator knows, sent or not.
#[tokio::test]
async fn the_oracle_counts_every_order() {
    let sim = start(test_args()).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = TrafficOptions {
        max_orders: Some(40),
        unknown_ratio: 0.25,
        ..fast_traffic(&sim, dir.path().join("spool"))
    };
    run_traffic(opts).await.expect("traffic");
    let rules = OracleRules {
        verification_window: Duration::from_millis(1_500),
        settle_timeout: Duration::from_millis(600),
        not_found_grace: Duration::from_millis(600),
        max_age: Duration::from_secs(9),
        tolerance: Duration::from_millis(250),
    };
    let truth = sim.truth();
    let oracle = sim.oracle_queries(&rules);
    assert_eq!(oracle.len(), truth.orders.len());
    for (o, t) in oracle.iter().zip(&truth.orders) {
        assert_eq!(
            (o.order_id.as_str(), o.outcome),
            (t.order_id.as_str(), &*t.outcome)
        );
        match o.outcome {
            "not_found" => assert_eq!(o.queries, 2),
            _ => assert!((1..=12).contains(&o.queries), "{o:?}"),
        }
    }
    sim.shutdown().await;
}

/// A signed `GET /sms/getBalance`, as the provider's page describes it (no body).
async fn balance_call(sim: &SimHandle, key: &str, secret: &str, ts: i64) -> Reply {
    let ts = ts.to_string();
    let resp = reqwest::Client::new()
        .get(format!("{}/sms/getBalance", root(sim)))
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Api-Key", key)
        .header("Timestamp", &ts)
        .header("Sign", auth::sign(key, secret, &ts))
        .send()
        .await
        .expect("request");
    Reply::read(resp).await
}

async fn balance(sim: &SimHandle) -> Value {
    balance_call(sim, "demo-key", "demo-secret", now_secs())
        .await
        .json()
}

fn usd(text: &str) -> Usd {
    text.parse().expect("amount")
}

#[tokio::test]
async fn the_balance_endpoint_checks_the_signature_and_answers_decimal_strings() {
    let sim = start(SimulateArgs {
        balance_usd: usd("12.34"),
        gift_usd: usd("0.5"),
        ..test_args()
    })
    .await
    .expect("start");
    let reply = balance_call(&sim, "demo-key", "demo-secret", now_secs()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains_key("date"));
    assert_eq!(
        reply.json(),
        json!({"status": "0", "reason": "success", "balance": "12.3400", "gift": "0.5000", "credit": "0.0000"})
    );
    assert!(
        reply
            .text
            .starts_with(r#"{"status":"0","reason":"success","balance":"#),
        "the provider's field order: {}",
        reply.text
    );

    // Refused like every other signed call, the secret never echoed.
    let wrong = balance_call(&sim, "demo-key", "not-the-secret", now_secs()).await;
    assert_eq!((wrong.status, &wrong.json()["status"]), (200, &json!("-1")));
    assert!(!wrong.text.contains("demo-secret") && !wrong.text.contains("not-the-secret"));
    let key = balance_call(&sim, "other", "demo-secret", now_secs()).await;
    assert_eq!(key.json()["status"], "-1");
    let stale = balance_call(&sim, "demo-key", "demo-secret", now_secs() - 600).await;
    assert_eq!(stale.json()["status"], "-16");
    let url = format!("{}/sms/getBalance", root(&sim));
    let unsigned = plain(reqwest::Method::GET, &url, "").await;
    assert_eq!(unsigned.json()["status"], "-1");
    assert!(
        unsigned.json()["balance"].is_null(),
        "no amounts without a signature"
    );
    // At the host's root only, and GET only.
    assert_eq!(plain(reqwest::Method::POST, &url, "").await.status, 405);
    let under_otp = format!("{}/sms/getBalance", sim.base_url());
    assert_eq!(
        plain(reqwest::Method::GET, &under_otp, "").await.status,
        404
    );
    sim.shutdown().await;
}

/// Sends spend the account by the orders' prices; once it cannot pay, sends are
/// refused with -10, the order has no record, and the truth expects `not_found`.
#[tokio::test]
async fn sends_spend_the_account_and_an_unpaid_send_gets_no_record() {
    let sim = start(SimulateArgs {
        balance_usd: usd("0.05"),
        gift_usd: usd("0.01"),
        ..test_args()
    })
    .await
    .expect("start");
    let account_url = format!("{}/sim/account", root(&sim));
    let fresh = plain(reqwest::Method::GET, &account_url, "").await.json();
    assert_eq!(
        fresh,
        json!({"balance": "0.0500", "gift": "0.0100", "credit": "0.0000", "spent": "0.0000",
               "chargedSends": 0, "refusedSends": 0, "firstRefusalUnixMs": null})
    );

    // India's SMS price is 0.01 a segment: a few sends go out, then the account is dry.
    let mut refused = Vec::new();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for i in 0..30 {
        let order_id = format!("b-{i}");
        let reply = send(
            &sim,
            json!({"appId": "shop", "to": format!("+9198563{i:05}"), "orderId": order_id}),
        )
        .await;
        match reply["status"].as_str() {
            Some("0") => assert!(refused.is_empty(), "a send after a refusal went out"),
            Some("-10") => {
                assert_eq!(reply, json!({"status": "-10", "reason": "balance too low"}));
                refused.push(order_id);
            }
            other => panic!("unexpected {other:?}: {reply}"),
        }
    }
    assert!(!refused.is_empty() && refused.len() < 30, "{refused:?}");
    let account = sim.account();
    let truth = sim.truth();
    assert_eq!(truth.orders.len(), 30);
    let paid: f64 = truth.orders.iter().map(|o| o.cost_usd).sum();
    assert!(
        (account.spent.as_f64() - paid).abs() < 1e-9,
        "spent {} = the truth's costs {paid}",
        account.spent
    );
    assert_eq!(
        account.spent.units() + account.balance.units() + account.gift.units(),
        600,
        "spending only moves money out of the pots"
    );
    assert_eq!(account.balance, Usd::ZERO, "balance is spent before gift");
    assert_eq!(
        (account.charged_sends, account.refused_sends),
        (30 - refused.len() as u64, refused.len() as u64)
    );
    let first = account.first_refusal_unix_ms.expect("refusal time");
    assert!(first >= before_ms && first <= before_ms + 30_000, "{first}");
    assert_eq!(
        balance(&sim).await["balance"],
        "0.0000",
        "the balance endpoint shows the same pots"
    );

    for id in &refused {
        let t = truth
            .orders
            .iter()
            .find(|o| &o.order_id == id)
            .expect("refused id in the truth");
        assert_eq!((&*t.outcome, t.app_id.as_str()), ("not_found", "shop"));
        assert!(t.attempts.is_empty() && t.cost_usd == 0.0);
        assert_eq!(record(&sim, id).await.json()["data"], Value::Null);
    }

    // A top-up lets the same id go out; a duplicate is refused before billing.
    let put = plain(reqwest::Method::PUT, &account_url, r#"{"balance": "1"}"#).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["balance"], "1.0000");
    let retried = send(
        &sim,
        json!({"appId": "shop", "to": "+919856300000", "orderId": refused[0]}),
    )
    .await;
    assert_eq!(retried["status"], "0", "{retried}");
    let t = sim.truth();
    let again = t
        .orders
        .iter()
        .find(|o| o.order_id == refused[0])
        .expect("in the truth");
    assert_ne!(again.outcome, "not_found");
    let spent = sim.account().spent;
    let dup = send(&sim, json!({"to": "+919856300000", "orderId": "b-0"})).await;
    assert_eq!(dup["status"], "-22");
    assert_eq!(sim.account().spent, spent);

    let kept = sim.account();
    let bad = plain(reqwest::Method::PUT, &account_url, r#"{"balance": "-3"}"#).await;
    assert!(
        bad.status == 400 && bad.text.contains("negative"),
        "{}",
        bad.text
    );
    let bad = plain(reqwest::Method::PUT, &account_url, "balanse: 3").await;
    assert!(
        bad.status == 400 && bad.text.contains("unknown field"),
        "{}",
        bad.text
    );
    for nothing in ["", "{}", "balance: null"] {
        let bad = plain(reqwest::Method::PUT, &account_url, nothing).await;
        assert!(
            bad.status == 400 && bad.text.contains("names none of"),
            "{nothing:?}: {}",
            bad.text
        );
    }
    assert_eq!(sim.account(), kept, "a refused update changes nothing");
    sim.shutdown().await;
}

/// `balance_status` makes the balance endpoint answer a status, and only it.
#[tokio::test]
async fn balance_status_faults_the_balance_endpoint_only() {
    let sim = start(test_args()).await.expect("start");
    let faults_url = format!("{}/sim/faults", root(&sim));
    send(&sim, json!({"to": "+919856321412", "orderId": "bs-1"})).await;

    let put = plain(reqwest::Method::PUT, &faults_url, "balance_status: -13").await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["balance_status"], -13);
    assert_eq!(
        balance(&sim).await,
        json!({"status": "-13", "reason": "user locked"})
    );
    assert_eq!(record(&sim, "bs-1").await.json()["status"], "0");
    let sent = send(&sim, json!({"to": "+919856321413", "orderId": "bs-2"})).await;
    assert_eq!(sent["status"], "0", "sends are not affected");

    // -1, then recovery.
    plain(reqwest::Method::PUT, &faults_url, "balance_status: -1").await;
    assert_eq!(balance(&sim).await["status"], "-1");
    plain(reqwest::Method::PUT, &faults_url, "balance_status: null").await;
    assert_eq!(balance(&sim).await["status"], "0");

    // -2 comes before the signature check; the others after it.
    sim.set_faults(Faults::parse("balance_status: -2").expect("valid"));
    let unsigned = balance_call(&sim, "demo-key", "wrong", now_secs()).await;
    assert_eq!(unsigned.json()["status"], "-2");
    sim.set_faults(Faults::parse("balance_status: -18").expect("valid"));
    let unsigned = balance_call(&sim, "demo-key", "wrong", now_secs()).await;
    assert_eq!(unsigned.json()["status"], "-1");
    assert_eq!(
        balance(&sim).await,
        json!({"status": "-18", "reason": "system error"})
    );
    sim.set_faults(Faults::parse("balance_status: -16").expect("valid"));
    assert_eq!(balance(&sim).await["status"], "-16");

    // The record queries' faults leave the balance alone.
    plain(
        reqwest::Method::PUT,
        &faults_url,
        "auth_outage: true\nip_restricted: true\nhttp_error_rate: 1",
    )
    .await;
    assert_eq!(balance(&sim).await["status"], "0");
    assert_ne!(record(&sim, "bs-1").await.status, 200);

    let bad = plain(reqwest::Method::PUT, &faults_url, "balance_status: -10").await;
    assert!(
        bad.status == 400 && bad.text.contains("cannot be injected"),
        "{}",
        bad.text
    );
    sim.shutdown().await;
}

/// Refused sends still reach the spool (an issuing app hands the id over whatever the
/// provider said), and the truth expects `not_found` for them.
#[tokio::test]
async fn traffic_generator_spools_unpaid_ids_and_the_truth_expects_not_found() {
    let sim = start(SimulateArgs {
        balance_usd: usd("0.3"),
        ..test_args()
    })
    .await
    .expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let opts = TrafficOptions {
        seed: 4,
        max_orders: Some(60),
        unknown_ratio: 0.1,
        ..fast_traffic(&sim, spool.clone())
    };
    run_traffic(opts).await.expect("traffic");
    let mut spooled = Vec::new();
    for entry in std::fs::read_dir(&spool).expect("spool") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("json line");
            spooled.push(v["orderId"].as_str().expect("orderId").to_string());
        }
    }
    spooled.sort();
    let account = sim.account();
    assert!(account.refused_sends > 10, "{account:?}");
    let truth = sim.truth();
    let mut known: Vec<String> = truth.orders.iter().map(|o| o.order_id.clone()).collect();
    known.sort();
    assert_eq!(spooled, known, "every id is in the spool and the truth");
    let not_found = truth
        .orders
        .iter()
        .filter(|o| o.outcome == "not_found")
        .count() as u64;
    // Drawn unknown, or refused: both are not_found.
    assert!(not_found >= account.refused_sends, "{not_found}");
    let sent = truth
        .orders
        .iter()
        .filter(|o| o.outcome != "not_found")
        .count() as u64;
    assert_eq!(sent, account.charged_sends);
    sim.shutdown().await;
}

#[test]
fn balance_flags_parse_and_default_to_a_large_balance() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }
    let parse = |extra: &[&str]| {
        let mut argv = vec!["simulate"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|c| c.args)
    };
    let args = parse(&[]).expect("defaults");
    assert_eq!(args.balance_usd, DEFAULT_BALANCE);
    assert_eq!(args.balance_usd, SimulateArgs::default().balance_usd);
    assert_eq!(DEFAULT_BALANCE.to_string(), "1000000.0000");
    assert_eq!((args.gift_usd, args.credit_usd), (Usd::ZERO, Usd::ZERO));
    let args = parse(&[
        "--balance-usd",
        "2.5",
        "--gift-usd",
        "0.0001",
        "--credit-usd",
        "10",
    ])
    .expect("amounts");
    assert_eq!(
        (args.balance_usd, args.gift_usd, args.credit_usd),
        (usd("2.5"), usd("0.0001"), usd("10"))
    );
    for (bad, why) in [
        ("-1", "negative"),
        ("0.00005", "more than 4 decimals"),
        ("ten", "not an amount"),
    ] {
        let err = parse(&["--balance-usd", bad]).expect_err(bad).to_string();
        assert!(err.contains("--balance-usd") && err.contains(why), "{err}");
    }
}

#[test]
fn the_mean_price_per_id_is_plausible_and_counts_unknown_ids_as_free() {
    let dir = std::env::temp_dir();
    let opts = TrafficOptions {
        base_url: String::new(),
        api_key: String::new(),
        api_secret: "x".into(),
        spool_dir: dir,
        app_ids: Vec::new(),
        orders_per_second: 5.0,
        seed: 1,
        max_orders: None,
        unknown_ratio: 0.0,
    };
    let validity = Duration::from_secs(300);
    let all_sent = traffic::mean_price_per_id(&opts, validity, 4000).expect("estimate");
    // SMS prices run 0.003 to 0.035 a segment; fallbacks to calls add some.
    assert!(
        (usd("0.005")..=usd("0.05")).contains(&all_sent),
        "{all_sent}"
    );
    let half = TrafficOptions {
        unknown_ratio: 0.5,
        ..opts.clone()
    };
    let half = traffic::mean_price_per_id(&half, validity, 4000).expect("estimate");
    let ratio = half.as_f64() / all_sent.as_f64();
    assert!((0.4..0.6).contains(&ratio), "{ratio}");
    let bad = TrafficOptions {
        unknown_ratio: 2.0,
        ..opts
    };
    assert!(traffic::mean_price_per_id(&bad, validity, 10).is_err());
}
