//! `imbridge bench sync`: end-to-end latency and throughput of real-time sync, in both directions, beside the
//! raw request ceiling of the systems at either end measured in the same run. It starts every part of the
//! pipeline in this process.
//!
//! What runs: the IM emulator and the legacy emulator (real HTTP servers), ingest, to-im and to-legacy, on the
//! configured broker with topics of their own. to-im and to-legacy call a second server of each target emulator
//! whose router carries an observing layer that notes when each write was answered (in process: no extra HTTP
//! hop that the raw ceiling would not pay).
//!
//! Traffic is mixed, over many conversations: of every ten events, five are 1:1 text messages (over
//! `conversations` pairs), four group text messages and one group rename (over `groups` groups of three members
//! each, created on the source side before the clock starts and carried over by the pipeline itself).
//! What is measured, per event:
//! - **legacy → IM**: from the legacy system answering its user's write (`POST /api/messages`,
//!   `/api/groups/{id}/messages`, `PATCH /api/groups/{id}`: source accepted) to IM answering to-im's call for it
//!   (`sendmsg`, `send_group_msg`, `modify_group_base_info`: other side applied) — webhook outbox, ingest, Kafka,
//!   to-im, IM;
//! - **IM → legacy**: from IM answering a new-app user's send or rename (client simulation) to the legacy system
//!   answering to-legacy's apply containing it — IM's callbacks (`callback_concurrency` in flight, 8 by
//!   default, as the emulator delivers them), ingest's
//!   spool, Kafka, to-legacy's resequencer, legacy.
//!
//! Per direction: p50/p95/p99/max at a steady offered rate (`--rate`, or with `--paced F` the fraction F of the
//! direction's raw ceiling, measured first), then the maximum sustained rate (a burst offered as fast as the
//! source accepts it, divided by the time until its last event was applied). Beside them: the raw
//! ceiling of the target measured directly with the same concurrency (IM `sendmsg` calls/s; legacy apply
//! requests/s with one event each). By default the emulator enforces no quotas and to-im applies none, so the
//! pipeline's own ceiling shows; `--im-quota` keeps IM's documented per-API limits (200/s for `sendmsg`) on both,
//! and the raw ceiling is still measured without imbridge's pacing (one attempt per call, only IM's answers
//! count), so it shows what IM's quota lets through.
//!
//! CPU seconds of the whole process (pipeline, emulators and load generator together) per 1,000 burst events and
//! the process's peak RSS are printed with each direction, with the CPU per 1,000 raw-ceiling calls and the
//! rate the machine's cores allow at the pipeline's CPU per event (the bound no scheduling can beat here);
//! `bench backlog` measures each service alone.
//!
//! A run that measured nothing — a message never applied, a phase without a single arrival, a ceiling of 0 — is
//! reported by [`BenchReport::problems`] and the command exits non-zero.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use imbridge_core::event::C2cMessage;
use imbridge_core::topics::TopicNames;
use imbridge_core::{Element, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_im::config::RateSetting;
use imbridge_im::types::account::{AccountImportReq, MultiAccountImportReq};
use imbridge_im::types::c2c::{FORBID_AFTER_SEND_CALLBACK, FORBID_BEFORE_SEND_CALLBACK, SendMsgReq};
use imbridge_im::{Api, ImClient, ImConfig, MsgElement};
use imbridge_kafka::KafkaConfig;
use imbridge_legacy::{ApplyClient, ApplyConfig, ContractEvent, SigningSecret};
use imbridge_telemetry::bench::{Latencies, LatencySummary, cpu_times, peak_rss_mib};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::info;

use imbridge_kafka::consumer::RunStats;
use imbridge_runtime::{Deps, Running, Service};
use imbridge_to_im::ToImError;
use imbridge_to_im::live::handler::LIVE_APIS;
use imbridge_to_im::{ToIm, ToImConfig};
use imbridge_to_legacy::ToLegacy;

const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const APPLY_SECRET: &str = "bench-apply-secret";
/// How long the last message of a phase may take to arrive before it counts as lost.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// What `imbridge bench sync` runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub kafka: KafkaConfig,
    /// Partitions of the event topics.
    pub partitions: i32,
    /// 1:1 conversations per direction (lanes that can apply concurrently).
    pub conversations: usize,
    /// Groups per direction (each another lane).
    pub groups: usize,
    /// Offered rate of the latency phase, messages per second.
    pub steady_rate: u32,
    /// With a value: the latency phase offers this fraction of the direction's raw ceiling instead of
    /// `steady_rate` (the ceiling is then measured first).
    pub paced_fraction: Option<f64>,
    /// Length of the latency phase, seconds.
    pub steady_secs: u64,
    /// Messages of the throughput burst.
    pub burst: usize,
    /// Concurrent senders of the burst and of the raw-ceiling measurement.
    pub concurrency: usize,
    /// Callbacks the IM emulator delivers at once.
    pub callback_concurrency: usize,
    /// Length of each raw-ceiling measurement, seconds.
    pub ceiling_secs: u64,
    /// Keep IM's documented per-API quotas (emulator enforces them, to-im paces to them).
    pub im_quota: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            partitions: 12,
            conversations: 50,
            groups: 20,
            steady_rate: 50,
            paced_fraction: None,
            steady_secs: 10,
            burst: 2_000,
            concurrency: 32,
            callback_concurrency: 8,
            ceiling_secs: 3,
            im_quota: false,
        }
    }
}

