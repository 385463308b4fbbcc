//! The command line of `talus-bench` (and its alias `talus bench`): [`BenchArgs`] and [`run`].
//! The usage, workloads and outputs are documented on the `talus-bench` binary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{write_reports, Config, Workload};
use crate::peers::{Compression, PeerKind};
use crate::{target_dir, BoxError};

/// Keys of a full run.
const DEFAULT_KEYS: u64 = 1 << 20;
/// Keys of a `--quick` run.
const QUICK_KEYS: u64 = 1 << 18;

/// db_bench-style workloads on Talus and its peers, next to the machine's limits.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Keys written [default: 2^20; --quick: 2^18].
    #[arg(long)]
    keys: Option<u64>,
    /// Key size in bytes (at least 8).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Threads of the mixed YCSB runs.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// `periodic`: a log without a sync per write (Talus `Durability::Periodic`, 100 ms); `batch`:
    /// every write synced before it returns.
    #[arg(long, default_value = "periodic", value_parser = ["periodic", "batch"])]
    durability: String,
    /// Block compression: `lz4` (Talus' default as ScyllaDB's, R4.17; RocksDB lz4; fjall its
    /// default, LZ4 from level 2), `zstd` (level 3 where the engine has it; fjall keeps its
    /// default) or `none`.
    #[arg(long, default_value = "lz4")]
    compression: Compression,
    /// Seconds of each mixed YCSB run [default: 10; --quick: 2].
    #[arg(long)]
    duration: Option<f64>,
    /// Repetitions; the median is the figure [default: 3; --quick: 1].
    #[arg(long)]
    repeat: Option<usize>,
    /// Engines, comma-separated: talus (both shapes), talus-kv, talus-wide, fjall, rocksdb
    /// [default: all compiled in].
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Workloads, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Point reads per read workload [default: --keys].
    #[arg(long)]
    reads: Option<u64>,
    /// Seeks of seekrandom [default: --keys / 8].
    #[arg(long)]
    seeks: Option<u64>,
    /// Batches of the batchlog pattern [default: 20,000; --quick: 5,000].
    #[arg(long)]
    batchlog_batches: Option<u64>,
    /// Seconds of each machine limit measurement [default: 1; --quick: 0.3].
    #[arg(long)]
    machine_seconds: Option<f64>,
    /// A short run: 2^18 keys, 1 repetition, 2 s mixed runs (each overridable).
    #[arg(long)]
    quick: bool,
    /// Directory to measure in (a fresh scratch directory is made inside) [default: target/].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Directory of the reports [default: target/reports/].
    #[arg(long)]
    reports: Option<PathBuf>,
    /// Seed of the key orders and draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// The engines `names` select (`talus`: both shapes).
fn parse_engines(names: &[String]) -> Result<Vec<PeerKind>, BoxError> {
    if names.is_empty() {
        return Ok(PeerKind::available());
    }
    let mut engines = Vec::new();
    for name in names {
        let kinds = match name.trim().to_ascii_lowercase().as_str() {
            "talus" => vec![PeerKind::Talus, PeerKind::TalusWide],
            "talus-kv" => vec![PeerKind::Talus],
            other => vec![other.parse::<PeerKind>()?],
        };
        for kind in kinds {
            if !engines.contains(&kind) {
                engines.push(kind);
            }
        }
    }
    Ok(engines)
}

/// The workloads `names` select.
fn parse_workloads(names: &[String]) -> Result<Vec<Workload>, BoxError> {
    if names.is_empty() {
        return Ok(Workload::ALL.to_vec());
    }
    let mut workloads = Vec::new();
    for name in names {
        workloads.extend(Workload::parse_filter(name)?);
    }
    workloads.sort();
    workloads.dedup();
    Ok(workloads)
}

/// Seconds as a duration, or the error naming the flag.
fn seconds(flag: &str, s: f64) -> Result<Duration, BoxError> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("{flag} {s}: {e}").into())
}

/// The run's configuration from the command line.
fn config(args: &BenchArgs) -> Result<Config, BoxError> {
    let keys = args.keys.unwrap_or(if args.quick { QUICK_KEYS } else { DEFAULT_KEYS });
    let mut config = Config::new(keys, &args.dir.clone().unwrap_or_else(target_dir));
    config.key_size = args.key_size;
    config.value_size = args.value_size;
    config.threads = args.threads;
    config.sync_writes = args.durability == "batch";
    config.compression = args.compression;
    config.mixed_duration = seconds("--duration", args.duration.unwrap_or(if args.quick { 2.0 } else { 10.0 }))?;
    config.repeat = args.repeat.unwrap_or(if args.quick { 1 } else { 3 });
    config.engines = parse_engines(&args.engines)?;
    config.workloads = parse_workloads(&args.workloads)?;
    config.reads = args.reads.unwrap_or(keys);
    config.seeks = args.seeks.unwrap_or((keys / 8).max(1));
    config.batchlog_batches = args.batchlog_batches.unwrap_or(if args.quick { 5_000 } else { 20_000 });
    config.machine_duration = seconds("--machine-seconds", args.machine_seconds.unwrap_or(if args.quick { 0.3 } else { 1.0 }))?;
    config.seed = args.seed;
    config.progress = !args.no_progress;
    Ok(config)
}

/// Runs the benchmark `args` describe: the table on stdout, the reports in `--reports`.
pub fn run(args: &BenchArgs) -> Result<(), BoxError> {
    let started = Instant::now();
    let config = config(args)?;
    let report = crate::harness::run(&config)?;
    print!("{}", report.markdown());
    let reports = args.reports.clone().unwrap_or_else(|| target_dir().join("reports"));
    let written = write_reports(&report, &reports)?;
    println!();
    for path in written.paths() {
        println!("written: {}", path.display());
    }
    eprintln!("[talus-bench] done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
