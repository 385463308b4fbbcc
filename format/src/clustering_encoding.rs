//! Order-preserving, prefix-free byte encoding of clustering key components (R1.7).
//!
//! Clustering comparison in Talus is `memcmp` over the encoded key, so the encoding of every
//! component must
//!
//! 1. compare bytewise (unsigned, shorter-is-less) exactly like the type's Cassandra/ScyllaDB
//!    comparator (R1.7), and
//! 2. be **prefix-free**: no value's encoding is a proper prefix of another value's encoding of the
//!    same type. Then, for keys built by concatenating components, the first differing byte lies in
//!    the first differing component, so memcmp over the concatenation equals the component-wise
//!    comparison, and the encoding of the first `k` components is a byte prefix of the encoding of
//!    the whole key (which is what clustering prefixes and bounds rely on, R1.8–R1.10).
//!
//! Encodings (ascending order):
//!
//! ```text
//! tinyint/smallint/int/bigint/timestamp   fixed-width big-endian, sign bit flipped
//!     int -1 -> 7f ff ff ff     int 0 -> 80 00 00 00     int 1 -> 80 00 00 01
//! boolean                                 false -> 00, true -> 01
//! double (Java Double.compare order)      8 bytes: NaN canonicalised to 0x7ff8000000000000;
//!     bits = to_bits(d); key = if sign set { !bits } else { bits | 1<<63 }; big-endian
//!     -inf < ... < -0.0 (7f ff ff ff ff ff ff ff) < +0.0 (80 00 ..) < ... < +inf < NaN (ff f8 00 ..)
//! text / blob (unsigned lexicographic)    each 00 byte escaped as 00 ff, then terminator 00 00
//!     "a\0b" -> 61 00 ff 62 00 00         "" -> 00 00
//! uuid (UUIDType: version, then time for v1, then unsigned bytes)    16 bytes, as a u128:
//!     | version (4 bits) | 60 bits                                   | lsb (64 bits, bytes 8..16) |
//!       v1:     60 bits = timestamp: time_hi(12) time_mid(16) time_low(32)
//!       others: 60 bits = msb bytes 0..8 with the version nibble removed, in byte order
//! timeuuid (TimeUUIDType: time, then signed bytes)                   16 bytes:
//!     | 0001 | timestamp (60 bits) | bytes 8..16, each XOR 0x80 (signed-byte order) |
//! ```
//!
//! A `DESC` component (`ReversedType`) is the ascending encoding with every byte inverted
//! (`x ^ 0xFF`). Inversion preserves prefix-freeness and reverses memcmp order between two
//! encodings of which neither is a prefix of the other, which is always the case here.
//!
//! Sources for the uuid/timeuuid orders: apache/cassandra `src/java/org/apache/cassandra/db/marshal/
//! UUIDType.java` (version, then `compareTimestampBytes` for v1, then unsigned lexical bytes) and
//! `TimeUUIDType.java` (`reorderTimestampBytes` compared as a long, then
//! `signedBytesToNativeLong`: a signed per-byte comparison of the low 8 bytes); scylladb/scylladb
//! `types/types.cc` (`uuid_type_impl` visitor: version nibble, then `uuid_tri_compare_timeuuid`
//! for v1, else `compare_unsigned`) and `utils/UUID.hh` (`timeuuid_tri_compare`: timestamp, then
//! `lsb ^ 0x8080808080808080` unsigned).
//!
//! Decoding is strict: a byte string that no value encodes to (bad boolean byte, non-canonical NaN,
//! bad text escape, invalid UTF-8, non-version-1 timeuuid, truncation) is an
//! [`Error::Corrupt`] with structure `"clustering component"`, never a panic.
//!
//! Thread-safety: pure functions, `Send + Sync`.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::value::{ColumnType, Value};

const STRUCTURE: &str = "clustering component";
const SIGN64: u64 = 1 << 63;
/// The one NaN bit pattern that is encoded (Java's `Double.NaN`).
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;
/// Flips bytes 8..16 of a timeuuid so unsigned comparison equals signed per-byte comparison.
const TIMEUUID_LSB_FLIP: u64 = 0x8080_8080_8080_8080;
const LOW60: u64 = (1 << 60) - 1;

