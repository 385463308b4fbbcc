//! Tombstone GC in compaction, through the public API (storage-semantics §2, R2.7–R2.29, and
//! batchlog-and-view-building C2, tests T8–T10):
//!
//! - the commitlog barrier (R2.15, R2.16, R3.11): a quiet table that pins a commitlog segment keeps
//!   another table's tombstones from being purged while that segment can still replay the data
//!   they delete (T8, ScyllaDB #14870), fresh tombstones in live segments survive flushes and
//!   compactions (T9), and after `flush_all_and_rotate_commitlog` tombstones older than grace go
//!   (T10); `compact_only_existing_data` drops the barrier and the overlap check (R2.16);
//! - the overlap check (R2.17): older live data of the partition in an sstable outside the
//!   compaction or in a memtable blocks the purge, with a strict timestamp comparison;
//! - a purged tombstone still shadows the data it covers in the same pass (R2.19), and a newer
//!   range tombstone drops every row and row tombstone under it while it stays (R1.27, R2.9);
//! - fully expired sstables are dropped unread unless a memtable holds older data (R2.20);
//! - `tombstone_gc` modes `repair` and `disabled` (R2.14a); quarantined sstables are never inputs
//!   (R2.29); leveled outputs are cut at `sstable_size_in_mb` (R2.4, R2.25).
//!
//! Every compaction here is checked to leave the live rows of a full scan unchanged (R2.5).
//! Tombstones a compaction wrote are looked at raw: the output files are opened with the format
//! crate's `SstableReader` over the simulated file system and their statistics counted.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use talus::commitlog::CommitlogOptions;
use talus::compaction::strategy::JobKind;
use talus::format::schema::CompactionStrategy;
use talus::format::sstable::reader::SstableReader;
use talus::format::sstable::statistics::Statistics;
use talus::format::{
    ColumnType, GcTime, Mutation, RangeBound, ReplayPosition, Schema, SchemaRef, TableOptions, Timestamp, Token, TombstoneGcMode, Value,
};
use talus::fs::{CrashMode, Fs, OpenMode, SimFs};
use talus::sstable_set::sstable_file_name;
use talus::{scan_all, CompactionOptions, CompactionReport, Engine, EngineOptions, Error, Query, ResultPartition};
use talus_tests::fixture::test_options;

const DIR: &str = "/db";
const T: &str = "ks.t";

// ------------------------------------------------------------------------------------------------
// Helpers

fn open(fs: &SimFs, options: EngineOptions) -> Engine {
    Engine::open_with_fs(Arc::new(fs.clone()), DIR, options).unwrap()
}

fn options_with_segment(segment_size: u32) -> EngineOptions {
    EngineOptions { commitlog: CommitlogOptions { segment_size, ..CommitlogOptions::default() }, ..test_options() }
}

/// `ks.<name>`: `(pk int, ck int) v int` with the given tombstone_gc mode and grace.
fn table(name: &str, mode: TombstoneGcMode, grace: i64) -> SchemaRef {
    table_with(name, TableOptions { tombstone_gc: mode, gc_grace_seconds: grace, ..TableOptions::default() })
}

fn table_with(name: &str, options: TableOptions) -> SchemaRef {
    Schema::builder("ks", name)
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Int)
        .options(options)
        .build()
        .unwrap()
}

/// An engine on a fresh `SimFs` with table `ks.t` of the given mode and grace.
fn engine_with(seed: u64, mode: TombstoneGcMode, grace: i64) -> (SimFs, Engine, SchemaRef) {
    let fs = SimFs::new(seed);
    let engine = open(&fs, test_options());
    let schema = table("t", mode, grace);
    engine.create_table(schema.clone()).unwrap();
    (fs, engine, schema)
}

fn put(engine: &Engine, schema: &Schema, pk: i32, ck: i32, ts: i64) -> ReplayPosition {
    let m = Mutation::builder(schema, &[Value::Int(pk)]).set(&[Value::Int(ck)], "v", Value::Int(ck), Timestamp(ts)).build().unwrap();
    engine.apply(&m).unwrap()
}

fn delete_partition(engine: &Engine, schema: &Schema, pk: i32, ts: i64, dt: GcTime) -> ReplayPosition {
    engine.apply(&Mutation::builder(schema, &[Value::Int(pk)]).now(dt).delete_partition(Timestamp(ts)).build().unwrap()).unwrap()
}

fn delete_row(engine: &Engine, schema: &Schema, pk: i32, ck: i32, ts: i64, dt: GcTime) -> ReplayPosition {
    let m = Mutation::builder(schema, &[Value::Int(pk)]).now(dt).delete_row(&[Value::Int(ck)], Timestamp(ts)).build().unwrap();
    engine.apply(&m).unwrap()
}

/// Flushes `table` and returns the one sstable written.
fn flush(engine: &Engine, table: &str) -> u64 {
    let report = engine.flush(table).unwrap();
    assert_eq!(report.generations.len(), 1, "{report:?}");
    report.generations[0]
}

fn live(engine: &Engine, table: &str) -> Vec<ResultPartition> {
    engine.query(&scan_all(table)).unwrap().partitions
}

/// The clustering values of the live rows of partition `pk`.
fn cks(engine: &Engine, schema: &Schema, pk: i32) -> Vec<i32> {
    let result = engine.query(&Query::partition(schema, &[Value::Int(pk)]).unwrap()).unwrap();
    result
        .rows()
        .map(|(_, row)| match schema.decode_clustering(&row.clustering).unwrap()[0] {
            Value::Int(i) => i,
            ref other => unreachable!("{other:?}"),
        })
        .collect()
}

/// `compact_sstables` that checks the live rows of a full scan are the same before and after.
fn compact(engine: &Engine, table: &str, generations: &[u64], now: Option<GcTime>, only_existing_data: bool) -> CompactionReport {
    let before = live(engine, table);
    let report = engine.compact_sstables(table, generations, CompactionOptions { now, only_existing_data }).unwrap();
    assert_eq!(live(engine, table), before, "R2.5: a compaction changes no live row ({report:?})");
    report
}

