//! The manifest encoding: round trips (proptest), the torn-tail rule against corruption (every
//! truncation, every bit flip, zero and garbage tails, misdirected records), strict payload
//! decoding, the validation of [`ManifestState::apply`], and the stored fuzz corpus
//! (`fuzz/corpus/manifest_decode`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use talus_format::manifest::{
    check_decode, encode_header, encode_raw_record, encode_record, scan_manifest, ManifestEdit, ManifestScan, ManifestState, SstableState,
    FRAME_LEN, HEADER_LEN,
};
use talus_format::{ColumnType, Error, ReplayPosition, Schema, SchemaRef, TableId};
use xxhash_rust::xxh3::xxh3_64_with_seed;

fn kv() -> SchemaRef {
    Schema::builder("ks", "kv").partition_key("k", ColumnType::Blob).regular("v", ColumnType::Blob).build().unwrap()
}

fn wide() -> SchemaRef {
    Schema::builder("ks", "wide")
        .partition_key("p", ColumnType::Int)
        .clustering_ordered("c", ColumnType::BigInt, true)
        .static_column("s", ColumnType::Text)
        .regular("v", ColumnType::Double)
        .build()
        .unwrap()
}

fn pos(segment: u64, offset: u32) -> ReplayPosition {
    ReplayPosition { segment, offset }
}

fn add(table: &SchemaRef, generation: u64) -> ManifestEdit {
    ManifestEdit::AddSstable { table: table.id, generation, state: SstableState::Normal }
}

/// A valid history: create, flushes, a compaction, state changes, a drop and a re-creation.
fn history() -> Vec<Vec<ManifestEdit>> {
    let (kv, wide) = (kv(), wide());
    vec![
        vec![ManifestEdit::CreateTable(kv.clone())],
        vec![ManifestEdit::CreateTable(wide.clone()), add(&kv, 1)],
        vec![add(&kv, 2)],
        vec![ManifestEdit::AddSstable { table: wide.id, generation: 3, state: SstableState::Staging }],
        vec![add(&kv, 4), add(&kv, 5), ManifestEdit::RemoveSstable { generation: 1 }, ManifestEdit::RemoveSstable { generation: 2 }],
        vec![ManifestEdit::SetState { generation: 3, state: SstableState::Normal }],
        vec![ManifestEdit::SetState { generation: 5, state: SstableState::Quarantine }],
        vec![
            ManifestEdit::ReplayFloor { table: kv.id, position: pos(6, 512) },
            ManifestEdit::ReplayFloor { table: kv.id, position: pos(5, 0) },
        ],
        vec![ManifestEdit::DropTable { table: kv.id, truncated_at: pos(7, 4096) }],
        vec![ManifestEdit::CreateTable(kv.clone()), ManifestEdit::AddSstable { table: kv.id, generation: 6, state: SstableState::Upload }],
    ]
}

/// A file holding `records`, and the offset of each record.
fn file(records: &[Vec<ManifestEdit>]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    encode_header(&mut out);
    let mut offsets = Vec::new();
    for edits in records {
        offsets.push(out.len());
        encode_record(edits, out.len() as u64, &mut out);
    }
    (out, offsets)
}

/// A record frame around an arbitrary payload, with correct checksums for `offset`.
fn raw_record(payload: &[u8], offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_raw_record(payload, offset, &mut out);
    out
}

fn corrupt_at(result: Result<ManifestScan, Error>) -> usize {
    match result {
        Err(Error::Corrupt { structure: "manifest", offset, .. }) => offset,
        other => panic!("expected a manifest corruption error, got {other:?}"),
    }
}

fn arb_state() -> impl Strategy<Value = SstableState> {
    (0u8..4).prop_map(|c| SstableState::from_code(c).unwrap())
}

