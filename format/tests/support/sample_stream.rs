//! A deterministic generator of valid fragment streams with every kind of cell, marker, row
//! tombstone, static row and range tombstone, shared by the sstable test files.

use bytes::Bytes;
use talus_format::{
    Cell, Cells, ClusteringPrefix, ColumnId, Fragment, GcTime, PartitionKey, Position, RangeTombstone, RangeTombstoneList, Row, RowMarker,
    RowTombstone, Timestamp, Tombstone,
};

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

pub fn prefix(k: u8) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::copy_from_slice(&[k]), 1)
}

pub fn tomb(ts: i64, dt: i64) -> Tombstone {
    Tombstone::new(Timestamp(ts), GcTime(dt))
}

pub fn cell(rng: &mut Rng) -> Cell {
    let timestamp = Timestamp(1 + rng.below(100) as i64);
    match rng.below(4) {
        0 => Cell::Dead { timestamp, deletion_time: GcTime(rng.below(50) as i64) },
        1 => Cell::Expiring { timestamp, value: Bytes::from(vec![7; rng.below(6) as usize]), expiry: GcTime(100), ttl: 10 },
        _ => Cell::Live { timestamp, value: Bytes::from(vec![b'v'; rng.below(12) as usize]) },
    }
}

pub fn row(rng: &mut Rng) -> Row {
    let tombstone = match rng.below(5) {
        0 => RowTombstone::regular(tomb(1 + rng.below(50) as i64, 3)),
        1 => RowTombstone::shadowable(tomb(1 + rng.below(50) as i64, 4)),
        _ => RowTombstone::default(),
    };
    let marker = match rng.below(5) {
        0 => RowMarker::Missing,
        1 => RowMarker::Expiring { timestamp: Timestamp(5), ttl: 10, expiry: GcTime(60) },
        2 => RowMarker::Dead { timestamp: Timestamp(6), deletion_time: GcTime(7) },
        _ => RowMarker::Live { timestamp: Timestamp(1 + rng.below(100) as i64) },
    };
    let cells = (0..rng.below(3)).map(|c| (ColumnId(c as u32 * 150), cell(rng))).collect();
    Row { tombstone, marker, cells }
}

/// A valid stream with static rows, range tombstones and every kind of cell, marker and tombstone.
pub fn sample_stream(seed: u64, partitions: usize, max_rows: u64) -> Vec<Fragment> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut keys: Vec<_> =
        (0..partitions).map(|i| PartitionKey::from_legacy_bytes(Bytes::from(format!("k{seed}.{i}").into_bytes())).decorate()).collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let tombstone = if rng.below(3) == 0 { tomb(1 + rng.below(30) as i64, 2) } else { Tombstone::NONE };
        out.push(Fragment::PartitionStart { key, tombstone });
        if rng.below(2) == 0 {
            out.push(Fragment::StaticRow([(ColumnId(9), cell(&mut rng))].into_iter().collect::<Cells>()));
        }
        let mut list = RangeTombstoneList::new();
        for _ in 0..rng.below(4) {
            let a = rng.below(200) as u8;
            list.insert(&RangeTombstone {
                start: Position::before_key(prefix(a)),
                end: Position::after_key(prefix(a.saturating_add(1 + rng.below(40) as u8))),
                tombstone: tomb(1 + rng.below(90) as i64, 5),
            });
        }
        let mut keys: Vec<u8> = (0..rng.below(max_rows + 1)).map(|_| rng.below(250) as u8).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut items: Vec<Fragment> = keys.into_iter().map(|k| Fragment::Row { key: prefix(k), row: row(&mut rng) }).collect();
        items.extend(list.changes().iter().cloned().map(Fragment::RangeTombstoneChange));
        items.sort_by_key(|f| f.position());
        out.extend(items);
        out.push(Fragment::PartitionEnd);
    }
    out
}
