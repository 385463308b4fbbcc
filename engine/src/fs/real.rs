//! The real file system: `std::fs` behind the [`Fs`] trait, with a directory lock so two
//! processes never open one engine directory.
//!
//! [`Fs::map_readonly`] memory-maps immutable files (sstables) with `memmap2`, in this file's only
//! `unsafe` block (its safety argument stands next to it).
//!
//! Thread-safety: stateless; file handles use positional I/O (`pread`/`pwrite`), so they are
//! shared between threads without a cursor.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::Mmap;
use talus_format::fs::{DirLock, Fs, FsFile, OpenMode};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(File);

impl FsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

/// An exclusive `flock` on the directory's lock file, released when dropped (or when the process
/// dies, so a killed process never leaves a stale lock).
#[derive(Debug)]
struct RealDirLock {
    _file: File,
    _path: PathBuf,
}

impl DirLock for RealDirLock {}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Fs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path).map_err(|e| with_path(path, e))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateOrOpen => {
                options.create(true);
            }
            OpenMode::CreateNew => {
                options.create_new(true);
            }
        }
        let file = options.open(path).map_err(|e| with_path(path, e))?;
        Ok(Arc::new(RealFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to).map_err(|e| with_path(from, e))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path).map_err(|e| with_path(path, e))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| with_path(dir, e))? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| with_path(dir, e))
    }

    fn map_readonly(&self, path: &Path) -> io::Result<Option<Bytes>> {
        let file = File::open(path).map_err(|e| with_path(path, e))?;
        if file.metadata().map_err(|e| with_path(path, e))?.len() == 0 {
            // `mmap` rejects a zero-length mapping.
            return Ok(Some(Bytes::new()));
        }
        // SAFETY: the engine maps only immutable files (sstables): once written, synced and
        // published they are never modified or truncated again, only deleted. Deleting a mapped
        // file on Linux unlinks the name but keeps the inode, and so the mapping, valid until it
        // is unmapped, so the bytes behind the returned `Bytes` never change or disappear while
        // it (or any slice of it) is alive. Nothing writes through the mapping (it is read-only).
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| with_path(path, e))?;
        Ok(Some(Bytes::from_owner(mmap)))
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| with_path(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(RealDirLock { _file: file, _path: path })),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked: another process has this engine directory open", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(with_path(&path, e)),
        }
    }
}
