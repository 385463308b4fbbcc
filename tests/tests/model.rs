//! Model-based test: random sequences of writes, deletions of every kind, TTLs, clock advances,
//! batches and queries run against an [`Engine`] and against the naive [`Oracle`]; every write
//! is followed by a full read of both tables, and every query (token ranges, clustering slices,
//! row limits, paging to the end with random page sizes) is compared with the oracle's answer.
//! Flushes, clean reopens and simulated crashes (unsynced data dropped, kept or torn) are ops of
//! the sequence too, so reads merge memtables with sstables and recovery is checked after each.
//!
//! Compaction and tombstone GC are ops as well: a random non-empty subset of a table's sstables
//! compacted at the model clock (or a little behind it), majors, `compact_only_existing_data`,
//! the strategy's pending picks, commitlog rotations and repair times. Each case draws both
//! tables' `tombstone_gc` (timeout with a grace of 0–3 s, immediate, disabled, repair with a
//! propagation delay of 0–2 s) and its clock: the model clock, far behind the wall clock (the
//! commitlog barrier never binds), or the wall clock (it does). One monotone clock serves writes,
//! compactions and reads, so no read runs before a compaction's `now`; the P3 property is that
//! the full reads after every op still agree — nothing deleted or range-deleted reappears across
//! compaction, reopen and crash (commitlog replay). Writes after a compaction stay above every
//! timestamp it may have purged (by the gc_grace contract, older writes may come back), and a
//! compacting sequence avoids a few shapes whose outcome the rules leave to compaction order or
//! that hit known engine bugs (see `Model::adjusted`, `Model::ttl_without_tie`,
//! `Model::compaction_done`; the bugs are ignored tests in `model_regressions.rs`).
//!
//! Domains are tiny on purpose — 4 partitions, `ck1` in 0..6, four `ck2` texts, timestamps
//! 1..=5 for data and tombstones alike, TTLs of a few seconds — so that ties (R1.26, R1.29),
//! overlaps and expiry happen often. Cases: `TALUS_MODEL_CASES` (default 2,000). Failures shrink
//! and are saved in `tests/proptest-regressions/model.txt`; shrunk cases are kept as readable
//! tests in `model_regressions.rs`, which includes this file for its harness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use talus::format::{
    ColumnType, GcTime, Mutation, PartitionKey, RangeBound, Schema, SchemaRef, TableOptions, Timestamp, Token, TombstoneGcMode, Value,
};
use talus::fs::{CrashMode, SimFs};
use talus::{CompactionOptions, CompactionReport, Engine, PartitionRange, Query, ResultPartition};
use talus_tests::fixture::test_options;
use talus_tests::oracle::{Oracle, Read};

/// Which table an op addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    /// `(pk int, ck1 int, ck2 text DESC) static s text, v1 int, v2 text`.
    Wide,
    /// `(pk int) v1 int, v2 text`, no clustering.
    Narrow,
}

/// A table's `tombstone_gc` mode (R2.14a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gc {
    /// `timeout` with this `gc_grace_seconds`.
    Timeout(i64),
    /// `immediate`.
    Immediate,
    /// `disabled`.
    Disabled,
    /// `repair` with this `propagation_delay_in_seconds`; purges only after [`Op::SetRepairTime`].
    Repair(i64),
}

impl Gc {
    fn options(self) -> TableOptions {
        let tombstone_gc = match self {
            Gc::Timeout(_) => TombstoneGcMode::Timeout,
            Gc::Immediate => TombstoneGcMode::Immediate,
            Gc::Disabled => TombstoneGcMode::Disabled,
            Gc::Repair(delay) => TombstoneGcMode::Repair { propagation_delay_seconds: delay },
        };
        let gc_grace_seconds = if let Gc::Timeout(grace) = self { grace } else { TableOptions::default().gc_grace_seconds };
        TableOptions { tombstone_gc, gc_grace_seconds, ..TableOptions::default() }
    }
}

/// What a case fixes before its first op: the tables' gc modes and the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setup {
    pub(crate) wide: Gc,
    pub(crate) narrow: Gc,
    /// `false`: the model clock starts at [`START`], far behind the wall clock, so the commitlog
    /// barrier (wall clock of a segment's first append, R2.15) never holds a purge back, and the
    /// compaction ops that have no clock parameter run as their model-clock equivalents.
    /// `true`: it starts at the wall clock and never falls behind it (writes and those ops pull
    /// it forward), so the barrier binds, and `Engine::compact`, `compact_only_existing_data`
    /// and `compact_pending` run as they are.
    pub(crate) wall_clock: bool,
    /// Whether compaction ops run, and whether writes are restricted for them.
    pub(crate) compaction: Compaction,
}

/// Whether compaction ops run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compaction {
    /// They do nothing (only the reads after them run), so the restrictions a compacting
    /// sequence puts on its writes (see [`Model::adjusted`]) are off.
    Off,
    /// They run, and a sequence that has one writes under the restrictions of
    /// [`Model::adjusted`].
    On,
    /// They run, with no restriction on writes (regression tests of what the restrictions keep
    /// out of the random test).
    #[allow(dead_code)] // constructed by `model_regressions.rs`
    Unrestricted,
}

impl Default for Setup {
    /// The setup of the model test before compaction joined it: `timeout` with a grace of 2 s
    /// for the wide table, `immediate` for the narrow one, the model clock.
    fn default() -> Setup {
        Setup { wide: Gc::Timeout(2), narrow: Gc::Immediate, wall_clock: false, compaction: Compaction::On }
    }
}

/// A clustering key `(ck1, ck2)`; the narrow table ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ck(pub i32, pub &'static str);

/// A clustering prefix: `(ck1)` or `(ck1, ck2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    One(i32),
    Two(i32, &'static str),
}

