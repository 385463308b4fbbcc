//! The manifest encoding: the append-only metadata log of an engine directory (DESIGN §4). It
//! records table creations and drops (with their truncation positions, R3.12), every sstable
//! added, removed or moved to another state, and the replay floors compactions leave (R3.12). The byte layout is specified in
//! `docs/format.md`, section "Manifest"; the engine's `talus::manifest::Manifest` owns the file.
//!
//! File: an 8-byte header (magic `TLMF`, format version, three zero bytes), then records. A
//! record is a list of [`ManifestEdit`]s applied atomically, framed as
//! `payload length u64 | payload xxh3 u64 | frame xxh3 u64 | payload`; both checksums are seeded
//! with the record's offset in the file, so a record copied to another offset (a misdirected
//! write) does not verify there.
//!
//! Invariants:
//!
//! - **Torn tail vs corruption** (bug class 2): [`scan_manifest`] ends silently at the first bad
//!   record (`torn_tail`) only when no valid record starts anywhere after it: an edit that was
//!   appended but never synced was never acknowledged. A bad record followed by a valid one is
//!   [`Error::Corrupt`], as is a bad header or a checksummed payload that does not decode.
//! - **Canonical**: each record has one encoding and the decoder accepts only it (minimal varints,
//!   known tags, no trailing bytes), so re-encoding the scanned records gives back exactly the
//!   valid prefix of the input ([`check_decode`] asserts this).
//! - **Total and bounded**: decoding never panics and never allocates more than the input holds.
//! - [`ManifestState::apply`] validates a whole record before anything changes, and
//!   [`ManifestState::snapshot`] gives one record that rebuilds exactly the same state.
//!
//! Thread-safety: pure functions and plain values (`Send + Sync`).

use std::collections::BTreeMap;
use std::fmt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{Error, Result};
use crate::mutation_codec::{write_bytes, write_varint, Reader};
use crate::replay_position::ReplayPosition;
use crate::schema::{SchemaRef, TableId};
use crate::schema_codec::{decode_schema, encode_schema};

/// Magic bytes at the start of a manifest file.
pub const MANIFEST_MAGIC: [u8; 4] = *b"TLMF";
/// The manifest format version (byte 4 of the header).
pub const MANIFEST_FORMAT_VERSION: u8 = 1;
/// Length of the file header: magic, version, three zero bytes.
pub const HEADER_LEN: usize = 8;
/// Length of a record frame before its payload: length, payload checksum, frame checksum.
pub const FRAME_LEN: usize = 24;

const STRUCTURE: &str = "manifest";

// Edit tags.
const CREATE_TABLE: u8 = 1;
const DROP_TABLE: u8 = 2;
const ADD_SSTABLE: u8 = 3;
const REMOVE_SSTABLE: u8 = 4;
const SET_STATE: u8 = 5;
const REPLAY_FLOOR: u8 = 6;
/// The smallest edit: tag + generation (`RemoveSstable`); bounds the edit count by the input.
const MIN_EDIT_BYTES: usize = 9;

/// The state of an sstable (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SstableState {
    /// Readable and compacted.
    Normal,
    /// From repair or streaming: readable, not compacted until view updates were generated.
    Staging,
    /// Found corrupt: excluded from reads and compaction.
    Quarantine,
    /// Being uploaded (load-and-stream): not yet part of the table.
    Upload,
}

impl SstableState {
    /// The one-byte code in the encoding.
    pub fn code(self) -> u8 {
        match self {
            SstableState::Normal => 0,
            SstableState::Staging => 1,
            SstableState::Quarantine => 2,
            SstableState::Upload => 3,
        }
    }

    /// The state of a code, if it is one.
    pub fn from_code(code: u8) -> Option<SstableState> {
        match code {
            0 => Some(SstableState::Normal),
            1 => Some(SstableState::Staging),
            2 => Some(SstableState::Quarantine),
            3 => Some(SstableState::Upload),
            _ => None,
        }
    }
}

