//! Clustering prefixes, bounds and positions in a partition, with the one comparison function
//! (R1.8–R1.11).
//!
//! A [`ClusteringPrefix`] holds the order-preserving encoding of its components
//! (`clustering_encoding`); the encoding is prefix-free per component, so comparing the common
//! components is a memcmp over the common bytes, and a prefix of components is a byte prefix.
//!
//! [`Position`] = `(region, prefix, weight)`; inside the clustered region the rule of R1.10 applies:
//! rows sit at weight 0, range tombstone changes at `before_key` (−1) or `after_key` (+1), so a row
//! and a range tombstone change never share a position.

use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

/// The order-preserving encoding of the first `len` clustering components.
///
/// Ordered by memcmp of the encoding, which is the component-wise order for full keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClusteringPrefix {
    bytes: Bytes,
    len: u16,
}

impl ClusteringPrefix {
    /// The empty prefix (an unbounded range side, or the key of a table without clustering columns).
    pub const EMPTY: ClusteringPrefix = ClusteringPrefix { bytes: Bytes::new(), len: 0 };

    /// Wraps an encoding of `len` components.
    pub fn from_encoded(bytes: Bytes, len: u16) -> ClusteringPrefix {
        ClusteringPrefix { bytes, len }
    }

    /// The encoded bytes.
    pub fn encoded(&self) -> &Bytes {
        &self.bytes
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are no components.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for ClusteringPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ck{}[", self.len)?;
        for b in self.bytes.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, "]")
    }
}

/// Region of a position in a partition, in rank order (R1.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    /// The partition start (the partition tombstone).
    PartitionStart,
    /// The static row.
    StaticRow,
    /// Clustering rows and range tombstone changes.
    Clustered,
    /// The partition end.
    PartitionEnd,
}

/// A position in a partition (R1.11).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Position {
    region: Region,
    prefix: ClusteringPrefix,
    weight: i8,
}

impl Position {
    /// Position of the partition start.
    pub fn partition_start() -> Position {
        Position { region: Region::PartitionStart, prefix: ClusteringPrefix::EMPTY, weight: 0 }
    }

    /// Position of the static row.
    pub fn static_row() -> Position {
        Position { region: Region::StaticRow, prefix: ClusteringPrefix::EMPTY, weight: 0 }
    }

    /// Position of the partition end.
    pub fn partition_end() -> Position {
        Position { region: Region::PartitionEnd, prefix: ClusteringPrefix::EMPTY, weight: 0 }
    }

    /// Before every clustered position.
    pub fn before_all_rows() -> Position {
        Position::before_key(ClusteringPrefix::EMPTY)
    }

    /// After every clustered position.
    pub fn after_all_rows() -> Position {
        Position::after_key(ClusteringPrefix::EMPTY)
    }

    /// The position of the row with key `key` (weight 0).
    pub fn at_row(key: ClusteringPrefix) -> Position {
        Position { region: Region::Clustered, prefix: key, weight: 0 }
    }

    /// Before every key that extends `prefix` (weight −1, `before_all_prefixed`).
    pub fn before_key(prefix: ClusteringPrefix) -> Position {
        Position { region: Region::Clustered, prefix, weight: -1 }
    }

    /// After every key that extends `prefix` (weight +1, `after_all_prefixed`).
    pub fn after_key(prefix: ClusteringPrefix) -> Position {
        Position { region: Region::Clustered, prefix, weight: 1 }
    }

    /// The region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The clustering prefix (empty outside the clustered region).
    pub fn prefix(&self) -> &ClusteringPrefix {
        &self.prefix
    }

    /// The weight: −1, 0 or +1.
    pub fn weight(&self) -> i8 {
        self.weight
    }

    /// Whether this is a row position.
    pub fn is_row(&self) -> bool {
        self.region == Region::Clustered && self.weight == 0
    }
}

impl Ord for Position {
    /// R1.10–R1.11: the single comparison function for positions (see [`PositionRef`]).
    fn cmp(&self, other: &Self) -> Ordering {
        self.borrowed().cmp(&other.borrowed())
    }
}

impl Position {
    /// The position's parts, borrowed.
    pub fn borrowed(&self) -> PositionRef<'_> {
        PositionRef { region: self.region, prefix: &self.prefix.bytes, weight: self.weight }
    }
}

