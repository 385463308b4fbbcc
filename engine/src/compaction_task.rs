//! Running one compaction of a table (DESIGN §6, R2.1–R2.6, R2.20, R2.22, R2.29, P5).
//!
//! [`run`] executes a [`CompactionJob`]:
//!
//! 1. claim the inputs (each must be a readable `Normal` sstable of the table that no other
//!    compaction holds; staging and quarantined sstables are never inputs, R2.29);
//! 2. set aside the fully expired inputs, which are dropped without being read (R2.2, R2.20; the
//!    overlap check includes the memtables);
//! 3. merge the rest (R2.3) through the compactor (R2.4) under the table's [`GcPolicy`]: gc_before
//!    per tombstone_gc mode clamped by the commitlog barrier (R2.14a, R2.15), and the overlap check
//!    of [`TableOverlap`] (R2.17, R2.22);
//! 4. write the outputs, cut at partition boundaries once a file holds `max_output_bytes` of
//!    data, each carrying the inputs' merged commitlog interval (R2.6, R3.13), the job's level,
//!    and a run id;
//! 5. commit: one manifest record adds every output and removes every input (R2.5, P5);
//! 6. publish: the inputs join the table's compacted-but-undeleted list (R2.22), then the sstable
//!    list swaps inputs for outputs in one step, so a reader sees one set or the other;
//! 7. delete the input files (only now: the edit that stops naming them is durable) and drop
//!    their cached blocks; then they leave the compacted-but-undeleted list.
//!
//! A crash before step 5 leaves the inputs named by the manifest and the outputs unnamed (removed
//! by the next open); after it, the outputs named and the inputs unnamed. Either way no data is
//! lost and none comes back. An error before step 5 removes the partial outputs; a corrupt input
//! is quarantined and fails the job.
//!
//! Thread-safety: jobs of one table may run concurrently on disjoint inputs; the claim set
//! serializes them per sstable.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use talus_compaction::strategy::expired::fully_expired;
use talus_compaction::strategy::{CompactionJob, JobKind, SstableInfo};
use talus_compaction::{CompactedStream, CompactionPurpose, CompactionStats, GcPolicy, MergedStream};
use talus_format::manifest::{ManifestEdit, SstableState};
use talus_format::sstable::partition_index::PartitionIndex;
use talus_format::sstable::read_ahead::ReadAhead;
use talus_format::sstable::reader::{ReadCounters, ReadPlan};
use talus_format::sstable::statistics::{CommitlogInterval, SstableOrigin};
use talus_format::sstable::writer::SstableSeal;
use talus_format::sstable::BlockCache;
use talus_format::{Fragment, FragmentStream, GcTime, Timestamp, TombstoneGcMode};

use crate::engine::{Engine, Table};
use crate::error::{Error, Result};
use crate::flush::SstableFile;
use crate::overlap::TableOverlap;
use crate::read_path::{guarded, settle_failure, Failure};
use crate::sstable_set::{sstable_file_name, Sstable};

/// How a compaction treats tombstone GC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionOptions {
    /// The gc clock of the compaction (also its expiry clock); `None`: the wall clock.
    pub now: Option<GcTime>,
    /// R2.16 "consider only existing data": no commitlog barrier and no overlap check with
    /// memtables and other sstables. Safe only right after flushing every table and rotating the
    /// commitlog ([`Engine::compact_only_existing_data`] does both).
    pub only_existing_data: bool,
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionReport {
    /// Why it ran.
    pub kind: JobKind,
    /// Input generations (including the fully expired ones).
    pub inputs: Vec<u64>,
    /// Inputs dropped whole without being read (R2.20).
    pub expired: Vec<u64>,
    /// Output generations.
    pub outputs: Vec<u64>,
    /// Level of the outputs.
    pub output_level: u32,
    /// File bytes of the inputs.
    pub bytes_in: u64,
    /// Uncompressed data bytes of the inputs.
    pub data_in: u64,
    /// File bytes of the outputs.
    pub bytes_out: u64,
    /// Uncompressed data bytes of the outputs.
    pub data_out: u64,
    /// Clustering rows written.
    pub rows_out: u64,
    /// What the compactor saw and did (partitions, tombstones purged, …).
    pub stats: CompactionStats,
    /// Wall time.
    pub elapsed: Duration,
}

impl CompactionReport {
    /// Rows read but not written: covered by a tombstone, expired, or empty after a purge.
    pub fn rows_dropped(&self) -> u64 {
        self.stats.rows.saturating_sub(self.rows_out)
    }
}

