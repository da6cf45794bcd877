//! Fault injection: what a real IM does to the app backend on a bad day, on purpose and reproducibly.
//!
//! - **Callbacks** (after-callbacks only): each one about to be queued is dropped (never sent), delivered twice,
//!   or delivered once, and each copy that is sent may wait a random delay first (which reorders them).
//! - **REST calls**: a fraction of the calls to the chosen APIs fails with HTTP 500 (a plain-text body), a
//!   "timeout" (the request is held for `rest_timeout_ms`, then the connection is closed without an answer) or
//!   IM's frequency-limit error 60007 (HTTP 200, `ActionStatus: FAIL`).
//!
//! Decisions come from two seeded random streams (`seed`), one for callbacks and one for REST calls, so the same
//! seed and the same sequence of operations give the same decisions. Callback decisions are drawn when the
//! callback is queued — under the state lock, so in operation order — never at delivery, so concurrent delivery
//! does not change them; every callback draws the same number of values whatever the ratios are. REST decisions
//! are drawn in the order calls reach the fault check, so they are reproducible for calls made one at a time.
//! Replacing the faults at run time ([`Injector::set`]) restarts both streams from the new `seed`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::api::Api;

/// How an injected REST failure looks to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RestFailureKind {
    /// HTTP 500 with a plain-text body; the call changed nothing.
    #[serde(rename = "http_500")]
    Http500,
    /// The request is held for `rest_timeout_ms`, then the connection is closed without an answer. Whether the
    /// call changed state first is `rest_timeout_applies`.
    #[serde(rename = "timeout")]
    Timeout,
    /// HTTP 200 with IM's frequency-limit error 60007; the call changed nothing.
    #[serde(rename = "60007")]
    RateLimited,
}

impl RestFailureKind {
    /// Every kind, in the order of the documentation.
    pub const ALL: &'static [RestFailureKind] =
        &[RestFailureKind::Http500, RestFailureKind::Timeout, RestFailureKind::RateLimited];

    /// The name used in configuration, flags and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            RestFailureKind::Http500 => "http_500",
            RestFailureKind::Timeout => "timeout",
            RestFailureKind::RateLimited => "60007",
        }
    }

    /// Parses a configuration name (`http_500`, `timeout`, `60007`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RestFailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RestFailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unknown REST failure kind {s:?} (expected http_500, timeout or 60007)"))
    }
}

/// The faults to inject: the `[faults]` table of the emulator's TOML, the body of `GET`/`PUT /emulator/faults`,
/// and the `--fault-*`, `--callback-*-ratio`, `--rest-*` flags of `imbridge emulate im`. The default injects
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of both random streams (callbacks, REST calls).
    pub seed: u64,
    /// Fraction of after-callbacks never sent (0.0–1.0).
    pub callback_drop_ratio: f64,
    /// Fraction of after-callbacks sent twice (0.0–1.0; with the drop ratio at most 1.0 in total).
    pub callback_duplicate_ratio: f64,
    /// Fraction of sent callback copies that wait a random delay before sending (0.0–1.0); only matters when
    /// `callback_delay_max_ms` is positive.
    pub callback_delay_ratio: f64,
    /// Largest delay of a delayed callback copy, in milliseconds (uniform in 1..=max); 0 = no delays.
    pub callback_delay_max_ms: u64,
    /// Fraction of REST calls that fail, for the APIs in `rest_failure_apis` (0.0–1.0).
    pub rest_failure_ratio: f64,
    /// How an injected REST failure looks, chosen uniformly per failure among these (`http_500`, `timeout`,
    /// `60007`).
    pub rest_failure_kinds: Vec<RestFailureKind>,
    /// APIs (`service/command`) `rest_failure_ratio` applies to; empty = every REST API.
    pub rest_failure_apis: Vec<String>,
    /// Per-API failure ratios replacing `rest_failure_ratio` for those APIs, whether or not they are listed in
    /// `rest_failure_apis` (e.g. `{ "openim/sendmsg" = 0.5 }`).
    pub rest_failure_api_ratios: BTreeMap<String, f64>,
    /// How long a `timeout` failure holds the request before closing the connection, in milliseconds. The
    /// default is longer than imbridge's own `request_timeout_ms` (10 s), so the caller times out first.
    pub rest_timeout_ms: u64,
    /// Whether a `timeout` failure applies the call before hanging (UNCONFIRMED what IM does; a timed-out call
    /// may well have been applied, so `true`, the harsher choice, is the default). `http_500` and `60007` never
    /// apply.
    pub rest_timeout_applies: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 0,
            callback_drop_ratio: 0.0,
            callback_duplicate_ratio: 0.0,
            callback_delay_ratio: 1.0,
            callback_delay_max_ms: 0,
            rest_failure_ratio: 0.0,
            rest_failure_kinds: RestFailureKind::ALL.to_vec(),
            rest_failure_apis: Vec::new(),
            rest_failure_api_ratios: BTreeMap::new(),
            rest_timeout_ms: 15_000,
            rest_timeout_applies: true,
        }
    }
}

