//! A wire record reduced to what decides the order and what the metrics need.

use chrono::FixedOffset;

use super::{AttemptResult, Channel};
use crate::api::wire::{parse_time_ms, CallAttempt, Matched, Record, SmsAttempt, SnaAttempt};
use crate::geo;

/// One delivery attempt, reduced to what the rules and metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub channel: Channel,
    pub submit_ms: Option<i64>,
    pub result: AttemptResult,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// Delivery latency of a delivered attempt, when both of its times are known.
    pub latency_ms: Option<i64>,
    pub cost_usd: f64,
    pub segments: u32,
}

/// A record reduced to what decides the order (kept in memory while an order settles).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub matched: Option<Matched>,
    pub verified_ms: Option<i64>,
    pub verification_channel: Option<Channel>,
    /// Country of `oriReceiver` by calling code, for calls without an SMS/SNA network.
    pub receiver_country: Option<&'static str>,
    /// Attempts in submit order (attempts without a submit time last).
    pub attempts: Vec<Attempt>,
}

impl Observation {
    /// [`Matched::NO_SUCH_ID`] means the same as no record.
    pub fn is_absent(&self) -> bool {
        self.matched == Some(Matched::NO_SUCH_ID)
    }

    pub fn any_pending(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| a.result == AttemptResult::Pending)
    }
}

/// Reduces a wire record; times without an offset are read in `zone`.
pub fn observe(record: &Record, zone: &FixedOffset) -> Observation {
    let mut attempts = Vec::with_capacity(record.sms.len() + record.call.len() + record.sna.len());
    attempts.extend(record.sms.iter().map(|sms| sms_attempt(sms, zone)));
    attempts.extend(record.call.iter().map(|call| call_attempt(call, zone)));
    attempts.extend(record.sna.iter().map(|sna| sna_attempt(sna, zone)));
    // Stable: attempts without a submit time keep their place after the timed ones.
    attempts.sort_by_key(|a| a.submit_ms.unwrap_or(i64::MAX));
    let verification = record.verification.as_ref();
    Observation {
        matched: verification.and_then(|v| v.matched),
        verified_ms: verification.and_then(|v| time(&v.verified_date, zone)),
        verification_channel: verification
            .and_then(|v| v.channel.as_deref())
            .and_then(Channel::parse),
        receiver_country: verification
            .and_then(|v| v.ori_receiver.as_deref())
            .and_then(geo::country_of_number),
        attempts,
    }
}

fn time(t: &Option<String>, zone: &FixedOffset) -> Option<i64> {
    t.as_deref().and_then(|t| parse_time_ms(t, zone))
}

/// Time from submit to delivery of a delivered attempt, when both are known and sane.
fn delivery_latency(
    result: AttemptResult,
    submit_ms: Option<i64>,
    done_ms: Option<i64>,
) -> Option<i64> {
    match (result, submit_ms, done_ms) {
        (AttemptResult::Delivered, Some(from), Some(to)) if to >= from => Some(to - from),
        _ => None,
    }
}

/// MCC/MNC as codes; anything out of range is unknown.
fn code(v: Option<i64>) -> Option<u16> {
    v.and_then(|v| u16::try_from(v).ok())
}

/// SMS and SNA statuses: 0 delivered, -1 (or none yet) pending, anything else failed.
fn status_result(status: Option<i64>) -> AttemptResult {
    match status {
        Some(0) => AttemptResult::Delivered,
        Some(-1) | None => AttemptResult::Pending,
        Some(_) => AttemptResult::Failed,
    }
}

/// The parts every channel's attempt has: its result and its two times (submitted, and
/// delivered or answered). Network, cost and segments are left for the channel to add.
fn timed_attempt(
    channel: Channel,
    result: AttemptResult,
    submitted: &Option<String>,
    delivered: &Option<String>,
    zone: &FixedOffset,
) -> Attempt {
    let submit_ms = time(submitted, zone);
    Attempt {
        channel,
        submit_ms,
        result,
        mcc: None,
        mnc: None,
        latency_ms: delivery_latency(result, submit_ms, time(delivered, zone)),
        cost_usd: 0.0,
        segments: 0,
    }
}

fn sms_attempt(sms: &SmsAttempt, zone: &FixedOffset) -> Attempt {
    let result = status_result(sms.status);
    Attempt {
        mcc: code(sms.mcc),
        mnc: code(sms.mnc),
        cost_usd: sms.pay.unwrap_or(0.0),
        segments: sms
            .charge_cnt
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0),
        ..timed_attempt(Channel::Sms, result, &sms.submit_tm, &sms.done_tm, zone)
    }
}

fn call_attempt(call: &CallAttempt, zone: &FixedOffset) -> Attempt {
    let result = match call.termination_code {
        Some(0) => AttemptResult::Delivered,
        Some(_) => AttemptResult::Failed,
        None => AttemptResult::Pending,
    };
    Attempt {
        cost_usd: call.cost.unwrap_or(0.0),
        ..timed_attempt(
            Channel::Call,
            result,
            &call.submit_time,
            &call.answer_time,
            zone,
        )
    }
}

fn sna_attempt(sna: &SnaAttempt, zone: &FixedOffset) -> Attempt {
    let (submitted, delivered) = (&sna.post_verification_time, &sna.verification_back_time);
    Attempt {
        mcc: code(sna.mcc),
        mnc: code(sna.mnc),
        ..timed_attempt(
            Channel::Sna,
            status_result(sna.status),
            submitted,
            delivered,
            zone,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::zone;
    use super::*;
    use crate::api::wire::decode_reply;
    use AttemptResult::{Delivered, Failed, Pending};
    use Channel::{Call, Sms, Sna};

    #[test]
    fn attempt_results_per_channel() {
        let body = r#"{"status":"0","data":{
            "sms":[{"status":0,"submitTm":"2022-07-12T13:00:00+08:00"},{"status":1,"submitTm":"2022-07-12T13:00:01+08:00"},{"status":-1,"submitTm":"2022-07-12T13:00:02+08:00"},{"submitTm":"2022-07-12T13:00:03+08:00"}],
            "call":[{"terminationCode":0,"submitTime":"2022-07-12T13:00:04+08:00"},{"terminationCode":100005,"submitTime":"2022-07-12T13:00:05+08:00"},{"submitTime":"2022-07-12T13:00:06+08:00"}],
            "sna":[{"status":0,"postVerificationTime":"2022-07-12T13:00:07+08:00"},{"status":1,"postVerificationTime":"2022-07-12T13:00:08+08:00"},{"status":-1,"postVerificationTime":"2022-07-12T13:00:09+08:00"}]}}"#;
        let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        let o = observe(&record, &zone());
        let got: Vec<(Channel, AttemptResult)> =
            o.attempts.iter().map(|a| (a.channel, a.result)).collect();
        assert_eq!(
            got,
            vec![
                (Sms, Delivered),
                (Sms, Failed),
                (Sms, Pending),
                (Sms, Pending),
                (Call, Delivered),
                (Call, Failed),
                (Call, Pending),
                (Sna, Delivered),
                (Sna, Failed),
                (Sna, Pending)
            ]
        );
    }
}
