//! The byte format of a commitlog segment, and the scan that decides what of it to replay
//! (DESIGN §3, R3.10; specified with diagrams in `docs/format.md`, "Commitlog segments").
//!
//! A segment is a 24-byte header followed by records. Every record carries its payload length, the
//! id of the segment it was written for, the offset up to which the segment was durable when the
//! record was appended (`durable_before`), and an xxh3 checksum over all of that and the payload:
//!
//! - the segment id rejects a record left over in a recycled file (bug class 6): such a record has
//!   a valid checksum but a foreign id, so it reads as the end of the data, like zeros do;
//! - `durable_before` tells a torn tail from corruption (bug class 2). Bytes that do not form a
//!   valid record at offset `b` are **corruption** when a later valid record proves that offset `b`
//!   had been synced (its `durable_before > b`), or when a later segment holds records (then this
//!   segment was sealed and synced whole before the next one was written). Otherwise they are the
//!   unsynced **tail** that a power loss may tear, zero or reorder; the scan stops there. Valid
//!   records after a torn region are never replayed, so the recovered log is always a prefix;
//! - a segment closed by a roll ends with a seal record, so a later segment's records prove that
//!   everything up to the seal is intact.
//!
//! A corrupt region is an [`Error::Corrupt`] naming its offset, unless the caller asked to skip
//! corrupt regions: then the scan resumes at the next valid record and reports each skipped region.
//!
//! Invariants: [`scan_segment`] never panics and never returns a record whose checksum fails or
//! whose id is not the expected one; it allocates only the list of record slices.
//! Thread-safety: pure functions, `Send + Sync`.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// The magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"TLCL";
/// The segment format version.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 24;

/// Record kind: a batch of mutations (one `apply`/`apply_batch` call).
pub const RECORD_MUTATIONS: u8 = 1;
/// Record kind: the segment was closed by a roll; nothing follows.
pub const RECORD_SEAL: u8 = 2;

const STRUCTURE: &str = "commitlog segment";

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt { structure: STRUCTURE, offset, reason: reason.into() }
}

/// Encodes the header of segment `id`.
pub fn encode_segment_header(id: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..8].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    let sum = xxh3_64(&h[0..16]);
    h[16..24].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The encoded length of a record whose body is `body_len` bytes.
pub fn record_len(body_len: usize) -> usize {
    RECORD_HEADER_LEN + 1 + body_len
}

/// Appends a record of `kind` with `body` for segment `id` to `out`. The payload is the kind byte
/// followed by the body; `durable_before` is the segment offset synced when the record was made.
pub fn encode_record(id: u64, durable_before: u32, kind: u8, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let payload_len = (1 + body.len()) as u32;
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&durable_before.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    out.extend_from_slice(body);
    let sum = checksum(&out[start..start + 16], &out[start + RECORD_HEADER_LEN..]);
    out[start + 16..start + 24].copy_from_slice(&sum.to_le_bytes());
}

fn checksum(head: &[u8], payload: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(head);
    hasher.update(payload);
    hasher.digest()
}

/// A valid record found by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord<'a> {
    /// Offset of the record in the segment.
    pub offset: u32,
    /// Offset just past the record.
    pub end: u32,
    /// The record kind ([`RECORD_MUTATIONS`] or [`RECORD_SEAL`]).
    pub kind: u8,
    /// The body (the payload after the kind byte).
    pub body: &'a [u8],
}

/// Where and how the valid data of a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// No valid header and no valid record: a segment whose creation a crash interrupted.
    Unwritten,
    /// A seal record ends the segment at this offset.
    Sealed(u32),
    /// The data ends at this offset (zeros, stale records, a torn tail or the end of the file).
    Open(u32),
}

/// A corrupt region skipped at the caller's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedRegion {
    /// First byte of the region.
    pub offset: u32,
    /// Length of the region.
    pub len: u32,
}

