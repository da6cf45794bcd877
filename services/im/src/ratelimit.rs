//! Client-side rate limiting: one token bucket per [`Api`], shared by every clone of the client.
//!
//! IM counts calls per SDKAppID per API per second and answers 60007 beyond the limit. Pacing calls here,
//! at or under that rate, keeps steady-state callers from ever seeing 60007; the client still retries it
//! when several processes share the quota imperfectly.
//!
//! Calls are spaced evenly at `1/rate`. The bucket holds two tokens, not one: a waiter wakes when its slot
//! comes, but tokio's timer rounds every sleep up to the next millisecond, so with a single token each call
//! would start up to 1 ms late and the lateness would be lost for good (GCRA schedules the next slot from the
//! actual call): measured, 194 calls/s at a quota of 200. The second token lets the schedule, not the wake-up,
//! set the pace, so the long-run rate is the quota while any one-second window holds at most `rate + 1`
//! calls however IM aligns its windows. A burst of `rate` would let a caller emit nearly `2 × rate` in the
//! second straddling an idle period. Rates can be changed at run time (a
//! scaled consumer group hands each instance a share of the quota): the new bucket replaces the old one for
//! calls that start waiting after the change.

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::api::Api;
use crate::config::RateSetting;

/// Tokens a bucket holds: the slot being waited for and one more to absorb timer lateness (module docs).
const BURST: NonZeroU32 = match NonZeroU32::new(2) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Per-API limiters.
#[derive(Debug)]
pub struct RateLimits {
    slots: Vec<RwLock<Slot>>,
}

#[derive(Debug, Clone)]
struct Slot {
    setting: RateSetting,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

fn build(setting: RateSetting) -> Slot {
    let limiter = setting
        .per_sec()
        .and_then(|r| Quota::with_period(Duration::from_secs_f64(1.0 / r)))
        .map(|q| Arc::new(RateLimiter::direct(q.allow_burst(BURST))));
    Slot { setting: if limiter.is_some() { setting } else { RateSetting::Off }, limiter }
}

impl RateLimits {
    /// Limiters at the rates `rate_for` gives for each API.
    pub fn new(rate_for: impl Fn(Api) -> RateSetting) -> Self {
        Self { slots: Api::ALL.iter().map(|a| RwLock::new(build(rate_for(*a)))).collect() }
    }

    fn slot(&self, api: Api) -> Option<&RwLock<Slot>> {
        self.slots.get(api.index())
    }

    /// Changes one API's rate. Calls already waiting finish at the old rate.
    pub fn set(&self, api: Api, setting: RateSetting) {
        if let Some(slot) = self.slot(api) {
            *slot.write().unwrap_or_else(|p| p.into_inner()) = build(setting);
        }
    }

    /// The current rate of one API.
    pub fn get(&self, api: Api) -> RateSetting {
        self.slot(api).map(|s| s.read().unwrap_or_else(|p| p.into_inner()).setting).unwrap_or(RateSetting::Off)
    }

    /// Waits until `api` may be called; returns how long it waited.
    pub async fn acquire(&self, api: Api) -> Duration {
        let limiter = self.slot(api).and_then(|s| s.read().unwrap_or_else(|p| p.into_inner()).limiter.clone());
        let Some(limiter) = limiter else { return Duration::ZERO };
        let start = Instant::now();
        limiter.until_ready().await;
        start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_evenly_and_changes_at_run_time() {
        let limits = RateLimits::new(|a| if a == Api::SendMsg { RateSetting::PerSec(20.0) } else { RateSetting::Off });
        let start = Instant::now();
        for _ in 0..11 {
            limits.acquire(Api::SendMsg).await;
        }
        // 11 calls at 20/s: the first two are free (the lateness token), the next nine are 50 ms apart.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(430), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");

        // Unlimited API never waits.
        let start = Instant::now();
        for _ in 0..1000 {
            limits.acquire(Api::ImportMsg).await;
        }
        assert!(start.elapsed() < Duration::from_millis(100));

        limits.set(Api::SendMsg, RateSetting::Off);
        assert_eq!(limits.get(Api::SendMsg), RateSetting::Off);
        limits.set(Api::ImportMsg, RateSetting::PerSec(0.5));
        assert_eq!(limits.get(Api::ImportMsg), RateSetting::PerSec(0.5));
        limits.acquire(Api::ImportMsg).await;
        limits.acquire(Api::ImportMsg).await;
        let waited = tokio::time::timeout(Duration::from_millis(300), limits.acquire(Api::ImportMsg)).await;
        assert!(waited.is_err(), "the call after the two tokens at 0.5/s must wait about 2 s");
    }
}
