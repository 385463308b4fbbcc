//! Reads one sstable: opens its footer and metadata sections, answers "is this partition here"
//! from the bloom filter and the partition index, and streams partitions as fragments, seeking
//! with the row index and skipping blocks a [`ReadPlan`] proves useless.
//!
//! Opening reads the footer, then each metadata section, verifying its checksum before decoding
//! it. Data blocks are read on demand through the [`BlockCache`] (when given) and verified on every
//! read that misses it. Any failure is an [`Error::Corrupt`] naming the structure and the file
//! offset; a stream ends after its first error.
//!
//! **Skipping** (DESIGN §5): a block of a partition is skipped when it holds no position of the
//! plan's clustering ranges, or when one of the plan's covering tombstones spans the block's
//! positions with a timestamp at or above the block's highest timestamp (every item in it is then
//! shadowed). A skipped block is replaced by one change, where its data ends, to the tombstone
//! open at the next block's start (recorded in the row index), so the stream stays valid and every
//! gap between blocks carries the right tombstone; the tombstone left active over the skipped span
//! is older than the covering one, or lies outside the clustering ranges, so no result changes.
//!
//! Thread-safety: [`SstableReader`] is immutable and `Send + Sync`; streams hold an `Arc` of it.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{self, AtomicU64};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fragment::Fragment;
use crate::partition_key::DecoratedKey;
use crate::position::Position;
use crate::range_tombstone::RangeTombstoneChange;
use crate::sstable::block::{decode_fragment, decode_fragment_shared, decode_partition_start, read_block, BlockHandle, BLOCK_TRAILER_LEN};
use crate::sstable::bloom::{key_hash, BloomFilter};
use crate::sstable::footer::{Footer, Section, FOOTER_LEN};
use crate::sstable::index::{decode_row_index, PartitionIndexEntry, RowIndexEntry};
use crate::sstable::partition_index::{IndexedPartition, PartitionIndex};
use crate::sstable::read_ahead::{AheadSlot, BlockSequence, ReadAhead};
use crate::sstable::statistics::Statistics;
use crate::sstable::{BlockCache, SstableSource};
use crate::tombstone::Tombstone;

mod plan;
mod point;
pub use self::plan::ReadPlan;
pub use self::point::RowVersion;

/// Counts what reads touched; shared by the streams of one query.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Data blocks read (from the cache or the file).
    pub blocks_read: AtomicU64,
    /// Data blocks served by the block cache.
    pub block_cache_hits: AtomicU64,
    /// Data blocks a plan let the reader skip.
    pub blocks_skipped: AtomicU64,
}

/// The answer of [`SstableReader::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The key sorts before the first or after the last partition.
    OutsideKeyRange,
    /// The bloom filter rules the key out.
    FilteredOut,
    /// The filter admitted the key (a false positive) but the partition index lacks it.
    Absent,
    /// The partition is at this index of [`SstableReader::partitions`].
    Found(usize),
}

/// An open sstable.
pub struct SstableReader {
    source: Arc<dyn SstableSource>,
    footer: Footer,
    partitions: PartitionIndex,
    filter: BloomFilter,
    statistics: Statistics,
    cache: Option<Arc<dyn BlockCache>>,
}

impl std::fmt::Debug for SstableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SstableReader").field("file_id", &self.footer.file_id).field("partitions", &self.partitions.len()).finish()
    }
}

/// A failed read of the file: an I/O error, not corruption (the caller must not quarantine).
fn io_error(offset: u64, e: std::io::Error) -> Error {
    Error::Io(format!("reading at offset {offset}: {e}"))
}

impl SstableReader {
    /// Opens the sstable in `source`; `expected_file_id` (the generation the engine knows it by)
    /// is checked against the footer.
    pub fn open(
        source: Arc<dyn SstableSource>,
        expected_file_id: Option<u64>,
        cache: Option<Arc<dyn BlockCache>>,
    ) -> Result<SstableReader> {
        SstableReader::open_with(source, expected_file_id, cache, None)
    }

