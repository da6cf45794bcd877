//! The convergence test ("the one that matters"): the whole coexistence pipeline as separate processes
//! of the built binary — IM emulator, legacy emulator, ingest, to-im, to-legacy — on the real broker.
//!
//! 1. A generated legacy export seeds the legacy emulator (as its existing history) and is imported into IM with
//!    `imbridge import`; both systems must then hold the same conversations, groups, members and messages.
//! 2. Phase 1: legacy users (through the legacy emulator's user API, which fires signed webhooks) and new-app users
//!    (through the IM emulator's client simulation, which fires IM callbacks) concurrently send 1:1 and group
//!    messages, create groups, rename them, join, leave and dismiss — over a thousand operations across dozens of
//!    conversations. When traffic stops and every lag is zero, both systems must hold exactly the same state.
//! 3. Phase 2: the same again, with to-im and to-legacy killed with SIGKILL a third of the way in and restarted,
//!    and IM's clock moved past its dedup windows meanwhile (so only imbridge's own guarantees prevent duplicates).
//! 4. No message exists twice on either side, and nothing either service wrote came back as a new event: the event
//!    topics hold exactly the operations each side's own users made, while the legacy emulator (run with
//!    `--echo-webhooks`) and IM (group lifecycle callbacks) did send echoes, which ingest dropped.
//!
//! Order is "the same order" in the only sense two systems without a shared clock can agree on: within one
//! conversation, operations made on one side while the previous operation from the other side was still in flight
//! are concurrent, and each system legitimately orders them by its own arrival. The drivers therefore switch sides
//! within a conversation only after the previous operation is visible on both sides (like people taking turns in
//! a chat); same-side operations go back to back. For 1:1 chats a side switch also waits for the next second: IM
//! orders 1:1 messages by (second, MsgSeq), and a native client's MsgSeq and imbridge's are not comparable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imbridge_core::topics::TopicNames;
use imbridge_core::{Element, Envelope, TimestampMs};
use imbridge_e2e::*;
use imbridge_im::Api;
use imbridge_im::ImClient;
use imbridge_im::config::RateSetting;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const SDKAPPID: u64 = 1_400_000_000;
const PAST_DEDUP_SECS: u64 = 600;
/// Generous: a side switch during a SIGKILL waits for the restart and the rebalance.
const CONVERGE: Duration = Duration::from_secs(120);

use imbridge_demo::{GroupSnap, Side};

type Msgs = Vec<(String, Vec<Element>)>;

struct Cluster {
    dir: tempfile::TempDir,
    topics: TopicNames,
    config: PathBuf,
    export: PathBuf,
    im_url: String,
    legacy_url: String,
    ingest_url: String,
    to_im_group: String,
    to_legacy_group: String,
    im: ImClient,
    /// Both systems as the demo reads them: the snapshots compared here are the demo's.
    systems: imbridge_demo::Systems,
    http: reqwest::Client,
    procs: Mutex<BTreeMap<&'static str, Proc>>,
    sigs: std::sync::Mutex<BTreeMap<String, String>>,
    restarts: AtomicU64,
    /// Operations done (for the kill point) and what each side's users wrote.
    ops: AtomicU64,
    legacy_events_expected: AtomicU64,
    im_events_expected: AtomicU64,
    sent_texts: std::sync::Mutex<Vec<String>>,
}

