//! Compaction benchmark: the throughput of one compaction next to the machine's zstd limit for the
//! same work, and the write and space amplification of size-tiered and leveled compaction under a
//! fill + overwrite workload, in one run.
//!
//! Why: a compaction reads and decompresses every input block, merges, and compresses and writes
//! the output; the zstd part is work it cannot avoid. The ratio "compaction ÷ zstd limit" says how
//! much the engine adds on top of it (the goal: compaction at 50% of the limit or better). Write
//! amplification (bytes written to sstables per byte flushed) and space amplification (disk used
//! ÷ live data) are what the strategies trade.
//!
//! Measured, in a fresh directory under `--dir` (default `target/` of the workspace):
//!
//! 1. throughput: `--flushes` sstables of about `--mb` MB of uncompressed data each are built
//!    (16-byte keys, `--value-size`-byte values half random, keys drawn at random from a key space
//!    of half the rows written, so the sstables overlap and the merge drops about half the rows)
//!    with background flush and compaction off; then one [`Engine::compact_sstables`] of all of
//!    them is timed: MB/s of input file bytes and of uncompressed input data, and the CPU time
//!    the process spent meanwhile. The compaction merges on one thread; with
//!    [`EngineOptions::pipelined_compression`] (the default; `--serial` turns it off) a helper
//!    thread decompresses its input blocks ahead and another compresses and writes its output
//!    blocks, so it uses up to three threads and the report says how many. Next to it, on the
//!    same blocks (read raw from the input files before the compaction, and from the output after):
//!    zstd decompression of every input block plus compression of every output block at the
//!    table's level, one reused context each, single-threaded: the limit, in MB/s of input file
//!    bytes (and its time against the compaction's CPU time, the share of the compaction's work
//!    that is zstd). A second limit decompresses every input block and recompresses all of its
//!    content in chunks of the table's block size (the work when no row is dropped);
//! 2. amplification: for size-tiered and for leveled (parameters shrunk so they act at this scale:
//!    `--stcs-min-sstable-mb`, `min_sstable_age` 0; `--lcs-sstable-mb`, fan-out 10), `--keys` keys
//!    are written once (their tokens are random), then overwritten `--overwrites` times at random
//!    keys. The memtable is flushed whenever it holds `--memtable-mb` MiB and
//!    [`Engine::compact_pending`] runs after each flush (or, with `--background`, the background
//!    flusher and compaction threads do both, and the run ends with
//!    [`Engine::wait_for_compactions`]). Reported: user bytes (key + value per write), bytes
//!    flushed and written by compactions ([`Engine::compaction_status`] totals), write
//!    amplification over the bytes flushed and over the user bytes, the sstable bytes on disk at
//!    the end and their peak (a thread lists the sstable directory every 10 ms, so the peak
//!    includes inputs and outputs of running compactions side by side), the live data size (after
//!    a final major compaction, [`Engine::compact`]), space amplification, the sstables and their
//!    levels at the end, and the time taken.
//!
//! As in the sstable benchmark, each measurement records from `/proc/stat` how many cores other
//! processes kept busy meanwhile, and ‡ marks the measurements they disturbed.
//!
//! Output: progress on stderr, markdown tables on stdout, and everything as JSON at `--json`
//! (default `target/reports/bench_compaction.json`). `--quick` shrinks every size (about 20 s).
//!
//! Run: `cargo run --release -p talus-bench --bin compaction -- [--quick] [--flushes N] [--mb MB] [--keys N] [--overwrites N] [--background]`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde::Serialize;
use talus::commitlog::{CommitlogOptions, Durability};
use talus::format::schema::{CompactionStrategy, Compression};
use talus::format::sstable::reader::{ReadCounters, SstableReader};
use talus::format::{GcTime, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::fs::RealFs;
use talus::sstable_set::{parse_sstable_file_name, sstable_file_name, SSTABLE_DIR};
use talus::sstable_source::open_sstable_source;
use talus::{CompactionOptions, CompactionReport, CompactionTotals, Engine, EngineOptions};
use talus_bench::{
    contention, cpu_ticks, key, kv_schema_with, load_average, mark, other_cores, own_cpu_seconds, run_contention_note, target_dir,
    thousands, timed_passes, value, warning, BoxError, SplitMix, CONTENTION_CORES, MB, ZSTD,
};

/// Approximate uncompressed data bytes of one row besides its value (lengths, timestamp; the key
/// lives in the partition index), measured: 108 B per row of 100-byte values. It sizes the flushes
/// of the throughput measurement; the report gives the exact sizes.
const ROW_OVERHEAD: usize = 8;
/// Mutations per `apply_batch`.
const BATCH: usize = 100;
/// How often the space sampler lists the sstable directory.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The goal: compaction at this fraction of the zstd limit or better.
const GOAL: f64 = 0.5;

/// Compaction throughput against the zstd limit, and write and space amplification of STCS and LCS.
#[derive(Debug, Parser)]
#[command(name = "compaction")]
struct Args {
    /// Smaller sizes everywhere (about 20 s); explicit size options still win.
    #[arg(long)]
    quick: bool,
    /// SSTables built and compacted together in the throughput measurement [default: 8; --quick: 4].
    #[arg(long)]
    flushes: Option<u64>,
    /// Uncompressed data per sstable of the throughput measurement, MB (approximate) [default: 12;
    /// --quick: 3].
    #[arg(long)]
    mb: Option<f64>,
    /// Value size of each row, bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Keys of the amplification workload [default: 300000; --quick: 50000].
    #[arg(long)]
    keys: Option<u64>,
    /// Overwrite passes of the amplification workload, `--keys` random writes each [default: 2;
    /// --quick: 1].
    #[arg(long)]
    overwrites: Option<u64>,
    /// Memtable size (memory) at which the amplification workload flushes, MiB [default: 4;
    /// --quick: 2].
    #[arg(long)]
    memtable_mb: Option<u64>,
    /// `sstable_size_in_mb` of the leveled run [default: 2; --quick: 1].
    #[arg(long)]
    lcs_sstable_mb: Option<u64>,
    /// `min_sstable_size` of the size-tiered run, MiB.
    #[arg(long, default_value_t = 1)]
    stcs_min_sstable_mb: u64,
    /// Flush and compact with the background threads instead of flushing at the memtable limit and
    /// calling `compact_pending` after each flush on the writing thread.
    #[arg(long)]
    background: bool,
    /// Flush and compact on one thread each: `EngineOptions::pipelined_compression` off.
    #[arg(long)]
    serial: bool,
    /// Minimum seconds of each zstd limit measurement (repeated passes) [default: 1; --quick: 0.3].
    #[arg(long)]
    codec_seconds: Option<f64>,
    /// Directory to measure in; the run gets a fresh temporary directory inside it
    /// [default: target/ of the workspace].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path of the JSON report [default: target/reports/bench_compaction.json in the workspace].
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The sizes of the run, after `--quick` and the explicit options.
#[derive(Debug, Clone, Serialize)]
struct Sizes {
    /// SSTables compacted in the throughput measurement.
    flushes: u64,
    /// Target uncompressed MB per sstable there.
    mb: f64,
    /// Value size, bytes.
    value_size: usize,
    /// Keys of the amplification workload.
    keys: u64,
    /// Overwrite passes.
    overwrites: u64,
    /// Memtable flush threshold, MiB.
    memtable_mb: u64,
    /// LCS `sstable_size_in_mb`.
    lcs_sstable_mb: u64,
    /// STCS `min_sstable_size`, MiB.
    stcs_min_sstable_mb: u64,
    /// Background flush and compaction in the amplification workload.
    background: bool,
    /// `EngineOptions::pipelined_compression` (off with `--serial`).
    pipelined_compression: bool,
    /// Minimum seconds per zstd measurement.
    codec_seconds: f64,
}

impl Sizes {
    fn of(args: &Args) -> Sizes {
        let q = args.quick;
        Sizes {
            flushes: args.flushes.unwrap_or(if q { 4 } else { 8 }),
            mb: args.mb.unwrap_or(if q { 3.0 } else { 12.0 }),
            value_size: args.value_size,
            keys: args.keys.unwrap_or(if q { 50_000 } else { 300_000 }),
            overwrites: args.overwrites.unwrap_or(if q { 1 } else { 2 }),
            memtable_mb: args.memtable_mb.unwrap_or(if q { 2 } else { 4 }),
            lcs_sstable_mb: args.lcs_sstable_mb.unwrap_or(if q { 1 } else { 2 }),
            stcs_min_sstable_mb: args.stcs_min_sstable_mb,
            background: args.background,
            pipelined_compression: !args.serial,
            codec_seconds: args.codec_seconds.unwrap_or(if q { 0.3 } else { 1.0 }),
        }
    }
}

/// A progress line on stderr.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[compaction] {}", format_args!($($arg)*)) };
}

/// The key-value table with `compaction` as its strategy.
fn schema_with(compaction: CompactionStrategy) -> SchemaRef {
    let mut schema = (*kv_schema_with(ZSTD)).clone();
    schema.options.compaction = compaction;
    Arc::new(schema)
}

/// Opens an engine in `dir`: `Periodic` durability, the given flush and compaction settings.
fn open_engine(dir: &Path, sizes: &Sizes, background: bool, memtable_limit: usize) -> Result<Engine, BoxError> {
    let commitlog = CommitlogOptions { durability: Durability::Periodic(Duration::from_millis(100)), ..CommitlogOptions::default() };
    let defaults = EngineOptions::default();
    let options = EngineOptions {
        background_flush: background,
        background_compaction: background,
        memtable_table_limit: memtable_limit,
        memtable_total_limit: defaults.memtable_total_limit.max(memtable_limit),
        pipelined_compression: sizes.pipelined_compression,
        commitlog,
        ..defaults
    };
    Ok(Engine::open(dir, options)?)
}

/// Writes key-value rows in batches, with increasing timestamps (an overwrite always wins).
struct Writer<'a> {
    engine: &'a Engine,
    schema: &'a Schema,
    value_size: usize,
    batch: Vec<Mutation>,
    /// Timestamp of the last write.
    ts: i64,
    /// Writes so far.
    writes: u64,
    /// Key + value bytes so far.
    user_bytes: u64,
    /// Time spent in `apply_batch`.
    apply: Duration,
}

