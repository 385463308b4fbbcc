//! The sstable file format (DESIGN §4, `docs/format.md` section "SSTables"): one immutable file per
//! sstable holding data blocks, the row index, the partition index, the bloom filter, the
//! statistics and a footer.
//!
//! Every structure has a builder/writer and a reader/decoder in its own file. Decoders are strict
//! and total: any byte pattern decodes to the value it encodes or to an [`crate::Error::Corrupt`]
//! naming the structure and the file offset, never a panic and never wrong data.
//!
//! The format crate does no I/O of its own: readers take a [`SstableSource`] (the engine maps the
//! file, or reads it through the `Fs` trait) and an optional [`BlockCache`].

pub mod block;
pub mod block_buffers;
mod block_output;
pub mod bloom;
pub mod clip;
pub mod drop_time_histogram;
pub mod footer;
pub mod index;
pub mod partition_index;
mod partition_summary;
pub mod read_ahead;
pub mod reader;
pub mod statistics;
mod token_search;
pub mod verify;
pub mod writer;

use bytes::Bytes;

use crate::fragment::Fragment;
use crate::time::Timestamp;

/// Random access to the bytes of one sstable file.
///
/// Implementations: a memory map (zero-copy slices) or positioned reads through the `Fs` trait.
pub trait SstableSource: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exactly `len` bytes at `offset`; a range past the end is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes>;
}

impl SstableSource for Bytes {
    fn len(&self) -> u64 {
        self.as_ref().len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let start = usize::try_from(offset).ok().filter(|&s| s.checked_add(len).is_some_and(|e| e <= self.as_ref().len()));
        match start {
            Some(start) => Ok(self.slice(start..start + len)),
            None => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{len} byte(s) at {offset} past the end"))),
        }
    }
}

/// A cache of decoded (checksum-verified, decompressed) data blocks, keyed by the file id and the
/// block's offset in the file. Implementations bound their size and are shared between readers.
pub trait BlockCache: Send + Sync {
    /// The cached block at `offset` of file `file_id`, if present.
    fn get(&self, file_id: u64, offset: u64) -> Option<Bytes>;

    /// Caches a verified block.
    fn insert(&self, file_id: u64, offset: u64, block: Bytes);
}

/// The highest write timestamp in `fragment`, tombstones included ([`Timestamp::MISSING`] when it
/// holds none). The row index records it per block so readers can skip shadowed blocks.
pub fn fragment_max_timestamp(fragment: &Fragment) -> Timestamp {
    let cells_max = |cells: &crate::row::Cells| cells.iter().map(|(_, c)| c.timestamp()).max().unwrap_or(Timestamp::MISSING);
    match fragment {
        Fragment::PartitionStart { tombstone, .. } => tombstone.timestamp,
        Fragment::StaticRow(cells) => cells_max(cells),
        Fragment::Row { row, .. } => row.tombstone.max().timestamp.max(row.marker.timestamp()).max(cells_max(&row.cells)),
        Fragment::RangeTombstoneChange(change) => change.tombstone.timestamp,
        Fragment::PartitionEnd => Timestamp::MISSING,
    }
}
