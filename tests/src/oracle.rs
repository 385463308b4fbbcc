//! The oracle: a naive, obviously-correct model of Talus's data model (DESIGN §9).
//!
//! # Why it can be trusted
//!
//! - **Nothing is merged on write.** Every write is stored exactly as given, in plain lists:
//!   per partition the partition tombstones and range tombstones, per row the row tombstones
//!   (regular or shadowable), the markers and the writes of each cell, per static column its
//!   writes. Nothing is reconciled, shadowed, expired or erased until a read asks.
//! - **A read applies the rules literally, from scratch, over all writes** of
//!   `reference/storage-semantics.md`: the partition tombstone is the max of all (R0.4, R1.23);
//!   a row is covered by the max of the partition tombstone and every range tombstone whose
//!   `[start, end)` contains it (R1.21, R1.25); the row tombstone is the max regular and the max
//!   shadowable one, the shadowable part cancelled by a newer live marker (R1.19, R1.20); each
//!   cell's value is the winner of R1.29 over every write to it, the marker the winner of R1.30;
//!   a value is visible iff its timestamp is above the covering tombstone (R1.26) and it has not
//!   expired (R1.13); a row is returned iff R1.28 holds; static cells are covered only by the
//!   partition tombstone, and a partition with only static cells is one row unless the query
//!   restricts clustering (R1.24, R5.4).
//! - **It shares no logic with the engine.** It never calls `Row::apply`, `Cell::compact`,
//!   `RangeTombstoneList` or the compactor; tombstone GC, eager shadowing and merging of sources
//!   do not exist here (by R1.33 and R2.19 they must not change what a read returns). It uses
//!   only plain data types of `talus-format` (keys, values, clocks) and the schema's key
//!   encoding and `range_positions`, which give comparable positions (R1.10–R1.11).
//! - It is deliberately slow (every read rescans every write) and short enough to check by eye.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::RangeBounds;

use bytes::Bytes;
use talus::{PartitionRange, ResultPartition, ResultRow};
use talus_format::{
    ClusteringPrefix, ColumnId, DecoratedKey, GcTime, PartitionKey, Position, RangeBound, Result, Schema, SchemaRef, Timestamp, Value,
};

/// A deletion `(timestamp, deletion_time)`; the derived order is timestamp, then time (R0.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    /// Write timestamp of the deletion.
    pub timestamp: Timestamp,
    /// Gc-clock time of the deletion.
    pub time: GcTime,
}

/// The TTL of a value: it expires at `expiry` (R0.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// Seconds.
    pub ttl: i32,
    /// `now + ttl` at write time.
    pub expiry: GcTime,
}

/// One write of a cell. A row marker is a cell without a value (R1.30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellWrite {
    /// A value, possibly with a TTL.
    Value {
        /// Write timestamp.
        timestamp: Timestamp,
        /// Serialized value (empty for markers).
        value: Bytes,
        /// TTL, if any.
        ttl: Option<Ttl>,
    },
    /// A cell tombstone (R1.14).
    Deleted(Deletion),
}

impl CellWrite {
    fn timestamp(&self) -> Timestamp {
        match self {
            CellWrite::Value { timestamp, .. } => *timestamp,
            CellWrite::Deleted(d) => d.timestamp,
        }
    }
}

/// R1.29, step by step: `Greater` means `a` wins over `b`.
pub fn reconcile(a: &CellWrite, b: &CellWrite) -> Ordering {
    use CellWrite::{Deleted, Value};
    // 1. The higher write timestamp wins.
    a.timestamp().cmp(&b.timestamp()).then_with(|| match (a, b) {
        // 2. Same timestamp, one dead and one live: dead wins.
        (Deleted(_), Value { .. }) => Ordering::Greater,
        (Value { .. }, Deleted(_)) => Ordering::Less,
        // 4. Both dead: the larger deletion time wins, compared as u64.
        (Deleted(x), Deleted(y)) => (x.time.0 as u64).cmp(&(y.time.0 as u64)),
        // 3. Both live.
        (Value { value: va, ttl: ta, .. }, Value { value: vb, ttl: tb, .. }) => match (ta, tb) {
            // a. Expiring beats non-expiring.
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            // b. Later expiry wins, then the smaller ttl; c. then the larger value.
            (Some(x), Some(y)) => x.expiry.cmp(&y.expiry).then(y.ttl.cmp(&x.ttl)).then(va.cmp(vb)),
            (None, None) => va.cmp(vb),
        },
    })
}

