//! The property the fuzz target and the corpus test assert; panics on violation — test support
//! only.
//!
//! [`check_scan`] runs [`scan_segment`] over arbitrary bytes under several [`ScanOptions`] and
//! checks every outcome against a brute-force reading of the rules in the
//! [`commitlog_segment`](crate::commitlog_segment) module documentation: which records are
//! returned, where the data ends, which offset is corrupt and which regions are skipped. The
//! `commitlog_segment` fuzz target (`fuzz/fuzz_targets/commitlog_segment.rs`) and the corpus test
//! in `format/tests/commitlog_segment.rs` both call it.
//!
//! Random bytes almost never hold a record with a valid xxh3 checksum, so the fuzzer alone would
//! only test the rejection paths; [`segment_from_recipe`] turns the same fuzzer bytes into a
//! segment written with the real encoder (valid, stale, damaged, synced and unsynced records),
//! which [`check_scan`] then checks too.
//!
//! Thread-safety: pure functions.

// Panicking is this module's whole purpose: each `assert!`/`panic!` reports a violated property
// to the fuzzer or to the test harness. Nothing outside tests and fuzz targets calls it.
#![allow(clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::commitlog_segment::{
    decode_mutations_body, encode_mutations_body, encode_record, encode_segment_header, scan_segment, ScanOptions, SegmentEnd, SegmentScan,
    RECORD_HEADER_LEN, RECORD_MUTATIONS, RECORD_SEAL, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
use crate::error::{Error, Result};
use crate::mutation_codec::decode_mutation;

/// The `structure` of the scan's `Corrupt` errors.
const STRUCTURE: &str = "commitlog segment";

/// Expected ids tried on every input, besides the ids read from the input itself.
const FIXED_IDS: [u64; 1] = [0];

/// The property the fuzz target and the corpus test assert; panics on violation — test support
/// only.
///
/// Checks [`scan_segment`] on `bytes` against the format's rules, for the ids in the header (bytes
/// 8..16) and in the first record (bytes 32..40) and id 0, with and without
/// `followed_by_records` and `skip_corrupt`. Also decodes every returned mutations record (body
/// and mutations), which must not panic. Panics on any violation.
pub fn check_scan(bytes: &[u8]) {
    let mut decoded = BTreeSet::new();
    for id in candidate_ids(bytes) {
        let model = Model::new(bytes, id);
        for followed_by_records in [false, true] {
            let strict = ScanOptions { expected_id: id, followed_by_records, skip_corrupt: false };
            let skipping = ScanOptions { skip_corrupt: true, ..strict };
            let strict_result = scan_segment(bytes, strict);
            let skip_result = scan_segment(bytes, skipping);
            check_strict(&model, strict, &strict_result);
            check_skipping(&model, skipping, &strict_result, &skip_result);
            for scan in [&strict_result, &skip_result].into_iter().filter_map(|r| r.as_ref().ok()) {
                for record in scan.records.iter().filter(|r| r.kind == RECORD_MUTATIONS) {
                    // The body at an offset does not depend on the expected id: decode it once.
                    if decoded.insert(record.offset) {
                        check_body(record.body);
                    }
                }
            }
        }
    }
}