/// One change of the engine's metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestEdit {
    /// A new table.
    CreateTable(SchemaRef),
    /// The table is dropped: its sstables leave the state (the engine deletes their files), and
    /// its commitlog entries before `truncated_at` are never replayed again (R3.12), even into a
    /// re-created table with the same id. Dropping a table that does not exist only records the
    /// truncation position (a snapshot carries the truncations of dropped tables this way).
    DropTable {
        /// The table.
        table: TableId,
        /// The commitlog position when it was dropped.
        truncated_at: ReplayPosition,
    },
    /// A new sstable, durable on disk before this edit is written.
    AddSstable {
        /// Its table.
        table: TableId,
        /// Its generation (file name).
        generation: u64,
        /// Its state.
        state: SstableState,
    },
    /// An sstable leaves the state (the engine deletes its file once the edit is durable).
    RemoveSstable {
        /// Its generation.
        generation: u64,
    },
    /// An sstable moves to another state.
    SetState {
        /// Its generation.
        generation: u64,
        /// The new state.
        state: SstableState,
    },
    /// The live table's commitlog entries before `position` are in its sstables or were
    /// compacted away: replay skips them (R3.12). A compaction writes it with the newest flushed
    /// position of its inputs, which its outputs may no longer carry (when nothing survived).
    /// The floor only rises; a lower position changes nothing.
    ReplayFloor {
        /// The table.
        table: TableId,
        /// The position.
        position: ReplayPosition,
    },
}

fn write_table_position(out: &mut Vec<u8>, table: TableId, position: ReplayPosition) {
    out.extend_from_slice(&table.0.to_le_bytes());
    out.extend_from_slice(&position.segment.to_le_bytes());
    out.extend_from_slice(&position.offset.to_le_bytes());
}

fn table_position(r: &mut Reader<'_>) -> Result<(TableId, ReplayPosition)> {
    let table = TableId(u128::from_le_bytes(r.array("table id")?));
    let segment = u64::from_le_bytes(r.array("position segment")?);
    let offset = u32::from_le_bytes(r.array("position offset")?);
    Ok((table, ReplayPosition { segment, offset }))
}

/// Appends the file header (magic, version, three zero bytes) to `out`.
pub fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.push(MANIFEST_FORMAT_VERSION);
    out.extend_from_slice(&[0; 3]);
}

/// Appends one record holding `edits` to `out`. `offset` is where the record will sit in the
/// file (it seeds both checksums); when `out` holds the file from its start, it is `out.len()`.
pub fn encode_record(edits: &[ManifestEdit], offset: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    write_varint(out, edits.len() as u64);
    let mut schema = Vec::new();
    for edit in edits {
        match edit {
            ManifestEdit::CreateTable(s) => {
                out.push(CREATE_TABLE);
                schema.clear();
                encode_schema(s, &mut schema);
                write_bytes(out, &schema);
            }
            ManifestEdit::DropTable { table, truncated_at } => {
                out.push(DROP_TABLE);
                write_table_position(out, *table, *truncated_at);
            }
            ManifestEdit::AddSstable { table, generation, state } => {
                out.push(ADD_SSTABLE);
                out.extend_from_slice(&table.0.to_le_bytes());
                out.extend_from_slice(&generation.to_le_bytes());
                out.push(state.code());
            }
            ManifestEdit::RemoveSstable { generation } => {
                out.push(REMOVE_SSTABLE);
                out.extend_from_slice(&generation.to_le_bytes());
            }
            ManifestEdit::SetState { generation, state } => {
                out.push(SET_STATE);
                out.extend_from_slice(&generation.to_le_bytes());
                out.push(state.code());
            }
            ManifestEdit::ReplayFloor { table, position } => {
                out.push(REPLAY_FLOOR);
                write_table_position(out, *table, *position);
            }
        }
    }
    seal_frame(&mut out[start..], offset);
}

/// Fills in the frame at the start of `record` (length and checksums) for its payload.
fn seal_frame(record: &mut [u8], offset: u64) {
    let payload_len = (record.len() - FRAME_LEN) as u64;
    let payload_sum = xxh3_64_with_seed(&record[FRAME_LEN..], offset);
    record[..8].copy_from_slice(&payload_len.to_le_bytes());
    record[8..16].copy_from_slice(&payload_sum.to_le_bytes());
    let frame_sum = xxh3_64_with_seed(&record[..16], offset);
    record[16..FRAME_LEN].copy_from_slice(&frame_sum.to_le_bytes());
}

