//! ScyllaDB's batchlog access pattern, reproduced on a key-value peer ([`KvPeer`]), to compare
//! how replay cost follows the history of dead entries (`shared/reference/
//! batchlog-and-view-building.md` parts A and C1).
//!
//! Every batch is written to the batchlog keyspace (`batchlog`) before it is applied to the user
//! keyspace (`user`) and deleted after; a `fail_fraction` of batches "fail to apply", so their
//! entry stays live until a replay applies and deletes it. Two layouts:
//!
//! - **v1** (`system.batchlog`, any peer): key = the 16-byte random batch id; the entry is
//!   removed by a point delete. A replay scans the whole keyspace and applies and deletes each
//!   live entry: its cost follows every tombstone left by the history.
//! - **v2** (`system.batchlog_v2`, peers with range deletes: RocksDB): key = stage (1 byte:
//!   0 initial, 1 failed_replay) | shard (1 byte, a hash of `written_at`, 256 shards) |
//!   `written_at` (8 bytes big-endian, ms) | id. A replay captures `now` once; in each shard it
//!   scans the failed_replay then the initial entries written at or before
//!   `now - replay_timeout`, applies and deletes the live ones, then (with cleanup) writes one
//!   range delete over the initial stage from the shard's start up to that bound.
//!
//! An entry's value is its `written_at` (8 bytes) then its rows. A replay's delivery of an entry
//! fails with odds `replay_fail_fraction` (default 0): the entry stays live, except in a v2
//! replay with cleanup, which moves an initial entry to the failed_replay stage (as ScyllaDB
//! does) so the range delete may cover its old key.
//!
//! Time is simulated: the clock advances 1 ms per batch, so batches written in the last
//! `replay_timeout_ms` batches are "too fresh" for a v2 replay. After the history, the clock
//! jumps by `replay_timeout_ms` (so every entry is old enough), one replay with cleanup runs,
//! then a flush, a full compaction (optional) and one more replay, the timed one, without
//! cleanup (the replay repair asks for).
//!
//! Each replay checks the entries it met against the pattern's own count of the failed batches
//! not yet replayed, and fails with [`PatternError::Mismatch`] if they differ. Everything is
//! deterministic from the seed.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Instant;

use super::{KvPeer, PeerError, SpaceId};
use crate::progress::Progress;
use crate::SplitMix;

/// The keyspace holding the batchlog entries.
pub const BATCHLOG_SPACE: &str = "batchlog";
/// The keyspace batches are applied to.
pub const USER_SPACE: &str = "user";
/// The keyspaces a peer must be opened with for [`run_batchlog_pattern`].
pub const SPACES: [&str; 2] = [BATCHLOG_SPACE, USER_SPACE];

/// The simulated clock's start, in ms since the epoch.
const EPOCH_MS: u64 = 1_700_000_000_000;
/// Shards of the v2 layout.
const SHARDS: u16 = 256;

/// The batchlog's key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Key = batch id; point deletes; replay scans everything.
    V1,
    /// Key = stage | shard | written_at | id; replay scans each shard up to a time bound and
    /// cleans up with one range delete per shard.
    V2,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
        })
    }
}

impl std::str::FromStr for Layout {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "v1" => Ok(Layout::V1),
            "v2" => Ok(Layout::V2),
            _ => Err(PatternError::Config(format!("unknown layout {s:?}: use v1 or v2"))),
        }
    }
}

/// What the pattern does; [`BatchlogPatternConfig::validate`] checks it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchlogPatternConfig {
    /// The key layout (default v1).
    pub layout: Layout,
    /// Batches written (default 10,000; at least 1).
    pub batches: u64,
    /// The fraction of batches whose first apply fails, leaving the entry live (in [0, 1];
    /// default 0.01).
    pub fail_fraction: f64,
    /// A replay runs after every this many batches (> 0; default 1,000).
    pub replay_every: u64,
    /// The odds that a replay fails to deliver an entry (in [0, 1]; default 0).
    pub replay_fail_fraction: f64,
    /// The bytes of row values in a batch (default 256; at most 16 MiB). The entry holds them
    /// plus each row's key and lengths (22 bytes a row).
    pub payload_bytes: usize,
    /// Rows a batch writes to the user keyspace (default 3; 1 to 1,000).
    pub rows_per_batch: usize,
    /// v2: how old an entry must be to be replayed, in simulated ms (default 4,000: ScyllaDB's
    /// `write_request_timeout_in_ms` × 2).
    pub replay_timeout_ms: u64,
    /// Whether the flush before the timed replay is followed by a full compaction (default true).
    pub compact_before_timed_replay: bool,
    /// The seed of the ids, keys and values.
    pub seed: u64,
}