/// The winner of R1.29 over all writes of one cell.
fn winner(writes: &[CellWrite]) -> Option<&CellWrite> {
    writes.iter().max_by(|a, b| reconcile(a, b))
}

/// Whether the winning write is a value visible at `now` under `covering`: not covered
/// (`ts <= covering.ts` is dead, R1.26) and not expired (`expiry <= now` is dead, R1.13).
fn visible(write: &CellWrite, covering: Option<Deletion>, now: GcTime) -> Option<&Bytes> {
    match write {
        CellWrite::Value { timestamp, value, ttl } => {
            let covered = covering.is_some_and(|c| *timestamp <= c.timestamp);
            let expired = ttl.is_some_and(|t| t.expiry <= now);
            (!covered && !expired).then_some(value)
        }
        CellWrite::Deleted(_) => None,
    }
}

/// Live cells of a set of columns: each column's R1.29 winner, if visible.
fn live_cells(columns: &BTreeMap<ColumnId, Vec<CellWrite>>, covering: Option<Deletion>, now: GcTime) -> Vec<(ColumnId, Bytes)> {
    columns.iter().filter_map(|(id, writes)| winner(writes).and_then(|w| visible(w, covering, now)).map(|v| (*id, v.clone()))).collect()
}

/// Every write to one clustering row.
#[derive(Debug, Clone, Default)]
struct RowWrites {
    /// Row deletions; `true` marks a shadowable one (R1.20).
    tombstones: Vec<(Deletion, bool)>,
    /// Row markers written by `INSERT` (R1.18).
    markers: Vec<CellWrite>,
    /// Cell writes by column.
    cells: BTreeMap<ColumnId, Vec<CellWrite>>,
}

impl RowWrites {
    /// The effective row tombstone (R1.19, R1.20): a regular deletion sets both parts, a
    /// shadowable one only the shadowable part; the shadowable part falls back to the regular
    /// one when the reconciled marker is live (ignoring expiry) and newer.
    fn tombstone(&self) -> Option<Deletion> {
        let regular = self.tombstones.iter().filter(|(_, shadowable)| !shadowable).map(|(d, _)| *d).max();
        let shadowable = self.tombstones.iter().map(|(d, _)| *d).max();
        let marker = winner(&self.markers);
        match (marker, shadowable) {
            (Some(CellWrite::Value { timestamp, .. }), Some(s)) if *timestamp > s.timestamp => regular,
            _ => shadowable,
        }
    }
}

/// Every write to one partition.
#[derive(Debug, Clone, Default)]
struct PartitionWrites {
    tombstones: Vec<Deletion>,
    /// `[start, end)` and the deletion (R1.21).
    range_tombstones: Vec<(Position, Position, Deletion)>,
    static_cells: BTreeMap<ColumnId, Vec<CellWrite>>,
    rows: BTreeMap<ClusteringPrefix, RowWrites>,
}

impl PartitionWrites {
    /// The live cells of the row at `key`, or `None` if the row does not exist at `now` (R1.28).
    fn live_row(&self, key: &ClusteringPrefix, row: &RowWrites, now: GcTime) -> Option<Vec<(ColumnId, Bytes)>> {
        let at = Position::at_row(key.clone());
        let partition = self.tombstones.iter().max().copied();
        let range = self.range_tombstones.iter().filter(|(s, e, _)| *s <= at && at < *e).map(|(_, _, d)| *d).max();
        // R1.25: the effective tombstone is the max over every level.
        let covering = [partition, range, row.tombstone()].into_iter().max().flatten();
        let marker_live = winner(&row.markers).and_then(|m| visible(m, covering, now)).is_some();
        let cells = live_cells(&row.cells, covering, now);
        (marker_live || !cells.is_empty()).then_some(cells)
    }
}

/// What a read asks for.
#[derive(Debug, Clone)]
pub struct Read {
    /// Which partitions.
    pub partitions: PartitionRange,
    /// Clustering ranges (any list; the engine wants them sorted and disjoint); `None` reads every
    /// row without restricting clustering.
    pub clustering: Option<Vec<(RangeBound, RangeBound)>>,
    /// At most this many live rows (a static-only partition counts as one, R5.4).
    pub row_limit: Option<u64>,
    /// The gc clock of the read (expiry).
    pub now: GcTime,
}

