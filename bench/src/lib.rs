//! `talus-bench`: benchmarks of Talus. The criterion benches in `benches/` cover the hot loops;
//! the `talus-bench` binary ([`harness`]) runs the macro workloads on Talus and its peers side by
//! side, next to the machine's own limits ([`machine`]).
//!
//! This library holds the workload setup and the measurement helpers shared by the benches.

pub mod allocator;
pub mod batchlog_demo;
pub mod chart;
pub mod cli;
pub mod harness;
pub mod machine;
pub mod peers;
pub mod progress;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use talus::format::schema::{Compression, TableOptions};
use talus::format::{ColumnType, Fragment, GcTime, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::memtable_reader::PartitionReader;
use talus::{Memtable, Slice};

/// The key-value shape: partition key = key, one clustering row, one cell; default options.
pub fn kv_schema() -> SchemaRef {
    kv_schema_with(TableOptions::default().compression)
}

/// zstd's default level (R4.17).
pub const ZSTD_LEVEL: i32 = 3;

/// zstd at its default level (R4.17): the compression of the benchmarks that compare the engine
/// with the machine's zstd speed.
pub const ZSTD: Compression = Compression::Zstd { level: ZSTD_LEVEL };

/// [`kv_schema`] with `compression`.
pub fn kv_schema_with(compression: Compression) -> SchemaRef {
    // Building a fixed, valid schema cannot fail.
    #[allow(clippy::expect_used)]
    kv_table("kv", TableOptions { compression, ..TableOptions::default() }).expect("valid schema")
}

/// The key-value shape of [`kv_schema`] as table `bench.<name>` with `options`.
pub fn kv_table(name: &str, options: TableOptions) -> talus::format::Result<SchemaRef> {
    Schema::builder("bench", name).partition_key("k", ColumnType::Blob).regular("v", ColumnType::Blob).options(options).build()
}

/// A 16-byte key from `i`, spread over the ring.
pub fn key(i: u64) -> Vec<u8> {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k.to_vec()
}

/// The mutation writing `value` under key `i` in the key-value shape.
pub fn kv_put(schema: &Schema, i: u64, value: &[u8]) -> talus::format::Result<Mutation> {
    Mutation::builder(schema, &[Value::Blob(key(i).into())])
        .now(GcTime(1))
        .set(&[], "v", Value::Blob(value.to_vec().into()), Timestamp(i as i64 + 1))
        .build()
}

/// The fragments of `mutations` as the engine reads them back from a memtable: every partition
/// in ring order, each from its start to its end (for benchmarks of the fragment consumers).
pub fn fragments_of(mutations: &[Mutation]) -> Vec<Fragment> {
    let memtable = Memtable::new();
    for mutation in mutations {
        memtable.apply(mutation);
    }
    let slice = Arc::new(Slice::full());
    memtable.partitions_in(..).flat_map(|(key, version)| PartitionReader::new(key, version, slice.clone())).collect()
}

/// Latency distribution of a measurement, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst case.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// The distribution of `nanos` (sorted in place).
    pub fn of(nanos: &mut [u64]) -> Latency {
        nanos.sort_unstable();
        let at = |q: f64| match nanos.len() {
            0 => 0.0,
            n => nanos[((n - 1) as f64 * q).round() as usize] as f64 / 1e3,
        };
        let mean = if nanos.is_empty() { 0.0 } else { nanos.iter().map(|&n| n as f64).sum::<f64>() / nanos.len() as f64 / 1e3 };
        Latency { p50_us: at(0.5), p90_us: at(0.9), p99_us: at(0.99), max_us: at(1.0), mean_us: mean }
    }
}

/// Nanoseconds of `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Errors that may cross a thread boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes per MB in the reported rates.
pub const MB: f64 = 1e6;

/// Other processes keeping more cores than this busy during a measurement are called out.
pub const CONTENTION_CORES: f64 = 0.2;

