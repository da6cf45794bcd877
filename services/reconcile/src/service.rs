//! `imbridge reconcile`: the continuous service.
//!
//! One consumer group on both event topics (scaled like to-im and to-legacy: instances share the partitions,
//! and every instance takes only the conversations whose key falls on a partition of `imbridge.legacy.events`
//! it holds). Three things make it check, each through the same [`Reconciler`] pass:
//!
//! - **activity**: a conversation with events is checked `check_delay_ms` after its last one, over the last
//!   `activity_window_secs` ([`crate::activity`]); a conversation reconcile repaired is checked again the same
//!   way, at most `max_verify_rounds` times; when the service starts, the recent window is checked once,
//!   since what a previous process had pending is unknown;
//! - **outages**: ingest's heartbeats on `imbridge.status` ([`crate::outage`]) give windows in which IM
//!   callbacks may have been lost; everything with activity on either side since the window's start (less
//!   `outage_margin_secs`) is checked `check_delay_ms` after the outage is seen;
//! - **the sweep**: every `sweep_interval_secs`, every conversation and group over all time, with digest
//!   skipping ([`crate::digest`]); its summary goes to `imbridge.status` for `imbridge status`.
//!
//! Activity and outage checks run in one task, the sweep in another, both on the same IM client paced at this
//! instance's part of reconcile's quota share ([`crate::quota`]), so a long sweep delays neither.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imbridge_core::status::{INGEST_KEY_PREFIX, IngestBeat};
use imbridge_core::topics::Topic;
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_im::{ImClient, Priority, RECONCILE_APIS};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::partitioner::partition_for_key;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Followed, follow};
use imbridge_kafka::topology;
use imbridge_kafka::{OrderedConsumer, Producer};
use imbridge_legacy::ReadClient;
use imbridge_runtime::{Deps, Probe, Running, Service, StartError, probe};
use imbridge_telemetry::Readiness;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::activity::Activity;
use crate::config::ReconcileConfig;
use crate::digest::DigestMemory;
use crate::error::ReconcileError;
use crate::metrics::{Metrics, Trigger};
use crate::outage::{Detector, Outage};
use crate::reconciler::{Owner, Reconciler, Scope};
use crate::report::{Difference, Kind, Report};
use crate::sweep::SweepSummary;

/// Readiness checks beside the runtime's Kafka check.
pub const READY_LEGACY: &str = "legacy";
pub const READY_ASSIGNMENT: &str = "assignment";

/// Most differences remembered for the time-to-repair measurement; beyond, new ones are not timed.
const MAX_OPEN: usize = 100_000;

/// How often the readiness checks run once they pass.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The continuous service, built and not yet started.
#[derive(Debug)]
pub struct Reconcile {
    config: ReconcileConfig,
    deps: Deps,
    readiness: Readiness,
    metrics: Metrics,
    im: ImClient,
    legacy: ReadClient,
    producer: Producer,
    /// The readiness probe's client for the legacy check.
    http: reqwest::Client,
}

impl Service for Reconcile {
    const NAME: &'static str = "reconcile";
    type Config = ReconcileConfig;
    type Error = ReconcileError;
    type Output = ();

