//! Callbacks received by a real HTTP server: query parameters and `Sign`, payloads of every after-callback,
//! exactly which operations fire, `ForbidCallbackControl`, the enable set, before-callbacks that reject or
//! rewrite, delivery order in serial mode, and failure counting without retries. Concurrent delivery and fault
//! injection are in `faults.rs`.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{Im, Sink, assert_code, config, importmsg, text};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn setup(token: Option<&str>, enabled: Option<&[&str]>) -> (Im, Sink) {
    let sink = Sink::start().await;
    let cfg = EmulatorConfig {
        callback_url: Some(sink.url()),
        callback_token: token.map(str::to_owned),
        enabled_callbacks: enabled.map(|e| e.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()),
        // Serial delivery: these tests read payloads by position; concurrent delivery is covered by faults.rs.
        callback_concurrency: 1,
        ..config()
    };
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "bob", "cy"]).await;
    (im, sink)
}

async fn flush(im: &Im) {
    tokio::time::timeout(std::time::Duration::from_secs(10), im.running.emulator().flush_callbacks())
        .await
        .expect("callbacks delivered within 10 s");
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

#[tokio::test]
async fn query_parameters_and_sign() {
    let (im, sink) = setup(Some("xxxxyyyy"), None).await;
    im.ok(
        "openim/sendmsg",
        json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgSeq": 1, "MsgBody": text("hi")}),
    )
    .await;
    flush(&im).await;
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let q = &got[0].query;
    assert_eq!(q["SdkAppid"], "1400000000");
    assert_eq!(q["CallbackCommand"], "C2C.CallbackAfterSendMsg");
    assert_eq!(q["contenttype"], "json");
    assert_eq!(q["ClientIP"], "127.0.0.1");
    assert_eq!(q["OptPlatform"], "RESTAPI");
    let request_time: u64 = q["RequestTime"].parse().expect("RequestTime is Unix seconds");
    assert!(request_time.abs_diff(now_ms() / 1000) <= 60);
    let expected = hex::encode(Sha256::digest(format!("xxxxyyyy{}", q["RequestTime"]).as_bytes()));
    assert_eq!(q["Sign"], expected);
    // The documented example (reference §7.2).
    assert_eq!(
        imbridge_im_emulator::callbacks::sign("xxxxyyyy", "1669872112"),
        "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
    );

    // Without a token there is no Sign/RequestTime.
    let (im, sink) = setup(None, None).await;
    im.ok("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("hi")}))
        .await;
    flush(&im).await;
    let q = &sink.received()[0].query;
    assert!(!q.contains_key("Sign") && !q.contains_key("RequestTime"));
}

#[tokio::test]
async fn c2c_payloads() {
    let (im, sink) = setup(None, None).await;
    let before = now_ms();
    let sent = im
        .ok(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MsgSeq": 48374, "MsgRandom": 2837546,
            "MsgBody": text("red packet"), "CloudCustomData": "ccd"}),
        )
        .await;
    im.ok(
        "openim/admin_set_msg_read",
        json!({"Report_Account": "bob", "Peer_Account": "ann", "MsgReadTime": 1614754606}),
    )
    .await;
    flush(&im).await;
    let got = sink.received();
    assert_eq!(sink.commands(), ["C2C.CallbackAfterSendMsg", "C2C.CallbackAfterMsgReport"]);
    let b = &got[0].body;
    let t = sent["MsgTime"].as_u64().expect("MsgTime");
    assert_eq!(b["CallbackCommand"], "C2C.CallbackAfterSendMsg");
    assert_eq!(b["From_Account"], "ann");
    assert_eq!(b["To_Account"], "bob");
    assert_eq!(b["MsgSeq"], 48374);
    assert_eq!(b["MsgRandom"], 2837546);
    assert_eq!(b["MsgTime"], t);
    assert_eq!(b["MsgKey"], format!("48374_2837546_{t}"));
    assert_eq!(b["MsgKey"], sent["MsgKey"]);
    assert_eq!(b["OnlineOnlyFlag"], 0);
    assert_eq!(b["SendMsgResult"], 0);
    assert_eq!(b["UnreadMsgNum"], 1, "the recipient's total unread");
    assert_eq!(b["MsgBody"], text("red packet"));
    assert_eq!(b["CloudCustomData"], "ccd");
    let event_time = b["EventTime"].as_u64().expect("EventTime is an integer");
    assert!(event_time >= before && event_time <= now_ms(), "EventTime is in milliseconds");

    let r = &got[1].body;
    assert_eq!(r["Report_Account"], "bob");
    assert_eq!(r["Peer_Account"], "ann");
    assert_eq!(r["LastReadTime"], 1614754606);
    assert_eq!(r["UnreadMsgNum"], 1, "read time is before the message, so it stays unread");
    assert!(r["EventTime"].is_u64());
}

