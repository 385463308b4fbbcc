//! Memtable insert and point-query rates, single- and two-threaded (issue: foundation).
//!
//! Run: `cargo bench -p talus-bench --bench memtable`.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure should abort the run loudly

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use talus::format::{PartitionKey, Value};
use talus::Memtable;
use talus_bench::{key, kv_put, kv_schema};

const N: u64 = 100_000;

fn inserts(c: &mut Criterion) {
    let schema = kv_schema();
    let value = [7u8; 100];
    let mutations: Vec<_> = (0..N).map(|i| kv_put(&schema, i, &value).unwrap()).collect();
    let mut g = c.benchmark_group("memtable_insert");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("1_thread", |b| {
        b.iter_batched(Memtable::new, |m| mutations.iter().for_each(|mu| m.apply(mu)), BatchSize::PerIteration)
    });
    let mutations = Arc::new(mutations);
    g.bench_function("2_threads", |b| {
        b.iter_batched(
            || Arc::new(Memtable::new()),
            |m| {
                let handles: Vec<_> = (0..2)
                    .map(|t| {
                        let (m, mutations) = (m.clone(), mutations.clone());
                        std::thread::spawn(move || mutations.iter().skip(t).step_by(2).for_each(|mu| m.apply(mu)))
                    })
                    .collect();
                handles.into_iter().for_each(|h| h.join().unwrap());
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn point_queries(c: &mut Criterion) {
    let schema = kv_schema();
    let value = [7u8; 100];
    let m = Arc::new(Memtable::new());
    for i in 0..N {
        m.apply(&kv_put(&schema, i, &value).unwrap());
    }
    let keys: Vec<_> = (0..N).map(|i| PartitionKey::from_values(&[Value::Blob(key(i).into())]).unwrap().decorate()).collect();
    let mut g = c.benchmark_group("memtable_point_query");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("1_thread", |b| b.iter(|| keys.iter().filter(|k| m.partition(k).is_some_and(|p| !p.rows.is_empty())).count()));
    let keys = Arc::new(keys);
    g.bench_function("2_threads", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..2)
                .map(|t| {
                    let (m, keys) = (m.clone(), keys.clone());
                    std::thread::spawn(move || keys.iter().skip(t).step_by(2).filter(|k| m.partition(k).is_some()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, inserts, point_queries);
criterion_main!(benches);
