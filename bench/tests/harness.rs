//! The `talus-bench` harness on a tiny run: every workload on Talus (both shapes) and fjall,
//! with a record each, and the report files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure fails the test loudly

use std::time::Duration;

use talus_bench::harness::{run, write_reports, Config, Workload};
use talus_bench::peers::PeerKind;

#[test]
fn a_tiny_run_reports_every_workload_on_every_engine_and_writes_the_files() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(2_000, scratch.path());
    config.engines = vec![PeerKind::Talus, PeerKind::TalusWide, PeerKind::Fjall];
    config.repeat = 1;
    config.mixed_duration = Duration::from_millis(200);
    config.batchlog_batches = 500;
    config.machine_duration = Duration::from_millis(50);
    config.progress = false;
    let report = run(&config).expect("run");

    // A record per workload and engine that can run it, with a positive rate.
    for workload in Workload::ALL {
        for kind in &config.engines {
            let record = report.record(workload, kind.name());
            if !workload.applies_to(*kind) {
                assert!(record.is_none(), "{workload} on {kind} cannot run");
                continue;
            }
            let record = record.unwrap_or_else(|| panic!("no record of {workload} on {kind}"));
            assert!(record.ops_per_sec > 0.0 && record.ops_per_sec.is_finite(), "{record:?}");
            assert!(record.min_ops_per_sec <= record.ops_per_sec && record.ops_per_sec <= record.max_ops_per_sec, "{record:?}");
            assert_eq!((record.engine.as_str(), record.shape.as_str()), (kind.engine(), kind.shape()));
            assert_eq!(record.samples_ops_per_sec.len(), 1);
            if kind.is_talus() && workload != Workload::BatchlogV2 {
                assert!(record.ratios.get("fjall").is_some_and(|r| *r > 0.0), "Talus ÷ fjall of {workload}: {record:?}");
            }
        }
    }
    // What the workloads counted.
    let fill = report.record(Workload::FillRandom, "talus").expect("fillrandom");
    assert_eq!(fill.ops, 2_000);
    assert!(fill.latency.is_some_and(|l| l.p50_us > 0.0 && l.p50_us <= l.p99_us));
    assert!(fill.limit.as_ref().is_some_and(|l| l.fraction > 0.0), "{fill:?}");
    for kind in &config.engines {
        let scan = report.record(Workload::ReadSeq, kind.name()).expect("readseq");
        assert_eq!(scan.ops, 2_000, "{kind}: every row scanned");
        let deleted = report.record(Workload::DeleteRangeScan, kind.name()).expect("scan after delete");
        assert_eq!(deleted.details.get("rows_found"), Some(&0.0), "{kind}: nothing left after deleting every key");
        let seek = report.record(Workload::SeekRandom, kind.name()).expect("seekrandom");
        assert!(seek.details.get("rows_per_seek").is_some_and(|r| *r > 9.0), "{kind}: {seek:?}");
        let mixed = report.record(Workload::YcsbA, kind.name()).expect("ycsb-a");
        assert_eq!(mixed.details.get("read_misses"), Some(&0.0), "{kind}");
    }
    // One range tombstone per partition for the wide shape, point deletes elsewhere.
    let wide = report.record(Workload::DeleteRange, "talus-wide").expect("deleterange");
    assert_eq!(wide.details.get("range_deletes"), Some(&1.0));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let m = &report.machine;
    assert!(m.seq_write_mb_per_s > 0.0 && m.fsync.fsyncs_per_s > 0.0 && m.fsync_overwrite.fsyncs_per_s > 0.0);
    assert!(
        m.memcpy.mb_per_s > 0.0
            && m.zstd.decompress_mb_per_s > 0.0
            && m.lz4.decompress_mb_per_s > 0.0
            && m.fsyncs_per_s() >= m.fsync.fsyncs_per_s
    );
    assert_eq!(m.seq_write.len(), 2);
    assert!(report.markdown().contains("| fillrandom | talus |"));

    // The files.
    let reports = scratch.path().join("reports");
    let written = write_reports(&report, &reports).expect("write reports");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&written.json).expect("read json")).expect("parse json");
    let records = json["records"].as_array().expect("records");
    let found = records.iter().find(|r| r["workload"] == "fillrandom" && r["engine"] == "talus" && r["shape"] == "kv").expect("fillrandom");
    assert!(found["ops_per_sec"].as_f64().is_some_and(|x| x > 0.0));
    assert!(json["machine"]["zstd"]["compress_mb_per_s"].as_f64().is_some_and(|x| x > 0.0));
    for png in [&written.throughput_png, &written.latency_png] {
        let bytes = std::fs::read(png.as_ref().expect("a chart")).expect("read png");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1_000);
    }
    assert_eq!(written.paths().len(), 4);
    // Nothing left behind in the measuring directory but the reports.
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("reports")]);
}

#[test]
fn workload_filters_and_settings_are_checked() {
    assert_eq!(Workload::parse_filter("ycsb").unwrap(), vec![Workload::YcsbA, Workload::YcsbB]);
    assert_eq!(Workload::parse_filter(" ReadSeq ").unwrap(), vec![Workload::ReadSeq]);
    assert!(Workload::parse_filter("readall").is_err());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(10, dir.path());
    config.repeat = 0;
    assert!(run(&config).is_err());
    let mut config = Config::new(10, dir.path());
    config.key_size = 4;
    config.progress = false;
    assert!(run(&config).is_err(), "keys under 8 bytes are refused");
}