/// One direction's figures.
#[derive(Debug, Clone)]
pub struct DirectionReport {
    pub name: &'static str,
    pub steady_rate: u32,
    pub steady_sent: usize,
    pub steady_lost: usize,
    /// `None` when no message of the phase arrived.
    pub latency: Option<LatencySummary>,
    pub burst_sent: usize,
    pub burst_lost: usize,
    /// Rate at which the source accepted the burst.
    pub burst_offered_per_sec: f64,
    /// Burst messages / time from the first accepted to the last applied.
    pub sustained_per_sec: f64,
    /// What the target answers when called directly.
    pub ceiling_label: String,
    pub ceiling_per_sec: f64,
    /// CPU seconds of this process (caller and target) per 1,000 calls of the raw ceiling.
    pub ceiling_cpu_secs_per_1000: Option<f64>,
    /// Cores this process may run on: with the CPU per event, the most any run on this machine could sustain.
    pub cores: usize,
    /// CPU seconds of this process per 1,000 burst events (`None`: /proc unreadable).
    pub cpu_secs_per_1000: Option<f64>,
    /// Peak RSS of this process so far, MiB.
    pub peak_rss_mib: Option<f64>,
}

impl DirectionReport {
    /// Events per second this machine's cores could give the pipeline, bench and emulators at the CPU they
    /// spent per burst event: no run here can sustain more, however the work is scheduled.
    pub fn cpu_cap_per_sec(&self) -> Option<f64> {
        let per_event = self.cpu_secs_per_1000? / 1000.0;
        (per_event > 0.0).then(|| self.cores as f64 / per_event)
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub options: BenchOptions,
    pub directions: Vec<DirectionReport>,
}

impl BenchReport {
    pub fn render(&self) -> String {
        let o = &self.options;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "imbridge bench sync — broker {}, {} partitions, {} 1:1 conversations and {} groups per direction, IM \
             quotas {}, IM callbacks {} in flight",
            o.kafka.bootstrap_servers,
            o.partitions,
            o.conversations,
            o.groups,
            if o.im_quota { "on (documented limits)" } else { "off (raw)" },
            o.callback_concurrency
        );
        let _ = writeln!(
            s,
            "end-to-end = source accepted → other side applied (per 10 events: 5 1:1 messages, 4 group messages, 1 \
             group rename)\n"
        );
        for d in &self.directions {
            let _ = writeln!(s, "{}", d.name);
            let _ = writeln!(
                s,
                "  steady {}/s for {} messages: {}{}",
                d.steady_rate,
                d.steady_sent,
                d.latency.map_or_else(|| "no message arrived".to_owned(), |l| l.to_string()),
                if d.steady_lost > 0 { format!(" — {} NOT APPLIED", d.steady_lost) } else { String::new() }
            );
            let _ = writeln!(
                s,
                "  max sustained: {:.0} msg/s ({} messages offered at {:.0}/s{})",
                d.sustained_per_sec,
                d.burst_sent,
                d.burst_offered_per_sec,
                if d.burst_lost > 0 { format!(", {} NOT APPLIED", d.burst_lost) } else { String::new() }
            );
            let ratio = if d.ceiling_per_sec > 0.0 {
                format!("sustained is {:.1}% of it", d.sustained_per_sec / d.ceiling_per_sec * 100.0)
            } else {
                "no call succeeded: no ratio".to_owned()
            };
            let _ = writeln!(
                s,
                "  raw ceiling ({}): {:.0}/s — {ratio}; CPU {} per 1,000 calls",
                d.ceiling_label,
                d.ceiling_per_sec,
                d.ceiling_cpu_secs_per_1000.map_or_else(|| "-".to_owned(), |c| format!("{c:.3} s"))
            );
            let _ = writeln!(
                s,
                "  process CPU {} per 1,000 burst events, peak RSS {}",
                d.cpu_secs_per_1000.map_or_else(|| "-".to_owned(), |c| format!("{c:.2} s")),
                d.peak_rss_mib.map_or_else(|| "-".to_owned(), |m| format!("{m:.0} MiB"))
            );
            if let Some(cap) = d.cpu_cap_per_sec() {
                let _ = writeln!(
                    s,
                    "  CPU bound: {} cores at that CPU per event sustain at most {cap:.0}/s = {:.1}% of the ceiling \
                     (the broker's CPU not counted)",
                    d.cores,
                    cap / d.ceiling_per_sec.max(f64::MIN_POSITIVE) * 100.0
                );
            }
            let _ = writeln!(s);
        }
        s
    }

