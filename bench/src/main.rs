//! `talus-bench`: db_bench-style workloads on Talus and its peers (fjall; RocksDB with the cargo
//! feature `rocksdb`) in one run, next to the machine's own limits (sequential write + fdatasync,
//! fsync rate, memory copy, zstd and LZ4), as a markdown table on stdout, JSON and PNG charts.
//!
//! # Usage
//!
//! ```text
//! cargo run --release -p talus-bench -- --quick                     # a few minutes: 2^18 keys, 1 repetition
//! cargo run --release -p talus-bench                                # 2^20 keys, 3 repetitions
//! cargo run --release -p talus-bench -- --engines talus,fjall --workloads fillrandom,readrandom --repeat 5
//! cargo run --release -p talus-bench -- --durability batch --keys 20000 --workloads fillrandom,ycsb
//! cargo run --release -p talus-bench --features rocksdb -- --quick  # with RocksDB (compiles it: long)
//! ```
//!
//! Workloads (`--workloads`, comma-separated; default all): `fillseq`, `fillrandom`, `overwrite`,
//! `readrandom`, `readmissing`, `readseq`, `seekrandom`, `deleterange` (and its
//! `deleterange-scan`), `ycsb-a`, `ycsb-b` (or `ycsb`), `batchlog-v1`, `batchlog-v2` (or
//! `batchlog`). Engines (`--engines`): `talus` (both shapes: `talus` a partition per key,
//! `talus-wide` a partition per 10-bit key prefix), `talus-kv`, `talus-wide`, `fjall`, `rocksdb`.
//! What each workload does and counts: [`talus_bench::harness`]; how the engines are configured
//! alike: [`talus_bench::peers`].
//!
//! Each figure is the median of `--repeat` repetitions (min and max beside it); Talus' figures
//! are also given as ratios to each peer's and, where one bounds them, as a fraction of a machine
//! limit. Output: the table on stdout; `bench.json` (a record per workload and engine:
//! `workload`, `engine`, `shape`, `ops_per_sec`, min and max, latency percentiles, the limit,
//! the ratios; plus the machine limits), `bench.md`, `bench-throughput.png` and
//! `bench-latency.png` in `--reports` (default `target/reports/`). Progress on stderr.
//!
//! The binary allocates with mimalloc (as fjall's published benchmarks do), the same allocator
//! for every engine of the run, with freed memory kept in the process
//! ([`talus_bench::allocator`]).

use clap::Parser;
use talus_bench::cli::{run, BenchArgs};
use talus_bench::BoxError;

/// The allocator of every engine in the run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// db_bench-style workloads on Talus and its peers, next to the machine's limits.
#[derive(Debug, Parser)]
#[command(name = "talus-bench")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> Result<(), BoxError> {
    talus_bench::allocator::keep_freed_memory();
    run(&Cli::parse().args)
}
