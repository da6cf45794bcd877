//! `[export]`: what `imbridge export from-im` asks the old IM app for, and (optionally) which app that is.

use imbridge_im::ImConfig;
use serde::{Deserialize, Serialize};

/// The `[export]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// The app `export from-im` reads, when it is not `[old_side.im]` (the same keys as `[im]`): by default the
    /// export reads the old app of `[old_side] kind = "im"`, so one section describes it for every part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_im: Option<ImConfig>,
    /// Custom profile fields to read, by name without the `Tag_Profile_Custom_` prefix: IM has no API that
    /// lists an app's custom fields (they are configured in its console).
    pub custom_profile_tags: Vec<String>,
    /// Users, conversations or groups read at once (each API stays within its quota).
    pub concurrency: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self { from_im: None, custom_profile_tags: Vec::new(), concurrency: 16 }
    }
}
