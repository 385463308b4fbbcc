//! Helpers shared by the tools: reading files with clear errors, a stdout writer that stops
//! quietly on a closed pipe, hex, the JSON forms of keys, cells and tombstones, and the schemas of
//! an engine directory's `MANIFEST` (for readable keys and column names).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::Path;

use serde_json::{json, Value as Json};
use talus_format::cell::{Cell, ColumnId, RowMarker};
use talus_format::manifest::{scan_manifest, ManifestEdit};
use talus_format::row::{Cells, RowTombstone};
use talus_format::{ClusteringPrefix, DecoratedKey, Position, SchemaRef, TableId, Tombstone, Value};

use super::{CliError, CliResult};

/// Buffered stdout; a closed pipe (`talus ... | head`) ends the tool quietly with exit code 0.
pub struct Out {
    writer: BufWriter<Stdout>,
}

fn write_error(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError { code: 0, message: String::new() }
    } else {
        CliError::usage(format!("writing to stdout: {e}"))
    }
}

impl Out {
    /// A writer on stdout.
    pub fn new() -> Out {
        Out { writer: BufWriter::new(io::stdout()) }
    }

    /// Writes one line.
    pub fn line(&mut self, line: impl Display) -> CliResult {
        writeln!(self.writer, "{line}").map_err(write_error)
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> CliResult {
        self.writer.flush().map_err(write_error)
    }
}

/// Checks that `path` is an existing regular file.
pub fn check_file(path: &Path) -> CliResult {
    let meta = std::fs::metadata(path).map_err(|e| io_failure(path, &e))?;
    if meta.is_dir() {
        return Err(CliError::usage(format!("{}: is a directory, not a file", path.display())));
    }
    if !meta.is_file() {
        return Err(CliError::usage(format!("{}: not a regular file", path.display())));
    }
    Ok(())
}

/// The whole content of the regular file at `path`.
pub fn read_file(path: &Path) -> CliResult<Vec<u8>> {
    check_file(path)?;
    std::fs::read(path).map_err(|e| io_failure(path, &e))
}

/// A one-line message for an I/O error on `path` (exit code 2).
pub fn io_failure(path: &Path, e: &io::Error) -> CliError {
    let what = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    CliError::usage(format!("{}: {what}", path.display()))
}

/// A one-line message for a format error found in `path`: corruption (exit code 1) or a failed
/// read (exit code 2).
pub fn format_failure(path: &Path, e: &talus_format::Error) -> CliError {
    match e {
        talus_format::Error::Io(reason) => CliError::usage(format!("{}: {reason}", path.display())),
        talus_format::Error::Corrupt { structure, offset, reason } => {
            CliError::data(format!("{}: corrupt {structure} at offset {offset}: {reason}", path.display()))
        }
        other => CliError::data(format!("{}: {other}", path.display())),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex (an optional `0x` prefix, an even number of digits).
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok())).collect()
}

/// A table id as 32 hex digits.
pub fn table_hex(id: TableId) -> String {
    format!("{:032x}", id.0)
}

fn uuid_string(b: &[u8; 16]) -> String {
    let h = hex(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A typed value as JSON: numbers, booleans and text as themselves, blobs as hex, uuids in the
/// usual dashed form.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::TinyInt(v) => json!(v),
        Value::SmallInt(v) => json!(v),
        Value::Int(v) => json!(v),
        Value::BigInt(v) | Value::Timestamp(v) => json!(v),
        Value::Boolean(v) => json!(v),
        Value::Double(v) if v.is_finite() => json!(v),
        Value::Double(v) => json!(v.to_string()),
        Value::Uuid(v) | Value::TimeUuid(v) => json!(uuid_string(v)),
        Value::Text(v) => json!(v),
        Value::Blob(v) => json!(format!("0x{}", hex(v))),
    }
}

