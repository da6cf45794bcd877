//! Recognising imbridge's own group dismissals.
//!
//! IM's `Group.CallbackAfterGroupDestroyed` carries no `Operator_Account`, so the callback for a `destroy_group`
//! that to-im made on legacy's behalf looks exactly like one made by any other backend through the REST API.
//! to-im therefore announces each dismissal on the compacted `imbridge.conversations` topic
//! (`dismissed_by_imbridge`) and waits for Kafka's acknowledgement *before* calling IM. This module follows that
//! topic; when a REST-caused dismissal callback arrives it looks for a matching announcement — waiting a moment,
//! since the callback can outrun the follower by a few milliseconds — and the callback is an echo if one exists.
//!
//! An announcement matches a callback of the same group received at most [`WINDOW_MS`] after it (or [`SKEW_MS`]
//! before it: to-im's and ingest's clocks may differ a little). Receipt time is used, not IM's `EventTime`, so both
//! times come from imbridge's own hosts. A match is used once, so a group re-created and
//! dismissed again by someone else later is not mistaken for imbridge's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::state::ConversationState;
use imbridge_kafka::reader::{Followed, follow_forever};
use imbridge_kafka::{KafkaConfig, KafkaError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long after an announcement its callback may arrive.
pub const WINDOW_MS: i64 = 10 * 60 * 1000;
/// How far ingest's clock may run behind to-im's.
pub const SKEW_MS: i64 = 60 * 1000;

/// Announced dismissals by group id (announcement time, Unix ms).
#[derive(Debug, Default)]
pub struct ExpectedDismissals {
    by_group: Mutex<HashMap<String, i64>>,
}

impl ExpectedDismissals {
    /// Follows `topic` in the background until `shutdown`; restarts from the beginning after a failure.
    pub fn follow(self: &Arc<Self>, kafka: KafkaConfig, topic: String, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let retry_after = |failures: u32, e: &KafkaError| {
                // At start-up the topic may simply not be created yet (ingest's own probe creates it).
                if failures > 3 {
                    warn!(topic = %topic, error = %e, "cannot follow conversation states for dismissal echoes; retrying");
                } else {
                    debug!(topic = %topic, error = %e, "conversation states not readable yet; retrying");
                }
                Duration::from_secs(2)
            };
            follow_forever(&kafka, &topic, &shutdown, retry_after, |f| {
                let Followed::Record(r) = f else { return };
                let state = r.payload.as_deref().and_then(|p| serde_json::from_slice::<ConversationState>(p).ok());
                if let Some(s) = state
                    && let (Some(g), Some(at)) = (s.conversation.group_id(), s.dismissed_by_imbridge)
                {
                    me.announce(g.as_str(), at.as_millis());
                }
            })
            .await;
        });
    }

    pub fn announce(&self, group: &str, at_ms: i64) {
        if let Ok(mut m) = self.by_group.lock() {
            m.insert(group.to_owned(), at_ms);
            // Bounded: announcements older than the window can never match again.
            if m.len() > 10_000 {
                let newest = m.values().copied().max().unwrap_or_default();
                m.retain(|_, t| newest - *t <= WINDOW_MS);
            }
        }
    }

    fn take(&self, group: &str, event_time_ms: i64) -> bool {
        let Ok(mut m) = self.by_group.lock() else { return false };
        match m.get(group) {
            Some(at) if event_time_ms >= *at - SKEW_MS && event_time_ms <= *at + WINDOW_MS => {
                m.remove(group);
                true
            }
            _ => false,
        }
    }

    /// Whether the dismissal of `group` at `event_time_ms` was imbridge's, waiting up to `wait` for the
    /// announcement to be read.
    pub async fn is_own(&self, group: &str, event_time_ms: i64, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.take(group, event_time_ms) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_announcement_matches_once_within_its_window() {
        let d = ExpectedDismissals::default();
        d.announce("g", 1_000_000);
        assert!(!d.is_own("other", 1_000_100, Duration::ZERO).await);
        assert!(!d.is_own("g", 1_000_000 + WINDOW_MS + 1, Duration::ZERO).await, "too late");
        assert!(d.is_own("g", 1_000_000 - 5_000, Duration::ZERO).await, "clock skew tolerated");
        assert!(!d.is_own("g", 1_000_100, Duration::ZERO).await, "used once");
    }

    #[tokio::test]
    async fn waits_for_a_late_announcement() {
        let d = Arc::new(ExpectedDismissals::default());
        let d2 = d.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            d2.announce("g", 5_000);
        });
        assert!(d.is_own("g", 5_010, Duration::from_secs(2)).await);
    }
}
