//! Property tests of the clustering encoding (order, prefix-freedom, round trips, garbage).

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;

fn all_types() -> Vec<ColumnType> {
    (1..=11).filter_map(ColumnType::from_code).collect()
}

fn enc(v: &Value, desc: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_component(v, desc, &mut out);
    out
}

// ---- Independent reference comparators (written from the Java/C++ sources cited above) ----

/// Java `Double.compare`: NaN == NaN and greatest; -0.0 < +0.0.
fn java_double_compare(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if a < b => Ordering::Less,
        _ if a > b => Ordering::Greater,
        _ => a.is_sign_positive().cmp(&b.is_sign_positive()),
    }
}

/// Cassandra `compareTimestampBytes`: bytes 6 (low nibble), 7, 4, 5, 0, 1, 2, 3, unsigned.
fn compare_timestamp_bytes(a: &[u8; 16], b: &[u8; 16]) -> Ordering {
    let key = |u: &[u8; 16]| [u[6] & 0xf, u[7], u[4], u[5], u[0], u[1], u[2], u[3]];
    key(a).cmp(&key(b))
}

/// Cassandra `UUIDType.compare`: version nibble, then timestamp for v1, then unsigned bytes.
fn cassandra_uuid_compare(a: &[u8; 16], b: &[u8; 16]) -> Ordering {
    let (va, vb) = ((a[6] >> 4) & 0xf, (b[6] >> 4) & 0xf);
    if va != vb {
        return va.cmp(&vb);
    }
    let by_time = if va == 1 { compare_timestamp_bytes(a, b) } else { Ordering::Equal };
    by_time.then_with(|| a.cmp(b))
}

/// Cassandra `TimeUUIDType.compare`: timestamp, then `ByteBuffer.compareTo` (signed bytes).
fn cassandra_timeuuid_compare(a: &[u8; 16], b: &[u8; 16]) -> Ordering {
    compare_timestamp_bytes(a, b).then_with(|| a.iter().map(|x| *x as i8).cmp(b.iter().map(|x| *x as i8)))
}

fn typed_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::TinyInt(x), Value::TinyInt(y)) => x.cmp(y),
        (Value::SmallInt(x), Value::SmallInt(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::BigInt(x), Value::BigInt(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => java_double_compare(*x, *y),
        (Value::Uuid(x), Value::Uuid(y)) => cassandra_uuid_compare(x, y),
        (Value::TimeUuid(x), Value::TimeUuid(y)) => cassandra_timeuuid_compare(x, y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.as_ref().cmp(y.as_ref()),
        _ => panic!("type mismatch {a:?} vs {b:?}"),
    }
}

fn dir(o: Ordering, desc: bool) -> Ordering {
    if desc {
        o.reverse()
    } else {
        o
    }
}

/// Equality with doubles compared by bit pattern after NaN canonicalisation.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            let canon = |d: f64| {
                if d.is_nan() {
                    CANONICAL_NAN
                } else {
                    d.to_bits()
                }
            };
            canon(*x) == canon(*y)
        }
        _ => a == b,
    }
}

// ---- Strategies ----

fn tricky_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![0x00u8, 0x01, 0x10, 0x1f, 0x7f, 0x80, 0x81, 0xfe, 0xff])
}

/// Random UUID bytes, often from a small alphabet so ties on version/time/bytes are common.
fn uuid_bytes(force_v1: bool) -> BoxedStrategy<[u8; 16]> {
    let raw = prop_oneof![any::<[u8; 16]>(), prop::array::uniform16(tricky_byte())];
    (raw, prop::sample::select(vec![None, Some(1u8), Some(4)]))
        .prop_map(move |(mut u, version)| {
            let version = if force_v1 { Some(1) } else { version };
            if let Some(v) = version {
                u[6] = (v << 4) | (u[6] & 0x0f);
            }
            u
        })
        .boxed()
}

