//! One measurement of a workload ([`Sample`]) and the timed loop most workloads run
//! ([`timed_ops`]).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::progress::Progress;
use crate::{cpu_ticks, nanos, other_cores, BoxError, Latency};

/// Operations between two progress updates of a loop (keeps the shared counter cold).
pub const PROGRESS_EVERY: u64 = 64;

/// One measurement of one workload on one engine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Operations done (what `ops_per_sec` counts: see each workload).
    pub ops: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Key and value bytes written or read.
    pub bytes: u64,
    /// Latency of one operation, where each operation is timed.
    pub latency: Option<Latency>,
    /// Cores other processes kept busy meanwhile, on average.
    pub other_cores: Option<f64>,
    /// Figures particular to the workload (e.g. `reads`, `updates`, `replay_seconds`).
    pub details: BTreeMap<String, f64>,
}

impl Sample {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Key and value MB per second.
    pub fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / crate::MB / self.seconds
        } else {
            0.0
        }
    }

    /// Adds a detail.
    pub fn with(mut self, name: &str, value: f64) -> Sample {
        self.details.insert(name.to_string(), value);
        self
    }
}

/// Runs `op(j)` for `j` in `0..n`, timing each call (`op` returns the bytes it moved), counting
/// on `progress`, and finishing it.
pub fn timed_ops(progress: &Progress, n: u64, mut op: impl FnMut(u64) -> Result<u64, BoxError>) -> Result<Sample, BoxError> {
    let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let cpu = cpu_ticks();
    let start = Instant::now();
    let mut bytes = 0;
    for j in 0..n {
        let t = Instant::now();
        bytes += op(j)?;
        latencies.push(nanos(t.elapsed()));
        if j % PROGRESS_EVERY == PROGRESS_EVERY - 1 {
            progress.inc(PROGRESS_EVERY);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    progress.set_position(n);
    progress.finish();
    Ok(Sample {
        ops: n,
        seconds,
        bytes,
        latency: Some(Latency::of(&mut latencies)),
        other_cores: other_cores(cpu),
        details: BTreeMap::new(),
    })
}

/// Times `f` (one operation, not split: e.g. a full scan), finishing `progress`.
pub fn timed_once(progress: &Progress, f: impl FnOnce() -> Result<(u64, u64), BoxError>) -> Result<Sample, BoxError> {
    let cpu = cpu_ticks();
    let start = Instant::now();
    let (ops, bytes) = f()?;
    let seconds = start.elapsed().as_secs_f64();
    progress.set_position(ops);
    progress.finish();
    Ok(Sample { ops, seconds, bytes, latency: None, other_cores: other_cores(cpu), details: BTreeMap::new() })
}
