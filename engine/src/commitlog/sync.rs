//! The commitlog's writer thread and its flushers: the only code that writes segment bytes and
//! syncs them.
//!
//! The writer thread takes every buffer under the lock, then (without the lock) creates missing
//! segment files and writes the buffers in log order, and hands the sync of the active segment to
//! one of `concurrent_syncs` flusher threads. It does not wait for that sync: the next group of
//! writers can be written and synced while the previous sync is still in the device, which is
//! where most of a sync's time goes. Flusher `i` syncs through its own handle of the segment,
//! opened when the segment was created and before any record was written: each is its own file
//! description, so every write-back error is reported to every later sync and none can consume it
//! for another (Linux reports an error once per file description). Then it publishes: a successful sync makes everything written before it started durable, so the
//! watermark moves to the highest sequence number that sync covers, whatever order the flushers
//! finish in.
//!
//! A sealed segment is synced by the writer thread itself before the next segment's bytes are
//! written, so a later segment's records prove the earlier segments intact. Any error fails the
//! log for good (P6): nothing is retried, and waiting writers are woken with the error.
//!
//! Thread-safety: one writer thread and the flushers share `Shared` with the appenders.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use talus_format::fs::{FsFile, OpenMode};

use super::segment_file::{create_segment, segment_path, SegmentName};
use super::{Durability, LogState, Shared, WRITE_THRESHOLD};

/// One segment's share of a write cycle.
struct Work {
    id: u64,
    file: Option<Arc<dyn FsFile>>,
    flush_handles: Option<FlushHandles>,
    recycled: Option<u64>,
    bytes: Vec<u8>,
    offset: u32,
    end: u32,
    sealed: bool,
    synced_here: bool,
}

/// One handle of a segment per flusher.
pub(super) type FlushHandles = Arc<Vec<Arc<dyn FsFile>>>;

/// A sync handed to a flusher: everything of `segment` up to `end`, and every entry up to
/// `target_seq`, was written before it was queued.
struct FlushJob {
    segment: u64,
    path: PathBuf,
    handles: FlushHandles,
    end: u32,
    target_seq: u64,
}

/// What the next cycle should do.
#[derive(PartialEq)]
enum Next {
    /// Write, then sync.
    Sync,
    /// Write only (periodic mode with full buffers).
    Write,
    /// Wait for work, a free flusher or a deadline.
    Wait(Option<Instant>),
    /// Shut down.
    Stop,
}

fn decide(shared: &Shared, state: &LogState, last_sync: Instant) -> Next {
    if state.failed.is_some() {
        return Next::Stop;
    }
    let unsynced = state.appended_seq > state.dispatched_seq || state.open.iter().any(|s| s.file.is_none());
    if !unsynced {
        return if state.shutdown { Next::Stop } else { Next::Wait(None) };
    }
    let flusher_free = state.in_flight < shared.options.concurrent_syncs.max(1);
    let sync = if state.shutdown || state.sync_requested {
        true
    } else {
        match shared.options.durability {
            Durability::Batch(window) => match state.first_pending.map(|t| t + window) {
                Some(deadline) if !window.is_zero() && Instant::now() < deadline => return Next::Wait(Some(deadline)),
                _ => true,
            },
            Durability::Periodic(interval) => {
                let deadline = last_sync + interval;
                if Instant::now() >= deadline {
                    true
                } else if state.buffered >= WRITE_THRESHOLD {
                    return Next::Write;
                } else {
                    return Next::Wait(Some(deadline));
                }
            }
        }
    };
    match (sync, flusher_free) {
        (true, true) => Next::Sync,
        // Every flusher is busy: let the group grow until one is free.
        (true, false) => Next::Wait(None),
        (false, _) => Next::Write,
    }
}

/// The writer thread: runs until shutdown or failure, then lets the flushers finish.
pub(super) fn run(shared: &Arc<Shared>) {
    let (jobs, queue) = channel::<FlushJob>();
    let queue = Arc::new(Mutex::new(queue));
    let flushers: Vec<_> = (0..shared.options.concurrent_syncs.max(1))
        .filter_map(|i| {
            let (shared, queue) = (shared.clone(), queue.clone());
            std::thread::Builder::new().name(format!("talus-commitlog-flush-{i}")).spawn(move || flush(&shared, &queue, i)).ok()
        })
        .collect();
    if flushers.is_empty() {
        fail(shared, &mut shared.state.lock(), "no commitlog flusher thread could be started".into());
        return;
    }
    write_loop(shared, &jobs);
    drop(jobs);
    for flusher in flushers {
        // A panicking flusher cannot publish; the log then never acknowledges its entries.
        let _ = flusher.join();
    }
}

