//! Damage to commitlog segments at rest (reliability-testing §2.3 stage 6, P4, bug classes 2 and
//! 6): a torn tail at every byte of the last record is cut off silently; a bit flip in any field of
//! any earlier record fails the open with the file and offset (or, when asked, is skipped and
//! counted); stale records of a recycled segment never come back.
//!
//! Report: `target/reports/commitlog_corruption.json`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map};
use talus::commitlog::{CorruptionPolicy, Durability, SegmentName};
use talus::format::commitlog_segment::{scan_segment, ScanOptions, RECORD_HEADER_LEN, RECORD_MUTATIONS};
use talus::fs::{CrashMode, Fs, OpenMode, SimFs};
use talus::{Engine, Error};
use talus_tests::durability::{open, present_ids, write_of, Workload, TABLES};
use talus_tests::report::{write_report, Counters};

const DIR: &str = "/db";

fn workload() -> Workload {
    Workload {
        threads: 1,
        writes_per_thread: 0,
        durability: Durability::Batch(Duration::ZERO),
        segment_size: 4096,
        persist_every: None,
        sync_now_every: None,
    }
}

/// One record of a segment file.
#[derive(Debug, Clone, Copy)]
struct Record {
    file: u64,
    offset: u32,
    end: u32,
}

/// A SimFs holding `n` writes, each synced on its own (one writer, `Batch`), and its records.
fn synced_log(n: u64) -> (SimFs, Vec<Record>) {
    let fs = SimFs::new(n);
    {
        let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &workload()).unwrap();
        for id in 0..n {
            engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
        }
    }
    let mut records = Vec::new();
    let log = Path::new(DIR).join("commitlog");
    for name in fs.list(&log).unwrap() {
        let Some(SegmentName::Live(id)) = SegmentName::parse(&name) else { continue };
        let bytes = fs.open(&log.join(&name), OpenMode::Existing).unwrap().read_all().unwrap();
        let scan = scan_segment(&bytes, ScanOptions { expected_id: id, followed_by_records: false, skip_corrupt: false }).unwrap();
        records.extend(scan.records.iter().filter(|r| r.kind == RECORD_MUTATIONS).map(|r| Record {
            file: id,
            offset: r.offset,
            end: r.end,
        }));
    }
    assert_eq!(records.len() as u64, n);
    (fs, records)
}

fn segment_file(id: u64) -> PathBuf {
    Path::new(DIR).join("commitlog").join(SegmentName::Live(id).file_name())
}

fn reopen(fs: &SimFs, policy: CorruptionPolicy) -> talus::Result<Engine> {
    let mut workload = workload().options();
    workload.commitlog.corruption = policy;
    Engine::open_with_fs(Arc::new(fs.crash(CrashMode::KeepAll)), DIR, workload)
}

