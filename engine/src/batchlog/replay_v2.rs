//! The v2 layout's replay (A8): for each of the 256 shards, the failed_replay partition then the
//! initial one (5a–5b, I5), each read only up to the `written_at` bound; then, with cleanup, one
//! range tombstone per initial-stage shard partition (5e–5h), all in one crash-atomic engine write.
//! Single-partition reads let the read path skip sstable blocks wholly under a newer cleanup
//! tombstone from any source.
//!
//! Thread-safety: runs under the manager's replay lock; takes the write gate exclusively once,
//! to raise the floor before the scan.

use std::sync::atomic::Ordering;

use talus_format::{RangeBound, Value};

use super::replay::{Entry, ReplayRun};
use super::tables::{v2_partition, Stage, SHARDS};
use super::{live_mark, BatchHandle, BatchlogLayout, BatchlogManager, CLEAN};
use crate::error::{Error, Result};
use crate::query::{Query, QueryResult};

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
        let up_to_bound = [(RangeBound::Unbounded, RangeBound::Inclusive(vec![Value::Timestamp(bound)]))];
        for shard in 0..SHARDS {
            // SHARDS is 256: the index fits a shard number.
            let shard = shard as u8;
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
        }
        if run.report.cleanup {
            self.write_cleanup_tombstones(run, bound)?;
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
