//! What the partition index and the row index say about one partition, built from its fragments
//! in stream order. The writer builds the indexes with it; `verify` rebuilds them from the data
//! with the same code and compares.
//!
//! Thread-safety: a plain value owned by one writer or verifier.

use crate::fragment::Fragment;
use crate::position::Position;
use crate::range_tombstone::RangeTombstone;
use crate::sstable::block::BlockHandle;
use crate::sstable::fragment_max_timestamp;
use crate::sstable::index::{RowIndexEntry, RANGE_TOMBSTONE_SUMMARY_LIMIT};
use crate::time::Timestamp;
use crate::tombstone::Tombstone;

/// The index facts of one partition, accumulated fragment by fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionSummary {
    pub(crate) has_static_row: bool,
    /// First and last clustering fragment positions.
    pub(crate) clustering: Option<(Position, Position)>,
    /// Highest timestamp of anything in the partition, its tombstone included.
    pub(crate) max_timestamp: Timestamp,
    /// The newest range tombstones, newest first (at most [`RANGE_TOMBSTONE_SUMMARY_LIMIT`]).
    pub(crate) range_tombstones: Vec<RangeTombstone>,
    /// Row index entries of the blocks ended so far.
    pub(crate) row_index: Vec<RowIndexEntry>,
    /// First clustering position and max timestamp in the current block (its last position is
    /// the partition's last so far, in `clustering`).
    block_first: Option<Position>,
    block_max: Timestamp,
    /// The range tombstone active at the current block's start, and now (with where it began).
    block_open: Tombstone,
    active: Tombstone,
    active_since: Option<Position>,
}

impl PartitionSummary {
    /// A partition whose start carries `tombstone`.
    pub(crate) fn new(tombstone: Tombstone) -> PartitionSummary {
        PartitionSummary {
            has_static_row: false,
            clustering: None,
            max_timestamp: tombstone.timestamp,
            range_tombstones: Vec::new(),
            row_index: Vec::new(),
            block_first: None,
            block_max: Timestamp::MISSING,
            block_open: Tombstone::NONE,
            active: Tombstone::NONE,
            active_since: None,
        }
    }

    /// Whether the current block holds a clustering fragment of the partition.
    pub(crate) fn has_clustering_in_block(&self) -> bool {
        self.block_first.is_some()
    }

    /// Takes in the partition's next fragment after its start (the end is ignored).
    pub(crate) fn observe(&mut self, fragment: &Fragment) {
        let max = fragment_max_timestamp(fragment);
        match fragment {
            Fragment::StaticRow(_) => {
                self.has_static_row = true;
                self.max_timestamp = self.max_timestamp.max(max);
            }
            Fragment::Row { .. } | Fragment::RangeTombstoneChange(_) => {
                let position = fragment.position();
                self.max_timestamp = self.max_timestamp.max(max);
                self.block_max = self.block_max.max(max);
                if self.block_first.is_none() {
                    self.block_first = Some(position.clone());
                }
                if let Fragment::RangeTombstoneChange(change) = fragment {
                    if let Some(start) = self.active_since.take() {
                        self.summarize(RangeTombstone { start, end: position.clone(), tombstone: self.active });
                    }
                    self.active = change.tombstone;
                    self.active_since = change.tombstone.is_some().then(|| position.clone());
                }
                match &mut self.clustering {
                    Some((_, last)) => *last = position,
                    None => self.clustering = Some((position.clone(), position)),
                }
            }
            Fragment::PartitionStart { .. } | Fragment::PartitionEnd => {}
        }
    }

    /// The current block, `handle`, ends: records its row index entry if it held clustering
    /// fragments of the partition.
    pub(crate) fn end_block(&mut self, handle: BlockHandle) {
        if let (Some(first), Some((_, last))) = (self.block_first.take(), &self.clustering) {
            let max_timestamp = self.block_max.max(self.block_open.timestamp);
            self.row_index.push(RowIndexEntry { block: handle, first, last: last.clone(), max_timestamp, open_tombstone: self.block_open });
        }
        self.block_max = Timestamp::MISSING;
        self.block_open = self.active;
    }

    /// Keeps the newest range tombstones, newest first.
    fn summarize(&mut self, rt: RangeTombstone) {
        let at = self.range_tombstones.partition_point(|s| s.tombstone >= rt.tombstone);
        if at < RANGE_TOMBSTONE_SUMMARY_LIMIT {
            self.range_tombstones.insert(at, rt);
            self.range_tombstones.truncate(RANGE_TOMBSTONE_SUMMARY_LIMIT);
        }
    }
}
