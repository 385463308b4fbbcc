//! `talus batchlog-demo`: the batchlog replay demo (see `talus_bench::batchlog_demo`) with its
//! progress bars, report tables, JSON and chart.

use std::path::PathBuf;

use clap::Args;
use talus_bench::batchlog_demo::{run_demo, DemoOptions};
use talus_bench::peers::batchlog::BatchlogPatternConfig;
use talus_bench::peers::PeerKind;
use talus_bench::BoxError;

/// Options of `talus batchlog-demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The large sizes too: 10k, 100k and 1M batches (default: 10k and 100k, about a minute).
    #[arg(long)]
    full: bool,
    /// Batches per run, comma-separated (overrides the default sizes).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u64>,
    /// Fraction of batches whose application fails (their entry stays for a replay), and odds
    /// of each replay delivery failing.
    #[arg(long, default_value_t = 0.01)]
    fail_fraction: f64,
    /// A replay with cleanup every this many batches.
    #[arg(long, default_value_t = 10_000)]
    replay_every: u64,
    /// Payload bytes per row of a batch.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 2)]
    rows_per_batch: usize,
    /// The batchlog replay timeout in milliseconds.
    #[arg(long, default_value_t = 4_000)]
    replay_timeout_ms: u64,
    /// Seed of the failures.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run Talus only, not the peers.
    #[arg(long)]
    no_peers: bool,
    /// No idle table: every Talus table flushes in time, so the commitlog barrier lets
    /// compaction purge v1's tombstones (v1's best case; a node's idle tables prevent it).
    #[arg(long)]
    no_idle_table: bool,
    /// Where the runs' engines live (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the reports go (default: `target/reports` of the workspace).
    #[arg(long)]
    reports: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), BoxError> {
    let sizes = match (args.sizes.is_empty(), args.full) {
        (false, _) => args.sizes.clone(),
        (true, true) => vec![10_000, 100_000, 1_000_000],
        (true, false) => vec![10_000, 100_000],
    };
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let pattern = BatchlogPatternConfig {
        fail_fraction: args.fail_fraction,
        replay_every: args.replay_every,
        payload_bytes: args.payload_bytes,
        rows_per_batch: args.rows_per_batch,
        replay_timeout_ms: args.replay_timeout_ms,
        seed: args.seed,
        // The peers' replay deliveries fail with the same odds as Talus' (FlakyReplayer).
        replay_fail_fraction: args.fail_fraction,
        ..BatchlogPatternConfig::default()
    };
    pattern.validate()?;
    // The peers are the other engines (Talus' own key-value shapes run in `talus-bench`).
    let peers = if args.no_peers { Vec::new() } else { PeerKind::available().into_iter().filter(|k| !k.is_talus()).collect() };
    eprintln!(
        "batchlog demo: sizes {sizes:?}, layouts v1 and v2 on Talus{}; engines under {}",
        peers.iter().map(|p| format!(", {p}")).collect::<String>(),
        dir.display()
    );
    let idle_table = !args.no_idle_table;
    eprintln!(
        "{}",
        if idle_table {
            "an idle table pins the commitlog, as on a storage node: no batchlog tombstone is purgeable during the run (--no-idle-table: v1's best case)"
        } else {
            "no idle table: the commitlog barrier lets compaction purge v1's tombstones (v1's best case)"
        }
    );
    let outcome = run_demo(&DemoOptions { sizes, pattern, dir, peers, idle_table })?;
    println!("{}", outcome.markdown());
    let reports = args.reports.clone().unwrap_or_else(|| talus_bench::target_dir().join("reports"));
    std::fs::create_dir_all(&reports)?;
    let records: Vec<serde_json::Value> = outcome
        .talus
        .iter()
        .map(|r| {
            serde_json::json!({
                "layout": r.layout, "dead_entries": r.dead_entries, "replay_seconds": r.replay_seconds,
                "entries_visited": r.entries_visited, "tombstones_visited": r.tombstones_visited,
                "sstables": r.sstables, "bytes_on_disk": r.bytes_on_disk,
            })
        })
        .collect();
    let json = reports.join("batchlog-demo.json");
    std::fs::write(&json, serde_json::to_string_pretty(&records)?)?;
    let details = reports.join("batchlog-demo-details.json");
    std::fs::write(&details, serde_json::to_string_pretty(&outcome)?)?;
    let chart = reports.join("batchlog-demo.png");
    outcome.chart().save(&chart)?;
    println!("records: {}\ndetails (with the peers): {}\nchart: {}", json.display(), details.display(), chart.display());
    Ok(())
}
