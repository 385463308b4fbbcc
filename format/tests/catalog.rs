//! The table catalog file: round trips, a checksum over every byte (any single-bit flip and any
//! truncation is a typed error), and the stored fuzz corpus (`fuzz/corpus/catalog_decode`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

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

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/catalog_decode")
}

/// Runs the fuzz target's check over every stored corpus file.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let mut valid = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        files += 1;
        valid += usize::from(check_decode(&std::fs::read(&path).unwrap()).is_some());
    }
    assert!(files >= 6 && valid >= 3, "{files} corpus files, {valid} valid");
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test catalog -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, catalog) in catalogs().iter().enumerate() {
        let bytes = encode_catalog(catalog);
        std::fs::write(dir.join(format!("valid-{i:02}")), &bytes).unwrap();
        std::fs::write(dir.join(format!("truncated-{i:02}")), &bytes[..bytes.len() / 2]).unwrap();
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 3] ^= 0x10;
        std::fs::write(dir.join(format!("corrupt-{i:02}")), &flipped).unwrap();
    }
}
