//! The shared broker as the scenarios use it: its configuration, topic names no other test uses, the topics
//! the services would create, producing envelopes and conversation states, reading a topic back, and lag.

use std::sync::{Arc, Mutex};

use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::topics::{Topic, TopicNames};
use imbridge_core::{ConversationKey, Envelope, TimestampMs};
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{KafkaConfig, Producer, Record};
pub use imbridge_testkit::unique_topics;

/// The shared test broker (`KAFKA_BOOTSTRAP`).
pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

/// Creates the topics the services would create at start (their own specs, `Topic::spec`), so a scenario can
/// produce before they run. The DLQ gets `dlq_partitions`: 3 as its schema says (what the services check), or
/// the event topics' count where the importer runs, which insists on `partitions` for it too.
pub async fn create_topics(t: &TopicNames, dlq_partitions: i32) {
    let dlq = TopicSpec { partitions: dlq_partitions, ..Topic::Dlq.spec(t) };
    Admin::new(&kafka())
        .expect("admin")
        .ensure_topics(&[
            Topic::LegacyEvents.spec(t),
            Topic::ImEvents.spec(t),
            dlq,
            Topic::Applied.spec(t),
            Topic::Conversations.spec(t),
        ])
        .await
        .expect("create topics");
}

/// Produces envelopes in order (per-key order holds); returns (partition, offset) of each.
pub async fn produce(topic: &str, envs: &[Envelope]) -> Vec<(i32, i64)> {
    let p = Producer::new(&kafka()).expect("producer");
    p.send_envelopes(topic, envs).await.expect("produce").into_iter().map(|d| (d.partition, d.offset)).collect()
}

/// Produces one raw record (a poison record, say) to `topic` on the broker of `kafka`.
pub async fn produce_raw(kafka: &KafkaConfig, topic: &str, key: &[u8], payload: &[u8]) {
    let p = Producer::new(kafka).expect("producer");
    p.send(topic, Outgoing { key, payload, headers: &[] }).await.expect("record produced");
}

/// Writes a conversation state record, as the importer and the import apply do.
pub async fn set_phase(topic: &str, conversation: &ConversationKey, phase: Phase) {
    let state = ConversationState {
        conversation: conversation.clone(),
        phase,
        updated_at: TimestampMs::now(),
        run_id: Some("test".into()),
        dismissed_by_imbridge: None,
    };
    let payload = serde_json::to_vec(&state).expect("json");
    produce_raw(&kafka(), topic, conversation.as_str().as_bytes(), &payload).await;
}

/// What `f` makes of every record of `topic` on the shared broker, partition by partition.
pub async fn read_all<T: Send + 'static>(topic: &str, f: impl Fn(Record) -> T + Send + 'static) -> Vec<T> {
    let out: Arc<Mutex<Vec<T>>> = Default::default();
    let sink = out.clone();
    read_range(&kafka(), topic, None, Start::Earliest, move |r| {
        sink.lock().expect("lock").push(f(r));
        true
    })
    .await
    .expect("read topic");
    std::mem::take(&mut *out.lock().expect("lock"))
}

/// Every envelope of `topic`.
pub async fn envelopes(topic: &str) -> Vec<Envelope> {
    read_all(topic, |r| r.envelope().expect("envelope")).await
}

/// Records of `topic` not yet committed by `group` (every partition; a group that never committed counts all;
/// `i64::MAX` while the broker does not answer).
pub async fn lag(group: &str, topic: &str) -> i64 {
    let admin = Admin::new(&kafka()).expect("admin");
    match admin.offsets(topic, Some(group)).await {
        Ok(ps) => ps.iter().map(|p| p.lag()).sum(),
        Err(_) => i64::MAX,
    }
}