#[tokio::test]
async fn group_payloads_in_operation_order() {
    let (im, sink) = setup(None, None).await;
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "MyFirstGroup", "Owner_Account": "ann", "GroupId": "g",
        "Introduction": "intro", "MemberList": [{"Member_Account": "bob"}]}),
    )
    .await;
    im.ok(
        "group_open_http_svc/modify_group_base_info",
        json!({"GroupId": "g", "Notification": "NewNotification", "MaxMemberNum": 100}),
    )
    .await;
    im.ok("group_open_http_svc/modify_group_base_info", json!({"GroupId": "g", "MaxMemberNum": 200})).await;
    im.ok(
        "group_open_http_svc/add_group_member",
        json!({"GroupId": "g", "MemberList": [{"Member_Account": "cy"}, {"Member_Account": "bob"}]}),
    )
    .await;
    let sent = im
        .ok(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g", "From_Account": "bob", "Random": 123456, "MsgBody": text("red packet"),
        "GroupAtInfo": [{"GroupAtAllFlag": 1}]}),
        )
        .await;
    im.ok("group_open_http_svc/delete_group_member", json!({"GroupId": "g", "MemberToDel_Account": ["cy", "nobody"]}))
        .await;
    // Deleting only non-members changes nothing and fires nothing.
    im.ok("group_open_http_svc/delete_group_member", json!({"GroupId": "g", "MemberToDel_Account": ["nobody"]})).await;
    im.ok("group_open_http_svc/destroy_group", json!({"GroupId": "g"})).await;
    flush(&im).await;
    assert_eq!(
        sink.commands(),
        [
            "Group.CallbackAfterCreateGroup",
            "Group.CallbackAfterGroupInfoChanged",
            "Group.CallbackAfterNewMemberJoin",
            "Group.CallbackAfterSendMsg",
            "Group.CallbackAfterMemberExit",
            "Group.CallbackAfterGroupDestroyed",
        ],
        "a MaxMemberNum-only change fires no info-changed callback"
    );
    let got = sink.received();
    let b: Vec<&Value> = got.iter().map(|r| &r.body).collect();
    assert_eq!(b[0]["GroupId"], "g");
    assert_eq!(b[0]["Operator_Account"], "administrator");
    assert_eq!(b[0]["Owner_Account"], "ann");
    assert_eq!(b[0]["Type"], "Public");
    assert_eq!(b[0]["Name"], "MyFirstGroup");
    assert_eq!(b[0]["Introduction"], "intro");
    assert_eq!(b[0]["MemberList"], json!([{"Member_Account": "bob"}]));

    assert_eq!(b[1]["Notification"], "NewNotification");
    assert!(b[1].get("Name").is_none(), "only changed fields: {}", b[1]);
    assert_eq!(b[1]["Type"], "Public");
    assert_eq!(b[1]["Operator_Account"], "administrator");

    assert_eq!(b[2]["JoinType"], "Invited");
    assert_eq!(b[2]["NewMemberList"], json!([{"Member_Account": "cy"}]));

    assert_eq!(b[3]["From_Account"], "bob");
    assert_eq!(b[3]["Operator_Account"], "administrator");
    assert_eq!(b[3]["Random"], 123456);
    assert_eq!(b[3]["MsgSeq"], sent["MsgSeq"]);
    assert_eq!(b[3]["MsgTime"], sent["MsgTime"]);
    assert_eq!(b[3]["MsgBody"], text("red packet"));
    assert_eq!(b[3]["GroupAtInfo"], json!([{"GroupAtAllFlag": 1}]));
    assert_eq!(b[3]["OnlineOnlyFlag"], 0);

    assert_eq!(b[4]["ExitType"], "Kicked");
    assert_eq!(b[4]["ExitMemberList"], json!([{"Member_Account": "cy"}]));

    assert_eq!(b[5]["Owner_Account"], "ann");
    assert_eq!(b[5]["MemberList"], json!([{"Member_Account": "ann"}, {"Member_Account": "bob"}]));
    for body in &b {
        assert!(body["EventTime"].is_u64(), "EventTime is an integer: {body}");
    }
    let stats = im.running.emulator().stats();
    assert_eq!(stats.callbacks_delivered.values().sum::<u64>(), 6);
    assert_eq!(stats.callbacks_pending, 0);
}