/// Appends the order-preserving encoding of `value` to `out`; `descending` inverts every byte of
/// this component (a `CLUSTERING ORDER BY ... DESC` column, R1.7).
///
/// A `TimeUuid` must be version 1 ([`Value::validate`]); other versions are encoded
/// deterministically but [`decode_component`] rejects them.
pub fn encode_component(value: &Value, descending: bool, out: &mut Vec<u8>) {
    let start = out.len();
    match value {
        Value::TinyInt(v) => out.push((*v as u8) ^ 0x80),
        Value::SmallInt(v) => out.extend_from_slice(&((*v as u16) ^ 0x8000).to_be_bytes()),
        Value::Int(v) => out.extend_from_slice(&((*v as u32) ^ 0x8000_0000).to_be_bytes()),
        Value::BigInt(v) | Value::Timestamp(v) => out.extend_from_slice(&((*v as u64) ^ SIGN64).to_be_bytes()),
        Value::Boolean(v) => out.push(u8::from(*v)),
        Value::Double(v) => out.extend_from_slice(&double_key(*v).to_be_bytes()),
        Value::Uuid(u) => out.extend_from_slice(&uuid_key(u).to_be_bytes()),
        Value::TimeUuid(u) => out.extend_from_slice(&timeuuid_key(u).to_be_bytes()),
        Value::Text(s) => escape(s.as_bytes(), out),
        Value::Blob(b) => escape(b, out),
    }
    if descending {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
}

/// Decodes one component of type `ty` starting at `input[offset..]`.
///
/// Returns the value and the number of bytes consumed from `offset`. Error offsets are absolute
/// positions in `input`. Any malformed input (including `offset > input.len()`) is an
/// [`Error::Corrupt`] with structure `"clustering component"`.
pub fn decode_component(ty: ColumnType, descending: bool, input: &[u8], offset: usize) -> Result<(Value, usize)> {
    let mut r = Reader { input, pos: offset, mask: if descending { 0xFF } else { 0x00 }, ty };
    let value = match ty {
        ColumnType::TinyInt => Value::TinyInt((r.array::<1>()?[0] ^ 0x80) as i8),
        ColumnType::SmallInt => Value::SmallInt((u16::from_be_bytes(r.array()?) ^ 0x8000) as i16),
        ColumnType::Int => Value::Int((u32::from_be_bytes(r.array()?) ^ 0x8000_0000) as i32),
        ColumnType::BigInt => Value::BigInt((u64::from_be_bytes(r.array()?) ^ SIGN64) as i64),
        ColumnType::Timestamp => Value::Timestamp((u64::from_be_bytes(r.array()?) ^ SIGN64) as i64),
        ColumnType::Boolean => {
            let at = r.pos;
            match r.array::<1>()?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                other => return Err(corrupt(at, format!("boolean byte {other:#04x}"))),
            }
        }
        ColumnType::Double => {
            let at = r.pos;
            let key = u64::from_be_bytes(r.array()?);
            Value::Double(double_from_key(key).ok_or_else(|| corrupt(at, format!("non-canonical NaN key {key:#018x}")))?)
        }
        ColumnType::Uuid => Value::Uuid(uuid_from_key(u128::from_be_bytes(r.array()?))),
        ColumnType::TimeUuid => {
            let at = r.pos;
            let key = u128::from_be_bytes(r.array()?);
            let version = (key >> 124) as u8;
            if version != 1 {
                return Err(corrupt(at, format!("timeuuid version {version} is not 1")));
            }
            Value::TimeUuid(timeuuid_from_key(key))
        }
        ColumnType::Text => {
            let at = r.pos;
            let bytes = r.unescape()?;
            Value::Text(String::from_utf8(bytes).map_err(|e| corrupt(at, format!("invalid UTF-8: {e}")))?)
        }
        ColumnType::Blob => Value::Blob(Bytes::from(r.unescape()?)),
    };
    Ok((value, r.pos - offset))
}

