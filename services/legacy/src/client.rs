//! The signed batch client: imbridge → legacy apply calls (and the emulator's webhooks, which are the same
//! request in the other direction).
//!
//! One request = one batch `{"events":[…]}`, both signature headers (re-signed on every attempt, so a long
//! retry never goes stale) and `Idempotency-Key: <id of the first event>`. Answers are classified once here:
//!
//! | answer | meaning | disposition |
//! | --- | --- | --- |
//! | 2xx | applied | — |
//! | 409 | already applied (a replay) | — |
//! | 400, 413, 422, other 4xx | the batch can never apply | dead-letter |
//! | 401, 403, 404 | credentials or URL are wrong: the event is fine, an operator must fix the config | retry |
//! | 408, 429, 5xx, 1xx/3xx | transient | retry, honouring `Retry-After` |
//! | timeout, connection error | transient | retry |
//!
//! [`ApplyClient::apply`] retries transient failures with jittered exponential backoff up to the policy's
//! attempt limit and then returns the last error; its [`Classify`] impl tells the consumer what to do next.

use std::time::{Duration, Instant};

use imbridge_core::disposition::{Classify, Disposition};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::contract::{Batch, ContractEvent, MAX_BATCH_EVENTS};
use crate::convert::ConvertError;
use crate::signature::{self, IDEMPOTENCY_KEY_HEADER, SigningSecret};

/// Where and how imbridge writes to a legacy system.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Full URL of the legacy apply endpoint, e.g. `http://legacy.internal:8080/v1/apply`.
    pub url: String,
    /// Shared secret that signs every request (the legacy side verifies it).
    pub secret: SigningSecret,
    /// Whole-request timeout (connect, send, answer), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// TCP/TLS connect timeout, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// How transient failures are retried inside one [`ApplyClient::apply`] call.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}

impl ApplyConfig {
    /// A config with default timeouts and retry policy.
    pub fn new(url: impl Into<String>, secret: SigningSecret) -> Self {
        Self {
            url: url.into(),
            secret,
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            retry: RetryPolicy::default(),
        }
    }
}

/// Jittered exponential backoff for transient failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per `apply` call, the first included; `0` retries until success, a permanent failure or
    /// shutdown.
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubles per attempt.
    pub initial_backoff_ms: u64,
    /// Ceiling of the doubling backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` honoured, in milliseconds; a longer one is cut to this so one bad header cannot
    /// stall a conversation for hours.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, initial_backoff_ms: 200, max_backoff_ms: 30_000, max_retry_after_ms: 120_000 }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): "equal jitter", uniform in `[b/2, b]`
    /// for the doubled backoff `b`, so a crowd of retries spreads out but never retries sooner than half the
    /// schedule. A server's `Retry-After` (capped at `max_retry_after_ms`) is a floor: the wait is never
    /// shorter than it, and a `Retry-After: 0` cannot turn the loop into a busy spin.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = retry.saturating_sub(1).min(32);
        let b = self.initial_backoff_ms.saturating_mul(1u64 << exp).min(self.max_backoff_ms.max(1));
        let lo = b / 2;
        let backoff = Duration::from_millis(if b > lo { rand::rng().random_range(lo..=b) } else { b });
        match retry_after {
            Some(ra) => ra.min(Duration::from_millis(self.max_retry_after_ms)).max(backoff),
            None => backoff,
        }
    }
}

/// A successful apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The answer's status: 2xx, or 409 when the legacy side already had the batch.
    pub status: u16,
    /// Requests it took, the first included.
    pub attempts: u32,
}

impl ApplyOutcome {
    /// The legacy side had already applied this batch (a replay or a retry after a lost answer).
    pub fn is_duplicate(&self) -> bool {
        self.status == 409
    }
}

/// Why a batch did not apply. [`Classify`] says whether to retry or dead-letter it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("batch has {0} events; the contract allows 1 to {MAX_BATCH_EVENTS}")]
    BatchSize(usize),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("legacy refused the batch with {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("legacy answered {status}: {body}")]
    Status { status: u16, retry_after: Option<Duration>, body: String },
    #[error("legacy did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to legacy: {0}")]
    Connect(String),
    #[error("http error talking to legacy: {0}")]
    Transport(String),
    #[error("shutdown before legacy accepted the batch")]
    Cancelled,
    #[error("cannot set up the legacy client: {0}")]
    Setup(String),
}

