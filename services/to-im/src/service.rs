//! The `imbridge to-im` service: its configuration ([`ToImConfig`], the `[to_im]` section) and [`ToIm`], built
//! and run like every service ([`imbridge_runtime::Service`]).
//!
//! Start-up order, each step before the next:
//! 1. `/metrics`, `/healthz`, `/readyz` are served at once (ready only once Kafka and IM answered, the
//!    conversation states were loaded and partitions were assigned);
//! 2. the topics it reads and writes exist (created when missing; an event topic with fewer partitions than
//!    configured is refused, since ordering depends on the count);
//! 3. the conversation-state mirror starts, then the ordered consumer joins its group; partitions arriving
//!    load their ledger entries in the background while their handlers wait.
//!
//! Shutdown (SIGTERM/SIGINT through the shutdown token): the consumer stops polling, lets in-flight events
//! finish within its drain deadline, commits, leaves the group; then the producer is flushed.
//!
//! [`ToIm::live`] is the one construction of the live handler: the service runs it, `imbridge replay` and
//! `imbridge bench` take it from the same built service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imbridge_core::topics::Topic;
use imbridge_im::{ImClient, Priority};
use imbridge_kafka::consumer::RunStats;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::{OrderedConsumer, Producer, topology};
use imbridge_runtime::probe::{self, Probe};
use imbridge_runtime::{Deps, Running, Service};
use imbridge_telemetry::Readiness;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::ToImError;
use crate::live::handler::{LIVE_APIS, QuotaShare, READY_ASSIGNMENT, READY_CONVERSATIONS};
use crate::live::{Applier, ConversationStates, DismissalNotices, Ledger, LiveConfig, LiveHandler, LiveMetrics};

pub use imbridge_runtime::probe::{READY_IM, READY_KAFKA};

/// `[to_im]` in imbridge.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToImConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// How often readiness re-checks Kafka and IM, in milliseconds.
    pub readiness_interval_ms: u64,
    /// Create the topics it reads and writes at start when they are missing.
    pub create_topics: bool,
    /// Live apply of `imbridge.legacy.events`.
    pub live: LiveConfig,
}

impl Default for ToImConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            readiness_interval_ms: 5_000,
            create_topics: true,
            live: LiveConfig::default(),
        }
    }
}

/// The topics to-im reads and writes.
const TOPICS: [Topic; 4] = [Topic::LegacyEvents, Topic::Dlq, Topic::Applied, Topic::Conversations];

/// A built to-im: its clients and metrics, not yet consuming.
#[derive(Debug)]
pub struct ToIm {
    config: ToImConfig,
    deps: Deps,
    im: ImClient,
    metrics: LiveMetrics,
    readiness: Readiness,
}

/// The live handler and what it needs to be finished cleanly.
#[derive(Debug)]
pub struct Live {
    pub handler: Arc<LiveHandler>,
    pub ledger: Arc<Ledger>,
    pub states: Arc<ConversationStates>,
    pub producer: Producer,
}

impl Live {
    /// Releases the ledger's partitions and flushes what was produced (ledger entries, dismissal notices).
    pub fn finish(&self) {
        self.ledger.revoke_all();
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            warn!(error = %e, "producer flush at shutdown failed");
        }
    }
}

impl ToIm {
    /// The live handler with its ledger (of `ledger_partitions` partitions), conversation states and IM
    /// applier. With `source_partitions`, each instance paces IM at its share of the quota (when configured).
    pub fn live(&self, ledger_partitions: i32, source_partitions: Option<i32>) -> Result<Live, ToImError> {
        let (deps, live) = (&self.deps, &self.config.live);
        // The ledger write is on the path of every event of a conversation (the next one waits for it), so it
        // should not wait for a batch to fill: 1 ms instead of the producer's default 5, unless configured.
        let mut ledger_kafka = deps.kafka.clone();
        ledger_kafka.client.entry("linger.ms".to_owned()).or_insert_with(|| "1".to_owned());
        let producer = Producer::new(&ledger_kafka)?;
        let states = ConversationStates::spawn(
            deps.kafka.clone(),
            deps.topics.conversations.clone(),
            deps.shutdown.child_token(),
        );
        let ledger = Arc::new(Ledger::new(
            deps.kafka.clone(),
            producer.clone(),
            deps.topics.applied.clone(),
            ledger_partitions,
            deps.topics.legacy_events.clone(),
            live.ledger_keep_ms,
            self.metrics.clone(),
        ));
        let applier = Applier::new(
            self.im.clone(),
            live.c2c_api,
            live.import_unknown_accounts,
            live.history_check_slack_secs,
            self.metrics.apply_metrics(),
        )
        .with_dismissal_notices(Arc::new(DismissalNotices::new(producer.clone(), deps.topics.conversations.clone())));
        let quota = source_partitions
            .filter(|_| live.share_quota_by_partitions)
            .map(|n| QuotaShare::new(self.im.clone(), deps.im.clone(), usize::try_from(n).unwrap_or(1)));
        let handler = Arc::new(LiveHandler {
            source_topic: deps.topics.legacy_events.clone(),
            ledger: ledger.clone(),
            states: states.clone(),
            applier,
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            quota,
            reorder_window: (deps.old_side.kind == imbridge_runtime::OldSideKind::Im
                && live.old_im_reorder_window_ms > 0)
                .then(|| Duration::from_millis(live.old_im_reorder_window_ms)),
        });
        Ok(Live { handler, ledger, states, producer })
    }

