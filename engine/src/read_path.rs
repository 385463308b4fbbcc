//! The read path (DESIGN §5): a query's sources are the table's memtables (active and sealed) and
//! the sstables that can hold its partitions, merged and compacted by `query::execute`.
//!
//! SSTables are skipped by key range and bloom filter (single-partition reads) and by the
//! partition index's clustering range; inside a partition the row index lets the reader skip
//! blocks outside the clustering slice or shadowed by a covering tombstone. Covering tombstones
//! are gathered before any data block is read: partition tombstones and the range tombstone
//! summaries of the partition index entries, and the tombstones of the memtables.
//!
//! A corruption met while reading an sstable fails the query with [`Error::SstableCorrupt`] and
//! quarantines the sstable, so later reads leave it out.
//!
//! Sources are loaded in the order active memtable, sealed memtables, sstables: flush publishes in
//! the opposite order, so a read sees every piece of data in at least one place.
//!
//! Thread-safety: runs on the caller's thread over `Arc` snapshots; takes no lock a writer holds.

use std::sync::Arc;

use parking_lot::Mutex;
use talus_format::sstable::clip::ClippedStream;
use talus_format::sstable::reader::{Lookup, ReadCounters, ReadPlan};
use talus_format::{FragmentStream, Position, RangeTombstone, Tombstone};

use crate::engine::{Engine, Table};
use crate::error::{Error, Result};
use crate::memtable_reader::{PartitionReader, Slice};
use crate::query::{execute, PartitionRange, Query, QueryResult, QueryStats};
use crate::sstable_set::{corrupt, Sstable};

/// The first failure of an sstable stream in this query.
pub(crate) type Failure = Arc<Mutex<Option<(Arc<Sstable>, talus_format::Error)>>>;

pub(crate) fn query(engine: &Engine, table: &Arc<Table>, query: &Query) -> Result<QueryResult> {
    let active = table.memtable.load_full();
    let mut memtables = vec![active];
    memtables.extend(table.sealed.lock().iter().map(|s| s.memtable.clone()));
    let sstables = table.sstables.load_full();

    let slice = Arc::new(query.slice.clone());
    let resume = query.paging_state.as_ref().and_then(|p| p.resume.clone().map(|r| (p.key.clone(), r)));
    let after = query.paging_state.as_ref().map(|p| &p.key);
    let bounds = query.partitions.key_bounds(after);
    let mut sources: Vec<FragmentStream<'_>> = Vec::with_capacity(memtables.len() + sstables.len());
    // A single-partition read finds its partition in each memtable with one lookup, and keeps
    // the snapshots for the covering tombstones below.
    let single_key = match (&query.partitions, &query.paging_state) {
        (PartitionRange::Single(key), None) => Some(key),
        _ => None,
    };
    let mut single_versions = Vec::new();
    for memtable in &memtables {
        if let Some(key) = single_key {
            if let Some(version) = memtable.partition(key) {
                single_versions.push(version.clone());
                sources.push(Box::new(PartitionReader::new(key.clone(), version, slice.clone()).map(Ok)));
            }
            continue;
        }
        let resumed = resume.as_ref().and_then(|(key, pos)| {
            let version = memtable.partition(key)?;
            Some(PartitionReader::new(key.clone(), version, Arc::new(slice.resumed_from(pos))))
        });
        let rest = {
            let slice = slice.clone();
            memtable.partitions_in(bounds.clone()).map(move |(key, version)| PartitionReader::new(key, version, slice.clone()))
        };
        sources.push(Box::new(resumed.into_iter().chain(rest).flatten().map(Ok)));
    }

    let counters = Arc::new(ReadCounters::default());
    let failure: Failure = Arc::new(Mutex::new(None));
    let mut sstables_read = 0u64;
    let mut bloom_filtered = 0u64;
    // The partition the read starts in: a single-partition query, or the one a page resumes in.
    // A page that ended after a partition (`resume: None`) continues past it.
    let single = match (&query.partitions, &query.paging_state) {
        (PartitionRange::Single(key), None) => Some((key.clone(), (*slice).clone())),
        (_, Some(_)) => resume.as_ref().map(|(key, pos)| (key.clone(), slice.resumed_from(pos))),
        (PartitionRange::Tokens { .. }, None) => None,
    };
    if let Some((key, part_slice)) = &single {
        let mut found: Vec<(&Arc<Sstable>, usize)> = Vec::new();
        for sstable in sstables.iter() {
            match sstable.reader.lookup(key) {
                Lookup::Found(i) => found.push((sstable, i)),
                Lookup::FilteredOut => bloom_filtered += 1,
                Lookup::OutsideKeyRange | Lookup::Absent => {}
            }
        }
        let mut covering: Vec<RangeTombstone> = Vec::new();
        // A page resuming in the partition read the memtables through ranges: look it up.
        if single_key.is_none() {
            single_versions = memtables.iter().filter_map(|m| m.partition(key)).collect();
        }
        for version in &single_versions {
            push_partition_tombstone(&mut covering, version.tombstone);
            let changes = version.range_tombstones().changes();
            for pair in changes.windows(2) {
                if pair[0].tombstone.is_some() {
                    covering.push(RangeTombstone {
                        start: pair[0].position.clone(),
                        end: pair[1].position.clone(),
                        tombstone: pair[0].tombstone,
                    });
                }
            }
        }
        for (sstable, index) in &found {
            match sstable.reader.partitions().get(*index).map(|p| p.entry()) {
                Some(Ok(entry)) => {
                    push_partition_tombstone(&mut covering, entry.tombstone);
                    covering.extend(entry.range_tombstones);
                }
                Some(Err(e)) => {
                    failure.lock().get_or_insert_with(|| ((*sstable).clone(), e));
                }
                None => {}
            }
        }
        if let Some(error) = settle_failure(engine, table, &failure) {
            return Err(error);
        }
        let plan = Arc::new(ReadPlan { ranges: part_slice.ranges.clone(), static_row: part_slice.static_row, covering, fill_cache: true });
        for (sstable, index) in found {
            sstables_read += 1;
            let stream = sstable.reader.stream_partition(index, plan.clone(), counters.clone());
            sources.push(guarded(sstable.clone(), clipped(stream, part_slice), &failure));
        }
    }
    if !matches!(query.partitions, PartitionRange::Single(_)) {
        let plan =
            Arc::new(ReadPlan { ranges: slice.ranges.clone(), static_row: slice.static_row, covering: Vec::new(), fill_cache: true });
        let bounds = (bound_ref(&bounds.0), bound_ref(&bounds.1));
        for sstable in sstables.iter() {
            let range = sstable.reader.range(bounds);
            if range.is_empty() {
                continue;
            }
            sstables_read += 1;
            let stream = sstable.reader.stream(range, plan.clone(), counters.clone());
            sources.push(guarded(sstable.clone(), clipped(stream, &slice), &failure));
        }
    }

    let stats = QueryStats {
        memtables: memtables.len() as u64,
        sstables: sstables_read,
        sstables_bloom_filtered: bloom_filtered,
        ..QueryStats::default()
    };
    let result = execute(&table.schema, query, sources, stats);
    if let Some(error) = settle_failure(engine, table, &failure) {
        return Err(error);
    }
    let mut result = result?;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    result.stats.blocks_read = counters.blocks_read.load(relaxed);
    result.stats.block_cache_hits = counters.block_cache_hits.load(relaxed);
    result.stats.blocks_skipped = counters.blocks_skipped.load(relaxed);
    Ok(result)
}

