//! Writes per-conversation migration state to the compacted `imbridge.conversations` topic.
//!
//! The importer records `importing` for every conversation and group it has history for before producing
//! that history; the import apply records `live` when it handles the conversation's
//! `import.conversation_done` marker (every earlier record of that key is applied by then: per-key order).
//! Live apply reads the topic to hold live writes back until then. Writes are acknowledged before they count.

use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::{KafkaError, Producer};

/// A producer for conversation state records.
#[derive(Debug, Clone)]
pub struct ConversationStates {
    producer: Producer,
    topic: String,
}

impl ConversationStates {
    pub fn new(producer: Producer, topic: impl Into<String>) -> Self {
        Self { producer, topic: topic.into() }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Records one conversation's phase, waiting for the broker's acknowledgement.
    pub async fn set(
        &self,
        conversation: &ConversationKey,
        phase: Phase,
        run_id: Option<&str>,
    ) -> Result<(), KafkaError> {
        self.set_many(std::slice::from_ref(conversation), phase, run_id).await
    }

    /// Records the same phase for many conversations: all enqueued in order, then all acknowledgements
    /// awaited (one round trip's latency for the lot, not one per conversation).
    pub async fn set_many(
        &self,
        conversations: &[ConversationKey],
        phase: Phase,
        run_id: Option<&str>,
    ) -> Result<(), KafkaError> {
        let now = TimestampMs::now();
        let mut pending = Vec::with_capacity(conversations.len());
        for c in conversations {
            let state = ConversationState {
                conversation: c.clone(),
                phase,
                updated_at: now,
                run_id: run_id.map(str::to_owned),
                dismissed_by_imbridge: None,
            };
            // Plain data with string keys: serializing cannot fail.
            let payload = serde_json::to_vec(&state).unwrap_or_default();
            let out = Outgoing { key: c.as_str().as_bytes(), payload: &payload, headers: &[] };
            pending.push(self.producer.enqueue(&self.topic, out).await?);
        }
        for f in pending {
            Producer::await_delivery(&self.topic, f).await?;
        }
        Ok(())
    }
}
