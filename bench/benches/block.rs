//! SSTable data blocks: encoding fragments into a block's content, `write_block` (zstd, LZ4 or raw,
//! plus the checksum), `read_block` (checksum + decompression) and decoding the fragments back,
//! on ~4 KiB blocks of key-value rows (16-byte keys, 100-byte values).
//!
//! Run: `cargo bench -p talus-bench --bench block`.

#![allow(clippy::unwrap_used)] // benchmark setup: a failure should abort the run loudly

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use talus::format::schema::{Compression, TableOptions};
use talus::format::sstable::block::{decode_fragment, encode_fragment, read_block, write_block, BlockHandle};
use talus::format::Fragment;
use talus_bench::{fragments_of, kv_put, kv_schema, value, ZSTD};

const ROWS: u64 = 20_000;

/// The fragments cut into blocks of about the default block size, at partition ends.
fn blocks() -> Vec<Vec<Fragment>> {
    let schema = kv_schema();
    let mutations: Vec<_> = (0..ROWS).map(|i| kv_put(&schema, i, &value(i, 100)).unwrap()).collect();
    let target = TableOptions::default().block_size;
    let (mut blocks, mut current, mut size) = (Vec::new(), Vec::new(), 0);
    for fragment in fragments_of(&mutations) {
        let mut encoded = Vec::new();
        encode_fragment(&fragment, &mut encoded);
        size += encoded.len();
        let end = matches!(fragment, Fragment::PartitionEnd);
        current.push(fragment);
        if end && size >= target {
            blocks.push(std::mem::take(&mut current));
            size = 0;
        }
    }
    blocks.push(current);
    blocks
}

fn encode(fragments: &[Fragment]) -> Vec<u8> {
    let mut content = Vec::with_capacity(4096 + 512);
    for f in fragments {
        encode_fragment(f, &mut content);
    }
    content
}

fn block_codec(c: &mut Criterion) {
    let blocks = blocks();
    let contents: Vec<Vec<u8>> = blocks.iter().map(|b| encode(b)).collect();
    let bytes: u64 = contents.iter().map(|c| c.len() as u64).sum();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("encode_fragments", |b| b.iter(|| blocks.iter().map(|f| encode(f).len()).sum::<usize>()));
    for (name, compression) in [("zstd3", ZSTD), ("lz4", Compression::Lz4), ("raw", Compression::None)] {
        let mut stored: Vec<(Bytes, BlockHandle)> = Vec::new();
        let mut out = Vec::new();
        g.bench_function(format!("write_block_{name}"), |b| {
            b.iter(|| {
                out.clear();
                for content in &contents {
                    black_box(write_block(content, compression, 1, out.len() as u64, &mut out));
                }
            })
        });
        for content in &contents {
            let mut one = Vec::new();
            let handle = write_block(content, compression, 1, 0, &mut one);
            stored.push((Bytes::from(one), handle));
        }
        g.bench_function(format!("read_block_{name}"), |b| {
            b.iter(|| stored.iter().map(|(s, h)| read_block(s, *h, 1).unwrap().len()).sum::<usize>())
        });
    }
    g.bench_function("decode_fragments", |b| {
        b.iter(|| {
            let mut fragments = 0;
            for content in &contents {
                let mut pos = 0;
                while pos < content.len() {
                    black_box(decode_fragment(content, &mut pos, 0).unwrap());
                    fragments += 1;
                }
            }
            fragments
        })
    });
    g.finish();
}

criterion_group!(benches, block_codec);
criterion_main!(benches);
