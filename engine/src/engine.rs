//! The embeddable engine: tables, the write path and the read path (DESIGN §3, §5).
//!
//! Thread-safety: [`Engine`] is a cheap `Clone` handle, `Send + Sync`; any number of threads may
//! write and read concurrently. The table map is behind a `RwLock` taken only to look a table up;
//! writes and reads then work on the table's memtables, which never block readers. Catalog changes
//! (create and drop table) serialize on one mutex.
//!
//! Write path (R3.1): encode the mutations, append them to the commitlog as one entry (so a batch
//! is crash-atomic), wait for durability under `Batch` (or when asked to sync), then apply them to
//! the memtables, which record the entry's position. A write is visible only once it is durable in
//! the sense the durability mode promises.
//!
//! Open: lock the directory, load the table catalog, replay the commitlog into memtables (entries
//! of dropped tables and entries covered by a truncation record are skipped), start the log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use talus_format::catalog::{decode_catalog, encode_catalog, Catalog, Truncation};
use talus_format::commitlog_segment::{decode_mutations_body, push_mutation};
use talus_format::{decode_mutation, encode_mutation, FragmentStream, GcTime, Mutation, SchemaRef, TableId};

use crate::commitlog::{recover, Commitlog, CommitlogOptions, Durability, RecoveryReport, ReplayPosition};
use crate::error::{io_error, Error, Result};
use crate::fs::{create_dir_durable, write_file_atomic, DirLock, Fs, OpenMode, RealFs};
use crate::memtable::{Memtable, MemtableStats};
use crate::memtable_reader::PartitionReader;
use crate::query::{execute, PartitionRange, Query, QueryResult, QueryStats};

/// Name of the table catalog file in the engine directory.
pub const CATALOG_FILE: &str = "CATALOG";
/// Name of the commitlog directory in the engine directory.
pub const COMMITLOG_DIR: &str = "commitlog";

/// Engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Memory all memtables together may hold before the largest is flushed (bytes).
    pub memtable_total_limit: usize,
    /// The commitlog.
    pub commitlog: CommitlogOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { memtable_total_limit: 256 << 20, commitlog: CommitlogOptions::default() }
    }
}

/// Per-call write options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Sync the commitlog now and wait for it, whatever the durability mode (R3.9 `force_sync`).
    pub sync_now: bool,
}

/// One table: its schema, its active memtable and the sealed memtables not yet persisted.
struct Table {
    schema: SchemaRef,
    memtable: ArcSwap<Memtable>,
    sealed: Mutex<Vec<Arc<Memtable>>>,
    /// Writers hold it shared while they insert into the active memtable; sealing takes it
    /// exclusively, so no insert lands in a memtable after it was sealed.
    write_gate: RwLock<()>,
}

impl Table {
    fn new(schema: SchemaRef) -> Table {
        Table { schema, memtable: ArcSwap::from_pointee(Memtable::new()), sealed: Mutex::new(Vec::new()), write_gate: RwLock::new(()) }
    }
}

