//! The embeddable engine: tables, the write path, flush and the read path (DESIGN §3–§5).
//!
//! Thread-safety: [`Engine`] is a cheap `Clone` handle, `Send + Sync`; any number of threads may
//! write and read concurrently. The table map is behind a `RwLock` taken only to look a table up.
//! Metadata changes (create and drop table, sstables added or quarantined) serialize on the
//! manifest's mutex.
//!
//! Write path (R3.1): the writer takes the write gates of the tables it writes (shared), encodes
//! the mutations, appends them to the commitlog as one entry (so a batch is crash-atomic), waits for
//! durability under `Batch` (or when asked to sync), applies them to the active memtables, which
//! record the entry's position, and releases the gates. Sealing a memtable takes its table's gate
//! exclusively, so every entry of the table before the commitlog position at the seal is in the
//! sealed memtable or an older one, and every later entry in a newer one: that position is the
//! exact end of the commitlog interval the flushed sstable covers (R3.12).
//!
//! Open: lock the directory, replay the manifest (tables, truncations, sstables), remove sstable
//! files it does not name, open the sstables (quarantining unreadable ones), then replay the
//! commitlog into memtables, skipping entries of dropped tables, entries before a truncation and
//! entries before the end of the table's newest flushed interval or its replay floor; start the
//! log, the flusher and the compaction workers.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use talus_format::commitlog_segment::{decode_mutations_body, push_mutation};
use talus_format::manifest::{ManifestEdit, SstableState};
use talus_format::sstable::BlockCache;
use talus_format::{decode_mutation, encode_mutation, GcTime, Mutation, SchemaRef, TableId};

use crate::block_cache::{BlockCacheStats, ClockBlockCache};
use crate::commitlog::{recover, Commitlog, Durability, RecoveryReport, ReplayPosition, ReplayedTables};
use crate::compaction_manager::CompactionManager;
use crate::error::{io_error, Error, Result};
use crate::flusher::{FlushControl, FlushReport};
use crate::fs::{create_dir_durable, DirLock, Fs, RealFs};
use crate::manifest::Manifest;
use crate::memtable::{Memtable, MemtableStats};
use crate::options::EngineOptions;
use crate::overlap::RepairTimes;
use crate::query::{Query, QueryResult};
use crate::sstable_set::{parse_sstable_file_name, remove_unnamed_files, Sstable, SSTABLE_DIR};

/// Name of the commitlog directory in the engine directory.
pub const COMMITLOG_DIR: &str = "commitlog";

/// Per-call write options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Sync the commitlog now and wait for it, whatever the durability mode (R3.9 `force_sync`).
    pub sync_now: bool,
}

/// An sstable left out of reads because it is corrupt or unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedSstable {
    /// Its generation.
    pub generation: u64,
    /// Its table.
    pub table: String,
    /// Why.
    pub reason: String,
}

/// What opening the engine found and did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Commitlog replay.
    pub recovery: RecoveryReport,
    /// Files in the sstable directory that no manifest edit named (unfinished writes), removed.
    pub removed_unnamed_files: Vec<String>,
    /// SSTables loaded.
    pub sstables_loaded: usize,
    /// Commitlog entries (per table) skipped because a flushed sstable or a compaction's replay
    /// floor covers them (R3.12).
    pub entries_covered_by_sstables: u64,
}

/// One memtable sealed for flushing, and the commitlog position at its seal.
pub(crate) struct SealedMemtable {
    pub(crate) memtable: Arc<Memtable>,
    pub(crate) cut: ReplayPosition,
}

/// One table: its schema, memtables and sstables.
pub(crate) struct Table {
    pub(crate) schema: SchemaRef,
    pub(crate) memtable: ArcSwap<Memtable>,
    /// Sealed memtables not yet persisted, oldest first; readable until their sstable is.
    pub(crate) sealed: Mutex<Vec<Arc<SealedMemtable>>>,
    /// Writers hold it shared from before their commitlog append until their memtable insert;
    /// sealing takes it exclusively.
    pub(crate) write_gate: RwLock<()>,
    /// Readable sstables (normal and staging), newest first.
    pub(crate) sstables: ArcSwap<Vec<Arc<Sstable>>>,
    /// Serializes flushes of this table, so sstables are persisted in seal order.
    pub(crate) flush_lock: Mutex<()>,
    /// Generations held by running compactions.
    pub(crate) compacting: Mutex<BTreeSet<u64>>,
    /// Inputs of finished compactions whose files are not deleted yet (R2.22).
    pub(crate) compacted_undeleted: Mutex<Vec<Arc<Sstable>>>,
    /// Repair times for `tombstone_gc = repair` (R2.14a).
    pub(crate) repair: Arc<RepairTimes>,
}

