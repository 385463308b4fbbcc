//! The partition index of an open sstable, held compactly in memory (`docs/format.md`,
//! "Partition index").
//!
//! Opening an sstable decodes and checks every entry of the section once, but keeps only a
//! fixed-size slot per partition (its token, where its key lies in the section, its tombstone,
//! block, offset in the block, flags and highest timestamp) next to the section's bytes. The keys
//! are slices of those bytes (no copy), and the variable-length rest of an entry (clustering
//! range, row index reference, range tombstone summary) is decoded again from the bytes when a
//! read needs it. So a partition costs one slot, with no allocation of its own, whatever the key
//! and the entry hold.
//!
//! Invariants: every slot was decoded from `bytes` by [`PartitionIndex::decode`], which checks the
//! whole section (the same rules as the format), so a slot's ranges lie inside `bytes` and
//! decoding an entry's rest again succeeds. Thread-safety: immutable after decoding, `Send + Sync`.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::error::Result;
use crate::mutation_codec::{write_varint, Reader};
use crate::partition_key::{DecoratedKey, PartitionKey};
use crate::sstable::block::BlockHandle;
use crate::sstable::index::{
    encode_entry, read_entry_head, read_entry_tail, shift, EntryTail, PartitionIndexEntry, RowIndexRef, FLAG_CLUSTERING, FLAG_ROW_INDEX,
    FLAG_STATIC_ROW, MIN_PARTITION_ENTRY_BYTES, PARTITION_INDEX,
};
use crate::sstable::token_search::TokenDirectory;
use crate::time::Timestamp;
use crate::token::Token;
use crate::tombstone::Tombstone;

/// What the index keeps of one partition: one cache line, so a point read that finds a
/// partition through the token directory touches one line for everything it needs of the entry
/// (token, flags, tombstone, block, offset). Offsets into the section are `u32`: a section is at
/// most [`MAX_SECTION_BYTES`] (the decoder and the builder refuse larger ones).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Slot {
    token: Token,
    /// The file offset of the partition's first block.
    block_offset: u64,
    tombstone: Tombstone,
    max_timestamp: Timestamp,
    /// The key's bytes are `bytes[key_start..key_end]`.
    key_start: u32,
    key_end: u32,
    /// Where the entry's rest (after the flags) starts in `bytes`.
    tail: u32,
    /// The stored length of the partition's first block.
    block_len: u32,
    offset_in_block: u32,
    flags: u8,
}

/// The largest partition index section, in bytes (slots hold `u32` offsets into it): 4 GiB, some
/// hundred million partitions in one sstable.
pub const MAX_SECTION_BYTES: usize = u32::MAX as usize;

impl Slot {
    /// The slot of an entry at offsets `key` and `tail` of its section (both within
    /// [`MAX_SECTION_BYTES`], checked by the callers).
    #[allow(clippy::too_many_arguments)]
    fn new(
        token: Token,
        key: std::ops::Range<usize>,
        tail: usize,
        tombstone: Tombstone,
        block: BlockHandle,
        offset_in_block: u32,
        flags: u8,
        max_timestamp: Timestamp,
    ) -> Slot {
        let narrow = |offset: usize| u32::try_from(offset).unwrap_or(u32::MAX);
        Slot {
            token,
            block_offset: block.offset,
            tombstone,
            max_timestamp,
            key_start: narrow(key.start),
            key_end: narrow(key.end),
            tail: narrow(tail),
            block_len: block.len,
            offset_in_block,
            flags,
        }
    }

    fn key(&self) -> std::ops::Range<usize> {
        self.key_start as usize..self.key_end as usize
    }

    fn block(&self) -> BlockHandle {
        BlockHandle { offset: self.block_offset, len: self.block_len }
    }
}

/// The decoded partition index section of an sstable: one compact slot per partition, in
/// (token, key) order.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionIndex {
    bytes: Bytes,
    /// File offset of the section (for corruption offsets).
    section_offset: u64,
    slots: Vec<Slot>,
    /// Where each bucket of leading token bits starts in `slots`.
    directory: TokenDirectory,
    reach: Reach,
}

