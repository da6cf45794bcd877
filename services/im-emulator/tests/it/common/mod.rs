//! Shared helpers of the emulator's integration tests: a real emulator on 127.0.0.1:0 driven with raw HTTP
//! (reqwest + serde_json, so the IM client crate's bugs cannot hide), and a real callback receiver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::post;
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A config for tests: defaults, with frequency limits off unless a test turns them on.
pub fn config() -> EmulatorConfig {
    EmulatorConfig { rate_limits_enabled: false, ..EmulatorConfig::default() }
}

/// A running emulator and an HTTP client.
pub struct Im {
    pub running: RunningEmulator,
    pub http: reqwest::Client,
}

impl Im {
    pub async fn start(config: EmulatorConfig) -> Im {
        let running = imbridge_im_emulator::spawn(config).await.expect("emulator starts");
        Im { running, http: reqwest::Client::new() }
    }

    pub fn base(&self) -> String {
        self.running.base_url()
    }

    pub fn admin(&self) -> String {
        self.running.emulator().admin_identifier().to_owned()
    }

    /// The REST URL of `api` (`service/command`) called as `identifier` with `sig`.
    pub fn url(&self, api: &str, identifier: &str, sig: &str) -> String {
        let sdkappid = self.running.emulator().config().sdkappid;
        format!(
            "{}/v4/{api}?sdkappid={sdkappid}&identifier={identifier}&usersig={sig}&random={}&contenttype=json",
            self.base(),
            rand::random::<u32>()
        )
    }

    /// POSTs a raw body to a full URL; asserts HTTP 200 (IM answers every application outcome with 200).
    pub async fn post_raw(&self, url: &str, body: impl Into<reqwest::Body>) -> Value {
        let resp = self.http.post(url).body(body).send().await.expect("request sent");
        assert_eq!(resp.status(), 200, "IM answers HTTP 200 for application outcomes");
        resp.json().await.expect("answer is JSON")
    }

    /// Calls `api` as the admin.
    pub async fn call(&self, api: &str, body: Value) -> Value {
        let admin = self.admin();
        let sig = self.running.emulator().usersig(&admin);
        self.post_raw(&self.url(api, &admin, &sig), body.to_string()).await
    }

    /// Calls `api` as the admin and asserts success.
    pub async fn ok(&self, api: &str, body: Value) -> Value {
        let v = self.call(api, body).await;
        assert_ok(&v);
        v
    }

    /// Calls the simulated-client endpoint as `user` on `platform`.
    pub async fn client(&self, user: &str, platform: &str, api: &str, body: Value) -> Value {
        let e = self.running.emulator();
        let url = format!(
            "{}/emulator/client/v4/{api}?sdkappid={}&identifier={user}&usersig={}&platform={platform}",
            self.base(),
            e.config().sdkappid,
            e.usersig(user)
        );
        self.post_raw(&url, body.to_string()).await
    }

    /// [`Im::client`] that must succeed.
    pub async fn client_ok(&self, user: &str, platform: &str, api: &str, body: Value) -> Value {
        let v = self.client(user, platform, api, body).await;
        assert_ok(&v);
        v
    }

    /// [`Im::client`] that must fail with `code`.
    pub async fn client_code(&self, user: &str, platform: &str, api: &str, body: Value, code: i64) {
        assert_code(&self.client(user, platform, api, body).await, code);
    }

    /// Group API calls through the simulated client, in order: (user, platform, API under
    /// `group_open_http_svc/`, body, the ErrorCode IM must answer; 0 is success).
    pub async fn group_steps(&self, steps: &[(&str, &str, &str, Value, i64)]) {
        for (user, platform, api, body, code) in steps {
            let v = self.client(user, platform, &format!("group_open_http_svc/{api}"), body.clone()).await;
            match code {
                0 => assert!(
                    v["ActionStatus"] == "OK" && v["ErrorCode"] == 0 && v["ErrorInfo"] == "",
                    "{user} {api}: expected success, got {v}"
                ),
                _ => assert!(
                    v["ErrorCode"] == *code && v["ActionStatus"] == "FAIL",
                    "{user} {api}: expected error {code}, got {v}"
                ),
            }
        }
    }

    /// `from` befriends `to` as an imported friendship (`sns/friend_import`).
    pub async fn friend_import(&self, from: &str, to: &str) {
        let item = json!([{"To_Account": to, "AddSource": "AddSource_Type_Web"}]);
        self.ok("sns/friend_import", json!({"From_Account": from, "AddFriendItem": item})).await;
    }

