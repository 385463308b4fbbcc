//! The batchlog replay demo (the project's main job, `talus batchlog-demo`): a storage node's
//! batchlog simulated on an embedded Talus engine in both layouts side by side, with the same
//! access pattern as [`crate::peers::batchlog`] runs on the peers.
//!
//! For each layout and size N: a fresh engine (default options: background flush and
//! compaction on) with a user table; N logged batches, each written to the batchlog, applied to
//! the user table and deleted, a fraction of them failing to apply (their entry stays live);
//! every `replay_every` batches a replay with cleanup, whose deliveries fail with odds
//! `replay_fail_fraction` (the command line gives both fractions the same value).
//! Then time moves past the replay timeout, one more replay with cleanup runs, the batchlog
//! table is flushed and compacted (major), the background compactions of the user table are
//! waited for (so the timed replay shares the machine with nothing), and one last replay is
//! timed: its wall time, the entries and tombstones it read, the batchlog table's sstables and
//! their bytes.
//!
//! A storage node has more tables than the batchlog and the one it applies to, and some are
//! idle: a table written once and rarely flushed keeps the commitlog segment of its write, and
//! every later one, from being recycled (ScyllaDB issue #15920; reference A1, "why it blocks
//! batchlog cleanup"). The commitlog barrier then forbids purging any batchlog tombstone newer
//! than that segment (R2.15), so on a real node v1's tombstones outlive their gc_grace_seconds of
//! 0. With [`DemoOptions::idle_table`] (the default) the demo has such a table, written once
//! before the history; without it every table flushes in time, the barrier moves along, and
//! compaction purges most of v1's tombstones: v1's best case. v2 does not depend on it: its
//! cleanup range tombstones make compaction drop the dead entries under them either way.
//!
//! Time is simulated as in the peers' pattern ([`crate::peers::batchlog`]): the batchlog's clock
//! starts at the real time and advances 1 ms per batch (1,000 batches a simulated second), and
//! after the history it jumps by the replay timeout. So which batches a replay finds too fresh,
//! and how many failed ones are live at the timed replay, follow the pattern, not the speed of
//! the machine (with the real clock, a machine writing 60,000 batches a second would leave 60
//! times as many batches in the last replay timeout). Deletion times stay real (the clock's
//! gc-clock reading): the engine's tombstone GC and commitlog barrier run on the real clock.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;
use talus::batchlog::{
    BatchReplayer, BatchlogClock, BatchlogLayout, BatchlogManager, BatchlogOptions, LocalReplayer, ReplayBatch, ReplayReport, SystemClock,
};
use talus::commitlog::{CommitlogOptions, Durability};
use talus::format::{ColumnType, Mutation, Schema, SchemaRef, Timestamp, Value};
use talus::sstable_set::{sstable_file_name, SSTABLE_DIR};
use talus::{Engine, EngineOptions};

use crate::peers::batchlog::{BatchlogPatternConfig, Layout};
use crate::progress::Progress;
use crate::{BoxError, SplitMix};

/// One layout at one size: what the timed replay did.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRecord {
    /// `"v1"` or `"v2"`.
    pub layout: Layout,
    /// Batches logged minus entries still live at the end.
    pub dead_entries: u64,
    /// Wall time of the timed replay.
    pub replay_seconds: f64,
    /// Entries it read, live or dead (v2 rows, v1 partitions).
    pub entries_visited: u64,
    /// Tombstones it read (partition, range tombstone changes, row).
    pub tombstones_visited: u64,
    /// SSTables of the batchlog table.
    pub sstables: u64,
    /// Their bytes.
    pub bytes_on_disk: u64,
    /// Batches logged.
    pub batches: u64,
    /// Live entries the timed replay found.
    pub live_entries: u64,
    /// Replays during the history, and their total and longest wall time.
    pub history_replays: u64,
    /// Total wall time of the history's replays.
    pub history_replay_seconds: f64,
    /// Longest history replay.
    pub max_history_replay_seconds: f64,
    /// Cleanup range tombstones written in total.
    pub cleanup_tombstones: u64,
    /// Wall time of the whole run.
    pub total_seconds: f64,
}

/// The demo's simulated clock: a start plus the simulated milliseconds elapsed; deletion times
/// real (see the module documentation).
#[derive(Debug)]
struct SimulatedClock {
    start_ms: i64,
    elapsed_ms: AtomicI64,
}