impl ApplyError {
    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApplyError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// How an answer's status is classified; `Ok` for the statuses that mean applied.
    fn from_status(status: u16, retry_after: Option<Duration>, body: String) -> Result<u16, ApplyError> {
        match status {
            200..=299 | 409 => Ok(status),
            // The sender cannot fix credentials or a wrong URL by retrying, but neither can dead-lettering
            // every event: keep the events, fail loudly, and let the operator fix the config.
            401 | 403 | 404 | 408 | 429 => Err(ApplyError::Status { status, retry_after, body }),
            400..=499 => Err(ApplyError::Rejected { status, body }),
            _ => Err(ApplyError::Status { status, retry_after, body }),
        }
    }
}

impl Classify for ApplyError {
    fn disposition(&self) -> Disposition {
        match self {
            ApplyError::BatchSize(_) | ApplyError::Convert(_) | ApplyError::Rejected { .. } => Disposition::DeadLetter,
            ApplyError::Status { .. }
            | ApplyError::Timeout(_)
            | ApplyError::Connect(_)
            | ApplyError::Transport(_)
            | ApplyError::Cancelled
            | ApplyError::Setup(_) => Disposition::Retry,
        }
    }

    fn kind(&self) -> String {
        match self {
            ApplyError::BatchSize(_) => "legacy_batch_size".into(),
            ApplyError::Convert(_) => "legacy_convert".into(),
            // Status codes are a bounded set, so the label stays bounded.
            ApplyError::Rejected { status, .. } | ApplyError::Status { status, .. } => format!("legacy_http_{status}"),
            ApplyError::Timeout(_) => "legacy_timeout".into(),
            ApplyError::Connect(_) => "legacy_connect".into(),
            ApplyError::Transport(_) => "legacy_transport".into(),
            ApplyError::Cancelled => "legacy_cancelled".into(),
            ApplyError::Setup(_) => "legacy_setup".into(),
        }
    }
}

/// Reads `Retry-After` as delta-seconds or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_retry_after(value: &str, now_secs: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc().unix_timestamp();
    // A date in the past means "now".
    Some(Duration::from_secs(u64::try_from(at - now_secs).unwrap_or(0)))
}

/// Counters and timings of the client, on the registry it was given.
#[derive(Debug, Clone)]
struct Metrics {
    /// One per HTTP request, by outcome (`applied`, `duplicate`, `rejected`, `retryable`).
    requests: IntCounterVec,
    /// Request latency by outcome.
    duration: HistogramVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("imbridge_legacy_apply_requests_total", "HTTP requests to the legacy side, by outcome"),
            &["outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("imbridge_legacy_apply_request_duration_seconds", "Legacy request latency")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }

    fn observe(&self, outcome: &str, elapsed: Duration) {
        self.requests.with_label_values(&[outcome]).inc();
        self.duration.with_label_values(&[outcome]).observe(elapsed.as_secs_f64());
    }
}

/// Posts signed batches to one URL. Cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct ApplyClient {
    http: reqwest::Client,
    config: ApplyConfig,
    metrics: Metrics,
}

/// Bodies in error messages are cut to this many bytes: enough for a reason, bounded for logs and DLQ headers.
const MAX_ERROR_BODY_BYTES: usize = 512;

