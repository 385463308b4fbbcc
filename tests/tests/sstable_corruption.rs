//! The sstable and manifest corruption campaign (reliability-testing P4, bug classes 1, 3, 4, 10):
//! an sstable flushed by the engine is damaged in every section — single-bit flips at random
//! offsets of the data blocks, the row index, the partition index, the bloom filter, the
//! statistics and every bit of the footer; runs of zeroed bytes; truncations; a block copied over
//! another — and then read completely (open, full scan, every partition by key). Each case must be
//! detected (a typed corruption error) and none may return data that differs from the undamaged
//! file. Through the engine, damaged sstables are quarantined and left out of later reads, and
//! bit flips in the manifest (every record but the last, which a torn append also damages and
//! which recovery therefore cuts) fail the open with `MetadataCorrupt`.
//!
//! Report: `target/reports/sstable_corruption.json` with `bit_flips`, `detected`,
//! `undetected_corruptions` and `wrong_results`, per section too. Scale with
//! `TALUS_CORRUPTION_SCALE` (default 1: about 11,000 damaged files).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map};
use talus::format::sstable::reader::{ReadCounters, ReadPlan, SstableReader};
use talus::format::{ColumnType, Fragment, GcTime, Mutation, RangeBound, Schema, SchemaRef, Timestamp, Value};
use talus::fs::{Fs, OpenMode, SimFs};
use talus::{scan_all, Engine, Error};
use talus_tests::fixture::test_options;
use talus_tests::report::{write_report, Counters};

const DIR: &str = "/db";
const TABLE: &str = "ks.t";

