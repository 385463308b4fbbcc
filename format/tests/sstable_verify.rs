//! `talus_format::sstable::verify`: sound files verify clean (raw and zstd, narrow and wide
//! partitions, an empty sstable); every kind of damage is found: a flipped bit anywhere (every bit
//! of a small file), a block swapped with another of equal length, truncation, and damage that
//! keeps every checksum valid (forged statistics, a forged partition index, a hidden block); and
//! arbitrary damage never panics.

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use support::sample_stream::{prefix, sample_stream};

use bytes::Bytes;
use proptest::prelude::*;
use talus_format::schema::Compression;
use talus_format::sstable::block::BlockHandle;
use talus_format::sstable::footer::{Footer, Section, FOOTER_LEN};
use talus_format::sstable::index::{decode_partition_index, encode_partition_index};
use talus_format::sstable::reader::SstableReader;
use talus_format::sstable::statistics::{SstableOrigin, Statistics};
use talus_format::sstable::verify::{verify, verify_source, VerifyReport};
use talus_format::sstable::writer::{SstableSeal, SstableWriter, SstableWriterOptions};
use talus_format::{Cell, ColumnId, Fragment, GcTime, PartitionKey, Row, RowMarker, RowTombstone, TableId, Timestamp, Tombstone};

const FILE_ID: u64 = 11;

fn write(fragments: &[Fragment], block_size: usize, compression: Compression) -> Vec<u8> {
    let options = SstableWriterOptions { block_size, compression, bloom_false_positive_rate: 0.01 };
    let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(3));
    for f in fragments {
        writer.add(f).unwrap();
    }
    writer.finish(SstableSeal::at(GcTime(0))).unwrap().0
}

fn check(bytes: &[u8]) -> VerifyReport {
    verify_source(Arc::new(Bytes::copy_from_slice(bytes)), Some(FILE_ID))
}

fn assert_clean(bytes: &[u8], what: &str) -> VerifyReport {
    let report = check(bytes);
    assert!(report.is_clean() && report.stream_checked, "{what}: {:#?}", report.problems);
    report
}

fn assert_damaged(bytes: &[u8], what: &str) -> VerifyReport {
    let report = check(bytes);
    assert!(!report.is_clean(), "{what}: damage not found");
    report
}

fn footer_of(bytes: &[u8]) -> Footer {
    Footer::decode(&bytes[bytes.len() - FOOTER_LEN..], bytes.len() as u64, Some(FILE_ID)).unwrap()
}

/// Every distinct data block of a file, in file order.
fn blocks_of(bytes: &[u8]) -> Vec<BlockHandle> {
    let reader = SstableReader::open(Arc::new(Bytes::copy_from_slice(bytes)), Some(FILE_ID), None).unwrap();
    reader.block_handles().unwrap()
}

/// Replaces the sections (row index, partition index, filter, statistics) of `bytes` by `new`
/// with valid checksums and footer: damage no checksum can see.
fn forge(bytes: &[u8], edit: impl FnOnce(&mut [Vec<u8>; 4])) -> Vec<u8> {
    let footer = footer_of(bytes);
    let section = |s: &Section| bytes[s.offset as usize..(s.offset + s.len) as usize].to_vec();
    let mut sections = [section(&footer.row_index), section(&footer.partition_index), section(&footer.filter), section(&footer.statistics)];
    edit(&mut sections);
    let mut out = bytes[..footer.data_end() as usize].to_vec();
    let mut new = Footer { file_id: FILE_ID, ..Footer::default() };
    let slots = [&mut new.row_index, &mut new.partition_index, &mut new.filter, &mut new.statistics];
    for (slot, s) in slots.into_iter().zip(&sections) {
        *slot = Section::describe(s, out.len() as u64, FILE_ID);
        out.extend_from_slice(s);
    }
    new.encode(&mut out);
    out
}

