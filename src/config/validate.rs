//! Each section's `validate()`: defaults, bounds and the secret, turning what the file
//! says into the settings the daemon runs with. Every problem is recorded, none stops
//! the others from being found.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::file::{
    AccountSection, ApiSection, AppEntry, ConfigFile, JournalSection, PollingSection, SpoolSection,
    TrackingSection,
};
use super::problems::{ConfigError, Problems};
use super::secret;
use super::settings::{
    defaults, valid_app_id, AccountSettings, ApiSettings, AppSettings, Config, JournalSettings,
    PollingSettings, SpoolSettings, TrackingSettings,
};

/// Longest accepted tracking, polling or rescan duration. Upper bounds keep time
/// arithmetic far from overflow and catch unit slips (`5h` for `5m`); nothing an OTP
/// needs comes near them.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
const MAX_API_TIMEOUT: Duration = Duration::from_secs(600);
/// One worker task per in-flight query; far more than any provider account allows.
const MAX_IN_FLIGHT: u32 = 1024;
/// Bounds of `api.max_response_bytes`: below 1 KiB not even an error page fits; above
/// 64 MiB one answer could cost more memory than the whole daemon.
const MIN_RESPONSE_BYTES: u64 = 1024;
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Upper bound of `tracking.max_attempts_per_order`: every attempt is kept in memory
/// while its order settles.
const MAX_ATTEMPTS_PER_ORDER: u32 = 10_000;
/// Upper bound of `tracking.max_cost_per_attempt_usd`: keeps sums of many attempts far
/// from overflowing an f64 counter's precision.
const MAX_COST_PER_ATTEMPT_USD: f64 = 1_000_000.0;

impl ConfigFile {
    /// Applies defaults, checks every bound and resolves the secret (`env` expands
    /// `${VAR}` in `api.api_secret`). `origin` names the configuration in errors.
    pub fn validate(
        self,
        origin: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Problems::new(None);
        let config = self.check(env, &mut problems);
        problems.finish(origin, config)
    }

