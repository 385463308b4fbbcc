//! The `talus-bench` harness: db_bench-style workloads on Talus (both shapes) and its peers in
//! one run, through the one adapter trait [`KvPeer`], next to the machine's limits.
//!
//! A run ([`run`]) measures the machine ([`MachineLimits`]), then, `repeat` times, each engine in
//! turn (so drift spreads over all of them), each in a fresh directory:
//!
//! 1. `fillseq`: every key written once in ascending key order into an empty store;
//! 2. in a second empty store: `fillrandom` (every key once, in a seeded random order),
//!    `overwrite` (every key again, in another random order, with other values), a flush (not
//!    timed), `readrandom` (point reads of random written keys), `readmissing` (of keys never
//!    written), `readseq` (one full scan), `seekrandom` (seek to a random key, read
//!    [`workloads::SEEK_ROWS`] rows), `ycsb-a` and `ycsb-b` (`threads` threads for the mixed
//!    duration, 50% and 95% reads, the rest updates), `deleterange` (every key deleted: one range
//!    delete where the engine has them, a point delete per key otherwise) and `deleterange-scan`
//!    (a full scan right after, which finds nothing);
//! 3. in a third empty store: the batchlog pattern ([`run_batchlog_pattern`]), layout v1 on every
//!    engine (`batchlog-v1`) and v2 on those with range deletes (`batchlog-v2`).
//!
//! The fills, reads and seeks run on one thread, each operation timed. Workloads left out by the
//! filter are not reported, but `fillrandom` still fills the store when a later workload needs
//! it. Each workload's figure is the median repetition's; min and max are kept.

pub mod charts;
pub mod keys;
pub mod limits;
pub mod measure;
pub mod mixed;
pub mod report;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::keys::{shuffled, KeySpace};
pub use self::limits::MachineLimits;
use self::measure::Sample;
use self::mixed::{ycsb, Mix};
pub use self::report::{write_reports, Record, Report, Written};
use crate::peers::batchlog::{run_batchlog_pattern, BatchlogPatternConfig, Layout, SPACES};
use crate::peers::{Compression, KvPeer, PeerKind, PeerOptions};
use crate::progress::Progress;
use crate::{cpu_ticks, other_cores, BoxError};

