//! The partition index and the row index (`docs/format.md`, "Partition index" and "Row index").
//!
//! The **partition index** has one entry per partition, in (token, key) order: where the partition
//! starts (block and byte in the block's content), its partition tombstone, whether it has a static
//! row, the positions of its first and last clustering fragments, its highest timestamp, a summary
//! of its widest-reaching range tombstones and, for a partition spread over several blocks, where
//! its row index is. A reader answers "is the partition here, and can the query skip it" from the
//! entry alone, without reading a data block.
//!
//! The **row index** of a wide partition has one entry per block the partition touches: the block,
//! the first and last clustering positions of the partition in it, the highest timestamp of the
//! partition's data in it (including the range tombstone open at the block start) and that open
//! range tombstone. A reader seeks with it and skips blocks wholly shadowed by a newer tombstone.
//!
//! Invariants: entries are canonical (the decoder rejects anything the encoder would not write:
//! unknown flags, keys out of order, positions out of order, non-minimal varints, trailing bytes);
//! decoding is total and never allocates beyond what the input can hold. Thread-safety: plain
//! values and pure functions.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::mutation_codec::{write_bytes, write_i64, write_position, write_tombstone, write_varint, Reader};
use crate::partition_key::DecoratedKey;
use crate::position::Position;
use crate::range_tombstone::RangeTombstone;
use crate::sstable::block::{BlockHandle, BLOCK_TRAILER_LEN};
use crate::sstable::partition_index::PartitionIndex;
use crate::time::Timestamp;
use crate::tombstone::Tombstone;

/// At most this many range tombstones are summarized per partition (the newest ones).
pub const RANGE_TOMBSTONE_SUMMARY_LIMIT: usize = 8;

pub(crate) const PARTITION_INDEX: &str = "sstable partition index";
const ROW_INDEX: &str = "sstable row index";

pub(crate) const FLAG_STATIC_ROW: u8 = 1;
pub(crate) const FLAG_CLUSTERING: u8 = 2;
pub(crate) const FLAG_ROW_INDEX: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_STATIC_ROW | FLAG_CLUSTERING | FLAG_ROW_INDEX;

/// Key (1) + tombstone (1) + block offset (1) + block length (1) + offset in block (1) + flags (1)
/// + summary count (1) + max timestamp (8).
pub(crate) const MIN_PARTITION_ENTRY_BYTES: usize = 15;
/// Offset (1) + length (1) + two positions (3 each) + max timestamp (8) + tombstone (1).
const MIN_ROW_ENTRY_BYTES: usize = 17;
/// Two positions (3 each) + a tombstone (1).
const MIN_SUMMARY_BYTES: usize = 7;

/// Where a partition's row index sits, relative to the start of the row index section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowIndexRef {
    /// Offset from the start of the row index section.
    pub offset: u64,
    /// Encoded length.
    pub len: u64,
}

/// One partition of the partition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionIndexEntry {
    /// The partition key.
    pub key: DecoratedKey,
    /// The partition tombstone.
    pub tombstone: Tombstone,
    /// The block holding the partition's start.
    pub block: BlockHandle,
    /// Byte offset of the partition's start in that block's content.
    pub offset_in_block: u32,
    /// Whether the partition has a static row.
    pub has_static_row: bool,
    /// First and last clustering fragment positions (rows and range tombstone changes), if any.
    pub clustering: Option<(Position, Position)>,
    /// The highest timestamp of anything in the partition (tombstones included).
    pub max_timestamp: Timestamp,
    /// Up to [`RANGE_TOMBSTONE_SUMMARY_LIMIT`] of the partition's range tombstones, newest first.
    pub range_tombstones: Vec<RangeTombstone>,
    /// The row index, for a partition spread over several blocks.
    pub row_index: Option<RowIndexRef>,
}

/// One block of a wide partition's row index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIndexEntry {
    /// The block.
    pub block: BlockHandle,
    /// Position of the partition's first clustering fragment in the block.
    pub first: Position,
    /// Position of the partition's last clustering fragment in the block.
    pub last: Position,
    /// Highest timestamp of the partition's data in the block, the open tombstone included.
    pub max_timestamp: Timestamp,
    /// The range tombstone active at the block's start.
    pub open_tombstone: Tombstone,
}

/// Appends one partition index entry.
pub fn encode_partition_entry(entry: &PartitionIndexEntry, out: &mut Vec<u8>) {
    encode_entry(entry, out);
}

/// Where [`encode_entry`] put an entry's parts in its output.
pub(crate) struct EncodedEntry {
    /// The key's bytes.
    pub(crate) key: std::ops::Range<usize>,
    /// The rest after the flags.
    pub(crate) tail: usize,
    /// The flags.
    pub(crate) flags: u8,
}

