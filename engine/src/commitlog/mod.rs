//! The commitlog: crash-atomic entries in segment files, group commit, segment lifecycle and
//! replay (DESIGN §3, R3.1–R3.13, P1, P2, P6).
//!
//! Write path: [`Commitlog::append`] frames the entry into the active segment's in-memory buffer
//! under one mutex and returns its [`ReplayPosition`] and sequence number; it does no I/O. A single
//! sync thread writes the buffers out and fsyncs them; [`Commitlog::wait_durable`] blocks until a
//! sync covered the entry. So writers never fsync individually, and all writers that arrive while
//! one sync runs (or within the batch window) share the next one (group commit).
//!
//! Ordering invariants (what makes replay a prefix of the log, P2):
//! - bytes of a segment are written in order, and a segment is sealed and synced before any byte
//!   of the next segment is written, so a later segment's records prove the earlier ones intact;
//! - each record carries the offset its segment was synced to when it was appended
//!   (`durable_before`), which tells corruption from an unsynced torn tail on replay;
//! - an entry is acknowledged as durable only after the sync that covered it returned `Ok`.
//!   After any write or sync error the commitlog fails stop (P6, no fsync retry): every waiting
//!   and later writer gets [`Error::CommitlogFailed`]; reopening replays what reached the disk.
//!
//! Thread-safety: `Commitlog` is `Send + Sync`; appends serialize on the state mutex for the time
//! of a memcpy.

mod position;
mod replay;
mod segment_file;
mod sync;
mod usage;
mod watermark;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use talus_format::commitlog_segment::{encode_record, record_len, RECORD_MUTATIONS, RECORD_SEAL, SEGMENT_HEADER_LEN};
use talus_format::fs::{Fs, FsFile};
use talus_format::{GcTime, TableId};

use crate::error::{io_error, Error, Result};
pub use position::{ReplayCoverage, ReplayPosition};
pub use replay::{recover, CorruptionPolicy, RecoveryReport, ReplayedEntry, ReplayedTables};
pub use segment_file::SegmentName;
use usage::SegmentUse;
use watermark::DurableWatermark;

/// When an append is acknowledged (R3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after an fsync covered the entry; writers arriving within `window` of the first
    /// pending one share that fsync (zero: sync as soon as the previous sync ends).
    Batch(Duration),
    /// Acknowledge at once; write and fsync in the background every interval.
    Periodic(Duration),
}

/// Commitlog configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitlogOptions {
    /// Segment file size in bytes (default 32 MiB, R3.8). Entries over half of it are refused.
    pub segment_size: u32,
    /// Acknowledgement mode.
    pub durability: Durability,
    /// Total size of live segments above which the oldest segments' tables are asked to flush.
    pub max_total_bytes: u64,
    /// Age of the oldest data above which its tables are asked to flush (R3.5, default 1 day).
    pub max_data_age: Duration,
    /// What replay does with corruption.
    pub corruption: CorruptionPolicy,
}

impl Default for CommitlogOptions {
    fn default() -> Self {
        CommitlogOptions {
            segment_size: 32 << 20,
            durability: Durability::Batch(Duration::ZERO),
            max_total_bytes: 1 << 30,
            max_data_age: Duration::from_secs(86_400),
            corruption: CorruptionPolicy::Fail,
        }
    }
}

/// Buffered bytes above which appends wait for the sync thread (bounded memory, P7).
const MAX_BUFFERED: usize = 64 << 20;
/// Buffered bytes above which the sync thread writes without waiting for the period.
const WRITE_THRESHOLD: usize = 1 << 20;

/// An appended entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Where the entry is in the log.
    pub position: ReplayPosition,
    /// Its sequence number, for [`Commitlog::wait_durable`].
    pub seq: u64,
}

/// A segment whose bytes are not all written and synced yet.
#[derive(Debug)]
struct OpenSegment {
    id: u64,
    file: Option<Arc<dyn FsFile>>,
    /// Bytes not yet handed to the sync thread, starting at segment offset `buffer_offset`.
    buffer: Vec<u8>,
    buffer_offset: u32,
    /// End of the appended bytes.
    appended: u32,
    /// Offset up to which the segment is durable.
    synced: u32,
    /// A seal record was appended; nothing more will be.
    sealed: bool,
}

