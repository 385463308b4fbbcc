//! Segment files: names, creation, recycling and deletion (R3.7, R3.11).
//!
//! Names: `CommitLog-1-<id>.log` for a live segment, `Recycled-CommitLog-1-<id>.log` for a file
//! waiting to be reused (`1` is the segment format version). Protocols, each safe at every crash
//! point:
//!
//! - **create**: create the file, write the header and zero-fill it to the segment size (so later
//!   syncs overwrite allocated blocks and need no metadata update), sync the file, sync the
//!   directory. A crash before the end leaves a file without a valid header or records, which the
//!   replay treats as unwritten and removes.
//! - **recycle** (a segment every table has flushed): rename to the `Recycled-` name and sync the
//!   directory, so a crash can only bring the old, harmless, already-flushed segment back.
//! - **reuse**: write the new header into the recycled file and sync it, then rename it to the new
//!   live name and sync the directory. Old records keep their old id, so the reader rejects them.
//! - **delete**: remove and sync the directory before the segment stops counting for
//!   `min_gc_time` (R2.15), so a segment that may still come back is always counted.
//!
//! Thread-safety: free functions over a shared `Fs`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use talus_format::commitlog_segment::encode_segment_header;
use talus_format::fs::{Fs, FsFile, OpenMode};

const LIVE_PREFIX: &str = "CommitLog-1-";
const RECYCLED_PREFIX: &str = "Recycled-CommitLog-1-";
const SUFFIX: &str = ".log";

/// A segment file found in the commitlog directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SegmentName {
    /// A live segment with this id.
    Live(u64),
    /// A recycled file last used by the segment with this id.
    Recycled(u64),
}

impl SegmentName {
    /// Parses a file name; `None` for files that are not segments.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let number = |rest: &str| rest.strip_suffix(SUFFIX)?.parse::<u64>().ok();
        if let Some(rest) = name.strip_prefix(RECYCLED_PREFIX) {
            return number(rest).map(SegmentName::Recycled);
        }
        name.strip_prefix(LIVE_PREFIX).and_then(number).map(SegmentName::Live)
    }

    /// The file name.
    pub fn file_name(self) -> String {
        match self {
            SegmentName::Live(id) => format!("{LIVE_PREFIX}{id}{SUFFIX}"),
            SegmentName::Recycled(id) => format!("{RECYCLED_PREFIX}{id}{SUFFIX}"),
        }
    }

    /// The segment id in the name.
    pub fn id(self) -> u64 {
        match self {
            SegmentName::Live(id) | SegmentName::Recycled(id) => id,
        }
    }
}

/// The path of a segment file.
pub fn segment_path(dir: &Path, name: SegmentName) -> PathBuf {
    dir.join(name.file_name())
}

/// Creates segment `id`, or reuses `recycled` for it; returns the open file.
pub fn create_segment(fs: &dyn Fs, dir: &Path, id: u64, size: u32, recycled: Option<u64>) -> io::Result<Arc<dyn FsFile>> {
    let live = segment_path(dir, SegmentName::Live(id));
    let header = encode_segment_header(id);
    match recycled {
        Some(old) => {
            let path = segment_path(dir, SegmentName::Recycled(old));
            let file = fs.open(&path, OpenMode::Existing)?;
            file.write_all_at(&header, 0)?;
            file.sync()?;
            fs.rename(&path, &live)?;
            fs.sync_dir(dir)?;
            Ok(file)
        }
        None => {
            let file = fs.open(&live, OpenMode::CreateNew)?;
            file.write_all_at(&header, 0)?;
            let zeros = vec![0u8; 1 << 20];
            let mut offset = header.len() as u64;
            while offset < u64::from(size) {
                let n = (u64::from(size) - offset).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], offset)?;
                offset += n as u64;
            }
            file.sync()?;
            fs.sync_dir(dir)?;
            Ok(file)
        }
    }
}

/// Moves a fully flushed segment aside for reuse.
pub fn recycle_segment(fs: &dyn Fs, dir: &Path, id: u64) -> io::Result<()> {
    fs.rename(&segment_path(dir, SegmentName::Live(id)), &segment_path(dir, SegmentName::Recycled(id)))?;
    fs.sync_dir(dir)
}

/// Deletes a segment file (live or recycled) durably.
pub fn delete_segment(fs: &dyn Fs, dir: &Path, name: SegmentName) -> io::Result<()> {
    fs.remove_file(&segment_path(dir, name))?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [SegmentName::Live(0), SegmentName::Live(17_000_000_000_123), SegmentName::Recycled(5)] {
            assert_eq!(SegmentName::parse(&name.file_name()), Some(name));
        }
        for other in ["LOCK", "CommitLog-1-x.log", "CommitLog-2-5.log", "Recycled-CommitLog-1-5.lo", "CommitLog-1-5.log.tmp"] {
            assert_eq!(SegmentName::parse(other), None, "{other}");
        }
    }
}
