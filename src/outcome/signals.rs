//! Early signals: facts of a pending order counted the moment a poll first reveals them
//! (its first attempt, each attempt's result, the verification, lateness), each once.
//! What was counted is kept with the order ([`Counted`], persisted), so a restart does
//! not count a fact again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::expect::{Estimates, Expectation, OverdueRule, Stage};
use super::samples::{attempt_places, order_channel, order_country, Place};
use super::{after, AttemptResult, Channel, Observation};
use crate::api::wire::Matched;

/// Attempts of one channel whose results are remembered (bits of [`Counted::results`]);
/// a record with more attempts of one channel than this is pathological, and results of
/// the attempts beyond are counted only at finalization.
pub const ATTEMPTS_PER_CHANNEL: u8 = 21;

const SENT: u8 = 1;
const VERIFIED: u8 = 2;
const OVERDUE_DELIVERY: u8 = 4;
const OVERDUE_VERIFICATION: u8 = 8;

/// What the early-signal metrics already counted of one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// Order facts: sent, verified, overdue delivery, overdue verification.
    #[serde(default)]
    flags: u8,
    /// Attempt results: bit `channel × 21 + position in the channel's list`.
    #[serde(default)]
    results: u64,
}

impl Counted {
    pub fn is_empty(&self) -> bool {
        *self == Counted::default()
    }

    fn take(&mut self, flag: u8) -> bool {
        let new = self.flags & flag == 0;
        self.flags |= flag;
        new
    }

    /// Marks an attempt's result counted; false if it already was (or cannot be
    /// remembered).
    fn take_result(&mut self, channel: Channel, seq: u8) -> bool {
        if seq >= ATTEMPTS_PER_CHANNEL {
            return false;
        }
        let lane = match channel {
            Channel::Sms => 0,
            Channel::Call => 1,
            Channel::Sna => 2,
        };
        let bit = 1u64 << (lane * u32::from(ATTEMPTS_PER_CHANNEL) + u32::from(seq));
        let new = self.results & bit == 0;
        self.results |= bit;
        new
    }
}

/// A fact first seen by a poll, with its labels (besides `app_id`).
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The order's first attempt (`otp_orders_sent_total`): the flow's first channel.
    Sent {
        channel: Channel,
        country: &'static str,
    },
    /// An attempt's result (`otp_attempt_results_total`).
    Result {
        channel: Channel,
        /// Position in the channel's list of the record.
        seq: u8,
        country: &'static str,
        mcc: String,
        result: AttemptResult,
        /// Submit → the result's report (delivered or failed), to learn from.
        report_delay_ms: Option<i64>,
    },
    /// The order verified (`otp_verifications_total`).
    Verified {
        channel: &'static str,
        country: &'static str,
        /// The first attempt's channel and the delay from its submit, to learn from.
        first_channel: Option<Channel>,
        delay_ms: Option<i64>,
    },
    /// Later than expected (`otp_orders_overdue_total`).
    Overdue {
        channel: Channel,
        country: &'static str,
        stage: Stage,
    },
}

impl Fact {
    /// A short description for logs: `sent`, `result sms#0 failed`, `verified`,
    /// `overdue delivery`.
    pub fn describe(&self) -> String {
        match self {
            Fact::Sent { .. } => "sent".into(),
            Fact::Result {
                channel,
                seq,
                result,
                ..
            } => format!("result {}#{seq} {}", channel.as_str(), result.as_str()),
            Fact::Verified { .. } => "verified".into(),
            Fact::Overdue { stage, .. } => format!("overdue {}", stage.as_str()),
        }
    }

    /// Feeds the delays this fact shows into the estimates.
    pub fn teach(&self, estimates: &mut Estimates) {
        match self {
            Fact::Result {
                channel,
                country,
                report_delay_ms: Some(ms),
                ..
            } => estimates.observe(Stage::Delivery, country, *channel, *ms),
            Fact::Verified {
                country,
                first_channel: Some(channel),
                delay_ms: Some(ms),
                ..
            } => estimates.observe(Stage::Verification, country, *channel, *ms),
            _ => {}
        }
    }
}

/// What is expected of an order's attempts and verification.
pub struct Expecting<'a> {
    pub estimates: &'a Estimates,
    pub rule: &'a OverdueRule,
    /// Expected moments this close after the first are polled together.
    pub batch: Duration,
}

impl Expecting<'_> {
    fn expect(&self, stage: Stage, country: &'static str, channel: Channel) -> Expectation {
        self.estimates.expect(stage, country, channel, self.rule)
    }
}

