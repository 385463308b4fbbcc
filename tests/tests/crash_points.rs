//! Enumerated crash points (reliability-testing §2.3 stage 3; bug classes 2, 6, 8, 9): each
//! scripted workload runs once to count its mutating file operations, then once per operation k
//! with a power loss at the k-th, under "drop all unsynced", "keep all" and three odds of random tearing. After
//! each crash the engine reopens on what the power loss left and the checker asserts P1 (every
//! acknowledged-durable write survives), P2 (no holes), crash-atomic batches and P6 (no
//! acknowledgement after a failed write). Every seventh crash point also crashes again during
//! recovery and checks the same promises after a second reopen.
//!
//! Thread 0 of every workload flushes both tables every few writes, so crash points also fall
//! inside sstable writes and manifest edits (P5: after the crash the old set of sstables or the new
//! one, never a half state; at least 2,000 such points are asserted).
//!
//! The `compaction_heavy` scenario (bug classes 3–5) is single-threaded: writes, overwrites and
//! cell, row, range and partition deletions in two tables (`tombstone_gc` immediate, and timeout
//! with grace 0), flushes, and compactions — subsets while live commitlog segments hold the
//! barrier, subsets and majors after a rotation lifts it, so tombstones are purged where the
//! overlap check allows — with writes after them. After each crash the reopened engine must
//! hold exactly the acknowledged state (the oracle's after the acknowledged writes, or one more
//! if a write was in flight): no row lost, none resurrected, none wrong (P1, P3); and a
//! consistent file set (P5: nothing quarantined, no unnamed file, every named sstable verifies).
//! At least 1,000 of its crash points interrupt a compaction (asserted).
//!
//! Report: `target/reports/crash_points.json`. Scale with `TALUS_CRASH_SCALE` (default 3; the
//! workloads grow linearly, and the number of crash points with them).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};
use talus::commitlog::Durability;
use talus::fs::{CrashMode, Fs, SimFs};
use talus_tests::durability::{run, run_compaction, verify, verify_compaction, CompactionWorkload, Verdict, Workload};
use talus_tests::report::{write_report, Counters};

const DIR: &str = "/db";

fn scale() -> u64 {
    std::env::var("TALUS_CRASH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1)
}

/// Whether a crash at an operation on `path` interrupted a flush or a manifest edit.
fn in_flush_or_manifest(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "sst") || path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST"))
}

/// Runs every crash point of `workload` under every mode; returns the counters and how many crash
/// points interrupted a flush (sstable file writes, syncs, directory syncs) or a manifest edit.
fn enumerate(name: &str, workload: &Workload) -> (Counters, u64) {
    let dry = SimFs::new(0);
    let outcome = run(Arc::new(dry.clone()), Path::new(DIR), workload);
    assert!(outcome.first_error.is_none(), "{name}: the dry run failed: {:?}", outcome.first_error);
    let ops = dry.mutating_ops();
    let mut counters = Counters::default();
    let mut flush_and_manifest = 0;
    let started = Instant::now();
    for_each_crash_point(ops, &mut counters, |point, counters| {
        let outcome = run(Arc::new(point.fs.clone()), Path::new(DIR), workload);
        let crashed = point.fs.crashed()?;
        flush_and_manifest += u64::from(point.fs.crashed_during().is_some_and(|p| in_flush_or_manifest(&p)));
        counters.writes_issued += outcome.issued.len() as u64;
        counters.writes_acked += outcome.acked.len() as u64;
        counters.acked_after_failure += outcome.acked_after_failure;
        let verdict = point.recover_and_verify(crashed, counters, |fs| verify(fs, Path::new(DIR), workload, &outcome));
        assert!(verdict.is_clean(), "{name}, {}, crash at operation {}: {verdict:?}", point.mode_name, point.k);
        Some(verdict)
    });
    eprintln!(
        "{name}: {} crash points ({flush_and_manifest} in flushes and manifest edits) over {ops} operations x 5 modes in {:.1?}",
        counters.crash_points,
        started.elapsed()
    );
    (counters, flush_and_manifest)
}

/// What the compaction workload's campaign found besides the counters.
struct CompactionFigures {
    /// Crash points whose interrupted operation belonged to a compaction.
    in_compaction: u64,
    /// The dry run: compactions, tombstones they purged.
    compactions: u64,
    tombstones_purged: u64,
    /// Mutating file operations of the dry run.
    operations: u64,
}

