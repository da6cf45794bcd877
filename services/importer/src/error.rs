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
    /// The broker refused or lost a write, a topic could not be created, offsets could not be read.
    #[error(transparent)]
    Kafka(#[from] imbridge_kafka::KafkaError),
    /// An IM call failed (verify, bench), after the client's own retries.
    #[error(transparent)]
    Im(#[from] imbridge_im::ImError),
    /// The import apply could not start.
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    /// The run was interrupted (Ctrl-C or SIGTERM) before it finished; running it again continues.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Something the run needs failed (a background task, metrics registration).
    #[error("{0}")]
    Run(String),
}

/// Input errors never fix themselves by retrying the same input: an operator has to act. Broker and IM
/// failures keep their own classification (a re-run after a transient failure continues where it stopped).
impl Classify for Error {
    fn disposition(&self) -> Disposition {
        match self {
            Error::Kafka(e) => e.disposition(),
            Error::Im(e) => e.disposition(),
            Error::Apply(e) => e.disposition(),
            Error::Interrupted(_) => Disposition::Retry,
            _ => Disposition::DeadLetter,
        }
    }

    fn kind(&self) -> String {
        match self {
            Error::NotADirectory(_) | Error::AmbiguousFile { .. } | Error::InvalidOption(_) => "import_input",
            Error::Io { .. } | Error::Report { .. } => "import_io",
            Error::ExportChanged { .. } => "import_export_changed",
            Error::Kafka(e) => return e.kind(),
            Error::Im(e) => return e.kind(),
            Error::Apply(e) => return e.kind(),
            Error::Interrupted(_) => "import_interrupted",
            Error::Run(_) => "import_run",
        }
        .to_owned()
    }
}
