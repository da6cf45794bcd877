//! One module per subcommand: each turns parsed arguments into a library call.

pub mod bench;
pub mod config;
pub mod console;
pub mod demo;
pub mod dlq;
pub mod emulate;
pub mod export;
pub mod im;
pub mod import;
pub mod ingest;
pub mod reconcile;
pub mod replay;
pub mod status;
pub mod to_im;
pub mod to_legacy;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use imbridge_runtime::{Deps, Service};
use imbridge_telemetry::LogFormat;

use crate::config::{AppConfig, Loaded};

/// Options every subcommand understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./imbridge.toml when it exists. Every key can be overridden by an
    /// environment variable IMBRIDGE_<SECTION>__<KEY>; see `imbridge config validate`.
    #[arg(long, global = true, env = "IMBRIDGE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Log format: `text` (human-readable) or `json` (one object per line). Default: text on a terminal,
    /// json otherwise.
    #[arg(long, global = true, value_enum, env = "IMBRIDGE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax, e.g. `info` or `imbridge_kafka=debug,info`.
    #[arg(long, global = true, default_value = "info", env = "IMBRIDGE_LOG")]
    pub log_level: String,
}

/// The shared dependencies of every part, from the configuration's common sections. Its shutdown token fires
/// only when the caller ties it to a signal (`with_shutdown(imbridge_telemetry::shutdown_token())`): a command
/// that does not watch it keeps Ctrl-C's default (exit).
pub fn deps(c: &AppConfig) -> Deps {
    Deps::new(c.kafka.clone(), c.topics.clone(), c.im.clone()).with_old_side(c.old_side.clone())
}

/// Runs service `S` with its section of `loaded` (command-line overrides applied) until SIGTERM/Ctrl-C: the body
/// of every service command.
pub async fn serve<S: Service>(
    loaded: Loaded,
    section: impl FnOnce(&AppConfig) -> S::Config,
) -> anyhow::Result<ExitCode> {
    let c = &loaded.config;
    tracing::info!(
        service = S::NAME, config = ?loaded.file, env_overrides = ?loaded.env_overrides,
        bootstrap = %c.kafka.bootstrap_servers, "starting"
    );
    let deps = deps(c).with_shutdown(imbridge_telemetry::shutdown_token());
    imbridge_runtime::run::<S>(section(c), deps).await.context(S::NAME)?;
    Ok(ExitCode::SUCCESS)
}
