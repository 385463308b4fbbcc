//! SSTable benchmark: flush throughput, point reads and full scans from sstables, each next to the
//! machine limit it is bounded by, measured in the same run and directory.
//!
//! Why: a flush is zstd compression plus a sequential write and an fsync; a point read that misses
//! the block cache is one block's checksum and decompression; a scan is every block's. The ratios
//! "engine ÷ machine" say how much the engine adds on top of the work it cannot avoid.
//!
//! Measured, in a fresh directory under `--dir` (default `target/` of the workspace):
//!
//! 1. the engine is loaded with `--partitions` key-value rows (16-byte keys, `--value-size`-byte
//!    values, half of each value random and half a repeat of it, so zstd has something to do)
//!    under `Periodic` durability with the background flusher off, then [`Engine::flush`] writes
//!    them into one sstable: MB/s of sstable bytes and of uncompressed block data;
//! 2. the machine, with `std::fs`, `zstd` and `xxhash-rust` directly (not the engine): writing a
//!    file of the sstable's size in 1 MiB chunks and `fdatasync` (right after the flush and again at
//!    the end: the flush is compared with the mean); zstd compression and decompression of the
//!    sstable's own data blocks (decoded through the format crate), one block at a time, at the
//!    table's level and at level 1, with a reused context (the limit) and with a new context per
//!    block (what `zstd::bulk::compress` and `zstd::bulk::decompress` do, as the format crate's
//!    block codec calls them); decompression with 2 threads (how far this machine scales now); the
//!    xxh3 checksum; and the format crate's `read_block` (checksum + decompression);
//! 3. point reads of random existing keys (hits) and of keys never written (misses), with 1 and 2
//!    threads, with the block cache on (`--cache-bytes`, warmed by the scans) and off: reads/s,
//!    latency, and blocks read per read from [`QueryStats`]. With the cache off a hit is compared
//!    with the machine's work on the blocks it read (decompression + xxh3 per block). A miss is
//!    answered by the bloom filter and the in-memory partition index, so it must read no block;
//!    the benchmark prints a WARNING line if one does;
//! 4. full scans ([`scan_all`], unpaged) with the cache cold, warm and off: rows/s and MB/s of
//!    uncompressed data against the zstd decompression limit.
//!
//! The machine is often shared: from `/proc/stat`, each measurement records how many cores other
//! processes kept busy meanwhile, and the table marks the measurements they disturbed.
//!
//! Output: progress on stderr, a markdown table on stdout, and everything as JSON at `--json`
//! (default `target/reports/bench_sstables.json`).
//!
//! Run: `cargo run --release -p talus-bench --bin sstables -- [--partitions N] [--value-size B] [--reads N] [--dir PATH] [--json PATH]`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use talus::commitlog::{CommitlogOptions, Durability};
use talus::format::schema::Compression;
use talus::format::sstable::block::{read_block, BlockHandle, BLOCK_TRAILER_LEN};
use talus::format::sstable::index::PartitionIndexEntry;
use talus::format::sstable::reader::{ReadCounters, SstableReader};
use talus::format::{Schema, Value};
use talus::fs::RealFs;
use talus::sstable_set::{sstable_file_name, SSTABLE_DIR};
use talus::sstable_source::open_sstable_source;
use talus::{scan_all, Engine, EngineOptions, Query, QueryStats};
use talus_bench::machine::{parallel_decompress, seq_write, zstd_speed, SeqWrite, ZstdSpeed};
use talus_bench::{
    contention, cpu_ticks, key, kv_schema_with, load_average, mark, nanos, other_cores, run_contention_note, target_dir, thousands,
    timed_passes, value, warning, BoxError, Latency, SplitMix, CONTENTION_CORES, MB, ZSTD,
};

/// Flush, point-read and scan throughput of sstables, against the machine's write and zstd limits.
#[derive(Debug, Parser)]
#[command(name = "sstables")]
struct Args {
    /// Partitions (one row each) written and flushed into the sstable.
    #[arg(long, default_value_t = 400_000)]
    partitions: u64,
    /// Value size of each row, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Point reads per measurement (split between the threads).
    #[arg(long, default_value_t = 100_000)]
    reads: u64,
    /// Full scans per scan measurement.
    #[arg(long, default_value_t = 2)]
    scans: u32,
    /// Block cache capacity of the cache-on measurements, bytes.
    #[arg(long, default_value_t = 64 << 20)]
    cache_bytes: u64,
    /// Minimum seconds of each zstd and block-codec measurement (repeated passes over the blocks).
    #[arg(long, default_value_t = 0.4)]
    codec_seconds: f64,
    /// Directory to measure in; the run gets a fresh temporary directory inside it
    /// [default: target/ of the workspace].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path of the JSON report [default: target/reports/bench_sstables.json in the workspace].
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A progress line on stderr.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[sstables] {}", format_args!($($arg)*)) };
}

