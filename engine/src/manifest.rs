//! The `MANIFEST` file of an engine directory: the one metadata log (DESIGN §4). It holds the
//! table schemas, the truncation positions of dropped tables and the sstables with their states,
//! as records of [`ManifestEdit`]s in the encoding of [`talus_format::manifest`].
//!
//! Write protocol of [`Manifest::apply`]: validate the record against the state; append it at
//! the end of the file (`write_all_at`); `sync`; only then update the in-memory state and return
//! `Ok`. When the file has grown past `max(min_rewrite_bytes, 4 × the file a rewrite would
//! write)`, it is rewritten as the header plus one record holding [`ManifestState::snapshot`],
//! with `write_file_atomic` (`MANIFEST.tmp` written and synced, renamed over `MANIFEST`, directory
//! synced), and appends continue in the new file.
//!
//! [`Manifest::open`] removes a leftover `MANIFEST.tmp` (a rewrite that crashed before its
//! rename), creates the file if missing, replays every record, cuts a torn last record off, and
//! then syncs the file and the directory: what recovery read is made durable before anything is
//! appended after it (a rename or append that a process crash left unsynced would otherwise be
//! lost, with later edits, by a power loss).
//!
//! Invariants:
//!
//! - P5: after a crash at any file operation, reopening gives the state after some prefix of the
//!   applied records that includes every acknowledged one (at most the one in flight more).
//! - P6, fail-stop: after any I/O error the on-disk outcome of the edit in flight is unknown, so
//!   the manifest refuses every later `apply`; the owner must reopen it. [`Manifest::state`]
//!   holds only edits known to be durable: a failed `apply` leaves it unchanged, except when the
//!   record was synced and the rewrite after it failed (the old file and the new both hold it).
//! - Corruption (a bad record followed by a valid one, a bad header, or a checksummed record that
//!   the state rejects) is [`Error::MetadataCorrupt`] naming the file and the offset.
//!
//! Thread-safety: the methods that change the manifest take `&mut self`; the engine keeps it
//! behind a mutex. One process opens a directory at a time (the engine holds the directory lock).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use talus_format::fs::{write_file_atomic, Fs, FsFile, OpenMode};
use talus_format::manifest::{encode_header, encode_record, scan_manifest, ManifestEdit, ManifestState, HEADER_LEN};

use crate::error::{io_error, Error, Result};

/// Name of the manifest file in the engine directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Name of the temporary file of a rewrite (the name `write_file_atomic` uses).
pub const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";

/// Tuning of a [`Manifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestOptions {
    /// The file is never rewritten while it is smaller than this (bytes).
    pub min_rewrite_bytes: u64,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions { min_rewrite_bytes: 64 * 1024 }
    }
}

/// The manifest of one engine directory.
pub struct Manifest {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    path: PathBuf,
    file: Arc<dyn FsFile>,
    /// Length of the file: where the next record goes.
    len: u64,
    /// Length of the file the last rewrite wrote (or would have written, at open).
    snapshot_len: u64,
    state: ManifestState,
    options: ManifestOptions,
    rewrites: u64,
    /// Why the manifest refuses edits, once an I/O error happened.
    failed: Option<String>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("tables", &self.state.tables.len())
            .field("sstables", &self.state.sstables.len())
            .field("rewrites", &self.rewrites)
            .field("failed", &self.failed)
            .finish()
    }
}

/// The file a rewrite writes: the header and one record with the snapshot of `state`.
fn snapshot_file(state: &ManifestState) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_header(&mut bytes);
    encode_record(&state.snapshot(), HEADER_LEN as u64, &mut bytes);
    bytes
}