fn candidate_ids(bytes: &[u8]) -> Vec<u64> {
    let read = [8, SEGMENT_HEADER_LEN + 8].into_iter().filter(|&at| at + 8 <= bytes.len()).map(|at| le_u64(bytes, at));
    let mut ids: Vec<u64> = read.chain(FIXED_IDS).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A valid record, as the model reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModelRecord {
    offset: usize,
    end: usize,
    durable_before: usize,
    kind: u8,
}

/// The record at `pos` if the bytes there are a valid record of segment `id`: payload length at
/// least 1 and within the input, `durable_before <= pos`, the id, and the xxh3 of the first 16
/// header bytes followed by the payload equal to the stored checksum.
fn read_record(b: &[u8], id: u64, pos: usize) -> Option<ModelRecord> {
    if pos + RECORD_HEADER_LEN > b.len() || le_u64(b, pos + 8) != id {
        return None;
    }
    let payload_len = le_u32(b, pos) as usize;
    let durable_before = le_u32(b, pos + 4) as usize;
    let end = pos + RECORD_HEADER_LEN + payload_len;
    if payload_len == 0 || durable_before > pos || end > b.len() {
        return None;
    }
    let mut covered = b[pos..pos + 16].to_vec();
    covered.extend_from_slice(&b[pos + RECORD_HEADER_LEN..end]);
    if xxh3_64(&covered) != le_u64(b, pos + 16) {
        return None;
    }
    Some(ModelRecord { offset: pos, end, durable_before, kind: b[pos + RECORD_HEADER_LEN] })
}

/// The format's rules applied by brute force (every offset tried), sharing no code with the scan.
struct Model<'a> {
    bytes: &'a [u8],
    id: u64,
    /// Every valid record of segment `id` after the header, by offset (overlapping ones included).
    valid: BTreeMap<usize, ModelRecord>,
    /// For the valid records in offset order: the offset, and the largest `durable_before` of that
    /// record and all later ones.
    later_durable: Vec<(usize, usize)>,
}