fn ids(engine: &Engine) -> BTreeSet<u64> {
    let first = present_ids(engine, TABLES[0]).unwrap();
    assert_eq!(first, present_ids(engine, TABLES[1]).unwrap(), "a batch was torn");
    first
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_off() {
    let n = 12;
    let (fs, records) = synced_log(n);
    let last = *records.last().unwrap();
    let mut cases = 0;
    for at in last.offset..last.end {
        for garbage in [false, true] {
            let damaged = fs.crash(CrashMode::KeepAll);
            let len = (last.end - at) as usize;
            let fill: Vec<u8> = if garbage { (0..len).map(|i| (i * 37 + 11) as u8).collect() } else { vec![0; len] };
            let mut before = vec![0; len];
            damaged.open(&segment_file(last.file), OpenMode::Existing).unwrap().read_exact_at(&mut before, u64::from(at)).unwrap();
            if before == fill {
                continue; // the bytes already look like this: nothing is torn
            }
            damaged.corrupt(&segment_file(last.file), u64::from(at), &fill).unwrap();
            let engine = reopen(&damaged, CorruptionPolicy::Fail).unwrap();
            assert_eq!(ids(&engine), (0..n - 1).collect(), "tail torn at {at} (garbage {garbage}), last record {last:?}");
            let report = engine.recovery_report();
            assert_eq!(report.tail_cut_at.map(|p| (p.segment, p.offset)), Some((last.file, last.offset)));
            cases += 1;
        }
    }
    // After the cut, the log goes on: a new write survives a power loss right after its ack.
    let damaged = fs.crash(CrashMode::KeepAll);
    damaged.corrupt(&segment_file(last.file), u64::from(last.offset) + 3, &[0xff]).unwrap();
    {
        let (engine, schemas) = open(Arc::new(damaged.clone()), Path::new(DIR), &workload()).unwrap();
        engine.apply_batch(&write_of(&schemas, 100).unwrap()).unwrap();
    }
    let engine = reopen(&damaged.crash(CrashMode::DropAll), CorruptionPolicy::Fail).unwrap();
    assert_eq!(ids(&engine), (0..n - 1).chain([100]).collect());
    let counters = Counters { crash_points: cases, ..Counters::default() };
    let mut extra = Map::new();
    extra.insert("torn_tail_cases".into(), json!(cases));
    write_report("commitlog_torn_tail", &counters, extra).unwrap();
}

/// Byte offsets inside a record to damage: every header byte (length, durable_before, segment
/// id, checksum) and the first, middle and last payload bytes.
fn damage_offsets(r: Record) -> Vec<u32> {
    let header = RECORD_HEADER_LEN as u32;
    let mut at: Vec<u32> = (r.offset..r.offset + header).collect();
    at.extend([r.offset + header, (r.offset + header + r.end) / 2, r.end - 1]);
    at
}

#[test]
fn a_bit_flip_in_any_earlier_record_is_a_typed_error_or_a_counted_skip() {
    let n = 80;
    let (fs, records) = synced_log(n);
    assert!(records.iter().map(|r| r.file).collect::<BTreeSet<_>>().len() >= 3, "the log should span several segments");
    let mut counters = Counters::default();
    let mut skipped_ok = 0u64;
    for (i, record) in records.iter().enumerate().take(records.len() - 1) {
        for (k, at) in damage_offsets(*record).into_iter().enumerate() {
            let damaged = fs.crash(CrashMode::KeepAll);
            let path = segment_file(record.file);
            let file = damaged.open(&path, OpenMode::Existing).unwrap();
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, u64::from(at)).unwrap();
            damaged.corrupt(&path, u64::from(at), &[byte[0] ^ (1 << (k % 8))]).unwrap();
            counters.bit_flips += 1;
            match reopen(&damaged, CorruptionPolicy::Fail) {
                Err(Error::CommitlogCorrupt { file, offset, .. })
                    if file == path.display().to_string() && offset == u64::from(record.offset) =>
                {
                    counters.detected_corruptions += 1;
                }
                other => {
                    counters.undetected_corruptions += 1;
                    eprintln!("flip at {}:{at} (record {i}) not reported: {:?}", record.file, other.map(|e| ids(&e).len()));
                }
            }
            // Skip-and-count loses exactly the damaged entry and says so.
            let engine = reopen(&damaged, CorruptionPolicy::SkipAndCount).unwrap();
            let expected: BTreeSet<u64> = (0..n).filter(|&id| id != i as u64).collect();
            if ids(&engine) == expected && engine.recovery_report().corrupt_regions_skipped == 1 {
                skipped_ok += 1;
            } else {
                counters.undetected_corruptions += 1;
            }
        }
    }
    let mut extra = Map::new();
    extra.insert("skip_and_count_exact".into(), json!(skipped_ok));
    let path = write_report("commitlog_corruption", &counters, extra).unwrap();
    eprintln!("{counters:?}; report {}", path.display());
    assert_eq!(counters.undetected_corruptions, 0);
    assert_eq!(counters.detected_corruptions, counters.bit_flips);
}

#[test]
fn a_damaged_segment_header_before_records_is_a_typed_error() {
    let (fs, records) = synced_log(5);
    let first = records[0].file;
    for at in 0..24u64 {
        let damaged = fs.crash(CrashMode::KeepAll);
        damaged.corrupt(&segment_file(first), at, &[0x5a]).unwrap();
        match reopen(&damaged, CorruptionPolicy::Fail) {
            Err(Error::CommitlogCorrupt { offset: 0, .. }) => {}
            other => panic!("header byte {at}: {:?}", other.map(|_| "opened")),
        }
    }
}

/// Bug class 6: a recycled file keeps its old records after the new tail; their checksums are
/// valid, but they carry the old segment id, so replay stops at them.
#[test]
fn stale_records_of_a_recycled_segment_never_come_back() {
    for mode in [CrashMode::DropAll, CrashMode::KeepAll] {
        let fs = SimFs::new(9);
        let log = Path::new(DIR).join("commitlog");
        let still_replayable: BTreeSet<u64> = {
            let (engine, schemas) = open(Arc::new(fs.clone()), Path::new(DIR), &workload()).unwrap();
            let positions: Vec<_> = (0..100).map(|id| engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap()).collect();
            // Flush both tables: every closed segment becomes clean and is recycled.
            for table in TABLES {
                engine.flush(table).unwrap();
            }
            let recycled = fs.list(&log).unwrap().iter().filter(|n| n.starts_with("Recycled-")).count();
            assert!(recycled >= 2, "{:?}", fs.list(&log));
            // The active segment stays live; replaying its flushed entries again is harmless.
            let live = engine.commitlog_segments();
            let kept = (0..100).filter(|&id| live.contains(&positions[id as usize].segment)).collect();
            // New writes reuse the recycled files (and write fewer records than they held).
            for id in 1000..1100 {
                engine.apply_batch(&write_of(&schemas, id).unwrap()).unwrap();
            }
            let left = fs.list(&log).unwrap().iter().filter(|n| n.starts_with("Recycled-")).count();
            assert!(left < recycled, "no recycled file was reused: {:?}", fs.list(&log));
            kept
        };
        let engine = reopen(&fs.crash(mode), CorruptionPolicy::Fail).unwrap();
        assert!(still_replayable.len() < 50);
        // Every write is readable (the flushed ones from sstables), and replay read exactly the
        // entries of the live segments: no stale record of a recycled file came back.
        assert_eq!(ids(&engine), (0..100).chain(1000..1100).collect(), "{mode:?}");
        assert_eq!(engine.recovery_report().entries_replayed, still_replayable.len() as u64 + 100, "{mode:?}");
    }
}
