//! The API as a whole: up, paused because it rejects our credentials or IP (-1/-2)
//! and probed with one order at a time, or not answering at all. Drives
//! `otp_exporter_api_up`, the readiness page's API line and the workers' hold flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::status::Status;

/// While the API rejects our credentials or IP, probe at most this often.
pub(super) const AUTH_PROBE_INTERVAL_MS: i64 = 30_000;
/// This many queries in a row without any answer turn `otp_exporter_api_up` to 0.
pub(super) const UNANSWERED_BEFORE_DOWN: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ApiState {
    Up,
    /// Credentials or IP rejected: probe with one order at `next_probe_ms`.
    Rejected {
        next_probe_ms: i64,
        probing: bool,
    },
}

pub(super) struct ApiHealth {
    state: ApiState,
    /// Queries in a row that got no answer at all.
    unanswered_in_row: u32,
    /// Set while the API rejects us: workers hand queued jobs back unsent (only the
    /// probe goes out).
    held: Arc<AtomicBool>,
    status: Arc<Status>,
    metrics: Arc<Metrics>,
}

impl ApiHealth {
    pub fn new(status: Arc<Status>, metrics: Arc<Metrics>) -> Self {
        ApiHealth {
            state: ApiState::Up,
            unanswered_in_row: 0,
            held: Default::default(),
            status,
            metrics,
        }
    }

    #[cfg(test)]
    pub fn state(&self) -> ApiState {
        self.state
    }

    /// The flag the workers read: jobs other than the probe are handed back unsent.
    pub fn held(&self) -> Arc<AtomicBool> {
        self.held.clone()
    }

    /// Due orders are not queried now (they still meet their deadlines): the API
    /// rejects us and the probe is out or not yet due.
    pub fn holds_due_orders(&self, now_ms: i64) -> bool {
        match self.state {
            ApiState::Up => false,
            ApiState::Rejected {
                next_probe_ms,
                probing,
            } => probing || now_ms < next_probe_ms,
        }
    }

    /// When to wake for the next probe, if one is waiting.
    pub fn next_probe_ms(&self, now_ms: i64) -> Option<i64> {
        match self.state {
            ApiState::Rejected { next_probe_ms, .. } if next_probe_ms > now_ms => {
                Some(next_probe_ms)
            }
            _ => None,
        }
    }

    /// A job is being sent; returns whether it is the probe (the one query allowed
    /// while the API rejects us).
    pub fn on_send(&mut self) -> bool {
        match self.state {
            ApiState::Up => false,
            ApiState::Rejected { next_probe_ms, .. } => {
                self.state = ApiState::Rejected {
                    next_probe_ms,
                    probing: true,
                };
                true
            }
        }
    }

    /// The API said -1 (credentials) or -2 (IP): pause, probe in 30 s.
    pub fn on_rejected(&mut self, status: i64, reason: &str, now_ms: i64) {
        let was_up = self.state == ApiState::Up;
        self.held.store(true, Ordering::Relaxed);
        self.state = ApiState::Rejected {
            next_probe_ms: now_ms + AUTH_PROBE_INTERVAL_MS,
            probing: false,
        };
        if was_up {
            let what = if status == -2 {
                "the API refuses our IP address (status -2): add this host's public IP to the allow-list of the ITNIO account"
            } else {
                "the API rejects our credentials (status -1): check api.api_key and the api secret in the configuration"
            };
            tracing::error!(
                status,
                reason,
                "{what}; polling is paused and probed every 30 s, pending orders are kept"
            );
            self.set_down(format!("{what} (provider said: {reason})"));
        }
    }

    /// Any other query result: `answered` when the API's own reply came back (any
    /// status); timeouts, refused connections, HTTP errors and garbage are not.
    pub fn on_result(&mut self, answered: bool, detail: &str, now_ms: i64) {
        if !answered {
            if let ApiState::Rejected { probing: true, .. } = self.state {
                // The probe learnt nothing: probe again later, or polling would stay
                // paused forever.
                tracing::debug!(%detail, "the credentials probe got no answer; probing again in 30 s");
                self.state = ApiState::Rejected {
                    next_probe_ms: now_ms + AUTH_PROBE_INTERVAL_MS,
                    probing: false,
                };
            }
            self.unanswered_in_row = self.unanswered_in_row.saturating_add(1);
            if self.unanswered_in_row == UNANSWERED_BEFORE_DOWN && self.state == ApiState::Up {
                let what = format!("the API does not answer ({UNANSWERED_BEFORE_DOWN} queries in a row failed, last: {detail}); check api.base_url and the network");
                tracing::error!("{what}; orders stay pending and are retried with backoff");
                self.set_down(what);
            }
            return;
        }
        let was_unanswered = self.unanswered_in_row >= UNANSWERED_BEFORE_DOWN;
        self.unanswered_in_row = 0;
        if let ApiState::Rejected { .. } = self.state {
            tracing::info!("the API accepts our credentials again; polling resumes");
            self.state = ApiState::Up;
            self.held.store(false, Ordering::Relaxed);
        } else if was_unanswered {
            tracing::info!("the API answers again");
        }
        self.status.api_up.store(true, Ordering::Relaxed);
        self.status.set_api_problem("");
        self.metrics.api_up.set(1);
    }

