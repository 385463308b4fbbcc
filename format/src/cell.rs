//! Atomic cells and row markers, and their reconciliation (R1.12–R1.14, R1.18, R1.29–R1.30).
//!
//! Reconciliation is a pure per-item max: commutative, associative, idempotent, and never consults
//! a clock (R1.33). Expiry is applied only by readers and compaction ([`Cell::compact`]).

use std::cmp::Ordering;

use bytes::Bytes;

use crate::row::RowTombstone;
use crate::time::{GcTime, Timestamp};
use crate::tombstone::Tombstone;

/// Identifier of a column inside its table's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnId(pub u32);

/// An atomic cell (R1.12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cell {
    /// A live value without TTL.
    Live {
        /// Write timestamp.
        timestamp: Timestamp,
        /// Serialized value.
        value: Bytes,
    },
    /// A live value with a TTL: it expires at `expiry` (R1.13).
    Expiring {
        /// Write timestamp.
        timestamp: Timestamp,
        /// Serialized value.
        value: Bytes,
        /// Gc-clock time at which the value expires.
        expiry: GcTime,
        /// The TTL in seconds; `expiry - ttl` is the write time.
        ttl: i32,
    },
    /// A cell tombstone.
    Dead {
        /// Write timestamp of the deletion.
        timestamp: Timestamp,
        /// Gc-clock time of the deletion.
        deletion_time: GcTime,
    },
}

/// What a purge decision needs: may a tombstone `(timestamp, deletion_time)` be dropped now?
///
/// Implementations combine `deletion_time < gc_before` with the overlap checks (R2.8); the memtable
/// uses [`NeverPurge`].
pub trait PurgeRule {
    /// Whether tombstone `t` may be dropped.
    fn can_purge(&self, t: Tombstone) -> bool;

    /// Whether a row tombstone may be dropped; shadowable ones may consult different overlap
    /// data (R2.17), so implementations can tell them apart. Default: [`PurgeRule::can_purge`] of
    /// [`RowTombstone::for_purge`].
    fn can_purge_row(&self, t: &RowTombstone) -> bool {
        self.can_purge(t.for_purge())
    }
}

/// A [`PurgeRule`] that never purges (`never_gc`, used by the memtable's eager shadowing, R1.33).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverPurge;

impl PurgeRule for NeverPurge {
    fn can_purge(&self, _t: Tombstone) -> bool {
        false
    }
}