/// One side of a clustering range: unbounded, inclusive or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum B {
    Unb,
    Incl(Prefix),
    Excl(Prefix),
}

/// A value of the regular column `v1 int` or `v2 text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    V1(i32),
    V2(&'static str),
}

/// One change inside a mutation. Timestamps are `Timestamp(ts)`; TTLs in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// `INSERT` (row marker), optionally `USING TTL`.
    Insert { ck: Ck, ts: i64, ttl: Option<i32> },
    /// Set a regular column.
    Set { ck: Ck, val: Val, ts: i64, ttl: Option<i32> },
    /// Delete a regular column (`"v1"` or `"v2"`).
    DeleteCell { ck: Ck, column: &'static str, ts: i64 },
    /// Set the static column `s`.
    SetStatic { value: &'static str, ts: i64, ttl: Option<i32> },
    /// Delete the static column `s`.
    DeleteStatic { ts: i64 },
    /// Delete a row, regular or shadowable.
    DeleteRow { ck: Ck, ts: i64, shadowable: bool },
    /// Delete a clustering range.
    DeleteRange { start: B, end: B, ts: i64 },
    /// Delete the partition.
    DeletePartition { ts: i64 },
}

/// A mutation of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) table: Table,
    pub(crate) pk: i32,
    pub(crate) items: Vec<Item>,
}

/// A token bound: the token of a partition key plus `delta`, or an extreme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenAt {
    Min,
    Max,
    Key { pk: i32, delta: i64 },
}

/// One side of a token range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TB {
    Unb,
    Incl(TokenAt),
    Excl(TokenAt),
}

/// Which partitions a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    All,
    Single(i32),
    Tokens(TB, TB),
}

/// A query compared with the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadOp {
    pub(crate) table: Table,
    pub(crate) range: Range,
    /// Clustering ranges (the harness keeps the valid ones, sorted, disjoint).
    pub(crate) slice: Option<Vec<(B, B)>>,
    pub(crate) limit: Option<u64>,
    /// Page sizes, used in turn until the last page; `None`: unpaged.
    pub(crate) pages: Option<Vec<u64>>,
    /// The read's `now` is the clock plus this.
    pub(crate) later: i64,
}

/// One step of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `Engine::apply`.
    Apply(Write),
    /// `Engine::apply_batch`.
    Batch(Vec<Write>),
    /// Advance the gc clock by this many seconds.
    Tick(i64),
    /// Compare a query.
    Read(ReadOp),
    /// `Engine::flush` of one table: its memtable becomes an sstable.
    Flush(Table),
    /// Close the engine and open it again on the same files.
    Reopen,
    /// Crash the simulated file system (unsynced data lost, kept or torn) and reopen: every
    /// write was acknowledged under `Batch` durability, so nothing may be lost (P1).
    Crash(Crash),
    /// `Engine::compact_sstables` of a non-empty subset of the table's sstables at the clock
    /// minus `lag` seconds: bit `i` of `pick` selects the `i`-th newest; when no bit selects
    /// one, the `pick % n`-th alone (so shrinking `pick` to 0 compacts the newest alone).
    Compact { table: Table, pick: u16, lag: i64 },
    /// Major compaction: `Engine::compact` (wall clock), or a flush and every sstable at the
    /// model clock.
    CompactAll(Table),
    /// `Engine::compact_only_existing_data` (wall clock), or `flush_all_and_rotate_commitlog`
    /// and every sstable with `only_existing_data` at the model clock.
    CompactOnlyExistingData(Table),
    /// `Engine::compact_pending` (wall clock), or the strategy's picks at the model clock.
    CompactPending(Table),
    /// `Engine::flush_all_and_rotate_commitlog`: lifts the commitlog barrier.
    Rotate,
    /// `Engine::set_repair_time` of one partition's token or of the whole ring, `ago` seconds
    /// before the clock (repair mode; re-set after every reopen, as the embedding node does).
    SetRepairTime { table: Table, pk: Option<i32>, ago: i64 },
}

impl Op {
    /// Whether the op may purge tombstones or expire data on disk.
    fn compacts(&self) -> bool {
        matches!(self, Op::Compact { .. } | Op::CompactAll(_) | Op::CompactOnlyExistingData(_) | Op::CompactPending(_))
    }
}

/// How an [`Op::Crash`] treats unsynced data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    DropAll,
    KeepAll,
    Torn,
}

const START: GcTime = GcTime(1_000_000);
const DIR: &str = "/db";
const CK2: [&str; 4] = ["", "a", "ab", "b"];
const V2: [&str; 3] = ["", "x", "y"];

fn wide_schema(gc: Gc) -> SchemaRef {
    Schema::builder("model", "wide")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck1", ColumnType::Int)
        .clustering_ordered("ck2", ColumnType::Text, true)
        .static_column("s", ColumnType::Text)
        .regular("v1", ColumnType::Int)
        .regular("v2", ColumnType::Text)
        .options(gc.options())
        .build()
        .unwrap()
}

fn narrow_schema(gc: Gc) -> SchemaRef {
    Schema::builder("model", "narrow")
        .partition_key("pk", ColumnType::Int)
        .regular("v1", ColumnType::Int)
        .regular("v2", ColumnType::Text)
        .options(gc.options())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn ts() -> impl Strategy<Value = i64> {
    1i64..=5
}

fn ttl() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![3 => Just(None), 1 => (1i32..=4).prop_map(Some)]
}

fn ck() -> impl Strategy<Value = Ck> {
    (0i32..6, select(&CK2[..])).prop_map(|(a, b)| Ck(a, b))
}

fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![(0i32..=6).prop_map(Prefix::One), ck().prop_map(|Ck(a, b)| Prefix::Two(a, b))]
}

