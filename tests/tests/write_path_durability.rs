//! The durable write path through the public API: reopen recovers, fail-stop after an fsync
//! error (P6), oversized entries refused (R3.8), one engine per directory, the manifest and its
//! truncation records (R3.12), and the commitlog barrier `min_gc_time` (R2.15).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use talus::commitlog::Durability;
use talus::format::{ColumnType, GcTime, Mutation, Value};
use talus::fs::{CrashMode, Fault, FaultFs, FaultRule, OpKind, RealFs, SimFs, Trigger};
use talus::{Engine, Error, WriteOptions};
use talus_tests::durability::{open, present_ids, write_of, Workload, TABLES};

const DIR: &str = "/db";

fn workload(durability: Durability) -> Workload {
    Workload { threads: 1, writes_per_thread: 0, durability, segment_size: 4096, persist_every: None, sync_now_every: None }
}

#[test]
fn acknowledged_writes_survive_power_loss_and_reopen_reports_the_position() {
    let fs = SimFs::new(1);
    let last = {
        let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &workload(Durability::Batch(Duration::ZERO))).unwrap();
        let positions: Vec<_> = (0..50).map(|id| engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap()).collect();
        positions[49]
    };
    let (engine, _) = open(Arc::new(fs.crash(CrashMode::DropAll)), Path::new(DIR), &workload(Durability::Batch(Duration::ZERO))).unwrap();
    assert_eq!(present_ids(&engine, TABLES[0]).unwrap(), (0..50).collect());
    let report = engine.recovery_report();
    assert_eq!(report.entries_replayed, 50);
    assert_eq!(report.recovered_to, Some(last));
    assert!(report.segments_replayed >= 2, "{report:?}");
}

#[test]
fn periodic_writes_are_durable_after_sync_now() {
    let fs = SimFs::new(2);
    let w = workload(Durability::Periodic(Duration::from_secs(3600)));
    {
        let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &w).unwrap();
        for id in 0..10 {
            engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
        }
        engine.apply_batch_with(&write_of(&schemas, 10).unwrap(), WriteOptions { sync_now: true }).unwrap();
        // Not synced: an hour-long period and no sync_now.
        engine.apply_batch(&write_of(&schemas, 11).unwrap()).unwrap();
        let (crashed, _) = open(Arc::new(fs.crash(CrashMode::DropAll)), Path::new("/db"), &w).unwrap();
        assert_eq!(present_ids(&crashed, TABLES[0]).unwrap(), (0..=10).collect());
    }
}

/// P6, fsyncgate: after a failed fsync nothing more is acknowledged, and the error says why.
#[test]
fn an_fsync_error_fails_stop_until_reopen() {
    let sim = SimFs::new(3);
    let faulty = FaultFs::new(Arc::new(sim.clone()), 3);
    let w = workload(Durability::Batch(Duration::ZERO));
    let (engine, schemas) = open(Arc::new(faulty.clone()), Path::new(DIR), &w).unwrap();
    engine.apply_batch(&write_of(&schemas, 0).unwrap()).unwrap();
    faulty.add_rule(FaultRule::new(OpKind::Sync, Trigger::Nth(1), Fault::Eio).on_paths("CommitLog"));
    let first = engine.apply_batch(&write_of(&schemas, 1).unwrap()).unwrap_err();
    assert!(matches!(&first, Error::CommitlogFailed(reason) if reason.contains("EIO")), "{first}");
    // The fault was one-shot, but the engine does not retry the fsync or accept new writes.
    let second = engine.apply_batch(&write_of(&schemas, 2).unwrap()).unwrap_err();
    assert!(matches!(second, Error::CommitlogFailed(_)), "{second}");
    assert!(engine.sync().is_err());
    drop(engine);
    let (engine, _) = open(Arc::new(sim.crash(CrashMode::DropAll)), Path::new(DIR), &w).unwrap();
    let present = present_ids(&engine, TABLES[0]).unwrap();
    assert!(present.contains(&0) && !present.contains(&2), "{present:?}");
}

