//! The validated settings the daemon runs with: every default applied, every bound
//! checked, the secret resolved. Built only by `validate()` (or by tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;

use super::secret::Secret;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address of the HTTP server (`/metrics`, `/`, `/healthz`, `/readyz`).
    pub listen: SocketAddr,
    /// Directory of the durable state (a redb file).
    pub state_dir: PathBuf,
    /// The provider's API, its credentials and our limits on it.
    pub api: ApiSettings,
    /// App of spool lines without an `appId`: the configured one, or the only app.
    pub default_app: Option<String>,
    /// The only app ids accepted (never empty): keeps the `app_id` label bounded.
    pub apps: Vec<AppSettings>,
    /// Where order ids arrive.
    pub spool: SpoolSettings,
    /// How long an order is followed.
    pub tracking: TrackingSettings,
    /// How often an order is queried.
    pub polling: PollingSettings,
    /// What is kept of each order for the drill-down.
    pub journal: JournalSettings,
    /// The account balance poller.
    pub account: AccountSettings,
}

/// The provider's API and how hard we may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Without a trailing `/`; the record endpoint is `{base_url}/verification/orderId/record`.
    pub base_url: String,
    /// The account's API key (not secret: it is sent in every request's headers).
    pub api_key: String,
    /// Resolved once at load time from `api_secret` or `api_secret_file`.
    pub secret: Secret,
    /// Total timeout of one record query.
    pub timeout: Duration,
    /// Concurrent record queries (1..=1024).
    pub max_in_flight: u32,
    /// Request-rate ceiling (at least 1).
    pub max_requests_per_second: u32,
    /// Zone of provider times written without an offset (`yyyy-MM-dd HH:mm:ss`).
    pub timezone: FixedOffset,
    /// Response bodies are read up to this many bytes; a longer one is
    /// `invalid_response` (1 KiB..=64 MiB).
    pub max_response_bytes: u64,
}

/// An accepted app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSettings {
    /// 1-64 visible ASCII characters, unique among the apps.
    pub id: String,
    /// Overrides `tracking.verification_window` for this app (its OTP validity).
    pub verification_window: Option<Duration>,
}

/// Where order ids arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolSettings {
    /// The spool directory.
    pub dir: PathBuf,
    /// Full directory scan period; events from the watcher only wake the scanner early.
    pub rescan_interval: Duration,
    /// Larger files are quarantined whole.
    pub max_file_bytes: u64,
}

/// How long an order is followed.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingSettings {
    /// The OTP's validity (apps may override it).
    pub verification_window: Duration,
    /// Once the outcome is known, how long to wait for pending attempts.
    pub settle_timeout: Duration,
    /// How long "no such record" is retried before `not_found`.
    pub not_found_grace: Duration,
    /// Give up on an order this long after issue.
    pub max_age: Duration,
    /// Attempts of one record that count (1..=10000); the rest are dropped.
    pub max_attempts_per_order: u32,
    /// A `pay` or `cost` above this (USD, finite, more than 0) is dropped as invalid.
    pub max_cost_per_attempt_usd: f64,
    /// Overdue delivery report, while history is too thin to learn the expectation.
    pub overdue_delivery_after: Duration,
    /// Overdue verification, while history is too thin to learn the expectation.
    pub overdue_verification_after: Duration,
}

/// How often an order is queried.
#[derive(Debug, Clone, PartialEq)]
pub struct PollingSettings {
    /// First query this long after issue, then doubling intervals.
    pub first_delay: Duration,
    /// Longest interval between two queries of one order.
    pub max_interval: Duration,
}

/// What is kept of each order for the drill-down pages and API.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSettings {
    pub enabled: bool,
    /// Entries of orders issued longer ago are evicted.
    pub retention: Duration,
    /// The oldest entries are evicted beyond this many encoded bytes.
    pub max_bytes: u64,
}

/// The account balance poller.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    /// How often the balance is queried; `None` when `account.enabled` is false or
    /// `account.balance_interval` is 0.
    pub balance_interval: Option<Duration>,
    /// The balance endpoint (`GET`, signed like record queries).
    pub balance_url: String,
}

impl Config {
    /// The secret, resolved at load time.
    pub fn secret(&self) -> &Secret {
        &self.api.secret
    }

    /// The verification window of an app (its OTP validity).
    pub fn window_of(&self, app_id: &str) -> Duration {
        self.apps
            .iter()
            .find(|a| a.id == app_id)
            .and_then(|a| a.verification_window)
            .unwrap_or(self.tracking.verification_window)
    }

    pub fn app_ids(&self) -> Vec<String> {
        self.apps.iter().map(|a| a.id.clone()).collect()
    }
}

/// The defaults of every key that has one (the README's table is checked against them).
pub(super) mod defaults {
    use super::*;
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8467))
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/itnio-otp-exporter")
    }
    pub const BASE_URL: &str = "https://api.itniotech.com/otp";
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_IN_FLIGHT: u32 = 32;
    pub const MAX_REQUESTS_PER_SECOND: u32 = 50;
    /// A real record is a few KiB; 512 KiB leaves room for any plausible one.
    pub const MAX_RESPONSE_BYTES: u64 = 512 * 1024;
    pub fn timezone() -> FixedOffset {
        // The provider's own zone (China Standard Time).
        FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
    }
    pub fn spool_dir() -> PathBuf {
        PathBuf::from("/var/spool/itnio-otp")
    }
    pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
    pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
    pub const VERIFICATION_WINDOW: Duration = Duration::from_secs(300);
    pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
    pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(120);
    pub const MAX_AGE: Duration = Duration::from_secs(1800);
    /// Generous next to healthy SMS routes (seconds) and the provider's fallback to a
    /// call (under a minute), so that thin history does not make orders overdue.
    pub const OVERDUE_DELIVERY_AFTER: Duration = Duration::from_secs(120);
    pub const OVERDUE_VERIFICATION_AFTER: Duration = Duration::from_secs(180);
    /// A real order has a handful of attempts (SMS retries, a call, SNA).
    pub const MAX_ATTEMPTS_PER_ORDER: u32 = 64;
    /// One SMS costs cents and a call a few dollars at most.
    pub const MAX_COST_PER_ATTEMPT_USD: f64 = 10.0;
    /// A week: enough to compare today's failures with last week's.
    pub const JOURNAL_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    /// ~3 million orders at ~350 bytes each.
    pub const JOURNAL_MAX_BYTES: u64 = 1 << 30;
    /// The balance changes only as fast as money is spent: five minutes tell "runs out
    /// within 3 hours" in time, at 288 queries a day.
    pub const BALANCE_INTERVAL: Duration = Duration::from_secs(300);
    /// The balance endpoint's path at the API's host (not under `/otp`).
    pub const BALANCE_PATH: &str = "/sms/getBalance";
    pub const FIRST_DELAY: Duration = Duration::from_secs(5);
    pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
}

/// `+08:00`, `-05:30`, `+0800`, `Z` or `UTC`.
pub fn parse_offset(text: &str) -> Option<FixedOffset> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// App ids end up as label values and in request bodies: visible ASCII only.
pub fn valid_app_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}
