//! The ITNIO client: signs record and balance queries exactly like the provider's
//! samples and classifies every answer into what the scheduler must do next.

mod connections;
mod transport;
pub mod wire;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::unix_now_secs;

use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use md5::{Digest, Md5};

use crate::config::{ApiSettings, Secret};
pub use wire::{Amount, BalanceKind, Record, Reply};

/// Path of the record endpoint below `api.base_url`.
pub const RECORD_PATH: &str = "/verification/orderId/record";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{url:?} is not a usable endpoint URL: {detail}")]
    Url { url: String, detail: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// The record query's body (`appId`, `orderId`), serialised without an intermediate
/// JSON value.
#[derive(serde::Serialize)]
struct RecordRequest<'a> {
    #[serde(rename = "appId")]
    app_id: &'a str,
    #[serde(rename = "orderId")]
    order_id: &'a str,
}

/// `md5(apiKey + apiSecret + timestamp)` as lowercase hex, as the provider's samples do.
pub fn sign(api_key: &str, api_secret: &str, timestamp: &str) -> String {
    let digest = Md5::new()
        .chain_update(api_key.as_bytes())
        .chain_update(api_secret.as_bytes())
        .chain_update(timestamp.as_bytes())
        .finalize();
    // By hand: one allocation per request, not one per byte (this is the poll path).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(32);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
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

/// One finished balance query, like [`Query`].
#[derive(Debug, Clone)]
pub struct BalanceQuery {
    pub outcome: BalanceOutcome,
    /// `otp_exporter_balance_requests_total{status}`, as for record queries.
    pub status_label: String,
    /// The API's own reply came back, whatever its status.
    pub answered: bool,
    pub duration: Duration,
}

/// What one balance query says.
#[derive(Debug, Clone, PartialEq)]
pub enum BalanceOutcome {
    /// Status 0: the amounts as sent, by [`BalanceKind`] (each may be missing or odd).
    Balance([Amount; 3]),
    /// -13: the account is locked (sends fail until the provider unlocks it).
    Locked { reason: String },
    /// Every other answer, classified as a record query's would be (-1/-2 rejected,
    /// -16 clock skew, -18 and HTTP failures transient, other statuses).
    Failed(QueryOutcome),
}

/// Signs and sends queries over one keep-alive connection pool.
#[derive(Debug)]
pub struct ApiClient {
    /// How queries travel.
    transport: transport::Transport,
    /// The record endpoint, parsed once.
    record: transport::Target,
    /// The balance endpoint, when the balance poller runs.
    balance: Option<transport::Target>,
    api_key: String,
    secret: Secret,
    /// Seconds to add to our clock when signing, learned from `Date` after a -16;
    /// shared with whoever reports it (see [`ApiClient::with_clock_offset`]).
    clock_offset_secs: Arc<AtomicI64>,
    /// Bodies are read up to this many bytes (`api.max_response_bytes`).
    max_response_bytes: u64,
    /// `api.timeout`: the whole exchange, one timer per query (reqwest's own request
    /// and read timeouts cost two more timers per query, which showed in the poll
    /// path's profile).
    timeout: Duration,
    /// The headers signed for the current second: a signature covers only the key,
    /// the secret and the timestamp, so every query within a second carries the same
    /// ones (built once, not per poll).
    signed: Mutex<Option<Signed>>,
}

/// One second's signed headers.
struct Signed {
    headers: HeaderMap,
    sent: Sent,
}

/// Never the headers: they carry the signature.
impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("timestamp_secs", &self.sent.timestamp_secs)
            .finish_non_exhaustive()
    }
}

/// What one request carried that the provider might echo back in its `reason`.
#[derive(Clone)]
struct Sent {
    signature: Arc<str>,
    timestamp_secs: i64,
}

impl ApiClient {
    /// A client for the validated API settings; it signs with `api.secret`.
    pub fn new(api: &ApiSettings) -> Result<Self, ApiError> {
        let record_url = format!("{}{}", api.base_url.trim_end_matches('/'), RECORD_PATH);
        let transport = transport::Transport::new(api)?;
        let record = transport.target(&record_url)?;
        Ok(ApiClient {
            transport,
            record,
            balance: None,
            api_key: api.api_key.clone(),
            secret: api.secret.clone(),
            clock_offset_secs: Arc::default(),
            max_response_bytes: api.max_response_bytes,
            timeout: api.timeout,
            signed: Mutex::new(None),
        })
    }