impl<'a> Writer<'a> {
    fn new(engine: &'a Engine, schema: &'a Schema, value_size: usize) -> Writer<'a> {
        Writer { engine, schema, value_size, batch: Vec::with_capacity(BATCH), ts: 0, writes: 0, user_bytes: 0, apply: Duration::ZERO }
    }

    /// Queues a write of key `i`; returns true when it applied the batch.
    fn put(&mut self, i: u64) -> Result<bool, BoxError> {
        self.ts += 1;
        let v = value(self.ts as u64, self.value_size);
        let k = key(i);
        self.user_bytes += (k.len() + v.len()) as u64;
        self.writes += 1;
        let mutation = Mutation::builder(self.schema, &[Value::Blob(k.into())])
            .now(GcTime(1))
            .set(&[], "v", Value::Blob(v.into()), Timestamp(self.ts))
            .build()?;
        self.batch.push(mutation);
        if self.batch.len() < BATCH {
            return Ok(false);
        }
        self.apply()?;
        Ok(true)
    }

    /// Applies the queued writes.
    fn apply(&mut self) -> Result<(), BoxError> {
        if !self.batch.is_empty() {
            let start = Instant::now();
            self.engine.apply_batch(&self.batch)?;
            self.apply += start.elapsed();
            self.batch.clear();
        }
        Ok(())
    }
}

/// The path of sstable `generation` in the engine directory `dir`.
fn sstable_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(SSTABLE_DIR).join(sstable_file_name(generation))
}

/// Opens sstable `generation` of `dir` with the format crate's reader (no block cache).
fn open_reader(dir: &Path, generation: u64) -> Result<SstableReader, BoxError> {
    let source = open_sstable_source(&RealFs, &sstable_path(dir, generation))?;
    Ok(SstableReader::open(source, Some(generation), None)?)
}

