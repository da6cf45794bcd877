//! The console's HTTP routes. Everything is read-only unless `console.admin_token` is set; then the two DLQ
//! actions accept a request that carries the token (`Authorization: Bearer …`) and `"confirm": true` (the page
//! asks the person before it sends one).
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /` (`?q=…&conversation=…&since=…&until=…`) | the page, with a lookup's answer when `q` is given |
//! | `GET /console.js`, `GET /console.css` | the page's script and style (compiled into the binary) |
//! | `GET /api/snapshot` | the latest [`Snapshot`](crate::Snapshot) as JSON (503 until the first round) |
//! | `GET /api/panels` | the live panels as an HTML fragment (what the script swaps in) |
//! | `GET /api/trace?q=…` | a lookup as JSON (`&format=html`: as an HTML fragment) |
//! | `POST /api/dlq/replay`, `POST /api/dlq/drop` | re-drive or drop one conversation's DLQ records |
//! | `GET /metrics` | the console's gauges ([`Metrics`](crate::metrics::Metrics)), Prometheus text |
//! | `GET /healthz` | `ok` |
//! | `GET /readyz` | 200 once a round read Kafka, 503 while the latest round could not |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use imbridge_kafka::dlq::{self, Selection};
use imbridge_runtime::{Deps, Running, Service, StartError};
use imbridge_telemetry::Readiness;
use serde::Deserialize;

use crate::collect::{self, Shared};
use crate::config::ConsoleConfig;
use crate::error::ConsoleError;
use crate::metrics::Metrics;
use crate::page::{self, LookupForm};
use crate::trace::{self, Lookup};
use crate::{Groups, View};

#[derive(Debug, Clone)]
struct AppState {
    config: Arc<ConsoleConfig>,
    deps: Arc<View>,
    shared: Shared,
}

/// What `imbridge console` runs: its `[console]` section and the groups it watches.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub console: ConsoleConfig,
    pub groups: Groups,
}

/// A built console: its page's state and metrics, not yet serving.
#[derive(Debug)]
pub struct Console {
    config: ConsoleConfig,
    view: View,
    deps: Deps,
    metrics: Metrics,
    readiness: Readiness,
}

impl Service for Console {
    const NAME: &'static str = "console";
    type Config = ConsoleSettings;
    type Error = ConsoleError;
    type Output = ();

    async fn build(settings: ConsoleSettings, deps: &Deps) -> Result<Self, ConsoleError> {
        settings.console.validate()?;
        let metrics = Metrics::new(&deps.registry).map_err(StartError::from)?;
        let readiness = Readiness::with_checks(&["kafka"]);
        let view = View {
            kafka: deps.kafka.clone(),
            topics: deps.topics.clone(),
            im: deps.im.clone(),
            groups: settings.groups,
        };
        Ok(Self { config: settings.console, view, deps: deps.clone(), metrics, readiness })
    }

    /// Binds `listen`, starts the collector, and returns once both run.
    async fn start(self) -> Result<Running<(), ConsoleError>, ConsoleError> {
        let Self { config, view, deps, metrics, readiness } = self;
        let shared = Shared::default();
        let state = AppState { config: Arc::new(config.clone()), deps: Arc::new(view.clone()), shared: shared.clone() };
        let (addr, server) = imbridge_runtime::serve_ops(config.listen, &deps, &readiness, Some(router(state))).await?;
        tracing::info!(%addr, "console listening");
        let collector =
            tokio::spawn(collect::run(config, view, shared, metrics, readiness.clone(), deps.shutdown.clone()));
        let task = tokio::spawn(async move {
            let _ = server.await;
            let _ = collector.await;
            Ok(())
        });
        Ok(Running::new(addr, readiness, deps.shutdown, task))
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], page::SCRIPT) }),
        )
        .route("/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE) }))
        .route("/api/snapshot", get(snapshot))
        .route("/api/panels", get(panels))
        .route("/api/trace", get(trace_api))
        .route("/api/dlq/{action}", post(dlq_action))
        .with_state(state)
}

#[derive(Debug, Default, Deserialize)]
struct TraceParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    conversation: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    format: String,
}

impl TraceParams {
    async fn run(&self, s: &AppState) -> Result<trace::TraceReport, ConsoleError> {
        let l = Lookup::parse(
            &self.q,
            Some(&self.conversation),
            Some(&self.since),
            Some(&self.until),
            s.config.trace_window_secs,
        )?;
        trace::lookup(&s.deps, &l, s.config.trace_max_records).await
    }
}

async fn index(State(s): State<AppState>, Query(p): Query<TraceParams>) -> Html<String> {
    let form = LookupForm {
        q: p.q.clone(),
        conversation: p.conversation.clone(),
        since: p.since.clone(),
        until: p.until.clone(),
    };
    let answer = if p.q.trim().is_empty() { None } else { Some(p.run(&s).await.map_err(|e| e.to_string())) };
    let snap = s.shared.latest();
    Html(page::page(
        snap.as_ref(),
        s.config.actions_enabled(),
        s.config.refresh_interval_ms,
        &form,
        answer.as_ref().map(|a| a.as_ref().map_err(Clone::clone)),
    ))
}

async fn snapshot(State(s): State<AppState>) -> Response {
    match s.shared.latest() {
        Some(snap) => Json(snap).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"collecting": true}))).into_response(),
    }
}

async fn panels(State(s): State<AppState>) -> Response {
    match s.shared.latest() {
        Some(snap) => Html(page::panels(&snap, s.config.actions_enabled())).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Html("<p id=\"collecting\">collecting the first numbers…</p>"))
            .into_response(),
    }
}

async fn trace_api(State(s): State<AppState>, Query(p): Query<TraceParams>) -> Response {
    let html = p.format == "html";
    match p.run(&s).await {
        Ok(r) if html => Html(page::trace_html(&r)).into_response(),
        Ok(r) => Json(r).into_response(),
        Err(e) => {
            let code = match e {
                ConsoleError::Query(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            if html {
                (code, Html(format!("<p class=\"bad\" id=\"trace-error\">{}</p>", page::esc(&e.to_string()))))
                    .into_response()
            } else {
                (code, Json(serde_json::json!({"error": e.to_string()}))).into_response()
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActionBody {
    conversation: String,
    #[serde(default)]
    confirm: bool,
}

async fn dlq_action(
    State(s): State<AppState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Option<Json<ActionBody>>,
) -> Response {
    let refuse = |code: StatusCode, why: &str| (code, Json(serde_json::json!({"error": why}))).into_response();
    if !s.config.actions_enabled() {
        return refuse(StatusCode::FORBIDDEN, "the console is read-only: set console.admin_token to allow actions");
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(presented.as_bytes(), s.config.admin_token.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or wrong admin token");
    }
    let Some(Json(body)) = body else {
        return refuse(StatusCode::BAD_REQUEST, "expected a JSON body {\"conversation\": KEY, \"confirm\": true}");
    };
    if !body.confirm {
        return refuse(StatusCode::BAD_REQUEST, "not confirmed: send \"confirm\": true");
    }
    if imbridge_core::ConversationKey::parse(&body.conversation).is_err() {
        return refuse(StatusCode::BAD_REQUEST, "conversation is not a conversation key");
    }
    let sel = Selection { key: Some(body.conversation.as_bytes().to_vec()), original_topic: None };
    let done = match action.as_str() {
        "replay" => dlq::replay(&s.deps.kafka, &s.deps.topics.dlq, &sel).await,
        "drop" => dlq::drop_records(&s.deps.kafka, &s.deps.topics.dlq, &sel).await,
        _ => return refuse(StatusCode::NOT_FOUND, "unknown action: replay or drop"),
    };
    match done {
        Ok(r) => {
            tracing::info!(action = %action, conversation = %body.conversation, records = r.records, "console dlq action");
            Json(serde_json::json!({"action": action, "conversation": body.conversation, "records": r.records}))
                .into_response()
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// Compares without stopping at the first difference, so response time says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"x"));
    }
}
