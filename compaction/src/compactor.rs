//! The compactor: applies shadowing, expiry and tombstone purge to a merged fragment stream
//! (R2.7–R2.19), for reads (R5.4) and sstable compaction alike. Merging is not its job.
//!
//! Per partition it keeps the partition tombstone `pt` and the active range tombstone `eff_rt`.
//! Covered data and redundant tombstones are always dropped; a tombstone is purged only if the
//! [`GcPolicy`] allows it (R2.8); a purged tombstone still shadows everything in the same pass
//! (R2.19). A partition is emitted only if something of it survives.
//!
//! It is push-driven ([`Compactor::consume`]) so a query can stop between any two input fragments
//! (the tombstone page cut of R5.5); [`CompactedStream`] adapts it to a [`FragmentStream`].
//! Not thread-safe; one per stream.

use std::cell::{Cell as StdCell, OnceCell};

use talus_format::{
    CompactionPurpose, DecoratedKey, Fragment, FragmentStream, GcTime, PurgeRule, RangeTombstoneChange, Result, RowTombstone,
    RowTombstoneFate, Timestamp, Tombstone,
};

use crate::gc::GcPolicy;

/// What a compactor saw and did; cumulative over its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Partitions read.
    pub partitions: u64,
    /// Non-empty partition tombstones read.
    pub partition_tombstones: u64,
    /// Range tombstone changes read that open or change a tombstone.
    pub range_tombstone_changes: u64,
    /// Clustering rows read.
    pub rows: u64,
    /// Row tombstones read.
    pub row_tombstones: u64,
    /// Rows with nothing live left at `now` (dead rows, as R5.5 counts them).
    pub dead_rows: u64,
    /// Cell tombstones and expired cells read (static and regular).
    pub dead_cells: u64,
    /// Dead static rows.
    pub dead_static_rows: u64,
    /// Tombstones purged by the GC rules (any level, including expired cells dropped).
    pub tombstones_purged: u64,
    /// Row tombstones dropped as redundant under a partition or range tombstone (R1.27).
    pub redundant_row_tombstones: u64,
    /// Fragments emitted.
    pub fragments_out: u64,
}

impl CompactionStats {
    /// Tombstones as ScyllaDB's page limit counts them (R5.5): partition tombstones, dead rows,
    /// dead static rows and range tombstone changes.
    pub fn guard_count(&self) -> u64 {
        self.partition_tombstones + self.dead_rows + self.dead_static_rows + self.range_tombstone_changes
    }
}

struct PartitionState {
    key: DecoratedKey,
    pt: Tombstone,
    eff_rt: Tombstone,
    emitted_rt: Tombstone,
    /// The partition start to emit before the first surviving fragment; `None` once emitted.
    pending_start: Option<Tombstone>,
    gc_before: OnceCell<GcTime>,
    max_purgeable: [OnceCell<Timestamp>; 2],
    purged: StdCell<u64>,
}

/// The purge predicate of one partition, with `gc_before` and `max_purgeable` computed lazily and
/// once (R2.17: only for tombstones that already satisfy `dt < gc_before`).
struct PartitionGc<'a> {
    policy: &'a GcPolicy,
    state: &'a PartitionState,
}

impl PartitionGc<'_> {
    fn purgeable(&self, t: Tombstone, shadowable: bool) -> bool {
        let s = self.state;
        let gc_before = *s.gc_before.get_or_init(|| self.policy.gc_before(&s.key));
        if t.deletion_time >= gc_before {
            return false;
        }
        let max = *s.max_purgeable[usize::from(shadowable)].get_or_init(|| self.policy.max_purgeable(&s.key, shadowable));
        // R2.17 step 5: strict comparison.
        let purge = t.timestamp < max;
        if purge {
            s.purged.set(s.purged.get() + 1);
        }
        purge
    }
}

impl PurgeRule for PartitionGc<'_> {
    fn can_purge(&self, t: Tombstone) -> bool {
        self.purgeable(t, false)
    }

    fn can_purge_row(&self, t: &RowTombstone) -> bool {
        self.purgeable(t.for_purge(), t.is_shadowable())
    }
}

/// Compacts one fragment stream under a [`GcPolicy`].
pub struct Compactor {
    policy: GcPolicy,
    purpose: CompactionPurpose,
    partition: Option<PartitionState>,
    stats: CompactionStats,
}

