//! The crate's one error type. Kafka errors at this layer are infrastructure errors: retried by callers with a
//! backoff, never dead-lettered (a record is only dead-lettered for what it contains).

use imbridge_core::disposition::{Classify, Disposition};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("delivery to {topic} failed: {source}")]
    Delivery { topic: String, source: rdkafka::error::KafkaError },
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("consumer group {group}: {reason}")]
    Group { group: String, reason: String },
    /// `imbridge bench kafka` measured nothing usable (a baseline tool's output it cannot read, no events).
    #[error("benchmark measured nothing: {0}")]
    Bench(String),
}

impl Classify for KafkaError {
    fn disposition(&self) -> Disposition {
        match self {
            KafkaError::Config(_) | KafkaError::Bench(_) => Disposition::DeadLetter,
            _ => Disposition::Retry,
        }
    }

    fn kind(&self) -> String {
        match self {
            KafkaError::Client(_) => "kafka_client",
            KafkaError::Delivery { .. } => "kafka_delivery",
            KafkaError::Topic { .. } => "kafka_topic",
            KafkaError::Config(_) => "kafka_config",
            KafkaError::Timeout(_) => "kafka_timeout",
            KafkaError::Group { .. } => "kafka_group",
            KafkaError::Bench(_) => "kafka_bench",
        }
        .to_owned()
    }
}
