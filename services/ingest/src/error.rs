//! The crate's one error type: why a request was refused, or why the service could not start.
//!
//! Each variant knows its HTTP status ([`IngestError::status`]) and a bounded label ([`Classify::kind`]) used as
//! the `reason` of `imbridge_ingest_rejected_total`. The disposition is the sender's: bad input can never succeed
//! (dead-letter on their side, fix it), a Kafka outage is transient (retry the same request).

use std::time::Duration;

use axum::http::StatusCode;
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_im::callback::{CallbackAuthError, CallbackParseError};
use imbridge_kafka::KafkaError;
use imbridge_legacy::{BatchError, SignatureError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("signature refused: {0}")]
    Signature(#[from] SignatureError),
    #[error("request body is larger than the {limit_bytes}-byte limit")]
    TooLarge { limit_bytes: usize },
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("{0}")]
    Batch(#[from] BatchError),
    #[error("callback refused: {0}")]
    CallbackAuth(#[from] CallbackAuthError),
    #[error("callback query is malformed: {0}")]
    CallbackQuery(String),
    #[error("callback is malformed: {0}")]
    CallbackParse(#[from] CallbackParseError),
    /// A well-formed callback whose content cannot become a canonical event (bad id, unmappable body).
    #[error("{command}: {reason}")]
    CallbackInvalid { command: String, reason: String },
    #[error("kafka did not take the events: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka did not acknowledge the events within {0:?}")]
    ProduceTimeout(Duration),
    #[error("{0}")]
    Spool(#[from] crate::spool::SpoolError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}

impl IngestError {
    /// The HTTP status the sender gets.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Signature(_) | IngestError::CallbackAuth(_) => StatusCode::UNAUTHORIZED,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Body(_)
            | IngestError::Batch(_)
            | IngestError::CallbackQuery(_)
            | IngestError::CallbackParse(_)
            | IngestError::CallbackInvalid { .. } => StatusCode::BAD_REQUEST,
            // 503 (not 500): the request was fine, Kafka was not; the sender retries the same bytes.
            IngestError::Kafka(_) | IngestError::ProduceTimeout(_) | IngestError::Spool(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Config(_) | IngestError::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Classify for IngestError {
    fn disposition(&self) -> Disposition {
        match self {
            IngestError::Kafka(_) | IngestError::ProduceTimeout(_) | IngestError::Body(_) | IngestError::Spool(_) => {
                Disposition::Retry
            }
            _ => Disposition::DeadLetter,
        }
    }

    fn kind(&self) -> String {
        match self {
            IngestError::Signature(e) => return format!("signature_{}", e.kind()),
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Body(_) => "body_unreadable",
            IngestError::Batch(BatchError::Invalid(_)) => "invalid_event",
            IngestError::Batch(_) => "malformed_batch",
            IngestError::CallbackAuth(
                CallbackAuthError::MissingSdkAppid | CallbackAuthError::SdkAppidMismatch { .. },
            ) => "sdkappid",
            IngestError::CallbackAuth(CallbackAuthError::Stale { .. }) => "callback_stale",
            IngestError::CallbackAuth(_) => "callback_sign",
            IngestError::CallbackQuery(_) => "callback_query",
            IngestError::CallbackParse(_) => "callback_malformed",
            IngestError::CallbackInvalid { .. } => "callback_invalid",
            IngestError::Kafka(_) => "kafka_unavailable",
            IngestError::ProduceTimeout(_) => "kafka_timeout",
            IngestError::Spool(crate::spool::SpoolError::Full { .. }) => "spool_full",
            IngestError::Spool(_) => "spool_error",
            IngestError::Config(_) => "config",
            IngestError::Start(_) => "start",
        }
        .to_owned()
    }
}
