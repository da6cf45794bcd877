//! The emulator's configuration: which app it pretends to be, who may call it, where callbacks go, and the limits
//! it enforces. `EmulatorConfig::default()` is a usable test configuration (the sdkappid and key of the official
//! READMEs, admin `administrator`, every after-callback on, 8 callbacks in flight at once, no injected faults,
//! documented limits, unlimited retention).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::api::Api;
use crate::faults::Faults;

/// Everything the emulator can be told. Read from TOML by the binary (`--config FILE`), built in code by tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// The SDKAppID requests must carry in `sdkappid` and UserSigs must be issued for.
    pub sdkappid: u64,
    /// The console secret key UserSigs are verified with (its literal UTF-8 bytes are the HMAC key).
    pub secret_key: String,
    /// UserIDs accepted as `identifier` on the REST API (the App admins). They count as existing accounts.
    pub admin_identifiers: Vec<String>,
    /// Address the HTTP server binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// URL callbacks are POSTed to; `None` sends no callbacks at all.
    pub callback_url: Option<String>,
    /// Callback authentication token; when set every callback carries `Sign` and `RequestTime`.
    pub callback_token: Option<String>,
    /// Callback commands switched on, as in the console. `None` = every "after" callback the emulator knows;
    /// "before" callbacks (which can block an operation) and `Profile.CallbackPortraitSet` fire only when listed.
    pub enabled_callbacks: Option<BTreeSet<String>>,
    /// How long one callback delivery may take before it counts as failed, in milliseconds (IM: 2 s for
    /// before-send callbacks).
    pub callback_timeout_ms: u64,
    /// After-callbacks in flight at once, as IM's many sending servers have: callbacks of one conversation can
    /// arrive out of order. `1` = serial delivery, one at a time in operation order (for tests that need it).
    pub callback_concurrency: usize,
    /// Faults to inject (dropped, duplicated and delayed callbacks; failing REST calls); the `[faults]` table.
    /// The default injects nothing. Changeable at run time at `PUT /emulator/faults`.
    pub faults: Faults,
    /// Whether the per-API frequency limits (error 60007) are enforced.
    pub rate_limits_enabled: bool,
    /// Per-API limits in calls per second replacing the documented defaults, keyed `service/command`
    /// (e.g. `"openim/importmsg" = 1000`).
    pub rate_limit_overrides: BTreeMap<String, u32>,
    /// Batch and field limits; defaults are the documented values (the stricter one where docs disagree).
    pub limits: Limits,
    /// How long messages stay readable (roaming), in seconds; `None` = forever. IM's default is 604800 (7 days).
    pub retention_secs: Option<u64>,
    /// Where state is loaded from at start and saved to periodically and at shutdown; `None` = memory only.
    pub state_file: Option<PathBuf>,
    /// How often state is saved to `state_file` when it changed, in seconds.
    pub state_save_interval_secs: u64,
    /// `import_group_msg` / `import_group_member` time checks as documented: a message's `SendTime` must be
    /// strictly later than the group's latest message and its creation, a member's `JoinTime` strictly later than
    /// the creation. `false` also accepts equal seconds.
    pub strict_import_times: bool,
    /// Join and leave notices of live member changes consume a group `MsgSeq`, as IM does by default.
    pub member_notices_consume_seq: bool,
    /// Accept the legacy `SyncFromOldSystem = 1` on `importmsg` (treated like 5, live). Off: only 2 and 5.
    pub accept_legacy_sync_from_old_system: bool,
    /// Maximum number of accounts (70398 beyond it); `None` = unlimited. The trial plan has 100.
    pub max_accounts: Option<u64>,
}

