//! `recentcontact/get_list` (reference §11.14a): a user's conversations with their latest message time, with the
//! documented field names over raw HTTP, and paged to the end through the real IM client.

use crate::common::{Im, assert_code, assert_ok, config, text};
use serde_json::{Value, json};

fn first_page(user: &str, flags: u64) -> Value {
    json!({"From_Account": user, "TimeStamp": 0, "StartIndex": 0, "TopTimeStamp": 0, "TopStartIndex": 0,
           "AssistFlags": flags})
}

#[tokio::test]
async fn lists_a_users_conversations_newest_first() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob", "cy", "dee"]).await;
    let send = |from: &str, to: &str| json!({"From_Account": from, "To_Account": to, "MsgRandom": rand::random::<u32>(), "MsgBody": text("hi")});
    im.ok("openim/sendmsg", send("ann", "bob")).await;
    let t_bob = im.now_secs();
    im.advance_secs(10);
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "g", "GroupId": "g1",
        "Owner_Account": "ann", "MemberList": [{"Member_Account": "cy"}]}),
    )
    .await;
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "quiet", "GroupId": "g2",
        "Owner_Account": "ann"}),
    )
    .await;
    im.ok(
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g1", "From_Account": "cy",
        "Random": 7, "MsgBody": text("team")}),
    )
    .await;
    let t_g1 = im.now_secs();
    im.advance_secs(10);
    im.ok("openim/sendmsg", send("cy", "ann")).await;
    let t_cy = im.now_secs();

    let v = im.ok("recentcontact/get_list", first_page("ann", 7)).await;
    assert_eq!(v["CompleteFlag"], 1);
    assert_eq!(
        v["SessionItem"],
        json!([
            {"Type": 1, "To_Account": "cy", "MsgTime": t_cy, "TopFlag": 0},
            {"Type": 2, "GroupId": "g1", "MsgTime": t_g1, "TopFlag": 0},
            {"Type": 1, "To_Account": "bob", "MsgTime": t_bob, "TopFlag": 0},
            {"Type": 2, "GroupId": "g2", "MsgTime": 0, "TopFlag": 0},
        ])
    );
    for k in ["TimeStamp", "StartIndex", "TopTimeStamp", "TopStartIndex"] {
        assert!(v[k].is_u64(), "{k} is part of the cursor: {v}");
    }
    // Without AssistFlags bit 1, the group without messages is left out.
    let v = im.ok("recentcontact/get_list", first_page("ann", 1)).await;
    assert_eq!(v["SessionItem"].as_array().map(Vec::len), Some(3));
    // From bob's side: one conversation; dee has none.
    let v = im.ok("recentcontact/get_list", first_page("bob", 7)).await;
    assert_eq!(v["SessionItem"], json!([{"Type": 1, "To_Account": "ann", "MsgTime": t_bob, "TopFlag": 0}]));
    assert_eq!(im.ok("recentcontact/get_list", first_page("dee", 7)).await["SessionItem"], json!([]));

    // Refusals: every field is required, the account must exist.
    let mut missing = first_page("ann", 7);
    missing.as_object_mut().map(|o| o.remove("StartIndex"));
    assert_code(&im.call("recentcontact/get_list", missing).await, 50002);
    assert_code(&im.call("recentcontact/get_list", first_page("ghost", 7)).await, 50001);
}

#[tokio::test]
async fn the_client_pages_to_the_end() {
    use imbridge_im::ImClient;
    use imbridge_im::types::recentcontact::{SESSION_C2C, SESSION_GROUP};

    let im = Im::start(config()).await;
    let peers: Vec<String> = (0..230).map(|i| format!("p{i:03}")).collect();
    let mut ids: Vec<&str> = peers.iter().map(String::as_str).collect();
    ids.push("hub");
    for chunk in ids.chunks(100) {
        im.accounts(chunk).await;
    }
    for (i, p) in peers.iter().enumerate() {
        let v = im
            .call(
                "openim/sendmsg",
                json!({"From_Account": p, "To_Account": "hub", "MsgRandom": i, "MsgBody": text("x")}),
            )
            .await;
        assert_ok(&v);
        if i % 50 == 0 {
            im.advance_secs(1);
        }
    }
    im.ok(
        "group_open_http_svc/create_group",
        json!({"Type": "Public", "Name": "g", "GroupId": "g1",
        "Owner_Account": "hub"}),
    )
    .await;

    let c = ImClient::new(&im.running.client_config(), &prometheus::Registry::new()).expect("client");
    let all = c.recent_contacts("hub").await.expect("list");
    let mut c2c: Vec<&str> =
        all.iter().filter(|s| s.kind == SESSION_C2C).filter_map(|s| s.to_account.as_deref()).collect();
    c2c.sort_unstable();
    assert_eq!(c2c, peers.iter().map(String::as_str).collect::<Vec<_>>(), "every peer once, across pages");
    assert_eq!(all.iter().filter(|s| s.kind == SESSION_GROUP).count(), 1);
    assert!(all.windows(2).all(|w| w[0].msg_time >= w[1].msg_time), "newest first");
    let pages = im.running.emulator().stats().requests["recentcontact/get_list"];
    assert_eq!(pages, 3, "231 conversations at 100 per page");
}