fn arb_edit() -> impl Strategy<Value = ManifestEdit> {
    prop_oneof![
        ("[a-z_]{1,10}", any::<u128>(), prop::bool::ANY).prop_map(|(name, id, clustered)| {
            let mut b = Schema::builder("ks", &name).id(TableId(id)).partition_key("p", ColumnType::Int);
            if clustered {
                b = b.clustering("c", ColumnType::Text).static_column("s", ColumnType::Int);
            }
            ManifestEdit::CreateTable(b.regular("v", ColumnType::Blob).build().unwrap())
        }),
        (any::<u128>(), any::<u64>(), any::<u32>())
            .prop_map(|(t, s, o)| ManifestEdit::DropTable { table: TableId(t), truncated_at: pos(s, o) }),
        (any::<u128>(), any::<u64>(), arb_state()).prop_map(|(t, generation, state)| ManifestEdit::AddSstable {
            table: TableId(t),
            generation,
            state
        }),
        any::<u64>().prop_map(|generation| ManifestEdit::RemoveSstable { generation }),
        (any::<u64>(), arb_state()).prop_map(|(generation, state)| ManifestEdit::SetState { generation, state }),
        (any::<u128>(), any::<u64>(), any::<u32>())
            .prop_map(|(t, s, o)| ManifestEdit::ReplayFloor { table: TableId(t), position: pos(s, o) }),
    ]
}

proptest! {
    #[test]
    fn records_round_trip(records in prop::collection::vec(prop::collection::vec(arb_edit(), 0..8), 0..6)) {
        let (bytes, offsets) = file(&records);
        let scan = scan_manifest(&bytes).unwrap();
        prop_assert_eq!(&scan.records, &records);
        prop_assert_eq!(scan.offsets, offsets);
        prop_assert_eq!(scan.valid_len, bytes.len());
        prop_assert!(!scan.torn_tail);
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }

    #[test]
    fn arbitrary_tails_never_panic(records in prop::collection::vec(prop::collection::vec(arb_edit(), 0..4), 0..4),
                                   tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let (mut bytes, _) = file(&records);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(check_decode(&bytes), Ok(()));
        let scan = scan_manifest(&bytes).unwrap();
        prop_assert_eq!(scan.records, records);
    }
}

/// The frame layout, checked against xxh3 directly (docs/format.md, "Manifest").
#[test]
fn frame_layout_matches_the_specification() {
    let (bytes, offsets) = file(&history()[..2]);
    let at = offsets[1];
    let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(at + FRAME_LEN + len, bytes.len());
    let payload = &bytes[at + FRAME_LEN..];
    let seed = at as u64;
    assert_eq!(bytes[at + 8..at + 16], xxh3_64_with_seed(payload, seed).to_le_bytes());
    assert_eq!(bytes[at + 16..at + 24], xxh3_64_with_seed(&bytes[at..at + 16], seed).to_le_bytes());
    assert_eq!(payload[0], 2, "edit count");
    assert_eq!(payload[1], 1, "CreateTable tag");
    assert_eq!(raw_record(payload, seed), bytes[at..]);
}

#[test]
fn header_only_file_is_empty() {
    let (bytes, _) = file(&[]);
    assert_eq!(bytes.len(), HEADER_LEN);
    assert_eq!(&bytes[..5], b"TLMF\x01");
    let scan = scan_manifest(&bytes).unwrap();
    assert_eq!(scan, ManifestScan { valid_len: HEADER_LEN, ..ManifestScan::default() });
}

#[test]
fn bad_headers_are_corrupt() {
    let (bytes, _) = file(&history());
    for len in 0..HEADER_LEN {
        assert_eq!(corrupt_at(scan_manifest(&bytes[..len])), 0, "cut at {len}");
    }
    for (at, expected) in [(0, 0), (3, 0), (4, 4), (5, 5), (7, 5)] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        assert_eq!(corrupt_at(scan_manifest(&b)), expected, "byte {at}");
    }
}