#[test]
fn sound_files_verify_clean() {
    for (seed, partitions, max_rows) in [(1, 1, 0), (2, 3, 5), (3, 8, 40), (4, 2, 120), (5, 20, 10)] {
        let fragments = sample_stream(seed, partitions, max_rows);
        for block_size in [64, 300, 4096] {
            for compression in [Compression::None, Compression::Zstd { level: 1 }] {
                let bytes = write(&fragments, block_size, compression);
                let report = assert_clean(&bytes, &format!("seed {seed}, block size {block_size}, {compression:?}"));
                let rows = fragments.iter().filter(|f| matches!(f, Fragment::Row { .. })).count() as u64;
                assert_eq!((report.partitions, report.rows, report.fragments), (partitions as u64, rows, fragments.len() as u64));
                assert_eq!(report.blocks, blocks_of(&bytes).len() as u64);
                assert_eq!(report.file_len, bytes.len() as u64);
                assert_eq!(report.file_id, Some(FILE_ID));
                assert!(report.uncompressed_bytes > 0 && report.data_bytes > 0);
            }
        }
    }
}

#[test]
fn an_empty_sstable_verifies_clean() {
    let report = assert_clean(&write(&[], 64, Compression::None), "empty");
    assert_eq!((report.blocks, report.partitions, report.data_bytes), (0, 0, 0));
}

#[test]
fn verify_through_an_open_reader() {
    let bytes = Bytes::from(write(&sample_stream(9, 4, 30), 64, Compression::None));
    let reader = SstableReader::open(Arc::new(bytes), Some(FILE_ID), None).unwrap();
    let report = verify(&reader);
    assert!(report.is_clean() && report.stream_checked, "{:?}", report.problems);
}

#[test]
fn every_bit_flip_is_found() {
    let bytes = write(&sample_stream(6, 3, 12), 64, Compression::None);
    assert_clean(&bytes, "original");
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            assert_damaged(&damaged, &format!("bit {bit} of byte {at}"));
        }
    }
}

#[test]
fn a_flipped_bit_in_each_structure_is_named() {
    let bytes = write(&sample_stream(7, 4, 30), 64, Compression::Zstd { level: 1 });
    let footer = footer_of(&bytes);
    let flip = |at: u64| {
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 0x10;
        check(&damaged)
    };
    let blocks = blocks_of(&bytes);
    assert!(blocks.len() >= 3);
    for b in &blocks {
        let report = flip(b.offset + u64::from(b.len) / 2);
        assert!(report.file_id.is_some(), "a damaged block must not stop the file from opening");
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!((report.problems[0].structure, report.problems[0].offset), ("sstable data block", b.offset));
        assert!(report.problems[0].reason.contains("checksum"), "{}", report.problems[0]);
        assert!(!report.stream_checked);
        assert_eq!(report.blocks, blocks.len() as u64, "every other block is still checked");
    }
    let sections = [
        (footer.row_index, "sstable row index"),
        (footer.partition_index, "sstable partition index"),
        (footer.filter, "bloom filter"),
        (footer.statistics, "sstable statistics"),
    ];
    for (section, structure) in sections {
        assert!(section.len > 0, "{structure} is empty");
        let report = flip(section.offset + section.len / 2);
        assert_eq!(report.file_id, None, "{structure}: the file must not open");
        assert_eq!(report.problems.len(), 1);
        assert_eq!((report.problems[0].structure, report.problems[0].offset), (structure, section.offset), "{}", report.problems[0]);
    }
    for at in [0, 5, 8, 20, FOOTER_LEN as u64 - 1] {
        let report = flip(bytes.len() as u64 - FOOTER_LEN as u64 + at);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].structure, "sstable footer", "{}", report.problems[0]);
    }
}

