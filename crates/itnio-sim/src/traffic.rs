//! The traffic generator of `demo`: sends OTPs to the simulator at a steady rate and
//! writes their ids to the exporter's spool, like an issuing application would.
//!
//! Spool files are JSON lines `{"orderId","appId","issuedAt"}` (issuedAt: RFC 3339, the
//! local clock just before the send), written whole under a hidden temporary name and
//! renamed, so that the spool scanner never reads half a file. A share of the ids
//! (`unknown_ratio`) is written without being sent, and registered with the simulator
//! (`POST /sim/unsent`) so that its truth expects `not_found`.
//!
//! A send refused with `-10` (balance too low) is still written to the spool, as an
//! issuing application does: it made the id and hands it over whatever the provider
//! answered, which is why the exporter sees such ids as `not_found` minutes later. The
//! simulator booked the id as having no record when it refused the send, so its truth
//! already expects `not_found` (no `POST /sim/unsent` needed: the send told it). Other
//! refusals (the simulator unreachable, a bad request) leave the id out of the spool:
//! they are the generator's failures, not traffic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::account::Usd;
use super::auth::sign;
use super::error::SimError;
use super::faults::OutageKind;
use super::profile::{normalize_receiver, profile_for_receiver, Channel};
use super::secret::ApiSecret;
use super::seed::derive_seed;
use super::timeline::Generator;

/// Options of [`run_traffic`].
#[derive(Clone, Debug)]
pub struct TrafficOptions {
    /// The simulator's `base_url` (`http://ADDR/otp`).
    pub base_url: String,
    pub api_key: String,
    pub api_secret: ApiSecret,
    pub spool_dir: PathBuf,
    /// Apps to spread orders over; empty: lines without `appId` (the exporter's
    /// `default_app` applies).
    pub app_ids: Vec<String>,
    pub orders_per_second: f64,
    pub seed: u64,
    /// Stop after this many ids (sent and unknown); `None`: forever.
    pub max_orders: Option<u64>,
    /// Share of ids written to the spool that were never sent (=> `not_found`).
    pub unknown_ratio: f64,
}

/// Destination mix of the demo (calling code, weight): India-heavy like many OTP users.
const DESTINATIONS: &[(&str, u32)] = &[
    ("91", 30),
    ("62", 12),
    ("55", 10),
    ("234", 8),
    ("63", 8),
    ("1", 10),
    ("1671", 1),
    ("44", 6),
    ("52", 6),
    ("84", 5),
    ("86", 4),
];
/// North American area codes away from Guam's 671.
const US_AREA_CODES: &[&str] = &["212", "312", "415", "646", "713"];
/// A spool file is written at least this often while orders flow.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const FLUSH_LINES: usize = 500;

/// A receiver number (E.164 with `+`) drawn from the destination mix.
fn draw_receiver<R: Rng>(rng: &mut R) -> String {
    let total: u32 = DESTINATIONS.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.gen_range(0..total);
    let mut code = DESTINATIONS[0].0;
    for (c, w) in DESTINATIONS {
        if ticket < *w {
            code = c;
            break;
        }
        ticket -= w;
    }
    match code {
        "1" => format!(
            "+1{}{:07}",
            US_AREA_CODES[rng.gen_range(0..US_AREA_CODES.len())],
            rng.gen_range(0..10_000_000u32)
        ),
        "1671" => format!("+1671{:07}", rng.gen_range(0..10_000_000u32)),
        _ => format!(
            "+{code}{}{:09}",
            rng.gen_range(7..=9u32),
            rng.gen_range(0..1_000_000_000u32)
        ),
    }
}

/// The requested channel: mostly the default SMS-first flow.
fn draw_channel<R: Rng>(rng: &mut R) -> Option<&'static str> {
    match rng.gen_range(0..100) {
        0..80 => None,
        80..92 => Some("call"),
        _ => Some("sna"),
    }
}

/// Batches spool lines into files.
struct SpoolWriter {
    dir: PathBuf,
    run: u64,
    seq: u64,
    lines: String,
    count: usize,
    last_flush: Instant,
}

