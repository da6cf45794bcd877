//! The dead-letter topic as a contract.
//!
//! A dead-lettered record keeps its original key and payload byte for byte (so `imbridge dlq replay` can put
//! it back exactly), keeps its original headers, and gains the headers below. Partition and offset are
//! separate headers, each tested on its own: a known bug elsewhere wrote one into the other.

use imbridge_core::Failure;

use crate::error::KafkaError;
use crate::producer::{Delivery, Outgoing, Producer};
use crate::record::Record;

pub const ORIGINAL_TOPIC: &str = "imbridge.original.topic";
pub const ORIGINAL_PARTITION: &str = "imbridge.original.partition";
pub const ORIGINAL_OFFSET: &str = "imbridge.original.offset";
pub const ORIGINAL_KEY: &str = "imbridge.original.key";
pub const ERROR_KIND: &str = "imbridge.error.kind";
pub const ERROR_REASON: &str = "imbridge.error.reason";
pub const ATTEMPTS: &str = "imbridge.attempts";
pub const FIRST_FAILURE_MS: &str = "imbridge.first_failure_ms";

/// Every header this crate adds, in order.
pub const HEADERS: [&str; 8] = [
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_KEY,
    ERROR_KIND,
    ERROR_REASON,
    ATTEMPTS,
    FIRST_FAILURE_MS,
];

/// The error kind of events dead-lettered only because an earlier event of their conversation was.
pub const KIND_PARKED: &str = "parked";
/// The error kind of events whose transient failures outlasted the retry policy.
pub const KIND_RETRIES_EXHAUSTED: &str = "retries_exhausted";

/// What the DLQ headers of one record say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub original_key: Option<String>,
    pub kind: String,
    pub reason: String,
    pub attempts: u32,
    pub first_failure_ms: i64,
}

impl DeadLetterInfo {
    /// Reads the headers back from a record consumed from the DLQ.
    pub fn from_record(r: &Record) -> Result<Self, String> {
        let s = |name: &str| r.header_str(name).map(str::to_owned).ok_or_else(|| format!("missing header {name}"));
        let n = |name: &str| -> Result<i64, String> {
            s(name)?.parse::<i64>().map_err(|e| format!("header {name} is not a number: {e}"))
        };
        Ok(Self {
            original_topic: s(ORIGINAL_TOPIC)?,
            original_partition: i32::try_from(n(ORIGINAL_PARTITION)?).map_err(|e| e.to_string())?,
            original_offset: n(ORIGINAL_OFFSET)?,
            original_key: r.header_str(ORIGINAL_KEY).map(str::to_owned),
            kind: s(ERROR_KIND)?,
            reason: s(ERROR_REASON)?,
            attempts: u32::try_from(n(ATTEMPTS)?).map_err(|e| e.to_string())?,
            first_failure_ms: n(FIRST_FAILURE_MS)?,
        })
    }
}

/// Writes records that can never apply to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DlqProducer {
    producer: Producer,
    topic: String,
}

impl DlqProducer {
    pub fn new(producer: Producer, topic: impl Into<String>) -> Self {
        Self { producer, topic: topic.into() }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Dead-letters `record`, acknowledged by the broker before returning (the caller stores the original
    /// offset only after this succeeded, so a DLQ outage never loses a record).
    pub async fn send(
        &self,
        record: &Record,
        failure: &Failure,
        attempts: u32,
        first_failure_ms: i64,
    ) -> Result<Delivery, KafkaError> {
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = attempts.to_string();
        let first = first_failure_ms.to_string();
        // Header values are bounded so one huge reason cannot make the record too large for the broker.
        let reason = truncate(&failure.reason, 4_000);
        let mut headers: Vec<(&str, &[u8])> = vec![
            (ORIGINAL_TOPIC, record.topic.as_bytes()),
            (ORIGINAL_PARTITION, partition.as_bytes()),
            (ORIGINAL_OFFSET, offset.as_bytes()),
            (ERROR_KIND, failure.kind.as_bytes()),
            (ERROR_REASON, reason.as_bytes()),
            (ATTEMPTS, attempts.as_bytes()),
            (FIRST_FAILURE_MS, first.as_bytes()),
        ];
        if let Some(k) = &record.key {
            headers.push((ORIGINAL_KEY, k.as_slice()));
        }
        for (k, v) in &record.headers {
            // A record re-driven from the DLQ and failing again gets fresh headers, not two copies.
            if !HEADERS.contains(&k.as_str()) {
                headers.push((k.as_str(), v.as_slice()));
            }
        }
        let out = Outgoing {
            key: record.key.as_deref().unwrap_or_default(),
            payload: record.payload.as_deref().unwrap_or_default(),
            headers: &headers,
        };
        self.producer.send(&self.topic, out).await
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
