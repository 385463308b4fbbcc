//! The memtable: a concurrent ordered map of partitions (DESIGN §3).
//!
//! Invariants and thread-safety:
//! - partitions live in a lock-free [`PartitionMap`] (skiplists per token range) ordered by
//!   [`DecoratedKey`];
//! - each partition is an immutable [`PartitionVersion`] behind an `ArcSwap`: readers load a
//!   snapshot without locking, so **a reader never blocks a writer**, and a writer publishes a whole
//!   mutation with one pointer swap, so **a mutation becomes visible all at once**;
//! - writers of the same partition serialize on that partition's mutex; writers of different
//!   partitions do not contend;
//! - rows sit in a [`RowMap`]: a small vector for small partitions, a persistent `imbl::OrdMap`
//!   for wide ones, so copying a version for a write is O(1) there and the write costs O(log n)
//!   per row;
//! - partition and range tombstones are applied **eagerly**: rows and row tombstones they cover are
//!   dropped at once (R1.33, `never_gc`, no expiry); the tombstones themselves are kept.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::commitlog::{ReplayCoverage, ReplayPosition};
use crate::memtable_arena::ByteArena;
use crate::memtable_rows::RowMap;
use crate::partition_map::PartitionMap;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use talus_format::{
    Cells, ClusteringPrefix, CompactionPurpose, DecoratedKey, Mutation, NeverPurge, PartitionKey, PartitionUpdate, Position,
    RangeTombstoneList, Row, Timestamp, Tombstone,
};

/// One immutable version of a partition in a memtable.
#[derive(Debug, Clone, Default)]
pub struct PartitionVersion {
    /// The partition tombstone.
    pub tombstone: Tombstone,
    /// Static row cells.
    pub static_cells: Cells,
    /// Rows by clustering key.
    pub rows: RowMap,
    /// Range tombstones in canonical form; `None` until the first (most partitions have none,
    /// and an empty list behind an `Arc` would cost an allocation per partition).
    range_tombstones: Option<Arc<RangeTombstoneList>>,
}

/// The range tombstones of a partition that has none.
static NO_RANGE_TOMBSTONES: RangeTombstoneList = RangeTombstoneList::new();

impl PartitionVersion {
    /// The range tombstones, in canonical form.
    pub fn range_tombstones(&self) -> &RangeTombstoneList {
        self.range_tombstones.as_deref().unwrap_or(&NO_RANGE_TOMBSTONES)
    }

    /// The tombstone covering the row at `key`: partition + range (R1.25).
    pub fn covering(&self, key: &ClusteringPrefix) -> Tombstone {
        match &self.range_tombstones {
            Some(list) => self.tombstone.max(list.tombstone_at(&Position::at_row(key.clone()))),
            None => self.tombstone,
        }
    }

    /// Applies an update with eager shadowing (R1.33); the cells and keys it keeps are copied
    /// into `arena`.
    fn apply(&mut self, update: &PartitionUpdate, arena: &ByteArena) {
        let partition_tombstone_grew = update.tombstone > self.tombstone;
        self.tombstone.apply(update.tombstone);
        if partition_tombstone_grew {
            // A newer partition tombstone: drop everything it covers (rows, row tombstones, cells).
            let t = self.tombstone;
            self.static_cells.compact(t, None, &NeverPurge);
            self.rows.retain(|_, row| {
                row.compact(t, None, &NeverPurge, CompactionPurpose::Persist);
                !row.is_empty()
            });
        }
        if !update.static_cells.is_empty() {
            self.static_cells.apply(&arena.cells(&update.static_cells));
            self.static_cells.compact(self.tombstone, None, &NeverPurge);
        }
        for rt in &update.range_tombstones {
            Arc::make_mut(self.range_tombstones.get_or_insert_with(Default::default)).insert(rt);
            let covering = self.tombstone.max(rt.tombstone);
            let lower = rt.start.prefix().clone();
            let covered: Vec<ClusteringPrefix> = self
                .rows
                .from(Bound::Included(&lower))
                .map(|(k, _)| k)
                .skip_while(|k| Position::at_row((*k).clone()) < rt.start)
                .take_while(|k| Position::at_row((*k).clone()) < rt.end)
                .cloned()
                .collect();
            for key in covered {
                self.compact_row(key, covering, None);
            }
        }
        for (key, row) in &update.rows {
            let covering = self.covering(key);
            let key = match self.rows.get(key) {
                Some(_) => key.clone(),
                None if key.encoded().is_empty() => key.clone(),
                None => ClusteringPrefix::from_encoded(arena.copy(key.encoded()), key.len() as u16),
            };
            self.compact_row(key, covering, Some(arena.row(row)));
        }
    }

