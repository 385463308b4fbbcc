//! Fragment streams over memtable snapshots: one partition's clustering slice, or a range of
//! partitions (DESIGN §2, R5.3).
//!
//! A [`Slice`] is a sorted list of disjoint position ranges `[start, end)`. Inside each range the
//! reader emits rows and range tombstone changes in position order, opening the tombstone active at
//! the range start with a change at `start` and closing an open one at `end` (R5.3 clipping), so
//! every partition it emits is a valid stream (R1.36).
//!
//! The reader works on `Arc` snapshots, holds no lock and never blocks writers.

use std::ops::Bound;
use std::sync::Arc;

use talus_format::{ClusteringPrefix, DecoratedKey, Fragment, Position, RangeTombstoneChange, Tombstone};

use crate::memtable::PartitionVersion;

/// The clustering part of a query: disjoint, sorted position ranges `[start, end)`, and whether the
/// static row is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The ranges.
    pub ranges: Vec<(Position, Position)>,
    /// Whether the static row is read.
    pub static_row: bool,
}

impl Slice {
    /// Everything: the static row and all rows.
    pub fn full() -> Slice {
        Slice { ranges: vec![(Position::before_all_rows(), Position::after_all_rows())], static_row: true }
    }

    /// Whether the slice restricts clustering (anything but the full range).
    pub fn restricts_clustering(&self) -> bool {
        self.ranges != [(Position::before_all_rows(), Position::after_all_rows())]
    }

    /// The part of the slice at or after `resume` (paging). The static row is kept only when
    /// `resume` is at or before it.
    pub fn resumed_from(&self, resume: &Position) -> Slice {
        let ranges = self
            .ranges
            .iter()
            .filter(|(_, end)| end > resume)
            .map(|(start, end)| (start.clone().max(resume.clone()), end.clone()))
            .filter(|(start, end)| start < end)
            .collect();
        Slice { ranges, static_row: self.static_row && *resume <= Position::static_row() }
    }
}

/// Reads one partition snapshot through a slice, lazily.
pub struct PartitionReader {
    key: Option<DecoratedKey>,
    version: Arc<PartitionVersion>,
    slice: Arc<Slice>,
    phase: Phase,
    range: usize,
    /// Next row lower bound inside the current range.
    row_from: Bound<ClusteringPrefix>,
    /// Next range tombstone change index inside the current range.
    change: usize,
    active: Tombstone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Static,
    RangeStart,
    InRange,
    Done,
}

impl PartitionReader {
    /// A reader of `version` (partition `key`) through `slice`.
    pub fn new(key: DecoratedKey, version: Arc<PartitionVersion>, slice: Arc<Slice>) -> PartitionReader {
        PartitionReader {
            key: Some(key),
            version,
            slice,
            phase: Phase::Start,
            range: 0,
            row_from: Bound::Unbounded,
            change: 0,
            active: Tombstone::NONE,
        }
    }

    fn next_fragment(&mut self) -> Option<Fragment> {
        loop {
            match self.phase {
                Phase::Start => {
                    self.phase = Phase::Static;
                    let key = self.key.take()?;
                    return Some(Fragment::PartitionStart { key, tombstone: self.version.tombstone });
                }
                Phase::Static => {
                    self.phase = Phase::RangeStart;
                    if self.slice.static_row && !self.version.static_cells.is_empty() {
                        return Some(Fragment::StaticRow(self.version.static_cells.clone()));
                    }
                }
                Phase::RangeStart => {
                    let Some((start, _)) = self.slice.ranges.get(self.range) else {
                        self.phase = Phase::Done;
                        return Some(Fragment::PartitionEnd);
                    };
                    self.phase = Phase::InRange;
                    self.row_from = Bound::Included(start.prefix().clone());
                    let changes = self.version.range_tombstones().changes();
                    self.change = changes.partition_point(|c| c.position <= *start);
                    let t = self.version.range_tombstones().tombstone_at(start);
                    if t != self.active {
                        self.active = t;
                        return Some(rtc(start.clone(), t));
                    }
                }
                Phase::InRange => {
                    let (start, end) = &self.slice.ranges[self.range];
                    let row = self
                        .version
                        .rows
                        .from(self.row_from.as_ref())
                        .map(|(k, r)| (Position::at_row(k.clone()), k, r))
                        .find(|(pos, _, _)| pos >= start)
                        .filter(|(pos, _, _)| pos < end);
                    let change = self.version.range_tombstones().changes().get(self.change).filter(|c| c.position < *end);
                    match (row, change) {
                        (Some((row_pos, key, row)), change) if change.is_none_or(|c| row_pos < c.position) => {
                            self.row_from = Bound::Excluded(key.clone());
                            return Some(Fragment::Row { key: key.clone(), row: row.clone() });
                        }
                        (_, Some(change)) => {
                            self.change += 1;
                            if change.tombstone != self.active {
                                self.active = change.tombstone;
                                return Some(Fragment::RangeTombstoneChange(change.clone()));
                            }
                        }
                        (_, None) => {
                            let end = end.clone();
                            self.range += 1;
                            self.phase = Phase::RangeStart;
                            if self.active.is_some() {
                                self.active = Tombstone::NONE;
                                return Some(rtc(end, Tombstone::NONE));
                            }
                        }
                    }
                }
                Phase::Done => return None,
            }
        }
    }
}

fn rtc(position: Position, tombstone: Tombstone) -> Fragment {
    Fragment::RangeTombstoneChange(RangeTombstoneChange { position, tombstone })
}

impl Iterator for PartitionReader {
    type Item = Fragment;

    fn next(&mut self) -> Option<Fragment> {
        self.next_fragment()
    }
}
