//! The ITNIO record client: signs queries exactly like the provider's samples and
//! classifies every answer into what the scheduler must do next.

pub mod wire;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::unix_now_secs;

use md5::{Digest, Md5};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, DATE, RETRY_AFTER};

use crate::config::{ApiSettings, Secret};
pub use wire::{Record, Reply};

/// Path of the record endpoint below `api.base_url`.
pub const RECORD_PATH: &str = "/verification/orderId/record";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
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

/// One finished query: its outcome, the metric label for its status, whether the API
/// answered at all, and its latency.
#[derive(Debug, Clone)]
pub struct Query {
    pub outcome: QueryOutcome,
    /// `otp_exporter_api_requests_total{status}`: the API status, `http_NNN`, `timeout`,
    /// `connect_error` or `invalid_response`.
    pub status_label: String,
    /// The API's own reply came back, whatever its status (-1 and -18 included):
    /// the API is reachable. False for timeouts, refused connections, HTTP errors
    /// without the API's envelope and undecodable bodies.
    pub answered: bool,
    pub duration: Duration,
}

/// Signs and sends record queries over one keep-alive connection pool.
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    record_url: String,
    api_key: String,
    secret: Secret,
    /// Seconds to add to our clock when signing, learned from `Date` after a -16;
    /// shared with whoever reports it (see [`ApiClient::with_clock_offset`]).
    clock_offset_secs: Arc<AtomicI64>,
}

impl ApiClient {
    /// A client for the validated API settings; it signs with `api.secret`.
    pub fn new(api: &ApiSettings) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(api.timeout.min(Duration::from_secs(5)))
            .read_timeout(api.timeout)
            .timeout(api.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(api.max_in_flight as usize)
            .tcp_keepalive(Duration::from_secs(60))
            // A redirect would replay the signed headers to another host; treat it as an error.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("itnio-otp-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ApiError::Client)?;
        Ok(ApiClient {
            http,
            record_url: format!("{}{}", api.base_url.trim_end_matches('/'), RECORD_PATH),
            api_key: api.api_key.clone(),
            secret: api.secret.clone(),
            clock_offset_secs: Arc::default(),
        })
    }

    /// Keeps the clock correction in `offset_secs` (the daemon's status page shows that
    /// one), so that the value has one home.
    pub fn with_clock_offset(mut self, offset_secs: Arc<AtomicI64>) -> Self {
        self.clock_offset_secs = offset_secs;
        self
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
        let (outcome, status_label, answered) = match sent {
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
                    Ok(bytes) if http_status.is_success() => self.classify(&bytes, server_date),
                    // A 4xx that carries the API's own envelope (`401` with status -1, say)
                    // means what its status says; 5xx, 429 and bare error pages are transient.
                    Ok(bytes) => match wire::decode_reply(&bytes) {
                        Ok(reply)
                            if reply.status != 0
                                && http_status.is_client_error()
                                && http_status != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                        {
                            self.classify_reply(reply, server_date)
                        }
                        _ => (
                            QueryOutcome::Transient {
                                retry_after,
                                detail: format!("HTTP {}", http_status.as_u16()),
                            },
                            format!("http_{}", http_status.as_u16()),
                            false,
                        ),
                    },
                }
            }
        };
        Query {
            outcome,
            status_label,
            answered,
            duration: started.elapsed(),
        }
    }

    fn classify(&self, body: &[u8], server_date: Option<i64>) -> (QueryOutcome, String, bool) {
        let reply = match wire::decode_reply(body) {
            Ok(reply) => reply,
            Err(e) => {
                return (
                    QueryOutcome::Transient {
                        retry_after: None,
                        detail: e.to_string(),
                    },
                    "invalid_response".to_string(),
                    false,
                )
            }
        };
        self.classify_reply(reply, server_date)
    }

    fn classify_reply(
        &self,
        reply: Reply,
        server_date: Option<i64>,
    ) -> (QueryOutcome, String, bool) {
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
        // A status outside the plausible range is garbage, not an answer.
        let answered = plausible_status(reply.status);
        (outcome, status_label(reply.status), answered)
    }
}

fn plausible_status(status: i64) -> bool {
    (-999..=999).contains(&status)
}

/// Statuses become label values: keep them bounded to plausible integers.
fn status_label(status: i64) -> String {
    if plausible_status(status) {
        status.to_string()
    } else {
        "invalid_response".to_string()
    }
}

