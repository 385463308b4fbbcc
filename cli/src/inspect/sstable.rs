//! `talus sstable dump` and `talus sstable stats`, and opening an sstable file for the tools.
//!
//! An sstable is opened read-only (a read-only memory map through `RealFs::map_readonly`); its
//! generation is checked against the footer only when the file name is a generation name
//! (`00000000000000000042.sst`). When the file sits in the `sst/` directory of an engine
//! directory, the schemas of that directory's `MANIFEST` make keys and cells readable.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use talus::fs::RealFs;
use talus::sstable_set::{parse_sstable_file_name, SSTABLE_DIR};
use talus::sstable_source::open_sstable_source;
use talus_format::sstable::block::BlockHandle;
use talus_format::sstable::footer::{Section, FOOTER_LEN, SSTABLE_MAGIC};
use talus_format::sstable::reader::{ReadCounters, ReadPlan, SstableReader};
use talus_format::sstable::statistics::{SstableOrigin, Statistics};
use talus_format::{Fragment, PartitionKey, SchemaRef};

use super::common::{
    cells_json, check_file, format_failure, hex, io_failure, key_json, marker_json, parse_hex, position_json, prefix_json,
    row_tombstone_json, table_hex, tombstone_json, Out, Schemas,
};
use super::{CliError, CliResult};

/// Opens the sstable at `path` read-only. Errors: a missing or unreadable file (exit 2), a file
/// that is not an sstable or whose footer or metadata sections are corrupt (exit 1).
pub fn open(path: &Path) -> CliResult<Arc<SstableReader>> {
    check_file(path)?;
    let source = open_sstable_source(&RealFs, path).map_err(|e| io_failure(path, &e))?;
    let len = source.len();
    let magic = len.checked_sub(FOOTER_LEN as u64).and_then(|at| source.read_at(at, SSTABLE_MAGIC.len()).ok());
    if magic.as_deref() != Some(&SSTABLE_MAGIC[..]) {
        return Err(CliError::data(format!(
            "{}: not a Talus sstable ({len} bytes, no {:?} footer)",
            path.display(),
            String::from_utf8_lossy(&SSTABLE_MAGIC)
        )));
    }
    let expected = path.file_name().and_then(|n| n.to_str()).and_then(parse_sstable_file_name);
    let reader = SstableReader::open(source, expected, None).map_err(|e| format_failure(path, &e))?;
    Ok(Arc::new(reader))
}

/// The schemas of the engine directory holding the sstable at `path`, if it sits in one.
pub fn schemas_for(path: &Path) -> Schemas {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let engine_dir = if parent.file_name().is_some_and(|n| n == SSTABLE_DIR) { parent.parent() } else { Some(parent) };
    engine_dir.map(Schemas::from_engine_dir).unwrap_or_default()
}

/// Every data block the indexes reference, by offset.
pub fn blocks(reader: &SstableReader) -> talus_format::Result<BTreeMap<u64, BlockHandle>> {
    Ok(reader.block_handles()?.into_iter().map(|h| (h.offset, h)).collect())
}

/// The JSON line of one fragment: an object whose first field is its `type`.
fn fragment_line(fragment: &Fragment, schema: Option<&SchemaRef>) -> String {
    let fields = match fragment {
        Fragment::PartitionStart { key, tombstone } => vec![
            ("type", json!("partition-start")),
            ("key", key_json(key, schema)),
            ("token", json!(key.token.0.to_string())),
            ("tombstone", tombstone_json(*tombstone)),
        ],
        Fragment::StaticRow(cells) => vec![("type", json!("static-row")), ("cells", cells_json(cells, schema))],
        Fragment::Row { key, row } => vec![
            ("type", json!("clustering-row")),
            ("key", prefix_json(key, schema)),
            ("marker", marker_json(&row.marker)),
            ("tombstone", row_tombstone_json(&row.tombstone)),
            ("cells", cells_json(&row.cells, schema)),
        ],
        Fragment::RangeTombstoneChange(change) => vec![
            ("type", json!("range-tombstone-change")),
            ("position", position_json(&change.position, schema)),
            ("tombstone", tombstone_json(change.tombstone)),
        ],
        Fragment::PartitionEnd => vec![("type", json!("partition-end"))],
    };
    let body: Vec<String> = fields.iter().map(|(name, value)| format!("{}:{value}", Json::from(*name))).collect();
    format!("{{{}}}", body.join(","))
}

