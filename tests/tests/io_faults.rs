//! I/O-error loops (reliability-testing §2.3 stage 5, P6, bug class 7): EIO or ENOSPC at the n-th
//! operation of each kind, for every n the workload reaches, one-shot and persistent. The engine
//! must fail stop (no write acknowledged after a failed one), and after a power loss that drops
//! everything unsynced, the reopened engine (faults gone) holds every acknowledged write, with no
//! hole and no torn batch.
//!
//! A self-test proves the checker can fail: lost writes (syncs that report success and sync
//! nothing) must be reported as lost acknowledged writes.
//!
//! Report: `target/reports/io_faults.json`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};
use talus::commitlog::Durability;
use talus::fs::{CrashMode, Fault, FaultFs, FaultRule, OpKind, SimFs, Trigger};
use talus_tests::durability::{run, verify, Workload};

use talus_tests::report::{write_report, Counters};

const DIR: &str = "/db";

fn workload(durability: Durability) -> Workload {
    Workload { threads: 2, writes_per_thread: 360, durability, segment_size: 4096, persist_every: Some(15), sync_now_every: Some(3) }
}

const KINDS: [OpKind; 6] = [OpKind::Open, OpKind::Write, OpKind::Sync, OpKind::SetLen, OpKind::Rename, OpKind::SyncDir];

/// Runs `workload` with one rule, then power loss and reopen; adds to `counters`.
fn one_case(workload: &Workload, rule: FaultRule, seed: u64, counters: &mut Counters) {
    let sim = SimFs::new(seed);
    let faulty = FaultFs::new(Arc::new(sim.clone()), seed);
    faulty.add_rule(rule.clone());
    let outcome = run(Arc::new(faulty.clone()), Path::new(DIR), workload);
    counters.faults_injected += faulty.injected();
    counters.writes_issued += outcome.issued.len() as u64;
    counters.writes_acked += outcome.acked.len() as u64;
    counters.acked_after_failure += outcome.acked_after_failure;
    let verdict = verify(Arc::new(sim.crash(CrashMode::DropAll)), Path::new(DIR), workload, &outcome);
    assert!(verdict.is_clean() && outcome.acked_after_failure == 0, "{rule:?}: {verdict:?}, {outcome:?}");
    counters.crash_points += 1;
    counters.add(&verdict);
}

#[test]
fn eio_and_enospc_at_every_operation() {
    let started = Instant::now();
    let mut counters = Counters::default();
    for durability in
        [Durability::Batch(Duration::ZERO), Durability::Batch(Duration::from_micros(100)), Durability::Periodic(Duration::from_millis(1))]
    {
        let workload = workload(durability);
        // Count the operations of each kind in a run without faults.
        let counting = FaultFs::new(Arc::new(SimFs::new(1)), 1);
        let outcome = run(Arc::new(counting.clone()), Path::new(DIR), &workload);
        assert!(outcome.first_error.is_none(), "{:?}", outcome.first_error);
        for kind in KINDS {
            let total = counting.operations(kind);
            assert!(total > 0, "the workload never does {kind:?}");
            for n in 1..=total {
                for fault in [Fault::Eio, Fault::Enospc] {
                    let trigger = if n % 2 == 0 { Trigger::Nth(n) } else { Trigger::From(n) };
                    one_case(&workload, FaultRule::new(kind, trigger, fault), n, &mut counters);
                }
            }
        }
    }
    recovery_under_faults(&mut counters);
    let mut extra = Map::new();
    extra.insert("wall_s".into(), json!(started.elapsed().as_secs_f64()));
    let path = write_report("io_faults", &counters, extra).unwrap();
    eprintln!("io faults: {counters:?} in {:.1?}; report {}", started.elapsed(), path.display());
    assert_eq!(counters.failures(), 0);
    assert!(counters.faults_injected >= 5_000, "{counters:?}");
}

/// Faults while recovering: the open fails with a typed error or succeeds; either way a later
/// open without faults recovers every acknowledged write.
fn recovery_under_faults(counters: &mut Counters) {
    let workload = workload(Durability::Batch(Duration::ZERO));
    let sim = SimFs::new(3);
    let outcome = run(Arc::new(sim.clone()), Path::new(DIR), &workload);
    assert!(outcome.first_error.is_none(), "{:?}", outcome.first_error);
    let counting = FaultFs::new(Arc::new(sim.crash(CrashMode::DropAll)), 3);
    let _ = talus_tests::durability::open(Arc::new(counting.clone()), Path::new(DIR), &workload).unwrap();
    for kind in [OpKind::Read, OpKind::List, OpKind::Open, OpKind::Write, OpKind::Sync, OpKind::Remove, OpKind::SyncDir] {
        for n in 1..=counting.operations(kind) {
            for fault in [Fault::Eio, Fault::Enospc] {
                let after_crash = sim.crash(CrashMode::DropAll);
                let faulty = FaultFs::new(Arc::new(after_crash.clone()), n);
                faulty.add_rule(FaultRule::new(kind, Trigger::Nth(n), fault));
                if let Err(e) = talus_tests::durability::open(Arc::new(faulty.clone()), Path::new(DIR), &workload) {
                    assert!(matches!(e, talus::Error::Io { .. } | talus::Error::CommitlogFailed(_)), "{kind:?} #{n}: untyped failure {e}");
                }
                counters.faults_injected += faulty.injected();
                let verdict = verify(Arc::new(after_crash.crash(CrashMode::DropAll)), Path::new(DIR), &workload, &outcome);
                assert!(verdict.is_clean(), "recovery with {fault:?} at {kind:?} #{n}: {verdict:?}");
                counters.crash_points += 1;
                counters.add(&verdict);
            }
        }
    }
}

#[test]
fn short_writes_lose_nothing() {
    let mut counters = Counters::default();
    let workload = workload(Durability::Batch(Duration::ZERO));
    for n in 1..=40 {
        one_case(&workload, FaultRule::new(OpKind::Write, Trigger::Nth(n), Fault::ShortWrite), n, &mut counters);
    }
    assert_eq!(counters.failures(), 0);
    assert!(counters.faults_injected > 0);
}

/// The checker is not vacuous: syncs that lie lose acknowledged writes, and it says so.
#[test]
fn the_checker_reports_writes_lost_by_lying_syncs() {
    let workload = Workload { persist_every: None, ..workload(Durability::Batch(Duration::ZERO)) };
    let sim = SimFs::new(7);
    let faulty = FaultFs::new(Arc::new(sim.clone()), 7);
    faulty.add_rule(FaultRule::new(OpKind::Sync, Trigger::From(1), Fault::LostWrite).on_paths("CommitLog"));
    let outcome = run(Arc::new(faulty), Path::new(DIR), &workload);
    assert!(outcome.first_error.is_none());
    let verdict = verify(Arc::new(sim.crash(CrashMode::DropAll)), Path::new(DIR), &workload, &outcome);
    assert!(verdict.lost_acked_writes > 0, "{verdict:?}");
}
