//! Verifies a whole sstable: what an `sstable verify` command checks (DESIGN §4, `docs/format.md`
//! "SSTables").
//!
//! Opening a reader already checks the footer (magic, version, file id, checksum, section layout)
//! and every section's checksum, and decodes the partition index, the bloom filter and the
//! statistics. [`verify`] checks the rest, without trusting any of it:
//!
//! 1. **Block layout**: the block handles of every partition index entry and every row index entry
//!    must tile `[0, data_end)` exactly: no gap (bytes no index reaches), no overlap, no two
//!    handles at one offset with different lengths. The row indexes must tile their section, in
//!    partition order.
//! 2. **Blocks**: every block is read (its checksum verified, decompressed) and every fragment
//!    record in it decoded, in file order.
//! 3. **Stream**: the concatenated records form a valid fragment stream ([`StreamValidator`]).
//! 4. **Indexes against the data**: each partition start matches the next partition index entry
//!    (key, tombstone, block, offset in block) and the entry's static-row flag, clustering range,
//!    highest timestamp and range tombstone summary match the partition's data; a partition in
//!    several blocks has a row index equal to the one recomputed from the data, a partition
//!    without one lies in one block; the bloom filter admits every key.
//! 5. **Statistics against the data**: a [`StatisticsCollector`] over the stream must reproduce
//!    the stored counts, key range, timestamp and deletion-time bounds and drop-time histogram,
//!    and the stored data size must be the blocks' uncompressed total.
//!
//! Checks 3–5 need the whole stream: after a problem that loses data (an unreadable block, a gap
//! or an overlap) they are skipped and [`VerifyReport::stream_checked`] is false; checks 1–2 go on
//! over every block. Problems name the structure, the file offset and the reason.
//!
//! Invariants: verification never panics and never allocates more than the file justifies (every
//! allocation follows a decoded, bounds-checked structure); it reports at most [`MAX_PROBLEMS`]
//! problems and counts the rest. Thread-safety: pure functions over a shared `&SstableReader`.

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::fragment::{Fragment, StreamValidator};
use crate::sstable::block::{decode_fragment, BlockHandle};
use crate::sstable::index::{PartitionIndexEntry, RowIndexEntry};
use crate::sstable::partition_summary::PartitionSummary;
use crate::sstable::reader::{ReadCounters, SstableReader};
use crate::sstable::statistics::{Statistics, StatisticsCollector};
use crate::sstable::SstableSource;

/// At most this many problems are listed; the rest are only counted.
pub const MAX_PROBLEMS: usize = 1000;

const DATA: &str = "sstable data block";
const PARTITION_INDEX: &str = "sstable partition index";
const ROW_INDEX: &str = "sstable row index";

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The structure at fault ("sstable data block", "sstable footer", ...).
    pub structure: &'static str,
    /// File offset of the structure (or of the faulty field when known).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}: {}", self.structure, self.offset, self.reason)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// The file id of the footer (`None` when the file did not open).
    pub file_id: Option<u64>,
    /// The file's length.
    pub file_len: u64,
    /// Data blocks read and decoded (whether or not they were sound).
    pub blocks: u64,
    /// Partition starts found in the data.
    pub partitions: u64,
    /// Clustering rows found in the data.
    pub rows: u64,
    /// Fragment records decoded.
    pub fragments: u64,
    /// Bytes of the data blocks region, trailers included (`footer.data_end()`).
    pub data_bytes: u64,
    /// Uncompressed bytes of the blocks that could be read.
    pub uncompressed_bytes: u64,
    /// Whether the stream, index and statistics checks ran to the end (see the module docs).
    pub stream_checked: bool,
    /// The problems, in the order found (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_omitted: u64,
}

impl VerifyReport {
    /// Whether the file verified without a problem.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }

    fn push(&mut self, structure: &'static str, offset: u64, reason: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { structure, offset, reason: reason.into() });
        } else {
            self.problems_omitted += 1;
        }
    }

    fn error(&mut self, error: Error) {
        match error {
            Error::Corrupt { structure, offset, reason } => self.push(structure, offset as u64, reason),
            Error::Io(reason) => self.push("sstable file", 0, format!("I/O error: {reason}")),
            other => self.push("sstable file", 0, other.to_string()),
        }
    }
}

/// Opens the sstable in `source` without a block cache (so every block is read from the file)
/// and verifies it. A file that does not open gives a report with that one problem.
pub fn verify_source(source: Arc<dyn SstableSource>, expected_file_id: Option<u64>) -> VerifyReport {
    let file_len = source.len();
    match SstableReader::open(source, expected_file_id, None) {
        Ok(reader) => verify(&reader),
        Err(e) => {
            let mut report = VerifyReport { file_len, ..VerifyReport::default() };
            report.error(e);
            report
        }
    }
}

