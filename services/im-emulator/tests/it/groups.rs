//! Groups: import (group, members, messages with their time rules, unread reset), unread positions, live
//! management and messages (seq, dedup), and the read side (info, members, history, group list paging).

use crate::common::{Im, assert_code, config, text};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::{Value, json};

fn msg(from: &str, time: u64, t: &str) -> Value {
    json!({"From_Account": from, "SendTime": time, "Random": time as u32, "MsgBody": text(t)})
}

async fn member_seqs(im: &Im, gid: &str) -> Vec<(String, u64)> {
    let v = im
        .ok("group_open_http_svc/get_group_member_info", json!({"GroupId": gid, "MemberInfoFilter": ["MsgSeq"]}))
        .await;
    v["MemberList"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["Member_Account"].as_str().expect("a").to_owned(), m["MsgSeq"].as_u64().expect("seq")))
        .collect()
}

async fn next_seq(im: &Im, gid: &str) -> u64 {
    let v = im
        .ok(
            "group_open_http_svc/get_group_info",
            json!({"GroupIdList": [gid], "ResponseFilter": {"GroupBaseInfoFilter": ["NextMsgSeq"]}}),
        )
        .await;
    v["GroupInfo"][0]["NextMsgSeq"].as_u64().expect("NextMsgSeq")
}

/// Imports a group created at `created` owned by ann, with bob and cy as members.
async fn imported_group(im: &Im, created: u64) -> String {
    im.accounts(&["ann", "bob", "cy"]).await;
    let v = im
        .ok(
            "group_open_http_svc/import_group",
            json!({"Type": "Public", "Name": "team", "Owner_Account": "ann", "CreateTime": created}),
        )
        .await;
    let gid = v["GroupId"].as_str().expect("GroupId").to_owned();
    assert!(gid.starts_with("@TGS#"), "{gid}");
    let v = im
        .ok(
            "group_open_http_svc/import_group_member",
            json!({"GroupId": gid, "MemberList": [{"Member_Account": "bob", "JoinTime": created + 1}, {"Member_Account": "cy", "Role": "Admin"}]}),
        )
        .await;
    assert_eq!(v["MemberList"], json!([{"Member_Account": "bob", "Result": 1}, {"Member_Account": "cy", "Result": 1}]));
    gid
}

#[tokio::test]
async fn import_group_rules() {
    let im = Im::start(config()).await;
    im.accounts(&["ann"]).await;
    im.ok(
        "group_open_http_svc/import_group",
        json!({"Type": "Private", "Name": "n", "GroupId": "custom_1", "Owner_Account": "ann"}),
    )
    .await;
    assert_code(
        &im.call("group_open_http_svc/import_group", json!({"Type": "Private", "Name": "n", "GroupId": "custom_1"}))
            .await,
        10021,
    );
    assert_code(
        &im.call("group_open_http_svc/import_group", json!({"Type": "Private", "Name": "n", "GroupId": "@TGS#mine"}))
            .await,
        10015,
    );
    assert_code(&im.call("group_open_http_svc/import_group", json!({"Type": "AVChatRoom", "Name": "n"})).await, 10007);
    assert_code(&im.call("group_open_http_svc/import_group", json!({"Type": "Party", "Name": "n"})).await, 10004);
    assert_code(&im.call("group_open_http_svc/import_group", json!({"Type": "Public"})).await, 10004);
    assert_code(
        &im.call("group_open_http_svc/import_group", json!({"Type": "Public", "Name": "n".repeat(31)})).await,
        10004,
    );
    assert_code(
        &im.call("group_open_http_svc/import_group", json!({"Type": "Public", "Name": "n", "Owner_Account": "ghost"}))
            .await,
        10019,
    );
}

