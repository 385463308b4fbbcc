//! Shared setup of the batchlog tests (T1–T7): an engine on `SimFs` with the batchlog, a manual
//! clock, a replayer that fails on demand, the user tables batches write, and views of the v2
//! table as ScyllaDB's tests see it through `MUTATION_FRAGMENTS` (A12).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use talus::batchlog::tables::{v2_partition, Stage, SHARDS, SYSTEM_KEYSPACE, V2_TABLE};
use talus::batchlog::BatchlogLayout;
use talus::batchlog::{BatchReplayer, BatchlogManager, BatchlogOptions, LocalReplayer, ManualClock, ReplayBatch};
use talus::format::{ColumnType, Fragment, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::{scan_all, Engine, Error, Query, Result, SourceFragments};

/// The test clock's start: 2026-01-01T00:00:00Z.
pub const T0_MS: i64 = 1_767_225_600_000;

/// A replayer applying to the local engine unless told to fail; it records the ids it delivered.
pub struct SwitchReplayer {
    local: LocalReplayer,
    /// Whether every delivery fails.
    pub failing: AtomicBool,
    /// Mutations delivered successfully.
    pub delivered_mutations: AtomicU64,
    /// Ids of the batches delivered successfully, in order (with repeats).
    pub delivered: Mutex<Vec<[u8; 16]>>,
    /// The threads it was called on.
    pub threads: Mutex<HashSet<std::thread::ThreadId>>,
}

impl SwitchReplayer {
    /// A replayer applying to `engine`, not failing.
    pub fn new(engine: &Engine) -> SwitchReplayer {
        SwitchReplayer {
            local: LocalReplayer::new(engine.clone()),
            failing: AtomicBool::new(false),
            delivered_mutations: AtomicU64::new(0),
            delivered: Mutex::new(Vec::new()),
            threads: Mutex::new(HashSet::new()),
        }
    }

    /// Makes deliveries fail (`true`) or succeed.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl BatchReplayer for SwitchReplayer {
    fn replay(&self, batch: &ReplayBatch<'_>) -> Result<()> {
        self.threads.lock().insert(std::thread::current().id());
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::ReplayFailed("injected: storage_proxy_fail_replay_batch".into()));
        }
        self.local.replay(batch)?;
        self.delivered_mutations.fetch_add(batch.mutations.len() as u64, Ordering::SeqCst);
        self.delivered.lock().push(batch.id);
        Ok(())
    }
}

/// An engine with the batchlog and two user tables.
pub struct Fixture {
    /// The engine.
    pub engine: Engine,
    /// The batchlog.
    pub batchlog: BatchlogManager,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Its replayer.
    pub replayer: Arc<SwitchReplayer>,
    /// `ks.tbl1 (pk int, ck int) v int`.
    pub tbl1: SchemaRef,
    /// `ks.tbl2 (pk int, ck int) v int`.
    pub tbl2: SchemaRef,
}

/// The user table `ks.<name> (pk int, ck int) v int` with `options`.
pub fn user_table(name: &str, options: talus::format::schema::TableOptions) -> Result<SchemaRef> {
    Ok(Schema::builder("ks", name)
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Int)
        .options(options)
        .build()?)
}

impl Fixture {
    /// A fresh engine (from `fixture::sim_engine(seed)`) with user tables `tbl1` (given options)
    /// and `tbl2` (defaults), and a batchlog with `options` whose clock reads [`T0_MS`].
    pub fn new(seed: u64, options: BatchlogOptions, tbl1_options: talus::format::schema::TableOptions) -> Result<Fixture> {
        let engine = crate::fixture::sim_engine(seed)?;
        let tbl1 = user_table("tbl1", tbl1_options)?;
        let tbl2 = user_table("tbl2", Default::default())?;
        engine.create_table(tbl1.clone())?;
        engine.create_table(tbl2.clone())?;
        let clock = Arc::new(ManualClock::new(T0_MS));
        Fixture::attach(engine, options, clock, tbl1, tbl2)
    }

    /// The batchlog of an existing engine (after a reopen).
    pub fn attach(engine: Engine, options: BatchlogOptions, clock: Arc<ManualClock>, tbl1: SchemaRef, tbl2: SchemaRef) -> Result<Fixture> {
        let replayer = Arc::new(SwitchReplayer::new(&engine));
        let batchlog = BatchlogManager::open_with(&engine, options, clock.clone(), replayer.clone())?;
        Ok(Fixture { engine, batchlog, clock, replayer, tbl1, tbl2 })
    }

    /// `n` inserts into `table`, rows `(pk, 0..n)` with value `pk`.
    pub fn inserts(&self, table: &Schema, pk: i32, n: i32) -> Result<Vec<Mutation>> {
        let ts = Timestamp(self.clock.now_millis_for_tests() * 1000);
        (0..n).map(|ck| Ok(Mutation::builder(table, &[Value::Int(pk)]).set(&[Value::Int(ck)], "v", Value::Int(pk), ts).build()?)).collect()
    }

    /// Whether row `(pk, 0)` of `table` is live: the batch of partition `pk` was applied.
    pub fn applied(&self, table: &Schema, pk: i32) -> Result<bool> {
        Ok(self.engine.query(&Query::partition(table, &[Value::Int(pk)])?)?.stats.live_rows > 0)
    }