/// Bytes and count of the sstable files in the sstable directory `sst_dir`.
fn sstable_space(sst_dir: &Path) -> std::io::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for entry in std::fs::read_dir(sst_dir)? {
        let entry = entry?;
        if entry.file_name().to_str().and_then(parse_sstable_file_name).is_some() {
            // A file removed between the listing and the stat is simply gone.
            if let Ok(meta) = entry.metadata() {
                bytes += meta.len();
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

/// The input sstables' data blocks as stored, read raw before the compaction.
struct InputBlocks {
    /// Stored bytes of each block (without its trailer).
    stored: Vec<Bytes>,
    /// Uncompressed length of each block.
    content_len: Vec<usize>,
    /// Whether each block is zstd-compressed (else stored raw).
    compressed: Vec<bool>,
}

impl InputBlocks {
    fn content_bytes(&self) -> u64 {
        self.content_len.iter().map(|&l| l as u64).sum()
    }

    fn stored_bytes(&self) -> u64 {
        self.stored.iter().map(|s| s.len() as u64).sum()
    }
}

/// Reads every data block of the sstables `generations` of `dir`: stored bytes, and the verified
/// content's length (the content itself is dropped: the limit decompresses it again).
fn load_input_blocks(dir: &Path, generations: &[u64]) -> Result<InputBlocks, BoxError> {
    let mut blocks = InputBlocks { stored: Vec::new(), content_len: Vec::new(), compressed: Vec::new() };
    let counters = ReadCounters::default();
    for &generation in generations {
        let source = open_sstable_source(&RealFs, &sstable_path(dir, generation))?;
        let reader = SstableReader::open(source.clone(), Some(generation), None)?;
        for handle in reader.block_handles()? {
            let stored = source.read_at(handle.offset, handle.len as usize)?;
            let content = reader.block(handle, &counters)?;
            blocks.compressed.push(stored.len() < content.len());
            blocks.content_len.push(content.len());
            blocks.stored.push(stored);
        }
    }
    Ok(blocks)
}

/// The verified content of every data block of the sstables `generations` of `dir`.
fn load_contents(dir: &Path, generations: &[u64]) -> Result<Vec<Bytes>, BoxError> {
    let counters = ReadCounters::default();
    let mut contents = Vec::new();
    for &generation in generations {
        let reader = open_reader(dir, generation)?;
        for handle in reader.block_handles()? {
            contents.push(reader.block(handle, &counters)?);
        }
    }
    Ok(contents)
}

/// The machine's zstd work for one compaction, single-threaded with reused contexts.
#[derive(Debug, Clone, Serialize)]
struct ZstdLimit {
    /// Compression level (the table's).
    level: i32,
    /// Chunk size of the recompression, bytes (the table's block size).
    block_size: usize,
    /// Input data blocks.
    input_blocks: usize,
    /// Of which stored compressed.
    input_compressed_blocks: usize,
    /// Their stored bytes.
    input_stored_bytes: u64,
    /// Their uncompressed bytes.
    input_content_bytes: u64,
    /// Output data blocks.
    output_blocks: usize,
    /// Their uncompressed bytes.
    output_content_bytes: u64,
    /// Decompression of every input block: MB/s of uncompressed bytes.
    decompress_mb_per_s: f64,
    /// Seconds of one decompression pass.
    decompress_seconds: f64,
    /// Compression of every output block: MB/s of uncompressed bytes.
    compress_output_mb_per_s: f64,
    /// Seconds of one compression pass.
    compress_output_seconds: f64,
    /// Decompression of every input block and compression of its content in `block_size` chunks:
    /// MB/s of uncompressed input bytes.
    recompress_input_mb_per_s: f64,
    /// Seconds of one such pass.
    recompress_input_seconds: f64,
    /// Cores other processes kept busy during the measurement.
    other_cores: Option<f64>,
}

/// Measures the zstd work of the compaction of `inputs` into `outputs`.
fn zstd_limit(inputs: &InputBlocks, outputs: &[Bytes], level: i32, block_size: usize, min: Duration) -> Result<ZstdLimit, BoxError> {
    let cpu = cpu_ticks();
    let largest = inputs.content_len.iter().copied().chain(outputs.iter().map(Bytes::len)).max().unwrap_or(0).max(block_size);
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    let mut content = vec![0u8; largest];
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(largest)];
    let input_content = inputs.content_bytes();
    let blocks = || inputs.stored.iter().zip(&inputs.content_len).zip(&inputs.compressed);

    let (decompress, decompress_seconds) = timed_passes(min, || {
        for ((stored, &len), &compressed) in blocks() {
            if compressed {
                black_box(decompressor.decompress_to_buffer(stored.as_ref(), &mut content[..len])?);
            }
        }
        Ok(input_content)
    })?;
    let output_content: u64 = outputs.iter().map(|c| c.len() as u64).sum();
    let (compress_output, compress_output_seconds) = timed_passes(min, || {
        for c in outputs {
            black_box(compressor.compress_to_buffer(c.as_ref(), out.as_mut_slice())?);
        }
        Ok(output_content)
    })?;
    let mut staging: Vec<u8> = Vec::with_capacity(2 * largest);
    let (recompress, recompress_seconds) = timed_passes(min, || {
        staging.clear();
        for ((stored, &len), &compressed) in blocks() {
            if compressed {
                decompressor.decompress_to_buffer(stored.as_ref(), &mut content[..len])?;
                staging.extend_from_slice(&content[..len]);
            } else {
                staging.extend_from_slice(stored);
            }
            let mut at = 0;
            while staging.len() - at >= block_size {
                black_box(compressor.compress_to_buffer(&staging[at..at + block_size], out.as_mut_slice())?);
                at += block_size;
            }
            staging.drain(..at);
        }
        if !staging.is_empty() {
            black_box(compressor.compress_to_buffer(staging.as_slice(), out.as_mut_slice())?);
        }
        Ok(input_content)
    })?;
    let limit = ZstdLimit {
        level,
        block_size,
        input_blocks: inputs.stored.len(),
        input_compressed_blocks: inputs.compressed.iter().filter(|&&c| c).count(),
        input_stored_bytes: inputs.stored_bytes(),
        input_content_bytes: input_content,
        output_blocks: outputs.len(),
        output_content_bytes: output_content,
        decompress_mb_per_s: decompress,
        decompress_seconds,
        compress_output_mb_per_s: compress_output,
        compress_output_seconds,
        recompress_input_mb_per_s: recompress,
        recompress_input_seconds: recompress_seconds,
        other_cores: other_cores(cpu),
    };
    progress!(
        "machine: zstd -{level}: decompress {} input blocks {:.0} MB/s ({:.2} s), compress {} output blocks {:.0} MB/s ({:.2} s), \
         decompress + recompress the input in {block_size} B chunks {:.0} MB/s ({:.2} s){}",
        limit.input_blocks,
        limit.decompress_mb_per_s,
        limit.decompress_seconds,
        limit.output_blocks,
        limit.compress_output_mb_per_s,
        limit.compress_output_seconds,
        limit.recompress_input_mb_per_s,
        limit.recompress_input_seconds,
        contention(limit.other_cores)
    );
    Ok(limit)
}

/// The sstables compacted in the throughput measurement.
#[derive(Debug, Clone, Serialize)]
struct Build {
    /// SSTables flushed.
    sstables: usize,
    /// Rows written into each.
    rows_per_flush: u64,
    /// Keys the rows were drawn from (uniformly).
    key_space: u64,
    /// Distinct keys written: the rows a compaction of everything must keep.
    distinct_keys: u64,
    /// Rows written in all.
    rows: u64,
    /// Seconds of writing.
    write_seconds: f64,
    /// Seconds of flushing.
    flush_seconds: f64,
    /// File bytes flushed.
    flushed_bytes: u64,
    /// Uncompressed data bytes of the sstables.
    data_bytes: u64,
}

/// The compaction of the throughput measurement.
#[derive(Debug, Clone, Serialize)]
struct Compaction {
    /// Input sstables.
    inputs: usize,
    /// Output sstables.
    outputs: usize,
    /// Input file bytes.
    bytes_in: u64,
    /// Input uncompressed data bytes.
    data_in: u64,
    /// Output file bytes.
    bytes_out: u64,
    /// Output uncompressed data bytes.
    data_out: u64,
    /// Rows read.
    rows_in: u64,
    /// Rows written.
    rows_out: u64,
    /// Partitions read.
    partitions: u64,
    /// The engine's `elapsed`.
    seconds: f64,
    /// Wall time of the `compact_sstables` call.
    wall_seconds: f64,
    /// Input file bytes per second, MB/s.
    file_mb_per_s: f64,
    /// Input uncompressed data per second, MB/s.
    data_mb_per_s: f64,
    /// Output file bytes per second, MB/s.
    output_file_mb_per_s: f64,
    /// Threads the compaction ran on: the merging thread, and with pipelined compression a
    /// read-ahead thread and a compression thread per output file (one at a time).
    threads: u32,
    /// CPU seconds the process spent during the compaction (all threads; 10 ms resolution).
    cpu_seconds: Option<f64>,
    /// Cores other processes kept busy during the compaction.
    other_cores: Option<f64>,
}

impl Compaction {
    fn of(report: &CompactionReport, wall: Duration, pipelined: bool, cpu_seconds: Option<f64>, other_cores: Option<f64>) -> Compaction {
        let seconds = report.elapsed.as_secs_f64();
        Compaction {
            inputs: report.inputs.len(),
            outputs: report.outputs.len(),
            bytes_in: report.bytes_in,
            data_in: report.data_in,
            bytes_out: report.bytes_out,
            data_out: report.data_out,
            rows_in: report.stats.rows,
            rows_out: report.rows_out,
            partitions: report.stats.partitions,
            seconds,
            wall_seconds: wall.as_secs_f64(),
            file_mb_per_s: report.bytes_in as f64 / MB / seconds,
            data_mb_per_s: report.data_in as f64 / MB / seconds,
            output_file_mb_per_s: report.bytes_out as f64 / MB / seconds,
            threads: if pipelined { 3 } else { 1 },
            cpu_seconds,
            other_cores,
        }
    }
}

/// Part 1: compaction throughput against the zstd limit.
#[derive(Debug, Clone, Serialize)]
struct Throughput {
    /// The sstables.
    build: Build,
    /// The compaction.
    compaction: Compaction,
    /// The machine's zstd work on the same blocks.
    limit: ZstdLimit,
    /// Input file MB/s if the compaction only decompressed its input and compressed its output.
    limit_file_mb_per_s: f64,
    /// `compaction.file_mb_per_s` ÷ `limit_file_mb_per_s`.
    fraction_of_limit: f64,
    /// Input file MB/s if the compaction only decompressed its input and recompressed all of it.
    recompress_limit_file_mb_per_s: f64,
    /// `compaction.file_mb_per_s` ÷ `recompress_limit_file_mb_per_s`.
    fraction_of_recompress_limit: f64,
    /// The limit's seconds (decompression + compression) ÷ the compaction's CPU seconds: the
    /// share of the compaction's CPU time that zstd's work would take.
    zstd_share_of_cpu: Option<f64>,
    /// Whether `fraction_of_limit` reaches the goal.
    goal_met: bool,
}

/// Builds the sstables, compacts them, and measures the zstd limit on the same blocks.
fn throughput(parent: &Path, sizes: &Sizes, warnings: &mut Vec<String>) -> Result<Throughput, BoxError> {
    let dir = parent.join("throughput");
    let schema = kv_schema_with(ZSTD);
    let table = schema.full_name();
    let level = match schema.options.compression {
        Compression::Zstd { level } => level,
        Compression::None | Compression::Lz4 => 0,
    };
    let engine = open_engine(&dir, sizes, false, EngineOptions::default().memtable_table_limit)?;
    engine.create_table(schema.clone())?;
    let rows_per_flush = ((sizes.mb * MB) / (sizes.value_size + ROW_OVERHEAD) as f64).ceil().max(1.0) as u64;
    let key_space = (rows_per_flush * sizes.flushes / 2).max(1);
    progress!(
        "throughput: building {} sstables of {} rows each (about {} MB of data), keys drawn from {} keys",
        sizes.flushes,
        rows_per_flush,
        sizes.mb,
        key_space
    );
    let mut seen = vec![false; key_space as usize];
    let mut rng = SplitMix(0xC0FFEE);
    let mut writer = Writer::new(&engine, &schema, sizes.value_size);
    let (mut flush_seconds, mut flushed_bytes) = (0.0, 0);
    for f in 0..sizes.flushes {
        for _ in 0..rows_per_flush {
            let k = rng.below(key_space);
            seen[k as usize] = true;
            writer.put(k)?;
        }
        writer.apply()?;
        let start = Instant::now();
        let report = engine.flush(&table)?;
        let seconds = start.elapsed().as_secs_f64();
        flush_seconds += seconds;
        flushed_bytes += report.bytes;
        progress!("flush {}/{}: {:.1} MB of sstable in {seconds:.2} s", f + 1, sizes.flushes, report.bytes as f64 / MB);
    }
    let generations = engine.sstables(&table)?;
    let inputs = load_input_blocks(&dir, &generations)?;
    let data_bytes = inputs.content_bytes();
    let build = Build {
        sstables: generations.len(),
        rows_per_flush,
        key_space,
        distinct_keys: seen.iter().filter(|&&s| s).count() as u64,
        rows: writer.writes,
        write_seconds: writer.apply.as_secs_f64(),
        flush_seconds,
        flushed_bytes,
        data_bytes,
    };
    drop(seen);
    progress!(
        "built {} sstables: {:.1} MB of files, {:.1} MB of data ({:.0} B per row), flushed at {:.0} MB/s of data",
        build.sstables,
        flushed_bytes as f64 / MB,
        data_bytes as f64 / MB,
        data_bytes as f64 / build.rows.max(1) as f64,
        data_bytes as f64 / MB / flush_seconds
    );

    progress!("compacting {} sstables into one", generations.len());
    let (cpu, start) = (cpu_ticks(), Instant::now());
    let report = engine.compact_sstables(&table, &generations, CompactionOptions::default())?;
    let wall = start.elapsed();
    let compaction = Compaction::of(&report, wall, sizes.pipelined_compression, own_cpu_seconds(cpu), other_cores(cpu));
    progress!(
        "compacted {:.1} MB ({:.1} MB of data, {} rows) into {:.1} MB ({:.1} MB of data, {} rows) in {:.2} s on {} thread{} \
         ({} CPU s): {:.1} MB/s of input file bytes, {:.1} MB/s of input data{}",
        compaction.bytes_in as f64 / MB,
        compaction.data_in as f64 / MB,
        compaction.rows_in,
        compaction.bytes_out as f64 / MB,
        compaction.data_out as f64 / MB,
        compaction.rows_out,
        compaction.seconds,
        compaction.threads,
        if compaction.threads == 1 { "" } else { "s" },
        compaction.cpu_seconds.map_or_else(|| "?".to_string(), |c| format!("{c:.2}")),
        compaction.file_mb_per_s,
        compaction.data_mb_per_s,
        contention(compaction.other_cores)
    );
    if compaction.rows_out != build.distinct_keys {
        warning!(
            warnings,
            "the compaction wrote {} rows, expected {} (the distinct keys written)",
            compaction.rows_out,
            build.distinct_keys
        );
    }
    if compaction.data_in != data_bytes {
        warning!(warnings, "the compaction read {} bytes of data, the input blocks hold {data_bytes}", compaction.data_in);
    }
    let outputs = load_contents(&dir, &report.outputs)?;
    drop(engine);
    let min = Duration::try_from_secs_f64(sizes.codec_seconds).map_err(|e| format!("--codec-seconds {}: {e}", sizes.codec_seconds))?;
    let limit = zstd_limit(&inputs, &outputs, level, schema.options.block_size, min)?;
    let limit_file_mb_per_s = compaction.bytes_in as f64 / MB / (limit.decompress_seconds + limit.compress_output_seconds);
    let recompress_limit_file_mb_per_s = compaction.bytes_in as f64 / MB / limit.recompress_input_seconds;
    let fraction_of_limit = compaction.file_mb_per_s / limit_file_mb_per_s;
    progress!(
        "compaction {:.1} MB/s of input file bytes vs the zstd limit {:.1} MB/s: {:.0}% (goal {:.0}%)",
        compaction.file_mb_per_s,
        limit_file_mb_per_s,
        fraction_of_limit * 100.0,
        GOAL * 100.0
    );
    Ok(Throughput {
        build,
        fraction_of_recompress_limit: compaction.file_mb_per_s / recompress_limit_file_mb_per_s,
        zstd_share_of_cpu: compaction
            .cpu_seconds
            .filter(|&c| c > 0.0)
            .map(|c| (limit.decompress_seconds + limit.compress_output_seconds) / c),
        goal_met: fraction_of_limit >= GOAL,
        compaction,
        limit,
        limit_file_mb_per_s,
        fraction_of_limit,
        recompress_limit_file_mb_per_s,
    })
}

/// Part 2: one strategy under the fill + overwrite workload.
#[derive(Debug, Clone, Serialize)]
struct Amplification {
    /// `size-tiered` or `leveled`.
    strategy: &'static str,
    /// Its parameters.
    parameters: String,
    /// The strategy as the schema holds it.
    #[serde(skip)]
    compaction: Option<CompactionStrategy>,
    /// `inline` (flush at the memtable limit, `compact_pending` after each flush) or `background`.
    mode: &'static str,
    /// Writes (fill + overwrites).
    writes: u64,
    /// Key + value bytes written.
    user_bytes: u64,
    /// Flushes (inline mode only).
    flushes: Option<u64>,
    /// Compaction totals before the final major compaction.
    totals: Totals,
    /// (flushed + compacted) ÷ flushed file bytes: the engine's `write_amplification()`.
    write_amplification: f64,
    /// (flushed + compacted) file bytes ÷ user bytes.
    write_amplification_vs_user: f64,
    /// SSTable file bytes at the end of the workload.
    space_bytes: u64,
    /// Peak sstable file bytes during the workload (sampled every 10 ms).
    peak_space_bytes: u64,
    /// Peak sstable files during the workload.
    peak_sstables: u64,
    /// SSTable file bytes after a major compaction: the live data.
    live_bytes: u64,
    /// `space_bytes` ÷ `live_bytes`.
    space_amplification: f64,
    /// `peak_space_bytes` ÷ `live_bytes`.
    peak_space_amplification: f64,
    /// SSTables at the end of the workload.
    sstables: usize,
    /// SSTables per level at the end of the workload, `(level, count)`.
    levels: Vec<(u32, usize)>,
    /// Seconds of the workload (writes, flushes, compactions).
    seconds: f64,
    /// Of which in `apply_batch`.
    write_seconds: f64,
    /// Of which in flushes (inline mode only).
    flush_seconds: Option<f64>,
    /// Of which in `compact_pending` (inline mode only).
    compaction_seconds: Option<f64>,
    /// Seconds of the final major compaction.
    major_seconds: f64,
    /// Cores other processes kept busy during the workload.
    other_cores: Option<f64>,
}

/// The compaction totals worth keeping.
#[derive(Debug, Clone, Copy, Serialize)]
struct Totals {
    /// Compactions.
    jobs: u64,
    /// File bytes flushed.
    bytes_flushed: u64,
    /// File bytes compactions read.
    bytes_in: u64,
    /// File bytes compactions wrote.
    bytes_out: u64,
}

impl From<&CompactionTotals> for Totals {
    fn from(t: &CompactionTotals) -> Totals {
        Totals { jobs: t.jobs, bytes_flushed: t.bytes_flushed, bytes_in: t.bytes_in, bytes_out: t.bytes_out }
    }
}

/// Tracks the peak of the sstable directory's size while it lives.
struct SpaceSampler {
    stop: Arc<AtomicBool>,
    peak_bytes: Arc<AtomicU64>,
    peak_files: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpaceSampler {
    fn start(sst_dir: PathBuf) -> Result<SpaceSampler, BoxError> {
        let (stop, peak_bytes, peak_files) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, b, f) = (stop.clone(), peak_bytes.clone(), peak_files.clone());
        let thread = std::thread::Builder::new().name("space-sampler".into()).spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok((bytes, files)) = sstable_space(&sst_dir) {
                    b.fetch_max(bytes, Ordering::Relaxed);
                    f.fetch_max(files, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })?;
        Ok(SpaceSampler { stop, peak_bytes, peak_files, thread: Some(thread) })
    }

    /// Stops sampling; returns the peak bytes and files.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The sampler cannot panic in a way worth reporting: its peaks are what it got to.
            let _ = thread.join();
        }
        (self.peak_bytes.load(Ordering::Relaxed), self.peak_files.load(Ordering::Relaxed))
    }
}

