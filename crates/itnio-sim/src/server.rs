//! The simulator's HTTP side: routes, the provider's envelope, fault injection, the
//! book of orders and the account that pays for them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, DATE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::account::{Account, AccountSnapshot, AccountUpdate, BalanceTooLow, Usd};
use super::auth;
use super::faults::{Faults, Injected};
use super::oracle::{self, OracleRules};
use super::profile::{normalize_receiver, profile_for_receiver, supported_countries, Channel};
use super::record::{render, render_unknown};
use super::secret::ApiSecret;
use super::seed::derive_seed;
use super::timeline::{Generator, Order};
use super::truth::{self, Truth, TruthOrder};
use super::OracleCount;

pub const RECORD_PATH: &str = "/otp/verification/orderId/record";
pub const SEND_PATH: &str = "/otp/verification/send";
const TRUTH_PATH: &str = "/sim/truth";
const FAULTS_PATH: &str = "/sim/faults";
const UNSENT_PATH: &str = "/sim/unsent";
/// The provider's balance query: at the host's root, not under `/otp`.
pub const BALANCE_PATH: &str = "/sms/getBalance";
const ACCOUNT_PATH: &str = "/sim/account";
/// Larger request bodies are refused; real ones are a few dozen bytes.
const MAX_BODY: usize = 1 << 20;
/// The provider's order ids, like the exporter's spool, are short visible ASCII.
pub const MAX_ORDER_ID_LEN: usize = 64;
/// How long in-flight requests may take to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

type Resp = Response<Full<Bytes>>;

/// Fixed settings of one simulator.
#[derive(Clone)]
pub struct Settings {
    pub api_key: String,
    pub api_secret: ApiSecret,
    pub seed: u64,
    pub scale: f64,
    pub validity_ms: u32,
    pub quirks: bool,
    pub clock_offset_ms: i64,
}

/// One line of the book: an order, or an id that has no record: handed out but never
/// sent, or refused with `-10` at its send.
#[derive(Clone)]
enum Entry {
    Sent(Arc<Order>),
    Unsent(Arc<(String, String)>),
}

/// Every order in arrival order, with an index by id. Orders never change after
/// their send, so readers take `Arc`s and render outside the lock.
#[derive(Default)]
struct Book {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Book {
    fn get(&self, order_id: &str) -> Option<Arc<Order>> {
        match self.entries.get(*self.index.get(order_id)?)? {
            Entry::Sent(order) => Some(order.clone()),
            Entry::Unsent(_) => None,
        }
    }

    fn is_sent(&self, order_id: &str) -> bool {
        self.get(order_id).is_some()
    }

    /// `false` when an order with this id was already sent.
    fn insert_sent(&mut self, order: Order) -> bool {
        match self.index.get(&order.order_id) {
            Some(&i) => match self.entries.get(i) {
                Some(Entry::Unsent(_)) => {
                    self.entries[i] = Entry::Sent(Arc::new(order));
                    true
                }
                _ => false,
            },
            None => {
                self.index
                    .insert(order.order_id.clone(), self.entries.len());
                self.entries.push(Entry::Sent(Arc::new(order)));
                true
            }
        }
    }

    fn insert_unsent(&mut self, order_id: String, app_id: String) {
        if self.index.contains_key(&order_id) {
            return;
        }
        self.index.insert(order_id.clone(), self.entries.len());
        self.entries
            .push(Entry::Unsent(Arc::new((order_id, app_id))));
    }
}

/// Everything the routes share.
pub struct State {
    settings: Settings,
    started: Instant,
    /// The system clock (no `--clock-offset`) at `started`, for outage start times.
    started_unix_ms: i64,
    faults: RwLock<Arc<Faults>>,
    fault_rng: Mutex<StdRng>,
    /// Locked after `book` when both are needed (a send), never before it.
    book: Mutex<Book>,
    account: Mutex<Account>,
}

/// The system clock in Unix milliseconds.
fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new(settings: Settings, faults: Faults, account: Account) -> State {
        let fault_rng = StdRng::seed_from_u64(derive_seed(settings.seed, "faults", ""));
        State {
            settings,
            started: Instant::now(),
            started_unix_ms: system_now_ms(),
            faults: RwLock::new(Arc::new(faults)),
            fault_rng: Mutex::new(fault_rng),
            book: Mutex::new(Book::default()),
            account: Mutex::new(account),
        }
    }