/// `compact` over every sstable of the table.
fn compact_all(engine: &Engine, table: &str, now: Option<GcTime>) -> CompactionReport {
    let generations = engine.sstables(table).unwrap();
    compact(engine, table, &generations, now, false)
}

fn statistics(fs: &SimFs, generation: u64) -> Statistics {
    let path = Path::new(DIR).join("sst").join(sstable_file_name(generation));
    let bytes = fs.open(&path, OpenMode::Existing).unwrap().read_all().unwrap();
    SstableReader::open(Arc::new(Bytes::from(bytes)), Some(generation), None).unwrap().statistics().clone()
}

/// What some sstable files hold, counted from their statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Raw {
    partitions: u64,
    rows: u64,
    partition_tombstones: u64,
    range_tombstones: u64,
    row_tombstones: u64,
}

fn raw(fs: &SimFs, generations: &[u64]) -> Raw {
    let mut r = Raw::default();
    for &g in generations {
        let c = statistics(fs, g).counts;
        r.partitions += c.partitions;
        r.rows += c.rows;
        r.partition_tombstones += c.partition_tombstones;
        r.range_tombstones += c.range_tombstones;
        r.row_tombstones += c.row_tombstones;
    }
    r
}

// ------------------------------------------------------------------------------------------------
// T8, R2.15, R2.16, R3.11

/// What one run of the T8 scenario saw.
#[derive(Debug)]
struct T8Outcome {
    /// The segment S1 holding W and A's write.
    w_segment: u64,
    /// S1 was still live at the compaction.
    pinned: bool,
    barrier: GcTime,
    deletion_time: GcTime,
    report: CompactionReport,
    kept: Raw,
    /// Live rows of W's partition after a power loss and reopen.
    w_rows_after_crash: Vec<i32>,
}

/// The engine reopened after the power loss of a T8 run.
struct T8Reopened {
    engine: Engine,
    fs: SimFs,
    options: EngineOptions,
    b: SchemaRef,
    t0: GcTime,
}

/// Writes filler into table `filler` until the commitlog rolls past segment `from`.
fn roll_segment(engine: &Engine, filler: &Schema, from: u64) {
    for i in 0..200 {
        let m = Mutation::builder(filler, &[Value::Int(i)]).set(&[Value::Int(0)], "v", Value::Int(i), Timestamp(1)).build().unwrap();
        let more = Mutation::builder(filler, &[Value::Int(i)])
            .set(&[Value::Int(1)], "v", Value::Int(i), Timestamp(1))
            .set(&[Value::Int(2)], "v", Value::Int(i), Timestamp(1))
            .build()
            .unwrap();
        let at = engine.apply_batch(&[m, more.clone(), more.clone(), more]).unwrap();
        if at.segment != from {
            return;
        }
    }
    unreachable!("the commitlog did not roll");
}

/// ScyllaDB #14870: table A writes once into segment S1 and is never flushed (unless `flush_a`);
/// table B writes W into S1 and flushes; the log rolls; B deletes W in S2 (deletion time a bit
/// after B's first append in S1) and flushes; the log rolls again and S2 is disposed of. Then W's
/// and the tombstone's sstables are compacted with `gc_grace_seconds = 0` at a `now` long after
/// the deletion, the file system loses power, and the engine is reopened.
fn t8_run(seed: u64, flush_a: bool, only_existing_data: bool) -> (T8Outcome, T8Reopened) {
    let fs = SimFs::new(seed);
    let options = options_with_segment(16 << 10);
    let engine = open(&fs, options.clone());
    let a = table("a", TombstoneGcMode::Timeout, 864_000);
    let b = table("b", TombstoneGcMode::Timeout, 0);
    let c = table("c", TombstoneGcMode::Timeout, 864_000);
    for s in [&a, &b, &c] {
        engine.create_table(s.clone()).unwrap();
    }
    let t0 = GcTime::now();
    let a_at = put(&engine, &a, 1, 1, 1);
    let w_at = put(&engine, &b, 7, 1, 10);
    assert_eq!(a_at.segment, w_at.segment);
    let g_w = flush(&engine, "ks.b");
    roll_segment(&engine, &c, w_at.segment);
    let deletion_time = t0.plus(5);
    let del_at = delete_partition(&engine, &b, 7, 20, deletion_time);
    assert_ne!(del_at.segment, w_at.segment);
    let g_t = flush(&engine, "ks.b");
    if flush_a {
        flush(&engine, "ks.a");
    }
    roll_segment(&engine, &c, del_at.segment);
    flush(&engine, "ks.c");
    let segments = engine.commitlog_segments();
    assert!(!segments.contains(&del_at.segment), "the tombstone's segment is clean for every table and gone: {segments:?}");
    let pinned = segments.contains(&w_at.segment);
    let barrier = engine.commitlog_min_gc_time("ks.b").unwrap();
    assert!(cks(&engine, &b, 7).is_empty());

    let report = compact(&engine, "ks.b", &[g_w, g_t], Some(t0.plus(1000)), only_existing_data);
    let kept = raw(&fs, &report.outputs);
    assert!(cks(&engine, &b, 7).is_empty());

    // Power loss: everything acknowledged was synced (batch mode), the rest is dropped.
    let crashed = fs.crash(CrashMode::DropAll);
    drop(engine);
    let engine = open(&crashed, options.clone());
    let w_rows_after_crash = cks(&engine, &b, 7);
    let outcome = T8Outcome { w_segment: w_at.segment, pinned, barrier, deletion_time, report, kept, w_rows_after_crash };
    (outcome, T8Reopened { engine, fs: crashed, options, b, t0 })
}