impl Drop for SpaceSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs the fill + overwrite workload on a table compacted by `run.compaction`.
fn amplification(parent: &Path, sizes: &Sizes, mut run: Amplification) -> Result<Amplification, BoxError> {
    let dir = parent.join(run.strategy);
    let schema = schema_with(run.compaction.clone().unwrap_or_else(CompactionStrategy::size_tiered));
    let table = schema.full_name();
    let memtable_limit = usize::try_from(sizes.memtable_mb << 20)?;
    let engine = open_engine(&dir, sizes, sizes.background, memtable_limit)?;
    engine.create_table(schema.clone())?;
    let sst_dir = dir.join(SSTABLE_DIR);
    progress!(
        "amplification, {} ({}), {}: {} keys, then {} overwrite pass{} of random keys",
        run.strategy,
        run.parameters,
        run.mode,
        sizes.keys,
        sizes.overwrites,
        if sizes.overwrites == 1 { "" } else { "es" }
    );
    let sampler = SpaceSampler::start(sst_dir.clone())?;
    let mut rng = SplitMix(0xA11CE);
    let mut writer = Writer::new(&engine, &schema, sizes.value_size);
    let (mut flushes, mut flush_time, mut compaction_time) = (0u64, Duration::ZERO, Duration::ZERO);
    let total_writes = sizes.keys * (1 + sizes.overwrites);
    let (cpu, start) = (cpu_ticks(), Instant::now());
    let mut last_progress = Instant::now();
    let mut flush_and_compact = |engine: &Engine| -> Result<(), BoxError> {
        let t = Instant::now();
        engine.flush(&table)?;
        flush_time += t.elapsed();
        flushes += 1;
        let t = Instant::now();
        engine.compact_pending(&table)?;
        compaction_time += t.elapsed();
        Ok(())
    };
    for pass in 0..=sizes.overwrites {
        for n in 0..sizes.keys {
            let i = if pass == 0 { n } else { rng.below(sizes.keys) };
            let applied = writer.put(i)?;
            if applied && !sizes.background && engine.memtable_stats(&table)?.memory_bytes >= memtable_limit {
                flush_and_compact(&engine)?;
            }
            if last_progress.elapsed() > Duration::from_secs(5) {
                let totals = engine.compaction_status().totals;
                progress!(
                    "  {}/{} writes, {:.0} MB flushed, {:.0} MB compacted in {} jobs, {:.0} s",
                    writer.writes,
                    total_writes,
                    totals.bytes_flushed as f64 / MB,
                    totals.bytes_out as f64 / MB,
                    totals.jobs,
                    start.elapsed().as_secs_f64()
                );
                last_progress = Instant::now();
            }
        }
    }
    writer.apply()?;
    let (writes, user_bytes, write_seconds) = (writer.writes, writer.user_bytes, writer.apply.as_secs_f64());
    drop(writer);
    if sizes.background {
        engine.flush(&table)?;
        engine.wait_for_compactions();
    } else {
        flush_and_compact(&engine)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let others = other_cores(cpu);
    let (peak_space_bytes, peak_sstables) = sampler.finish();
    let status = engine.compaction_status();
    if let Some(error) = &status.last_error {
        return Err(format!("background compaction failed: {error}").into());
    }
    if let Some(error) = engine.background_flush_error() {
        return Err(format!("background flush failed: {error}").into());
    }
    let totals = status.totals;
    let (space_bytes, _) = sstable_space(&sst_dir)?;
    let generations = engine.sstables(&table)?;
    let mut levels: Vec<(u32, usize)> = Vec::new();
    for &g in &generations {
        let level = open_reader(&dir, g)?.statistics().level;
        match levels.iter_mut().find(|(l, _)| *l == level) {
            Some((_, n)) => *n += 1,
            None => levels.push((level, 1)),
        }
    }
    levels.sort_unstable();
    progress!("major compaction");
    let t = Instant::now();
    engine.compact(&table)?;
    let major_seconds = t.elapsed().as_secs_f64();
    let (live_bytes, _) = sstable_space(&sst_dir)?;
    drop(engine);

    let written = (totals.bytes_flushed + totals.bytes_out) as f64;
    run.writes = writes;
    run.user_bytes = user_bytes;
    run.flushes = (!sizes.background).then_some(flushes);
    run.totals = Totals::from(&totals);
    run.write_amplification = totals.write_amplification();
    run.write_amplification_vs_user = written / user_bytes.max(1) as f64;
    run.space_bytes = space_bytes;
    run.peak_space_bytes = peak_space_bytes.max(space_bytes);
    run.peak_sstables = peak_sstables;
    run.live_bytes = live_bytes;
    run.space_amplification = space_bytes as f64 / live_bytes.max(1) as f64;
    run.peak_space_amplification = run.peak_space_bytes as f64 / live_bytes.max(1) as f64;
    run.sstables = generations.len();
    run.levels = levels;
    run.seconds = seconds;
    run.write_seconds = write_seconds;
    run.flush_seconds = (!sizes.background).then_some(flush_time.as_secs_f64());
    run.compaction_seconds = (!sizes.background).then_some(compaction_time.as_secs_f64());
    run.major_seconds = major_seconds;
    run.other_cores = others;
    progress!(
        "{}: {:.0} MB user, {:.0} MB flushed, {:.0} MB compacted ({} jobs): write amplification {:.2} (÷ flushed), {:.2} (÷ user); \
         {:.1} MB on disk (peak {:.1}), {:.1} MB live: space amplification {:.2} (peak {:.2}); {} sstables; {seconds:.1} s{}",
        run.strategy,
        run.user_bytes as f64 / MB,
        totals.bytes_flushed as f64 / MB,
        totals.bytes_out as f64 / MB,
        totals.jobs,
        run.write_amplification,
        run.write_amplification_vs_user,
        space_bytes as f64 / MB,
        run.peak_space_bytes as f64 / MB,
        live_bytes as f64 / MB,
        run.space_amplification,
        run.peak_space_amplification,
        run.sstables,
        contention(others)
    );
    Ok(run)
}

/// The two strategies, with parameters shrunk to the benchmark's scale.
fn strategies(sizes: &Sizes) -> Vec<Amplification> {
    let stcs = CompactionStrategy::SizeTiered {
        bucket_low: 0.5,
        bucket_high: 1.5,
        min_sstable_size: sizes.stcs_min_sstable_mb << 20,
        min_sstable_age: 0,
    };
    let lcs = CompactionStrategy::Leveled { sstable_size_in_mb: sizes.lcs_sstable_mb, fanout: 10 };
    let common = talus::format::schema::CompactionCommon::default();
    let thresholds = format!("min_threshold {}, max_threshold {}", common.min_threshold, common.max_threshold);
    let blank = |strategy: &'static str, parameters: String, compaction: CompactionStrategy| Amplification {
        strategy,
        parameters,
        compaction: Some(compaction),
        mode: if sizes.background { "background" } else { "inline" },
        writes: 0,
        user_bytes: 0,
        flushes: None,
        totals: Totals { jobs: 0, bytes_flushed: 0, bytes_in: 0, bytes_out: 0 },
        write_amplification: f64::NAN,
        write_amplification_vs_user: f64::NAN,
        space_bytes: 0,
        peak_space_bytes: 0,
        peak_sstables: 0,
        live_bytes: 0,
        space_amplification: f64::NAN,
        peak_space_amplification: f64::NAN,
        sstables: 0,
        levels: Vec::new(),
        seconds: f64::NAN,
        write_seconds: f64::NAN,
        flush_seconds: None,
        compaction_seconds: None,
        major_seconds: f64::NAN,
        other_cores: None,
    };
    vec![
        blank(
            "size-tiered",
            format!("bucket_low 0.5, bucket_high 1.5, min_sstable_size {} MiB, min_sstable_age 0, {thresholds}", sizes.stcs_min_sstable_mb),
            stcs,
        ),
        blank("leveled", format!("sstable_size_in_mb {}, fanout 10, {thresholds}", sizes.lcs_sstable_mb), lcs),
    ]
}