    /// The simulator's clock: the system clock shifted by `--clock-offset`.
    pub fn now_ms(&self) -> i64 {
        system_now_ms().saturating_add(self.settings.clock_offset_ms)
    }

    pub fn started_unix_ms(&self) -> i64 {
        self.started_unix_ms
    }

    pub fn scale(&self) -> f64 {
        self.settings.scale
    }

    pub fn faults(&self) -> Arc<Faults> {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(faults);
    }

    pub fn account(&self) -> AccountSnapshot {
        lock(&self.account).snapshot()
    }

    pub fn update_account(&self, update: &AccountUpdate) -> AccountSnapshot {
        let mut account = lock(&self.account);
        account.update(update);
        account.snapshot()
    }

    /// The oracle's count of every order sent (or handed out unsent) so far.
    pub fn oracle_queries(&self, rules: &OracleRules) -> Vec<OracleCount> {
        let entries = lock(&self.book).entries.clone();
        entries
            .iter()
            .map(|e| match e {
                Entry::Sent(order) => OracleCount {
                    order_id: order.order_id.clone(),
                    outcome: truth::outcome(order),
                    queries: oracle::sent_queries(&order.timeline, self.settings.scale, rules),
                },
                Entry::Unsent(u) => OracleCount {
                    order_id: u.0.clone(),
                    outcome: "not_found",
                    queries: oracle::unsent_queries(rules),
                },
            })
            .collect()
    }

    /// The ground truth of every order sent (or handed out unsent) so far.
    pub fn truth(&self) -> Truth {
        let entries = lock(&self.book).entries.clone();
        Truth {
            orders: entries
                .iter()
                .map(|e| match e {
                    Entry::Sent(order) => TruthOrder::of(order),
                    Entry::Unsent(u) => TruthOrder::not_found(&u.0, &u.1),
                })
                .collect(),
        }
    }

    /// Routes one request; every answer carries `Date` from the simulator's clock.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let mut resp = match (&method, path.as_str()) {
            (&Method::POST, RECORD_PATH) => self.record(req).await,
            (&Method::POST, SEND_PATH) => self.send(req).await,
            (&Method::GET, TRUTH_PATH) => self.get_truth(),
            (&Method::GET, FAULTS_PATH) => json_response(StatusCode::OK, &*self.faults()),
            (&Method::PUT, FAULTS_PATH) => self.put_faults(req).await,
            (&Method::POST, UNSENT_PATH) => self.unsent(req).await,
            (&Method::GET, BALANCE_PATH) => self.balance(req.headers()),
            (&Method::GET, ACCOUNT_PATH) => json_response(StatusCode::OK, &self.account()),
            (&Method::PUT, ACCOUNT_PATH) => self.put_account(req).await,
            (&Method::GET, "/") => text(
                StatusCode::OK,
                "ITNIO OTP API simulator: POST /otp/verification/send, POST /otp/verification/orderId/record, GET /sms/getBalance, GET /sim/truth, GET|PUT /sim/faults, POST /sim/unsent, GET|PUT /sim/account\n",
            ),
            (
                _,
                RECORD_PATH | SEND_PATH | TRUTH_PATH | FAULTS_PATH | UNSENT_PATH | BALANCE_PATH
                | ACCOUNT_PATH | "/",
            ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        if let Some(date) = http_date(self.now_ms()) {
            resp.headers_mut().insert(DATE, date);
        }
        debug!(%method, %path, status = resp.status().as_u16(), "simulator request");
        resp
    }