/// Writes `bytes` to a new file in `dir` and `fdatasync`s it ([`seq_write`]), with a progress line.
fn seq_write_logged(dir: &Path, bytes: u64, phase: &'static str) -> std::io::Result<SeqWrite> {
    let run = seq_write(dir, bytes, phase)?;
    progress!(
        "machine ({phase}): sequential write {} MB + fdatasync: {:.0} MB/s ({:.2} s, {:.2} s of it in the sync)",
        bytes / 1_000_000,
        run.mb_per_s,
        run.seconds,
        run.sync_seconds
    );
    Ok(run)
}

/// The data blocks of the flushed sstable, decoded through the format crate.
struct Blocks {
    /// The file id (generation) the checksums are bound to.
    file_id: u64,
    /// Handle of each block.
    handles: Vec<BlockHandle>,
    /// Stored bytes and trailer of each block, as in the file.
    stored: Vec<bytes::Bytes>,
    /// Verified, decompressed content of each block.
    content: Vec<Vec<u8>>,
    /// Where the file's bytes go.
    layout: Layout,
}

/// The sizes of an sstable's parts, bytes.
#[derive(Debug, Clone, Copy, Serialize)]
struct Layout {
    /// Data blocks as stored (compressed), with their trailers.
    data: u64,
    /// Row index section.
    row_index: u64,
    /// Partition index section.
    partition_index: u64,
    /// Bloom filter section.
    filter: u64,
    /// Statistics section.
    statistics: u64,
    /// Partitions in the partition index.
    partitions: u64,
    /// Bytes of one decoded partition index entry in memory (without what its fields own on the heap).
    index_entry_in_memory: u64,
}

impl Blocks {
    fn uncompressed_bytes(&self) -> u64 {
        self.content.iter().map(|c| c.len() as u64).sum()
    }
}

/// Reads every data block of the sstable at `path` through the format crate's reader.
fn load_blocks(path: &Path, generation: u64) -> Result<Blocks, BoxError> {
    let source = open_sstable_source(&RealFs, path)?;
    let reader = SstableReader::open(source.clone(), Some(generation), None)?;
    let mut handles = reader.block_handles()?;
    handles.dedup_by_key(|h| h.offset);
    let counters = ReadCounters::default();
    let mut stored = Vec::with_capacity(handles.len());
    let mut content = Vec::with_capacity(handles.len());
    for handle in &handles {
        stored.push(source.read_at(handle.offset, handle.len as usize + BLOCK_TRAILER_LEN)?);
        content.push(reader.block(*handle, &counters)?.to_vec());
    }
    let footer = reader.footer();
    let layout = Layout {
        data: footer.data_end(),
        row_index: footer.row_index.len,
        partition_index: footer.partition_index.len,
        filter: footer.filter.len,
        statistics: footer.statistics.len,
        partitions: reader.partitions().len() as u64,
        index_entry_in_memory: std::mem::size_of::<PartitionIndexEntry>() as u64,
    };
    progress!(
        "sstable layout: {} B of data blocks, {} B of partition index, {} B of bloom filter, {} B of row index, {} B of statistics; \
         in memory, the partition index holds {} entries of {} B each (plus what they own on the heap)",
        layout.data,
        layout.partition_index,
        layout.filter,
        layout.row_index,
        layout.statistics,
        layout.partitions,
        layout.index_entry_in_memory
    );
    Ok(Blocks { file_id: reader.file_id(), handles, stored, content, layout })
}

/// Measures zstd at `level` on `blocks` ([`zstd_speed`]), with a progress line.
fn zstd_speed_logged(blocks: &Blocks, level: i32, min: Duration) -> Result<ZstdSpeed, BoxError> {
    let speed = zstd_speed(&blocks.content, level, min)?;
    progress!(
        "machine: zstd level {level} on {} blocks of {:.0} B (ratio {:.3}): compress {:.0} MB/s ({:.0} with a context per block), \
         decompress {:.0} MB/s ({:.0} with a context per block), {:.2} µs per block",
        speed.blocks,
        speed.mean_block_bytes,
        speed.ratio,
        speed.compress_mb_per_s,
        speed.compress_per_call_mb_per_s,
        speed.decompress_mb_per_s,
        speed.decompress_per_call_mb_per_s,
        speed.decompress_block_us
    );
    Ok(speed)
}

/// The format crate's block decoder over the sstable's blocks.
#[derive(Debug, Clone, Serialize)]
struct BlockCodec {
    /// `read_block` (xxh3 checksum + zstd decompression with a context per block), MB/s of
    /// uncompressed bytes.
    read_block_mb_per_s: f64,
    /// Mean microseconds per block.
    read_block_us: f64,
    /// The xxh3 checksum alone over the stored (compressed) bytes, MB/s of stored bytes.
    checksum_mb_per_s: f64,
    /// Mean microseconds of the checksum per block.
    checksum_block_us: f64,
}

