//! The client against real HTTP servers on 127.0.0.1: query string and body, envelope errors, retries with
//! classification, timeouts, connection failures, rate limiting (including against a server that enforces a
//! limit) and the paging helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_im::types::c2c::{ImportMsgReq, SYNC_HISTORY};
use imbridge_im::types::group::GroupInfoFilter;
use imbridge_im::types::sns::FriendGetReq;
use imbridge_im::{Api, ImClient, ImConfig, ImError, MsgElement, RateSetting, RetryConfig, usersig};
use prometheus::Registry;
use serde_json::{Value, json};

const APP: u64 = 1_400_000_000;
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: HashMap<String, String>,
    content_type: Option<String>,
    body: Value,
}

type Handler = dyn Fn(&Seen, usize) -> (StatusCode, String) + Send + Sync;

#[derive(Clone)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
}

async fn handle(
    State(s): State<Server>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let seen = Seen {
        path: uri.path().to_owned(),
        query,
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let n = {
        let mut all = s.seen.lock().expect("lock");
        all.push(seen.clone());
        all.len()
    };
    (s.handler)(&seen, n)
}

/// Starts a server answering every `POST /v4/...` with `handler(request, 1-based hit number)`.
async fn serve(handler: impl Fn(&Seen, usize) -> (StatusCode, String) + Send + Sync + 'static) -> (SocketAddr, Server) {
    let server = Server { seen: Arc::new(Mutex::new(Vec::new())), handler: Arc::new(handler) };
    let app = Router::new()
        .route("/v4/{service}/{command}", post(handle))
        .route("/prefix/v4/{service}/{command}", post(handle))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

fn ok(extra: Value) -> (StatusCode, String) {
    let mut v = json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    (StatusCode::OK, v.to_string())
}

fn fail(code: i64) -> (StatusCode, String) {
    (StatusCode::OK, json!({"ActionStatus":"FAIL","ErrorCode":code,"ErrorInfo":format!("error {code}")}).to_string())
}

fn config(addr: SocketAddr) -> ImConfig {
    ImConfig {
        base_url: format!("http://{addr}"),
        sdkappid: APP,
        secret_key: KEY.into(),
        request_timeout_ms: 2_000,
        retry: RetryConfig { max_attempts: 4, base_backoff_ms: 5, max_backoff_ms: 20 },
        ..ImConfig::default()
    }
}

fn client(cfg: &ImConfig) -> (ImClient, Registry) {
    let registry = Registry::new();
    let c = ImClient::new(cfg, &registry).expect("client");
    (c, registry)
}

fn counter(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v)))
        .map(|m| m.get_counter().get_value())
        .sum()
}

fn import_req() -> ImportMsgReq {
    ImportMsgReq {
        sync_from_old_system: SYNC_HISTORY,
        from_account: "ann".into(),
        to_account: "bob".into(),
        msg_seq: Some(1),
        msg_random: 42,
        msg_time_stamp: 1_700_000_000,
        msg_body: vec![MsgElement::text("hi")],
        cloud_custom_data: None,
    }
}

#[tokio::test]
async fn sends_documented_query_path_and_body() {
    let (addr, server) = serve(|_, _| ok(json!({}))).await;
    let (c, registry) = client(&config(addr));
    c.importmsg(&import_req()).await.expect("import ok");
    c.clone().importmsg(&import_req()).await.expect("clone shares everything");

    let seen = server.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/v4/openim/importmsg");
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(first.query.get("sdkappid").map(String::as_str), Some("1400000000"));
    assert_eq!(first.query.get("identifier").map(String::as_str), Some("administrator"));
    assert_eq!(first.query.get("contenttype").map(String::as_str), Some("json"));
    let sig = first.query.get("usersig").expect("usersig");
    let now = imbridge_im::sigcache::unix_now_secs();
    let claims = usersig::verify(sig, APP, KEY, "administrator", now).expect("usersig verifies with the key");
    assert_eq!(claims.expire, 86_400);
    assert_eq!(seen[1].query.get("usersig"), Some(sig), "the admin usersig is cached");
    let randoms: Vec<u32> = seen.iter().map(|s| s.query.get("random").expect("random").parse().expect("u32")).collect();
    assert_ne!(randoms[0], randoms[1], "random differs per call");
    assert_eq!(
        first.body,
        json!({"SyncFromOldSystem":2,"From_Account":"ann","To_Account":"bob","MsgSeq":1,"MsgRandom":42,
            "MsgTimeStamp":1700000000,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]})
    );
    assert_eq!(counter(&registry, "imbridge_im_requests_total", &[("api", "importmsg"), ("outcome", "ok")]), 2.0);
    assert_eq!(counter(&registry, "imbridge_im_calls_total", &[("api", "importmsg"), ("outcome", "ok")]), 2.0);
}

