//! The compaction manager through the public API (DESIGN §6; storage-semantics R2.1–R2.5, R2.24):
//! background compaction converges under writes and keeps every row; pause stops new jobs and
//! resume lets them run; the throughput limit slows a job down to at most the configured rate;
//! shutting compaction down either abandons a running job, leaving every input in place (also
//! after reopen, with no partial output left behind), or waits for it to finish; and the status
//! totals add up to the reports of the jobs that ran.
//!
//! Timing assertions are lower bounds only (a slow machine may always take longer).

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talus::format::schema::CompactionStrategy;
use talus::format::{ColumnType, DecoratedKey, GcTime, Mutation, Schema, SchemaRef, TableOptions, Timestamp, TombstoneGcMode, Value};
use talus::fs::{CrashMode, Fs, OpenMode, SimFs};
use talus::{scan_all, CompactionOptions, CompactionShutdown, Engine, EngineOptions, Error, ResultPartition};
use talus_tests::fixture::test_options;

const DIR: &str = "/db";
const T: &str = "ks.t";

/// `ks.t`: `(pk int, ck int) v text`, size-tiered without the `min_sstable_age` guard, so fresh
/// tiny sstables share a bucket (R2.24), and immediate tombstone GC.
fn schema() -> SchemaRef {
    Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Text)
        .options(TableOptions {
            tombstone_gc: TombstoneGcMode::Immediate,
            compaction: CompactionStrategy::SizeTiered {
                bucket_low: 0.5,
                bucket_high: 1.5,
                min_sstable_size: 50 << 20,
                min_sstable_age: 0,
            },
            ..TableOptions::default()
        })
        .build()
        .unwrap()
}

fn open(fs: &SimFs, options: EngineOptions) -> Engine {
    let engine = Engine::open_with_fs(Arc::new(fs.clone()), DIR, options).unwrap();
    if engine.table_names().is_empty() {
        engine.create_table(schema()).unwrap();
    }
    engine
}

/// Writes `rows` rows of about `value_len` bytes into each of the partitions `pks`, at `ts`.
fn write(engine: &Engine, pks: std::ops::Range<i32>, rows: i32, value_len: usize, ts: i64) {
    let schema = schema();
    for pk in pks {
        let mut b = Mutation::builder(&schema, &[Value::Int(pk)]);
        for ck in 0..rows {
            let v: String = format!("{pk}/{ck}/{ts}:").chars().cycle().take(value_len).collect();
            b = b.set(&[Value::Int(ck)], "v", Value::Text(v), Timestamp(ts));
        }
        engine.apply(&b.build().unwrap()).unwrap();
    }
}

fn live(engine: &Engine) -> Vec<ResultPartition> {
    engine.query(&scan_all(T)).unwrap().partitions
}

/// `(pk, ck)` of every live row (partition keys 0..1000).
fn live_keys(engine: &Engine) -> BTreeSet<(i32, i32)> {
    let schema = schema();
    let pks: BTreeMap<DecoratedKey, i32> = (0..1000).map(|pk| (schema.decorated_key(&[Value::Int(pk)]).unwrap(), pk)).collect();
    let mut keys = BTreeSet::new();
    for p in live(engine) {
        for row in &p.rows {
            let ck = match schema.decode_clustering(&row.clustering).unwrap()[0] {
                Value::Int(i) => i,
                ref other => unreachable!("{other:?}"),
            };
            keys.insert((pks[&p.key], ck));
        }
    }
    keys
}

fn sstable_files(fs: &SimFs) -> BTreeSet<String> {
    fs.list(&Path::new(DIR).join("sst")).unwrap().into_iter().collect()
}

fn file_len(fs: &SimFs, generation: u64) -> u64 {
    let path = Path::new(DIR).join("sst").join(talus::sstable_set::sstable_file_name(generation));
    fs.open(&path, OpenMode::Existing).unwrap().read_all().unwrap().len() as u64
}

