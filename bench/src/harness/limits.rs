//! The machine limits of a `talus-bench` run ([`MachineLimits`]) and which limit bounds which
//! workload ([`limit_of`]).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use talus::format::schema::TableOptions;

use super::keys::KeySpace;
use super::Workload;
use crate::machine::{
    fsync_append, fsync_overwrite, lz4_speed, memcpy_speed, seq_write, value_blocks, zstd_speed, FsyncBaseline, Lz4Speed, MemcpySpeed,
    SeqWrite, ZstdSpeed,
};
use crate::peers::Compression;
use crate::{load_average, BoxError};

/// Bytes copied per pass of the memory bandwidth measurement: far above the CPU caches.
const MEMCPY_BYTES: usize = 64 << 20;
/// Uncompressed bytes of a codec block: Talus' default block size.
fn block_bytes() -> usize {
    TableOptions::default().block_size
}
/// Blocks of the zstd and LZ4 measurements.
const CODEC_BLOCKS: usize = 256;
/// The preallocated file of the overwrite-fsync measurement (its writes wrap around in it).
const OVERWRITE_FILE_BYTES: u64 = 16 << 20;
/// The sequential write is the size of the run's data, within these bounds.
const SEQ_WRITE_BYTES: (u64, u64) = (16 << 20, 512 << 20);

/// The machine's limits, measured in the run's directory.
#[derive(Debug, Clone, Serialize)]
pub struct MachineLimits {
    /// Cores available to the process.
    pub cores: usize,
    /// Sequential write + fdatasync of the run's data size, at the start and at the end.
    pub seq_write: Vec<SeqWrite>,
    /// Their mean, MB/s.
    pub seq_write_mb_per_s: f64,
    /// A small append (one key and value) + fdatasync, in a loop.
    pub fsync: FsyncBaseline,
    /// The same write overwriting a preallocated file (as the engines' logs do) + fdatasync.
    pub fsync_overwrite: FsyncBaseline,
    /// Memory copy bandwidth.
    pub memcpy: MemcpySpeed,
    /// zstd at the level Talus' tables use under `--compression zstd`, on blocks of the run's own
    /// keys and values.
    pub zstd: ZstdSpeed,
    /// LZ4 on the same blocks.
    pub lz4: Lz4Speed,
    /// The 1-minute load average at the start.
    pub load_average_at_start: Option<f64>,
}

impl MachineLimits {
    /// Measures everything but the closing sequential write, each measurement for about
    /// `seconds` (zstd: four passes of that), in `dir`.
    pub fn measure(dir: &Path, keys: &KeySpace, seconds: Duration) -> Result<MachineLimits, BoxError> {
        let load_average_at_start = load_average();
        let first = seq_write(dir, seq_write_bytes(keys), "start")?;
        let record = usize::try_from(keys.record_bytes()).unwrap_or(usize::MAX);
        let fsync = fsync_append(dir, "start", record, seconds)?;
        let fsync_overwrite = fsync_overwrite(dir, "start", record, OVERWRITE_FILE_BYTES, seconds)?;
        let memcpy = memcpy_speed(MEMCPY_BYTES, seconds)?;
        let blocks = value_blocks(0, CODEC_BLOCKS, block_bytes(), keys.value_size());
        let zstd = zstd_speed(&blocks, crate::ZSTD_LEVEL, seconds)?;
        let lz4 = lz4_speed(&blocks, seconds)?;
        Ok(MachineLimits {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seq_write_mb_per_s: first.mb_per_s,
            seq_write: vec![first],
            fsync,
            fsync_overwrite,
            memcpy,
            zstd,
            lz4,
            load_average_at_start,
        })
    }

    /// The closing sequential write: disks drift, so the write limit is the mean of two.
    pub fn measure_end(&mut self, dir: &Path, keys: &KeySpace) -> Result<(), BoxError> {
        self.seq_write.push(seq_write(dir, seq_write_bytes(keys), "end")?);
        self.seq_write_mb_per_s = self.seq_write.iter().map(|s| s.mb_per_s).sum::<f64>() / self.seq_write.len() as f64;
        Ok(())
    }

    /// The better of the two fsync rates: what a log syncing once per write could reach.
    pub fn fsyncs_per_s(&self) -> f64 {
        self.fsync.fsyncs_per_s.max(self.fsync_overwrite.fsyncs_per_s)
    }