/// A position's parts, borrowed: a fragment's position compared without building a [`Position`].
/// Ordered and equal exactly as the [`Position`] it describes.
#[derive(Debug, Clone, Copy)]
pub struct PositionRef<'a> {
    region: Region,
    prefix: &'a [u8],
    weight: i8,
}

impl<'a> PositionRef<'a> {
    /// A position of `region` (clustering prefix `prefix`, weight `weight` in the clustered region).
    pub fn new(region: Region, prefix: &'a [u8], weight: i8) -> PositionRef<'a> {
        PositionRef { region, prefix, weight }
    }
}

impl Ord for PositionRef<'_> {
    /// R1.10–R1.11: the single comparison function for positions.
    fn cmp(&self, other: &Self) -> Ordering {
        self.region.cmp(&other.region).then_with(|| {
            let (a, b) = (self.prefix, other.prefix);
            let common = a.len().min(b.len());
            // Most tables' positions have short or empty prefixes: skip the call for nothing.
            let bytes = if common == 0 { Ordering::Equal } else { a[..common].cmp(&b[..common]) };
            bytes.then_with(|| match a.len().cmp(&b.len()) {
                Ordering::Equal => self.weight.cmp(&other.weight),
                // self is a strict prefix of other
                Ordering::Less => {
                    if self.weight <= 0 {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                Ordering::Greater => {
                    if other.weight <= 0 {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
            })
        })
    }
}

impl PartialOrd for PositionRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PositionRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PositionRef<'_> {}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.region, self.weight) {
            (Region::Clustered, -1) => write!(f, "before({:?})", self.prefix),
            (Region::Clustered, 1) => write!(f, "after({:?})", self.prefix),
            (Region::Clustered, _) => write!(f, "row({:?})", self.prefix),
            (region, _) => write!(f, "{region:?}"),
        }
    }
}

/// The four bound kinds of range tombstones and slices (R1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoundKind {
    /// `>= prefix` (weight −1).
    InclusiveStart,
    /// `> prefix` (weight +1).
    ExclusiveStart,
    /// `<= prefix` (weight +1).
    InclusiveEnd,
    /// `< prefix` (weight −1).
    ExclusiveEnd,
}

impl BoundKind {
    /// ScyllaDB's numeric code (R1.9): excl_end=0, incl_start=1, incl_end=6, excl_start=7.
    pub fn code(self) -> u8 {
        match self {
            BoundKind::ExclusiveEnd => 0,
            BoundKind::InclusiveStart => 1,
            BoundKind::InclusiveEnd => 6,
            BoundKind::ExclusiveStart => 7,
        }
    }

    /// The position this bound denotes for `prefix` (R1.21).
    pub fn position(self, prefix: ClusteringPrefix) -> Position {
        match self {
            BoundKind::InclusiveStart | BoundKind::ExclusiveEnd => Position::before_key(prefix),
            BoundKind::ExclusiveStart | BoundKind::InclusiveEnd => Position::after_key(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(bytes: &'static [u8]) -> ClusteringPrefix {
        ClusteringPrefix::from_encoded(Bytes::from_static(bytes), bytes.len() as u16)
    }

    #[test]
    fn r1_10_prefix_bounds_surround_their_extensions() {
        let row = Position::at_row(p(b"\x01\x02"));
        assert!(Position::before_key(p(b"\x01")) < row);
        assert!(Position::after_key(p(b"\x01")) > row);
        assert!(Position::after_key(p(b"\x01")) < Position::at_row(p(b"\x02")));
        assert!(Position::before_key(p(b"\x01\x02")) < row);
        assert!(row < Position::after_key(p(b"\x01\x02")));
        assert!(Position::before_all_rows() < Position::at_row(ClusteringPrefix::EMPTY));
        assert!(Position::after_all_rows() > Position::at_row(p(b"\xff")));
        assert!(Position::static_row() < Position::before_all_rows());
        assert!(Position::partition_end() > Position::after_all_rows());
    }

    #[test]
    fn r1_21_bound_kinds_map_to_positions() {
        assert_eq!(BoundKind::InclusiveStart.position(p(b"\x05")), Position::before_key(p(b"\x05")));
        assert_eq!(BoundKind::ExclusiveEnd.position(p(b"\x05")), Position::before_key(p(b"\x05")));
        assert_eq!(BoundKind::InclusiveEnd.position(p(b"\x05")), Position::after_key(p(b"\x05")));
        assert_eq!(BoundKind::ExclusiveStart.code(), 7);
    }
}
