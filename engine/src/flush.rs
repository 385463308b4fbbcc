//! Writing sstable files (DESIGN §3 flush, §4): fragments → a durable sstable file, for flushes
//! and compactions alike.
//!
//! An [`SstableFile`] is the first half of the sstable protocol: create the file, append
//! fragments, then [`SstableFile::finish`] writes the sections, fsyncs the file and fsyncs its
//! directory. The caller then appends the manifest edit that makes the file part of the engine;
//! until that edit is durable the file is an orphan that the next open removes. A file dropped
//! unfinished, or whose finish fails, is removed (best effort: a crash leaves it for the next
//! open).
//!
//! Thread-safety: one writer per file; callers serialize flushes per table. A pipelined file is
//! written by a helper thread too, which is joined before `finish` returns or the drop removes the
//! file.

use std::path::{Path, PathBuf};

use talus_format::sstable::statistics::SstableOrigin;
use talus_format::sstable::writer::{FileSink, SstableSeal, SstableWriter, SstableWriterOptions, WrittenSstable};
use talus_format::{Fragment, OpenMode, Schema};

use crate::error::{io_error, Error, Result};
use crate::fs::Fs;
use crate::memtable::Memtable;
use crate::memtable_reader::{PartitionReader, Slice};
use crate::sstable_set::sstable_file_name;

/// An sstable file being written.
pub struct SstableFile<'a> {
    fs: &'a dyn Fs,
    sst_dir: &'a Path,
    path: PathBuf,
    generation: u64,
    /// `None` once finished (or failed in finish).
    writer: Option<SstableWriter<FileSink>>,
}

impl<'a> SstableFile<'a> {
    /// Creates the file of generation `generation` of `schema`'s table in `sst_dir`; with
    /// `pipelined`, its blocks are compressed and written by a helper thread
    /// ([`crate::EngineOptions::pipelined_compression`]; inline when no thread can be started).
    pub fn create(
        fs: &'a dyn Fs,
        sst_dir: &'a Path,
        generation: u64,
        schema: &Schema,
        origin: SstableOrigin,
        pipelined: bool,
    ) -> Result<SstableFile<'a>> {
        let path = sst_dir.join(sstable_file_name(generation));
        let file = fs.open(&path, OpenMode::CreateNew).map_err(io_error(&path))?;
        let options = SstableWriterOptions::for_schema(schema);
        // Without a helper thread (none could be started) the file is written inline: same bytes.
        let writer = pipelined
            .then(|| SstableWriter::pipelined(FileSink::new(file.clone()), generation, options, origin, schema.id).ok())
            .flatten()
            .unwrap_or_else(|| SstableWriter::new(FileSink::new(file), generation, options, origin, schema.id));
        Ok(SstableFile { fs, sst_dir, path, generation, writer: Some(writer) })
    }

    /// The generation being written.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends one fragment.
    pub fn add(&mut self, fragment: &Fragment) -> Result<()> {
        let path = &self.path;
        match &mut self.writer {
            Some(writer) => writer.add(fragment).map_err(|e| sink_error(path, e)),
            None => Err(Error::InvalidQuery(format!("{} is already finished", path.display()))),
        }
    }

    /// A sizing hint: about `partitions` partitions will be added (see
    /// [`SstableWriter::reserve_partitions`]).
    pub fn reserve_partitions(&mut self, partitions: usize) {
        if let Some(writer) = &mut self.writer {
            writer.reserve_partitions(partitions);
        }
    }

    /// Uncompressed data bytes written so far.
    pub fn data_size(&self) -> u64 {
        self.writer.as_ref().map_or(0, SstableWriter::data_size)
    }

    /// Appends every fragment of `fragments`, then finishes the file.
    pub fn write_all(mut self, fragments: impl Iterator<Item = Result<Fragment>>, seal: SstableSeal) -> Result<WrittenSstable> {
        for fragment in fragments {
            self.add(&fragment?)?;
        }
        self.finish(seal)
    }

    /// Finishes the file, fsyncs it and its directory.
    pub fn finish(mut self, seal: SstableSeal) -> Result<WrittenSstable> {
        let Some(writer) = self.writer.take() else {
            return Err(Error::InvalidQuery(format!("{} is already finished", self.path.display())));
        };
        let result = (|| {
            let (mut sink, written) = writer.finish(seal).map_err(|e| sink_error(&self.path, e))?;
            sink.flush().map_err(io_error(&self.path))?;
            sink.file().sync().map_err(io_error(&self.path))?;
            self.fs.sync_dir(self.sst_dir).map_err(io_error(self.sst_dir))?;
            Ok(written)
        })();
        if result.is_err() {
            let _ = self.fs.remove_file(&self.path);
        }
        result
    }
}

impl Drop for SstableFile<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // First the writer, whose helper thread (if any) is joined and done with the file.
            drop(writer);
            let _ = self.fs.remove_file(&self.path);
        }
    }
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