#[test]
fn t8_quiet_table_pins_segment_so_tombstone_is_not_purged() {
    // A never flushed: S1 stays live, and B's first append there clamps gc_before (R2.15).
    let (pinned, _) = t8_run(81, false, false);
    assert!(pinned.pinned, "{pinned:?}");
    assert!(pinned.barrier <= pinned.deletion_time, "the barrier is B's first append in S1: {pinned:?}");
    assert_eq!(pinned.report.stats.tombstones_purged, 0, "{pinned:?}");
    assert_eq!(pinned.report.stats.partition_tombstones, 1);
    assert_eq!(pinned.kept, Raw { partitions: 1, partition_tombstones: 1, ..Raw::default() }, "W dropped, its tombstone kept");
    assert_eq!(pinned.w_rows_after_crash, Vec::<i32>::new(), "W must stay deleted after replaying the pinned segment");

    // Control: A flushed, so S1 is clean for every table and disposed of; no live segment holds
    // B, the barrier is lifted, and the same compaction purges the tombstone (the assertion
    // above can fail). W is gone with it and cannot come back: its segment is gone too.
    let (unpinned, _) = t8_run(82, true, false);
    assert!(!unpinned.pinned, "{unpinned:?}");
    assert_eq!(unpinned.barrier, GcTime::MAX);
    assert_eq!(unpinned.report.stats.tombstones_purged, 1, "{unpinned:?}");
    assert!(unpinned.report.outputs.is_empty(), "nothing left to write: {unpinned:?}");
    assert_eq!(unpinned.w_rows_after_crash, Vec::<i32>::new());

    // Bypassing the barrier: in the pinned state, a compaction that ignores it
    // (`only_existing_data`, safe only right after flushing every table and rotating the log)
    // purges the tombstone. Replaying S1 would bring W back (#14870) were it not for the second
    // line of defence: the compaction's manifest record keeps the inputs' flushed position as the
    // table's replay floor, so replay skips W's entry (R3.12). Before the floor, this resurrected W.
    let (bypassed, _) = t8_run(83, false, true);
    assert!(bypassed.pinned);
    assert_eq!(bypassed.report.stats.tombstones_purged, 1, "{bypassed:?}");
    assert_eq!(bypassed.w_rows_after_crash, Vec::<i32>::new(), "the replay floor keeps W's entry from replay");
}

/// T8 continued across the reopen: A's write is replayed into A's memtable and still unflushed, so
/// S1 stays live and still holds W. W's entry was skipped by replay (the compacted sstable's
/// commitlog interval covers it), but it is replayable again as soon as no sstable of B covers it;
/// so the barrier must still keep the tombstone (R2.15, R3.11), and W must stay deleted through a
/// second power loss.
#[test]
fn t8_pinned_segment_still_blocks_the_purge_after_a_reopen() {
    let (outcome, after) = t8_run(84, false, false);
    assert!(outcome.pinned && outcome.report.stats.tombstones_purged == 0, "{outcome:?}");
    let T8Reopened { engine, fs, options, b, t0 } = after;
    assert!(engine.commitlog_segments().contains(&outcome.w_segment), "A (replayed, unflushed) still pins S1");
    assert!(cks(&engine, &b, 7).is_empty());
    let barrier = engine.commitlog_min_gc_time("ks.b").unwrap();
    let generations = engine.sstables("ks.b").unwrap();
    let report = compact(&engine, "ks.b", &generations, Some(t0.plus(1000)), false);
    assert!(
        report.expired.is_empty() && report.stats.tombstones_purged == 0,
        "S1 still holds W, so W's tombstone must stay (barrier of ks.b: {barrier:?}, deletion time {:?}): {report:?}",
        outcome.deletion_time
    );
    assert_eq!(raw(&fs, &report.outputs).partition_tombstones, 1);

    let crashed = fs.crash(CrashMode::DropAll);
    drop(engine);
    let engine = open(&crashed, options);
    assert_eq!(cks(&engine, &b, 7), Vec::<i32>::new(), "W must stay deleted after replaying S1 again");
}

// ------------------------------------------------------------------------------------------------
// T9, T10: a queue in one partition

/// A queue in partition 1: each round enqueues `per_round` items (ck = item number, written at
/// ts 1000 + ck) and dequeues the oldest `consumed` live ones (row tombstones at ts 1_000_000 + ck,
/// deletion time from `deletion_time()`), one write each. Tracks the live and deleted items.
struct Queue {
    next: i32,
    live: BTreeSet<i32>,
    deleted: BTreeSet<i32>,
    /// Commitlog segments holding the row tombstones.
    delete_segments: BTreeSet<u64>,
    /// Smallest deletion time used.
    min_deletion_time: GcTime,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            next: 0,
            live: Default::default(),
            deleted: Default::default(),
            delete_segments: Default::default(),
            min_deletion_time: GcTime::MAX,
        }
    }

    fn round(&mut self, engine: &Engine, schema: &Schema, per_round: i32, consumed: usize, deletion_time: impl Fn() -> GcTime) {
        for _ in 0..per_round {
            put(engine, schema, 1, self.next, 1000 + i64::from(self.next));
            self.live.insert(self.next);
            self.next += 1;
        }
        let oldest: Vec<i32> = self.live.iter().copied().take(consumed).collect();
        for ck in oldest {
            let dt = deletion_time();
            self.min_deletion_time = self.min_deletion_time.min(dt);
            let at = delete_row(engine, schema, 1, ck, 1_000_000 + i64::from(ck), dt);
            self.delete_segments.insert(at.segment);
            self.live.remove(&ck);
            self.deleted.insert(ck);
        }
    }

    fn check(&self, engine: &Engine, schema: &Schema) {
        assert_eq!(cks(engine, schema, 1), self.live.iter().copied().collect::<Vec<_>>(), "no dequeued item reappears");
    }
}

