//! The compaction manager (DESIGN §6): background compaction threads, a queue of tables, pause
//! and resume, a throughput limit, progress, statistics and shutdown.
//!
//! A table is queued when a flush adds an sstable to it, when a compaction of it finishes, and at
//! open. A worker takes a table from the queue, asks the table's strategy for a job (fully expired
//! sstables first, R2.20; then the picker, R2.24–R2.28) among the eligible sstables — `Normal`
//! ones that no running job holds (R2.29) — runs it, and queues the table again. At most
//! `compaction_threads` background jobs run at once; requested compactions
//! ([`Engine::compact`], [`Engine::compact_sstables`], …) run on the caller's thread and share the
//! claim set, the statistics and the throughput limit with them.
//!
//! Throughput: every job charges the data bytes it writes to one token bucket, and sleeps while
//! the bucket is in debt. Pause stops workers from starting jobs (running ones finish).
//! Shutdown ([`Engine::shut_down_compactions`]) either waits for running jobs or abandons them at
//! their next partition boundary (an abandoned job removes its partial outputs and leaves its
//! inputs as they were), then joins the workers. Dropping the last engine handle signals the
//! workers, which hold the engine only while they run a job.
//!
//! Thread-safety: [`CompactionManager`] is shared by writers (flush notifications), workers and
//! callers; its state is one mutex, the statistics another.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use talus_compaction::strategy::expired::fully_expired;
use talus_compaction::strategy::{self, CompactionJob, JobKind, PickContext, SstableInfo};
use talus_format::manifest::SstableState;
use talus_format::{GcTime, TableId, Token, TombstoneGcMode};

use crate::compaction_task::{gc_policy, memtables_min_timestamp, run, sstable_info, CompactionOptions, CompactionReport, JobProgress};
use crate::engine::{Engine, Inner, Table};
use crate::error::{Error, Result};
use crate::options::EngineOptions;
use crate::rate_limiter::RateLimiter;

/// Totals over every compaction since the engine was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactionTotals {
    /// Compactions finished.
    pub jobs: u64,
    /// Compactions that failed or were abandoned.
    pub failed: u64,
    /// File bytes read (inputs).
    pub bytes_in: u64,
    /// File bytes written (outputs).
    pub bytes_out: u64,
    /// Partitions read.
    pub partitions: u64,
    /// Tombstones purged (R2.8).
    pub tombstones_purged: u64,
    /// Rows read but not written (covered, expired or emptied by a purge).
    pub rows_dropped: u64,
    /// SSTables dropped whole as fully expired (R2.20).
    pub expired_sstables: u64,
    /// File bytes flushes wrote (the denominator of write amplification).
    pub bytes_flushed: u64,
}

impl CompactionTotals {
    /// Bytes written to sstables per byte flushed: `(flushed + compacted) / flushed` (1.0 before
    /// any flush). The commitlog's own write is not included.
    pub fn write_amplification(&self) -> f64 {
        if self.bytes_flushed == 0 {
            return 1.0;
        }
        (self.bytes_flushed + self.bytes_out) as f64 / self.bytes_flushed as f64
    }

    fn add(&mut self, report: &CompactionReport) {
        self.jobs += 1;
        self.bytes_in += report.bytes_in;
        self.bytes_out += report.bytes_out;
        self.partitions += report.stats.partitions;
        self.tombstones_purged += report.stats.tombstones_purged;
        self.rows_dropped += report.rows_dropped();
        self.expired_sstables += report.expired.len() as u64;
    }
}

/// A compaction in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningCompaction {
    /// The table.
    pub table: String,
    /// Why it runs.
    pub kind: JobKind,
    /// Its inputs.
    pub inputs: Vec<u64>,
    /// Uncompressed data bytes written so far.
    pub data_written: u64,
    /// Partitions read so far.
    pub partitions: u64,
    /// Time since it started.
    pub elapsed: Duration,
}

/// What the compaction manager is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionStatus {
    /// Whether background compaction is paused.
    pub paused: bool,
    /// Tables waiting for a background worker.
    pub queued: Vec<String>,
    /// Jobs running now.
    pub running: Vec<RunningCompaction>,
    /// Totals since open.
    pub totals: CompactionTotals,
    /// The last error of a background compaction, if any.
    pub last_error: Option<String>,
}

/// How [`Engine::shut_down_compactions`] treats running jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionShutdown {
    /// Let them finish.
    Wait,
    /// Stop them at their next partition boundary; their inputs stay as they were.
    Abandon,
}

