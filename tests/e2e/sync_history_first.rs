//! History first: live legacy events of a conversation whose history is still being imported (`importing` on
//! `imbridge.conversations`) wait — in their own lanes, spending no retry attempt, while other conversations
//! flow — and apply in order right after the history once the conversation turns `live`. `imbridge status`
//! shows the phases meanwhile, for all conversations and for one.

use std::time::Duration;

use imbridge_core::state::Phase;
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_e2e::*;
use imbridge_im::to_im_body;
use imbridge_im::types::c2c::{ImportMsgReq, SYNC_HISTORY};
use imbridge_im::types::group::{
    GroupSpec, ImportGroupMemberReq, ImportGroupMsgItem, ImportGroupMsgReq, ImportGroupReq, ImportMember,
};
use imbridge_to_im::{ToIm, ToImConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_events_wait_for_their_history_then_apply_in_order() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    logs();
    let mut sb = Sandbox::new("sync-history", PARTITIONS);
    let topics = sb.topics.clone();
    create_topics(&topics, topics.partitions).await;
    let im_server = spawn_im(None).await;
    let im = im_client(&im_server);
    import_accounts(&im, &["hx", "hy", "hz"]).await;

    let chat = ConversationKey::parse("c2c:hx:hy").expect("key");
    let grp = ConversationKey::parse("group:hg").expect("key");
    // The importer marks what it has history for before producing that history.
    set_phase(&topics.conversations, &chat, Phase::Importing).await;
    set_phase(&topics.conversations, &grp, Phase::Importing).await;

    let mut events = Vec::new();
    for i in 1..=5 {
        let (from, to) = if i % 2 == 0 { ("hy", "hx") } else { ("hx", "hy") };
        events.push(c2c(&format!("h-{i}"), from, to, &format!("live-{i}")));
        events.push(gmsg(&format!("hg-{i}"), "hg", "hx", &format!("g-live-{i}")));
        events.push(c2c(&format!("f-{i}"), "hx", "hz", &format!("free-{i}")));
        if i == 3 {
            events.push(gupdate("hg-upd", "hg", Some("renamed live"), None));
        }
    }
    produce(&topics.legacy_events, &events).await;

    let shutdown = CancellationToken::new();
    let mut to_im = ToImConfig { listen: "127.0.0.1:0".parse().expect("addr"), ..ToImConfig::default() };
    to_im.live.group_id = imbridge_testkit::unique("sync-history-group");
    let group_id = to_im.live.group_id.clone();
    let running = start_service::<ToIm>(to_im, &deps(&kafka(), &topics, im_server.client_config(), &shutdown)).await;
    let ops = running.addr;

    // A conversation with no state record is live: it flows while the others wait.
    let free: Vec<String> = (1..=5).map(|i| format!("free-{i}")).collect();
    eventually("the unrelated conversation applied", Duration::from_secs(60), || async {
        c2c_texts(&im, "hx", "hz").await == free
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c2c_texts(&im, "hx", "hy").await.is_empty(), "nothing of an importing conversation is written");
    assert_eq!(group_members(&im, "hg").await, None, "the group's history (and the group) is not there yet");
    let page = scrape(ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_waiting_for_history", &[]), 2.0, "one waiting lane per conversation");
    assert_eq!(metric(&page, "imbridge_to_im_apply_retries_total", &[]), 0.0, "waiting spends no attempt");
    assert_eq!(metric(&page, "imbridge_to_im_retries_total", &[]), 0.0, "the runner retried nothing");
    assert!(ready(ops).await);

    // imbridge status, as a library call and as the command.
    let groups = vec![(group_id.clone(), topics.legacy_events.clone())];
    let report = imbridge_to_im::status::collect(&kafka(), &topics, &groups, Some(&grp)).await.expect("status");
    assert_eq!(report.phases.importing, 2);
    assert_eq!(report.phases.live, 0);
    assert_eq!(report.conversation.as_ref().map(|c| c.phase), Some(Phase::Importing));
    assert!(report.groups[0].lag > 0, "the waiting events are not committed: {report:?}");
    let config = sb.write_to_im_config(&im_server, &group_id);
    let out = std::process::Command::new(imbridge_testkit::imbridge_bin())
        .arg("--config")
        .arg(&config)
        .args(["status", "--conversation", "c2c:hx:hy", "--group"])
        .arg(format!("{group_id}={}", topics.legacy_events))
        .output()
        .expect("imbridge status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("conversations: 2 importing, 0 live"), "{text}");
    assert!(text.contains("conversation c2c:hx:hy: importing"), "{text}");
    assert!(text.contains(&format!("group {group_id} on {}", topics.legacy_events)), "{text}");

    // The import applies the history (IM's import APIs, older times), then marks the conversations live.
    let now = TimestampMs::now().as_secs();
    for i in 1..=3u32 {
        let req = ImportMsgReq {
            sync_from_old_system: SYNC_HISTORY,
            from_account: "hy".into(),
            to_account: "hx".into(),
            msg_seq: Some(i),
            msg_random: i,
            msg_time_stamp: now - 3000 + i64::from(i),
            msg_body: to_im_body(&text_body(&format!("hist-{i}"))),
            cloud_custom_data: None,
        };
        im.importmsg(&req).await.expect("importmsg");
    }
    im.import_group(&ImportGroupReq {
        group: GroupSpec {
            group_type: "Public".into(),
            name: "history".into(),
            owner_account: Some("hx".into()),
            group_id: Some("hg".into()),
            ..Default::default()
        },
        create_time: Some(now - 3600),
    })
    .await
    .expect("import_group");
    im.import_group_member(&ImportGroupMemberReq {
        group_id: "hg".into(),
        member_list: vec![ImportMember { member_account: "hy".into(), ..Default::default() }],
    })
    .await
    .expect("import_group_member");
    let msg_list = (1..=3)
        .map(|i| ImportGroupMsgItem {
            from_account: "hy".into(),
            send_time: now - 3000 + i,
            random: Some(i as u32),
            msg_body: to_im_body(&text_body(&format!("g-hist-{i}"))),
            ..Default::default()
        })
        .collect();
    im.import_group_msg(&ImportGroupMsgReq { group_id: "hg".into(), recent_contact_flag: None, msg_list })
        .await
        .expect("import_group_msg");
    set_phase(&topics.conversations, &chat, Phase::Live).await;
    set_phase(&topics.conversations, &grp, Phase::Live).await;

    let want_chat: Vec<String> =
        (1..=3).map(|i| format!("hist-{i}")).chain((1..=5).map(|i| format!("live-{i}"))).collect();
    let want_group: Vec<String> =
        (1..=3).map(|i| format!("g-hist-{i}")).chain((1..=5).map(|i| format!("g-live-{i}"))).collect();
    eventually("the waiting events applied after the history", Duration::from_secs(60), || async {
        c2c_texts(&im, "hx", "hy").await == want_chat && group_texts(&im, "hg").await == want_group
    })
    .await;
    assert_eq!(group_profile(&im, "hg").await.map(|p| p.0), Some("renamed live".to_owned()));
    let page = scrape(ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_history_waits_total", &[]), 2.0, "two lanes waited (their first events)");
    assert_eq!(metric(&page, "imbridge_to_im_waiting_for_history", &[]), 0.0);
    assert_eq!(metric(&page, "imbridge_to_im_apply_retries_total", &[]), 0.0);
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 0.0);
    let report = imbridge_to_im::status::collect(&kafka(), &topics, &groups, Some(&chat)).await.expect("status");
    assert_eq!((report.phases.importing, report.phases.live), (0, 2));
    assert_eq!(report.conversation.as_ref().map(|c| c.phase), Some(Phase::Live));

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

fn text_body(s: &str) -> Vec<imbridge_core::Element> {
    text(s)
}