struct Inner {
    dir: PathBuf,
    options: EngineOptions,
    fs: Arc<dyn Fs>,
    tables: RwLock<HashMap<TableId, Arc<Table>>>,
    /// Truncation records of dropped tables; guards catalog rewrites.
    truncations: Mutex<BTreeMap<TableId, ReplayPosition>>,
    commitlog: Commitlog,
    recovery: RecoveryReport,
    _lock: Box<dyn DirLock>,
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
    /// Opens (creating if needed) the engine in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        Engine::open_with_fs(Arc::new(RealFs), dir, options)
    }

    /// Opens (creating if needed) the engine in `dir` on `fs`: takes the directory lock, loads
    /// the catalog and replays the commitlog.
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&*fs, &dir).map_err(io_error(&dir))?;
        let lock = fs.lock_dir(&dir).map_err(io_error(&dir))?;
        let catalog = load_catalog(&*fs, &dir)?;
        let tables: HashMap<TableId, Arc<Table>> = catalog.tables.iter().map(|s| (s.id, Arc::new(Table::new(s.clone())))).collect();
        let truncations: BTreeMap<TableId, ReplayPosition> =
            catalog.truncations.iter().map(|t| (t.table, ReplayPosition { segment: t.segment, offset: t.offset })).collect();
        let log_dir = dir.join(COMMITLOG_DIR);
        let recovery = recover(&*fs, &log_dir, options.commitlog.corruption, |entry| {
            let mut touched = Vec::new();
            let mutations =
                decode_mutations_body(entry.body)?.into_iter().map(decode_mutation).collect::<talus_format::Result<Vec<_>>>()?;
            for mutation in &mutations {
                if truncations.get(&mutation.table).is_some_and(|t| entry.position < *t) {
                    continue;
                }
                let Some(table) = tables.get(&mutation.table) else { continue };
                let memtable = table.memtable.load();
                memtable.apply(mutation);
                if !touched.contains(&mutation.table) {
                    memtable.record_position(entry.position);
                    touched.push(mutation.table);
                }
            }
            Ok(touched)
        })?;
        let mut recovery = recovery;
        // Segment ids come from the clock; never let a new one fall at or below a truncation
        // position, or entries of a re-created table would be skipped on replay.
        let above_truncations = truncations.values().map(|p| p.segment + 1).max().unwrap_or(0);
        recovery.next_segment_id = recovery.next_segment_id.max(above_truncations);
        let commitlog = Commitlog::start(fs.clone(), &log_dir, options.commitlog.clone(), &recovery)?;
        let inner =
            Inner { dir, options, fs, tables: RwLock::new(tables), truncations: Mutex::new(truncations), commitlog, recovery, _lock: lock };
        Ok(Engine { inner: Arc::new(inner) })
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What replay found when this engine was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Creates a table; the catalog is durable when this returns.
    pub fn create_table(&self, schema: SchemaRef) -> Result<()> {
        let truncations = self.inner.truncations.lock();
        let mut tables = self.inner.tables.write();
        let name = schema.full_name();
        if tables.contains_key(&schema.id) || tables.values().any(|t| t.schema.full_name() == name) {
            return Err(Error::TableExists(name));
        }
        let mut schemas: Vec<SchemaRef> = tables.values().map(|t| t.schema.clone()).collect();
        schemas.push(schema.clone());
        self.store_catalog(schemas, &truncations)?;
        tables.insert(schema.id, Arc::new(Table::new(schema)));
        Ok(())
    }

    /// Drops a table and its data: a truncation record at the current commitlog position keeps
    /// its entries from ever being replayed (R3.12), even into a re-created table of that name.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let mut truncations = self.inner.truncations.lock();
        let mut tables = self.inner.tables.write();
        let id =
            tables.values().find(|t| t.schema.full_name() == name).map(|t| t.schema.id).ok_or_else(|| Error::UnknownTable(name.into()))?;
        let mut after = truncations.clone();
        after.insert(id, self.inner.commitlog.current_position());
        let schemas: Vec<SchemaRef> = tables.values().filter(|t| t.schema.id != id).map(|t| t.schema.clone()).collect();
        self.store_catalog(schemas, &after)?;
        *truncations = after;
        tables.remove(&id);
        drop(tables);
        self.inner.commitlog.discard_table(id)
    }

    fn store_catalog(&self, mut tables: Vec<SchemaRef>, truncations: &BTreeMap<TableId, ReplayPosition>) -> Result<()> {
        tables.sort_by_key(|s| s.id);
        let truncations = truncations.iter().map(|(&table, p)| Truncation { table, segment: p.segment, offset: p.offset }).collect();
        let bytes = encode_catalog(&Catalog { tables, truncations });
        let path = self.inner.dir.join(CATALOG_FILE);
        write_file_atomic(&*self.inner.fs, &path, &bytes).map_err(|source| {
            // The file on disk may now be the old catalog or the new one: acknowledging writes
            // against either guess could lose them after a crash, so the engine fails stop.
            let reason = format!("writing {}: {source}", path.display());
            self.inner.commitlog.fail(reason);
            Error::Io { path: path.display().to_string(), source }
        })
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

    /// Applies one mutation; returns its commitlog position.
    pub fn apply(&self, mutation: &Mutation) -> Result<ReplayPosition> {
        self.apply_batch_with(std::slice::from_ref(mutation), WriteOptions::default())
    }

    /// Applies several mutations as one crash-atomic commitlog entry; all are checked before any
    /// is applied. Returns the entry's commitlog position.
    pub fn apply_batch(&self, mutations: &[Mutation]) -> Result<ReplayPosition> {
        self.apply_batch_with(mutations, WriteOptions::default())
    }

    /// [`Engine::apply_batch`] with per-call options.
    pub fn apply_batch_with(&self, mutations: &[Mutation], options: WriteOptions) -> Result<ReplayPosition> {
        let tables = mutations.iter().map(|m| self.table_by_id(m.table)).collect::<Result<Vec<_>>>()?;
        let mut body = Vec::new();
        for m in mutations {
            push_mutation(&mut body, |out| encode_mutation(m, out));
        }
        let mut ids: Vec<TableId> = mutations.iter().map(|m| m.table).collect();
        ids.sort_unstable();
        ids.dedup();
        let log = &self.inner.commitlog;
        let appended = log.append(&ids, &body, options.sync_now)?;
        if options.sync_now || matches!(log.options().durability, Durability::Batch(_)) {
            log.wait_durable(appended.seq)?;
        }
        let mut recorded: Vec<TableId> = Vec::with_capacity(ids.len());
        for (table, mutation) in tables.iter().zip(mutations) {
            let _gate = table.write_gate.read();
            let memtable = table.memtable.load();
            memtable.apply(mutation);
            if !recorded.contains(&mutation.table) {
                memtable.record_position(appended.position);
                recorded.push(mutation.table);
            }
        }
        Ok(appended.position)
    }

    /// Makes every write so far durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.commitlog.sync()
    }

    /// `min_gc_time` of a table: the commitlog barrier for tombstone purge (R2.15).
    pub fn commitlog_min_gc_time(&self, table: &str) -> Result<GcTime> {
        Ok(self.inner.commitlog.min_gc_time(self.table_by_name(table)?.schema.id))
    }

    /// Tables the commitlog's size and age limits ask to flush (R3.5).
    pub fn tables_to_flush(&self) -> Vec<String> {
        let wanted = self.inner.commitlog.tables_to_flush();
        let tables = self.inner.tables.read();
        let mut names: Vec<String> = wanted.iter().filter_map(|id| tables.get(id)).map(|t| t.schema.full_name()).collect();
        names.sort();
        names
    }

    /// Ids of the live commitlog segments, oldest first.
    pub fn commitlog_segments(&self) -> Vec<u64> {
        self.inner.commitlog.live_segments()
    }

    /// Seals the active memtable of `table` and starts a new one; the sealed memtable stays
    /// readable until [`Engine::memtable_persisted`] is called for it, and no write lands in it
    /// once this returns. Flush (the sstable issue) writes it out in between.
    ///
    /// The commitlog is synced before this returns, so every entry the sealed memtable holds is
    /// durable in the log: a batch that also wrote other tables is replayed whole after a crash,
    /// even under `Periodic` durability, and never survives only in the persisted part.
    pub fn seal_memtable(&self, table: &str) -> Result<Arc<Memtable>> {
        let table = self.table_by_name(table)?;
        let old = {
            let _gate = table.write_gate.write();
            let old = table.memtable.swap(Arc::new(Memtable::new()));
            table.sealed.lock().push(old.clone());
            old
        };
        self.inner.commitlog.sync()?;
        Ok(old)
    }

    /// The sealed `memtable` of `table` is persisted elsewhere: it leaves the read path and its
    /// commitlog entries become clean, so fully clean segments are recycled or deleted (R3.11).
    pub fn memtable_persisted(&self, table: &str, memtable: &Arc<Memtable>) -> Result<()> {
        let table = self.table_by_name(table)?;
        {
            let mut sealed = table.sealed.lock();
            let before = sealed.len();
            sealed.retain(|m| !Arc::ptr_eq(m, memtable));
            if sealed.len() == before {
                return Err(Error::InvalidQuery(format!("memtable is not a sealed memtable of {}", table.schema.full_name())));
            }
        }
        self.inner.commitlog.discard_completed(table.schema.id, &memtable.coverage())
    }

    /// Runs a query.
    pub fn query(&self, query: &Query) -> Result<QueryResult> {
        let table = self.table_by_name(&query.table)?;
        let mut memtables = vec![table.memtable.load_full()];
        memtables.extend(table.sealed.lock().iter().cloned());
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

fn load_catalog(fs: &dyn Fs, dir: &Path) -> Result<Catalog> {
    let path = dir.join(CATALOG_FILE);
    if !fs.exists(&path).map_err(io_error(&path))? {
        return Ok(Catalog::default());
    }
    let bytes = fs.open(&path, OpenMode::Existing).and_then(|f| f.read_all()).map_err(io_error(&path))?;
    decode_catalog(&bytes).map_err(|e| Error::MetadataCorrupt { file: path.display().to_string(), reason: e.to_string() })
}

/// A convenience for [`Query`] over every partition.
pub fn scan_all(table: &str) -> Query {
    Query::new(table, PartitionRange::all())
}
