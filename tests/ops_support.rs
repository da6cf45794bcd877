//! What the `ops_*` scenarios (issue 6: replay, scaled groups, observability) share beyond the package's
//! library (ids, unique topics, lag, imbridge parts as real processes, `/metrics`): canonical events of both
//! origins, the two emulators in process (real HTTP), one configuration file for every part, and state
//! snapshots with a readable diff.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use imbridge_core::event::{C2cMessage, GroupCreated, GroupMessage, GroupType, GroupUpdated, MembersJoined};
use imbridge_core::topics::TopicNames;
use imbridge_core::{Envelope, Event, EventId, Source, TimestampMs};
pub use imbridge_e2e::*;
use imbridge_im_emulator::RunningEmulator;
use imbridge_kafka::Producer;
use imbridge_kafka::admin::Admin;
use imbridge_legacy_emulator::RunningLegacyEmulator;

/// The secret to-legacy signs apply requests with (the legacy emulator accepts it).
pub const APPLY_SECRET: &str = "ops-apply-secret";
/// The secret legacy webhooks are signed with (ingest checks it).
pub const WEBHOOK_SECRET: &str = "ops-webhook-secret";

fn envelope(id: EventId, source: Source, event: Event) -> Envelope {
    let t = TimestampMs::now();
    Envelope { id, source, conversation: event.conversation(), time: t, recorded_at: Some(t), event }
}