fn value_strategy(ty: ColumnType) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::TinyInt => any::<i8>().prop_map(Value::TinyInt).boxed(),
        ColumnType::SmallInt => any::<i16>().prop_map(Value::SmallInt).boxed(),
        ColumnType::Int => any::<i32>().prop_map(Value::Int).boxed(),
        ColumnType::BigInt => any::<i64>().prop_map(Value::BigInt).boxed(),
        ColumnType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        ColumnType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ColumnType::Double => prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            prop::sample::select(vec![0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e308, -1e308]),
            prop::sample::select(vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN]),
            Just(f64::from_bits(0x7fff_ffff_ffff_ffff)),
        ]
        .prop_map(Value::Double)
        .boxed(),
        ColumnType::Uuid => uuid_bytes(false).prop_map(Value::Uuid).boxed(),
        ColumnType::TimeUuid => uuid_bytes(true).prop_map(Value::TimeUuid).boxed(),
        ColumnType::Text => prop_oneof![any::<String>(), "[\\x00\\x01a\\x7f\\u{80}\\u{ff}\\u{10ffff}]{0,6}",].prop_map(Value::Text).boxed(),
        ColumnType::Blob => {
            prop::collection::vec(prop_oneof![tricky_byte(), any::<u8>()], 0..8).prop_map(|v| Value::Blob(Bytes::from(v))).boxed()
        }
    }
}

/// Independent pairs, and "near" pairs (one uuid byte changed, a shared text/blob prefix) so
/// that tie-breaks (same uuid version/time, common prefixes) are exercised too.
fn pair_strategy(ty: ColumnType) -> BoxedStrategy<(Value, Value)> {
    let (va, vb) = (value_strategy(ty), value_strategy(ty));
    let near = (va.clone(), vb.clone(), 0usize..16, any::<u8>()).prop_map(|(a, b, i, x)| {
        let b = match (&a, b) {
            (Value::Uuid(u), _) => Value::Uuid({
                let mut v = *u;
                v[i] = x;
                v
            }),
            (Value::TimeUuid(u), _) => Value::TimeUuid({
                let mut v = *u;
                v[i] = if i == 6 { 0x10 | (x & 0xf) } else { x };
                v
            }),
            (Value::Text(s), Value::Text(t)) => {
                let cut = s.char_indices().nth(i % 4).map_or(s.len(), |(c, _)| c);
                Value::Text(format!("{}{t}", &s[..cut]))
            }
            (Value::Blob(s), Value::Blob(t)) => Value::Blob([&s[..i.min(s.len())], &t[..]].concat().into()),
            (_, b) => b,
        };
        (a, b)
    });
    prop_oneof![(va, vb), near].boxed()
}

/// A schema, two full keys for it, a prefix length and a number of shared leading components.
type KeyCase = (Vec<(ColumnType, bool)>, Vec<Value>, Vec<Value>, usize, usize);

fn schema_and_keys() -> impl Strategy<Value = KeyCase> {
    prop::collection::vec((prop::sample::select(all_types()), any::<bool>()), 1..5).prop_flat_map(|schema| {
        let key = || schema.iter().map(|(ty, _)| value_strategy(*ty)).collect::<Vec<_>>();
        let n = schema.len();
        (Just(schema.clone()), key(), key(), 0..=n, 0..=n)
    })
}

fn with_dirs(schema: &[(ColumnType, bool)], values: &[Value]) -> Vec<(Value, bool)> {
    values.iter().zip(schema).map(|(v, (_, d))| (v.clone(), *d)).collect()
}

