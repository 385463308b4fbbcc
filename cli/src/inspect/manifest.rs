//! `talus manifest dump <engine-dir-or-MANIFEST-file>`: every record of the manifest with its
//! offset and edits, a torn tail if any, then the state the records build (tables, truncations of
//! dropped tables, sstables by generation with their states).
//!
//! Exit code 1 when the manifest is corrupt or a record does not apply to the state before it
//! (what the engine's open would refuse).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use talus::manifest::MANIFEST_FILE;
use talus::sstable_set::sstable_file_name;
use talus_format::manifest::{scan_manifest, ManifestEdit, ManifestState};
use talus_format::schema::ColumnDef;
use talus_format::{Schema, TableId};

use super::common::{format_failure, io_failure, read_file, table_hex, Out};
use super::CliResult;

fn columns(defs: &[ColumnDef], with_ids: bool) -> String {
    let list: Vec<String> = defs
        .iter()
        .map(|c| if with_ids { format!("{} {} #{}", c.name, c.ty.name(), c.id.0) } else { format!("{} {}", c.name, c.ty.name()) })
        .collect();
    format!("({})", list.join(", "))
}

/// The schema's name, id and columns on one line, its options on a second.
fn schema_lines(s: &Schema) -> [String; 2] {
    let clustering: Vec<String> =
        s.clustering.iter().map(|c| format!("{} {} {}", c.name, c.ty.name(), if c.descending { "desc" } else { "asc" })).collect();
    let o = &s.options;
    [
        format!(
            "create table {} (id {}): partition key {}, clustering ({}), static {}, regular {}",
            s.full_name(),
            table_hex(s.id),
            columns(&s.partition_key, false),
            clustering.join(", "),
            columns(&s.static_columns, true),
            columns(&s.regular_columns, true),
        ),
        format!(
            "options: tombstone_gc {:?}, gc_grace_seconds {}, default_ttl {}, compaction {:?}, {:?}, compression {:?}, block_size {}, bloom_filter_fp_chance {}",
            o.tombstone_gc,
            o.gc_grace_seconds,
            o.default_ttl,
            o.compaction,
            o.compaction_common,
            o.compression,
            o.block_size,
            o.bloom_filter_fp_chance
        ),
    ]
}

/// Names of the tables seen so far (dropped ones included), for labelling edits.
#[derive(Default)]
struct Names(BTreeMap<TableId, String>);

impl Names {
    fn label(&self, id: TableId) -> String {
        match self.0.get(&id) {
            Some(name) => name.clone(),
            None => format!("table {}", table_hex(id)),
        }
    }
}

fn edit_lines(edit: &ManifestEdit, names: &mut Names) -> Vec<String> {
    match edit {
        ManifestEdit::CreateTable(schema) => {
            names.0.insert(schema.id, schema.full_name());
            let [head, options] = schema_lines(schema);
            vec![head, format!("  {options}")]
        }
        ManifestEdit::DropTable { table, truncated_at } => {
            vec![format!("drop table {} (id {}), truncated at {truncated_at}", names.label(*table), table_hex(*table))]
        }
        ManifestEdit::AddSstable { table, generation, state } => {
            vec![format!("add sstable {generation} ({}) of {}, state {state}", sstable_file_name(*generation), names.label(*table))]
        }
        ManifestEdit::RemoveSstable { generation } => vec![format!("remove sstable {generation}")],
        ManifestEdit::SetState { generation, state } => vec![format!("set state of sstable {generation}: {state}")],
        ManifestEdit::ReplayFloor { table, position } => vec![format!("replay floor of {}: {position}", names.label(*table))],
    }
}

fn manifest_path(path: &Path) -> CliResult<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| io_failure(path, &e))?;
    Ok(if meta.is_dir() { path.join(MANIFEST_FILE) } else { path.to_path_buf() })
}

fn print_state(state: &ManifestState, names: &Names, out: &mut Out) -> CliResult {
    out.line(format!(
        "state: {} table(s), {} truncation(s), {} sstable(s)",
        state.tables.len(),
        state.truncations.len(),
        state.sstables.len()
    ))?;
    for schema in state.tables.values() {
        out.line(format!("  table {} (id {})", schema.full_name(), table_hex(schema.id)))?;
    }
    for (table, position) in &state.truncations {
        out.line(format!("  truncation of {}: {position}", names.label(*table)))?;
    }
    for (table, position) in &state.replay_floors {
        out.line(format!("  replay floor of {}: {position}", names.label(*table)))?;
    }
    for (generation, entry) in &state.sstables {
        out.line(format!("  sstable {generation} ({}): {}, {}", sstable_file_name(*generation), names.label(entry.table), entry.state))?;
    }
    Ok(())
}

/// `talus manifest dump`.
pub fn dump(path: &Path) -> CliResult<ExitCode> {
    let file = manifest_path(path)?;
    let bytes = read_file(&file)?;
    let scan = scan_manifest(&bytes).map_err(|e| format_failure(&file, &e))?;
    let mut out = Out::new();
    out.line(format!("manifest {}: {} bytes, {} record(s)", file.display(), bytes.len(), scan.records.len()))?;
    let mut names = Names::default();
    let mut state = ManifestState::default();
    let mut problems = 0;
    for (edits, offset) in scan.records.iter().zip(&scan.offsets) {
        out.line(format!("record @{offset}: {} edit(s)", edits.len()))?;
        for edit in edits {
            for line in edit_lines(edit, &mut names) {
                out.line(format!("  {line}"))?;
            }
        }
        if let Err(e) = state.apply(edits) {
            problems += 1;
            out.line(format!("  INVALID: the record at offset {offset} does not apply: {e}"))?;
        }
    }
    if scan.torn_tail {
        out.line(format!(
            "torn tail: {} byte(s) after offset {} are an incomplete last record (never acknowledged; the engine cuts them off)",
            bytes.len() - scan.valid_len,
            scan.valid_len
        ))?;
    }
    print_state(&state, &names, &mut out)?;
    out.flush()?;
    if problems > 0 {
        eprintln!("error: {}: {problems} record(s) do not apply", file.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
