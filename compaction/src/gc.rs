//! The inputs of the purge predicate (R2.8, R2.14–R2.17).
//!
//! `purgeable(t) := t.deletion_time < gc_before(key) AND t.timestamp < max_purgeable(key)`, where
//! `gc_before` comes from the table's tombstone_gc mode and is clamped by the commitlog barrier
//! (R2.15), and `max_purgeable` is the overlap check over sources outside the compaction (R2.17;
//! strict comparison). Reads use no overlap check (R2.8, R5.4).
//!
//! The engine implements [`RepairHistory`] and [`OverlapCheck`]; this crate stays free of engine
//! types. A [`GcPolicy`] is immutable and `Send + Sync`.

use std::sync::Arc;

use talus_format::{DecoratedKey, GcTime, Timestamp, Token, TombstoneGcMode};

/// When each token range was last repaired (for `tombstone_gc = repair`).
pub trait RepairHistory: Send + Sync {
    /// The last repair time of the range holding `token`, if it was ever repaired.
    fn last_repair(&self, token: Token) -> Option<GcTime>;

    /// The minimum over every token of its last repair time; `None` unless the whole ring was
    /// repaired (R2.20: the range-wide gc_before of repair mode is known only then).
    fn last_full_repair(&self) -> Option<GcTime> {
        None
    }
}

/// The overlap check of R2.17: the smallest timestamp of live data outside the compaction that
/// may share the partition.
pub trait OverlapCheck: Send + Sync {
    /// Tombstones of `key` with `timestamp < max_purgeable` may be purged. `shadowable` selects the
    /// min live *row-marker* timestamps (R2.17 step 3–4). `Timestamp::MAX` when nothing overlaps.
    fn max_purgeable(&self, key: &DecoratedKey, shadowable: bool) -> Timestamp;
}

/// Everything the compactor needs to decide whether a tombstone may be purged.
#[derive(Clone)]
pub struct GcPolicy {
    /// The table's mode.
    pub mode: TombstoneGcMode,
    /// `gc_grace_seconds` (timeout mode).
    pub gc_grace_seconds: i64,
    /// The gc clock of this read or compaction; also the expiry clock.
    pub now: GcTime,
    /// Repair times, for repair mode (absent: never repaired).
    pub repair_history: Option<Arc<dyn RepairHistory>>,
    /// The commitlog barrier `min_gc_time(table)` (R2.15); `GcTime::MAX` when nothing pins.
    pub commitlog_min_gc_time: GcTime,
    /// The overlap check (R2.17); `None` for reads, which see every source.
    pub overlap: Option<Arc<dyn OverlapCheck>>,
}

impl std::fmt::Debug for GcPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcPolicy")
            .field("mode", &self.mode)
            .field("gc_grace_seconds", &self.gc_grace_seconds)
            .field("now", &self.now)
            .field("commitlog_min_gc_time", &self.commitlog_min_gc_time)
            .field("overlap", &self.overlap.is_some())
            .finish()
    }
}

impl GcPolicy {
    /// A policy for a read at `now` (R5.4): no overlap check, no commitlog clamp.
    pub fn for_read(mode: TombstoneGcMode, gc_grace_seconds: i64, now: GcTime) -> GcPolicy {
        GcPolicy { mode, gc_grace_seconds, now, repair_history: None, commitlog_min_gc_time: GcTime::MAX, overlap: None }
    }

    /// `gc_before` for the partition (R2.14a), clamped by the commitlog barrier (R2.15) in every
    /// mode but `disabled`.
    pub fn gc_before(&self, key: &DecoratedKey) -> GcTime {
        self.gc_before_with(|h| h.last_repair(key.token))
    }

    /// `gc_before` over the whole token range (R2.20, R2.28): the smallest any partition may get.
    pub fn gc_before_range_wide(&self) -> GcTime {
        self.gc_before_with(|h| h.last_full_repair())
    }

    fn gc_before_with(&self, last_repair: impl FnOnce(&dyn RepairHistory) -> Option<GcTime>) -> GcTime {
        let by_mode = match self.mode {
            TombstoneGcMode::Timeout => self.now.minus(self.gc_grace_seconds),
            TombstoneGcMode::Repair { propagation_delay_seconds } => match self.repair_history.as_deref().and_then(last_repair) {
                Some(repaired) => repaired.minus(propagation_delay_seconds),
                None => GcTime::MIN,
            },
            TombstoneGcMode::Immediate => self.now,
            TombstoneGcMode::Disabled => return GcTime::MIN,
        };
        by_mode.min(self.commitlog_min_gc_time)
    }

    /// `max_purgeable(key)` (R2.17): `Timestamp::MAX` without an overlap check; nothing is
    /// purgeable when GC is disabled (step 1).
    pub fn max_purgeable(&self, key: &DecoratedKey, shadowable: bool) -> Timestamp {
        if self.mode == TombstoneGcMode::Disabled {
            return Timestamp::MIN;
        }
        self.overlap.as_ref().map_or(Timestamp::MAX, |o| o.max_purgeable(key, shadowable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use talus_format::{PartitionKey, Value};

    struct Repaired(GcTime);
    impl RepairHistory for Repaired {
        fn last_repair(&self, _token: Token) -> Option<GcTime> {
            Some(self.0)
        }
    }

    fn key() -> DecoratedKey {
        PartitionKey::from_values(&[Value::Int(1)]).unwrap().decorate()
    }

    #[test]
    fn r2_14a_gc_before_per_mode_and_r2_15_clamp() {
        let mut p = GcPolicy::for_read(TombstoneGcMode::Timeout, 100, GcTime(1000));
        assert_eq!(p.gc_before(&key()), GcTime(900));
        p.commitlog_min_gc_time = GcTime(500);
        assert_eq!(p.gc_before(&key()), GcTime(500));
        p.mode = TombstoneGcMode::Immediate;
        assert_eq!(p.gc_before(&key()), GcTime(500));
        p.commitlog_min_gc_time = GcTime::MAX;
        assert_eq!(p.gc_before(&key()), GcTime(1000));
        p.mode = TombstoneGcMode::Disabled;
        assert_eq!(p.gc_before(&key()), GcTime::MIN);
        assert_eq!(p.max_purgeable(&key(), false), Timestamp::MIN);
        p.mode = TombstoneGcMode::Repair { propagation_delay_seconds: 3600 };
        assert_eq!(p.gc_before(&key()), GcTime::MIN, "never repaired: nothing purgeable");
        p.repair_history = Some(Arc::new(Repaired(GcTime(10_000))));
        assert_eq!(p.gc_before(&key()), GcTime(6400));
    }
}
