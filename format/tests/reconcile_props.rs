//! Reconciliation properties (R1.29–R1.33): merging two versions is a pure per-item max, so
//! `Cell::apply`, `RowMarker::apply`, `Row::apply` (with shadowable tombstones, R1.20) and
//! `PartitionUpdate::apply` are commutative, associative and idempotent; and
//! `RangeTombstoneList::insert` keeps, at every position, the max of the inserted range tombstones
//! covering it (R1.22).
//!
//! Strategies draw from small domains (timestamps 0..5, a few values and columns) so that ties —
//! where the later rules of R1.29 decide — are frequent.
//!
//! Shadowable tombstones and dead markers are drawn together: ScyllaDB's merge-time reset of a
//! cancelled shadowable tombstone is not associative with them, which is why Talus evaluates
//! R1.20 on the reconciled state instead (`RowTombstone::effective`); the former counterexample is
//! pinned by `r1_20_shadowable_with_dead_marker_is_associative`.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use talus_format::{
    Cell, Cells, ClusteringPrefix, ColumnId, GcTime, PartitionUpdate, Position, RangeTombstone, RangeTombstoneList, Row, RowMarker,
    RowTombstone, Timestamp, Tombstone,
};

// ---- Strategies --------------------------------------------------------------------------------

fn ts() -> impl Strategy<Value = Timestamp> {
    (0i64..5).prop_map(Timestamp)
}

fn gc() -> impl Strategy<Value = GcTime> {
    (0i64..3).prop_map(GcTime)
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(Bytes::new()), Just(Bytes::from_static(b"a")), Just(Bytes::from_static(b"b"))]
}

fn tombstone() -> impl Strategy<Value = Tombstone> {
    prop_oneof![1 => Just(Tombstone::NONE), 3 => (ts(), gc()).prop_map(|(t, d)| Tombstone::new(t, d))]
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        (ts(), value()).prop_map(|(timestamp, value)| Cell::Live { timestamp, value }),
        (ts(), value(), gc(), 1i32..3).prop_map(|(timestamp, value, expiry, ttl)| Cell::Expiring { timestamp, value, expiry, ttl }),
        (ts(), gc()).prop_map(|(timestamp, deletion_time)| Cell::Dead { timestamp, deletion_time }),
    ]
}

fn marker(dead: bool) -> BoxedStrategy<RowMarker> {
    let live = prop_oneof![
        Just(RowMarker::Missing),
        ts().prop_map(|timestamp| RowMarker::Live { timestamp }),
        (ts(), 1i32..3, gc()).prop_map(|(timestamp, ttl, expiry)| RowMarker::Expiring { timestamp, ttl, expiry }),
    ];
    if dead {
        prop_oneof![3 => live, 1 => (ts(), gc()).prop_map(|(timestamp, deletion_time)| RowMarker::Dead { timestamp, deletion_time })]
            .boxed()
    } else {
        live.boxed()
    }
}

fn cells() -> impl Strategy<Value = Cells> {
    vec((0u32..4, cell()), 0..4).prop_map(|cells| cells.into_iter().map(|(c, cell)| (ColumnId(c), cell)).collect())
}

/// Which row features a strategy may produce (see the module docs for why associativity needs
/// one of them off).
#[derive(Debug, Clone, Copy)]
struct Features {
    dead_markers: bool,
    shadowable: bool,
}

const ALL: Features = Features { dead_markers: true, shadowable: true };

/// Dead markers and shadowable tombstones together (and, for variety, without dead markers).
fn associative_features() -> impl Strategy<Value = Features> {
    prop_oneof![Just(Features { dead_markers: true, shadowable: true }), Just(Features { dead_markers: false, shadowable: true })]
}

/// A row as a merge could produce it: `shadowable >= regular` (R1.19).
fn row(f: Features) -> impl Strategy<Value = Row> {
    (tombstone(), tombstone(), marker(f.dead_markers), cells()).prop_map(move |(a, b, marker, cells)| {
        let tombstone = if f.shadowable { RowTombstone { regular: a, shadowable: a.max(b) } } else { RowTombstone::regular(a) };
        Row { tombstone, marker, cells }
    })
}

fn prefix(bytes: &[u8]) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(Bytes::copy_from_slice(bytes), bytes.len() as u16)
}

/// A range tombstone bound: before/after a prefix of 0–2 one-byte components (R1.21).
fn bound() -> impl Strategy<Value = Position> {
    (vec(1u8..5, 0..3), any::<bool>())
        .prop_map(|(p, before)| if before { Position::before_key(prefix(&p)) } else { Position::after_key(prefix(&p)) })
}

fn range_tombstone() -> impl Strategy<Value = RangeTombstone> {
    (bound(), bound(), tombstone()).prop_map(|(start, end, tombstone)| RangeTombstone { start, end, tombstone })
}

