//! The `[reconcile]` section of imbridge.toml.

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
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            legacy_url: "http://127.0.0.1:8082".into(),
            legacy_secret: SigningSecret::default(),
            legacy_timeout_ms: 30_000,
            max_users: 1_000,
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
        if self.max_users == 0 {
            return Err(ReconcileError::Config("max_users must be at least 1".into()));
        }
        Ok(())
    }

    pub fn read_config(&self) -> ReadConfig {
        ReadConfig {
            base_url: self.legacy_url.clone(),
            secret: self.legacy_secret.clone(),
            timeout_ms: self.legacy_timeout_ms,
        }
    }
}
