//! The simulated client (`/emulator/client/v4/...`): the acting user is the sender/operator, its UserSig is
//! checked, permissions apply, state changes as it would, and callbacks carry its platform and cannot be
//! suppressed.

use std::collections::BTreeSet;

use crate::common::{Im, Sink, assert_code, config, text};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::json;

async fn setup() -> (Im, Sink) {
    let sink = Sink::start().await;
    // serial delivery: these tests read callbacks by position; concurrent delivery is covered by faults.rs.
    let im = Im::start(EmulatorConfig { callback_url: Some(sink.url()), callback_concurrency: 1, ..config() }).await;
    im.accounts(&["ann", "bob", "cy", "dan"]).await;
    (im, sink)
}

async fn flush(im: &Im) {
    tokio::time::timeout(std::time::Duration::from_secs(10), im.running.emulator().flush_callbacks())
        .await
        .expect("flushed");
}

#[tokio::test]
async fn client_sendmsg_and_read_report() {
    let (im, sink) = setup().await;
    // From_Account in the body cannot impersonate; ForbidCallbackControl cannot silence a client message.
    im.client_ok(
        "ann",
        "iOS",
        "openim/sendmsg",
        json!({"From_Account": "bob", "To_Account": "bob", "MsgRandom": 7, "MsgSeq": 3,
            "MsgBody": text("hi from the app"), "ForbidCallbackControl": ["ForbidAfterSendMsgCallback"]}),
    )
    .await;
    im.client("bob", "Android", "openim/admin_set_msg_read", json!({"Peer_Account": "ann"})).await;
    flush(&im).await;
    let got = sink.received();
    assert_eq!(sink.commands(), ["C2C.CallbackAfterSendMsg", "C2C.CallbackAfterMsgReport"]);
    assert_eq!(got[0].query["OptPlatform"], "iOS");
    assert_eq!(got[0].body["From_Account"], "ann");
    assert_eq!(got[0].body["To_Account"], "bob");
    assert_eq!(got[1].query["OptPlatform"], "Android");
    assert_eq!(got[1].body["Report_Account"], "bob");
    assert_eq!(got[1].body["UnreadMsgNum"], 0);
    // The message is in the history as sent by ann.
    let now = im.now_secs();
    let h = im
        .ok(
            "openim/admin_getroammsg",
            json!({"Operator_Account": "bob", "Peer_Account": "ann", "MaxCnt": 10, "MinTime": 0, "MaxTime": now}),
        )
        .await;
    assert_eq!(h["MsgList"][0]["From_Account"], "ann");
}