impl Cell {
    /// The write timestamp.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Cell::Live { timestamp, .. } | Cell::Expiring { timestamp, .. } | Cell::Dead { timestamp, .. } => *timestamp,
        }
    }

    /// The value, for live and expiring cells.
    pub fn value(&self) -> Option<&Bytes> {
        match self {
            Cell::Live { value, .. } | Cell::Expiring { value, .. } => Some(value),
            Cell::Dead { .. } => None,
        }
    }

    /// [`Cell::value`], by value.
    pub fn into_value(self) -> Option<Bytes> {
        match self {
            Cell::Live { value, .. } | Cell::Expiring { value, .. } => Some(value),
            Cell::Dead { .. } => None,
        }
    }

    /// A copy with the value (if any) replaced by `value(old)`: the same bytes held elsewhere
    /// (e.g. copied into a memtable's arena).
    pub fn map_value(&self, value: impl FnOnce(&Bytes) -> Bytes) -> Cell {
        match self {
            Cell::Live { timestamp, value: v } => Cell::Live { timestamp: *timestamp, value: value(v) },
            Cell::Expiring { timestamp, value: v, expiry, ttl } => {
                Cell::Expiring { timestamp: *timestamp, value: value(v), expiry: *expiry, ttl: *ttl }
            }
            Cell::Dead { .. } => self.clone(),
        }
    }

    /// Whether the cell holds a value at gc time `now` (R1.13: `expiry <= now` is expired).
    pub fn is_live_at(&self, now: GcTime) -> bool {
        match self {
            Cell::Live { .. } => true,
            Cell::Expiring { expiry, .. } => *expiry > now,
            Cell::Dead { .. } => false,
        }
    }

    /// Whether the cell is live ignoring expiry.
    pub fn is_live(&self) -> bool {
        !matches!(self, Cell::Dead { .. })
    }

    /// The deletion time that drives GC (R1.12): `expiry - ttl` for expiring cells, the stored
    /// deletion time for dead ones, none for plain live cells.
    pub fn deletion_time(&self) -> Option<GcTime> {
        match self {
            Cell::Live { .. } => None,
            Cell::Expiring { expiry, ttl, .. } => Some(expiry.minus(i64::from(*ttl))),
            Cell::Dead { deletion_time, .. } => Some(*deletion_time),
        }
    }

    /// Reconciliation order (R1.29): `Greater` means `self` wins over `other`.
    pub fn compare_for_merge(&self, other: &Cell) -> Ordering {
        self.timestamp().cmp(&other.timestamp()).then_with(|| match (self, other) {
            // R1.29.2: at equal timestamps a dead cell wins over a live one.
            (Cell::Dead { .. }, Cell::Live { .. } | Cell::Expiring { .. }) => Ordering::Greater,
            (Cell::Live { .. } | Cell::Expiring { .. }, Cell::Dead { .. }) => Ordering::Less,
            // R1.29.4: both dead, the larger deletion time wins, compared as u64 like ScyllaDB.
            (Cell::Dead { deletion_time: a, .. }, Cell::Dead { deletion_time: b, .. }) => (a.0 as u64).cmp(&(b.0 as u64)),
            // R1.29.3a: expiring beats non-expiring (CASSANDRA-14592).
            (Cell::Expiring { .. }, Cell::Live { .. }) => Ordering::Greater,
            (Cell::Live { .. }, Cell::Expiring { .. }) => Ordering::Less,
            // R1.29.3b: later expiry wins, then the smaller ttl, then the value.
            (Cell::Expiring { expiry: ea, ttl: ta, value: va, .. }, Cell::Expiring { expiry: eb, ttl: tb, value: vb, .. }) => {
                ea.cmp(eb).then_with(|| tb.cmp(ta)).then_with(|| va.cmp(vb))
            }
            // R1.29.3c: the larger value (unsigned bytes) wins.
            (Cell::Live { value: va, .. }, Cell::Live { value: vb, .. }) => va.cmp(vb),
        })
    }

    /// Replaces `self` by `other` if `other` wins reconciliation (R1.29).
    pub fn apply(&mut self, other: &Cell) {
        if other.compare_for_merge(self) == Ordering::Greater {
            *self = other.clone();
        }
    }

    /// Compaction of one cell under tombstone `covering` (R2.12); `now = None` disables expiry.
    /// Returns false when the cell is to be erased.
    pub fn compact(&mut self, covering: Tombstone, now: Option<GcTime>, purge: &dyn PurgeRule) -> bool {
        // R2.12a: covered data (and covered cell tombstones) are always erased.
        if covering.covers(self.timestamp()) {
            return false;
        }
        match self {
            Cell::Live { .. } => true,
            Cell::Expiring { timestamp, expiry, ttl, .. } => {
                let Some(now) = now else { return true };
                if *expiry > now {
                    return true;
                }
                // R2.12b / R1.13: an expired cell is a tombstone written at its write time.
                let t = Tombstone::new(*timestamp, expiry.minus(i64::from(*ttl)));
                if purge.can_purge(t) {
                    return false;
                }
                *self = Cell::Dead { timestamp: t.timestamp, deletion_time: t.deletion_time };
                true
            }
            // R2.12c
            Cell::Dead { timestamp, deletion_time } => !purge.can_purge(Tombstone::new(*timestamp, *deletion_time)),
        }
    }
}

/// The row marker, CQL's "liveness info" (R1.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowMarker {
    /// No marker (`UPDATE` writes none).
    #[default]
    Missing,
    /// A live marker written by `INSERT`.
    Live {
        /// Write timestamp.
        timestamp: Timestamp,
    },
    /// A live marker with a TTL.
    Expiring {
        /// Write timestamp.
        timestamp: Timestamp,
        /// TTL in seconds.
        ttl: i32,
        /// Gc-clock expiry time.
        expiry: GcTime,
    },
    /// A dead marker (an expired one, rewritten by compaction).
    Dead {
        /// Write timestamp.
        timestamp: Timestamp,
        /// Gc-clock deletion time.
        deletion_time: GcTime,
    },
}

