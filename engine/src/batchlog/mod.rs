//! The batchlog (DESIGN §7; reference part A and C1): a durable log of batches written before a
//! batch is applied and deleted after, replayed to deliver the batches whose application failed.
//!
//! Two layouts share one [`BatchlogManager`] so they can be compared on one engine:
//!
//! - **v1** (`system.batchlog`): one partition per batch, deleted by a partition tombstone; a
//!   replay scans the whole table, so its cost follows the history of deleted batches.
//! - **v2** (`system.batchlog_v2`): batches are rows of 256 shard partitions per stage, deleted by
//!   row tombstones; a replay with cleanup writes one range tombstone per initial-stage shard
//!   partition up to the replay bound (A8 step 5e–5h). The memtable and compaction drop every row
//!   and row tombstone under a newer range tombstone without waiting for tombstone GC, and the
//!   read path skips row-index blocks wholly under it, so a replay's cost follows the live batches.
//!
//! Write path (A6): [`BatchlogManager::write`] logs a batch (one engine write), the caller applies
//! it, then [`BatchlogManager::remove`] deletes the entry; [`BatchlogManager::mutate_logged`] does
//! all three through the [`BatchReplayer`].
//!
//! Improvements over ScyllaDB, each tested: the cleanup tombstone of a shard is written whenever
//! the shard holds entries written since its last cleanup, dead ones included (gap I7); a replay
//! reads only rows with `written_at` at or below the bound past which every batch is too fresh;
//! a batch is never born under an existing cleanup tombstone: a replay raises a floor under which
//! no `written_at` is stamped any more, waiting for writes in flight (T6, I4).
//!
//! Thread-safety: writers run concurrently (they share a read lock of the write gate); replays
//! are serialised by one lock (A7's semaphore of one unit) and take the write gate only to raise
//! the floor. A v2 replay reads its shards on up to [`BatchlogOptions::replay_parallelism`]
//! threads.

mod clock;
mod replay;
mod replay_v1;
mod replay_v2;
mod replayer;
pub mod tables;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use talus_format::{GcTime, Mutation, RangeBound, SchemaRef, Timestamp, Value};

pub use clock::{BatchlogClock, ManualClock, SystemClock};
pub use replay::{BatchlogMetrics, ReplayReport};
pub use replayer::{BatchReplayer, LocalReplayer, ReplayBatch};
use tables::{encode_batch, shard_of, v1_schema, v2_partition, v2_schema, Stage, BATCHLOG_VERSION, SHARDS};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::rate_limiter::RateLimiter;

/// Which table the batchlog writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchlogLayout {
    /// `system.batchlog`: one partition per batch.
    V1,
    /// `system.batchlog_v2`: rows of 256 shard partitions, cleaned up by range tombstones.
    V2,
}

/// Batchlog configuration (A7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchlogOptions {
    /// The layout new batches are written in (v2 also migrates v1 entries, A11).
    pub layout: BatchlogLayout,
    /// A batch younger than this is "too fresh" and skipped by a replay: its write may still be
    /// under way (ScyllaDB: twice the write timeout, 4 s).
    pub replay_timeout: Duration,
    /// [`BatchlogManager::replay_scheduled`] cleans up on every N-th replay (default 1, #26671).
    pub cleanup_after_replays: u32,
    /// Limit on the batch bytes a replay sends per second (`None`: unlimited; ScyllaDB 1024 kB).
    pub replay_rate_bytes_per_sec: Option<u64>,
    /// Rows per page of a replay's scan (ScyllaDB: 128).
    pub page_size: u64,
    /// How many of the v2 replay's 16 chunks of 16 shards are replayed at once, each on its own
    /// thread (the caller's and scoped helpers; A8 step 5 runs all 16 concurrently). The
    /// [`BatchReplayer`] is then called from several threads at once. Default: the machine's
    /// cores, at most 16; 1 replays on the caller's thread only. A replay with only a few
    /// partitions to read uses one thread whatever this says.
    pub replay_parallelism: usize,
}

impl Default for BatchlogOptions {
    fn default() -> Self {
        BatchlogOptions {
            layout: BatchlogLayout::V2,
            replay_timeout: Duration::from_secs(4),
            cleanup_after_replays: 1,
            replay_rate_bytes_per_sec: Some(1_024_000),
            page_size: 128,
            replay_parallelism: std::thread::available_parallelism().map_or(1, |n| n.get().min(16)),
        }
    }
}

