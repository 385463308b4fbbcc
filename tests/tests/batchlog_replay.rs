//! Batchlog replay, ported from ScyllaDB's `batchlog_manager_test.cc` (A12; C1 tests T1–T3) plus
//! the v1 → v2 migration (A11): which entries a replay delivers, deletes, moves or keeps, and the
//! exact shape of the cleanup range tombstones.

#![allow(clippy::unwrap_used, clippy::panic)] // test setup: a failure should fail the test loudly

use std::time::Duration;

use talus::batchlog::tables::Stage;
use talus::batchlog::{BatchlogLayout, BatchlogOptions};
use talus::format::schema::{TableOptions, TombstoneGcMode};
use talus::format::{Fragment, Position, RangeBound, Value};
use talus_tests::batchlog::{count, Fixture};

fn options(replay_timeout: Duration) -> BatchlogOptions {
    // Replays are driven by hand, as the ScyllaDB tests do with a 9999h loop delay (A12).
    BatchlogOptions { replay_timeout, replay_rate_bytes_per_sec: None, ..BatchlogOptions::default() }
}

/// The cleanup tombstones of the initial partitions: `(shard, [start, end] positions)`, checking
/// that each partition has none or exactly one opening and one closing change (A12).
fn cleanup_tombstones(f: &Fixture) -> Vec<(u8, Position, Position)> {
    let mut out = Vec::new();
    for (shard, sources) in f.fragments(Stage::Initial).unwrap() {
        let changes: Vec<Position> = sources
            .iter()
            .flat_map(|s| &s.fragments)
            .filter_map(|fr| match fr {
                Fragment::RangeTombstoneChange(c) => Some(c.position.clone()),
                _ => None,
            })
            .collect();
        match changes.as_slice() {
            [] => {}
            [start, end] => out.push((shard, start.clone(), end.clone())),
            other => panic!("shard {shard}: {} range tombstone changes, want 0 or 2", other.len()),
        }
    }
    out
}

/// The end position of a cleanup tombstone that includes every batch of `written_at_ms`.
fn inclusive_end(f: &Fixture, written_at_ms: i64) -> Position {
    let schema = f.batchlog.schema(BatchlogLayout::V2);
    schema.range_positions(&RangeBound::Unbounded, &RangeBound::Inclusive(vec![Value::Timestamp(written_at_ms)])).unwrap().1
}

/// T1 (`run_batchlog_cleanup_with_failed_batches_test`): 8 batches, batch i holding i+2 inserts,
/// the odd ones failing to apply so 4 entries stay live; then one replay, failing or not, with or
/// without cleanup.
fn t1_cleanup_with_failed_batches(replay_fails: bool, cleanup: bool) {
    let f = Fixture::new(1, options(Duration::ZERO), TableOptions::default()).unwrap();
    for i in 0..8 {
        let batch = f.inserts(&f.tbl1, i, i + 2).unwrap();
        f.replayer.set_failing(i % 2 == 1); // storage_proxy_fail_send_batch on odd batches
        f.batchlog.mutate_logged(&batch).unwrap();
        f.advance(Duration::from_millis(1));
    }
    assert_eq!(f.live(Stage::Initial).unwrap(), 4);
    let before: Vec<_> = f.fragments(Stage::Initial).unwrap();
    assert_eq!(before.iter().map(|(_, s)| count(s).rows).sum::<u64>(), 8);
    assert!(before.iter().flat_map(|(_, s)| s).all(|s| s.source == "memtable:0"));

    f.replayer.set_failing(replay_fails);
    let report = f.batchlog.replay(cleanup).unwrap();
    assert_eq!(report.all_replayed, !replay_fails);
    let live = f.live(Stage::Initial).unwrap() + f.live(Stage::FailedReplay).unwrap();
    assert_eq!(live, if replay_fails { 4 } else { 0 });
    for i in (1..8).step_by(2) {
        assert_eq!(f.applied(&f.tbl1, i).unwrap(), !replay_fails, "batch {i}");
    }

    let initial = f.fragments(Stage::Initial).unwrap();
    let initial_rows: u64 = initial.iter().map(|(_, s)| count(s).rows).sum();
    let tombstones = cleanup_tombstones(&f);
    let failed = f.fragments(Stage::FailedReplay).unwrap();
    if cleanup {
        assert!(initial.iter().all(|(_, s)| count(s).live_rows == 0), "every initial fragment is dead");
        assert!(initial_rows <= 8);
        // One tombstone per shard that held entries, from before all rows to the replay's bound
        // inclusive (`after_all_prefixed` of a 1-component key).
        assert!(!tombstones.is_empty());
        for (shard, start, end) in &tombstones {
            assert_eq!(*start, Position::before_all_rows(), "shard {shard}");
            assert_eq!(*end, inclusive_end(&f, report.scan_bound_ms), "shard {shard}");
        }
        assert_eq!(f.live(Stage::FailedReplay).unwrap(), if replay_fails { 4 } else { 0 });
        assert!(failed.iter().all(|(_, s)| count(s).range_tombstone_changes == 0), "never an RT in failed_replay (I3)");
        assert_eq!(report.batches_moved, if replay_fails { 4 } else { 0 });
    } else {
        assert!(tombstones.is_empty());
        assert!(failed.is_empty());
        assert_eq!(initial_rows, 8);
        assert_eq!(f.live(Stage::Initial).unwrap(), if replay_fails { 4 } else { 0 });
    }
}

