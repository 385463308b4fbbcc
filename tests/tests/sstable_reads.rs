//! The read path over sstables, through the public API and its query statistics (DESIGN §5):
//! bloom-filtered misses read no block, the row index seeks into wide partitions, blocks shadowed
//! by a newer partition or range tombstone are skipped, reads merge memtables with several
//! sstables, and the background flusher keeps memtables within their limits.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use talus::format::{ColumnType, GcTime, Mutation, RangeBound, Schema, SchemaRef, Timestamp, Value};
use talus::fs::SimFs;
use talus::{scan_all, Engine, EngineOptions, Query};
use talus_tests::fixture::test_options;

const TABLE: &str = "ks.wide";

fn schema() -> SchemaRef {
    Schema::builder("ks", "wide")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Text)
        .build()
        .unwrap()
}

fn engine(options: EngineOptions) -> (Engine, SchemaRef) {
    let engine = Engine::open_with_fs(Arc::new(SimFs::new(5)), "/db", options).unwrap();
    engine.create_table(schema()).unwrap();
    (engine, schema())
}

/// Partition `pk` with rows `cks`, written at `ts`.
fn rows(schema: &SchemaRef, pk: i32, cks: std::ops::Range<i32>, ts: i64) -> Mutation {
    let mut b = Mutation::builder(schema, &[Value::Int(pk)]).now(GcTime(1_000_000));
    for ck in cks {
        b = b.set(&[Value::Int(ck)], "v", Value::Text(format!("{pk}/{ck} {}", "v".repeat(40))), Timestamp(ts));
    }
    b.build().unwrap()
}

fn point(schema: &SchemaRef, pk: i32) -> Query {
    Query::partition(schema, &[Value::Int(pk)]).unwrap()
}

#[test]
fn a_bloom_filtered_miss_reads_no_data_block() {
    let (engine, schema) = engine(test_options());
    for pk in 0..200 {
        engine.apply(&rows(&schema, pk, 0..2, 1)).unwrap();
    }
    engine.flush(TABLE).unwrap();
    let hit = engine.query(&point(&schema, 7)).unwrap();
    assert_eq!(hit.rows().count(), 2);
    assert_eq!(hit.stats.sstables, 1);
    assert!(hit.stats.blocks_read >= 1);
    let mut filtered = 0;
    for pk in 1_000..1_500 {
        let miss = engine.query(&point(&schema, pk)).unwrap();
        assert!(miss.partitions.is_empty());
        assert_eq!((miss.stats.sstables, miss.stats.blocks_read), (0, 0), "a miss read a data block");
        filtered += miss.stats.sstables_bloom_filtered;
    }
    // Misses inside the key range are answered by the bloom filter (1% false positives), the
    // rest by the key range; none reaches a data block.
    assert!(filtered >= 450, "only {filtered} of 500 misses were ruled out by the bloom filter");
}

#[test]
fn reads_merge_the_memtable_with_several_sstables() {
    let (engine, schema) = engine(test_options());
    engine.apply(&rows(&schema, 1, 0..10, 1)).unwrap();
    engine.flush(TABLE).unwrap();
    engine.apply(&rows(&schema, 1, 5..15, 2)).unwrap();
    engine.flush(TABLE).unwrap();
    engine.apply(&rows(&schema, 1, 12..20, 3)).unwrap();
    assert_eq!(engine.sstables(TABLE).unwrap().len(), 2);
    let result = engine.query(&point(&schema, 1)).unwrap();
    assert_eq!(result.rows().count(), 20);
    assert_eq!((result.stats.memtables, result.stats.sstables), (1, 2));
    // The newest write of each row wins.
    let v = |ck: i32| {
        result.rows().find(|(_, r)| r.clustering == schema.clustering_key(&[Value::Int(ck)]).unwrap()).unwrap().1.cells[0].1.clone()
    };
    assert!(v(13).starts_with(b"1/13"));
    // A clustering slice seeks inside the partition.
    let slice = point(&schema, 1)
        .with_clustering_ranges(&schema, &[(RangeBound::Inclusive(vec![Value::Int(3)]), RangeBound::Exclusive(vec![Value::Int(6)]))])
        .unwrap();
    assert_eq!(engine.query(&slice).unwrap().rows().count(), 3);
}