impl<'a> Model<'a> {
    fn new(bytes: &'a [u8], id: u64) -> Model<'a> {
        let valid: BTreeMap<usize, ModelRecord> =
            (SEGMENT_HEADER_LEN..bytes.len()).filter_map(|pos| read_record(bytes, id, pos)).map(|r| (r.offset, r)).collect();
        let mut later_durable: Vec<(usize, usize)> = Vec::with_capacity(valid.len());
        for r in valid.values().rev() {
            let max = later_durable.last().map_or(r.durable_before, |&(_, d)| d.max(r.durable_before));
            later_durable.push((r.offset, max));
        }
        later_durable.reverse();
        Model { bytes, id, valid, later_durable }
    }

    fn record_at(&self, pos: usize) -> Option<ModelRecord> {
        self.valid.get(&pos).copied()
    }

    /// Magic and checksum are right (whatever version and id it names): not a torn header.
    fn header_intact(&self) -> bool {
        self.bytes.get(..SEGMENT_HEADER_LEN).is_some_and(|h| h[0..4] == SEGMENT_MAGIC && xxh3_64(&h[0..16]) == le_u64(h, 16))
    }

    fn header_ok(&self) -> bool {
        let Some(h) = self.bytes.get(..SEGMENT_HEADER_LEN) else { return false };
        h[0..4] == SEGMENT_MAGIC && le_u32(h, 4) == SEGMENT_FORMAT_VERSION && le_u64(h, 8) == self.id && xxh3_64(&h[0..16]) == le_u64(h, 16)
    }

    /// Whether a valid record starts after `pos` and before `end`.
    fn any_valid_within(&self, pos: usize, end: usize) -> bool {
        pos + 1 < end && self.valid.range(pos + 1..end).next().is_some()
    }

    /// Whether invalid bytes at `pos` are corruption rather than an unsynced tail: a later segment
    /// holds records, or a later valid record was appended after offset `pos` had been synced.
    fn proven_synced(&self, pos: usize, followed_by_records: bool) -> bool {
        let first_later = self.later_durable.partition_point(|&(offset, _)| offset <= pos);
        followed_by_records || self.later_durable.get(first_later).is_some_and(|&(_, durable)| durable > pos)
    }

    /// The valid records chained from the header on: each starts where the previous one ends; the
    /// chain stops at the first invalid offset, after a seal, or at a record of an unknown kind.
    fn chain(&self) -> Vec<ModelRecord> {
        let mut chain = Vec::new();
        let mut pos = SEGMENT_HEADER_LEN;
        while let Some(record) = self.record_at(pos) {
            chain.push(record);
            if record.kind != RECORD_MUTATIONS {
                break;
            }
            pos = record.end;
        }
        chain
    }

    /// The outcome of a strict scan: the records and where the data ends, or the offset of the
    /// corruption.
    fn strict(&self, followed_by_records: bool) -> std::result::Result<(Vec<ModelRecord>, SegmentEnd), usize> {
        if !self.header_ok() {
            let records_behind = !self.valid.is_empty();
            return if followed_by_records || records_behind || self.header_intact() {
                Err(0)
            } else {
                Ok((Vec::new(), SegmentEnd::Unwritten))
            };
        }
        let chain = self.chain();
        match chain.last().copied() {
            Some(last) if last.kind == RECORD_SEAL => Ok((chain, SegmentEnd::Sealed(last.end as u32))),
            Some(last) if last.kind != RECORD_MUTATIONS => Err(last.offset),
            last => {
                let pos = last.map_or(SEGMENT_HEADER_LEN, |r| r.end);
                if self.proven_synced(pos, followed_by_records) {
                    Err(pos)
                } else {
                    Ok((chain, SegmentEnd::Open(pos as u32)))
                }
            }
        }
    }
}

/// Every returned record re-verifies on its own, records are in increasing, non-overlapping order
/// after the header, and only the last one may be a seal.
fn check_records(model: &Model<'_>, scan: &SegmentScan<'_>) {
    let mut prev_end = SEGMENT_HEADER_LEN;
    for (i, record) in scan.records.iter().enumerate() {
        let (offset, end) = (record.offset as usize, record.end as usize);
        assert!(offset >= prev_end, "record at {offset} overlaps or precedes the previous one (ending at {prev_end})");
        assert!(offset + RECORD_HEADER_LEN < end && end <= model.bytes.len(), "record {offset}..{end} out of bounds");
        let Some(verified) = model.record_at(offset) else { panic!("returned record at {offset} does not verify") };
        assert_eq!(verified.end, end, "record at {offset}: wrong end");
        assert!(verified.durable_before <= offset);
        assert_eq!(record.kind, verified.kind, "record at {offset}: wrong kind");
        assert_eq!(record.body, &model.bytes[offset + RECORD_HEADER_LEN + 1..end], "record at {offset}: wrong body");
        let last = i + 1 == scan.records.len();
        assert!(record.kind == RECORD_MUTATIONS || (record.kind == RECORD_SEAL && last), "record at {offset}: kind {}", record.kind);
        prev_end = end;
    }
    if let SegmentEnd::Sealed(at) = scan.end {
        assert!(scan.records.last().is_some_and(|r| r.kind == RECORD_SEAL && r.end == at), "Sealed({at}) without that seal");
    }
}

fn corrupt_offset(error: &Error) -> usize {
    match error {
        Error::Corrupt { structure: STRUCTURE, offset, .. } => *offset,
        other => panic!("scan failed with an unexpected error kind: {other}"),
    }
}

/// The strict scan matches the model exactly: the same records and end, or an error at the same
/// offset; nothing is skipped.
fn check_strict(model: &Model<'_>, options: ScanOptions, result: &Result<SegmentScan<'_>>) {
    match (model.strict(options.followed_by_records), result) {
        (Ok((chain, end)), Ok(scan)) => {
            check_records(model, scan);
            let got: Vec<(usize, usize)> = scan.records.iter().map(|r| (r.offset as usize, r.end as usize)).collect();
            let expected: Vec<(usize, usize)> = chain.iter().map(|r| (r.offset, r.end)).collect();
            assert_eq!(got, expected, "{options:?}: records differ from the contiguous chain after the header");
            assert_eq!(scan.end, end, "{options:?}: wrong end");
            assert!(scan.skipped.is_empty(), "{options:?}: a strict scan skipped {:?}", scan.skipped);
        }
        (Err(at), Err(error)) => assert_eq!(corrupt_offset(error), at, "{options:?}: error {error} at the wrong offset"),
        (expected, got) => panic!("{options:?}: expected {expected:?}, got {got:?}"),
    }
}

/// The skipping scan: equal to the strict one when that succeeds; otherwise the records and the
/// skipped regions tile the segment from the header on, each region starts where corruption is
/// proven and ends at the next valid record (or the end of the input), and only an unknown record
/// kind or a bad header fails it.
fn check_skipping(model: &Model<'_>, options: ScanOptions, strict: &Result<SegmentScan<'_>>, result: &Result<SegmentScan<'_>>) {
    let followed = options.followed_by_records;
    let scan = match (strict, result) {
        (Ok(strict), Ok(scan)) => return assert_eq!(scan, strict, "{options:?}: skipping changed a clean scan"),
        (Ok(_), Err(error)) => panic!("{options:?}: skipping failed ({error}) where the strict scan succeeded"),
        (Err(_), Err(error)) => {
            let at = corrupt_offset(error);
            let unknown_kind = model.record_at(at).is_some_and(|r| r.kind != RECORD_MUTATIONS && r.kind != RECORD_SEAL);
            assert!((at == 0 && !model.header_ok()) || unknown_kind, "{options:?}: skipping failed at {at}: {error}");
            return;
        }
        (Err(_), Ok(scan)) => scan,
    };
    assert!(model.header_ok(), "{options:?}: skipping accepted a bad header");
    check_records(model, scan);
    let Err(first_corrupt) = model.strict(followed) else { panic!("{options:?}: the model accepts what the strict scan rejected") };

    // Records and skipped regions tile [header, end of data).
    let mut items: Vec<(usize, usize, bool)> = scan.records.iter().map(|r| (r.offset as usize, r.end as usize, false)).collect();
    items.extend(scan.skipped.iter().map(|s| (s.offset as usize, s.offset as usize + s.len as usize, true)));
    items.sort_unstable();
    let mut cursor = SEGMENT_HEADER_LEN;
    for &(offset, end, skipped) in &items {
        assert_eq!(offset, cursor, "{options:?}: gap or overlap at {cursor} (next item {offset}..{end})");
        // Only a missing seal right at the end of the input is skipped as an empty region.
        let empty_at_end = skipped && offset == end && end == model.bytes.len();
        assert!((end > offset || empty_at_end) && end <= model.bytes.len(), "{options:?}: item {offset}..{end} out of bounds");
        if skipped {
            assert!(model.record_at(offset).is_none(), "{options:?}: skipped a valid record at {offset}");
            assert!(model.proven_synced(offset, followed), "{options:?}: skipped {offset}..{end}, which is not proven corrupt");
            assert!(!model.any_valid_within(offset, end), "{options:?}: skipped region {offset}..{end} hides a record");
            if end < model.bytes.len() {
                assert!(model.record_at(end).is_some(), "{options:?}: skipped region ends at {end}, not at a record");
            }
        }
        cursor = end;
    }
    // Before the first corruption, the records are the chain from the header.
    let before: Vec<usize> = scan.records.iter().map(|r| r.offset as usize).take_while(|&o| o < first_corrupt).collect();
    let chain: Vec<usize> = model.chain().iter().map(|r| r.offset).collect();
    assert_eq!(before, chain, "{options:?}: records before the corruption at {first_corrupt} differ from the chain");
    assert_eq!(scan.skipped.first().map(|s| s.offset as usize), Some(first_corrupt), "{options:?}: corruption not skipped");
    match scan.end {
        SegmentEnd::Sealed(_) => {}
        SegmentEnd::Open(at) => {
            let at = at as usize;
            match items.last() {
                Some(&(offset, end, true)) => {
                    assert_eq!(end, model.bytes.len(), "{options:?}: final skipped region does not reach the end");
                    assert_eq!(at, offset, "{options:?}: Open({at}) after a final skipped region at {offset}");
                }
                _ => {
                    assert_eq!(at, cursor, "{options:?}: Open({at}) is not where the records end ({cursor})");
                    assert!(model.record_at(at).is_none(), "{options:?}: Open({at}) before a valid record");
                    assert!(at == model.bytes.len() || !model.proven_synced(at, followed), "{options:?}: Open({at}) at proven corruption");
                }
            }
        }
        SegmentEnd::Unwritten => panic!("{options:?}: Unwritten with a valid header"),
    }
}

/// Splitting a mutations body never panics and is exact; decoding each mutation never panics.
fn check_body(body: &[u8]) {
    match decode_mutations_body(body) {
        Ok(mutations) => {
            let mut again = Vec::new();
            encode_mutations_body(mutations.iter().copied(), &mut again);
            assert_eq!(again, body, "re-encoding a decoded mutations body changed the bytes");
            for m in mutations {
                match decode_mutation(m) {
                    Ok(_) | Err(Error::Corrupt { structure: "mutation", .. }) => {}
                    Err(e) => panic!("unexpected mutation decoding error kind: {e}"),
                }
            }
        }
        Err(Error::Corrupt { structure: STRUCTURE, offset, .. }) => assert!(offset <= body.len()),
        Err(e) => panic!("unexpected mutations body error kind: {e}"),
    }
}

/// The segment id of the segments [`segment_from_recipe`] builds.
pub const RECIPE_ID: u64 = 7;
/// The id of the stale records (an older segment's) that [`segment_from_recipe`] writes.
pub const RECIPE_STALE_ID: u64 = 3;
/// [`segment_from_recipe`] stops adding to a segment once it is this long.
const RECIPE_MAX_LEN: usize = 4 << 10;

/// Reads a recipe; zeros once it is exhausted.
struct Recipe<'a> {
    bytes: &'a [u8],
}

