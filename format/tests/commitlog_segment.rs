//! Tests of the commitlog segment scan (`talus_format::commitlog_segment`, docs/format.md
//! "Commitlog segments"), one scenario per test: torn tails at every byte (R3.10, bug class 2),
//! bit flips in records that a later record proves synced (corruption, and skip-and-count), damage
//! that nothing proves synced (a torn tail), seals and `followed_by_records`, stale records of a
//! recycled file (bug class 6), headers, random bytes and recipes, and the stored fuzz corpus
//! (`fuzz/corpus/commitlog_segment`, the check the `commitlog_segment` fuzz target runs).

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use proptest::collection::vec;
use proptest::prelude::*;
use talus_format::commitlog_segment::{
    encode_mutations_body, encode_record, encode_segment_header, record_len, scan_segment, ScanOptions, SegmentEnd, SegmentScan,
    SkippedRegion, RECORD_HEADER_LEN, RECORD_MUTATIONS, RECORD_SEAL, SEGMENT_HEADER_LEN,
};
use talus_format::commitlog_segment_check::{check_scan, segment_from_recipe, RECIPE_ID};
use talus_format::mutation_codec::encode_mutation;
use talus_format::{ColumnType, Error, GcTime, Mutation, Schema, SchemaRef, TableId, Timestamp, Value};

/// The id of the segment under test.
const ID: u64 = 42;

fn options(followed_by_records: bool, skip_corrupt: bool) -> ScanOptions {
    ScanOptions { expected_id: ID, followed_by_records, skip_corrupt }
}

/// A strict scan of segment [`ID`] that no later segment follows.
fn scan(bytes: &[u8]) -> talus_format::Result<SegmentScan<'_>> {
    scan_segment(bytes, options(false, false))
}

fn corrupt_offset(result: talus_format::Result<SegmentScan<'_>>) -> usize {
    match result {
        Err(Error::Corrupt { structure: "commitlog segment", offset, .. }) => offset,
        other => panic!("expected a Corrupt commitlog segment error, got {other:?}"),
    }
}

fn offsets(scan: &SegmentScan<'_>) -> Vec<usize> {
    scan.records.iter().map(|r| r.offset as usize).collect()
}

fn schema() -> SchemaRef {
    Schema::builder("ks", "t")
        .id(TableId(1))
        .partition_key("k", ColumnType::Int)
        .clustering("c", ColumnType::Int)
        .regular("v", ColumnType::Text)
        .build()
        .unwrap()
}

/// The body of a mutations record: `n` real encoded mutations (seeded by `seed`).
fn mutations_body(seed: i32, n: i32) -> Vec<u8> {
    let schema = schema();
    let encoded: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let m = Mutation::builder(&schema, &[Value::Int(seed)])
                .now(GcTime(1_000))
                .set(&[Value::Int(i)], "v", Value::Text(format!("value {seed}/{i}")), Timestamp(i64::from(seed * 100 + i)))
                .build()
                .unwrap();
            let mut out = Vec::new();
            encode_mutation(&m, &mut out);
            out
        })
        .collect();
    let mut body = Vec::new();
    encode_mutations_body(encoded.iter().map(Vec::as_slice), &mut body);
    body
}

/// What a record says was synced when it was appended.
#[derive(Clone, Copy)]
enum Synced {
    /// Everything before the record (a sync ran between every two appends).
    UpToItself,
    /// Only this offset.
    At(usize),
}

/// A segment being written: its bytes and the offset of every record.
struct Segment {
    id: u64,
    bytes: Vec<u8>,
    records: Vec<usize>,
}

impl Segment {
    fn new(id: u64) -> Segment {
        Segment { id, bytes: encode_segment_header(id).to_vec(), records: Vec::new() }
    }

    fn record(mut self, synced: Synced, kind: u8, body: &[u8]) -> Segment {
        let offset = self.bytes.len();
        let durable_before = match synced {
            Synced::UpToItself => offset,
            Synced::At(at) => at,
        };
        encode_record(self.id, durable_before as u32, kind, body, &mut self.bytes);
        self.records.push(offset);
        self
    }

