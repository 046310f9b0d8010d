//! Configuration: the YAML file operators write. Key names are a contract used by
//! outside tests; every key but the credentials has a default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use serde::{Deserialize, Deserializer};

/// Errors found while loading a configuration file. Each names the file, and where
/// the YAML parser knows it, the key and the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP server (`/metrics`, `/`, `/healthz`, `/readyz`).
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Directory of the durable state (a redb file).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    pub api: ApiConfig,
    /// App used for spool lines without an `appId`.
    #[serde(default)]
    pub default_app: Option<String>,
    /// The only app ids accepted: keeps the `app_id` label bounded.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub tracking: TrackingConfig,
    #[serde(default)]
    pub polling: PollingConfig,
}

/// The provider's API and how hard we may use it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The record endpoint is `{base_url}/verification/orderId/record`.
    #[serde(default = "defaults::base_url")]
    pub base_url: String,
    pub api_key: String,
    /// The secret itself (`${VAR}` expanded from the environment) …
    #[serde(default)]
    pub api_secret: Option<Secret>,
    /// … or a file holding it (systemd credentials, Kubernetes secrets).
    #[serde(default)]
    pub api_secret_file: Option<PathBuf>,
    /// Total timeout of one record query.
    #[serde(default = "defaults::timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: u32,
    #[serde(default = "defaults::max_requests_per_second")]
    pub max_requests_per_second: u32,
    /// Zone of provider times written without an offset (`yyyy-MM-dd HH:mm:ss`).
    #[serde(default = "defaults::timezone", deserialize_with = "timezone")]
    pub timezone: FixedOffset,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("api_secret", &self.api_secret)
            .field("api_secret_file", &self.api_secret_file)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("timezone", &self.timezone)
            .finish()
    }
}

/// A secret string that never prints itself.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    /// Overrides `tracking.verification_window` for this app (its OTP validity).
    #[serde(default, deserialize_with = "opt_duration")]
    pub verification_window: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    #[serde(default = "defaults::spool_dir")]
    pub dir: PathBuf,
    /// Full directory scan period; events from the watcher only wake the scanner early.
    #[serde(default = "defaults::rescan_interval", deserialize_with = "duration")]
    pub rescan_interval: Duration,
    /// Larger files are quarantined whole.
    #[serde(default = "defaults::max_file_bytes")]
    pub max_file_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: defaults::spool_dir(),
            rescan_interval: defaults::rescan_interval(),
            max_file_bytes: defaults::max_file_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    #[serde(
        default = "defaults::verification_window",
        deserialize_with = "duration"
    )]
    pub verification_window: Duration,
    #[serde(default = "defaults::settle_timeout", deserialize_with = "duration")]
    pub settle_timeout: Duration,
    #[serde(default = "defaults::not_found_grace", deserialize_with = "duration")]
    pub not_found_grace: Duration,
    #[serde(default = "defaults::max_age", deserialize_with = "duration")]
    pub max_age: Duration,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            verification_window: defaults::verification_window(),
            settle_timeout: defaults::settle_timeout(),
            not_found_grace: defaults::not_found_grace(),
            max_age: defaults::max_age(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollingConfig {
    #[serde(default = "defaults::first_delay", deserialize_with = "duration")]
    pub first_delay: Duration,
    #[serde(default = "defaults::max_interval", deserialize_with = "duration")]
    pub max_interval: Duration,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            first_delay: defaults::first_delay(),
            max_interval: defaults::max_interval(),
        }
    }
}

mod defaults {
    use super::*;
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8467))
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/itnio-otp-exporter")
    }
    pub fn base_url() -> String {
        "https://api.itniotech.com/otp".to_string()
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_in_flight() -> u32 {
        32
    }
    pub fn max_requests_per_second() -> u32 {
        50
    }
    pub fn timezone() -> FixedOffset {
        // The provider's own zone (China Standard Time).
        FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
    }
    pub fn spool_dir() -> PathBuf {
        PathBuf::from("/var/spool/itnio-otp")
    }
    pub fn rescan_interval() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_file_bytes() -> u64 {
        16 * 1024 * 1024
    }
    pub fn verification_window() -> Duration {
        Duration::from_secs(300)
    }
    pub fn settle_timeout() -> Duration {
        Duration::from_secs(120)
    }
    pub fn not_found_grace() -> Duration {
        Duration::from_secs(120)
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(1800)
    }
    pub fn first_delay() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_interval() -> Duration {
        Duration::from_secs(60)
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (use e.g. 30s, 5m, 1h)"
        ))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<FixedOffset, D::Error> {
    let text = String::deserialize(d)?;
    parse_offset(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid timezone {text:?}: use a fixed offset like +08:00 or Z"
        ))
    })
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

