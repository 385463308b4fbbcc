//! Queries: what to read, and the result builder that turns a compacted fragment stream into rows
//! with limits, paging and ScyllaDB's tombstone guards (DESIGN §5, R5.4–R5.5).
//!
//! The sources of a query are merged ([`MergedStream`]), compacted for reading ([`Compactor`] with
//! no overlap check, R5.4: purgeable tombstones are not returned but still shadow), and consumed one
//! input fragment at a time, so a paged read can stop between any two fragments when it has seen
//! [`TOMBSTONE_PAGE_LIMIT`] tombstones (R5.5) and resume exactly there.

use std::ops::Bound;

use bytes::Bytes;
use talus_compaction::{CompactionPurpose, CompactionStats, Compactor, GcPolicy, MergedStream};
use talus_format::{
    ClusteringPrefix, ColumnId, DecoratedKey, Fragment, FragmentStream, GcTime, PartitionKey, Position, RangeBound, Schema, Token, Value,
};

use crate::error::{Error, Result};
use crate::memtable_reader::Slice;

/// `tombstone_warn_threshold` (R5.5): a single-partition read that sees this many tombstones warns.
pub const TOMBSTONE_WARN_THRESHOLD: u64 = 1_000;
/// `query_tombstone_page_limit` (R5.5): a paged read cuts its page after this many tombstones.
pub const TOMBSTONE_PAGE_LIMIT: u64 = 10_000;

/// Which partitions a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionRange {
    /// One partition.
    Single(DecoratedKey),
    /// The partitions whose tokens fall between the bounds.
    Tokens {
        /// Lower bound.
        start: Bound<Token>,
        /// Upper bound.
        end: Bound<Token>,
    },
}

impl PartitionRange {
    /// Every partition.
    pub fn all() -> PartitionRange {
        PartitionRange::Tokens { start: Bound::Unbounded, end: Bound::Unbounded }
    }

    /// The key bounds of the range, after the paging position `after` (exclusive) if any.
    pub fn key_bounds(&self, after: Option<&DecoratedKey>) -> (Bound<DecoratedKey>, Bound<DecoratedKey>) {
        // The empty key sorts first among the keys of a token (R1.5).
        let first_of = |t: i64| DecoratedKey { token: Token(t), key: PartitionKey::from_legacy_bytes(Bytes::new()) };
        let (start, end) = match self {
            PartitionRange::Single(key) => (Bound::Included(key.clone()), Bound::Included(key.clone())),
            PartitionRange::Tokens { start, end } => {
                let start = match start {
                    Bound::Unbounded => Bound::Unbounded,
                    Bound::Included(t) => Bound::Included(first_of(t.0)),
                    Bound::Excluded(t) if t.0 == i64::MAX => Bound::Excluded(first_of(i64::MAX)),
                    Bound::Excluded(t) => Bound::Included(first_of(t.0 + 1)),
                };
                let end = match end {
                    Bound::Unbounded => Bound::Unbounded,
                    Bound::Included(t) if t.0 == i64::MAX => Bound::Unbounded,
                    Bound::Included(t) => Bound::Excluded(first_of(t.0 + 1)),
                    Bound::Excluded(t) => Bound::Excluded(first_of(t.0)),
                };
                (start, end)
            }
        };
        match after {
            Some(key) if bound_below(&start, key) => (Bound::Excluded(key.clone()), end),
            _ => (start, end),
        }
    }
}

/// Whether `bound` (a lower bound) admits keys at or below `key`.
fn bound_below(bound: &Bound<DecoratedKey>, key: &DecoratedKey) -> bool {
    match bound {
        Bound::Unbounded => true,
        Bound::Included(b) | Bound::Excluded(b) => b <= key,
    }
}

/// Where a paged query continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagingState {
    /// The partition the previous page ended in.
    pub key: DecoratedKey,
    /// Continue inside that partition from this position (inclusive); `None`: after it.
    pub resume: Option<Position>,
    /// Rows still allowed by the query's overall row limit.
    pub rows_remaining: Option<u64>,
}

/// A read.
#[derive(Debug, Clone)]
pub struct Query {
    /// The table, `keyspace.name`.
    pub table: String,
    /// Which partitions.
    pub partitions: PartitionRange,
    /// Which clustering ranges (and whether the static row).
    pub slice: Slice,
    /// At most this many live rows in total (across pages).
    pub row_limit: Option<u64>,
    /// Paged read: at most this many rows per page; pages may also be cut by tombstones (R5.5).
    pub page_size: Option<u64>,
    /// Continue a previous page.
    pub paging_state: Option<PagingState>,
    /// The gc clock of the read: expiry and tombstone GC (R5.4).
    pub now: GcTime,
}

