//! SSTable sources (DESIGN §4): random access to the bytes of one immutable sstable file, for the
//! readers of `talus_format::sstable`.
//!
//! [`open_sstable_source`] memory-maps the file when the file system can ([`Fs::map_readonly`]:
//! the real file system) and hands out zero-copy slices of the map; otherwise (the simulated and
//! fault-injecting file systems) it returns a [`FileSource`], which copies each requested range
//! with positioned reads, so crashes and injected faults are observed by every read.
//!
//! Invariants: the file is immutable while a source is open (sstables are written, synced and
//! published once, then only deleted), so its length is read once at open; every read is of
//! exactly the requested length or an error — a range past the end is an `UnexpectedEof` error,
//! never a panic and never a short result.
//!
//! Thread-safety: both sources are `Send + Sync` and stateless after open. A [`FileSource`] takes
//! no cursor (`pread`-style positioned reads), so any number of threads read it concurrently; a
//! mapped source is an immutable `Bytes`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use talus_format::fs::{Fs, FsFile, OpenMode};
use talus_format::sstable::SstableSource;

/// An sstable read through positioned reads of an open [`FsFile`] (the fallback when the file
/// system cannot map files). Each read allocates and fills a fresh buffer.
#[derive(Debug)]
pub struct FileSource {
    file: Arc<dyn FsFile>,
    len: u64,
    path: PathBuf,
}

impl FileSource {
    /// Wraps an open file; its length is read now and assumed fixed (the file is immutable).
    /// `path` only names the file in error messages.
    pub fn new(file: Arc<dyn FsFile>, path: &Path) -> io::Result<FileSource> {
        let len = file.len()?;
        Ok(FileSource { file, len, path: path.to_path_buf() })
    }

    /// Opens the existing file at `path` through `fs`.
    pub fn open(fs: &dyn Fs, path: &Path) -> io::Result<FileSource> {
        FileSource::new(fs.open(path, OpenMode::Existing)?, path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SstableSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let in_bounds = u64::try_from(len).ok().and_then(|l| offset.checked_add(l)).is_some_and(|end| end <= self.len);
        if !in_bounds {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: {len} byte(s) at {offset} past the end ({} bytes)", self.path.display(), self.len),
            ));
        }
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        Ok(Bytes::from(buf))
    }
}

/// Opens the sstable at `path`: a memory map when `fs` can map files, positioned reads through a
/// [`FileSource`] otherwise.
pub fn open_sstable_source(fs: &dyn Fs, path: &Path) -> io::Result<Arc<dyn SstableSource>> {
    match fs.map_readonly(path)? {
        Some(map) => Ok(Arc::new(map)),
        None => Ok(Arc::new(FileSource::open(fs, path)?)),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::fs::fault::{Fault, FaultFs, FaultRule, OpKind, Trigger};
    use crate::fs::real::RealFs;

    fn write(fs: &dyn Fs, path: &Path, contents: &[u8]) {
        let file = fs.open(path, OpenMode::CreateNew).unwrap();
        file.write_all_at(contents, 0).unwrap();
        file.sync().unwrap();
    }

    fn contents(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random()).collect()
    }

    #[test]
    fn mapped_and_file_sources_agree_on_random_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.sst");
        let data = contents(100_003, 7);
        write(&RealFs, &path, &data);

        let mapped = RealFs.map_readonly(&path).unwrap().expect("RealFs maps");
        let file = FileSource::open(&RealFs, &path).unwrap();
        let opened = open_sstable_source(&RealFs, &path).unwrap();
        assert_eq!(SstableSource::len(&mapped), data.len() as u64);
        assert_eq!(file.len(), data.len() as u64);
        assert_eq!(opened.len(), data.len() as u64);

        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..500 {
            let offset = rng.random_range(0..=data.len());
            let len = rng.random_range(0..=data.len() - offset);
            let expected = &data[offset..offset + len];
            assert_eq!(&SstableSource::read_at(&mapped, offset as u64, len).unwrap()[..], expected);
            assert_eq!(&file.read_at(offset as u64, len).unwrap()[..], expected);
            assert_eq!(&opened.read_at(offset as u64, len).unwrap()[..], expected);
        }
    }

    #[test]
    fn reads_past_the_end_are_unexpected_eof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2.sst");
        write(&RealFs, &path, &contents(1000, 3));
        let mapped: Arc<dyn SstableSource> = Arc::new(RealFs.map_readonly(&path).unwrap().unwrap());
        let file: Arc<dyn SstableSource> = Arc::new(FileSource::open(&RealFs, &path).unwrap());
        for source in [mapped, file] {
            for (offset, len) in [(0, 1001), (1000, 1), (999, 2), (1001, 0), (u64::MAX, 1), (u64::MAX, 0), (1, usize::MAX)] {
                let err = source.read_at(offset, len).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{offset} {len}");
            }
            assert!(source.read_at(1000, 0).unwrap().is_empty());
            assert_eq!(source.read_at(0, 1000).unwrap().len(), 1000);
        }
    }

    #[test]
    fn empty_file_maps_to_empty_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("3.sst");
        write(&RealFs, &path, &[]);
        let source = open_sstable_source(&RealFs, &path).unwrap();
        assert!(source.is_empty());
        assert!(source.read_at(0, 0).unwrap().is_empty());
        assert_eq!(source.read_at(0, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_sstable_source(&RealFs, &dir.path().join("missing.sst")).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn mapping_survives_deletion_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("4.sst");
        let data = contents(5000, 9);
        write(&RealFs, &path, &data);
        let source = open_sstable_source(&RealFs, &path).unwrap();
        RealFs.remove_file(&path).unwrap();
        assert_eq!(&source.read_at(0, data.len()).unwrap()[..], &data[..]);
    }

    #[test]
    fn sim_fs_falls_back_to_positioned_reads() {
        let fs = crate::fs::sim::SimFs::new(1);
        let dir = Path::new("/db");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join("6.sst");
        let data = contents(3000, 5);
        write(&fs, &path, &data);
        assert!(fs.map_readonly(&path).unwrap().is_none());
        let source = open_sstable_source(&fs, &path).unwrap();
        assert_eq!(source.len(), 3000);
        assert_eq!(&source.read_at(100, 2000).unwrap()[..], &data[100..2100]);
        assert_eq!(source.read_at(2999, 2).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn fault_fs_does_not_map_so_read_faults_are_observed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("5.sst");
        let data = contents(4096, 11);
        write(&RealFs, &path, &data);
        let fault = FaultFs::new(Arc::new(RealFs), 1);
        assert!(fault.map_readonly(&path).unwrap().is_none());
        let source = open_sstable_source(&fault, &path).unwrap();
        assert_eq!(&source.read_at(0, data.len()).unwrap()[..], &data[..]);

        fault.add_rule(FaultRule::new(OpKind::Read, Trigger::Nth(1), Fault::BitFlipOnRead));
        let flipped = source.read_at(0, data.len()).unwrap();
        let differing: u32 = flipped.iter().zip(&data).map(|(a, b)| (a ^ b).count_ones()).sum();
        assert_eq!(differing, 1);

        fault.add_rule(FaultRule::new(OpKind::Read, Trigger::Nth(1), Fault::Eio));
        assert!(source.read_at(0, 10).is_err());
    }
}