    /// Opens an sstable this process has just written, taking its partition index from the
    /// writer ([`crate::sstable::writer::WrittenSstable::index`]) instead of decoding the section
    /// again. The section is still read and verified, and must hold the index's exact bytes (the
    /// index then shares them); otherwise it is decoded as by [`SstableReader::open`].
    pub fn open_written(
        source: Arc<dyn SstableSource>,
        expected_file_id: Option<u64>,
        cache: Option<Arc<dyn BlockCache>>,
        index: PartitionIndex,
    ) -> Result<SstableReader> {
        SstableReader::open_with(source, expected_file_id, cache, Some(index))
    }

    fn open_with(
        source: Arc<dyn SstableSource>,
        expected_file_id: Option<u64>,
        cache: Option<Arc<dyn BlockCache>>,
        written: Option<PartitionIndex>,
    ) -> Result<SstableReader> {
        let len = source.len();
        let footer_offset = len.saturating_sub(FOOTER_LEN as u64);
        let footer_bytes = if len < FOOTER_LEN as u64 { Bytes::new() } else { read(&*source, footer_offset, FOOTER_LEN)? };
        let footer = Footer::decode(&footer_bytes, len, expected_file_id)?;
        let section = |s: &Section, structure: &'static str| -> Result<Bytes> {
            let len = usize::try_from(s.len).map_err(|_| io_error(s.offset, std::io::ErrorKind::InvalidData.into()))?;
            let bytes = read(&*source, s.offset, len)?;
            s.verify(&bytes, footer.file_id, structure)?;
            Ok(bytes)
        };
        let index_bytes = section(&footer.partition_index, "sstable partition index")?;
        let index_offset = footer.partition_index.offset;
        let partitions = match written.and_then(|index| index.over(index_bytes.clone(), index_offset)) {
            Some(index) => index,
            None => PartitionIndex::decode(index_bytes, index_offset)?,
        };
        let filter = BloomFilter::decode(&section(&footer.filter, "bloom filter")?)
            .map_err(|e| crate::sstable::index::shift(e, footer.filter.offset))?;
        let statistics = Statistics::decode(&section(&footer.statistics, "sstable statistics")?)
            .map_err(|e| crate::sstable::index::shift(e, footer.statistics.offset))?;
        // The row index section is verified here once; partitions decode their part lazily.
        section(&footer.row_index, "sstable row index")?;
        let data_end = footer.data_end();
        if partitions.block_end() > data_end || partitions.row_index_end() > footer.row_index.len {
            return Err(Error::Corrupt {
                structure: "sstable partition index",
                offset: usize::try_from(footer.partition_index.offset).unwrap_or(usize::MAX),
                reason: "an entry points outside its section".into(),
            });
        }
        Ok(SstableReader { source, footer, partitions, filter, statistics, cache })
    }

    /// The file id the checksums are bound to.
    pub fn file_id(&self) -> u64 {
        self.footer.file_id
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The statistics.
    pub fn statistics(&self) -> &Statistics {
        &self.statistics
    }

    /// The partition index, in (token, key) order.
    pub fn partitions(&self) -> &PartitionIndex {
        &self.partitions
    }

    /// The file's length.
    pub fn file_len(&self) -> u64 {
        self.source.len()
    }

    /// The partition `key`, when this sstable holds it. A key outside the key range or rejected by
    /// the bloom filter costs no index search and no data block.
    pub fn find(&self, key: &DecoratedKey) -> Option<IndexedPartition<'_>> {
        self.find_index(key).and_then(|i| self.partitions.get(i))
    }

    /// [`SstableReader::find`], as an index into [`SstableReader::partitions`].
    pub fn find_index(&self, key: &DecoratedKey) -> Option<usize> {
        match self.lookup(key) {
            Lookup::Found(i) => Some(i),
            Lookup::OutsideKeyRange | Lookup::FilteredOut | Lookup::Absent => None,
        }
    }

    /// Where `key` is, and what answered: the key range and the bloom filter answer without a
    /// search of the partition index.
    pub fn lookup(&self, key: &DecoratedKey) -> Lookup {
        match self.screen(key) {
            Some(rejected) => rejected,
            None => self.partitions.search(key).map_or(Lookup::Absent, Lookup::Found),
        }
    }

    /// What rules `key` out without a search of the partition index: the key range
    /// ([`Lookup::OutsideKeyRange`]) or the bloom filter ([`Lookup::FilteredOut`]); `None` when
    /// neither does.
    fn screen(&self, key: &DecoratedKey) -> Option<Lookup> {
        let (Some(first), Some(last)) = (self.partitions.get(0), self.partitions.len().checked_sub(1).and_then(|i| self.partitions.get(i)))
        else {
            return Some(Lookup::OutsideKeyRange);
        };
        if first.cmp_key(key).is_gt() || last.cmp_key(key).is_lt() {
            return Some(Lookup::OutsideKeyRange);
        }
        if !self.filter.may_contain(key_hash(key.key.as_bytes())) {
            return Some(Lookup::FilteredOut);
        }
        None
    }

    /// Whether the bloom filter admits `key` (no false negatives).
    pub fn filter_admits(&self, key: &DecoratedKey) -> bool {
        self.filter.may_contain(key_hash(key.key.as_bytes()))
    }

    /// Indexes (into [`SstableReader::partitions`]) of the partitions within `bounds`.
    pub fn range(&self, bounds: (Bound<&DecoratedKey>, Bound<&DecoratedKey>)) -> std::ops::Range<usize> {
        let start = match bounds.0 {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.partitions.partition_point(k, Ordering::is_lt),
            Bound::Excluded(k) => self.partitions.partition_point(k, Ordering::is_le),
        };
        let end = match bounds.1 {
            Bound::Unbounded => self.partitions.len(),
            Bound::Included(k) => self.partitions.partition_point(k, Ordering::is_le),
            Bound::Excluded(k) => self.partitions.partition_point(k, Ordering::is_lt),
        };
        start..end.max(start)
    }

    /// The row index of a wide partition (empty for a partition in one block), from the block
    /// cache when it holds it.
    pub fn row_index(&self, entry: &PartitionIndexEntry) -> Result<Vec<RowIndexEntry>> {
        self.row_index_filling(entry, false)
    }

    /// [`SstableReader::row_index`], entering the index's bytes into the block cache when
    /// `fill_cache` (a point read into a wide partition then reads no file for its index). The
    /// cache key is the index's file offset, in the row index section, so it never meets a data
    /// block's.
    fn row_index_filling(&self, entry: &PartitionIndexEntry, fill_cache: bool) -> Result<Vec<RowIndexEntry>> {
        let Some(r) = entry.row_index else { return Ok(Vec::new()) };
        let offset = self.footer.row_index.offset + r.offset;
        let len = usize::try_from(r.len).map_err(|_| io_error(offset, std::io::ErrorKind::InvalidData.into()))?;
        let file_id = self.footer.file_id;
        let bytes = match self.cache.as_ref().and_then(|c| c.get(file_id, offset)) {
            Some(bytes) => bytes,
            None => {
                let bytes = read(&*self.source, offset, len)?;
                if let Some(cache) = self.cache.as_ref().filter(|_| fill_cache) {
                    cache.insert(file_id, offset, bytes.clone());
                }
                bytes
            }
        };
        decode_row_index(&bytes, offset)
    }

    /// Every distinct data block the indexes name, in file order (for tools and tests that walk
    /// the data region; reads never need it).
    pub fn block_handles(&self) -> Result<Vec<BlockHandle>> {
        let mut handles = Vec::with_capacity(self.partitions.len());
        for p in self.partitions.iter() {
            handles.push(p.block());
            if p.has_row_index() {
                handles.extend(self.row_index(&p.entry()?)?.iter().map(|r| r.block));
            }
        }
        handles.sort_by_key(|h| h.offset);
        handles.dedup();
        Ok(handles)
    }

    /// The verified content of the block at `handle`.
    pub fn block(&self, handle: BlockHandle, counters: &ReadCounters) -> Result<Bytes> {
        self.block_filling(handle, counters, true)
    }

    /// [`SstableReader::block`]; a block read from the file enters the cache only if `fill_cache`.
    pub(crate) fn block_filling(&self, handle: BlockHandle, counters: &ReadCounters, fill_cache: bool) -> Result<Bytes> {
        counters.blocks_read.fetch_add(1, atomic::Ordering::Relaxed);
        if let Some(content) = self.cache.as_ref().and_then(|c| c.get(self.footer.file_id, handle.offset)) {
            counters.block_cache_hits.fetch_add(1, atomic::Ordering::Relaxed);
            return Ok(content);
        }
        if handle.end() > self.footer.data_end() {
            return Err(Error::Corrupt {
                structure: "sstable data block",
                offset: usize::try_from(handle.offset).unwrap_or(usize::MAX),
                reason: format!("block ends at {}, past the data end {}", handle.end(), self.footer.data_end()),
            });
        }
        let bytes = read(&*self.source, handle.offset, handle.len as usize + BLOCK_TRAILER_LEN)?;
        let content = read_block(&bytes, handle, self.footer.file_id)?;
        if let Some(cache) = self.cache.as_ref().filter(|_| fill_cache) {
            cache.insert(self.footer.file_id, handle.offset, content.clone());
        }
        Ok(content)
    }

    /// Streams the partitions with indexes in `partitions` (see [`SstableReader::range`]) through
    /// `plan`.
    pub fn stream(self: &Arc<Self>, partitions: std::ops::Range<usize>, plan: Arc<ReadPlan>, counters: Arc<ReadCounters>) -> SstableStream {
        SstableStream {
            reader: self.clone(),
            next: partitions.start,
            end: partitions.end,
            reads_every_block: plan.reads_every_block(),
            plan,
            counters,
            current: None,
            last_block: None,
            ahead: None,
            sharing: false,
            failed: false,
        }
    }

    /// Streams the partition at index `index` of the partition index through `plan`.
    pub fn stream_partition(self: &Arc<Self>, index: usize, plan: Arc<ReadPlan>, counters: Arc<ReadCounters>) -> SstableStream {
        self.stream(index..index + 1, plan, counters)
    }
}

