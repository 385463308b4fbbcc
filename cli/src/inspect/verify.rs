//! `talus sstable verify <file>...`: checks each sstable with
//! [`talus_format::sstable::verify::verify`] (footer and section checksums at open, the block
//! layout, every block's checksum and records, the fragment stream, the indexes and the statistics
//! against the data, the bloom filter), prints every problem with its file, structure, offset and
//! reason, then one report line per file.
//!
//! Exit code: 0 when every file is clean, 1 when problems were found, 2 when a file could not be
//! read at all (missing, not a regular file, I/O error); the highest code wins.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use talus_format::sstable::verify::verify;

use super::common::Out;
use super::sstable::open;
use super::CliError;

/// Verifies one file; prints its problems and report line; returns its exit code.
fn verify_file(path: &Path, out: &mut Out) -> Result<u8, CliError> {
    let prefix = format!("{}: ", path.display());
    let reader = match open(path) {
        Ok(reader) => reader,
        Err(e) => {
            // The message starts with the path; the report line puts the verdict after it.
            let what = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
            let verdict = if e.code == 2 { "ERROR" } else { "FAILED" };
            out.line(format!("{prefix}{verdict}: {what}"))?;
            return Ok(e.code);
        }
    };
    let report = verify(&reader);
    for problem in &report.problems {
        out.line(format!("{prefix}{problem}"))?;
    }
    if report.problems_omitted > 0 {
        out.line(format!("{prefix}... and {} more problem(s)", report.problems_omitted))?;
    }
    let summary = format!(
        "file id {}, {} bytes, {} partition(s), {} row(s), {} block(s), {} fragment(s)",
        reader.file_id(),
        report.file_len,
        report.partitions,
        report.rows,
        report.blocks,
        report.fragments
    );
    if report.is_clean() {
        out.line(format!("{prefix}OK: {summary}"))?;
        return Ok(0);
    }
    let total = report.problems.len() as u64 + report.problems_omitted;
    let skipped = if report.stream_checked { "" } else { " (stream, index and statistics checks skipped after lost data)" };
    out.line(format!("{prefix}FAILED: {total} problem(s); {summary}{skipped}"))?;
    Ok(1)
}

/// `talus sstable verify <file>...`.
pub fn verify_files(files: &[PathBuf]) -> ExitCode {
    let mut out = Out::new();
    let mut worst = 0;
    for path in files {
        match verify_file(path, &mut out) {
            Ok(code) => worst = worst.max(code),
            Err(e) => return ExitCode::from(e.code),
        }
    }
    match out.flush() {
        Ok(()) => ExitCode::from(worst),
        Err(e) => ExitCode::from(e.code),
    }
}