#[derive(Debug)]
struct LogState {
    open: VecDeque<OpenSegment>,
    segments: BTreeMap<u64, SegmentUse>,
    recycled: Vec<u64>,
    /// Emptied buffers the sync thread handed back, capacity kept: appends fill them without
    /// growing (and copying, and faulting in) a new vector every cycle.
    spare_buffers: Vec<Vec<u8>>,
    next_id: u64,
    appended_seq: u64,
    durable_seq: u64,
    buffered: usize,
    first_pending: Option<Instant>,
    sync_requested: bool,
    failed: Option<String>,
    shutdown: bool,
}

#[derive(Debug)]
struct Shared {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: CommitlogOptions,
    state: Mutex<LogState>,
    /// Signalled when durability advances, buffers drain or the log fails.
    progress: Condvar,
    /// Signalled when there is work for the sync thread.
    work: Condvar,
    /// Durability as seen by waiting writers.
    watermark: DurableWatermark,
}

/// An open commitlog.
#[derive(Debug)]
pub struct Commitlog {
    shared: Arc<Shared>,
    sync_thread: Option<JoinHandle<()>>,
}

fn seal_len() -> u32 {
    record_len(0) as u32
}

impl Commitlog {
    /// Starts the commitlog in `dir` after [`recover`] scanned it: the recovered segments stay
    /// live (dirty for the tables replayed from them) until those tables are persisted.
    pub fn start(fs: Arc<dyn Fs>, dir: &Path, options: CommitlogOptions, recovered: &RecoveryReport) -> Result<Commitlog> {
        if options.segment_size < 4096 {
            return Err(Error::InvalidOptions(format!("commitlog segment size {} is below 4096 bytes", options.segment_size)));
        }
        let mut segments = BTreeMap::new();
        for (&id, dirty) in &recovered.dirty {
            // The original first-append times are unknown: count the segment from the start of
            // time, for the tables replayed from it and for those whose entries were skipped as
            // already flushed, so no tombstone is purged while its data can still be replayed
            // (R2.15).
            let mut usage = SegmentUse { closed: true, ..SegmentUse::default() };
            for (&table, &count) in dirty {
                usage.dirty.insert(table, count);
            }
            let flushed = recovered.flushed.get(&id).into_iter().flatten();
            for &table in dirty.keys().chain(flushed) {
                usage.min_gc_time.insert(table, GcTime::MIN);
            }
            usage.first_append = Some(Instant::now());
            segments.insert(id, usage);
        }
        let state = LogState {
            open: VecDeque::new(),
            segments,
            recycled: recovered.recycled.clone(),
            spare_buffers: Vec::new(),
            next_id: recovered.next_segment_id,
            appended_seq: 0,
            durable_seq: 0,
            buffered: 0,
            first_pending: None,
            sync_requested: false,
            failed: None,
            shutdown: false,
        };
        let shared = Arc::new(Shared {
            fs,
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(state),
            progress: Condvar::new(),
            work: Condvar::new(),
            watermark: DurableWatermark::default(),
        });
        let thread_shared = shared.clone();
        let sync_thread = std::thread::Builder::new()
            .name("talus-commitlog-sync".into())
            .spawn(move || sync::run(&thread_shared))
            .map_err(io_error(dir))?;
        let log = Commitlog { shared, sync_thread: Some(sync_thread) };
        log.dispose_clean_segments()?;
        Ok(log)
    }

    /// The options in force.
    pub fn options(&self) -> &CommitlogOptions {
        &self.shared.options
    }