impl Config {
    /// Reads, expands and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses a configuration text; `env` resolves `${VAR}` in `api.api_secret`.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            invalid(describe_yaml_error(text, &key, &inner))
        })?;
        let line_of = |key: &str| line_of_key(text, key);
        let at = |key: &str| match line_of(key) {
            Some(line) => format!("key `{key}` (line {line})"),
            None => format!("key `{key}`"),
        };

        // Resolve the secret now so that a missing variable or file fails early.
        let secret = match (&config.api.api_secret, &config.api.api_secret_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "{}: set either api_secret or api_secret_file, not both",
                    at("api.api_secret_file")
                )))
            }
            (None, None) => {
                return Err(invalid(
                    "key `api.api_secret` is missing: set api.api_secret (\"${VAR}\" reads the environment) or api.api_secret_file".into(),
                ))
            }
            (Some(raw), None) => expand_env(raw.expose(), env)
                .map_err(|var| invalid(format!("{}: environment variable {var} is not set", at("api.api_secret"))))?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| {
                    invalid(format!(
                        "{}: cannot read {}: {e}",
                        at("api.api_secret_file"),
                        file.display()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        if secret.is_empty() {
            return Err(invalid(format!(
                "{}: the secret is empty",
                at("api.api_secret")
            )));
        }
        config.api.api_secret = Some(Secret(secret));
        config.api.api_secret_file = None;

        if config.api.api_key.trim().is_empty() {
            return Err(invalid(format!("{}: must not be empty", at("api.api_key"))));
        }
        let base = config.api.base_url.trim_end_matches('/').to_string();
        check_base_url(&base)
            .map_err(|problem| invalid(format!("{}: {problem}", at("api.base_url"))))?;
        config.api.base_url = base;
        if config.api.max_in_flight == 0 {
            return Err(invalid(format!(
                "{}: must be at least 1",
                at("api.max_in_flight")
            )));
        }
        if config.api.max_requests_per_second == 0 {
            return Err(invalid(format!(
                "{}: must be at least 1",
                at("api.max_requests_per_second")
            )));
        }
        if config.api.timeout.is_zero() {
            return Err(invalid(format!(
                "{}: must be more than 0",
                at("api.timeout")
            )));
        }
        if config.apps.is_empty() {
            // One app is the common case: `default_app` alone is enough.
            match &config.default_app {
                Some(app) => config.apps.push(AppConfig {
                    id: app.clone(),
                    verification_window: None,
                }),
                None => return Err(invalid(
                    "keys `apps` and `default_app` are missing: list at least one app (apps: [{id: ...}]) or set default_app; orders of other apps are rejected".into(),
                )),
            }
        }
        let mut seen = BTreeMap::new();
        for app in &config.apps {
            if !valid_app_id(&app.id) {
                return Err(invalid(format!(
                    "{}: app id {:?} must be 1-64 visible ASCII characters",
                    at("apps"),
                    app.id
                )));
            }
            if seen.insert(app.id.clone(), ()).is_some() {
                return Err(invalid(format!(
                    "{}: app {:?} is listed twice",
                    at("apps"),
                    app.id
                )));
            }
        }
        match &config.default_app {
            Some(app) if !seen.contains_key(app) => {
                return Err(invalid(format!(
                    "{}: {app:?} is not one of apps[].id",
                    at("default_app")
                )))
            }
            None if config.apps.len() == 1 => config.default_app = Some(config.apps[0].id.clone()),
            _ => {}
        }
        if config.spool.max_file_bytes == 0 {
            return Err(invalid(format!(
                "{}: must be more than 0",
                at("spool.max_file_bytes")
            )));
        }
        // Upper bounds keep time arithmetic far from overflow and catch unit slips (`5h`
        // for `5m`); nothing an OTP needs comes near them. (key, value, may it be 0?)
        let durations = [
            ("spool.rescan_interval", config.spool.rescan_interval, false),
            (
                "tracking.verification_window",
                config.tracking.verification_window,
                false,
            ),
            (
                "tracking.settle_timeout",
                config.tracking.settle_timeout,
                true,
            ),
            (
                "tracking.not_found_grace",
                config.tracking.not_found_grace,
                true,
            ),
            ("tracking.max_age", config.tracking.max_age, false),
            ("polling.first_delay", config.polling.first_delay, false),
            ("polling.max_interval", config.polling.max_interval, false),
        ];
        for (key, value, zero_allowed) in durations {
            if value.is_zero() && !zero_allowed {
                return Err(invalid(format!("{}: must be more than 0", at(key))));
            }
        }
        let durations = durations.map(|(key, value, _)| (key, value));
        let app_windows = config
            .apps
            .iter()
            .filter_map(|a| a.verification_window)
            .map(|w| ("apps[].verification_window", w));
        for (key, value) in durations.into_iter().chain(app_windows) {
            if value > MAX_DURATION {
                return Err(invalid(format!(
                    "{}: {} is longer than the limit of 7 days",
                    at(key),
                    humantime::format_duration(value)
                )));
            }
        }
        if config.api.timeout > MAX_API_TIMEOUT {
            return Err(invalid(format!(
                "{}: must not exceed 10 minutes",
                at("api.timeout")
            )));
        }
        if config.api.max_in_flight > MAX_IN_FLIGHT {
            return Err(invalid(format!(
                "{}: must not exceed {MAX_IN_FLIGHT}",
                at("api.max_in_flight")
            )));
        }
        if config.polling.max_interval < config.polling.first_delay {
            return Err(invalid(format!(
                "{}: must not be shorter than polling.first_delay",
                at("polling.max_interval")
            )));
        }
        let longest_window = config
            .apps
            .iter()
            .filter_map(|a| a.verification_window)
            .chain([config.tracking.verification_window])
            .max()
            .unwrap_or(config.tracking.verification_window);
        if config.tracking.max_age <= longest_window {
            return Err(invalid(format!(
                "{}: must be longer than the verification window ({})",
                at("tracking.max_age"),
                humantime::format_duration(longest_window)
            )));
        }
        if config.state_dir.as_os_str().is_empty() {
            return Err(invalid(format!("{}: must not be empty", at("state_dir"))));
        }
        Ok(config)
    }

    /// The secret, resolved at load time.
    pub fn secret(&self) -> &str {
        self.api
            .api_secret
            .as_ref()
            .map(Secret::expose)
            .unwrap_or("")
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

/// Says which key is wrong and on which line. The parser's own location points at the
/// enclosing mapping for values checked by our deserializers, so the line of a known
/// key is looked up in the text; unknown keys keep the parser's (exact) location.
fn describe_yaml_error(text: &str, key: &str, error: &serde_yaml::Error) -> String {
    let mut message = error.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    // serde_yaml prefixes a partial path ("api: ..."); the full key is said below.
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && key.starts_with(prefix) {
            message = rest.to_string();
        }
    }
    let parser_line = error.location().map(|l| l.line());
    let known_key = !(key.is_empty() || key == ".");
    let line = if message.contains("unknown field") || !known_key {
        parser_line
    } else {
        line_of_key(text, key).or(parser_line)
    };
    match (known_key, line) {
        (true, Some(line)) => format!("key `{key}` (line {line}): {message}"),
        (true, None) => format!("key `{key}`: {message}"),
        (false, Some(line)) => format!("line {line}: {message}"),
        (false, None) => message,
    }
}

/// Longest accepted tracking, polling or rescan duration.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
const MAX_API_TIMEOUT: Duration = Duration::from_secs(600);
/// One worker task per in-flight query; far more than any provider account allows.
const MAX_IN_FLIGHT: u32 = 1024;

/// The base URL is shown on `/` and in logs, so it must not carry credentials; the
/// error then does not repeat it.
fn check_base_url(base: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(base).map_err(|e| format!("{base:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password (the API authenticates with api_key and the secret)".into());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{base:?} is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{base:?} must not have a query or fragment (the endpoint path is appended)"
        ));
    }
    Ok(())
}

