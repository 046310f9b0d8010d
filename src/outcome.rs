//! Pure rules: what a record says about an order, when the order's fate is decided,
//! when to poll next, and which metric samples a finalized order produces.
//! No I/O and no clocks: every function takes `now` so it can be tested exhaustively.

use std::time::Duration;

use chrono::FixedOffset;

use crate::api::wire::{parse_time_ms, Matched, Record};
use crate::geo;

/// A delivery channel, as used in labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    let time = |t: &Option<String>| t.as_deref().and_then(|t| parse_time_ms(t, zone));
    let latency = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(from), Some(to)) if to >= from => Some(to - from),
        _ => None,
    };
    let code = |v: Option<i64>| v.and_then(|v| u16::try_from(v).ok());
    let mut attempts = Vec::with_capacity(record.sms.len() + record.call.len() + record.sna.len());
    for sms in &record.sms {
        let result = match sms.status {
            Some(0) => AttemptResult::Delivered,
            Some(-1) | None => AttemptResult::Pending,
            Some(_) => AttemptResult::Failed,
        };
        let submit_ms = time(&sms.submit_tm);
        attempts.push(Attempt {
            channel: Channel::Sms,
            submit_ms,
            result,
            mcc: code(sms.mcc),
            mnc: code(sms.mnc),
            latency_ms: (result == AttemptResult::Delivered)
                .then(|| latency(submit_ms, time(&sms.done_tm)))
                .flatten(),
            cost_usd: sms.pay.unwrap_or(0.0),
            segments: sms
                .charge_cnt
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
        });
    }
    for call in &record.call {
        let result = match call.termination_code {
            Some(0) => AttemptResult::Delivered,
            Some(_) => AttemptResult::Failed,
            None => AttemptResult::Pending,
        };
        let submit_ms = time(&call.submit_time);
        attempts.push(Attempt {
            channel: Channel::Call,
            submit_ms,
            result,
            mcc: None,
            mnc: None,
            latency_ms: (result == AttemptResult::Delivered)
                .then(|| latency(submit_ms, time(&call.answer_time)))
                .flatten(),
            cost_usd: call.cost.unwrap_or(0.0),
            segments: 0,
        });
    }
    for sna in &record.sna {
        let result = match sna.status {
            Some(0) => AttemptResult::Delivered,
            Some(-1) | None => AttemptResult::Pending,
            Some(_) => AttemptResult::Failed,
        };
        let submit_ms = time(&sna.post_verification_time);
        attempts.push(Attempt {
            channel: Channel::Sna,
            submit_ms,
            result,
            mcc: code(sna.mcc),
            mnc: code(sna.mnc),
            latency_ms: (result == AttemptResult::Delivered)
                .then(|| latency(submit_ms, time(&sna.verification_back_time)))
                .flatten(),
            cost_usd: 0.0,
            segments: 0,
        });
    }
    // Stable: attempts without a submit time keep their place after the timed ones.
    attempts.sort_by_key(|a| a.submit_ms.unwrap_or(i64::MAX));
    let verification = record.verification.as_ref();
    Observation {
        matched: verification.and_then(|v| v.matched),
        verified_ms: verification.and_then(|v| time(&v.verified_date)),
        verification_channel: verification
            .and_then(|v| v.channel.as_deref())
            .and_then(Channel::parse),
        receiver_country: verification
            .and_then(|v| v.ori_receiver.as_deref())
            .and_then(geo::country_of_number),
        attempts,
    }
}