/// A measured workload (see the module docs for what each does and counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Writes in ascending key order into an empty store.
    FillSeq,
    /// Writes in random order into an empty store.
    FillRandom,
    /// Writes of every key again, in random order.
    Overwrite,
    /// Point reads of written keys.
    ReadRandom,
    /// Point reads of keys never written.
    ReadMissing,
    /// One full scan; ops are rows.
    ReadSeq,
    /// Seek and read [`workloads::SEEK_ROWS`] rows.
    SeekRandom,
    /// Deleting every key; ops are keys deleted.
    DeleteRange,
    /// A full scan after deleting every key; ops are deleted keys passed over.
    DeleteRangeScan,
    /// 50% reads, 50% updates, several threads.
    YcsbA,
    /// 95% reads, 5% updates, several threads.
    YcsbB,
    /// The batchlog pattern, layout v1; ops are batches over the whole pattern.
    BatchlogV1,
    /// The batchlog pattern, layout v2 (engines with range deletes).
    BatchlogV2,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 13] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::ReadRandom,
        Workload::ReadMissing,
        Workload::ReadSeq,
        Workload::SeekRandom,
        Workload::DeleteRange,
        Workload::DeleteRangeScan,
        Workload::YcsbA,
        Workload::YcsbB,
        Workload::BatchlogV1,
        Workload::BatchlogV2,
    ];

    /// The name in reports and in `--workloads`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::ReadRandom => "readrandom",
            Workload::ReadMissing => "readmissing",
            Workload::ReadSeq => "readseq",
            Workload::SeekRandom => "seekrandom",
            Workload::DeleteRange => "deleterange",
            Workload::DeleteRangeScan => "deleterange-scan",
            Workload::YcsbA => "ycsb-a",
            Workload::YcsbB => "ycsb-b",
            Workload::BatchlogV1 => "batchlog-v1",
            Workload::BatchlogV2 => "batchlog-v2",
        }
    }

    /// What one operation of the workload is.
    pub fn op(self) -> &'static str {
        match self {
            Workload::FillSeq | Workload::FillRandom | Workload::Overwrite => "write",
            Workload::ReadRandom | Workload::ReadMissing => "point read",
            Workload::ReadSeq => "row scanned",
            Workload::SeekRandom => "seek + 10 rows",
            Workload::DeleteRange => "key deleted",
            Workload::DeleteRangeScan => "deleted key passed over",
            Workload::YcsbA | Workload::YcsbB => "read or update",
            Workload::BatchlogV1 | Workload::BatchlogV2 => "batch (whole pattern)",
        }
    }

    /// Whether `kind` can run the workload (v2 of the batchlog needs range deletes).
    pub fn applies_to(self, kind: PeerKind) -> bool {
        self != Workload::BatchlogV2 || kind.supports_delete_range()
    }

    /// The workloads a `--workloads` name selects: a workload's name, or `deleterange`,
    /// `ycsb` and `batchlog` for both of theirs.
    pub fn parse_filter(name: &str) -> Result<Vec<Workload>, BoxError> {
        let name = name.trim().to_ascii_lowercase();
        let selected: Vec<Workload> = match name.as_str() {
            "deleterange" => vec![Workload::DeleteRange, Workload::DeleteRangeScan],
            "ycsb" => vec![Workload::YcsbA, Workload::YcsbB],
            "batchlog" => vec![Workload::BatchlogV1, Workload::BatchlogV2],
            _ => Workload::ALL.into_iter().filter(|w| w.name() == name).collect(),
        };
        if selected.is_empty() {
            let known: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
            return Err(format!("unknown workload {name:?}; known: {}, ycsb, batchlog", known.join(", ")).into());
        }
        Ok(selected)
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run does; [`Config::validate`] checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Keys written (default 2^20).
    pub keys: u64,
    /// Key size, bytes (default 16; at least 8).
    pub key_size: usize,
    /// Value size, bytes (default 100).
    pub value_size: usize,
    /// Threads of the mixed runs (default 2).
    pub threads: usize,
    /// Whether every write is synced (`--durability batch`) or not (`periodic`, the default).
    pub sync_writes: bool,
    /// Block compression (default LZ4, Talus' default; see `PeerOptions::compression`).
    pub compression: Compression,
    /// How long each mixed run lasts (default 10 s).
    pub mixed_duration: Duration,
    /// Repetitions (default 3).
    pub repeat: usize,
    /// The engines, in run order (default: every one compiled in).
    pub engines: Vec<PeerKind>,
    /// The workloads reported (default: all).
    pub workloads: Vec<Workload>,
    /// Point reads per read workload (default: `keys`).
    pub reads: u64,
    /// Seeks of `seekrandom` (default: `keys / 8`).
    pub seeks: u64,
    /// Batches of the batchlog pattern (default 20,000).
    pub batchlog_batches: u64,
    /// How long each machine limit is measured (default 1 s).
    pub machine_duration: Duration,
    /// The directory the run's scratch directory is made in.
    pub dir: PathBuf,
    /// The seed of the key orders and draws.
    pub seed: u64,
    /// Whether progress bars are drawn on stderr.
    pub progress: bool,
}