/// Appends a record frame with correct checksums around arbitrary `payload` bytes: lets the
/// fuzz target and tests reach the payload decoder behind the checksums.
#[doc(hidden)]
pub fn encode_raw_record(payload: &[u8], offset: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    out.extend_from_slice(payload);
    seal_frame(&mut out[start..], offset);
}

/// What [`scan_manifest`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestScan {
    /// The valid records, in file order.
    pub records: Vec<Vec<ManifestEdit>>,
    /// The offset of each record in `records`.
    pub offsets: Vec<usize>,
    /// Length of the valid prefix: the header and every valid record. New records go here.
    pub valid_len: usize,
    /// Whether bytes after `valid_len` were ignored as a torn (never acknowledged) last record.
    pub torn_tail: bool,
}

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt { structure: STRUCTURE, offset, reason: reason.into() }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, Copy)]
enum BadFrame {
    /// Fewer than [`FRAME_LEN`] bytes left (how many there are).
    Short(usize),
    FrameSum,
    /// The declared payload length and the bytes present after the frame.
    Incomplete(u64, usize),
    PayloadSum,
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::Short(n) => write!(f, "incomplete record frame: {n} of {FRAME_LEN} byte(s)"),
            BadFrame::FrameSum => f.write_str("record frame checksum mismatch"),
            BadFrame::Incomplete(len, n) => write!(f, "incomplete record: payload of {len} byte(s), {n} present"),
            BadFrame::PayloadSum => f.write_str("record payload checksum mismatch"),
        }
    }
}

/// The record at `pos`: its payload and end offset, or why it is not a valid one.
fn frame_at(bytes: &[u8], pos: usize) -> Result<(&[u8], usize), BadFrame> {
    let Some(frame) = pos.checked_add(FRAME_LEN).and_then(|end| bytes.get(pos..end)) else {
        return Err(BadFrame::Short(bytes.len().saturating_sub(pos)));
    };
    let seed = pos as u64;
    if xxh3_64_with_seed(&frame[..16], seed) != u64_at(frame, 16) {
        return Err(BadFrame::FrameSum);
    }
    let len = u64_at(frame, 0);
    let body = pos + FRAME_LEN;
    let Some(end) = usize::try_from(len).ok().and_then(|l| body.checked_add(l)).filter(|&end| end <= bytes.len()) else {
        return Err(BadFrame::Incomplete(len, bytes.len() - body));
    };
    let payload = &bytes[body..end];
    if xxh3_64_with_seed(payload, seed) != u64_at(frame, 8) {
        return Err(BadFrame::PayloadSum);
    }
    Ok((payload, end))
}

/// Reads a manifest file: the header, then every record up to the end or to a torn tail.
///
/// Errors ([`Error::Corrupt`], structure `"manifest"`, with the offset): a missing or bad
/// header; a bad record (frame or payload checksum mismatch, or a payload running past the end)
/// followed by a valid record anywhere after it; a record whose checksums hold but whose
/// payload does not decode. Never panics.
pub fn scan_manifest(bytes: &[u8]) -> Result<ManifestScan> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(corrupt(0, format!("truncated header: {} of {HEADER_LEN} byte(s)", bytes.len())));
    };
    if header[..4] != MANIFEST_MAGIC {
        return Err(corrupt(0, "bad magic: not a Talus manifest"));
    }
    if header[4] != MANIFEST_FORMAT_VERSION {
        return Err(corrupt(4, format!("unsupported manifest version {} (expected {MANIFEST_FORMAT_VERSION})", header[4])));
    }
    if header[5..] != [0; 3] {
        return Err(corrupt(5, "nonzero reserved header bytes"));
    }
    let mut scan = ManifestScan { valid_len: HEADER_LEN, ..ManifestScan::default() };
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        match frame_at(bytes, pos) {
            Ok((payload, end)) => {
                scan.records.push(decode_payload(&bytes[..end], end - payload.len())?);
                scan.offsets.push(pos);
                pos = end;
                scan.valid_len = end;
            }
            Err(reason) => {
                // Corruption is provable only when a valid record follows (bug class 2).
                let last_start = bytes.len().saturating_sub(FRAME_LEN);
                if let Some(next) = (pos + 1..=last_start).find(|&q| frame_at(bytes, q).is_ok()) {
                    return Err(corrupt(pos, format!("{reason}, but a valid record follows at offset {next}")));
                }
                scan.torn_tail = true;
                break;
            }
        }
    }
    Ok(scan)
}