/// The outcome a record decides at `now`, if any (not `not_found`/`expired`: those
/// depend on how long nothing was decidable, see [`Tracking`]).
pub fn decide(obs: &Observation, now_ms: i64, window_close_ms: i64) -> Option<Outcome> {
    if obs.is_absent() {
        return None;
    }
    if obs.matched.is_some_and(Matched::is_verified) {
        return Some(Outcome::Verified);
    }
    if now_ms < window_close_ms {
        return None;
    }
    if obs.matched == Some(Matched::FAILED) {
        return Some(Outcome::Failed);
    }
    let any = |r: AttemptResult| obs.attempts.iter().any(|a| a.result == r);
    if any(AttemptResult::Delivered) {
        Some(Outcome::Unverified)
    } else if any(AttemptResult::Failed) {
        Some(Outcome::Undelivered)
    } else {
        None
    }
}

/// Time rules of one order: all durations. Instants (`issued_ms`, `now_ms`, the
/// returned deadlines) are Unix milliseconds in an `i64`, always named `*_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub verification_window: Duration,
    pub settle_timeout: Duration,
    pub not_found_grace: Duration,
    pub max_age: Duration,
    pub first_delay: Duration,
    pub max_interval: Duration,
}

/// The instant `duration` after `at_ms` (Unix ms), saturating.
pub fn after(at_ms: i64, duration: Duration) -> i64 {
    at_ms.saturating_add(duration.as_millis().min(i64::MAX as u128) as i64)
}

/// What the daemon knows about one pending order between polls.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    pub issued_ms: i64,
    pub outcome: Option<Outcome>,
    pub decided_ms: Option<i64>,
    /// When the provider first said it had no record (no record seen before).
    pub first_absent_ms: Option<i64>,
    /// Queries the provider answered with a record or "no record" (the polling backoff
    /// grows with them; persisted, so a restart does not reset it). Not to be confused
    /// with polls: every query sent, answered or not.
    pub answers: u32,
    /// Failed queries in a row (for backoff). Kept in memory only: a restart is
    /// often what fixed the failure, so it may start over.
    pub errors_in_row: u32,
    /// The latest record, kept so an order can be finalized when the API is down.
    pub last: Option<Box<Observation>>,
}

/// What the scheduler does with an order after an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Finalize(Outcome),
    /// Poll again at this instant (Unix ms).
    PollAt(i64),
}

/// What a poll (or a deadline with no poll possible) brought.
#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    Record(Observation),
    NoRecord,
    /// The query failed; `retry_after` honours the provider's wish, `jitter` is in [0.8, 1.2].
    Failed {
        retry_after: Option<Duration>,
        jitter: f64,
    },
    /// No query could be made (the API rejects our credentials) or its answer carried
    /// nothing about the order (-22, unknown statuses): the order keeps its schedule.
    Skipped,
}

impl Tracking {
    pub fn new(issued_ms: i64) -> Self {
        Tracking {
            issued_ms,
            outcome: None,
            decided_ms: None,
            first_absent_ms: None,
            answers: 0,
            errors_in_row: 0,
            last: None,
        }
    }

    /// When to poll an order first.
    pub fn first_poll_ms(&self, limits: &Limits, now_ms: i64) -> i64 {
        after(self.issued_ms, limits.first_delay).max(now_ms)
    }

    pub fn window_close_ms(&self, limits: &Limits) -> i64 {
        after(self.issued_ms, limits.verification_window)
    }

    pub fn max_age_deadline_ms(&self, limits: &Limits) -> i64 {
        after(self.issued_ms, limits.max_age)
    }

    /// The gap between polls after the answers so far: doubles from `first_delay` up
    /// to `max_interval`.
    pub fn poll_interval(&self, limits: &Limits) -> Duration {
        let exponent = self.answers.saturating_sub(1).min(20);
        limits
            .first_delay
            .saturating_mul(1 << exponent)
            .min(limits.max_interval)
    }

