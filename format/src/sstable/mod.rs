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

pub mod bloom;
pub mod statistics;

use bytes::Bytes;

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