/// Measures `read_block` and the xxh3 checksum on `blocks`.
fn block_codec(blocks: &Blocks, min: Duration) -> Result<BlockCodec, BoxError> {
    let total = blocks.uncompressed_bytes();
    let (read, pass_seconds) = timed_passes(min, || {
        for (stored, handle) in blocks.stored.iter().zip(&blocks.handles) {
            black_box(read_block(stored, *handle, blocks.file_id)?);
        }
        Ok(total)
    })?;
    let stored_total: u64 = blocks.stored.iter().map(|s| s.len() as u64).sum();
    let (checksum, checksum_pass_seconds) = timed_passes(min, || {
        for stored in &blocks.stored {
            black_box(xxhash_rust::xxh3::xxh3_64(stored));
        }
        Ok(stored_total)
    })?;
    let n = blocks.handles.len().max(1) as f64;
    let codec = BlockCodec {
        read_block_mb_per_s: read,
        read_block_us: pass_seconds * 1e6 / n,
        checksum_mb_per_s: checksum,
        checksum_block_us: checksum_pass_seconds * 1e6 / n,
    };
    progress!(
        "format: read_block (verify + decompress) {:.0} MB/s, {:.2} µs per block; xxh3 alone {:.0} MB/s of stored bytes, {:.2} µs per block",
        codec.read_block_mb_per_s,
        codec.read_block_us,
        codec.checksum_mb_per_s,
        codec.checksum_block_us
    );
    Ok(codec)
}

/// Loading the memtable.
#[derive(Debug, Clone, Serialize)]
struct Load {
    /// Rows written.
    rows: u64,
    /// Mutations per `apply_batch`.
    batch: usize,
    /// Seconds.
    seconds: f64,
    /// Rows per second.
    rows_per_s: f64,
}

/// The flush.
#[derive(Debug, Clone, Serialize)]
struct Flush {
    /// Seconds of `Engine::flush`.
    seconds: f64,
    /// Generation of the sstable written.
    generation: u64,
    /// Bytes of sstable written.
    sstable_bytes: u64,
    /// Uncompressed bytes of its data blocks.
    uncompressed_bytes: u64,
    /// Data blocks.
    blocks: usize,
    /// Where the sstable's bytes go.
    layout: Layout,
    /// Sstable bytes per second, MB/s.
    sstable_mb_per_s: f64,
    /// Uncompressed data per second, MB/s.
    uncompressed_mb_per_s: f64,
    /// `sstable_mb_per_s` ÷ the sequential-write limit.
    fraction_of_seq_write: f64,
    /// `uncompressed_mb_per_s` ÷ the zstd compression limit at the table's level.
    fraction_of_zstd_compress: f64,
    /// Uncompressed MB/s of compressing then writing serially at the machine limits.
    serial_limit_mb_per_s: f64,
    /// `uncompressed_mb_per_s` ÷ `serial_limit_mb_per_s`.
    fraction_of_serial_limit: f64,
    /// Cores other processes kept busy during the flush.
    other_cores: Option<f64>,
}

/// One point-read measurement.
#[derive(Debug, Clone, Serialize)]
struct PointReads {
    /// `on` (with its capacity) or `off`.
    cache: String,
    /// `hit` or `miss`.
    kind: &'static str,
    /// Reader threads.
    threads: usize,
    /// Reads done.
    reads: u64,
    /// Wall time.
    seconds: f64,
    /// Reads per second, all threads together.
    reads_per_s: f64,
    /// Latency of one read.
    latency: Latency,
    /// SSTables read per read.
    sstables_per_read: f64,
    /// Data blocks read per read (from the cache or the file).
    blocks_per_read: f64,
    /// Of which served by the block cache.
    cache_hits_per_read: f64,
    /// Rows returned per read.
    rows_per_read: f64,
    /// Reads/s if each read cost only the machine's work on the blocks it read: one zstd
    /// decompression (reused context) and one xxh3 of the stored bytes per block (cache off only;
    /// with 2 threads, times the measured 2-thread scaling of zstd decompression).
    limit_reads_per_s: Option<f64>,
    /// `reads_per_s` ÷ `limit_reads_per_s`.
    fraction: Option<f64>,
    /// Cores other processes kept busy during the measurement.
    other_cores: Option<f64>,
}

/// What the reader threads return.
struct ThreadReads {
    reads: u64,
    stats: QueryStats,
    rows: u64,
    latencies: Vec<u64>,
    finished: Instant,
}