fn bound() -> impl Strategy<Value = B> {
    prop_oneof![1 => Just(B::Unb), 2 => prefix().prop_map(B::Incl), 2 => prefix().prop_map(B::Excl)]
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![(0i32..3).prop_map(Val::V1), select(&V2[..]).prop_map(Val::V2)]
}

fn column() -> impl Strategy<Value = &'static str> {
    select(&["v1", "v2"][..])
}

/// Items for a table; the narrow one has no static column and only the full clustering range.
fn item(table: Table) -> BoxedStrategy<Item> {
    let ck = if table == Table::Wide { ck().boxed() } else { Just(Ck(0, "")).boxed() };
    let range = if table == Table::Wide { (bound(), bound()).boxed() } else { Just((B::Unb, B::Unb)).boxed() };
    let common = prop_oneof![
        4 => (ck.clone(), ts(), ttl()).prop_map(|(ck, ts, ttl)| Item::Insert { ck, ts, ttl }),
        6 => (ck.clone(), val(), ts(), ttl()).prop_map(|(ck, val, ts, ttl)| Item::Set { ck, val, ts, ttl }),
        2 => (ck.clone(), column(), ts()).prop_map(|(ck, column, ts)| Item::DeleteCell { ck, column, ts }),
        2 => (ck, ts(), prop::bool::weighted(0.4)).prop_map(|(ck, ts, shadowable)| Item::DeleteRow { ck, ts, shadowable }),
        2 => (range, ts()).prop_map(|((start, end), ts)| Item::DeleteRange { start, end, ts }),
        1 => ts().prop_map(|ts| Item::DeletePartition { ts }),
    ];
    match table {
        Table::Narrow => common.boxed(),
        Table::Wide => prop_oneof![
            17 => common,
            2 => (select(&V2[..]), ts(), ttl()).prop_map(|(value, ts, ttl)| Item::SetStatic { value, ts, ttl }),
            1 => ts().prop_map(|ts| Item::DeleteStatic { ts }),
        ]
        .boxed(),
    }
}

fn write() -> impl Strategy<Value = Write> {
    let of = |table: Table| (0i32..4, prop::collection::vec(item(table), 1..=4)).prop_map(move |(pk, items)| Write { table, pk, items });
    prop_oneof![3 => of(Table::Wide), 1 => of(Table::Narrow)]
}

fn token_bound() -> impl Strategy<Value = TB> {
    let at = prop_oneof![
        1 => Just(TokenAt::Min),
        1 => Just(TokenAt::Max),
        6 => (0i32..5, -1i64..=1).prop_map(|(pk, delta)| TokenAt::Key { pk, delta }),
    ];
    prop_oneof![1 => Just(TB::Unb), 2 => at.clone().prop_map(TB::Incl), 2 => at.prop_map(TB::Excl)]
}

fn read() -> impl Strategy<Value = ReadOp> {
    let range = prop_oneof![1 => Just(Range::All), 2 => (0i32..5).prop_map(Range::Single), 2 => (token_bound(), token_bound()).prop_map(|(s, e)| Range::Tokens(s, e))];
    let table = prop_oneof![3 => Just(Table::Wide), 1 => Just(Table::Narrow)];
    let slice = prop::option::weighted(0.6, prop::collection::vec((bound(), bound()), 0..=3));
    let limit = prop::option::weighted(0.3, 1u64..=8);
    let pages = prop::option::weighted(0.5, prop::collection::vec(1u64..=4, 1..=3));
    (table, range, slice, limit, pages, 0i64..=2).prop_map(|(table, range, slice, limit, pages, later)| {
        // The narrow table has no clustering columns: at most the full range.
        let slice = if table == Table::Narrow { slice.map(|_| vec![(B::Unb, B::Unb)]) } else { slice };
        ReadOp { table, range, slice, limit, pages, later }
    })
}

fn table() -> impl Strategy<Value = Table> {
    prop_oneof![1 => Just(Table::Wide), 1 => Just(Table::Narrow)]
}

fn gc() -> impl Strategy<Value = Gc> {
    prop_oneof![
        3 => (0i64..=3).prop_map(Gc::Timeout),
        2 => Just(Gc::Immediate),
        1 => Just(Gc::Disabled),
        2 => (0i64..=2).prop_map(Gc::Repair),
    ]
}

/// Gc modes of both tables, the clock (the wall clock in a quarter of the cases), and whether
/// compaction ops run (in 85% of the cases).
pub(crate) fn setup() -> impl Strategy<Value = Setup> {
    let compaction = prop_oneof![17 => Just(Compaction::On), 3 => Just(Compaction::Off)];
    (gc(), gc(), prop::bool::weighted(0.25), compaction).prop_map(|(wide, narrow, wall_clock, compaction)| Setup {
        wide,
        narrow,
        wall_clock,
        compaction,
    })
}

/// Sequences of up to `MAX_OPS` ops.
pub(crate) fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        12 => write().prop_map(Op::Apply),
        2 => prop::collection::vec(write(), 1..=4).prop_map(Op::Batch),
        3 => (0i64..=3).prop_map(Op::Tick),
        4 => read().prop_map(Op::Read),
        3 => table().prop_map(Op::Flush),
        1 => Just(Op::Reopen),
        1 => select(vec![Crash::DropAll, Crash::KeepAll, Crash::Torn]).prop_map(Op::Crash),
        3 => (table(), any::<u16>(), prop_oneof![3 => Just(0i64), 1 => 1i64..=2]).prop_map(|(table, pick, lag)| Op::Compact { table, pick, lag }),
        1 => table().prop_map(Op::CompactAll),
        1 => table().prop_map(Op::CompactOnlyExistingData),
        1 => table().prop_map(Op::CompactPending),
        1 => Just(Op::Rotate),
        1 => (table(), prop::option::weighted(0.5, 0i32..4), 0i64..=3).prop_map(|(table, pk, ago)| Op::SetRepairTime { table, pk, ago }),
    ];
    prop::collection::vec(op, 1..=MAX_OPS)
}

