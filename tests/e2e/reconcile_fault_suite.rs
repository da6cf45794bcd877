//! The fault suite: both apps' traffic (1:1 messages, group messages, group creations, renames, joins and leaves)
//! runs through the whole pipeline on a PRIVATE broker (this test's own; the shared one is never touched) while
//! everything that can fail does:
//!
//! - ingest is killed with `kill -9` three times and restarted after 5–10 s (IM's callbacks meanwhile are lost;
//!   legacy's webhooks are retried by its outbox);
//! - the broker is stopped for 20 s once (ingest spools, the apply services wait);
//! - to-im and to-legacy are killed with `kill -9` once each and restarted;
//! - IM drops 10% of its callbacks and fails 5% of REST calls (500s and timeouts), the whole run long;
//! - legacy's apply endpoint fails 10% of requests: 7% with a 503, 3% applied but answered only after
//!   to-legacy's timeout.
//!
//! Then `imbridge reconcile --once` passes (at most six, each after the pipeline settled) repair what was lost,
//! and both systems must hold the same thing for every conversation and group: the same messages in the same
//! order, none twice on either side, the same group profile and the same members; and the last pass finds no
//! difference at all.
//!
//! Both apps write in the same conversations: every user writes from their own app (ann… on IM, lea… on
//! legacy), to any other user, and each group has a writer on each app. People answer what they see: a user
//! writes in a conversation only once its last message is visible on their app, and at least a second later
//! ([`TURN`]), so the conversation has one order both systems can show (IM orders by its seconds then its
//! sequence, legacy in the order it stored them). A message lost on its way only delays the other app's users;
//! reconcile's repair then lands on legacy before the next message from IM (the contract places a late message
//! by its time among its own system's).
//!
//! Groups: each is managed (renames, joins and kicks of the floaters) from its owner's app; both apps create
//! groups during the faults. A user writes in a group once their own app shows it: an IM group whose creation
//! callback was lost gets IM's messages and changes all the same, which legacy refuses; to-legacy holds them
//! (`order.unknown_group_hold_ms`) until reconcile's creation of the group on legacy, with its profile and
//! members, arrives on the same key and goes first. One such group is made for sure: created on IM during the
//! first ingest outage and written in at once.
//!
//! The figures printed: operations, differences found per kind (first pass), repaired, time from the end of the
//! traffic to converged, IM calls reconcile spent per 1,000 conversations (per pass, and in all to converge).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imbridge_e2e::*;
use imbridge_im_emulator::{EmulatorConfig, Faults, RestFailureKind, RunningEmulator};
use imbridge_legacy::SigningSecret;
use imbridge_legacy_emulator::config::ApplyFaults;
use imbridge_legacy_emulator::{LegacyEmulatorConfig, RunningLegacyEmulator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const IM_USERS: [&str; 4] = ["ann", "bob", "cy", "dee"];
const LEGACY_USERS: [&str; 4] = ["lea", "leo", "liz", "lou"];
/// Users who join and leave groups (on the group's home side).
const FLOATERS: [&str; 2] = ["eve", "fay"];
/// How long the traffic runs; the faults are scheduled inside it.
const TRAFFIC: Duration = Duration::from_secs(75);
const MAX_PASSES: usize = 6;
/// A reply waits this long after the message it follows became visible to its writer, so the two fall in
/// different seconds on both systems (IM orders a second's messages by its own sequence, legacy by arrival).
const TURN: Duration = Duration::from_millis(1_100);
const UNKNOWN_GROUP_HOLDS: &str = "imbridge_to_legacy_unknown_group_holds_total";
/// The group created on IM during the first ingest outage.
const LOST_CREATION: &str = "imlost";

/// One of the two apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Im,
    Legacy,
}

/// The app a user writes from.
fn side_of(user: &str) -> Side {
    if IM_USERS.contains(&user) { Side::Im } else { Side::Legacy }
}

/// The last message of a conversation, and when each app first showed it.
#[derive(Debug)]
struct Last {
    text: String,
    seen: BTreeMap<Side, Instant>,
}

