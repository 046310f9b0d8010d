//! The configuration file as written: every key optional, types already checked.
//! Defaults, bounds and the secret are settled by `validate()` (see `validate.rs`),
//! which turns these into the settings the daemon runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;
use serde_yaml::Value;

use super::problems::Problems;
use super::secret::Secret;
use super::yaml::{ByteSize, Section};

/// The whole file. Besides being what `Config::from_yaml` reads, it is the way to
/// build a configuration in code: fill the keys you need, leave the rest to
/// `Default` (the file's defaults apply), then [`ConfigFile::validate`].
///
/// ```
/// use std::path::Path;
/// use itnio_otp_exporter::config::{ApiSection, AppEntry, ConfigFile, Secret};
///
/// let config = ConfigFile {
///     listen: Some("127.0.0.1:8467".parse().unwrap()),
///     api: ApiSection {
///         api_key: Some("key".into()),
///         api_secret: Some(Secret::new("secret")),
///         ..ApiSection::default()
///     },
///     apps: vec![AppEntry::new("my-app")],
///     ..ConfigFile::default()
/// }
/// .validate(Path::new("<built in code>"), &|_| None)
/// .unwrap();
/// assert_eq!(config.default_app.as_deref(), Some("my-app"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// `listen`: address of the HTTP server (`/metrics`, `/`, `/healthz`, `/readyz`);
    /// `:8467` means every interface, `localhost:8467` the loopback one.
    pub listen: Option<SocketAddr>,
    /// `state_dir`: directory of the durable state (`state.redb`).
    pub state_dir: Option<PathBuf>,
    /// `api`: the provider's API and how hard we may use it.
    pub api: ApiSection,
    /// `default_app`: app of spool lines without an `appId`; the only app if `apps` is empty.
    pub default_app: Option<String>,
    /// `apps`: the only app ids accepted, which keeps the `app_id` label bounded.
    pub apps: Vec<AppEntry>,
    /// `spool`: where order ids arrive.
    pub spool: SpoolSection,
    /// `tracking`: how long an order is followed.
    pub tracking: TrackingSection,
    /// `polling`: how often an order is queried.
    pub polling: PollingSection,
    /// `journal`: what is kept of each order for the drill-down pages and API.
    pub journal: JournalSection,
    /// `account`: the account balance poller.
    pub account: AccountSection,
}

/// `api:` the provider's API and how hard we may use it.
#[derive(Debug, Clone, Default)]
pub struct ApiSection {
    /// `api.base_url`: the record endpoint is `{base_url}/verification/orderId/record`.
    pub base_url: Option<String>,
    /// `api.api_key`: the account's API key (required).
    pub api_key: Option<String>,
    /// `api.api_secret`: the secret; `${VAR}` is expanded from the environment.
    pub api_secret: Option<Secret>,
    /// `api.api_secret_file`: a file holding the secret (systemd credentials,
    /// Kubernetes secrets); one trailing newline is ignored.
    pub api_secret_file: Option<PathBuf>,
    /// `api.timeout`: total time of one record query (connect capped at 5 s).
    pub timeout: Option<Duration>,
    /// `api.max_in_flight`: concurrent record queries.
    pub max_in_flight: Option<u32>,
    /// `api.max_requests_per_second`: request-rate ceiling.
    pub max_requests_per_second: Option<u32>,
    /// `api.timezone`: zone of provider times sent without an offset (`yyyy-MM-dd HH:mm:ss`).
    pub timezone: Option<FixedOffset>,
    /// `api.max_response_bytes`: a larger response body is not read further
    /// (`invalid_response`).
    pub max_response_bytes: Option<u64>,
}

/// One entry of `apps:`.
#[derive(Debug, Clone, Default)]
pub struct AppEntry {
    /// `apps[].id`: an accepted app id (1-64 visible ASCII characters).
    pub id: Option<String>,
    /// `apps[].verification_window`: this app's OTP validity, if not
    /// `tracking.verification_window`.
    pub verification_window: Option<Duration>,
}

