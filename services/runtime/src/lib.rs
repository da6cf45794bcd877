//! The one anatomy every imbridge service follows: **config → build → start → run**.
//!
//! - [`Deps`]: what a service takes from the rest of the configuration and the process — Kafka, the topic
//!   names, IM, the metrics registry and the shutdown token — built once by the binary (or a test, a replay, a
//!   bench) and handed to every part;
//! - [`Service`]: a service's section of the configuration goes in, [`Service::build`] validates it and
//!   constructs every part (clients, handler, metrics) without waiting on the network, [`Service::start`] serves
//!   or consumes in the background and returns a [`Running`] handle once it does;
//! - [`run`]: build, start, wait for shutdown — the body of every service command;
//! - [`old_side`]: `[old_side]`, what the system being migrated from is (the legacy contract or an IM app);
//! - [`probe`]: the one readiness loop behind every `/readyz`, with the checks services share.
//!
//! `imbridge replay` and `imbridge bench` build a service the same way and take the part they need from it (the
//! handler), so what they exercise is what runs.

pub mod old_side;
pub mod probe;

use std::future::Future;
use std::net::SocketAddr;

use imbridge_core::topics::TopicNames;
use imbridge_im::ImConfig;
use imbridge_kafka::KafkaConfig;
use imbridge_telemetry::Readiness;
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use old_side::{OldSideConfig, OldSideKind};
pub use probe::Probe;

/// What every service shares: the common sections of the configuration and the process's registry and
/// shutdown signal.
#[derive(Debug, Clone)]
pub struct Deps {
    /// `[kafka]`: every producer, consumer and admin client.
    pub kafka: KafkaConfig,
    /// `[topics]`: the configured name of every topic and how they are created.
    pub topics: TopicNames,
    /// `[im]`: the app, its admin identity and the REST client's settings and rates.
    pub im: ImConfig,
    /// `[old_side]`: what the old system is (the legacy contract by default, or another IM app).
    pub old_side: OldSideConfig,
    /// Where metrics are registered and `/metrics` reads them (a test or a replay passes its own).
    pub registry: Registry,
    /// Fired on SIGTERM/Ctrl-C in the binary: every loop of the service stops, drains and returns.
    pub shutdown: CancellationToken,
}

impl Deps {
    /// Deps with a fresh registry (with the process's CPU and memory where the platform reports them) and a
    /// fresh shutdown token.
    pub fn new(kafka: KafkaConfig, topics: TopicNames, im: ImConfig) -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            // A fresh registry holds nothing that could clash.
            let _ = registry.register(Box::new(pc));
        }
        Self { kafka, topics, im, old_side: OldSideConfig::default(), registry, shutdown: CancellationToken::new() }
    }

    /// The same, stopped by `shutdown` (the binary's signal token).
    pub fn with_shutdown(self, shutdown: CancellationToken) -> Self {
        Self { shutdown, ..self }
    }

    /// The same, with `old_side` as the old system.
    pub fn with_old_side(self, old_side: OldSideConfig) -> Self {
        Self { old_side, ..self }
    }

    /// The same, registering metrics in `registry`.
    pub fn with_registry(self, registry: Registry) -> Self {
        Self { registry, ..self }
    }

    /// For a one-off use of a service's parts beside the running services (a replay, a bench phase): a private
    /// registry, and a shutdown that follows this one but can be fired alone.
    pub fn detached(&self) -> Self {
        Self { registry: Registry::new(), shutdown: self.shutdown.child_token(), ..self.clone() }
    }
}

/// Why a service could not start or stopped abnormally: what every service shares beside its own failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its ops endpoints (or its own listener) could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Its background task panicked.
    #[error("service task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves `/metrics`, `/healthz` and `/readyz` (plus `extra`, a service's own routes) on `listen` until
/// `deps.shutdown` fires; returns the bound address and the server's task (done once in-flight requests
/// finished).
pub async fn serve_ops(
    listen: SocketAddr,
    deps: &Deps,
    readiness: &Readiness,
    extra: Option<axum::Router>,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let ops = imbridge_telemetry::ops_router(deps.registry.clone(), readiness.clone());
    let router = match extra {
        Some(r) => r.merge(ops),
        None => ops,
    };
    imbridge_telemetry::serve_ops(listen, router, deps.shutdown.clone())
        .await
        .map_err(|source| StartError::Bind { addr: listen, source })
}

/// A service: its section of the configuration, how it is built from it and [`Deps`], and how it starts.
pub trait Service: Sized + Send + 'static {
    /// Its name in logs (`to-im`).
    const NAME: &'static str;
    /// Its section of the configuration (`[to_im]`).
    type Config: Send;
    /// Its crate's error.
    type Error: std::error::Error + From<StartError> + Send + Sync + 'static;
    /// What it reports once stopped (the consumer's counts, say).
    type Output: Send + 'static;

    /// Validates `config` and constructs every part: clients, handler, metrics (registered in
    /// `deps.registry`). Nothing waits on Kafka or a target system here.
    fn build(config: Self::Config, deps: &Deps) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Starts serving or consuming in the background until `deps.shutdown` fires; returns once its ops
    /// endpoints listen.
    fn start(self) -> impl Future<Output = Result<Running<Self::Output, Self::Error>, Self::Error>> + Send;
}

/// A started service.
#[derive(Debug)]
pub struct Running<T, E> {
    /// Where `/metrics`, `/healthz` and `/readyz` are served (the real port when configured with port 0).
    pub addr: SocketAddr,
    pub readiness: Readiness,
    shutdown: CancellationToken,
    task: JoinHandle<Result<T, E>>,
}

impl<T, E: From<StartError>> Running<T, E> {
    /// `task` is the service's whole life: it returns once `shutdown` fired and everything drained.
    pub fn new(
        addr: SocketAddr,
        readiness: Readiness,
        shutdown: CancellationToken,
        task: JoinHandle<Result<T, E>>,
    ) -> Self {
        Self { addr, readiness, shutdown, task }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the service stopped (its shutdown fired, or a fatal error).
    pub async fn wait(self) -> Result<T, E> {
        self.task.await.map_err(|e| E::from(StartError::Task(e)))?
    }

    /// Fires the service's shutdown and waits until it drained and stopped.
    pub async fn stop(self) -> Result<T, E> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Builds and starts `S`, then waits until `deps.shutdown` fired and it stopped: every service command's body.
pub async fn run<S: Service>(config: S::Config, deps: Deps) -> Result<S::Output, S::Error> {
    let running = S::build(config, &deps).await?.start().await?;
    tracing::info!(service = S::NAME, addr = %running.addr, "started");
    let out = running.wait().await;
    tracing::info!(service = S::NAME, "stopped");
    out
}
