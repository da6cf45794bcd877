//! `--state FILE`: everything the emulator knows survives a restart, including dedup memory.

use crate::common::{Im, config, importmsg, text};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::json;

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("im-state.json");
    let cfg = EmulatorConfig { state_file: Some(path.clone()), ..config() };
    let now;
    {
        let im = Im::start(cfg.clone()).await;
        now = im.now_secs();
        im.accounts(&["ann", "bob"]).await;
        im.friend_import("ann", "bob").await;
        im.ok("openim/importmsg", importmsg("ann", "bob", 1, 2, now - 5, "kept", 5)).await;
        im.create_group("g", "n", "ann").await;
        im.ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 9, "MsgBody": text("group")}))
            .await;
        im.running.shutdown().await.expect("clean shutdown saves state");
    }
    assert!(path.exists());
    let im = Im::start(cfg).await;
    let v = im.ok("im_open_login_svc/account_check", json!({"CheckItem": [{"UserID": "ann"}]})).await;
    assert_eq!(v["ResultItem"][0]["AccountStatus"], "Imported");
    let v = im.ok("sns/friend_get", json!({"From_Account": "ann", "StartIndex": 0})).await;
    assert_eq!(v["FriendNum"], 1);
    let v = im.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": "bob"})).await;
    assert_eq!(v["AllC2CUnreadMsgNum"], 1);
    // importmsg dedup memory was rebuilt: the replay is still a duplicate.
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 2, now - 5, "replay", 5)).await;
    let v = im
        .ok(
            "openim/admin_getroammsg",
            json!({"Operator_Account": "ann", "Peer_Account": "bob", "MaxCnt": 10, "MinTime": 0, "MaxTime": now}),
        )
        .await;
    assert_eq!(v["MsgCnt"], 1);
    assert_eq!(v["MsgList"][0]["MsgBody"], text("kept"));
    // Group seqs continue, and the send_group_msg window survived too.
    let v = im
        .ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 9, "MsgBody": text("group")}))
        .await;
    assert_eq!(v["MsgSeq"], 1);
    let v = im
        .ok("group_open_http_svc/send_group_msg", json!({"GroupId": "g", "Random": 10, "MsgBody": text("next")}))
        .await;
    assert_eq!(v["MsgSeq"], 2);
}

#[tokio::test]
async fn a_corrupt_state_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{ not json").expect("write");
    let err =
        imbridge_im_emulator::spawn(EmulatorConfig { state_file: Some(path), ..config() }).await.expect_err("refused");
    assert!(err.to_string().contains("not a valid snapshot"), "{err}");
}
