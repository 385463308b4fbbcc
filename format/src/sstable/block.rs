//! Data blocks: the fragments of one or more partitions, compressed or raw, each followed by a
//! trailer whose checksum binds the block to its file and offset (`docs/format.md`, "Data blocks").
//!
//! ```text
//! stored bytes (n) | compression u8 | uncompressed length u32 LE | xxh3 u64 LE
//! ```
//!
//! The checksum is xxh3-64 over the stored bytes, the compression byte, the uncompressed length,
//! the file id (u64 LE) and the block's offset (u64 LE). A block copied to another offset or into
//! another file fails its check, as does any flipped bit in the block or its trailer.
//!
//! The uncompressed content is a sequence of fragment records (one tag byte, then the body in the
//! encodings of `mutation_codec`). A block never starts with a partition's `PartitionEnd`: the
//! writer cuts blocks only before a row or range tombstone change, or between partitions.
//!
//! Invariants: [`read_block`] returns the content only when the checksum matches; decoding a
//! verified block is still strict and total (a writer bug or a forged checksum gives a
//! [`Error::Corrupt`], never a panic). Thread-safety: pure functions.

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::fragment::Fragment;
use crate::mutation_codec::{write_bytes, write_cells, write_position, write_prefix, write_row, write_tombstone, Reader};
use crate::partition_key::PartitionKey;
use crate::range_tombstone::RangeTombstoneChange;
use crate::schema::Compression;
use crate::sstable::block_buffers;
use crate::tombstone::Tombstone;

/// Bytes of the trailer after a block's stored bytes.
pub const BLOCK_TRAILER_LEN: usize = 13;
/// The largest uncompressed block a reader accepts (a larger length is corruption).
pub const MAX_BLOCK_LEN: usize = 64 << 20;

const STRUCTURE: &str = "sstable data block";

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const COMPRESSION_LZ4: u8 = 2;

const TAG_PARTITION_START: u8 = 1;
const TAG_STATIC_ROW: u8 = 2;
const TAG_ROW: u8 = 3;
const TAG_RANGE_TOMBSTONE_CHANGE: u8 = 4;
const TAG_PARTITION_END: u8 = 5;

/// Where a block sits in its file: the offset of its first stored byte and the stored length
/// (the trailer follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockHandle {
    /// File offset of the block.
    pub offset: u64,
    /// Stored (possibly compressed) length, without the trailer.
    pub len: u32,
}

impl BlockHandle {
    /// The offset just past the block's trailer (saturating: a handle decoded from damaged bytes
    /// may lie anywhere, and an end of `u64::MAX` is past every file).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(u64::from(self.len) + BLOCK_TRAILER_LEN as u64)
    }
}

/// Appends the encoding of one fragment record to `out`.
pub fn encode_fragment(fragment: &Fragment, out: &mut Vec<u8>) {
    match fragment {
        Fragment::PartitionStart { key, tombstone } => {
            out.push(TAG_PARTITION_START);
            write_bytes(out, key.key.as_bytes());
            write_tombstone(out, *tombstone);
        }
        Fragment::StaticRow(cells) => {
            out.push(TAG_STATIC_ROW);
            write_cells(out, cells);
        }
        Fragment::Row { key, row } => {
            out.push(TAG_ROW);
            write_prefix(out, key);
            write_row(out, row);
        }
        Fragment::RangeTombstoneChange(change) => {
            out.push(TAG_RANGE_TOMBSTONE_CHANGE);
            write_position(out, &change.position);
            write_tombstone(out, change.tombstone);
        }
        Fragment::PartitionEnd => out.push(TAG_PARTITION_END),
    }
}

/// Decodes the fragment record at `*pos` of a block's content, advancing `*pos`. Errors name
/// `block_offset` (the block's file offset) and the byte inside the content.
pub fn decode_fragment(content: &[u8], pos: &mut usize, block_offset: u64) -> Result<Fragment> {
    decode_with(Reader { structure: STRUCTURE, buf: content, pos: *pos, shared: None }, pos, block_offset)
}

