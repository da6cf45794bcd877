//! `imbridge bench import`: how close the import gets to its two physical limits.
//!
//! 1. **Limits off** — the IM emulator (in this process) enforces no quotas and the client paces nothing, so
//!    the import runs as fast as the pipeline and the emulator allow. Reported per record kind (phase):
//!    records/s from that kind's first to its last applied record. Beside it, in the same run and process,
//!    the emulator's raw ceiling: one HTTP client hammering `importmsg` directly (no Kafka, no pipeline), and
//!    the ratio of the pipeline's `importmsg` rate to it.
//! 2. **Limits on** — a fresh emulator enforcing the documented quotas (60007 beyond them) and the client at
//!    the same quotas. Reported: each API's achieved call rate as a fraction of its quota (target ≥ 0.97 for
//!    the bottleneck API), the 60007 answers (target 0), and the wall time beside the quota-bound lower bound.
//!
//! CPU seconds and peak memory of this process (pipeline + emulator) are printed with each phase.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use imbridge_core::EventKind;
use imbridge_core::topics::TopicNames;
use imbridge_im::{Api, ImConfig, RateSetting};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_importer::apply::ApplyStats;
use imbridge_kafka::KafkaConfig;
use imbridge_telemetry::bench::{cpu_times, peak_rss_mib};
use tokio_util::sync::CancellationToken;

use imbridge_importer::outcome::ImportReport;
use imbridge_importer::progress::ProgressMode;
use imbridge_importer::run::{ImportSettings, REPORT_KINDS, RunOptions, RunResult};
use imbridge_importer::{Error, GenerateOptions, ImportConfig, ValidateOptions};

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub kafka: KafkaConfig,
    /// The export of the limits-off phase.
    pub export: GenerateOptions,
    /// 1:1 messages of the limits-on phase (its length is about this / 200 seconds); 0 skips the phase.
    pub limits_on_c2c_messages: usize,
    /// Partitions of the benchmark's import topics.
    pub partitions: i32,
    /// Requests of the raw `importmsg` ceiling measurement.
    pub raw_requests: u64,
    /// Requests in flight at once during the raw measurement.
    pub raw_concurrency: usize,
    /// Where the generated exports go (removed afterwards).
    pub work_dir: PathBuf,
}

/// One record kind's apply phase.
#[derive(Debug, Clone, PartialEq)]
pub struct KindPhase {
    pub kind: EventKind,
    pub records: u64,
    pub secs: f64,
}

impl KindPhase {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.records as f64 / self.secs } else { 0.0 }
    }
}

/// One import run of the benchmark.
#[derive(Debug, Clone)]
pub struct ImportPhase {
    pub name: &'static str,
    pub phases: Vec<KindPhase>,
    pub report: ImportReport,
    /// `None` when /proc could not be read (shown as "-", never as 0).
    pub cpu_secs: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// 60007 answers the emulator gave.
    pub emulator_rate_limited: u64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub limits_off: ImportPhase,
    /// `importmsg` requests per second of one HTTP client straight at the emulator.
    pub raw_importmsg_per_sec: f64,
    pub raw_concurrency: usize,
    pub limits_on: Option<ImportPhase>,
}

impl BenchReport {
    /// `importmsg` through the pipeline / raw ceiling.
    pub fn ratio(&self) -> Option<f64> {
        let p = self.limits_off.phases.iter().find(|p| p.kind == EventKind::ImportC2cMessage)?;
        (self.raw_importmsg_per_sec > 0.0).then(|| p.rate() / self.raw_importmsg_per_sec)
    }

    /// The limits-on phase's bottleneck API: achieved calls/s over its quota. Only from calls actually made
    /// (never the planned count): `None` when none were counted or the phase took no measurable time.
    pub fn quota_fraction(&self) -> Option<(Api, f64)> {
        let on = self.limits_on.as_ref()?;
        let b = on.report.lower_bound.bottleneck.as_ref()?;
        let kind = kind_of_api(b.api)?;
        let phase = on.phases.iter().find(|p| p.kind == kind)?;
        let made = on.report.calls.get(b.api.as_str()).copied().filter(|n| *n > 0)?;
        let quota = b.rate_per_sec?;
        (phase.secs > 0.0).then(|| (b.api, made as f64 / phase.secs / quota))
    }