impl Table {
    fn new(schema: SchemaRef, sstables: Vec<Arc<Sstable>>) -> Table {
        Table {
            schema,
            memtable: ArcSwap::from_pointee(Memtable::new()),
            sealed: Mutex::new(Vec::new()),
            write_gate: RwLock::new(()),
            sstables: ArcSwap::from_pointee(sstables),
            flush_lock: Mutex::new(()),
            compacting: Mutex::new(BTreeSet::new()),
            compacted_undeleted: Mutex::new(Vec::new()),
            repair: Arc::new(RepairTimes::default()),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) sst_dir: PathBuf,
    pub(crate) options: EngineOptions,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) tables: RwLock<HashMap<TableId, Arc<Table>>>,
    pub(crate) manifest: Mutex<Manifest>,
    pub(crate) commitlog: Commitlog,
    pub(crate) block_cache: Arc<ClockBlockCache>,
    pub(crate) next_generation: AtomicU64,
    pub(crate) quarantined: Mutex<Vec<QuarantinedSstable>>,
    pub(crate) flush: Arc<FlushControl>,
    pub(crate) compaction: Arc<CompactionManager>,
    report: OpenReport,
    _lock: Box<dyn DirLock>,
}

/// An open engine (one per shard). Clone to share between threads.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.inner.dir).field("options", &self.inner.options).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flush.shut_down();
        self.compaction.shut_down(false);
    }
}