fn read(source: &dyn SstableSource, offset: u64, len: usize) -> Result<Bytes> {
    source.read_at(offset, len).map_err(|e| io_error(offset, e))
}

/// Where a partition read stands.
struct PartitionCursor {
    entry: usize,
    /// The row index of a partition spread over several blocks; `None` for a partition in one
    /// block, whose only block (when it has clustering fragments) the index entry describes.
    wide: Option<Vec<RowIndexEntry>>,
    /// How many blocks hold the partition's clustering fragments.
    blocks: usize,
    /// Next block to consider.
    block: usize,
    /// The block being decoded and the byte where decoding resumes.
    content: Option<(Bytes, usize, u64)>,
    active: Tombstone,
    started: bool,
    /// The partition's last block was read, so its end must come from the data.
    read_last: bool,
}

/// The fragments of a range of an sstable's partitions.
pub struct SstableStream {
    reader: Arc<SstableReader>,
    next: usize,
    end: usize,
    plan: Arc<ReadPlan>,
    /// [`ReadPlan::reads_every_block`], computed once.
    reads_every_block: bool,
    counters: Arc<ReadCounters>,
    current: Option<PartitionCursor>,
    /// The last block read, reused by the next partition that starts in it.
    last_block: Option<(u64, Bytes)>,
    /// Where the blocks come from when they are read ahead ([`SstableStream::read_ahead`]).
    ahead: Option<AheadSlot>,
    /// Whether fragments share their block's memory ([`SstableStream::sharing_blocks`]).
    sharing: bool,
    failed: bool,
}