/// Decodes the payload that spans `bytes[start..]`; error offsets are offsets in the file.
fn decode_payload(bytes: &[u8], start: usize) -> Result<Vec<ManifestEdit>> {
    let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: start, shared: None };
    let count = r.count("edit", MIN_EDIT_BYTES)?;
    let mut edits = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.pos;
        let edit = match r.u8("edit tag")? {
            CREATE_TABLE => {
                let len_at = r.pos;
                let encoded = r.bytes("schema")?;
                let schema_at = r.pos - encoded.len();
                let schema = decode_schema(encoded).map_err(|e| match e {
                    Error::Corrupt { offset, reason, .. } => corrupt(schema_at + offset, format!("schema: {reason}")),
                    other => corrupt(len_at, format!("schema: {other}")),
                })?;
                ManifestEdit::CreateTable(schema)
            }
            DROP_TABLE => {
                let (table, truncated_at) = table_position(&mut r)?;
                ManifestEdit::DropTable { table, truncated_at }
            }
            ADD_SSTABLE => {
                let table = TableId(u128::from_le_bytes(r.array("table id")?));
                let generation = u64::from_le_bytes(r.array("generation")?);
                ManifestEdit::AddSstable { table, generation, state: state(&mut r)? }
            }
            REMOVE_SSTABLE => ManifestEdit::RemoveSstable { generation: u64::from_le_bytes(r.array("generation")?) },
            SET_STATE => {
                let generation = u64::from_le_bytes(r.array("generation")?);
                ManifestEdit::SetState { generation, state: state(&mut r)? }
            }
            REPLAY_FLOOR => {
                let (table, position) = table_position(&mut r)?;
                ManifestEdit::ReplayFloor { table, position }
            }
            tag => return Err(r.corrupt(at, format!("unknown edit tag {tag}"))),
        };
        edits.push(edit);
    }
    if r.pos != bytes.len() {
        return Err(r.corrupt(r.pos, format!("{} trailing byte(s) in the record", bytes.len() - r.pos)));
    }
    Ok(edits)
}

fn state(r: &mut Reader<'_>) -> Result<SstableState> {
    let at = r.pos;
    let code = r.u8("sstable state")?;
    SstableState::from_code(code).ok_or_else(|| r.corrupt(at, format!("unknown sstable state {code}")))
}

/// An sstable named by the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SstableEntry {
    /// Its table.
    pub table: TableId,
    /// Its state.
    pub state: SstableState,
}

/// Why [`ManifestState::apply`] rejected a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edit {index} of the record is invalid: {reason}")]
pub struct InvalidEdit {
    /// The position of the offending edit in the record.
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

/// The metadata a manifest describes: the result of applying its records in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestState {
    /// Live tables.
    pub tables: BTreeMap<TableId, SchemaRef>,
    /// Truncation positions of dropped tables (kept after a re-creation).
    pub truncations: BTreeMap<TableId, ReplayPosition>,
    /// Live sstables by generation.
    pub sstables: BTreeMap<u64, SstableEntry>,
    /// Replay floors of live tables (see [`ManifestEdit::ReplayFloor`]).
    pub replay_floors: BTreeMap<TableId, ReplayPosition>,
}

/// How to take back one change of [`ManifestState::apply_one`].
enum Undo {
    RemoveTable(TableId),
    RestoreTable(SchemaRef),
    RestoreTruncation(TableId, Option<ReplayPosition>),
    RestoreFloor(TableId, Option<ReplayPosition>),
    RemoveSstable(u64),
    RestoreSstable(u64, SstableEntry),
}

fn table_name(id: TableId) -> String {
    format!("{:032x}", id.0)
}

