//! A wire record reduced to what decides the order and what the metrics need, keeping
//! only believable values: the provider's answer is input like any other, and one
//! absurd value (`pay: "1e308"`, a `submitTm` in 1900, 100,000 attempts) must not
//! reach counters that never forget it.

use chrono::FixedOffset;

use super::{AttemptResult, Channel};
use crate::api::wire::{
    parse_time_ms, CallAttempt, InvalidValues, Matched, Record, SmsAttempt, SnaAttempt,
};
use crate::config::Config;
use crate::geo;

/// How far provider times may lie before the order's issue or after our clock: the
/// provider's and the order writer's clocks drift, and a spool file's orders may be
/// issued a little before the file's modification time that stands for their issue.
pub const TIME_SLACK_MS: i64 = 10 * 60 * 1000;

/// Most SMS segments one message can have (a concatenated SMS numbers its parts in
/// one byte).
pub const MAX_SEGMENTS_PER_SMS: u32 = 255;

/// The wire fields whose values are checked, as `otp_exporter_invalid_values_total`'s
/// `field` label.
pub const VALIDATED_FIELDS: [&str; 10] = [
    "pay",
    "cost",
    "chargeCnt",
    "submitTm",
    "doneTm",
    "submitTime",
    "answerTime",
    "postVerificationTime",
    "verificationBackTime",
    "verifiedDate",
];

/// How records are read: the zone of times without an offset and the bounds of
/// believable values (`tracking.max_attempts_per_order`,
/// `tracking.max_cost_per_attempt_usd`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub zone: FixedOffset,
    pub max_attempts: usize,
    pub max_cost_per_attempt_usd: f64,
}

impl Reading {
    pub fn new(config: &Config) -> Reading {
        Reading {
            zone: config.api.timezone,
            max_attempts: config.tracking.max_attempts_per_order as usize,
            max_cost_per_attempt_usd: config.tracking.max_cost_per_attempt_usd,
        }
    }
}

/// The order a record is read for: times outside `[issued_ms - slack, now_ms + slack]`
/// are not believed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadFor {
    pub issued_ms: i64,
    pub now_ms: i64,
}

/// One delivery attempt, reduced to what the rules and metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub channel: Channel,
    /// Position in its channel's list in the record (saturating at 255): the provider
    /// appends attempts, so this names the attempt across polls.
    pub seq: u8,
    pub submit_ms: Option<i64>,
    pub result: AttemptResult,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// Delivery latency of a delivered attempt, when both of its times are known.
    pub latency_ms: Option<i64>,
    /// Submit → the result's report (delivered or failed), when both times are known:
    /// what the early signals learn "on time" from.
    pub report_delay_ms: Option<i64>,
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
    /// Attempts in submit order (attempts without a submit time last), at most
    /// [`Reading::max_attempts`] of them.
    pub attempts: Vec<Attempt>,
    /// Attempts of the record beyond [`Reading::max_attempts`], not kept.
    pub attempts_dropped: usize,
    /// Values of the record dropped as unbelievable, by wire field.
    pub invalid_values: InvalidValues,
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

/// Reduces a wire record read for one order: unbelievable values are dropped and
/// counted in [`Observation::invalid_values`], attempts beyond the cap (the latest by
/// submit time) in [`Observation::attempts_dropped`].
pub fn observe(record: &Record, reading: &Reading, order: ReadFor) -> Observation {
    let mut check = Check {
        reading,
        order,
        invalid: record.unusable.clone(),
    };
    let total = record.sms.len() + record.call.len() + record.sna.len();
    let mut attempts = Vec::with_capacity(total.min(reading.max_attempts.saturating_add(1)));
    let seq = |i: usize| u8::try_from(i).unwrap_or(u8::MAX);
    attempts.extend(record.sms.iter().enumerate().map(|(i, sms)| Attempt {
        seq: seq(i),
        ..check.sms_attempt(sms)
    }));
    attempts.extend(record.call.iter().enumerate().map(|(i, call)| Attempt {
        seq: seq(i),
        ..check.call_attempt(call)
    }));
    attempts.extend(record.sna.iter().enumerate().map(|(i, sna)| Attempt {
        seq: seq(i),
        ..check.sna_attempt(sna)
    }));
    // Stable: attempts without a submit time keep their place after the timed ones.
    attempts.sort_by_key(|a| a.submit_ms.unwrap_or(i64::MAX));
    let attempts_dropped = attempts.len().saturating_sub(reading.max_attempts);
    attempts.truncate(reading.max_attempts);
    let verification = record.verification.as_ref();
    let verified_ms = verification.and_then(|v| check.time(&v.verified_date, "verifiedDate"));
    Observation {
        matched: verification.and_then(|v| v.matched),
        verified_ms,
        verification_channel: verification
            .and_then(|v| v.channel.as_deref())
            .and_then(Channel::parse),
        receiver_country: verification
            .and_then(|v| v.ori_receiver.as_deref())
            .and_then(geo::country_of_number),
        attempts,
        attempts_dropped,
        invalid_values: check.invalid,
    }
}

