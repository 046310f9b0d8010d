//! The polling oracle: the fewest record queries an exporter that knew every order's
//! future would need to see each fact of the order in time and to finalize it under
//! the exporter's rules. The polling bench divides the exporter's queries per order by
//! this.
//!
//! A fact is a moment the record changes in a way the exporter reports: an attempt
//! appears (its submission), an attempt gets its result, the user verifies (or
//! mistypes). A query at `t` sees every fact up to `t`; a fact must be seen within
//! `tolerance` of its moment, so a query at `f + tolerance` covers the facts in
//! `[f, f + tolerance]`. Finalizing adds the exporter's decisive moments:
//! - verified: decided by the query that sees the verification; final once every
//!   attempt has its result, else at the first query from the settle deadline
//!   (`settle_timeout` after the deciding query);
//! - not verified: a query at or after the window's close decides (failed, unverified,
//!   undelivered) when a result or a mistyped code is visible, then as above; with no
//!   result ever (only pending attempts) nothing decides before `max_age` (`expired`);
//! - an id that was never sent: two queries `not_found_grace` apart.
//!
//! The queries are placed greedily (each at the latest moment that still covers the
//! earliest uncovered fact, which is optimal for covering intervals), then replayed
//! with the exporter's rules to count those made before the order is final.

use std::time::Duration;

use super::timeline::{Timeline, VerifyKind};

/// The exporter's settings the oracle plays by (wall-clock durations, as configured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OracleRules {
    /// `tracking.verification_window`.
    pub verification_window: Duration,
    /// `tracking.settle_timeout`.
    pub settle_timeout: Duration,
    /// `tracking.not_found_grace`.
    pub not_found_grace: Duration,
    /// `tracking.max_age`.
    pub max_age: Duration,
    /// How soon after a fact a query must see it (wall clock).
    pub tolerance: Duration,
}

