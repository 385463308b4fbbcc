//! Where the sstable writer's bytes go: finished data blocks compressed, given their trailer and
//! appended to the sink, then the sections after them appended as they are, either right away on
//! the writer's thread ([`BlockOutput::inline`]) or on a helper thread while the writer goes on
//! encoding ([`BlockOutput::pipelined`]; the writer builds the bloom filter while the helper
//! writes the indexes, for instance).
//!
//! Blocks are numbered in the order they are submitted (their sequence numbers, from 0); a
//! block's [`BlockHandle`] (its file offset and stored length) is known once it and every block
//! before it are compressed, since its offset is the sum of their stored lengths. The writer asks
//! for handles by sequence number and keeps index entries waiting until they are known.
//!
//! Invariants: blocks and sections reach the sink in submission order, each block compressed and
//! sealed by [`write_block`] at the offset the bytes before it put it, so the file's bytes are the
//! same whichever way it is written. A failure of the sink (or of the helper thread) is never lost: it
//! is returned by the next call that collects handles, at the latest by [`BlockOutput::flush`],
//! and after it the output accepts nothing more. Handles are forgotten only when the writer says
//! it no longer needs them ([`BlockOutput::forget_before`]).
//!
//! Thread-safety: a `BlockOutput` is owned by one writer. The pipelined one owns a helper thread
//! that owns the sink until [`BlockOutput::into_sink`] hands it back; dropping the output unfinished
//! closes the queue and joins the thread (it finishes at most the queued blocks), so no write to
//! the sink happens after the drop returns.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::schema::Compression;
use crate::sstable::block::{write_block, BlockHandle};
use crate::sstable::writer::SstableSink;

/// A pipelined output hands blocks to its helper thread in batches of about this many
/// uncompressed bytes (at least one block): waking a thread costs about as much as compressing a
/// small block, so it is done once per batch, not once per block.
pub(crate) const PIPELINE_BATCH_BYTES: usize = 64 << 10;
/// Batches queued for the helper thread at most besides the one it is writing: the writer waits
/// when the helper is this far behind.
pub(crate) const PIPELINE_DEPTH: usize = 4;

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

/// Compresses, seals and appends blocks in order, tracking the file offset.
struct BlockSealer<S> {
    sink: S,
    file_id: u64,
    compression: Compression,
    /// Bytes appended to the sink so far: the next block's offset.
    offset: u64,
    scratch: Vec<u8>,
}

impl<S: SstableSink> BlockSealer<S> {
    /// Writes `content` as the next block; returns its handle.
    fn write(&mut self, content: &[u8]) -> Result<BlockHandle> {
        self.scratch.clear();
        let handle = write_block(content, self.compression, self.file_id, self.offset, &mut self.scratch);
        self.sink.append(&self.scratch).map_err(io)?;
        self.offset += self.scratch.len() as u64;
        Ok(handle)
    }
}

/// What the helper thread writes, in order.
enum Job {
    /// A data block's content, to compress and seal.
    Block(Vec<u8>),
    /// Bytes to append as they are (a section after the blocks).
    Raw(Bytes),
}

/// Jobs for the helper thread, in order.
type Batch = Vec<Job>;

/// A batch the helper thread wrote: the blocks' handles, and the batch for reuse.
type Written = Result<(Vec<BlockHandle>, Batch)>;

/// The writer's side of the helper thread.
struct Pipeline<S> {
    /// Batches to write; `None` once closed (by `into_sink` or a drop).
    queue: Option<SyncSender<Batch>>,
    written: Receiver<Written>,
    thread: Option<JoinHandle<Result<BlockSealer<S>>>>,
    /// The batch being filled, and its uncompressed bytes.
    batch: Batch,
    batch_bytes: usize,
    /// Batches sent whose handles have not come back.
    in_flight: usize,
    /// Batches and content buffers the helper is done with.
    free_batches: Vec<Batch>,
    free_blocks: Vec<Vec<u8>>,
    /// Set once a failure was reported: nothing more is accepted.
    failed: bool,
}

enum Mode<S> {
    Inline(BlockSealer<S>),
    Pipelined(Pipeline<S>),
}

/// The writer's data blocks on their way to the sink (see the module documentation).
pub(crate) struct BlockOutput<S> {
    mode: Mode<S>,
    /// Handles of blocks `base..base + handles.len()`.
    handles: VecDeque<BlockHandle>,
    base: u64,
    /// Where the blocks whose handle is known end: kept apart from `handles`, which the writer
    /// empties as it indexes them (a flush after every handle was forgotten still knows it).
    blocks_end: u64,
}

