//! Shrunk failing cases of the model test (`model.rs`), kept as readable regression tests.
//!
//! Each test replays one op sequence against the engine and the oracle with the harness of
//! `model.rs` (included below): after every write both tables are read in full and compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "model.rs"]
mod model;

use model::{run, run_with, Ck, Compaction, Gc, Item, Op, Setup, Table, Val, Write};

/// The narrow table has no clustering columns; its items ignore the key.
const NO_CK: Ck = Ck(0, "");

fn check(ops: &[Op]) {
    if let Err(e) = run(ops) {
        panic!("{e}");
    }
}

fn check_with(setup: Setup, ops: &[Op]) {
    if let Err(e) = run_with(setup, ops) {
        panic!("{e}");
    }
}

fn apply(table: Table, pk: i32, items: Vec<Item>) -> Op {
    Op::Apply(Write { table, pk, items })
}

/// Harness smoke test: a marker, an expiring cell, a static cell and a range deletion, read
/// before and after the cell expires.
#[test]
fn insert_set_expire_and_range_delete() {
    let items = vec![
        Item::Insert { ck: Ck(1, "a"), ts: 1, ttl: None },
        Item::Set { ck: Ck(1, "a"), val: Val::V1(2), ts: 1, ttl: Some(2) },
        Item::SetStatic { value: "x", ts: 1, ttl: None },
        Item::Insert { ck: Ck(2, "b"), ts: 1, ttl: None },
    ];
    let range = Item::DeleteRange { start: model::B::Excl(model::Prefix::One(1)), end: model::B::Unb, ts: 1 };
    check(&[apply(Table::Wide, 0, items), Op::Tick(2), apply(Table::Wide, 0, vec![range])]);
}

/// Found by the model test (shrunk). R1.20: a shadowable row tombstone is cancelled by a newer
/// live row marker, and "cells with ts <= the old shadowable ts then become visible again";
/// R1.33: merging is a pure, order-independent max.
///
/// Here `v1 = 0` (ts 2) sits under a shadowable deletion (ts 3); a later `INSERT` (marker ts 4)
/// cancels the deletion, so the row is `v1 = 0`. The engine of commit 88b30ea returned the row
/// without `v1`: the memtable's eager shadowing compacted the row with its own tombstone,
/// shadowable part included, and erased the cell before the marker could cancel the tombstone.
/// Fixed by f4460ba (memtable compaction keeps data under a cancellable shadowable tombstone).
#[test]
fn newer_marker_uncovers_cells_under_a_shadowable_row_tombstone() {
    check(&[
        apply(
            Table::Narrow,
            1,
            vec![Item::DeleteRow { ck: NO_CK, ts: 3, shadowable: true }, Item::Set { ck: NO_CK, val: Val::V1(0), ts: 2, ttl: None }],
        ),
        apply(Table::Narrow, 1, vec![Item::Insert { ck: NO_CK, ts: 4, ttl: None }]),
    ]);
}

/// The same writes as one mutation: the marker meets the shadowable tombstone before the memtable
/// compacts the row, so even 88b30ea agreed with the oracle. Only the grouping differs from the
/// case above: the result must not depend on how writes are grouped or ordered (R1.33).
#[test]
fn shadowable_cancellation_within_one_mutation() {
    check(&[apply(
        Table::Narrow,
        1,
        vec![
            Item::DeleteRow { ck: NO_CK, ts: 3, shadowable: true },
            Item::Set { ck: NO_CK, val: Val::V1(0), ts: 2, ttl: None },
            Item::Insert { ck: NO_CK, ts: 4, ttl: None },
        ],
    )]);
}

/// The first failure the model test found (minus an unrelated op). Same cause as above, with a
/// worse symptom: `v2 = "x"` and `v2 = ""` share timestamp 1, so "x" wins reconciliation (R1.29
/// 3c, the larger value). The shadowable deletion (ts 1) is cancelled by the expiring marker
/// (ts 5), so the row is `v1 = 2, v2 = "x"`. The engine of 88b30ea returned `v2 = ""`, the value
/// that lost reconciliation, because "x" had been erased at write time. Fixed by f4460ba.
#[test]
fn eager_shadowable_erasure_lets_a_losing_value_win() {
    check(&[
        apply(
            Table::Narrow,
            2,
            vec![Item::Set { ck: NO_CK, val: Val::V2("x"), ts: 1, ttl: None }, Item::DeleteRow { ck: NO_CK, ts: 1, shadowable: true }],
        ),
        apply(
            Table::Narrow,
            2,
            vec![
                Item::Set { ck: NO_CK, val: Val::V1(2), ts: 4, ttl: None },
                Item::Set { ck: NO_CK, val: Val::V2(""), ts: 1, ttl: None },
                Item::Insert { ck: NO_CK, ts: 5, ttl: Some(2) },
            ],
        ),
    ]);
}

/// Found by the model test once flushes joined it (shrunk): a paged single-partition read of a
/// partition that has only a static row, held in an sstable, must end after the page that
/// returned the static row (R5.4: a static-only partition counts as one row).
#[test]
fn paging_past_a_static_only_partition_in_an_sstable_ends() {
    let read =
        model::ReadOp { table: Table::Wide, range: model::Range::Single(2), slice: None, limit: None, pages: Some(vec![1]), later: 0 };
    check(&[
        apply(Table::Wide, 2, vec![Item::SetStatic { value: "", ts: 5, ttl: None }]),
        apply(Table::Wide, 0, vec![Item::Insert { ck: Ck(0, ""), ts: 1, ttl: None }]),
        Op::Flush(Table::Wide),
        Op::Read(read),
    ]);
}

