//! Time-window compaction (TWCS, R2.26): sstables are grouped by the time window of their max
//! timestamp; the newest window is size-tiered, and each older window is compacted into one
//! sstable ("per-window major").
//!
//! Invariants:
//!
//! - the window of an sstable is `floor(floor(max_timestamp / 1_000_000) / window_seconds)`:
//!   timestamps are microseconds since the epoch (`talus_format::Timestamp`), windows are aligned
//!   on multiples of `window_seconds` since the epoch, floors also for negative timestamps, and a
//!   `window_seconds` below 1 acts as 1;
//! - a job never mixes windows (except a tombstone job, which has a single input);
//! - output level 0, one output file per job.
//!
//! Interpretation choices (R2.26, following `time_window_compaction_strategy.cc`, which the rule
//! cites):
//!
//! - the "newest (active) window" is the newest window holding any sstable (ScyllaDB's highest
//!   window seen), not the window of `now`: a table that stopped receiving writes keeps size-tiering
//!   its last window rather than majoring it;
//! - the newest window is size-tiered with ScyllaDB's default STCS options and the table's
//!   thresholds: its most interesting bucket of at least `min_threshold` sstables, without STCS's
//!   any-pair and tombstone fallbacks;
//! - windows are visited newest first, so the first older window with at least 2 sstables is the
//!   newest such window. Its job keeps the `max_threshold` smallest sstables by data size
//!   (generation on a tie) and is a [`JobKind::Regular`] job: [`JobKind::Major`] means every
//!   sstable of the table. ScyllaDB majors an older window only while it remembers it as recently
//!   active; without state, every older window with 2 or more sstables qualifies;
//! - fully expired sstables (R2.20, checked every `expired_sstable_check_frequency_seconds`) are
//!   the engine's to drop, with [`super::expired::fully_expired`], before calling the picker;
//! - the tombstone fallback (R2.28) considers every sstable, oldest min timestamp first.

use std::collections::BTreeMap;

use talus_format::schema::CompactionStrategy;
use talus_format::Timestamp;

use super::{job, size_tiered, tombstone, CompactionJob, JobKind, PickContext, SstableInfo};

/// Microseconds per second (R0.1 timestamps are microseconds).
const MICROS_PER_SECOND: i64 = 1_000_000;

/// Picks the next TWCS job (R2.26), else a tombstone compaction (R2.28).
pub fn pick(strategy: &CompactionStrategy, sstables: &[SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    let CompactionStrategy::TimeWindow { window_seconds, .. } = *strategy else {
        return pick(&CompactionStrategy::time_window(), sstables, ctx);
    };
    let mut windows: BTreeMap<i64, Vec<&SstableInfo>> = BTreeMap::new();
    for sst in sstables {
        windows.entry(window(sst.max_timestamp, window_seconds)).or_default().push(sst);
    }
    let newest = windows.keys().next_back().copied();
    for (&key, members) in windows.iter().rev() {
        if Some(key) == newest {
            // R2.26: the active window is size-tiered (R2.24 bucketing, default options).
            let buckets = size_tiered::buckets(&CompactionStrategy::size_tiered(), members, ctx.now);
            if let Some(bucket) = size_tiered::most_interesting_bucket(&buckets, ctx.common.min_threshold, ctx.common.max_threshold) {
                return Some(job(JobKind::Regular, bucket, 0, None));
            }
        } else if members.len() >= 2 {
            // R2.26: one per-window major of an older window, trimmed to max_threshold.
            let mut smallest = members.clone();
            smallest.sort_by_key(|s| (s.data_size, s.generation));
            smallest.truncate(ctx.common.max_threshold.max(2));
            return Some(job(JobKind::Regular, smallest, 0, None));
        }
    }
    // R2.28: tombstone compaction over every window.
    tombstone::pick_among(sstables, ctx)
}

/// R2.26: the window number of `max_timestamp` (microseconds) for windows of `window_seconds`.
fn window(max_timestamp: Timestamp, window_seconds: i64) -> i64 {
    max_timestamp.0.div_euclid(MICROS_PER_SECOND).div_euclid(window_seconds.max(1))
}
