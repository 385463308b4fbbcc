//! ScyllaDB's tombstone guards on reads (R5.5): a single-partition read that sees 1,000
//! tombstones warns; a paged read cuts its page after 10,000 tombstones and returns a paging state
//! that continues exactly where it stopped; an unpaged read keeps going.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use talus::format::{ColumnType, GcTime, Mutation, SchemaRef, Timestamp, Value};
use talus::{Engine, Query};

fn engine_with_dead_rows(dead: i32, live_after: i32) -> (Engine, SchemaRef) {
    let (engine, schema) = talus_tests::fixture::engine_with_table("guards", ColumnType::Int).unwrap();
    // Several mutations, so each commitlog entry stays below half a segment.
    for chunk in (0..dead).collect::<Vec<_>>().chunks(5_000) {
        let mut b = Mutation::builder(&schema, &[Value::Int(1)]).now(GcTime(0));
        for &i in chunk {
            b = b.delete_row(&[Value::Int(i)], Timestamp(5));
        }
        engine.apply(&b.build().unwrap()).unwrap();
    }
    let mut b = Mutation::builder(&schema, &[Value::Int(1)]).now(GcTime(0));
    for i in dead..dead + live_after {
        b = b.set(&[Value::Int(i)], "v", Value::Int(i), Timestamp(5));
    }
    engine.apply(&b.build().unwrap()).unwrap();
    (engine, schema)
}

#[test]
fn r5_5_warns_at_1000_tombstones_in_one_partition() {
    let (engine, schema) = engine_with_dead_rows(999, 1);
    let mut q = Query::partition(&schema, &[Value::Int(1)]).unwrap();
    q.now = GcTime(0);
    assert!(engine.query(&q).unwrap().warnings.is_empty());
    let (engine, schema) = engine_with_dead_rows(1000, 1);
    let r = engine.query(&q).unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("1000 tombstones"), "{}", r.warnings[0]);
    let _ = schema;
}

#[test]
fn r5_5_paged_read_cuts_after_10000_tombstones_and_resumes() {
    let (engine, schema) = engine_with_dead_rows(25_000, 3);
    let mut q = Query::partition(&schema, &[Value::Int(1)]).unwrap();
    q.now = GcTime(0);
    // Unpaged: reads through everything.
    let all = engine.query(&q).unwrap();
    assert_eq!(all.stats.live_rows, 3);
    assert!(all.paging_state.is_none());

    q.page_size = Some(100);
    let mut pages = 0;
    let mut rows = Vec::new();
    loop {
        let page = engine.query(&q).unwrap();
        pages += 1;
        assert!(page.stats.compaction.guard_count() <= 10_000, "page saw {}", page.stats.compaction.guard_count());
        rows.extend(page.rows().map(|(_, r)| r.clustering.clone()));
        match page.paging_state {
            Some(state) => q.paging_state = Some(state),
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3, "25,000 tombstones: two cut pages, then the rest");
    let expected: Vec<_> = (25_000..25_003).map(|i| schema.clustering_key(&[Value::Int(i)]).unwrap()).collect();
    assert_eq!(rows, expected);
}
