//! What a v2 replay costs after cleanup (C1 T5), the cleanup of shards holding only dead entries
//! (gap I7), block skipping under the cleanup tombstone, and the clock-skew guard (T6).

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use std::time::Duration;

use talus::batchlog::tables::{Stage, SHARDS};
use talus::batchlog::{BatchlogLayout, BatchlogOptions, ReplayReport};
use talus::format::schema::TableOptions;
use talus_tests::batchlog::{count, Fixture};

fn options(layout: BatchlogLayout) -> BatchlogOptions {
    BatchlogOptions { layout, replay_rate_bytes_per_sec: None, ..BatchlogOptions::default() }
}

/// `m` batches written, applied and deleted by the normal write path (no failure), 1 ms apart,
/// with `live` more left behind (their application failed), then the clock 10 s later.
fn history(layout: BatchlogLayout, m: i32, live: i32) -> Fixture {
    let f = Fixture::new(10, options(layout), TableOptions::default()).unwrap();
    for i in 0..m + live {
        f.replayer.set_failing(i >= m);
        f.batchlog.mutate_logged(&f.inserts(&f.tbl1, i, 1).unwrap()).unwrap();
        f.advance(Duration::from_millis(1));
    }
    f.replayer.set_failing(false);
    f.advance(Duration::from_secs(10));
    f
}

fn flush_and_compact(f: &Fixture, table: &str) {
    f.engine.flush(table).unwrap();
    f.engine.compact(table).unwrap();
}

/// T5: after M ≫ 256 successful batches, one cleanup replay and a compaction, a replay visits at
/// most one range tombstone per shard plus the live entries; v1 visits every dead batch whose
/// tombstone was not purged.
#[test]
fn t5_v2_scan_cost_follows_live_entries_not_history() {
    let m = 5_000;
    let f = history(BatchlogLayout::V2, m, 0);
    f.engine.flush("system.batchlog_v2").unwrap();
    let cleanup = f.batchlog.replay(true).unwrap();
    assert_eq!(cleanup.tombstones_visited, m as u64, "before cleanup every row tombstone is read");
    assert!(cleanup.cleanup_tombstones as usize <= SHARDS && cleanup.cleanup_tombstones > 0);
    flush_and_compact(&f, "system.batchlog_v2");
    let after = f.batchlog.replay(true).unwrap();
    assert_eq!(after.live_entries, 0);
    assert!(after.tombstones_visited <= SHARDS as u64, "{after:?}");
    assert_eq!(after.entries_visited, 0, "compaction dropped every row under the cleanup tombstones");

    // v1 over the same history, flushed but not compacted: here a compaction would purge its
    // partition tombstones (gc_grace_seconds 0, and the test clock's deletion times are older
    // than anything the commitlog barrier holds), which the barrier prevents on a busy node (A3).
    let v1 = history(BatchlogLayout::V1, m, 0);
    v1.engine.flush("system.batchlog").unwrap();
    let v1_replay = v1.batchlog.replay(true).unwrap();
    assert!(v1_replay.tombstones_visited + v1_replay.entries_visited >= m as u64, "v1 reads its history: {v1_replay:?}");
}

/// Gap I7: ScyllaDB writes a shard's cleanup tombstone only when the replay itself deleted or
/// moved an entry there, so dead entries of the normal write path wait for tombstone GC. Here a
/// shard with entries written since its last cleanup gets its tombstone even when all of them
/// are dead, and the next replay reads no row.
#[test]
fn i7_cleanup_tombstone_for_shards_with_only_dead_entries() {
    let f = history(BatchlogLayout::V2, 300, 0);
    let report = f.batchlog.replay(true).unwrap();
    assert_eq!(report.live_entries, 0);
    assert_eq!(report.batches_replayed, 0, "nothing was replayed");
    let touched = f.fragments(Stage::Initial).unwrap().len() as u64;
    assert_eq!(report.cleanup_tombstones, touched, "every shard holding dead entries is cleaned");
    let next = f.batchlog.replay(true).unwrap();
    assert_eq!(next.cleanup_tombstones, 0, "no shard got entries since");
    // A batchlog opened anew reads every partition whole once: nothing is left under the
    // tombstones, the memtable dropped the rows and row tombstones they cover.
    let reopened = Fixture::attach(f.engine.clone(), options(BatchlogLayout::V2), f.clock.clone(), f.tbl1.clone(), f.tbl2.clone()).unwrap();
    let whole = reopened.batchlog.replay(false).unwrap();
    assert_eq!(whole.entries_visited, 0, "{whole:?}");
    assert_eq!(whole.tombstones_visited, touched, "one range tombstone change per cleaned shard: {whole:?}");
}

/// The read path skips the sstable blocks of a shard partition wholly under its cleanup
/// tombstone, so a replay does not read the dead history even before compaction.
///
/// And a replay reads only the partitions that may hold live entries: once cleaned up, nothing.
#[test]
fn cleanup_tombstone_lets_the_scan_skip_blocks() {
    let f = history(BatchlogLayout::V2, 20_000, 0);
    f.engine.flush("system.batchlog_v2").unwrap();
    let first: ReplayReport = f.batchlog.replay(true).unwrap();
    assert_eq!(first.blocks_skipped, 0);
    // The tombstones are in the memtable; the history in an sstable. A batchlog opened anew
    // (after a restart) knows nothing of its partitions and reads every one once.
    let reopened = Fixture::attach(f.engine.clone(), options(BatchlogLayout::V2), f.clock.clone(), f.tbl1.clone(), f.tbl2.clone()).unwrap();
    let second = reopened.batchlog.replay(true).unwrap();
    assert!(second.blocks_skipped > 0, "{second:?}");
    assert!(second.tombstones_visited < first.tombstones_visited / 4, "{} vs {}", second.tombstones_visited, first.tombstones_visited);
    let third = f.batchlog.replay(true).unwrap();
    assert_eq!((third.entries_visited, third.tombstones_visited), (0, 0), "no partition may hold a live entry: none is read");
}

/// T6: a batch stamped at or below the last cleanup bound (a coordinator clock behind) is
/// re-stamped just above it instead of being born dead under the tombstone, and is replayed.
#[test]
fn t6_batch_below_the_cleanup_bound_is_restamped() {
    let f = history(BatchlogLayout::V2, 100, 0);
    let report = f.batchlog.replay(true).unwrap();
    assert!(report.cleanup_tombstones > 0);
    let behind = report.scan_bound_ms - 5_000;
    let batch = f.inserts(&f.tbl2, 1, 1).unwrap();
    let handle = f.batchlog.write_at(behind, [7; 16], &batch).unwrap();
    assert_eq!(handle.written_at_ms, report.scan_bound_ms + 1);
    assert_eq!(f.live(Stage::Initial).unwrap(), 1, "the entry is live, not shadowed");
    f.advance(Duration::from_secs(60));
    let replayed = f.batchlog.replay(true).unwrap();
    assert_eq!(replayed.batches_replayed, 1);
    assert!(f.applied(&f.tbl2, 1).unwrap());
    for (_, sources) in f.fragments(Stage::Initial).unwrap() {
        assert_eq!(count(&sources).live_rows, 0);
    }
}