/// The longest sequence.
const MAX_OPS: usize = 200;

// ---------------------------------------------------------------------------------------------
// The runner

/// A cell of a table: partition, row, column (`""`: the row marker, `"s"`: the static column).
type CellKey = (Table, i32, Ck, &'static str);

/// The engine under test, the oracles and the controllable gc clock.
pub(crate) struct Model {
    engine: Engine,
    fs: SimFs,
    wide: Oracle,
    narrow: Oracle,
    /// The one clock of writes, reads and compactions: monotone, and never behind the `now` of
    /// a compaction that ran (a compaction at `now` may expire and purge; reads at an earlier
    /// clock would see what it legitimately dropped as missing).
    now: GcTime,
    setup: Setup,
    /// Per table (`Table as usize`): generated timestamps are shifted up by this, which is the
    /// newest timestamp a compaction so far may have forgotten (a purged tombstone, a purged
    /// expired cell). A write older than a purged tombstone may come back (that is what
    /// gc_grace means), so later writes stay above it; older data written *before* the
    /// compaction must stay deleted, and that is what is checked.
    ts_floor: [i64; 2],
    /// Repairs recorded, to record them again after a reopen (the engine keeps them in memory).
    repairs: Vec<(Table, Token, Token, GcTime)>,
    /// Expiring writes per cell (`""` for the row marker) as `(timestamp, expiry)`; see
    /// [`Model::ttl_without_tie`].
    expiring: HashMap<CellKey, Vec<(i64, GcTime)>>,
    /// Whether the sequence compacts (then the rules of [`Model::adjusted`] apply).
    compacts: bool,
    /// Full checks so far: every [`POINT_READ_EVERY`]-th also checks point reads.
    full_checks: std::cell::Cell<u64>,
}

/// Full checks per point-read check (each reads the 100 rows of the key domain; after every op
/// that would double the test's time in a debug build).
const POINT_READ_EVERY: u64 = 3;

fn values(prefix: Prefix) -> Vec<Value> {
    match prefix {
        Prefix::One(a) => vec![Value::Int(a)],
        Prefix::Two(a, b) => vec![Value::Int(a), Value::Text(b.into())],
    }
}

fn range_bound(b: B) -> RangeBound {
    match b {
        B::Unb => RangeBound::Unbounded,
        B::Incl(p) => RangeBound::Inclusive(values(p)),
        B::Excl(p) => RangeBound::Exclusive(values(p)),
    }
}

fn token_of(pk: i32) -> i64 {
    PartitionKey::from_values(&[Value::Int(pk)]).unwrap().token().0
}

fn token_bound_of(b: TB) -> std::ops::Bound<Token> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let at = |a: TokenAt| match a {
        TokenAt::Min => Token(i64::MIN),
        TokenAt::Max => Token(i64::MAX),
        TokenAt::Key { pk, delta } => Token(token_of(pk).saturating_add(delta)),
    };
    match b {
        TB::Unb => Unbounded,
        TB::Incl(a) => Included(at(a)),
        TB::Excl(a) => Excluded(at(a)),
    }
}

/// A human-readable rendering of a result: typed keys and values.
fn render(schema: &Schema, partitions: &[ResultPartition]) -> String {
    let cell = |id, bytes: &bytes::Bytes| {
        let def = schema.column_by_id(id).unwrap();
        format!("{}={:?}", def.name, Value::deserialize(def.ty, bytes).unwrap())
    };
    let mut out = String::new();
    for p in partitions {
        let pk = p.key.key.decode(&schema.partition_key_types()).unwrap();
        let statics: Vec<String> = p.static_cells.iter().map(|(id, b)| cell(*id, b)).collect();
        out.push_str(&format!("\n  pk {pk:?} static {statics:?}"));
        for r in &p.rows {
            let cells: Vec<String> = r.cells.iter().map(|(id, b)| cell(*id, b)).collect();
            out.push_str(&format!("\n    ck {:?} {cells:?}", schema.decode_clustering(&r.clustering).unwrap()));
        }
    }
    out
}

/// Rows of the wide table must come in `(ck1 ASC, ck2 DESC)` order: checks the clustering
/// encoding independently of it.
fn check_clustering_order(schema: &Schema, partitions: &[ResultPartition]) -> Result<(), String> {
    for p in partitions {
        let keys: Vec<(i32, std::cmp::Reverse<String>)> = p
            .rows
            .iter()
            .map(|r| match schema.decode_clustering(&r.clustering).unwrap().as_slice() {
                [Value::Int(a), Value::Text(b)] => (*a, std::cmp::Reverse(b.clone())),
                other => panic!("unexpected clustering key {other:?}"),
            })
            .collect();
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("rows out of (ck1 ASC, ck2 DESC) order: {keys:?}"));
        }
    }
    Ok(())
}

/// Appends a page to the pages so far, joining a partition continued across the page boundary.
fn append_page(all: &mut Vec<ResultPartition>, page: Vec<ResultPartition>) {
    for p in page {
        match all.last_mut() {
            Some(last) if last.key == p.key => {
                if last.static_cells.is_empty() {
                    last.static_cells = p.static_cells;
                }
                last.rows.extend(p.rows);
            }
            _ => all.push(p),
        }
    }
}

fn rows_counted(partitions: &[ResultPartition]) -> u64 {
    partitions.iter().map(|p| p.rows.len().max(1) as u64).sum()
}