impl ManifestState {
    /// Applies one record: every edit in order, all or none. Rejected: a table whose id or
    /// `keyspace.name` exists; a truncation position before the table's previous one; an sstable
    /// of an unknown table or with a generation that exists; a removal or state change of an
    /// unknown generation. Dropping a table removes its sstables. On error nothing changed.
    pub fn apply(&mut self, edits: &[ManifestEdit]) -> Result<(), InvalidEdit> {
        let mut undo = Vec::new();
        for (index, edit) in edits.iter().enumerate() {
            if let Err(reason) = self.apply_one(edit, &mut undo) {
                for step in undo.into_iter().rev() {
                    self.undo(step);
                }
                return Err(InvalidEdit { index, reason });
            }
        }
        Ok(())
    }

    /// Applies one edit after checking it (nothing changes on error), logging how to undo it.
    fn apply_one(&mut self, edit: &ManifestEdit, undo: &mut Vec<Undo>) -> Result<(), String> {
        match edit {
            ManifestEdit::CreateTable(schema) => {
                if self.tables.contains_key(&schema.id) {
                    return Err(format!("table id {} already exists", table_name(schema.id)));
                }
                let name = schema.full_name();
                if self.tables.values().any(|t| t.full_name() == name) {
                    return Err(format!("table {name} already exists"));
                }
                self.tables.insert(schema.id, schema.clone());
                undo.push(Undo::RemoveTable(schema.id));
            }
            ManifestEdit::DropTable { table, truncated_at } => {
                if let Some(old) = self.truncations.get(table).filter(|old| *old > truncated_at) {
                    return Err(format!("truncation of table {} moves back from {old} to {truncated_at}", table_name(*table)));
                }
                if let Some(schema) = self.tables.remove(table) {
                    undo.push(Undo::RestoreTable(schema));
                }
                let gone: Vec<u64> = self.sstables.iter().filter(|(_, e)| e.table == *table).map(|(&g, _)| g).collect();
                for generation in gone {
                    if let Some(entry) = self.sstables.remove(&generation) {
                        undo.push(Undo::RestoreSstable(generation, entry));
                    }
                }
                let old = self.truncations.insert(*table, *truncated_at);
                undo.push(Undo::RestoreTruncation(*table, old));
                if let Some(floor) = self.replay_floors.remove(table) {
                    undo.push(Undo::RestoreFloor(*table, Some(floor)));
                }
            }
            ManifestEdit::AddSstable { table, generation, state } => {
                if !self.tables.contains_key(table) {
                    return Err(format!("sstable {generation} of unknown table {}", table_name(*table)));
                }
                if self.sstables.contains_key(generation) {
                    return Err(format!("sstable generation {generation} already exists"));
                }
                self.sstables.insert(*generation, SstableEntry { table: *table, state: *state });
                undo.push(Undo::RemoveSstable(*generation));
            }
            ManifestEdit::RemoveSstable { generation } => {
                let entry =
                    self.sstables.remove(generation).ok_or_else(|| format!("removal of unknown sstable generation {generation}"))?;
                undo.push(Undo::RestoreSstable(*generation, entry));
            }
            ManifestEdit::SetState { generation, state } => {
                let entry =
                    self.sstables.get_mut(generation).ok_or_else(|| format!("state change of unknown sstable generation {generation}"))?;
                undo.push(Undo::RestoreSstable(*generation, *entry));
                entry.state = *state;
            }
            ManifestEdit::ReplayFloor { table, position } => {
                if !self.tables.contains_key(table) {
                    return Err(format!("replay floor of unknown table {}", table_name(*table)));
                }
                let old = self.replay_floors.get(table).copied();
                if old.is_none_or(|old| old < *position) {
                    self.replay_floors.insert(*table, *position);
                    undo.push(Undo::RestoreFloor(*table, old));
                }
            }
        }
        Ok(())
    }

    fn undo(&mut self, step: Undo) {
        match step {
            Undo::RemoveTable(id) => {
                self.tables.remove(&id);
            }
            Undo::RestoreTable(schema) => {
                self.tables.insert(schema.id, schema);
            }
            Undo::RestoreTruncation(id, None) => {
                self.truncations.remove(&id);
            }
            Undo::RestoreTruncation(id, Some(position)) => {
                self.truncations.insert(id, position);
            }
            Undo::RestoreFloor(id, None) => {
                self.replay_floors.remove(&id);
            }
            Undo::RestoreFloor(id, Some(position)) => {
                self.replay_floors.insert(id, position);
            }
            Undo::RemoveSstable(generation) => {
                self.sstables.remove(&generation);
            }
            Undo::RestoreSstable(generation, entry) => {
                self.sstables.insert(generation, entry);
            }
        }
    }