/// Component-wise comparison of two prefixes (shorter-with-equal-common-part sorts first).
fn keys_cmp(schema: &[(ColumnType, bool)], a: &[Value], b: &[Value]) -> Ordering {
    for ((x, y), (_, desc)) in a.iter().zip(b).zip(schema) {
        let o = dir(typed_cmp(x, y), *desc);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

// ---- Properties ----

/// For every type and direction: memcmp order == comparator order, prefix-freeness, and
/// decode(encode(x)) == x.
#[test]
fn order_prefix_free_and_round_trip_for_every_type() {
    for ty in all_types() {
        let mut runner = TestRunner::new(Config::with_cases(1024));
        let strategy = (pair_strategy(ty), any::<bool>());
        let result = runner.run(&strategy, |((a, b), desc)| {
            let (ea, eb) = (enc(&a, desc), enc(&b, desc));
            prop_assert_eq!(ea.cmp(&eb), dir(typed_cmp(&a, &b), desc), "{:?} vs {:?}", a, b);
            if ea != eb {
                prop_assert!(!ea.starts_with(&eb) && !eb.starts_with(&ea), "not prefix-free");
            }
            let (decoded, used) = decode_component(ty, desc, &ea, 0).unwrap();
            prop_assert!(same(&decoded, &a), "{:?} decoded as {:?}", a, decoded);
            prop_assert_eq!(used, ea.len());
            Ok(())
        });
        result.unwrap_or_else(|e| panic!("type {}: {e}", ty.name()));
    }
}

proptest! {
    #![proptest_config(Config::with_cases(1024))]

    /// Mixed-type, mixed-direction keys: memcmp == component-wise order, prefixes are byte
    /// prefixes, and decode_key inverts encode_key for every prefix.
    #[test]
    fn keys_compare_and_prefix((schema, ka, kb, k, shared) in schema_and_keys()) {
        let kb: Vec<Value> = ka[..shared].iter().chain(&kb[shared..]).cloned().collect();
        let (ea, eb) = (encode_key(&with_dirs(&schema, &ka)), encode_key(&with_dirs(&schema, &kb)));
        prop_assert_eq!(ea.cmp(&eb), keys_cmp(&schema, &ka, &kb));
        let pa = encode_key(&with_dirs(&schema, &ka[..k]));
        prop_assert!(ea.starts_with(&pa));
        let decoded = decode_key(&schema, &pa).unwrap();
        prop_assert_eq!(decoded.len(), k);
        for (d, v) in decoded.iter().zip(&ka) {
            prop_assert!(same(d, v));
        }
        // Prefixes of different lengths compare like R1.10 with equal weights.
        let pb = encode_key(&with_dirs(&schema, &kb[..schema.len() - k]));
        prop_assert_eq!(pa.cmp(&pb), keys_cmp(&schema, &ka[..k], &kb[..schema.len() - k]));
        // Too many components for a shorter schema is an error.
        if k > 0 {
            prop_assert!(decode_key(&schema[..k - 1], &pa).is_err());
        }
    }

    /// Garbage never panics; whatever decodes re-encodes to exactly the bytes consumed
    /// (every accepted encoding is canonical).
    #[test]
    fn garbage_never_panics(
        ty in prop::sample::select(all_types()),
        desc in any::<bool>(),
        input in prop::collection::vec(prop_oneof![tricky_byte(), any::<u8>()], 0..40),
        offset in 0usize..45,
    ) {
        if let Ok((v, used)) = decode_component(ty, desc, &input, offset) {
            prop_assert!(used > 0);
            prop_assert_eq!(&enc(&v, desc)[..], &input[offset..offset + used]);
        }
    }

    #[test]
    fn garbage_keys_never_panic(
        schema in prop::collection::vec(
            (prop::sample::select(all_types()), any::<bool>()), 0..5),
        input in prop::collection::vec(prop_oneof![tricky_byte(), any::<u8>()], 0..60),
    ) {
        if let Ok(values) = decode_key(&schema, &input) {
            prop_assert_eq!(encode_key(&with_dirs(&schema, &values)), input);
        }
    }
}

// ---- Examples ----

#[test]
fn documented_byte_layouts() {
    let nan = [0xff, 0xf8, 0, 0, 0, 0, 0, 0];
    let cases: [(Value, bool, &[u8]); 8] = [
        (Value::Int(-1), false, &[0x7f, 0xff, 0xff, 0xff]),
        (Value::Int(1), false, &[0x80, 0, 0, 1]),
        (Value::Int(1), true, &[0x7f, 0xff, 0xff, 0xfe]),
        (Value::Boolean(true), false, &[1]),
        (Value::Text("a\0b".into()), false, &[0x61, 0, 0xff, 0x62, 0, 0]),
        (Value::Blob(Bytes::new()), true, &[0xff, 0xff]),
        (Value::Double(-0.0), false, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (Value::Double(-f64::NAN), false, &nan),
    ];
    for (value, desc, expected) in cases {
        assert_eq!(enc(&value, desc), expected, "{value:?}");
    }
}

#[test]
fn uuid_orders() {
    // Time order differs from byte order: time_low (bytes 0..4) is the least significant part.
    let mut early = [0u8; 16];
    early[0] = 0xff;
    early[6] = 0x10;
    let mut late = early;
    late[0] = 0x00;
    late[7] = 0x01;
    assert!(enc(&Value::TimeUuid(early), false) < enc(&Value::TimeUuid(late), false));
    assert!(enc(&Value::Uuid(early), false) < enc(&Value::Uuid(late), false));
    // Same time: timeuuid compares byte 8 signed (0x80 < 0x7f), uuid unsigned (0x7f < 0x80).
    let (mut lo, mut hi) = (early, early);
    lo[8] = 0x80;
    hi[8] = 0x7f;
    assert!(enc(&Value::TimeUuid(lo), false) < enc(&Value::TimeUuid(hi), false));
    assert!(enc(&Value::Uuid(lo), false) > enc(&Value::Uuid(hi), false));
    // uuid: version first (a v4 sorts after every v1, whatever its bytes).
    let (mut v1, mut v4) = ([0xff; 16], [0u8; 16]);
    v1[6] = 0x1f;
    v4[6] = 0x40;
    assert!(enc(&Value::Uuid(v1), false) < enc(&Value::Uuid(v4), false));
}

#[test]
fn corrupt_inputs_are_typed_errors() {
    let corrupt_at = |r: Result<(Value, usize)>, at: usize| match r {
        Err(Error::Corrupt { structure: "clustering component", offset, .. }) => {
            assert_eq!(offset, at)
        }
        other => panic!("expected corrupt at {at}, got {other:?}"),
    };
    corrupt_at(decode_component(ColumnType::Boolean, false, &[9, 2], 1), 1);
    corrupt_at(decode_component(ColumnType::Int, false, &[0, 0x80, 0, 0], 1), 1);
    corrupt_at(decode_component(ColumnType::Text, false, &[0x61, 0, 0x01], 0), 2);
    corrupt_at(decode_component(ColumnType::Text, false, &[0x61], 0), 1);
    corrupt_at(decode_component(ColumnType::Text, false, &[0xc3, 0, 0], 0), 0);
    corrupt_at(decode_component(ColumnType::Double, false, &[0xff; 8], 0), 0);
    corrupt_at(decode_component(ColumnType::TimeUuid, false, &[0x40; 16], 0), 0);
    corrupt_at(decode_component(ColumnType::TinyInt, false, &[1], 5), 5);
    let key = encode_key(&[(Value::Int(1), false), (Value::Text("x".into()), true)]);
    let types = [(ColumnType::Int, false), (ColumnType::Text, true)];
    assert_eq!(decode_key(&types, &key).unwrap(), vec![Value::Int(1), Value::Text("x".into())]);
    assert_eq!(decode_key(&types, &key[..4]).unwrap(), vec![Value::Int(1)]);
    assert!(decode_key(&types, &key[..5]).is_err(), "truncated second component");
    let mut long = key.clone();
    long.push(0);
    assert!(matches!(
        decode_key(&types, &long),
        Err(Error::Corrupt { structure: "clustering key", offset, .. }) if offset == key.len()
    ));
}
