//! The machine's own limits, measured in the benchmarks' runs with `std::fs`, `zstd` and plain
//! memory copies (not the engine), so an engine figure can be read as a fraction of the work it
//! cannot avoid:
//!
//! - [`seq_write`]: a file written sequentially in 1 MiB chunks, then `fdatasync` (MB/s);
//! - [`fsync_append`] and [`fsync_overwrite`]: a small write then `fdatasync`, in a loop
//!   (syncs/s and their latency);
//! - [`memcpy_speed`]: copying a buffer larger than the CPU caches (MB/s);
//! - [`zstd_speed`], [`parallel_decompress`] and [`lz4_speed`]: zstd and LZ4 compression and
//!   decompression of given blocks, one block at a time (MB/s of uncompressed bytes);
//!   [`value_blocks`] makes such blocks from the benchmarks' own keys and values.
//!
//! The functions measure and return; printing is the caller's.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{key, nanos, timed_passes, value, BoxError, Latency, SplitMix, MB};

/// Chunk size of [`seq_write`].
pub const SEQ_WRITE_CHUNK: usize = 1 << 20;

/// One sequential write + `fdatasync` of a file.
#[derive(Debug, Clone, Serialize)]
pub struct SeqWrite {
    /// When, in the caller's words (e.g. `after flush`, `at end`).
    pub phase: &'static str,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds from the create to the end of the `fdatasync`.
    pub seconds: f64,
    /// Of which in the final `fdatasync`.
    pub sync_seconds: f64,
    /// MB/s.
    pub mb_per_s: f64,
}