/// `talus sstable dump <file> [--partition <hex>]`.
pub fn dump(path: &Path, partition: Option<&str>) -> CliResult {
    let reader = open(path)?;
    let range = match partition {
        None => 0..reader.partitions().len(),
        Some(text) => {
            let bytes = parse_hex(text)
                .ok_or_else(|| CliError::usage(format!("--partition {text:?}: expected hex bytes of the legacy-form partition key")))?;
            let key = PartitionKey::from_legacy_bytes(bytes.into()).decorate();
            let index = reader.find_index(&key).ok_or_else(|| {
                CliError::data(format!("{}: no partition with key 0x{} in this sstable", path.display(), hex(key.key.as_bytes())))
            })?;
            index..index + 1
        }
    };
    let schemas = schemas_for(path);
    let schema = schemas.get(reader.statistics().table);
    let mut out = Out::new();
    for fragment in reader.stream(range, Arc::new(ReadPlan::full()), Arc::new(ReadCounters::default())) {
        let fragment = match fragment {
            Ok(f) => f,
            Err(e) => {
                out.flush()?;
                return Err(format_failure(path, &e));
            }
        };
        out.line(fragment_line(&fragment, schema))?;
    }
    out.flush()
}

fn section_json(s: &Section) -> Json {
    json!({ "offset": s.offset, "length": s.len, "checksum": format!("{:016x}", s.checksum) })
}

fn origin_name(origin: SstableOrigin) -> &'static str {
    match origin {
        SstableOrigin::Flush => "flush",
        SstableOrigin::Compaction => "compaction",
        SstableOrigin::Ingest => "ingest",
    }
}

/// Every field of the statistics section.
pub fn statistics_json(s: &Statistics, schemas: &Schemas) -> Json {
    let schema = schemas.get(s.table);
    let c = &s.counts;
    json!({
        "origin": origin_name(s.origin),
        "table": table_hex(s.table),
        "table_name": schema.map(|s| s.full_name()),
        "level": s.level,
        "run_id": s.run_id,
        "created_at": s.created_at.0,
        "first_key": s.first_key.as_ref().map(|k| json!({ "key": key_json(k, schema), "token": k.token.0.to_string() })),
        "last_key": s.last_key.as_ref().map(|k| json!({ "key": key_json(k, schema), "token": k.token.0.to_string() })),
        "counts": {
            "partitions": c.partitions,
            "rows": c.rows,
            "partition_tombstones": c.partition_tombstones,
            "range_tombstones": c.range_tombstones,
            "row_tombstones": c.row_tombstones,
            "cell_tombstones": c.cell_tombstones,
            "expiring_cells": c.expiring_cells,
        },
        "min_timestamp": s.min_timestamp.0,
        "max_timestamp": s.max_timestamp.0,
        "min_live_timestamp": s.min_live_timestamp.0,
        "min_live_row_marker_timestamp": s.min_live_row_marker_timestamp.0,
        "min_deletion_time": s.min_deletion_time.0,
        "max_deletion_time": s.max_deletion_time.0,
        "drop_time_histogram": {
            "max_bins": s.drop_times.max_bins(),
            "total": s.drop_times.total(),
            "bins": s.drop_times.bins().iter().map(|&(point, count)| json!({ "point": point, "count": count })).collect::<Vec<_>>(),
        },
        "commitlog_interval": s.commitlog_interval.map(|i| json!({
            "start": { "segment": i.start.segment, "offset": i.start.offset },
            "end": { "segment": i.end.segment, "offset": i.end.offset },
        })),
        "data_size": s.data_size,
    })
}

/// `talus sstable stats <file>`.
pub fn stats(path: &Path) -> CliResult {
    let reader = open(path)?;
    let blocks = blocks(&reader).map_err(|e| format_failure(path, &e))?;
    let footer = reader.footer();
    let schemas = schemas_for(path);
    let report = json!({
        "file": path.display().to_string(),
        "file_size": reader.file_len(),
        "footer": {
            "file_id": footer.file_id,
            "data": { "offset": 0, "length": footer.data_end() },
            "row_index": section_json(&footer.row_index),
            "partition_index": section_json(&footer.partition_index),
            "filter": section_json(&footer.filter),
            "statistics": section_json(&footer.statistics),
        },
        "partition_count": reader.partitions().len(),
        "block_count": blocks.len(),
        "statistics": statistics_json(reader.statistics(), &schemas),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| CliError::data(format!("{}: {e}", path.display())))?;
    let mut out = Out::new();
    out.line(text)?;
    out.flush()
}
