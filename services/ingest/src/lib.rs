//! ingest: the HTTP front door of imbridge. Legacy webhooks and IM callbacks become canonical events on Kafka,
//! keyed by conversation, and a sender hears "accepted" only after Kafka acknowledged every event.
//!
//! Map of the crate:
//! - [`config`]: [`IngestConfig`], the `[ingest]` section (listen address, body limit, produce timeout, secrets);
//! - [`server`]: the two endpoints, `POST /v1/legacy/events` (legacy contract, HMAC-signed) and
//!   `POST /v1/im/callback` (IM callbacks, `SdkAppid` + token `Sign`), in the order authenticate → bound → parse →
//!   drop echoes → produce → answer;
//! - [`callback`]: the IM crate's callback normalization (what each callback becomes, echo recognition) followed
//!   by the legacy contract's validation of the event;
//! - [`metrics`]: events ingested by source and kind, rejections by reason, echoes, produce latency;
//! - [`error`]: [`IngestError`], each variant with its HTTP status and a bounded reason label;
//! - [`heartbeat`]: the beats on `imbridge.status` that tell reconciliation when callbacks may have been lost;
//! - [`spool`]: the durable, fsynced spool IM callbacks are answered from (IM never re-sends one), and the
//!   background forwarder that produces them to Kafka and forgets them only once acknowledged.
//!
//! This file: [`Service`] (router for in-process tests), [`spawn`] (port 0 for tests) and [`run`] (the binary),
//! plus the readiness probe behind `/readyz` (Kafka reachable and both event topics present).
//!
//! IM callbacks are answered once spooled (fsynced), not once Kafka acknowledged: Kafka may be down, and IM would
//! never send them again. Legacy webhooks keep waiting for Kafka (their sender retries on 503).
//!
//! Ordering note: a sender that needs per-conversation order sends a conversation's events one request after
//! another (the contract's outbox rule); within a request, events are enqueued in order on one idempotent
//! producer, so Kafka keeps them in order per key.

pub mod callback;
pub mod config;
pub mod dismissals;
pub mod error;
pub mod heartbeat;
pub mod metrics;
pub mod server;
pub mod spool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use imbridge_core::topics::TopicNames;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::topology::{self, Topic};
use imbridge_kafka::{KafkaConfig, Producer};
use imbridge_legacy::Verifier;
use imbridge_telemetry::Readiness;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::IngestConfig;
pub use error::IngestError;
pub use imbridge_legacy::contract::INGEST_PATH as LEGACY_PATH;
pub use metrics::Metrics;

/// Where IM is told to send callbacks (the console's callback URL is `<ingest base URL>` + this).
pub const IM_CALLBACK_PATH: &str = "/v1/im/callback";

/// What ingest needs from the rest of the configuration.
#[derive(Debug, Clone)]
pub struct Deps {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    /// `im.sdkappid`: callbacks naming another app are refused.
    pub sdkappid: u64,
    /// `im.admin_identifier`: callbacks this identity caused are imbridge's own echoes.
    pub admin_identifier: String,
    /// Where the service's metrics are registered (tests pass their own).
    pub registry: Registry,
}

impl Deps {
    /// Deps with a fresh registry.
    pub fn new(kafka: KafkaConfig, topics: TopicNames, sdkappid: u64, admin_identifier: impl Into<String>) -> Self {
        Self { kafka, topics, sdkappid, admin_identifier: admin_identifier.into(), registry: Registry::new() }
    }
}

/// A configured ingest service, not yet listening.
#[derive(Debug, Clone)]
pub struct Service {
    state: server::AppState,
    config: IngestConfig,
    kafka: KafkaConfig,
    registry: Registry,
}

impl Service {
    /// Validates the configuration, creates the producer and registers the metrics.
    pub fn new(config: IngestConfig, deps: Deps) -> Result<Self, IngestError> {
        config.validate()?;
        if deps.sdkappid == 0 {
            return Err(IngestError::Config("im.sdkappid is not set: ingest cannot check callbacks".into()));
        }
        if deps.admin_identifier.is_empty() {
            return Err(IngestError::Config("im.admin_identifier is empty: echoes could not be recognised".into()));
        }
        let producer = Producer::new(&deps.kafka)?;
        let metrics = Metrics::new(&deps.registry)?;
        let spool = spool::Spool::open(
            spool::SpoolSettings {
                dir: config.spool_dir.clone(),
                max_bytes: config.spool_max_bytes,
                segment_bytes: config.spool_segment_bytes,
            },
            spool::SpoolMetrics::new(&deps.registry)?,
        )?;
        let readiness = Readiness::new();
        readiness.set(server::READY_KAFKA, false);
        let state = Arc::new(server::Shared {
            producer,
            spool,
            topics: deps.topics,
            verifier: Verifier::new(config.legacy_secrets(), config.signature_tolerance_secs),
            sdkappid: deps.sdkappid,
            callback_token: config.im_callback_token.clone(),
            dismissals: Arc::new(dismissals::ExpectedDismissals::default()),
            echo: callback::Echo {
                admin_identifier: deps.admin_identifier,
                rest_dismiss_is_echo: config.rest_dismiss_is_echo,
            },
            metrics,
            readiness,
            produce_timeout: Duration::from_millis(config.produce_timeout_ms),
            max_body_bytes: config.max_body_bytes,
        });
        Ok(Self { state, config, kafka: deps.kafka, registry: deps.registry })
    }