/// A group: the app that manages it (its owner's: renames, joins, kicks) and its two writers, one per app.
#[derive(Debug)]
struct Group {
    home: Side,
    writers: [&'static str; 2],
    /// The apps that show it: a user writes in it, and its owner changes it, only on one of these.
    shown: BTreeSet<Side>,
}

impl Group {
    fn on_both(&self) -> bool {
        self.shown.len() == 2
    }
}

/// What the traffic made, for the comparison: every 1:1 pair and group it touched.
#[derive(Debug, Default)]
struct Made {
    ops: u64,
    failed_ops: u64,
    /// Picks skipped because the conversation's last message was not yet visible to the writer.
    waited: u64,
    pairs: BTreeSet<(String, String)>,
    groups: BTreeMap<String, Group>,
    last: BTreeMap<String, Last>,
    /// The apps each conversation was written from.
    sides: BTreeMap<String, BTreeSet<Side>>,
}

/// POSTs/PATCHes to legacy's user API; the answer's success.
async fn legacy_call(http: &reqwest::Client, legacy: &str, method: reqwest::Method, path: &str, body: Value) -> bool {
    http.request(method, format!("{legacy}{path}")).json(&body).send().await.is_ok_and(|r| r.status().is_success())
}

/// An IM app user's call; its success.
async fn im_call(im: &RunningEmulator, user: &str, api: &str, body: Value) -> bool {
    app_call(im, user, api, &body).await["ErrorCode"] == 0
}

/// The texts `side` shows for `key` now; `None` when it did not answer (IM's injected faults).
async fn texts_on(admin: &imbridge_im::ImClient, legacy: &str, side: Side, key: &str) -> Option<Vec<String>> {
    let (kind, rest) = key.split_once(':')?;
    match (side, kind) {
        (Side::Legacy, "c2c") => {
            let (a, b) = rest.split_once(':')?;
            Some(legacy_texts(legacy, &format!("/api/c2c/{a}/{b}/messages")).await)
        }
        (Side::Legacy, _) => Some(legacy_texts(legacy, &format!("/api/groups/{rest}/messages")).await),
        (Side::Im, "c2c") => {
            let (a, b) = rest.split_once(':')?;
            let max = imbridge_core::TimestampMs::now().as_secs() + 86_400;
            let msgs = admin.c2c_history(a, b, 0, max).await.ok()?;
            Some(msgs.iter().map(|m| body_text(&m.msg_body)).collect())
        }
        (Side::Im, _) => {
            let msgs = admin.group_history(rest, false).await.ok()?;
            Some(msgs.iter().filter(|m| m.is_system_msg != Some(1)).map(|m| body_text(&m.msg_body)).collect())
        }
    }
}

/// Whether a user of `side` may write in `key` now: people answer what they see. The conversation's last
/// message must be visible on the writer's app, for at least [`TURN`]. So both systems can hold one order
/// (neither reorders what it stored), and a message lost on its way only delays the other app's users.
async fn may_write(admin: &imbridge_im::ImClient, legacy: &str, made: &mut Made, key: &str, side: Side) -> bool {
    let Some(last) = made.last.get(key) else { return true };
    if let Some(at) = last.seen.get(&side) {
        return at.elapsed() >= TURN;
    }
    let text = last.text.clone();
    if texts_on(admin, legacy, side, key).await.is_some_and(|t| t.contains(&text)) {
        made.last.get_mut(key).expect("last").seen.insert(side, Instant::now());
    }
    false
}

/// Records a message written in `key` from `side`.
fn wrote(made: &mut Made, key: &str, side: Side, text: String) {
    made.last.insert(key.to_owned(), Last { text, seen: BTreeMap::from([(side, Instant::now())]) });
    made.sides.entry(key.to_owned()).or_default().insert(side);
}

/// One message by `from`, from their app, to a user (`Ok`) or a group (`Err`); its success. `n` orders an IM
/// app's 1:1 sends (IM orders a second's messages by MsgSeq).
#[allow(clippy::too_many_arguments)]
async fn send(
    im: &RunningEmulator,
    legacy: &str,
    http: &reqwest::Client,
    from: &str,
    to: Result<&str, &str>,
    text: &str,
    n: u64,
) -> bool {
    match (side_of(from), to) {
        (Side::Im, Ok(b)) => {
            let random = imbridge_core::ids::stable_u32(text.as_bytes());
            let body = json!({"To_Account": b, "MsgSeq": n + 1, "MsgRandom": random, "MsgBody": im_text(text)});
            im_call(im, from, "openim/sendmsg", body).await
        }
        (Side::Legacy, Ok(b)) => {
            let body = json!({"from": from, "to": b, "body": [{"type": "text", "text": text}]});
            legacy_call(http, legacy, reqwest::Method::POST, "/api/messages", body).await
        }
        (Side::Im, Err(g)) => {
            let random = imbridge_core::ids::stable_u32(text.as_bytes());
            let body = json!({"GroupId": g, "Random": random, "MsgBody": im_text(text)});
            im_call(im, from, "group_open_http_svc/send_group_msg", body).await
        }
        (Side::Legacy, Err(g)) => {
            let body = json!({"from": from, "body": [{"type": "text", "text": text}]});
            legacy_call(http, legacy, reqwest::Method::POST, &format!("/api/groups/{g}/messages"), body).await
        }
    }
}

/// One random operation: a 1:1 message between any two users (each from their own app), a group message by
/// one of a group's writers, or a change of a group by its owner on the group's home app.
async fn operate(
    im: &RunningEmulator,
    admin: &imbridge_im::ImClient,
    legacy: &str,
    http: &reqwest::Client,
    rng: &mut StdRng,
    made: &mut Made,
) {
    let n = made.ops;
    let everyone: Vec<&str> = IM_USERS.iter().chain(&LEGACY_USERS).copied().collect();
    let groups: Vec<String> = made.groups.iter().filter(|(_, g)| !g.shown.is_empty()).map(|(g, _)| g.clone()).collect();
    let roll = rng.random_range(0..100);
    let ok = if roll < 50 || groups.is_empty() {
        let (a, b) = (everyone[rng.random_range(0..everyone.len())], everyone[rng.random_range(0..everyone.len())]);
        if a == b {
            return;
        }
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let key = format!("c2c:{x}:{y}");
        if !may_write(admin, legacy, made, &key, side_of(a)).await {
            made.waited += 1;
            return;
        }
        let t = format!("c2c-{n:04}-{a}-{b}");
        made.pairs.insert((x.to_owned(), y.to_owned()));
        let ok = send(im, legacy, http, a, Ok(b), &t, n).await;
        if ok {
            wrote(made, &key, side_of(a), t);
        }
        ok
    } else if roll < 85 {
        let g = groups[rng.random_range(0..groups.len())].clone();
        let from = made.groups[&g].writers[rng.random_range(0..2)];
        if !made.groups[&g].shown.contains(&side_of(from)) {
            made.waited += 1;
            return;
        }
        let key = format!("group:{g}");
        if !may_write(admin, legacy, made, &key, side_of(from)).await {
            made.waited += 1;
            return;
        }
        let t = format!("grp-{n:04}-{g}-{from}");
        let ok = send(im, legacy, http, from, Err(&g), &t, n).await;
        if ok {
            wrote(made, &key, side_of(from), t);
        }
        ok
    } else {
        let g = groups[rng.random_range(0..groups.len())].clone();
        let (home, owner) = (made.groups[&g].home, made.groups[&g].writers[0]);
        if !made.groups[&g].shown.contains(&home) {
            made.waited += 1;
            return;
        }
        let floater = FLOATERS[rng.random_range(0..FLOATERS.len())];
        match (rng.random_range(0..3), home) {
            (0, Side::Im) => {
                let body = json!({"GroupId": g, "Name": format!("{g} r{n}"), "Introduction": format!("intro {n}")});
                im_call(im, owner, "group_open_http_svc/modify_group_base_info", body).await
            }
            (0, Side::Legacy) => {
                let body =
                    json!({"operator": owner, "name": format!("{g} r{n}"), "introduction": format!("intro {n}")});
                legacy_call(http, legacy, reqwest::Method::PATCH, &format!("/api/groups/{g}"), body).await
            }
            (1, Side::Im) => {
                let body = json!({"GroupId": g, "MemberList": [{"Member_Account": floater}]});
                im_call(im, owner, "group_open_http_svc/add_group_member", body).await
            }
            (1, Side::Legacy) => {
                let body = json!({"operator": owner, "members": [floater]});
                legacy_call(http, legacy, reqwest::Method::POST, &format!("/api/groups/{g}/members"), body).await
            }
            (_, Side::Im) => {
                let body = json!({"GroupId": g, "MemberToDel_Account": [floater]});
                im_call(im, owner, "group_open_http_svc/delete_group_member", body).await
            }
            (_, Side::Legacy) => {
                let body = json!({"operator": owner, "members": [floater]});
                legacy_call(http, legacy, reqwest::Method::POST, &format!("/api/groups/{g}/kick"), body).await
            }
        }
    };
    made.ops += 1;
    if !ok {
        made.failed_ops += 1;
    }
}

/// A group created on `side` by its owner, with a writer from the other app (and a third user) as members.
async fn create_group(
    im: &RunningEmulator,
    legacy: &str,
    http: &reqwest::Client,
    side: Side,
    g: &str,
    made: &mut Made,
) {
    let (owner, writer, third) = match side {
        Side::Im => (IM_USERS[0], LEGACY_USERS[2], IM_USERS[1]),
        Side::Legacy => (LEGACY_USERS[0], IM_USERS[2], LEGACY_USERS[1]),
    };
    let ok = match side {
        Side::Im => {
            let body = json!({"Owner_Account": owner, "Type": "Public", "GroupId": g, "Name": g,
                              "MemberList": [{"Member_Account": writer}, {"Member_Account": third}]});
            im_call(im, owner, "group_open_http_svc/create_group", body).await
        }
        Side::Legacy => {
            let body = json!({"group_id": g, "name": g, "owner": owner, "members": [writer, third]});
            legacy_call(http, legacy, reqwest::Method::POST, "/api/groups", body).await
        }
    };
    assert!(ok, "group {g} created on {side:?}");
    made.groups.insert(g.to_owned(), Group { home: side, writers: [owner, writer], shown: BTreeSet::new() });
    made.ops += 1;
}

/// Notes which app now shows each group (IM's answer may be an injected fault: asked again next time).
async fn see_groups(admin: &imbridge_im::ImClient, legacy: &RunningLegacyEmulator, made: &mut Made) {
    let pending: Vec<String> = made.groups.iter().filter(|(_, g)| !g.on_both()).map(|(g, _)| g.clone()).collect();
    if pending.is_empty() {
        return;
    }
    for g in &pending {
        if legacy_group(legacy, g).is_some() {
            made.groups.get_mut(g).expect("made").shown.insert(Side::Legacy);
        }
    }
    let Ok(infos) = admin.group_infos(&pending, None).await else { return };
    for i in infos.into_iter().filter(|i| i.error_code == 0) {
        if let Some(g) = made.groups.get_mut(&i.group_id) {
            g.shown.insert(Side::Im);
        }
    }
}

/// A group's (name, introduction) and sorted members.
type GroupView = Option<((String, String), Vec<String>)>;

/// One conversation as both systems show it: messages in order, and a group's profile and members.
#[derive(Debug, PartialEq)]
struct Both {
    legacy: Vec<String>,
    im: Vec<String>,
    legacy_group: GroupView,
    im_group: GroupView,
}

async fn c2c_both(im: &imbridge_im::ImClient, legacy: &str, a: &str, b: &str) -> Both {
    Both {
        legacy: legacy_texts(legacy, &format!("/api/c2c/{a}/{b}/messages")).await,
        im: c2c_texts(im, a, b).await,
        legacy_group: None,
        im_group: None,
    }
}

async fn group_both(im: &imbridge_im::ImClient, legacy: &RunningLegacyEmulator, g: &str) -> Both {
    let im_group = match group_profile(im, g).await {
        Some(p) => Some((p, group_members(im, g).await.unwrap_or_default())),
        None => None,
    };
    Both {
        legacy: legacy_texts(&legacy.url(), &format!("/api/groups/{g}/messages")).await,
        im: group_texts(im, g).await,
        legacy_group: legacy_group(legacy, g),
        im_group,
    }
}

/// A group's (name, introduction) and sorted members on legacy.
fn legacy_group(legacy: &RunningLegacyEmulator, g: &str) -> Option<((String, String), Vec<String>)> {
    let v = legacy.emulator().read(|s| serde_json::to_value(s).expect("legacy state json"));
    let grp = v["groups"].get(g)?;
    let profile = (
        grp["name"].as_str().unwrap_or_default().to_owned(),
        grp["introduction"].as_str().unwrap_or_default().to_owned(),
    );
    let members = grp["members"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    Some((profile, members))
}

/// Every conversation and group as both systems show them, keyed `c2c:a:b` / `group:g`.
async fn snapshot(im: &imbridge_im::ImClient, legacy: &RunningLegacyEmulator, made: &Made) -> BTreeMap<String, Both> {
    let url = legacy.url();
    let mut out = BTreeMap::new();
    for (a, b) in &made.pairs {
        out.insert(format!("c2c:{a}:{b}"), c2c_both(im, &url, a, b).await);
    }
    for g in made.groups.keys() {
        out.insert(format!("group:{g}"), group_both(im, legacy, g).await);
    }
    out
}

/// Waits until both systems stop changing for 4 s (the pipeline settled), at most `limit`.
async fn settle(
    im: &imbridge_im::ImClient,
    legacy: &RunningLegacyEmulator,
    made: &Made,
    limit: Duration,
) -> BTreeMap<String, Both> {
    let start = Instant::now();
    let mut last = snapshot(im, legacy, made).await;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(4) && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = snapshot(im, legacy, made).await;
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_every_fault_reconcile_makes_both_systems_identical() {
    let _turn = turn(module_path!()).await;
    logs();
    let broker = Arc::new(PrivateBroker::start());
    let http = reqwest::Client::new();

    // IM: every account, then the faults.
    let im = spawn_im_with(EmulatorConfig { rate_limits_enabled: false, ..EmulatorConfig::default() }).await;
    let admin = im_client(&im);
    let everyone: Vec<&str> = IM_USERS.iter().chain(&LEGACY_USERS).chain(&FLOATERS).copied().collect();
    import_accounts(&admin, &everyone).await;

    let mut sb = Sandbox::new("rcfault", 3).with_im(&im).pipeline("");
    sb.config.kafka = broker.kafka();
    sb.config.ingest.listen = ([127, 0, 0, 1], free_port()).into();
    let ingest_addr = sb.config.ingest.listen;
    let ingest_config = sb.write_config("ingest");
    let ingest = sb.start(&ingest_config, &["ingest"], "ingest-0");
    eventually("ingest ready", Duration::from_secs(60), || ready(ingest_addr)).await;

    let legacy = spawn_legacy_with(LegacyEmulatorConfig {
        ingest_url: Some(format!("http://{ingest_addr}")),
        webhook_secret: SigningSecret::new(WEBHOOK_SECRET),
        echo_webhooks: true,
        // 7% answered 503, 3% applied but answered after to-legacy's 3 s timeout (its retry must be deduplicated).
        apply_faults: ApplyFaults { fail_rate: 0.07, stall_rate: 0.03, stall_ms: 4_000, seed: 12 },
        ..LegacyEmulatorConfig::default()
    })
    .await;
    let legacy_url = legacy.url();
    for u in &everyone {
        assert!(legacy_call(&http, &legacy_url, reqwest::Method::POST, "/api/users", json!({"user_id": u})).await);
    }
    im.emulator().set_callback_url(Some(&format!("http://{ingest_addr}/v1/im/callback"))).expect("callback url");

    sb.config.to_legacy.apply_url = legacy.apply_url();
    sb.config.to_legacy.request_timeout_ms = 3_000;
    // Reconcile runs here only after the traffic, the restarts and a settle, up to minutes after a group's first
    // refused event; the service would check it `check_delay_ms` (30 s) after the activity.
    sb.config.to_legacy.order.unknown_group_hold_ms = 900_000;
    sb.config.reconcile.legacy_url = legacy_url.clone();
    sb.config.reconcile.legacy_secret = SigningSecret::new(APPLY_SECRET);
    let config = sb.write_config("imbridge");
    let sb = Arc::new(sb);
    let to_im = sb.start(&config, &["to-im"], "to-im-0");
    let to_legacy = sb.start(&config, &["to-legacy"], "to-legacy-0");
    let (to_im_addr, to_legacy_addr) = (to_im.to_im_ops().await, to_legacy.to_legacy_ops().await);
    eventually("the pipeline is ready", Duration::from_secs(60), || async move {
        ready(to_im_addr).await && ready(to_legacy_addr).await
    })
    .await;

    let mut made = Made::default();
    for (g, side) in [("imclub", Side::Im), ("imteam", Side::Im), ("lgclub", Side::Legacy), ("lgteam", Side::Legacy)] {
        create_group(&im, &legacy_url, &http, side, g, &mut made).await;
    }
    made.ops = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !made.groups.values().all(Group::on_both) {
        assert!(Instant::now() < deadline, "the first groups on both sides: {:?}", made.groups);
        see_groups(&admin, &legacy, &mut made).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    im.emulator()
        .set_faults(Faults {
            seed: 12,
            callback_drop_ratio: 0.10,
            rest_failure_ratio: 0.05,
            rest_failure_kinds: vec![RestFailureKind::Http500, RestFailureKind::Timeout],
            rest_timeout_ms: 2_000,
            ..Faults::default()
        })
        .expect("faults");

    // The faults, on their own schedule while the traffic runs.
    // Which ingest outage is under way (0: none), so the traffic can make a member change IM cannot report.
    let outage = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let faults = {
        let (sb, config, broker, outage) = (sb.clone(), config.clone(), broker.clone(), outage.clone());
        tokio::spawn(async move {
            let at = Instant::now();
            let until = |s: u64| tokio::time::sleep_until((at + Duration::from_secs(s)).into());
            let (mut ingest, mut to_im, mut to_legacy) = (ingest, to_im, to_legacy);
            let mut log = Vec::new();
            for (n, (kill_at, down)) in [(5u64, 6u64), (24, 8), (60, 10)].into_iter().enumerate() {
                until(kill_at).await;
                ingest.kill9();
                outage.store(n + 1, std::sync::atomic::Ordering::SeqCst);
                log.push(format!("ingest kill -9 at {kill_at} s, down {down} s"));
                until(kill_at + down).await;
                outage.store(0, std::sync::atomic::Ordering::SeqCst);
                ingest = sb.start(&config, &["ingest"], &format!("ingest-{}", n + 1));
                if n == 0 {
                    until(15).await;
                    to_im.kill9();
                    log.push("to-im kill -9 at 15 s, down 3 s".into());
                    until(18).await;
                    to_im = sb.start(&config, &["to-im"], "to-im-1");
                }
                if n == 1 {
                    until(36).await;
                    let b = broker.clone();
                    tokio::task::spawn_blocking(move || b.stop()).await.expect("stop");
                    log.push("broker stopped at 36 s for 20 s".into());
                    until(56).await;
                    let b = broker.clone();
                    tokio::task::spawn_blocking(move || b.restart()).await.expect("restart");
                    to_legacy.kill9();
                    log.push("to-legacy kill -9 after the broker came back, down 2 s".into());
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    to_legacy = sb.start(&config, &["to-legacy"], "to-legacy-1");
                }
            }
            (ingest, to_im, to_legacy, log)
        })
    };

    // Both apps' traffic, about 5 operations a second; both apps create groups during the faults.
    let mut rng = StdRng::seed_from_u64(12);
    let traffic_start = Instant::now();
    let mut created = [0, 0];
    let mut outage_changes = 0;
    while traffic_start.elapsed() < TRAFFIC {
        see_groups(&admin, &legacy, &mut made).await;
        // In each ingest outage, imclub's owner adds or kicks the floater fay on IM: the callback is lost for
        // sure, so reconcile must decide the member from evidence (an IM-only join; a copied membership IM ended).
        let o = outage.load(std::sync::atomic::Ordering::SeqCst);
        if o > outage_changes {
            outage_changes = o;
            let on_im =
                admin.all_group_members("imclub", None).await.map(|m| m.iter().any(|m| m.member_account == "fay"));
            if let Ok(on_im) = on_im {
                let ok = if on_im {
                    let body = json!({"GroupId": "imclub", "MemberToDel_Account": ["fay"]});
                    im_call(&im, IM_USERS[0], "group_open_http_svc/delete_group_member", body).await
                } else {
                    let body = json!({"GroupId": "imclub", "MemberList": [{"Member_Account": "fay"}]});
                    im_call(&im, IM_USERS[0], "group_open_http_svc/add_group_member", body).await
                };
                eprintln!(
                    "ingest outage {o}: fay {} imclub on IM: {ok}",
                    if on_im { "kicked from" } else { "added to" }
                );
                made.ops += 1;
                made.failed_ops += u64::from(!ok);
            }
            // A group created on IM while no ingest answers: its creation callback is lost for sure, and its
            // owner writes in it at once; legacy refuses those events until reconcile creates it there.
            if o == 1 {
                create_group(&im, &legacy_url, &http, Side::Im, LOST_CREATION, &mut made).await;
            }
        }
        if rng.random_range(0..40) == 0 {
            let side = if rng.random_bool(0.5) { Side::Im } else { Side::Legacy };
            let k = &mut created[side as usize];
            if *k < 3 {
                let g = format!("{}new{k}", if side == Side::Im { "im" } else { "lg" });
                create_group(&im, &legacy_url, &http, side, &g, &mut made).await;
                *k += 1;
            }
        }
        let waited = made.waited;
        operate(&im, &admin, &legacy_url, &http, &mut rng, &mut made).await;
        // A pick that had to wait for its turn is not an operation: another one is tried at once.
        if made.waited == waited {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (mut ingest, mut to_im, mut to_legacy, fault_log) = faults.await.expect("fault schedule");
    let traffic_end = Instant::now();
    let stats = im.emulator().stats();
    let dropped: u64 = stats.callbacks_dropped.values().sum();
    // Every callback IM did not deliver, by command: dropped on purpose, or failed (ingest down).
    let mut lost = stats.callbacks_dropped.clone();
    for (k, v) in &stats.callbacks_failed {
        *lost.entry(k.clone()).or_default() += v;
    }

    // The apply services up again (a consumer that lost the broker can take minutes to rejoin on this loaded
    // machine): reconciling while one is down would only produce repairs nothing applies.
    // The restarted processes' own ops addresses (a restart may listen elsewhere).
    let (to_im_addr, to_legacy_addr) = (to_im.to_im_ops().await, to_legacy.to_legacy_ops().await);
    let services_ready = || async move { ready(to_im_addr).await && ready(to_legacy_addr).await };
    eventually("to-im and to-legacy ready after the faults", Duration::from_secs(300), services_ready).await;
    // Reconcile until a pass finds nothing it can repair.
    let before = settle(&admin, &legacy, &made, Duration::from_secs(60)).await;
    let differing_before = before.values().filter(|b| b.legacy != b.im || b.legacy_group != b.im_group).count();
    let members_before: Vec<String> = before
        .iter()
        .filter(|(_, b)| b.legacy_group.as_ref().map(|g| &g.1) != b.im_group.as_ref().map(|g| &g.1))
        .map(|(k, b)| format!("{k}: legacy {:?}, IM {:?}", b.legacy_group, b.im_group))
        .collect();
    eprintln!("group members differing after the traffic: {members_before:?}");
    let mut first: Option<Value> = None;
    let mut repaired_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let (mut repaired, mut im_calls, mut checked, mut passes) = (0u64, 0u64, 0u64, 0usize);
    let mut left: Vec<Value>;
    loop {
        assert!(passes < MAX_PASSES, "not converged after {MAX_PASSES} reconcile passes");
        passes += 1;
        let path = sb.file(&format!("pass-{passes}.json"));
        let (_, out) = run_cli(&config, &["reconcile", "--once", "--report", path.to_str().expect("utf8")]);
        let r = read_report(&path);
        eprintln!("reconcile pass {passes}:\n{out}");
        im_calls += r["im_calls"].as_u64().unwrap_or(0);
        checked += r["conversations_checked"].as_u64().unwrap_or(0);
        let findings = r["findings"].as_array().cloned().unwrap_or_default();
        let mut produced = 0;
        for f in &findings {
            if f["repair_event"].is_string() && f["not_repaired"].is_null() {
                produced += 1;
                *repaired_by_kind.entry(f["kind"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        repaired += produced;
        first.get_or_insert(r.clone());
        left = findings;
        let errors = r["errors"].as_array().map_or(0, Vec::len);
        if produced == 0 && errors == 0 {
            break;
        }
        eventually("to-im and to-legacy ready", Duration::from_secs(300), services_ready).await;
        settle(&admin, &legacy, &made, Duration::from_secs(60)).await;
    }
    let converged = traffic_end.elapsed();
    let holds = match reqwest::get(format!("http://{to_legacy_addr}/metrics")).await {
        Ok(r) => imbridge_testkit::prom::sample(&r.text().await.unwrap_or_default(), UNKNOWN_GROUP_HOLDS),
        Err(_) => f64::NAN,
    };
    assert!(left.is_empty(), "differences no repair could fix: {left:#?}");

    let rest_faults: u64 = im.emulator().stats().rest_faults.values().flat_map(|k| k.values()).sum();
    // Faults off for the test's own reads; then every conversation and group compared: the same messages in the
    // same order, none twice, and for a group the same profile and members.
    im.emulator().set_faults(Faults::default()).expect("faults off");
    let after = settle(&admin, &legacy, &made, Duration::from_secs(30)).await;
    for (key, b) in &after {
        let unique = |v: &Vec<String>| v.iter().collect::<BTreeSet<_>>().len() == v.len();
        assert!(unique(&b.legacy), "{key}: a duplicate on legacy: {:?}", b.legacy);
        assert!(unique(&b.im), "{key}: a duplicate on IM: {:?}", b.im);
        assert_eq!(b.legacy, b.im, "{key}: the same messages in the same order on both sides");
        if key.starts_with("group:") {
            assert!(b.legacy_group.is_some(), "{key} on legacy");
            assert_eq!(b.legacy_group, b.im_group, "{key}: the same profile and members on both sides");
        }
    }
    let mixed = made.sides.values().filter(|s| s.len() == 2).count();
    assert!(after.contains_key(&format!("group:{LOST_CREATION}")), "the group whose creation callback was lost");
    assert!(
        holds >= 1.0,
        "to-legacy held the events of {LOST_CREATION} (created during an ingest outage) for its creation: {holds}"
    );

    let first = first.expect("one pass");
    let kinds: Vec<String> = first["kinds"]
        .as_object()
        .map(|k| {
            k.iter()
                .map(|(kind, row)| {
                    format!(
                        "{kind}: missing in IM {} / in legacy {} / different {} / out of order {}",
                        row["missing_in_im"], row["missing_in_legacy"], row["different"], row["out_of_order"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let conversations = after.len();
    println!(
        "figures: {} operations ({} refused or failed at the source; {} picks waited for their turn) over {} \
         conversations and groups ({mixed} written from both apps; groups created on IM {}, on legacy {} during \
         the faults); faults: {}; IM dropped {dropped} callbacks and failed {rest_faults} REST calls (traffic and \
         reconcile); callbacks lost by command {lost:?}; after the traffic {differing_before} conversations and \
         groups differed; first pass: {}; repaired {repaired} ({repaired_by_kind:?}) in {passes} passes; \
         converged {converged:.1?} after the traffic ended; to-legacy held refused events of a group it never \
         applied anything to {holds} times (since its last restart); every conversation in the same order and every group \
         with the same members; reconcile IM calls {im_calls} for {checked} conversation checks ({:.0} per 1,000 \
         conversations checked; {:.0} per 1,000 conversations to converge)",
        made.ops,
        made.failed_ops,
        made.waited,
        conversations,
        created[0],
        created[1],
        fault_log.join("; "),
        kinds.join("; "),
        im_calls as f64 * 1000.0 / checked.max(1) as f64,
        im_calls as f64 * 1000.0 / conversations.max(1) as f64,
    );

    for p in [&mut ingest, &mut to_im, &mut to_legacy] {
        p.terminate();
    }
}
