//! Write timestamps and the gc clock (R0.1–R0.3).
//!
//! Two unrelated clocks: [`Timestamp`] orders versions of data (microseconds, caller supplied),
//! [`GcTime`] is wall-clock seconds used for deletion times, expiry and TTL.
//!
//! Thread-safety: [`Timestamp::now`] is lock-free and monotonic across threads.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A write timestamp in microseconds since the Unix epoch (R0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// "No tombstone": compares below every real timestamp (R0.1 `missing_timestamp`).
    pub const MISSING: Timestamp = Timestamp(i64::MIN);
    /// The smallest real timestamp (R0.1 `min_timestamp`).
    pub const MIN: Timestamp = Timestamp(i64::MIN + 1);
    /// The largest timestamp (R0.1 `max_timestamp`).
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// The current wall-clock time in microseconds, strictly increasing across calls in this process.
    pub fn now() -> Timestamp {
        static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0);
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last.saturating_add(1));
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Timestamp(next),
                Err(seen) => last = seen,
            }
        }
    }
}

/// A point of the gc clock: seconds since the Unix epoch (R0.2). Deletion times, expiry times and
/// `now` of reads and compactions are `GcTime`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GcTime(pub i64);

impl GcTime {
    /// Below every real time (`gc_clock::time_point::min`): "never purge" as a gc_before.
    pub const MIN: GcTime = GcTime(i64::MIN);
    /// Above every real time: "no deletion", and "purge everything" as a gc_before.
    pub const MAX: GcTime = GcTime(i64::MAX);

    /// The current wall-clock time in seconds.
    pub fn now() -> GcTime {
        GcTime(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0))
    }

    /// `self + seconds`, saturating.
    pub fn plus(self, seconds: i64) -> GcTime {
        GcTime(self.0.saturating_add(seconds))
    }

    /// `self - seconds`, saturating.
    pub fn minus(self, seconds: i64) -> GcTime {
        GcTime(self.0.saturating_sub(seconds))
    }
}

/// The largest TTL, 20 years in seconds (R0.3).
pub const MAX_TTL_SECONDS: i32 = 20 * 365 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_strictly_monotonic() {
        let mut prev = Timestamp::now();
        for _ in 0..10_000 {
            let next = Timestamp::now();
            assert!(next > prev);
            prev = next;
        }
    }

    #[test]
    fn missing_sorts_below_min() {
        assert!(Timestamp::MISSING < Timestamp::MIN);
        assert_eq!(GcTime(10).minus(i64::MAX), GcTime(10 - i64::MAX));
        assert_eq!(GcTime::MIN.minus(5), GcTime::MIN);
    }
}
