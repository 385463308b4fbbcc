//! Golden vectors of the sstable format (`docs/format.md`, "SSTables"): a small fixed sstable
//! pinned byte for byte, and the trailer layout of a zstd block. A change to any encoding (blocks,
//! fragment records, indexes, filter, statistics, footer) or to the writer's block cuts fails
//! here; update the vectors and the document together, and bump the format version when old files
//! would no longer read.

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use talus_format::schema::Compression;
use talus_format::sstable::block::{read_block, write_block, BlockHandle, BLOCK_TRAILER_LEN};
use talus_format::sstable::reader::{ReadCounters, ReadPlan, SstableReader};
use talus_format::sstable::statistics::{CommitlogInterval, SstableOrigin};
use talus_format::sstable::verify::verify_source;
use talus_format::sstable::writer::{SstableSeal, SstableWriter, SstableWriterOptions};
use talus_format::{
    Cell, ClusteringPrefix, ColumnId, Fragment, GcTime, PartitionKey, Position, RangeTombstoneChange, ReplayPosition, Row, RowMarker,
    RowTombstone, TableId, Timestamp, Tombstone,
};
use xxhash_rust::xxh3::xxh3_64;

const FILE_ID: u64 = 42;

fn prefix(k: u8) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::copy_from_slice(&[k]), 1)
}

fn live(ts: i64, value: &'static [u8]) -> Cell {
    Cell::Live { timestamp: Timestamp(ts), value: Bytes::from_static(value) }
}

fn row(k: u8, ts: i64, value: &'static [u8]) -> Fragment {
    Fragment::Row {
        key: prefix(k),
        row: Row {
            tombstone: RowTombstone::default(),
            marker: RowMarker::Live { timestamp: Timestamp(ts) },
            cells: [(ColumnId(0), live(ts, value))].into_iter().collect(),
        },
    }
}

fn rtc(position: Position, tombstone: Tombstone) -> Fragment {
    Fragment::RangeTombstoneChange(RangeTombstoneChange { position, tombstone })
}

/// Three partitions in token order: "b" with a static row and one row; "a", wide over three
/// blocks, with a range tombstone `[before(2), after(4))` at (10, 100); "c" with only a partition
/// tombstone (20, 200).
fn fragments() -> Vec<Fragment> {
    let key = |k: &'static [u8]| PartitionKey::from_legacy_bytes(Bytes::from_static(k)).decorate();
    let mut keyed = vec![
        (key(b"b"), vec![Fragment::StaticRow([(ColumnId(1), live(3, b"s"))].into_iter().collect()), row(1, 4, b"x")], Tombstone::NONE),
        (
            key(b"a"),
            vec![
                row(1, 5, b"one"),
                rtc(Position::before_key(prefix(2)), Tombstone::new(Timestamp(10), GcTime(100))),
                row(2, 6, b"two"),
                row(3, 7, b"three"),
                row(4, 8, b"four"),
                rtc(Position::after_key(prefix(4)), Tombstone::NONE),
                row(5, 9, b"five"),
                row(6, 11, b"six"),
            ],
            Tombstone::NONE,
        ),
        (key(b"c"), vec![], Tombstone::new(Timestamp(20), GcTime(200))),
    ];
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
        .into_iter()
        .flat_map(|(key, body, tombstone)| {
            std::iter::once(Fragment::PartitionStart { key, tombstone }).chain(body).chain(std::iter::once(Fragment::PartitionEnd))
        })
        .collect()
}

fn golden_file() -> Vec<u8> {
    let options = SstableWriterOptions { block_size: 64, compression: Compression::None, bloom_false_positive_rate: 0.01 };
    let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(1));
    for f in fragments() {
        writer.add(&f).unwrap();
    }
    let interval = CommitlogInterval { start: ReplayPosition { segment: 1, offset: 24 }, end: ReplayPosition { segment: 2, offset: 0 } };
    writer.finish(SstableSeal { commitlog_interval: Some(interval), ..SstableSeal::at(GcTime(0)) }).unwrap().0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.lines().flat_map(|l| l.split("//").next().unwrap_or("").bytes()).filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// The golden file, annotated as in `docs/format.md` ("SSTables", example); everything after `//`