fn partition(f: Features) -> impl Strategy<Value = PartitionUpdate> {
    (tombstone(), cells(), vec((1u8..5, row(f)), 0..4), vec(range_tombstone(), 0..3)).prop_map(
        |(tombstone, static_cells, rows, range_tombstones)| PartitionUpdate {
            tombstone,
            static_cells,
            rows: rows.into_iter().map(|(k, r)| (prefix(&[k]), r)).collect(),
            range_tombstones,
        },
    )
}

fn three<S: Strategy>(make: impl Fn() -> S) -> (S, S, S) {
    (make(), make(), make())
}

// ---- Merge laws --------------------------------------------------------------------------------

fn merged<T: Clone>(a: &T, b: &T, apply: impl Fn(&mut T, &T)) -> T {
    let mut out = a.clone();
    apply(&mut out, b);
    out
}

/// Checks commutativity and idempotence of `apply`, and associativity when `assoc` holds.
fn check_laws<T: Clone + PartialEq + std::fmt::Debug, N: PartialEq + std::fmt::Debug>(
    (a, b, c): (&T, &T, &T),
    apply: impl Fn(&mut T, &T) + Copy,
    normal: impl Fn(&T) -> N,
    assoc: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(normal(&merged(a, b, apply)), normal(&merged(b, a, apply)), "not commutative");
    prop_assert_eq!(normal(&merged(a, a, apply)), normal(a), "not idempotent");
    if assoc {
        let left = merged(&merged(a, b, apply), c, apply);
        let right = merged(a, &merged(b, c, apply), apply);
        prop_assert_eq!(normal(&left), normal(&right), "not associative");
    }
    Ok(())
}

/// A partition update with its range tombstones in canonical form (insertion order and
/// duplicates do not matter, R1.22).
fn normal_partition(p: &PartitionUpdate) -> (Tombstone, Cells, BTreeMap<ClusteringPrefix, Row>, RangeTombstoneList) {
    let mut list = RangeTombstoneList::new();
    for rt in &p.range_tombstones {
        list.insert(rt);
    }
    (p.tombstone, p.static_cells.clone(), p.rows.clone(), list)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// R1.29: cell reconciliation is a total order on cells, so `apply` is a lattice join.
    #[test]
    fn r1_29_cell_apply_is_a_join((a, b, c) in three(cell)) {
        check_laws((&a, &b, &c), Cell::apply, Cell::clone, true)?;
    }

    /// R1.30: markers, missing losing to everything.
    #[test]
    fn r1_30_marker_apply_is_a_join((a, b, c) in three(|| marker(true))) {
        check_laws((&a, &b, &c), RowMarker::apply, |m: &RowMarker| *m, true)?;
    }

    /// R1.31 / R0.4: tombstones keep the max.
    #[test]
    fn r1_31_tombstone_apply_is_a_join((a, b, c) in three(tombstone)) {
        check_laws((&a, &b, &c), |x: &mut Tombstone, y: &Tombstone| x.apply(*y), |t: &Tombstone| *t, true)?;
    }

    /// R1.29–R1.31 and R1.20: rows with every marker form, regular and shadowable tombstones.
    #[test]
    fn r1_31_row_apply_commutes_and_is_idempotent((a, b, c) in three(|| row(ALL))) {
        check_laws((&a, &b, &c), Row::apply, Row::clone, false)?;
    }

    /// Absorbing a row (taking its cells) reconciles exactly as applying it, and so do cells
    /// collected from an iterator of (possibly repeated) columns.
    #[test]
    fn row_absorb_is_row_apply((a, b, _) in three(|| row(ALL)), extra in vec((0u32..4, cell()), 0..6)) {
        let mut applied = a.clone();
        applied.apply(&b);
        let mut absorbed = a.clone();
        absorbed.absorb(b.clone());
        prop_assert_eq!(&absorbed, &applied);
        let mut cells = a.cells.clone();
        cells.absorb(b.cells.clone());
        prop_assert_eq!(&cells, &applied.cells);
        let mut expected = Cells::new();
        for (column, cell) in &extra {
            expected.apply_cell(ColumnId(*column), cell);
        }
        prop_assert_eq!(extra.into_iter().map(|(c, cell)| (ColumnId(c), cell)).collect::<Cells>(), expected);
    }

    /// R1.31 / R1.20: associativity, with dead markers or shadowable tombstones excluded.
    #[test]
    fn r1_31_row_apply_is_associative((a, b, c) in associative_features().prop_flat_map(|f| three(|| row(f)))) {
        check_laws((&a, &b, &c), Row::apply, Row::clone, true)?;
    }

    /// R1.29–R1.33 over whole partition updates (range tombstones compared in canonical form).
    #[test]
    fn r1_33_partition_apply_commutes_and_is_idempotent((a, b, c) in three(|| partition(ALL))) {
        check_laws((&a, &b, &c), PartitionUpdate::apply, normal_partition, false)?;
    }

    /// R1.29–R1.33: associativity of partition updates (same exclusion as rows).
    #[test]
    fn r1_33_partition_apply_is_associative((a, b, c) in associative_features().prop_flat_map(|f| three(|| partition(f)))) {
        check_laws((&a, &b, &c), PartitionUpdate::apply, normal_partition, true)?;
    }

    /// R1.22: after inserting any list of range tombstones, the active tombstone at every probe
    /// position (before, at and after every bound's prefix and its neighbours) is the max over
    /// the inserted tombstones covering it (`start <= p < end`, R1.21); the list is canonical and
    /// independent of insertion order.
    #[test]
    fn r1_22_range_tombstone_list_is_the_max_of_covering(rts in vec(range_tombstone(), 0..7)) {
        let mut list = RangeTombstoneList::new();
        for rt in &rts {
            list.insert(rt);
        }
        for probe in probes(&rts) {
            let naive = rts
                .iter()
                .filter(|rt| rt.start <= probe && probe < rt.end)
                .map(|rt| rt.tombstone)
                .max()
                .unwrap_or(Tombstone::NONE);
            prop_assert_eq!(list.tombstone_at(&probe), naive, "at {:?}", probe);
        }
        let changes = list.changes();
        prop_assert!(changes.windows(2).all(|w| w[0].position < w[1].position && w[0].tombstone != w[1].tombstone));
        prop_assert!(changes.last().is_none_or(|c| c.tombstone.is_none()), "last change must close");
        prop_assert!(changes.first().is_none_or(|c| c.tombstone.is_some()), "first change must open");
        let mut reversed = RangeTombstoneList::new();
        for rt in rts.iter().rev() {
            reversed.insert(rt);
        }
        prop_assert_eq!(&reversed, &list);
    }
}

