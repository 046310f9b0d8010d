//! The fault scenario: what goes wrong with record queries and balance queries, and
//! which country/channel pairs are down.
//!
//! Fault draws use their own RNG, never an order's, so injecting faults changes only
//! whether a query gets its record, not the record itself. Outages are the exception
//! by design: they make the attempts of orders sent during them fail, or with
//! `kind: silent` never get a result. The documented examples are
//! `examples/scenario-sms-fail.yml` (every field explained) and
//! `examples/scenario-sms-silent.yml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use rand::Rng;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::SimError;
use super::profile::{profile_for_country, supported_countries, Channel};

/// A provider status the scenario may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InjectedStatus(i32);

impl InjectedStatus {
    /// The statuses of the provider's table other than success.
    pub const KNOWN: [i32; 5] = [-1, -2, -16, -18, -22];

    pub fn new(code: i32) -> Option<InjectedStatus> {
        Self::KNOWN.contains(&code).then_some(InjectedStatus(code))
    }

    pub fn code(self) -> i32 {
        self.0
    }

    /// The provider's reason text for the status.
    pub fn reason(self) -> &'static str {
        match self.0 {
            -1 => "account authentication error",
            -2 => "IP restricted",
            -16 => "timestamp expired",
            -18 => "system error",
            -22 => "parameter error",
            _ => "error",
        }
    }
}

impl Serialize for InjectedStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for InjectedStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StatusVisitor(InjectedStatus::new, &InjectedStatus::KNOWN))
    }
}

/// A status `GET /sms/getBalance` may be made to answer: one of the balance page's
/// failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BalanceStatus(i32);

impl BalanceStatus {
    /// The balance page's statuses other than success.
    pub const KNOWN: [i32; 5] = [-1, -2, -13, -16, -18];

    pub fn new(code: i32) -> Option<BalanceStatus> {
        Self::KNOWN.contains(&code).then_some(BalanceStatus(code))
    }

    pub fn code(self) -> i32 {
        self.0
    }

    /// The provider's reason text for the status.
    pub fn reason(self) -> &'static str {
        match self.0 {
            -1 => "authentication error",
            -2 => "restricted IP access",
            -13 => "user locked",
            -16 => "timestamp expired",
            -18 => "system error",
            _ => "error",
        }
    }
}

/// A number in YAML, as it is written there (`balance_status: -13`).
impl Serialize for BalanceStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<'de> Deserialize<'de> for BalanceStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StatusVisitor(BalanceStatus::new, &BalanceStatus::KNOWN))
    }
}

/// Reads a provider status written as a number or a numeric string, accepting only
/// the `known` ones (through `new`).
struct StatusVisitor<T>(fn(i32) -> Option<T>, &'static [i32]);

impl<T> Visitor<'_> for StatusVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a provider status, one of {:?}", self.1)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        i32::try_from(v).ok().and_then(self.0).ok_or_else(|| {
            E::custom(format!(
                "status {v} cannot be injected (use one of {:?})",
                self.1
            ))
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        let code: i64 = v
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("status {v:?} is not a number")))?;
        self.visit_i64(code)
    }
}

/// Durations as humantime text (`2s`, `1h`); bare numbers are seconds.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 2s, 500ms or 1h")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("negative duration {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("invalid duration {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v.trim()).map_err(|e| {
                    E::custom(format!(
                        "invalid duration {v:?}: {e} (use e.g. 2s, 500ms, 1h)"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

mod opt_duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration_text::deserialize(d).map(Some)
    }
}

fn default_slow() -> Duration {
    Duration::from_secs(2)
}

/// What an outage does to the attempts it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageKind {
    /// The attempt fails (a failed DLR, a rejected call, a failed SNA answer).
    #[default]
    Fail,
    /// The attempt is accepted (and billed) but never gets a result: no DLR, no
    /// answer, no hang-up. The flow falls back as for an SMS without a report in time.
    Silent,
}

impl OutageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutageKind::Fail => "fail",
            OutageKind::Silent => "silent",
        }
    }
}

/// A country/channel outage: attempts of orders sent in `[from, until)` fail (or, with
/// `kind: silent`, never get a result). Times are after simulator start, before time
/// scaling (like every simulated delay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// ISO 3166-1 alpha-2 code of a simulated country (`IN`, `GU`, ...).
    pub country: String,
    pub channel: Channel,
    #[serde(default)]
    pub kind: OutageKind,
    #[serde(default, with = "duration_text")]
    pub from: Duration,
    /// Absent: until the simulator stops.
    #[serde(
        default,
        with = "opt_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Duration>,
}

