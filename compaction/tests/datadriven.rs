//! Data-driven tests of merging (R1.37) and compaction (R2.7–R2.19), in the style of Pebble's
//! `internal/keyspan` testdata. Case files live in `tests/datadriven/`; the notation is described
//! in `tests/picture/mod.rs` and at the top of each case file.
//!
//! A case is
//!
//! ```text
//! # comment lines citing the rule
//! <command> [args]
//! <input>[/<partition>]: <items>        (any number of lines; the default partition is `k`)
//! ----
//! <expected output>
//! <blank line>
//! ```
//!
//! Commands:
//! - `merge`: the inputs, in first-appearance order, through `MergedStream`;
//! - `compact now=<t> mode=<timeout gc=<s>|immediate|disabled|repair [repaired=<t>] [delay=<s>]>
//!   [commitlog_min=<t>] [max_purgeable=<ts>|<pk>:<ts>,..] [max_purgeable_sh=<ts>] [stats]`: one
//!   input as is, or several merged first, through `CompactedStream` under a `GcPolicy`; without
//!   `max_purgeable` there is no overlap check (as for reads). `stats` prints the non-zero fields
//!   of `CompactionStats` after the fragments, and how often the overlap check was consulted.
//!
//! Every output is checked by the `StreamValidator`; with several inputs the case also runs with
//! the inputs reversed and reports if the output changes (merge must be commutative).
//!
//! `TALUS_REWRITE=1 cargo test -p talus-compaction --test datadriven` rewrites the expectations
//! with what the code does. Expectations state what the RULES say: review the diff against them,
//! and do not keep a rewrite of a case that fails because the code disagrees with a rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod casefile;
mod picture;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use casefile::Case;
use picture::{fmt_stream, parse_items, pk, validate, InputModel, Res};
use talus_compaction::{CompactedStream, CompactionPurpose, CompactionStats, GcPolicy, MergedStream, OverlapCheck, RepairHistory};
use talus_format::{DecoratedKey, Fragment, FragmentStream, GcTime, Timestamp, Token, TombstoneGcMode};

/// Parses the input lines into labelled inputs, in order of first appearance.
fn parse_inputs(lines: &[String]) -> Res<Vec<(String, InputModel)>> {
    let mut inputs: Vec<(String, InputModel)> = Vec::new();
    for line in lines {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (label, items) = line.split_once(':').ok_or_else(|| format!("input line without label: {line:?}"))?;
        let (label, partition) = label.trim().split_once('/').unwrap_or((label.trim(), "k"));
        let idx = match inputs.iter().position(|(l, _)| l == label) {
            Some(i) => i,
            None => {
                inputs.push((label.to_string(), InputModel::default()));
                inputs.len() - 1
            }
        };
        parse_items(&mut inputs[idx].1, partition, items).map_err(|e| format!("input {label}: {e}"))?;
    }
    Ok(inputs)
}

fn boxed(fragments: Vec<Fragment>) -> FragmentStream<'static> {
    Box::new(fragments.into_iter().map(Ok))
}

