//! The idempotent, acknowledged producer.
//!
//! `send` returns only after the broker acknowledged the write with `acks=all`, so a caller that answers its
//! own client after `send` (ingest answering a webhook) never acknowledges something Kafka does not have.
//! Idempotence keeps per-partition order even when librdkafka retries internally.

use std::time::Duration;

use imbridge_core::Envelope;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::config::KafkaConfig;
use crate::error::KafkaError;

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// A cheap-to-clone handle on one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// One record to produce.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl Producer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let inner: FutureProducer = cfg.producer_config()?.create()?;
        Ok(Self { inner })
    }

    /// Produces one record and waits for the broker's acknowledgement.
    pub async fn send(&self, topic: &str, out: Outgoing<'_>) -> Result<Delivery, KafkaError> {
        let fut = self.enqueue(topic, out).await?;
        Self::await_delivery(topic, fut).await
    }

    /// Produces one record into an explicit partition (not the key's), waiting for the acknowledgement. For
    /// records that must sit beside another topic's partition, e.g. the applied-events ledger, whose entries
    /// share their source event's partition number so one partition's entries can be loaded alone.
    pub async fn send_to_partition(
        &self,
        topic: &str,
        partition: i32,
        out: Outgoing<'_>,
    ) -> Result<Delivery, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
        for (k, v) in out.headers {
            headers = headers.insert(Header { key: k, value: Some(*v) });
        }
        let mut record =
            FutureRecord::to(topic).partition(partition).key(out.key).payload(out.payload).headers(headers);
        let fut = loop {
            match self.inner.send_result(record) {
                Ok(f) => break f,
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(KafkaError::Delivery { topic: topic.to_owned(), source: e }),
            }
        };
        Self::await_delivery(topic, fut).await
    }

    /// Produces an envelope keyed by its conversation.
    pub async fn send_envelope(&self, topic: &str, env: &Envelope) -> Result<Delivery, KafkaError> {
        let payload = env.to_json();
        self.send(topic, Outgoing { key: env.conversation.as_str().as_bytes(), payload: &payload, headers: &[] }).await
    }

    /// Produces many envelopes: enqueued in order (so per-key order holds), then all acknowledgements awaited.
    /// Fails if any write failed; the caller answers its client only on `Ok`.
    pub async fn send_envelopes(&self, topic: &str, envs: &[Envelope]) -> Result<Vec<Delivery>, KafkaError> {
        let mut futs = Vec::with_capacity(envs.len());
        for env in envs {
            let payload = env.to_json();
            let out = Outgoing { key: env.conversation.as_str().as_bytes(), payload: &payload, headers: &[] };
            futs.push(self.enqueue(topic, out).await?);
        }
        let mut out = Vec::with_capacity(futs.len());
        for f in futs {
            out.push(Self::await_delivery(topic, f).await?);
        }
        Ok(out)
    }

    /// Puts a record on librdkafka's queue, waiting (not failing) while that queue is full.
    pub async fn enqueue(&self, topic: &str, out: Outgoing<'_>) -> Result<DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
        for (k, v) in out.headers {
            headers = headers.insert(Header { key: k, value: Some(*v) });
        }
        let mut record = FutureRecord::to(topic).key(out.key).payload(out.payload).headers(headers);
        loop {
            match self.inner.send_result(record) {
                Ok(f) => return Ok(f),
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(KafkaError::Delivery { topic: topic.to_owned(), source: e }),
            }
        }
    }

    /// Waits for one enqueued record's acknowledgement.
    pub async fn await_delivery(topic: &str, fut: DeliveryFuture) -> Result<Delivery, KafkaError> {
        match fut.await {
            Ok(Ok(d)) => Ok(Delivery { partition: d.partition, offset: d.offset }),
            Ok(Err((e, _))) => Err(KafkaError::Delivery { topic: topic.to_owned(), source: e }),
            Err(_) => {
                Err(KafkaError::Delivery { topic: topic.to_owned(), source: rdkafka::error::KafkaError::Canceled })
            }
        }
    }

    /// Waits until everything enqueued is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout).map_err(KafkaError::from)
    }
}
