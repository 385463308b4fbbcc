//! Tests of the schema encoding (`talus_format::schema_codec`, docs/format.md "Schema encoding
//! (manifest)"): round trips over varied and random builder-made schemas, a golden vector,
//! strictness (malformed, non-canonical and builder-invalid inputs, each at its offset),
//! robustness against truncation, single-bit flips and random bytes, and the stored fuzz corpus
//! (`fuzz/corpus/schema_decode`, the same check the `schema_decode` fuzz target runs).

// Helpers outside `#[test]` functions panic on purpose: they are assertions.
#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use talus_format::schema::{ColumnDef, CompactionCommon, CompactionStrategy, Compression, SchemaBuilder};
use talus_format::schema_codec::{decode_schema, encode_schema, SCHEMA_FORMAT_VERSION};
use talus_format::time::MAX_TTL_SECONDS;
use talus_format::{ColumnId, ColumnType, Error, Schema, SchemaRef, TableId, TableOptions, TombstoneGcMode};

fn encode(s: &Schema) -> Vec<u8> {
    let mut out = Vec::new();
    encode_schema(s, &mut out);
    out
}

/// Every column type, found through the stable type codes (so a new type is covered too).
fn all_types() -> Vec<ColumnType> {
    (0..=u8::MAX).filter_map(ColumnType::from_code).collect()
}