#[test]
fn t9_fresh_tombstones_in_live_segments_are_not_purged_by_flush_or_compaction() {
    let (fs, engine, schema) = engine_with(9, TombstoneGcMode::Immediate, 0);
    let mut queue = Queue::new();
    for round in 0..8 {
        // Deletion times from the wall clock, as a real dequeue writes them.
        queue.round(&engine, &schema, 30, 25, GcTime::now);
        queue.check(&engine, &schema);
        // A flush writes the memtable as it is: no purge (R3.6).
        let g = flush(&engine, T);
        assert_eq!(raw(&fs, &[g]).row_tombstones, 25, "round {round}: the flush kept every fresh tombstone");
        queue.check(&engine, &schema);

        let live_segments = engine.commitlog_segments();
        assert!(queue.delete_segments.iter().all(|s| live_segments.contains(s)), "the tombstones' segments are live");
        let barrier = engine.commitlog_min_gc_time(T).unwrap();
        assert!(barrier <= queue.min_deletion_time, "round {round}: {barrier:?} vs {:?}", queue.min_deletion_time);
        if round % 2 == 1 {
            // Immediate mode with the gc clock an hour ahead of every deletion time: only the
            // barrier stands between these tombstones and a purge.
            let report = compact_all(&engine, T, Some(GcTime::now().plus(3600)));
            assert_eq!(report.stats.tombstones_purged, 0, "round {round}: {report:?}");
            assert_eq!(
                raw(&fs, &report.outputs).row_tombstones,
                queue.deleted.len() as u64,
                "round {round}: every tombstone is still on disk"
            );
        } else {
            // The strategy's own jobs, at the wall clock.
            for report in engine.compact_pending(T).unwrap() {
                assert_eq!(report.stats.tombstones_purged, 0, "round {round}: {report:?}");
            }
        }
        queue.check(&engine, &schema);
    }
    assert_eq!(engine.compaction_status().totals.tombstones_purged, 0);
}

#[test]
fn t10_after_flush_all_and_rotation_old_tombstones_are_purged() {
    let grace = 3600;
    let (fs, engine, schema) = engine_with(10, TombstoneGcMode::Timeout, grace);
    let t0 = GcTime::now();
    // The compaction runs "an hour and ten seconds later": tombstones written now are then older
    // than grace; those stamped t0 + 100 are not.
    let later = t0.plus(grace + 10);
    let young = t0.plus(100);
    let mut queue = Queue::new();
    for _ in 0..3 {
        queue.round(&engine, &schema, 40, 20, GcTime::now);
        flush(&engine, T);
    }
    let old_count = queue.deleted.len() as u64;
    queue.round(&engine, &schema, 40, 20, || young);
    flush(&engine, T);
    let young_count = queue.deleted.len() as u64 - old_count;
    assert_eq!((old_count, young_count), (60, 20));
    queue.check(&engine, &schema);

    // Control: while the segments are live the barrier keeps even the old ones (T9).
    let report = compact_all(&engine, T, Some(later));
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    queue.check(&engine, &schema);

    engine.flush_all_and_rotate_commitlog().unwrap();
    assert_eq!(engine.commitlog_min_gc_time(T).unwrap(), GcTime::MAX, "no live segment holds the table");
    let report = compact_all(&engine, T, Some(later));
    assert_eq!(report.stats.tombstones_purged, old_count, "{report:?}");
    let left = raw(&fs, &report.outputs);
    assert_eq!(left.row_tombstones, young_count, "tombstones younger than grace stay");
    assert_eq!(left.rows, young_count + queue.live.len() as u64);
    queue.check(&engine, &schema);
    assert_eq!(queue.live.len(), 80);
}

// ------------------------------------------------------------------------------------------------
// R2.17, R2.19

/// Where the older (or newer) live data of a partition sits, outside the compaction.
#[derive(Debug, Clone, Copy)]
enum Other {
    /// A flushed sstable holding `(pk, ck 1)` at `ts`.
    Sstable { pk: i32, ts: i64 },
    /// The memtable holding `(pk, ck 1)` at `ts`.
    Memtable { pk: i32, ts: i64 },
}

/// Partition 1 gets a partition tombstone at ts 20 whose deletion time is far below the barrier,
/// in sstable T, next to a live row of partition 3 at ts 100 (so T is never fully expired, R2.20,
/// and the compactor reads it); `other` is the data outside T. Compacts T alone (or with the other sstable when
/// `with_other`) in immediate mode; returns the report and what the outputs hold.
fn overlap_case(seed: u64, other: Other, with_other: bool) -> (CompactionReport, Raw, Engine, SchemaRef) {
    let (fs, engine, schema) = engine_with(seed, TombstoneGcMode::Immediate, 0);
    let dt = GcTime::now().minus(1000);
    let mut inputs = Vec::new();
    if let Other::Sstable { pk, ts } = other {
        put(&engine, &schema, pk, 1, ts);
        let g = flush(&engine, T);
        if with_other {
            inputs.push(g);
        }
    }
    delete_partition(&engine, &schema, 1, 20, dt);
    put(&engine, &schema, 3, 1, 100);
    inputs.push(flush(&engine, T));
    if let Other::Memtable { pk, ts } = other {
        put(&engine, &schema, pk, 1, ts);
    }
    let report = compact(&engine, T, &inputs, None, false);
    assert!(report.expired.is_empty(), "{report:?}");
    assert_eq!(cks(&engine, &schema, 3), vec![1]);
    let kept = raw(&fs, &report.outputs);
    (report, kept, engine, schema)
}