/// [`decode_fragment`], but the fragment's cell values and clustering keys are slices of
/// `content` instead of copies: cheaper, but while any of them lives the whole block stays in
/// memory (for consumers that drop fragments soon, like a compaction).
pub fn decode_fragment_shared(content: &Bytes, pos: &mut usize, block_offset: u64) -> Result<Fragment> {
    decode_with(Reader { structure: STRUCTURE, buf: content, pos: *pos, shared: Some(content) }, pos, block_offset)
}

fn decode_with(mut r: Reader<'_>, pos: &mut usize, block_offset: u64) -> Result<Fragment> {
    let fragment = read_fragment(&mut r).map_err(|e| at_block(e, block_offset))?;
    *pos = r.pos;
    Ok(fragment)
}

/// When the record at `*pos` of a block's content is a partition start, decodes it without
/// building a fragment (no copy of the key, no token) and advances `*pos`: the key's legacy-form
/// bytes and the partition tombstone. Any other record is left alone (`None`).
pub fn decode_partition_start<'a>(content: &'a [u8], pos: &mut usize, block_offset: u64) -> Result<Option<(&'a [u8], Tombstone)>> {
    if content.get(*pos) != Some(&TAG_PARTITION_START) {
        return Ok(None);
    }
    let mut r = Reader { structure: STRUCTURE, buf: content, pos: *pos + 1, shared: None };
    let start = read_partition_start(&mut r).map_err(|e| at_block(e, block_offset))?;
    *pos = r.pos;
    Ok(Some(start))
}

fn read_partition_start<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], Tombstone)> {
    let key = r.bytes("partition key")?;
    Ok((key, r.tombstone("partition tombstone")?))
}

fn read_fragment(r: &mut Reader<'_>) -> Result<Fragment> {
    let at = r.pos;
    let fragment = match r.u8("fragment tag")? {
        TAG_PARTITION_START => {
            let (key, tombstone) = read_partition_start(r)?;
            Fragment::PartitionStart { key: PartitionKey::from_legacy_bytes(Bytes::copy_from_slice(key)).decorate(), tombstone }
        }
        TAG_STATIC_ROW => Fragment::StaticRow(r.cells()?),
        TAG_ROW => {
            let key = r.prefix("clustering key")?;
            Fragment::Row { key, row: r.row()? }
        }
        TAG_RANGE_TOMBSTONE_CHANGE => {
            let position = r.position("range tombstone change")?;
            Fragment::RangeTombstoneChange(RangeTombstoneChange { position, tombstone: r.tombstone("range tombstone")? })
        }
        TAG_PARTITION_END => Fragment::PartitionEnd,
        tag => return Err(r.corrupt(at, format!("bad fragment tag {tag}"))),
    };
    Ok(fragment)
}

/// Rewrites a content-relative corruption error to name the block's file offset.
fn at_block(error: Error, block_offset: u64) -> Error {
    match error {
        Error::Corrupt { structure, offset, reason } => Error::Corrupt {
            structure,
            offset: usize::try_from(block_offset).unwrap_or(usize::MAX),
            reason: format!("{reason} (byte {offset} of the block's content)"),
        },
        other => other,
    }
}

fn checksum(stored: &[u8], compression: u8, uncompressed_len: u32, file_id: u64, offset: u64) -> u64 {
    let mut h = Xxh3::new();
    h.update(stored);
    h.update(&[compression]);
    h.update(&uncompressed_len.to_le_bytes());
    h.update(&file_id.to_le_bytes());
    h.update(&offset.to_le_bytes());
    h.digest()
}