/// The facts of `obs` not counted yet at `now_ms`, marking them in `counted`.
pub fn reveal(
    obs: &Observation,
    counted: &mut Counted,
    now_ms: i64,
    expecting: &Expecting<'_>,
) -> Vec<Fact> {
    let mut facts = Vec::new();
    if obs.is_absent() {
        return facts;
    }
    let places = attempt_places(obs);
    let country = order_country(obs, &places);
    let first = obs.attempts.first();
    if let Some(first) = first {
        if counted.take(SENT) {
            facts.push(Fact::Sent {
                channel: first.channel,
                country,
            });
        }
    }
    for (a, place) in obs.attempts.iter().zip(&places) {
        if a.result != AttemptResult::Pending && counted.take_result(a.channel, a.seq) {
            facts.push(Fact::Result {
                channel: a.channel,
                seq: a.seq,
                country: place.country,
                mcc: place.mcc.clone(),
                result: a.result,
                report_delay_ms: a.report_delay_ms,
            });
        }
    }
    let verified = obs.matched.is_some_and(Matched::is_verified);
    if verified && counted.take(VERIFIED) {
        let first_submit = first.and_then(|a| a.submit_ms);
        facts.push(Fact::Verified {
            channel: order_channel(obs),
            country,
            first_channel: first.map(|a| a.channel),
            delay_ms: first_submit
                .zip(obs.verified_ms)
                .and_then(|(from, to)| (to >= from).then_some(to - from)),
        });
    }
    if let Some(fact) = overdue_delivery(obs, &places, counted, now_ms, expecting) {
        facts.push(fact);
    }
    // The user typed a wrong code and gave up: no verification is late, none is coming.
    let gave_up = obs.matched == Some(Matched::FAILED);
    if let (false, false, Some(first)) = (verified, gave_up, first) {
        let first_submit = first.submit_ms;
        let stage = Stage::Verification;
        let due = first_submit.map(|s| {
            after(
                s,
                expecting
                    .expect(stage, country, first.channel)
                    .overdue_after,
            )
        });
        if due.is_some_and(|due| now_ms > due) && counted.take(OVERDUE_VERIFICATION) {
            facts.push(Fact::Overdue {
                channel: first.channel,
                country,
                stage,
            });
        }
    }
    facts
}

/// The order's first attempt still pending past its delivery expectation, counted once
/// per order. Only the first: its channel is the one `otp_orders_sent_total` counts the
/// order under, so overdue / sent is a share of orders; a late fallback attempt (more
/// of them when the first channel fails) would inflate its channel's share.
fn overdue_delivery(
    obs: &Observation,
    places: &[Place],
    counted: &mut Counted,
    now_ms: i64,
    expecting: &Expecting<'_>,
) -> Option<Fact> {
    if counted.flags & OVERDUE_DELIVERY != 0 {
        return None;
    }
    let (a, place) = obs.attempts.first().zip(places.first())?;
    let late = a.result == AttemptResult::Pending
        && a.submit_ms.is_some_and(|s| {
            let expected = expecting.expect(Stage::Delivery, place.country, a.channel);
            now_ms > after(s, expected.overdue_after)
        });
    if !late {
        return None;
    }
    counted.take(OVERDUE_DELIVERY);
    Some(Fact::Overdue {
        channel: a.channel,
        country: place.country,
        stage: Stage::Delivery,
    })
}

/// The next moment after `now_ms` at which a fact of this order is expected to show:
/// a pending attempt's report (its 90th percentile, which is the first attempt's overdue
/// moment) and the verification (its median and overdue moment). `learned` says whether any of them
/// comes from history rather than the fallback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextExpected {
    pub at_ms: i64,
    pub learned: bool,
}