#[test]
fn r2_17_overlap_check_blocks_purge_when_older_data_is_outside_the_compaction() {
    let tombstone_kept = Raw { partitions: 2, rows: 1, partition_tombstones: 1, ..Raw::default() };
    let tombstone_purged = Raw { partitions: 1, rows: 1, ..Raw::default() };

    // Older live data of the partition in an sstable outside the compaction: kept.
    let (report, kept, engine, schema) = overlap_case(1, Other::Sstable { pk: 1, ts: 10 }, false);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(kept, tombstone_kept);
    assert!(cks(&engine, &schema, 1).is_empty());
    // Compacting both: the covered data and the tombstone go together (R2.19).
    let (report, kept, engine, schema) = overlap_case(2, Other::Sstable { pk: 1, ts: 10 }, true);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(kept, tombstone_purged, "{report:?}");
    assert!(cks(&engine, &schema, 1).is_empty());

    // Strict comparison (R2.17 step 5): live data at the tombstone's own timestamp blocks.
    let (report, kept, _, _) = overlap_case(3, Other::Sstable { pk: 1, ts: 20 }, false);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(kept, tombstone_kept);
    // Control: data one microsecond newer is not shadowed by the tombstone, so it cannot block.
    let (report, kept, engine, schema) = overlap_case(4, Other::Sstable { pk: 1, ts: 21 }, false);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(kept, tombstone_purged);
    assert_eq!(cks(&engine, &schema, 1), vec![1], "the newer row stays live");
    // Control: older data of another partition does not block (the check is per partition).
    let (report, _, _, _) = overlap_case(5, Other::Sstable { pk: 2, ts: 10 }, false);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");

    // A memtable holding older live data of the partition blocks (R2.17 step 3).
    let (report, kept, engine, schema) = overlap_case(6, Other::Memtable { pk: 1, ts: 10 }, false);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(kept, tombstone_kept);
    assert!(cks(&engine, &schema, 1).is_empty(), "the memtable's older row stays shadowed");
    // Controls: a memtable without the partition, or whose data is newer than everything in the
    // compaction, does not block.
    let (report, _, _, _) = overlap_case(7, Other::Memtable { pk: 2, ts: 10 }, false);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    let (report, _, engine, schema) = overlap_case(8, Other::Memtable { pk: 1, ts: 200 }, false);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(cks(&engine, &schema, 1), vec![1]);
}

#[test]
fn r2_19_purged_tombstone_still_shadows_in_the_same_pass() {
    let (fs, engine, schema) = engine_with(19, TombstoneGcMode::Immediate, 0);
    let dt = GcTime::now().minus(1000);
    for ck in 0..10 {
        put(&engine, &schema, 1, ck, 10);
        put(&engine, &schema, 2, ck, 10);
    }
    let g_data = flush(&engine, T);
    let m = Mutation::builder(&schema, &[Value::Int(1)])
        .now(dt)
        .delete_range(RangeBound::Inclusive(vec![Value::Int(2)]), RangeBound::Inclusive(vec![Value::Int(5)]), Timestamp(20))
        .delete_row(&[Value::Int(8)], Timestamp(20))
        .build()
        .unwrap();
    engine.apply(&m).unwrap();
    delete_partition(&engine, &schema, 2, 20, dt);
    let g_tombstones = flush(&engine, T);
    assert_eq!(cks(&engine, &schema, 1), vec![0, 1, 6, 7, 9]);

    let report = compact(&engine, T, &[g_data, g_tombstones], None, false);
    assert_eq!(report.stats.tombstones_purged, 3, "range, row and partition tombstone: {report:?}");
    assert_eq!(report.stats.rows, 20, "the row tombstone merges into row 8");
    assert_eq!(report.rows_out, 5);
    assert_eq!(raw(&fs, &report.outputs), Raw { partitions: 1, rows: 5, ..Raw::default() }, "no tombstone, no covered row");
    assert_eq!(cks(&engine, &schema, 1), vec![0, 1, 6, 7, 9]);
    assert!(cks(&engine, &schema, 2).is_empty());
}

// ------------------------------------------------------------------------------------------------
// The batchlog_v2 mechanism: one newer range tombstone over many rows

#[test]
fn newer_range_tombstone_drops_every_row_and_row_tombstone_under_it_and_stays_until_purgeable() {
    let grace = 864_000;
    let (fs, engine, schema) = engine_with(27, TombstoneGcMode::Timeout, grace);
    let dt = GcTime::now().minus(1_000_000);
    let mut row_sstables = Vec::new();
    for k in 0..4 {
        let ts = Timestamp(10 + k);
        let mut b = Mutation::builder(&schema, &[Value::Int(1)]).now(dt);
        for i in 0..100 {
            let ck = k as i32 * 100 + i;
            b = b.set(&[Value::Int(ck)], "v", Value::Int(ck), ts).delete_row(&[Value::Int(10_000 + ck)], ts);
        }
        for i in 0..5 {
            let ck = 50_000 + k as i32 * 5 + i;
            b = b.set(&[Value::Int(ck)], "v", Value::Int(ck), ts);
        }
        engine.apply(&b.build().unwrap()).unwrap();
        row_sstables.push(flush(&engine, T));
    }
    // Control: without the range tombstone a compaction keeps every row and row tombstone.
    let control = compact(&engine, T, &row_sstables, Some(dt.plus(10)), false);
    assert_eq!((control.stats.rows, control.rows_out), (820, 820), "{control:?}");

    let rt = Mutation::builder(&schema, &[Value::Int(1)])
        .now(dt)
        .delete_range(RangeBound::Unbounded, RangeBound::Exclusive(vec![Value::Int(20_000)]), Timestamp(1000))
        .build()
        .unwrap();
    engine.apply(&rt).unwrap();
    flush(&engine, T);
    let outside: Vec<i32> = (50_000..50_020).collect();
    assert_eq!(cks(&engine, &schema, 1), outside);

    // Not purgeable yet (gc clock 10 s after the deletion, grace 10 days).
    let report = compact_all(&engine, T, Some(dt.plus(10)));
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(report.stats.rows, 820);
    assert_eq!(report.rows_out, 20, "no row under the range is written: {report:?}");
    assert_eq!(report.stats.redundant_row_tombstones, 400, "{report:?}");
    let kept = raw(&fs, &report.outputs);
    assert_eq!(kept, Raw { partitions: 1, rows: 20, range_tombstones: 1, ..Raw::default() });
    assert_eq!(cks(&engine, &schema, 1), outside);

    // Once purgeable (wall clock: the deletion is 1,000,000 s old), the range tombstone goes too.
    let report = compact_all(&engine, T, None);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(raw(&fs, &report.outputs), Raw { partitions: 1, rows: 20, ..Raw::default() });
    assert_eq!(cks(&engine, &schema, 1), outside);
}