    /// Appends one entry (the body of a mutations record) touching `tables`. With `sync_now` the
    /// sync thread starts a sync at once. Fails if the entry exceeds half a segment or the log
    /// failed earlier.
    pub fn append(&self, tables: &[TableId], body: &[u8], sync_now: bool) -> Result<Appended> {
        let segment_size = self.shared.options.segment_size;
        let len = record_len(body.len());
        let limit = segment_size as usize / 2;
        if len > limit {
            return Err(Error::EntryTooLarge { size: len, limit });
        }
        let mut state = self.shared.state.lock();
        while state.buffered > MAX_BUFFERED && state.failed.is_none() {
            self.shared.work.notify_one();
            self.shared.progress.wait(&mut state);
        }
        if let Some(reason) = &state.failed {
            return Err(Error::CommitlogFailed(reason.clone()));
        }
        let needs_roll =
            state.open.back().is_none_or(|s| s.sealed || s.appended as usize + len + seal_len() as usize > segment_size as usize);
        if needs_roll {
            roll(&mut state);
        }
        let st = &mut *state;
        let Some(active) = st.open.back_mut() else {
            // `roll` always leaves an open segment.
            return Err(Error::CommitlogFailed("no active segment".into()));
        };
        let position = ReplayPosition { segment: active.id, offset: active.appended };
        encode_record(active.id, active.synced, RECORD_MUTATIONS, body, &mut active.buffer);
        active.appended += len as u32;
        st.buffered += len;
        st.appended_seq += 1;
        let seq = st.appended_seq;
        if let Some(usage) = st.segments.get_mut(&position.segment) {
            usage.record(tables);
        }
        let first_of_cycle = st.first_pending.is_none();
        st.first_pending.get_or_insert_with(Instant::now);
        st.sync_requested |= sync_now;
        // Under Periodic the sync thread sleeps until its deadline once it knows there is data;
        // waking it for every append would cost a context switch per write for nothing.
        let wake = match self.shared.options.durability {
            Durability::Batch(_) => true,
            Durability::Periodic(_) => first_of_cycle || sync_now || st.buffered >= WRITE_THRESHOLD,
        };
        if wake {
            self.shared.work.notify_one();
        }
        Ok(Appended { position, seq })
    }

    /// Blocks until the entry with sequence number `seq` is durable.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.shared.watermark.wait(seq) {
            return Ok(());
        }
        let reason = self.shared.state.lock().failed.clone().unwrap_or_default();
        Err(Error::CommitlogFailed(reason))
    }

    /// Syncs everything appended so far and waits for it.
    pub fn sync(&self) -> Result<()> {
        let seq = {
            let mut state = self.shared.state.lock();
            state.sync_requested = true;
            self.shared.work.notify_one();
            state.appended_seq
        };
        self.wait_durable(seq)
    }

    /// Stops the log for good (fail-stop): every waiting and later writer gets the error.
    pub fn fail(&self, reason: String) {
        let mut state = self.shared.state.lock();
        state.failed.get_or_insert(reason);
        self.shared.watermark.fail();
        self.shared.progress.notify_all();
        self.shared.work.notify_all();
    }

    /// The reason the log stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.state.lock().failed.clone()
    }

    /// `min_gc_time(table)` for the compactor's barrier (R2.15).
    pub fn min_gc_time(&self, table: TableId) -> GcTime {
        usage::min_gc_time(&self.shared.state.lock().segments, table)
    }

    /// Tables whose flush the size and age limits request (R3.5).
    pub fn tables_to_flush(&self) -> BTreeSet<TableId> {
        let state = self.shared.state.lock();
        let o = &self.shared.options;
        usage::tables_to_flush(&state.segments, u64::from(o.segment_size), o.max_total_bytes, o.max_data_age, Instant::now())
    }

    /// Ids of the live segments, oldest first.
    pub fn live_segments(&self) -> Vec<u64> {
        self.shared.state.lock().segments.keys().copied().collect()
    }

    /// The memtable of `table` covering `coverage` was persisted: those entries are clean, and
    /// segments clean for every table are recycled or deleted (R3.11).
    pub fn discard_completed(&self, table: TableId, coverage: &ReplayCoverage) -> Result<()> {
        {
            let mut state = self.shared.state.lock();
            for (segment, &count) in &coverage.entries {
                if let Some(usage) = state.segments.get_mut(segment) {
                    usage.clean(table, count);
                }
            }
        }
        self.dispose_clean_segments()
    }

    /// Forgets `table` everywhere (it was dropped; its truncation record stops replay).
    pub fn discard_table(&self, table: TableId) -> Result<()> {
        {
            let mut state = self.shared.state.lock();
            for usage in state.segments.values_mut() {
                usage.dirty.remove(&table);
            }
        }
        self.dispose_clean_segments()
    }

    /// Seals the active segment (if it holds anything) so that new entries go to a new one, and
    /// waits until the seal is durable; segments clean for every table are then disposed of
    /// (R2.16 "rotate the commitlog").
    pub fn rotate(&self) -> Result<()> {
        let seq = {
            let mut state = self.shared.state.lock();
            if let Some(reason) = &state.failed {
                return Err(Error::CommitlogFailed(reason.clone()));
            }
            let holds_entries = state.open.back().is_some_and(|s| !s.sealed && s.appended > SEGMENT_HEADER_LEN as u32);
            if holds_entries {
                roll(&mut state);
            }
            // A sync cycle writes every buffer, the seal included; a new sequence number makes
            // the wait cover it.
            state.appended_seq += 1;
            state.sync_requested = true;
            self.shared.work.notify_one();
            state.appended_seq
        };
        self.wait_durable(seq)?;
        self.dispose_clean_segments()
    }

    /// The position the next entry will get at the earliest (everything before it is appended).
    pub fn current_position(&self) -> ReplayPosition {
        let state = self.shared.state.lock();
        match state.open.back() {
            Some(s) => ReplayPosition { segment: s.id, offset: s.appended },
            None => ReplayPosition { segment: state.next_id, offset: 0 },
        }
    }

    fn dispose_clean_segments(&self) -> Result<()> {
        let shared = &self.shared;
        let segment_size = u64::from(shared.options.segment_size);
        loop {
            let (id, recycle) = {
                let mut state = shared.state.lock();
                let Some((&id, usage)) = state.segments.iter_mut().find(|(_, u)| u.disposable()) else { return Ok(()) };
                usage.disposing = true;
                let files = (state.segments.len() + state.recycled.len()) as u64;
                (id, files * segment_size <= shared.options.max_total_bytes)
            };
            let result = if recycle {
                segment_file::recycle_segment(&*shared.fs, &shared.dir, id)
            } else {
                segment_file::delete_segment(&*shared.fs, &shared.dir, SegmentName::Live(id))
            };
            if let Err(e) = result {
                let reason = format!("disposing of commitlog segment {id} in {}: {e}", shared.dir.display());
                self.fail(reason.clone());
                return Err(Error::CommitlogFailed(reason));
            }
            let mut state = shared.state.lock();
            state.segments.remove(&id);
            if recycle {
                state.recycled.push(id);
            }
        }
    }
}

