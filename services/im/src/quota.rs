//! One quota per IM API per app, shared by every imbridge process that calls it, with priorities.
//!
//! Every process that calls IM (live to-im instances, reconciliation, the bulk import, exports) runs a
//! [`Coordinator`]: about once a second it measures its own demand for each API it calls, announces it with
//! its [`Priority`] and the rate it currently uses through an [`AllocationSource`] (Kafka in production; the im
//! crate only knows the trait), reads every other instance's latest announcement, and computes the same
//! deterministic allocation as every other instance ([`allocate`]): live demand is served first, then repair,
//! then history takes what is left. Increases wait until the others' decreases are visible ([`step`]), so the
//! sum of the rates in force stays under the quota while the allocation moves. `docs/quotas.md` has the whole
//! design: convergence time, broker outages, dead instances.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::api::Api;
use crate::client::ImClient;
use crate::config::ImConfig;
use crate::ratelimit::{DEFAULT_BURST, Grant, Usage};

/// Who is served first when callers of one API want more than its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Live sync: users are waiting for these calls.
    Live,
    /// Reconciliation: finds and repairs what live sync missed.
    Repair,
    /// Bulk import and exports: history, which can wait.
    History,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::Repair => "repair",
            Priority::History => "history",
        }
    }
}

/// `[im.quota]`: how a process shares IM's quotas with the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Share each API's quota with every other imbridge process of the app through Kafka (the `quota` topic).
    /// Off: each process paces itself at the static rates (`rate_limits`, `reconcile_quota_share`, partition
    /// shares), as if it were alone with its share.
    pub coordinate: bool,
    /// How often an instance announces its demand and recomputes the allocation, in milliseconds.
    pub period_ms: u64,
    /// An announcement older than this is ignored: its instance is taken for dead and its share is handed out.
    pub expire_ms: u64,
    /// The fraction of each quota the instances hand out together; the rest absorbs bursts and the moments
    /// when a newcomer is not yet known to the others.
    pub utilisation: f64,
    /// The fraction of a quota a repair or history instance uses while it knows nothing of the others
    /// (start-up, broker unreachable). Live instances keep their static rate.
    pub startup_share: f64,
    /// What an instance that is not held back asks for beyond what it used: `used × (1 + headroom) + 1`.
    pub headroom: f64,
    /// Live instances may send this many milliseconds' worth of their rate at once, so that bursts of live
    /// traffic do not queue behind their own pacing.
    pub live_burst_ms: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            coordinate: true,
            period_ms: 1000,
            expire_ms: 3500,
            utilisation: 0.98,
            startup_share: 0.05,
            headroom: 0.05,
            live_burst_ms: 200,
        }
    }
}

impl QuotaConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.period_ms < 100 || self.period_ms > 60_000 {
            return Err(format!("quota.period_ms {} must be within 100..=60000", self.period_ms));
        }
        if self.expire_ms < 2 * self.period_ms {
            return Err(format!("quota.expire_ms {} must be at least twice period_ms", self.expire_ms));
        }
        for (name, v) in [("utilisation", self.utilisation), ("startup_share", self.startup_share)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("quota.{name} {v} must be above 0 and at most 1"));
            }
        }
        if !(self.headroom >= 0.0 && self.headroom.is_finite()) {
            return Err(format!("quota.headroom {} must be a non-negative number", self.headroom));
        }
        Ok(())
    }

    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }

    pub fn expire(&self) -> Duration {
        Duration::from_millis(self.expire_ms)
    }
}

/// One instance's demand for one API.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApiDemand {
    pub api: Api,
    /// Calls per second it would use if it could.
    pub want: f64,
    /// Calls per second it paces itself at now.
    pub rate: f64,
}

/// What an instance announces every period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// Unique per process run.
    pub instance: String,
    /// Quotas are per app: instances of other apps are ignored.
    pub sdkappid: u64,
    pub priority: Priority,
    pub demands: Vec<ApiDemand>,
}

