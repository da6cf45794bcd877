//! Two IM applications side by side (an old app and the new app of a forced upgrade): each emulator is its own
//! SDKAppID with its own key and data. A request signed for one app is refused by the other with the codes IM
//! documents, and what the export of the old app reads — accounts, profiles, friends, conversations and their
//! history, unread counts, groups, members, group history with its holes past retention — stays in the app
//! that holds it.

use crate::common::{Im, assert_code, config};
use imbridge_im::usersig;
use imbridge_im_emulator::EmulatorConfig;
use serde_json::json;

const OLD: u64 = 1_400_000_001;
const NEW: u64 = 1_400_000_002;

async fn app(sdkappid: u64, key: &str, retention_secs: Option<u64>) -> Im {
    Im::start(EmulatorConfig { sdkappid, secret_key: key.to_owned(), retention_secs, ..config() }).await
}

#[tokio::test]
async fn each_app_accepts_only_its_own_credentials_and_keeps_its_own_data() {
    let old = app(OLD, &"a".repeat(64), None).await;
    let new = app(NEW, &"b".repeat(64), None).await;
    old.accounts(&["ann", "bob"]).await;
    new.accounts(&["cat"]).await;

    // The old app's admin UserSig, sent to the new app with either SDKAppID.
    let admin = old.admin();
    let old_sig = old.running.emulator().usersig(&admin);
    let body = json!({"CheckItem": [{"UserID": "ann"}]}).to_string();
    let api = "im_open_login_svc/account_check";
    // The new app's own id with the old app's signature: signed for another app (70014).
    assert_code(&new.post_raw(&new.url(api, &admin, &old_sig), body.clone()).await, 70014);
    // The old app's id at the new app's endpoint: the SDKAppID is not this app's (70020).
    let url = new.url(api, &admin, &old_sig).replace(&format!("sdkappid={NEW}"), &format!("sdkappid={OLD}"));
    assert_code(&new.post_raw(&url, body.clone()).await, 70020);
    // Signed for the right app with the other app's key.
    let forged = usersig::generate(NEW, &"a".repeat(64), &admin, 3600, old.now_secs());
    assert_code(&new.post_raw(&new.url(api, &admin, &forged), body).await, 70009);

    // Data stays where it was written.
    let check = |ids: &[&str]| json!({"CheckItem": ids.iter().map(|u| json!({"UserID": u})).collect::<Vec<_>>()});
    let v = old.ok(api, check(&["ann", "cat"])).await;
    assert_eq!(v["ResultItem"][0]["AccountStatus"], "Imported");
    assert_eq!(v["ResultItem"][1]["AccountStatus"], "NotImported");
    let v = new.ok(api, check(&["ann", "cat"])).await;
    assert_eq!(v["ResultItem"][0]["AccountStatus"], "NotImported");
    assert_eq!(v["ResultItem"][1]["AccountStatus"], "Imported");
}

#[tokio::test]
async fn what_an_export_reads_is_the_old_apps_and_past_retention_is_gone() {
    let week = 7 * 86_400;
    let old = app(OLD, &"a".repeat(64), Some(week)).await;
    let new = app(NEW, &"b".repeat(64), Some(week)).await;
    for im in [&old, &new] {
        im.accounts(&["ann", "bob"]).await;
    }
    old.ok(
        "profile/portrait_set",
        json!({"From_Account": "ann", "ProfileItem": [
        {"Tag": "Tag_Profile_IM_Nick", "Value": "Ann"}, {"Tag": "Tag_Profile_Custom_Hobby", "Value": "chess"}]}),
    )
    .await;
    old.friend_import("ann", "bob").await;
    let now = old.now_secs();
    let import = |t: u64, random: u32| {
        json!({"SyncFromOldSystem": 2, "From_Account": "bob", "To_Account": "ann", "MsgRandom": random,
               "MsgTimeStamp": t, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]})
    };
    old.ok("openim/importmsg", import(now - 100, 1)).await;
    old.create_group("club", "Club", "ann").await;
    let send = |text: &str| {
        json!({"GroupId": "club", "Random": rand::random::<u32>(), "From_Account": "ann",
               "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]})
    };
    old.ok("group_open_http_svc/send_group_msg", send("old")).await;

    // The new app has none of it.
    let v = new.ok("profile/portrait_get", json!({"To_Account": ["ann"], "TagList": ["Tag_Profile_IM_Nick"]})).await;
    assert_eq!(v["UserProfileItem"][0]["ProfileItem"], json!([]));
    let v = new.ok("sns/friend_get", json!({"From_Account": "ann", "StartIndex": 0})).await;
    assert_eq!(v["FriendNum"], 0, "{v}");
    let list = json!({"From_Account": "ann", "TimeStamp": 0, "StartIndex": 0, "TopTimeStamp": 0,
                      "TopStartIndex": 0, "AssistFlags": 7});
    let v = new.ok("recentcontact/get_list", list.clone()).await;
    assert_eq!(v["SessionItem"], json!([]), "{v}");
    let v = new.ok("group_open_http_svc/get_appid_group_list", json!({})).await;
    assert_eq!(v["GroupIdList"], json!([]), "{v}");

    // The old app lists the conversation and gives its history and unread count.
    let v = old.ok("recentcontact/get_list", list.clone()).await;
    assert_eq!(v["SessionItem"].as_array().map(Vec::len), Some(2), "1:1 and group: {v}");
    let roam = json!({"Operator_Account": "ann", "Peer_Account": "bob", "MaxCnt": 100, "MinTime": 0,
                      "MaxTime": now + 10});
    let v = old.ok("openim/admin_getroammsg", roam.clone()).await;
    assert_eq!(v["MsgCnt"], 1, "{v}");
    let v = old.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": "ann", "Peer_Account": ["bob"]})).await;
    assert_eq!(v["C2CUnreadMsgNumList"][0]["C2CUnreadMsgNum"], 0, "imported history never counts as unread");

    // A week later the first messages are past retention: history no longer returns them, and the group's
    // early seqs come back as holes while a new message still reads.
    old.advance_secs(week + 60);
    old.ok("group_open_http_svc/send_group_msg", send("new")).await;
    let roam = json!({"Operator_Account": "ann", "Peer_Account": "bob", "MaxCnt": 100, "MinTime": 0,
                      "MaxTime": now + week + 120});
    let v = old.ok("openim/admin_getroammsg", roam).await;
    assert_eq!(v["MsgCnt"], 0, "past retention: {v}");
    let v = old.ok("group_open_http_svc/group_msg_get_simple", json!({"GroupId": "club", "ReqMsgNumber": 20})).await;
    let list = v["RspMsgList"].as_array().cloned().unwrap_or_default();
    let place: Vec<u64> = list.iter().filter(|m| m["IsPlaceMsg"] == 1).filter_map(|m| m["MsgSeq"].as_u64()).collect();
    let kept: Vec<&str> = list
        .iter()
        .filter(|m| m["IsPlaceMsg"] == 0 && m["IsSystemMsg"] == 0)
        .filter_map(|m| m["MsgBody"][0]["MsgContent"]["Text"].as_str())
        .collect();
    assert!(!place.is_empty(), "the expired message is a placeholder: {v}");
    assert_eq!(kept, vec!["new"], "{v}");
}
