//! PNG charts for the benchmark reports: a line chart of named `(x, y)` series with linear or
//! log10 axes ([`LineChart`]) and a grouped bar chart, e.g. throughput per workload and engine
//! ([`BarChart`]).
//!
//! Text is drawn with a subset of DejaVu Sans embedded in the binary (`bench/assets/`, licence
//! alongside), through plotters' `ab_glyph` backend: rendering needs no system font and no
//! fontconfig. Pixels are rendered into memory by plotters' bitmap backend and encoded with the
//! `png` crate.
//!
//! On a log10 axis every decade (1, 10, 100, 1k, …) is a labelled tick with light grid lines at
//! 2…9 × the decade; points with a non-positive or non-finite coordinate on a log axis cannot be
//! placed and are left out (and a series left without points is left out of the legend).
//!
//! ```no_run
//! use talus_bench::chart::{LineChart, Scale, Series};
//! let chart = LineChart::new("Replay time against dead entries")
//!     .x_label("dead entries")
//!     .y_label("replay seconds")
//!     .x_scale(Scale::Log10)
//!     .y_scale(Scale::Log10)
//!     .series(Series::new("fjall v1", vec![(1e3, 0.001), (1e4, 0.01), (1e5, 0.1)]));
//! chart.save("target/replay.png".as_ref())?;
//! # Ok::<(), talus_bench::chart::ChartError>(())
//! ```

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::backend::BitMapBackend;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

pub use self::bar::{BarChart, BarSeries};

mod bar;

/// The embedded font: DejaVu Sans reduced to Latin, punctuation, super/subscripts and a few
/// signs (see `bench/assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// The family name the embedded font is registered under.
const FAMILY: &str = "sans-serif";

/// The series colours (Tableau 10), reused in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// What can go wrong when drawing or saving a chart.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The embedded font could not be parsed (a broken build, not a run-time condition).
    #[error("chart: the embedded font could not be loaded")]
    Font,
    /// The chart has nothing that can be drawn (no series, or no point that fits its scales).
    #[error("chart {title:?}: nothing to draw ({why})")]
    Empty {
        /// The chart's title.
        title: String,
        /// What is missing.
        why: String,
    },
    /// The width or height is zero or too large.
    #[error("chart {title:?}: bad size {width}x{height}")]
    Size {
        /// The chart's title.
        title: String,
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// plotters failed while drawing.
    #[error("chart {title:?}: drawing failed: {message}")]
    Draw {
        /// The chart's title.
        title: String,
        /// plotters' error.
        message: String,
    },
    /// Encoding the PNG failed.
    #[error("chart {title:?}: PNG encoding failed: {source}")]
    Encode {
        /// The chart's title.
        title: String,
        /// The encoder's error.
        source: png::EncodingError,
    },
    /// Writing the file failed.
    #[error("chart: cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Evenly spaced values, ticks at 1, 2 or 5 × a power of ten.
    #[default]
    Linear,
    /// Evenly spaced powers of ten, a labelled tick per decade.
    Log10,
}

/// Where the legend goes inside the plot area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Legend {
    /// Top left corner.
    #[default]
    UpperLeft,
    /// Top right corner.
    UpperRight,
    /// Bottom left corner.
    LowerLeft,
    /// Bottom right corner.
    LowerRight,
}

impl Legend {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
            Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

/// One named line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name in the legend.
    pub name: String,
    /// The points, drawn in the order given.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name` through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), points }
    }
}

/// A line chart of several named series, each drawn as a line with a marker per point.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The caption above the plot.
    pub title: String,
    /// The x axis' description.
    pub x_label: String,
    /// The y axis' description.
    pub y_label: String,
    /// The x axis' scale.
    pub x_scale: Scale,
    /// The y axis' scale.
    pub y_scale: Scale,
    /// Whether a linear y axis starts at zero (default true) rather than at the smallest value.
    pub y_from_zero: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: Legend,
    /// Image width in pixels (default 1000).
    pub width: u32,
    /// Image height in pixels (default 600).
    pub height: u32,
}

