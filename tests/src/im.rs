//! The IM emulator in process (real HTTP), its admin client, app users acting through its simulated client (so
//! IM calls back as it does for a real app), and readers of what IM holds.

use std::path::Path;
use std::time::Duration;

use imbridge_core::TimestampMs;
use imbridge_im::ImClient;
use imbridge_im::types::account::{AccountImportReq, MultiAccountImportReq};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};

/// An IM emulator on port 0; callbacks to `callback_url` when given.
pub async fn spawn_im(callback_url: Option<String>) -> RunningEmulator {
    spawn_im_with(EmulatorConfig { callback_url, ..EmulatorConfig::default() }).await
}

/// An IM emulator on port 0 with the given configuration.
pub async fn spawn_im_with(config: EmulatorConfig) -> RunningEmulator {
    imbridge_im_emulator::spawn(config).await.expect("im emulator")
}

/// An IM emulator on port 0 whose state can be snapshotted ([`crate::im_state`]); `rate_limits` on as in IM.
pub async fn spawn_im_with_state(dir: &Path, rate_limits: bool) -> RunningEmulator {
    spawn_im_with(EmulatorConfig {
        state_file: Some(dir.join("im-state.json")),
        rate_limits_enabled: rate_limits,
        ..EmulatorConfig::default()
    })
    .await
}

/// An IM emulator on port 0 whose `openim/sendmsg` allows `per_sec` calls per second for the whole app.
pub async fn spawn_im_with_sendmsg_quota(per_sec: u32) -> RunningEmulator {
    spawn_im_with(EmulatorConfig {
        rate_limits_enabled: true,
        rate_limit_overrides: [("openim/sendmsg".to_owned(), per_sec)].into_iter().collect(),
        ..EmulatorConfig::default()
    })
    .await
}

/// The admin's REST client of an emulator (its own registry).
pub fn im_client(im: &RunningEmulator) -> ImClient {
    ImClient::new(&im.client_config(), &prometheus::Registry::new()).expect("im client")
}

/// Imports accounts, 100 per call; fails the test on any failed account.
pub async fn import_accounts(im: &ImClient, users: &[&str]) {
    for chunk in users.chunks(100) {
        let req = MultiAccountImportReq {
            accounts: None,
            account_list: Some(
                chunk
                    .iter()
                    .map(|u| AccountImportReq { user_id: (*u).to_owned(), nick: None, face_url: None })
                    .collect(),
            ),
        };
        let r = im.multiaccount_import(&req).await.expect("import accounts");
        assert!(r.failed().is_empty(), "{:?}", r.failed());
    }
}

/// `user` calls a client API (`openim/sendmsg`, `group_open_http_svc/send_group_msg`, …) through the
/// emulator's simulated app client; returns IM's answer whatever its `ErrorCode`.
pub async fn app_call(im: &RunningEmulator, user: &str, api: &str, body: &Value) -> Value {
    reqwest::Client::new()
        .post(im.client_url(user, api))
        .json(body)
        .send()
        .await
        .expect("im client")
        .json()
        .await
        .expect("json")
}

/// [`app_call`] that must succeed; returns IM's answer.
pub async fn as_user(im: &RunningEmulator, user: &str, api: &str, body: Value) -> Value {
    let v = app_call(im, user, api, &body).await;
    assert_eq!(v["ErrorCode"], 0, "{user} {api} {body}: {v}");
    v
}

/// An IM message body of one text element.
pub fn im_text(s: &str) -> Value {
    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": s}}])
}

/// A 1:1 message sent by an app user; returns IM's MsgKey of it.
pub async fn app_user_sends(im: &RunningEmulator, from: &str, to: &str, text: &str, random: u32) -> String {
    let v =
        as_user(im, from, "openim/sendmsg", json!({"To_Account": to, "MsgRandom": random, "MsgBody": im_text(text)}))
            .await;
    v["MsgKey"].as_str().expect("IM names the message").to_owned()
}

/// An IM emulator (limits off) whose callbacks go to the ingest at `ingest_url`; ann and bob exist.
pub async fn im_calling_ingest(ingest_url: &str) -> RunningEmulator {
    let im = spawn_im_with(EmulatorConfig {
        callback_url: Some(format!("{ingest_url}/v1/im/callback")),
        rate_limits_enabled: false,
        ..EmulatorConfig::default()
    })
    .await;
    import_accounts(&im_client(&im), &["ann", "bob"]).await;
    im
}