fn scale() -> u64 {
    std::env::var("TALUS_CORRUPTION_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

fn schema() -> SchemaRef {
    Schema::builder("ks", "t")
        .partition_key("pk", ColumnType::Int)
        .clustering("ck", ColumnType::Int)
        .static_column("s", ColumnType::Text)
        .regular("v", ColumnType::Text)
        .build()
        .unwrap()
}

/// An engine on `fs` holding one flushed sstable with small and wide partitions, static rows,
/// range and partition tombstones; returns the sstable's generation.
fn engine_with_sstable(fs: &SimFs) -> (Engine, u64) {
    let engine = Engine::open_with_fs(Arc::new(fs.clone()), DIR, test_options()).unwrap();
    let schema = schema();
    engine.create_table(schema.clone()).unwrap();
    let ts = |t: i64| Timestamp(t);
    for pk in 0..60 {
        let rows = if pk % 20 == 0 { 400 } else { 3 };
        let mut b = Mutation::builder(&schema, &[Value::Int(pk)]).now(GcTime(1_000_000));
        b = b.set_static("s", Value::Text(format!("static {pk}")), ts(5));
        for ck in 0..rows {
            b = b.set(&[Value::Int(ck)], "v", Value::Text(format!("value {pk}/{ck} {}", "x".repeat(20))), ts(10 + i64::from(ck)));
        }
        if pk % 7 == 0 {
            b = b.delete_range(RangeBound::Inclusive(vec![Value::Int(1)]), RangeBound::Exclusive(vec![Value::Int(3)]), ts(1_000));
        }
        if pk == 33 {
            b = b.delete_partition(ts(2));
        }
        engine.apply(&b.build().unwrap()).unwrap();
    }
    let report = engine.flush(TABLE).unwrap();
    assert_eq!(report.generations.len(), 1);
    (engine, report.generations[0])
}

fn sstable_path(generation: u64) -> String {
    format!("{DIR}/sst/{generation:020}.sst")
}

fn file_bytes(fs: &SimFs, path: &str) -> Vec<u8> {
    fs.open(Path::new(path), OpenMode::Existing).unwrap().read_all().unwrap()
}

/// Everything a reader can return from a file: the full scan and every partition read by key.
#[derive(Debug, PartialEq)]
struct Contents {
    scan: Vec<Fragment>,
    by_key: Vec<Vec<Fragment>>,
}

fn read_everything(bytes: &[u8], generation: u64, keys: &[talus::format::DecoratedKey]) -> talus::format::Result<Contents> {
    let reader = Arc::new(SstableReader::open(Arc::new(Bytes::copy_from_slice(bytes)), Some(generation), None)?);
    let counters = Arc::new(ReadCounters::default());
    let plan = Arc::new(ReadPlan::full());
    let scan = reader.stream(0..reader.partitions().len(), plan.clone(), counters.clone()).collect::<Result<Vec<_>, _>>()?;
    let mut by_key = Vec::new();
    for key in keys {
        let Some(i) = reader.find_index(key) else {
            by_key.push(Vec::new());
            continue;
        };
        by_key.push(reader.stream_partition(i, plan.clone(), counters.clone()).collect::<Result<Vec<_>, _>>()?);
    }
    Ok(Contents { scan, by_key })
}

/// Outcome counters of one kind of damage.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    cases: u64,
    detected: u64,
    undetected: u64,
    wrong: u64,
}

impl Tally {
    fn json(&self) -> serde_json::Value {
        json!({ "cases": self.cases, "detected": self.detected, "undetected_corruptions": self.undetected, "wrong_results": self.wrong })
    }
}

struct Campaign {
    pristine: Vec<u8>,
    generation: u64,
    keys: Vec<talus::format::DecoratedKey>,
    expected: Contents,
    tallies: BTreeMap<String, Tally>,
}

impl Campaign {
    /// Reads the damaged file and files the outcome under `kind`; the first bad outcome is
    /// reported with the damage that caused it.
    fn check(&mut self, kind: &str, damaged: &[u8], what: &str) {
        if damaged == self.pristine.as_slice() {
            return; // the damage changed nothing (e.g. zeroing zeros)
        }
        let tally = self.tallies.entry(kind.to_string()).or_default();
        tally.cases += 1;
        match read_everything(damaged, self.generation, &self.keys) {
            Err(talus::format::Error::Corrupt { .. }) => tally.detected += 1,
            Err(other) => panic!("{what}: untyped error {other:?}"),
            Ok(contents) if contents == self.expected => {
                tally.undetected += 1;
                eprintln!("UNDETECTED: {what}");
            }
            Ok(_) => {
                tally.wrong += 1;
                eprintln!("WRONG RESULT: {what}");
            }
        }
    }
}

fn sections(reader: &SstableReader) -> Vec<(&'static str, u64, u64)> {
    let f = reader.footer();
    vec![
        ("data_blocks", 0, f.data_end()),
        ("row_index", f.row_index.offset, f.row_index.len),
        ("partition_index", f.partition_index.offset, f.partition_index.len),
        ("bloom_filter", f.filter.offset, f.filter.len),
        ("statistics", f.statistics.offset, f.statistics.len),
        ("footer", reader.file_len() - 120, 120),
    ]
}

#[test]
fn every_damaged_sstable_is_detected_and_never_read_wrong() {
    let fs = SimFs::new(1);
    let (engine, generation) = engine_with_sstable(&fs);
    drop(engine);
    let pristine = file_bytes(&fs, &sstable_path(generation));
    let reader = SstableReader::open(Arc::new(Bytes::from(pristine.clone())), Some(generation), None).unwrap();
    let keys: Vec<_> = reader.partitions().iter().map(|p| p.key()).collect();
    let layout = sections(&reader);
    let expected = read_everything(&pristine, generation, &keys).unwrap();
    assert!(reader.partitions().iter().any(|p| p.has_row_index()), "the fixture must have wide partitions");
    let mut campaign = Campaign { pristine: pristine.clone(), generation, keys, expected, tallies: BTreeMap::new() };
    let mut rng = SmallRng::seed_from_u64(42);

    // Single-bit flips: every bit of the footer, random bits of every other section.
    let flips_per_section = 2_000 * scale();
    for &(name, offset, len) in &layout {
        assert!(len > 0, "{name} is empty");
        let bits: Vec<u64> =
            if name == "footer" { (0..len * 8).collect() } else { (0..flips_per_section).map(|_| rng.random_range(0..len * 8)).collect() };
        for bit in bits {
            let mut damaged = pristine.clone();
            let at = (offset + bit / 8) as usize;
            damaged[at] ^= 1 << (bit % 8);
            campaign.check(&format!("bit_flip/{name}"), &damaged, &format!("bit {} of byte {at} ({name})", bit % 8));
        }
    }
    // Zeroed runs anywhere.
    for _ in 0..500 * scale() {
        let at = rng.random_range(0..pristine.len());
        let len = rng.random_range(1..=64).min(pristine.len() - at);
        let mut damaged = pristine.clone();
        damaged[at..at + len].fill(0);
        campaign.check("zeroed_run", &damaged, &format!("{len} zero bytes at {at}"));
    }
    // Truncations.
    for _ in 0..300 * scale() {
        let len = rng.random_range(0..pristine.len());
        campaign.check("truncation", &pristine[..len], &format!("truncated to {len} bytes"));
    }
    // A block copied over another: every block onto the next, and onto random ones.
    let handles = reader.block_handles().unwrap();
    assert!(handles.len() > 10, "{} blocks", handles.len());
    for i in 0..handles.len() {
        let from = handles[i];
        let to = if i + 1 < handles.len() { handles[i + 1] } else { handles[rng.random_range(0..i)] };
        let block = &pristine[from.offset as usize..from.end() as usize];
        let mut damaged = pristine.clone();
        let end = (to.offset as usize + block.len()).min(damaged.len());
        damaged[to.offset as usize..end].copy_from_slice(&block[..end - to.offset as usize]);
        campaign.check("block_copied", &damaged, &format!("block at {} copied to {}", from.offset, to.offset));
    }

    let mut total = Tally::default();
    let mut per_kind = Map::new();
    for (kind, t) in &campaign.tallies {
        total.cases += t.cases;
        total.detected += t.detected;
        total.undetected += t.undetected;
        total.wrong += t.wrong;
        per_kind.insert(kind.clone(), t.json());
    }
    let bit_flips: u64 = campaign.tallies.iter().filter(|(k, _)| k.starts_with("bit_flip/")).map(|(_, t)| t.cases).sum();
    let counters = Counters {
        bit_flips,
        detected_corruptions: total.detected,
        undetected_corruptions: total.undetected + total.wrong,
        ..Counters::default()
    };
    let mut extra = Map::new();
    extra.insert("damaged_files".into(), json!(total.cases));
    extra.insert("detected".into(), json!(total.detected));
    extra.insert("wrong_results".into(), json!(total.wrong));
    extra.insert("by_kind".into(), serde_json::Value::Object(per_kind));
    let path = write_report("sstable_corruption", &counters, extra).unwrap();
    eprintln!("sstable corruption: {total:?}, {bit_flips} bit flips; report {}", path.display());
    assert!(bit_flips >= 10_000, "{bit_flips} bit flips");
    assert_eq!((total.undetected, total.wrong), (0, 0), "{total:?}");
    assert_eq!(total.detected, total.cases);
}

/// Through the engine: a damaged sstable fails the read that meets the damage with
/// `SstableCorrupt` (or is found at open), is quarantined (the manifest records it), and later
/// reads and reopens leave it out; what the commitlog still holds is replayed again.
#[test]
fn the_engine_quarantines_a_damaged_sstable() {
    let mut rng = SmallRng::seed_from_u64(7);
    for case in 0..40u64 {
        let fs = SimFs::new(case);
        let (engine, generation) = engine_with_sstable(&fs);
        let original = engine.query(&scan_all(TABLE)).unwrap().partitions;
        assert!(!original.is_empty());
        let path = sstable_path(generation);
        let len = file_bytes(&fs, &path).len() as u64;
        let at = rng.random_range(0..len);
        let byte = file_bytes(&fs, &path)[at as usize] ^ (1 << rng.random_range(0..8));
        fs.corrupt(Path::new(&path), at, &[byte]).unwrap();
        // A block may be cached already or the reader opened: read until the damage is met.
        drop(engine);
        let engine = Engine::open_with_fs(Arc::new(fs.clone()), DIR, test_options()).unwrap();
        let quarantined_at_open = !engine.quarantined().is_empty();
        if !quarantined_at_open {
            match engine.query(&scan_all(TABLE)) {
                Err(Error::SstableCorrupt { file, .. }) => assert_eq!(file, path),
                other => panic!("case {case}: flip at {at} not detected by a full read: {other:?}"),
            }
        }
        assert_eq!(engine.quarantined().iter().map(|q| q.generation).collect::<Vec<_>>(), vec![generation], "case {case}");
        assert!(engine.sstables(TABLE).unwrap().is_empty());
        // Without the sstable a read returns nothing of it, or everything again where the
        // commitlog still holds it: replay no longer skips what a quarantined file covered.
        let after = engine.query(&scan_all(TABLE)).unwrap().partitions;
        assert!(after.is_empty() || after == original, "case {case}: {} partitions", after.len());
        // The quarantine is durable: a reopen does not load the file again.
        drop(engine);
        let engine = Engine::open_with_fs(Arc::new(fs.crash(talus::fs::CrashMode::DropAll)), DIR, test_options()).unwrap();
        assert!(engine.sstables(TABLE).unwrap().is_empty(), "case {case}");
        let after = engine.query(&scan_all(TABLE)).unwrap().partitions;
        assert!(after.is_empty() || after == original, "case {case}: {} partitions after reopen", after.len());
    }
}

/// Bit flips in the manifest: a damaged header or record followed by a valid one fails the open
/// with `MetadataCorrupt` naming the file; nothing is loaded from a manifest that lies.
#[test]
fn manifest_bit_flips_fail_the_open() {
    let fs = SimFs::new(3);
    let (engine, _) = engine_with_sstable(&fs);
    // One more record, so the add of the sstable is not the last one.
    engine.create_table(Schema::builder("ks", "other").partition_key("k", ColumnType::Int).build().unwrap()).unwrap();
    drop(engine);
    let manifest = format!("{DIR}/MANIFEST");
    let pristine = file_bytes(&fs, &manifest);
    let last_record = talus::format::manifest::scan_manifest(&pristine).unwrap().offsets.last().copied().unwrap();
    let mut flips = 0;
    for bit in 0..last_record * 8 {
        let damaged = fs.crash(talus::fs::CrashMode::KeepAll);
        let byte = pristine[bit / 8] ^ (1 << (bit % 8));
        damaged.corrupt(Path::new(&manifest), (bit / 8) as u64, &[byte]).unwrap();
        match Engine::open_with_fs(Arc::new(damaged), DIR, test_options()) {
            Err(Error::MetadataCorrupt { file, .. }) => assert!(file.ends_with("MANIFEST")),
            other => panic!("flip of bit {bit}: {:?}", other.map(|_| "opened")),
        }
        flips += 1;
    }
    assert!(flips > 1_000, "{flips}");
}