/// Every position around the bounds: before/at/after each bound's prefix, its one-byte
/// extensions and its neighbouring last components.
fn probes(rts: &[RangeTombstone]) -> Vec<Position> {
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    for rt in rts {
        for p in [rt.start.prefix(), rt.end.prefix()] {
            let bytes = p.encoded().to_vec();
            for ext in [0u8, 1, 3, 5] {
                prefixes.push([bytes.as_slice(), &[ext]].concat());
            }
            if let Some((&last, head)) = bytes.split_last() {
                prefixes.push([head, &[last.wrapping_sub(1)]].concat());
                prefixes.push([head, &[last.wrapping_add(1)]].concat());
            }
            prefixes.push(bytes);
        }
    }
    prefixes.iter().flat_map(|p| [Position::before_key(prefix(p)), Position::at_row(prefix(p)), Position::after_key(prefix(p))]).collect()
}

fn t(ts: i64) -> Tombstone {
    Tombstone::new(Timestamp(ts), GcTime(0))
}

/// `a` holds a shadowable tombstone, `b` a newer live marker that cancels it (R1.20), `c` a newer
/// dead marker. With ScyllaDB's merge-time reset, merging `a` with `b` first loses the shadowable
/// part for good while merging `b` with `c` first keeps it. Talus evaluates R1.20 on the
/// reconciled state, so both groupings agree: the dead marker does not cancel, the tombstone holds.
#[test]
fn r1_20_shadowable_with_dead_marker_is_associative() {
    let a = Row { tombstone: RowTombstone::shadowable(t(10)), ..Row::default() };
    let b = Row { marker: RowMarker::Live { timestamp: Timestamp(11) }, ..Row::default() };
    let c = Row { marker: RowMarker::Dead { timestamp: Timestamp(12), deletion_time: GcTime(0) }, ..Row::default() };
    let left = merged(&merged(&a, &b, Row::apply), &c, Row::apply);
    let right = merged(&a, &merged(&b, &c, Row::apply), Row::apply);
    assert_eq!(left, right);
    assert_eq!(right.effective_tombstone(), t(10));
}

/// R1.22 / R1.21 on a hand-made case: a prefix deletion `before(1)..after(1)` under a wider,
/// older one, probed at rows inside and outside.
#[test]
fn r1_22_prefix_deletion_inside_wider_range() {
    let mut list = RangeTombstoneList::new();
    list.insert(&RangeTombstone { start: Position::before_key(prefix(&[1])), end: Position::after_key(prefix(&[1])), tombstone: t(9) });
    list.insert(&RangeTombstone { start: Position::before_all_rows(), end: Position::after_all_rows(), tombstone: t(3) });
    assert_eq!(list.tombstone_at(&Position::at_row(prefix(&[1, 7]))), t(9));
    assert_eq!(list.tombstone_at(&Position::at_row(prefix(&[2]))), t(3));
    assert_eq!(list.tombstone_at(&Position::after_key(prefix(&[1]))), t(3));
    assert_eq!(list.changes().len(), 4);
}