/// A new append buffer, sized for a write cycle.
fn new_buffer() -> Vec<u8> {
    Vec::with_capacity(2 * WRITE_THRESHOLD)
}

impl LogState {
    /// An empty buffer for appends: a spare one, or a new one sized for a write cycle.
    fn take_buffer(&mut self) -> Vec<u8> {
        self.spare_buffers.pop().unwrap_or_else(new_buffer)
    }

    /// Keeps `buffer` (written out) for reuse; at most two are kept.
    fn return_buffer(&mut self, mut buffer: Vec<u8>) {
        if self.spare_buffers.len() < 2 && buffer.capacity() > 0 {
            buffer.clear();
            self.spare_buffers.push(buffer);
        }
    }
}

/// Seals the active segment (if any) and opens the next one; its file is created by the sync
/// thread before its first bytes are written.
fn roll(state: &mut LogState) {
    let seal = {
        if let Some(active) = state.open.back_mut().filter(|s| !s.sealed) {
            encode_record(active.id, active.synced, RECORD_SEAL, &[], &mut active.buffer);
            active.appended += seal_len();
            active.sealed = true;
            seal_len() as usize
        } else {
            0
        }
    };
    state.buffered += seal;
    let id = state.next_id;
    state.next_id += 1;
    let header = SEGMENT_HEADER_LEN as u32;
    let buffer = state.take_buffer();
    state.open.push_back(OpenSegment { id, file: None, buffer, buffer_offset: header, appended: header, synced: header, sealed: false });
    state.segments.insert(id, SegmentUse::default());
}

impl Drop for Commitlog {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock();
            state.shutdown = true;
            self.shared.work.notify_all();
        }
        if let Some(thread) = self.sync_thread.take() {
            // A panic in the sync thread failed the log as it unwound; nothing more to report.
            let _ = thread.join();
        }
    }
}
