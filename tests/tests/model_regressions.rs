//! Shrunk failing cases of the model test (`model.rs`), kept as readable regression tests.
//!
//! Each test replays one op sequence against the engine and the oracle with the harness of
//! `model.rs` (included below): after every write both tables are read in full and compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "model.rs"]
mod model;

use model::{run, Ck, Item, Op, Table, Val, Write};

/// The narrow table has no clustering columns; its items ignore the key.
const NO_CK: Ck = Ck(0, "");

fn check(ops: &[Op]) {
    if let Err(e) = run(ops) {
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
