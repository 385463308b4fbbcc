//! The sstable bloom filter (`talus_format::sstable::bloom`): round trips, a pinned encoding, no
//! false negatives, the measured false-positive rate against the requested one, strict decoding of
//! damaged input (truncations, bit flips, hand-made bad headers), and the stored fuzz corpus
//! (`fuzz/corpus/sstable_filter`).

#![allow(clippy::unwrap_used)]

mod support;

use talus_format::sstable::bloom::{check_decode, key_hash, BloomFilter, MAX_PROBES};
use talus_format::{Error, PartitionKey, Value};

/// splitmix64: a small deterministic generator (the tests must not flake).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random key of 1..=40 bytes whose first byte is `tag` (distinct tags, disjoint key sets).
    fn key(&mut self, tag: u8) -> Vec<u8> {
        let len = 1 + (self.next() % 40) as usize;
        let mut key = vec![tag];
        key.extend((1..len).map(|_| self.next() as u8));
        key
    }
}

fn hashes(seed: u64, tag: u8, n: usize) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..n).map(|_| key_hash(&rng.key(tag))).collect()
}

fn encode(filter: &BloomFilter) -> Vec<u8> {
    let mut out = Vec::new();
    filter.encode(&mut out);
    out
}

/// Small filters of every kind: empty, disabled, tiny, and a few rates.
fn filters() -> Vec<BloomFilter> {
    vec![
        BloomFilter::build(&[], 0.01),
        BloomFilter::build(&hashes(1, b'm', 10), 1.0),
        BloomFilter::build(&hashes(2, b'm', 1), 0.01),
        BloomFilter::build(&hashes(3, b'm', 10), 0.1),
        BloomFilter::build(&hashes(4, b'm', 100), 0.01),
        BloomFilter::build(&hashes(5, b'm', 40), 1e-6),
    ]
}

fn is_corrupt(result: &Result<BloomFilter, Error>) -> bool {
    matches!(result, Err(Error::Corrupt { structure: "bloom filter", .. }))
}

#[test]
fn key_hash_is_xxh3_of_the_legacy_bytes() {
    let key = PartitionKey::from_values(&[Value::Int(7), Value::Text("seven".into())]).unwrap();
    assert_eq!(key_hash(key.as_bytes()), xxhash_rust::xxh3::xxh3_64(key.as_bytes()));
    assert_eq!(key_hash(b""), 0x2D06_8005_38D3_94C2);
}

#[test]
fn filters_round_trip() {
    let mut all = filters();
    all.push(BloomFilter::build(&hashes(6, b'm', 100_000), 0.01));
    all.push(BloomFilter::build(&hashes(7, b'm', 3_000), 0.5));
    for filter in all {
        let mut out = vec![0xEE]; // encode appends
        filter.encode(&mut out);
        assert_eq!(out[0], 0xEE);
        assert_eq!(out.len() - 1, filter.encoded_len(), "{filter:?}");
        assert_eq!(BloomFilter::decode(&out[1..]).unwrap(), filter);
        assert_eq!(check_decode(&out[1..]), Ok(()));
    }
}

/// The probe function and the layout are part of the file format: this pins both.
#[test]
fn encoding_is_pinned() {
    let hashes: Vec<u64> = (0..10).map(|i| key_hash(format!("k{i}").as_bytes())).collect();
    let filter = BloomFilter::build(&hashes, 0.01);
    let bytes = encode(&filter);
    assert_eq!((filter.probes(), filter.bit_len()), (6, 512));
    assert_eq!(&bytes[..3], &[1, 6, 1]);
    assert_eq!(bytes.len(), 3 + 64);
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&bytes), GOLDEN_XXH3, "{bytes:02x?}");
    assert_eq!(encode(&BloomFilter::build(&[], 0.01)), [1, 1, 0]);
    let mut disabled = vec![1, 1, 1];
    disabled.extend([0xFF; 64]);
    assert_eq!(encode(&BloomFilter::build(&hashes, 1.0)), disabled);
}

/// xxh3-64 of the pinned encoding (10 keys "k0".."k9" at rate 0.01: 6 probes, one block).
const GOLDEN_XXH3: u64 = 0x109F_7001_4619_59DB;

#[test]
fn no_false_negatives_over_100k_random_keys() {
    let members = hashes(11, b'm', 100_000);
    for rate in [1e-6, 0.01, 0.1, 0.5, 1.0] {
        let filter = BloomFilter::build(&members, rate);
        let missed = members.iter().filter(|&&h| !filter.may_contain(h)).count();
        assert_eq!(missed, 0, "rate {rate}: {missed} false negative(s)");
    }
}

