//! Commitlog appends of one key-value put (16-byte key, 100-byte value): under `Periodic`
//! durability an append is a copy into the segment buffer (the sync thread writes it out);
//! under `Batch(0)` each append waits for the fsync that covers it (one writer: one fsync each).
//! The log lives in a temporary directory under the workspace's `target/`.
//!
//! Run: `cargo bench -p talus-bench --bench commitlog`.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure should abort the run loudly

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use talus::commitlog::{recover, Commitlog, CommitlogOptions, CorruptionPolicy, Durability, ReplayedTables};
use talus::format::commitlog_segment::push_mutation;
use talus::format::encode_mutation;
use talus::fs::RealFs;
use talus_bench::{kv_put, kv_schema, target_dir, value};

/// A started commitlog in a fresh directory (kept alive by the returned guard).
fn commitlog(durability: Durability) -> (tempfile::TempDir, Commitlog) {
    std::fs::create_dir_all(target_dir()).unwrap();
    let dir = tempfile::Builder::new().prefix("talus-bench-commitlog-").tempdir_in(target_dir()).unwrap();
    let log_dir = dir.path().join("commitlog");
    let recovered = recover(&RealFs, &log_dir, CorruptionPolicy::Fail, |_| Ok(ReplayedTables::default())).unwrap();
    let options = CommitlogOptions { durability, ..CommitlogOptions::default() };
    let log = Commitlog::start(Arc::new(RealFs), &log_dir, options, &recovered).unwrap();
    (dir, log)
}

fn append(c: &mut Criterion) {
    let schema = kv_schema();
    let mutation = kv_put(&schema, 7, &value(7, 100)).unwrap();
    let mut body = Vec::new();
    push_mutation(&mut body, |out| encode_mutation(&mutation, out));
    let tables = [schema.id];
    let mut g = c.benchmark_group("commitlog_append");
    g.throughput(Throughput::Elements(1));

    let (_dir, log) = commitlog(Durability::Periodic(Duration::from_millis(100)));
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    g.bench_function("periodic", |b| b.iter(|| log.append(&tables, &body, false).unwrap()));
    drop(log);

    let (_dir, log) = commitlog(Durability::Batch(Duration::ZERO));
    g.sample_size(10);
    g.bench_function("batch_wait_durable", |b| {
        b.iter(|| {
            let appended = log.append(&tables, &body, false).unwrap();
            log.wait_durable(appended.seq).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
