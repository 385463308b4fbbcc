//! Talus as a [`KvPeer`], in two shapes ([`TalusShape`]): every Talus write and read of the
//! benchmarks goes through here.
//!
//! - **Key-value** (`talus`): table `bench.<space>` of [`crate::kv_table`]: partition key
//!   `k blob` = the key, one regular cell `v blob` = the value, no clustering column. Partitions
//!   are ordered by token (Murmur3 of the key), so there is no key order: a full scan visits keys
//!   in token order, [`KvPeer::seek`] reads the `n` partitions from the key's token on, a bounded
//!   [`KvPeer::scan`] and range deletes are not supported. A delete is a partition tombstone.
//! - **Wide** (`talus-wide`): partition key `g blob` = the first [`WIDE_GROUP_BITS`] (10) bits of
//!   the key (zero-padded, as 2 bytes), clustering key `c blob` = the whole key, regular cell
//!   `v blob`. The benchmark keys ([`crate::key`]) start with 8 well-spread bytes, so they fall
//!   evenly into 1,024 partitions (2^20 keys: 1,024 rows, about 120 KiB, a partition). A group is
//!   a contiguous range of keys, and keys are in byte order inside it: a bounded scan and a seek
//!   walk the groups in key order with single-partition reads restricted to clustering ranges
//!   (key order, as the peers), a range delete writes one range tombstone in each partition it
//!   touches (one `apply_batch`). A full scan reads the partitions in token order. A delete is a
//!   row tombstone.
//!
//! Engine options: [`EngineOptions::default`] (background flush and compaction on) with the
//! common settings of [`PeerOptions`]: `memtable_table_limit` = `memtable_bytes`,
//! `block_cache_bytes`, commitlog durability `Periodic(`[`TALUS_SYNC_PERIOD`]`)` or, with
//! `sync_writes`, `Batch(0)`, table compression zstd level 3 ([`crate::ZSTD`]), LZ4 (the
//! engine's default) or none. Writes carry [`Timestamp::now`] (strictly increasing in the
//! process), so an overwrite wins.
//!
//! Point reads ([`KvPeer::get`]) go through [`TalusPeer::point_read`], one line to change to
//! switch to a dedicated point-read API of the engine; writes through [`KvPeer::put`] (one
//! `Engine::apply` of one mutation each).

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use talus::commitlog::{CommitlogOptions, Durability};
use talus::format::schema::{Compression as TableCompression, RangeBound, TableOptions};
use talus::format::{ColumnType, GcTime, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::sstable_set::{sstable_file_name, SSTABLE_DIR};
use talus::{CompactionShutdown, Engine, EngineOptions, PartitionRange, Query, QueryResult, ResultRow};

use super::{check_spaces, find_space, Compression, KvPeer, PeerError, PeerOptions, SpaceId, Visitor};

/// The commitlog sync interval of `Durability::Periodic` (see the fairness notes in [`super`]).
pub const TALUS_SYNC_PERIOD: Duration = Duration::from_millis(100);

/// Bits of the key that make the partition key of the wide shape: 1,024 partitions.
pub const WIDE_GROUP_BITS: u32 = 10;

/// Rows per page of scans: scans are paged, as a client's would be, so a full scan holds one
/// page in memory.
pub const SCAN_PAGE_ROWS: u64 = 1_000;

/// How Talus lays out the keys (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TalusShape {
    /// A partition per key.
    KeyValue,
    /// A partition per group of keys (the first [`WIDE_GROUP_BITS`] bits), a row per key.
    Wide,
}

impl TalusShape {
    /// `kv` or `wide`.
    pub fn name(self) -> &'static str {
        match self {
            TalusShape::KeyValue => "kv",
            TalusShape::Wide => "wide",
        }
    }

    /// The engine's name in this shape: `talus` or `talus-wide`.
    fn peer_name(self) -> &'static str {
        match self {
            TalusShape::KeyValue => "talus",
            TalusShape::Wide => "talus-wide",
        }
    }
}

/// Talus: one engine with a table per [`PeerOptions::spaces`] entry, in one [`TalusShape`].
pub struct TalusPeer {
    dir: PathBuf,
    shape: TalusShape,
    names: Vec<String>,
    schemas: Vec<SchemaRef>,
    engine: Engine,
}

impl std::fmt::Debug for TalusPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TalusPeer").field("dir", &self.dir).field("shape", &self.shape).field("spaces", &self.names).finish_non_exhaustive()
    }
}

/// A blob value.
fn blob(bytes: &[u8]) -> Value {
    Value::Blob(Bytes::copy_from_slice(bytes))
}

