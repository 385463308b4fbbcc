//! Mutations: a change to one partition of one table, built and validated against the schema.
//!
//! A [`Mutation`] carries a [`PartitionUpdate`]: partition tombstone, static cells, rows by
//! clustering key and range tombstones. [`MutationBuilder`] is the ergonomic way to make one;
//! every problem (unknown column, wrong type, missing key component, oversized key or value, bad
//! TTL, inverted range) becomes a typed error from [`MutationBuilder::build`].

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cell::{Cell, ColumnId, RowMarker};
use crate::error::{Error, Result};
use crate::partition_key::DecoratedKey;
use crate::position::ClusteringPrefix;
use crate::range_tombstone::RangeTombstone;
use crate::row::{Cells, Row, RowTombstone};
use crate::schema::{RangeBound, Schema, TableId};
use crate::time::{GcTime, Timestamp, MAX_TTL_SECONDS};
use crate::tombstone::Tombstone;
use crate::value::Value;

/// Largest serialized cell value: 16 MiB (half of the smallest useful commitlog segment).
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// The content of a mutation for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionUpdate {
    /// The partition tombstone (possibly empty).
    pub tombstone: Tombstone,
    /// Static row cells.
    pub static_cells: Cells,
    /// Rows by full clustering key.
    pub rows: BTreeMap<ClusteringPrefix, Row>,
    /// Range tombstones, in insertion order.
    pub range_tombstones: Vec<RangeTombstone>,
}

impl PartitionUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.tombstone.is_none() && self.static_cells.is_empty() && self.rows.is_empty() && self.range_tombstones.is_empty()
    }

    /// Reconciles `other` into `self` (R1.29–R1.33; no shadowing, no clock).
    pub fn apply(&mut self, other: &PartitionUpdate) {
        self.tombstone.apply(other.tombstone);
        self.static_cells.apply(&other.static_cells);
        for (key, row) in &other.rows {
            self.rows.entry(key.clone()).or_default().apply(row);
        }
        self.range_tombstones.extend(other.range_tombstones.iter().cloned());
    }
}

/// A change to one partition of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// The table.
    pub table: TableId,
    /// The partition.
    pub key: DecoratedKey,
    /// What changes.
    pub update: PartitionUpdate,
}

impl Mutation {
    /// Starts a mutation of the partition with key `partition_key` in `schema`'s table.
    pub fn builder<'s>(schema: &'s Schema, partition_key: &[Value]) -> MutationBuilder<'s> {
        let key = schema.decorated_key(partition_key);
        let (key, error) = match key {
            Ok(k) => (Some(k), None),
            Err(e) => (None, Some(e)),
        };
        MutationBuilder { schema, key, now: GcTime::now(), update: PartitionUpdate::default(), error }
    }
}

/// Builds a [`Mutation`]; the first error is kept and returned by [`MutationBuilder::build`].
#[derive(Debug)]
pub struct MutationBuilder<'s> {
    schema: &'s Schema,
    key: Option<DecoratedKey>,
    now: GcTime,
    update: PartitionUpdate,
    error: Option<Error>,
}

impl<'s> MutationBuilder<'s> {
    /// Sets the gc-clock time used for deletion times and TTL expiry (default: `GcTime::now()`).
    pub fn now(mut self, now: GcTime) -> Self {
        self.now = now;
        self
    }

    fn record(&mut self, result: Result<()>) {
        if let (Err(e), None) = (result, &self.error) {
            self.error = Some(e);
        }
    }

    fn row_mut(&mut self, clustering: &[Value]) -> Result<&mut Row> {
        let key = self.schema.clustering_key(clustering)?;
        Ok(self.update.rows.entry(key).or_default())
    }

    fn effective_ttl(&self, ttl: Option<i32>) -> Result<Option<i32>> {
        match ttl {
            Some(t) if !(1..=MAX_TTL_SECONDS).contains(&t) => {
                Err(Error::InvalidOption(format!("TTL {t} outside 1..={MAX_TTL_SECONDS} (R0.3)")))
            }
            Some(t) => Ok(Some(t)),
            None if self.schema.options.default_ttl > 0 => Ok(Some(self.schema.options.default_ttl)),
            None => Ok(None),
        }
    }

