//! Progress of an export: one bar per phase (units done, rate, ETA) on a terminal, plain lines otherwise —
//! the importer's display modes.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

pub use imbridge_importer::progress::{ProgressMode, Say};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::checkpoint::Phase;

/// The progress display of one run.
pub struct Progress {
    lines: bool,
    multi: Option<MultiProgress>,
    bar: Option<ProgressBar>,
    say: Say,
    every: Duration,
    last: Instant,
    phase: Phase,
    total: u64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl Progress {
    pub fn new(mode: ProgressMode, say: Say, every: Duration) -> Self {
        let bars = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bars => true,
            ProgressMode::Lines | ProgressMode::Off => false,
        };
        let lines = mode == ProgressMode::Lines || (mode == ProgressMode::Auto && !bars);
        let multi = bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5)));
        Self { lines, multi, bar: None, say, every, last: Instant::now(), phase: Phase::Accounts, total: 0 }
    }

    /// A new phase of `total` units, `done` of them already done by an earlier run.
    pub fn start(&mut self, phase: Phase, done: u64, total: u64) {
        self.finish_bar();
        self.phase = phase;
        self.total = total;
        if let Some(m) = &self.multi {
            let style = ProgressStyle::with_template(
                "{prefix:>14} [{bar:32.cyan/blue}] {pos:>7}/{len:<7} {per_sec:>11} eta {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = m.add(ProgressBar::new(total).with_style(style).with_prefix(phase.as_str()));
            bar.set_position(done);
            self.bar = Some(bar);
        }
        if self.lines {
            (self.say)(&format!("export: {} ({done}/{total} done before)", phase.as_str()));
            self.last = Instant::now();
        }
    }

    pub fn set(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if self.lines && self.last.elapsed() >= self.every {
            (self.say)(&format!("  {:<14} {done:>8}/{}", self.phase.as_str(), self.total));
            self.last = Instant::now();
        }
    }

    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if self.lines && self.total > 0 {
            (self.say)(&format!("  {:<14} {:>8}/{} done", self.phase.as_str(), self.total, self.total));
        }
        self.total = 0;
    }
}
