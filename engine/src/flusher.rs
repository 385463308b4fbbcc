//! Flushing memtables into sstables, on request and in the background (DESIGN §3, R3.5).
//!
//! [`flush_table`] seals the table's active memtable (under its write gate, recording the
//! commitlog position at the seal), syncs the commitlog, then persists every sealed memtable of the
//! table oldest first: write the sstable file durably, open it, append the manifest edit, publish
//! the sstable to readers, drop the memtable from reads, and mark its commitlog entries clean. It
//! stops at the first failure, so sstables are persisted in seal order and the newest flushed
//! position of a table never passes an unpersisted memtable (replay skips up to it).
//!
//! The background flusher wakes when a writer reports a table over its memtable limit or enough
//! bytes written to check the engine total, and once a second for the commitlog's size and age
//! limits; it flushes the tables over their limit, the largest tables while the total is over its
//! limit, and the tables the commitlog asks for. Writers wait (bounded by
//! `write_stall_limit`, never failing) while sealed-but-unpersisted memtables exceed the total.
//!
//! Thread-safety: [`FlushControl`] is shared by writers and the flusher thread; flushes of one
//! table serialize on its flush lock, flushes of different tables run concurrently.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use talus_format::manifest::{ManifestEdit, SstableState};
use talus_format::sstable::statistics::{CommitlogInterval, SstableOrigin};
use talus_format::sstable::writer::SstableSeal;
use talus_format::sstable::BlockCache;
use talus_format::GcTime;

use crate::engine::{Engine, Inner, SealedMemtable, Table};
use crate::error::Result;
use crate::flush::{memtable_fragments, SstableFile};
use crate::memtable::Memtable;
use crate::options::EngineOptions;
use crate::sstable_set::Sstable;

/// Bytes written between two checks of the engine-wide memtable total.
const TOTAL_CHECK_BYTES: usize = 1 << 20;

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Generations of the sstables written, oldest first.
    pub generations: Vec<u64>,
    /// Bytes of sstable written.
    pub bytes: u64,
    /// Memtables persisted (an empty one is persisted without a file).
    pub memtables: usize,
}

#[derive(Default)]
struct FlushState {
    wake: bool,
    shutdown: bool,
}

/// The coordination between writers and the background flusher.
pub(crate) struct FlushControl {
    state: Mutex<FlushState>,
    wake: Condvar,
    persisted: Condvar,
    /// Bytes of sealed memtables not yet persisted.
    sealed_bytes: AtomicUsize,
    /// Bytes written since the flusher last looked at the total.
    written: AtomicUsize,
    table_limit: usize,
    total_limit: usize,
    stall_limit: Duration,
    last_error: Mutex<Option<String>>,
}

impl FlushControl {
    pub(crate) fn new(options: &EngineOptions) -> FlushControl {
        FlushControl {
            state: Mutex::new(FlushState::default()),
            wake: Condvar::new(),
            persisted: Condvar::new(),
            sealed_bytes: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            table_limit: options.memtable_table_limit,
            total_limit: options.memtable_total_limit,
            stall_limit: options.write_stall_limit,
            last_error: Mutex::new(None),
        }
    }

    fn notify(&self) {
        self.state.lock().wake = true;
        self.wake.notify_one();
    }

    /// A writer wrote `written` bytes into a memtable now holding `memtable_bytes`.
    pub(crate) fn note_write(&self, memtable_bytes: usize, written: usize) {
        let total = self.written.fetch_add(written, Ordering::Relaxed) + written;
        if memtable_bytes > self.table_limit || total >= TOTAL_CHECK_BYTES {
            self.written.store(0, Ordering::Relaxed);
            self.notify();
        }
    }