    /// Validates every section, recording each problem; `None` when a required part
    /// (the credentials, the apps) is unusable.
    pub(super) fn check(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Option<Config> {
        let api = self.api.validate(env, problems);
        let apps = validate_apps(self.apps, self.default_app, problems);
        let spool = self.spool.validate(problems);
        let tracking = self.tracking.validate(problems);
        let polling = self.polling.validate(problems);
        let journal = self.journal.validate(problems);
        let account = self.account.validate(api.as_ref(), problems);
        let state_dir = self.state_dir.unwrap_or_else(defaults::state_dir);
        if state_dir.as_os_str().is_empty() {
            problems.add("state_dir", "must not be empty");
        }
        let (apps, default_app) = apps?;
        check_max_age(&tracking, &apps, problems);
        Some(Config {
            listen: self.listen.unwrap_or_else(defaults::listen),
            state_dir,
            api: api?,
            default_app,
            apps,
            spool,
            tracking,
            polling,
            journal,
            account,
        })
    }
}

/// A duration key: its default when absent, else checked against 0 (unless allowed)
/// and the 7-day limit.
fn duration(
    problems: &mut Problems,
    key: &str,
    value: Option<Duration>,
    default: Duration,
    zero_allowed: bool,
) -> Duration {
    let value = value.unwrap_or(default);
    if value.is_zero() && !zero_allowed {
        problems.add(key, "must be more than 0");
    } else if value > MAX_DURATION {
        problems.add(
            key,
            format!(
                "{} is longer than the limit of 7 days",
                humantime::format_duration(value)
            ),
        );
    }
    value
}

impl ApiSection {
    fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Option<ApiSettings> {
        let secret = secret::resolve(
            self.api_secret,
            self.api_secret_file.as_deref(),
            env,
            problems,
        );
        let api_key = match self.api_key {
            Some(key) if key.trim().is_empty() => {
                problems.add("api.api_key", "must not be empty");
                None
            }
            Some(key) => Some(key),
            None => {
                if !problems.about("api.api_key") {
                    problems.add("api.api_key", "missing: the account's API key is required");
                }
                None
            }
        };
        let base_url = self.base_url.as_deref().unwrap_or(defaults::BASE_URL);
        let base_url = base_url.trim_end_matches('/').to_string();
        check_base_url(&base_url, problems);
        let timeout = self.timeout.unwrap_or(defaults::TIMEOUT);
        if timeout.is_zero() {
            problems.add("api.timeout", "must be more than 0");
        } else if timeout > MAX_API_TIMEOUT {
            problems.add("api.timeout", "must not exceed 10 minutes");
        }
        let max_in_flight = self.max_in_flight.unwrap_or(defaults::MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            problems.add("api.max_in_flight", "must be at least 1");
        } else if max_in_flight > MAX_IN_FLIGHT {
            problems.add(
                "api.max_in_flight",
                format!("must not exceed {MAX_IN_FLIGHT}"),
            );
        }
        let max_requests_per_second = self
            .max_requests_per_second
            .unwrap_or(defaults::MAX_REQUESTS_PER_SECOND);
        if max_requests_per_second == 0 {
            problems.add("api.max_requests_per_second", "must be at least 1");
        }
        let max_response_bytes = self
            .max_response_bytes
            .unwrap_or(defaults::MAX_RESPONSE_BYTES);
        if !(MIN_RESPONSE_BYTES..=MAX_RESPONSE_BYTES).contains(&max_response_bytes) {
            problems.add(
                "api.max_response_bytes",
                format!("must be between {MIN_RESPONSE_BYTES} and {MAX_RESPONSE_BYTES} bytes"),
            );
        }
        Some(ApiSettings {
            base_url,
            api_key: api_key?,
            secret: secret?,
            timeout,
            max_in_flight,
            max_requests_per_second,
            timezone: self.timezone.unwrap_or_else(defaults::timezone),
            max_response_bytes,
        })
    }
}

/// The base URL is shown on `/` and in logs, so it must not carry credentials; the
/// error then does not repeat it.
fn check_base_url(base: &str, problems: &mut Problems) {
    check_url("api.base_url", base, problems);
}

/// An endpoint URL: http(s), a host, no credentials, no query or fragment.
fn check_url(key: &str, base: &str, problems: &mut Problems) {
    let url = match reqwest::Url::parse(base) {
        Ok(url) => url,
        Err(e) => {
            // Only the URL's shape is said: a password in it must not reach the error.
            let credentials = base.split_once("://").is_some_and(|(_, rest)| {
                rest.split('/')
                    .next()
                    .is_some_and(|authority| authority.contains('@'))
            });
            let message = if credentials {
                "is not a URL, and must not contain a user name or password".to_string()
            } else {
                format!("{base:?} is not a URL ({e})")
            };
            return problems.add_caused(key, message, e);
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        problems.add(key, "must not contain a user name or password (the API authenticates with api_key and the secret)");
    } else if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        problems.add(key, format!("{base:?} is not an http(s) URL with a host"));
    } else if url.query().is_some() || url.fragment().is_some() {
        problems.add(
            key,
            format!("{base:?} must not have a query or fragment (the endpoint path is appended)"),
        );
    }
}

/// The accepted apps and the default app. One app is the common case: `default_app`
/// alone is enough, and a single listed app is the default.
fn validate_apps(
    entries: Vec<AppEntry>,
    default_app: Option<String>,
    problems: &mut Problems,
) -> Option<(Vec<AppSettings>, Option<String>)> {
    if entries.is_empty() {
        let Some(id) = default_app else {
            if !problems.about("apps") && !problems.about("default_app") {
                problems.add("apps", "missing, and so is default_app: list at least one app (apps: [{id: ...}]) or set default_app; orders of other apps are rejected");
            }
            return None;
        };
        if !valid_app_id(&id) {
            problems.add(
                "default_app",
                format!("app id {id:?} must be 1-64 visible ASCII characters"),
            );
        }
        let app = AppSettings {
            id: id.clone(),
            verification_window: None,
        };
        return Some((vec![app], Some(id)));
    }
    let mut apps = Vec::with_capacity(entries.len());
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let key = format!("apps[{i}].id");
        let window_key = format!("apps[{i}].verification_window");
        let verification_window = entry
            .verification_window
            .map(|w| duration(problems, &window_key, Some(w), w, true));
        let Some(id) = entry.id else {
            if !problems.about(&key) {
                problems.add(&key, "missing: every app needs an id");
            }
            continue;
        };
        if !valid_app_id(&id) {
            problems.add(
                &key,
                format!("app id {id:?} must be 1-64 visible ASCII characters"),
            );
        } else if !seen.insert(id.clone()) {
            problems.add(&key, format!("app {id:?} is listed twice"));
        }
        apps.push(AppSettings {
            id,
            verification_window,
        });
    }
    let default_app = match default_app {
        Some(app) if !seen.contains(&app) => {
            problems.add("default_app", format!("{app:?} is not one of apps[].id"));
            Some(app)
        }
        None if apps.len() == 1 => Some(apps[0].id.clone()),
        other => other,
    };
    Some((apps, default_app))
}