impl SpoolWriter {
    fn push(&mut self, line: &Value) {
        self.lines.push_str(&line.to_string());
        self.lines.push('\n');
        self.count += 1;
    }

    fn flush_if_due(&mut self) -> Result<(), SimError> {
        if self.count >= FLUSH_LINES || (self.count > 0 && self.last_flush.elapsed() >= FLUSH_EVERY)
        {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SimError> {
        self.last_flush = Instant::now();
        if self.count == 0 {
            return Ok(());
        }
        let spool_err = |source: std::io::Error| SimError::Spool {
            path: self.dir.clone(),
            source,
        };
        // Hidden `.tmp` names are ignored by the spool scanner until the rename.
        let mut tmp = tempfile::Builder::new()
            .prefix(".traffic-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(spool_err)?;
        tmp.write_all(self.lines.as_bytes()).map_err(spool_err)?;
        tmp.flush().map_err(spool_err)?;
        let name = self
            .dir
            .join(format!("traffic-{}-{:06}.jsonl", self.run, self.seq));
        tmp.persist(&name).map_err(|e| spool_err(e.error))?;
        debug!(file = %name.display(), orders = self.count, "spool file written");
        self.seq += 1;
        self.lines.clear();
        self.count = 0;
        Ok(())
    }
}

/// Why a send did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SendError {
    /// `-10`: the account cannot pay for it; the order has no record.
    #[error("send refused: balance too low")]
    BalanceTooLow,
    /// Any other refusal, with the reply (which carries no secret).
    #[error("send refused: {0}")]
    Refused(String),
    /// No answer, or one that is not the provider's JSON.
    #[error("send failed: {0}")]
    Transport(String),
}

/// Talks to the simulator.
struct Client {
    http: reqwest::Client,
    base_url: String,
    root_url: String,
    api_key: String,
    api_secret: ApiSecret,
    /// The simulator's clock minus ours, learned from a `-16` answer's `Date`.
    skew_ms: i64,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Client {
    /// Sends one OTP; retries once with the simulator's clock after a `-16`.
    async fn send(&mut self, body: &Value) -> Result<(), SendError> {
        for _ in 0..2 {
            let timestamp = ((unix_ms() + self.skew_ms) / 1000).to_string();
            let resp = self
                .http
                .post(format!("{}/verification/send", self.base_url))
                .header("Content-Type", "application/json;charset=UTF-8")
                .header("Api-Key", &self.api_key)
                .header("Timestamp", &timestamp)
                .header(
                    "Sign",
                    sign(&self.api_key, self.api_secret.expose(), &timestamp),
                )
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| SendError::Transport(e.to_string()))?;
            let date = resp
                .headers()
                .get("date")
                .and_then(|v| v.to_str().ok())
                .and_then(|d| DateTime::parse_from_rfc2822(d).ok());
            let http_status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| SendError::Transport(e.to_string()))?;
            let reply: Value = serde_json::from_slice(&bytes)
                .map_err(|_| SendError::Transport(format!("HTTP {http_status} without JSON")))?;
            match reply.get("status").and_then(Value::as_str) {
                Some("0") => return Ok(()),
                Some("-10") => return Err(SendError::BalanceTooLow),
                Some("-16") if date.is_some() => {
                    if let Some(date) = date {
                        self.skew_ms = date.timestamp_millis() - unix_ms();
                        info!(
                            skew_ms = self.skew_ms,
                            "traffic generator follows the simulator's shifted clock"
                        );
                    }
                }
                _ => return Err(SendError::Refused(reply.to_string())),
            }
        }
        Err(SendError::Refused("timestamp expired".into()))
    }

    async fn register_unsent(&self, order_id: &str, app_id: &str) -> Result<(), String> {
        let resp = self
            .http
            .post(format!("{}/sim/unsent", self.root_url))
            .header("Content-Type", "application/json")
            .body(json!({ "orderId": order_id, "appId": app_id }).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", resp.status()))
        }
    }
}

fn invalid(option: &'static str, detail: String) -> SimError {
    SimError::InvalidOption { option, detail }
}

fn validate(opts: &TrafficOptions) -> Result<(), SimError> {
    if !(opts.orders_per_second.is_finite() && opts.orders_per_second > 0.0) {
        return Err(invalid(
            "orders_per_second",
            format!("{} is not a positive rate", opts.orders_per_second),
        ));
    }
    if !(0.0..=1.0).contains(&opts.unknown_ratio) {
        return Err(invalid(
            "unknown_ratio",
            format!("{} is not a share between 0 and 1", opts.unknown_ratio),
        ));
    }
    Ok(())
}

impl Client {
    fn new(opts: &TrafficOptions) -> Result<Client, SimError> {
        let base_url = opts.base_url.trim_end_matches('/').to_string();
        let root_url = base_url
            .strip_suffix("/otp")
            .unwrap_or(&base_url)
            .to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SimError::Traffic(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base_url,
            root_url,
            api_key: opts.api_key.clone(),
            api_secret: opts.api_secret.clone(),
            skew_ms: 0,
        })
    }
}