impl Default for BatchlogPatternConfig {
    fn default() -> Self {
        BatchlogPatternConfig {
            layout: Layout::V1,
            batches: 10_000,
            fail_fraction: 0.01,
            replay_every: 1_000,
            replay_fail_fraction: 0.0,
            payload_bytes: 256,
            rows_per_batch: 3,
            replay_timeout_ms: 4_000,
            compact_before_timed_replay: true,
            seed: 42,
        }
    }
}

impl BatchlogPatternConfig {
    /// Checks the ranges of the fields (the peer's support of the layout is checked by
    /// [`run_batchlog_pattern`]).
    pub fn validate(&self) -> Result<(), PatternError> {
        let bad = |why: String| Err(PatternError::Config(why));
        if self.batches == 0 {
            return bad("batches must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.fail_fraction) {
            return bad(format!("fail_fraction must be in [0, 1], not {}", self.fail_fraction));
        }
        if !(0.0..=1.0).contains(&self.replay_fail_fraction) {
            return bad(format!("replay_fail_fraction must be in [0, 1], not {}", self.replay_fail_fraction));
        }
        if self.replay_every == 0 {
            return bad("replay_every must be above 0".into());
        }
        if self.payload_bytes > 16 << 20 {
            return bad(format!("payload_bytes must be at most 16 MiB, not {}", self.payload_bytes));
        }
        if !(1..=1_000).contains(&self.rows_per_batch) {
            return bad(format!("rows_per_batch must be in 1..=1000, not {}", self.rows_per_batch));
        }
        Ok(())
    }
}

/// What a run of the pattern measured and counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchlogPatternReport {
    /// The peer's name.
    pub engine: String,
    /// The layout.
    pub layout: Layout,
    /// Batches written.
    pub batches: u64,
    /// Batches whose first apply failed (left live for a replay).
    pub failed_batches: u64,
    /// Replays during the history (the two final ones not counted).
    pub history_replays: u64,
    /// Entries applied and deleted by all replays (= `failed_batches` once the final replay ran,
    /// when replays do not fail).
    pub replayed_entries: u64,
    /// Deliveries that failed in replays.
    pub replay_failures: u64,
    /// Range deletes written (v2 cleanup).
    pub range_deletes: u64,
    /// Seconds in the history's replays, in all.
    pub history_replay_seconds: f64,
    /// The slowest replay of the history, in seconds.
    pub max_history_replay_seconds: f64,
    /// The final replay with cleanup, before the flush and compaction, in seconds.
    pub cleanup_replay_seconds: f64,
    /// The timed replay after the flush (and compaction), in seconds.
    pub replay_seconds: f64,
    /// Live entries the timed replay's iterators returned.
    pub entries_visited: u64,
    /// Live entries left at the end.
    pub live_entries: u64,
    /// Entries written and deleted: `batches - live_entries`.
    pub dead_entries: u64,
    /// The batchlog keyspace's table files after the timed replay, in bytes.
    pub batchlog_table_bytes: u64,
    /// All the peer's files after the timed replay, in bytes (logs included).
    pub bytes_on_disk: u64,
    /// Wall time from the first write to the end of the timed replay, in seconds.
    pub total_seconds: f64,
}