impl SimulatedClock {
    fn advance(&self, ms: i64) {
        self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl BatchlogClock for SimulatedClock {
    fn now_millis(&self) -> i64 {
        self.start_ms + self.elapsed_ms.load(Ordering::SeqCst)
    }

    fn gc_millis(&self) -> i64 {
        SystemClock.now_millis()
    }
}

/// Applies locally, failing each delivery with the configured odds.
struct FlakyReplayer {
    local: LocalReplayer,
    fail_fraction: f64,
    rng: Mutex<SplitMix>,
}

impl BatchReplayer for FlakyReplayer {
    fn replay(&self, batch: &ReplayBatch<'_>) -> talus::Result<()> {
        if self.rng.lock().unit() < self.fail_fraction {
            return Err(talus::Error::ReplayFailed("simulated replica timeout".into()));
        }
        self.local.replay(batch)
    }
}

fn events_schema() -> Result<SchemaRef, BoxError> {
    Ok(Schema::builder("ks", "events")
        .partition_key("pk", ColumnType::BigInt)
        .clustering("ck", ColumnType::Int)
        .regular("v", ColumnType::Blob)
        .build()?)
}

/// A table written once and never flushed by the demo (see the module documentation).
fn idle_schema() -> Result<SchemaRef, BoxError> {
    Ok(Schema::builder("ks", "idle").partition_key("pk", ColumnType::BigInt).regular("v", ColumnType::Blob).build()?)
}

/// Runs the demo's pattern for `config.layout` with `config.batches` in a fresh engine under
/// `dir`, counting batches on `progress`; with `idle_table`, an idle table pins the commitlog
/// (see the module documentation).
pub fn run_talus(dir: &Path, config: &BatchlogPatternConfig, idle_table: bool, progress: &Progress) -> Result<DemoRecord, BoxError> {
    config.validate()?;
    let started = Instant::now();
    // ScyllaDB's default commitlog mode (periodic sync), as the peers' WAL without per-write sync.
    let commitlog =
        CommitlogOptions { durability: Durability::Periodic(std::time::Duration::from_secs(10)), ..CommitlogOptions::default() };
    let engine = Engine::open(dir, EngineOptions { commitlog, ..EngineOptions::default() })?;
    let events = events_schema()?;
    engine.create_table(events.clone())?;
    if idle_table {
        let idle = idle_schema()?;
        engine.create_table(idle.clone())?;
        engine.apply(&Mutation::builder(&idle, &[Value::BigInt(0)]).set(&[], "v", Value::Blob(vec![1].into()), Timestamp(1)).build()?)?;
    }
    let layout = match config.layout {
        Layout::V1 => BatchlogLayout::V1,
        Layout::V2 => BatchlogLayout::V2,
    };
    let options = BatchlogOptions {
        layout,
        replay_timeout: std::time::Duration::from_millis(config.replay_timeout_ms),
        replay_rate_bytes_per_sec: None,
        ..BatchlogOptions::default()
    };
    let clock = Arc::new(SimulatedClock { start_ms: SystemClock.now_millis(), elapsed_ms: AtomicI64::new(0) });
    let replayer = Arc::new(FlakyReplayer {
        local: LocalReplayer::new(engine.clone()),
        fail_fraction: config.replay_fail_fraction,
        rng: Mutex::new(SplitMix(config.seed ^ 0x5EED)),
    });
    let batchlog = BatchlogManager::open_with(&engine, options, clock.clone(), replayer)?;
    let table = batchlog.schema(layout).full_name();
    let mut rng = SplitMix(config.seed);
    let payload = vec![0x5Au8; config.payload_bytes];
    let mut history = (0u64, 0f64, 0f64);
    let mut cleanup_tombstones = 0;
    for i in 0..config.batches {
        clock.advance(1);
        let ts = Timestamp(clock.now_millis() * 1000);
        let mutations = (0..config.rows_per_batch)
            .map(|ck| {
                Mutation::builder(&events, &[Value::BigInt(i as i64)])
                    .set(&[Value::Int(ck as i32)], "v", Value::Blob(payload.clone().into()), ts)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let handle = batchlog.write(&mutations)?;
        if rng.unit() >= config.fail_fraction {
            engine.apply_batch(&mutations)?;
            batchlog.remove(&handle)?;
        }
        if (i + 1) % config.replay_every == 0 {
            progress.set_message(format!("replay {}", history.0 + 1));
            let report = batchlog.replay_scheduled()?;
            cleanup_tombstones += report.cleanup_tombstones;
            let seconds = report.elapsed.as_secs_f64();
            history = (history.0 + 1, history.1 + seconds, history.2.max(seconds));
        }
        progress.inc(1);
    }
    // Time passes: every entry becomes older than the replay timeout.
    clock.advance(i64::try_from(config.replay_timeout_ms)?);
    progress.set_message("final replay");
    cleanup_tombstones += batchlog.replay(true)?.cleanup_tombstones;
    progress.set_message("flush and compaction");
    engine.flush(&table)?;
    engine.compact(&table)?;
    engine.wait_for_compactions();
    progress.set_message("timed replay");
    let timed: ReplayReport = batchlog.replay(false)?;
    let generations = engine.sstables(&table)?;
    let mut bytes_on_disk = 0;
    for generation in &generations {
        bytes_on_disk += std::fs::metadata(dir.join(SSTABLE_DIR).join(sstable_file_name(*generation)))?.len();
    }
    progress.set_message("");
    Ok(DemoRecord {
        layout: config.layout,
        dead_entries: config.batches - timed.live_entries,
        replay_seconds: timed.elapsed.as_secs_f64(),
        entries_visited: timed.entries_visited,
        tombstones_visited: timed.tombstones_visited,
        sstables: generations.len() as u64,
        bytes_on_disk,
        batches: config.batches,
        live_entries: timed.live_entries,
        history_replays: history.0,
        history_replay_seconds: history.1,
        max_history_replay_seconds: history.2,
        cleanup_tombstones,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A ratio with the precision that suits it (below 1 with three decimals, below 0.001 in
/// scientific notation, so a peer that is faster does not read "0×").
fn ratio(x: f64) -> String {
    match x {
        x if x.is_nan() => "—".to_string(),
        x if x >= 10.0 => format!("{x:.0}×"),
        x if x >= 1.0 => format!("{x:.1}×"),
        x if x >= 0.001 => format!("{x:.3}×"),
        x => format!("{x:.1e}×"),
    }
}

/// A wall time with a precision that suits it: µs, ms or s.
fn seconds(s: f64) -> String {
    match s {
        s if s < 1e-3 => format!("{:.0} µs", s * 1e6),
        s if s < 1.0 => format!("{:.2} ms", s * 1e3),
        s => format!("{s:.2} s"),
    }
}

/// What the demo runs and where it writes.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Batches per run (each run ends with about this many dead entries).
    pub sizes: Vec<u64>,
    /// The pattern (layout and batches are set per run).
    pub pattern: BatchlogPatternConfig,
    /// Where the runs' engines live (each removed after its run).
    pub dir: std::path::PathBuf,
    /// Peers to run the same pattern on.
    pub peers: Vec<crate::peers::PeerKind>,
    /// Whether the Talus engine has an idle table pinning the commitlog, as a storage node has
    /// (see the module documentation).
    pub idle_table: bool,
}

/// Everything the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoOutcome {
    /// Talus, per size and layout.
    pub talus: Vec<DemoRecord>,
    /// The peers, per size, peer and layout.
    pub peers: Vec<crate::peers::batchlog::BatchlogPatternReport>,
}

/// Runs every size for both layouts on Talus and on the peers, with a progress bar per run.
pub fn run_demo(options: &DemoOptions) -> Result<DemoOutcome, BoxError> {
    let mut outcome = DemoOutcome { talus: Vec::new(), peers: Vec::new() };
    for &size in &options.sizes {
        for layout in [Layout::V1, Layout::V2] {
            let config = BatchlogPatternConfig { layout, batches: size, ..options.pattern.clone() };
            let dir = options.dir.join(format!("talus-{layout}-{size}"));
            let _ = std::fs::remove_dir_all(&dir);
            let progress = Progress::new(format!("talus {layout} {size}"), size);
            let record = run_talus(&dir, &config, options.idle_table, &progress)?;
            progress.finish_with_message(format!("replay {}", seconds(record.replay_seconds)));
            outcome.talus.push(record);
            std::fs::remove_dir_all(&dir)?;
            for &peer in &options.peers {
                if layout == Layout::V2 && !peer.supports_delete_range() {
                    continue;
                }
                let dir = options.dir.join(format!("{peer}-{layout}-{size}"));
                let _ = std::fs::remove_dir_all(&dir);
                let kv = peer.open(&dir, &crate::peers::PeerOptions::with_spaces(&crate::peers::batchlog::SPACES))?;
                let progress = Progress::new(format!("{peer} {layout} {size}"), size);
                let report = crate::peers::batchlog::run_batchlog_pattern(kv.as_ref(), &config, &progress)?;
                progress.finish_with_message(format!("replay {}", seconds(report.replay_seconds)));
                drop(kv);
                outcome.peers.push(report);
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    Ok(outcome)
}

impl DemoOutcome {
    /// The Talus record of `layout` at `batches`.
    fn talus(&self, layout: Layout, batches: u64) -> Option<&DemoRecord> {
        self.talus.iter().find(|r| r.layout == layout && r.batches == batches)
    }

    /// The markdown report: a table per layout and size, the v1/v2 speedup, the peer ratios.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "| layout | batches | dead entries | replay | entries visited | tombstones visited | sstables | bytes on disk | history replays (total / max) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.talus {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                r.layout,
                r.batches,
                r.dead_entries,
                seconds(r.replay_seconds),
                r.entries_visited,
                r.tombstones_visited,
                r.sstables,
                r.bytes_on_disk,
                seconds(r.history_replay_seconds),
                seconds(r.max_history_replay_seconds),
            );
        }
        let _ = writeln!(s, "\n| batches | v1 replay ÷ v2 replay |\n|---:|---:|");
        for v2 in self.talus.iter().filter(|r| r.layout == Layout::V2) {
            if let Some(v1) = self.talus(Layout::V1, v2.batches) {
                let _ = writeln!(s, "| {} | {} |", v2.batches, ratio(v1.replay_seconds / v2.replay_seconds.max(1e-9)));
            }
        }
        if !self.peers.is_empty() {
            let _ = writeln!(s, "\n| peer | layout | batches | replay | entries visited | bytes on disk | peer replay ÷ Talus replay (same layout) | peer replay ÷ Talus v2 replay |");
            let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
            for p in &self.peers {
                let same = self.talus(p.layout, p.batches).map_or(f64::NAN, |t| p.replay_seconds / t.replay_seconds.max(1e-9));
                let v2 = self.talus(Layout::V2, p.batches).map_or(f64::NAN, |t| p.replay_seconds / t.replay_seconds.max(1e-9));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.engine,
                    p.layout,
                    p.batches,
                    seconds(p.replay_seconds),
                    p.entries_visited,
                    p.bytes_on_disk,
                    ratio(same),
                    ratio(v2)
                );
            }
        }
        s
    }

    /// The chart: replay time against dead entries, log-log, one line per engine and layout.
    pub fn chart(&self) -> crate::chart::LineChart {
        use crate::chart::{LineChart, Scale, Series};
        let mut chart = LineChart::new("Batchlog replay time after N batches")
            .x_label("dead entries")
            .y_label("replay seconds")
            .x_scale(Scale::Log10)
            .y_scale(Scale::Log10);
        for layout in [Layout::V1, Layout::V2] {
            let points =
                self.talus.iter().filter(|r| r.layout == layout).map(|r| (r.dead_entries.max(1) as f64, r.replay_seconds)).collect();
            chart = chart.series(Series::new(format!("talus {layout}"), points));
        }
        // One series per peer and layout, in order of first appearance (the runs interleave them).
        let mut names: Vec<(String, Layout)> = Vec::new();
        for p in &self.peers {
            if !names.iter().any(|(engine, layout)| *engine == p.engine && *layout == p.layout) {
                names.push((p.engine.clone(), p.layout));
            }
        }
        for (engine, layout) in names {
            let points = self
                .peers
                .iter()
                .filter(|p| p.engine == engine && p.layout == layout)
                .map(|p| (p.dead_entries.max(1) as f64, p.replay_seconds))
                .collect();
            chart = chart.series(Series::new(format!("{engine} {layout}"), points));
        }
        chart
    }
}
