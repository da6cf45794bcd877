//! `[import]` in imbridge.toml: how `imbridge import` produces, applies and reports.
//!
//! Topic names and partition counts come from `[topics]`, the IM client and its per-API rates from `[im]`.

use crate::apply::ImportApplyConfig;
use imbridge_kafka::{ConsumerConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The import's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Consumer-group id prefix: the import topics are applied by `<group_id>.accounts`, `.users`, `.c2c` and
    /// `.groups`. Keep it stable: its committed offsets are what a re-run resumes from.
    pub group_id: String,
    /// Compacted topic holding one checkpoint per export (how far producing got), so a re-run after a crash
    /// continues instead of starting over.
    pub checkpoint_topic: String,
    /// How often the producing checkpoint is written, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Records produced and not yet acknowledged, per import topic.
    pub produce_window: usize,
    /// How often committed offsets are compared with the end offsets while waiting for apply, in milliseconds.
    pub poll_interval_ms: u64,
    /// Without a terminal, one progress line per kind is logged this often, in seconds.
    pub progress_interval_secs: u64,
    /// Records received and not yet applied, per import topic consumer.
    pub max_in_flight: usize,
    /// Records queued behind one conversation or group.
    pub lane_capacity: usize,
    /// How often applied positions are committed, in milliseconds.
    pub commit_interval_ms: u64,
    /// Attempts per record (first included) for transient failures before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry backoff of a record, in milliseconds (doubling, with jitter).
    pub base_backoff_ms: u64,
    /// Longest retry backoff of a record, in milliseconds.
    pub max_backoff_ms: u64,
    /// Handler tuning.
    pub apply: ImportApplyConfig,
}

impl Default for ImportConfig {
    fn default() -> Self {
        let c = crate::apply::import_consumer_config();
        Self {
            group_id: "imbridge-import".to_owned(),
            checkpoint_topic: "imbridge.import.checkpoints".to_owned(),
            checkpoint_interval_ms: 500,
            produce_window: 10_000,
            poll_interval_ms: 100,
            progress_interval_secs: 5,
            max_in_flight: c.max_in_flight,
            lane_capacity: c.lane_capacity,
            commit_interval_ms: c.auto_commit_interval_ms,
            max_attempts: c.retry.max_attempts,
            base_backoff_ms: c.retry.base_backoff_ms,
            max_backoff_ms: c.retry.max_backoff_ms,
            apply: ImportApplyConfig::default(),
        }
    }
}

impl ImportConfig {
    /// The consumer-group id of one import topic's consumer.
    pub fn group_of(&self, which: crate::apply::ImportTopic) -> String {
        format!("{}.{}", self.group_id, which.as_str())
    }

    /// The ordered-consumer settings of the import consumers.
    pub fn consumer(&self) -> ConsumerConfig {
        ConsumerConfig {
            max_in_flight: self.max_in_flight,
            lane_capacity: self.lane_capacity,
            auto_commit_interval_ms: self.commit_interval_ms,
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base_backoff_ms: self.base_backoff_ms,
                max_backoff_ms: self.max_backoff_ms,
            },
            ..crate::apply::import_consumer_config()
        }
    }

    /// Checks the settings as a whole.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidOption(format!("import.{m}")));
        if self.group_id.trim().is_empty() {
            return bad("group_id must not be empty");
        }
        if self.checkpoint_topic.trim().is_empty() {
            return bad("checkpoint_topic must not be empty");
        }
        if self.checkpoint_interval_ms == 0 || self.poll_interval_ms == 0 || self.progress_interval_secs == 0 {
            return bad("checkpoint_interval_ms, poll_interval_ms and progress_interval_secs must be positive");
        }
        if self.produce_window == 0 {
            return bad("produce_window must be at least 1");
        }
        if self.apply.accounts_max_concurrent_calls == 0 {
            return bad("apply.accounts_max_concurrent_calls must be at least 1");
        }
        self.consumer().validate().map_err(|e| Error::InvalidOption(format!("import: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse_partially() {
        ImportConfig::default().validate().expect("valid defaults");
        let c: ImportConfig = toml::from_str("group_id = \"g\"\n[apply]\naccounts_linger_ms = 5\n").expect("toml");
        assert_eq!(c.group_id, "g");
        assert_eq!(c.apply.accounts_linger_ms, 5);
        assert_eq!(c.group_of(crate::apply::ImportTopic::C2c), "g.c2c");
        assert!(!c.consumer().park_after_dead_letter);
        assert!(toml::from_str::<ImportConfig>("bogus = 1").is_err());
        let bad = ImportConfig { produce_window: 0, ..ImportConfig::default() };
        assert!(bad.validate().is_err());
    }
}