impl Read {
    /// Every row of every partition at `now`.
    pub fn all(now: GcTime) -> Read {
        Read { partitions: PartitionRange::all(), clustering: None, row_limit: None, now }
    }
}

/// The model of one table: every write, as given.
#[derive(Debug, Clone)]
pub struct Oracle {
    schema: SchemaRef,
    partitions: BTreeMap<DecoratedKey, PartitionWrites>,
}

impl Oracle {
    /// An empty table of `schema`.
    pub fn new(schema: SchemaRef) -> Oracle {
        Oracle { schema, partitions: BTreeMap::new() }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Starts writes to partition `pk` at gc time `now` (deletion times, TTL expiry), like
    /// `Mutation::builder(schema, pk).now(now)`.
    pub fn write(&mut self, pk: &[Value], now: GcTime) -> Result<PartitionWriter<'_>> {
        let key = PartitionKey::from_values(pk)?.decorate();
        Ok(PartitionWriter { schema: &self.schema, partition: self.partitions.entry(key).or_default(), now })
    }

    /// Runs a read: partitions with something live, in ring order, rows in clustering order.
    pub fn read(&self, read: &Read) -> Result<Vec<ResultPartition>> {
        let ranges = match &read.clustering {
            None => vec![(Position::before_all_rows(), Position::after_all_rows())],
            Some(ranges) => ranges.iter().map(|(s, e)| self.schema.range_positions(s, e)).collect::<Result<_>>()?,
        };
        let in_slice = |key: &ClusteringPrefix| {
            let at = Position::at_row(key.clone());
            ranges.iter().any(|(s, e)| *s <= at && at < *e)
        };
        // R1.24: a single unbounded range does not restrict clustering.
        let restricts = read.clustering.as_ref().is_some_and(|r| r[..] != [(RangeBound::Unbounded, RangeBound::Unbounded)]);
        let mut left = read.row_limit.unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for (key, partition) in &self.partitions {
            if left == 0 {
                break;
            }
            let wanted = match &read.partitions {
                PartitionRange::Single(k) => k == key,
                PartitionRange::Tokens { start, end } => (*start, *end).contains(&key.token),
            };
            if !wanted {
                continue;
            }
            // R1.24: only the partition tombstone covers static cells.
            let static_cells = live_cells(&partition.static_cells, partition.tombstones.iter().max().copied(), read.now);
            let mut rows = Vec::new();
            for (ck, row) in partition.rows.iter().filter(|(ck, _)| in_slice(ck)) {
                if left == 0 {
                    break;
                }
                if let Some(cells) = partition.live_row(ck, row, read.now) {
                    rows.push(ResultRow { clustering: ck.clone(), cells });
                    left -= 1;
                }
            }
            if rows.is_empty() && (static_cells.is_empty() || restricts) {
                continue;
            }
            if rows.is_empty() {
                left -= 1; // a static-only partition is one row (R5.4)
            }
            out.push(ResultPartition { key: key.clone(), static_cells, rows });
        }
        Ok(out)
    }
}

impl Oracle {
    /// The newest timestamp among the writes a compaction at `now` with `gc_before` may forget
    /// (R2.8, R2.12): deletions of every level with `time < gc_before`, and expiring values and
    /// markers that expired by `now` and were written before `gc_before`. `None` when there is
    /// none. This does not say what a compaction does (that is the engine's business): a test
    /// uses it as an upper bound, so that later writes it compares never hide under a tombstone
    /// that may be gone (writes older than a purged tombstone may legitimately come back).
    pub fn newest_forgettable(&self, gc_before: GcTime, now: GcTime) -> Option<Timestamp> {
        let deletion = |d: &Deletion| (d.time < gc_before).then_some(d.timestamp);
        let cell = |w: &CellWrite| match w {
            CellWrite::Deleted(d) => deletion(d),
            CellWrite::Value { timestamp, ttl: Some(t), .. } => {
                (t.expiry <= now && t.expiry.0.saturating_sub(i64::from(t.ttl)) < gc_before.0).then_some(*timestamp)
            }
            CellWrite::Value { ttl: None, .. } => None,
        };
        let mut newest: Option<Timestamp> = None;
        for p in self.partitions.values() {
            let from_partition = p.tombstones.iter().filter_map(deletion);
            let from_ranges = p.range_tombstones.iter().filter_map(|(_, _, d)| deletion(d));
            let from_statics = p.static_cells.values().flatten().filter_map(cell);
            let from_rows = p.rows.values().flat_map(|r| {
                r.tombstones
                    .iter()
                    .filter_map(|(d, _)| deletion(d))
                    .chain(r.markers.iter().filter_map(cell))
                    .chain(r.cells.values().flatten().filter_map(cell))
            });
            let max = from_partition.chain(from_ranges).chain(from_statics).chain(from_rows).max();
            newest = newest.max(max);
        }
        newest
    }
}