    /// Applies what a poll brought at `now_ms` and says what happens next.
    pub fn apply(&mut self, sighting: Sighting, now_ms: i64, limits: &Limits) -> Step {
        let mut retry_at = None;
        match sighting {
            Sighting::Record(obs) if !obs.is_absent() => {
                self.answers += 1;
                self.errors_in_row = 0;
                if self.outcome.is_none() {
                    if let Some(outcome) = decide(&obs, now_ms, self.window_close_ms(limits)) {
                        self.outcome = Some(outcome);
                        self.decided_ms = Some(now_ms);
                    }
                }
                self.last = Some(Box::new(obs));
            }
            Sighting::Record(_) | Sighting::NoRecord => {
                self.answers += 1;
                self.errors_in_row = 0;
                if self.last.is_none() && self.outcome.is_none() {
                    let since = *self.first_absent_ms.get_or_insert(now_ms);
                    if now_ms >= after(since, limits.not_found_grace) {
                        return Step::Finalize(Outcome::NotFound);
                    }
                }
            }
            Sighting::Failed {
                retry_after,
                jitter,
            } => {
                self.errors_in_row = self.errors_in_row.saturating_add(1);
                let exponent = self.errors_in_row.saturating_sub(1).min(20);
                let backoff = limits
                    .first_delay
                    .saturating_mul(1 << exponent)
                    .min(limits.max_interval);
                let backoff_ms = after(0, backoff) as f64 * jitter.clamp(0.5, 1.5);
                let backoff_ms = (backoff_ms as i64)
                    .max(retry_after.map_or(0, |d| after(0, d)))
                    .max(1);
                retry_at = Some(now_ms + backoff_ms);
            }
            Sighting::Skipped => {}
        }

        if let (Some(outcome), Some(decided)) = (self.outcome, self.decided_ms) {
            let settled = self.last.as_ref().is_some_and(|o| !o.any_pending());
            if settled || now_ms >= after(decided, limits.settle_timeout) {
                return Step::Finalize(outcome);
            }
        }
        if now_ms >= self.max_age_deadline_ms(limits) {
            return Step::Finalize(self.outcome.unwrap_or(Outcome::Expired));
        }
        let at = retry_at.unwrap_or_else(|| after(now_ms, self.poll_interval(limits)));
        Step::PollAt(at.min(self.next_decisive_moment(now_ms, limits)))
    }

    /// The earliest moment after `now_ms` at which the order's fate may change, so that
    /// a poll lands right on it instead of up to `max_interval` later.
    fn next_decisive_moment(&self, now_ms: i64, limits: &Limits) -> i64 {
        // A fixed array, not a Vec: this runs on every poll.
        let mut moments = [Some(self.max_age_deadline_ms(limits)), None, None];
        match self.decided_ms {
            Some(decided) => moments[1] = Some(after(decided, limits.settle_timeout)),
            None => {
                moments[1] = Some(self.window_close_ms(limits));
                if let Some(since) = self.first_absent_ms.filter(|_| self.last.is_none()) {
                    moments[2] = Some(after(since, limits.not_found_grace));
                }
            }
        }
        moments
            .into_iter()
            .flatten()
            .filter(|m| *m > now_ms)
            .min()
            .unwrap_or(after(now_ms, limits.max_interval))
    }
}

/// One attempt's share of the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSample {
    pub channel: Channel,
    pub country: &'static str,
    /// Three digits, or `unknown`.
    pub mcc: String,
    pub result: AttemptResult,
    pub latency_seconds: Option<f64>,
    pub cost_usd: f64,
    pub segments: u32,
}

/// Everything a finalized order adds to the metrics, emitted at once.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSamples {
    pub outcome: Outcome,
    /// `sms`, `call`, `sna` or `none`.
    pub channel: &'static str,
    pub country: &'static str,
    pub attempts: Vec<AttemptSample>,
    pub fallbacks: Vec<(Channel, Channel)>,
    pub verification_latency_seconds: Option<f64>,
}

pub const UNKNOWN: &str = "unknown";

fn mcc_label(mcc: Option<u16>) -> String {
    match mcc {
        Some(mcc) if geo::is_known_mcc(mcc) => format!("{mcc:03}"),
        _ => UNKNOWN.to_string(),
    }
}

