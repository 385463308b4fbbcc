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
#[path = "clustering_encoding_tests.rs"]
mod tests;
