//! The account: what a balance answer changes in the `otp_account_*` metrics and the
//! log, and what it says about the API as a whole (which the scheduler's health
//! applies, as it does for record answers). No I/O here but metrics and log lines: the
//! scheduler sends the queries, on its clock and through its rate limiter.
//!
//! - A good amount replaces its kind's gauge; a missing, blank or unusable one is
//!   logged and the last good value stays (a kind never read has no series, rather
//!   than a 0 that would say "empty" and page).
//! - The reading counts as a success (`otp_account_balance_last_success_timestamp_seconds`)
//!   when status is 0 and `balance` itself is good: `gift` and `credit` are often
//!   zero or left out, `balance` is the money.
//! - -13 sets `otp_account_locked` (logged once, at the change); a success clears it.
//! - -1/-2 pause polling like a record query's (the scheduler's health); -16 corrects
//!   the clock in the client; other failures are logged and retried sooner than the
//!   interval ([`RETRY_AFTER_FAILURE`]).

use std::time::Duration;

use crate::api::{Amount, BalanceKind, BalanceOutcome, BalanceQuery, QueryOutcome};
use crate::metrics::Metrics;

/// A failed balance query is retried this soon (or at the interval, if shorter), so
/// that one lost answer does not make the balance 5 minutes staler.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// What a balance answer says about the API as a whole, for the scheduler's health.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiSaid {
    /// -1 or -2: our credentials or IP are refused (pause, as for a record query).
    Rejected { status: i64, reason: String },
    /// Anything else: `answered` when the API's own reply came back.
    Result { answered: bool, detail: String },
}

/// The account as last read.
#[derive(Debug, Default)]
pub struct Account {
    locked: bool,
    /// The last good amount of each kind (by [`BalanceKind::ALL`]).
    amounts: [Option<f64>; 3],
    /// What was wrong with each kind in the last answer (`None`: good): a problem is
    /// logged as a warning when it starts or changes, then at debug level, so that a
    /// provider that always leaves `gift` out does not fill the log every interval.
    problems: [Option<String>; 3],
}

impl Account {
    /// Makes the always-present series: the last success at 0 ("never") and the lock
    /// at 0, so that a poller that never succeeds is seen as stale, not absent.
    pub fn start(metrics: &Metrics) -> Account {
        metrics
            .account_last_success
            .with_label_values::<&str>(&[])
            .set(0.0);
        metrics.account_locked.with_label_values::<&str>(&[]).set(0);
        Account::default()
    }

    /// Applies one balance query at `now_ms`; returns what it says about the API and
    /// when to ask again.
    pub fn on_query(
        &mut self,
        query: &BalanceQuery,
        now_ms: i64,
        interval: Duration,
        metrics: &Metrics,
    ) -> (ApiSaid, Duration) {
        metrics
            .balance_requests
            .with_label_values(&[query.status_label.as_str()])
            .inc();
        let retry = interval.min(RETRY_AFTER_FAILURE);
        let result = |detail: &str| ApiSaid::Result {
            answered: query.answered,
            detail: detail.to_string(),
        };
        match &query.outcome {
            BalanceOutcome::Balance(amounts) => {
                self.set_locked(false, "", metrics);
                let good = self.read(amounts, metrics);
                if good {
                    metrics
                        .account_last_success
                        .with_label_values::<&str>(&[])
                        .set(now_ms as f64 / 1000.0);
                }
                (result(""), if good { interval } else { retry })
            }
            BalanceOutcome::Locked { reason } => {
                self.set_locked(true, reason, metrics);
                (result(""), interval)
            }
            BalanceOutcome::Failed(QueryOutcome::Rejected { status, reason }) => (
                ApiSaid::Rejected {
                    status: *status,
                    reason: reason.clone(),
                },
                retry,
            ),
            BalanceOutcome::Failed(failed) => {
                let detail = describe(failed);
                tracing::warn!(
                    problem = %detail,
                    retry_in_secs = retry.as_secs(),
                    "the balance query failed; the last balance is kept (otp_account_balance_last_success_timestamp_seconds shows its age)"
                );
                let transient = match failed {
                    QueryOutcome::Transient { detail, .. } => detail.as_str(),
                    _ => "",
                };
                (result(transient), retry)
            }
        }
    }

