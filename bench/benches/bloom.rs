//! The sstable bloom filter: building one for 100,000 partition keys at the default 1% false
//! positive chance, and probing it with keys it holds and keys it does not.
//!
//! Run: `cargo bench -p talus-bench --bench bloom`.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure should abort the run loudly

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use talus::format::schema::TableOptions;
use talus::format::sstable::bloom::{key_hash, BloomFilter};
use talus::format::{PartitionKey, Value};
use talus_bench::key;

const KEYS: u64 = 100_000;

/// The bloom hashes of the partition keys `range` (16-byte blob keys).
fn hashes(range: std::ops::Range<u64>) -> Vec<u64> {
    range.map(|i| key_hash(PartitionKey::from_values(&[Value::Blob(key(i).into())]).unwrap().as_bytes())).collect()
}

fn bloom(c: &mut Criterion) {
    let fp = TableOptions::default().bloom_filter_fp_chance;
    let present = hashes(0..KEYS);
    let absent = hashes(KEYS..2 * KEYS);
    let filter = BloomFilter::build(&present, fp);
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(KEYS));
    g.sample_size(20);
    g.bench_function("build", |b| b.iter(|| BloomFilter::build(&present, fp).bit_len()));
    g.bench_function("probe_present", |b| b.iter(|| present.iter().filter(|&&h| filter.may_contain(h)).count()));
    g.bench_function("probe_absent", |b| b.iter(|| absent.iter().filter(|&&h| filter.may_contain(h)).count()));
    g.finish();
}

criterion_group!(benches, bloom);
criterion_main!(benches);
