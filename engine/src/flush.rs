//! Writing sstable files (DESIGN §3 flush, §4): a fragment stream → a durable sstable file.
//!
//! [`write_sstable`] is the first half of the sstable protocol: write the file, fsync it, fsync
//! its directory. The caller then appends the manifest edit that makes the file part of the
//! engine; until that edit is durable the file is an orphan that the next open removes. On any
//! error the partial file is removed (best effort: a crash leaves it for the next open).
//!
//! Thread-safety: a free function; callers serialize flushes per table.

use std::path::Path;

use talus_format::sstable::statistics::{CommitlogInterval, SstableOrigin};
use talus_format::sstable::writer::{FileSink, SstableWriter, SstableWriterOptions, WrittenSstable};
use talus_format::{Fragment, OpenMode, Schema};

use crate::error::{io_error, Error, Result};
use crate::fs::Fs;
use crate::memtable::Memtable;
use crate::memtable_reader::{PartitionReader, Slice};
use crate::sstable_set::sstable_file_name;

/// Writes generation `generation` of `schema`'s table into `sst_dir` from `fragments` and makes
/// the file and its directory entry durable.
pub fn write_sstable(
    fs: &dyn Fs,
    sst_dir: &Path,
    generation: u64,
    schema: &Schema,
    origin: SstableOrigin,
    fragments: impl Iterator<Item = Result<Fragment>>,
    commitlog_interval: Option<CommitlogInterval>,
) -> Result<WrittenSstable> {
    let path = sst_dir.join(sstable_file_name(generation));
    let result = (|| {
        let file = fs.open(&path, OpenMode::CreateNew).map_err(io_error(&path))?;
        let mut writer = SstableWriter::new(FileSink::new(&*file), generation, SstableWriterOptions::for_schema(schema), origin, schema.id);
        for fragment in fragments {
            writer.add(&fragment?).map_err(|e| sink_error(&path, e))?;
        }
        let (mut sink, written) = writer.finish(commitlog_interval).map_err(|e| sink_error(&path, e))?;
        sink.flush().map_err(io_error(&path))?;
        file.sync().map_err(io_error(&path))?;
        fs.sync_dir(sst_dir).map_err(io_error(sst_dir))?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = fs.remove_file(&path);
    }
    result
}

/// A writer error: sink failures are I/O errors on the file; anything else is the stream's fault.
fn sink_error(path: &Path, error: talus_format::Error) -> Error {
    match error {
        talus_format::Error::Io(reason) => Error::Io { path: path.display().to_string(), source: std::io::Error::other(reason) },
        other => Error::Format(other),
    }
}

/// The whole content of `memtable` as a fragment stream.
pub fn memtable_fragments(memtable: &Memtable) -> impl Iterator<Item = Result<Fragment>> + '_ {
    let slice = std::sync::Arc::new(Slice::full());
    memtable.partitions_in(..).flat_map(move |(key, version)| PartitionReader::new(key, version, slice.clone())).map(Ok)
}
