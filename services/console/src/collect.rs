//! The collector: every `refresh_interval_ms` it reads Kafka as `imbridge status` does (consumer groups, lag,
//! DLQ, parked and importing conversations), the importer's checkpoint (when the import started), and every
//! watched service's `/metrics` and `/readyz`; it keeps `history_points` of them and turns the latest into a
//! [`Snapshot`]: rates and ETAs are differences over the history, latency quantiles come from the histogram
//! buckets' growth over the last minute (or since the service started when nothing moved in that minute).
//!
//! A failure of one source never blanks the page: a service that does not answer shows as down, and a Kafka
//! error is shown beside the last numbers Kafka gave.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imbridge_core::TimestampMs;
use imbridge_core::topics::ImportPhase;
use imbridge_demo::prom::{Page, quantile};
use imbridge_im::Api;
use imbridge_importer::checkpoint::RunCheckpoint;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_telemetry::Readiness;
use imbridge_to_im::status::{StatusReport, collect as collect_status};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::View;
use crate::config::{ConsoleConfig, ServiceKind};
use crate::metrics::Metrics;
use crate::trace::dlq_commands;

/// Rates are differences over about this long.
const RATE_WINDOW_MS: i64 = 30_000;
/// Latency quantiles are over about this long.
const LATENCY_WINDOW_MS: i64 = 60_000;

/// Everything the page shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub taken_at: TimestampMs,
    /// How long this round of reading Kafka and scraping took, seconds.
    pub round_secs: f64,
    /// Why Kafka could not be read this time (the Kafka numbers are then from the last good read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_error: Option<String>,
    pub import: ImportView,
    pub directions: Vec<DirectionView>,
    pub groups: Vec<GroupView>,
    pub phases: PhaseView,
    pub dlq: DlqView,
    pub reconcile: ReconcileView,
    pub health: Vec<HealthView>,
    /// IM's frequency-limit answers (60007 …) per second, summed over the watched services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_limited_per_sec: Option<f64>,
}

/// The bulk import, per phase.
#[derive(Debug, Clone, Serialize)]
pub struct ImportView {
    pub phases: Vec<ImportPhaseView>,
    /// When the latest import run started (the importer's checkpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<TimestampMs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<TimestampMs>,
    /// Wall time of the run so far (or in all, once completed), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_secs: Option<f64>,
    /// The least wall time IM's configured quotas allow for the records on the import topics: accounts, then
    /// the slowest of the other phases (they apply in parallel), seconds.
    pub lower_bound_secs: f64,
}

/// One import phase (one import topic and its consumer group).
#[derive(Debug, Clone, Serialize)]
pub struct ImportPhaseView {
    pub phase: String,
    /// The record kinds of this phase.
    pub kinds: String,
    pub topic: String,
    pub group: String,
    pub topic_exists: bool,
    /// Records applied (committed by the phase's group).
    pub done: i64,
    /// Records on the topic.
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
    /// The least time IM's quota for this phase's main API allows for its records, seconds.
    pub lower_bound_secs: f64,
    /// That API and its configured rate (`importmsg at 200/s`).
    pub bound_by: String,
}

/// One real-time direction.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionView {
    /// `legacy → IM` or `IM → legacy`.
    pub name: String,
    pub group: String,
    pub topic: String,
    /// Events ingest accepted from this direction's source, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_per_sec: Option<f64>,
    /// Events the consumer finished (applied, duplicates, dead-lettered), per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_per_sec: Option<f64>,
    /// End to end (event time on the source → applied on the other side), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_secs: Option<f64>,
    /// What the quantiles cover: `last minute`, `since start`, or why there are none.
    pub latency_over: String,
    pub lag: i64,
}

/// One consumer group with its lag history.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group: String,
    pub topic: String,
    pub topic_exists: bool,
    pub lag: i64,
    /// Active members; empty = stopped.
    pub members: Vec<String>,
    /// (Unix ms, lag), oldest first.
    pub series: Vec<(i64, i64)>,
}