impl RowMarker {
    /// The write timestamp; `Timestamp::MISSING` for a missing marker.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            RowMarker::Missing => Timestamp::MISSING,
            RowMarker::Live { timestamp } | RowMarker::Expiring { timestamp, .. } | RowMarker::Dead { timestamp, .. } => *timestamp,
        }
    }

    /// Live ignoring expiry (ScyllaDB's `row_marker::is_live()`), as used by shadowable tombstones.
    pub fn is_live(&self) -> bool {
        matches!(self, RowMarker::Live { .. } | RowMarker::Expiring { .. })
    }

    /// Live at gc time `now`.
    pub fn is_live_at(&self, now: GcTime) -> bool {
        match self {
            RowMarker::Live { .. } => true,
            RowMarker::Expiring { expiry, .. } => *expiry > now,
            _ => false,
        }
    }

    /// Whether the marker is missing.
    pub fn is_missing(&self) -> bool {
        matches!(self, RowMarker::Missing)
    }

    fn as_cell(&self) -> Option<Cell> {
        let empty = Bytes::new();
        match *self {
            RowMarker::Missing => None,
            RowMarker::Live { timestamp } => Some(Cell::Live { timestamp, value: empty }),
            RowMarker::Expiring { timestamp, ttl, expiry } => Some(Cell::Expiring { timestamp, value: empty, expiry, ttl }),
            RowMarker::Dead { timestamp, deletion_time } => Some(Cell::Dead { timestamp, deletion_time }),
        }
    }

    /// Reconciles two markers (R1.30: the cell rules without values; missing loses to anything).
    pub fn apply(&mut self, other: &RowMarker) {
        let wins = match (self.as_cell(), other.as_cell()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(mine), Some(theirs)) => theirs.compare_for_merge(&mine) == Ordering::Greater,
        };
        if wins {
            *self = *other;
        }
    }

    /// Compaction of the marker under the row's effective tombstone (R2.11 step 3). Returns
    /// whether a marker remains.
    pub fn compact(&mut self, covering: Tombstone, now: Option<GcTime>, purge: &dyn PurgeRule) -> bool {
        let Some(mut cell) = self.as_cell() else { return false };
        if !cell.compact(covering, now, purge) {
            *self = RowMarker::Missing;
            return false;
        }
        if let Cell::Dead { timestamp, deletion_time } = cell {
            *self = RowMarker::Dead { timestamp, deletion_time };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ts: i64, v: &'static [u8]) -> Cell {
        Cell::Live { timestamp: Timestamp(ts), value: Bytes::from_static(v) }
    }

    #[test]
    fn r1_29_reconciliation_steps() {
        let dead = Cell::Dead { timestamp: Timestamp(5), deletion_time: GcTime(1) };
        let exp = |e, t| Cell::Expiring { timestamp: Timestamp(5), value: Bytes::from_static(b"a"), expiry: GcTime(e), ttl: t };
        // 1. higher timestamp
        assert_eq!(live(6, b"a").compare_for_merge(&dead), Ordering::Greater);
        // 2. dead wins at equal timestamp
        assert_eq!(dead.compare_for_merge(&live(5, b"z")), Ordering::Greater);
        // 3a. expiring beats non-expiring
        assert_eq!(exp(10, 5).compare_for_merge(&live(5, b"z")), Ordering::Greater);
        // 3b. later expiry, then smaller ttl
        assert_eq!(exp(11, 5).compare_for_merge(&exp(10, 1)), Ordering::Greater);
        assert_eq!(exp(10, 1).compare_for_merge(&exp(10, 5)), Ordering::Greater);
        // 3c. larger value
        assert_eq!(live(5, b"b").compare_for_merge(&live(5, b"a")), Ordering::Greater);
        // 4. both dead: larger deletion time
        let later = Cell::Dead { timestamp: Timestamp(5), deletion_time: GcTime(2) };
        assert_eq!(later.compare_for_merge(&dead), Ordering::Greater);
    }

    #[test]
    fn r2_12_expired_cell_becomes_tombstone_at_write_time() {
        let mut c = Cell::Expiring { timestamp: Timestamp(1), value: Bytes::new(), expiry: GcTime(100), ttl: 30 };
        assert!(c.compact(Tombstone::NONE, Some(GcTime(100)), &NeverPurge));
        assert_eq!(c, Cell::Dead { timestamp: Timestamp(1), deletion_time: GcTime(70) });
        // covered (ts <= tombstone ts) is erased regardless of purge rules
        assert!(!c.compact(Tombstone::new(Timestamp(1), GcTime(0)), None, &NeverPurge));
    }

    #[test]
    fn marker_merge_and_missing() {
        let mut m = RowMarker::Missing;
        m.apply(&RowMarker::Live { timestamp: Timestamp(3) });
        m.apply(&RowMarker::Missing);
        assert_eq!(m, RowMarker::Live { timestamp: Timestamp(3) });
        m.apply(&RowMarker::Dead { timestamp: Timestamp(3), deletion_time: GcTime(0) });
        assert!(!m.is_live());
    }
}
