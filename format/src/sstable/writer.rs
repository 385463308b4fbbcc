//! Writes one sstable from a fragment stream (`docs/format.md`, "SSTables").
//!
//! The writer validates the stream (R1.36), packs fragments into blocks of about the target size,
//! and builds, as it goes, the partition index, the row indexes of partitions that span blocks, the
//! key hashes of the bloom filter and the statistics; [`SstableWriter::finish`] appends the
//! sections and the footer. Output goes to an [`SstableSink`]: a `Vec<u8>` or an `Fs` file through
//! [`FileSink`]. The writer never syncs; making the file durable is the caller's protocol.
//!
//! Block cuts: only before a partition start, or before a row or range tombstone change once the
//! current partition has a clustering fragment in the block, so a partition start and its static
//! row share a block and every block of a wide partition has a first and last position. A wide
//! partition's last block is cut right after its end, so its row index is complete at that point.
//!
//! Block handles: a block's file offset depends on the stored length of every block before it, so
//! the writer numbers blocks as it cuts them and refers to them by number until its block output
//! (`block_output.rs`) reports their handles. A finished partition waits in a queue, in stream
//! order, until the blocks it names are written; only then is its row index encoded and its entry
//! added to the partition index, so both come out exactly as if every block were written at once.
//!
//! Thread-safety: a writer is owned by one thread. A writer made by [`SstableWriter::pipelined`]
//! compresses and appends its blocks on a helper thread (see `block_output.rs`); the bytes written
//! are the same.

use crate::error::{Error, Result};
use crate::fragment::{Fragment, StreamValidator};
use crate::fs::FsFile;
use crate::schema::TableId;
use crate::schema::{Compression, Schema};
use crate::sstable::block::{encode_fragment, BlockHandle};
use crate::sstable::block_output::BlockOutput;
use crate::sstable::bloom::{key_hash, BloomFilter};
use crate::sstable::footer::{Footer, Section};
use crate::sstable::index::{encode_row_index, PartitionIndexEntry, RowIndexEntry, RowIndexRef};
use crate::sstable::partition_index::{PartitionIndex, PartitionIndexBuilder};
use crate::sstable::partition_summary::PartitionSummary;
use crate::sstable::statistics::{CommitlogInterval, SstableOrigin, Statistics, StatisticsCollector};
use crate::time::GcTime;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// How an sstable is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SstableWriterOptions {
    /// Target uncompressed size of a data block.
    pub block_size: usize,
    /// Block compression.
    pub compression: Compression,
    /// Target false-positive rate of the bloom filter (the schema's `bloom_filter_fp_chance`).
    pub bloom_false_positive_rate: f64,
}

impl SstableWriterOptions {
    /// The options `schema` asks for (R4.17).
    pub fn for_schema(schema: &Schema) -> SstableWriterOptions {
        let o = &schema.options;
        SstableWriterOptions { block_size: o.block_size, compression: o.compression, bloom_false_positive_rate: o.bloom_filter_fp_chance }
    }
}

/// Where the writer's bytes go, in order.
pub trait SstableSink {
    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl SstableSink for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends to an `Fs` file through a buffer of about 1 MiB.
pub struct FileSink {
    file: Arc<dyn FsFile>,
    offset: u64,
    buffer: Vec<u8>,
}

const FILE_SINK_BUFFER: usize = 1 << 20;

impl FileSink {
    /// A sink writing `file` from offset 0.
    pub fn new(file: Arc<dyn FsFile>) -> FileSink {
        FileSink { file, offset: 0, buffer: Vec::with_capacity(FILE_SINK_BUFFER) }
    }

    /// The file.
    pub fn file(&self) -> &Arc<dyn FsFile> {
        &self.file
    }