#[test]
fn t1_cleanup_replay_ok() {
    t1_cleanup_with_failed_batches(false, true);
}

#[test]
fn t1_cleanup_replay_fails() {
    t1_cleanup_with_failed_batches(true, true);
}

#[test]
fn t1_no_cleanup_replay_ok() {
    t1_cleanup_with_failed_batches(false, false);
}

#[test]
fn t1_no_cleanup_replay_fails() {
    t1_cleanup_with_failed_batches(true, false);
}

/// T2 (`test_batchlog_replay_stage`): every batch fails; replays without cleanup leave them in
/// initial, replays with cleanup move them to failed_replay, a successful replay empties both.
#[test]
fn t2_replay_stage() {
    let f = Fixture::new(2, options(Duration::ZERO), TableOptions::default()).unwrap();
    f.replayer.set_failing(true);
    for i in 0..8 {
        f.batchlog.mutate_logged(&f.inserts(&f.tbl1, i, 2).unwrap()).unwrap();
        f.advance(Duration::from_millis(1));
    }
    let all_fragments = |f: &Fixture| -> (u64, u64) {
        let mut rows = 0;
        let mut changes = 0;
        for stage in [Stage::Initial, Stage::FailedReplay] {
            for (_, s) in f.fragments(stage).unwrap() {
                rows += count(&s).rows;
                changes += count(&s).range_tombstone_changes;
            }
        }
        (rows, changes)
    };
    for _ in 0..3 {
        assert!(!f.batchlog.replay(false).unwrap().all_replayed);
        assert_eq!(f.live(Stage::Initial).unwrap(), 8);
        assert_eq!(f.live(Stage::FailedReplay).unwrap(), 0);
        assert_eq!(all_fragments(&f), (8, 0), "rows only");
    }
    for _ in 0..3 {
        f.batchlog.replay(true).unwrap();
        assert_eq!(f.live(Stage::Initial).unwrap(), 0);
        assert_eq!(f.live(Stage::FailedReplay).unwrap(), 8);
        let (rows, changes) = all_fragments(&f);
        assert!(8 < rows + changes && rows + changes <= 256 * 2 + 8 * 2, "{rows} rows + {changes} changes");
    }
    assert_eq!(f.batchlog.metrics().batches_moved, 8, "moved once, then failed in place");
    f.replayer.set_failing(false);
    let report = f.batchlog.replay(false).unwrap();
    assert!(report.all_replayed);
    assert_eq!(report.batches_replayed, 8);
    assert_eq!(f.live(Stage::Initial).unwrap() + f.live(Stage::FailedReplay).unwrap(), 0);
    for i in 0..8 {
        assert!(f.applied(&f.tbl1, i).unwrap());
    }
    for (_, s) in f.fragments(Stage::FailedReplay).unwrap() {
        assert_eq!(count(&s).range_tombstone_changes, 0, "every range tombstone change is in initial (I3)");
        assert_eq!(count(&s).live_rows, 0);
    }
}

