//! Reads the YAML tree into typed values. Type errors are said in the operator's words
//! ("expected a whole number", "durations cannot be negative") and collected, so that
//! every wrong value of a file is reported at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;
use serde_yaml::Value;

use super::problems::Problems;
use super::secret::Secret;
use super::settings::parse_offset;

/// A value that can be read from one YAML scalar. The error is the message shown
/// after the key and line.
pub(super) trait FromYaml: Sized {
    fn from_yaml(value: &Value) -> Result<Self, String>;
}

/// What the operator wrote, said plainly. Never used for secrets.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

fn is_negative(value: &Value) -> bool {
    matches!(value, Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0))
}

fn text<'v>(value: &'v Value, what: &str) -> Result<&'v str, String> {
    match value {
        Value::String(s) => Ok(s.as_str()),
        Value::Number(n) => Err(format!(
            "expected {what}, got the number {n} (quote it: \"{n}\")"
        )),
        other => Err(format!("expected {what}, got {}", describe(other))),
    }
}

fn whole_number(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(whole) => Ok(whole),
            None if is_negative(value) => Err(format!(
                "expected a whole number, got {n}: it cannot be negative"
            )),
            None => Err(format!("expected a whole number, got {n}")),
        },
        other => Err(format!("expected a whole number, got {}", describe(other))),
    }
}

impl FromYaml for u64 {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        whole_number(value)
    }
}

impl FromYaml for u32 {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let whole = whole_number(value)?;
        u32::try_from(whole).map_err(|_| format!("{whole} is too large (at most {})", u32::MAX))
    }
}

/// A decimal amount (`10`, `0.5`); YAML's `.inf` and `.nan` are not amounts.
impl FromYaml for f64 {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(f),
                _ => Err(format!("expected a finite number, got {n}")),
            },
            other => Err(format!("expected a number, got {}", describe(other))),
        }
    }
}

impl FromYaml for bool {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("expected true or false, got {}", describe(other))),
        }
    }
}

/// A size in bytes: a whole number, or a number with a unit (`B`, `KB`, `MB`, `GB`,
/// `KiB`, `MiB`, `GiB`, `TiB`; decimal units are powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromYaml for ByteSize {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        if is_negative(value) {
            return Err("sizes cannot be negative".into());
        }
        match value {
            Value::Number(_) => whole_number(value).map(ByteSize),
            Value::String(s) => parse_byte_size(s).map(ByteSize),
            other => Err(format!(
                "expected a size like 1GiB, 512MiB or a number of bytes, got {}",
                describe(other)
            )),
        }
    }
}

/// `1GiB`, `512 MiB`, `500MB`, `1024`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {t:?}: use a whole number with a unit like 1GiB, 512MiB or 500MB"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {t:?}: use a whole number with a unit like 1GiB"))?;
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("the size {t:?} is too large"))
}

impl FromYaml for String {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        text(value, "text").map(str::to_string)
    }
}

impl FromYaml for PathBuf {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        text(value, "a path").map(PathBuf::from)
    }
}

impl FromYaml for Duration {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        if is_negative(value) {
            return Err("durations cannot be negative".into());
        }
        match value {
            Value::String(s) => parse_duration(s),
            // Zero needs no unit (`balance_interval: 0` turns the poller off); where
            // zero is not allowed, validation says so.
            Value::Number(n) if n.as_u64() == Some(0) => Ok(Duration::ZERO),
            Value::Number(n) => Err(format!(
                "expected a duration with a unit, like 30s, 5m or 1h; got the number {n}"
            )),
            other => Err(format!(
                "expected a duration like 30s, 5m or 1h, got {}",
                describe(other)
            )),
        }
    }
}

/// Humantime text (`500ms`, `30s`, `5m`, `1h30m`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("durations cannot be negative (got {text:?})"));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("invalid duration {text:?}: {e} (use e.g. 30s, 5m, 1h)"))
}

