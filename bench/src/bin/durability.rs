//! Durability benchmark: acknowledged writes per second of the engine under `Batch` durability
//! (group commit) with 1, 4 and 16 writer threads, next to the machine's own fsync rate measured in
//! the same run and directory, and the engine's `Periodic` throughput.
//!
//! Why: under `Batch` a write is acknowledged only once an `fdatasync` covered it, so an engine
//! that syncs once per write is capped at the machine's fsync rate. Group commit lets every writer
//! waiting at the same time share one sync; the ratio "acknowledged writes/s ÷ machine fsyncs/s"
//! says how well it does (the target: at least 20× with 16 writers).
//!
//! Measured, each for `--seconds` in a fresh directory under `--dir` (the system temporary
//! directory by default: put it on the file system you care about):
//!
//! 1. the machine, with `std::fs` directly (not the engine): append 4 KiB to a file and
//!    `fdatasync`, in a loop; and, as context, the overwrite variant: overwrite 4 KiB in a
//!    preallocated (zero-filled) file and `fdatasync`. The overwrite variant is what the commitlog
//!    does (it zero-fills its segments when it creates them); it needs no metadata update, so it is
//!    often faster than an append. Both are measured before and after the `Batch` runs, and the
//!    engine's ratios use the means: virtual disks drift, and the spread says how much.
//! 2. the engine under `Batch(--batch-window-us)` (default `Batch(0)`: sync as soon as the previous
//!    sync ends) with 1, 4 and 16 writer threads: each thread loops [`Engine::apply`] of one
//!    key-value put with a unique key. Counted: acknowledged writes and the latency of each
//!    acknowledgement; through `CountingFs`, a wrapper of the real file system, the file syncs the
//!    engine issued, the time spent in them, and the bytes written before each (so the writes
//!    each sync covered); the time from the end of a sync to the writers' acknowledgements; and
//!    the CPU time and context switches per write (from `/proc`).
//! 3. the engine under `Periodic(--periodic-ms)` (default 100 ms) with 1 and 4 writer threads: the
//!    same loop; writes are acknowledged at once.
//!
//! Output: progress and the diagnostics on stderr, a markdown table on stdout, and everything as
//! JSON at `--json` (default `target/reports/bench_durability.json`).
//!
//! Run: `cargo run --release -p talus-bench --bin durability -- [--seconds N] [--value-size B] [--dir PATH] [--json PATH]`.

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use talus::commitlog::{CommitlogOptions, Durability};
use talus::format::commitlog_segment::{encode_mutations_body, record_len};
use talus::format::{encode_mutation, Mutation, Schema};
use talus::fs::{DirLock, Fs, FsFile, OpenMode, RealFs};
use talus::{Engine, EngineOptions};
use talus_bench::machine::{fsync_append, fsync_overwrite, FsyncBaseline};
use talus_bench::{kv_put, kv_schema, nanos, Latency};

/// Errors that may cross a thread boundary.
type BoxError = Box<dyn Error + Send + Sync>;

/// Size of each write of the machine baseline.
const BLOCK: usize = 4096;
/// Size of the preallocated file of the overwrite baseline; its writes wrap around in it.
const PREALLOCATED: u64 = 64 << 20;
/// The done-when target: with this many writers under `Batch`...
const TARGET_THREADS: usize = 16;
/// ...acknowledged writes/s are at least this multiple of the machine's append-fsync rate.
const TARGET_RATIO: f64 = 20.0;

/// Acknowledged writes per second under Batch and Periodic durability, against the machine's fsync rate.
#[derive(Debug, Parser)]
#[command(name = "durability")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Value size of each write, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Directory to measure in; each measurement gets a fresh temporary directory inside it
    /// [default: the system temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path of the JSON report [default: target/reports/bench_durability.json in the workspace].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writer thread counts under Batch durability.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    batch_threads: Vec<usize>,
    /// Writer thread counts under Periodic durability.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    periodic_threads: Vec<usize>,
    /// Batch window in microseconds: writers arriving within it of the first pending one share a
    /// sync (0: sync as soon as the previous sync ends, the default mode).
    #[arg(long, default_value_t = 0)]
    batch_window_us: u64,
    /// Sync interval of Periodic durability, in milliseconds.
    #[arg(long, default_value_t = 100)]
    periodic_ms: u64,
}

