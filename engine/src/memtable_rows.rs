//! The rows of one memtable partition, ordered by clustering key (DESIGN §3).
//!
//! A partition holds its first row inline, then a sorted vector, and becomes a persistent B-tree
//! (`imbl::OrdMap`) once it holds more than [`SMALL_ROWS`] rows. Why: most partitions of a
//! key-value workload hold one row, and a B-tree node is a fixed array of 16 entries (kilobytes
//! for one row), allocated and zeroed per partition; the inline row costs no allocation and a
//! vector holds exactly its rows. A wide partition keeps the B-tree's
//! O(1) copy and O(log n) write, which is what the copy-on-write versions of the memtable need.
//!
//! Rows of the vector and B-tree forms sit behind `Arc`s: copying a B-tree node on a write (the
//! persistent map copies the nodes on the path to the changed row, 16 entries each) then costs a
//! reference count per entry, not a copy of each row's cells. The single row is held inline: a
//! partition of one row then costs no allocation beyond its cells, on the write and again when the
//! memtable is dropped after its flush (one `Arc` per partition is a tenth of them).
//!
//! Invariants: the vector is sorted by key with no duplicates; a map never shrinks back into a
//! vector (a partition that was wide tends to stay wide).
//!
//! Thread-safety: a plain value; the memtable publishes it inside an immutable version.

use std::ops::Bound;
use std::sync::Arc;

use talus_format::{ClusteringPrefix, Row};

/// Rows a partition holds in its vector form before it turns into a B-tree.
pub const SMALL_ROWS: usize = 8;

/// The rows of a partition by clustering key.
#[derive(Debug, Clone)]
pub enum RowMap {
    /// One row (most partitions of a key-value table), held inline, without a vector's or an
    /// `Arc`'s allocation.
    One(ClusteringPrefix, Row),
    /// Few rows (or none), sorted by key.
    Small(Vec<(ClusteringPrefix, Arc<Row>)>),
    /// Many rows: a persistent map, cheap to copy.
    Large(imbl::OrdMap<ClusteringPrefix, Arc<Row>>),
}

impl Default for RowMap {
    fn default() -> Self {
        RowMap::Small(Vec::new())
    }
}

impl RowMap {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            RowMap::One(..) => 1,
            RowMap::Small(rows) => rows.len(),
            RowMap::Large(map) => map.len(),
        }
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row at `key`.
    pub fn get(&self, key: &ClusteringPrefix) -> Option<&Row> {
        match self {
            RowMap::One(k, row) => (k == key).then_some(row),
            RowMap::Small(rows) => rows.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| &*rows[i].1),
            RowMap::Large(map) => map.get(key).map(|r| &**r),
        }
    }

    /// Sets the row at `key`.
    pub fn insert(&mut self, key: ClusteringPrefix, row: Row) {
        match self {
            RowMap::Small(rows) if rows.is_empty() => *self = RowMap::One(key, row),
            RowMap::One(k, r) if *k == key => *r = row,
            RowMap::One(..) => {
                if let RowMap::One(old_key, old_row) = std::mem::take(self) {
                    let (old, new) = ((old_key, Arc::new(old_row)), (key, Arc::new(row)));
                    let pair = if old.0 < new.0 { vec![old, new] } else { vec![new, old] };
                    *self = RowMap::Small(pair);
                }
            }
            RowMap::Small(rows) => match rows.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => rows[i].1 = Arc::new(row),
                Err(_) if rows.len() >= SMALL_ROWS => {
                    let mut map: imbl::OrdMap<ClusteringPrefix, Arc<Row>> = std::mem::take(rows).into_iter().collect();
                    map.insert(key, Arc::new(row));
                    *self = RowMap::Large(map);
                }
                Err(i) => rows.insert(i, (key, Arc::new(row))),
            },
            RowMap::Large(map) => {
                map.insert(key, Arc::new(row));
            }
        }
    }

    /// Removes the row at `key`, if any.
    pub fn remove(&mut self, key: &ClusteringPrefix) {
        match self {
            RowMap::One(k, _) if k == key => *self = RowMap::default(),
            RowMap::One(..) => {}
            RowMap::Small(rows) => {
                if let Ok(i) = rows.binary_search_by(|(k, _)| k.cmp(key)) {
                    rows.remove(i);
                }
            }
            RowMap::Large(map) => {
                map.remove(key);
            }
        }
    }

    /// Keeps the rows for which `keep` returns true; `keep` may change them.
    pub fn retain(&mut self, mut keep: impl FnMut(&ClusteringPrefix, &mut Row) -> bool) {
        match self {
            RowMap::One(k, row) => {
                if !keep(k, row) {
                    *self = RowMap::default();
                }
            }
            RowMap::Small(rows) => rows.retain_mut(|(k, row)| keep(k, Arc::make_mut(row))),
            RowMap::Large(map) => {
                *map = std::mem::take(map)
                    .into_iter()
                    .filter_map(|(k, mut row)| keep(&k, Arc::make_mut(&mut row)).then_some((k, row)))
                    .collect();
            }
        }
    }

    /// The rows in key order.
    pub fn iter(&self) -> Rows<'_> {
        self.from(Bound::Unbounded)
    }

    /// The rows at or after (`Included`) or after (`Excluded`) `lower`, in key order.
    pub fn from(&self, lower: Bound<&ClusteringPrefix>) -> Rows<'_> {
        let after = |k: &ClusteringPrefix| match lower {
            Bound::Unbounded => true,
            Bound::Included(key) => k >= key,
            Bound::Excluded(key) => k > key,
        };
        match self {
            RowMap::One(k, row) => Rows::One(after(k).then_some((k, row))),
            RowMap::Small(rows) => {
                let start = rows.partition_point(|(k, _)| !after(k));
                Rows::Small(rows[start..].iter())
            }
            RowMap::Large(map) => Rows::Large(map.range::<_, ClusteringPrefix>((lower, Bound::Unbounded))),
        }
    }
}

