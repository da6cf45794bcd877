//! `[ingest]` in imbridge.toml: where ingest listens, how big a request may be, how long it waits for Kafka,
//! and the secrets both senders sign with.
//!
//! IM's identity (`sdkappid`, the admin identifier whose callbacks are echoes) is not repeated here: it comes
//! from `[im]` through [`crate::Deps`], so ingest and to-im can never disagree on who imbridge is.

use std::net::SocketAddr;
use std::path::PathBuf;

use imbridge_legacy::SigningSecret;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;

/// How the ingest service runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the HTTP server: both endpoints and `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes; larger requests get `413` (the contract's default is 1 MiB).
    pub max_body_bytes: usize,
    /// How long a request waits for Kafka to acknowledge its events, in milliseconds. Past it the request is
    /// answered `503` so the sender retries (a late acknowledgement then only causes a harmless duplicate).
    pub produce_timeout_ms: u64,
    /// The secret legacy webhooks are signed with (`X-Imbridge-Signature`). Load it with `legacy_secret_file`.
    pub legacy_secret: SigningSecret,
    /// Secrets still accepted while the legacy side rotates to `legacy_secret`.
    pub legacy_previous_secrets: Vec<SigningSecret>,
    /// How far a webhook's `X-Imbridge-Timestamp` may be from now, in seconds.
    pub signature_tolerance_secs: u64,
    /// IM's callback authentication token (console setting). When set, every callback must carry a matching
    /// `Sign` and a `RequestTime` within 60 s; when unset only `SdkAppid` is checked.
    pub im_callback_token: Option<String>,
    /// Drop `Group.CallbackAfterGroupDestroyed` callbacks caused by a REST call (`OptPlatform=RESTAPI`) as
    /// imbridge's own echo. IM documents no `Operator_Account` on that callback, so this is the only way to
    /// recognise imbridge's own `destroy_group`; turn it on only when no other backend destroys groups through
    /// IM's REST API. Off: such a dismissal travels back to legacy, where dismissing a dismissed group is a no-op.
    pub rest_dismiss_is_echo: bool,
    /// Create the event topics at start when they are missing (partitions and replication from `[topics]`).
    pub create_topics: bool,
    /// How often Kafka reachability is probed for `/readyz`, in milliseconds.
    pub readiness_interval_ms: u64,
    /// How long shutdown waits for Kafka to acknowledge what is still queued (the producer's queue and the
    /// spool), in milliseconds. What the spool still holds then stays on disk for the next start.
    pub flush_timeout_ms: u64,
    /// Directory of the IM callback spool: callbacks are fsynced here before IM hears "OK" and produced to
    /// Kafka in the background. Must be on a persistent volume and used by one ingest process only (locked).
    pub spool_dir: PathBuf,
    /// Upper bound of the spool's files, in bytes. When Kafka has been away long enough to fill it, callbacks
    /// are answered with an error (503) instead of being accepted and lost.
    pub spool_max_bytes: u64,
    /// Size at which the spool starts a new segment file, in bytes; a segment is deleted once Kafka has
    /// acknowledged all of it.
    pub spool_segment_bytes: u64,
    /// Most bytes of spooled, unacknowledged callbacks held in memory for the forwarder; a longer backlog
    /// (Kafka slow or away) waits on disk and is read back in order, so memory does not grow with it.
    pub spool_memory_bytes: u64,
    /// How often ingest writes its heartbeat to `topics.status`, in milliseconds (0: never). Reconciliation
    /// reads the beats to check at once what was touched while ingest was down or refused callbacks.
    pub heartbeat_interval_ms: u64,
    /// This instance's name in its heartbeats; keep it stable across restarts. Empty: the listen address.
    pub instance_id: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: imbridge_legacy::contract::DEFAULT_MAX_BODY_BYTES,
            produce_timeout_ms: 10_000,
            legacy_secret: SigningSecret::default(),
            legacy_previous_secrets: Vec::new(),
            signature_tolerance_secs: imbridge_legacy::signature::DEFAULT_TOLERANCE_SECS,
            im_callback_token: None,
            rest_dismiss_is_echo: false,
            create_topics: true,
            readiness_interval_ms: 5_000,
            flush_timeout_ms: 5_000,
            spool_dir: PathBuf::from("data/ingest-spool"),
            spool_max_bytes: 256 * 1024 * 1024,
            spool_segment_bytes: 8 * 1024 * 1024,
            spool_memory_bytes: 16 * 1024 * 1024,
            heartbeat_interval_ms: 5_000,
            instance_id: String::new(),
        }
    }
}

impl IngestConfig {
    /// Checks the section as a whole; [`crate::run`] refuses to start on an invalid one.
    pub fn validate(&self) -> Result<(), IngestError> {
        if self.legacy_secret.is_empty() {
            // Without a secret every webhook would be refused with 401: a deployment mistake, not a state to run in.
            return Err(IngestError::Config(
                "ingest.legacy_secret is not set (or set ingest.legacy_secret_file)".into(),
            ));
        }
        self.validate_without_webhooks()
    }

    /// The same without the legacy webhook secret: when the old side is an IM app no legacy webhook is expected,
    /// and without a secret every one is refused (401).
    pub fn validate_without_webhooks(&self) -> Result<(), IngestError> {
        let bad = |m: &str| Err(IngestError::Config(m.to_owned()));
        if self.legacy_previous_secrets.iter().any(SigningSecret::is_empty) {
            return bad("ingest.legacy_previous_secrets holds an empty secret");
        }
        if self.im_callback_token.as_deref().is_some_and(|t| t.is_empty() || t.len() > 128) {
            return bad("ingest.im_callback_token must be 1 to 128 characters (or unset)");
        }
        if self.max_body_bytes < 1024 {
            return bad("ingest.max_body_bytes must be at least 1024");
        }
        if self.produce_timeout_ms == 0 || self.readiness_interval_ms == 0 {
            return bad("ingest.produce_timeout_ms and ingest.readiness_interval_ms must be positive");
        }
        if self.spool_dir.as_os_str().is_empty() {
            return bad("ingest.spool_dir is empty");
        }
        if self.spool_max_bytes < 2 * self.max_body_bytes as u64 {
            return bad("ingest.spool_max_bytes must be at least twice ingest.max_body_bytes");
        }
        if self.spool_segment_bytes < 4096 || self.spool_segment_bytes > self.spool_max_bytes {
            return bad("ingest.spool_segment_bytes must be between 4096 and ingest.spool_max_bytes");
        }
        if self.spool_memory_bytes < 65_536 {
            return bad("ingest.spool_memory_bytes must be at least 65536");
        }
        Ok(())
    }

    /// Every accepted legacy secret, the current one first.
    pub fn legacy_secrets(&self) -> Vec<SigningSecret> {
        std::iter::once(self.legacy_secret.clone()).chain(self.legacy_previous_secrets.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_a_secret() {
        assert!(IngestConfig::default().validate().is_err());
        let c = IngestConfig { legacy_secret: SigningSecret::new("s"), ..IngestConfig::default() };
        assert!(c.validate().is_ok());
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        let c = IngestConfig { im_callback_token: Some(String::new()), ..c };
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<IngestConfig, _> = serde_json::from_str(r#"{"listen":"127.0.0.1:1","legacy_secrte":"x"}"#);
        assert!(r.is_err());
    }
}