/// A cut inside a record is a torn tail: the records before it load; a cut at a boundary is a
/// clean shorter file.
#[test]
fn every_truncation_is_a_torn_tail() {
    let records = history();
    let (bytes, offsets) = file(&records);
    let mut ends: Vec<usize> = offsets[1..].to_vec();
    ends.push(bytes.len());
    for len in HEADER_LEN..=bytes.len() {
        let scan = scan_manifest(&bytes[..len]).unwrap();
        let whole = ends.iter().filter(|&&end| end <= len).count();
        assert_eq!(scan.records, records[..whole], "cut at {len}");
        assert_eq!(scan.valid_len, if whole == 0 { HEADER_LEN } else { ends[whole - 1] });
        assert_eq!(scan.torn_tail, scan.valid_len != len, "cut at {len}");
        assert_eq!(check_decode(&bytes[..len]), Ok(()));
    }
}

/// A flipped bit in the header or in any record but the last is corruption at that record; in
/// the last record it is a torn tail (indistinguishable from a write that never completed).
#[test]
fn every_bit_flip_is_corruption_or_a_torn_last_record() {
    let records = history();
    let (bytes, offsets) = file(&records);
    let last = *offsets.last().unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let at = bit / 8;
        if at < HEADER_LEN {
            corrupt_at(scan_manifest(&b));
        } else if at < last {
            let record = offsets.iter().rposition(|&o| o <= at).unwrap();
            assert_eq!(corrupt_at(scan_manifest(&b)), offsets[record], "bit {bit}");
        } else {
            let scan = scan_manifest(&b).unwrap();
            assert!(scan.torn_tail, "bit {bit}");
            assert_eq!(scan.records, records[..records.len() - 1], "bit {bit}");
            assert_eq!(scan.valid_len, last);
        }
        assert_eq!(check_decode(&b), Ok(()), "bit {bit}");
    }
}

#[test]
fn zero_and_garbage_tails_are_torn() {
    let records = history();
    let (bytes, _) = file(&records);
    for n in [1, 7, FRAME_LEN - 1, FRAME_LEN, FRAME_LEN + 1, 100, 4096] {
        for fill in [0u8, 0xff, 0x5a] {
            let mut b = bytes.clone();
            b.extend((0..n).map(|i| if fill == 0x5a { (i * 131 % 251) as u8 } else { fill }));
            let scan = scan_manifest(&b).unwrap();
            assert!(scan.torn_tail && scan.valid_len == bytes.len() && scan.records == records, "{n} x {fill:#x}");
        }
    }
}

