//! `[export]`: how `imbridge export from-im` reaches the old IM app and what it asks for.

use imbridge_im::ImConfig;
use serde::{Deserialize, Serialize};

/// The `[export]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// The old app, read by `export from-im` (`[export.from_im]`: the same keys as `[im]`). Its quotas are
    /// the old app's own: `rate_limits` here paces only the export.
    pub from_im: ImConfig,
    /// Custom profile fields to read, by name without the `Tag_Profile_Custom_` prefix: IM has no API that
    /// lists an app's custom fields (they are configured in its console).
    pub custom_profile_tags: Vec<String>,
    /// Users, conversations or groups read at once (each API stays within its quota).
    pub concurrency: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self { from_im: ImConfig::default(), custom_profile_tags: Vec::new(), concurrency: 16 }
    }
}