/// Conversations per migration phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseView {
    pub importing: u64,
    pub live: u64,
    /// Some of the importing ones.
    pub importing_sample: Vec<String>,
}

/// The DLQ and the conversations parked behind it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DlqView {
    pub topic: String,
    pub depth: i64,
    pub unresolved: u64,
    pub parked: Vec<ParkedView>,
}

/// One parked conversation.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedView {
    pub conversation: String,
    pub topic: String,
    pub records: u64,
    pub first_kind: String,
    pub first_reason: String,
    /// `show`, `replay`, `drop`, exactly as typed.
    pub commands: Vec<String>,
}

/// Reconciliation's findings, from `imbridge_reconcile_differences_total` on any watched service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileView {
    /// Some watched service exports the reconcile metrics.
    pub running: bool,
    /// Differences found, by `kind` label.
    pub differences: BTreeMap<String, f64>,
    /// Differences repaired (`imbridge_reconcile_repaired_total`), when exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<f64>,
}

/// One watched service's readiness.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub name: String,
    pub kind: String,
    pub url: String,
    /// `/readyz` answered 200.
    pub ready: bool,
    /// `200`, `503`, or why there was no answer.
    pub status: String,
    /// The checks `/readyz` named.
    pub detail: String,
}

/// One collection round, kept for history.
#[derive(Debug, Clone)]
struct Round {
    at_ms: i64,
    /// Committed records per (group, topic).
    consumed: HashMap<String, i64>,
    lag: HashMap<String, i64>,
    /// Counter sums by name (see [`COUNTERS`]), summed over instances.
    counters: HashMap<&'static str, f64>,
    /// Histograms by name, summed over instances.
    histograms: HashMap<&'static str, Vec<(f64, f64)>>,
}

/// A counter the page turns into a rate: (key, service kind, metric, label filter).
type CounterSpec = (&'static str, ServiceKind, &'static str, Option<(&'static str, &'static str)>);

/// Counters the page turns into rates.
const COUNTERS: [CounterSpec; 5] = [
    ("ingest_legacy", ServiceKind::Ingest, "imbridge_ingest_events_total", Some(("source", "legacy"))),
    ("ingest_im", ServiceKind::Ingest, "imbridge_ingest_events_total", Some(("source", "im"))),
    ("to_im", ServiceKind::ToIm, "imbridge_to_im_records_total", None),
    ("to_legacy", ServiceKind::ToLegacy, "imbridge_to_legacy_records_total", None),
    ("limited", ServiceKind::Other, "imbridge_im_frequency_limited_total", None),
];

const HISTOGRAMS: [(&str, ServiceKind, &str); 2] = [
    ("to_im", ServiceKind::ToIm, "imbridge_to_im_end_to_end_seconds"),
    ("to_legacy", ServiceKind::ToLegacy, "imbridge_to_legacy_end_to_end_seconds"),
];

/// The collector's state, shared with the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    latest: Arc<RwLock<Option<Snapshot>>>,
}

impl Shared {
    /// The latest snapshot, `None` until the first round finished.
    pub fn latest(&self) -> Option<Snapshot> {
        self.latest.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, s: Snapshot) {
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }
}