    /// Writes out the buffered bytes.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all_at(&self.buffer, self.offset)?;
        self.offset += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

impl SstableSink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() >= FILE_SINK_BUFFER {
            // A large section goes straight to the file, without a copy through the buffer.
            self.flush()?;
            self.file.write_all_at(bytes, self.offset)?;
            self.offset += bytes.len() as u64;
            return Ok(());
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= FILE_SINK_BUFFER {
            self.flush()?;
        }
        Ok(())
    }
}

/// What the writer records about an sstable besides its data (R2.6, R3.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SstableSeal {
    /// The commitlog interval the data covers (flushes; the merged interval of the inputs for
    /// compactions, R3.13).
    pub commitlog_interval: Option<CommitlogInterval>,
    /// Compaction level (leveled strategy; 0 otherwise).
    pub level: u32,
    /// The sstable run this file belongs to.
    pub run_id: u64,
    /// When the sstable is written (gc clock).
    pub created_at: GcTime,
}

impl SstableSeal {
    /// A level-0 sstable of run 0 written at `created_at`, without a commitlog interval.
    pub fn at(created_at: GcTime) -> SstableSeal {
        SstableSeal { commitlog_interval: None, level: 0, run_id: 0, created_at }
    }
}

/// What a finished sstable holds.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenSstable {
    /// File length in bytes.
    pub size: u64,
    /// Data blocks written.
    pub blocks: u64,
    /// The statistics stored in the file.
    pub statistics: Statistics,
    /// The partition index stored in the file, for [`crate::sstable::reader::SstableReader::open_written`].
    pub index: PartitionIndex,
}

/// A block named by sequence number until its handle is known: the writer's placeholder handle
/// has the number as its offset and length 0.
fn placeholder(seq: u64) -> BlockHandle {
    BlockHandle { offset: seq, len: 0 }
}

/// The partition being written; its entry's block is a [`placeholder`].
struct OpenPartition {
    entry: PartitionIndexEntry,
    summary: PartitionSummary,
}

impl OpenPartition {
    /// The finished partition, completed with what its fragments showed; `last_block` is the
    /// number of the last block it names.
    fn finish(self, last_block: u64) -> FinishedPartition {
        let s = self.summary;
        let entry = PartitionIndexEntry {
            has_static_row: s.has_static_row,
            clustering: s.clustering,
            max_timestamp: s.max_timestamp,
            range_tombstones: s.range_tombstones,
            row_index: None,
            ..self.entry
        };
        FinishedPartition { entry, row_index: s.row_index, last_block }
    }
}

/// A finished partition waiting for the handles of its blocks: its entry's block and its row
/// index entries' blocks are [`placeholder`]s.
struct FinishedPartition {
    entry: PartitionIndexEntry,
    /// The row index of a partition spread over several blocks (empty otherwise).
    row_index: Vec<RowIndexEntry>,
    last_block: u64,
}

/// Writes one sstable.
pub struct SstableWriter<S: SstableSink> {
    output: BlockOutput<S>,
    file_id: u64,
    options: SstableWriterOptions,
    block: Vec<u8>,
    /// Blocks cut so far: the number of the pending block.
    blocks: u64,
    /// Uncompressed bytes of the blocks cut.
    data_size: u64,
    validator: StreamValidator,
    statistics: StatisticsCollector,
    /// The partition index as it grows.
    index: PartitionIndexBuilder,
    /// Finished partitions, in stream order, whose blocks are not all written yet.
    waiting: VecDeque<FinishedPartition>,
    open: Option<OpenPartition>,
    hashes: Vec<u64>,
    row_index: Vec<u8>,
}

/// Encoded bytes of a typical partition index entry (a key of a few dozen bytes, then varints),
/// for [`SstableWriter::reserve_partitions`].
const INDEX_ENTRY_BYTES: usize = 48;

impl<S: SstableSink> SstableWriter<S> {
    /// A writer of file `file_id` (the generation every checksum is bound to) into `sink`; blocks
    /// are compressed and written on the caller's thread.
    pub fn new(sink: S, file_id: u64, options: SstableWriterOptions, origin: SstableOrigin, table: TableId) -> SstableWriter<S> {
        SstableWriter::with_output(BlockOutput::inline(sink, file_id, options.compression), file_id, options, origin, table)
    }

    fn with_output(
        output: BlockOutput<S>,
        file_id: u64,
        options: SstableWriterOptions,
        origin: SstableOrigin,
        table: TableId,
    ) -> SstableWriter<S> {
        SstableWriter {
            output,
            file_id,
            options,
            block: Vec::with_capacity(options.block_size + options.block_size / 4),
            blocks: 0,
            data_size: 0,
            validator: StreamValidator::new(),
            statistics: StatisticsCollector::new(origin, table),
            index: PartitionIndexBuilder::new(),
            waiting: VecDeque::new(),
            open: None,
            hashes: Vec::new(),
            row_index: Vec::new(),
        }
    }