/// Writes `bytes` (random) to a new file in `dir` in 1 MiB chunks, `fdatasync`s it, and removes it.
pub fn seq_write(dir: &Path, bytes: u64, phase: &'static str) -> io::Result<SeqWrite> {
    let path = dir.join("seq-write.dat");
    let mut rng = SplitMix(7);
    let chunk: Vec<u8> = (0..SEQ_WRITE_CHUNK).map(|_| rng.next_u64() as u8).collect();
    let start = Instant::now();
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(SEQ_WRITE_CHUNK as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    let before_sync = Instant::now();
    file.sync_data()?;
    let end = Instant::now();
    drop(file);
    std::fs::remove_file(&path)?;
    let seconds = end.duration_since(start).as_secs_f64();
    Ok(SeqWrite {
        phase,
        bytes,
        seconds,
        sync_seconds: end.duration_since(before_sync).as_secs_f64(),
        mb_per_s: bytes as f64 / MB / seconds,
    })
}

/// One machine fsync measurement: a write then `fdatasync`, in a loop.
#[derive(Debug, Clone, Serialize)]
pub struct FsyncBaseline {
    /// `append` or `overwrite`.
    pub variant: &'static str,
    /// When, in the caller's words (e.g. `before`, `after`).
    pub phase: &'static str,
    /// Bytes of each write.
    pub write_bytes: usize,
    /// Write-and-fdatasync rounds completed.
    pub fsyncs: u64,
    /// Wall time of the loop.
    pub seconds: f64,
    /// Rounds per second.
    pub fsyncs_per_s: f64,
    /// Latency of one write + fdatasync round.
    pub latency: Latency,
}

/// Runs `round` in a loop for `duration` and times each call.
fn fsync_loop(
    variant: &'static str,
    phase: &'static str,
    write_bytes: usize,
    duration: Duration,
    mut round: impl FnMut(u64) -> io::Result<()>,
) -> io::Result<FsyncBaseline> {
    let mut latencies = Vec::with_capacity(1 << 14);
    let start = Instant::now();
    let mut i = 0;
    while i == 0 || start.elapsed() < duration {
        let t = Instant::now();
        round(i)?;
        latencies.push(nanos(t.elapsed()));
        i += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(FsyncBaseline {
        variant,
        phase,
        write_bytes,
        fsyncs: i,
        seconds,
        fsyncs_per_s: i as f64 / seconds,
        latency: Latency::of(&mut latencies),
    })
}

/// The machine's append-fsync rate: append `write_bytes` to a new file in `dir` and `fdatasync`,
/// in a loop for `duration` (at least once); the file is removed after.
pub fn fsync_append(dir: &Path, phase: &'static str, write_bytes: usize, duration: Duration) -> io::Result<FsyncBaseline> {
    let path = dir.join("fsync-append.dat");
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    File::open(dir)?.sync_all()?;
    let block = vec![0x5a_u8; write_bytes];
    let run = fsync_loop("append", phase, write_bytes, duration, |_| {
        file.write_all(&block)?;
        file.sync_data()
    })?;
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(run)
}

/// The machine's overwrite-fsync rate: overwrite `write_bytes` at the next offset of a
/// preallocated, zero-filled and synced file of `preallocated` bytes (as a commitlog's segments
/// are; the writes wrap around in it) and `fdatasync`, in a loop for `duration` (at least once);
/// the file is removed after.
pub fn fsync_overwrite(
    dir: &Path,
    phase: &'static str,
    write_bytes: usize,
    preallocated: u64,
    duration: Duration,
) -> io::Result<FsyncBaseline> {
    let path = dir.join("fsync-overwrite.dat");
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let zeros = vec![0_u8; 1 << 20];
    let mut offset = 0;
    while offset < preallocated {
        file.write_all_at(&zeros, offset)?;
        offset += zeros.len() as u64;
    }
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    let block = vec![0xa5_u8; write_bytes];
    let slots = (preallocated / write_bytes.max(1) as u64).max(1);
    let run = fsync_loop("overwrite", phase, write_bytes, duration, |i| {
        file.write_all_at(&block, i % slots * write_bytes as u64)?;
        file.sync_data()
    })?;
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(run)
}

/// Memory copy bandwidth.
#[derive(Debug, Clone, Serialize)]
pub struct MemcpySpeed {
    /// Bytes of the buffer copied in each pass.
    pub bytes: usize,
    /// MB/s copied (each byte read once and written once).
    pub mb_per_s: f64,
}

/// Copies a buffer of `bytes` (make it larger than the CPU caches) into another, in passes until
/// `min` elapsed.
pub fn memcpy_speed(bytes: usize, min: Duration) -> Result<MemcpySpeed, BoxError> {
    let mut rng = SplitMix(11);
    let source: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
    let mut target = vec![0u8; bytes];
    // One untimed pass: the target's pages are faulted in.
    target.copy_from_slice(&source);
    let (mb_per_s, _) = timed_passes(min, || {
        target.copy_from_slice(black_box(&source));
        black_box(&mut target);
        Ok(bytes as u64)
    })?;
    Ok(MemcpySpeed { bytes, mb_per_s })
}

/// `count` blocks of about `block_bytes` each, filled with the benchmarks' records
/// (`key(i)` then `value(i, value_size)`, from record `first` on): data shaped like a table's.
pub fn value_blocks(first: u64, count: usize, block_bytes: usize, value_size: usize) -> Vec<Vec<u8>> {
    let mut i = first;
    (0..count)
        .map(|_| {
            let mut block = Vec::with_capacity(block_bytes + value_size + 16);
            while block.len() < block_bytes {
                block.extend_from_slice(&key(i));
                block.extend_from_slice(&value(i, value_size));
                i += 1;
            }
            block
        })
        .collect()
}

/// zstd speeds at one level over a set of blocks; rates are of uncompressed bytes.
#[derive(Debug, Clone, Serialize)]
pub struct ZstdSpeed {
    /// Compression level.
    pub level: i32,
    /// Blocks compressed, each on its own.
    pub blocks: usize,
    /// Mean uncompressed block size, bytes.
    pub mean_block_bytes: f64,
    /// Compressed ÷ uncompressed.
    pub ratio: f64,
    /// Compression with one reused context: the limit.
    pub compress_mb_per_s: f64,
    /// Decompression with one reused context: the limit.
    pub decompress_mb_per_s: f64,
    /// Compression with a new context per block (`zstd::bulk::compress`).
    pub compress_per_call_mb_per_s: f64,
    /// Decompression with a new context per block (`zstd::bulk::decompress`).
    pub decompress_per_call_mb_per_s: f64,
    /// Mean microseconds to decompress one block with a reused context.
    pub decompress_block_us: f64,
}

/// Measures zstd at `level` on `blocks` (one at a time, each pass at least `min` long).
pub fn zstd_speed(blocks: &[Vec<u8>], level: i32, min: Duration) -> Result<ZstdSpeed, BoxError> {
    let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
    let largest = blocks.iter().map(Vec::len).max().unwrap_or(0);
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    let compressed = blocks.iter().map(|c| compressor.compress(c)).collect::<Result<Vec<_>, _>>()?;
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(largest).max(largest)];

    let (compress, _) = timed_passes(min, || {
        for c in blocks {
            black_box(compressor.compress_to_buffer(c.as_slice(), out.as_mut_slice())?);
        }
        Ok(total)
    })?;
    let (compress_per_call, _) = timed_passes(min, || {
        for c in blocks {
            black_box(zstd::bulk::compress(c, level)?);
        }
        Ok(total)
    })?;
    let (decompress, pass_seconds) = timed_passes(min, || {
        for (z, c) in compressed.iter().zip(blocks) {
            black_box(decompressor.decompress_to_buffer(z.as_slice(), &mut out[..c.len()])?);
        }
        Ok(total)
    })?;
    let (decompress_per_call, _) = timed_passes(min, || {
        for (z, c) in compressed.iter().zip(blocks) {
            black_box(zstd::bulk::decompress(z, c.len())?);
        }
        Ok(total)
    })?;
    let n = blocks.len().max(1);
    Ok(ZstdSpeed {
        level,
        blocks: blocks.len(),
        mean_block_bytes: total as f64 / n as f64,
        ratio: compressed.iter().map(|z| z.len() as f64).sum::<f64>() / total.max(1) as f64,
        compress_mb_per_s: compress,
        decompress_mb_per_s: decompress,
        compress_per_call_mb_per_s: compress_per_call,
        decompress_per_call_mb_per_s: decompress_per_call,
        decompress_block_us: pass_seconds * 1e6 / n as f64,
    })
}

/// Decompresses every block (compressed at `level`) in each of `threads` threads (a context
/// each) until `min` elapsed; returns the MB/s of uncompressed bytes of all threads together.
pub fn parallel_decompress(blocks: &[Vec<u8>], level: i32, threads: usize, min: Duration) -> Result<f64, BoxError> {
    if blocks.iter().all(Vec::is_empty) {
        return Err("parallel_decompress: no data".into());
    }
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    let compressed = blocks.iter().map(|c| compressor.compress(c)).collect::<Result<Vec<_>, _>>()?;
    let largest = blocks.iter().map(Vec::len).max().unwrap_or(0);
    let start = Barrier::new(threads + 1);
    let (began, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (start, compressed) = (&start, &compressed);
                s.spawn(move || -> Result<(u64, Instant), BoxError> {
                    let mut decompressor = zstd::bulk::Decompressor::new()?;
                    let mut out = vec![0u8; largest];
                    start.wait();
                    let began = Instant::now();
                    let mut bytes = 0;
                    while bytes == 0 || began.elapsed() < min {
                        for (z, c) in compressed.iter().zip(blocks) {
                            bytes += decompressor.decompress_to_buffer(z.as_slice(), &mut out[..c.len()])? as u64;
                        }
                    }
                    Ok((bytes, Instant::now()))
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let results: Vec<Result<(u64, Instant), BoxError>> =
            handles.into_iter().map(|h| h.join().map_err(|_| BoxError::from("a decompressing thread panicked")).and_then(|r| r)).collect();
        (began, results)
    });
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let bytes: u64 = results.iter().map(|r| r.0).sum();
    let finished = results.iter().map(|r| r.1).max().unwrap_or(began);
    Ok(bytes as f64 / MB / finished.duration_since(began).as_secs_f64())
}

/// LZ4 (block format, `lz4_flex` as the format crate uses it) speeds over a set of blocks; rates
/// are of uncompressed bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Lz4Speed {
    /// Blocks compressed, each on its own.
    pub blocks: usize,
    /// Compressed ÷ uncompressed.
    pub ratio: f64,
    /// Compression into a reused buffer.
    pub compress_mb_per_s: f64,
    /// Decompression into a reused buffer: the limit.
    pub decompress_mb_per_s: f64,
    /// Mean microseconds to decompress one block.
    pub decompress_block_us: f64,
}

/// Measures LZ4 on `blocks` (one at a time, each pass at least `min` long).
pub fn lz4_speed(blocks: &[Vec<u8>], min: Duration) -> Result<Lz4Speed, BoxError> {
    let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
    let largest = blocks.iter().map(Vec::len).max().unwrap_or(0);
    let compressed: Vec<Vec<u8>> = blocks.iter().map(|b| lz4_flex::block::compress(b)).collect();
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(largest).max(largest)];
    let (compress, _) = timed_passes(min, || {
        for b in blocks {
            black_box(lz4_flex::block::compress_into(b, &mut out)?);
        }
        Ok(total)
    })?;
    let (decompress, pass_seconds) = timed_passes(min, || {
        for (z, b) in compressed.iter().zip(blocks) {
            black_box(lz4_flex::block::decompress_into(z, &mut out[..b.len()])?);
        }
        Ok(total)
    })?;
    Ok(Lz4Speed {
        blocks: blocks.len(),
        ratio: compressed.iter().map(|z| z.len() as f64).sum::<f64>() / total.max(1) as f64,
        compress_mb_per_s: compress,
        decompress_mb_per_s: decompress,
        decompress_block_us: pass_seconds * 1e6 / blocks.len().max(1) as f64,
    })
}
