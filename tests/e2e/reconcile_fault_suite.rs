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
//! and both systems must hold the same thing for every conversation and group: the same messages, none twice on
//! either side, the same group profile (members: see below).
//!
//! Groups created on IM exist before the faults start: reconcile reports a group one side lacks (an IM creation
//! callback dropped) but does not create it, so groups created during the faults come from legacy, whose outbox
//! retries its webhooks.
//!
//! Order. Each 1:1 conversation and each group is driven from one side only (its users are on one app), so
//! neither system can legitimately order two of its messages differently; both apps' traffic runs at once over
//! different conversations. A repair cannot restore order everywhere: a repaired message is applied now, and
//! legacy appends (a 1:1 message IM's dropped callback lost lands last on legacy), IM gives a repaired group
//! message the next MsgSeq. So order is asserted for every conversation no pass had to repair messages in, and
//! for a repaired one only the set of messages (each exactly once); the figures say how many were which. Group
//! members are compared and their differences printed, not asserted: reconcile reports them, it does not repair
//! them yet.
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
/// Users who join and leave groups (on either side).
const FLOATERS: [&str; 2] = ["eve", "fay"];
/// How long the traffic runs; the faults are scheduled inside it.
const TRAFFIC: Duration = Duration::from_secs(75);
const MAX_PASSES: usize = 6;

/// A conversation or group driven from one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Im,
    Legacy,
}

/// What the traffic made, for the comparison: every 1:1 pair and group it touched.
#[derive(Debug, Default)]
struct Made {
    ops: u64,
    failed_ops: u64,
    pairs: BTreeSet<(String, String)>,
    groups: BTreeMap<String, Side>,
}

/// POSTs/PATCHes to legacy's user API; the answer's success.
async fn legacy_call(http: &reqwest::Client, legacy: &str, method: reqwest::Method, path: &str, body: Value) -> bool {
    http.request(method, format!("{legacy}{path}")).json(&body).send().await.is_ok_and(|r| r.status().is_success())
}

/// An IM app user's call; its success.
async fn im_call(im: &RunningEmulator, user: &str, api: &str, body: Value) -> bool {
    app_call(im, user, api, &body).await["ErrorCode"] == 0
}

