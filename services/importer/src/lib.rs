//! The importer: reads a legacy export, validates it, and turns it into import events for Kafka.
//!
//! - [`export`]: the export directory, streaming NDJSON (`.ndjson` / `.ndjson.gz`) with line numbers, and the
//!   strict reading of each line into its record (the record types are `imbridge_core::export`'s);
//! - [`validate`]: the two validation passes (shape and limits, then references) with `file:line` issues,
//!   capped per kind;
//! - [`plan`]: conversion of the valid records into `imbridge_core` import events, one stream per import
//!   topic, each key's events in the order IM needs them (`msg_seq` / `ordinal` assigned in legacy order);
//! - [`report`]: the validation report, as text for people and JSON for machines;
//! - [`generate`]: a deterministic, realistic sample export (with optional bad lines) for tests and demos;
//! - [`schedule`]: the deterministic SendTime of each group message (IM wants them strictly increasing);
//! - [`survey`]: one pass over the plan: conversations with history, calls per IM API, the lower bound;
//! - [`produce`]: the plan's streams decorated (done markers, headers) and produced, resumably;
//! - [`checkpoint`]: how far producing got, per export, on a compacted topic;
//! - [`run`]: `imbridge import` end to end (validate → produce ∥ apply → wait → report), with
//!   [`config::ImportConfig`], [`progress`] bars and the final [`outcome::ImportReport`];
//! - [`apply`]: the import topics applied to IM with its import APIs, as a dependency DAG within IM's per-API
//!   quotas (accounts first; users, c2c and group chains in parallel);
//! - [`verify`]: `imbridge verify`, reading IM back and comparing it with the export.

pub mod apply;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod outcome;
pub mod plan;
pub mod produce;
pub mod progress;
pub mod report;
pub mod run;
pub mod schedule;
pub mod survey;
mod table;
pub mod validate;
pub mod verify;

pub use config::ImportConfig;
pub use error::Error;
pub use export::{ExportDir, ExportKind};
pub use generate::{GenerateOptions, Generated, generate};
pub use plan::{EventStream, ImportPlan, PlanOptions};
pub use report::Report;
pub use validate::{Issue, KindSummary, ValidateOptions, Validation, validate};

/// Validates the export in `dir` and prepares its import plan and report: everything `export validate` and
/// `import --dry-run` show, and what a real import starts from. Whether to go on is
/// [`Report::may_import`] (`strict` refuses on any invalid record).
pub fn check_export(
    dir: &std::path::Path,
    options: &ValidateOptions,
    strict: bool,
) -> Result<(ImportPlan, Report), Error> {
    let export = ExportDir::open(dir)?;
    let validation = std::sync::Arc::new(validate(&export, options)?);
    let plan = ImportPlan::new(export.clone(), validation, PlanOptions::default());
    let report = Report::new(&export, plan.validation(), &plan, strict);
    Ok((plan, report))
}
