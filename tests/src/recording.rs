//! A server that answers every IM callback with OK and records it (query parameters and body), standing in
//! for ingest where a scenario checks what IM would call back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::post;

/// One recorded callback: its query parameters and its body.
pub type Call = (BTreeMap<String, String>, serde_json::Value);

/// Callbacks a recording server received.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorded {
    pub fn all(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

/// A server answering every IM callback with OK and recording it. Returns its URL.
pub async fn recording_server() -> (String, Recorded) {
    let rec = Recorded::default();
    async fn cb(
        State(rec): State<Recorded>,
        Query(q): Query<BTreeMap<String, String>>,
        body: axum::body::Bytes,
    ) -> axum::Json<serde_json::Value> {
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        rec.calls.lock().expect("lock").push((q, v));
        axum::Json(serde_json::json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}))
    }
    let app = Router::new().route("/cb", post(cb)).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/cb"), rec)
}
