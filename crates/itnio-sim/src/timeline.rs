//! The life of one order, drawn once when it is sent.
//!
//! Every time here is in unscaled milliseconds after the send; the record renderer
//! multiplies by the time scale. All draws come from an RNG seeded by the simulator's
//! seed and the order id, so an order's fate never depends on send order, timing or
//! injected faults (only a configured outage, which is the point of an outage).
//!
//! The timelines are shaped so that the exporter's outcome is unambiguous and the
//! ground truth can be exact:
//! - an order that is not verified has every result (DLR, hang-up, SNA answer) by
//!   [`SETTLE_SHARE`] of the validity, and its user acts by [`VERIFY_SHARE`];
//! - a verified order may have results after the verification (a late DLR), but all of
//!   them within [`LATE_SHARE`] of the validity after it;
//! - a stuck order has all its attempts pending forever and nothing else;
//! - an attempt hit by a silent outage is submitted (an SMS sent and billed, a call
//!   ringing) but stays pending forever, and the flow falls back after the fallback
//!   delay as for an SMS without a report in time.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::faults::OutageKind;
use super::profile::{Channel, Delay, Network, Profile};
use super::quirks::Quirks;
use super::seed::derive_seed;

/// Results of an unverified order are visible by this share of the validity.
pub const SETTLE_SHARE: f64 = 0.8;
/// Results of a verified order are visible by this share of the validity after it.
pub const LATE_SHARE: f64 = 0.3;
/// The latest a user verifies (or mistypes), as a share of the validity.
pub const VERIFY_SHARE: f64 = 0.75;
/// No fallback attempt is submitted after this share of the validity.
const FALLBACK_CUTOFF_SHARE: f64 = 0.5;
/// The fallback delay never exceeds this share of the validity.
const FALLBACK_MAX_SHARE: f64 = 0.3;
const MAX_ATTEMPTS: usize = 3;
/// Consecutive attempts are submitted at least this far apart (see `generate`).
const MIN_ATTEMPT_GAP: u32 = 1_000;

const fn uniform(min_ms: u32, max_ms: u32) -> Delay {
    Delay {
        min_ms,
        typical_ms: max_ms,
        tail_ms: max_ms,
        tail_share: 0.0,
    }
}

/// Send request → first submission.
const SUBMIT_DELAY: Delay = uniform(100, 1_500);
/// Submission → handed to the carrier (`sendTm`).
const SEND_DELAY: Delay = uniform(0, 1_000);
/// Handset receipt → delivery report.
const DLR_LAG: Delay = uniform(200, 2_000);
/// Without a DLR by then, the flow falls back to the next channel.
const FALLBACK_DELAY: Delay = uniform(30_000, 60_000);
/// Failure of one attempt → submission of the next.
const FALLBACK_GAP: Delay = uniform(300, 2_000);
/// Call submission → dialling (`callTime`).
const CALL_SETUP: Delay = uniform(500, 2_000);
/// Dialling → ringing.
const RING_DELAY: Delay = uniform(1_000, 4_000);
/// Answer → the code has been read out.
const CODE_READ: Delay = uniform(3_000, 8_000);
/// Ringing → hang-up of an unanswered call.
const NO_ANSWER: Delay = uniform(15_000, 40_000);
/// SNA request → operator answer.
const SNA_BACK: Delay = uniform(800, 4_000);
/// SNA request → refusal where SNA is not offered.
const SNA_UNSUPPORTED: Delay = uniform(300, 1_200);
/// SNA answer → the app confirms the verification.
const SNA_CONFIRM: Delay = uniform(100, 600);

const SMS_FAILURES: &[&str] = &[
    "UNDELIV",
    "EXPIRED",
    "REJECTD",
    "Absent subscriber",
    "Blocked by operator",
];
const CALL_FAILURES: &[(u32, &str)] = &[
    (100001, "Busy"),
    (100002, "Call Rejected"),
    (100003, "No Answer"),
    (100005, "Temporarily Unavailable"),
];
const SNA_FAILURES: &[&str] = &["Operator verification failed", "No mobile data session"];

/// An attempt's final result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    Failed,
    /// Never resolves (stuck orders only).
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