/// on a line is a comment.
const GOLDEN: &str = "
// data block at 0: 86 stored bytes
01 01 61 00                                               // partition start 'a', no tombstone
03 010101 00 00 01 0500000000000000 01 00 00 0500000000000000 03 6f6e65   // row 1, marker ts 5, col 0 'one'
04 ff 010102 01 0a00000000000000 6400000000000000         // rtc before(2) -> (10, 100)
03 010102 00 00 01 0600000000000000 01 00 00 0600000000000000 03 74776f   // row 2
00 56000000 f6a169b4d42f4e33                              // trailer: raw, 86 bytes, xxh3
// data block at 99: 69 stored bytes
03 010103 00 00 01 0700000000000000 01 00 00 0700000000000000 05 7468726565   // row 3
03 010104 00 00 01 0800000000000000 01 00 00 0800000000000000 04 666f7572     // row 4
04 01 010104 00                                           // rtc after(4) -> none
00 45000000 5bb25da47836d6e5                              // trailer
// data block at 181: 62 stored bytes
03 010105 00 00 01 0900000000000000 01 00 00 0900000000000000 04 66697665     // row 5
03 010106 00 00 01 0b00000000000000 01 00 00 0b00000000000000 03 736978       // row 6
05                                                        // partition end
00 3e000000 2941004aab015412                              // trailer
// data block at 256: 68 stored bytes
01 01 63 01 1400000000000000 c800000000000000             // partition start 'c', tombstone (20, 200)
05                                                        // partition end
01 01 62 00                                               // partition start 'b'
02 01 01 00 0300000000000000 01 73                        // static row: col 1 live ts 3 's'
03 010101 00 00 01 0400000000000000 01 00 00 0400000000000000 01 78   // row 1
05                                                        // partition end
00 44000000 af8b9d70c86cc6e6                              // trailer
// row index section at 337: 75 bytes, the row index of 'a'
03                                                        // 3 blocks
00 56 00010101 00010102 0a00000000000000 00               // block 0+86, at(1)..at(2), max ts 10, open none
63 45 00010103 01010104 0a00000000000000 01 0a00000000000000 6400000000000000   // block 99+69, open (10, 100)
b501 3e 00010105 00010106 0b00000000000000 00             // block 181+62
// partition index section at 412: 110 bytes
03                                                        // 3 partitions
01 61 00 00 56 00 06                                      // 'a': block 0+86, byte 0; clustering, row index
00010101 00010106 00 4b                                   //   at(1)..at(6); row index at 0, 75 bytes
01 ff010102 01010104 01 0a00000000000000 6400000000000000 //   1 summarized range tombstone
0b00000000000000                                          //   max ts 11
01 63 01 1400000000000000 c800000000000000 8002 44 00 00 00 1400000000000000   // 'c': block 256+68
01 62 00 8002 44 15 03 00010101 00010101 00 0400000000000000  // 'b': byte 21, static row, at(1)..at(1)
// bloom filter section at 522: 67 bytes
01 06 01                                                  // version 1, 6 probes, 1 block
8208000020000001008000040801004000000000000010001000000000000000
0000000000000000000104000802000000200000000000000000000000008000
// statistics section at 589: 142 bytes
01 00 01000000000000000000000000000000 00 0000000000000000   // flush, table 1, level 0, run 0
0000000000000000 9d02                                     // created at 0, 285 bytes
03 07 01 01 00 00 00                                      // counts
01 01 61 01 62                                            // key range 'a' .. 'b'
0300000000000000 1400000000000000 0300000000000000 0400000000000000   // timestamps
6400000000000000 ffffffffffffff7f                         // deletion times 100 .. never
01 0100000000000000 18000000 0200000000000000 00000000    // commitlog interval 1:24 .. 2:0
64 02 6400000000000000 01 c800000000000000 01             // histogram: 100 -> 1, 200 -> 1
// footer at 731: 120 bytes
544c5353 01 000000 2a00000000000000                       // TLSS, version 1, file id 42
5101000000000000 4b00000000000000 f99ca22d212ce9cb        // row index 337+75
9c01000000000000 6e00000000000000 24fc439a3482d2f4        // partition index 412+110
0a02000000000000 4300000000000000 45b29bbfa0633c5a        // filter 522+67
4d02000000000000 8e00000000000000 ddd4824abec81be9        // statistics 589+142
0b4f5f2a0119fb84                                          // footer checksum
";