/// Machine facts of the run.
#[derive(Debug, Clone, Serialize)]
struct Machine {
    /// Cores available to the process.
    cores: usize,
    /// The 1-minute load average when the run started.
    load_average_at_start: Option<f64>,
    /// Cores other processes kept busy, on average over the whole run.
    other_cores: Option<f64>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    /// The benchmark's name.
    benchmark: &'static str,
    /// The sizes of the run.
    sizes: Sizes,
    /// Directory the measurements ran in.
    dir: String,
    /// The machine.
    machine: Machine,
    /// Part 1.
    throughput: Throughput,
    /// Part 2, one entry per strategy.
    amplification: Vec<Amplification>,
    /// Seconds of the whole run.
    seconds: f64,
    /// WARNING lines printed.
    warnings: Vec<String>,
}

/// MB with one decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MB)
}

/// The markdown tables of the report.
fn markdown(r: &Report) -> String {
    let t = &r.throughput;
    let (b, c, l) = (&t.build, &t.compaction, &t.limit);
    let mut out = String::from("| operation | result | machine limit | fraction |\n|---|---:|---:|---:|\n");
    let mut row = |op: String, result: String, limit: String, fraction: Option<f64>| {
        let fraction = fraction.map_or_else(|| "—".to_string(), |f| format!("{:.0}%", f * 100.0));
        out.push_str(&format!("| {op} | {result} | {limit} | {fraction} |\n"));
    };
    let dash = || "—".to_string();
    row(
        format!(
            "build: {} flushes of {} rows ({} MB files, {} MB data; {} distinct keys of {} written)",
            b.sstables,
            thousands(b.rows_per_flush as f64),
            mb(b.flushed_bytes),
            mb(b.data_bytes),
            thousands(b.distinct_keys as f64),
            thousands(b.rows as f64)
        ),
        format!("{:.0} MB/s of data flushed", b.data_bytes as f64 / MB / b.flush_seconds),
        dash(),
        None,
    );
    row(
        format!(
            "compaction of {} sstables: {} MB files ({} MB data, {} rows) → {} MB ({} MB data, {} rows) in {:.2} s, {}",
            c.inputs,
            mb(c.bytes_in),
            mb(c.data_in),
            thousands(c.rows_in as f64),
            mb(c.bytes_out),
            mb(c.data_out),
            thousands(c.rows_out as f64),
            c.seconds,
            if c.threads == 1 { "1 thread".to_string() } else { format!("{} threads (merge; read-ahead; compression)", c.threads) }
        ),
        format!("{:.1} MB/s of input file bytes{}", c.file_mb_per_s, mark(c.other_cores)),
        format!("{:.1} MB/s (zstd -{}: decompress input + compress output)", t.limit_file_mb_per_s, l.level),
        Some(t.fraction_of_limit),
    );
    row(
        "compaction, uncompressed input data".into(),
        format!("{:.1} MB/s of input data{}", c.data_mb_per_s, mark(c.other_cores)),
        format!("{:.1} MB/s of input data", c.data_in as f64 / MB / (l.decompress_seconds + l.compress_output_seconds)),
        Some(t.fraction_of_limit),
    );
    if let (Some(cpu), Some(share)) = (c.cpu_seconds, t.zstd_share_of_cpu) {
        row(
            "compaction CPU time (all threads) vs the zstd limit's time".into(),
            format!("{cpu:.2} CPU s{}", mark(c.other_cores)),
            format!("{:.2} s (zstd -{}: decompress input + compress output)", l.decompress_seconds + l.compress_output_seconds, l.level),
            Some(share),
        );
    }
    row(
        format!("compaction vs decompress + recompress all input in {} B chunks", l.block_size),
        format!("{:.1} MB/s of input file bytes", c.file_mb_per_s),
        format!("{:.1} MB/s", t.recompress_limit_file_mb_per_s),
        Some(t.fraction_of_recompress_limit),
    );
    row(
        format!(
            "machine: zstd -{} decompress {} input blocks ({} MB stored → {} MB)",
            l.level,
            l.input_blocks,
            mb(l.input_stored_bytes),
            mb(l.input_content_bytes)
        ),
        format!("{:.0} MB/s ({:.2} s){}", l.decompress_mb_per_s, l.decompress_seconds, mark(l.other_cores)),
        dash(),
        None,
    );
    row(
        format!("machine: zstd -{} compress {} output blocks ({} MB)", l.level, l.output_blocks, mb(l.output_content_bytes)),
        format!("{:.0} MB/s ({:.2} s){}", l.compress_output_mb_per_s, l.compress_output_seconds, mark(l.other_cores)),
        dash(),
        None,
    );
    row(
        format!("machine: zstd -{} decompress + recompress the input in {} B chunks", l.level, l.block_size),
        format!("{:.0} MB/s of data ({:.2} s){}", l.recompress_input_mb_per_s, l.recompress_input_seconds, mark(l.other_cores)),
        dash(),
        None,
    );
    out.push_str(&format!(
        "\nGoal: compaction at {:.0}% or more of the zstd limit: {} ({:.0}%).\n\n",
        GOAL * 100.0,
        if t.goal_met { "met" } else { "NOT met" },
        t.fraction_of_limit * 100.0
    ));

    out.push_str(
        "| strategy | user MB | flushed MB | compaction MB written (jobs) | write amp. (÷ flushed / ÷ user) | disk MB end (peak) | live MB \
         | space amp. end (peak) | sstables end (levels) | time |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for a in &r.amplification {
        let levels = a.levels.iter().map(|(l, n)| format!("L{l}: {n}")).collect::<Vec<_>>().join(", ");
        let time = match (a.flush_seconds, a.compaction_seconds) {
            (Some(f), Some(c)) => {
                format!(
                    "{:.1} s (write {:.1}, flush {f:.1}, compact {c:.1}; major {:.1}){}",
                    a.seconds,
                    a.write_seconds,
                    a.major_seconds,
                    mark(a.other_cores)
                )
            }
            _ => format!("{:.1} s (major {:.1}){}", a.seconds, a.major_seconds, mark(a.other_cores)),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} ({}) | {:.2} / {:.2} | {} ({}) | {} | {:.2} ({:.2}) | {} ({levels}) | {time} |\n",
            a.strategy,
            mb(a.user_bytes),
            mb(a.totals.bytes_flushed),
            mb(a.totals.bytes_out),
            a.totals.jobs,
            a.write_amplification,
            a.write_amplification_vs_user,
            mb(a.space_bytes),
            mb(a.peak_space_bytes),
            mb(a.live_bytes),
            a.space_amplification,
            a.peak_space_amplification,
            a.sstables,
        ));
    }
    let s = &r.sizes;
    out.push_str(&format!(
        "\nWorkload: {} keys written once, then {} overwrite pass{} of as many random keys ({}-byte keys, {}-byte values; user bytes = key + \
         value per write); memtable flushed at {} MiB, {}.\n",
        thousands(s.keys as f64),
        s.overwrites,
        if s.overwrites == 1 { "" } else { "es" },
        16,
        s.value_size,
        s.memtable_mb,
        if s.background {
            "flushes and compactions by the background threads (1 compaction thread)"
        } else {
            "then `compact_pending` on the writing thread"
        }
    ));
    for a in &r.amplification {
        out.push_str(&format!("- {}: {}.\n", a.strategy, a.parameters));
    }
    out.push_str(
        "\nWrite amplification = (flushed + compaction-written sstable bytes) ÷ flushed bytes, and ÷ user bytes (the commitlog is not \
         counted). Space amplification = sstable bytes on disk ÷ sstable bytes after a major compaction; the peak is sampled every 10 \
         ms and includes the inputs and outputs of running compactions.\n",
    );
    out.push_str(
        "MB = 10^6 bytes. The zstd limits are single-threaded with one reused context, over the compaction's own input blocks (read raw \
         before it) and output blocks, at the table's level. The limit in MB/s of input file bytes = input file bytes ÷ (decompression \
         time + compression time). The compaction merges on one thread; with pipelined compression (the engine's default, off with \
         `--serial`) one helper thread decompresses its input blocks ahead and another compresses and writes its output blocks, so its \
         wall time can beat its CPU time; the CPU row gives the process's CPU time during the compaction (10 ms resolution).\n",
    );
    if let Some(others) = r.machine.other_cores {
        out.push_str(&format!(
            "Other processes kept {others:.2} of {} cores busy on average during the run{}; ‡ marks measurements during which they kept \
             more than {CONTENTION_CORES} busy.\n",
            r.machine.cores,
            r.machine.load_average_at_start.map_or_else(String::new, |l| format!(" (load average {l:.2} at the start)")),
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("WARNING: {w}\n"));
    }
    out
}

