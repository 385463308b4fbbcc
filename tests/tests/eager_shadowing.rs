//! The memtable applies partition and range tombstones eagerly (R1.33): covered rows and row
//! tombstones leave the memtable at once, so a batchlog-style partition stays small, while the
//! tombstones themselves are kept and still shadow later-arriving older data.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use talus::format::{ColumnType, GcTime, Mutation, RangeBound, Schema, SchemaRef, Timestamp, Value};
use talus::{Engine, Query};

fn setup() -> (Engine, SchemaRef) {
    talus_tests::fixture::engine_with_table("eager", ColumnType::Int).unwrap()
}

fn write_rows(engine: &Engine, schema: &Schema, n: i32, ts: i64) {
    let mut b = Mutation::builder(schema, &[Value::Int(1)]).now(GcTime(1000));
    for i in 0..n {
        b = b.insert(&[Value::Int(i)], Timestamp(ts)).set(&[Value::Int(i)], "v", Value::Int(i), Timestamp(ts));
        b = b.delete_row(&[Value::Int(i + 10_000)], Timestamp(ts)); // row tombstones too
    }
    engine.apply(&b.build().unwrap()).unwrap();
}

#[test]
fn r1_33_range_tombstone_drops_covered_rows_and_row_tombstones_from_the_memtable() {
    let (engine, schema) = setup();
    write_rows(&engine, &schema, 1000, 10);
    let before = engine.query(&Query::partition(&schema, &[Value::Int(1)]).unwrap()).unwrap();
    assert_eq!(before.stats.live_rows, 1000);
    assert_eq!(before.stats.compaction.row_tombstones, 1000);

    let rt = Mutation::builder(&schema, &[Value::Int(1)])
        .now(GcTime(1000))
        .delete_range(RangeBound::Unbounded, RangeBound::Exclusive(vec![Value::Int(20_000)]), Timestamp(11))
        .build()
        .unwrap();
    engine.apply(&rt).unwrap();
    let after = engine.query(&Query::partition(&schema, &[Value::Int(1)]).unwrap()).unwrap();
    assert!(after.partitions.is_empty());
    // Nothing of the 2,000 covered rows is left to visit: only the range tombstone itself.
    assert_eq!(after.stats.compaction.rows, 0);
    assert_eq!(after.stats.compaction.range_tombstone_changes, 1);

    // Data older than the tombstone that arrives later is still shadowed (R1.26).
    write_rows(&engine, &schema, 10, 11);
    let late = engine.query(&Query::partition(&schema, &[Value::Int(1)]).unwrap()).unwrap();
    assert!(late.partitions.is_empty());
    assert_eq!(late.stats.compaction.rows, 0, "eagerly dropped on arrival too");
    // Newer data survives.
    write_rows(&engine, &schema, 10, 12);
    let newer = engine.query(&Query::partition(&schema, &[Value::Int(1)]).unwrap()).unwrap();
    assert_eq!(newer.stats.live_rows, 10);
}

#[test]
fn r1_23_partition_tombstone_drops_everything_older() {
    let (engine, schema) = setup();
    write_rows(&engine, &schema, 100, 10);
    let del = Mutation::builder(&schema, &[Value::Int(1)]).now(GcTime(1000)).delete_partition(Timestamp(10)).build().unwrap();
    engine.apply(&del).unwrap();
    let r = engine.query(&Query::partition(&schema, &[Value::Int(1)]).unwrap()).unwrap();
    assert!(r.partitions.is_empty());
    assert_eq!(r.stats.compaction.rows, 0);
    assert_eq!(r.stats.compaction.partition_tombstones, 1);
}

#[test]
fn errors_are_typed_and_name_the_problem() {
    let (engine, schema) = setup();
    let unknown = Mutation::builder(&schema, &[Value::Int(1)]).set(&[Value::Int(1)], "nope", Value::Int(1), Timestamp(1)).build();
    assert!(matches!(unknown, Err(talus::format::Error::UnknownColumn { .. })), "{unknown:?}");
    let wrong = Mutation::builder(&schema, &[Value::Int(1)]).set(&[Value::Int(1)], "v", Value::Text("x".into()), Timestamp(1)).build();
    assert!(matches!(wrong, Err(talus::format::Error::WrongType { .. })), "{wrong:?}");
    let arity = Mutation::builder(&schema, &[]).build();
    assert!(matches!(arity, Err(talus::format::Error::KeyArity { .. })), "{arity:?}");
    let missing_ck = Mutation::builder(&schema, &[Value::Int(1)]).insert(&[], Timestamp(1)).build();
    assert!(matches!(missing_ck, Err(talus::format::Error::KeyArity { .. })), "{missing_ck:?}");
    let inverted = Mutation::builder(&schema, &[Value::Int(1)])
        .delete_range(RangeBound::Inclusive(vec![Value::Int(5)]), RangeBound::Inclusive(vec![Value::Int(4)]), Timestamp(1))
        .build();
    assert!(matches!(inverted, Err(talus::format::Error::InvalidRange(_))), "{inverted:?}");
    let big = Mutation::builder(&schema, &[Value::Int(1)]).insert_with_ttl(&[Value::Int(1)], Timestamp(1), Some(0)).build();
    assert!(matches!(big, Err(talus::format::Error::InvalidOption(_))), "{big:?}");
    let unknown_table = engine.query(&Query::new("ks.missing", talus::PartitionRange::all()));
    assert!(matches!(unknown_table, Err(talus::Error::UnknownTable(_))));
    let dup = engine.create_table(schema.clone());
    assert!(matches!(dup, Err(talus::Error::TableExists(_))));
    let huge_key = Mutation::builder(
        &Schema::builder("ks", "b").partition_key("k", ColumnType::Blob).build().unwrap(),
        &[Value::Blob(vec![0u8; 70_000].into())],
    )
    .build();
    assert!(matches!(huge_key, Err(talus::format::Error::TooLarge { .. })), "{huge_key:?}");
}
