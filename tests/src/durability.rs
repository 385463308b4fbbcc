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
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use talus::commitlog::{CommitlogOptions, Durability, ReplayPosition};
use talus::format::fs::OpenMode;
use talus::format::sstable::verify::verify_source;
use talus::format::{
    ClusteringPrefix, ColumnId, ColumnType, DecoratedKey, GcTime, Mutation, RangeBound, Schema, SchemaRef, TableOptions, Timestamp,
    TombstoneGcMode, Value,
};
use talus::fs::{Fs, SimFs};
use talus::sstable_set::{parse_sstable_file_name, sstable_file_name, SSTABLE_DIR};
use talus::{scan_all, CompactionOptions, CompactionReport, Engine, EngineOptions, ResultPartition, WriteOptions};

use crate::oracle::{Oracle, Read};

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
    /// Rows present that the acknowledged state does not hold (P3).
    pub resurrected: u64,
    /// Rows present with other cells than the acknowledged state's.
    pub wrong_results: u64,
    /// Quarantined sstables, unnamed files, named sstables that do not verify (P5).
    pub file_set_errors: u64,
    /// The reopen failed with this error.
    pub open_error: Option<String>,
}

impl Verdict {
    /// Whether any promise was broken.
    pub fn is_clean(&self) -> bool {
        self.lost_acked_writes == 0
            && self.holes == 0
            && self.phantoms == 0
            && self.torn_batches == 0
            && self.resurrected == 0
            && self.wrong_results == 0
            && self.file_set_errors == 0
            && self.open_error.is_none()
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

// ---------------------------------------------------------------------------------------------
// The compaction workload

/// The tables of the compaction workload: `tombstone_gc = immediate`, and `timeout` with a grace
/// of 0, so that tombstones become purgeable at once and only the commitlog barrier (R2.15) and
/// the overlap check (R2.17) hold purges back.
pub const COMPACTION_TABLES: [&str; 2] = ["crashc.immediate", "crashc.grace0"];

fn compaction_schema(index: usize) -> SchemaRef {
    let (tombstone_gc, gc_grace_seconds) =
        if index == 0 { (TombstoneGcMode::Immediate, TableOptions::default().gc_grace_seconds) } else { (TombstoneGcMode::Timeout, 0) };
    let table = COMPACTION_TABLES[index].split_once('.').map_or(COMPACTION_TABLES[index], |(_, t)| t);
    // A fixed, valid schema: building it cannot fail.
    #[allow(clippy::expect_used)]
    Schema::builder("crashc", table)
        .partition_key("pk", ColumnType::BigInt)
        .clustering("ck", ColumnType::BigInt)
        .regular("v", ColumnType::BigInt)
        .options(TableOptions { tombstone_gc, gc_grace_seconds, ..TableOptions::default() })
        .build()
        .expect("fixed schema is valid")
}

/// One change to a partition of the compaction workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `INSERT` of a row with `v = value`, optionally expiring.
    Set {
        /// Clustering key.
        ck: i64,
        /// The value of `v`.
        value: i64,
        /// TTL in seconds.
        ttl: Option<i32>,
    },
    /// Delete cell `v` of a row.
    DeleteCell {
        /// Clustering key.
        ck: i64,
    },
    /// Delete a row.
    DeleteRow {
        /// Clustering key.
        ck: i64,
    },
    /// Delete rows `from..to`.
    DeleteRange {
        /// First clustering key deleted.
        from: i64,
        /// First clustering key kept.
        to: i64,
    },
    /// Delete the partition.
    DeletePartition,
}

/// The changes to one partition of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChanges {
    /// Index into [`COMPACTION_TABLES`].
    pub table: usize,
    /// Partition key.
    pub pk: i64,
    /// The changes, all at the write's timestamp.
    pub changes: Vec<Change>,
}

/// One step of the compaction workload's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One `apply_batch` (crash-atomic); the `n`-th write has timestamp `n` and gc time `base + n`.
    Write(Vec<PartitionChanges>),
    /// `Engine::flush` of a table.
    Flush(usize),
    /// `Engine::flush_all_and_rotate_commitlog` (lifts the commitlog barrier).
    FlushAllAndRotate,
    /// `Engine::compact_sstables` of `count` sstables of a table, the newest or the oldest ones,
    /// at the workload's compaction clock.
    Compact {
        /// Index into [`COMPACTION_TABLES`].
        table: usize,
        /// The newest sstables, or the oldest.
        newest: bool,
        /// How many (at least one, at most all).
        count: usize,
    },
    /// A major compaction: a flush and every sstable at the compaction clock, or
    /// `Engine::compact` (wall clock).
    Major {
        /// Index into [`COMPACTION_TABLES`].
        table: usize,
        /// `Engine::compact`.
        wall_clock: bool,
    },
}

