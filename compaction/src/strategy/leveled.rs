//! Leveled compaction (LCS, R2.25): level n >= 1 aims at `fanout^n * sstable_size_in_mb` MiB of
//! non-overlapping sstables; the highest level over its target pushes one sstable into the next
//! level, and when every level is within target, level 0 (the flushes, which overlap) goes into L1.
//!
//! Invariants:
//!
//! - levels are 0..=8 (`MAX_LEVELS` = 9); the last level has no next one, and sstables claiming a
//!   level above it are only ever tombstone-compacted;
//! - scores are `level file bytes / target bytes` in `f64`; a NaN score (a zero target with an
//!   empty level) is never over target;
//! - a level job's inputs are one sstable of level n plus every sstable of level n+1 whose key
//!   range overlaps it, written to level n+1 in files cut at `sstable_size_in_mb` MiB; an L0 → L1
//!   job takes at most 32 L0 sstables plus the L1 sstables overlapping their combined key span;
//! - the choice is stateless and deterministic.
//!
//! Interpretation choices (R2.25, following `leveled_manifest.hh`, which the rule cites):
//!
//! - ScyllaDB picks the sstable of level n round-robin after the last compacted key, which needs
//!   state. Without it ScyllaDB starts at the sstable with the smallest first key; so do we, always
//!   (an sstable without partitions sorts first; the smaller generation breaks ties);
//! - "L0 is compacted into L1" when its total file size is at least one output file
//!   (`sstable_size_in_mb`, ScyllaDB's `worth_promoting_L0_candidates`); the 32 L0 sstables taken
//!   are the oldest by max timestamp. Below that size L0 is size-tiered in place (output level 0),
//!   so a trickle of small flushes does not rewrite L1 each time;
//! - size-tiering inside L0 (L0 over 32 sstables, or not worth promoting) uses the STCS bucketing
//!   with ScyllaDB's default STCS options and the table's thresholds, and writes one L0 file;
//! - the tombstone fallback (R2.28) scans the levels from the highest down and takes, in the first
//!   level with a worthy sstable, the one with the oldest min timestamp (ScyllaDB takes the highest
//!   droppable ratio there; the oldest min timestamp is R2.28's choice for STCS, and the likelier to
//!   pass the overlap checks).

use std::collections::BTreeMap;

use talus_format::schema::CompactionStrategy;
use talus_format::DecoratedKey;

use super::{job, key_ranges_overlap, overlaps_range, size_tiered, tombstone, CompactionJob, JobKind, PickContext, SstableInfo};

/// R2.25: levels 0..MAX_LEVELS.
const MAX_LEVELS: u32 = 9;
/// R2.25: a level is over target when its score exceeds this.
const TARGET_SCORE: f64 = 1.001;
/// R2.25: at most this many L0 sstables per compaction; more than this many in L0 while a higher
/// level is over target size-tiers L0 first.
const MAX_COMPACTING_L0: usize = 32;

/// Picks the next LCS job (R2.25), else a tombstone compaction (R2.28).
pub fn pick(strategy: &CompactionStrategy, sstables: &[SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    let CompactionStrategy::Leveled { sstable_size_in_mb, fanout } = *strategy else {
        return pick(&CompactionStrategy::leveled(), sstables, ctx);
    };
    let sstable_bytes = sstable_size_in_mb.saturating_mul(1 << 20);
    let mut levels: BTreeMap<u32, Vec<&SstableInfo>> = BTreeMap::new();
    for sst in sstables {
        levels.entry(sst.level).or_default().push(sst);
    }
    let level = |n: u32| levels.get(&n).map_or(&[][..], Vec::as_slice);
    let l0 = level(0);

    // R2.25: scan from the highest level that has a next one down to L1.
    for n in (1..MAX_LEVELS - 1).rev() {
        let target = (fanout as f64).powi(n as i32) * sstable_bytes as f64;
        let score = total_file_bytes(level(n)) as f64 / target;
        if score.is_nan() || score <= TARGET_SCORE {
            continue;
        }
        // R2.25: before compacting a level over target, size-tier L0 if it is far behind.
        if l0.len() > MAX_COMPACTING_L0 {
            if let Some(job) = l0_size_tiered(l0, ctx) {
                return Some(job);
            }
        }
        // R2.25: one sstable of level n (smallest first key) and its overlaps in level n+1.
        let Some(&chosen) = level(n).iter().min_by(|a, b| (&a.key_range, a.generation).cmp(&(&b.key_range, b.generation))) else {
            continue;
        };
        let next = level(n + 1).iter().copied().filter(|s| key_ranges_overlap(chosen, s));
        return Some(job(JobKind::Regular, std::iter::once(chosen).chain(next), n + 1, Some(sstable_bytes)));
    }

    // R2.25: every level within target: L0 into L1 once it holds an output file's worth.
    if !l0.is_empty() {
        if total_file_bytes(l0) >= sstable_bytes {
            let mut oldest = l0.to_vec();
            oldest.sort_by_key(|s| (s.max_timestamp, s.generation));
            oldest.truncate(MAX_COMPACTING_L0);
            let span = span(&oldest);
            let overlapping = level(1).iter().copied().filter(|s| span.is_some_and(|(first, last)| overlaps_range(s, first, last)));
            let inputs: Vec<&SstableInfo> = oldest.iter().copied().chain(overlapping).collect();
            return Some(job(JobKind::Regular, inputs, 1, Some(sstable_bytes)));
        }
        if let Some(job) = l0_size_tiered(l0, ctx) {
            return Some(job);
        }
    }

    // R2.28: tombstone compaction, highest level first.
    levels.values().rev().find_map(|ssts| tombstone::pick_among(ssts.iter().copied(), ctx))
}

/// R2.25: STCS inside L0 (default STCS options, the table's thresholds); output stays in L0.
fn l0_size_tiered(l0: &[&SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    let buckets = size_tiered::buckets(&CompactionStrategy::size_tiered(), l0, ctx.now);
    let bucket = size_tiered::most_interesting_bucket(&buckets, ctx.common.min_threshold, ctx.common.max_threshold)?;
    Some(job(JobKind::Regular, bucket, 0, None))
}

/// The total file size of `sstables` (R2.25 scores are by on-disk size), saturating.
fn total_file_bytes(sstables: &[&SstableInfo]) -> u64 {
    sstables.iter().fold(0u64, |sum, s| sum.saturating_add(s.file_size))
}

/// The smallest key range covering every sstable of `sstables` that has partitions (`None` when
/// none has): L0 → L1 must take every L1 sstable the merged output may overlap, not only those
/// overlapping one input.
fn span<'a>(sstables: &[&'a SstableInfo]) -> Option<(&'a DecoratedKey, &'a DecoratedKey)> {
    let first = sstables.iter().filter_map(|s| s.key_range.as_ref().map(|r| &r.0)).min()?;
    let last = sstables.iter().filter_map(|s| s.key_range.as_ref().map(|r| &r.1)).max()?;
    Some((first, last))
}
