//! The progress bar: its line, its redraw pacing and its closing line, written to a buffer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure fails the test loudly

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use talus_bench::progress::{duration, Progress, ProgressMode};

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8")
    }
}

#[test]
fn terminal_line_shows_bar_percent_counts_rate_eta_and_message() {
    let bar = Progress::to_writer("load", 1_000, ProgressMode::Terminal, Box::new(std::io::sink()));
    let line = bar.render(250, Duration::from_secs(5), "phase 2");
    assert_eq!(line, "load [======>                 ]  25%  250/1,000  50/s  ETA 15s  phase 2");
    let done = bar.render(1_000, Duration::from_secs(10), "");
    assert_eq!(done, "load [========================] 100%  1,000/1,000  100/s");
    let unknown = Progress::to_writer("scan", 0, ProgressMode::Lines, Box::new(std::io::sink()));
    assert_eq!(unknown.render(12_345, Duration::from_secs(1), ""), "scan  12,345  12,345/s");
    let lines = Progress::to_writer("fill", 10, ProgressMode::Lines, Box::new(std::io::sink()));
    assert_eq!(lines.render(5, Duration::from_secs(100), ""), "fill  50%  5/10  0/s  ETA 1m40s");
}

#[test]
fn terminal_mode_redraws_in_place_at_most_ten_times_a_second() {
    let out = Shared::default();
    let bar = Progress::to_writer("work", 100, ProgressMode::Terminal, Box::new(out.clone()));
    for _ in 0..100 {
        bar.inc(1);
    }
    bar.set_message("almost");
    // A burst redraws once (the first inc), not per call.
    assert_eq!(out.text().matches('\r').count(), 1, "{:?}", out.text());
    std::thread::sleep(Progress::TERMINAL_INTERVAL + Duration::from_millis(20));
    bar.inc(0);
    assert_eq!(out.text().matches('\r').count(), 2);
    bar.finish_with_message("ok");
    bar.finish();
    let text = out.text();
    assert!(text.ends_with("\x1b[K\n"), "{text:?}");
    assert_eq!(text.matches('\n').count(), 1, "one final newline: {text:?}");
    assert!(text.contains("work done: 100/100 in "), "{text:?}");
    assert!(text.trim_end().ends_with("ok\x1b[K"), "{text:?}");
}

#[test]
fn line_mode_prints_plain_lines_only_every_few_seconds_and_at_the_end() {
    let out = Shared::default();
    {
        let bar = Progress::to_writer("ci", 10, ProgressMode::Lines, Box::new(out.clone()));
        for _ in 0..10 {
            bar.inc(1);
        }
        // Dropping finishes it.
    }
    let text = out.text();
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.starts_with("ci done: 10/10 in "), "{text:?}");
}

#[test]
fn hidden_bar_prints_nothing_and_counts_across_threads() {
    let bar = Progress::hidden("quiet", 4_000);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| (0..1_000).for_each(|_| bar.inc(1)));
        }
    });
    assert_eq!(bar.position(), 4_000);
    bar.set_position(10);
    assert_eq!(bar.position(), 10);
}

#[test]
fn durations() {
    assert_eq!(duration(0.25), "0.2s");
    assert_eq!(duration(9.96), "10.0s");
    assert_eq!(duration(42.0), "42s");
    assert_eq!(duration(185.0), "3m05s");
    assert_eq!(duration(7_380.0), "2h03m");
}