/// The live fault scenario (YAML or JSON; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of record queries answered with each provider status, e.g. `"-18": 0.05`.
    pub status_rates: BTreeMap<InjectedStatus, f64>,
    /// Share answered with HTTP 500, 502 or 503.
    pub http_error_rate: f64,
    /// Share answered with HTTP 429 and `Retry-After: 1`.
    pub rate_limited_rate: f64,
    /// Share answered with a truncated JSON body.
    pub invalid_body_rate: f64,
    /// Share answered only after `slow` (not scaled: it is aimed at client timeouts).
    pub slow_rate: f64,
    #[serde(with = "duration_text")]
    pub slow: Duration,
    /// Every record query is answered `-1`.
    pub auth_outage: bool,
    /// Every record query is answered `-2`.
    pub ip_restricted: bool,
    /// Every `GET /sms/getBalance` is answered with this status (`-2` even before the
    /// signature is checked, the others after it); `None`: the balance. Only the
    /// balance endpoint: the record queries' faults above leave it alone.
    pub balance_status: Option<BalanceStatus>,
    pub outages: Vec<Outage>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            status_rates: BTreeMap::new(),
            http_error_rate: 0.0,
            rate_limited_rate: 0.0,
            invalid_body_rate: 0.0,
            slow_rate: 0.0,
            slow: default_slow(),
            auth_outage: false,
            ip_restricted: false,
            balance_status: None,
            outages: Vec::new(),
        }
    }
}

/// What happens to one record query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    Http(u16),
    RateLimited,
    InvalidBody,
    Status(InjectedStatus),
}

/// The fault draw of one record query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    pub delay: Option<Duration>,
    pub injected: Injected,
}

impl Faults {
    /// Parses and validates a scenario (YAML, of which JSON is a subset). Empty text is
    /// the empty scenario.
    pub fn parse(text: &str) -> Result<Faults, String> {
        if text.trim().is_empty() {
            return Ok(Faults::default());
        }
        let faults: Faults = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        faults.validate()?;
        Ok(faults)
    }