#[tokio::test]
async fn client_auth() {
    let (im, _sink) = setup().await;
    let e = im.running.emulator();
    let sdk = e.config().sdkappid;
    // Another user's UserSig.
    let url = format!(
        "{}/emulator/client/v4/openim/sendmsg?sdkappid={sdk}&identifier=ann&usersig={}&platform=iOS",
        im.base(),
        e.usersig("bob")
    );
    assert_code(
        &im.post_raw(&url, json!({"To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}).to_string()).await,
        70013,
    );
    // A user that was never imported.
    im.client_code(
        "ghost",
        "iOS",
        "openim/sendmsg",
        json!({"To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}),
        70107,
    )
    .await;
    // Commands a client cannot send, and an unknown platform.
    im.client_code("ann", "iOS", "openim/importmsg", json!({}), 60009).await;
    im.client_code(
        "ann",
        "Fridge",
        "openim/sendmsg",
        json!({"To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}),
        60002,
    )
    .await;
}

#[tokio::test]
async fn client_group_permissions() {
    let (im, sink) = setup().await;
    // ann creates: she is the owner whatever the body says.
    im.client_ok(
        "ann",
        "iOS",
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "app group", "GroupId": "g",
            "Owner_Account": "bob", "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy"}]}),
    )
    .await;
    let info = im.ok("group_open_http_svc/get_group_info", json!({"GroupIdList": ["g"]})).await;
    assert_eq!(info["GroupInfo"][0]["Owner_Account"], "ann");

    // Who may do what, in order: (user, platform, group API, body, expected ErrorCode).
    let g = json!({"GroupId": "g"});
    let msg = |random: u32, t: &str| json!({"GroupId": "g", "Random": random, "MsgBody": text(t)});
    let kick = |who: &str| json!({"GroupId": "g", "MemberToDel_Account": [who]});
    im.group_steps(&[
        // A plain member may not modify, kick or destroy; may send and invite.
        ("bob", "iOS", "modify_group_base_info", json!({"GroupId": "g", "Name": "mine"}), 10007),
        ("bob", "iOS", "delete_group_member", kick("cy"), 10007),
        ("bob", "iOS", "destroy_group", g.clone(), 10007),
        ("bob", "iOS", "send_group_msg", msg(1, "hello"), 0),
        ("bob", "iOS", "add_group_member", json!({"GroupId": "g", "MemberList": [{"Member_Account": "dan"}]}), 0),
    ])
    .await;
    // A non-member may not send.
    im.accounts(&["eve"]).await;
    im.group_steps(&[
        ("eve", "Web", "send_group_msg", msg(2, "x"), 10007),
        // The owner modifies and mutes everyone; members are muted, the owner is not.
        ("ann", "Mac", "modify_group_base_info", json!({"GroupId": "g", "Name": "renamed", "MuteAllMember": "On"}), 0),
        ("bob", "iOS", "send_group_msg", msg(3, "x"), 10017),
        ("ann", "iOS", "send_group_msg", msg(4, "owner"), 0),
        // The owner kicks; bob quits; the owner cannot quit.
        ("ann", "iOS", "delete_group_member", kick("cy"), 0),
        ("bob", "Android", "quit_group", g.clone(), 0),
        ("bob", "Android", "quit_group", g.clone(), 10007),
        ("ann", "iOS", "quit_group", g.clone(), 10009),
    ])
    .await;
    let members = im.ok("group_open_http_svc/get_group_member_info", json!({"GroupId": "g"})).await;
    let names: BTreeSet<&str> =
        members["MemberList"].as_array().expect("m").iter().map(|m| m["Member_Account"].as_str().expect("a")).collect();
    assert_eq!(names, BTreeSet::from(["ann", "dan"]));

    im.client_ok("ann", "iOS", "group_open_http_svc/destroy_group", json!({"GroupId": "g"})).await;
    flush(&im).await;
    let got = sink.received();
    let seen: Vec<(String, String, String)> = got
        .iter()
        .map(|r| {
            (
                r.command().to_owned(),
                r.query["OptPlatform"].clone(),
                r.body
                    .get("Operator_Account")
                    .or(r.body.get("From_Account"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let expect = |c: &str, p: &str, o: &str| (c.to_owned(), p.to_owned(), o.to_owned());
    assert_eq!(
        seen,
        [
            expect("Group.CallbackAfterCreateGroup", "iOS", "ann"),
            expect("Group.CallbackAfterSendMsg", "iOS", "bob"),
            expect("Group.CallbackAfterNewMemberJoin", "iOS", "bob"),
            expect("Group.CallbackAfterGroupInfoChanged", "Mac", "ann"),
            expect("Group.CallbackAfterSendMsg", "iOS", "ann"),
            expect("Group.CallbackAfterMemberExit", "iOS", "ann"),
            expect("Group.CallbackAfterMemberExit", "Android", "bob"),
            expect("Group.CallbackAfterGroupDestroyed", "iOS", ""),
        ]
    );
    assert_eq!(got[6].body["ExitType"], "Quit");
    assert_eq!(got[5].body["ExitType"], "Kicked");
    assert_eq!(got[1].body["Operator_Account"], "bob");
}

#[tokio::test]
async fn admins_cannot_kick_admins_or_the_owner() {
    let (im, _sink) = setup().await;
    im.ok("group_open_http_svc/create_group", json!({"Type": "Public", "Name": "n", "GroupId": "g", "Owner_Account": "ann",
        "MemberList": [{"Member_Account": "bob", "Role": "Admin"}, {"Member_Account": "cy", "Role": "Admin"}, {"Member_Account": "dan"}]})).await;
    let kick = |who: &str| json!({"GroupId": "g", "MemberToDel_Account": [who]});
    im.group_steps(&[
        ("bob", "iOS", "delete_group_member", kick("cy"), 10007),
        ("bob", "iOS", "delete_group_member", kick("ann"), 10004),
        ("bob", "iOS", "delete_group_member", kick("dan"), 0),
        // Admins may modify but not destroy.
        ("bob", "iOS", "modify_group_base_info", json!({"GroupId": "g", "Introduction": "x"}), 0),
        ("bob", "iOS", "destroy_group", json!({"GroupId": "g"}), 10007),
    ])
    .await;
    // Client calls are not frequency-limited and are counted separately.
    let stats = im.running.emulator().stats();
    assert_eq!(stats.requests["client:group_open_http_svc/delete_group_member"], 3);
}
