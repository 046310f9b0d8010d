//! What the journal keeps of an order, and its encoding.
//!
//! One [`Entry`] per order (the `journal` table, by order id) and one [`IndexRow`] per
//! order (the `journal_by_issue` table, by issue time): lists and breakdowns read only
//! index rows, so they never decode whole entries. Both are encoded with `postcard`
//! behind a version byte: compact (an order of two attempts and eight timeline lines
//! is ~300 bytes) and cheap to decode.

use serde::{Deserialize, Serialize};

use crate::outcome::{AttemptResult, Channel, Outcome};

/// The encoding's version: the first byte of every stored value.
const VERSION: u8 = 1;

/// Most timeline lines kept per order: the first (issued) and the latest.
pub const MAX_TIMELINE: usize = 64;

/// Longest provider reason kept, in characters (a provider string is input).
pub const MAX_REASON_CHARS: usize = 64;

/// Whether the order is still tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Final,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Final => "final",
        }
    }
}

/// Everything the journal keeps of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub order_id: String,
    pub app_id: String,
    pub issued_ms: i64,
    pub state: State,
    /// The decided outcome (an order may be decided and still settling).
    pub outcome: Option<Outcome>,
    /// Why the outcome is what it is, in one sentence.
    pub rule: Option<String>,
    pub decided_ms: Option<i64>,
    pub finalized_ms: Option<i64>,
    /// Why the order was finalized when it was (every attempt settled, settle timeout…).
    pub finalize_reason: Option<String>,
    /// ISO country of the order (the `country` label of its metrics).
    pub country: Option<String>,
    /// The order's channel (the `channel` label of its metrics).
    pub channel: Option<String>,
    /// The receiver's network: the first attempt that has both.
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// The network's name in the MCC/MNC table.
    pub operator: Option<String>,
    /// Queries sent for the order (`otp_exporter_polls_per_order`).
    pub queries: u32,
    /// The receiver's number masked to its calling code and last two digits.
    pub receiver: Option<String>,
    pub attempts: Vec<AttemptDetail>,
    pub fallbacks: Vec<(Channel, Channel)>,
    pub verified_ms: Option<i64>,
    pub verification_latency_ms: Option<i64>,
    /// The provider's verification state (`matched`) as last seen.
    pub matched: Option<i64>,
    pub timeline: Vec<Event>,
    /// Timeline lines dropped by the cap (the oldest after the first).
    pub timeline_dropped: u32,
}

/// One delivery attempt as the provider last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptDetail {
    pub channel: Channel,
    /// Position in its channel's list in the record.
    pub seq: u8,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub operator: Option<String>,
    pub result: AttemptResult,
    /// The provider's raw code: SMS/SNA `status`, call `terminationCode`.
    pub provider_status: Option<i64>,
    /// The provider's reason text (SMS/SNA `reason`, call `terminationReason`).
    pub provider_reason: Option<String>,
    pub submit_ms: Option<i64>,
    /// SMS `doneTm`, call `hangupTime`, SNA `verificationBackTime`.
    pub done_ms: Option<i64>,
    /// Call `answerTime`.
    pub answer_ms: Option<i64>,
    pub latency_ms: Option<i64>,
    pub cost_usd: f64,
    pub segments: u32,
}

/// One line of an order's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: i64,
    pub what: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// The order entered the spool (at its issue time).
    Issued,
    /// A query whose answer changed something (or the first answer after failures).
    Answered {
        answer: Answer,
        changes: Vec<Change>,
    },
    /// Queries that changed nothing, `errors` of them failed; consecutive quiet runs
    /// share one line, stamped with the time of the next line written.
    Quiet {
        queries: u32,
        errors: u32,
    },
    /// The first failed query of a run (later ones of the run are `Quiet` errors).
    QueryFailed {
        detail: String,
    },
    Decided {
        outcome: Outcome,
        rule: String,
    },
    Finalized {
        outcome: Outcome,
        reason: String,
    },
}

/// What a query's answer was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Record,
    NoRecord,
}

/// What changed in the provider's record since the previous answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    AttemptAppeared {
        channel: Channel,
        seq: u8,
        result: AttemptResult,
    },
    AttemptChanged {
        channel: Channel,
        seq: u8,
        from: AttemptResult,
        to: AttemptResult,
    },
    /// The verification state (`matched`) changed.
    Matched { from: Option<i64>, to: Option<i64> },
}