/// T3 (`test_batchlog_replay_write_time`): the per-batch timeout is min(replay timeout,
/// propagation delay of its repair-mode tables): after 2 s only the batches touching the
/// repair-mode table are old enough; with cleanup the tombstone ends before the oldest too-fresh
/// batch of its shard (I2).
#[test]
fn t3_replay_write_time() {
    let repair = TableOptions { tombstone_gc: TombstoneGcMode::Repair { propagation_delay_seconds: 1 }, ..TableOptions::default() };
    let f = Fixture::new(3, options(Duration::from_secs(3600)), repair).unwrap();
    f.replayer.set_failing(true);
    for i in 0..8 {
        let mut batch = f.inserts(&f.tbl2, i, 1).unwrap();
        if i % 2 == 1 {
            batch.extend(f.inserts(&f.tbl1, i, 1).unwrap());
        } else {
            batch.extend(f.inserts(&f.tbl2, i + 100, 1).unwrap());
        }
        f.batchlog.mutate_logged(&batch).unwrap();
        f.advance(Duration::from_millis(1));
    }
    f.advance(Duration::from_secs(2));
    let first = f.batchlog.replay(false).unwrap();
    assert_eq!(first.write_attempts, 4 * 2, "only the 4 batches with tbl1 are old enough");
    assert_eq!(first.batches_too_fresh, 4);
    assert_eq!(f.live(Stage::Initial).unwrap(), 8);

    let second = f.batchlog.replay(true).unwrap();
    assert_eq!(f.batchlog.metrics().write_attempts, 16);
    assert_eq!(second.batches_moved, 4);
    assert_eq!(f.live(Stage::Initial).unwrap(), 4);
    assert_eq!(f.live(Stage::FailedReplay).unwrap(), 4);
    for (shard, sources) in f.fragments(Stage::Initial).unwrap() {
        let live_positions: Vec<Position> = sources
            .iter()
            .flat_map(|s| &s.fragments)
            .filter_map(|fr| match fr {
                Fragment::Row { key, row } if row.tombstone.is_none() => Some(Position::at_row(key.clone())),
                _ => None,
            })
            .collect();
        let changes = count(&sources).range_tombstone_changes;
        assert!(changes == 0 || changes == 2, "shard {shard}: {changes}");
        if let (Some(smallest), Some((_, _, end))) =
            (live_positions.iter().min(), cleanup_tombstones(&f).iter().find(|(s, _, _)| *s == shard))
        {
            assert!(end < smallest, "shard {shard}: the tombstone ends before the oldest live entry (I2)");
        }
    }
    // The scan read nothing above its bound: now - min(1h, 1s).
    assert_eq!(second.scan_bound_ms, second.now_ms - 1000);
}

/// A12 `test_execute_batch`: an old batch is delivered by a replay.
#[test]
fn execute_batch() {
    let f = Fixture::new(4, options(Duration::from_secs(4)), TableOptions::default()).unwrap();
    let handle = f.batchlog.write(&f.inserts(&f.tbl1, 7, 1).unwrap()).unwrap();
    assert_eq!(f.live(Stage::Initial).unwrap(), 1);
    assert!(!f.applied(&f.tbl1, 7).unwrap());
    f.advance(Duration::from_secs(3 * 3600));
    let report = f.batchlog.replay(true).unwrap();
    assert_eq!(report.batches_replayed, 1);
    assert!(f.applied(&f.tbl1, 7).unwrap());
    assert_eq!(*f.replayer.delivered.lock(), vec![handle.id]);
}

/// A11: v1 entries of the current version move to the v2 failed_replay stage with the same id,
/// written_at and data, and leave v1 empty; the next replay delivers them.
#[test]
fn a11_migrate_v1_to_v2() {
    let v1 = BatchlogOptions { layout: BatchlogLayout::V1, ..options(Duration::from_secs(1)) };
    let f = Fixture::new(5, v1, TableOptions::default()).unwrap();
    f.replayer.set_failing(true);
    let mut handles = Vec::new();
    for i in 0..8 {
        handles.push(f.batchlog.mutate_logged(&f.inserts(&f.tbl1, i, 1).unwrap()).unwrap().handle);
    }
    f.advance(Duration::from_secs(10));
    let v1_replay = f.batchlog.replay(true).unwrap();
    assert_eq!(v1_replay.batches_failed, 8, "v1 keeps failures in place whatever the cleanup flag");

    let v2 = Fixture::attach(f.engine.clone(), options(Duration::from_secs(1)), f.clock.clone(), f.tbl1.clone(), f.tbl2.clone()).unwrap();
    v2.replayer.set_failing(true);
    let report = v2.batchlog.replay(true).unwrap();
    assert_eq!(report.migrated, 8);
    assert_eq!(v2.live(Stage::FailedReplay).unwrap(), 8);
    assert_eq!(f.engine.query(&talus::scan_all("system.batchlog")).unwrap().stats.live_rows, 0, "v1 is empty");
    let schema = v2.batchlog.schema(BatchlogLayout::V2).clone();
    for h in &handles {
        let key = schema
            .decorated_key(&talus::batchlog::tables::v2_partition(Stage::FailedReplay, talus::batchlog::tables::shard_of(h.written_at_ms)))
            .unwrap();
        let sources = v2.engine.mutation_fragments("system.batchlog_v2", &key).unwrap();
        let found = sources.iter().flat_map(|s| &s.fragments).any(|fr| match fr {
            Fragment::Row { key, .. } => {
                schema.decode_clustering(key).unwrap() == vec![Value::Timestamp(h.written_at_ms), Value::Uuid(h.id)]
            }
            _ => false,
        });
        assert!(found, "entry {:?} kept its written_at and id", h.id);
    }
    v2.replayer.set_failing(false);
    let last = v2.batchlog.replay(true).unwrap();
    assert_eq!(last.batches_replayed, 8);
    assert_eq!(v2.live(Stage::FailedReplay).unwrap(), 0);
    for i in 0..8 {
        assert!(v2.applied(&v2.tbl1, i).unwrap());
    }
}
