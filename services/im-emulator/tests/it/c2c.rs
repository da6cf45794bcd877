//! One-to-one messages: importmsg dedup and unread modes, history order and paging, sendmsg dedup window and
//! options, read reports, unread counts, size limits and retention.

use crate::common::{Im, assert_code, assert_ok, config, importmsg, text};
use imbridge_im_emulator::EmulatorConfig;
use serde_json::{Value, json};

async fn roam(im: &Im, op: &str, peer: &str, max_cnt: u64, min: u64, max: u64, key: Option<&str>) -> Value {
    let mut body =
        json!({"Operator_Account": op, "Peer_Account": peer, "MaxCnt": max_cnt, "MinTime": min, "MaxTime": max});
    if let Some(k) = key {
        body["LastMsgKey"] = json!(k);
    }
    im.ok("openim/admin_getroammsg", body).await
}

fn texts(v: &Value) -> Vec<String> {
    v["MsgList"]
        .as_array()
        .expect("MsgList")
        .iter()
        .map(|m| m["MsgBody"][0]["MsgContent"]["Text"].as_str().expect("text").to_owned())
        .collect()
}

async fn unread(im: &Im, user: &str, peer: &str) -> u64 {
    let v = im.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": user, "Peer_Account": [peer]})).await;
    v["C2CUnreadMsgNumList"][0]["C2CUnreadMsgNum"].as_u64().expect("count")
}

#[tokio::test]
async fn importmsg_first_write_wins_in_both_directions() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    let t = 1_700_000_000;
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 11, t, "first", 2)).await;
    // Same triple, different content: duplicate, first wins, still OK.
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 11, t, "second", 2)).await;
    // Same triple with From/To swapped: also a duplicate.
    im.ok("openim/importmsg", importmsg("bob", "ann", 1, 11, t, "swapped", 2)).await;
    // A different timestamp is a different message.
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 11, t + 1, "third", 2)).await;
    let v = roam(&im, "ann", "bob", 100, 0, u64::from(u32::MAX), None).await;
    assert_eq!(texts(&v), ["first", "third"]);
    // What the dedup hid is counted, per API.
    let stats = im.running.emulator().stats();
    assert_eq!(stats.deduplicated.get("openim/importmsg"), Some(&2), "{stats:?}");
    assert_eq!(v["MsgList"][0]["MsgKey"], format!("1_11_{t}"));
    assert_eq!(v["MsgList"][0]["From_Account"], "ann");
    assert_eq!(v["MsgList"][0]["To_Account"], "bob");
    assert_eq!(v["Complete"], 1);
}

#[tokio::test]
async fn importmsg_validation() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    let t = 1_700_000_000;
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["SyncFromOldSystem"] = json!(1);
    assert_code(&im.call("openim/importmsg", b.clone()).await, 90030);
    b.as_object_mut().expect("obj").remove("SyncFromOldSystem");
    assert_code(&im.call("openim/importmsg", b).await, 90030);
    assert_code(&im.call("openim/importmsg", importmsg("ghost", "bob", 1, 1, t, "x", 2)).await, 90008);
    assert_code(&im.call("openim/importmsg", importmsg("ann", "ghost", 1, 1, t, "x", 2)).await, 90012);
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["MsgRandom"] = json!("1");
    assert_code(&im.call("openim/importmsg", b).await, 90005);
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["MsgTimeStamp"] = json!(1.5);
    assert_code(&im.call("openim/importmsg", b).await, 90006);
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["MsgBody"] = json!({"Text": "x"});
    assert_code(&im.call("openim/importmsg", b).await, 90007);
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["MsgBody"] = json!([{"MsgType": "TIMHologram", "MsgContent": {}}]);
    assert_code(&im.call("openim/importmsg", b).await, 90002);
    let mut b = importmsg("ann", "bob", 1, 1, t, "x", 2);
    b["MsgBody"] = json!([{"MsgType": "TIMTextElem", "MsgContent": {"Txt": "typo"}}]);
    assert_code(&im.call("openim/importmsg", b).await, 90002);
    // 8 KB.
    assert_code(&im.call("openim/importmsg", importmsg("ann", "bob", 1, 1, t, &"x".repeat(8200), 2)).await, 93000);
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, t, &"x".repeat(8000), 2)).await;

    // The legacy value 1 is accepted only when configured.
    let im = Im::start(EmulatorConfig { accept_legacy_sync_from_old_system: true, ..config() }).await;
    im.accounts(&["ann", "bob"]).await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, t, "x", 1)).await;
    assert_eq!(unread(&im, "bob", "ann").await, 1);
}

