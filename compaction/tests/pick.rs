//! Data-driven tests of the compaction strategy pickers (R2.20, R2.23–R2.28), in the style of
//! `tests/datadriven.rs`. Case files live in `tests/pick/`, one per picker.
//!
//! A case is
//!
//! ```text
//! # comment lines citing the rule
//! <command> [args]
//! sst <generation> [attributes]        (candidate sstables, any number)
//! other <generation> [attributes]      (`expired` only: sstables outside the compaction)
//! ----
//! <expected output>
//! <blank line>
//! ```
//!
//! Values:
//! - sizes: bytes with an optional binary suffix `K`, `M`, `G` (`50M` = 50 MiB);
//! - gc-clock times and durations (seconds): an integer with an optional unit `s`, `m` (minutes),
//!   `h`, `d`, or a sum of such terms (`1d+2h`);
//! - write timestamps (microseconds): the same, but a bare integer is microseconds and a unit
//!   counts seconds (`3d+1s` = 259201000000 µs);
//! - keys: letters `a`..`z` stand for 26 fixed partition keys ordered by ring position (R1.5): `a`
//!   is the key with the smallest token, `b` the next, and so on, so letters compare like the keys.
//!
//! Commands:
//! - `pick strategy=stcs|lcs|twcs now=<t> [options]`: `strategy::pick` over the `sst` lines; prints
//!   `job <kind> inputs=<gens> level=<n> max_output=<size|none>` or `none`;
//! - `tombstone now=<t> [options]`: `tombstone::worth_dropping_tombstones` of each sstable, printed
//!   as `worth <gens|none>`, then `tombstone::pick` as above;
//! - `expired gc_before=<t> [memtable_min=<ts>]`: `expired::fully_expired` of the `sst` lines
//!   against the `other` lines; prints `expired <gens|none>` (memtables empty by default).
//!
//! Options (defaults are ScyllaDB's, R2.23–R2.26): `gc_before=<t>` (default `now - 10d`, the
//! timeout mode with the default grace), `gc_disabled` (tombstone GC disabled: gc_before is then
//! the minimum), `disabled` (compaction `enabled = false`), `min_threshold=`, `max_threshold=`,
//! `tombstone_threshold=`, `tombstone_interval=<t>`, `unchecked`; STCS: `bucket_low=`,
//! `bucket_high=`, `min_size=<size>`, `min_age=<t>`; LCS: `sstable_size_mb=`, `fanout=`; TWCS:
//! `window=<t>`.
//!
//! `sst` attributes (defaults in brackets): `size=<size>` sets data and file size [1M];
//! `data=<size>`, `file=<size>` set one of them; `age=<t>`: created at `now - age` [0];
//! `level=<n>` [0]; `ts=<min>..<max>` timestamps [0..0]; `keys=<x>..<y>` or `keys=none` [a..z];
//! `maxdel=<t>|never` max deletion time [never: live data]; `drops=<t>x<n>,..` drop-time histogram
//! [empty]; `items=<n>` [0].
//!
//! Every case also runs with the sstables in reverse order and reports (`!!`) if the output changes.
//!
//! `TALUS_REWRITE=1 cargo test -p talus-compaction --test pick` rewrites the expectations with what
//! the code does. Expectations state what the RULES say: review the diff against them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod casefile;

use std::collections::BTreeMap;

use casefile::Case;
use talus_compaction::strategy::{self, expired, tombstone, CompactionJob, PickContext, SstableInfo};
use talus_format::schema::{CompactionCommon, CompactionStrategy};
use talus_format::sstable::drop_time_histogram::DropTimeHistogram;
use talus_format::{DecoratedKey, GcTime, PartitionKey, Timestamp, Value};

type Res<T> = Result<T, String>;

/// The 26 keys the letters stand for, in ring order.
fn keys() -> Vec<DecoratedKey> {
    let mut keys: Vec<DecoratedKey> =
        (0..26).map(|i| PartitionKey::from_values(&[Value::Text(format!("key{i}"))]).unwrap().decorate()).collect();
    keys.sort();
    keys
}

fn key(keys: &[DecoratedKey], letter: &str) -> Res<DecoratedKey> {
    match letter.as_bytes() {
        [c @ b'a'..=b'z'] => Ok(keys[usize::from(c - b'a')].clone()),
        _ => Err(format!("bad key {letter:?}")),
    }
}

fn parse_size(s: &str) -> Res<u64> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().map(|n| n << shift).map_err(|_| format!("bad size {s:?}"))
}

fn fmt_size(n: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A sum of terms `<int>[s|m|h|d]`; a bare integer counts `bare` units, a unit counts seconds
/// times `per_second`.
fn parse_time(s: &str, bare: i64, per_second: i64) -> Res<i64> {
    let mut total = 0i64;
    for term in s.split('+') {
        let (digits, unit) = match term.as_bytes().last() {
            Some(b's') => (&term[..term.len() - 1], per_second),
            Some(b'm') => (&term[..term.len() - 1], 60 * per_second),
            Some(b'h') => (&term[..term.len() - 1], 3600 * per_second),
            Some(b'd') => (&term[..term.len() - 1], 86_400 * per_second),
            _ => (term, bare),
        };
        let n: i64 = digits.parse().map_err(|_| format!("bad time {s:?}"))?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("time {s:?} overflows"))?;
    }
    Ok(total)
}