impl<S: SstableSink> BlockSealer<S> {
    /// Appends `bytes` as they are.
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.sink.append(bytes).map_err(io)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the jobs of `batch`; returns the handles of its blocks.
    fn run(&mut self, batch: &Batch) -> Result<Vec<BlockHandle>> {
        let mut handles = Vec::with_capacity(batch.len());
        for job in batch {
            match job {
                Job::Block(content) => handles.push(self.write(content)?),
                Job::Raw(bytes) => self.append(bytes)?,
            }
        }
        Ok(handles)
    }
}

impl<S: SstableSink> BlockOutput<S> {
    /// Blocks compressed and appended on the caller's thread, during [`BlockOutput::submit`].
    pub(crate) fn inline(sink: S, file_id: u64, compression: Compression) -> BlockOutput<S> {
        let sealer = BlockSealer { sink, file_id, compression, offset: 0, scratch: Vec::new() };
        BlockOutput { mode: Mode::Inline(sealer), handles: VecDeque::new(), base: 0, blocks_end: 0 }
    }

    /// Blocks whose handle is known: every block below this sequence number is written.
    pub(crate) fn written(&self) -> u64 {
        self.base + self.handles.len() as u64
    }

    /// The handle of block `seq`, if it is written and not forgotten.
    pub(crate) fn handle(&self, seq: u64) -> Option<BlockHandle> {
        seq.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()).and_then(|i| self.handles.get(i)).copied()
    }

    /// Drops the handles of the blocks below `seq`.
    pub(crate) fn forget_before(&mut self, seq: u64) {
        while self.base < seq && self.handles.pop_front().is_some() {
            self.base += 1;
        }
    }

    /// Hands over the block in `content` (which is left empty, with capacity, for the next one)
    /// and collects the handles of the blocks written meanwhile. Waits when the helper thread is
    /// [`PIPELINE_DEPTH`] batches behind.
    pub(crate) fn submit(&mut self, content: &mut Vec<u8>) -> Result<()> {
        match &mut self.mode {
            Mode::Inline(sealer) => {
                let handle = sealer.write(content)?;
                content.clear();
                self.blocks_end = handle.end();
                self.handles.push_back(handle);
                Ok(())
            }
            Mode::Pipelined(pipeline) => {
                pipeline.submit(content)?;
                pipeline.collect(&mut self.handles, &mut self.blocks_end, false)
            }
        }
    }

    /// Waits until every submitted block is written and its handle known; returns where the
    /// blocks end (the file offset of what is appended next).
    pub(crate) fn flush(&mut self) -> Result<u64> {
        match &mut self.mode {
            Mode::Inline(sealer) => Ok(sealer.offset),
            Mode::Pipelined(pipeline) => {
                pipeline.send()?;
                pipeline.collect(&mut self.handles, &mut self.blocks_end, true)?;
                Ok(self.blocks_end)
            }
        }
    }

    /// Appends `bytes` as they are after everything submitted (on the helper thread, which
    /// starts on them at once, when pipelined).
    pub(crate) fn append(&mut self, bytes: Bytes) -> Result<()> {
        match &mut self.mode {
            Mode::Inline(sealer) => sealer.append(&bytes),
            Mode::Pipelined(pipeline) => {
                pipeline.push(Job::Raw(bytes))?;
                pipeline.send()
            }
        }
    }

    /// Waits until everything submitted and appended is written; returns the sink and the bytes
    /// written to it.
    pub(crate) fn into_sink(self) -> Result<(S, u64)> {
        let sealer = match self.mode {
            Mode::Inline(sealer) => sealer,
            Mode::Pipelined(mut pipeline) => {
                pipeline.send()?;
                pipeline.queue = None;
                pipeline.join()?
            }
        };
        Ok((sealer.sink, sealer.offset))
    }
}

impl<S: SstableSink + Send + 'static> BlockOutput<S> {
    /// Blocks compressed and appended by a helper thread, which owns `sink` until
    /// [`BlockOutput::into_sink`].
    pub(crate) fn pipelined(sink: S, file_id: u64, compression: Compression) -> Result<BlockOutput<S>> {
        let mut sealer = BlockSealer { sink, file_id, compression, offset: 0, scratch: Vec::new() };
        let (queue, batches) = mpsc::sync_channel::<Batch>(PIPELINE_DEPTH);
        let (done, written) = mpsc::channel::<Written>();
        let thread = std::thread::Builder::new()
            .name("talus-sstable-compress".into())
            .spawn(move || {
                for batch in batches {
                    match sealer.run(&batch) {
                        Ok(handles) => {
                            if done.send(Ok((handles, batch))).is_err() {
                                return Err(Error::Io("the sstable writer stopped".into()));
                            }
                        }
                        Err(e) => {
                            // Reported to the writer now and by the join; nothing more is written.
                            let _ = done.send(Err(e.clone()));
                            return Err(e);
                        }
                    }
                }
                Ok(sealer)
            })
            .map_err(io)?;
        let pipeline = Pipeline {
            queue: Some(queue),
            written,
            thread: Some(thread),
            batch: Vec::new(),
            batch_bytes: 0,
            in_flight: 0,
            free_batches: Vec::new(),
            free_blocks: Vec::new(),
            failed: false,
        };
        Ok(BlockOutput { mode: Mode::Pipelined(pipeline), handles: VecDeque::new(), base: 0, blocks_end: 0 })
    }
}