/// Where the tombstone state after a fragment at `last` begins.
fn end_of(last: &Position) -> Position {
    if last.is_row() {
        Position::after_key(last.prefix().clone())
    } else {
        last.clone()
    }
}

impl SstableStream {
    /// Has `ahead`'s helper thread read and decompress this stream's blocks ahead of it, when the
    /// plan reads every block (a compaction's); otherwise the stream is returned as it is. The
    /// fragments are the same either way (see [`crate::sstable::read_ahead`]).
    pub fn read_ahead(mut self, ahead: &ReadAhead) -> SstableStream {
        if self.reads_every_block && self.current.is_none() && self.last_block.is_none() {
            let (reader, counters) = (self.reader.clone(), self.counters.clone());
            let sequence = BlockSequence::new(reader, self.next..self.end, self.plan.static_row, self.plan.fill_cache, counters);
            self.ahead = Some(ahead.register(sequence));
        }
        self
    }

    /// Has the stream's fragments hold their cell values and clustering keys as slices of the
    /// block they were decoded from instead of copies (see
    /// [`crate::sstable::block::decode_fragment_shared`]): cheaper, but a fragment kept alive keeps
    /// its whole block (a few KiB) alive. For consumers that drop fragments soon, like a
    /// compaction; the fragments are equal either way.
    pub fn sharing_blocks(mut self) -> SstableStream {
        self.sharing = true;
        self
    }

