//! `[to_legacy]` in imbridge.toml: where the legacy apply endpoint is, how it is signed and retried, how big a
//! batch may be, and how the consumer runner behaves.
//!
//! Retries happen at two levels, both bounded. Inside one handler call the apply client retries a transient
//! answer `retry.max_attempts` times (honouring `Retry-After`); if that is not enough the record goes back to the
//! consumer runner, which backs off (`consumer.retry`) and offers it again, and after `consumer.retry.max_attempts`
//! dead-letters it as `retries_exhausted`. The defaults keep the whole backoff budget (about two and a half
//! minutes, plus request time) below librdkafka's `max.poll.interval.ms` (300 s): lanes stuck in retries hold their
//! in-flight permits, and once `max_in_flight` of them are held the poll loop stops polling.

use std::net::SocketAddr;

use imbridge_kafka::{ConsumerConfig, RetryPolicy as RunnerRetry};
use imbridge_legacy::{MAX_BATCH_EVENTS, RetryPolicy, SigningSecret};
use serde::{Deserialize, Serialize};

use crate::error::ToLegacyError;

/// How the to-legacy service runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToLegacyConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Consumer group on the IM events topic; instances with the same group share its partitions.
    pub group_id: String,
    /// Full URL of the legacy system's apply endpoint, e.g. `https://legacy.internal/v1/apply`.
    pub apply_url: String,
    /// Secret every apply request is signed with (`X-Imbridge-Signature`). Load it with `apply_secret_file`.
    pub apply_secret: SigningSecret,
    /// Optional URL that answers 2xx when the legacy side is up, for `/readyz`. Unset: any HTTP answer from a
    /// `GET` of `apply_url` (even 404 or 405) counts as reachable.
    pub health_url: Option<String>,
    /// Whole-request timeout of one apply request, in milliseconds.
    pub request_timeout_ms: u64,
    /// TCP/TLS connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Retries of a transient answer within one handler call (jittered exponential backoff, `Retry-After` as a
    /// floor). `max_attempts` must be at least 1 here: retrying without bound would stall the poll loop.
    pub retry: RetryPolicy,
    /// Most events of one conversation sent in one request (1 to 500).
    pub batch_max_events: usize,
    /// The ordered consumer runner: in-flight bounds, drain deadline, runner-level retries, parking.
    pub consumer: ConsumerConfig,
    /// Create the IM events topic and the DLQ at start when they are missing.
    pub create_topics: bool,
    /// How often Kafka and the legacy side are probed for `/readyz`, in milliseconds.
    pub readiness_interval_ms: u64,
    /// The resequencer: IM callbacks arrive out of order, twice or not at all; this puts each conversation back
    /// in IM's order before it reaches legacy (`[to_legacy.order]`).
    pub order: crate::order::OrderConfig,
}

impl Default for ToLegacyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9103)),
            group_id: "imbridge-to-legacy".to_owned(),
            apply_url: String::new(),
            apply_secret: SigningSecret::default(),
            health_url: None,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff_ms: 200,
                max_backoff_ms: 5_000,
                max_retry_after_ms: 60_000,
            },
            batch_max_events: 100,
            consumer: ConsumerConfig {
                retry: RunnerRetry { max_attempts: 12, base_backoff_ms: 500, max_backoff_ms: 20_000 },
                ..ConsumerConfig::default()
            },
            create_topics: true,
            readiness_interval_ms: 5_000,
            order: crate::order::OrderConfig::default(),
        }
    }
}

impl ToLegacyConfig {
    /// Checks the section as a whole; [`crate::start`] refuses to start on an invalid one.
    pub fn validate(&self) -> Result<(), ToLegacyError> {
        self.validate_contract()?;
        self.validate_common()
    }

    /// The legacy contract's endpoint and secret (not used when the old side is an IM app).
    pub fn validate_contract(&self) -> Result<(), ToLegacyError> {
        let bad = |m: String| Err(ToLegacyError::Config(m));
        match reqwest::Url::parse(&self.apply_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => return bad(format!("to_legacy.apply_url scheme {:?} is not http or https", u.scheme())),
            Err(e) => return bad(format!("to_legacy.apply_url {:?}: {e}", self.apply_url)),
        }
        if let Some(h) = &self.health_url
            && let Err(e) = reqwest::Url::parse(h)
        {
            return bad(format!("to_legacy.health_url {h:?}: {e}"));
        }
        if self.apply_secret.is_empty() {
            return bad("to_legacy.apply_secret is not set (or set to_legacy.apply_secret_file)".into());
        }
        Ok(())
    }

    /// Everything but the contract's endpoint: what every kind of old side needs.
    pub fn validate_common(&self) -> Result<(), ToLegacyError> {
        let bad = |m: String| Err(ToLegacyError::Config(m));
        if self.group_id.trim().is_empty() {
            return bad("to_legacy.group_id is empty".into());
        }
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            return bad(format!("to_legacy.batch_max_events must be 1 to {MAX_BATCH_EVENTS}"));
        }
        if self.retry.max_attempts == 0 {
            return bad("to_legacy.retry.max_attempts must be at least 1 (the consumer runner retries further)".into());
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 || self.readiness_interval_ms == 0 {
            return bad("to_legacy timeouts and readiness_interval_ms must be positive".into());
        }
        if self.order.gap_wait_ms > 60_000 || self.order.reorder_window_ms > 60_000 {
            // Held records keep their lane's in-flight permits: long holds would stall the poll loop.
            return bad("to_legacy.order.gap_wait_ms and reorder_window_ms must be at most 60000".into());
        }
        self.consumer.validate().map_err(|e| ToLegacyError::Config(format!("to_legacy.consumer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_url_and_secret() {
        assert!(ToLegacyConfig::default().validate().is_err());
        let c = ToLegacyConfig {
            apply_url: "http://127.0.0.1:1/v1/apply".into(),
            apply_secret: SigningSecret::new("s"),
            ..ToLegacyConfig::default()
        };
        assert!(c.validate().is_ok());
        assert!(ToLegacyConfig { batch_max_events: 501, ..c.clone() }.validate().is_err());
        assert!(ToLegacyConfig { apply_url: "ftp://x".into(), ..c.clone() }.validate().is_err());
        let unbounded = RetryPolicy { max_attempts: 0, ..RetryPolicy::default() };
        assert!(ToLegacyConfig { retry: unbounded, ..c }.validate().is_err());
    }

    #[test]
    fn default_retry_budget_stays_below_the_poll_interval() {
        let c = ToLegacyConfig::default();
        // Worst case of the runner's backoffs (upper bound of each jittered wait) plus the in-call backoffs.
        let runner: u64 = (1..c.consumer.retry.max_attempts)
            .map(|a| (c.consumer.retry.base_backoff_ms << (a - 1).min(20)).min(c.consumer.retry.max_backoff_ms))
            .sum();
        let in_call: u64 = (1..c.retry.max_attempts)
            .map(|a| (c.retry.initial_backoff_ms << (a - 1)).min(c.retry.max_backoff_ms))
            .sum::<u64>()
            * u64::from(c.consumer.retry.max_attempts);
        assert!(runner + in_call < 180_000, "{runner} + {in_call} ms");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<ToLegacyConfig, _> = serde_json::from_str(r#"{"apply_urll":"x"}"#);
        assert!(r.is_err());
    }
}