/// One reader thread: `reads` point reads of random keys (`hit`: written, else never written).
fn reader_thread(
    engine: &Engine,
    schema: &Schema,
    hit: bool,
    partitions: u64,
    reads: u64,
    seed: u64,
    start: &Barrier,
) -> Result<ThreadReads, BoxError> {
    let mut rng = SplitMix(seed);
    let mut stats = QueryStats::default();
    let mut rows = 0;
    let mut latencies = Vec::with_capacity(reads as usize);
    start.wait();
    for _ in 0..reads {
        let i = if hit { rng.below(partitions) } else { partitions + rng.below(1 << 40) };
        let t = Instant::now();
        let query = Query::partition(schema, &[Value::Blob(key(i).into())])?;
        let result = engine.query(&query)?;
        latencies.push(nanos(t.elapsed()));
        let s = result.stats;
        stats.sstables += s.sstables;
        stats.blocks_read += s.blocks_read;
        stats.block_cache_hits += s.block_cache_hits;
        stats.blocks_skipped += s.blocks_skipped;
        rows += result.rows().count() as u64;
    }
    Ok(ThreadReads { reads, stats, rows, latencies, finished: Instant::now() })
}

/// Runs `threads` readers of `reads` point reads in total.
fn point_reads(
    engine: &Engine,
    schema: &Schema,
    cache: &str,
    hit: bool,
    threads: usize,
    partitions: u64,
    reads: u64,
) -> Result<PointReads, BoxError> {
    let start = Barrier::new(threads + 1);
    let per_thread = reads.div_ceil(threads as u64);
    let cpu = cpu_ticks();
    let (began, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                let seed = (t as u64 + 1) * 0x1234_5678 + u64::from(hit);
                s.spawn(move || reader_thread(engine, schema, hit, partitions, per_thread, seed, start))
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let results: Vec<Result<ThreadReads, BoxError>> =
            handles.into_iter().map(|h| h.join().map_err(|_| BoxError::from("a reader thread panicked")).and_then(|r| r)).collect();
        (began, results)
    });
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let done: u64 = results.iter().map(|r| r.reads).sum();
    let finished = results.iter().map(|r| r.finished).max().unwrap_or(began);
    let seconds = finished.duration_since(began).as_secs_f64();
    let per = |f: &dyn Fn(&ThreadReads) -> u64| results.iter().map(f).sum::<u64>() as f64 / done.max(1) as f64;
    let run = PointReads {
        cache: cache.to_string(),
        kind: if hit { "hit" } else { "miss" },
        threads,
        reads: done,
        seconds,
        reads_per_s: done as f64 / seconds,
        latency: Latency::of(&mut results.iter().flat_map(|r| r.latencies.iter().copied()).collect::<Vec<_>>()),
        sstables_per_read: per(&|r| r.stats.sstables),
        blocks_per_read: per(&|r| r.stats.blocks_read),
        cache_hits_per_read: per(&|r| r.stats.block_cache_hits),
        rows_per_read: per(&|r| r.rows),
        limit_reads_per_s: None,
        fraction: None,
        other_cores: other_cores(cpu),
    };
    progress!(
        "point reads ({}, cache {}, {} thread{}): {:.0} reads/s, p50 {:.1} µs, p99 {:.1} µs, {:.3} blocks/read ({:.3} from the cache), {:.3} rows/read{}",
        run.kind,
        run.cache,
        threads,
        if threads == 1 { "" } else { "s" },
        run.reads_per_s,
        run.latency.p50_us,
        run.latency.p99_us,
        run.blocks_per_read,
        run.cache_hits_per_read,
        run.rows_per_read,
        contention(run.other_cores)
    );
    Ok(run)
}

/// One scan measurement.
#[derive(Debug, Clone, Serialize)]
struct Scan {
    /// `off`, `cold` (on, empty) or `warm` (on, filled by the previous scan).
    cache: &'static str,
    /// Scans run; the rates are of their total.
    scans: u32,
    /// Rows returned per scan.
    rows: u64,
    /// Seconds per scan, each.
    seconds: Vec<f64>,
    /// Rows per second.
    rows_per_s: f64,
    /// Uncompressed block data per second, MB/s.
    uncompressed_mb_per_s: f64,
    /// `uncompressed_mb_per_s` ÷ the zstd decompression limit at the table's level.
    fraction_of_zstd_decompress: f64,
    /// Blocks read per scan.
    blocks_read: u64,
    /// Of which from the cache.
    block_cache_hits: u64,
    /// Cores other processes kept busy during the scans.
    other_cores: Option<f64>,
}