/// Runs collection rounds until `shutdown`; after each one the gauges in `metrics` and the `kafka` readiness
/// check say what it read.
pub async fn run(
    config: ConsoleConfig,
    deps: View,
    shared: Shared,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let http =
        reqwest::Client::builder().timeout(Duration::from_millis(config.scrape_timeout_ms)).build().unwrap_or_default();
    let mut history: VecDeque<Round> = VecDeque::with_capacity(config.history_points + 1);
    let mut last_status: Option<StatusReport> = None;
    let mut import_run: Option<RunCheckpoint> = None;
    let every = Duration::from_millis(config.refresh_interval_ms);
    loop {
        let started = tokio::time::Instant::now();
        let (status, kafka_error) = match collect_status(&deps.kafka, &deps.topics, &deps.groups(), None).await {
            Ok(s) => (Some(s), None),
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot read kafka");
                (None, Some(e.to_string()))
            }
        };
        if status.is_some() {
            last_status = status;
            if let Ok(Some(r)) = latest_checkpoint(&deps).await {
                import_run = Some(r);
            }
        }
        let pages = scrape(&http, &config).await;
        let round = Round::new(last_status.as_ref(), &pages);
        history.push_back(round);
        while history.len() > config.history_points {
            history.pop_front();
        }
        let mut snap = build(&deps, last_status.as_ref(), import_run.as_ref(), &pages, &history, kafka_error);
        snap.round_secs = started.elapsed().as_secs_f64();
        tracing::debug!(round_secs = snap.round_secs, "console round");
        readiness.set("kafka", snap.kafka_error.is_none());
        metrics.observe(&snap);
        shared.set(snap);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(started + every) => {}
        }
    }
}

/// One service's answers this round.
#[derive(Debug, Clone)]
struct Scraped {
    kind: ServiceKind,
    name: String,
    url: String,
    metrics: Option<Page>,
    ready: Result<(u16, String), String>,
}

