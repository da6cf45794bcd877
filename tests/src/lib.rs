//! The end-to-end sandbox: what the scenarios in `e2e/` share, so that each scenario file says only what it
//! checks.
//!
//! - [`sandbox`]: one scenario's place — a temporary directory, unique topics, the `imbridge.toml` every part
//!   reads (built from the binary's own [`AppConfig`] and serialized), parts started as real processes, a
//!   private broker for scenarios that stop one, and the whole pipeline wired to both emulators ([`Stack`]);
//! - [`turn`]: scenarios of different files never run at the same time (they stop brokers, kill processes and
//!   measure), as when each file was its own test binary;
//! - [`topics`]: the shared broker, unique topic names, topic creation, producing and reading envelopes, lag;
//! - [`events`]: canonical envelopes as ingest would write them;
//! - [`im`] and [`legacy`]: the two emulators in process (real HTTP), their clients, app users acting on them,
//!   and what each side holds;
//! - [`state`]: whole-state snapshots of both emulators with a readable diff;
//! - [`recording`]: a server that answers and records IM callbacks;
//! - [`import`]: the world of the import scenarios (a generated export, `imbridge import`/`verify` as processes);
//! - [`im_to_im`]: an old and a new IM app (two SDKAppIDs) and `imbridge export from-im` between them;
//! - [`two_sided`]: two emulators holding the same chats, with messages written on one side only (also used by
//!   the reconcile crate's own tests).
//!
//! Polling, Prometheus values and imbridge child processes come from `imbridge-testkit`, re-exported here.

pub mod events;
pub mod im;
pub mod im_to_im;
pub mod import;
pub mod legacy;
pub mod recording;
pub mod sandbox;
pub mod state;
pub mod topics;
pub mod turn;
pub mod two_sided;

use std::net::SocketAddr;

pub use events::*;
pub use im::*;
pub use imbridge::config::AppConfig;
pub use imbridge_testkit::prom::metric;
pub use imbridge_testkit::{Proc, eventually, run_cli};
pub use legacy::*;
pub use recording::{Recorded, recording_server};
pub use sandbox::{PrivateBroker, Sandbox, Stack};
pub use state::*;
pub use topics::*;
pub use turn::turn;

/// The secret to-legacy signs apply requests with (the legacy emulator accepts it).
pub const APPLY_SECRET: &str = "apply-secret";
/// The secret legacy webhooks are signed with (ingest checks it).
pub const WEBHOOK_SECRET: &str = "webhook-secret";

/// Partitions of the event topics in the `sync_*` scenarios.
pub const PARTITIONS: i32 = 4;

/// Logs of in-process services on stderr (shown for failing tests, or with `--nocapture`).
pub fn logs() {
    imbridge_telemetry::init_logging(Some(imbridge_telemetry::LogFormat::Text), "info");
}

/// What a service started in this process shares, as the binary builds it: the broker `kafka`, `topics`, `im`,
/// a registry of its own, stopped by `stop`.
pub fn deps(
    kafka: &imbridge_kafka::KafkaConfig,
    topics: &imbridge_core::topics::TopicNames,
    im: imbridge_im::ImConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> imbridge_runtime::Deps {
    imbridge_runtime::Deps::new(kafka.clone(), topics.clone(), im).with_shutdown(stop.clone())
}

/// Builds and starts service `S` in this process the way `imbridge <service>` does.
pub async fn start_service<S: imbridge_runtime::Service>(
    config: S::Config,
    deps: &imbridge_runtime::Deps,
) -> imbridge_runtime::Running<S::Output, S::Error> {
    let built = S::build(config, deps).await.unwrap_or_else(|e| panic!("{} builds: {e}", S::NAME));
    built.start().await.unwrap_or_else(|e| panic!("{} starts: {e}", S::NAME))
}

/// `/metrics` of a part; fails the test when it does not answer.
pub async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape").text().await.expect("metrics text")
}

/// `/metrics` of a part, or an empty page while it is not answering (a part being killed or restarted).
pub async fn scrape_or_empty(addr: SocketAddr) -> String {
    match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `/readyz` answered 200.
pub async fn ready(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/readyz")).await.is_ok_and(|r| r.status().is_success())
}

/// `/healthz` answered 200.
pub async fn healthy(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/healthz")).await.is_ok_and(|r| r.status().is_success())
}

/// A free TCP port on 127.0.0.1 (for a part whose address must not change across a restart).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
