//! `imbridge to-legacy`: applies the events seen on IM to the legacy system through its apply endpoint, per
//! conversation in order. Runs until SIGTERM/Ctrl-C, then drains, commits and exits.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::cmd::{self, GlobalArgs};
use crate::config;

/// Options of `imbridge to-legacy`; each overrides the same `[to_legacy]` setting of the configuration.
#[derive(Debug, Args)]
pub struct ToLegacyArgs {
    /// Address of /metrics, /healthz and /readyz (`to_legacy.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Consumer group (`to_legacy.group_id`).
    #[arg(long)]
    pub group: Option<String>,
    /// The legacy apply endpoint (`to_legacy.apply_url`).
    #[arg(long)]
    pub apply_url: Option<String>,
}

pub async fn run(args: ToLegacyArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(global.config.as_deref())?;
    let c = &mut loaded.config;
    if let Some(a) = args.listen {
        c.to_legacy.listen = a;
    }
    if let Some(g) = args.group {
        c.to_legacy.group_id = g;
    }
    if let Some(u) = args.apply_url {
        c.to_legacy.apply_url = u;
    }
    // Group seq gaps are read from IM with the `[im]` client settings to-im uses (when its credentials are set).
    cmd::serve::<imbridge_to_legacy::ToLegacy>(loaded, |c| c.to_legacy.clone()).await
}
