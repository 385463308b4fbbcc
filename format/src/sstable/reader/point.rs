//! Point reads of one sstable: what it holds at one clustering row of one partition, read
//! straight from the one block that can hold the row, without the streaming machinery of
//! [`SstableReader::stream`] (plans, cursors, clipping, fragments the read does not want).
//!
//! The block is the partition's only one, or, for a partition with a row index, the first block
//! whose last clustering position is at or after the row's: the row, and every range tombstone
//! change before it that the block holds, are in it, and the tombstone open at the block's start
//! comes from the row index. A row past the partition's last clustering fragment has no range
//! tombstone open over it (the partition's end closes every one). Decoding starts at the
//! partition's start in its first block, or at the block's start otherwise, and stops at the first
//! fragment past the row.
//!
//! The answer is the one a stream of the partition clipped to the row's position gives: the
//! partition tombstone, the range tombstone active at the row and the row itself. Corruption is an
//! [`Error::Corrupt`], as for streams. Thread-safety: `&self` only.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::fragment::Fragment;
use crate::partition_key::DecoratedKey;
use crate::position::{ClusteringPrefix, Position};
use crate::row::Row;
use crate::sstable::block::{decode_fragment, decode_partition_start, BlockHandle};
use crate::sstable::reader::{ReadCounters, SstableReader};
use crate::tombstone::Tombstone;

/// What one sstable holds at one clustering row of one partition ([`SstableReader::read_row`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowVersion {
    /// The partition tombstone.
    pub partition_tombstone: Tombstone,
    /// The range tombstone active at the row's position.
    pub range_tombstone: Tombstone,
    /// The row, when the sstable has one at that position.
    pub row: Option<Row>,
}

impl SstableReader {
    /// The version of the row at `clustering` (a full clustering key, empty for a table without
    /// clustering columns) of partition `key` in this sstable; `None` when the sstable does not
    /// hold the partition (its key range, bloom filter and index rule it out). A block read from
    /// the file enters the block cache when `fill_cache`.
    pub fn read_row(&self, key: &DecoratedKey, clustering: &ClusteringPrefix, fill_cache: bool) -> Result<Option<RowVersion>> {
        if self.screen(key).is_some() {
            return Ok(None);
        }
        let candidates = self.partitions.token_range(key.token);
        let one_block = |i: usize| self.partitions.get(i).is_some_and(|p| p.has_clustering() && !p.has_row_index());
        let index = if candidates.len() == 1 && one_block(candidates.start) {
            // The only partition with the key's token, in one block: its key is checked against
            // the partition start in the block, which the read decodes anyway.
            candidates.start
        } else {
            match self.partitions.search_among(key, candidates) {
                Ok(i) => i,
                Err(_) => return Ok(None),
            }
        };
        let Some(partition) = self.partitions.get(index) else { return Ok(None) };
        let mut version = RowVersion { partition_tombstone: partition.tombstone(), ..RowVersion::default() };
        if !partition.has_clustering() {
            return Ok(Some(version));
        }
        let position = Position::at_row(clustering.clone());
        let (handle, open) = if partition.has_row_index() {
            let blocks = self.row_index_filling(&partition.entry()?, fill_cache)?;
            let Some(block) = blocks.get(blocks.partition_point(|b| b.last < position)) else {
                // Past the partition's last clustering fragment: nothing is open there.
                return Ok(Some(version));
            };
            if position < block.first {
                // Between two blocks (or before the first): the row index says what is open.
                version.range_tombstone = block.open_tombstone;
                return Ok(Some(version));
            }
            (block.block, block.open_tombstone)
        } else {
            (partition.block(), Tombstone::NONE)
        };
        // The partition starts inside its first block; any later block starts with its fragments.
        let start = if handle == partition.block() { partition.offset_in_block() as usize } else { 0 };
        let content = self.block_filling(handle, &ReadCounters::default(), fill_cache)?;
        let (mut pos, mut active) = (start, open);
        if handle == partition.block() {
            let Some((stored_key, _)) = decode_partition_start(&content, &mut pos, handle.offset)? else {
                return Err(corrupt(handle, "no partition start where the partition index puts one"));
            };
            if stored_key != key.key.as_bytes() {
                if partition.key_bytes() == key.key.as_bytes() {
                    return Err(corrupt(handle, "partition start does not match the partition index"));
                }
                // Another partition with the same token: the key is not here.
                return Ok(None);
            }
        }
        while pos < content.len() {
            match decode_fragment(&content, &mut pos, handle.offset)? {
                Fragment::StaticRow(_) => {}
                Fragment::RangeTombstoneChange(change) if change.position <= position => active = change.tombstone,
                Fragment::Row { key, row } => match Position::at_row(key).cmp(&position) {
                    Ordering::Less => {}
                    Ordering::Equal => {
                        version.row = Some(row);
                        break;
                    }
                    Ordering::Greater => break,
                },
                Fragment::RangeTombstoneChange(_) | Fragment::PartitionEnd | Fragment::PartitionStart { .. } => break,
            }
        }
        version.range_tombstone = active;
        Ok(Some(version))
    }
}

fn corrupt(handle: BlockHandle, reason: &str) -> Error {
    Error::Corrupt { structure: "sstable data block", offset: usize::try_from(handle.offset).unwrap_or(usize::MAX), reason: reason.into() }
}
