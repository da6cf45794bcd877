//! The emulator's configuration (TOML section `[legacy_emulator]` or command-line flags in the binary).

use std::net::SocketAddr;
use std::path::PathBuf;

use imbridge_legacy::{MAX_BATCH_EVENTS, SigningSecret};
use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;

/// How the reference legacy backend runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegacyEmulatorConfig {
    /// Address of the HTTP API (user REST API, `/v1/apply`, read endpoints); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Base URL of imbridge ingest; webhooks go to `<ingest_url>/v1/legacy/events`. Unset: changes are
    /// stored but no webhooks are sent.
    pub ingest_url: Option<String>,
    /// Secret that signs the webhooks sent to ingest.
    pub webhook_secret: SigningSecret,
    /// Secrets accepted on `/v1/apply`; a request signed with any of them passes (rotation). Empty: every
    /// apply is refused with 401.
    pub apply_secrets: Vec<SigningSecret>,
    /// How far a request's `X-Imbridge-Timestamp` may be from now, in seconds.
    pub signature_tolerance_secs: u64,
    /// Most events per webhook request (1 to 500).
    pub webhook_batch_max: usize,
    /// Timeout of one webhook request, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// First backoff after a failed webhook, in milliseconds; doubles up to `webhook_max_backoff_ms`.
    pub webhook_initial_backoff_ms: u64,
    /// Longest backoff between webhook retries, in milliseconds.
    pub webhook_max_backoff_ms: u64,
    /// Also send webhooks for writes applied with `"origin":"im"` (carrying that origin), so tests can check
    /// that ingest drops echoes. Off by default: such writes never fire webhooks.
    pub echo_webhooks: bool,
    /// JSON snapshot of the whole state (outbox included): loaded at start when it exists, written every
    /// `state_flush_ms` while changed and at shutdown. Unset: in memory only.
    pub state_file: Option<PathBuf>,
    /// How often a changed state is written to `state_file`, in milliseconds.
    pub state_flush_ms: u64,
    /// An export directory (NDJSON, issue-4 format) loaded at start when no state file exists. Seeded history
    /// fires no webhooks.
    pub seed_dir: Option<PathBuf>,
    /// Prefix of the ids the emulator assigns to its own events and groups (`<prefix>-<n>`).
    pub id_prefix: String,
    /// Faults injected on `/v1/apply` (after the signature and batch checks), for tests of imbridge against a
    /// failing legacy side. Off by default.
    pub apply_faults: ApplyFaults,
}

/// Seeded, reproducible faults on `/v1/apply`: each request draws once, from `seed` and its sequence number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplyFaults {
    /// Fraction of requests answered `503` without applying anything.
    pub fail_rate: f64,
    /// Fraction of requests applied, then answered only after `stall_ms`: past the caller's timeout, the
    /// caller sees a failure although the events were applied (its retry must be deduplicated).
    pub stall_rate: f64,
    /// How long a stalled answer waits, in milliseconds.
    pub stall_ms: u64,
    pub seed: u64,
}

impl ApplyFaults {
    /// What request number `n` suffers.
    pub fn draw(&self, n: u64) -> ApplyFault {
        if self.fail_rate <= 0.0 && self.stall_rate <= 0.0 {
            return ApplyFault::None;
        }
        let x =
            f64::from(imbridge_core::ids::stable_u32(format!("{}:{n}", self.seed).as_bytes())) / f64::from(u32::MAX);
        if x < self.fail_rate {
            ApplyFault::Fail
        } else if x < self.fail_rate + self.stall_rate {
            ApplyFault::Stall(std::time::Duration::from_millis(self.stall_ms))
        } else {
            ApplyFault::None
        }
    }
}

/// One request's fate under [`ApplyFaults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyFault {
    None,
    Fail,
    Stall(std::time::Duration),
}

impl Default for LegacyEmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ingest_url: None,
            webhook_secret: SigningSecret::default(),
            apply_secrets: Vec::new(),
            signature_tolerance_secs: imbridge_legacy::signature::DEFAULT_TOLERANCE_SECS,
            webhook_batch_max: 100,
            webhook_timeout_ms: 5_000,
            webhook_initial_backoff_ms: 50,
            webhook_max_backoff_ms: 2_000,
            echo_webhooks: false,
            state_file: None,
            state_flush_ms: 500,
            seed_dir: None,
            id_prefix: "lg".into(),
            apply_faults: ApplyFaults::default(),
        }
    }
}

impl LegacyEmulatorConfig {
    /// Checks the config as a whole; `spawn` calls it.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |m: &str| Err(EmulatorError::Config(m.to_owned()));
        if self.ingest_url.is_some() && self.webhook_secret.is_empty() {
            return bad("ingest_url is set but webhook_secret is empty");
        }
        // No secrets at all is allowed (every apply is refused with 401: an emulator only used for its user
        // API or its export); an empty one is a typo that would otherwise go unnoticed.
        if self.apply_secrets.iter().any(SigningSecret::is_empty) {
            return bad("apply_secrets holds an empty secret");
        }
        if !(1..=MAX_BATCH_EVENTS).contains(&self.webhook_batch_max) {
            return bad("webhook_batch_max must be between 1 and 500");
        }
        if self.id_prefix.is_empty() || self.id_prefix.len() > 16 || self.id_prefix.contains(char::is_control) {
            return bad("id_prefix must be 1-16 bytes without control characters");
        }
        let f = &self.apply_faults;
        let rate = |r: f64| (0.0..=1.0).contains(&r);
        if !rate(f.fail_rate) || !rate(f.stall_rate) || f.fail_rate + f.stall_rate > 1.0 {
            return bad("apply_faults: fail_rate and stall_rate must be fractions summing to at most 1");
        }
        if self.webhook_timeout_ms == 0 || self.state_flush_ms == 0 {
            return bad("webhook_timeout_ms and state_flush_ms must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_faults_draw_their_share_reproducibly() {
        let f = ApplyFaults { fail_rate: 0.1, stall_rate: 0.05, stall_ms: 10, seed: 3 };
        let draws: Vec<ApplyFault> = (0..10_000).map(|n| f.draw(n)).collect();
        let fails = draws.iter().filter(|d| **d == ApplyFault::Fail).count();
        let stalls = draws.iter().filter(|d| matches!(d, ApplyFault::Stall(_))).count();
        assert!((800..1200).contains(&fails), "{fails}");
        assert!((350..650).contains(&stalls), "{stalls}");
        assert_eq!(draws, (0..10_000).map(|n| f.draw(n)).collect::<Vec<_>>());
        assert_eq!(ApplyFaults::default().draw(1), ApplyFault::None);
        let bad = LegacyEmulatorConfig {
            apply_faults: ApplyFaults { fail_rate: 0.7, stall_rate: 0.5, ..ApplyFaults::default() },
            ..LegacyEmulatorConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