/// Checks values against the bounds while reducing one record.
struct Check<'a> {
    reading: &'a Reading,
    order: ReadFor,
    invalid: InvalidValues,
}

impl Check<'_> {
    /// A time, if it was sent, parses and lies between the order's issue and now
    /// (each with [`TIME_SLACK_MS`]); one sent but not believable is counted.
    fn time(&mut self, t: &Option<String>, field: &'static str) -> Option<i64> {
        t.as_ref()?;
        let believable = self.time_quietly(t);
        if believable.is_none() {
            self.invalid.add(field);
        }
        believable
    }

    /// A time used only to learn from: believed like [`Check::time`], but one that is
    /// not believable is simply not used (it is no metric's value).
    fn time_quietly(&self, t: &Option<String>) -> Option<i64> {
        let earliest = self.order.issued_ms.saturating_sub(TIME_SLACK_MS);
        let latest = self.order.now_ms.saturating_add(TIME_SLACK_MS);
        parse_time_ms(t.as_deref()?, &self.reading.zone)
            .filter(|ms| (earliest..=latest).contains(ms))
    }

    /// An amount (already finite and non-negative from the wire) up to the ceiling.
    fn cost(&mut self, amount: Option<f64>, field: &'static str) -> f64 {
        match amount {
            Some(usd) if usd <= self.reading.max_cost_per_attempt_usd => usd,
            Some(_) => {
                self.invalid.add(field);
                0.0
            }
            None => 0.0,
        }
    }

    fn segments(&mut self, charge_cnt: Option<i64>) -> u32 {
        match charge_cnt.map(u32::try_from) {
            Some(Ok(n)) if n <= MAX_SEGMENTS_PER_SMS => n,
            Some(_) => {
                self.invalid.add("chargeCnt");
                0
            }
            None => 0,
        }
    }

    /// The parts every channel's attempt has: its result and its times (submitted, and
    /// delivered or answered; the failure's report). Network, cost and segments are left
    /// for the channel.
    fn timed_attempt(
        &mut self,
        channel: Channel,
        result: AttemptResult,
        submitted: (&Option<String>, &'static str),
        delivered: (&Option<String>, &'static str),
        failure_reported: &Option<String>,
    ) -> Attempt {
        let submit_ms = self.time(submitted.0, submitted.1);
        // A pending or failed attempt's delivery time means nothing; it is not checked.
        let done_ms = match result {
            AttemptResult::Delivered => self.time(delivered.0, delivered.1),
            _ => None,
        };
        let reported_ms = match result {
            AttemptResult::Delivered => done_ms,
            AttemptResult::Failed => self.time_quietly(failure_reported),
            AttemptResult::Pending => None,
        };
        let report_delay_ms = submit_ms
            .zip(reported_ms)
            .and_then(|(from, to)| (to >= from).then_some(to - from));
        Attempt {
            channel,
            seq: 0,
            submit_ms,
            result,
            mcc: None,
            mnc: None,
            latency_ms: delivery_latency(result, submit_ms, done_ms),
            report_delay_ms,
            cost_usd: 0.0,
            segments: 0,
        }
    }

    fn sms_attempt(&mut self, sms: &SmsAttempt) -> Attempt {
        let result = status_result(sms.status);
        let timed = self.timed_attempt(
            Channel::Sms,
            result,
            (&sms.submit_tm, "submitTm"),
            (&sms.done_tm, "doneTm"),
            &sms.done_tm,
        );
        Attempt {
            mcc: code(sms.mcc),
            mnc: code(sms.mnc),
            cost_usd: self.cost(sms.pay, "pay"),
            segments: self.segments(sms.charge_cnt),
            ..timed
        }
    }

    fn call_attempt(&mut self, call: &CallAttempt) -> Attempt {
        let result = match call.termination_code {
            Some(0) => AttemptResult::Delivered,
            Some(_) => AttemptResult::Failed,
            None => AttemptResult::Pending,
        };
        let timed = self.timed_attempt(
            Channel::Call,
            result,
            (&call.submit_time, "submitTime"),
            (&call.answer_time, "answerTime"),
            &call.hangup_time,
        );
        Attempt {
            cost_usd: self.cost(call.cost, "cost"),
            ..timed
        }
    }

    fn sna_attempt(&mut self, sna: &SnaAttempt) -> Attempt {
        let timed = self.timed_attempt(
            Channel::Sna,
            status_result(sna.status),
            (&sna.post_verification_time, "postVerificationTime"),
            (&sna.verification_back_time, "verificationBackTime"),
            &sna.verification_back_time,
        );
        Attempt {
            mcc: code(sna.mcc),
            mnc: code(sna.mnc),
            ..timed
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{read_for, reading, ISSUED_MS};
    use super::*;
    use crate::api::wire::decode_reply;
    use AttemptResult::{Delivered, Failed, Pending};
    use Channel::{Call, Sms, Sna};

    const ISSUED_SECS: i64 = ISSUED_MS / 1000;

    #[test]
    fn attempt_results_per_channel() {
        let body = r#"{"status":"0","data":{
            "sms":[{"status":0,"submitTm":"2022-07-12T13:00:00+08:00"},{"status":1,"submitTm":"2022-07-12T13:00:01+08:00"},{"status":-1,"submitTm":"2022-07-12T13:00:02+08:00"},{"submitTm":"2022-07-12T13:00:03+08:00"}],
            "call":[{"terminationCode":0,"submitTime":"2022-07-12T13:00:04+08:00"},{"terminationCode":100005,"submitTime":"2022-07-12T13:00:05+08:00"},{"submitTime":"2022-07-12T13:00:06+08:00"}],
            "sna":[{"status":0,"postVerificationTime":"2022-07-12T13:00:07+08:00"},{"status":1,"postVerificationTime":"2022-07-12T13:00:08+08:00"},{"status":-1,"postVerificationTime":"2022-07-12T13:00:09+08:00"}]}}"#;
        let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        let o = observe(&record, &reading(), read_for());
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

    fn observe_body(body: &str, order: ReadFor) -> Observation {
        let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        observe(&record, &reading(), order)
    }

    #[test]
    fn absurd_amounts_and_segments_are_dropped_and_counted() {
        let body = r#"{"status":"0","data":{"sms":[
            {"status":0,"pay":"1e308","chargeCnt":1},{"status":0,"pay":"-1"},{"status":0,"pay":"NaN"},
            {"status":0,"pay":"inf"},{"status":0,"pay":11},{"status":0,"pay":"0.05","chargeCnt":"2"},
            {"status":0,"pay":null,"chargeCnt":100000},{"status":0,"pay":"","chargeCnt":-1}],
            "call":[{"terminationCode":0,"cost":"1e308"},{"terminationCode":0,"cost":"10"}]}}"#;
        let o = observe_body(body, read_for());
        let costs: Vec<f64> = o.attempts.iter().map(|a| a.cost_usd).collect();
        assert_eq!(
            costs,
            vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 10.0]
        );
        let segments: Vec<u32> = o.attempts.iter().map(|a| a.segments).collect();
        assert_eq!(segments, vec![1, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        let invalid = &o.invalid_values;
        assert_eq!(
            (
                invalid.count("pay"),
                invalid.count("cost"),
                invalid.count("chargeCnt")
            ),
            (5, 1, 2),
            "{invalid:?}"
        );
    }

    #[test]
    fn times_outside_the_order_give_no_latency() {
        let sms = |submit: &str, done: &str| {
            format!(r#"{{"status":0,"submitTm":"{submit}","doneTm":"{done}"}}"#)
        };
        let body = format!(
            r#"{{"status":"0","data":{{"verifications":{{"matched":0,"verifiedDate":"1900-01-01 00:00:00"}},"sms":[{},{},{},{},{}]}}}}"#,
            sms("1900-01-01T00:00:00+08:00", "2022-07-12T13:00:05+08:00"),
            sms("2022-07-12T13:00:00+08:00", "2100-01-01T00:00:00+08:00"),
            sms("2022-07-12T12:51:00+08:00", "2022-07-12T12:51:03+08:00"),
            sms("2022-07-12T12:49:00+08:00", "2022-07-12T13:00:00+08:00"),
            sms("2022-07-12T14:09:00+08:00", "2022-07-12T14:09:01+08:00"),
        );
        let o = observe_body(&body, read_for());
        // Sorted by submit time; unbelievable submit times count as unknown (last).
        let latencies: Vec<Option<i64>> = o.attempts.iter().map(|a| a.latency_ms).collect();
        assert_eq!(
            latencies,
            vec![Some(3_000), None, Some(1_000), None, None],
            "9 min before issue and 9 min after now are believed; 11 min before, 1900 and 2100 are not"
        );
        assert_eq!(o.verified_ms, None);
        let invalid = &o.invalid_values;
        assert_eq!(
            (
                invalid.count("submitTm"),
                invalid.count("doneTm"),
                invalid.count("verifiedDate")
            ),
            (2, 1, 1),
            "{invalid:?}"
        );
        let samples = crate::outcome::samples(crate::outcome::Outcome::Verified, Some(&o));
        for a in &samples.attempts {
            assert!(
                a.latency_seconds
                    .is_none_or(|s| (0.0..=3600.0).contains(&s)),
                "{a:?}"
            );
        }
        assert_eq!(samples.verification_latency_seconds, None);
    }

    #[test]
    fn attempts_beyond_the_cap_are_dropped_and_counted() {
        // 100,000 SMS attempts over 230 networks, 50 a second in reverse document
        // order: only the 64 earliest count.
        let attempts: Vec<String> = (0..100_000)
            .map(|i| {
                let submit = chrono::DateTime::from_timestamp(ISSUED_SECS + (100_000 - i) / 50, 0)
                    .unwrap()
                    .to_rfc3339();
                let mcc = 200 + i % 230;
                format!(r#"{{"status":0,"mcc":{mcc},"mnc":1,"pay":"0.01","submitTm":"{submit}"}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"status":"0","data":{{"sms":[{}]}}}}"#,
            attempts.join(",")
        );
        let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        assert_eq!(record.sms.len(), 100_000);
        let o = observe(&record, &reading(), read_for());
        assert_eq!(o.attempts.len(), 64);
        assert_eq!(o.attempts_dropped, 100_000 - 64);
        assert!(o.attempts.iter().all(|a| a.result == Delivered));
        let earliest = (ISSUED_SECS + 1) * 1000;
        assert!(o.attempts.iter().all(|a| a.submit_ms <= Some(earliest)));
        assert!(o.invalid_values.is_empty(), "{:?}", o.invalid_values);
        let cost: f64 = o.attempts.iter().map(|a| a.cost_usd).sum();
        assert!((cost - 0.64).abs() < 1e-9, "{cost}");
        let samples = crate::outcome::samples(crate::outcome::Outcome::Unverified, Some(&o));
        assert_eq!(
            (samples.attempts.len(), samples.attempts_dropped),
            (64, 99_936)
        );
    }

    #[test]
    fn report_delays_are_learned_from_delivered_and_failed_attempts_quietly() {
        let body = r#"{"status":"0","data":{
            "sms":[{"status":1,"submitTm":"2022-07-12T13:00:00+08:00","doneTm":"2022-07-12T13:00:20+08:00"},
                   {"status":1,"submitTm":"2022-07-12T13:00:01+08:00","doneTm":"1900-01-01T00:00:00+08:00"},
                   {"status":0,"submitTm":"2022-07-12T13:00:02+08:00","doneTm":"2022-07-12T13:00:05+08:00"}],
            "call":[{"terminationCode":100003,"submitTime":"2022-07-12T13:00:30+08:00","hangupTime":"2022-07-12T13:01:05+08:00"}],
            "sna":[{"status":1,"postVerificationTime":"2022-07-12T13:02:00+08:00","verificationBackTime":"2022-07-12T13:02:02+08:00"}]}}"#;
        let o = observe_body(body, read_for());
        let delays: Vec<Option<i64>> = o.attempts.iter().map(|a| a.report_delay_ms).collect();
        assert_eq!(
            delays,
            vec![Some(20_000), None, Some(3_000), Some(35_000), Some(2_000)]
        );
        // A failed attempt's unbelievable report time is only not learned from: it is
        // no metric's value, so it is not counted as invalid.
        assert!(o.invalid_values.is_empty(), "{:?}", o.invalid_values);
    }
}
