//! `imbridge bench quota`: one quota per IM API shared by live sync, a repair sweep and an import at once.
//!
//! An IM emulator in this process enforces IM's documented quotas (60007 beyond them). Three parts call it,
//! each with its own client and its own quota coordinator on the real broker, exactly as the services start
//! them (`imbridge_runtime::quota::coordinate`), with their call patterns:
//!
//! - **live** (priority live): an open-loop steady stream of `importmsg` calls (to-im's 1:1 messages with
//!   `c2c_api = "importmsg"`) and a few `admin_getroammsg` reads (its post-crash checks);
//! - **repair** (priority repair): reconcile's sweep, concurrent `admin_getroammsg` reads as fast as allowed;
//! - **history** (priority history): the bulk import, concurrent `importmsg` calls as fast as allowed.
//!
//! Phase 1 runs live alone, phase 2 live and the repair sweep (live "without the import"), phase 3 all three at
//! once (each after a short, unmeasured convergence). Printed for each: live's latency per call (pacing and
//! retries included) and its wait for its own pacing, every part's calls/s per API as a fraction of the quota,
//! and the emulator's 60007 answers among all calls. The targets, in phase 3: 60007 under 0.1% of calls, each
//! saturated API at ≥ 95% of its quota, live p99 within 2× of phase 2's.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use imbridge_im::types::account::{AccountImportReq, MultiAccountImportReq};
use imbridge_im::types::c2c::{AdminGetRoamMsgReq, ImportMsgReq, SYNC_HISTORY};
use imbridge_im::{Api, ImClient, ImConfig, ImError, MsgElement, Priority};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_kafka::KafkaConfig;
use imbridge_runtime::Deps;
use imbridge_runtime::quota::{Coordination, coordinate};
use imbridge_telemetry::bench::{Latencies, LatencySummary};
use tracing::info;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub kafka: KafkaConfig,
    /// Measured seconds of each phase.
    pub secs: u64,
    /// Seconds the parts get to converge before phase 2 is measured.
    pub settle_secs: u64,
    /// Live `importmsg` calls per second.
    pub live_rate: u32,
    /// Live `admin_getroammsg` calls per second.
    pub live_read_rate: u32,
    /// Concurrent callers of the import and of the repair sweep.
    pub concurrency: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            secs: 20,
            settle_secs: 5,
            live_rate: 40,
            live_read_rate: 5,
            concurrency: 16,
        }
    }
}

/// The APIs the bench calls.
const APIS: [Api; 2] = [Api::ImportMsg, Api::AdminGetRoamMsg];

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    pub name: &'static str,
    pub secs: f64,
    /// Live's calls, pacing and retries included.
    pub live_latency: Option<LatencySummary>,
    /// Live's average wait for its own pacing per call, in milliseconds.
    pub live_pacing_ms: f64,
    /// Answered calls per second, per API (as [`APIS`]) and part (live, repair, history).
    pub ok_per_sec: [[f64; 3]; 2],
    /// Calls that failed after the client's retries, all parts.
    pub failed: u64,
    /// Requests the emulator received (all APIs, retries included) and how many it answered 60007.
    pub requests: u64,
    pub rate_limited: u64,
}

impl PhaseReport {
    fn total(&self, api: usize) -> f64 {
        self.ok_per_sec[api].iter().sum()
    }

    fn rate_limited_share(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.rate_limited as f64 / self.requests as f64 }
    }
}

/// Both phases.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub options: BenchOptions,
    /// Each API's quota (as [`APIS`]).
    pub quotas: [f64; 2],
    pub alone: PhaseReport,
    /// Live and the repair sweep: the baseline of live's latency "without the import".
    pub without_import: PhaseReport,
    pub shared: PhaseReport,
}

