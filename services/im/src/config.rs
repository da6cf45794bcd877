//! [`ImConfig`]: how to reach and authenticate to one IM application, and how hard to push it.
//!
//! Region base URLs (reference §1.1; the SDKAppID's data centre decides which one answers):
//!
//! | region | base_url | backup |
//! |---|---|---|
//! | China | `https://console.tim.qq.com` | `https://adminapi.my-imcloud.com` |
//! | Singapore | `https://adminapisgp.im.qcloud.com` | `https://adminapisgp.my-imcloud.com` |
//! | Seoul | `https://adminapikr.im.qcloud.com` | `https://adminapikr.my-imcloud.com` |
//! | Tokyo | `https://adminapijpn.im.qcloud.com` | – |
//! | Frankfurt | `https://adminapiger.im.qcloud.com` | `https://adminapiger.my-imcloud.com` |
//! | Mumbai | `https://adminapiind.im.qcloud.com` | `https://adminapiind.my-imcloud.com` |
//! | Silicon Valley | `https://adminapiusa.im.qcloud.com` | `https://adminapiusa.my-imcloud.com` |
//! | Jakarta | `https://adminapiidn.im.qcloud.com` | `https://adminapiidn.my-imcloud.com` |
//!
//! Tests and the demo point `base_url` at the emulator (`http://127.0.0.1:PORT`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::Api;
use crate::error::ImError;
use crate::quota::QuotaConfig;

/// Connection, identity and pacing of the IM client.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImConfig {
    /// Scheme and host of the REST API for the app's region (see the module docs), without `/v4`.
    pub base_url: String,
    /// The application's SDKAppID.
    pub sdkappid: u64,
    /// An App admin account; every REST call is made as this identity and callbacks it causes are echoes.
    pub admin_identifier: String,
    /// The console secret key (64 hex chars), used as-is to sign UserSigs.
    pub secret_key: String,
    /// Lifetime of the admin UserSig the client signs, in seconds; it is renewed at 80% of this.
    pub usersig_expire_secs: u64,
    /// Whole-request timeout (connect, send, wait, read), in milliseconds.
    pub request_timeout_ms: u64,
    /// TCP/TLS connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How the client retries retryable failures before returning them.
    pub retry: RetryConfig,
    /// Per-API call rates overriding the documented defaults, keyed by API name (e.g. `importmsg = 50`).
    /// A number is calls per second (fractions allowed); `0` or `"off"` disables limiting for that API.
    pub rate_limits: BTreeMap<Api, RateSetting>,
    /// The fraction of each of [`RECONCILE_APIS`]' limits that belongs to `imbridge reconcile` (0 < share < 1).
    /// Every other part paces those APIs at the rest, so reconciliation can never push live sync into 60007;
    /// reconcile paces itself at this share (divided among its instances).
    pub reconcile_quota_share: f64,
    /// `[im.quota]`: sharing each quota with every other imbridge process of the app (`docs/quotas.md`).
    pub quota: QuotaConfig,
}

/// The read APIs reconciliation calls; their quotas are split between reconcile and everything else.
pub const RECONCILE_APIS: [Api; 8] = [
    Api::RecentContactGetList,
    Api::AdminGetRoamMsg,
    Api::GetGroupInfo,
    Api::GroupMsgGetSimple,
    Api::GetGroupMemberInfo,
    Api::GetAppidGroupList,
    Api::AccountCheck,
    Api::PortraitGet,
];

impl Default for ImConfig {
    fn default() -> Self {
        Self {
            base_url: "https://console.tim.qq.com".into(),
            sdkappid: 0,
            admin_identifier: "administrator".into(),
            secret_key: String::new(),
            usersig_expire_secs: 86_400,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            retry: RetryConfig::default(),
            rate_limits: BTreeMap::new(),
            reconcile_quota_share: 0.1,
            quota: QuotaConfig::default(),
        }
    }
}

impl fmt::Debug for ImConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret key signs admin credentials: never let it reach a log line.
        f.debug_struct("ImConfig")
            .field("base_url", &self.base_url)
            .field("sdkappid", &self.sdkappid)
            .field("admin_identifier", &self.admin_identifier)
            .field("secret_key", &"<redacted>")
            .field("usersig_expire_secs", &self.usersig_expire_secs)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("retry", &self.retry)
            .field("rate_limits", &self.rate_limits)
            .field("reconcile_quota_share", &self.reconcile_quota_share)
            .field("quota", &self.quota)
            .finish()
    }
}