/// ann creates the Public group `club` with bob, as an app user (a callback follows).
pub async fn ann_creates_club(im: &RunningEmulator) {
    let body = json!({"Owner_Account": "ann", "Type": "Public", "GroupId": "club", "Name": "club",
                      "MemberList": [{"Member_Account": "bob"}]});
    as_user(im, "ann", "group_open_http_svc/create_group", body).await;
}

/// A group message sent by an app user (`random` is IM's `Random`).
pub async fn app_user_sends_to_group(im: &RunningEmulator, from: &str, group: &str, text: &str, random: u32) {
    let body = json!({"GroupId": group, "Random": random, "MsgBody": im_text(text)});
    as_user(im, from, "group_open_http_svc/send_group_msg", body).await;
}

/// A 1:1 message sent by an app user with its own `MsgSeq` (IM orders a second's 1:1 messages by it).
pub async fn app_user_sends_seq(im: &RunningEmulator, from: &str, to: &str, text: &str, seq: u32, random: u32) {
    let body = json!({"To_Account": to, "MsgSeq": seq, "MsgRandom": random, "MsgBody": im_text(text)});
    as_user(im, from, "openim/sendmsg", body).await;
}

/// [`app_user_sends`] on an app whose sendmsg limit is shared with to-im: a 60007 is retried as an app would.
pub async fn app_user_sends_retrying(im: &RunningEmulator, from: &str, to: &str, text: &str, random: u32) {
    let body = json!({"To_Account": to, "MsgRandom": random, "MsgBody": im_text(text)});
    for _ in 0..50 {
        let r = app_call(im, from, "openim/sendmsg", &body).await;
        match r["ErrorCode"].as_i64() {
            Some(0) => return,
            Some(60007) => tokio::time::sleep(Duration::from_millis(300)).await,
            _ => panic!("simulated send failed: {r}"),
        }
    }
    panic!("simulated send kept hitting 60007");
}

/// Callbacks IM gave up on (it never retries).
pub fn failed_callbacks(im: &RunningEmulator) -> u64 {
    im.emulator().stats().callbacks_failed.values().sum()
}

/// Requests the emulator answered for one API (`openim/sendmsg`, …).
pub fn requests(im: &RunningEmulator, api: &str) -> u64 {
    im.emulator().stats().requests.get(api).copied().unwrap_or(0)
}

/// The text bodies of a C2C conversation in IM's order, as `a` sees it.
pub async fn c2c_texts(im: &ImClient, a: &str, b: &str) -> Vec<String> {
    let msgs = im.c2c_history(a, b, 0, TimestampMs::now().as_secs() + 7 * 86_400).await.expect("c2c history");
    msgs.iter().map(|m| body_text(&m.msg_body)).collect()
}

/// The text bodies of a group's user messages (system notices left out), oldest first; empty if the group
/// does not exist.
pub async fn group_texts(im: &ImClient, g: &str) -> Vec<String> {
    match im.group_history(g, false).await {
        Ok(msgs) => msgs.iter().filter(|m| m.is_system_msg != Some(1)).map(|m| body_text(&m.msg_body)).collect(),
        Err(e) if e.code() == Some(10010) => vec![],
        Err(e) => panic!("group history of {g}: {e}"),
    }
}

/// A group's members, sorted; `None` if it does not exist.
pub async fn group_members(im: &ImClient, g: &str) -> Option<Vec<String>> {
    let infos = im.group_infos(&[g.to_owned()], None).await.expect("group info");
    if infos.first().is_none_or(|i| i.error_code != 0) {
        return None;
    }
    let mut m: Vec<String> =
        im.all_group_members(g, None).await.expect("members").into_iter().map(|m| m.member_account).collect();
    m.sort();
    Some(m)
}

/// A group's name and introduction; `None` if it does not exist.
pub async fn group_profile(im: &ImClient, g: &str) -> Option<(String, String)> {
    let infos = im.group_infos(&[g.to_owned()], None).await.expect("group info");
    let i = infos.into_iter().next().filter(|i| i.error_code == 0)?;
    Some((i.name.unwrap_or_default(), i.introduction.unwrap_or_default()))
}

/// A message body as text: text elements as they are, any other element as `<type>`.
pub fn body_text(body: &[imbridge_im::MsgElement]) -> String {
    body.iter()
        .map(|e| match e {
            imbridge_im::MsgElement::Text(t) => t.text.clone(),
            other => format!("<{}>", other.msg_type()),
        })
        .collect::<Vec<_>>()
        .join("")
}
