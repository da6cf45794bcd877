//! What the import apply did, per record kind: counted where IM's answer is known, so the progress bars, the
//! final report and `/metrics` read the same numbers.
//!
//! `imbridge_import_applied_records_total{kind, outcome}` — `kind` is an `import.*` event kind, `outcome` one
//! of [`RecordOutcome`]: both bounded. Records the runner dead-letters after exhausting retries are not seen
//! here (the report reads those from the dead-letter topic).

use imbridge_core::EventKind;
use prometheus::{IntCounterVec, Opts, Registry};

/// How one record ended, as far as the handler knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordOutcome {
    /// IM accepted it (for "set" APIs: IM now holds the value).
    Imported,
    /// IM already had it (existing group, existing member, group message already in history).
    AlreadyPresent,
    /// IM refused it for good; it went to the dead-letter topic with IM's reason.
    Failed,
}

impl RecordOutcome {
    pub const ALL: [RecordOutcome; 3] = [RecordOutcome::Imported, RecordOutcome::AlreadyPresent, RecordOutcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Imported => "imported",
            RecordOutcome::AlreadyPresent => "already_present",
            RecordOutcome::Failed => "failed",
        }
    }
}

/// Per-kind outcome counters (cheap to clone; clones share the counters).
#[derive(Debug, Clone)]
pub struct ApplyStats {
    records: IntCounterVec,
}

impl ApplyStats {
    /// Registers `imbridge_import_applied_records_total` on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let records = IntCounterVec::new(
            Opts::new("imbridge_import_applied_records_total", "import records applied, by kind and outcome"),
            &["kind", "outcome"],
        )?;
        registry.register(Box::new(records.clone()))?;
        Ok(Self { records })
    }

    /// Counters on a private registry (tests, benchmarks).
    pub fn unregistered() -> Self {
        // A fresh registry cannot already hold the name.
        Self::new(&Registry::new()).unwrap_or_else(|_| unreachable!("fresh registry"))
    }

    pub fn record(&self, kind: EventKind, outcome: RecordOutcome) {
        self.add(kind, outcome, 1);
    }

    pub fn add(&self, kind: EventKind, outcome: RecordOutcome, n: u64) {
        if n > 0 {
            self.records.with_label_values(&[kind.as_str(), outcome.as_str()]).inc_by(n);
        }
    }

    pub fn get(&self, kind: EventKind, outcome: RecordOutcome) -> u64 {
        self.records.with_label_values(&[kind.as_str(), outcome.as_str()]).get()
    }

    /// Records of `kind` finished so far, whatever the outcome.
    pub fn finished(&self, kind: EventKind) -> u64 {
        RecordOutcome::ALL.iter().map(|o| self.get(kind, *o)).sum()
    }
}