fn transport_error(e: &reqwest::Error) -> (QueryOutcome, String, bool) {
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
        false,
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

    /// Serves every connection on a real loopback socket with one canned HTTP response.
    async fn canned(status_line: &str, extra_headers: &str, body: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!(
            "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        );
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    // The request is small; one read takes its headers and body.
                    let mut buf = vec![0u8; 8192];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        format!("http://{addr}/otp")
    }

    fn client(base_url: String) -> ApiClient {
        let api = ApiSettings {
            base_url,
            api_key: "key".into(),
            secret: Secret::new("secret"),
            timeout: Duration::from_secs(5),
            max_in_flight: 4,
            max_requests_per_second: 10,
            timezone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
        };
        ApiClient::new(&api).unwrap()
    }

    async fn answer(status_line: &str, extra_headers: &str, body: &str) -> Query {
        let url = canned(status_line, extra_headers, body).await;
        client(url).query("app", "order-1").await
    }

    #[tokio::test]
    async fn error_statuses_with_the_api_envelope_mean_their_api_status() {
        let q = answer(
            "401 Unauthorized",
            "",
            r#"{"status":"-1","reason":"bad key"}"#,
        )
        .await;
        assert_eq!(q.status_label, "-1");
        assert!(q.answered, "a rejection is an answer");
        assert!(matches!(
            q.outcome,
            QueryOutcome::Rejected { status: -1, .. }
        ));
        let q = answer("403 Forbidden", "", r#"{"status":-2,"reason":"ip"}"#).await;
        assert!(matches!(
            q.outcome,
            QueryOutcome::Rejected { status: -2, .. }
        ));
        let q = answer("400 Bad Request", "", r#"{"status":"-22"}"#).await;
        assert!(matches!(
            q.outcome,
            QueryOutcome::OtherStatus { status: -22, .. }
        ));
    }

    #[tokio::test]
    async fn server_errors_throttling_and_error_pages_are_transient() {
        let q = answer("503 Service Unavailable", "", r#"{"status":"-1"}"#).await;
        assert_eq!(q.status_label, "http_503");
        assert!(!q.answered);
        assert!(matches!(q.outcome, QueryOutcome::Transient { .. }));
        let q = answer(
            "429 Too Many Requests",
            "retry-after: 7\r\n",
            r#"{"status":"-18"}"#,
        )
        .await;
        assert_eq!(q.status_label, "http_429");
        assert_eq!(
            q.outcome,
            QueryOutcome::Transient {
                retry_after: Some(Duration::from_secs(7)),
                detail: "HTTP 429".into()
            }
        );
        let q = answer("404 Not Found", "", "<html>not found</html>").await;
        assert_eq!(q.status_label, "http_404");
        let q = answer("404 Not Found", "", r#"{"status":"0","data":{}}"#).await;
        assert_eq!(
            q.status_label, "http_404",
            "a success envelope on an error status is not trusted"
        );
        let q = answer("200 OK", "", "<html>proxy</html>").await;
        assert_eq!(q.status_label, "invalid_response");
        assert!(!q.answered);
        let q = answer("200 OK", "", r#"{"status":"-18"}"#).await;
        assert!(q.answered, "a system error is still the API answering");
        assert!(matches!(q.outcome, QueryOutcome::Transient { .. }));
        let q = answer("200 OK", "", r#"{"status":123456789}"#).await;
        assert_eq!(q.status_label, "invalid_response");
        assert!(!q.answered, "an implausible status is garbage");
    }

    #[tokio::test]
    async fn timestamp_expired_measures_the_offset_from_date() {
        let server = chrono::Utc::now() + chrono::Duration::seconds(3600);
        let date = server.format("%a, %d %b %Y %H:%M:%S GMT");
        let url = canned(
            "200 OK",
            &format!("date: {date}\r\n"),
            r#"{"status":"-16"}"#,
        )
        .await;
        let client = client(url.clone());
        let q = client.query("app", "order-1").await;
        let QueryOutcome::ClockSkew {
            offset_secs: Some(offset),
        } = q.outcome
        else {
            panic!("expected clock skew, got {:?}", q.outcome);
        };
        assert!((3595..=3601).contains(&offset), "offset {offset}");
        assert_eq!(client.clock_offset_secs(), offset);
        // With a shared home, the correction lands there.
        let shared = Arc::new(AtomicI64::new(0));
        let client = self::client(url.clone()).with_clock_offset(shared.clone());
        client.query("app", "order-1").await;
        let seen = shared.load(Ordering::Relaxed);
        assert!((3595..=3601).contains(&seen), "offset {seen}");
        assert_eq!(q.status_label, "-16");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let target = canned("200 OK", "", r#"{"status":"0","data":null}"#).await;
        let q = answer(
            "302 Found",
            &format!("location: {target}/verification/orderId/record\r\n"),
            "",
        )
        .await;
        assert_eq!(q.status_label, "http_302");
        assert!(matches!(q.outcome, QueryOutcome::Transient { .. }));
    }

    #[test]
    fn status_labels_stay_bounded() {
        assert_eq!(status_label(0), "0");
        assert_eq!(status_label(-18), "-18");
        assert_eq!(status_label(123456789), "invalid_response");
    }
}
