//! `talus commitlog dump <dir-or-segment-file> [--mutations]`: per segment file its header id,
//! every valid record (offset, kind, length, entry count, tables touched, and with `--mutations`
//! a one-line summary of each mutation), how its data ends (sealed, open with the tail after it,
//! unwritten) and the corrupt regions, judged as replay judges them: a live segment followed by a
//! later live segment with records must be intact and sealed.
//!
//! Exit code 1 when a corrupt region or an undecodable entry was found.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use talus::commitlog::SegmentName;
use talus::engine::COMMITLOG_DIR;
use talus_format::commitlog_segment::{
    decode_mutations_body, scan_segment, ScanOptions, SegmentEnd, SegmentScan, RECORD_MUTATIONS, RECORD_SEAL, SEGMENT_MAGIC,
};
use talus_format::{decode_mutation, Mutation};

use super::common::{io_failure, key_text, read_file, Out, Schemas};
use super::{CliError, CliResult};

/// One segment file to dump.
struct SegmentFile {
    path: PathBuf,
    id: u64,
    recycled: bool,
}

/// The directory holding `path` (`.` for a bare relative name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The segment files at `path` (a segment file, a commitlog directory or an engine directory)
/// and the engine directory whose `MANIFEST` names the tables.
fn segment_files(path: &Path) -> CliResult<(Vec<SegmentFile>, Option<PathBuf>)> {
    let meta = std::fs::metadata(path).map_err(|e| io_failure(path, &e))?;
    if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).and_then(SegmentName::parse);
        let id = match name {
            Some(name) => name.id(),
            None => {
                // Not a segment file name: take the id from the header, if there is one.
                let bytes = read_file(path)?;
                match bytes.get(..16).filter(|h| h[..4] == SEGMENT_MAGIC) {
                    Some(h) => u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
                    None => return Err(CliError::data(format!("{}: not a Talus commitlog segment (bad magic)", path.display()))),
                }
            }
        };
        let recycled = matches!(name, Some(SegmentName::Recycled(_)));
        let engine_dir = Some(parent_dir(&parent_dir(path)));
        return Ok((vec![SegmentFile { path: path.to_path_buf(), id, recycled }], engine_dir));
    }
    let nested = path.join(COMMITLOG_DIR);
    let (dir, engine_dir) = if nested.is_dir() { (nested, path.to_path_buf()) } else { (path.to_path_buf(), parent_dir(path)) };
    let entries = std::fs::read_dir(&dir).map_err(|e| io_failure(&dir, &e))?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_failure(&dir, &e))?;
        if let Some(name) = entry.file_name().to_str().and_then(SegmentName::parse) {
            names.insert(name);
        }
    }
    let files = names
        .into_iter()
        .map(|name| SegmentFile { path: dir.join(name.file_name()), id: name.id(), recycled: matches!(name, SegmentName::Recycled(_)) })
        .collect();
    Ok((files, Some(engine_dir)))
}

fn record_kind(kind: u8) -> String {
    match kind {
        RECORD_MUTATIONS => "mutations".into(),
        RECORD_SEAL => "seal".into(),
        other => format!("unknown kind {other}"),
    }
}

/// A one-line summary of a mutation.
fn mutation_text(m: &Mutation, schemas: &Schemas) -> String {
    let schema = schemas.get(m.table);
    let u = &m.update;
    let mut parts = Vec::new();
    if u.tombstone.is_some() {
        parts.push(format!("partition tombstone at {}", u.tombstone.timestamp.0));
    }
    if !u.static_cells.is_empty() {
        parts.push(format!("{} static cell(s)", u.static_cells.len()));
    }
    if !u.rows.is_empty() {
        let cells: usize = u.rows.values().map(|r| r.cells.len()).sum();
        let deleted = u.rows.values().filter(|r| !r.tombstone.is_none()).count();
        let markers = u.rows.values().filter(|r| !r.marker.is_missing()).count();
        let mut text = format!("{} row(s), {markers} marker(s), {cells} cell(s)", u.rows.len());
        if deleted > 0 {
            text.push_str(&format!(", {deleted} row tombstone(s)"));
        }
        parts.push(text);
    }
    if !u.range_tombstones.is_empty() {
        parts.push(format!("{} range tombstone(s)", u.range_tombstones.len()));
    }
    if parts.is_empty() {
        parts.push("empty".into());
    }
    format!("{} key {} token {}: {}", schemas.label(m.table), key_text(&m.key, schema), m.key.token.0, parts.join(", "))
}