/// Records writes to one partition, each exactly as given.
#[derive(Debug)]
pub struct PartitionWriter<'a> {
    schema: &'a Schema,
    partition: &'a mut PartitionWrites,
    now: GcTime,
}

impl PartitionWriter<'_> {
    fn row(&mut self, ck: &[Value]) -> Result<&mut RowWrites> {
        let key = self.schema.clustering_key(ck)?;
        Ok(self.partition.rows.entry(key).or_default())
    }

    /// A value written now, with an explicit TTL or the table's default (R0.3).
    fn value(&self, value: Bytes, timestamp: Timestamp, ttl: Option<i32>) -> CellWrite {
        let default = self.schema.options.default_ttl;
        let ttl = ttl.or((default > 0).then_some(default));
        let ttl = ttl.map(|ttl| Ttl { ttl, expiry: GcTime(self.now.0.saturating_add(i64::from(ttl))) });
        CellWrite::Value { timestamp, value, ttl }
    }

    fn deletion(&self, timestamp: Timestamp) -> Deletion {
        Deletion { timestamp, time: self.now }
    }

    /// `INSERT`: a row marker (R1.18).
    pub fn insert(&mut self, ck: &[Value], ts: Timestamp, ttl: Option<i32>) -> Result<()> {
        let marker = self.value(Bytes::new(), ts, ttl);
        self.row(ck)?.markers.push(marker);
        Ok(())
    }

    /// Sets a regular column.
    pub fn set(&mut self, ck: &[Value], column: &str, value: &Value, ts: Timestamp, ttl: Option<i32>) -> Result<()> {
        let id = self.schema.regular_column(column)?.id;
        let write = self.value(value.serialize(), ts, ttl);
        self.row(ck)?.cells.entry(id).or_default().push(write);
        Ok(())
    }

    /// Deletes a regular column (a cell tombstone, R1.14).
    pub fn delete_cell(&mut self, ck: &[Value], column: &str, ts: Timestamp) -> Result<()> {
        let id = self.schema.regular_column(column)?.id;
        let write = CellWrite::Deleted(self.deletion(ts));
        self.row(ck)?.cells.entry(id).or_default().push(write);
        Ok(())
    }

    /// Sets a static column.
    pub fn set_static(&mut self, column: &str, value: &Value, ts: Timestamp, ttl: Option<i32>) -> Result<()> {
        let id = self.schema.static_column(column)?.id;
        let write = self.value(value.serialize(), ts, ttl);
        self.partition.static_cells.entry(id).or_default().push(write);
        Ok(())
    }

    /// Deletes a static column.
    pub fn delete_static(&mut self, column: &str, ts: Timestamp) -> Result<()> {
        let id = self.schema.static_column(column)?.id;
        let write = CellWrite::Deleted(self.deletion(ts));
        self.partition.static_cells.entry(id).or_default().push(write);
        Ok(())
    }

    /// Deletes a row; `shadowable` for a view-style shadowable deletion (R1.19, R1.20).
    pub fn delete_row(&mut self, ck: &[Value], ts: Timestamp, shadowable: bool) -> Result<()> {
        let deletion = self.deletion(ts);
        self.row(ck)?.tombstones.push((deletion, shadowable));
        Ok(())
    }

    /// Deletes the rows between two bounds (R1.21); an empty range is an `InvalidRange` error.
    pub fn delete_range(&mut self, start: &RangeBound, end: &RangeBound, ts: Timestamp) -> Result<()> {
        let (start, end) = self.schema.range_positions(start, end)?;
        self.partition.range_tombstones.push((start, end, self.deletion(ts)));
        Ok(())
    }

    /// Deletes the partition (R1.23).
    pub fn delete_partition(&mut self, ts: Timestamp) {
        self.partition.tombstones.push(self.deletion(ts));
    }
}