#[tokio::test]
async fn import_group_member_rules() {
    let im = Im::start(config()).await;
    let created = im.now_secs() - 1000;
    let gid = imported_group(&im, created).await;
    im.accounts(&["d1", "d2", "d3", "d4"]).await;
    let v = im
        .ok(
            "group_open_http_svc/import_group_member",
            json!({"GroupId": gid, "MemberList": [
                {"Member_Account": "bob"},
                {"Member_Account": "ghost"},
                {"Member_Account": "d1", "JoinTime": created},
                {"Member_Account": "d2", "JoinTime": im.now_secs() + 100},
                {"Member_Account": "d3", "Role": "Owner"},
                {"Member_Account": "d4", "JoinTime": created + 5}]}),
        )
        .await;
    let results: Vec<i64> =
        v["MemberList"].as_array().expect("list").iter().map(|m| m["Result"].as_i64().expect("r")).collect();
    // Already a member, unknown account, JoinTime not after creation, JoinTime in the future, bad role, ok.
    assert_eq!(results, [2, 0, 0, 0, 0, 1]);
    let many: Vec<Value> = (0..101).map(|i| json!({"Member_Account": format!("m{i}")})).collect();
    assert_code(
        &im.call("group_open_http_svc/import_group_member", json!({"GroupId": gid, "MemberList": many})).await,
        10005,
    );
    assert_code(
        &im.call(
            "group_open_http_svc/import_group_member",
            json!({"GroupId": "nope", "MemberList": [{"Member_Account": "bob"}]}),
        )
        .await,
        10010,
    );

    // With strict times off, JoinTime equal to CreateTime is accepted.
    let im = Im::start(EmulatorConfig { strict_import_times: false, ..config() }).await;
    let gid = imported_group(&im, created).await;
    im.accounts(&["d1"]).await;
    let v = im
        .ok(
            "group_open_http_svc/import_group_member",
            json!({"GroupId": gid, "MemberList": [{"Member_Account": "d1", "JoinTime": created}]}),
        )
        .await;
    assert_eq!(v["MemberList"][0]["Result"], 1);
}

#[tokio::test]
async fn import_group_msg_sequences_times_and_unread_reset() {
    let im = Im::start(config()).await;
    let now = im.now_secs();
    let created = now - 10_000;
    let gid = imported_group(&im, created).await;
    // Give bob some unread first: import resets it.
    let v = im
        .ok(
            "group_open_http_svc/import_group_msg",
            json!({"GroupId": gid, "MsgList": [msg("ann", created + 10, "m1"), msg("bob", created + 20, "m2")]}),
        )
        .await;
    assert_eq!(
        v["ImportMsgResult"],
        json!([{"MsgSeq": 1, "MsgTime": created + 10, "Result": 0}, {"MsgSeq": 2, "MsgTime": created + 20, "Result": 0}])
    );
    assert_eq!(member_seqs(&im, &gid).await, [("ann".into(), 2), ("bob".into(), 2), ("cy".into(), 2)]);
    im.ok(
        "group_open_http_svc/set_unread_msg_num",
        json!({"GroupId": gid, "Member_Account": "bob", "UnreadMsgNum": 1}),
    )
    .await;
    assert_eq!(member_seqs(&im, &gid).await[1], ("bob".into(), 1));

    let v = im
        .ok(
            "group_open_http_svc/import_group_msg",
            json!({"GroupId": gid, "MsgList": [
                msg("ann", created + 20, "same second as the latest"),
                msg("ann", created + 15, "before the latest"),
                msg("ann", created - 5, "before creation"),
                msg("ann", now + 100, "in the future"),
                msg("ghost", created + 30, "unknown sender"),
                msg("ann", created + 40, "ok"),
                msg("ann", created + 35, "no longer ascending")]}),
        )
        .await;
    let results: Vec<(u64, i64)> = v["ImportMsgResult"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["MsgSeq"].as_u64().expect("seq"), r["Result"].as_i64().expect("r")))
        .collect();
    assert_eq!(results, [(0, 10004), (0, 10004), (0, 10004), (0, 10004), (0, 10004), (3, 0), (0, 10004)]);
    // Any successful import sets every member's unread to 0.
    assert_eq!(member_seqs(&im, &gid).await, [("ann".into(), 3), ("bob".into(), 3), ("cy".into(), 3)]);
    assert_eq!(next_seq(&im, &gid).await, 4);

    // Too-long message fails per item; more than 7 fails the call; AVChatRoom is refused.
    let v = im
        .ok(
            "group_open_http_svc/import_group_msg",
            json!({"GroupId": gid, "MsgList": [msg("ann", created + 50, &"x".repeat(8000))]}),
        )
        .await;
    assert_eq!(v["ImportMsgResult"][0]["Result"], 80002);
    let eight: Vec<Value> = (0..8).map(|i| msg("ann", created + 100 + i, "m")).collect();
    assert_code(
        &im.call("group_open_http_svc/import_group_msg", json!({"GroupId": gid, "MsgList": eight})).await,
        10004,
    );

    // Unread set after import, clamped to the message count; members imported later with UnreadMsgNum.
    im.ok(
        "group_open_http_svc/set_unread_msg_num",
        json!({"GroupId": gid, "Member_Account": "cy", "UnreadMsgNum": 99}),
    )
    .await;
    im.accounts(&["late"]).await;
    im.ok(
        "group_open_http_svc/import_group_member",
        json!({"GroupId": gid, "MemberList": [{"Member_Account": "late", "UnreadMsgNum": 2}]}),
    )
    .await;
    let seqs = member_seqs(&im, &gid).await;
    assert_eq!(seqs[2], ("cy".into(), 0), "unread 3 of 3 → read position 0");
    assert_eq!(seqs[3], ("late".into(), 1), "unread 2 of 3 → read position 1");
    assert_code(
        &im.call(
            "group_open_http_svc/set_unread_msg_num",
            json!({"GroupId": gid, "Member_Account": "ghost", "UnreadMsgNum": 1}),
        )
        .await,
        10004,
    );

    // The imported history reads back newest first with seqs, senders, times and randoms.
    let h = im.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": gid, "ReqMsgNumber": 20})).await;
    let got: Vec<(u64, String, u64)> = h["RspMsgList"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            (
                m["MsgSeq"].as_u64().expect("s"),
                m["From_Account"].as_str().expect("f").to_owned(),
                m["MsgTimeStamp"].as_u64().expect("t"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(3, "ann".into(), created + 40), (2, "bob".into(), created + 20), (1, "ann".into(), created + 10)]
    );
    assert_eq!(h["RspMsgList"][0]["MsgRandom"], created + 40);
    assert_eq!(h["IsFinished"], 1);
}