    /// The provider's envelope refusing a request whose signature headers fail the
    /// check against the simulator's clock; `None` for a good signature.
    fn auth_refusal(&self, headers: &hyper::HeaderMap) -> Option<Resp> {
        let s = &self.settings;
        auth::check(
            headers,
            &s.api_key,
            s.api_secret.expose(),
            self.now_ms() / 1000,
        )
        .err()
        .map(|failure| envelope(failure.status(), &failure.reason()))
    }

    /// `POST /otp/verification/orderId/record`.
    async fn record(&self, req: Request<Incoming>) -> Resp {
        let faults = self.faults();
        let draw = faults.draw(&mut *lock(&self.fault_rng));
        if let Some(delay) = draw.delay {
            tokio::time::sleep(delay).await;
        }
        // Faults of the provider's front proxy come before the application sees anything.
        match draw.injected {
            Injected::Http(code) => return http_error(code),
            Injected::RateLimited => {
                let mut resp = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
            _ => {}
        }
        let (parts, body) = req.into_parts();
        let body = read_body(body).await;
        if faults.ip_restricted {
            return envelope("-2", "IP restricted");
        }
        if let Some(refusal) = self.auth_refusal(&parts.headers) {
            return refusal;
        }
        let s = &self.settings;
        if faults.auth_outage {
            return envelope("-1", "account authentication error");
        }
        let order_id = match parse_body(body.as_deref(), record_order_id) {
            Ok(id) => id,
            Err(reason) => return envelope("-22", &reason),
        };
        if let Injected::Status(status) = draw.injected {
            return envelope(&status.code().to_string(), status.reason());
        }
        let order = lock(&self.book).get(&order_id);
        let data = match order {
            Some(order) => render(&order, self.now_ms(), s.scale),
            None => render_unknown(&order_id, s.seed, s.quirks),
        };
        let reply = json!({ "status": "0", "reason": "success", "data": data });
        let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
        if draw.injected == Injected::InvalidBody {
            bytes.truncate(bytes.len() / 2);
        }
        json_bytes(StatusCode::OK, bytes)
    }

    /// `POST /otp/verification/send`: draws the order's whole timeline now and charges
    /// the account its whole price (see [`crate::account`]); an account that cannot
    /// pay refuses the send with `-10`, and the id is booked as having no record, so
    /// that the truth expects `not_found` for it whoever sent it.
    async fn send(&self, req: Request<Incoming>) -> Resp {
        let (parts, body) = req.into_parts();
        let body = read_body(body).await;
        if let Some(refusal) = self.auth_refusal(&parts.headers) {
            return refusal;
        }
        let s = &self.settings;
        let request = match parse_body(body.as_deref(), parse_send) {
            Ok(request) => request,
            Err(reason) => return envelope("-22", &reason),
        };
        let faults = self.faults();
        let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let outage = |country: &str, channel: Channel| {
            faults.outage_hits(country, channel, elapsed_ms, s.scale)
        };
        let generator = Generator {
            seed: s.seed,
            validity_ms: s.validity_ms,
            quirks: s.quirks,
            outage: &outage,
        };
        let timeline = generator.generate(&request.order_id, request.profile, request.channel);
        let verification_id = format!(
            "{:016x}",
            derive_seed(s.seed, "verification", &request.order_id)
        );
        let order = Order {
            order_id: request.order_id,
            app_id: request.app_id,
            receiver: request.receiver,
            sent_at_ms: self.now_ms(),
            timeline,
        };
        let order_id = order.order_id.clone();
        let price = Usd::from_units(order.timeline.billed_units());
        {
            let mut book = lock(&self.book);
            // A duplicate is refused before any charge: it never reaches billing.
            if book.is_sent(&order_id) {
                return envelope("-22", "parameter error: duplicate orderId");
            }
            if let Err(refusal) = lock(&self.account).charge(price, system_now_ms()) {
                book.insert_unsent(order_id.clone(), order.app_id);
                drop(book);
                debug!(order_id = %order_id, %refusal, "simulated send refused");
                return envelope(BalanceTooLow::STATUS, BalanceTooLow::REASON);
            }
            book.insert_sent(order);
        }
        debug!(order_id = %order_id, %price, "simulated order sent");
        json_response(
            StatusCode::OK,
            &json!({ "status": "0", "reason": "success", "data": { "verificationId": verification_id } }),
        )
    }

    /// `GET /sms/getBalance`: the account's pots, signed like every call. The scenario's
    /// `balance_status` replaces the answer: `-2` before the signature is looked at (the
    /// provider's IP check comes first), the others after it, so that a bad signature
    /// still answers for itself.
    fn balance(&self, headers: &hyper::HeaderMap) -> Resp {
        let injected = self.faults().balance_status;
        if let Some(status) = injected.filter(|s| s.code() == -2) {
            return envelope("-2", status.reason());
        }
        if let Some(refusal) = self.auth_refusal(headers) {
            return refusal;
        }
        if let Some(status) = injected {
            return envelope(&status.code().to_string(), status.reason());
        }
        let account = self.account();
        json_response(
            StatusCode::OK,
            &BalanceAnswer {
                status: "0",
                reason: "success",
                balance: account.balance,
                gift: account.gift,
                credit: account.credit,
            },
        )
    }

    /// `PUT /sim/account`: sets the pots the body names (JSON or YAML, amounts as
    /// decimal strings or numbers), e.g. `{"balance": "50"}` to top up.
    async fn put_account(&self, req: Request<Incoming>) -> Resp {
        let Some(body) = read_body(req.into_body()).await else {
            return text(StatusCode::BAD_REQUEST, "unreadable body\n");
        };
        let update = std::str::from_utf8(&body)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|t| serde_yaml::from_str::<AccountUpdate>(t).map_err(|e| e.to_string()))
            .and_then(|u| {
                // An update that changes nothing is more likely a mistake than a wish.
                if u == AccountUpdate::default() {
                    Err("it names none of balance, gift, credit".to_string())
                } else {
                    Ok(u)
                }
            });
        match update {
            Ok(update) => {
                let account = self.update_account(&update);
                info!(
                    balance = %account.balance,
                    gift = %account.gift,
                    credit = %account.credit,
                    "simulated account changed"
                );
                json_response(StatusCode::OK, &account)
            }
            Err(detail) => text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "invalid account update: {detail} (expected e.g. {{\"balance\": \"50\", \"gift\": \"0\", \"credit\": \"0\"}})\n"
                ),
            ),
        }
    }

    fn get_truth(&self) -> Resp {
        json_response(StatusCode::OK, &self.truth())
    }

    /// `PUT /sim/faults`: the body is a whole scenario (YAML or JSON).
    async fn put_faults(&self, req: Request<Incoming>) -> Resp {
        let Some(body) = read_body(req.into_body()).await else {
            return text(StatusCode::BAD_REQUEST, "unreadable body\n");
        };
        let Ok(text_body) = std::str::from_utf8(&body) else {
            return text(StatusCode::BAD_REQUEST, "scenario is not UTF-8\n");
        };
        match Faults::parse(text_body) {
            Ok(faults) => {
                info!(?faults, "fault scenario replaced");
                self.set_faults(faults);
                json_response(StatusCode::OK, &*self.faults())
            }
            Err(detail) => text(
                StatusCode::BAD_REQUEST,
                &format!("invalid scenario: {detail}\n"),
            ),
        }
    }

    /// `POST /sim/unsent`: the traffic generator registers an id it wrote to the spool
    /// without sending it, so that the truth can expect `not_found`.
    async fn unsent(&self, req: Request<Incoming>) -> Resp {
        let parsed = read_body(req.into_body())
            .await
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| {
                let order_id = order_id_field(&v).ok()?;
                let app_id = v
                    .get("appId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                Some((order_id, app_id))
            });
        match parsed {
            Some((order_id, app_id)) => {
                lock(&self.book).insert_unsent(order_id, app_id);
                json_response(StatusCode::OK, &json!({ "status": "0" }))
            }
            None => text(
                StatusCode::BAD_REQUEST,
                "expected {\"orderId\": \"..\", \"appId\": \"..\"}\n",
            ),
        }
    }
}