    /// Keeps the clock correction in `offset_secs` (the daemon's status page shows that
    /// one), so that the value has one home.
    pub fn with_clock_offset(mut self, offset_secs: Arc<AtomicI64>) -> Self {
        self.clock_offset_secs = offset_secs;
        self
    }

    /// Queries of [`ApiClient::balance`] go to `url`.
    pub fn with_balance_url(mut self, url: &str) -> Result<Self, ApiError> {
        self.balance = Some(self.transport.target(url)?);
        Ok(self)
    }

    pub fn record_url(&self) -> String {
        self.record.url()
    }

    pub fn balance_url(&self) -> Option<String> {
        self.balance.as_ref().map(transport::Target::url)
    }

    /// Current correction applied to our clock when signing.
    pub fn clock_offset_secs(&self) -> i64 {
        self.clock_offset_secs.load(Ordering::Relaxed)
    }

    fn headers(&self) -> (HeaderMap, Sent) {
        let now = unix_now_secs() + self.clock_offset_secs();
        // A poisoned lock only means another query panicked mid-copy: the cache is
        // rebuilt below either way.
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        match signed.as_ref() {
            Some(s) if s.sent.timestamp_secs == now => (with_room(&s.headers), s.sent.clone()),
            _ => {
                let fresh = self.sign_headers(now);
                let copy = (with_room(&fresh.headers), fresh.sent.clone());
                *signed = Some(fresh);
                copy
            }
        }
    }

    fn sign_headers(&self, now: i64) -> Signed {
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
        Signed {
            headers,
            sent: Sent {
                signature: signature.into(),
                timestamp_secs: now,
            },
        }
    }

