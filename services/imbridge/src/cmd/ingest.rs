//! `imbridge ingest`: the HTTP front door — legacy webhooks (`POST /v1/legacy/events`) and IM callbacks
//! (`POST /v1/im/callback`) into Kafka: webhooks answered once Kafka acknowledged, callbacks once fsynced in the
//! spool (`ingest.spool_dir`). Runs until SIGTERM/Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::cmd::{self, GlobalArgs};
use crate::config;

/// Options of `imbridge ingest`; each overrides the same `[ingest]` setting of the configuration.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Address of both endpoints and of /metrics, /healthz, /readyz (`ingest.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory of the IM callback spool (`ingest.spool_dir`); one ingest process per directory.
    #[arg(long)]
    pub spool_dir: Option<std::path::PathBuf>,
}

pub async fn run(args: IngestArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(global.config.as_deref())?;
    let c = &mut loaded.config;
    if let Some(a) = args.listen {
        c.ingest.listen = a;
    }
    if let Some(d) = args.spool_dir {
        c.ingest.spool_dir = d;
    }
    cmd::serve::<imbridge_ingest::Ingest>(loaded, |c| c.ingest.clone()).await
}
