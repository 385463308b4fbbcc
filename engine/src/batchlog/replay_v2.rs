//! The v2 layout's replay (A8): for each of the 256 shards, the failed_replay partition then the
//! initial one (5a–5b, I5), each read only up to the `written_at` bound; then, with cleanup, one
//! range tombstone per initial-stage shard partition (5e–5h), all in one crash-atomic engine write.
//! Single-partition reads let the read path skip sstable blocks wholly under a newer cleanup
//! tombstone from any source. As in A8 step 5, the shards are read in 16 chunks of 16, several
//! chunks at once ([`super::BatchlogOptions::replay_parallelism`]), each shard by shard.
//!
//! Thread-safety: runs under the manager's replay lock; takes the write gate exclusively once,
//! to raise the floor before the scan. The chunks' workers (the caller's thread and scoped
//! helpers) share the manager; each keeps its own [`ReplayRun`], merged into the caller's at
//! the end, and touches only its chunks' shard marks.

use std::sync::atomic::{AtomicUsize, Ordering};

use talus_format::{RangeBound, Value};

use super::replay::{Entry, ReplayRun};
use super::tables::{v2_partition, Stage, SHARDS};
use super::{live_mark, BatchHandle, BatchlogLayout, BatchlogManager, CLEAN};
use crate::error::{Error, Result};
use crate::query::{Query, QueryResult};

/// Shards per chunk of a replay (A8 step 5: 16 chunks of 16 shards).
const SHARDS_PER_CHUNK: usize = 16;

/// Partitions to read per replay worker before a second worker is started. A judgment, not a
/// measurement: a scoped thread costs tens of microseconds to start, about what reading a few
/// cold partitions and delivering their batches costs, so a replay of a handful stays on one
/// thread.
const MIN_PARTITIONS_PER_WORKER: usize = 4;

