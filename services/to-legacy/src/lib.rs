//! to-legacy: applies the events seen on IM (`imbridge.im.events`, written by ingest) to the legacy system
//! through the legacy contract's apply endpoint, per conversation in order, idempotently.
//!
//! Map of the crate:
//! - [`config`]: [`ToLegacyConfig`], the `[to_legacy]` section (apply URL and secret, batch size, retries,
//!   consumer runner settings);
//! - [`handler`]: [`LegacyApplier`], the [`imbridge_kafka::Handler`] that turns a conversation's consecutive
//!   records into one signed request (`Idempotency-Key`, `"origin":"im"`, ids from the envelope) and reads the
//!   answer: 2xx/409 applied, 400/422 dead-letter the named event, 429/5xx/timeouts retry;
//! - [`metrics`]: events by kind and outcome, apply latency, end-to-end latency, retries, batch sizes;
//! - [`error`]: [`ToLegacyError`], the crate's one error type;
//! - [`replay`]: `imbridge replay --conversation`: one conversation's IM events again, through the same handler.
//!
//! This file wires them: the [`imbridge_kafka::OrderedConsumer`] (per-conversation lanes, DLQ, parking,
//! contiguous-prefix commits, drain on revoke and shutdown), the ops server (`/metrics`, `/healthz`, `/readyz`:
//! Kafka reachable, legacy reachable, assignment received) and the readiness probe. [`start`] returns once it
//! runs; [`run`] is the binary's entry point and returns when `shutdown` fired and the consumer drained and
//! committed.

pub mod config;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod order;
pub mod replay;
pub mod sequenced;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imbridge_core::topics::TopicNames;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::consumer::RunStats;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::topology::{self, Topic};
use imbridge_kafka::{KafkaConfig, OrderedConsumer, Producer};
use imbridge_legacy::{ApplyClient, ApplyConfig, RetryPolicy};
use imbridge_telemetry::Readiness;
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::ToLegacyConfig;
pub use error::ToLegacyError;
pub use handler::{LegacyApplier, READY_ASSIGNMENT, READY_LEGACY};
pub use metrics::Metrics;

/// Readiness check: Kafka answers and the IM events topic exists.
pub const READY_KAFKA: &str = "kafka";

/// What to-legacy needs from the rest of the configuration.
#[derive(Debug, Clone)]
pub struct Deps {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    /// Where the service's metrics are registered (tests pass their own).
    pub registry: Registry,
    /// `[im]`: the client group seq gaps are read with. `None`: a gap past its wait is skipped (and counted).
    pub im: Option<imbridge_im::ImConfig>,
}

impl Deps {
    /// Deps with a fresh registry and no IM client.
    pub fn new(kafka: KafkaConfig, topics: TopicNames) -> Self {
        Self { kafka, topics, registry: Registry::new(), im: None }
    }

    /// The same, reading group seq gaps from IM with `im`.
    pub fn with_im(self, im: imbridge_im::ImConfig) -> Self {
        Self { im: Some(im), ..self }
    }
}

/// A started to-legacy service.
#[derive(Debug)]
pub struct RunningToLegacy {
    /// Where `/metrics`, `/healthz`, `/readyz` are served.
    pub ops_addr: SocketAddr,
    pub readiness: Readiness,
    consumer: JoinHandle<Result<RunStats, imbridge_kafka::KafkaError>>,
    tasks: TaskTracker,
}

impl RunningToLegacy {
    /// Waits until the consumer stopped (after `shutdown` fired, drained and committed) and the ops server and
    /// probe ended.
    pub async fn wait(self) -> Result<RunStats, ToLegacyError> {
        let stats = match self.consumer.await {
            Ok(r) => r?,
            Err(e) => return Err(ToLegacyError::Config(format!("consumer task failed: {e}"))),
        };
        self.tasks.close();
        self.tasks.wait().await;
        info!(finished = stats.finished, dead_lettered = stats.dead_lettered, "to-legacy stopped");
        Ok(stats)
    }
}