impl Step {
    /// Whether the step compacts.
    pub fn compacts(&self) -> bool {
        matches!(self, Step::Compact { .. } | Step::Major { .. })
    }
}

/// A scripted single-threaded workload of writes, overwrites, deletions of every kind, flushes
/// and compactions (subsets, then majors), with what a full read must return after every
/// prefix of its writes.
///
/// Clocks: deletion times are `base + n` with `base` ahead of the wall clock, so the commitlog
/// barrier (the wall time of a segment's first append of the table) holds every purge back while
/// a live segment holds an entry of the table, and lets it go after `FlushAllAndRotate`. The
/// compactions with an explicit clock run at `base + 10^5`, past every deletion time and TTL, so
/// every tombstone is purgeable as far as `gc_before` goes; reads run at `base + 2 * 10^5`.
/// Timestamps rise with every write, so no write hides under an older, possibly purged
/// tombstone: what a compaction may purge changes no read, and any difference is a loss or a
/// resurrection.
#[derive(Debug, Clone)]
pub struct CompactionWorkload {
    /// The script.
    pub steps: Vec<Step>,
    /// Gc time of write 0.
    pub base: GcTime,
    /// Commitlog segment size.
    pub segment_size: u32,
    /// `expected[n]`: every row (table, partition, clustering → cells) a full read returns after
    /// the first `n` writes.
    pub expected: Vec<Rows>,
}

/// The rows of a full read of both tables: `(table, partition, clustering)` → live cells.
pub type Rows = BTreeMap<(usize, DecoratedKey, ClusteringPrefix), Vec<(ColumnId, bytes::Bytes)>>;

impl CompactionWorkload {
    /// The script for `rounds` rounds of `writes` writes, deterministic from `seed`.
    pub fn new(rounds: u64, writes: u64, seed: u64) -> talus::Result<CompactionWorkload> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut steps = Vec::new();
        let script_writes = |steps: &mut Vec<Step>, n: u64, deletes: f64, rng: &mut SmallRng| {
            for _ in 0..n {
                steps.push(Step::Write(random_write(rng, deletes)));
            }
        };
        // Phase 1: rounds of writes, each flushed into one sstable per table, with compactions
        // of the newest sstables while live segments hold the barrier (nothing purged); every
        // third round the barrier lifted and the oldest and newest sstables compacted (purges,
        // with the overlap check against the sstables left out), every fourth a major.
        for round in 0..rounds {
            let deletes = if round % 2 == 0 { 0.25 } else { 0.6 };
            script_writes(&mut steps, writes, deletes, &mut rng);
            steps.push(Step::Flush(0));
            steps.push(Step::Flush(1));
            steps.push(Step::Compact { table: (round % 2) as usize, newest: true, count: 2 });
            if round % 3 == 2 {
                steps.push(Step::FlushAllAndRotate);
                steps.push(Step::Compact { table: 0, newest: false, count: 3 });
                steps.push(Step::Compact { table: 1, newest: true, count: 3 });
            }
            if round % 4 == 3 {
                steps.push(Step::Major { table: (round / 4 % 2) as usize, wall_clock: false });
            }
        }
        // Phase 2: deletions of data held by older sstables, flushed; the barrier lifted; the
        // newest sstables (with the tombstones) compacted without the older data (overlap check).
        script_writes(&mut steps, writes, 0.7, &mut rng);
        steps.push(Step::Flush(0));
        steps.push(Step::Flush(1));
        steps.push(Step::FlushAllAndRotate);
        steps.push(Step::Compact { table: 0, newest: true, count: 2 });
        steps.push(Step::Compact { table: 1, newest: true, count: 3 });
        // Phase 3: more writes, the barrier lifted, majors that purge what they can.
        script_writes(&mut steps, writes / 2, 0.5, &mut rng);
        steps.push(Step::FlushAllAndRotate);
        steps.push(Step::Major { table: 0, wall_clock: false });
        steps.push(Step::Major { table: 1, wall_clock: false });
        // Phase 4: writes after the purge, and a major on the wall clock over the memtable.
        script_writes(&mut steps, writes / 2, 0.5, &mut rng);
        steps.push(Step::Major { table: 1, wall_clock: true });
        steps.push(Step::Compact { table: 0, newest: true, count: 2 });
        script_writes(&mut steps, 3, 0.5, &mut rng);

