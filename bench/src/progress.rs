//! A progress bar on stderr for long runs.
//!
//! On a terminal the bar is redrawn in place (carriage return) at most 10 times a second:
//!
//! ```text
//! batchlog fjall v1 [=========>          ]  47%  47,000/100,000  12,345/s  ETA 4s  replay 47
//! ```
//!
//! Elsewhere (CI logs, a file) a plain line is printed every 5 seconds, and one at the end. Rate
//! is the average since the start; ETA is the remaining count at that rate. Progress is `Sync`:
//! [`Progress::inc`] takes `&self`, so worker threads may share one bar; `inc` costs an atomic add
//! and a clock read.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::thousands;

/// How a [`Progress`] shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Redraws one line in place, at most every [`Progress::TERMINAL_INTERVAL`].
    Terminal,
    /// Prints a line every [`Progress::LINE_INTERVAL`] and at the end.
    Lines,
    /// Prints nothing.
    Hidden,
}

/// A progress bar: a label, a total, a count, a message.
pub struct Progress {
    label: String,
    total: u64,
    done: AtomicU64,
    mode: ProgressMode,
    started: Instant,
    /// Nanoseconds after `started` before which no redraw happens.
    next_draw: AtomicU64,
    state: Mutex<State>,
}

/// The part of a [`Progress`] behind its lock.
struct State {
    message: String,
    out: Box<dyn Write + Send>,
    finished: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("label", &self.label)
            .field("total", &self.total)
            .field("done", &self.done.load(Ordering::Relaxed))
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// The least time between two redraws on a terminal.
    pub const TERMINAL_INTERVAL: Duration = Duration::from_millis(100);
    /// The time between two lines when stderr is not a terminal.
    pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

    /// A bar on stderr counting to `total` (0: unknown), drawn in place on a terminal, as a line
    /// every few seconds otherwise.
    pub fn new(label: impl Into<String>, total: u64) -> Progress {
        let mode = if std::io::stderr().is_terminal() { ProgressMode::Terminal } else { ProgressMode::Lines };
        Progress::to_writer(label, total, mode, Box::new(std::io::stderr()))
    }

    /// A bar that prints nothing (for tests and quiet runs).
    pub fn hidden(label: impl Into<String>, total: u64) -> Progress {
        Progress::to_writer(label, total, ProgressMode::Hidden, Box::new(std::io::sink()))
    }

    /// A bar drawn on `out` in `mode`.
    pub fn to_writer(label: impl Into<String>, total: u64, mode: ProgressMode, out: Box<dyn Write + Send>) -> Progress {
        let first = match mode {
            ProgressMode::Terminal => 0,
            ProgressMode::Lines | ProgressMode::Hidden => Progress::LINE_INTERVAL.as_nanos() as u64,
        };
        Progress {
            label: label.into(),
            total,
            done: AtomicU64::new(0),
            mode,
            started: Instant::now(),
            next_draw: AtomicU64::new(first),
            state: Mutex::new(State { message: String::new(), out, finished: false }),
        }
    }

    /// The label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The total (0: unknown).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The count so far.
    pub fn position(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Adds `n` to the count, redrawing if it is time.
    pub fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.maybe_draw();
    }

    /// Sets the count to `n`, redrawing if it is time.
    pub fn set_position(&self, n: u64) {
        self.done.store(n, Ordering::Relaxed);
        self.maybe_draw();
    }

    /// Sets the message shown after the numbers (e.g. the current phase), redrawing if it is time.
    pub fn set_message(&self, message: impl Into<String>) {
        self.lock().message = message.into();
        self.maybe_draw();
    }

    /// Draws the final state (the count as it is, the elapsed time and the average rate) and ends
    /// the line; later calls do nothing. Dropping an unfinished bar finishes it.
    pub fn finish(&self) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        let line = self.render_final(&state.message);
        let out = &mut state.out;
        // A progress bar that cannot write to stderr has nowhere to report it: ignore.
        let _ = match self.mode {
            ProgressMode::Terminal => write!(out, "\r{line}\x1b[K\n"),
            ProgressMode::Lines => writeln!(out, "{line}"),
            ProgressMode::Hidden => Ok(()),
        };
        let _ = out.flush();
    }

    /// Sets the message, then finishes.
    pub fn finish_with_message(&self, message: impl Into<String>) {
        self.lock().message = message.into();
        self.finish();
    }

    /// The line for count `done` after `elapsed` (without the carriage return).
    pub fn render(&self, done: u64, elapsed: Duration, message: &str) -> String {
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 { done as f64 / seconds } else { 0.0 };
        let mut line = self.label.clone();
        if self.total > 0 {
            let fraction = (done as f64 / self.total as f64).clamp(0.0, 1.0);
            if self.mode == ProgressMode::Terminal {
                const WIDTH: usize = 24;
                let filled = (fraction * WIDTH as f64).round() as usize;
                let head = if filled < WIDTH { ">" } else { "" };
                let pad = WIDTH - filled.min(WIDTH) - head.len();
                line += &format!(" [{}{head}{}]", "=".repeat(filled), " ".repeat(pad));
            }
            line += &format!(" {:>3.0}%  {}/{}", fraction * 100.0, thousands(done as f64), thousands(self.total as f64));
        } else {
            line += &format!("  {}", thousands(done as f64));
        }
        line += &format!("  {}/s", thousands(rate));
        if self.total > done && rate > 0.0 {
            line += &format!("  ETA {}", duration((self.total - done) as f64 / rate));
        }
        if !message.is_empty() {
            line += "  ";
            line += message;
        }
        line
    }

    /// The closing line: count, elapsed time, average rate.
    fn render_final(&self, message: &str) -> String {
        let done = self.position();
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { done as f64 / seconds } else { 0.0 };
        let count = match self.total {
            0 => thousands(done as f64),
            total => format!("{}/{}", thousands(done as f64), thousands(total as f64)),
        };
        let mut line = format!("{} done: {count} in {}  {}/s", self.label, duration(seconds), thousands(rate));
        if !message.is_empty() {
            line += "  ";
            line += message;
        }
        line
    }

    /// Draws if the next draw is due and no other thread is drawing.
    fn maybe_draw(&self) {
        if self.mode == ProgressMode::Hidden {
            return;
        }
        let now = self.started.elapsed().as_nanos() as u64;
        if now < self.next_draw.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut state) = self.state.try_lock() else { return };
        if state.finished {
            return;
        }
        let interval = match self.mode {
            ProgressMode::Terminal => Progress::TERMINAL_INTERVAL,
            ProgressMode::Lines | ProgressMode::Hidden => Progress::LINE_INTERVAL,
        };
        self.next_draw.store(now + interval.as_nanos() as u64, Ordering::Relaxed);
        let line = self.render(self.position(), Duration::from_nanos(now), &state.message);
        let out = &mut state.out;
        // As in `finish`: a failed progress write is not worth failing the run for.
        let _ = match self.mode {
            ProgressMode::Terminal => write!(out, "\r{line}\x1b[K"),
            ProgressMode::Lines | ProgressMode::Hidden => writeln!(out, "{line}"),
        };
        let _ = out.flush();
    }

    /// The state, also after a panic elsewhere poisoned the lock (it holds only display data).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `seconds` as `4s`, `3m05s` or `2h03m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