/// A short text form of a typed value.
pub fn value_text(value: &Value) -> String {
    match value_json(value) {
        Json::String(s) if matches!(value, Value::Text(_)) => format!("{s:?}"),
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// The schemas known for the sstables and commitlog of an engine directory.
#[derive(Default)]
pub struct Schemas {
    tables: BTreeMap<TableId, SchemaRef>,
}

impl Schemas {
    /// The schemas created in the `MANIFEST` at `path` (dropped tables included, the latest
    /// creation of an id winning); empty when the file is missing or unreadable.
    pub fn from_manifest(path: &Path) -> Schemas {
        let mut tables = BTreeMap::new();
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(scan) = scan_manifest(&bytes) {
                for edit in scan.records.iter().flatten() {
                    if let ManifestEdit::CreateTable(schema) = edit {
                        tables.insert(schema.id, schema.clone());
                    }
                }
            }
        }
        Schemas { tables }
    }

    /// The schemas of the engine directory `dir` (its `MANIFEST`).
    pub fn from_engine_dir(dir: &Path) -> Schemas {
        Schemas::from_manifest(&dir.join(talus::manifest::MANIFEST_FILE))
    }

    /// The schema of table `id`, if known.
    pub fn get(&self, id: TableId) -> Option<&SchemaRef> {
        self.tables.get(&id)
    }

    /// `keyspace.name` of table `id`, or its hex id.
    pub fn label(&self, id: TableId) -> String {
        self.get(id).map_or_else(|| table_hex(id), |s| s.full_name())
    }
}

/// The partition key: raw hex (the legacy form), and the typed components when the schema is
/// known (else the text, when the bytes are printable UTF-8).
pub fn key_json(key: &DecoratedKey, schema: Option<&SchemaRef>) -> Json {
    let bytes = key.key.as_bytes();
    let mut out = json!({ "raw": hex(bytes) });
    if let Some(values) = schema.and_then(|s| key.key.decode(&s.partition_key_types()).ok()) {
        out["value"] = Json::Array(values.iter().map(value_json).collect());
    } else if let Some(text) = std::str::from_utf8(bytes).ok().filter(|t| !t.is_empty() && t.chars().all(|c| !c.is_control())) {
        out["text"] = json!(text);
    }
    out
}

/// A short text form of a partition key: typed components when the schema is known, else hex.
pub fn key_text(key: &DecoratedKey, schema: Option<&SchemaRef>) -> String {
    match schema.and_then(|s| key.key.decode(&s.partition_key_types()).ok()) {
        Some(values) => format!("({})", values.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        None => format!("0x{}", hex(key.key.as_bytes())),
    }
}

/// A clustering prefix: hex of the order-preserving encoding, its component count, and the typed
/// components when the schema is known.
pub fn prefix_json(prefix: &ClusteringPrefix, schema: Option<&SchemaRef>) -> Json {
    let mut out = json!({ "raw": hex(prefix.encoded()), "components": prefix.len() });
    if let Some(values) = schema.and_then(|s| s.decode_clustering(prefix).ok()) {
        out["value"] = Json::Array(values.iter().map(value_json).collect());
    }
    out
}

/// A position of a range tombstone change: weight and prefix.
pub fn position_json(position: &Position, schema: Option<&SchemaRef>) -> Json {
    json!({ "weight": position.weight(), "prefix": prefix_json(position.prefix(), schema) })
}

/// A tombstone, `null` when empty.
pub fn tombstone_json(t: Tombstone) -> Json {
    if t.is_none() {
        Json::Null
    } else {
        json!({ "timestamp": t.timestamp.0, "deletion_time": t.deletion_time.0 })
    }
}

/// A row tombstone (regular and shadowable parts), `null` when empty.
pub fn row_tombstone_json(t: &RowTombstone) -> Json {
    if t.is_none() {
        Json::Null
    } else {
        json!({ "regular": tombstone_json(t.regular), "shadowable": tombstone_json(t.shadowable) })
    }
}

/// A row marker, `null` when missing.
pub fn marker_json(marker: &RowMarker) -> Json {
    match *marker {
        RowMarker::Missing => Json::Null,
        RowMarker::Live { timestamp } => json!({ "timestamp": timestamp.0 }),
        RowMarker::Expiring { timestamp, ttl, expiry } => json!({ "timestamp": timestamp.0, "ttl": ttl, "expiry": expiry.0 }),
        RowMarker::Dead { timestamp, deletion_time } => json!({ "timestamp": timestamp.0, "deletion_time": deletion_time.0 }),
    }
}

fn cell_json(id: ColumnId, cell: &Cell, schema: Option<&SchemaRef>) -> Json {
    let def = schema.and_then(|s| s.column_by_id(id));
    let mut out = json!({ "column": id.0 });
    if let Some(def) = def {
        out["name"] = json!(def.name);
    }
    out["timestamp"] = json!(cell.timestamp().0);
    match cell {
        Cell::Live { value, .. } | Cell::Expiring { value, .. } => {
            out["live"] = json!(true);
            out["value"] = json!(hex(value));
            if let Some(v) = def.and_then(|d| Value::deserialize(d.ty, value).ok()) {
                out["readable"] = value_json(&v);
            }
            if let Cell::Expiring { ttl, expiry, .. } = cell {
                out["ttl"] = json!(ttl);
                out["expiry"] = json!(expiry.0);
            }
        }
        Cell::Dead { deletion_time, .. } => {
            out["live"] = json!(false);
            out["deletion_time"] = json!(deletion_time.0);
        }
    }
    out
}

/// The cells of a row, in column order.
pub fn cells_json(cells: &Cells, schema: Option<&SchemaRef>) -> Json {
    Json::Array(cells.iter().map(|(id, cell)| cell_json(*id, cell, schema)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(parse_hex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(parse_hex("0x0A"), Some(vec![10]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex("é1"), None);
    }

    #[test]
    fn uuids_are_dashed() {
        let v = Value::Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0");
        assert_eq!(value_json(&v), json!("12345678-9abc-def0-1234-56789abcdef0"));
    }
}
