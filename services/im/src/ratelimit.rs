//! Client-side rate limiting: one pacing schedule per [`Api`], shared by every clone of the client.
//!
//! IM counts calls per SDKAppID per API per second and answers 60007 beyond the limit. Pacing calls here,
//! at or under that rate, keeps steady-state callers from ever seeing 60007; the client still retries it
//! when several processes share the quota imperfectly.
//!
//! Each API has a *static* rate (the configuration's, or a partition share of it, set by [`RateLimits::set`]) and
//! optionally a *grant* from the quota coordinator ([`crate::quota`]), which overrides it while coordination
//! works. Calls are spaced evenly at `1/rate` (GCRA: each caller reserves the next slot). The schedule lets
//! `burst` calls through at once, two by default, not one: a waiter wakes when its slot comes, but tokio's
//! timer rounds every sleep up to the next millisecond, so with a single token each call would start up to
//! 1 ms late and the lateness would be lost for good: measured, 194 calls/s at a quota of 200. The second
//! token lets the schedule, not the wake-up, set the pace, so the long-run rate is the quota while any
//! one-second window holds at most `rate + 1` calls. Live traffic is granted a larger burst so that its
//! jitter does not queue behind its own slots (see `docs/quotas.md`).
//!
//! Rates change at run time (the coordinator every second, a consumer group on rebalance). A change wakes
//! every waiter, which reserves a slot again on the new schedule: waiters queued at an old, higher rate must
//! not keep calling at it after the coordinator handed the difference to another process.
//!
//! Every slot also counts what the coordinator needs to estimate demand: calls let through and the total time
//! callers spent waiting.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::api::Api;
use crate::config::RateSetting;

/// Calls a schedule lets through at once unless a grant says otherwise (module docs).
pub const DEFAULT_BURST: f64 = 2.0;

/// Rate changes smaller than this fraction are ignored: rescheduling every waiter for a 0.1% change every
/// second would cost more than it keeps.
const MIN_CHANGE: f64 = 0.005;

/// A rate handed out by the quota coordinator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// Calls per second.
    pub rate: f64,
    /// Calls that may go at once after a quiet spell (at least 1).
    pub burst: f64,
}

/// What one API's schedule has let through since it was created (monotonic counters).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub calls: u64,
    /// Total time callers spent waiting for a slot, in seconds.
    pub waited_secs: f64,
}

/// Per-API schedules.
#[derive(Debug)]
pub struct RateLimits {
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    state: Mutex<Schedule>,
    changed: Notify,
    calls: AtomicU64,
    waited_ns: AtomicU64,
}

#[derive(Debug)]
struct Schedule {
    setting: RateSetting,
    grant: Option<Grant>,
    /// Theoretical arrival time of the next call (GCRA).
    tat: Instant,
}

impl Schedule {
    fn effective(&self) -> Option<(f64, f64)> {
        match self.grant {
            // A grant is never "unlimited": a rate of 0 (or garbage) paces at the slowest rate instead.
            Some(g) => Some((if g.rate.is_finite() { g.rate.max(1e-3) } else { 1e-3 }, g.burst.max(1.0))),
            None => self.setting.per_sec().map(|r| (r, DEFAULT_BURST)),
        }
    }

    /// Applies `f` and reschedules the waiters when the effective rate moved by more than [`MIN_CHANGE`].
    fn change(&mut self, f: impl FnOnce(&mut Self)) -> bool {
        let before = self.effective();
        f(self);
        let after = self.effective();
        let moved = match (before, after) {
            (Some((a, ab)), Some((b, bb))) => (a - b).abs() > MIN_CHANGE * a || ab != bb,
            (None, None) => false,
            _ => true,
        };
        if moved {
            self.tat = self.tat.min(Instant::now());
        }
        moved
    }

    /// Reserves the next slot: `None` when calls are not limited.
    fn reserve(&mut self, now: Instant) -> Option<Instant> {
        let (rate, burst) = self.effective()?;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let tolerance = interval.mul_f64(burst - 1.0);
        let tat = self.tat.max(now);
        let slot = now.max(tat.checked_sub(tolerance).unwrap_or(now));
        self.tat = tat + interval;
        Some(slot)
    }
}

