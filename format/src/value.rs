//! Column types and typed values (R1.7).
//!
//! A [`Value`] is what a user writes into a column or a key component; a [`ColumnType`] is what the
//! schema declares. Cell values are stored as the type's *serialized form* (Cassandra's native
//! encoding: big-endian integers, UTF-8 text, raw blobs, 16-byte UUIDs), produced by
//! [`Value::serialize`] and read back by [`Value::deserialize`]. Clustering components additionally
//! have an order-preserving encoding (see `clustering_encoding`).
//!
//! Thread-safety: plain data, `Send + Sync`.

use bytes::Bytes;

use crate::error::{Error, Result};

/// The CQL type of a column or key component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// 8-bit signed integer.
    TinyInt,
    /// 16-bit signed integer.
    SmallInt,
    /// 32-bit signed integer.
    Int,
    /// 64-bit signed integer.
    BigInt,
    /// true/false.
    Boolean,
    /// Milliseconds since the Unix epoch, signed 64-bit.
    Timestamp,
    /// IEEE-754 double.
    Double,
    /// Any 16-byte UUID.
    Uuid,
    /// A version-1 (time-based) UUID, ordered by its time.
    TimeUuid,
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Blob,
}

impl ColumnType {
    /// The CQL name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::TinyInt => "tinyint",
            ColumnType::SmallInt => "smallint",
            ColumnType::Int => "int",
            ColumnType::BigInt => "bigint",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Double => "double",
            ColumnType::Uuid => "uuid",
            ColumnType::TimeUuid => "timeuuid",
            ColumnType::Text => "text",
            ColumnType::Blob => "blob",
        }
    }

    /// Stable one-byte code used by binary encodings of schemas and values.
    pub fn code(self) -> u8 {
        match self {
            ColumnType::TinyInt => 1,
            ColumnType::SmallInt => 2,
            ColumnType::Int => 3,
            ColumnType::BigInt => 4,
            ColumnType::Boolean => 5,
            ColumnType::Timestamp => 6,
            ColumnType::Double => 7,
            ColumnType::Uuid => 8,
            ColumnType::TimeUuid => 9,
            ColumnType::Text => 10,
            ColumnType::Blob => 11,
        }
    }

    /// Inverse of [`ColumnType::code`].
    pub fn from_code(code: u8) -> Option<ColumnType> {
        Some(match code {
            1 => ColumnType::TinyInt,
            2 => ColumnType::SmallInt,
            3 => ColumnType::Int,
            4 => ColumnType::BigInt,
            5 => ColumnType::Boolean,
            6 => ColumnType::Timestamp,
            7 => ColumnType::Double,
            8 => ColumnType::Uuid,
            9 => ColumnType::TimeUuid,
            10 => ColumnType::Text,
            11 => ColumnType::Blob,
            _ => return None,
        })
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// tinyint
    TinyInt(i8),
    /// smallint
    SmallInt(i16),
    /// int
    Int(i32),
    /// bigint
    BigInt(i64),
    /// boolean
    Boolean(bool),
    /// timestamp (milliseconds since the epoch)
    Timestamp(i64),
    /// double
    Double(f64),
    /// uuid
    Uuid([u8; 16]),
    /// timeuuid (must be a version-1 UUID)
    TimeUuid([u8; 16]),
    /// text
    Text(String),
    /// blob
    Blob(Bytes),
}

impl Value {
    /// The type this value belongs to.
    pub fn column_type(&self) -> ColumnType {
        match self {
            Value::TinyInt(_) => ColumnType::TinyInt,
            Value::SmallInt(_) => ColumnType::SmallInt,
            Value::Int(_) => ColumnType::Int,
            Value::BigInt(_) => ColumnType::BigInt,
            Value::Boolean(_) => ColumnType::Boolean,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Double(_) => ColumnType::Double,
            Value::Uuid(_) => ColumnType::Uuid,
            Value::TimeUuid(_) => ColumnType::TimeUuid,
            Value::Text(_) => ColumnType::Text,
            Value::Blob(_) => ColumnType::Blob,
        }
    }