/// Runs every crash point of the compaction workload under every mode; returns the counters and
/// figures, among them how many crash points interrupted a compaction.
fn enumerate_compaction(name: &str, workload: &CompactionWorkload) -> (Counters, CompactionFigures) {
    let dry = SimFs::new(0);
    let outcome = run_compaction(&dry, Path::new(DIR), workload);
    assert!(outcome.first_error.is_none(), "{name}: the dry run failed: {:?}", outcome.first_error);
    assert_eq!(outcome.acked, workload.writes(), "{name}: the dry run lost writes");
    let clean = verify_compaction(Arc::new(dry.crash(CrashMode::KeepAll)), Path::new(DIR), workload, &outcome);
    assert!(clean.is_clean(), "{name}: the dry run does not verify: {clean:?}");
    let ops = dry.mutating_ops();
    let mut figures = CompactionFigures {
        in_compaction: 0,
        compactions: outcome.compactions,
        tombstones_purged: outcome.tombstones_purged,
        operations: ops,
    };
    let mut counters = Counters::default();
    let started = Instant::now();
    for_each_crash_point(ops, &mut counters, |point, counters| {
        let outcome = run_compaction(&point.fs, Path::new(DIR), workload);
        let crashed = point.fs.crashed()?;
        figures.in_compaction += u64::from(outcome.crashed_in_compaction);
        counters.writes_issued += outcome.issued as u64;
        counters.writes_acked += outcome.acked as u64;
        let verdict = point.recover_and_verify(crashed, counters, |fs| verify_compaction(fs, Path::new(DIR), workload, &outcome));
        let (mode, k, step) = (point.mode_name, point.k, outcome.crashed_at_step);
        assert!(verdict.is_clean(), "{name}, {mode}, crash at operation {k} (step {step:?}): {verdict:?}");
        Some(verdict)
    });
    eprintln!(
        "{name}: {} crash points ({} in compactions) over {ops} operations x 5 modes in {:.1?}",
        counters.crash_points,
        figures.in_compaction,
        started.elapsed()
    );
    (counters, figures)
}

fn workloads() -> Vec<(&'static str, Workload)> {
    vec![
        (
            "single_writer_batch",
            Workload {
                threads: 1,
                writes_per_thread: 60 * scale(),
                durability: Durability::Batch(Duration::ZERO),
                segment_size: 4096,
                persist_every: Some(20),
                sync_now_every: None,
            },
        ),
        (
            "group_commit_batch",
            Workload {
                threads: 3,
                writes_per_thread: 40 * scale(),
                durability: Durability::Batch(Duration::from_micros(200)),
                segment_size: 4096,
                persist_every: Some(25),
                sync_now_every: None,
            },
        ),
        (
            "flush_heavy",
            Workload {
                threads: 1,
                writes_per_thread: 40 * scale(),
                durability: Durability::Batch(Duration::ZERO),
                segment_size: 4096,
                persist_every: Some(4),
                sync_now_every: None,
            },
        ),
        (
            "periodic_sync_now",
            Workload {
                threads: 2,
                writes_per_thread: 50 * scale(),
                durability: Durability::Periodic(Duration::from_millis(1)),
                segment_size: 4096,
                persist_every: Some(20),
                sync_now_every: Some(4),
            },
        ),
    ]
}

/// The compaction workload: rounds of writes, overwrites and row, range, cell and partition
/// deletions in two tables (`immediate` and `timeout` with grace 0), each flushed, then
/// compactions of the newest or oldest sstables, some while live commitlog segments hold the
/// barrier, some after a flush of everything and a commitlog rotation (purging what the overlap
/// check allows), majors, and writes after the purges.
fn compaction_workload() -> CompactionWorkload {
    CompactionWorkload::new(4 * scale(), 2 * scale(), 7).unwrap()
}

