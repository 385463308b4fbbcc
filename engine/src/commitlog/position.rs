//! Replay positions and the commitlog coverage of a memtable (R3.1, R3.11–R3.13).
//!
//! A [`ReplayPosition`] names one commitlog entry: the segment id and the entry's offset in it.
//! Segment ids only grow (never reused, R3.7), so positions order entries in log order. A memtable
//! keeps a [`ReplayCoverage`]: how many of its entries each segment holds and the highest position,
//! so flushing it marks exactly those entries clean (Scylla's `rp_set`) and the sstable can record
//! the interval it covers (Cassandra's commitlog intervals, R3.12).
//!
//! Thread-safety: plain values.

use std::collections::BTreeMap;

pub use talus_format::ReplayPosition;

/// The commitlog entries a memtable holds, by segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayCoverage {
    /// Entry count per segment id.
    pub entries: BTreeMap<u64, u64>,
    /// The lowest position covered, if any.
    pub min: Option<ReplayPosition>,
    /// The highest position covered, if any.
    pub max: Option<ReplayPosition>,
}

impl ReplayCoverage {
    /// Records one entry.
    pub fn add(&mut self, position: ReplayPosition) {
        *self.entries.entry(position.segment).or_default() += 1;
        self.min = Some(self.min.map_or(position, |m| m.min(position)));
        self.max = Some(self.max.map_or(position, |m| m.max(position)));
    }

    /// Whether no entry is covered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
