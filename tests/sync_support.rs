//! What the `sync_*` scenarios share beyond the package's library (ids, unique topics, lag, imbridge parts as
//! real processes, `/metrics`): producing legacy events, an IM emulator (in process, real HTTP), the
//! configuration of a to-im process, a recording callback server, and readers of IM's state through the IM
//! client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::post;
use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupType, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::topics::TopicNames;
use imbridge_core::{ConversationKey, Envelope, Event, EventId, Source, TimestampMs};
pub use imbridge_e2e::*;
use imbridge_im::ImClient;
use imbridge_im::types::account::{AccountImportReq, MultiAccountImportReq};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_kafka::Producer;
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::producer::Outgoing;

pub const PARTITIONS: i32 = 4;

/// Logs of in-process services on stderr (shown for failing tests, or with `--nocapture`).
pub fn logs() {
    imbridge_telemetry::init_logging(Some(imbridge_telemetry::LogFormat::Text), "info");
}

/// Creates the topics to-im uses (as the service itself would), so tests can produce before it starts.
pub async fn create_topics(t: &TopicNames) {
    Admin::new(&kafka())
        .expect("admin")
        .ensure_topics(&[
            TopicSpec::new(&t.legacy_events, t.partitions),
            // The importer insists on `partitions` for the DLQ too (the schema says 3): give it what it asks.
            TopicSpec::new(&t.dlq, t.partitions),
            TopicSpec::new(&t.applied, t.partitions).with_config("cleanup.policy", "compact"),
            TopicSpec::new(&t.conversations, t.partitions).with_config("cleanup.policy", "compact"),
        ])
        .await
        .expect("create topics");
}

/// A legacy-origin envelope as ingest would produce it.
pub fn legacy(id: &str, event: Event) -> Envelope {
    let now = TimestampMs::now();
    Envelope {
        id: EventId::legacy(id),
        source: Source::Legacy,
        conversation: event.conversation(),
        time: now,
        recorded_at: Some(now),
        event,
    }
}

pub fn c2c(id: &str, from: &str, to: &str, body: &str) -> Envelope {
    legacy(id, Event::C2cMessage(C2cMessage { from: user(from), to: user(to), body: text(body), custom_data: None }))
}

pub fn gmsg(id: &str, g: &str, from: &str, body: &str) -> Envelope {
    legacy(
        id,
        Event::GroupMessage(GroupMessage { group_id: group(g), from: user(from), body: text(body), custom_data: None }),
    )
}

pub fn gcreate(id: &str, g: &str, owner: &str, name: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::GroupCreated(GroupCreated {
            group_id: group(g),
            group_type: GroupType::Public,
            name: name.to_owned(),
            owner: Some(user(owner)),
            introduction: None,
            notification: None,
            face_url: None,
            members: members.iter().map(|m| user(m)).collect(),
        }),
    )
}

pub fn gupdate(id: &str, g: &str, name: Option<&str>, intro: Option<&str>) -> Envelope {
    legacy(
        id,
        Event::GroupUpdated(GroupUpdated {
            group_id: group(g),
            operator: None,
            name: name.map(str::to_owned),
            introduction: intro.map(str::to_owned),
            notification: None,
            face_url: None,
        }),
    )
}

pub fn gjoin(id: &str, g: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::MembersJoined(MembersJoined {
            group_id: group(g),
            members: members.iter().map(|m| user(m)).collect(),
            operator: None,
        }),
    )
}

pub fn gleave(id: &str, g: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::MembersLeft(MembersLeft {
            group_id: group(g),
            members: members.iter().map(|m| user(m)).collect(),
            reason: None,
            operator: None,
        }),
    )
}

pub fn gdismiss(id: &str, g: &str) -> Envelope {
    legacy(id, Event::GroupDismissed(GroupDismissed { group_id: group(g) }))
}