/// A wide partition in an old sstable, then a newer range tombstone over most of it: a read
/// skips the shadowed blocks by their max timestamp and returns only the live rows.
#[test]
fn blocks_under_a_newer_range_tombstone_are_skipped() {
    let (engine, schema) = engine(test_options());
    engine.apply(&rows(&schema, 9, 0..2_000, 10)).unwrap();
    engine.flush(TABLE).unwrap();
    let before = engine.query(&point(&schema, 9)).unwrap();
    assert_eq!(before.rows().count(), 2_000);
    assert_eq!(before.stats.blocks_skipped, 0);
    let delete = Mutation::builder(&schema, &[Value::Int(9)])
        .now(GcTime(1_000_000))
        .delete_range(RangeBound::Inclusive(vec![Value::Int(0)]), RangeBound::Exclusive(vec![Value::Int(1_900)]), Timestamp(20))
        .build()
        .unwrap();
    engine.apply(&delete).unwrap();
    // From the memtable, and again once the tombstone is in its own sstable.
    for flushed in [false, true] {
        if flushed {
            engine.flush(TABLE).unwrap();
        }
        let after = engine.query(&point(&schema, 9)).unwrap();
        assert_eq!(after.rows().count(), 100, "flushed: {flushed}");
        assert!(
            after.stats.blocks_skipped * 10 >= before.stats.blocks_read * 8,
            "flushed: {flushed}: skipped {} of {} blocks",
            after.stats.blocks_skipped,
            before.stats.blocks_read
        );
        assert!(after.stats.blocks_read < before.stats.blocks_read / 4);
    }
    // A partition tombstone newer than everything skips every block but the first.
    let drop_all = Mutation::builder(&schema, &[Value::Int(9)]).now(GcTime(1_000_000)).delete_partition(Timestamp(30)).build().unwrap();
    engine.apply(&drop_all).unwrap();
    let gone = engine.query(&point(&schema, 9)).unwrap();
    assert!(gone.partitions.is_empty());
    assert!(gone.stats.blocks_read <= 2, "{:?}", gone.stats);
}

#[test]
fn data_survives_flushes_and_reopens() {
    let fs = SimFs::new(11);
    let engine = Engine::open_with_fs(Arc::new(fs.clone()), "/db", test_options()).unwrap();
    let schema = schema();
    engine.create_table(schema.clone()).unwrap();
    for round in 0..5 {
        for pk in 0..50 {
            engine.apply(&rows(&schema, pk, round * 10..round * 10 + 10, i64::from(round) + 1)).unwrap();
        }
        engine.flush(TABLE).unwrap();
    }
    engine.apply(&rows(&schema, 1_000, 0..3, 1)).unwrap();
    let expected = engine.query(&scan_all(TABLE)).unwrap().partitions;
    assert_eq!(expected.iter().map(|p| p.rows.len()).sum::<usize>(), 50 * 50 + 3);
    drop(engine);
    let engine = Engine::open_with_fs(Arc::new(fs.crash(talus::fs::CrashMode::DropAll)), "/db", test_options()).unwrap();
    assert_eq!(engine.sstables(TABLE).unwrap().len(), 5);
    assert_eq!(engine.open_report().sstables_loaded, 5);
    // Replay skipped everything the sstables cover: only the last write came from the log.
    assert_eq!(engine.recovery_report().entries_replayed - engine.open_report().entries_covered_by_sstables, 1);
    assert_eq!(engine.query(&scan_all(TABLE)).unwrap().partitions, expected);
}

/// The background flusher flushes a table past its memtable limit without being asked (R3.5).
#[test]
fn the_background_flusher_keeps_memtables_within_their_limit() {
    let options = EngineOptions { memtable_table_limit: 256 << 10, background_flush: true, ..test_options() };
    let (engine, schema) = engine(options);
    for pk in 0..2_000 {
        engine.apply(&rows(&schema, pk, 0..4, 1)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.sstables(TABLE).unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!engine.sstables(TABLE).unwrap().is_empty(), "no background flush: {:?}", engine.background_flush_error());
    assert_eq!(engine.query(&scan_all(TABLE)).unwrap().partitions.len(), 2_000);
}

/// The flusher thread does not keep a dropped engine alive: the directory can be reopened at once.
#[test]
fn dropping_an_engine_with_a_background_flusher_releases_it_at_once() {
    let fs = SimFs::new(12);
    let options = EngineOptions { background_flush: true, ..test_options() };
    for _ in 0..3 {
        let engine = Engine::open_with_fs(Arc::new(fs.clone()), "/db", options.clone()).unwrap();
        // Let the flusher thread start and settle into its wait before the handle is dropped.
        std::thread::sleep(Duration::from_millis(50));
        drop(engine);
    }
}