#[tokio::test]
async fn base_url_with_a_path_prefix_is_kept() {
    let (addr, server) = serve(|_, _| ok(json!({}))).await;
    // A base with a path and no trailing slash: `v4/…` goes after it, it does not replace it.
    let cfg = ImConfig { base_url: format!("http://{addr}/prefix"), ..config(addr) };
    let (c, _r) = client(&cfg);
    c.importmsg(&import_req()).await.expect("ok");
    assert_eq!(server.seen.lock().expect("lock")[0].path, "/prefix/v4/openim/importmsg");
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let (addr, server) = serve(|_, _| fail(90008)).await;
    let (c, registry) = client(&config(addr));
    let err = c.importmsg(&import_req()).await.expect_err("90008 fails");
    assert!(matches!(err, ImError::Api { api: Api::ImportMsg, code: 90008, .. }), "{err:?}");
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    assert_eq!(err.kind(), "im_90008");
    assert_eq!(server.seen.lock().expect("lock").len(), 1);
    assert_eq!(counter(&registry, "imbridge_im_retries_total", &[]), 0.0);
    assert_eq!(counter(&registry, "imbridge_im_calls_total", &[("outcome", "permanent")]), 1.0);
}

#[tokio::test]
async fn action_status_fail_with_zero_code_is_an_error() {
    let (addr, _server) =
        serve(|_, _| (StatusCode::OK, r#"{"ActionStatus":"FAIL","ErrorCode":0,"ErrorInfo":"odd"}"#.into())).await;
    let (c, _r) = client(&config(addr));
    assert!(matches!(c.importmsg(&import_req()).await, Err(ImError::Api { code: 0, .. })));
}

#[tokio::test]
async fn frequency_limit_and_5xx_are_retried_then_succeed() {
    let (addr, server) = serve(|_, n| match n {
        1 | 2 => fail(60007),
        3 => (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".into()),
        _ => ok(json!({"MsgTime":1700000001,"MsgKey":"1_42_1700000001"})),
    })
    .await;
    let (c, registry) = client(&config(addr));
    let req = imbridge_im::types::c2c::SendMsgReq {
        to_account: "bob".into(),
        msg_random: 42,
        msg_body: vec![MsgElement::text("x")],
        ..Default::default()
    };
    let resp = c.sendmsg(&req).await.expect("succeeds on the 4th attempt");
    assert_eq!(resp.msg_key, "1_42_1700000001");
    let seen = server.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.body == seen[0].body), "every attempt sends the same body");
    assert_eq!(counter(&registry, "imbridge_im_retries_total", &[("api", "sendmsg")]), 3.0);
    assert_eq!(counter(&registry, "imbridge_im_frequency_limited_total", &[("code", "60007")]), 2.0);
    assert_eq!(counter(&registry, "imbridge_im_requests_total", &[("outcome", "retryable")]), 3.0);
    // A retried call that succeeded counts once, as ok.
    assert_eq!(counter(&registry, "imbridge_im_calls_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(counter(&registry, "imbridge_im_calls_total", &[("outcome", "retryable")]), 0.0);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_keep_the_classification() {
    let (addr, server) = serve(|_, _| fail(70500)).await;
    let (c, registry) = client(&config(addr));
    let err = c.importmsg(&import_req()).await.expect_err("always failing");
    assert_eq!(err.code(), Some(70500));
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(server.seen.lock().expect("lock").len(), 4);
    assert_eq!(counter(&registry, "imbridge_im_calls_total", &[("outcome", "retryable")]), 1.0);

    let (addr, _s) = serve(|_, _| (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())).await;
    let (c, _r) =
        client(&ImConfig { retry: RetryConfig { max_attempts: 1, ..RetryConfig::default() }, ..config(addr) });
    let err = c.importmsg(&import_req()).await.expect_err("500");
    assert!(matches!(&err, ImError::Http { status: 500, body, .. } if body == "boom"), "{err:?}");
    assert_eq!(err.kind(), "im_http_500");
}

#[tokio::test]
async fn unparseable_200_is_a_permanent_bad_response() {
    let (addr, server) = serve(|_, _| (StatusCode::OK, "not json".into())).await;
    let (c, _r) = client(&config(addr));
    let err = c.importmsg(&import_req()).await.expect_err("bad body");
    assert!(matches!(err, ImError::BadResponse { .. }), "{err:?}");
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    assert_eq!(server.seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            acc.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    let cfg = ImConfig {
        request_timeout_ms: 150,
        retry: RetryConfig { max_attempts: 2, base_backoff_ms: 1, max_backoff_ms: 1 },
        ..config(addr)
    };
    let (c, _r) = client(&cfg);
    let start = Instant::now();
    let err = c.importmsg(&import_req()).await.expect_err("times out");
    assert!(matches!(err, ImError::Timeout { api: Api::ImportMsg }), "{err:?}");
    assert_eq!(err.kind(), "im_timeout");
    assert_eq!(err.disposition(), Disposition::Retry);
    assert!(start.elapsed() >= Duration::from_millis(300), "two attempts of 150 ms");

    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let (c, _r) =
        client(&ImConfig { retry: RetryConfig { max_attempts: 1, ..RetryConfig::default() }, ..config(free) });
    let err = c.importmsg(&import_req()).await.expect_err("refused");
    assert!(matches!(err, ImError::Connect { .. }), "{err:?}");
    assert_eq!(err.kind(), "im_connect");
    assert_eq!(err.disposition(), Disposition::Retry);
}

/// A server enforcing IM's per-API limit the way a token bucket of `per_sec` per second does, answering
/// 60007 beyond it, like the real service and the emulator.
async fn limited_server(per_sec: u32) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let limiter = Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
        NonZeroU32::new(per_sec).expect("non-zero"),
    )));
    let rejected = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (rej, acc) = (rejected.clone(), accepted.clone());
    let (addr, _s) = serve(move |_, _| {
        if limiter.check().is_ok() {
            acc.fetch_add(1, Ordering::SeqCst);
            ok(json!({}))
        } else {
            rej.fetch_add(1, Ordering::SeqCst);
            fail(60007)
        }
    })
    .await;
    (addr, rejected, accepted)
}