/// One attempt on one channel. Channel-specific fields are unused elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub channel: Channel,
    /// `submitTm` / `submitTime` / `postVerificationTime`.
    pub submit: u32,
    /// `sendTm` / `callTime` (SNA: the submission).
    pub send: u32,
    /// Call: `ringingTime`.
    pub ringing: Option<u32>,
    /// Call: `answerTime`, answered calls only.
    pub answer: Option<u32>,
    /// When the user has the code (not rendered; drives the verification).
    pub receipt: Option<u32>,
    /// When the final result becomes visible: `doneTm` / `hangupTime` /
    /// `verificationBackTime`. `None`: pending forever.
    pub done: Option<u32>,
    pub result: AttemptResult,
    /// SMS/SNA `reason`, call `terminationReason`.
    pub reason: &'static str,
    /// Call `terminationCode`.
    pub termination_code: u32,
    /// SMS `chargeCnt`.
    pub segments: u8,
    /// SMS `pay` or call `cost`, in 1e-4 USD.
    pub amount: u32,
    /// Call `callDuration` / `chargedDuration`, unscaled seconds.
    pub duration_s: u16,
    pub charged_s: u16,
    /// Pending forever because a silent outage swallowed it.
    pub silent: bool,
}

impl Attempt {
    fn new(channel: Channel, submit: u32) -> Attempt {
        Attempt {
            channel,
            submit,
            send: submit,
            ringing: None,
            answer: None,
            receipt: None,
            done: None,
            result: AttemptResult::Pending,
            reason: "",
            termination_code: 0,
            segments: 0,
            amount: 0,
            duration_s: 0,
            charged_s: 0,
            silent: false,
        }
    }

    /// Turns an attempt drawn as usual into one a silent outage swallowed: whatever it
    /// would have become, it keeps only what happens before a result (an SMS is still
    /// sent and billed, a call still rings; an unanswered call costs nothing).
    fn silence(&mut self) {
        self.answer = None;
        self.receipt = None;
        self.done = None;
        self.result = AttemptResult::Pending;
        self.reason = "";
        self.termination_code = 0;
        self.duration_s = 0;
        self.charged_s = 0;
        if self.channel != Channel::Sms {
            self.amount = 0;
        }
        self.silent = true;
    }

    /// Moves every event after `deadline` earlier, keeping their order: the attempt's
    /// phases are squeezed proportionally between its submission and the deadline.
    fn fit(&mut self, deadline: u32) {
        let Some(done) = self.done else { return };
        if done <= deadline {
            return;
        }
        let submit = self.submit;
        let span = u64::from(done - submit);
        let room = u64::from(deadline.saturating_sub(submit));
        let squeeze = |t: u32| -> u32 {
            let offset = u64::from(t.saturating_sub(submit)) * room / span;
            submit.saturating_add(u32::try_from(offset).unwrap_or(u32::MAX))
        };
        self.send = squeeze(self.send);
        self.ringing = self.ringing.map(squeeze);
        self.answer = self.answer.map(squeeze);
        self.receipt = self.receipt.map(squeeze);
        self.done = Some(squeeze(done));
    }
}

/// What the user did with the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyKind {
    /// `matched` 0.
    Matched,
    /// `matched` 2: typed a wrong code and gave up.
    WrongCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub at: u32,
    pub kind: VerifyKind,
    /// The channel of the attempt whose code was typed.
    pub channel: Channel,
}

/// Everything that will happen to an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub profile: &'static Profile,
    /// The receiver's network (SMS and SNA attempts report it).
    pub network: Network,
    /// The channel the flow starts on (`flowId`).
    pub start: Channel,
    /// In submit order.
    pub attempts: Vec<Attempt>,
    pub verification: Option<Verification>,
    pub quirks: Quirks,
}

impl Timeline {
    /// True when every attempt stays pending forever.
    pub fn is_stuck(&self) -> bool {
        !self.attempts.is_empty() && self.attempts.iter().all(|a| a.done.is_none())
    }

    /// What the provider bills for the order, in 1e-4 USD, once every attempt is
    /// final: SMS attempts (billed when submitted, even when no report ever comes) and
    /// calls or SNA checks that ended (a call that never hangs up is never billed).
    /// The records' `pay`/`cost` add up to it, and so does the truth's `costUsd`.
    pub fn billed_units(&self) -> u64 {
        self.attempts
            .iter()
            .filter(|a| a.channel == Channel::Sms || a.done.is_some())
            .map(|a| u64::from(a.amount))
            .sum()
    }
}

/// An order the simulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub order_id: String,
    pub app_id: String,
    /// `oriReceiver`: digits only.
    pub receiver: String,
    /// Simulator clock (Unix ms) at the send.
    pub sent_at_ms: i64,
    pub timeline: Timeline,
}