fn write_loop(shared: &Shared, jobs: &Sender<FlushJob>) {
    let mut last_sync = Instant::now();
    let mut state = shared.state.lock();
    loop {
        let sync = match decide(shared, &state, last_sync) {
            Next::Stop => return,
            Next::Wait(deadline) => {
                match deadline {
                    Some(deadline) => {
                        shared.work.wait_until(&mut state, deadline);
                    }
                    None => shared.work.wait(&mut state),
                }
                continue;
            }
            Next::Sync => true,
            Next::Write => false,
        };
        let target_seq = state.appended_seq;
        if sync {
            state.sync_requested = false;
            state.first_pending = None;
            state.dispatched_seq = target_seq;
            state.in_flight += 1;
            last_sync = Instant::now();
        }
        let mut work = take_buffers(&mut state);
        drop(state);
        let result = write_out(shared, &mut work);
        state = shared.state.lock();
        if let Err(reason) = result {
            fail(shared, &mut state, reason);
            return;
        }
        publish_writes(&mut state, &work);
        shared.progress.notify_all();
        if sync {
            match work.last().filter(|w| !w.synced_here).and_then(|w| Some((w, w.flush_handles.clone()?))) {
                Some((active, handles)) => {
                    let job = FlushJob {
                        segment: active.id,
                        path: segment_path(&shared.dir, SegmentName::Live(active.id)),
                        handles,
                        end: active.end,
                        target_seq,
                    };
                    if jobs.send(job).is_err() {
                        fail(shared, &mut state, "the commitlog flushers stopped".into());
                        return;
                    }
                }
                None => {
                    // Everything was synced here already.
                    state.in_flight -= 1;
                    publish_durable(shared, &mut state, target_seq);
                }
            }
        }
    }
}

/// Takes every segment's buffer, in log order.
fn take_buffers(state: &mut LogState) -> Vec<Work> {
    let st = &mut *state;
    let mut work = Vec::with_capacity(st.open.len());
    for segment in &mut st.open {
        let bytes = std::mem::take(&mut segment.buffer);
        let offset = segment.buffer_offset;
        segment.buffer_offset = segment.appended;
        let recycled = if segment.file.is_none() { st.recycled.pop() } else { None };
        work.push(Work {
            id: segment.id,
            file: segment.file.clone(),
            flush_handles: segment.flush_handles.clone(),
            recycled,
            bytes,
            offset,
            end: segment.appended,
            sealed: segment.sealed,
            synced_here: false,
        });
    }
    st.buffered = 0;
    work
}

/// Creates missing files and writes the buffers in order; a sealed segment followed by another
/// is synced before the next one gets any byte.
fn write_out(shared: &Shared, work: &mut [Work]) -> Result<(), String> {
    let last = work.len().saturating_sub(1);
    for (i, w) in work.iter_mut().enumerate() {
        let describe = |e: std::io::Error| format!("commitlog segment {} in {}: {e}", w.id, shared.dir.display());
        let file = match &w.file {
            Some(file) => file.clone(),
            None => {
                let file = create_segment(&*shared.fs, &shared.dir, w.id, shared.options.segment_size, w.recycled).map_err(describe)?;
                let path = segment_path(&shared.dir, SegmentName::Live(w.id));
                let handles = (0..shared.options.concurrent_syncs.max(1))
                    .map(|_| shared.fs.open(&path, OpenMode::Existing))
                    .collect::<std::io::Result<Vec<_>>>()
                    .map_err(describe)?;
                w.flush_handles = Some(Arc::new(handles));
                file
            }
        };
        w.file = Some(file.clone());
        if !w.bytes.is_empty() {
            file.write_all_at(&w.bytes, u64::from(w.offset)).map_err(describe)?;
        }
        if w.sealed && i < last {
            file.sync().map_err(describe)?;
            w.synced_here = true;
        }
    }
    Ok(())
}

/// Records new files and the segments synced by the writer thread.
fn publish_writes(state: &mut LogState, work: &[Work]) {
    for w in work {
        let Some(segment) = state.open.iter_mut().find(|s| s.id == w.id) else { continue };
        if segment.file.is_none() {
            segment.file = w.file.clone();
            segment.flush_handles = w.flush_handles.clone();
        }
        if w.synced_here {
            segment.synced = segment.synced.max(w.end);
        }
    }
    close_synced_segments(state);
}

/// Sealed segments whose every byte is durable leave the open list.
fn close_synced_segments(state: &mut LogState) {
    while let Some(front) = state.open.front() {
        if !(front.sealed && front.synced == front.appended && front.buffer.is_empty()) {
            break;
        }
        let id = front.id;
        state.open.pop_front();
        if let Some(usage) = state.segments.get_mut(&id) {
            usage.closed = true;
        }
    }
}

fn publish_durable(shared: &Shared, state: &mut LogState, seq: u64) {
    state.durable_seq = state.durable_seq.max(seq);
    shared.watermark.advance(state.durable_seq);
    shared.work.notify_one();
    shared.progress.notify_all();
}

fn fail(shared: &Shared, state: &mut LogState, reason: String) {
    state.failed.get_or_insert(reason);
    shared.watermark.fail();
    shared.work.notify_all();
    shared.progress.notify_all();
}

/// Flusher `index`: syncs segments through its own handles and publishes what became durable.
fn flush(shared: &Shared, queue: &Mutex<Receiver<FlushJob>>, index: usize) {
    loop {
        let Ok(job) = queue.lock().recv() else { return };
        let result = match job.handles.get(index) {
            Some(file) => file.sync(),
            None => Err(std::io::Error::other(format!("no flush handle {index}"))),
        };
        let mut state = shared.state.lock();
        state.in_flight -= 1;
        match result {
            Err(e) => fail(shared, &mut state, format!("syncing {}: {e}", job.path.display())),
            Ok(()) if state.failed.is_none() => {
                if let Some(segment) = state.open.iter_mut().find(|s| s.id == job.segment) {
                    segment.synced = segment.synced.max(job.end);
                }
                close_synced_segments(&mut state);
                publish_durable(shared, &mut state, job.target_seq);
            }
            Ok(()) => {}
        }
    }
}
