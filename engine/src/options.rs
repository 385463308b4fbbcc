//! Engine configuration (DESIGN §3 memory limits, §4 block cache).

use std::time::Duration;

use crate::commitlog::CommitlogOptions;
use crate::error::{Error, Result};

/// Engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Memory all memtables together may hold before the largest is flushed (bytes).
    pub memtable_total_limit: usize,
    /// Memory one table's memtable may hold before it is flushed (bytes).
    pub memtable_table_limit: usize,
    /// Capacity of the block cache of decompressed sstable blocks (bytes; 0 disables it).
    pub block_cache_bytes: u64,
    /// Whether a background thread flushes memtables when a limit says so. Without it memtables
    /// are flushed only by [`crate::Engine::flush`] (deterministic tests).
    pub background_flush: bool,
    /// How long a writer waits at most when flushing has fallen a whole memory budget behind;
    /// after that it writes anyway (writers never fail for memory).
    pub write_stall_limit: Duration,
    /// The commitlog.
    pub commitlog: CommitlogOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memtable_total_limit: 256 << 20,
            memtable_table_limit: 64 << 20,
            block_cache_bytes: 64 << 20,
            background_flush: true,
            write_stall_limit: Duration::from_secs(2),
            commitlog: CommitlogOptions::default(),
        }
    }
}

impl EngineOptions {
    /// Checks the options make sense.
    pub fn validate(&self) -> Result<()> {
        if self.memtable_total_limit == 0 || self.memtable_table_limit == 0 {
            return Err(Error::InvalidOptions("memtable limits must be above zero".into()));
        }
        Ok(())
    }
}
