//! The two endpoints. Both follow one order, and each step refuses before the next one runs:
//!
//! 1. **authenticate** — the legacy HMAC over the raw body, or IM's query (`SdkAppid`, `Sign`, `RequestTime`):
//!    nothing from an unauthenticated sender is parsed (svix's rule: verify before you parse);
//! 2. **bound** — bodies over `max_body_bytes` are refused with 413 by the body extractor, before any parsing;
//! 3. **parse and normalize** through the legacy and IM crates (ingest never reads a foreign payload itself);
//!    a malformed request is a 4xx with the reason and touches nothing;
//! 4. **drop echoes** (counted), then make the events durable and only then answer success. Legacy webhooks:
//!    **produce** keyed by conversation and wait for Kafka's acknowledgement; a Kafka failure or a slow
//!    acknowledgement is a 503, so the sender retries. IM callbacks (never re-sent): **spool** (fsynced) and
//!    answer; the spool's forwarder produces them. A full or failing spool is a 503, never a silent loss.
//!
//! Each request is independent: a bad one costs only itself, never the requests behind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use imbridge_core::disposition::Classify;
use imbridge_core::topics::TopicNames;
use imbridge_core::{Envelope, Source, TimestampMs};
use imbridge_im::callback::{Callback, CallbackQuery, verify_callback_query};
use imbridge_kafka::Producer;
use imbridge_legacy::{ErrorsBody, IndexedError, Verifier, parse_batch};
use imbridge_telemetry::Readiness;
use serde_json::json;
use tracing::{Instrument, debug, info_span, warn};

use crate::callback::{self, Echo, Normalized};
use crate::dismissals::ExpectedDismissals;
use crate::error::IngestError;
use crate::metrics::Metrics;
use crate::spool::forwarder::OLD_SIDE_KEY_PREFIX;

/// The readiness check ingest maintains.
pub const READY_KAFKA: &str = "kafka";

/// Everything a request needs, shared by all of them.
#[derive(Debug)]
pub(crate) struct Shared {
    pub producer: Producer,
    /// Where IM callbacks are made durable before IM hears "OK".
    pub spool: crate::spool::Spool,
    pub topics: TopicNames,
    pub verifier: Verifier,
    pub sdkappid: u64,
    pub callback_token: Option<String>,
    pub echo: Echo,
    /// The old side's IM app, when the old system is one: its callbacks come to the same endpoint.
    pub old_app: Option<OldApp>,
    /// Dismissals to-im announced before making them (IM's callback for them names no operator).
    pub dismissals: Arc<ExpectedDismissals>,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub produce_timeout: Duration,
    pub max_body_bytes: usize,
}

pub(crate) type AppState = Arc<Shared>;

/// An old IM app's identity as ingest checks it: its callbacks carry its SdkAppid, are signed with its own
/// token, and its own admin identity's are echoes.
#[derive(Debug)]
pub(crate) struct OldApp {
    pub sdkappid: u64,
    pub callback_token: Option<String>,
    pub echo: Echo,
}

/// How long a REST-caused dismissal callback waits for to-im's announcement to be read. to-im writes it before
/// calling IM, so this only covers the follower's lag; other backends' REST dismissals pay this delay once.
const DISMISSAL_ANNOUNCEMENT_WAIT: Duration = Duration::from_millis(1500);

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The body, or the reason it could not be read (413 over the limit).
fn body_or_error(body: Result<Bytes, BytesRejection>, limit_bytes: usize) -> Result<Bytes, IngestError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            IngestError::TooLarge { limit_bytes }
        } else {
            IngestError::Body(r.body_text())
        }
    })
}

