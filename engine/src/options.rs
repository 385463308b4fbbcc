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
    /// Whether background threads compact tables when their strategy finds work (after flushes
    /// and compactions). Without it tables are compacted only on request (deterministic tests).
    pub background_compaction: bool,
    /// How many compactions may run at once (background and requested together; at least 1).
    pub compaction_threads: usize,
    /// Limit on the bytes compactions write per second, all together (`None`: unlimited).
    pub compaction_throughput_bytes_per_sec: Option<u64>,
    /// Whether flushes and compactions compress and write their data blocks on a helper thread
    /// per sstable being written, and compactions read and decompress their input blocks ahead
    /// on another, while their own thread merges and encodes
    /// ([`talus_format::sstable::writer::SstableWriter::pipelined`],
    /// [`talus_format::sstable::read_ahead`]; the files written are the same either way).
    ///
    /// Trade-off: with a core to spare, a compaction or flush of compressed tables finishes
    /// sooner (compression and decompression are a third or more of its CPU time), at the cost
    /// of up to two short-lived threads per compaction (one per flush) and about 128 KiB of
    /// decompressed blocks per input plus a few hundred KiB of buffers. It does not lower the CPU
    /// time (it adds a little for the hand-offs), so when every core is busy (many concurrent
    /// compactions, or writers competing for the CPU) it gains nothing; turn it off to keep each
    /// flush and compaction on exactly one thread.
    pub pipelined_compression: bool,
    /// The niceness (0 to 19) the background flusher runs at, and the helper threads it starts:
    /// background work yields the cores to the threads writing and reading, as ScyllaDB runs
    /// memtable flushes and compactions in scheduling groups with fewer shares than statements.
    /// Flushes fall behind only while the foreground keeps every core busy, and then writers
    /// wait at the memtable total (`write_stall_limit`), so memory stays bounded. 0 runs the
    /// flusher at the engine's own priority. Linux only (elsewhere the option is ignored).
    pub flush_niceness: u8,
    /// The niceness (0 to 19) of the compaction workers and their helper threads. Above the
    /// flusher's by default: a flush frees the memory writers wait for, while a compaction only
    /// lowers later reads' work, so flushes outrank compactions (ScyllaDB's memtable-flush
    /// group has more shares than its compaction group).
    pub compaction_niceness: u8,
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
            background_compaction: true,
            compaction_threads: 1,
            compaction_throughput_bytes_per_sec: None,
            pipelined_compression: true,
            flush_niceness: 10,
            compaction_niceness: 19,
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
        if self.compaction_threads == 0 {
            return Err(Error::InvalidOptions("compaction_threads must be at least 1".into()));
        }
        if self.compaction_throughput_bytes_per_sec == Some(0) {
            return Err(Error::InvalidOptions("compaction throughput limit must be above zero (None: unlimited)".into()));
        }
        for (name, niceness) in [("flush_niceness", self.flush_niceness), ("compaction_niceness", self.compaction_niceness)] {
            if niceness > 19 {
                return Err(Error::InvalidOptions(format!("{name} {niceness} is over 19")));
            }
        }
        Ok(())
    }
}