/// What generation needs besides the order itself.
pub struct Generator<'a> {
    pub seed: u64,
    /// The app's OTP validity, unscaled.
    pub validity_ms: u32,
    /// Whether records of this simulator vary like real payloads.
    pub quirks: bool,
    /// The outage, if any, that hits attempts on `(country, channel)`.
    pub outage: &'a dyn Fn(&str, Channel) -> Option<OutageKind>,
}

fn pick<T: Copy, R: Rng>(rng: &mut R, items: &[T], fallback: T) -> T {
    if items.is_empty() {
        return fallback;
    }
    items[rng.gen_range(0..items.len())]
}

/// Billed seconds for a call of `duration_s` under a `first+next` billing period.
pub fn billed_seconds(duration_s: u16, (first, next): (u16, u16)) -> u16 {
    if duration_s == 0 {
        return 0;
    }
    if duration_s <= first {
        return first;
    }
    let next = next.max(1);
    let extra = (duration_s - first).div_ceil(next) * next;
    first.saturating_add(extra)
}

/// Cost in 1e-4 USD of `charged_s` seconds at `rate` (1e-4 USD per minute), rounded.
pub fn call_cost(rate: u32, charged_s: u16) -> u32 {
    let units = (u64::from(rate) * u64::from(charged_s) + 30) / 60;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// The next attempt of the flow: channel and submission time.
type FollowUp = Option<(Channel, u32)>;

/// An order's draws made up front, so that user behaviour does not depend on the
/// attempts.
struct OrderDraws {
    stuck: bool,
    /// Decides verify / mistype / nothing against the profile's shares.
    behaviour: f64,
    verify_delay: u32,
    late_dlr: bool,
    fallback_after: u32,
    first_submit: u32,
}

/// A late DLR: the SMS whose code was verified at `verified_at` reports after it, by
/// `late_by`.
fn delay_sms_report(rng: &mut StdRng, attempts: &mut [Attempt], verified_at: u32, late_by: u32) {
    if let Some(sms) = attempts.iter_mut().find(|a| a.channel == Channel::Sms) {
        if sms.done.is_some_and(|d| d <= verified_at) {
            let window = late_by - verified_at;
            let earliest = verified_at + (window / 2).min(1_000);
            sms.done = Some(rng.gen_range(earliest..=late_by.max(earliest)));
        }
    }
}

impl Generator<'_> {
    fn share(&self, share: f64) -> u32 {
        (f64::from(self.validity_ms) * share) as u32
    }

    /// Draws the whole life of an order sent to `profile`'s country on `start`.
    pub fn generate(&self, order_id: &str, profile: &'static Profile, start: Channel) -> Timeline {
        let mut rng = StdRng::seed_from_u64(derive_seed(self.seed, "order", order_id));
        let network = pick(&mut rng, profile.networks, Network { mcc: 0, mnc: 0 });
        let draws = self.order_draws(&mut rng, profile);
        let quirks = Quirks::draw(self.seed, order_id, self.quirks);
        let mut timeline = Timeline {
            profile,
            network,
            start,
            attempts: Vec::with_capacity(2),
            verification: None,
            quirks,
        };
        if draws.stuck {
            timeline
                .attempts
                .push(stuck_attempt(&mut rng, profile, start, draws.first_submit));
            return timeline;
        }
        timeline.attempts = self.flow(&mut rng, profile, start, &draws);
        let verification = self.verification(
            &mut rng,
            profile,
            &timeline.attempts,
            draws.behaviour,
            draws.verify_delay,
        );
        self.settle(
            &mut rng,
            &mut timeline.attempts,
            verification,
            draws.late_dlr,
        );
        timeline.verification = verification;
        timeline
    }

    /// The order's draws that do not depend on its attempts, in their fixed order.
    fn order_draws(&self, rng: &mut StdRng, profile: &Profile) -> OrderDraws {
        OrderDraws {
            stuck: rng.gen_bool(profile.stuck_share.clamp(0.0, 1.0)),
            behaviour: rng.gen(),
            verify_delay: profile.verify_delay.sample(rng),
            late_dlr: rng.gen_bool(profile.late_dlr_share.clamp(0.0, 1.0)),
            fallback_after: FALLBACK_DELAY
                .sample(rng)
                .min(self.share(FALLBACK_MAX_SHARE))
                .max(1),
            first_submit: SUBMIT_DELAY.sample(rng),
        }
    }

    /// The attempts of an order that is not stuck: the start channel, then fallbacks
    /// until one delivers, the channels run out or it is too late to fall back.
    fn flow(
        &self,
        rng: &mut StdRng,
        profile: &Profile,
        start: Channel,
        draws: &OrderDraws,
    ) -> Vec<Attempt> {
        let mut attempts: Vec<Attempt> = Vec::with_capacity(2);
        let mut next = Some((start, draws.first_submit));
        while let Some((channel, at)) = next.take() {
            if attempts.len() >= MAX_ATTEMPTS
                || (!attempts.is_empty() && at > self.share(FALLBACK_CUTOFF_SHARE))
            {
                break;
            }
            let outage = (self.outage)(profile.country, channel);
            let forced_failure = outage == Some(OutageKind::Fail);
            let (mut attempt, mut follow) = match channel {
                Channel::Sms => sms_attempt(rng, profile, at, forced_failure, draws.fallback_after),
                Channel::Call => call_attempt(rng, profile, at, forced_failure),
                Channel::Sna => sna_attempt(rng, profile, at, forced_failure),
            };
            if outage == Some(OutageKind::Silent) {
                // Drawn as usual (the RNG moves exactly as without the outage), then
                // swallowed: no result ever, so the flow gives up waiting after the
                // fallback delay, as for an SMS whose report is late.
                attempt.silence();
                let next = match channel {
                    Channel::Sms => Channel::Call,
                    Channel::Call | Channel::Sna => Channel::Sms,
                };
                follow = Some((next, at + draws.fallback_after));
            }
            let submitted = attempt.submit;
            attempts.push(attempt);
            // Each channel is tried at most once per order; a second apart at least, so
            // that whole-second submit times still order the attempts.
            next = follow
                .filter(|(ch, _)| attempts.iter().all(|a| a.channel != *ch))
                .map(|(ch, t)| (ch, t.max(submitted + MIN_ATTEMPT_GAP)));
        }
        attempts
    }

    /// Stops the flow at the user's action and moves results into the module's
    /// promised windows: by [`LATE_SHARE`] after a match (with a late DLR where drawn),
    /// else by [`SETTLE_SHARE`].
    fn settle(
        &self,
        rng: &mut StdRng,
        attempts: &mut Vec<Attempt>,
        verification: Option<Verification>,
        late_dlr: bool,
    ) {
        if let Some(v) = verification {
            // The flow stops once the user has acted.
            attempts.retain(|a| a.submit < v.at);
        }
        match verification {
            Some(v) if v.kind == VerifyKind::Matched => {
                let late_by = v.at.saturating_add(self.share(LATE_SHARE));
                if late_dlr && v.channel == Channel::Sms {
                    delay_sms_report(rng, attempts, v.at, late_by);
                }
                attempts.iter_mut().for_each(|a| a.fit(late_by));
            }
            _ => {
                let settle_by = self.share(SETTLE_SHARE);
                attempts.iter_mut().for_each(|a| a.fit(settle_by));
            }
        }
    }

    /// The user acts on the first code they receive; a successful SNA is itself the
    /// verification.
    fn verification(
        &self,
        rng: &mut StdRng,
        profile: &Profile,
        attempts: &[Attempt],
        behaviour: f64,
        verify_delay: u32,
    ) -> Option<Verification> {
        let verify_by = self.share(VERIFY_SHARE);
        if let Some(sna) = attempts
            .iter()
            .find(|a| a.channel == Channel::Sna && a.result == AttemptResult::Delivered)
        {
            let at = sna.done?.saturating_add(SNA_CONFIRM.sample(rng));
            return (at <= verify_by).then_some(Verification {
                at,
                kind: VerifyKind::Matched,
                channel: Channel::Sna,
            });
        }
        let kind = if behaviour < profile.verify_share {
            VerifyKind::Matched
        } else if behaviour < profile.verify_share + profile.wrong_code_share {
            VerifyKind::WrongCode
        } else {
            return None;
        };
        let (receipt, channel) = attempts
            .iter()
            .filter_map(|a| a.receipt.map(|r| (r, a.channel)))
            .min_by_key(|(r, _)| *r)?;
        let at = receipt.saturating_add(verify_delay);
        (at <= verify_by).then_some(Verification { at, kind, channel })
    }
}