    /// Appends `n` mutations records with bodies of 1, 2, 3, … mutations.
    fn mutations(mut self, n: usize, synced: Synced) -> Segment {
        for i in 0..n {
            let seed = (self.id as i32) * 10 + self.records.len() as i32;
            self = self.record(synced, RECORD_MUTATIONS, &mutations_body(seed, i as i32 % 3 + 1));
        }
        self
    }

    fn seal(self, synced: Synced) -> Segment {
        self.record(synced, RECORD_SEAL, &[])
    }

    /// The preallocated zeros after the data.
    fn zero_filled(mut self, len: usize) -> Segment {
        self.bytes.resize(self.bytes.len() + len, 0);
        self
    }

    fn end_of(&self, record: usize) -> usize {
        self.records.get(record + 1).copied().unwrap_or(self.bytes.len())
    }
}

/// Four mutations records, each appended after everything before it was synced (as under
/// `Durability::Batch`), so every record but the last is proven durable by the next.
fn synced_segment() -> Segment {
    Segment::new(ID).mutations(4, Synced::UpToItself)
}

/// Damages `bytes` from `at` on, in one of three ways a torn write leaves a tail.
fn tear(bytes: &[u8], at: usize, how: usize) -> Vec<u8> {
    match how {
        0 => bytes[..at].to_vec(),
        1 => {
            let mut torn = bytes.to_vec();
            torn[at..].fill(0);
            torn.resize(bytes.len() + 64, 0);
            torn
        }
        _ => {
            // Every byte from `at` on changes (a non-zero XOR), and garbage follows.
            let mut torn = bytes.to_vec();
            torn.resize(bytes.len() + 40, 0);
            for (i, b) in torn[at..].iter_mut().enumerate() {
                *b ^= 1 + (i * 37 % 255) as u8;
            }
            torn
        }
    }
}

// ---- Golden vector -------------------------------------------------------------------------------

/// Pins the bytes of an empty sealed segment (docs/format.md, "Commitlog segments"). A change of
/// the format must bump `SEGMENT_FORMAT_VERSION` (and the `1` in the file names) and this vector.
#[test]
fn golden_vector() {
    let mut bytes = encode_segment_header(1).to_vec();
    encode_record(1, SEGMENT_HEADER_LEN as u32, RECORD_SEAL, &[], &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expected = [
        "544c434c 01000000 0100000000000000 21b624e40fa8bbc8", // header: magic, version, id, xxh3
        "01000000 18000000 0100000000000000 b1f5d0d27c30c3cb", // seal: payload_len, durable_before, id, checksum
        "02",                                                  // kind: seal, empty body
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex, expected);
    assert_eq!(bytes.len(), SEGMENT_HEADER_LEN + record_len(0));
    let scan = scan_segment(&bytes, ScanOptions { expected_id: 1, followed_by_records: true, skip_corrupt: false }).unwrap();
    assert_eq!(scan.end, SegmentEnd::Sealed(49));
}

// ---- Torn tails (R3.10, bug class 2) ------------------------------------------------------------

/// R3.10 / bug class 2: a crash tears the last record at any byte (cut off, zeroed or garbage);
/// the log ends where that record starts, every earlier record is replayed, and nothing is called
/// corrupt (skip-and-count skips nothing).
#[test]
fn r3_10_torn_last_record_at_every_byte_ends_the_log_before_it() {
    for segment in [synced_segment(), Segment::new(ID).mutations(4, Synced::At(SEGMENT_HEADER_LEN))] {
        let last = *segment.records.last().unwrap();
        for at in last..segment.bytes.len() {
            for how in 0..3 {
                let torn = tear(&segment.bytes, at, how);
                if torn.get(last..segment.bytes.len()) == Some(&segment.bytes[last..]) {
                    continue; // zeroing bytes that were zero already leaves the record intact
                }
                for skip in [false, true] {
                    let scan = scan_segment(&torn, options(false, skip)).unwrap_or_else(|e| panic!("torn at {at} ({how}): {e}"));
                    assert_eq!(scan.end, SegmentEnd::Open(last as u32), "torn at {at} ({how})");
                    assert_eq!(offsets(&scan), segment.records[..segment.records.len() - 1]);
                    assert!(scan.skipped.is_empty());
                }
                check_scan(&torn);
            }
        }
    }
}

/// An intact segment (possibly with its preallocated zeros) ends after its last record.
#[test]
fn intact_segment_ends_after_its_last_record() {
    let segment = synced_segment();
    let end = segment.bytes.len() as u32;
    for bytes in [segment.bytes.clone(), segment.zero_filled(4096).bytes] {
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.end, SegmentEnd::Open(end));
        assert_eq!(scan.records.len(), 4);
        assert!(scan.records.iter().all(|r| r.kind == RECORD_MUTATIONS));
        assert_eq!(scan.records[2].body, mutations_body(ID as i32 * 10 + 2, 3));
    }
}