/// What the scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// The valid records in order (seal included).
    pub records: Vec<SegmentRecord<'a>>,
    /// How the valid data ends.
    pub end: SegmentEnd,
    /// Corrupt regions skipped (empty unless skipping was asked for).
    pub skipped: Vec<SkippedRegion>,
}

/// How to scan a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// The id the segment must carry (from its file name).
    pub expected_id: u64,
    /// A later segment holds valid records, so this one must be intact and sealed.
    pub followed_by_records: bool,
    /// Skip corrupt regions (and report them) instead of failing.
    pub skip_corrupt: bool,
}

/// Parses the record at `pos`, or `None` if the bytes there are not a valid record of segment `id`.
fn record_at(bytes: &[u8], pos: usize, id: u64) -> Option<SegmentRecord<'_>> {
    let head = bytes.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let field = |at: usize, n: usize| -> Option<&[u8]> { head.get(at..at + n) };
    let payload_len = u32::from_le_bytes(field(0, 4)?.try_into().ok()?) as usize;
    let durable_before = u32::from_le_bytes(field(4, 4)?.try_into().ok()?) as usize;
    let record_id = u64::from_le_bytes(field(8, 8)?.try_into().ok()?);
    let sum = u64::from_le_bytes(field(16, 8)?.try_into().ok()?);
    if record_id != id || payload_len == 0 || durable_before > pos {
        return None;
    }
    let body_start = pos + RECORD_HEADER_LEN;
    let end = body_start.checked_add(payload_len)?;
    let payload = bytes.get(body_start..end)?;
    if checksum(&head[0..16], payload) != sum {
        return None;
    }
    let (&kind, body) = payload.split_first()?;
    Some(SegmentRecord { offset: u32::try_from(pos).ok()?, end: u32::try_from(end).ok()?, kind, body })
}

/// The first valid record at an offset after `pos`.
fn next_valid(bytes: &[u8], pos: usize, id: u64) -> Option<SegmentRecord<'_>> {
    let id_bytes = id.to_le_bytes();
    (pos + 1..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .filter(|&p| bytes.get(p + 8..p + 16) == Some(&id_bytes[..]))
        .find_map(|p| record_at(bytes, p, id))
}

/// Whether a valid record after `pos` proves that offset `pos` had been synced.
fn proves_durable(bytes: &[u8], pos: usize, id: u64) -> bool {
    let mut from = pos;
    while let Some(r) = next_valid(bytes, from, id) {
        if r.offset as usize > pos && (durable_before(bytes, r.offset as usize) > pos) {
            return true;
        }
        from = r.offset as usize;
    }
    false
}

fn durable_before(bytes: &[u8], record_offset: usize) -> usize {
    bytes.get(record_offset + 4..record_offset + 8).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0) as usize
}