fn stuck_attempt(rng: &mut StdRng, profile: &Profile, channel: Channel, at: u32) -> Attempt {
    let mut attempt = Attempt::new(channel, at);
    match channel {
        Channel::Sms => {
            attempt.send = at + SEND_DELAY.sample(rng);
            attempt.segments = 1;
            attempt.amount = profile.sms_price;
        }
        Channel::Call => {
            attempt.send = at + CALL_SETUP.sample(rng);
            attempt.ringing = Some(attempt.send + RING_DELAY.sample(rng));
        }
        Channel::Sna => {}
    }
    attempt
}

fn sms_attempt(
    rng: &mut StdRng,
    profile: &Profile,
    at: u32,
    forced_failure: bool,
    fallback_after: u32,
) -> (Attempt, FollowUp) {
    let mut a = Attempt::new(Channel::Sms, at);
    a.send = at + SEND_DELAY.sample(rng);
    a.segments = if rng.gen_bool(profile.two_segment_share.clamp(0.0, 1.0)) {
        2
    } else {
        1
    };
    // The provider bills every submitted segment, delivered or not.
    a.amount = profile.sms_price * u32::from(a.segments);
    let delivered = rng.gen_bool(profile.sms_success.clamp(0.0, 1.0)) && !forced_failure;
    let done = if delivered {
        let receipt = a.send + profile.dlr_latency.sample(rng);
        a.receipt = Some(receipt);
        a.result = AttemptResult::Delivered;
        a.reason = "success";
        receipt + DLR_LAG.sample(rng)
    } else {
        a.result = AttemptResult::Failed;
        a.reason = pick(rng, SMS_FAILURES, "UNDELIV");
        a.send + profile.sms_fail_latency.sample(rng)
    };
    a.done = Some(done);
    let reported_in_time = done - at <= fallback_after;
    let follow = match (delivered, reported_in_time) {
        (true, true) => None,
        (false, true) => Some((Channel::Call, done + FALLBACK_GAP.sample(rng))),
        (_, false) => Some((Channel::Call, at + fallback_after)),
    };
    (a, follow)
}