/// SplitMix64: a small deterministic generator for keys and values.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, with 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0), with a negligible bias.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The value of row `i`: the first half random (printable), the rest a repeat of it, so zstd has
/// something to do.
pub fn value(i: u64, size: usize) -> Vec<u8> {
    let mut rng = SplitMix(i ^ 0x5EED);
    let half = size.div_ceil(2);
    let mut v: Vec<u8> = (0..half).map(|_| b' ' + (rng.next_u64() % 95) as u8).collect();
    while v.len() < size {
        let take = (size - v.len()).min(half);
        v.extend_from_within(..take);
    }
    v
}

/// The workspace's target directory (`$CARGO_TARGET_DIR` or `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target"))
}

/// CPU time of the whole machine and of this process, in clock ticks (100 per second on Linux).
#[derive(Debug, Clone, Copy)]
pub struct CpuTicks {
    /// Ticks any CPU spent on user, nice, system, irq and softirq work.
    busy: u64,
    /// Ticks this process spent (user + system, all threads).
    own: u64,
    /// When.
    at: Instant,
}

/// The CPU time now, from `/proc`; `None` where it is not there.
pub fn cpu_ticks() -> Option<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = fields.first()? + fields.get(1)? + fields.get(2)? + fields.get(5)? + fields.get(6)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let own: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| own.get(i)?.parse::<u64>().ok();
    Some(CpuTicks { busy, own: ticks(11)? + ticks(12)?, at: Instant::now() })
}

/// Cores that other processes kept busy, on average, since `before`.
pub fn other_cores(before: Option<CpuTicks>) -> Option<f64> {
    let (before, after) = (before?, cpu_ticks()?);
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let others = (after.busy - before.busy).saturating_sub(after.own - before.own);
    (seconds > 0.0).then(|| others as f64 / 100.0 / seconds)
}

/// CPU seconds this process (all its threads) spent since `before`.
pub fn own_cpu_seconds(before: Option<CpuTicks>) -> Option<f64> {
    let (before, after) = (before?, cpu_ticks()?);
    Some((after.own - before.own) as f64 / 100.0)
}

/// The closing note of a run during which other processes kept more than [`CONTENTION_CORES`]
/// busy on average.
pub fn run_contention_note(other_cores: Option<f64>, cores: usize) -> Option<String> {
    let c = other_cores.filter(|&c| c > CONTENTION_CORES)?;
    Some(format!(
        "note: other processes kept {c:.2} cores busy on average during the run ({cores} cores): CPU-bound results are low and noisy"
    ))
}

/// The suffix marking a measurement during which other processes used the CPU.
pub fn contention(other_cores: Option<f64>) -> String {
    match other_cores {
        Some(c) if c > CONTENTION_CORES => format!(" [other processes busy on {c:.2} cores meanwhile]"),
        _ => String::new(),
    }
}

/// A mark after a result measured while other processes used the CPU.
pub fn mark(other_cores: Option<f64>) -> &'static str {
    if other_cores.is_some_and(|c| c > CONTENTION_CORES) {
        " ‡"
    } else {
        ""
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// A rate with thousands separators.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs `pass` (which returns the bytes it processed) until at least `min` elapsed; returns MB/s
/// and the mean seconds per pass.
pub fn timed_passes(min: Duration, mut pass: impl FnMut() -> Result<u64, BoxError>) -> Result<(f64, f64), BoxError> {
    let start = Instant::now();
    let (mut bytes, mut passes) = (0u64, 0u32);
    while passes == 0 || start.elapsed() < min {
        bytes += pass()?;
        passes += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((bytes as f64 / MB / seconds, seconds / f64::from(passes)))
}

/// A warning of a benchmark: printed on stderr and pushed onto `$warnings` for the report.
#[macro_export]
macro_rules! warning {
    ($warnings:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        eprintln!("WARNING: {line}");
        $warnings.push(line);
    }};
}
