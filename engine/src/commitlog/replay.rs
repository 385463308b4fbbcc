//! Replay on open (R3.12, P1, P2, P4): every live segment in id order, each entry handed to the
//! caller, which re-applies it to memtables (apply is idempotent, R3.2).
//!
//! Steps:
//! 1. list the directory; `Recycled-` files are kept for reuse and never replayed;
//! 2. scan the segments newest first until one holds records: every older segment is followed
//!    by records, so it must be intact and sealed (see `talus_format::commitlog_segment`);
//! 3. scan them oldest first and hand each mutations record to the caller; corruption fails the
//!    open with the file and offset, or, under [`CorruptionPolicy::SkipAndCount`], is skipped and
//!    counted in the report;
//! 4. end the log cleanly: the newest segment's torn tail is cut off by syncing the valid prefix
//!    and then writing a seal record after it; segments without records are removed.
//!
//! After a crash during replay, replaying again gives the same result: replay writes only to
//! remove segments that hold no record and to seal the newest segment after its valid data.
//!
//! Thread-safety: runs before the commitlog starts; single-threaded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use talus_format::commitlog_segment::{encode_record, scan_segment, ScanOptions, SegmentEnd, SegmentScan, RECORD_MUTATIONS, RECORD_SEAL};
use talus_format::fs::{create_dir_durable, Fs, OpenMode};
use talus_format::TableId;

use super::position::ReplayPosition;
use super::segment_file::{delete_segment, segment_path, SegmentName};
use crate::error::{io_error, Error, Result};

/// What replay does with a corrupt region before the end of the valid log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorruptionPolicy {
    /// Fail the open with an error naming the file and offset.
    #[default]
    Fail,
    /// Skip the region, replay the rest, and count what was skipped in the report.
    SkipAndCount,
}

/// One entry handed to the caller.
#[derive(Debug, Clone, Copy)]
pub struct ReplayedEntry<'a> {
    /// Its position.
    pub position: ReplayPosition,
    /// The body of the mutations record.
    pub body: &'a [u8],
}

/// What replay found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments that held records.
    pub segments_replayed: usize,
    /// Entries handed to the caller.
    pub entries_replayed: u64,
    /// The position of the last entry replayed: the log was recovered up to here.
    pub recovered_to: Option<ReplayPosition>,
    /// Where the torn or unwritten tail of the newest segment was cut off, if anything followed
    /// the valid data there.
    pub tail_cut_at: Option<ReplayPosition>,
    /// Corrupt regions skipped (only under [`CorruptionPolicy::SkipAndCount`]).
    pub corrupt_regions_skipped: u64,
    /// Bytes in those regions.
    pub corrupt_bytes_skipped: u64,
    /// Entries whose mutations could not be decoded, skipped under `SkipAndCount`.
    pub undecodable_entries_skipped: u64,
    /// Segment files without any record (interrupted creation), removed.
    pub empty_segments_removed: usize,
    /// Entries per table in each replayed segment: what stays dirty until flushed.
    pub dirty: BTreeMap<u64, BTreeMap<TableId, u64>>,
    /// Tables with entries in each replayed segment that were skipped as already flushed. They
    /// are clean, but the segment still holds their writes: while it lives, their tombstones
    /// must not be purged (R2.15), or a compaction that drops the flushed sstables could let a
    /// later replay bring the writes back.
    pub flushed: BTreeMap<u64, BTreeSet<TableId>>,
    /// Recycled files available for reuse.
    pub recycled: Vec<u64>,
    /// The id the next new segment gets.
    pub next_segment_id: u64,
}

fn corrupt_error(dir: &Path, id: u64, offset: u64, reason: String) -> Error {
    Error::CommitlogCorrupt { file: segment_path(dir, SegmentName::Live(id)).display().to_string(), offset, reason }
}

fn scan<'a>(dir: &Path, id: u64, bytes: &'a [u8], followed_by_records: bool, policy: CorruptionPolicy) -> Result<SegmentScan<'a>> {
    let options = ScanOptions { expected_id: id, followed_by_records, skip_corrupt: policy == CorruptionPolicy::SkipAndCount };
    scan_segment(bytes, options).map_err(|e| match e {
        talus_format::Error::Corrupt { offset, reason, .. } => corrupt_error(dir, id, offset as u64, reason),
        other => Error::Format(other),
    })
}

/// What the caller did with one replayed entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayedTables {
    /// Tables the entry was applied to (their segments stay dirty until flushed).
    pub applied: Vec<TableId>,
    /// Tables whose part of the entry was skipped because an sstable already holds it.
    pub already_flushed: Vec<TableId>,
}

