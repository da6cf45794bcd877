//! The final report of an import: per record kind what was imported, already present, skipped as invalid
//! and failed (with IM's reasons), the calls made, and the wall time beside the quota-bound lower bound.
//!
//! Printed as text and written as JSON (`--report FILE`). Failures come from the dead-letter topic (records
//! tagged with this run's id), so they include every attempt of a resumed run; imported and already-present
//! counts are this attempt's (earlier attempts of a resumed run applied the rest).

use crate::table::{Align, Table};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::report::Report;
use crate::survey::{CallPlan, LowerBound};

/// One record kind's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindOutcome {
    /// `account`, `profile`, … (the `import.*` kind without its prefix).
    pub kind: String,
    /// Valid records of this kind in the export.
    pub records: u64,
    /// Accepted by IM in this attempt.
    pub imported: u64,
    /// Already in IM (existing group or member, group message already in history), this attempt.
    pub already_present: u64,
    /// Refused by IM for good (dead-lettered), all attempts of the run.
    pub failed: u64,
    /// Rejected by validation (never produced).
    pub skipped_invalid: u64,
}

/// Dead-lettered records of one kind with one error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub kind: String,
    /// The error label (`im_80001`, `retries_exhausted`, …).
    pub error: String,
    pub count: u64,
    /// The first reason seen (IM's own text).
    pub example: String,
}

/// Everything an import reports at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub run_id: String,
    pub generation: u32,
    /// Attempts of this run (1 unless it was interrupted and continued).
    pub attempts: u32,
    /// The validation report the run started from.
    pub export: Report,
    pub kinds: Vec<KindOutcome>,
    pub failures: Vec<FailureGroup>,
    /// Calls the plan needs per API (what the lower bound is computed from).
    pub planned_calls: CallPlan,
    /// Calls this attempt made per API (final outcomes, after the client's retries).
    pub calls: BTreeMap<String, u64>,
    /// Frequency-limit answers (60007 and siblings) this attempt received.
    pub frequency_limited: u64,
    pub lower_bound: LowerBound,
    /// This attempt's wall time, from start to everything applied, in seconds.
    pub wall_secs: f64,
    /// Of which validation and the survey of the plan, in seconds.
    pub prepare_secs: f64,
    /// `wall_secs / lower_bound.secs` (none when nothing is rate-limited).
    pub ratio: Option<f64>,
}

impl ImportReport {
    /// Whether every valid record is in IM (nothing failed).
    pub fn is_clean(&self) -> bool {
        self.kinds.iter().all(|k| k.failed == 0)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let resumed = if self.attempts > 1 { format!(", attempt {} (resumed)", self.attempts) } else { String::new() };
        let _ = writeln!(s, "import run {} (generation {}{resumed})", self.run_id, self.generation);
        const KINDS: Table = Table(&[
            Align::Left(16),
            Align::Right(9),
            Align::Right(9),
            Align::Right(9),
            Align::Right(8),
            Align::Right(9),
        ]);
        KINDS.row(&mut s, &[&"kind", &"records", &"imported", &"present", &"failed", &"invalid"], "");
        for k in &self.kinds {
            KINDS.row(
                &mut s,
                &[&k.kind, &k.records, &k.imported, &k.already_present, &k.failed, &k.skipped_invalid],
                "",
            );
        }
        if self.attempts > 1 {
            let earlier: u64 =
                self.kinds.iter().map(|k| k.records.saturating_sub(k.imported + k.already_present + k.failed)).sum();
            let _ = writeln!(s, "(imported/present count this attempt; about {earlier} records were applied before)");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "failures (dead-lettered with the reason; `imbridge dlq list` shows each):");
            for f in &self.failures {
                let _ = writeln!(s, "  {:<16} {:<20} {:>6}  e.g. {}", f.kind, f.error, f.count, f.example);
            }
        }
        let _ = writeln!(s, "calls per IM API (planned / made this attempt):");
        for (api, planned) in &self.planned_calls.calls {
            let made = self.calls.get(api.as_str()).copied().unwrap_or(0);
            let _ = writeln!(s, "  {:<22} {planned:>8} / {made:<8}", api.as_str());
        }
        let _ = writeln!(s, "frequency-limit answers (60007…): {}", self.frequency_limited);
        let b = &self.lower_bound;
        match &b.bottleneck {
            Some(x) if b.secs > 0.0 => {
                let _ = writeln!(
                    s,
                    "lower bound {:.2}s = multiaccount_import {:.2}s + {} {:.2}s ({} calls at {}/s)",
                    b.secs,
                    b.accounts_secs,
                    x.api.as_str(),
                    x.secs,
                    x.calls,
                    x.rate_per_sec.map_or("∞".to_owned(), |r| format!("{r}"))
                );
            }
            _ => {
                let _ = writeln!(s, "lower bound {:.2}s (IM rate limits off in the client)", b.secs);
            }
        }
        let ratio = self.ratio.map_or("n/a".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(
            s,
            "wall time {:.2}s (of which {:.2}s validating and planning); wall / lower bound = {ratio}",
            self.wall_secs, self.prepare_secs
        );
        s
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.to_json() + "\n").map_err(|source| Error::Report { path: path.to_path_buf(), source })
    }
}
