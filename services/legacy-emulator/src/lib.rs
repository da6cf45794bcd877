//! A small reference legacy chat backend that speaks the imbridge legacy contract: "your existing system" in
//! tests and the demo.
//!
//! - [`state`]: users, friends, 1:1 and group chats with real state; native writes and idempotent applies;
//! - [`api`]: the HTTP surface — a user-facing REST API (`/api/...`) whose every change fires a signed
//!   webhook to ingest, the contract's `POST /v1/apply`, read endpoints for tests, `/healthz`;
//! - [`outbox`]: in-order, never-dropping webhook delivery to `<ingest_url>/v1/legacy/events`;
//! - [`export`]: the NDJSON export of its data, and seeding from one, with the export's own record types;
//! - [`config`], [`error`].
//!
//! Library first: [`spawn`] starts it on the configured address (port 0 by default) and returns a
//! [`RunningLegacyEmulator`]; [`LegacyEmulator::router`] gives the bare router. `imbridge emulate legacy`
//! serves it from the binary. An optional `state_file` snapshot makes it survive restarts, outbox included.

pub mod api;
pub mod config;
pub mod error;
pub mod export;
pub mod outbox;
pub mod state;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use imbridge_legacy::contract::INGEST_PATH;
use imbridge_legacy::{ApplyClient, ApplyConfig, ContractEvent, RetryPolicy, Verifier};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::LegacyEmulatorConfig;
pub use error::EmulatorError;
pub use export::ExportCounts;
pub use state::{Refusal, State, Stats};

/// The emulator's shared handle: config, state and the outbox signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LegacyEmulator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LegacyEmulatorConfig,
    state: Mutex<State>,
    /// Set by every write, cleared when the snapshot is saved.
    dirty: AtomicBool,
    outbox_ready: tokio::sync::Notify,
    verifier: Verifier,
    /// `/v1/apply` requests seen, numbering the fault draws.
    apply_requests: std::sync::atomic::AtomicU64,
}