    /// Why these figures are not a measurement, if they are not: messages never applied (their latency and the
    /// sustained rate would leave them out), a phase where nothing arrived, a ceiling with no successful call.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.directions {
            if d.steady_lost > 0 {
                out.push(format!(
                    "{}: {} of {} steady-phase messages NOT APPLIED within {:?}",
                    d.name, d.steady_lost, d.steady_sent, ARRIVAL_TIMEOUT
                ));
            }
            if d.latency.is_none() {
                out.push(format!("{}: no steady-phase message arrived: no latency measured", d.name));
            }
            if d.burst_lost > 0 {
                out.push(format!(
                    "{}: {} of {} burst messages NOT APPLIED within {:?}",
                    d.name, d.burst_lost, d.burst_sent, ARRIVAL_TIMEOUT
                ));
            }
            if d.burst_sent == d.burst_lost {
                out.push(format!("{}: no burst message arrived: no sustained rate measured", d.name));
            }
            if d.ceiling_per_sec <= 0.0 {
                out.push(format!("{}: no direct call succeeded: no raw ceiling measured", d.name));
            }
        }
        out
    }
}

/// When each write reached its target, by key (`r<MsgRandom>` for IM sends, the event id for legacy applies).
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Notes when each write to a target was answered, as a layer on the target's own router (a second server of
/// the same emulator, in this process): no extra HTTP hop that the raw ceiling does not pay.
#[derive(Clone)]
struct Observer {
    arrivals: Arrivals,
    legacy: bool,
}

async fn observe(State(p): State<Observer>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (axum::http::StatusCode::BAD_REQUEST, "body").into_response();
    };
    let path = parts.uri.path().to_owned();
    let resp = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    let (rparts, rbody) = resp.into_parts();
    let out = axum::body::to_bytes(rbody, 16 * 1024 * 1024).await.unwrap_or_default();
    note(&p, &path, rparts.status.as_u16(), &bytes, &out, Instant::now());
    Response::from_parts(rparts, Body::from(out))
}

fn note(p: &Observer, path: &str, status: u16, req: &Bytes, resp: &Bytes, at: Instant) {
    let (Ok(q), Ok(a)) = (serde_json::from_slice::<Value>(req), serde_json::from_slice::<Value>(resp)) else {
        return;
    };
    let mut keys = Vec::new();
    if p.legacy {
        if (200..300).contains(&status) || status == 409 {
            for e in q["events"].as_array().into_iter().flatten() {
                keys.extend(e["id"].as_str().map(str::to_owned));
                if e["type"] == "group.updated" {
                    keys.extend(e["name"].as_str().map(|n| format!("n:{n}")));
                }
            }
        }
    } else if a["ErrorCode"] == 0 {
        if path.ends_with("/openim/sendmsg") {
            keys.extend(q["MsgRandom"].as_u64().map(|r| format!("r{r}")));
        } else if path.ends_with("/send_group_msg") {
            keys.extend(q["Random"].as_u64().map(|r| format!("r{r}")));
        } else if path.ends_with("/modify_group_base_info") {
            keys.extend(q["Name"].as_str().map(|n| format!("n:{n}")));
        }
    }
    if let Ok(mut m) = p.arrivals.lock() {
        for k in keys {
            m.entry(k).or_insert(at);
        }
    }
}

/// Serves `router` (an emulator's) on a port of its own with arrivals observed; returns its URL.
async fn spawn_observed(
    router: Router,
    legacy: bool,
    shutdown: CancellationToken,
) -> Result<(String, Arrivals), ToImError> {
    let arrivals: Arrivals = Arc::default();
    let observer = Observer { arrivals: arrivals.clone(), legacy };
    let app = router.layer(axum::middleware::from_fn_with_state(observer, observe));
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bench_err)?;
    let local = listener.local_addr().map_err(bench_err)?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok((format!("http://{local}"), arrivals))
}

fn bench_err(what: impl std::fmt::Display) -> ToImError {
    ToImError::Config(format!("bench: {what}"))
}

/// Everything a run starts.
struct Pipeline {
    im: imbridge_im_emulator::RunningEmulator,
    legacy: imbridge_legacy_emulator::RunningLegacyEmulator,
    ingest: imbridge_ingest::RunningIngest,
    to_im: Running<RunStats, ToImError>,
    to_legacy: Running<RunStats, imbridge_to_legacy::ToLegacyError>,
    im_arrivals: Arrivals,
    legacy_arrivals: Arrivals,
    shutdown: CancellationToken,
    http: reqwest::Client,
    users: Vec<String>,
    app_users: AppUsers,
    /// Groups by the side they were created on: (group id, owner).
    legacy_groups: Vec<(String, String)>,
    im_groups: Vec<(String, String)>,
}