impl Shared {
    /// Produces `envs` (in order, keyed by conversation) and waits for every acknowledgement, bounded by
    /// `produce_timeout`. Records a late acknowledgement as a failure: the sender retries, and the event ids
    /// make the possible duplicate harmless.
    async fn produce(&self, source: Source, topic: &str, envs: &[Envelope]) -> Result<(), IngestError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.produce_timeout, self.producer.send_envelopes(topic, envs)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(IngestError::Kafka(e)),
            Err(_) => Err(IngestError::ProduceTimeout(self.produce_timeout)),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .produce_seconds
            .with_label_values(&[source.as_str(), outcome])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                self.readiness.set(READY_KAFKA, true);
                for env in envs {
                    self.metrics.events.with_label_values(&[source.as_str(), env.kind().as_str()]).inc();
                }
            }
            Err(e) => {
                // The probe sets it back once Kafka answers again.
                self.readiness.set(READY_KAFKA, false);
                warn!(error = %e, events = envs.len(), topic, "kafka did not acknowledge; answering 503");
            }
        }
        result
    }

    async fn legacy(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<(usize, usize), IngestError> {
        let body = body_or_error(body, self.max_body_bytes)?;
        self.verifier.verify(headers, &body)?;
        let events = parse_batch(&body)?;
        let received_at = TimestampMs::now();
        let mut envs = Vec::with_capacity(events.len());
        let mut echoes = 0;
        for ev in events {
            let span = info_span!("event", event_id = %ev.event_id(), conversation = %ev.conversation(), kind = ev.data.type_name());
            let _entered = span.enter();
            if ev.is_echo() {
                // imbridge wrote this to legacy itself (origin "im"): sending it on would bounce it back to IM.
                echoes += 1;
                self.metrics.echoes.with_label_values(&["legacy", "origin"]).inc();
                debug!("echo dropped");
                continue;
            }
            envs.push(ev.into_envelope(Some(received_at)));
        }
        if !envs.is_empty() {
            self.produce(Source::Legacy, &self.topics.legacy_events, &envs).await?;
            for env in &envs {
                debug!(event_id = %env.id, conversation = %env.conversation, "event accepted");
            }
        }
        Ok((envs.len(), echoes))
    }

    async fn im(
        &self,
        query: Result<Query<CallbackQuery>, QueryRejection>,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<&'static str, IngestError> {
        let Query(query) = query.map_err(|r| IngestError::CallbackQuery(r.body_text()))?;
        // Told apart by SdkAppid; each app's callbacks are checked with its own token. A callback of neither app
        // fails the new app's check (403 naming the expected SdkAppid).
        let old = self
            .old_app
            .as_ref()
            .filter(|o| query.sdk_appid.as_deref().and_then(|s| s.trim().parse::<u64>().ok()) == Some(o.sdkappid));
        let (sdkappid, token, echo) = match old {
            Some(o) => (o.sdkappid, o.callback_token.as_deref(), &o.echo),
            None => (self.sdkappid, self.callback_token.as_deref(), &self.echo),
        };
        verify_callback_query(&query, sdkappid, token, now_secs())?;
        let app = if old.is_some() { "old_im" } else { "im" };
        let body = body_or_error(body, self.max_body_bytes)?;
        let cb = Callback::parse(&body, query.callback_command.as_deref())?;
        let received_at = TimestampMs::now();
        if let Callback::GroupAfterGroupDestroyed(d) = &cb
            && d.operator_account.is_none()
            && query.is_rest_api()
        {
            // Matched on our own clock (receipt time), not IM's EventTime: both ends of the match are then
            // imbridge's clocks, and a skewed IM clock cannot push a real echo out of the window.
            if self.dismissals.is_own(&d.group_id, received_at.as_millis(), DISMISSAL_ANNOUNCEMENT_WAIT).await {
                self.metrics.echoes.with_label_values(&[app, "imbridge_dismissal"]).inc();
                debug!(command = cb.command(), "echo dropped: a dismissal to-im announced");
                return Ok("echo");
            }
        }
        let normalized = match old {
            // The old app's events go to to-im, which needs no legacy-contract check.
            Some(_) => imbridge_im::normalize::normalize(&cb, &query, echo, received_at)
                .map_err(|e| IngestError::CallbackInvalid { command: e.command, reason: e.reason })?,
            None => callback::normalize(&cb, &query, echo, received_at)?,
        };
        match normalized {
            Normalized::Event(env) => {
                let (env, key) = match old {
                    Some(_) => {
                        let env = imbridge_im::normalize::as_old_side(*env);
                        let key = format!("{OLD_SIDE_KEY_PREFIX}{}", env.conversation.as_str());
                        (env, key)
                    }
                    None => {
                        let key = env.conversation.as_str().to_owned();
                        (*env, key)
                    }
                };
                let span = info_span!("event", event_id = %env.id, conversation = %env.conversation, kind = env.kind().as_str());
                async {
                    self.spool.append(&key, env.to_json()).await?;
                    self.metrics.events.with_label_values(&[env.source.as_str(), env.kind().as_str()]).inc();
                    debug!(command = cb.command(), "callback spooled");
                    Ok("spooled")
                }
                .instrument(span)
                .await
            }
            Normalized::Echo(reason) => {
                self.metrics.echoes.with_label_values(&[app, reason.as_str()]).inc();
                debug!(command = cb.command(), reason = reason.as_str(), "echo dropped");
                Ok("echo")
            }
            Normalized::Ignored(reason) => {
                self.metrics.ignored.with_label_values(&[reason.as_str()]).inc();
                debug!(command = cb.command(), reason = reason.as_str(), "callback has nothing to sync");
                Ok("ignored")
            }
        }
    }
}

/// `POST /v1/legacy/events`.
pub(crate) async fn legacy_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let resp = match s.legacy(&headers, body).await {
        Ok((accepted, echoes)) => {
            (StatusCode::OK, Json(json!({"accepted": accepted, "echoes_dropped": echoes}))).into_response()
        }
        Err(e) => {
            s.metrics.rejected.with_label_values(&["legacy", &e.kind()]).inc();
            let body = match &e {
                IngestError::Batch(b) => b.to_body(),
                other => ErrorsBody { errors: vec![IndexedError { index: None, error: other.to_string() }] },
            };
            if e.status().is_server_error() {
                warn!(error = %e, "legacy webhook not accepted");
            } else {
                debug!(error = %e, "legacy webhook refused");
            }
            with_retry_after(e.status(), (e.status(), Json(body)).into_response())
        }
    };
    s.metrics.requests.with_label_values(&["legacy", resp.status().as_str()]).inc();
    resp
}

/// `POST /v1/im/callback`.
pub(crate) async fn im_callback(
    State(s): State<AppState>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let resp = match s.im(query, body).await {
        Ok(_) => (StatusCode::OK, Json(json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}))).into_response(),
        Err(e) => {
            s.metrics.rejected.with_label_values(&["im", &e.kind()]).inc();
            if e.status().is_server_error() {
                warn!(error = %e, "im callback not accepted");
            } else {
                debug!(error = %e, "im callback refused");
            }
            let body = Json(json!({"ActionStatus": "FAIL", "ErrorCode": 1, "ErrorInfo": e.to_string()}));
            with_retry_after(e.status(), (e.status(), body).into_response())
        }
    };
    s.metrics.requests.with_label_values(&["im", resp.status().as_str()]).inc();
    resp
}

/// A 503 tells the sender when to come back: soon, since Kafka usually recovers in seconds.
fn with_retry_after(status: StatusCode, mut resp: Response) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}
