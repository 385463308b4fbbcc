//! The batchlog's clock: `written_at` of entries, the `now` of a replay, and the write timestamps
//! and deletion times of the batchlog's own writes all come from one [`BatchlogClock`], so tests
//! and simulations can move time by hand ([`ManualClock`]). Deletion times come from its gc-clock
//! reading ([`BatchlogClock::gc_millis`]), the same time unless a simulation says otherwise.
//!
//! Thread-safety: clocks are shared between writers and the replay; both implementations are
//! lock-free.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A wall clock in milliseconds since the Unix epoch (ScyllaDB's `db_clock`).
pub trait BatchlogClock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// The gc-clock reading in milliseconds: what the batchlog's tombstones are stamped with as
    /// their deletion time and what its scans expire cells at (ScyllaDB's `gc_clock::now()`, a
    /// clock of its own, A8 step 5g). By default [`BatchlogClock::now_millis`]. A simulation
    /// whose `now_millis` runs ahead of real time returns the real time here, so that the
    /// engine's tombstone GC and commitlog barrier (R2.15), which run on the real clock, see
    /// deletion times that are not in their future.
    fn gc_millis(&self) -> i64 {
        self.now_millis()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl BatchlogClock for SystemClock {
    fn now_millis(&self) -> i64 {
        // A clock before 1970 reads as the epoch; after year 292 million it saturates.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to (tests, simulations, the demo's compressed time).
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: i64) -> ManualClock {
        ManualClock { millis: AtomicI64::new(millis) }
    }

    /// Sets the time (it may go backwards: clock skew is what some tests simulate).
    pub fn set(&self, millis: i64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// Moves the time forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl BatchlogClock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}
