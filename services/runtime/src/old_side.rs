//! `[old_side]`: what the system being migrated from is. Every part reads it from [`crate::Deps`], so ingest
//! (whose callbacks are old-side events) and to-legacy (which writes to the old side) can never disagree.
//!
//! - `kind = "legacy"` (the default): the legacy HTTP contract of docs/legacy-contract.md, configured by
//!   `[ingest]` (webhook secret) and `[to_legacy]` (apply URL and secret) exactly as before;
//! - `kind = "im"`: another Tencent Cloud IM application (another region, a merged app, a new account). Its
//!   REST API and identity are `[old_side.im]` (the same keys as `[im]`: base URL, SDKAppID, admin, secret key,
//!   retries, rate limits), its callbacks are signed with `im_callback_token`.
//!
//! A third kind of old system is one more variant here, one more normalizer in ingest and one more adapter
//! behind to-legacy's [`imbridge_core::apply::OldSide`]; topics, ordering, idempotency and DLQ stay as they are.

use imbridge_im::ImConfig;
use serde::{Deserialize, Serialize};

/// What the old system is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OldSideKind {
    /// The legacy HTTP contract (webhooks in, apply endpoint out).
    #[default]
    Legacy,
    /// Another Tencent Cloud IM application (callbacks in, REST API out).
    Im,
}

impl OldSideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OldSideKind::Legacy => "legacy",
            OldSideKind::Im => "im",
        }
    }
}

/// `[old_side]` of imbridge.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OldSideConfig {
    /// `legacy` (default) or `im`.
    pub kind: OldSideKind,
    /// The old IM app, when `kind = "im"`: the same keys as `[im]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub im: Option<ImConfig>,
    /// The old IM app's callback authentication token (its console setting); callbacks carrying its SdkAppid
    /// must be signed with it. Unset: only the SdkAppid is checked (as `ingest.im_callback_token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub im_callback_token: Option<String>,
}

impl OldSideConfig {
    /// The old IM app, when the old side is one.
    pub fn old_im(&self) -> Option<&ImConfig> {
        match self.kind {
            OldSideKind::Im => self.im.as_ref(),
            OldSideKind::Legacy => None,
        }
    }

    /// Checks the section against the new app (`[im]`): an IM old side needs its own complete identity, and
    /// the two apps must be two apps.
    pub fn validate(&self, new_app: &ImConfig) -> Result<(), String> {
        match (self.kind, &self.im) {
            (OldSideKind::Legacy, None) => Ok(()),
            (OldSideKind::Legacy, Some(_)) => Err("old_side.im is set but old_side.kind is \"legacy\": set \
                 old_side.kind = \"im\" to migrate from that IM app, or remove [old_side.im]"
                .into()),
            (OldSideKind::Im, None) => {
                Err("old_side.kind = \"im\" needs an [old_side.im] section (base_url, sdkappid, admin_identifier, \
                     secret_key)"
                    .into())
            }
            (OldSideKind::Im, Some(old)) => {
                if old.sdkappid == 0 {
                    return Err("old_side.im.sdkappid is not set: the old IM app's SDKAppID".into());
                }
                if old.sdkappid == new_app.sdkappid {
                    return Err(format!(
                        "old_side.im.sdkappid {} is also im.sdkappid: the old and the new app must be two different \
                         apps (callbacks are told apart by SdkAppid)",
                        old.sdkappid
                    ));
                }
                if old.admin_identifier.trim().is_empty() {
                    return Err("old_side.im.admin_identifier is empty".into());
                }
                if old.secret_key.is_empty() {
                    return Err("old_side.im.secret_key is not set (or set old_side.im.secret_key_file)".into());
                }
                old.validate().map_err(|e| format!("old_side.im: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_app() -> ImConfig {
        ImConfig { sdkappid: 1_400_000_002, secret_key: "k".into(), ..ImConfig::default() }
    }

    fn parse(s: &str) -> Result<OldSideConfig, String> {
        toml::from_str::<OldSideConfig>(s).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn the_default_is_the_legacy_contract() {
        let c = parse("").expect("empty");
        assert_eq!(c.kind, OldSideKind::Legacy);
        assert!(c.old_im().is_none());
        c.validate(&new_app()).expect("valid");
    }

    #[test]
    fn an_im_old_side_needs_its_own_app() {
        let ok = "kind = \"im\"\nim_callback_token = \"t\"\n[im]\nbase_url = \"http://127.0.0.1:1\"\n\
                  sdkappid = 1400000001\nadmin_identifier = \"admin\"\nsecret_key = \"s\"\n";
        let c = parse(ok).expect("parses");
        c.validate(&new_app()).expect("valid");
        assert_eq!(c.old_im().map(|i| i.sdkappid), Some(1_400_000_001));

        let err = parse("kind = \"vendor\"").expect_err("bad kind");
        assert!(err.contains("unknown variant `vendor`") && err.contains("legacy") && err.contains("im"), "{err}");

        let no_section = parse("kind = \"im\"").expect("parses").validate(&new_app()).expect_err("no [old_side.im]");
        assert!(no_section.contains("needs an [old_side.im]"), "{no_section}");

        let no_id = parse("kind = \"im\"\n[im]\nsecret_key = \"s\"\n").expect("parses");
        let e = no_id.validate(&new_app()).expect_err("missing sdkappid");
        assert!(e.contains("old_side.im.sdkappid is not set"), "{e}");

        let same = parse("kind = \"im\"\n[im]\nsdkappid = 1400000002\nsecret_key = \"s\"\n").expect("parses");
        let e = same.validate(&new_app()).expect_err("same app twice");
        assert!(e.contains("also im.sdkappid") && e.contains("1400000002"), "{e}");

        let no_key = parse("kind = \"im\"\n[im]\nsdkappid = 1400000001\n").expect("parses");
        assert!(no_key.validate(&new_app()).expect_err("no key").contains("secret_key"));

        let stray = parse("[im]\nsdkappid = 1400000001\n").expect("parses");
        assert!(stray.validate(&new_app()).expect_err("stray").contains("old_side.kind"));

        assert!(parse("kind = \"im\"\n[im]\nsdkapid = 1\n").is_err(), "unknown keys are refused");
    }
}