/// The largest block end and row index end (from the row index section's start) the entries
/// name, so the reader can check them against the file once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Reach {
    block_end: u64,
    row_index_end: u64,
}

impl Reach {
    fn note(&mut self, block: BlockHandle, row_index: Option<RowIndexRef>) {
        self.block_end = self.block_end.max(block.end());
        if let Some(ri) = row_index {
            self.row_index_end = self.row_index_end.max(ri.offset.saturating_add(ri.len));
        }
    }
}

impl PartitionIndex {
    /// Decodes and checks the partition index section `bytes`, found at file offset
    /// `section_offset`. Errors are [`crate::Error::Corrupt`] with the file offset of the bad
    /// field (the rules of `docs/format.md`).
    pub fn decode(bytes: Bytes, section_offset: u64) -> Result<PartitionIndex> {
        let mut r = Reader { structure: PARTITION_INDEX, buf: &bytes, pos: 0, shared: None };
        if bytes.len() > MAX_SECTION_BYTES {
            return Err(shift(
                r.corrupt(0, format!("section of {} bytes, over the {MAX_SECTION_BYTES} limit", bytes.len())),
                section_offset,
            ));
        }
        let n = r.count("partition entry", MIN_PARTITION_ENTRY_BYTES).map_err(|e| shift(e, section_offset))?;
        let mut slots: Vec<Slot> = Vec::with_capacity(n);
        let mut reach = Reach::default();
        for _ in 0..n {
            let at = r.pos;
            let head = read_entry_head(&mut r).map_err(|e| shift(e, section_offset))?;
            let tail = r.pos;
            let EntryTail { row_index, max_timestamp, .. } = read_entry_tail(&mut r, head.flags).map_err(|e| shift(e, section_offset))?;
            let key = &bytes[head.key.clone()];
            let slot =
                Slot::new(Token::of(key), head.key, tail, head.tombstone, head.block, head.offset_in_block, head.flags, max_timestamp);
            if let Some(previous) = slots.last() {
                let order = previous.token.cmp(&slot.token).then_with(|| bytes[previous.key()].cmp(key));
                if order != Ordering::Less {
                    return Err(shift(r.corrupt(at, "partitions not in strictly increasing (token, key) order"), section_offset));
                }
            }
            reach.note(head.block, row_index);
            slots.push(slot);
        }
        if r.remaining() != 0 {
            return Err(shift(r.corrupt(r.pos, format!("{} trailing byte(s)", r.remaining())), section_offset));
        }
        Ok(PartitionIndex::with_slots(bytes, section_offset, slots, reach))
    }

    fn with_slots(bytes: Bytes, section_offset: u64, slots: Vec<Slot>, reach: Reach) -> PartitionIndex {
        let directory = TokenDirectory::build(&slots, |s| s.token.0);
        PartitionIndex { bytes, section_offset, slots, directory, reach }
    }

    /// The section's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same index over `bytes`, when they equal its own (the section as read back from the
    /// file the index was written to): the index then shares them instead of its copy.
    pub fn over(self, bytes: Bytes, section_offset: u64) -> Option<PartitionIndex> {
        (bytes == self.bytes && section_offset == self.section_offset).then_some(PartitionIndex { bytes, ..self })
    }

