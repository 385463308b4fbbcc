//! Rows: cells by column, the row marker and the row tombstone (R1.17–R1.20, R1.27–R1.28), with
//! reconciliation (R1.31) and the per-row compaction of R2.11–R2.12.
//!
//! The same [`Row::compact`] serves the memtable's eager shadowing (no expiry, [`NeverPurge`]),
//! reads and sstable compaction, so the rules live in one place.
//!
//! [`NeverPurge`]: crate::cell::NeverPurge

use std::borrow::Cow;
use std::cmp::Ordering;

use bytes::Bytes;

use crate::cell::{Cell, ColumnId, PurgeRule, RowMarker};
use crate::time::GcTime;
use crate::tombstone::Tombstone;

/// Cells of one row (or of the static row), sorted by column id, at most one per column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Cells(Vec<(ColumnId, Cell)>);

impl Cells {
    /// No cells.
    pub fn new() -> Cells {
        Cells(Vec::new())
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Cells in column order.
    pub fn iter(&self) -> impl Iterator<Item = &(ColumnId, Cell)> {
        self.0.iter()
    }

    /// The cell of `column`, if any.
    pub fn get(&self, column: ColumnId) -> Option<&Cell> {
        self.0.binary_search_by_key(&column, |(id, _)| *id).ok().map(|i| &self.0[i].1)
    }

    /// Cells already in strictly increasing column id order (a decoder checked it).
    pub(crate) fn from_sorted(cells: Vec<(ColumnId, Cell)>) -> Cells {
        Cells(cells)
    }

    /// Reconciles `cell` into the cell of `column` (R1.29).
    pub fn apply_cell(&mut self, column: ColumnId, cell: &Cell) {
        self.reconcile(column, Cow::Borrowed(cell));
    }

    /// [`Cells::apply_cell`], copying `cell` only when it wins.
    fn reconcile(&mut self, column: ColumnId, cell: Cow<'_, Cell>) {
        match self.0.binary_search_by_key(&column, |(id, _)| *id) {
            Ok(i) => {
                if cell.compare_for_merge(&self.0[i].1) == Ordering::Greater {
                    self.0[i].1 = cell.into_owned();
                }
            }
            Err(i) => self.0.insert(i, (column, cell.into_owned())),
        }
    }

    /// Reconciles every cell of `other` into `self`.
    pub fn apply(&mut self, other: &Cells) {
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        for (column, cell) in &other.0 {
            self.apply_cell(*column, cell);
        }
    }

    /// [`Cells::apply`], taking `other`'s cells instead of copying them.
    pub fn absorb(&mut self, other: Cells) {
        if self.0.is_empty() {
            *self = other;
            return;
        }
        for (column, cell) in other.0 {
            self.reconcile(column, Cow::Owned(cell));
        }
    }

    /// Compacts every cell under `covering` (R2.12) and removes erased ones.
    pub fn compact(&mut self, covering: Tombstone, now: Option<GcTime>, purge: &dyn PurgeRule) {
        self.0.retain_mut(|(_, cell)| cell.compact(covering, now, purge));
    }

    /// A copy with every value replaced by `value(old)` (see [`Cell::map_value`]), in the same
    /// order.
    pub fn map_values(&self, mut value: impl FnMut(&Bytes) -> Bytes) -> Cells {
        let mut out = Vec::with_capacity(self.0.len());
        out.extend(self.0.iter().map(|(column, cell)| (*column, cell.map_value(&mut value))));
        Cells(out)
    }

    /// Whether any cell is live at `now`.
    pub fn any_live_at(&self, now: GcTime) -> bool {
        self.0.iter().any(|(_, c)| c.is_live_at(now))
    }
}

impl IntoIterator for Cells {
    type Item = (ColumnId, Cell);
    type IntoIter = std::vec::IntoIter<(ColumnId, Cell)>;

    /// The cells in column order, by value.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(ColumnId, Cell)> for Cells {
    fn from_iter<I: IntoIterator<Item = (ColumnId, Cell)>>(iter: I) -> Self {
        let mut cells = Cells::new();
        for (column, cell) in iter {
            cells.reconcile(column, Cow::Owned(cell));
        }
        cells
    }
}

/// The row tombstone: regular and shadowable parts with `shadowable >= regular` (R1.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RowTombstone {
    /// The regular tombstone.
    pub regular: Tombstone,
    /// The shadowable tombstone (materialized views, R1.20); never below `regular`.
    pub shadowable: Tombstone,
}