/// The wide shape's group of `key`: its first [`WIDE_GROUP_BITS`] bits (zero-padded).
fn group_of(key: &[u8]) -> u16 {
    let first = u16::from_be_bytes([key.first().copied().unwrap_or(0), key.get(1).copied().unwrap_or(0)]);
    first >> (16 - WIDE_GROUP_BITS)
}

/// The partition key of group `group`: its bits at the top of 2 bytes.
fn group_key(group: u16) -> Value {
    blob(&(group << (16 - WIDE_GROUP_BITS)).to_be_bytes())
}

/// The last group.
const LAST_GROUP: u16 = (1 << WIDE_GROUP_BITS) - 1;

impl TalusPeer {
    /// Opens (creating it if needed) a Talus engine in `dir` with a table per keyspace of
    /// `options`, in `shape`.
    pub fn open(dir: &Path, options: &PeerOptions, shape: TalusShape) -> Result<TalusPeer, PeerError> {
        let name = shape.peer_name();
        check_spaces(name, options)?;
        let engine = Engine::open(dir, TalusPeer::engine_options(options))
            .map_err(|e| PeerError::engine(name, format!("opening {}", dir.display()), e))?;
        let table_options = TableOptions {
            compression: match options.compression {
                Compression::Zstd => crate::ZSTD,
                Compression::Lz4 => TableCompression::Lz4,
                Compression::None => TableCompression::None,
            },
            ..TableOptions::default()
        };
        let mut schemas = Vec::with_capacity(options.spaces.len());
        for space in &options.spaces {
            let schema = match shape {
                TalusShape::KeyValue => crate::kv_table(space, table_options.clone()),
                TalusShape::Wide => Schema::builder("bench", space)
                    .partition_key("g", ColumnType::Blob)
                    .clustering("c", ColumnType::Blob)
                    .regular("v", ColumnType::Blob)
                    .options(table_options.clone())
                    .build(),
            }
            .map_err(|e| PeerError::engine(name, format!("schema of {space:?}"), e))?;
            let schema = match engine.schema(&schema.full_name()) {
                Ok(existing) => existing,
                Err(_) => {
                    engine.create_table(schema.clone()).map_err(|e| PeerError::engine(name, format!("creating table {space:?}"), e))?;
                    schema
                }
            };
            schemas.push(schema);
        }
        Ok(TalusPeer { dir: dir.to_path_buf(), shape, names: options.spaces.clone(), schemas, engine })
    }

    /// The engine options for `options` (see the module docs).
    pub fn engine_options(options: &PeerOptions) -> EngineOptions {
        let durability = if options.sync_writes { Durability::Batch(Duration::ZERO) } else { Durability::Periodic(TALUS_SYNC_PERIOD) };
        EngineOptions {
            memtable_table_limit: usize::try_from(options.memtable_bytes).unwrap_or(usize::MAX),
            block_cache_bytes: options.block_cache_bytes,
            commitlog: CommitlogOptions { durability, ..CommitlogOptions::default() },
            ..EngineOptions::default()
        }
    }

    /// The engine (for measurements beyond the trait).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The shape.
    pub fn shape(&self) -> TalusShape {
        self.shape
    }

    /// The value under `key` in `schema`'s table, through [`Engine::read_row`] (the key's row;
    /// the partition's only row in the key-value shape): the one Talus point read of the
    /// benchmarks ([`KvPeer::get`] and everything built on it).
    pub fn point_read(&self, schema: &Schema, key: &[u8]) -> Result<Option<Vec<u8>>, PeerError> {
        let row = match self.shape {
            TalusShape::KeyValue => self.engine.read_row(schema, &[blob(key)], &[], GcTime::now()),
            TalusShape::Wide => self.engine.read_row(schema, &[group_key(group_of(key))], &[blob(key)], GcTime::now()),
        };
        let row = row.map_err(|e| self.error("get", e))?;
        // `Vec::from` takes the value's buffer when nothing else holds it (no copy).
        Ok(row.and_then(|r| r.cells.into_iter().next()).map(|(_, v)| Vec::from(v)))
    }

    fn error(&self, op: impl Into<String>, e: impl Into<crate::BoxError>) -> PeerError {
        PeerError::engine(self.shape.peer_name(), op, e)
    }

    fn schema(&self, space: SpaceId) -> Result<&SchemaRef, PeerError> {
        self.schemas.get(space.0).ok_or_else(|| PeerError::UnknownSpace {
            engine: self.shape.peer_name(),
            name: format!("#{}", space.0),
            opened: self.names.clone(),
        })
    }

