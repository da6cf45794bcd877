//! The apply client against a real HTTP server on 127.0.0.1: every answer class, Retry-After, timeouts,
//! refused connections, attempt limits and shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_legacy::signature::{IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use imbridge_legacy::{
    ApplyClient, ApplyConfig, ApplyError, ContractEvent, Origin, RetryPolicy, SigningSecret, parse_batch, verify,
};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "apply-test-secret";

/// What the server answers next: status, optional Retry-After, optional delay before answering.
#[derive(Clone)]
struct Answer {
    status: u16,
    retry_after: Option<&'static str>,
    delay: Duration,
}

fn answer(status: u16) -> Answer {
    Answer { status, retry_after: None, delay: Duration::ZERO }
}

struct Seen {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Server {
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(State(s): State<Server>, headers: HeaderMap, body: Bytes) -> Response {
    s.seen.lock().expect("lock").push(Seen { at: Instant::now(), headers, body });
    let a = s.script.lock().expect("lock").pop_front().unwrap_or_else(|| answer(200));
    tokio::time::sleep(a.delay).await;
    let mut resp = (StatusCode::from_u16(a.status).expect("status"), format!("answer {}", a.status)).into_response();
    if let Some(ra) = a.retry_after {
        resp.headers_mut().insert("retry-after", ra.parse().expect("header"));
    }
    resp
}

async fn start(script: Vec<Answer>) -> (Server, String) {
    let server = Server { script: Arc::new(Mutex::new(script.into())), ..Default::default() };
    let app = Router::new().route("/v1/apply", post(handle)).with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (server, format!("http://{addr}/v1/apply"))
}

fn client(url: &str, retry: RetryPolicy, timeout_ms: u64) -> (ApplyClient, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let mut cfg = ApplyConfig::new(url, SigningSecret::new(SECRET));
    cfg.retry = retry;
    cfg.timeout_ms = timeout_ms;
    (ApplyClient::new(cfg, &registry).expect("client"), registry)
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy { max_attempts, initial_backoff_ms: 10, max_backoff_ms: 50, max_retry_after_ms: 5_000 }
}

fn events() -> Vec<ContractEvent> {
    let e = |id: &str, text: &str| {
        ContractEvent::from_value(&serde_json::json!({"id":id,"type":"c2c.message","time":1_700_000_000_000_i64,
            "origin":"im","from":"ann","to":"bob","body":[{"type":"text","text":text}]}))
        .expect("valid")
    };
    vec![e("im:c2c:ann:1", "one"), e("im:c2c:ann:2", "two")]
}

fn counter(registry: &prometheus::Registry, outcome: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "imbridge_legacy_apply_requests_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.name() == "outcome" && l.value() == outcome))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test]
async fn applied_request_is_signed_and_keyed() {
    let (server, url) = start(vec![answer(200)]).await;
    let (c, registry) = client(&url, fast_retry(3), 2_000);
    let out = c.apply(&events(), &CancellationToken::new()).await.expect("applied");
    assert_eq!((out.status, out.attempts, out.is_duplicate()), (200, 1, false));

    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.headers[IDEMPOTENCY_KEY_HEADER], "im:c2c:ann:1");
    assert_eq!(req.headers["content-type"], "application/json");
    assert!(req.headers[SIGNATURE_HEADER].to_str().expect("ascii").starts_with("v1="));
    let ts: i64 = req.headers[TIMESTAMP_HEADER].to_str().expect("ascii").parse().expect("secs");
    verify(&[SECRET], &req.headers, &req.body, ts, 300).expect("signature verifies");
    assert!(verify(&["wrong"], &req.headers, &req.body, ts, 300).is_err());
    let parsed = parse_batch(&req.body).expect("valid batch");
    assert_eq!(parsed, events());
    assert!(parsed.iter().all(|e| e.origin == Some(Origin::Im)));
    assert_eq!(counter(&registry, "applied"), 1);
}

#[tokio::test]
async fn conflict_means_already_applied() {
    let (_server, url) = start(vec![answer(409)]).await;
    let (c, registry) = client(&url, fast_retry(3), 2_000);
    let out = c.apply(&events(), &CancellationToken::new()).await.expect("applied");
    assert!(out.is_duplicate());
    assert_eq!(counter(&registry, "duplicate"), 1);
}

#[tokio::test]
async fn bad_request_and_unprocessable_are_dead_lettered_without_retry() {
    for status in [400, 422] {
        let (server, url) = start(vec![answer(status), answer(200)]).await;
        let (c, registry) = client(&url, fast_retry(5), 2_000);
        let err = c.apply(&events(), &CancellationToken::new()).await.expect_err("refused");
        assert_eq!(err.disposition(), Disposition::DeadLetter, "{status}");
        assert_eq!(err.kind(), format!("legacy_http_{status}"));
        assert!(err.to_string().contains(&format!("answer {status}")), "{err}");
        assert_eq!(server.seen.lock().expect("lock").len(), 1, "no retry after {status}");
        assert_eq!(counter(&registry, "rejected"), 1);
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_applied() {
    let (server, url) = start(vec![answer(500), answer(502), answer(503), answer(200)]).await;
    let (c, registry) = client(&url, fast_retry(5), 2_000);
    let out = c.apply(&events(), &CancellationToken::new()).await.expect("applied eventually");
    assert_eq!(out.attempts, 4);
    assert_eq!(server.seen.lock().expect("lock").len(), 4);
    assert_eq!(counter(&registry, "retryable"), 3);
    // Every attempt is signed afresh and carries the same idempotency key.
    for req in server.seen.lock().expect("lock").iter() {
        let ts: i64 = req.headers[TIMESTAMP_HEADER].to_str().expect("ascii").parse().expect("secs");
        verify(&[SECRET], &req.headers, &req.body, ts, 300).expect("signature verifies");
        assert_eq!(req.headers[IDEMPOTENCY_KEY_HEADER], "im:c2c:ann:1");
    }
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let limited = Answer { status: 429, retry_after: Some("1"), delay: Duration::ZERO };
    let (_server, url) = start(vec![limited.clone()]).await;
    let (c, _) = client(&url, fast_retry(3), 2_000);

    // A single request surfaces the hint as a retryable error.
    let err = c.send_once(&events()).await.expect_err("429");
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(err.kind(), "legacy_http_429");

    let (server2, url2) = start(vec![limited, answer(204)]).await;
    let (c2, _) = client(&url2, fast_retry(3), 2_000);
    let out = c2.apply(&events(), &CancellationToken::new()).await.expect("applied");
    assert_eq!((out.status, out.attempts), (204, 2));
    let seen = server2.seen.lock().expect("lock");
    let gap = seen[1].at - seen[0].at;
    // The policy's own backoff is at most 50 ms: a gap of ~1 s is the server's Retry-After at work.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn unavailable_with_http_date_retry_after() {
    let (_server, url) =
        start(vec![Answer { status: 503, retry_after: Some("Sun, 06 Nov 1994 08:49:37 GMT"), delay: Duration::ZERO }])
            .await;
    let (c, _) = client(&url, fast_retry(1), 2_000);
    let err = c.send_once(&events()).await.expect_err("503");
    assert_eq!(err.disposition(), Disposition::Retry);
    // A date in the past means "retry now".
    assert_eq!(err.retry_after(), Some(Duration::ZERO));
}

#[tokio::test]
async fn slow_answer_is_a_retryable_timeout() {
    let slow = Answer { status: 200, retry_after: None, delay: Duration::from_millis(800) };
    let (_server, url) = start(vec![slow]).await;
    let (c, registry) = client(&url, fast_retry(1), 200);
    let started = Instant::now();
    let err = c.apply(&events(), &CancellationToken::new()).await.expect_err("timeout");
    assert!(matches!(err, ApplyError::Timeout(_)), "{err:?}");
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(err.kind(), "legacy_timeout");
    assert!(started.elapsed() < Duration::from_millis(700));
    assert_eq!(counter(&registry, "retryable"), 1);
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (c, _) = client(&format!("http://127.0.0.1:{port}/v1/apply"), fast_retry(2), 1_000);
    let err = c.apply(&events(), &CancellationToken::new()).await.expect_err("refused");
    assert!(matches!(err, ApplyError::Connect(_)), "{err:?}");
    assert_eq!(err.disposition(), Disposition::Retry);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let (server, url) = start(vec![answer(500); 10]).await;
    let (c, _) = client(&url, fast_retry(3), 2_000);
    let err = c.apply(&events(), &CancellationToken::new()).await.expect_err("exhausted");
    assert_eq!(err.kind(), "legacy_http_500");
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(server.seen.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn shutdown_interrupts_the_backoff() {
    let limited = Answer { status: 503, retry_after: Some("30"), delay: Duration::ZERO };
    let (_server, url) = start(vec![limited]).await;
    let (c, _) = client(&url, fast_retry(0), 2_000);
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        t.cancel();
    });
    let started = Instant::now();
    let err = c.apply(&events(), &token).await.expect_err("cancelled");
    assert!(matches!(err, ApplyError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn wrong_credentials_are_retried_not_dead_lettered() {
    let (_server, url) = start(vec![answer(401)]).await;
    let (c, _) = client(&url, fast_retry(1), 2_000);
    let err = c.apply(&events(), &CancellationToken::new()).await.expect_err("401");
    assert_eq!(err.disposition(), Disposition::Retry);
}

#[tokio::test]
async fn empty_and_oversized_batches_never_leave_the_process() {
    let (server, url) = start(vec![]).await;
    let (c, _) = client(&url, fast_retry(3), 2_000);
    let err = c.apply(&[], &CancellationToken::new()).await.expect_err("empty");
    assert_eq!(err, ApplyError::BatchSize(0));
    assert_eq!(err.disposition(), Disposition::DeadLetter);
    let many: Vec<_> = std::iter::repeat_n(events()[0].clone(), 501).collect();
    assert_eq!(c.apply(&many, &CancellationToken::new()).await.expect_err("501"), ApplyError::BatchSize(501));
    assert!(server.seen.lock().expect("lock").is_empty());
}
