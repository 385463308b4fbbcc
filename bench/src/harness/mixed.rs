//! The mixed YCSB-style runs: `threads` threads for a fixed time, each operation a point read
//! (with odds `read_fraction`) or an update (a put of a new value) of a key drawn uniformly from
//! the written keys (YCSB's own default draws Zipfian keys; uniform is the harder case for the
//! caches). YCSB-A: 50% reads; YCSB-B: 95% reads.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::keys::KeySpace;
use super::measure::{Sample, PROGRESS_EVERY};
use crate::peers::{KvPeer, SpaceId};
use crate::progress::Progress;
use crate::{cpu_ticks, nanos, other_cores, BoxError, Latency, SplitMix};

/// What a mixed run does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// The odds of a read (else an update).
    pub read_fraction: f64,
    /// Threads.
    pub threads: usize,
    /// How long the threads run.
    pub duration: Duration,
    /// The seed of the key and operation draws (thread `t` uses `seed + t`).
    pub seed: u64,
    /// The value salt of the updates.
    pub salt: u64,
}

/// What one thread did.
struct ThreadRun {
    reads: u64,
    updates: u64,
    /// Reads that found nothing (all keys drawn were written).
    misses: u64,
    bytes: u64,
    read_nanos: Vec<u64>,
    update_nanos: Vec<u64>,
    finished: Instant,
}

/// One thread's loop until `deadline`.
fn thread_loop(
    peer: &dyn KvPeer,
    space: SpaceId,
    keys: &KeySpace,
    mix: &Mix,
    seed: u64,
    start: &Barrier,
    progress: &Progress,
) -> Result<ThreadRun, BoxError> {
    let mut rng = SplitMix(seed);
    let mut run =
        ThreadRun { reads: 0, updates: 0, misses: 0, bytes: 0, read_nanos: Vec::new(), update_nanos: Vec::new(), finished: Instant::now() };
    start.wait();
    let deadline = Instant::now() + mix.duration;
    let mut ops = 0u64;
    loop {
        let i = rng.below(keys.len());
        let key = keys.key(i);
        let t = Instant::now();
        if t >= deadline {
            break;
        }
        if rng.unit() < mix.read_fraction {
            let found = peer.get(space, &key)?;
            run.read_nanos.push(nanos(t.elapsed()));
            run.reads += 1;
            run.misses += u64::from(found.is_none());
            run.bytes += (key.len() + found.map_or(0, |v| v.len())) as u64;
        } else {
            let value = keys.value(i, mix.salt);
            peer.put(space, &key, value)?;
            run.update_nanos.push(nanos(t.elapsed()));
            run.updates += 1;
            run.bytes += (key.len() + value.len()) as u64;
        }
        ops += 1;
        if ops.is_multiple_of(PROGRESS_EVERY) {
            progress.inc(PROGRESS_EVERY);
        }
    }
    run.finished = Instant::now();
    Ok(run)
}

/// Runs `mix` on `peer`. Ops: reads and updates. Details: `reads`, `updates`, `read_misses`,
/// and the p50 and p99 of reads and updates apart.
pub fn ycsb(peer: &dyn KvPeer, space: SpaceId, keys: &KeySpace, mix: &Mix, progress: &Progress) -> Result<Sample, BoxError> {
    let threads = mix.threads.max(1);
    let start = Barrier::new(threads + 1);
    let cpu = cpu_ticks();
    let (began, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || thread_loop(peer, space, keys, mix, mix.seed.wrapping_add(t as u64), start, progress))
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let results: Vec<Result<ThreadRun, BoxError>> =
            handles.into_iter().map(|h| h.join().map_err(|_| BoxError::from("a YCSB thread panicked")).and_then(|r| r)).collect();
        (began, results)
    });
    let runs = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    progress.finish();
    let seconds = runs.iter().map(|r| r.finished).max().unwrap_or(began).duration_since(began).as_secs_f64();
    let sum = |f: &dyn Fn(&ThreadRun) -> u64| runs.iter().map(f).sum::<u64>();
    let (reads, updates) = (sum(&|r| r.reads), sum(&|r| r.updates));
    let mut read_nanos: Vec<u64> = runs.iter().flat_map(|r| r.read_nanos.iter().copied()).collect();
    let mut update_nanos: Vec<u64> = runs.iter().flat_map(|r| r.update_nanos.iter().copied()).collect();
    let mut all: Vec<u64> = read_nanos.iter().chain(&update_nanos).copied().collect();
    let (read, update) = (Latency::of(&mut read_nanos), Latency::of(&mut update_nanos));
    let details = BTreeMap::from([
        ("reads".to_string(), reads as f64),
        ("updates".to_string(), updates as f64),
        ("read_misses".to_string(), sum(&|r| r.misses) as f64),
        ("threads".to_string(), threads as f64),
        ("read_p50_us".to_string(), read.p50_us),
        ("read_p99_us".to_string(), read.p99_us),
        ("update_p50_us".to_string(), update.p50_us),
        ("update_p99_us".to_string(), update.p99_us),
    ]);
    Ok(Sample {
        ops: reads + updates,
        seconds,
        bytes: sum(&|r| r.bytes),
        latency: Some(Latency::of(&mut all)),
        other_cores: other_cores(cpu),
        details,
    })
}
