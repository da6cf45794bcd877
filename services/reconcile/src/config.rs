//! The `[reconcile]` section of imbridge.toml: the legacy read endpoints, and how the service decides what to
//! check and when.

use std::net::SocketAddr;

use imbridge_kafka::ConsumerConfig;
use imbridge_legacy::{ReadConfig, SigningSecret};
use serde::{Deserialize, Serialize};

use crate::error::ReconcileError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Base URL of the legacy contract's read endpoints (`/v1/read/…` is appended), e.g. `http://legacy:8082`.
    pub legacy_url: String,
    /// Secret that signs the read requests (the legacy side verifies it like an apply request).
    pub legacy_secret: SigningSecret,
    /// Whole-request timeout of a legacy read, in milliseconds.
    pub legacy_timeout_ms: u64,
    /// Most users whose IM conversation list (`recentcontact/get_list`) one pass reads, to bound IM calls.
    pub max_users: usize,
    /// Service: address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Service: consumer group on the event topics; instances of one group share the conversations by
    /// partition (activity, outage checks and the sweep alike).
    pub group_id: String,
    /// Service: a conversation is checked this long after its last event, so sync still in flight is not
    /// reported as a difference, in milliseconds.
    pub check_delay_ms: u64,
    /// Service: activity and start-up checks compare the messages of this last stretch of time, in seconds
    /// (the sweep compares everything).
    pub activity_window_secs: u64,
    /// Service: most conversations one activity pass takes (the rest wait for the next).
    pub max_conversations_per_pass: usize,
    /// Service: a full sweep of every conversation and group runs this often, in seconds.
    pub sweep_interval_secs: u64,
    /// Service: the first sweep starts this long after start-up, in seconds.
    pub first_sweep_delay_secs: u64,
    /// Service: skip, in sweeps, conversations whose cheap digests on both sides are unchanged since a full
    /// check found them identical.
    pub digest_skipping: bool,
    /// Service: no ingest heartbeat for longer than this is an outage, in milliseconds (a few of
    /// `ingest.heartbeat_interval_ms`).
    pub outage_gap_ms: u64,
    /// Service: an outage check starts this much before the outage's first moment, in seconds (clock skew,
    /// the last beat's interval).
    pub outage_margin_secs: u64,
    /// Service: how often a conversation repaired by reconcile is checked again to confirm the repair landed
    /// (each check may repair again); then the sweep takes over.
    pub max_verify_rounds: u8,
    /// Service: the consumer on the event topics (only positions matter: nothing is applied).
    pub consumer: ConsumerConfig,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            legacy_url: "http://127.0.0.1:8082".into(),
            legacy_secret: SigningSecret::default(),
            legacy_timeout_ms: 30_000,
            max_users: 1_000,
            listen: SocketAddr::from(([127, 0, 0, 1], 9105)),
            group_id: "imbridge-reconcile".into(),
            check_delay_ms: 30_000,
            activity_window_secs: 3_600,
            max_conversations_per_pass: 500,
            sweep_interval_secs: 6 * 3_600,
            first_sweep_delay_secs: 300,
            digest_skipping: true,
            outage_gap_ms: 20_000,
            outage_margin_secs: 60,
            max_verify_rounds: 3,
            // A new group starts at the end: the start-up check covers the recent window instead of replaying
            // a week of events. Nothing is ever dead-lettered, so nothing parks.
            consumer: ConsumerConfig {
                auto_offset_reset: "latest".into(),
                park_after_dead_letter: false,
                ..ConsumerConfig::default()
            },
        }
    }
}

impl ReconcileConfig {
    pub fn validate(&self) -> Result<(), ReconcileError> {
        if !(self.legacy_url.starts_with("http://") || self.legacy_url.starts_with("https://")) {
            return Err(ReconcileError::Config(format!("legacy_url {:?} is not an http(s) URL", self.legacy_url)));
        }
        if self.legacy_secret.is_empty() {
            return Err(ReconcileError::Config("legacy_secret is empty".into()));
        }
        if self.max_users == 0 || self.max_conversations_per_pass == 0 {
            return Err(ReconcileError::Config("max_users and max_conversations_per_pass must be at least 1".into()));
        }
        Ok(())
    }

    /// The service's own checks, beyond [`validate`](Self::validate).
    pub fn validate_service(&self) -> Result<(), ReconcileError> {
        self.validate()?;
        if self.group_id.is_empty() {
            return Err(ReconcileError::Config("group_id is empty".into()));
        }
        if self.sweep_interval_secs == 0 || self.activity_window_secs == 0 || self.outage_gap_ms == 0 {
            return Err(ReconcileError::Config(
                "sweep_interval_secs, activity_window_secs and outage_gap_ms must be positive".into(),
            ));
        }
        self.consumer.validate().map_err(|e| ReconcileError::Config(format!("consumer: {e}")))
    }

    pub fn read_config(&self) -> ReadConfig {
        ReadConfig {
            base_url: self.legacy_url.clone(),
            secret: self.legacy_secret.clone(),
            timeout_ms: self.legacy_timeout_ms,
        }
    }
}
