//! The versioned binary encoding of a [`Schema`]: one table's entry in the manifest.
//!
//! The byte layout is specified (with diagrams) in `docs/format.md`, section "Schema encoding
//! (manifest)". In short: a version byte, the table id (16 bytes, little-endian), keyspace
//! and table name, the partition key and clustering columns in key order, the static and regular
//! columns with their ids, then every table option in declaration order. Strings are a varint
//! length followed by UTF-8; lengths, counts, column ids and sizes are unsigned LEB128 varints
//! (the helpers shared with `mutation_codec`); signed integers are fixed-width little-endian and
//! `f64` options are their IEEE-754 bit pattern, little-endian (every bit pattern, NaN payloads
//! included, is kept as is).
//!
//! Invariants:
//!
//! - **Builder-valid**: [`decode_schema`] rebuilds the schema through [`SchemaBuilder`] and its
//!   [`SchemaBuilder::build`] validation (a partition key, unique names, static columns only with
//!   clustering columns, sane options such as a `bloom_filter_fp_chance` in (0, 1], which rejects
//!   NaN). Static and regular column ids must be exactly the ones the builder assigns: 0, 1, 2, …
//!   in declaration order across both kinds, increasing within each kind. So every decoded schema
//!   is one the builder could have produced.
//! - **Canonical**: every schema has exactly one encoding and the decoder accepts only that one
//!   (minimal varints, booleans only `00`/`01`, known tags and type codes, no trailing bytes).
//!   Hence `encode(decode(x)) == x` whenever `decode(x)` succeeds.
//! - **Strict and total decoding**: [`decode_schema`] never panics; every malformed input is an
//!   [`Error::Corrupt`] with structure `"schema"` and the byte offset of the offending field (for
//!   a rule of [`SchemaBuilder::build`]: the start of the column section or of the options).
//! - **Bounded allocation**: no length or count read from the input makes the decoder allocate
//!   more than the remaining input can hold.
//! - [`encode_schema`] is infallible. A schema built field by field that breaks the builder's
//!   rules (for instance column ids out of declaration order) encodes to bytes the decoder
//!   rejects. Partition key column ids carry no meaning and are not stored: the decoded ones are
//!   the builder's (`u32::MAX`).
//!
//! Thread-safety: pure functions, `Send + Sync`.

use crate::error::{Error, Result};
use crate::mutation_codec::{write_bytes, write_i64, write_varint, Reader};
use crate::schema::{
    ColumnDef, CompactionCommon, CompactionStrategy, Compression, Schema, SchemaBuilder, SchemaRef, TableId, TableOptions, TombstoneGcMode,
};
use crate::value::ColumnType;

/// The format version written as the first byte of every encoded schema.
pub const SCHEMA_FORMAT_VERSION: u8 = 1;

const STRUCTURE: &str = "schema";

// Kinds of value columns, as named in errors.
const STATIC: &str = "static";
const REGULAR: &str = "regular";

// Tags of the one-byte discriminants.
const FALSE: u8 = 0;
const TRUE: u8 = 1;
const ASCENDING: u8 = 0;
const DESCENDING: u8 = 1;
const GC_TIMEOUT: u8 = 0;
const GC_REPAIR: u8 = 1;
const GC_IMMEDIATE: u8 = 2;
const GC_DISABLED: u8 = 3;
const COMPACTION_SIZE_TIERED: u8 = 0;
const COMPACTION_LEVELED: u8 = 1;
const COMPACTION_TIME_WINDOW: u8 = 2;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const COMPRESSION_LZ4: u8 = 2;

// Smallest encodings of repeated items, used to bound counts by the remaining input.
/// Empty name (1) + type (1).
const MIN_KEY_COLUMN_BYTES: usize = 2;
/// Empty name (1) + type (1) + order (1).
const MIN_CLUSTERING_COLUMN_BYTES: usize = 3;
/// Id (1) + empty name (1) + type (1).
const MIN_VALUE_COLUMN_BYTES: usize = 3;

