//! What public server SDKs send and expect, as raw HTTP: legacy field names they still use, `0` for "not set",
//! and group history made only of the documented REST element types. Each case is a request shape taken from
//! the Go SDK (`github.com/dobyte/tencent-im`) or the Java SDK (`io.github.doocs:im-server-sdk-java`); the SDK
//! itself drives the emulator in `tests/sdk-java` (scripts/sdk-conformance.sh).

use crate::common::{Im, assert_code, config, text};
use imbridge_im::body::MsgElement;
use serde_json::{Value, json};

async fn imported(im: &Im, id: &str) -> bool {
    let v = im.ok("im_open_login_svc/account_check", json!({"CheckItem": [{"UserID": id}]})).await;
    v["ResultItem"][0]["AccountStatus"] == "Imported"
}

async fn group_info(im: &Im, gid: &str) -> Value {
    let v = im.ok("group_open_http_svc/get_group_info", json!({"GroupIdList": [gid]})).await;
    v["GroupInfo"][0].clone()
}

#[tokio::test]
async fn account_import_accepts_the_legacy_identifier_field() {
    let im = Im::start(config()).await;
    // The Go SDK's request shape.
    im.ok("im_open_login_svc/account_import", json!({"Identifier": "gopher", "Nick": "Go", "FaceUrl": ""})).await;
    assert!(imported(&im, "gopher").await);
    let v = im.ok("profile/portrait_get", json!({"To_Account": ["gopher"], "TagList": ["Tag_Profile_IM_Nick"]})).await;
    assert_eq!(v["UserProfileItem"][0]["ProfileItem"], json!([{"Tag": "Tag_Profile_IM_Nick", "Value": "Go"}]));
    // Both names for one account are fine; for two accounts the request is malformed and imports nothing.
    im.ok("im_open_login_svc/account_import", json!({"UserID": "same", "Identifier": "same"})).await;
    assert_code(
        &im.call("im_open_login_svc/account_import", json!({"UserID": "one", "Identifier": "two"})).await,
        70402,
    );
    assert!(!imported(&im, "one").await && !imported(&im, "two").await);
    // The legacy name gets the same checks as the current one.
    assert_code(&im.call("im_open_login_svc/account_import", json!({"Identifier": "x".repeat(33)})).await, 70402);
    assert_code(&im.call("im_open_login_svc/account_import", json!({"Identifier": 7})).await, 70402);
    assert_code(&im.call("im_open_login_svc/account_import", json!({"Nick": "nobody"})).await, 70402);
}

#[tokio::test]
async fn modify_group_accepts_the_legacy_shut_up_all_member_field() {
    let im = Im::start(config()).await;
    im.accounts(&["ann"]).await;
    im.create_group("g", "g", "ann").await;
    im.ok("group_open_http_svc/modify_group_base_info", json!({"GroupId": "g", "ShutUpAllMember": "On"})).await;
    assert_eq!(group_info(&im, "g").await["MuteAllMember"], "On");
    im.ok(
        "group_open_http_svc/modify_group_base_info",
        json!({"GroupId": "g", "MuteAllMember": "Off", "ShutUpAllMember": "Off"}),
    )
    .await;
    assert_eq!(group_info(&im, "g").await["MuteAllMember"], "Off");
    let both = json!({"GroupId": "g", "MuteAllMember": "On", "ShutUpAllMember": "Off"});
    assert_code(&im.call("group_open_http_svc/modify_group_base_info", both).await, 10004);
    assert_code(
        &im.call("group_open_http_svc/modify_group_base_info", json!({"GroupId": "g", "ShutUpAllMember": "yes"})).await,
        10004,
    );
    assert_eq!(group_info(&im, "g").await["MuteAllMember"], "Off", "a refused request changes nothing");
}

#[tokio::test]
async fn import_group_create_time_zero_means_now() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob", "cy"]).await;
    let now = im.now_secs();
    // The Go SDK always sends CreateTime, 0 when the caller set none.
    let v = im
        .ok(
            "group_open_http_svc/import_group",
            json!({"Type": "Public", "Name": "z", "Owner_Account": "ann", "CreateTime": 0}),
        )
        .await;
    let zero = v["GroupId"].as_str().expect("GroupId").to_owned();
    let v =
        im.ok("group_open_http_svc/import_group", json!({"Type": "Public", "Name": "o", "Owner_Account": "ann"})).await;
    let omitted = v["GroupId"].as_str().expect("GroupId").to_owned();
    for gid in [&zero, &omitted] {
        let created = group_info(&im, gid).await["CreateTime"].as_u64().expect("CreateTime");
        assert!(created >= now && created <= now + 5, "{gid}: CreateTime {created}, request time {now}");
        // "After creation" is as strict as with the field omitted: a join time or message from before now fails.
        let v = im
            .ok(
                "group_open_http_svc/import_group_member",
                json!({"GroupId": gid, "MemberList": [{"Member_Account": "bob", "JoinTime": now - 3600}]}),
            )
            .await;
        assert_eq!(v["MemberList"][0]["Result"], 0, "{gid}: a JoinTime before creation is refused");
        let v = im
            .ok(
                "group_open_http_svc/import_group_msg",
                json!({"GroupId": gid, "MsgList": [{"From_Account": "ann", "SendTime": now - 3600, "Random": 1, "MsgBody": text("old")}]}),
            )
            .await;
        assert_eq!(v["ImportMsgResult"][0]["Result"], 10004, "{gid}: a SendTime before creation is refused");
    }
    // An explicit past creation time still opens the past.
    let v = im
        .ok(
            "group_open_http_svc/import_group",
            json!({"Type": "Public", "Name": "p", "Owner_Account": "ann", "CreateTime": now - 7200}),
        )
        .await;
    let past = v["GroupId"].as_str().expect("GroupId").to_owned();
    let v = im
        .ok(
            "group_open_http_svc/import_group_member",
            json!({"GroupId": past, "MemberList": [{"Member_Account": "cy", "JoinTime": now - 3600}]}),
        )
        .await;
    assert_eq!(v["MemberList"][0]["Result"], 1);
}