impl LineChart {
    /// An empty 1000×600 chart with linear axes.
    pub fn new(title: impl Into<String>) -> LineChart {
        LineChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            y_from_zero: true,
            series: Vec::new(),
            legend: Legend::UpperLeft,
            width: 1000,
            height: 600,
        }
    }

    /// Sets the x axis' description.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Sets the y axis' description.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Sets the x axis' scale.
    pub fn x_scale(mut self, scale: Scale) -> Self {
        self.x_scale = scale;
        self
    }

    /// Sets the y axis' scale.
    pub fn y_scale(mut self, scale: Scale) -> Self {
        self.y_scale = scale;
        self
    }

    /// Adds a series.
    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Sets where the legend goes.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
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
        // Every series in the axes' coordinates (log10 of the value on a log axis).
        let series: Vec<(&str, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|s| {
                let points = s.points.iter().filter_map(|&(x, y)| Some((to_axis(x, self.x_scale)?, to_axis(y, self.y_scale)?))).collect();
                (s.name.as_str(), points)
            })
            .collect();
        if series.iter().all(|(_, p)| p.is_empty()) {
            let why = if self.series.is_empty() { "no series" } else { "no point fits the scales" };
            return Err(ChartError::Empty { title: title.clone(), why: why.into() });
        }
        let xs = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.0));
        let ys = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
        let frame = Frame {
            title,
            size: (self.width, self.height),
            x: Axis::fit(xs, self.x_scale, false),
            y: Axis::fit(ys, self.y_scale, self.y_from_zero),
            x_desc: &self.x_label,
            y_desc: &self.y_label,
            groups: None,
            legend: self.legend,
        };
        frame.plot(|chart| {
            for (i, (name, points)) in series.iter().enumerate().filter(|(_, (_, points))| !points.is_empty()) {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                    .map_err(text)?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(text)?;
            }
            Ok(())
        })
    }
}

/// The plot area of either chart, in axis coordinates.
type Plot<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>;

/// What the two charts share: caption, axes, grid and legend.
struct Frame<'a> {
    title: &'a str,
    size: (u32, u32),
    x: Axis,
    y: Axis,
    x_desc: &'a str,
    y_desc: &'a str,
    /// The x labels of a bar chart's groups (at `i + 0.5`), without x grid lines.
    groups: Option<&'a [String]>,
    legend: Legend,
}

impl Frame<'_> {
    /// Draws the frame, then `series` into it, then the legend; returns the RGB pixels.
    fn plot(self, series: impl FnOnce(&mut Plot<'_, '_>) -> Result<(), String>) -> Result<Vec<u8>, ChartError> {
        let mut pixels = canvas(self.title, self.size.0, self.size.1)?;
        let drawn = (|| {
            let root = BitMapBackend::with_buffer(&mut pixels, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(text)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, (FAMILY, 24))
                .margin(16)
                .x_label_area_size(if self.x_desc.is_empty() { 40 } else { 50 })
                .y_label_area_size(70)
                .build_cartesian_2d(self.x.clone(), self.y.clone())
                .map_err(text)?;
            let x_fmt = |v: &f64| match self.groups {
                Some(groups) => groups.get(v.floor().max(0.0) as usize).cloned().unwrap_or_default(),
                None => self.x.label(*v),
            };
            let y_fmt = |v: &f64| self.y.label(*v);
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(self.x_desc)
                .y_desc(self.y_desc)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 16))
                .bold_line_style(RGBColor(0xC8, 0xC8, 0xC8))
                .light_line_style(RGBColor(0xEE, 0xEE, 0xEE));
            if self.groups.is_some() {
                mesh.disable_x_mesh();
            }
            mesh.draw().map_err(text)?;
            series(&mut chart)?;
            chart
                .configure_series_labels()
                .position(self.legend.position())
                .label_font((FAMILY, 15))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(0x99, 0x99, 0x99))
                .draw()
                .map_err(text)?;
            root.present().map_err(text)
        })();
        drawn.map_err(|message| ChartError::Draw { title: self.title.into(), message })?;
        Ok(pixels)
    }
}