impl<'a> Recipe<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let taken = self.take(4);
        b[..taken.len()].copy_from_slice(taken);
        u32::from_le_bytes(b)
    }
}

/// Builds a segment of [`RECIPE_ID`] from arbitrary bytes, so that fuzzing reaches valid records.
///
/// The first byte picks the header (valid; another segment's; zeros), then each pair of bytes
/// `op, arg` appends: a mutations record (its body an encoded list, or raw bytes, taken from the
/// recipe; `durable_before` the last sync, its own offset, or any value), a seal or a record of
/// an unknown kind, a stale record of [`RECIPE_STALE_ID`], a sync point, zeros, a bit flip at a
/// chosen distance from the end, raw bytes, or a truncation.
pub fn segment_from_recipe(recipe: &[u8]) -> Vec<u8> {
    let mut r = Recipe { bytes: recipe };
    let Some(first) = r.byte() else { return Vec::new() };
    let mut out = match first % 4 {
        0 | 1 => encode_segment_header(RECIPE_ID).to_vec(),
        2 => encode_segment_header(RECIPE_STALE_ID).to_vec(),
        _ => vec![0; SEGMENT_HEADER_LEN],
    };
    let mut synced = SEGMENT_HEADER_LEN as u32;
    while out.len() < RECIPE_MAX_LEN {
        let Some(op) = r.byte() else { break };
        let arg = r.byte().unwrap_or(0);
        let offset = out.len() as u32;
        match op % 8 {
            0 | 1 => {
                let raw = r.take(usize::from(arg % 64));
                let mut body = Vec::new();
                if op % 8 == 0 {
                    encode_mutations_body([raw], &mut body);
                } else {
                    body.extend_from_slice(raw);
                }
                let durable_before = match arg >> 6 {
                    0 | 1 => synced,
                    2 => offset,
                    _ => r.u32(),
                };
                encode_record(RECIPE_ID, durable_before, RECORD_MUTATIONS, &body, &mut out);
            }
            2 => {
                let kind = if arg < 0xf0 { RECORD_SEAL } else { arg };
                encode_record(RECIPE_ID, synced, kind, &[], &mut out);
            }
            3 => {
                let body = r.take(usize::from(arg % 32)).to_vec();
                let durable_before = r.u32();
                encode_record(RECIPE_STALE_ID, durable_before, RECORD_MUTATIONS, &body, &mut out);
            }
            4 => synced = offset,
            5 => out.resize(out.len() + usize::from(arg), 0),
            6 if !out.is_empty() => {
                let back = usize::from(r.byte().unwrap_or(0)) | usize::from(r.byte().unwrap_or(0)) << 8;
                let at = out.len() - 1 - back % out.len();
                out[at] ^= 1 << (arg % 8);
            }
            _ if arg & 0x80 != 0 => out.truncate(out.len().saturating_sub(usize::from(arg & 0x7f))),
            _ => out.extend_from_slice(r.take(usize::from(arg))),
        }
    }
    out
}
