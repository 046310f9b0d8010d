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

pub fn record(queries: u32, t0: chrono::DateTime<chrono::Utc>) -> String {
    let at = |s: i64| (t0 + chrono::Duration::seconds(s)).to_rfc3339();
    let sms = |status: i64, done: bool| {
        let done = if done {
            format!(r#","doneTm":"{}""#, at(1))
        } else {
            String::new()
        };
        format!(
            r#"{{"submitTm":"{}"{done},"mcc":404,"mnc":45,"status":{status},"pay":0.01,"chargeCnt":1}}"#,
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
        let entry = script.entry(order_id).or_insert((0, now));
        entry.0 += 1;
        *entry
    };
    Ok(Response::new(Full::new(Bytes::from(record(queries, t0)))))
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
