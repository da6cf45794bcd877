//! What the `ops_*` scenarios (issue 6: replay, scaled groups, observability) share: unique topics, canonical
//! events of both origins, the two emulators in process (real HTTP), one configuration file for every part,
//! imbridge parts as real processes of the built binary (SIGKILL, SIGTERM), and reading `/metrics`.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use imbridge_core::event::{C2cMessage, GroupCreated, GroupMessage, GroupType, GroupUpdated, MembersJoined};
use imbridge_core::topics::TopicNames;
use imbridge_core::{Element, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_im_emulator::RunningEmulator;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::{KafkaConfig, Producer};
use imbridge_legacy_emulator::RunningLegacyEmulator;

/// The secret to-legacy signs apply requests with (the legacy emulator accepts it).
pub const APPLY_SECRET: &str = "ops-apply-secret";
/// The secret legacy webhooks are signed with (ingest checks it).
pub const WEBHOOK_SECRET: &str = "ops-webhook-secret";

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

/// Topic names no other test uses.
pub fn unique_topics(prefix: &str, partitions: i32) -> TopicNames {
    let u = imbridge_testkit::unique(prefix);
    TopicNames {
        legacy_events: format!("{u}.legacy.events"),
        im_events: format!("{u}.im.events"),
        import_accounts: format!("{u}.import.accounts"),
        import_users: format!("{u}.import.users"),
        import_c2c: format!("{u}.import.c2c"),
        import_groups: format!("{u}.import.groups"),
        dlq: format!("{u}.dlq"),
        applied: format!("{u}.applied"),
        conversations: format!("{u}.conversations"),
        partitions,
        replication: 1,
    }
}

pub fn user(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

pub fn group(s: &str) -> GroupId {
    GroupId::parse(s).expect("group id")
}

pub fn text(s: &str) -> Vec<Element> {
    vec![Element::Text { text: s.to_owned() }]
}

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
readiness_interval_ms = 300

[to_im]
ops_listen = "127.0.0.1:0"
probe_interval_ms = 300

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
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Polls `f` until it returns true.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An imbridge part as a child process.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `imbridge --config <config> --log-format json <args…>`, stderr (the log) to `<log>`.
    pub fn start(config: &Path, args: &[&str], log: PathBuf) -> Self {
        Self::start_logging(config, args, log, "info")
    }

    /// [`start`](Self::start) with a log filter of its own (`tracing` syntax).
    pub fn start_logging(config: &Path, args: &[&str], log: PathBuf, level: &str) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(imbridge_testkit::imbridge_bin())
            .arg("--config")
            .arg(config)
            .args(["--log-format", "json", "--log-level", level])
            .args(args)
            .env_remove("IMBRIDGE_CONFIG")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn imbridge");
        Self { child, log }
    }

    /// SIGKILL: no drain, no commit, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "no exit 40 s after SIGTERM: {}", self.log.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The address field `field` of the first log line with message `message` (the part logs where it listens).
    pub async fn logged_addr(&self, message: &str, field: &str) -> SocketAddr {
        let mut found = None;
        eventually(&format!("`{message}` in {}", self.log.display()), Duration::from_secs(60), || {
            found = self.log_lines().iter().find_map(|v| {
                (v["message"] == message).then(|| v[field].as_str().and_then(|a| a.parse().ok())).flatten()
            });
            std::future::ready(found.is_some())
        })
        .await;
        found.expect("address")
    }

    /// Where `imbridge to-im` serves /metrics, /healthz, /readyz.
    pub async fn to_im_ops(&self) -> SocketAddr {
        self.logged_addr("to-im ops endpoints listening", "addr").await
    }

    /// Where `imbridge to-legacy` serves /metrics, /healthz, /readyz.
    pub async fn to_legacy_ops(&self) -> SocketAddr {
        self.logged_addr("to-legacy started", "ops_addr").await
    }

    /// Where `imbridge ingest` serves its endpoints and /metrics, /healthz, /readyz.
    pub async fn ingest_addr(&self) -> SocketAddr {
        self.logged_addr("ingest listening", "addr").await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One metric's value from a Prometheus text page: the sum over the series matching every `labels` pair.
pub fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/metrics` of a part, or an empty page while it is not answering.
pub async fn scrape(addr: SocketAddr) -> String {
    match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `/readyz` answered 200.
pub async fn ready(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/readyz")).await.is_ok_and(|r| r.status().is_success())
}

/// Records of `topic` not yet committed by `group` (every partition; a group that never committed counts all).
pub async fn lag(group: &str, topic: &str) -> i64 {
    let admin = Admin::new(&kafka()).expect("admin");
    match admin.offsets(topic, Some(group)).await {
        Ok(ps) => ps.iter().map(|p| p.lag()).sum(),
        Err(_) => i64::MAX,
    }
}

/// Runs `imbridge --config <config> <args…>` to completion; returns (success, stdout + stderr).
pub fn run_cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(imbridge_testkit::imbridge_bin())
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "--log-level", "warn"])
        .args(args)
        .env_remove("IMBRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run imbridge");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
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
