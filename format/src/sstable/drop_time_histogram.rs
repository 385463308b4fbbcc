//! The tombstone drop-time histogram of sstable statistics (R2.28, R4.18): a streaming histogram
//! in the spirit of Cassandra's `StreamingTombstoneHistogram` (Ben-Haim & Tom-Tov), keyed by gc-clock
//! seconds (tombstone deletion times and expiring data's expiry).
//!
//! Invariants (checked by the decoder, kept by every method):
//!
//! - at most [`DropTimeHistogram::max_bins`] bins, `1 <= max_bins <= MAX_BINS`;
//! - bin points strictly increasing, every count non-zero;
//! - while no two bins were merged, every bin is one exact point and
//!   [`DropTimeHistogram::count_at_or_before`] is exact.
//!
//! When an update would exceed `max_bins`, the two bins whose points are nearest (the leftmost pair
//! on a tie) are merged into one at their count-weighted mean point, rounded towards the lower
//! point, so the merged point lies in `[left, right)` and the points stay strictly increasing.
//! Every operation is deterministic: equal inputs in equal order give equal histograms. Counts
//! saturate at `u64::MAX`.
//!
//! Thread-safety: plain data (`Send + Sync`); mutation needs `&mut`.

use crate::error::Result;
use crate::mutation_codec::{write_i64, write_varint, Reader};
use crate::time::GcTime;

/// The default (and Cassandra's) number of bins.
pub const DEFAULT_MAX_BINS: usize = 100;
/// The largest accepted `max_bins` (decoding rejects more).
pub const MAX_BINS: usize = 4096;

/// Smallest encoding of one bin: point i64 (8) + count varint (1).
const MIN_BIN_BYTES: usize = 9;

/// A bounded streaming histogram of gc-clock points (R2.28).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DropTimeHistogram {
    max_bins: usize,
    /// `(point, count)`, points strictly increasing, counts non-zero.
    bins: Vec<(i64, u64)>,
}

impl Default for DropTimeHistogram {
    fn default() -> Self {
        DropTimeHistogram::new()
    }
}

impl DropTimeHistogram {
    /// An empty histogram with [`DEFAULT_MAX_BINS`] bins.
    pub fn new() -> DropTimeHistogram {
        DropTimeHistogram::with_max_bins(DEFAULT_MAX_BINS)
    }

    /// An empty histogram with at most `max_bins` bins (clamped to `1..=MAX_BINS`).
    pub fn with_max_bins(max_bins: usize) -> DropTimeHistogram {
        DropTimeHistogram { max_bins: max_bins.clamp(1, MAX_BINS), bins: Vec::new() }
    }

