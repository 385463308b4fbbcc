//! The merge of N sorted fragment streams (`MergedStream`, the heart of reads and compaction):
//! N = 2, 8 and 32 streams of key-value partitions, disjoint (the keys dealt out to the streams
//! in turn) or overlapping (every stream holds a version of every key, so each partition is
//! reconciled from N).
//!
//! Run: `cargo bench -p talus-bench --bench merge`.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure should abort the run loudly

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use talus::compaction::MergedStream;
use talus::format::{Fragment, FragmentStream, GcTime, Mutation, Timestamp, Value};
use talus_bench::{fragments_of, key, kv_put, kv_schema, value};

/// Partitions in all the streams together.
const PARTITIONS: u64 = 32_768;

/// `n` streams of disjoint partitions.
fn disjoint(n: u64) -> Vec<Vec<Fragment>> {
    let schema = kv_schema();
    (0..n)
        .map(|s| {
            let mutations: Vec<Mutation> =
                (0..PARTITIONS).filter(|i| i % n == s).map(|i| kv_put(&schema, i, &value(i, 100)).unwrap()).collect();
            fragments_of(&mutations)
        })
        .collect()
}

/// `n` streams each holding a version (its own timestamp) of the same `PARTITIONS / n` keys.
fn overlapping(n: u64) -> Vec<Vec<Fragment>> {
    let schema = kv_schema();
    (0..n)
        .map(|s| {
            let mutations: Vec<Mutation> = (0..PARTITIONS / n)
                .map(|i| {
                    Mutation::builder(&schema, &[Value::Blob(key(i).into())])
                        .now(GcTime(1))
                        .set(&[], "v", Value::Blob(value(i + s, 100).into()), Timestamp(s as i64 + 1))
                        .build()
                        .unwrap()
                })
                .collect();
            fragments_of(&mutations)
        })
        .collect()
}

fn streams(inputs: &[Vec<Fragment>]) -> Vec<FragmentStream<'static>> {
    inputs.iter().map(|fragments| Box::new(fragments.clone().into_iter().map(Ok)) as FragmentStream<'static>).collect()
}

fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    for n in [2u64, 8, 32] {
        for (shape, inputs) in [("disjoint", disjoint(n)), ("overlapping", overlapping(n))] {
            let fragments: u64 = inputs.iter().map(|s| s.len() as u64).sum();
            g.throughput(Throughput::Elements(fragments));
            g.bench_function(format!("{shape}_{n}_streams"), |b| {
                b.iter_batched(|| streams(&inputs), |s| MergedStream::new(s).map(Result::unwrap).count(), BatchSize::LargeInput)
            });
        }
    }
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
