//! Point reads: one clustering row of one partition (DESIGN §5), without the machinery a query
//! needs for many rows (merged streams, the read compactor, pages, result partitions).
//!
//! The answer is the one a single-partition query restricted to the row would give: the row's
//! versions from every memtable and sstable holding the partition are reconciled (R1.30–R1.31),
//! then compacted for reading under the covering tombstone, the largest of the partition
//! tombstones and of the range tombstones at the row's position in any source (R1.25), with
//! expiry at the read's `now` (R5.4). A purged tombstone still shadows (R2.19), so no purge rule
//! applies here. A table without clustering columns has one row per partition, at the empty
//! prefix. Static cells are not part of a point read.
//!
//! SSTables are skipped by key range and bloom filter; each one that holds the partition is read
//! with [`talus_format::sstable::reader::SstableReader::read_row`], which decodes only the block
//! that can hold the row; a corruption fails the read with [`Error::SstableCorrupt`] and
//! quarantines the sstable, as for queries.
//!
//! An sstable is also skipped when nothing in it can change the answer (Cassandra's
//! timestamp-ordered single-partition read): once the versions read so far give every regular
//! column a live cell newer than the tombstones read so far, the row's answer is settled against
//! any source whose data is all older than the oldest of those cells. Such a source's cells lose
//! reconciliation to the newer ones (R1.30), its tombstones (no newer than its max timestamp)
//! shadow none of them (R1.25: a tombstone shadows what is not newer than itself), and the row
//! is live through its cells whatever its markers say. The sstable statistics' `max_timestamp`
//! bounds every timestamp in the file (cells, markers, all tombstones), so the check is exact, not
//! a heuristic. Sstables are visited newest data first (by that `max_timestamp`), so after an
//! overwrite the older copies of a row are passed over without reading their blocks.
//!
//! Thread-safety: runs on the caller's thread over `Arc` snapshots; takes no lock a writer holds.

use std::sync::Arc;

use talus_format::{ClusteringPrefix, DecoratedKey, GcTime, NeverPurge, Row, Schema, Timestamp, Tombstone, Value};

use crate::engine::Engine;
use crate::error::Result;
use crate::query::{live_cells, ResultRow};
use crate::read_path::fail_sstable;
use crate::sstable_set::Sstable;

impl Engine {
    /// The live row of `schema`'s table at partition key `partition_key` and full clustering key
    /// `clustering` (empty for a table without clustering columns), at gc time `now`; `None`
    /// when the row has nothing live. Typed errors: unknown table, wrong key (as for
    /// [`talus_format::Mutation`]s), a corrupt sstable.
    pub fn read_row(&self, schema: &Schema, partition_key: &[Value], clustering: &[Value], now: GcTime) -> Result<Option<ResultRow>> {
        let key = schema.decorated_key(partition_key)?;
        let clustering = schema.clustering_prefix(clustering)?;
        self.read_row_at(schema, &key, clustering, now)
    }

    /// [`Engine::read_row`] with the key already decorated and the prefix encoded.
    pub fn read_row_at(&self, schema: &Schema, key: &DecoratedKey, clustering: ClusteringPrefix, now: GcTime) -> Result<Option<ResultRow>> {
        let table = self.table_by_id(schema.id)?;
        let mut covering = Tombstone::NONE;
        let mut row = Row::default();
        // Active memtable first, then sealed ones, then sstables: flush publishes in the other
        // order, so every version is seen at least once (reconciling one twice changes nothing).
        let active = table.memtable.load_full();
        let sealed: Vec<_> = table.sealed.lock().iter().map(|s| s.memtable.clone()).collect();
        for memtable in std::iter::once(&active).chain(sealed.iter()) {
            if let Some(version) = memtable.partition(key) {
                covering = covering.max(version.covering(&clustering));
                if let Some(r) = version.rows.get(&clustering) {
                    row.apply(r);
                }
            }
        }
        let sstables = table.sstables.load_full();
        // Newest data first, so the skip below passes over the older copies: the list is in
        // generation order, and a compaction's output (a new generation) may hold only old data.
        // Sorted in place of the published list only when it is out of that order (no copy, no
        // allocation on the read path otherwise).
        let newest_first = |s: &Arc<Sstable>| std::cmp::Reverse(s.reader.statistics().max_timestamp);
        let resorted: Vec<Arc<Sstable>>;
        let by_age: &[Arc<Sstable>] = if sstables.is_sorted_by_key(newest_first) {
            &sstables
        } else {
            let mut copy = sstables.to_vec();
            copy.sort_by_key(newest_first);
            resorted = copy;
            &resorted
        };
        let columns = schema.regular_columns.len();
        let mut settled = settled_above(&row, covering, now, columns);
        for sstable in by_age {
            if sstable.reader.statistics().max_timestamp < settled {
                continue;
            }
            let found = sstable.reader.read_row(key, &clustering, true).map_err(|e| fail_sstable(self, &table, sstable, e))?;
            let Some(version) = found else { continue };
            covering = covering.max(version.partition_tombstone).max(version.range_tombstone);
            if let Some(r) = version.row {
                row.absorb(r);
            }
            settled = settled_above(&row, covering, now, columns);
        }
        row.compact(covering, Some(now), &NeverPurge, talus_format::CompactionPurpose::Read);
        if !row.is_live_at(now) {
            return Ok(None);
        }
        Ok(Some(ResultRow { cells: live_cells(row.cells, now), clustering }))
    }
}

/// The timestamp below which no source can change the answer for `row` (see the module docs):
/// the oldest of its cells when each of the table's `columns` regular columns has a live cell at
/// `now` newer than `covering` and the row's own tombstone; [`Timestamp::MIN`] (nothing is
/// settled) otherwise.
fn settled_above(row: &Row, covering: Tombstone, now: GcTime, columns: usize) -> Timestamp {
    let newest_tombstone = covering.max(row.tombstone.max()).timestamp;
    let mut oldest = Timestamp::MAX;
    let mut settled_columns = 0;
    for (_, cell) in row.cells.iter() {
        if !cell.is_live_at(now) || cell.timestamp() <= newest_tombstone {
            return Timestamp::MIN;
        }
        oldest = oldest.min(cell.timestamp());
        settled_columns += 1;
    }
    if settled_columns == columns && columns > 0 {
        oldest
    } else {
        Timestamp::MIN
    }
}
