//! The sstables of an engine directory (DESIGN §4): file names, opening a file into a reader, and
//! removing files the manifest does not name.
//!
//! SSTable files live in `<engine dir>/sst/`, named by their generation (`00000000000000000042.sst`);
//! generations only grow, so names are never reused. A file becomes part of the engine only
//! through its manifest edit, written after the file and its directory entry are durable; a file
//! without an edit is an unfinished write and is removed on open.
//!
//! Thread-safety: [`Sstable`] is immutable and shared (`Arc`) by every read that uses it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use talus_format::manifest::SstableState;
use talus_format::sstable::partition_index::PartitionIndex;
use talus_format::sstable::reader::SstableReader;
use talus_format::sstable::BlockCache;
use talus_format::TableId;

use crate::error::{io_error, Error, Result};
use crate::fs::Fs;
use crate::sstable_source::open_sstable_source;

/// The sstable directory inside the engine directory.
pub const SSTABLE_DIR: &str = "sst";

/// The file name of generation `generation`.
pub fn sstable_file_name(generation: u64) -> String {
    format!("{generation:020}.sst")
}

/// The generation named by an sstable file name, if it is one.
pub fn parse_sstable_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".sst")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// One open sstable.
#[derive(Debug)]
pub struct Sstable {
    /// Its generation (also the file id its checksums are bound to).
    pub generation: u64,
    /// Its table.
    pub table: TableId,
    /// Its file.
    pub path: PathBuf,
    /// Its state.
    pub state: SstableState,
    /// The reader.
    pub reader: Arc<SstableReader>,
}

impl Sstable {
    /// Opens generation `generation` of `table` in `sst_dir`; `written` is its partition index
    /// when this process has just written it (see `SstableReader::open_written`).
    pub fn open(
        fs: &dyn Fs,
        sst_dir: &Path,
        generation: u64,
        table: TableId,
        state: SstableState,
        cache: Option<Arc<dyn BlockCache>>,
        written: Option<PartitionIndex>,
    ) -> Result<Sstable> {
        let path = sst_dir.join(sstable_file_name(generation));
        let source = open_sstable_source(fs, &path).map_err(io_error(&path))?;
        let reader = match written {
            Some(index) => SstableReader::open_written(source, Some(generation), cache, index),
            None => SstableReader::open(source, Some(generation), cache),
        }
        .map_err(|e| corrupt(&path, e))?;
        Ok(Sstable { generation, table, path, state, reader: Arc::new(reader) })
    }
}

/// Names a format error of the sstable at `path`: [`Error::SstableCorrupt`], or [`Error::Io`] for
/// a failed read (which says nothing about the file's content, so it never quarantines).
pub fn corrupt(path: &Path, error: talus_format::Error) -> Error {
    let file = path.display().to_string();
    match error {
        talus_format::Error::Io(reason) => Error::Io { path: file, source: std::io::Error::other(reason) },
        talus_format::Error::Corrupt { structure, offset, reason } => {
            Error::SstableCorrupt { file, offset: offset as u64, reason: format!("{structure}: {reason}") }
        }
        other => Error::SstableCorrupt { file, offset: 0, reason: other.to_string() },
    }
}

/// Removes every file of `sst_dir` that is not the sstable of a generation in `named` (unfinished
/// flushes and compactions, files of dropped tables); returns the removed names.
pub fn remove_unnamed_files(fs: &dyn Fs, sst_dir: &Path, named: &BTreeSet<u64>) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in fs.list(sst_dir).map_err(io_error(sst_dir))? {
        if parse_sstable_file_name(&name).is_some_and(|g| named.contains(&g)) {
            continue;
        }
        let path = sst_dir.join(&name);
        fs.remove_file(&path).map_err(io_error(&path))?;
        removed.push(name);
    }
    if !removed.is_empty() {
        fs.sync_dir(sst_dir).map_err(io_error(sst_dir))?;
    }
    Ok(removed)
}