/// Live progress of a running job, and the switch that abandons it.
#[derive(Debug, Default)]
pub(crate) struct JobProgress {
    /// Uncompressed data bytes written so far.
    pub(crate) data_written: AtomicU64,
    /// Partitions read so far.
    pub(crate) partitions: AtomicU64,
    /// Set to abandon the job at the next partition boundary.
    pub(crate) abandon: AtomicBool,
}

/// Holds a job's inputs in the table's claim set until dropped.
struct Claim<'a> {
    table: &'a Table,
    generations: Vec<u64>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut compacting = self.table.compacting.lock();
        for g in &self.generations {
            compacting.remove(g);
        }
    }
}

/// What a picker knows of `sstable` (R2.20, R2.24–R2.28).
pub(crate) fn sstable_info(sstable: &Sstable) -> SstableInfo {
    let s = sstable.reader.statistics();
    let c = &s.counts;
    SstableInfo {
        generation: sstable.generation,
        data_size: s.data_size,
        file_size: sstable.reader.file_len(),
        level: s.level,
        key_range: s.first_key.clone().zip(s.last_key.clone()),
        min_timestamp: s.min_timestamp,
        max_timestamp: s.max_timestamp,
        max_deletion_time: s.max_deletion_time,
        drop_times: s.drop_times.clone(),
        // The droppable-tombstone ratio's denominator (R2.28): the items a tombstone or expiry
        // point can stand for.
        item_count: c.partitions + c.rows + c.range_tombstones + c.cell_tombstones + c.expiring_cells,
        created_at: s.created_at,
    }
}

/// The smallest timestamp of anything in the table's memtables (R2.20, memtables included).
pub(crate) fn memtables_min_timestamp(table: &Table) -> Timestamp {
    let mut min = table.memtable.load().stats().min_timestamp;
    for sealed in table.sealed.lock().iter() {
        min = min.min(sealed.memtable.stats().min_timestamp);
    }
    min
}

/// The gc policy of a compaction of `table` (R2.14a, R2.15, R2.16); `overlap` is added by [`run`].
pub(crate) fn gc_policy(engine: &Engine, table: &Table, options: CompactionOptions) -> GcPolicy {
    let o = &table.schema.options;
    GcPolicy {
        mode: o.tombstone_gc,
        gc_grace_seconds: o.gc_grace_seconds,
        now: options.now.unwrap_or_else(GcTime::now),
        repair_history: Some(table.repair.clone()),
        commitlog_min_gc_time: if options.only_existing_data { GcTime::MAX } else { engine.inner.commitlog.min_gc_time(table.schema.id) },
        overlap: None,
    }
}

/// Runs `job` on `table` (see the module documentation).
pub(crate) fn run(
    engine: &Engine,
    table: &Arc<Table>,
    job: &CompactionJob,
    options: CompactionOptions,
    progress: &JobProgress,
) -> Result<CompactionReport> {
    let started = Instant::now();
    let (_claim, inputs) = claim(table, &job.inputs)?;
    let mut policy = gc_policy(engine, table, options);

    // R2.2 / R2.20: fully expired inputs are dropped unread. The others of the overlap check are
    // every sstable outside the job (and compacted-but-undeleted ones, R2.22) and the memtables.
    let input_set: BTreeSet<u64> = job.inputs.iter().copied().collect();
    let expired = if options.only_existing_data || policy.mode == TombstoneGcMode::Disabled {
        Vec::new()
    } else {
        let candidates: Vec<SstableInfo> = inputs.iter().map(|s| sstable_info(s)).collect();
        let others: Vec<SstableInfo> = table
            .sstables
            .load()
            .iter()
            .filter(|s| !input_set.contains(&s.generation))
            .chain(table.compacted_undeleted.lock().iter())
            .map(|s| sstable_info(s))
            .collect();
        fully_expired(&candidates, &others, memtables_min_timestamp(table), policy.gc_before_range_wide())
    };
    let readers: Vec<&Arc<Sstable>> = inputs.iter().filter(|s| !expired.contains(&s.generation)).collect();
    if !options.only_existing_data {
        let max_ts = readers.iter().map(|s| s.reader.statistics().max_timestamp).max().unwrap_or(Timestamp::MISSING);
        policy.overlap = Some(Arc::new(TableOverlap::new(table.clone(), input_set, max_ts)));
    }

    let interval = merged_interval(&inputs);
    let counters = Arc::new(ReadCounters::default());
    let failure: Failure = Arc::new(Mutex::new(None));
    let plan = Arc::new(ReadPlan { fill_cache: false, ..ReadPlan::full() });
    // Input blocks are decompressed ahead by a helper thread (outputs are compressed by another,
    // see `SstableFile::create`); without the thread (or the option) the merge reads them itself.
    let ahead = if engine.inner.options.pipelined_compression { ReadAhead::start().ok() } else { None };
    let streams: Vec<FragmentStream<'_>> = readers
        .iter()
        .map(|s| {
            // The merge drops each fragment once written: fragments may share their blocks.
            let mut stream = s.reader.stream(0..s.reader.partitions().len(), plan.clone(), counters.clone()).sharing_blocks();
            if let Some(ahead) = &ahead {
                stream = stream.read_ahead(ahead);
            }
            guarded((*s).clone(), Box::new(stream), &failure)
        })
        .collect();
    let mut compacted = CompactedStream::new(Box::new(MergedStream::new(streams)), policy, CompactionPurpose::Persist);
    // At most the inputs' partitions come out (fewer when they overlap or expire).
    let partitions = readers.iter().map(|s| s.reader.partitions().len()).sum();
    let written = write_outputs(engine, table, job, interval, partitions, &mut compacted, progress);
    let stats = *compacted.stats();
    drop(compacted);
    drop(ahead);
    if let Some(error) = settle_failure(engine, table, &failure) {
        return Err(error);
    }
    let written = written?;

    let report = CompactionReport {
        kind: job.kind,
        inputs: job.inputs.clone(),
        expired,
        outputs: written.iter().map(|o| o.generation).collect(),
        output_level: job.output_level,
        bytes_in: inputs.iter().map(|s| s.reader.file_len()).sum(),
        data_in: inputs.iter().map(|s| s.reader.statistics().data_size).sum(),
        bytes_out: written.iter().map(|o| o.reader.file_len()).sum(),
        data_out: written.iter().map(|o| o.reader.statistics().data_size).sum(),
        rows_out: written.iter().map(|o| o.reader.statistics().counts.rows).sum(),
        stats,
        elapsed: Duration::ZERO,
    };
    replace(engine, table, &inputs, written, interval)?;
    Ok(CompactionReport { elapsed: started.elapsed(), ..report })
}