/// A balance query's answer, its fields in the provider's order (a `json!` map would
/// sort them).
#[derive(serde::Serialize)]
struct BalanceAnswer {
    status: &'static str,
    reason: &'static str,
    balance: Usd,
    gift: Usd,
    credit: Usd,
}

/// A validated send request.
struct SendRequest {
    order_id: String,
    app_id: String,
    receiver: String,
    profile: &'static super::profile::Profile,
    channel: Channel,
}

fn order_id_field(v: &Value) -> Result<String, &'static str> {
    let id = match v.get("orderId") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("parameter error: orderId is required"),
    };
    if id.is_empty() || id.len() > MAX_ORDER_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("parameter error: orderId must be 1 to 64 visible ASCII characters");
    }
    Ok(id)
}

/// A provider request body through `parse`; the error is the reason of the -22
/// refusal for an unreadable or invalid body.
fn parse_body<T, E: Into<String>>(
    body: Option<&[u8]>,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, String> {
    let body = body.ok_or("parameter error: unreadable body")?;
    parse(body).map_err(Into::into)
}

fn record_order_id(body: &[u8]) -> Result<String, &'static str> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "parameter error: body is not JSON")?;
    order_id_field(&value)
}

fn parse_send(body: &[u8]) -> Result<SendRequest, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("parameter error: body is not JSON ({e})"))?;
    let order_id = order_id_field(&value)?;
    let app_id = match value.get("appId") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("parameter error: appId must be a string".into()),
    };
    let to = value
        .get("to")
        .and_then(Value::as_str)
        .ok_or("parameter error: to is required")?;
    let receiver = normalize_receiver(to)
        .ok_or_else(|| format!("parameter error: to {to:?} is not a phone number"))?;
    let profile = profile_for_receiver(&receiver).ok_or_else(|| {
        format!(
            "parameter error: destination +{receiver} is not simulated (simulated: {})",
            supported_countries()
        )
    })?;
    let channel = match value.get("channel") {
        None | Some(Value::Null) => Channel::Sms,
        Some(Value::String(s)) if s.trim().is_empty() => Channel::Sms,
        Some(Value::String(s)) => Channel::parse(s)
            .ok_or_else(|| format!("parameter error: channel {s:?} is not sms, call or sna"))?,
        Some(_) => return Err("parameter error: channel must be a string".into()),
    };
    Ok(SendRequest {
        order_id,
        app_id,
        receiver,
        profile,
        channel,
    })
}

async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// `Date` in IMF-fixdate form.
fn http_date(unix_ms: i64) -> Option<HeaderValue> {
    let t = DateTime::<Utc>::from_timestamp_millis(unix_ms)?;
    HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(status, body),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot render JSON: {e}\n"),
        ),
    }
}

/// The provider's failure envelope: HTTP 200 with a non-zero `status`.
fn envelope(status: &str, reason: &str) -> Resp {
    json_response(
        StatusCode::OK,
        &json!({ "status": status, "reason": reason }),
    )
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// What a failing proxy in front of the provider answers.
fn http_error(code: u16) -> Resp {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>\n"
    ))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// Accepts connections until `stop` changes, then lets in-flight requests finish
/// (for at most [`DRAIN_TIMEOUT`]).
pub async fn serve(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small JSON answers: do not let Nagle delay them.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, state.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "simulator cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!("simulator shutdown: aborting connections still busy");
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(state.handle(req).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(error = %e, "simulator connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