    async fn build(config: ReconcileConfig, deps: &Deps) -> Result<Self, ReconcileError> {
        config.validate_service()?;
        let readiness = Readiness::with_checks(&[probe::READY_KAFKA, READY_LEGACY, READY_ASSIGNMENT]);
        let metrics = Metrics::new(&deps.registry).map_err(StartError::from)?;
        let im = ImClient::new(&deps.im, &deps.registry)?;
        let legacy = ReadClient::new(config.read_config())?;
        let producer = Producer::new(&deps.kafka)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ReconcileError::Setup(format!("http client of the readiness probe: {e}")))?;
        Ok(Self { config, deps: deps.clone(), readiness, metrics, im, legacy, producer, http })
    }

    /// Starts the consumer, the heartbeat follower, the check and sweep tasks, the readiness probe and the ops
    /// server.
    async fn start(self) -> Result<Running<(), ReconcileError>, ReconcileError> {
        let Self { config, deps, readiness, metrics, im, legacy, producer, http } = self;
        let shutdown = deps.shutdown.clone();
        let partitions = ensure_topics(&deps).await?;
        // Until an assignment arrives the instance owns nothing and calls nothing; start at the smallest share.
        crate::quota::apply(&im, &deps.im, 1.0 / f64::from(partitions));
        let legacy_topic = deps.topics.legacy_events.clone();
        let activity = {
            let (im, im_config, readiness) = (im.clone(), deps.im.clone(), readiness.clone());
            let topic = legacy_topic.clone();
            Arc::new(Activity::new(Duration::from_millis(config.check_delay_ms), move |assigned| {
                let mine = assigned.iter().filter(|(t, _)| *t == topic).count();
                crate::quota::apply(&im, &im_config, mine.max(1) as f64 / f64::from(partitions));
                readiness.set(READY_ASSIGNMENT, !assigned.is_empty());
            }))
        };
        let im_for_quota = im.clone();
        let reconciler = Reconciler {
            im,
            im_registry: deps.registry.clone(),
            legacy,
            producer: Some(producer.clone()),
            topics: deps.topics.clone(),
            max_users: config.max_users,
        };
        let consumer = OrderedConsumer::new(
            &deps.kafka,
            &config.group_id,
            &[deps.topics.legacy_events.as_str(), deps.topics.im_events.as_str()],
            config.consumer.clone(),
            activity.clone(),
            DlqProducer::new(producer.clone(), deps.topics.dlq.clone()),
            ConsumerMetrics::new(&deps.registry, "reconcile").map_err(StartError::from)?,
        )?;

        let (ops_addr, ops_task) = imbridge_runtime::serve_ops(config.listen, &deps, &readiness, None).await?;
        // Repair comes after live sync and before history in the shared quotas; held until the ops server stops.
        let quota =
            imbridge_runtime::quota::coordinate(&deps, &im_for_quota, "reconcile", Priority::Repair, &RECONCILE_APIS)?;
        let tasks = TaskTracker::new();
        tasks.spawn(async move {
            let _quota = quota;
            let _ = ops_task.await;
        });
        let topics = vec![deps.topics.legacy_events.clone(), deps.topics.im_events.clone(), deps.topics.status.clone()];
        let probe = Probe::new(readiness.clone(), PROBE_EVERY)
            .check(probe::READY_KAFKA, probe::kafka_topics(&deps.kafka, topics))
            // The legacy read endpoints' host answers HTTP at all.
            .check(READY_LEGACY, {
                let url = config.legacy_url.clone();
                move || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { http.get(&url).send().await.is_ok() }
                }
            });
        tasks.spawn(probe.spawn(shutdown.clone()));
        let shared = Arc::new(Shared {
            config: config.clone(),
            reconciler,
            activity,
            metrics,
            memory: Arc::new(DigestMemory::default()),
            partitions,
            legacy_topic,
            open: Mutex::new(HashMap::new()),
        });
        let (outages_tx, outages_rx) = mpsc::channel(256);
        let beats = follow(&deps.kafka, &deps.topics.status, shutdown.clone(), 1024).await?;
        tasks.spawn(watch_beats(config.clone(), beats, outages_tx, shared.metrics.clone(), shutdown.clone()));
        tasks.spawn(check_loop(shared.clone(), outages_rx, shutdown.clone()));
        let instance = ops_addr.to_string();
        tasks.spawn(sweep_loop(shared.clone(), producer, deps.topics.status.clone(), instance, shutdown.clone()));
        let consumer_stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = consumer.run(consumer_stop).await {
                warn!(error = %e, "reconcile consumer stopped");
            }
        });
        info!(%ops_addr, group = %config.group_id, partitions, "reconcile started");
        tasks.close();
        let task = tokio::spawn(async move {
            tasks.wait().await;
            Ok(())
        });
        Ok(Running::new(ops_addr, readiness, shutdown, task))
    }
}

/// A difference being timed: when it was first found, and whether by a check over all time.
#[derive(Debug, Clone, Copy)]
struct Open {
    first_seen: Instant,
    all_time: bool,
}

/// What the two check tasks share.
struct Shared {
    config: ReconcileConfig,
    reconciler: Reconciler,
    activity: Arc<Activity>,
    metrics: Metrics,
    memory: Arc<DigestMemory>,
    partitions: i32,
    legacy_topic: String,
    open: Mutex<HashMap<(String, Kind, Difference, String), Open>>,
}

impl Shared {
    fn owner(&self) -> Owner {
        let activity = self.activity.clone();
        let (topic, n) = (self.legacy_topic.clone(), self.partitions);
        Owner::new(move |k: &ConversationKey| {
            activity.partitions_of(&topic).contains(&partition_for_key(k.as_str().as_bytes(), n))
        })
    }

