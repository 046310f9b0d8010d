//! The real daemon against a provider stand-in that answers like a hostile one: a body
//! far over `api.max_response_bytes`, another order's record, absurd amounts and
//! times, and a `reason` that echoes the request's headers.

mod common;

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use common::stand_in::StandIn;
use common::*;

/// How the stand-in answers one query, by the request's order id and headers.
type Answer = fn(order_id: &str, headers: &hyper::HeaderMap) -> String;

/// A provider stand-in answering every query with `answer`.
fn provider(answer: Answer) -> StandIn {
    StandIn::start(move |req: Request<Incoming>| async move {
        let headers = req.headers().clone();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let query: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let order_id = query["orderId"].as_str().unwrap_or_default();
        Response::new(Full::new(Bytes::from(answer(order_id, &headers))))
    })
}

/// A verified, delivered record of `order_id` submitted just now, with `pay`.
fn verified(order_id: &str, pay: &str, submit: &str) -> String {
    let now = chrono::Utc::now();
    let done = (now - chrono::Duration::seconds(1)).to_rfc3339();
    format!(
        r#"{{"status":"0","reason":"success","data":{{"orderId":"{order_id}",
        "verifications":{{"matched":0,"verifiedDate":"{done}","channel":"sms"}},
        "sms":[{{"status":0,"mcc":404,"mnc":10,"chargeCnt":1,"pay":"{pay}",
        "submitTm":"{submit}","doneTm":"{done}"}}]}}}}"#
    )
}

fn hostile(order_id: &str, _headers: &hyper::HeaderMap) -> String {
    let recent = (chrono::Utc::now() - chrono::Duration::seconds(3)).to_rfc3339();
    match order_id {
        // 2 MiB of padding around a good record: over the 512 KiB default cap.
        "huge-1" => format!(
            r#"{{"status":"0","padding":"{}","data":{{"orderId":"huge-1","verifications":{{"matched":0}}}}}}"#,
            "x".repeat(2 << 20)
        ),
        "mixed-1" => verified("someone-else", "0.01", &recent),
        "absurd-1" => verified(order_id, "1e308", "1900-01-01T00:00:00Z"),
        "absurd-2" => verified(order_id, "-5", &recent),
        _ => verified(order_id, "0.01", &recent),
    }
}

#[test]
fn hostile_answers_are_refused_or_counted_as_invalid_never_into_the_metrics() {
    let provider = provider(hostile);
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &provider.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    drop_spool_file(
        &exporter.spool(),
        "hostile",
        "huge-1\nmixed-1\nabsurd-1\nabsurd-2\ngood-1\n",
    );
    // The good and the absurd orders finalize as verified; the absurd values are
    // dropped and counted.
    let scrape = assert_all_eventually(
        &exporter.metrics_url(),
        Duration::from_secs(20),
        &[
            metric("otp_orders_total")
                .label("outcome", "verified")
                .value(3),
            metric("otp_exporter_invalid_values_total")
                .label("field", "pay")
                .value(2),
            metric("otp_exporter_invalid_values_total")
                .label("field", "submitTm")
                .value(1),
            metric("otp_exporter_api_requests_total")
                .label("status", "invalid_response")
                .at_least(4),
        ],
    );
    let cost = scrape.sum("otp_cost_usd_total", &[]);
    assert!(
        (cost - 0.01).abs() < 1e-9,
        "only the good order's cost counts, got {cost}"
    );
    // One latency observation per believable delivery: good-1 and absurd-2.
    assert_eq!(
        scrape.sum("otp_delivery_latency_seconds_count", &[]),
        2.0,
        "{}",
        scrape.list("otp_delivery_latency_seconds_count")
    );
    // The huge and the mixed-up answers are never this order's record: still pending.
    assert_eq!(scrape.sum("otp_exporter_orders_pending", &[]), 2.0);
}

/// Status -1 with a reason that repeats the request's Sign, Timestamp and Api-Key.
fn echoing(_order_id: &str, headers: &hyper::HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let reason = format!(
        "invalid signature: Sign={} Timestamp={} Api-Key={}",
        header("sign"),
        header("timestamp"),
        header("api-key")
    );
    serde_json::json!({"status": "-1", "reason": reason}).to_string()
}

#[test]
fn the_providers_reason_is_shown_without_what_it_echoes_of_the_request() {
    let provider = provider(echoing);
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &provider.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");
    drop_spool_file(&exporter.spool(), "one", "echo-1\n");
    let page = wait_for(Duration::from_secs(20), || {
        let (_, page) = get(addr, "/").ok()?;
        page.contains("provider said").then_some(page)
    })
    .unwrap_or_else(|| {
        panic!(
            "the rejection never reached the page\n{}",
            exporter.proc.log()
        )
    });
    let log = exporter.proc.log();
    for (what, text) in [("status page", &page), ("log", &log)] {
        assert!(
            text.contains(
                "invalid signature: Sign=[redacted] Timestamp=[redacted] Api-Key=[redacted]"
            ),
            "{what} does not show the redacted reason:\n{text}"
        );
        assert!(!text.contains(API_KEY), "{what} shows the API key:\n{text}");
        let hex_run = text
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|run| run.len() >= 32);
        assert!(!hex_run, "{what} shows a signature:\n{text}");
    }
}