#[tokio::test]
async fn steady_state_at_the_documented_rate_never_provokes_60007() {
    const RATE: u32 = 40;
    let (addr, rejected, accepted) = limited_server(RATE).await;
    let cfg = ImConfig {
        rate_limits: [(Api::ImportMsg, RateSetting::PerSec(f64::from(RATE)))].into_iter().collect(),
        retry: RetryConfig { max_attempts: 1, ..RetryConfig::default() },
        ..config(addr)
    };
    let (c, registry) = client(&cfg);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                c.importmsg(&import_req()).await.expect("never limited");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let took = start.elapsed();
    assert_eq!(rejected.load(Ordering::SeqCst), 0);
    assert_eq!(accepted.load(Ordering::SeqCst), 120);
    // 120 calls at 40/s shared by all clones: about 3 s.
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(counter(&registry, "imbridge_im_rate_limit_wait_seconds_total", &[("api", "importmsg")]) > 1.0);

    // Control: the same load with client-side limiting off does hit the server's limit.
    let (addr, rejected, _) = limited_server(RATE).await;
    let cfg = ImConfig {
        rate_limits: [(Api::ImportMsg, RateSetting::Off)].into_iter().collect(),
        retry: RetryConfig { max_attempts: 1, ..RetryConfig::default() },
        ..config(addr)
    };
    let (c, _r) = client(&cfg);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                let _ = c.importmsg(&import_req()).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert!(rejected.load(Ordering::SeqCst) > 0, "unthrottled burst must be rejected by the server");
}

