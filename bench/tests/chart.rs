//! The PNG charts: rendered to a temporary directory, decoded, and checked for size and content.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure fails the test loudly

use std::path::Path;

use talus_bench::chart::{compact, BarChart, BarSeries, ChartError, Legend, LineChart, Scale, Series};

/// The width, height and RGB pixels of the PNG at `path`.
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).expect("chart file");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut pixels).expect("a PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// How many pixels have exactly `rgb`.
fn count(pixels: &[u8], rgb: [u8; 3]) -> usize {
    pixels.chunks_exact(3).filter(|p| *p == rgb).count()
}

/// How many dark (text or axis) pixels lie in rows `rows` of an image `width` wide.
fn dark_in_rows(pixels: &[u8], width: u32, rows: std::ops::Range<u32>) -> usize {
    let row = width as usize * 3;
    pixels[rows.start as usize * row..rows.end as usize * row].chunks_exact(3).filter(|p| p.iter().all(|&c| c < 100)).count()
}

/// Also writes `png` to `$TALUS_CHART_OUT/name` when that is set, to look at the charts.
fn keep(name: &str, png: &[u8]) {
    if let Some(dir) = std::env::var_os("TALUS_CHART_OUT") {
        std::fs::create_dir_all(&dir).expect("chart output directory");
        std::fs::write(Path::new(&dir).join(name), png).expect("chart copy");
    }
}

fn replay_chart() -> LineChart {
    let v1: Vec<(f64, f64)> = (2..=6).map(|e| (10f64.powi(e), 10f64.powi(e - 5) * 3.0)).collect();
    let v2: Vec<(f64, f64)> = (2..=6).map(|e| (10f64.powi(e), 0.002 + 1e-4 * f64::from(e))).collect();
    LineChart::new("Batchlog replay time against dead entries")
        .x_label("dead entries")
        .y_label("replay seconds")
        .x_scale(Scale::Log10)
        .y_scale(Scale::Log10)
        .series(Series::new("rocksdb v1", v1))
        .series(Series::new("rocksdb v2", v2))
        .series(Series::new("empty", vec![(0.0, 1.0), (-5.0, 2.0)]))
        .size(900, 500)
}

#[test]
fn line_chart_with_log_axes_is_a_png_of_the_requested_size_with_lines_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("replay.png");
    replay_chart().save(&path).expect("chart saved");
    keep("replay.png", &std::fs::read(&path).expect("read back"));
    let (width, height, pixels) = decode(&path);
    assert_eq!((width, height), (900, 500));
    let white = count(&pixels, [0xFF; 3]);
    assert!(white < pixels.len() / 3, "everything is background");
    // The two drawable series in the first two palette colours (lines and markers).
    assert!(count(&pixels, [0x4E, 0x79, 0xA7]) > 200, "first series missing");
    assert!(count(&pixels, [0xF2, 0x8E, 0x2B]) > 200, "second series missing");
    // The caption's glyphs in the top rows: text renders without system fonts.
    assert!(dark_in_rows(&pixels, width, 0..45) > 100, "no caption text");
    // Tick labels and the x description below the plot.
    assert!(dark_in_rows(&pixels, width, height - 60..height) > 100, "no x axis labels");
}

#[test]
fn linear_chart_renders_and_saves_the_same_bytes_as_to_png() {
    let chart = LineChart::new("fillrandom")
        .x_label("seconds")
        .y_label("ops/s")
        .legend(Legend::LowerRight)
        .series(Series::new("talus", (0..50).map(|i| (f64::from(i), 1e5 + 3e3 * f64::from(i))).collect()))
        .series(Series::new("fjall", (0..50).map(|i| (f64::from(i), 8e4 + 1e3 * f64::from(i % 7))).collect()));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("linear.png");
    chart.save(&path).expect("chart saved");
    assert_eq!(std::fs::read(&path).expect("read back"), chart.to_png().expect("png bytes"));
    keep("linear.png", &std::fs::read(&path).expect("read back"));
    let (width, height, pixels) = decode(&path);
    assert_eq!((width, height), (1000, 600));
    assert!(count(&pixels, [0x59, 0xA1, 0x4F]) == 0, "a third colour without a third series");
    assert!(count(&pixels, [0x4E, 0x79, 0xA7]) > 200);
}

#[test]
fn grouped_bar_chart_draws_a_bar_per_engine_and_workload() {
    let groups: Vec<String> = ["fillseq", "fillrandom", "readrandom", "scan"].map(String::from).to_vec();
    let chart = BarChart::new("Throughput", groups)
        .y_label("ops/s")
        .series(BarSeries::new("talus", vec![9e5, 4e5, 2.5e5, 1.2e6]))
        .series(BarSeries::new("fjall", vec![8e5, 3e5, 2e5, f64::NAN]))
        .series(BarSeries::new("rocksdb", vec![7e5, 3.5e5, 3e5]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bars.png");
    chart.save(&path).expect("chart saved");
    let (width, height, pixels) = decode(&path);
    assert_eq!((width, height), (1000, 600));
    for rgb in [[0x4E, 0x79, 0xA7], [0xF2, 0x8E, 0x2B], [0xE1, 0x57, 0x59]] {
        assert!(count(&pixels, rgb) > 1_000, "bars of colour {rgb:?} missing");
    }
    keep("bars.png", &std::fs::read(&path).expect("read back"));
    let log = chart.clone().y_scale(Scale::Log10).to_png().expect("log bars");
    keep("bars-log.png", &log);
    assert!(log.starts_with(b"\x89PNG\r\n\x1a\n"));
    // A top margin keeps room for the legend: the bars get shorter.
    let bar_pixels = |chart: &BarChart| count(&chart.render().expect("render"), [0x4E, 0x79, 0xA7]);
    let (plain, margin) = (bar_pixels(&chart), bar_pixels(&chart.clone().top_margin(0.5)));
    assert!(margin < plain * 3 / 4, "{margin} vs {plain} pixels of the first series");
}

#[test]
fn nothing_to_draw_and_bad_sizes_are_errors() {
    let empty = LineChart::new("empty").render();
    assert!(matches!(empty, Err(ChartError::Empty { .. })), "{empty:?}");
    let off_scale = LineChart::new("log").y_scale(Scale::Log10).series(Series::new("zero", vec![(1.0, 0.0)])).render();
    assert!(matches!(off_scale, Err(ChartError::Empty { .. })), "{off_scale:?}");
    let tiny = replay_chart().size(10, 10).render();
    assert!(matches!(tiny, Err(ChartError::Size { .. })), "{tiny:?}");
    let no_groups = BarChart::new("bars", Vec::new()).series(BarSeries::new("a", vec![1.0])).render();
    assert!(matches!(no_groups, Err(ChartError::Empty { .. })), "{no_groups:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"x").expect("write");
    let io = replay_chart().save(&blocked.join("under-a-file.png"));
    assert!(matches!(io, Err(ChartError::Io { .. })), "{io:?}");
}

#[test]
fn compact_numbers() {
    let cases = [
        (0.0, "0"),
        (1.0, "1"),
        (10.0, "10"),
        (950.0, "950"),
        (1_000.0, "1k"),
        (1_500.0, "1.5k"),
        (10_000.0, "10k"),
        (125_000.0, "125k"),
        (1e6, "1M"),
        (2.5e6, "2.5M"),
        (3e9, "3G"),
        (0.25, "0.25"),
        (0.001, "0.001"),
        (-2e6, "-2M"),
    ];
    for (v, text) in cases {
        assert_eq!(compact(v), text, "{v}");
    }
}
