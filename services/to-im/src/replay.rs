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
//! The replay uses its own IM client at the configured rates (not the running instances' shares) and a private
//! metrics registry; it joins no consumer group and commits nothing.

use std::sync::Arc;
use std::time::Duration;

use imbridge_core::ConversationKey;
use imbridge_im::ImClient;
use imbridge_kafka::Producer;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::replay::KeyReplay;
use imbridge_telemetry::{Readiness, counter_sum};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::ToImError;
use crate::live::{Applier, ConversationStates, DismissalNotices, Ledger, LiveHandler, LiveMetrics};
use crate::service::ServiceConfig;

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

/// Re-applies `conversation`'s legacy events written at or after `since_ms` (Unix ms). See the module docs.
pub async fn conversation(
    cfg: &ServiceConfig,
    conversation: &ConversationKey,
    since_ms: i64,
) -> Result<Replayed, ToImError> {
    cfg.to_im.live.validate()?;
    let topics = &cfg.topics;
    let live = &cfg.to_im.live;
    let registry = Registry::new();
    let im = ImClient::new(&cfg.im, &registry)?;
    let metrics = LiveMetrics::new(&registry).map_err(|e| ToImError::Config(format!("metrics: {e}")))?;
    let admin = Admin::new(&cfg.kafka)?;
    let ledger_partitions = admin.partition_count(&topics.applied).await?;
    if ledger_partitions == 0 {
        // No ledger topic means to-im never ran: nothing was applied, so there is nothing to re-apply safely.
        return Err(ToImError::Config(format!(
            "the applied ledger {} does not exist: has to-im ever run?",
            topics.applied
        )));
    }
    let producer = Producer::new(&cfg.kafka)?;
    let stop = CancellationToken::new();
    let states = ConversationStates::spawn(cfg.kafka.clone(), topics.conversations.clone(), stop.child_token());
    let ledger = Arc::new(Ledger::new(
        cfg.kafka.clone(),
        producer.clone(),
        topics.applied.clone(),
        ledger_partitions,
        topics.legacy_events.clone(),
        metrics.clone(),
    ));
    let applier =
        Applier::new(im, live.c2c_api, live.import_unknown_accounts, live.history_check_slack_secs, metrics.clone())
            .with_dismissal_notices(DismissalNotices::new(producer.clone(), topics.conversations.clone()));
    let handler = LiveHandler::new(
        topics.legacy_events.clone(),
        ledger.clone(),
        states,
        applier,
        metrics.clone(),
        Readiness::new(),
        None,
    );
    info!(conversation = %conversation, group = %live.group_id, topic = %topics.legacy_events, "replaying a conversation to IM");
    let result = imbridge_kafka::replay::key(
        &cfg.kafka,
        &live.group_id,
        &topics.legacy_events,
        conversation.as_str().as_bytes(),
        since_ms,
        &handler,
        &live.consumer.retry,
    )
    .await;
    ledger.revoke_all();
    stop.cancel();
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        warn!(error = %e, "producer flush after the replay failed");
    }
    let key = result?;
    let count = |outcome: &str| counter_sum(&metrics.events, "outcome", outcome);
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