/// Polls `cond` every millisecond for up to 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn background_compaction_converges_under_writes_and_keeps_every_row() {
    let fs = SimFs::new(1);
    let options = EngineOptions {
        background_flush: true,
        background_compaction: true,
        memtable_table_limit: 48 << 10,
        memtable_total_limit: 256 << 10,
        ..test_options()
    };
    let engine = open(&fs, options);
    let schema = schema();
    let mut expected = BTreeSet::new();
    for round in 0..40 {
        // Each round writes row `round` of partitions 0..20 and deletes last round's row of
        // every fifth partition.
        for pk in 0..20 {
            let v = Value::Text(format!("{pk}/{round}/").repeat(30));
            let m = Mutation::builder(&schema, &[Value::Int(pk)]).set(&[Value::Int(round)], "v", v, Timestamp(100)).build().unwrap();
            engine.apply(&m).unwrap();
            expected.insert((pk, round));
        }
        if round > 0 {
            for pk in (0..20).step_by(5) {
                let m =
                    Mutation::builder(&schema, &[Value::Int(pk)]).delete_row(&[Value::Int(round - 1)], Timestamp(1000)).build().unwrap();
                engine.apply(&m).unwrap();
                expected.remove(&(pk, round - 1));
            }
        }
        if round % 4 == 3 {
            engine.flush(T).unwrap();
        }
    }
    engine.flush_all().unwrap();
    let flushed = engine.compaction_status().totals.bytes_flushed;
    assert!(flushed > 0);
    engine.wait_for_compactions();

    let status = engine.compaction_status();
    assert!(status.running.is_empty() && status.queued.is_empty(), "{status:?}");
    assert_eq!(status.last_error, None);
    assert!(status.totals.jobs >= 2, "{status:?}");
    // Every sstable is tiny, so STCS puts them all in one bucket: the table converges to one.
    assert_eq!(engine.sstables(T).unwrap().len(), 1, "{status:?}");
    assert_eq!(live_keys(&engine), expected);

    // Reopen after a power loss: the same rows.
    let crashed = fs.crash(CrashMode::DropAll);
    drop(engine);
    let engine = open(&crashed, test_options());
    assert_eq!(live_keys(&engine), expected);
}

#[test]
fn pause_stops_new_jobs_and_resume_lets_them_run() {
    let fs = SimFs::new(2);
    let engine = open(&fs, EngineOptions { background_compaction: true, ..test_options() });
    engine.pause_compactions();
    for round in 0..6 {
        write(&engine, 0..20, 2, 100, round);
        engine.flush(T).unwrap();
    }
    let before = live(&engine);
    std::thread::sleep(Duration::from_millis(100));
    let status = engine.compaction_status();
    assert!(status.paused);
    assert_eq!(status.queued, vec![T.to_string()], "{status:?}");
    assert!(status.running.is_empty(), "{status:?}");
    assert_eq!(status.totals.jobs, 0, "{status:?}");
    assert_eq!(engine.sstables(T).unwrap().len(), 6);
    // Queued tables are not waited for while paused.
    engine.wait_for_compactions();

    engine.resume_compactions();
    engine.wait_for_compactions();
    let status = engine.compaction_status();
    assert!(!status.paused);
    assert!(status.totals.jobs >= 1, "{status:?}");
    assert_eq!(engine.sstables(T).unwrap().len(), 1, "{status:?}");
    assert_eq!(live(&engine), before);
}

