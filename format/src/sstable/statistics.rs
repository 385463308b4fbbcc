//! SSTable statistics (DESIGN §4, R4.18 and the R6 checklist item 11): what the engine and
//! compaction learn about an sstable without reading its data: key range, counts, timestamp and
//! deletion-time bounds, the tombstone drop-time histogram, the covered commitlog interval, origin,
//! level and run id. Byte layout: `docs/format.md`, "SSTable statistics".
//!
//! [`StatisticsCollector`] observes every fragment a flush or compaction writes (a few comparisons
//! per item, no allocation besides histogram bins); the writer then fills the fields only it knows
//! (commitlog interval, level, run id, data size) and stores [`Statistics::encode`] as a section.
//!
//! Invariants of a [`Statistics`] (the collector produces only such values; the decoder accepts
//! only them, so [`Statistics::encode`] of a hand-built value that breaks them is rejected on read):
//!
//! - `first_key`/`last_key` are both set iff `counts.partitions > 0`, and `first_key <= last_key`
//!   in (token, key bytes) order (R1.5);
//! - timestamps: either "no data" (`min_timestamp == Timestamp::MAX`, `max_timestamp ==
//!   Timestamp::MISSING`) or `min_timestamp <= max_timestamp`; `min_live_timestamp` is
//!   `Timestamp::MAX` or inside `[min_timestamp, max_timestamp]`, and never above
//!   `min_live_row_marker_timestamp` (markers are live data too);
//! - deletion times: either "none" (`min_deletion_time == GcTime::MAX`, `max_deletion_time ==
//!   GcTime::MIN`) or `min <= max`, and every histogram point lies in `[min, max]`;
//! - the drop-time histogram keeps its own invariants ([`DropTimeHistogram`]);
//! - a commitlog interval has `start <= end`.
//!
//! The encoding is versioned and canonical: [`Statistics::decode`] accepts exactly the bytes
//! [`Statistics::encode`] writes for a valid value (minimal varints, known tags, no trailing bytes),
//! so `encode(decode(x)) == x` whenever decoding succeeds. Decoding is strict and total: any other
//! input is an [`Error::Corrupt`] with structure `"sstable statistics"` and the offset of the bad
//! field; it never panics and never allocates more than the input can hold. There is no checksum
//! here: the sstable footer checksums the section.
//!
//! Thread-safety: plain values and pure functions (`Send + Sync`); the collector needs `&mut`.

use bytes::Bytes;

use crate::cell::{Cell, RowMarker};
use crate::error::{Error, Result};
use crate::fragment::Fragment;
use crate::mutation_codec::{write_bytes, write_i64, write_varint, Reader};
use crate::partition_key::{DecoratedKey, PartitionKey};
use crate::replay_position::ReplayPosition;
use crate::row::{Cells, Row};
use crate::schema::TableId;
use crate::sstable::drop_time_histogram::DropTimeHistogram;
use crate::time::{GcTime, Timestamp};
use crate::tombstone::Tombstone;

/// The version byte that starts every encoded statistics section.
pub const STATISTICS_FORMAT_VERSION: u8 = 1;

const STRUCTURE: &str = "sstable statistics";

/// How an sstable came to be (ScyllaDB's `sstable_origin`, R4.19 tag 6). Encoded as one byte;
/// new origins get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SstableOrigin {
    /// Written by a memtable flush (code 0).
    Flush,
    /// Written by a compaction (code 1).
    Compaction,
    /// Ingested from outside: repair, streaming, upload (code 2).
    Ingest,
}

impl SstableOrigin {
    /// The byte stored in the encoding.
    pub fn code(self) -> u8 {
        match self {
            SstableOrigin::Flush => 0,
            SstableOrigin::Compaction => 1,
            SstableOrigin::Ingest => 2,
        }
    }

    /// The origin of a stored byte, `None` if unknown.
    pub fn from_code(code: u8) -> Option<SstableOrigin> {
        match code {
            0 => Some(SstableOrigin::Flush),
            1 => Some(SstableOrigin::Compaction),
            2 => Some(SstableOrigin::Ingest),
            _ => None,
        }
    }
}

/// The commitlog positions an sstable's data covers (R3.12 "(C)", R3.13): `start` is the lowest
/// entry, `end` an exclusive upper bound. The engine defines what "covers" means for replay; this
/// type only stores the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommitlogInterval {
    /// The lowest covered position.
    pub start: ReplayPosition,
    /// The first position past the interval.
    pub end: ReplayPosition,
}

