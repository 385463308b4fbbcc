//! The commitlog's sync thread: the only code that writes segment bytes and fsyncs them.
//!
//! Each cycle takes every buffer under the lock, then (without the lock) creates missing segment
//! files, writes the buffers in log order and syncs, then publishes the new durable sequence
//! number to the watermark, which wakes exactly the writers it made durable. While one sync runs,
//! the next group of writers gathers in the buffers (group commit). A sealed segment is synced
//! before the next segment's bytes are written. Any error fails the log for good (P6): nothing is
//! retried, waiting writers are woken with the error.
//!
//! Measured alternatives, not kept (16 writers on the 2-core development VM, where this design
//! acknowledges 75–92k writes/s): handing each sync to one of several flusher threads so that
//! syncs overlap (45k: the hand-off costs more than the overlap gains); letting a waiting writer
//! sync the next group itself while the thread's sync runs (50k: two syncs of one file slow each
//! other and split the groups); waiting after a sync for its writers to come back so that the
//! two alternating half-groups merge (60k: sixteen writers waking at once on two cores take
//! longer than the sync they save). So one thread writes and syncs.
//!
//! Thread-safety: runs on its own thread; shares `Shared` with the appenders.

use std::sync::Arc;
use std::time::Instant;

use talus_format::fs::FsFile;

use super::segment_file::create_segment;
use super::{new_buffer, Durability, LogState, Shared, WRITE_THRESHOLD};

/// One segment's share of a cycle.
struct Work {
    id: u64,
    file: Option<Arc<dyn FsFile>>,
    recycled: Option<u64>,
    bytes: Vec<u8>,
    offset: u32,
    end: u32,
    sealed: bool,
}

/// What the next cycle should do.
#[derive(PartialEq)]
enum Next {
    /// Write and sync.
    Sync,
    /// Write only (periodic mode with full buffers).
    Write,
    /// Wait for work or a deadline.
    Wait(Option<Instant>),
    /// Shut down.
    Stop,
}

fn decide(shared: &Shared, state: &LogState, last_sync: Instant) -> Next {
    if state.failed.is_some() {
        return Next::Stop;
    }
    let pending = state.appended_seq > state.durable_seq || state.open.iter().any(|s| s.file.is_none() || !s.buffer.is_empty());
    if !pending {
        return if state.shutdown { Next::Stop } else { Next::Wait(None) };
    }
    if state.shutdown || state.sync_requested {
        return Next::Sync;
    }
    match shared.options.durability {
        Durability::Batch(window) => match state.first_pending.map(|t| t + window) {
            Some(deadline) if !window.is_zero() && Instant::now() < deadline => Next::Wait(Some(deadline)),
            _ => Next::Sync,
        },
        Durability::Periodic(interval) => {
            let deadline = last_sync + interval;
            if Instant::now() >= deadline {
                Next::Sync
            } else if state.buffered >= WRITE_THRESHOLD {
                Next::Write
            } else {
                Next::Wait(Some(deadline))
            }
        }
    }
}

/// Fails the log if the sync thread unwinds, so no writer waits for a sync that will not come.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock();
            state.failed.get_or_insert_with(|| "the commitlog sync thread panicked".into());
            self.0.watermark.fail();
            self.0.progress.notify_all();
        }
    }
}

/// The sync thread's loop.
pub(super) fn run(shared: &Shared) {
    let _fail_on_panic = FailOnPanic(shared);
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
        state.sync_requested = false;
        state.first_pending = None;
        let mut work = Vec::with_capacity(state.open.len());
        let st = &mut *state;
        let mut spare = std::mem::take(&mut st.spare_buffers);
        for segment in &mut st.open {
            // The active segment gets a spare buffer; a sealed one takes no more appends.
            let bytes = match (segment.buffer.is_empty(), segment.sealed) {
                (true, _) => Vec::new(),
                (false, true) => std::mem::take(&mut segment.buffer),
                (false, false) => std::mem::replace(&mut segment.buffer, spare.pop().unwrap_or_else(new_buffer)),
            };
            let offset = segment.buffer_offset;
            segment.buffer_offset = segment.appended;
            let recycled = if segment.file.is_none() { st.recycled.pop() } else { None };
            work.push(Work {
                id: segment.id,
                file: segment.file.clone(),
                recycled,
                bytes,
                offset,
                end: segment.appended,
                sealed: segment.sealed,
            });
        }
        st.spare_buffers = spare;
        st.buffered = 0;
        drop(state);
        let result = perform(shared, &mut work, sync);
        state = shared.state.lock();
        if sync {
            last_sync = Instant::now();
        }
        match result {
            Err(reason) => {
                state.failed.get_or_insert(reason);
                shared.watermark.fail();
                shared.progress.notify_all();
                return;
            }
            Ok(synced) => publish(&mut state, &work, synced, target_seq),
        }
        for w in &mut work {
            state.return_buffer(std::mem::take(&mut w.bytes));
        }
        shared.watermark.advance(state.durable_seq);
        shared.progress.notify_all();
    }
}

/// Writes (and syncs where needed) the work in order; returns how many leading items are synced.
fn perform(shared: &Shared, work: &mut [Work], sync: bool) -> Result<usize, String> {
    let size = shared.options.segment_size;
    let last = work.len().saturating_sub(1);
    let mut synced = 0;
    for (i, w) in work.iter_mut().enumerate() {
        let describe = |e: std::io::Error| format!("commitlog segment {} in {}: {e}", w.id, shared.dir.display());
        let file = match &w.file {
            Some(file) => file.clone(),
            None => create_segment(&*shared.fs, &shared.dir, w.id, size, w.recycled).map_err(describe)?,
        };
        w.file = Some(file.clone());
        if !w.bytes.is_empty() {
            file.write_all_at(&w.bytes, u64::from(w.offset)).map_err(describe)?;
        }
        // A sealed segment is synced before the next one gets any byte.
        if sync || (w.sealed && i < last) {
            file.sync().map_err(describe)?;
            if synced == i {
                synced = i + 1;
            }
        }
    }
    Ok(synced)
}

/// Records the outcome of a successful cycle: new files, synced offsets, closed segments and the
/// durable sequence number.
fn publish(state: &mut LogState, work: &[Work], synced: usize, target_seq: u64) {
    for (i, w) in work.iter().enumerate() {
        let Some(segment) = state.open.iter_mut().find(|s| s.id == w.id) else { continue };
        if segment.file.is_none() {
            segment.file = w.file.clone();
        }
        if i < synced {
            segment.synced = w.end;
        }
    }
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
    if synced == work.len() {
        state.durable_seq = state.durable_seq.max(target_seq);
    }
}
