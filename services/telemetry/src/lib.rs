//! What every imbridge service shares for being run and watched:
//!
//! - [`init_logging`]: `tracing` output, human-readable on a terminal and JSON lines otherwise;
//! - [`Readiness`]: named checks a service flips as it becomes ready (Kafka reachable, target reachable,
//!   assignment received);
//! - [`ops_router`] / [`serve_ops`]: `/metrics` (Prometheus text from an explicit registry), `/healthz`
//!   (process up) and `/readyz` (every readiness check true);
//! - [`shutdown_token`]: one cancellation token fired by SIGTERM or Ctrl-C;
//! - [`counter_sum`]: a counter family's total for one label value, for commands that report what they did;
//! - [`bench`]: CPU, memory and latency measurement for the `bench` commands.

pub mod bench;

/// Histogram buckets shared by every service, so latencies read the same everywhere and percentiles estimated
/// from buckets are fine-grained where the pipeline lives (milliseconds to tens of milliseconds).
pub mod buckets {
    /// One call to a target system (IM, legacy): 0.5 ms … 30 s.
    pub const APPLY_SECONDS: &[f64] = &[
        0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ];
    /// Source event time → applied on the other side: 1 ms … 1 h (waits for history or retries end up far right).
    pub const END_TO_END_SECONDS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
        1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    ];
}

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::core::Collector as _;
use prometheus::{Encoder, IntCounterVec, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps logging alive; dropping it does nothing today but keeps the call sites ready for a buffered writer.
#[derive(Debug)]
pub struct LoggingGuard(());

/// Installs the global `tracing` subscriber. `filter` uses `EnvFilter` syntax. Safe to call twice (the second
/// call is ignored), so tests that start several services in one process can all call it.
pub fn init_logging(format: Option<LogFormat>, filter: &str) -> LoggingGuard {
    let format = format.unwrap_or(if std::io::stderr().is_terminal() { LogFormat::Text } else { LogFormat::Json });
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    LoggingGuard(())
}

/// Named readiness checks; `/readyz` is 200 only when every registered check is true.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Readiness with `checks` registered, none ready yet: `/readyz` names them from the start.
    pub fn with_checks(checks: &[&'static str]) -> Self {
        let r = Self::new();
        for c in checks {
            r.set(c, false);
        }
        r
    }

    /// Registers a check (initially not ready) or updates it.
    pub fn set(&self, name: &'static str, ready: bool) {
        if let Ok(mut m) = self.checks.lock() {
            m.insert(name, ready);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.checks.lock().map(|m| m.values().all(|v| *v)).unwrap_or(false)
    }

    /// The checks and their states, for the `/readyz` body.
    pub fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.checks.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct OpsState {
    registry: Registry,
    readiness: Readiness,
}

/// `/metrics`, `/healthz`, `/readyz` for one service. Merge it into the service's own router or serve it alone.
pub fn ops_router(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { registry, readiness })
}

async fn metrics(State(s): State<OpsState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let families = s.registry.gather();
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}\n")).into_response(),
    }
}

async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
    let snap = s.readiness.snapshot();
    let body: String = snap.iter().map(|(k, v)| format!("{k} {}\n", if *v { "ok" } else { "not ready" })).collect();
    let code = if s.readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body)
}

/// Serves `router` on `addr` until `shutdown` fires. Returns the bound address (useful with port 0).
pub async fn serve_ops(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok((local, handle))
}

/// The sum over a counter family's series whose label `label` has `value` (`outcome="applied"` across every
/// kind, say): what a command that drove a service's handler in process reports it did.
pub fn counter_sum(counters: &IntCounterVec, label: &str, value: &str) -> u64 {
    counters
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .filter(|m| m.get_label().iter().any(|l| l.name() == label && l.value() == value))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// A token cancelled on SIGTERM or Ctrl-C: the one shutdown signal every run loop watches.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop the service");
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_sum_adds_every_series_with_the_label_value() {
        let c = IntCounterVec::new(prometheus::Opts::new("t_events_total", "t"), &["kind", "outcome"]).expect("vec");
        c.with_label_values(&["c2c", "applied"]).inc_by(2);
        c.with_label_values(&["group", "applied"]).inc_by(3);
        c.with_label_values(&["group", "skipped"]).inc();
        assert_eq!(counter_sum(&c, "outcome", "applied"), 5);
        assert_eq!(counter_sum(&c, "outcome", "skipped"), 1);
        assert_eq!(counter_sum(&c, "outcome", "recovered"), 0);
        assert_eq!(counter_sum(&c, "kind", "group"), 4);
    }
}