#[test]
fn a_block_swapped_with_one_of_equal_length_is_found() {
    // Rows of equal size in one partition: raw blocks of equal length.
    let key = PartitionKey::from_legacy_bytes(Bytes::from_static(b"wide")).decorate();
    let mut fragments = vec![Fragment::PartitionStart { key, tombstone: Tombstone::NONE }];
    for k in 0..40u8 {
        let cells = [(ColumnId(0), Cell::Live { timestamp: Timestamp(1), value: Bytes::from_static(b"0123456789") })];
        fragments.push(Fragment::Row {
            key: prefix(k),
            row: Row { tombstone: RowTombstone::default(), marker: RowMarker::Missing, cells: cells.into_iter().collect() },
        });
    }
    fragments.push(Fragment::PartitionEnd);
    let bytes = write(&fragments, 64, Compression::None);
    assert_clean(&bytes, "original");
    let blocks = blocks_of(&bytes);
    let (a, b) = blocks
        .iter()
        .enumerate()
        .find_map(|(i, a)| blocks[i + 1..].iter().find(|b| b.len == a.len).map(|b| (*a, *b)))
        .expect("two blocks of equal length");
    let mut swapped = bytes.clone();
    let (ra, rb) = (a.offset as usize..a.end() as usize, b.offset as usize..b.end() as usize);
    swapped[ra.clone()].copy_from_slice(&bytes[rb.clone()]);
    swapped[rb].copy_from_slice(&bytes[ra]);
    assert_ne!(swapped, bytes);
    let report = assert_damaged(&swapped, "swapped blocks");
    let offsets: Vec<u64> = report.problems.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![a.offset, b.offset], "{:?}", report.problems);
}

#[test]
fn every_truncation_is_found() {
    let bytes = write(&sample_stream(8, 3, 20), 64, Compression::None);
    for len in 0..bytes.len() {
        let report = assert_damaged(&bytes[..len], &format!("truncated to {len}"));
        assert_eq!(report.file_id, None, "truncated to {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_damaged(&longer, "one byte appended");
}

#[test]
fn a_file_of_another_generation_is_rejected() {
    let bytes = Bytes::from(write(&sample_stream(3, 2, 4), 64, Compression::None));
    let report = verify_source(Arc::new(bytes), Some(FILE_ID + 1));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].reason.contains("file id"), "{}", report.problems[0]);
}

#[test]
fn forged_statistics_are_found() {
    let bytes = write(&sample_stream(10, 5, 30), 64, Compression::None);
    let forged = forge(&bytes, |s| {
        let mut stats = Statistics::decode(&s[3]).unwrap();
        stats.counts.rows += 1;
        stats.max_timestamp = Timestamp(stats.max_timestamp.0 + 1);
        s[3].clear();
        stats.encode(&mut s[3]);
    });
    let report = assert_damaged(&forged, "forged statistics");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!((p.structure, p.offset), ("sstable statistics", footer_of(&forged).statistics.offset));
    assert!(p.reason.contains("rows: stored") && p.reason.contains("max timestamp: stored"), "{p}");
    assert!(report.stream_checked);
}

#[test]
fn a_forged_partition_index_is_found() {
    let bytes = write(&sample_stream(12, 6, 30), 64, Compression::None);
    let base = footer_of(&bytes).partition_index.offset;
    // A wrong highest timestamp: only the entry disagrees.
    let forged = forge(&bytes, |s| {
        let mut entries = decode_partition_index(&s[1], base).unwrap();
        entries[2].max_timestamp = Timestamp(entries[2].max_timestamp.0 - 1);
        s[1].clear();
        encode_partition_index(&entries, &mut s[1]);
    });
    let report = assert_damaged(&forged, "forged max timestamp");
    assert!(report.problems.iter().all(|p| p.structure == "sstable partition index"), "{:?}", report.problems);
    assert!(report.problems[0].reason.contains("entry 2") && report.problems[0].reason.contains("max timestamp"));
    // A wrong block length: the entry and the row index name one block with two lengths.
    let forged = forge(&bytes, |s| {
        let mut entries = decode_partition_index(&s[1], base).unwrap();
        let wide = entries.iter_mut().find(|e| e.row_index.is_some()).expect("a wide partition");
        wide.block.len += 1;
        s[1].clear();
        encode_partition_index(&entries, &mut s[1]);
    });
    let report = assert_damaged(&forged, "two lengths");
    assert!(report.problems.iter().any(|p| p.reason.contains("two lengths")), "{:?}", report.problems);
    // A dropped entry: its partition is in the data but not indexed.
    let forged = forge(&bytes, |s| {
        let mut entries = decode_partition_index(&s[1], base).unwrap();
        entries.remove(3);
        s[1].clear();
        encode_partition_index(&entries, &mut s[1]);
    });
    assert_damaged(&forged, "dropped entry");
}

