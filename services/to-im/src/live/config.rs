//! [`LiveConfig`]: how the live apply consumes `imbridge.legacy.events` and writes to IM (`[to_im.live]`).

use imbridge_kafka::ConsumerConfig;
use serde::{Deserialize, Serialize};

use crate::error::ToImError;

pub use imbridge_im::apply::C2cApi;

/// The live apply's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Consumer group of the live apply; every instance of one deployment uses the same one.
    pub group_id: String,
    /// API for legacy 1:1 messages: `sendmsg` (default) or `importmsg` (live-import mode).
    pub c2c_api: C2cApi,
    /// Give this instance the share of each IM API's per-app quota that matches its share of the assigned
    /// partitions, re-computed on every rebalance, so N instances together stay under IM's limits.
    pub share_quota_by_partitions: bool,
    /// When IM answers that a sender, recipient or member does not exist, import that account
    /// (`multiaccount_import`, id only) and try once more, instead of dead-lettering: users created on the
    /// legacy side after the bulk import exist on IM from their first message.
    pub import_unknown_accounts: bool,
    /// How far before an event's ingest time the post-crash check searches IM's history for it, in seconds
    /// (covers clock skew between imbridge and IM).
    pub history_check_slack_secs: u64,
    /// How long the applied ledger's entries are kept in memory, in ms (at least a day). The default is the
    /// ledger topic's own `retention.ms` (9 days: the event topics' week, a daily segment and a day of margin).
    /// Raise both together with the event topics' retention, or a replay of events older than this would send
    /// them again.
    pub ledger_keep_ms: u64,
    /// When the old side is another IM app (`[old_side] kind = "im"`): how long each of its messages waits, in
    /// milliseconds after ingest received it, for earlier ones of its conversation still in flight (its callbacks
    /// come concurrently and unordered), before they are sent to the new app in the old app's order. 0 sends in
    /// arrival order. Unused with the legacy contract.
    pub old_im_reorder_window_ms: u64,
    /// The ordered consumer (in-flight bounds, retries, drain deadline, parking).
    pub consumer: ConsumerConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            group_id: "imbridge-to-im".to_owned(),
            c2c_api: C2cApi::default(),
            share_quota_by_partitions: true,
            import_unknown_accounts: true,
            history_check_slack_secs: 300,
            ledger_keep_ms: imbridge_core::topics::APPLIED_RETENTION_MS,
            old_im_reorder_window_ms: 1_000,
            consumer: ConsumerConfig::default(),
        }
    }
}

impl LiveConfig {
    /// Checks the settings as a whole.
    pub fn validate(&self) -> Result<(), ToImError> {
        if self.group_id.trim().is_empty() {
            return Err(ToImError::Config("to_im.live.group_id is empty".into()));
        }
        if self.ledger_keep_ms < 86_400_000 {
            return Err(ToImError::Config(format!(
                "to_im.live.ledger_keep_ms ({}) must be at least a day (86400000)",
                self.ledger_keep_ms
            )));
        }
        self.consumer.validate().map_err(|e| ToImError::Config(format!("to_im.live.consumer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let c: LiveConfig = toml::from_str("c2c_api = \"importmsg\"\n[consumer]\nmax_in_flight = 10\n").expect("toml");
        assert_eq!(c.c2c_api, C2cApi::Importmsg);
        assert_eq!(c.consumer.max_in_flight, 10);
        assert_eq!(c.group_id, "imbridge-to-im");
        c.validate().expect("valid");
        assert!(toml::from_str::<LiveConfig>("c2c_api = \"batchsendmsg\"").is_err());
        assert!(toml::from_str::<LiveConfig>("groupid = \"x\"").is_err());
        let short: LiveConfig = toml::from_str("ledger_keep_ms = 3600000").expect("toml");
        assert!(short.validate().is_err_and(|e| e.to_string().contains("at least a day")));
    }
}