/// What one event of the mixed traffic is.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    C2c(&'a (String, String)),
    GroupMessage(&'a (String, String)),
    GroupRename(&'a (String, String)),
}

/// The `i`-th event of a phase: of every ten, five 1:1 messages, four group messages, one group rename.
fn target<'a>(p: &'a Pipeline, pairs: &'a [(String, String)], legacy_to_im: bool, i: usize) -> Target<'a> {
    let groups = if legacy_to_im { &p.legacy_groups } else { &p.im_groups };
    match (i % 10, groups.is_empty()) {
        (0..5, _) | (_, true) => Target::C2c(&pairs[(i / 2) % pairs.len()]),
        (5..9, false) => Target::GroupMessage(&groups[i % groups.len()]),
        _ => Target::GroupRename(&groups[(i / 10) % groups.len()]),
    }
}

/// Runs the benchmark; see the module docs.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport, ToImError> {
    let p = start(opts).await?;
    let pairs: Vec<(String, String)> =
        (0..opts.conversations).map(|i| (p.users[2 * i].clone(), p.users[2 * i + 1].clone())).collect();
    // Warm-up, not measured: the groups are carried over (their creation went first), then ten events per lane
    // each way, so connections are open, every partition's ledger is loaded and every lane exists before the
    // clock starts.
    for legacy_to_im in [true, false] {
        let (_, sent, lost, _, _) = measure(&p, &pairs, legacy_to_im, Load::Burst(10 * pairs.len()), opts).await?;
        if lost > 0 {
            return Err(bench_err(format!("warm-up: {lost} of {sent} events never applied")));
        }
    }
    let mut directions = Vec::new();
    for legacy_to_im in [true, false] {
        let name = if legacy_to_im { "legacy → IM" } else { "IM → legacy" };
        let measured_first =
            if opts.paced_fraction.is_some() { Some(ceiling(&p, opts, legacy_to_im).await?) } else { None };
        let steady_rate = match (opts.paced_fraction, &measured_first) {
            (Some(f), Some(c)) => (c.per_sec * f).round().max(1.0) as u32,
            _ => opts.steady_rate,
        };
        info!(direction = name, steady_rate, "latency phase");
        let (lat, sent, lost, _, _) =
            measure(&p, &pairs, legacy_to_im, Load::Steady(steady_rate, opts.steady_secs), opts).await?;
        info!(direction = name, "throughput phase");
        let cpu_before = cpu_times(None);
        let (_, burst_sent, burst_lost, offered, sustained) =
            measure(&p, &pairs, legacy_to_im, Load::Burst(opts.burst), opts).await?;
        let cpu_secs_per_1000 = cpu_times(None)
            .zip(cpu_before)
            .map(|(now, before)| now.since(&before).own_secs * 1000.0 / burst_sent.max(1) as f64);
        let ceiling = match measured_first {
            Some(c) => c,
            None => ceiling(&p, opts, legacy_to_im).await?,
        };
        directions.push(DirectionReport {
            name,
            steady_rate,
            steady_sent: sent,
            steady_lost: lost,
            latency: lat,
            burst_sent,
            burst_lost,
            burst_offered_per_sec: offered,
            sustained_per_sec: sustained,
            ceiling_label: ceiling.label,
            ceiling_per_sec: ceiling.per_sec,
            ceiling_cpu_secs_per_1000: ceiling.cpu_secs_per_1000,
            cpu_secs_per_1000,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            peak_rss_mib: peak_rss_mib(None),
        });
    }
    stop(p).await;
    Ok(BenchReport { options: opts.clone(), directions })
}

/// The raw ceiling of the direction's target.
#[derive(Debug, Clone)]
struct Ceiling {
    label: String,
    per_sec: f64,
    /// CPU seconds of this process (caller and target) per 1,000 direct calls.
    cpu_secs_per_1000: Option<f64>,
}

/// Calls the direction's target directly for `ceiling_secs`.
async fn ceiling(p: &Pipeline, opts: &BenchOptions, legacy_to_im: bool) -> Result<Ceiling, ToImError> {
    info!(legacy_to_im, "raw ceiling");
    let cpu_before = cpu_times(None);
    let (label, (calls, per_sec)) = if legacy_to_im {
        let label = if opts.im_quota {
            "IM sendmsg called directly, no client pacing; the emulator enforces IM's 200/s quota"
        } else {
            "IM sendmsg called directly"
        };
        (label.to_owned(), im_ceiling(p, opts).await?)
    } else {
        ("legacy apply called directly, 1 event per request".to_owned(), legacy_ceiling(p, opts).await?)
    };
    let cpu_secs_per_1000 =
        cpu_times(None).zip(cpu_before).map(|(now, before)| now.since(&before).own_secs * 1000.0 / calls.max(1) as f64);
    Ok(Ceiling { label, per_sec, cpu_secs_per_1000 })
}