#[tokio::test]
async fn history_import_is_not_unread_live_import_is() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    let t = 1_700_000_000;
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, t, "h1", 2)).await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 2, 2, t + 1, "h2", 2)).await;
    assert_eq!(unread(&im, "bob", "ann").await, 0);
    im.ok("openim/importmsg", importmsg("ann", "bob", 3, 3, t + 2, "l1", 5)).await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 4, 4, t + 3, "l2", 5)).await;
    // A duplicate live import does not count twice.
    im.ok("openim/importmsg", importmsg("ann", "bob", 4, 4, t + 3, "l2", 5)).await;
    assert_eq!(unread(&im, "bob", "ann").await, 2);
    assert_eq!(unread(&im, "ann", "bob").await, 0, "the sender has nothing unread");
    let v = im.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": "bob"})).await;
    assert_eq!(v["AllC2CUnreadMsgNum"], 2);

    // Reading up to t+2 leaves one; reading without a time reads everything; never backwards.
    im.ok(
        "openim/admin_set_msg_read",
        json!({"Report_Account": "bob", "Peer_Account": "ann", "MsgReadTime": (t + 2).to_string()}),
    )
    .await;
    assert_eq!(unread(&im, "bob", "ann").await, 1);
    im.ok("openim/admin_set_msg_read", json!({"Report_Account": "bob", "Peer_Account": "ann", "MsgReadTime": t})).await;
    assert_eq!(unread(&im, "bob", "ann").await, 1);
    im.ok("openim/admin_set_msg_read", json!({"Report_Account": "bob", "Peer_Account": "ann"})).await;
    assert_eq!(unread(&im, "bob", "ann").await, 0);
    // A live import older than the read position is not unread.
    im.ok("openim/importmsg", importmsg("ann", "bob", 5, 5, t + 1, "late", 5)).await;
    assert_eq!(unread(&im, "bob", "ann").await, 0);
    assert_code(
        &im.call("openim/admin_set_msg_read", json!({"Report_Account": "ghost", "Peer_Account": "ann"})).await,
        90008,
    );
    assert_code(
        &im.call("openim/admin_set_msg_read", json!({"Report_Account": "bob", "Peer_Account": "ghost"})).await,
        90003,
    );

    // Unknown peers are per-item errors; too many peers is a request error.
    let v =
        im.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": "bob", "Peer_Account": ["ann", "ghost"]})).await;
    assert_eq!(v["ErrorList"], json!([{"Peer_Account": "ghost", "ErrorCode": 70107}]));
    let peers: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    assert_code(
        &im.call("openim/get_c2c_unread_msg_num", json!({"To_Account": "bob", "Peer_Account": peers})).await,
        90001,
    );
    assert_code(&im.call("openim/get_c2c_unread_msg_num", json!({"To_Account": "ghost"})).await, 90003);
}

#[tokio::test]
async fn history_orders_by_time_then_seq_and_pages_backwards() {
    let mut cfg = config();
    cfg.limits.roam_page_max_bytes = 100_000;
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "bob"]).await;
    let t = 1_700_000_000;
    // Imported out of order: time t+1 seq 9, t seq 5, t seq 2, t+2 seq 1.
    for (seq, time, txt) in [(9, t + 1, "c"), (5, t, "b"), (2, t, "a"), (1, t + 2, "d")] {
        im.ok(
            "openim/importmsg",
            importmsg(
                if seq % 2 == 0 { "bob" } else { "ann" },
                if seq % 2 == 0 { "ann" } else { "bob" },
                seq,
                7,
                time,
                txt,
                2,
            ),
        )
        .await;
    }
    let all = roam(&im, "bob", "ann", 100, t, t + 2, None).await;
    assert_eq!(texts(&all), ["a", "b", "c", "d"]);
    assert_eq!(all["MsgCnt"], 4);

    // Pages of 3 then 1, newest first across pages, each page oldest to newest.
    let p1 = roam(&im, "bob", "ann", 3, t, t + 2, None).await;
    assert_eq!(texts(&p1), ["b", "c", "d"]);
    assert_eq!(p1["Complete"], 0);
    assert_eq!(p1["LastMsgTime"], t);
    assert_eq!(p1["LastMsgKey"], format!("5_7_{t}"));
    let p2 = roam(&im, "bob", "ann", 3, t, t, Some(&format!("5_7_{t}"))).await;
    assert_eq!(texts(&p2), ["a"], "the continuation skips what that second already returned");
    assert_eq!(p2["Complete"], 1);

    // The window bounds are inclusive and filter.
    assert_eq!(texts(&roam(&im, "ann", "bob", 100, t + 1, t + 1, None).await), ["c"]);
    let empty = roam(&im, "ann", "bob", 100, t + 10, t + 20, None).await;
    assert_eq!(empty["MsgCnt"], 0);
    assert_eq!(empty["Complete"], 1);
    assert_code(
        &im.call(
            "openim/admin_getroammsg",
            json!({"Operator_Account": "ghost", "Peer_Account": "ann", "MaxCnt": 1, "MinTime": 0, "MaxTime": 1}),
        )
        .await,
        90008,
    );
    assert_code(
        &im.call(
            "openim/admin_getroammsg",
            json!({"Operator_Account": "ann", "Peer_Account": "ghost", "MaxCnt": 1, "MinTime": 0, "MaxTime": 1}),
        )
        .await,
        90003,
    );
    // Legacy field names are accepted.
    let legacy = im
        .ok(
            "openim/admin_getroammsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MaxCnt": 100, "MinTime": t, "MaxTime": t + 2}),
        )
        .await;
    assert_eq!(texts(&legacy).len(), 4);
}

