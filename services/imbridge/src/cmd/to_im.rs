//! `imbridge to-im`: applies legacy events to IM in real time (coexistence). Runs until SIGTERM/Ctrl-C, then
//! drains, commits and exits.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::cmd::GlobalArgs;
use crate::config;

/// Options of `imbridge to-im`; each overrides the same `[to_im]` setting of the configuration.
#[derive(Debug, Args)]
pub struct ToImArgs {
    /// Address of /metrics, /healthz and /readyz (`to_im.ops_listen`).
    #[arg(long)]
    pub ops_listen: Option<SocketAddr>,
    /// Consumer group (`to_im.live.group_id`).
    #[arg(long)]
    pub group: Option<String>,
}

pub async fn run(args: ToImArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(global.config.as_deref())?;
    let mut c = loaded.config;
    if let Some(a) = args.ops_listen {
        c.to_im.ops_listen = a;
    }
    if let Some(g) = args.group {
        c.to_im.live.group_id = g;
    }
    tracing::info!(
        config = ?loaded.file, env_overrides = ?loaded.env_overrides, bootstrap = %c.kafka.bootstrap_servers,
        im = %c.im.base_url, "starting to-im"
    );
    let shutdown = imbridge_telemetry::shutdown_token();
    let cfg = imbridge_to_im::ServiceConfig { kafka: c.kafka, topics: c.topics, im: c.im, to_im: c.to_im };
    imbridge_to_im::service::run(cfg, shutdown).await.context("to-im")?;
    Ok(ExitCode::SUCCESS)
}