impl RowTombstone {
    /// A regular row deletion (a plain `DELETE` sets both parts, R1.19).
    pub fn regular(t: Tombstone) -> RowTombstone {
        RowTombstone { regular: t, shadowable: t }
    }

    /// A shadowable row deletion.
    pub fn shadowable(t: Tombstone) -> RowTombstone {
        RowTombstone { regular: Tombstone::NONE, shadowable: t }
    }

    /// The effective tombstone given the row's reconciled marker (R1.19–R1.20): the shadowable
    /// part, unless a live marker newer than it cancels it, leaving the regular part.
    ///
    /// Talus evaluates R1.20 on the reconciled state instead of resetting the shadowable part
    /// during a merge as ScyllaDB does: ScyllaDB's reset makes a three-way merge order-dependent
    /// (live marker, shadowable tombstone, newer dead marker), which breaks the associativity that
    /// R1.29 requires. Here the stored state is a per-part max, a true lattice join.
    pub fn effective(&self, marker: &RowMarker) -> Tombstone {
        if marker.is_live() && marker.timestamp() > self.shadowable.timestamp {
            self.regular
        } else {
            self.shadowable
        }
    }

    /// The larger of both parts, whatever the marker.
    pub fn max(&self) -> Tombstone {
        self.shadowable
    }

    /// Whether there is no tombstone.
    pub fn is_none(&self) -> bool {
        self.shadowable.is_none()
    }

    /// The deletion time used for GC: the max of both parts (R1.19 `max_deletion_time`).
    pub fn max_deletion_time(&self) -> GcTime {
        self.regular.deletion_time.max(self.shadowable.deletion_time)
    }

    /// The tombstone checked by the purge predicate: the larger timestamp, max deletion time (R2.8).
    pub fn for_purge(&self) -> Tombstone {
        Tombstone::new(self.shadowable.timestamp, self.max_deletion_time())
    }

    /// Whether the shadowable part is above the regular one (R1.19).
    pub fn is_shadowable(&self) -> bool {
        self.shadowable > self.regular
    }

    /// Merges part-wise (R1.31), keeping `shadowable >= regular`.
    pub fn apply(&mut self, other: RowTombstone) {
        self.regular.apply(other.regular);
        self.shadowable.apply(other.shadowable);
        self.shadowable.apply(self.regular);
    }
}

/// Who consumes a compacted row, which decides what a shadowable tombstone may erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionPurpose {
    /// A query: the output is only looked at, so everything the effective tombstone covers goes.
    Read,
    /// The memtable or an sstable: the output is kept and merged again later. Data under a
    /// shadowable tombstone that a newer live marker may still cancel (R1.20) is kept until that
    /// tombstone is purged (then it goes in the same pass, R2.19), so that merge order never
    /// matters.
    Persist,
}

/// A clustering row's content (R1.17).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Row {
    /// The row tombstone.
    pub tombstone: RowTombstone,
    /// The row marker.
    pub marker: RowMarker,
    /// The cells.
    pub cells: Cells,
}

impl Row {
    /// Reconciles `other` into `self` (R1.30–R1.31).
    pub fn apply(&mut self, other: &Row) {
        self.marker.apply(&other.marker);
        self.cells.apply(&other.cells);
        self.tombstone.apply(other.tombstone);
    }

    /// [`Row::apply`], taking `other`'s cells instead of copying them.
    pub fn absorb(&mut self, other: Row) {
        self.marker.apply(&other.marker);
        self.cells.absorb(other.cells);
        self.tombstone.apply(other.tombstone);
    }

    /// Whether the row holds nothing at all (no tombstone, no marker, no cells).
    pub fn is_empty(&self) -> bool {
        self.tombstone.is_none() && self.marker.is_missing() && self.cells.is_empty()
    }

    /// Whether the row would be returned by a query at `now` (R1.28), assuming it was compacted.
    pub fn is_live_at(&self, now: GcTime) -> bool {
        self.marker.is_live_at(now) || self.cells.any_live_at(now)
    }

    /// The effective row tombstone (R1.20 against this row's marker).
    pub fn effective_tombstone(&self) -> Tombstone {
        self.tombstone.effective(&self.marker)
    }