/// Replays the commitlog in `dir`, calling `apply` with each entry in log order; `apply` returns
/// what it did with the entry's tables (see [`ReplayedTables`]) or an error, which fails the replay
/// (a decoding error is reported as corruption at the entry's file and offset, or skipped and
/// counted under `SkipAndCount`).
pub fn recover(
    fs: &dyn Fs,
    dir: &Path,
    policy: CorruptionPolicy,
    mut apply: impl FnMut(ReplayedEntry<'_>) -> Result<ReplayedTables>,
) -> Result<RecoveryReport> {
    create_dir_durable(fs, dir).map_err(io_error(dir))?;
    let names = fs.list(dir).map_err(io_error(dir))?;
    let names: Vec<SegmentName> = names.iter().filter_map(|n| SegmentName::parse(n)).collect();
    let mut report = RecoveryReport::default();
    let mut live: Vec<u64> = names.iter().filter_map(|n| if let SegmentName::Live(id) = n { Some(*id) } else { None }).collect();
    live.sort_unstable();
    report.recycled = names.iter().filter_map(|n| if let SegmentName::Recycled(id) = n { Some(*id) } else { None }).collect();
    let read = |id: u64| -> Result<Vec<u8>> {
        let path = segment_path(dir, SegmentName::Live(id));
        fs.open(&path, OpenMode::Existing).and_then(|f| f.read_all()).map_err(io_error(&path))
    };

    // Newest first, until a segment holds records: every segment older than it is followed by
    // records. Usually only the newest segment is read here (and read again below).
    let mut last_with_records = None;
    for (i, &id) in live.iter().enumerate().rev() {
        let bytes = read(id)?;
        if !scan(dir, id, &bytes, false, policy)?.records.is_empty() {
            last_with_records = Some(i);
            break;
        }
    }

    // Oldest first: replay.
    let mut newest_with_records = None;
    for (i, &id) in live.iter().enumerate() {
        let bytes = read(id)?;
        let followed = last_with_records.is_some_and(|last| i < last);
        let scan = scan(dir, id, &bytes, followed, policy)?;
        report.corrupt_regions_skipped += scan.skipped.len() as u64;
        report.corrupt_bytes_skipped += scan.skipped.iter().map(|r| u64::from(r.len)).sum::<u64>();
        if scan.records.is_empty() {
            delete_segment(fs, dir, SegmentName::Live(id)).map_err(io_error(&segment_path(dir, SegmentName::Live(id))))?;
            report.empty_segments_removed += 1;
            continue;
        }
        report.segments_replayed += 1;
        let dirty = report.dirty.entry(id).or_default();
        let flushed = report.flushed.entry(id).or_default();
        for record in scan.records.iter().filter(|r| r.kind == RECORD_MUTATIONS) {
            let position = ReplayPosition { segment: id, offset: record.offset };
            match apply(ReplayedEntry { position, body: record.body }) {
                Ok(tables) => {
                    for table in tables.applied {
                        *dirty.entry(table).or_default() += 1;
                    }
                    flushed.extend(tables.already_flushed);
                }
                Err(Error::Format(_)) if policy == CorruptionPolicy::SkipAndCount => report.undecodable_entries_skipped += 1,
                Err(Error::Format(e)) => return Err(corrupt_error(dir, id, u64::from(record.offset), format!("undecodable entry: {e}"))),
                Err(other) => return Err(other),
            }
            report.entries_replayed += 1;
            report.recovered_to = Some(position);
        }
        newest_with_records = Some((id, scan.end));
    }

    if let Some((id, SegmentEnd::Open(end))) = newest_with_records {
        seal_tail(fs, dir, id, end)?;
        report.tail_cut_at = Some(ReplayPosition { segment: id, offset: end });
    }
    let max_id = names.iter().map(|n| n.id()).max().map_or(0, |m| m + 1);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    report.next_segment_id = max_id.max(millis);
    Ok(report)
}

/// Ends the newest segment at `end`: syncs the valid prefix first (it may only be in the page
/// cache after a process crash), then writes and syncs a seal record, so the seal never claims
/// more than is durable.
fn seal_tail(fs: &dyn Fs, dir: &Path, id: u64, end: u32) -> Result<()> {
    let path = segment_path(dir, SegmentName::Live(id));
    let file = fs.open(&path, OpenMode::Existing).map_err(io_error(&path))?;
    file.sync().map_err(io_error(&path))?;
    let mut seal = Vec::new();
    encode_record(id, end, RECORD_SEAL, &[], &mut seal);
    file.write_all_at(&seal, u64::from(end)).map_err(io_error(&path))?;
    file.sync().map_err(io_error(&path))
}