impl BatchlogOptions {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidOptions(format!("batchlog: {what}")));
        if self.cleanup_after_replays == 0 {
            return bad("cleanup_after_replays must be at least 1");
        }
        if self.replay_rate_bytes_per_sec == Some(0) {
            return bad("replay rate limit must be above zero (None: unlimited)");
        }
        if self.page_size == 0 {
            return bad("page_size must be at least 1");
        }
        if self.replay_parallelism == 0 {
            return bad("replay_parallelism must be at least 1");
        }
        if i64::try_from(self.replay_timeout.as_millis()).is_err() {
            return bad("replay_timeout is too large");
        }
        Ok(())
    }

    fn replay_timeout_ms(&self) -> i64 {
        // validate() checked that it fits.
        i64::try_from(self.replay_timeout.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The key of a logged batch: what [`BatchlogManager::remove`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHandle {
    /// The layout it was written in.
    pub layout: BatchlogLayout,
    /// The batch id (a random UUID).
    pub id: [u8; 16],
    /// When it was logged, as stamped (milliseconds since the epoch).
    pub written_at_ms: i64,
}

/// What [`BatchlogManager::mutate_logged`] did.
#[derive(Debug)]
pub struct LoggedBatch {
    /// The logged entry.
    pub handle: BatchHandle,
    /// `None`: applied and the entry deleted; `Some(error)`: the replayer failed, the entry stays
    /// for a replay.
    pub apply_error: Option<Error>,
}

/// The value of "no entry written since the last cleanup" in a shard's dirty mark.
const CLEAN: i64 = i64::MIN;
/// A shard's dirty mark before anything is known (after open): below every bound, so the first
/// cleanup covers the shard's whole history.
const UNKNOWN_HISTORY: i64 = i64::MIN + 1;

/// Writes, removes and replays logged batches on one engine (see the module documentation).
pub struct BatchlogManager {
    engine: Engine,
    options: BatchlogOptions,
    clock: Arc<dyn BatchlogClock>,
    replayer: Arc<dyn BatchReplayer>,
    v1: SchemaRef,
    v2: SchemaRef,
    limiter: Option<RateLimiter>,
    /// Writers hold it shared while they stamp and write; a replay takes it exclusively to raise
    /// `floor_ms`, so no write in flight can land under the replay's bound.
    write_gate: RwLock<()>,
    /// No entry is stamped at or below this `written_at` (the highest cleanup bound so far).
    floor_ms: AtomicI64,
    /// Per v2 shard, the highest `written_at` of initial entries written since the shard's last
    /// cleanup ([`CLEAN`]: none).
    dirty: Vec<AtomicI64>,
    /// Per v2 partition (`stage * SHARDS + shard`), the highest `written_at` of entries that may
    /// be live there ([`CLEAN`]: none): a replay reads only partitions that may hold live
    /// entries, so its cost follows the live batches (the tables are written only through the
    /// manager; after open every existing partition is read once).
    maybe_live: Vec<AtomicI64>,
    /// Per v2 partition, whether its history before this process is known: until a replay has
    /// read it whole (no `written_at` bound), entries of a previous process may be anywhere in it.
    history_read: Vec<AtomicBool>,
    /// The second half of every batch id this manager makes.
    node: u64,
    /// Highest write timestamp handed out (microseconds), for monotonic timestamps (C1.7).
    last_timestamp: AtomicI64,
    /// Serialises replays and holds what lives across them.
    replay_state: Mutex<replay::ReplayState>,
    metrics: Mutex<BatchlogMetrics>,
}

impl std::fmt::Debug for BatchlogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchlogManager").field("options", &self.options).field("clock", &self.clock).finish()
    }
}

impl BatchlogManager {
    /// Opens the batchlog of `engine` with the system clock and the [`LocalReplayer`], creating
    /// its tables if needed.
    pub fn open(engine: &Engine, options: BatchlogOptions) -> Result<BatchlogManager> {
        BatchlogManager::open_with(engine, options, Arc::new(SystemClock), Arc::new(LocalReplayer::new(engine.clone())))
    }

    /// Opens the batchlog with a given clock and replayer. Both tables are created when missing
    /// (v1 stays readable under v2 so its entries can be migrated, A11).
    pub fn open_with(
        engine: &Engine,
        options: BatchlogOptions,
        clock: Arc<dyn BatchlogClock>,
        replayer: Arc<dyn BatchReplayer>,
    ) -> Result<BatchlogManager> {
        options.validate()?;
        let (v1, _) = ensure_table(engine, v1_schema()?)?;
        let (v2, created) = ensure_table(engine, v2_schema()?)?;
        // A table created just now has no history; an existing one may hold dead entries of a
        // previous process in any shard, so the first cleanup covers every shard.
        let history = if created { CLEAN } else { UNKNOWN_HISTORY };
        let first_timestamp = clock.now_millis().saturating_add(1).saturating_mul(1000);
        Ok(BatchlogManager {
            engine: engine.clone(),
            limiter: options.replay_rate_bytes_per_sec.map(RateLimiter::new),
            options,
            clock,
            replayer,
            v1,
            v2,
            write_gate: RwLock::new(()),
            floor_ms: AtomicI64::new(i64::MIN),
            dirty: (0..SHARDS).map(|_| AtomicI64::new(history)).collect(),
            maybe_live: (0..2 * SHARDS).map(|_| AtomicI64::new(CLEAN)).collect(),
            history_read: (0..2 * SHARDS).map(|_| AtomicBool::new(created)).collect(),
            // Timestamps start at the next millisecond: a previous process that ran in this one
            // (a restart within a millisecond) handed out its own from this one's start.
            last_timestamp: AtomicI64::new(first_timestamp),
            node: random_node(),
            replay_state: Mutex::new(replay::ReplayState::default()),
            metrics: Mutex::new(BatchlogMetrics::default()),
        })
    }

    /// The options.
    pub fn options(&self) -> &BatchlogOptions {
        &self.options
    }

    /// The schema of the table of `layout`.
    pub fn schema(&self, layout: BatchlogLayout) -> &SchemaRef {
        match layout {
            BatchlogLayout::V1 => &self.v1,
            BatchlogLayout::V2 => &self.v2,
        }
    }

    /// Totals over every replay since open (C5).
    pub fn metrics(&self) -> BatchlogMetrics {
        *self.metrics.lock()
    }

    /// Logs a batch before it is applied (A6 step 2): one engine write, durable as the engine's
    /// commitlog durability says. `written_at` and the id are taken once, here.
    pub fn write(&self, mutations: &[Mutation]) -> Result<BatchHandle> {
        self.write_at(self.clock.now_millis(), self.next_id(), mutations)
    }

    /// Logs a batch with a given `written_at` and id (a coordinator's own clock, a migration).
    /// A `written_at` at or below the highest cleanup bound is re-stamped just above it, so the
    /// entry is never born dead under a cleanup tombstone (T6); the handle says what was used.
    pub fn write_at(&self, written_at_ms: i64, id: [u8; 16], mutations: &[Mutation]) -> Result<BatchHandle> {
        let data = encode_batch(mutations)?;
        let _gate = self.write_gate.read();
        let floor = self.floor_ms.load(Ordering::SeqCst);
        let written_at_ms = if written_at_ms <= floor { floor.saturating_add(1) } else { written_at_ms };
        let handle = BatchHandle { layout: self.options.layout, id, written_at_ms };
        let mutation = self.entry_mutation(&handle, Stage::Initial, data)?;
        self.engine.apply(&mutation)?;
        if handle.layout == BatchlogLayout::V2 {
            self.dirty[usize::from(shard_of(written_at_ms))].fetch_max(written_at_ms, Ordering::SeqCst);
            self.note_maybe_live(Stage::Initial, written_at_ms);
        }
        Ok(handle)
    }

    /// Deletes a logged batch after it was applied (A6 step 4): a partition tombstone in v1, a
    /// row tombstone in v2.
    pub fn remove(&self, handle: &BatchHandle) -> Result<()> {
        self.engine.apply(&self.delete_mutation(handle, Stage::Initial)?)?;
        Ok(())
    }

    /// Logs `mutations`, delivers them through the replayer and deletes the entry when that
    /// succeeded (A6). A delivery failure is not an error of this call: the entry stays for a
    /// replay, and [`LoggedBatch::apply_error`] says why.
    pub fn mutate_logged(&self, mutations: &[Mutation]) -> Result<LoggedBatch> {
        let handle = self.write(mutations)?;
        let batch = ReplayBatch { id: handle.id, written_at_ms: handle.written_at_ms, mutations };
        match self.replayer.replay(&batch) {
            Ok(()) => {
                self.remove(&handle)?;
                Ok(LoggedBatch { handle, apply_error: None })
            }
            Err(e) => Ok(LoggedBatch { handle, apply_error: Some(e) }),
        }
    }

    /// The write of an entry of `handle`'s batch in `stage` (v2; v1 has one stage) with `data`.
    /// No row marker, as ScyllaDB (A5): the entry is live while its `data` cell is.
    fn entry_mutation(&self, handle: &BatchHandle, stage: Stage, data: bytes::Bytes) -> Result<Mutation> {
        let ts = self.next_timestamp();
        let data = Value::Blob(data);
        Ok(match handle.layout {
            BatchlogLayout::V1 => Mutation::builder(&self.v1, &[Value::Uuid(handle.id)])
                .set(&[], "data", data, ts)
                .set(&[], "version", Value::Int(BATCHLOG_VERSION), ts)
                .set(&[], "written_at", Value::Timestamp(handle.written_at_ms), ts)
                .build()?,
            BatchlogLayout::V2 => {
                let partition = v2_partition(stage, shard_of(handle.written_at_ms));
                Mutation::builder(&self.v2, &partition).set(&v2_clustering(handle), "data", data, ts).build()?
            }
        })
    }

    /// The deletion of `handle`'s entry in `stage` (v2) or of its partition (v1).
    fn delete_mutation(&self, handle: &BatchHandle, stage: Stage) -> Result<Mutation> {
        let ts = self.next_timestamp();
        let now = self.gc_now();
        Ok(match handle.layout {
            BatchlogLayout::V1 => Mutation::builder(&self.v1, &[Value::Uuid(handle.id)]).now(now).delete_partition(ts).build()?,
            BatchlogLayout::V2 => {
                let partition = v2_partition(stage, shard_of(handle.written_at_ms));
                Mutation::builder(&self.v2, &partition).now(now).delete_row(&v2_clustering(handle), ts).build()?
            }
        })
    }

    /// The cleanup range tombstone of initial shard `shard`: `[before all rows, end]` (A8 5e–5h).
    fn cleanup_mutation(&self, shard: u8, end: RangeBound, ts: Timestamp) -> Result<Mutation> {
        let partition = v2_partition(Stage::Initial, shard);
        Ok(Mutation::builder(&self.v2, &partition).now(self.gc_now()).delete_range(RangeBound::Unbounded, end, ts).build()?)
    }

    /// A write timestamp from the clock, strictly above every one handed out before (C1.7).
    fn next_timestamp(&self) -> Timestamp {
        let wanted = self.clock.now_millis().saturating_mul(1000);
        let previous = self
            .last_timestamp
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(wanted.max(last.saturating_add(1))))
            // The closure always returns Some, so the update cannot fail; the old value is Ok.
            .unwrap_or_else(|last| last);
        Timestamp(wanted.max(previous.saturating_add(1)))
    }

    /// A batch id unique in this process (a fresh monotonic timestamp) and, with high
    /// probability, across processes (this manager's random node half).
    fn next_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_timestamp().0.to_be_bytes());
        id[8..].copy_from_slice(&self.node.to_be_bytes());
        id
    }

    /// Notes that an entry of `written_at_ms` may be live in `stage`.
    fn note_maybe_live(&self, stage: Stage, written_at_ms: i64) {
        self.maybe_live[live_mark(stage, shard_of(written_at_ms))].fetch_max(written_at_ms, Ordering::SeqCst);
    }

    /// The deletion time of tombstones written now, and the expiry time of scans.
    fn gc_now(&self) -> GcTime {
        GcTime(self.clock.gc_millis().div_euclid(1000))
    }
}