/// Measures everything; prints and writes the report.
fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let sizes = Sizes::of(&args);
    if sizes.flushes < 2 || sizes.mb <= 0.0 || sizes.keys == 0 || sizes.memtable_mb == 0 || sizes.lcs_sstable_mb == 0 {
        return Err("--flushes must be at least 2, and --mb, --keys, --memtable-mb and --lcs-sstable-mb above zero".into());
    }
    let parent = args.dir.clone().unwrap_or_else(target_dir);
    std::fs::create_dir_all(&parent)?;
    let scratch = tempfile::Builder::new().prefix("talus-compaction-").tempdir_in(&parent)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut warnings = Vec::new();
    let (run_cpu, load_average_at_start, run_start) = (cpu_ticks(), load_average(), Instant::now());
    progress!("measuring in {}: {cores} cores, {sizes:?}", scratch.path().display());

    let throughput = throughput(scratch.path(), &sizes, &mut warnings)?;
    let mut amplification = Vec::new();
    for run in strategies(&sizes) {
        amplification.push(self::amplification(scratch.path(), &sizes, run)?);
    }

    let run_others = other_cores(run_cpu);
    if let Some(note) = run_contention_note(run_others, cores) {
        progress!("{note}");
    }
    let report = Report {
        benchmark: "compaction",
        sizes,
        dir: scratch.path().display().to_string(),
        machine: Machine { cores, load_average_at_start, other_cores: run_others },
        throughput,
        amplification,
        seconds: run_start.elapsed().as_secs_f64(),
        warnings,
    };
    print!("{}", markdown(&report));

    let json = args.json.clone().unwrap_or_else(|| target_dir().join("reports").join("bench_compaction.json"));
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    progress!("report written to {} ({:.0} s in all)", json.display(), report.seconds);
    scratch.close()?;
    Ok(())
}