async fn scrape(http: &reqwest::Client, config: &ConsoleConfig) -> Vec<Scraped> {
    let one = |s: crate::ServiceEndpoint| {
        let http = http.clone();
        async move {
            let base = s.url.trim_end_matches('/');
            let metrics = match http.get(format!("{base}/metrics")).send().await {
                Ok(r) if r.status().is_success() => r.text().await.ok().map(|t| Page::parse(&t)),
                _ => None,
            };
            let ready = match http.get(format!("{base}/readyz")).send().await {
                Ok(r) => {
                    let code = r.status().as_u16();
                    Ok((code, r.text().await.unwrap_or_default()))
                }
                Err(e) if e.is_timeout() => Err("no answer (timeout)".to_owned()),
                Err(e) if e.is_connect() => Err("not reachable".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            Scraped { kind: s.kind, name: s.name, url: s.url, metrics, ready }
        }
    };
    let tasks: Vec<_> = config.services.iter().cloned().map(|s| tokio::spawn(one(s))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(s) = t.await {
            out.push(s);
        }
    }
    out
}

/// The latest import run's checkpoint (the one started last), if the checkpoint topic exists.
async fn latest_checkpoint(deps: &View) -> Result<Option<RunCheckpoint>, imbridge_kafka::KafkaError> {
    if Admin::new(&deps.kafka)?.partition_count(&deps.topics.import_checkpoints).await? == 0 {
        return Ok(None);
    }
    let best: Arc<std::sync::Mutex<Option<RunCheckpoint>>> = Arc::default();
    let sink = best.clone();
    read_range(&deps.kafka, &deps.topics.import_checkpoints, None, Start::Earliest, move |r| {
        if let Some(c) = r.payload.as_deref().and_then(|p| serde_json::from_slice::<RunCheckpoint>(p).ok()) {
            let mut b = sink.lock().unwrap_or_else(|p| p.into_inner());
            if b.as_ref().is_none_or(|x| c.started_at_ms >= x.started_at_ms) {
                *b = Some(c);
            }
        }
        true
    })
    .await?;
    let out = best.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(out)
}

fn group_key(group: &str, topic: &str) -> String {
    format!("{group}\u{1f}{topic}")
}

impl Round {
    fn new(status: Option<&StatusReport>, pages: &[Scraped]) -> Round {
        let mut consumed = HashMap::new();
        let mut lag = HashMap::new();
        for g in status.map(|s| s.groups.as_slice()).unwrap_or_default() {
            let end: i64 = g.partitions.iter().map(|p| p.end).sum();
            consumed.insert(group_key(&g.group, &g.topic), end - g.lag);
            lag.insert(group_key(&g.group, &g.topic), g.lag);
        }
        let mut counters = HashMap::new();
        for (key, kind, name, label) in COUNTERS {
            let labels: Vec<(&str, &str)> = label.into_iter().collect();
            let v: f64 = pages
                .iter()
                .filter(|p| kind == ServiceKind::Other || p.kind == kind)
                .filter_map(|p| p.metrics.as_ref())
                .map(|m| m.sum(name, &labels))
                .sum();
            counters.insert(key, v);
        }
        let mut histograms = HashMap::new();
        for (key, kind, name) in HISTOGRAMS {
            let mut sum: Vec<(f64, f64)> = Vec::new();
            for m in pages.iter().filter(|p| p.kind == kind).filter_map(|p| p.metrics.as_ref()) {
                for (le, c) in m.histogram(name) {
                    match sum.iter_mut().find(|(b, _)| *b == le) {
                        Some((_, x)) => *x += c,
                        None => sum.push((le, c)),
                    }
                }
            }
            sum.sort_by(|a, b| a.0.total_cmp(&b.0));
            histograms.insert(key, sum);
        }
        Round { at_ms: TimestampMs::now().as_millis(), consumed, lag, counters, histograms }
    }
}

/// The oldest round within `window_ms` of the newest (but not the newest itself).
fn base(history: &VecDeque<Round>, window_ms: i64) -> Option<(&Round, &Round)> {
    let now = history.back()?;
    let old = history.iter().find(|r| now.at_ms - r.at_ms <= window_ms && r.at_ms < now.at_ms)?;
    Some((old, now))
}

/// Per-second growth of a value between two rounds; `None` without two rounds or after a reset.
fn rate(history: &VecDeque<Round>, f: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
    let (old, now) = base(history, RATE_WINDOW_MS)?;
    let d = f(now)? - f(old)?;
    let secs = (now.at_ms - old.at_ms) as f64 / 1000.0;
    (d >= 0.0 && secs > 0.0).then(|| d / secs)
}

fn latency(history: &VecDeque<Round>, key: &str) -> (Option<f64>, Option<f64>, String) {
    let Some(now) = history.back().and_then(|r| r.histograms.get(key)) else {
        return (None, None, "no service of this kind watched".into());
    };
    if now.last().is_none_or(|(_, c)| *c <= 0.0) {
        return (None, None, "nothing applied yet".into());
    }
    if let Some((old, _)) = base(history, LATENCY_WINDOW_MS)
        && let Some(old) = old.histograms.get(key)
    {
        let delta: Vec<(f64, f64)> =
            now.iter().map(|(le, c)| (*le, c - old.iter().find(|(b, _)| b == le).map_or(0.0, |(_, o)| *o))).collect();
        if delta.iter().all(|(_, c)| *c >= 0.0) && delta.last().is_some_and(|(_, c)| *c > 0.0) {
            return (quantile(&delta, 0.5), quantile(&delta, 0.99), "last minute".into());
        }
    }
    (quantile(now, 0.5), quantile(now, 0.99), "since start (nothing in the last minute)".into())
}

/// The phase's main API and how many records one call carries at most: the quota-bound lower bound.
fn bound_api(which: ImportPhase) -> (Api, f64, &'static str) {
    use imbridge_im::types::{account, group, sns};
    match which {
        ImportPhase::Accounts => (Api::MultiAccountImport, account::MULTIACCOUNT_IMPORT_MAX as f64, "accounts"),
        ImportPhase::Users => (Api::FriendImport, sns::FRIEND_IMPORT_MAX as f64, "profiles, friendships"),
        ImportPhase::C2c => (Api::ImportMsg, 1.0, "1:1 messages, read marks"),
        ImportPhase::Groups => {
            (Api::ImportGroupMsg, group::IMPORT_GROUP_MSG_MAX as f64, "groups, members, group messages, unread counts")
        }
    }
}

fn build(
    deps: &View,
    status: Option<&StatusReport>,
    run: Option<&RunCheckpoint>,
    pages: &[Scraped],
    history: &VecDeque<Round>,
    kafka_error: Option<String>,
) -> Snapshot {
    let now = TimestampMs::now();
    let empty = Vec::new();
    let groups_st = status.map_or(&empty, |s| &s.groups);
    let members = |g: &str| status.and_then(|s| s.members.get(g)).cloned().unwrap_or_default();
    let series = |key: &str| -> Vec<(i64, i64)> {
        history.iter().filter_map(|r| r.lag.get(key).map(|l| (r.at_ms, *l))).collect()
    };
    let groups: Vec<GroupView> = deps
        .groups()
        .into_iter()
        .map(|(group, topic)| {
            let st = groups_st.iter().find(|g| g.group == group && g.topic == topic);
            let key = group_key(&group, &topic);
            GroupView {
                lag: st.map_or(0, |g| g.lag),
                topic_exists: st.is_some_and(|g| g.topic_exists),
                members: members(&group),
                series: series(&key),
                group,
                topic,
            }
        })
        .collect();
    // Import phases.
    let mut phases = Vec::new();
    let mut accounts_secs = 0.0;
    let mut slowest_other: f64 = 0.0;
    for (which, group) in &deps.groups.import {
        let topic = deps.import_topic(*which).to_owned();
        let st = groups_st.iter().find(|g| g.group == *group && g.topic == topic);
        let total: i64 = st.map_or(0, |g| g.partitions.iter().map(|p| p.end).sum());
        let done = total - st.map_or(0, |g| g.lag);
        let key = group_key(group, &topic);
        let r = rate(history, |h| h.consumed.get(&key).map(|v| *v as f64));
        let (api, per_call, kinds) = bound_api(*which);
        let per_sec = deps.im.rate_for(api).per_sec();
        let lb = per_sec.map_or(0.0, |r| total as f64 / (r * per_call));
        if *which == ImportPhase::Accounts {
            accounts_secs = lb;
        } else {
            slowest_other = slowest_other.max(lb);
        }
        let left = (total - done).max(0) as f64;
        phases.push(ImportPhaseView {
            phase: which.as_str().to_owned(),
            kinds: kinds.to_owned(),
            topic_exists: st.is_some_and(|g| g.topic_exists),
            topic,
            group: group.clone(),
            done,
            total,
            rate_per_sec: r,
            eta_secs: if left == 0.0 { Some(0.0) } else { r.filter(|r| *r > 0.0).map(|r| left / r) },
            lower_bound_secs: lb,
            bound_by: match per_sec {
                Some(r) => format!("{} at {r}/s × {per_call} per call", api.as_str()),
                None => format!("{} (no client limit configured)", api.as_str()),
            },
        });
    }
    let import = ImportView {
        phases,
        started_at: run.map(|r| TimestampMs(r.started_at_ms)),
        completed_at: run.and_then(|r| r.completed_at_ms).map(TimestampMs),
        elapsed_secs: run.map(|r| (r.completed_at_ms.unwrap_or(now.as_millis()) - r.started_at_ms) as f64 / 1000.0),
        lower_bound_secs: accounts_secs + slowest_other,
    };
    let counter = |k: &'static str| move |r: &Round| r.counters.get(k).copied();
    let watched = |kind: ServiceKind| pages.iter().any(|p| p.kind == kind);
    let direction = |name: &str, group: &str, topic: &str, ingest: &'static str, applied: &'static str| {
        let (p50, p99, over) = latency(history, applied);
        DirectionView {
            name: name.to_owned(),
            group: group.to_owned(),
            topic: topic.to_owned(),
            accepted_per_sec: if watched(ServiceKind::Ingest) { rate(history, counter(ingest)) } else { None },
            applied_per_sec: rate(history, counter(applied)),
            p50_secs: p50,
            p99_secs: p99,
            latency_over: over,
            lag: groups.iter().find(|g| g.group == group && g.topic == topic).map_or(0, |g| g.lag),
        }
    };
    let directions = vec![
        direction("legacy → IM", &deps.groups.to_im, &deps.topics.legacy_events, "ingest_legacy", "to_im"),
        direction("IM → legacy", &deps.groups.to_legacy, &deps.topics.im_events, "ingest_im", "to_legacy"),
    ];
    let phases = status.map_or_else(PhaseView::default, |s| PhaseView {
        importing: s.phases.importing,
        live: s.phases.live,
        importing_sample: s.importing.clone(),
    });
    let dlq = status.map_or_else(
        || DlqView { topic: deps.topics.dlq.clone(), ..DlqView::default() },
        |s| DlqView {
            topic: s.dlq_topic.clone(),
            depth: s.dlq_depth,
            unresolved: s.dlq_unresolved,
            parked: s
                .parked
                .iter()
                .map(|p| ParkedView {
                    conversation: p.conversation.clone(),
                    topic: p.topic.clone(),
                    records: p.records,
                    first_kind: p.first_kind.clone(),
                    first_reason: p.first_reason.clone(),
                    commands: dlq_commands(&p.conversation),
                })
                .collect(),
        },
    );
    let mut reconcile = ReconcileView::default();
    for m in pages.iter().filter_map(|p| p.metrics.as_ref()) {
        for s in m.select("imbridge_reconcile_differences_total", &[]) {
            reconcile.running = true;
            *reconcile.differences.entry(s.label("kind").unwrap_or("all").to_owned()).or_default() += s.value;
        }
        if m.select("imbridge_reconcile_repaired_total", &[]).next().is_some() {
            *reconcile.repaired.get_or_insert(0.0) += m.sum("imbridge_reconcile_repaired_total", &[]);
        }
    }
    let health = pages
        .iter()
        .map(|p| {
            let (ready, status, detail) = match &p.ready {
                Ok((code, body)) => (*code == 200, code.to_string(), body.trim().to_owned()),
                Err(e) => (false, e.clone(), String::new()),
            };
            HealthView {
                name: p.name.clone(),
                kind: p.kind.as_str().to_owned(),
                url: p.url.clone(),
                ready,
                status,
                detail,
            }
        })
        .collect();
    Snapshot {
        taken_at: now,
        round_secs: 0.0,
        kafka_error,
        import,
        directions,
        groups,
        phases,
        dlq,
        reconcile,
        health,
        frequency_limited_per_sec: rate(history, counter("limited")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(at_ms: i64, consumed: i64, buckets: &[(f64, f64)]) -> Round {
        Round {
            at_ms,
            consumed: [("g".to_owned(), consumed)].into_iter().collect(),
            lag: HashMap::new(),
            counters: [("to_im", consumed as f64)].into_iter().collect(),
            histograms: [("to_im", buckets.to_vec())].into_iter().collect(),
        }
    }

    #[test]
    fn rates_and_latency_windows() {
        let mut h = VecDeque::new();
        h.push_back(round(0, 0, &[(0.1, 0.0), (1.0, 0.0), (f64::INFINITY, 0.0)]));
        assert_eq!(rate(&h, |r| r.consumed.get("g").map(|v| *v as f64)), None, "one round: no rate");
        h.push_back(round(10_000, 50, &[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]));
        assert_eq!(rate(&h, |r| r.consumed.get("g").map(|v| *v as f64)), Some(5.0));
        let (p50, p99, over) = latency(&h, "to_im");
        assert_eq!(over, "last minute");
        assert!(p50.is_some_and(|v| (v - 0.1).abs() < 1e-9), "{p50:?}");
        assert!(p99.is_some_and(|v| v > 0.9 && v <= 1.0), "{p99:?}");
        // Nothing new within the window: quantiles over everything since start.
        h.push_back(round(80_000, 50, &[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]));
        h.push_back(round(90_000, 50, &[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]));
        assert!(latency(&h, "to_im").2.starts_with("since start"));
        assert_eq!(rate(&h, |r| r.consumed.get("g").map(|v| *v as f64)), Some(0.0));
        // A counter that went down (a restarted service) gives no rate rather than a negative one.
        h.push_back(round(95_000, 10, &[]));
        assert_eq!(rate(&h, |r| r.counters.get("to_im").copied()), None);
    }
}
