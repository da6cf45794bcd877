//! The reference legacy emulator over real HTTP on 127.0.0.1: its user API fires signed webhooks in order to
//! a test ingest, survives ingest outages without loss, applies imbridge's writes idempotently without
//! echoing them, and exports what it holds in the issue-4 format.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use imbridge_core::disposition::Classify;
use imbridge_legacy::signature;
use imbridge_legacy::{
    AcceptedBody, ApplyClient, ApplyConfig, BatchError, ContractEvent, ErrorsBody, EventData, IndexedError, Origin,
    SigningSecret, parse_batch,
};
use imbridge_legacy_emulator::{LegacyEmulatorConfig, RunningLegacyEmulator, spawn};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WEBHOOK_SECRET: &str = "webhook-secret";
const APPLY_SECRET: &str = "apply-secret";
const OLD_APPLY_SECRET: &str = "apply-secret-old";

/// How the test ingest answers.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Up,
    /// 503 to everything: ingest is down.
    Down,
    /// 400 to any batch holding this event id, as ingest does for a malformed event.
    Reject(String),
}

/// A test stand-in for ingest's legacy endpoint: verifies, parses, records.
#[derive(Clone)]
struct Ingest {
    events: Arc<Mutex<Vec<ContractEvent>>>,
    /// Requests answered 200.
    accepted_batches: Arc<Mutex<usize>>,
    mode: Arc<Mutex<Mode>>,
}

async fn ingest_handler(State(ing): State<Ingest>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = signature::verify(&[WEBHOOK_SECRET], &headers, &body, signature::now_secs(), 300) {
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let mode = ing.mode.lock().expect("lock").clone();
    if mode == Mode::Down {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "down").into_response();
    }
    let events = match parse_batch(&body) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(e.to_body())).into_response(),
    };
    if let Mode::Reject(id) = &mode {
        if let Some(i) = events.iter().position(|e| &e.id == id) {
            let body = BatchError::Invalid(vec![IndexedError { index: Some(i), error: "refused by test".into() }]);
            return (StatusCode::BAD_REQUEST, axum::Json(body.to_body())).into_response();
        }
    }
    let n = events.len();
    ing.events.lock().expect("lock").extend(events);
    *ing.accepted_batches.lock().expect("lock") += 1;
    axum::Json(AcceptedBody { accepted: n }).into_response()
}