impl ImConfig {
    /// The whole app's quota of `api`: the configured override, else the documented limit.
    pub fn quota_for(&self, api: Api) -> RateSetting {
        self.rate_limits.get(&api).copied().unwrap_or(RateSetting::PerSec(api.documented_rate_per_sec()))
    }

    /// The rate every part but reconcile starts with for `api`: the quota, less reconcile's share of the
    /// [`RECONCILE_APIS`].
    pub fn rate_for(&self, api: Api) -> RateSetting {
        self.scaled(api, 1.0 - self.reconcile_share(api))
    }

    /// The rate all of reconcile's instances together may use for `api` (its share; nothing for other APIs).
    pub fn reconcile_rate_for(&self, api: Api) -> RateSetting {
        self.scaled(api, self.reconcile_share(api))
    }

    fn reconcile_share(&self, api: Api) -> f64 {
        if RECONCILE_APIS.contains(&api) { self.reconcile_quota_share } else { 0.0 }
    }

    fn scaled(&self, api: Api, by: f64) -> RateSetting {
        match self.quota_for(api) {
            RateSetting::PerSec(r) if r > 0.0 && by < 1.0 => RateSetting::PerSec(r * by),
            other => other,
        }
    }

    /// Checks the configuration as a whole.
    pub fn validate(&self) -> Result<(), ImError> {
        let bad = |m: String| Err(ImError::Config(m));
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => return bad(format!("base_url scheme {:?} is not http or https", u.scheme())),
            Err(e) => return bad(format!("base_url {:?}: {e}", self.base_url)),
        }
        if self.sdkappid == 0 {
            return bad("sdkappid is not set".into());
        }
        if self.admin_identifier.is_empty() || self.admin_identifier.len() > 32 {
            return bad("admin_identifier must be 1 to 32 bytes".into());
        }
        if self.secret_key.is_empty() {
            return bad("secret_key is not set".into());
        }
        // IM recommends at least a day; below a minute the cache would re-sign on nearly every call.
        if self.usersig_expire_secs < 60 {
            return bad("usersig_expire_secs must be at least 60".into());
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("request_timeout_ms and connect_timeout_ms must be positive".into());
        }
        self.retry.validate()?;
        if !(self.reconcile_quota_share > 0.0 && self.reconcile_quota_share < 1.0) {
            return bad(format!("reconcile_quota_share {} must be above 0 and below 1", self.reconcile_quota_share));
        }
        self.quota.validate().map_err(ImError::Config)?;
        for (api, rate) in &self.rate_limits {
            let invalid = matches!(rate, RateSetting::PerSec(r) if !r.is_finite() || *r < 0.0);
            if invalid {
                return bad(format!("rate_limits.{api} must be a non-negative number or \"off\""));
            }
        }
        Ok(())
    }
}

/// Retry policy for retryable failures (frequency limits, timeouts, 5xx, IM internal errors).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Total attempts per call, the first one included; 1 disables retrying.
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubles on each further retry.
    pub base_backoff_ms: u64,
    /// Upper bound of one backoff, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { max_attempts: 5, base_backoff_ms: 200, max_backoff_ms: 10_000 }
    }
}

impl RetryConfig {
    fn validate(&self) -> Result<(), ImError> {
        if self.max_attempts == 0 {
            return Err(ImError::Config("retry.max_attempts must be at least 1".into()));
        }
        if self.base_backoff_ms > self.max_backoff_ms {
            return Err(ImError::Config("retry.base_backoff_ms exceeds retry.max_backoff_ms".into()));
        }
        Ok(())
    }

    /// The ceiling of the backoff before retry number `retry` (1-based): `base * 2^(retry-1)`, capped.
    /// The client sleeps a uniformly random time up to this ("full jitter"), so instances that hit a
    /// frequency limit together do not come back together.
    pub fn backoff_ceiling_ms(&self, retry: u32) -> u64 {
        let shift = retry.saturating_sub(1).min(32);
        self.base_backoff_ms.saturating_mul(1u64 << shift).min(self.max_backoff_ms)
    }
}

/// A call rate for one API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSetting {
    /// Calls per second; fractions allowed (a scaled consumer group gives each instance a share).
    PerSec(f64),
    /// No client-side limit.
    Off,
}

