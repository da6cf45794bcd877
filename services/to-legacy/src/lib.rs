//! to-legacy: applies the events seen on IM (`imbridge.im.events`, written by ingest) to the old system, per
//! conversation in order, idempotently. The old system is `[old_side]`: the legacy contract's apply endpoint (the
//! default) or another IM app's REST API ([`side`]); everything else here is the same for both.
//!
//! Map of the crate:
//! - [`config`]: [`ToLegacyConfig`], the `[to_legacy]` section (apply URL and secret, batch size, retries,
//!   consumer runner settings);
//! - [`handler`]: [`LegacyApplier`], the [`imbridge_kafka::Handler`] that turns a conversation's consecutive
//!   records into one signed request (`Idempotency-Key`, `"origin":"im"`, ids from the envelope) and reads the
//!   answer: 2xx/409 applied, 400/422 dead-letter the named event, 429/5xx/timeouts retry;
//! - [`metrics`]: events by kind and outcome, apply latency, end-to-end latency, retries, batch sizes;
//! - [`side`]: [`Side`], the old system written to — one [`imbridge_core::apply::OldSide`] adapter per kind;
//! - [`error`]: [`ToLegacyError`], the crate's one error type;
//! - [`replay`]: `imbridge replay --conversation`: one conversation's IM events again, through the same handler.
//!
//! This file is [`ToLegacy`], built and run like every service ([`imbridge_runtime::Service`]): the
//! [`imbridge_kafka::OrderedConsumer`] (per-conversation lanes, DLQ, parking, contiguous-prefix commits, drain on
//! revoke and shutdown), the ops server (`/metrics`, `/healthz`, `/readyz`: Kafka reachable, legacy reachable,
//! assignment received) and the readiness probe. [`ToLegacy::applier`] is the one construction of the handler:
//! the service runs it, `imbridge replay` and `imbridge bench` take it from the same built service.

pub mod config;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod order;
pub mod replay;
pub mod sequenced;
pub mod side;

use std::sync::Arc;
use std::time::Duration;

use imbridge_core::topics::Topic;
use imbridge_im::Priority;
use imbridge_im::apply::{APPLY_APIS, Applier, C2cApi, ImApp};
use imbridge_kafka::consumer::RunStats;
use imbridge_kafka::dismissals::DismissalNotices;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::{OrderedConsumer, Producer, topology};
use imbridge_legacy::{ApplyClient, ApplyConfig, RetryPolicy};
use imbridge_runtime::probe::{self, Probe};
use imbridge_runtime::{Deps, OldSideKind, Running, Service};
use imbridge_telemetry::Readiness;
use tracing::{info, warn};

pub use config::ToLegacyConfig;
pub use error::ToLegacyError;
pub use handler::{LegacyApplier, READY_ASSIGNMENT, READY_LEGACY};
pub use imbridge_runtime::probe::READY_KAFKA;
pub use metrics::Metrics;
pub use side::{Side, SideError};

/// How far before a message's time the old IM app's history is searched for it before it is sent (clock skew
/// between imbridge and the old app, and the time between IM's callback and the apply).
const OLD_APP_HISTORY_SLACK_SECS: u64 = 300;

/// A built to-legacy: its apply client and metrics, not yet consuming.
#[derive(Debug)]
pub struct ToLegacy {
    config: ToLegacyConfig,
    deps: Deps,
    side: Side,
    metrics: Metrics,
    readiness: Readiness,
    /// The IM client metrics, registered once when the old side is an IM app (its client and the gap filler's
    /// share them).
    im_metrics: Option<imbridge_im::Metrics>,
}

impl ToLegacy {
    /// The handler the service runs, with the resequencer when `[to_legacy.order]` is on (see
    /// [`ToLegacy::resequencer`]).
    pub fn applier(&self, order: Option<sequenced::Resequencer>) -> Arc<LegacyApplier> {
        let c = &self.config;
        let (side, metrics, readiness) = (self.side.clone(), self.metrics.clone(), self.readiness.clone());
        let shutdown = self.deps.shutdown.clone();
        LegacyApplier::new(side, c.retry.clone(), c.batch_max_events, metrics, readiness, shutdown, order.map(Arc::new))
    }