    /// Whether the stream still takes its blocks from a read-ahead (it leaves it when out of step
    /// with it, on an error, or once it closes).
    pub fn reads_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    fn load(&mut self, handle: BlockHandle) -> Result<Bytes> {
        if let Some((offset, content)) = &self.last_block {
            if *offset == handle.offset {
                return Ok(content.clone());
            }
        }
        let ahead = self.ahead.as_ref().and_then(AheadSlot::next);
        let content = match ahead {
            Some(Ok((offset, content))) if offset == handle.offset => content,
            // Out of step with the helper, a failure of the helper's read (the stream meets it
            // again where it would have), or the helper stopped: read every block from here on.
            _ => {
                self.ahead = None;
                self.reader.block_filling(handle, &self.counters, self.plan.fill_cache)?
            }
        };
        self.last_block = Some((handle.offset, content.clone()));
        Ok(content)
    }

    fn begin_partition(&mut self, index: usize) -> Result<PartitionCursor> {
        let Some(p) = self.reader.partitions.get(index) else {
            return Err(Error::InvalidStream(format!("partition {index} past the index")));
        };
        let (wide, blocks) = if p.has_row_index() {
            let blocks = self.reader.row_index_filling(&p.entry()?, self.plan.fill_cache)?;
            let n = blocks.len();
            (Some(blocks), n)
        } else {
            (None, usize::from(p.has_clustering()))
        };
        Ok(PartitionCursor {
            entry: index,
            wide,
            blocks,
            block: 0,
            content: None,
            active: Tombstone::NONE,
            started: false,
            read_last: false,
        })
    }