    /// Queries one order's record and classifies the answer.
    pub async fn query(&self, app_id: &str, order_id: &str) -> Query {
        let started = Instant::now();
        let body = serde_json::to_vec(&RecordRequest { app_id, order_id }).unwrap_or_default();
        let (headers, sent) = self.headers();
        let asked = Asked { order_id, sent };
        let exchange = self.exchange(body, headers, &asked);
        let (outcome, status_label, answered) =
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(answer) => answer,
                Err(_) => timed_out(self.timeout),
            };
        Query {
            outcome,
            status_label,
            answered,
            duration: started.elapsed(),
        }
    }

    /// One request and its answer, classified.
    async fn exchange(
        &self,
        body: Vec<u8>,
        headers: HeaderMap,
        asked: &Asked<'_>,
    ) -> (QueryOutcome, String, bool) {
        let answer = self
            .transport
            .send(
                hyper::Method::POST,
                &self.record,
                headers,
                body,
                self.max_response_bytes,
            )
            .await;
        match read_answer(answer, wire::decode_reply, |r| r.status) {
            Ok((reply, server_date)) => self.classify_reply(reply, server_date, asked),
            Err(failed) => failed,
        }
    }

    /// Queries the account's balance (`GET`, no body, signed like a record query).
    /// Without a balance URL ([`ApiClient::with_balance_url`]) nothing is sent.
    pub async fn balance(&self) -> BalanceQuery {
        let started = Instant::now();
        let Some(target) = &self.balance else {
            return BalanceQuery {
                outcome: BalanceOutcome::Failed(QueryOutcome::Transient {
                    retry_after: None,
                    detail: "no balance URL is configured".into(),
                }),
                status_label: "connect_error".into(),
                answered: false,
                duration: started.elapsed(),
            };
        };
        let (headers, sent) = self.headers();
        let exchange = async {
            let answer = self
                .transport
                .send(
                    hyper::Method::GET,
                    target,
                    headers,
                    Vec::new(),
                    self.max_response_bytes,
                )
                .await;
            match read_answer(answer, wire::decode_balance, |r| r.status) {
                Ok((reply, server_date)) => self.classify_balance(reply, server_date, &sent),
                Err((failed, label, answered)) => (BalanceOutcome::Failed(failed), label, answered),
            }
        };
        let (outcome, status_label, answered) =
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(answer) => answer,
                Err(_) => {
                    let (failed, label, answered) = timed_out(self.timeout);
                    (BalanceOutcome::Failed(failed), label, answered)
                }
            };
        BalanceQuery {
            outcome,
            status_label,
            answered,
            duration: started.elapsed(),
        }
    }

    fn classify_balance(
        &self,
        reply: wire::BalanceReply,
        server_date: Option<HeaderValue>,
        sent: &Sent,
    ) -> (BalanceOutcome, String, bool) {
        let outcome = match reply.status {
            0 => BalanceOutcome::Balance(reply.amounts),
            -13 => BalanceOutcome::Locked {
                reason: reply
                    .reason
                    .as_deref()
                    .map(|r| self.redact(r, sent))
                    .unwrap_or_default(),
            },
            status => BalanceOutcome::Failed(self.failure(
                status,
                reply.reason.as_deref(),
                server_date,
                sent,
            )),
        };
        (
            outcome,
            status_label(reply.status),
            plausible_status(reply.status),
        )
    }

    fn classify_reply(
        &self,
        reply: Reply,
        server_date: Option<HeaderValue>,
        asked: &Asked,
    ) -> (QueryOutcome, String, bool) {
        let outcome = match reply.status {
            0 => match reply.data {
                Some(record) if !record.is_empty() => {
                    // Another order's record counted as this one would count it twice
                    // and this one never: the answer is garbage (a mixed-up proxy or cache).
                    if let Some(other) = record
                        .order_id
                        .as_deref()
                        .filter(|id| *id != asked.order_id.trim())
                    {
                        return invalid_response(format!(
                            "the record is for order {:?}, not the one asked for",
                            redact_text(other, &[], None)
                        ));
                    }
                    QueryOutcome::Record(record)
                }
                _ => QueryOutcome::NoRecord,
            },
            status => self.failure(status, reply.reason.as_deref(), server_date, &asked.sent),
        };
        // A status outside the plausible range is garbage, not an answer.
        let answered = plausible_status(reply.status);
        (outcome, status_label(reply.status), answered)
    }

    /// What a non-zero status means, for any endpoint.
    fn failure(
        &self,
        status: i64,
        reason: Option<&str>,
        server_date: Option<HeaderValue>,
        sent: &Sent,
    ) -> QueryOutcome {
        // Provider text goes to logs and the status page: what it may echo of our
        // request goes first, at the source. Only read for statuses that show it (a
        // success's "success" is neither logged nor shown: not worth its copies).
        let reason = || reason.map(|r| self.redact(r, sent)).unwrap_or_default();
        match status {
            -1 | -2 => QueryOutcome::Rejected {
                status,
                reason: reason(),
            },
            -16 => {
                let offset = server_date
                    .as_ref()
                    .and_then(server_date_secs)
                    .map(|server| server - unix_now_secs());
                if let Some(offset) = offset {
                    self.clock_offset_secs.store(offset, Ordering::Relaxed);
                }
                QueryOutcome::ClockSkew {
                    offset_secs: offset,
                }
            }
            -18 => QueryOutcome::Transient {
                retry_after: None,
                detail: format!("status -18 (system error) {}", reason())
                    .trim()
                    .to_string(),
            },
            status => QueryOutcome::OtherStatus {
                status,
                reason: reason(),
            },
        }
    }
}

/// An HTTP answer read as the API's reply (with the server's `Date`), or what the
/// query failed with: no whole answer, an undecodable body, or an HTTP error without
/// the API's envelope. A 4xx that carries the envelope (`401` with status -1, say)
/// means what its status says; 5xx, 429 and bare error pages are transient.
// The failure is what a query returns anyway, matched at once: boxing it would cost
// an allocation per failed query for nothing.
#[allow(clippy::result_large_err)]
fn read_answer<T>(
    answer: Result<transport::Answer, transport::Failure>,
    decode: impl Fn(&[u8]) -> Result<T, wire::DecodeError>,
    status_of: impl Fn(&T) -> i64,
) -> Result<(T, Option<HeaderValue>), (QueryOutcome, String, bool)> {
    let answer = answer.map_err(|failure| transport_failure(&failure))?;
    let http_status = answer.status;
    if http_status.is_success() {
        return decode(&answer.body)
            .map(|reply| (reply, answer.date))
            .map_err(|e| invalid_response(e.to_string()));
    }
    match decode(&answer.body) {
        Ok(reply)
            if status_of(&reply) != 0
                && http_status.is_client_error()
                && http_status != hyper::StatusCode::TOO_MANY_REQUESTS =>
        {
            Ok((reply, answer.date))
        }
        _ => Err((
            QueryOutcome::Transient {
                retry_after: answer
                    .retry_after
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
                detail: format!("HTTP {}", http_status.as_u16()),
            },
            format!("http_{}", http_status.as_u16()),
            false,
        )),
    }
}

