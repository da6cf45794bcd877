//! Records on the compacted `imbridge.status` topic: what the services tell each other about their own health.
//!
//! - `ingest:<instance>` → [`IngestBeat`]: ingest's heartbeat. An IM callback that reaches no running ingest, or
//!   that ingest refuses (spool full), is lost for good: IM never sends it again. Reconciliation follows these
//!   beats and checks, at once, everything touched while ingest was down or degraded (see `docs/reconcile.md`).
//! - `reconcile:sweep:<group>` → the last full sweep of a reconcile consumer group (written by reconcile, read
//!   by `imbridge status`; its shape lives in the reconcile crate).

use serde::{Deserialize, Serialize};

use crate::time::TimestampMs;

/// Key prefix of ingest heartbeats.
pub const INGEST_KEY_PREFIX: &str = "ingest:";
/// Key prefix of reconcile's sweep summaries.
pub const SWEEP_KEY_PREFIX: &str = "reconcile:sweep:";

/// One ingest heartbeat. Counters are cumulative since the process started, so a reader that missed beats
/// still sees that something happened in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestBeat {
    /// Stable across restarts of the same instance (`ingest.instance_id`, default its listen address).
    pub instance: String,
    /// When this beat was made (ingest's clock).
    pub at: TimestampMs,
    /// When this process started.
    pub started_at: TimestampMs,
    /// On the beats of a process that found an earlier process's last beat on disk: that beat's time. The
    /// instance was down (no callback accepted) from then until `started_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<TimestampMs>,
    /// IM callbacks answered with an error since start (spool full or failing): IM will not re-send them.
    pub callbacks_refused: u64,
    /// Failed Kafka writes since start (webhook produces, spool forwarding, earlier heartbeats).
    pub kafka_failures: u64,
}

impl IngestBeat {
    /// The record key of an instance's beats.
    pub fn key(instance: &str) -> String {
        format!("{INGEST_KEY_PREFIX}{instance}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_round_trips_and_omits_absent_down_since() {
        let b = IngestBeat {
            instance: "127.0.0.1:8080".into(),
            at: TimestampMs(2_000),
            started_at: TimestampMs(1_000),
            down_since: None,
            callbacks_refused: 0,
            kafka_failures: 1,
        };
        let json = serde_json::to_string(&b).expect("json");
        assert!(!json.contains("down_since"), "{json}");
        assert_eq!(serde_json::from_str::<IngestBeat>(&json).expect("parse"), b);
        assert_eq!(IngestBeat::key("a"), "ingest:a");
    }
}