/// Claims `generations` of `table` for one job; returns the claim and the sstables.
fn claim<'a>(table: &'a Table, generations: &[u64]) -> Result<(Claim<'a>, Vec<Arc<Sstable>>)> {
    let refused = |reason: String| Error::CompactionRefused { table: table.schema.full_name(), reason };
    if generations.is_empty() {
        return Err(refused("no inputs".into()));
    }
    let mut compacting = table.compacting.lock();
    let current = table.sstables.load();
    let mut inputs = Vec::with_capacity(generations.len());
    for &g in generations {
        let Some(sstable) = current.iter().find(|s| s.generation == g) else {
            return Err(refused(format!("sstable {g} is not a readable sstable of the table")));
        };
        if sstable.state != SstableState::Normal {
            return Err(refused(format!("sstable {g} is in state {:?} (R2.29)", sstable.state)));
        }
        if compacting.contains(&g) {
            return Err(refused(format!("sstable {g} is already being compacted")));
        }
        if inputs.iter().any(|s: &Arc<Sstable>| s.generation == g) {
            return Err(refused(format!("sstable {g} is named twice")));
        }
        inputs.push(sstable.clone());
    }
    compacting.extend(generations.iter().copied());
    Ok((Claim { table, generations: generations.to_vec() }, inputs))
}

/// The smallest interval holding every input's (R2.6, R3.13): replay keeps skipping what the
/// inputs covered.
fn merged_interval(inputs: &[Arc<Sstable>]) -> Option<CommitlogInterval> {
    inputs
        .iter()
        .filter_map(|s| s.reader.statistics().commitlog_interval)
        .reduce(|a, b| CommitlogInterval { start: a.start.min(b.start), end: a.end.max(b.end) })
}