/// A progress line on stderr.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[durability] {}", format_args!($($arg)*)) };
}

/// Measures both machine baselines in a fresh directory under `parent`.
fn measure_machine(parent: &Path, phase: &'static str, duration: Duration) -> io::Result<[FsyncBaseline; 2]> {
    let scratch = tempfile::Builder::new().prefix("talus-fsync-").tempdir_in(parent)?;
    let append = fsync_append(scratch.path(), phase, BLOCK, duration)?;
    progress!("machine ({phase}): append 4 KiB + fdatasync: {:.0} fsyncs/s (p50 {:.0} µs)", append.fsyncs_per_s, append.latency.p50_us);
    let overwrite = fsync_overwrite(scratch.path(), phase, BLOCK, PREALLOCATED, duration)?;
    progress!(
        "machine ({phase}): overwrite 4 KiB + fdatasync: {:.0} fsyncs/s (p50 {:.0} µs)",
        overwrite.fsyncs_per_s,
        overwrite.latency.p50_us
    );
    scratch.close()?;
    Ok([append, overwrite])
}

/// Sync counters shared by a [`CountingFs`] and its files.
#[derive(Debug)]
struct SyncCounters {
    /// The origin of `last_sync_end`.
    epoch: Instant,
    /// When the last file sync returned, nanoseconds since `epoch`.
    last_sync_end: AtomicU64,
    /// File syncs (`fdatasync`) completed.
    file_syncs: AtomicU64,
    /// Time spent in them, nanoseconds.
    file_sync_nanos: AtomicU64,
    /// Directory syncs completed.
    dir_syncs: AtomicU64,
    /// Bytes written to files.
    bytes_written: AtomicU64,
    /// Bytes written since the last file sync.
    unsynced_bytes: AtomicU64,
    /// For each file sync, the bytes written since the one before: the size of a sync group.
    group_bytes: Mutex<Vec<u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct SyncSnapshot {
    file_syncs: u64,
    file_sync_nanos: u64,
    dir_syncs: u64,
    bytes_written: u64,
    groups: usize,
}

impl Default for SyncCounters {
    fn default() -> Self {
        SyncCounters {
            epoch: Instant::now(),
            last_sync_end: AtomicU64::new(0),
            file_syncs: AtomicU64::new(0),
            file_sync_nanos: AtomicU64::new(0),
            dir_syncs: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            unsynced_bytes: AtomicU64::new(0),
            group_bytes: Mutex::new(Vec::new()),
        }
    }
}

impl SyncCounters {
    /// Nanoseconds from the end of the last file sync to now.
    fn since_last_sync(&self) -> u64 {
        nanos(self.epoch.elapsed()).saturating_sub(self.last_sync_end.load(Ordering::Relaxed))
    }

    /// The counters now.
    fn snapshot(&self) -> SyncSnapshot {
        SyncSnapshot {
            file_syncs: self.file_syncs.load(Ordering::Relaxed),
            file_sync_nanos: self.file_sync_nanos.load(Ordering::Relaxed),
            dir_syncs: self.dir_syncs.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            groups: self.group_bytes.lock().map_or(0, |g| g.len()),
        }
    }

    /// The sync group sizes in bytes recorded from index `from` on.
    fn groups_since(&self, from: usize) -> Vec<u64> {
        self.group_bytes.lock().map(|g| g.get(from..).unwrap_or_default().to_vec()).unwrap_or_default()
    }
}

impl std::ops::Sub for SyncSnapshot {
    type Output = SyncSnapshot;

