//! The stored fuzz corpora of the sstable decoders (`fuzz/corpus/sstable_block`, `sstable_index`,
//! `sstable_footer`), seeded from real sstables written by `SstableWriter`: the stable suite runs
//! each fuzz target's check (`block::check_block`, `index::check_index`, `footer::check_decode`)
//! over every stored file and over random and mutated inputs. The ignored `generate_*` tests
//! rewrite the corpora: `cargo test -p talus-format --test sstable_corpus -- --ignored`.

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use support::sample_stream::sample_stream;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use talus_format::schema::Compression;
use talus_format::sstable::block::{check_block, read_block, write_block, BlockHandle, BLOCK_TRAILER_LEN};
use talus_format::sstable::footer::{check_decode, Footer, FOOTER_LEN};
use talus_format::sstable::index::{check_index, decode_partition_index, decode_row_index};
use talus_format::sstable::reader::{ReadCounters, SstableReader};
use talus_format::sstable::statistics::SstableOrigin;
use talus_format::sstable::writer::{SstableSeal, SstableWriter, SstableWriterOptions};
use talus_format::{GcTime, TableId};

const BLOCK: &str = "sstable_block";
const INDEX: &str = "sstable_index";
const FOOTER: &str = "sstable_footer";

const FILE_ID: u64 = 0x0102_0304_0506_0708;

/// The sstables the corpora come from: (bytes, compression).
fn sstables() -> Vec<(Vec<u8>, Compression)> {
    let specs = [
        (21, 3, 12, 64, Compression::None),
        (22, 4, 40, 300, Compression::Zstd { level: 1 }),
        (23, 2, 100, 4096, Compression::Zstd { level: 3 }),
        (24, 5, 6, 64, Compression::Zstd { level: 1 }),
        (25, 0, 0, 64, Compression::None),
    ];
    specs
        .into_iter()
        .map(|(seed, partitions, rows, block_size, compression)| {
            let options = SstableWriterOptions { block_size, compression, bloom_false_positive_rate: 0.01 };
            let mut writer = SstableWriter::new(Vec::new(), FILE_ID, options, SstableOrigin::Flush, TableId(5));
            for f in sample_stream(seed, partitions, rows) {
                writer.add(&f).unwrap();
            }
            (writer.finish(SstableSeal::at(GcTime(0))).unwrap().0, compression)
        })
        .collect()
}

fn open(bytes: &[u8]) -> SstableReader {
    SstableReader::open(Arc::new(Bytes::copy_from_slice(bytes)), Some(FILE_ID), None).unwrap()
}

/// Valid `sstable_block` inputs: up to four blocks of each sstable, rewritten at offset 0, as a
/// verified block (mode 0), a block for the forged-checksum mode (1) and bare records (2).
fn valid_block_inputs() -> Vec<Vec<u8>> {
    let (mut verified, mut forged, mut records) = (Vec::new(), Vec::new(), Vec::new());
    for (bytes, compression) in sstables() {
        let reader = open(&bytes);
        for h in reader.block_handles().unwrap().into_iter().take(4) {
            let content = reader.block(h, &ReadCounters::default()).unwrap();
            let mut block = Vec::new();
            write_block(&content, compression, FILE_ID, 0, &mut block);
            for (mode, out) in [(0u8, &mut verified), (1, &mut forged)] {
                let mut input = vec![mode];
                input.extend_from_slice(&FILE_ID.to_le_bytes());
                input.extend_from_slice(&block);
                out.push(input);
            }
            records.push([&[2u8][..], &content].concat());
        }
    }
    // Interleaved, so the truncated and corrupted copies cover every mode.
    let mut out = Vec::new();
    for i in 0..verified.len() {
        out.extend([verified[i].clone(), forged[i].clone(), records[i].clone()]);
    }
    out
}

/// Valid `sstable_index` inputs: each partition index (mode 0) and each row index (mode 1).
fn valid_index_inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (bytes, _) in sstables() {
        let reader = open(&bytes);
        let footer = reader.footer();
        let section = |offset: u64, len: u64| &bytes[offset as usize..(offset + len) as usize];
        out.push([&[0u8][..], section(footer.partition_index.offset, footer.partition_index.len)].concat());
        for entry in reader.partitions().entries().unwrap() {
            if let Some(r) = entry.row_index {
                out.push([&[1u8][..], section(footer.row_index.offset + r.offset, r.len)].concat());
            }
        }
    }
    out
}

/// Valid `sstable_footer` inputs: whole small files.
fn valid_footer_inputs() -> Vec<Vec<u8>> {
    sstables().into_iter().map(|(bytes, _)| bytes).filter(|b| b.len() < 8192).collect()
}