/// Appends the encoding of `schema` to `out` (existing contents are kept).
pub fn encode_schema(schema: &Schema, out: &mut Vec<u8>) {
    out.push(SCHEMA_FORMAT_VERSION);
    out.extend_from_slice(&schema.id.0.to_le_bytes());
    write_bytes(out, schema.keyspace.as_bytes());
    write_bytes(out, schema.name.as_bytes());
    write_varint(out, schema.partition_key.len() as u64);
    for c in &schema.partition_key {
        write_bytes(out, c.name.as_bytes());
        out.push(c.ty.code());
    }
    write_varint(out, schema.clustering.len() as u64);
    for c in &schema.clustering {
        write_bytes(out, c.name.as_bytes());
        out.push(c.ty.code());
        out.push(if c.descending { DESCENDING } else { ASCENDING });
    }
    write_value_columns(out, &schema.static_columns);
    write_value_columns(out, &schema.regular_columns);
    write_options(out, &schema.options);
}

/// Decodes one schema that spans all of `bytes` and validates it as [`SchemaBuilder::build`]
/// does.
///
/// Any truncation, unknown version, tag or type code, overlong or overflowing varint, length
/// beyond the input, invalid UTF-8, column id out of declaration order, schema the builder
/// rejects or trailing byte is an [`Error::Corrupt`] naming the offset. Never panics.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: 0, shared: None };
    let version = r.u8("version")?;
    if version != SCHEMA_FORMAT_VERSION {
        return Err(r.corrupt(0, format!("unsupported format version {version} (expected {SCHEMA_FORMAT_VERSION})")));
    }
    let id = TableId(u128::from_le_bytes(r.array::<16>("table id")?));
    let keyspace = string(&mut r, "keyspace")?;
    let name = string(&mut r, "table name")?;

    let columns_at = r.pos;
    let count = r.count("partition key column", MIN_KEY_COLUMN_BYTES)?;
    let mut partition_key = Vec::with_capacity(count);
    for _ in 0..count {
        partition_key.push((string(&mut r, "partition key column name")?, column_type(&mut r, "partition key column type")?));
    }
    let count = r.count("clustering column", MIN_CLUSTERING_COLUMN_BYTES)?;
    let mut clustering = Vec::with_capacity(count);
    for _ in 0..count {
        let name = string(&mut r, "clustering column name")?;
        let ty = column_type(&mut r, "clustering column type")?;
        let at = r.pos;
        let descending = match r.u8("clustering order")? {
            ASCENDING => false,
            DESCENDING => true,
            tag => return Err(r.corrupt(at, format!("bad clustering order tag {tag}"))),
        };
        clustering.push((name, ty, descending));
    }
    let statics = value_columns(&mut r, STATIC)?;
    let regulars = value_columns(&mut r, REGULAR)?;

    let options_at = r.pos;
    let options = options(&mut r)?;
    if r.pos != bytes.len() {
        return Err(r.corrupt(r.pos, format!("{} trailing byte(s)", bytes.len() - r.pos)));
    }

    // The builder assigns ids in declaration order, so replaying the declarations in id order
    // reproduces the encoded ids exactly when they are 0, 1, 2, … increasing within each kind.
    let mut order = Vec::with_capacity(statics.len() + regulars.len());
    let (mut s, mut g) = (0, 0);
    for expected in 0..statics.len() + regulars.len() {
        let expected = u32::try_from(expected).unwrap_or(u32::MAX);
        match (statics.get(s), regulars.get(g)) {
            (Some(c), _) if c.id == expected => {
                order.push(c);
                s += 1;
            }
            (_, Some(c)) if c.id == expected => {
                order.push(c);
                g += 1;
            }
            (a, b) => {
                // Blame the column whose id skips `expected` (the smaller id when both do).
                let culprit = match (a, b) {
                    (Some(a), Some(b)) if b.id < a.id => b,
                    (Some(a), _) => a,
                    (None, Some(b)) => b,
                    (None, None) => return Err(r.corrupt(columns_at, "column ids out of declaration order")),
                };
                return Err(r.corrupt(
                    culprit.at,
                    format!(
                        "{} column id {} where {expected} was expected: ids must be 0, 1, 2, … in declaration order",
                        culprit.kind, culprit.id
                    ),
                ));
            }
        }
    }
    let builder = || -> SchemaBuilder {
        let mut b = Schema::builder(keyspace, name).id(id);
        for &(name, ty) in &partition_key {
            b = b.partition_key(name, ty);
        }
        for &(name, ty, descending) in &clustering {
            b = b.clustering_ordered(name, ty, descending);
        }
        for c in &order {
            b = if c.kind == STATIC { b.static_column(c.name, c.ty) } else { b.regular(c.name, c.ty) };
        }
        b
    };
    // Columns first (with options known to be valid), then the options, so that a rejection names
    // the section at fault.
    builder().options(TableOptions::default()).build().map_err(|e| rejected(&r, columns_at, e))?;
    builder().options(options).build().map_err(|e| rejected(&r, options_at, e))
}

