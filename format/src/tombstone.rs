//! Tombstones: `(timestamp, deletion_time)` ordered field-wise; the larger wins (R0.4).
//!
//! Data with write timestamp `ts` is covered by a tombstone `t` iff `ts <= t.timestamp` (R1.26).

use crate::time::{GcTime, Timestamp};

/// A deletion marker. Empty iff `timestamp == Timestamp::MISSING` (R0.4).
///
/// The derived order compares `timestamp` first, then `deletion_time`, exactly as ScyllaDB's
/// defaulted `<=>`; the empty tombstone sorts below every real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tombstone {
    /// Write timestamp of the deletion.
    pub timestamp: Timestamp,
    /// Gc-clock time of the deletion; drives purge eligibility (R2.8).
    pub deletion_time: GcTime,
}

impl Default for Tombstone {
    fn default() -> Self {
        Tombstone::NONE
    }
}

impl Tombstone {
    /// The empty tombstone.
    pub const NONE: Tombstone = Tombstone { timestamp: Timestamp::MISSING, deletion_time: GcTime::MIN };

    /// A tombstone written at `timestamp` with deletion time `deletion_time`.
    pub fn new(timestamp: Timestamp, deletion_time: GcTime) -> Tombstone {
        Tombstone { timestamp, deletion_time }
    }

    /// Whether this is the empty tombstone.
    pub fn is_none(&self) -> bool {
        self.timestamp == Timestamp::MISSING
    }

    /// Whether this is a real tombstone.
    pub fn is_some(&self) -> bool {
        !self.is_none()
    }

    /// Keeps the greater of `self` and `other` (R0.4 `apply`).
    pub fn apply(&mut self, other: Tombstone) {
        if other > *self {
            *self = other;
        }
    }

    /// Whether data written at `ts` is dead under this tombstone (R1.26: equal timestamps lose).
    pub fn covers(&self, ts: Timestamp) -> bool {
        ts <= self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_timestamp_then_deletion_time() {
        let a = Tombstone::new(Timestamp(5), GcTime(100));
        let b = Tombstone::new(Timestamp(5), GcTime(101));
        let c = Tombstone::new(Timestamp(6), GcTime(0));
        assert!(Tombstone::NONE < a && a < b && b < c);
        let mut m = a;
        m.apply(c);
        m.apply(b);
        assert_eq!(m, c);
        assert!(a.covers(Timestamp(5)) && !a.covers(Timestamp(6)));
        assert!(!Tombstone::NONE.covers(Timestamp::MIN));
    }
}
