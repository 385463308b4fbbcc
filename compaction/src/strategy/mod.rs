//! Compaction strategies: which sstables of a table to compact next (R2.23–R2.29).
//!
//! A picker sees a table's sstables only as [`SstableInfo`] (sizes, levels, timestamps, deletion
//! times, ages), never files, so every decision is a pure function of text-describable input and is
//! tested data-driven (`tests/pick.rs`, cases in `tests/pick/`). The engine builds the infos from
//! sstable statistics, leaves out staging, quarantined and already-compacting sstables (R2.29), runs
//! the picker, and executes the returned [`CompactionJob`]. Fully expired sstables (R2.20) are the
//! engine's to find first, with [`expired::fully_expired`]: a picker sees no memtables.
//!
//! Invariants of every job a picker returns: at least one input; inputs ascending and distinct;
//! every input is one of the given sstables; the choice depends on the set of sstables, never on
//! their order (ties are broken by generation).
//!
//! - [`size_tiered`]: STCS bucketing and selection (R2.24), the default;
//! - [`leveled`]: LCS levels, scores and L0 handling (R2.25);
//! - [`time_window`]: TWCS windows by max timestamp (R2.26);
//! - [`tombstone`]: single-sstable tombstone compaction (R2.28);
//! - [`expired`]: fully expired sstables, dropped without being read (R2.20).
//!
//! Thread-safety: pickers are plain functions of their inputs.

pub mod expired;
pub mod leveled;
pub mod size_tiered;
pub mod time_window;
pub mod tombstone;

use talus_format::schema::{CompactionCommon, CompactionStrategy};
use talus_format::sstable::drop_time_histogram::DropTimeHistogram;
use talus_format::{DecoratedKey, GcTime, Timestamp};

/// What a picker knows about one sstable (from its statistics and the manifest).
#[derive(Debug, Clone, PartialEq)]
pub struct SstableInfo {
    /// Generation (unique; larger is newer).
    pub generation: u64,
    /// Uncompressed data size in bytes (STCS buckets by it, R2.24).
    pub data_size: u64,
    /// File size in bytes (LCS level sizes and output cuts).
    pub file_size: u64,
    /// Level (LCS; 0 for every other strategy).
    pub level: u32,
    /// Smallest and largest partition key; `None` for an sstable without partitions.
    pub key_range: Option<(DecoratedKey, DecoratedKey)>,
    /// Minimum timestamp of any data or tombstone.
    pub min_timestamp: Timestamp,
    /// Maximum timestamp of any data or tombstone (TWCS window, R2.26; R2.20).
    pub max_timestamp: Timestamp,
    /// Max local deletion time: `GcTime::MAX` when it holds live non-expiring data (R2.20).
    pub max_deletion_time: GcTime,
    /// Tombstone drop times and expiry times (R2.28).
    pub drop_times: DropTimeHistogram,
    /// Cells, rows and tombstones: the denominator of the droppable-tombstone ratio (R2.28).
    pub item_count: u64,
    /// When the sstable was written (gc clock; R2.24 `min_sstable_age`, R2.28 interval).
    pub created_at: GcTime,
}

/// Why a job was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A strategy's regular compaction.
    Regular,
    /// Single-sstable tombstone compaction (R2.28).
    Tombstone,
    /// Fully expired sstables dropped without being read (R2.20); `inputs` are all expired.
    ExpiredDrop,
    /// Major compaction: every eligible sstable.
    Major,
}

/// A compaction to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionJob {
    /// Why.
    pub kind: JobKind,
    /// Input generations, ascending.
    pub inputs: Vec<u64>,
    /// Level of the output sstables.
    pub output_level: u32,
    /// Output files are cut at about this many bytes of data (`None`: one file).
    pub max_output_bytes: Option<u64>,
}

/// The table-wide facts a picker needs besides the sstables.
#[derive(Debug, Clone)]
pub struct PickContext {
    /// The gc clock now.
    pub now: GcTime,
    /// The table's `gc_before` over its whole token range (R2.20, R2.28), already clamped by the
    /// commitlog barrier; `GcTime::MIN` when tombstone GC is disabled.
    pub gc_before: GcTime,
    /// Whether tombstone GC is disabled for the table (R2.28: no tombstone compaction then).
    pub gc_disabled: bool,
    /// The common options (R2.23).
    pub common: CompactionCommon,
}

/// Whether two sstables' partition key ranges intersect (bounds inclusive, in ring order R1.5). An
/// sstable without partitions overlaps nothing.
pub(crate) fn key_ranges_overlap(a: &SstableInfo, b: &SstableInfo) -> bool {
    b.key_range.as_ref().is_some_and(|(first, last)| overlaps_range(a, first, last))
}

/// Whether `sstable` has a partition key in `first..=last` by its key range (ring order, R1.5).
pub(crate) fn overlaps_range(sstable: &SstableInfo, first: &DecoratedKey, last: &DecoratedKey) -> bool {
    sstable.key_range.as_ref().is_some_and(|(f, l)| f <= last && first <= l)
}

/// A job over `inputs` (any order; generations are sorted and deduplicated).
pub(crate) fn job<'a>(
    kind: JobKind,
    inputs: impl IntoIterator<Item = &'a SstableInfo>,
    output_level: u32,
    max_output_bytes: Option<u64>,
) -> CompactionJob {
    let mut inputs: Vec<u64> = inputs.into_iter().map(|s| s.generation).collect();
    inputs.sort_unstable();
    inputs.dedup();
    CompactionJob { kind, inputs, output_level, max_output_bytes }
}

/// Picks the next compaction of a table under `strategy`, or `None` when nothing is worth doing.
/// `sstables` are the eligible ones (not staging, quarantined or already compacting), any order.
pub fn pick(strategy: &CompactionStrategy, sstables: &[SstableInfo], ctx: &PickContext) -> Option<CompactionJob> {
    if !ctx.common.enabled {
        return None;
    }
    match strategy {
        CompactionStrategy::SizeTiered { .. } => size_tiered::pick(strategy, sstables, ctx),
        CompactionStrategy::Leveled { .. } => leveled::pick(strategy, sstables, ctx),
        CompactionStrategy::TimeWindow { .. } => time_window::pick(strategy, sstables, ctx),
    }
}

/// A major compaction of every eligible sstable (`None` with fewer than one).
pub fn major(strategy: &CompactionStrategy, sstables: &[SstableInfo]) -> Option<CompactionJob> {
    let mut inputs: Vec<u64> = sstables.iter().map(|s| s.generation).collect();
    if inputs.is_empty() {
        return None;
    }
    inputs.sort_unstable();
    let (output_level, max_output_bytes) = match strategy {
        CompactionStrategy::Leveled { sstable_size_in_mb, .. } => (1, Some(sstable_size_in_mb << 20)),
        _ => (0, None),
    };
    Some(CompactionJob { kind: JobKind::Major, inputs, output_level, max_output_bytes })
}