impl Config {
    /// The defaults with `keys` keys, in `dir`.
    pub fn new(keys: u64, dir: &Path) -> Config {
        Config {
            keys,
            key_size: 16,
            value_size: 100,
            threads: 2,
            sync_writes: false,
            compression: Compression::Lz4,
            mixed_duration: Duration::from_secs(10),
            repeat: 3,
            engines: PeerKind::available(),
            workloads: Workload::ALL.to_vec(),
            reads: keys,
            seeks: (keys / 8).max(1),
            batchlog_batches: 20_000,
            machine_duration: Duration::from_secs(1),
            dir: dir.to_path_buf(),
            seed: 42,
            progress: true,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), BoxError> {
        if self.keys == 0 || self.reads == 0 || self.seeks == 0 || self.batchlog_batches == 0 {
            return Err("--keys, --reads, --seeks and --batchlog-batches must be above zero".into());
        }
        if self.repeat == 0 || self.threads == 0 {
            return Err("--repeat and --threads must be at least 1".into());
        }
        if self.engines.is_empty() || self.workloads.is_empty() {
            return Err("no engine or no workload selected".into());
        }
        if let Some(kind) = self.engines.iter().find(|k| !k.compiled()) {
            return Err(format!("{kind} is not compiled in (cargo feature `rocksdb` of talus-bench)").into());
        }
        Ok(())
    }

    /// The options every engine is opened with, with `spaces`.
    pub fn peer_options(&self, spaces: &[&str]) -> PeerOptions {
        PeerOptions { sync_writes: self.sync_writes, compression: self.compression, ..PeerOptions::with_spaces(spaces) }
    }

    fn wants(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }
}

/// The samples of one workload on one engine, a repetition each.
#[derive(Debug, Clone)]
pub struct Samples {
    /// The workload.
    pub workload: Workload,
    /// The engine.
    pub kind: PeerKind,
    /// One per repetition.
    pub samples: Vec<Sample>,
}

/// Runs `config`: the machine limits, then every workload on every engine `repeat` times.
pub fn run(config: &Config) -> Result<Report, BoxError> {
    config.validate()?;
    let (started, cpu) = (Instant::now(), cpu_ticks());
    let keys = KeySpace::new(config.keys, config.key_size, config.value_size, config.seed)?;
    std::fs::create_dir_all(&config.dir)?;
    let scratch = tempfile::Builder::new().prefix("talus-bench-").tempdir_in(&config.dir)?;
    note(config, format!("measuring the machine in {}", scratch.path().display()));
    let mut machine = MachineLimits::measure(scratch.path(), &keys, config.machine_duration)?;
    for line in machine.describe() {
        note(config, format!("machine: {line}"));
    }
    let mut runs = Runs { config, keys: &keys, samples: Vec::new(), warnings: Vec::new() };
    for repetition in 0..config.repeat {
        for &kind in &config.engines {
            let dir = scratch.path().join(format!("{}-{}", kind.name(), repetition + 1));
            runs.sequence(kind, repetition, &dir)?;
            runs.batchlog(kind, repetition, &dir)?;
        }
    }
    machine.measure_end(scratch.path(), &keys)?;
    if let Some(end) = machine.seq_write.last() {
        note(config, format!("machine: sequential write + fdatasync at the end: {:.0} MB/s", end.mb_per_s));
    }
    let Runs { samples, warnings, .. } = runs;
    let report = Report::build(config, machine, &samples, warnings, started.elapsed().as_secs_f64(), other_cores(cpu));
    scratch.close()?;
    Ok(report)
}

/// A line on stderr, unless progress is off.
fn note(config: &Config, line: String) {
    if config.progress {
        eprintln!("[talus-bench] {line}");
    }
}

/// The measurements of a run so far.
struct Runs<'a> {
    config: &'a Config,
    keys: &'a KeySpace,
    samples: Vec<Samples>,
    warnings: Vec<String>,
}