/// The time index's value: what lists and breakdowns filter and add up, so that they
/// never decode an [`Entry`]. Its strings are borrowed from the entry when it is written
/// (`IndexRow<&str>`, the same encoding) and owned when it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRow<S = String> {
    pub app_id: S,
    pub state: State,
    pub outcome: Option<Outcome>,
    pub country: Option<S>,
    pub channel: Option<S>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// The operator's label form (`geo::operator_label`), `None` when unknown.
    pub operator_label: Option<S>,
    /// The operator's name as in the table.
    pub operator: Option<S>,
    /// Delivery latency of the first delivered attempt.
    pub latency_ms: Option<i64>,
    pub cost_usd: f64,
    pub attempts_delivered: u8,
    pub attempts_failed: u8,
    pub queries: u32,
    pub finalized_ms: Option<i64>,
    /// Bytes of the encoded entry (the size bound adds these up).
    pub entry_bytes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown journal encoding version {0}")]
    Version(u8),
    #[error("empty journal value")]
    Empty,
    #[error("damaged journal value")]
    Postcard(#[source] postcard::Error),
}

/// Encodes a journal value behind the version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Room for a typical entry at once: grown byte by byte it was most of the
    // journal's encoding time.
    let mut bytes = Vec::with_capacity(512);
    bytes.push(VERSION);
    // Plain structs of strings, numbers and enums always serialize.
    postcard::to_extend(value, bytes).unwrap_or_else(|_| vec![VERSION])
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&VERSION, body)) => postcard::from_bytes(body).map_err(DecodeError::Postcard),
        Some((v, _)) => Err(DecodeError::Version(*v)),
    }
}

/// A receiver's number as the journal keeps it: `+<calling code> ` then a bullet for
/// each hidden digit and the last two digits (`+91 ••••••••42`). Without a known
/// calling code only the last two digits are kept. Nothing of a number with fewer
/// than four digits is kept.
pub fn mask_receiver(number: &str, calling_code: Option<&str>) -> Option<String> {
    let mut digits = String::with_capacity(number.len());
    digits.extend(number.chars().filter(char::is_ascii_digit));
    if digits.len() < 4 {
        return None;
    }
    // The calling code follows a "+" or an international "00".
    let international = if number.trim_start().starts_with('+') {
        digits.as_str()
    } else {
        digits.strip_prefix("00").unwrap_or(&digits)
    };
    let code = calling_code.filter(|c| !c.is_empty() && international.starts_with(c));
    let national = international.len() - code.map_or(0, str::len);
    let bullets = national.saturating_sub(2);
    let last = &digits[digits.len() - 2..];
    // Built in place: every journaled snapshot masks its receiver (the poll path).
    let mut masked = String::with_capacity(code.map_or(0, |c| c.len() + 2) + 3 * bullets + 2);
    if let Some(c) = code {
        masked.push('+');
        masked.push_str(c);
        masked.push(' ');
    }
    masked.extend(std::iter::repeat_n('\u{2022}', bullets));
    masked.push_str(last);
    Some(masked)
}

/// A provider string as kept: control characters dropped, at most
/// [`MAX_REASON_CHARS`] characters.
pub fn clip_reason(text: &str) -> Option<String> {
    let kept: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_keep_only_the_calling_code_and_two_digits() {
        assert_eq!(
            mask_receiver("+919812345642", Some("91")).as_deref(),
            Some("+91 ••••••••42")
        );
        assert_eq!(
            mask_receiver("0091 98123-45642", Some("91")).as_deref(),
            Some("+91 ••••••••42")
        );
        // A code that is not at the front is not the number's.
        assert_eq!(
            mask_receiver("+4491234567", Some("91")).as_deref(),
            Some("••••••••67")
        );
        assert_eq!(mask_receiver("+1 23", Some("1")), None);
        let masked = mask_receiver("+15551234567", Some("1")).unwrap_or_default();
        assert!(!masked.contains("555123"), "{masked}");
    }

    #[test]
    fn values_round_trip_and_refuse_other_versions() {
        let row = IndexRow {
            app_id: "app".into(),
            state: State::Final,
            outcome: Some(Outcome::NotFound),
            country: Some("IN".into()),
            channel: Some("sms".into()),
            mcc: Some(404),
            mnc: Some(45),
            operator_label: Some("airtel".into()),
            operator: Some("Airtel".into()),
            latency_ms: Some(1234),
            cost_usd: 0.0123,
            attempts_delivered: 1,
            attempts_failed: 2,
            queries: 7,
            finalized_ms: Some(1_800_000_000_000),
            entry_bytes: 321,
        };
        let bytes = encode(&row);
        assert_eq!(decode::<IndexRow>(&bytes).ok(), Some(row));
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(
            decode::<IndexRow>(&other),
            Err(DecodeError::Version(9))
        ));
        assert!(matches!(decode::<IndexRow>(&[]), Err(DecodeError::Empty)));
        assert!(decode::<IndexRow>(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn provider_reasons_are_clipped_and_cleaned() {
        assert_eq!(
            clip_reason("  \u{7}UNDELIV\n "),
            Some("UNDELIV".to_string())
        );
        assert_eq!(clip_reason(&"x".repeat(500)).map(|r| r.len()), Some(64));
        assert_eq!(clip_reason(" \t"), None);
    }
}