/// Produces envelopes in order (per-key order holds); returns (partition, offset) of each.
pub async fn produce(topic: &str, envs: &[Envelope]) -> Vec<(i32, i64)> {
    let p = Producer::new(&kafka()).expect("producer");
    p.send_envelopes(topic, envs).await.expect("produce").into_iter().map(|d| (d.partition, d.offset)).collect()
}

/// Writes a conversation state record, as the importer and the import apply do.
pub async fn set_phase(topic: &str, conversation: &ConversationKey, phase: Phase) {
    let p = Producer::new(&kafka()).expect("producer");
    let state = ConversationState {
        conversation: conversation.clone(),
        phase,
        updated_at: TimestampMs::now(),
        run_id: Some("test".into()),
        dismissed_by_imbridge: None,
    };
    let payload = serde_json::to_vec(&state).expect("json");
    p.send(topic, Outgoing { key: conversation.as_str().as_bytes(), payload: &payload, headers: &[] })
        .await
        .expect("state written");
}

/// An IM emulator on port 0; callbacks to `callback_url` when given.
pub async fn spawn_im(callback_url: Option<String>) -> RunningEmulator {
    let cfg = EmulatorConfig { callback_url, ..EmulatorConfig::default() };
    imbridge_im_emulator::spawn(cfg).await.expect("im emulator")
}

pub fn im_client(im: &RunningEmulator) -> ImClient {
    ImClient::new(&im.client_config(), &prometheus::Registry::new()).expect("im client")
}

pub async fn import_accounts(im: &ImClient, users: &[&str]) {
    for chunk in users.chunks(100) {
        let req = MultiAccountImportReq {
            accounts: None,
            account_list: Some(
                chunk
                    .iter()
                    .map(|u| AccountImportReq { user_id: (*u).to_owned(), nick: None, face_url: None })
                    .collect(),
            ),
        };
        let r = im.multiaccount_import(&req).await.expect("import accounts");
        assert!(r.failed().is_empty(), "{:?}", r.failed());
    }
}

/// The text bodies of a C2C conversation in IM's order, as `a` sees it.
pub async fn c2c_texts(im: &ImClient, a: &str, b: &str) -> Vec<String> {
    let msgs = im.c2c_history(a, b, 0, TimestampMs::now().as_secs() + 7 * 86_400).await.expect("c2c history");
    msgs.iter().map(|m| body_text(&m.msg_body)).collect()
}

/// The text bodies of a group's user messages (system notices left out), oldest first; empty if the group
/// does not exist.
pub async fn group_texts(im: &ImClient, g: &str) -> Vec<String> {
    match im.group_history(g, false).await {
        Ok(msgs) => msgs.iter().filter(|m| m.is_system_msg != Some(1)).map(|m| body_text(&m.msg_body)).collect(),
        Err(e) if e.code() == Some(10010) => vec![],
        Err(e) => panic!("group history of {g}: {e}"),
    }
}

/// A group's members, sorted; `None` if it does not exist.
pub async fn group_members(im: &ImClient, g: &str) -> Option<Vec<String>> {
    let infos = im.group_infos(&[g.to_owned()], None).await.expect("group info");
    if infos.first().is_none_or(|i| i.error_code != 0) {
        return None;
    }
    let mut m: Vec<String> =
        im.all_group_members(g, None).await.expect("members").into_iter().map(|m| m.member_account).collect();
    m.sort();
    Some(m)
}

/// A group's name and introduction; `None` if it does not exist.
pub async fn group_profile(im: &ImClient, g: &str) -> Option<(String, String)> {
    let infos = im.group_infos(&[g.to_owned()], None).await.expect("group info");
    let i = infos.into_iter().next().filter(|i| i.error_code == 0)?;
    Some((i.name.unwrap_or_default(), i.introduction.unwrap_or_default()))
}

pub fn body_text(body: &[imbridge_im::MsgElement]) -> String {
    body.iter()
        .map(|e| match e {
            imbridge_im::MsgElement::Text(t) => t.text.clone(),
            other => format!("<{}>", other.msg_type()),
        })
        .collect::<Vec<_>>()
        .join("")
}