/// Starts the consumer, the ops server and the readiness probe; everything stops when `shutdown` fires.
pub async fn start(
    config: ToLegacyConfig,
    deps: Deps,
    shutdown: CancellationToken,
) -> Result<RunningToLegacy, ToLegacyError> {
    config.validate()?;
    let readiness = Readiness::new();
    for check in [READY_KAFKA, READY_LEGACY, READY_ASSIGNMENT] {
        readiness.set(check, false);
    }
    let metrics = Metrics::new(&deps.registry)?;
    let mut apply = ApplyConfig::new(config.apply_url.clone(), config.apply_secret.clone());
    apply.timeout_ms = config.request_timeout_ms;
    apply.connect_timeout_ms = config.connect_timeout_ms;
    // The handler drives retries itself (send_once), so the client's own loop is never used.
    apply.retry = RetryPolicy { max_attempts: 1, ..config.retry.clone() };
    let client = ApplyClient::new(apply, &deps.registry)?;
    let handler = if config.order.enabled {
        let order = resequencer(&config, &deps).await?;
        LegacyApplier::with_order(
            client,
            config.retry.clone(),
            config.batch_max_events,
            metrics,
            readiness.clone(),
            shutdown.clone(),
            Arc::new(order),
        )
    } else {
        LegacyApplier::new(
            client,
            config.retry.clone(),
            config.batch_max_events,
            metrics,
            readiness.clone(),
            shutdown.clone(),
        )
    };
    let dlq = DlqProducer::new(Producer::new(&deps.kafka)?, deps.topics.dlq.clone());
    let consumer_metrics = ConsumerMetrics::new(&deps.registry, "to_legacy")?;
    let consumer = OrderedConsumer::new(
        &deps.kafka,
        &config.group_id,
        &[deps.topics.im_events.as_str()],
        config.consumer.clone(),
        handler,
        dlq,
        consumer_metrics,
    )?;

    let tasks = TaskTracker::new();
    let ops = imbridge_telemetry::ops_router(deps.registry.clone(), readiness.clone());
    let (ops_addr, ops_task) = imbridge_telemetry::serve_ops(config.listen, ops, shutdown.clone())
        .await
        .map_err(|source| ToLegacyError::Bind { addr: config.listen, source })?;
    tasks.spawn(async move {
        let _ = ops_task.await;
    });
    tasks.spawn(probe(config.clone(), deps.clone(), readiness.clone(), shutdown.clone()));
    let consumer = tokio::spawn(consumer.run(shutdown));
    info!(
        %ops_addr, group = %config.group_id, topic = %deps.topics.im_events, apply_url = %config.apply_url,
        "to-legacy started"
    );
    Ok(RunningToLegacy { ops_addr, readiness, consumer, tasks })
}

/// The resequencer: its durable state on the applied-ledger topic (created when configured) and, with `[im]`,
/// the client that fills group seq gaps.
async fn resequencer(config: &ToLegacyConfig, deps: &Deps) -> Result<sequenced::Resequencer, ToLegacyError> {
    let admin = Admin::new(&deps.kafka)?;
    let topics = &deps.topics;
    let mut attempt = 0u32;
    // Kafka may still be starting next to us: the state's partition count is needed before consuming.
    let partitions = loop {
        let ready = async {
            if config.create_topics {
                topology::ensure(&admin, topics, &[Topic::ImEvents, Topic::Applied, Topic::Dlq]).await?;
            }
            admin.partition_count(&topics.applied).await
        };
        match ready.await {
            Ok(n) if n > 0 => break n,
            Ok(_) => {
                return Err(ToLegacyError::Config(format!(
                    "topic {} (the resequencer's state) does not exist; create it or set to_legacy.create_topics",
                    topics.applied
                )));
            }
            Err(e) if attempt < 20 => {
                attempt += 1;
                warn!(error = %e, attempt, "cannot reach the resequencer's state topic yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let store = order::OrderStore::new(
        deps.kafka.clone(),
        topics.applied.clone(),
        topics.im_events.clone(),
        &config.group_id,
        partitions,
    )?;
    let filler = match &deps.im {
        Some(im) => {
            let client = imbridge_im::ImClient::new(im, &deps.registry)
                .map_err(|e| ToLegacyError::Config(format!("[im] for filling group seq gaps: {e}")))?;
            Some(order::GapFiller::new(client, im.admin_identifier.clone()))
        }
        None => {
            warn!("no [im] client: group seq gaps that stay open are skipped, not read from IM");
            None
        }
    };
    Ok(sequenced::Resequencer { cfg: config.order.clone(), store, filler, memory: order::Memory::default() })
}

/// Runs until `shutdown` fires (SIGTERM/SIGINT in the binary), then drains, commits and returns.
pub async fn run(config: ToLegacyConfig, deps: Deps, shutdown: CancellationToken) -> Result<RunStats, ToLegacyError> {
    start(config, deps, shutdown).await?.wait().await
}

/// Keeps `/readyz` honest: creates the topics once (when configured), then every `readiness_interval_ms` checks
/// that Kafka answers with the IM events topic and that the legacy side answers HTTP.
async fn probe(config: ToLegacyConfig, deps: Deps, readiness: Readiness, shutdown: CancellationToken) {
    let admin = match Admin::new(&deps.kafka) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot create the kafka admin client; readiness stays false");
            return;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(config.request_timeout_ms.min(5_000)))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot create the http client of the readiness probe");
            return;
        }
    };
    let topics = &deps.topics;
    let mut created = !config.create_topics;
    let every = Duration::from_millis(config.readiness_interval_ms);
    loop {
        if !created {
            match topology::ensure(&admin, topics, &[Topic::ImEvents, Topic::Dlq]).await {
                Ok(()) => created = true,
                Err(e) => warn!(error = %e, "cannot create the topics yet"),
            }
        }
        let kafka_ok = match admin.partition_count(&topics.im_events).await {
            Ok(n) => created && n > 0,
            Err(e) => {
                warn!(error = %e, "kafka readiness probe failed");
                false
            }
        };
        readiness.set(READY_KAFKA, kafka_ok);
        let legacy_ok = match &config.health_url {
            Some(url) => http.get(url).send().await.is_ok_and(|r| r.status().is_success()),
            // Any answer at all means the legacy side is up and reachable; the apply endpoint need not know GET.
            None => http.get(&config.apply_url).send().await.is_ok(),
        };
        readiness.set(READY_LEGACY, legacy_ok);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