    fn step(&mut self) -> Result<Option<Fragment>> {
        loop {
            let Some(cursor) = self.current.as_mut() else {
                if self.next >= self.end {
                    return Ok(None);
                }
                let index = self.next;
                self.next += 1;
                let cursor = self.begin_partition(index)?;
                self.current = Some(cursor);
                continue;
            };
            let Some(entry) = self.reader.partitions.get(cursor.entry) else {
                return Err(Error::InvalidStream(format!("partition {} past the index", cursor.entry)));
            };
            if !cursor.started {
                cursor.started = true;
                return Ok(Some(Fragment::PartitionStart { key: entry.key(), tombstone: entry.tombstone() }));
            }
            if let Some((content, pos, offset)) = cursor.content.as_mut() {
                if *pos >= content.len() {
                    cursor.content = None;
                    continue;
                }
                if let Some((key, _)) = decode_partition_start(content, pos, *offset)? {
                    if key != entry.key_bytes() {
                        return Err(Error::Corrupt {
                            structure: "sstable data block",
                            offset: usize::try_from(*offset).unwrap_or(usize::MAX),
                            reason: "partition start does not match the partition index".into(),
                        });
                    }
                    continue;
                }
                let fragment =
                    if self.sharing { decode_fragment_shared(content, pos, *offset)? } else { decode_fragment(content, pos, *offset)? };
                match &fragment {
                    Fragment::StaticRow(_) if !self.plan.static_row => continue,
                    Fragment::PartitionEnd => self.current = None,
                    Fragment::RangeTombstoneChange(c) => cursor.active = c.tombstone,
                    _ => {}
                }
                return Ok(Some(fragment));
            }
            // Between blocks: pick the next one to read, skipping what the plan allows.
            if cursor.block >= cursor.blocks {
                let needs_static = entry.has_static_row() && self.plan.static_row && cursor.block == 0;
                if needs_static {
                    // No clustering fragment at all: read the block for the static row.
                    cursor.block = 1;
                    cursor.read_last = true;
                    let (handle, start) = (entry.block(), entry.offset_in_block() as usize);
                    let content = self.load(handle)?;
                    if let Some(c) = self.current.as_mut() {
                        c.content = Some((content, start, handle.offset));
                    }
                    continue;
                }
                if cursor.read_last {
                    return Err(Error::Corrupt {
                        structure: "sstable data block",
                        offset: usize::try_from(entry.block().offset).unwrap_or(usize::MAX),
                        reason: "the partition's last block does not end it".into(),
                    });
                }
                // The partition's last block was skipped (its end closed any tombstone) or it had none.
                self.current = None;
                return Ok(Some(Fragment::PartitionEnd));
            }
            let first_block = cursor.block == 0;
            let must_read = self.reads_every_block || (first_block && entry.has_static_row() && self.plan.static_row);
            if !must_read {
                let block = match &cursor.wide {
                    Some(blocks) => blocks.get(cursor.block).cloned(),
                    None => entry.entry()?.clustering.map(|(first, last)| RowIndexEntry {
                        block: entry.block(),
                        first,
                        last,
                        max_timestamp: entry.max_timestamp(),
                        open_tombstone: Tombstone::NONE,
                    }),
                };
                if let Some(block) = block.filter(|b| self.plan.skips(b)) {
                    // The state after the skipped block is the one open at the next block's start
                    // (none after the partition's last block): set it where the block's data ends,
                    // so every gap between blocks carries the right tombstone.
                    self.counters.blocks_skipped.fetch_add(1, atomic::Ordering::Relaxed);
                    let after = cursor.wide.as_ref().and_then(|b| b.get(cursor.block + 1)).map_or(Tombstone::NONE, |b| b.open_tombstone);
                    cursor.block += 1;
                    if after != cursor.active {
                        cursor.active = after;
                        return Ok(Some(rtc(end_of(&block.last), after)));
                    }
                    continue;
                }
            }
            let handle = match &cursor.wide {
                Some(blocks) => blocks.get(cursor.block).map_or(entry.block(), |b| b.block),
                None => entry.block(),
            };
            cursor.block += 1;
            cursor.read_last = cursor.block == cursor.blocks;
            let start = if first_block { entry.offset_in_block() as usize } else { 0 };
            let content = self.load(handle)?;
            if let Some(c) = self.current.as_mut() {
                c.content = Some((content, start, handle.offset));
            }
        }
    }
}

fn rtc(position: Position, tombstone: Tombstone) -> Fragment {
    Fragment::RangeTombstoneChange(RangeTombstoneChange { position, tombstone })
}

impl Iterator for SstableStream {
    type Item = Result<Fragment>;

    fn next(&mut self) -> Option<Result<Fragment>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
