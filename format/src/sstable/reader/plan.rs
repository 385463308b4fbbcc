//! A partition read's plan: the clustering ranges it wants and the tombstones known to cover
//! parts of the partition, from which the reader decides which blocks it can leave unread.
//!
//! Thread-safety: a plain value, shared behind an `Arc` by the streams of one read.

use crate::position::Position;
use crate::range_tombstone::RangeTombstone;
use crate::sstable::index::RowIndexEntry;

/// What a partition read needs, so the reader can skip the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// Clustering ranges `[start, end)` the reader must return.
    pub ranges: Vec<(Position, Position)>,
    /// Whether the static row is wanted.
    pub static_row: bool,
    /// Tombstones known (from other sources too) to cover parts of the partition.
    pub covering: Vec<RangeTombstone>,
    /// Whether blocks read from the file enter the block cache (a compaction reads each block
    /// once and would only evict what reads need).
    pub fill_cache: bool,
}

impl ReadPlan {
    /// Everything, nothing known to be shadowed.
    pub fn full() -> ReadPlan {
        ReadPlan {
            ranges: vec![(Position::before_all_rows(), Position::after_all_rows())],
            static_row: true,
            covering: Vec::new(),
            fill_cache: true,
        }
    }

    /// Whether the plan reads every block: it wants every clustering position and knows of no
    /// covering tombstone, so [`ReadPlan::skips`] is false for every block.
    pub fn reads_every_block(&self) -> bool {
        self.covering.is_empty()
            && self.ranges.iter().any(|(start, end)| *start <= Position::before_all_rows() && *end >= Position::after_all_rows())
    }

    /// Whether a block whose clustering fragments span `first..=last` with highest timestamp
    /// `max_timestamp` can be left unread.
    pub fn skips(&self, block: &RowIndexEntry) -> bool {
        let wanted = self.ranges.iter().any(|(start, end)| *start <= block.last && block.first < *end);
        let shadowed = self
            .covering
            .iter()
            .any(|c| c.start <= block.first && block.last < c.end && c.tombstone.covers(block.max_timestamp) && c.tombstone.is_some());
        !wanted || shadowed
    }
}