impl Faults {
    /// Checks the fault set as a whole; the reason names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let ratio = |name: &str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("faults.{name} must be between 0.0 and 1.0, got {v}"))
            }
        };
        ratio("callback_drop_ratio", self.callback_drop_ratio)?;
        ratio("callback_duplicate_ratio", self.callback_duplicate_ratio)?;
        ratio("callback_delay_ratio", self.callback_delay_ratio)?;
        ratio("rest_failure_ratio", self.rest_failure_ratio)?;
        if self.callback_drop_ratio + self.callback_duplicate_ratio > 1.0 {
            return Err("faults.callback_drop_ratio + faults.callback_duplicate_ratio must not exceed 1.0".into());
        }
        let known = |key: &str| Api::from_key(key).is_some_and(Api::is_rest);
        for key in &self.rest_failure_apis {
            if !known(key) {
                return Err(format!("faults.rest_failure_apis: unknown REST API {key:?} (expected service/command)"));
            }
        }
        for (key, v) in &self.rest_failure_api_ratios {
            if !known(key) {
                return Err(format!(
                    "faults.rest_failure_api_ratios: unknown REST API {key:?} (expected service/command)"
                ));
            }
            ratio(&format!("rest_failure_api_ratios.{key}"), *v)?;
        }
        let fails = self.rest_failure_ratio > 0.0 || self.rest_failure_api_ratios.values().any(|v| *v > 0.0);
        if fails && self.rest_failure_kinds.is_empty() {
            return Err("faults.rest_failure_kinds must list at least one kind when REST calls fail".into());
        }
        if self.rest_timeout_ms == 0 {
            return Err("faults.rest_timeout_ms must be positive".into());
        }
        Ok(())
    }

    /// The failure ratio of one API.
    fn rest_ratio(&self, api: Api) -> f64 {
        if let Some(r) = self.rest_failure_api_ratios.get(api.key()) {
            return *r;
        }
        if self.rest_failure_apis.is_empty() || self.rest_failure_apis.iter().any(|k| k == api.key()) {
            self.rest_failure_ratio
        } else {
            0.0
        }
    }
}

/// What happens to one after-callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallbackFate {
    /// One entry per copy to send, its delay in milliseconds (0 = none): empty = dropped, two = duplicated.
    pub(crate) copies: Vec<u64>,
}

/// A REST failure to inject into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestFault {
    pub(crate) kind: RestFailureKind,
    /// For a timeout: how long to hold the request.
    pub(crate) hold_ms: u64,
    /// For a timeout: apply the call before hanging.
    pub(crate) applies: bool,
}

struct Streams {
    faults: Faults,
    callbacks: StdRng,
    rest: StdRng,
}

impl Streams {
    fn new(faults: Faults) -> Self {
        // Two streams from one seed, so REST traffic does not shift callback decisions and vice versa.
        let callbacks = StdRng::seed_from_u64(faults.seed);
        let rest = StdRng::seed_from_u64(faults.seed ^ 0x5eed_0f4e_57ca_1100);
        Self { faults, callbacks, rest }
    }
}

/// The live fault set and its random streams, shared by the callback dispatcher and the REST pipeline.
pub(crate) struct Injector {
    inner: Mutex<Streams>,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector").field("faults", &self.inner.lock().faults).finish_non_exhaustive()
    }
}

impl Injector {
    pub(crate) fn new(faults: Faults) -> Self {
        Self { inner: Mutex::new(Streams::new(faults)) }
    }

    /// The faults in force.
    pub(crate) fn get(&self) -> Faults {
        self.inner.lock().faults.clone()
    }

    /// Replaces the faults and restarts both streams from the new seed.
    pub(crate) fn set(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *self.inner.lock() = Streams::new(faults);
        Ok(())
    }