impl FromYaml for FixedOffset {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        if let Value::Number(n) = value {
            // Unquoted `+0800` is read as the number 800 by YAML.
            return Err(format!(
                "expected a fixed offset like \"+08:00\" (quoted), got the number {n}"
            ));
        }
        let text = text(value, "a fixed offset like +08:00")?;
        parse_offset(text).ok_or_else(|| {
            format!("invalid timezone {text:?}: use a fixed offset like +08:00 or Z")
        })
    }
}

impl FromYaml for SocketAddr {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        const WANTED: &str = "an address like \"0.0.0.0:8467\" or \":8467\"";
        match value {
            // A bare port: quoting it would not help, so no "quote it" hint.
            Value::Number(n) => Err(format!("expected {WANTED}, got the number {n}")),
            _ => parse_listen(text(value, WANTED)?),
        }
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, and what operators type: `:PORT` (all interfaces, as Go
/// servers read it) and `localhost:PORT` (loopback; fixed to 127.0.0.1 so that start-up
/// does not depend on the resolver).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    let problem = || {
        format!(
            "invalid address {text:?}: use IP:PORT (0.0.0.0:8467, [::]:8467), :PORT for all interfaces, or localhost:PORT"
        )
    };
    let port = |port: &str| port.parse::<u16>().map_err(|_| problem());
    if let Some(rest) = trimmed.strip_prefix(':') {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port(rest)?)));
    }
    if let Some((host, rest)) = trimmed.rsplit_once(':') {
        if host.eq_ignore_ascii_case("localhost") {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port(rest)?)));
        }
    }
    trimmed.parse().map_err(|_| problem())
}

impl FromYaml for Secret {
    /// Only text: a secret written as a YAML number would be re-printed by the parser
    /// (leading zeros lost, `1e3` → 1000) and signed wrongly. The value is never echoed.
    fn from_yaml(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Ok(Secret::new(s.as_str())),
            Value::Number(_) => Err(
                "the secret is written as a YAML number: quote it (api_secret: \"...\") so that it is read exactly as written".into(),
            ),
            _ => Err("expected the secret as text (api_secret: \"...\")".into()),
        }
    }
}

/// One YAML mapping being read key by key. Keys it is asked for are taken out; what
/// is left at [`Section::finish`] is unknown and reported with the keys it knows.
pub(super) struct Section {
    prefix: String,
    entries: Vec<(String, Value)>,
    asked: Vec<&'static str>,
}

impl Section {
    /// `value` absent or empty (`spool:` with every key commented out) is an empty section.
    pub fn new(prefix: impl Into<String>, value: Option<Value>, problems: &mut Problems) -> Self {
        let prefix = prefix.into();
        let mut entries = Vec::new();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(map)) => {
                for (key, value) in map {
                    match key {
                        Value::String(key) => entries.push((key, value)),
                        other => problems.add(
                            &prefix,
                            format!("keys must be text, got {}", describe(&other)),
                        ),
                    }
                }
            }
            // Not `describe`: a misplaced secret (`api: "..."`) must not be echoed.
            Some(Value::String(_)) => {
                problems.add(&prefix, "expected a mapping (key: value lines), got text")
            }
            Some(other) => problems.add(
                &prefix,
                format!(
                    "expected a mapping (key: value lines), got {}",
                    describe(&other)
                ),
            ),
        }
        Section {
            prefix,
            entries,
            asked: Vec::new(),
        }
    }

    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The raw value of a key that holds a section or a list.
    pub fn take_value(&mut self, name: &'static str) -> Option<Value> {
        self.asked.push(name);
        let at = self.entries.iter().position(|(key, _)| key == name)?;
        Some(self.entries.remove(at).1)
    }

    /// A scalar key: `None` when absent or wrong (then the problem is recorded).
    pub fn take<T: FromYaml>(&mut self, name: &'static str, problems: &mut Problems) -> Option<T> {
        let key = self.key(name);
        problems.note_key_read(key.clone());
        let value = self.take_value(name)?;
        T::from_yaml(&value)
            .map_err(|message| problems.add(&key, message))
            .ok()
    }

    pub fn finish(self, problems: &mut Problems) {
        for (name, _) in &self.entries {
            let known = self.asked.join(", ");
            problems.add(
                &self.key(name),
                format!("unknown key (expected one of: {known})"),
            );
        }
    }
}