// ------------------------------------------------------------------------------------------------
// R2.20

/// Sstables X (only expired TTL cells of partitions 1–3), Y (only an old partition tombstone of
/// partition 4) and Z (live, newer data of partitions 10–14); `gc_grace_seconds = 0`.
fn expired_setup(seed: u64) -> (SimFs, Engine, SchemaRef, [u64; 3]) {
    let (fs, engine, schema) = engine_with(seed, TombstoneGcMode::Timeout, 0);
    let written = GcTime::now().minus(10_000);
    for pk in 1..=3 {
        let m = Mutation::builder(&schema, &[Value::Int(pk)])
            .now(written)
            .set_with_ttl(&[Value::Int(1)], "v", Value::Int(pk), Timestamp(10), Some(100))
            .build()
            .unwrap();
        engine.apply(&m).unwrap();
    }
    let x = flush(&engine, T);
    delete_partition(&engine, &schema, 4, 15, written);
    let y = flush(&engine, T);
    for pk in 10..15 {
        put(&engine, &schema, pk, 1, 100);
    }
    let z = flush(&engine, T);
    assert!(statistics(&fs, x).max_deletion_time < GcTime::now(), "X's max deletion time is its expiry");
    (fs, engine, schema, [x, y, z])
}

#[test]
fn r2_20_fully_expired_sstable_is_dropped_unread_unless_a_memtable_overlaps() {
    let (fs, engine, _, [x, y, z]) = expired_setup(20);
    let job = engine.next_compaction(T).unwrap().unwrap();
    assert_eq!((job.kind, job.inputs), (JobKind::ExpiredDrop, vec![x, y]));
    let before = raw(&fs, &[z]);
    let report = compact(&engine, T, &[x, y, z], None, false);
    assert_eq!(report.expired, vec![x, y], "{report:?}");
    assert_eq!(report.stats.partitions, 5, "X and Y are not read: {report:?}");
    assert_eq!(raw(&fs, &report.outputs), before);

    // A memtable holding data older than X's for one of X's keys: X's expired cells still shadow
    // it, so neither X nor Y may be dropped.
    let (_, engine, schema, [x, y, z]) = expired_setup(21);
    put(&engine, &schema, 1, 1, 5);
    assert!(cks(&engine, &schema, 1).is_empty(), "shadowed by X's expired cell (ts 10)");
    let job = engine.next_compaction(T).unwrap();
    assert!(job.as_ref().is_none_or(|j| j.kind != JobKind::ExpiredDrop), "{job:?}");
    let report = compact(&engine, T, &[x, y, z], None, false);
    assert!(report.expired.is_empty(), "{report:?}");
    assert_eq!(report.stats.partitions, 9);
    assert!(cks(&engine, &schema, 1).is_empty());

    // The same with the older data in an overlapping sstable outside the compaction (R2.20 (b)).
    let (_, engine, schema, [x, y, z]) = expired_setup(22);
    put(&engine, &schema, 2, 1, 1);
    flush(&engine, T);
    assert!(cks(&engine, &schema, 2).is_empty(), "shadowed by X's expired cell (ts 10)");
    let report = compact(&engine, T, &[x, y, z], None, false);
    assert!(!report.expired.contains(&x), "{report:?}");
    assert!(cks(&engine, &schema, 2).is_empty());
}

// ------------------------------------------------------------------------------------------------
// R2.14a

/// Partition 1: a row at ts 10, then a partition tombstone at ts 20 with deletion time `dt`, in two
/// sstables.
fn covered_row(engine: &Engine, schema: &Schema, dt: GcTime) {
    put(engine, schema, 1, 1, 10);
    flush(engine, T);
    delete_partition(engine, schema, 1, 20, dt);
    flush(engine, T);
    put(engine, schema, 2, 1, 10);
    flush(engine, T);
}

#[test]
fn r2_14a_repair_mode_purges_only_after_repair() {
    let delay = 3600;
    let (fs, engine, schema) = engine_with(14, TombstoneGcMode::Repair { propagation_delay_seconds: delay }, 0);
    let dt = GcTime::now().minus(100_000);
    covered_row(&engine, &schema, dt);
    let token = schema.decorated_key(&[Value::Int(1)]).unwrap().token;
    let tombstone_kept = Raw { partitions: 2, rows: 1, partition_tombstones: 1, ..Raw::default() };

    // Never repaired: nothing is purged, however old.
    let report = compact_all(&engine, T, None);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(raw(&fs, &report.outputs), tombstone_kept);
    // Repaired, but not the tombstone's token.
    assert!(token > Token::MIN);
    engine.set_repair_time(T, Token::MIN, Token(token.0 - 1), dt.plus(100_000)).unwrap();
    assert_eq!(compact_all(&engine, T, None).stats.tombstones_purged, 0);
    // Repaired exactly propagation_delay after the deletion: gc_before == deletion time, and the
    // comparison is strict.
    engine.set_repair_time(T, Token::MIN, Token::MAX, dt.plus(delay)).unwrap();
    assert_eq!(compact_all(&engine, T, None).stats.tombstones_purged, 0);
    // One second later: purged.
    engine.set_repair_time(T, Token::MIN, Token::MAX, dt.plus(delay + 1)).unwrap();
    let report = compact_all(&engine, T, None);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(raw(&fs, &report.outputs), Raw { partitions: 1, rows: 1, ..Raw::default() });
    assert!(cks(&engine, &schema, 1).is_empty());
    assert_eq!(cks(&engine, &schema, 2), vec![1]);
}