    /// Point reads per second if each read cost one block's decompression (with `compression`)
    /// and nothing else; `None` without compression.
    pub fn block_reads_per_s(&self, compression: Compression) -> Option<f64> {
        match compression {
            Compression::Zstd => Some(1e6 / self.zstd.decompress_block_us),
            Compression::Lz4 => Some(1e6 / self.lz4.decompress_block_us),
            Compression::None => None,
        }
    }

    /// The lines describing the limits, for the report.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .seq_write
            .iter()
            .map(|s| format!("sequential write {:.0} MB + fdatasync ({}): {:.0} MB/s", s.bytes as f64 / crate::MB, s.phase, s.mb_per_s))
            .collect();
        for f in [&self.fsync, &self.fsync_overwrite] {
            lines.push(format!(
                "{} {} B + fdatasync: {} syncs/s (p50 {:.0} µs, p99 {:.0} µs)",
                f.variant,
                f.write_bytes,
                crate::thousands(f.fsyncs_per_s),
                f.latency.p50_us,
                f.latency.p99_us
            ));
        }
        lines.push(format!("memory copy of {} MiB: {:.0} MB/s", self.memcpy.bytes >> 20, self.memcpy.mb_per_s));
        let z = &self.zstd;
        lines.push(format!(
            "zstd -{} on {} blocks of {:.0} B of the run's keys and values (ratio {:.2}): compress {:.0} MB/s, decompress {:.0} MB/s \
             ({:.2} µs a block)",
            z.level, z.blocks, z.mean_block_bytes, z.ratio, z.compress_mb_per_s, z.decompress_mb_per_s, z.decompress_block_us
        ));
        let l = &self.lz4;
        lines.push(format!(
            "LZ4 on the same blocks (ratio {:.2}): compress {:.0} MB/s, decompress {:.0} MB/s ({:.2} µs a block)",
            l.ratio, l.compress_mb_per_s, l.decompress_mb_per_s, l.decompress_block_us
        ));
        lines
    }
}

/// The size of the sequential write: the run's key and value bytes, within bounds.
fn seq_write_bytes(keys: &KeySpace) -> u64 {
    (keys.len() * keys.record_bytes()).clamp(SEQ_WRITE_BYTES.0, SEQ_WRITE_BYTES.1)
}

/// A workload's figure as a fraction of the machine limit that bounds it.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// What the limit is.
    pub name: String,
    /// The limit, in `unit`.
    pub value: f64,
    /// `MB/s` or `ops/s`.
    pub unit: &'static str,
    /// The workload's figure in the same unit ÷ the limit.
    pub fraction: f64,
}

/// The limit bounding `workload` with `ops_per_sec` and `mb_per_sec`, where one is meaningful:
/// writes against the sequential write bandwidth (or, when every write syncs, the better fsync
/// rate: one sync per write, as a single writer without group commit would need), a
/// full scan against decompression (or memory copy without compression), point reads and
/// seeks against one block decompression per operation (with compression).
pub fn limit_of(
    workload: Workload,
    ops_per_sec: f64,
    mb_per_sec: f64,
    machine: &MachineLimits,
    sync_writes: bool,
    compression: Compression,
) -> Option<Limit> {
    let limit = |name: String, value: f64, unit, figure: f64| Some(Limit { name, value, unit, fraction: figure / value });
    match workload {
        Workload::FillSeq | Workload::FillRandom | Workload::Overwrite if sync_writes => {
            limit("small write + fdatasync".into(), machine.fsyncs_per_s(), "ops/s", ops_per_sec)
        }
        Workload::FillSeq | Workload::FillRandom | Workload::Overwrite => {
            limit("sequential write + fdatasync".into(), machine.seq_write_mb_per_s, "MB/s", mb_per_sec)
        }
        Workload::ReadSeq => match compression {
            Compression::Zstd => {
                limit(format!("zstd -{} decompress", machine.zstd.level), machine.zstd.decompress_mb_per_s, "MB/s", mb_per_sec)
            }
            Compression::Lz4 => limit("LZ4 decompress".into(), machine.lz4.decompress_mb_per_s, "MB/s", mb_per_sec),
            Compression::None => limit("memory copy".into(), machine.memcpy.mb_per_s, "MB/s", mb_per_sec),
        },
        Workload::ReadRandom | Workload::SeekRandom => {
            limit("one block decompression per op".into(), machine.block_reads_per_s(compression)?, "ops/s", ops_per_sec)
        }
        _ => None,
    }
}
