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

/// Latency distribution of a measurement, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst case.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// The distribution of `nanos` (sorted in place).
    pub fn of(nanos: &mut [u64]) -> Latency {
        nanos.sort_unstable();
        let at = |q: f64| match nanos.len() {
            0 => 0.0,
            n => nanos[((n - 1) as f64 * q).round() as usize] as f64 / 1e3,
        };
        let mean = if nanos.is_empty() { 0.0 } else { nanos.iter().map(|&n| n as f64).sum::<f64>() / nanos.len() as f64 / 1e3 };
        Latency { p50_us: at(0.5), p90_us: at(0.9), p99_us: at(0.99), max_us: at(1.0), mean_us: mean }
    }
}