    /// A public group `gid` named `name`, owned by `owner`.
    pub async fn create_group(&self, gid: &str, name: &str, owner: &str) {
        let body = json!({"Type": "Public", "Name": name, "GroupId": gid, "Owner_Account": owner});
        self.ok("group_open_http_svc/create_group", body).await;
    }

    /// Imports accounts.
    pub async fn accounts(&self, ids: &[&str]) {
        let v = self.ok("im_open_login_svc/multiaccount_import", json!({ "Accounts": ids })).await;
        assert_eq!(v["FailAccounts"], json!([]));
    }

    pub fn advance_secs(&self, secs: u64) {
        self.running.emulator().advance_clock(std::time::Duration::from_secs(secs));
    }

    pub fn now_secs(&self) -> u64 {
        self.running.emulator().now_ms() / 1000
    }
}

#[track_caller]
pub fn assert_ok(v: &Value) {
    assert_eq!(v["ActionStatus"], "OK", "expected success, got {v}");
    assert_eq!(v["ErrorCode"], 0, "expected success, got {v}");
    assert_eq!(v["ErrorInfo"], "", "expected success, got {v}");
}

#[track_caller]
pub fn assert_code(v: &Value, code: i64) {
    assert_eq!(v["ErrorCode"], code, "expected error {code}, got {v}");
    assert_eq!(v["ActionStatus"], "FAIL", "expected FAIL, got {v}");
}

/// An `openim/importmsg` body: a 1:1 text message of the old system's history (`sync` 1: live, 2: history,
/// 5: history that counts as unread).
pub fn importmsg(from: &str, to: &str, seq: u32, random: u32, time: u64, t: &str, sync: u64) -> Value {
    json!({"SyncFromOldSystem": sync, "From_Account": from, "To_Account": to, "MsgSeq": seq, "MsgRandom": random,
           "MsgTimeStamp": time, "MsgBody": text(t)})
}

pub fn text(t: &str) -> Value {
    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": t}}])
}

/// One received callback.
#[derive(Debug, Clone)]
pub struct Received {
    pub query: HashMap<String, String>,
    pub body: Value,
}

impl Received {
    pub fn command(&self) -> &str {
        self.query.get("CallbackCommand").map_or("", String::as_str)
    }
}

/// What the receiver answers for a given command (default: OK).
type Answers = Arc<Mutex<HashMap<String, (u16, Value)>>>;

/// How long the receiver holds a callback (keyed by its body's `MsgRandom` or `Random`) before taking it.
type Holds = Arc<Mutex<HashMap<u64, std::time::Duration>>>;

#[derive(Clone)]
struct SinkState {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Answers,
    holds: Holds,
}

/// A real HTTP server receiving callbacks.
pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Answers,
    holds: Holds,
    _server: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Sink {
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers: Answers = Arc::new(Mutex::new(HashMap::new()));
        let holds: Holds = Arc::new(Mutex::new(HashMap::new()));
        let state = SinkState { received: received.clone(), answers: answers.clone(), holds: holds.clone() };
        let app = Router::new().route("/im/callback", post(receive)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink { addr, received, answers, holds, _server: server }
    }

    pub fn url(&self) -> String {
        format!("http://{}/im/callback", self.addr)
    }

    /// Makes the receiver answer `command` with this status and JSON body.
    pub fn answer(&self, command: &str, status: u16, body: Value) {
        self.answers.lock().insert(command.to_owned(), (status, body));
    }

    /// Makes the receiver wait `d` before taking (recording) the callback whose `MsgRandom`/`Random` is `random`,
    /// like a slow backend server: arrival order is the order callbacks are taken.
    pub fn hold(&self, random: u64, d: std::time::Duration) {
        self.holds.lock().insert(random, d);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.received().iter().map(|r| r.command().to_owned()).collect()
    }

    pub fn of(&self, command: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.command() == command).collect()
    }

    pub fn clear(&self) {
        self.received.lock().clear();
    }
}

async fn receive(
    State(s): State<SinkState>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let random = body.get("MsgRandom").or_else(|| body.get("Random")).and_then(Value::as_u64);
    let hold = random.and_then(|r| s.holds.lock().get(&r).copied());
    if let Some(d) = hold {
        tokio::time::sleep(d).await;
    }
    let command = query.get("CallbackCommand").cloned().unwrap_or_default();
    s.received.lock().push(Received { query, body });
    let (status, answer) = s
        .answers
        .lock()
        .get(&command)
        .cloned()
        .unwrap_or((200, json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})));
    (axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK), axum::Json(answer))
}
