//! History first: an in-memory mirror of the compacted `imbridge.conversations` topic, and the wait it gates.
//!
//! The importer writes `importing` for a conversation before producing its history; to-im's import apply
//! writes `live` when it handled the conversation's `import.conversation_done`, i.e. after the whole history
//! was applied. A conversation with no record is live. A live event of an `importing` conversation waits inside
//! its own lane (so only that conversation waits; others keep flowing) and spends no retry attempt: Kafka holds
//! everything that happens meanwhile, and the lane applies it in order once the state turns `live`.
//!
//! The mirror reads the topic from the beginning, then follows it
//! ([`imbridge_kafka::reader::follow_forever`]). Until it has caught up with what existed at start no phase is
//! known, so every live write waits for that too — never guess `live` for a conversation whose `importing` record
//! simply has not been read yet.
//!
//! Waiting lanes hold their records in flight: if more than the consumer's `max_in_flight` events pile up
//! behind importing conversations, polling pauses (counted as backpressure) until imports finish. Nothing is
//! lost and nothing is reordered; a revoke or shutdown meanwhile waits at most the consumer's drain deadline.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use imbridge_core::ConversationKey;
use imbridge_core::state::{ConversationState, Phase};
use imbridge_kafka::reader::{Followed, follow_forever};
use imbridge_kafka::{KafkaConfig, KafkaError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The phases of every conversation that has a record, kept current.
#[derive(Debug)]
pub struct ConversationStates {
    phases: RwLock<HashMap<String, Phase>>,
    /// Bumped on every change and when the first catch-up completes: waiters re-check on it.
    version: watch::Sender<u64>,
    caught_up: watch::Sender<bool>,
}

/// How a wait for history ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The conversation is live; `waited` is how long the caller waited (zero when it was live at once).
    Live { waited: Duration },
    /// The caller's token fired first (its partition was revoked, or the service is stopping).
    Cancelled,
}

impl Default for ConversationStates {
    fn default() -> Self {
        Self {
            phases: RwLock::new(HashMap::new()),
            version: watch::Sender::new(0),
            caught_up: watch::Sender::new(false),
        }
    }
}

impl ConversationStates {
    /// Starts mirroring `topic` in the background until `shutdown`.
    pub fn spawn(kafka: KafkaConfig, topic: String, shutdown: CancellationToken) -> Arc<Self> {
        let states = Arc::new(Self::default());
        let s = states.clone();
        tokio::spawn(async move { s.mirror(kafka, topic, shutdown).await });
        states
    }

    /// Follows the topic; on any failure starts over from the beginning (applying a record twice is harmless).
    async fn mirror(&self, kafka: KafkaConfig, topic: String, shutdown: CancellationToken) {
        let started = Instant::now();
        let retry_after = |failures: u32, e: &KafkaError| {
            warn!(topic = %topic, error = %e, attempt = failures, "cannot follow the conversation states; retrying");
            Duration::from_millis((200u64 << failures.min(6)).min(10_000))
        };
        follow_forever(&kafka, &topic, &shutdown, retry_after, |f| match f {
            Followed::Record(r) => {
                let Some(key) = r.key_str().map(str::to_owned) else { return };
                match r.payload.as_deref() {
                    None => self.set(&key, None),
                    Some(bytes) => match serde_json::from_slice::<ConversationState>(bytes) {
                        Ok(s) => self.set(s.conversation.as_str(), Some(s.phase)),
                        Err(e) => warn!(key = %key, error = %e, "ignoring an unreadable conversation state"),
                    },
                }
            }
            Followed::CaughtUp => {
                if !*self.caught_up.borrow() {
                    let (importing, live) = self.counts();
                    info!(importing, live, ms = started.elapsed().as_millis() as u64, "conversation states loaded");
                }
                self.caught_up.send_replace(true);
                self.version.send_modify(|v| *v += 1);
            }
        })
        .await;
    }

    fn set(&self, key: &str, phase: Option<Phase>) {
        if let Ok(mut m) = self.phases.write() {
            match phase {
                Some(p) => m.insert(key.to_owned(), p),
                None => m.remove(key),
            };
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Whether everything that existed at start-up has been read.
    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// The conversation's phase as known now (no record = live).
    pub fn phase(&self, conversation: &ConversationKey) -> Phase {
        self.phases.read().ok().and_then(|m| m.get(conversation.as_str()).copied()).unwrap_or(Phase::Live)
    }

    /// Conversations with a record, by phase: (importing, live).
    pub fn counts(&self) -> (usize, usize) {
        self.phases
            .read()
            .map(|m| {
                let importing = m.values().filter(|p| **p == Phase::Importing).count();
                (importing, m.len() - importing)
            })
            .unwrap_or_default()
    }

    /// Waits until the states are loaded and `conversation` is live, or `cancel` fires.
    pub async fn wait_live(&self, conversation: &ConversationKey, cancel: &CancellationToken) -> WaitOutcome {
        let started = Instant::now();
        let mut rx = self.version.subscribe();
        loop {
            // Marked seen before checking, so a change between the check and the wait wakes us.
            rx.borrow_and_update();
            if self.is_caught_up() && self.phase(conversation) == Phase::Live {
                return WaitOutcome::Live { waited: started.elapsed() };
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return WaitOutcome::Cancelled },
                _ = cancel.cancelled() => return WaitOutcome::Cancelled,
            }
        }
    }

    /// Applies a state directly (tests of the gate without a broker).
    #[cfg(test)]
    fn apply_for_test(&self, key: &str, phase: Option<Phase>, caught_up: bool) {
        self.set(key, phase);
        if caught_up {
            self.caught_up.send_replace(true);
            self.version.send_modify(|v| *v += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_caught_up_and_live() {
        let s = Arc::new(ConversationStates::default());
        let c = ConversationKey::parse("group:g1").expect("key");
        let other = ConversationKey::parse("group:g2").expect("key");
        let cancel = CancellationToken::new();
        s.apply_for_test("group:g1", Some(Phase::Importing), false);
        let waiter = {
            let (s, c, cancel) = (s.clone(), c.clone(), cancel.clone());
            tokio::spawn(async move { s.wait_live(&c, &cancel).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "nothing is known before the catch-up");
        s.apply_for_test("group:g2", None, true);
        // g2 has no record: live at once; g1 still importing.
        assert!(matches!(s.wait_live(&other, &cancel).await, WaitOutcome::Live { .. }));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "g1 is importing");
        assert_eq!(s.counts(), (1, 0));
        s.apply_for_test("group:g1", Some(Phase::Live), false);
        match waiter.await.expect("join") {
            WaitOutcome::Live { waited } => assert!(waited >= Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
        s.apply_for_test("group:g1", Some(Phase::Importing), false);
        let cancelled = {
            let (s, c, cancel) = (s.clone(), c.clone(), cancel.clone());
            tokio::spawn(async move { s.wait_live(&c, &cancel).await })
        };
        cancel.cancel();
        assert_eq!(cancelled.await.expect("join"), WaitOutcome::Cancelled);
    }
}