// ---- Corruption of synced records (R3.10, bug class 2) ------------------------------------------

/// R3.10 / bug class 2: a flipped bit in any byte of any field (length, durable_before, segment
/// id, checksum, kind, body) of a record that the next record proves synced is corruption at that
/// record's offset. With skip-and-count the damaged record is reported as a skipped region and
/// every other record is replayed.
#[test]
fn r3_10_bit_flip_in_a_proven_synced_record_is_corruption_at_its_offset() {
    let segment = synced_segment();
    let n = segment.records.len();
    for victim in 0..n - 1 {
        let (start, end) = (segment.records[victim], segment.end_of(victim));
        for at in start..end {
            for bit in 0..8 {
                let mut bytes = segment.bytes.clone();
                bytes[at] ^= 1 << bit;
                let what = format!("record {victim}, byte {} bit {bit}", at - start);
                assert_eq!(corrupt_offset(scan(&bytes)), start, "{what}");

                let skipped = scan_segment(&bytes, options(false, true)).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(skipped.skipped, [SkippedRegion { offset: start as u32, len: (end - start) as u32 }], "{what}");
                let others: Vec<usize> = segment.records.iter().copied().filter(|&o| o != start).collect();
                assert_eq!(offsets(&skipped), others, "{what}");
                assert_eq!(skipped.end, SegmentEnd::Open(segment.bytes.len() as u32), "{what}");
            }
            if at % 7 == 0 {
                let mut bytes = segment.bytes.clone();
                bytes[at] ^= 0x10;
                check_scan(&bytes);
            }
        }
    }
}

/// A record that is entirely zeroed (a lost sector) between synced records is corruption too, and
/// skip-and-count skips exactly its bytes.
#[test]
fn zeroed_record_between_synced_records_is_skipped_as_one_region() {
    let segment = synced_segment();
    let (start, end) = (segment.records[1], segment.end_of(1));
    let mut bytes = segment.bytes.clone();
    bytes[start..end].fill(0);
    assert_eq!(corrupt_offset(scan(&bytes)), start);
    let skipped = scan_segment(&bytes, options(false, true)).unwrap();
    assert_eq!(skipped.skipped, [SkippedRegion { offset: start as u32, len: (end - start) as u32 }]);
    assert_eq!(offsets(&skipped), [segment.records[0], segment.records[2], segment.records[3]]);
    check_scan(&bytes);
}

// ---- Damage that nothing proves synced ----------------------------------------------------------