/// R2.20 in repair mode: an sstable of expired data is fully expired only once gc_before is known
/// for the whole token range, i.e. after the whole ring was repaired.
#[test]
fn r2_14a_r2_20_repair_mode_drops_expired_sstables_only_after_a_full_ring_repair() {
    let delay = 3600;
    let (_fs, engine, schema) = engine_with(17, TombstoneGcMode::Repair { propagation_delay_seconds: delay }, 0);
    let written = GcTime::now().minus(100_000);
    let m = Mutation::builder(&schema, &[Value::Int(3)])
        .now(written)
        .set_with_ttl(&[Value::Int(1)], "v", Value::Int(3), Timestamp(5), Some(10))
        .build()
        .unwrap();
    engine.apply(&m).unwrap();
    let x = flush(&engine, T);
    put(&engine, &schema, 10, 1, 100);
    let z = flush(&engine, T);
    let expired_drop = |engine: &Engine| engine.next_compaction(T).unwrap().is_some_and(|j| j.kind == JobKind::ExpiredDrop);
    assert!(!expired_drop(&engine), "never repaired");
    let token = schema.decorated_key(&[Value::Int(3)]).unwrap().token;
    engine.set_repair_time(T, Token::MIN, token, written.plus(50_000)).unwrap();
    assert!(!expired_drop(&engine), "X's own token was repaired, but not the whole ring");
    engine.set_repair_time(T, Token::MIN, Token::MAX, written.plus(50_000)).unwrap();
    let job = engine.next_compaction(T).unwrap().unwrap();
    assert_eq!((job.kind, job.inputs), (JobKind::ExpiredDrop, vec![x]));
    let report = compact(&engine, T, &[x, z], None, false);
    assert_eq!(report.expired, vec![x], "{report:?}");
}

#[test]
fn r2_14a_disabled_mode_never_purges() {
    let (fs, engine, schema) = engine_with(15, TombstoneGcMode::Disabled, 0);
    let dt = GcTime::now().minus(100_000);
    covered_row(&engine, &schema, dt);
    // An sstable of expired TTL data only: not dropped either (R2.20 needs gc_before).
    let m = Mutation::builder(&schema, &[Value::Int(3)])
        .now(dt)
        .set_with_ttl(&[Value::Int(1)], "v", Value::Int(3), Timestamp(5), Some(10))
        .build()
        .unwrap();
    engine.apply(&m).unwrap();
    flush(&engine, T);
    engine.flush_all_and_rotate_commitlog().unwrap();
    assert!(engine.next_compaction(T).unwrap().is_none_or(|j| j.kind != JobKind::ExpiredDrop));
    let far = Some(GcTime::now().plus(10_000_000));
    let generations = engine.sstables(T).unwrap();
    let report = compact(&engine, T, &generations, far, false);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert!(report.expired.is_empty());
    // Not even when the compaction considers only existing data (R2.17 step 1).
    let report = compact(&engine, T, &report.outputs, far, true);
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    let kept = raw(&fs, &report.outputs);
    assert_eq!((kept.partitions, kept.partition_tombstones), (3, 1), "expired cell kept as a dead cell: {kept:?}");
}

// ------------------------------------------------------------------------------------------------
// R2.29

#[test]
fn r2_29_quarantined_sstables_are_not_compaction_inputs() {
    let fs = SimFs::new(29);
    let engine = open(&fs, test_options());
    let schema = table("t", TombstoneGcMode::Immediate, 0);
    engine.create_table(schema.clone()).unwrap();
    let mut generations = Vec::new();
    for pk in 0..3 {
        put(&engine, &schema, pk, 1, 10);
        generations.push(flush(&engine, T));
    }
    drop(engine);
    // Damage the footer of the middle sstable: the reopen quarantines it.
    let bad = generations[1];
    let path = Path::new(DIR).join("sst").join(sstable_file_name(bad));
    let len = fs.open(&path, OpenMode::Existing).unwrap().read_all().unwrap().len() as u64;
    fs.corrupt(&path, len - 1, &[0x5a]).unwrap();
    let engine = open(&fs, test_options());
    assert_eq!(engine.quarantined().iter().map(|q| q.generation).collect::<Vec<_>>(), vec![bad]);

    let refused = engine.compact_sstables(T, &[generations[0], bad], CompactionOptions::default());
    assert!(matches!(refused, Err(Error::CompactionRefused { .. })), "{refused:?}");
    // The refused job released its claim on the good input.
    let job = engine.next_compaction(T).unwrap();
    assert!(job.as_ref().is_none_or(|j| !j.inputs.contains(&bad)), "{job:?}");
    let before = live(&engine, T);
    let report = engine.compact(T).unwrap().unwrap();
    assert_eq!(report.inputs, vec![generations[0], generations[2]]);
    assert_eq!(live(&engine, T), before);

    // An input found corrupt while a compaction reads it is quarantined and fails the job; the
    // other inputs stay as they were.
    put(&engine, &schema, 7, 1, 10);
    let fresh = flush(&engine, T);
    let good = engine.sstables(T).unwrap();
    assert_eq!(good.len(), 2);
    drop(engine);
    let path = Path::new(DIR).join("sst").join(sstable_file_name(fresh));
    fs.corrupt(&path, 8, &[0xff, 0x00, 0xff, 0x00]).unwrap();
    let engine = open(&fs, test_options());
    assert!(engine.quarantined().is_empty(), "data blocks are not read at open");
    let failed = engine.compact_sstables(T, &good, CompactionOptions::default());
    assert!(matches!(&failed, Err(Error::SstableCorrupt { .. })), "{failed:?}");
    assert_eq!(engine.compaction_status().totals.failed, 1);
    assert!(engine.quarantined().iter().any(|q| q.generation == fresh));
    let left = engine.sstables(T).unwrap();
    assert_eq!(left, good.iter().copied().filter(|&g| g != fresh).collect::<Vec<_>>(), "the other input stays as it was");
    assert!(engine.compact_sstables(T, &[fresh], CompactionOptions::default()).is_err());
    assert_eq!(live(&engine, T).len(), 2, "partitions 0 and 2 are intact");
}