/// 100k members, then as many non-member queries as give 10k expected false positives: the count
/// is binomial with a standard deviation near 100 (1%), so the 2× bounds are ~100σ away and the
/// test cannot flake (it is deterministic anyway). The sizing model predicts the rate to ~1%.
#[test]
fn measured_false_positive_rate_is_near_the_requested_one() {
    let members = hashes(21, b'm', 100_000);
    for (rate, queries) in [(0.01, 1_000_000), (0.1, 100_000)] {
        let filter = BloomFilter::build(&members, rate);
        let mut rng = Rng(22);
        let positives = (0..queries).filter(|_| filter.may_contain(key_hash(&rng.key(b'q')))).count();
        let measured = positives as f64 / queries as f64;
        assert!(measured <= rate * 2.0 && measured >= rate / 2.0, "rate {rate}: measured {measured}");
        // Not oversized either: at most 1.4× the bits of a classical (unblocked) filter.
        let classical_bits = -rate.ln() / std::f64::consts::LN_2.powi(2) * members.len() as f64;
        assert!((filter.bit_len() as f64) < classical_bits * 1.4, "rate {rate}: {} bits", filter.bit_len());
    }
}

#[test]
fn every_truncation_is_corrupt_and_every_bit_flip_is_corrupt_or_canonical() {
    for filter in filters() {
        let bytes = encode(&filter);
        let header = bytes.len() - filter.bit_len() as usize / 8;
        for len in 0..bytes.len() {
            assert!(is_corrupt(&BloomFilter::decode(&bytes[..len])), "{filter:?} cut at {len}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(check_decode(&flipped), Ok(()), "{filter:?} bit {bit}");
            let decoded = BloomFilter::decode(&flipped);
            match bit / 8 {
                0 => assert!(is_corrupt(&decoded), "version bit {bit}"),
                // Another probe count in 1..=32 is a different valid filter.
                1 => assert_eq!(decoded.is_ok(), (1..=MAX_PROBES).contains(&flipped[1]), "probe bit {bit}"),
                // Any other block count disagrees with the length of the input.
                at if at < header => assert!(is_corrupt(&decoded), "block count bit {bit}"),
                // The bit array holds any bits.
                _ => assert_eq!(encode(&decoded.unwrap()), flipped),
            }
        }
    }
}

#[test]
fn malformed_headers_are_corrupt_at_the_bad_field() {
    let block = [0u8; 64];
    let with_blocks = |header: &[u8], blocks: usize, extra: usize| {
        let mut bytes = header.to_vec();
        (0..blocks).for_each(|_| bytes.extend_from_slice(&block));
        bytes.extend(std::iter::repeat_n(0xAB, extra));
        bytes
    };
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (vec![], 0, "truncated version"),
        (vec![2, 1, 0], 0, "unsupported version"),
        (vec![0, 1, 0], 0, "unsupported version"),
        (vec![1], 1, "truncated probe count"),
        (vec![1, 0, 0], 1, "probe count 0"),
        (vec![1, MAX_PROBES + 1, 0], 1, "probe count 33"),
        (vec![1, 0xFF, 0], 1, "probe count 255"),
        (vec![1, 1], 2, "truncated varint"),
        (vec![1, 1, 0x80], 2, "truncated varint"),
        (vec![1, 1, 0x80, 0x00], 2, "non-minimal varint"),
        (with_blocks(&[1, 1, 0x81, 0x00], 1, 0), 2, "non-minimal varint"),
        (with_blocks(&[1, 1, 1], 0, 63), 2, "need"),
        (with_blocks(&[1, 1, 2], 1, 0), 2, "need"),
        (with_blocks(&[1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], 1, 0), 2, "need"),
        (vec![1, 1, 0x80, 0x80, 0x80, 0x80, 0x10], 2, "above"),
        (vec![1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], 2, "above"),
        (vec![1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], 2, "overflows"),
        (vec![1, 1, 0, 0], 3, "trailing"),
        (with_blocks(&[1, 1, 1], 1, 1), 67, "trailing"),
        (with_blocks(&[1, 1, 1], 1, 64), 67, "trailing"),
    ];
    for (bytes, at, why) in cases {
        match BloomFilter::decode(&bytes) {
            Err(Error::Corrupt { structure: "bloom filter", offset, reason }) => {
                assert_eq!(offset, at, "{bytes:02x?}: {reason}");
                assert!(reason.contains(why), "{bytes:02x?}: {reason:?} lacks {why:?}");
            }
            other => panic!("{bytes:02x?} decoded to {other:?}"),
        }
        assert_eq!(check_decode(&bytes), Ok(()));
    }
}

/// Runs the fuzz target's check over every stored corpus file.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files("sstable_filter");
    for file in &files {
        assert_eq!(check_decode(file), Ok(()), "{file:02x?}");
    }
    let valid = files.iter().filter(|f| BloomFilter::decode(f).is_ok()).count();
    assert!(files.len() >= 6 && valid >= 3, "{} corpus files, {valid} valid", files.len());
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test sstable_filter -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let valid: Vec<Vec<u8>> = filters().iter().map(encode).collect();
    support::write_corpus("sstable_filter", support::seeds_from_valid(&valid), |b| assert_eq!(check_decode(b), Ok(())));
}
