//! The durability harness: a scripted write workload with every write identifiable, and the
//! checker of the promises P1 (acknowledged writes survive), P2 (the recovered state is a prefix
//! of the log: no holes), crash-atomic batches and fail-stop (P6) of
//! `../shared/reference/reliability-testing.md`.
//!
//! Every write `id` is one `apply_batch` of two mutations, one per table, each setting partition
//! `id`. So after recovery the set of present ids tells exactly which writes survived, a batch
//! present in one table only is a torn batch, and the commitlog positions returned with the
//! acknowledgements order the writes for the prefix check.
//!
//! Every `persist_every` writes, thread 0 flushes both tables into sstables (`Engine::flush`),
//! which lets the commitlog recycle segments; crashes then hit flushes and manifest edits too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use talus::commitlog::{CommitlogOptions, Durability, ReplayPosition};
use talus::format::{ColumnType, DecoratedKey, GcTime, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::fs::Fs;
use talus::{scan_all, Engine, EngineOptions, WriteOptions};

/// The two tables every write goes to.
pub const TABLES: [&str; 2] = ["crash.first", "crash.second"];

/// A scripted workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Writer threads.
    pub threads: usize,
    /// Writes per thread.
    pub writes_per_thread: u64,
    /// Commitlog durability.
    pub durability: Durability,
    /// Commitlog segment size (small, so segments roll).
    pub segment_size: u32,
    /// Thread 0 stands in for a flush of the first table every this many writes.
    pub persist_every: Option<u64>,
    /// Every this many writes of a thread asks for `sync_now`.
    pub sync_now_every: Option<u64>,
}

impl Workload {
    /// Engine options for this workload.
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            commitlog: CommitlogOptions {
                segment_size: self.segment_size,
                durability: self.durability,
                max_total_bytes: u64::from(self.segment_size) * 4,
                ..CommitlogOptions::default()
            },
            // Flushes happen where the workload says, so crash points enumerate deterministically.
            background_flush: false,
            background_compaction: false,
            ..EngineOptions::default()
        }
    }
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Where the commitlog put it.
    pub position: ReplayPosition,
    /// Whether the engine promised it durable (`Batch`, or `sync_now`).
    pub durable: bool,
}

/// What a workload run did.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Every id a writer tried to write.
    pub issued: BTreeSet<u64>,
    /// Acknowledged writes.
    pub acked: BTreeMap<u64, Acked>,
    /// Writes acknowledged after an earlier write of the same thread failed (P6 violations).
    pub acked_after_failure: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

fn schema(name: &str) -> SchemaRef {
    let (keyspace, table) = name.split_once('.').unwrap_or(("crash", name));
    // A fixed, valid schema: building it cannot fail.
    #[allow(clippy::expect_used)]
    Schema::builder(keyspace, table)
        .partition_key("id", ColumnType::BigInt)
        .regular("v", ColumnType::BigInt)
        .build()
        .expect("fixed schema is valid")
}

/// The batch that writes `id`.
pub fn write_of(schemas: &[SchemaRef], id: u64) -> talus::Result<Vec<Mutation>> {
    let ts = Timestamp(id as i64 + 1);
    schemas
        .iter()
        .map(|s| {
            Mutation::builder(s, &[Value::BigInt(id as i64)])
                .now(GcTime(1_000_000))
                .set(&[], "v", Value::BigInt(id as i64), ts)
                .build()
                .map_err(talus::Error::from)
        })
        .collect()
}

/// Opens the engine and creates the tables if they are missing.
pub fn open(fs: Arc<dyn Fs>, dir: &Path, workload: &Workload) -> talus::Result<(Engine, Vec<SchemaRef>)> {
    let engine = Engine::open_with_fs(fs, dir, workload.options())?;
    let mut schemas = Vec::new();
    for name in TABLES {
        if !engine.table_names().iter().any(|n| n == name) {
            engine.create_table(schema(name))?;
        }
        schemas.push(engine.schema(name)?);
    }
    Ok((engine, schemas))
}

/// The write id a partition key carries.
fn id_of(key: &DecoratedKey) -> Option<u64> {
    match key.key.decode(&[ColumnType::BigInt]).ok()?.first()? {
        Value::BigInt(id) => Some(*id as u64),
        _ => None,
    }
}