/// Damage before later records whose `durable_before` does not reach past it is a torn tail, not
/// corruption: until a sync returns, the page cache may write the pages of a segment back in any
/// order, so a crash can leave a later record on disk and an earlier one torn. Nothing after the
/// damage is replayed (the recovered log stays a prefix) and nothing is skipped.
#[test]
fn damage_that_no_later_record_proves_synced_is_a_torn_tail() {
    // Nothing was synced since the header.
    let unsynced = Segment::new(ID).mutations(4, Synced::At(SEGMENT_HEADER_LEN));
    for victim in 0..3 {
        let mut bytes = unsynced.bytes.clone();
        bytes[unsynced.records[victim] + RECORD_HEADER_LEN + 3] ^= 0x01;
        for skip in [false, true] {
            let scan = scan_segment(&bytes, options(false, skip)).unwrap();
            assert_eq!(scan.end, SegmentEnd::Open(unsynced.records[victim] as u32));
            assert_eq!(offsets(&scan), unsynced.records[..victim]);
            assert!(scan.skipped.is_empty());
        }
        check_scan(&bytes);
    }
}

/// The proof needs `durable_before > offset`: later records that say the segment was synced up to
/// exactly the start of record 1 prove record 0 (corruption) but not record 1 (torn tail).
#[test]
fn durable_before_equal_to_the_damaged_offset_does_not_prove_it_synced() {
    let head = Segment::new(ID).mutations(2, Synced::UpToItself);
    let record1 = head.records[1];
    let segment = head.mutations(2, Synced::At(record1));

    let mut damaged1 = segment.bytes.clone();
    damaged1[record1 + 20] ^= 0x80;
    let scan1 = scan(&damaged1).unwrap();
    assert_eq!(scan1.end, SegmentEnd::Open(record1 as u32));
    assert_eq!(offsets(&scan1), [segment.records[0]]);

    let mut damaged0 = segment.bytes.clone();
    damaged0[segment.records[0] + 20] ^= 0x80;
    assert_eq!(corrupt_offset(scan(&damaged0)), segment.records[0]);
    check_scan(&damaged0);
    check_scan(&damaged1);
}

/// A record cannot claim a synced offset beyond its own start: such a record is invalid, and
/// proves nothing.
#[test]
fn record_claiming_durable_beyond_its_offset_is_invalid() {
    let segment = Segment::new(ID).mutations(1, Synced::UpToItself);
    let bogus_at = segment.bytes.len();
    let segment = segment.record(Synced::At(bogus_at + 1), RECORD_MUTATIONS, &mutations_body(1, 1));
    let scan = scan(&segment.bytes).unwrap();
    assert_eq!(scan.end, SegmentEnd::Open(bogus_at as u32));
    assert_eq!(offsets(&scan), [segment.records[0]]);
    check_scan(&segment.bytes);
}

// ---- Seals and later segments -------------------------------------------------------------------

/// A later segment with records proves this one was sealed and synced whole: without its seal it
/// is corrupt where its data ends; with the seal it ends there (preallocated zeros after it are
/// ignored).
#[test]
fn followed_by_records_requires_a_seal() {
    let unsealed = synced_segment().zero_filled(512);
    let data_end = unsealed.bytes.len() - 512;
    assert_eq!(corrupt_offset(scan_segment(&unsealed.bytes, options(true, false))), data_end);
    // Skip-and-count reports the unsealed rest as a skipped region.
    let skipped = scan_segment(&unsealed.bytes, options(true, true)).unwrap();
    assert_eq!(skipped.skipped, [SkippedRegion { offset: data_end as u32, len: 512 }]);
    assert_eq!(offsets(&skipped), unsealed.records);

    let sealed = synced_segment().seal(Synced::UpToItself);
    let seal_end = sealed.bytes.len() as u32;
    let sealed = sealed.zero_filled(512);
    for followed in [false, true] {
        for skip in [false, true] {
            let scan = scan_segment(&sealed.bytes, options(followed, skip)).unwrap();
            assert_eq!(scan.end, SegmentEnd::Sealed(seal_end));
            assert_eq!(offsets(&scan), sealed.records);
            assert_eq!(scan.records.last().unwrap().kind, RECORD_SEAL);
            assert!(scan.skipped.is_empty());
        }
    }
    check_scan(&unsealed.bytes);
    check_scan(&sealed.bytes);
}