#[tokio::test]
async fn chatroom_unread_calls_are_accepted_without_effect() {
    let im = Im::start(config()).await;
    im.accounts(&["ann"]).await;
    let gid = im
        .ok("group_open_http_svc/import_group", json!({"Type": "ChatRoom", "Name": "room", "Owner_Account": "ann"}))
        .await["GroupId"]
        .as_str()
        .expect("id")
        .to_owned();
    im.ok(
        "group_open_http_svc/set_unread_msg_num",
        json!({"GroupId": gid, "Member_Account": "ann", "UnreadMsgNum": 5}),
    )
    .await;
}

#[tokio::test]
async fn live_group_lifecycle_and_messages() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob", "cy", "dan"]).await;
    let v = im
        .ok(
            "group_open_http_svc/create_group",
            json!({"Type": "Public", "Name": "live", "Owner_Account": "ann", "GroupId": "g1",
                   "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy", "Role": "Admin"}]}),
        )
        .await;
    assert_eq!(v["GroupId"], "g1");
    assert_code(
        &im.call(
            "group_open_http_svc/create_group",
            json!({"Type": "Public", "Name": "x", "MemberList": [{"Member_Account": "ghost"}]}),
        )
        .await,
        10019,
    );
    assert_code(
        &im.call(
            "group_open_http_svc/create_group",
            json!({"Type": "AVChatRoom", "Name": "x", "MemberList": [{"Member_Account": "bob"}]}),
        )
        .await,
        10007,
    );

    // Messages get seqs from 1; the sender has read its own message.
    let m1 = im
        .ok(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "From_Account": "bob", "Random": 42, "MsgBody": text("one")}),
        )
        .await;
    assert_eq!(m1["MsgSeq"], 1);
    // Same Random within 5 minutes: a duplicate, same answer, nothing stored.
    im.advance_secs(200);
    let dup = im
        .ok(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "From_Account": "bob", "Random": 42, "MsgBody": text("one again")}),
        )
        .await;
    assert_eq!(dup["MsgSeq"], 1);
    assert_eq!(dup["MsgTime"], m1["MsgTime"]);
    let hidden = im.running.emulator().stats().deduplicated;
    assert_eq!(hidden.get("group_open_http_svc/send_group_msg"), Some(&1), "{hidden:?}");
    im.advance_secs(101);
    let m2 = im
        .ok(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "From_Account": "bob", "Random": 42, "MsgBody": text("two")}),
        )
        .await;
    assert_eq!(m2["MsgSeq"], 2, "after 5 minutes the Random is new again");
    // The admin may post without being a member, and as a non-member user.
    im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g1", "Random": 1, "MsgBody": text("admin")})).await;
    im.ok(
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g1", "From_Account": "dan", "Random": 2, "MsgBody": text("outsider")}),
    )
    .await;
    assert_eq!(member_seqs(&im, "g1").await, [("ann".into(), 0), ("bob".into(), 2), ("cy".into(), 0)]);
    assert_code(
        &im.call(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "From_Account": "ghost", "Random": 3, "MsgBody": text("x")}),
        )
        .await,
        10019,
    );
    assert_code(
        &im.call("group_open_http_svc/send_group_msg", json!({"GroupId": "nope", "Random": 3, "MsgBody": text("x")}))
            .await,
        10010,
    );
    assert_code(
        &im.call("group_open_http_svc/send_group_msg", json!({"GroupId": "g1", "MsgBody": text("x")})).await,
        10004,
    );
    assert_code(
        &im.call(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "Random": 4, "MsgBody": text(&"x".repeat(8200))}),
        )
        .await,
        93000,
    );
    assert_code(
        &im.call(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g1", "Random": 4, "MsgPriority": "Urgent", "MsgBody": text("x")}),
        )
        .await,
        10004,
    );

    // add: Result 1 added, 2 already a member, 0 unknown; the join notice consumes a seq.
    let before = next_seq(&im, "g1").await;
    let v = im
        .ok("group_open_http_svc/add_group_member", json!({"GroupId": "g1", "MemberList": [{"Member_Account": "dan"}, {"Member_Account": "bob"}, {"Member_Account": "ghost"}]}))
        .await;
    assert_eq!(
        v["MemberList"],
        json!([{"Member_Account": "dan", "Result": 1}, {"Member_Account": "bob", "Result": 2}, {"Member_Account": "ghost", "Result": 0}])
    );
    assert_eq!(next_seq(&im, "g1").await, before + 1);
    let dan = member_seqs(&im, "g1").await.into_iter().find(|(a, _)| a == "dan").expect("dan");
    assert_eq!(dan.1, before, "a new member has nothing unread");
    // Silence 1: no notice, no seq.
    im.accounts(&["eve"]).await;
    im.ok(
        "group_open_http_svc/add_group_member",
        json!({"GroupId": "g1", "Silence": 1, "MemberList": [{"Member_Account": "eve"}]}),
    )
    .await;
    assert_eq!(next_seq(&im, "g1").await, before + 1);
    let too_many: Vec<Value> = (0..21).map(|i| json!({"Member_Account": format!("m{i}")})).collect();
    assert_code(
        &im.call("group_open_http_svc/add_group_member", json!({"GroupId": "g1", "MemberList": too_many})).await,
        10005,
    );

    // The notice is in the history as a system message.
    let h = im.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "g1", "ReqMsgNumber": 1})).await;
    assert_eq!(h["RspMsgList"][0]["IsSystemMsg"], 1);
    assert_eq!(h["RspMsgList"][0]["MsgSeq"], before);

    // modify: fields change, InfoSeq grows.
    im.ok(
        "group_open_http_svc/modify_group_base_info",
        json!({"GroupId": "g1", "Name": "renamed", "Notification": "hello", "MuteAllMember": "On",
        "AppDefinedData": [{"Key": "k", "Value": "v"}]}),
    )
    .await;
    let info = im.ok("group_open_http_svc/get_group_info", json!({"GroupIdList": ["g1", "nope"]})).await;
    let g = &info["GroupInfo"][0];
    assert_eq!(g["Name"], "renamed");
    assert_eq!(g["Notification"], "hello");
    assert_eq!(g["MuteAllMember"], "On");
    assert_eq!(g["InfoSeq"], 2);
    assert_eq!(g["AppDefinedData"], json!([{"Key": "k", "Value": "v"}]));
    assert_eq!(g["Owner_Account"], "ann");
    assert_eq!(g["MemberNum"], 5);
    assert_eq!(g["MemberList"].as_array().expect("members").len(), 5);
    assert_eq!(info["GroupInfo"][1]["ErrorCode"], 10010);
    assert_eq!(info["ErrorCode"], 0);
    assert_code(
        &im.call("group_open_http_svc/modify_group_base_info", json!({"GroupId": "g1", "MuteAllMember": "Maybe"}))
            .await,
        10004,
    );
    // On REST, From_Account acts as that user: a plain member may not modify.
    assert_code(
        &im.call(
            "group_open_http_svc/modify_group_base_info",
            json!({"GroupId": "g1", "From_Account": "bob", "Name": "x"}),
        )
        .await,
        10007,
    );

    // delete: non-members ignored, the owner cannot be removed; the leave notice consumes a seq.
    let before = next_seq(&im, "g1").await;
    im.ok("group_open_http_svc/delete_group_member", json!({"GroupId": "g1", "MemberToDel_Account": ["dan", "ghost"]}))
        .await;
    assert_eq!(next_seq(&im, "g1").await, before + 1);
    assert_code(
        &im.call("group_open_http_svc/delete_group_member", json!({"GroupId": "g1", "MemberToDel_Account": ["ann"]}))
            .await,
        10004,
    );
    let members: Vec<String> = member_seqs(&im, "g1").await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(members, ["ann", "bob", "cy", "eve"]);

    im.ok("group_open_http_svc/destroy_group", json!({"GroupId": "g1"})).await;
    assert_code(&im.call("group_open_http_svc/destroy_group", json!({"GroupId": "g1"})).await, 10010);
    assert_code(&im.call("group_open_http_svc/get_group_member_info", json!({"GroupId": "g1"})).await, 10010);
}