fn secs(s: &str) -> Res<i64> {
    parse_time(s, 1, 1)
}

fn micros(s: &str) -> Res<Timestamp> {
    parse_time(s, 1, 1_000_000).map(Timestamp)
}

fn range<'a>(v: &'a str, what: &str) -> Res<(&'a str, &'a str)> {
    v.split_once("..").ok_or_else(|| format!("{what} needs <from>..<to>: {v:?}"))
}

/// Parses an `sst`/`other` line after the keyword.
fn parse_sst(words: &[&str], now: GcTime, keys: &[DecoratedKey]) -> Res<SstableInfo> {
    let (gen, attrs) = words.split_first().ok_or("sst needs a generation")?;
    let mut sst = SstableInfo {
        generation: gen.parse().map_err(|_| format!("bad generation {gen:?}"))?,
        data_size: 1 << 20,
        file_size: 1 << 20,
        level: 0,
        key_range: Some((keys[0].clone(), keys[25].clone())),
        min_timestamp: Timestamp(0),
        max_timestamp: Timestamp(0),
        max_deletion_time: GcTime::MAX,
        drop_times: DropTimeHistogram::new(),
        item_count: 0,
        created_at: now,
    };
    for attr in attrs {
        let (k, v) = attr.split_once('=').ok_or_else(|| format!("bad attribute {attr:?}"))?;
        match k {
            "size" => (sst.data_size, sst.file_size) = (parse_size(v)?, parse_size(v)?),
            "data" => sst.data_size = parse_size(v)?,
            "file" => sst.file_size = parse_size(v)?,
            "age" => sst.created_at = now.minus(secs(v)?),
            "level" => sst.level = v.parse().map_err(|_| format!("bad level {v:?}"))?,
            "ts" => {
                let (min, max) = range(v, "ts")?;
                (sst.min_timestamp, sst.max_timestamp) = (micros(min)?, micros(max)?);
            }
            "keys" if v == "none" => sst.key_range = None,
            "keys" => {
                let (first, last) = range(v, "keys")?;
                sst.key_range = Some((key(keys, first)?, key(keys, last)?));
            }
            "maxdel" if v == "never" => sst.max_deletion_time = GcTime::MAX,
            "maxdel" => sst.max_deletion_time = GcTime(secs(v)?),
            "drops" => {
                for bin in v.split(',') {
                    let (t, n) = bin.split_once('x').ok_or_else(|| format!("bad drops {v:?}"))?;
                    sst.drop_times.add(secs(t)?, n.parse().map_err(|_| format!("bad drops {v:?}"))?);
                }
            }
            "items" => sst.item_count = v.parse().map_err(|_| format!("bad items {v:?}"))?,
            _ => return Err(format!("unknown attribute {k}")),
        }
    }
    Ok(sst)
}

/// Options of a command line, each consumed once; leftovers are errors.
struct Args<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Args<'a> {
    fn take(&mut self, k: &str) -> Option<&'a str> {
        self.0.remove(k)
    }

    fn flag(&mut self, k: &str) -> bool {
        self.0.remove(k).is_some()
    }

    fn num<T: std::str::FromStr>(&mut self, k: &str, default: T) -> Res<T> {
        self.take(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("bad {k}={v}")))
    }

    fn finish(self) -> Res<()> {
        match self.0.keys().next() {
            Some(k) => Err(format!("unknown option {k}")),
            None => Ok(()),
        }
    }
}

fn parse_context(args: &mut Args<'_>) -> Res<PickContext> {
    let now = GcTime(secs(args.take("now").ok_or("needs now=")?)?);
    let gc_disabled = args.flag("gc_disabled");
    let gc_before = match args.take("gc_before") {
        Some(v) => GcTime(secs(v)?),
        None if gc_disabled => GcTime::MIN,
        None => now.minus(864_000),
    };
    let defaults = CompactionCommon::default();
    let common = CompactionCommon {
        enabled: !args.flag("disabled"),
        min_threshold: args.num("min_threshold", defaults.min_threshold)?,
        max_threshold: args.num("max_threshold", defaults.max_threshold)?,
        tombstone_threshold: args.num("tombstone_threshold", defaults.tombstone_threshold)?,
        tombstone_compaction_interval: args.take("tombstone_interval").map_or(Ok(defaults.tombstone_compaction_interval), secs)?,
        unchecked_tombstone_compaction: args.flag("unchecked"),
    };
    Ok(PickContext { now, gc_before, gc_disabled, common })
}

