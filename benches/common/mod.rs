//! The scripted record server the benches poll: each order's queries are answered from
//! a script (an SMS pending for two queries, delivered, then verified: 5 queries, 3 of
//! them changing the order), over hyper's HTTP/1 server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};

pub type Script = Arc<Mutex<HashMap<String, (u32, chrono::DateTime<chrono::Utc>)>>>;

/// The networks (MCC, MNC) records name: India's Vodafone Idea only, or, for a server
/// started with [`serve_networks`], every network of the project's table (so that the
/// daemon's per-country and per-operator series grow as in production).
static NETWORKS: std::sync::OnceLock<Vec<(u16, u16)>> = std::sync::OnceLock::new();

fn network_of(order_id: &str) -> (u16, u16) {
    let networks = NETWORKS.get_or_init(|| vec![(404, 45)]);
    let hash = order_id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    networks[(hash % networks.len() as u64) as usize]
}

/// Records of the server name every (MCC, MNC) of `data/mcc-mnc.csv`, by order id.
#[allow(dead_code)]
pub fn serve_networks() {
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mcc-mnc.csv"))
        .unwrap_or_default();
    let networks: Vec<(u16, u16)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let mcc = fields.next()?.parse().ok()?;
            let mnc = fields.next()?.parse().ok()?;
            Some((mcc, mnc))
        })
        .collect();
    if !networks.is_empty() {
        let _ = NETWORKS.set(networks);
    }
}

pub fn record(queries: u32, t0: chrono::DateTime<chrono::Utc>, order_id: &str) -> String {
    let (mcc, mnc) = network_of(order_id);
    let at = |s: i64| (t0 + chrono::Duration::seconds(s)).to_rfc3339();
    let sms = |status: i64, done: bool| {
        let done = if done {
            format!(r#","doneTm":"{}""#, at(1))
        } else {
            String::new()
        };
        format!(
            r#"{{"submitTm":"{}"{done},"mcc":{mcc},"mnc":{mnc},"status":{status},"pay":0.01,"chargeCnt":1}}"#,
            at(0)
        )
    };
    let (verification, sms) = match queries {
        1..=3 => (r#""matched":-1"#.to_string(), sms(-1, false)),
        4 => (r#""matched":-1"#.to_string(), sms(0, true)),
        _ => (
            format!(r#""matched":0,"verifiedDate":"{}""#, at(2)),
            sms(0, true),
        ),
    };
    format!(
        r#"{{"status":0,"reason":"success","data":{{"verifications":{{{verification},"oriReceiver":"+919812345642","channel":"sms"}},"sms":[{sms}]}}}}"#
    )
}

pub async fn answer(
    script: Script,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let order_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("orderId")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let (queries, t0) = {
        let mut script = script.lock().expect("script lock");
        let now = chrono::Utc::now() - chrono::Duration::seconds(1);
        let entry = script.entry(order_id.clone()).or_insert((0, now));
        entry.0 += 1;
        *entry
    };
    Ok(Response::new(Full::new(Bytes::from(record(
        queries, t0, &order_id,
    )))))
}

/// A number from the environment (`1_000_000` allowed), else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A loopback address no one listens on now.
pub fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// Serves the script on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    let script: Script = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let script = script.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(script.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
