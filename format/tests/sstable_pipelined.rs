//! The pipelined sstable writer (blocks compressed and appended on a helper thread) writes the
//! same bytes as the serial one, and loses no sink error or helper failure.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::sample_stream::sample_stream;
use talus_format::schema::Compression;
use talus_format::sstable::statistics::SstableOrigin;
use talus_format::sstable::writer::{SstableSeal, SstableSink, SstableWriter, SstableWriterOptions, WrittenSstable};
use talus_format::{Error, Fragment, GcTime, TableId};

const FILE_ID: u64 = 11;

fn options(block_size: usize, compression: Compression) -> SstableWriterOptions {
    SstableWriterOptions { block_size, compression, bloom_false_positive_rate: 0.01 }
}

fn write<S: SstableSink>(mut writer: SstableWriter<S>, fragments: &[Fragment]) -> talus_format::Result<(S, WrittenSstable)> {
    for f in fragments {
        writer.add(f)?;
    }
    writer.finish(SstableSeal::at(GcTime(3)))
}

#[test]
fn pipelined_writer_writes_the_serial_writers_bytes() {
    let compressions = [Compression::None, Compression::Zstd { level: 3 }, Compression::Lz4];
    // Few rows per partition (many partitions per block) to many (partitions over many blocks).
    for (seed, max_rows) in [(1u64, 0u64), (2, 3), (3, 20), (4, 120)] {
        let fragments = sample_stream(seed, 300, max_rows);
        for block_size in [64, 700, 4096] {
            for compression in compressions {
                let o = options(block_size, compression);
                let serial = write(SstableWriter::new(Vec::new(), FILE_ID, o, SstableOrigin::Compaction, TableId(2)), &fragments).unwrap();
                let pipelined = SstableWriter::pipelined(Vec::new(), FILE_ID, o, SstableOrigin::Compaction, TableId(2)).unwrap();
                let pipelined = write(pipelined, &fragments).unwrap();
                let case = format!("seed {seed}, max_rows {max_rows}, block_size {block_size}, {compression:?}");
                assert!(serial.1.blocks > 1, "{case}: a single block proves little");
                assert_eq!(serial.0.len(), pipelined.0.len(), "{case}: file length");
                assert!(serial.0 == pipelined.0, "{case}: the files differ");
                assert_eq!(serial.1, pipelined.1, "{case}: what the writers report");
            }
        }
    }
}

/// A sink that fails its `fail_at`-th append (0-based), or panics there with `panics`.
struct FailingSink {
    appends: Arc<AtomicUsize>,
    fail_at: usize,
    panics: bool,
}

impl SstableSink for FailingSink {
    fn append(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        if n == self.fail_at {
            if self.panics {
                panic!("sink panics on append {n}");
            }
            return Err(std::io::Error::other(format!("disk full on append {n}")));
        }
        Ok(())
    }
}

fn failing_writer(fail_at: usize, panics: bool) -> (SstableWriter<FailingSink>, Arc<AtomicUsize>) {
    let appends = Arc::new(AtomicUsize::new(0));
    let sink = FailingSink { appends: appends.clone(), fail_at, panics };
    let writer = SstableWriter::pipelined(sink, FILE_ID, options(256, Compression::Zstd { level: 3 }), SstableOrigin::Flush, TableId(2));
    (writer.unwrap(), appends)
}

#[test]
fn a_sink_error_on_the_helper_thread_surfaces() {
    let fragments = sample_stream(5, 300, 10);
    let blocks = write(
        SstableWriter::new(Vec::new(), FILE_ID, options(256, Compression::Zstd { level: 3 }), SstableOrigin::Flush, TableId(2)),
        &fragments,
    )
    .unwrap()
    .1
    .blocks as usize;
    // The first block, one in the middle, the last block, and the first section after the blocks
    // (appended by `finish` on the caller's thread).
    for fail_at in [0, blocks / 2, blocks - 1, blocks] {
        let (writer, appends) = failing_writer(fail_at, false);
        match write(writer, &fragments) {
            Err(Error::Io(reason)) => assert!(reason.contains(&format!("disk full on append {fail_at}")), "append {fail_at}: {reason}"),
            other => panic!("append {fail_at}: expected the sink's error, got {:?}", other.map(|(_, w)| w.size)),
        }
        // Nothing is appended after the failure.
        assert_eq!(appends.load(Ordering::SeqCst), fail_at + 1, "append {fail_at}");
    }
}

#[test]
fn a_panicking_helper_thread_is_an_error_not_a_hang() {
    let fragments = sample_stream(6, 300, 10);
    let (writer, _) = failing_writer(3, true);
    match write(writer, &fragments) {
        Err(Error::Io(reason)) => assert!(reason.contains("panicked"), "{reason}"),
        other => panic!("expected an error, got {:?}", other.map(|(_, w)| w.size)),
    }
}

#[test]
fn dropping_an_unfinished_pipelined_writer_stops_its_thread() {
    // Enough blocks for several batches before the drop.
    let fragments = sample_stream(7, 3000, 10);
    let (mut writer, appends) = failing_writer(usize::MAX, false);
    for f in &fragments[..fragments.len() / 2] {
        writer.add(f).unwrap();
    }
    drop(writer);
    // The helper was joined by the drop: the count no longer moves.
    let after_drop = appends.load(Ordering::SeqCst);
    assert!(after_drop > 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(appends.load(Ordering::SeqCst), after_drop);
}