impl Query {
    /// A full read of one partition of `schema`'s table, by typed key.
    pub fn partition(schema: &Schema, key: &[Value]) -> Result<Query> {
        let key = schema.decorated_key(key)?;
        Ok(Query::new(&schema.full_name(), PartitionRange::Single(key)))
    }

    /// A full read of the partitions in `partitions` of table `table`.
    pub fn new(table: &str, partitions: PartitionRange) -> Query {
        Query {
            table: table.to_string(),
            partitions,
            slice: Slice::full(),
            row_limit: None,
            page_size: None,
            paging_state: None,
            now: GcTime::now(),
        }
    }

    /// Restricts the rows to clustering ranges given as typed bounds (they must be sorted and
    /// disjoint); the static row is still read.
    pub fn with_clustering_ranges(mut self, schema: &Schema, ranges: &[(RangeBound, RangeBound)]) -> Result<Query> {
        let mut positions = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            positions.push(schema.range_positions(start, end)?);
        }
        if positions.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err(Error::InvalidQuery("clustering ranges must be sorted and disjoint".into()));
        }
        self.slice = Slice { ranges: positions, static_row: true };
        Ok(self)
    }
}

/// A returned row: its clustering key and live cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    /// Full clustering key.
    pub clustering: ClusteringPrefix,
    /// Live cells by column id.
    pub cells: Vec<(ColumnId, Bytes)>,
}

/// A returned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultPartition {
    /// The partition key.
    pub key: DecoratedKey,
    /// Live static cells.
    pub static_cells: Vec<(ColumnId, Bytes)>,
    /// Live rows in clustering order. Empty with non-empty static cells: a static-only row (R1.24).
    pub rows: Vec<ResultRow>,
}

/// What a query touched (DESIGN §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Live rows returned (a static-only partition counts as one, R5.4).
    pub live_rows: u64,
    /// Memtables read.
    pub memtables: u64,
    /// SSTables read.
    pub sstables: u64,
    /// SSTables a single-partition read left out because their bloom filter ruled the key out.
    pub sstables_bloom_filtered: u64,
    /// SSTable data blocks read (from the block cache or the file).
    pub blocks_read: u64,
    /// SSTable data blocks served by the block cache.
    pub block_cache_hits: u64,
    /// SSTable data blocks skipped: outside the clustering ranges, or shadowed by a newer
    /// partition or range tombstone (DESIGN §5).
    pub blocks_skipped: u64,
    /// What the read compactor saw: tombstones of every kind, dead rows, purged tombstones.
    pub compaction: CompactionStats,
}

/// The result of a query (one page of it, for paged reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// Partitions with something live, in ring order.
    pub partitions: Vec<ResultPartition>,
    /// Where to continue, when the page was cut (paged reads only).
    pub paging_state: Option<PagingState>,
    /// Statistics.
    pub stats: QueryStats,
    /// Warnings (e.g. the tombstone warn threshold, R5.5).
    pub warnings: Vec<String>,
}

impl QueryResult {
    /// Every row of every partition, flattened (static-only rows excluded).
    pub fn rows(&self) -> impl Iterator<Item = (&DecoratedKey, &ResultRow)> {
        self.partitions.iter().flat_map(|p| p.rows.iter().map(move |r| (&p.key, r)))
    }
}

/// Runs `query` over already-opened `sources` of `schema`'s table.
pub(crate) fn execute(schema: &Schema, query: &Query, sources: Vec<FragmentStream<'_>>, mut stats: QueryStats) -> Result<QueryResult> {
    let opts = &schema.options;
    let mut compactor = Compactor::new(GcPolicy::for_read(opts.tombstone_gc, opts.gc_grace_seconds, query.now), CompactionPurpose::Read);
    let mut builder = ResultBuilder::new(query);
    let paged = query.page_size.is_some();
    let mut out = Vec::new();
    let mut current: Option<DecoratedKey> = None;
    let mut partition_guard_start = 0;
    let mut paging_state = None;
    for fragment in MergedStream::new(sources) {
        let fragment = fragment?;
        let resume = match &fragment {
            Fragment::PartitionStart { key, .. } => {
                current = Some(key.clone());
                partition_guard_start = compactor.stats().guard_count();
                Some(Position::partition_start())
            }
            Fragment::StaticRow(_) => Some(Position::before_all_rows()),
            Fragment::Row { key, .. } => Some(Position::after_key(key.clone())),
            Fragment::RangeTombstoneChange(c) => Some(c.position.clone()),
            Fragment::PartitionEnd => None,
        };
        let is_end = matches!(fragment, Fragment::PartitionEnd);
        compactor.consume(fragment, &mut out);
        let mut full = false;
        for f in out.drain(..) {
            full |= builder.accept(f);
        }
        if is_end {
            let seen = compactor.stats().guard_count() - partition_guard_start;
            if matches!(query.partitions, PartitionRange::Single(_)) && seen >= TOMBSTONE_WARN_THRESHOLD {
                builder.warnings.push(format!(
                    "read {seen} tombstones in one partition of {} (tombstone_warn_threshold {TOMBSTONE_WARN_THRESHOLD})",
                    query.table
                ));
            }
        }
        let tombstone_cut = paged && compactor.stats().guard_count() >= TOMBSTONE_PAGE_LIMIT;
        if full || tombstone_cut {
            if let Some(key) = current.clone() {
                let resume = if full { builder.resume_after_last() } else { resume };
                builder.finish_open_partition();
                let rows_remaining = builder.rows_remaining_overall();
                // A query whose overall row limit is used up is complete.
                if rows_remaining != Some(0) {
                    paging_state = Some(PagingState { key, resume, rows_remaining });
                }
            }
            break;
        }
    }
    builder.finish_open_partition();
    stats.live_rows = builder.live_rows;
    stats.compaction = *compactor.stats();
    Ok(QueryResult {
        partitions: builder.partitions,
        // An unpaged query that hit its row limit is complete, not cut.
        paging_state: if paged { paging_state } else { None },
        stats,
        warnings: builder.warnings,
    })
}