impl RateLimits {
    /// Schedules at the rates `rate_for` gives for each API.
    pub fn new(rate_for: impl Fn(Api) -> RateSetting) -> Self {
        let now = Instant::now();
        let slots = Api::ALL
            .iter()
            .map(|a| Slot {
                state: Mutex::new(Schedule { setting: rate_for(*a), grant: None, tat: now }),
                changed: Notify::new(),
                calls: AtomicU64::new(0),
                waited_ns: AtomicU64::new(0),
            })
            .collect();
        Self { slots }
    }

    fn slot(&self, api: Api) -> Option<&Slot> {
        self.slots.get(api.index())
    }

    fn change(&self, api: Api, f: impl FnOnce(&mut Schedule)) {
        if let Some(slot) = self.slot(api) {
            let moved = slot.state.lock().unwrap_or_else(|p| p.into_inner()).change(f);
            if moved {
                slot.changed.notify_waiters();
            }
        }
    }

    /// Changes one API's static rate (used whenever no grant is in force).
    pub fn set(&self, api: Api, setting: RateSetting) {
        self.change(api, |s| s.setting = setting);
    }

    /// Puts a coordinator's grant in force for one API (`None`: back to the static rate).
    pub fn grant(&self, api: Api, grant: Option<Grant>) {
        self.change(api, |s| s.grant = grant);
    }

    /// The static rate of one API.
    pub fn get(&self, api: Api) -> RateSetting {
        self.slot(api).map(|s| s.state.lock().unwrap_or_else(|p| p.into_inner()).setting).unwrap_or(RateSetting::Off)
    }

    /// The rate in force for one API: the grant if there is one, else the static rate.
    pub fn effective(&self, api: Api) -> RateSetting {
        let eff = self.slot(api).and_then(|s| s.state.lock().unwrap_or_else(|p| p.into_inner()).effective());
        eff.map_or(RateSetting::Off, |(r, _)| RateSetting::PerSec(r))
    }

    /// Calls and waiting so far for one API.
    pub fn usage(&self, api: Api) -> Usage {
        self.slot(api).map_or(Usage::default(), |s| Usage {
            calls: s.calls.load(Ordering::Relaxed),
            waited_secs: s.waited_ns.load(Ordering::Relaxed) as f64 / 1e9,
        })
    }

    /// Waits until `api` may be called; returns how long it waited.
    pub async fn acquire(&self, api: Api) -> Duration {
        let Some(slot) = self.slot(api) else { return Duration::ZERO };
        let start = Instant::now();
        loop {
            // Register for change notices before reserving, so a change between the two is not missed.
            let notified = slot.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let reserved = {
                let mut s = slot.state.lock().unwrap_or_else(|p| p.into_inner());
                s.reserve(now)
            };
            let Some(at) = reserved else { break };
            if at <= now {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => break,
                // The rate changed: the reservation is void (the change reset the schedule); reserve again.
                _ = &mut notified => {}
            }
        }
        let waited = start.elapsed();
        slot.calls.fetch_add(1, Ordering::Relaxed);
        slot.waited_ns.fetch_add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        waited
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        assert_eq!(limits.usage(Api::SendMsg).calls, 11);
        assert!(limits.usage(Api::SendMsg).waited_secs > 0.3);

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

    #[tokio::test]
    async fn a_grant_overrides_the_static_rate_and_reschedules_waiters() {
        let limits = Arc::new(RateLimits::new(|_| RateSetting::PerSec(0.5)));
        limits.acquire(Api::ImportMsg).await;
        limits.acquire(Api::ImportMsg).await;
        // A waiter queued at 0.5/s (about 2 s away) goes as soon as a much higher grant arrives.
        let waiter = tokio::spawn({
            let l = limits.clone();
            async move { l.acquire(Api::ImportMsg).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        limits.grant(Api::ImportMsg, Some(Grant { rate: 1000.0, burst: 5.0 }));
        // Well under the ≈ 1.95 s the old rate would make it wait, with room for a loaded machine.
        let waited = tokio::time::timeout(Duration::from_millis(1200), waiter).await;
        assert!(waited.is_ok(), "the waiter must be rescheduled on the new rate");
        assert_eq!(limits.effective(Api::ImportMsg), RateSetting::PerSec(1000.0));
        assert_eq!(limits.get(Api::ImportMsg), RateSetting::PerSec(0.5));
        limits.grant(Api::ImportMsg, None);
        assert_eq!(limits.effective(Api::ImportMsg), RateSetting::PerSec(0.5));
    }
}