impl Manifest {
    /// Opens (or creates) the manifest of directory `dir`, which must exist, with default options.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<Manifest> {
        Manifest::open_with(fs, dir, ManifestOptions::default())
    }

    /// Opens (or creates) the manifest of directory `dir`: replays it, cuts a torn last record
    /// off, and makes what it read durable (see the module documentation).
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path, options: ManifestOptions) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(MANIFEST_TMP_FILE);
        if fs.exists(&tmp).map_err(io_error(&tmp))? {
            // The old MANIFEST is whole: a rewrite renames only a synced file.
            fs.remove_file(&tmp).map_err(io_error(&tmp))?;
        }
        if !fs.exists(&path).map_err(io_error(&path))? {
            let mut header = Vec::new();
            encode_header(&mut header);
            write_file_atomic(&*fs, &path, &header).map_err(io_error(&path))?;
        }
        let file = fs.open(&path, OpenMode::Existing).map_err(io_error(&path))?;
        let bytes = file.read_all().map_err(io_error(&path))?;
        let file_name = path.display().to_string();
        let scan = scan_manifest(&bytes).map_err(|e| Error::MetadataCorrupt { file: file_name.clone(), reason: e.to_string() })?;
        let mut state = ManifestState::default();
        for (edits, offset) in scan.records.iter().zip(&scan.offsets) {
            state.apply(edits).map_err(|e| Error::MetadataCorrupt {
                file: file_name.clone(),
                reason: format!("record at offset {offset} does not apply: {e}"),
            })?;
        }
        if scan.torn_tail {
            file.set_len(scan.valid_len as u64).map_err(io_error(&path))?;
        }
        file.sync().map_err(io_error(&path))?;
        fs.sync_dir(dir).map_err(io_error(dir))?;
        let snapshot_len = snapshot_file(&state).len() as u64;
        Ok(Manifest {
            fs,
            dir: dir.to_path_buf(),
            path,
            file,
            len: scan.valid_len as u64,
            snapshot_len,
            state,
            options,
            rewrites: 0,
            failed: None,
        })
    }

    /// The state: every edit known to be durable.
    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Applies one record of edits atomically and durably; see the module documentation.
    ///
    /// Errors: a record the state rejects is [`Error::InvalidQuery`] and changes nothing (the
    /// manifest stays usable); an I/O error is [`Error::Io`], after which the manifest refuses
    /// every later edit (the edit may or may not be durable: reopen to find out). An empty record
    /// is a no-op.
    pub fn apply(&mut self, edits: Vec<ManifestEdit>) -> Result<()> {
        if let Some(reason) = &self.failed {
            let source = io::Error::other(format!("the manifest failed earlier and refuses edits until reopened: {reason}"));
            return Err(Error::Io { path: self.path.display().to_string(), source });
        }
        if edits.is_empty() {
            return Ok(());
        }
        let mut next = self.state.clone();
        next.apply(&edits).map_err(|e| Error::InvalidQuery(format!("manifest edit rejected: {e}")))?;
        let mut record = Vec::new();
        encode_record(&edits, self.len, &mut record);
        let written = self.file.write_all_at(&record, self.len).and_then(|()| self.file.sync());
        if let Err(source) = written {
            return Err(self.fail("appending a record to", source));
        }
        self.len += record.len() as u64;
        self.state = next;
        if self.len > self.options.min_rewrite_bytes.max(self.snapshot_len.saturating_mul(4)) {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Replaces the file with the header and one record holding the snapshot of the state.
    fn rewrite(&mut self) -> Result<()> {
        let bytes = snapshot_file(&self.state);
        if let Err(source) = write_file_atomic(&*self.fs, &self.path, &bytes) {
            // The directory may name the old file or the new one: both hold the state, but which
            // inode later appends reach is unknown.
            return Err(self.fail("rewriting", source));
        }
        match self.fs.open(&self.path, OpenMode::Existing) {
            Ok(file) => self.file = file,
            Err(source) => return Err(self.fail("reopening after a rewrite", source)),
        }
        self.len = bytes.len() as u64;
        self.snapshot_len = self.len;
        self.rewrites += 1;
        Ok(())
    }

    /// Marks the manifest failed (fail-stop) and builds the error to return.
    fn fail(&mut self, what: &str, source: io::Error) -> Error {
        let path = self.path.display().to_string();
        self.failed = Some(format!("{what} {path}: {source}"));
        Error::Io { path, source }
    }

    /// Why the manifest refuses edits, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// How many rewrites this handle made since it was opened.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }

    /// The current length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The engine directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