struct Running {
    table: String,
    kind: JobKind,
    inputs: Vec<u64>,
    started: Instant,
    progress: Arc<JobProgress>,
}

#[derive(Default)]
struct ManagerState {
    queue: VecDeque<TableId>,
    running: Vec<(u64, Running)>,
    next_job: u64,
    /// Workers between taking a table from the queue and finishing with it.
    busy_workers: usize,
    paused: bool,
    shutdown: bool,
    last_error: Option<String>,
}

/// The shared state of compaction (see the module documentation).
pub(crate) struct CompactionManager {
    state: Mutex<ManagerState>,
    work: Condvar,
    finished: Condvar,
    /// Whether background workers exist to serve the queue.
    background: bool,
    throughput: Option<RateLimiter>,
    totals: Mutex<CompactionTotals>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl CompactionManager {
    pub(crate) fn new(options: &EngineOptions) -> CompactionManager {
        CompactionManager {
            state: Mutex::new(ManagerState::default()),
            work: Condvar::new(),
            finished: Condvar::new(),
            background: options.background_compaction,
            throughput: options.compaction_throughput_bytes_per_sec.map(RateLimiter::new),
            totals: Mutex::new(CompactionTotals::default()),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues `table` for a background look (no-op if queued already, or without background
    /// compaction).
    pub(crate) fn schedule(&self, table: TableId) {
        if !self.background {
            return;
        }
        let mut state = self.state.lock();
        if !state.queue.contains(&table) {
            state.queue.push_back(table);
            self.work.notify_one();
        }
    }

    /// A flush wrote `bytes` of sstables for `table`.
    pub(crate) fn note_flush(&self, table: TableId, bytes: u64) {
        self.totals.lock().bytes_flushed += bytes;
        self.schedule(table);
    }

    /// Charges `bytes` written to the throughput limit, sleeping while it is in debt.
    pub(crate) fn throttle(&self, bytes: u64) {
        if let Some(limiter) = &self.throughput {
            limiter.charge(bytes);
        }
    }

    /// Signals shutdown; with `abandon`, running jobs stop at their next partition boundary.
    pub(crate) fn shut_down(&self, abandon: bool) {
        let mut state = self.state.lock();
        state.shutdown = true;
        if abandon {
            for (_, job) in &state.running {
                job.progress.abandon.store(true, Ordering::Relaxed);
            }
        }
        self.work.notify_all();
        self.finished.notify_all();
    }
}

impl Engine {
    /// Runs `job` on `table` on this thread, with progress, statistics and shutdown tracking.
    fn run_tracked(&self, table: &Arc<Table>, job: &CompactionJob, options: CompactionOptions) -> Result<CompactionReport> {
        let manager = &self.inner.compaction;
        let progress = Arc::new(JobProgress::default());
        let id = {
            let mut state = manager.state.lock();
            if state.shutdown {
                return Err(Error::CompactionAbandoned(table.schema.full_name()));
            }
            state.next_job += 1;
            let id = state.next_job;
            let running = Running {
                table: table.schema.full_name(),
                kind: job.kind,
                inputs: job.inputs.clone(),
                started: Instant::now(),
                progress: progress.clone(),
            };
            state.running.push((id, running));
            id
        };
        let result = run(self, table, job, options, &progress);
        match &result {
            Ok(report) => manager.totals.lock().add(report),
            Err(_) => manager.totals.lock().failed += 1,
        }
        let mut state = manager.state.lock();
        state.running.retain(|(job, _)| *job != id);
        manager.finished.notify_all();
        result
    }

    /// The next job the strategy of `table` asks for among its eligible sstables (R2.29): fully
    /// expired sstables first (R2.20), then the picker (R2.24–R2.28).
    pub fn next_compaction(&self, table: &str) -> Result<Option<CompactionJob>> {
        Ok(self.next_job(&*self.table_by_name(table)?, GcTime::now()))
    }

    fn next_job(&self, table: &Table, now: GcTime) -> Option<CompactionJob> {
        let compacting = table.compacting.lock().clone();
        let (eligible, others): (Vec<SstableInfo>, Vec<SstableInfo>) = {
            let all = table.sstables.load();
            let (eligible, others): (Vec<_>, Vec<_>) =
                all.iter().partition(|s| s.state == SstableState::Normal && !compacting.contains(&s.generation));
            let others = others.into_iter().chain(table.compacted_undeleted.lock().iter()).map(|s| sstable_info(s)).collect();
            (eligible.into_iter().map(|s| sstable_info(s)).collect(), others)
        };
        let options = &table.schema.options;
        let policy = gc_policy(self, table, CompactionOptions { now: Some(now), only_existing_data: false });
        let gc_before = policy.gc_before_range_wide();
        let gc_disabled = options.tombstone_gc == TombstoneGcMode::Disabled;
        if !gc_disabled && options.compaction_common.enabled {
            let expired = fully_expired(&eligible, &others, memtables_min_timestamp(table), gc_before);
            if !expired.is_empty() {
                let level = eligible.iter().filter(|s| expired.contains(&s.generation)).map(|s| s.level).max().unwrap_or(0);
                return Some(CompactionJob { kind: JobKind::ExpiredDrop, inputs: expired, output_level: level, max_output_bytes: None });
            }
        }
        let ctx = PickContext { now, gc_before, gc_disabled, common: options.compaction_common.clone() };
        strategy::pick(&options.compaction, &eligible, &ctx)
    }

    /// Runs the jobs the strategy of `table` asks for, on this thread, until it asks for none;
    /// returns their reports.
    pub fn compact_pending(&self, table: &str) -> Result<Vec<CompactionReport>> {
        let table = self.table_by_name(table)?;
        let mut reports = Vec::new();
        while let Some(job) = self.next_job(&table, GcTime::now()) {
            reports.push(self.run_tracked(&table, &job, CompactionOptions::default())?);
        }
        Ok(reports)
    }

    /// Compacts the given sstables of `table` into new ones at the highest input level, on this
    /// thread (a user-chosen or test-chosen subset; see [`CompactionOptions`]).
    pub fn compact_sstables(&self, table: &str, generations: &[u64], options: CompactionOptions) -> Result<CompactionReport> {
        let table = self.table_by_name(table)?;
        let mut inputs = generations.to_vec();
        inputs.sort_unstable();
        let level =
            table.sstables.load().iter().filter(|s| inputs.contains(&s.generation)).map(|s| s.reader.statistics().level).max().unwrap_or(0);
        let job = CompactionJob { kind: JobKind::Regular, inputs, output_level: level, max_output_bytes: None };
        self.run_tracked(&table, &job, options)
    }

    /// Major compaction of `table` (R2.29): flushes its memtable, waits for its running
    /// compactions, then compacts every eligible sstable into one run. `None` when there is none.
    pub fn compact(&self, table: &str) -> Result<Option<CompactionReport>> {
        self.flush(table)?;
        self.major(table, CompactionOptions::default())
    }

    fn major(&self, name: &str, options: CompactionOptions) -> Result<Option<CompactionReport>> {
        let table = self.table_by_name(name)?;
        self.wait_until_idle(&table);
        let eligible: Vec<SstableInfo> =
            table.sstables.load().iter().filter(|s| s.state == SstableState::Normal).map(|s| sstable_info(s)).collect();
        match strategy::major(&table.schema.options.compaction, &eligible) {
            Some(job) => self.run_tracked(&table, &job, options).map(Some),
            None => Ok(None),
        }
    }

    /// Waits until no compaction holds an sstable of `table`.
    fn wait_until_idle(&self, table: &Table) {
        let manager = &self.inner.compaction;
        let mut state = manager.state.lock();
        while !table.compacting.lock().is_empty() && !state.shutdown {
            // Timed: a job's claim is released after it leaves the running list.
            manager.finished.wait_for(&mut state, Duration::from_millis(20));
        }
    }

    /// R2.16's maintenance operation: flushes every table, then seals the active commitlog
    /// segment, so that no live segment holds data older than this call (the commitlog barrier
    /// of R2.15 then stops pinning older tombstones).
    pub fn flush_all_and_rotate_commitlog(&self) -> Result<()> {
        self.flush_all()?;
        self.inner.commitlog.rotate()
    }

    /// R2.16 "flush everything, rotate the commitlog, then compact considering only existing
    /// data": a major compaction of `table` without the commitlog barrier and without the overlap
    /// check (every sstable of the table is an input, and the memtables were just flushed).
    pub fn compact_only_existing_data(&self, table: &str) -> Result<Option<CompactionReport>> {
        self.flush_all_and_rotate_commitlog()?;
        self.major(table, CompactionOptions { now: None, only_existing_data: true })
    }

    /// Records that tokens `first..=last` of `table` were repaired at `time` (for
    /// `tombstone_gc = repair`, R2.14a). Held in memory: the embedding node, which owns repair
    /// history, sets it again after a restart (until then nothing is purged in repair mode).
    pub fn set_repair_time(&self, table: &str, first: Token, last: Token, time: GcTime) -> Result<()> {
        self.table_by_name(table)?.repair.record(first, last, time);
        Ok(())
    }

    /// Stops background workers from starting compactions (running ones finish).
    pub fn pause_compactions(&self) {
        self.inner.compaction.state.lock().paused = true;
    }

    /// Lets background workers start compactions again.
    pub fn resume_compactions(&self) {
        let manager = &self.inner.compaction;
        manager.state.lock().paused = false;
        manager.work.notify_all();
    }

    /// Waits until no table is queued for a background worker and no compaction runs (queued
    /// tables are not waited for while background compaction is paused or off).
    pub fn wait_for_compactions(&self) {
        let manager = &self.inner.compaction;
        let workers = !manager.threads.lock().is_empty();
        let mut state = manager.state.lock();
        while !state.shutdown
            && (!state.running.is_empty() || state.busy_workers > 0 || (workers && !state.paused && !state.queue.is_empty()))
        {
            manager.finished.wait_for(&mut state, Duration::from_millis(20));
        }
    }

    /// Stops compaction for good: no job starts from now on; running ones finish or are abandoned
    /// (see [`CompactionShutdown`]); background workers are joined.
    pub fn shut_down_compactions(&self, mode: CompactionShutdown) {
        let manager = &self.inner.compaction;
        manager.shut_down(mode == CompactionShutdown::Abandon);
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *manager.threads.lock());
        for thread in threads {
            // A worker that panicked has nothing more to report.
            let _ = thread.join();
        }
        let mut state = manager.state.lock();
        while !state.running.is_empty() {
            manager.finished.wait_for(&mut state, Duration::from_millis(20));
        }
    }

    /// What compaction is doing, and its totals.
    pub fn compaction_status(&self) -> CompactionStatus {
        let manager = &self.inner.compaction;
        let state = manager.state.lock();
        let tables = self.inner.tables.read();
        CompactionStatus {
            paused: state.paused,
            queued: state.queue.iter().filter_map(|id| tables.get(id)).map(|t| t.schema.full_name()).collect(),
            running: state
                .running
                .iter()
                .map(|(_, r)| RunningCompaction {
                    table: r.table.clone(),
                    kind: r.kind,
                    inputs: r.inputs.clone(),
                    data_written: r.progress.data_written.load(Ordering::Relaxed),
                    partitions: r.progress.partitions.load(Ordering::Relaxed),
                    elapsed: r.started.elapsed(),
                })
                .collect(),
            totals: manager.totals.lock().clone(),
            last_error: state.last_error.clone(),
        }
    }
}

/// Starts the background workers of `engine` and queues every table. A worker holds the shared
/// manager and only a weak handle of the engine, upgraded while it runs a job.
pub(crate) fn start(engine: &Engine) {
    let manager = engine.inner.compaction.clone();
    for id in engine.inner.tables.read().keys() {
        manager.schedule(*id);
    }
    let mut threads = manager.threads.lock();
    for n in 0..engine.inner.options.compaction_threads {
        let weak: Weak<Inner> = Arc::downgrade(&engine.inner);
        let shared = manager.clone();
        let niceness = engine.inner.options.compaction_niceness;
        let spawned = crate::thread_priority::spawn_background(format!("talus-compact-{n}"), niceness, move || work(&shared, weak));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => manager.state.lock().last_error = Some(format!("cannot start a compaction thread: {e}")),
        }
    }
}

fn work(manager: &CompactionManager, weak: Weak<Inner>) {
    loop {
        let table = {
            let mut state = manager.state.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if !state.paused {
                    if let Some(table) = state.queue.pop_front() {
                        state.busy_workers += 1;
                        break table;
                    }
                }
                manager.work.wait(&mut state);
            }
        };
        if let Some(inner) = weak.upgrade() {
            let engine = Engine { inner };
            let found = engine.inner.tables.read().get(&table).cloned();
            if let Some(table) = found {
                compact_one(&engine, &table);
            }
        }
        let mut state = manager.state.lock();
        state.busy_workers -= 1;
        manager.finished.notify_all();
    }
}

/// One background step for `table`: its next job, if any; the table is queued again after a job.
fn compact_one(engine: &Engine, table: &Arc<Table>) {
    let Some(job) = engine.next_job(table, GcTime::now()) else { return };
    match engine.run_tracked(table, &job, CompactionOptions::default()) {
        Ok(_) => engine.inner.compaction.schedule(table.schema.id),
        Err(e) => engine.inner.compaction.state.lock().last_error = Some(format!("compacting {}: {e}", table.schema.full_name())),
    }
}
