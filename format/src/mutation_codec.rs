//! The versioned binary encoding of a [`Mutation`]: the payload of a commitlog entry.
//!
//! The byte layout is specified (with diagrams) in `docs/format.md`, section "Mutation encoding
//! (commitlog entries)". In short: a version byte, the table id (16 bytes, little-endian), the
//! partition key in legacy form (the token is recomputed on decode, R1.1), the partition tombstone,
//! the static cells, the rows in clustering order and the range tombstones in insertion order.
//! Lengths and counts are unsigned LEB128 varints; timestamps and times are fixed-width
//! little-endian.
//!
//! Invariants:
//!
//! - **Canonical**: every mutation has exactly one encoding and the decoder accepts only that one
//!   (minimal varints, strictly increasing rows and column ids, no "present" tombstone equal to the
//!   empty one, no trailing bytes). Hence `encode(decode(x)) == x` whenever `decode(x)` succeeds.
//! - **Strict and total decoding**: [`decode_mutation`] never panics; every malformed input is an
//!   [`Error::Corrupt`] with structure `"mutation"` and the byte offset of the offending field.
//! - **Bounded allocation**: no length or count read from the input makes the decoder allocate
//!   more than the remaining input can hold (counts are checked against the smallest possible
//!   encoding of one item before anything is reserved).
//! - Type invariants are checked on decode: a row tombstone's shadowable part is never below its
//!   regular part (R1.19) and range tombstone bounds are clustered positions with weight −1, 0 or
//!   +1 (R1.11, R1.21). [`encode_mutation`] is infallible; a mutation that breaks these invariants
//!   in memory (only possible by building the types field by field) encodes to bytes the decoder
//!   rejects, and a range tombstone bound outside the clustered region is written as the clustered
//!   position with the same prefix and weight.
//!
//! Thread-safety: pure functions, `Send + Sync`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cell::{Cell, ColumnId, RowMarker};
use crate::error::{Error, Result};
use crate::mutation::{Mutation, PartitionUpdate};
use crate::partition_key::PartitionKey;
use crate::position::{ClusteringPrefix, Position};
use crate::range_tombstone::RangeTombstone;
use crate::row::{Cells, Row, RowTombstone};
use crate::schema::TableId;
use crate::time::{GcTime, Timestamp};
use crate::tombstone::Tombstone;

/// The format version written as the first byte of every encoded mutation.
pub const MUTATION_FORMAT_VERSION: u8 = 1;

const STRUCTURE: &str = "mutation";

// Tags of the one-byte discriminants.
const TOMBSTONE_NONE: u8 = 0;
const TOMBSTONE_SOME: u8 = 1;
const CELL_LIVE: u8 = 0;
const CELL_EXPIRING: u8 = 1;
const CELL_DEAD: u8 = 2;
const MARKER_MISSING: u8 = 0;
const MARKER_LIVE: u8 = 1;
const MARKER_EXPIRING: u8 = 2;
const MARKER_DEAD: u8 = 3;

// Smallest encodings of repeated items, used to bound counts by the remaining input.
/// Column id (1) + tag (1) + timestamp (8) + empty value length (1).
const MIN_CELL_BYTES: usize = 11;
/// Key count (1) + key length (1) + two empty tombstones (2) + missing marker (1) + no cells (1).
const MIN_ROW_BYTES: usize = 6;
/// Two positions of weight (1) + count (1) + length (1), then an empty tombstone (1).
const MIN_RANGE_TOMBSTONE_BYTES: usize = 7;

/// Appends the encoding of `m` to `out` (existing contents are kept).
pub fn encode_mutation(m: &Mutation, out: &mut Vec<u8>) {
    out.push(MUTATION_FORMAT_VERSION);
    out.extend_from_slice(&m.table.0.to_le_bytes());
    write_bytes(out, m.key.key.as_bytes());
    let update = &m.update;
    write_tombstone(out, update.tombstone);
    write_cells(out, &update.static_cells);
    write_varint(out, update.rows.len() as u64);
    for (key, row) in &update.rows {
        write_prefix(out, key);
        write_row(out, row);
    }
    write_varint(out, update.range_tombstones.len() as u64);
    for rt in &update.range_tombstones {
        write_position(out, &rt.start);
        write_position(out, &rt.end);
        write_tombstone(out, rt.tombstone);
    }
}

