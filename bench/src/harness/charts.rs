//! The charts of a report: throughput per workload and engine, and latency percentiles, as
//! grouped bar charts on log scales (the workloads' rates span decades).

use super::report::Report;
use crate::chart::{BarChart, BarSeries, Legend, Scale};

/// The workloads of `report` with a record whose `keep` holds, in report order.
fn workloads(report: &Report, keep: impl Fn(&super::Record) -> bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in report.records.iter().filter(|r| keep(r)) {
        if !names.contains(&r.workload) {
            names.push(r.workload.clone());
        }
    }
    names
}

/// The engine names of `report`, in record order.
fn engines(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in &report.records {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

/// The value `f` of the record of `workload` on `engine`, or NaN (a gap).
fn value(report: &Report, workload: &str, engine: &str, f: impl Fn(&super::Record) -> Option<f64>) -> f64 {
    report.records.iter().find(|r| r.workload == workload && r.name == engine).and_then(f).unwrap_or(f64::NAN)
}

/// A width that leaves each group room for its label and each bar a few pixels.
fn width(groups: usize, series: usize) -> u32 {
    u32::try_from((groups * (series * 12).max(110) + 200).clamp(1000, 4000)).unwrap_or(4000)
}

/// The fraction of the plot's height the legend of `series` entries needs above the bars.
fn legend_room(series: usize) -> f64 {
    (series as f64 * 0.045).min(0.6)
}

/// Median operations per second per workload and engine (`None`: no record).
pub fn throughput_chart(report: &Report) -> Option<BarChart> {
    let groups = workloads(report, |_| true);
    if groups.is_empty() {
        return None;
    }
    let engines = engines(report);
    let mut chart = BarChart::new(format!("talus-bench: throughput, median of {} (log scale)", report.settings.repeat), groups.clone())
        .y_label("operations per second")
        .y_scale(Scale::Log10)
        .legend(Legend::UpperRight)
        .size(width(groups.len(), engines.len()), 650);
    for engine in &engines {
        let values = groups.iter().map(|w| value(report, w, engine, |r| Some(r.ops_per_sec))).collect();
        chart = chart.series(BarSeries::new(engine.clone(), values));
    }
    Some(chart)
}

/// p50, p90 and p99 latency per workload (where operations are timed one by one) and engine
/// (`None`: no such workload).
pub fn latency_chart(report: &Report) -> Option<BarChart> {
    let groups = workloads(report, |r| r.latency.is_some());
    if groups.is_empty() {
        return None;
    }
    let engines = engines(report);
    let mut chart = BarChart::new("talus-bench: latency of one operation, p50 / p90 / p99 (log scale)", groups.clone())
        .y_label("microseconds")
        .y_scale(Scale::Log10)
        .legend(Legend::UpperRight)
        .top_margin(legend_room(engines.len() * 3))
        .size(width(groups.len(), engines.len() * 3), 650);
    type Pick = fn(&crate::Latency) -> f64;
    let percentiles: [(&str, Pick); 3] = [("p50", |l| l.p50_us), ("p90", |l| l.p90_us), ("p99", |l| l.p99_us)];
    for engine in &engines {
        for (name, pick) in percentiles {
            let values = groups.iter().map(|w| value(report, w, engine, |r| r.latency.as_ref().map(pick))).collect();
            chart = chart.series(BarSeries::new(format!("{engine} {name}"), values));
        }
    }
    Some(chart)
}