/// R3.8: an entry larger than half a segment is refused with the sizes, and nothing is applied.
#[test]
fn an_entry_over_half_a_segment_is_refused() {
    let (engine, schemas) = open(Arc::new(SimFs::new(4)), Path::new(DIR), &workload(Durability::Batch(Duration::ZERO))).unwrap();
    let schema = &schemas[0];
    let put = || Mutation::builder(schema, &[Value::BigInt(1)]).now(GcTime(1)).set(&[], "v", Value::BigInt(1), talus::format::Timestamp(1));
    let batch: Vec<Mutation> = (0..40).map(|_| put().build().unwrap()).collect();
    match engine.apply_batch(&batch) {
        Err(Error::EntryTooLarge { size, limit: 2048 }) => assert!(size > 2048),
        other => panic!("{other:?}"),
    }
    assert!(present_ids(&engine, TABLES[0]).unwrap().is_empty());
}

#[test]
fn a_directory_is_opened_by_one_engine_at_a_time() {
    let fs = SimFs::new(5);
    let w = workload(Durability::Batch(Duration::ZERO));
    let first = Engine::open_with_fs(Arc::new(fs.clone()), DIR, w.options()).unwrap();
    let second = Engine::open_with_fs(Arc::new(fs.clone()), DIR, w.options()).unwrap_err();
    assert!(matches!(&second, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock), "{second}");
    drop(first);
    Engine::open_with_fs(Arc::new(fs), DIR, w.options()).unwrap();

    let dir = std::env::temp_dir().join(format!("talus-lock-{}", std::process::id()));
    let real = Engine::open_with_fs(Arc::new(RealFs), &dir, w.options()).unwrap();
    assert!(Engine::open_with_fs(Arc::new(RealFs), &dir, w.options()).is_err());
    drop(real);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// R3.12: dropping a table writes a truncation record, so its old entries are never replayed,
/// not even into a table of the same name (and id) created afterwards.
#[test]
fn tables_persist_and_a_dropped_table_is_not_resurrected_by_replay() {
    let fs = SimFs::new(6);
    let w = workload(Durability::Batch(Duration::ZERO));
    {
        let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &w).unwrap();
        for id in 0..5 {
            engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
        }
        engine.drop_table(TABLES[0]).unwrap();
        assert!(matches!(engine.schema(TABLES[0]), Err(Error::UnknownTable(_))));
    }
    let engine = Engine::open_with_fs(Arc::new(fs.crash(CrashMode::DropAll)), DIR, w.options()).unwrap();
    assert_eq!(engine.table_names(), vec![TABLES[1].to_string()]);
    assert_eq!(present_ids(&engine, TABLES[1]).unwrap().len(), 5);
    drop(engine);
    // Re-created under the same name: still empty after another replay.
    let (engine, _) = open(Arc::new(fs.crash(CrashMode::KeepAll)), Path::new(DIR), &w).unwrap();
    assert_eq!(engine.schema(TABLES[0]).unwrap().partition_key[0].ty, ColumnType::BigInt);
    drop(engine);
    let (engine, _) = open(Arc::new(fs.crash(CrashMode::KeepAll)), Path::new(DIR), &w).unwrap();
    assert!(present_ids(&engine, TABLES[0]).unwrap().is_empty());
}

