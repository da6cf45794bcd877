//! `imbridge replay --conversation KEY --since TIME`, IM → legacy half: re-applies one conversation's IM events
//! through the very [`LegacyApplier`] the service runs (same batching, same `Idempotency-Key` per event), so the
//! legacy side answers `409` for what it already has and applies only what it lacks.
//!
//! The records come from [`imbridge_kafka::replay::key`]: the conversation's partition of the IM events topic,
//! from the offset for the time up to the group's committed offset (later records belong to the running
//! group). No consumer group is joined and nothing is committed; metrics go to a private registry.

use imbridge_core::ConversationKey;
use imbridge_core::topics::TopicNames;
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::replay::KeyReplay;
use imbridge_legacy::{ApplyClient, ApplyConfig, RetryPolicy};
use imbridge_telemetry::{Readiness, counter_sum};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{LegacyApplier, Metrics, ToLegacyConfig, ToLegacyError};

/// What a conversation replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Range, counts and where it stopped.
    pub key: KeyReplay,
    /// Events legacy applied now (it did not have them).
    pub applied: u64,
    /// Events legacy already had (`409`): nothing changed.
    pub duplicate: u64,
}

/// Re-applies `conversation`'s IM events written at or after `since_ms` (Unix ms). See the module docs.
pub async fn conversation(
    config: &ToLegacyConfig,
    kafka: &KafkaConfig,
    topics: &TopicNames,
    conversation: &ConversationKey,
    since_ms: i64,
) -> Result<Replayed, ToLegacyError> {
    config.validate()?;
    let registry = Registry::new();
    let metrics = Metrics::new(&registry)?;
    let mut apply = ApplyConfig::new(config.apply_url.clone(), config.apply_secret.clone());
    apply.timeout_ms = config.request_timeout_ms;
    apply.connect_timeout_ms = config.connect_timeout_ms;
    // As in the service: the handler retries itself through `send_once`.
    apply.retry = RetryPolicy { max_attempts: 1, ..config.retry.clone() };
    let client = ApplyClient::new(apply, &registry)?;
    let handler = LegacyApplier::new(
        client,
        config.retry.clone(),
        config.batch_max_events,
        metrics.clone(),
        Readiness::new(),
        CancellationToken::new(),
    );
    info!(conversation = %conversation, group = %config.group_id, topic = %topics.im_events, "replaying a conversation to legacy");
    let key = imbridge_kafka::replay::key(
        kafka,
        &config.group_id,
        &topics.im_events,
        conversation.as_str().as_bytes(),
        since_ms,
        handler.as_ref(),
        &config.consumer.retry,
    )
    .await?;
    let count = |outcome: &str| counter_sum(&metrics.events, "outcome", outcome);
    let out = Replayed { applied: count("applied"), duplicate: count("duplicate"), key };
    info!(
        matched = out.key.matched,
        applied = out.applied,
        duplicate = out.duplicate,
        "conversation replayed to legacy"
    );
    Ok(out)
}