#[tokio::test]
async fn group_history_req_msg_seq_zero_means_newest() {
    let im = Im::start(config()).await;
    im.accounts(&["ann"]).await;
    im.create_group("g", "g", "ann").await;
    for i in 0..3u32 {
        im.ok(
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "g", "From_Account": "ann", "Random": 100 + i, "MsgBody": text(&format!("m{i}"))}),
        )
        .await;
    }
    let seqs = |v: &Value| -> Vec<u64> {
        v["RspMsgList"].as_array().expect("list").iter().map(|m| m["MsgSeq"].as_u64().expect("seq")).collect()
    };
    let omitted = im.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "g", "ReqMsgNumber": 20})).await;
    let zero = im
        .ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "g", "ReqMsgNumber": 20, "ReqMsgSeq": 0}))
        .await;
    assert_eq!(seqs(&omitted), [3, 2, 1]);
    assert_eq!(seqs(&zero), seqs(&omitted), "ReqMsgSeq 0 reads from the newest message, as if omitted");
    // A real bound still bounds.
    let one = im
        .ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "g", "ReqMsgNumber": 20, "ReqMsgSeq": 1}))
        .await;
    assert_eq!(seqs(&one), [1]);
}

#[tokio::test]
async fn group_member_limit_zero_means_not_set() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob", "cy"]).await;
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "g", "GroupId": "g", "Owner_Account": "ann",
            "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy"}]}),
    )
    .await;
    let members = |v: &Value| v["MemberList"].as_array().expect("list").len();
    // The Go SDK's request shape: Limit and Offset always present, filters null.
    let go = json!({"GroupId": "g", "Limit": 0, "Offset": 0, "MemberInfoFilter": null, "MemberRoleFilter": null,
        "AppDefinedDataFilter_GroupMember": null});
    let v = im.ok("group_open_http_svc/get_group_member_info", go).await;
    assert_eq!((members(&v), v["MemberNum"].as_u64()), (3, Some(3)), "Limit 0 lists like an omitted Limit: {v}");
    let v = im.ok("group_open_http_svc/get_group_member_info", json!({"GroupId": "g", "Limit": 1, "Offset": 1})).await;
    assert_eq!(v["MemberList"][0]["Member_Account"], "bob", "a real Limit still pages");
    assert_eq!(members(&v), 1);
}

#[tokio::test]
async fn member_notices_in_history_use_only_documented_elements() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob", "cy"]).await;
    im.create_group("g", "g", "ann").await;
    im.ok(
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g", "From_Account": "ann", "Random": 1, "MsgBody": text("hi")}),
    )
    .await;
    im.ok(
        "group_open_http_svc/add_group_member",
        json!({"GroupId": "g", "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy"}]}),
    )
    .await;
    im.ok("group_open_http_svc/delete_group_member", json!({"GroupId": "g", "MemberToDel_Account": ["cy"]})).await;
    im.client("bob", "Android", "group_open_http_svc/quit_group", json!({"GroupId": "g"})).await;
    let h = im.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "g", "ReqMsgNumber": 20})).await;
    let list = h["RspMsgList"].as_array().expect("list");
    // One message and three notices (join, kick, quit), each holding a seq of its own.
    let seqs: Vec<u64> = list.iter().map(|m| m["MsgSeq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, [4, 3, 2, 1]);
    let system: Vec<u64> = list.iter().map(|m| m["IsSystemMsg"].as_u64().expect("IsSystemMsg")).collect();
    assert_eq!(system, [1, 1, 1, 0]);
    for m in list {
        let body = m["MsgBody"].as_array().expect("MsgBody is an array");
        if m["IsSystemMsg"] == 1 {
            assert!(body.is_empty(), "a notice carries no element: {m}");
            assert_eq!(m["IsPlaceMsg"], 0, "a notice is not a hole");
        }
        // The client's element model parses exactly the documented REST types (reference §3); anything else
        // lands in `Unknown`, which an SDK model could not parse.
        for e in body {
            let elem: MsgElement = serde_json::from_value(e.clone()).expect("a MsgBody element");
            assert!(
                !matches!(elem, MsgElement::Unknown { .. }),
                "{} is not a documented REST element type",
                elem.msg_type()
            );
        }
    }
    // Notices still count as unread for a member who did not read them.
    let info = im
        .ok("group_open_http_svc/get_group_member_info", json!({"GroupId": "g", "MemberInfoFilter": ["MsgSeq"]}))
        .await;
    assert_eq!(info["MemberList"][0]["Member_Account"], "ann");
    assert_eq!(info["MemberList"][0]["MsgSeq"], 1, "ann read her own message, not the notices after it");
}
