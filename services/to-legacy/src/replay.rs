//! `imbridge replay --conversation KEY --since TIME`, IM → legacy half: re-applies one conversation's IM events
//! through the very [`LegacyApplier`] the service runs (same batching, same `Idempotency-Key` per event), so the
//! legacy side answers `409` for what it already has and applies only what it lacks.
//!
//! The records come from [`imbridge_kafka::replay::key`]: the conversation's partition of the IM events topic,
//! from the offset for the time up to the group's committed offset (later records belong to the running
//! group). No consumer group is joined and nothing is committed; the to-legacy it builds has a private registry.

use imbridge_core::ConversationKey;
use imbridge_kafka::replay::KeyReplay;
use imbridge_runtime::{Deps, Service};
use imbridge_telemetry::counter_sum;
use tracing::info;

use crate::{ToLegacy, ToLegacyConfig, ToLegacyError};

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

/// Re-applies `conversation`'s IM events written at or after `since_ms` (Unix ms), with the applier of a
/// to-legacy built from `config` and `deps` (detached: its own registry and shutdown). See the module docs.
pub async fn conversation(
    config: ToLegacyConfig,
    deps: &Deps,
    conversation: &ConversationKey,
    since_ms: i64,
) -> Result<Replayed, ToLegacyError> {
    let deps = deps.detached();
    let service = ToLegacy::build(config, &deps).await?;
    let handler = service.applier(None);
    let (cfg, topic) = (service.config(), &deps.topics.im_events);
    info!(conversation = %conversation, group = %cfg.group_id, topic = %topic, "replaying a conversation to legacy");
    let key = imbridge_kafka::replay::key(
        &deps.kafka,
        &cfg.group_id,
        topic,
        conversation.as_str().as_bytes(),
        since_ms,
        handler.as_ref(),
        &cfg.consumer.retry,
    )
    .await;
    deps.shutdown.cancel();
    let key = key?;
    let count = |outcome: &str| counter_sum(&service.metrics().events, "outcome", outcome);
    let out = Replayed { applied: count("applied"), duplicate: count("duplicate"), key };
    info!(
        matched = out.key.matched,
        applied = out.applied,
        duplicate = out.duplicate,
        "conversation replayed to legacy"
    );
    Ok(out)
}
