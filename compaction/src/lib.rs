//! `talus-compaction`: merging fragment streams and compacting them.
//!
//! - [`merge`]: k-way merge of fragment streams with reconciliation (R1.37);
//! - [`rt_merger`]: the range tombstone change merger used by the merge;
//! - [`gc`]: `gc_before` per tombstone_gc mode and the purge predicate's inputs (R2.8, R2.14–R2.17);
//! - [`compactor`]: the per-partition compaction of R2.7–R2.19, for reads and for sstables.
//!
//! This crate knows nothing of files or of the engine: the engine supplies repair history, the
//! commitlog barrier and the overlap check through the traits of [`gc`].

pub mod compactor;
pub mod gc;
pub mod merge;
pub mod rt_merger;
pub mod strategy;

pub use compactor::{CompactedStream, CompactionStats, Compactor};
pub use gc::{GcPolicy, OverlapCheck, RepairHistory};
pub use merge::MergedStream;
pub use rt_merger::RangeTombstoneChangeMerger;
pub use talus_format::CompactionPurpose;