/// Writes the compacted stream (at most `partitions` partitions) into output files cut at the
/// job's size; returns them opened.
fn write_outputs(
    engine: &Engine,
    table: &Table,
    job: &CompactionJob,
    interval: Option<CommitlogInterval>,
    partitions: usize,
    fragments: &mut dyn Iterator<Item = talus_format::Result<Fragment>>,
    progress: &JobProgress,
) -> Result<Vec<Sstable>> {
    let inner = &engine.inner;
    let fs = &*inner.fs;
    let mut finished: Vec<(u64, PartitionIndex)> = Vec::new();
    // Outputs opened so far (the finished ones not yet opened stay in `finished`).
    let mut generations: Vec<u64> = Vec::new();
    let result = (|| {
        let mut current: Option<SstableFile<'_>> = None;
        let mut run_id = None;
        let mut charged = 0u64;
        let mut partitions_left = partitions;
        for fragment in fragments {
            let fragment = fragment?;
            let end = matches!(fragment, Fragment::PartitionEnd);
            let out = match &mut current {
                Some(out) => out,
                None => {
                    let generation = inner.next_generation.fetch_add(1, Ordering::Relaxed);
                    run_id.get_or_insert(generation);
                    let pipelined = inner.options.pipelined_compression;
                    let out = current.insert(SstableFile::create(
                        fs,
                        &inner.sst_dir,
                        generation,
                        &table.schema,
                        SstableOrigin::Compaction,
                        pipelined,
                    )?);
                    out.reserve_partitions(partitions_left);
                    out
                }
            };
            out.add(&fragment)?;
            if !end {
                continue;
            }
            progress.partitions.fetch_add(1, Ordering::Relaxed);
            partitions_left = partitions_left.saturating_sub(1);
            let size = out.data_size();
            let delta = size.saturating_sub(charged);
            charged = size;
            progress.data_written.fetch_add(delta, Ordering::Relaxed);
            inner.compaction.throttle(delta);
            if progress.abandon.load(Ordering::Relaxed) {
                return Err(Error::CompactionAbandoned(table.schema.full_name()));
            }
            if job.max_output_bytes.is_some_and(|max| size >= max) {
                if let Some(out) = current.take() {
                    finished.push(seal(out, job, interval, run_id)?);
                    charged = 0;
                }
            }
        }
        if let Some(out) = current.take() {
            finished.push(seal(out, job, interval, run_id)?);
        }
        let cache: Arc<dyn BlockCache> = inner.block_cache.clone();
        let mut opened = Vec::with_capacity(finished.len());
        for (g, index) in finished.drain(..) {
            generations.push(g);
            opened.push(Sstable::open(fs, &inner.sst_dir, g, table.schema.id, SstableState::Normal, Some(cache.clone()), Some(index))?);
        }
        Ok(opened)
    })();
    if result.is_err() {
        for g in generations.iter().chain(finished.iter().map(|(g, _)| g)) {
            let _ = fs.remove_file(&inner.sst_dir.join(sstable_file_name(*g)));
        }
    }
    result
}

/// Finishes `out`; returns its generation and partition index.
fn seal(
    out: SstableFile<'_>,
    job: &CompactionJob,
    interval: Option<CommitlogInterval>,
    run_id: Option<u64>,
) -> Result<(u64, PartitionIndex)> {
    let generation = out.generation();
    let seal =
        SstableSeal { commitlog_interval: interval, level: job.output_level, run_id: run_id.unwrap_or(0), created_at: GcTime::now() };
    Ok((generation, out.finish(seal)?.index))
}

/// Commits and publishes the replacement of `inputs` by `outputs`, then deletes the inputs.
fn replace(
    engine: &Engine,
    table: &Arc<Table>,
    inputs: &[Arc<Sstable>],
    outputs: Vec<Sstable>,
    interval: Option<CommitlogInterval>,
) -> Result<()> {
    let inner = &engine.inner;
    let outputs: Vec<Arc<Sstable>> = outputs.into_iter().map(Arc::new).collect();
    {
        let mut manifest = inner.manifest.lock();
        let edits = outputs
            .iter()
            .map(|o| ManifestEdit::AddSstable { table: table.schema.id, generation: o.generation, state: SstableState::Normal })
            .chain(inputs.iter().map(|i| ManifestEdit::RemoveSstable { generation: i.generation }))
            // The inputs' flushed position outlives them even when nothing survived (R3.12):
            // replay would otherwise re-apply writes whose tombstone this compaction purged.
            .chain(interval.map(|i| ManifestEdit::ReplayFloor { table: table.schema.id, position: i.end }))
            .collect();
        if let Err(e) = engine.manifest_apply(&mut manifest, edits) {
            // Unknown outcome after an I/O error (the manifest and the log fail-stop): keep every
            // file for the next open to sort out. A rejected edit changed nothing.
            if manifest.failure().is_none() {
                for o in &outputs {
                    let _ = inner.fs.remove_file(&o.path);
                }
            }
            return Err(e);
        }
        // R2.22 first, then the swap: the overlap check never misses the inputs' data.
        table.compacted_undeleted.lock().extend(inputs.iter().cloned());
        let gone: BTreeSet<u64> = inputs.iter().map(|s| s.generation).collect();
        table.sstables.rcu(|list| {
            let mut next: Vec<Arc<Sstable>> = list.iter().filter(|s| !gone.contains(&s.generation)).cloned().collect();
            next.extend(outputs.iter().cloned());
            next.sort_by_key(|s| std::cmp::Reverse(s.generation));
            next
        });
    }
    for input in inputs {
        inner.block_cache.evict_file(input.generation);
        // A failed delete leaves an unnamed file, which the next open removes.
        let _ = inner.fs.remove_file(&input.path);
    }
    table.compacted_undeleted.lock().retain(|s| !inputs.iter().any(|i| Arc::ptr_eq(s, i)));
    Ok(())
}
