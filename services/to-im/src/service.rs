//! The `imbridge to-im` service: configuration ([`ToImConfig`], the `[to_im]` section) and the run loop.
//!
//! Start-up order, each step before the next:
//! 1. `/metrics`, `/healthz`, `/readyz` are served at once (ready only once Kafka and IM answered, the
//!    conversation states were loaded and partitions were assigned);
//! 2. the topics it reads and writes exist (created when missing; an event topic with fewer partitions than
//!    configured is refused, since ordering depends on the count);
//! 3. the conversation-state mirror starts, then the ordered consumer joins its group; partitions arriving
//!    load their ledger entries in the background while their handlers wait.
//!
//! Shutdown (SIGTERM/SIGINT through the `shutdown` token): the consumer stops polling, lets in-flight events
//! finish within its drain deadline, commits, leaves the group; then the producer is flushed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imbridge_core::topics::TopicNames;
use imbridge_im::types::account::AccountCheckReq;
use imbridge_im::{ImClient, ImConfig};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::consumer::RunStats;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::topology::{self, Topic};
use imbridge_kafka::{KafkaConfig, OrderedConsumer, Producer};
use imbridge_telemetry::Readiness;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::ToImError;
use crate::live::handler::{QuotaShare, READY_CONVERSATIONS};
use crate::live::{Applier, ConversationStates, DismissalNotices, Ledger, LiveConfig, LiveHandler, LiveMetrics};

/// Readiness: the broker answers metadata requests.
pub const READY_KAFKA: &str = "kafka";
/// Readiness: IM answers an authenticated request.
pub const READY_IM: &str = "im";

/// `[to_im]` in imbridge.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToImConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub ops_listen: SocketAddr,
    /// How often readiness re-checks Kafka and IM, in milliseconds.
    pub probe_interval_ms: u64,
    /// Live apply of `imbridge.legacy.events`.
    pub live: LiveConfig,
}

impl Default for ToImConfig {
    fn default() -> Self {
        Self {
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            probe_interval_ms: 5_000,
            live: LiveConfig::default(),
        }
    }
}

/// Everything the service needs from the whole configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    pub im: ImConfig,
    pub to_im: ToImConfig,
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    /// Where `/metrics`, `/healthz`, `/readyz` are served (the real port when configured with port 0).
    pub ops_addr: SocketAddr,
    pub readiness: Readiness,
    task: JoinHandle<Result<RunStats, ToImError>>,
}

impl Running {
    /// Waits until the service stopped (after `shutdown` fired, or on a fatal error).
    pub async fn wait(self) -> Result<RunStats, ToImError> {
        self.task.await.map_err(|e| ToImError::Config(format!("service task failed: {e}")))?
    }
}

/// Starts the service in the background; see the module docs.
pub async fn start(cfg: ServiceConfig, shutdown: CancellationToken) -> Result<Running, ToImError> {
    cfg.to_im.live.validate()?;
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        registry.register(Box::new(pc)).map_err(|e| ToImError::Config(format!("metrics: {e}")))?;
    }
    let readiness = Readiness::new();
    readiness.set(READY_KAFKA, false);
    readiness.set(READY_IM, false);
    readiness.set(READY_CONVERSATIONS, false);
    let router = imbridge_telemetry::ops_router(registry.clone(), readiness.clone());
    let (ops_addr, _ops) = imbridge_telemetry::serve_ops(cfg.to_im.ops_listen, router, shutdown.clone())
        .await
        .map_err(|source| ToImError::Ops { addr: cfg.to_im.ops_listen, source })?;
    info!(addr = %ops_addr, "to-im ops endpoints listening");

    let im = ImClient::new(&cfg.im, &registry)?;
    let metrics = LiveMetrics::new(&registry).map_err(|e| ToImError::Config(format!("metrics: {e}")))?;
    let consumer_metrics =
        ConsumerMetrics::new(&registry, "to_im").map_err(|e| ToImError::Config(format!("metrics: {e}")))?;

    let readiness2 = readiness.clone();
    let task = tokio::spawn(async move {
        let (source_partitions, ledger_partitions) = match ensure_topics(&cfg.kafka, &cfg.topics, &shutdown).await {
            Some(r) => r?,
            None => return Ok(RunStats::default()),
        };
        readiness2.set(READY_KAFKA, true);
        // The ledger write is on the path of every event of a conversation (the next one waits for it), so it
        // should not wait for a batch to fill: 1 ms instead of the producer's default 5, unless configured.
        let mut ledger_kafka = cfg.kafka.clone();
        ledger_kafka.client.entry("linger.ms".to_owned()).or_insert_with(|| "1".to_owned());
        let producer = Producer::new(&ledger_kafka)?;
        let states =
            ConversationStates::spawn(cfg.kafka.clone(), cfg.topics.conversations.clone(), shutdown.child_token());
        let ledger = Arc::new(Ledger::new(
            cfg.kafka.clone(),
            producer.clone(),
            cfg.topics.applied.clone(),
            ledger_partitions,
            cfg.topics.legacy_events.clone(),
            metrics.clone(),
        ));
        let live = &cfg.to_im.live;
        let applier = Applier::new(
            im.clone(),
            live.c2c_api,
            live.import_unknown_accounts,
            live.history_check_slack_secs,
            metrics.clone(),
        )
        .with_dismissal_notices(DismissalNotices::new(producer.clone(), cfg.topics.conversations.clone()));
        let quota = live
            .share_quota_by_partitions
            .then(|| QuotaShare::new(im.clone(), cfg.im.clone(), usize::try_from(source_partitions).unwrap_or(1)));
        let handler = Arc::new(LiveHandler::new(
            cfg.topics.legacy_events.clone(),
            ledger.clone(),
            states.clone(),
            applier,
            metrics,
            readiness2.clone(),
            quota,
        ));
        tokio::spawn(probe(
            cfg.kafka.clone(),
            cfg.topics.legacy_events.clone(),
            im,
            states,
            readiness2,
            Duration::from_millis(cfg.to_im.probe_interval_ms.max(100)),
            shutdown.clone(),
        ));
        let consumer = OrderedConsumer::new(
            &cfg.kafka,
            &live.group_id,
            &[cfg.topics.legacy_events.as_str()],
            live.consumer.clone(),
            handler,
            DlqProducer::new(producer.clone(), cfg.topics.dlq.clone()),
            consumer_metrics,
        )?;
        info!(
            group = %live.group_id, topic = %cfg.topics.legacy_events, c2c_api = live.c2c_api.as_str(),
            "to-im live apply starting"
        );
        let stats = consumer.run(shutdown.clone()).await;
        ledger.revoke_all();
        if let Err(e) = producer.flush(Duration::from_secs(10)) {
            warn!(error = %e, "producer flush at shutdown failed");
        }
        let stats = stats?;
        info!(finished = stats.finished, dead_lettered = stats.dead_lettered, "to-im stopped");
        Ok(stats)
    });
    Ok(Running { ops_addr, readiness, task })
}