/// R2.15: `min_gc_time(table)` is the first-append time of the table over live segments, and
/// stays until the segment file is gone, even after the table was flushed from it.
#[test]
fn min_gc_time_follows_the_oldest_live_segment_of_the_table() {
    let fs = SimFs::new(7);
    let w = workload(Durability::Batch(Duration::ZERO));
    let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &w).unwrap();
    assert_eq!(engine.commitlog_min_gc_time(TABLES[0]).unwrap(), GcTime::MAX);
    let before = GcTime::now();
    engine.apply_batch(&write_of(&schemas, 0).unwrap()).unwrap();
    let first = engine.commitlog_min_gc_time(TABLES[0]).unwrap();
    assert!(first >= before && first <= GcTime::now());
    for id in 1..100 {
        engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
    }
    assert_eq!(engine.commitlog_min_gc_time(TABLES[0]).unwrap(), first);
    // Flush both tables: closed segments are recycled, and only the live ones count.
    let segments_before = engine.commitlog_segments();
    for table in TABLES {
        engine.flush(table).unwrap();
    }
    let segments_after = engine.commitlog_segments();
    assert!(segments_after.len() < segments_before.len(), "{segments_before:?} -> {segments_after:?}");
    assert!(engine.commitlog_min_gc_time(TABLES[0]).unwrap() >= first);
    // A replayed segment's first-append time is unknown: it counts from the start of time, so
    // no tombstone is purged while its data can be replayed. Entries the flush covered are not
    // replayed (R3.12), so without a later write the table is clean after reopening.
    drop(engine);
    let reopened = fs.crash(CrashMode::DropAll);
    let (engine, schemas) = open(Arc::new(reopened.clone()), Path::new(DIR), &w).unwrap();
    assert_eq!(engine.commitlog_min_gc_time(TABLES[0]).unwrap(), GcTime::MAX);
    engine.apply_batch(&write_of(&schemas, 100).unwrap()).unwrap();
    drop(engine);
    let (engine, _) = open(Arc::new(reopened.crash(CrashMode::DropAll)), Path::new(DIR), &w).unwrap();
    assert_eq!(engine.commitlog_min_gc_time(TABLES[0]).unwrap(), GcTime::MIN);
}

#[test]
fn the_commitlog_size_limit_asks_for_flushes_of_the_oldest_tables() {
    let mut w = workload(Durability::Batch(Duration::ZERO));
    w.segment_size = 4096;
    let (engine, schemas) = open(Arc::new(SimFs::new(8)), Path::new(DIR), &w).unwrap();
    assert!(engine.tables_to_flush().is_empty());
    // The workload's limit is four segments.
    for id in 0..300 {
        engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
    }
    assert_eq!(engine.tables_to_flush(), TABLES.iter().map(|t| t.to_string()).collect::<Vec<_>>());
}

/// R3.9: under `Periodic`, an acknowledged write reaches the disk within the interval even when
/// nothing else is written.
#[test]
fn a_lone_periodic_write_is_synced_within_the_interval() {
    let fs = SimFs::new(9);
    let w = workload(Durability::Periodic(Duration::from_millis(5)));
    let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &w).unwrap();
    engine.apply_batch(&write_of(&schemas, 1).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (crashed, _) = open(Arc::new(fs.crash(CrashMode::DropAll)), Path::new("/db"), &w).unwrap();
    assert_eq!(present_ids(&crashed, TABLES[0]).unwrap(), [1].into());
    drop(engine);
}

/// P6: when a manifest edit cannot be made durable, the engine cannot know which state a crash will
/// bring back, so it stops acknowledging writes; reopening recovers every acknowledged one.
#[test]
fn a_failed_manifest_write_fails_stop() {
    let sim = SimFs::new(10);
    let faulty = FaultFs::new(Arc::new(sim.clone()), 10);
    let w = workload(Durability::Batch(Duration::ZERO));
    let (engine, schemas) = open(Arc::new(faulty.clone()), Path::new(DIR), &w).unwrap();
    engine.apply_batch(&write_of(&schemas, 0).unwrap()).unwrap();
    faulty.add_rule(FaultRule::new(OpKind::Sync, Trigger::Nth(1), Fault::Eio).on_paths("MANIFEST"));
    assert!(matches!(engine.drop_table(TABLES[0]), Err(Error::Io { .. })));
    assert!(matches!(engine.apply_batch(&write_of(&schemas, 1).unwrap()), Err(Error::CommitlogFailed(_))));
    drop(engine);
    let (engine, _) = open(Arc::new(sim.crash(CrashMode::DropAll)), Path::new(DIR), &w).unwrap();
    assert!(present_ids(&engine, TABLES[1]).unwrap().contains(&0));
}