impl BenchReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let o = &self.options;
        let _ = writeln!(
            s,
            "bench quota: live {} importmsg/s + {} admin_getroammsg/s; repair and import {} callers each; \
             IM's documented quotas enforced by the emulator; coordination on the broker",
            o.live_rate, o.live_read_rate, o.concurrency
        );
        for p in [&self.alone, &self.without_import, &self.shared] {
            let _ = writeln!(s, "\n{} ({:.1} s measured)", p.name, p.secs);
            match &p.live_latency {
                Some(l) => {
                    let _ =
                        writeln!(s, "  live latency per call: {l}; waiting for pacing {:.2} ms/call", p.live_pacing_ms);
                }
                None => {
                    let _ = writeln!(s, "  live latency per call: -");
                }
            }
            let _ = writeln!(
                s,
                "  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
                "api", "quota", "live", "repair", "history", "total", "of quota"
            );
            for (i, api) in APIS.iter().enumerate() {
                let r = p.ok_per_sec[i];
                let _ = writeln!(
                    s,
                    "  {:<18} {:>8.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}%",
                    api.as_str(),
                    self.quotas[i],
                    r[0],
                    r[1],
                    r[2],
                    p.total(i),
                    100.0 * p.total(i) / self.quotas[i]
                );
            }
            let _ = writeln!(
                s,
                "  60007 answers: {} of {} requests ({:.3}%); calls failed after retries: {}",
                p.rate_limited,
                p.requests,
                100.0 * p.rate_limited_share(),
                p.failed
            );
        }
        let (a, b) = (self.without_import.live_latency.map(|l| l.p99_ms), self.shared.live_latency.map(|l| l.p99_ms));
        if let (Some(a), Some(b)) = (a, b) {
            let _ = writeln!(
                s,
                "\nlive p99: {b:.1} ms with the import vs {a:.1} ms without = {:.2}× (target ≤ 2×); live waited for its \
                 own pacing {:.2} ms/call with the import",
                b / a.max(1e-3),
                self.shared.live_pacing_ms
            );
        }
        let _ = writeln!(
            s,
            "60007 share while shared: {:.3}% (target < 0.1%); saturated APIs: {}",
            100.0 * self.shared.rate_limited_share(),
            APIS.iter()
                .enumerate()
                .map(|(i, a)| format!("{} {:.1}% of quota", a.as_str(), 100.0 * self.shared.total(i) / self.quotas[i]))
                .collect::<Vec<_>>()
                .join(", ")
        );
        s
    }

    /// What keeps the figures from standing (empty: every target met).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let share = self.shared.rate_limited_share();
        if share >= 0.001 {
            p.push(format!("60007 answers are {:.3}% of calls while shared (target < 0.1%)", 100.0 * share));
        }
        for (i, api) in APIS.iter().enumerate() {
            let f = self.shared.total(i) / self.quotas[i];
            if f < 0.95 {
                p.push(format!("{api} ran at {:.1}% of its quota while saturated (target ≥ 95%)", 100.0 * f));
            }
        }
        match (self.without_import.live_latency.map(|l| l.p99_ms), self.shared.live_latency.map(|l| l.p99_ms)) {
            (Some(a), Some(b)) if b > 2.0 * a => {
                p.push(format!("live p99 {b:.1} ms with the import is more than twice {a:.1} ms without"));
            }
            (Some(_), Some(_)) => {}
            _ => p.push("live made no calls".into()),
        }
        let failed = self.shared.failed + self.without_import.failed + self.alone.failed;
        if failed > 0 {
            p.push(format!("{failed} calls failed after retries"));
        }
        p
    }
}

fn bench_err(what: impl std::fmt::Display) -> ImError {
    ImError::Config(format!("bench quota: {what}"))
}

/// Counters of one part: answered calls per API, failures.
#[derive(Debug, Default)]
struct Counts {
    ok: [AtomicU64; 2],
    failed: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> [u64; 3] {
        [self.ok[0].load(Ordering::Relaxed), self.ok[1].load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed)]
    }
}

/// One part: its client, its coordination and its counters.
struct Part {
    im: ImClient,
    _quota: Option<Coordination>,
    counts: Arc<Counts>,
}