/// One recorded callback: its query parameters and its body.
pub type Call = (BTreeMap<String, String>, serde_json::Value);

/// Callbacks a recording server received.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorded {
    pub fn all(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

/// A server answering every IM callback with OK and recording it. Returns its URL.
pub async fn recording_server() -> (String, Recorded) {
    let rec = Recorded::default();
    async fn cb(
        State(rec): State<Recorded>,
        Query(q): Query<BTreeMap<String, String>>,
        body: axum::body::Bytes,
    ) -> axum::Json<serde_json::Value> {
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        rec.calls.lock().expect("lock").push((q, v));
        axum::Json(serde_json::json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}))
    }
    let app = Router::new().route("/cb", post(cb)).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/cb"), rec)
}

/// The configuration file of a to-im process (the binary reads it with `--config`).
pub fn to_im_config(dir: &Path, topics: &TopicNames, im: &RunningEmulator, group_id: &str, extra: &str) -> PathBuf {
    let c = im.client_config();
    let text = format!(
        r#"[kafka]
bootstrap_servers = "{bootstrap}"

[topics]
legacy_events = "{le}"
im_events = "{ie}"
dlq = "{dlq}"
applied = "{applied}"
conversations = "{conv}"
partitions = {partitions}

[im]
base_url = "{base}"
sdkappid = {sdkappid}
admin_identifier = "{admin}"
secret_key = "{key}"

[to_im]
ops_listen = "127.0.0.1:0"

[to_im.live]
group_id = "{group_id}"

# A killed instance leaves the group after 6 s (the broker's minimum), not 45 s: restarts rebalance quickly.
[to_im.live.consumer]
session_timeout_ms = 6000
drain_timeout_ms = 4000
{extra}
"#,
        bootstrap = imbridge_testkit::kafka_bootstrap(),
        le = topics.legacy_events,
        ie = topics.im_events,
        dlq = topics.dlq,
        applied = topics.applied,
        conv = topics.conversations,
        partitions = topics.partitions,
        base = c.base_url,
        sdkappid = c.sdkappid,
        admin = c.admin_identifier,
        key = c.secret_key,
    );
    let path = dir.join(format!("{group_id}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// A free TCP port on 127.0.0.1 (for a process whose address must not change across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// An IM text message body.
pub fn im_text(s: &str) -> serde_json::Value {
    serde_json::json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": s}}])
}

/// Calls the IM emulator's client simulation as app user `user` (fires callbacks like a real app would).
pub async fn as_user(im: &RunningEmulator, user: &str, api: &str, body: serde_json::Value) {
    let e = im.emulator();
    let url = format!(
        "{}/emulator/client/v4/{api}?sdkappid={}&identifier={user}&usersig={}&platform=Android",
        im.base_url(),
        e.config().sdkappid,
        e.usersig(user)
    );
    let v: serde_json::Value =
        reqwest::Client::new().post(url).json(&body).send().await.expect("im").json().await.expect("json");
    assert_eq!(v["ErrorCode"], 0, "{user} {api} {body}: {v}");
}

/// The texts of a legacy emulator conversation (`/api/groups/<id>/messages`, `/api/c2c/<a>/<b>/messages`), in
/// its order; empty when it does not exist (yet).
pub async fn legacy_texts(legacy_url: &str, path: &str) -> Vec<String> {
    let Ok(r) = reqwest::get(format!("{legacy_url}{path}")).await else { return Vec::new() };
    if !r.status().is_success() {
        return Vec::new();
    }
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    let list = if v.is_array() { &v } else { &v["messages"] };
    list.as_array()
        .map(|a| a.iter().map(|m| m["body"][0]["text"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// The apply secret of the legacy emulator in the callback scenarios.
pub const CALLBACK_APPLY_SECRET: &str = "apply-secret";

/// Topics of their own for a callback scenario (`<u>.legacy`, `<u>.im`, …), 3 partitions.
pub fn callback_topics(u: &str) -> TopicNames {
    TopicNames {
        legacy_events: format!("{u}.legacy"),
        im_events: format!("{u}.im"),
        dlq: format!("{u}.dlq"),
        applied: format!("{u}.applied"),
        conversations: format!("{u}.conversations"),
        status: format!("{u}.status"),
        partitions: 3,
        ..TopicNames::default()
    }
}

/// A legacy emulator on port 0 that accepts applies signed with [`CALLBACK_APPLY_SECRET`].
pub async fn applying_legacy() -> imbridge_legacy_emulator::RunningLegacyEmulator {
    imbridge_legacy_emulator::spawn(imbridge_legacy_emulator::LegacyEmulatorConfig {
        apply_secrets: vec![imbridge_legacy::SigningSecret::new(CALLBACK_APPLY_SECRET)],
        ..Default::default()
    })
    .await
    .expect("legacy emulator")
}

/// to-legacy on port 0 in group `<u>-to-legacy`, applying to `legacy`, with short waits for seq gaps.
pub fn to_legacy_config(
    u: &str,
    legacy: &imbridge_legacy_emulator::RunningLegacyEmulator,
) -> imbridge_to_legacy::ToLegacyConfig {
    let mut c = imbridge_to_legacy::ToLegacyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        group_id: format!("{u}-to-legacy"),
        apply_url: legacy.apply_url(),
        apply_secret: imbridge_legacy::SigningSecret::new(CALLBACK_APPLY_SECRET),
        readiness_interval_ms: 300,
        ..Default::default()
    };
    c.order.gap_wait_ms = 1_500;
    c
}

/// An imbridge.toml for an ingest process on `127.0.0.1:<port>` with its spool in `dir` (`extra` is appended
/// to the `[ingest]` section); returns its path.
pub fn ingest_process_config(dir: &Path, bootstrap: &str, topics: &TopicNames, port: u16, extra: &str) -> PathBuf {
    let config = dir.join("imbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[topics]\nlegacy_events = \"{}\"\nim_events = \"{}\"\n\
             dlq = \"{}\"\napplied = \"{}\"\nconversations = \"{}\"\nstatus = \"{}\"\npartitions = {}\n[im]\n\
             sdkappid = {}\nadmin_identifier = \"administrator\"\nsecret_key = \"k\"\n[ingest]\n\
             listen = \"127.0.0.1:{port}\"\nlegacy_secret = \"s\"\nreadiness_interval_ms = 300\nspool_dir = \"{}\"\n{extra}",
            topics.legacy_events,
            topics.im_events,
            topics.dlq,
            topics.applied,
            topics.conversations,
            topics.status,
            topics.partitions,
            EmulatorConfig::default().sdkappid,
            dir.join("spool").display()
        ),
    )
    .expect("config");
    config
}

/// Waits until the service at `base_url` answers `/readyz` with 200.
pub async fn wait_ready(what: &str, base_url: &str) {
    eventually(what, std::time::Duration::from_secs(60), || {
        let url = format!("{base_url}/readyz");
        async move { reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
}

/// An IM emulator on port 0 (limits off) whose callbacks go to the ingest at `ingest_url`; ann and bob exist.
pub async fn im_calling_ingest(ingest_url: &str) -> RunningEmulator {
    let im = imbridge_im_emulator::spawn(EmulatorConfig {
        callback_url: Some(format!("{ingest_url}/v1/im/callback")),
        rate_limits_enabled: false,
        ..EmulatorConfig::default()
    })
    .await
    .expect("im emulator");
    import_accounts(&im_client(&im), &["ann", "bob"]).await;
    im
}

/// ann creates the Public group `club` with bob, as an app user of IM (a callback follows).
pub async fn create_club(im: &RunningEmulator) {
    as_user(
        im,
        "ann",
        "group_open_http_svc/create_group",
        serde_json::json!({"Owner_Account": "ann", "Type": "Public", "GroupId": "club", "Name": "club",
               "MemberList": [{"Member_Account": "bob"}]}),
    )
    .await;
}