pub fn next_expected(
    obs: &Observation,
    counted: &Counted,
    now_ms: i64,
    expecting: &Expecting<'_>,
) -> Option<NextExpected> {
    if obs.is_absent() {
        return None;
    }
    let places = attempt_places(obs);
    let mut moments: Vec<NextExpected> = Vec::new();
    // Just past the moment, so that the poll sees what is due by then.
    let mut consider = |at_ms: i64, learned: bool| {
        let at_ms = at_ms.saturating_add(1);
        if at_ms > now_ms {
            moments.push(NextExpected { at_ms, learned });
        }
    };
    for (i, (a, place)) in obs.attempts.iter().zip(&places).enumerate() {
        let (Some(submit), AttemptResult::Pending) = (a.submit_ms, a.result) else {
            continue;
        };
        // One poll per report, at its 90th percentile: nine in ten reports are in by
        // then (failures usually sooner), and it is the moment the first attempt turns
        // overdue. A poll at the median too would cost a query per order for a few
        // seconds of freshness.
        let x = expecting.expect(Stage::Delivery, place.country, a.channel);
        let first_unjudged = i == 0 && counted.flags & OVERDUE_DELIVERY == 0;
        if first_unjudged || x.median.is_some() {
            consider(after(submit, x.overdue_after), x.median.is_some());
        }
    }
    let verified = obs.matched.is_some_and(Matched::is_verified);
    let gave_up = obs.matched == Some(Matched::FAILED);
    if let (false, false, Some(first)) = (verified, gave_up, obs.attempts.first()) {
        if let Some(submit) = first.submit_ms {
            let country = order_country(obs, &places);
            let x = expecting.expect(Stage::Verification, country, first.channel);
            if let Some(median) = x.median {
                consider(after(submit, median), true);
            }
            if counted.flags & OVERDUE_VERIFICATION == 0 {
                consider(after(submit, x.overdue_after), x.median.is_some());
            }
        }
    }
    // One poll covers every moment within `batch` of the first: facts a few seconds
    // apart are seen together, at most `batch` later than expected.
    let first = moments.iter().map(|m| m.at_ms).min()?;
    let until = after(first, expecting.batch);
    let covered = moments.iter().filter(|m| m.at_ms <= until);
    let at_ms = covered.clone().map(|m| m.at_ms).max()?;
    let learned = covered.clone().any(|m| m.learned);
    Some(NextExpected { at_ms, learned })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{attempt, obs};
    use super::*;
    use AttemptResult::{Delivered, Failed, Pending};
    use Channel::{Call, Sms};

    const RULE: OverdueRule = OverdueRule {
        delivery_fallback: Duration::from_secs(120),
        verification_fallback: Duration::from_secs(180),
    };

    fn in_india(mut a: super::super::Attempt) -> super::super::Attempt {
        a.mcc = Some(404);
        a.mnc = Some(10);
        a
    }

    fn reveal_at(o: &Observation, counted: &mut Counted, now_ms: i64) -> Vec<Fact> {
        let estimates = Estimates::default();
        reveal(
            o,
            counted,
            now_ms,
            &Expecting {
                estimates: &estimates,
                rule: &RULE,
                batch: Duration::ZERO,
            },
        )
    }

    #[test]
    fn each_fact_is_revealed_once() {
        let mut counted = Counted::default();
        let sms = |r| in_india(attempt(Sms, 1_000, r));
        let facts = reveal_at(&obs(Some(-1), vec![sms(Pending)]), &mut counted, 5_000);
        assert_eq!(
            facts,
            vec![Fact::Sent {
                channel: Sms,
                country: "IN"
            }]
        );
        // Polled again with nothing new: nothing.
        assert!(reveal_at(&obs(Some(-1), vec![sms(Pending)]), &mut counted, 6_000).is_empty());
        // The SMS fails, a call follows and is delivered, the user verifies.
        let mut failed = sms(Failed);
        failed.latency_ms = None;
        let mut call = attempt(Call, 9_000, Delivered);
        call.report_delay_ms = Some(12_000);
        let mut verified = obs(Some(0), vec![failed.clone(), call.clone()]);
        verified.verified_ms = Some(31_000);
        verified.verification_channel = Some(Call);
        let facts = reveal_at(&verified, &mut counted, 40_000);
        assert_eq!(
            facts,
            vec![
                Fact::Result {
                    channel: Sms,
                    seq: 0,
                    country: "IN",
                    mcc: "404".into(),
                    result: Failed,
                    report_delay_ms: None
                },
                Fact::Result {
                    channel: Call,
                    seq: 0,
                    country: "IN",
                    mcc: "404".into(),
                    result: Delivered,
                    report_delay_ms: Some(12_000)
                },
                Fact::Verified {
                    channel: "call",
                    country: "IN",
                    first_channel: Some(Sms),
                    delay_ms: Some(30_000)
                },
            ]
        );
        assert!(reveal_at(&verified, &mut counted, 50_000).is_empty());
        // The marks survive a round trip through the store's encoding.
        let json = serde_json::to_string(&counted).unwrap();
        let back: Counted = serde_json::from_str(&json).unwrap();
        assert!(reveal_at(&verified, &mut back.clone(), 60_000).is_empty());
        assert_eq!(back, counted);
    }

    #[test]
    fn attempts_are_told_apart_by_channel_and_position() {
        let mut counted = Counted::default();
        let mut second = attempt(Sms, 2_000, Failed);
        second.seq = 1;
        let two = obs(Some(-1), vec![attempt(Sms, 1_000, Failed), second]);
        let results = |facts: &[Fact]| {
            facts
                .iter()
                .filter(|f| matches!(f, Fact::Result { .. }))
                .count()
        };
        assert_eq!(results(&reveal_at(&two, &mut counted, 5_000)), 2);
        assert_eq!(results(&reveal_at(&two, &mut counted, 6_000)), 0);
        // Positions beyond what is remembered are never counted early.
        let mut far = attempt(Sms, 3_000, Failed);
        far.seq = ATTEMPTS_PER_CHANNEL;
        let mut counted = Counted::default();
        assert_eq!(
            results(&reveal_at(&obs(Some(-1), vec![far]), &mut counted, 5_000)),
            0
        );
    }

    #[test]
    fn overdue_once_per_stage_after_the_fallback_while_history_is_thin() {
        let mut counted = Counted::default();
        let pending = obs(Some(-1), vec![in_india(attempt(Sms, 0, Pending))]);
        let overdue = |facts: Vec<Fact>| -> Vec<Stage> {
            facts
                .into_iter()
                .filter_map(|f| match f {
                    Fact::Overdue { stage, .. } => Some(stage),
                    _ => None,
                })
                .collect()
        };
        assert!(overdue(reveal_at(&pending, &mut counted, 120_000)).is_empty());
        assert_eq!(
            overdue(reveal_at(&pending, &mut counted, 120_001)),
            vec![Stage::Delivery]
        );
        assert!(overdue(reveal_at(&pending, &mut counted, 150_000)).is_empty());
        assert_eq!(
            overdue(reveal_at(&pending, &mut counted, 180_001)),
            vec![Stage::Verification]
        );
        assert!(overdue(reveal_at(&pending, &mut counted, 240_000)).is_empty());
        // Only the first attempt's report counts: a late fallback call after a failed
        // SMS is not a late order (its channel is not the one the order was sent on).
        let mut counted = Counted::default();
        let fallback = obs(
            Some(-1),
            vec![
                in_india(attempt(Sms, 0, Failed)),
                attempt(Call, 5_000, Pending),
            ],
        );
        assert!(overdue(reveal_at(&fallback, &mut counted, 170_000)).is_empty());
        // A delivered attempt is not late; a verified order or a user who gave up is
        // not late to verify.
        for matched in [0, 4, 2] {
            let mut counted = Counted::default();
            let o = obs(Some(matched), vec![attempt(Sms, 0, Delivered)]);
            assert!(
                overdue(reveal_at(&o, &mut counted, 600_000)).is_empty(),
                "{matched}"
            );
        }
    }

    #[test]
    fn learned_expectations_plan_the_polls_and_judge_lateness() {
        let mut estimates = Estimates::default();
        // IN SMS: reports after 2..=8 s; verifications after 20..=40 s.
        for i in 0..200 {
            estimates.observe(Stage::Delivery, "IN", Sms, 2_000 + (i % 7) * 1_000);
            estimates.observe(Stage::Verification, "IN", Sms, 20_000 + (i % 21) * 1_000);
        }
        let expecting = Expecting {
            estimates: &estimates,
            rule: &RULE,
            batch: Duration::ZERO,
        };
        let counted = Counted::default();
        let pending = obs(Some(-1), vec![in_india(attempt(Sms, 1_000, Pending))]);
        let next = next_expected(&pending, &counted, 2_000, &expecting).unwrap();
        assert!(next.learned);
        // The report's 90th percentile (about 8 s after submit), floored at 10 s: the
        // moment it turns overdue.
        assert_eq!(next.at_ms, 11_001, "{next:?}");
        // Then the verification's median.
        let later = next_expected(&pending, &counted, next.at_ms, &expecting).unwrap();
        assert!((28_000..=34_000).contains(&later.at_ms), "{later:?}");
        // Overdue at the 10 s floor (the p90 is about 8 s).
        let mut counted = Counted::default();
        let facts = reveal(&pending, &mut counted, 11_002, &expecting);
        assert!(facts.contains(&Fact::Overdue {
            channel: Sms,
            country: "IN",
            stage: Stage::Delivery
        }));
        // Delivered, not verified: the median verification (about 30 s after submit),
        // then the overdue moment (its 90th percentile, about 38 s).
        let delivered = obs(Some(-1), vec![in_india(attempt(Sms, 1_000, Delivered))]);
        let plan = |batch: Duration| {
            let expecting = Expecting {
                estimates: &estimates,
                rule: &RULE,
                batch,
            };
            let mut polls = Vec::new();
            let mut now = 12_000;
            while let Some(next) = next_expected(&delivered, &counted, now, &expecting) {
                polls.push(next.at_ms);
                now = next.at_ms;
            }
            polls
        };
        let polls = plan(Duration::ZERO);
        assert_eq!(polls.len(), 2, "{polls:?}");
        assert!((28_000..=34_000).contains(&polls[0]), "{polls:?}");
        assert!((36_000..=44_000).contains(&polls[1]), "{polls:?}");
        // Moments within the batch of the first are polled together, at the last one.
        let batched = plan(Duration::from_secs(15));
        assert_eq!(batched, vec![polls[1]]);
    }
}