#[test]
fn throughput_limit_bounds_the_write_rate_of_a_compaction() {
    let fs = SimFs::new(3);
    let limit = 400_000u64;
    let engine = open(&fs, EngineOptions { compaction_throughput_bytes_per_sec: Some(limit), ..test_options() });
    for round in 0..4 {
        write(&engine, 0..100, 1, 900, round);
        engine.flush(T).unwrap();
    }
    let before = live(&engine);
    let started = Instant::now();
    let report = engine.compact_sstables(T, &engine.sstables(T).unwrap(), CompactionOptions::default()).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(live(&engine), before);
    assert!(report.data_out > 80_000, "{report:?}");
    // The limiter is charged the data written at each partition end; at most one unflushed block
    // (4 KiB) of the output may not have been charged yet.
    let charged = report.data_out.saturating_sub(4096);
    let floor = Duration::from_secs_f64(charged as f64 / limit as f64);
    assert!(elapsed >= floor, "{elapsed:?} < {floor:?} for {} bytes at {limit} B/s", report.data_out);
    assert!(report.elapsed >= floor, "{report:?}");
}

/// An engine with a slow throttled compaction ahead: three sstables of `partitions` partitions of
/// ~1 KB each, and a limit of 50 KB/s. With `background`, background compaction starts paused.
fn slow_setup(seed: u64, background: bool, partitions: i32) -> (SimFs, Engine, EngineOptions) {
    let fs = SimFs::new(seed);
    let options = EngineOptions { compaction_throughput_bytes_per_sec: Some(50_000), background_compaction: background, ..test_options() };
    let engine = open(&fs, options.clone());
    if background {
        engine.pause_compactions();
    }
    for round in 0..3 {
        write(&engine, 0..partitions, 1, 1000, round);
        engine.flush(T).unwrap();
    }
    (fs, engine, options)
}

#[test]
fn abandon_shutdown_leaves_every_input_in_place() {
    let (fs, engine, options) = slow_setup(4, false, 50);
    let inputs = engine.sstables(T).unwrap();
    let before = live(&engine);
    let files = sstable_files(&fs);

    let worker = {
        let engine = engine.clone();
        let inputs = inputs.clone();
        std::thread::spawn(move || engine.compact_sstables(T, &inputs, CompactionOptions::default()))
    };
    wait_until("the job has written a partition", || engine.compaction_status().running.iter().any(|r| r.partitions >= 1));
    engine.shut_down_compactions(CompactionShutdown::Abandon);
    let result = worker.join().unwrap();
    assert!(matches!(result, Err(Error::CompactionAbandoned(_))), "{result:?}");

    let status = engine.compaction_status();
    assert!(status.running.is_empty(), "{status:?}");
    assert_eq!((status.totals.jobs, status.totals.failed), (0, 1), "{status:?}");
    assert_eq!(engine.sstables(T).unwrap(), inputs);
    assert_eq!(sstable_files(&fs), files, "the partial output is removed");
    assert_eq!(live(&engine), before);
    // Compaction is stopped for good.
    let refused = engine.compact_sstables(T, &inputs, CompactionOptions::default());
    assert!(matches!(refused, Err(Error::CompactionAbandoned(_))), "{refused:?}");

    // Reopen, cleanly and after a power loss: the same inputs, the same rows.
    let crashed = fs.crash(CrashMode::DropAll);
    drop(engine);
    for fs in [fs, crashed] {
        let engine = open(&fs, options.clone());
        assert_eq!(engine.sstables(T).unwrap(), inputs);
        assert!(engine.open_report().removed_unnamed_files.is_empty(), "{:?}", engine.open_report());
        assert_eq!(live(&engine), before);
    }
}