impl Model {
    /// A fresh engine with both tables, and empty oracles; `compacts`: whether the sequence
    /// will compact.
    pub(crate) fn new(setup: Setup, compacts: bool) -> Model {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let fs = SimFs::new(n);
        let engine = Engine::open_with_fs(Arc::new(fs.clone()), DIR, test_options()).unwrap();
        let (wide, narrow) = (wide_schema(setup.wide), narrow_schema(setup.narrow));
        engine.create_table(wide.clone()).unwrap();
        engine.create_table(narrow.clone()).unwrap();
        let now = if setup.wall_clock { GcTime::now() } else { START };
        Model {
            engine,
            fs,
            wide: Oracle::new(wide),
            narrow: Oracle::new(narrow),
            now,
            setup,
            ts_floor: [0; 2],
            repairs: Vec::new(),
            expiring: HashMap::new(),
            compacts,
            full_checks: std::cell::Cell::new(0),
        }
    }

    fn oracle(&self, table: Table) -> &Oracle {
        match table {
            Table::Wide => &self.wide,
            Table::Narrow => &self.narrow,
        }
    }

    fn name(&self, table: Table) -> String {
        self.oracle(table).schema().full_name()
    }

    fn gc(&self, table: Table) -> Gc {
        match table {
            Table::Wide => self.setup.wide,
            Table::Narrow => self.setup.narrow,
        }
    }

    /// On the wall clock, the model clock never falls behind it: every deletion time is at least
    /// the wall time of its write, as the commitlog barrier assumes (R2.15).
    fn catch_up_with_wall_clock(&mut self) {
        if self.setup.wall_clock {
            self.now = self.now.max(GcTime::now());
        }
    }

    /// After a compaction of `table` at `now` (at most the model clock): raises the table's
    /// timestamp floor above everything the compaction may have forgotten. `gc_before` is
    /// bounded from above (the commitlog barrier and the overlap check only lower what is
    /// purged), so the bound is safe.
    fn compacted(&mut self, table: Table, now: GcTime) {
        let repaired = self.repairs.iter().filter(|r| r.0 == table).map(|r| r.3).max();
        let gc_before = match self.gc(table) {
            Gc::Timeout(grace) => Some(now.minus(grace)),
            Gc::Immediate => Some(now),
            Gc::Disabled => None,
            Gc::Repair(delay) => repaired.map(|r| r.minus(delay)),
        };
        if let Some(newest) = gc_before.and_then(|g| self.oracle(table).newest_forgettable(g, now)) {
            let floor = &mut self.ts_floor[table as usize];
            *floor = (*floor).max(newest.0);
        }
    }

    /// R1.29 3b meets R2.12b: of two expiring writes of one cell with the same timestamp, the one
    /// expiring later wins a merge — unless a compaction that saw only the other one, after it
    /// expired, rewrote it as a tombstone, which then wins (dead beats live). Both outcomes
    /// follow the rules, so in a sequence that compacts, an expiring write that would tie with
    /// an earlier one of different expiry is written without its TTL instead (ties between
    /// expiring and non-expiring writes stay: those resolve the same either way).
    fn ttl_without_tie(&mut self, key: CellKey, ts: i64, ttl: Option<i32>) -> Option<i32> {
        let ttl = ttl?;
        if !self.compacts {
            return Some(ttl);
        }
        let expiry = self.now.plus(i64::from(ttl));
        let writes = self.expiring.entry(key).or_default();
        if writes.iter().any(|&(t, e)| t == ts && e != expiry) {
            return None;
        }
        writes.push((ts, expiry));
        Some(ttl)
    }

    /// The items of `w` as written: timestamps above the table's floor, TTLs without ties (see
    /// [`Model::ttl_without_tie`]), and, in a sequence that compacts, shadowable row deletions
    /// written as regular ones. The rules themselves make R1.20 depend on compaction: an expiring
    /// marker counts as live in a merge, expired or not, but once a compaction that did not see
    /// the tombstone has rewritten it as a dead marker (R2.11 step 3) it cancels nothing, and a
    /// purged shadowable tombstone took the cells under it along (R2.19), so a marker written
    /// later cannot uncover them. Sequences without compaction keep shadowable deletions.
    fn adjusted(&mut self, w: &Write) -> Vec<Item> {
        let floor = self.ts_floor[w.table as usize];
        let mut items = w.items.clone();
        for item in &mut items {
            match item {
                Item::Insert { ck, ts, ttl } => {
                    *ts += floor;
                    *ttl = self.ttl_without_tie((w.table, w.pk, *ck, ""), *ts, *ttl);
                }
                Item::DeleteRow { ts, shadowable, .. } => {
                    *ts += floor;
                    *shadowable &= !self.compacts;
                }
                Item::Set { ck, val, ts, ttl } => {
                    *ts += floor;
                    let column = if matches!(val, Val::V1(_)) { "v1" } else { "v2" };
                    *ttl = self.ttl_without_tie((w.table, w.pk, *ck, column), *ts, *ttl);
                }
                Item::SetStatic { ts, ttl, .. } => {
                    *ts += floor;
                    *ttl = self.ttl_without_tie((w.table, w.pk, Ck(0, ""), "s"), *ts, *ttl);
                }
                Item::DeleteCell { ts, .. } | Item::DeleteStatic { ts } | Item::DeleteRange { ts, .. } | Item::DeletePartition { ts } => {
                    *ts += floor
                }
            }
        }
        items
    }

