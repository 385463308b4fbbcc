//! SSTable statistics (`talus_format::sstable::statistics`, docs/format.md "SSTable statistics"):
//! the collector over a hand-written fragment stream, the drop-time histogram, round trips over
//! arbitrary valid statistics, a golden vector, robustness against truncation, bit flips and random
//! bytes, and the stored fuzz corpus (`fuzz/corpus/sstable_statistics`).

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use talus_format::sstable::drop_time_histogram::DropTimeHistogram;
use talus_format::sstable::statistics::{
    check_decode, CommitlogInterval, Counts, SstableOrigin, Statistics, StatisticsCollector, STATISTICS_FORMAT_VERSION,
};
use talus_format::{
    Cell, Cells, ClusteringPrefix, ColumnId, DecoratedKey, Error, Fragment, GcTime, PartitionKey, Position, RangeTombstoneChange,
    ReplayPosition, Row, RowMarker, RowTombstone, StreamValidator, TableId, Timestamp, Tombstone,
};

const TARGET: &str = "sstable_statistics";

fn encode(s: &Statistics) -> Vec<u8> {
    let mut out = Vec::new();
    s.encode(&mut out);
    out
}

fn dk(bytes: &[u8]) -> DecoratedKey {
    PartitionKey::from_legacy_bytes(Bytes::copy_from_slice(bytes)).decorate()
}

fn ck(n: u8) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::copy_from_slice(&[n]), 1)
}

fn tomb(ts: i64, dt: i64) -> Tombstone {
    Tombstone::new(Timestamp(ts), GcTime(dt))
}

fn live(ts: i64) -> Cell {
    Cell::Live { timestamp: Timestamp(ts), value: Bytes::from_static(b"v") }
}

fn assert_corrupt(bytes: &[u8], what: &str) {
    match Statistics::decode(bytes) {
        Err(Error::Corrupt { structure: "sstable statistics", offset, .. }) => assert!(offset <= bytes.len(), "{what}: offset {offset}"),
        other => panic!("{what}: expected a corruption error, got {other:?}"),
    }
}

/// Two partitions with every kind of item; the expected values are worked out by hand below.
fn stream() -> Vec<Fragment> {
    let (mut a, mut b) = (dk(b"alpha"), dk(b"beta"));
    if b < a {
        std::mem::swap(&mut a, &mut b);
    }
    let row = |tombstone, marker, cells: Vec<(u32, Cell)>| Row {
        tombstone,
        marker,
        cells: cells.into_iter().map(|(c, cell)| (ColumnId(c), cell)).collect(),
    };
    vec![
        Fragment::PartitionStart { key: a, tombstone: tomb(100, 1000) },
        Fragment::StaticRow([(ColumnId(9), live(50))].into_iter().collect::<Cells>()),
        Fragment::Row {
            key: ck(1),
            row: row(
                RowTombstone::default(),
                RowMarker::Live { timestamp: Timestamp(60) },
                vec![
                    (0, Cell::Dead { timestamp: Timestamp(70), deletion_time: GcTime(1100) }),
                    (1, Cell::Expiring { timestamp: Timestamp(80), value: Bytes::new(), expiry: GcTime(2000), ttl: 100 }),
                ],
            ),
        },
        Fragment::RangeTombstoneChange(RangeTombstoneChange { position: Position::before_key(ck(2)), tombstone: tomb(90, 1200) }),
        Fragment::Row { key: ck(2), row: row(RowTombstone::regular(tomb(95, 1300)), RowMarker::Missing, vec![(0, live(96))]) },
        Fragment::RangeTombstoneChange(RangeTombstoneChange { position: Position::after_key(ck(2)), tombstone: Tombstone::NONE }),
        Fragment::PartitionEnd,
        Fragment::PartitionStart { key: b, tombstone: Tombstone::NONE },
        Fragment::Row {
            key: ck(1),
            row: row(
                RowTombstone::shadowable(tomb(40, 900)),
                RowMarker::Expiring { timestamp: Timestamp(45), ttl: 10, expiry: GcTime(1500) },
                vec![(3, live(30))],
            ),
        },
        Fragment::Row {
            key: ck(3),
            row: row(RowTombstone::default(), RowMarker::Dead { timestamp: Timestamp(20), deletion_time: GcTime(950) }, vec![]),
        },
        Fragment::PartitionEnd,
    ]
}