    /// The result of a query that is not the probe (the balance query): as
    /// [`ApiHealth::on_result`], except that one without an answer leaves a probe in
    /// flight alone (it is the probe's answer that decides).
    pub fn on_side_result(&mut self, answered: bool, detail: &str, now_ms: i64) {
        if !answered && matches!(self.state, ApiState::Rejected { probing: true, .. }) {
            self.unanswered_in_row = self.unanswered_in_row.saturating_add(1);
            return;
        }
        self.on_result(answered, detail, now_ms);
    }

    fn set_down(&self, problem: String) {
        self.status.set_api_problem(problem);
        self.status.api_up.store(false, Ordering::Relaxed);
        self.metrics.api_up.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (ApiHealth, Arc<Status>, Arc<Metrics>) {
        let status = Arc::new(Status::new());
        let metrics = Arc::new(Metrics::new(&["app".to_string()]));
        (
            ApiHealth::new(status.clone(), metrics.clone()),
            status,
            metrics,
        )
    }

    #[test]
    fn rejected_credentials_pause_until_a_probe_is_answered() {
        let (mut h, status, metrics) = health();
        h.on_rejected(-1, "bad key", 1_000);
        assert_eq!(metrics.api_up.get(), 0);
        assert!(!status.api_up.load(Ordering::Relaxed));
        assert!(status.api_problem().contains("status -1"));
        assert!(h.held().load(Ordering::Relaxed));
        assert!(h.holds_due_orders(1_000));
        assert!(h.holds_due_orders(30_999));
        assert_eq!(h.next_probe_ms(1_000), Some(31_000));
        // The probe is due: one job goes out as the probe, then orders are held again.
        assert!(!h.holds_due_orders(31_000));
        assert!(h.on_send(), "the job sent while rejected is the probe");
        assert!(h.holds_due_orders(31_000), "only one probe at a time");
        h.on_result(true, "", 31_500);
        assert_eq!(h.state(), ApiState::Up);
        assert!(!h.held().load(Ordering::Relaxed));
        assert!(!h.holds_due_orders(31_500));
        assert_eq!(metrics.api_up.get(), 1);
        assert_eq!(status.api_problem(), "");
        assert!(!h.on_send(), "up again: ordinary jobs");
    }

    #[test]
    fn a_refused_probe_waits_another_interval() {
        let (mut h, _, _) = health();
        h.on_rejected(-2, "ip", 0);
        assert!(h.on_send());
        h.on_rejected(-2, "ip", 30_000);
        assert_eq!(
            h.state(),
            ApiState::Rejected {
                next_probe_ms: 60_000,
                probing: false
            }
        );
    }

    #[test]
    fn a_probe_without_answer_is_retried_later() {
        let (mut h, _, metrics) = health();
        h.on_rejected(-1, "bad key", 0);
        assert!(h.on_send());
        h.on_result(false, "timeout", 32_000);
        assert_eq!(
            h.state(),
            ApiState::Rejected {
                next_probe_ms: 62_000,
                probing: false
            },
            "without a new probe time polling would stay paused forever"
        );
        assert!(h.holds_due_orders(61_999));
        assert!(!h.holds_due_orders(62_000));
        assert_eq!(metrics.api_up.get(), 0, "still rejected");
    }

    #[test]
    fn a_balance_answer_resumes_polling_and_its_silence_leaves_the_probe_alone() {
        let (mut h, _, metrics) = health();
        h.on_rejected(-1, "bad key", 0);
        assert!(h.on_send(), "the probe is out");
        h.on_side_result(false, "timeout", 1_000);
        assert_eq!(
            h.state(),
            ApiState::Rejected {
                next_probe_ms: AUTH_PROBE_INTERVAL_MS,
                probing: true
            },
            "the probe in flight still decides"
        );
        h.on_side_result(true, "", 2_000);
        assert_eq!(
            h.state(),
            ApiState::Up,
            "an answer other than -1/-2 proves the credentials"
        );
        assert_eq!(metrics.api_up.get(), 1);
    }

    #[test]
    fn ten_unanswered_queries_in_a_row_mean_down() {
        let (mut h, status, metrics) = health();
        for _ in 0..UNANSWERED_BEFORE_DOWN - 1 {
            h.on_result(false, "connect_error", 0);
        }
        assert_eq!(metrics.api_up.get(), 1);
        h.on_result(true, "", 0);
        for _ in 0..UNANSWERED_BEFORE_DOWN - 1 {
            h.on_result(false, "connect_error", 0);
        }
        assert_eq!(metrics.api_up.get(), 1, "an answer resets the count");
        h.on_result(false, "timeout: deadline", 0);
        assert_eq!(metrics.api_up.get(), 0);
        assert!(status.api_problem().contains("timeout: deadline"));
        assert_eq!(h.state(), ApiState::Up, "not paused: orders keep polling");
        assert!(!h.holds_due_orders(0));
        h.on_result(true, "", 0);
        assert_eq!(metrics.api_up.get(), 1);
    }
}