/// App ids end up as label values and in request bodies: visible ASCII only.
pub fn valid_app_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Expands `${VAR}` references; returns the missing variable's name on failure.
fn expand_env(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                out.push_str(&env(name).ok_or_else(|| name.to_string())?);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Best-effort line number of a dotted key (`api.timeout`) in the YAML text, for
/// errors found after parsing (the parser already reports lines for its own errors).
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let mut wanted = dotted.split('.').peekable();
    let mut current = wanted.next()?;
    let mut min_indent: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(min) = min_indent {
            if indent <= min {
                continue;
            }
        }
        let key = trimmed.trim_start_matches("- ");
        if key.starts_with(&format!("{current}:")) {
            match wanted.next() {
                Some(next) => {
                    current = next;
                    min_indent = Some(indent);
                }
                None => return Some(index + 1),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "api:\n  api_key: k\n  api_secret: s\napps:\n  - id: ad454212\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("test.yml"), &|name| {
            (name == "ITNIO_API_SECRET").then(|| "from-env".to_string())
        })
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8467".parse().unwrap());
        assert_eq!(c.api.base_url, "https://api.itniotech.com/otp");
        assert_eq!(c.api.timeout, Duration::from_secs(10));
        assert_eq!(c.api.max_in_flight, 32);
        assert_eq!(c.api.max_requests_per_second, 50);
        assert_eq!(c.default_app.as_deref(), Some("ad454212"));
        assert_eq!(c.spool.rescan_interval, Duration::from_secs(30));
        assert_eq!(c.spool.max_file_bytes, 16 << 20);
        assert_eq!(c.tracking.verification_window, Duration::from_secs(300));
        assert_eq!(c.tracking.settle_timeout, Duration::from_secs(120));
        assert_eq!(c.tracking.not_found_grace, Duration::from_secs(120));
        assert_eq!(c.tracking.max_age, Duration::from_secs(1800));
        assert_eq!(c.polling.first_delay, Duration::from_secs(5));
        assert_eq!(c.polling.max_interval, Duration::from_secs(60));
        assert_eq!(c.api.timezone.local_minus_utc(), 8 * 3600);
        assert_eq!(c.secret(), "s");
    }

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
listen: "0.0.0.0:8467"
state_dir: /var/lib/itnio-otp-exporter
api:
  base_url: https://api.itniotech.com/otp
  api_key: "bDqJFiq9"
  api_secret: "${ITNIO_API_SECRET}"
  timeout: 10s
  max_in_flight: 32
  max_requests_per_second: 50