/// In a sealed segment followed by records, a torn-looking tail before the seal is corruption even
/// though no record proves it: the whole segment was synced before the next one was written.
#[test]
fn damage_in_a_segment_followed_by_records_is_corruption() {
    // The seal too was appended before any sync (the roll's own sync covers it).
    let segment = Segment::new(ID).mutations(3, Synced::At(SEGMENT_HEADER_LEN)).seal(Synced::At(SEGMENT_HEADER_LEN));
    let victim = segment.records[2];
    let mut bytes = segment.bytes.clone();
    bytes[victim + 30] ^= 0x04;
    assert_eq!(scan(&bytes).unwrap().end, SegmentEnd::Open(victim as u32));
    assert_eq!(corrupt_offset(scan_segment(&bytes, options(true, false))), victim);
    let skipped = scan_segment(&bytes, options(true, true)).unwrap();
    assert_eq!(skipped.end, SegmentEnd::Sealed(bytes.len() as u32));
    assert_eq!(skipped.skipped.len(), 1);
    check_scan(&bytes);
}

/// Records after a seal are never returned (the seal ends the segment).
#[test]
fn records_after_a_seal_are_ignored() {
    let segment = synced_segment().seal(Synced::UpToItself).mutations(2, Synced::UpToItself);
    let scan = scan(&segment.bytes).unwrap();
    assert_eq!(offsets(&scan), segment.records[..5]);
    assert_eq!(scan.end, SegmentEnd::Sealed(segment.records[5] as u32));
    check_scan(&segment.bytes);
}

/// A valid record of an unknown kind (a newer writer) fails the scan at its offset, skipping or
/// not: guessing its meaning could replay the wrong thing.
#[test]
fn unknown_record_kind_is_corruption_even_when_skipping() {
    let segment = synced_segment().record(Synced::UpToItself, 9, b"future").mutations(1, Synced::UpToItself);
    for skip in [false, true] {
        assert_eq!(corrupt_offset(scan_segment(&segment.bytes, options(false, skip))), segment.records[4]);
    }
    check_scan(&segment.bytes);
}

// ---- Recycled segments (bug class 6) ------------------------------------------------------------

/// Bug class 6: a recycled file keeps the records of its previous segment behind the new ones.
/// They have valid checksums (and `durable_before` values far beyond the new data) but the old
/// id, so they read as the end of the data: never returned, never taken as proof of corruption,
/// whether the old records are aligned with the new end or not.
#[test]
fn bug_class_6_stale_records_of_a_recycled_segment_are_never_returned() {
    // The old segment's first record is short, so its record boundaries differ from the new ones.
    let old = Segment::new(ID - 1).record(Synced::UpToItself, RECORD_MUTATIONS, b"x").mutations(9, Synced::UpToItself);
    let old = old.seal(Synced::UpToItself);
    let new = Segment::new(ID).mutations(2, Synced::UpToItself);
    assert!(!old.records.contains(&new.bytes.len()));
    // The same data padded by one more record to end exactly where an old record starts.
    let aligned = *old.records.iter().find(|&&o| o > new.bytes.len() + RECORD_HEADER_LEN).unwrap();
    let pad = vec![0x55; aligned - new.bytes.len() - RECORD_HEADER_LEN - 1];
    let padded = Segment::new(ID).mutations(2, Synced::UpToItself).record(Synced::UpToItself, RECORD_MUTATIONS, &pad);
    assert_eq!(padded.bytes.len(), aligned);
    for new in [&new, &padded] {
        let new_end = new.bytes.len();
        let mut file = old.bytes.clone();
        file[..new_end].copy_from_slice(&new.bytes);
        for skip in [false, true] {
            let scan = scan_segment(&file, options(false, skip)).unwrap();
            assert_eq!(scan.end, SegmentEnd::Open(new_end as u32));
            assert_eq!(offsets(&scan), new.records);
            assert!(scan.skipped.is_empty());
        }
        // A later segment has records: the new data must have ended with a seal.
        assert_eq!(corrupt_offset(scan_segment(&file, options(true, false))), new_end);
        check_scan(&file);
    }
    // With its seal, the recycled segment ends there.
    let sealed = new.seal(Synced::UpToItself);
    let mut file = old.bytes.clone();
    file[..sealed.bytes.len()].copy_from_slice(&sealed.bytes);
    let scan = scan_segment(&file, options(true, false)).unwrap();
    assert_eq!(scan.end, SegmentEnd::Sealed(sealed.bytes.len() as u32));
    assert_eq!(offsets(&scan), sealed.records);
    check_scan(&file);
}

