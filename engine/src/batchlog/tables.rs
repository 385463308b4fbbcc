//! The two batchlog system tables, their keys, and the encoding of a batch's mutations.
//!
//! - v1 `system.batchlog (id uuid PRIMARY KEY, data blob, version int, written_at timestamp)`:
//!   one partition per batch (A4).
//! - v2 `system.batchlog_v2 ((version, stage, shard), written_at, id) data`: stage 0 initial,
//!   1 failed_replay; 256 shards from a Murmur3 hash of `written_at` (A4, A5), so every batch of
//!   one millisecond lands in one shard and a clustering range over `written_at` in a shard
//!   partition is a well-defined prefix range.
//!
//! Both use `gc_grace_seconds = 0` (A4). The `data` blob of a batch is
//!
//! ```text
//! +---------+----------------------------------------------+
//! | u32 LE  | count × ( u32 LE length | encoded mutation ) |
//! | count   |   (talus_format::encode_mutation)             |
//! +---------+----------------------------------------------+
//! ```
//!
//! Thread-safety: pure functions and immutable schemas.

use bytes::Bytes;
use talus_format::schema::{TableOptions, TombstoneGcMode};
use talus_format::token::murmur3_x64_128;
use talus_format::{decode_mutation, encode_mutation, ColumnType, Mutation, Schema, SchemaRef};

use crate::error::{Error, Result};

/// The keyspace of both batchlog tables.
pub const SYSTEM_KEYSPACE: &str = "system";
/// Name of the v1 table.
pub const V1_TABLE: &str = "batchlog";
/// Name of the v2 table.
pub const V2_TABLE: &str = "batchlog_v2";
/// The batchlog format version written in `version` (entries of another version are left alone,
/// as ScyllaDB leaves entries of another messaging version, A5/A11).
pub const BATCHLOG_VERSION: i32 = 1;
/// Bits of the v2 shard number: 256 shards (A5 `batchlog_shard_bits`).
pub const SHARD_BITS: u32 = 8;
/// Number of v2 shards.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// The v2 stage of an entry (A7 `batchlog_stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Written by the write path, waiting for the batch to be applied.
    Initial = 0,
    /// Moved here after a failed replay with cleanup on; never range-deleted (I3).
    FailedReplay = 1,
}

impl Stage {
    /// The stage stored as `tinyint` `code`, if it is one.
    pub fn from_code(code: i8) -> Option<Stage> {
        match code {
            0 => Some(Stage::Initial),
            1 => Some(Stage::FailedReplay),
            _ => None,
        }
    }
}

/// The v2 shard of a batch written at `written_at_ms` (A5 `batchlog_shard_of`: Murmur3 x64 128 of
/// the 8 little-endian bytes of the millisecond count, the two halves xor-ed, low 8 bits).
pub fn shard_of(written_at_ms: i64) -> u8 {
    let h = murmur3_x64_128(&written_at_ms.to_le_bytes(), 0);
    ((h[0] ^ h[1]) & 0xFF) as u8
}

fn batchlog_options() -> TableOptions {
    // gc_grace_seconds = 0 on both tables (A4).
    TableOptions { gc_grace_seconds: 0, tombstone_gc: TombstoneGcMode::Timeout, ..TableOptions::default() }
}

/// The v1 schema: `system.batchlog (id uuid PRIMARY KEY, data blob, version int, written_at timestamp)`.
pub fn v1_schema() -> Result<SchemaRef> {
    Ok(Schema::builder(SYSTEM_KEYSPACE, V1_TABLE)
        .partition_key("id", ColumnType::Uuid)
        .regular("data", ColumnType::Blob)
        .regular("version", ColumnType::Int)
        .regular("written_at", ColumnType::Timestamp)
        .options(batchlog_options())
        .build()?)
}

/// The v2 schema: `system.batchlog_v2 ((version int, stage tinyint, shard int), written_at timestamp,
/// id uuid) data blob`.
pub fn v2_schema() -> Result<SchemaRef> {
    Ok(Schema::builder(SYSTEM_KEYSPACE, V2_TABLE)
        .partition_key("version", ColumnType::Int)
        .partition_key("stage", ColumnType::TinyInt)
        .partition_key("shard", ColumnType::Int)
        .clustering("written_at", ColumnType::Timestamp)
        .clustering("id", ColumnType::Uuid)
        .regular("data", ColumnType::Blob)
        .options(batchlog_options())
        .build()?)
}

/// The v2 partition key values of `(version, stage, shard)`.
pub fn v2_partition(stage: Stage, shard: u8) -> [talus_format::Value; 3] {
    use talus_format::Value;
    [Value::Int(BATCHLOG_VERSION), Value::TinyInt(stage as i8), Value::Int(i32::from(shard))]
}

/// Encodes a batch's mutations into the `data` blob.
pub fn encode_batch(mutations: &[Mutation]) -> Result<Bytes> {
    let mut out = Vec::new();
    out.extend_from_slice(&count_u32(mutations.len())?.to_le_bytes());
    let mut one = Vec::new();
    for m in mutations {
        one.clear();
        encode_mutation(m, &mut one);
        out.extend_from_slice(&count_u32(one.len())?.to_le_bytes());
        out.extend_from_slice(&one);
    }
    Ok(Bytes::from(out))
}

fn count_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::InvalidBatch(format!("{n} is too large for a batchlog entry")))
}

/// Decodes a `data` blob; any malformation is an error naming the offset.
pub fn decode_batch(data: &[u8]) -> Result<Vec<Mutation>> {
    let bad = |at: usize, what: &str| Error::InvalidBatch(format!("batch data: {what} at byte {at} of {}", data.len()));
    let read_u32 = |at: usize| -> Result<u32> {
        let bytes = data.get(at..at + 4).ok_or_else(|| bad(at, "truncated length"))?;
        let mut word = [0u8; 4];
        word.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(word))
    };
    let count = read_u32(0)? as usize;
    let mut at = 4;
    // Each mutation takes at least its 4-byte length: a count beyond that is corrupt, not a
    // reason to reserve memory.
    if count > (data.len() - at) / 4 {
        return Err(bad(0, "mutation count larger than the data"));
    }
    let mut mutations = Vec::with_capacity(count);
    for _ in 0..count {
        let len = read_u32(at)? as usize;
        at += 4;
        let body = data.get(at..at.saturating_add(len)).ok_or_else(|| bad(at, "truncated mutation"))?;
        mutations.push(decode_mutation(body).map_err(|e| bad(at, &format!("mutation: {e}")))?);
        at += len;
    }
    if at != data.len() {
        return Err(bad(at, "trailing bytes"));
    }
    Ok(mutations)
}