    /// A sizing hint: about `partitions` more partitions will be added. The per-partition
    /// structures (partition index, bloom filter hashes) are then sized once instead of growing by
    /// doubling. The output does not depend on the hint.
    pub fn reserve_partitions(&mut self, partitions: usize) {
        self.index.reserve(partitions, INDEX_ENTRY_BYTES);
        self.hashes.reserve(partitions);
    }

    /// Adds the next fragment of the stream.
    pub fn add(&mut self, fragment: &Fragment) -> Result<()> {
        self.validator.check(fragment)?;
        self.statistics.observe(fragment);
        let cut = self.block.len() >= self.options.block_size
            && match fragment {
                Fragment::PartitionStart { .. } => true,
                Fragment::Row { .. } | Fragment::RangeTombstoneChange(_) => {
                    self.open.as_ref().is_some_and(|p| p.summary.has_clustering_in_block())
                }
                Fragment::StaticRow(_) | Fragment::PartitionEnd => false,
            };
        if cut {
            self.flush_block()?;
        }
        let offset_in_block = self.block.len();
        encode_fragment(fragment, &mut self.block);
        match fragment {
            Fragment::PartitionStart { key, tombstone } => {
                self.hashes.push(key_hash(key.key.as_bytes()));
                let entry = PartitionIndexEntry {
                    key: key.clone(),
                    tombstone: *tombstone,
                    block: placeholder(self.blocks),
                    offset_in_block: u32::try_from(offset_in_block).unwrap_or(u32::MAX),
                    has_static_row: false,
                    clustering: None,
                    max_timestamp: tombstone.timestamp,
                    range_tombstones: Vec::new(),
                    row_index: None,
                };
                self.open = Some(OpenPartition { entry, summary: PartitionSummary::new(*tombstone) });
            }
            Fragment::PartitionEnd => {
                let Some(p) = self.open.take() else { return Err(Error::InvalidStream("partition end outside a partition".into())) };
                if p.summary.row_index.is_empty() {
                    let start = p.entry.block.offset;
                    self.waiting.push_back(p.finish(start));
                } else {
                    // A wide partition: its last block ends here, so the row index is complete.
                    self.open = Some(p);
                    self.flush_block()?;
                    let Some(p) = self.open.take() else { return Err(Error::InvalidStream("lost the open partition".into())) };
                    let last = self.blocks - 1;
                    self.waiting.push_back(p.finish(last));
                }
                self.index_written()?;
            }
            other => self.open_partition()?.summary.observe(other),
        }
        Ok(())
    }

    fn open_partition(&mut self) -> Result<&mut OpenPartition> {
        self.open.as_mut().ok_or_else(|| Error::InvalidStream("fragment outside a partition".into()))
    }