/// One random operation by the users of `side`.
async fn operate(
    im: &RunningEmulator,
    legacy: &str,
    http: &reqwest::Client,
    rng: &mut StdRng,
    side: Side,
    made: &mut Made,
) {
    let n = made.ops;
    let users: &[&str] = if side == Side::Im { &IM_USERS } else { &LEGACY_USERS };
    let groups: Vec<String> = made.groups.iter().filter(|(_, s)| **s == side).map(|(g, _)| g.clone()).collect();
    let roll = rng.random_range(0..100);
    let ok = if roll < 50 {
        let (a, b) = (users[rng.random_range(0..users.len())], users[rng.random_range(0..users.len())]);
        if a == b {
            return;
        }
        let t = format!("c2c-{n:04}-{a}-{b}");
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        made.pairs.insert((x.to_owned(), y.to_owned()));
        match side {
            Side::Im => {
                let random = imbridge_core::ids::stable_u32(t.as_bytes());
                let body = json!({"To_Account": b, "MsgSeq": n + 1, "MsgRandom": random,
                                  "MsgBody": im_text(&t)});
                im_call(im, a, "openim/sendmsg", body).await
            }
            Side::Legacy => {
                let body = json!({"from": a, "to": b, "body": [{"type": "text", "text": t}]});
                legacy_call(http, legacy, reqwest::Method::POST, "/api/messages", body).await
            }
        }
    } else if roll < 85 || groups.is_empty() {
        let Some(g) = groups.get(rng.random_range(0..groups.len().max(1))) else { return };
        // The two founders never leave: they write.
        let from = users[(rng.random_range(0..2) + g.len()) % 2];
        let t = format!("grp-{n:04}-{g}-{from}");
        match side {
            Side::Im => {
                let random = imbridge_core::ids::stable_u32(t.as_bytes());
                let body = json!({"GroupId": g, "Random": random, "MsgBody": im_text(&t)});
                im_call(im, from, "group_open_http_svc/send_group_msg", body).await
            }
            Side::Legacy => {
                let body = json!({"from": from, "body": [{"type": "text", "text": t}]});
                legacy_call(http, legacy, reqwest::Method::POST, &format!("/api/groups/{g}/messages"), body).await
            }
        }
    } else {
        let g = groups[rng.random_range(0..groups.len())].clone();
        let owner = users[0];
        let floater = FLOATERS[rng.random_range(0..FLOATERS.len())];
        match (rng.random_range(0..3), side) {
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

/// A group created by the first two users of `side`.
async fn create_group(im: &RunningEmulator, legacy: &str, http: &reqwest::Client, side: Side, g: &str) {
    let ok = match side {
        Side::Im => {
            let body = json!({"Owner_Account": IM_USERS[0], "Type": "Public", "GroupId": g, "Name": g,
                              "MemberList": [{"Member_Account": IM_USERS[1]}]});
            im_call(im, IM_USERS[0], "group_open_http_svc/create_group", body).await
        }
        Side::Legacy => {
            let body = json!({"group_id": g, "name": g, "owner": LEGACY_USERS[0], "members": [LEGACY_USERS[1]]});
            legacy_call(http, legacy, reqwest::Method::POST, "/api/groups", body).await
        }
    };
    assert!(ok, "group {g} created on {side:?}");
}

/// One conversation as both systems show it.
#[derive(Debug, PartialEq)]
struct Both {
    legacy: Vec<String>,
    im: Vec<String>,
}

async fn c2c_both(im: &imbridge_im::ImClient, legacy: &str, a: &str, b: &str) -> Both {
    Both { legacy: legacy_texts(legacy, &format!("/api/c2c/{a}/{b}/messages")).await, im: c2c_texts(im, a, b).await }
}

async fn group_both(im: &imbridge_im::ImClient, legacy: &str, g: &str) -> Both {
    Both { legacy: legacy_texts(legacy, &format!("/api/groups/{g}/messages")).await, im: group_texts(im, g).await }
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
        out.insert(format!("group:{g}"), group_both(im, &url, g).await);
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
        create_group(&im, &legacy_url, &http, side, g).await;
        made.groups.insert(g.to_owned(), side);
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
    let faults = {
        let (sb, config, broker) = (sb.clone(), config.clone(), broker.clone());
        tokio::spawn(async move {
            let at = Instant::now();
            let until = |s: u64| tokio::time::sleep_until((at + Duration::from_secs(s)).into());
            let (mut ingest, mut to_im, mut to_legacy) = (ingest, to_im, to_legacy);
            let mut log = Vec::new();
            for (n, (kill_at, down)) in [(5u64, 6u64), (24, 8), (60, 10)].into_iter().enumerate() {
                until(kill_at).await;
                ingest.kill9();
                log.push(format!("ingest kill -9 at {kill_at} s, down {down} s"));
                until(kill_at + down).await;
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

    // Both apps' traffic: each operation by one side's users, about 5 a second.
    let mut rng = StdRng::seed_from_u64(12);
    let traffic_start = Instant::now();
    let mut created = 0;
    while traffic_start.elapsed() < TRAFFIC {
        let side = if rng.random_bool(0.5) { Side::Im } else { Side::Legacy };
        // New groups come from legacy: a group whose creation callback IM dropped is reported, not repaired.
        if side == Side::Legacy && rng.random_range(0..50) == 0 && created < 3 {
            let g = format!("lgnew{created}");
            create_group(&im, &legacy_url, &http, side, &g).await;
            made.groups.insert(g, side);
            made.ops += 1;
            created += 1;
        }
        operate(&im, &legacy_url, &http, &mut rng, side, &mut made).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut ingest, mut to_im, mut to_legacy, fault_log) = faults.await.expect("fault schedule");
    let traffic_end = Instant::now();
    let stats = im.emulator().stats();
    let dropped: u64 = stats.callbacks_dropped.values().sum();

    // Reconcile until a pass finds nothing it can repair.
    let before = settle(&admin, &legacy, &made, Duration::from_secs(60)).await;
    let differing_before = before.values().filter(|b| b.legacy != b.im).count();
    let mut first: Option<Value> = None;
    let mut repaired_in: BTreeSet<String> = BTreeSet::new();
    let (mut repaired, mut im_calls, mut checked, mut passes) = (0u64, 0u64, 0u64, 0usize);
    let mut last_member_findings: Vec<Value>;
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
        // Member differences are reported only; order is reported (as row counts), not repaired.
        let (members, others): (Vec<Value>, Vec<Value>) = findings
            .into_iter()
            .filter(|f| f["difference"] != "out_of_order")
            .partition(|f| f["kind"] == "group_members");
        for f in &others {
            if f["repair_event"].is_string() && f["not_repaired"].is_null() {
                repaired += 1;
                if f["kind"] == "c2c_messages" || f["kind"] == "group_messages" {
                    repaired_in.insert(f["conversation"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        last_member_findings = members;
        first.get_or_insert(r.clone());
        let errors = r["errors"].as_array().map_or(0, Vec::len);
        if others.is_empty() && errors == 0 {
            break;
        }
        settle(&admin, &legacy, &made, Duration::from_secs(60)).await;
    }
    let converged = traffic_end.elapsed();

    let rest_faults: u64 = im.emulator().stats().rest_faults.values().flat_map(|k| k.values()).sum();
    // Faults off for the test's own reads; then every conversation and group compared.
    im.emulator().set_faults(Faults::default()).expect("faults off");
    let after = settle(&admin, &legacy, &made, Duration::from_secs(30)).await;
    let mut in_order = 0;
    for (key, b) in &after {
        let (mut l, mut i) = (b.legacy.clone(), b.im.clone());
        let unique = |v: &Vec<String>| v.iter().collect::<BTreeSet<_>>().len() == v.len();
        assert!(unique(&l), "{key}: a duplicate on legacy: {l:?}");
        assert!(unique(&i), "{key}: a duplicate on IM: {i:?}");
        if repaired_in.contains(key) {
            l.sort();
            i.sort();
            assert_eq!(l, i, "{key}: the same messages on both sides (repaired, order not asserted)");
        } else {
            assert_eq!(l, i, "{key}: the same messages in the same order on both sides");
            in_order += 1;
        }
    }
    let mut member_differences = Vec::new();
    for g in made.groups.keys() {
        let (profile, members) = legacy_group(&legacy, g).unwrap_or_else(|| panic!("{g} on legacy"));
        assert_eq!(group_profile(&admin, g).await, Some(profile), "group {g}: the same profile");
        let im_members = group_members(&admin, g).await.unwrap_or_default();
        if im_members != members {
            member_differences.push(format!("{g}: legacy {members:?}, IM {im_members:?}"));
        }
    }

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
        "figures: {} operations ({} refused or failed at the source) over {} conversations and groups; faults: {}; \
         IM dropped {dropped} callbacks and failed {rest_faults} REST calls (traffic and reconcile); after the \
         traffic {differing_before} conversations differed; first pass: {}; repaired {repaired} in {passes} \
         passes; converged {converged:.1?} after the traffic ended; {in_order} conversations in the same order, \
         {} repaired (set compared); reconcile IM calls {im_calls} for {checked} conversation checks ({:.0} per \
         1,000 conversations checked; {:.0} per 1,000 conversations to converge); group member differences \
         left: {:?} ({} member findings)",
        made.ops,
        made.failed_ops,
        conversations,
        fault_log.join("; "),
        kinds.join("; "),
        repaired_in.len(),
        im_calls as f64 * 1000.0 / checked.max(1) as f64,
        im_calls as f64 * 1000.0 / conversations.max(1) as f64,
        member_differences,
        last_member_findings.len(),
    );

    for p in [&mut ingest, &mut to_im, &mut to_legacy] {
        p.terminate();
    }
}