/// Found by the model test once compaction joined it (shrunk, then reduced to the cause):
/// **engine bug**. R1.20: a newer live row marker cancels a shadowable row tombstone, so the
/// cell under it is visible; a compaction must not change what a read returns (R2.19, P3).
///
/// sstable 1 holds a shadowable deletion of the row (ts 2) and `v1 = 0` (ts 1); sstable 2 holds
/// a marker (ts 3), which cancels the deletion: the row reads `v1 = 0`. Compacting sstable 1
/// alone (immediate gc, past the deletion time) purges the shadowable tombstone — the overlap
/// check for shadowable tombstones looks only for live markers *older* than it (R2.17, min live
/// row-marker timestamp 3 is not below 2) — and drops `v1` with it (R2.19: what a purged
/// tombstone covers goes in the same pass). Afterwards the row reads without `v1`.
#[test]
fn compacting_away_a_cancelled_shadowable_tombstone_loses_the_cells_it_covered() {
    let setup = Setup { wide: Gc::Timeout(2), narrow: Gc::Immediate, wall_clock: false, compaction: Compaction::Unrestricted };
    check_with(
        setup,
        &[
            apply(
                Table::Narrow,
                1,
                vec![Item::DeleteRow { ck: NO_CK, ts: 2, shadowable: true }, Item::Set { ck: NO_CK, val: Val::V1(0), ts: 1, ttl: None }],
            ),
            Op::Flush(Table::Narrow),
            apply(Table::Narrow, 1, vec![Item::Insert { ck: NO_CK, ts: 3, ttl: None }]),
            Op::Flush(Table::Narrow),
            Op::Tick(1),
            // Bit 1: the second newest sstable, the one with the deletion.
            Op::Compact { table: Table::Narrow, pick: 0b10, lag: 0 },
        ],
    );
}

/// Found by the model test once compaction joined it (shrunk): **engine bug** (P3, a
/// resurrection by compaction alone, following R2.17 to the letter).
///
/// The wide table (`timeout`, grace 0) gets a shadowable deletion of row `(5, "")` (ts 3),
/// compacted into an sstable; a second later `v1 = 0` (ts 1) is written to the row, into the
/// memtable: covered by the deletion, the row does not exist. Compacting the sstable alone purges
/// the deletion: it is past its grace, and the overlap check for a shadowable tombstone looks only
/// at the *row-marker* timestamps of the other sources (R2.17 steps 3–4, min live row-marker
/// timestamp), and the memtable's row has a cell but no marker. The cell comes back. (ScyllaDB
/// uses shadowable tombstones only in materialized views, whose rows always carry a marker; the
/// engine accepts shadowable deletions of any row.) The random test writes shadowable deletions
/// as regular ones in sequences that compact (`Model::adjusted`).
#[test]
fn purging_a_shadowable_tombstone_uncovers_older_cells_without_a_marker() {
    let setup = Setup { wide: Gc::Timeout(0), narrow: Gc::Timeout(0), wall_clock: false, compaction: Compaction::Unrestricted };
    check_with(
        setup,
        &[
            apply(Table::Wide, 1, vec![Item::DeleteRow { ck: Ck(5, ""), ts: 3, shadowable: true }]),
            Op::CompactOnlyExistingData(Table::Wide),
            Op::Tick(1),
            apply(Table::Wide, 1, vec![Item::Set { ck: Ck(5, ""), val: Val::V1(0), ts: 1, ttl: None }]),
            Op::Compact { table: Table::Wide, pick: 0, lag: 0 },
        ],
    );
}

/// Found by the model test once compaction joined it (shrunk): **engine bug**, a resurrection
/// through commitlog replay (P3, bug class 5, the ScyllaDB #14870 family).
///
/// The narrow table (`timeout`, grace 0) gets a row deletion (ts 5) in commitlog segment 1;
/// after a reopen, `v1 = 0` (ts 1, under the deletion) goes to segment 2. A major compaction
/// flushes the memtable (segment 1 is now clean and disposed of; segment 2 is the active one and
/// stays) and compacts: the deletion is past its grace and nothing else holds the row, so it is
/// purged, and `v1` under it goes too. The output is empty, so no sstable of the table is left,
/// and with it goes the commitlog interval the flushed sstable carried. On the next open,
/// replay no longer knows that segment 2's entry was flushed, applies `v1 = 0` again, and the
/// deleted cell is back.
///
/// The commitlog barrier (R2.15) does not stop the purge: the deletion was written before
/// segment 2's first append of the table. The model clock here is far behind the wall clock,
/// but the same holds with real clocks as soon as the deletion and the reopen are a second
/// apart. With a second partition whose data survives the compaction (a non-empty output,
/// which carries the inputs' merged interval), nothing comes back. The random test works around
/// it by flushing every table and rotating the commitlog after a compaction with no output
/// (`Model::compaction_done`).
#[test]
fn empty_compaction_output_lets_replay_resurrect_deleted_data() {
    let setup = Setup { wide: Gc::Timeout(0), narrow: Gc::Timeout(0), wall_clock: false, compaction: Compaction::Unrestricted };
    check_with(
        setup,
        &[
            apply(Table::Narrow, 2, vec![Item::DeleteRow { ck: NO_CK, ts: 5, shadowable: false }]),
            Op::Reopen,
            apply(Table::Narrow, 2, vec![Item::Set { ck: NO_CK, val: Val::V1(0), ts: 1, ttl: None }]),
            Op::Tick(1),
            Op::CompactAll(Table::Narrow),
            Op::Reopen,
        ],
    );
}