        let base = GcTime::now().plus(100_000);
        let mut workload = CompactionWorkload { steps, base, segment_size: 8192, expected: Vec::new() };
        workload.expected = workload.expected_rows()?;
        Ok(workload)
    }

    /// The gc clock of the compactions that name one.
    pub fn compaction_now(&self) -> GcTime {
        self.base.plus(100_000)
    }

    /// The gc clock of the checker's reads (not before any compaction's).
    pub fn read_now(&self) -> GcTime {
        self.base.plus(200_000)
    }

    /// Engine options: small segments, `Batch` durability, no background work.
    pub fn options(&self) -> EngineOptions {
        Workload {
            threads: 1,
            writes_per_thread: 0,
            durability: Durability::Batch(std::time::Duration::ZERO),
            segment_size: self.segment_size,
            persist_every: None,
            sync_now_every: None,
        }
        .options()
    }

    /// How many writes the script has.
    pub fn writes(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Write(_))).count()
    }

    /// The mutations of the `n`-th write (0-based).
    fn mutations(&self, schemas: &[SchemaRef], n: usize, write: &[PartitionChanges]) -> talus::Result<Vec<Mutation>> {
        let ts = Timestamp(n as i64 + 1);
        let now = self.base.plus(n as i64);
        write
            .iter()
            .map(|p| {
                let schema = &schemas[p.table];
                let mut b = Mutation::builder(schema, &[Value::BigInt(p.pk)]).now(now);
                for change in &p.changes {
                    b = match *change {
                        Change::Set { ck, value, ttl } => {
                            let ck = [Value::BigInt(ck)];
                            b.insert_with_ttl(&ck, ts, ttl).set_with_ttl(&ck, "v", Value::BigInt(value), ts, ttl)
                        }
                        Change::DeleteCell { ck } => b.delete_cell(&[Value::BigInt(ck)], "v", ts),
                        Change::DeleteRow { ck } => b.delete_row(&[Value::BigInt(ck)], ts),
                        Change::DeleteRange { from, to } => b.delete_range(
                            RangeBound::Inclusive(vec![Value::BigInt(from)]),
                            RangeBound::Exclusive(vec![Value::BigInt(to)]),
                            ts,
                        ),
                        Change::DeletePartition => b.delete_partition(ts),
                    };
                }
                b.build().map_err(talus::Error::from)
            })
            .collect()
    }

    /// The oracle's full read after every prefix of the writes.
    fn expected_rows(&self) -> talus::Result<Vec<Rows>> {
        let schemas: Vec<SchemaRef> = (0..2).map(compaction_schema).collect();
        let mut oracles: Vec<Oracle> = schemas.iter().map(|s| Oracle::new(s.clone())).collect();
        let read = |oracles: &[Oracle]| -> talus::Result<Rows> {
            let mut rows = Rows::new();
            for (table, oracle) in oracles.iter().enumerate() {
                rows.extend(flatten(table, oracle.read(&Read::all(self.read_now()))?));
            }
            Ok(rows)
        };
        let mut expected = vec![read(&oracles)?];
        let writes = self.steps.iter().filter_map(|s| if let Step::Write(w) = s { Some(w) } else { None });
        for (n, write) in writes.enumerate() {
            let ts = Timestamp(n as i64 + 1);
            let now = self.base.plus(n as i64);
            for p in write {
                let mut o = oracles[p.table].write(&[Value::BigInt(p.pk)], now)?;
                for change in &p.changes {
                    match *change {
                        Change::Set { ck, value, ttl } => {
                            let ck = [Value::BigInt(ck)];
                            o.insert(&ck, ts, ttl)?;
                            o.set(&ck, "v", &Value::BigInt(value), ts, ttl)?;
                        }
                        Change::DeleteCell { ck } => o.delete_cell(&[Value::BigInt(ck)], "v", ts)?,
                        Change::DeleteRow { ck } => o.delete_row(&[Value::BigInt(ck)], ts, false)?,
                        Change::DeleteRange { from, to } => o.delete_range(
                            &RangeBound::Inclusive(vec![Value::BigInt(from)]),
                            &RangeBound::Exclusive(vec![Value::BigInt(to)]),
                            ts,
                        )?,
                        Change::DeletePartition => o.delete_partition(ts),
                    }
                }
            }
            expected.push(read(&oracles)?);
        }
        Ok(expected)
    }
}