/// Runs `scans` full scans of `table`; `cold` runs just one (the cache is warm after it).
fn scans(
    engine: &Engine,
    table: &str,
    cache: &'static str,
    scans: u32,
    uncompressed: u64,
    warnings: &mut Vec<String>,
    expected_rows: u64,
) -> Result<Scan, BoxError> {
    let mut seconds = Vec::new();
    let (mut rows, mut stats) = (0, QueryStats::default());
    let cpu = cpu_ticks();
    for _ in 0..scans {
        let start = Instant::now();
        let result = engine.query(&scan_all(table))?;
        seconds.push(start.elapsed().as_secs_f64());
        rows = result.rows().count() as u64;
        stats = result.stats;
        drop(result);
        if rows != expected_rows {
            warning!(warnings, "a full scan returned {rows} rows, expected {expected_rows}");
        }
    }
    let total: f64 = seconds.iter().sum();
    let scan = Scan {
        cache,
        scans,
        rows,
        rows_per_s: rows as f64 * f64::from(scans) / total,
        uncompressed_mb_per_s: uncompressed as f64 * f64::from(scans) / MB / total,
        seconds,
        fraction_of_zstd_decompress: f64::NAN,
        blocks_read: stats.blocks_read,
        block_cache_hits: stats.block_cache_hits,
        other_cores: other_cores(cpu),
    };
    progress!(
        "full scan (cache {cache}): {:.0} rows/s, {:.0} MB/s uncompressed, {} blocks ({} from the cache), {:?} s{}",
        scan.rows_per_s,
        scan.uncompressed_mb_per_s,
        scan.blocks_read,
        scan.block_cache_hits,
        scan.seconds.iter().map(|s| (s * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        contention(scan.other_cores)
    );
    Ok(scan)
}

/// Machine limits measured in the run.
#[derive(Debug, Clone, Serialize)]
struct Machine {
    /// Cores available to the process.
    cores: usize,
    /// Sequential write + fdatasync runs.
    seq_write: Vec<SeqWrite>,
    /// Their mean, MB/s: the write limit the flush is compared with.
    seq_write_mb_per_s: f64,
    /// (max − min) ÷ mean of the runs.
    seq_write_spread: f64,
    /// zstd at the table's level, then at level 1.
    zstd: Vec<ZstdSpeed>,
    /// The format crate's block decoder.
    block_codec: BlockCodec,
    /// zstd decompression at the table's level with 2 threads (a context each), MB/s together.
    decompress_2_threads_mb_per_s: f64,
    /// That ÷ the 1-thread rate: how far 2 threads scale on this machine now.
    two_thread_scaling: f64,
    /// Microseconds of machine work per block read: zstd decompression (reused context) + xxh3.
    block_limit_us: f64,
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
    /// Partitions (rows) in the sstable.
    partitions: u64,
    /// Value size, bytes.
    value_size: usize,
    /// Point reads per measurement.
    reads: u64,
    /// The table's compression level (0: none).
    table_level: i32,
    /// Target uncompressed block size, bytes.
    block_size: usize,
    /// Directory the measurements ran in.
    dir: String,
    /// The machine's limits.
    machine: Machine,
    /// Loading the memtable.
    load: Load,
    /// The flush.
    flush: Flush,
    /// Point reads.
    point_reads: Vec<PointReads>,
    /// Full scans.
    scans: Vec<Scan>,
    /// Block cache counters of the cache-on engine at its end.
    block_cache: BlockCacheReport,
    /// WARNING lines printed.
    warnings: Vec<String>,
}

/// The block cache counters worth keeping.
#[derive(Debug, Clone, Copy, Serialize)]
struct BlockCacheReport {
    /// Capacity, bytes.
    capacity: u64,
    /// Bytes charged at the end.
    bytes: u64,
    /// Blocks cached at the end.
    entries: u64,
    /// Lookups that hit.
    hits: u64,
    /// Lookups that missed.
    misses: u64,
    /// Blocks evicted.
    evictions: u64,
}

/// The markdown table of the report.
fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut out = String::from("| operation | result | machine limit | fraction |\n|---|---:|---:|---:|\n");
    let mut row = |op: String, result: String, limit: String, fraction: Option<f64>| {
        let fraction = fraction.map_or_else(|| "—".to_string(), |f| format!("{:.0}%", f * 100.0));
        out.push_str(&format!("| {op} | {result} | {limit} | {fraction} |\n"));
    };
    let dash = || "—".to_string();
    for s in &m.seq_write {
        row(
            format!("machine: sequential write {} MB + fdatasync ({})", s.bytes / 1_000_000, s.phase),
            format!("{:.0} MB/s", s.mb_per_s),
            dash(),
            None,
        );
    }
    let table_zstd = m.zstd.first();
    for z in &m.zstd {
        let name = format!("zstd -{} on {} B blocks (ratio {:.2})", z.level, z.mean_block_bytes.round(), z.ratio);
        row(format!("machine: {name}, compress"), format!("{:.0} MB/s", z.compress_mb_per_s), dash(), None);
        row(format!("machine: {name}, decompress"), format!("{:.0} MB/s", z.decompress_mb_per_s), dash(), None);
        row(
            format!("zstd -{} compress, new context per block (what a context cache saves)", z.level),
            format!("{:.0} MB/s", z.compress_per_call_mb_per_s),
            format!("{:.0} MB/s", z.compress_mb_per_s),
            Some(z.compress_per_call_mb_per_s / z.compress_mb_per_s),
        );
        row(
            format!("zstd -{} decompress, new context per block (what a context cache saves)", z.level),
            format!("{:.0} MB/s", z.decompress_per_call_mb_per_s),
            format!("{:.0} MB/s", z.decompress_mb_per_s),
            Some(z.decompress_per_call_mb_per_s / z.decompress_mb_per_s),
        );
    }
    let decompress_limit = table_zstd.map_or(f64::NAN, |z| z.decompress_mb_per_s);
    let compress_limit = table_zstd.map_or(f64::NAN, |z| z.compress_mb_per_s);
    row(
        format!("machine: zstd -{} decompress, 2 threads", r.table_level),
        format!("{:.0} MB/s ({:.2}× 1 thread)", m.decompress_2_threads_mb_per_s, m.two_thread_scaling),
        dash(),
        None,
    );
    row(
        "machine: xxh3 of the stored bytes".into(),
        format!("{:.0} MB/s ({:.2} µs/block)", m.block_codec.checksum_mb_per_s, m.block_codec.checksum_block_us),
        dash(),
        None,
    );
    row(
        "format `read_block` (xxh3 verify + decompress)".into(),
        format!("{:.0} MB/s ({:.2} µs/block)", m.block_codec.read_block_mb_per_s, m.block_codec.read_block_us),
        format!("{decompress_limit:.0} MB/s"),
        Some(m.block_codec.read_block_mb_per_s / decompress_limit),
    );
    row(
        format!("load memtable ({} rows, batches of {})", r.load.rows, r.load.batch),
        format!("{} rows/s", thousands(r.load.rows_per_s)),
        dash(),
        None,
    );
    let f = &r.flush;
    row(
        format!("flush: sstable bytes ({:.1} MB in {:.2} s)", f.sstable_bytes as f64 / MB, f.seconds),
        format!("{:.0} MB/s{}", f.sstable_mb_per_s, mark(f.other_cores)),
        format!("{:.0} MB/s seq write", m.seq_write_mb_per_s),
        Some(f.fraction_of_seq_write),
    );
    row(
        format!(
            "flush: uncompressed data ({:.1} MB in {} blocks; file: {:.1} MB data, {:.1} MB partition index, {:.1} MB filter)",
            f.uncompressed_bytes as f64 / MB,
            f.blocks,
            f.layout.data as f64 / MB,
            f.layout.partition_index as f64 / MB,
            f.layout.filter as f64 / MB
        ),
        format!("{:.0} MB/s{}", f.uncompressed_mb_per_s, mark(f.other_cores)),
        format!("{compress_limit:.0} MB/s zstd -{}", r.table_level),
        Some(f.fraction_of_zstd_compress),
    );
    row(
        "flush: uncompressed data vs compress + write serially".into(),
        format!("{:.0} MB/s", f.uncompressed_mb_per_s),
        format!("{:.0} MB/s", f.serial_limit_mb_per_s),
        Some(f.fraction_of_serial_limit),
    );
    for p in &r.point_reads {
        row(
            format!("point read {}, cache {}, {} thread{}", p.kind, p.cache, p.threads, if p.threads == 1 { "" } else { "s" }),
            format!(
                "{} reads/s{} (p50 {:.1} µs, {:.2} blocks/read, {:.2} cached)",
                thousands(p.reads_per_s),
                mark(p.other_cores),
                p.latency.p50_us,
                p.blocks_per_read,
                p.cache_hits_per_read
            ),
            p.limit_reads_per_s.map_or_else(dash, |l| format!("{} reads/s (decompress + xxh3 only)", thousands(l))),
            p.fraction,
        );
    }
    for s in &r.scans {
        row(
            format!("full scan, cache {} ({} rows)", s.cache, s.rows),
            format!("{} rows/s, {:.0} MB/s{}", thousands(s.rows_per_s), s.uncompressed_mb_per_s, mark(s.other_cores)),
            format!("{decompress_limit:.0} MB/s zstd -{} decompress", r.table_level),
            Some(s.fraction_of_zstd_decompress),
        );
    }
    out.push_str(&format!(
        "\nMB = 10^6 bytes. The flush is compared with the mean of {} sequential writes (spread {:.0}% of the mean); zstd limits use one \
         reused context over the sstable's own blocks, single-threaded.\n",
        m.seq_write.len(),
        m.seq_write_spread * 100.0
    ));
    out.push_str(&format!(
        "Point reads with the cache off are compared with {:.2} µs of machine work per block read (zstd decompression with a reused \
         context + xxh3), times the measured 2-thread scaling for 2 threads.\n",
        m.block_limit_us
    ));
    if let Some(others) = m.other_cores {
        out.push_str(&format!(
            "Other processes kept {others:.2} of {} cores busy on average during the run{}; ‡ marks measurements during which they \
             kept more than {CONTENTION_CORES} busy.\n",
            m.cores,
            m.load_average_at_start.map_or_else(String::new, |l| format!(" (load average {l:.2} at the start)")),
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("WARNING: {w}\n"));
    }
    out
}

/// Opens the engine in `dir` for the benchmark: no background flush, `Periodic` durability.
fn open_engine(dir: &Path, cache_bytes: u64) -> Result<Engine, BoxError> {
    let commitlog = CommitlogOptions { durability: Durability::Periodic(Duration::from_millis(100)), ..CommitlogOptions::default() };
    let options = EngineOptions {
        background_flush: false,
        background_compaction: false,
        block_cache_bytes: cache_bytes,
        commitlog,
        ..EngineOptions::default()
    };
    Ok(Engine::open(dir, options)?)
}

/// Fills the memtable of `table` with `partitions` rows.
fn load(engine: &Engine, schema: &Schema, partitions: u64, value_size: usize) -> Result<Load, BoxError> {
    const BATCH: usize = 100;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..partitions {
        batch.push(talus_bench::kv_put(schema, i, &value(i, value_size))?);
        if batch.len() == BATCH || i + 1 == partitions {
            engine.apply_batch(&batch)?;
            batch.clear();
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            progress!("loading: {}/{} rows", i + 1, partitions);
            last_progress = Instant::now();
        }
    }
    engine.sync()?;
    let seconds = start.elapsed().as_secs_f64();
    let load = Load { rows: partitions, batch: BATCH, seconds, rows_per_s: partitions as f64 / seconds };
    progress!("loaded {} rows into the memtable in {:.2} s ({:.0} rows/s)", partitions, seconds, load.rows_per_s);
    Ok(load)
}

/// Measures everything; prints and writes the report.
fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.partitions == 0 || args.reads == 0 || args.scans == 0 {
        return Err("--partitions, --reads and --scans must be above zero".into());
    }
    let codec_time = Duration::try_from_secs_f64(args.codec_seconds).map_err(|e| format!("--codec-seconds {}: {e}", args.codec_seconds))?;
    let parent = args.dir.clone().unwrap_or_else(target_dir);
    std::fs::create_dir_all(&parent)?;
    let scratch = tempfile::Builder::new().prefix("talus-sstables-").tempdir_in(&parent)?;
    let dir = scratch.path().join("engine");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut warnings = Vec::new();
    let (run_cpu, load_average_at_start) = (cpu_ticks(), load_average());
    progress!(
        "measuring in {}: {} partitions of {}-byte values, {} reads per measurement, {cores} cores",
        scratch.path().display(),
        args.partitions,
        args.value_size,
        args.reads
    );

    // 1. Load and flush.
    let schema = kv_schema_with(ZSTD);
    let table = schema.full_name();
    let table_level = match schema.options.compression {
        Compression::Zstd { level } => level,
        Compression::None | Compression::Lz4 => 0,
    };
    let engine = open_engine(&dir, args.cache_bytes)?;
    engine.create_table(schema.clone())?;
    let load = load(&engine, &schema, args.partitions, args.value_size)?;
    progress!("flushing");
    let (cpu, start) = (cpu_ticks(), Instant::now());
    let report = engine.flush(&table)?;
    let flush_seconds = start.elapsed().as_secs_f64();
    let flush_others = other_cores(cpu);
    let generation = match report.generations.as_slice() {
        [g] => *g,
        other => return Err(format!("the flush wrote {} sstables, expected 1", other.len()).into()),
    };
    progress!("flushed {} bytes into generation {generation} in {flush_seconds:.2} s{}", report.bytes, contention(flush_others));

    // 2. The machine: sequential write of the sstable's size, zstd on its blocks, the block codec.
    let mut seq = vec![seq_write_logged(scratch.path(), report.bytes, "after flush")?];
    let path = dir.join(SSTABLE_DIR).join(sstable_file_name(generation));
    let blocks = load_blocks(&path, generation)?;
    let uncompressed = blocks.uncompressed_bytes();
    let mut zstd = vec![zstd_speed_logged(&blocks, table_level.max(1), codec_time)?];
    if table_level != 1 {
        zstd.push(zstd_speed_logged(&blocks, 1, codec_time)?);
    }
    let codec = block_codec(&blocks, codec_time)?;
    let decompress_limit = zstd.first().map_or(f64::NAN, |z| z.decompress_mb_per_s);
    let decompress_2_threads = parallel_decompress(&blocks.content, table_level.max(1), 2, codec_time)?;
    let two_thread_scaling = decompress_2_threads / decompress_limit;
    progress!(
        "machine: zstd level {} decompress with 2 threads: {decompress_2_threads:.0} MB/s together ({two_thread_scaling:.2}× 1 thread)",
        table_level.max(1)
    );
    let block_limit_us = zstd.first().map_or(f64::NAN, |z| z.decompress_block_us) + codec.checksum_block_us;
    let (block_count, layout) = (blocks.handles.len(), blocks.layout);
    drop(blocks);

    // 3. and 4. Reads with the cache on: a cold then warm scan (which fills the cache), point reads.
    let mut scan_runs = vec![scans(&engine, &table, "cold", 1, uncompressed, &mut warnings, args.partitions)?];
    scan_runs.push(scans(&engine, &table, "warm", args.scans, uncompressed, &mut warnings, args.partitions)?);
    let mut reads = Vec::new();
    let cache_on = format!("on ({} MiB)", args.cache_bytes >> 20);
    for hit in [true, false] {
        for threads in [1, 2] {
            reads.push(point_reads(&engine, &schema, &cache_on, hit, threads, args.partitions, args.reads)?);
        }
    }
    let cache = engine.block_cache_stats();
    let block_cache = BlockCacheReport {
        capacity: cache.capacity,
        bytes: cache.bytes,
        entries: cache.entries,
        hits: cache.hits,
        misses: cache.misses,
        evictions: cache.evictions,
    };
    drop(engine);

    // Cache off: reopen the same directory.
    let engine = open_engine(&dir, 0)?;
    for hit in [true, false] {
        for threads in [1, 2] {
            let mut run = point_reads(&engine, &schema, "off", hit, threads, args.partitions, args.reads)?;
            if run.blocks_per_read > 0.0 {
                let scaling = if threads == 1 { 1.0 } else { two_thread_scaling };
                let limit = 1e6 / (block_limit_us * run.blocks_per_read) * scaling;
                run.limit_reads_per_s = Some(limit);
                run.fraction = Some(run.reads_per_s / limit);
            }
            reads.push(run);
        }
    }
    scan_runs.push(scans(&engine, &table, "off", args.scans, uncompressed, &mut warnings, args.partitions)?);
    drop(engine);
    seq.push(seq_write_logged(scratch.path(), report.bytes, "at end")?);

    for run in &reads {
        if run.kind == "miss" && run.blocks_per_read > 0.0 {
            warning!(
                warnings,
                "point reads of absent keys (cache {}, {} threads) read {:.4} blocks per read: the bloom filter and partition index should answer them without any",
                run.cache,
                run.threads,
                run.blocks_per_read
            );
        }
        if run.kind == "miss" && run.rows_per_read > 0.0 {
            warning!(warnings, "point reads of absent keys returned {:.4} rows per read", run.rows_per_read);
        }
        if run.kind == "hit" && (run.rows_per_read - 1.0).abs() > f64::EPSILON {
            warning!(warnings, "point reads of written keys returned {:.4} rows per read, expected 1", run.rows_per_read);
        }
    }

    let rates: Vec<f64> = seq.iter().map(|s| s.mb_per_s).collect();
    let seq_mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let spread = (rates.iter().copied().fold(f64::MIN, f64::max) - rates.iter().copied().fold(f64::MAX, f64::min)) / seq_mean;
    let compress_limit = zstd.first().map_or(f64::NAN, |z| z.compress_mb_per_s);
    for s in &mut scan_runs {
        s.fraction_of_zstd_decompress = s.uncompressed_mb_per_s / decompress_limit;
    }
    let sstable_mb_per_s = report.bytes as f64 / MB / flush_seconds;
    let uncompressed_mb_per_s = uncompressed as f64 / MB / flush_seconds;
    // Compressing the data then writing the file, one after the other, at the machine's rates.
    let serial_seconds = uncompressed as f64 / MB / compress_limit + report.bytes as f64 / MB / seq_mean;
    let serial_limit = uncompressed as f64 / MB / serial_seconds;
    let flush = Flush {
        seconds: flush_seconds,
        generation,
        sstable_bytes: report.bytes,
        uncompressed_bytes: uncompressed,
        blocks: block_count,
        layout,
        sstable_mb_per_s,
        uncompressed_mb_per_s,
        fraction_of_seq_write: sstable_mb_per_s / seq_mean,
        fraction_of_zstd_compress: uncompressed_mb_per_s / compress_limit,
        serial_limit_mb_per_s: serial_limit,
        fraction_of_serial_limit: uncompressed_mb_per_s / serial_limit,
        other_cores: flush_others,
    };
    let run_others = other_cores(run_cpu);
    if let Some(note) = run_contention_note(run_others, cores) {
        progress!("{note}");
    }
    let report = Report {
        benchmark: "sstables",
        partitions: args.partitions,
        value_size: args.value_size,
        reads: args.reads,
        table_level,
        block_size: schema.options.block_size,
        dir: scratch.path().display().to_string(),
        machine: Machine {
            cores,
            seq_write: seq,
            seq_write_mb_per_s: seq_mean,
            seq_write_spread: spread,
            zstd,
            block_codec: codec,
            decompress_2_threads_mb_per_s: decompress_2_threads,
            two_thread_scaling,
            block_limit_us,
            load_average_at_start,
            other_cores: run_others,
        },
        load,
        flush,
        point_reads: reads,
        scans: scan_runs,
        block_cache,
        warnings,
    };
    print!("{}", markdown(&report));

    let json = args.json.clone().unwrap_or_else(|| target_dir().join("reports").join("bench_sstables.json"));
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    progress!("report written to {}", json.display());
    scratch.close()?;
    Ok(())
}
