//! to-im live apply, order and echo: legacy events of many conversations, interleaved on a 4-partition topic,
//! reach the IM emulator (real HTTP) each conversation in its own order — 1:1 messages both ways, group
//! lifecycle (create, profile change, joins, leaves, messages, dismiss), a legacy `custom_data`, and an account
//! IM has never seen. Every callback IM sends about what to-im did goes to a recording server, and each one is
//! run through ingest's own normalization: all must be recognised as echoes, and no message callback may fire
//! at all (both send callbacks are suppressed).

use std::time::Duration;

use imbridge_core::TimestampMs;
use imbridge_core::event::{C2cMessage, Event};
use imbridge_e2e::*;
use imbridge_im::callback::{Callback, CallbackQuery};
use imbridge_ingest::callback::{Echo, Normalized, normalize};
use imbridge_to_im::service::{ServiceConfig, ToImConfig, start};
use tokio_util::sync::CancellationToken;

const PAIRS: usize = 8;
const PER_PAIR: usize = 25;
const GROUPS: usize = 3;
const PER_GROUP: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_conversation_in_order_and_every_callback_an_echo() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    logs();
    let topics = unique_topics("sync-order", PARTITIONS);
    create_topics(&topics, topics.partitions).await;
    let (cb_url, recorded) = recording_server().await;
    let im_server = spawn_im(Some(cb_url)).await;
    let im = im_client(&im_server);
    let users: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
    let user_refs: Vec<&str> = users.iter().map(String::as_str).collect();
    import_accounts(&im, &user_refs).await;

    // Expected final state, built while generating the events.
    let mut events = Vec::new();
    let mut c2c_expected: Vec<((String, String), Vec<String>)> = Vec::new();
    for p in 0..PAIRS {
        let (a, b) = (users[2 * p].clone(), users[2 * p + 1].clone());
        c2c_expected.push(((a, b), Vec::new()));
    }
    // One conversation with a user IM has never seen (imported on first sight by to-im).
    c2c_expected.push((("u00".to_owned(), "newbie".to_owned()), Vec::new()));
    let mut group_expected: Vec<(String, Vec<String>)> =
        (0..GROUPS).map(|g| (format!("grp-{g}"), Vec::new())).collect();
    for (g, (gid, _)) in group_expected.iter().enumerate() {
        let owner = &users[g];
        let members = [users[g + 3].as_str(), users[g + 4].as_str(), users[g + 5].as_str()];
        events.push(gcreate(&format!("{gid}-create"), gid, owner, &format!("Group {g}"), &members));
    }
    let mut n = 0;
    for round in 0..PER_PAIR.max(PER_GROUP) {
        for ((a, b), texts) in c2c_expected.iter_mut() {
            if round >= PER_PAIR {
                continue;
            }
            // Alternate directions: both directions of a chat share one key and one lane.
            let (from, to) = if round % 2 == 0 { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
            let body = format!("{a}-{b} #{round}");
            events.push(c2c(&format!("m-{n}"), &from, &to, &body));
            texts.push(body);
            n += 1;
        }
        for (g, (gid, texts)) in group_expected.iter_mut().enumerate() {
            if round >= PER_GROUP {
                continue;
            }
            // Senders are members at the time: users[g + 3] leaves at round 12.
            let from = if round < 12 { &users[g + 3 + round % 3] } else { &users[g + 4 + round % 2] };
            let body = format!("{gid} #{round}");
            events.push(gmsg(&format!("gm-{n}"), gid, from, &body));
            texts.push(body);
            n += 1;
            if round == 5 {
                events.push(gupdate(&format!("{gid}-upd"), gid, Some(&format!("Renamed {g}")), Some("new intro")));
            }
            if round == 8 {
                events.push(gjoin(&format!("{gid}-join"), gid, &[users[15].as_str(), users[16].as_str()]));
            }
            if round == 12 {
                events.push(gleave(&format!("{gid}-leave"), gid, &[users[g + 3].as_str()]));
            }
        }
    }
    // A message carrying the legacy system's own custom data.
    let mut with_custom = c2c("m-custom", "u00", "u01", "with custom data");
    if let Event::C2cMessage(C2cMessage { custom_data, .. }) = &mut with_custom.event {
        *custom_data = Some(r#"{"trace":"t-1"}"#.to_owned());
    }
    events.push(with_custom);
    c2c_expected[0].1.push("with custom data".to_owned());
    // The last group is dismissed at the end.
    events.push(gdismiss("grp-2-dismiss", "grp-2"));
    let total = events.len();
    produce(&topics.legacy_events, &events).await;

    let shutdown = CancellationToken::new();
    let mut to_im = ToImConfig { ops_listen: "127.0.0.1:0".parse().expect("addr"), ..ToImConfig::default() };
    to_im.live.group_id = imbridge_testkit::unique("sync-order-group");
    let cfg = ServiceConfig { kafka: kafka(), topics: topics.clone(), im: im_server.client_config(), to_im };
    let running = start(cfg, shutdown.clone()).await.expect("to-im starts");
    let ops = running.ops_addr;

    eventually("every event applied", Duration::from_secs(120), || async {
        let page = scrape(ops).await;
        metric(&page, "imbridge_to_im_events_total", &[("outcome", "applied")]) >= total as f64
    })
    .await;
    assert!(ready(ops).await, "ready once assigned, kafka and im reachable, states loaded");
    let page = scrape(ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 0.0);
    assert_eq!(metric(&page, "imbridge_to_im_accounts_imported_total", &[]), 1.0, "newbie imported on first sight");
    assert!(metric(&page, "imbridge_to_im_end_to_end_seconds_count", &[("kind", "c2c.message")]) > 0.0);

    // Order per conversation, as both participants see it.
    for ((a, b), want) in &c2c_expected {
        assert_eq!(&c2c_texts(&im, a, b).await, want, "c2c {a}-{b} as {a}");
        assert_eq!(&c2c_texts(&im, b, a).await, want, "c2c {a}-{b} as {b}");
    }
    // Each message was sent once: IM's dedup (120 s for sendmsg, 5 min for send_group_msg) would hide a second
    // send from the histories above, so the calls themselves are checked.
    let hidden = im_server.emulator().stats().deduplicated;
    assert!(hidden.is_empty(), "messages sent twice, hidden by IM's dedup: {hidden:?}");
    // The legacy custom data survives inside the origin-marked CloudCustomData.
    let hist = im.c2c_history("u00", "u01", 0, TimestampMs::now().as_secs() + 86_400).await.expect("history");
    let m = hist.iter().find(|m| body_text(&m.msg_body) == "with custom data").expect("message");
    let ccd = m.cloud_custom_data.as_deref().expect("cloud custom data");
    assert_eq!(imbridge_to_im::live::decode_cloud_custom_data(ccd), Some(Some(r#"{"trace":"t-1"}"#.to_owned())));
    let plain = hist.iter().find(|m| body_text(&m.msg_body) == "u00-u01 #0").expect("message");
    assert_eq!(plain.cloud_custom_data.as_deref(), Some(r#"{"imbridge_origin":"legacy"}"#));

    for (g, (gid, want)) in group_expected.iter().enumerate() {
        if g == 2 {
            assert_eq!(group_members(&im, gid).await, None, "{gid} dismissed");
            continue;
        }
        assert_eq!(&group_texts(&im, gid).await, want, "group {gid}");
        let mut members =
            vec![users[g].clone(), users[g + 4].clone(), users[g + 5].clone(), users[15].clone(), users[16].clone()];
        members.sort();
        assert_eq!(group_members(&im, gid).await, Some(members), "members of {gid}");
        assert_eq!(group_profile(&im, gid).await, Some((format!("Renamed {g}"), "new intro".to_owned())));
    }

    // No echo: every callback IM sent about to-im's work is one ingest drops.
    im_server.emulator().flush_callbacks().await;
    let calls = recorded.all();
    assert!(!calls.is_empty(), "group lifecycle calls do call back");
    let echo = Echo { admin_identifier: im.admin_identifier().to_owned(), rest_dismiss_is_echo: true };
    let mut commands = std::collections::BTreeMap::<String, usize>::new();
    for (q, body) in &calls {
        let query: CallbackQuery = serde_json::from_value(serde_json::to_value(q).expect("query")).expect("query");
        let bytes = serde_json::to_vec(body).expect("body");
        let cb = Callback::parse(&bytes, query.callback_command.as_deref()).expect("callback parses");
        *commands.entry(cb.command().to_owned()).or_default() += 1;
        let n = normalize(&cb, &query, &echo, TimestampMs::now()).expect("normalizes");
        assert!(matches!(n, Normalized::Echo(_)), "{} would be re-ingested: {n:?}", cb.command());
    }
    assert!(!commands.contains_key("C2C.CallbackAfterSendMsg"), "c2c send callbacks are suppressed: {commands:?}");
    assert!(!commands.contains_key("Group.CallbackAfterSendMsg"), "group send callbacks are suppressed: {commands:?}");
    for c in ["Group.CallbackAfterCreateGroup", "Group.CallbackAfterNewMemberJoin", "Group.CallbackAfterGroupDestroyed"]
    {
        assert!(commands.contains_key(c), "{c} expected among {commands:?}");
    }

    shutdown.cancel();
    let stats = running.wait().await.expect("clean stop");
    assert_eq!(stats.dead_lettered, 0);
}