/// Drains `stream`; an in-band error ends it and is returned alongside.
fn drain(stream: impl Iterator<Item = talus_format::Result<Fragment>>) -> (Vec<Fragment>, Option<String>) {
    let mut out = Vec::new();
    for f in stream {
        match f {
            Ok(f) => out.push(f),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

struct Overlap {
    regular: BTreeMap<Option<DecoratedKey>, Timestamp>,
    shadowable: Option<Timestamp>,
    calls: AtomicU64,
}

impl OverlapCheck for Overlap {
    fn max_purgeable(&self, key: &DecoratedKey, shadowable: bool) -> Timestamp {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let regular = self.regular.get(&Some(key.clone())).or_else(|| self.regular.get(&None)).copied().unwrap_or(Timestamp::MAX);
        if shadowable {
            self.shadowable.unwrap_or(regular)
        } else {
            regular
        }
    }
}

struct Repaired(GcTime);

impl RepairHistory for Repaired {
    fn last_repair(&self, _token: Token) -> Option<GcTime> {
        Some(self.0)
    }
}

/// The policy, and the overlap check if one was given (to count its calls).
fn parse_policy(args: &BTreeMap<&str, &str>) -> Res<(GcPolicy, Option<Arc<Overlap>>)> {
    let num = |k: &str| -> Res<Option<i64>> { args.get(k).map(|v| v.parse::<i64>().map_err(|_| format!("bad {k}={v}"))).transpose() };
    let now = GcTime(num("now")?.ok_or("compact needs now=")?);
    let mode = match args.get("mode").copied().ok_or("compact needs mode=")? {
        "timeout" => TombstoneGcMode::Timeout,
        "immediate" => TombstoneGcMode::Immediate,
        "disabled" => TombstoneGcMode::Disabled,
        "repair" => TombstoneGcMode::Repair { propagation_delay_seconds: num("delay")?.unwrap_or(3600) },
        m => return Err(format!("unknown mode {m}")),
    };
    let repair_history: Option<Arc<dyn RepairHistory>> = match num("repaired")? {
        Some(t) => Some(Arc::new(Repaired(GcTime(t)))),
        None => None,
    };
    let overlap: Option<Arc<Overlap>> = match args.get("max_purgeable") {
        None => None,
        Some(spec) => {
            let mut regular = BTreeMap::new();
            for part in spec.split(',') {
                let (key, ts) = match part.split_once(':') {
                    Some((k, ts)) => (Some(pk(k)), ts),
                    None => (None, part),
                };
                regular.insert(key, Timestamp(ts.parse().map_err(|_| format!("bad max_purgeable {spec}"))?));
            }
            Some(Arc::new(Overlap { regular, shadowable: num("max_purgeable_sh")?.map(Timestamp), calls: AtomicU64::new(0) }))
        }
    };
    let policy = GcPolicy {
        mode,
        gc_grace_seconds: num("gc")?.unwrap_or(864_000),
        now,
        repair_history,
        commitlog_min_gc_time: num("commitlog_min")?.map_or(GcTime::MAX, GcTime),
        overlap: overlap.clone().map(|o| o as Arc<dyn OverlapCheck>),
    };
    Ok((policy, overlap))
}

fn fmt_stats(s: &CompactionStats) -> String {
    let fields = [
        ("partitions", s.partitions),
        ("partition_tombstones", s.partition_tombstones),
        ("range_tombstone_changes", s.range_tombstone_changes),
        ("rows", s.rows),
        ("row_tombstones", s.row_tombstones),
        ("dead_rows", s.dead_rows),
        ("dead_cells", s.dead_cells),
        ("dead_static_rows", s.dead_static_rows),
        ("tombstones_purged", s.tombstones_purged),
        ("redundant_row_tombstones", s.redundant_row_tombstones),
        ("fragments_out", s.fragments_out),
    ];
    let nonzero: Vec<String> = fields.iter().filter(|(_, v)| *v != 0).map(|(k, v)| format!("{k}={v}")).collect();
    format!("stats: {}", if nonzero.is_empty() { "(all zero)".to_string() } else { nonzero.join(" ") })
}

/// Runs the command over `inputs` (already in the order to use).
fn execute(command: &str, args: &BTreeMap<&str, &str>, inputs: &[Vec<Fragment>]) -> Res<Vec<String>> {
    let merged = || -> FragmentStream<'static> {
        if inputs.len() == 1 {
            boxed(inputs[0].clone())
        } else {
            MergedStream::new(inputs.iter().cloned().map(boxed).collect()).boxed()
        }
    };
    let (fragments, error, stats, overlap) = match command {
        "merge" => {
            let (f, e) = drain(MergedStream::new(inputs.iter().cloned().map(boxed).collect()));
            (f, e, None, None)
        }
        "compact" => {
            let (policy, overlap) = parse_policy(args)?;
            let mut stream = CompactedStream::new(merged(), policy, CompactionPurpose::Persist);
            let (f, e) = drain(&mut stream);
            (f, e, Some(*stream.stats()), overlap)
        }
        c => return Err(format!("unknown command {c}")),
    };
    let mut out = fmt_stream(&fragments);
    if let Some(e) = error {
        out.push(format!("error: {e}"));
    } else if let Err(e) = validate(&fragments) {
        out.push(format!("error: invalid output stream: {e}"));
    }
    if fragments.is_empty() && out.is_empty() {
        out.push("(empty)".into());
    }
    if let (Some(stats), true) = (stats, args.contains_key("stats")) {
        out.push(fmt_stats(&stats));
        if let Some(o) = overlap {
            out.push(format!("overlap checks: {}", o.calls.load(Ordering::Relaxed)));
        }
    }
    Ok(out)
}

fn run_case(case: &Case) -> Vec<String> {
    let mut words = case.command.split_whitespace();
    let command = words.next().unwrap_or_default();
    let args: BTreeMap<&str, &str> = words.map(|w| w.split_once('=').unwrap_or((w, ""))).collect();
    let result = (|| -> Res<Vec<String>> {
        let inputs = parse_inputs(&case.input)?;
        let streams = inputs.iter().map(|(label, m)| m.fragments().map_err(|e| format!("input {label}: {e}"))).collect::<Res<Vec<_>>>()?;
        let mut out = execute(command, &args, &streams)?;
        if streams.len() > 1 {
            let reversed: Vec<_> = streams.iter().rev().cloned().collect();
            let other = execute(command, &args, &reversed)?;
            if other != out {
                out.push("!! output depends on input order; reversed inputs give:".into());
                out.extend(other.into_iter().map(|l| format!("!! {l}")));
            }
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e| vec![format!("error: {e}")])
}

case_files! {
    "datadriven", run_case;
    merge_range_tombstones => "merge_range_tombstones.txt",
    merge_rows => "merge_rows.txt",
    compact_shadowing => "compact_shadowing.txt",
    compact_purge => "compact_purge.txt",
    compact_multi => "compact_multi.txt",
}