    /// Builds the mutation of `w` and records the same writes in the oracle. Invalid ranges are
    /// skipped after checking that the builder rejects them with `InvalidRange`.
    fn mutation(&mut self, w: &Write) -> Result<Mutation, String> {
        let items = self.adjusted(w);
        let now = self.now;
        let oracle = match w.table {
            Table::Wide => &mut self.wide,
            Table::Narrow => &mut self.narrow,
        };
        let schema = oracle.schema().clone();
        let pk = [Value::Int(w.pk)];
        let mut b = Mutation::builder(&schema, &pk).now(now);
        let mut o = oracle.write(&pk, now).map_err(|e| e.to_string())?;
        let ck_of = |ck: Ck| if w.table == Table::Wide { vec![Value::Int(ck.0), Value::Text(ck.1.into())] } else { vec![] };
        let err = |e: talus::format::Error| e.to_string();
        for item in &items {
            match *item {
                Item::Insert { ck, ts, ttl } => {
                    b = b.insert_with_ttl(&ck_of(ck), Timestamp(ts), ttl);
                    o.insert(&ck_of(ck), Timestamp(ts), ttl).map_err(err)?;
                }
                Item::Set { ck, val, ts, ttl } => {
                    let (column, value) = match val {
                        Val::V1(v) => ("v1", Value::Int(v)),
                        Val::V2(v) => ("v2", Value::Text(v.into())),
                    };
                    b = b.set_with_ttl(&ck_of(ck), column, value.clone(), Timestamp(ts), ttl);
                    o.set(&ck_of(ck), column, &value, Timestamp(ts), ttl).map_err(err)?;
                }
                Item::DeleteCell { ck, column, ts } => {
                    b = b.delete_cell(&ck_of(ck), column, Timestamp(ts));
                    o.delete_cell(&ck_of(ck), column, Timestamp(ts)).map_err(err)?;
                }
                Item::SetStatic { value, ts, ttl } => {
                    b = b.set_static_with_ttl("s", Value::Text(value.into()), Timestamp(ts), ttl);
                    o.set_static("s", &Value::Text(value.into()), Timestamp(ts), ttl).map_err(err)?;
                }
                Item::DeleteStatic { ts } => {
                    b = b.delete_static("s", Timestamp(ts));
                    o.delete_static("s", Timestamp(ts)).map_err(err)?;
                }
                Item::DeleteRow { ck, ts, shadowable } => {
                    b = if shadowable {
                        b.delete_row_shadowable(&ck_of(ck), Timestamp(ts))
                    } else {
                        b.delete_row(&ck_of(ck), Timestamp(ts))
                    };
                    o.delete_row(&ck_of(ck), Timestamp(ts), shadowable).map_err(err)?;
                }
                Item::DeleteRange { start, end, ts } => {
                    let (start, end) = (range_bound(start), range_bound(end));
                    let probe = Mutation::builder(&schema, &pk).now(now).delete_range(start.clone(), end.clone(), Timestamp(ts)).build();
                    match probe {
                        Ok(_) => {
                            b = b.delete_range(start.clone(), end.clone(), Timestamp(ts));
                            o.delete_range(&start, &end, Timestamp(ts)).map_err(err)?;
                        }
                        Err(talus::format::Error::InvalidRange(_)) => {}
                        Err(e) => return Err(format!("range {start:?}..{end:?} rejected with a non-InvalidRange error: {e}")),
                    }
                }
                Item::DeletePartition { ts } => {
                    b = b.delete_partition(Timestamp(ts));
                    o.delete_partition(Timestamp(ts));
                }
            }
        }
        b.build().map_err(|e| format!("builder rejected {w:?}: {e}"))
    }

    /// Runs one op and the checks that follow it.
    pub(crate) fn step(&mut self, op: &Op) -> Result<(), String> {
        if op.compacts() && self.setup.compaction == Compaction::Off {
            return self.check_full();
        }
        match op {
            Op::Apply(w) => {
                self.catch_up_with_wall_clock();
                let m = self.mutation(w)?;
                self.engine.apply(&m).map_err(|e| format!("apply: {e}"))?;
                self.check_full()
            }
            Op::Batch(ws) => {
                self.catch_up_with_wall_clock();
                let ms = ws.iter().map(|w| self.mutation(w)).collect::<Result<Vec<_>, _>>()?;
                self.engine.apply_batch(&ms).map_err(|e| format!("apply_batch: {e}"))?;
                self.check_full()
            }
            Op::Tick(s) => {
                self.now = self.now.plus(*s);
                self.check_full()
            }
            Op::Read(r) => self.check_read(r),
            Op::Flush(table) => {
                self.engine.flush(&self.oracle(*table).schema().full_name()).map_err(|e| format!("flush: {e}"))?;
                self.check_full()
            }
            Op::Reopen => self.reopen(None),
            Op::Crash(crash) => self.reopen(Some(*crash)),
            Op::Compact { table, pick, lag } => {
                let name = self.name(*table);
                let generations = self.engine.sstables(&name).map_err(|e| format!("sstables: {e}"))?;
                if generations.is_empty() {
                    return self.check_full();
                }
                let chosen = subset(&generations, *pick);
                let now = self.now.minus(*lag);
                let options = CompactionOptions { now: Some(now), only_existing_data: false };
                self.engine.compact_sstables(&name, &chosen, options).map_err(|e| format!("compact_sstables {chosen:?}: {e}"))?;
                self.compaction_done(*table, now)
            }
            Op::CompactAll(table) => {
                let name = self.name(*table);
                if self.setup.wall_clock {
                    self.engine.compact(&name).map_err(|e| format!("compact: {e}"))?;
                } else {
                    self.engine.flush(&name).map_err(|e| format!("flush: {e}"))?;
                    self.compact_all_at_model_clock(&name, false)?;
                }
                self.catch_up_with_wall_clock();
                self.compaction_done(*table, self.now)
            }
            Op::CompactOnlyExistingData(table) => {
                let name = self.name(*table);
                if self.setup.wall_clock {
                    self.engine.compact_only_existing_data(&name).map_err(|e| format!("compact_only_existing_data: {e}"))?;
                } else {
                    self.engine.flush_all_and_rotate_commitlog().map_err(|e| format!("flush_all_and_rotate_commitlog: {e}"))?;
                    self.compact_all_at_model_clock(&name, true)?;
                }
                self.catch_up_with_wall_clock();
                self.compaction_done(*table, self.now)
            }
            Op::CompactPending(table) => {
                let name = self.name(*table);
                if self.setup.wall_clock {
                    self.engine.compact_pending(&name).map_err(|e| format!("compact_pending: {e}"))?;
                } else {
                    // The strategy picks by the wall clock; the jobs run at the model clock (a
                    // fully expired pick by the wall clock may not be one by the model clock,
                    // and would be picked again: a few rounds).
                    for _ in 0..4 {
                        let Some(job) = self.engine.next_compaction(&name).map_err(|e| format!("next_compaction: {e}"))? else { break };
                        let options = CompactionOptions { now: Some(self.now), only_existing_data: false };
                        self.engine.compact_sstables(&name, &job.inputs, options).map_err(|e| format!("compact_sstables {job:?}: {e}"))?;
                    }
                }
                self.catch_up_with_wall_clock();
                self.compaction_done(*table, self.now)
            }
            Op::Rotate => {
                self.engine.flush_all_and_rotate_commitlog().map_err(|e| format!("flush_all_and_rotate_commitlog: {e}"))?;
                self.check_full()
            }
            Op::SetRepairTime { table, pk, ago } => {
                let (first, last) = match pk {
                    Some(pk) => (Token(token_of(*pk)), Token(token_of(*pk))),
                    None => (Token(i64::MIN), Token(i64::MAX)),
                };
                let repair = (*table, first, last, self.now.minus(*ago));
                self.engine.set_repair_time(&self.name(*table), first, last, repair.3).map_err(|e| format!("set_repair_time: {e}"))?;
                self.repairs.push(repair);
                self.check_full()
            }
        }
    }