#[test]
fn the_golden_sstable_is_pinned() {
    let bytes = golden_file();
    let expected = unhex(GOLDEN);
    assert!(bytes == expected, "the sstable encoding changed; the file is now {} bytes:\n{}", bytes.len(), hex(&bytes));
}

#[test]
fn the_golden_sstable_reads_back_and_verifies() {
    let bytes = Bytes::from(unhex(GOLDEN));
    let report = verify_source(Arc::new(bytes.clone()), Some(FILE_ID));
    assert!(report.is_clean() && report.stream_checked, "{:?}", report.problems);
    assert_eq!((report.blocks, report.partitions, report.rows), (4, 3, 7));
    let reader = Arc::new(SstableReader::open(Arc::new(bytes), Some(FILE_ID), None).unwrap());
    let all = reader.stream(0..reader.partitions().len(), Arc::new(ReadPlan::full()), Arc::new(ReadCounters::default()));
    assert_eq!(all.map(Result::unwrap).collect::<Vec<_>>(), fragments());
    let entries = reader.partitions().entries().unwrap();
    let wide = entries.iter().find(|p| p.key.key.as_bytes().as_ref() == b"a").unwrap();
    assert_eq!(reader.row_index(wide).unwrap().len(), 3, "the wide partition spans three blocks");
}

/// `docs/format.md` ("SSTables", "Example") lists the same bytes.
#[test]
fn the_document_shows_the_golden_sstable() {
    let doc = include_str!("../../docs/format.md");
    let example = doc.split("### Example").nth(1).expect("an Example section");
    let listing = example.split("```text").nth(1).and_then(|s| s.split("```").next()).expect("a listing");
    assert_eq!(hex(&unhex(listing)), hex(&unhex(GOLDEN)));
}

/// A zstd block: stored bytes are a zstd frame, the trailer is `01 | uncompressed length u32 LE |
/// xxh3(stored ‖ 01 ‖ length ‖ file id u64 LE ‖ offset u64 LE)`.
#[test]
fn a_zstd_block_trailer_is_pinned() {
    let content: Vec<u8> = (0..200u32).map(|i| b"talus-"[i as usize % 6]).collect();
    let offset = 1000;
    let mut out = Vec::new();
    let handle = write_block(&content, Compression::Zstd { level: 3 }, FILE_ID, offset, &mut out);
    assert_eq!(handle, BlockHandle { offset, len: (out.len() - BLOCK_TRAILER_LEN) as u32 });
    let (stored, trailer) = out.split_at(handle.len as usize);
    assert_eq!(stored[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert!(stored.len() < content.len());
    let mut inputs = stored.to_vec();
    inputs.extend_from_slice(&unhex("01 c8000000 2a00000000000000 e803000000000000"));
    let mut expected = unhex("01 c8000000");
    expected.extend_from_slice(&xxh3_64(&inputs).to_le_bytes());
    assert_eq!(hex(trailer), hex(&expected));
    let out = Bytes::from(out);
    assert_eq!(read_block(&out, handle, FILE_ID).unwrap().as_ref(), &content[..]);
    // Bound to its place: another offset or file id fails.
    assert!(read_block(&out, BlockHandle { offset: offset + 1, ..handle }, FILE_ID).is_err());
    assert!(read_block(&out, handle, FILE_ID + 1).is_err());
    // Content that does not shrink is stored raw (compression byte 00) even when zstd is asked.
    let mut raw = Vec::new();
    let handle = write_block(b"ab", Compression::Zstd { level: 3 }, FILE_ID, 0, &mut raw);
    let sum = xxh3_64(&unhex("6162 00 02000000 2a00000000000000 0000000000000000"));
    assert_eq!(hex(&raw), format!("61620002000000{}", hex(&sum.to_le_bytes())));
    assert_eq!(handle.len, 2);
}
