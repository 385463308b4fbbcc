//! Campaign reports: each durability or corruption campaign writes
//! `target/reports/<campaign>.json` with its counters, so the figures quoted in closing notes
//! come from the same runs that pass or fail CI (reliability-testing §2.5).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::durability::Verdict;

/// Counters of one campaign. Loss counters must end at zero.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    /// Crash points exercised.
    pub crash_points: u64,
    /// Crashes injected while recovering from an earlier crash.
    pub double_crashes: u64,
    /// I/O faults injected.
    pub faults_injected: u64,
    /// Child processes killed with SIGKILL.
    pub sigkills: u64,
    /// Writes issued by the workloads.
    pub writes_issued: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Writes present after recovery.
    pub writes_recovered: u64,
    /// Bits flipped or bytes damaged on purpose.
    pub bit_flips: u64,
    /// Damage reported as a typed corruption error.
    pub detected_corruptions: u64,
    /// Acknowledged-durable writes missing after recovery (P1).
    pub lost_acked_writes: u64,
    /// Missing writes older than a recovered one (P2).
    pub holes: u64,
    /// Damage that went unnoticed (P4).
    pub undetected_corruptions: u64,
    /// Ids recovered that were never written.
    pub phantoms: u64,
    /// Deleted rows back after recovery, or rows no acknowledged state holds (P3).
    #[serde(default)]
    pub resurrected: u64,
    /// Rows recovered with other cells than the acknowledged state's.
    #[serde(default)]
    pub wrong_results: u64,
    /// After recovery: quarantined sstables, files the manifest does not name, named sstables
    /// that do not verify (P5).
    #[serde(default)]
    pub file_set_errors: u64,
    /// Batches recovered in part.
    pub torn_batches: u64,
    /// Writes acknowledged after the engine had failed a write (P6).
    pub acked_after_failure: u64,
    /// Reopens that failed.
    pub open_failures: u64,
    /// Panics caught.
    pub panics: u64,
}

impl Counters {
    /// Adds a verdict of the durability checker.
    pub fn add(&mut self, verdict: &Verdict) {
        self.lost_acked_writes += verdict.lost_acked_writes;
        self.holes += verdict.holes;
        self.phantoms += verdict.phantoms;
        self.resurrected += verdict.resurrected;
        self.wrong_results += verdict.wrong_results;
        self.file_set_errors += verdict.file_set_errors;
        self.torn_batches += verdict.torn_batches;
        self.writes_recovered += verdict.recovered;
        self.open_failures += u64::from(verdict.open_error.is_some());
    }

    /// Adds another campaign's counters.
    pub fn merge(&mut self, other: &Counters) {
        // Field by field through the serialized form, so a new counter cannot be forgotten.
        if let (Ok(Value::Object(mut mine)), Ok(Value::Object(theirs))) = (serde_json::to_value(&*self), serde_json::to_value(other)) {
            for (name, value) in theirs {
                let sum = mine.get(&name).and_then(Value::as_u64).unwrap_or(0) + value.as_u64().unwrap_or(0);
                mine.insert(name, json!(sum));
            }
            if let Ok(merged) = serde_json::from_value(Value::Object(mine)) {
                *self = merged;
            }
        }
    }

    /// The sum of every counter that means a broken promise.
    pub fn failures(&self) -> u64 {
        self.lost_acked_writes
            + self.holes
            + self.undetected_corruptions
            + self.phantoms
            + self.resurrected
            + self.wrong_results
            + self.file_set_errors
            + self.torn_batches
            + self.acked_after_failure
            + self.open_failures
            + self.panics
    }

    /// The report as JSON, with `extra` fields (seeds, timings, per-scenario figures) added.
    pub fn to_json(&self, campaign: &str, extra: Map<String, Value>) -> Value {
        let mut map = Map::new();
        map.insert("campaign".into(), json!(campaign));
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            map.extend(fields);
        }
        map.insert("failures".into(), json!(self.failures()));
        map.extend(extra);
        Value::Object(map)
    }
}

/// The directory reports go to: `$CARGO_TARGET_DIR/reports`, or `target/reports` of the workspace.
pub fn reports_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("reports")
}

/// Writes the report of `campaign` and returns its path.
pub fn write_report(campaign: &str, counters: &Counters, extra: Map<String, Value>) -> std::io::Result<PathBuf> {
    let dir = reports_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{campaign}.json"));
    let text = serde_json::to_string_pretty(&counters.to_json(campaign, extra)).map_err(std::io::Error::other)?;
    std::fs::write(&path, text + "\n")?;
    Ok(path)
}
