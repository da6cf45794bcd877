//! Shared pieces of to-legacy's tests: IM-origin envelopes as ingest writes them, produced to a topic of the
//! test's own on the real broker, a to-legacy started in-process, and reading the DLQ back.

use std::sync::{Arc, Mutex};

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupMessage, GroupType, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::export::GroupProfile;
use imbridge_core::topics::TopicNames;
use imbridge_core::{ConversationKey, Element, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_kafka::consumer::RunStats;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{ConsumerConfig, KafkaConfig, Producer, Record, RetryPolicy};
use imbridge_legacy::SigningSecret;
use imbridge_runtime::{Deps, Running, Service};
use imbridge_to_legacy::{ToLegacy, ToLegacyConfig, ToLegacyError};
use tokio_util::sync::CancellationToken;

pub const APPLY_SECRET: &str = "apply-secret";

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

pub fn topics() -> TopicNames {
    TopicNames {
        im_events: imbridge_testkit::unique("tolegacy-im"),
        dlq: imbridge_testkit::unique("tolegacy-dlq"),
        applied: imbridge_testkit::unique("tolegacy-applied"),
        partitions: 3,
        ..TopicNames::default()
    }
}

/// A to-legacy config for tests: fast retries, short drain, its own group.
pub fn config(apply_url: &str) -> ToLegacyConfig {
    ToLegacyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        group_id: imbridge_testkit::unique("tolegacy-group"),
        apply_url: apply_url.to_owned(),
        apply_secret: SigningSecret::new(APPLY_SECRET),
        request_timeout_ms: 3_000,
        retry: imbridge_legacy::RetryPolicy {
            max_attempts: 2,
            initial_backoff_ms: 20,
            max_backoff_ms: 100,
            max_retry_after_ms: 5_000,
        },
        consumer: ConsumerConfig {
            drain_timeout_ms: 5_000,
            session_timeout_ms: 10_000,
            retry: RetryPolicy { max_attempts: 10, base_backoff_ms: 20, max_backoff_ms: 200 },
            ..ConsumerConfig::default()
        },
        readiness_interval_ms: 200,
        // These tests give to-legacy no IM client, so an open group seq gap is skipped after the wait rather than
        // read from IM; a short wait keeps them fast (gap fill itself is tested with an IM emulator elsewhere).
        // A group legacy refuses is held 2 s for its creation before it is dead-lettered: long enough to be seen
        // held, short enough for the parking test.
        order: imbridge_to_legacy::order::OrderConfig {
            gap_wait_ms: 100,
            unknown_group_hold_ms: 2_000,
            ..Default::default()
        },
        ..ToLegacyConfig::default()
    }
}

/// Deps without IM credentials (group seq gaps are skipped, not read from IM), and their registry.
pub fn deps(topics: &TopicNames) -> (Deps, prometheus::Registry) {
    let d = Deps::new(kafka(), topics.clone(), imbridge_im::ImConfig::default());
    let registry = d.registry.clone();
    (d, registry)
}

/// Builds and starts to-legacy as the binary does; it stops when `stop` fires.
pub async fn start(
    config: ToLegacyConfig,
    deps: Deps,
    stop: CancellationToken,
) -> Result<Running<RunStats, ToLegacyError>, ToLegacyError> {
    ToLegacy::build(config, &deps.with_shutdown(stop)).await?.start().await
}

pub fn u(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

pub fn g(s: &str) -> GroupId {
    GroupId::parse(s).expect("group id")
}

pub fn text(t: &str) -> Vec<Element> {
    vec![Element::Text { text: t.to_owned() }]
}

fn env(id: EventId, event: Event) -> Envelope {
    let t = TimestampMs::now();
    Envelope { id, source: Source::Im, conversation: event.conversation(), time: t, recorded_at: Some(t), event }
}

/// A 1:1 message as ingest normalizes `C2C.CallbackAfterSendMsg` (id from the sender and MsgKey).
pub fn c2c(from: &str, to: &str, seq: u32, body: &str) -> Envelope {
    let msg_key = format!("{seq}_{}_{}", 1000 + seq, 1_700_000_000 + seq);
    env(
        EventId::im_c2c(&u(from), &msg_key),
        Event::C2cMessage(C2cMessage { from: u(from), to: u(to), body: text(body), custom_data: None }),
    )
}

pub fn group_msg(group: &str, from: &str, seq: u64, body: &str) -> Envelope {
    env(
        EventId::im_group_message(&g(group), seq),
        Event::GroupMessage(GroupMessage { group_id: g(group), from: u(from), body: text(body), custom_data: None }),
    )
}

pub fn group_event(group: &str, command: &str, at: i64, event: Event) -> Envelope {
    env(EventId::im_group_event(&g(group), command, at, format!("{event:?}").as_bytes()), event)
}

pub fn created(group: &str, owner: &str, members: &[&str], at: i64) -> Envelope {
    group_event(
        group,
        "Group.CallbackAfterCreateGroup",
        at,
        Event::GroupCreated(GroupCreated {
            group_id: g(group),
            group_type: GroupType::Public,
            profile: GroupProfile { owner: Some(u(owner)), ..GroupProfile::named(format!("{group} name")) },
            members: members.iter().map(|m| u(m)).collect(),
        }),
    )
}

pub fn renamed(group: &str, name: &str, at: i64) -> Envelope {
    group_event(
        group,
        "Group.CallbackAfterGroupInfoChanged",
        at,
        Event::GroupUpdated(GroupUpdated {
            group_id: g(group),
            operator: None,
            name: Some(name.to_owned()),
            introduction: None,
            notification: None,
            face_url: None,
        }),
    )
}

pub fn joined(group: &str, members: &[&str], at: i64) -> Envelope {
    group_event(
        group,
        "Group.CallbackAfterNewMemberJoin",
        at,
        Event::MembersJoined(MembersJoined {
            group_id: g(group),
            members: members.iter().map(|m| u(m)).collect(),
            operator: None,
        }),
    )
}

pub fn left(group: &str, members: &[&str], at: i64) -> Envelope {
    group_event(
        group,
        "Group.CallbackAfterMemberExit",
        at,
        Event::MembersLeft(MembersLeft {
            group_id: g(group),
            members: members.iter().map(|m| u(m)).collect(),
            reason: Some(imbridge_core::event::LeaveReason::Quit),
            operator: None,
        }),
    )
}

/// Produces envelopes in order (keyed by conversation), waiting for every acknowledgement.
pub async fn produce(topic: &str, envs: &[Envelope]) {
    let admin = imbridge_kafka::admin::Admin::new(&kafka()).expect("admin");
    admin.ensure_topics(&[imbridge_kafka::admin::TopicSpec::new(topic, 3)]).await.expect("topic");
    Producer::new(&kafka()).expect("producer").send_envelopes(topic, envs).await.expect("produced");
}

/// Produces raw bytes under a key (poison records).
pub async fn produce_raw(topic: &str, key: &ConversationKey, payload: &[u8]) {
    let p = Producer::new(&kafka()).expect("producer");
    p.send(topic, imbridge_kafka::producer::Outgoing { key: key.as_str().as_bytes(), payload, headers: &[] })
        .await
        .expect("produced");
}

pub async fn records(topic: &str) -> Vec<Record> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    read_range(&kafka(), topic, None, Start::Earliest, move |r| {
        sink.lock().expect("lock").push(r);
        true
    })
    .await
    .unwrap_or_default();
    out.lock().expect("lock").clone()
}
