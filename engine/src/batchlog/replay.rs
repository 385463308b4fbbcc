//! A replay: the per-entry state machine shared by both layouts (A9), the paged scan, the
//! report and the running metrics. The layout-specific parts are in `replay_v1` and `replay_v2`.
//!
//! Thread-safety: a replay runs on the caller's thread holding the manager's replay lock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use talus_format::schema::TombstoneGcMode;
use talus_format::Mutation;

use super::tables::{decode_batch, Stage, SHARDS};
use super::{BatchHandle, BatchlogLayout, BatchlogManager, ReplayBatch};
use crate::error::Result;
use crate::query::{Query, QueryResult};

/// What lives across replays (under the replay lock).
#[derive(Debug, Default)]
pub(super) struct ReplayState {
    /// Replays since the last one with cleanup ([`BatchlogManager::replay_scheduled`]).
    pub(super) replays_since_cleanup: u32,
    /// Whether the v1 → v2 migration has run in this process (A11).
    pub(super) migration_done: bool,
}

/// What one replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The layout replayed.
    pub layout: BatchlogLayout,
    /// Whether cleanup was on (v2: failing batches moved, cleanup tombstones written).
    pub cleanup: bool,
    /// The replay's one `now` (A8 step 3), milliseconds.
    pub now_ms: i64,
    /// The highest `written_at` read: every batch above it was too fresh for certain.
    pub scan_bound_ms: i64,
    /// Every batch that was old enough was delivered (too-fresh batches do not count, A2.6).
    pub all_replayed: bool,
    /// Batches delivered and deleted.
    pub batches_replayed: u64,
    /// Batches that failed and were moved to the failed_replay stage (v2 with cleanup).
    pub batches_moved: u64,
    /// Batches that failed and stayed where they were.
    pub batches_failed: u64,
    /// Batches skipped as too fresh.
    pub batches_too_fresh: u64,
    /// Batches whose data could not be decoded (kept: never dropped).
    pub batches_invalid: u64,
    /// v1 entries migrated to v2 in this replay (A11).
    pub migrated: u64,
    /// Mutations sent to the replayer (`write_attempts`, C5).
    pub write_attempts: u64,
    /// Entries the scan read, live or dead: v2 rows, v1 partitions.
    pub entries_visited: u64,
    /// Live entries the scan returned.
    pub live_entries: u64,
    /// Tombstones the scan read: partition tombstones, range tombstone changes, row tombstones.
    pub tombstones_visited: u64,
    /// SSTable data blocks the scan skipped (outside the bound or under a covering tombstone).
    pub blocks_skipped: u64,
    /// Cleanup range tombstones written.
    pub cleanup_tombstones: u64,
    /// Wall time of the replay.
    pub elapsed: Duration,
}

/// Totals over the replays of a [`BatchlogManager`] since it was opened (C5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchlogMetrics {
    /// Replays run.
    pub replays: u64,
    /// Mutations sent to the replayer.
    pub write_attempts: u64,
    /// Batches delivered and deleted.
    pub batches_replayed: u64,
    /// Batches moved to failed_replay.
    pub batches_moved: u64,
    /// Failed batches left in place.
    pub batches_failed: u64,
    /// Batches skipped as too fresh.
    pub batches_too_fresh: u64,
    /// Batches with undecodable data.
    pub batches_invalid: u64,
    /// v1 entries migrated to v2.
    pub migrated: u64,
    /// Entries read by replay scans.
    pub entries_visited: u64,
    /// Tombstones read by replay scans.
    pub tombstones_visited: u64,
    /// Cleanup range tombstones written.
    pub cleanup_tombstones: u64,
}

impl BatchlogMetrics {
    fn add(&mut self, r: &ReplayReport) {
        self.replays += 1;
        self.write_attempts += r.write_attempts;
        self.batches_replayed += r.batches_replayed;
        self.batches_moved += r.batches_moved;
        self.batches_failed += r.batches_failed;
        self.batches_too_fresh += r.batches_too_fresh;
        self.batches_invalid += r.batches_invalid;
        self.migrated += r.migrated;
        self.entries_visited += r.entries_visited;
        self.tombstones_visited += r.tombstones_visited;
        self.cleanup_tombstones += r.cleanup_tombstones;
    }
}

/// A live entry read by a scan.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its stage (v1 entries are `Initial`).
    pub(super) stage: Stage,
    /// Its batch.
    pub(super) handle: BatchHandle,
    /// The `data` blob.
    pub(super) data: Bytes,
}

/// The state of one replay.
#[derive(Debug)]
pub(super) struct ReplayRun {
    pub(super) report: ReplayReport,
    /// Per v2 shard, the oldest too-fresh batch seen (A8 step 4).
    pub(super) min_too_fresh: Vec<Option<i64>>,
    /// Per v2 shard, whether this replay deleted or moved an entry (A9 step 8).
    pub(super) need_cleanup: Vec<bool>,
    /// The highest `written_at` of the entries of the partition being read that stay live
    /// (too fresh, or failed in place).
    pub(super) stays_live: Option<i64>,
    /// Deletions of the delivered entries of the page being processed: applied as one engine
    /// write before the next page is read ([`BatchlogManager::scan`]). A crash before it only
    /// makes those batches be delivered again, which a replayer must tolerate anyway (A9).
    pub(super) pending_deletions: Vec<Mutation>,
}

