//! The report of a run: a [`Record`] per workload and engine (median, min and max over the
//! repetitions, latency, Talus ÷ peer ratios, the fraction of the machine limit), the markdown
//! table and the files (JSON, markdown, PNG charts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::charts::{latency_chart, throughput_chart};
use super::limits::{limit_of, Limit, MachineLimits};
use super::{Config, Samples, Workload};
use crate::peers::{PeerKind, SCAN_PAGE_ROWS, TALUS_SYNC_PERIOD, WIDE_GROUP_BITS};
use crate::{mark, run_contention_note, thousands, BoxError, Latency, CONTENTION_CORES};

/// One workload on one engine, over the repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The workload, e.g. `fillrandom`.
    pub workload: String,
    /// The engine: `talus`, `fjall` or `rocksdb`.
    pub engine: String,
    /// The data shape: `kv` or `wide` (Talus' wide partitions).
    pub shape: String,
    /// Engine and shape in one name: `talus`, `talus-wide`, `fjall`, `rocksdb`.
    pub name: String,
    /// What one operation is.
    pub op: String,
    /// Operations per second of the median repetition: the figure.
    pub ops_per_sec: f64,
    /// The slowest repetition's.
    pub min_ops_per_sec: f64,
    /// The fastest repetition's.
    pub max_ops_per_sec: f64,
    /// Every repetition's, in run order.
    pub samples_ops_per_sec: Vec<f64>,
    /// Key and value MB/s of the median repetition.
    pub mb_per_sec: f64,
    /// Operations of the median repetition.
    pub ops: u64,
    /// Seconds of the median repetition.
    pub seconds: f64,
    /// Latency of one operation in the median repetition (where operations are timed one by one).
    pub latency: Option<Latency>,
    /// The machine limit bounding the workload, and the fraction of it reached.
    pub limit: Option<Limit>,
    /// Talus records: this figure ÷ each peer's, by peer name.
    pub ratios: BTreeMap<String, f64>,
    /// The most cores other processes kept busy during a repetition.
    pub other_cores: Option<f64>,
    /// Figures particular to the workload, of the median repetition.
    pub details: BTreeMap<String, f64>,
}

/// The settings of the run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Keys written.
    pub keys: u64,
    /// Key size, bytes.
    pub key_size: usize,
    /// Value size, bytes.
    pub value_size: usize,
    /// Threads of the mixed runs.
    pub threads: usize,
    /// `periodic` or `batch`.
    pub durability: String,
    /// `zstd` or `none`.
    pub compression: String,
    /// Seconds of each mixed run.
    pub mixed_seconds: f64,
    /// Repetitions.
    pub repeat: usize,
    /// Point reads per read workload.
    pub reads: u64,
    /// Seeks of `seekrandom`.
    pub seeks: u64,
    /// Batches of the batchlog pattern.
    pub batchlog_batches: u64,
    /// The engines, in run order.
    pub engines: Vec<String>,
    /// Talus' commitlog sync period under periodic durability, ms.
    pub talus_sync_period_ms: u128,
    /// Bits of the key that make the partition of Talus' wide shape.
    pub talus_wide_group_bits: u32,
    /// Rows per page of Talus' scans.
    pub talus_scan_page_rows: u64,
}

/// The report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `talus-bench`.
    pub benchmark: &'static str,
    /// What was run.
    pub settings: Settings,
    /// The machine's limits.
    pub machine: MachineLimits,
    /// A record per workload and engine.
    pub records: Vec<Record>,
    /// WARNING lines printed during the run.
    pub warnings: Vec<String>,
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Cores other processes kept busy on average over the run.
    pub other_cores: Option<f64>,
}

/// The index of the median of `values` (the lower middle one for an even count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

