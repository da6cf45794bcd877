//! The HTTP surface: IM's REST API at `POST /v4/{service}/{command}`, the simulated client at
//! `POST /emulator/client/v4/{service}/{command}`, and the emulator's own endpoints (`/emulator/healthz`,
//! `/emulator/stats`, `/emulator/clock`, `/emulator/callbacks/flush`, `GET`/`PUT /emulator/faults`). Every IM
//! answer is HTTP 200 with the JSON envelope, as on the real service — except injected faults: HTTP 500 with a
//! plain-text body, or a request held and then cut off without an answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::json;

use crate::Emulator;
use crate::emulator::{HttpCall, RestAnswer};
use crate::faults::Faults;

/// Bodies above this are refused before parsing; IM's own message limit (8 KB) is enforced per API.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The emulator's router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` to report the
/// caller's address as `ClientIP` in callbacks (otherwise `127.0.0.1`).
pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/v4/{service}/{command}", any(rest))
        .route("/emulator/client/v4/{service}/{command}", any(client))
        .route("/emulator/healthz", get(|| async { "ok\n" }))
        .route("/emulator/stats", get(stats))
        .route("/emulator/clock", post(clock))
        .route("/emulator/callbacks/flush", post(flush))
        .route("/emulator/faults", get(get_faults).put(put_faults))
        .fallback(fallback)
        .with_state(emulator)
}

/// What the handlers need from the raw request.
struct Raw {
    is_post: bool,
    query: HashMap<String, String>,
    client_ip: String,
    body: Result<Vec<u8>, String>,
}

impl Raw {
    fn call<'a>(&'a self, service: &'a str, command: &'a str, body: &'a [u8]) -> HttpCall<'a> {
        HttpCall { is_post: self.is_post, query: &self.query, service, command, client_ip: &self.client_ip, body }
    }
}

async fn read(req: Request) -> Raw {
    let is_post = req.method() == Method::POST;
    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
    let client_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "127.0.0.1".to_owned(), |c| c.0.ip().to_string());
    let body = to_bytes(req.into_body(), MAX_BODY_BYTES).await.map(|b| b.to_vec()).map_err(|e| e.to_string());
    Raw { is_post, query, client_ip, body }
}

fn too_large(why: &str) -> Response {
    Json(json!({"ActionStatus": "FAIL", "ErrorCode": 93000, "ErrorInfo": format!("request body too large: {why}")}))
        .into_response()
}

async fn rest(State(emu): State<Emulator>, Path((service, command)): Path<(String, String)>, req: Request) -> Response {
    let raw = read(req).await;
    let body = match &raw.body {
        Ok(b) => b,
        Err(why) => return too_large(why),
    };
    match emu.rest(&raw.call(&service, &command, body)).await {
        RestAnswer::Json(v) => Json(v).into_response(),
        RestAnswer::Http500 => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error (injected fault)\n").into_response()
        }
        RestAnswer::Hang(hold) => hang_up(&emu, hold).await,
    }
}

/// An injected timeout: hold the request, then end the connection without an answer. The response's body fails
/// before its first byte, which makes the server abort the connection instead of completing the answer. A
/// shutting-down server lets go at once, so graceful shutdown is not held up.
async fn hang_up(emu: &Emulator, hold: Duration) -> Response {
    tokio::select! {
        () = tokio::time::sleep(hold) => {}
        () = emu.closing().cancelled() => {}
    }
    let cut = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected timeout: no answer"))
    });
    Response::new(axum::body::Body::from_stream(cut))
}

async fn client(
    State(emu): State<Emulator>,
    Path((service, command)): Path<(String, String)>,
    req: Request,
) -> Response {
    let raw = read(req).await;
    let body = match &raw.body {
        Ok(b) => b,
        Err(why) => return too_large(why),
    };
    Json(emu.client(&raw.call(&service, &command, body)).await).into_response()
}

/// Paths under `/v4/` that are not `service/command` are a bad resource (HTTP 200, 60009); anything else is 404.
async fn fallback(req: Request) -> Response {
    if req.uri().path().starts_with("/v4/") {
        Json(json!({"ActionStatus": "FAIL", "ErrorCode": 60009,
            "ErrorInfo": "bad resource: expected /v4/<service>/<command>"}))
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

async fn stats(State(emu): State<Emulator>) -> Response {
    Json(emu.stats()).into_response()
}

#[derive(Debug, Deserialize)]
struct ClockRequest {
    /// Seconds to move the emulated clock forward.
    advance_secs: u64,
}

/// `POST /emulator/clock {"advance_secs": N}`: lets out-of-process tests cross dedup windows and retention.
async fn clock(State(emu): State<Emulator>, Json(req): Json<ClockRequest>) -> Response {
    emu.advance_clock(Duration::from_secs(req.advance_secs));
    Json(json!({"now_ms": emu.now_ms()})).into_response()
}

/// `POST /emulator/callbacks/flush`: answers once every callback queued so far has been attempted.
async fn flush(State(emu): State<Emulator>) -> Response {
    match tokio::time::timeout(Duration::from_secs(30), emu.flush_callbacks()).await {
        Ok(()) => (StatusCode::OK, "flushed\n").into_response(),
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "callbacks still pending after 30 s\n").into_response(),
    }
}

/// `GET /emulator/faults`: the faults injected now (the `[faults]` shape).
async fn get_faults(State(emu): State<Emulator>) -> Response {
    Json(emu.faults()).into_response()
}

/// `PUT /emulator/faults` with the `[faults]` shape as JSON: replaces the faults (missing keys take their
/// defaults) and restarts the random streams from its `seed`. 400 with the reason when invalid.
async fn put_faults(State(emu): State<Emulator>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid faults: {e}\n")).into_response(),
    };
    match emu.set_faults(faults) {
        Ok(()) => Json(emu.faults()).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
