//! `imbridge to-im`: applies legacy events to IM in real time (coexistence). Runs until SIGTERM/Ctrl-C, then
//! drains, commits and exits.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::cmd::{self, GlobalArgs};
use crate::config;

/// Options of `imbridge to-im`; each overrides the same `[to_im]` setting of the configuration.
#[derive(Debug, Args)]
pub struct ToImArgs {
    /// Address of /metrics, /healthz and /readyz (`to_im.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Consumer group (`to_im.live.group_id`).
    #[arg(long)]
    pub group: Option<String>,
}

pub async fn run(args: ToImArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(global.config.as_deref())?;
    let c = &mut loaded.config;
    if let Some(a) = args.listen {
        c.to_im.listen = a;
    }
    if let Some(g) = args.group {
        c.to_im.live.group_id = g;
    }
    cmd::serve::<imbridge_to_im::ToIm>(loaded, |c| c.to_im.clone()).await
}
