//! Streams set up as a compaction reads its inputs return exactly what plain streams return:
//! streams whose blocks a helper thread reads ahead ([`ReadAhead`]) give the same fragments,
//! errors and counts however they are interleaved, and go on by themselves when the read-ahead
//! closes under them; streams whose fragments share their blocks' memory give equal fragments.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use support::sample_stream::sample_stream;
use talus_format::schema::Compression;
use talus_format::sstable::read_ahead::ReadAhead;
use talus_format::sstable::reader::{ReadCounters, ReadPlan, SstableReader, SstableStream};
use talus_format::sstable::statistics::SstableOrigin;
use talus_format::sstable::writer::{SstableSeal, SstableWriter, SstableWriterOptions};
use talus_format::{Fragment, GcTime, TableId};

const FILE_ID: u64 = 21;

fn file(seed: u64, partitions: usize, max_rows: u64, block_size: usize) -> Arc<SstableReader> {
    let options = SstableWriterOptions { block_size, compression: Compression::Zstd { level: 1 }, bloom_false_positive_rate: 0.01 };
    let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(4));
    for f in sample_stream(seed, partitions, max_rows) {
        writer.add(&f).unwrap();
    }
    let bytes = Bytes::from(writer.finish(SstableSeal::at(GcTime(0))).unwrap().0);
    Arc::new(SstableReader::open(Arc::new(bytes), Some(FILE_ID), None).unwrap())
}

fn compaction_plan() -> Arc<ReadPlan> {
    Arc::new(ReadPlan { fill_cache: false, ..ReadPlan::full() })
}

fn whole(reader: &Arc<SstableReader>, counters: &Arc<ReadCounters>) -> SstableStream {
    reader.stream(0..reader.partitions().len(), compaction_plan(), counters.clone())
}

/// Takes the streams' items round-robin, `step[i]` at a time from stream `i`, until all end.
fn interleaved(streams: &mut [SstableStream], step: &[usize]) -> Vec<Vec<talus_format::Result<Fragment>>> {
    let mut out: Vec<Vec<_>> = streams.iter().map(|_| Vec::new()).collect();
    let mut done = vec![false; streams.len()];
    while done.iter().any(|d| !d) {
        for (i, s) in streams.iter_mut().enumerate() {
            for _ in 0..step[i % step.len()] {
                if done[i] {
                    break;
                }
                match s.next() {
                    Some(item) => out[i].push(item),
                    None => done[i] = true,
                }
            }
        }
    }
    out
}

#[test]
fn read_ahead_streams_return_what_plain_streams_return() {
    // Narrow partitions sharing blocks, partitions over many blocks, and a file of one block.
    let readers = [file(1, 400, 2, 512), file(2, 60, 120, 256), file(3, 200, 10, 4096), file(4, 3, 1, 4096)];
    let plain_counters = Arc::new(ReadCounters::default());
    let mut plain: Vec<SstableStream> = readers.iter().map(|r| whole(r, &plain_counters)).collect();
    let plain = interleaved(&mut plain, &[1]);
    for step in [vec![1], vec![1, 7, 3, 50], vec![1000]] {
        let counters = Arc::new(ReadCounters::default());
        let ahead = ReadAhead::start().unwrap();
        let mut streams: Vec<SstableStream> = readers.iter().map(|r| whole(r, &counters).read_ahead(&ahead).sharing_blocks()).collect();
        let got = interleaved(&mut streams, &step);
        // Every block came from the helper: no stream fell out of step with it.
        assert!(streams.iter().all(SstableStream::reads_ahead), "step {step:?}");
        for (i, (p, g)) in plain.iter().zip(&got).enumerate() {
            assert!(!p.is_empty());
            assert_eq!(p, g, "file {i}, step {step:?}");
        }
        let read = |c: &ReadCounters| c.blocks_read.load(Ordering::Relaxed);
        assert_eq!(read(&plain_counters), read(&counters), "step {step:?}");
    }
}

#[test]
fn streams_go_on_alone_when_the_read_ahead_closes() {
    // Larger than the read-ahead's window, so the streams need blocks it never read.
    let readers = [file(5, 3000, 8, 512), file(6, 3000, 8, 512)];
    let plain: Vec<Vec<Fragment>> =
        readers.iter().map(|r| whole(r, &Arc::new(ReadCounters::default())).map(|f| f.unwrap()).collect()).collect();
    let ahead = ReadAhead::start().unwrap();
    let counters = Arc::new(ReadCounters::default());
    let mut streams: Vec<SstableStream> = readers.iter().map(|r| whole(r, &counters).read_ahead(&ahead)).collect();
    let mut got: Vec<Vec<Fragment>> = vec![Vec::new(), Vec::new()];
    for (i, s) in streams.iter_mut().enumerate() {
        got[i].extend(s.take(100).map(|f| f.unwrap()));
    }
    assert!(streams.iter().all(SstableStream::reads_ahead));
    drop(ahead);
    for (i, s) in streams.iter_mut().enumerate() {
        got[i].extend(s.map(|f| f.unwrap()));
    }
    assert!(!streams.iter().any(SstableStream::reads_ahead));
    assert_eq!(plain, got);
}

#[test]
fn a_corrupt_block_fails_the_stream_where_a_plain_stream_fails() {
    let options = SstableWriterOptions { block_size: 512, compression: Compression::Zstd { level: 1 }, bloom_false_positive_rate: 0.01 };
    let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(4));
    for f in sample_stream(8, 300, 4) {
        writer.add(&f).unwrap();
    }
    let mut bytes = writer.finish(SstableSeal::at(GcTime(0))).unwrap().0;
    let reader = SstableReader::open(Arc::new(Bytes::from(bytes.clone())), Some(FILE_ID), None).unwrap();
    let handles = reader.block_handles().unwrap();
    let victim = handles[handles.len() / 2];
    bytes[victim.offset as usize + 1] ^= 0x40;
    let reader = Arc::new(SstableReader::open(Arc::new(Bytes::from(bytes)), Some(FILE_ID), None).unwrap());
    let plain: Vec<_> = whole(&reader, &Arc::new(ReadCounters::default())).collect();
    assert!(matches!(plain.last(), Some(Err(talus_format::Error::Corrupt { .. }))), "the plain stream fails");
    let ahead = ReadAhead::start().unwrap();
    let got: Vec<_> = whole(&reader, &Arc::new(ReadCounters::default())).read_ahead(&ahead).collect();
    assert_eq!(plain, got);
}

#[test]
fn fragments_sharing_their_blocks_equal_copied_ones() {
    for compression in [Compression::None, Compression::Zstd { level: 1 }] {
        let options = SstableWriterOptions { block_size: 300, compression, bloom_false_positive_rate: 0.01 };
        let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(4));
        let fragments = sample_stream(9, 200, 30);
        for f in &fragments {
            writer.add(f).unwrap();
        }
        let bytes = Bytes::from(writer.finish(SstableSeal::at(GcTime(0))).unwrap().0);
        let reader = Arc::new(SstableReader::open(Arc::new(bytes), Some(FILE_ID), None).unwrap());
        let counters = Arc::new(ReadCounters::default());
        let shared: Vec<Fragment> = whole(&reader, &counters).sharing_blocks().map(|f| f.unwrap()).collect();
        assert_eq!(shared, fragments, "{compression:?}");
    }
}