async fn start(opts: &BenchOptions) -> Result<Pipeline, ToImError> {
    let u = format!("bench-sync-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let topics = TopicNames { partitions: opts.partitions, ..TopicNames::with_prefix(&u) };
    let ingest_cfg = imbridge_ingest::IngestConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        legacy_secret: SigningSecret::new(WEBHOOK_SECRET),
        rest_dismiss_is_echo: true,
        readiness_interval_ms: 300,
        // A spool of its own per run (the bench is not about crash safety; the directory is left in /tmp).
        spool_dir: std::env::temp_dir().join(format!("{u}.ingest-spool")),
        ..imbridge_ingest::IngestConfig::default()
    };
    let emu_cfg = imbridge_im_emulator::EmulatorConfig {
        rate_limits_enabled: opts.im_quota,
        callback_concurrency: opts.callback_concurrency.max(1),
        ..imbridge_im_emulator::EmulatorConfig::default()
    };
    // Every service is built as the binary builds it, each with a registry of its own (they share one process).
    let app = ImConfig {
        sdkappid: emu_cfg.sdkappid,
        admin_identifier: emu_cfg.admin_identifiers.first().cloned().unwrap_or_default(),
        ..ImConfig::default()
    };
    let deps = Deps::new(opts.kafka.clone(), topics.clone(), app);
    let shutdown = deps.shutdown.clone();
    let ingest = imbridge_ingest::spawn(ingest_cfg, deps.detached()).await.map_err(bench_err)?;
    let im = imbridge_im_emulator::spawn(imbridge_im_emulator::EmulatorConfig {
        callback_url: Some(ingest.callback_url()),
        ..emu_cfg
    })
    .await
    .map_err(bench_err)?;
    let legacy = imbridge_legacy_emulator::spawn(imbridge_legacy_emulator::LegacyEmulatorConfig {
        ingest_url: Some(ingest.url()),
        webhook_secret: SigningSecret::new(WEBHOOK_SECRET),
        apply_secrets: vec![SigningSecret::new(APPLY_SECRET)],
        ..imbridge_legacy_emulator::LegacyEmulatorConfig::default()
    })
    .await
    .map_err(bench_err)?;
    let (im_observed, im_arrivals) =
        spawn_observed(imbridge_im_emulator::router(im.emulator().clone()), false, shutdown.clone()).await?;
    let (legacy_observed, legacy_arrivals) = spawn_observed(legacy.emulator().router(), true, shutdown.clone()).await?;

    // Accounts on both sides.
    let users: Vec<String> = (0..opts.conversations * 2).map(|i| format!("bench-u{i:05}")).collect();
    let http = reqwest::Client::new();
    for u in &users {
        let r = http.post(format!("{}/api/users", legacy.url())).json(&json!({"user_id": u})).send().await;
        r.map_err(bench_err)?.error_for_status().map_err(bench_err)?;
    }
    // Groups of three: created on their source side; the pipeline creates them on the other.
    let members = |g: usize| {
        let n = users.len();
        (users[(3 * g) % n].clone(), users[(3 * g + 1) % n].clone(), users[(3 * g + 2) % n].clone())
    };
    let mut legacy_groups = Vec::new();
    let mut im_groups = Vec::new();
    let admin = ImClient::new(&im.client_config(), &prometheus::Registry::new())?;
    for chunk in users.chunks(100) {
        let list = chunk.iter().map(|u| AccountImportReq { user_id: u.clone(), nick: None, face_url: None }).collect();
        admin.multiaccount_import(&MultiAccountImportReq { accounts: None, account_list: Some(list) }).await?;
    }
    for g in 0..opts.groups {
        let (owner, m1, m2) = members(g);
        let id = format!("bench-lg{g:04}");
        let r = http
            .post(format!("{}/api/groups", legacy.url()))
            .json(&json!({"group_id": id, "name": id, "owner": owner, "members": [m1, m2]}))
            .send()
            .await;
        r.map_err(bench_err)?.error_for_status().map_err(bench_err)?;
        legacy_groups.push((id, owner));
    }

    let mut im_cfg: ImConfig = im.client_config();
    im_cfg.base_url = im_observed;
    if !opts.im_quota {
        for api in LIVE_APIS {
            im_cfg.rate_limits.insert(api, RateSetting::Off);
        }
    }
    let group = format!("{u}-to-im");
    let mut to_im_cfg = ToImConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..ToImConfig::default() };
    to_im_cfg.live.group_id = group;
    to_im_cfg.readiness_interval_ms = 300;
    let to_im = ToIm::build(to_im_cfg, &Deps { im: im_cfg, ..deps.detached() }).await?.start().await?;
    let to_legacy_cfg = imbridge_to_legacy::ToLegacyConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        group_id: format!("{u}-to-legacy"),
        apply_url: format!("{legacy_observed}/v1/apply"),
        apply_secret: SigningSecret::new(APPLY_SECRET),
        readiness_interval_ms: 300,
        ..imbridge_to_legacy::ToLegacyConfig::default()
    };
    // Without IM credentials, as before: group seq gaps are not read from IM in the bench.
    let legacy_deps = Deps { im: ImConfig::default(), ..deps.detached() };
    let to_legacy =
        async { ToLegacy::build(to_legacy_cfg, &legacy_deps).await?.start().await }.await.map_err(bench_err)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(to_im.readiness.is_ready() && to_legacy.readiness.is_ready() && ingest.service().readiness().is_ready()) {
        if Instant::now() > deadline {
            return Err(bench_err(format!(
                "services not ready: to-im {:?}, to-legacy {:?}, ingest {:?}",
                to_im.readiness.snapshot(),
                to_legacy.readiness.snapshot(),
                ingest.service().readiness().snapshot()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app_users = AppUsers::new(&im, &users);
    for g in 0..opts.groups {
        let (owner, m1, m2) = members(g);
        let id = format!("bench-ig{g:04}");
        let body = json!({"Owner_Account": owner, "Type": "Public", "GroupId": id, "Name": id,
                          "MemberList": [{"Member_Account": m1}, {"Member_Account": m2}]});
        im_app_call(&http, &app_users, &owner, "group_open_http_svc/create_group", &body).await?;
        im_groups.push((id, owner));
    }
    Ok(Pipeline {
        app_users,
        im,
        legacy,
        ingest,
        to_im,
        to_legacy,
        im_arrivals,
        legacy_arrivals,
        shutdown,
        http,
        users,
        legacy_groups,
        im_groups,
    })
}

/// An IM client API call as `user` (an app user of the new app); IM's answer, which must be a success.
/// Each new-app user's client URL, its UserSig made once (as an app's SDK logs in once, not per message).
struct AppUsers {
    base: String,
    /// `user` → the URL's query (sdkappid, identifier, UserSig).
    queries: HashMap<String, String>,
}

impl AppUsers {
    fn new(im: &imbridge_im_emulator::RunningEmulator, users: &[String]) -> Self {
        let e = im.emulator();
        let sdkappid = e.config().sdkappid;
        let queries = users
            .iter()
            .map(|u| {
                (u.clone(), format!("sdkappid={sdkappid}&identifier={u}&usersig={}&platform=Android", e.usersig(u)))
            })
            .collect();
        Self { base: format!("{}/emulator/client/v4", im.base_url()), queries }
    }

    fn url(&self, user: &str, api: &str) -> String {
        format!("{}/{api}?{}", self.base, self.queries.get(user).map_or("", String::as_str))
    }
}

async fn im_app_call(
    http: &reqwest::Client,
    users: &AppUsers,
    user: &str,
    api: &str,
    body: &Value,
) -> Result<Value, ToImError> {
    let v: Value =
        http.post(users.url(user, api)).json(body).send().await.map_err(bench_err)?.json().await.map_err(bench_err)?;
    if v["ErrorCode"] != 0 {
        return Err(bench_err(format!("im {api}: {v}")));
    }
    Ok(v)
}

async fn stop(p: Pipeline) {
    p.shutdown.cancel();
    let _ = p.to_im.wait().await;
    let _ = p.to_legacy.wait().await;
    p.ingest.shutdown().await;
    let _ = p.legacy.shutdown().await;
    let _ = p.im.shutdown().await;
}

#[derive(Debug, Clone, Copy)]
enum Load {
    /// Messages per second for seconds, open loop.
    Steady(u32, u64),
    /// This many messages, as fast as `concurrency` senders get them accepted.
    Burst(usize),
}

/// Sends one event from the source side; returns the arrival key and when the source accepted it.
async fn send_one(
    p: &Pipeline,
    target: Target<'_>,
    legacy_to_im: bool,
    n: u64,
) -> Result<(String, Instant), ToImError> {
    let text = format!("bench {n}");
    if legacy_to_im {
        let legacy = p.legacy.url();
        let (req, rename) = match target {
            Target::C2c(pair) => (
                p.http
                    .post(format!("{legacy}/api/messages"))
                    .json(&json!({"from": pair.0, "to": pair.1, "body": [{"type": "text", "text": text}]})),
                None,
            ),
            Target::GroupMessage((group, owner)) => (
                p.http
                    .post(format!("{legacy}/api/groups/{group}/messages"))
                    .json(&json!({"from": owner, "body": [{"type": "text", "text": text}]})),
                None,
            ),
            Target::GroupRename((group, owner)) => {
                let name = format!("bench-name-{n}");
                let req = p
                    .http
                    .patch(format!("{legacy}/api/groups/{group}"))
                    .json(&json!({"operator": owner, "name": name}));
                (req, Some(name))
            }
        };
        let r = req.send().await.map_err(bench_err)?;
        let v: Value = r.error_for_status().map_err(bench_err)?.json().await.map_err(bench_err)?;
        let accepted = Instant::now();
        if let Some(name) = rename {
            return Ok((format!("n:{name}"), accepted));
        }
        let id = v["id"].as_str().ok_or_else(|| bench_err("legacy answered no id"))?;
        Ok((format!("r{}", EventId::legacy(id).stable_u32()), accepted))
    } else {
        let body = [json!({"MsgType": "TIMTextElem", "MsgContent": {"Text": text}})];
        match target {
            Target::C2c(pair) => {
                let req = json!({"To_Account": pair.0, "MsgRandom": rand::random::<u32>(), "MsgSeq": n as u32 + 1,
                                 "MsgBody": body});
                let v = im_app_call(&p.http, &p.app_users, &pair.1, "openim/sendmsg", &req).await?;
                let accepted = Instant::now();
                let key = v["MsgKey"].as_str().ok_or_else(|| bench_err(format!("im: {v}")))?;
                Ok((EventId::im_c2c(&UserId::new_unchecked(&pair.1), key).as_str().to_owned(), accepted))
            }
            Target::GroupMessage((group, owner)) => {
                let req = json!({"GroupId": group, "Random": rand::random::<u32>(), "MsgBody": body});
                let v = im_app_call(&p.http, &p.app_users, owner, "group_open_http_svc/send_group_msg", &req).await?;
                let accepted = Instant::now();
                let seq = v["MsgSeq"].as_u64().ok_or_else(|| bench_err(format!("im: {v}")))?;
                let id = EventId::im_group_message(&GroupId::new_unchecked(group), seq);
                Ok((id.as_str().to_owned(), accepted))
            }
            Target::GroupRename((group, owner)) => {
                let name = format!("bench-name-{n}");
                let req = json!({"GroupId": group, "Name": name});
                im_app_call(&p.http, &p.app_users, owner, "group_open_http_svc/modify_group_base_info", &req).await?;
                Ok((format!("n:{name}"), Instant::now()))
            }
        }
    }
}

/// Drives one load in one direction and waits for every message to arrive.
/// Returns (latencies, sent, lost, offered rate, sustained rate).
async fn measure(
    p: &Pipeline,
    pairs: &[(String, String)],
    legacy_to_im: bool,
    load: Load,
    opts: &BenchOptions,
) -> Result<(Option<LatencySummary>, usize, usize, f64, f64), ToImError> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let next = || N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let accepted: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let started = Instant::now();
    match load {
        Load::Steady(rate, secs) => {
            let total = u64::from(rate) * secs;
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Open loop: sends start on the clock whatever earlier ones are doing, so a slow answer does not
            // lower the offered rate.
            let mut inflight = FuturesUnordered::new();
            let mut i = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick(), if i < total => {
                        let t = target(p, pairs, legacy_to_im, i as usize);
                        inflight.push(send_one(p, t, legacy_to_im, next()));
                        i += 1;
                    }
                    Some(r) = inflight.next(), if !inflight.is_empty() => {
                        let (key, at) = r?;
                        accepted.lock().map_err(|_| bench_err("lock"))?.push((key, at));
                    }
                    else => break,
                }
            }
        }
        Load::Burst(n) => {
            let per = n.div_ceil(opts.concurrency.max(1));
            let mut futs = Vec::new();
            for w in 0..opts.concurrency.max(1) {
                let acc = accepted.clone();
                futs.push(async move {
                    for k in 0..per {
                        let i = w * per + k;
                        if i >= n {
                            break;
                        }
                        let t = target(p, pairs, legacy_to_im, i);
                        let (key, at) = send_one(p, t, legacy_to_im, next()).await?;
                        acc.lock().map_err(|_| bench_err("lock"))?.push((key, at));
                    }
                    Ok::<(), ToImError>(())
                });
            }
            for r in futures::future::join_all(futs).await {
                r?;
            }
        }
    }
    let offered_secs = started.elapsed().as_secs_f64();
    let sent: Vec<(String, Instant)> = accepted.lock().map_err(|_| bench_err("lock"))?.clone();
    let arrivals = if legacy_to_im { &p.im_arrivals } else { &p.legacy_arrivals };
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    // Only what has not arrived is looked up again: a scan of every sent key each tick would hold the arrivals'
    // lock (which the observers take for every answer) and bill its CPU to the pipeline.
    let mut waiting: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
    loop {
        {
            let m = arrivals.lock().map_err(|_| bench_err("lock"))?;
            waiting.retain(|k| !m.contains_key(*k));
        }
        if waiting.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = arrivals.lock().map_err(|_| bench_err("lock"))?;
    let mut lat = Latencies::with_capacity(sent.len());
    let mut lost = 0;
    let mut last = started;
    for (k, at) in &sent {
        match m.get(k) {
            Some(arrived) => {
                lat.record(arrived.saturating_duration_since(*at));
                last = last.max(*arrived);
            }
            None => lost += 1,
        }
    }
    let first = sent.iter().map(|(_, at)| *at).min().unwrap_or(started);
    let span = last.saturating_duration_since(first).as_secs_f64().max(1e-3);
    let applied = sent.len() - lost;
    Ok((lat.summary(), sent.len(), lost, sent.len() as f64 / offered_secs.max(1e-3), applied as f64 / span))
}

/// IM `sendmsg` calls per second answered OK when called directly by `concurrency` callers. Raw: no client-side
/// pacing and one attempt per call, so with the emulator enforcing IM's quota this is what the quota lets
/// through (60007 answers do not count), not imbridge's own limiter.
async fn im_ceiling(p: &Pipeline, opts: &BenchOptions) -> Result<(u64, f64), ToImError> {
    let mut cfg = p.im.client_config();
    cfg.rate_limits.insert(Api::SendMsg, RateSetting::Off);
    cfg.retry.max_attempts = 1;
    let im = ImClient::new(&cfg, &prometheus::Registry::new())?;
    let until = Instant::now() + Duration::from_secs(opts.ceiling_secs);
    let started = Instant::now();
    let mut futs = Vec::new();
    for w in 0..opts.concurrency.max(1) {
        let im = im.clone();
        let (from, to) = (p.users[(2 * w) % p.users.len()].clone(), p.users[(2 * w + 1) % p.users.len()].clone());
        futs.push(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let req = SendMsgReq {
                    from_account: Some(from.clone()),
                    to_account: to.clone(),
                    msg_random: rand::random(),
                    msg_seq: Some(rand::random()),
                    msg_body: vec![MsgElement::text("ceiling")],
                    // Callbacks of these would queue in front of the next phase's (and come back as IM events).
                    forbid_callback_control: Some(vec![
                        FORBID_BEFORE_SEND_CALLBACK.to_owned(),
                        FORBID_AFTER_SEND_CALLBACK.to_owned(),
                    ]),
                    ..Default::default()
                };
                if im.sendmsg(&req).await.is_ok() {
                    n += 1;
                }
            }
            n
        });
    }
    let total: u64 = futures::future::join_all(futs).await.into_iter().sum();
    Ok((total, total as f64 / started.elapsed().as_secs_f64()))
}

