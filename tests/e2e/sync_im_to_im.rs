//! Coexistence between two Tencent Cloud IM apps (`[old_side] kind = "im"`): two IM emulators, the old app
//! (SDKAppID 1400000001) and the new one (1400000002), each calling back to the one ingest with its own token;
//! ingest, to-im and to-legacy run as processes on the real broker.
//!
//! Users of both apps chat in 1:1 conversations and in two groups (one created on each app), rename the groups,
//! add and remove members. Conversations take turns like people do: a burst of two messages from one app, then
//! the answer from the other once the burst arrived there. After every round both apps must hold exactly the
//! same messages in the same order, with no duplicate. During the traffic to-im, to-legacy (the old-side
//! applier) and ingest are killed with SIGKILL and restarted. At the end both consumer groups are reset to the
//! earliest offset and run again: no message may be sent to either app again, and both stay as they were.
//!
//! Both apps call back as IM does, 8 callbacks at a time, unordered (`IMBRIDGE_IM2IM_CALLBACK_CONCURRENCY` sets
//! another number, 1 for serial deliveries), and the old app also holds back each callback by a random 1–600 ms,
//! so that a burst reaches ingest inverted about every other time:
//! - to-legacy's resequencer puts the new app's callbacks back in order, holding the whole reorder window because
//!   the old app shows copies in the order they are sent;
//! - to-im sends the old app's messages in the old app's order (`[to_im.live] old_im_reorder_window_ms`), and
//!   must have sent some ahead of the order they reached Kafka in (asserted on its metric).
//!
//! One thing is set up the way the design assumes rather than tested here (docs/im-to-im.md): nothing is sent
//! while ingest is down: IM never re-sends a callback, and between two IM apps there is no reconciliation yet to
//! repair what it missed. The kill itself lands right after the callbacks of a round were answered, so what
//! ingest acknowledged but had not forwarded yet must survive in its spool.

use std::time::Duration;

use imbridge_e2e::*;
use imbridge_im::ImClient;
use imbridge_im_emulator::{EmulatorConfig, Faults, RunningEmulator};
use imbridge_runtime::{OldSideConfig, OldSideKind};
use serde_json::json;

const OLD_APP: u64 = 1_400_000_001;
const NEW_APP: u64 = 1_400_000_002;
const OLD_TOKEN: &str = "old-app-callback-token";
const NEW_TOKEN: &str = "new-app-callback-token";
const ROUNDS: usize = 8;
const PAIRS: usize = 3;
/// How long one round may take to reach both apps (kills and restarts included).
const CONVERGE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Old,
    New,
}

/// Both apps: the emulators and their admin clients.
struct Apps {
    old: RunningEmulator,
    new: RunningEmulator,
    old_im: ImClient,
    new_im: ImClient,
}

impl Apps {
    fn emulator(&self, app: App) -> &RunningEmulator {
        match app {
            App::Old => &self.old,
            App::New => &self.new,
        }
    }

    /// Every conversation and group as both apps hold it equals `want`.
    async fn hold(&self, want: &Expected) -> Result<(), String> {
        for (i, texts) in want.c2c.iter().enumerate() {
            let (o, n) = pair(i);
            for (name, im) in [("old", &self.old_im), ("new", &self.new_im)] {
                for (a, b) in [(&o, &n), (&n, &o)] {
                    let got = c2c_texts(im, a, b).await;
                    if &got != texts {
                        return Err(format!("{name} app, c2c {a}→{b}: {got:?}, want {texts:?}"));
                    }
                }
            }
        }
        for g in &want.groups {
            for (name, im) in [("old", &self.old_im), ("new", &self.new_im)] {
                let got = group_texts(im, &g.id).await;
                if got != g.texts {
                    return Err(format!("{name} app, group {}: {got:?}, want {:?}", g.id, g.texts));
                }
                let members = group_members(im, &g.id).await;
                if members.as_ref() != Some(&g.members) {
                    return Err(format!("{name} app, group {} members {members:?}, want {:?}", g.id, g.members));
                }
                let profile = group_profile(im, &g.id).await.map(|p| p.0);
                if profile.as_deref() != Some(g.name.as_str()) {
                    return Err(format!("{name} app, group {} name {profile:?}, want {}", g.id, g.name));
                }
            }
        }
        Ok(())
    }