fn part(deps: &Deps, cfg: &ImConfig, priority: Priority) -> Result<Part, ImError> {
    let im = ImClient::new(cfg, &prometheus::Registry::new())?;
    let quota = coordinate(deps, &im, priority.as_str(), priority, &APIS).map_err(bench_err)?;
    Ok(Part { im, _quota: quota, counts: Arc::default() })
}

static SEQ: AtomicU64 = AtomicU64::new(1);

async fn call(im: &ImClient, api: Api, pair: &(String, String)) -> Result<(), ImError> {
    match api {
        Api::ImportMsg => {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            im.importmsg(&ImportMsgReq {
                sync_from_old_system: SYNC_HISTORY,
                from_account: pair.0.clone(),
                to_account: pair.1.clone(),
                msg_seq: Some((n & 0xffff_ffff) as u32),
                msg_random: rand::random(),
                msg_time_stamp: i64::try_from(now).unwrap_or(0),
                msg_body: vec![MsgElement::text("quota bench")],
                cloud_custom_data: None,
            })
            .await
            .map(|_| ())
        }
        _ => im
            .admin_getroammsg(&AdminGetRoamMsgReq {
                operator_account: pair.0.clone(),
                peer_account: pair.1.clone(),
                max_cnt: 20,
                min_time: 0,
                max_time: 1,
                ..AdminGetRoamMsgReq::default()
            })
            .await
            .map(|_| ()),
    }
}

fn count(counts: &Counts, api: Api, r: &Result<(), ImError>) {
    match r {
        Ok(()) => {
            counts.ok[usize::from(api != Api::ImportMsg)].fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `concurrency` callers of `api` as fast as their pacing lets them, until `stop`.
fn saturate(p: &Part, api: Api, concurrency: usize, pairs: Arc<Vec<(String, String)>>, stop: Arc<AtomicBool>) {
    for w in 0..concurrency {
        let (im, counts, pairs, stop) = (p.im.clone(), p.counts.clone(), pairs.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let r = call(&im, api, &pairs[i % pairs.len()]).await;
                count(&counts, api, &r);
                i += concurrency;
            }
        });
    }
}

/// Live: open loop, `rate` calls of `api` per second for `secs`; returns each call's latency from its tick.
async fn live_stream(p: &Part, api: Api, rate: u32, secs: f64, pairs: &[(String, String)]) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (f64::from(rate) * secs).round() as usize;
    let mut inflight = FuturesUnordered::new();
    let mut out = Vec::with_capacity(total);
    let mut i = 0usize;
    loop {
        tokio::select! {
            at = tick.tick(), if i < total => {
                let pair = &pairs[i % pairs.len()];
                let (im, counts) = (&p.im, &p.counts);
                inflight.push(async move {
                    let r = call(im, api, pair).await;
                    count(counts, api, &r);
                    at.into_std().elapsed()
                });
                i += 1;
            }
            Some(d) = inflight.next(), if !inflight.is_empty() => out.push(d),
            else => break,
        }
    }
    out
}

