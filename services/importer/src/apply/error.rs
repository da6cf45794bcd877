//! The import apply's one error type: what stops a consumer from starting or a state write from landing.
//!
//! A failed *record* is not an error here: handlers turn IM's answers into [`imbridge_kafka::Outcome`]s
//! (retry or dead-letter) next to the call. These are failures of the machinery itself.

use imbridge_core::Disposition;
use imbridge_core::disposition::Classify;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Creating a consumer or producing a state record failed.
    #[error(transparent)]
    Kafka(#[from] imbridge_kafka::KafkaError),
    /// Registering metrics failed (a name registered twice on one registry).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Classify for ApplyError {
    fn disposition(&self) -> Disposition {
        match self {
            ApplyError::Kafka(e) => e.disposition(),
            ApplyError::Metrics(_) => Disposition::DeadLetter,
        }
    }

    fn kind(&self) -> String {
        match self {
            ApplyError::Kafka(e) => e.kind(),
            ApplyError::Metrics(_) => "import_metrics".to_owned(),
        }
    }
}