    fn owns_anything(&self) -> bool {
        !self.activity.partitions_of(&self.legacy_topic).is_empty()
    }

    /// Runs one pass and does the bookkeeping: metrics, time to repair, verification of repairs.
    async fn pass(&self, trigger: Trigger, scope: Scope, rounds: &HashMap<ConversationKey, u8>) -> Option<Report> {
        let all_time = scope.since.is_none();
        let report = match self.reconciler.reconcile_once(&scope, false).await {
            Ok(r) => r,
            Err(e) => {
                warn!(trigger = trigger.as_str(), error = %e, "reconcile pass failed");
                return None;
            }
        };
        self.metrics.record(trigger, &report);
        self.track(&report, all_time);
        for f in report.findings.iter().filter(|f| f.repair_event.is_some() && f.not_repaired.is_none()) {
            let Ok(key) = ConversationKey::parse(&f.conversation) else { continue };
            let round = rounds.get(&key).copied().unwrap_or(0).saturating_add(1);
            if round <= self.config.max_verify_rounds {
                self.activity.verify(key, round);
            }
        }
        self.metrics.pending.set(self.activity.pending() as i64);
        if report.differences() > 0 || !report.errors.is_empty() || trigger == Trigger::Sweep {
            info!(
                trigger = trigger.as_str(),
                conversations = report.conversations_checked,
                identical_by_digest = report.identical_by_digest,
                differences = report.differences(),
                repaired = report.repaired(),
                errors = report.errors.len(),
                im_calls = report.im_calls,
                "reconcile pass finished"
            );
        }
        Some(report)
    }

    /// Times differences from first found to gone. A windowed check only closes what a windowed check found:
    /// a difference older than its window is out of its sight, not gone.
    fn track(&self, report: &Report, all_time: bool) {
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let checked: BTreeSet<&str> = report.checked_keys.iter().map(String::as_str).collect();
        let seen: BTreeSet<(String, Kind, Difference, String)> =
            report.findings.iter().map(|f| (f.conversation.clone(), f.kind, f.difference, f.item.clone())).collect();
        open.retain(|id, o| {
            let gone = checked.contains(id.0.as_str()) && !seen.contains(id) && (all_time || !o.all_time);
            if gone {
                self.metrics.repair_seconds.observe(now.duration_since(o.first_seen).as_secs_f64());
            }
            !gone
        });
        for id in seen {
            if open.len() >= MAX_OPEN {
                break;
            }
            open.entry(id).or_insert(Open { first_seen: now, all_time });
        }
        self.metrics.open_differences.set(open.len() as i64);
    }
}