    /// Compacts every sstable of `name` at the model clock (what a major compaction does).
    fn compact_all_at_model_clock(&self, name: &str, only_existing_data: bool) -> Result<Option<CompactionReport>, String> {
        let generations = self.engine.sstables(name).map_err(|e| format!("sstables: {e}"))?;
        if generations.is_empty() {
            return Ok(None);
        }
        let options = CompactionOptions { now: Some(self.now), only_existing_data };
        self.engine.compact_sstables(name, &generations, options).map(Some).map_err(|e| format!("compact_sstables (all): {e}"))
    }

    /// After compactions of `table` at `now` (not after the model clock): the floor rises and all
    /// is read.
    fn compaction_done(&mut self, table: Table, now: GcTime) -> Result<(), String> {
        self.compacted(table, now);
        self.check_full()
    }

    /// Closes the engine, crashes the file system if asked, reopens and checks everything.
    fn reopen(&mut self, crash: Option<Crash>) -> Result<(), String> {
        // Replace the engine with a throwaway one first, so the old one is dropped (and its
        // directory lock released) before the reopen.
        let placeholder = Engine::open_with_fs(Arc::new(SimFs::new(0)), DIR, test_options()).map_err(|e| e.to_string())?;
        drop(std::mem::replace(&mut self.engine, placeholder));
        if let Some(crash) = crash {
            let mode = match crash {
                Crash::DropAll => CrashMode::DropAll,
                Crash::KeepAll => CrashMode::KeepAll,
                Crash::Torn => CrashMode::Random { keep: 0.5, tear: 0.3 },
            };
            self.fs = self.fs.crash(mode);
        }
        self.engine = Engine::open_with_fs(Arc::new(self.fs.clone()), DIR, test_options()).map_err(|e| format!("reopen: {e}"))?;
        for (table, first, last, time) in &self.repairs {
            self.engine.set_repair_time(&self.name(*table), *first, *last, *time).map_err(|e| format!("set_repair_time: {e}"))?;
        }
        self.check_full()
    }

    /// A full read of both tables at the current clock; every [`POINT_READ_EVERY`]-th time,
    /// also every row of the key domain read by a point read and compared with the full read.
    fn check_full(&self) -> Result<(), String> {
        let n = self.full_checks.get();
        self.full_checks.set(n + 1);
        for table in [Table::Wide, Table::Narrow] {
            let read = ReadOp { table, range: Range::All, slice: None, limit: None, pages: None, later: 0 };
            self.check_read(&read)?;
            if n.is_multiple_of(POINT_READ_EVERY) {
                self.check_point_reads(table)?;
            }
        }
        Ok(())
    }