    /// The number of partitions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the sstable holds no partition.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The partition at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<IndexedPartition<'_>> {
        self.slots.get(index).map(|slot| IndexedPartition { index: self, slot })
    }

    /// The partitions in order.
    pub fn iter(&self) -> impl Iterator<Item = IndexedPartition<'_>> + '_ {
        self.slots.iter().map(|slot| IndexedPartition { index: self, slot })
    }

    /// Every entry in full, in order.
    pub fn entries(&self) -> Result<Vec<PartitionIndexEntry>> {
        self.iter().map(|p| p.entry()).collect()
    }

    /// Search for `key`: `Ok(index)` when present, `Err(insertion point)` otherwise.
    pub fn search(&self, key: &DecoratedKey) -> std::result::Result<usize, usize> {
        self.search_among(key, self.token_range(key.token))
    }

    /// The indexes of the partitions whose token is `token` (empty, at the insertion point, when
    /// there is none), found from the tokens alone.
    pub fn token_range(&self, token: Token) -> std::ops::Range<usize> {
        let start = self.directory.lower_bound(&self.slots, token.0, |s| s.token.0);
        let same = self.slots.get(start..).map_or(0, |rest| rest.iter().take_while(|s| s.token == token).count());
        start..start + same
    }

    /// [`PartitionIndex::search`] among `candidates`, the [`PartitionIndex::token_range`] of the
    /// key's token.
    pub fn search_among(&self, key: &DecoratedKey, candidates: std::ops::Range<usize>) -> std::result::Result<usize, usize> {
        // Partitions sharing the token (a hash collision) are ordered by key bytes.
        for i in candidates.clone() {
            let Some(slot) = self.slots.get(i) else { break };
            match self.key_bytes(slot).cmp(key.key.as_bytes()) {
                Ordering::Less => {}
                Ordering::Equal => return Ok(i),
                Ordering::Greater => return Err(i),
            }
        }
        Err(candidates.end)
    }

    /// The number of leading partitions for which `before(partition key vs key)` holds, given
    /// that it holds for a prefix of the partitions (as `slice::partition_point`).
    pub fn partition_point(&self, key: &DecoratedKey, before: impl Fn(Ordering) -> bool) -> usize {
        self.slots.partition_point(|slot| before(self.compare(slot, key)))
    }

    /// The largest block end any entry names.
    pub(crate) fn block_end(&self) -> u64 {
        self.reach.block_end
    }

    /// The largest end (from the row index section's start) of a row index any entry names.
    pub(crate) fn row_index_end(&self) -> u64 {
        self.reach.row_index_end
    }

    fn key_bytes(&self, slot: &Slot) -> &[u8] {
        // Cannot panic: decode took the range from these bytes.
        &self.bytes[slot.key()]
    }

    /// The slot's key against `key`, in (token, key bytes) order.
    fn compare(&self, slot: &Slot, key: &DecoratedKey) -> Ordering {
        slot.token.cmp(&key.token).then_with(|| self.key_bytes(slot).cmp(&key.key.as_bytes()[..]))
    }
}

/// Builds a partition index section, and its [`PartitionIndex`], entry by entry (the sstable
/// writer), so the file's reader need not decode the section again.
#[derive(Debug)]
pub(crate) struct PartitionIndexBuilder {
    /// [`COUNT_ROOM`] bytes left for the entry count, then the encoded entries.
    bytes: Vec<u8>,
    /// Slots with offsets into `bytes`.
    slots: Vec<Slot>,
    reach: Reach,
}

/// Room for the entry count (a `u64` varint takes at most 10 bytes).
const COUNT_ROOM: usize = 10;

impl PartitionIndexBuilder {
    pub(crate) fn new() -> PartitionIndexBuilder {
        PartitionIndexBuilder { bytes: vec![0; COUNT_ROOM], slots: Vec::new(), reach: Reach::default() }
    }

    /// Makes room for `partitions` more entries of about `entry_bytes` encoded bytes each, so
    /// the index grows without copying itself (and faulting in fresh pages) at every doubling.
    pub(crate) fn reserve(&mut self, partitions: usize, entry_bytes: usize) {
        self.slots.reserve(partitions);
        self.bytes.reserve(partitions.saturating_mul(entry_bytes));
    }

    /// Appends the next entry (entries come in (token, key) order).
    pub(crate) fn push(&mut self, entry: &PartitionIndexEntry) {
        let encoded = encode_entry(entry, &mut self.bytes);
        self.reach.note(entry.block, entry.row_index);
        // Offsets past MAX_SECTION_BYTES saturate here and fail `finish`.
        self.slots.push(Slot::new(
            entry.key.token,
            encoded.key,
            encoded.tail,
            entry.tombstone,
            entry.block,
            entry.offset_in_block,
            encoded.flags,
            entry.max_timestamp,
        ));
    }