async fn start_ingest(mode: Mode) -> (Ingest, String) {
    let ing = Ingest { events: Arc::default(), accepted_batches: Arc::default(), mode: Arc::new(Mutex::new(mode)) };
    let app = Router::new().route("/v1/legacy/events", post(ingest_handler)).with_state(ing.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (ing, format!("http://{addr}"))
}

impl Ingest {
    fn events(&self) -> Vec<ContractEvent> {
        self.events.lock().expect("lock").clone()
    }
    fn set(&self, m: Mode) {
        *self.mode.lock().expect("lock") = m;
    }
}

fn config(ingest_url: Option<String>) -> LegacyEmulatorConfig {
    LegacyEmulatorConfig {
        ingest_url,
        webhook_secret: SigningSecret::new(WEBHOOK_SECRET),
        apply_secrets: vec![SigningSecret::new(APPLY_SECRET), SigningSecret::new(OLD_APPLY_SECRET)],
        webhook_initial_backoff_ms: 10,
        webhook_max_backoff_ms: 50,
        webhook_batch_max: 50,
        ..LegacyEmulatorConfig::default()
    }
}

struct Http {
    c: reqwest::Client,
    base: String,
}

impl Http {
    fn new(em: &RunningLegacyEmulator) -> Self {
        Self { c: reqwest::Client::new(), base: em.url() }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.c.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// A POST that must succeed; returns the answer body.
    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        let (status, v) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }
}

fn text(t: &str) -> Value {
    json!([{ "type": "text", "text": t }])
}

async fn users(h: &Http, ids: &[&str]) {
    for u in ids {
        h.ok("/api/users", json!({ "user_id": u, "nick": u.to_uppercase() })).await;
    }
}

#[tokio::test]
async fn user_actions_fire_signed_webhooks_in_order() {
    let (ingest, url) = start_ingest(Mode::Up).await;
    let em = spawn(config(Some(url))).await.expect("spawn");
    let h = Http::new(&em);
    assert_eq!(h.get("/healthz").await, Value::String("ok\n".into()));
    users(&h, &["ann", "bob", "cy", "dee"]).await;
    h.ok("/api/friends", json!({"user_id":"ann","friend_id":"bob","remark":"B"})).await;

    let mut ids = Vec::new();
    let mut id = |v: Value| ids.push(v["id"].as_str().expect("id").to_owned());
    id(h.ok("/api/messages", json!({"from":"ann","to":"bob","body":text("one")})).await);
    id(h.ok("/api/messages", json!({"from":"bob","to":"ann","body":text("two"),"custom_data":"cd"})).await);
    let created = h
        .ok("/api/groups", json!({"group_id":"team","name":"Team","owner":"ann","members":["bob"],"introduction":"i"}))
        .await;
    assert_eq!(created["group_id"], "team");
    id(created);
    id(h.ok("/api/groups/team/messages", json!({"from":"bob","body":text("hello team")})).await);
    let (s, v) =
        h.send(reqwest::Method::PATCH, "/api/groups/team", Some(json!({"operator":"ann","name":"Team 2"}))).await;
    assert_eq!(s, 201);
    id(v);
    id(h.ok("/api/groups/team/members", json!({"members":["cy","dee"],"operator":"ann"})).await);
    id(h.ok("/api/groups/team/kick", json!({"members":["dee"],"operator":"ann"})).await);
    id(h.ok("/api/groups/team/leave", json!({"user_id":"cy"})).await);

    // Read endpoints before the dismissal.
    let g = h.get("/api/groups/team").await;
    assert_eq!(g["name"], "Team 2");
    assert_eq!(g["introduction"], "i");
    assert_eq!(g["message_count"], 1);
    let members: Vec<(&str, &str)> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["user_id"].as_str().expect("u"), m["role"].as_str().expect("r")))
        .collect();
    assert_eq!(members, vec![("ann", "owner"), ("bob", "member")]);
    let msgs = h.get("/api/c2c/bob/ann/messages").await;
    assert_eq!(msgs["conversation"], "c2c:ann:bob");
    let texts: Vec<&str> =
        msgs["messages"].as_array().expect("msgs").iter().map(|m| m["body"][0]["text"].as_str().expect("t")).collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(msgs["messages"][1]["custom_data"], "cd");
    assert_eq!(h.get("/api/groups").await.as_array().expect("groups").len(), 1);
    assert_eq!(h.get("/api/users/ann/friends").await[0]["friend_id"], "bob");

    id(h.send(reqwest::Method::DELETE, "/api/groups/team", None).await.1);
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await, "outbox drained");

    let got = ingest.events();
    let got_ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let types: Vec<&str> = got.iter().map(|e| e.data.type_name()).collect();
    assert_eq!(
        types,
        [
            "c2c.message",
            "c2c.message",
            "group.created",
            "group.message",
            "group.updated",
            "group.members_joined",
            "group.members_left",
            "group.members_left",
            "group.dismissed"
        ]
    );
    assert!(got.iter().all(|e| e.origin.is_none()), "native events carry no origin");
    let EventData::GroupCreated(c) = &got[2].data else { panic!("created") };
    assert_eq!((c.profile.owner.as_ref().map(|o| o.as_str()), c.members.len()), (Some("ann"), 1));
    let EventData::GroupUpdated(u) = &got[4].data else { panic!("updated") };
    assert_eq!((u.name.as_deref(), u.introduction.as_deref()), (Some("Team 2"), None));
    let EventData::MembersLeft(kick) = &got[6].data else { panic!("kick") };
    assert_eq!(kick.reason, Some(imbridge_core::event::LeaveReason::Kicked));
    let EventData::MembersLeft(quit) = &got[7].data else { panic!("quit") };
    assert_eq!(quit.reason, Some(imbridge_core::event::LeaveReason::Quit));

    let stats = h.get("/api/stats").await;
    assert_eq!(
        (stats["users"].as_u64(), stats["c2c_messages"].as_u64(), stats["groups"].as_u64()),
        (Some(4), Some(2), Some(0))
    );
    assert_eq!(stats["webhooks_delivered"], 9);
    assert_eq!(stats["outbox_pending"], 0);
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn user_api_refuses_bad_requests() {
    let em = spawn(config(None)).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob", "cy"]).await;
    assert_eq!(h.post("/api/messages", json!({"from":"ann","to":"zed","body":text("x")})).await.0, 404);
    assert_eq!(h.post("/api/messages", json!({"from":"ann","to":"bob","body":[]})).await.0, 400);
    assert_eq!(h.post("/api/messages", json!({"from":"ann","to":"bob"})).await.0, 400);
    assert_eq!(h.post("/api/users", json!({"user_id": "u".repeat(33)})).await.0, 400);
    // Arrays are not requests, though serde alone would read `["dan"]` as a user named "dan".
    let (s, v) = h.post("/api/users", json!(["dan"])).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "request body is an array, not a JSON object");
    assert_eq!(h.send(reqwest::Method::GET, "/api/users/dan", None).await.0, 404, "nothing was created");
    assert_eq!(h.post("/api/messages", json!(["ann", "bob", text("x")])).await.0, 400);
    h.ok("/api/groups", json!({"group_id":"g","name":"G","owner":"ann"})).await;
    assert_eq!(h.post("/api/groups", json!({"group_id":"g","name":"G","owner":"ann"})).await.0, 409);
    assert_eq!(h.post("/api/groups/g/messages", json!({"from":"cy","body":text("x")})).await.0, 403);
    assert_eq!(h.post("/api/groups/nope/messages", json!({"from":"ann","body":text("x")})).await.0, 404);
    assert_eq!(h.post("/api/groups/g/leave", json!({"user_id":"ann"})).await.0, 409, "owner cannot leave");
    let (s, v) = h.send(reqwest::Method::PATCH, "/api/groups/g", Some(json!({"operator":"ann"}))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().expect("error").contains("changes none"));
    // A generated group id when none is given.
    let v = h.ok("/api/groups", json!({"name":"Auto","owner":"ann","group_type":"Private"})).await;
    assert!(v["group_id"].as_str().expect("gid").starts_with("lg-g"));
    // No ingest configured: changes are stored, nothing is queued.
    assert_eq!(em.stats().outbox_pending, 0);
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn ingest_outage_delays_but_never_drops_or_reorders() {
    let (ingest, url) = start_ingest(Mode::Down).await;
    let em = spawn(config(Some(url))).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let (from, to) = if i % 2 == 0 { ("ann", "bob") } else { ("bob", "ann") };
        let v = h.ok("/api/messages", json!({"from":from,"to":to,"body":text(&format!("m{i}"))})).await;
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ingest.events().is_empty());
    assert_eq!(em.stats().outbox_pending, 30);
    assert!(em.stats().counters.webhook_retries > 0, "retried while down");

    ingest.set(Mode::Up);
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    let got: Vec<String> = ingest.events().into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
    assert_eq!(em.stats().counters.webhooks_delivered, 30);
    // The backlog went out batched (up to 50 per request), not one request per event.
    assert!(*ingest.accepted_batches.lock().expect("lock") <= 3);
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn ingest_not_listening_yet_is_retried() {
    // A port with nothing behind it until the test starts a server there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let em = spawn(config(Some(format!("http://{addr}")))).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let v = h.ok("/api/messages", json!({"from":"ann","to":"bob","body":text("early")})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(em.stats().outbox_pending, 1);

    let ing = Ingest { events: Arc::default(), accepted_batches: Arc::default(), mode: Arc::new(Mutex::new(Mode::Up)) };
    let app = Router::new().route("/v1/legacy/events", post(ingest_handler)).with_state(ing.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind the same port");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    assert_eq!(ing.events()[0].id, v["id"].as_str().expect("id"));
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_refused_event_costs_only_itself() {
    let (ingest, url) = start_ingest(Mode::Down).await;
    let em = spawn(config(Some(url))).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let v = h.ok("/api/messages", json!({"from":"ann","to":"bob","body":text(&format!("m{i}"))})).await;
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    // All five queue up as one batch; ingest then refuses the batch because of the third event.
    ingest.set(Mode::Reject(ids[2].clone()));
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    let got: Vec<String> = ingest.events().into_iter().map(|e| e.id).collect();
    let mut expected = ids.clone();
    expected.remove(2);
    assert_eq!(got, expected);
    let c = em.stats().counters;
    assert_eq!((c.webhooks_delivered, c.webhooks_rejected), (4, 1));
    em.shutdown().await.expect("shutdown");
}

fn apply_client(em: &RunningLegacyEmulator, secret: &str) -> ApplyClient {
    ApplyClient::new(ApplyConfig::new(em.apply_url(), SigningSecret::new(secret)), &prometheus::Registry::new())
        .expect("client")
}

fn im_events() -> Vec<ContractEvent> {
    [
        json!({"id":"im:gevt:crew:Group.CallbackAfterCreateGroup:1000","type":"group.created","time":1000,
            "origin":"im","group_id":"crew","group_type":"Public","name":"Crew","owner":"ivy","members":["ann"]}),
        json!({"id":"im:gmsg:crew:1","type":"group.message","time":1001,"origin":"im","group_id":"crew",
            "from":"ivy","body":[{"type":"text","text":"from IM"}]}),
        json!({"id":"im:c2c:ivy:123_456_789","type":"c2c.message","time":1002,"origin":"im","from":"ivy",
            "to":"ann","body":[{"type":"text","text":"dm from IM"}]}),
        json!({"id":"im:gevt:crew:Group.CallbackAfterNewMemberJoin:1003","type":"group.members_joined",
            "time":1003,"origin":"im","group_id":"crew","members":["bob"]}),
    ]
    .iter()
    .map(|v| ContractEvent::from_value(v).expect("valid"))
    .collect()
}

#[tokio::test]
async fn apply_is_idempotent_records_origin_and_never_echoes() {
    let (ingest, url) = start_ingest(Mode::Up).await;
    let em = spawn(config(Some(url))).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let client = apply_client(&em, APPLY_SECRET);
    let never = CancellationToken::new();

    let first = client.apply(&im_events(), &never).await.expect("applied");
    assert_eq!((first.status, first.is_duplicate()), (200, false));
    let again = client.apply(&im_events(), &never).await.expect("replay");
    assert!(again.is_duplicate(), "a replay answers 409");
    // A batch mixing old and new events applies only the new one.
    let mut mixed = im_events();
    mixed.push(
        ContractEvent::from_value(&json!({"id":"im:gmsg:crew:2","type":"group.message","time":1004,"origin":"im",
            "group_id":"crew","from":"bob","body":[{"type":"text","text":"second"}]}))
        .expect("valid"),
    );
    assert_eq!(client.apply(&mixed, &never).await.expect("mixed").status, 200);

    let g = h.get("/api/groups/crew").await;
    assert_eq!(g["origin"], "im");
    assert_eq!(g["message_count"], 2);
    let members: Vec<&str> =
        g["members"].as_array().expect("m").iter().map(|m| m["user_id"].as_str().expect("u")).collect();
    assert_eq!(members, ["ann", "bob", "ivy"]);
    let dm = h.get("/api/c2c/ann/ivy/messages").await;
    assert_eq!(dm["messages"].as_array().expect("msgs").len(), 1);
    assert_eq!(dm["messages"][0]["origin"], "im");
    assert_eq!(dm["messages"][0]["id"], "im:c2c:ivy:123_456_789");
    assert_eq!(h.get("/api/users/ivy").await["user_id"], "ivy", "a user seen on IM exists here now");
    let c = em.stats().counters;
    assert_eq!((c.applied, c.apply_duplicates), (5, 8));

    // A native write after the applies is the only webhook: the applied events did not echo.
    let native = h.ok("/api/groups/crew/messages", json!({"from":"ann","body":text("from legacy")})).await;
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    let got: Vec<String> = ingest.events().into_iter().map(|e| e.id).collect();
    assert_eq!(got, vec![native["id"].as_str().expect("id").to_owned()]);
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn echo_webhooks_mode_sends_applied_events_marked_as_im() {
    let (ingest, url) = start_ingest(Mode::Up).await;
    let em = spawn(LegacyEmulatorConfig { echo_webhooks: true, ..config(Some(url)) }).await.expect("spawn");
    apply_client(&em, APPLY_SECRET).apply(&im_events(), &CancellationToken::new()).await.expect("applied");
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    let got = ingest.events();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|e| e.origin == Some(Origin::Im) && e.is_echo()));
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn apply_checks_signature_batch_and_applicability() {
    let em = spawn(config(None)).await.expect("spawn");
    let never = CancellationToken::new();
    // Both secrets of a rotation are accepted; anything else is 401 (retryable, not dead-lettered).
    apply_client(&em, OLD_APPLY_SECRET).apply(&im_events()[..1], &never).await.expect("old secret");
    apply_client(&em, APPLY_SECRET).apply(&im_events()[1..2], &never).await.expect("new secret");
    let err = apply_client(&em, "wrong").send_once(&im_events()).await.expect_err("401");
    assert_eq!(err.kind(), "legacy_http_401");

    let http = reqwest::Client::new();
    let body = br#"{"events":[{"id":"x","type":"group.dismissed","time":1,"group_id":"g"}]}"#;
    let post = |headers: Vec<(&'static str, String)>, body: &'static [u8]| {
        let mut r = http.post(em.apply_url()).body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let resp = post(vec![], body).await.expect("send");
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("text").contains("missing x-imbridge-timestamp"));
    let stale = signature::now_secs() - 301;
    let resp = post(signature::signature_headers(APPLY_SECRET, stale, body).to_vec(), body).await.expect("send");
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("text").contains("away from now"));

    // A well-signed but malformed batch: 400 with the index of each bad event.
    let bad: &'static [u8] =
        br#"{"events":[{"id":"ok","type":"group.dismissed","time":1,"group_id":"g"},{"id":"b","type":"c2c.message","time":1}]}"#;
    let resp =
        post(signature::signature_headers(APPLY_SECRET, signature::now_secs(), bad).to_vec(), bad).await.expect("send");
    assert_eq!(resp.status(), 400);
    let errors: ErrorsBody = resp.json().await.expect("errors body");
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(errors.errors[0].index, Some(1));
    // Arrays are neither events nor batches, though serde alone would read them by position.
    let positional: &'static [u8] =
        br#"{"events":[{"id":"ok","type":"group.dismissed","time":1,"group_id":"g"},["arr","group.dismissed",1,"g"]]}"#;
    let resp = post(signature::signature_headers(APPLY_SECRET, signature::now_secs(), positional).to_vec(), positional)
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let errors: ErrorsBody = resp.json().await.expect("errors body");
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(
        (errors.errors[0].index, errors.errors[0].error.as_str()),
        (Some(1), "event is an array, not a JSON object")
    );
    let array_batch: &'static [u8] = br#"[[{"id":"ok","type":"group.dismissed","time":1,"group_id":"g"}]]"#;
    let resp =
        post(signature::signature_headers(APPLY_SECRET, signature::now_secs(), array_batch).to_vec(), array_batch)
            .await
            .expect("send");
    assert_eq!(resp.status(), 400);
    let errors: ErrorsBody = resp.json().await.expect("errors body");
    assert_eq!(errors.errors[0].index, None);
    assert!(errors.errors[0].error.contains("an array, not a JSON object"), "{:?}", errors.errors);

    // A message for a group that does not exist cannot apply: 422 (dead-letter), naming the event; the
    // events before it stay applied and a redelivery skips them.
    let batch: Vec<ContractEvent> = [
        json!({"id":"im:c2c:a:1","type":"c2c.message","time":5,"origin":"im","from":"a","to":"b",
            "body":[{"type":"text","text":"x"}]}),
        json!({"id":"im:gmsg:ghost:1","type":"group.message","time":6,"origin":"im","group_id":"ghost","from":"a",
            "body":[{"type":"text","text":"x"}]}),
    ]
    .iter()
    .map(|v| ContractEvent::from_value(v).expect("valid"))
    .collect();
    let err = apply_client(&em, APPLY_SECRET).send_once(&batch).await.expect_err("422");
    assert_eq!(err.kind(), "legacy_http_422");
    assert!(err.to_string().contains("\"index\":1"), "{err}");
    assert!(err.to_string().contains("no group ghost"), "{err}");
    assert_eq!(em.stats().c2c_messages, 1);
    em.shutdown().await.expect("shutdown");
}

/// Every record kind of the export format, in the emulator's canonical order and form.
fn seed_files() -> BTreeMap<&'static str, Vec<Value>> {
    let mut f = BTreeMap::new();
    f.insert(
        "accounts.ndjson",
        vec![
            json!({"user_id":"ann","nick":"Ann","face_url":"https://x/ann.png"}),
            json!({"user_id":"bob","nick":"Bob"}),
            json!({"user_id":"cy"}),
        ],
    );
    f.insert(
        "profiles.ndjson",
        vec![
            json!({"user_id":"ann","nick":"Ann P.","gender":"female","birthday":19900102,"location":"Paris",
                "signature":"hi","allow_type":"need_confirm","language":2,"avatar":"a","level":3,"role":1,
                "custom":{"Hobby":"chess"}}),
            json!({"user_id":"cy","allow_type":"deny_any"}),
        ],
    );
    f.insert(
        "friends.ndjson",
        vec![
            json!({"user_id":"ann","friend_id":"bob","add_source":"legacy","remark":"B","added_at":1000}),
            json!({"user_id":"bob","friend_id":"ann","add_source":"Android","groups":["work","gym"],
                "add_wording":"hi, it's Bob"}),
        ],
    );
    f.insert(
        "c2c_messages.ndjson",
        vec![
            json!({"id":"m1","from":"ann","to":"bob","sent_at":2000,"body":[{"type":"text","text":"hi"},
                {"type":"image","url":"u","width":1,"height":2,"size":3}],"custom_data":"cd"}),
            json!({"id":"m2","from":"bob","to":"ann","sent_at":2000,"body":[{"type":"file","url":"u","name":"f",
                "size":9},{"type":"sound","url":"u","seconds":2,"size":5}]}),
            json!({"id":"m3","from":"ann","to":"bob","sent_at":3000,"body":[{"type":"video","url":"u","seconds":1,
                "size":7,"thumb_url":"t"},{"type":"location","latitude":1.5,"longitude":-2.25,"desc":"d"},
                {"type":"face","index":4,"data":"x"},{"type":"custom","data":"d","desc":"e","ext":"f"}]}),
            json!({"id":"lg-17","from":"ann","to":"cy","sent_at":2500,"body":[{"type":"text","text":"c"}]}),
        ],
    );
    f.insert("c2c_reads.ndjson", vec![json!({"user_id":"bob","peer_id":"ann","read_at":2000})]);
    f.insert(
        "groups.ndjson",
        vec![json!({"group_id":"team","type":"Community","name":"Team","owner":"ann","introduction":"i",
            "notification":"n","face_url":"f","max_members":200,"apply_join":"NeedPermission","created_at":1500})],
    );
    f.insert(
        "group_members.ndjson",
        vec![
            json!({"group_id":"team","user_id":"ann","role":"owner","joined_at":1500,"unread":0}),
            json!({"group_id":"team","user_id":"bob","role":"admin","joined_at":1600,"unread":1}),
            json!({"group_id":"team","user_id":"cy","role":"member","unread":2}),
        ],
    );
    f.insert(
        "group_messages.ndjson",
        vec![
            json!({"id":"gm1","group_id":"team","from":"ann","sent_at":4000,"body":[{"type":"text","text":"a"}]}),
            json!({"id":"gm2","group_id":"team","from":"bob","sent_at":4000,"body":[{"type":"text","text":"b"}]}),
        ],
    );
    f
}

fn write_files(dir: &Path, files: &BTreeMap<&str, Vec<Value>>) {
    for (name, lines) in files {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(name), text).expect("write seed");
    }
}