/// A static or regular column as read, before it goes through the builder.
struct ValueColumn<'a> {
    /// Offset of its id.
    at: usize,
    kind: &'static str,
    id: u32,
    name: &'a str,
    ty: ColumnType,
}

fn rejected(r: &Reader<'_>, offset: usize, e: Error) -> Error {
    let reason = match e {
        Error::InvalidOption(msg) => msg,
        other => other.to_string(),
    };
    r.corrupt(offset, format!("rejected by SchemaBuilder::build: {reason}"))
}

fn write_value_columns(out: &mut Vec<u8>, columns: &[ColumnDef]) {
    write_varint(out, columns.len() as u64);
    for c in columns {
        write_varint(out, u64::from(c.id.0));
        write_bytes(out, c.name.as_bytes());
        out.push(c.ty.code());
    }
}

fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { TRUE } else { FALSE });
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn write_options(out: &mut Vec<u8>, o: &TableOptions) {
    match o.tombstone_gc {
        TombstoneGcMode::Timeout => out.push(GC_TIMEOUT),
        TombstoneGcMode::Repair { propagation_delay_seconds } => {
            out.push(GC_REPAIR);
            write_i64(out, propagation_delay_seconds);
        }
        TombstoneGcMode::Immediate => out.push(GC_IMMEDIATE),
        TombstoneGcMode::Disabled => out.push(GC_DISABLED),
    }
    write_i64(out, o.gc_grace_seconds);
    out.extend_from_slice(&o.default_ttl.to_le_bytes());
    match o.compaction {
        CompactionStrategy::SizeTiered { bucket_low, bucket_high, min_sstable_size, min_sstable_age } => {
            out.push(COMPACTION_SIZE_TIERED);
            write_f64(out, bucket_low);
            write_f64(out, bucket_high);
            write_varint(out, min_sstable_size);
            write_i64(out, min_sstable_age);
        }
        CompactionStrategy::Leveled { sstable_size_in_mb, fanout } => {
            out.push(COMPACTION_LEVELED);
            write_varint(out, sstable_size_in_mb);
            write_varint(out, fanout);
        }
        CompactionStrategy::TimeWindow { window_seconds, expired_sstable_check_frequency_seconds } => {
            out.push(COMPACTION_TIME_WINDOW);
            write_i64(out, window_seconds);
            write_i64(out, expired_sstable_check_frequency_seconds);
        }
    }
    let c = &o.compaction_common;
    write_bool(out, c.enabled);
    write_varint(out, c.min_threshold as u64);
    write_varint(out, c.max_threshold as u64);
    write_f64(out, c.tombstone_threshold);
    write_i64(out, c.tombstone_compaction_interval);
    write_bool(out, c.unchecked_tombstone_compaction);
    match o.compression {
        Compression::None => out.push(COMPRESSION_NONE),
        Compression::Lz4 => out.push(COMPRESSION_LZ4),
        Compression::Zstd { level } => {
            out.push(COMPRESSION_ZSTD);
            out.extend_from_slice(&level.to_le_bytes());
        }
    }
    write_varint(out, o.block_size as u64);
    write_f64(out, o.bloom_filter_fp_chance);
}

/// A length-prefixed UTF-8 string; an invalid sequence is reported at its first bad byte.
fn string<'a>(r: &mut Reader<'a>, what: &str) -> Result<&'a str> {
    let raw = r.bytes(what)?;
    let start = r.pos - raw.len();
    std::str::from_utf8(raw).map_err(|e| r.corrupt(start + e.valid_up_to(), format!("{what} is not valid UTF-8")))
}

fn column_type(r: &mut Reader<'_>, what: &str) -> Result<ColumnType> {
    let at = r.pos;
    let code = r.u8(what)?;
    ColumnType::from_code(code).ok_or_else(|| r.corrupt(at, format!("unknown {what} code {code}")))
}

