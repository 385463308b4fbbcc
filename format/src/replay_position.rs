//! Replay positions: where an entry sits in the commitlog (R3.1, R3.11–R3.13).
//!
//! A [`ReplayPosition`] names one commitlog entry: the segment id and the entry's offset in it.
//! Segment ids only grow (never reused, R3.7), so positions order entries in log order. SSTables
//! record the positions their data covers and the manifest records truncations as positions, so the
//! type lives in the format crate.
//!
//! Thread-safety: plain values.

use std::fmt;

/// The position of a commitlog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReplayPosition {
    /// The segment id.
    pub segment: u64,
    /// The entry's offset in the segment.
    pub offset: u32,
}

impl fmt::Display for ReplayPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}
