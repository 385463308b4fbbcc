//! The real-process kill loop (reliability-testing §2.2 item 5, §2.3 stage 7, P1): a child
//! process writes with `Batch` durability on the real file system and reports each acknowledged
//! write on its stdout; the parent SIGKILLs it at a random moment, reopens the same directory, and
//! checks that every write acknowledged in any cycle so far is present, and that no batch is torn.
//!
//! The child is this test binary itself, running the ignored test `child_writer` (it does nothing
//! unless `TALUS_SIGKILL_CHILD_DIR` is set). Cycles: `TALUS_SIGKILLS` (default 50).
//! Report: `target/reports/sigkill.json`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Map};
use talus::commitlog::Durability;
use talus::fs::RealFs;
use talus::WriteOptions;
use talus_tests::durability::{open, present_ids, write_of, Workload, TABLES};
use talus_tests::report::{write_report, Counters};

const CHILD_DIR: &str = "TALUS_SIGKILL_CHILD_DIR";
const CHILD_CYCLE: &str = "TALUS_SIGKILL_CYCLE";

fn workload() -> Workload {
    Workload {
        threads: 2,
        writes_per_thread: u64::MAX,
        durability: Durability::Batch(Duration::ZERO),
        segment_size: 1 << 20,
        persist_every: None,
        sync_now_every: None,
    }
}

/// The child: writes until killed, printing `ack <id>` after each acknowledgement.
#[test]
#[ignore = "the child process of sigkill_loop; runs only when that test spawns it"]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let cycle: u64 = std::env::var(CHILD_CYCLE).unwrap().parse().unwrap();
    let workload = workload();
    let (engine, schemas) = open(Arc::new(RealFs), Path::new(&dir), &workload).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..workload.threads as u64 {
            let (engine, schemas) = (&engine, &schemas);
            scope.spawn(move || {
                for i in 0.. {
                    let id = cycle * 10_000_000 + thread * 1_000_000 + i;
                    engine.apply_batch_with(&write_of(schemas, id).unwrap(), WriteOptions::default()).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {id}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

fn unique_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("talus-sigkill-{}-{nanos}", std::process::id()))
}

#[test]
fn sigkill_loop() {
    let kills: u64 = std::env::var("TALUS_SIGKILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let dir = unique_dir();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(kills);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut counters = Counters::default();
    let started = Instant::now();
    for cycle in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .env(CHILD_CYCLE, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ack ").and_then(|id| id.parse::<u64>().ok()) {
                    if tx.send(id).is_err() {
                        break;
                    }
                }
            }
        });
        // Let the child get going, then kill it at a random moment.
        let first = rx.recv_timeout(Duration::from_secs(60)).expect("the child acknowledged nothing within 60 s");
        acked.insert(first);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter());
        counters.sigkills += 1;

        let (engine, _) = open(Arc::new(RealFs), &dir, &workload()).unwrap();
        let first_table = present_ids(&engine, TABLES[0]).unwrap();
        let second_table = present_ids(&engine, TABLES[1]).unwrap();
        let lost = acked.iter().filter(|id| !first_table.contains(id) || !second_table.contains(id)).count() as u64;
        counters.lost_acked_writes += lost;
        counters.torn_batches += first_table.symmetric_difference(&second_table).count() as u64;
        counters.writes_recovered = first_table.len() as u64;
        eprintln!(
            "cycle {cycle}: {} acknowledged so far, {} recovered, recovery: {:?}",
            acked.len(),
            first_table.len(),
            engine.recovery_report().recovered_to
        );
        assert_eq!(lost, 0, "cycle {cycle}: acknowledged writes lost");
    }
    counters.writes_acked = acked.len() as u64;
    let mut extra = Map::new();
    extra.insert("wall_s".into(), json!(started.elapsed().as_secs_f64()));
    let path = write_report("sigkill", &counters, extra).unwrap();
    eprintln!("report: {}", path.display());
    assert_eq!(counters.failures(), 0, "{counters:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