    /// Writes one mutation (`op` names it in errors).
    fn write(&self, op: &'static str, mutation: talus::format::Result<Mutation>) -> Result<(), PeerError> {
        let mutation = mutation.map_err(|e| self.error(op, e))?;
        self.engine.apply(&mutation).map_err(|e| self.error(op, e))?;
        Ok(())
    }

    /// The key of a returned row.
    fn row_key(&self, schema: &Schema, partition: &talus::format::DecoratedKey, row: &ResultRow) -> Result<Bytes, PeerError> {
        match self.shape {
            TalusShape::KeyValue => Ok(partition.key.as_bytes().clone()),
            TalusShape::Wide => match schema.decode_clustering(&row.clustering).map_err(|e| self.error("decoding a key", e))?.as_slice() {
                [Value::Blob(key)] => Ok(key.clone()),
                other => Err(self.error("decoding a key", format!("unexpected clustering key {other:?}"))),
            },
        }
    }

    /// Runs `query` page by page (at most `limit` rows), calling `visit` with each row until it
    /// returns `Break`; returns the rows visited and whether `visit` stopped.
    fn visit_pages(
        &self,
        schema: &Schema,
        mut query: Query,
        limit: Option<u64>,
        visit: &mut Visitor<'_>,
    ) -> Result<(u64, ControlFlow<()>), PeerError> {
        query.page_size = Some(SCAN_PAGE_ROWS);
        query.row_limit = limit;
        let mut visited = 0;
        loop {
            let result: QueryResult = self.engine.query(&query).map_err(|e| self.error("scan", e))?;
            for (partition, row) in result.rows() {
                let key = self.row_key(schema, partition, row)?;
                let value = row.cells.first().map_or(&[][..], |(_, v)| &v[..]);
                visited += 1;
                if visit(&key, value).is_break() {
                    return Ok((visited, ControlFlow::Break(())));
                }
            }
            match result.paging_state {
                Some(state) => query.paging_state = Some(state),
                None => return Ok((visited, ControlFlow::Continue(()))),
            }
        }
    }

    /// Wide shape: visits the rows of groups `first..=last` in key order, from `start` (in the
    /// first group; empty: from the beginning) to `end` (in the last group, exclusive; `None`: to
    /// the end), at most `limit` rows in all.
    fn visit_groups(
        &self,
        schema: &Schema,
        start: &[u8],
        end: Option<&[u8]>,
        limit: Option<u64>,
        visit: &mut Visitor<'_>,
    ) -> Result<u64, PeerError> {
        if end.is_some_and(|end| start >= end) {
            return Ok(0);
        }
        let (first, last) = (group_of(start), end.map_or(LAST_GROUP, group_of));
        let mut visited = 0;
        for group in first..=last {
            let lower = if group == first && !start.is_empty() { RangeBound::Inclusive(vec![blob(start)]) } else { RangeBound::Unbounded };
            let upper = match end {
                Some(end) if group == last => RangeBound::Exclusive(vec![blob(end)]),
                _ => RangeBound::Unbounded,
            };
            let query = Query::partition(schema, &[group_key(group)])
                .and_then(|q| q.with_clustering_ranges(schema, &[(lower, upper)]))
                .map_err(|e| self.error("building a scan", e))?;
            let (rows, flow) = self.visit_pages(schema, query, limit.map(|l| l - visited), visit)?;
            visited += rows;
            if flow.is_break() || limit.is_some_and(|l| visited >= l) {
                break;
            }
        }
        Ok(visited)
    }
}

impl Drop for TalusPeer {
    /// Stops background compaction before the engine goes (its workers hold the engine only
    /// weakly, but a running job would finish on its own): the next measurement starts quiet.
    fn drop(&mut self) {
        self.engine.shut_down_compactions(CompactionShutdown::Abandon);
    }
}

impl KvPeer for TalusPeer {
    fn name(&self) -> &'static str {
        self.shape.peer_name()
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn space(&self, name: &str) -> Result<SpaceId, PeerError> {
        find_space(self.shape.peer_name(), &self.names, name)
    }

    fn put(&self, space: SpaceId, key: &[u8], value: &[u8]) -> Result<(), PeerError> {
        let schema = self.schema(space)?;
        let (ts, value) = (Timestamp::now(), blob(value));
        let mutation = match self.shape {
            TalusShape::KeyValue => Mutation::builder(schema, &[blob(key)]).set(&[], "v", value, ts),
            TalusShape::Wide => Mutation::builder(schema, &[group_key(group_of(key))]).set(&[blob(key)], "v", value, ts),
        };
        self.write("put", mutation.build())
    }