impl AppEntry {
    /// An app with the default verification window.
    pub fn new(id: impl Into<String>) -> Self {
        AppEntry {
            id: Some(id.into()),
            verification_window: None,
        }
    }
}

/// `spool:` where order ids arrive.
#[derive(Debug, Clone, Default)]
pub struct SpoolSection {
    /// `spool.dir`: the spool directory.
    pub dir: Option<PathBuf>,
    /// `spool.rescan_interval`: full rescan period; watcher events only wake the scanner early.
    pub rescan_interval: Option<Duration>,
    /// `spool.max_file_bytes`: larger files are quarantined whole.
    pub max_file_bytes: Option<u64>,
}

/// `tracking:` how long an order is followed.
#[derive(Debug, Clone, Default)]
pub struct TrackingSection {
    /// `tracking.verification_window`: the OTP's validity.
    pub verification_window: Option<Duration>,
    /// `tracking.settle_timeout`: once the outcome is known, how long to wait for
    /// pending attempts.
    pub settle_timeout: Option<Duration>,
    /// `tracking.not_found_grace`: how long "no such record" is retried before `not_found`.
    pub not_found_grace: Option<Duration>,
    /// `tracking.max_age`: give up on an order this long after issue.
    pub max_age: Option<Duration>,
    /// `tracking.max_attempts_per_order`: attempts of one record that count; the
    /// rest are dropped with a warning.
    pub max_attempts_per_order: Option<u32>,
    /// `tracking.max_cost_per_attempt_usd`: a larger `pay` or `cost` is not believed
    /// and not counted.
    pub max_cost_per_attempt_usd: Option<f64>,
    /// `tracking.overdue_delivery_after`: an attempt without a delivery report this
    /// long after its submit is overdue, while a country and channel have too little
    /// history for a learned expectation.
    pub overdue_delivery_after: Option<Duration>,
    /// `tracking.overdue_verification_after`: an order not verified this long after its
    /// first attempt is overdue, while history is too thin for a learned expectation.
    pub overdue_verification_after: Option<Duration>,
}

/// `polling:` how often an order is queried.
#[derive(Debug, Clone, Default)]
pub struct PollingSection {
    /// `polling.first_delay`: first query this long after issue, then doubling intervals.
    pub first_delay: Option<Duration>,
    /// `polling.max_interval`: longest interval between two queries of one order.
    pub max_interval: Option<Duration>,
}

/// `journal:` what is kept of each order for the drill-down pages and API.
#[derive(Debug, Clone, Default)]
pub struct JournalSection {
    /// `journal.enabled`: keep a journal entry per order (on by default).
    pub enabled: Option<bool>,
    /// `journal.retention`: entries of orders issued longer ago are evicted.
    pub retention: Option<Duration>,
    /// `journal.max_bytes`: the oldest entries are evicted beyond this size
    /// (a number of bytes, or `512MiB`, `1GiB`, `500MB`).
    pub max_bytes: Option<ByteSize>,
}

/// `account:` the balance poller (money left, so that running out is seen before
/// every send fails with -10).
#[derive(Debug, Clone, Default)]
pub struct AccountSection {
    /// `account.enabled`: poll the account's balance (on by default).
    pub enabled: Option<bool>,
    /// `account.balance_interval`: how often (`5m` by default; `0` turns it off).
    pub balance_interval: Option<Duration>,
    /// `account.balance_url`: the balance endpoint; by default `/sms/getBalance` on
    /// `api.base_url`'s scheme, host and port.
    pub balance_url: Option<String>,
}

// Reading: one function per section, keys in the README's order. The keys asked for
// here are the list of keys the program knows (`config::keys()`).

