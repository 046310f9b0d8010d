//! The ITNIO record client: signs queries exactly like the provider's samples and
//! classifies every answer into what the scheduler must do next.

pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, DATE, RETRY_AFTER};

use crate::config::{ApiConfig, Secret};
pub use wire::{Record, Reply};

/// Path of the record endpoint below `api.base_url`.
pub const RECORD_PATH: &str = "/verification/orderId/record";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// `md5(apiKey + apiSecret + timestamp)` as lowercase hex, as the provider's samples do.
pub fn sign(api_key: &str, api_secret: &str, timestamp: &str) -> String {
    let digest = Md5::new()
        .chain_update(api_key.as_bytes())
        .chain_update(api_secret.as_bytes())
        .chain_update(timestamp.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one record query means for the order and for the API as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    /// Status 0 with a record.
    Record(Record),
    /// Status 0 without a record (`data` null or empty).
    NoRecord,
    /// -1 (credentials) or -2 (IP): nothing works until an operator acts.
    Rejected { status: i64, reason: String },
    /// -16: our clock disagrees with the provider's; the offset was corrected.
    ClockSkew { offset_secs: Option<i64> },
    /// -18, HTTP 5xx/429, timeouts, connection failures, undecodable bodies.
    Transient {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// -22 and statuses the documentation does not list.
    OtherStatus { status: i64, reason: String },
}

/// One finished query: its outcome, the metric label for its status, and its latency.
#[derive(Debug, Clone)]
pub struct Query {
    pub outcome: QueryOutcome,
    /// `otp_exporter_api_requests_total{status}`: the API status, `http_NNN`, `timeout`,
    /// `connect_error` or `invalid_response`.
    pub status_label: String,
    pub duration: Duration,
}

/// Signs and sends record queries over one keep-alive connection pool.
pub struct ApiClient {
    http: reqwest::Client,
    record_url: String,
    api_key: String,
    secret: Secret,
    /// Seconds to add to our clock when signing, learned from `Date` after a -16.
    clock_offset_secs: AtomicI64,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("record_url", &self.record_url)
            .field("api_key", &self.api_key)
            .field("secret", &self.secret)
            .finish()
    }
}

impl ApiClient {
    pub fn new(api: &ApiConfig, secret: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(api.timeout.min(Duration::from_secs(5)))
            .read_timeout(api.timeout)
            .timeout(api.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(api.max_in_flight as usize)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("itnio-otp-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Client(e.to_string()))?;
        Ok(ApiClient {
            http,
            record_url: format!("{}{}", api.base_url.trim_end_matches('/'), RECORD_PATH),
            api_key: api.api_key.clone(),
            secret: Secret::new(secret),
            clock_offset_secs: AtomicI64::new(0),
        })
    }

    pub fn record_url(&self) -> &str {
        &self.record_url
    }

    /// Current correction applied to our clock when signing.
    pub fn clock_offset_secs(&self) -> i64 {
        self.clock_offset_secs.load(Ordering::Relaxed)
    }

    fn headers(&self) -> HeaderMap {
        let now = unix_now_secs() + self.clock_offset_secs();
        let timestamp = now.to_string();
        let signature = sign(&self.api_key, self.secret.expose(), &timestamp);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        // The provider's samples ask for keep-alive explicitly.
        headers.insert("Connection", HeaderValue::from_static("Keep-Alive"));
        let mut insert = |name: &'static str, value: &str| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(name == "Sign");
                headers.insert(name, v);
            }
        };
        insert("Sign", &signature);
        insert("Timestamp", &timestamp);
        insert("Api-Key", &self.api_key);
        headers
    }

    /// Queries one order's record and classifies the answer.
    pub async fn query(&self, app_id: &str, order_id: &str) -> Query {
        let started = Instant::now();
        let body = serde_json::json!({ "appId": app_id, "orderId": order_id }).to_string();
        let sent = self
            .http
            .post(&self.record_url)
            .headers(self.headers())
            .body(body)
            .send()
            .await;
        let (outcome, status_label) = match sent {
            Err(e) => transport_error(&e),
            Ok(response) => {
                let http_status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let server_date = response
                    .headers()
                    .get(DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                    .map(|d| d.timestamp());
                match response.bytes().await {
                    Err(e) => transport_error(&e),
                    Ok(_) if !http_status.is_success() => (
                        QueryOutcome::Transient {
                            retry_after,
                            detail: format!("HTTP {}", http_status.as_u16()),
                        },
                        format!("http_{}", http_status.as_u16()),
                    ),
                    Ok(bytes) => self.classify(&bytes, server_date),
                }
            }
        };
        Query {
            outcome,
            status_label,
            duration: started.elapsed(),
        }
    }

    fn classify(&self, body: &[u8], server_date: Option<i64>) -> (QueryOutcome, String) {
        let reply = match wire::decode_reply(body) {
            Ok(reply) => reply,
            Err(e) => {
                return (
                    QueryOutcome::Transient {
                        retry_after: None,
                        detail: e.to_string(),
                    },
                    "invalid_response".to_string(),
                )
            }
        };
        let reason = reply.reason.clone().unwrap_or_default();
        let outcome = match reply.status {
            0 => match reply.data {
                Some(record) if !record.is_empty() => QueryOutcome::Record(record),
                _ => QueryOutcome::NoRecord,
            },
            -1 | -2 => QueryOutcome::Rejected {
                status: reply.status,
                reason,
            },
            -16 => {
                let offset = server_date.map(|server| server - unix_now_secs());
                if let Some(offset) = offset {
                    self.clock_offset_secs.store(offset, Ordering::Relaxed);
                }
                QueryOutcome::ClockSkew {
                    offset_secs: offset,
                }
            }
            -18 => QueryOutcome::Transient {
                retry_after: None,
                detail: format!("status -18 (system error) {reason}")
                    .trim()
                    .to_string(),
            },
            status => QueryOutcome::OtherStatus { status, reason },
        };
        (outcome, status_label(reply.status))
    }
}

/// Statuses become label values: keep them bounded to plausible integers.
fn status_label(status: i64) -> String {
    if (-999..=999).contains(&status) {
        status.to_string()
    } else {
        "invalid_response".to_string()
    }
}

fn transport_error(e: &reqwest::Error) -> (QueryOutcome, String) {
    let label = if e.is_timeout() {
        "timeout"
    } else if e.is_decode() || e.is_body() {
        "invalid_response"
    } else {
        "connect_error"
    };
    // reqwest errors name the URL but never headers, so the signature cannot leak here.
    let detail = format!("{label}: {}", error_chain(e));
    (
        QueryOutcome::Transient {
            retry_after: None,
            detail,
        },
        label.to_string(),
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .timestamp();
    Some(Duration::from_secs(
        (when - unix_now_secs()).clamp(0, 3600) as u64
    ))
}

pub fn unix_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_md5_of_key_secret_timestamp() {
        // md5("bDqJFiq9" + "secret" + "1630468800"), computed independently with coreutils md5sum.
        assert_eq!(
            sign("bDqJFiq9", "secret", "1630468800"),
            "5e05d651d20b87515084ccf02b24c04f"
        );
        assert_eq!(sign("", "", ""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sign("a", "b", "c"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn status_labels_stay_bounded() {
        assert_eq!(status_label(0), "0");
        assert_eq!(status_label(-18), "-18");
        assert_eq!(status_label(123456789), "invalid_response");
    }
}