impl FromIterator<(ClusteringPrefix, Row)> for RowMap {
    fn from_iter<I: IntoIterator<Item = (ClusteringPrefix, Row)>>(iter: I) -> Self {
        let mut map = RowMap::default();
        for (key, row) in iter {
            map.insert(key, row);
        }
        map
    }
}

/// An iterator over rows of a [`RowMap`] in key order.
pub enum Rows<'a> {
    /// Over the single row (`None` once it was returned or when it is before the lower bound).
    One(Option<(&'a ClusteringPrefix, &'a Row)>),
    /// Over the vector form.
    Small(std::slice::Iter<'a, (ClusteringPrefix, Arc<Row>)>),
    /// Over the map form.
    Large(imbl::ordmap::RangedIter<'a, ClusteringPrefix, Arc<Row>, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for Rows<'a> {
    type Item = (&'a ClusteringPrefix, &'a Row);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::One(one) => one.take(),
            Rows::Small(iter) => iter.next().map(|(k, r)| (k, &**r)),
            Rows::Large(iter) => iter.next().map(|(k, r)| (k, &**r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use talus_format::{GcTime, RowTombstone, Timestamp, Tombstone};

    fn key(i: u8) -> ClusteringPrefix {
        ClusteringPrefix::from_encoded(bytes::Bytes::copy_from_slice(&[i]), 1)
    }

    /// A row told apart by its tombstone's timestamp.
    fn row(ts: i64) -> Row {
        Row { tombstone: RowTombstone::regular(Tombstone::new(Timestamp(ts), GcTime(1))), ..Row::default() }
    }

    /// Both forms answer alike: inserts in random order, replacements, removals, range reads,
    /// across the switch from vector to map.
    #[test]
    fn vector_and_map_forms_agree_with_a_btreemap() {
        let mut model = std::collections::BTreeMap::new();
        let mut rows = RowMap::default();
        let mut x = 7u32;
        for step in 0..400 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let k = ((x >> 16) % 24) as u8;
            if step % 5 == 4 {
                model.remove(&k);
                rows.remove(&key(k));
            } else {
                model.insert(k, step);
                rows.insert(key(k), row(step));
            }
            assert_eq!(rows.len(), model.len());
            let from = ((x >> 8) % 26) as u8;
            let got: Vec<ClusteringPrefix> = rows.from(Bound::Excluded(&key(from))).map(|(k, _)| k.clone()).collect();
            let want: Vec<ClusteringPrefix> = model.range(from + 1..).map(|(&k, _)| key(k)).collect();
            assert_eq!(got, want, "step {step}");
            for (&k, &ts) in &model {
                assert_eq!(rows.get(&key(k)), Some(&row(ts)));
            }
        }
        assert!(matches!(rows, RowMap::Large(_)), "24 keys exceed the vector form");
        let mut one = RowMap::default();
        one.insert(key(5), row(1));
        assert!(matches!(one, RowMap::One(..)));
        one.insert(key(3), row(2));
        assert_eq!(one.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![key(3), key(5)]);
        one.remove(&key(3));
        one.remove(&key(5));
        assert!(one.is_empty());
        rows.retain(|_, r| r.tombstone.max().timestamp.0 % 2 == 0);
        model.retain(|_, ts| *ts % 2 == 0);
        assert_eq!(rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), model.keys().map(|&k| key(k)).collect::<Vec<_>>());
    }
}