/// An announcement as a source saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub announcement: Announcement,
    /// How long ago it was made.
    pub age: Duration,
}

/// Where announcements are published and read: every instance of every part must see the same ones.
pub trait AllocationSource: Send + Sync + 'static {
    /// Publishes `a`, replacing this instance's previous one. Must not block; a lost announcement is replaced
    /// by the next.
    fn announce(&self, a: &Announcement);
    /// The latest announcement of every instance seen, own included; `None` until the source has read what was
    /// announced before it started (so a newcomer does not take the whole quota thinking it is alone).
    fn seen(&self) -> Option<Vec<Seen>>;
    /// Whether [`seen`](Self::seen) would answer; a source that can tell without decoding every announcement
    /// should, as a starting instance asks often.
    fn caught_up(&self) -> bool {
        self.seen().is_some()
    }
}

/// One instance's claim on one API, as the allocation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub instance: String,
    pub priority: Priority,
    pub want: f64,
    /// The rate it paces itself at now.
    pub rate: f64,
}

/// Each claim's target rate (same order as `claims`) out of `capacity` calls per second. Deterministic: the
/// same claims in any order give the same targets.
///
/// Priorities are served in order (live, repair, history). Within a priority, the remaining capacity is shared
/// max-min fairly: nobody gets more than it wants, and those who want more than an equal share split what the
/// others leave. Whatever is left after every claim is satisfied is spread equally over all claims, so an
/// instance whose demand grows finds room at once.
pub fn allocate(capacity: f64, claims: &[Claim]) -> Vec<f64> {
    let mut targets = vec![0.0; claims.len()];
    if claims.is_empty() {
        return targets;
    }
    let mut order: Vec<usize> = (0..claims.len()).collect();
    let key = |i: &usize| (claims[*i].priority, claims[*i].instance.as_str());
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut left = capacity.max(0.0);
    let mut start = 0;
    while start < order.len() {
        let priority = claims[order[start]].priority;
        let end = start + order[start..].iter().take_while(|i| claims[**i].priority == priority).count();
        // Smallest wants first: each takes min(want, equal share of what is left).
        let mut class: Vec<usize> = order[start..end].to_vec();
        class.sort_by(|a, b| {
            claims[*a].want.total_cmp(&claims[*b].want).then_with(|| claims[*a].instance.cmp(&claims[*b].instance))
        });
        let mut n = class.len();
        for i in class {
            let give = claims[i].want.max(0.0).min(left / n as f64);
            targets[i] = give;
            left -= give;
            n -= 1;
        }
        start = end;
    }
    if left > 0.0 {
        let each = left / claims.len() as f64;
        for t in &mut targets {
            *t += each;
        }
    }
    targets
}

/// The rate instance `me` moves to this round, toward its target. Decreases apply at once; an increase only
/// takes capacity nobody uses now (by the announced rates), shared among everyone below target in proportion
/// to how far below they are. Every instance computes the same shares, so together they never hand out more
/// than `capacity`, whatever order their rounds run in.
pub fn step(capacity: f64, claims: &[Claim], targets: &[f64], me: usize) -> f64 {
    let (Some(claim), Some(&target)) = (claims.get(me), targets.get(me)) else { return 0.0 };
    if target <= claim.rate {
        return target;
    }
    let used: f64 = claims.iter().map(|c| c.rate.max(0.0)).sum();
    let free = (capacity - used).max(0.0);
    let deficit: f64 = claims.iter().zip(targets).map(|(c, t)| (t - c.rate).max(0.0)).sum();
    if deficit <= 0.0 {
        return claim.rate;
    }
    (claim.rate + free * (target - claim.rate) / deficit).min(target)
}