/// Decodes one mutation that spans all of `bytes`.
///
/// Any truncation, unknown version or tag, overlong or overflowing varint, length beyond the
/// input, rows or cells out of order, broken type invariant or trailing byte is an
/// [`Error::Corrupt`] naming the offset. Never panics.
pub fn decode_mutation(bytes: &[u8]) -> Result<Mutation> {
    let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: 0, shared: None };
    let version = r.u8("version")?;
    if version != MUTATION_FORMAT_VERSION {
        return Err(r.corrupt(0, format!("unsupported format version {version} (expected {MUTATION_FORMAT_VERSION})")));
    }
    let table = TableId(u128::from_le_bytes(r.array::<16>("table id")?));
    let key = PartitionKey::from_legacy_bytes(Bytes::copy_from_slice(r.bytes("partition key")?)).decorate();
    let tombstone = r.tombstone("partition tombstone")?;
    let static_cells = r.cells()?;

    let row_count = r.count("row", MIN_ROW_BYTES)?;
    let mut rows = BTreeMap::new();
    let mut previous: Option<ClusteringPrefix> = None;
    for _ in 0..row_count {
        let at = r.pos;
        let key = r.prefix("clustering key")?;
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(r.corrupt(at, "rows not in strictly increasing clustering order"));
        }
        let row = r.row()?;
        previous = Some(key.clone());
        rows.insert(key, row);
    }

    let rt_count = r.count("range tombstone", MIN_RANGE_TOMBSTONE_BYTES)?;
    let mut range_tombstones = Vec::with_capacity(rt_count);
    for _ in 0..rt_count {
        let start = r.position("range tombstone start")?;
        let end = r.position("range tombstone end")?;
        let tombstone = r.tombstone("range tombstone")?;
        range_tombstones.push(RangeTombstone { start, end, tombstone });
    }

    if r.pos != bytes.len() {
        return Err(r.corrupt(r.pos, format!("{} trailing byte(s)", bytes.len() - r.pos)));
    }
    Ok(Mutation { table, key, update: PartitionUpdate { tombstone, static_cells, rows, range_tombstones } })
}

/// Appends `v` as an unsigned LEB128 varint (7 bits per byte, low first, high bit = more).
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `bytes` as a varint length followed by the bytes.
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `v` as 8 little-endian bytes.
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn write_tombstone(out: &mut Vec<u8>, t: Tombstone) {
    if t == Tombstone::NONE {
        out.push(TOMBSTONE_NONE);
    } else {
        out.push(TOMBSTONE_SOME);
        write_i64(out, t.timestamp.0);
        write_i64(out, t.deletion_time.0);
    }
}

fn write_value(out: &mut Vec<u8>, timestamp: Timestamp, value: &[u8]) {
    write_i64(out, timestamp.0);
    write_bytes(out, value);
}

pub(crate) fn write_cells(out: &mut Vec<u8>, cells: &Cells) {
    write_varint(out, cells.len() as u64);
    for (column, cell) in cells.iter() {
        write_varint(out, u64::from(column.0));
        match cell {
            Cell::Live { timestamp, value } => {
                out.push(CELL_LIVE);
                write_value(out, *timestamp, value);
            }
            Cell::Expiring { timestamp, value, expiry, ttl } => {
                out.push(CELL_EXPIRING);
                write_i64(out, timestamp.0);
                write_i64(out, expiry.0);
                out.extend_from_slice(&ttl.to_le_bytes());
                write_bytes(out, value);
            }
            Cell::Dead { timestamp, deletion_time } => {
                out.push(CELL_DEAD);
                write_i64(out, timestamp.0);
                write_i64(out, deletion_time.0);
            }
        }
    }
}

/// Appends a row body (everything after its clustering key); [`Reader::row`] reads it back.
pub(crate) fn write_row(out: &mut Vec<u8>, row: &Row) {
    write_tombstone(out, row.tombstone.regular);
    write_tombstone(out, row.tombstone.shadowable);
    write_marker(out, &row.marker);
    write_cells(out, &row.cells);
}

pub(crate) fn write_marker(out: &mut Vec<u8>, marker: &RowMarker) {
    match *marker {
        RowMarker::Missing => out.push(MARKER_MISSING),
        RowMarker::Live { timestamp } => {
            out.push(MARKER_LIVE);
            write_i64(out, timestamp.0);
        }
        RowMarker::Expiring { timestamp, ttl, expiry } => {
            out.push(MARKER_EXPIRING);
            write_i64(out, timestamp.0);
            write_i64(out, expiry.0);
            out.extend_from_slice(&ttl.to_le_bytes());
        }
        RowMarker::Dead { timestamp, deletion_time } => {
            out.push(MARKER_DEAD);
            write_i64(out, timestamp.0);
            write_i64(out, deletion_time.0);
        }
    }
}

