//! Properties of `MergedStream` (R1.37, R1.29–R1.33) over random valid inputs: the output is a
//! valid stream (R1.36), merging is commutative, associative and idempotent, and the compactor
//! turns a merged stream into a valid stream, idempotently.
//!
//! Inputs are random rows, static rows, partition and range tombstones over a few partitions and
//! keys, with small timestamps so that ties happen; each input is canonical: ranges go through
//! `RangeTombstoneList` (R1.22) and rows satisfy R1.19. Shadowable row tombstones and dead row
//! markers are drawn together: R1.20 is evaluated on the reconciled state, so merging stays
//! associative with them (`tests/datadriven/merge_rows.txt` pins the case that ScyllaDB's
//! merge-time reset gets wrong).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod picture;

use std::collections::btree_map::Entry;
use std::sync::Arc;

use picture::{ck, fmt_stream, tomb, validate, InputModel};
use proptest::prelude::*;
use talus_compaction::{CompactedStream, CompactionPurpose, GcPolicy, MergedStream, OverlapCheck};
use talus_format::{
    BoundKind, Cell, Cells, ColumnId, DecoratedKey, Fragment, FragmentStream, GcTime, Position, RangeTombstone, Row, RowMarker,
    RowTombstone, Timestamp, Tombstone, TombstoneGcMode, Value,
};

const KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];

fn tomb_s() -> impl Strategy<Value = Tombstone> {
    (1i64..=8, 0i64..=3).prop_map(|(ts, dt)| tomb(ts, dt))
}

fn cell_s() -> impl Strategy<Value = Cell> {
    let text = |v: bool| Value::Text(if v { "b" } else { "a" }.into()).serialize();
    prop_oneof![
        (1i64..=8, any::<bool>()).prop_map(move |(ts, v)| Cell::Live { timestamp: Timestamp(ts), value: text(v) }),
        (1i64..=8, any::<bool>(), 10i64..=12, 1i32..=3).prop_map(move |(ts, v, e, ttl)| Cell::Expiring {
            timestamp: Timestamp(ts),
            value: text(v),
            expiry: GcTime(e),
            ttl
        }),
        tomb_s().prop_map(|t| Cell::Dead { timestamp: t.timestamp, deletion_time: t.deletion_time }),
    ]
}

fn cells_s(max: usize) -> impl Strategy<Value = Cells> {
    prop::collection::vec((0u32..3, cell_s()), 0..=max).prop_map(|v| v.into_iter().map(|(c, cell)| (ColumnId(c), cell)).collect())
}

fn marker_s(dead: bool) -> impl Strategy<Value = RowMarker> {
    let dead_weight = u32::from(dead);
    prop_oneof![
        1 => Just(RowMarker::Missing),
        1 => (1i64..=8).prop_map(|ts| RowMarker::Live { timestamp: Timestamp(ts) }),
        1 => (1i64..=8, 1i32..=3, 10i64..=12).prop_map(|(ts, ttl, e)| RowMarker::Expiring {
            timestamp: Timestamp(ts),
            ttl,
            expiry: GcTime(e)
        }),
        dead_weight => tomb_s().prop_map(|t| RowMarker::Dead { timestamp: t.timestamp, deletion_time: t.deletion_time }),
    ]
}

fn row_s(shadowable: bool) -> impl Strategy<Value = Row> {
    let opt_tomb = || prop::option::weighted(0.3, tomb_s()).prop_map(|t| t.unwrap_or(Tombstone::NONE));
    (opt_tomb(), opt_tomb(), marker_s(true), cells_s(3)).prop_map(move |(regular, s, marker, cells)| {
        // R1.19: shadowable >= regular.
        let s = if shadowable { s } else { Tombstone::NONE };
        let tombstone = RowTombstone { regular, shadowable: s.max(regular) };
        Row { tombstone, marker, cells }
    })
}

fn rt_s() -> impl Strategy<Value = Option<RangeTombstone>> {
    let bound = prop::option::weighted(0.85, 0i32..12);
    (bound.clone(), bound, any::<bool>(), any::<bool>(), tomb_s()).prop_map(|(a, b, incl_a, incl_b, tombstone)| {
        let start = match a {
            None => Position::before_all_rows(),
            Some(a) => if incl_a { BoundKind::InclusiveStart } else { BoundKind::ExclusiveStart }.position(ck(a)),
        };
        let end = match b {
            None => Position::after_all_rows(),
            Some(b) => if incl_b { BoundKind::InclusiveEnd } else { BoundKind::ExclusiveEnd }.position(ck(b)),
        };
        (start < end).then_some(RangeTombstone { start, end, tombstone })
    })
}

type PartitionSpec = (usize, Option<Tombstone>, Option<Cells>, Vec<(i32, Row)>, Vec<Option<RangeTombstone>>);

fn partition_s(shadowable: bool) -> impl Strategy<Value = PartitionSpec> {
    (
        0..KEYS.len(),
        prop::option::weighted(0.2, tomb_s()),
        prop::option::weighted(0.3, cells_s(2)),
        prop::collection::vec((0i32..12, row_s(shadowable)), 0..5),
        prop::collection::vec(rt_s(), 0..4),
    )
}