/// Estimates what an instance wants from what it did during the last period: held back (callers waited for
/// their slots a tenth of the time or more) means the whole quota; otherwise what it used plus headroom.
pub fn want(quota: f64, used: f64, waited_fraction: f64, headroom: f64) -> f64 {
    if waited_fraction >= 0.1 { quota } else { (used * (1.0 + headroom) + 1.0).min(quota) }
}

/// The lowest rate ever granted: a rate of 0 would mean "unlimited" to the schedule.
const MIN_RATE: f64 = 0.05;

/// Per-API state of a coordinator.
#[derive(Debug)]
struct Track {
    api: Api,
    quota: f64,
    last: Usage,
    /// Smoothed calls per second.
    used: f64,
    want: f64,
    rate: f64,
}

/// Runs one process's side of the shared quota. See the module docs.
pub struct Coordinator {
    im: ImClient,
    config: QuotaConfig,
    instance: String,
    sdkappid: u64,
    priority: Priority,
    source: Arc<dyn AllocationSource>,
    tracks: Vec<Track>,
    started: Instant,
    healthy: Option<bool>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("instance", &self.instance)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// How often a starting coordinator looks whether its source has caught up.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

impl Coordinator {
    /// A coordinator for `im`'s calls to `apis` (the ones the part makes; others keep their static rates).
    /// It starts conservatively at once (see [`QuotaConfig::startup_share`]); [`Coordinator::run`] does the rest.
    pub fn new(
        im: &ImClient,
        config: &ImConfig,
        priority: Priority,
        apis: &[Api],
        instance: String,
        source: Arc<dyn AllocationSource>,
    ) -> Self {
        let mut tracks = Vec::new();
        for api in apis {
            let Some(quota) = config.quota_for(*api).per_sec() else { continue };
            let rate = im.effective_rate(*api).per_sec().unwrap_or(quota);
            tracks.push(Track { api: *api, quota, last: im.usage(*api), used: 0.0, want: 0.0, rate });
        }
        let mut c = Self {
            im: im.clone(),
            config: config.quota.clone(),
            instance,
            sdkappid: config.sdkappid,
            priority,
            source,
            tracks,
            started: Instant::now(),
            healthy: None,
        };
        c.fall_back();
        c
    }