/// Appends one partition index entry; returns where its key and its rest lie in `out`.
pub(crate) fn encode_entry(entry: &PartitionIndexEntry, out: &mut Vec<u8>) -> EncodedEntry {
    write_bytes(out, entry.key.key.as_bytes());
    let key = out.len() - entry.key.key.as_bytes().len()..out.len();
    write_tombstone(out, entry.tombstone);
    write_varint(out, entry.block.offset);
    write_varint(out, u64::from(entry.block.len));
    write_varint(out, u64::from(entry.offset_in_block));
    let mut flags = 0;
    if entry.has_static_row {
        flags |= FLAG_STATIC_ROW;
    }
    if entry.clustering.is_some() {
        flags |= FLAG_CLUSTERING;
    }
    if entry.row_index.is_some() {
        flags |= FLAG_ROW_INDEX;
    }
    out.push(flags);
    let tail = out.len();
    if let Some((first, last)) = &entry.clustering {
        write_position(out, first);
        write_position(out, last);
    }
    if let Some(r) = entry.row_index {
        write_varint(out, r.offset);
        write_varint(out, r.len);
    }
    write_varint(out, entry.range_tombstones.len() as u64);
    for rt in &entry.range_tombstones {
        write_position(out, &rt.start);
        write_position(out, &rt.end);
        write_tombstone(out, rt.tombstone);
    }
    write_i64(out, entry.max_timestamp.0);
    EncodedEntry { key, tail, flags }
}

/// Encodes the partition index section.
pub fn encode_partition_index(entries: &[PartitionIndexEntry], out: &mut Vec<u8>) {
    write_varint(out, entries.len() as u64);
    for entry in entries {
        encode_partition_entry(entry, out);
    }
}

/// Decodes the partition index section at file offset `section_offset` into full entries (tools
/// and tests; an open sstable holds the compact [`PartitionIndex`]).
pub fn decode_partition_index(bytes: &[u8], section_offset: u64) -> Result<Vec<PartitionIndexEntry>> {
    PartitionIndex::decode(Bytes::copy_from_slice(bytes), section_offset)?.entries()
}

/// The start of a partition entry, up to and including its flags.
pub(crate) struct EntryHead {
    /// Where the key's bytes lie in the decoded input.
    pub(crate) key: std::ops::Range<usize>,
    pub(crate) tombstone: Tombstone,
    pub(crate) block: BlockHandle,
    pub(crate) offset_in_block: u32,
    pub(crate) flags: u8,
}

/// The rest of a partition entry, after its flags.
pub(crate) struct EntryTail {
    pub(crate) clustering: Option<(Position, Position)>,
    pub(crate) row_index: Option<RowIndexRef>,
    pub(crate) range_tombstones: Vec<RangeTombstone>,
    pub(crate) max_timestamp: Timestamp,
}

pub(crate) fn read_entry_head(r: &mut Reader<'_>) -> Result<EntryHead> {
    let key_len = r.bytes("partition key")?.len();
    let key = r.pos - key_len..r.pos;
    let tombstone = r.tombstone("partition tombstone")?;
    let block = read_handle(r)?;
    let at = r.pos;
    let offset_in_block = u32::try_from(r.varint("offset in block")?).map_err(|_| r.corrupt(at, "offset in block over u32"))?;
    let at = r.pos;
    let flags = r.u8("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(r.corrupt(at, format!("unknown flags {flags:#04x}")));
    }
    Ok(EntryHead { key, tombstone, block, offset_in_block, flags })
}

pub(crate) fn read_entry_tail(r: &mut Reader<'_>, flags: u8) -> Result<EntryTail> {
    let clustering = if flags & FLAG_CLUSTERING != 0 { Some(read_ordered_pair(r, "clustering range")?) } else { None };
    let row_index = if flags & FLAG_ROW_INDEX != 0 {
        Some(RowIndexRef { offset: r.varint("row index offset")?, len: r.varint("row index length")? })
    } else {
        None
    };
    let n = r.count("range tombstone summary", MIN_SUMMARY_BYTES)?;
    if n > RANGE_TOMBSTONE_SUMMARY_LIMIT {
        return Err(r.corrupt(r.pos, format!("{n} summarized range tombstones, at most {RANGE_TOMBSTONE_SUMMARY_LIMIT}")));
    }
    let mut range_tombstones = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.pos;
        let (start, end) = read_ordered_pair(r, "summarized range tombstone")?;
        let tombstone = r.tombstone("summarized range tombstone")?;
        if tombstone.is_none() {
            return Err(r.corrupt(at, "empty summarized range tombstone"));
        }
        range_tombstones.push(RangeTombstone { start, end, tombstone });
    }
    let max_timestamp = Timestamp(r.i64("max timestamp")?);
    Ok(EntryTail { clustering, row_index, range_tombstones, max_timestamp })
}