#[tokio::test]
async fn roam_pages_are_capped_by_bytes() {
    let mut cfg = config();
    cfg.limits.roam_page_max_bytes = 2000;
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "bob"]).await;
    let t = 1_700_000_000;
    for i in 0..10u32 {
        im.ok(
            "openim/importmsg",
            importmsg("ann", "bob", i, i, t + u64::from(i), &format!("{i}{}", "x".repeat(500)), 2),
        )
        .await;
    }
    let mut seen = Vec::new();
    let (mut max, mut key) = (t + 100, None::<String>);
    loop {
        let page = roam(&im, "ann", "bob", 100, t, max, key.as_deref()).await;
        let n = page["MsgCnt"].as_u64().expect("cnt");
        assert!((1..=3).contains(&n), "a 2000-byte budget holds at most 3 messages of ~600 bytes, got {n}");
        let mut texts = texts(&page);
        texts.reverse();
        seen.extend(texts);
        if page["Complete"] == 1 {
            break;
        }
        max = page["LastMsgTime"].as_u64().expect("time");
        key = Some(page["LastMsgKey"].as_str().expect("key").to_owned());
    }
    let firsts: Vec<char> = seen.iter().map(|s| s.chars().next().expect("c")).collect();
    assert_eq!(firsts, ['9', '8', '7', '6', '5', '4', '3', '2', '1', '0']);
}

fn send(from: &str, to: &str, seq: u32, random: u32, t: &str) -> Value {
    json!({"From_Account": from, "To_Account": to, "MsgSeq": seq, "MsgRandom": random, "MsgBody": text(t)})
}

#[tokio::test]
async fn sendmsg_stores_counts_and_dedups_for_120_seconds() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    let first = im.ok("openim/sendmsg", send("ann", "bob", 77, 1234, "hi")).await;
    let time = first["MsgTime"].as_u64().expect("MsgTime");
    assert_eq!(first["MsgKey"], format!("77_1234_{time}"));
    assert_eq!(unread(&im, "bob", "ann").await, 1);

    // Same sender, seq, random and body within 120 s: dropped, same answer.
    im.advance_secs(100);
    let dup = im.ok("openim/sendmsg", send("ann", "bob", 77, 1234, "hi")).await;
    assert_eq!(dup["MsgKey"], first["MsgKey"]);
    assert_eq!(dup["MsgTime"], first["MsgTime"]);
    assert_eq!(unread(&im, "bob", "ann").await, 1);
    assert_eq!(im.running.emulator().stats().deduplicated.get("openim/sendmsg"), Some(&1));
    // A different body is not a duplicate.
    im.ok("openim/sendmsg", send("ann", "bob", 77, 1234, "other")).await;
    assert_eq!(unread(&im, "bob", "ann").await, 2);
    // After the window the same send is new again.
    im.advance_secs(30);
    let again = im.ok("openim/sendmsg", send("ann", "bob", 77, 1234, "hi")).await;
    assert_ne!(again["MsgKey"], first["MsgKey"]);
    assert_eq!(unread(&im, "bob", "ann").await, 3);

    // Omitted MsgSeq: the server picks one, visible in MsgKey.
    let auto = im
        .ok(
            "openim/sendmsg",
            json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": 5, "MsgBody": text("auto")}),
        )
        .await;
    let key = auto["MsgKey"].as_str().expect("key");
    assert!(key.ends_with(&format!("_5_{}", auto["MsgTime"])), "{key}");
    // Default sender is the admin, who needs no import.
    im.ok("openim/sendmsg", json!({"To_Account": "bob", "MsgRandom": 6, "MsgBody": text("from admin")})).await;
    assert_eq!(unread(&im, "bob", "administrator").await, 1);

    let now = im.now_secs();
    let v = roam(&im, "bob", "ann", 100, 0, now + 1, None).await;
    assert_eq!(texts(&v), ["hi", "other", "hi", "auto"]);
}