fn read_files(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        out.insert(path.file_name().expect("name").to_string_lossy().into_owned(), lines);
    }
    out
}

#[tokio::test]
async fn export_round_trip() {
    let seed = tempfile::tempdir().expect("tmp");
    let files = seed_files();
    write_files(seed.path(), &files);
    let em = spawn(LegacyEmulatorConfig { seed_dir: Some(seed.path().into()), ..config(None) }).await.expect("spawn");
    let h = Http::new(&em);

    let out = tempfile::tempdir().expect("tmp");
    let counts = h.ok("/api/export", json!({"dir": out.path()})).await;
    assert_eq!(counts["c2c_messages"], 4);
    assert_eq!(counts["group_members"], 3);
    let exported = read_files(out.path());
    assert_eq!(exported.len(), 8, "one file per record kind");
    for (name, lines) in &files {
        assert_eq!(&exported[*name], lines, "{name} differs after seed → export");
    }

    // Seeded history is readable and fired no webhook; new ids skip past seeded ones.
    let dm = h.get("/api/c2c/ann/bob/messages").await;
    let ids: Vec<&str> = dm["messages"].as_array().expect("m").iter().map(|m| m["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    let v = h.ok("/api/messages", json!({"from":"cy","to":"ann","body":text("new")})).await;
    assert_eq!(v["id"], "lg-18");

    // What users add shows up in the next export, in conversation order.
    h.ok("/api/groups/team/messages", json!({"from":"cy","body":text("c")})).await;
    let out2 = tempfile::tempdir().expect("tmp");
    em.emulator().export_to(out2.path()).expect("export");
    let again = read_files(out2.path());
    assert_eq!(again["c2c_messages.ndjson"].len(), 5);
    let gm: Vec<&str> = again["group_messages.ndjson"].iter().map(|m| m["id"].as_str().expect("id")).collect();
    assert_eq!(gm, ["gm1", "gm2", "lg-19"]);
    let unread: Vec<u64> =
        again["group_members.ndjson"].iter().map(|m| m["unread"].as_u64().expect("unread")).collect();
    assert_eq!(unread, [1, 2, 2], "a new message counts as unread for everyone but its sender");
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn seed_accepts_rfc3339_and_reports_bad_lines() {
    let seed = tempfile::tempdir().expect("tmp");
    std::fs::write(seed.path().join("accounts.ndjson"), "{\"user_id\":\"ann\"}\n\n{\"user_id\":\"bob\",\"x\":1}\n")
        .expect("write");
    std::fs::write(
        seed.path().join("c2c_messages.ndjson"),
        "{\"id\":\"m\",\"from\":\"ann\",\"to\":\"bob\",\"sent_at\":\"2023-11-14T22:13:20.123Z\",\"body\":[{\"type\":\"text\",\"text\":\"t\"}]}\n",
    )
    .expect("write");
    let em = spawn(LegacyEmulatorConfig { seed_dir: Some(seed.path().into()), ..config(None) }).await.expect("spawn");
    let out = tempfile::tempdir().expect("tmp");
    em.emulator().export_to(out.path()).expect("export");
    assert_eq!(read_files(out.path())["c2c_messages.ndjson"][0]["sent_at"], 1_700_000_000_123_i64);
    em.shutdown().await.expect("shutdown");

    std::fs::write(
        seed.path().join("friends.ndjson"),
        "{\"user_id\":\"ann\",\"friend_id\":\"zed\",\"add_source\":\"x\"}\n",
    )
    .expect("write");
    let err =
        spawn(LegacyEmulatorConfig { seed_dir: Some(seed.path().into()), ..config(None) }).await.expect_err("bad seed");
    assert_eq!(err.to_string(), "seed friends.ndjson:1: friend_id: no account zed");

    // A line that is an array is not read as an account by position.
    std::fs::remove_file(seed.path().join("friends.ndjson")).expect("rm");
    std::fs::write(seed.path().join("accounts.ndjson"), "{\"user_id\":\"ann\"}\n[\"not\",\"an\",\"object\"]\n")
        .expect("write");
    let err =
        spawn(LegacyEmulatorConfig { seed_dir: Some(seed.path().into()), ..config(None) }).await.expect_err("bad seed");
    assert_eq!(err.to_string(), "seed accounts.ndjson:2: the line is an array, not a JSON object");
}

#[tokio::test]
async fn state_file_keeps_data_and_undelivered_webhooks_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let state_file = dir.path().join("legacy.json");
    let (ingest, url) = start_ingest(Mode::Down).await;
    let cfg = LegacyEmulatorConfig { state_file: Some(state_file.clone()), ..config(Some(url)) };

    let em = spawn(cfg.clone()).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let v = h.ok("/api/messages", json!({"from":"ann","to":"bob","body":text(&format!("m{i}"))})).await;
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    apply_client(&em, APPLY_SECRET).apply(&im_events()[2..3], &CancellationToken::new()).await.expect("apply");
    em.shutdown().await.expect("shutdown saves");
    assert!(state_file.exists());

    ingest.set(Mode::Up);
    let em = spawn(cfg).await.expect("respawn");
    assert!(em.wait_outbox_empty(Duration::from_secs(10)).await);
    let got: Vec<String> = ingest.events().into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids, "webhooks queued before the restart are delivered after it, in order");
    let s = em.stats();
    assert_eq!((s.users, s.c2c_messages), (3, 4));
    // The apply record survived too: a replay is still a duplicate.
    let again = apply_client(&em, APPLY_SECRET).apply(&im_events()[2..3], &CancellationToken::new()).await;
    assert!(again.expect("replay").is_duplicate());
    // The next id continues after the ones already issued.
    let v = Http::new(&em).ok("/api/messages", json!({"from":"bob","to":"ann","body":text("after")})).await;
    assert_eq!(v["id"], "lg-4");
    em.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn config_is_validated() {
    let empty_secret = LegacyEmulatorConfig { apply_secrets: vec![SigningSecret::new("")], ..config(None) };
    assert!(spawn(empty_secret).await.is_err());
    // Without any apply secret the emulator runs, and refuses every apply.
    let em = spawn(LegacyEmulatorConfig { apply_secrets: vec![], ..config(None) }).await.expect("spawn");
    let err = apply_client(&em, APPLY_SECRET).send_once(&im_events()).await.expect_err("401");
    assert_eq!(err.kind(), "legacy_http_401");
    em.shutdown().await.expect("shutdown");
    let no_webhook_secret =
        LegacyEmulatorConfig { webhook_secret: SigningSecret::default(), ..config(Some("http://127.0.0.1:1".into())) };
    assert!(spawn(no_webhook_secret).await.is_err());
    let big_batch = LegacyEmulatorConfig { webhook_batch_max: 501, ..config(None) };
    assert!(spawn(big_batch).await.is_err());
}

/// An export line with its times as Unix ms and the member defaults spelled out, so two exports that mean the
/// same thing compare equal.
fn normalized(file: &str, mut v: Value) -> String {
    for field in ["sent_at", "read_at", "added_at", "created_at", "joined_at"] {
        if let Some(t) = v.get(field).cloned() {
            let ms: imbridge_core::TimestampMs = serde_json::from_value(t).expect("time");
            v[field] = json!(ms.as_millis());
        }
    }
    if file == "group_members.ndjson" {
        let o = v.as_object_mut().expect("object");
        o.entry("role").or_insert(json!("member"));
        o.entry("unread").or_insert(json!(0));
    }
    v.to_string()
}

#[tokio::test]
async fn generated_export_round_trips_and_validates() {
    // The importer's sample generator writes every kind and field the format has; the emulator must keep all
    // of it, and what it exports must pass the importer's validation.
    let gen_dir = tempfile::tempdir().expect("tmp");
    let opts = imbridge_importer::GenerateOptions {
        users: 40,
        friendships: 120,
        c2c_messages: 600,
        groups: 6,
        group_messages: 300,
        ..Default::default()
    };
    imbridge_importer::generate(gen_dir.path(), &opts).expect("generate");
    let em =
        spawn(LegacyEmulatorConfig { seed_dir: Some(gen_dir.path().into()), ..config(None) }).await.expect("spawn");
    let out = tempfile::tempdir().expect("tmp");
    em.emulator().export_to(out.path()).expect("export");
    em.shutdown().await.expect("shutdown");

    let input = read_files(gen_dir.path());
    let output = read_files(out.path());
    for (name, lines) in &input {
        let mut a: Vec<String> = lines.iter().map(|l| normalized(name, l.clone())).collect();
        let mut b: Vec<String> = output[name].iter().map(|l| normalized(name, l.clone())).collect();
        a.sort();
        b.sort();
        assert_eq!(a.len(), b.len(), "{name}: line count");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{name}: a record changed in the round trip");
        }
    }

    let export = imbridge_importer::ExportDir::open(out.path()).expect("open");
    let validation = imbridge_importer::validate(&export, &Default::default()).expect("validate");
    for k in validation.summaries() {
        assert_eq!(k.invalid, 0, "{:?}: {:?}", k.kind, k.errors);
    }
}

#[tokio::test]
async fn signed_reads_give_digests_messages_and_group_state() {
    use imbridge_core::event::MemberRole;
    use imbridge_core::{ConversationKey, TimestampMs};
    use imbridge_legacy::read::{CONVERSATION_PATH, MessageDigest};
    use imbridge_legacy::{ReadClient, ReadConfig, ReadError, Window};

    let em = spawn(config(None)).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob", "cy"]).await;
    let m1 = h.ok("/api/messages", json!({"from":"ann","to":"bob","body":text("one")})).await;
    let g = h.ok("/api/groups", json!({"group_id":"team","name":"Team","owner":"ann","members":["bob"]})).await;
    let m2 = h.ok("/api/messages", json!({"from":"bob","to":"ann","body":text("two")})).await;
    h.ok("/api/groups/team/messages", json!({"from":"bob","body":text("hey crew")})).await;
    // Applied (IM-origin) messages are part of what the legacy side holds, under their im: ids.
    apply_client(&em, APPLY_SECRET).apply(&im_events(), &CancellationToken::new()).await.expect("apply");

    let client = ReadClient::new(ReadConfig::new(em.url(), SigningSecret::new(APPLY_SECRET))).expect("client");
    let all = client.digests(Window::default()).await.expect("digests");
    let keys: Vec<&str> = all.conversations.iter().map(|d| d.conversation.as_str()).collect();
    assert_eq!(keys, ["c2c:ann:bob", "c2c:ann:ivy", "group:crew", "group:team"]);
    let ann_bob = ConversationKey::parse("c2c:ann:bob").expect("key");
    let read = client.conversation(&ann_bob, Window::default()).await.expect("read");
    assert_eq!(read.messages.len(), 2);
    assert_eq!(read.messages[0].id, m1["id"].as_str().expect("id"));
    assert_eq!(read.messages[1].id, m2["id"].as_str().expect("id"));
    assert!(read.group.is_none() && !read.truncated);
    // The digest is the documented hash of exactly those messages.
    let mut d = MessageDigest::new();
    for m in &read.messages {
        d.add(&m.id, m.time, &m.from, &m.body);
    }
    assert_eq!(d.finish(ann_bob.clone()), all.conversations[0]);

    let crew = client.conversation(&ConversationKey::parse("group:crew").expect("key"), Window::default()).await;
    let crew = crew.expect("group read");
    let ids: Vec<&str> = crew.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["im:gmsg:crew:1"], "applied messages keep their im: ids");
    assert_eq!(crew.messages[0].origin, Some(Origin::Im));
    let state = crew.group.expect("group state");
    assert_eq!((state.profile.name.as_str(), state.profile.owner.as_ref().map(|o| o.as_str())), ("Crew", Some("ivy")));
    let members: Vec<(&str, MemberRole)> = state.members.iter().map(|m| (m.user_id.as_str(), m.role)).collect();
    assert_eq!(
        members,
        [("ann", MemberRole::Member), ("bob", MemberRole::Member), ("ivy", MemberRole::Owner)],
        "sorted by user id, with roles"
    );
    let team = client.conversation(&ConversationKey::parse("group:team").expect("key"), Window::default()).await;
    let team = team.expect("team read");
    assert_eq!(team.messages.len(), 1);
    assert_eq!(team.messages[0].body, vec![imbridge_core::Element::Text { text: "hey crew".into() }]);
    assert_eq!(g["group_id"], "team");

    // A window: only the messages from `since` on count.
    let since = read.messages[1].time;
    let later = client.digests(Window::since(Some(since))).await.expect("windowed");
    let c = later.conversations.iter().find(|d| d.conversation == ann_bob).expect("ann-bob in window");
    // Both messages may share a millisecond, so count what the window must hold rather than assume.
    let expected = read.messages.iter().filter(|m| m.time >= since).count() as u64;
    assert_eq!(c.count, expected);
    let shifted = Window::since(Some(TimestampMs(since.0 + 1)));
    assert!(client.digests(shifted).await.expect("after").conversations.iter().all(|d| d.conversation != ann_bob));
    let future = Window::since(Some(TimestampMs(since.0 + 3_600_000)));
    assert!(client.digests(future).await.expect("empty").conversations.is_empty());
    // Nothing there is an empty answer, not an error.
    let none = client.conversation(&ConversationKey::parse("c2c:bob:cy").expect("key"), Window::default()).await;
    assert!(none.expect("empty read").messages.is_empty());

    // Signed like apply: a wrong secret or no signature is a 401, a malformed body a 400.
    let wrong = ReadClient::new(ReadConfig::new(em.url(), SigningSecret::new("nope"))).expect("client");
    assert!(matches!(wrong.digests(Window::default()).await, Err(ReadError::Status { status: 401, .. })));
    let (status, _) = h.post(CONVERSATION_PATH, json!({"conversation":"c2c:ann:bob"})).await;
    assert_eq!(status, 401);
    for body in [
        &br#"{"conversation":"nonsense"}"#[..],
        br#"{"conversation":"user:ann"}"#,
        br#"{"conversation":"c2c:a:b","sinse":1}"#,
    ] {
        let mut req = reqwest::Client::new().post(format!("{}{CONVERSATION_PATH}", em.url())).body(body.to_vec());
        for (k, v) in signature::signature_headers(APPLY_SECRET, signature::now_secs(), body) {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.expect("send").status().as_u16(), 400, "{}", String::from_utf8_lossy(body));
    }
    em.shutdown().await.expect("shutdown");
}

