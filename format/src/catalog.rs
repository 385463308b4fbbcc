//! The table catalog file: every table's schema and the truncation records of dropped tables
//! (R3.12: replay skips a table's entries before its truncation position). Specified in
//! `docs/format.md`, "Table catalog".
//!
//! Invariants: the whole file is covered by one xxh3 checksum in its last 8 bytes, so any damaged
//! byte is detected; [`decode_catalog`] never panics and never allocates more than the input can
//! hold. Thread-safety: pure functions.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::schema::{SchemaRef, TableId};
use crate::schema_codec::{decode_schema, encode_schema};

/// Magic bytes at the start of the catalog file.
pub const CATALOG_MAGIC: [u8; 4] = *b"TLTC";
/// The catalog format version.
pub const CATALOG_FORMAT_VERSION: u8 = 1;

const STRUCTURE: &str = "table catalog";

/// A truncation record: entries of `table` before (`segment`, `offset`), the log position at the drop, are never replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// The table.
    pub table: TableId,
    /// Commitlog segment id of the position.
    pub segment: u64,
    /// Offset in that segment.
    pub offset: u32,
}

/// The decoded catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Table schemas.
    pub tables: Vec<SchemaRef>,
    /// Truncation records.
    pub truncations: Vec<Truncation>,
}

/// Encodes a catalog.
pub fn encode_catalog(catalog: &Catalog) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&CATALOG_MAGIC);
    out.push(CATALOG_FORMAT_VERSION);
    out.extend_from_slice(&(catalog.tables.len() as u32).to_le_bytes());
    let mut schema = Vec::new();
    for table in &catalog.tables {
        schema.clear();
        encode_schema(table, &mut schema);
        out.extend_from_slice(&(schema.len() as u32).to_le_bytes());
        out.extend_from_slice(&schema);
    }
    out.extend_from_slice(&(catalog.truncations.len() as u32).to_le_bytes());
    for t in &catalog.truncations {
        out.extend_from_slice(&t.table.0.to_le_bytes());
        out.extend_from_slice(&t.segment.to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.saturating_add(n)).ok_or_else(|| corrupt(self.pos, format!("truncated {what}")))?;
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }
}

fn corrupt(offset: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt { structure: STRUCTURE, offset, reason: reason.into() }
}

/// Decodes and validates a catalog.
pub fn decode_catalog(bytes: &[u8]) -> Result<Catalog> {
    let body_len = bytes.len().checked_sub(8).ok_or_else(|| corrupt(0, "shorter than its checksum"))?;
    let (body, sum) = bytes.split_at(body_len);
    let mut sum_bytes = [0u8; 8];
    sum_bytes.copy_from_slice(sum);
    if xxh3_64(body) != u64::from_le_bytes(sum_bytes) {
        return Err(corrupt(body_len, "checksum mismatch"));
    }
    let mut r = Reader { bytes: body, pos: 0 };
    if r.take(4, "magic")? != CATALOG_MAGIC {
        return Err(corrupt(0, "bad magic: not a Talus table catalog"));
    }
    let version = r.take(1, "version")?[0];
    if version != CATALOG_FORMAT_VERSION {
        return Err(corrupt(4, format!("unsupported catalog version {version}")));
    }
    let count = r.u32("table count")?;
    let mut catalog = Catalog::default();
    for _ in 0..count {
        let len = r.u32("schema length")? as usize;
        let at = r.pos;
        let schema = decode_schema(r.take(len, "schema")?).map_err(|e| corrupt(at, format!("schema: {e}")))?;
        if catalog.tables.iter().any(|t| t.id == schema.id || t.full_name() == schema.full_name()) {
            return Err(corrupt(at, format!("table {} appears twice", schema.full_name())));
        }
        catalog.tables.push(schema);
    }
    let count = r.u32("truncation count")?;
    for _ in 0..count {
        let table = TableId(u128::from_le_bytes(r.array("truncation table id")?));
        let segment = u64::from_le_bytes(r.array("truncation segment")?);
        let offset = r.u32("truncation offset")?;
        catalog.truncations.push(Truncation { table, segment, offset });
    }
    if r.pos != body.len() {
        return Err(corrupt(r.pos, "trailing bytes"));
    }
    Ok(catalog)
}

/// The property the `catalog_decode` fuzz target and the stable corpus test assert: decoding
/// never panics, a decoded catalog re-encodes to exactly the input, and every failure is a
/// corruption error of the catalog with an offset inside the input. Test support: it panics on a
/// violation.
#[doc(hidden)]
#[allow(clippy::panic)] // an assertion helper: a panic is the failure report
pub fn check_decode(bytes: &[u8]) -> Option<Catalog> {
    match decode_catalog(bytes) {
        Ok(catalog) => {
            assert_eq!(encode_catalog(&catalog), bytes, "re-encoding a decoded catalog changed the bytes");
            Some(catalog)
        }
        Err(Error::Corrupt { structure: STRUCTURE, offset, .. }) => {
            assert!(offset <= bytes.len(), "error offset {offset} beyond {} bytes", bytes.len());
            None
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}