impl ConfigFile {
    pub(super) fn read(root: Value, problems: &mut Problems) -> ConfigFile {
        let mut top = Section::new("", Some(root), problems);
        let listen = top.take("listen", problems);
        let state_dir = top.take("state_dir", problems);
        let api = ApiSection::read(top.take_value("api"), problems);
        let default_app = top.take("default_app", problems);
        let apps = AppEntry::read_all(top.take_value("apps"), problems);
        let spool = SpoolSection::read(top.take_value("spool"), problems);
        let tracking = TrackingSection::read(top.take_value("tracking"), problems);
        let polling = PollingSection::read(top.take_value("polling"), problems);
        let journal = JournalSection::read(top.take_value("journal"), problems);
        let account = AccountSection::read(top.take_value("account"), problems);
        top.finish(problems);
        ConfigFile {
            listen,
            state_dir,
            api,
            default_app,
            apps,
            spool,
            tracking,
            polling,
            journal,
            account,
        }
    }
}

impl ApiSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("api", value, problems);
        let api = ApiSection {
            base_url: s.take("base_url", problems),
            api_key: s.take("api_key", problems),
            api_secret: s.take("api_secret", problems),
            api_secret_file: s.take("api_secret_file", problems),
            timeout: s.take("timeout", problems),
            max_in_flight: s.take("max_in_flight", problems),
            max_requests_per_second: s.take("max_requests_per_second", problems),
            timezone: s.take("timezone", problems),
            max_response_bytes: s.take("max_response_bytes", problems),
        };
        s.finish(problems);
        api
    }
}

impl AppEntry {
    fn read_all(value: Option<Value>, problems: &mut Problems) -> Vec<AppEntry> {
        let items = match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                problems.add("apps", "expected a list of apps (apps: [{id: ...}])");
                Vec::new()
            }
        };
        // With no entry, one empty one is read so that the reader still learns its keys.
        let apps: Vec<AppEntry> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| AppEntry::read(format!("apps[{i}]"), Some(item), problems))
            .collect();
        if apps.is_empty() {
            let mut scratch = Problems::new(None);
            AppEntry::read("apps[0]".into(), None, &mut scratch);
            for key in scratch.keys_read() {
                problems.note_key_read(key.clone());
            }
        }
        apps
    }

    fn read(prefix: String, value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new(prefix, value, problems);
        let app = AppEntry {
            id: s.take("id", problems),
            verification_window: s.take("verification_window", problems),
        };
        s.finish(problems);
        app
    }
}

impl SpoolSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("spool", value, problems);
        let spool = SpoolSection {
            dir: s.take("dir", problems),
            rescan_interval: s.take("rescan_interval", problems),
            max_file_bytes: s.take("max_file_bytes", problems),
        };
        s.finish(problems);
        spool
    }
}

impl TrackingSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("tracking", value, problems);
        let tracking = TrackingSection {
            verification_window: s.take("verification_window", problems),
            settle_timeout: s.take("settle_timeout", problems),
            not_found_grace: s.take("not_found_grace", problems),
            max_age: s.take("max_age", problems),
            max_attempts_per_order: s.take("max_attempts_per_order", problems),
            max_cost_per_attempt_usd: s.take("max_cost_per_attempt_usd", problems),
            overdue_delivery_after: s.take("overdue_delivery_after", problems),
            overdue_verification_after: s.take("overdue_verification_after", problems),
        };
        s.finish(problems);
        tracking
    }
}

impl PollingSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("polling", value, problems);
        let polling = PollingSection {
            first_delay: s.take("first_delay", problems),
            max_interval: s.take("max_interval", problems),
        };
        s.finish(problems);
        polling
    }
}

impl JournalSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("journal", value, problems);
        let journal = JournalSection {
            enabled: s.take("enabled", problems),
            retention: s.take("retention", problems),
            max_bytes: s.take("max_bytes", problems),
        };
        s.finish(problems);
        journal
    }
}

impl AccountSection {
    fn read(value: Option<Value>, problems: &mut Problems) -> Self {
        let mut s = Section::new("account", value, problems);
        let account = AccountSection {
            enabled: s.take("enabled", problems),
            balance_interval: s.take("balance_interval", problems),
            balance_url: s.take("balance_url", problems),
        };
        s.finish(problems);
        account
    }
}