/// Runs the service until `shutdown` fires: the entry point of `imbridge to-im`.
pub async fn run(cfg: ServiceConfig, shutdown: CancellationToken) -> Result<(), ToImError> {
    start(cfg, shutdown).await?.wait().await.map(|_| ())
}

/// Creates what is missing (retrying while Kafka is unreachable); returns the partition counts of the source
/// topic and of the ledger. `None` when shutdown came first.
async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &TopicNames,
    shutdown: &CancellationToken,
) -> Option<Result<(i32, i32), ToImError>> {
    let mut attempt = 0u32;
    loop {
        match try_ensure_topics(kafka, topics).await {
            Ok(r) => return Some(Ok(r)),
            // Kafka down at start is retried (the service waits, unready); a misconfiguration is fatal.
            Err(ToImError::Kafka(imbridge_kafka::KafkaError::Topic { topic, reason }))
                if reason.contains("configured") =>
            {
                return Some(Err(ToImError::Config(format!("topic {topic}: {reason}"))));
            }
            Err(e) => {
                attempt += 1;
                warn!(error = %e, attempt, "cannot prepare the topics; retrying");
                let backoff = Duration::from_millis((250u64 << attempt.min(5)).min(8_000));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

async fn try_ensure_topics(kafka: &KafkaConfig, topics: &TopicNames) -> Result<(i32, i32), ToImError> {
    let admin = Admin::new(kafka)?;
    topology::ensure(&admin, topics, &[Topic::LegacyEvents, Topic::Dlq, Topic::Applied, Topic::Conversations]).await?;
    let source = admin.partition_count(&topics.legacy_events).await?;
    let ledger = admin.partition_count(&topics.applied).await?;
    if ledger < source {
        warn!(
            ledger,
            source,
            "the applied ledger has fewer partitions than the event topic: several source partitions share one \
             ledger partition, so assignments load more than they need"
        );
    }
    Ok((source, ledger.max(1)))
}

/// Keeps `/readyz` honest: Kafka and IM answer, and the conversation states are loaded.
async fn probe(
    kafka: KafkaConfig,
    topic: String,
    im: ImClient,
    states: Arc<ConversationStates>,
    readiness: Readiness,
    every: Duration,
    shutdown: CancellationToken,
) {
    let check = AccountCheckReq::new([im.admin_identifier().to_owned()]);
    loop {
        let kafka_ok = match Admin::new(&kafka) {
            Ok(a) => a.partition_count(&topic).await.is_ok_and(|n| n > 0),
            Err(_) => false,
        };
        readiness.set(READY_KAFKA, kafka_ok);
        let im_ok = im.account_check(&check).await.is_ok();
        readiness.set(READY_IM, im_ok);
        readiness.set(READY_CONVERSATIONS, states.is_caught_up());
        // Poll fast until the dependencies answer, then at the configured pace.
        let ok = kafka_ok && im_ok && states.is_caught_up();
        let wait = if ok { every } else { every.min(Duration::from_millis(500)) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