/// The order a query asked about and what its request carried.
struct Asked<'a> {
    order_id: &'a str,
    sent: Sent,
}

impl ApiClient {
    /// `text` without the request's signature, API key and timestamp (and the secret,
    /// should it ever appear), nor anything shaped like them.
    fn redact(&self, text: &str, sent: &Sent) -> String {
        redact_text(
            text,
            &[&sent.signature, &self.api_key, self.secret.expose()],
            Some(sent.timestamp_secs),
        )
    }
}

/// Longest provider text kept (logs and the status page need a sentence, not a page).
const MAX_PROVIDER_TEXT_CHARS: usize = 200;
const REDACTED: &str = "[redacted]";

/// Provider text made safe to log and show: every occurrence of `values` (ASCII case
/// ignored: signatures are hex in either case) is replaced, so is every run of 32 hex
/// digits (an MD5 signature, maybe of another request) and every 10-digit number
/// within a day of `timestamp_secs` (a Unix-seconds timestamp); control characters
/// become spaces (no forged log lines) and the text is cut to
/// [`MAX_PROVIDER_TEXT_CHARS`].
fn redact_text(text: &str, values: &[&str], timestamp_secs: Option<i64>) -> String {
    let mut out = text.to_string();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        out = replace_ignoring_ascii_case(&out, value, REDACTED);
    }
    let out = redact_runs(&out, |run| {
        let hex = run.len() == 32 && run.bytes().all(|b| b.is_ascii_hexdigit());
        let near_timestamp = run.len() == 10
            && run.bytes().all(|b| b.is_ascii_digit())
            && timestamp_secs
                .is_some_and(|ts| run.parse::<i64>().is_ok_and(|n| (n - ts).abs() <= 86_400));
        hex || near_timestamp
    });
    let mut cleaned: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_PROVIDER_TEXT_CHARS)
        .collect();
    if out.chars().count() > MAX_PROVIDER_TEXT_CHARS {
        cleaned.push('…');
    }
    cleaned.trim().to_string()
}