#[tokio::test]
async fn rate_can_change_at_run_time_for_all_clones() {
    let (addr, _s) = serve(|_, _| ok(json!({}))).await;
    let cfg =
        ImConfig { rate_limits: [(Api::DestroyGroup, RateSetting::PerSec(2.0))].into_iter().collect(), ..config(addr) };
    let (c, _r) = client(&cfg);
    assert_eq!(c.rate(Api::DestroyGroup), RateSetting::PerSec(2.0));
    assert_eq!(c.rate(Api::MultiAccountImport), RateSetting::PerSec(100.0), "documented default");
    let req = imbridge_im::types::group::DestroyGroupReq { group_id: "g".into() };
    let start = Instant::now();
    for _ in 0..4 {
        c.destroy_group(&req).await.expect("ok");
    }
    // Two tokens (one absorbs timer lateness), then one every 500 ms.
    assert!(start.elapsed() >= Duration::from_millis(900), "4 calls at 2/s take ~1 s");

    let other = c.clone();
    other.set_rate(Api::DestroyGroup, RateSetting::PerSec(1000.0));
    assert_eq!(c.rate(Api::DestroyGroup), RateSetting::PerSec(1000.0), "clones share limiters");
    let start = Instant::now();
    for _ in 0..20 {
        c.destroy_group(&req).await.expect("ok");
    }
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[tokio::test]
async fn pages_friends_history_members_and_groups() {
    let (addr, server) = serve(|seen, _| {
        let b = &seen.body;
        match seen.path.as_str() {
            "/v4/sns/friend_get" => match b["StartIndex"].as_u64() {
                Some(0) => ok(json!({"UserDataItem":[{"To_Account":"f1","ValueItem":[]},{"To_Account":"f2"}],
                    "FriendNum":3,"CompleteFlag":0,"NextStartIndex":2})),
                Some(2) => ok(json!({"UserDataItem":[{"To_Account":"f3"}],"FriendNum":3,"CompleteFlag":1,"NextStartIndex":0})),
                _ => fail(30001),
            },
            "/v4/openim/admin_getroammsg" => {
                let m = |seq: u32, t: i64| {
                    json!({"From_Account":"ann","To_Account":"bob","MsgSeq":seq,"MsgRandom":seq,"MsgTimeStamp":t,
                        "MsgFlagBits":0,"MsgKey":format!("{seq}_{seq}_{t}"),"MsgBody":[]})
                };
                if b.get("LastMsgKey").is_none() {
                    assert_eq!(b["MaxTime"], 200);
                    // Newest page; the oldest message of it has time 150.
                    ok(json!({"Complete":0,"MsgCnt":2,"LastMsgTime":150,"LastMsgKey":"3_3_150",
                        "MsgList":[m(3,150),m(4,180)]}))
                } else {
                    assert_eq!(b["MaxTime"], 150);
                    assert_eq!(b["LastMsgKey"], "3_3_150");
                    // Same second repeated by the server: the client de-duplicates by MsgKey.
                    ok(json!({"Complete":1,"MsgCnt":3,"LastMsgTime":100,"LastMsgKey":"1_1_100",
                        "MsgList":[m(2,150),m(1,100),m(3,150)]}))
                }
            }
            "/v4/group_open_http_svc/group_msg_get_simple" => {
                let g = |seq: u64| json!({"From_Account":"a","IsPlaceMsg":0,"MsgBody":[],"MsgRandom":seq,"MsgSeq":seq,"MsgTimeStamp":seq});
                match b.get("ReqMsgSeq").and_then(Value::as_u64) {
                    None => ok(json!({"GroupId":"g","IsFinished":1,"RspMsgList":(6..=25).rev().map(g).collect::<Vec<_>>()})),
                    Some(5) => ok(json!({"GroupId":"g","IsFinished":1,"RspMsgList":(1..=5).rev().map(g).collect::<Vec<_>>()})),
                    Some(other) => panic!("unexpected ReqMsgSeq {other}"),
                }
            }
            "/v4/group_open_http_svc/get_group_member_info" => {
                assert_eq!(b["Limit"], 100);
                let off = b["Offset"].as_u64().unwrap_or(0);
                let list: Vec<Value> =
                    (off..(off + 100).min(130)).map(|i| json!({"Member_Account":format!("m{i}")})).collect();
                ok(json!({"MemberNum":130,"MemberList":list}))
            }
            "/v4/group_open_http_svc/get_appid_group_list" => match b["Next"].as_u64() {
                Some(0) => ok(json!({"TotalCount":3,"GroupIdList":[{"GroupId":"a"},{"GroupId":"b"}],"Next":4454685361u64})),
                Some(4454685361) => ok(json!({"TotalCount":3,"GroupIdList":[{"GroupId":"c"}],"Next":0})),
                _ => fail(10004),
            },
            "/v4/group_open_http_svc/get_group_info" => {
                let ids = b["GroupIdList"].as_array().cloned().unwrap_or_default();
                assert!(ids.len() <= 50);
                ok(json!({"GroupInfo":ids.iter().map(|id| json!({"GroupId":id,"ErrorCode":0,"Name":"n"})).collect::<Vec<_>>()}))
            }
            other => panic!("unexpected path {other}"),
        }
    })
    .await;
    let cfg =
        ImConfig { rate_limits: [(Api::GetAppidGroupList, RateSetting::Off)].into_iter().collect(), ..config(addr) };
    let (c, _r) = client(&cfg);

    let friends = c.all_friends("u").await.expect("friends");
    assert_eq!(friends.iter().map(|f| f.to_account.as_str()).collect::<Vec<_>>(), ["f1", "f2", "f3"]);

    let hist = c.c2c_history("bob", "ann", 0, 200).await.expect("history");
    assert_eq!(hist.iter().map(|m| m.msg_seq).collect::<Vec<_>>(), [1, 2, 3, 4], "oldest first, each once");

    let gh = c.group_history("g", false).await.expect("group history");
    assert_eq!(gh.iter().map(|m| m.msg_seq).collect::<Vec<_>>(), (1..=25).collect::<Vec<_>>());

    let members = c.all_group_members("g", None).await.expect("members");
    assert_eq!(members.len(), 130);
    assert_eq!(members[129].member_account, "m129");

    assert_eq!(c.all_group_ids(None).await.expect("ids"), ["a", "b", "c"]);

    let ids: Vec<String> = (0..120).map(|i| format!("g{i}")).collect();
    let infos = c.group_infos(&ids, Some(GroupInfoFilter::default())).await.expect("infos");
    assert_eq!(infos.len(), 120);
    let info_calls = server.seen.lock().expect("lock").iter().filter(|s| s.path.ends_with("get_group_info")).count();
    assert_eq!(info_calls, 3, "chunked by 50");
}

#[tokio::test]
async fn paging_that_does_not_advance_is_an_error_not_a_hang() {
    let (addr, _s) = serve(|_, _| ok(json!({"UserDataItem":[],"CompleteFlag":0,"NextStartIndex":0}))).await;
    let (c, _r) = client(&config(addr));
    let err = c.all_friends("u").await.expect_err("stuck cursor");
    assert!(matches!(err, ImError::BadResponse { api: Api::FriendGet, .. }), "{err:?}");
    // The single-page method still works for callers that page themselves.
    let page = c.friend_get(&FriendGetReq { from_account: "u".into(), ..Default::default() }).await.expect("page");
    assert_eq!(page.complete_flag, 0);
}
