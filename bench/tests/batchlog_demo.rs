//! The batchlog demo's Talus runs (the main job, `talus batchlog-demo`) on a small history: both
//! layouts account for every batch, v1's timed replay reads every dead entry's tombstone (the
//! idle table keeps them, A1), and v2's reads what its cleanup tombstones left: a tenth or less.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use talus_bench::batchlog_demo::{run_talus, DemoRecord};
use talus_bench::peers::batchlog::{BatchlogPatternConfig, Layout};
use talus_bench::progress::Progress;

/// Batches of the history: three replays with cleanup during it.
const BATCHES: u64 = 6_000;

fn run(layout: Layout) -> DemoRecord {
    let dir = tempfile::tempdir().unwrap();
    let config = BatchlogPatternConfig {
        layout,
        batches: BATCHES,
        replay_every: 2_000,
        replay_fail_fraction: 0.01,
        payload_bytes: 100,
        rows_per_batch: 2,
        ..BatchlogPatternConfig::default()
    };
    run_talus(dir.path(), &config, true, &Progress::hidden("demo", BATCHES)).unwrap()
}

#[test]
fn demo_v2_replay_reads_a_tenth_of_what_v1_reads() {
    let (v1, v2) = (run(Layout::V1), run(Layout::V2));
    for r in [&v1, &v2] {
        assert_eq!(r.batches, BATCHES);
        assert_eq!(r.dead_entries + r.live_entries, BATCHES, "{r:?}");
        assert!(r.dead_entries > BATCHES / 2, "most batches were applied and deleted: {r:?}");
        assert!(r.sstables >= 1 && r.bytes_on_disk > 0, "{r:?}");
        assert_eq!(r.history_replays, 3);
    }
    assert!(v1.tombstones_visited >= v1.dead_entries, "v1 reads every tombstone: {v1:?}");
    assert!(v2.entries_visited + v2.tombstones_visited <= v1.tombstones_visited / 10, "v2 reads what cleanup left: {v2:?}");
    assert!(v2.cleanup_tombstones > 0, "{v2:?}");
}

/// The chart has one series per peer and layout, however the runs interleave them.
#[test]
fn demo_chart_has_one_series_per_peer_and_layout() {
    use talus_bench::batchlog_demo::DemoOutcome;
    use talus_bench::peers::batchlog::{run_batchlog_pattern, SPACES};
    use talus_bench::peers::{PeerKind, PeerOptions};

    let dir = tempfile::tempdir().unwrap();
    let peer = PeerKind::Fjall.open(dir.path(), &PeerOptions::with_spaces(&SPACES)).unwrap();
    let config = BatchlogPatternConfig { batches: 200, replay_every: 100, ..BatchlogPatternConfig::default() };
    let small = run_batchlog_pattern(peer.as_ref(), &config, &Progress::hidden("fjall", 200)).unwrap();
    // As the demo records them: per size, every peer and layout in turn.
    let other = |batches| talus_bench::peers::batchlog::BatchlogPatternReport {
        engine: "other".into(),
        layout: Layout::V2,
        batches,
        dead_entries: batches,
        ..small.clone()
    };
    let large = talus_bench::peers::batchlog::BatchlogPatternReport { batches: 400, dead_entries: 400, ..small.clone() };
    let outcome = DemoOutcome { talus: Vec::new(), peers: vec![small.clone(), other(200), large, other(400)] };
    let chart = outcome.chart();
    let peers: Vec<(&str, usize)> = chart.series.iter().skip(2).map(|s| (s.name.as_str(), s.points.len())).collect();
    assert_eq!(peers, [("fjall v1", 2), ("other v2", 2)]);
}