    /// The finished index, whose bytes are the section to write at file offset `section_offset`.
    /// Fails with [`crate::Error::TooLarge`] when the section is over [`MAX_SECTION_BYTES`].
    pub(crate) fn finish(mut self, section_offset: u64) -> Result<PartitionIndex> {
        if self.bytes.len() > MAX_SECTION_BYTES {
            return Err(crate::Error::TooLarge {
                what: "the partition index section of one sstable".into(),
                size: self.bytes.len(),
                limit: MAX_SECTION_BYTES,
            });
        }
        let mut count = Vec::with_capacity(COUNT_ROOM);
        write_varint(&mut count, self.slots.len() as u64);
        let start = COUNT_ROOM - count.len();
        self.bytes[start..COUNT_ROOM].copy_from_slice(&count);
        // Every offset is past the room (the entries follow it), so none underflows; `start` is
        // below COUNT_ROOM.
        let shift = start as u32;
        for slot in &mut self.slots {
            slot.key_start -= shift;
            slot.key_end -= shift;
            slot.tail -= shift;
        }
        let bytes = Bytes::from(self.bytes).slice(start..);
        Ok(PartitionIndex::with_slots(bytes, section_offset, self.slots, self.reach))
    }
}

/// One partition of a [`PartitionIndex`].
#[derive(Debug, Clone, Copy)]
pub struct IndexedPartition<'a> {
    index: &'a PartitionIndex,
    slot: &'a Slot,
}

impl IndexedPartition<'_> {
    /// The partition key (its bytes shared with the index, not copied).
    pub fn key(&self) -> DecoratedKey {
        // Cannot panic: decode took the range from these bytes.
        let bytes = self.index.bytes.slice(self.slot.key());
        DecoratedKey { token: self.slot.token, key: PartitionKey::from_legacy_bytes(bytes) }
    }

    /// The key's legacy-form bytes.
    pub fn key_bytes(&self) -> &[u8] {
        self.index.key_bytes(self.slot)
    }

    /// The key's token.
    pub fn token(&self) -> Token {
        self.slot.token
    }

    /// This partition's key against `key`, in (token, key bytes) order.
    pub fn cmp_key(&self, key: &DecoratedKey) -> Ordering {
        self.index.compare(self.slot, key)
    }

    /// The partition tombstone.
    pub fn tombstone(&self) -> Tombstone {
        self.slot.tombstone
    }

    /// The block holding the partition's start.
    pub fn block(&self) -> BlockHandle {
        self.slot.block()
    }

    /// Byte offset of the partition's start in that block's content.
    pub fn offset_in_block(&self) -> u32 {
        self.slot.offset_in_block
    }

    /// Whether the partition has a static row.
    pub fn has_static_row(&self) -> bool {
        self.slot.flags & FLAG_STATIC_ROW != 0
    }

    /// Whether the partition has clustering fragments (rows or range tombstone changes).
    pub fn has_clustering(&self) -> bool {
        self.slot.flags & FLAG_CLUSTERING != 0
    }

    /// Whether the partition spans several blocks and has a row index.
    pub fn has_row_index(&self) -> bool {
        self.slot.flags & FLAG_ROW_INDEX != 0
    }

    /// The highest timestamp of anything in the partition (tombstones included).
    pub fn max_timestamp(&self) -> Timestamp {
        self.slot.max_timestamp
    }

    /// The full entry: the slot with the rest decoded again from the section (which was checked
    /// when the index was decoded, so this fails only if memory changed under it).
    pub fn entry(&self) -> Result<PartitionIndexEntry> {
        let index = self.index;
        let mut r = Reader { structure: PARTITION_INDEX, buf: &index.bytes, pos: self.slot.tail as usize, shared: None };
        let tail = read_entry_tail(&mut r, self.slot.flags).map_err(|e| shift(e, index.section_offset))?;
        Ok(PartitionIndexEntry {
            key: self.key(),
            tombstone: self.slot.tombstone,
            block: self.slot.block(),
            offset_in_block: self.slot.offset_in_block,
            has_static_row: self.has_static_row(),
            clustering: tail.clustering,
            max_timestamp: tail.max_timestamp,
            range_tombstones: tail.range_tombstones,
            row_index: tail.row_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    /// A slot is one cache line, aligned to one (the module's claim for point reads).
    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!((std::mem::size_of::<Slot>(), std::mem::align_of::<Slot>()), (64, 64));
    }
}