    /// Why the figures cannot be trusted, if they cannot: a phase that measured nothing or failed records. The
    /// command prints them and exits non-zero.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in std::iter::once(&self.limits_off).chain(self.limits_on.as_ref()) {
            if p.phases.is_empty() {
                out.push(format!("{}: no record kind was applied (nothing measured)", p.name));
            }
            let failed: u64 = p.report.kinds.iter().map(|k| k.failed).sum();
            if failed > 0 {
                out.push(format!("{}: {failed} records failed to import", p.name));
            }
        }
        if self.ratio().is_none() {
            out.push("no importmsg rate to compare with the raw ceiling (no 1:1 message phase measured)".into());
        }
        if let Some(on) = &self.limits_on
            && self.quota_fraction().is_none()
        {
            let api = on.report.lower_bound.bottleneck.as_ref().map_or("?", |b| b.api.as_str());
            out.push(format!("{}: no calls of the bottleneck API {api} were counted", on.name));
        }
        out
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let phase = |s: &mut String, p: &ImportPhase| {
            let _ = writeln!(s, "{}:", p.name);
            let _ = writeln!(s, "  {:<18} {:>9} {:>9} {:>11}", "phase (kind)", "records", "secs", "records/s");
            for k in &p.phases {
                let _ = writeln!(
                    s,
                    "  {:<18} {:>9} {:>9.2} {:>11.1}",
                    imbridge_importer::progress::label(k.kind),
                    k.records,
                    k.secs,
                    k.rate()
                );
            }
            let r = &p.report;
            let total: u64 = p.phases.iter().map(|k| k.records).sum();
            let _ = writeln!(
                s,
                "  all kinds: {total} records in {:.2}s wall ({:.0} records/s); lower bound {:.2}s; wall/bound {}",
                r.wall_secs,
                total as f64 / r.wall_secs.max(1e-9),
                r.lower_bound.secs,
                r.ratio.map_or("n/a".to_owned(), |x| format!("{x:.3}"))
            );
            let _ = writeln!(
                s,
                "  60007 answers: {} from the emulator, {} seen by the client; failed records: {}",
                p.emulator_rate_limited,
                r.frequency_limited,
                r.kinds.iter().map(|k| k.failed).sum::<u64>()
            );
            let rss = p.peak_rss_mib.map_or("-".to_owned(), |m| format!("{m:.0} MiB"));
            let cpu = p.cpu_secs.map_or("-".to_owned(), |c| format!("{c:.2}s"));
            let _ = writeln!(s, "  cpu {cpu} (this process: pipeline + emulator), peak rss {rss}");
        };
        phase(&mut s, &self.limits_off);
        let _ = writeln!(
            s,
            "  emulator raw ceiling: {:.0} importmsg/s (one HTTP client, {} in flight, no pipeline)",
            self.raw_importmsg_per_sec, self.raw_concurrency
        );
        if let Some(r) = self.ratio() {
            let _ = writeln!(s, "  pipeline importmsg rate / raw ceiling = {r:.3}");
        }
        if let Some(on) = &self.limits_on {
            phase(&mut s, on);
            let _ = writeln!(s, "  achieved call rates (calls made during the kind's phase; APIs with ≥ 100 calls):");
            for b in on.report.lower_bound.apis.iter().filter(|b| b.rate_per_sec.is_some()) {
                let Some(kind) = kind_of_api(b.api) else { continue };
                let Some(p) = on.phases.iter().find(|p| p.kind == kind) else { continue };
                let made = on.report.calls.get(b.api.as_str()).copied().unwrap_or(0);
                // A handful of calls says nothing about a per-second quota (the bucket's spare token).
                if p.secs <= 0.0 || made < 100 {
                    continue;
                }
                let rate = made as f64 / p.secs;
                let _ = writeln!(
                    s,
                    "  {:<22} {:>6} calls in {:>7.2}s = {:>6.1}/s of {:>5}/s quota ({:.3})",
                    b.api.as_str(),
                    made,
                    p.secs,
                    rate,
                    b.rate_per_sec.unwrap_or(0.0),
                    rate / b.rate_per_sec.unwrap_or(1.0)
                );
            }
            if let Some((api, f)) = self.quota_fraction() {
                let verdict = if f >= 0.97 { "meets" } else { "MISSES" };
                let _ = writeln!(s, "  bottleneck {api}: {f:.3} of its quota ({verdict} the 0.97 target)");
            }
        }
        s
    }
}

/// The record kind whose phase an API's calls make up (for calls-per-second figures).
fn kind_of_api(api: Api) -> Option<EventKind> {
    Some(match api {
        Api::MultiAccountImport => EventKind::ImportAccount,
        Api::PortraitSet => EventKind::ImportProfile,
        Api::FriendImport => EventKind::ImportFriendship,
        Api::ImportMsg => EventKind::ImportC2cMessage,
        Api::AdminSetMsgRead => EventKind::ImportC2cRead,
        Api::ImportGroup => EventKind::ImportGroup,
        Api::ImportGroupMember => EventKind::ImportGroupMember,
        Api::ImportGroupMsg => EventKind::ImportGroupMessage,
        Api::SetUnreadMsgNum => EventKind::ImportMemberUnread,
        _ => return None,
    })
}