impl CommitlogInterval {
    /// Whether `start <= rp < end`.
    pub fn contains(&self, rp: ReplayPosition) -> bool {
        self.start <= rp && rp < self.end
    }
}

/// Item counts of an sstable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counts {
    /// Partitions.
    pub partitions: u64,
    /// Clustering rows (static rows are not counted).
    pub rows: u64,
    /// Non-empty partition tombstones.
    pub partition_tombstones: u64,
    /// Range tombstone changes that open a non-empty tombstone (R1.35).
    pub range_tombstones: u64,
    /// Rows with a non-empty row tombstone (regular or shadowable).
    pub row_tombstones: u64,
    /// Dead cells (static and regular; dead row markers are not counted).
    pub cell_tombstones: u64,
    /// Expiring cells (static and regular; expiring row markers are not counted).
    pub expiring_cells: u64,
}

/// The statistics section of one sstable (R4.18). See the module documentation for invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statistics {
    /// Flush, compaction or ingest.
    pub origin: SstableOrigin,
    /// The table (schema id) the sstable belongs to.
    pub table: TableId,
    /// Compaction level (leveled strategy; 0 otherwise). Set by the writer.
    pub level: u32,
    /// Identifier of the sstable run this file belongs to. Set by the writer.
    pub run_id: u64,
    /// When the sstable was written (gc clock; R2.24 `min_sstable_age`, R2.28
    /// `tombstone_compaction_interval`). Set by the writer.
    pub created_at: GcTime,
    /// The smallest partition key, `None` iff there are no partitions (R5.2 key-range skipping).
    pub first_key: Option<DecoratedKey>,
    /// The largest partition key, `None` iff there are no partitions.
    pub last_key: Option<DecoratedKey>,
    /// Item counts.
    pub counts: Counts,
    /// Minimum over every timestamp in the data: cells, markers, all tombstones. `Timestamp::MAX`
    /// without data.
    pub min_timestamp: Timestamp,
    /// Maximum over the same timestamps; `Timestamp::MISSING` without data (R2.20).
    pub max_timestamp: Timestamp,
    /// Minimum timestamp of live (and expiring) cells and markers; `Timestamp::MAX` if none (R2.17).
    pub min_live_timestamp: Timestamp,
    /// Minimum timestamp of live (and expiring) row markers, used for shadowable tombstones
    /// (R2.17, R3.4); `Timestamp::MAX` if none.
    pub min_live_row_marker_timestamp: Timestamp,
    /// Minimum deletion time over tombstones (deletion time), expiring cells and markers (expiry)
    /// and live non-expiring data (`GcTime::MAX`, "never"); `GcTime::MAX` without any.
    pub min_deletion_time: GcTime,
    /// Maximum of the same; `GcTime::MAX` as soon as live non-expiring data exists (R2.20, R4.18),
    /// `GcTime::MIN` without any.
    pub max_deletion_time: GcTime,
    /// Tombstone deletion times and expiry times (R2.28); row tombstones count once, at their
    /// max deletion time (R1.19).
    pub drop_times: DropTimeHistogram,
    /// The commitlog interval of the data (flushes; `None` otherwise). Set by the writer.
    pub commitlog_interval: Option<CommitlogInterval>,
    /// Uncompressed size of the data. Set by the writer.
    pub data_size: u64,
}

impl Statistics {
    /// Statistics of an sstable without data.
    pub fn empty(origin: SstableOrigin, table: TableId) -> Statistics {
        Statistics {
            origin,
            table,
            level: 0,
            run_id: 0,
            created_at: GcTime(0),
            first_key: None,
            last_key: None,
            counts: Counts::default(),
            min_timestamp: Timestamp::MAX,
            max_timestamp: Timestamp::MISSING,
            min_live_timestamp: Timestamp::MAX,
            min_live_row_marker_timestamp: Timestamp::MAX,
            min_deletion_time: GcTime::MAX,
            max_deletion_time: GcTime::MIN,
            drop_times: DropTimeHistogram::new(),
            commitlog_interval: None,
            data_size: 0,
        }
    }

    /// Whether `key` lies within `[first_key, last_key]` (always false without partitions).
    pub fn may_contain_key(&self, key: &DecoratedKey) -> bool {
        match (&self.first_key, &self.last_key) {
            (Some(first), Some(last)) => first <= key && key <= last,
            _ => false,
        }
    }