    fn delete(&self, space: SpaceId, key: &[u8]) -> Result<(), PeerError> {
        let schema = self.schema(space)?;
        let ts = Timestamp::now();
        let mutation = match self.shape {
            TalusShape::KeyValue => Mutation::builder(schema, &[blob(key)]).delete_partition(ts),
            TalusShape::Wide => Mutation::builder(schema, &[group_key(group_of(key))]).delete_row(&[blob(key)], ts),
        };
        self.write("delete", mutation.build())
    }

    fn supports_delete_range(&self) -> bool {
        self.shape == TalusShape::Wide
    }

    fn delete_range(&self, space: SpaceId, start: &[u8], end: &[u8]) -> Result<(), PeerError> {
        if self.shape == TalusShape::KeyValue {
            return Err(PeerError::Unsupported { engine: self.name(), op: "delete_range (the key-value shape keeps keys in token order)" });
        }
        let schema = self.schema(space)?;
        if start >= end {
            return Ok(());
        }
        let ts = Timestamp::now();
        let (first, last) = (group_of(start), group_of(end));
        let mutations = (first..=last)
            .map(|group| {
                let lower =
                    if group == first && !start.is_empty() { RangeBound::Inclusive(vec![blob(start)]) } else { RangeBound::Unbounded };
                let upper = if group == last { RangeBound::Exclusive(vec![blob(end)]) } else { RangeBound::Unbounded };
                Mutation::builder(schema, &[group_key(group)]).delete_range(lower, upper, ts).build()
            })
            .collect::<talus::format::Result<Vec<_>>>()
            .map_err(|e| self.error("delete_range", e))?;
        self.engine.apply_batch(&mutations).map_err(|e| self.error("delete_range", e))?;
        Ok(())
    }

    fn get(&self, space: SpaceId, key: &[u8]) -> Result<Option<Vec<u8>>, PeerError> {
        self.point_read(self.schema(space)?, key)
    }

    fn scan(&self, space: SpaceId, start: &[u8], end: Option<&[u8]>, visit: &mut Visitor<'_>) -> Result<u64, PeerError> {
        let schema = self.schema(space)?;
        if start.is_empty() && end.is_none() {
            let query = Query::new(&schema.full_name(), PartitionRange::all());
            return Ok(self.visit_pages(schema, query, None, visit)?.0);
        }
        match self.shape {
            TalusShape::KeyValue => {
                Err(PeerError::Unsupported { engine: self.name(), op: "a bounded scan (the key-value shape keeps keys in token order)" })
            }
            TalusShape::Wide => self.visit_groups(schema, start, end, None, visit),
        }
    }

    fn seek(&self, space: SpaceId, key: &[u8], n: u64, visit: &mut Visitor<'_>) -> Result<u64, PeerError> {
        let schema = self.schema(space)?;
        if n == 0 {
            return Ok(0);
        }
        match self.shape {
            TalusShape::KeyValue => {
                let token = schema.decorated_key(&[blob(key)]).map_err(|e| self.error("seek", e))?.token;
                let query =
                    Query::new(&schema.full_name(), PartitionRange::Tokens { start: Bound::Included(token), end: Bound::Unbounded });
                Ok(self.visit_pages(schema, query, Some(n), visit)?.0)
            }
            TalusShape::Wide => self.visit_groups(schema, key, None, Some(n), visit),
        }
    }

    fn flush(&self) -> Result<(), PeerError> {
        self.engine.flush_all().map_err(|e| self.error("flush", e))
    }

    fn compact(&self) -> Result<(), PeerError> {
        for schema in &self.schemas {
            self.engine.compact(&schema.full_name()).map_err(|e| self.error("major compaction", e))?;
        }
        Ok(())
    }

    fn space_bytes(&self, space: SpaceId) -> Result<u64, PeerError> {
        let table = self.schema(space)?.full_name();
        let generations = self.engine.sstables(&table).map_err(|e| self.error("listing sstables", e))?;
        let sst_dir = self.dir.join(SSTABLE_DIR);
        let mut total = 0;
        for generation in generations {
            match std::fs::metadata(sst_dir.join(sstable_file_name(generation))) {
                Ok(meta) => total += meta.len(),
                // Compacted away between the listing and the stat.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(PeerError::Io { what: format!("measuring sstable {generation} of {table}"), source }),
            }
        }
        Ok(total)
    }
}