/// Legacy apply requests (one event each) per second answered when called directly by `concurrency` callers.
async fn legacy_ceiling(p: &Pipeline, opts: &BenchOptions) -> Result<(u64, f64), ToImError> {
    let client = ApplyClient::new(
        ApplyConfig::new(p.legacy.apply_url(), SigningSecret::new(APPLY_SECRET)),
        &prometheus::Registry::new(),
    )
    .map_err(bench_err)?;
    let until = Instant::now() + Duration::from_secs(opts.ceiling_secs);
    let started = Instant::now();
    let mut futs = Vec::new();
    for w in 0..opts.concurrency.max(1) {
        let client = client.clone();
        let (from, to) = (p.users[(2 * w) % p.users.len()].clone(), p.users[(2 * w + 1) % p.users.len()].clone());
        futs.push(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let event = Event::C2cMessage(C2cMessage {
                    from: UserId::new_unchecked(&from),
                    to: UserId::new_unchecked(&to),
                    body: vec![Element::Text { text: "ceiling".into() }],
                    custom_data: None,
                });
                let key = format!("ceiling-{w}-{n}-{}", rand::random::<u32>());
                let env = Envelope {
                    id: EventId::im_c2c(&UserId::new_unchecked(&from), &key),
                    source: Source::Im,
                    conversation: event.conversation(),
                    time: TimestampMs(0),
                    recorded_at: None,
                    event,
                };
                let Ok(ev) = ContractEvent::from_im_envelope(&env) else { break };
                if client.send_once(&[ev]).await.is_ok() {
                    n += 1;
                }
            }
            n
        });
    }
    let total: u64 = futures::future::join_all(futs).await.into_iter().sum();
    Ok((total, total as f64 / started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direction(
        steady_lost: usize,
        latency: Option<LatencySummary>,
        burst_lost: usize,
        ceiling: f64,
    ) -> DirectionReport {
        DirectionReport {
            name: "legacy → IM",
            steady_rate: 50,
            steady_sent: 500,
            steady_lost,
            latency,
            burst_sent: 2000,
            burst_lost,
            burst_offered_per_sec: 900.0,
            sustained_per_sec: 800.0,
            ceiling_label: "IM sendmsg called directly".into(),
            ceiling_per_sec: ceiling,
            ceiling_cpu_secs_per_1000: Some(0.08),
            cpu_secs_per_1000: Some(1.5),
            cores: 2,
            peak_rss_mib: Some(120.0),
        }
    }

    fn report(d: DirectionReport) -> BenchReport {
        BenchReport { options: BenchOptions::default(), directions: vec![d] }
    }

    #[test]
    fn a_run_that_measured_everything_has_no_problem() {
        let lat = LatencySummary { p50_ms: 5.0, p95_ms: 9.0, p99_ms: 12.0, max_ms: 20.0 };
        let r = report(direction(0, Some(lat), 0, 1500.0));
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert!(r.render().contains("sustained is 53.3% of it"), "{}", r.render());
        // 1.5 CPU-s per 1,000 events on 2 cores: at most 1,333/s, 88.9% of a 1,500/s ceiling.
        assert!(r.render().contains("sustain at most 1333/s = 88.9% of the ceiling"), "{}", r.render());
    }

    #[test]
    fn lost_messages_no_arrivals_and_no_ceiling_are_problems() {
        let lat = LatencySummary { p50_ms: 5.0, p95_ms: 9.0, p99_ms: 12.0, max_ms: 20.0 };
        let p = report(direction(3, Some(lat), 0, 1500.0)).problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("3 of 500 steady-phase messages NOT APPLIED"), "{p:?}");
        let r = report(direction(500, None, 2000, 0.0));
        let p = r.problems().join("\n");
        for want in ["no latency measured", "2000 of 2000 burst", "no sustained rate", "no raw ceiling"] {
            assert!(p.contains(want), "{want} in {p}");
        }
        let text = r.render();
        assert!(text.contains("no message arrived") && !text.contains(" 0.0 ms"), "{text}");
        assert!(text.contains("no call succeeded: no ratio"), "{text}");
    }
}