impl ReplayRun {
    pub(super) fn new(layout: BatchlogLayout, cleanup: bool, now_ms: i64) -> ReplayRun {
        ReplayRun {
            report: ReplayReport {
                layout,
                cleanup,
                now_ms,
                scan_bound_ms: now_ms,
                all_replayed: true,
                batches_replayed: 0,
                batches_moved: 0,
                batches_failed: 0,
                batches_too_fresh: 0,
                batches_invalid: 0,
                migrated: 0,
                write_attempts: 0,
                entries_visited: 0,
                live_entries: 0,
                tombstones_visited: 0,
                blocks_skipped: 0,
                cleanup_tombstones: 0,
                elapsed: Duration::ZERO,
            },
            min_too_fresh: vec![None; SHARDS],
            need_cleanup: vec![false; SHARDS],
            stays_live: None,
            pending_deletions: Vec::new(),
        }
    }

    /// Adds what `other`, a run of the same replay over other shards, did.
    pub(super) fn merge(&mut self, other: ReplayRun) {
        let (r, o) = (&mut self.report, other.report);
        r.all_replayed &= o.all_replayed;
        r.batches_replayed += o.batches_replayed;
        r.batches_moved += o.batches_moved;
        r.batches_failed += o.batches_failed;
        r.batches_too_fresh += o.batches_too_fresh;
        r.batches_invalid += o.batches_invalid;
        r.migrated += o.migrated;
        r.write_attempts += o.write_attempts;
        r.entries_visited += o.entries_visited;
        r.live_entries += o.live_entries;
        r.tombstones_visited += o.tombstones_visited;
        r.blocks_skipped += o.blocks_skipped;
        r.cleanup_tombstones += o.cleanup_tombstones;
        for (mine, theirs) in self.min_too_fresh.iter_mut().zip(other.min_too_fresh) {
            *mine = match (*mine, theirs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        for (mine, theirs) in self.need_cleanup.iter_mut().zip(other.need_cleanup) {
            *mine |= theirs;
        }
    }
}

impl BatchlogManager {
    /// Replays the batchlog of the configured layout now, with or without cleanup (A7
    /// `do_batch_log_replay`): every batch older than its timeout is delivered through the
    /// replayer and deleted; see the module documentation for the v2 cleanup.
    pub fn replay(&self, cleanup: bool) -> Result<ReplayReport> {
        let mut state = self.replay_state.lock();
        let started = Instant::now();
        let now_ms = self.clock.now_millis();
        let mut run = ReplayRun::new(self.options.layout, cleanup, now_ms);
        match self.options.layout {
            BatchlogLayout::V1 => self.replay_v1(&mut run)?,
            BatchlogLayout::V2 => {
                if !state.migration_done {
                    run.report.migrated = self.migrate_v1_to_v2()?;
                    state.migration_done = true;
                }
                self.replay_v2(&mut run)?;
            }
        }
        if cleanup {
            state.replays_since_cleanup = 0;
        }
        run.report.elapsed = started.elapsed();
        self.metrics.lock().add(&run.report);
        Ok(run.report)
    }

    /// The replay a periodic loop runs (A7 loop step 2): with cleanup on every
    /// [`super::BatchlogOptions::cleanup_after_replays`]-th call.
    pub fn replay_scheduled(&self) -> Result<ReplayReport> {
        let cleanup = {
            let mut state = self.replay_state.lock();
            state.replays_since_cleanup += 1;
            state.replays_since_cleanup >= self.options.cleanup_after_replays
        };
        self.replay(cleanup)
    }

    /// The smallest timeout any batch can have: the replay timeout, lowered by the propagation
    /// delay of every `tombstone_gc = repair` table (A9 step 2).
    pub(super) fn min_batch_timeout_ms(&self) -> i64 {
        let mut timeout = self.options.replay_timeout_ms();
        for name in self.engine.table_names() {
            if let Ok(schema) = self.engine.schema(&name) {
                timeout = timeout.min(repair_delay_ms(&schema.options.tombstone_gc).unwrap_or(timeout));
            }
        }
        timeout
    }

    /// Runs `query` page by page, adding its statistics to `run`; `decode` turns a page into
    /// live entries and `handle` processes each before the next page is read.
    pub(super) fn scan(
        &self,
        mut query: Query,
        run: &mut ReplayRun,
        decode: impl Fn(&Self, &QueryResult, &mut Vec<Entry>) -> Result<()>,
        mut handle: impl FnMut(&mut ReplayRun, Entry) -> Result<()>,
    ) -> Result<()> {
        query.page_size = Some(self.options.page_size);
        query.now = self.gc_now();
        let mut entries = Vec::new();
        loop {
            let result = self.engine.query(&query)?;
            let c = &result.stats.compaction;
            run.report.entries_visited += match run.report.layout {
                BatchlogLayout::V1 => c.partitions,
                BatchlogLayout::V2 => c.rows,
            };
            run.report.tombstones_visited += c.partition_tombstones + c.range_tombstone_changes + c.row_tombstones;
            run.report.blocks_skipped += result.stats.blocks_skipped;
            decode(self, &result, &mut entries)?;
            for entry in entries.drain(..) {
                handle(run, entry)?;
            }
            if !run.pending_deletions.is_empty() {
                self.engine.apply_batch(&run.pending_deletions)?;
                run.pending_deletions.clear();
            }
            match result.paging_state {
                Some(state) => query.paging_state = Some(state),
                None => return Ok(()),
            }
        }
    }

    /// The per-entry state machine (A9): skip if too fresh, deliver, then delete (at the end of
    /// the page); on failure keep the entry or (v2 initial stage with cleanup) move it to
    /// failed_replay.
    pub(super) fn process_entry(&self, run: &mut ReplayRun, entry: Entry) -> Result<()> {
        let handle = entry.handle;
        run.report.live_entries += 1;
        let shard = usize::from(super::tables::shard_of(handle.written_at_ms));
        let decoded = decode_batch(&entry.data).map(|mutations| self.deliverable(mutations));
        let timeout = match &decoded {
            Ok((_, timeout)) => *timeout,
            Err(_) => self.options.replay_timeout_ms(),
        };
        // A9 step 3: too fresh when now < written_at + timeout.
        if run.report.now_ms < handle.written_at_ms.saturating_add(timeout) {
            let oldest = run.min_too_fresh[shard].get_or_insert(handle.written_at_ms);
            *oldest = (*oldest).min(handle.written_at_ms);
            run.report.batches_too_fresh += 1;
            run.stays_live = run.stays_live.max(Some(handle.written_at_ms));
            return Ok(());
        }
        let delivered = match decoded {
            Ok((mutations, _)) => {
                if let Some(limiter) = &self.limiter {
                    limiter.charge(entry.data.len() as u64);
                }
                run.report.write_attempts += mutations.len() as u64;
                let batch = ReplayBatch { id: handle.id, written_at_ms: handle.written_at_ms, mutations: &mutations };
                if mutations.is_empty() {
                    Ok(())
                } else {
                    self.replayer.replay(&batch)
                }
            }
            Err(e) => {
                run.report.batches_invalid += 1;
                Err(e)
            }
        };
        if delivered.is_ok() {
            run.pending_deletions.push(self.delete_mutation(&handle, entry.stage)?);
            run.report.batches_replayed += 1;
            run.need_cleanup[shard] = true;
            return Ok(());
        }
        run.report.all_replayed = false;
        let movable = handle.layout == BatchlogLayout::V2 && run.report.cleanup && entry.stage == Stage::Initial;
        if !movable {
            run.report.batches_failed += 1;
            run.stays_live = run.stays_live.max(Some(handle.written_at_ms));
            return Ok(());
        }
        // A9 steps 6–7 in one crash-atomic write: the copy in failed_replay and the deletion of
        // the initial entry (C1.3), so a cleanup tombstone can never hide the only copy.
        let moved = [self.entry_mutation(&handle, Stage::FailedReplay, entry.data)?, self.delete_mutation(&handle, Stage::Initial)?];
        self.engine.apply_batch(&moved)?;
        self.note_maybe_live(Stage::FailedReplay, handle.written_at_ms);
        run.report.batches_moved += 1;
        run.need_cleanup[shard] = true;
        Ok(())
    }

    /// The mutations of a batch whose tables still exist (A9 step 2: a dropped table's mutation
    /// is left out, not the batch) and the batch's timeout: the replay timeout lowered by the
    /// propagation delay of its `tombstone_gc = repair` tables.
    fn deliverable(&self, mutations: Vec<Mutation>) -> (Vec<Mutation>, i64) {
        let mut timeout = self.options.replay_timeout_ms();
        let mut kept = Vec::with_capacity(mutations.len());
        for m in mutations {
            if let Ok(schema) = self.engine.schema_by_id(m.table) {
                if let Some(delay) = repair_delay_ms(&schema.options.tombstone_gc) {
                    timeout = timeout.min(delay);
                }
                kept.push(m);
            }
        }
        (kept, timeout)
    }
}

/// The propagation delay of a `tombstone_gc = repair` table, in milliseconds.
fn repair_delay_ms(mode: &TombstoneGcMode) -> Option<i64> {
    match mode {
        TombstoneGcMode::Repair { propagation_delay_seconds } => Some(propagation_delay_seconds.saturating_mul(1000)),
        _ => None,
    }
}