impl SpoolWriter {
    /// Creates `dir` if needed; `run` tells this run's files from earlier runs'.
    fn create(dir: &Path, run: u64) -> Result<SpoolWriter, SimError> {
        std::fs::create_dir_all(dir).map_err(|source| SimError::Spool {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            run,
            seq: 0,
            lines: String::new(),
            count: 0,
            last_flush: Instant::now(),
        })
    }
}

/// One round's choices.
struct OrderDraw {
    /// Written to the spool without being sent.
    is_unknown: bool,
    app_id: Option<String>,
    to: String,
    channel: Option<&'static str>,
}

/// Draws every choice of a round, in a fixed order, so that the sequence does not
/// depend on how sends went.
fn draw_order<R: Rng>(rng: &mut R, opts: &TrafficOptions) -> OrderDraw {
    let is_unknown = rng.gen_bool(opts.unknown_ratio);
    let app_id = (!opts.app_ids.is_empty())
        .then(|| opts.app_ids[rng.gen_range(0..opts.app_ids.len())].clone());
    let to = draw_receiver(rng);
    let channel = draw_channel(rng);
    OrderDraw {
        is_unknown,
        app_id,
        to,
        channel,
    }
}

/// Ids by fate: written to the spool (sent, unknown, unpaid) or not (refused).
#[derive(Default)]
struct Tally {
    sent: u64,
    unknown: u64,
    /// Refused with `-10`; written to the spool.
    unpaid: u64,
    refused: u64,
}

impl Tally {
    /// Progress at debug level, or the final count at info level.
    fn log(&self, finished: bool) {
        let Tally {
            sent,
            unknown,
            unpaid,
            refused,
        } = *self;
        if finished {
            info!(sent, unknown, unpaid, refused, "traffic generator finished");
        } else {
            debug!(sent, unknown, unpaid, refused, "traffic generator progress");
        }
    }
}

/// Issues one order like an application would: sends it (or, if drawn unknown,
/// registers it as unsent) and writes its id to the spool unless the send failed for
/// another reason than the balance.
async fn issue(
    client: &mut Client,
    spool: &mut SpoolWriter,
    tally: &mut Tally,
    order_id: &str,
    draw: OrderDraw,
) {
    let issued_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut line = json!({ "orderId": order_id, "issuedAt": issued_at });
    if let Some(app) = &draw.app_id {
        line["appId"] = json!(app);
    }
    if draw.is_unknown {
        if let Err(e) = client
            .register_unsent(order_id, draw.app_id.as_deref().unwrap_or(""))
            .await
        {
            warn!(order_id = %order_id, error = %e, "cannot register an unsent id with the simulator");
        }
        spool.push(&line);
        tally.unknown += 1;
        return;
    }
    let mut body = json!({ "orderId": order_id, "to": draw.to });
    if let Some(app) = &draw.app_id {
        body["appId"] = json!(app);
    }
    if let Some(channel) = draw.channel {
        body["channel"] = json!(channel);
    }
    match client.send(&body).await {
        Ok(()) => {
            spool.push(&line);
            tally.sent += 1;
        }
        Err(SendError::BalanceTooLow) => {
            spool.push(&line);
            tally.unpaid += 1;
            let unpaid = tally.unpaid;
            if unpaid.is_power_of_two() {
                warn!(
                    order_id = %order_id,
                    unpaid,
                    "the simulated account cannot pay for OTPs (-10); their ids still go to the spool and will be not_found"
                );
            }
        }
        Err(e) => {
            tally.refused += 1;
            let refused = tally.refused;
            // 1st, 2nd, 4th, 8th, ...: a simulator that is down does not flood the log.
            if refused.is_power_of_two() {
                warn!(order_id = %order_id, refused, error = %e, "traffic generator could not send an OTP");
            }
        }
    }
}

