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
//! This file: [`Ingest`], built and run like every service ([`imbridge_runtime::Service`]; its router serves
//! in-process tests too), and [`spawn`] (build + start, keeping the built service at hand for tests and
//! benches). `/readyz` is ready while Kafka answers and both event topics exist.
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

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use imbridge_core::topics::Topic;
use imbridge_kafka::{Producer, topology};
use imbridge_legacy::Verifier;
use imbridge_runtime::probe::{self, Probe};
use imbridge_runtime::{Deps, Running, Service};
use imbridge_telemetry::Readiness;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::IngestConfig;
pub use error::IngestError;
pub use imbridge_legacy::contract::INGEST_PATH as LEGACY_PATH;
pub use metrics::Metrics;

/// Where IM is told to send callbacks (the console's callback URL is `<ingest base URL>` + this).
pub const IM_CALLBACK_PATH: &str = "/v1/im/callback";

/// The topics ingest writes (events, heartbeats) and the one it follows for expected dismissals.
const TOPICS: [Topic; 4] = [Topic::LegacyEvents, Topic::ImEvents, Topic::Conversations, Topic::Status];

/// A built ingest, not yet listening.
#[derive(Debug, Clone)]
pub struct Ingest {
    state: server::AppState,
    config: IngestConfig,
    deps: Deps,
}

impl Ingest {
    /// Both endpoints plus `/metrics`, `/healthz`, `/readyz`.
    pub fn router(&self) -> Router {
        self.endpoints().merge(imbridge_telemetry::ops_router(self.deps.registry.clone(), self.state.readiness.clone()))
    }

    fn endpoints(&self) -> Router {
        Router::new()
            .route(LEGACY_PATH, post(server::legacy_events))
            .route(IM_CALLBACK_PATH, post(server::im_callback))
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.state.clone())
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

    /// After shutdown fired and the HTTP server stopped taking requests: what the spool holds gets up to
    /// `flush_timeout_ms` to reach Kafka, then the producer is flushed.
    async fn stop(self, tasks: TaskTracker, forwarder_stop: CancellationToken) {
        let timeout = Duration::from_millis(self.config.flush_timeout_ms);
        spool::forwarder::drain(&self.state.spool, timeout).await;
        forwarder_stop.cancel();
        tasks.close();
        tasks.wait().await;
        self.state.spool.close();
        if let Err(e) = self.state.producer.flush(timeout) {
            warn!(error = %e, "producer flush at shutdown failed");
        }
        info!("ingest stopped");
    }
}

impl Service for Ingest {
    const NAME: &'static str = "ingest";
    type Config = IngestConfig;
    type Error = IngestError;
    type Output = ();

    /// Validates the configuration, creates the producer and the spool, and registers the metrics.
    async fn build(config: IngestConfig, deps: &Deps) -> Result<Self, IngestError> {
        match deps.old_side.kind {
            imbridge_runtime::OldSideKind::Legacy => config.validate()?,
            imbridge_runtime::OldSideKind::Im => config.validate_without_webhooks()?,
        }
        if deps.im.sdkappid == 0 {
            return Err(IngestError::Config("im.sdkappid is not set: ingest cannot check callbacks".into()));
        }
        if deps.im.admin_identifier.is_empty() {
            return Err(IngestError::Config("im.admin_identifier is empty: echoes could not be recognised".into()));
        }
        let producer = Producer::new(&deps.kafka)?;
        let metrics = Metrics::new(&deps.registry).map_err(imbridge_runtime::StartError::from)?;
        let spool = spool::Spool::open(
            spool::SpoolSettings {
                dir: config.spool_dir.clone(),
                max_bytes: config.spool_max_bytes,
                segment_bytes: config.spool_segment_bytes,
                memory_bytes: config.spool_memory_bytes,
            },
            spool::SpoolMetrics::new(&deps.registry).map_err(imbridge_runtime::StartError::from)?,
        )?;
        let readiness = Readiness::with_checks(&[server::READY_KAFKA]);
        let state = Arc::new(server::Shared {
            producer,
            spool,
            topics: deps.topics.clone(),
            verifier: Verifier::new(config.legacy_secrets(), config.signature_tolerance_secs),
            sdkappid: deps.im.sdkappid,
            callback_token: config.im_callback_token.clone(),
            dismissals: Arc::new(dismissals::ExpectedDismissals::default()),
            echo: callback::Echo {
                admin_identifier: deps.im.admin_identifier.clone(),
                rest_dismiss_is_echo: config.rest_dismiss_is_echo,
            },
            old_app: deps.old_side.old_im().map(|old| server::OldApp {
                sdkappid: old.sdkappid,
                callback_token: deps.old_side.im_callback_token.clone(),
                echo: callback::Echo {
                    admin_identifier: old.admin_identifier.clone(),
                    rest_dismiss_is_echo: config.rest_dismiss_is_echo,
                },
            }),
            metrics,
            readiness,
            produce_timeout: Duration::from_millis(config.produce_timeout_ms),
            max_body_bytes: config.max_body_bytes,
        });
        Ok(Self { state, config, deps: deps.clone() })
    }

