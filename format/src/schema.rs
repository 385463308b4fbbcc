//! Table schemas: key and value columns with their types, and table options (DESIGN §2).
//!
//! Column ids: static and regular columns share one id space, assigned in declaration order.
//! Options carry ScyllaDB's names and defaults (R2.14a, R2.23–R2.26, R6 checklist); later parts of
//! the engine read them.

use std::sync::Arc;

use crate::cell::ColumnId;
use crate::clustering_encoding::{decode_key, encode_component};
use crate::error::{Error, Result};
use crate::position::ClusteringPrefix;
use crate::token::murmur3_x64_128;
use crate::value::{ColumnType, Value};

/// Largest encoded clustering key (bytes); keeps keys small enough for every index structure.
pub const MAX_CLUSTERING_KEY_BYTES: usize = u16::MAX as usize;

/// Identifier of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u128);

/// A declared column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// Id (meaningful for static and regular columns).
    pub id: ColumnId,
}

/// A clustering column with its order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringColumn {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// `CLUSTERING ORDER BY ... DESC` (R1.7).
    pub descending: bool,
}

/// Tombstone GC mode (R2.14a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstoneGcMode {
    /// `now - gc_grace_seconds` (the default for a single-node engine).
    #[default]
    Timeout,
    /// `last repair time of the range - propagation delay`; never purge before a repair.
    Repair {
        /// `propagation_delay_in_seconds`, default 3600.
        propagation_delay_seconds: i64,
    },
    /// `now`.
    Immediate,
    /// Never purge.
    Disabled,
}

/// Options shared by every compaction strategy (R2.23).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionCommon {
    /// `enabled`, default true.
    pub enabled: bool,
    /// `min_threshold`, default 4.
    pub min_threshold: usize,
    /// `max_threshold`, default 32.
    pub max_threshold: usize,
    /// `tombstone_threshold`, default 0.2.
    pub tombstone_threshold: f64,
    /// `tombstone_compaction_interval` in seconds, default 86400.
    pub tombstone_compaction_interval: i64,
    /// `unchecked_tombstone_compaction`, default false.
    pub unchecked_tombstone_compaction: bool,
}

impl Default for CompactionCommon {
    fn default() -> Self {
        CompactionCommon {
            enabled: true,
            min_threshold: 4,
            max_threshold: 32,
            tombstone_threshold: 0.2,
            tombstone_compaction_interval: 86_400,
            unchecked_tombstone_compaction: false,
        }
    }
}

/// The compaction strategy of a table and its parameters (R2.24–R2.26).
#[derive(Debug, Clone, PartialEq)]
pub enum CompactionStrategy {
    /// `SizeTieredCompactionStrategy` (the default).
    SizeTiered {
        /// `bucket_low`, default 0.5.
        bucket_low: f64,
        /// `bucket_high`, default 1.5.
        bucket_high: f64,
        /// `min_sstable_size` in bytes, default 50 MiB.
        min_sstable_size: u64,
        /// `min_sstable_age` in seconds, default 3600.
        min_sstable_age: i64,
    },
    /// `LeveledCompactionStrategy`.
    Leveled {
        /// `sstable_size_in_mb`, default 160.
        sstable_size_in_mb: u64,
        /// Fan-out, 10.
        fanout: u64,
    },
    /// `TimeWindowCompactionStrategy`.
    TimeWindow {
        /// Window length in seconds (`compaction_window_unit` × `compaction_window_size`), default 1 day.
        window_seconds: i64,
        /// `expired_sstable_check_frequency_seconds`, default 600.
        expired_sstable_check_frequency_seconds: i64,
    },
}

impl CompactionStrategy {
    /// Size-tiered with ScyllaDB's defaults (R2.24).
    pub fn size_tiered() -> CompactionStrategy {
        CompactionStrategy::SizeTiered { bucket_low: 0.5, bucket_high: 1.5, min_sstable_size: 50 << 20, min_sstable_age: 3600 }
    }

    /// Leveled with ScyllaDB's defaults (R2.25).
    pub fn leveled() -> CompactionStrategy {
        CompactionStrategy::Leveled { sstable_size_in_mb: 160, fanout: 10 }
    }

