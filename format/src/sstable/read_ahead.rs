//! Read-ahead of whole-file sstable streams: one helper thread reads, verifies and decompresses
//! the data blocks of several streams ahead of their consumer (a compaction merging its inputs),
//! so decompression overlaps the merge.
//!
//! A stream registered with [`SstableStream::read_ahead`] reads every block of its partitions in
//! file order (its plan reads every block), so the blocks it will load are known in advance: the
//! helper walks the same partition index and row indexes and reads those blocks, each once, in
//! the same order, through the same `SstableReader::block_filling` (so the counters count the
//! same blocks). The stream takes them in order and checks each one's offset against the block it
//! wants; on any mismatch, on an error of the helper's read, or once the read-ahead is closed, it
//! leaves the read-ahead and reads its blocks itself, so a stream's fragments and errors never
//! depend on the helper (a failed read is met again, by the stream, where it would have been).
//!
//! The helper keeps up to [`AHEAD_BYTES`] of content ready per stream, filling first a stream
//! whose consumer waits, then the emptiest; it sleeps when every stream is full and is woken when
//! one falls below half, so it is woken about once per half window, not once per block.
//!
//! Invariants: a read error (I/O or corruption) is handed to the stream in place of the next
//! block, and the helper reads nothing more for that stream. The helper never holds the lock while
//! reading. Dropping the [`ReadAhead`] closes it and joins the helper; waiting streams then read
//! on their own. A panic of the helper closes the read-ahead the same way.
//!
//! Thread-safety: a [`ReadAhead`] is `Send + Sync`; each registered stream is consumed by one
//! thread at a time, and any number of threads may consume different streams.
//!
//! [`SstableStream::read_ahead`]: crate::sstable::reader::SstableStream::read_ahead

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::sstable::block::BlockHandle;
use crate::sstable::index::RowIndexEntry;
use crate::sstable::reader::{ReadCounters, SstableReader};

/// Decompressed bytes the helper keeps ready per stream at most (it refills a stream below half).
pub const AHEAD_BYTES: usize = 128 << 10;

/// The blocks a whole-file stream loads, in order: what [`SstableStream`] reads when its plan
/// reads every block.
///
/// [`SstableStream`]: crate::sstable::reader::SstableStream
pub(crate) struct BlockSequence {
    reader: Arc<SstableReader>,
    next: usize,
    end: usize,
    /// Whether the plan wants static rows (a partition with only a static row is then read).
    static_row: bool,
    fill_cache: bool,
    counters: Arc<ReadCounters>,
    /// The remaining blocks of the wide partition being walked.
    wide: std::vec::IntoIter<RowIndexEntry>,
    /// The offset of the last block read (a block holding several partitions is read once).
    last: Option<u64>,
}

impl BlockSequence {
    /// The blocks of partitions `partitions` of `reader`.
    pub(crate) fn new(
        reader: Arc<SstableReader>,
        partitions: std::ops::Range<usize>,
        static_row: bool,
        fill_cache: bool,
        counters: Arc<ReadCounters>,
    ) -> BlockSequence {
        let (next, end) = (partitions.start, partitions.end);
        BlockSequence { reader, next, end, static_row, fill_cache, counters, wide: Vec::new().into_iter(), last: None }
    }

    fn next_handle(&mut self) -> Result<Option<BlockHandle>> {
        loop {
            let handle = match self.wide.next() {
                Some(entry) => entry.block,
                None => {
                    if self.next >= self.end {
                        return Ok(None);
                    }
                    let Some(p) = self.reader.partitions().get(self.next) else { return Ok(None) };
                    self.next += 1;
                    if p.has_row_index() {
                        let entry = p.entry()?;
                        self.wide = self.reader.row_index(&entry)?.into_iter();
                        continue;
                    }
                    if !(p.has_clustering() || (p.has_static_row() && self.static_row)) {
                        continue;
                    }
                    p.block()
                }
            };
            if self.last != Some(handle.offset) {
                self.last = Some(handle.offset);
                return Ok(Some(handle));
            }
        }
    }

