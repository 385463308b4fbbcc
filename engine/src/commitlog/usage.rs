//! Per-segment bookkeeping: which tables are dirty in a segment, the gc-clock time of each
//! table's first append (`min_gc_time`, R2.15), and the flush requests that follow from the
//! commitlog's size and age limits (R3.5 items 2–3).
//!
//! Thread-safety: plain data, guarded by the commitlog's state mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use talus_format::{GcTime, TableId};

/// What one live segment holds.
#[derive(Debug, Clone, Default)]
pub struct SegmentUse {
    /// Unflushed entries per table (R3.11 `_cf_dirty`).
    pub dirty: HashMap<TableId, u64>,
    /// The gc-clock time of each table's first entry (R3.11 `_cf_min_time`); kept after the table
    /// is flushed, until the segment file is gone, because replay can still bring the data back.
    pub min_gc_time: HashMap<TableId, GcTime>,
    /// When the first entry arrived (for the data-age limit).
    pub first_append: Option<Instant>,
    /// Sealed and synced: no more entries will arrive.
    pub closed: bool,
    /// A recycle or delete of the file is under way.
    pub disposing: bool,
}

impl SegmentUse {
    /// Records an entry touching `tables`. The clocks are read only for a first append.
    pub fn record(&mut self, tables: &[TableId]) {
        for &table in tables {
            *self.dirty.entry(table).or_default() += 1;
            self.min_gc_time.entry(table).or_insert_with(GcTime::now);
        }
        self.first_append.get_or_insert_with(Instant::now);
    }

    /// Marks `count` entries of `table` flushed.
    pub fn clean(&mut self, table: TableId, count: u64) {
        if let Some(dirty) = self.dirty.get_mut(&table) {
            *dirty = dirty.saturating_sub(count);
            if *dirty == 0 {
                self.dirty.remove(&table);
            }
        }
    }

    /// Closed, clean for every table and not yet being disposed of.
    pub fn disposable(&self) -> bool {
        self.closed && self.dirty.is_empty() && !self.disposing
    }
}

/// `min_gc_time(table)`: the earliest first-append time of `table` over the live segments, or
/// `GcTime::MAX` if none holds it (R2.15).
pub fn min_gc_time(segments: &BTreeMap<u64, SegmentUse>, table: TableId) -> GcTime {
    segments.values().filter_map(|s| s.min_gc_time.get(&table)).copied().min().unwrap_or(GcTime::MAX)
}

/// The tables to flush so the commitlog stays within `max_total_bytes` and no segment holds data
/// older than `max_data_age` (R3.5): the dirty tables of the oldest segments over either limit.
pub fn tables_to_flush(
    segments: &BTreeMap<u64, SegmentUse>,
    segment_size: u64,
    max_total_bytes: u64,
    max_data_age: Duration,
    clock: Instant,
) -> BTreeSet<TableId> {
    let mut out = BTreeSet::new();
    let mut total = segments.len() as u64 * segment_size;
    for segment in segments.values() {
        let too_old = segment.first_append.is_some_and(|t| clock.saturating_duration_since(t) > max_data_age);
        if total <= max_total_bytes && !too_old {
            if segment.first_append.is_some() {
                break;
            }
            continue;
        }
        out.extend(segment.dirty.keys().copied());
        total = total.saturating_sub(segment_size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(tables: &[u128], age: Duration, clock: Instant) -> SegmentUse {
        let mut s = SegmentUse::default();
        let ids: Vec<TableId> = tables.iter().map(|&t| TableId(t)).collect();
        s.record(&ids);
        s.first_append = Some(clock.checked_sub(age).unwrap_or(clock));
        s.min_gc_time.values_mut().for_each(|t| *t = GcTime(100));
        s
    }

    #[test]
    fn min_gc_time_covers_clean_segments_until_they_are_gone() {
        // R2.15/R2.16: a flushed table still counts while its segment can be replayed.
        let clock = Instant::now();
        let mut segments = BTreeMap::new();
        let mut s1 = seg(&[1, 2], Duration::ZERO, clock);
        s1.min_gc_time.insert(TableId(1), GcTime(50));
        s1.clean(TableId(1), 1);
        assert!(!s1.dirty.contains_key(&TableId(1)));
        segments.insert(1, s1);
        segments.insert(2, seg(&[1], Duration::ZERO, clock));
        assert_eq!(min_gc_time(&segments, TableId(1)), GcTime(50));
        segments.remove(&1);
        assert_eq!(min_gc_time(&segments, TableId(1)), GcTime(100));
        assert_eq!(min_gc_time(&segments, TableId(9)), GcTime::MAX);
    }

    #[test]
    fn size_and_age_limits_request_flushes_of_the_oldest_segments() {
        let clock = Instant::now();
        let mut segments = BTreeMap::new();
        segments.insert(1, seg(&[1], Duration::from_secs(10), clock));
        segments.insert(2, seg(&[2], Duration::from_secs(5), clock));
        segments.insert(3, seg(&[3], Duration::ZERO, clock));
        let hour = Duration::from_secs(3600);
        assert!(tables_to_flush(&segments, 100, 1000, hour, clock).is_empty());
        assert_eq!(tables_to_flush(&segments, 100, 200, hour, clock), [TableId(1)].into());
        assert_eq!(tables_to_flush(&segments, 100, 100, hour, clock), [TableId(1), TableId(2)].into());
        assert_eq!(tables_to_flush(&segments, 100, 1000, Duration::from_secs(7), clock), [TableId(1)].into());
    }
}
