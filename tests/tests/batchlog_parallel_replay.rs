//! A8 step 5: a v2 replay reads its 16 chunks of 16 shards several at once. Over the same
//! history, a replay on four threads does exactly what a replay on the caller's thread does:
//! the same report, every batch delivered once, every entry deleted, and the shards' marks left
//! so that the next replay reads nothing.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use std::time::Duration;

use talus::batchlog::tables::Stage;
use talus::batchlog::{BatchlogLayout, BatchlogOptions, ReplayReport};
use talus_tests::batchlog::Fixture;

/// Batches logged: one per millisecond, so they spread over every shard.
const BATCHES: i32 = 600;

fn options(replay_parallelism: usize) -> BatchlogOptions {
    BatchlogOptions {
        layout: BatchlogLayout::V2,
        replay_timeout: Duration::ZERO,
        replay_rate_bytes_per_sec: None,
        // Small pages so that workers cross page boundaries.
        page_size: 4,
        replay_parallelism,
        ..BatchlogOptions::default()
    }
}

/// The report without its wall time.
fn comparable(mut report: ReplayReport) -> ReplayReport {
    report.elapsed = Duration::ZERO;
    report
}

/// Logs [`BATCHES`] batches that all fail to apply, moves them to failed_replay with a failing
/// replay, then replays them successfully; returns both reports and the fixture.
fn history(replay_parallelism: usize) -> (ReplayReport, ReplayReport, Fixture) {
    let f = Fixture::new(3, options(replay_parallelism), Default::default()).unwrap();
    f.replayer.set_failing(true);
    for pk in 0..BATCHES {
        let batch = f.inserts(&f.tbl1, pk, 2).unwrap();
        assert!(f.batchlog.mutate_logged(&batch).unwrap().apply_error.is_some());
        f.advance(Duration::from_millis(1));
    }
    let moved = f.batchlog.replay(true).unwrap();
    f.replayer.set_failing(false);
    let delivered = f.batchlog.replay(true).unwrap();
    (comparable(moved), comparable(delivered), f)
}

#[test]
fn a8_parallel_replay_does_what_a_sequential_one_does() {
    let (moved_1, delivered_1, sequential) = history(1);
    let (moved_4, delivered_4, parallel) = history(4);

    assert_eq!(moved_1.batches_moved, BATCHES as u64);
    assert_eq!(delivered_1.batches_replayed, BATCHES as u64);
    assert_eq!(moved_4, moved_1, "the failing replay with cleanup");
    assert_eq!(delivered_4, delivered_1, "the delivering replay");
    assert_eq!(sequential.replayer.threads.lock().len(), 1);
    assert!(parallel.replayer.threads.lock().len() > 1, "the parallel replays used helper threads");

    for f in [&sequential, &parallel] {
        let mut ids = f.replayer.delivered.lock().clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), BATCHES as usize, "every batch delivered exactly once");
        assert_eq!(f.replayer.delivered.lock().len(), BATCHES as usize);
        assert_eq!(f.live(Stage::Initial).unwrap() + f.live(Stage::FailedReplay).unwrap(), 0);
        let rows = f.user_rows().unwrap();
        assert_eq!(rows.len(), BATCHES as usize);
        assert!(rows.iter().all(|(pk, row)| row.len() == 2 && row.values().all(|v| v == pk)));
        let next = f.batchlog.replay(true).unwrap();
        assert_eq!((next.entries_visited, next.live_entries), (0, 0), "the marks say every shard is clean");
    }
}