/// Verifies the open sstable `reader` (see the module documentation). Blocks are read through
/// the reader, so a reader opened with a block cache may serve cached (already verified) blocks;
/// [`verify_source`] opens one without.
pub fn verify(reader: &SstableReader) -> VerifyReport {
    let footer = reader.footer();
    let mut report = VerifyReport {
        file_id: Some(footer.file_id),
        file_len: reader.file_len(),
        data_bytes: footer.data_end(),
        ..VerifyReport::default()
    };
    // Decoding the entries again cannot fail (opening checked them); if it does, the check
    // reports it and goes on without them.
    let (entries, intact) = match reader.partitions().entries() {
        Ok(entries) => (entries, true),
        Err(e) => {
            report.error(e);
            (Vec::new(), false)
        }
    };
    let mut v = Verifier {
        reader,
        entries,
        report,
        intact,
        row_indexes: Vec::new(),
        validator: StreamValidator::new(),
        collector: StatisticsCollector::new(reader.statistics().origin, reader.statistics().table),
        next_entry: 0,
        open: None,
    };
    let blocks = v.layout();
    let counters = ReadCounters::default();
    for handle in blocks {
        v.block(handle, &counters);
    }
    v.finish();
    v.report
}

/// The partition being read, with what the indexes must say about it.
struct OpenPartition {
    /// Its partition index entry (`None` when the index has no entry left).
    entry: Option<usize>,
    /// The block being read, and how many blocks the partition touched.
    block: BlockHandle,
    blocks_touched: usize,
    /// The index facts recomputed from the data, as the writer builds them.
    summary: PartitionSummary,
}

struct Verifier<'a> {
    reader: &'a SstableReader,
    /// The partition index, in full.
    entries: Vec<PartitionIndexEntry>,
    report: VerifyReport,
    /// False once a problem lost data: the stream checks stop.
    intact: bool,
    /// The decoded row index of each partition (empty without one, `None` when it did not decode).
    row_indexes: Vec<Option<Vec<RowIndexEntry>>>,
    validator: StreamValidator,
    collector: StatisticsCollector,
    next_entry: usize,
    open: Option<OpenPartition>,
}