    /// The edits that rebuild exactly this state from an empty one, as one record: the
    /// truncations (as drops of absent tables), then the tables, their replay floors, then the
    /// sstables.
    pub fn snapshot(&self) -> Vec<ManifestEdit> {
        let truncations = self.truncations.iter().map(|(&table, &truncated_at)| ManifestEdit::DropTable { table, truncated_at });
        let tables = self.tables.values().map(|s| ManifestEdit::CreateTable(s.clone()));
        let floors = self.replay_floors.iter().map(|(&table, &position)| ManifestEdit::ReplayFloor { table, position });
        let sstables = self.sstables.iter().map(|(&generation, e)| ManifestEdit::AddSstable { table: e.table, generation, state: e.state });
        truncations.chain(tables).chain(floors).chain(sstables).collect()
    }

    /// The highest generation of a live sstable. Generations of removed sstables are forgotten
    /// (a rewrite drops them), so the engine takes the maximum with the files it finds on open.
    pub fn max_generation(&self) -> Option<u64> {
        self.sstables.keys().next_back().copied()
    }
}

impl fmt::Display for SstableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SstableState::Normal => "normal",
            SstableState::Staging => "staging",
            SstableState::Quarantine => "quarantine",
            SstableState::Upload => "upload",
        })
    }
}

/// The property the `manifest_decode` fuzz target and the stable corpus test check: scanning
/// never panics; a scan re-encodes to exactly the valid prefix of the input, a torn tail is
/// exactly the bytes after it and the prefix alone scans clean; replaying the records into a
/// [`ManifestState`] never panics and its snapshot rebuilds it; every failure is a manifest
/// corruption error with an offset inside the input. Returns what was violated.
#[doc(hidden)]
pub fn check_decode(bytes: &[u8]) -> Result<(), String> {
    let scan = match scan_manifest(bytes) {
        Ok(scan) => scan,
        Err(Error::Corrupt { structure: STRUCTURE, offset, .. }) if offset <= bytes.len() => return Ok(()),
        Err(e) => return Err(format!("unexpected error: {e}")),
    };
    if scan.valid_len > bytes.len() || scan.torn_tail != (scan.valid_len < bytes.len()) || scan.records.len() != scan.offsets.len() {
        return Err(format!("inconsistent scan of {} bytes: {scan:?}", bytes.len()));
    }
    let mut out = Vec::new();
    encode_header(&mut out);
    for (edits, &offset) in scan.records.iter().zip(&scan.offsets) {
        if offset != out.len() {
            return Err(format!("record offset {offset}, expected {}", out.len()));
        }
        encode_record(edits, offset as u64, &mut out);
    }
    if out[..] != bytes[..scan.valid_len] {
        return Err("re-encoding the scanned records changed the bytes".into());
    }
    if scan.torn_tail {
        let clean = scan_manifest(&bytes[..scan.valid_len]).map_err(|e| format!("the valid prefix does not scan: {e}"))?;
        if clean.records != scan.records || clean.torn_tail {
            return Err("the valid prefix scans differently".into());
        }
    }
    // States compare through their snapshot bytes: a schema option may be a NaN, which
    // `PartialEq` finds unequal to itself.
    let bytes_of = |state: &ManifestState| {
        let mut out = Vec::new();
        encode_record(&state.snapshot(), 0, &mut out);
        out
    };
    let mut state = ManifestState::default();
    for edits in &scan.records {
        let before = bytes_of(&state);
        if state.apply(edits).is_err() {
            if bytes_of(&state) != before {
                return Err("a rejected record changed the state".into());
            }
            break;
        }
    }
    let mut rebuilt = ManifestState::default();
    rebuilt.apply(&state.snapshot()).map_err(|e| format!("the snapshot does not apply: {e}"))?;
    if bytes_of(&rebuilt) != bytes_of(&state) {
        return Err("the snapshot rebuilds a different state".into());
    }
    Ok(())
}