/// Creates the topics reconcile reads and writes (Kafka may still be starting) and returns the event topics'
/// partition count, which maps a conversation to its owner.
async fn ensure_topics(deps: &Deps) -> Result<i32, ReconcileError> {
    let admin = Admin::new(&deps.kafka)?;
    let mut attempt = 0u32;
    loop {
        let ready = async {
            topology::ensure(&admin, &deps.topics, &[Topic::LegacyEvents, Topic::ImEvents, Topic::Dlq, Topic::Status])
                .await?;
            admin.partition_count(&deps.topics.legacy_events).await
        };
        match ready.await {
            Ok(n) if n > 0 => return Ok(n),
            Ok(_) => {
                return Err(ReconcileError::Setup(format!("topic {} has no partitions", deps.topics.legacy_events)));
            }
            Err(e) if attempt < 20 => {
                attempt += 1;
                warn!(error = %e, attempt, "cannot reach kafka's topics yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Follows ingest's heartbeats and reports outage windows.
async fn watch_beats(
    config: ReconcileConfig,
    mut beats: mpsc::Receiver<Followed>,
    outages: mpsc::Sender<Outage>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let lookback_ms = i64::try_from(config.activity_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut detector = Detector::new(i64::try_from(config.outage_gap_ms).unwrap_or(i64::MAX), lookback_ms);
    let mut caught_up = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let found = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => if caught_up { detector.tick(TimestampMs::now()) } else { Vec::new() },
            next = beats.recv() => match next {
                None => return,
                Some(Followed::CaughtUp) => {
                    caught_up = true;
                    Vec::new()
                }
                Some(Followed::Record(r)) => {
                    if !r.key_str().is_some_and(|k| k.starts_with(INGEST_KEY_PREFIX)) {
                        continue;
                    }
                    match r.payload.as_deref().map(serde_json::from_slice::<IngestBeat>) {
                        Some(Ok(b)) => detector.beat(b, TimestampMs::now()),
                        Some(Err(e)) => {
                            warn!(error = %e, offset = r.offset, "unreadable ingest heartbeat skipped");
                            Vec::new()
                        }
                        None => Vec::new(),
                    }
                }
            },
        };
        for o in found {
            metrics.outages.with_label_values(&[o.cause.as_str()]).inc();
            warn!(instance = %o.instance, from = o.from.0, to = o.to.0, cause = o.cause.as_str(),
                "ingest outage: IM callbacks may have been lost; checking what it touched");
            if outages.send(o).await.is_err() {
                return;
            }
        }
    }
}

/// Activity, verification, start-up and outage checks.
async fn check_loop(shared: Arc<Shared>, mut outages: mpsc::Receiver<Outage>, shutdown: CancellationToken) {
    let cfg = &shared.config;
    let window_ms = i64::try_from(cfg.activity_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let delay = Duration::from_millis(cfg.check_delay_ms);
    let mut started_up = false;
    // The earliest start of the outages seen and not yet checked, and when to check them.
    let mut outage: Option<(TimestampMs, Instant)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            Some(o) = outages.recv() => {
                let from = outage.map_or(o.from, |(f, _)| TimestampMs(f.0.min(o.from.0)));
                outage = Some((from, Instant::now() + delay));
                continue;
            }
        }
        shared.metrics.pending.set(shared.activity.pending() as i64);
        if !shared.owns_anything() {
            continue;
        }
        let none = HashMap::new();
        if !started_up {
            started_up = true;
            let scope = Scope {
                since: Some(TimestampMs(TimestampMs::now().0.saturating_sub(window_ms))),
                owner: Some(shared.owner()),
                ..Scope::default()
            };
            shared.pass(Trigger::Startup, scope, &none).await;
            continue;
        }
        if let Some((from, due)) = outage
            && due <= Instant::now()
        {
            outage = None;
            let margin = i64::try_from(cfg.outage_margin_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let scope = Scope {
                since: Some(TimestampMs(from.0.saturating_sub(margin))),
                wide: true,
                owner: Some(shared.owner()),
                ..Scope::default()
            };
            shared.pass(Trigger::Outage, scope, &none).await;
            continue;
        }
        let due = shared.activity.take_due(cfg.max_conversations_per_pass);
        if due.is_empty() {
            continue;
        }
        let trigger = if due.iter().any(|(_, r)| *r == 0) { Trigger::Activity } else { Trigger::Verify };
        let rounds: HashMap<ConversationKey, u8> = due.iter().cloned().collect();
        let scope = Scope {
            conversations: due.into_iter().map(|(k, _)| k).collect(),
            since: Some(TimestampMs(TimestampMs::now().0.saturating_sub(window_ms))),
            ..Scope::default()
        };
        shared.pass(trigger, scope, &rounds).await;
    }
}

/// The slow full sweep, and its summary on the status topic.
async fn sweep_loop(
    shared: Arc<Shared>,
    producer: Producer,
    status_topic: String,
    instance: String,
    shutdown: CancellationToken,
) {
    let cfg = &shared.config;
    let mut wait = Duration::from_secs(cfg.first_sweep_delay_secs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !shared.owns_anything() {
            wait = Duration::from_secs(1);
            continue;
        }
        wait = Duration::from_secs(cfg.sweep_interval_secs);
        let started_at = TimestampMs::now();
        let clock = Instant::now();
        let scope = Scope {
            wide: true,
            owner: Some(shared.owner()),
            digests: cfg.digest_skipping.then(|| shared.memory.clone()),
            ..Scope::default()
        };
        let Some(report) = shared.pass(Trigger::Sweep, scope, &HashMap::new()).await else { continue };
        shared.metrics.last_sweep_timestamp.set(TimestampMs::now().0 / 1000);
        shared.metrics.last_sweep_duration.set(clock.elapsed().as_secs() as i64);
        let partitions: Vec<i32> = shared.activity.partitions_of(&shared.legacy_topic).into_iter().collect();
        let summary =
            SweepSummary::from_report(&cfg.group_id, &instance, started_at, partitions, shared.partitions, &report);
        let payload = serde_json::to_vec(&summary).unwrap_or_default();
        let key = summary.key();
        let out = Outgoing { key: key.as_bytes(), payload: &payload, headers: &[] };
        if let Err(e) = producer.send(&status_topic, out).await {
            warn!(error = %e, "cannot record the sweep summary");
        }
    }
}