    /// Waits (at most the stall limit) while flushing is a whole memory budget behind.
    pub(crate) fn wait_if_behind(&self) {
        if self.sealed_bytes.load(Ordering::Relaxed) <= self.total_limit {
            return;
        }
        let deadline = Instant::now() + self.stall_limit;
        let mut state = self.state.lock();
        while self.sealed_bytes.load(Ordering::Relaxed) > self.total_limit && !state.shutdown {
            if self.persisted.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
    }

    pub(crate) fn shut_down(&self) {
        self.state.lock().shutdown = true;
        self.wake.notify_all();
        self.persisted.notify_all();
    }

    /// The last error of a background flush, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

impl Engine {
    /// The last error a background flush met, if any (the memtable stays in memory and in the
    /// commitlog, and the next flush retries it).
    pub fn background_flush_error(&self) -> Option<String> {
        self.inner.flush.last_error()
    }
}

/// Seals the active memtable of `table` (if it holds anything) and persists every sealed one.
pub(crate) fn flush_table(engine: &Engine, table: &Arc<Table>) -> Result<FlushReport> {
    let inner = &engine.inner;
    let _serial = table.flush_lock.lock();
    {
        let _gate = table.write_gate.write();
        let active = table.memtable.load_full();
        if !active.is_empty() || !active.coverage().is_empty() {
            // Sealed list first, then the swap: a reader loads the active memtable before the
            // sealed list, so it sees this memtable in one place or both, never in neither.
            let cut = inner.commitlog.current_position();
            inner.flush.sealed_bytes.fetch_add(active.memory_bytes(), Ordering::Relaxed);
            table.sealed.lock().push(Arc::new(SealedMemtable { memtable: active, cut }));
            table.memtable.store(Arc::new(Memtable::new()));
        }
    }
    // Every entry the sealed memtables hold is durable in the log before any of them becomes an
    // sstable: a batch that also wrote other tables is then replayed whole after a crash, even
    // under `Periodic` durability, and never survives only in the flushed part.
    inner.commitlog.sync()?;
    let pending: Vec<Arc<SealedMemtable>> = table.sealed.lock().clone();
    let mut report = FlushReport::default();
    for sealed in pending {
        persist(engine, table, &sealed, &mut report)?;
    }
    Ok(report)
}

fn persist(engine: &Engine, table: &Arc<Table>, sealed: &Arc<SealedMemtable>, report: &mut FlushReport) -> Result<()> {
    let inner = &engine.inner;
    let memtable = &sealed.memtable;
    let coverage = memtable.coverage();
    if !memtable.is_empty() {
        let generation = inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let interval = coverage.min.map(|start| CommitlogInterval { start, end: sealed.cut });
        let fs = &*inner.fs;
        let pipelined = inner.options.pipelined_compression;
        let mut out = SstableFile::create(fs, &inner.sst_dir, generation, &table.schema, SstableOrigin::Flush, pipelined)?;
        out.reserve_partitions(memtable.stats().partitions);
        let seal = SstableSeal { commitlog_interval: interval, ..SstableSeal::at(GcTime::now()) };
        let written = out.write_all(memtable_fragments(memtable), seal)?;
        let cache: Arc<dyn BlockCache> = inner.block_cache.clone();
        let size = written.size;
        let opened = Sstable::open(fs, &inner.sst_dir, generation, table.schema.id, SstableState::Normal, Some(cache), Some(written.index));
        let published = opened.and_then(|sstable| {
            let mut manifest = inner.manifest.lock();
            let edit = ManifestEdit::AddSstable { table: table.schema.id, generation, state: SstableState::Normal };
            engine.manifest_apply(&mut manifest, vec![edit])?;
            let sstable = Arc::new(sstable);
            table.sstables.rcu(|list| std::iter::once(sstable.clone()).chain(list.iter().cloned()).collect::<Vec<_>>());
            Ok(())
        });
        if let Err(e) = published {
            // Not in the manifest (or its state is unknown after a manifest failure, which fails
            // the engine): the next open removes the file if no edit names it.
            if inner.manifest.lock().failure().is_none() {
                let _ = fs.remove_file(&inner.sst_dir.join(crate::sstable_set::sstable_file_name(generation)));
            }
            return Err(e);
        }
        report.generations.push(generation);
        report.bytes += size;
        inner.compaction.note_flush(table.schema.id, size);
    }
    // Published before it leaves the sealed list: readers load the sealed list before the
    // sstables, so they see the data in one place or both.
    table.sealed.lock().retain(|s| !Arc::ptr_eq(s, sealed));
    inner.flush.sealed_bytes.fetch_sub(memtable.memory_bytes(), Ordering::Relaxed);
    inner.flush.persisted.notify_all();
    report.memtables += 1;
    inner.commitlog.discard_completed(table.schema.id, &coverage)
}

/// Starts the background flusher of `engine`; it stops when the engine is dropped. The thread
/// waits on the shared [`FlushControl`] without holding the engine, so dropping the last handle
/// closes the engine (and releases its directory lock) at once.
pub(crate) fn start(engine: &Engine) {
    let weak: Weak<Inner> = Arc::downgrade(&engine.inner);
    let control = engine.inner.flush.clone();
    let niceness = engine.inner.options.flush_niceness;
    let spawned = crate::thread_priority::spawn_background("talus-flush".into(), niceness, move || run(&control, weak));
    if let Err(e) = spawned {
        *engine.inner.flush.last_error.lock() = Some(format!("cannot start the flusher thread: {e}"));
    }
}

fn run(control: &FlushControl, weak: Weak<Inner>) {
    loop {
        {
            let mut state = control.state.lock();
            if !state.wake && !state.shutdown {
                control.wake.wait_for(&mut state, Duration::from_secs(1));
            }
            if state.shutdown {
                return;
            }
            state.wake = false;
        }
        let Some(inner) = weak.upgrade() else { return };
        let engine = Engine { inner };
        for table in tables_over_limits(&engine) {
            if let Err(e) = flush_table(&engine, &table) {
                *engine.inner.flush.last_error.lock() = Some(format!("flushing {}: {e}", table.schema.full_name()));
            }
        }
    }
}

/// The tables a limit asks to flush (R3.5): over the table limit, the largest while the total is
/// over the engine limit, and those the commitlog's size and age limits name.
fn tables_over_limits(engine: &Engine) -> Vec<Arc<Table>> {
    let inner = &engine.inner;
    let tables: Vec<Arc<Table>> = inner.tables.read().values().cloned().collect();
    let mut sized: Vec<(usize, Arc<Table>)> = tables.into_iter().map(|t| (t.memtable.load().memory_bytes(), t)).collect();
    sized.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    let from_log = inner.commitlog.tables_to_flush();
    let mut total: usize = sized.iter().map(|(b, _)| b).sum::<usize>() + inner.flush.sealed_bytes.load(Ordering::Relaxed);
    let mut chosen = Vec::new();
    for (bytes, table) in sized {
        let over_total = total > inner.flush.total_limit && bytes > 0;
        if bytes > inner.flush.table_limit || over_total || from_log.contains(&table.schema.id) {
            total = total.saturating_sub(bytes);
            chosen.push(table);
        }
    }
    chosen
}