impl Report {
    /// Builds the report of `samples`.
    pub fn build(
        config: &Config,
        machine: MachineLimits,
        samples: &[Samples],
        warnings: Vec<String>,
        wall_seconds: f64,
        other_cores: Option<f64>,
    ) -> Report {
        let engine_index = |kind: PeerKind| config.engines.iter().position(|&k| k == kind).unwrap_or(usize::MAX);
        let mut sorted: Vec<&Samples> = samples.iter().filter(|s| !s.samples.is_empty()).collect();
        sorted.sort_by_key(|s| (s.workload, engine_index(s.kind)));
        let mut records: Vec<Record> = sorted
            .iter()
            .map(|s| {
                let rates: Vec<f64> = s.samples.iter().map(|x| x.ops_per_sec()).collect();
                let median = &s.samples[median_index(&rates)];
                let (ops_per_sec, mb_per_sec) = (median.ops_per_sec(), median.mb_per_sec());
                Record {
                    workload: s.workload.name().into(),
                    engine: s.kind.engine().into(),
                    shape: s.kind.shape().into(),
                    name: s.kind.name().into(),
                    op: s.workload.op().into(),
                    ops_per_sec,
                    min_ops_per_sec: rates.iter().copied().fold(f64::INFINITY, f64::min),
                    max_ops_per_sec: rates.iter().copied().fold(0.0, f64::max),
                    mb_per_sec,
                    ops: median.ops,
                    seconds: median.seconds,
                    latency: median.latency,
                    limit: limit_of(s.workload, ops_per_sec, mb_per_sec, &machine, config.sync_writes, config.compression),
                    ratios: BTreeMap::new(),
                    other_cores: s.samples.iter().filter_map(|x| x.other_cores).reduce(f64::max),
                    details: median.details.clone(),
                    samples_ops_per_sec: rates,
                }
            })
            .collect();
        let peers: Vec<(String, String, f64)> =
            records.iter().filter(|r| r.engine != "talus").map(|r| (r.workload.clone(), r.name.clone(), r.ops_per_sec)).collect();
        for record in records.iter_mut().filter(|r| r.engine == "talus") {
            for (workload, peer, rate) in &peers {
                if *workload == record.workload && *rate > 0.0 {
                    record.ratios.insert(peer.clone(), record.ops_per_sec / rate);
                }
            }
        }
        let settings = Settings {
            keys: config.keys,
            key_size: config.key_size,
            value_size: config.value_size,
            threads: config.threads,
            durability: if config.sync_writes { "batch" } else { "periodic" }.into(),
            compression: config.compression.to_string(),
            mixed_seconds: config.mixed_duration.as_secs_f64(),
            repeat: config.repeat,
            reads: config.reads,
            seeks: config.seeks,
            batchlog_batches: config.batchlog_batches,
            engines: config.engines.iter().map(|k| k.name().to_string()).collect(),
            talus_sync_period_ms: TALUS_SYNC_PERIOD.as_millis(),
            talus_wide_group_bits: WIDE_GROUP_BITS,
            talus_scan_page_rows: SCAN_PAGE_ROWS,
        };
        Report { benchmark: "talus-bench", settings, machine, records, warnings, wall_seconds, other_cores }
    }

