//! `talus-bench`: benchmarks of Talus. The criterion benches in `benches/` cover the hot loops;
//! the macro harness against peers arrives with the benchmark issue.
//!
//! This library holds the workload setup shared by the benches.

use talus::format::{ColumnType, GcTime, Mutation, Schema, SchemaRef, Timestamp, Value};

/// The key-value shape: partition key = key, one clustering row, one cell.
pub fn kv_schema() -> SchemaRef {
    // Building a fixed, valid schema cannot fail.
    #[allow(clippy::expect_used)]
    Schema::builder("bench", "kv").partition_key("k", ColumnType::Blob).regular("v", ColumnType::Blob).build().expect("valid schema")
}

/// A 16-byte key from `i`, spread over the ring.
pub fn key(i: u64) -> Vec<u8> {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k.to_vec()
}

/// The mutation writing `value` under key `i` in the key-value shape.
pub fn kv_put(schema: &Schema, i: u64, value: &[u8]) -> talus::format::Result<Mutation> {
    Mutation::builder(schema, &[Value::Blob(key(i).into())])
        .now(GcTime(1))
        .set(&[], "v", Value::Blob(value.to_vec().into()), Timestamp(i as i64 + 1))
        .build()
}