// ---- Headers ------------------------------------------------------------------------------------

/// A crash while a segment is being created leaves a torn or zero header and no records: the
/// segment is unwritten (replay removes it). If a later segment has records, it cannot have been
/// interrupted in creation, so it is corrupt at offset 0.
#[test]
fn torn_or_zero_header_without_records_is_unwritten() {
    let header = encode_segment_header(ID);
    let mut cases: Vec<Vec<u8>> = (0..SEGMENT_HEADER_LEN).map(|len| header[..len].to_vec()).collect();
    cases.extend((0..SEGMENT_HEADER_LEN).map(|len| {
        let mut torn = header[..len].to_vec();
        torn.resize(4096, 0);
        torn
    }));
    cases.push(vec![0; 4096]);
    for bytes in &cases {
        for skip in [false, true] {
            let scan = scan_segment(bytes, options(false, skip)).unwrap();
            assert_eq!((scan.records.len(), scan.end, scan.skipped.len()), (0, SegmentEnd::Unwritten, 0), "{} bytes", bytes.len());
            assert_eq!(corrupt_offset(scan_segment(bytes, options(true, skip))), 0);
        }
    }
    check_scan(&cases[SEGMENT_HEADER_LEN + 10]);
}

/// A header with only a header is a written, empty segment.
#[test]
fn header_without_records_is_an_empty_open_segment() {
    let bytes = Segment::new(ID).zero_filled(100).bytes;
    let scan = scan(&bytes).unwrap();
    assert_eq!((scan.records.len(), scan.end), (0, SegmentEnd::Open(SEGMENT_HEADER_LEN as u32)));
}

/// A damaged header (any bit of any byte: magic, version, id, checksum) in front of valid records
/// is corruption at offset 0, skipping or not: the header itself was damaged.
#[test]
fn bad_header_before_valid_records_is_corruption_at_offset_0() {
    let segment = synced_segment();
    for at in 0..SEGMENT_HEADER_LEN {
        for bit in 0..8 {
            let mut bytes = segment.bytes.clone();
            bytes[at] ^= 1 << bit;
            for skip in [false, true] {
                assert_eq!(corrupt_offset(scan_segment(&bytes, options(false, skip))), 0, "byte {at} bit {bit}");
            }
        }
    }
}

/// A valid header carrying another segment's id, in front of records of this segment, is
/// corruption at offset 0.
#[test]
fn header_with_another_segments_id_before_this_segments_records_is_corruption() {
    let mut bytes = synced_segment().bytes;
    bytes[..SEGMENT_HEADER_LEN].copy_from_slice(&encode_segment_header(ID + 1));
    for skip in [false, true] {
        assert_eq!(corrupt_offset(scan_segment(&bytes, options(false, skip))), 0);
    }
    check_scan(&bytes);
}

/// A file named for segment [`ID`] whose intact header and records all belong to another
/// segment. No crash leaves this (a reused file gets its new header synced before it is renamed to
/// the live name), so it is corruption at offset 0, never an unwritten segment to delete.
#[test]
fn header_with_another_segments_id_is_corruption() {
    let other = Segment::new(ID + 1).mutations(3, Synced::UpToItself).seal(Synced::UpToItself);
    assert_eq!(corrupt_offset(scan(&other.bytes)), 0);
}

// ---- Recipes -------------------------------------------------------------------------------------