/// Runs both phases.
pub async fn run(o: &BenchOptions) -> Result<BenchReport, Error> {
    std::fs::create_dir_all(&o.work_dir).map_err(|source| Error::Io { path: o.work_dir.clone(), source })?;
    let off_dir = o.work_dir.join("limits-off");
    let gen_options = o.export.clone();
    let dir = off_dir.clone();
    tokio::task::spawn_blocking(move || imbridge_importer::generate(&dir, &gen_options))
        .await
        .map_err(|e| Error::Run(format!("generator failed: {e}")))??;

    let emulator = spawn_emulator(false).await?;
    let limits_off = import_phase("limits off", o, &off_dir, &emulator, false).await?;
    let (from, to) = first_pair(&off_dir)?;
    let raw = raw_importmsg(&emulator, &from, &to, o.raw_requests, o.raw_concurrency).await?;
    drop(emulator);

    let limits_on = if o.limits_on_c2c_messages > 0 {
        let on_dir = o.work_dir.join("limits-on");
        let gen_options = GenerateOptions { c2c_messages: o.limits_on_c2c_messages, ..o.export.clone() };
        let dir = on_dir.clone();
        tokio::task::spawn_blocking(move || imbridge_importer::generate(&dir, &gen_options))
            .await
            .map_err(|e| Error::Run(format!("generator failed: {e}")))??;
        let emulator = spawn_emulator(true).await?;
        Some(
            import_phase("limits on (documented quotas in the emulator and the client)", o, &on_dir, &emulator, true)
                .await?,
        )
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&o.work_dir);
    Ok(BenchReport { limits_off, raw_importmsg_per_sec: raw, raw_concurrency: o.raw_concurrency, limits_on })
}

async fn spawn_emulator(limits: bool) -> Result<RunningEmulator, Error> {
    let cfg = EmulatorConfig { rate_limits_enabled: limits, ..EmulatorConfig::default() };
    imbridge_im_emulator::spawn(cfg).await.map_err(|e| Error::Run(format!("im emulator: {e}")))
}

/// Two accounts of the export that the raw measurement sends between.
fn first_pair(dir: &std::path::Path) -> Result<(String, String), Error> {
    let (plan, _) = imbridge_importer::check_export(dir, &ValidateOptions::default(), false)?;
    let ids: Vec<String> = plan
        .accounts()
        .take(2)
        .filter_map(|e| match e.ok()?.event {
            imbridge_core::Event::ImportAccount(a) => Some(a.user_id.into_string()),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [a, b] => Ok((a.clone(), b.clone())),
        _ => Err(Error::InvalidOption("the benchmark export needs at least two accounts".into())),
    }
}

async fn import_phase(
    name: &'static str,
    o: &BenchOptions,
    dir: &std::path::Path,
    emulator: &RunningEmulator,
    limits: bool,
) -> Result<ImportPhase, Error> {
    let prefix = format!("bench-{}-{:08x}", std::process::id(), rand_u32());
    let topics = TopicNames {
        import_accounts: format!("{prefix}.import.accounts"),
        import_users: format!("{prefix}.import.users"),
        import_c2c: format!("{prefix}.import.c2c"),
        import_groups: format!("{prefix}.import.groups"),
        dlq: format!("{prefix}.dlq"),
        conversations: format!("{prefix}.conversations"),
        status: format!("{prefix}.status"),
        partitions: o.partitions,
        ..TopicNames::default()
    };
    let mut im: ImConfig = emulator.client_config();
    if !limits {
        im.rate_limits = Api::ALL.iter().map(|a| (*a, RateSetting::Off)).collect();
    }
    let settings = ImportSettings {
        kafka: o.kafka.clone(),
        topics,
        im,
        import: ImportConfig {
            group_id: format!("{prefix}-import"),
            checkpoint_topic: format!("{prefix}.import.checkpoints"),
            ..ImportConfig::default()
        },
    };
    let stats = ApplyStats::unregistered();
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(sample(stats.clone(), sampler_stop.clone()));
    let cpu_before = cpu_times(None);
    let options = RunOptions {
        dir: dir.to_path_buf(),
        strict: false,
        dry_run: false,
        validate: ValidateOptions::default(),
        progress: ProgressMode::Off,
        say: Arc::new(|_: &str| {}),
        shutdown: CancellationToken::new(),
        started: Instant::now(),
        stats: Some(stats.clone()),
    };
    let registry = prometheus::Registry::new();
    let result = imbridge_importer::run::run(&settings, options, &registry).await;
    sampler_stop.cancel();
    let samples = sampler.await.map_err(|e| Error::Run(format!("sampler failed: {e}")))?;
    let report = match result? {
        RunResult::Imported(r) => *r,
        _ => return Err(Error::Run("the benchmark import did not run".into())),
    };
    let phases = REPORT_KINDS
        .iter()
        .filter(|k| **k != EventKind::ImportConversationDone)
        .filter_map(|k| phase_of(*k, &samples))
        .collect();
    Ok(ImportPhase {
        name,
        phases,
        report,
        cpu_secs: cpu_times(None).zip(cpu_before).map(|(now, before)| now.since(&before).own_secs),
        peak_rss_mib: peak_rss_mib(None),
        emulator_rate_limited: emulator.emulator().stats().rate_limited,
    })
}

type Samples = Vec<(Instant, BTreeMap<EventKind, u64>)>;

/// Samples the apply counters every 10 ms until stopped.
async fn sample(stats: ApplyStats, stop: CancellationToken) -> Samples {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        let snapshot = REPORT_KINDS.iter().map(|k| (*k, stats.finished(*k))).collect();
        out.push((Instant::now(), snapshot));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
    }
    let snapshot = REPORT_KINDS.iter().map(|k| (*k, stats.finished(*k))).collect();
    out.push((Instant::now(), snapshot));
    out
}