/// A random 64-bit node id, from the time and the process id.
fn random_node() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    SmallRng::seed_from_u64(nanos ^ (u64::from(std::process::id()) << 32)).random()
}

/// The index of partition `(stage, shard)` in [`BatchlogManager::maybe_live`].
fn live_mark(stage: Stage, shard: u8) -> usize {
    stage as usize * SHARDS + usize::from(shard)
}

/// The clustering key `(written_at, id)` of a v2 entry.
fn v2_clustering(handle: &BatchHandle) -> [Value; 2] {
    [Value::Timestamp(handle.written_at_ms), Value::Uuid(handle.id)]
}

/// The table of `schema`, created if missing (then `true`); an existing table of another shape is
/// an error.
fn ensure_table(engine: &Engine, schema: SchemaRef) -> Result<(SchemaRef, bool)> {
    let name = schema.full_name();
    match engine.schema(&name) {
        Ok(existing)
            if existing.id == schema.id && existing.partition_key == schema.partition_key && existing.clustering == schema.clustering =>
        {
            Ok((existing, false))
        }
        Ok(_) => Err(Error::InvalidOptions(format!("{name} exists with another schema than the batchlog's"))),
        Err(Error::UnknownTable(_)) => {
            engine.create_table(schema.clone())?;
            Ok((schema, true))
        }
        Err(e) => Err(e),
    }
}