/// Encodes a whole key (or a prefix of one): the concatenation of the components' encodings, each
/// with its direction (`true` = descending).
pub fn encode_key(values: &[(Value, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (value, descending) in values {
        encode_component(value, *descending, &mut out);
    }
    out
}

/// Decodes the components present in `input` (a prefix of `types`: zero up to `types.len()`
/// components). Bytes left over after `types.len()` components, or a truncated component, are an
/// [`Error::Corrupt`].
pub fn decode_key(types: &[(ColumnType, bool)], input: &[u8]) -> Result<Vec<Value>> {
    let mut values = Vec::new();
    let mut pos = 0;
    for &(ty, descending) in types {
        if pos == input.len() {
            break;
        }
        let (value, used) = decode_component(ty, descending, input, pos)?;
        values.push(value);
        pos += used;
    }
    if pos != input.len() {
        return Err(Error::Corrupt {
            structure: "clustering key",
            offset: pos,
            reason: format!(
                "{} trailing byte(s) after {} component(s); the key has at most {}",
                input.len() - pos,
                values.len(),
                types.len()
            ),
        });
    }
    Ok(values)
}

fn corrupt(offset: usize, reason: String) -> Error {
    Error::Corrupt { structure: STRUCTURE, offset, reason }
}

/// Cursor over `input` that undoes the DESC inversion (`mask`) as it reads.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    mask: u8,
    ty: ColumnType,
}

impl Reader<'_> {
    fn truncated(&self, needed: usize) -> Error {
        corrupt(
            self.pos,
            format!(
                "truncated {} component: needs {needed} more byte(s), {} left",
                self.ty.name(),
                self.input.len().saturating_sub(self.pos)
            ),
        )
    }

    fn byte(&mut self) -> Result<u8> {
        match self.input.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(b ^ self.mask)
            }
            None => Err(self.truncated(1)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let src = self.pos.checked_add(N).and_then(|end| self.input.get(self.pos..end)).ok_or_else(|| self.truncated(N))?;
        let mut out = [0u8; N];
        for (o, s) in out.iter_mut().zip(src) {
            *o = s ^ self.mask;
        }
        self.pos += N;
        Ok(out)
    }

    /// Reads an escaped byte string up to and including its `00 00` terminator.
    fn unescape(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let b = self.byte()?;
            if b != 0 {
                out.push(b);
                continue;
            }
            let at = self.pos;
            match self.byte()? {
                0xFF => out.push(0),
                0x00 => return Ok(out),
                other => return Err(corrupt(at, format!("bad escape 00 {other:02x} in {}", self.ty.name()))),
            }
        }
    }
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Java `Double.compare` order as an unsigned key: NaN canonical and greatest, -0.0 < +0.0.
fn double_key(d: f64) -> u64 {
    let bits = if d.is_nan() { CANONICAL_NAN } else { d.to_bits() };
    if bits & SIGN64 != 0 {
        !bits
    } else {
        bits | SIGN64
    }
}

/// Inverse of [`double_key`]; `None` for keys that no double encodes to (non-canonical NaNs).
fn double_from_key(key: u64) -> Option<f64> {
    let bits = if key & SIGN64 != 0 { key & !SIGN64 } else { !key };
    let d = f64::from_bits(bits);
    if d.is_nan() && bits != CANONICAL_NAN {
        None
    } else {
        Some(d)
    }
}

fn halves(u: &[u8; 16]) -> (u64, u64) {
    let v = u128::from_be_bytes(*u);
    ((v >> 64) as u64, v as u64)
}

fn join(msb: u64, lsb: u64) -> [u8; 16] {
    ((u128::from(msb) << 64) | u128::from(lsb)).to_be_bytes()
}

/// The 60-bit v1 timestamp `time_hi(12) | time_mid(16) | time_low(32)` of an msb.
fn timestamp60(msb: u64) -> u64 {
    ((msb & 0x0fff) << 48) | (((msb >> 16) & 0xffff) << 32) | (msb >> 32)
}

/// Rebuilds an msb from its version nibble and 60-bit timestamp (inverse of [`timestamp60`]).
fn msb_from_timestamp60(version: u64, ts: u64) -> u64 {
    ((ts & 0xffff_ffff) << 32) | (((ts >> 32) & 0xffff) << 16) | (version << 12) | (ts >> 48)
}

fn uuid_key(u: &[u8; 16]) -> u128 {
    let (msb, lsb) = halves(u);
    let version = (msb >> 12) & 0xf;
    let rest = if version == 1 { timestamp60(msb) } else { ((msb >> 16) << 12) | (msb & 0x0fff) };
    (u128::from((version << 60) | rest) << 64) | u128::from(lsb)
}

fn uuid_from_key(key: u128) -> [u8; 16] {
    let hi = (key >> 64) as u64;
    let (version, rest) = (hi >> 60, hi & LOW60);
    let msb = if version == 1 { msb_from_timestamp60(version, rest) } else { ((rest >> 12) << 16) | (version << 12) | (rest & 0x0fff) };
    join(msb, key as u64)
}

fn timeuuid_key(u: &[u8; 16]) -> u128 {
    let (msb, lsb) = halves(u);
    // Cassandra's `reorderTimestampBytes`: version nibble on top, then the timestamp.
    let hi = (((msb >> 12) & 0xf) << 60) | timestamp60(msb);
    (u128::from(hi) << 64) | u128::from(lsb ^ TIMEUUID_LSB_FLIP)
}

fn timeuuid_from_key(key: u128) -> [u8; 16] {
    let hi = (key >> 64) as u64;
    let msb = msb_from_timestamp60(hi >> 60, hi & LOW60);
    join(msb, (key as u64) ^ TIMEUUID_LSB_FLIP)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
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
            ColumnType::Text => {
                prop_oneof![any::<String>(), "[\\x00\\x01a\\x7f\\u{80}\\u{ff}\\u{10ffff}]{0,6}",].prop_map(Value::Text).boxed()
            }
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
}