/// Appends one partition's row index.
pub fn encode_row_index(entries: &[RowIndexEntry], out: &mut Vec<u8>) {
    write_varint(out, entries.len() as u64);
    for e in entries {
        write_varint(out, e.block.offset);
        write_varint(out, u64::from(e.block.len));
        write_position(out, &e.first);
        write_position(out, &e.last);
        write_i64(out, e.max_timestamp.0);
        write_tombstone(out, e.open_tombstone);
    }
}

/// Decodes one partition's row index found at file offset `offset`.
pub fn decode_row_index(bytes: &[u8], offset: u64) -> Result<Vec<RowIndexEntry>> {
    let mut r = Reader { structure: ROW_INDEX, buf: bytes, pos: 0, shared: None };
    let entries = read_row_index(&mut r).map_err(|e| shift(e, offset))?;
    if r.remaining() != 0 {
        return Err(shift(r.corrupt(r.pos, format!("{} trailing byte(s)", r.remaining())), offset));
    }
    Ok(entries)
}

fn read_row_index(r: &mut Reader<'_>) -> Result<Vec<RowIndexEntry>> {
    let n = r.count("row index entry", MIN_ROW_ENTRY_BYTES)?;
    if n < 2 {
        return Err(r.corrupt(0, format!("row index of {n} block(s); a partition in one block has none")));
    }
    let mut entries: Vec<RowIndexEntry> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.pos;
        let block = read_handle(r)?;
        let (first, last) = read_ordered_pair(r, "block positions")?;
        let max_timestamp = Timestamp(r.i64("max timestamp")?);
        let open_tombstone = r.tombstone("open range tombstone")?;
        if let Some(previous) = entries.last() {
            if previous.block.end() > block.offset || previous.last > first {
                return Err(r.corrupt(at, "row index blocks or positions out of order"));
            }
        }
        entries.push(RowIndexEntry { block, first, last, max_timestamp, open_tombstone });
    }
    Ok(entries)
}

fn read_handle(r: &mut Reader<'_>) -> Result<BlockHandle> {
    let start = r.pos;
    let offset = r.varint("block offset")?;
    let at = r.pos;
    let len = u32::try_from(r.varint("block length")?).map_err(|_| r.corrupt(at, "block length over u32"))?;
    if offset.checked_add(u64::from(len) + BLOCK_TRAILER_LEN as u64).is_none() {
        return Err(r.corrupt(start, "block ends past the largest file offset"));
    }
    Ok(BlockHandle { offset, len })
}

fn read_ordered_pair(r: &mut Reader<'_>, what: &str) -> Result<(Position, Position)> {
    let at = r.pos;
    let first = r.position(what)?;
    let last = r.position(what)?;
    if first > last {
        return Err(r.corrupt(at, format!("{what}: start after end")));
    }
    Ok((first, last))
}

/// Rewrites a section-relative corruption offset into a file offset.
pub(crate) fn shift(error: crate::Error, base: u64) -> crate::Error {
    match error {
        crate::Error::Corrupt { structure, offset, reason } => crate::Error::Corrupt {
            structure,
            offset: usize::try_from(base).ok().and_then(|b| b.checked_add(offset)).unwrap_or(usize::MAX),
            reason,
        },
        other => other,
    }
}

/// The fuzz property of the index decoders (fuzz target `sstable_index` and its corpus test). The
/// first byte picks the decoder: even, [`decode_partition_index`]; odd, [`decode_row_index`] (of
/// one partition), both over the rest of the input at file offset 0. Decoding must succeed or
/// fail with an [`Error::Corrupt`] whose offset lies inside the input (never panic), and a
/// successful decode must re-encode to exactly the input (the encoding is canonical).
#[doc(hidden)]
pub fn check_index(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some((&mode, rest)) = bytes.split_first() else { return Ok(()) };
    let mut again = Vec::new();
    let result = if mode % 2 == 0 {
        decode_partition_index(rest, 0).map(|entries| encode_partition_index(&entries, &mut again))
    } else {
        decode_row_index(rest, 0).map(|entries| encode_row_index(&entries, &mut again))
    };
    match result {
        Ok(()) if again == rest => Ok(()),
        Ok(()) => Err(format!("{} byte(s) decoded but re-encode to {} different byte(s)", rest.len(), again.len())),
        Err(Error::Corrupt { offset, .. }) if offset <= rest.len() => Ok(()),
        Err(Error::Corrupt { offset, reason, .. }) => {
            Err(format!("error offset {offset} past the {} byte(s) of input: {reason}", rest.len()))
        }
        Err(other) => Err(format!("untyped error {other:?}")),
    }
}
