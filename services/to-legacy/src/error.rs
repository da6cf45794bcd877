//! The crate's one error type. Per-record failures are the legacy crate's [`ApplyError`] (already classified:
//! 2xx/409 applied, 400/422 dead-letter, 429/5xx/timeouts retry) or a record that is not an IM event; the rest
//! are start-up failures.

use imbridge_core::Failure;
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_kafka::KafkaError;
use imbridge_legacy::ApplyError;

#[derive(Debug, thiserror::Error)]
pub enum ToLegacyError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The record is not a decodable envelope: a poison record, dead-lettered with this reason.
    #[error("{0}")]
    Decode(Failure),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}

impl Classify for ToLegacyError {
    fn disposition(&self) -> Disposition {
        match self {
            ToLegacyError::Apply(e) => e.disposition(),
            ToLegacyError::Kafka(e) => e.disposition(),
            ToLegacyError::Decode(_) | ToLegacyError::Config(_) => Disposition::DeadLetter,
            ToLegacyError::Start(_) => Disposition::Retry,
        }
    }

    fn kind(&self) -> String {
        match self {
            ToLegacyError::Apply(e) => e.kind(),
            ToLegacyError::Decode(f) => f.kind.clone(),
            ToLegacyError::Kafka(e) => e.kind(),
            ToLegacyError::Config(_) => "config".into(),
            ToLegacyError::Start(_) => "start".into(),
        }
    }
}