    /// The resequencer: its durable state on the applied-ledger topic (`partitions` of it) and, with `[im]`
    /// credentials, the client that fills group seq gaps.
    pub fn resequencer(&self, partitions: i32) -> Result<sequenced::Resequencer, ToLegacyError> {
        let (config, deps) = (&self.config, &self.deps);
        let store = order::OrderStore::new(
            deps.kafka.clone(),
            deps.topics.applied.clone(),
            deps.topics.im_events.clone(),
            &config.group_id,
            partitions,
        )?;
        let filler = if deps.im.secret_key.is_empty() {
            warn!("no [im] credentials: group seq gaps that stay open are skipped, not read from IM");
            None
        } else {
            let client = match &self.im_metrics {
                Some(m) => imbridge_im::ImClient::with_metrics(&deps.im, m.clone()),
                None => imbridge_im::ImClient::new(&deps.im, &deps.registry),
            }
            .map_err(|e| ToLegacyError::Config(format!("[im] for filling group seq gaps: {e}")))?;
            Some(order::GapFiller::new(client, deps.im.admin_identifier.clone()))
        };
        Ok(sequenced::Resequencer {
            cfg: config.order.clone(),
            store,
            filler,
            memory: order::Memory::default(),
            jitter: order::Jitter::default(),
            // The legacy contract stores each event at its own time, so an event applied late still lands in its
            // place; an IM app's `sendmsg` stamps "now", so there the order of applying is the order users see,
            // and the whole window is worth its latency.
            fixed_window: matches!(self.side, Side::Im(_)),
        })
    }

    /// The events counted by outcome (`applied`, `duplicate`, `rejected`, `malformed`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &ToLegacyConfig {
        &self.config
    }

    /// Everything after the ops endpoints listen, until shutdown.
    async fn consume(self) -> Result<RunStats, ToLegacyError> {
        let (config, deps) = (&self.config, &self.deps);
        let mut topics = vec![Topic::ImEvents, Topic::Dlq];
        if config.order.enabled {
            topics.push(Topic::Applied);
        }
        let counts =
            match topology::ensure_ready(&deps.kafka, &deps.topics, &topics, config.create_topics, &deps.shutdown)
                .await?
            {
                Some(c) => c,
                None => return Ok(RunStats::default()),
            };
        let order = match counts.get(&Topic::Applied) {
            Some(n) if config.order.enabled => Some(self.resequencer(*n)?),
            _ => None,
        };
        let handler = self.applier(order);
        let dlq = DlqProducer::new(Producer::new(&deps.kafka)?, deps.topics.dlq.clone());
        let consumer = OrderedConsumer::new(
            &deps.kafka,
            &config.group_id,
            &[deps.topics.im_events.as_str()],
            config.consumer.clone(),
            handler,
            dlq,
            ConsumerMetrics::new(&deps.registry, "to_legacy").map_err(imbridge_runtime::StartError::from)?,
        )?;
        info!(
            group = %config.group_id, topic = %deps.topics.im_events, old_side = self.side.name(),
            target = %self.target(), "to-legacy consuming"
        );
        let stats = consumer.run(deps.shutdown.clone()).await?;
        info!(finished = stats.finished, dead_lettered = stats.dead_lettered, "to-legacy stopped");
        Ok(stats)
    }

    /// Where the old side is: the apply URL, or the old IM app's base URL.
    fn target(&self) -> String {
        match self.deps.old_side.old_im() {
            Some(old) => format!("{} (SDKAppID {})", old.base_url, old.sdkappid),
            None => self.config.apply_url.clone(),
        }
    }

    /// `/readyz`: Kafka answers with the IM events topic, and the legacy side answers HTTP.
    fn probe(&self) -> Result<Probe, ToLegacyError> {
        let config = &self.config;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.min(5_000)))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ToLegacyError::Config(format!("the readiness probe's http client: {e}")))?;
        // Any answer at all means the legacy side is up and reachable; the apply endpoint need not know GET.
        let (url, healthy_only) = match (&config.health_url, self.deps.old_side.old_im()) {
            // Any HTTP answer from the old app's REST host means it is reachable.
            (_, Some(old)) => (old.base_url.clone(), false),
            (Some(u), None) => (u.clone(), true),
            (None, None) => (config.apply_url.clone(), false),
        };
        let legacy = move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                match http.get(&url).send().await {
                    Ok(r) => !healthy_only || r.status().is_success(),
                    Err(_) => false,
                }
            }
        };
        Ok(Probe::new(self.readiness.clone(), Duration::from_millis(config.readiness_interval_ms))
            .check(READY_KAFKA, probe::kafka_topics(&self.deps.kafka, vec![self.deps.topics.im_events.clone()]))
            .check(READY_LEGACY, legacy))
    }
}