fn collected() -> Statistics {
    let mut validator = StreamValidator::new();
    let mut collector = StatisticsCollector::new(SstableOrigin::Flush, TableId(7));
    for f in stream() {
        validator.check(&f).unwrap();
        collector.observe(&f);
    }
    validator.finish().unwrap();
    collector.finish()
}

#[test]
fn collector_counts_and_bounds() {
    let s = collected();
    let (first, last) = {
        let (a, b) = (dk(b"alpha"), dk(b"beta"));
        if a < b {
            (a, b)
        } else {
            (b, a)
        }
    };
    assert_eq!(s.origin, SstableOrigin::Flush);
    assert_eq!(s.table, TableId(7));
    assert_eq!((s.first_key.as_ref(), s.last_key.as_ref()), (Some(&first), Some(&last)));
    let counts = Counts {
        partitions: 2,
        rows: 4,
        partition_tombstones: 1,
        range_tombstones: 1,
        row_tombstones: 2,
        cell_tombstones: 1,
        expiring_cells: 1,
    };
    assert_eq!(s.counts, counts);
    // Every timestamp: 100 50 60 70 80 90 95 96 | 40 45 30 20.
    assert_eq!((s.min_timestamp, s.max_timestamp), (Timestamp(20), Timestamp(100)));
    // Live (and expiring) cells and markers: 50 60 80 96 30 | markers 60 45.
    assert_eq!(s.min_live_timestamp, Timestamp(30));
    assert_eq!(s.min_live_row_marker_timestamp, Timestamp(45));
    // Tombstones 1000 1100 1200 1300 900 950, expiry 2000 1500; live non-TTL data makes max "never".
    assert_eq!((s.min_deletion_time, s.max_deletion_time), (GcTime(900), GcTime::MAX));
    let expected: Vec<(i64, u64)> = [900, 950, 1000, 1100, 1200, 1300, 1500, 2000].iter().map(|&p| (p, 1)).collect();
    assert_eq!(s.drop_times.bins(), expected.as_slice());
    assert_eq!(s.drop_times.count_at_or_before(GcTime(1200)), 5);
    assert_eq!(s.drop_times.count_before(GcTime(1200)), 4);
    assert_eq!((s.commitlog_interval, s.level, s.run_id, s.data_size), (None, 0, 0, 0));
    assert!(s.may_contain_key(&first) && s.may_contain_key(&last));
    let other = dk(b"gamma");
    assert_eq!(s.may_contain_key(&other), first <= other && other <= last);
    assert_eq!(Statistics::decode(&encode(&s)).unwrap(), s);
}

#[test]
fn tombstone_only_sstable_has_a_finite_max_deletion_time() {
    let mut c = StatisticsCollector::new(SstableOrigin::Compaction, TableId(1));
    for f in [Fragment::PartitionStart { key: dk(b"k"), tombstone: tomb(5, 77) }, Fragment::PartitionEnd] {
        c.observe(&f);
    }
    let s = c.finish();
    assert_eq!((s.min_deletion_time, s.max_deletion_time), (GcTime(77), GcTime(77)));
    assert_eq!((s.min_timestamp, s.max_timestamp, s.min_live_timestamp), (Timestamp(5), Timestamp(5), Timestamp::MAX));
    assert_eq!(Statistics::decode(&encode(&s)).unwrap(), s);
}

