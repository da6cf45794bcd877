//! Kafka settings: where the broker is, what librdkafka is told, and how the consumer runner behaves.
//!
//! `client` is passed to librdkafka untouched (`kafka.*` in imbridge.toml), so SASL/SSL and anything else work
//! as users already configure them. imbridge's own guarantees (idempotence, acks, manual offset store) are set
//! after the pass-through and cannot be weakened by it.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::error::KafkaError;

/// How to reach Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, …).
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self { bootstrap_servers: "127.0.0.1:9092".to_owned(), client: BTreeMap::new() }
    }
}

/// Settings imbridge enforces whatever the pass-through says, because the guarantees depend on them.
const PRODUCER_ENFORCED: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Java-compatible partitioning: a legacy system producing with a Java client agrees with us on partitions.
    ("partitioner", "murmur2_random"),
];

const CONSUMER_ENFORCED: &[(&str, &str)] = &[
    // Offsets are stored by the runner only for the contiguous prefix of handled events.
    ("enable.auto.offset.store", "false"),
    ("partition.assignment.strategy", "cooperative-sticky"),
];

impl KafkaConfig {
    pub fn for_bootstrap(bootstrap: impl Into<String>) -> Self {
        Self { bootstrap_servers: bootstrap.into(), client: BTreeMap::new() }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    /// Producer settings: pass-through first, then imbridge's defaults where unset, then the enforced ones.
    pub fn producer_config(&self) -> Result<ClientConfig, KafkaError> {
        let mut c = self.base();
        for (k, v) in [("linger.ms", "5"), ("compression.type", "lz4"), ("message.timeout.ms", "30000")] {
            if c.get(k).is_none() {
                c.set(k, v);
            }
        }
        enforce(&mut c, PRODUCER_ENFORCED, &self.client)?;
        Ok(c)
    }

    /// Consumer settings for `group_id`.
    pub fn consumer_config(&self, group_id: &str, cc: &ConsumerConfig) -> Result<ClientConfig, KafkaError> {
        let mut c = self.base();
        c.set("group.id", group_id);
        let session = cc.session_timeout_ms.to_string();
        let commit_interval = cc.auto_commit_interval_ms.to_string();
        for (k, v) in [
            ("auto.offset.reset", cc.auto_offset_reset.as_str()),
            ("session.timeout.ms", session.as_str()),
            // Auto commit only commits what the runner stored, i.e. the handled prefix.
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", commit_interval.as_str()),
            ("enable.partition.eof", "false"),
            // Feeds the per-partition lag gauge (see the consumer context's `stats`).
            ("statistics.interval.ms", "5000"),
            // The memory bound of a consumer facing a backlog (`imbridge bench backlog`). librdkafka stops
            // fetching at these queue sizes, but a fetch response already under way is decompressed whole: our
            // records are lz4-compressed JSON (≈ 8:1), so a 16 MiB fetch became ≈ 130 MiB of queued records and
            // a service reached 250 MiB on a backlog. 1 MiB fetches and a 2 MiB queue keep to-legacy near
            // 105 MiB and to-im under 150 MiB on a 1,000,000-event backlog, at 9,000–17,000 events/s, far above
            // any IM quota (see docs/performance.md).
            ("queued.max.messages.kbytes", "2048"),
            ("queued.min.messages", "2000"),
            ("fetch.max.bytes", "1048576"),
        ] {
            if c.get(k).is_none() {
                c.set(k, v);
            }
        }
        enforce(&mut c, CONSUMER_ENFORCED, &self.client)?;
        Ok(c)
    }

    /// Admin-client settings (also used for short-lived metadata consumers).
    pub fn admin_config(&self) -> ClientConfig {
        self.base()
    }
}

fn enforce(c: &mut ClientConfig, enforced: &[(&str, &str)], user: &BTreeMap<String, String>) -> Result<(), KafkaError> {
    for (k, v) in enforced {
        if let Some(given) = user.get(*k)
            && given != v
        {
            return Err(KafkaError::Config(format!(
                "kafka.{k} = {given:?} is not allowed: imbridge needs {v:?} for its delivery guarantees"
            )));
        }
        c.set(*k, *v);
    }
    Ok(())
}

/// Retries of a handler that reported a transient failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total (first try included) before the event is dead-lettered as `retries_exhausted`.
    pub max_attempts: u32,
    /// First backoff; doubled on each retry, with full jitter.
    pub base_backoff_ms: u64,
    /// Ceiling of one backoff.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, base_backoff_ms: 200, max_backoff_ms: 30_000 }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt + 1` (`attempt` ≥ 1): uniform in [cap/2, cap] where cap doubles.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_backoff_ms).max(1);
        let jittered = cap / 2 + rand::random_range(0..=cap / 2);
        Duration::from_millis(jittered)
    }
}