    /// `Engine::read_row` of every `(pk, ck)` of the domain agrees with the full query (already
    /// checked against the oracle): the same live cells where the query has the row, `None`
    /// where it has not.
    fn check_point_reads(&self, table: Table) -> Result<(), String> {
        let schema = self.oracle(table).schema();
        let mut query = Query::new(&schema.full_name(), PartitionRange::all());
        query.now = self.now;
        let result = self.engine.query(&query).map_err(|e| format!("query: {e}"))?;
        let cks: Vec<Vec<Value>> = match table {
            Table::Wide => (0..6).flat_map(|a| CK2.iter().map(move |b| vec![Value::Int(a), Value::Text((*b).into())])).collect(),
            Table::Narrow => vec![Vec::new()],
        };
        for pk in 0..4 {
            let key = PartitionKey::from_values(&[Value::Int(pk)]).unwrap().decorate();
            let partition = result.partitions.iter().find(|p| p.key == key);
            for ck in &cks {
                let prefix = schema.clustering_prefix(ck).unwrap();
                let expected = partition.and_then(|p| p.rows.iter().find(|r| r.clustering == prefix));
                let actual = self.engine.read_row(schema, &[Value::Int(pk)], ck, self.now).map_err(|e| format!("read_row: {e}"))?;
                if actual.as_ref() != expected {
                    return Err(format!(
                        "point read of {table:?} pk {pk} ck {ck:?} at now {}: {actual:?}, the query has {expected:?}",
                        self.now.0
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_read(&self, r: &ReadOp) -> Result<(), String> {
        let oracle = self.oracle(r.table);
        let schema = oracle.schema();
        let partitions = match r.range {
            Range::All => PartitionRange::all(),
            Range::Single(pk) => PartitionRange::Single(PartitionKey::from_values(&[Value::Int(pk)]).unwrap().decorate()),
            Range::Tokens(s, e) => PartitionRange::Tokens { start: token_bound_of(s), end: token_bound_of(e) },
        };
        // Keep the valid clustering ranges, sorted by start and disjoint.
        let clustering = r.slice.as_ref().map(|ranges| {
            let mut valid: Vec<_> = ranges
                .iter()
                .map(|(s, e)| (range_bound(*s), range_bound(*e)))
                .filter_map(|(s, e)| schema.range_positions(&s, &e).ok().map(|p| (p, (s, e))))
                .collect();
            valid.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
            let mut kept: Vec<(talus::format::Position, (RangeBound, RangeBound))> = Vec::new();
            for (positions, range) in valid {
                if kept.last().is_none_or(|(last_end, _)| *last_end <= positions.0) {
                    kept.push((positions.1, range));
                }
            }
            kept.into_iter().map(|(_, range)| range).collect::<Vec<_>>()
        });
        let now = self.now.plus(r.later);
        let read = Read { partitions: partitions.clone(), clustering: clustering.clone(), row_limit: r.limit, now };
        let expected = oracle.read(&read).map_err(|e| format!("oracle: {e}"))?;
        if r.table == Table::Wide {
            check_clustering_order(schema, &expected)?;
        }

        let mut query = Query::new(&schema.full_name(), partitions);
        query.now = now;
        query.row_limit = r.limit;
        if let Some(ranges) = &clustering {
            query = query.with_clustering_ranges(schema, ranges).map_err(|e| format!("with_clustering_ranges: {e}"))?;
        }
        let actual = match &r.pages {
            None => {
                let result = self.engine.query(&query).map_err(|e| format!("query: {e}"))?;
                if result.paging_state.is_some() {
                    return Err("an unpaged query returned a paging state".into());
                }
                if result.stats.live_rows != rows_counted(&result.partitions) {
                    return Err(format!("stats.live_rows {} for {} rows", result.stats.live_rows, rows_counted(&result.partitions)));
                }
                result.partitions
            }
            Some(sizes) => {
                let mut all = Vec::new();
                let mut state = None;
                for page in 0.. {
                    if page > 10_000 {
                        return Err("paging does not end".into());
                    }
                    let size = sizes[page % sizes.len()];
                    let mut q = query.clone();
                    q.page_size = Some(size);
                    q.paging_state = state.take();
                    let result = self.engine.query(&q).map_err(|e| format!("query page {page}: {e}"))?;
                    if result.stats.live_rows > size {
                        return Err(format!("page {page} of size {size} returned {} rows", result.stats.live_rows));
                    }
                    append_page(&mut all, result.partitions);
                    match result.paging_state {
                        Some(s) => state = Some(s),
                        None => break,
                    }
                }
                all
            }
        };
        if actual != expected {
            return Err(format!(
                "{r:?} at now {} (clustering {clustering:?}):\nexpected (oracle):{}\nactual (engine):{}",
                now.0,
                render(schema, &expected),
                render(schema, &actual)
            ));
        }
        Ok(())
    }
}

/// The sstables bit `i` of `pick` selects (`i`-th of `generations`), or the `pick % n`-th alone.
fn subset(generations: &[u64], pick: u16) -> Vec<u64> {
    let chosen: Vec<u64> = generations.iter().enumerate().filter(|(i, _)| *i < 16 && pick >> i & 1 == 1).map(|(_, g)| *g).collect();
    if chosen.is_empty() {
        vec![generations[usize::from(pick) % generations.len()]]
    } else {
        chosen
    }
}

/// Runs a whole sequence on a fresh engine set up as before compaction joined the test (see
/// [`Setup::default`]); the error names the failing op.
#[allow(dead_code)] // the harness of `model_regressions.rs`
pub(crate) fn run(ops: &[Op]) -> Result<(), String> {
    run_with(Setup::default(), ops)
}

/// Runs a whole sequence on a fresh engine set up by `setup`; the error names the failing op.
pub(crate) fn run_with(setup: Setup, ops: &[Op]) -> Result<(), String> {
    let mut model = Model::new(setup, setup.compaction == Compaction::On && ops.iter().any(Op::compacts));
    for (i, op) in ops.iter().enumerate() {
        model.step(op).map_err(|e| format!("{setup:?}, op #{i} {op:?}:\n{e}"))?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("TALUS_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

#[test]
fn engine_matches_oracle() {
    // `model_regressions` includes this file for its harness; the random run belongs here only.
    if module_path!() != "model" {
        return;
    }
    let base = Config::default();
    let config = Config {
        cases: cases(),
        // Shrinking replays whole sequences; bound it (PROPTEST_MAX_SHRINK_ITERS still wins).
        max_shrink_iters: if base.max_shrink_iters == u32::MAX { 20_000 } else { base.max_shrink_iters },
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        )))),
        ..base
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(setup(), ops()), |(setup, ops)| run_with(setup, &ops).map_err(TestCaseError::fail));
    if let Err(e) = result {
        panic!("{e}");
    }
}
