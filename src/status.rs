//! Live daemon state shared by the scheduler, the spool and the HTTP server: what
//! readiness and the landing page report. Never holds a secret.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// `/healthz` fails when the scheduler has not ticked for this long.
pub const STALL_AFTER_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub struct Status {
    /// Pending orders were loaded from the store.
    pub state_loaded: AtomicBool,
    /// The spool was scanned once since start.
    pub spool_scanned: AtomicBool,
    /// The daemon is shutting down.
    pub stopping: AtomicBool,
    pub pending: AtomicU64,
    pub api_up: AtomicBool,
    /// The clock correction the API client signs with (it writes here; one home).
    pub clock_offset_secs: Arc<AtomicI64>,
    /// Unix ms of the scheduler's last housekeeping tick (every second); 0 before it runs.
    pub scheduler_heartbeat_ms: AtomicI64,
    /// The last API problem in words (what to fix), empty when none.
    pub api_problem: Mutex<String>,
    /// Long-lived threads and tasks that ended unexpectedly, in words ("the spool
    /// thread panicked: …"): `/healthz` fails while the daemon stops to be restarted.
    pub tasks_failed: Mutex<Vec<String>>,
    /// Why the state database takes no writes (the store sets and clears it).
    store_problem: Mutex<Option<String>>,
    /// The last API problem and when it was noted (Unix ms); kept after it clears,
    /// for the landing page.
    last_api_problem: Mutex<Option<(i64, String)>>,
}

impl Status {
    pub fn new() -> Self {
        let status = Status::default();
        status.api_up.store(true, Ordering::Relaxed);
        status
    }

    pub fn ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// Why `/readyz` says not ready, in the operator's words; `None` when ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        if let Some(failed) = self.failed_task() {
            return Some(failed);
        }
        if self.stopping.load(Ordering::Acquire) {
            return Some("stopping".into());
        }
        if !self.state_loaded.load(Ordering::Acquire) || !self.spool_scanned.load(Ordering::Acquire)
        {
            return Some("loading state and scanning the spool".into());
        }
        self.store_problem().map(|problem| {
            format!("the state database takes no writes ({problem}); spool files wait in the spool and unsaved orders are retried until it recovers")
        })
    }

    /// Sets (or clears, with `None`) why the state database takes no writes.
    pub fn set_store_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.store_problem.lock() {
            *p = problem;
        }
    }

    pub fn store_problem(&self) -> Option<String> {
        self.store_problem.lock().ok().and_then(|p| p.clone())
    }

    /// Notes a long-lived thread or task that ended unexpectedly (the supervisor in
    /// `daemon` does, before it stops the daemon).
    pub fn task_failed(&self, what: impl Into<String>) {
        if let Ok(mut failed) = self.tasks_failed.lock() {
            failed.push(what.into());
        }
    }

    /// The first thread or task that ended unexpectedly, if any.
    pub fn failed_task(&self) -> Option<String> {
        self.tasks_failed.lock().ok()?.first().cloned()
    }

    /// Why the daemon is not alive (`/healthz`), or `None` when it is: a thread or task
    /// ended unexpectedly, or the scheduler stopped ticking.
    pub fn liveness_problem(&self, now_ms: i64) -> Option<String> {
        if let Some(failed) = self.failed_task() {
            return Some(failed);
        }
        self.scheduler_stalled(now_ms)
            .then(|| "the scheduler has stopped ticking".to_string())
    }

    /// Liveness: false once the scheduler has missed its ticks for `STALL_AFTER_MS`
    /// (a hung scheduler exports stale metrics forever; a restart fixes it).
    pub fn scheduler_stalled(&self, now_ms: i64) -> bool {
        let beat = self.scheduler_heartbeat_ms.load(Ordering::Relaxed);
        beat > 0 && now_ms - beat > STALL_AFTER_MS
    }

    pub fn set_api_problem(&self, problem: impl Into<String>) {
        let problem = problem.into();
        if !problem.is_empty() {
            if let Ok(mut last) = self.last_api_problem.lock() {
                *last = Some((crate::clock::unix_now_ms(), problem.clone()));
            }
        }
        if let Ok(mut p) = self.api_problem.lock() {
            *p = problem;
        }
    }

    /// The last API problem since start and when it was noted, even if it cleared.
    pub fn last_api_problem(&self) -> Option<(i64, String)> {
        self.last_api_problem.lock().ok().and_then(|p| p.clone())
    }

    pub fn api_problem(&self) -> String {
        self.api_problem
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_only_after_a_heartbeat_goes_quiet() {
        let status = Status::new();
        assert!(!status.scheduler_stalled(1_000_000), "not started yet");
        status
            .scheduler_heartbeat_ms
            .store(1_000_000, Ordering::Relaxed);
        assert!(!status.scheduler_stalled(1_000_000 + STALL_AFTER_MS));
        assert!(status.scheduler_stalled(1_000_001 + STALL_AFTER_MS));
    }

    #[test]
    fn a_failed_task_is_reported_by_liveness_and_readiness() {
        let status = Status::new();
        status.state_loaded.store(true, Ordering::Release);
        status.spool_scanned.store(true, Ordering::Release);
        assert!(status.ready());
        assert_eq!(status.liveness_problem(1_000_000), None);
        status.task_failed("the spool thread panicked: boom");
        status.task_failed("the HTTP server stopped");
        assert!(!status.ready());
        assert_eq!(
            status.liveness_problem(1_000_000).as_deref(),
            Some("the spool thread panicked: boom"),
            "the first failure, the cause of the rest"
        );
    }

    #[test]
    fn a_store_problem_makes_it_not_ready_with_the_reason_until_cleared() {
        let status = Status::new();
        assert_eq!(
            status.not_ready_reason().as_deref(),
            Some("loading state and scanning the spool")
        );
        status.state_loaded.store(true, Ordering::Release);
        status.spool_scanned.store(true, Ordering::Release);
        assert_eq!(status.not_ready_reason(), None);
        status.set_store_problem(Some("commit failed: No space left on device".into()));
        let reason = status.not_ready_reason().unwrap_or_default();
        assert!(reason.contains("No space left on device"), "{reason}");
        assert!(!status.ready());
        status.set_store_problem(None);
        assert!(status.ready());
        status.stopping.store(true, Ordering::Release);
        assert_eq!(status.not_ready_reason().as_deref(), Some("stopping"));
    }
}