    /// Merges `incoming` into the row at `key`, then drops what `covering` shadows.
    fn compact_row(&mut self, key: ClusteringPrefix, covering: Tombstone, incoming: Option<Row>) {
        let mut row = match (self.rows.get(&key), incoming) {
            (Some(existing), Some(incoming)) => {
                let mut row = existing.clone();
                row.apply(&incoming);
                row
            }
            (Some(existing), None) => existing.clone(),
            // A new row is the incoming one.
            (None, Some(incoming)) => incoming,
            (None, None) => Row::default(),
        };
        row.compact(covering, None, &NeverPurge, CompactionPurpose::Persist);
        if row.is_empty() {
            self.rows.remove(&key);
        } else {
            self.rows.insert(key, row);
        }
    }
}

struct MemPartition {
    writer: Mutex<()>,
    version: ArcSwap<PartitionVersion>,
}

/// Timestamp statistics of a memtable, for the overlap check of later compactions (R2.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemtableStats {
    /// Smallest write timestamp of anything applied.
    pub min_timestamp: Timestamp,
    /// Largest write timestamp of anything applied.
    pub max_timestamp: Timestamp,
    /// Smallest timestamp of live data (cells and markers) applied.
    pub min_live_timestamp: Timestamp,
    /// Smallest timestamp of a live row marker applied.
    pub min_live_row_marker_timestamp: Timestamp,
    /// Approximate memory held, in bytes.
    pub memory_bytes: usize,
    /// Number of partitions.
    pub partitions: usize,
}

/// A memtable of one table.
pub struct Memtable {
    partitions: PartitionMap<MemPartition>,
    /// Where the partition keys, clustering keys and cell values the memtable holds live.
    arena: ByteArena,
    memory: AtomicUsize,
    min_ts: AtomicI64,
    max_ts: AtomicI64,
    min_live_ts: AtomicI64,
    min_live_marker_ts: AtomicI64,
    coverage: Mutex<ReplayCoverage>,
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable").field("stats", &self.stats()).finish()
    }
}

