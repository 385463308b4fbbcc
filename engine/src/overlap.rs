//! The engine's side of the purge predicate (R2.15–R2.17, R2.22): the overlap check over the
//! sources a compaction does not read, and the repair history of `tombstone_gc = repair`.
//!
//! [`TableOverlap`] answers `max_purgeable(partition)` for one compaction. It looks at the table
//! *when asked* (per partition, lazily, R2.17), not at a snapshot from the job's start, so data
//! that arrives during the compaction — a write into the active memtable, a memtable flushed into
//! a new sstable, the outputs of a concurrent compaction — blocks purges as soon as it is visible.
//! Sources are consulted in the order that keeps them visible: the active memtable, then the
//! sealed memtables, then the sstables (a flush publishes the sstable before it retires the
//! memtable), then the compacted-but-undeleted inputs of finished compactions (R2.22; a
//! compaction adds its inputs there before it retires them).
//!
//! Shadowable row tombstones (R1.20) are held to a stricter rule than R2.17's "min live row
//! marker timestamp": a purge drops the data the tombstone covers in the same pass (R2.19), but a
//! newer live marker in another source may have cancelled the tombstone, making that data
//! visible; and marker-less cells elsewhere are not counted by marker timestamps at all. So any
//! other source that may hold the partition blocks the purge of a shadowable tombstone (both
//! cases were found by the model test: `model_regressions.rs`).
//!
//! Thread-safety: both types are `Send + Sync`; [`RepairTimes`] is read by compactions while the
//! embedding node records repairs.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;
use talus_compaction::{OverlapCheck, RepairHistory};
use talus_format::{DecoratedKey, GcTime, Timestamp, Token};

use crate::engine::Table;
use crate::memtable::Memtable;
use crate::sstable_set::Sstable;

/// The last repair time of token ranges, set by the embedding node (R2.14a `repair` mode).
#[derive(Debug, Default)]
pub struct RepairTimes {
    /// `(first token, last token, repair time)`, inclusive ranges; later entries may overlap.
    ranges: RwLock<Vec<(Token, Token, GcTime)>>,
}

impl RepairTimes {
    /// Records that `first..=last` was repaired at `time`.
    pub fn record(&self, first: Token, last: Token, time: GcTime) {
        self.ranges.write().push((first, last, time));
    }
}

impl RepairHistory for RepairTimes {
    /// The latest repair that covered `token`.
    fn last_repair(&self, token: Token) -> Option<GcTime> {
        self.ranges.read().iter().filter(|(first, last, _)| *first <= token && token <= *last).map(|(_, _, t)| *t).max()
    }

    /// The oldest of the latest repairs over the whole ring; `None` unless repairs cover it.
    fn last_full_repair(&self) -> Option<GcTime> {
        let ranges = self.ranges.read();
        // Each range's own time bounds the tokens it covers from below; a token's last repair
        // is at least the time of any range covering it, so the minimum over a cover of the
        // ring, taken greedily from the latest repairs, is a sound lower bound.
        let mut by_time: Vec<&(Token, Token, GcTime)> = ranges.iter().collect();
        by_time.sort_by_key(|r| std::cmp::Reverse(r.2));
        let mut covered: Vec<(Token, Token)> = Vec::new();
        for &(first, last, time) in by_time {
            covered.push((first, last));
            if covers_ring(&mut covered) {
                return Some(time);
            }
        }
        None
    }
}

/// Whether the inclusive ranges cover every token (sorts them).
fn covers_ring(ranges: &mut [(Token, Token)]) -> bool {
    ranges.sort_unstable();
    let mut next = Token::MIN;
    for &(first, last) in ranges.iter() {
        if first > next {
            return false;
        }
        if last >= next {
            if last == Token::MAX {
                return true;
            }
            next = Token(last.0 + 1);
        }
    }
    false
}

/// `max_purgeable` over everything of a table outside one compaction (R2.17).
pub(crate) struct TableOverlap {
    table: Arc<Table>,
    /// The compaction's inputs.
    inputs: BTreeSet<u64>,
    /// The max timestamp over the inputs (R2.17 step 3: a memtable whose min live timestamp is
    /// above it cannot hold anything the inputs' tombstones shadow).
    inputs_max_timestamp: Timestamp,
}

impl TableOverlap {
    pub(crate) fn new(table: Arc<Table>, inputs: BTreeSet<u64>, inputs_max_timestamp: Timestamp) -> TableOverlap {
        TableOverlap { table, inputs, inputs_max_timestamp }
    }

    fn memtable(&self, memtable: &Memtable, key: &DecoratedKey, shadowable: bool, ts: &mut Timestamp) {
        if shadowable {
            if memtable.partition(key).is_some() {
                *ts = Timestamp::MIN;
            }
            return;
        }
        let min = memtable.stats().min_live_timestamp;
        // R2.17 step 3: live data only (dead data coming back is harmless, Scylla #20423).
        if min < *ts && min <= self.inputs_max_timestamp && memtable.partition(key).is_some() {
            *ts = min;
        }
    }
}

/// R2.17 step 4: an sstable lowers the bound if its min live timestamp is lower and it may hold
/// the partition (key range, then bloom filter).
fn sstable_bound(sstable: &Sstable, key: &DecoratedKey, shadowable: bool, ts: &mut Timestamp) {
    let stats = sstable.reader.statistics();
    let may_hold = |s: &Sstable| s.reader.statistics().may_contain_key(key) && s.reader.filter_admits(key);
    if shadowable {
        if may_hold(sstable) {
            *ts = Timestamp::MIN;
        }
    } else if stats.min_live_timestamp < *ts && may_hold(sstable) {
        *ts = stats.min_live_timestamp;
    }
}

impl OverlapCheck for TableOverlap {
    fn max_purgeable(&self, key: &DecoratedKey, shadowable: bool) -> Timestamp {
        let mut ts = Timestamp::MAX;
        self.memtable(&self.table.memtable.load(), key, shadowable, &mut ts);
        for sealed in self.table.sealed.lock().iter() {
            self.memtable(&sealed.memtable, key, shadowable, &mut ts);
        }
        for sstable in self.table.sstables.load().iter().filter(|s| !self.inputs.contains(&s.generation)) {
            sstable_bound(sstable, key, shadowable, &mut ts);
        }
        // R2.22: inputs of finished compactions whose files are not deleted yet.
        for sstable in self.table.compacted_undeleted.lock().iter() {
            sstable_bound(sstable, key, shadowable, &mut ts);
        }
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_14a_repair_times_per_token_and_over_the_ring() {
        let r = RepairTimes::default();
        assert_eq!(r.last_repair(Token(5)), None);
        r.record(Token::MIN, Token(0), GcTime(100));
        assert_eq!(r.last_repair(Token(-5)), Some(GcTime(100)));
        assert_eq!(r.last_repair(Token(5)), None);
        assert_eq!(r.last_full_repair(), None, "half the ring was never repaired");
        r.record(Token(1), Token::MAX, GcTime(300));
        assert_eq!(r.last_full_repair(), Some(GcTime(100)));
        r.record(Token(-10), Token(-1), GcTime(500));
        assert_eq!(r.last_repair(Token(-5)), Some(GcTime(500)));
        assert_eq!(r.last_full_repair(), Some(GcTime(100)), "tokens below -10 were repaired at 100 only");
        r.record(Token::MIN, Token::MAX, GcTime(200));
        assert_eq!(r.last_full_repair(), Some(GcTime(200)));
    }
}