/// Batch sizes, page sizes and field lengths the emulator enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Accounts per `multiaccount_import` call.
    pub multiaccount_import_max: usize,
    /// Items per `account_check` call.
    pub account_check_max: usize,
    /// Users per `portrait_get` call.
    pub portrait_get_max: usize,
    /// Items per `friend_import` call (UNCONFIRMED: believed 100).
    pub friend_import_max: usize,
    /// Friends per user.
    pub friends_per_user_max: usize,
    /// Friends per `friend_get` page (UNCONFIRMED: undocumented).
    pub friend_get_page_size: usize,
    /// Peers per `get_c2c_unread_msg_num` call.
    pub c2c_unread_peers_max: usize,
    /// Members per `import_group_member` call (current CN doc 100, older English doc 300).
    pub import_group_member_max: usize,
    /// Messages per `import_group_msg` call.
    pub import_group_msg_max: usize,
    /// Initial members per `create_group` call (sample 100, some SDKs 500).
    pub create_group_members_max: usize,
    /// Members per `add_group_member` call (current CN doc 20, English doc 300).
    pub add_group_member_max: usize,
    /// Members per `delete_group_member` call.
    pub delete_group_member_max: usize,
    /// Groups per `get_group_info` call.
    pub get_group_info_max: usize,
    /// Largest `Limit` of `get_group_member_info`.
    pub group_member_page_max: usize,
    /// Largest `Limit` of `get_appid_group_list`.
    pub group_list_page_max: usize,
    /// Most messages one `group_msg_get_simple` answer holds.
    pub group_msg_page_max: usize,
    /// Byte budget of one `admin_getroammsg` answer's message list, in bytes (~13 KB in IM).
    pub roam_page_max_bytes: usize,
    /// Largest message (compact JSON of `MsgBody` plus `CloudCustomData`) for sendmsg, importmsg and
    /// send_group_msg, in bytes; beyond it 93000.
    pub msg_body_max_bytes: usize,
    /// Largest message of `import_group_msg`, in bytes; beyond it the item fails with 80002.
    pub import_group_msg_body_max_bytes: usize,
    /// Largest profile string value (nick, signature, custom tags), in bytes; beyond it 40601.
    pub profile_value_max_bytes: usize,
    /// Largest group name, in bytes (SDK docs: 30).
    pub group_name_max_bytes: usize,
    /// Largest group introduction, in bytes (SDK docs: 240).
    pub group_introduction_max_bytes: usize,
    /// Largest group notification, in bytes (SDK docs: 300).
    pub group_notification_max_bytes: usize,
    /// Largest group face URL, in bytes (SDK docs: 100).
    pub group_face_url_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            multiaccount_import_max: 100,
            account_check_max: 100,
            portrait_get_max: 100,
            friend_import_max: 100,
            friends_per_user_max: 3000,
            friend_get_page_size: 100,
            c2c_unread_peers_max: 10,
            import_group_member_max: 100,
            import_group_msg_max: 7,
            create_group_members_max: 100,
            add_group_member_max: 20,
            delete_group_member_max: 100,
            get_group_info_max: 50,
            group_member_page_max: 200,
            group_list_page_max: 10000,
            group_msg_page_max: 20,
            roam_page_max_bytes: 13 * 1024,
            msg_body_max_bytes: 8 * 1024,
            import_group_msg_body_max_bytes: 8000,
            profile_value_max_bytes: 500,
            group_name_max_bytes: 30,
            group_introduction_max_bytes: 240,
            group_notification_max_bytes: 300,
            group_face_url_max_bytes: 100,
        }
    }
}

/// The key used in every official README; handy for tests and the demo, never for a real app.
pub const DEMO_SECRET_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            sdkappid: 1_400_000_000,
            secret_key: DEMO_SECRET_KEY.to_owned(),
            admin_identifiers: vec!["administrator".to_owned()],
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            callback_url: None,
            callback_token: None,
            enabled_callbacks: None,
            callback_timeout_ms: 2000,
            callback_concurrency: 8,
            faults: Faults::default(),
            rate_limits_enabled: true,
            rate_limit_overrides: BTreeMap::new(),
            limits: Limits::default(),
            retention_secs: None,
            state_file: None,
            state_save_interval_secs: 5,
            strict_import_times: true,
            member_notices_consume_seq: true,
            accept_legacy_sync_from_old_system: false,
            max_accounts: None,
        }
    }
}