fn push_partition_tombstone(covering: &mut Vec<RangeTombstone>, tombstone: Tombstone) {
    if tombstone.is_some() {
        covering.push(RangeTombstone { start: Position::before_all_rows(), end: Position::after_all_rows(), tombstone });
    }
}

fn bound_ref<T>(b: &std::ops::Bound<T>) -> std::ops::Bound<&T> {
    b.as_ref()
}

/// Clips a stream to the slice unless the slice is everything.
fn clipped<'a>(
    stream: impl Iterator<Item = talus_format::Result<talus_format::Fragment>> + Send + 'a,
    slice: &Slice,
) -> FragmentStream<'a> {
    if slice.restricts_clustering() || !slice.static_row {
        Box::new(ClippedStream::new(stream, slice.ranges.clone(), slice.static_row))
    } else {
        Box::new(stream)
    }
}

/// The error of the first failed sstable stream, if any; a corrupt sstable is quarantined.
pub(crate) fn settle_failure(engine: &Engine, table: &Table, failure: &Failure) -> Option<Error> {
    let (sstable, error) = failure.lock().take()?;
    Some(fail_sstable(engine, table, &sstable, error))
}

/// The error of reading `sstable`; a corrupt sstable is quarantined.
pub(crate) fn fail_sstable(engine: &Engine, table: &Table, sstable: &Sstable, error: talus_format::Error) -> Error {
    let error = corrupt(&sstable.path, error);
    if matches!(error, Error::SstableCorrupt { .. }) {
        engine.quarantine(table, sstable.generation, error.to_string());
    }
    error
}

/// Records the first error of `sstable`'s stream so the query can quarantine it.
pub(crate) fn guarded<'a>(sstable: Arc<Sstable>, stream: FragmentStream<'a>, failure: &Failure) -> FragmentStream<'a> {
    let failure = failure.clone();
    Box::new(stream.map(move |item| {
        item.inspect_err(|e| {
            failure.lock().get_or_insert_with(|| (sstable.clone(), e.clone()));
        })
    }))
}