impl Verifier<'_> {
    fn broken(&mut self, structure: &'static str, offset: u64, reason: impl Into<String>) {
        self.report.push(structure, offset, reason);
        self.intact = false;
    }

    /// Check 1: decodes the row indexes and returns the blocks tiling the data, in file order.
    fn layout(&mut self) -> Vec<BlockHandle> {
        let footer = *self.reader.footer();
        let mut handles = Vec::new();
        let mut row_index_end = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            handles.push(entry.block);
            let Some(r) = entry.row_index else {
                self.row_indexes.push(Some(Vec::new()));
                continue;
            };
            if r.offset != row_index_end {
                self.report.push(
                    ROW_INDEX,
                    footer.row_index.offset.saturating_add(r.offset),
                    format!(
                        "row index of partition {i} at section offset {} does not follow the previous one (at {row_index_end})",
                        r.offset
                    ),
                );
            }
            row_index_end = r.offset.saturating_add(r.len);
            match self.reader.row_index(entry) {
                Ok(rows) => {
                    if rows.first().is_some_and(|first| first.block != entry.block) {
                        self.report.push(
                            ROW_INDEX,
                            footer.row_index.offset.saturating_add(r.offset),
                            format!("row index of partition {i} does not start at the partition's block {}", entry.block.offset),
                        );
                    }
                    handles.extend(rows.iter().map(|row| row.block));
                    self.row_indexes.push(Some(rows));
                }
                Err(e) => {
                    self.report.error(e);
                    self.intact = false;
                    self.row_indexes.push(None);
                }
            }
        }
        if row_index_end != footer.row_index.len {
            self.report.push(
                ROW_INDEX,
                footer.row_index.offset.saturating_add(row_index_end),
                format!("the row indexes end at section offset {row_index_end}, the section has {} byte(s)", footer.row_index.len),
            );
        }
        handles.sort_by_key(|h| (h.offset, h.len));
        handles.dedup();
        let data_end = footer.data_end();
        let mut blocks: Vec<BlockHandle> = Vec::new();
        let mut cursor = 0u64;
        for h in handles {
            if let Some(last) = blocks.last().filter(|last| last.offset == h.offset) {
                let reason = format!("the indexes give the block two lengths, {} and {} byte(s)", last.len, h.len);
                self.broken(DATA, h.offset, reason);
                continue;
            }
            if h.end() > data_end {
                self.broken(DATA, h.offset, format!("block of {} byte(s) ends at {}, past the data end {data_end}", h.len, h.end()));
                continue;
            }
            if h.offset < cursor {
                self.broken(DATA, h.offset, format!("block overlaps the previous block, which ends at {cursor}"));
                continue;
            }
            if h.offset > cursor {
                self.broken(DATA, cursor, format!("{} byte(s) up to offset {} belong to no indexed block", h.offset - cursor, h.offset));
            }
            cursor = h.end();
            blocks.push(h);
        }
        if cursor < data_end {
            self.broken(DATA, cursor, format!("{} byte(s) up to the data end {data_end} belong to no indexed block", data_end - cursor));
        }
        blocks
    }

    /// Check 2: reads one block and decodes its records, feeding the stream checks.
    fn block(&mut self, handle: BlockHandle, counters: &ReadCounters) {
        self.report.blocks += 1;
        let content = match self.reader.block(handle, counters) {
            Ok(content) => content,
            Err(e) => {
                self.report.error(e);
                self.intact = false;
                return;
            }
        };
        self.report.uncompressed_bytes += content.len() as u64;
        if content.is_empty() {
            self.report.push(DATA, handle.offset, "empty block");
        }
        let mut pos = 0;
        while pos < content.len() {
            let at = pos;
            match decode_fragment(&content, &mut pos, handle.offset) {
                Ok(fragment) => self.fragment(handle, at, fragment),
                Err(e) => {
                    self.report.error(e);
                    self.intact = false;
                    return;
                }
            }
        }
    }

    /// Checks 3–4 for one fragment found at byte `at` of block `handle`.
    fn fragment(&mut self, handle: BlockHandle, at: usize, fragment: Fragment) {
        self.report.fragments += 1;
        match &fragment {
            Fragment::PartitionStart { .. } => self.report.partitions += 1,
            Fragment::Row { .. } => self.report.rows += 1,
            _ => {}
        }
        if !self.intact {
            return;
        }
        if let Err(e) = self.validator.check(&fragment) {
            self.broken(DATA, handle.offset, format!("{e} (byte {at} of the block's content)"));
            return;
        }
        self.collector.observe(&fragment);
        if let Fragment::PartitionStart { key, tombstone } = &fragment {
            let entry = self.entries.get(self.next_entry);
            let indexed = entry.is_some();
            let index = self.next_entry;
            self.next_entry += 1;
            let offset = self.reader.footer().partition_index.offset;
            match entry {
                None => self.report.push(PARTITION_INDEX, offset, format!("partition {key:?} at block {} is not indexed", handle.offset)),
                Some(e) if e.key != *key => {
                    let reason = format!("entry {index} is {:?}, the data holds {key:?}", e.key);
                    self.broken(PARTITION_INDEX, offset, reason);
                }
                Some(e) => {
                    if e.tombstone != *tombstone {
                        self.report.push(
                            PARTITION_INDEX,
                            offset,
                            format!("entry {index}: tombstone {:?}, data {tombstone:?}", e.tombstone),
                        );
                    }
                    if e.block.offset != handle.offset || e.offset_in_block as usize != at {
                        self.report.push(
                            PARTITION_INDEX,
                            offset,
                            format!(
                                "entry {index} points at block {} byte {}; the partition starts at block {} byte {at}",
                                e.block.offset, e.offset_in_block, handle.offset
                            ),
                        );
                    }
                }
            }
            self.open = Some(OpenPartition {
                entry: indexed.then_some(index),
                block: handle,
                blocks_touched: 1,
                summary: PartitionSummary::new(*tombstone),
            });
            return;
        }
        // The validator guarantees an open partition for every other fragment.
        let Some(p) = self.open.as_mut() else { return };
        if p.block.offset != handle.offset {
            p.summary.end_block(p.block);
            p.block = handle;
            p.blocks_touched += 1;
        }
        if matches!(fragment, Fragment::PartitionEnd) {
            p.summary.end_block(p.block);
            if let Some(p) = self.open.take() {
                self.partition_end(p);
            }
        } else {
            p.summary.observe(&fragment);
        }
    }

    /// Check 4 at a partition's end: its entry and row index against what the data held.
    fn partition_end(&mut self, p: OpenPartition) {
        let Some(index) = p.entry else { return };
        let Some(entry) = self.entries.get(index) else { return };
        let offset = self.reader.footer().partition_index.offset;
        let mut wrong = Vec::new();
        if entry.has_static_row != p.summary.has_static_row {
            wrong.push(format!("static row flag {}, data {}", entry.has_static_row, p.summary.has_static_row));
        }
        if entry.clustering != p.summary.clustering {
            wrong.push(format!("clustering range {:?}, data {:?}", entry.clustering, p.summary.clustering));
        }
        if entry.max_timestamp != p.summary.max_timestamp {
            wrong.push(format!("max timestamp {}, data {}", entry.max_timestamp.0, p.summary.max_timestamp.0));
        }
        if entry.range_tombstones != p.summary.range_tombstones {
            wrong.push(format!("range tombstone summary {:?}, data {:?}", entry.range_tombstones, p.summary.range_tombstones));
        }
        if !wrong.is_empty() {
            self.report.push(
                PARTITION_INDEX,
                offset,
                format!("entry {index} ({:?}) disagrees with the data: {}", entry.key, wrong.join("; ")),
            );
        }
        let row_index_offset = self.reader.footer().row_index.offset;
        match (entry.row_index, self.row_indexes.get(index)) {
            (None, _) if p.blocks_touched > 1 => self.report.push(
                PARTITION_INDEX,
                offset,
                format!("entry {index} has no row index, but the partition spans {} blocks", p.blocks_touched),
            ),
            (Some(r), Some(Some(stored))) if *stored != p.summary.row_index => {
                let at = stored
                    .iter()
                    .zip(&p.summary.row_index)
                    .position(|(a, b)| a != b)
                    .unwrap_or(stored.len().min(p.summary.row_index.len()));
                self.report.push(
                    ROW_INDEX,
                    row_index_offset.saturating_add(r.offset),
                    format!(
                        "row index of partition {index} disagrees with the data at entry {at}: {} stored, {} in the data ({:?} vs {:?})",
                        stored.len(),
                        p.summary.row_index.len(),
                        stored.get(at),
                        p.summary.row_index.get(at)
                    ),
                );
            }
            _ => {}
        }
    }

    /// The end-of-stream checks (3–5) and the bloom filter.
    fn finish(&mut self) {
        let footer = *self.reader.footer();
        for (i, entry) in self.entries.iter().enumerate() {
            if !self.reader.filter_admits(&entry.key) {
                self.report.push("bloom filter", footer.filter.offset, format!("rejects the key of partition {i} ({:?})", entry.key));
            }
        }
        if !self.intact {
            return;
        }
        if let Err(e) = self.validator.finish() {
            self.broken(DATA, footer.data_end(), e.to_string());
            return;
        }
        let entries = self.entries.len();
        if self.next_entry < entries {
            self.report.push(
                PARTITION_INDEX,
                footer.partition_index.offset,
                format!("{} of the {entries} entries name no partition in the data", entries - self.next_entry),
            );
        }
        let collector = std::mem::replace(
            &mut self.collector,
            StatisticsCollector::new(self.reader.statistics().origin, self.reader.statistics().table),
        );
        let computed = collector.finish();
        let differences = compare_statistics(self.reader.statistics(), &computed, self.report.uncompressed_bytes);
        if !differences.is_empty() {
            self.report.push("sstable statistics", footer.statistics.offset, format!("disagree with the data: {}", differences.join("; ")));
        }
        self.report.stream_checked = true;
    }
}