/// One kind's phase: from the last sample before its first record to the first sample with all of them.
fn phase_of(kind: EventKind, samples: &Samples) -> Option<KindPhase> {
    let count = |i: usize| samples.get(i).and_then(|(_, m)| m.get(&kind)).copied().unwrap_or(0);
    let last = samples.len().checked_sub(1)?;
    let total = count(last);
    if total == 0 {
        return None;
    }
    let first_nonzero = (0..samples.len()).find(|i| count(*i) > 0)?;
    let start = samples[first_nonzero.saturating_sub(1)].0;
    let end_i = (0..samples.len()).find(|i| count(*i) >= total)?;
    Some(KindPhase { kind, records: total, secs: samples[end_i].0.duration_since(start).as_secs_f64() })
}

/// `importmsg` straight at the emulator from one HTTP client with `concurrency` requests in flight.
async fn raw_importmsg(
    emulator: &RunningEmulator,
    from: &str,
    to: &str,
    requests: u64,
    concurrency: usize,
) -> Result<f64, Error> {
    let e = emulator.emulator();
    let admin = e.admin_identifier().to_owned();
    let url = format!(
        "{}/v4/openim/importmsg?sdkappid={}&identifier={admin}&usersig={}&random=1&contenttype=json",
        emulator.base_url(),
        e.config().sdkappid,
        e.usersig(&admin)
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    let results: Vec<bool> = stream::iter(0..requests)
        .map(|i| {
            let body = serde_json::json!({
                "SyncFromOldSystem": 2, "From_Account": from, "To_Account": to, "MsgSeq": i as u32,
                "MsgRandom": (i as u32).wrapping_mul(2_654_435_761), "MsgTimeStamp": 1_700_000_000 + i as i64,
                "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "raw ceiling"}}],
            });
            let (http, url) = (&http, &url);
            async move {
                match http.post(url).json(&body).send().await {
                    Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["ErrorCode"] == 0),
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let ok = results.iter().filter(|r| **r).count() as u64;
    if ok < requests {
        return Err(Error::Run(format!("raw importmsg: only {ok} of {requests} requests succeeded")));
    }
    Ok(ok as f64 / secs.max(1e-9))
}

fn rand_u32() -> u32 {
    // Unique-enough topic names per run without pulling a random-number crate into the library.
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_runs_from_its_first_record_to_its_last() {
        let t0 = Instant::now();
        let at = |ms: u64, n: u64| (t0 + Duration::from_millis(ms), BTreeMap::from([(EventKind::ImportC2cMessage, n)]));
        let samples = vec![at(0, 0), at(10, 0), at(20, 5), at(30, 10), at(40, 10)];
        let p = phase_of(EventKind::ImportC2cMessage, &samples).expect("phase");
        assert_eq!(p.records, 10);
        assert!((p.secs - 0.020).abs() < 1e-9, "{}", p.secs);
        assert!(phase_of(EventKind::ImportGroup, &samples).is_none());
    }
}
