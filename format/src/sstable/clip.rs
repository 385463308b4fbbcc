//! Clips a fragment stream to clustering ranges (R5.3): rows outside the ranges are dropped, the
//! range tombstone active where a range starts is opened at its start, and one still open where it
//! ends is closed at its end, so every partition stays a valid stream (R1.36).
//!
//! The memtable reader clips natively; sstable streams read whole blocks and are clipped here.
//!
//! Thread-safety: a plain iterator adapter.

use std::collections::VecDeque;

use crate::error::Result;
use crate::fragment::Fragment;
use crate::position::Position;
use crate::range_tombstone::RangeTombstoneChange;
use crate::tombstone::Tombstone;

/// A stream clipped to sorted, disjoint ranges `[start, end)` (and the static row when wanted).
pub struct ClippedStream<I> {
    inner: I,
    ranges: Vec<(Position, Position)>,
    static_row: bool,
    /// The range the stream is in or before, and whether its start has been passed.
    range: usize,
    opened: bool,
    /// The tombstone active in the input, and the one the output has open.
    source_active: Tombstone,
    emitted_active: Tombstone,
    pending: VecDeque<Fragment>,
}

impl<I: Iterator<Item = Result<Fragment>>> ClippedStream<I> {
    /// Clips `inner` to `ranges`, keeping the static row when `static_row`.
    pub fn new(inner: I, ranges: Vec<(Position, Position)>, static_row: bool) -> ClippedStream<I> {
        ClippedStream {
            inner,
            ranges,
            static_row,
            range: 0,
            opened: false,
            source_active: Tombstone::NONE,
            emitted_active: Tombstone::NONE,
            pending: VecDeque::new(),
        }
    }

    fn change(&mut self, position: Position, tombstone: Tombstone) {
        if tombstone != self.emitted_active {
            self.emitted_active = tombstone;
            self.pending.push_back(Fragment::RangeTombstoneChange(RangeTombstoneChange { position, tombstone }));
        }
    }

    /// Opens and closes the ranges that start or end at or before `position`.
    fn advance_to(&mut self, position: &Position) {
        while let Some((start, end)) = self.ranges.get(self.range).cloned() {
            if !self.opened && start <= *position {
                self.opened = true;
                self.change(start, self.source_active);
            }
            if end > *position {
                break;
            }
            if self.opened {
                self.change(end, Tombstone::NONE);
            }
            self.range += 1;
            self.opened = false;
        }
    }

    fn accept(&mut self, fragment: Fragment) {
        match fragment {
            Fragment::PartitionStart { .. } => {
                self.range = 0;
                self.opened = false;
                self.source_active = Tombstone::NONE;
                self.emitted_active = Tombstone::NONE;
                self.pending.push_back(fragment);
            }
            Fragment::StaticRow(_) => {
                if self.static_row {
                    self.pending.push_back(fragment);
                }
            }
            Fragment::Row { .. } => {
                let position = fragment.position();
                self.advance_to(&position);
                if self.opened {
                    self.pending.push_back(fragment);
                }
            }
            Fragment::RangeTombstoneChange(c) => {
                self.advance_to(&c.position);
                self.source_active = c.tombstone;
                if self.opened {
                    self.change(c.position, c.tombstone);
                }
            }
            Fragment::PartitionEnd => {
                self.advance_to(&Position::partition_end());
                self.pending.push_back(Fragment::PartitionEnd);
            }
        }
    }
}

impl<I: Iterator<Item = Result<Fragment>>> Iterator for ClippedStream<I> {
    type Item = Result<Fragment>;

    fn next(&mut self) -> Option<Result<Fragment>> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(Ok(f));
            }
            match self.inner.next()? {
                Ok(fragment) => self.accept(fragment),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