/// What can stop the pattern.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// The configuration is invalid, or the peer cannot run the layout.
    #[error("batchlog pattern: {0}")]
    Config(String),
    /// The peer failed.
    #[error("batchlog pattern: {0}")]
    Peer(#[from] PeerError),
    /// An entry read back is not one the pattern wrote.
    #[error("batchlog pattern on {engine}: entry {key} is malformed ({why})")]
    Corrupt {
        /// The peer's name.
        engine: &'static str,
        /// The entry's key, in hex.
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A replay met a different number of live entries than the pattern left.
    #[error("batchlog pattern on {engine}: replay {replay} met {visited} live entries, expected {expected}")]
    Mismatch {
        /// The peer's name.
        engine: &'static str,
        /// The replay's number (history replays from 1, then the final ones).
        replay: u64,
        /// Entries met.
        visited: u64,
        /// Entries the pattern left live and old enough.
        expected: u64,
    },
}

/// Runs the batchlog pattern of `config` on `peer` (opened with [`SPACES`], empty), counting
/// batches on `progress`.
pub fn run_batchlog_pattern(
    peer: &dyn KvPeer,
    config: &BatchlogPatternConfig,
    progress: &Progress,
) -> Result<BatchlogPatternReport, PatternError> {
    config.validate()?;
    if config.layout == Layout::V2 && !peer.supports_delete_range() {
        return Err(PatternError::Config(format!("layout v2 needs range deletes, which {} does not have", peer.name())));
    }
    let mut run = Run {
        peer,
        config,
        batchlog: peer.space(BATCHLOG_SPACE)?,
        user: peer.space(USER_SPACE)?,
        rng: SplitMix(config.seed),
        replay_rng: SplitMix(config.seed ^ 0x5245_504C_4159),
        clock: EPOCH_MS,
        pending: BTreeSet::new(),
        replays: 0,
        replayed: 0,
        replay_failures: 0,
        range_deletes: 0,
    };
    let start = Instant::now();
    let (mut failed, mut history_seconds, mut history_max) = (0u64, 0f64, 0f64);
    for i in 1..=config.batches {
        run.clock += 1;
        if run.write_batch()? {
            failed += 1;
        }
        if i % config.replay_every == 0 {
            progress.set_message(format!("replay {}", run.replays + 1));
            let (seconds, _) = run.replay(true)?;
            history_seconds += seconds;
            history_max = history_max.max(seconds);
        }
        progress.inc(1);
    }
    let history_replays = run.replays;
    // Time passes: every entry becomes old enough for a v2 replay.
    run.clock += config.replay_timeout_ms;
    progress.set_message("final replay");
    let (cleanup_seconds, _) = run.replay(true)?;
    progress.set_message("flush");
    peer.flush()?;
    if config.compact_before_timed_replay {
        progress.set_message("compaction");
        peer.compact()?;
    }
    progress.set_message("timed replay");
    let (replay_seconds, entries_visited) = run.replay(false)?;
    let total_seconds = start.elapsed().as_secs_f64();
    let live_entries = peer.scan(run.batchlog, &[], None, &mut |_, _| ControlFlow::Continue(()))?;
    let batchlog_table_bytes = peer.space_bytes(run.batchlog)?;
    let bytes_on_disk = peer.bytes_on_disk()?;
    progress.set_message("");
    Ok(BatchlogPatternReport {
        engine: peer.name().into(),
        layout: config.layout,
        batches: config.batches,
        failed_batches: failed,
        history_replays,
        replayed_entries: run.replayed,
        replay_failures: run.replay_failures,
        range_deletes: run.range_deletes,
        history_replay_seconds: history_seconds,
        max_history_replay_seconds: history_max,
        cleanup_replay_seconds: cleanup_seconds,
        replay_seconds,
        entries_visited,
        live_entries,
        dead_entries: config.batches.saturating_sub(live_entries),
        batchlog_table_bytes,
        bytes_on_disk,
        total_seconds,
    })
}

/// The state of one run.
struct Run<'a> {
    peer: &'a dyn KvPeer,
    config: &'a BatchlogPatternConfig,
    batchlog: SpaceId,
    user: SpaceId,
    /// Draws for the batches: ids, rows, failures.
    rng: SplitMix,
    /// Draws for the replays' failures.
    replay_rng: SplitMix,
    /// The simulated time in ms (one batch per ms, so it identifies a batch).
    clock: u64,
    /// `written_at` of the batches whose entry is live.
    pending: BTreeSet<u64>,
    /// Replays run.
    replays: u64,
    /// Entries replayed.
    replayed: u64,
    /// Failed deliveries in replays.
    replay_failures: u64,
    /// Range deletes written.
    range_deletes: u64,
}