    /// The record of `workload` on `name` (`talus`, `talus-wide`, `fjall`, `rocksdb`).
    pub fn record(&self, workload: Workload, name: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.workload == workload.name() && r.name == name)
    }

    /// The peers' names that have records, in record order.
    fn peer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in self.records.iter().filter(|r| r.engine != "talus") {
            if !names.contains(&r.name) {
                names.push(r.name.clone());
            }
        }
        names
    }

    /// The markdown report: machine limits, the table, notes and warnings.
    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "## talus-bench: {} keys of {} + {} B, durability {}, compression {}, median of {} repetition{}\n\n### Machine limits\n\n",
            thousands(s.keys as f64),
            s.key_size,
            s.value_size,
            s.durability,
            s.compression,
            s.repeat,
            if s.repeat == 1 { "" } else { "s" }
        );
        for line in self.machine.describe() {
            out += &format!("- {line}\n");
        }
        let peers = self.peer_names();
        out += "\n### Results\n\n| workload | engine | ops/s | min – max | MB/s | p50 µs | p99 µs |";
        for peer in &peers {
            out += &format!(" Talus ÷ {peer} |");
        }
        out += " of machine limit |\n|---|---|---:|---:|---:|---:|---:|";
        out += &"---:|".repeat(peers.len());
        out += "---|\n";
        for r in &self.records {
            let (p50, p99) = r.latency.map_or(("—".into(), "—".into()), |l| (format!("{:.1}", l.p50_us), format!("{:.1}", l.p99_us)));
            let mb = if r.mb_per_sec > 0.0 { format!("{:.1}", r.mb_per_sec) } else { "—".into() };
            out += &format!(
                "| {} | {} | {}{} | {} – {} | {mb} | {p50} | {p99} |",
                r.workload,
                r.name,
                thousands(r.ops_per_sec),
                mark(r.other_cores),
                thousands(r.min_ops_per_sec),
                thousands(r.max_ops_per_sec)
            );
            for peer in &peers {
                out += &r.ratios.get(peer).map_or(" |".to_string(), |x| format!(" {x:.2}× |"));
            }
            out += &r.limit.as_ref().map_or(" — |\n".to_string(), |l| {
                format!(" {:.0}% of {} {} {} |\n", l.fraction * 100.0, thousands(l.value), l.unit, l.name)
            });
        }
        out += "\nOps: ";
        let ops: Vec<String> = Workload::ALL
            .iter()
            .filter(|w| self.records.iter().any(|r| r.workload == w.name()))
            .map(|w| format!("{} = {}", w.name(), w.op()))
            .collect();
        out += &ops.join("; ");
        out += &format!(
            ".\nMB = 10^6 bytes of keys and values. Latency: of one operation in the median repetition. Mixed runs: {} threads for {} s. \
             Talus `kv`: a partition per key; `talus-wide`: a partition per {}-bit key prefix, a row per key.\n",
            s.threads, s.mixed_seconds, s.talus_wide_group_bits
        );
        if self.records.iter().any(|r| r.other_cores.is_some_and(|c| c > CONTENTION_CORES)) {
            out += &format!("‡: other processes kept more than {CONTENTION_CORES} cores busy during a repetition.\n");
        }
        if let Some(note) = run_contention_note(self.other_cores, self.machine.cores) {
            out += &format!("{note}\n");
        }
        for w in &self.warnings {
            out += &format!("WARNING: {w}\n");
        }
        out += &format!("Wall time: {:.0} s.\n", self.wall_seconds);
        out
    }
}

/// The files a report was written to.
#[derive(Debug, Clone)]
pub struct Written {
    /// `bench.json`.
    pub json: PathBuf,
    /// `bench.md`.
    pub markdown: PathBuf,
    /// `bench-throughput.png` (not written without records).
    pub throughput_png: Option<PathBuf>,
    /// `bench-latency.png` (not written without a workload timed operation by operation).
    pub latency_png: Option<PathBuf>,
}

impl Written {
    /// Every path written.
    pub fn paths(&self) -> Vec<&Path> {
        let pngs = [&self.throughput_png, &self.latency_png];
        [&self.json, &self.markdown].into_iter().map(PathBuf::as_path).chain(pngs.into_iter().flatten().map(PathBuf::as_path)).collect()
    }
}

/// Writes `report` into `dir` (created if missing): `bench.json`, `bench.md`,
/// `bench-throughput.png` and `bench-latency.png`.
pub fn write_reports(report: &Report, dir: &Path) -> Result<Written, BoxError> {
    std::fs::create_dir_all(dir)?;
    let (json, markdown) = (dir.join("bench.json"), dir.join("bench.md"));
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")?;
    std::fs::write(&markdown, report.markdown())?;
    let save = |chart: Option<crate::chart::BarChart>, name: &str| -> Result<Option<PathBuf>, BoxError> {
        let Some(chart) = chart else { return Ok(None) };
        let path = dir.join(name);
        chart.save(&path)?;
        Ok(Some(path))
    };
    let throughput_png = save(throughput_chart(report), "bench-throughput.png")?;
    let latency_png = save(latency_chart(report), "bench-latency.png")?;
    Ok(Written { json, markdown, throughput_png, latency_png })
}