    /// Time-window with ScyllaDB's defaults (R2.26).
    pub fn time_window() -> CompactionStrategy {
        CompactionStrategy::TimeWindow { window_seconds: 86_400, expired_sstable_check_frequency_seconds: 600 }
    }
}

/// Block compression of sstables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored raw.
    None,
    /// LZ4 (block format), ScyllaDB's default for user tables (R4.17: `LZ4Compressor` and
    /// `LZ4WithDictsCompressor`); the default here too: it decompresses several times faster
    /// than zstd, which a point read that misses the block cache pays for once per block.
    Lz4,
    /// zstd at `level` (1–22, default 3, R4.17).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

/// Per-table options.
#[derive(Debug, Clone, PartialEq)]
pub struct TableOptions {
    /// `tombstone_gc = {'mode': ...}`.
    pub tombstone_gc: TombstoneGcMode,
    /// `gc_grace_seconds`, default 864000 (10 days).
    pub gc_grace_seconds: i64,
    /// `default_time_to_live` in seconds, 0 = none.
    pub default_ttl: i32,
    /// Compaction strategy.
    pub compaction: CompactionStrategy,
    /// Options common to all strategies.
    pub compaction_common: CompactionCommon,
    /// Block compression.
    pub compression: Compression,
    /// Target uncompressed data block size in bytes, default 4 KiB (R4.17 chunk length).
    pub block_size: usize,
    /// `bloom_filter_fp_chance`, default 0.01.
    pub bloom_filter_fp_chance: f64,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            tombstone_gc: TombstoneGcMode::Timeout,
            gc_grace_seconds: 864_000,
            default_ttl: 0,
            compaction: CompactionStrategy::size_tiered(),
            compaction_common: CompactionCommon::default(),
            compression: Compression::Lz4,
            block_size: 4096,
            bloom_filter_fp_chance: 0.01,
        }
    }
}

/// A table schema. Cheap to clone through [`SchemaRef`].
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Table id.
    pub id: TableId,
    /// Keyspace name.
    pub keyspace: String,
    /// Table name.
    pub name: String,
    /// Partition key columns, in key order.
    pub partition_key: Vec<ColumnDef>,
    /// Clustering columns, in key order.
    pub clustering: Vec<ClusteringColumn>,
    /// Static columns.
    pub static_columns: Vec<ColumnDef>,
    /// Regular columns.
    pub regular_columns: Vec<ColumnDef>,
    /// Options.
    pub options: TableOptions,
}

/// A shared schema.
pub type SchemaRef = Arc<Schema>;

impl Schema {
    /// Starts a schema for `keyspace.name`.
    pub fn builder(keyspace: &str, name: &str) -> SchemaBuilder {
        SchemaBuilder {
            schema: Schema {
                id: TableId::for_name(keyspace, name),
                keyspace: keyspace.into(),
                name: name.into(),
                partition_key: Vec::new(),
                clustering: Vec::new(),
                static_columns: Vec::new(),
                regular_columns: Vec::new(),
                options: TableOptions::default(),
            },
            next_id: 0,
        }
    }

