//! The embeddable engine: tables, the write path and the read path (DESIGN §3, §5).
//!
//! Thread-safety: [`Engine`] is a cheap `Clone` handle, `Send + Sync`; any number of threads may
//! write and read concurrently. The table map is behind a `RwLock` taken only to look a table up;
//! writes and reads then work on the table's memtable, which never blocks readers.
//!
//! This is the in-memory engine of the foundation: the commitlog, sstables and compaction slot in
//! behind the same API (`apply` appends to the commitlog first; reads add sstable sources).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use talus_format::{FragmentStream, Mutation, SchemaRef, TableId};

use crate::error::{Error, Result};
use crate::memtable::{Memtable, MemtableStats};
use crate::memtable_reader::PartitionReader;
use crate::query::{execute, PartitionRange, Query, QueryResult, QueryStats};

/// Engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Memory all memtables together may hold before the largest is flushed (bytes).
    pub memtable_total_limit: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { memtable_total_limit: 256 << 20 }
    }
}

/// One table: its schema and memtable.
struct Table {
    schema: SchemaRef,
    memtable: ArcSwap<Memtable>,
}

struct Inner {
    dir: PathBuf,
    options: EngineOptions,
    tables: RwLock<HashMap<TableId, Arc<Table>>>,
}

/// An open engine (one per shard). Clone to share between threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.inner.dir).field("options", &self.inner.options).finish()
    }
}

impl Engine {
    /// Opens (creating if needed) the engine in `dir`.
    pub fn open(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Ok(Engine { inner: Arc::new(Inner { dir, options, tables: RwLock::new(HashMap::new()) }) })
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a table.
    pub fn create_table(&self, schema: SchemaRef) -> Result<()> {
        let mut tables = self.inner.tables.write();
        let name = schema.full_name();
        if tables.contains_key(&schema.id) || tables.values().any(|t| t.schema.full_name() == name) {
            return Err(Error::TableExists(name));
        }
        tables.insert(schema.id, Arc::new(Table { schema, memtable: ArcSwap::from_pointee(Memtable::new()) }));
        Ok(())
    }

    /// Drops a table and its data.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let mut tables = self.inner.tables.write();
        let id =
            tables.values().find(|t| t.schema.full_name() == name).map(|t| t.schema.id).ok_or_else(|| Error::UnknownTable(name.into()))?;
        tables.remove(&id);
        Ok(())
    }

    /// The schema of table `keyspace.name`.
    pub fn schema(&self, name: &str) -> Result<SchemaRef> {
        self.table_by_name(name).map(|t| t.schema.clone())
    }

    /// Names of all tables.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.tables.read().values().map(|t| t.schema.full_name()).collect();
        names.sort();
        names
    }

    fn table_by_name(&self, name: &str) -> Result<Arc<Table>> {
        self.inner.tables.read().values().find(|t| t.schema.full_name() == name).cloned().ok_or_else(|| Error::UnknownTable(name.into()))
    }

    fn table_by_id(&self, id: TableId) -> Result<Arc<Table>> {
        self.inner.tables.read().get(&id).cloned().ok_or_else(|| Error::UnknownTable(format!("id {:032x}", id.0)))
    }

    /// Applies one mutation.
    pub fn apply(&self, mutation: &Mutation) -> Result<()> {
        self.apply_batch(std::slice::from_ref(mutation))
    }

    /// Applies several mutations; all are checked before any is applied (with the commitlog, a
    /// batch is one crash-atomic entry).
    pub fn apply_batch(&self, mutations: &[Mutation]) -> Result<()> {
        let tables = mutations.iter().map(|m| self.table_by_id(m.table)).collect::<Result<Vec<_>>>()?;
        for (table, mutation) in tables.iter().zip(mutations) {
            let memtable = table.memtable.load();
            memtable.apply(mutation);
        }
        Ok(())
    }

    /// Runs a query.
    pub fn query(&self, query: &Query) -> Result<QueryResult> {
        let table = self.table_by_name(&query.table)?;
        let memtables = vec![table.memtable.load_full()];
        let slice = Arc::new(query.slice.clone());
        let resume = query.paging_state.as_ref().and_then(|p| p.resume.clone().map(|r| (p.key.clone(), r)));
        let after = query.paging_state.as_ref().map(|p| &p.key);
        let bounds = query.partitions.key_bounds(after);
        let mut sources: Vec<FragmentStream<'_>> = Vec::with_capacity(memtables.len());
        for memtable in &memtables {
            let resumed = resume.as_ref().and_then(|(key, pos)| {
                let version = memtable.partition(key)?;
                Some(PartitionReader::new(key.clone(), version, Arc::new(slice.resumed_from(pos))))
            });
            let rest = {
                let slice = slice.clone();
                memtable.partitions_in(bounds.clone()).map(move |(key, version)| PartitionReader::new(key, version, slice.clone()))
            };
            sources.push(Box::new(resumed.into_iter().chain(rest).flatten().map(Ok)));
        }
        let stats = QueryStats { memtables: memtables.len() as u64, ..QueryStats::default() };
        execute(&table.schema, query, sources, stats)
    }

    /// Memtable statistics of a table.
    pub fn memtable_stats(&self, table: &str) -> Result<MemtableStats> {
        Ok(self.table_by_name(table)?.memtable.load().stats())
    }
}

/// A convenience for [`Query`] over every partition.
pub fn scan_all(table: &str) -> Query {
    Query::new(table, PartitionRange::all())
}