#[test]
fn empty_stream_gives_empty_statistics() {
    let s = StatisticsCollector::new(SstableOrigin::Ingest, TableId(3)).finish();
    assert_eq!(s, Statistics::empty(SstableOrigin::Ingest, TableId(3)));
    assert!(s.first_key.is_none() && s.last_key.is_none() && s.drop_times.is_empty());
    assert_eq!((s.min_timestamp, s.max_timestamp), (Timestamp::MAX, Timestamp::MISSING));
    assert_eq!((s.min_deletion_time, s.max_deletion_time), (GcTime::MAX, GcTime::MIN));
    assert!(!s.may_contain_key(&dk(b"x")));
    assert_eq!(Statistics::decode(&encode(&s)).unwrap(), s);
}

/// The golden vector of docs/format.md, "SSTable statistics".
#[test]
fn golden_vector() {
    let mut c = StatisticsCollector::new(SstableOrigin::Flush, TableId(1));
    let row = Row { marker: RowMarker::Live { timestamp: Timestamp(3) }, ..Row::default() };
    for f in [Fragment::PartitionStart { key: dk(b"k"), tombstone: tomb(5, 6) }, Fragment::Row { key: ck(1), row }, Fragment::PartitionEnd]
    {
        c.observe(&f);
    }
    let mut s = c.finish();
    s.level = 1;
    s.run_id = 2;
    s.data_size = 300;
    s.commitlog_interval =
        Some(CommitlogInterval { start: ReplayPosition { segment: 4, offset: 16 }, end: ReplayPosition { segment: 5, offset: 0 } });
    let hex: String = encode(&s).iter().map(|b| format!("{b:02x}")).collect();
    let expected = concat!(
        "01",                               // version
        "00",                               // origin: flush
        "01000000000000000000000000000000", // table id
        "01",                               // level
        "0200000000000000",                 // run id
        "0000000000000000",                 // created at 0
        "ac02",                             // data size 300
        "01010100000000",                   // counts: partitions rows ptombs rts row_tombs cell_tombs expiring
        "01016b016b",                       // key range: first "k", last "k"
        "0300000000000000",                 // min timestamp 3
        "0500000000000000",                 // max timestamp 5
        "0300000000000000",                 // min live timestamp 3
        "0300000000000000",                 // min live row marker timestamp 3
        "0600000000000000",                 // min deletion time 6
        "ffffffffffffff7f",                 // max deletion time: never (live marker)
        "01",                               // commitlog interval present
        "0400000000000000",
        "10000000", // start 4:16
        "0500000000000000",
        "00000000", // end 5:0
        "64",       // histogram: 100 bins max
        "01",       // 1 bin
        "0600000000000000",
        "01", // point 6, count 1
    );
    assert_eq!(hex, expected);
    assert_eq!(Statistics::decode(&encode(&s)).unwrap(), s);
}

// ---- the drop-time histogram --------------------------------------------------------------------

#[test]
fn histogram_is_exact_until_full() {
    let mut h = DropTimeHistogram::new();
    let points: Vec<i64> = (0..100).map(|i| (i * 37) % 101 - 50).collect();
    for &p in points.iter().chain(points.iter().take(10)) {
        h.update(GcTime(p));
    }
    assert_eq!(h.bins().len(), 100);
    for t in -60..60 {
        let exact = points.iter().chain(points.iter().take(10)).filter(|&&p| p <= t).count() as u64;
        assert_eq!(h.count_at_or_before(GcTime(t)), exact, "t = {t}");
    }
    assert_eq!(h.count_before(GcTime(i64::MIN)), 0);
    assert_eq!(h.count_at_or_before(GcTime::MAX), 110);
}

#[test]
fn histogram_merges_the_nearest_bins() {
    let mut h = DropTimeHistogram::with_max_bins(3);
    for p in [0, 10, 11, 100] {
        h.update(GcTime(p));
    }
    // 10 and 11 were nearest: merged at their mean, rounded down.
    assert_eq!(h.bins(), &[(0, 1), (10, 2), (100, 1)]);
    h.update(GcTime(12));
    // Now 10 (x2) and 12 are nearest (gap 2): weighted mean 10 + 2*1/3 = 10.
    assert_eq!(h.bins(), &[(0, 1), (10, 3), (100, 1)]);
    h.update(GcTime(50));
    // Gaps 10, 40, 50: 0 and 10 merge at 0 + 10*3/4 = 7.
    assert_eq!(h.bins(), &[(7, 4), (50, 1), (100, 1)]);
    assert_eq!(h.total(), 6);

    // Equal gaps: the leftmost pair is merged.
    let mut tie = DropTimeHistogram::with_max_bins(2);
    for p in [0, 4, 8] {
        tie.update(GcTime(p));
    }
    assert_eq!(tie.bins(), &[(2, 2), (8, 1)]);
}

