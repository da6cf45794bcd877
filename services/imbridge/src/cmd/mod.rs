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

use clap::Args;
use imbridge_telemetry::LogFormat;

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