#[tokio::test]
async fn sendmsg_options_and_errors() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    // NoUnread: stored, not counted.
    let mut b = send("ann", "bob", 1, 1, "quiet");
    b["SendMsgControl"] = json!(["NoUnread"]);
    im.ok("openim/sendmsg", b).await;
    assert_eq!(unread(&im, "bob", "ann").await, 0);
    // MsgLifeTime 0: online only, not stored, not counted.
    let mut b = send("ann", "bob", 2, 2, "online");
    b["MsgLifeTime"] = json!(0);
    im.ok("openim/sendmsg", b).await;
    // SyncOtherMachine 2: not in the sender's roaming, in the receiver's.
    let mut b = send("ann", "bob", 3, 3, "not mine");
    b["SyncOtherMachine"] = json!(2);
    im.ok("openim/sendmsg", b).await;
    let now = im.now_secs();
    assert_eq!(texts(&roam(&im, "bob", "ann", 100, 0, now, None).await), ["quiet", "not mine"]);
    assert_eq!(texts(&roam(&im, "ann", "bob", 100, 0, now, None).await), ["quiet"]);
    assert_eq!(unread(&im, "bob", "ann").await, 1);

    assert_code(&im.call("openim/sendmsg", send("ann", "ghost", 1, 1, "x")).await, 20003);
    assert_code(&im.call("openim/sendmsg", send("ghost", "bob", 1, 1, "x")).await, 20003);
    assert_code(
        &im.call("openim/sendmsg", json!({"From_Account": "ann", "MsgRandom": 1, "MsgBody": text("x")})).await,
        90003,
    );
    assert_code(
        &im.call("openim/sendmsg", json!({"From_Account": "ann", "To_Account": "bob", "MsgBody": text("x")})).await,
        90005,
    );
    assert_code(&im.call("openim/sendmsg", send("ann", "bob", 1, 9, &"x".repeat(8200))).await, 93000);
    let mut b = send("ann", "bob", 1, 1, "x");
    b["MsgLifeTime"] = json!("long");
    assert_code(&im.call("openim/sendmsg", b).await, 90044);
    let mut b = send("ann", "bob", 1, 1, "x");
    b["SyncOtherMachine"] = json!("2");
    assert_code(&im.call("openim/sendmsg", b).await, 90031);
    let mut b = send("ann", "bob", 1, 1, "x");
    b["MsgBody"] = json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "a"}}, {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "b"}}]);
    assert_code(&im.call("openim/sendmsg", b).await, 90002);
}

#[tokio::test]
async fn retention_hides_old_messages() {
    let im = Im::start(EmulatorConfig { retention_secs: Some(604_800), ..config() }).await;
    im.accounts(&["ann", "bob"]).await;
    let now = im.now_secs();
    // Imported history eight days old is stored but outside the roaming window.
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, now - 8 * 86_400, "old", 2)).await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 2, 2, now - 86_400, "recent", 2)).await;
    assert_eq!(texts(&roam(&im, "ann", "bob", 100, 0, now, None).await), ["recent"]);
    // Seven more days pass: the recent one expires too.
    im.advance_secs(7 * 86_400);
    let v = roam(&im, "ann", "bob", 100, 0, now + 8 * 86_400, None).await;
    assert_eq!(v["MsgCnt"], 0);
    // The dedup memory outlives the roaming window: a replay is still a duplicate.
    im.ok("openim/importmsg", importmsg("ann", "bob", 2, 2, now - 86_400, "replayed", 2)).await;

    // Unlimited retention (the default) keeps everything.
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    im.ok("openim/importmsg", importmsg("ann", "bob", 1, 1, 1_000_000_000, "ancient", 2)).await;
    assert_ok(&im.call("openim/admin_getroammsg", json!({"Operator_Account": "ann", "Peer_Account": "bob", "MaxCnt": 10, "MinTime": 0, "MaxTime": 2_000_000_000})).await);
    assert_eq!(texts(&roam(&im, "ann", "bob", 10, 0, 2_000_000_000, None).await), ["ancient"]);
}