#[test]
fn a_block_no_index_reaches_is_a_gap() {
    // Narrow partitions in blocks of their own: dropping the entry of one whose block holds only
    // it leaves a gap in the data region.
    let (bytes, reader, victim) = (13u64..200)
        .find_map(|seed| {
            let bytes = write(&sample_stream(seed, 6, 2), 16, Compression::None);
            let reader = SstableReader::open(Arc::new(Bytes::from(bytes.clone())), Some(FILE_ID), None).unwrap();
            let p = reader.partitions().entries().unwrap();
            let victim = (1..p.len().saturating_sub(1))
                .find(|&i| p[i].row_index.is_none() && p[i - 1].block != p[i].block && p[i + 1].block != p[i].block)?;
            Some((bytes, reader, victim))
        })
        .expect("a partition alone in its block");
    let hidden = reader.partitions().entries().unwrap()[victim].block;
    let base = footer_of(&bytes).partition_index.offset;
    let forged = forge(&bytes, |s| {
        let mut entries = decode_partition_index(&s[1], base).unwrap();
        entries.remove(victim);
        s[1].clear();
        encode_partition_index(&entries, &mut s[1]);
    });
    let report = assert_damaged(&forged, "hidden block");
    let p = &report.problems[0];
    assert_eq!((p.structure, p.offset), ("sstable data block", hidden.offset), "{p}");
    assert!(p.reason.contains("no indexed block"), "{p}");
    assert!(!report.stream_checked);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_files_verify_clean(seed in any::<u64>(), partitions in 0usize..10, max_rows in 0u64..80, block_size in 16usize..600, zstd in any::<bool>()) {
        let compression = if zstd { Compression::Zstd { level: 1 } } else { Compression::None };
        let bytes = write(&sample_stream(seed, partitions, max_rows), block_size, compression);
        assert_clean(&bytes, "random file");
    }

    /// Damage behind valid checksums: edited block contents (resealed at their offsets) or
    /// edited sections (with a rebuilt footer) reach the decoders and every cross-check.
    #[test]
    fn resealed_damage_never_panics(
        seed in any::<u64>(),
        section in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let bytes = write(&sample_stream(seed, 4, 30), 64, Compression::None);
        let damaged = if section == 4 {
            let mut out = bytes.clone();
            let blocks = blocks_of(&bytes);
            let b = blocks[edits[0].0.index(blocks.len())];
            let mut content = bytes[b.offset as usize..b.offset as usize + b.len as usize].to_vec();
            for (at, byte) in &edits {
                let i = at.index(content.len());
                content[i] = *byte;
            }
            let mut block = Vec::new();
            talus_format::sstable::block::write_block(&content, Compression::None, FILE_ID, b.offset, &mut block);
            out[b.offset as usize..b.end() as usize].copy_from_slice(&block);
            out
        } else {
            forge(&bytes, |s| {
                let target = &mut s[section];
                for (at, byte) in &edits {
                    if !target.is_empty() {
                        let i = at.index(target.len());
                        target[i] = *byte;
                    }
                }
            })
        };
        let _ = check(&damaged);
    }

    #[test]
    fn arbitrary_damage_never_panics(seed in any::<u64>(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = write(&sample_stream(seed, 4, 30), 64, Compression::None);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = check(&bytes);
    }
}