    /// `keyspace.name`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.keyspace, self.name)
    }

    /// Whether `full_name` is this table's `keyspace.name` (without building it).
    pub fn has_full_name(&self, full_name: &str) -> bool {
        full_name.len() == self.keyspace.len() + 1 + self.name.len()
            && full_name.starts_with(self.keyspace.as_str())
            && full_name.as_bytes()[self.keyspace.len()] == b'.'
            && full_name.ends_with(self.name.as_str())
    }

    /// The regular column called `name`.
    pub fn regular_column(&self, name: &str) -> Result<&ColumnDef> {
        self.regular_columns.iter().find(|c| c.name == name).ok_or_else(|| self.unknown("regular", name))
    }

    /// The static column called `name`.
    pub fn static_column(&self, name: &str) -> Result<&ColumnDef> {
        self.static_columns.iter().find(|c| c.name == name).ok_or_else(|| self.unknown("static", name))
    }

    /// The static or regular column with id `id`.
    pub fn column_by_id(&self, id: ColumnId) -> Option<&ColumnDef> {
        self.static_columns.iter().chain(&self.regular_columns).find(|c| c.id == id)
    }

    fn unknown(&self, kind: &'static str, name: &str) -> Error {
        Error::UnknownColumn { table: self.full_name(), kind, column: name.into() }
    }

    /// Checks that `value` may be stored in `column`.
    pub fn check_type(column: &str, expected: ColumnType, value: &Value) -> Result<()> {
        if value.column_type() != expected {
            return Err(Error::WrongType { column: column.into(), expected: expected.name(), found: value.column_type().name() });
        }
        value.validate()
    }

    /// Encodes up to all clustering components into a prefix, checking arity, types and size.
    pub fn clustering_prefix(&self, values: &[Value]) -> Result<ClusteringPrefix> {
        self.check_arity("clustering", self.clustering.len(), values.len(), false)?;
        let mut out = Vec::new();
        for (column, value) in self.clustering.iter().zip(values) {
            Schema::check_type(&column.name, column.ty, value)?;
            encode_component(value, column.descending, &mut out);
        }
        if out.len() > MAX_CLUSTERING_KEY_BYTES {
            return Err(Error::TooLarge { what: "clustering key".into(), size: out.len(), limit: MAX_CLUSTERING_KEY_BYTES });
        }
        // Cannot truncate: values.len() <= clustering.len(), and a schema has far fewer than 2^16 columns.
        Ok(ClusteringPrefix::from_encoded(out.into(), values.len() as u16))
    }

    /// A [`Error::KeyArity`] unless `found` components fit a `key` of `expected` components
    /// (`exact`: all of them; otherwise a prefix).
    fn check_arity(&self, key: &'static str, expected: usize, found: usize, exact: bool) -> Result<()> {
        if found > expected || (exact && found < expected) {
            return Err(Error::KeyArity { table: self.full_name(), key, expected, found });
        }
        Ok(())
    }

    /// Encodes a full clustering key (every component present).
    pub fn clustering_key(&self, values: &[Value]) -> Result<ClusteringPrefix> {
        self.check_arity("clustering", self.clustering.len(), values.len(), true)?;
        self.clustering_prefix(values)
    }

    /// Decodes a clustering prefix into typed values.
    pub fn decode_clustering(&self, prefix: &ClusteringPrefix) -> Result<Vec<Value>> {
        let types: Vec<(ColumnType, bool)> = self.clustering.iter().map(|c| (c.ty, c.descending)).collect();
        decode_key(&types, prefix.encoded())
    }

    /// The decorated partition key of typed `values`, checking arity, types and size.
    pub fn decorated_key(&self, values: &[Value]) -> Result<crate::DecoratedKey> {
        self.check_arity("partition", self.partition_key.len(), values.len(), true)?;
        for (column, value) in self.partition_key.iter().zip(values) {
            Schema::check_type(&column.name, column.ty, value)?;
        }
        Ok(crate::PartitionKey::from_values(values)?.decorate())
    }

    /// Partition key types in order.
    pub fn partition_key_types(&self) -> Vec<ColumnType> {
        self.partition_key.iter().map(|c| c.ty).collect()
    }
}

impl TableId {
    /// The id derived from the table's full name (stable across restarts).
    pub fn for_name(keyspace: &str, name: &str) -> TableId {
        let [a, b] = murmur3_x64_128(format!("{keyspace}.{name}").as_bytes(), 0);
        TableId((u128::from(a) << 64) | u128::from(b))
    }
}

/// Builds a [`Schema`].
#[derive(Debug)]
pub struct SchemaBuilder {
    schema: Schema,
    next_id: u32,
}

impl SchemaBuilder {
    /// Appends a partition key column.
    pub fn partition_key(mut self, name: &str, ty: ColumnType) -> Self {
        self.schema.partition_key.push(ColumnDef { name: name.into(), ty, id: ColumnId(u32::MAX) });
        self
    }

    /// Appends an ascending clustering column.
    pub fn clustering(self, name: &str, ty: ColumnType) -> Self {
        self.clustering_ordered(name, ty, false)
    }