/// A random write of the compaction workload: one or two partitions (of 6 per table, 8 rows
/// each), each with one to three changes; `deletes` is the share of deletions.
fn random_write(rng: &mut SmallRng, deletes: f64) -> Vec<PartitionChanges> {
    let partitions = rng.random_range(1..=2);
    (0..partitions)
        .map(|_| {
            let table = rng.random_range(0..2);
            let pk = rng.random_range(0..6);
            let changes = (0..rng.random_range(1..=3))
                .map(|_| {
                    let ck = rng.random_range(0..8);
                    if !rng.random_bool(deletes) {
                        let ttl = rng.random_bool(0.1).then_some(50);
                        return Change::Set { ck, value: rng.random_range(0..1000), ttl };
                    }
                    match rng.random_range(0..10) {
                        0..=2 => Change::DeleteCell { ck },
                        3..=5 => Change::DeleteRow { ck },
                        6..=8 => Change::DeleteRange { from: ck, to: ck + rng.random_range(1..=4) },
                        _ => Change::DeletePartition,
                    }
                })
                .collect();
            PartitionChanges { table, pk, changes }
        })
        .collect()
}

fn flatten(table: usize, partitions: Vec<ResultPartition>) -> Rows {
    let mut rows = Rows::new();
    for p in partitions {
        for r in p.rows {
            rows.insert((table, p.key.clone(), r.clustering), r.cells);
        }
    }
    rows
}

/// Opens the engine for the compaction workload and creates its tables if they are missing.
pub fn open_compaction(fs: Arc<dyn Fs>, dir: &Path, workload: &CompactionWorkload) -> talus::Result<(Engine, Vec<SchemaRef>)> {
    let engine = Engine::open_with_fs(fs, dir, workload.options())?;
    let mut schemas = Vec::new();
    for (i, name) in COMPACTION_TABLES.iter().enumerate() {
        if !engine.table_names().iter().any(|n| n == name) {
            engine.create_table(compaction_schema(i))?;
        }
        schemas.push(engine.schema(name)?);
    }
    Ok((engine, schemas))
}

/// What a run of the compaction workload did.
#[derive(Debug, Default, Clone)]
pub struct CompactionRun {
    /// Writes attempted.
    pub issued: usize,
    /// Writes acknowledged (all durable: `Batch`).
    pub acked: usize,
    /// Compaction steps completed.
    pub compactions: u64,
    /// Tombstones the completed compactions purged.
    pub tombstones_purged: u64,
    /// Inputs the completed compactions dropped whole, fully expired (R2.20).
    pub expired_dropped: u64,
    /// The first error.
    pub first_error: Option<String>,
    /// The scheduled crash happened during a compaction step (its file operation was one of a
    /// compaction: output writes, syncs, the manifest edit, input removals; for a major on the
    /// wall clock, also its flush).
    pub crashed_in_compaction: bool,
    /// The crash happened during this step (its index), if it did.
    pub crashed_at_step: Option<usize>,
}

impl CompactionRun {
    fn note(&mut self, report: &CompactionReport) {
        self.tombstones_purged += report.stats.tombstones_purged;
        self.expired_dropped += report.expired.len() as u64;
    }
}

/// Runs the compaction workload on `fs` until it completes or a step fails (after a power loss
/// every later one would).
pub fn run_compaction(fs: &SimFs, dir: &Path, workload: &CompactionWorkload) -> CompactionRun {
    let mut run = CompactionRun::default();
    let (engine, schemas) = match open_compaction(Arc::new(fs.clone()), dir, workload) {
        Ok(x) => x,
        Err(e) => {
            run.first_error = Some(e.to_string());
            return run;
        }
    };
    let mut writes = 0;
    for (i, step) in workload.steps.iter().enumerate() {
        let result = match step {
            Step::Write(write) => {
                run.issued += 1;
                let n = writes;
                writes += 1;
                let result = workload.mutations(&schemas, n, write).and_then(|batch| engine.apply_batch(&batch)).map(drop);
                if result.is_ok() {
                    run.acked += 1;
                }
                result
            }
            Step::Flush(table) => engine.flush(COMPACTION_TABLES[*table]).map(drop),
            Step::FlushAllAndRotate => engine.flush_all_and_rotate_commitlog(),
            Step::Compact { table, newest, count } => {
                let name = COMPACTION_TABLES[*table];
                engine.sstables(name).and_then(|all| {
                    // Newest first; at least one, at most all.
                    let count = (*count).clamp(1, all.len().max(1));
                    let chosen: Vec<u64> =
                        if *newest { all.iter().take(count).copied().collect() } else { all.iter().rev().take(count).copied().collect() };
                    if chosen.is_empty() {
                        return Ok(());
                    }
                    let options = CompactionOptions { now: Some(workload.compaction_now()), only_existing_data: false };
                    engine.compact_sstables(name, &chosen, options).map(|r| run.note(&r))
                })
            }
            Step::Major { table, wall_clock: true } => {
                engine.compact(COMPACTION_TABLES[*table]).map(|r| r.iter().for_each(|r| run.note(r)))
            }
            Step::Major { table, wall_clock: false } => {
                let name = COMPACTION_TABLES[*table];
                engine.flush(name).and_then(|_| engine.sstables(name)).and_then(|all| {
                    if all.is_empty() {
                        return Ok(());
                    }
                    let options = CompactionOptions { now: Some(workload.compaction_now()), only_existing_data: false };
                    engine.compact_sstables(name, &all, options).map(|r| run.note(&r))
                })
            }
        };
        if fs.crashed().is_some() {
            run.crashed_at_step = Some(i);
            run.crashed_in_compaction = step.compacts();
        }
        match result {
            Ok(()) => run.compactions += u64::from(step.compacts()),
            Err(e) => {
                run.first_error = Some(format!("step {i} {step:?}: {e}"));
                break;
            }
        }
        if run.crashed_at_step.is_some() {
            break;
        }
    }
    run
}