    /// Until both apps hold `want` (or the deadline: the last difference is the failure).
    async fn converge(&self, what: &str, want: &Expected) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            match self.hold(want).await {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() >= deadline => panic!("{what}: not converged: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Messages sent to either app by its admin (imbridge's copies): `sendmsg` and `send_group_msg`.
    fn copies_sent(&self) -> [u64; 4] {
        [
            requests(&self.old, "openim/sendmsg"),
            requests(&self.old, "group_open_http_svc/send_group_msg"),
            requests(&self.new, "openim/sendmsg"),
            requests(&self.new, "group_open_http_svc/send_group_msg"),
        ]
    }

    /// Waits until neither app has a callback in flight (every callback of what was done was answered).
    async fn callbacks_answered(&self) {
        eventually("both apps' callbacks answered", Duration::from_secs(30), || async {
            self.old.emulator().stats().callbacks_pending == 0 && self.new.emulator().stats().callbacks_pending == 0
        })
        .await;
    }
}

/// The i-th pair: an old-app user and a new-app user (every user has an account on both apps, as after the
/// import; "old"/"new" only says where they usually chat).
fn pair(i: usize) -> (String, String) {
    (format!("o{i}"), format!("n{i}"))
}

struct Group {
    id: String,
    name: String,
    members: Vec<String>,
    texts: Vec<String>,
}

struct Expected {
    c2c: Vec<Vec<String>>,
    groups: Vec<Group>,
}

impl Group {
    fn new(id: &str, mut members: Vec<&str>) -> Group {
        members.sort();
        Group {
            id: id.to_owned(),
            name: id.to_owned(),
            members: members.into_iter().map(str::to_owned).collect(),
            texts: vec![],
        }
    }

    fn join(&mut self, u: &str) {
        self.members.push(u.to_owned());
        self.members.sort();
    }

    fn leave(&mut self, u: &str) {
        self.members.retain(|m| m != u);
    }
}

/// Sleeps into the next wall-clock second.
async fn next_second() {
    let ms = imbridge_core::TimestampMs::now().as_millis();
    tokio::time::sleep(Duration::from_millis((1_000 - ms.rem_euclid(1_000)) as u64 + 20)).await;
}

async fn spawn_app(
    sb: &Sandbox,
    sdkappid: u64,
    token: &str,
    callback_concurrency: usize,
    faults: Faults,
) -> RunningEmulator {
    spawn_im_with(EmulatorConfig {
        sdkappid,
        callback_token: Some(token.to_owned()),
        state_file: Some(sb.file(&format!("im-{sdkappid}.json"))),
        callback_concurrency,
        faults,
        ..EmulatorConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_im_apps_converge_through_kills_and_a_replay_sends_nothing_again() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let mut sb = Sandbox::new("sync-im2im", PARTITIONS);
    let concurrency = std::env::var("IMBRIDGE_IM2IM_CALLBACK_CONCURRENCY").ok().and_then(|v| v.parse().ok());
    let concurrency = concurrency.unwrap_or(8);
    // Every callback of the old app waits 1–600 ms: less than to-im's reorder window (1 s), so each inversion
    // this causes is one to-im must undo.
    let delayed = Faults { seed: 7, callback_delay_ratio: 1.0, callback_delay_max_ms: 600, ..Faults::default() };
    let old = spawn_app(&sb, OLD_APP, OLD_TOKEN, concurrency, delayed).await;
    let new = spawn_app(&sb, NEW_APP, NEW_TOKEN, concurrency, Faults::default()).await;
    let apps = Apps { old_im: im_client(&old), new_im: im_client(&new), old, new };
    let users: Vec<String> = (0..PAIRS).flat_map(|i| [pair(i).0, pair(i).1]).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    import_accounts(&apps.old_im, &refs).await;
    import_accounts(&apps.new_im, &refs).await;

    // The pipeline: [im] is the new app, [old_side] the old one; ingest on a fixed port (both apps call it back,
    // and it is restarted).
    let c = &mut sb.config;
    c.im = apps.new.client_config();
    c.ingest.im_callback_token = Some(NEW_TOKEN.to_owned());
    c.ingest.listen = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    c.old_side = OldSideConfig {
        kind: OldSideKind::Im,
        im: Some(apps.old.client_config()),
        im_callback_token: Some(OLD_TOKEN.to_owned()),
    };
    c.ingest.readiness_interval_ms = 300;
    c.to_im.readiness_interval_ms = 300;
    c.to_legacy.readiness_interval_ms = 300;
    c.to_im.live.consumer.auto_commit_interval_ms = 200;
    c.to_legacy.consumer.auto_commit_interval_ms = 200;
    let config = sb.write_config("imbridge");
    let (to_im_group, to_legacy_group) = (sb.config.to_im.live.group_id.clone(), sb.config.to_legacy.group_id.clone());
    let mut ingest = sb.start(&config, &["ingest"], "ingest");
    let ingest_addr = ingest.ingest_addr().await;
    let callback = format!("http://{ingest_addr}/v1/im/callback");
    apps.old.emulator().set_callback_url(Some(&callback)).expect("old app callback url");
    apps.new.emulator().set_callback_url(Some(&callback)).expect("new app callback url");
    let mut to_im = sb.start(&config, &["to-im"], "to-im");
    let mut to_legacy = sb.start(&config, &["to-legacy"], "to-legacy");
    let (to_im_ops, to_legacy_ops) = (to_im.to_im_ops().await, to_legacy.to_legacy_ops().await);
    eventually("every part ready", Duration::from_secs(60), || async {
        ready(ingest_addr).await && ready(to_im_ops).await && ready(to_legacy_ops).await
    })
    .await;

    // One group created on each app, with members of both.
    let mut want = Expected {
        c2c: vec![vec![]; PAIRS],
        groups: vec![
            Group::new("g-old", vec!["o0", "o1", "n0", "n1"]),
            Group::new("g-new", vec!["n0", "n1", "o0", "o1"]),
        ],
    };
    let create = |owner: &str, id: &str, members: [&str; 3]| {
        json!({"Owner_Account": owner, "Type": "Public", "GroupId": id, "Name": id,
               "MemberList": members.iter().map(|m| json!({"Member_Account": m})).collect::<Vec<_>>()})
    };
    as_user(&apps.old, "o0", "group_open_http_svc/create_group", create("o0", "g-old", ["o1", "n0", "n1"])).await;
    as_user(&apps.new, "n0", "group_open_http_svc/create_group", create("n0", "g-new", ["n1", "o0", "o1"])).await;
    apps.converge("groups created on both apps", &want).await;

    let mut n = 0u32;
    for round in 0..ROUNDS {
        // People answer what they read: a turn starts in a later second than the one it answers (IM orders 1:1
        // messages by the second, then by MsgSeq, and a client's MsgSeq and imbridge's copies' are unrelated).
        next_second().await;
        // Each conversation's turn: the app that speaks alternates per round (and differs between conversations).
        for i in 0..PAIRS {
            let (o, nu) = pair(i);
            let app = if (round + i) % 2 == 0 { App::Old } else { App::New };
            let (from, to) = if app == App::Old { (&o, &nu) } else { (&nu, &o) };
            for k in 0..2 {
                let text = format!("{from}→{to} r{round}.{k}");
                // A client numbers its messages (IM orders a second's 1:1 messages by MsgSeq).
                app_user_sends_seq(apps.emulator(app), from, to, &text, 1 + n, 10_000 + n).await;
                want.c2c[i].push(text);
                n += 1;
            }
        }
        for (g, owner_app) in [(0, App::Old), (1, App::New)] {
            let app = if round % 2 == 0 {
                owner_app
            } else if owner_app == App::Old {
                App::New
            } else {
                App::Old
            };
            // The owners never leave: o0 speaks on the old app, n0 on the new one.
            let from = if app == App::Old { "o0" } else { "n0" };
            let id = want.groups[g].id.clone();
            for k in 0..2 {
                let text = format!("{id} {from} r{round}.{k}");
                app_user_sends_to_group(apps.emulator(app), from, &id, &text, 20_000 + n).await;
                want.groups[g].texts.push(text);
                n += 1;
            }
        }
        // Group changes, each made on the app the group was NOT created on.
        match round {
            3 => {
                let body = |id: &str| json!({"GroupId": id, "Name": format!("{id} renamed")});
                as_user(&apps.new, "o0", "group_open_http_svc/modify_group_base_info", body("g-old")).await;
                as_user(&apps.old, "n0", "group_open_http_svc/modify_group_base_info", body("g-new")).await;
                want.groups[0].name = "g-old renamed".into();
                want.groups[1].name = "g-new renamed".into();
            }
            5 => {
                let body = |id: &str, u: &str| json!({"GroupId": id, "MemberList": [{"Member_Account": u}]});
                as_user(&apps.new, "o0", "group_open_http_svc/add_group_member", body("g-old", "n2")).await;
                as_user(&apps.old, "n0", "group_open_http_svc/add_group_member", body("g-new", "o2")).await;
                want.groups[0].join("n2");
                want.groups[1].join("o2");
            }
            6 => {
                let body = |id: &str, u: &str| json!({"GroupId": id, "MemberToDel_Account": [u]});
                as_user(&apps.old, "o0", "group_open_http_svc/delete_group_member", body("g-old", "n1")).await;
                as_user(&apps.new, "n0", "group_open_http_svc/delete_group_member", body("g-new", "o1")).await;
                want.groups[0].leave("n1");
                want.groups[1].leave("o1");
            }
            _ => {}
        }
        // Kills while the round is on its way.
        match round {
            2 => {
                to_im.kill9();
                to_im = sb.start(&config, &["to-im"], &format!("to-im-r{round}"));
            }
            4 => {
                to_legacy.kill9();
                to_legacy = sb.start(&config, &["to-legacy"], &format!("to-legacy-r{round}"));
            }
            6 => {
                // Right after ingest answered the round's callbacks: what it spooled and had not produced yet
                // must reach Kafka after the restart.
                apps.callbacks_answered().await;
                ingest.kill9();
                ingest = sb.start(&config, &["ingest"], &format!("ingest-r{round}"));
                assert_eq!(ingest.ingest_addr().await, ingest_addr, "ingest restarts on its port");
            }
            _ => {}
        }
        apps.converge(&format!("round {round}"), &want).await;
        if round == 5 {
            // The member changes imbridge copied to each app were called back by it (IM cannot suppress those
            // callbacks), and dropped: the old app's for its admin identity, the new app's for its own.
            let page = scrape(ingest_addr).await;
            let echoes = |app| metric(&page, "imbridge_ingest_echoes_dropped_total", &[("source", app)]);
            assert!(echoes("old_im") > 0.0 && echoes("im") > 0.0, "echoes dropped on both apps: {page}");
        }
    }

    // Nothing dead-lettered, and the echoes of imbridge's own writes were recognised on both apps.
    let (to_im_ops, to_legacy_ops) = (to_im.to_im_ops().await, to_legacy.to_legacy_ops().await);
    let page = scrape(to_im_ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 0.0, "{page}");
    // Rounds 2–7 on this instance: about a dozen bursts from the old app, each inverted with probability ½.
    let reordered = metric(&page, "imbridge_to_im_reordered_total", &[]);
    eprintln!("to-im sent {reordered} of the old app's messages ahead of their arrival order");
    assert!(reordered > 0.0, "the old app's delayed callbacks were never put back in order: {page}");
    let page = scrape(to_legacy_ops).await;
    assert_eq!(metric(&page, "imbridge_to_legacy_events_total", &[("outcome", "rejected")]), 0.0, "{page}");

    // A replay of both topics from the earliest offset sends nothing again.
    let before = apps.copies_sent();
    assert!(to_im.terminate().success(), "to-im exits 0 on SIGTERM: {}", to_im.log_text());
    assert!(to_legacy.terminate().success(), "to-legacy exits 0 on SIGTERM: {}", to_legacy.log_text());
    for group in [&to_im_group, &to_legacy_group] {
        let (ok, out) = run_cli(&config, &["replay", "--group", group, "--to-earliest", "--yes"]);
        assert!(ok && out.contains(&format!("group {group} moved")), "{out}");
    }
    assert!(lag(&to_legacy_group, &sb.topics.im_events).await > 0, "the replay has something to re-read");
    let to_im = sb.start(&config, &["to-im"], "to-im-replay");
    let to_legacy = sb.start(&config, &["to-legacy"], "to-legacy-replay");
    let _ = (to_im.to_im_ops().await, to_legacy.to_legacy_ops().await);
    eventually("both groups re-consumed everything", Duration::from_secs(120), || async {
        lag(&to_im_group, &sb.topics.legacy_events).await == 0 && lag(&to_legacy_group, &sb.topics.im_events).await == 0
    })
    .await;
    apps.hold(&want).await.unwrap_or_else(|e| panic!("a replay changed an app: {e}"));
    assert_eq!(
        apps.copies_sent(),
        before,
        "a replay sent messages again (old sendmsg, old group, new sendmsg, new group)"
    );
}
