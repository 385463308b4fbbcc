//! Single-sstable tombstone compaction (R2.28): when no regular job is due, an sstable whose
//! droppable tombstones are estimated at `tombstone_threshold` or more of its items is rewritten on
//! its own, so that the compactor (R2.7–R2.19) can purge them.
//!
//! Invariants:
//!
//! - nothing is worth it while tombstone GC is disabled for the table (R2.28, last bullet);
//! - an sstable younger than `tombstone_compaction_interval` is never chosen, so a rewrite that
//!   could not purge (the overlap check said no) is not retried in a loop;
//! - the ratio is a finite `f64` in `[0, ∞)` (0 without items) and compares without panicking;
//! - a job has exactly one input and writes at that sstable's level, in one output file.

use super::{job, CompactionJob, JobKind, PickContext, SstableInfo};

/// R2.28 `worth_dropping_tombstones`: tombstone GC is enabled, the sstable was written at least
/// `tombstone_compaction_interval` seconds ago (`now - interval >= created_at`), and either
/// `unchecked_tombstone_compaction` is set or the droppable ratio reaches `tombstone_threshold`.
pub fn worth_dropping_tombstones(sstable: &SstableInfo, ctx: &PickContext) -> bool {
    if ctx.gc_disabled {
        return false;
    }
    if ctx.now.minus(ctx.common.tombstone_compaction_interval) < sstable.created_at {
        return false;
    }
    ctx.common.unchecked_tombstone_compaction || droppable_ratio(sstable, ctx) >= ctx.common.tombstone_threshold
}

/// R2.28 `estimate_droppable_tombstone_ratio`: drop times (tombstone deletion times and expiry
/// times) strictly before `gc_before`, over the sstable's items; 0 for an sstable without items.
fn droppable_ratio(sstable: &SstableInfo, ctx: &PickContext) -> f64 {
    if sstable.item_count == 0 {
        return 0.0;
    }
    sstable.drop_times.count_before(ctx.gc_before) as f64 / sstable.item_count as f64
}

/// R2.28: among the `candidates` worth dropping tombstones from, the one with the oldest
/// `min_timestamp` (the most likely to pass the overlap checks; the smaller generation on a tie),
/// as a [`JobKind::Tombstone`] job at its own level. `None` when no candidate is worth it.
pub fn pick(candidates: &[SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    pick_among(candidates, ctx)
}

/// [`pick`] over borrowed sstables (a strategy's bucket, level or window).
pub(crate) fn pick_among<'a>(candidates: impl IntoIterator<Item = &'a SstableInfo>, ctx: &PickContext) -> Option<CompactionJob> {
    let oldest = candidates.into_iter().filter(|s| worth_dropping_tombstones(s, ctx)).min_by_key(|s| (s.min_timestamp, s.generation))?;
    Some(job(JobKind::Tombstone, [oldest], oldest.level, None))
}