impl BatchlogManager {
    /// Replays `system.batchlog_v2` (see the module documentation of `batchlog`).
    pub(super) fn replay_v2(&self, run: &mut ReplayRun) -> Result<()> {
        // Every batch above the bound is too fresh whatever its tables: its timeout is at least
        // the smallest one. So the scan reads only rows at or below it (an improvement on A8
        // step 6, which reads whole partitions and skips too-fresh rows one by one).
        let bound = run.report.now_ms.saturating_sub(self.min_batch_timeout_ms());
        run.report.scan_bound_ms = bound;
        {
            // From here on no batch is stamped at or below the bound, and the writes in flight
            // are done, so the scan sees every entry a cleanup tombstone may cover (I4, T6) and
            // every entry the `maybe_live` marks may forget below.
            let _gate = self.write_gate.write();
            self.floor_ms.fetch_max(bound, Ordering::SeqCst);
        }
        // A8 step 5: chunks of shards, each read shard by shard, up to `replay_parallelism`
        // chunks at once. Only partitions that may hold live entries are read.
        let mut chunks = Vec::new();
        let mut to_read = 0;
        for chunk in 0..SHARDS / SHARDS_PER_CHUNK {
            let partitions = self.partitions_to_read(chunk);
            if partitions > 0 {
                chunks.push(chunk);
                to_read += partitions;
            }
        }
        let workers = if to_read < MIN_PARTITIONS_PER_WORKER * 2 { 1 } else { self.options.replay_parallelism.min(chunks.len()) };
        let next = AtomicUsize::new(0);
        let work = |run: &mut ReplayRun| -> Result<()> {
            while let Some(&chunk) = chunks.get(next.fetch_add(1, Ordering::SeqCst)) {
                for shard in chunk * SHARDS_PER_CHUNK..(chunk + 1) * SHARDS_PER_CHUNK {
                    if let Err(e) = self.replay_v2_shard(run, shard, bound) {
                        // The other workers take no further chunk.
                        next.store(chunks.len(), Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
            Ok(())
        };
        if workers <= 1 {
            work(run)?;
        } else {
            let (layout, cleanup, now_ms) = (run.report.layout, run.report.cleanup, run.report.now_ms);
            std::thread::scope(|scope| {
                // A helper that cannot be started leaves its chunks to the others.
                let helpers: Vec<_> = (1..workers)
                    .filter_map(|_| {
                        std::thread::Builder::new()
                            .name("batchlog-replay".into())
                            .spawn_scoped(scope, || {
                                let mut mine = ReplayRun::new(layout, cleanup, now_ms);
                                work(&mut mine).map(|()| mine)
                            })
                            .ok()
                    })
                    .collect();
                let mut result = work(run);
                for helper in helpers {
                    match helper.join() {
                        Ok(Ok(theirs)) => run.merge(theirs),
                        Ok(Err(e)) => result = result.and(Err(e)),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                result
            })?;
        }
        if run.report.cleanup {
            self.write_cleanup_tombstones(run, bound)?;
        }
        Ok(())
    }

    /// How many partitions of the shards of `chunk` a replay reads: those that may hold live
    /// entries, and those whose history before this process is unknown.
    fn partitions_to_read(&self, chunk: usize) -> usize {
        let shards = chunk * SHARDS_PER_CHUNK..(chunk + 1) * SHARDS_PER_CHUNK;
        let indexes = shards.flat_map(|shard| [Stage::FailedReplay, Stage::Initial].map(|stage| (stage, shard)));
        indexes
            .filter(|&(stage, shard)| {
                // SHARDS is 256: the index fits a shard number.
                let index = live_mark(stage, shard as u8);
                !self.history_read[index].load(Ordering::SeqCst) || self.maybe_live[index].load(Ordering::SeqCst) != CLEAN
            })
            .count()
    }

    /// Reads the failed_replay partition of `shard`, then its initial one (5a–5b, I5), up to
    /// `bound` once their history is known, processing every live entry.
    fn replay_v2_shard(&self, run: &mut ReplayRun, shard: usize, bound: i64) -> Result<()> {
        // SHARDS is 256: the index fits a shard number.
        let shard = shard as u8;
        let up_to_bound = [(RangeBound::Unbounded, RangeBound::Inclusive(vec![Value::Timestamp(bound)]))];
        for stage in [Stage::FailedReplay, Stage::Initial] {
            let index = live_mark(stage, shard);
            let mark = &self.maybe_live[index];
            let history_read = self.history_read[index].load(Ordering::SeqCst);
            if history_read && mark.load(Ordering::SeqCst) == CLEAN {
                continue;
            }
            run.stays_live = None;
            // A partition whose earlier history is unknown is read whole: entries of a
            // previous process above the bound are then seen (as too fresh) and kept in mind.
            let mut query = Query::partition(&self.v2, &v2_partition(stage, shard))?;
            if history_read {
                query = query.with_clustering_ranges(&self.v2, &up_to_bound)?;
            }
            self.scan(query, run, |me, page, out| me.v2_entries(page, stage, out), |run, entry| self.process_entry(run, entry))?;
            let stays = run.stays_live.unwrap_or(CLEAN);
            if !history_read {
                // Only remember more: writes of this process since open are in the mark.
                mark.fetch_max(stays, Ordering::SeqCst);
                self.history_read[index].store(true, Ordering::SeqCst);
                continue;
            }
            // Every entry at or below the bound was read: what may be live now is what stayed,
            // unless a newer entry was written meanwhile (above the bound, by the floor).
            let _ = mark.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| (w <= bound).then_some(stays));
        }
        Ok(())
    }

    /// One range tombstone `[before all rows, end]` per initial shard partition that holds
    /// entries written since its last cleanup, dead ones included (the improvement on gap I7),
    /// or where this replay deleted or moved an entry (A8 step 5d). `end` excludes the oldest
    /// too-fresh batch of the shard when there is one (I2), else includes the bound.
    fn write_cleanup_tombstones(&self, run: &mut ReplayRun, bound: i64) -> Result<()> {
        let ts = self.next_timestamp();
        let mut tombstones = Vec::new();
        let mut covered = Vec::new();
        for shard in 0..SHARDS {
            if !run.need_cleanup[shard] && self.dirty[shard].load(Ordering::SeqCst) == CLEAN {
                continue;
            }
            let (end, covered_up_to) = match run.min_too_fresh[shard] {
                Some(oldest) => (RangeBound::Exclusive(vec![Value::Timestamp(oldest)]), oldest.saturating_sub(1)),
                None => (RangeBound::Inclusive(vec![Value::Timestamp(bound)]), bound),
            };
            // SHARDS is 256: the index fits a shard number.
            tombstones.push(self.cleanup_mutation(shard as u8, end, ts)?);
            covered.push((shard, covered_up_to));
        }
        if tombstones.is_empty() {
            return Ok(());
        }
        self.engine.apply_batch(&tombstones)?;
        for (shard, covered_up_to) in covered {
            // Clean unless an entry above the tombstone's end was written meanwhile.
            let _ = self.dirty[shard].fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| (w <= covered_up_to).then_some(CLEAN));
        }
        run.report.cleanup_tombstones = tombstones.len() as u64;
        Ok(())
    }

    /// The live entries of a page of one shard partition in `stage`.
    fn v2_entries(&self, page: &QueryResult, stage: Stage, out: &mut Vec<Entry>) -> Result<()> {
        let data_id = self.v2.regular_column("data")?.id;
        for (_, row) in page.rows() {
            let (written_at_ms, id) = match self.v2.decode_clustering(&row.clustering)?.as_slice() {
                [Value::Timestamp(w), Value::Uuid(id)] => (*w, *id),
                other => return Err(Error::InvalidBatch(format!("system.batchlog_v2 clustering key {other:?}"))),
            };
            let Some((_, data)) = row.cells.iter().find(|(c, _)| *c == data_id) else { continue };
            let handle = BatchHandle { layout: BatchlogLayout::V2, id, written_at_ms };
            out.push(Entry { stage, handle, data: data.clone() });
        }
        Ok(())
    }
}
