//! A byte-rate limiter: callers charge the bytes they move and sleep while the limiter is in
//! debt, so the long-run rate stays at or below the configured bytes per second.
//!
//! Used by the compaction manager (bytes written by compactions) and by batchlog replay (batch
//! bytes sent, A8 step 2).
//!
//! Thread-safety: shared by reference between threads; one short lock per charge, and the sleep
//! happens outside it.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Limits the bytes per second that all callers together charge.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    /// When the bytes charged so far will have been "paid off" at the rate.
    next_free: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter of `bytes_per_sec` (must be above zero; options validation checks it).
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter { bytes_per_sec: bytes_per_sec.max(1), next_free: Mutex::new(Instant::now()) }
    }

    /// The configured rate.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Charges `bytes` and sleeps until the limiter is out of debt.
    pub fn charge(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let wait = {
            let mut next = self.next_free.lock();
            let now = Instant::now();
            *next = (*next).max(now) + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            next.saturating_duration_since(now)
        };
        std::thread::sleep(wait);
    }
}