/// `apply_faults`: an injected failure is a 503 that applied nothing; an injected stall applies, then answers
/// past the caller's timeout, so the caller's retry is a duplicate.
#[tokio::test]
async fn apply_faults_fail_or_stall_after_applying() {
    use imbridge_legacy_emulator::config::ApplyFaults;

    let fail =
        LegacyEmulatorConfig { apply_faults: ApplyFaults { fail_rate: 1.0, ..ApplyFaults::default() }, ..config(None) };
    let em = spawn(fail).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let err = apply_client(&em, APPLY_SECRET).send_once(&im_events()).await.expect_err("injected failure");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(h.get("/api/stats").await["applied"], 0, "nothing applied");

    let stall = LegacyEmulatorConfig {
        apply_faults: ApplyFaults { stall_rate: 1.0, stall_ms: 1_500, ..ApplyFaults::default() },
        ..config(None)
    };
    let em = spawn(stall).await.expect("spawn");
    let h = Http::new(&em);
    users(&h, &["ann", "bob"]).await;
    let mut cfg = ApplyConfig::new(em.apply_url(), SigningSecret::new(APPLY_SECRET));
    cfg.timeout_ms = 300;
    let client = ApplyClient::new(cfg, &prometheus::Registry::new()).expect("client");
    assert!(client.send_once(&im_events()).await.is_err(), "the answer comes after the timeout");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.get("/api/stats").await["applied"] != 4 {
        assert!(tokio::time::Instant::now() < deadline, "the stalled batch was applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
