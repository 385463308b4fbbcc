//! Concurrency of the memtable (DESIGN §3): readers run while writers write, and a single mutation
//! becomes visible all at once — a reader never sees half of one.

#![allow(clippy::unwrap_used)] // test setup: a failure should fail the test loudly

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use talus::format::{ColumnType, GcTime, Mutation, Timestamp, Value};
use talus::Query;

#[test]
fn a_mutation_is_visible_all_at_once_to_concurrent_readers() {
    let (engine, schema) = talus_tests::fixture::engine_with_table("concurrency", ColumnType::BigInt).unwrap();
    const ROWS: i32 = 64;
    const GENERATIONS: i64 = 300;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, schema) = (engine.clone(), schema.clone());
        std::thread::spawn(move || {
            // Each mutation rewrites every row of the partition with one generation number.
            for generation in 1..=GENERATIONS {
                let mut b = Mutation::builder(&schema, &[Value::Int(0)]).now(GcTime(0));
                for ck in 0..ROWS {
                    b = b.set(&[Value::Int(ck)], "v", Value::BigInt(generation), Timestamp(generation));
                }
                engine.apply(&b.build().unwrap()).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, schema, stop) = (engine.clone(), schema.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = engine.query(&Query::partition(&schema, &[Value::Int(0)]).unwrap()).unwrap();
                    let gens: Vec<&[u8]> = r.rows().map(|(_, row)| &row.cells[0].1[..]).collect();
                    assert!(gens.is_empty() || gens.len() == ROWS as usize, "partial mutation: {} rows", gens.len());
                    assert!(gens.windows(2).all(|w| w[0] == w[1]), "rows from different mutations in one read");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    let last = engine.query(&Query::partition(&schema, &[Value::Int(0)]).unwrap()).unwrap();
    assert_eq!(last.stats.live_rows, ROWS as u64);
    assert!(last.rows().all(|(_, row)| row.cells[0].1[..] == GENERATIONS.to_be_bytes()));
}