    /// Live v2 entries of `stage`, over all shards.
    pub fn live(&self, stage: Stage) -> Result<u64> {
        let schema = self.batchlog.schema(talus::batchlog::BatchlogLayout::V2);
        let mut n = 0;
        for shard in 0..SHARDS {
            n += self.engine.query(&Query::partition(schema, &v2_partition(stage, shard as u8))?)?.stats.live_rows;
        }
        Ok(n)
    }

    /// The fragments of every v2 shard partition of `stage` that has any, per source.
    pub fn fragments(&self, stage: Stage) -> Result<Vec<(u8, Vec<SourceFragments>)>> {
        let schema = self.batchlog.schema(talus::batchlog::BatchlogLayout::V2);
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            let key = schema.decorated_key(&v2_partition(stage, shard as u8))?;
            let sources = self.engine.mutation_fragments(&format!("{SYSTEM_KEYSPACE}.{V2_TABLE}"), &key)?;
            if !sources.is_empty() {
                out.push((shard as u8, sources));
            }
        }
        Ok(out)
    }

    /// The live entries of both batchlog tables: batch id → the stages where it is live (v1
    /// entries count as initial).
    pub fn live_entries(&self) -> Result<HashMap<[u8; 16], Vec<Stage>>> {
        let mut out: HashMap<[u8; 16], Vec<Stage>> = HashMap::new();
        let v1 = self.batchlog.schema(BatchlogLayout::V1);
        for p in &self.engine.query(&scan_all(&v1.full_name()))?.partitions {
            if p.rows.is_empty() {
                continue;
            }
            match p.key.key.decode(&v1.partition_key_types())?.as_slice() {
                [Value::Uuid(id)] => out.entry(*id).or_default().push(Stage::Initial),
                other => return Err(unexpected("system.batchlog key", &other)),
            }
        }
        let v2 = self.batchlog.schema(BatchlogLayout::V2);
        for p in &self.engine.query(&scan_all(&v2.full_name()))?.partitions {
            let stage = match p.key.key.decode(&v2.partition_key_types())?.as_slice() {
                [Value::Int(_), Value::TinyInt(code), Value::Int(_)] => Stage::from_code(*code),
                _ => None,
            };
            let Some(stage) = stage else { return Err(unexpected("system.batchlog_v2 key", &p.key)) };
            for row in &p.rows {
                match v2.decode_clustering(&row.clustering)?.as_slice() {
                    [Value::Timestamp(_), Value::Uuid(id)] => out.entry(*id).or_default().push(stage),
                    other => return Err(unexpected("system.batchlog_v2 clustering key", &other)),
                }
            }
        }
        Ok(out)
    }

    /// The live rows of `ks.tbl1`: pk → ck → v.
    pub fn user_rows(&self) -> Result<BTreeMap<i32, BTreeMap<i32, i32>>> {
        let table = &self.tbl1;
        let v_id = table.regular_column("v")?.id;
        let mut out: BTreeMap<i32, BTreeMap<i32, i32>> = BTreeMap::new();
        for p in &self.engine.query(&scan_all(&table.full_name()))?.partitions {
            let [Value::Int(pk)] = p.key.key.decode(&table.partition_key_types())?[..] else {
                return Err(unexpected("ks.tbl1 key", &p.key));
            };
            for row in &p.rows {
                let [Value::Int(ck)] = table.decode_clustering(&row.clustering)?[..] else {
                    return Err(unexpected("ks.tbl1 clustering key", &row.clustering));
                };
                let v = row.cells.iter().find(|(c, _)| *c == v_id).map(|(_, b)| Value::deserialize(ColumnType::Int, b)).transpose()?;
                let Some(Value::Int(v)) = v else { return Err(unexpected("ks.tbl1 value", &v)) };
                out.entry(pk).or_default().insert(ck, v);
            }
        }
        Ok(out)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by.as_millis() as i64);
    }
}

fn unexpected(what: &str, got: &dyn std::fmt::Debug) -> Error {
    Error::InvalidQuery(format!("unexpected {what}: {got:?}"))
}

/// Extension for reading a [`ManualClock`] without importing the clock trait everywhere.
pub trait ClockRead {
    /// The current reading.
    fn now_millis_for_tests(&self) -> i64;
}

impl ClockRead for ManualClock {
    fn now_millis_for_tests(&self) -> i64 {
        talus::batchlog::BatchlogClock::now_millis(self)
    }
}

/// Counts of one partition's fragments over all its sources.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FragmentCounts {
    /// Clustering rows (live or dead).
    pub rows: u64,
    /// Rows with a live cell and no row tombstone in their source.
    pub live_rows: u64,
    /// Range tombstone changes.
    pub range_tombstone_changes: u64,
}

/// Counts `sources`' fragments.
pub fn count(sources: &[SourceFragments]) -> FragmentCounts {
    let mut c = FragmentCounts::default();
    for f in sources.iter().flat_map(|s| &s.fragments) {
        match f {
            Fragment::Row { row, .. } => {
                c.rows += 1;
                if row.tombstone.is_none() && row.is_live_at(talus::format::GcTime::now()) {
                    c.live_rows += 1;
                }
            }
            Fragment::RangeTombstoneChange(_) => c.range_tombstone_changes += 1,
            _ => {}
        }
    }
    c
}

/// The batch ids of a list of handles, as a set.
pub fn ids(handles: &[talus::batchlog::BatchHandle]) -> BTreeSet<[u8; 16]> {
    handles.iter().map(|h| h.id).collect()
}