impl Cluster {
    async fn start() -> Arc<Cluster> {
        let (im_port, legacy_port, ingest_port) = (free_port(), free_port(), free_port());
        let im_url = format!("http://127.0.0.1:{im_port}");
        let legacy_url = format!("http://127.0.0.1:{legacy_port}");
        let ingest_url = format!("http://127.0.0.1:{ingest_port}");
        let mut sb = Sandbox::new("sync-conv", PARTITIONS).pipeline(&format!("{legacy_url}/v1/apply"));
        create_topics(&sb.topics, PARTITIONS).await;
        sb.config.im = imbridge_im::ImConfig {
            base_url: im_url.clone(),
            sdkappid: SDKAPPID,
            admin_identifier: "administrator".into(),
            secret_key: imbridge_im_emulator::DEMO_SECRET_KEY.into(),
            ..imbridge_im::ImConfig::default()
        };
        sb.config.ingest.listen = ([127, 0, 0, 1], ingest_port).into();
        let config = sb.write_config("imbridge");
        let to_im_group = sb.config.to_im.live.group_id.clone();
        let to_legacy_group = sb.config.to_legacy.group_id.clone();
        let Sandbox { dir, topics, config: app } = sb;

        // A small export with every record kind: the legacy system's existing data.
        let export = dir.path().join("export");
        let (ok, out) = run_cli(
            &config,
            &[
                "export",
                "generate",
                export.to_str().expect("utf8"),
                "--seed",
                "11",
                "--users",
                "40",
                "--friendships",
                "60",
                "--c2c-messages",
                "400",
                "--groups",
                "6",
                "--group-messages",
                "300",
            ],
        );
        assert!(ok, "export generate: {out}");

        let mut procs = BTreeMap::new();
        let log = |n: &str| dir.path().join(format!("{n}.log"));
        procs.insert(
            "im",
            Proc::start_args(
                &[
                    "emulate",
                    "im",
                    "--listen",
                    &format!("127.0.0.1:{im_port}"),
                    "--callback-url",
                    &format!("{ingest_url}/v1/im/callback"),
                    // IM's way: 8 deliveries in flight, so one conversation's callbacks arrive out of order
                    // (IMBRIDGE_CONVERGENCE_CALLBACK_CONCURRENCY=1 for serial delivery when debugging).
                    "--callback-concurrency",
                    &std::env::var("IMBRIDGE_CONVERGENCE_CALLBACK_CONCURRENCY").unwrap_or_else(|_| "8".into()),
                ],
                log("im"),
            ),
        );
        procs.insert(
            "legacy",
            Proc::start_args(
                &[
                    "emulate",
                    "legacy",
                    "--listen",
                    &format!("127.0.0.1:{legacy_port}"),
                    "--seed",
                    export.to_str().expect("utf8"),
                    "--ingest-url",
                    &ingest_url,
                    "--webhook-secret",
                    WEBHOOK_SECRET,
                    "--apply-secret",
                    APPLY_SECRET,
                    "--echo-webhooks",
                ],
                log("legacy"),
            ),
        );
        procs.insert("ingest", Proc::start(&config, &["ingest"], log("ingest")));
        procs.insert("to-im", Proc::start(&config, &["to-im"], log("to-im-0")));
        procs.insert("to-legacy", Proc::start(&config, &["to-legacy"], log("to-legacy-0")));

        let im = ImClient::new(&app.im, &prometheus::Registry::new()).expect("im client");
        // The test's own reads stay well under the emulator's per-API limits, which the services share.
        for api in [Api::AdminGetRoamMsg, Api::GroupMsgGetSimple, Api::GetGroupInfo, Api::GetGroupMemberInfo] {
            im.set_rate(api, RateSetting::PerSec(150.0));
        }
        let systems = imbridge_demo::Systems::new(imbridge_demo::Endpoints {
            legacy_url: legacy_url.clone(),
            old_im: None,
            im: app.im.clone(),
            kafka: app.kafka.clone(),
            topics: app.topics.clone(),
            to_im_group: to_im_group.clone(),
            to_legacy_group: to_legacy_group.clone(),
            // Only the readers are used here, never the in-flight check that scrapes these.
            ingest_metrics: String::new(),
            to_im_metrics: String::new(),
            to_legacy_metrics: String::new(),
        })
        .expect("systems");
        let c = Arc::new(Cluster {
            dir,
            topics,
            config,
            export,
            im_url,
            legacy_url,
            ingest_url,
            to_im_group,
            to_legacy_group,
            im,
            systems,
            http: reqwest::Client::new(),
            procs: Mutex::new(procs),
            sigs: Default::default(),
            restarts: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            legacy_events_expected: AtomicU64::new(0),
            im_events_expected: AtomicU64::new(0),
            sent_texts: Default::default(),
        });
        c.wait_ready().await;
        c
    }

