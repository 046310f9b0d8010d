//! When an order's fate is decided, and when to poll it next.

use std::time::Duration;

use super::{AttemptResult, Counted, NextExpected, Observation, Outcome};
use crate::api::wire::Matched;

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
    /// Why the poll planned by the last [`Tracking::apply`] (or the first poll) is made.
    pub next_purpose: PollPurpose,
    /// What the early-signal metrics already counted (persisted).
    pub counted: Counted,
}

/// Why a poll is planned: under a short request budget the scheduler serves decisive
/// polls first, then expected ones, then routine ones (each with a bounded head start,
/// so none is starved). Also the `purpose` label of `otp_exporter_poll_delay_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PollPurpose {
    /// A moment that decides the outcome: window close, settle deadline, not-found
    /// grace end, max age.
    Decisive,
    /// Planned around an expected fact: the first sighting, an expected delivery report
    /// or verification, an overdue check.
    Expected,
    /// Backoff polls and retries.
    #[default]
    Routine,
}

impl PollPurpose {
    pub const ALL: [PollPurpose; 3] = [
        PollPurpose::Decisive,
        PollPurpose::Expected,
        PollPurpose::Routine,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PollPurpose::Decisive => "decisive",
            PollPurpose::Expected => "expected",
            PollPurpose::Routine => "routine",
        }
    }
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
            next_purpose: PollPurpose::Expected,
            counted: Counted::default(),
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
    ///
    /// A decisive moment (window close, settle deadline, not-found grace end) is acted
    /// on only with an answer at or after it: a failed or skipped query says nothing
    /// about the attempts the provider may have settled meanwhile, so the order is
    /// retried with backoff until an answer comes, and only `max_age` ends it without one.
    pub fn apply(&mut self, sighting: Sighting, now_ms: i64, limits: &Limits) -> Step {
        self.apply_expecting(sighting, now_ms, limits, None)
    }

    /// [`Tracking::apply`], with the next moment a fact of the order is expected
    /// ([`super::next_expected`]): the next poll lands on it. With expectations learned
    /// from history, they replace the doubling backoff (bounded by `max_interval`);
    /// with only the fallback ones, the backoff goes on beside them.
    pub fn apply_expecting(
        &mut self,
        sighting: Sighting,
        now_ms: i64,
        limits: &Limits,
        expected: Option<NextExpected>,
    ) -> Step {
        let answered = matches!(sighting, Sighting::Record(_) | Sighting::NoRecord);
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
            if settled || (answered && now_ms >= after(decided, limits.settle_timeout)) {
                return Step::Finalize(outcome);
            }
        }
        if now_ms >= self.max_age_deadline_ms(limits) {
            return Step::Finalize(self.outcome.unwrap_or(Outcome::Expired));
        }
        let routine = match (retry_at, expected) {
            (Some(retry), _) => retry,
            (None, Some(x)) if x.learned => after(now_ms, limits.max_interval),
            (None, _) => after(now_ms, self.poll_interval(limits)),
        };
        let expected_at = expected.filter(|_| retry_at.is_none()).map(|x| x.at_ms);
        let decisive = self.next_decisive_moment(now_ms, limits);
        let (at, purpose) = match expected_at {
            Some(x) if x < routine.min(decisive) => (x, PollPurpose::Expected),
            _ if decisive <= routine => (decisive, PollPurpose::Decisive),
            _ => (routine, PollPurpose::Routine),
        };
        self.next_purpose = purpose;
        Step::PollAt(at)
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{attempt, obs};
    use super::super::{Attempt, Channel};
    use super::*;
    use AttemptResult::{Delivered, Failed, Pending};
    use Channel::{Call, Sms};

    /// A poll that brought a record.
    fn record(matched: Option<i64>, attempts: Vec<Attempt>) -> Sighting {
        Sighting::Record(obs(matched, attempts))
    }

    /// An order issued at 0 that has seen `sighting` at `at_ms`.
    fn seen(sighting: Sighting, at_ms: i64) -> Tracking {
        let mut t = Tracking::new(0);
        t.apply(sighting, at_ms, &LIMITS);
        t
    }

    const LIMITS: Limits = Limits {
        verification_window: Duration::from_secs(300),
        settle_timeout: Duration::from_secs(120),
        not_found_grace: Duration::from_secs(120),
        max_age: Duration::from_secs(1_800),
        first_delay: Duration::from_secs(5),
        max_interval: Duration::from_secs(60),
    };

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
            record(Some(0), vec![attempt(Sms, 0, Pending)]),
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
            record(Some(0), vec![attempt(Sms, 0, Delivered)]),
            20_000,
            &LIMITS,
        );
        assert_eq!(step, Step::Finalize(Outcome::Verified));
        assert_eq!(t.answers, 2);
    }

    #[test]
    fn settle_timeout_finalizes_with_pending_attempts() {
        let mut t = seen(record(Some(0), vec![attempt(Sms, 0, Pending)]), 10_000);
        let step = t.apply(
            record(Some(0), vec![attempt(Sms, 0, Pending)]),
            130_000,
            &LIMITS,
        );
        assert_eq!(step, Step::Finalize(Outcome::Verified));
    }

    /// A failed query (or none at all) at the settle deadline says nothing about the
    /// pending attempts: the order waits for an answer, bounded by `max_age`.
    #[test]
    fn a_settle_deadline_without_an_answer_waits_for_one() {
        let fail = Sighting::Failed {
            retry_after: None,
            jitter: 1.0,
        };
        for no_answer in [fail, Sighting::Skipped] {
            let mut t = seen(record(Some(0), vec![attempt(Sms, 0, Pending)]), 10_000);
            let step = t.apply(no_answer.clone(), 130_000, &LIMITS);
            let Step::PollAt(retry) = step else {
                panic!("{no_answer:?} at the deadline: {step:?}")
            };
            assert!(retry > 130_000 && retry <= 190_000, "{retry}");
            // The next answer decides, with what it says about the attempts.
            let step = t.apply(
                record(Some(0), vec![attempt(Sms, 0, Delivered)]),
                retry,
                &LIMITS,
            );
            assert_eq!(step, Step::Finalize(Outcome::Verified));
            assert_eq!(t.last.as_ref().unwrap().attempts[0].result, Delivered);
            // Without any answer, the max age ends it with the outcome decided.
            let mut t = seen(record(Some(0), vec![attempt(Sms, 0, Pending)]), 10_000);
            assert!(matches!(
                t.apply(no_answer.clone(), 1_799_999, &LIMITS),
                Step::PollAt(_)
            ));
            assert_eq!(
                t.apply(no_answer, 1_800_000, &LIMITS),
                Step::Finalize(Outcome::Verified)
            );
        }
    }

    #[test]
    fn a_failed_query_at_the_window_close_or_grace_end_decides_nothing() {
        let fail = || Sighting::Failed {
            retry_after: None,
            jitter: 1.0,
        };
        // Window close: the SMS failed before, the call may have been delivered since.
        let mut t = seen(
            record(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Pending)],
            ),
            200_000,
        );
        assert!(matches!(t.apply(fail(), 300_000, &LIMITS), Step::PollAt(_)));
        assert_eq!(t.outcome, None);
        t.apply(
            record(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Delivered)],
            ),
            305_000,
            &LIMITS,
        );
        assert_eq!(t.outcome, Some(Outcome::Unverified));
        // Grace end: a failure is not "no record".
        let mut t = seen(Sighting::NoRecord, 5_000);
        assert!(matches!(t.apply(fail(), 125_000, &LIMITS), Step::PollAt(_)));
        assert!(matches!(
            t.apply(Sighting::Skipped, 126_000, &LIMITS),
            Step::PollAt(_)
        ));
        assert_eq!(
            t.apply(Sighting::NoRecord, 130_000, &LIMITS),
            Step::Finalize(Outcome::NotFound)
        );
    }

    #[test]
    fn outcome_is_decided_once() {
        let mut t = seen(
            record(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Pending)],
            ),
            300_000,
        );
        assert_eq!(t.outcome, Some(Outcome::Undelivered));
        // The call is answered later: the outcome stays, the attempt result is updated.
        let step = t.apply(
            record(
                Some(-1),
                vec![attempt(Sms, 0, Failed), attempt(Call, 1, Delivered)],
            ),
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
        let mut t = seen(record(Some(3), vec![]), 5_000);
        assert_eq!(
            t.apply(record(Some(3), vec![]), 200_000, &LIMITS),
            Step::Finalize(Outcome::NotFound)
        );
    }

    #[test]
    fn a_record_that_vanishes_is_not_not_found() {
        let mut t = seen(record(Some(1), vec![attempt(Sms, 0, Pending)]), 5_000);
        assert!(matches!(
            t.apply(Sighting::NoRecord, 200_000, &LIMITS),
            Step::PollAt(_)
        ));
    }

    #[test]
    fn expired_at_max_age_when_nothing_is_decidable() {
        let mut t = seen(record(Some(1), vec![attempt(Sms, 0, Pending)]), 5_000);
        assert!(matches!(
            t.apply(
                record(Some(-1), vec![attempt(Sms, 0, Pending)]),
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
        let pending = || record(Some(1), vec![attempt(Sms, 0, Pending)]);
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

    #[test]
    fn polls_land_on_expected_moments_and_say_why() {
        let pending = || record(Some(1), vec![attempt(Sms, 0, Pending)]);
        let learned = |at_ms| {
            Some(NextExpected {
                at_ms,
                learned: true,
            })
        };
        // Learned: the expected moment wins over the doubling backoff.
        let mut t = Tracking::new(0);
        assert_eq!(t.next_purpose, PollPurpose::Expected, "the first poll");
        let step = t.apply_expecting(pending(), 5_000, &LIMITS, learned(7_000));
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(7_000), PollPurpose::Expected)
        );
        // Learned, but nothing expected within max_interval: the cap, not the doubling.
        let step = t.apply_expecting(pending(), 7_000, &LIMITS, learned(200_000));
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(67_000), PollPurpose::Routine)
        );
        // Fallback expectations only: the doubling backoff goes on beside them.
        let mut t = Tracking::new(0);
        let thin = Some(NextExpected {
            at_ms: 125_000,
            learned: false,
        });
        let step = t.apply_expecting(pending(), 5_000, &LIMITS, thin);
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(10_000), PollPurpose::Routine)
        );
        let step = t.apply_expecting(pending(), 120_000, &LIMITS, thin);
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(125_000), PollPurpose::Expected)
        );
        // A decisive moment before the expected one wins, and says so.
        let step = t.apply_expecting(pending(), 290_000, &LIMITS, learned(320_000));
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(300_000), PollPurpose::Decisive)
        );
        // A failed query retries with backoff whatever is expected.
        let fail = Sighting::Failed {
            retry_after: None,
            jitter: 1.0,
        };
        let mut t = Tracking::new(0);
        let step = t.apply_expecting(fail, 5_000, &LIMITS, learned(6_000));
        assert_eq!(
            (step, t.next_purpose),
            (Step::PollAt(10_000), PollPurpose::Routine)
        );
    }
}