    /// Sets each good amount; logs the others. Returns whether `balance` was good.
    fn read(&mut self, amounts: &[Amount; 3], metrics: &Metrics) -> bool {
        let mut balance_good = false;
        for kind in BalanceKind::ALL {
            let slot = &mut self.amounts[kind as usize];
            let last_problem = &mut self.problems[kind as usize];
            let problem = match &amounts[kind as usize] {
                Amount::Usd(usd) => {
                    *slot = Some(*usd);
                    metrics
                        .account_balance
                        .with_label_values(&[kind.as_str()])
                        .set(*usd);
                    balance_good |= kind == BalanceKind::Balance;
                    if last_problem.take().is_some() {
                        tracing::info!(
                            kind = kind.as_str(),
                            usd,
                            "the balance answer's `{}` is an amount again",
                            kind.as_str()
                        );
                    }
                    continue;
                }
                Amount::Missing => "missing".to_string(),
                Amount::Blank => "an empty string".to_string(),
                Amount::Unusable(what) => format!("{what}, not an amount"),
            };
            let kept = slot.map_or(
                "no value yet (no series until one is read)".to_string(),
                |usd| format!("the last good value {usd} is kept"),
            );
            if last_problem.as_deref() == Some(problem.as_str()) {
                tracing::debug!(
                    kind = kind.as_str(),
                    "the balance answer's `{}` is still {problem}; {kept}",
                    kind.as_str()
                );
            } else {
                tracing::warn!(
                    kind = kind.as_str(),
                    "the balance answer's `{}` is {problem}; {kept}",
                    kind.as_str()
                );
                *last_problem = Some(problem);
            }
        }
        balance_good
    }

    fn set_locked(&mut self, locked: bool, reason: &str, metrics: &Metrics) {
        if locked == self.locked {
            return;
        }
        self.locked = locked;
        metrics
            .account_locked
            .with_label_values::<&str>(&[])
            .set(i64::from(locked));
        if locked {
            tracing::error!(
                status = -13,
                reason,
                "the ITNIO account is locked (status -13 \"user locked\"): OTP sends fail until ITNIO unlocks it; contact ITNIO support (otp_account_locked is 1)"
            );
        } else {
            tracing::info!("the ITNIO account is no longer locked");
        }
    }
}