/// The check the fuzz target runs: decoding never panics; a successful decode re-encodes to the
/// same bytes (the encoding is canonical) and decodes again to the same schema; a failure is a
/// `Corrupt` error of the schema structure with an offset inside the input.
fn check_decode(data: &[u8]) -> Option<SchemaRef> {
    match decode_schema(data) {
        Ok(s) => {
            let again = encode(&s);
            assert_eq!(again, data, "re-encoding a decoded schema changed the bytes");
            // Compared through Debug (and the bytes): f64 options may be NaN, which `==` rejects.
            let twice = decode_schema(&again).unwrap();
            assert_eq!(format!("{twice:?}"), format!("{s:?}"));
            Some(s)
        }
        Err(Error::Corrupt { structure: "schema", offset, .. }) => {
            assert!(offset <= data.len(), "offset {offset} beyond input of {} bytes", data.len());
            None
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// Encodes `s`, decodes it back and checks that every field survived.
fn assert_round_trip(s: &Schema) -> Vec<u8> {
    let bytes = encode(s);
    assert_eq!(bytes[0], SCHEMA_FORMAT_VERSION);
    let decoded = decode_schema(&bytes).unwrap_or_else(|e| panic!("{e} decoding {s:?}"));
    assert_eq!(format!("{decoded:?}"), format!("{s:?}"));
    if !format!("{s:?}").contains("NaN") {
        assert_eq!(*decoded, *s);
    }
    assert!(check_decode(&bytes).is_some());
    bytes
}

// ---- Fixtures ----------------------------------------------------------------------------------

/// The schema pinned by [`golden_vector`]: one column of each kind, a descending clustering
/// column, a regular column declared before the static one, and explicit (non-default) options.
fn golden_schema() -> SchemaRef {
    Schema::builder("ks", "t")
        .id(TableId(1))
        .partition_key("k", ColumnType::Int)
        .clustering_ordered("c", ColumnType::BigInt, true)
        .regular("v", ColumnType::Blob)
        .static_column("s", ColumnType::Text)
        .options(TableOptions {
            tombstone_gc: TombstoneGcMode::Repair { propagation_delay_seconds: 3600 },
            gc_grace_seconds: 864_000,
            default_ttl: 60,
            compaction: CompactionStrategy::Leveled { sstable_size_in_mb: 160, fanout: 10 },
            compaction_common: CompactionCommon {
                enabled: true,
                min_threshold: 4,
                max_threshold: 32,
                tombstone_threshold: 0.2,
                tombstone_compaction_interval: 86_400,
                unchecked_tombstone_compaction: false,
            },
            compression: Compression::Zstd { level: 3 },
            block_size: 4096,
            bloom_filter_fp_chance: 0.01,
        })
        .build()
        .unwrap()
}

fn with_options(b: SchemaBuilder, options: TableOptions) -> SchemaRef {
    b.options(options).build().unwrap()
}

/// A dozen varied builder-made schemas: every column type in every position, every option
/// variant, extreme and unusual values, descending clustering, static columns, many columns.
fn varied_schemas() -> Vec<SchemaRef> {
    let types = all_types();
    let mut out = vec![golden_schema()];

    // 1. The smallest table, default options and the name-derived id.
    out.push(Schema::builder("ks", "minimal").partition_key("k", ColumnType::Blob).build().unwrap());

    // 2. Every type in the partition key.
    let mut b = Schema::builder("ks", "all_partition_types");
    for (i, ty) in types.iter().enumerate() {
        b = b.partition_key(&format!("p{i}"), *ty);
    }
    out.push(b.build().unwrap());

    // 3. Every type as clustering (alternating order), static and regular column, interleaved.
    let mut b = Schema::builder("ks", "all_types").partition_key("k", ColumnType::Uuid);
    for (i, ty) in types.iter().enumerate() {
        b = b.clustering_ordered(&format!("c{i}"), *ty, i % 2 == 1);
    }
    for (i, ty) in types.iter().enumerate() {
        b = b.static_column(&format!("s{i}"), *ty).regular(&format!("r{i}"), *ty);
    }
    let st = CompactionStrategy::SizeTiered { bucket_low: 0.25, bucket_high: 3.0, min_sstable_size: 1, min_sstable_age: 0 };
    out.push(with_options(b, TableOptions { compaction: st, ..TableOptions::default() }));

    // 4. Immediate GC, time-window compaction, no compression, compaction disabled.
    let options = TableOptions {
        tombstone_gc: TombstoneGcMode::Immediate,
        gc_grace_seconds: 0,
        default_ttl: 1,
        compaction: CompactionStrategy::time_window(),
        compaction_common: CompactionCommon {
            enabled: false,
            min_threshold: 0,
            max_threshold: 1,
            tombstone_threshold: 1.0,
            tombstone_compaction_interval: -1,
            unchecked_tombstone_compaction: true,
        },
        compression: Compression::None,
        block_size: 1,
        bloom_filter_fp_chance: 1.0,
    };
    let b = Schema::builder("metrics", "series")
        .partition_key("host", ColumnType::Text)
        .partition_key("day", ColumnType::Int)
        .clustering_ordered("at", ColumnType::TimeUuid, true)
        .regular("value", ColumnType::Double);
    out.push(with_options(b, options));

    // 5. Disabled GC, size-tiered with extreme values, every numeric option at an edge.
    let options = TableOptions {
        tombstone_gc: TombstoneGcMode::Disabled,
        gc_grace_seconds: i64::MAX,
        default_ttl: MAX_TTL_SECONDS,
        compaction: CompactionStrategy::SizeTiered {
            bucket_low: f64::MIN_POSITIVE / 2.0,
            bucket_high: f64::MAX,
            min_sstable_size: u64::MAX,
            min_sstable_age: i64::MIN,
        },
        compaction_common: CompactionCommon {
            enabled: true,
            min_threshold: usize::MAX,
            max_threshold: 0,
            tombstone_threshold: -1.5,
            tombstone_compaction_interval: i64::MAX,
            unchecked_tombstone_compaction: false,
        },
        compression: Compression::Zstd { level: i32::MIN },
        block_size: usize::MAX,
        bloom_filter_fp_chance: f64::MIN_POSITIVE,
    };
    let b = Schema::builder("edge", "max").id(TableId(u128::MAX)).partition_key("k", ColumnType::BigInt);
    out.push(with_options(b, options));

    // 6. Repair GC with a negative delay, leveled at its edges, zstd 22.
    let options = TableOptions {
        tombstone_gc: TombstoneGcMode::Repair { propagation_delay_seconds: i64::MIN },
        compaction: CompactionStrategy::Leveled { sstable_size_in_mb: 0, fanout: u64::MAX },
        compression: Compression::Zstd { level: 22 },
        ..TableOptions::default()
    };
    let b = Schema::builder("edge", "min")
        .id(TableId(0))
        .partition_key("k", ColumnType::SmallInt)
        .clustering("c", ColumnType::TinyInt)
        .static_column("s", ColumnType::Boolean);
    out.push(with_options(b, options));

    // 7. Empty and non-ASCII names.
    let b = Schema::builder("", "ü表🦀")
        .partition_key("", ColumnType::Text)
        .clustering_ordered("ключ", ColumnType::Timestamp, true)
        .static_column("é", ColumnType::Blob)
        .regular("値", ColumnType::Text);
    out.push(b.build().unwrap());

    // 8. Floats the builder does not check: NaN with a payload, infinity, negative zero.
    let options = TableOptions {
        compaction: CompactionStrategy::SizeTiered {
            bucket_low: f64::from_bits(0x7ff8_0000_dead_beef),
            bucket_high: f64::NEG_INFINITY,
            min_sstable_size: 0,
            min_sstable_age: 1,
        },
        compaction_common: CompactionCommon { tombstone_threshold: -0.0, ..CompactionCommon::default() },
        ..TableOptions::default()
    };
    out.push(with_options(Schema::builder("ks", "odd_floats").partition_key("k", ColumnType::Int), options));

    // 9. Many columns: ids past 127 take two-byte varints.
    let mut b = Schema::builder("ks", "wide").partition_key("k", ColumnType::Int).clustering("c", ColumnType::Int);
    for i in 0..300 {
        let ty = types[i % types.len()];
        b = if i % 7 == 3 { b.static_column(&format!("s{i}"), ty) } else { b.regular(&format!("r{i}"), ty) };
    }
    out.push(b.build().unwrap());

    // 10. Static columns declared after the regular ones.
    let b = Schema::builder("ks", "statics_last")
        .partition_key("a", ColumnType::Int)
        .partition_key("b", ColumnType::Text)
        .clustering("c", ColumnType::Uuid)
        .clustering_ordered("d", ColumnType::Double, true)
        .regular("r0", ColumnType::Int)
        .regular("r1", ColumnType::Int)
        .static_column("s0", ColumnType::Text)
        .static_column("s1", ColumnType::BigInt);
    out.push(b.build().unwrap());

    // 11. Descending clustering only, no value columns, default options except the GC mode.
    let mut b = Schema::builder("ks", "keys_only").partition_key("k", ColumnType::Blob);
    for (i, ty) in types.iter().enumerate() {
        b = b.clustering_ordered(&format!("c{i}"), *ty, true);
    }
    out.push(with_options(b, TableOptions { tombstone_gc: TombstoneGcMode::Timeout, ..TableOptions::default() }));
    out
}

#[test]
fn varied_schemas_round_trip() {
    let schemas = varied_schemas();
    assert_eq!(schemas.len(), 12);
    for s in &schemas {
        assert_round_trip(s);
    }
    // Distinct schemas have distinct encodings.
    let mut encodings: Vec<Vec<u8>> = schemas.iter().map(|s| encode(s)).collect();
    encodings.sort();
    encodings.dedup();
    assert_eq!(encodings.len(), schemas.len());
}

#[test]
fn decoded_ids_are_the_builders() {
    let s = decode_schema(&encode(&varied_schemas()[9])).unwrap();
    let mut ids: Vec<u32> = s.static_columns.iter().chain(&s.regular_columns).map(|c| c.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..300).collect::<Vec<u32>>());
    assert!(s.partition_key.iter().all(|c| c.id == ColumnId(u32::MAX)));
    assert_eq!(s.column_by_id(ColumnId(3)).map(|c| c.name.as_str()), Some("s3"));
}

#[test]
fn encode_appends() {
    let s = golden_schema();
    let mut out = vec![0xaa, 0xbb];
    encode_schema(&s, &mut out);
    assert_eq!(&out[..2], &[0xaa, 0xbb]);
    assert_eq!(out[2..], encode(&s)[..]);
}

// ---- Golden vector and strictness -------------------------------------------------------------

/// Pins the exact bytes of one small schema, derived by hand from docs/format.md. A change of the
/// format must bump `SCHEMA_FORMAT_VERSION` and this vector.
#[test]
fn golden_vector() {
    let expected = [
        "01",                               // version
        "01000000000000000000000000000000", // table id 1, u128 LE
        "02 6b73",                          // keyspace "ks"
        "01 74",                            // table name "t"
        "01",                               // 1 partition key column
        "01 6b 03",                         //   "k" int
        "01",                               // 1 clustering column
        "01 63 04 01",                      //   "c" bigint descending
        "01",                               // 1 static column
        "01 01 73 0a",                      //   id 1 "s" text
        "01",                               // 1 regular column
        "00 01 76 0b",                      //   id 0 "v" blob
        "01 100e000000000000",              // tombstone_gc repair, propagation delay 3600
        "002f0d0000000000",                 // gc_grace_seconds 864000
        "3c000000",                         // default_time_to_live 60
        "01 a001 0a",                       // leveled, sstable_size_in_mb 160, fanout 10
        "01 04 20",                         // enabled, min_threshold 4, max_threshold 32
        "9a9999999999c93f",                 // tombstone_threshold 0.2
        "8051010000000000",                 // tombstone_compaction_interval 86400
        "00",                               // unchecked_tombstone_compaction false
        "01 03000000",                      // zstd level 3
        "8020",                             // block_size 4096
        "7b14ae47e17a843f",                 // bloom_filter_fp_chance 0.01
    ]
    .concat()
    .replace(' ', "");
    let bytes = encode(&golden_schema());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
    assert_eq!(bytes.len(), 101);
    assert_eq!(decode_schema(&bytes), Ok(golden_schema()));
}

fn corrupt_at(bytes: &[u8]) -> (usize, String) {
    match decode_schema(bytes) {
        Err(Error::Corrupt { structure: "schema", offset, reason }) => (offset, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    let hex = hex.replace(' ', "");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// The golden encoding with `bytes[at..at + len]` replaced by `hex`.
fn golden_with(at: usize, len: usize, hex: &str) -> Vec<u8> {
    let mut bytes = encode(&golden_schema());
    bytes.splice(at..at + len, from_hex(hex));
    bytes
}

// Offsets in the golden encoding.
const COLUMNS_AT: usize = 22;
const STATIC_ID_AT: usize = 32;
const REGULAR_ID_AT: usize = 37;
const OPTIONS_AT: usize = 41;

#[test]
fn strictness_rejects_malformed_and_non_canonical_inputs() {
    let good = encode(&golden_schema());
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(corrupt_at(&trailing).0, good.len());

    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (golden_with(0, 1, "02"), 0, "version"),
        (golden_with(0, 1, "00"), 0, "version"),
        (golden_with(17, 1, "7f"), 17, "exceeds"),
        (golden_with(19, 1, "ff"), 19, "UTF-8"),
        (golden_with(20, 1, "8100"), 20, "non-minimal"),
        (golden_with(25, 1, "00"), 25, "type code 0"),
        (golden_with(25, 1, "0c"), 25, "type code 12"),
        (golden_with(COLUMNS_AT, 1, "ff7f"), COLUMNS_AT, "count"),
        (golden_with(26, 1, "7f"), 26, "count"),
        (golden_with(30, 1, "02"), 30, "clustering order"),
        (golden_with(31, 1, "7f"), 31, "count"),
        (golden_with(STATIC_ID_AT, 1, "02"), STATIC_ID_AT, "id 2 where 1"),
        (golden_with(STATIC_ID_AT, 1, "00"), REGULAR_ID_AT, "id 0 where 1"),
        (golden_with(STATIC_ID_AT, 1, "ffffffff0f"), STATIC_ID_AT, "u32"),
        (golden_with(STATIC_ID_AT, 1, "ffffffffffffffffff01"), STATIC_ID_AT, "u32"),
        (golden_with(STATIC_ID_AT, 1, "ffffffffffffffffff02"), STATIC_ID_AT, "overflows"),
        (golden_with(REGULAR_ID_AT, 1, "01"), STATIC_ID_AT, "id 1 where 0"),
        (golden_with(40, 1, "ff"), 40, "regular column type"),
        (golden_with(OPTIONS_AT, 1, "04"), OPTIONS_AT, "tombstone_gc"),
        (golden_with(62, 1, "03"), 62, "compaction strategy"),
        (golden_with(66, 1, "02"), 66, "flag"),
        (golden_with(85, 1, "ff"), 85, "flag"),
        (golden_with(86, 1, "03"), 86, "compression"),
        (golden_with(91, 2, "80a000"), 91, "non-minimal"),
        (good[..95].to_vec(), 93, "truncated"),
        (good[..OPTIONS_AT].to_vec(), OPTIONS_AT, "truncated"),
    ];
    for (bytes, offset, reason) in cases {
        let (at, why) = corrupt_at(&bytes);
        assert_eq!(at, offset, "{bytes:02x?}: {why}");
        assert!(why.contains(reason), "{bytes:02x?}: {why:?} lacks {reason:?}");
    }
}

/// Schemas built field by field that break a rule of `SchemaBuilder::build` (or its id
/// assignment) encode to bytes the decoder rejects, at the start of the section at fault.
#[test]
fn builder_rules_are_enforced_on_decode() {
    type Edit = fn(&mut Schema);
    let cases: Vec<(Edit, usize, &str)> = vec![
        (|s| s.partition_key.clear(), COLUMNS_AT, "partition key"),
        (|s| s.clustering.clear(), COLUMNS_AT, "static columns need clustering"),
        (|s| s.static_columns[0].name = "k".into(), COLUMNS_AT, "declared twice"),
        (|s| s.regular_columns[0].name = "c".into(), COLUMNS_AT, "declared twice"),
        (|s| s.options.gc_grace_seconds = -1, OPTIONS_AT, "gc_grace_seconds"),
        (|s| s.options.default_ttl = -1, OPTIONS_AT, "default_time_to_live"),
        (|s| s.options.default_ttl = MAX_TTL_SECONDS + 1, OPTIONS_AT, "default_time_to_live"),
        (|s| s.options.bloom_filter_fp_chance = f64::NAN, OPTIONS_AT, "bloom_filter_fp_chance"),
        (|s| s.options.bloom_filter_fp_chance = 0.0, OPTIONS_AT, "bloom_filter_fp_chance"),
        (|s| s.options.bloom_filter_fp_chance = 1.0 + f64::EPSILON, OPTIONS_AT, "bloom_filter_fp_chance"),
        (|s| s.static_columns[0].id = ColumnId(5), STATIC_ID_AT, "id 5 where 1"),
        (
            |s| s.regular_columns.insert(0, ColumnDef { name: "w".into(), ty: ColumnType::Int, id: ColumnId(2) }),
            STATIC_ID_AT,
            "id 1 where 0",
        ),
        (
            |s| s.regular_columns.push(ColumnDef { name: "w".into(), ty: ColumnType::Int, id: ColumnId(1) }),
            41, // the second regular column
            "regular column id 1 where 2",
        ),
    ];
    for (edit, offset, reason) in cases {
        let mut s = (*golden_schema()).clone();
        edit(&mut s);
        let (at, why) = corrupt_at(&encode(&s));
        assert_eq!(at, offset, "{why}");
        assert!(why.contains(reason), "{why:?} lacks {reason:?}");
    }
}

/// Every strict prefix is rejected; every single-bit flip either decodes to a schema that
/// re-encodes to the flipped bytes or is `Corrupt`.
fn assert_truncations_and_bit_flips(bytes: &[u8]) {
    for len in 0..bytes.len() {
        assert!(check_decode(&bytes[..len]).is_none(), "prefix of {len} bytes decoded");
    }
    let mut flipped = bytes.to_vec();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            flipped[at] ^= 1 << bit;
            check_decode(&flipped);
            flipped[at] = bytes[at];
        }
    }
}

#[test]
fn truncations_and_bit_flips_of_varied_schemas() {
    for s in varied_schemas() {
        assert_truncations_and_bit_flips(&encode(&s));
    }
}

// ---- Random schemas ----------------------------------------------------------------------------

fn arb_type() -> impl Strategy<Value = ColumnType> {
    proptest::sample::select(all_types())
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![3 => -10.0f64..10.0, 1 => any::<f64>(), 1 => any::<u64>().prop_map(f64::from_bits)]
}

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -3i64..1_000_000, 1 => any::<i64>()]
}

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..100_000, 1 => any::<u64>()]
}

