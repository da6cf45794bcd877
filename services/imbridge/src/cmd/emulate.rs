//! `imbridge emulate <system>`: local stand-ins for the systems imbridge connects, for tests, the demo and anyone
//! evaluating imbridge without accounts. `emulate im` serves the Tencent Cloud IM emulator
//! (`imbridge-im-emulator`); other systems join this group as their emulators land.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_im_emulator::EmulatorConfig;

/// Arguments of `imbridge emulate`.
#[derive(Debug, Args)]
pub struct EmulateArgs {
    #[command(subcommand)]
    pub target: EmulateTarget,
}

/// Which system to emulate.
#[derive(Debug, Subcommand)]
pub enum EmulateTarget {
    /// Tencent Cloud IM: REST API, callbacks, UserSig checks, frequency limits, dedup rules.
    Im(ImArgs),
}

/// Options of `imbridge emulate im`; each overrides the same setting of `--config`.
#[derive(Debug, Args)]
pub struct ImArgs {
    /// Address to listen on, e.g. 127.0.0.1:8081 (default 127.0.0.1:0, a free port, logged at start).
    #[arg(long, env = "IMBRIDGE_IM_EMULATOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML file with an `EmulatorConfig` (see docs/im-emulator.md).
    #[arg(long, env = "IMBRIDGE_IM_EMULATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// JSON state file: loaded at start, saved periodically and at shutdown.
    #[arg(long, env = "IMBRIDGE_IM_EMULATOR_STATE")]
    pub state: Option<PathBuf>,
    /// SDKAppID to emulate.
    #[arg(long, env = "IMBRIDGE_IM_SDKAPPID")]
    pub sdkappid: Option<u64>,
    /// Secret key UserSigs are verified with.
    #[arg(long, env = "IMBRIDGE_IM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// App admin identifier (repeatable); replaces the configured list.
    #[arg(long = "admin")]
    pub admins: Vec<String>,
    /// URL callbacks are POSTed to.
    #[arg(long, env = "IMBRIDGE_IM_CALLBACK_URL")]
    pub callback_url: Option<String>,
    /// Callback authentication token (adds `Sign` and `RequestTime`).
    #[arg(long, env = "IMBRIDGE_IM_CALLBACK_TOKEN", hide_env_values = true)]
    pub callback_token: Option<String>,
    /// Do not enforce the per-API frequency limits (no 60007).
    #[arg(long)]
    pub no_rate_limits: bool,
    /// Message retention in seconds (IM's default is 604800); default unlimited.
    #[arg(long)]
    pub retention_secs: Option<u64>,
}

pub async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        EmulateTarget::Im(im) => run_im(im).await,
    }
}

async fn run_im(args: ImArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<EmulatorConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => EmulatorConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.state.is_some() {
        config.state_file = args.state;
    }
    if let Some(id) = args.sdkappid {
        config.sdkappid = id;
    }
    if let Some(key) = args.secret_key {
        config.secret_key = key;
    }
    if !args.admins.is_empty() {
        config.admin_identifiers = args.admins;
    }
    if args.callback_url.is_some() {
        config.callback_url = args.callback_url;
    }
    if args.callback_token.is_some() {
        config.callback_token = args.callback_token;
    }
    if args.no_rate_limits {
        config.rate_limits_enabled = false;
    }
    if args.retention_secs.is_some() {
        config.retention_secs = args.retention_secs;
    }
    let shutdown = imbridge_telemetry::shutdown_token();
    imbridge_im_emulator::run(config, shutdown).await.context("im emulator")?;
    Ok(ExitCode::SUCCESS)
}
