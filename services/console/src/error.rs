//! [`ConsoleError`]: what can go wrong in the console and the tracer.

/// Every failure of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("invalid console configuration: {0}")]
    Config(String),
    #[error("invalid lookup: {0}")]
    Query(String),
    #[error("kafka: {0}")]
    Kafka(#[from] imbridge_kafka::KafkaError),
    #[error("status: {0}")]
    Status(#[from] imbridge_to_im::ToImError),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}
