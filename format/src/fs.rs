//! The file-system interface every persistent structure goes through (DESIGN §9).
//!
//! The engine never calls `std::fs` directly: it holds an `Arc<dyn Fs>`. Production uses the real
//! file system; tests use a simulated one that can lose power (`SimFs`) and a wrapper that injects
//! faults (`FaultFs`), both in the engine crate. Decoders in this crate read through [`FsFile`]
//! handles so they run unchanged on every implementation.
//!
//! Semantics every implementation follows (the POSIX contract the crash simulator models):
//!
//! - [`FsFile::write_at`] may write fewer bytes than asked (a short write); callers loop with
//!   [`FsFile::write_all_at`]. Written bytes are visible to reads at once but survive a power loss
//!   only after [`FsFile::sync`] returns `Ok`.
//! - Creating, renaming and removing a file changes the directory; the change survives a power
//!   loss only after [`Fs::sync_dir`] on the parent directory returns `Ok`.
//! - After a failed `sync` the state of unsynced data is unknown: callers must not retry the sync
//!   and assume success (fsyncgate, P6); the engine fail-stops instead.
//!
//! Thread-safety: implementations are `Send + Sync`; a file handle may be used from several
//! threads (positional reads and writes take no shared cursor).

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file: positional reads and writes, sync, length.
pub trait FsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes some prefix of `buf` at `offset` and returns its length (it may be short).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// Makes the file's data durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;

    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Writes all of `buf` at `offset`, looping over short writes.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_at(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"));
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Fills `buf` from `offset`; an `UnexpectedEof` error if the file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("file ends before offset {}", offset)));
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Reads the whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large"))?;
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Create the file if missing; keep its contents otherwise.
    CreateOrOpen,
    /// The file must not exist; create it empty.
    CreateNew,
}

/// A held lock on a directory; released when dropped.
pub trait DirLock: Send + Sync + Debug {}

/// A file system.
pub trait Fs: Send + Sync + Debug {
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Opens a file for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>>;

    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Names of the files in a directory, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on `dir` (through a lock file inside it), failing with
    /// `WouldBlock` if another holder has it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>>;

    /// A read-only memory map of the immutable file at `path` as zero-copy [`bytes::Bytes`], or
    /// `None` when this file system cannot map files; callers then read through [`Fs::open`] and
    /// [`FsFile::read_at`]. Only for files that are never modified or truncated again (sstables):
    /// a mapped file may be deleted, never rewritten. An empty file maps to empty `Bytes`.
    ///
    /// The default returns `None`: simulated and fault-injecting file systems must be observed
    /// through `read_at`, where crashes and faults are applied.
    fn map_readonly(&self, path: &Path) -> io::Result<Option<bytes::Bytes>> {
        let _ = path;
        Ok(None)
    }

    /// Whether a file exists.
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let (dir, name) = split(path)?;
        Ok(self.list(&dir)?.contains(&name))
    }
}

/// Splits a file path into its directory and file name.
pub fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no UTF-8 file name", path.display())))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((dir, name.to_string()))
}

/// Creates a directory (and missing parents) and makes its entry in its parent durable, so a
/// power loss cannot take the directory, and the synced files in it, away.
pub fn create_dir_durable(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    fs.create_dir_all(path)?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs.sync_dir(parent),
        _ => fs.sync_dir(Path::new(".")),
    }
}

/// Writes `contents` to `path` atomically and durably: a temporary file is written and synced,
/// renamed over `path`, and the directory is synced. A crash leaves the old file or the new one.
pub fn write_file_atomic(fs: &dyn Fs, path: &Path, contents: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs.open(&tmp, OpenMode::CreateOrOpen)?;
    file.set_len(0)?;
    file.write_all_at(contents, 0)?;
    file.sync()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(&dir)
}
