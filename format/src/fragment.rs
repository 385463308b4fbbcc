//! The fragment stream: the one interchange type between memtables, sstables, the commitlog
//! replayer, compaction, flush and queries (DESIGN §2, R1.34–R1.36).
//!
//! ```text
//! PartitionStart{key, tombstone}  StaticRow?  (Row | RangeTombstoneChange)*  PartitionEnd
//! ```
//!
//! Partitions come in [`DecoratedKey`] order; positions strictly increase inside a partition (a
//! range tombstone change may repeat the position of the change before it); the last range
//! tombstone change of a partition is empty. [`StreamValidator`] checks exactly these rules.

use crate::error::{Error, Result};
use crate::partition_key::DecoratedKey;
use crate::position::{ClusteringPrefix, Position, PositionRef, Region};
use crate::range_tombstone::RangeTombstoneChange;
use crate::row::{Cells, Row};
use crate::tombstone::Tombstone;

/// One element of a fragment stream (R1.34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    /// Opens a partition, carrying its partition tombstone (possibly empty).
    PartitionStart {
        /// The partition key.
        key: DecoratedKey,
        /// The partition tombstone.
        tombstone: Tombstone,
    },
    /// The static row's cells (covered only by the partition tombstone, R1.24).
    StaticRow(Cells),
    /// A clustering row.
    Row {
        /// Its full clustering key.
        key: ClusteringPrefix,
        /// Its content.
        row: Row,
    },
    /// A change of the active range tombstone (R1.35).
    RangeTombstoneChange(RangeTombstoneChange),
    /// Closes the partition.
    PartitionEnd,
}

impl Fragment {
    /// The fragment's position in its partition.
    pub fn position(&self) -> Position {
        match self {
            Fragment::PartitionStart { .. } => Position::partition_start(),
            Fragment::StaticRow(_) => Position::static_row(),
            Fragment::Row { key, .. } => Position::at_row(key.clone()),
            Fragment::RangeTombstoneChange(c) => c.position.clone(),
            Fragment::PartitionEnd => Position::partition_end(),
        }
    }
}

impl Fragment {
    /// The fragment's position, borrowed (no clone of the clustering key).
    pub fn position_ref(&self) -> PositionRef<'_> {
        match self {
            Fragment::PartitionStart { .. } => PositionRef::new(Region::PartitionStart, &[], 0),
            Fragment::StaticRow(_) => PositionRef::new(Region::StaticRow, &[], 0),
            Fragment::Row { key, .. } => PositionRef::new(Region::Clustered, key.encoded(), 0),
            Fragment::RangeTombstoneChange(c) => c.position.borrowed(),
            Fragment::PartitionEnd => PositionRef::new(Region::PartitionEnd, &[], 0),
        }
    }
}

/// A stream of fragments; errors (I/O, corruption) travel in-band.
pub type FragmentStream<'a> = Box<dyn Iterator<Item = Result<Fragment>> + Send + 'a>;

/// Checks the stream rules of R1.36, fragment by fragment.
#[derive(Debug, Default)]
pub struct StreamValidator {
    last_key: Option<DecoratedKey>,
    in_partition: bool,
    last_position: Option<Position>,
    last_was_rtc: bool,
    active_rt: Tombstone,
}

impl StreamValidator {
    /// A validator expecting the start of a stream.
    pub fn new() -> StreamValidator {
        StreamValidator::default()
    }

    /// Checks the next fragment.
    pub fn check(&mut self, fragment: &Fragment) -> Result<()> {
        let fail = |msg: String| Err(Error::InvalidStream(msg));
        match fragment {
            Fragment::PartitionStart { key, .. } => {
                if self.in_partition {
                    return fail(format!("partition start of {key:?} inside an open partition"));
                }
                if let Some(last) = &self.last_key {
                    if key <= last {
                        return fail(format!("partition {key:?} does not follow {last:?} (R1.5 order)"));
                    }
                }
                self.last_key = Some(key.clone());
                self.in_partition = true;
                self.last_position = Some(Position::partition_start());
                self.last_was_rtc = false;
                self.active_rt = Tombstone::NONE;
                Ok(())
            }
            Fragment::PartitionEnd => {
                if !self.in_partition {
                    return fail("partition end outside a partition".into());
                }
                if self.active_rt.is_some() {
                    return fail(format!("partition end with an open range tombstone {:?}", self.active_rt));
                }
                self.in_partition = false;
                Ok(())
            }
            other => {
                if !self.in_partition {
                    return fail(format!("{:?} outside a partition", other.position()));
                }
                let pos = other.position();
                let is_rtc = matches!(other, Fragment::RangeTombstoneChange(_));
                if let Some(last) = &self.last_position {
                    let repeat_ok = is_rtc && self.last_was_rtc && pos == *last;
                    if pos <= *last && !repeat_ok {
                        return fail(format!("position {pos:?} does not follow {last:?}"));
                    }
                }
                if let Fragment::RangeTombstoneChange(c) = other {
                    self.active_rt = c.tombstone;
                }
                self.last_position = Some(pos);
                self.last_was_rtc = is_rtc;
                Ok(())
            }
        }
    }

    /// Checks that the stream may end here (no open partition).
    pub fn finish(&self) -> Result<()> {
        if self.in_partition {
            Err(Error::InvalidStream("stream ended inside a partition".into()))
        } else {
            Ok(())
        }
    }
}

/// Wraps `stream` so that a rule violation becomes an in-band error (tests and debug builds).
pub fn validated(stream: FragmentStream<'_>) -> FragmentStream<'_> {
    let mut validator = StreamValidator::new();
    let mut stream = stream.fuse();
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        match stream.next() {
            Some(Ok(fragment)) => match validator.check(&fragment) {
                Ok(()) => Some(Ok(fragment)),
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            },
            Some(Err(e)) => Some(Err(e)),
            None => {
                done = true;
                validator.finish().err().map(Err)
            }
        }
    }))
}
