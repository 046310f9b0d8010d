//! Live daemon state shared by the scheduler, the spool and the HTTP server: what
//! readiness and the landing page report. Never holds a secret.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

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
    pub clock_offset_secs: AtomicI64,
    /// The last API problem in words (what to fix), empty when none.
    pub api_problem: Mutex<String>,
}

impl Status {
    pub fn new() -> Self {
        let status = Status::default();
        status.api_up.store(true, Ordering::Relaxed);
        status
    }

    pub fn ready(&self) -> bool {
        self.state_loaded.load(Ordering::Acquire)
            && self.spool_scanned.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
    }

    pub fn set_api_problem(&self, problem: impl Into<String>) {
        if let Ok(mut p) = self.api_problem.lock() {
            *p = problem.into();
        }
    }

    pub fn api_problem(&self) -> String {
        self.api_problem
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}
