//! The grouped bar chart: one group per category along x (e.g. workloads), one coloured bar per
//! series in each group (e.g. engines).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{compact, encode_png, text, to_axis, write_file, Axis, ChartError, Frame, Legend, Scale, FAMILY, PALETTE};

/// One named set of bars of a [`BarChart`]: a value per group (e.g. one engine's throughput per
/// workload).
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    /// The name in the legend.
    pub name: String,
    /// One value per group, in the order of [`BarChart::groups`]; missing or non-finite values
    /// (and non-positive ones on a log scale) leave a gap.
    pub values: Vec<f64>,
}

impl BarSeries {
    /// A set of bars named `name`.
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> BarSeries {
        BarSeries { name: name.into(), values }
    }
}

/// A grouped bar chart: one group per category along x (e.g. workloads), one coloured bar per
/// series in each group (e.g. engines), the value written above each bar where there is room.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// The caption above the plot.
    pub title: String,
    /// The y axis' description.
    pub y_label: String,
    /// The y axis' scale.
    pub y_scale: Scale,
    /// The group names, left to right.
    pub groups: Vec<String>,
    /// The bar sets.
    pub series: Vec<BarSeries>,
    /// Where the legend goes.
    pub legend: Legend,
    /// The fraction of the plot's height kept free above the highest bar, on top of the room for
    /// its value label (default 0; e.g. 0.4 for a tall legend).
    pub top_margin: f64,
    /// Image width in pixels (default 1000).
    pub width: u32,
    /// Image height in pixels (default 600).
    pub height: u32,
}

impl BarChart {
    /// An empty 1000×600 bar chart over `groups` with a linear y axis from zero.
    pub fn new(title: impl Into<String>, groups: Vec<String>) -> BarChart {
        BarChart {
            title: title.into(),
            y_label: String::new(),
            y_scale: Scale::Linear,
            groups,
            series: Vec::new(),
            legend: Legend::UpperRight,
            top_margin: 0.0,
            width: 1000,
            height: 600,
        }
    }

    /// Sets the y axis' description.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Sets the y axis' scale.
    pub fn y_scale(mut self, scale: Scale) -> Self {
        self.y_scale = scale;
        self
    }

    /// Adds a set of bars.
    pub fn series(mut self, series: BarSeries) -> Self {
        self.series.push(series);
        self
    }

    /// Sets where the legend goes.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    /// Keeps `fraction` (in [0, 0.9]) of the plot's height free above the highest bar.
    pub fn top_margin(mut self, fraction: f64) -> Self {
        self.top_margin = fraction;
        self
    }

    /// Sets the image size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        (self.width, self.height) = (width, height);
        self
    }

    /// Renders the chart and writes it to `path` as a PNG (creating missing parent directories).
    pub fn save(&self, path: &Path) -> Result<(), ChartError> {
        write_file(path, &self.to_png()?)
    }

    /// Renders the chart to PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>, ChartError> {
        encode_png(&self.title, self.width, self.height, &self.render()?)
    }

    /// Renders the chart to RGB pixels, row by row (3 bytes a pixel).
    pub fn render(&self) -> Result<Vec<u8>, ChartError> {
        let title = &self.title;
        let values = self.series.iter().flat_map(|s| s.values.iter().take(self.groups.len()).filter_map(|&v| to_axis(v, self.y_scale)));
        let values: Vec<f64> = values.collect();
        if self.groups.is_empty() || values.is_empty() {
            let why = if self.groups.is_empty() { "no groups" } else { "no value fits the scale" };
            return Err(ChartError::Empty { title: title.clone(), why: why.into() });
        }
        // Room above the highest bar for its value and the legend.
        let headroom = match self.y_scale {
            Scale::Linear => values.iter().fold(0f64, |m, &v| m.max(v)) * 1.15,
            Scale::Log10 => values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)) + 0.1,
        };
        // The free fraction `f` of the height above the bars: top = headroom + span × f / (1 − f).
        let low = match self.y_scale {
            Scale::Linear => 0f64,
            Scale::Log10 => values.iter().fold(f64::INFINITY, |m, &v| m.min(v)).floor(),
        };
        let free = if self.top_margin.is_finite() { self.top_margin.clamp(0.0, 0.9) } else { 0.0 };
        let headroom = headroom + (headroom - low).max(0.0) * free / (1.0 - free);
        let y_axis = Axis::fit(values.into_iter().chain([headroom]), self.y_scale, true);
        let groups = self.groups.len();
        let centres = (0..groups).map(|g| g as f64 + 0.5).collect();
        let x_axis = Axis { scale: Scale::Linear, lo: 0.0, hi: groups as f64, bold: centres, light: Vec::new() };
        // Bars fill 80% of a group; a value label needs about 40 pixels of bar width.
        let bar_width = 0.8 / self.series.len().max(1) as f64;
        let label_room = f64::from(self.width.saturating_sub(110)) / groups as f64 * bar_width >= 40.0;
        let bottom = y_axis.lo;
        let frame = Frame {
            title,
            size: (self.width, self.height),
            x: x_axis,
            y: y_axis,
            x_desc: "",
            y_desc: &self.y_label,
            groups: Some(&self.groups),
            legend: self.legend,
        };
        frame.plot(|chart| {
            for (i, series) in self.series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let bars: Vec<(f64, f64, f64)> = (0..groups)
                    .filter_map(|g| {
                        let value = *series.values.get(g)?;
                        Some((g as f64 + 0.1 + bar_width * i as f64, to_axis(value, self.y_scale)?, value))
                    })
                    .collect();
                chart
                    .draw_series(bars.iter().map(|&(x, top, _)| Rectangle::new([(x, bottom), (x + bar_width, top)], color.filled())))
                    .map_err(text)?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
                if label_room {
                    let style = TextStyle::from((FAMILY, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
                    let labels = bars.iter().map(|&(x, top, v)| Text::new(compact(v), (x + bar_width / 2.0, top), style.clone()));
                    chart.draw_series(labels).map_err(text)?;
                }
            }
            Ok(())
        })
    }
}