    async fn wait_ready(&self) {
        let http = &self.http;
        let ok = |url: String| async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) };
        eventually("im emulator", Duration::from_secs(60), || ok(format!("{}/emulator/healthz", self.im_url))).await;
        eventually("legacy emulator", Duration::from_secs(60), || ok(format!("{}/healthz", self.legacy_url))).await;
        eventually("ingest ready", Duration::from_secs(60), || ok(format!("{}/readyz", self.ingest_url))).await;
        let (to_im, to_legacy) = {
            let p = self.procs.lock().await;
            (p["to-im"].to_im_ops().await, p["to-legacy"].to_legacy_ops().await)
        };
        eventually("to-im ready", Duration::from_secs(60), || ready(to_im)).await;
        eventually("to-legacy ready", Duration::from_secs(60), || ready(to_legacy)).await;
    }

    /// SIGKILL to-im and to-legacy, move IM's clock past its dedup windows, start them again.
    async fn kill_and_restart(&self) {
        let n = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        let mut p = self.procs.lock().await;
        for name in ["to-im", "to-legacy"] {
            if let Some(proc) = p.get_mut(name) {
                proc.kill9();
            }
        }
        let r = self
            .http
            .post(format!("{}/emulator/clock", self.im_url))
            .json(&json!({ "advance_secs": PAST_DEDUP_SECS }))
            .send()
            .await
            .expect("advance clock");
        assert!(r.status().is_success());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let log = |s: &str| self.dir.path().join(format!("{s}-{n}.log"));
        p.insert("to-im", Proc::start(&self.config, &["to-im"], log("to-im")));
        p.insert("to-legacy", Proc::start(&self.config, &["to-legacy"], log("to-legacy")));
    }

    // ---- the legacy side: its users' API and its read endpoints ------------------------------------------

    async fn legacy(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.legacy_url));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("legacy {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "legacy {method} {path} {body:?}: {status} {v}");
        v
    }

    /// A native legacy write; counts the webhook event it fires.
    async fn legacy_write(&self, method: reqwest::Method, path: &str, body: Value) {
        let v = self.legacy(method, path, Some(body)).await;
        if v.get("id").is_some_and(|id| !id.is_null()) {
            self.legacy_events_expected.fetch_add(1, Ordering::SeqCst);
        }
        self.ops.fetch_add(1, Ordering::SeqCst);
    }

    async fn legacy_c2c(&self, a: &str, b: &str) -> Msgs {
        self.systems.old_c2c(a, b).await.expect("legacy c2c")
    }

    async fn legacy_group(&self, g: &str) -> Option<GroupSnap> {
        self.systems.old_group(g).await.expect("legacy group")
    }

    async fn legacy_group_ids(&self) -> BTreeSet<String> {
        let v = self.legacy(reqwest::Method::GET, "/api/groups", None).await;
        v.as_array().expect("groups").iter().map(|g| g["group_id"].as_str().expect("id").to_owned()).collect()
    }

    async fn legacy_c2c_pairs(&self) -> BTreeSet<(String, String)> {
        let v = self.legacy(reqwest::Method::GET, "/api/c2c", None).await;
        v.as_array()
            .expect("c2c")
            .iter()
            .map(|c| {
                let k = c["conversation"].as_str().expect("key").strip_prefix("c2c:").expect("c2c key");
                let (a, b) = k.split_once(':').expect("pair");
                (a.to_owned(), b.to_owned())
            })
            .collect()
    }

    async fn legacy_outbox(&self) -> u64 {
        let v = self.legacy(reqwest::Method::GET, "/api/stats", None).await;
        v["outbox_pending"].as_u64().expect("outbox_pending")
    }

    // ---- the IM side: new-app users through the client simulation, and IM's REST read APIs ---------------

    fn usersig(&self, user: &str) -> String {
        let mut sigs = self.sigs.lock().expect("lock");
        sigs.entry(user.to_owned())
            .or_insert_with(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
                imbridge_im::usersig::generate(SDKAPPID, imbridge_im_emulator::DEMO_SECRET_KEY, user, 86_400, now)
            })
            .clone()
    }

    /// A new-app user's action; counts the IM event it causes when `fires` (what ingest turns into an event).
    async fn im_as(&self, user: &str, api: &str, body: Value, fires: bool) {
        let url = format!(
            "{}/emulator/client/v4/{api}?sdkappid={SDKAPPID}&identifier={user}&usersig={}&platform=Android",
            self.im_url,
            self.usersig(user)
        );
        let v: Value = self.http.post(url).json(&body).send().await.expect("im client").json().await.expect("json");
        assert_eq!(v["ErrorCode"], 0, "im client {user} {api} {body}: {v}");
        if fires {
            self.im_events_expected.fetch_add(1, Ordering::SeqCst);
        }
        self.ops.fetch_add(1, Ordering::SeqCst);
    }

    async fn im_c2c(&self, a: &str, b: &str) -> Msgs {
        self.systems.im_c2c(a, b).await.expect("IM c2c")
    }

    async fn im_group(&self, g: &str) -> Option<GroupSnap> {
        self.systems.im_group(g).await.expect("IM group")
    }

    async fn im_group_ids(&self) -> BTreeSet<String> {
        self.im.all_group_ids(None).await.expect("group ids").into_iter().collect()
    }

    // ---- convergence -------------------------------------------------------------------------------------

    async fn c2c_converged(&self, a: &str, b: &str) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let (l, i) = (self.legacy_c2c(a, b).await, self.im_c2c(a, b).await);
            if l == i {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "c2c {a}/{b} did not converge (legacy, IM): {l:#?} {i:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn group_converged(&self, g: &str) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let (l, i) = (self.legacy_group(g).await, self.im_group(g).await);
            if l == i {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "group {g} did not converge (legacy, IM): {l:#?} {i:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until nothing is in flight anywhere: both outboxes (legacy webhooks, IM callbacks) drained and both
    /// consumer groups committed up to the end — twice in a row, a second apart.
    async fn quiesce(&self) {
        let mut stable = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        while stable < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the pipeline did not go quiet");
            let stats: Value = self
                .http
                .get(format!("{}/emulator/stats", self.im_url))
                .send()
                .await
                .expect("im stats")
                .json()
                .await
                .expect("json");
            let quiet = self.legacy_outbox().await == 0
                && stats["callbacks_pending"] == 0
                && lag(&self.to_im_group, &self.topics.legacy_events).await == 0
                && lag(&self.to_legacy_group, &self.topics.im_events).await == 0;
            stable = if quiet { stable + 1 } else { 0 };
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Both systems hold the same groups (profiles, members, messages) and the same 1:1 conversations.
    async fn assert_converged(&self, what: &str, pairs: &BTreeSet<(String, String)>) {
        let groups = self.legacy_group_ids().await;
        assert_eq!(groups, self.im_group_ids().await, "{what}: the same groups exist");
        for g in &groups {
            let (l, i) = (self.legacy_group(g).await, self.im_group(g).await);
            assert!(l.is_some(), "{what}: group {g}");
            assert_eq!(l, i, "{what}: group {g} differs (left legacy, right IM)");
        }
        let mut all_pairs = self.legacy_c2c_pairs().await;
        all_pairs.extend(pairs.iter().cloned());
        for (a, b) in &all_pairs {
            assert_eq!(self.legacy_c2c(a, b).await, self.im_c2c(a, b).await, "{what}: c2c {a}/{b} (legacy, IM)");
            assert_eq!(self.im_c2c(a, b).await, self.im_c2c(b, a).await, "{what}: c2c {a}/{b} as each side sees it");
        }
        // No message twice: every text the users sent is on each side exactly once.
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut count = |msgs: &Msgs, legacy: bool| {
            for (_, body) in msgs {
                if let [Element::Text { text }] = body.as_slice() {
                    let e = counts.entry(text.clone()).or_default();
                    if legacy { e.0 += 1 } else { e.1 += 1 }
                }
            }
        };
        for (a, b) in &all_pairs {
            count(&self.legacy_c2c(a, b).await, true);
            count(&self.im_c2c(a, b).await, false);
        }
        let mut dismissed_texts = 0;
        for g in &groups {
            count(&self.legacy_group(g).await.map(|s| s.messages).unwrap_or_default(), true);
            count(&self.im_group(g).await.map(|s| s.messages).unwrap_or_default(), false);
        }
        for t in self.sent_texts.lock().expect("lock").iter() {
            match counts.get(t) {
                Some(&(l, i)) => assert!(l == 1 && i == 1, "{what}: {t:?} is {l}× on legacy, {i}× on IM"),
                // Messages of groups dismissed later are gone on both sides.
                None => dismissed_texts += 1,
            }
        }
        eprintln!(
            "{what}: {} groups and {} 1:1 conversations identical on both sides ({} sent messages of dismissed groups)",
            groups.len(),
            all_pairs.len(),
            dismissed_texts
        );
    }
}

fn text_body(s: &str) -> Value {
    json!([{ "type": "text", "text": s }])
}

fn im_text(s: &str) -> Value {
    json!([{ "MsgType": "TIMTextElem", "MsgContent": { "Text": s } }])
}

/// Sleeps past the next whole second (IM's 1:1 order within a second is by MsgSeq, see the module docs).
async fn next_second() {
    let ms = TimestampMs::now().as_millis().rem_euclid(1000);
    tokio::time::sleep(Duration::from_millis((1000 - ms + 30) as u64)).await;
}

// ---- traffic -------------------------------------------------------------------------------------------------

/// Which app each user is on: even-numbered users stay on the legacy app, odd ones moved to the new app (IM).
fn side_of(users: &[String], u: &str) -> Side {
    let i = users.iter().position(|x| x == u).expect("known user");
    if i % 2 == 0 { Side::Legacy } else { Side::Im }
}

/// One 1:1 conversation's traffic: bursts from one participant, then the other; side switches wait for
/// convergence (and the next second).
async fn drive_c2c(c: Arc<Cluster>, users: Arc<Vec<String>>, a: String, b: String, n: usize, phase: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sender = if rng.random_bool(0.5) { a.clone() } else { b.clone() };
    let mut last: Option<Side> = None;
    let mut seq = 0u32;
    for i in 0..n {
        if rng.random_bool(0.35) {
            sender = if sender == a { b.clone() } else { a.clone() };
        }
        let to = if sender == a { b.clone() } else { a.clone() };
        let side = side_of(&users, &sender);
        if last.is_some_and(|l| l != side) {
            c.c2c_converged(&a, &b).await;
            next_second().await;
        }
        let tag = if side == Side::Legacy { "L" } else { "N" };
        let text = format!("{tag}:{phase}:{sender}>{to}:{i}");
        match side {
            Side::Legacy => {
                let body = json!({"from": sender, "to": to, "body": text_body(&text)});
                c.legacy_write(reqwest::Method::POST, "/api/messages", body).await;
            }
            Side::Im => {
                seq += 1;
                let body = json!({"To_Account": to, "MsgRandom": rng.random::<u32>(), "MsgSeq": seq,
                                  "MsgBody": im_text(&text)});
                c.im_as(&sender, "openim/sendmsg", body, true).await;
            }
        }
        c.sent_texts.lock().expect("lock").push(text);
        last = Some(side);
    }
}

/// The driver's model of a group.
struct GroupModel {
    id: String,
    owner: String,
    members: BTreeSet<String>,
}

/// One group's life: created (unless it exists), then messages, renames, joins and leaves by its members on
/// their own apps; dismissed at the end when asked. Side switches wait until the group converged.
#[allow(clippy::too_many_arguments)]
async fn drive_group(
    c: Arc<Cluster>,
    users: Arc<Vec<String>>,
    mut g: GroupModel,
    create: bool,
    steps: usize,
    dismiss: bool,
    phase: u32,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut last: Option<Side> = None;
    // Waits for convergence before an action on a different side than the previous one.
    macro_rules! on {
        ($side:expr) => {{
            let side: Side = $side;
            if last.is_some_and(|l| l != side) {
                c.group_converged(&g.id).await;
            }
            last = Some(side);
            side
        }};
    }
    if create {
        let others: Vec<String> = g.members.iter().filter(|m| **m != g.owner).cloned().collect();
        match on!(side_of(&users, &g.owner)) {
            Side::Legacy => {
                let body = json!({"group_id": g.id, "group_type": "Public", "name": format!("{} p{phase}", g.id),
                                  "owner": g.owner, "members": others});
                c.legacy_write(reqwest::Method::POST, "/api/groups", body).await;
            }
            Side::Im => {
                let list: Vec<Value> = others.iter().map(|m| json!({"Member_Account": m})).collect();
                let body = json!({"Type": "Public", "Name": format!("{} p{phase}", g.id), "GroupId": g.id,
                                  "MemberList": list});
                c.im_as(&g.owner.clone(), "group_open_http_svc/create_group", body, true).await;
            }
        }
    }
    for step in 0..steps {
        let roll = rng.random_range(0..100);
        let non_owner: Vec<String> = g.members.iter().filter(|m| **m != g.owner).cloned().collect();
        if roll < 8 {
            // The owner renames the group (IM lets only the owner or an admin do it).
            let owner = g.owner.clone();
            let name = format!("{}-r{phase}-{step}", &g.id[..g.id.len().min(12)]);
            match on!(side_of(&users, &owner)) {
                Side::Legacy => {
                    let body = json!({"operator": owner, "name": name, "introduction": format!("intro {step}")});
                    c.legacy_write(reqwest::Method::PATCH, &format!("/api/groups/{}", g.id), body).await;
                }
                Side::Im => {
                    let body = json!({"GroupId": g.id, "Name": name, "Introduction": format!("intro {step}")});
                    c.im_as(&owner, "group_open_http_svc/modify_group_base_info", body, true).await;
                }
            }
        } else if roll < 18 {
            // Someone joins: invited by a member on the inviter's app.
            let outsiders: Vec<&String> = users.iter().filter(|u| !g.members.contains(*u)).collect();
            if outsiders.is_empty() {
                continue;
            }
            let newcomer = outsiders[rng.random_range(0..outsiders.len())].clone();
            let inviter = g.members.iter().nth(rng.random_range(0..g.members.len())).cloned().expect("member");
            match on!(side_of(&users, &inviter)) {
                Side::Legacy => {
                    let body = json!({"members": [newcomer], "operator": inviter});
                    c.legacy_write(reqwest::Method::POST, &format!("/api/groups/{}/members", g.id), body).await;
                }
                Side::Im => {
                    let body = json!({"GroupId": g.id, "MemberList": [{"Member_Account": newcomer}]});
                    c.im_as(&inviter, "group_open_http_svc/add_group_member", body, true).await;
                }
            }
            g.members.insert(newcomer);
        } else if roll < 28 && non_owner.len() > 1 {
            // A member leaves on their own app.
            let leaver = non_owner[rng.random_range(0..non_owner.len())].clone();
            match on!(side_of(&users, &leaver)) {
                Side::Legacy => {
                    let body = json!({"user_id": leaver});
                    c.legacy_write(reqwest::Method::POST, &format!("/api/groups/{}/leave", g.id), body).await;
                }
                Side::Im => {
                    let body = json!({"GroupId": g.id});
                    c.im_as(&leaver, "group_open_http_svc/quit_group", body, true).await;
                }
            }
            g.members.remove(&leaver);
        } else {
            let from = g.members.iter().nth(rng.random_range(0..g.members.len())).cloned().expect("member");
            let side = on!(side_of(&users, &from));
            let tag = if side == Side::Legacy { "L" } else { "N" };
            let text = format!("{tag}:{phase}:{}:{from}:{step}", g.id);
            match side {
                Side::Legacy => {
                    let body = json!({"from": from, "body": text_body(&text)});
                    c.legacy_write(reqwest::Method::POST, &format!("/api/groups/{}/messages", g.id), body).await;
                }
                Side::Im => {
                    let body = json!({"GroupId": g.id, "Random": rng.random::<u32>(), "MsgBody": im_text(&text)});
                    c.im_as(&from, "group_open_http_svc/send_group_msg", body, true).await;
                }
            }
            c.sent_texts.lock().expect("lock").push(text);
        }
    }
    if dismiss {
        let owner = g.owner.clone();
        match on!(side_of(&users, &owner)) {
            Side::Legacy => {
                let r = c.http.delete(format!("{}/api/groups/{}", c.legacy_url, g.id)).send().await.expect("dismiss");
                assert!(r.status().is_success(), "dismiss {}: {}", g.id, r.status());
                c.legacy_events_expected.fetch_add(1, Ordering::SeqCst);
                c.ops.fetch_add(1, Ordering::SeqCst);
            }
            Side::Im => {
                c.im_as(&owner, "group_open_http_svc/destroy_group", json!({"GroupId": g.id}), true).await;
            }
        }
    }
    tracing_last(last);
}

/// The side of a group's last operation (read so the driver's bookkeeping stays honest to the compiler).
fn tracing_last(last: Option<Side>) {
    let _ = last;
}

/// One phase of traffic over every kind of conversation; returns the 1:1 pairs it used.
async fn phase(
    c: &Arc<Cluster>,
    users: &Arc<Vec<String>>,
    phase: u32,
    kill_at: Option<u64>,
) -> BTreeSet<(String, String)> {
    let legacy_users: Vec<String> = users.iter().filter(|u| side_of(users, u) == Side::Legacy).cloned().collect();
    let im_users: Vec<String> = users.iter().filter(|u| side_of(users, u) == Side::Im).cloned().collect();
    let mut rng = StdRng::seed_from_u64(1000 + u64::from(phase));
    let mut pairs = BTreeSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let pick = |rng: &mut StdRng, from: &[String]| from[rng.random_range(0..from.len())].clone();
    // 1:1: old-app pairs, new-app pairs, and mixed pairs.
    for k in 0..26 {
        let (a, b) = match k % 3 {
            0 => (pick(&mut rng, &legacy_users), pick(&mut rng, &legacy_users)),
            1 => (pick(&mut rng, &im_users), pick(&mut rng, &im_users)),
            _ => (pick(&mut rng, &legacy_users), pick(&mut rng, &im_users)),
        };
        let key = if a <= b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        if a == b || !pairs.insert(key) {
            continue;
        }
        tasks.spawn(drive_c2c(c.clone(), users.clone(), a, b, 30, phase, rng.random()));
    }
    // Groups: every existing one lives on; new ones are created on both apps; some are dismissed at the end.
    let existing = c.legacy_group_ids().await;
    for (k, gid) in existing.iter().enumerate() {
        let snap = c.legacy_group(gid).await.expect("group");
        let model =
            GroupModel { id: gid.clone(), owner: snap.owner.clone(), members: snap.members.keys().cloned().collect() };
        if model.owner.is_empty() {
            continue;
        }
        tasks.spawn(drive_group(c.clone(), users.clone(), model, false, 35, k == 0, phase, rng.random()));
    }
    for k in 0..4 {
        let owner = if k % 2 == 0 { pick(&mut rng, &legacy_users) } else { pick(&mut rng, &im_users) };
        let mut members: BTreeSet<String> = (0..3).map(|_| pick(&mut rng, users)).collect();
        members.insert(owner.clone());
        let id = format!("cv-p{phase}-{k}");
        let model = GroupModel { id, owner, members };
        tasks.spawn(drive_group(c.clone(), users.clone(), model, true, 35, k == 3, phase, rng.random()));
    }
    if let Some(at) = kill_at {
        let c = c.clone();
        tasks.spawn(async move {
            eventually("the kill point", Duration::from_secs(300), || {
                std::future::ready(c.ops.load(Ordering::SeqCst) >= at)
            })
            .await;
            c.kill_and_restart().await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("driver");
    }
    pairs
}

fn message_text(e: &Envelope) -> Option<String> {
    let body = match &e.event {
        imbridge_core::Event::C2cMessage(m) => &m.body,
        imbridge_core::Event::GroupMessage(m) => &m.body,
        _ => return None,
    };
    match body.as_slice() {
        [Element::Text { text }] => Some(text.clone()),
        _ => Some(String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_systems_converge_with_no_duplicate_and_no_echo_even_across_kill9() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let started = std::time::Instant::now();
    let c = Cluster::start().await;

    // The import: IM gets the legacy system's history.
    let (ok, out) = run_cli(&c.config, &["import", c.export.to_str().expect("utf8"), "--progress", "off"]);
    assert!(ok, "import: {out}");
    let users: Arc<Vec<String>> = Arc::new({
        let v = c.legacy(reqwest::Method::GET, "/api/users", None).await;
        let mut u: Vec<String> =
            v.as_array().expect("users").iter().map(|u| u["user_id"].as_str().expect("id").to_owned()).collect();
        u.sort();
        u
    });
    assert!(users.len() >= 40, "{} users", users.len());
    c.quiesce().await;
    c.assert_converged("after the import", &BTreeSet::new()).await;
    eprintln!("imported and converged after {:?}", started.elapsed());

    // Phase 1: both apps at once.
    let pairs1 = phase(&c, &users, 1, None).await;
    c.quiesce().await;
    c.assert_converged("phase 1", &pairs1).await;
    let ops1 = c.ops.load(Ordering::SeqCst);
    eprintln!("phase 1: {ops1} operations converged after {:?}", started.elapsed());

    // Phase 2: the same, with to-im and to-legacy SIGKILLed a third of the way in.
    let pairs2 = phase(&c, &users, 2, Some(ops1 + ops1 / 3)).await;
    assert_eq!(c.restarts.load(Ordering::SeqCst), 1, "both services were killed and restarted mid-traffic");
    c.quiesce().await;
    let mut pairs = pairs1;
    pairs.extend(pairs2);
    c.assert_converged("phase 2 (after kill -9)", &pairs).await;
    let ops = c.ops.load(Ordering::SeqCst);
    assert!(ops >= 1500, "a few thousand operations ({ops})");
    eprintln!("phase 2: {} operations converged after {:?}", ops - ops1, started.elapsed());

    // No echo: each event topic holds exactly what that side's own users did, nothing imbridge wrote.
    let legacy_events = envelopes(&c.topics.legacy_events).await;
    let im_events = envelopes(&c.topics.im_events).await;
    let distinct = |es: &[Envelope]| es.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>().len() as u64;
    for e in &legacy_events {
        if let Some(t) = message_text(e) {
            assert!(t.starts_with("L:"), "a legacy event carries a message the legacy users did not write: {e:?}");
        }
    }
    for e in &im_events {
        if let Some(t) = message_text(e) {
            assert!(t.starts_with("N:"), "an IM event carries a message the new-app users did not write: {e:?}");
        }
    }
    assert_eq!(distinct(&legacy_events), c.legacy_events_expected.load(Ordering::SeqCst), "legacy events = legacy ops");
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &im_events {
        *per_kind.entry(e.kind().as_str()).or_default() += 1;
    }
    eprintln!("IM events per kind: {per_kind:?}");
    assert_eq!(distinct(&im_events), c.im_events_expected.load(Ordering::SeqCst), "IM events = new-app ops");
    // Echoes were offered and dropped: legacy re-announced what imbridge applied (--echo-webhooks), IM called back
    // for imbridge's group lifecycle calls.
    let ingest_page = scrape(c.ingest_url.trim_start_matches("http://").parse().expect("addr")).await;
    let echoes = metric(&ingest_page, "imbridge_ingest_echoes_dropped_total", &[]);
    assert!(echoes > 0.0, "ingest dropped echoes: {ingest_page}");
    // Dismissals to-im made for legacy come back from IM without an operator; to-im announced them, so ingest
    // recognised them (the IM event count above would be off otherwise).
    let own_dismissals =
        metric(&ingest_page, "imbridge_ingest_echoes_dropped_total", &[("reason", "imbridge_dismissal")]);
    eprintln!("{own_dismissals} dismissal echoes recognised by announcement");
    let procs = c.procs.lock().await;
    let to_im_page = scrape(procs["to-im"].to_im_ops().await).await;
    assert_eq!(metric(&to_im_page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 0.0);
    let dlq = read_all(&c.topics.dlq, |r| {
        format!(
            "{:?} {:?}",
            r.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>(),
            r.payload.as_deref().map(String::from_utf8_lossy)
        )
    })
    .await;
    assert!(dlq.is_empty(), "nothing dead-lettered: {dlq:#?}");
    eprintln!(
        "done after {:?}: {ops} operations, {} legacy events, {} IM events, {echoes} echoes dropped",
        started.elapsed(),
        legacy_events.len(),
        im_events.len()
    );
}
