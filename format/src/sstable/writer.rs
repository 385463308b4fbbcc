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
//! Thread-safety: a writer is owned by one thread.

use crate::error::{Error, Result};
use crate::fragment::{Fragment, StreamValidator};
use crate::fs::FsFile;
use crate::schema::TableId;
use crate::schema::{Compression, Schema};
use crate::sstable::block::{encode_fragment, write_block, BlockHandle};
use crate::sstable::bloom::{key_hash, BloomFilter};
use crate::sstable::footer::{Footer, Section};
use crate::sstable::index::{encode_row_index, PartitionIndexEntry, RowIndexRef};
use crate::sstable::partition_index::{PartitionIndex, PartitionIndexBuilder};
use crate::sstable::partition_summary::PartitionSummary;
use crate::sstable::statistics::{CommitlogInterval, SstableOrigin, Statistics, StatisticsCollector};
use crate::time::GcTime;
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

/// The partition being written.
struct OpenPartition {
    entry: PartitionIndexEntry,
    summary: PartitionSummary,
}

impl OpenPartition {
    /// The partition's index entry, completed with what its fragments showed.
    fn into_entry(self, row_index: Option<RowIndexRef>) -> PartitionIndexEntry {
        let s = self.summary;
        PartitionIndexEntry {
            has_static_row: s.has_static_row,
            clustering: s.clustering,
            max_timestamp: s.max_timestamp,
            range_tombstones: s.range_tombstones,
            row_index,
            ..self.entry
        }
    }
}

/// Writes one sstable.
pub struct SstableWriter<S: SstableSink> {
    sink: S,
    file_id: u64,
    options: SstableWriterOptions,
    /// Bytes written to the sink so far: the offset of the pending block.
    offset: u64,
    block: Vec<u8>,
    scratch: Vec<u8>,
    blocks: u64,
    /// Uncompressed bytes of the blocks written.
    data_size: u64,
    validator: StreamValidator,
    statistics: StatisticsCollector,
    /// The partition index as it grows.
    index: PartitionIndexBuilder,
    /// Finished entries of partitions that start in the pending block: encoded once it is written
    /// and its length known.
    pending: Vec<PartitionIndexEntry>,
    open: Option<OpenPartition>,
    hashes: Vec<u64>,
    row_index: Vec<u8>,
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

impl<S: SstableSink> SstableWriter<S> {
    /// A writer of file `file_id` (the generation every checksum is bound to) into `sink`.
    pub fn new(sink: S, file_id: u64, options: SstableWriterOptions, origin: SstableOrigin, table: TableId) -> SstableWriter<S> {
        SstableWriter {
            sink,
            file_id,
            options,
            offset: 0,
            block: Vec::with_capacity(options.block_size + options.block_size / 4),
            scratch: Vec::new(),
            blocks: 0,
            data_size: 0,
            validator: StreamValidator::new(),
            statistics: StatisticsCollector::new(origin, table),
            index: PartitionIndexBuilder::new(),
            pending: Vec::new(),
            open: None,
            hashes: Vec::new(),
            row_index: Vec::new(),
        }
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
                    block: BlockHandle { offset: self.offset, len: 0 },
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
                    self.pending.push(p.into_entry(None));
                } else {
                    // A wide partition: its last block ends here, so the row index is complete.
                    self.open = Some(p);
                    self.flush_block()?;
                    let Some(p) = self.open.take() else { return Err(Error::InvalidStream("lost the open partition".into())) };
                    let offset = self.row_index.len() as u64;
                    encode_row_index(&p.summary.row_index, &mut self.row_index);
                    let len = self.row_index.len() as u64 - offset;
                    self.index_entry(&p.into_entry(Some(RowIndexRef { offset, len })));
                }
            }
            other => self.open_partition()?.summary.observe(other),
        }
        Ok(())
    }

    fn open_partition(&mut self) -> Result<&mut OpenPartition> {
        self.open.as_mut().ok_or_else(|| Error::InvalidStream("fragment outside a partition".into()))
    }

    /// Writes the pending block and records it in the indexes.
    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        let handle = write_block(&self.block, self.options.compression, self.file_id, self.offset, &mut self.scratch);
        self.sink.append(&self.scratch).map_err(io)?;
        self.offset += self.scratch.len() as u64;
        self.blocks += 1;
        self.data_size += self.block.len() as u64;
        self.block.clear();
        let mut pending = std::mem::take(&mut self.pending);
        for mut entry in pending.drain(..) {
            entry.block.len = handle.len;
            self.index_entry(&entry);
        }
        self.pending = pending;
        if let Some(p) = &mut self.open {
            if p.entry.block.offset == handle.offset {
                p.entry.block.len = handle.len;
            }
            p.summary.end_block(handle);
        }
        Ok(())
    }

    /// Appends a finished entry to the partition index.
    fn index_entry(&mut self, entry: &PartitionIndexEntry) {
        self.index.push(entry);
    }

    /// Uncompressed data bytes written so far (compaction cuts its outputs by it).
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Writes the last block, the sections and the footer; returns the sink and what was written.
    pub fn finish(mut self, seal: SstableSeal) -> Result<(S, WrittenSstable)> {
        self.validator.finish()?;
        self.flush_block()?;
        let mut statistics = self.statistics.finish();
        statistics.commitlog_interval = seal.commitlog_interval;
        statistics.level = seal.level;
        statistics.run_id = seal.run_id;
        statistics.created_at = seal.created_at;
        statistics.data_size = self.data_size;
        let mut sections = Vec::new();
        let mut footer = Footer { file_id: self.file_id, ..Footer::default() };
        let file_id = self.file_id;
        let emit = |sink: &mut S, offset: &mut u64, bytes: &[u8], section: &mut Section| -> Result<()> {
            *section = Section::describe(bytes, *offset, file_id);
            sink.append(bytes).map_err(io)?;
            *offset += bytes.len() as u64;
            Ok(())
        };
        emit(&mut self.sink, &mut self.offset, &self.row_index, &mut footer.row_index)?;
        let index = self.index.finish(self.offset);
        emit(&mut self.sink, &mut self.offset, index.bytes(), &mut footer.partition_index)?;
        BloomFilter::build(&self.hashes, self.options.bloom_false_positive_rate).encode(&mut sections);
        emit(&mut self.sink, &mut self.offset, &sections, &mut footer.filter)?;
        sections.clear();
        statistics.encode(&mut sections);
        emit(&mut self.sink, &mut self.offset, &sections, &mut footer.statistics)?;
        sections.clear();
        footer.encode(&mut sections);
        self.sink.append(&sections).map_err(io)?;
        let size = self.offset + sections.len() as u64;
        Ok((self.sink, WrittenSstable { size, blocks: self.blocks, statistics, index }))
    }
}
