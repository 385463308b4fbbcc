//! Size-tiered compaction (STCS, R2.24): sstables of similar uncompressed size are grouped into
//! buckets, and the fullest bucket with at least `min_threshold` members is compacted, at most
//! `max_threshold` of its smallest sstables at a time. The bucketing and the bucket choice are also
//! used by LCS inside level 0 (R2.25) and by TWCS in its newest window (R2.26).
//!
//! Invariants:
//!
//! - buckets partition the input; inside a bucket sstables are in ascending `(data_size,
//!   generation)` order, and buckets are in ascending size order (the first member of each bucket
//!   is larger than or equal to every member of the previous ones);
//! - a regular job has at least 2 and at most `max(max_threshold, 2)` inputs (`min_threshold` below
//!   2 acts as 2, so a bucket of one sstable is never "compacted" into itself);
//! - float arithmetic never panics: averages are `u128` sums divided once, and comparisons with
//!   NaN (from absurd options) are simply false.
//!
//! Interpretation choices (R2.24, following `size_tiered_compaction_strategy.cc`, which the rule
//! cites):
//!
//! - the `min_sstable_age` guard is table-wide: if **any** sstable below `min_sstable_size` was
//!   written within the last `min_sstable_age` seconds (`created_at > now - min_sstable_age`), the
//!   "both tiny" join rule is off for this round and tiny sstables bucket by size ratio only;
//! - an sstable that joins by the "both tiny" rule is exempt from the drift guard ("the smallest
//!   member stays > new_avg*low"): tiny sstables all go into one bucket, which is the point of
//!   `min_sstable_size`. The drift guard applies to joins by the size-ratio rule;
//! - `compaction_enforce_min_threshold` is not an option of this engine: always false.

use talus_format::schema::CompactionStrategy;
use talus_format::GcTime;

use super::{job, tombstone, CompactionJob, JobKind, PickContext, SstableInfo};

/// Picks the next STCS job (R2.24): the most interesting bucket with at least `min_threshold`
/// sstables, else one with at least 2, else a tombstone compaction (R2.28) looking at the buckets
/// from the largest tier down. Output level 0, one output file.
pub fn pick(strategy: &CompactionStrategy, sstables: &[SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    let all: Vec<&SstableInfo> = sstables.iter().collect();
    let buckets = buckets(strategy, &all, ctx.now);
    // R2.24: min_threshold first; then, as compaction_enforce_min_threshold is false, any pair.
    let chosen = most_interesting_bucket(&buckets, ctx.common.min_threshold, ctx.common.max_threshold)
        .or_else(|| most_interesting_bucket(&buckets, 2, ctx.common.max_threshold));
    if let Some(bucket) = chosen {
        return Some(job(JobKind::Regular, bucket, 0, None));
    }
    // R2.24/R2.28: tombstone compaction, largest tier first, oldest min_timestamp within the tier.
    buckets.iter().rev().find_map(|bucket| tombstone::pick_among(bucket.iter().copied(), ctx))
}

/// The STCS options of `strategy`, or ScyllaDB's defaults (R2.24) for another strategy.
struct Options {
    bucket_low: f64,
    bucket_high: f64,
    min_sstable_size: u64,
    min_sstable_age: i64,
}

impl Options {
    fn of(strategy: &CompactionStrategy) -> Options {
        match *strategy {
            CompactionStrategy::SizeTiered { bucket_low, bucket_high, min_sstable_size, min_sstable_age } => {
                Options { bucket_low, bucket_high, min_sstable_size, min_sstable_age }
            }
            _ => Options::of(&CompactionStrategy::size_tiered()),
        }
    }
}

/// One bucket being built: members in ascending size order and their exact total size.
struct Bucket<'a> {
    members: Vec<&'a SstableInfo>,
    total: u128,
}

impl Bucket<'_> {
    fn average(&self) -> f64 {
        self.total as f64 / self.members.len().max(1) as f64
    }
}

/// Groups `sstables` into buckets of similar `data_size` (R2.24 steps 1–3), with the options of
/// `strategy` (ScyllaDB's defaults when it is not size-tiered). `now` is the gc clock, for the
/// `min_sstable_age` guard. Buckets come smallest tier first.
pub(crate) fn buckets<'a>(strategy: &CompactionStrategy, sstables: &[&'a SstableInfo], now: GcTime) -> Vec<Vec<&'a SstableInfo>> {
    let opt = Options::of(strategy);
    // R2.24 step 1: ascending uncompressed size (generation breaks ties, for determinism).
    let mut sorted: Vec<&SstableInfo> = sstables.to_vec();
    sorted.sort_by_key(|s| (s.data_size, s.generation));
    // R2.24 step 2, min_sstable_age guard: any tiny sstable written recently disables the tiny rule.
    let recent = now.minus(opt.min_sstable_age);
    let tiny_written_recently = sorted.iter().any(|s| s.data_size < opt.min_sstable_size && s.created_at > recent);
    let tiny = |size: f64| !tiny_written_recently && size < opt.min_sstable_size as f64;

    let mut buckets: Vec<Bucket<'a>> = Vec::new();
    for sst in sorted {
        let size = sst.data_size as f64;
        if let Some(last) = buckets.last_mut() {
            let avg = last.average();
            // R2.24 step 2: A*low < S < A*high, or both S and A tiny.
            let similar = size > avg * opt.bucket_low && size < avg * opt.bucket_high;
            if similar || (tiny(size) && tiny(avg)) {
                let total = last.total + u128::from(sst.data_size);
                let new_avg = total as f64 / (last.members.len() + 1) as f64;
                let smallest = last.members.first().map_or(0.0, |s| s.data_size as f64);
                // R2.24 step 3: the smallest member must stay > new_avg*low (tiny joins exempt).
                if tiny(size) || smallest > new_avg * opt.bucket_low {
                    last.members.push(sst);
                    last.total = total;
                    continue;
                }
            }
        }
        buckets.push(Bucket { members: vec![sst], total: u128::from(sst.data_size) });
    }
    buckets.into_iter().map(|b| b.members).collect()
}

/// R2.24 selection: among the buckets with at least `min_threshold` members (at least 2), the one
/// with the most members (the smallest tier on a tie), truncated to its `max_threshold` (at least
/// 2) smallest sstables. `None` when no bucket qualifies.
pub(crate) fn most_interesting_bucket<'a>(
    buckets: &[Vec<&'a SstableInfo>],
    min_threshold: usize,
    max_threshold: usize,
) -> Option<Vec<&'a SstableInfo>> {
    let (min_threshold, max_threshold) = (min_threshold.max(2), max_threshold.max(2));
    let mut best: Option<&Vec<&'a SstableInfo>> = None;
    for bucket in buckets.iter().filter(|b| b.len() >= min_threshold) {
        // Sizes compare after truncation, as in ScyllaDB: buckets over max_threshold tie.
        if best.is_none_or(|b| bucket.len().min(max_threshold) > b.len().min(max_threshold)) {
            best = Some(bucket);
        }
    }
    best.map(|b| b.iter().copied().take(max_threshold).collect())
}