/// What one id of this traffic costs the account on average (ids drawn unknown cost
/// nothing), estimated by drawing `samples` orders as [`run_traffic`] does and pricing
/// each with the simulator's own rules (seed `opts.seed`, OTP validity `validity`, no
/// outages): for sizing a starting balance, as the demo's `--low-balance` does. An
/// estimate: a run's order ids, and so its orders, are its own.
pub fn mean_price_per_id(
    opts: &TrafficOptions,
    validity: Duration,
    samples: u32,
) -> Result<Usd, SimError> {
    validate(opts)?;
    let validity_ms = u32::try_from(validity.as_millis()).unwrap_or(u32::MAX);
    let no_outage = |_: &str, _: Channel| -> Option<OutageKind> { None };
    let generator = Generator {
        seed: opts.seed,
        validity_ms,
        quirks: true,
        outage: &no_outage,
    };
    // A stream of its own: estimating must not move the traffic's draws.
    let mut rng = StdRng::seed_from_u64(derive_seed(opts.seed, "traffic-price", ""));
    let mut total: u64 = 0;
    let samples = samples.max(1);
    for n in 0..samples {
        let draw = draw_order(&mut rng, opts);
        if draw.is_unknown {
            continue;
        }
        // The destination mix holds simulated countries only; a number the simulator
        // would refuse costs nothing, as its send would.
        let Some(profile) = normalize_receiver(&draw.to).and_then(|r| profile_for_receiver(&r))
        else {
            continue;
        };
        let channel = draw
            .channel
            .and_then(Channel::parse)
            .unwrap_or(Channel::Sms);
        let timeline = generator.generate(&format!("price-{n}"), profile, channel);
        total = total.saturating_add(timeline.billed_units());
    }
    Ok(Usd::from_units(total / u64::from(samples)))
}

/// Sends orders until `max_orders` (or forever), writing their ids to the spool.
pub async fn run_traffic(opts: TrafficOptions) -> Result<(), SimError> {
    validate(&opts)?;
    let run = u64::try_from(unix_ms() / 1000).unwrap_or(0);
    let mut spool = SpoolWriter::create(&opts.spool_dir, run)?;
    let mut client = Client::new(&opts)?;
    let mut rng = StdRng::seed_from_u64(derive_seed(opts.seed, "traffic", ""));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.orders_per_second));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    info!(
        base_url = %opts.base_url,
        spool = %opts.spool_dir.display(),
        orders_per_second = opts.orders_per_second,
        unknown_ratio = opts.unknown_ratio,
        "traffic generator started"
    );

    let mut tally = Tally::default();
    let mut n = 0u64;
    while opts.max_orders.is_none_or(|max| n < max) {
        ticker.tick().await;
        let order_id = format!("demo-{}-{run}-{n:06}", opts.seed);
        n += 1;
        let draw = draw_order(&mut rng, &opts);
        issue(&mut client, &mut spool, &mut tally, &order_id, draw).await;
        spool.flush_if_due()?;
        if n.is_multiple_of(1000) {
            tally.log(false);
        }
    }
    spool.flush()?;
    tally.log(true);
    Ok(())
}
