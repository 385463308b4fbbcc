//! The peer engines behind `KvPeer`, and the batchlog access pattern on them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure fails the test loudly

use std::ops::ControlFlow;

use talus_bench::peers::batchlog::{run_batchlog_pattern, BatchlogPatternConfig, Layout, PatternError, SPACES};
use talus_bench::peers::{KvPeer, PeerError, PeerKind, PeerOptions};
use talus_bench::progress::Progress;

/// Every key and value of `space` on `peer`, sorted by key (a full scan of Talus goes in token
/// order).
fn all(peer: &dyn KvPeer, space: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let space = peer.space(space).expect("space");
    let mut out = Vec::new();
    peer.scan(space, &[], None, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan");
    out.sort();
    out
}

/// The basic operations on `kind`: put, get, delete, bounded and stopped scans, flush, compact.
fn basic_operations(kind: PeerKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = kind.open(dir.path(), &PeerOptions::with_spaces(&["a", "b"])).expect("open");
    assert_eq!(peer.name(), kind.name());
    let (a, b) = (peer.space("a").expect("a"), peer.space("b").expect("b"));
    assert!(matches!(peer.space("c"), Err(PeerError::UnknownSpace { .. })));
    for i in 0u8..10 {
        peer.put(a, &[i], &[i, i]).expect("put");
    }
    peer.put(b, b"other", b"space").expect("put b");
    assert_eq!(peer.get(a, &[3]).expect("get"), Some(vec![3, 3]));
    assert_eq!(peer.get(b, &[3]).expect("get"), None);
    peer.delete(a, &[3]).expect("delete");
    assert_eq!(peer.get(a, &[3]).expect("get"), None);
    let mut keys = Vec::new();
    let visited = peer
        .scan(a, &[2], Some(&[6]), &mut |k, _| {
            keys.push(k[0]);
            ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!((visited, keys), (3, vec![2, 4, 5]));
    let mut seen = 0;
    let visited = peer.scan(a, &[], None, &mut |_, _| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(visited.expect("stopped scan"), 2);
    peer.flush().expect("flush");
    peer.compact().expect("compact");
    assert_eq!(all(peer.as_ref(), "a").len(), 9);
    assert_eq!(all(peer.as_ref(), "b"), vec![(b"other".to_vec(), b"space".to_vec())]);
    if peer.supports_delete_range() {
        peer.delete_range(a, &[0], &[5]).expect("delete_range");
        assert_eq!(all(peer.as_ref(), "a").iter().map(|(k, _)| k[0]).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
    } else {
        assert!(matches!(peer.delete_range(a, &[0], &[5]), Err(PeerError::Unsupported { .. })));
    }
    assert!(peer.space_bytes(b).expect("table bytes") > 0, "b was flushed");
    assert!(peer.bytes_on_disk().expect("bytes on disk") >= peer.space_bytes(b).expect("table bytes"));
}

#[test]
fn fjall_basic_operations() {
    basic_operations(PeerKind::Fjall);
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_basic_operations() {
    basic_operations(PeerKind::RocksDb);
}

#[test]
fn peer_kinds_parse_and_report_availability() {
    assert_eq!("fjall".parse::<PeerKind>().expect("fjall"), PeerKind::Fjall);
    assert_eq!("RocksDB".parse::<PeerKind>().expect("rocksdb"), PeerKind::RocksDb);
    assert!(matches!("sled".parse::<PeerKind>(), Err(PeerError::Unavailable { .. })));
    assert!(PeerKind::available().contains(&PeerKind::Fjall));
    assert_eq!(PeerKind::RocksDb.compiled(), cfg!(feature = "rocksdb"));
    if !cfg!(feature = "rocksdb") {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(PeerKind::RocksDb.open(dir.path(), &PeerOptions::default()), Err(PeerError::Unavailable { .. })));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for spaces in [&[][..], &["x", "x"], &["bad/name"]] {
        let opened = PeerKind::Fjall.open(dir.path(), &PeerOptions::with_spaces(spaces));
        assert!(matches!(opened, Err(PeerError::Options { .. })), "{spaces:?}");
    }
}

/// Runs `config` on a fresh `kind` peer.
fn run(kind: PeerKind, config: &BatchlogPatternConfig) -> Result<talus_bench::peers::batchlog::BatchlogPatternReport, PatternError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = kind.open(dir.path(), &PeerOptions::with_spaces(&SPACES)).expect("open");
    let progress = Progress::hidden("batchlog", config.batches);
    let report = run_batchlog_pattern(peer.as_ref(), config, &progress)?;
    assert_eq!(progress.position(), config.batches);
    // The user keyspace holds the rows of every batch once (applied directly or by a replay).
    let rows = all(peer.as_ref(), "user").len() as u64;
    if report.live_entries == 0 {
        assert_eq!(rows, config.batches * config.rows_per_batch as u64);
    }
    Ok(report)
}

fn small(layout: Layout) -> BatchlogPatternConfig {
    BatchlogPatternConfig {
        layout,
        batches: 2_000,
        fail_fraction: 0.1,
        replay_every: 250,
        payload_bytes: 64,
        seed: 7,
        ..BatchlogPatternConfig::default()
    }
}

#[test]
fn batchlog_v1_on_fjall_replays_every_failed_batch() {
    let config = small(Layout::V1);
    let report = run(PeerKind::Fjall, &config).expect("pattern");
    assert_eq!(report.engine, "fjall");
    assert_eq!(report.batches, 2_000);
    // About 10% fail; the binomial spread is ±13 at 1σ.
    assert!((120..=280).contains(&report.failed_batches), "{report:?}");
    // Every replay met exactly the failed batches not yet replayed (checked inside), and all of
    // them were replayed by the end.
    assert_eq!(report.replayed_entries, report.failed_batches);
    assert_eq!(report.history_replays, 8);
    assert_eq!((report.live_entries, report.entries_visited, report.dead_entries), (0, 0, 2_000));
    assert_eq!((report.replay_failures, report.range_deletes), (0, 0));
    assert!(report.batchlog_table_bytes < report.bytes_on_disk, "{report:?}");
    assert!(report.bytes_on_disk > 0 && report.replay_seconds >= 0.0 && report.total_seconds > 0.0);
    // Deterministic from the seed.
    let again = run(PeerKind::Fjall, &config).expect("pattern again");
    assert_eq!((again.failed_batches, again.replayed_entries), (report.failed_batches, report.replayed_entries));
}

#[test]
fn batchlog_v1_with_failing_replays_leaves_the_undelivered_entries_live() {
    let config = BatchlogPatternConfig { replay_fail_fraction: 0.5, compact_before_timed_replay: false, ..small(Layout::V1) };
    let report = run(PeerKind::Fjall, &config).expect("pattern");
    assert!(report.replay_failures > 0, "{report:?}");
    // The timed replay met the entries still live, and delivered about half of them.
    assert!(report.entries_visited > 0, "{report:?}");
    assert_eq!(report.replayed_entries + report.live_entries, report.failed_batches, "{report:?}");
    assert_eq!(report.dead_entries, report.batches - report.live_entries);
}

#[test]
fn batchlog_v2_needs_range_deletes() {
    let error = run(PeerKind::Fjall, &small(Layout::V2)).expect_err("fjall has no range delete");
    assert!(matches!(error, PatternError::Config(_)), "{error}");
}

#[cfg(feature = "rocksdb")]
#[test]
fn batchlog_on_rocksdb_in_both_layouts() {
    for layout in [Layout::V1, Layout::V2] {
        let report = run(PeerKind::RocksDb, &small(layout)).expect("pattern");
        assert_eq!(report.replayed_entries, report.failed_batches, "{layout}");
        assert_eq!((report.live_entries, report.entries_visited), (0, 0), "{layout}");
        let shards = if layout == Layout::V2 { 256 * (8 + 1) } else { 0 };
        assert_eq!(report.range_deletes, shards, "{layout}");
    }
    let flaky = BatchlogPatternConfig { replay_fail_fraction: 0.5, ..small(Layout::V2) };
    let report = run(PeerKind::RocksDb, &flaky).expect("flaky v2");
    assert_eq!(report.replayed_entries + report.live_entries, report.failed_batches, "{report:?}");
}

#[test]
fn pattern_config_is_validated_with_errors() {
    let valid = BatchlogPatternConfig::default();
    assert!(valid.validate().is_ok());
    let invalid = [
        BatchlogPatternConfig { fail_fraction: -0.1, ..valid.clone() },
        BatchlogPatternConfig { fail_fraction: 1.5, ..valid.clone() },
        BatchlogPatternConfig { fail_fraction: f64::NAN, ..valid.clone() },
        BatchlogPatternConfig { replay_fail_fraction: 2.0, ..valid.clone() },
        BatchlogPatternConfig { replay_every: 0, ..valid.clone() },
        BatchlogPatternConfig { batches: 0, ..valid.clone() },
        BatchlogPatternConfig { rows_per_batch: 0, ..valid.clone() },
        BatchlogPatternConfig { payload_bytes: 1 << 30, ..valid.clone() },
    ];
    for config in invalid {
        let error = config.validate().expect_err("invalid");
        assert!(matches!(error, PatternError::Config(_)));
        // run_batchlog_pattern refuses it before touching the peer.
        let error = run(PeerKind::Fjall, &config).expect_err("refused");
        assert!(error.to_string().contains("must be"), "{error}");
    }
    assert_eq!("v2".parse::<Layout>().expect("v2"), Layout::V2);
    assert!("v3".parse::<Layout>().is_err());
}

/// A sample run for the record, not part of the suite:
/// `TALUS_PATTERN="fjall v1 10000" cargo test -p talus-bench --test peers -- --ignored --nocapture`
/// (peer, layout, batches, then `nocompact` to skip the compaction before the timed replay; the
/// other fields are the defaults). Prints the report as JSON.
#[test]
#[ignore = "a measurement, run by hand"]
fn batchlog_pattern_sample() {
    let spec = std::env::var("TALUS_PATTERN").unwrap_or_else(|_| "fjall v1 10000".into());
    let words: Vec<&str> = spec.split_whitespace().collect();
    let [kind, layout, batches, ref options @ ..] = words[..] else {
        panic!("TALUS_PATTERN is 'peer layout batches [nocompact]', not {spec:?}")
    };
    let kind: PeerKind = kind.parse().unwrap();
    let config = BatchlogPatternConfig {
        layout: layout.parse().unwrap(),
        batches: batches.parse().unwrap(),
        compact_before_timed_replay: !options.contains(&"nocompact"),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let peer = kind.open(dir.path(), &PeerOptions::with_spaces(&SPACES)).unwrap();
    let progress = Progress::new(format!("{kind} {layout} {batches}"), config.batches);
    let report = run_batchlog_pattern(peer.as_ref(), &config, &progress).unwrap();
    progress.finish();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Some(keep) = std::env::var_os("TALUS_PATTERN_LIST") {
        let listing = std::process::Command::new("du").arg("-ab").arg(dir.path()).output().unwrap();
        std::fs::write(keep, listing.stdout).unwrap();
    }
}

#[test]
fn talus_wide_basic_operations() {
    basic_operations(PeerKind::TalusWide);
}

/// The key-value shape has no key order: full scans and seeks go by token, bounded scans and
/// range deletes are refused.
#[test]
fn talus_key_value_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = PeerKind::Talus.open(dir.path(), &PeerOptions::with_spaces(&["a"])).expect("open");
    let a = peer.space("a").expect("a");
    for i in 0u8..20 {
        peer.put(a, &[i], &[i, 1]).expect("put");
    }
    peer.put(a, &[3], b"new").expect("overwrite");
    assert_eq!(peer.get(a, &[3]).expect("get"), Some(b"new".to_vec()));
    peer.delete(a, &[4]).expect("delete");
    assert_eq!(peer.get(a, &[4]).expect("get"), None);
    peer.flush().expect("flush");
    let mut keys: Vec<u8> = all(peer.as_ref(), "a").into_iter().map(|(k, _)| k[0]).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0u8..20).filter(|&i| i != 4).collect::<Vec<_>>());
    let mut seen = Vec::new();
    let visited = peer
        .seek(a, &[7], 5, &mut |k, _| {
            seen.push(k[0]);
            ControlFlow::Continue(())
        })
        .expect("seek");
    assert_eq!((visited, seen.len(), seen.first()), (5, 5, Some(&7)), "the seek starts at the key's own partition");
    assert!(!peer.supports_delete_range());
    assert!(matches!(peer.delete_range(a, &[0], &[5]), Err(PeerError::Unsupported { .. })));
    assert!(matches!(peer.scan(a, &[2], Some(&[6]), &mut |_, _| ControlFlow::Continue(())), Err(PeerError::Unsupported { .. })));
    peer.compact().expect("compact");
    assert!(peer.space_bytes(a).expect("table bytes") > 0);
    assert_eq!(all(peer.as_ref(), "a").len(), 19);
}

/// The wide shape keeps key order across its partitions: bounded scans and seeks cross them.
#[test]
fn talus_wide_scans_and_seeks_in_key_order_across_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = PeerKind::TalusWide.open(dir.path(), &PeerOptions::default()).expect("open");
    let space = peer.space("default").expect("space");
    let keys: Vec<Vec<u8>> = (0..2_000u64).map(talus_bench::key).collect();
    for key in &keys {
        peer.put(space, key, b"v").expect("put");
    }
    let mut sorted = keys.clone();
    sorted.sort();
    let (start, end) = (&sorted[100], &sorted[1_500]);
    let mut seen = Vec::new();
    peer.scan(space, start, Some(end), &mut |k, _| {
        seen.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .expect("scan");
    assert_eq!(seen, sorted[100..1_500].to_vec());
    let mut seen = Vec::new();
    peer.seek(space, &sorted[1_995], 10, &mut |k, _| {
        seen.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .expect("seek");
    assert_eq!(seen, sorted[1_995..].to_vec(), "a seek near the end returns what is left");
    peer.delete_range(space, start, end).expect("delete_range");
    assert_eq!(all(peer.as_ref(), "default").len(), 2_000 - 1_400);
}

#[test]
fn batchlog_on_talus_in_both_shapes() {
    let report = run(PeerKind::Talus, &small(Layout::V1)).expect("v1 on talus");
    assert_eq!(report.replayed_entries, report.failed_batches);
    assert!(matches!(run(PeerKind::Talus, &small(Layout::V2)), Err(PatternError::Config(_))), "v2 needs range deletes");
    for layout in [Layout::V1, Layout::V2] {
        let report = run(PeerKind::TalusWide, &small(layout)).expect("pattern");
        assert_eq!(report.replayed_entries, report.failed_batches, "{layout}");
        assert_eq!((report.live_entries, report.entries_visited), (0, 0), "{layout}");
        let shards = if layout == Layout::V2 { 256 * (8 + 1) } else { 0 };
        assert_eq!(report.range_deletes, shards, "{layout}");
    }
}

/// Every compression setting opens and reads back, on Talus and fjall.
#[test]
fn compression_settings_round_trip() {
    use talus_bench::peers::Compression;
    for compression in [Compression::Zstd, Compression::Lz4, Compression::None] {
        for kind in [PeerKind::Talus, PeerKind::TalusWide, PeerKind::Fjall] {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = PeerOptions { compression, ..PeerOptions::default() };
            let peer = kind.open(dir.path(), &options).expect("open");
            let space = peer.space("default").expect("space");
            for i in 0..500u64 {
                peer.put(space, &talus_bench::key(i), &talus_bench::value(i, 100)).expect("put");
            }
            peer.flush().expect("flush");
            assert_eq!(peer.get(space, &talus_bench::key(7)).expect("get"), Some(talus_bench::value(7, 100)), "{kind} {compression}");
            assert_eq!(all(peer.as_ref(), "default").len(), 500, "{kind} {compression}");
        }
    }
    assert_eq!("LZ4".parse::<Compression>().expect("lz4"), Compression::Lz4);
    assert!("snappy".parse::<Compression>().is_err());
}