impl Compactor {
    /// A compactor applying `policy` (its `now` is also the expiry clock) for `purpose`.
    pub fn new(policy: GcPolicy, purpose: CompactionPurpose) -> Compactor {
        Compactor { policy, purpose, partition: None, stats: CompactionStats::default() }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &CompactionStats {
        &self.stats
    }

    /// Feeds one input fragment; surviving output goes to `out`. Input must be a valid stream.
    pub fn consume(&mut self, fragment: Fragment, out: &mut Vec<Fragment>) {
        let before = out.len();
        self.consume_inner(fragment, out);
        self.stats.fragments_out += (out.len() - before) as u64;
    }

    fn consume_inner(&mut self, fragment: Fragment, out: &mut Vec<Fragment>) {
        let now = self.policy.now;
        match fragment {
            Fragment::PartitionStart { key, tombstone } => {
                self.stats.partitions += 1;
                let state = PartitionState {
                    key,
                    pt: tombstone,
                    eff_rt: Tombstone::NONE,
                    emitted_rt: Tombstone::NONE,
                    pending_start: None,
                    gc_before: OnceCell::new(),
                    max_purgeable: [OnceCell::new(), OnceCell::new()],
                    purged: StdCell::new(0),
                };
                let mut emitted = tombstone;
                if tombstone.is_some() {
                    self.stats.partition_tombstones += 1;
                    // R2.7: the partition tombstone is emitted unless purgeable; it shadows anyway.
                    if (PartitionGc { policy: &self.policy, state: &state }).can_purge(tombstone) {
                        emitted = Tombstone::NONE;
                    }
                }
                let mut state = state;
                state.pending_start = Some(emitted);
                self.partition = Some(state);
                if emitted.is_some() {
                    self.emit_start(out);
                }
            }
            Fragment::StaticRow(mut cells) => {
                let Some(state) = &self.partition else { return };
                self.stats.dead_cells += cells.iter().filter(|(_, c)| !c.is_live_at(now)).count() as u64;
                // R2.10 / R1.24: only the partition tombstone covers the static row.
                cells.compact(state.pt, Some(now), &PartitionGc { policy: &self.policy, state });
                if !cells.any_live_at(now) {
                    self.stats.dead_static_rows += 1;
                }
                if !cells.is_empty() {
                    self.emit_start(out);
                    out.push(Fragment::StaticRow(cells));
                }
            }
            Fragment::Row { key, mut row } => {
                let Some(state) = &self.partition else { return };
                self.stats.rows += 1;
                self.stats.dead_cells += row.cells.iter().filter(|(_, c)| !c.is_live_at(now)).count() as u64;
                if !row.tombstone.is_none() {
                    self.stats.row_tombstones += 1;
                }
                // R2.11: covering = pt + eff_rt.
                let covering = state.pt.max(state.eff_rt);
                let fate = row.compact(covering, Some(now), &PartitionGc { policy: &self.policy, state }, self.purpose);
                if fate == RowTombstoneFate::Redundant {
                    self.stats.redundant_row_tombstones += 1;
                }
                if !row.is_live_at(now) {
                    self.stats.dead_rows += 1;
                }
                if !row.is_empty() {
                    self.emit_start(out);
                    out.push(Fragment::Row { key, row });
                }
            }
            Fragment::RangeTombstoneChange(change) => {
                let Some(state) = &mut self.partition else { return };
                // R2.9: a range tombstone not above the partition tombstone is redundant.
                let t = if change.tombstone <= state.pt { Tombstone::NONE } else { change.tombstone };
                if t.is_some() {
                    self.stats.range_tombstone_changes += 1;
                }
                state.eff_rt = t;
                let state = &*state;
                let emitted = if t.is_some() && (PartitionGc { policy: &self.policy, state }).can_purge(t) { Tombstone::NONE } else { t };
                if emitted != state.emitted_rt {
                    self.emit_start(out);
                    if let Some(state) = &mut self.partition {
                        state.emitted_rt = emitted;
                    }
                    out.push(Fragment::RangeTombstoneChange(RangeTombstoneChange { position: change.position, tombstone: emitted }));
                }
            }
            Fragment::PartitionEnd => {
                if let Some(state) = self.partition.take() {
                    self.stats.tombstones_purged += state.purged.get();
                    if state.pending_start.is_none() {
                        out.push(Fragment::PartitionEnd);
                    }
                }
            }
        }
    }

    fn emit_start(&mut self, out: &mut Vec<Fragment>) {
        if let Some(state) = &mut self.partition {
            if let Some(tombstone) = state.pending_start.take() {
                out.push(Fragment::PartitionStart { key: state.key.clone(), tombstone });
            }
        }
    }
}

/// A compacted fragment stream: pulls from an input and pushes through a [`Compactor`].
pub struct CompactedStream<'a> {
    input: FragmentStream<'a>,
    compactor: Compactor,
    /// Output not yet returned, last first (so the next is popped off the end).
    buffer: Vec<Fragment>,
}

impl<'a> CompactedStream<'a> {
    /// Compacts `input` under `policy` for `purpose`.
    pub fn new(input: FragmentStream<'a>, policy: GcPolicy, purpose: CompactionPurpose) -> CompactedStream<'a> {
        CompactedStream { input, compactor: Compactor::new(policy, purpose), buffer: Vec::new() }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &CompactionStats {
        self.compactor.stats()
    }
}

impl Iterator for CompactedStream<'_> {
    type Item = Result<Fragment>;

    fn next(&mut self) -> Option<Result<Fragment>> {
        loop {
            if let Some(f) = self.buffer.pop() {
                return Some(Ok(f));
            }
            match self.input.next()? {
                Ok(f) => {
                    self.compactor.consume(f, &mut self.buffer);
                    self.buffer.reverse();
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