    /// Announces, allocates and paces every period until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.config.period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut caught_up = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // Until the source has read what was announced before, this instance paces at its start-up
                // share: the first allocation runs as soon as the source has caught up, not a period later
                // (an import would otherwise spend most of its first second at 5% of its quota).
                _ = tokio::time::sleep(CATCH_UP_POLL), if !caught_up => {
                    if !self.source.caught_up() {
                        continue;
                    }
                }
                _ = &mut shutdown => return,
            }
            let elapsed = last.elapsed().as_secs_f64().max(1e-3);
            last = Instant::now();
            caught_up = self.round(elapsed);
        }
    }

    /// One period: measure, allocate, pace, announce. Returns whether the source had caught up.
    pub fn round(&mut self, elapsed_secs: f64) -> bool {
        for t in &mut self.tracks {
            let now = self.im.usage(t.api);
            let used = now.calls.saturating_sub(t.last.calls) as f64 / elapsed_secs;
            let waited = (now.waited_secs - t.last.waited_secs).max(0.0) / elapsed_secs;
            t.last = now;
            // Smoothed so one quiet period does not give away a live instance's share.
            t.used = if t.used == 0.0 { used } else { used.max(0.5 * t.used + 0.5 * used) };
            t.want = want(t.quota, t.used, waited, self.config.headroom);
        }
        let seen = self.source.seen();
        let caught_up = seen.is_some();
        let healthy = seen.as_ref().is_some_and(|s| {
            let mine = s.iter().any(|x| x.announcement.instance == self.instance && x.age < self.config.expire());
            mine || self.started.elapsed() < self.config.expire()
        });
        if self.healthy != Some(healthy) {
            if healthy {
                info!(instance = %self.instance, priority = self.priority.as_str(), "im quota coordination active");
            } else if self.healthy.is_some() {
                warn!(instance = %self.instance, "im quota announcements not seen; pacing at the fallback rates");
            }
            self.healthy = Some(healthy);
        }
        match seen {
            Some(seen) if healthy => self.allocate(&seen),
            _ => self.fall_back(),
        }
        let demands = self.tracks.iter().map(|t| ApiDemand { api: t.api, want: t.want, rate: t.rate }).collect();
        self.source.announce(&Announcement {
            instance: self.instance.clone(),
            sdkappid: self.sdkappid,
            priority: self.priority,
            demands,
        });
        caught_up
    }

    fn allocate(&mut self, seen: &[Seen]) {
        let expire = self.config.expire();
        let others: Vec<&Seen> = seen
            .iter()
            .filter(|s| {
                s.age < expire && s.announcement.sdkappid == self.sdkappid && s.announcement.instance != self.instance
            })
            .collect();
        for i in 0..self.tracks.len() {
            let t = &self.tracks[i];
            let mut claims =
                vec![Claim { instance: self.instance.clone(), priority: self.priority, want: t.want, rate: t.rate }];
            for s in &others {
                if let Some(d) = s.announcement.demands.iter().find(|d| d.api == t.api) {
                    claims.push(Claim {
                        instance: s.announcement.instance.clone(),
                        priority: s.announcement.priority,
                        want: d.want,
                        rate: d.rate,
                    });
                }
            }
            let capacity = t.quota * self.config.utilisation;
            let targets = allocate(capacity, &claims);
            let rate = step(capacity, &claims, &targets, 0).max(MIN_RATE);
            self.pace(i, rate);
        }
    }

    /// Knowing nothing of the others: live keeps its static rate, repair and history a small share.
    fn fall_back(&mut self) {
        for i in 0..self.tracks.len() {
            let t = &self.tracks[i];
            // The static rate as it is now: a consumer group may have changed this instance's share.
            let fixed = self.im.rate(t.api).per_sec().unwrap_or(t.quota);
            let rate = match self.priority {
                Priority::Live => fixed,
                Priority::Repair | Priority::History => fixed.min(t.quota * self.config.startup_share),
            };
            self.pace(i, rate);
        }
    }

    fn pace(&mut self, i: usize, rate: f64) {
        let Some(t) = self.tracks.get_mut(i) else { return };
        t.rate = rate;
        let burst = match self.priority {
            Priority::Live => (rate * self.config.live_burst_ms as f64 / 1000.0).max(DEFAULT_BURST),
            Priority::Repair | Priority::History => DEFAULT_BURST,
        };
        self.im.grant(t.api, Some(Grant { rate, burst }));
    }
}

