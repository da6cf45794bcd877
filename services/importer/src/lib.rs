//! The importer: reads a legacy export, validates it, and turns it into import events for Kafka.
//!
//! - [`export`]: the export directory, streaming NDJSON (`.ndjson` / `.ndjson.gz`) with line numbers, and the
//!   typed records of each file;
//! - [`validate`]: the two validation passes (shape and limits, then references) with `file:line` issues,
//!   capped per kind;
//! - [`plan`]: conversion of the valid records into `imbridge_core` import events, one stream per import
//!   topic, each key's events in the order IM needs them (`msg_seq` / `ordinal` assigned in legacy order);
//! - [`report`]: the validation report, as text for people and JSON for machines;
//! - [`generate`]: a deterministic, realistic sample export (with optional bad lines) for tests and demos.
//!
//! Producing the streams to Kafka and applying them live in their own modules and crates.

pub mod error;
pub mod export;
pub mod generate;
pub mod plan;
pub mod report;
pub mod validate;

pub use error::Error;
pub use export::{ExportDir, ExportKind};
pub use generate::{GenerateOptions, Generated, generate};
pub use plan::{EventStream, ImportPlan, PlanOptions};
pub use report::Report;
pub use validate::{Issue, KindSummary, ValidateOptions, Validation, validate};