impl SpoolSection {
    fn validate(self, problems: &mut Problems) -> SpoolSettings {
        let max_file_bytes = self.max_file_bytes.unwrap_or(defaults::MAX_FILE_BYTES);
        if max_file_bytes == 0 {
            problems.add("spool.max_file_bytes", "must be more than 0");
        }
        SpoolSettings {
            dir: self.dir.unwrap_or_else(defaults::spool_dir),
            rescan_interval: duration(
                problems,
                "spool.rescan_interval",
                self.rescan_interval,
                defaults::RESCAN_INTERVAL,
                false,
            ),
            max_file_bytes,
        }
    }
}

impl TrackingSection {
    fn validate(self, problems: &mut Problems) -> TrackingSettings {
        let max_attempts_per_order = self
            .max_attempts_per_order
            .unwrap_or(defaults::MAX_ATTEMPTS_PER_ORDER);
        if !(1..=MAX_ATTEMPTS_PER_ORDER).contains(&max_attempts_per_order) {
            problems.add(
                "tracking.max_attempts_per_order",
                format!("must be between 1 and {MAX_ATTEMPTS_PER_ORDER}"),
            );
        }
        let max_cost_per_attempt_usd = self
            .max_cost_per_attempt_usd
            .unwrap_or(defaults::MAX_COST_PER_ATTEMPT_USD);
        // `!(x > 0)` also catches NaN.
        if !(max_cost_per_attempt_usd > 0.0 && max_cost_per_attempt_usd <= MAX_COST_PER_ATTEMPT_USD)
        {
            problems.add(
                "tracking.max_cost_per_attempt_usd",
                format!("must be more than 0 and at most {MAX_COST_PER_ATTEMPT_USD}"),
            );
        }
        TrackingSettings {
            max_attempts_per_order,
            max_cost_per_attempt_usd,
            verification_window: duration(
                problems,
                "tracking.verification_window",
                self.verification_window,
                defaults::VERIFICATION_WINDOW,
                false,
            ),
            // 0: finalize as soon as the outcome is known.
            settle_timeout: duration(
                problems,
                "tracking.settle_timeout",
                self.settle_timeout,
                defaults::SETTLE_TIMEOUT,
                true,
            ),
            not_found_grace: duration(
                problems,
                "tracking.not_found_grace",
                self.not_found_grace,
                defaults::NOT_FOUND_GRACE,
                true,
            ),
            max_age: duration(
                problems,
                "tracking.max_age",
                self.max_age,
                defaults::MAX_AGE,
                false,
            ),
            overdue_delivery_after: duration(
                problems,
                "tracking.overdue_delivery_after",
                self.overdue_delivery_after,
                defaults::OVERDUE_DELIVERY_AFTER,
                false,
            ),
            overdue_verification_after: duration(
                problems,
                "tracking.overdue_verification_after",
                self.overdue_verification_after,
                defaults::OVERDUE_VERIFICATION_AFTER,
                false,
            ),
        }
    }
}