impl OracleRules {
    /// 5 s: what "seeing a fact when it happens" means for an exporter at real time.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5);
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The fewest queries for an id that was written to the spool but never sent.
pub fn unsent_queries(rules: &OracleRules) -> u32 {
    if rules.not_found_grace.is_zero() {
        1
    } else {
        2
    }
}

/// Minimal points stabbing every interval `[a, b]`: sorted by right end, a point at
/// the right end of each interval the last point does not reach.
fn stab(mut intervals: Vec<(i64, i64)>) -> Vec<i64> {
    intervals.sort_by_key(|&(a, b)| (b, a));
    let mut points: Vec<i64> = Vec::new();
    for (a, b) in intervals {
        if points.last().is_none_or(|&last| last < a) {
            points.push(b);
        }
    }
    points
}

/// The fewest queries for a sent order whose life is `timeline`, when the exporter
/// counts its windows from the send and the simulator runs at `scale`.
pub fn sent_queries(timeline: &Timeline, scale: f64, rules: &OracleRules) -> u32 {
    // Wall-clock milliseconds after the send, rounded as the record renderer does.
    let wall = |offset: u32| (f64::from(offset) * scale).round() as i64;
    let tol = ms(rules.tolerance);
    let window_close = ms(rules.verification_window);
    let max_age = ms(rules.max_age);
    let settle = ms(rules.settle_timeout);

    let submits: Vec<i64> = timeline.attempts.iter().map(|a| wall(a.submit)).collect();
    let dones: Vec<Option<i64>> = timeline.attempts.iter().map(|a| a.done.map(wall)).collect();
    let verification = timeline.verification.map(|v| (wall(v.at), v.kind));

    let mut facts: Vec<i64> = submits.clone();
    facts.extend(dones.iter().flatten());
    facts.extend(verification.map(|(at, _)| at));
    let mut intervals: Vec<(i64, i64)> = facts.iter().map(|&f| (f, f + tol)).collect();
    // The decisive moment besides the facts: a verified order needs none; another one
    // the window's close if something decides it there, else the max age.
    let verified = verification.is_some_and(|(_, k)| k == VerifyKind::Matched);
    if !verified {
        let decidable = verification.is_some_and(|(at, _)| at <= window_close)
            || dones.iter().flatten().any(|&d| d <= window_close);
        let moment = if decidable { window_close } else { max_age };
        intervals.push((moment, moment + tol));
    }
    let points = stab(intervals);

    // Replay the exporter's rules over the planned queries.
    let mut decided: Option<i64> = None;
    let mut count = 0u32;
    for &p in &points {
        count += 1;
        if decided.is_none() {
            let verified_seen =
                verification.is_some_and(|(at, k)| k == VerifyKind::Matched && at <= p);
            let other_seen = p >= window_close
                && (verification.is_some_and(|(at, _)| at <= p)
                    || dones.iter().flatten().any(|&d| d <= p));
            if verified_seen || other_seen {
                decided = Some(p);
            }
        }
        if let Some(at) = decided {
            // Settled: every attempt visible by now has its result.
            let settled = submits
                .iter()
                .zip(&dones)
                .filter(|(s, _)| **s <= p)
                .all(|(_, d)| d.is_some_and(|d| d <= p));
            if settled || p >= at.saturating_add(settle) {
                return count;
            }
        }
        if p >= max_age {
            return count;
        }
    }
    // The facts are all seen but the order is not final yet: one more query at the
    // settle deadline (or the max age) finalizes it.
    count + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{profile_for_country, Channel, Network};
    use crate::quirks::Quirks;
    use crate::timeline::{Attempt, AttemptResult, Verification};

    const S: u32 = 1_000;

    fn rules(tolerance_s: u64) -> OracleRules {
        OracleRules {
            verification_window: Duration::from_secs(300),
            settle_timeout: Duration::from_secs(120),
            not_found_grace: Duration::from_secs(120),
            max_age: Duration::from_secs(1_800),
            tolerance: Duration::from_secs(tolerance_s),
        }
    }

    /// An attempt submitted at `submit` s whose result comes at `done` s (`None`: never).
    fn attempt(channel: Channel, submit: u32, done: Option<u32>, delivered: bool) -> Attempt {
        let result = match (done, delivered) {
            (None, _) => AttemptResult::Pending,
            (Some(_), true) => AttemptResult::Delivered,
            (Some(_), false) => AttemptResult::Failed,
        };
        Attempt {
            channel,
            submit: submit * S,
            send: submit * S,
            ringing: None,
            answer: None,
            receipt: (result == AttemptResult::Delivered).then(|| done.unwrap_or(0) * S),
            done: done.map(|d| d * S),
            result,
            reason: "",
            termination_code: 0,
            segments: 1,
            amount: 0,
            duration_s: 0,
            charged_s: 0,
            silent: done.is_none(),
        }
    }

    fn timeline(attempts: Vec<Attempt>, verified: Option<(u32, VerifyKind)>) -> Timeline {
        Timeline {
            profile: profile_for_country("IN").expect("IN"),
            network: Network { mcc: 404, mnc: 10 },
            start: attempts.first().map_or(Channel::Sms, |a| a.channel),
            verification: verified.map(|(at, kind)| Verification {
                at: at * S,
                kind,
                channel: Channel::Sms,
            }),
            attempts,
            quirks: Quirks::NONE,
        }
    }

    use Channel::{Call, Sms};
    use VerifyKind::{Matched, WrongCode};

    #[test]
    fn verified_with_its_report_first_needs_a_query_per_cluster_of_facts() {
        // Submit 1 s and DLR 6 s in one query (at 6 s), the verification at 20 s in one.
        let t = timeline(vec![attempt(Sms, 1, Some(6), true)], Some((20, Matched)));
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 2);
        // Everything within 5 s: one query sees it all and finalizes.
        let t = timeline(vec![attempt(Sms, 1, Some(3), true)], Some((5, Matched)));
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 1);
        // A late DLR (after the verification) is one more fact to wait for.
        let t = timeline(vec![attempt(Sms, 1, Some(40), true)], Some((20, Matched)));
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 3);
    }

    #[test]
    fn not_verified_needs_the_window_close() {
        // SMS fails at 10 s, the call is submitted at 12 s and fails at 40 s: queries at
        // 6, 15 (10 and 12), 45, and 305 (the window's close decides `undelivered`).
        let t = timeline(
            vec![
                attempt(Sms, 1, Some(10), false),
                attempt(Call, 12, Some(40), false),
            ],
            None,
        );
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 4);
        // A fact right before the close is seen by the closing query itself.
        let t = timeline(vec![attempt(Sms, 1, Some(298), true)], None);
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 2);
        // A mistyped code is decided at the close too (`failed`).
        let t = timeline(vec![attempt(Sms, 1, Some(5), true)], Some((30, WrongCode)));
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 3);
    }

    #[test]
    fn a_result_that_never_comes_waits_for_the_settle_deadline() {
        // Silent SMS, delivered call, no verification: 3 fact queries, the close
        // decides `unverified`, the pending SMS holds it until the settle deadline.
        let t = timeline(
            vec![
                attempt(Sms, 1, None, false),
                attempt(Call, 40, Some(70), true),
            ],
            None,
        );
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 5);
        // Verified through the call with the SMS still pending: 4 fact queries, then
        // the settle deadline after the query that saw the verification.
        let t = timeline(
            vec![
                attempt(Sms, 1, None, false),
                attempt(Call, 40, Some(70), true),
            ],
            Some((60, Matched)),
        );
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 5);
    }

    #[test]
    fn only_pending_attempts_wait_for_the_max_age() {
        let t = timeline(vec![attempt(Sms, 1, None, false)], None);
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 2);
        let t = timeline(
            vec![attempt(Sms, 1, None, false), attempt(Call, 40, None, false)],
            None,
        );
        assert_eq!(sent_queries(&t, 1.0, &rules(5)), 3);
    }

    #[test]
    fn the_time_scale_compresses_facts_and_rules_alike() {
        let t = timeline(
            vec![
                attempt(Sms, 1, Some(10), false),
                attempt(Call, 12, Some(40), false),
            ],
            None,
        );
        let scaled = OracleRules {
            verification_window: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(12),
            not_found_grace: Duration::from_secs(12),
            max_age: Duration::from_secs(180),
            tolerance: Duration::from_millis(500),
        };
        assert_eq!(sent_queries(&t, 0.1, &scaled), 4);
        // A 5 s tolerance at scale 0.1 is 50 simulated seconds: fewer queries.
        assert_eq!(
            sent_queries(
                &t,
                0.1,
                &OracleRules {
                    tolerance: Duration::from_secs(5),
                    ..scaled
                }
            ),
            2
        );
    }

    #[test]
    fn an_unsent_id_needs_two_queries_a_grace_apart() {
        assert_eq!(unsent_queries(&rules(5)), 2);
        let no_grace = OracleRules {
            not_found_grace: Duration::ZERO,
            ..rules(5)
        };
        assert_eq!(unsent_queries(&no_grace), 1);
    }

    #[test]
    fn stabbing_is_minimal_on_overlaps() {
        assert_eq!(
            stab(vec![(0, 5), (4, 9), (6, 11), (20, 25)]),
            vec![5, 11, 25]
        );
        assert_eq!(stab(vec![(10, 15), (0, 100)]), vec![15]);
        assert!(stab(Vec::new()).is_empty());
    }
}