    /// Compacts the row under `covering` = partition + range tombstone at its position
    /// (R2.11 steps 1–4). `now = None` disables expiry. Returns what happened to the row
    /// tombstone; the row is empty afterwards if [`Row::is_empty`].
    pub fn compact(
        &mut self,
        covering: Tombstone,
        now: Option<GcTime>,
        purge: &dyn PurgeRule,
        purpose: CompactionPurpose,
    ) -> RowTombstoneFate {
        let fate = if self.tombstone.is_none() {
            RowTombstoneFate::None
        } else if self.tombstone.max() <= covering {
            // R1.27 / R2.11.2: redundant under the partition/range tombstone.
            RowTombstoneFate::Redundant
        } else if purge.can_purge_row(&self.tombstone) {
            RowTombstoneFate::Purged
        } else {
            RowTombstoneFate::Kept
        };
        // The full effective tombstone shadows even when the row tombstone itself is dropped (R2.19).
        let effective = self.effective_tombstone().max(covering);
        let t = match (purpose, fate) {
            (CompactionPurpose::Persist, RowTombstoneFate::Kept) => self.tombstone.regular.max(covering),
            _ => effective,
        };
        if fate != RowTombstoneFate::Kept {
            self.tombstone = RowTombstone::default();
        }
        self.marker.compact(t, now, purge);
        self.cells.compact(t, now, purge);
        fate
    }
}

/// What [`Row::compact`] did with the row tombstone (for statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowTombstoneFate {
    /// The row had none.
    None,
    /// Kept.
    Kept,
    /// Dropped as covered by the partition or range tombstone (R1.27).
    Redundant,
    /// Purged by the GC rules (R2.8).
    Purged,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::NeverPurge;
    use crate::time::Timestamp;
    use bytes::Bytes;

    fn t(ts: i64) -> Tombstone {
        Tombstone::new(Timestamp(ts), GcTime(ts))
    }

    #[test]
    fn r1_20_newer_marker_cancels_shadowable() {
        // Data under an active shadowable tombstone survives persistence but not reads.
        let mut active = Row { tombstone: RowTombstone::shadowable(t(10)), ..Row::default() };
        active.cells.apply_cell(ColumnId(1), &Cell::Live { timestamp: Timestamp(5), value: Bytes::new() });
        let mut read = active.clone();
        read.compact(Tombstone::NONE, None, &NeverPurge, CompactionPurpose::Read);
        assert!(read.cells.is_empty());
        active.compact(Tombstone::NONE, None, &NeverPurge, CompactionPurpose::Persist);
        assert_eq!(active.cells.len(), 1);

        let mut row = Row { tombstone: RowTombstone::shadowable(t(10)), ..Row::default() };
        row.cells.apply_cell(ColumnId(1), &Cell::Live { timestamp: Timestamp(5), value: Bytes::new() });
        let newer = Row { marker: RowMarker::Live { timestamp: Timestamp(11) }, ..Row::default() };
        row.apply(&newer);
        assert_eq!(row.effective_tombstone(), Tombstone::NONE);
        // Kept for persistence (a later merge may still need it), erased on reads.
        let mut persisted = row.clone();
        persisted.compact(Tombstone::NONE, None, &NeverPurge, CompactionPurpose::Persist);
        assert_eq!(persisted.cells.len(), 1);
        // A regular tombstone is never cancelled.
        let mut reg = Row { tombstone: RowTombstone::regular(t(10)), ..Row::default() };
        reg.apply(&newer);
        assert_eq!(reg.effective_tombstone(), t(10));
    }

    #[test]
    fn r2_11_covered_row_is_emptied_and_tombstone_redundant() {
        let mut row = Row {
            tombstone: RowTombstone::regular(t(3)),
            marker: RowMarker::Live { timestamp: Timestamp(4) },
            cells: [(ColumnId(0), Cell::Live { timestamp: Timestamp(6), value: Bytes::new() })].into_iter().collect(),
        };
        assert_eq!(row.compact(t(5), None, &NeverPurge, CompactionPurpose::Persist), RowTombstoneFate::Redundant);
        assert!(row.marker.is_missing());
        assert_eq!(row.cells.len(), 1);
        assert_eq!(row.compact(t(6), None, &NeverPurge, CompactionPurpose::Persist), RowTombstoneFate::None);
        assert!(row.is_empty());
    }
}