    /// The next block's offset and content; `None` after the last.
    fn next_block(&mut self) -> Option<Result<(u64, Bytes)>> {
        match self.next_handle() {
            Ok(Some(handle)) => Some(self.reader.block_filling(handle, &self.counters, self.fill_cache).map(|c| (handle.offset, c))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// One registered stream.
struct Slot {
    ready: VecDeque<Result<(u64, Bytes)>>,
    ready_bytes: usize,
    /// What is left to read; `None` while the helper reads from it, and for good once it is
    /// exhausted, failed or its stream is gone.
    sequence: Option<BlockSequence>,
    /// No more blocks will come.
    exhausted: bool,
    /// The stream left.
    dropped: bool,
    /// The stream's consumer waits for a block.
    waiting: bool,
}

struct State {
    slots: Vec<Slot>,
    closed: bool,
    helper_idle: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The helper waits here for work.
    helper: Condvar,
    /// Consumers wait here for blocks.
    consumers: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked: every update is a single step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the helper if it sleeps.
    fn wake_helper(&self, state: &mut State) {
        if state.helper_idle {
            state.helper_idle = false;
            self.helper.notify_one();
        }
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.helper.notify_one();
        self.consumers.notify_all();
    }
}

/// A helper thread reading ahead for the streams registered with it (see the module
/// documentation). Dropping it closes it and joins the thread.
pub struct ReadAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead").finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// Starts the helper thread.
    pub fn start() -> Result<ReadAhead> {
        let state = State { slots: Vec::new(), closed: false, helper_idle: false };
        let shared = Arc::new(Shared { state: Mutex::new(state), helper: Condvar::new(), consumers: Condvar::new() });
        let helper = shared.clone();
        let thread = std::thread::Builder::new()
            .name("talus-sstable-read-ahead".into())
            .spawn(move || run(&helper))
            .map_err(|e| Error::Io(format!("starting the read-ahead thread: {e}")))?;
        Ok(ReadAhead { shared, thread: Some(thread) })
    }

    /// Registers the blocks of one stream; the stream takes them through the returned slot.
    pub(crate) fn register(&self, sequence: BlockSequence) -> AheadSlot {
        let mut state = self.shared.lock();
        let id = state.slots.len();
        let exhausted = state.closed;
        state.slots.push(Slot {
            ready: VecDeque::new(),
            ready_bytes: 0,
            sequence: Some(sequence),
            exhausted,
            dropped: false,
            waiting: false,
        });
        self.shared.wake_helper(&mut state);
        AheadSlot { shared: self.shared.clone(), id }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(thread) = self.thread.take() {
            // A panic of the helper already closed the read-ahead; there is nothing to report.
            let _ = thread.join();
        }
    }
}

/// Closes the read-ahead when the helper ends, even by a panic, so no consumer waits forever.
struct CloseOnExit<'a>(&'a Shared);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The helper thread.
fn run(shared: &Shared) {
    let _close = CloseOnExit(shared);
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        let Some(id) = pick(&state.slots) else {
            state.helper_idle = true;
            state = shared.helper.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.helper_idle = false;
            continue;
        };
        let slot = &mut state.slots[id];
        let budget = AHEAD_BYTES.saturating_sub(slot.ready_bytes).min(AHEAD_BYTES / 2);
        let Some(mut sequence) = slot.sequence.take() else { continue };
        drop(state);

        let (mut batch, mut bytes, mut finished) = (Vec::new(), 0, false);
        while bytes < budget && !finished {
            match sequence.next_block() {
                Some(Ok((offset, content))) => {
                    bytes += content.len();
                    batch.push(Ok((offset, content)));
                }
                Some(Err(e)) => {
                    batch.push(Err(e));
                    finished = true;
                }
                None => finished = true,
            }
        }

        state = shared.lock();
        let slot = &mut state.slots[id];
        if slot.dropped {
            continue;
        }
        slot.ready.extend(batch);
        slot.ready_bytes += bytes;
        if finished {
            slot.exhausted = true;
        } else {
            slot.sequence = Some(sequence);
        }
        if slot.waiting {
            shared.consumers.notify_all();
        }
    }
}

/// The stream to read for next: one whose consumer waits, else the one with the least ready
/// below the window.
fn pick(slots: &[Slot]) -> Option<usize> {
    let candidates = slots.iter().enumerate().filter(|(_, s)| s.sequence.is_some() && s.ready_bytes < AHEAD_BYTES);
    candidates.min_by_key(|(_, s)| (!s.waiting, s.ready_bytes)).map(|(i, _)| i)
}

/// A stream's place in a [`ReadAhead`].
pub(crate) struct AheadSlot {
    shared: Arc<Shared>,
    id: usize,
}

impl AheadSlot {
    /// The stream's next block (its offset and content, or the error reading it), waiting for
    /// the helper if needed; `None` when no more will come (the sequence is exhausted or the
    /// read-ahead closed).
    pub(crate) fn next(&self) -> Option<Result<(u64, Bytes)>> {
        let mut state = self.shared.lock();
        loop {
            let closed = state.closed;
            let slot = &mut state.slots[self.id];
            if let Some(item) = slot.ready.pop_front() {
                if let Ok((_, content)) = &item {
                    slot.ready_bytes -= content.len();
                }
                if slot.ready_bytes < AHEAD_BYTES / 2 && slot.sequence.is_some() {
                    self.shared.wake_helper(&mut state);
                }
                return Some(item);
            }
            if slot.exhausted || closed {
                return None;
            }
            slot.waiting = true;
            self.shared.wake_helper(&mut state);
            state = self.shared.consumers.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.slots[self.id].waiting = false;
        }
    }
}

impl Drop for AheadSlot {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let slot = &mut state.slots[self.id];
        slot.dropped = true;
        slot.ready = VecDeque::new();
        slot.ready_bytes = 0;
        slot.sequence = None;
    }
}