impl Engine {
    /// Opens (creating if needed) the engine in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        Engine::open_with_fs(Arc::new(RealFs), dir, options)
    }

    /// Opens (creating if needed) the engine in `dir` on `fs` (see the module documentation).
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&*fs, &dir).map_err(io_error(&dir))?;
        let lock = fs.lock_dir(&dir).map_err(io_error(&dir))?;
        let mut manifest = Manifest::open(fs.clone(), &dir)?;
        let sst_dir = dir.join(SSTABLE_DIR);
        create_dir_durable(&*fs, &sst_dir).map_err(io_error(&sst_dir))?;
        let named: BTreeSet<u64> = manifest.state().sstables.keys().copied().collect();
        let mut report = OpenReport { removed_unnamed_files: remove_unnamed_files(&*fs, &sst_dir, &named)?, ..OpenReport::default() };
        let block_cache = Arc::new(ClockBlockCache::new(options.block_cache_bytes));
        let cache: Arc<dyn BlockCache> = block_cache.clone();

        // Open the sstables, newest first per table; quarantine the unreadable ones.
        let mut by_table: HashMap<TableId, Vec<Arc<Sstable>>> = HashMap::new();
        let mut quarantined = Vec::new();
        let entries: Vec<(u64, TableId, SstableState)> = manifest.state().sstables.iter().map(|(&g, e)| (g, e.table, e.state)).collect();
        for (generation, table, state) in entries.into_iter().rev() {
            if !matches!(state, SstableState::Normal | SstableState::Staging) {
                continue;
            }
            match Sstable::open(&*fs, &sst_dir, generation, table, state, Some(cache.clone()), None) {
                Ok(sstable) => by_table.entry(table).or_default().push(Arc::new(sstable)),
                // A failed read says nothing about the file: fail the open rather than quarantine.
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(e) => {
                    manifest.apply(vec![ManifestEdit::SetState { generation, state: SstableState::Quarantine }])?;
                    let name = manifest.state().tables.get(&table).map_or_else(|| format!("{:032x}", table.0), |s| s.full_name());
                    quarantined.push(QuarantinedSstable { generation, table: name, reason: e.to_string() });
                }
            }
        }
        report.sstables_loaded = by_table.values().map(Vec::len).sum();
        let tables: HashMap<TableId, Arc<Table>> = manifest
            .state()
            .tables
            .values()
            .map(|s| (s.id, Arc::new(Table::new(s.clone(), by_table.remove(&s.id).unwrap_or_default()))))
            .collect();

        // Replay: skip what truncations, flushed sstables and the replay floors compactions left
        // already cover (R3.12).
        let truncations = manifest.state().truncations.clone();
        let floors = &manifest.state().replay_floors;
        let flushed: HashMap<TableId, ReplayPosition> = tables
            .iter()
            .filter_map(|(&id, t)| {
                let sstables = t.sstables.load();
                let ends = sstables.iter().filter_map(|s| s.reader.statistics().commitlog_interval.map(|i| i.end));
                ends.chain(floors.get(&id).copied()).max().map(|e| (id, e))
            })
            .collect();
        let mut covered = 0u64;
        let log_dir = dir.join(COMMITLOG_DIR);
        let mut recovery = recover(&*fs, &log_dir, options.commitlog.corruption, |entry| {
            let mut tables_of_entry = ReplayedTables::default();
            let mutations =
                decode_mutations_body(entry.body)?.into_iter().map(decode_mutation).collect::<talus_format::Result<Vec<_>>>()?;
            for mutation in &mutations {
                if truncations.get(&mutation.table).is_some_and(|t| entry.position < *t) {
                    continue;
                }
                if flushed.get(&mutation.table).is_some_and(|f| entry.position < *f) {
                    covered += 1;
                    if !tables_of_entry.already_flushed.contains(&mutation.table) {
                        tables_of_entry.already_flushed.push(mutation.table);
                    }
                    continue;
                }
                let Some(table) = tables.get(&mutation.table) else { continue };
                let memtable = table.memtable.load();
                memtable.apply(mutation);
                if !tables_of_entry.applied.contains(&mutation.table) {
                    memtable.record_position(entry.position);
                    tables_of_entry.applied.push(mutation.table);
                }
            }
            Ok(tables_of_entry)
        })?;
        report.entries_covered_by_sstables = covered;
        // Segment ids come from the clock; never let a new one fall at or below a truncation or a
        // flushed position, or entries written from now on would be skipped on replay.
        let floor = truncations.values().chain(flushed.values()).map(|p| p.segment + 1).max().unwrap_or(0);
        recovery.next_segment_id = recovery.next_segment_id.max(floor);
        report.recovery = recovery;
        let commitlog = Commitlog::start(fs.clone(), &log_dir, options.commitlog.clone(), &report.recovery)?;
        let on_disk = fs.list(&sst_dir).map_err(io_error(&sst_dir))?.iter().filter_map(|n| parse_sstable_file_name(n)).max();
        let next_generation = manifest.state().max_generation().max(on_disk).map_or(1, |g| g + 1);
        let inner = Inner {
            dir,
            sst_dir,
            flush: Arc::new(FlushControl::new(&options)),
            compaction: Arc::new(CompactionManager::new(&options)),
            options,
            fs,
            tables: RwLock::new(tables),
            manifest: Mutex::new(manifest),
            commitlog,
            block_cache,
            next_generation: AtomicU64::new(next_generation),
            quarantined: Mutex::new(quarantined),
            report,
            _lock: lock,
        };
        let engine = Engine { inner: Arc::new(inner) };
        if engine.inner.options.background_flush {
            crate::flusher::start(&engine);
        }
        if engine.inner.options.background_compaction {
            crate::compaction_manager::start(&engine);
        }
        Ok(engine)
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What opening the engine found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// What commitlog replay found when this engine was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report.recovery
    }

    /// SSTables left out of reads because they are corrupt or unreadable (at open or since).
    pub fn quarantined(&self) -> Vec<QuarantinedSstable> {
        self.inner.quarantined.lock().clone()
    }

    /// Creates a table; durable in the manifest when this returns.
    pub fn create_table(&self, schema: SchemaRef) -> Result<()> {
        let mut manifest = self.inner.manifest.lock();
        let name = schema.full_name();
        if manifest.state().tables.values().any(|t| t.id == schema.id || t.full_name() == name) {
            return Err(Error::TableExists(name));
        }
        self.manifest_apply(&mut manifest, vec![ManifestEdit::CreateTable(schema.clone())])?;
        self.inner.tables.write().insert(schema.id, Arc::new(Table::new(schema, Vec::new())));
        Ok(())
    }

    /// Drops a table and its data: a truncation record at the current commitlog position keeps
    /// its entries from ever being replayed (R3.12), even into a re-created table of that name;
    /// its sstable files are deleted once the edit is durable.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let mut manifest = self.inner.manifest.lock();
        let table = self.table_by_name(name)?;
        let id = table.schema.id;
        let truncated_at = self.inner.commitlog.current_position();
        self.manifest_apply(&mut manifest, vec![ManifestEdit::DropTable { table: id, truncated_at }])?;
        self.inner.tables.write().remove(&id);
        drop(manifest);
        for sstable in table.sstables.load().iter() {
            self.inner.block_cache.evict_file(sstable.generation);
            let _ = self.inner.fs.remove_file(&sstable.path);
        }
        self.inner.commitlog.discard_table(id)
    }

    /// Applies a manifest record; a failure the manifest cannot recover from also fails the
    /// commitlog, so the engine stops acknowledging writes (P6) until it is reopened.
    pub(crate) fn manifest_apply(&self, manifest: &mut Manifest, edits: Vec<ManifestEdit>) -> Result<()> {
        let result = manifest.apply(edits);
        if let Some(reason) = manifest.failure() {
            self.inner.commitlog.fail(format!("manifest: {reason}"));
        }
        result
    }

    /// The schema of table `keyspace.name`.
    pub fn schema(&self, name: &str) -> Result<SchemaRef> {
        self.table_by_name(name).map(|t| t.schema.clone())
    }

    /// The schema of the table with id `id`.
    pub fn schema_by_id(&self, id: TableId) -> Result<SchemaRef> {
        self.table_by_id(id).map(|t| t.schema.clone())
    }

    /// Names of all tables.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.tables.read().values().map(|t| t.schema.full_name()).collect();
        names.sort();
        names
    }

    pub(crate) fn table_by_name(&self, name: &str) -> Result<Arc<Table>> {
        self.inner.tables.read().values().find(|t| t.schema.has_full_name(name)).cloned().ok_or_else(|| Error::UnknownTable(name.into()))
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Result<Arc<Table>> {
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
        let mut tables = mutations.iter().map(|m| self.table_by_id(m.table)).collect::<Result<Vec<_>>>()?;
        self.inner.flush.wait_if_behind();
        // Room for a small mutation at once: most writes then encode without growing the buffer.
        let mut body = Vec::with_capacity(mutations.len() * 256);
        for m in mutations {
            push_mutation(&mut body, |out| encode_mutation(m, out));
        }
        tables.sort_by_key(|t| t.schema.id);
        tables.dedup_by_key(|t| t.schema.id);
        let ids: Vec<TableId> = tables.iter().map(|t| t.schema.id).collect();
        // Gates in table id order: sealers take one gate at a time, so no cycle can form.
        let gates: Vec<_> = tables.iter().map(|t| t.write_gate.read()).collect();
        let log = &self.inner.commitlog;
        let appended = log.append(&ids, &body, options.sync_now)?;
        if options.sync_now || matches!(log.options().durability, Durability::Batch(_)) {
            log.wait_durable(appended.seq)?;
        }
        for table in &tables {
            let memtable = table.memtable.load();
            for mutation in mutations.iter().filter(|m| m.table == table.schema.id) {
                memtable.apply(mutation);
            }
            memtable.record_position(appended.position);
        }
        drop(gates);
        for table in &tables {
            self.inner.flush.note_write(table.memtable.load().memory_bytes(), body.len());
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

    /// Flushes the memtable of `table` into an sstable now; returns what was written (nothing
    /// when the memtable was empty).
    pub fn flush(&self, table: &str) -> Result<FlushReport> {
        crate::flusher::flush_table(self, &self.table_by_name(table)?)
    }

    /// Flushes every table.
    pub fn flush_all(&self) -> Result<()> {
        let tables: Vec<Arc<Table>> = self.inner.tables.read().values().cloned().collect();
        for table in tables {
            crate::flusher::flush_table(self, &table)?;
        }
        Ok(())
    }

    /// Runs a query.
    pub fn query(&self, query: &Query) -> Result<QueryResult> {
        crate::read_path::query(self, &self.table_by_name(&query.table)?, query)
    }

    /// Memtable statistics of a table (its active memtable).
    pub fn memtable_stats(&self, table: &str) -> Result<MemtableStats> {
        Ok(self.table_by_name(table)?.memtable.load().stats())
    }

    /// The generations of the readable sstables of `table`, newest first.
    pub fn sstables(&self, table: &str) -> Result<Vec<u64>> {
        Ok(self.table_by_name(table)?.sstables.load().iter().map(|s| s.generation).collect())
    }

    /// The block cache's counters.
    pub fn block_cache_stats(&self) -> BlockCacheStats {
        self.inner.block_cache.stats()
    }

    /// Takes sstable `generation` of `table` out of reads after a corruption: the manifest records
    /// the quarantine state (DESIGN §4) and its cached blocks are dropped.
    pub(crate) fn quarantine(&self, table: &Table, generation: u64, reason: String) {
        let mut manifest = self.inner.manifest.lock();
        let still_there = table.sstables.load().iter().any(|s| s.generation == generation);
        if !still_there {
            return;
        }
        table.sstables.rcu(|list| list.iter().filter(|s| s.generation != generation).cloned().collect::<Vec<_>>());
        self.inner.block_cache.evict_file(generation);
        // A failed edit fails the engine (see manifest_apply); the sstable stays out of reads.
        let _ = self.manifest_apply(&mut manifest, vec![ManifestEdit::SetState { generation, state: SstableState::Quarantine }]);
        self.inner.quarantined.lock().push(QuarantinedSstable { generation, table: table.schema.full_name(), reason });
    }
}
