//! `MUTATION_FRAGMENTS` (as ScyllaDB's `SELECT * FROM MUTATION_FRAGMENTS(table)`): the raw
//! fragments one partition has in each of its sources, unmerged and uncompacted, for tests and
//! tools that look at how data is laid out (which tombstones exist, in which memtable or sstable).
//!
//! Thread-safety: reads `Arc` snapshots of the table's sources, like a query.

use std::sync::Arc;

use talus_format::sstable::reader::{Lookup, ReadCounters, ReadPlan};
use talus_format::{DecoratedKey, Fragment};

use crate::engine::Engine;
use crate::error::Result;
use crate::memtable_reader::{PartitionReader, Slice};
use crate::sstable_set::corrupt;

/// One source's fragments of a partition.
#[derive(Debug, Clone)]
pub struct SourceFragments {
    /// `memtable:N` (0 is the active memtable) or `sstable:GENERATION`.
    pub source: String,
    /// The partition's fragments in that source, `PartitionStart` to `PartitionEnd`.
    pub fragments: Vec<Fragment>,
}

impl Engine {
    /// The fragments partition `key` of `table` has in each source that holds it, memtables first
    /// (active, then sealed), then sstables newest first.
    pub fn mutation_fragments(&self, table: &str, key: &DecoratedKey) -> Result<Vec<SourceFragments>> {
        let table = self.table_by_name(table)?;
        let mut out = Vec::new();
        let mut memtables = vec![table.memtable.load_full()];
        memtables.extend(table.sealed.lock().iter().map(|s| s.memtable.clone()));
        for (n, memtable) in memtables.iter().enumerate() {
            if let Some(version) = memtable.partition(key) {
                let fragments = PartitionReader::new(key.clone(), version, Arc::new(Slice::full())).collect();
                out.push(SourceFragments { source: format!("memtable:{n}"), fragments });
            }
        }
        for sstable in table.sstables.load().iter() {
            if let Lookup::Found(index) = sstable.reader.lookup(key) {
                let stream = sstable.reader.stream_partition(index, Arc::new(ReadPlan::full()), Arc::new(ReadCounters::default()));
                let fragments = stream.collect::<talus_format::Result<Vec<_>>>().map_err(|e| corrupt(&sstable.path, e))?;
                out.push(SourceFragments { source: format!("sstable:{}", sstable.generation), fragments });
            }
        }
        Ok(out)
    }
}
