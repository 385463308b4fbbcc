//! Delivering a batch: the [`BatchReplayer`] trait the batchlog calls for every batch it replays
//! (the embedding node sends the mutations to the batch's replicas, as ScyllaDB's
//! `send_batchlog_replay_to_all_replicas`, A5/A9), and [`LocalReplayer`], the default, which
//! applies them to the local engine.
//!
//! Thread-safety: replayers are shared (`Send + Sync`); a v2 replay calls one from up to
//! [`super::BatchlogOptions::replay_parallelism`] threads at once (one batch per thread at a time).

use talus_format::Mutation;

use crate::engine::Engine;
use crate::error::Result;

/// A logged batch handed to a [`BatchReplayer`].
#[derive(Debug, Clone, Copy)]
pub struct ReplayBatch<'a> {
    /// The batch id.
    pub id: [u8; 16],
    /// When the batch was logged (milliseconds since the epoch).
    pub written_at_ms: i64,
    /// Its mutations, those of tables that no longer exist left out (A9 step 2).
    pub mutations: &'a [Mutation],
}

/// Delivers batches; an error leaves the batch in the batchlog for a later replay (A9 step 5).
pub trait BatchReplayer: Send + Sync {
    /// Delivers every mutation of `batch` (idempotently: a batch may be delivered more than once).
    fn replay(&self, batch: &ReplayBatch<'_>) -> Result<()>;
}

/// Applies batches to the local engine as one crash-atomic write each.
#[derive(Debug, Clone)]
pub struct LocalReplayer {
    engine: Engine,
}

impl LocalReplayer {
    /// A replayer applying to `engine`.
    pub fn new(engine: Engine) -> LocalReplayer {
        LocalReplayer { engine }
    }
}

impl BatchReplayer for LocalReplayer {
    fn replay(&self, batch: &ReplayBatch<'_>) -> Result<()> {
        if batch.mutations.is_empty() {
            return Ok(());
        }
        self.engine.apply_batch(batch.mutations).map(|_| ())
    }
}