#[test]
fn wait_shutdown_lets_a_running_background_job_finish() {
    let (fs, engine, options) = slow_setup(5, true, 15);
    let inputs = engine.sstables(T).unwrap();
    let before = live(&engine);
    engine.resume_compactions();
    wait_until("a background job runs", || !engine.compaction_status().running.is_empty());
    let running = engine.compaction_status().running;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].inputs.iter().copied().collect::<BTreeSet<_>>(), inputs.iter().copied().collect());

    engine.shut_down_compactions(CompactionShutdown::Wait);
    let status = engine.compaction_status();
    assert!(status.running.is_empty(), "{status:?}");
    assert_eq!((status.totals.jobs, status.totals.failed), (1, 0), "{status:?}");
    let after = engine.sstables(T).unwrap();
    assert_eq!(after.len(), 1);
    assert!(!inputs.contains(&after[0]));
    let names: BTreeSet<String> = after.iter().map(|&g| talus::sstable_set::sstable_file_name(g)).collect();
    assert_eq!(sstable_files(&fs), names, "the inputs are deleted");
    assert_eq!(live(&engine), before);
    engine.wait_for_compactions();

    drop(engine);
    let engine = open(&fs.crash(CrashMode::DropAll), options);
    assert_eq!(engine.sstables(T).unwrap(), after);
    assert_eq!(live(&engine), before);
}

#[test]
fn status_totals_add_up_to_the_reports() {
    let fs = SimFs::new(6);
    let engine = open(&fs, test_options());
    let schema = schema();
    let mut flushed = 0;
    let mut flush = |engine: &Engine| flushed += engine.flush(T).unwrap().bytes;
    for round in 0..4 {
        write(&engine, 0..30, 2, 100, 10 + round);
        flush(&engine);
    }
    // Tombstones to purge (older than the barrier), and an sstable of expired data only.
    let old = GcTime::now().minus(10_000);
    for pk in 0..10 {
        let m = Mutation::builder(&schema, &[Value::Int(pk)]).now(old).delete_partition(Timestamp(100)).build().unwrap();
        engine.apply(&m).unwrap();
    }
    flush(&engine);
    let m = Mutation::builder(&schema, &[Value::Int(500)])
        .now(old)
        .set_with_ttl(&[Value::Int(0)], "v", Value::Text("x".into()), Timestamp(1), Some(10))
        .build()
        .unwrap();
    engine.apply(&m).unwrap();
    flush(&engine);

    let mut reports = Vec::new();
    let generations = engine.sstables(T).unwrap();
    let sizes: u64 = generations[..3].iter().map(|&g| file_len(&fs, g)).sum();
    let report = engine.compact_sstables(T, &generations[..3], CompactionOptions::default()).unwrap();
    assert_eq!(report.bytes_in, sizes, "bytes_in are the input files' sizes");
    assert_eq!(report.bytes_out, report.outputs.iter().map(|&g| file_len(&fs, g)).sum::<u64>());
    reports.push(report);
    reports.extend(engine.compact_pending(T).unwrap());
    write(&engine, 30..40, 2, 100, 50);
    flush(&engine);
    reports.push(engine.compact(T).unwrap().unwrap());

    assert!(reports.iter().any(|r| r.stats.tombstones_purged > 0), "{reports:?}");
    assert!(reports.iter().any(|r| !r.expired.is_empty()), "{reports:?}");
    let totals = engine.compaction_status().totals;
    assert_eq!(totals.jobs, reports.len() as u64);
    assert_eq!(totals.failed, 0);
    assert_eq!(totals.bytes_in, reports.iter().map(|r| r.bytes_in).sum::<u64>());
    assert_eq!(totals.bytes_out, reports.iter().map(|r| r.bytes_out).sum::<u64>());
    assert_eq!(totals.partitions, reports.iter().map(|r| r.stats.partitions).sum::<u64>());
    assert_eq!(totals.tombstones_purged, reports.iter().map(|r| r.stats.tombstones_purged).sum::<u64>());
    assert_eq!(totals.rows_dropped, reports.iter().map(|r| r.rows_dropped()).sum::<u64>());
    assert_eq!(totals.expired_sstables, reports.iter().map(|r| r.expired.len() as u64).sum::<u64>());
    assert_eq!(totals.bytes_flushed, flushed);
    let amplification = (flushed + totals.bytes_out) as f64 / flushed as f64;
    assert!((totals.write_amplification() - amplification).abs() < 1e-9, "{totals:?}");
    assert!(totals.write_amplification() > 1.0);
}