#[test]
fn histogram_merge_adds_counts_and_keeps_the_own_limit() {
    let mut a = DropTimeHistogram::with_max_bins(4);
    let mut b = DropTimeHistogram::with_max_bins(100);
    for p in [1, 2, 3] {
        a.update(GcTime(p));
    }
    for p in [3, 4, 1000, 2000] {
        b.update(GcTime(p));
    }
    let mut sequential = a.clone();
    for p in [3, 4, 1000, 2000] {
        sequential.update(GcTime(p));
    }
    a.merge(&b);
    assert_eq!(a.max_bins(), 4);
    assert_eq!(a.total(), 7);
    assert_eq!(a.bins().len(), 4);
    // Merging all bins at once may differ from one-by-one updates only once bins merge; here the
    // outcome is the same: [1,2,3,3,4] collapse to the low end.
    assert_eq!(a.total(), sequential.total());
    assert_eq!(a.bins().last(), Some(&(2000, 1)));
    let empty = DropTimeHistogram::new();
    let before = a.clone();
    a.merge(&empty);
    assert_eq!(a, before);
    assert_eq!(DropTimeHistogram::with_max_bins(0).max_bins(), 1);
}

proptest! {
    #[test]
    fn histogram_invariants(max_bins in 1usize..12, points in vec(prop_oneof![0i64..50, any::<i64>()], 0..200), split in 0usize..200) {
        let mut h = DropTimeHistogram::with_max_bins(max_bins);
        for &p in &points {
            h.update(GcTime(p));
        }
        let bins = h.bins();
        prop_assert!(bins.len() <= max_bins);
        prop_assert!(bins.windows(2).all(|w| w[0].0 < w[1].0));
        prop_assert!(bins.iter().all(|&(_, c)| c > 0));
        prop_assert_eq!(h.total(), points.len() as u64);
        if let (Some(lo), Some(hi)) = (points.iter().min(), points.iter().max()) {
            prop_assert!(bins[0].0 >= *lo && bins[bins.len() - 1].0 <= *hi);
            prop_assert_eq!(h.count_before(GcTime(*lo)), 0);
            prop_assert_eq!(h.count_at_or_before(GcTime(*hi)), points.len() as u64);
        }
        // Deterministic.
        let mut again = DropTimeHistogram::with_max_bins(max_bins);
        points.iter().for_each(|&p| again.update(GcTime(p)));
        prop_assert_eq!(&again, &h);
        // Merge of two halves keeps every invariant and the total.
        let split = split.min(points.len());
        let (mut left, mut right) = (DropTimeHistogram::with_max_bins(max_bins), DropTimeHistogram::with_max_bins(max_bins));
        points[..split].iter().for_each(|&p| left.update(GcTime(p)));
        points[split..].iter().for_each(|&p| right.update(GcTime(p)));
        left.merge(&right);
        prop_assert!(left.bins().len() <= max_bins && left.bins().windows(2).all(|w| w[0].0 < w[1].0));
        prop_assert_eq!(left.total(), points.len() as u64);
        if points.iter().collect::<std::collections::BTreeSet<_>>().len() <= max_bins {
            prop_assert_eq!(&left, &h);
        }
    }
}

// ---- round trips and robustness -----------------------------------------------------------------

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -3i64..1_000, 1 => any::<i64>(), 1 => prop_oneof![Just(i64::MIN), Just(i64::MAX)]]
}