#[tokio::test]
async fn import_and_read_apis_never_call_back() {
    let (im, sink) = setup(None, None).await;
    let now = im.now_secs();
    im.ok("im_open_login_svc/account_import", json!({"UserID": "dan"})).await;
    im.ok(
        "profile/portrait_set",
        json!({"From_Account": "ann", "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "A"}]}),
    )
    .await;
    im.friend_import("ann", "bob").await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, now - 10, "x", 5)).await;
    im.ok(
        "group_open_http_svc/import_group",
        json!({"Type": "Public", "Name": "n", "GroupId": "g", "Owner_Account": "ann", "CreateTime": now - 100}),
    )
    .await;
    im.ok(
        "group_open_http_svc/import_group_member",
        json!({"GroupId": "g", "MemberList": [{"Member_Account": "bob"}]}),
    )
    .await;
    im.ok(
        "group_open_http_svc/import_group_msg",
        json!({"GroupId": "g", "MsgList": [{"From_Account": "bob", "SendTime": now - 5, "MsgBody": text("x")}]}),
    )
    .await;
    im.ok(
        "group_open_http_svc/set_unread_msg_num",
        json!({"GroupId": "g", "Member_Account": "bob", "UnreadMsgNum": 1}),
    )
    .await;
    im.ok("group_open_http_svc/get_group_info", json!({"GroupIdList": ["g"]})).await;
    im.ok(
        "openim/admin_getroammsg",
        json!({"Operator_Account": "ann", "Peer_Account": "bob", "MaxCnt": 5, "MinTime": 0, "MaxTime": now}),
    )
    .await;
    // A failed operation fires nothing either.
    assert_code(
        &im.call(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "ghost", "MsgRandom": 1, "MsgBody": text("x")}),
        )
        .await,
        20003,
    );
    // A marker that does call back, so we know delivery works and everything before it was queued.
    im.ok(
        "openim/sendmsg",
        json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 9, "MsgBody": text("marker")}),
    )
    .await;
    flush(&im).await;
    assert_eq!(sink.commands(), ["C2C.CallbackAfterSendMsg"]);
}

#[tokio::test]
async fn forbid_callback_control_and_enable_set() {
    let (im, sink) = setup(None, None).await;
    im.create_group("g", "n", "ann").await;
    flush(&im).await;
    sink.clear();
    let forbid = json!(["ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback"]);
    im.ok("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x"), "ForbidCallbackControl": forbid})).await;
    im.ok(
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g", "Random": 1, "MsgBody": text("x"), "ForbidCallbackControl": forbid}),
    )
    .await;
    // Forbidding only the before-callback still sends the after-callback.
    im.ok(
        "openim/sendmsg",
        json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 2, "MsgBody": text("y"),
        "ForbidCallbackControl": ["ForbidBeforeSendMsgCallback"]}),
    )
    .await;
    flush(&im).await;
    assert_eq!(sink.commands(), ["C2C.CallbackAfterSendMsg"]);
    assert_eq!(sink.received()[0].body["MsgBody"], text("y"));

    // Only enabled commands are sent.
    let (im, sink) = setup(None, Some(&["Group.CallbackAfterSendMsg"])).await;
    im.create_group("g", "n", "ann").await;
    im.ok("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}))
        .await;
    im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 1, "MsgBody": text("x")})).await;
    flush(&im).await;
    assert_eq!(sink.commands(), ["Group.CallbackAfterSendMsg"]);

    // Callbacks can be turned off and on at run time.
    im.running.emulator().set_callback_url(None).expect("turn off");
    im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 2, "MsgBody": text("x")})).await;
    im.running.emulator().set_callback_url(Some(&sink.url())).expect("turn on");
    im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 3, "MsgBody": text("x")})).await;
    flush(&im).await;
    let randoms: Vec<Value> = sink.of("Group.CallbackAfterSendMsg").iter().map(|r| r.body["Random"].clone()).collect();
    assert_eq!(randoms, [json!(1), json!(3)]);
}

