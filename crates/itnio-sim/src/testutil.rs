//! Test support: reads a rendered record the way the exporter's rules do, so that
//! tests can check the ground truth against what a client actually sees.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde_json::Value;

/// One attempt as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenAttempt {
    pub channel: &'static str,
    pub submit_ms: Option<i64>,
    pub result: &'static str,
    pub latency: bool,
    /// The time its result became visible (DLR, hang-up, SNA answer).
    pub done_ms: Option<i64>,
}

/// A record as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub matched: Option<i64>,
    pub verified_ms: Option<i64>,
    pub channel: Option<String>,
    /// In submit order.
    pub attempts: Vec<SeenAttempt>,
    pub cost_usd: f64,
    pub sms_segments: u64,
}

impl Seen {
    /// The exporter's outcome once the window has closed (and pending results settled).
    pub fn outcome(&self) -> &'static str {
        match self.matched {
            Some(0) | Some(4) => "verified",
            Some(2) => "failed",
            _ if self.attempts.iter().any(|a| a.result == "delivered") => "unverified",
            _ if self.attempts.iter().any(|a| a.result == "failed") => "undelivered",
            _ => "expired",
        }
    }
}

pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn money(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// RFC 3339, or `yyyy-MM-dd HH:mm:ss[.SSS]` in +08:00.
pub fn time_ms(v: Option<&Value>) -> Option<i64> {
    let text = v?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let zone = FixedOffset::east_opt(8 * 3600)?;
    Some(
        zone.from_local_datetime(&naive)
            .single()?
            .timestamp_millis(),
    )
}

/// Reads the `data` of a record.
pub fn seen(data: &Value) -> Seen {
    let verifications = data.get("verifications");
    let mut attempts = Vec::new();
    let mut cost_usd = 0.0;
    let mut sms_segments = 0;
    let items = |key: &str| -> Vec<Value> {
        data.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for sms in items("sms") {
        let result = match int(sms.get("status")) {
            Some(0) => "delivered",
            Some(-1) | None => "pending",
            Some(_) => "failed",
        };
        let submit_ms = time_ms(sms.get("submitTm"));
        let done_ms = time_ms(sms.get("doneTm"));
        cost_usd += money(sms.get("pay"));
        sms_segments += int(sms.get("chargeCnt")).unwrap_or(0) as u64;
        attempts.push(SeenAttempt {
            channel: "sms",
            submit_ms,
            result,
            latency: result == "delivered" && submit_ms.is_some() && done_ms.is_some(),
            done_ms,
        });
    }
    for call in items("call") {
        let result = match int(call.get("terminationCode")) {
            Some(0) => "delivered",
            Some(_) => "failed",
            None => "pending",
        };
        let submit_ms = time_ms(call.get("submitTime"));
        cost_usd += money(call.get("cost"));
        attempts.push(SeenAttempt {
            channel: "call",
            submit_ms,
            result,
            latency: result == "delivered"
                && submit_ms.is_some()
                && time_ms(call.get("answerTime")).is_some(),
            done_ms: time_ms(call.get("hangupTime")),
        });
    }
    for sna in items("sna") {
        let result = match int(sna.get("status")) {
            Some(0) => "delivered",
            Some(-1) | None => "pending",
            Some(_) => "failed",
        };
        let submit_ms = time_ms(sna.get("postVerificationTime"));
        let done_ms = time_ms(sna.get("verificationBackTime"));
        attempts.push(SeenAttempt {
            channel: "sna",
            submit_ms,
            result,
            latency: result == "delivered" && submit_ms.is_some() && done_ms.is_some(),
            done_ms,
        });
    }
    attempts.sort_by_key(|a| a.submit_ms.unwrap_or(i64::MAX));
    Seen {
        matched: int(verifications.and_then(|v| v.get("matched"))),
        verified_ms: time_ms(verifications.and_then(|v| v.get("verifiedDate"))),
        channel: verifications
            .and_then(|v| v.get("channel"))
            .and_then(Value::as_str)
            .map(str::to_string),
        attempts,
        cost_usd,
        sms_segments,
    }
}