prop_compose! {
    fn arb_statistics()(
        origin in prop_oneof![Just(SstableOrigin::Flush), Just(SstableOrigin::Compaction), Just(SstableOrigin::Ingest)],
        table in any::<u128>(),
        level in any::<u32>(),
        run_id in any::<u64>(),
        data_size in any::<u64>(),
        counts in vec(prop_oneof![0u64..3, any::<u64>()], 7),
        keys in (vec(any::<u8>(), 0..12), vec(any::<u8>(), 0..12)),
        timestamps in prop::option::of(([arb_i64(), arb_i64(), arb_i64(), arb_i64()], 0u8..3)),
        deletion in prop::option::of((arb_i64(), arb_i64(), 1usize..8, vec(any::<u64>(), 0..20))),
        interval in prop::option::of(((any::<u64>(), any::<u32>()), (any::<u64>(), any::<u32>()))),
    ) -> Statistics {
        let mut s = Statistics::empty(origin, TableId(table));
        s.level = level;
        s.run_id = run_id;
        s.data_size = data_size;
        s.counts = Counts {
            partitions: counts[0], rows: counts[1], partition_tombstones: counts[2], range_tombstones: counts[3],
            row_tombstones: counts[4], cell_tombstones: counts[5], expiring_cells: counts[6],
        };
        if s.counts.partitions > 0 {
            let (a, b) = (dk(&keys.0), dk(&keys.1));
            let (first, last) = if a <= b { (a, b) } else { (b, a) };
            s.first_key = Some(first);
            s.last_key = Some(last);
        }
        if let Some((mut ts, live)) = timestamps {
            ts.sort();
            s.min_timestamp = Timestamp(ts[0]);
            s.max_timestamp = Timestamp(ts[3]);
            if live >= 1 {
                s.min_live_timestamp = Timestamp(ts[1]);
            }
            if live >= 2 {
                s.min_live_row_marker_timestamp = Timestamp(ts[2]);
            }
        }
        if let Some((a, b, max_bins, seeds)) = deletion {
            let (lo, hi) = (a.min(b), a.max(b));
            s.min_deletion_time = GcTime(lo);
            s.max_deletion_time = GcTime(hi);
            let mut h = DropTimeHistogram::with_max_bins(max_bins);
            let span = (i128::from(hi) - i128::from(lo)) as u128 + 1;
            for seed in seeds {
                h.update(GcTime((i128::from(lo) + (u128::from(seed) % span) as i128) as i64));
            }
            s.drop_times = h;
        }
        s.commitlog_interval = interval.map(|(x, y)| {
            let (x, y) = (ReplayPosition { segment: x.0, offset: x.1 }, ReplayPosition { segment: y.0, offset: y.1 });
            CommitlogInterval { start: x.min(y), end: x.max(y) }
        });
        s
    }
}

proptest! {
    #[test]
    fn arbitrary_statistics_round_trip(s in arb_statistics()) {
        let bytes = encode(&s);
        prop_assert_eq!(Statistics::decode(&bytes), Ok(s));
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }

    #[test]
    fn random_bytes_are_corrupt_or_canonical(bytes in vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }

    #[test]
    fn random_bodies_after_a_valid_header_are_corrupt_or_canonical(origin in 0u8..4, body in vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![STATISTICS_FORMAT_VERSION, origin];
        bytes.extend_from_slice(&body);
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }

    #[test]
    fn mutated_encodings_are_corrupt_or_canonical(s in arb_statistics(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&s);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }
}

fn samples() -> Vec<Statistics> {
    let mut full = collected();
    full.level = 3;
    full.run_id = u64::MAX;
    full.data_size = 1 << 40;
    full.commitlog_interval =
        Some(CommitlogInterval { start: ReplayPosition { segment: 9, offset: 1 }, end: ReplayPosition { segment: 11, offset: 77 } });
    let mut merged = full.clone();
    let mut wide = DropTimeHistogram::with_max_bins(5);
    (0..40).for_each(|i| wide.update(GcTime(900 + i * 25)));
    merged.drop_times.merge(&wide);
    vec![Statistics::empty(SstableOrigin::Flush, TableId(0)), collected(), full, merged]
}

