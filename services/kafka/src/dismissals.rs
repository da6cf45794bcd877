//! [`DismissalNotices`]: where a service that destroys groups (to-im on the new app; to-legacy on an old IM
//! app) announces its own dismissals on `imbridge.conversations`, so ingest drops the callback IM sends back
//! for them (`Group.CallbackAfterGroupDestroyed` names no operator; see `imbridge_core::state`).

use std::future::Future;
use std::pin::Pin;

use imbridge_core::apply::AnnounceDismissal;
use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::{ConversationKey, GroupId, TimestampMs};

use crate::producer::{Outgoing, Producer};

/// Announces dismissals on the conversations topic.
#[derive(Debug, Clone)]
pub struct DismissalNotices {
    producer: Producer,
    topic: String,
}

impl DismissalNotices {
    pub fn new(producer: Producer, conversations_topic: impl Into<String>) -> Self {
        Self { producer, topic: conversations_topic.into() }
    }
}

impl AnnounceDismissal for DismissalNotices {
    /// Written (and acknowledged) before `destroy_group`, so ingest can know it by the time the callback comes.
    fn announce<'a>(&'a self, group: &'a GroupId) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let conversation = ConversationKey::group(group);
            let now = TimestampMs::now();
            let state = ConversationState {
                conversation: conversation.clone(),
                phase: Phase::Live,
                updated_at: now,
                run_id: None,
                dismissed_by_imbridge: Some(now),
            };
            // Plain data with string keys: serializing cannot fail.
            let payload = serde_json::to_vec(&state).unwrap_or_default();
            let out = Outgoing { key: conversation.as_str().as_bytes(), payload: &payload, headers: &[] };
            self.producer.send(&self.topic, out).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}