async fn phase(
    name: &'static str,
    o: &BenchOptions,
    emulator: &RunningEmulator,
    parts: &[&Part],
    live_pairs: &[(String, String)],
) -> PhaseReport {
    let before: Vec<[u64; 3]> = parts.iter().map(|p| p.counts.snapshot()).collect();
    let pacing =
        |p: &Part| APIS.iter().map(|a| p.im.usage(*a)).fold((0.0, 0u64), |(w, c), u| (w + u.waited_secs, c + u.calls));
    let pacing0 = pacing(parts[0]);
    let stats = emulator.emulator().stats();
    let (req0, lim0) = (stats.requests.values().sum::<u64>(), stats.rate_limited);
    let started = Instant::now();
    let secs = o.secs as f64;
    let live = parts[0];
    let (writes, reads) = tokio::join!(
        live_stream(live, Api::ImportMsg, o.live_rate, secs, live_pairs),
        live_stream(live, Api::AdminGetRoamMsg, o.live_read_rate, secs, live_pairs),
    );
    let secs = started.elapsed().as_secs_f64();
    let stats = emulator.emulator().stats();
    let pacing1 = pacing(live);
    let live_pacing_ms = 1000.0 * (pacing1.0 - pacing0.0) / (pacing1.1 - pacing0.1).max(1) as f64;
    let mut lat = Latencies::with_capacity(writes.len() + reads.len());
    for d in writes.iter().chain(&reads) {
        lat.record(*d);
    }
    let mut ok_per_sec = [[0.0; 3]; 2];
    let mut failed = 0;
    for (k, p) in parts.iter().enumerate() {
        let after = p.counts.snapshot();
        // Parts come in report order: live, repair, history.
        for (api, row) in ok_per_sec.iter_mut().enumerate() {
            row[k] = (after[api] - before[k][api]) as f64 / secs;
        }
        failed += after[2] - before[k][2];
    }
    PhaseReport {
        name,
        secs,
        live_latency: lat.summary(),
        live_pacing_ms,
        ok_per_sec,
        failed,
        requests: stats.requests.values().sum::<u64>() - req0,
        rate_limited: stats.rate_limited - lim0,
    }
}

/// Runs both phases; see the module docs.
pub async fn run(o: &BenchOptions) -> Result<BenchReport, ImError> {
    let emulator =
        imbridge_im_emulator::spawn(EmulatorConfig { rate_limits_enabled: true, ..EmulatorConfig::default() })
            .await
            .map_err(bench_err)?;
    let cfg = emulator.client_config();
    let quotas = APIS.map(|a| cfg.quota_for(a).per_sec().unwrap_or(0.0));
    let users: Vec<String> = (0..200).map(|i| format!("quota-u{i:03}")).collect();
    let admin = ImClient::new(&cfg, &prometheus::Registry::new())?;
    for chunk in users.chunks(100) {
        let list = chunk.iter().map(|u| AccountImportReq { user_id: u.clone(), nick: None, face_url: None }).collect();
        admin.multiaccount_import(&MultiAccountImportReq { accounts: None, account_list: Some(list) }).await?;
    }
    let pairs: Vec<(String, String)> = users.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
    let (live_pairs, other_pairs) = pairs.split_at(20);
    let other_pairs = Arc::new(other_pairs.to_vec());

    let prefix = format!("bench-quota-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let deps = Deps::new(o.kafka.clone(), imbridge_core::topics::TopicNames::with_prefix(&prefix), cfg.clone());
    let live = part(&deps, &cfg, Priority::Live)?;
    // Let the live coordinator read the board and announce before it is measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    info!("phase 1: live alone");
    let alone = phase("phase 1: live alone", o, &emulator, &[&live], live_pairs).await;

    info!("phase 2: live + repair sweep");
    let stop = Arc::new(AtomicBool::new(false));
    let repair = part(&deps, &cfg, Priority::Repair)?;
    saturate(&repair, Api::AdminGetRoamMsg, o.concurrency, other_pairs.clone(), stop.clone());
    // Live keeps running through each convergence (it is what live traffic would do), unmeasured.
    let settle = BenchOptions { secs: o.settle_secs, ..o.clone() };
    let _ = phase("settling", &settle, &emulator, &[&live, &repair], live_pairs).await;
    let without_import =
        phase("phase 2: live + repair sweep (without the import)", o, &emulator, &[&live, &repair], live_pairs).await;

    info!("phase 3: live + repair sweep + import");
    let history = part(&deps, &cfg, Priority::History)?;
    saturate(&history, Api::ImportMsg, o.concurrency, other_pairs, stop.clone());
    let _ = phase("settling", &settle, &emulator, &[&live, &repair, &history], live_pairs).await;
    let shared =
        phase("phase 3: live + repair sweep + import at once", o, &emulator, &[&live, &repair, &history], live_pairs)
            .await;
    stop.store(true, Ordering::Relaxed);
    drop((live, repair, history));
    let _ = emulator.shutdown().await;
    Ok(BenchReport { options: o.clone(), quotas, alone, without_import, shared })
}
