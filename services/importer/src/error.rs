//! The importer's one error type: what can stop an export from being read, validated or generated at all.
//!
//! A bad *record* is not an error here: it is an [`crate::validate::Issue`] in the report, and the record is
//! skipped (or, with `--strict`, the whole import refused). These are failures of the run itself.

use std::path::PathBuf;

use imbridge_core::Disposition;
use imbridge_core::disposition::Classify;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("both {plain} and {gz} exist; keep one")]
    AmbiguousFile { plain: PathBuf, gz: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the report {path}: {source}")]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: the export changed while it was being imported (it validated before: {reason})")]
    ExportChanged { path: String, line: u64, reason: String },
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// A run-level error never fixes itself by retrying the same input: an operator has to act.
impl Classify for Error {
    fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }

    fn kind(&self) -> String {
        match self {
            Error::NotADirectory(_) | Error::AmbiguousFile { .. } | Error::InvalidOption(_) => "import_input",
            Error::Io { .. } | Error::Report { .. } => "import_io",
            Error::ExportChanged { .. } => "import_export_changed",
        }
        .to_owned()
    }
}
