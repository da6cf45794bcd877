//! `[import]` in imbridge.toml: how `imbridge import` produces, applies and reports.
//!
//! Topic names and partition counts (the checkpoint topic's too) come from `[topics]`, the IM client and its
//! per-API rates from `[im]`.

use crate::apply::ImportApplyConfig;
use imbridge_core::topics::ImportPhase;
use imbridge_kafka::ConsumerConfig;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The import's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Consumer-group id prefix: the import topics are applied by `<group_id>.accounts`, `.users`, `.c2c` and
    /// `.groups`. Keep it stable: its committed offsets are what a re-run resumes from.
    pub group_id: String,
    /// How often the producing checkpoint (on `topics.import_checkpoints`) is written, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Records produced and not yet acknowledged, per import topic.
    pub produce_window: usize,
    /// How often each fully produced topic's end offsets are compared with how far its consumer got (its
    /// finished positions in memory; the broker is asked at most once a second), in milliseconds. The
    /// dependent phases start, and the run ends, within this of the work.
    pub poll_interval_ms: u64,
    /// Without a terminal, one progress line per kind is logged this often, in seconds.
    pub progress_interval_secs: u64,
    /// The ordered consumer runner of each import topic (`[import.consumer]`, the same settings as the live
    /// services'): in-flight bounds, commit interval, retries. A record that fails is dead-lettered without
    /// parking its conversation by default (`park_after_dead_letter = false`): the import reports it instead.
    pub consumer: ConsumerConfig,
    /// Handler tuning.
    pub apply: ImportApplyConfig,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            group_id: "imbridge-import".to_owned(),
            checkpoint_interval_ms: 500,
            produce_window: 10_000,
            poll_interval_ms: 20,
            progress_interval_secs: 5,
            consumer: crate::apply::import_consumer_config(),
            apply: ImportApplyConfig::default(),
        }
    }
}

impl ImportConfig {
    /// The consumer-group id of one import phase's consumer.
    pub fn group_of(&self, which: ImportPhase) -> String {
        format!("{}.{}", self.group_id, which.as_str())
    }

    /// Checks the settings as a whole.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidOption(format!("import.{m}")));
        if self.group_id.trim().is_empty() {
            return bad("group_id must not be empty");
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
        self.consumer.validate().map_err(|e| Error::InvalidOption(format!("import.consumer: {e}")))
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
        assert_eq!(c.group_of(ImportPhase::C2c), "g.c2c");
        assert!(!c.consumer.park_after_dead_letter);
        assert_eq!(c.consumer.auto_commit_interval_ms, 200);
        assert!(toml::from_str::<ImportConfig>("bogus = 1").is_err());
        let bad = ImportConfig { produce_window: 0, ..ImportConfig::default() };
        assert!(bad.validate().is_err());
    }
}
