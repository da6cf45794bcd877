//! Every line of rdkafka in imbridge lives in this crate.
//!
//! - [`config`]: broker address, pass-through librdkafka settings (`kafka.*`), consumer and retry settings;
//! - [`producer`]: the idempotent producer (`acks=all`, `enable.idempotence=true`, Java-compatible
//!   `murmur2_random` partitioner) that returns only after the broker acknowledged a write;
//! - [`partitioner`]: Kafka's murmur2 in Rust, to predict a key's partition (replay, tests);
//! - [`admin`]: topic creation with configured partition counts, watermarks, group offsets;
//! - [`consumer`]: the ordered consumer runner — per-key serial lanes, contiguous-prefix offset storage,
//!   commit on revoke and shutdown, bounded everything, per-partition lag from librdkafka's statistics;
//! - [`dismissals`]: [`dismissals::DismissalNotices`], a service's own group dismissals announced to ingest;
//! - [`dlq`]: the dead-letter producer and its header contract;
//! - [`replay`]: resetting a stopped consumer group to an offset, a time or the beginning, or re-applying one key
//!   from a time through a handler;
//! - [`reader`]: reading a topic range without a consumer group (DLQ tools, replay, ledgers);
//! - [`topology`]: every topic imbridge creates, with one spec each (partitions, retention, compaction);
//! - [`bench`]: `imbridge bench kafka`, our producer → ordered consumer beside Kafka's own perf tools.

pub mod admin;
pub mod bench;
pub mod config;
pub mod consumer;
pub mod dismissals;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod partitioner;
pub mod producer;
pub mod reader;
pub mod record;
pub mod replay;
pub mod topology;

pub use config::{ConsumerConfig, KafkaConfig, RetryPolicy};
pub use consumer::{Handler, OrderedConsumer};
pub use error::KafkaError;
pub use producer::{Delivery, Producer};
pub use record::{BatchOutcome, Outcome, Record};
