//! `imbridge replay --conversation KEY --since TIME`, legacy → IM half: re-applies one conversation's legacy
//! events through the very [`LiveHandler`] the service runs — ledger lookup, history gate, post-crash check,
//! apply, ledger entry — so a replay repeats nothing IM already has.
//!
//! The records come from [`imbridge_kafka::replay::key`]: the conversation's partition of the legacy events
//! topic, from the offset for the time up to the live group's committed offset. Every record below that offset
//! was applied and its ledger entry written before it was committed, and the ledger is loaded after the offset
//! was read, so an already-applied event is always recognised — even with the service running meanwhile.
//! What the replay does apply are events that were never recorded as applied (dead-lettered and then dropped
//! with `imbridge dlq drop`, or lost on IM's side and removed from the ledger by an operator).
//!
//! The replay builds its own to-im from the same configuration (so its own IM client at the configured rates, not
//! the running instances' shares, and a private metrics registry); it joins no consumer group and commits
//! nothing.

use imbridge_core::ConversationKey;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::replay::KeyReplay;
use imbridge_runtime::{Deps, Service};
use imbridge_telemetry::counter_sum;
use tracing::info;

use crate::error::ToImError;
use crate::service::{ToIm, ToImConfig};

/// What a conversation replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Range, counts and where it stopped.
    pub key: KeyReplay,
    /// Events sent to IM now (they had never been recorded as applied).
    pub applied: u64,
    /// Events already in the ledger: nothing sent.
    pub skipped: u64,
    /// Events found in IM's history though not in the ledger: recorded, nothing sent.
    pub recovered: u64,
}

/// Re-applies `conversation`'s legacy events written at or after `since_ms` (Unix ms), with the live handler of
/// a to-im built from `config` and `deps` (detached: its own registry and shutdown). See the module docs.
pub async fn conversation(
    config: ToImConfig,
    deps: &Deps,
    conversation: &ConversationKey,
    since_ms: i64,
) -> Result<Replayed, ToImError> {
    let deps = deps.detached();
    let ledger_partitions = Admin::new(&deps.kafka)?.partition_count(&deps.topics.applied).await?;
    if ledger_partitions == 0 {
        // No ledger topic means to-im never ran: nothing was applied, so there is nothing to re-apply safely.
        return Err(ToImError::Config(format!(
            "the applied ledger {} does not exist: has to-im ever run?",
            deps.topics.applied
        )));
    }
    let service = ToIm::build(config, &deps).await?;
    let live = service.live(ledger_partitions, None)?;
    let cfg = &service.config().live;
    let topic = &deps.topics.legacy_events;
    info!(conversation = %conversation, group = %cfg.group_id, topic = %topic, "replaying a conversation to IM");
    let result = imbridge_kafka::replay::key(
        &deps.kafka,
        &cfg.group_id,
        topic,
        conversation.as_str().as_bytes(),
        since_ms,
        live.handler.as_ref(),
        &cfg.consumer.retry,
    )
    .await;
    live.finish();
    deps.shutdown.cancel();
    let key = result?;
    let count = |outcome: &str| counter_sum(&service.metrics().events, "outcome", outcome);
    let out = Replayed { applied: count("applied"), skipped: count("skipped"), recovered: count("recovered"), key };
    info!(
        matched = out.key.matched,
        applied = out.applied,
        skipped = out.skipped,
        recovered = out.recovered,
        "conversation replayed to IM"
    );
    Ok(out)
}