    /// The bin limit.
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }

    /// The bins `(point in gc-clock seconds, count)`, points strictly increasing.
    pub fn bins(&self) -> &[(i64, u64)] {
        &self.bins
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The number of recorded points (saturating).
    pub fn total(&self) -> u64 {
        self.bins.iter().fold(0u64, |sum, &(_, count)| sum.saturating_add(count))
    }

    /// Records one point.
    pub fn update(&mut self, point: GcTime) {
        self.add(point.0, 1);
    }

    /// Records `count` occurrences of `point` (nothing when `count == 0`).
    pub fn add(&mut self, point: i64, count: u64) {
        if count == 0 {
            return;
        }
        match self.bins.binary_search_by_key(&point, |&(p, _)| p) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(count),
            Err(i) => {
                self.bins.insert(i, (point, count));
                self.shrink();
            }
        }
    }

    /// Adds every bin of `other` (keeping `self`'s bin limit), then merges nearest bins down to
    /// the limit.
    pub fn merge(&mut self, other: &DropTimeHistogram) {
        if other.bins.is_empty() {
            return;
        }
        let mut merged = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x.0 == y.0 => {
                    a.next();
                    b.next();
                    (x.0, x.1.saturating_add(y.1))
                }
                (Some(&&x), Some(&&y)) if x.0 < y.0 => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.bins = merged;
        self.shrink();
    }

    /// Estimated number of recorded points `<= time`: the counts of every bin whose point is at or
    /// before `time`. Exact while no bins were merged. For R2.8's strict `deletion_time <
    /// gc_before` (the droppable-tombstone estimate), use [`DropTimeHistogram::count_before`].
    pub fn count_at_or_before(&self, time: GcTime) -> u64 {
        let end = self.bins.partition_point(|&(p, _)| p <= time.0);
        self.bins[..end].iter().fold(0u64, |sum, &(_, count)| sum.saturating_add(count))
    }

    /// Estimated number of recorded points `< gc_before`: the droppable tombstones of R2.28.
    pub fn count_before(&self, gc_before: GcTime) -> u64 {
        match gc_before.0.checked_sub(1) {
            Some(t) => self.count_at_or_before(GcTime(t)),
            None => 0,
        }
    }

    /// Merges nearest neighbours until the bin limit holds.
    fn shrink(&mut self) {
        while self.bins.len() > self.max_bins {
            // Nearest pair; the leftmost wins ties so the result is deterministic.
            let mut best = 0;
            let mut best_gap = u128::MAX;
            for (i, pair) in self.bins.windows(2).enumerate() {
                let gap = gap(pair[0].0, pair[1].0);
                if gap < best_gap {
                    best_gap = gap;
                    best = i;
                }
            }
            let (p1, c1) = self.bins[best];
            let (p2, c2) = self.bins.remove(best + 1);
            self.bins[best] = (weighted_point(p1, c1, p2, c2), c1.saturating_add(c2));
        }
    }

    /// Appends the encoding: `max_bins varint | bin count varint | bins × (point i64 | count varint)`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.max_bins as u64);
        write_varint(out, self.bins.len() as u64);
        for &(point, count) in &self.bins {
            write_i64(out, point);
            write_varint(out, count);
        }
    }

    /// Reads what [`DropTimeHistogram::encode`] wrote, checking every invariant.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<DropTimeHistogram> {
        let at = r.pos;
        let max_bins = r.varint("histogram bin limit")?;
        let max_bins = match usize::try_from(max_bins) {
            Ok(n) if (1..=MAX_BINS).contains(&n) => n,
            _ => return Err(r.corrupt(at, format!("histogram bin limit {max_bins} outside 1..={MAX_BINS}"))),
        };
        let at = r.pos;
        let n = r.count("histogram bin", MIN_BIN_BYTES)?;
        if n > max_bins {
            return Err(r.corrupt(at, format!("{n} histogram bins over the limit of {max_bins}")));
        }
        let mut bins = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let point = r.i64("histogram point")?;
            if bins.last().is_some_and(|&(last, _)| last >= point) {
                return Err(r.corrupt(at, "histogram points not strictly increasing"));
            }
            let at = r.pos;
            let count = r.varint("histogram count")?;
            if count == 0 {
                return Err(r.corrupt(at, "histogram bin with a zero count"));
            }
            bins.push((point, count));
        }
        Ok(DropTimeHistogram { max_bins, bins })
    }
}

/// `b - a` for `a < b`, without overflow.
fn gap(a: i64, b: i64) -> u128 {
    (i128::from(b) - i128::from(a)).unsigned_abs()
}

/// The count-weighted mean of `p1 < p2`, rounded down: always in `[p1, p2)` because `c1 >= 1`.
fn weighted_point(p1: i64, c1: u64, p2: i64, c2: u64) -> i64 {
    let offset = gap(p1, p2) * u128::from(c2) / (u128::from(c1) + u128::from(c2));
    // offset < p2 - p1, so p1 + offset fits i64.
    i64::try_from(i128::from(p1) + offset as i128).unwrap_or(p1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_point_stays_between_neighbours() {
        assert_eq!(weighted_point(0, 1, 10, 1), 5);
        assert_eq!(weighted_point(0, 3, 10, 1), 2);
        assert_eq!(weighted_point(i64::MIN, 1, i64::MAX, u64::MAX), i64::MAX - 1);
        assert_eq!(weighted_point(i64::MIN, u64::MAX, i64::MAX, 1), i64::MIN);
        assert_eq!(weighted_point(4, 1, 5, 1), 4);
    }
}