impl RateSetting {
    /// `Some(rate)` when limiting is on.
    pub fn per_sec(self) -> Option<f64> {
        match self {
            RateSetting::PerSec(r) if r > 0.0 && r.is_finite() => Some(r),
            _ => None,
        }
    }
}

impl Serialize for RateSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.per_sec() {
            Some(r) => s.serialize_f64(r),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(0.0) => Ok(RateSetting::Off),
            Raw::Num(r) => Ok(RateSetting::PerSec(r)),
            Raw::Str(s) if s.eq_ignore_ascii_case("off") => Ok(RateSetting::Off),
            Raw::Str(s) => Err(serde::de::Error::custom(format!("rate {s:?} is neither a number nor \"off\""))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_rate_overrides() {
        let cfg: ImConfig = toml::from_str(
            r#"
            base_url = "http://127.0.0.1:9"
            sdkappid = 1400000000
            secret_key = "k"
            [retry]
            max_attempts = 3
            [rate_limits]
            importmsg = 50
            sendmsg = "off"
            friend_get = 0
            get_appid_group_list = 0.5
            "#,
        )
        .expect("valid toml");
        cfg.validate().expect("valid config");
        assert_eq!(cfg.admin_identifier, "administrator");
        assert_eq!(cfg.retry.max_attempts, 3);
        assert_eq!(cfg.retry.base_backoff_ms, 200);
        assert_eq!(cfg.rate_for(Api::ImportMsg), RateSetting::PerSec(50.0));
        assert_eq!(cfg.rate_for(Api::SendMsg), RateSetting::Off);
        assert_eq!(cfg.rate_for(Api::FriendGet), RateSetting::Off);
        assert_eq!(cfg.quota_for(Api::GetAppidGroupList).per_sec(), Some(0.5));
        // A read API: reconcile's share (0.1 by default) is kept out of everyone else's rate.
        assert!((cfg.rate_for(Api::GetAppidGroupList).per_sec().unwrap_or(0.0) - 0.45).abs() < 1e-9);
        assert_eq!(cfg.rate_for(Api::MultiAccountImport).per_sec(), Some(100.0));
        assert!(!format!("{cfg:?}").contains("\"k\""), "secret must be redacted");
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ImConfig::default().validate().is_err(), "no sdkappid");
        let ok = ImConfig { sdkappid: 1, secret_key: "k".into(), ..ImConfig::default() };
        ok.validate().expect("valid");
        assert!(ImConfig { base_url: "ftp://x".into(), ..ok.clone() }.validate().is_err());
        let retry = RetryConfig { max_attempts: 0, ..RetryConfig::default() };
        assert!(ImConfig { retry, ..ok.clone() }.validate().is_err());
        assert!(toml::from_str::<ImConfig>("[rate_limits]\nquit_group = 1").is_err());
        assert!(toml::from_str::<ImConfig>("[rate_limits]\nsendmsg = \"fast\"").is_err());
        assert!(toml::from_str::<ImConfig>("sdkappid = 1\nbogus = 2").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = RetryConfig { max_attempts: 10, base_backoff_ms: 100, max_backoff_ms: 1000 };
        assert_eq!(r.backoff_ceiling_ms(1), 100);
        assert_eq!(r.backoff_ceiling_ms(2), 200);
        assert_eq!(r.backoff_ceiling_ms(4), 800);
        assert_eq!(r.backoff_ceiling_ms(5), 1000);
        assert_eq!(r.backoff_ceiling_ms(80), 1000);
    }

    #[test]
    fn reconcile_has_its_own_share_of_the_read_apis_only() {
        let mut c = ImConfig::default();
        c.rate_limits.insert(Api::GetGroupInfo, RateSetting::PerSec(100.0));
        c.rate_limits.insert(Api::AdminGetRoamMsg, RateSetting::Off);
        let per_sec = |r: RateSetting| r.per_sec().unwrap_or(-1.0);
        assert!((per_sec(c.rate_for(Api::GetGroupInfo)) - 90.0).abs() < 1e-9);
        assert!((per_sec(c.reconcile_rate_for(Api::GetGroupInfo)) - 10.0).abs() < 1e-9);
        // Not a read API: all of it for the others, nothing for reconcile.
        assert_eq!(per_sec(c.rate_for(Api::SendMsg)), 200.0);
        assert_eq!(c.rate_for(Api::AdminGetRoamMsg), RateSetting::Off);
        c.reconcile_quota_share = 1.0;
        c.sdkappid = 1;
        c.secret_key = "k".into();
        assert!(c.validate().is_err());
    }
}