/// `n` canonical inputs, as fragment streams (see the module comment for `shadowable`).
fn inputs_s(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Vec<Fragment>>> {
    any::<bool>().prop_flat_map(move |shadowable| prop::collection::vec(input_s(shadowable), n.clone()))
}

fn input_s(shadowable: bool) -> impl Strategy<Value = Vec<Fragment>> {
    prop::collection::vec(partition_s(shadowable), 0..4).prop_map(|parts| {
        let mut model = InputModel::default();
        for (key, pt, static_row, rows, rts) in parts {
            let p = model.partition(KEYS[key]);
            p.tombstone.apply(pt.unwrap_or(Tombstone::NONE));
            if let Some(cells) = static_row {
                p.static_row.get_or_insert_with(Cells::new).apply(&cells);
            }
            for (k, row) in rows {
                match p.rows.entry(k) {
                    Entry::Vacant(e) => {
                        e.insert(row);
                    }
                    Entry::Occupied(mut e) => e.get_mut().apply(&row),
                }
            }
            for rt in rts.into_iter().flatten() {
                p.rts.insert(&rt);
            }
        }
        model.fragments().unwrap()
    })
}

fn boxed(fragments: Vec<Fragment>) -> FragmentStream<'static> {
    Box::new(fragments.into_iter().map(Ok))
}

/// Drains a stream and checks it with the `StreamValidator`; any error fails the case.
fn collect(stream: impl Iterator<Item = talus_format::Result<Fragment>>) -> Result<Vec<Fragment>, TestCaseError> {
    let out = stream.collect::<talus_format::Result<Vec<_>>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
    validate(&out).map_err(|e| TestCaseError::fail(format!("invalid output: {e}\n{}", show(&out))))?;
    Ok(out)
}

fn merge(inputs: &[Vec<Fragment>]) -> Result<Vec<Fragment>, TestCaseError> {
    collect(MergedStream::new(inputs.iter().cloned().map(boxed).collect()))
}

fn show(f: &[Fragment]) -> String {
    fmt_stream(f).join("\n")
}

struct Fixed(Timestamp);

impl OverlapCheck for Fixed {
    fn max_purgeable(&self, _key: &DecoratedKey, _shadowable: bool) -> Timestamp {
        self.0
    }
}

fn policy_s() -> impl Strategy<Value = GcPolicy> {
    let mode =
        prop_oneof![(0i64..=3).prop_map(|_| TombstoneGcMode::Timeout), Just(TombstoneGcMode::Immediate), Just(TombstoneGcMode::Disabled),];
    (mode, 0i64..=3, 9i64..=13, prop::option::of(0i64..=4), prop::option::of(1i64..=9)).prop_map(
        |(mode, gc_grace_seconds, now, commitlog_min, max_purgeable)| GcPolicy {
            mode,
            gc_grace_seconds,
            now: GcTime(now),
            repair_history: None,
            commitlog_min_gc_time: commitlog_min.map_or(GcTime::MAX, GcTime),
            overlap: max_purgeable.map(|ts| Arc::new(Fixed(Timestamp(ts))) as Arc<dyn OverlapCheck>),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// R1.36/R1.37: the merge of valid streams is valid, and does not depend on input order.
    #[test]
    fn merge_is_valid_and_commutative(
        (inputs, shuffled) in inputs_s(1..5)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        let merged = merge(&inputs)?;
        let other = merge(&shuffled)?;
        prop_assert!(merged == other, "input order matters:\n{}\n--- shuffled:\n{}", show(&merged), show(&other));
    }

    /// R1.29–R1.33, R1.37: merge(merge(a,b),c) == merge(a,merge(b,c)) == merge(a,b,c).
    #[test]
    fn merge_is_associative(abc in inputs_s(3..4)) {
        let [a, b, c] = <[Vec<Fragment>; 3]>::try_from(abc).unwrap();
        let left = merge(&[merge(&[a.clone(), b.clone()])?, c.clone()])?;
        let right = merge(&[a.clone(), merge(&[b.clone(), c.clone()])?])?;
        let flat = merge(&[a, b, c])?;
        prop_assert!(left == right, "(a+b)+c:\n{}\n--- a+(b+c):\n{}", show(&left), show(&right));
        prop_assert!(left == flat, "(a+b)+c:\n{}\n--- a+b+c:\n{}", show(&left), show(&flat));
    }

    /// R1.29–R1.33: merging a canonical stream with itself (or alone) gives it back.
    #[test]
    fn merge_is_idempotent(a in inputs_s(1..2).prop_map(|mut v| v.remove(0))) {
        let twice = merge(&[a.clone(), a.clone()])?;
        prop_assert!(twice == a, "a+a:\n{}\n--- a:\n{}", show(&twice), show(&a));
        let alone = merge(std::slice::from_ref(&a))?;
        prop_assert!(alone == a, "merge(a):\n{}\n--- a:\n{}", show(&alone), show(&a));
    }

    /// R2.4/R1.36: compacting a merged stream gives a valid stream, and compacting that again
    /// under the same policy changes nothing.
    #[test]
    fn compaction_of_a_merge_is_valid_and_idempotent(
        inputs in inputs_s(1..4),
        policy in policy_s(),
    ) {
        let merged = MergedStream::new(inputs.iter().cloned().map(boxed).collect()).boxed();
        let once = collect(CompactedStream::new(merged, policy.clone(), CompactionPurpose::Persist))?;
        let twice = collect(CompactedStream::new(boxed(once.clone()), policy, CompactionPurpose::Persist))?;
        prop_assert!(once == twice, "once:\n{}\n--- twice:\n{}", show(&once), show(&twice));
    }
}