/// Reopens the engine on `fs` after a run of the compaction workload and checks what it holds:
/// a full read of both tables must equal the oracle's after every acknowledged write, or after
/// one more when a write was in flight (P1, P2, P3: no row lost, none back from the dead, none
/// wrong), and the file set must be consistent (P5: no quarantined sstable, no file in the
/// sstable directory that the manifest does not name, every named sstable verifies clean).
pub fn verify_compaction(fs: Arc<dyn Fs>, dir: &Path, workload: &CompactionWorkload, run: &CompactionRun) -> Verdict {
    let mut verdict = Verdict::default();
    let engine = match open_compaction(fs.clone(), dir, workload) {
        Ok((engine, _)) => engine,
        Err(e) => {
            verdict.open_error = Some(e.to_string());
            return verdict;
        }
    };
    let mut actual = Rows::new();
    for (table, name) in COMPACTION_TABLES.iter().enumerate() {
        let mut query = scan_all(name);
        query.now = workload.read_now();
        match engine.query(&query) {
            Ok(result) => actual.extend(flatten(table, result.partitions)),
            Err(e) => {
                verdict.open_error = Some(format!("scan of {name} after reopen: {e}"));
                return verdict;
            }
        }
    }
    let acked = &workload.expected[run.acked];
    let in_flight = (run.issued > run.acked).then(|| &workload.expected[run.acked + 1]);
    verdict.recovered = run.acked as u64 + u64::from(in_flight.is_some_and(|e| *e == actual));
    if actual != *acked && in_flight != Some(&actual) {
        for key in acked.keys().chain(actual.keys()).collect::<BTreeSet<_>>() {
            match (acked.get(key), actual.get(key)) {
                (Some(_), None) => verdict.lost_acked_writes += 1,
                (None, Some(_)) => verdict.resurrected += 1,
                (Some(a), Some(b)) if a != b => verdict.wrong_results += 1,
                _ => {}
            }
        }
    }
    verdict.file_set_errors = file_set_errors(&*fs, dir, &engine);
    verdict
}

/// P5 on an open engine: quarantined sstables, files in the sstable directory the manifest does
/// not name, named sstables that do not verify clean.
fn file_set_errors(fs: &dyn Fs, dir: &Path, engine: &Engine) -> u64 {
    let mut errors = engine.quarantined().len() as u64;
    let mut named = BTreeSet::new();
    for name in COMPACTION_TABLES {
        match engine.sstables(name) {
            Ok(generations) => named.extend(generations),
            Err(_) => errors += 1,
        }
    }
    let sst_dir = dir.join(SSTABLE_DIR);
    let files = fs.list(&sst_dir).unwrap_or_default();
    errors += files.iter().filter(|f| !parse_sstable_file_name(f).is_some_and(|g| named.contains(&g))).count() as u64;
    for generation in named {
        let path = sst_dir.join(sstable_file_name(generation));
        let clean = fs
            .open(&path, OpenMode::Existing)
            .and_then(|f| f.read_all())
            .is_ok_and(|bytes| verify_source(Arc::new(bytes::Bytes::from(bytes)), Some(generation)).is_clean());
        errors += u64::from(!clean);
    }
    errors
}
