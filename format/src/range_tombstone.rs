//! Range tombstones and their canonical in-memory form (R1.21–R1.22, R1.35).
//!
//! A [`RangeTombstone`] covers positions `start <= p < end`. A [`RangeTombstoneList`] holds many of
//! them as a step function: a sorted list of [`RangeTombstoneChange`]s, each saying "from this
//! position on, the active tombstone is t", the last one closing (empty). Inserting keeps, at every
//! position, the max over all tombstones inserted (R1.22), and coalesces equal neighbours, so the
//! list is canonical and is directly the fragment stream form of R1.35.
//!
//! Thread-safety: plain data; the memtable wraps it in an `Arc` and copies on write.

use crate::position::Position;
use crate::tombstone::Tombstone;

/// A tombstone over the positions `start <= p < end` of one partition (R1.21).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeTombstone {
    /// First covered position (`before_key` or `after_key` of a prefix).
    pub start: Position,
    /// First position no longer covered.
    pub end: Position,
    /// The deletion.
    pub tombstone: Tombstone,
}

/// "From `position` on, the active range tombstone is `tombstone`" (R1.35); empty closes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeTombstoneChange {
    /// Where the change takes effect.
    pub position: Position,
    /// The tombstone active from here on (`Tombstone::NONE` = none).
    pub tombstone: Tombstone,
}

/// Non-overlapping, canonical set of range tombstones of one partition (R1.22).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RangeTombstoneList {
    /// Strictly increasing positions; no two neighbours with equal tombstones; last one empty.
    changes: Vec<RangeTombstoneChange>,
}

impl RangeTombstoneList {
    /// An empty list.
    pub const fn new() -> RangeTombstoneList {
        RangeTombstoneList { changes: Vec::new() }
    }

    /// Whether no range tombstone is held.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes in position order (the fragment-stream form).
    pub fn changes(&self) -> &[RangeTombstoneChange] {
        &self.changes
    }

    /// The active tombstone at `position` (the max of every inserted tombstone covering it).
    pub fn tombstone_at(&self, position: &Position) -> Tombstone {
        let idx = self.changes.partition_point(|c| c.position <= *position);
        idx.checked_sub(1).map_or(Tombstone::NONE, |i| self.changes[i].tombstone)
    }

    /// Index of the first change at or after `position`.
    pub fn lower_bound(&self, position: &Position) -> usize {
        self.changes.partition_point(|c| c.position < *position)
    }

    /// Inserts `rt`: every covered position gets `max(current, rt.tombstone)` (R1.22). Empty
    /// ranges and empty tombstones are ignored.
    pub fn insert(&mut self, rt: &RangeTombstone) {
        if rt.start >= rt.end || rt.tombstone.is_none() {
            return;
        }
        let t = rt.tombstone;
        let at_end = self.tombstone_at(&rt.end);
        let lo = self.lower_bound(&rt.start);
        let hi = self.lower_bound(&rt.end);
        let mut replacement = Vec::with_capacity(hi - lo + 2);
        // The value at `start` is max(value just before start or the change at start, t).
        let at_start = self.tombstone_at(&rt.start);
        replacement.push(RangeTombstoneChange { position: rt.start.clone(), tombstone: at_start.max(t) });
        for change in &self.changes[lo..hi] {
            if change.position != rt.start {
                replacement.push(RangeTombstoneChange { position: change.position.clone(), tombstone: change.tombstone.max(t) });
            }
        }
        replacement.push(RangeTombstoneChange { position: rt.end.clone(), tombstone: at_end });
        // A change already at `end` is replaced by the (equal) one we pushed.
        let hi_end = if self.changes.get(hi).is_some_and(|c| c.position == rt.end) { hi + 1 } else { hi };
        self.changes.splice(lo..hi_end, replacement);
        self.coalesce();
    }

    /// Removes changes that leave the active tombstone unchanged, keeping the list canonical.
    fn coalesce(&mut self) {
        let mut prev = Tombstone::NONE;
        self.changes.retain(|c| {
            let keep = c.tombstone != prev;
            prev = c.tombstone;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::ClusteringPrefix;
    use crate::time::{GcTime, Timestamp};
    use bytes::Bytes;

    fn pos(b: u8, weight: i8) -> Position {
        let p = ClusteringPrefix::from_encoded(Bytes::copy_from_slice(&[b]), 1);
        if weight < 0 {
            Position::before_key(p)
        } else {
            Position::after_key(p)
        }
    }
    fn t(ts: i64) -> Tombstone {
        Tombstone::new(Timestamp(ts), GcTime(0))
    }
    fn rt(a: u8, b: u8, ts: i64) -> RangeTombstone {
        RangeTombstone { start: pos(a, -1), end: pos(b, -1), tombstone: t(ts) }
    }
    fn steps(list: &RangeTombstoneList) -> Vec<(u8, i64)> {
        list.changes()
            .iter()
            .map(|c| (c.position.prefix().encoded()[0], if c.tombstone.is_none() { 0 } else { c.tombstone.timestamp.0 }))
            .collect()
    }

    #[test]
    fn r1_22_newer_overwrites_older_fills_gaps_equal_coalesces() {
        let mut l = RangeTombstoneList::new();
        l.insert(&rt(10, 20, 5));
        l.insert(&rt(15, 30, 7)); // newer overwrites [15,20)
        assert_eq!(steps(&l), vec![(10, 5), (15, 7), (30, 0)]);
        l.insert(&rt(5, 40, 6)); // fills gaps only
        assert_eq!(steps(&l), vec![(5, 6), (15, 7), (30, 6), (40, 0)]);
        l.insert(&rt(40, 50, 6)); // adjacent and equal: coalesces
        assert_eq!(steps(&l), vec![(5, 6), (15, 7), (30, 6), (50, 0)]);
        assert_eq!(l.tombstone_at(&pos(16, -1)), t(7));
        assert_eq!(l.tombstone_at(&pos(50, -1)), Tombstone::NONE);
    }
}
