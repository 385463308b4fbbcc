//! Tests of the mutation encoding (`talus_format::mutation_codec`, docs/format.md "Mutation
//! encoding (commitlog entries)"): round trips over random schema-free mutations, a golden vector,
//! robustness against truncation, single-byte corruption and random bytes, and the stored fuzz
//! corpus (`fuzz/corpus/mutation_decode`, the same check the `mutation_decode` fuzz target runs).

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
mod support;

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use talus_format::mutation_codec::{decode_mutation, encode_mutation, MUTATION_FORMAT_VERSION};
use talus_format::{
    Cell, Cells, ClusteringPrefix, ColumnId, Error, GcTime, Mutation, PartitionKey, PartitionUpdate, Position, RangeTombstone, Row,
    RowMarker, RowTombstone, TableId, Timestamp, Tombstone,
};

fn encode(m: &Mutation) -> Vec<u8> {
    let mut out = Vec::new();
    encode_mutation(m, &mut out);
    out
}

/// The check the fuzz target runs: decoding never panics; a successful decode re-encodes to the
/// same bytes (the encoding is canonical) and decodes again to the same mutation; a failure is a
/// `Corrupt` error of the mutation structure with an offset inside the input.
fn check_decode(data: &[u8]) -> Option<Mutation> {
    match decode_mutation(data) {
        Ok(m) => {
            let again = encode(&m);
            assert_eq!(again, data, "re-encoding a decoded mutation changed the bytes");
            assert_eq!(decode_mutation(&again).as_ref(), Ok(&m));
            Some(m)
        }
        Err(Error::Corrupt { structure: "mutation", offset, .. }) => {
            assert!(offset <= data.len(), "offset {offset} beyond input of {} bytes", data.len());
            None
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

// ---- Arbitrary-style strategies (schema-free) ------------------------------------------------

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -3i64..1_000, 1 => any::<i64>(), 1 => prop_oneof![Just(i64::MIN), Just(i64::MAX)]]
}

fn arb_tombstone() -> impl Strategy<Value = Tombstone> {
    prop_oneof![
        1 => Just(Tombstone::NONE),
        3 => (arb_i64(), arb_i64()).prop_map(|(ts, dt)| Tombstone::new(Timestamp(ts), GcTime(dt))),
    ]
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        (arb_i64(), arb_bytes(12)).prop_map(|(ts, value)| Cell::Live { timestamp: Timestamp(ts), value }),
        (arb_i64(), arb_bytes(12), arb_i64(), any::<i32>()).prop_map(|(ts, value, e, ttl)| Cell::Expiring {
            timestamp: Timestamp(ts),
            value,
            expiry: GcTime(e),
            ttl
        }),
        (arb_i64(), arb_i64()).prop_map(|(ts, dt)| Cell::Dead { timestamp: Timestamp(ts), deletion_time: GcTime(dt) }),
    ]
}

fn arb_cells() -> impl Strategy<Value = Cells> {
    let column = prop_oneof![4 => 0u32..20, 1 => any::<u32>()];
    vec((column, arb_cell()), 0..5).prop_map(|cells| cells.into_iter().map(|(c, cell)| (ColumnId(c), cell)).collect())
}

fn arb_marker() -> impl Strategy<Value = RowMarker> {
    prop_oneof![
        Just(RowMarker::Missing),
        arb_i64().prop_map(|ts| RowMarker::Live { timestamp: Timestamp(ts) }),
        (arb_i64(), any::<i32>(), arb_i64()).prop_map(|(ts, ttl, e)| RowMarker::Expiring {
            timestamp: Timestamp(ts),
            ttl,
            expiry: GcTime(e)
        }),
        (arb_i64(), arb_i64()).prop_map(|(ts, dt)| RowMarker::Dead { timestamp: Timestamp(ts), deletion_time: GcTime(dt) }),
    ]
}

/// Row tombstones respecting `shadowable >= regular` (R1.19), with regular, shadowable and mixed forms.
fn arb_row_tombstone() -> impl Strategy<Value = RowTombstone> {
    (arb_tombstone(), arb_tombstone()).prop_map(|(a, b)| RowTombstone { regular: a.min(b), shadowable: a.max(b) })
}

fn arb_row() -> impl Strategy<Value = Row> {
    (arb_row_tombstone(), arb_marker(), arb_cells()).prop_map(|(tombstone, marker, cells)| Row { tombstone, marker, cells })
}

fn arb_prefix() -> impl Strategy<Value = ClusteringPrefix> {
    (arb_bytes(6), prop_oneof![4 => 0u16..4, 1 => any::<u16>()]).prop_map(|(b, n)| ClusteringPrefix::from_encoded(b, n))
}

fn arb_position() -> impl Strategy<Value = Position> {
    (arb_prefix(), -1i8..=1).prop_map(|(p, w)| match w {
        -1 => Position::before_key(p),
        0 => Position::at_row(p),
        _ => Position::after_key(p),
    })
}

fn arb_range_tombstone() -> impl Strategy<Value = RangeTombstone> {
    (arb_position(), arb_position(), arb_tombstone()).prop_map(|(start, end, tombstone)| RangeTombstone { start, end, tombstone })
}