fn arb_usize() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..100_000, 1 => any::<usize>()]
}

fn arb_options() -> impl Strategy<Value = TableOptions> {
    let gc = prop_oneof![
        Just(TombstoneGcMode::Timeout),
        arb_i64().prop_map(|d| TombstoneGcMode::Repair { propagation_delay_seconds: d }),
        Just(TombstoneGcMode::Immediate),
        Just(TombstoneGcMode::Disabled),
    ];
    let compaction = prop_oneof![
        (arb_f64(), arb_f64(), arb_u64(), arb_i64()).prop_map(|(bucket_low, bucket_high, min_sstable_size, min_sstable_age)| {
            CompactionStrategy::SizeTiered { bucket_low, bucket_high, min_sstable_size, min_sstable_age }
        }),
        (arb_u64(), arb_u64()).prop_map(|(sstable_size_in_mb, fanout)| CompactionStrategy::Leveled { sstable_size_in_mb, fanout }),
        (arb_i64(), arb_i64()).prop_map(|(window_seconds, expired_sstable_check_frequency_seconds)| CompactionStrategy::TimeWindow {
            window_seconds,
            expired_sstable_check_frequency_seconds
        }),
    ];
    let common = (any::<bool>(), arb_usize(), arb_usize(), arb_f64(), arb_i64(), any::<bool>()).prop_map(
        |(enabled, min_threshold, max_threshold, tombstone_threshold, tombstone_compaction_interval, unchecked_tombstone_compaction)| {
            CompactionCommon {
                enabled,
                min_threshold,
                max_threshold,
                tombstone_threshold,
                tombstone_compaction_interval,
                unchecked_tombstone_compaction,
            }
        },
    );
    let compression =
        prop_oneof![Just(Compression::None), Just(Compression::Lz4), any::<i32>().prop_map(|level| Compression::Zstd { level })];
    let bloom = prop_oneof![Just(1.0), Just(f64::MIN_POSITIVE), 1e-9f64..1.0];
    (gc, 0..=i64::MAX, 0..=MAX_TTL_SECONDS, compaction, common, compression, arb_usize(), bloom).prop_map(
        |(tombstone_gc, gc_grace_seconds, default_ttl, compaction, compaction_common, compression, block_size, bloom_filter_fp_chance)| {
            TableOptions {
                tombstone_gc,
                gc_grace_seconds,
                default_ttl,
                compaction,
                compaction_common,
                compression,
                block_size,
                bloom_filter_fp_chance,
            }
        },
    )
}