impl Run<'_> {
    /// Writes one batch at the current clock: entry, apply, delete; returns whether the apply
    /// "failed" (the entry stays).
    fn write_batch(&mut self) -> Result<bool, PatternError> {
        let id = [self.rng.next_u64().to_be_bytes(), self.rng.next_u64().to_be_bytes()].concat();
        let key = entry_key(self.config.layout, INITIAL, self.clock, &id);
        let entry = self.entry();
        self.peer.put(self.batchlog, &key, &entry)?;
        if self.rng.unit() < self.config.fail_fraction {
            self.pending.insert(self.clock);
            return Ok(true);
        }
        // The entry starts with the 8 bytes of `written_at` (see `entry`).
        self.apply(&key, &entry[8..])?;
        self.peer.delete(self.batchlog, &key)?;
        Ok(false)
    }

    /// The entry of a batch at the current clock: `written_at` (u64), then per row
    /// `[key length u16][key][value length u32][value]`.
    fn entry(&mut self) -> Vec<u8> {
        let rows = self.config.rows_per_batch;
        let value_bytes = self.config.payload_bytes.div_ceil(rows);
        let mut out = Vec::with_capacity(8 + rows * (22 + value_bytes));
        out.extend_from_slice(&self.clock.to_be_bytes());
        for _ in 0..rows {
            let n = self.rng.next_u64();
            let key = crate::key(n);
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(&key);
            // value_bytes ≤ 16 MiB / 1 (validated), so it fits a u32.
            out.extend_from_slice(&(value_bytes as u32).to_be_bytes());
            out.extend_from_slice(&crate::value(n, value_bytes));
        }
        out
    }

    /// Writes the rows of `payload` (the entry under `key`) to the user keyspace.
    fn apply(&self, key: &[u8], payload: &[u8]) -> Result<(), PatternError> {
        let corrupt = |why| PatternError::Corrupt { engine: self.peer.name(), key: hex(key), why };
        let mut rest = payload;
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<2>().ok_or_else(|| corrupt("truncated key length"))?;
            let (row_key, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len))).ok_or_else(|| corrupt("truncated key"))?;
            let (len, tail) = tail.split_first_chunk::<4>().ok_or_else(|| corrupt("truncated value length"))?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| corrupt("value length"))?;
            let (value, tail) = tail.split_at_checked(len).ok_or_else(|| corrupt("truncated value"))?;
            self.peer.put(self.user, row_key, value)?;
            rest = tail;
        }
        Ok(())
    }

    /// One replay at the current clock; returns its seconds and the live entries it met.
    fn replay(&mut self, cleanup: bool) -> Result<(f64, u64), PatternError> {
        self.replays += 1;
        // Entries written at or before `bound` are old enough (v1 has no such rule).
        let bound = match self.config.layout {
            Layout::V1 => u64::MAX,
            Layout::V2 => self.clock.saturating_sub(self.config.replay_timeout_ms),
        };
        // The live entries this replay must meet.
        let expected = self.pending.range(..=bound).count() as u64;
        let start = Instant::now();
        let mut met = 0;
        match self.config.layout {
            Layout::V1 => met += self.replay_range(&[], None, false)?,
            Layout::V2 => {
                for shard in 0..SHARDS {
                    let range = |stage: u8| {
                        let start = vec![stage, shard as u8];
                        let end = [&start[..], &(bound + 1).to_be_bytes()].concat();
                        (start, end)
                    };
                    let (failed, failed_end) = range(FAILED);
                    met += self.replay_range(&failed, Some(&failed_end), false)?;
                    let (initial, initial_end) = range(INITIAL);
                    met += self.replay_range(&initial, Some(&initial_end), cleanup)?;
                    if cleanup {
                        self.peer.delete_range(self.batchlog, &initial, &initial_end)?;
                        self.range_deletes += 1;
                    }
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        if met != expected {
            return Err(PatternError::Mismatch { engine: self.peer.name(), replay: self.replays, visited: met, expected });
        }
        Ok((seconds, met))
    }

    /// Delivers (applies) and deletes every live entry in `start..end`; a failed delivery keeps
    /// the entry, or with `move_failed` moves it to the failed_replay stage. Returns how many
    /// entries there were.
    fn replay_range(&mut self, start: &[u8], end: Option<&[u8]>, move_failed: bool) -> Result<u64, PatternError> {
        let mut live = Vec::new();
        let visited = self.peer.scan(self.batchlog, start, end, &mut |key, value| {
            live.push((key.to_vec(), value.to_vec()));
            ControlFlow::Continue(())
        })?;
        for (key, entry) in &live {
            let corrupt = |why| PatternError::Corrupt { engine: self.peer.name(), key: hex(key), why };
            let (written_at, rows) = entry.split_first_chunk::<8>().ok_or_else(|| corrupt("no written_at"))?;
            let written_at = u64::from_be_bytes(*written_at);
            if self.replay_rng.unit() < self.config.replay_fail_fraction {
                self.replay_failures += 1;
                if move_failed {
                    let id = key.get(10..).ok_or_else(|| corrupt("short v2 key"))?;
                    self.peer.put(self.batchlog, &entry_key(Layout::V2, FAILED, written_at, id), entry)?;
                    self.peer.delete(self.batchlog, key)?;
                }
                continue;
            }
            self.apply(key, rows)?;
            self.peer.delete(self.batchlog, key)?;
            self.pending.remove(&written_at);
            self.replayed += 1;
        }
        Ok(visited)
    }
}

/// The v2 stage of new entries.
pub const INITIAL: u8 = 0;
/// The v2 stage of entries whose replay failed during a cleanup replay.
pub const FAILED: u8 = 1;

/// The batchlog key of the batch `id` written at `written_at` (ms), in `stage` (v2 only).
pub fn entry_key(layout: Layout, stage: u8, written_at: u64, id: &[u8]) -> Vec<u8> {
    match layout {
        Layout::V1 => id.to_vec(),
        Layout::V2 => {
            let mut key = Vec::with_capacity(10 + id.len());
            key.push(stage);
            key.push(shard_of(written_at));
            key.extend_from_slice(&written_at.to_be_bytes());
            key.extend_from_slice(id);
            key
        }
    }
}

/// The v2 shard of `written_at`: 8 bits of a hash, so batches of one ms share a shard.
pub fn shard_of(written_at: u64) -> u8 {
    (xxhash_rust::xxh3::xxh3_64(&written_at.to_be_bytes()) & 0xFF) as u8
}

/// `bytes` in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