fn verified_block(input: &[u8]) -> bool {
    input.len() >= 9 + BLOCK_TRAILER_LEN && input[0].is_multiple_of(3) && {
        let file_id = u64::from_le_bytes(input[1..9].try_into().unwrap());
        let len = (input.len() - 9 - BLOCK_TRAILER_LEN) as u32;
        read_block(&Bytes::copy_from_slice(&input[9..]), BlockHandle { offset: 0, len }, file_id).is_ok()
    }
}

fn decoded_index(input: &[u8]) -> bool {
    match input.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => decode_partition_index(rest, 0).is_ok(),
        Some((_, rest)) => decode_row_index(rest, 0).is_ok(),
        None => false,
    }
}

fn decoded_footer(input: &[u8]) -> bool {
    input.len() >= FOOTER_LEN && Footer::decode(&input[input.len() - FOOTER_LEN..], input.len() as u64, None).is_ok()
}

/// Runs `check` over the stored corpus of `target`; at least `min_valid` files must be `valid`.
fn run_corpus(target: &str, check: fn(&[u8]) -> Result<(), String>, valid: fn(&[u8]) -> bool, min_valid: usize) {
    let files = support::corpus_files(target);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(check(f), Ok(()), "{target} corpus file {i}");
    }
    let n = files.iter().filter(|f| valid(f)).count();
    assert!(files.len() >= 10 && n >= min_valid, "{target}: {} corpus files, {n} valid", files.len());
}

#[test]
fn block_corpus_checks_clean() {
    run_corpus(BLOCK, check_block, verified_block, 4);
}

#[test]
fn index_corpus_checks_clean() {
    run_corpus(INDEX, check_index, decoded_index, 4);
}

#[test]
fn footer_corpus_checks_clean() {
    run_corpus(FOOTER, check_decode, decoded_footer, 3);
}

#[test]
fn seeds_are_valid_inputs() {
    let blocks = valid_block_inputs();
    assert!(blocks.iter().filter(|b| b[0] == 0).all(|b| verified_block(b)));
    assert!(valid_index_inputs().iter().all(|b| decoded_index(b)));
    assert!(valid_footer_inputs().iter().all(|b| decoded_footer(b)));
}

/// Regression: a block handle near `u64::MAX` made `BlockHandle::end` overflow (a panic in debug
/// builds) in the row index order check and the reader's bounds check; it is now corrupt.
#[test]
fn block_handles_past_the_largest_offset_are_corrupt() {
    for (name, at) in [("regression-row-index-offset-overflow", 1), ("regression-partition-index-offset-overflow", 4)] {
        let bytes = std::fs::read(support::corpus_dir(INDEX).join(name)).unwrap();
        assert_eq!(check_index(&bytes), Ok(()));
        let result =
            if bytes[0] == 0 { decode_partition_index(&bytes[1..], 0).map(drop) } else { decode_row_index(&bytes[1..], 0).map(drop) };
        match result {
            Err(talus_format::Error::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, at, "{name}: {reason}");
                assert!(reason.contains("largest file offset"), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let far = BlockHandle { offset: u64::MAX - 3, len: 7 };
    assert_eq!(far.end(), u64::MAX);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_inputs_pass_the_checks(bytes in vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(check_block(&bytes), Ok(()));
        prop_assert_eq!(check_index(&bytes), Ok(()));
        prop_assert_eq!(check_decode(&bytes), Ok(()));
    }

    #[test]
    fn mutated_seeds_pass_the_checks(pick in any::<prop::sample::Index>(), edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mutate = |mut b: Vec<u8>| {
            for (at, byte) in &edits {
                let i = at.index(b.len());
                b[i] = *byte;
            }
            b
        };
        static SEEDS: OnceLock<[Vec<Vec<u8>>; 3]> = OnceLock::new();
        let [blocks, indexes, footers] = SEEDS.get_or_init(|| [valid_block_inputs(), valid_index_inputs(), valid_footer_inputs()]);
        prop_assert_eq!(check_block(&mutate(pick.get(blocks).clone())), Ok(()));
        prop_assert_eq!(check_index(&mutate(pick.get(indexes).clone())), Ok(()));
        prop_assert_eq!(check_decode(&mutate(pick.get(footers).clone())), Ok(()));
    }
}

/// Rewrites `fuzz/corpus/sstable_block`.
#[test]
#[ignore]
fn generate_block_corpus() {
    support::write_corpus(BLOCK, support::seeds_from_valid(&valid_block_inputs()), |b| assert_eq!(check_block(b), Ok(())));
}

/// Rewrites `fuzz/corpus/sstable_index`.
#[test]
#[ignore]
fn generate_index_corpus() {
    support::write_corpus(INDEX, support::seeds_from_valid(&valid_index_inputs()), |b| assert_eq!(check_index(b), Ok(())));
}

/// Rewrites `fuzz/corpus/sstable_footer`.
#[test]
#[ignore]
fn generate_footer_corpus() {
    support::write_corpus(FOOTER, support::seeds_from_valid(&valid_footer_inputs()), |b| assert_eq!(check_decode(b), Ok(())));
}