fn value_columns<'a>(r: &mut Reader<'a>, kind: &'static str) -> Result<Vec<ValueColumn<'a>>> {
    let (column, id_what, name_what, type_what) = if kind == STATIC {
        ("static column", "static column id", "static column name", "static column type")
    } else {
        ("regular column", "regular column id", "regular column name", "regular column type")
    };
    let count = r.count(column, MIN_VALUE_COLUMN_BYTES)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.pos;
        let id = r.varint(id_what)?;
        // u32::MAX is the id of partition key columns and never one the builder hands out.
        let id = match u32::try_from(id) {
            Ok(id) if id < u32::MAX => id,
            _ => return Err(r.corrupt(at, format!("{kind} column id {id} over u32::MAX - 1"))),
        };
        let name = string(r, name_what)?;
        let ty = column_type(r, type_what)?;
        columns.push(ValueColumn { at, kind, id, name, ty });
    }
    Ok(columns)
}

fn bool(r: &mut Reader<'_>, what: &str) -> Result<bool> {
    let at = r.pos;
    match r.u8(what)? {
        FALSE => Ok(false),
        TRUE => Ok(true),
        b => Err(r.corrupt(at, format!("bad {what} flag {b} (not 0 or 1)"))),
    }
}

fn f64(r: &mut Reader<'_>, what: &str) -> Result<f64> {
    Ok(f64::from_bits(u64::from_le_bytes(r.array::<8>(what)?)))
}

fn usize(r: &mut Reader<'_>, what: &str) -> Result<usize> {
    let at = r.pos;
    let v = r.varint(what)?;
    usize::try_from(v).map_err(|_| r.corrupt(at, format!("{what} {v} does not fit usize")))
}

fn options(r: &mut Reader<'_>) -> Result<TableOptions> {
    let at = r.pos;
    let tombstone_gc = match r.u8("tombstone_gc mode")? {
        GC_TIMEOUT => TombstoneGcMode::Timeout,
        GC_REPAIR => TombstoneGcMode::Repair { propagation_delay_seconds: r.i64("propagation_delay_in_seconds")? },
        GC_IMMEDIATE => TombstoneGcMode::Immediate,
        GC_DISABLED => TombstoneGcMode::Disabled,
        tag => return Err(r.corrupt(at, format!("bad tombstone_gc mode tag {tag}"))),
    };
    let gc_grace_seconds = r.i64("gc_grace_seconds")?;
    let default_ttl = r.i32("default_time_to_live")?;
    let at = r.pos;
    let compaction = match r.u8("compaction strategy")? {
        COMPACTION_SIZE_TIERED => CompactionStrategy::SizeTiered {
            bucket_low: f64(r, "bucket_low")?,
            bucket_high: f64(r, "bucket_high")?,
            min_sstable_size: r.varint("min_sstable_size")?,
            min_sstable_age: r.i64("min_sstable_age")?,
        },
        COMPACTION_LEVELED => {
            CompactionStrategy::Leveled { sstable_size_in_mb: r.varint("sstable_size_in_mb")?, fanout: r.varint("fanout")? }
        }
        COMPACTION_TIME_WINDOW => CompactionStrategy::TimeWindow {
            window_seconds: r.i64("window_seconds")?,
            expired_sstable_check_frequency_seconds: r.i64("expired_sstable_check_frequency_seconds")?,
        },
        tag => return Err(r.corrupt(at, format!("bad compaction strategy tag {tag}"))),
    };
    let compaction_common = CompactionCommon {
        enabled: bool(r, "compaction enabled")?,
        min_threshold: usize(r, "min_threshold")?,
        max_threshold: usize(r, "max_threshold")?,
        tombstone_threshold: f64(r, "tombstone_threshold")?,
        tombstone_compaction_interval: r.i64("tombstone_compaction_interval")?,
        unchecked_tombstone_compaction: bool(r, "unchecked_tombstone_compaction")?,
    };
    let at = r.pos;
    let compression = match r.u8("compression")? {
        COMPRESSION_NONE => Compression::None,
        COMPRESSION_LZ4 => Compression::Lz4,
        COMPRESSION_ZSTD => Compression::Zstd { level: r.i32("zstd level")? },
        tag => return Err(r.corrupt(at, format!("bad compression tag {tag}"))),
    };
    let block_size = usize(r, "block_size")?;
    let bloom_filter_fp_chance = f64(r, "bloom_filter_fp_chance")?;
    Ok(TableOptions {
        tombstone_gc,
        gc_grace_seconds,
        default_ttl,
        compaction,
        compaction_common,
        compression,
        block_size,
        bloom_filter_fp_chance,
    })
}