impl ApplyClient {
    /// Builds the client and registers its metrics (`imbridge_legacy_apply_*`) on `registry`.
    pub fn new(config: ApplyConfig, registry: &Registry) -> Result<Self, ApplyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            // A redirect would re-send a signed body to a URL nobody configured; treat it as an answer.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApplyError::Setup(e.to_string()))?;
        let metrics = Metrics::new(registry).map_err(|e| ApplyError::Setup(e.to_string()))?;
        Ok(Self { http, config, metrics })
    }

    pub fn config(&self) -> &ApplyConfig {
        &self.config
    }

    /// One request, no retry.
    pub async fn send_once(&self, events: &[ContractEvent]) -> Result<ApplyOutcome, ApplyError> {
        let Some(first) = events.first().filter(|_| events.len() <= MAX_BATCH_EVENTS) else {
            return Err(ApplyError::BatchSize(events.len()));
        };
        let body = Batch::to_json(events);
        let now = signature::now_secs();
        let mut req = self
            .http
            .post(&self.config.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY_HEADER, first.id.as_str());
        for (name, value) in signature::signature_headers(&self.config.secret, now, &body) {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let result = self.roundtrip(req.body(body)).await;
        let outcome = match &result {
            Ok(409) => "duplicate",
            Ok(_) => "applied",
            Err(e) if e.disposition() == Disposition::DeadLetter => "rejected",
            Err(_) => "retryable",
        };
        self.metrics.observe(outcome, started.elapsed());
        result.map(|status| ApplyOutcome { status, attempts: 1 })
    }

    async fn roundtrip(&self, req: reqwest::RequestBuilder) -> Result<u16, ApplyError> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, signature::now_secs()));
        if (200..300).contains(&status) || status == 409 {
            // The answer body carries nothing the pipeline needs; not waiting for it saves a round of I/O.
            return Ok(status);
        }
        let body = match resp.bytes().await {
            Ok(b) => truncate(&String::from_utf8_lossy(&b)),
            Err(e) => format!("(body unreadable: {e})"),
        };
        ApplyError::from_status(status, retry_after, body)
    }

    fn transport_error(&self, e: reqwest::Error) -> ApplyError {
        if e.is_timeout() {
            ApplyError::Timeout(Duration::from_millis(self.config.timeout_ms))
        } else if e.is_connect() {
            ApplyError::Connect(error_chain(&e))
        } else {
            ApplyError::Transport(error_chain(&e))
        }
    }

    /// Sends the batch, retrying transient failures per the policy. Returns the last error when attempts run
    /// out or a permanent failure occurs, and [`ApplyError::Cancelled`] if `shutdown` fires while waiting.
    pub async fn apply(
        &self,
        events: &[ContractEvent],
        shutdown: &CancellationToken,
    ) -> Result<ApplyOutcome, ApplyError> {
        let policy = &self.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.send_once(events).await {
                Ok(o) => return Ok(ApplyOutcome { attempts: attempt, ..o }),
                Err(e) => e,
            };
            if err.disposition() != Disposition::Retry || (policy.max_attempts != 0 && attempt >= policy.max_attempts) {
                return Err(err);
            }
            let wait = policy.delay(attempt, err.retry_after());
            tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "legacy apply failed, retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return Err(ApplyError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_BODY_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_BODY_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// reqwest's top-level message is often just "error sending request"; the cause says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let d = |s: u16| ApplyError::from_status(s, None, String::new()).map_err(|e| e.disposition());
        assert_eq!(d(200), Ok(200));
        assert_eq!(d(204), Ok(204));
        assert_eq!(d(409), Ok(409));
        for s in [400, 413, 422, 405, 410] {
            assert_eq!(d(s), Err(Disposition::DeadLetter), "{s}");
        }
        for s in [401, 403, 404, 408, 429, 500, 502, 503, 504, 302] {
            assert_eq!(d(s), Err(Disposition::Retry), "{s}");
        }
        let e = ApplyError::from_status(422, None, "bad".into()).expect_err("422");
        assert_eq!(e.kind(), "legacy_http_422");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", 0), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(Duration::ZERO));
        // 1994-11-06T08:49:37Z = 784111777.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-3", 0), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p =
            RetryPolicy { max_attempts: 5, initial_backoff_ms: 100, max_backoff_ms: 1_000, max_retry_after_ms: 5_000 };
        for _ in 0..50 {
            let d1 = p.delay(1, None).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = p.delay(3, None).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d9 = p.delay(9, None).as_millis();
            assert!((500..=1_000).contains(&d9), "{d9}");
            assert!(p.delay(u32::MAX, None).as_millis() <= 1_000);
        }
        assert_eq!(p.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(5));
        // Retry-After is a floor, never a reason to spin.
        assert!(p.delay(3, Some(Duration::ZERO)) >= Duration::from_millis(200));
    }

    #[test]
    fn truncates_on_char_boundary() {
        let s = "é".repeat(400);
        let t = truncate(&s);
        assert!(t.len() <= MAX_ERROR_BODY_BYTES + '…'.len_utf8());
        assert!(t.ends_with('…'));
    }
}