/// A name for this process's instance: part, host, process id and a random suffix (unique per run).
pub fn instance_name(part: &str) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
    format!("{part}@{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateSetting;

    fn claim(instance: &str, priority: Priority, want: f64, rate: f64) -> Claim {
        Claim { instance: instance.into(), priority, want, rate }
    }

    #[test]
    fn live_first_then_repair_then_history() {
        let claims = vec![
            claim("import", Priority::History, 200.0, 0.0),
            claim("live-a", Priority::Live, 30.0, 0.0),
            claim("reconcile", Priority::Repair, 200.0, 0.0),
            claim("live-b", Priority::Live, 20.0, 0.0),
        ];
        let t = allocate(100.0, &claims);
        assert_eq!(t, vec![0.0, 30.0, 50.0, 20.0]);
        // Less live demand: repair takes everything left, history still nothing.
        let claims2 = vec![claims[0].clone(), claim("reconcile", Priority::Repair, 10.0, 0.0)];
        assert_eq!(allocate(100.0, &claims2), vec![90.0, 10.0]);
    }

    #[test]
    fn equal_priorities_share_max_min_fairly_and_leftover_is_spread() {
        let claims = vec![
            claim("a", Priority::History, 10.0, 0.0),
            claim("b", Priority::History, 100.0, 0.0),
            claim("c", Priority::History, 100.0, 0.0),
        ];
        assert_eq!(allocate(100.0, &claims), vec![10.0, 45.0, 45.0]);
        // Everybody satisfied: the 40 left go equally to all three.
        let small = vec![claim("a", Priority::Live, 10.0, 0.0), claim("b", Priority::History, 50.0, 0.0)];
        assert_eq!(allocate(100.0, &small), vec![30.0, 70.0]);
    }

    #[test]
    fn deterministic_whatever_the_order() {
        let claims = vec![
            claim("x", Priority::Repair, 40.0, 0.0),
            claim("y", Priority::Repair, 40.0, 0.0),
            claim("z", Priority::Live, 33.3, 0.0),
            claim("w", Priority::History, 500.0, 0.0),
            claim("v", Priority::History, 500.0, 0.0),
        ];
        let base = allocate(120.0, &claims);
        let mut rev = claims.clone();
        rev.reverse();
        let mut t = allocate(120.0, &rev);
        t.reverse();
        assert_eq!(base, t);
        let total: f64 = base.iter().sum();
        assert!((total - 120.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn increases_only_take_what_is_free() {
        // History runs at 97 of 97; live arrives wanting 30: history drops at once, live waits for that.
        let claims = vec![claim("live", Priority::Live, 30.0, 5.0), claim("import", Priority::History, 200.0, 92.0)];
        let targets = allocate(97.0, &claims);
        assert_eq!(targets, vec![30.0, 67.0]);
        assert_eq!(step(97.0, &claims, &targets, 1), 67.0, "decreases are immediate");
        assert_eq!(step(97.0, &claims, &targets, 0), 5.0, "nothing is free yet");
        // Next round, history announced 67: live takes the 25 now free.
        let claims2 = vec![claims[0].clone(), claim("import", Priority::History, 200.0, 67.0)];
        assert_eq!(step(97.0, &claims2, &targets, 0), 30.0);
        // Two instances below target split what is free in proportion to their deficit.
        let c = vec![claim("a", Priority::History, 100.0, 10.0), claim("b", Priority::History, 100.0, 30.0)];
        let t = allocate(80.0, &c);
        let (a, b) = (step(80.0, &c, &t, 0), step(80.0, &c, &t, 1));
        assert!((a + b - 80.0).abs() < 1e-9 && a > 10.0 && b > 30.0, "{a} {b}");
    }

    #[test]
    fn demand_estimate() {
        assert_eq!(want(200.0, 50.0, 0.5, 0.05), 200.0, "held back: everything");
        assert!((want(200.0, 50.0, 0.0, 0.05) - 53.5).abs() < 1e-9);
        assert_eq!(want(200.0, 0.0, 0.0, 0.05), 1.0, "idle: one call a second");
    }

    /// An in-memory source where announcements are seen at once, to drive coordinators without Kafka.
    #[derive(Default)]
    struct Board {
        all: std::sync::Mutex<Vec<(Announcement, Instant)>>,
        down: std::sync::atomic::AtomicBool,
        /// Not caught up yet: `seen` answers `None`.
        reading: std::sync::atomic::AtomicBool,
    }

    impl AllocationSource for Board {
        fn announce(&self, a: &Announcement) {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|(x, _)| x.instance != a.instance);
            all.push((a.clone(), Instant::now()));
        }
        fn seen(&self) -> Option<Vec<Seen>> {
            if self.reading.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
            Some(all.iter().map(|(a, at)| Seen { announcement: a.clone(), age: at.elapsed() }).collect())
        }
    }

    fn client() -> (ImClient, ImConfig) {
        let mut cfg = ImConfig { sdkappid: 1, secret_key: "k".into(), ..ImConfig::default() };
        cfg.rate_limits.insert(Api::ImportMsg, RateSetting::PerSec(100.0));
        (ImClient::new(&cfg, &prometheus::Registry::new()).expect("client"), cfg)
    }

    #[test]
    fn stale_announcements_expire_and_a_lost_board_falls_back() {
        let board = Arc::new(Board::default());
        let (live_im, cfg) = client();
        let (import_im, _) = client();
        let mut live =
            Coordinator::new(&live_im, &cfg, Priority::Live, &[Api::ImportMsg], "live".into(), board.clone());
        let mut import =
            Coordinator::new(&import_im, &cfg, Priority::History, &[Api::ImportMsg], "import".into(), board.clone());
        // Start-up: history at its small share, live at its static rate.
        assert_eq!(import_im.effective_rate(Api::ImportMsg), RateSetting::PerSec(5.0));
        assert_eq!(live_im.effective_rate(Api::ImportMsg), RateSetting::PerSec(100.0));
        // Import held back (callers waited all period), live idle: a few rounds later import has nearly all.
        for _ in 0..4 {
            live.round(1.0);
            import.tracks[0].last.waited_secs -= 1.0;
            import.round(1.0);
        }
        let import_rate = import_im.effective_rate(Api::ImportMsg).per_sec().unwrap_or(0.0);
        let live_rate = live_im.effective_rate(Api::ImportMsg).per_sec().unwrap_or(0.0);
        assert!(import_rate > 90.0 && import_rate + live_rate <= 98.0 + 1e-9, "{import_rate} + {live_rate}");
        // The live instance dies: its announcement is dropped as stale and import takes its share.
        {
            let mut all = board.all.lock().unwrap_or_else(|p| p.into_inner());
            for (a, at) in all.iter_mut() {
                if a.instance == "live" {
                    *at = Instant::now().checked_sub(Duration::from_secs(10)).unwrap_or(*at);
                }
            }
        }
        for _ in 0..2 {
            import.tracks[0].last.waited_secs -= 1.0;
            import.round(1.0);
        }
        let alone = import_im.effective_rate(Api::ImportMsg).per_sec().unwrap_or(0.0);
        assert!((alone - 98.0).abs() < 1e-9, "{alone}");
        // The board goes away: once its own announcement is stale, import falls back to the small share.
        board.down.store(true, std::sync::atomic::Ordering::Relaxed);
        import.started = Instant::now().checked_sub(Duration::from_secs(60)).unwrap_or(import.started);
        {
            let mut all = board.all.lock().unwrap_or_else(|p| p.into_inner());
            for (_, at) in all.iter_mut() {
                *at = Instant::now().checked_sub(Duration::from_secs(10)).unwrap_or(*at);
            }
        }
        import.round(1.0);
        assert_eq!(import_im.effective_rate(Api::ImportMsg), RateSetting::PerSec(5.0));
    }

    /// A newcomer paces at its start-up share only until its source has caught up, not until its next period.
    #[tokio::test]
    async fn the_first_allocation_follows_the_catch_up_not_the_period() {
        let board = Arc::new(Board::default());
        board.reading.store(true, std::sync::atomic::Ordering::Relaxed);
        let (im, mut cfg) = client();
        cfg.quota.period_ms = 60_000;
        cfg.quota.expire_ms = 120_000;
        let import = Coordinator::new(&im, &cfg, Priority::History, &[Api::ImportMsg], "import".into(), board.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(import.run(async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(im.effective_rate(Api::ImportMsg), RateSetting::PerSec(5.0), "nothing known yet: start-up share");
        board.reading.store(false, std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while im.effective_rate(Api::ImportMsg) == RateSetting::PerSec(5.0) {
            assert!(Instant::now() < deadline, "still at the start-up share a while after the catch-up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rate = im.effective_rate(Api::ImportMsg).per_sec().unwrap_or(0.0);
        assert!((rate - 98.0).abs() < 1e-9, "alone, it takes the whole capacity: {rate}");
        let _ = stop.send(());
        run.await.expect("coordinator");
    }
}