/// Fixed per-entry overhead used by the memory estimate (skiplist node, Arcs, map nodes).
const ENTRY_OVERHEAD: usize = 96;

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable {
            partitions: PartitionMap::new(),
            arena: ByteArena::new(),
            memory: AtomicUsize::new(0),
            min_ts: AtomicI64::new(i64::MAX),
            max_ts: AtomicI64::new(i64::MIN),
            min_live_ts: AtomicI64::new(i64::MAX),
            min_live_marker_ts: AtomicI64::new(i64::MAX),
            coverage: Mutex::new(ReplayCoverage::default()),
        }
    }

    /// Records that the commitlog entry at `position` was applied here (R3.1 `rp_set`).
    pub fn record_position(&self, position: ReplayPosition) {
        self.coverage.lock().add(position);
    }

    /// The commitlog entries this memtable holds.
    pub fn coverage(&self) -> ReplayCoverage {
        self.coverage.lock().clone()
    }

    /// Applies a mutation; it becomes visible to readers all at once.
    pub fn apply(&self, mutation: &Mutation) {
        self.note_timestamps(&mutation.update);
        // One search whether the partition exists or not (the key clone is a reference count).
        // A new partition is inserted with the mutation already applied: its first version is
        // complete before any reader can find it.
        // Our first version, kept alive until checked so its address cannot be reused meanwhile.
        let mut inserted: Option<Arc<PartitionVersion>> = None;
        // The key is copied into the arena even when the partition exists (one search): the
        // memory estimate counts it either way.
        let key_bytes = mutation.key.key.as_bytes();
        let key = DecoratedKey { token: mutation.key.token, key: PartitionKey::from_legacy_bytes(self.arena.copy(key_bytes)) };
        let (entry, created) = self.partitions.get_or_insert_with(key, || {
            let mut version = PartitionVersion::default();
            version.apply(&mutation.update, &self.arena);
            let version = Arc::new(version);
            inserted = Some(version.clone());
            MemPartition { writer: Mutex::new(()), version: ArcSwap::new(version) }
        });
        let entry_bytes = if created { ENTRY_OVERHEAD } else { 0 };
        self.memory.fetch_add(entry_bytes + key_bytes.len(), Ordering::Relaxed);
        let partition = entry.value();
        // The inserted version may have lost a race with another writer inserting the same key
        // (it was dropped), or already been replaced by a later write built on it. Applying the
        // mutation again in the second case is harmless: reconciliation is idempotent.
        if inserted.is_none_or(|ours| !Arc::ptr_eq(&partition.version.load(), &ours)) {
            let _guard = partition.writer.lock();
            let mut version = PartitionVersion::clone(&partition.version.load());
            version.apply(&mutation.update, &self.arena);
            partition.version.store(Arc::new(version));
        }
        self.memory.fetch_add(update_size(&mutation.update), Ordering::Relaxed);
    }

    fn note_timestamps(&self, update: &PartitionUpdate) {
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        let mut min_live = i64::MAX;
        let mut min_marker = i64::MAX;
        let mut see = |ts: Timestamp, live: bool| {
            if ts == Timestamp::MISSING {
                return;
            }
            min = min.min(ts.0);
            max = max.max(ts.0);
            if live {
                min_live = min_live.min(ts.0);
            }
        };
        see(update.tombstone.timestamp, false);
        for rt in &update.range_tombstones {
            see(rt.tombstone.timestamp, false);
        }
        for (_, cell) in update.static_cells.iter() {
            see(cell.timestamp(), cell.is_live());
        }
        for row in update.rows.values() {
            see(row.tombstone.max().timestamp, false);
            see(row.marker.timestamp(), row.marker.is_live());
            if row.marker.is_live() {
                min_marker = min_marker.min(row.marker.timestamp().0);
            }
            for (_, cell) in row.cells.iter() {
                see(cell.timestamp(), cell.is_live());
            }
        }
        // A read first: the bounds rarely move, and a read-modify-write is a locked instruction.
        let lower = |bound: &AtomicI64, ts: i64| {
            if ts < bound.load(Ordering::Relaxed) {
                bound.fetch_min(ts, Ordering::Relaxed);
            }
        };
        lower(&self.min_ts, min);
        lower(&self.min_live_ts, min_live);
        lower(&self.min_live_marker_ts, min_marker);
        if max > self.max_ts.load(Ordering::Relaxed) {
            self.max_ts.fetch_max(max, Ordering::Relaxed);
        }
    }

    /// Approximate memory held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Whether nothing was applied.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Statistics (timestamps as `Timestamp::MAX`/`MIN` sentinels when empty).
    pub fn stats(&self) -> MemtableStats {
        MemtableStats {
            min_timestamp: Timestamp(self.min_ts.load(Ordering::Relaxed)),
            max_timestamp: Timestamp(self.max_ts.load(Ordering::Relaxed)),
            min_live_timestamp: Timestamp(self.min_live_ts.load(Ordering::Relaxed)),
            min_live_row_marker_timestamp: Timestamp(self.min_live_marker_ts.load(Ordering::Relaxed)),
            memory_bytes: self.memory_bytes(),
            partitions: self.partitions.len(),
        }
    }

    /// A snapshot of one partition, if present.
    pub fn partition(&self, key: &DecoratedKey) -> Option<Arc<PartitionVersion>> {
        // An empty memtable (the usual one a read meets after a flush) is answered without
        // touching its bucket array, whose cache line for `key` is cold.
        if self.is_empty() {
            return None;
        }
        self.partitions.get(key).map(|e| e.value().version.load_full())
    }

    /// Snapshots of the partitions with keys in `range`, in order, lazily.
    pub fn partitions_in<'a, R>(&'a self, range: R) -> impl Iterator<Item = (DecoratedKey, Arc<PartitionVersion>)> + 'a
    where
        R: std::ops::RangeBounds<DecoratedKey> + 'a,
    {
        self.partitions.range(range).map(|e| (e.key().clone(), e.value().version.load_full()))
    }
}

/// Memory estimate of an update (keys, values, fixed overheads).
fn update_size(update: &PartitionUpdate) -> usize {
    let cells = |c: &Cells| c.iter().map(|(_, cell)| 32 + cell.value().map_or(0, |v| v.len())).sum::<usize>();
    let rows: usize = update.rows.iter().map(|(k, r)| ENTRY_OVERHEAD + k.encoded().len() + cells(&r.cells)).sum();
    let rts: usize =
        update.range_tombstones.iter().map(|rt| 64 + rt.start.prefix().encoded().len() + rt.end.prefix().encoded().len()).sum();
    cells(&update.static_cells) + rows + rts
}