    /// Appends the encoding (`docs/format.md`, "SSTable statistics") to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATISTICS_FORMAT_VERSION);
        out.push(self.origin.code());
        out.extend_from_slice(&self.table.0.to_le_bytes());
        write_varint(out, u64::from(self.level));
        out.extend_from_slice(&self.run_id.to_le_bytes());
        write_i64(out, self.created_at.0);
        write_varint(out, self.data_size);
        let c = &self.counts;
        for n in [c.partitions, c.rows, c.partition_tombstones, c.range_tombstones, c.row_tombstones, c.cell_tombstones, c.expiring_cells] {
            write_varint(out, n);
        }
        match (&self.first_key, &self.last_key) {
            (Some(first), Some(last)) => {
                out.push(1);
                write_bytes(out, first.key.as_bytes());
                write_bytes(out, last.key.as_bytes());
            }
            // A half-set range breaks the invariant; it is written as a flag the decoder rejects.
            (None, None) => out.push(0),
            _ => out.push(2),
        }
        for ts in [self.min_timestamp, self.max_timestamp, self.min_live_timestamp, self.min_live_row_marker_timestamp] {
            write_i64(out, ts.0);
        }
        write_i64(out, self.min_deletion_time.0);
        write_i64(out, self.max_deletion_time.0);
        match &self.commitlog_interval {
            None => out.push(0),
            Some(interval) => {
                out.push(1);
                for rp in [interval.start, interval.end] {
                    out.extend_from_slice(&rp.segment.to_le_bytes());
                    out.extend_from_slice(&rp.offset.to_le_bytes());
                }
            }
        }
        self.drop_times.encode(out);
    }

    /// Decodes a statistics section spanning all of `bytes`, checking every invariant of the
    /// module documentation. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Statistics> {
        let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: 0, shared: None };
        let version = r.u8("version")?;
        if version != STATISTICS_FORMAT_VERSION {
            return Err(r.corrupt(0, format!("unsupported format version {version} (expected {STATISTICS_FORMAT_VERSION})")));
        }
        let code = r.u8("origin")?;
        let origin = SstableOrigin::from_code(code).ok_or_else(|| r.corrupt(1, format!("unknown origin {code}")))?;
        let table = TableId(u128::from_le_bytes(r.array::<16>("table id")?));
        let at = r.pos;
        let level = r.varint("level")?;
        let level = u32::try_from(level).map_err(|_| r.corrupt(at, format!("level {level} over u32")))?;
        let run_id = u64::from_le_bytes(r.array::<8>("run id")?);
        let created_at = GcTime(r.i64("creation time")?);
        let data_size = r.varint("data size")?;
        let counts = Counts {
            partitions: r.varint("partition count")?,
            rows: r.varint("row count")?,
            partition_tombstones: r.varint("partition tombstone count")?,
            range_tombstones: r.varint("range tombstone count")?,
            row_tombstones: r.varint("row tombstone count")?,
            cell_tombstones: r.varint("cell tombstone count")?,
            expiring_cells: r.varint("expiring cell count")?,
        };

        let at = r.pos;
        let (first_key, last_key) = match r.u8("key range flag")? {
            0 if counts.partitions == 0 => (None, None),
            1 if counts.partitions > 0 => {
                let first = decode_key(&mut r, "first key")?;
                let key_at = r.pos;
                let last = decode_key(&mut r, "last key")?;
                if last < first {
                    return Err(r.corrupt(key_at, "last key sorts before the first key"));
                }
                (Some(first), Some(last))
            }
            flag @ (0 | 1) => return Err(r.corrupt(at, format!("key range flag {flag} contradicts {} partition(s)", counts.partitions))),
            flag => return Err(r.corrupt(at, format!("bad key range flag {flag}"))),
        };

        let at = r.pos;
        let min_timestamp = Timestamp(r.i64("min timestamp")?);
        let max_timestamp = Timestamp(r.i64("max timestamp")?);
        let has_data = (min_timestamp, max_timestamp) != (Timestamp::MAX, Timestamp::MISSING);
        if has_data && min_timestamp > max_timestamp {
            return Err(r.corrupt(at, format!("min timestamp {} above max timestamp {}", min_timestamp.0, max_timestamp.0)));
        }
        let at = r.pos;
        let min_live_timestamp = Timestamp(r.i64("min live timestamp")?);
        if min_live_timestamp != Timestamp::MAX && !(min_timestamp <= min_live_timestamp && min_live_timestamp <= max_timestamp) {
            return Err(r.corrupt(at, format!("min live timestamp {} outside the timestamp range", min_live_timestamp.0)));
        }
        let at = r.pos;
        let min_live_row_marker_timestamp = Timestamp(r.i64("min live row marker timestamp")?);
        if min_live_row_marker_timestamp != Timestamp::MAX
            && !(min_live_timestamp <= min_live_row_marker_timestamp && min_live_row_marker_timestamp <= max_timestamp)
        {
            return Err(r.corrupt(at, "min live row marker timestamp outside [min live timestamp, max timestamp]"));
        }

        let at = r.pos;
        let min_deletion_time = GcTime(r.i64("min deletion time")?);
        let max_deletion_time = GcTime(r.i64("max deletion time")?);
        let has_deletion = (min_deletion_time, max_deletion_time) != (GcTime::MAX, GcTime::MIN);
        if has_deletion && min_deletion_time > max_deletion_time {
            return Err(r.corrupt(at, format!("min deletion time {} above max deletion time {}", min_deletion_time.0, max_deletion_time.0)));
        }

        let at = r.pos;
        let commitlog_interval = match r.u8("commitlog interval flag")? {
            0 => None,
            1 => {
                let start = decode_position(&mut r, "commitlog interval start")?;
                let end = decode_position(&mut r, "commitlog interval end")?;
                if end < start {
                    return Err(r.corrupt(at, format!("commitlog interval end {end} before its start {start}")));
                }
                Some(CommitlogInterval { start, end })
            }
            flag => return Err(r.corrupt(at, format!("bad commitlog interval flag {flag}"))),
        };

        let at = r.pos;
        let drop_times = DropTimeHistogram::decode(&mut r)?;
        if let (Some(&(lo, _)), Some(&(hi, _))) = (drop_times.bins().first(), drop_times.bins().last()) {
            if !has_deletion || lo < min_deletion_time.0 || hi > max_deletion_time.0 {
                return Err(r.corrupt(at, "histogram points outside the deletion time range"));
            }
        }
        if r.pos != bytes.len() {
            return Err(r.corrupt(r.pos, format!("{} trailing byte(s)", bytes.len() - r.pos)));
        }
        Ok(Statistics {
            origin,
            table,
            level,
            run_id,
            created_at,
            first_key,
            last_key,
            counts,
            min_timestamp,
            max_timestamp,
            min_live_timestamp,
            min_live_row_marker_timestamp,
            min_deletion_time,
            max_deletion_time,
            drop_times,
            commitlog_interval,
            data_size,
        })
    }
}