/// Scans segment bytes: validates the header, collects the valid records, and decides where the
/// data ends or which region is corrupt (see the module documentation).
pub fn scan_segment(bytes: &[u8], options: ScanOptions) -> Result<SegmentScan<'_>> {
    let id = options.expected_id;
    let mut scan = SegmentScan { records: Vec::new(), end: SegmentEnd::Unwritten, skipped: Vec::new() };
    if bytes.len() > u32::MAX as usize {
        return Err(corrupt(0, format!("segment of {} bytes exceeds the 4 GiB limit", bytes.len())));
    }
    match check_header(bytes, id) {
        HeaderCheck::Valid => {}
        // A crash while the segment was being created leaves a torn header and nothing else;
        // records behind a bad header mean the header itself was damaged.
        HeaderCheck::Torn(reason) => {
            return match next_valid(bytes, SEGMENT_HEADER_LEN - 1, id) {
                None if !options.followed_by_records => Ok(scan),
                _ => Err(corrupt(0, reason)),
            };
        }
        // An intact header that names another segment or version was never torn: a reused file
        // gets its new header synced before it is renamed to its live name.
        HeaderCheck::Foreign(reason) => return Err(corrupt(0, reason)),
    }
    let mut pos = SEGMENT_HEADER_LEN;
    loop {
        if let Some(record) = record_at(bytes, pos, id) {
            scan.records.push(record);
            pos = record.end as usize;
            if record.kind == RECORD_SEAL {
                scan.end = SegmentEnd::Sealed(record.end);
                return Ok(scan);
            }
            if record.kind != RECORD_MUTATIONS {
                return Err(corrupt(record.offset as usize, format!("unknown record kind {}", record.kind)));
            }
            continue;
        }
        let at_end_of_file = pos >= bytes.len();
        let provably_corrupt = options.followed_by_records || proves_durable(bytes, pos, id);
        if !provably_corrupt {
            scan.end = SegmentEnd::Open(pos as u32);
            return Ok(scan);
        }
        let reason = if at_end_of_file {
            "segment ends without a seal record although a later segment has records".to_string()
        } else if options.followed_by_records {
            "invalid record in a sealed segment (a later segment has records)".to_string()
        } else {
            "invalid record before a record that proves this offset was synced".to_string()
        };
        if !options.skip_corrupt {
            return Err(corrupt(pos, reason));
        }
        match next_valid(bytes, pos, id) {
            Some(next) => {
                scan.skipped.push(SkippedRegion { offset: pos as u32, len: next.offset - pos as u32 });
                pos = next.offset as usize;
            }
            None => {
                // Empty when a sealed segment's data stops exactly at the end of the file: the
                // missing seal is still damage the caller must count.
                scan.skipped.push(SkippedRegion { offset: pos as u32, len: bytes.len().saturating_sub(pos) as u32 });
                scan.end = SegmentEnd::Open(pos as u32);
                return Ok(scan);
            }
        }
    }
}

/// What the header of a segment says.
enum HeaderCheck {
    /// Intact, this version, the expected id.
    Valid,
    /// Missing, short, zero or failing its checksum: possibly a creation a crash interrupted.
    Torn(String),
    /// Intact but naming another version or segment.
    Foreign(String),
}

fn check_header(bytes: &[u8], id: u64) -> HeaderCheck {
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return HeaderCheck::Torn(format!("segment of {} bytes has no complete header", bytes.len()));
    };
    let field = |at: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if h[0..4] != SEGMENT_MAGIC {
        return HeaderCheck::Torn("bad magic: not a Talus commitlog segment".into());
    }
    if xxh3_64(&h[0..16]) != field(16) {
        return HeaderCheck::Torn("header checksum mismatch".into());
    }
    let version = (field(0) >> 32) as u32;
    if version != SEGMENT_FORMAT_VERSION {
        return HeaderCheck::Foreign(format!("unsupported segment format version {version}"));
    }
    let header_id = field(8);
    if header_id != id {
        return HeaderCheck::Foreign(format!("header carries segment id {header_id}, the file name says {id}"));
    }
    HeaderCheck::Valid
}

/// Appends one mutation to the body of a [`RECORD_MUTATIONS`] record: a 4-byte length, then
/// what `encode` writes (the mutation's encoding, written in place, without a copy).
pub fn push_mutation(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Encodes the body of a [`RECORD_MUTATIONS`] record from encoded mutations.
pub fn encode_mutations_body<'a>(mutations: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for m in mutations {
        push_mutation(out, |o| o.extend_from_slice(m));
    }
}

/// Splits the body of a [`RECORD_MUTATIONS`] record into the encoded mutations.
pub fn decode_mutations_body(body: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let len = body
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt(pos, "truncated mutation length"))? as usize;
        let m = body.get(pos + 4..pos + 4 + len).ok_or_else(|| corrupt(pos, format!("mutation of {len} bytes overruns the record")))?;
        out.push(m);
        pos += 4 + len;
    }
    if out.is_empty() {
        return Err(corrupt(0, "a mutations record holds no mutation"));
    }
    Ok(out)
}