/// The fields of `stored` that the data (`computed`, `data_size`) contradicts, described.
fn compare_statistics(stored: &Statistics, computed: &Statistics, data_size: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, stored: String, data: String| {
        if stored != data {
            out.push(format!("{name}: stored {stored}, data {data}"));
        }
    };
    let (s, c) = (&stored.counts, &computed.counts);
    field("partitions", s.partitions.to_string(), c.partitions.to_string());
    field("rows", s.rows.to_string(), c.rows.to_string());
    field("partition tombstones", s.partition_tombstones.to_string(), c.partition_tombstones.to_string());
    field("range tombstones", s.range_tombstones.to_string(), c.range_tombstones.to_string());
    field("row tombstones", s.row_tombstones.to_string(), c.row_tombstones.to_string());
    field("cell tombstones", s.cell_tombstones.to_string(), c.cell_tombstones.to_string());
    field("expiring cells", s.expiring_cells.to_string(), c.expiring_cells.to_string());
    field("first key", format!("{:?}", stored.first_key), format!("{:?}", computed.first_key));
    field("last key", format!("{:?}", stored.last_key), format!("{:?}", computed.last_key));
    field("min timestamp", stored.min_timestamp.0.to_string(), computed.min_timestamp.0.to_string());
    field("max timestamp", stored.max_timestamp.0.to_string(), computed.max_timestamp.0.to_string());
    field("min live timestamp", stored.min_live_timestamp.0.to_string(), computed.min_live_timestamp.0.to_string());
    field(
        "min live row marker timestamp",
        stored.min_live_row_marker_timestamp.0.to_string(),
        computed.min_live_row_marker_timestamp.0.to_string(),
    );
    field("min deletion time", stored.min_deletion_time.0.to_string(), computed.min_deletion_time.0.to_string());
    field("max deletion time", stored.max_deletion_time.0.to_string(), computed.max_deletion_time.0.to_string());
    if stored.drop_times != computed.drop_times {
        field("drop-time histogram", format!("{:?}", stored.drop_times.bins()), format!("{:?}", computed.drop_times.bins()));
    }
    field("data size", stored.data_size.to_string(), data_size.to_string());
    out
}
