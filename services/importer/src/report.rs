//! The validation report: per-kind counts, the capped `file:line` errors, and what the import would produce.
//!
//! The same [`Report`] is printed as text for the operator and written as JSON for tooling; the import run
//! later extends it with what was applied.

use crate::table::{Align, Table};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::export::ExportDir;
use crate::plan::ImportPlan;
use crate::validate::{KindSummary, Validation};

/// What validating an export found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The export directory.
    pub export_dir: String,
    /// Whether `--strict` was asked for (any invalid record refuses the whole import).
    pub strict: bool,
    /// No record was invalid.
    pub clean: bool,
    pub valid: u64,
    pub invalid: u64,
    /// Per export kind, in validation order.
    pub kinds: Vec<KindSummary>,
    /// Import events the valid records turn into, by event kind.
    pub events: BTreeMap<String, u64>,
    /// The same events by import topic.
    pub topics: BTreeMap<String, u64>,
}

impl Report {
    pub fn new(dir: &ExportDir, validation: &Validation, plan: &ImportPlan, strict: bool) -> Self {
        Self {
            export_dir: dir.root().display().to_string(),
            strict,
            clean: validation.is_clean(),
            valid: validation.total_valid(),
            invalid: validation.total_invalid(),
            kinds: validation.summaries().to_vec(),
            events: validation.event_counts().iter().map(|(k, n)| (k.as_str().to_owned(), *n)).collect(),
            topics: plan.topic_counts().into_iter().map(|(p, n)| (p.topic().default_name().to_owned(), n)).collect(),
        }
    }

    /// Whether an import may go ahead: always when clean, and without `--strict` when some records are bad.
    pub fn may_import(&self) -> bool {
        self.clean || !self.strict
    }

    /// Human-readable: a table of counts, the kept errors, and the events to produce.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "export {}: {} valid, {} invalid records", self.export_dir, self.valid, self.invalid);
        const KINDS: Table = Table(&[Align::Left(16), Align::Left(26), Align::Right(10), Align::Right(9)]);
        KINDS.row(&mut s, &[&"kind", &"file", &"valid", &"invalid"], "");
        for k in &self.kinds {
            let file = k.file.as_deref().unwrap_or("(absent)");
            KINDS.row(&mut s, &[&k.kind.as_str(), &file, &k.valid, &k.invalid], "");
        }
        if !self.clean {
            let _ = writeln!(s, "errors:");
            for k in &self.kinds {
                for issue in &k.errors {
                    let _ = writeln!(s, "  {issue}");
                }
                if k.more_errors > 0 {
                    let _ = writeln!(s, "  … and {} more in {}", k.more_errors, k.kind.as_str());
                }
            }
        }
        let _ = writeln!(s, "import events:");
        for (topic, n) in &self.topics {
            let _ = writeln!(s, "  {topic:<26} {n:>10}");
        }
        for (kind, n) in &self.events {
            let _ = writeln!(s, "    {kind:<24} {n:>10}");
        }
        if !self.clean {
            let verdict =
                if self.strict { "--strict: nothing would be imported" } else { "invalid records would be skipped" };
            let _ = writeln!(s, "{verdict}");
        }
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