/// How the ordered consumer runner behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Events received but not yet handled, across all partitions: the runner's memory bound.
    pub max_in_flight: usize,
    /// Events queued behind one conversation; when full the runner waits (backpressure, counted).
    pub lane_capacity: usize,
    /// How long a revoke or shutdown waits for in-flight events before committing what is done. Must stay
    /// below `session_timeout_ms`, or the group evicts us while we drain.
    pub drain_timeout_ms: u64,
    pub session_timeout_ms: u64,
    pub auto_commit_interval_ms: u64,
    /// `earliest` or `latest`, for a group without committed offsets.
    pub auto_offset_reset: String,
    pub retry: RetryPolicy,
    /// After a conversation's event is dead-lettered, send its later events to the DLQ too ("parked") so
    /// they are never applied out of order; `imbridge dlq replay` re-drives them in order.
    pub park_after_dead_letter: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2_000,
            lane_capacity: 256,
            drain_timeout_ms: 20_000,
            session_timeout_ms: 45_000,
            auto_commit_interval_ms: 1_000,
            auto_offset_reset: "earliest".to_owned(),
            retry: RetryPolicy::default(),
            park_after_dead_letter: true,
        }
    }
}

impl ConsumerConfig {
    pub fn validate(&self) -> Result<(), KafkaError> {
        if self.max_in_flight == 0 || self.lane_capacity == 0 {
            return Err(KafkaError::Config("max_in_flight and lane_capacity must be at least 1".into()));
        }
        if self.drain_timeout_ms >= self.session_timeout_ms {
            return Err(KafkaError::Config(format!(
                "drain_timeout_ms ({}) must be below session_timeout_ms ({})",
                self.drain_timeout_ms, self.session_timeout_ms
            )));
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(KafkaError::Config(format!(
                "auto_offset_reset must be earliest or latest, not {:?}",
                self.auto_offset_reset
            )));
        }
        if self.retry.max_attempts == 0 {
            return Err(KafkaError::Config("retry.max_attempts must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforced_settings_cannot_be_weakened() {
        let mut k = KafkaConfig::default();
        k.client.insert("acks".into(), "1".into());
        assert!(matches!(k.producer_config(), Err(KafkaError::Config(_))));
        k.client.insert("acks".into(), "all".into());
        k.client.insert("linger.ms".into(), "50".into());
        let c = k.producer_config().expect("valid");
        assert_eq!(c.get("linger.ms"), Some("50"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"));
    }

    #[test]
    fn consumer_defaults() {
        let c = KafkaConfig::default().consumer_config("g", &ConsumerConfig::default()).expect("valid");
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("partition.assignment.strategy"), Some("cooperative-sticky"));
        let bad = ConsumerConfig { drain_timeout_ms: 50_000, ..ConsumerConfig::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy { max_attempts: 5, base_backoff_ms: 100, max_backoff_ms: 1_000 };
        for _ in 0..50 {
            let b1 = p.backoff(1).as_millis();
            assert!((50..=100).contains(&b1), "{b1}");
            let b10 = p.backoff(10).as_millis();
            assert!((500..=1_000).contains(&b10), "{b10}");
        }
    }
}