/// Appends `content` as a block at file offset `offset` of file `file_id`: compressed when that
/// makes it smaller, then the trailer. Returns the block's handle.
pub fn write_block(content: &[u8], compression: Compression, file_id: u64, offset: u64, out: &mut Vec<u8>) -> BlockHandle {
    let start = out.len();
    let mut kind = COMPRESSION_NONE;
    let compressed = match compression {
        Compression::None => None,
        // A compression failure (zstd has none on valid input) just stores the block raw.
        Compression::Zstd { level } => compress(content, level).ok().map(|c| (COMPRESSION_ZSTD, c)),
        Compression::Lz4 => Some((COMPRESSION_LZ4, lz4_flex::block::compress(content))),
    };
    match compressed {
        Some((compressed_kind, bytes)) if bytes.len() < content.len() => {
            out.extend_from_slice(&bytes);
            kind = compressed_kind;
        }
        _ => out.extend_from_slice(content),
    }
    let stored_len = out.len() - start;
    // Blocks are cut near the target size (at most a few MiB), far below u32::MAX.
    let uncompressed_len = u32::try_from(content.len()).unwrap_or(u32::MAX);
    let sum = checksum(&out[start..], kind, uncompressed_len, file_id, offset);
    out.push(kind);
    out.extend_from_slice(&uncompressed_len.to_le_bytes());
    out.extend_from_slice(&sum.to_le_bytes());
    BlockHandle { offset, len: u32::try_from(stored_len).unwrap_or(u32::MAX) }
}

thread_local! {
    /// zstd contexts reused by every block this thread compresses or decompresses: creating one
    /// costs more than decompressing a 4 KiB block (it probes the CPU, which traps on VMs).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn compress(content: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, compressor)) => compressor.compress(content),
            None => zstd::bulk::compress(content, level),
        }
    })
}

fn decompress(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(stored, capacity),
            None => zstd::bulk::decompress(stored, capacity),
        }
    })
}

/// Verifies and decompresses the block stored in `stored_and_trailer` (the bytes of `handle`
/// followed by its trailer) of file `file_id`. Returns the block's content: a raw block is a slice
/// of `stored_and_trailer` (no copy out of a mapped file), a compressed one a new buffer.
pub fn read_block(stored_and_trailer: &Bytes, handle: BlockHandle, file_id: u64) -> Result<Bytes> {
    let corrupt =
        |reason: String| Error::Corrupt { structure: STRUCTURE, offset: usize::try_from(handle.offset).unwrap_or(usize::MAX), reason };
    let stored_len = handle.len as usize;
    if stored_and_trailer.len() != stored_len + BLOCK_TRAILER_LEN {
        return Err(corrupt(format!("block of {} byte(s), expected {}", stored_and_trailer.len(), stored_len + BLOCK_TRAILER_LEN)));
    }
    let (stored, trailer) = stored_and_trailer.split_at(stored_len);
    let kind = trailer[0];
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&trailer[1..5]);
    let uncompressed_len = u32::from_le_bytes(len_bytes);
    let mut sum_bytes = [0u8; 8];
    sum_bytes.copy_from_slice(&trailer[5..13]);
    let expected = u64::from_le_bytes(sum_bytes);
    let actual = checksum(stored, kind, uncompressed_len, file_id, handle.offset);
    if actual != expected {
        return Err(corrupt(format!("checksum mismatch: stored {expected:016x}, computed {actual:016x} (file id {file_id})")));
    }
    let uncompressed_len = uncompressed_len as usize;
    if uncompressed_len > MAX_BLOCK_LEN {
        return Err(corrupt(format!("uncompressed length {uncompressed_len} over the {MAX_BLOCK_LEN} limit")));
    }
    match kind {
        COMPRESSION_NONE if stored_len == uncompressed_len => Ok(stored_and_trailer.slice(..stored_len)),
        COMPRESSION_NONE => Err(corrupt(format!("raw block of {stored_len} byte(s) claims {uncompressed_len}"))),
        COMPRESSION_ZSTD => match decompress(stored, uncompressed_len) {
            Ok(content) if content.len() == uncompressed_len => Ok(Bytes::from(content)),
            Ok(content) => Err(corrupt(format!("decompressed to {} byte(s), expected {uncompressed_len}", content.len()))),
            Err(e) => Err(corrupt(format!("zstd: {e}"))),
        },
        COMPRESSION_LZ4 => {
            let mut content = block_buffers::take(uncompressed_len);
            match lz4_flex::block::decompress_into(stored, &mut content) {
                Ok(len) if len == uncompressed_len => Ok(content.freeze()),
                Ok(len) => Err(corrupt(format!("decompressed to {len} byte(s), expected {uncompressed_len}"))),
                Err(e) => Err(corrupt(format!("lz4: {e}"))),
            }
        }
        other => Err(corrupt(format!("unknown compression {other}"))),
    }
}