/// A partition key in legacy form; its token is recomputed (R1.1).
fn decode_key(r: &mut Reader<'_>, what: &str) -> Result<DecoratedKey> {
    Ok(PartitionKey::from_legacy_bytes(Bytes::copy_from_slice(r.bytes(what)?)).decorate())
}

fn decode_position(r: &mut Reader<'_>, what: &str) -> Result<ReplayPosition> {
    let segment = u64::from_le_bytes(r.array::<8>(what)?);
    let offset = u32::from_le_bytes(r.array::<4>(what)?);
    Ok(ReplayPosition { segment, offset })
}

/// Accumulates [`Statistics`] over the fragments an sstable writer receives (R3.4, R4.18).
///
/// The collector does not validate the stream (the writer does); on an out-of-order stream the
/// key range is still the min and max key seen.
#[derive(Debug, Clone)]
pub struct StatisticsCollector {
    stats: Statistics,
}

impl StatisticsCollector {
    /// A collector for an sstable of `table` written by `origin`.
    pub fn new(origin: SstableOrigin, table: TableId) -> StatisticsCollector {
        StatisticsCollector { stats: Statistics::empty(origin, table) }
    }

    /// Accounts for one fragment.
    pub fn observe(&mut self, fragment: &Fragment) {
        match fragment {
            Fragment::PartitionStart { key, tombstone } => {
                let s = &mut self.stats;
                s.counts.partitions += 1;
                if s.first_key.as_ref().is_none_or(|first| key < first) {
                    s.first_key = Some(key.clone());
                }
                if s.last_key.as_ref().is_none_or(|last| key > last) {
                    s.last_key = Some(key.clone());
                }
                if tombstone.is_some() {
                    s.counts.partition_tombstones += 1;
                    self.tombstone(*tombstone);
                }
            }
            Fragment::StaticRow(cells) => self.cells(cells),
            Fragment::Row { row, .. } => self.row(row),
            Fragment::RangeTombstoneChange(change) => {
                // R1.35: only a change that opens a tombstone is one; a closing change is empty.
                if change.tombstone.is_some() {
                    self.stats.counts.range_tombstones += 1;
                    self.tombstone(change.tombstone);
                }
            }
            Fragment::PartitionEnd => {}
        }
    }