impl<S> Pipeline<S> {
    /// Adds the block in `content` to the batch, and sends the batch once it is full.
    fn submit(&mut self, content: &mut Vec<u8>) -> Result<()> {
        let spare = self.free_blocks.pop().unwrap_or_else(|| Vec::with_capacity(content.capacity()));
        self.push(Job::Block(std::mem::replace(content, spare)))?;
        if self.batch_bytes >= PIPELINE_BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    /// Adds `job` to the batch.
    fn push(&mut self, job: Job) -> Result<()> {
        if self.failed {
            return Err(Error::Io("the sstable block writer has failed".into()));
        }
        self.batch_bytes += match &job {
            Job::Block(content) => content.len(),
            Job::Raw(bytes) => bytes.len(),
        };
        self.batch.push(job);
        Ok(())
    }

    /// Sends the batch being filled, if it holds a block.
    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(queue) = self.queue.as_ref().filter(|_| !self.failed) else {
            return Err(Error::Io("the sstable block writer has failed".into()));
        };
        let next = self.free_batches.pop().unwrap_or_default();
        if queue.send(std::mem::replace(&mut self.batch, next)).is_err() {
            // The helper stopped: its failure is waiting in `written`, or its thread died.
            self.failed = true;
            return Err(self.failure());
        }
        self.batch_bytes = 0;
        self.in_flight += 1;
        Ok(())
    }

    /// Moves the handles of written blocks into `handles` (and where the last ends into
    /// `blocks_end`); with `wait`, until every batch sent is written.
    fn collect(&mut self, handles: &mut VecDeque<BlockHandle>, blocks_end: &mut u64, wait: bool) -> Result<()> {
        while self.in_flight > 0 {
            let next = if wait { self.written.recv().map_err(|_| TryRecvError::Disconnected) } else { self.written.try_recv() };
            match next {
                Ok(Ok((written, mut batch))) => {
                    self.in_flight -= 1;
                    if let Some(last) = written.last() {
                        *blocks_end = last.end();
                    }
                    handles.extend(written);
                    // Buffers for about two batches are kept, whatever the block size.
                    let keep = 2 * batch.len();
                    for job in batch.drain(..) {
                        if let Job::Block(mut content) = job {
                            content.clear();
                            self.free_blocks.push(content);
                        }
                    }
                    self.free_blocks.truncate(keep);
                    self.free_batches.push(batch);
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.failed = true;
                    return Err(self.failure());
                }
            }
        }
        Ok(())
    }

    /// Why the helper thread stopped early: the error it sent, or its panic.
    fn failure(&mut self) -> Error {
        while let Ok(result) = self.written.try_recv() {
            if let Err(e) = result {
                return e;
            }
        }
        match self.join() {
            Err(e) => e,
            Ok(_) => Error::Io("the sstable block writer thread stopped early".into()),
        }
    }

    /// Waits for the helper thread to end; returns its sealer.
    fn join(&mut self) -> Result<BlockSealer<S>> {
        let Some(thread) = self.thread.take() else { return Err(Error::Io("the sstable block writer thread is gone".into())) };
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(Error::Io("the sstable block writer thread panicked".into())),
        }
    }
}

impl<S> Drop for Pipeline<S> {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // The writer is abandoned: what the helper did or failed to do no longer matters, but
            // it must be done with the sink before the caller goes on (and maybe removes the file).
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test setup on an in-memory sink

    use super::*;

    /// Where the blocks end is known after the writer forgot every handle (it indexes blocks as
    /// they come back): a flush then, in either mode, still says where the sections go. (It
    /// once said 0, and a flush whose last handles came back early wrote its sections' offsets
    /// wrong and failed its size check.)
    #[test]
    fn the_blocks_end_survives_forgetting_every_handle() {
        for pipelined in [false, true] {
            let mut output = if pipelined {
                BlockOutput::pipelined(Vec::new(), 5, Compression::Lz4).unwrap()
            } else {
                BlockOutput::inline(Vec::new(), 5, Compression::Lz4)
            };
            for i in 0..20u8 {
                let mut content = vec![i; 300 + usize::from(i)];
                output.submit(&mut content).unwrap();
            }
            let end = output.flush().unwrap();
            assert!(end > 0);
            output.forget_before(output.written());
            assert_eq!(output.flush().unwrap(), end, "pipelined: {pipelined}");
            let (sink, written) = output.into_sink().unwrap();
            assert_eq!((sink.len() as u64, written), (end, end), "pipelined: {pipelined}");
        }
    }
}
