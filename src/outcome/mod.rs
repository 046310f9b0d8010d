//! Pure rules: what a record says about an order ([`observe`]), when the order's fate
//! is decided and when to poll next ([`rules`]), which metric samples a finalized
//! order produces ([`samples`]), which facts a poll reveals first ([`signals`]) and what
//! is expected of a country and channel ([`expect`]). No I/O and no clocks: every function takes `now` so it
//! can be tested exhaustively.

mod expect;
mod observe;
mod rules;
mod samples;
mod signals;

pub use expect::{DelayHistogram, Estimates, Expectation, OverdueRule, Stage};
pub use observe::{
    observe, Attempt, Observation, ReadFor, Reading, MAX_SEGMENTS_PER_SMS, TIME_SLACK_MS,
    VALIDATED_FIELDS,
};
pub use rules::{after, decide, Limits, PollPurpose, Sighting, Step, Tracking};
pub use samples::{
    country_of, fallbacks, order_channel, order_network, samples, AttemptSample, OrderSamples,
    UNKNOWN,
};
pub use signals::{next_expected, reveal, Counted, Expecting, Fact, NextExpected};

/// A delivery channel, as used in labels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Call,
    Sna,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Sna => "sna",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sms" => Some(Channel::Sms),
            "call" | "voice" => Some(Channel::Call),
            "sna" => Some(Channel::Sna),
            _ => None,
        }
    }
}

/// An attempt's result (label `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptResult {
    Delivered,
    Failed,
    Pending,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Failed => "failed",
            AttemptResult::Pending => "pending",
        }
    }
}

/// An order's fate (label `outcome`), decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Verified,
    Failed,
    Unverified,
    Undelivered,
    NotFound,
    Expired,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Verified,
        Outcome::Failed,
        Outcome::Unverified,
        Outcome::Undelivered,
        Outcome::NotFound,
        Outcome::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::Failed => "failed",
            Outcome::Unverified => "unverified",
            Outcome::Undelivered => "undelivered",
            Outcome::NotFound => "not_found",
            Outcome::Expired => "expired",
        }
    }
}

/// Builders shared by the tests of the parts.
#[cfg(test)]
mod test_support {
    use super::*;
    use crate::api::wire::Matched;
    use chrono::FixedOffset;

    pub fn zone() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    /// The default bounds (64 attempts, 10 USD an attempt).
    pub fn reading() -> Reading {
        Reading {
            zone: zone(),
            max_attempts: 64,
            max_cost_per_attempt_usd: 10.0,
        }
    }

    /// 2022-07-12 13:00:00 +08:00, just before the tests' records.
    pub const ISSUED_MS: i64 = 1_657_602_000_000;

    /// Read for an order issued at [`ISSUED_MS`], an hour later.
    pub fn read_for() -> ReadFor {
        ReadFor {
            issued_ms: ISSUED_MS,
            now_ms: ISSUED_MS + 3_600_000,
        }
    }

    pub fn attempt(channel: Channel, submit_ms: i64, result: AttemptResult) -> Attempt {
        Attempt {
            channel,
            seq: 0,
            submit_ms: Some(submit_ms),
            result,
            mcc: None,
            mnc: None,
            latency_ms: None,
            report_delay_ms: None,
            cost_usd: 0.0,
            segments: 0,
        }
    }

    pub fn obs(matched: Option<i64>, attempts: Vec<Attempt>) -> Observation {
        Observation {
            matched: matched.map(Matched),
            attempts,
            ..Observation::default()
        }
    }
}