/// Prints the records and skipped corrupt regions of one scan in file order; returns the number
/// of problems (corrupt regions and undecodable entries).
fn print_records(scan: &SegmentScan<'_>, mutations: bool, schemas: &Schemas, out: &mut Out) -> CliResult<usize> {
    let mut problems = scan.skipped.len();
    let mut regions = scan.skipped.iter().peekable();
    for record in &scan.records {
        while let Some(region) = regions.next_if(|r| r.offset < record.offset) {
            out.line(format!("  CORRUPT region @{}: {} byte(s) skipped", region.offset, region.len))?;
        }
        let len = record.end - record.offset;
        let kind = record_kind(record.kind);
        if record.kind != RECORD_MUTATIONS {
            out.line(format!("  record @{}: {kind}, {len} bytes", record.offset))?;
            continue;
        }
        let decoded: Result<Vec<Mutation>, talus_format::Error> =
            decode_mutations_body(record.body).and_then(|ms| ms.into_iter().map(decode_mutation).collect());
        match decoded {
            Ok(ms) => {
                let tables: BTreeSet<String> = ms.iter().map(|m| schemas.label(m.table)).collect();
                let tables: Vec<String> = tables.into_iter().collect();
                out.line(format!(
                    "  record @{}: {kind}, {len} bytes, {} entr{}, tables: {}",
                    record.offset,
                    ms.len(),
                    if ms.len() == 1 { "y" } else { "ies" },
                    tables.join(", ")
                ))?;
                if mutations {
                    for m in &ms {
                        out.line(format!("    {}", mutation_text(m, schemas)))?;
                    }
                }
            }
            Err(e) => {
                problems += 1;
                out.line(format!("  record @{}: {kind}, {len} bytes, UNDECODABLE: {e}", record.offset))?;
            }
        }
    }
    for region in regions {
        out.line(format!("  CORRUPT region @{}: {} byte(s) skipped", region.offset, region.len))?;
    }
    Ok(problems)
}

fn end_text(end: SegmentEnd, bytes: &[u8]) -> String {
    match end {
        SegmentEnd::Unwritten => "unwritten: no valid header and no record (an interrupted creation)".into(),
        SegmentEnd::Sealed(at) => format!("sealed at offset {at}"),
        SegmentEnd::Open(at) => {
            let tail = bytes.get(at as usize..).unwrap_or_default();
            if tail.is_empty() {
                format!("open at offset {at} (the end of the file)")
            } else if tail.iter().all(|&b| b == 0) {
                format!("open at offset {at}; unwritten tail of {} zero byte(s)", tail.len())
            } else {
                format!("open at offset {at}; {} byte(s) after it are not a valid record (torn tail or stale records)", tail.len())
            }
        }
    }
}

/// `talus commitlog dump`.
pub fn dump(path: &Path, mutations: bool) -> CliResult<ExitCode> {
    let (files, engine_dir) = segment_files(path)?;
    let schemas = engine_dir.as_deref().map(Schemas::from_engine_dir).unwrap_or_default();
    let mut out = Out::new();
    if files.is_empty() {
        out.line(format!("{}: no commitlog segment files", path.display()))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let contents = files.iter().map(|f| read_file(&f.path)).collect::<CliResult<Vec<Vec<u8>>>>()?;
    // Which live segments hold records: every live segment before one of them must be sealed.
    let has_records: Vec<bool> = files
        .iter()
        .zip(&contents)
        .map(|(f, bytes)| {
            let options = ScanOptions { expected_id: f.id, followed_by_records: false, skip_corrupt: true };
            !f.recycled && scan_segment(bytes, options).is_ok_and(|s| !s.records.is_empty())
        })
        .collect();
    let mut problems = 0;
    for (i, (file, bytes)) in files.iter().zip(&contents).enumerate() {
        let followed = !file.recycled && files.len() > 1 && (i + 1..files.len()).any(|j| has_records[j]);
        let state = if file.recycled { "recycled (never replayed)" } else { "live" };
        out.line(format!("segment {}: id {}, {} bytes, {state}", file.path.display(), file.id, bytes.len()))?;
        let options = ScanOptions { expected_id: file.id, followed_by_records: followed, skip_corrupt: true };
        match scan_segment(bytes, options) {
            Ok(scan) => {
                problems += print_records(&scan, mutations, &schemas, &mut out)?;
                out.line(format!("  end: {}", end_text(scan.end, bytes)))?;
            }
            Err(talus_format::Error::Corrupt { offset, reason, .. }) => {
                problems += 1;
                out.line(format!("  CORRUPT at offset {offset}: {reason}"))?;
            }
            Err(e) => {
                problems += 1;
                out.line(format!("  CORRUPT: {e}"))?;
            }
        }
    }
    if problems > 0 {
        out.flush()?;
        eprintln!("error: {}: {problems} problem(s) found", path.display());
    }
    out.flush()?;
    Ok(if problems > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_names() {
        assert_eq!(record_kind(RECORD_MUTATIONS), "mutations");
        assert_eq!(record_kind(RECORD_SEAL), "seal");
        assert_eq!(record_kind(9), "unknown kind 9");
    }
}