/// Seed recipes for `segment_from_recipe` (also in the fuzz corpus): the first byte picks the
/// header, then `op, arg` pairs: `0` record (`arg` bits 7–6: durable_before = last sync, or `10`
/// its own offset; bits 5–0: body length), `2` seal, `3` stale record, `4` sync, `5` zeros, `6` bit
/// flip (`arg` bit, then a u16 distance from the end), `7` truncate (`arg` bit 7 set) or raw bytes.
const RECIPES: [&[u8]; 5] = [
    // Record, sync, record proving it, seal.
    &[0, 0, 4, b'a', b'b', b'c', b'd', 4, 0, 0, 0x83, b'x', b'y', b'z', 2, 0],
    // Three records each proving the previous; a flip in the second; a stale record; zeros.
    &[0, 0, 0x82, 1, 2, 0, 0x82, 3, 4, 0, 0x82, 5, 6, 6, 3, 40, 0, 3, 5, 9, 9, 9, 9, 9, 0xff, 0xff, 0, 0, 5, 64],
    // Another segment's header in front of records of this one.
    &[2, 0, 0x82, 1, 2, 2, 0],
    // Two records, the last one cut, zeros after.
    &[0, 0, 0x82, 1, 2, 0, 0x82, 3, 4, 7, 0x8a, 5, 30],
    // A record of an unknown kind between records.
    &[0, 0, 0x82, 1, 2, 2, 0xf5, 0, 0x82, 1, 2],
];

/// The seed recipes build the segments their comments describe.
#[test]
fn seed_recipes_build_the_segments_they_describe() {
    let scans: Vec<_> = RECIPES
        .iter()
        .map(|r| {
            let bytes = segment_from_recipe(r);
            check_scan(&bytes);
            let strict = scan_segment(&bytes, ScanOptions { expected_id: RECIPE_ID, followed_by_records: false, skip_corrupt: false })
                .map(|s| (s.records.len(), s.end))
                .map_err(|e| corrupt_offset(Err(e)));
            let skipping = scan_segment(&bytes, ScanOptions { expected_id: RECIPE_ID, followed_by_records: false, skip_corrupt: true })
                .map(|s| (s.records.len(), s.skipped.len()))
                .map_err(|e| corrupt_offset(Err(e)));
            (strict, skipping)
        })
        .collect();
    // Records are 24 + 1 + body bytes; a 2-byte mutation makes a 6-byte body, a 31-byte record.
    assert_eq!(scans[0], (Ok((3, SegmentEnd::Sealed(24 + 33 + 32 + 25))), Ok((3, 0))));
    assert_eq!(scans[1], (Err(55), Ok((2, 1))));
    assert_eq!(scans[2].0, Err(0));
    assert_eq!(scans[3], (Ok((1, SegmentEnd::Open(55))), Ok((1, 0))));
    assert_eq!(scans[4], (Err(55), Err(55)));
}

// ---- Random inputs ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..600)) {
        check_scan(&data);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(data in vec(any::<u8>(), 0..600)) {
        let mut bytes = encode_segment_header(ID).to_vec();
        bytes.extend_from_slice(&data);
        check_scan(&bytes);
    }

    /// Segments built from random recipes (valid, stale, damaged and unknown records, syncs,
    /// zeros, truncations) obey the scan rules.
    #[test]
    fn random_recipes_obey_the_scan_rules(recipe in vec(any::<u8>(), 0..400)) {
        check_scan(&segment_from_recipe(&recipe));
    }
}

// ---- Fuzz corpus --------------------------------------------------------------------------------