    /// Listens on `listen` (port 0 picks a free port) with the readiness probe, the spool forwarder and the
    /// dismissals follower in the background.
    async fn start(self) -> Result<Running<(), IngestError>, IngestError> {
        let deps = self.deps.clone();
        let tasks = TaskTracker::new();
        let (addr, http) =
            imbridge_runtime::serve_ops(self.config.listen, &deps, &self.state.readiness, Some(self.endpoints()))
                .await?;
        tasks.spawn(async move {
            let _ = http.await;
        });
        if self.config.create_topics {
            let (kafka, topics, stop) = (deps.kafka.clone(), deps.topics.clone(), deps.shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = topology::ensure_ready(&kafka, &topics, &TOPICS, true, &stop).await {
                    warn!(error = %e, "cannot create the event topics; readiness stays false");
                }
            });
        }
        let names = vec![deps.topics.legacy_events.clone(), deps.topics.im_events.clone()];
        let probe = Probe::new(self.state.readiness.clone(), Duration::from_millis(self.config.readiness_interval_ms))
            .check(server::READY_KAFKA, probe::kafka_topics(&deps.kafka, names))
            .spawn(deps.shutdown.clone());
        tasks.spawn(async move {
            let _ = probe.await;
        });
        let forwarder_stop = CancellationToken::new();
        let route = spool::forwarder::Route {
            topic: deps.topics.im_events.clone(),
            old_side_topic: deps.topics.legacy_events.clone(),
        };
        tasks.spawn(spool::forwarder::run(
            self.state.spool.clone(),
            self.state.producer.clone(),
            route,
            forwarder_stop.clone(),
        ));
        if self.config.heartbeat_interval_ms > 0 {
            let instance = match self.config.instance_id.as_str() {
                "" => addr.to_string(),
                id => id.to_owned(),
            };
            tasks.spawn(heartbeat::run(
                self.state.clone(),
                self.state.producer.clone(),
                deps.topics.status.clone(),
                instance,
                Duration::from_millis(self.config.heartbeat_interval_ms),
                deps.shutdown.clone(),
            ));
        }
        self.state.dismissals.follow(
            deps.kafka.clone(),
            deps.topics.conversations.clone(),
            deps.shutdown.child_token(),
        );
        info!(%addr, legacy = LEGACY_PATH, im = IM_CALLBACK_PATH, "ingest listening");
        let readiness = self.state.readiness.clone();
        let shutdown = deps.shutdown.clone();
        let task = tokio::spawn(async move {
            shutdown.cancelled().await;
            info!("ingest shutting down");
            self.stop(tasks, forwarder_stop).await;
            Ok(())
        });
        Ok(Running::new(addr, readiness, deps.shutdown, task))
    }
}

/// A running ingest with the built service at hand (its spool, metrics and readiness).
#[derive(Debug)]
pub struct RunningIngest {
    pub addr: std::net::SocketAddr,
    service: Ingest,
    running: Running<(), IngestError>,
}

impl RunningIngest {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        self.running.url()
    }

    /// The URL legacy webhooks are posted to.
    pub fn legacy_url(&self) -> String {
        format!("{}{LEGACY_PATH}", self.url())
    }

    /// The URL to configure as IM's callback URL.
    pub fn callback_url(&self) -> String {
        format!("{}{IM_CALLBACK_PATH}", self.url())
    }

    pub fn service(&self) -> &Ingest {
        &self.service
    }

    /// Stops accepting, finishes in-flight requests, then flushes what Kafka has not acknowledged yet.
    pub async fn shutdown(self) {
        if let Err(e) = self.running.stop().await {
            warn!(error = %e, "ingest stopped abnormally");
        }
    }
}

/// Builds and starts ingest, keeping the built service at hand: in-process tests and benches.
pub async fn spawn(config: IngestConfig, deps: Deps) -> Result<RunningIngest, IngestError> {
    let service = Ingest::build(config, &deps).await?;
    let running = service.clone().start().await?;
    Ok(RunningIngest { addr: running.addr, service, running })
}