/// Bytes of the uncompressed length a forged block of [`check_block`] may claim, so one fuzz input
/// never makes the decompressor allocate more than this.
const CHECK_MAX_CONTENT: u32 = 1 << 20;

/// The fuzz property of the block decoder (fuzz target `sstable_block` and its corpus test).
/// The first byte picks the mode (its value modulo 3):
///
/// - 0: bytes 1..9 are a file id (LE), the rest one block with its trailer at offset 0;
/// - 1: the same, but the checksum (and an uncompressed length over 1 MiB) is rewritten first so
///   the block verifies and decompression and record decoding run on arbitrary bytes;
/// - 2: the rest is block content: fragment records decoded without a checksum.
///
/// [`read_block`] and [`decode_fragment`] must succeed or fail with [`Error::Corrupt`] (never
/// panic), decoding runs to the end of the content, and every decoded record re-encodes to the
/// exact bytes it came from (the record encoding is canonical).
#[doc(hidden)]
pub fn check_block(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some((&mode, rest)) = bytes.split_first() else { return Ok(()) };
    if mode % 3 == 2 {
        return check_records(rest, 0);
    }
    if rest.len() < 8 + BLOCK_TRAILER_LEN {
        return Ok(());
    }
    let (id, block) = rest.split_at(8);
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(id);
    let file_id = u64::from_le_bytes(id_bytes);
    let stored_len = block.len() - BLOCK_TRAILER_LEN;
    let Ok(len) = u32::try_from(stored_len) else { return Ok(()) };
    let handle = BlockHandle { offset: 0, len };
    let mut block = block.to_vec();
    if mode % 3 == 1 {
        let (stored, trailer) = block.split_at_mut(stored_len);
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&trailer[1..5]);
        let uncompressed_len = u32::from_le_bytes(len_bytes) % (CHECK_MAX_CONTENT + 1);
        trailer[1..5].copy_from_slice(&uncompressed_len.to_le_bytes());
        let sum = checksum(stored, trailer[0], uncompressed_len, file_id, 0);
        trailer[5..13].copy_from_slice(&sum.to_le_bytes());
    }
    let block = Bytes::from(block);
    match read_block(&block, handle, file_id) {
        Ok(content) => check_records(&content, 0),
        Err(Error::Corrupt { offset: 0, reason, .. }) => {
            // A forged raw block whose length claim is right must verify.
            let claimed = block.get(stored_len + 1..stored_len + 5).map(|b| b.iter().rev().fold(0usize, |n, &x| n << 8 | usize::from(x)));
            if mode % 3 == 1 && block[stored_len] == COMPRESSION_NONE && claimed == Some(stored_len) {
                return Err(format!("a raw block with a valid checksum and length was rejected: {reason}"));
            }
            Ok(())
        }
        Err(other) => Err(format!("read_block: unexpected error {other:?}")),
    }
}

/// Decodes every fragment record of `content` (a block at file offset `block_offset`), checking
/// that each re-encodes to its bytes; stops at the first (typed) error.
fn check_records(content: &[u8], block_offset: u64) -> std::result::Result<(), String> {
    let mut pos = 0;
    let mut again = Vec::new();
    while pos < content.len() {
        let at = pos;
        match decode_fragment(content, &mut pos, block_offset) {
            Ok(fragment) => {
                if pos <= at || pos > content.len() {
                    return Err(format!("decoding the record at {at} moved to {pos}"));
                }
                again.clear();
                encode_fragment(&fragment, &mut again);
                if again != content[at..pos] {
                    return Err(format!("the record at {at} ({fragment:?}) re-encodes to different bytes"));
                }
            }
            Err(Error::Corrupt { offset, .. }) if offset as u64 == block_offset => return Ok(()),
            Err(other) => return Err(format!("decode_fragment at {at}: unexpected error {other:?}")),
        }
    }
    Ok(())
}