    /// Hands the pending block to the output and ends it in the open partition's row index.
    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.data_size += self.block.len() as u64;
        self.output.submit(&mut self.block)?;
        let seq = self.blocks;
        self.blocks += 1;
        if let Some(p) = &mut self.open {
            p.summary.end_block(placeholder(seq));
        }
        self.index_written()
    }

    /// Indexes the waiting partitions whose blocks are all written, in order; then forgets the
    /// handles no partition needs any more.
    fn index_written(&mut self) -> Result<()> {
        let written = self.output.written();
        while self.waiting.front().is_some_and(|p| p.last_block < written) {
            let Some(p) = self.waiting.pop_front() else { break };
            self.index_partition(p)?;
        }
        let needed = self.waiting.front().map(|p| &p.entry).or(self.open.as_ref().map(|p| &p.entry)).map_or(written, |e| e.block.offset);
        self.output.forget_before(needed);
        Ok(())
    }

    /// Resolves the block handles of `p` and adds it to the indexes.
    fn index_partition(&mut self, p: FinishedPartition) -> Result<()> {
        let FinishedPartition { mut entry, mut row_index, .. } = p;
        let output = &self.output;
        let resolve = |handle: &mut BlockHandle| -> Result<()> {
            *handle = output.handle(handle.offset).ok_or_else(|| Error::Io(format!("block {} has no handle", handle.offset)))?;
            Ok(())
        };
        resolve(&mut entry.block)?;
        if !row_index.is_empty() {
            for r in &mut row_index {
                resolve(&mut r.block)?;
            }
            let offset = self.row_index.len() as u64;
            encode_row_index(&row_index, &mut self.row_index);
            entry.row_index = Some(RowIndexRef { offset, len: self.row_index.len() as u64 - offset });
        }
        self.index.push(&entry);
        Ok(())
    }

    /// Uncompressed data bytes written so far (compaction cuts its outputs by it).
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Writes the last block, the sections and the footer; returns the sink and what was written.
    pub fn finish(mut self, seal: SstableSeal) -> Result<(S, WrittenSstable)> {
        self.validator.finish()?;
        self.flush_block()?;
        let mut offset = self.output.flush()?;
        self.index_written()?;
        if !self.waiting.is_empty() {
            return Err(Error::Io("partitions left unindexed after the last block".into()));
        }
        let mut statistics = self.statistics.finish();
        statistics.commitlog_interval = seal.commitlog_interval;
        statistics.level = seal.level;
        statistics.run_id = seal.run_id;
        statistics.created_at = seal.created_at;
        statistics.data_size = self.data_size;
        let mut footer = Footer { file_id: self.file_id, ..Footer::default() };
        let file_id = self.file_id;
        let emit = |output: &mut BlockOutput<S>, offset: &mut u64, bytes: Bytes, section: &mut Section| -> Result<()> {
            *section = Section::describe(&bytes, *offset, file_id);
            *offset += bytes.len() as u64;
            output.append(bytes)
        };
        let output = &mut self.output;
        // The indexes go first: a pipelined output writes them while the bloom filter is built.
        emit(output, &mut offset, Bytes::from(std::mem::take(&mut self.row_index)), &mut footer.row_index)?;
        let index = self.index.finish(offset)?;
        emit(output, &mut offset, index.bytes().clone(), &mut footer.partition_index)?;
        let mut filter = Vec::new();
        BloomFilter::build(&self.hashes, self.options.bloom_false_positive_rate).encode(&mut filter);
        emit(output, &mut offset, Bytes::from(filter), &mut footer.filter)?;
        let mut encoded = Vec::new();
        statistics.encode(&mut encoded);
        emit(output, &mut offset, Bytes::from(encoded), &mut footer.statistics)?;
        let mut tail = Vec::new();
        footer.encode(&mut tail);
        let size = offset + tail.len() as u64;
        output.append(Bytes::from(tail))?;
        let (sink, written) = self.output.into_sink()?;
        if written != size {
            return Err(Error::Io(format!("wrote {written} byte(s), expected {size}")));
        }
        Ok((sink, WrittenSstable { size, blocks: self.blocks, statistics, index }))
    }
}

impl<S: SstableSink + Send + 'static> SstableWriter<S> {
    /// A writer like [`SstableWriter::new`] whose blocks are compressed, sealed and appended to
    /// `sink` by a helper thread while the caller goes on adding fragments; the file's bytes are
    /// the same.
    ///
    /// Trade-off: compression (most of a zstd writer's CPU time) overlaps the caller's work, so a
    /// writer fed as fast as it writes (a compaction, a flush) finishes up to about twice as fast
    /// when a second core is free; it costs a thread (spawned here, joined by
    /// [`SstableWriter::finish`] or the drop) and buffers for a few dozen blocks, and
    /// gains nothing on a machine whose cores are all busy. A sink error, or a failure of the
    /// thread, is returned by a later [`SstableWriter::add`] or by [`SstableWriter::finish`].
    pub fn pipelined(
        sink: S,
        file_id: u64,
        options: SstableWriterOptions,
        origin: SstableOrigin,
        table: TableId,
    ) -> Result<SstableWriter<S>> {
        let output = BlockOutput::pipelined(sink, file_id, options.compression)?;
        Ok(SstableWriter::with_output(output, file_id, options, origin, table))
    }
}
