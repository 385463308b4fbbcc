//! Talus: an embeddable LSM storage engine with ScyllaDB's data model.
//!
//! Start with [`Engine::open`], create tables from a [`talus_format::Schema`], write
//! [`talus_format::Mutation`]s with [`Engine::apply`] and read with [`Engine::query`].

pub mod batchlog;
pub mod block_cache;
pub mod commitlog;
pub mod compaction_manager;
pub mod compaction_task;
pub mod engine;
pub mod error;
pub mod flush;
pub mod flusher;
pub mod fs;
pub mod manifest;
pub mod memtable;
pub mod memtable_arena;
pub mod memtable_reader;
pub mod memtable_rows;
pub mod mutation_fragments;
pub mod options;
pub mod overlap;
pub mod partition_map;
pub mod point_read;
pub mod query;
pub mod rate_limiter;
pub mod read_path;
pub mod sstable_set;
pub mod sstable_source;
mod thread_priority;

pub use compaction_manager::{CompactionShutdown, CompactionStatus, CompactionTotals, RunningCompaction};
pub use compaction_task::{CompactionOptions, CompactionReport};
pub use engine::{Engine, OpenReport, QuarantinedSstable, WriteOptions};
pub use error::{Error, Result};
pub use flusher::FlushReport;
pub use memtable::{Memtable, MemtableStats};
pub use memtable_reader::Slice;
pub use mutation_fragments::SourceFragments;
pub use options::EngineOptions;
pub use query::scan_all;
pub use query::{PagingState, PartitionRange, Query, QueryResult, QueryStats, ResultPartition, ResultRow};
pub use talus_compaction as compaction;
pub use talus_format as format;
