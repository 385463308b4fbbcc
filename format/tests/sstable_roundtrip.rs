//! SSTables written from random fragment streams read back exactly: whole-file scans, single
//! partitions, key ranges, clustering slices and tombstone-covered block skipping, across block
//! sizes that make partitions span many blocks, raw and zstd; point reads of single rows.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use talus_format::schema::Compression;
use talus_format::sstable::clip::ClippedStream;
use talus_format::sstable::reader::{ReadCounters, ReadPlan, RowVersion, SstableReader};
use talus_format::sstable::statistics::SstableOrigin;
use talus_format::sstable::writer::{SstableSeal, SstableWriter, SstableWriterOptions};
use talus_format::{
    Cell, Cells, ClusteringPrefix, ColumnId, DecoratedKey, Fragment, GcTime, PartitionKey, Position, RangeTombstone, RangeTombstoneList,
    Row, RowMarker, RowTombstone, StreamValidator, TableId, Timestamp, Tombstone,
};

fn prefix(k: u8) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::copy_from_slice(&[k]), 1)
}

fn tombstone() -> impl Strategy<Value = Tombstone> {
    prop_oneof![1 => Just(Tombstone::NONE), 2 => (1i64..100, 0i64..10).prop_map(|(t, d)| Tombstone::new(Timestamp(t), GcTime(d)))]
}

fn row() -> impl Strategy<Value = Row> {
    (tombstone(), 1i64..100, vec((0u32..3, 1i64..100, vec(any::<u8>(), 0..40)), 0..3)).prop_map(|(t, m, cells)| Row {
        tombstone: RowTombstone::regular(t),
        marker: RowMarker::Live { timestamp: Timestamp(m) },
        cells: cells.into_iter().map(|(c, ts, v)| (ColumnId(c), Cell::Live { timestamp: Timestamp(ts), value: Bytes::from(v) })).collect(),
    })
}

fn range_tombstone() -> impl Strategy<Value = RangeTombstone> {
    (0u8..60, 1u8..30, 1i64..100).prop_map(|(a, len, ts)| RangeTombstone {
        start: Position::before_key(prefix(a)),
        end: Position::after_key(prefix(a.saturating_add(len))),
        tombstone: Tombstone::new(Timestamp(ts), GcTime(5)),
    })
}

/// One partition as a valid fragment stream (rows and range tombstone changes merged in order).
fn partition_fragments(
    key: DecoratedKey,
    tombstone: Tombstone,
    statics: Cells,
    rows: Vec<(u8, Row)>,
    rts: Vec<RangeTombstone>,
) -> Vec<Fragment> {
    let mut list = RangeTombstoneList::new();
    for rt in &rts {
        list.insert(rt);
    }
    let rows: std::collections::BTreeMap<u8, Row> = rows.into_iter().collect();
    let mut out = vec![Fragment::PartitionStart { key, tombstone }];
    if !statics.is_empty() {
        out.push(Fragment::StaticRow(statics));
    }
    let mut items: Vec<Fragment> = rows.into_iter().map(|(k, row)| Fragment::Row { key: prefix(k), row }).collect();
    items.extend(list.changes().iter().cloned().map(Fragment::RangeTombstoneChange));
    items.sort_by_key(|f| f.position());
    out.extend(items);
    out.push(Fragment::PartitionEnd);
    out
}

fn stream() -> impl Strategy<Value = Vec<Fragment>> {
    let partition =
        (vec(any::<u8>(), 1..6), tombstone(), vec((0u32..2, 1i64..100), 0..2), vec((0u8..80, row()), 0..60), vec(range_tombstone(), 0..4));
    vec(partition, 0..12).prop_map(|parts| {
        let mut parts: Vec<_> =
            parts.into_iter().map(|(k, t, s, r, rts)| (PartitionKey::from_legacy_bytes(Bytes::from(k)).decorate(), t, s, r, rts)).collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        parts.dedup_by(|a, b| a.0 == b.0);
        parts
            .into_iter()
            .flat_map(|(key, t, s, rows, rts)| {
                let statics: Cells =
                    s.into_iter().map(|(c, ts)| (ColumnId(c), Cell::Live { timestamp: Timestamp(ts), value: Bytes::new() })).collect();
                partition_fragments(key, t, statics, rows, rts)
            })
            .collect()
    })
}

fn write(fragments: &[Fragment], block_size: usize, compression: Compression) -> Bytes {
    write_with(fragments, SstableWriterOptions { block_size, compression, bloom_false_positive_rate: 0.01 })
}

fn write_with(fragments: &[Fragment], options: SstableWriterOptions) -> Bytes {
    let mut writer = SstableWriter::new(Vec::new(), 7, options, SstableOrigin::Flush, TableId(1));
    for f in fragments {
        writer.add(f).unwrap();
    }
    Bytes::from(writer.finish(SstableSeal::at(GcTime(0))).unwrap().0)
}