/// An error's message.
fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// An axis fitted to the data, in axis coordinates (log10 of the value on a log axis).
#[derive(Debug, Clone)]
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    /// Labelled ticks with a grid line.
    bold: Vec<f64>,
    /// Light grid lines.
    light: Vec<f64>,
}

impl Axis {
    /// The axis covering `values` (finite, in axis coordinates; at least one).
    fn fit(values: impl Iterator<Item = f64>, scale: Scale, from_zero: bool) -> Axis {
        let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        match scale {
            Scale::Log10 => {
                let (lo, mut hi) = (lo.floor(), hi.ceil());
                if hi <= lo {
                    hi = lo + 1.0;
                }
                let decades = (hi - lo) as usize;
                let every = decades.div_ceil(10).max(1);
                let bold = (0..=decades).step_by(every).map(|d| lo + d as f64).collect();
                let light = (0..decades).flat_map(|d| (2..10).map(move |m| lo + d as f64 + f64::from(m).log10())).collect();
                Axis { scale, lo, hi, bold, light }
            }
            Scale::Linear => {
                if from_zero {
                    (lo, hi) = (lo.min(0.0), hi.max(0.0));
                }
                if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
                    (lo, hi) = (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0));
                }
                let step = nice_step((hi - lo) / 6.0);
                let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
                let steps = ((hi - lo) / step).round() as usize;
                let bold = (0..=steps).map(|i| lo + step * i as f64).collect();
                let light = (0..steps).map(|i| lo + step * (i as f64 + 0.5)).collect();
                Axis { scale, lo, hi, bold, light }
            }
        }
    }

    /// The tick label at axis coordinate `v`.
    fn label(&self, v: f64) -> String {
        match self.scale {
            Scale::Linear => compact(v),
            Scale::Log10 if v.round() < -3.0 => format!("1e{}", v.round()),
            Scale::Log10 => compact(10f64.powf(v.round())),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (f64::from(limit.1 - limit.0) * fraction + 1e-3).floor() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `v` on an axis of `scale`, or `None` where it cannot be placed.
fn to_axis(v: f64, scale: Scale) -> Option<f64> {
    match scale {
        Scale::Linear => v.is_finite().then_some(v),
        Scale::Log10 => (v.is_finite() && v > 0.0).then(|| v.log10()),
    }
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|&s| s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * magnitude)
}

/// A short rendering of `v` with at most 3 significant digits: 950, 1.5k, 12k, 3M, 0.25.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = match a {
        _ if a >= 1e12 => (v / 1e12, "T"),
        _ if a >= 1e9 => (v / 1e9, "G"),
        _ if a >= 1e6 => (v / 1e6, "M"),
        _ if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match scaled.abs() {
        s if s == 0.0 || s >= 100.0 => 0,
        s if s >= 10.0 => 1,
        s if s >= 1.0 => 2,
        s => (-(s.log10().floor()) as usize + 1).min(9),
    };
    let mut text = format!("{scaled:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if text == "-0" {
        text = "0".into();
    }
    text + suffix
}

/// A white RGB buffer of `width` × `height`, after registering the embedded font.
fn canvas(title: &str, width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    register_font()?;
    let size = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(3));
    match size {
        Some(n) if width >= 100 && height >= 100 && width <= 16_384 && height <= 16_384 => Ok(vec![0xFF; n]),
        _ => Err(ChartError::Size { title: title.into(), width, height }),
    }
}

/// Registers the embedded font with plotters, once per process.
fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

/// `pixels` (RGB) as a PNG.
fn encode_png(title: &str, width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>, ChartError> {
    let encode_err = |source| ChartError::Encode { title: title.into(), source };
    let mut out = Vec::with_capacity(pixels.len() / 8);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Balanced);
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(pixels).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    Ok(out)
}

/// Writes `bytes` to `path`, creating missing parent directories.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ChartError> {
    let io_err = |source| ChartError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    let mut file = BufWriter::new(std::fs::File::create(path).map_err(io_err)?);
    file.write_all(bytes).map_err(io_err)?;
    file.flush().map_err(io_err)
}