/// Random mutations: any table, key, partition tombstone, static cells, rows and range tombstones.
fn arb_mutation() -> impl Strategy<Value = Mutation> {
    (any::<u128>(), arb_bytes(20), arb_tombstone(), arb_cells(), btree_map(arb_prefix(), arb_row(), 0..5), vec(arb_range_tombstone(), 0..4))
        .prop_map(|(table, key, tombstone, static_cells, rows, range_tombstones)| Mutation {
            table: TableId(table),
            key: PartitionKey::from_legacy_bytes(key).decorate(),
            update: PartitionUpdate { tombstone, static_cells, rows, range_tombstones },
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(m in arb_mutation()) {
        let bytes = encode(&m);
        prop_assert_eq!(bytes[0], MUTATION_FORMAT_VERSION);
        prop_assert_eq!(decode_mutation(&bytes), Ok(m));
        check_decode(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..300)) {
        check_decode(&data);
    }

    #[test]
    fn random_bytes_after_version_never_panic(data in vec(any::<u8>(), 0..300)) {
        let mut input = vec![MUTATION_FORMAT_VERSION];
        input.extend_from_slice(&data);
        check_decode(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every strict prefix is rejected; every single-byte change (all 255 alternatives at every
    /// offset) either decodes to a mutation that re-encodes to the changed bytes or is `Corrupt`.
    #[test]
    fn truncations_and_byte_changes_never_panic(m in arb_mutation()) {
        let bytes = encode(&m);
        for len in 0..bytes.len() {
            prop_assert!(check_decode(&bytes[..len]).is_none(), "prefix of {} bytes decoded", len);
        }
        let mut changed = bytes.clone();
        for at in 0..bytes.len() {
            for delta in 1..=255u8 {
                changed[at] = bytes[at].wrapping_add(delta);
                check_decode(&changed);
            }
            changed[at] = bytes[at];
        }
    }
}

fn prefix(bytes: &'static [u8], len: u16) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::from_static(bytes), len)
}

fn t(ts: i64, dt: i64) -> Tombstone {
    Tombstone::new(Timestamp(ts), GcTime(dt))
}

/// The mutation pinned by [`golden_vector`].
fn golden_mutation() -> Mutation {
    let static_cells: Cells =
        [(ColumnId(2), Cell::Live { timestamp: Timestamp(1), value: Bytes::from_static(b"s") })].into_iter().collect();
    let row1 = Row {
        tombstone: RowTombstone::shadowable(t(7, 8)),
        marker: RowMarker::Expiring { timestamp: Timestamp(3), ttl: 10, expiry: GcTime(100) },
        cells: [
            (ColumnId(0), Cell::Dead { timestamp: Timestamp(4), deletion_time: GcTime(9) }),
            (ColumnId(300), Cell::Expiring { timestamp: Timestamp(2), value: Bytes::from_static(b"v"), expiry: GcTime(50), ttl: 20 }),
        ]
        .into_iter()
        .collect(),
    };
    let row2 = Row { tombstone: RowTombstone::regular(t(1, 1)), marker: RowMarker::Live { timestamp: Timestamp(9) }, cells: Cells::new() };
    let mut rows = BTreeMap::new();
    rows.insert(prefix(b"\x80\x00\x00\x01", 1), row1);
    rows.insert(prefix(b"\x80\x00\x00\x02", 1), row2);
    let rt = RangeTombstone {
        start: Position::before_key(prefix(b"\x80\x00\x00\x01", 1)),
        end: Position::after_key(ClusteringPrefix::EMPTY),
        tombstone: t(2, 3),
    };
    Mutation {
        table: TableId(1),
        key: PartitionKey::from_legacy_bytes(Bytes::from_static(b"k")).decorate(),
        update: PartitionUpdate { tombstone: t(5, 6), static_cells, rows, range_tombstones: vec![rt] },
    }
}

/// Pins the exact bytes of one small mutation, derived by hand from docs/format.md. A change of
/// the format must bump `MUTATION_FORMAT_VERSION` and this vector.
#[test]
fn golden_vector() {
    let expected = [
        "01",                                                       // version
        "01000000000000000000000000000000",                         // table id 1, u128 LE
        "01 6b",                                                    // key: len 1, "k"
        "01 0500000000000000 0600000000000000",                     // partition tombstone (5, 6)
        "01",                                                       // 1 static cell
        "02 00 0100000000000000 01 73",                             //   col 2 live ts 1 "s"
        "02",                                                       // 2 rows
        "01 04 80000001",                                           // row 1: key, 1 component, 4 bytes
        "00",                                                       //   regular tombstone: none
        "01 0700000000000000 0800000000000000",                     //   shadowable (7, 8)
        "02 0300000000000000 6400000000000000 0a000000",            // marker expiring ts 3 expiry 100 ttl 10
        "02",                                                       //   2 cells
        "00 02 0400000000000000 0900000000000000",                  //   col 0 dead ts 4 dt 9
        "ac02 01 0200000000000000 3200000000000000 14000000 01 76", // col 300 expiring ts 2 exp 50 ttl 20 "v"
        "01 04 80000002",                                           // row 2: key
        "01 0100000000000000 0100000000000000",                     //   regular (1, 1)
        "01 0100000000000000 0100000000000000",                     //   shadowable = regular
        "01 0900000000000000",                                      //   marker live ts 9
        "00",                                                       //   no cells
        "01",                                                       // 1 range tombstone
        "ff 01 04 80000001",                                        //   start before_key(0x80000001)
        "01 00 00",                                                 //   end after_key(empty)
        "01 0200000000000000 0300000000000000",                     //   tombstone (2, 3)
    ]
    .concat()
    .replace(' ', "");
    let bytes = encode(&golden_mutation());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
    assert_eq!(decode_mutation(&bytes), Ok(golden_mutation()));
}

fn corrupt_at(bytes: &[u8]) -> (usize, String) {
    match decode_mutation(bytes) {
        Err(Error::Corrupt { structure: "mutation", offset, reason }) => (offset, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    let hex = hex.replace(' ', "");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Version, table id 0, empty key, no partition tombstone: 19 bytes.
const HEAD: &str = "01 00000000000000000000000000000000 00 00";
const TS5: &str = "0500000000000000";
const PAD16: &str = "00000000000000000000000000000000";

#[test]
fn strictness_rejects_malformed_and_non_canonical_inputs() {
    let empty = from_hex(&format!("{HEAD} 00 00 00"));
    assert!(decode_mutation(&empty).is_ok_and(|m| m.update.is_empty()));
    let good = encode(&golden_mutation());
    let mut bad_version = good.clone();
    bad_version[0] = 2;
    assert_eq!(corrupt_at(&bad_version).0, 0);
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(corrupt_at(&trailing).0, good.len());

    let row = |key: &str| format!("01 01 {key} 00 00 00 00");
    let dead = |col: &str| format!("{col} 02 {TS5} {TS5}");
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("{HEAD} 00 02 {} {} 00", row("02"), row("01")), 28, "clustering order"),
        (format!("{HEAD} 00 02 {} {} 00", row("02"), row("02")), 28, "clustering order"),
        (format!("{HEAD} 02 {} {} 00 00", dead("05"), dead("03")), 38, "column id order"),
        (format!("{HEAD} 02 {} {} 00 00", dead("05"), dead("05")), 38, "column id order"),
        (format!("{HEAD} 00 00 01 02 00 00 01 00 00 00"), 22, "weight"),
        (format!("{HEAD} 00 01 00 00 01 {TS5} {TS5} 00 00 00 00"), 23, "R1.19"),
        (format!("01 {PAD16} 00 01 0000000000000080 0000000000000080 00 00 00"), 18, "non-canonical"),
        (format!("01 {PAD16} 00 02 00 00 00"), 18, "tag"),
        (format!("{HEAD} 00 ff7f {PAD16}"), 20, "count"),
        (format!("{HEAD} 00 01 808004 00 00 00 00 00 00"), 21, "65535"),
        (format!("{HEAD} 01 8080808010 00 {PAD16}"), 20, "u32"),
        (format!("{HEAD} 01 00 03 {PAD16}"), 21, "cell tag"),
        (format!("{HEAD} 00 01 00 00 00 00 04 00 00"), 25, "marker tag"),
        (format!("01 {PAD16} ffffffffffffffffff02 {PAD16}"), 17, "overflows"),
        (format!("01 {PAD16} 8100 00 00 00 00"), 17, "non-minimal"),
        (format!("01 {PAD16} 05 6b"), 17, "exceeds"),
        (format!("{HEAD} 00 01 00 00 00 00 01 05000000"), 26, "truncated"),
    ];
    for (hex, offset, reason) in cases {
        let (at, why) = corrupt_at(&from_hex(&hex));
        assert_eq!(at, offset, "{hex}: {why}");
        assert!(why.contains(reason), "{hex}: {why:?} lacks {reason:?}");
    }
}

// ---- Fuzz corpus -------------------------------------------------------------------------------

/// Runs the fuzz target's check over every stored corpus file, so the stable suite exercises it.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files("mutation_decode");
    let valid = files.iter().filter(|f| check_decode(f).is_some()).count();
    assert!(files.len() >= 20, "only {} corpus files", files.len());
    assert!(valid >= 10, "only {valid} valid encodings in the corpus");
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test mutation_codec -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let mut runner = TestRunner::deterministic();
    let mut valid: Vec<Vec<u8>> = vec![encode(&golden_mutation())];
    let empty =
        Mutation { table: TableId(0), key: PartitionKey::from_legacy_bytes(Bytes::new()).decorate(), update: PartitionUpdate::default() };
    valid.push(encode(&empty));
    for _ in 0..28 {
        valid.push(encode(&arb_mutation().new_tree(&mut runner).unwrap().current()));
    }
    support::write_corpus("mutation_decode", support::seeds_from_valid(&valid), |b| {
        check_decode(b);
    });
}
