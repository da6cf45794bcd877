//! Progress of an import: one bar per record kind (count, rate, ETA) on a terminal, plain lines otherwise.
//!
//! Positions are read from the apply's own counters ([`ApplyStats`]) and the producers' acknowledged counts,
//! so the display never counts anything the report would not. Bars draw on stderr; lines go through the
//! caller's output (stdout) every `progress_interval_secs`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::ApplyStats;
use imbridge_core::EventKind;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise.
    Auto,
    Bars,
    Lines,
    Off,
}

impl ProgressMode {
    fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        }
    }
}

/// Where plain progress lines and the final text go.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

struct Row {
    label: &'static str,
    kind: Option<EventKind>,
    total: u64,
    bar: Option<ProgressBar>,
    last: (Instant, u64),
}

/// The progress display of one run.
pub struct Progress {
    mode: ProgressMode,
    rows: Vec<Row>,
    _multi: Option<MultiProgress>,
    say: Say,
    every: Duration,
    last_lines: Instant,
    started: Instant,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// The row label of an apply kind.
pub fn label(kind: EventKind) -> &'static str {
    kind.as_str().trim_start_matches("import.")
}

impl Progress {
    /// A display for `produce_total` records to produce and, per kind, the records to apply.
    pub fn new(mode: ProgressMode, produce_total: u64, kinds: &[(EventKind, u64)], say: Say, every: Duration) -> Self {
        let mode = mode.resolve();
        let now = Instant::now();
        let mut rows = vec![Row { label: "produced", kind: None, total: produce_total, bar: None, last: (now, 0) }];
        for (kind, total) in kinds {
            rows.push(Row { label: label(*kind), kind: Some(*kind), total: *total, bar: None, last: (now, 0) });
        }
        let multi = (mode == ProgressMode::Bars).then(|| {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
            let style = ProgressStyle::with_template(
                "{prefix:>18} [{bar:32.cyan/blue}] {pos:>7}/{len:<7} {per_sec:>11} eta {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            for row in &mut rows {
                let bar = m.add(ProgressBar::new(row.total).with_style(style.clone()).with_prefix(row.label));
                row.bar = Some(bar);
            }
            m
        });
        Self { mode, rows, _multi: multi, say, every, last_lines: now, started: now }
    }

    /// Refreshes positions: `produced` records acknowledged so far, applied counts from `stats`.
    pub fn update(&mut self, produced: u64, stats: &ApplyStats) {
        for row in &mut self.rows {
            let pos = row.kind.map_or(produced, |k| stats.finished(k)).min(row.total.max(1) * 4);
            if let Some(bar) = &row.bar {
                bar.set_position(pos);
            }
        }
        if self.mode == ProgressMode::Lines && self.last_lines.elapsed() >= self.every {
            self.lines(produced, stats);
        }
    }

    fn lines(&mut self, produced: u64, stats: &ApplyStats) {
        let now = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut out = format!("progress after {elapsed:.0}s:");
        for row in &mut self.rows {
            let pos = row.kind.map_or(produced, |k| stats.finished(k));
            let dt = now.duration_since(row.last.0).as_secs_f64().max(1e-3);
            let rate = pos.saturating_sub(row.last.1) as f64 / dt;
            let eta = if pos >= row.total {
                "done".to_owned()
            } else if rate > 0.0 {
                format!("eta {:.0}s", (row.total - pos) as f64 / rate)
            } else {
                "eta ?".to_owned()
            };
            out.push_str(&format!("\n  {:<18} {pos:>8}/{:<8} {rate:>9.1}/s  {eta}", row.label, row.total));
            row.last = (now, pos);
        }
        (self.say)(&out);
        self.last_lines = now;
    }

    /// Final positions; bars are left on screen, complete.
    pub fn finish(&mut self, produced: u64, stats: &ApplyStats) {
        self.update(produced, stats);
        for row in &self.rows {
            if let Some(bar) = &row.bar {
                bar.finish();
            }
        }
        if self.mode == ProgressMode::Lines {
            self.lines(produced, stats);
        }
    }
}