    fn sub(self, earlier: SyncSnapshot) -> SyncSnapshot {
        SyncSnapshot {
            file_syncs: self.file_syncs - earlier.file_syncs,
            file_sync_nanos: self.file_sync_nanos - earlier.file_sync_nanos,
            dir_syncs: self.dir_syncs - earlier.dir_syncs,
            bytes_written: self.bytes_written - earlier.bytes_written,
            groups: self.groups - earlier.groups,
        }
    }
}

/// The real file system, counting and timing the syncs the engine issues.
#[derive(Debug, Default)]
struct CountingFs {
    counters: Arc<SyncCounters>,
}

/// A real file whose syncs and writes are counted.
#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn FsFile>,
    counters: Arc<SyncCounters>,
}

impl FsFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let n = self.inner.write_at(buf, offset)?;
        self.counters.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        self.counters.unsynced_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn sync(&self) -> io::Result<()> {
        let start = Instant::now();
        self.inner.sync()?;
        let end = Instant::now();
        self.counters.last_sync_end.store(nanos(end.duration_since(self.counters.epoch)), Ordering::Relaxed);
        self.counters.file_sync_nanos.fetch_add(nanos(end.duration_since(start)), Ordering::Relaxed);
        self.counters.file_syncs.fetch_add(1, Ordering::Relaxed);
        let group = self.counters.unsynced_bytes.swap(0, Ordering::Relaxed);
        if let Ok(mut groups) = self.counters.group_bytes.lock() {
            groups.push(group);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Fs for CountingFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(CountingFile { inner: RealFs.open(path, mode)?, counters: self.counters.clone() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)?;
        self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        RealFs.lock_dir(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        RealFs.exists(path)
    }
}

/// One engine measurement.
#[derive(Debug, Clone, Serialize)]
struct EngineRun {
    /// The durability mode, e.g. `Batch(0)` or `Periodic(100 ms)`.
    durability: String,
    /// Writer threads.
    threads: usize,
    /// Acknowledged writes.
    writes: u64,
    /// Wall time from the start until the last writer stopped.
    seconds: f64,
    /// Acknowledged writes per second.
    writes_per_s: f64,
    /// `writes_per_s` ÷ the machine's append-fsync rate (mean of before and after).
    ratio_to_append_fsync: f64,
    /// `writes_per_s` ÷ the machine's overwrite-fsync rate (mean of before and after).
    ratio_to_overwrite_fsync: f64,
    /// Latency of `Engine::apply` (until acknowledged).
    latency: Latency,
    /// Under `Batch`: time from the end of the last file sync to the return of `Engine::apply`,
    /// i.e. how long the engine takes to hand a sync's acknowledgement to its writers (wake-up,
    /// lock hand-over, memtable insert). Values above one sync duration cannot be seen (a later
    /// sync ends first), so the upper tail is cut off there.
    ack_after_sync: Option<Latency>,
    /// File syncs the engine issued during the measurement.
    file_syncs: u64,
    /// File syncs per second.
    file_syncs_per_s: f64,
    /// Acknowledged writes per file sync (the mean group-commit batch).
    writes_per_sync: f64,
    /// Distribution of the writes each sync covered, estimated from the bytes written before it
    /// (÷ the commitlog record size of one write); syncs of new segment files are left out. Only
    /// under `Batch`, where every write is followed by a sync.
    sync_group: Option<GroupSizes>,
    /// CPU time of this process (all threads, user + system) ÷ wall time: cores kept busy.
    cpu_cores: Option<f64>,
    /// CPU time of this process per acknowledged write, microseconds.
    cpu_us_per_write: Option<f64>,
    /// Context switches of the whole machine (`ctxt` of `/proc/stat`) per acknowledged write;
    /// includes other processes' switches.
    context_switches_per_write: Option<f64>,
    /// Mean duration of one engine file sync, microseconds.
    mean_sync_us: f64,
    /// Share of the wall time the engine spent inside file syncs (the sync thread's duty cycle).
    sync_busy: f64,
    /// Directory syncs the engine issued during the measurement (segment creation).
    dir_syncs: u64,
    /// Bytes the engine wrote to files during the measurement.
    bytes_written: u64,
}

/// Distribution of sync group sizes, in writes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct GroupSizes {
    /// Commitlog record size of one write, the unit of the estimate.
    record_bytes: usize,
    /// 10th percentile.
    p10: f64,
    /// Median.
    p50: f64,
    /// 90th percentile.
    p90: f64,
    /// Largest.
    max: f64,
}

impl GroupSizes {
    /// The distribution of `groups` (bytes written before each sync) in records of `record_bytes`;
    /// groups of a megabyte or more (a new segment's zero fill) are left out.
    fn of(groups: &[u64], record_bytes: usize) -> GroupSizes {
        let mut writes: Vec<f64> = groups.iter().filter(|&&b| b > 0 && b < 1 << 20).map(|&b| b as f64 / record_bytes as f64).collect();
        writes.sort_unstable_by(f64::total_cmp);
        let at = |q: f64| match writes.len() {
            0 => 0.0,
            n => writes[((n - 1) as f64 * q).round() as usize],
        };
        GroupSizes { record_bytes, p10: at(0.1), p50: at(0.5), p90: at(0.9), max: at(1.0) }
    }
}

/// Size of the commitlog record the engine appends for `mutation` alone.
fn record_bytes(mutation: &Mutation) -> usize {
    let mut encoded = Vec::new();
    encode_mutation(mutation, &mut encoded);
    let mut body = Vec::new();
    encode_mutations_body([encoded.as_slice()], &mut body);
    record_len(body.len())
}

/// What one writer thread did.
#[derive(Debug)]
struct WriterResult {
    writes: u64,
    latencies: Vec<u64>,
    /// Per write, nanoseconds from the end of the last engine sync to the acknowledgement.
    after_sync: Vec<u64>,
    finished: Instant,
}

/// Bits of a key index below the writer thread's number, so every write has a unique key.
const THREAD_SHIFT: u32 = 40;

/// One writer: after `start`, applies puts with keys of its own for `duration`, timing each.
fn writer(
    engine: &Engine,
    counters: &SyncCounters,
    schema: &Schema,
    thread: u64,
    value: &[u8],
    start: &Barrier,
    duration: Duration,
) -> Result<WriterResult, BoxError> {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut after_sync = Vec::with_capacity(1 << 16);
    start.wait();
    let begin = Instant::now();
    let mut i = 0;
    while begin.elapsed() < duration {
        let mutation = kv_put(schema, (thread << THREAD_SHIFT) | i, value)?;
        let t = Instant::now();
        engine.apply(&mutation)?;
        latencies.push(nanos(t.elapsed()));
        after_sync.push(counters.since_last_sync());
        i += 1;
    }
    Ok(WriterResult { writes: i, latencies, after_sync, finished: Instant::now() })
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`; `None` where
/// that file is not there.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name start with field 3 (state); utime and stime are
    // fields 14 and 15, in USER_HZ ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Context switches of the whole machine since boot, from `/proc/stat`.
fn machine_context_switches() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("ctxt "))?.trim().parse().ok()
}

/// Machine baselines the engine's rates are compared with: the means of the measurements before
/// and after the engine's.
#[derive(Debug, Clone, Copy, Serialize)]
struct Baselines {
    /// Append 4 KiB + fdatasync rounds per second.
    append_per_s: f64,
    /// Overwrite 4 KiB + fdatasync rounds per second.
    overwrite_per_s: f64,
    /// How far apart the before and after append rates are, relative to their mean: the ratios
    /// are uncertain by about this much.
    append_spread: f64,
}

impl Baselines {
    /// The means of `machine`'s measurements per variant.
    fn of(machine: &[FsyncBaseline]) -> Baselines {
        let rates = |variant: &str| machine.iter().filter(|m| m.variant == variant).map(|m| m.fsyncs_per_s).collect::<Vec<_>>();
        let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
        let (append, overwrite) = (rates("append"), rates("overwrite"));
        let spread = (append.iter().copied().fold(f64::MIN, f64::max) - append.iter().copied().fold(f64::MAX, f64::min)) / mean(&append);
        Baselines { append_per_s: mean(&append), overwrite_per_s: mean(&overwrite), append_spread: spread }
    }
}

/// The name of a durability mode in the report.
fn describe(durability: Durability) -> String {
    match durability {
        Durability::Batch(window) if window.is_zero() => "Batch(0)".to_string(),
        Durability::Batch(window) => format!("Batch({} µs)", window.as_micros()),
        Durability::Periodic(interval) => format!("Periodic({} ms)", interval.as_millis()),
    }
}

/// Opens a fresh engine under `parent` with `durability`, runs `threads` writers for `duration`,
/// then drops the engine and removes its directory.
fn run_engine(parent: &Path, commitlog: CommitlogOptions, threads: usize, value: &[u8], duration: Duration) -> Result<EngineRun, BoxError> {
    let durability = commitlog.durability;
    let dir = tempfile::Builder::new().prefix("talus-durability-").tempdir_in(parent)?;
    let fs = CountingFs::default();
    let counters = fs.counters.clone();
    let options = EngineOptions { commitlog, ..EngineOptions::default() };
    let engine = Engine::open_with_fs(Arc::new(fs), dir.path(), options)?;
    let schema = kv_schema();
    engine.create_table(schema.clone())?;
    // Warm-up: the first write makes the sync thread create (zero-fill and sync) the first
    // segment, which is not what is measured. Its key is outside every writer's range.
    let warm_up = kv_put(&schema, (threads as u64) << THREAD_SHIFT, value)?;
    engine.apply(&warm_up)?;
    engine.sync()?;

    let start = Barrier::new(threads + 1);
    let before = counters.snapshot();
    let (cpu_before, ctxt_before) = (process_cpu_seconds(), machine_context_switches());
    let (began, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (engine, counters, schema, start) = (&engine, &*counters, &schema, &start);
                s.spawn(move || writer(engine, counters, schema, t as u64, value, start, duration))
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let results: Vec<Result<WriterResult, BoxError>> =
            handles.into_iter().map(|h| h.join().map_err(|_| BoxError::from("a writer thread panicked")).and_then(|r| r)).collect();
        (began, results)
    });
    let during = counters.snapshot() - before;
    let cpu = process_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let ctxt = machine_context_switches().zip(ctxt_before).map(|(after, before)| after.saturating_sub(before));
    let is_batch = matches!(durability, Durability::Batch(_));
    let sync_group = is_batch.then(|| GroupSizes::of(&counters.groups_since(before.groups), record_bytes(&warm_up)));
    drop(engine);
    dir.close()?;

    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let writes: u64 = results.iter().map(|r| r.writes).sum();
    let finished = results.iter().map(|r| r.finished).max().unwrap_or(began);
    let seconds = finished.duration_since(began).as_secs_f64();
    let mut after_sync: Vec<u64> = results.iter().flat_map(|r| r.after_sync.iter().copied()).collect();
    let ack_after_sync = is_batch.then(|| Latency::of(&mut after_sync));
    let mut latencies: Vec<u64> = results.into_iter().flat_map(|r| r.latencies).collect();
    let writes_per_s = writes as f64 / seconds;
    let syncs = during.file_syncs;
    Ok(EngineRun {
        durability: describe(durability),
        threads,
        writes,
        seconds,
        writes_per_s,
        // Filled in once the machine was measured again after the engine.
        ratio_to_append_fsync: f64::NAN,
        ratio_to_overwrite_fsync: f64::NAN,
        latency: Latency::of(&mut latencies),
        ack_after_sync,
        file_syncs: syncs,
        file_syncs_per_s: syncs as f64 / seconds,
        writes_per_sync: if syncs == 0 { 0.0 } else { writes as f64 / syncs as f64 },
        sync_group,
        cpu_cores: cpu.map(|c| c / seconds),
        cpu_us_per_write: cpu.map(|c| c * 1e6 / writes.max(1) as f64),
        context_switches_per_write: ctxt.map(|c| c as f64 / writes.max(1) as f64),
        mean_sync_us: if syncs == 0 { 0.0 } else { during.file_sync_nanos as f64 / syncs as f64 / 1e3 },
        sync_busy: during.file_sync_nanos as f64 / 1e9 / seconds,
        dir_syncs: during.dir_syncs,
        bytes_written: during.bytes_written,
    })
}

/// The done-when check: 16 writers under `Batch` against the append-fsync rate.
#[derive(Debug, Clone, Serialize)]
struct Target {
    /// The durability mode measured.
    durability: String,
    /// Writer threads the target is about.
    threads: usize,
    /// The required ratio of acknowledged writes/s to append fsyncs/s.
    min_ratio: f64,
    /// The measured ratio (absent if that configuration was not run).
    ratio: Option<f64>,
    /// Whether the target is met (absent if not run).
    met: Option<bool>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    /// The benchmark's name.
    benchmark: &'static str,
    /// Seconds per measurement.
    seconds_per_measurement: f64,
    /// Value size of each write, bytes.
    value_size: usize,
    /// Directory the measurements ran in.
    dir: String,
    /// The machine's fsync rates, before and after the engine's measurements.
    machine: Vec<FsyncBaseline>,
    /// The rates the engine's are compared with.
    baselines: Baselines,
    /// The engine's rates.
    engine: Vec<EngineRun>,
    /// The done-when check.
    target: Target,
}

/// The default report path: `$CARGO_TARGET_DIR/reports`, or `target/reports` of the workspace.
fn default_json_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target"));
    target.join("reports").join("bench_durability.json")
}

/// The markdown table of the report.
fn markdown(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("| measurement | threads | acked writes/s (or fsyncs/s) | × append fsync | × overwrite fsync | p50 µs | p99 µs | syncs/s | writes/sync | mean sync µs |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let (append, overwrite) = (report.baselines.append_per_s, report.baselines.overwrite_per_s);
    for m in &report.machine {
        out.push_str(&format!(
            "| machine ({}): {} 4 KiB + fdatasync | 1 | {:.0} | {:.2}× | {:.2}× | {:.0} | {:.0} | {:.0} | 1 | {:.0} |\n",
            m.phase,
            m.variant,
            m.fsyncs_per_s,
            m.fsyncs_per_s / append,
            m.fsyncs_per_s / overwrite,
            m.latency.p50_us,
            m.latency.p99_us,
            m.fsyncs_per_s,
            m.latency.mean_us,
        ));
    }
    for r in &report.engine {
        out.push_str(&format!(
            "| talus {} | {} | {:.0} | {:.1}× | {:.1}× | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} |\n",
            r.durability,
            r.threads,
            r.writes_per_s,
            r.ratio_to_append_fsync,
            r.ratio_to_overwrite_fsync,
            r.latency.p50_us,
            r.latency.p99_us,
            r.file_syncs_per_s,
            r.writes_per_sync,
            r.mean_sync_us,
        ));
    }
    out.push_str(&format!(
        "\nRatios are against the mean machine rates: {append:.0} append fsyncs/s and {overwrite:.0} overwrite fsyncs/s; the append rate \
         measured before and after differs by {:.0}% of its mean.\n",
        report.baselines.append_spread * 100.0
    ));
    let t = &report.target;
    match (t.ratio, t.met) {
        (Some(ratio), Some(met)) => out.push_str(&format!(
            "Target: {} writers under {} acknowledge {ratio:.1}× the machine's append-fsync rate (required ≥ {:.0}×): {}.\n",
            t.threads,
            t.durability,
            t.min_ratio,
            if met { "met" } else { "NOT met" },
        )),
        _ => out.push_str(&format!("Target: not checked ({} writers under {} were not run).\n", t.threads, t.durability)),
    }
    out
}

/// [`run_engine`] with a progress line of the result and its diagnostics; the ratio shown there is
/// to `before`, the machine's rates measured before the engine's.
fn run_and_report(
    parent: &Path,
    commitlog: CommitlogOptions,
    threads: usize,
    value: &[u8],
    duration: Duration,
    before: &Baselines,
) -> Result<EngineRun, Box<dyn Error>> {
    let run = run_engine(parent, commitlog, threads, value, duration).map_err(|e| e as Box<dyn Error>)?;
    progress!(
        "talus {} × {} writers: {:.0} acked writes/s ({:.1}× the append fsync rate before), {:.1} writes/sync{}, mean sync {:.0} µs, \
         sync busy {:.0}%, p99 ack {:.0} µs{}, CPU {:.2} cores = {:.1} µs/write, {:.1} context switches/write",
        run.durability,
        threads,
        run.writes_per_s,
        run.writes_per_s / before.append_per_s,
        run.writes_per_sync,
        run.sync_group.map(|g| format!(" (p10/p50/p90 {:.0}/{:.0}/{:.0})", g.p10, g.p50, g.p90)).unwrap_or_default(),
        run.mean_sync_us,
        run.sync_busy * 100.0,
        run.latency.p99_us,
        run.ack_after_sync
            .map(|a| format!(" (sync end → ack p50/p90/max {:.0}/{:.0}/{:.0} µs)", a.p50_us, a.p90_us, a.max_us))
            .unwrap_or_default(),
        run.cpu_cores.unwrap_or(f64::NAN),
        run.cpu_us_per_write.unwrap_or(f64::NAN),
        run.context_switches_per_write.unwrap_or(f64::NAN),
    );
    Ok(run)
}

/// Measures the machine, the engine under `Batch`, the machine again and the engine under `Periodic`;
/// prints and writes the report.
fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let duration = Duration::try_from_secs_f64(args.seconds).map_err(|e| format!("--seconds {}: {e}", args.seconds))?;
    if duration.is_zero() {
        return Err("--seconds must be above zero".into());
    }
    if args.batch_threads.iter().chain(&args.periodic_threads).any(|&t| t == 0) {
        return Err("thread counts must be above zero".into());
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let value = vec![0x42_u8; args.value_size];
    progress!("measuring in {} for {:.1} s per measurement, {}-byte values", parent.display(), args.seconds, args.value_size);

    let mut machine = Vec::from(measure_machine(&parent, "before", duration)?);
    let before = Baselines::of(&machine);

    let batch = Durability::Batch(Duration::from_micros(args.batch_window_us));
    let periodic = Durability::Periodic(Duration::from_millis(args.periodic_ms));
    let options = |durability| CommitlogOptions { durability, ..CommitlogOptions::default() };
    let mut engine = Vec::new();
    for &threads in &args.batch_threads {
        engine.push(run_and_report(&parent, options(batch), threads, &value, duration, &before)?);
    }
    // The machine is measured again right after the Batch runs, which the ratios are about: the
    // Periodic runs write (and then delete) hundreds of megabytes, whose writeback and discard
    // slow the fsyncs measured right after them.
    machine.extend(measure_machine(&parent, "after", duration)?);
    for &threads in &args.periodic_threads {
        engine.push(run_and_report(&parent, options(periodic), threads, &value, duration, &before)?);
    }
    let baselines = Baselines::of(&machine);
    for run in &mut engine {
        run.ratio_to_append_fsync = run.writes_per_s / baselines.append_per_s;
        run.ratio_to_overwrite_fsync = run.writes_per_s / baselines.overwrite_per_s;
    }

    let batch = describe(batch);
    let ratio = engine.iter().find(|r| r.threads == TARGET_THREADS && r.durability == batch).map(|r| r.ratio_to_append_fsync);
    if baselines.append_spread > 0.25 {
        progress!(
            "warning: the append fsync rate moved by {:.0}% between before and after; the ratios are that uncertain",
            baselines.append_spread * 100.0
        );
    }
    let target =
        Target { durability: batch, threads: TARGET_THREADS, min_ratio: TARGET_RATIO, ratio, met: ratio.map(|r| r >= TARGET_RATIO) };
    let report = Report {
        benchmark: "durability",
        seconds_per_measurement: args.seconds,
        value_size: args.value_size,
        dir: parent.display().to_string(),
        machine,
        baselines,
        engine,
        target,
    };
    print!("{}", markdown(&report));

    let json = args.json.clone().unwrap_or_else(default_json_path);
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
    progress!("report written to {}", json.display());
    Ok(())
}