/// A legacy 1:1 message as ingest writes it.
pub fn legacy_c2c(id: &str, from: &str, to: &str, body: &str) -> Envelope {
    let event = Event::C2cMessage(C2cMessage { from: user(from), to: user(to), body: text(body), custom_data: None });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

pub fn legacy_group_created(id: &str, g: &str, owner: &str, members: &[&str]) -> Envelope {
    let event = Event::GroupCreated(GroupCreated {
        group_id: group(g),
        group_type: GroupType::Public,
        name: format!("{g} name"),
        owner: Some(user(owner)),
        introduction: None,
        notification: None,
        face_url: None,
        members: members.iter().map(|m| user(m)).collect(),
    });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

pub fn legacy_group_msg(id: &str, g: &str, from: &str, body: &str) -> Envelope {
    let event =
        Event::GroupMessage(GroupMessage { group_id: group(g), from: user(from), body: text(body), custom_data: None });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

pub fn legacy_group_joined(id: &str, g: &str, members: &[&str]) -> Envelope {
    let event = Event::MembersJoined(MembersJoined {
        group_id: group(g),
        members: members.iter().map(|m| user(m)).collect(),
        operator: None,
    });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

pub fn legacy_group_renamed(id: &str, g: &str, name: &str) -> Envelope {
    let event = Event::GroupUpdated(GroupUpdated {
        group_id: group(g),
        operator: None,
        name: Some(name.to_owned()),
        introduction: None,
        notification: None,
        face_url: None,
    });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

/// A 1:1 message seen on IM (`C2C.CallbackAfterSendMsg`, id from the sender and MsgKey) as ingest writes it.
pub fn im_c2c(from: &str, to: &str, seq: u32, body: &str) -> Envelope {
    let msg_key = format!("{seq}_{}_{}", 1000 + seq, 1_700_000_000 + seq);
    let event = Event::C2cMessage(C2cMessage { from: user(from), to: user(to), body: text(body), custom_data: None });
    envelope(EventId::im_c2c(&user(from), &msg_key), Source::Im, event)
}

/// Creates the topics the services would create at start (same partition counts and policies), so a
/// scenario can produce before they run.
pub async fn create_topics(t: &TopicNames) {
    use imbridge_kafka::admin::TopicSpec;
    Admin::new(&kafka())
        .expect("admin")
        .ensure_topics(&[
            TopicSpec::new(&t.legacy_events, t.partitions),
            TopicSpec::new(&t.im_events, t.partitions),
            TopicSpec::new(&t.dlq, 3),
            TopicSpec::new(&t.applied, t.partitions).with_config("cleanup.policy", "compact"),
            TopicSpec::new(&t.conversations, t.partitions).with_config("cleanup.policy", "compact"),
        ])
        .await
        .expect("create topics");
}

/// Produces envelopes in order (per-key order holds).
pub async fn produce(topic: &str, envs: &[Envelope]) {
    let p = Producer::new(&kafka()).expect("producer");
    p.send_envelopes(topic, envs).await.expect("produce");
}

/// An IM emulator on port 0 whose state can be snapshotted (`im_state`); `rate_limits` on as in IM.
pub async fn spawn_im(dir: &Path, rate_limits: bool) -> RunningEmulator {
    let cfg = imbridge_im_emulator::EmulatorConfig {
        state_file: Some(dir.join("im-state.json")),
        rate_limits_enabled: rate_limits,
        ..imbridge_im_emulator::EmulatorConfig::default()
    };
    imbridge_im_emulator::spawn(cfg).await.expect("im emulator")
}

/// A legacy emulator accepting [`APPLY_SECRET`] on its apply endpoint.
pub async fn spawn_legacy() -> RunningLegacyEmulator {
    imbridge_legacy_emulator::spawn(imbridge_legacy_emulator::LegacyEmulatorConfig {
        apply_secrets: vec![imbridge_legacy::SigningSecret::new(APPLY_SECRET)],
        ..imbridge_legacy_emulator::LegacyEmulatorConfig::default()
    })
    .await
    .expect("legacy emulator")
}

/// IM's whole state as the emulator persists it: equal snapshots mean nothing changed on IM.
pub fn im_state(im: &RunningEmulator) -> serde_json::Value {
    im.emulator().save_state().expect("save im state");
    let path = im.emulator().config().state_file.clone().expect("state file configured");
    serde_json::from_slice(&std::fs::read(path).expect("read im state")).expect("im state json")
}

/// Legacy's whole state (users, conversations, groups, applied idempotency keys) without its request
/// counters, which count a repeated apply answered 409 as a request.
pub fn legacy_state(legacy: &RunningLegacyEmulator) -> serde_json::Value {
    let mut v = legacy.emulator().read(|s| serde_json::to_value(s).expect("legacy state json"));
    if let Some(o) = v.as_object_mut() {
        o.remove("counters");
    }
    v
}

/// Settings a scenario can change in [`write_config`].
#[derive(Debug, Clone)]
pub struct ConfigOpts {
    pub to_im_group: String,
    pub to_legacy_group: String,
    pub im_base_url: String,
    pub apply_url: String,
    /// Appended as is (extra sections such as `[im.rate_limits]`).
    pub extra: String,
    pub bootstrap: String,
}

impl ConfigOpts {
    pub fn new(im: &RunningEmulator, apply_url: &str) -> Self {
        Self {
            to_im_group: imbridge_testkit::unique("ops-to-im"),
            to_legacy_group: imbridge_testkit::unique("ops-to-legacy"),
            im_base_url: im.base_url(),
            apply_url: apply_url.to_owned(),
            extra: String::new(),
            bootstrap: imbridge_testkit::kafka_bootstrap(),
        }
    }
}

/// One imbridge.toml for every part (each listens on port 0 and logs where), written into `dir`.
pub fn write_config(dir: &Path, name: &str, topics: &TopicNames, o: &ConfigOpts) -> PathBuf {
    let im = imbridge_im_emulator::EmulatorConfig::default();
    let text = format!(
        r#"[kafka]
bootstrap_servers = "{bootstrap}"

[topics]
legacy_events = "{le}"
im_events = "{ie}"
import_accounts = "{ia}"
import_users = "{iu}"
import_c2c = "{ic}"
import_groups = "{ig}"
import_checkpoints = "{ick}"
dlq = "{dlq}"
applied = "{applied}"
conversations = "{conv}"
partitions = {partitions}

[im]
base_url = "{base}"
sdkappid = {sdkappid}
admin_identifier = "administrator"
secret_key = "{key}"

[ingest]
listen = "127.0.0.1:0"
legacy_secret = "{webhook}"
spool_dir = "{spool}"
readiness_interval_ms = 300

[to_im]
listen = "127.0.0.1:0"
readiness_interval_ms = 300

[to_im.live]
group_id = "{to_im_group}"

[to_im.live.consumer]
drain_timeout_ms = 4000
session_timeout_ms = 6000
auto_commit_interval_ms = 200

[to_legacy]
listen = "127.0.0.1:0"
group_id = "{to_legacy_group}"
apply_url = "{apply}"
apply_secret = "{apply_secret}"
readiness_interval_ms = 300

[to_legacy.consumer]
drain_timeout_ms = 4000
session_timeout_ms = 6000
auto_commit_interval_ms = 200
{extra}
"#,
        bootstrap = o.bootstrap,
        le = topics.legacy_events,
        ie = topics.im_events,
        ia = topics.import_accounts,
        iu = topics.import_users,
        ic = topics.import_c2c,
        ig = topics.import_groups,
        ick = topics.import_checkpoints,
        dlq = topics.dlq,
        applied = topics.applied,
        conv = topics.conversations,
        partitions = topics.partitions,
        base = o.im_base_url,
        sdkappid = im.sdkappid,
        key = im.secret_key,
        webhook = WEBHOOK_SECRET,
        to_im_group = o.to_im_group,
        to_legacy_group = o.to_legacy_group,
        apply = o.apply_url,
        apply_secret = APPLY_SECRET,
        extra = o.extra,
        spool = dir.join(format!("{name}-ingest-spool")).display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The paths where two JSON documents differ (with both values), for readable assertion messages.
pub fn json_diff(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(path: String, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value as V;
        match (a, b) {
            (V::Object(x), V::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    let (va, vb) = (x.get(k).unwrap_or(&V::Null), y.get(k).unwrap_or(&V::Null));
                    walk(format!("{path}.{k}"), va, vb, out);
                }
            }
            (V::Array(x), V::Array(y)) if x.len() == y.len() => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    walk(format!("{path}[{i}]"), va, vb, out);
                }
            }
            _ if a != b => {
                let short = |v: &V| v.to_string().chars().take(300).collect::<String>();
                out.push(format!("{path}: {} → {}", short(a), short(b)));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), a, b, &mut out);
    out
}

/// Asserts two state snapshots are equal, naming the differences.
pub fn assert_same_state(what: &str, before: &serde_json::Value, after: &serde_json::Value) {
    let diff = json_diff(before, after);
    assert!(diff.is_empty(), "{what}: {} difference(s): {:#?}", diff.len(), &diff[..diff.len().min(20)]);
}