#[tokio::test]
async fn member_notices_can_be_turned_off() {
    let im = Im::start(EmulatorConfig { member_notices_consume_seq: false, ..config() }).await;
    im.accounts(&["ann", "bob"]).await;
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Private", "Name": "p", "Owner_Account": "ann", "GroupId": "g"}),
    )
    .await;
    im.ok("group_open_http_svc/add_group_member", json!({"GroupId": "g", "MemberList": [{"Member_Account": "bob"}]}))
        .await;
    let v =
        im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 1, "MsgBody": text("m")})).await;
    assert_eq!(v["MsgSeq"], 1);
}

#[tokio::test]
async fn read_side_paging_and_filters() {
    let im = Im::start(config()).await;
    let now = im.now_secs();
    let gid = imported_group(&im, now - 10_000).await;
    // get_group_member_info: Offset/Limit, role filter, total count.
    let p = im.ok("group_open_http_svc/get_group_member_info", json!({"GroupId": gid, "Limit": 2, "Offset": 0})).await;
    assert_eq!(p["MemberNum"], 3);
    let names: Vec<&str> =
        p["MemberList"].as_array().expect("l").iter().map(|m| m["Member_Account"].as_str().expect("a")).collect();
    assert_eq!(names, ["ann", "bob"]);
    assert_eq!(p["MemberList"][0]["Role"], "Owner");
    let p = im.ok("group_open_http_svc/get_group_member_info", json!({"GroupId": gid, "Limit": 2, "Offset": 2})).await;
    assert_eq!(p["MemberList"][0]["Member_Account"], "cy");
    assert_eq!(p["MemberList"][0]["Role"], "Admin");
    let p = im
        .ok(
            "group_open_http_svc/get_group_member_info",
            json!({"GroupId": gid, "MemberRoleFilter": ["Admin", "Owner"], "MemberInfoFilter": ["Role"]}),
        )
        .await;
    assert_eq!(
        p["MemberList"],
        json!([{"Member_Account": "ann", "Role": "Owner"}, {"Member_Account": "cy", "Role": "Admin"}])
    );
    assert_code(
        &im.call("group_open_http_svc/get_group_member_info", json!({"GroupId": gid, "Limit": 201})).await,
        10004,
    );

    // get_group_info with a base filter returns only those fields.
    let v = im
        .ok(
            "group_open_http_svc/get_group_info",
            json!({"GroupIdList": [gid], "ResponseFilter": {"GroupBaseInfoFilter": ["Type", "CreateTime"]}}),
        )
        .await;
    let g = v["GroupInfo"][0].as_object().expect("group");
    let mut keys: Vec<&str> = g.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["CreateTime", "ErrorCode", "ErrorInfo", "GroupId", "Type"]);
    assert_eq!(g["CreateTime"], now - 10_000);
    let fifty_one: Vec<String> = (0..51).map(|i| format!("g{i}")).collect();
    assert_code(&im.call("group_open_http_svc/get_group_info", json!({"GroupIdList": fifty_one})).await, 10004);

    // group_msg_get_simple pages backwards by seq, at most 20 per answer.
    let base = now - 5000;
    for chunk in 0..5u64 {
        let list: Vec<Value> =
            (0..5).map(|i| msg("ann", base + chunk * 5 + i, &format!("m{}", chunk * 5 + i + 1))).collect();
        im.ok("group_open_http_svc/import_group_msg", json!({"GroupId": gid, "MsgList": list})).await;
    }
    let mut seqs = Vec::new();
    let mut req: Option<u64> = None;
    loop {
        let mut body = json!({"GroupId": gid, "ReqMsgNumber": 30});
        if let Some(r) = req {
            body["ReqMsgSeq"] = json!(r);
        }
        let page = im.ok("group_open_http_svc/group_msg_get_simple", body).await;
        let list = page["RspMsgList"].as_array().expect("list");
        if list.is_empty() {
            break;
        }
        assert!(list.len() <= 20);
        assert_eq!(page["IsFinished"], 0, "a window of 30 is never fully returned");
        seqs.extend(list.iter().map(|m| m["MsgSeq"].as_u64().expect("seq")));
        let min = *seqs.last().expect("some");
        if min <= 1 {
            break;
        }
        req = Some(min - 1);
    }
    assert_eq!(seqs, (1..=25).rev().collect::<Vec<_>>());

    // get_appid_group_list: opaque cursor > u32, 0 at the end, type filter.
    im.accounts(&["x"]).await;
    for i in 0..4 {
        im.ok(
            "group_open_http_svc/create_group",
            json!({"Type": if i % 2 == 0 { "Private" } else { "Public" }, "Name": format!("g{i}")}),
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut next = 0u64;
    loop {
        let v = im.ok("group_open_http_svc/get_appid_group_list", json!({"Limit": 2, "Next": next})).await;
        assert_eq!(v["TotalCount"], 5);
        ids.extend(
            v["GroupIdList"].as_array().expect("ids").iter().map(|g| g["GroupId"].as_str().expect("id").to_owned()),
        );
        next = v["Next"].as_u64().expect("Next");
        if next == 0 {
            break;
        }
        assert!(next > u64::from(u32::MAX), "cursor is opaque and large");
    }
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], gid);
    let v = im.ok("group_open_http_svc/get_appid_group_list", json!({"GroupType": "Private"})).await;
    assert_eq!(v["TotalCount"], 2);
    assert_code(&im.call("group_open_http_svc/get_appid_group_list", json!({"GroupType": "Party"})).await, 10004);
}

#[tokio::test]
async fn expired_group_messages_become_holes() {
    let im = Im::start(EmulatorConfig { retention_secs: Some(604_800), ..config() }).await;
    let now = im.now_secs();
    let gid = imported_group(&im, now - 30 * 86_400).await;
    im.ok(
        "group_open_http_svc/import_group_msg",
        json!({"GroupId": gid, "MsgList": [msg("ann", now - 10 * 86_400, "old"), msg("bob", now - 86_400, "new")]}),
    )
    .await;
    let h = im.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": gid, "ReqMsgNumber": 10})).await;
    assert_eq!(h["RspMsgList"][0]["IsPlaceMsg"], 0);
    assert_eq!(h["RspMsgList"][0]["MsgBody"], text("new"));
    assert_eq!(h["RspMsgList"][1]["IsPlaceMsg"], 1);
    assert_eq!(h["RspMsgList"][1]["MsgBody"], json!([]));
    assert_eq!(h["RspMsgList"][1]["MsgSeq"], 1);
}
