//! Why a reconciliation pass could not run.

use imbridge_im::ImError;
use imbridge_kafka::KafkaError;
use imbridge_legacy::ReadError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("invalid reconcile config: {0}")]
    Config(String),
    #[error("legacy read failed: {0}")]
    Legacy(#[from] ReadError),
    #[error("IM call failed: {0}")]
    Im(#[from] ImError),
    #[error("cannot produce a repair event: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot set up: {0}")]
    Setup(String),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}