// ------------------------------------------------------------------------------------------------
// R2.16

#[test]
fn r2_16_compact_only_existing_data_ignores_barrier_and_memtables() {
    let (fs, engine, schema) = engine_with(16, TombstoneGcMode::Immediate, 0);
    put(&engine, &schema, 1, 1, 10);
    put(&engine, &schema, 2, 1, 10);
    flush(&engine, T);
    let dt = GcTime::now();
    delete_partition(&engine, &schema, 1, 20, dt);
    flush(&engine, T);
    // Older data of the deleted partition in the memtable (shadowed).
    put(&engine, &schema, 1, 2, 5);
    assert!(cks(&engine, &schema, 1).is_empty());

    // A regular compaction of every sstable: the barrier (the tombstone was written in a live
    // segment) and the memtable both keep the tombstone.
    let report = compact_all(&engine, T, Some(dt.plus(100)));
    assert_eq!(report.stats.tombstones_purged, 0, "{report:?}");
    assert_eq!(raw(&fs, &report.outputs).partition_tombstones, 1);

    // Immediate mode purges deletion times strictly before the wall clock.
    while GcTime::now() <= dt {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = live(&engine, T);
    let report = engine.compact_only_existing_data(T).unwrap().unwrap();
    assert_eq!(live(&engine, T), before);
    assert_eq!(report.stats.tombstones_purged, 1, "{report:?}");
    assert_eq!(report.inputs.len(), 2, "the memtable was flushed into an input: {report:?}");
    assert_eq!(raw(&fs, &report.outputs), Raw { partitions: 1, rows: 1, ..Raw::default() }, "partition 2 only");
    assert_eq!(engine.commitlog_min_gc_time(T).unwrap(), GcTime::MAX);
    assert!(cks(&engine, &schema, 1).is_empty());
    assert_eq!(cks(&engine, &schema, 2), vec![1]);
}

// ------------------------------------------------------------------------------------------------
// R2.4, R2.25

#[test]
fn compaction_outputs_are_cut_at_the_target_size() {
    let fs = SimFs::new(4);
    let engine = open(&fs, test_options());
    let schema = Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Blob)
        .options(TableOptions { compaction: CompactionStrategy::Leveled { sstable_size_in_mb: 1, fanout: 10 }, ..TableOptions::default() })
        .build()
        .unwrap();
    engine.create_table(schema.clone()).unwrap();
    let partitions = 800;
    for chunk in (0..partitions).collect::<Vec<i32>>().chunks(40) {
        let batch: Vec<Mutation> = chunk
            .iter()
            .map(|&pk| {
                let mut b = Mutation::builder(&schema, &[Value::Int(pk)]);
                for ck in 0..4 {
                    let value: Vec<u8> = (0..1000).map(|i| (i * 7 + pk * 13 + ck) as u8).collect();
                    b = b.set(&[Value::Int(ck)], "v", Value::Blob(value.into()), Timestamp(1));
                }
                b.build().unwrap()
            })
            .collect();
        engine.apply_batch(&batch).unwrap();
        if chunk[0] == partitions / 2 {
            flush(&engine, T);
        }
    }
    flush(&engine, T);
    let before = live(&engine, T);
    let report = engine.compact(T).unwrap().unwrap();
    assert_eq!(live(&engine, T), before);
    let target = 1u64 << 20;
    assert!(report.data_out > 3 * target, "{report:?}");
    assert_eq!(report.output_level, 1);
    let stats: Vec<Statistics> = report.outputs.iter().map(|&g| statistics(&fs, g)).collect();
    assert!(stats.len() >= 3, "{:?}", stats.iter().map(|s| s.data_size).collect::<Vec<_>>());
    // The writer checks the size at partition ends, and a block (4 KiB) may still be buffered.
    let slack = 4 * 1100 + 4096;
    for (i, s) in stats.iter().enumerate() {
        assert_eq!(s.level, 1);
        assert_eq!(s.run_id, stats[0].run_id, "one run");
        assert!(s.data_size < target + slack, "output {i}: {} bytes", s.data_size);
        if i + 1 < stats.len() {
            assert!(s.data_size >= target, "output {i} was cut early: {} bytes", s.data_size);
            assert!(s.last_key < stats[i + 1].first_key, "outputs hold disjoint, ordered key ranges");
        }
    }
    assert_eq!(stats.iter().map(|s| s.counts.partitions).sum::<u64>(), partitions as u64);
}

/// A compaction that leaves nothing still keeps the table's flushed position: its manifest record
/// raises the table's replay floor (R3.12), so the reopened engine skips the entries it covered
/// instead of replaying a write whose tombstone it purged.
#[test]
fn r3_12_a_compaction_without_output_keeps_the_flushed_position() {
    let (fs, engine, schema) = engine_with(95, TombstoneGcMode::Immediate, 0);
    put(&engine, &schema, 1, 1, 10);
    delete_partition(&engine, &schema, 1, 20, GcTime(100));
    let only = flush(&engine, "ks.t");
    let report = compact(&engine, "ks.t", &[only], Some(GcTime(1_000)), true);
    assert_eq!((report.stats.tombstones_purged, report.outputs.len()), (1, 0), "{report:?}");
    assert!(engine.sstables("ks.t").unwrap().is_empty());
    drop(engine);
    let engine = open(&fs.crash(CrashMode::DropAll), test_options());
    assert_eq!(engine.open_report().entries_covered_by_sstables, 2, "the write and the delete stay unreplayed");
    assert!(cks(&engine, &schema, 1).is_empty(), "the write must not come back");
}
