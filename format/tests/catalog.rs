//! The table catalog file: round trips, a checksum over every byte (any single-bit flip and any
//! truncation is a typed error), and the stored fuzz corpus (`fuzz/corpus/catalog_decode`).

#![allow(clippy::unwrap_used)]

mod support;

use talus_format::catalog::{check_decode, decode_catalog, encode_catalog, Catalog, Truncation};
use talus_format::{ColumnType, Error, Schema, TableId};

fn catalogs() -> Vec<Catalog> {
    let kv = Schema::builder("ks", "kv").partition_key("k", ColumnType::Blob).regular("v", ColumnType::Blob).build().unwrap();
    let wide = Schema::builder("ks", "wide")
        .partition_key("p", ColumnType::Int)
        .clustering_ordered("c", ColumnType::BigInt, true)
        .static_column("s", ColumnType::Text)
        .regular("v", ColumnType::Double)
        .build()
        .unwrap();
    vec![
        Catalog::default(),
        Catalog { tables: vec![kv.clone()], truncations: Vec::new() },
        Catalog { tables: vec![kv, wide], truncations: vec![Truncation { table: TableId(42), segment: 1_795_525_382_488, offset: 1597 }] },
    ]
}

#[test]
fn catalogs_round_trip() {
    for catalog in catalogs() {
        let bytes = encode_catalog(&catalog);
        assert_eq!(decode_catalog(&bytes).unwrap(), catalog);
    }
}

#[test]
fn every_bit_flip_and_truncation_is_a_typed_error() {
    for catalog in catalogs() {
        let bytes = encode_catalog(&catalog);
        for len in 0..bytes.len() {
            assert!(matches!(decode_catalog(&bytes[..len]), Err(Error::Corrupt { structure: "table catalog", .. })), "cut at {len}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(decode_catalog(&flipped), Err(Error::Corrupt { structure: "table catalog", .. })), "bit {bit}");
        }
    }
}

/// Runs the fuzz target's check over every stored corpus file.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files("catalog_decode");
    let valid = files.iter().filter(|f| check_decode(f).is_some()).count();
    assert!(files.len() >= 6 && valid >= 3, "{} corpus files, {valid} valid", files.len());
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test catalog -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let valid: Vec<Vec<u8>> = catalogs().iter().map(encode_catalog).collect();
    support::write_corpus("catalog_decode", support::seeds_from_valid(&valid), |b| {
        check_decode(b);
    });
}