    /// Both endpoints plus `/metrics`, `/healthz`, `/readyz`.
    pub fn router(&self) -> Router {
        let endpoints = Router::new()
            .route(LEGACY_PATH, post(server::legacy_events))
            .route(IM_CALLBACK_PATH, post(server::im_callback))
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.state.clone());
        endpoints.merge(imbridge_telemetry::ops_router(self.registry.clone(), self.state.readiness.clone()))
    }

    pub fn readiness(&self) -> Readiness {
        self.state.readiness.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// The IM callback spool (tests wait for it to empty before reading the topic).
    pub fn spool(&self) -> &spool::Spool {
        &self.state.spool
    }

    /// Keeps `/readyz` honest: creates the event topics once (when configured) and then checks every
    /// `readiness_interval_ms` that Kafka answers and both topics exist.
    async fn probe(self, shutdown: CancellationToken) {
        let admin = match Admin::new(&self.kafka) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cannot create the kafka admin client; readiness stays false");
                return;
            }
        };
        let topics = &self.state.topics;
        let names = [topics.legacy_events.clone(), topics.im_events.clone()];
        let mut created = !self.config.create_topics;
        let every = Duration::from_millis(self.config.readiness_interval_ms);
        loop {
            // A probe stuck on an unreachable broker must not hold shutdown up.
            let round = async {
                if !created {
                    match topology::ensure(
                        &admin,
                        topics,
                        &[Topic::LegacyEvents, Topic::ImEvents, Topic::Conversations, Topic::Status],
                    )
                    .await
                    {
                        Ok(()) => {
                            created = true;
                            info!(topics = ?names, "event topics ready");
                        }
                        Err(e) => warn!(error = %e, "cannot create the event topics yet"),
                    }
                }
                let mut ok = created;
                for n in &names {
                    match admin.partition_count(n).await {
                        Ok(p) if p > 0 => {}
                        Ok(_) => ok = false,
                        Err(e) => {
                            ok = false;
                            warn!(error = %e, topic = %n, "kafka readiness probe failed");
                            break;
                        }
                    }
                }
                self.state.readiness.set(server::READY_KAFKA, ok);
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = round => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// A running ingest: its address and what stops it.
#[derive(Debug)]
pub struct RunningIngest {
    pub addr: SocketAddr,
    service: Service,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Stops the spool forwarder (after the drain at shutdown).
    forwarder_stop: CancellationToken,
}

impl RunningIngest {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL legacy webhooks are posted to.
    pub fn legacy_url(&self) -> String {
        format!("{}{LEGACY_PATH}", self.url())
    }

    /// The URL to configure as IM's callback URL.
    pub fn callback_url(&self) -> String {
        format!("{}{IM_CALLBACK_PATH}", self.url())
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops accepting, finishes in-flight requests, then flushes what Kafka has not acknowledged yet.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let timeout = Duration::from_millis(self.service.config.flush_timeout_ms);
        // The HTTP server stops first, so nothing new is spooled while the forwarder drains.
        spool::forwarder::drain(&self.service.state.spool, timeout).await;
        self.forwarder_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.service.state.spool.close();
        if let Err(e) = self.service.state.producer.flush(timeout) {
            warn!(error = %e, "producer flush at shutdown failed");
        }
        info!("ingest stopped");
    }
}

/// Starts ingest on `config.listen` (port 0 picks a free port) with its readiness probe, in the background.
pub async fn spawn(config: IngestConfig, deps: Deps) -> Result<RunningIngest, IngestError> {
    let service = Service::new(config, deps)?;
    let addr = service.config.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| IngestError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| IngestError::Bind { addr, source })?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let app = service.router();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "ingest http server stopped");
        }
    });
    tasks.spawn(service.clone().probe(shutdown.clone()));
    let forwarder_stop = CancellationToken::new();
    tasks.spawn(spool::forwarder::run(
        service.state.spool.clone(),
        service.state.producer.clone(),
        service.state.topics.im_events.clone(),
        forwarder_stop.clone(),
    ));
    if service.config.heartbeat_interval_ms > 0 {
        let instance = match service.config.instance_id.as_str() {
            "" => local.to_string(),
            id => id.to_owned(),
        };
        tasks.spawn(heartbeat::run(
            service.state.clone(),
            service.state.producer.clone(),
            service.state.topics.status.clone(),
            instance,
            Duration::from_millis(service.config.heartbeat_interval_ms),
            shutdown.clone(),
        ));
    }
    service.state.dismissals.follow(
        service.kafka.clone(),
        service.state.topics.conversations.clone(),
        shutdown.child_token(),
    );
    info!(addr = %local, legacy = LEGACY_PATH, im = IM_CALLBACK_PATH, "ingest listening");
    Ok(RunningIngest { addr: local, service, shutdown, tasks, forwarder_stop })
}

/// Runs ingest until `shutdown` fires, then stops cleanly: the entry point of `imbridge ingest`.
pub async fn run(config: IngestConfig, deps: Deps, shutdown: CancellationToken) -> Result<(), IngestError> {
    let running = spawn(config, deps).await?;
    shutdown.cancelled().await;
    info!("ingest shutting down");
    running.shutdown().await;
    Ok(())
}
