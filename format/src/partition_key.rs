//! Partition keys in Cassandra "legacy form" and their ring order (R1.3–R1.5).
//!
//! ```text
//! single-column key:  value bytes
//! composite key:      ( be16 len | value bytes | 0x00 )*      one group per component
//! ```
//!
//! The same bytes are hashed for the token (R1.1), stored in sstables and probed in bloom filters.
//! Partitions sort by [`DecoratedKey`]: token as a signed i64, then the legacy bytes unsigned.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::token::Token;
use crate::value::{ColumnType, Value};

/// Largest serialized size of one partition key component (the be16 length of the legacy form).
pub const MAX_KEY_COMPONENT_BYTES: usize = u16::MAX as usize;

/// A partition key in legacy form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey(Bytes);

impl PartitionKey {
    /// Builds the legacy form of `values` (R1.3). Fails if a component is over
    /// [`MAX_KEY_COMPONENT_BYTES`].
    pub fn from_values(values: &[Value]) -> Result<PartitionKey> {
        let checked = |part: Bytes| {
            if part.len() > MAX_KEY_COMPONENT_BYTES {
                return Err(Error::TooLarge { what: "partition key component".into(), size: part.len(), limit: MAX_KEY_COMPONENT_BYTES });
            }
            Ok(part)
        };
        // A single component is the key as is (no vector of parts on the write path).
        if let [single] = values {
            return checked(single.serialize()).map(PartitionKey);
        }
        let parts: Vec<Bytes> = values.iter().map(|v| checked(v.serialize())).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 3).sum());
        for part in &parts {
            // Cannot truncate: checked against MAX_KEY_COMPONENT_BYTES above.
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
            out.push(0);
        }
        Ok(PartitionKey(out.into()))
    }

    /// Wraps bytes already in legacy form (e.g. read from disk).
    pub fn from_legacy_bytes(bytes: Bytes) -> PartitionKey {
        PartitionKey(bytes)
    }

    /// The legacy-form bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Decodes the key into typed components.
    pub fn decode(&self, types: &[ColumnType]) -> Result<Vec<Value>> {
        if let [single] = types {
            return Ok(vec![Value::deserialize(*single, &self.0)?]);
        }
        let corrupt = |offset: usize, reason: &str| Error::Corrupt { structure: "partition key", offset, reason: reason.to_string() };
        let bytes = &self.0[..];
        let mut values = Vec::with_capacity(types.len());
        let mut at = 0;
        for ty in types {
            let len_bytes = bytes.get(at..at + 2).ok_or_else(|| corrupt(at, "truncated length"))?;
            let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
            let body = bytes.get(at + 2..at + 2 + len).ok_or_else(|| corrupt(at, "component longer than the key"))?;
            if bytes.get(at + 2 + len) != Some(&0) {
                return Err(corrupt(at + 2 + len, "missing end-of-component byte"));
            }
            values.push(Value::deserialize(*ty, body)?);
            at += len + 3;
        }
        if at != bytes.len() {
            return Err(corrupt(at, "trailing bytes after the last component"));
        }
        Ok(values)
    }

    /// The key's token (R1.1).
    pub fn token(&self) -> Token {
        Token::of(&self.0)
    }

    /// The key together with its token.
    pub fn decorate(self) -> DecoratedKey {
        DecoratedKey { token: self.token(), key: self }
    }
}

/// A partition key with its token; ordered as partitions are stored (R1.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecoratedKey {
    /// The Murmur3 token of `key`.
    pub token: Token,
    /// The legacy-form key.
    pub key: PartitionKey,
}

impl Ord for DecoratedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.token.cmp(&other.token).then_with(|| self.key.cmp(&other.key))
    }
}

impl PartialOrd for DecoratedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_legacy_form_matches_r1_3() {
        let key = PartitionKey::from_values(&[Value::Int(1), Value::Text("ab".into())]).unwrap();
        assert_eq!(&key.as_bytes()[..], &[0, 4, 0, 0, 0, 1, 0, 0, 2, b'a', b'b', 0]);
        let types = [ColumnType::Int, ColumnType::Text];
        assert_eq!(key.decode(&types).unwrap(), vec![Value::Int(1), Value::Text("ab".into())]);
        let single = PartitionKey::from_values(&[Value::Int(7)]).unwrap();
        assert_eq!(&single.as_bytes()[..], &[0, 0, 0, 7]);
    }

    #[test]
    fn corrupt_composite_is_a_typed_error() {
        let bad = PartitionKey::from_legacy_bytes(Bytes::from_static(&[0, 9, 1]));
        let err = bad.decode(&[ColumnType::Int, ColumnType::Int]).unwrap_err();
        assert!(matches!(err, Error::Corrupt { structure: "partition key", .. }), "{err}");
    }

    #[test]
    fn order_is_token_then_bytes_r1_5() {
        let mut keys: Vec<DecoratedKey> = (0..50).map(|i| PartitionKey::from_values(&[Value::Int(i)]).unwrap().decorate()).collect();
        keys.sort();
        for pair in keys.windows(2) {
            assert!(pair[0].token <= pair[1].token);
        }
        let a = DecoratedKey { token: Token(5), key: PartitionKey::from_legacy_bytes(Bytes::from_static(b"b")) };
        let b = DecoratedKey { token: Token(5), key: PartitionKey::from_legacy_bytes(Bytes::from_static(b"a")) };
        assert!(b < a);
    }
}