/// The scenarios run side by side (the machine has two cores), and one report sums them.
#[test]
fn every_crash_point_of_every_scenario() {
    let started = Instant::now();
    let mut compaction = None;
    let results: Vec<(&str, (Counters, u64))> = std::thread::scope(|scope| {
        let heavy = scope.spawn(|| enumerate_compaction("compaction_heavy", &compaction_workload()));
        let handles: Vec<_> =
            workloads().into_iter().map(|(name, workload)| (name, scope.spawn(move || enumerate(name, &workload)))).collect();
        let results = handles.into_iter().map(|(name, h)| (name, h.join().unwrap())).collect();
        compaction = Some(heavy.join().unwrap());
        results
    });
    let mut total = Counters::default();
    let mut flush_and_manifest = 0;
    let mut per_scenario = Map::new();
    for (name, (counters, in_flush)) in &results {
        total.merge(counters);
        flush_and_manifest += in_flush;
        let mut extra = Map::new();
        extra.insert("crash_points_in_flush_and_manifest".into(), json!(in_flush));
        per_scenario.insert((*name).into(), counters.to_json(name, extra));
    }
    let (compaction_counters, figures) = compaction.unwrap();
    total.merge(&compaction_counters);
    let mut extra = Map::new();
    extra.insert("crash_points_in_compaction".into(), json!(figures.in_compaction));
    extra.insert("operations_per_run".into(), json!(figures.operations));
    extra.insert("compactions_per_run".into(), json!(figures.compactions));
    extra.insert("tombstones_purged_per_run".into(), json!(figures.tombstones_purged));
    per_scenario.insert("compaction_heavy".into(), compaction_counters.to_json("compaction_heavy", extra));
    let mut extra = Map::new();
    extra.insert("scenarios".into(), serde_json::Value::Object(per_scenario));
    extra.insert("wall_s".into(), json!(started.elapsed().as_secs_f64()));
    extra.insert("crash_points_in_flush_and_manifest".into(), json!(flush_and_manifest));
    extra.insert("crash_points_in_compaction".into(), json!(figures.in_compaction));
    let path = write_report("crash_points", &total, extra).unwrap();
    eprintln!("report: {}", path.display());
    assert_eq!(total.failures(), 0, "{total:?}");
    assert!(total.crash_points > 0);
    // The sstable issue's bar: at least 2,000 crash points inside flushes and manifest edits.
    assert!(flush_and_manifest >= 2_000, "only {flush_and_manifest} crash points in flushes and manifest edits");
    // The compaction issue's bar: every loss counter of the compaction workload at zero (above,
    // in the total) and at least 1,000 crash points inside compactions.
    assert_eq!(compaction_counters.failures(), 0, "{compaction_counters:?}");
    assert!(figures.in_compaction >= 1_000, "only {} crash points in compactions", figures.in_compaction);
    assert!(figures.tombstones_purged > 0, "the compaction workload purged nothing");
}

/// One crash point: a fresh file system that crashes at its `k`-th mutating operation.
struct CrashPoint {
    fs: SimFs,
    k: u64,
    seed: u64,
    mode: CrashMode,
    mode_name: &'static str,
}

impl CrashPoint {
    /// Verifies the file system `crashed` left; every 7th point first crashes again while
    /// recovering (bug class 8), counted in `double_crashes`, then recovers for real.
    fn recover_and_verify(&self, crashed: SimFs, counters: &mut Counters, verify: impl Fn(Arc<dyn Fs>) -> Verdict) -> Verdict {
        if !self.k.is_multiple_of(7) {
            return verify(Arc::new(crashed));
        }
        let again = crashed.crash(CrashMode::KeepAll);
        again.crash_at(1 + self.seed % 6, self.mode);
        let _ = verify(Arc::new(again.clone()) as Arc<dyn Fs>);
        match again.crashed() {
            Some(twice) => {
                counters.double_crashes += 1;
                verify(Arc::new(twice))
            }
            None => verify(Arc::new(crashed)),
        }
    }
}

/// Runs `check` at crash points 1..=`ops` under every crash mode; `check` returns the verdict, or
/// `None` when thread timing made the run shorter than the dry run and nothing crashed. Counts
/// the crash points and adds the verdicts to `counters`, which `check` may update too.
fn for_each_crash_point(ops: u64, counters: &mut Counters, mut check: impl FnMut(&CrashPoint, &mut Counters) -> Option<Verdict>) {
    for (mode_name, mode) in talus_tests::fixture::crash_modes() {
        for k in 1..=ops {
            let seed = k * 31 + mode_name.len() as u64;
            let point = CrashPoint { fs: SimFs::new(seed), k, seed, mode, mode_name };
            point.fs.crash_at(k, mode);
            if let Some(verdict) = check(&point, counters) {
                counters.crash_points += 1;
                counters.add(&verdict);
            }
        }
    }
}