/// Runs the fuzz target's checks over every stored corpus file (as segment bytes and as a recipe),
/// so the stable suite exercises them.
#[test]
fn fuzz_corpus_obeys_the_scan_rules() {
    let files = support::corpus_files("commitlog_segment");
    let mut with_records = 0;
    for bytes in &files {
        check_scan(bytes);
        check_scan(&segment_from_recipe(bytes));
        let id = ScanOptions { expected_id: ID, followed_by_records: false, skip_corrupt: true };
        with_records += usize::from(scan_segment(bytes, id).is_ok_and(|s| !s.records.is_empty()));
    }
    assert!(files.len() >= 20, "only {} corpus files", files.len());
    assert!(with_records >= 10, "only {with_records} corpus segments with records");
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test commitlog_segment -- --ignored
/// generate_fuzz_corpus`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| files.push((name.to_string(), bytes));

    // Valid segments.
    add("valid-00", synced_segment().bytes);
    add("valid-01", Segment::new(ID).mutations(6, Synced::At(SEGMENT_HEADER_LEN)).bytes);
    add("valid-02", Segment::new(ID).mutations(1, Synced::UpToItself).zero_filled(256).bytes);
    add("valid-03", Segment::new(ID).zero_filled(64).bytes);
    let head = Segment::new(ID).mutations(2, Synced::UpToItself);
    let at = head.records[1];
    add("valid-04", head.mutations(3, Synced::At(at)).bytes);
    add("sealed-00", synced_segment().seal(Synced::UpToItself).bytes);
    add("sealed-01", synced_segment().seal(Synced::UpToItself).zero_filled(512).bytes);
    add("sealed-02", Segment::new(ID).seal(Synced::UpToItself).zero_filled(32).bytes);
    add("sealed-03", synced_segment().seal(Synced::UpToItself).mutations(1, Synced::UpToItself).bytes);
    add("unknown-kind", synced_segment().record(Synced::UpToItself, 9, b"future").bytes);

    // Recycled: the new segment over an older one.
    let old = Segment::new(ID - 1).record(Synced::UpToItself, RECORD_MUTATIONS, b"x").mutations(5, Synced::UpToItself);
    let old = old.seal(Synced::UpToItself);
    for (i, new) in
        [Segment::new(ID).mutations(2, Synced::UpToItself), Segment::new(ID).mutations(1, Synced::UpToItself).seal(Synced::UpToItself)]
            .into_iter()
            .enumerate()
    {
        let mut file = old.bytes.clone();
        file[..new.bytes.len()].copy_from_slice(&new.bytes);
        add(&format!("recycled-{i:02}"), file);
    }

    // Torn tails: cut, zeroed, garbage.
    let segment = synced_segment();
    let last = *segment.records.last().unwrap();
    for (i, (at, how)) in
        [(last + 1, 0), (last + 30, 0), (last + 10, 1), (last, 1), (last + 5, 2), (segment.bytes.len() - 1, 2)].into_iter().enumerate()
    {
        add(&format!("torn-{i:02}"), tear(&segment.bytes, at, how));
    }

    // Bit flips in proven synced records, in each field, and in the header.
    for (i, (record, field)) in [(0, 0), (0, 5), (1, 9), (1, 17), (2, 24), (2, 40)].into_iter().enumerate() {
        let mut bytes = segment.bytes.clone();
        bytes[segment.records[record] + field] ^= 0x08;
        add(&format!("flipped-{i:02}"), bytes);
    }
    let mut zeroed = segment.bytes.clone();
    zeroed[segment.records[1]..segment.records[2]].fill(0);
    add("zeroed-record", zeroed);
    for (i, at) in [2, 12, 20].into_iter().enumerate() {
        let mut bytes = segment.bytes.clone();
        bytes[at] ^= 0x01;
        add(&format!("bad-header-{i:02}"), bytes);
    }
    let mut foreign = segment.bytes.clone();
    foreign[..SEGMENT_HEADER_LEN].copy_from_slice(&encode_segment_header(ID + 1));
    add("foreign-header", foreign);
    add("torn-header", encode_segment_header(ID)[..13].to_vec());
    add("zero-header", vec![0; 128]);

    // Recipes for `segment_from_recipe`: records, syncs, seals, stale records, zeros, flips.
    for (i, recipe) in RECIPES.iter().enumerate() {
        add(&format!("recipe-{i:02}"), recipe.to_vec());
    }

    support::write_corpus("commitlog_segment", files, |bytes| {
        assert!(bytes.len() <= 8 << 10, "a seed of {} bytes", bytes.len());
        check_scan(bytes);
        check_scan(&segment_from_recipe(bytes));
    });
}
