//! The JSON views: an order in a list, a list page, and one order in detail.

use serde::Serialize;
use serde_json::{json, Value};

use super::params::Cursor;
use super::time::{rfc3339, seconds};
use super::timeline::timeline_lines;
use crate::journal::model::{Entry, IndexRow, State};
use crate::outcome::Outcome;

/// One order in a list (from its index row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub order_id: String,
    pub app_id: String,
    pub issued_at: String,
    pub state: State,
    pub outcome: Option<Outcome>,
    pub country: Option<String>,
    pub channel: Option<String>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub operator: Option<String>,
    pub latency_seconds: Option<f64>,
    pub cost_usd: f64,
    pub queries: u32,
    pub finalized_at: Option<String>,
}

impl Summary {
    pub fn of_row(order_id: &str, issued_ms: i64, row: &IndexRow) -> Summary {
        Summary {
            order_id: order_id.to_string(),
            app_id: row.app_id.clone(),
            issued_at: rfc3339(issued_ms),
            state: row.state,
            outcome: row.outcome,
            country: row.country.clone(),
            channel: row.channel.clone(),
            mcc: row.mcc,
            mnc: row.mnc,
            operator: row.operator.clone(),
            latency_seconds: row.latency_ms.map(seconds),
            cost_usd: row.cost_usd,
            queries: row.queries,
            finalized_at: row.finalized_ms.map(rfc3339),
        }
    }
}

/// One order of a list page, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub order_id: String,
    pub issued_ms: i64,
    pub row: IndexRow,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrdersPage {
    pub orders: Vec<Listed>,
    /// Where the next page starts; `None` on the last page. A page may hold fewer
    /// than `limit` orders and still have a next one (the walk is bounded per page).
    pub next_cursor: Option<Cursor>,
    /// Index rows that could not be decoded (skipped).
    pub damaged: u64,
}

impl OrdersPage {
    pub fn to_json(&self) -> Value {
        let orders: Vec<Summary> = self
            .orders
            .iter()
            .map(|o| Summary::of_row(&o.order_id, o.issued_ms, &o.row))
            .collect();
        json!({
            "orders": orders,
            "next_cursor": self.next_cursor.as_ref().map(Cursor::encode),
        })
    }
}

/// The detail view of an order (`/api/v1/orders/{orderId}`).
pub fn detail_json(entry: &Entry) -> Value {
    let attempts: Vec<Value> = entry
        .attempts
        .iter()
        .map(|a| {
            json!({
                "channel": a.channel.as_str(),
                "seq": a.seq,
                "mcc": a.mcc,
                "mnc": a.mnc,
                "operator": a.operator,
                "result": a.result.as_str(),
                "provider_status": a.provider_status,
                "provider_reason": a.provider_reason,
                "submitted_at": a.submit_ms.map(rfc3339),
                "done_at": a.done_ms.map(rfc3339),
                "answered_at": a.answer_ms.map(rfc3339),
                "latency_seconds": a.latency_ms.map(seconds),
                "cost_usd": a.cost_usd,
                "segments": a.segments,
            })
        })
        .collect();
    let fallbacks: Vec<Value> = entry
        .fallbacks
        .iter()
        .map(|(from, to)| json!({"from": from.as_str(), "to": to.as_str()}))
        .collect();
    let timeline: Vec<Value> = timeline_lines(entry)
        .into_iter()
        .map(|line| line.json)
        .collect();
    let latency_ms = entry
        .attempts
        .iter()
        .find(|a| a.result == crate::outcome::AttemptResult::Delivered)
        .and_then(|a| a.latency_ms);
    json!({
        "order_id": entry.order_id,
        "app_id": entry.app_id,
        "issued_at": rfc3339(entry.issued_ms),
        "state": entry.state,
        "outcome": entry.outcome,
        "country": entry.country,
        "channel": entry.channel,
        "mcc": entry.mcc,
        "mnc": entry.mnc,
        "operator": entry.operator,
        "latency_seconds": latency_ms.map(seconds),
        "cost_usd": entry.attempts.iter().map(|a| a.cost_usd).sum::<f64>(),
        "queries": entry.queries,
        "finalized_at": entry.finalized_ms.map(rfc3339),
        "rule": entry.rule,
        "decided_at": entry.decided_ms.map(rfc3339),
        "finalize_reason": entry.finalize_reason,
        "receiver": entry.receiver,
        "attempts": attempts,
        "fallbacks": fallbacks,
        "verified_at": entry.verified_ms.map(rfc3339),
        "verification_latency_seconds": entry.verification_latency_ms.map(seconds),
        "timeline": timeline,
        "timeline_dropped": entry.timeline_dropped,
    })
}