    /// Appends a clustering column with the given order.
    pub fn clustering_ordered(mut self, name: &str, ty: ColumnType, descending: bool) -> Self {
        self.schema.clustering.push(ClusteringColumn { name: name.into(), ty, descending });
        self
    }

    /// Adds a static column.
    pub fn static_column(mut self, name: &str, ty: ColumnType) -> Self {
        let id = self.take_id();
        self.schema.static_columns.push(ColumnDef { name: name.into(), ty, id });
        self
    }

    /// Adds a regular column.
    pub fn regular(mut self, name: &str, ty: ColumnType) -> Self {
        let id = self.take_id();
        self.schema.regular_columns.push(ColumnDef { name: name.into(), ty, id });
        self
    }

    /// Sets the table options.
    pub fn options(mut self, options: TableOptions) -> Self {
        self.schema.options = options;
        self
    }

    /// Overrides the table id.
    pub fn id(mut self, id: TableId) -> Self {
        self.schema.id = id;
        self
    }

    fn take_id(&mut self) -> ColumnId {
        let id = ColumnId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Validates and returns the schema: at least one partition key column, unique names, static
    /// columns only with clustering columns, sane options.
    pub fn build(self) -> Result<SchemaRef> {
        let s = self.schema;
        let bad = |msg: String| Err(Error::InvalidOption(format!("table {}.{}: {msg}", s.keyspace, s.name)));
        if s.partition_key.is_empty() {
            return bad("a table needs at least one partition key column".into());
        }
        if !s.static_columns.is_empty() && s.clustering.is_empty() {
            return bad("static columns need clustering columns".into());
        }
        let mut names: Vec<&str> = s.partition_key.iter().map(|c| c.name.as_str()).collect();
        names.extend(s.clustering.iter().map(|c| c.name.as_str()));
        names.extend(s.static_columns.iter().chain(&s.regular_columns).map(|c| c.name.as_str()));
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if let Some(dup) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("column {:?} declared twice", dup[0]));
        }
        let o = &s.options;
        if o.gc_grace_seconds < 0 {
            return bad(format!("gc_grace_seconds {} is negative", o.gc_grace_seconds));
        }
        if !(0..=crate::time::MAX_TTL_SECONDS).contains(&o.default_ttl) {
            return bad(format!("default_time_to_live {} outside 0..={}", o.default_ttl, crate::time::MAX_TTL_SECONDS));
        }
        if !(o.bloom_filter_fp_chance > 0.0 && o.bloom_filter_fp_chance <= 1.0) {
            return bad(format!("bloom_filter_fp_chance {} outside (0, 1]", o.bloom_filter_fp_chance));
        }
        Ok(Arc::new(s))
    }
}

/// One side of a clustering range given by typed values (slices and range deletions).
#[derive(Debug, Clone, PartialEq)]
pub enum RangeBound {
    /// No bound on this side.
    Unbounded,
    /// The bound includes keys extending this prefix.
    Inclusive(Vec<Value>),
    /// The bound excludes keys extending this prefix.
    Exclusive(Vec<Value>),
}

impl Schema {
    /// The positions `[start, end)` covered by a clustering range (R1.21); an empty or inverted
    /// range is an [`Error::InvalidRange`].
    pub fn range_positions(&self, start: &RangeBound, end: &RangeBound) -> Result<(crate::Position, crate::Position)> {
        use crate::position::{BoundKind, Position};
        let start_pos = match start {
            RangeBound::Unbounded => Position::before_all_rows(),
            RangeBound::Inclusive(v) => BoundKind::InclusiveStart.position(self.clustering_prefix(v)?),
            RangeBound::Exclusive(v) => BoundKind::ExclusiveStart.position(self.clustering_prefix(v)?),
        };
        let end_pos = match end {
            RangeBound::Unbounded => Position::after_all_rows(),
            RangeBound::Inclusive(v) => BoundKind::InclusiveEnd.position(self.clustering_prefix(v)?),
            RangeBound::Exclusive(v) => BoundKind::ExclusiveEnd.position(self.clustering_prefix(v)?),
        };
        if start_pos >= end_pos {
            return Err(Error::InvalidRange(format!("table {}: start {start:?} is not before end {end:?}", self.full_name())));
        }
        Ok((start_pos, end_pos))
    }
}