    fn live_cell(&self, column: &str, value: &Value, ts: Timestamp, ttl: Option<i32>, is_static: bool) -> Result<(ColumnId, Cell)> {
        let def = if is_static { self.schema.static_column(column)? } else { self.schema.regular_column(column)? };
        Schema::check_type(&def.name, def.ty, value)?;
        let bytes: Bytes = value.serialize();
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(Error::TooLarge { what: format!("value of column {column}"), size: bytes.len(), limit: MAX_VALUE_BYTES });
        }
        let cell = match self.effective_ttl(ttl)? {
            Some(ttl) => Cell::Expiring { timestamp: ts, value: bytes, expiry: self.now.plus(i64::from(ttl)), ttl },
            None => Cell::Live { timestamp: ts, value: bytes },
        };
        Ok((def.id, cell))
    }

    /// `INSERT`: writes the row marker (with the table's default TTL, if any) (R1.18).
    pub fn insert(self, clustering: &[Value], ts: Timestamp) -> Self {
        self.insert_with_ttl(clustering, ts, None)
    }

    /// `INSERT ... USING TTL`: writes an expiring row marker.
    pub fn insert_with_ttl(mut self, clustering: &[Value], ts: Timestamp, ttl: Option<i32>) -> Self {
        let result = self.effective_ttl(ttl).and_then(|ttl| {
            let now = self.now;
            let marker = match ttl {
                Some(ttl) => RowMarker::Expiring { timestamp: ts, ttl, expiry: now.plus(i64::from(ttl)) },
                None => RowMarker::Live { timestamp: ts },
            };
            let row = self.row_mut(clustering)?;
            row.marker.apply(&marker);
            Ok(())
        });
        self.record(result);
        self
    }

    /// Sets a regular column of a row.
    pub fn set(self, clustering: &[Value], column: &str, value: Value, ts: Timestamp) -> Self {
        self.set_with_ttl(clustering, column, value, ts, None)
    }

    /// Sets a regular column of a row with a TTL (`None` = the table default).
    pub fn set_with_ttl(mut self, clustering: &[Value], column: &str, value: Value, ts: Timestamp, ttl: Option<i32>) -> Self {
        let result = self.live_cell(column, &value, ts, ttl, false).and_then(|(id, cell)| {
            self.row_mut(clustering)?.cells.apply_cell(id, &cell);
            Ok(())
        });
        self.record(result);
        self
    }

    /// Deletes a regular column of a row (a cell tombstone, R1.14).
    pub fn delete_cell(mut self, clustering: &[Value], column: &str, ts: Timestamp) -> Self {
        let now = self.now;
        let result = self.schema.regular_column(column).map(|c| c.id).and_then(|id| {
            let cell = Cell::Dead { timestamp: ts, deletion_time: now };
            self.row_mut(clustering)?.cells.apply_cell(id, &cell);
            Ok(())
        });
        self.record(result);
        self
    }

    /// Sets a static column.
    pub fn set_static(self, column: &str, value: Value, ts: Timestamp) -> Self {
        self.set_static_with_ttl(column, value, ts, None)
    }

    /// Sets a static column with a TTL.
    pub fn set_static_with_ttl(mut self, column: &str, value: Value, ts: Timestamp, ttl: Option<i32>) -> Self {
        let result = self.live_cell(column, &value, ts, ttl, true).map(|(id, cell)| self.update.static_cells.apply_cell(id, &cell));
        self.record(result);
        self
    }

    /// Deletes a static column.
    pub fn delete_static(mut self, column: &str, ts: Timestamp) -> Self {
        let now = self.now;
        let result = self
            .schema
            .static_column(column)
            .map(|c| self.update.static_cells.apply_cell(c.id, &Cell::Dead { timestamp: ts, deletion_time: now }));
        self.record(result);
        self
    }

    /// Deletes a row (a regular row tombstone, R1.19).
    pub fn delete_row(self, clustering: &[Value], ts: Timestamp) -> Self {
        let t = Tombstone::new(ts, self.now);
        self.row_tombstone(clustering, RowTombstone::regular(t))
    }

    /// Deletes a row with a shadowable tombstone (materialized views, R1.20).
    pub fn delete_row_shadowable(self, clustering: &[Value], ts: Timestamp) -> Self {
        let t = Tombstone::new(ts, self.now);
        self.row_tombstone(clustering, RowTombstone::shadowable(t))
    }

    fn row_tombstone(mut self, clustering: &[Value], t: RowTombstone) -> Self {
        let result = self.row_mut(clustering).map(|row| row.tombstone.apply(t));
        self.record(result);
        self
    }

    /// Deletes the rows between two clustering bounds (a range tombstone, R1.21).
    pub fn delete_range(mut self, start: RangeBound, end: RangeBound, ts: Timestamp) -> Self {
        let tombstone = Tombstone::new(ts, self.now);
        let result = self
            .schema
            .range_positions(&start, &end)
            .map(|(start, end)| self.update.range_tombstones.push(RangeTombstone { start, end, tombstone }));
        self.record(result);
        self
    }

    /// Deletes the whole partition (R1.23).
    pub fn delete_partition(mut self, ts: Timestamp) -> Self {
        self.update.tombstone.apply(Tombstone::new(ts, self.now));
        self
    }

    /// Returns the mutation, or the first error met while building it.
    pub fn build(self) -> Result<Mutation> {
        match (self.error, self.key) {
            (Some(e), _) => Err(e),
            (None, Some(key)) => Ok(Mutation { table: self.schema.id, key, update: self.update }),
            (None, None) => Err(Error::InvalidOption("mutation without a partition key".into())),
        }
    }
}