impl EmulatorConfig {
    /// Checks the configuration as a whole; the emulator refuses to start on an invalid one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.sdkappid == 0 {
            return bad("sdkappid must not be 0".into());
        }
        if self.secret_key.is_empty() {
            return bad("secret_key must not be empty".into());
        }
        if self.admin_identifiers.is_empty() || self.admin_identifiers.iter().any(|a| a.is_empty()) {
            return bad("admin_identifiers must list at least one non-empty UserID".into());
        }
        if let Some(url) = &self.callback_url {
            if let Err(e) = reqwest::Url::parse(url) {
                return bad(format!("callback_url {url:?} is not a URL: {e}"));
            }
        }
        if let Some(token) = &self.callback_token {
            // The console accepts tokens of 1 to 128 characters.
            if token.is_empty() || token.len() > 128 {
                return bad("callback_token must be 1 to 128 characters".into());
            }
        }
        if self.callback_timeout_ms == 0 {
            return bad("callback_timeout_ms must be positive".into());
        }
        if self.callback_concurrency == 0 {
            return bad("callback_concurrency must be at least 1 (1 = serial, in operation order)".into());
        }
        self.faults.validate().map_err(Error::Config)?;
        for (key, rate) in &self.rate_limit_overrides {
            if Api::from_key(key).is_none() {
                return bad(format!("rate_limit_overrides: unknown API {key:?} (expected service/command)"));
            }
            if *rate == 0 {
                return bad(format!("rate_limit_overrides: {key} must be at least 1 per second"));
            }
        }
        if self.state_save_interval_secs == 0 {
            return bad("state_save_interval_secs must be positive".into());
        }
        if self.retention_secs == Some(0) {
            return bad("retention_secs must be positive (omit it for unlimited)".into());
        }
        let l = &self.limits;
        let sizes = [
            ("multiaccount_import_max", l.multiaccount_import_max),
            ("account_check_max", l.account_check_max),
            ("portrait_get_max", l.portrait_get_max),
            ("friend_import_max", l.friend_import_max),
            ("friend_get_page_size", l.friend_get_page_size),
            ("c2c_unread_peers_max", l.c2c_unread_peers_max),
            ("import_group_member_max", l.import_group_member_max),
            ("import_group_msg_max", l.import_group_msg_max),
            ("add_group_member_max", l.add_group_member_max),
            ("delete_group_member_max", l.delete_group_member_max),
            ("get_group_info_max", l.get_group_info_max),
            ("group_member_page_max", l.group_member_page_max),
            ("group_list_page_max", l.group_list_page_max),
            ("group_msg_page_max", l.group_msg_page_max),
            ("roam_page_max_bytes", l.roam_page_max_bytes),
            ("msg_body_max_bytes", l.msg_body_max_bytes),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("limits.{name} must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_a_toml_file_overrides_fields() {
        EmulatorConfig::default().validate().expect("default config is usable");
        let cfg: EmulatorConfig = toml::from_str(
            r#"
            sdkappid = 1400000001
            admin_identifiers = ["admin", "ops"]
            listen = "127.0.0.1:8081"
            callback_url = "http://127.0.0.1:8080/im/callback"
            callback_token = "secret"
            enabled_callbacks = ["C2C.CallbackAfterSendMsg"]
            retention_secs = 604800
            rate_limit_overrides = { "openim/importmsg" = 1000 }
            callback_concurrency = 1
            [limits]
            add_group_member_max = 300
            [faults]
            seed = 42
            callback_drop_ratio = 0.1
            callback_duplicate_ratio = 0.05
            callback_delay_max_ms = 500
            rest_failure_ratio = 0.05
            rest_failure_kinds = ["http_500", "timeout", "60007"]
            rest_failure_apis = ["openim/sendmsg"]
            rest_failure_api_ratios = { "group_open_http_svc/send_group_msg" = 0.5 }
            rest_timeout_ms = 1000
            rest_timeout_applies = false
            "#,
        )
        .expect("parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.sdkappid, 1_400_000_001);
        assert_eq!(cfg.limits.add_group_member_max, 300);
        assert_eq!(cfg.limits.import_group_msg_max, 7, "unlisted limits keep their defaults");
        assert_eq!(cfg.rate_limit_overrides["openim/importmsg"], 1000);
        assert_eq!(cfg.callback_concurrency, 1);
        assert_eq!(cfg.faults.seed, 42);
        assert_eq!(cfg.faults.rest_failure_kinds.len(), 3);
        assert_eq!(cfg.faults.rest_failure_api_ratios["group_open_http_svc/send_group_msg"], 0.5);
        assert!(!cfg.faults.rest_timeout_applies);
        assert_eq!(cfg.faults.callback_delay_ratio, 1.0, "unlisted fault keys keep their defaults");
        assert_eq!(EmulatorConfig::default().callback_concurrency, 8);
        assert!(toml::from_str::<EmulatorConfig>("[faults]\nrest_failure_kinds = [\"http_503\"]").is_err());
        assert!(toml::from_str::<EmulatorConfig>("no_such_field = 1").is_err(), "unknown fields are refused");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut c = EmulatorConfig::default();
        c.rate_limit_overrides.insert("openim/sendmsg".into(), 0);
        assert!(c.validate().is_err());
        let c = EmulatorConfig { callback_url: Some("not a url".into()), ..EmulatorConfig::default() };
        assert!(c.validate().is_err());
        let c = EmulatorConfig { retention_secs: Some(0), ..EmulatorConfig::default() };
        assert!(c.validate().is_err());
        let c = EmulatorConfig { callback_concurrency: 0, ..EmulatorConfig::default() };
        assert!(c.validate().is_err());
        let mut c = EmulatorConfig::default();
        c.faults.callback_drop_ratio = 2.0;
        assert!(c.validate().is_err());
    }
}
