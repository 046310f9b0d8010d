//! Wall-clock time as the daemon uses it: Unix milliseconds in an `i64`.
//!
//! Everything that needs "now" goes through [`Clock`], so that the scheduler's rules
//! can be driven by a hand-moved clock in unit tests; [`unix_now_ms`] is the one place
//! that reads the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        unix_now_ms()
    }
}

/// Milliseconds since the Unix epoch (0 if the system clock is before 1970).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Whole seconds since the Unix epoch.
pub fn unix_now_secs() -> i64 {
    unix_now_ms().div_euclid(1000)
}

/// A clock moved by hand, for tests: clones share the same time.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

#[cfg(test)]
impl ManualClock {
    pub fn at(now_ms: i64) -> Self {
        let clock = ManualClock::default();
        clock.set(now_ms);
        clock
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let ms = unix_now_ms();
        let secs = unix_now_secs();
        // After 2020 and within a second of each other.
        assert!(ms > 1_577_836_800_000);
        assert!((secs - ms / 1000).abs() <= 1);
        assert_eq!(SystemClock.now_ms() / 1000 - secs, 0);
    }
}