fn open(bytes: &Bytes) -> Arc<SstableReader> {
    Arc::new(SstableReader::open(Arc::new(bytes.clone()), Some(7), None).unwrap())
}

fn collect(stream: impl Iterator<Item = talus_format::Result<Fragment>>) -> Vec<Fragment> {
    let out: Vec<Fragment> = stream.map(|f| f.unwrap()).collect();
    let mut v = StreamValidator::new();
    for f in &out {
        v.check(f).unwrap();
    }
    v.finish().unwrap();
    out
}

fn partitions_of(fragments: &[Fragment]) -> Vec<Vec<Fragment>> {
    let mut out = Vec::new();
    for f in fragments {
        if matches!(f, Fragment::PartitionStart { .. }) {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(f.clone());
    }
    out
}

fn slice() -> impl Strategy<Value = Vec<(Position, Position)>> {
    vec((0u8..90, 1u8..20), 1..4).prop_map(|mut r| {
        r.sort();
        let mut ranges: Vec<(Position, Position)> = Vec::new();
        for (a, len) in r {
            let start = Position::before_key(prefix(a));
            if ranges.last().is_some_and(|(_, e)| *e >= start) {
                continue;
            }
            ranges.push((start, Position::after_key(prefix(a.saturating_add(len)))));
        }
        ranges
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn scans_and_point_reads_return_what_was_written(
        fragments in stream(),
        block_size in prop_oneof![Just(64usize), Just(300), Just(4096)],
        zstd in any::<bool>(),
    ) {
        let compression = if zstd { Compression::Zstd { level: 1 } } else { Compression::None };
        let reader = open(&write(&fragments, block_size, compression));
        let counters = Arc::new(ReadCounters::default());
        let all = reader.partitions().len();
        prop_assert_eq!(&collect(reader.stream(0..all, Arc::new(ReadPlan::full()), counters.clone())), &fragments);
        for (i, expected) in partitions_of(&fragments).into_iter().enumerate() {
            let Fragment::PartitionStart { key, .. } = &expected[0] else { unreachable!() };
            prop_assert_eq!(reader.find_index(key), Some(i));
            prop_assert_eq!(collect(reader.stream_partition(i, Arc::new(ReadPlan::full()), counters.clone())), expected);
        }
    }

    #[test]
    fn clustering_slices_read_like_clipping_the_whole_stream(
        fragments in stream(),
        ranges in slice(),
        static_row in any::<bool>(),
        block_size in prop_oneof![Just(64usize), Just(300)],
    ) {
        let reader = open(&write(&fragments, block_size, Compression::None));
        let counters = Arc::new(ReadCounters::default());
        let plan = Arc::new(ReadPlan { ranges: ranges.clone(), static_row, covering: Vec::new(), fill_cache: true });
        let read = collect(ClippedStream::new(reader.stream(0..reader.partitions().len(), plan, counters), ranges.clone(), static_row));
        let expected = collect(ClippedStream::new(fragments.into_iter().map(Ok), ranges, static_row));
        prop_assert_eq!(read, expected);
    }

    /// `read_row` of every clustering key (present or not) of every partition gives what the
    /// written fragments hold there: the partition tombstone, the range tombstone active at the
    /// row's position and the row; a partition not written is not found, even with the token of
    /// one that was (the bloom filter off, so the read gets to the index and the data).
    #[test]
    fn point_reads_find_what_was_written(
        fragments in stream(),
        block_size in prop_oneof![Just(64usize), Just(300), Just(4096)],
        lz4 in any::<bool>(),
    ) {
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let reader = open(&write_with(&fragments, SstableWriterOptions { block_size, compression, bloom_false_positive_rate: 1.0 }));
        for partition in partitions_of(&fragments) {
            let Fragment::PartitionStart { key, tombstone } = &partition[0] else { unreachable!() };
            let mut forged = key.key.as_bytes().to_vec();
            forged.push(0xff);
            let forged = DecoratedKey { token: key.token, key: PartitionKey::from_legacy_bytes(Bytes::from(forged)) };
            prop_assert_eq!(reader.read_row(&forged, &prefix(1), true).unwrap(), None);
            for k in 0..90 {
                let position = Position::at_row(prefix(k));
                let mut expected = RowVersion { partition_tombstone: *tombstone, ..RowVersion::default() };
                for f in &partition {
                    match f {
                        Fragment::RangeTombstoneChange(c) if c.position <= position => expected.range_tombstone = c.tombstone,
                        Fragment::Row { key, row } if *key == prefix(k) => expected.row = Some(row.clone()),
                        _ => {}
                    }
                }
                prop_assert_eq!(reader.read_row(key, &prefix(k), true).unwrap(), Some(expected), "key {:?} row {}", key, k);
            }
        }
        let absent = PartitionKey::from_legacy_bytes(Bytes::from_static(b"absent key")).decorate();
        prop_assert_eq!(reader.read_row(&absent, &prefix(1), true).unwrap(), None);
    }

    /// The partition index the writer hands over is the one decoding the file gives, and a
    /// reader opened with it reads the same.
    #[test]
    fn the_written_index_is_the_decoded_one(
        fragments in stream(),
        block_size in prop_oneof![Just(64usize), Just(4096)],
    ) {
        let options = SstableWriterOptions { block_size, compression: Compression::None, bloom_false_positive_rate: 0.01 };
        let mut writer = SstableWriter::new(Vec::new(), 7, options, SstableOrigin::Flush, TableId(1));
        for f in &fragments {
            writer.add(f).unwrap();
        }
        let (bytes, written) = writer.finish(SstableSeal::at(GcTime(0))).unwrap();
        let bytes = Bytes::from(bytes);
        let decoded = open(&bytes);
        prop_assert_eq!(decoded.partitions(), &written.index);
        let handed = Arc::new(SstableReader::open_written(Arc::new(bytes.clone()), Some(7), None, written.index.clone()).unwrap());
        prop_assert_eq!(handed.partitions(), &written.index);
        prop_assert_eq!(handed.partitions().entries().unwrap(), decoded.partitions().entries().unwrap());
        let counters = Arc::new(ReadCounters::default());
        let all = handed.partitions().len();
        prop_assert_eq!(&collect(handed.stream(0..all, Arc::new(ReadPlan::full()), counters)), &fragments);
    }

    /// Skipping blocks under covering tombstones only loses data those tombstones shadow, and the
    /// stream stays valid (DESIGN §5).
    #[test]
    fn skipped_blocks_hold_only_shadowed_data(
        fragments in stream(),
        covering in vec(range_tombstone(), 0..3),
        block_size in prop_oneof![Just(64usize), Just(200)],
    ) {
        let reader = open(&write(&fragments, block_size, Compression::None));
        let plan = Arc::new(ReadPlan { covering: covering.clone(), ..ReadPlan::full() });
        for (i, expected) in partitions_of(&fragments).into_iter().enumerate() {
            let counters = Arc::new(ReadCounters::default());
            let read = collect(reader.stream_partition(i, plan.clone(), counters.clone()));
            let shadowed = |pos: &Position, ts: Timestamp| covering.iter().any(|c| c.start <= *pos && *pos < c.end && c.tombstone.covers(ts));
            for f in &expected {
                if let Fragment::Row { key, row } = f {
                    let ts = row.tombstone.max().timestamp.max(row.marker.timestamp()).max(row.cells.iter().map(|(_, c)| c.timestamp()).max().unwrap_or(Timestamp::MISSING));
                    if !read.contains(f) {
                        prop_assert!(shadowed(&Position::at_row(key.clone()), ts), "row {:?} lost but not shadowed", key);
                    }
                }
            }
            if counters.blocks_skipped.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                prop_assert_eq!(&read, &expected);
            }
        }
    }
}

/// The bloom filter and key range answer a miss without reading a data block.
#[test]
fn a_missing_partition_reads_no_block() {
    let fragments: Vec<Fragment> = (0u32..200)
        .flat_map(|i| {
            let key = PartitionKey::from_legacy_bytes(Bytes::from(i.to_be_bytes().to_vec())).decorate();
            partition_fragments(
                key,
                Tombstone::NONE,
                Cells::new(),
                vec![(
                    1,
                    Row { tombstone: RowTombstone::default(), marker: RowMarker::Live { timestamp: Timestamp(1) }, cells: Cells::new() },
                )],
                vec![],
            )
        })
        .collect::<Vec<_>>();
    let mut sorted = partitions_of(&fragments);
    sorted.sort_by(|a, b| a[0].position().cmp(&b[0].position()).then_with(|| key_of(a).cmp(key_of(b))));
    let fragments: Vec<Fragment> = sorted.concat();
    let reader = open(&write(&fragments, 256, Compression::None));
    let mut admitted = 0;
    for i in 1000u32..3000 {
        let key = PartitionKey::from_legacy_bytes(Bytes::from(i.to_be_bytes().to_vec())).decorate();
        assert!(reader.find(&key).is_none());
        admitted += usize::from(reader.filter_admits(&key));
    }
    assert!(admitted < 100, "{admitted} of 2000 misses admitted by a 1% filter");
}

fn key_of(p: &[Fragment]) -> &DecoratedKey {
    match &p[0] {
        Fragment::PartitionStart { key, .. } => key,
        _ => unreachable!(),
    }
}