impl PollingSection {
    fn validate(self, problems: &mut Problems) -> PollingSettings {
        let (first, max) = ("polling.first_delay", "polling.max_interval");
        let first_delay = duration(
            problems,
            first,
            self.first_delay,
            defaults::FIRST_DELAY,
            false,
        );
        let max_interval = duration(
            problems,
            max,
            self.max_interval,
            defaults::MAX_INTERVAL,
            false,
        );
        if max_interval < first_delay && !problems.about(first) && !problems.about(max) {
            problems.add(max, "must not be shorter than polling.first_delay");
        }
        PollingSettings {
            first_delay,
            max_interval,
        }
    }
}

impl JournalSection {
    fn validate(self, problems: &mut Problems) -> JournalSettings {
        let retention = duration(
            problems,
            "journal.retention",
            self.retention,
            defaults::JOURNAL_RETENTION,
            false,
        );
        let max_bytes = self.max_bytes.map_or(defaults::JOURNAL_MAX_BYTES, |b| b.0);
        // Less than a megabyte holds a few thousand orders: a typo, not a choice.
        if max_bytes < 1 << 20 {
            problems.add("journal.max_bytes", "must be at least 1MiB");
        }
        JournalSettings {
            enabled: self.enabled.unwrap_or(true),
            retention,
            max_bytes,
        }
    }
}

impl AccountSection {
    /// `api` is `None` when the API section is unusable (its problems are reported).
    fn validate(self, api: Option<&ApiSettings>, problems: &mut Problems) -> AccountSettings {
        const INTERVAL: &str = "account.balance_interval";
        let interval = duration(
            problems,
            INTERVAL,
            self.balance_interval,
            defaults::BALANCE_INTERVAL,
            true,
        );
        // Below a second is a typo (`5` for `5m`?): the provider would see a query
        // per second for a figure that moves with spend.
        if !interval.is_zero() && interval < Duration::from_secs(1) {
            problems.add(INTERVAL, "must be 0 (off) or at least 1s");
        }
        let balance_url = match self.balance_url {
            Some(url) => {
                let url = url.trim().to_string();
                check_url("account.balance_url", &url, problems);
                url
            }
            None => api
                .and_then(|api| default_balance_url(&api.base_url))
                .unwrap_or_default(),
        };
        let enabled = self.enabled.unwrap_or(true);
        AccountSettings {
            balance_interval: (enabled && !interval.is_zero()).then_some(interval),
            balance_url,
        }
    }
}

/// `/sms/getBalance` at `base_url`'s scheme, host and port (the record endpoint lives
/// under `/otp`, the balance endpoint at the host's root).
fn default_balance_url(base_url: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(base_url).ok()?;
    url.set_path(defaults::BALANCE_PATH);
    Some(url.to_string())
}

/// An order must outlive its OTP's validity, for every app.
fn check_max_age(tracking: &TrackingSettings, apps: &[AppSettings], problems: &mut Problems) {
    let longest_window = apps
        .iter()
        .filter_map(|a| a.verification_window)
        .chain([tracking.verification_window])
        .max()
        .unwrap_or(tracking.verification_window);
    let reported = ["tracking.max_age", "tracking.verification_window"]
        .iter()
        .any(|key| problems.about(key));
    if tracking.max_age <= longest_window && !reported {
        problems.add(
            "tracking.max_age",
            format!(
                "must be longer than the verification window ({})",
                humantime::format_duration(longest_window)
            ),
        );
    }
}
