//! Point reads pass over sstables whose data is all older than a settled answer (the module docs
//! of `talus::point_read`, Cassandra's timestamp-ordered read), and only then.
//!
//! Each scenario writes an older version of one row (columns `a` and `b`, timestamp 10) into an
//! sstable, then a newer version into a second sstable, and makes every read of the older
//! sstable's file fail with EIO. A read that returns the newer answer proves the older file was
//! not read; a read that fails proves it was (as it must be, when the newer version leaves the
//! answer open). Reads run at gc time `NOW`, well after the writes' `WRITTEN`.
//!
//! | newer version (in the second sstable)                  | older read? |
//! |--------------------------------------------------------|-------------|
//! | `a` and `b` live at 20                                 | no          |
//! | only `a` at 20                                         | yes         |
//! | `a` at 20, `b` deleted at 20                           | yes         |
//! | `a` and `b` at 20, the row deleted at 20 too           | yes         |
//! | `a` and `b` at 20, `b` with a TTL expired at `NOW`     | yes         |
//! | `a` and `b` live at 20, flushed before the older one   | no          |

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use talus::format::{ColumnType, GcTime, Mutation, MutationBuilder, Schema, SchemaRef, Timestamp, Value};
use talus::fs::{Fault, FaultFs, FaultRule, OpKind, SimFs, Trigger};
use talus::sstable_set::sstable_file_name;
use talus::{Engine, EngineOptions};
use talus_tests::fixture::test_options;

const TABLE: &str = "ks.kv";
const WRITTEN: GcTime = GcTime(1_000_000);
const NOW: GcTime = GcTime(2_000_000);

fn schema() -> SchemaRef {
    Schema::builder("ks", "kv")
        .partition_key("k", ColumnType::Int)
        .regular("a", ColumnType::Blob)
        .regular("b", ColumnType::Blob)
        .build()
        .unwrap()
}

/// A read's live cells, by column name.
type Cells = Option<Vec<(String, Vec<u8>)>>;

fn text(v: u8) -> Value {
    Value::Blob(vec![v].into())
}

/// Writes the older version, flushes, writes `newer` (a builder for key 1), flushes, then makes
/// reads of the older sstable fail. Returns the read of key 1's row at `NOW`.
fn read_after(newer: impl FnOnce(MutationBuilder<'_>) -> MutationBuilder<'_>) -> talus::Result<Cells> {
    read_with(false, newer)
}

/// [`read_after`], but with the newer version flushed first when `newer_flushed_first` (the
/// older data then has the newer generation, as a compaction's output of old inputs does).
fn read_with(newer_flushed_first: bool, newer: impl FnOnce(MutationBuilder<'_>) -> MutationBuilder<'_>) -> talus::Result<Cells> {
    let faulty = FaultFs::new(Arc::new(SimFs::new(7)), 7);
    let engine = Engine::open_with_fs(Arc::new(faulty.clone()), "/db", EngineOptions { block_cache_bytes: 0, ..test_options() }).unwrap();
    let schema = schema();
    engine.create_table(schema.clone()).unwrap();
    let builder = || Mutation::builder(&schema, &[Value::Int(1)]).now(WRITTEN);
    let older = builder().set(&[], "a", text(1), Timestamp(10)).set(&[], "b", text(1), Timestamp(10)).build().unwrap();
    let newer = newer(builder()).build().unwrap();
    let (first, second) = if newer_flushed_first { (&newer, &older) } else { (&older, &newer) };
    engine.apply(first).unwrap();
    engine.flush(TABLE).unwrap();
    let after_first = engine.sstables(TABLE).unwrap();
    engine.apply(second).unwrap();
    engine.flush(TABLE).unwrap();
    let generations = engine.sstables(TABLE).unwrap();
    assert_eq!(generations.len(), 2);
    let older_file = if newer_flushed_first { generations.iter().find(|g| !after_first.contains(g)) } else { after_first.first() };
    faulty.add_rule(FaultRule::new(OpKind::Read, Trigger::From(1), Fault::Eio).on_paths(&sstable_file_name(*older_file.unwrap())));
    let row = engine.read_row(&schema, &[Value::Int(1)], &[], NOW)?;
    let name = |id| if id == schema.regular_column("a").unwrap().id { "a" } else { "b" };
    Ok(row.map(|row| row.cells.into_iter().map(|(column, value)| (name(column).to_string(), value.to_vec())).collect()))
}

#[test]
fn every_column_live_and_newer_skips_the_older_sstable() {
    let row = read_after(|b| b.set(&[], "a", text(2), Timestamp(20)).set(&[], "b", text(2), Timestamp(20))).unwrap();
    assert_eq!(row, Some(vec![("a".to_string(), vec![2]), ("b".to_string(), vec![2])]));
}

/// The older data in the newer file (generation order is not age order): still passed over.
#[test]
fn older_data_in_a_newer_generation_is_passed_over() {
    let row = read_with(true, |b| b.set(&[], "a", text(2), Timestamp(20)).set(&[], "b", text(2), Timestamp(20))).unwrap();
    assert_eq!(row, Some(vec![("a".to_string(), vec![2]), ("b".to_string(), vec![2])]));
}

#[test]
fn a_column_missing_from_the_newer_version_reads_the_older_sstable() {
    assert!(read_after(|b| b.set(&[], "a", text(2), Timestamp(20))).is_err());
}

#[test]
fn a_deleted_cell_in_the_newer_version_reads_the_older_sstable() {
    assert!(read_after(|b| b.set(&[], "a", text(2), Timestamp(20)).delete_cell(&[], "b", Timestamp(20))).is_err());
}

#[test]
fn a_row_tombstone_as_new_as_the_cells_reads_the_older_sstable() {
    assert!(read_after(|b| b.set(&[], "a", text(2), Timestamp(20)).set(&[], "b", text(2), Timestamp(20)).delete_row(&[], Timestamp(20)))
        .is_err());
}

#[test]
fn an_expired_cell_in_the_newer_version_reads_the_older_sstable() {
    assert!(read_after(|b| b.set(&[], "a", text(2), Timestamp(20)).set_with_ttl(&[], "b", text(2), Timestamp(20), Some(60))).is_err());
}