pub(crate) fn write_prefix(out: &mut Vec<u8>, prefix: &ClusteringPrefix) {
    write_varint(out, prefix.len() as u64);
    write_bytes(out, prefix.encoded());
}

pub(crate) fn write_position(out: &mut Vec<u8>, position: &Position) {
    out.push(position.weight() as u8);
    write_prefix(out, position.prefix());
}

/// A cursor over the input; every failure names the offset where the bad field starts. The
/// generic readers (everything up to [`Reader::count`]) are shared with `schema_codec`.
pub(crate) struct Reader<'a> {
    /// The structure named in [`Error::Corrupt`].
    pub(crate) structure: &'static str,
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    /// When set, `buf` is exactly these bytes, and decoded values and clustering keys are slices
    /// of them (no copy; they keep all of `buf` alive) instead of copies.
    pub(crate) shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub(crate) fn corrupt(&self, offset: usize, reason: impl Into<String>) -> Error {
        Error::Corrupt { structure: self.structure, offset, reason: reason.into() }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let Some(slice) = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end)) else {
            return Err(self.corrupt(self.pos, format!("truncated {what}: need {n} byte(s), {} left", self.remaining())));
        };
        self.pos += n;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array::<8>(what)?))
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array::<4>(what)?))
    }

    /// Reads a minimal LEB128 varint of at most 64 bits.
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.corrupt(start, format!("truncated varint ({what})")));
            };
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(self.corrupt(start, format!("varint overflows 64 bits ({what})")));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(self.corrupt(start, format!("non-minimal varint ({what})")));
                }
                return Ok(value);
            }
        }
        Err(self.corrupt(start, format!("varint overflows 64 bits ({what})")))
    }

    /// A length-prefixed byte string that must fit in the remaining input.
    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => self.take(len, what),
            _ => Err(self.corrupt(at, format!("{what} length {len} exceeds the {} remaining byte(s)", self.remaining()))),
        }
    }

    /// An item count; rejected when even the smallest items could not fit in the remaining input.
    pub(crate) fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.varint(what)?;
        let fits = self.remaining() / min_item_bytes;
        match usize::try_from(n) {
            Ok(n) if n <= fits => Ok(n),
            _ => Err(self.corrupt(at, format!("{what} count {n} exceeds what the {} remaining byte(s) can hold", self.remaining()))),
        }
    }

    pub(crate) fn tombstone(&mut self, what: &str) -> Result<Tombstone> {
        let at = self.pos;
        match self.u8(what)? {
            TOMBSTONE_NONE => Ok(Tombstone::NONE),
            TOMBSTONE_SOME => {
                let t = Tombstone::new(Timestamp(self.i64(what)?), GcTime(self.i64(what)?));
                if t == Tombstone::NONE {
                    return Err(self.corrupt(at, format!("non-canonical empty {what}")));
                }
                Ok(t)
            }
            tag => Err(self.corrupt(at, format!("bad {what} tag {tag}"))),
        }
    }

    pub(crate) fn cells(&mut self) -> Result<Cells> {
        let n = self.count("cell", MIN_CELL_BYTES)?;
        let mut cells = Vec::with_capacity(n);
        let mut previous: Option<u32> = None;
        for _ in 0..n {
            let at = self.pos;
            let column = u32::try_from(self.varint("column id")?).map_err(|_| self.corrupt(at, "column id over u32"))?;
            if previous.is_some_and(|p| p >= column) {
                return Err(self.corrupt(at, "cells not in strictly increasing column id order"));
            }
            previous = Some(column);
            cells.push((ColumnId(column), self.cell()?));
        }
        Ok(Cells::from_sorted(cells))
    }

    /// A length-prefixed byte string as [`Bytes`]: a slice of `shared` when set, else a copy.
    fn owned_bytes(&mut self, what: &str) -> Result<Bytes> {
        let len = self.bytes(what)?.len();
        Ok(match self.shared {
            _ if len == 0 => Bytes::new(),
            // Cannot panic: `shared` is `buf`, and `bytes` just took this range of it.
            Some(shared) => shared.slice(self.pos - len..self.pos),
            None => Bytes::copy_from_slice(&self.buf[self.pos - len..self.pos]),
        })
    }

    pub(crate) fn cell(&mut self) -> Result<Cell> {
        let at = self.pos;
        match self.u8("cell tag")? {
            CELL_LIVE => {
                let timestamp = Timestamp(self.i64("cell timestamp")?);
                let value = self.owned_bytes("cell value")?;
                Ok(Cell::Live { timestamp, value })
            }
            CELL_EXPIRING => {
                let timestamp = Timestamp(self.i64("cell timestamp")?);
                let expiry = GcTime(self.i64("cell expiry")?);
                let ttl = self.i32("cell ttl")?;
                let value = self.owned_bytes("cell value")?;
                Ok(Cell::Expiring { timestamp, value, expiry, ttl })
            }
            CELL_DEAD => {
                let timestamp = Timestamp(self.i64("cell timestamp")?);
                let deletion_time = GcTime(self.i64("cell deletion time")?);
                Ok(Cell::Dead { timestamp, deletion_time })
            }
            tag => Err(self.corrupt(at, format!("bad cell tag {tag}"))),
        }
    }

    pub(crate) fn marker(&mut self) -> Result<RowMarker> {
        let at = self.pos;
        match self.u8("row marker tag")? {
            MARKER_MISSING => Ok(RowMarker::Missing),
            MARKER_LIVE => Ok(RowMarker::Live { timestamp: Timestamp(self.i64("row marker timestamp")?) }),
            MARKER_EXPIRING => {
                let timestamp = Timestamp(self.i64("row marker timestamp")?);
                let expiry = GcTime(self.i64("row marker expiry")?);
                let ttl = self.i32("row marker ttl")?;
                Ok(RowMarker::Expiring { timestamp, ttl, expiry })
            }
            MARKER_DEAD => {
                let timestamp = Timestamp(self.i64("row marker timestamp")?);
                let deletion_time = GcTime(self.i64("row marker deletion time")?);
                Ok(RowMarker::Dead { timestamp, deletion_time })
            }
            tag => Err(self.corrupt(at, format!("bad row marker tag {tag}"))),
        }
    }

    /// The row body after its clustering key.
    pub(crate) fn row(&mut self) -> Result<Row> {
        let at = self.pos;
        let regular = self.tombstone("row tombstone")?;
        let shadowable = self.tombstone("shadowable row tombstone")?;
        if shadowable < regular {
            return Err(self.corrupt(at, "shadowable row tombstone below the regular one (R1.19)"));
        }
        let marker = self.marker()?;
        let cells = self.cells()?;
        Ok(Row { tombstone: RowTombstone { regular, shadowable }, marker, cells })
    }

    pub(crate) fn prefix(&mut self, what: &str) -> Result<ClusteringPrefix> {
        let at = self.pos;
        let count = self.varint(what)?;
        let count = u16::try_from(count).map_err(|_| self.corrupt(at, format!("{what} component count {count} over 65535")))?;
        Ok(ClusteringPrefix::from_encoded(self.owned_bytes(what)?, count))
    }

    pub(crate) fn position(&mut self, what: &str) -> Result<Position> {
        let at = self.pos;
        let make: fn(ClusteringPrefix) -> Position = match self.u8(what)? {
            0xff => Position::before_key,
            0x00 => Position::at_row,
            0x01 => Position::after_key,
            w => return Err(self.corrupt(at, format!("{what} weight {} not in {{-1, 0, 1}}", w as i8))),
        };
        Ok(make(self.prefix(what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(bytes: &[u8]) -> Result<(u64, usize)> {
        let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: 0, shared: None };
        let v = r.varint("test")?;
        Ok((v, r.pos))
    }

    #[test]
    fn varint_edges() {
        for (v, enc) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out, enc, "{v}");
            assert_eq!(read(enc).ok(), Some((v, enc.len())));
        }
        // non-minimal, overflowing, truncated
        for bad in [
            &[0x80, 0x00][..],
            &[0x81, 0x80, 0x00],
            &[0xff; 10],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80],
            &[],
        ] {
            assert!(matches!(read(bad), Err(Error::Corrupt { offset: 0, .. })), "{bad:02x?}");
        }
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            let len = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(read(&out).ok(), Some((v, len)));
        }

        #[test]
        fn varint_decode_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((v, used)) = read(&bytes) {
                let mut out = Vec::new();
                write_varint(&mut out, v);
                prop_assert_eq!(&out[..], &bytes[..used]);
            }
        }
    }
}
