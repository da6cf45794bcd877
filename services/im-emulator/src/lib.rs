//! A stateful local emulator of Tencent Cloud IM: the REST API imbridge uses (import, live and read APIs), the
//! callbacks IM sends, UserSig checks, per-API frequency limits, batch and field limits, and the documented
//! dedup, ordering and unread rules. Tests and the demo run against it; the pipeline cannot tell it from IM.
//!
//! Map of the crate:
//! - [`config`]: [`EmulatorConfig`] (serde, `Default` = a usable test configuration);
//! - [`api`]: the catalogue of emulated APIs ([`Api`]), their error-code families and default rates;
//! - `fields`: reading request bodies with IM's error code for each malformed field;
//! - `state`: the data (accounts, friends, C2C conversations and unread, groups, members, history);
//! - `handlers`: the rules of every API, pure functions over the state that also list the callbacks they fire;
//! - [`callbacks`]: the delivery queue for after-callbacks (concurrent by default, serial on request),
//!   synchronous before-callbacks, `Sign`;
//! - [`faults`]: seeded fault injection ([`Faults`]): dropped, duplicated and delayed callbacks, failing REST calls;
//! - `ratelimit`, `clock`, [`stats`]: 60007 token buckets, the adjustable emulated clock, counters;
//! - [`emulator`]: [`Emulator`], the shared handle and request pipeline (auth → limit → handler → callbacks);
//! - [`server`]: the axum [`router`]; this file: [`spawn`] (port 0 for tests) and [`run`] (the binary);
//! - [`testing`]: TEST-ONLY hooks that change the data behind IM's back (for tests of checkers like verify).
//!
//! Every choice the documentation leaves open is marked UNCONFIRMED where it is implemented and listed in
//! `docs/im-emulator.md`.

pub mod api;
pub mod callbacks;
mod clock;
pub mod config;
pub mod emulator;
mod error;
pub mod faults;
mod fields;
mod handlers;
mod ratelimit;
pub mod server;
mod state;
pub mod stats;
pub mod testing;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::Api;
pub use config::{DEMO_SECRET_KEY, EmulatorConfig, Limits};
pub use emulator::Emulator;
pub use error::Error;
pub use faults::{Faults, RestFailureKind};
pub use server::router;
pub use stats::StatsSnapshot;

/// An emulator serving HTTP in the background. Dropping it stops the server (without a final state save; call
/// [`RunningEmulator::shutdown`] for that).
#[derive(Debug)]
pub struct RunningEmulator {
    /// The bound address (the real port when the configuration asked for port 0).
    pub addr: SocketAddr,
    emulator: Emulator,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, the base URL to give an IM client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL at which `user` (an app user, with a valid UserSig) calls `api` (`openim/sendmsg`, …) through
    /// the simulated client, as a new-app user's device would.
    pub fn client_url(&self, user: &str, api: &str) -> String {
        format!(
            "{}/emulator/client/v4/{api}?sdkappid={}&identifier={user}&usersig={}&platform=Android",
            self.base_url(),
            self.emulator.config().sdkappid,
            self.emulator.usersig(user)
        )
    }

    /// The emulator behind the server (state, clock, stats, UserSigs).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// An IM client configuration pointing at this emulator as its first admin (for tests and the demo).
    pub fn client_config(&self) -> imbridge_im::ImConfig {
        let c = self.emulator.config();
        imbridge_im::ImConfig {
            base_url: self.base_url(),
            sdkappid: c.sdkappid,
            admin_identifier: self.emulator.admin_identifier().to_owned(),
            secret_key: c.secret_key.clone(),
            ..imbridge_im::ImConfig::default()
        }
    }

    /// Stops serving, waits for in-flight requests, and saves the state file if configured.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.emulator.save_state()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts an emulator on `config.listen` (127.0.0.1:0 by default) in the background.
pub async fn spawn(config: EmulatorConfig) -> Result<RunningEmulator, Error> {
    let addr = config.listen;
    let emulator = Emulator::new(config)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    // The emulator's own token: shutting down also releases requests held by an injected timeout.
    let shutdown = emulator.closing().clone();
    let app = router(emulator.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await {
            tracing::error!(error = %e, "im emulator http server stopped");
        }
    });
    let mut tasks = vec![server];
    if emulator.config().state_file.is_some() {
        tasks.push(tokio::spawn(save_periodically(emulator.clone(), shutdown.clone())));
    }
    tracing::info!(addr = %local, sdkappid = emulator.config().sdkappid, "im emulator listening");
    Ok(RunningEmulator { addr: local, emulator, shutdown, tasks })
}

/// Saves the state file every `state_save_interval_secs` when it changed.
async fn save_periodically(emulator: Emulator, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(emulator.config().state_save_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let e = emulator.clone();
                // Serializing a large state takes a while; keep it off the async workers.
                match tokio::task::spawn_blocking(move || e.save_state()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot save emulator state"),
                    Err(e) => tracing::warn!(error = %e, "state save task failed"),
                    Ok(Ok(())) => {}
                }
            }
        }
    }
}

/// Runs an emulator until `shutdown` fires, then saves its state: the entry point of `imbridge emulate im`.
pub async fn run(config: EmulatorConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let running = spawn(config).await?;
    shutdown.cancelled().await;
    tracing::info!("im emulator shutting down");
    running.shutdown().await
}