/// The metric samples of a finalized order.
pub fn samples(outcome: Outcome, obs: Option<&Observation>) -> OrderSamples {
    let Some(obs) = obs else {
        return OrderSamples {
            outcome,
            channel: "none",
            country: UNKNOWN,
            attempts: Vec::new(),
            fallbacks: Vec::new(),
            verification_latency_seconds: None,
        };
    };
    // A call has no network of its own: it takes the order's SMS/SNA network.
    let network = obs
        .attempts
        .iter()
        .filter(|a| a.channel != Channel::Call)
        .find_map(|a| a.mcc.filter(|m| geo::is_known_mcc(*m)).map(|m| (m, a.mnc)));
    let attempts: Vec<AttemptSample> = obs
        .attempts
        .iter()
        .map(|a| {
            let (country, mcc) = match a.channel {
                Channel::Call => match network {
                    Some((mcc, mnc)) => (geo::country_of_network(mcc, mnc), Some(mcc)),
                    None => (obs.receiver_country, None),
                },
                _ => (a.mcc.and_then(|m| geo::country_of_network(m, a.mnc)), a.mcc),
            };
            AttemptSample {
                channel: a.channel,
                country: country.unwrap_or(UNKNOWN),
                mcc: mcc_label(mcc),
                result: a.result,
                latency_seconds: a.latency_ms.map(|ms| ms as f64 / 1000.0),
                cost_usd: a.cost_usd,
                segments: a.segments,
            }
        })
        .collect();
    let fallbacks = obs
        .attempts
        .windows(2)
        .filter(|pair| pair[0].channel != pair[1].channel)
        .map(|pair| (pair[0].channel, pair[1].channel))
        .collect();
    let channel = obs
        .verification_channel
        .or_else(|| obs.attempts.last().map(|a| a.channel))
        .map_or("none", Channel::as_str);
    let country = attempts
        .first()
        .map(|a| a.country)
        .or(obs.receiver_country)
        .unwrap_or(UNKNOWN);
    let verification_latency_seconds = match (outcome, obs.attempts.first(), obs.verified_ms) {
        (Outcome::Verified, Some(first), Some(verified)) => first
            .submit_ms
            .filter(|submit| verified >= *submit)
            .map(|submit| (verified - submit) as f64 / 1000.0),
        _ => None,
    };
    OrderSamples {
        outcome,
        channel,
        country,
        attempts,
        fallbacks,
        verification_latency_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::decode_reply;

    const LIMITS: Limits = Limits {
        verification_window: Duration::from_secs(300),
        settle_timeout: Duration::from_secs(120),
        not_found_grace: Duration::from_secs(120),
        max_age: Duration::from_secs(1_800),
        first_delay: Duration::from_secs(5),
        max_interval: Duration::from_secs(60),
    };

    fn zone() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn attempt(channel: Channel, submit_ms: i64, result: AttemptResult) -> Attempt {
        Attempt {
            channel,
            submit_ms: Some(submit_ms),
            result,
            mcc: None,
            mnc: None,
            latency_ms: None,
            cost_usd: 0.0,
            segments: 0,
        }
    }

    fn obs(matched: Option<i64>, attempts: Vec<Attempt>) -> Observation {
        Observation {
            matched: matched.map(Matched),
            attempts,
            ..Observation::default()
        }
    }

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

    #[test]
    fn verified_is_decided_at_any_time_also_for_code_already_used() {
        for matched in [0, 4] {
            let o = obs(Some(matched), vec![attempt(Sms, 0, Pending)]);
            assert_eq!(decide(&o, 1, 300_000), Some(Outcome::Verified));
            assert_eq!(decide(&o, 400_000, 300_000), Some(Outcome::Verified));
        }
    }

    #[test]
    fn nothing_but_verified_is_decided_before_the_window_closes() {
        for matched in [Some(-1), Some(1), Some(2), None] {
            for result in [Delivered, Failed, Pending] {
                let o = obs(matched, vec![attempt(Sms, 0, result)]);
                assert_eq!(decide(&o, 299_999, 300_000), None, "{matched:?} {result:?}");
            }
        }
    }

    #[test]
    fn window_close_rules() {
        let at = 300_000;
        let decide_at = |matched, attempts| decide(&obs(matched, attempts), at, at);
        assert_eq!(
            decide_at(Some(2), vec![attempt(Sms, 0, Delivered)]),
            Some(Outcome::Failed)
        );
        assert_eq!(decide_at(Some(2), vec![]), Some(Outcome::Failed));
        assert_eq!(
            decide_at(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Delivered)]
            ),
            Some(Outcome::Unverified)
        );
        assert_eq!(
            decide_at(None, vec![attempt(Sms, 0, Delivered)]),
            Some(Outcome::Unverified)
        );
        assert_eq!(
            decide_at(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Pending)]
            ),
            Some(Outcome::Undelivered)
        );
        assert_eq!(decide_at(Some(1), vec![attempt(Sms, 0, Pending)]), None);
        assert_eq!(decide_at(Some(-1), vec![]), None);
        assert_eq!(decide_at(Some(3), vec![attempt(Sms, 0, Delivered)]), None);
    }

    #[test]
    fn verified_order_settles_when_attempts_have_results() {
        let mut t = Tracking::new(0);
        let step = t.apply(
            Sighting::Record(obs(Some(0), vec![attempt(Sms, 0, Pending)])),
            10_000,
            &LIMITS,
        );
        assert_eq!(t.outcome, Some(Outcome::Verified));
        // Still pending: poll again, no later than the settle deadline.
        let Step::PollAt(next) = step else {
            panic!("{step:?}")
        };
        assert!(next > 10_000 && next <= 130_000);
        let step = t.apply(
            Sighting::Record(obs(Some(0), vec![attempt(Sms, 0, Delivered)])),
            20_000,
            &LIMITS,
        );
        assert_eq!(step, Step::Finalize(Outcome::Verified));
        assert_eq!(t.answers, 2);
    }

    #[test]
    fn settle_timeout_finalizes_with_pending_attempts() {
        let mut t = Tracking::new(0);
        t.apply(
            Sighting::Record(obs(Some(0), vec![attempt(Sms, 0, Pending)])),
            10_000,
            &LIMITS,
        );
        let step = t.apply(
            Sighting::Record(obs(Some(0), vec![attempt(Sms, 0, Pending)])),
            130_000,
            &LIMITS,
        );
        assert_eq!(step, Step::Finalize(Outcome::Verified));
        // Also when the last poll failed or could not happen.
        let mut t = Tracking::new(0);
        t.apply(
            Sighting::Record(obs(Some(0), vec![attempt(Sms, 0, Pending)])),
            10_000,
            &LIMITS,
        );
        assert_eq!(
            t.apply(Sighting::Skipped, 130_000, &LIMITS),
            Step::Finalize(Outcome::Verified)
        );
    }

    #[test]
    fn outcome_is_decided_once() {
        let mut t = Tracking::new(0);
        t.apply(
            Sighting::Record(obs(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Pending)],
            )),
            300_000,
            &LIMITS,
        );
        assert_eq!(t.outcome, Some(Outcome::Undelivered));
        // The call is answered later: the outcome stays, the attempt result is updated.
        let step = t.apply(
            Sighting::Record(obs(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Delivered)],
            )),
            310_000,
            &LIMITS,
        );
        assert_eq!(step, Step::Finalize(Outcome::Undelivered));
        assert_eq!(t.last.as_ref().unwrap().attempts[1].result, Delivered);
    }

    #[test]
    fn not_found_after_grace_counted_from_the_first_absent_answer() {
        let mut t = Tracking::new(0);
        let step = t.apply(Sighting::NoRecord, 5_000, &LIMITS);
        assert_eq!(t.first_absent_ms, Some(5_000));
        let Step::PollAt(next) = step else { panic!() };
        assert!(next <= 125_000);
        assert!(matches!(
            t.apply(Sighting::NoRecord, 124_999, &LIMITS),
            Step::PollAt(_)
        ));
        assert_eq!(
            t.apply(Sighting::NoRecord, 125_000, &LIMITS),
            Step::Finalize(Outcome::NotFound)
        );
        // matched 3 counts as no record.
        let mut t = Tracking::new(0);
        t.apply(Sighting::Record(obs(Some(3), vec![])), 5_000, &LIMITS);
        assert_eq!(
            t.apply(Sighting::Record(obs(Some(3), vec![])), 200_000, &LIMITS),
            Step::Finalize(Outcome::NotFound)
        );
    }

    #[test]
    fn a_record_that_vanishes_is_not_not_found() {
        let mut t = Tracking::new(0);
        t.apply(
            Sighting::Record(obs(Some(1), vec![attempt(Sms, 0, Pending)])),
            5_000,
            &LIMITS,
        );
        assert!(matches!(
            t.apply(Sighting::NoRecord, 200_000, &LIMITS),
            Step::PollAt(_)
        ));
    }

    #[test]
    fn expired_at_max_age_when_nothing_is_decidable() {
        let mut t = Tracking::new(0);
        t.apply(
            Sighting::Record(obs(Some(1), vec![attempt(Sms, 0, Pending)])),
            5_000,
            &LIMITS,
        );
        assert!(matches!(
            t.apply(
                Sighting::Record(obs(Some(-1), vec![attempt(Sms, 0, Pending)])),
                600_000,
                &LIMITS
            ),
            Step::PollAt(_)
        ));
        assert_eq!(
            t.apply(
                Sighting::Failed {
                    retry_after: None,
                    jitter: 1.0
                },
                1_800_000,
                &LIMITS
            ),
            Step::Finalize(Outcome::Expired)
        );
        // API unreachable all along.
        let mut t = Tracking::new(0);
        assert_eq!(
            t.apply(Sighting::Skipped, 1_800_000, &LIMITS),
            Step::Finalize(Outcome::Expired)
        );
    }

    #[test]
    fn polling_backs_off_and_lands_on_decisive_moments() {
        let mut t = Tracking::new(0);
        let pending = || Sighting::Record(obs(Some(1), vec![attempt(Sms, 0, Pending)]));
        let mut now = t.first_poll_ms(&LIMITS, 0);
        assert_eq!(now, 5_000);
        let mut gaps = Vec::new();
        while let Step::PollAt(next) = t.apply(pending(), now, &LIMITS) {
            gaps.push(next - now);
            now = next;
            if now >= 300_000 {
                break;
            }
        }
        assert_eq!(&gaps[..5], &[5_000, 10_000, 20_000, 40_000, 60_000]);
        assert!(gaps.iter().all(|g| *g <= 60_000));
        assert_eq!(now, 300_000, "a poll lands exactly on the window close");
    }

    #[test]
    fn failures_back_off_with_retry_after_and_never_give_up_before_max_age() {
        let mut t = Tracking::new(0);
        let fail = |retry_secs: Option<u64>| Sighting::Failed {
            retry_after: retry_secs.map(Duration::from_secs),
            jitter: 1.0,
        };
        assert_eq!(t.apply(fail(None), 5_000, &LIMITS), Step::PollAt(10_000));
        assert_eq!(t.apply(fail(None), 10_000, &LIMITS), Step::PollAt(20_000));
        assert_eq!(
            t.apply(fail(Some(30)), 20_000, &LIMITS),
            Step::PollAt(50_000)
        );
        let mut now = 50_000;
        while let Step::PollAt(next) = t.apply(fail(None), now, &LIMITS) {
            assert!(next - now <= 60_000);
            now = next;
        }
        assert_eq!(now, 1_800_000);
    }

    fn with_network(mut a: Attempt, mcc: u16, mnc: u16) -> Attempt {
        a.mcc = Some(mcc);
        a.mnc = Some(mnc);
        a
    }

    #[test]
    fn samples_of_the_provider_sample() {
        let record = decode_reply(crate::api::wire::tests::PROVIDER_SAMPLE.as_bytes())
            .unwrap()
            .data
            .unwrap();
        let o = observe(&record, &zone());
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!(s.channel, "call");
        assert_eq!(s.country, "CN");
        assert_eq!(s.fallbacks, vec![(Sms, Call)]);
        assert_eq!(s.attempts.len(), 2);
        assert_eq!(
            (s.attempts[0].country, s.attempts[0].mcc.as_str()),
            ("CN", "460")
        );
        assert_eq!(s.attempts[0].result, Delivered);
        assert_eq!(s.attempts[0].latency_seconds, Some(4.0));
        assert_eq!(s.attempts[0].segments, 1);
        assert_eq!(s.attempts[0].cost_usd, 0.000002);
        // The call takes the SMS's network.
        assert_eq!(
            (s.attempts[1].country, s.attempts[1].mcc.as_str()),
            ("CN", "460")
        );
        assert_eq!(s.attempts[1].result, Failed);
        assert_eq!(s.attempts[1].latency_seconds, None);
        assert_eq!(s.verification_latency_seconds, Some(2.0));
    }

    #[test]
    fn call_only_order_takes_country_from_the_receiver() {
        let mut o = obs(Some(-1), vec![attempt(Call, 0, Delivered)]);
        o.receiver_country = geo::country_of_number("918563214120");
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(
            (s.country, s.attempts[0].country, s.attempts[0].mcc.as_str()),
            ("IN", "IN", "unknown")
        );
        assert_eq!(s.verification_latency_seconds, None);
    }

    #[test]
    fn fallbacks_follow_submit_order_and_channel_defaults() {
        let o = obs(
            Some(-1),
            vec![
                with_network(attempt(Sna, 0, Failed), 404, 10),
                attempt(Sms, 1, Failed),
                attempt(Sms, 2, Failed),
                attempt(Call, 3, Delivered),
            ],
        );
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(s.fallbacks, vec![(Sna, Sms), (Sms, Call)]);
        assert_eq!(
            s.channel, "call",
            "no verification channel: the last attempt's"
        );
        assert_eq!(s.country, "IN");
        assert_eq!(
            s.attempts[1].country, "unknown",
            "an SMS without MCC has no country"
        );
        assert_eq!(s.attempts[3].mcc, "404");
        let none = samples(Outcome::NotFound, None);
        assert_eq!((none.channel, none.country), ("none", "unknown"));
        let empty = samples(Outcome::Expired, Some(&obs(Some(1), vec![])));
        assert_eq!((empty.channel, empty.country), ("none", "unknown"));
    }

    #[test]
    fn unknown_mcc_is_not_a_label() {
        let o = obs(
            Some(0),
            vec![with_network(attempt(Sms, 0, Delivered), 999, 1)],
        );
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!(
            (s.attempts[0].mcc.as_str(), s.attempts[0].country),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn verification_latency_needs_verified_and_sane_times() {
        let mut o = obs(Some(0), vec![attempt(Sms, 10_000, Delivered)]);
        o.verified_ms = Some(25_000);
        assert_eq!(
            samples(Outcome::Verified, Some(&o)).verification_latency_seconds,
            Some(15.0)
        );
        o.verified_ms = Some(5_000);
        assert_eq!(
            samples(Outcome::Verified, Some(&o)).verification_latency_seconds,
            None
        );
        o.verified_ms = Some(25_000);
        assert_eq!(
            samples(Outcome::Unverified, Some(&o)).verification_latency_seconds,
            None
        );
    }
}