    /// Serialized (native) form: what a cell stores and what legacy-form partition keys are made of.
    pub fn serialize(&self) -> Bytes {
        match self {
            Value::TinyInt(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::SmallInt(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Int(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::BigInt(v) | Value::Timestamp(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Boolean(v) => Bytes::copy_from_slice(&[u8::from(*v)]),
            Value::Double(v) => Bytes::copy_from_slice(&v.to_be_bytes()),
            Value::Uuid(v) | Value::TimeUuid(v) => Bytes::copy_from_slice(v),
            Value::Text(v) => Bytes::copy_from_slice(v.as_bytes()),
            Value::Blob(v) => v.clone(),
        }
    }

    /// Parses the serialized form of a value of type `ty`.
    pub fn deserialize(ty: ColumnType, bytes: &[u8]) -> Result<Value> {
        fn fixed<const N: usize>(ty: ColumnType, bytes: &[u8]) -> Result<[u8; N]> {
            bytes
                .try_into()
                .map_err(|_| Error::InvalidValue { column_type: ty.name(), reason: format!("expected {N} bytes, found {}", bytes.len()) })
        }
        Ok(match ty {
            ColumnType::TinyInt => Value::TinyInt(i8::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::SmallInt => Value::SmallInt(i16::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::Int => Value::Int(i32::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::BigInt => Value::BigInt(i64::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::Timestamp => Value::Timestamp(i64::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::Boolean => match fixed::<1>(ty, bytes)?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                other => {
                    return Err(Error::InvalidValue {
                        column_type: ty.name(),
                        reason: format!("boolean byte must be 0 or 1, found {other}"),
                    })
                }
            },
            ColumnType::Double => Value::Double(f64::from_be_bytes(fixed(ty, bytes)?)),
            ColumnType::Uuid => Value::Uuid(fixed(ty, bytes)?),
            ColumnType::TimeUuid => {
                let v = fixed(ty, bytes)?;
                check_timeuuid(&v)?;
                Value::TimeUuid(v)
            }
            ColumnType::Text => Value::Text(
                String::from_utf8(bytes.to_vec())
                    .map_err(|e| Error::InvalidValue { column_type: ty.name(), reason: format!("invalid UTF-8: {e}") })?,
            ),
            ColumnType::Blob => Value::Blob(Bytes::copy_from_slice(bytes)),
        })
    }

    /// Checks that the value is well-formed for its own type (a timeuuid must be version 1).
    pub fn validate(&self) -> Result<()> {
        match self {
            Value::TimeUuid(v) => check_timeuuid(v),
            _ => Ok(()),
        }
    }
}

fn check_timeuuid(v: &[u8; 16]) -> Result<()> {
    if v[6] >> 4 == 1 {
        Ok(())
    } else {
        Err(Error::InvalidValue { column_type: "timeuuid", reason: format!("UUID version {} is not 1", v[6] >> 4) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialize_round_trips() {
        let values = [
            Value::TinyInt(-3),
            Value::SmallInt(300),
            Value::Int(-70000),
            Value::BigInt(1 << 40),
            Value::Boolean(true),
            Value::Timestamp(-5),
            Value::Double(-1.5),
            Value::Uuid([7; 16]),
            Value::Text("héllo".into()),
            Value::Blob(Bytes::from_static(b"\x00\xff")),
        ];
        for v in values {
            let bytes = v.serialize();
            assert_eq!(Value::deserialize(v.column_type(), &bytes).unwrap(), v);
        }
    }

    #[test]
    fn wrong_width_is_a_typed_error() {
        let err = Value::deserialize(ColumnType::Int, &[1, 2, 3]).unwrap_err();
        assert!(err.to_string().contains("expected 4 bytes"), "{err}");
        let mut not_v1 = [0u8; 16];
        not_v1[6] = 0x40;
        assert!(Value::TimeUuid(not_v1).validate().is_err());
    }
}