fn parse_strategy(args: &mut Args<'_>) -> Res<CompactionStrategy> {
    Ok(match args.take("strategy").ok_or("pick needs strategy=")? {
        "stcs" => {
            let CompactionStrategy::SizeTiered { bucket_low, bucket_high, min_sstable_size, min_sstable_age } =
                CompactionStrategy::size_tiered()
            else {
                unreachable!()
            };
            CompactionStrategy::SizeTiered {
                bucket_low: args.num("bucket_low", bucket_low)?,
                bucket_high: args.num("bucket_high", bucket_high)?,
                min_sstable_size: args.take("min_size").map_or(Ok(min_sstable_size), parse_size)?,
                min_sstable_age: args.take("min_age").map_or(Ok(min_sstable_age), secs)?,
            }
        }
        "lcs" => {
            let CompactionStrategy::Leveled { sstable_size_in_mb, fanout } = CompactionStrategy::leveled() else { unreachable!() };
            CompactionStrategy::Leveled {
                sstable_size_in_mb: args.num("sstable_size_mb", sstable_size_in_mb)?,
                fanout: args.num("fanout", fanout)?,
            }
        }
        "twcs" => {
            let CompactionStrategy::TimeWindow { window_seconds, expired_sstable_check_frequency_seconds } =
                CompactionStrategy::time_window()
            else {
                unreachable!()
            };
            CompactionStrategy::TimeWindow {
                window_seconds: args.take("window").map_or(Ok(window_seconds), secs)?,
                expired_sstable_check_frequency_seconds,
            }
        }
        s => return Err(format!("unknown strategy {s}")),
    })
}

fn fmt_gens(gens: &[u64]) -> String {
    if gens.is_empty() {
        return "none".into();
    }
    gens.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn fmt_job(job: Option<CompactionJob>) -> String {
    match job {
        None => "none".into(),
        Some(j) => format!(
            "job {:?} inputs={} level={} max_output={}",
            j.kind,
            fmt_gens(&j.inputs),
            j.output_level,
            j.max_output_bytes.map_or("none".into(), fmt_size)
        ),
    }
}

/// Runs a parsed command over the sstables (`ssts`) and the `other` lines.
fn execute(command: &str, args: &[&str], ssts: &[SstableInfo], others: &[SstableInfo]) -> Res<Vec<String>> {
    let mut args = Args(args.iter().map(|w| w.split_once('=').unwrap_or((w, ""))).collect());
    let out = match command {
        "pick" => {
            let strategy = parse_strategy(&mut args)?;
            let ctx = parse_context(&mut args)?;
            args.finish()?;
            vec![fmt_job(strategy::pick(&strategy, ssts, &ctx))]
        }
        "tombstone" => {
            let ctx = parse_context(&mut args)?;
            args.finish()?;
            let mut worth: Vec<u64> = ssts.iter().filter(|s| tombstone::worth_dropping_tombstones(s, &ctx)).map(|s| s.generation).collect();
            worth.sort_unstable();
            vec![format!("worth {}", fmt_gens(&worth)), fmt_job(tombstone::pick(ssts, &ctx))]
        }
        "expired" => {
            let gc_before = GcTime(secs(args.take("gc_before").ok_or("expired needs gc_before=")?)?);
            let memtable_min = args.take("memtable_min").map_or(Ok(Timestamp::MAX), micros)?;
            args.take("now");
            args.finish()?;
            vec![format!("expired {}", fmt_gens(&expired::fully_expired(ssts, others, memtable_min, gc_before)))]
        }
        c => return Err(format!("unknown command {c}")),
    };
    Ok(out)
}

fn run_case(case: &Case, keys: &[DecoratedKey]) -> Vec<String> {
    let words: Vec<&str> = case.command.split_whitespace().collect();
    let result = (|| -> Res<Vec<String>> {
        let (command, args) = words.split_first().ok_or("empty command")?;
        let now = match args.iter().find_map(|w| w.strip_prefix("now=")) {
            Some(v) => GcTime(secs(v)?),
            None => GcTime(0),
        };
        let (mut ssts, mut others) = (Vec::new(), Vec::new());
        for line in &case.input {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.split_first() {
                None => {}
                Some((w, _)) if w.starts_with('#') => {}
                Some((&"sst", rest)) => ssts.push(parse_sst(rest, now, keys)?),
                Some((&"other", rest)) => others.push(parse_sst(rest, now, keys)?),
                Some((w, _)) => return Err(format!("unknown input line {w}")),
            }
        }
        let mut out = execute(command, args, &ssts, &others)?;
        ssts.reverse();
        others.reverse();
        let reversed = execute(command, args, &ssts, &others)?;
        if reversed != out {
            out.push("!! output depends on input order; reversed inputs give:".into());
            out.extend(reversed.into_iter().map(|l| format!("!! {l}")));
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e| vec![format!("error: {e}")])
}

case_files! {
    "pick", |c: &Case| run_case(c, &keys());
    size_tiered => "size_tiered.txt",
    leveled => "leveled.txt",
    time_window => "time_window.txt",
    tombstone => "tombstone.txt",
    expired => "expired.txt",
}

/// The letters really are in ring order, and distinct (the notation relies on it).
#[test]
fn key_letters_follow_ring_order() {
    let keys = keys();
    assert!(keys.windows(2).all(|w| w[0].token < w[1].token), "26 keys with distinct increasing tokens");
}