/// Builds result partitions from compacted fragments and counts rows against the limits.
struct ResultBuilder {
    now: GcTime,
    restricts_clustering: bool,
    open: Option<ResultPartition>,
    partitions: Vec<ResultPartition>,
    live_rows: u64,
    /// Rows this page may still return.
    page_left: Option<u64>,
    /// Rows the whole query may still return, before this page.
    overall_left: Option<u64>,
    last_row: Option<ClusteringPrefix>,
    warnings: Vec<String>,
}

impl ResultBuilder {
    fn new(query: &Query) -> ResultBuilder {
        let overall_left = query.paging_state.as_ref().and_then(|p| p.rows_remaining).or(query.row_limit);
        let page_left = match (overall_left, query.page_size) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ResultBuilder {
            now: query.now,
            restricts_clustering: query.slice.restricts_clustering(),
            open: None,
            partitions: Vec::new(),
            live_rows: 0,
            page_left,
            overall_left,
            last_row: None,
            warnings: Vec::new(),
        }
    }

    /// Counts one returned row; true when the page is full.
    fn count_row(&mut self) -> bool {
        self.live_rows += 1;
        match &mut self.page_left {
            Some(left) => {
                *left = left.saturating_sub(1);
                *left == 0
            }
            None => false,
        }
    }

    /// Takes one compacted fragment; returns true when the page is full.
    fn accept(&mut self, fragment: Fragment) -> bool {
        match fragment {
            Fragment::PartitionStart { key, .. } => {
                self.open = Some(ResultPartition { key, static_cells: Vec::new(), rows: Vec::new() });
                self.last_row = None;
                false
            }
            Fragment::StaticRow(cells) => {
                let live = live_cells(cells, self.now);
                if let Some(p) = &mut self.open {
                    p.static_cells = live;
                }
                false
            }
            Fragment::Row { key, row } => {
                if !row.is_live_at(self.now) {
                    return false;
                }
                let cells = live_cells(row.cells, self.now);
                self.last_row = Some(key.clone());
                if let Some(p) = &mut self.open {
                    p.rows.push(ResultRow { clustering: key, cells });
                }
                self.count_row()
            }
            Fragment::RangeTombstoneChange(_) => false,
            Fragment::PartitionEnd => {
                let Some(p) = self.open.take() else { return false };
                self.last_row = None;
                // R1.24 / R5.4: a partition with only a live static row is one row, unless the
                // query restricts clustering columns.
                let static_only = p.rows.is_empty() && !p.static_cells.is_empty() && !self.restricts_clustering;
                let keep = !p.rows.is_empty() || static_only;
                if keep {
                    self.partitions.push(p);
                }
                static_only && self.count_row()
            }
        }
    }

    /// Where to resume after the last row returned (`None`: after the partition).
    fn resume_after_last(&self) -> Option<Position> {
        self.last_row.clone().map(Position::after_key)
    }

    fn finish_open_partition(&mut self) {
        if let Some(p) = self.open.take() {
            if !p.rows.is_empty() || !p.static_cells.is_empty() {
                self.partitions.push(p);
            }
        }
    }

    fn rows_remaining_overall(&self) -> Option<u64> {
        self.overall_left.map(|left| left.saturating_sub(self.live_rows))
    }
}

/// The live cells of `cells` at `now`, with their values (taken, not copied).
pub(crate) fn live_cells(cells: talus_format::Cells, now: GcTime) -> Vec<(ColumnId, Bytes)> {
    cells.into_iter().filter(|(_, c)| c.is_live_at(now)).filter_map(|(id, c)| c.into_value().map(|v| (id, v))).collect()
}

/// A convenience for [`Query`] over every partition.
pub fn scan_all(table: &str) -> Query {
    Query::new(table, PartitionRange::all())
}
