//! Per-API frequency limits (error 60007): one token bucket per API, refilled at the API's rate with a burst of
//! one second's worth, as IM's "N calls per second per SDKAppID" suggests. Time is the monotonic clock, not the
//! emulated one: advancing the emulated clock must not hand out tokens.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use crate::api::Api;
use crate::config::EmulatorConfig;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The limits of every API.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    enabled: bool,
    rates: HashMap<Api, f64>,
    buckets: Mutex<HashMap<Api, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(cfg: &EmulatorConfig) -> Self {
        let rates = Api::ALL
            .iter()
            .map(|api| {
                let rate = cfg.rate_limit_overrides.get(api.key()).copied().unwrap_or(api.default_rate_per_sec());
                (*api, f64::from(rate))
            })
            .collect();
        Self { enabled: cfg.rate_limits_enabled, rates, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `api`; `false` means the call is over the limit.
    pub(crate) fn try_acquire(&self, api: Api) -> bool {
        if !self.enabled {
            return true;
        }
        let rate = self.rates.get(&api).copied().unwrap_or(200.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(api).or_insert(Bucket { tokens: rate, last: now });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