impl LegacyEmulator {
    /// Validates the config and loads the state: the snapshot when `state_file` exists, else the seed export,
    /// else empty.
    pub fn new(config: LegacyEmulatorConfig) -> Result<Self, EmulatorError> {
        config.validate()?;
        let mut state = State::default();
        let snapshot = config.state_file.as_deref().filter(|p| p.exists());
        if let Some(path) = snapshot {
            let bytes = std::fs::read(path).map_err(|source| EmulatorError::Io { path: path.to_path_buf(), source })?;
            state = serde_json::from_slice(&bytes)
                .map_err(|e| EmulatorError::Snapshot { path: path.to_path_buf(), reason: e.to_string() })?;
            tracing::info!(path = %path.display(), outbox = state.outbox.len(), "legacy emulator state loaded");
        } else if let Some(dir) = &config.seed_dir {
            let counts = export::read_export(&mut state, dir, &config.id_prefix)?;
            tracing::info!(dir = %dir.display(), ?counts, "legacy emulator seeded");
        }
        let verifier = Verifier::new(config.apply_secrets.clone(), config.signature_tolerance_secs);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                dirty: AtomicBool::new(false),
                outbox_ready: tokio::sync::Notify::new(),
                verifier,
                apply_requests: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Every HTTP route; serve it with `axum::serve`. Webhooks need [`spawn`] (it runs the outbox).
    pub fn router(&self) -> Router {
        api::router(self.clone())
    }

    pub fn config(&self) -> &LegacyEmulatorConfig {
        &self.inner.config
    }

    /// The injected fault of the next `/v1/apply` request (`apply_faults`).
    pub(crate) fn next_apply_fault(&self) -> config::ApplyFault {
        let n = self.inner.apply_requests.fetch_add(1, Ordering::Relaxed);
        self.inner.config.apply_faults.draw(n)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that matters for an
        // emulator, so a poisoned lock is used as is rather than taking the whole server down.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the state under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the state under the lock, marks it for saving and wakes the outbox.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.inner.dirty.store(true, Ordering::Release);
        self.inner.outbox_ready.notify_one();
        r
    }

    /// A native write: the change and its webhook event are recorded in one critical section, so the outbox
    /// holds events in exactly the order the changes happened.
    pub fn write_event(
        &self,
        f: impl FnOnce(&mut State) -> Result<ContractEvent, Refusal>,
    ) -> Result<ContractEvent, Refusal> {
        let queue = self.webhooks_enabled();
        self.write(|s| {
            let ev = f(s)?;
            if queue {
                s.outbox.push_back(ev.clone());
            }
            Ok(ev)
        })
    }

    /// Whether changes are queued as webhooks (an ingest URL is configured).
    pub fn webhooks_enabled(&self) -> bool {
        self.inner.config.ingest_url.is_some()
    }

    pub(crate) fn outbox_ready(&self) -> &tokio::sync::Notify {
        &self.inner.outbox_ready
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn stats(&self) -> Stats {
        self.read(State::stats)
    }

    /// Writes the current data as an export directory.
    pub fn export_to(&self, dir: &Path) -> Result<ExportCounts, EmulatorError> {
        // Snapshot first so the files are written without holding the lock.
        let snapshot = self.read(State::clone);
        export::write_export(&snapshot, dir)
    }

    /// Writes the snapshot to `state_file` (atomically: temp file + rename) if anything changed.
    pub fn save(&self) -> Result<(), EmulatorError> {
        let Some(path) = &self.inner.config.state_file else { return Ok(()) };
        if !self.inner.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = self
            .read(serde_json::to_vec)
            .map_err(|e| EmulatorError::Snapshot { path: path.clone(), reason: e.to_string() })?;
        let tmp = path.with_extension("tmp");
        let io = |source| EmulatorError::Io { path: path.clone(), source };
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(io);
        if written.is_err() {
            // Try again on the next tick rather than losing the change.
            self.inner.dirty.store(true, Ordering::Release);
        }
        written
    }
}

/// A started emulator: its address, its handle, and the tasks to stop.
#[derive(Debug)]
pub struct RunningLegacyEmulator {
    emulator: LegacyEmulator,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningLegacyEmulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The contract's apply endpoint, what `to-legacy` is configured with.
    pub fn apply_url(&self) -> String {
        format!("http://{}/v1/apply", self.addr)
    }

    pub fn emulator(&self) -> &LegacyEmulator {
        &self.emulator
    }

    pub fn stats(&self) -> Stats {
        self.emulator.stats()
    }

    /// Waits until every queued webhook was delivered (or skipped); false on timeout.
    pub async fn wait_outbox_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.emulator.read(|s| s.outbox.is_empty()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Stops serving, stops the outbox and saves the state file.
    pub async fn shutdown(self) -> Result<(), EmulatorError> {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.emulator.save()
    }
}

/// Starts the emulator: HTTP server, webhook outbox (when `ingest_url` is set) and state saver (when
/// `state_file` is set).
pub async fn spawn(config: LegacyEmulatorConfig) -> Result<RunningLegacyEmulator, EmulatorError> {
    let emulator = LegacyEmulator::new(config)?;
    let cfg = emulator.config().clone();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| EmulatorError::Bind { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| EmulatorError::Bind { addr: cfg.listen, source })?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let app = emulator.router();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(error = %e, "legacy emulator http server stopped");
        }
    });

    if let Some(ingest) = &cfg.ingest_url {
        let url = format!("{}{INGEST_PATH}", ingest.trim_end_matches('/'));
        let mut client_cfg = ApplyConfig::new(url, cfg.webhook_secret.clone());
        client_cfg.timeout_ms = cfg.webhook_timeout_ms;
        client_cfg.retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
        // The webhook client's metrics are the emulator's own business; a private registry keeps them out of
        // the way of a service registry when tests run everything in one process.
        let client = ApplyClient::new(client_cfg, &prometheus::Registry::new())
            .map_err(|e| EmulatorError::Client(e.to_string()))?;
        tasks.spawn(outbox::deliver(emulator.clone(), client, shutdown.clone()));
    }

    if cfg.state_file.is_some() {
        let em = emulator.clone();
        let stop = shutdown.clone();
        let every = Duration::from_millis(cfg.state_flush_ms);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = em.save() {
                            tracing::warn!(error = %e, "cannot save legacy emulator state");
                        }
                    }
                }
            }
        });
    }

    if cfg.apply_secrets.is_empty() {
        tracing::warn!("no apply secret configured: every /v1/apply request will be refused");
    }
    tracing::info!(%addr, webhooks = cfg.ingest_url.is_some(), "legacy emulator listening");
    Ok(RunningLegacyEmulator { emulator, addr, shutdown, tasks })
}

/// Runs until `shutdown` fires, then stops cleanly (the binary's entry point).
pub async fn run(config: LegacyEmulatorConfig, shutdown: CancellationToken) -> Result<(), EmulatorError> {
    let running = spawn(config).await?;
    shutdown.cancelled().await;
    running.shutdown().await
}