default_app: ad454212
apps:
  - id: ad454212
  - id: other
    verification_window: 10m
spool:
  dir: /var/spool/itnio-otp
  rescan_interval: 30s
tracking:
  verification_window: 5m
  settle_timeout: 2m
  not_found_grace: 2m
  max_age: 30m
polling:
  first_delay: 5s
  max_interval: 60s
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.secret(), "from-env");
        assert_eq!(c.window_of("other"), Duration::from_secs(600));
        assert_eq!(c.window_of("ad454212"), Duration::from_secs(300));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = error("api:\n  api_key: k\n  api_secret: s\n  timeuot: 5s\napps:\n  - id: a\n");
        assert!(e.contains("timeuot"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("test.yml"), "{e}");
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let e = error(&format!("{MINIMAL}tracking:\n  settle_timeout: soon\n"));
        assert!(e.contains("tracking.settle_timeout"), "{e}");
        assert!(e.contains("line 7"), "{e}");
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(error(&format!("{MINIMAL}listen: nowhere\n")).contains("listen"));
        assert!(error(
            "api:\n  api_key: k\n  api_secret: s\n  max_in_flight: 0\napps:\n  - id: a\n"
        )
        .contains("`api.max_in_flight` (line 4)"));
        assert!(error(
            "api:\n  api_key: k\n  api_secret: s\n  max_in_flight: -3\napps:\n  - id: a\n"
        )
        .contains("api.max_in_flight"));
        assert!(error(
            "api:\n  api_key: k\n  api_secret: s\n  base_url: ftp://x\napps:\n  - id: a\n"
        )
        .contains("api.base_url"));
        for (key, line) in [
            ("tracking.max_age", "tracking:\n  max_age: 100000000y\n"),
            ("polling.max_interval", "polling:\n  max_interval: 8days\n"),
            ("api.max_in_flight", ""),
        ] {
            let text = if line.is_empty() {
                MINIMAL.replace("api_key: k", "api_key: k\n  max_in_flight: 5000")
            } else {
                format!("{MINIMAL}{line}")
            };
            let e = error(&text);
            assert!(e.contains(key), "{key}: {e}");
        }
        assert!(
            error(&MINIMAL.replace("api_key: k", "api_key: k\n  timeout: 1h"))
                .contains("api.timeout")
        );
        let leaky = error(&MINIMAL.replace(
            "api_key: k",
            "api_key: k\n  base_url: https://bob:pa55word@api.example.com/otp",
        ));
        assert!(
            leaky.contains("api.base_url") && leaky.contains("user name or password"),
            "{leaky}"
        );
        assert!(!leaky.contains("pa55word"), "{leaky}");
        for bad in ["https://", "https://x/otp?a=1", "not a url"] {
            let e = error(
                &MINIMAL.replace("api_key: k", &format!("api_key: k\n  base_url: \"{bad}\"")),
            );
            assert!(e.contains("api.base_url"), "{bad}: {e}");
        }
        assert_eq!(
            parse(&MINIMAL.replace(
                "api_key: k",
                "api_key: k\n  base_url: http://127.0.0.1:8468/otp/"
            ))
            .unwrap()
            .api
            .base_url,
            "http://127.0.0.1:8468/otp"
        );
        assert!(
            error("api:\n  api_key: k\n  api_secret: s\n  timezone: Mars\napps:\n  - id: a\n")
                .contains("api.timezone")
        );
        assert!(error("api:\n  api_key: k\n  api_secret: s\n").contains("apps"));
        let only_default =
            parse("api:\n  api_key: k\n  api_secret: s\ndefault_app: solo\n").unwrap();
        assert_eq!(only_default.app_ids(), vec!["solo".to_string()]);
        assert_eq!(only_default.default_app.as_deref(), Some("solo"));
        assert!(
            error("api:\n  api_key: k\n  api_secret: s\ndefault_app: \"a b\"\n").contains("app id")
        );
        assert!(error(&format!("{MINIMAL}default_app: nope\n")).contains("default_app"));
        assert!(error(&format!("{MINIMAL}tracking:\n  max_age: 1m\n")).contains("tracking.max_age"));
        assert!(error(&format!(
            "{MINIMAL}polling:\n  first_delay: 2m\n  max_interval: 1m\n"
        ))
        .contains("polling.max_interval"));
        assert!(error("api:\n  api_key: k\napps:\n  - id: a\n").contains("api_secret"));
        assert!(error("api:\n  api_secret: s\napps:\n  - id: a\n").contains("api_key"));
        assert!(error("api: [1, 2\n").contains("test.yml"));
        assert!(error(&format!("{MINIMAL}apps:\n  - id: a\n")).contains("apps"));
    }

    #[test]
    fn missing_env_var_is_named_and_secret_is_not_printed() {
        let e = error("api:\n  api_key: k\n  api_secret: \"${NOPE_VAR}\"\napps:\n  - id: a\n");
        assert!(e.contains("NOPE_VAR"), "{e}");
        let c =
            parse("api:\n  api_key: k\n  api_secret: hunter2-secret\napps:\n  - id: a\n").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(debug.contains("Secret(***)"));
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "file-secret\n").unwrap();
        let text = format!(
            "api:\n  api_key: k\n  api_secret_file: {}\napps:\n  - id: a\n",
            file.display()
        );
        assert_eq!(parse(&text).unwrap().secret(), "file-secret");
        let missing = "api:\n  api_key: k\n  api_secret_file: /nonexistent/x\napps:\n  - id: a\n";
        assert!(error(missing).contains("`api.api_secret_file` (line 3)"));
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+08:00").unwrap().local_minus_utc(), 28800);
        assert_eq!(parse_offset("-0530").unwrap().local_minus_utc(), -19800);
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("8").is_none());
        assert!(parse_offset("+99:00").is_none());
    }
}