fn call_attempt(
    rng: &mut StdRng,
    profile: &Profile,
    at: u32,
    forced_failure: bool,
) -> (Attempt, FollowUp) {
    let mut a = Attempt::new(Channel::Call, at);
    a.send = at + CALL_SETUP.sample(rng);
    let ringing = a.send + RING_DELAY.sample(rng);
    a.ringing = Some(ringing);
    let answered = rng.gen_bool(profile.call_success.clamp(0.0, 1.0)) && !forced_failure;
    if answered {
        let answer = ringing + profile.answer_delay.sample(rng);
        a.answer = Some(answer);
        a.receipt = Some(answer + CODE_READ.sample(rng));
        a.duration_s = rng.gen_range(15..=45);
        a.charged_s = billed_seconds(a.duration_s, profile.bill_period);
        a.amount = call_cost(profile.voice_rate, a.charged_s);
        a.done = Some(answer + u32::from(a.duration_s) * 1_000);
        a.result = AttemptResult::Delivered;
        a.reason = "Success";
        (a, None)
    } else {
        let (code, reason) = pick(rng, CALL_FAILURES, (100003, "No Answer"));
        let hangup = ringing + NO_ANSWER.sample(rng);
        a.done = Some(hangup);
        a.result = AttemptResult::Failed;
        a.termination_code = code;
        a.reason = reason;
        (a, Some((Channel::Sms, hangup + FALLBACK_GAP.sample(rng))))
    }
}

fn sna_attempt(
    rng: &mut StdRng,
    profile: &Profile,
    at: u32,
    forced_failure: bool,
) -> (Attempt, FollowUp) {
    let mut a = Attempt::new(Channel::Sna, at);
    let back = match profile.sna_success {
        None => {
            a.result = AttemptResult::Failed;
            a.reason = "SNA not supported by operator";
            at + SNA_UNSUPPORTED.sample(rng)
        }
        Some(success) => {
            let back = at + SNA_BACK.sample(rng);
            if rng.gen_bool(success.clamp(0.0, 1.0)) && !forced_failure {
                a.result = AttemptResult::Delivered;
                a.reason = "success";
                a.receipt = Some(back);
            } else {
                a.result = AttemptResult::Failed;
                a.reason = pick(rng, SNA_FAILURES, "Operator verification failed");
            }
            back
        }
    };
    a.done = Some(back);
    let follow = (a.result != AttemptResult::Delivered)
        .then(|| (Channel::Sms, back + FALLBACK_GAP.sample(rng)));
    (a, follow)
}

#[cfg(test)]
pub(crate) mod tests;