fn replace_ignoring_ascii_case(text: &str, needle: &str, with: &str) -> String {
    let (lower, needle_lower) = (text.to_ascii_lowercase(), needle.to_ascii_lowercase());
    // ASCII lowercasing keeps byte offsets, so positions in `lower` are positions in `text`.
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle_lower) {
        out.push_str(&text[at..at + found]);
        out.push_str(with);
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// Replaces each maximal run of ASCII alphanumerics for which `secret_like` holds.
fn redact_runs(text: &str, secret_like: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_ascii_alphanumeric() && i < text.len(), run_start) {
            (true, None) => run_start = Some(i),
            (true, Some(_)) => {}
            (false, start) => {
                if let Some(start) = start {
                    let run = &text[start..i];
                    out.push_str(if secret_like(run) { REDACTED } else { run });
                    run_start = None;
                }
                if i < text.len() {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The `Date` header as Unix seconds.
fn server_date_secs(date: &HeaderValue) -> Option<i64> {
    let date = date.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(date)
        .ok()
        .map(|d| d.timestamp())
}

/// An answer we cannot use: retried like any transient failure, and not proof that the
/// API answered.
fn invalid_response(detail: String) -> (QueryOutcome, String, bool) {
    (
        QueryOutcome::Transient {
            retry_after: None,
            detail,
        },
        "invalid_response".to_string(),
        false,
    )
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

/// No whole answer within `api.timeout`.
fn timed_out(timeout: Duration) -> (QueryOutcome, String, bool) {
    (
        QueryOutcome::Transient {
            retry_after: None,
            detail: format!(
                "timeout: no complete answer within {}",
                humantime::format_duration(timeout)
            ),
        },
        "timeout".to_string(),
        false,
    )
}

/// No whole answer: `connect_error` (connecting, sending, the head) or
/// `invalid_response` (the body), not proof that the API answered. The client's errors
/// name the URL but never headers, so the signature cannot leak here.
fn transport_failure(failure: &transport::Failure) -> (QueryOutcome, String, bool) {
    let label = match failure {
        transport::Failure::Connect(_) => "connect_error",
        transport::Failure::Body(_) | transport::Failure::TooLarge { .. } => "invalid_response",
    };
    (
        QueryOutcome::Transient {
            retry_after: None,
            detail: failure.to_string(),
        },
        label.to_string(),
        false,
    )
}

/// A copy of one second's signed headers with room for the two the transport adds
/// (`Host`, `User-Agent`): a clone is exactly full, and those inserts then grew it
/// twice on every query.
fn with_room(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len() + 2);
    for (name, value) in headers {
        copy.append(name.clone(), value.clone());
    }
    copy
}

/// A TLS acceptor for `localhost` with a certificate of its own (tests of https): the
/// certificate, to trust it or not, and the acceptor.
#[cfg(test)]
fn self_signed_tls() -> (
    rustls_pki_types::CertificateDer<'static>,
    tokio_rustls::TlsAcceptor,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let private = rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], private.into())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    (cert.der().clone(), acceptor)
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
    /// A raw HTTP server on loopback: each connection's request (one read: requests
    /// are small) is handed to `answer` with the socket. Returns the base URL.
    async fn raw_server<F, Fut>(answer: F) -> String
    where
        F: Fn(tokio::net::TcpStream, String) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    answer(socket, request).await;
                });
            }
        });
        format!("http://{addr}/otp")
    }

    async fn canned(status_line: &str, extra_headers: &str, body: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let response = format!(
            "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        );
        raw_server(move |mut socket, _request| {
            let response = response.clone();
            async move {
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        })
        .await
    }

    fn client(base_url: String) -> ApiClient {
        ApiClient::new(&test_settings(base_url)).unwrap()
    }

    fn test_settings(base_url: String) -> ApiSettings {
        ApiSettings {
            base_url,
            api_key: "key".into(),
            secret: Secret::new("secret"),
            timeout: Duration::from_secs(5),
            max_in_flight: 4,
            max_requests_per_second: 10,
            timezone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
            max_response_bytes: 4096,
        }
    }

    #[test]
    fn a_query_gets_the_signed_headers_with_room_for_the_transports_own() {
        let c = client("http://127.0.0.1:9".into());
        let (mut headers, _) = c.headers();
        let (cached, _) = c.headers();
        assert_eq!(headers, cached);
        assert!(headers["Sign"].is_sensitive());
        let room = headers.capacity();
        headers.insert(hyper::header::HOST, HeaderValue::from_static("example.com"));
        headers.insert(hyper::header::USER_AGENT, HeaderValue::from_static("agent"));
        assert_eq!(headers.capacity(), room, "grown after the copy");
    }

    #[tokio::test]
    async fn signed_headers_are_those_of_the_current_corrected_second() {
        let c = client("http://127.0.0.1:9".into());
        let timestamp = |h: &HeaderMap| h["Timestamp"].to_str().unwrap().to_string();
        let signed = |h: &HeaderMap| h["Sign"].to_str().unwrap().to_string();
        let (first, sent) = c.headers();
        assert_eq!(signed(&first), sign("key", "secret", &timestamp(&first)));
        assert_eq!(sent.timestamp_secs.to_string(), timestamp(&first));
        assert_eq!(&*sent.signature, signed(&first));
        // A correction (as a -16 teaches) is signed from the next query on, not from
        // the next second: the headers kept for a second are those of the clock as
        // corrected.
        c.clock_offset_secs.store(3600, Ordering::Relaxed);
        let (corrected, _) = c.headers();
        let ahead = timestamp(&corrected).parse::<i64>().unwrap()
            - timestamp(&first).parse::<i64>().unwrap();
        assert!((3600..3603).contains(&ahead), "{ahead}");
        assert_eq!(
            signed(&corrected),
            sign("key", "secret", &timestamp(&corrected))
        );
        assert_eq!(corrected["Api-Key"], "key");
        assert!(corrected["Sign"].is_sensitive());
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

    /// Serves every connection with `head` and then `body` repeated `repeat` times, or
    /// for ever (`None`), as one chunked body: a provider whose answer has no end.
    async fn streaming(head: &'static str, body: &'static str, repeat: Option<usize>) -> String {
        use tokio::io::AsyncWriteExt;
        raw_server(move |mut socket, _request| async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{head}\r\n",
                head.len()
            );
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{body}\r\n", body.len());
            let mut sent = 0;
            while repeat.is_none_or(|n| sent < n) {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return; // The client stopped reading: what the cap is for.
                }
                sent += 1;
            }
            let _ = socket.write_all(b"2\r\n\"}\r\n0\r\n\r\n").await;
        })
        .await
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_an_invalid_response_and_is_not_read_whole() {
        // The client's cap is 4096 bytes. A declared length over it is refused unread.
        let padding = "x".repeat(5000);
        let big = format!(
            r#"{{"status":"0","padding":"{padding}","data":{{"verifications":{{"matched":0}}}}}}"#
        );
        let q = answer("200 OK", "", &big).await;
        assert_eq!(q.status_label, "invalid_response", "{:?}", q.outcome);
        assert!(!q.answered);
        let QueryOutcome::Transient { detail, .. } = &q.outcome else {
            panic!("expected a transient failure, got {:?}", q.outcome);
        };
        assert!(detail.contains("api.max_response_bytes"), "{detail}");
        // An error page over the cap is no different.
        let q = answer("503 Service Unavailable", "", &big).await;
        assert_eq!(q.status_label, "invalid_response");

        // A body without a length that never ends: read only up to the cap, so the
        // query ends long before its 5 s timeout instead of reading for ever.
        let url = streaming(r#"{"status":"0","x":""#, "0123456789abcdef", None).await;
        let started = Instant::now();
        let q = client(url).query("app", "order-1").await;
        assert_eq!(q.status_label, "invalid_response", "{:?}", q.outcome);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );

        // Under the cap, a chunked body is read whole as before.
        let url = streaming(r#"{"status":"0","data":null,"x":""#, "0123456789", Some(10)).await;
        let q = client(url).query("app", "order-1").await;
        assert_eq!(q.outcome, QueryOutcome::NoRecord, "{q:?}");
    }

    #[tokio::test]
    async fn a_record_of_another_order_is_an_invalid_response() {
        let record = |order_id: &str| {
            format!(
                r#"{{"status":"0","data":{{"orderId":{order_id},"verifications":{{"matched":0}}}}}}"#
            )
        };
        let q = answer("200 OK", "", &record(r#""order-2""#)).await;
        assert_eq!(q.status_label, "invalid_response", "{:?}", q.outcome);
        assert!(!q.answered);
        let QueryOutcome::Transient { detail, .. } = &q.outcome else {
            panic!("expected a transient failure, got {:?}", q.outcome);
        };
        assert!(detail.contains("order-2"), "{detail}");
        // The order asked for, or a record that does not say, is this order's record.
        for id in [r#""order-1""#, r#"" order-1 ""#, "null"] {
            let q = answer("200 OK", "", &record(id)).await;
            assert_eq!(q.status_label, "0", "{id}");
            assert!(
                matches!(q.outcome, QueryOutcome::Record(_)),
                "{id}: {:?}",
                q.outcome
            );
        }
    }

    /// Answers every query with status `status` and a `reason` that echoes the
    /// request's `Sign`, `Timestamp` and `Api-Key` headers (upper-cased too), as a
    /// careless gateway might.
    async fn echoing(status: i64) -> String {
        use tokio::io::AsyncWriteExt;
        raw_server(move |mut socket, request| async move {
            let header = |name: &str| {
                request
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let (sign, ts, key) = (header("sign"), header("timestamp"), header("api-key"));
            let reason = format!(
                "denied: Sign={sign} ({}) Timestamp: {ts} Api-Key={key};\nFAKE LOG LINE",
                sign.to_uppercase()
            );
            let body = serde_json::json!({"status": status, "reason": reason}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        })
        .await
    }

    /// https goes through TLS with the server's certificate checked against the public
    /// roots: a certificate no public root signed is refused before anything is sent
    /// (`connect_error`, naming the certificate), never taken for an answer.
    #[tokio::test]
    async fn https_checks_the_servers_certificate() {
        let (_, acceptor) = self_signed_tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(socket).await;
                });
            }
        });
        let q = client(format!("https://127.0.0.1:{port}"))
            .query("app", "order-1")
            .await;
        assert_eq!(q.status_label, "connect_error", "{:?}", q.outcome);
        assert!(!q.answered);
        let QueryOutcome::Transient { detail, .. } = &q.outcome else {
            panic!("{:?}", q.outcome)
        };
        assert!(detail.contains("certificate"), "{detail}");
    }

    #[tokio::test]
    async fn provider_text_loses_what_it_echoes_of_the_request() {
        let api_key = "bDqJFiq9";
        for status in [-1, -22, -18] {
            let api = ApiSettings {
                api_key: api_key.into(),
                ..test_settings(echoing(status).await)
            };
            let client = ApiClient::new(&api).unwrap();
            let q = client.query("app", "order-1").await;
            let text = match &q.outcome {
                QueryOutcome::Rejected { reason, .. }
                | QueryOutcome::OtherStatus { reason, .. } => reason.clone(),
                QueryOutcome::Transient { detail, .. } => detail.clone(),
                other => panic!("status {status}: {other:?}"),
            };
            let now = unix_now_secs();
            let ts_near_now = (now - 5..=now + 5).any(|t| text.contains(&t.to_string()));
            assert!(!ts_near_now, "status {status}: timestamp in {text:?}");
            assert!(!text.contains(api_key), "status {status}: {text:?}");
            let hex_run = text
                .split(|c: char| !c.is_ascii_hexdigit())
                .any(|run| run.len() >= 32);
            assert!(!hex_run, "status {status}: signature in {text:?}");
            assert!(text.starts_with("denied: Sign=[redacted] ([redacted]) Timestamp: [redacted] Api-Key=[redacted];")
                || text.starts_with("status -18 (system error) denied: Sign=[redacted]"),
                "status {status}: {text:?}");
            assert!(
                !text.contains('\n'),
                "status {status}: a forged log line in {text:?}"
            );
        }
    }

    /// A balance client against a server that records the request it got and answers
    /// `status_line`/`body`.
    async fn balance_answer(
        status_line: &'static str,
        extra_headers: &'static str,
        body: &'static str,
    ) -> (BalanceQuery, String, i64) {
        use tokio::io::AsyncWriteExt;
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let base = raw_server(move |mut socket, request| {
            let seen_tx = seen_tx.clone();
            async move {
                let _ = seen_tx.send(request);
                let response = format!(
                    "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        })
        .await;
        let url = base.replace("/otp", "/sms/getBalance");
        let client = client(base).with_balance_url(&url).unwrap();
        let q = client.balance().await;
        let request = seen_rx.try_recv().unwrap_or_default();
        (q, request, client.clock_offset_secs())
    }

    #[tokio::test]
    async fn a_balance_query_is_a_signed_get_without_body_at_the_balance_url() {
        let (q, request, _) = balance_answer(
            "200 OK",
            "",
            r#"{"status":"0","reason":"success","balance":"12.3400","gift":"0.5000","credit":"0"}"#,
        )
        .await;
        assert!(
            request.starts_with("GET /sms/getBalance HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        let ts = lower
            .lines()
            .find_map(|l| l.strip_prefix("timestamp: "))
            .expect("a Timestamp header")
            .trim()
            .to_string();
        assert!(lower.contains("api-key: key\r\n"), "{request}");
        assert!(
            lower.contains(&format!("sign: {}\r\n", sign("key", "secret", &ts))),
            "{request}"
        );
        assert!(!lower.contains("content-length: 1"), "no body: {request}");
        assert_eq!(q.status_label, "0");
        assert!(q.answered);
        assert_eq!(
            q.outcome,
            BalanceOutcome::Balance([Amount::Usd(12.34), Amount::Usd(0.5), Amount::Usd(0.0)])
        );
    }

    #[tokio::test]
    async fn balance_statuses_mean_what_record_statuses_mean_and_minus_13_is_locked() {
        let (q, _, _) =
            balance_answer("200 OK", "", r#"{"status":"-13","reason":"user locked"}"#).await;
        assert_eq!(
            q.outcome,
            BalanceOutcome::Locked {
                reason: "user locked".into()
            }
        );
        assert_eq!(q.status_label, "-13");
        assert!(q.answered);
        let (q, _, _) = balance_answer("200 OK", "", r#"{"status":"-1","reason":"auth"}"#).await;
        assert_eq!(
            q.outcome,
            BalanceOutcome::Failed(QueryOutcome::Rejected {
                status: -1,
                reason: "auth".into()
            })
        );
        // A 401 carrying the API's envelope means its status, as for records.
        let (q, _, _) =
            balance_answer("401 Unauthorized", "", r#"{"status":-2,"reason":"ip"}"#).await;
        assert!(
            matches!(
                q.outcome,
                BalanceOutcome::Failed(QueryOutcome::Rejected { status: -2, .. })
            ),
            "{:?}",
            q.outcome
        );
        let (q, _, _) = balance_answer("200 OK", "", r#"{"status":"-18","reason":"busy"}"#).await;
        assert!(
            matches!(
                q.outcome,
                BalanceOutcome::Failed(QueryOutcome::Transient { .. })
            ),
            "{:?}",
            q.outcome
        );
        assert!(q.answered, "-18 is the API's own answer");
        let (q, _, corrected) = balance_answer(
            "200 OK",
            "date: Thu, 01 Jan 2037 00:00:00 GMT\r\n",
            r#"{"status":"-16","reason":"timestamp expired"}"#,
        )
        .await;
        let BalanceOutcome::Failed(QueryOutcome::ClockSkew {
            offset_secs: Some(offset),
        }) = q.outcome
        else {
            panic!("{:?}", q.outcome)
        };
        assert!(offset > 300 * 24 * 3600, "{offset}");
        assert_eq!(
            corrected, offset,
            "the clock that signs every query is corrected"
        );
        let (q, _, _) = balance_answer("502 Bad Gateway", "", "<html>bad gateway</html>").await;
        assert_eq!(q.status_label, "http_502");
        assert!(!q.answered);
        let (q, _, _) = balance_answer("200 OK", "", "<html>maintenance</html>").await;
        assert_eq!(q.status_label, "invalid_response");
        assert!(!q.answered);
    }

    #[tokio::test]
    async fn a_locked_reason_loses_what_it_echoes_of_the_request() {
        let base = echoing(-13).await;
        let url = base.replace("/otp", "/sms/getBalance");
        let api = ApiSettings {
            api_key: "bDqJFiq9".into(),
            ..test_settings(base)
        };
        let q = ApiClient::new(&api)
            .unwrap()
            .with_balance_url(&url)
            .unwrap()
            .balance()
            .await;
        let BalanceOutcome::Locked { reason } = &q.outcome else {
            panic!("{:?}", q.outcome)
        };
        assert!(!reason.contains("bDqJFiq9"), "{reason}");
        assert!(reason.starts_with("denied: Sign=[redacted]"), "{reason}");
    }

    #[test]
    fn provider_text_is_redacted_bounded_and_on_one_line() {
        let sign = "5e05d651d20b87515084ccf02b24c04f";
        let r = |text: &str| redact_text(text, &[sign, "bDqJFiq9", "s3cret"], Some(1_630_468_800));
        assert_eq!(r("success"), "success");
        assert_eq!(
            r("sign 5E05D651D20B87515084CCF02B24C04F"),
            "sign [redacted]"
        );
        assert_eq!(
            r("other sign 0123456789abcdef0123456789abcdef!"),
            "other sign [redacted]!"
        );
        assert_eq!(
            r("ts=1630468805,key=bdqjfiq9"),
            "ts=[redacted],key=[redacted]"
        );
        assert_eq!(
            r("order 1234567890 at 1630468800123"),
            "order 1234567890 at 1630468800123",
            "numbers far from the timestamp, or not 10 digits, stay"
        );
        assert_eq!(r("leak s3cret\r\nINFO fake"), "leak [redacted]  INFO fake");
        let long = r(&"é".repeat(500));
        assert_eq!(long.chars().count(), MAX_PROVIDER_TEXT_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(redact_text("", &[""], None), "");
    }

    #[test]
    fn status_labels_stay_bounded() {
        assert_eq!(status_label(0), "0");
        assert_eq!(status_label(-18), "-18");
        assert_eq!(status_label(123456789), "invalid_response");
    }
}