/// A bad record followed by a valid one is corruption, whatever made it bad.
#[test]
fn a_bad_record_before_a_valid_one_is_corrupt() {
    let (bytes, offsets) = file(&history());
    for record in 0..offsets.len() - 1 {
        let (start, end) = (offsets[record], offsets[record + 1]);
        let mut zeroed = bytes.clone();
        zeroed[start..end].fill(0);
        assert_eq!(corrupt_at(scan_manifest(&zeroed)), start, "zeroed record {record}");
        // The length grows past the end of the file: the frame checksum catches it.
        let mut long = bytes.clone();
        long[start..start + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(corrupt_at(scan_manifest(&long)), start, "overlong record {record}");
    }
}

/// A record written at another offset (a misdirected write) does not verify there.
#[test]
fn records_are_bound_to_their_offset() {
    let records = history();
    let (bytes, offsets) = file(&records);
    let (first, second) = (offsets[0], offsets[1]);
    let mut moved = bytes[..HEADER_LEN].to_vec();
    moved.extend_from_slice(&bytes[second..offsets[2]]);
    let scan = scan_manifest(&moved).unwrap();
    assert!(scan.torn_tail && scan.records.is_empty());
    // A copy of the first record appended at the end is not a valid record there.
    let mut copied = bytes.clone();
    copied.extend_from_slice(&bytes[first..second]);
    let scan = scan_manifest(&copied).unwrap();
    assert!(scan.torn_tail && scan.records == records);
}

/// A record whose checksums hold but whose payload does not decode was written that way: it is
/// corruption even as the last record.
#[test]
fn undecodable_checksummed_payloads_are_corrupt() {
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("empty payload", vec![]),
        ("unknown tag", vec![1, 9, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("trailing byte", {
            let mut p = vec![1, 4];
            p.extend_from_slice(&7u64.to_le_bytes());
            p.push(0);
            p
        }),
        ("non-minimal count", {
            let mut p = vec![0x81, 0x00, 4];
            p.extend_from_slice(&7u64.to_le_bytes());
            p
        }),
        ("count beyond the payload", vec![2, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("unknown sstable state", {
            let mut p = vec![1, 5];
            p.extend_from_slice(&7u64.to_le_bytes());
            p.push(4);
            p
        }),
        ("truncated drop", vec![1, 2, 0, 0]),
        ("bad schema", vec![1, 1, 3, 9, 9, 9]),
    ];
    let (bytes, _) = file(&history());
    for (what, payload) in payloads {
        let mut b = bytes.clone();
        b.extend_from_slice(&raw_record(&payload, bytes.len() as u64));
        let offset = corrupt_at(scan_manifest(&b));
        assert!(offset >= bytes.len() && offset <= b.len(), "{what}: offset {offset}");
        assert_eq!(check_decode(&b), Ok(()), "{what}");
    }
    // A well-formed empty record is fine.
    let mut b = bytes.clone();
    b.extend_from_slice(&raw_record(&[0], bytes.len() as u64));
    assert_eq!(scan_manifest(&b).unwrap().records.last(), Some(&Vec::new()));
}

fn replay(records: &[Vec<ManifestEdit>]) -> ManifestState {
    let mut state = ManifestState::default();
    for edits in records {
        state.apply(edits).unwrap();
    }
    state
}

#[test]
fn state_follows_the_history() {
    let (kv, wide) = (kv(), wide());
    let state = replay(&history());
    assert_eq!(state.tables.keys().copied().collect::<Vec<_>>(), {
        let mut ids = vec![kv.id, wide.id];
        ids.sort();
        ids
    });
    assert_eq!(state.truncations.get(&kv.id), Some(&pos(7, 4096)));
    // Dropping kv removed generations 4 and 5; 6 belongs to the re-created table.
    assert_eq!(state.sstables.keys().copied().collect::<Vec<_>>(), vec![3, 6]);
    assert_eq!(state.sstables[&6].state, SstableState::Upload);
    assert_eq!(state.max_generation(), Some(6));
    assert_eq!(ManifestState::default().max_generation(), None);
    // kv's floor (6:512, which the lower 5:0 did not move back) went with its drop.
    assert!(state.replay_floors.is_empty());
    assert_eq!(replay(&history()[..8]).replay_floors.get(&kv.id), Some(&pos(6, 512)), "a replay floor only rises");
}

#[test]
fn snapshots_rebuild_every_state() {
    let records = history();
    for n in 0..=records.len() {
        let state = replay(&records[..n]);
        let mut rebuilt = ManifestState::default();
        rebuilt.apply(&state.snapshot()).unwrap();
        assert_eq!(rebuilt, state, "after {n} records");
    }
}

#[test]
fn invalid_records_change_nothing() {
    let (kv, wide) = (kv(), wide());
    let base = replay(&history()[..4]);
    let renamed = Schema::builder("ks", "kv").id(TableId(99)).partition_key("k", ColumnType::Int).build().unwrap();
    let cases: Vec<(Vec<ManifestEdit>, usize, &str)> = vec![
        (vec![ManifestEdit::CreateTable(kv.clone())], 0, "already exists"),
        (vec![add(&wide, 10), ManifestEdit::CreateTable(renamed)], 1, "ks.kv already exists"),
        (vec![add(&kv, 10), add(&kv, 10)], 1, "generation 10 already exists"),
        (
            vec![add(&kv, 10), ManifestEdit::AddSstable { table: TableId(5), generation: 11, state: SstableState::Normal }],
            1,
            "unknown table",
        ),
        (vec![add(&kv, 10), ManifestEdit::RemoveSstable { generation: 77 }], 1, "unknown sstable generation 77"),
        (vec![ManifestEdit::SetState { generation: 77, state: SstableState::Normal }], 0, "unknown sstable generation 77"),
        (vec![ManifestEdit::DropTable { table: kv.id, truncated_at: pos(3, 0) }, add(&kv, 10)], 1, "unknown table"),
        (vec![add(&kv, 10), ManifestEdit::ReplayFloor { table: TableId(5), position: pos(1, 0) }], 1, "replay floor of unknown table"),
        (
            vec![
                ManifestEdit::DropTable { table: kv.id, truncated_at: pos(3, 0) },
                ManifestEdit::DropTable { table: kv.id, truncated_at: pos(2, 9) },
            ],
            1,
            "moves back",
        ),
    ];
    for (edits, index, reason) in cases {
        let mut state = base.clone();
        let err = state.apply(&edits).unwrap_err();
        assert_eq!(err.index, index, "{edits:?}: {err}");
        assert!(err.reason.contains(reason), "{edits:?}: {err}");
        assert_eq!(state, base, "{edits:?} changed the state");
    }
    // A drop restores cleanly when a later edit of its record fails: tables, sstables, truncation.
    let mut state = base.clone();
    let edits = vec![ManifestEdit::DropTable { table: kv.id, truncated_at: pos(3, 0) }, ManifestEdit::RemoveSstable { generation: 1 }];
    assert!(state.apply(&edits).is_err());
    assert_eq!(state, base);
    // Dropping an absent table records its truncation only; an equal position is accepted.
    let mut state = ManifestState::default();
    state.apply(&[ManifestEdit::DropTable { table: TableId(1), truncated_at: pos(1, 1) }]).unwrap();
    state.apply(&[ManifestEdit::DropTable { table: TableId(1), truncated_at: pos(1, 1) }]).unwrap();
    assert!(state.tables.is_empty() && state.truncations.len() == 1);
}

fn valid_files() -> Vec<Vec<u8>> {
    let records = history();
    let mut files = vec![file(&[]).0, file(&records[..1]).0, file(&records[..3]).0, file(&records).0];
    let snapshot = replay(&records).snapshot();
    files.push(file(std::slice::from_ref(&snapshot)).0);
    files.push(file(&[snapshot, vec![ManifestEdit::RemoveSstable { generation: 3 }]]).0);
    let mut torn = file(&records).0;
    torn.extend_from_slice(&[0xab; 40]);
    files.push(torn);
    let mut long = file(&records).0;
    long.truncate(long.len() - 5);
    files.push(long);
    files
}

/// Runs the fuzz target's checks over every stored corpus file: as a file, and framed as the
/// payload of one record with correct checksums.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files("manifest_decode");
    let mut scanned = 0;
    for bytes in &files {
        assert_eq!(check_decode(bytes), Ok(()));
        scanned += usize::from(scan_manifest(bytes).is_ok());
        let mut framed = Vec::new();
        encode_header(&mut framed);
        encode_raw_record(bytes, HEADER_LEN as u64, &mut framed);
        assert_eq!(check_decode(&framed), Ok(()));
    }
    assert!(files.len() >= 8 && scanned >= 4, "{} corpus files, {scanned} scan", files.len());
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test manifest -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let mut seeds = support::seeds_from_valid(&valid_files());
    // Bare payloads: the fuzz target also frames its input as one record's payload.
    let records = history();
    let snapshot = replay(&records).snapshot();
    for (i, edits) in records.iter().chain([&snapshot]).enumerate() {
        let mut record = Vec::new();
        encode_record(edits, 0, &mut record);
        seeds.push((format!("payload-{i:02}"), record[FRAME_LEN..].to_vec()));
    }
    support::write_corpus("manifest_decode", seeds, |b| {
        assert_eq!(check_decode(b), Ok(()));
    });
}