    /// Reads a scenario file; errors name the file.
    pub fn load(path: &Path) -> Result<Faults, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ScenarioRead {
            path: path.to_path_buf(),
            source,
        })?;
        Faults::parse(&text).map_err(|detail| SimError::Scenario {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Rates are shares in [0, 1]; the exclusive ones (everything but `slow_rate`)
    /// together at most 1; outages name simulated countries and end after they start.
    pub fn validate(&self) -> Result<(), String> {
        let mut exclusive = 0.0;
        let mut rates: Vec<(String, f64)> = vec![
            ("http_error_rate".into(), self.http_error_rate),
            ("rate_limited_rate".into(), self.rate_limited_rate),
            ("invalid_body_rate".into(), self.invalid_body_rate),
        ];
        rates.extend(
            self.status_rates
                .iter()
                .map(|(s, r)| (format!("status_rates.\"{}\"", s.code()), *r)),
        );
        for (name, rate) in &rates {
            if !(0.0..=1.0).contains(rate) {
                return Err(format!("{name}: {rate} is not a share between 0 and 1"));
            }
            exclusive += rate;
        }
        if exclusive > 1.0 + 1e-9 {
            return Err(format!(
                "the rates of HTTP errors, 429s, invalid bodies and statuses add up to {exclusive}, more than 1"
            ));
        }
        if !(0.0..=1.0).contains(&self.slow_rate) {
            return Err(format!(
                "slow_rate: {} is not a share between 0 and 1",
                self.slow_rate
            ));
        }
        for (i, outage) in self.outages.iter().enumerate() {
            if profile_for_country(&outage.country).is_none() {
                return Err(format!(
                    "outages[{i}].country: {:?} is not simulated (simulated: {})",
                    outage.country,
                    supported_countries()
                ));
            }
            if outage.until.is_some_and(|until| until <= outage.from) {
                return Err(format!("outages[{i}]: until must be after from"));
            }
        }
        Ok(())
    }

    /// The outage (the first listed, when several overlap) that hits an attempt on
    /// `(country, channel)` of an order sent `elapsed_ms` (wall clock) after simulator
    /// start, if any.
    pub fn outage_hits(
        &self,
        country: &str,
        channel: Channel,
        elapsed_ms: f64,
        scale: f64,
    ) -> Option<OutageKind> {
        self.outages
            .iter()
            .find(|o| {
                o.channel == channel
                    && o.country.eq_ignore_ascii_case(country)
                    && elapsed_ms >= o.from.as_secs_f64() * 1000.0 * scale
                    && o.until
                        .is_none_or(|until| elapsed_ms < until.as_secs_f64() * 1000.0 * scale)
            })
            .map(|o| o.kind)
    }

    /// Decides the fate of one record query.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Draw {
        let delay =
            (self.slow_rate > 0.0 && rng.gen::<f64>() < self.slow_rate).then_some(self.slow);
        let u: f64 = rng.gen();
        let mut edge = 0.0;
        let mut hit = |rate: f64| {
            edge += rate.max(0.0);
            u < edge
        };
        let injected = if hit(self.http_error_rate) {
            Injected::Http([500, 502, 503][rng.gen_range(0..3)])
        } else if hit(self.rate_limited_rate) {
            Injected::RateLimited
        } else if hit(self.invalid_body_rate) {
            Injected::InvalidBody
        } else {
            self.status_rates
                .iter()
                .find(|(_, rate)| hit(**rate))
                .map_or(Injected::None, |(status, _)| Injected::Status(*status))
        };
        Draw { delay, injected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn parses_the_documented_scenario() {
        let f = Faults::parse(
            r#"
status_rates: {"-18": 0.05, "-22": 0.01, "-2": 0.0}
http_error_rate: 0.02
rate_limited_rate: 0.01
invalid_body_rate: 0.01
slow_rate: 0.05
slow: 2s
auth_outage: false
outages:
  - {country: IN, channel: sms, from: 0s, until: 1h}
"#,
        )
        .expect("valid scenario");
        assert_eq!(f.status_rates.get(&InjectedStatus(-18)), Some(&0.05));
        assert_eq!(f.slow, Duration::from_secs(2));
        assert_eq!(f.outages[0].until, Some(Duration::from_secs(3600)));
        assert_eq!(
            f.outage_hits("in", Channel::Sms, 10.0, 1.0),
            Some(OutageKind::Fail),
            "kind defaults to fail"
        );
        assert_eq!(f.outage_hits("IN", Channel::Call, 10.0, 1.0), None);
        assert_eq!(f.outage_hits("IN", Channel::Sms, 3_600_000.0, 1.0), None);
        assert_eq!(
            f.outage_hits("IN", Channel::Sms, 100_000.0, 0.02),
            None,
            "scaled hour is 72 s"
        );
    }

    #[test]
    fn silent_outages_parse_and_hit() {
        let f = Faults::parse(
            "outages:\n  - {country: ID, channel: sms, kind: silent, from: 8m}\n  - {country: ID, channel: call, kind: fail}\n",
        )
        .expect("valid scenario");
        assert_eq!(f.outages[0].kind, OutageKind::Silent);
        assert_eq!(f.outages[1].kind, OutageKind::Fail);
        assert_eq!(f.outage_hits("ID", Channel::Sms, 479_000.0, 1.0), None);
        assert_eq!(
            f.outage_hits("ID", Channel::Sms, 480_000.0, 1.0),
            Some(OutageKind::Silent)
        );
        assert_eq!(
            f.outage_hits("ID", Channel::Call, 0.0, 1.0),
            Some(OutageKind::Fail)
        );
        let err = Faults::parse("outages: [{country: ID, channel: sms, kind: quiet}]")
            .expect_err("unknown kind");
        assert!(err.contains("unknown variant"), "{err}");
        let text = serde_yaml::to_string(&f).expect("serialize");
        assert_eq!(Faults::parse(&text).expect("round trip"), f);
    }

    #[test]
    fn json_and_unquoted_status_keys_work() {
        let f = Faults::parse(r#"{"status_rates": {"-18": 1.0}}"#).expect("json");
        assert_eq!(f.status_rates.len(), 1);
        let f = Faults::parse("status_rates:\n  -22: 0.5\n").expect("int key");
        assert_eq!(f.status_rates.get(&InjectedStatus(-22)), Some(&0.5));
        assert_eq!(Faults::parse("  \n").expect("empty"), Faults::default());
    }

    #[test]
    fn balance_status_parses_round_trips_and_accepts_only_the_balance_pages_statuses() {
        assert_eq!(Faults::default().balance_status, None);
        let f = Faults::parse("balance_status: -13").expect("valid");
        assert_eq!(f.balance_status.map(BalanceStatus::code), Some(-13));
        assert_eq!(
            f.balance_status.map(BalanceStatus::reason),
            Some("user locked")
        );
        for text in [
            r#"{"balance_status": "-1"}"#,
            "balance_status: \"-1\"",
            "balance_status: -1",
        ] {
            let f = Faults::parse(text).expect(text);
            assert_eq!(f.balance_status, BalanceStatus::new(-1), "{text}");
        }
        assert_eq!(
            Faults::parse("balance_status: null")
                .expect("null")
                .balance_status,
            None
        );
        let yaml = serde_yaml::to_string(&f).expect("serialize");
        assert!(yaml.contains("balance_status: -13\n"), "{yaml}");
        assert_eq!(Faults::parse(&yaml).expect("round trip"), f);
        let json = serde_json::to_value(&f).expect("json");
        assert_eq!(json["balance_status"], -13);
        assert_eq!(
            serde_json::to_value(Faults::default()).expect("json")["balance_status"],
            serde_json::Value::Null
        );
        for code in BalanceStatus::KNOWN {
            assert!(Faults::parse(&format!("balance_status: {code}")).is_ok());
        }
        let err = |text: &str| Faults::parse(text).expect_err(text);
        assert!(err("balance_status: -22").contains("cannot be injected"));
        assert!(err("balance_status: 0").contains("-13"));
        assert!(err("balance_status: locked").contains("not a number"));
        assert!(err("balance_status: [-1]").contains("invalid type"));
        // -13 is a balance status only: record queries cannot be made to answer it.
        assert!(err("status_rates: {\"-13\": 0.5}").contains("cannot be injected"));
    }

    #[test]
    fn rejects_bad_scenarios_with_a_reason() {
        let err = |text: &str| Faults::parse(text).expect_err(text);
        assert!(err("http_error_rat: 0.1").contains("unknown field"));
        assert!(err("http_error_rate: 1.5").contains("http_error_rate"));
        assert!(err("status_rates: {\"-7\": 0.1}").contains("cannot be injected"));
        assert!(err("status_rates: {\"x\": 0.1}").contains("not a number"));
        assert!(err("slow: soon").contains("invalid duration"));
        assert!(err("http_error_rate: 0.6\ninvalid_body_rate: 0.6").contains("more than 1"));
        assert!(err("outages: [{country: FR, channel: sms}]").contains("not simulated"));
        assert!(err("outages: [{country: IN, channel: fax}]").contains("unknown variant"));
        assert!(
            err("outages: [{country: IN, channel: sms, from: 1h, until: 1m}]")
                .contains("until must be after from")
        );
        assert!(err("- 1\n- 2").contains("invalid type"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scenario.yaml");
        std::fs::write(&path, "slow_rate: 2").expect("write");
        let msg = Faults::load(&path).expect_err("invalid").to_string();
        assert!(
            msg.contains("scenario.yaml") && msg.contains("slow_rate"),
            "{msg}"
        );
        let missing = Faults::load(&dir.path().join("nope.yaml")).expect_err("missing");
        assert!(missing.to_string().contains("nope.yaml"));
    }

    /// The documented example scenarios under `examples/` load and mean what they say.
    #[test]
    fn the_example_scenarios_load() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let load = |name: &str| {
            let path = examples.join(name);
            Faults::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let fail = load("scenario-sms-fail.yml");
        assert_eq!(fail.outages.len(), 1);
        let o = &fail.outages[0];
        assert_eq!(
            (o.country.as_str(), o.channel, o.kind),
            ("IN", Channel::Sms, OutageKind::Fail)
        );
        assert_eq!(o.from, Duration::from_secs(480));
        assert_eq!(o.until, Some(Duration::from_secs(3600)));
        // Every field of the format appears in the commented example.
        let text = serde_yaml::to_string(&Faults::default()).expect("serialize");
        let documented =
            std::fs::read_to_string(examples.join("scenario-sms-fail.yml")).expect("read example");
        for line in text.lines().filter(|l| !l.starts_with(' ')) {
            let field = line.split(':').next().unwrap_or_default();
            assert!(
                documented.contains(&format!("\n{field}:")),
                "{field} is not in the example"
            );
        }
        for field in ["country", "channel", "kind", "from", "until"] {
            assert!(
                documented.contains(&format!("{field}:")),
                "outages' {field}"
            );
        }
        let silent = load("scenario-sms-silent.yml");
        let o = &silent.outages[0];
        assert_eq!(
            (o.country.as_str(), o.channel, o.kind, o.until),
            ("ID", Channel::Sms, OutageKind::Silent, None)
        );
    }

    #[test]
    fn draws_follow_the_rates() {
        let mut rng = StdRng::seed_from_u64(1);
        let none = Faults::default();
        assert!((0..1000).all(|_| none.draw(&mut rng)
            == Draw {
                delay: None,
                injected: Injected::None
            }));
        let all_18 = Faults::parse("status_rates: {\"-18\": 1}").expect("valid");
        assert_eq!(
            all_18.draw(&mut rng).injected,
            Injected::Status(InjectedStatus(-18))
        );
        let mixed =
            Faults::parse("http_error_rate: 0.5\nslow_rate: 0.5\nslow: 10ms").expect("valid");
        let draws: Vec<Draw> = (0..2000).map(|_| mixed.draw(&mut rng)).collect();
        let http = draws
            .iter()
            .filter(|d| matches!(d.injected, Injected::Http(500 | 502 | 503)))
            .count();
        let slow = draws.iter().filter(|d| d.delay.is_some()).count();
        assert!((850..1150).contains(&http), "{http}");
        assert!((850..1150).contains(&slow), "{slow}");
    }
}