/// Random schemas made by the builder: 1–3 partition key columns, 0–3 clustering columns in
/// either order, static and regular columns declared in random interleaving, random options.
fn arb_schema() -> impl Strategy<Value = SchemaRef> {
    let name = "[a-zé表]{0,5}";
    (
        any::<u128>(),
        name,
        name,
        vec(arb_type(), 1..4),
        vec((arb_type(), any::<bool>()), 0..4),
        vec((any::<bool>(), arb_type()), 0..8),
        arb_options(),
    )
        .prop_map(|(id, keyspace, table, pk, ck, values, options)| {
            let mut b = Schema::builder(&keyspace, &table).id(TableId(id));
            for (i, ty) in pk.into_iter().enumerate() {
                b = b.partition_key(&format!("p{i}"), ty);
            }
            let has_clustering = !ck.is_empty();
            for (i, (ty, descending)) in ck.into_iter().enumerate() {
                b = b.clustering_ordered(&format!("c{i}"), ty, descending);
            }
            for (i, (is_static, ty)) in values.into_iter().enumerate() {
                b = if is_static && has_clustering { b.static_column(&format!("s{i}"), ty) } else { b.regular(&format!("r{i}"), ty) };
            }
            b.options(options).build().unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_schemas_round_trip(s in arb_schema()) {
        assert_round_trip(&s);
    }

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..200)) {
        check_decode(&data);
    }

    #[test]
    fn random_bytes_after_version_never_panic(data in vec(any::<u8>(), 0..200)) {
        let mut input = vec![SCHEMA_FORMAT_VERSION];
        input.extend_from_slice(&data);
        check_decode(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_schemas_survive_truncation_and_bit_flips(s in arb_schema()) {
        assert_truncations_and_bit_flips(&encode(&s));
    }
}

// ---- Fuzz corpus -------------------------------------------------------------------------------

/// Runs the fuzz target's check over every stored corpus file, so the stable suite exercises it.
#[test]
fn fuzz_corpus_decodes_without_panic() {
    let files = support::corpus_files("schema_decode");
    let valid = files.iter().filter(|f| check_decode(f).is_some()).count();
    assert!(files.len() >= 20, "only {} corpus files", files.len());
    assert!(valid >= 12, "only {valid} valid encodings in the corpus");
}

/// Regenerates the seed corpus: `cargo test -p talus-format --test schema_codec -- --ignored`.
#[test]
#[ignore]
fn generate_fuzz_corpus() {
    let mut valid: Vec<Vec<u8>> = varied_schemas().iter().map(|s| encode(s)).collect();
    let mut runner = TestRunner::deterministic();
    for _ in 0..4 {
        valid.push(encode(&arb_schema().new_tree(&mut runner).unwrap().current()));
    }
    support::write_corpus("schema_decode", support::seeds_from_valid(&valid), |b| {
        check_decode(b);
    });
}