#[tokio::test]
async fn before_callbacks_reject_and_rewrite() {
    let enabled = [
        "C2C.CallbackBeforeSendMsg",
        "C2C.CallbackAfterSendMsg",
        "Group.CallbackBeforeSendMsg",
        "Group.CallbackBeforeCreateGroup",
        "Group.CallbackBeforeInviteJoinGroup",
        "Group.CallbackAfterNewMemberJoin",
    ];
    let (im, sink) = setup(None, Some(&enabled)).await;
    // Rewrite the C2C body.
    sink.answer(
        "C2C.CallbackBeforeSendMsg",
        200,
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "MsgBody": text("censored")}),
    );
    im.ok(
        "openim/sendmsg",
        json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("rude")}),
    )
    .await;
    flush(&im).await;
    assert_eq!(sink.commands(), ["C2C.CallbackBeforeSendMsg", "C2C.CallbackAfterSendMsg"]);
    assert_eq!(sink.of("C2C.CallbackBeforeSendMsg")[0].body["MsgBody"], text("rude"));
    assert_eq!(sink.of("C2C.CallbackAfterSendMsg")[0].body["MsgBody"], text("censored"));
    // Reject: 20006, nothing stored, no after-callback.
    sink.clear();
    sink.answer("C2C.CallbackBeforeSendMsg", 200, json!({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": "no"}));
    assert_code(
        &im.call(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 2, "MsgBody": text("x")}),
        )
        .await,
        20006,
    );
    flush(&im).await;
    assert_eq!(sink.commands(), ["C2C.CallbackBeforeSendMsg"]);
    // A failing backend (HTTP 500) lets the message through.
    sink.answer("C2C.CallbackBeforeSendMsg", 500, json!({}));
    im.ok("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 3, "MsgBody": text("x")}))
        .await;

    // Group: create rejected → 10016 and no group; invite refuses one member.
    sink.answer(
        "Group.CallbackBeforeCreateGroup",
        200,
        json!({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": "no"}),
    );
    assert_code(
        &im.call("group_open_http_svc/create_group", json!({"Type": "Public", "Name": "n", "GroupId": "g0"})).await,
        10016,
    );
    assert_code(&im.call("group_open_http_svc/get_group_member_info", json!({"GroupId": "g0"})).await, 10010);
    sink.answer("Group.CallbackBeforeCreateGroup", 200, json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}));
    im.create_group("g", "n", "ann").await;
    sink.answer(
        "Group.CallbackBeforeInviteJoinGroup",
        200,
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "RefusedMembers_Account": ["cy"]}),
    );
    flush(&im).await;
    sink.clear();
    let v = im
        .ok(
            "group_open_http_svc/add_group_member",
            json!({"GroupId": "g", "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy"}]}),
        )
        .await;
    assert_eq!(v["MemberList"], json!([{"Member_Account": "bob", "Result": 1}, {"Member_Account": "cy", "Result": 0}]));
    flush(&im).await;
    assert_eq!(
        sink.of("Group.CallbackBeforeInviteJoinGroup")[0].body["DestinationMembers"],
        json!([{"Member_Account": "bob"}, {"Member_Account": "cy"}])
    );
    assert_eq!(
        sink.of("Group.CallbackAfterNewMemberJoin")[0].body["NewMemberList"],
        json!([{"Member_Account": "bob"}])
    );
    sink.answer("Group.CallbackBeforeSendMsg", 200, json!({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": "no"}));
    assert_code(
        &im.call("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 1, "MsgBody": text("x")}))
            .await,
        10016,
    );
}

#[tokio::test]
async fn failed_deliveries_are_counted_and_not_retried() {
    let (im, sink) = setup(None, None).await;
    sink.answer("C2C.CallbackAfterSendMsg", 503, json!({}));
    for r in 0..3 {
        im.ok(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": r, "MsgBody": text("x")}),
        )
        .await;
    }
    flush(&im).await;
    assert_eq!(sink.of("C2C.CallbackAfterSendMsg").len(), 3, "each attempted once");
    let stats = im.running.emulator().stats();
    assert_eq!(stats.callbacks_failed["C2C.CallbackAfterSendMsg"], 3);
    assert!(!stats.callbacks_delivered.contains_key("C2C.CallbackAfterSendMsg"));

    // An unreachable receiver: the send still succeeds, the callback counts as failed.
    let cfg =
        EmulatorConfig { callback_url: Some("http://127.0.0.1:9/cb".into()), callback_timeout_ms: 500, ..config() };
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "bob"]).await;
    im.ok("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 1, "MsgBody": text("x")}))
        .await;
    flush(&im).await;
    assert_eq!(im.running.emulator().stats().callbacks_failed["C2C.CallbackAfterSendMsg"], 1);
}

/// `callback_concurrency = 1` (set by `setup`) delivers in operation order.
#[tokio::test]
async fn serial_mode_keeps_operation_order() {
    let (im, sink) = setup(None, None).await;
    for r in 0..50u32 {
        im.ok(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": r, "MsgBody": text(&r.to_string())}),
        )
        .await;
    }
    flush(&im).await;
    let randoms: Vec<u64> = sink.received().iter().map(|r| r.body["MsgRandom"].as_u64().expect("random")).collect();
    assert_eq!(randoms, (0..50).collect::<Vec<u64>>());
}