#[test]
fn every_truncation_is_corrupt_and_every_bit_flip_is_corrupt_or_canonical() {
    for s in samples() {
        let bytes = encode(&s);
        assert_eq!(Statistics::decode(&bytes).unwrap(), s);
        for len in 0..bytes.len() {
            assert_corrupt(&bytes[..len], &format!("cut at {len}"));
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(check_decode(&flipped), Ok(()), "bit {bit}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_corrupt(&longer, "trailing byte");
    }
}

/// Makes a valid statistics value break one decoder invariant.
type Breaker = fn(&mut Statistics);

#[test]
fn broken_invariants_are_rejected() {
    let good = samples().swap_remove(2);
    let bytes = encode(&good);

    let mut b = bytes.clone();
    b[0] = STATISTICS_FORMAT_VERSION + 1;
    assert_corrupt(&b, "version");
    let mut b = bytes.clone();
    b[1] = 3;
    assert_corrupt(&b, "origin");

    let broken: Vec<(&str, Breaker)> = vec![
        ("first key after last", |s| std::mem::swap(&mut s.first_key, &mut s.last_key)),
        ("keys without partitions", |s| s.counts.partitions = 0),
        ("partitions without keys", |s| (s.first_key, s.last_key) = (None, None)),
        ("half a key range", |s| s.last_key = None),
        ("min timestamp above max", |s| s.min_timestamp = Timestamp(s.max_timestamp.0 + 1)),
        ("min live below min", |s| s.min_live_timestamp = Timestamp(s.min_timestamp.0 - 1)),
        ("marker below min live", |s| s.min_live_row_marker_timestamp = Timestamp(s.min_live_timestamp.0 - 1)),
        ("marker above max", |s| s.min_live_row_marker_timestamp = Timestamp(s.max_timestamp.0 + 1)),
        ("min deletion above max", |s| s.max_deletion_time = GcTime(s.min_deletion_time.0 - 1)),
        ("histogram below min deletion", |s| s.min_deletion_time = GcTime(s.min_deletion_time.0 + 1)),
        ("histogram without deletion times", |s| (s.min_deletion_time, s.max_deletion_time) = (GcTime::MAX, GcTime::MIN)),
        ("interval end before start", |s| {
            if let Some(i) = &mut s.commitlog_interval {
                std::mem::swap(&mut i.start, &mut i.end);
            }
        }),
    ];
    for (what, breaker) in broken {
        let mut s = good.clone();
        breaker(&mut s);
        assert_corrupt(&encode(&s), what);
    }

    // The histogram ends the encoding: ... | 64 | 08 | 8 × (point i64 | count 01).
    let bins = good.drop_times.bins().len();
    assert_eq!(bins, 8);
    let start = bytes.len() - bins * 9;
    assert_eq!(&bytes[start - 2..start], &[100, 8]);
    let mut b = bytes.clone();
    *b.last_mut().unwrap() = 0;
    assert_corrupt(&b, "zero count");
    let mut b = bytes.clone();
    b.copy_within(start..start + 8, start + 9);
    assert_corrupt(&b, "repeated point");
    let mut b = bytes.clone();
    b[start - 2] = 7;
    assert_corrupt(&b, "more bins than the limit");
    let mut b = bytes.clone();
    b[start - 2] = 0;
    assert_corrupt(&b, "zero bin limit");
    let mut b = bytes.clone();
    b[start - 1] = 0x7f;
    assert_corrupt(&b, "bin count beyond the input");
}

/// Runs the fuzz target's check over every stored corpus file.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files(TARGET);
    for f in &files {
        assert_eq!(check_decode(f), Ok(()));
    }
    let valid = files.iter().filter(|f| Statistics::decode(f).is_ok()).count();
    assert!(files.len() >= 8 && valid >= 4, "{} corpus files, {valid} valid", files.len());
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test sstable_statistics -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let valid: Vec<Vec<u8>> = samples().iter().map(encode).collect();
    support::write_corpus(TARGET, support::seeds_from_valid(&valid), |b| assert_eq!(check_decode(b), Ok(())));
}