/// A failed query in one line (provider text is already redacted by the client).
fn describe(failed: &QueryOutcome) -> String {
    match failed {
        QueryOutcome::Transient { detail, .. } => detail.clone(),
        QueryOutcome::ClockSkew {
            offset_secs: Some(offset),
        } => format!("status -16 (timestamp expired): our clock is corrected by {offset} s for the next query"),
        QueryOutcome::ClockSkew { offset_secs: None } => {
            "status -16 (timestamp expired) without a usable Date header: check this host's clock (NTP)".to_string()
        }
        QueryOutcome::OtherStatus { status, reason } => format!("status {status}: {reason}"),
        QueryOutcome::Rejected { status, reason } => format!("status {status}: {reason}"),
        QueryOutcome::Record(_) | QueryOutcome::NoRecord => "an answer of another kind".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn query(outcome: BalanceOutcome, status_label: &str, answered: bool) -> BalanceQuery {
        BalanceQuery {
            outcome,
            status_label: status_label.into(),
            answered,
            duration: Duration::from_millis(20),
        }
    }

    fn balance(b: Amount, g: Amount, c: Amount) -> BalanceQuery {
        query(BalanceOutcome::Balance([b, g, c]), "0", true)
    }

    fn metrics() -> Metrics {
        Metrics::new(&["app".to_string()])
    }

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.render()).unwrap()
    }

    fn gauge(m: &Metrics, kind: &str) -> Option<f64> {
        let text = text(m);
        let line = format!("otp_account_balance_usd{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map(|v| v.parse().unwrap())
    }

    fn scalar(m: &Metrics, name: &str) -> Option<f64> {
        let prefix = format!("{name} ");
        text(m)
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn a_good_answer_sets_every_kind_and_the_last_success() {
        let m = metrics();
        let mut a = Account::start(&m);
        assert_eq!(
            scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
            Some(0.0)
        );
        assert_eq!(scalar(&m, "otp_account_locked"), Some(0.0));
        assert_eq!(gauge(&m, "balance"), None, "no series before a reading");
        let q = balance(Amount::Usd(12.34), Amount::Usd(0.5), Amount::Usd(0.0));
        let (said, next) = a.on_query(&q, 1_700_000_000_500, FIVE_MIN, &m);
        assert_eq!(
            said,
            ApiSaid::Result {
                answered: true,
                detail: String::new()
            }
        );
        assert_eq!(next, FIVE_MIN);
        assert_eq!(gauge(&m, "balance"), Some(12.34));
        assert_eq!(gauge(&m, "gift"), Some(0.5));
        assert_eq!(gauge(&m, "credit"), Some(0.0));
        assert_eq!(
            scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
            Some(1_700_000_000.5)
        );
        assert!(text(&m).contains("otp_exporter_balance_requests_total{status=\"0\"} 1"));
    }

    #[test]
    fn odd_amounts_keep_the_last_good_value_and_an_odd_balance_is_no_success() {
        let m = metrics();
        let mut a = Account::start(&m);
        a.on_query(
            &balance(Amount::Usd(10.0), Amount::Usd(1.0), Amount::Usd(2.0)),
            1_000_000,
            FIVE_MIN,
            &m,
        );
        for odd in [
            Amount::Missing,
            Amount::Blank,
            Amount::Unusable("the text \"n/a\"".into()),
        ] {
            let q = balance(odd.clone(), odd.clone(), odd.clone());
            let (_, next) = a.on_query(&q, 2_000_000, FIVE_MIN, &m);
            assert_eq!(next, RETRY_AFTER_FAILURE, "{odd:?}: retried soon");
            assert_eq!(gauge(&m, "balance"), Some(10.0), "{odd:?}");
            assert_eq!(gauge(&m, "gift"), Some(1.0), "{odd:?}");
            assert_eq!(gauge(&m, "credit"), Some(2.0), "{odd:?}");
            assert_eq!(
                scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
                Some(1000.0),
                "{odd:?}: the staleness tells the truth"
            );
        }
        // `gift` or `credit` left out is common: the balance still counts as read.
        let q = balance(Amount::Usd(9.0), Amount::Missing, Amount::Blank);
        let (_, next) = a.on_query(&q, 3_000_000, FIVE_MIN, &m);
        assert_eq!(next, FIVE_MIN);
        assert_eq!(gauge(&m, "balance"), Some(9.0));
        assert_eq!(gauge(&m, "gift"), Some(1.0));
        assert_eq!(
            scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
            Some(3000.0)
        );
    }

    /// What `f` logs at debug level and above, as the daemon's plain format writes it.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = buffer.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn an_odd_amount_is_warned_when_it_starts_or_changes_then_only_at_debug() {
        let m = metrics();
        let mut a = Account::start(&m);
        let gift = |g: Amount| balance(Amount::Usd(5.0), g, Amount::Usd(0.0));
        let log = logged(|| {
            for _ in 0..3 {
                a.on_query(&gift(Amount::Missing), 1_000, FIVE_MIN, &m);
            }
            a.on_query(&gift(Amount::Blank), 2_000, FIVE_MIN, &m);
            a.on_query(&gift(Amount::Usd(1.0)), 3_000, FIVE_MIN, &m);
            a.on_query(&gift(Amount::Missing), 4_000, FIVE_MIN, &m);
        });
        let lines: Vec<&str> = log.lines().collect();
        let warned: Vec<&&str> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
        assert_eq!(warned.len(), 3, "{log}");
        assert!(
            warned[0].contains("`gift` is missing; no value yet"),
            "{log}"
        );
        assert!(warned[1].contains("`gift` is an empty string"), "{log}");
        assert!(
            warned[2].contains("`gift` is missing; the last good value 1 is kept"),
            "{log}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(" DEBUG ") && l.contains("still missing"))
                .count(),
            2,
            "{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(" INFO ") && l.contains("`gift` is an amount again")),
            "{log}"
        );
    }

    #[test]
    fn a_kind_never_read_has_no_series() {
        let m = metrics();
        let mut a = Account::start(&m);
        a.on_query(
            &balance(Amount::Usd(5.0), Amount::Blank, Amount::Missing),
            1_000,
            FIVE_MIN,
            &m,
        );
        assert_eq!(gauge(&m, "balance"), Some(5.0));
        assert_eq!(gauge(&m, "gift"), None);
        assert_eq!(gauge(&m, "credit"), None);
    }

    #[test]
    fn locked_is_set_by_minus_13_and_cleared_by_a_good_answer() {
        let m = metrics();
        let mut a = Account::start(&m);
        a.on_query(
            &balance(Amount::Usd(5.0), Amount::Missing, Amount::Missing),
            1_000,
            FIVE_MIN,
            &m,
        );
        let locked = query(
            BalanceOutcome::Locked {
                reason: "user locked".into(),
            },
            "-13",
            true,
        );
        let (said, next) = a.on_query(&locked, 2_000, FIVE_MIN, &m);
        assert_eq!(
            said,
            ApiSaid::Result {
                answered: true,
                detail: String::new()
            },
            "the API answered"
        );
        assert_eq!(next, FIVE_MIN);
        assert_eq!(scalar(&m, "otp_account_locked"), Some(1.0));
        assert_eq!(gauge(&m, "balance"), Some(5.0), "kept while locked");
        assert_eq!(
            scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
            Some(1.0)
        );
        assert!(text(&m).contains("otp_exporter_balance_requests_total{status=\"-13\"} 1"));
        a.on_query(
            &balance(Amount::Usd(5.0), Amount::Missing, Amount::Missing),
            3_000,
            FIVE_MIN,
            &m,
        );
        assert_eq!(scalar(&m, "otp_account_locked"), Some(0.0));
    }

    #[test]
    fn rejected_credentials_are_said_to_the_health_and_failures_retry_soon() {
        let m = metrics();
        let mut a = Account::start(&m);
        let rejected = query(
            BalanceOutcome::Failed(QueryOutcome::Rejected {
                status: -1,
                reason: "auth".into(),
            }),
            "-1",
            true,
        );
        let (said, next) = a.on_query(&rejected, 1_000, FIVE_MIN, &m);
        assert_eq!(
            said,
            ApiSaid::Rejected {
                status: -1,
                reason: "auth".into()
            }
        );
        assert_eq!(next, RETRY_AFTER_FAILURE);
        let timeout = query(
            BalanceOutcome::Failed(QueryOutcome::Transient {
                retry_after: None,
                detail: "timeout".into(),
            }),
            "timeout",
            false,
        );
        let (said, next) = a.on_query(&timeout, 2_000, Duration::from_secs(10), &m);
        assert_eq!(
            said,
            ApiSaid::Result {
                answered: false,
                detail: "timeout".into()
            }
        );
        assert_eq!(
            next,
            Duration::from_secs(10),
            "never later than the interval"
        );
        let skew = query(
            BalanceOutcome::Failed(QueryOutcome::ClockSkew {
                offset_secs: Some(40),
            }),
            "-16",
            true,
        );
        let (said, _) = a.on_query(&skew, 3_000, FIVE_MIN, &m);
        assert_eq!(
            said,
            ApiSaid::Result {
                answered: true,
                detail: String::new()
            }
        );
        let text = text(&m);
        for status in ["-1", "timeout", "-16"] {
            assert!(
                text.contains(&format!(
                    "otp_exporter_balance_requests_total{{status=\"{status}\"}} 1"
                )),
                "{status}"
            );
        }
        assert!(
            !text.contains("otp_exporter_api_requests_total{status=\"-1\"}"),
            "balance queries are not record queries"
        );
        assert_eq!(
            scalar(&m, "otp_account_balance_last_success_timestamp_seconds"),
            Some(0.0)
        );
    }
}
