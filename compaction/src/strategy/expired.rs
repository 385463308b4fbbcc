//! Fully expired sstables (R2.20): inputs of a compaction that hold nothing but purgeable
//! tombstones and expired data, and shadow nothing that could still be live elsewhere, are dropped
//! without being read.
//!
//! This is the Cassandra variant that R2.20 recommends for a Rust engine: the memtables' minimum
//! timestamp takes part in `min_ts`, so an expired sstable whose tombstones may still cover an
//! unflushed write is kept.
//!
//! Invariants:
//!
//! - only an sstable with `max_deletion_time < gc_before` can be returned (so nothing while
//!   tombstone GC is disabled: `gc_before` is then `GcTime::MIN`);
//! - no fixed point is needed: the sources that can hold live data, and so bound `min_ts`, are
//!   exactly the candidates and overlapping others with `max_deletion_time >= gc_before`, plus
//!   the memtables. A candidate that could be expired but is kept holds no live data, so keeping
//!   it does not protect anything and it does not bound `min_ts` (as in Cassandra's
//!   `getFullyExpiredSSTables`, which filters the could-be-expired set against that minimum once);
//! - the result is ascending and duplicate-free, and independent of the input order.
//!
//! R2.20's third condition (no compacted-but-undeleted ancestor) needs ancestry, which
//! [`SstableInfo`] does not carry: the engine leaves such sstables out of `candidates`.

use talus_format::{GcTime, Timestamp};

use super::{key_ranges_overlap, SstableInfo};

/// R2.20: the generations of the `candidates` (the inputs of a compaction) that are fully
/// expired, ascending. `others` are the table's sstables outside the compaction, including
/// compacted-but-undeleted ones (R2.22); `memtable_min_timestamp` is the minimum timestamp in the
/// memtables (`Timestamp::MAX` when they are empty); `gc_before` is the range-wide one.
///
/// A candidate X is fully expired iff `X.max_deletion_time < gc_before` and either X has no
/// partitions or `X.max_timestamp < min_ts`, where `min_ts` is the minimum `min_timestamp` of
/// (a) the candidates with `max_deletion_time >= gc_before`, (b) the `others` overlapping X's key
/// range with `max_deletion_time >= gc_before`, and (c) the memtables.
pub fn fully_expired(candidates: &[SstableInfo], others: &[SstableInfo], memtable_min_timestamp: Timestamp, gc_before: GcTime) -> Vec<u64> {
    // R2.20 (a) and (c): the live-data sources that bound every candidate.
    let inputs_min = candidates
        .iter()
        .filter(|c| c.max_deletion_time >= gc_before)
        .map(|c| c.min_timestamp)
        .fold(memtable_min_timestamp, Timestamp::min);
    let mut expired: Vec<u64> = candidates
        .iter()
        .filter(|x| x.max_deletion_time < gc_before)
        .filter(|x| {
            // An sstable without partitions shadows nothing (R2.20, trivially).
            x.key_range.is_none() || {
                // R2.20 (b): overlapping non-compacting sstables that may hold live data.
                let min_ts = others
                    .iter()
                    .filter(|o| o.max_deletion_time >= gc_before && key_ranges_overlap(x, o))
                    .map(|o| o.min_timestamp)
                    .fold(inputs_min, Timestamp::min);
                x.max_timestamp < min_ts
            }
        })
        .map(|x| x.generation)
        .collect();
    expired.sort_unstable();
    expired.dedup();
    expired
}