    /// The statistics of everything observed; the writer sets `commitlog_interval`, `level`,
    /// `run_id`, `created_at` and `data_size` afterwards.
    pub fn finish(self) -> Statistics {
        self.stats
    }

    fn row(&mut self, row: &Row) {
        self.stats.counts.rows += 1;
        let t = &row.tombstone;
        if !t.is_none() {
            self.stats.counts.row_tombstones += 1;
            // R1.19 / R2.8: a row tombstone is purged at its max deletion time; it counts once.
            let mut drop_time = GcTime::MIN;
            for part in [t.regular, t.shadowable].into_iter().filter(Tombstone::is_some) {
                self.timestamp(part.timestamp);
                self.deletion_time(part.deletion_time);
                drop_time = drop_time.max(part.deletion_time);
            }
            self.stats.drop_times.update(drop_time);
        }
        match row.marker {
            RowMarker::Missing => {}
            RowMarker::Live { timestamp } => {
                self.live(timestamp, true);
                self.deletion_time(GcTime::MAX);
            }
            RowMarker::Expiring { timestamp, expiry, .. } => {
                self.live(timestamp, true);
                self.droppable(expiry);
            }
            RowMarker::Dead { timestamp, deletion_time } => {
                self.timestamp(timestamp);
                self.droppable(deletion_time);
            }
        }
        self.cells(&row.cells);
    }

    fn cells(&mut self, cells: &Cells) {
        for (_, cell) in cells.iter() {
            match cell {
                Cell::Live { timestamp, .. } => {
                    self.live(*timestamp, false);
                    // R2.20 / R4.18: live data without TTL never expires.
                    self.deletion_time(GcTime::MAX);
                }
                Cell::Expiring { timestamp, expiry, .. } => {
                    self.stats.counts.expiring_cells += 1;
                    self.live(*timestamp, false);
                    // R2.28: the histogram includes expiry times of TTL data.
                    self.droppable(*expiry);
                }
                Cell::Dead { timestamp, deletion_time } => {
                    self.stats.counts.cell_tombstones += 1;
                    self.timestamp(*timestamp);
                    self.droppable(*deletion_time);
                }
            }
        }
    }

    fn tombstone(&mut self, t: Tombstone) {
        self.timestamp(t.timestamp);
        self.droppable(t.deletion_time);
    }

    fn live(&mut self, ts: Timestamp, marker: bool) {
        self.timestamp(ts);
        let s = &mut self.stats;
        s.min_live_timestamp = s.min_live_timestamp.min(ts);
        if marker {
            s.min_live_row_marker_timestamp = s.min_live_row_marker_timestamp.min(ts);
        }
    }

    fn timestamp(&mut self, ts: Timestamp) {
        let s = &mut self.stats;
        s.min_timestamp = s.min_timestamp.min(ts);
        s.max_timestamp = s.max_timestamp.max(ts);
    }

    /// A deletion or expiry time that also goes into the drop-time histogram.
    fn droppable(&mut self, time: GcTime) {
        self.deletion_time(time);
        self.stats.drop_times.update(time);
    }

    fn deletion_time(&mut self, time: GcTime) {
        let s = &mut self.stats;
        s.min_deletion_time = s.min_deletion_time.min(time);
        s.max_deletion_time = s.max_deletion_time.max(time);
    }
}

/// The property the `sstable_statistics` fuzz target and the stable corpus test check: decoding
/// never panics; a decoded value re-encodes to exactly the input and decodes again to itself; a
/// failure is a corruption error of this structure with an offset inside the input. `Err`
/// describes a violation.
#[doc(hidden)]
pub fn check_decode(bytes: &[u8]) -> std::result::Result<(), String> {
    match Statistics::decode(bytes) {
        Ok(stats) => {
            let mut again = Vec::with_capacity(bytes.len());
            stats.encode(&mut again);
            if again != bytes {
                return Err(format!("re-encoding changed the bytes: {bytes:02x?} became {again:02x?}"));
            }
            match Statistics::decode(&again) {
                Ok(twice) if twice == stats => Ok(()),
                other => Err(format!("decoding the re-encoding gave {other:?}, expected {stats:?}")),
            }
        }
        Err(Error::Corrupt { structure: STRUCTURE, offset, .. }) if offset <= bytes.len() => Ok(()),
        Err(e) => Err(format!("unexpected error: {e:?}")),
    }
}