impl Service for ToLegacy {
    const NAME: &'static str = "to-legacy";
    type Config = ToLegacyConfig;
    type Error = ToLegacyError;
    type Output = RunStats;

    async fn build(config: ToLegacyConfig, deps: &Deps) -> Result<Self, ToLegacyError> {
        let readiness = Readiness::with_checks(&[READY_KAFKA, READY_LEGACY, READY_ASSIGNMENT]);
        let metrics = Metrics::new(&deps.registry).map_err(imbridge_runtime::StartError::from)?;
        if deps.old_side.kind == OldSideKind::Im {
            config.validate_common()?;
            let old = deps
                .old_side
                .old_im()
                .ok_or_else(|| ToLegacyError::Config("old_side.kind = \"im\" needs an [old_side.im] section".into()))?;
            let im_metrics = imbridge_im::Metrics::new(&deps.registry).map_err(imbridge_runtime::StartError::from)?;
            let client = imbridge_im::ImClient::with_metrics(old, im_metrics.clone())
                .map_err(|e| ToLegacyError::Config(format!("[old_side.im]: {e}")))?;
            let notices = DismissalNotices::new(Producer::new(&deps.kafka)?, deps.topics.conversations.clone());
            let applier = Applier::new(client, C2cApi::Sendmsg, true, OLD_APP_HISTORY_SLACK_SECS, metrics.apply())
                .with_dismissal_notices(Arc::new(notices));
            let side = Side::Im(ImApp::new(applier));
            info!(sdkappid = old.sdkappid, base_url = %old.base_url, "the old side is an IM app");
            return Ok(Self { config, deps: deps.clone(), side, metrics, readiness, im_metrics: Some(im_metrics) });
        }
        config.validate()?;
        let mut apply = ApplyConfig::new(config.apply_url.clone(), config.apply_secret.clone());
        apply.timeout_ms = config.request_timeout_ms;
        apply.connect_timeout_ms = config.connect_timeout_ms;
        // The handler drives retries itself (send_once), so the client's own loop is never used.
        apply.retry = RetryPolicy { max_attempts: 1, ..config.retry.clone() };
        let side = Side::Legacy(ApplyClient::new(apply, &deps.registry)?);
        Ok(Self { config, deps: deps.clone(), side, metrics, readiness, im_metrics: None })
    }

    async fn start(self) -> Result<Running<RunStats, ToLegacyError>, ToLegacyError> {
        let deps = self.deps.clone();
        let (addr, _ops) = imbridge_runtime::serve_ops(self.config.listen, &deps, &self.readiness, None).await?;
        self.probe()?.spawn(deps.shutdown.clone());
        info!(%addr, old_side = self.side.name(), target = %self.target(), "to-legacy started");
        let readiness = self.readiness.clone();
        // An old IM app's quotas are shared like the new app's: these writes are its live traffic, ahead of an
        // export or a reconcile reading the same app (announced under the old app's SDKAppID).
        let quota = match (&self.side, deps.old_side.old_im()) {
            (Side::Im(app), Some(old)) => imbridge_runtime::quota::coordinate(
                &Deps { im: old.clone(), ..deps.clone() },
                app.applier().im(),
                "to-legacy",
                Priority::Live,
                &APPLY_APIS,
            )?,
            _ => None,
        };
        let task = tokio::spawn(async move {
            let _quota = quota;
            self.consume().await
        });
        Ok(Running::new(addr, readiness, deps.shutdown, task))
    }
}