    /// The events counted by outcome (`applied`, `skipped`, `recovered`, `dead_letter`).
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    pub fn config(&self) -> &ToImConfig {
        &self.config
    }

    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Everything after the topics are ready, until shutdown.
    async fn consume(self, consumer_metrics: ConsumerMetrics) -> Result<RunStats, ToImError> {
        let deps = &self.deps;
        let counts =
            match topology::ensure_ready(&deps.kafka, &deps.topics, &TOPICS, self.config.create_topics, &deps.shutdown)
                .await?
            {
                Some(c) => c,
                None => return Ok(RunStats::default()),
            };
        let source = counts.get(&Topic::LegacyEvents).copied().unwrap_or(1);
        let ledger_partitions = counts.get(&Topic::Applied).copied().unwrap_or(1);
        if ledger_partitions < source {
            warn!(
                ledger = ledger_partitions,
                source,
                "the applied ledger has fewer partitions than the event topic: several source partitions share one \
                 ledger partition, so assignments load more than they need"
            );
        }
        let live = self.live(ledger_partitions, Some(source))?;
        let states = live.states.clone();
        Probe::new(self.readiness.clone(), Duration::from_millis(self.config.readiness_interval_ms))
            .check(READY_KAFKA, probe::kafka_topics(&deps.kafka, vec![deps.topics.legacy_events.clone()]))
            .check(READY_IM, probe::im_answers(&self.im))
            .check(READY_CONVERSATIONS, move || {
                let states = states.clone();
                async move { states.is_caught_up() }
            })
            .spawn(deps.shutdown.clone());
        let cfg = &self.config.live;
        let consumer = OrderedConsumer::new(
            &deps.kafka,
            &cfg.group_id,
            &[deps.topics.legacy_events.as_str()],
            cfg.consumer.clone(),
            live.handler.clone(),
            DlqProducer::new(live.producer.clone(), deps.topics.dlq.clone()),
            consumer_metrics,
        )?;
        info!(
            group = %cfg.group_id, topic = %deps.topics.legacy_events, c2c_api = cfg.c2c_api.as_str(),
            "to-im live apply starting"
        );
        let stats = consumer.run(deps.shutdown.clone()).await;
        live.finish();
        let stats = stats?;
        info!(finished = stats.finished, dead_lettered = stats.dead_lettered, "to-im stopped");
        Ok(stats)
    }
}

impl Service for ToIm {
    const NAME: &'static str = "to-im";
    type Config = ToImConfig;
    type Error = ToImError;
    type Output = RunStats;

    async fn build(config: ToImConfig, deps: &Deps) -> Result<Self, ToImError> {
        config.live.validate()?;
        let readiness = Readiness::with_checks(&[READY_KAFKA, READY_IM, READY_CONVERSATIONS, READY_ASSIGNMENT]);
        let im = ImClient::new(&deps.im, &deps.registry)?;
        let metrics = LiveMetrics::new(&deps.registry).map_err(|e| ToImError::Config(format!("metrics: {e}")))?;
        Ok(Self { config, deps: deps.clone(), im, metrics, readiness })
    }

    async fn start(self) -> Result<Running<RunStats, ToImError>, ToImError> {
        let deps = self.deps.clone();
        let consumer_metrics =
            ConsumerMetrics::new(&deps.registry, "to_im").map_err(|e| ToImError::Config(format!("metrics: {e}")))?;
        let (addr, _ops) = imbridge_runtime::serve_ops(self.config.listen, &deps, &self.readiness, None).await?;
        info!(%addr, "to-im ops endpoints listening");
        let readiness = self.readiness.clone();
        // Live first: this instance's share of every quota it calls, held for as long as it consumes.
        let quota = imbridge_runtime::quota::coordinate(&deps, &self.im, "to-im", Priority::Live, &LIVE_APIS)?;
        let task = tokio::spawn(async move {
            let _quota = quota;
            self.consume(consumer_metrics).await
        });
        Ok(Running::new(addr, readiness, deps.shutdown, task))
    }
}