impl Runs<'_> {
    /// A progress bar for `workload` on `kind`.
    fn progress(&self, what: &str, kind: PeerKind, repetition: usize, total: u64) -> Progress {
        let label = format!("{what} {} #{}", kind.name(), repetition + 1);
        if self.config.progress {
            Progress::new(label, total)
        } else {
            Progress::hidden(label, total)
        }
    }

    fn record(&mut self, workload: Workload, kind: PeerKind, sample: Sample) {
        if !self.config.wants(workload) {
            return;
        }
        match self.samples.iter_mut().find(|s| s.workload == workload && s.kind == kind) {
            Some(entry) => entry.samples.push(sample),
            None => self.samples.push(Samples { workload, kind, samples: vec![sample] }),
        }
    }

    /// Opens `kind` in a fresh `dir` with `spaces`.
    fn open(&self, kind: PeerKind, dir: &Path, spaces: &[&str]) -> Result<Box<dyn KvPeer>, BoxError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        Ok(kind.open(dir, &self.config.peer_options(spaces))?)
    }

    /// Closes `peer` and removes its directory.
    fn close(peer: Box<dyn KvPeer>) -> Result<(), BoxError> {
        let dir = peer.dir().to_path_buf();
        drop(peer);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Steps 1 and 2 of the module docs on `kind`.
    fn sequence(&mut self, kind: PeerKind, repetition: usize, dir: &Path) -> Result<(), BoxError> {
        use self::workloads::{delete_all, fill, read_random, read_seq, scan_deleted, seek_random};
        use Workload::*;
        let (config, keys) = (self.config, self.keys);
        let seed = config.seed.wrapping_add(repetition as u64);
        if config.wants(FillSeq) {
            let peer = self.open(kind, dir, &["default"])?;
            let space = peer.space("default")?;
            let sample = fill(peer.as_ref(), space, keys, keys.sorted_order(), 0, &self.progress("fillseq", kind, repetition, keys.len()))?;
            self.record(FillSeq, kind, sample);
            Runs::close(peer)?;
        }
        let later = [FillRandom, Overwrite, ReadRandom, ReadMissing, ReadSeq, SeekRandom, DeleteRange, DeleteRangeScan, YcsbA, YcsbB];
        if !later.into_iter().any(|w| config.wants(w)) {
            return Ok(());
        }
        let peer = self.open(kind, dir, &["default"])?;
        let (p, space) = (peer.as_ref(), peer.space("default")?);
        let sample = fill(p, space, keys, keys.random_order(), 0, &self.progress("fillrandom", kind, repetition, keys.len()))?;
        self.record(FillRandom, kind, sample);
        if config.wants(Overwrite) {
            let order = shuffled(keys.len(), seed ^ 0x0FE7_F11E);
            let sample = fill(p, space, keys, &order, 1, &self.progress("overwrite", kind, repetition, keys.len()))?;
            self.record(Overwrite, kind, sample);
        }
        p.flush()?;
        let n = config.reads;
        if config.wants(ReadRandom) {
            let sample =
                read_random(p, space, keys, n, true, seed ^ 1, &self.progress("readrandom", kind, repetition, n), &mut self.warnings)?;
            self.record(ReadRandom, kind, sample);
        }
        if config.wants(ReadMissing) {
            let sample =
                read_random(p, space, keys, n, false, seed ^ 2, &self.progress("readmissing", kind, repetition, n), &mut self.warnings)?;
            self.record(ReadMissing, kind, sample);
        }
        if config.wants(ReadSeq) {
            let sample = read_seq(p, space, keys.len(), &self.progress("readseq", kind, repetition, keys.len()), &mut self.warnings)?;
            self.record(ReadSeq, kind, sample);
        }
        if config.wants(SeekRandom) {
            let sample = seek_random(p, space, keys, config.seeks, seed ^ 3, &self.progress("seekrandom", kind, repetition, config.seeks))?;
            self.record(SeekRandom, kind, sample);
        }
        for (workload, read_fraction, salt) in [(YcsbA, 0.5, 2), (YcsbB, 0.95, 3)] {
            if config.wants(workload) {
                let mix = Mix { read_fraction, threads: config.threads, duration: config.mixed_duration, seed: seed ^ (salt << 8), salt };
                let sample = ycsb(p, space, keys, &mix, &self.progress(workload.name(), kind, repetition, 0))?;
                self.record(workload, kind, sample);
            }
        }
        if config.wants(DeleteRange) || config.wants(DeleteRangeScan) {
            let sample = delete_all(p, space, keys, keys.random_order(), &self.progress("deleterange", kind, repetition, keys.len()))?;
            self.record(DeleteRange, kind, sample);
            let sample = scan_deleted(p, space, keys, &self.progress("deleterange-scan", kind, repetition, 0), &mut self.warnings)?;
            self.record(DeleteRangeScan, kind, sample);
        }
        Runs::close(peer)
    }

    /// Step 3 of the module docs on `kind`.
    fn batchlog(&mut self, kind: PeerKind, repetition: usize, dir: &Path) -> Result<(), BoxError> {
        for (workload, layout) in [(Workload::BatchlogV1, Layout::V1), (Workload::BatchlogV2, Layout::V2)] {
            if !self.config.wants(workload) || !workload.applies_to(kind) {
                continue;
            }
            let peer = self.open(kind, dir, &SPACES)?;
            let config = BatchlogPatternConfig {
                layout,
                batches: self.config.batchlog_batches,
                seed: self.config.seed.wrapping_add(repetition as u64),
                ..BatchlogPatternConfig::default()
            };
            let progress = self.progress(workload.name(), kind, repetition, config.batches);
            let cpu = cpu_ticks();
            let report = run_batchlog_pattern(peer.as_ref(), &config, &progress)?;
            progress.finish();
            let sample = Sample { ops: report.batches, seconds: report.total_seconds, other_cores: other_cores(cpu), ..Sample::default() }
                .with("replay_seconds", report.replay_seconds)
                .with("cleanup_replay_seconds", report.cleanup_replay_seconds)
                .with("history_replay_seconds", report.history_replay_seconds)
                .with("failed_batches", report.failed_batches as f64)
                .with("dead_entries", report.dead_entries as f64)
                .with("range_deletes", report.range_deletes as f64)
                .with("batchlog_table_bytes", report.batchlog_table_bytes as f64)
                .with("bytes_on_disk", report.bytes_on_disk as f64);
            self.record(workload, kind, sample);
            Runs::close(peer)?;
        }
        Ok(())
    }
}