    /// Decides the fate of the next after-callback. Always draws five values, so one callback's decision
    /// depends only on the seed and how many callbacks came before it.
    pub(crate) fn callback(&self) -> CallbackFate {
        let mut s = self.inner.lock();
        let fate: f64 = s.callbacks.random();
        let draws: [f64; 4] = [s.callbacks.random(), s.callbacks.random(), s.callbacks.random(), s.callbacks.random()];
        let f = &s.faults;
        let copies = if fate < f.callback_drop_ratio {
            0
        } else if fate < f.callback_drop_ratio + f.callback_duplicate_ratio {
            2
        } else {
            1
        };
        let delay = |pick: f64, amount: f64| {
            if f.callback_delay_max_ms > 0 && pick < f.callback_delay_ratio {
                // 1..=max, so "delayed" always means a real wait.
                (1 + (amount * f.callback_delay_max_ms as f64) as u64).min(f.callback_delay_max_ms)
            } else {
                0
            }
        };
        let all = [delay(draws[0], draws[1]), delay(draws[2], draws[3])];
        CallbackFate { copies: all[..copies].to_vec() }
    }

    /// Decides whether one REST call to `api` fails, and how. Draws only for APIs with a positive ratio.
    pub(crate) fn rest(&self, api: Api) -> Option<RestFault> {
        let mut s = self.inner.lock();
        let ratio = s.faults.rest_ratio(api);
        if ratio <= 0.0 || s.faults.rest_failure_kinds.is_empty() {
            return None;
        }
        let fail: f64 = s.rest.random();
        let which: f64 = s.rest.random();
        if fail >= ratio {
            return None;
        }
        let kinds = &s.faults.rest_failure_kinds;
        let kind = kinds[((which * kinds.len() as f64) as usize).min(kinds.len() - 1)];
        Some(RestFault { kind, hold_ms: s.faults.rest_timeout_ms, applies: s.faults.rest_timeout_applies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_defaults_inject_nothing() {
        for k in RestFailureKind::ALL {
            assert_eq!(RestFailureKind::parse(k.as_str()), Some(*k));
            assert_eq!(serde_json::to_value(k).expect("json"), serde_json::json!(k.as_str()));
        }
        let d = Faults::default();
        d.validate().expect("default faults are valid");
        let inj = Injector::new(d);
        for _ in 0..1000 {
            assert_eq!(inj.callback().copies, [0]);
            assert_eq!(inj.rest(Api::SendMsg), None);
        }
    }

    #[test]
    fn invalid_faults_are_refused() {
        let bad = [
            Faults { callback_drop_ratio: 1.5, ..Faults::default() },
            Faults { callback_drop_ratio: 0.6, callback_duplicate_ratio: 0.6, ..Faults::default() },
            Faults { rest_failure_ratio: f64::NAN, ..Faults::default() },
            Faults { rest_failure_apis: vec!["openim/nope".into()], ..Faults::default() },
            Faults { rest_failure_apis: vec!["group_open_http_svc/quit_group".into()], ..Faults::default() },
            Faults { rest_failure_ratio: 0.1, rest_failure_kinds: vec![], ..Faults::default() },
            Faults { rest_timeout_ms: 0, ..Faults::default() },
        ];
        for f in bad {
            assert!(f.validate().is_err(), "{f:?}");
        }
    }

    #[test]
    fn same_seed_same_decisions_and_ratios_hold() {
        let f = Faults {
            seed: 7,
            callback_drop_ratio: 0.1,
            callback_duplicate_ratio: 0.05,
            callback_delay_max_ms: 500,
            rest_failure_ratio: 0.2,
            rest_failure_apis: vec!["openim/sendmsg".into()],
            ..Faults::default()
        };
        let (a, b) = (Injector::new(f.clone()), Injector::new(f.clone()));
        let fates: Vec<_> = (0..10_000).map(|_| a.callback()).collect();
        assert_eq!(fates, (0..10_000).map(|_| b.callback()).collect::<Vec<_>>());
        let dropped = fates.iter().filter(|f| f.copies.is_empty()).count();
        let doubled = fates.iter().filter(|f| f.copies.len() == 2).count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        assert!((350..650).contains(&doubled), "{doubled}");
        assert!(fates.iter().flat_map(|f| &f.copies).all(|d| (1..=500).contains(d)));
        // Only the listed API fails; other APIs draw nothing, so they do not shift the stream.
        assert_eq!(a.rest(Api::PortraitGet), None);
        let fails = (0..10_000).filter(|_| a.rest(Api::SendMsg).is_some()).count();
        assert!((1700..2300).contains(&fails), "{fails}");
        // A new seed restarts the streams.
        a.set(Faults { seed: 8, ..f.clone() }).expect("set");
        let other: Vec<_> = (0..100).map(|_| a.callback()).collect();
        a.set(f).expect("set");
        let again: Vec<_> = (0..100).map(|_| a.callback()).collect();
        assert_eq!(again, fates[..100]);
        assert_ne!(other, again);
    }
}