/// Runs the workload until it completes or the file system fails every write.
pub fn run(fs: Arc<dyn Fs>, dir: &Path, workload: &Workload) -> RunOutcome {
    let outcome = Mutex::new(RunOutcome::default());
    let (engine, schemas) = match open(fs, dir, workload) {
        Ok(x) => x,
        Err(e) => {
            outcome.lock().first_error = Some(e.to_string());
            return outcome.into_inner();
        }
    };
    std::thread::scope(|scope| {
        for thread in 0..workload.threads as u64 {
            let (engine, schemas, outcome) = (&engine, &schemas, &outcome);
            scope.spawn(move || {
                let mut failed = false;
                for i in 0..workload.writes_per_thread {
                    let id = thread * 1_000_000 + i;
                    let sync_now = workload.sync_now_every.is_some_and(|n| i % n == n - 1);
                    outcome.lock().issued.insert(id);
                    let result = write_of(schemas, id).and_then(|batch| engine.apply_batch_with(&batch, WriteOptions { sync_now }));
                    match result {
                        Ok(position) => {
                            let durable = sync_now || matches!(workload.durability, Durability::Batch(_));
                            let mut o = outcome.lock();
                            o.acked.insert(id, Acked { position, durable });
                            if failed {
                                o.acked_after_failure += 1;
                            }
                        }
                        Err(e) => {
                            outcome.lock().first_error.get_or_insert(e.to_string());
                            if failed {
                                break; // fail-stop confirmed by a second refused write
                            }
                            failed = true;
                        }
                    }
                    if thread == 0 && !failed && workload.persist_every.is_some_and(|n| i % n == n - 1) {
                        flush(engine, outcome);
                    }
                }
            });
        }
    });
    outcome.into_inner()
}

fn flush(engine: &Engine, outcome: &Mutex<RunOutcome>) {
    for table in TABLES {
        if let Err(e) = engine.flush(table) {
            outcome.lock().first_error.get_or_insert(e.to_string());
            return;
        }
    }
}

/// What the checker found after recovery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Writes promised durable but absent (P1).
    pub lost_acked_writes: u64,
    /// Acknowledged writes absent although a later acknowledged write is present (P2).
    pub holes: u64,
    /// Ids present that no writer issued.
    pub phantoms: u64,
    /// Batches present in one table only.
    pub torn_batches: u64,
    /// Writes present after recovery.
    pub recovered: u64,
    /// The reopen failed with this error.
    pub open_error: Option<String>,
}

impl Verdict {
    /// Whether any promise was broken.
    pub fn is_clean(&self) -> bool {
        self.lost_acked_writes == 0 && self.holes == 0 && self.phantoms == 0 && self.torn_batches == 0 && self.open_error.is_none()
    }
}

/// Ids present in `table` of an open engine.
pub fn present_ids(engine: &Engine, table: &str) -> talus::Result<BTreeSet<u64>> {
    let result = engine.query(&scan_all(table))?;
    Ok(result.partitions.iter().filter_map(|p| id_of(&p.key)).collect())
}

/// Reopens the engine on `fs` and checks the outcome of a run against what it recovered.
pub fn verify(fs: Arc<dyn Fs>, dir: &Path, workload: &Workload, outcome: &RunOutcome) -> Verdict {
    let mut verdict = Verdict::default();
    let engine = match open(fs, dir, workload) {
        Ok((engine, _)) => engine,
        Err(e) => {
            verdict.open_error = Some(e.to_string());
            return verdict;
        }
    };
    let (first, second) = match (present_ids(&engine, TABLES[0]), present_ids(&engine, TABLES[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            verdict.open_error = Some(format!("scan after reopen: {e}"));
            return verdict;
        }
    };
    verdict.torn_batches = first.symmetric_difference(&second).count() as u64;
    let present: BTreeSet<u64> = first.union(&second).copied().collect();
    verdict.recovered = present.len() as u64;
    verdict.phantoms = present.difference(&outcome.issued).count() as u64;
    verdict.lost_acked_writes = outcome.acked.iter().filter(|(id, a)| a.durable && !present.contains(id)).count() as u64;
    let newest_present = outcome.acked.iter().filter(|(id, _)| present.contains(id)).map(|(_, a)| a.position).max();
    if let Some(newest) = newest_present {
        verdict.holes = outcome.acked.iter().filter(|(id, a)| a.position < newest && !present.contains(id)).count() as u64;
    }
    verdict
}
