//! `imbridge emulate <system>`: local stand-ins for the systems imbridge connects, for tests, the demo and anyone
//! evaluating imbridge without accounts. `emulate im` serves the Tencent Cloud IM emulator
//! (`imbridge-im-emulator`); `emulate legacy` serves the reference legacy backend (`imbridge-legacy-emulator`).

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
    Im(Box<ImArgs>),
    /// A reference legacy chat backend: user REST API with signed webhooks, the contract's apply endpoint,
    /// NDJSON export (see docs/legacy-contract.md).
    Legacy(LegacyArgs),
}

/// Options of `imbridge emulate im`; each overrides the same setting of `--emulator-config`.
#[derive(Debug, Args)]
pub struct ImArgs {
    /// Address to listen on, e.g. 127.0.0.1:8081 (default 127.0.0.1:0, a free port, logged at start).
    #[arg(long, env = "IMBRIDGE_IM_EMULATOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML file with an `EmulatorConfig` (see docs/im-emulator.md). Named apart from imbridge's own
    /// `--config`, which configures the pipeline, not the emulator.
    #[arg(long = "emulator-config", env = "IMBRIDGE_IM_EMULATOR_CONFIG")]
    pub emulator_config: Option<PathBuf>,
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
    /// After-callbacks in flight at once (default 8): callbacks of one conversation can arrive out of order.
    /// 1 = serial delivery, one at a time in operation order.
    #[arg(long)]
    pub callback_concurrency: Option<usize>,
    /// Seed of the fault-injection random streams: the same seed and operations give the same faults.
    #[arg(long)]
    pub fault_seed: Option<u64>,
    /// Fraction of after-callbacks never sent (0.0–1.0).
    #[arg(long)]
    pub callback_drop_ratio: Option<f64>,
    /// Fraction of after-callbacks sent twice (0.0–1.0).
    #[arg(long)]
    pub callback_duplicate_ratio: Option<f64>,
    /// Fraction of callback copies that wait a random delay first (0.0–1.0; default 1.0).
    #[arg(long)]
    pub callback_delay_ratio: Option<f64>,
    /// Largest random delay of a callback copy, in milliseconds (uniform in 1..=max; delays reorder callbacks).
    #[arg(long)]
    pub callback_delay_max_ms: Option<u64>,
    /// Fraction of REST calls that fail, for the APIs of --rest-failure-api (0.0–1.0).
    #[arg(long)]
    pub rest_failure_ratio: Option<f64>,
    /// How injected REST failures look, comma-separated: http_500 (HTTP 500), timeout (held, then cut off
    /// without an answer), 60007 (IM's frequency-limit error). Default: all three.
    #[arg(long, value_delimiter = ',')]
    pub rest_failure_kinds: Vec<imbridge_im_emulator::RestFailureKind>,
    /// API (`service/command`) that --rest-failure-ratio applies to (repeatable); default every REST API.
    #[arg(long = "rest-failure-api")]
    pub rest_failure_apis: Vec<String>,
    /// Failure ratio of one API, replacing --rest-failure-ratio for it: `service/command=RATIO` (repeatable).
    #[arg(long = "rest-failure-api-ratio", value_parser = parse_api_ratio)]
    pub rest_failure_api_ratios: Vec<(String, f64)>,
    /// How long an injected timeout holds the request before closing the connection, in milliseconds
    /// (default 15000, beyond imbridge's 10 s request timeout).
    #[arg(long)]
    pub rest_timeout_ms: Option<u64>,
    /// Whether an injected timeout applies the call before hanging (default true, the harsher choice).
    #[arg(long)]
    pub rest_timeout_applies: Option<bool>,
}

/// `service/command=RATIO`.
fn parse_api_ratio(s: &str) -> Result<(String, f64), String> {
    let (api, ratio) = s.split_once('=').ok_or_else(|| format!("expected service/command=RATIO, got {s:?}"))?;
    let ratio: f64 = ratio.parse().map_err(|e| format!("ratio {ratio:?}: {e}"))?;
    Ok((api.to_owned(), ratio))
}

pub async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        EmulateTarget::Im(im) => run_im(*im).await,
        EmulateTarget::Legacy(legacy) => run_legacy(legacy).await,
    }
}

async fn run_im(args: ImArgs) -> anyhow::Result<ExitCode> {
    let config = im_config(args)?;
    let shutdown = imbridge_telemetry::shutdown_token();
    imbridge_im_emulator::run(config, shutdown).await.context("im emulator")?;
    Ok(ExitCode::SUCCESS)
}

/// The emulator's configuration: `--emulator-config` (or the defaults) with every given flag applied on top.
fn im_config(args: ImArgs) -> anyhow::Result<EmulatorConfig> {
    let mut config = match &args.emulator_config {
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
    if let Some(n) = args.callback_concurrency {
        config.callback_concurrency = n;
    }
    let f = &mut config.faults;
    if let Some(seed) = args.fault_seed {
        f.seed = seed;
    }
    if let Some(r) = args.callback_drop_ratio {
        f.callback_drop_ratio = r;
    }
    if let Some(r) = args.callback_duplicate_ratio {
        f.callback_duplicate_ratio = r;
    }
    if let Some(r) = args.callback_delay_ratio {
        f.callback_delay_ratio = r;
    }
    if let Some(ms) = args.callback_delay_max_ms {
        f.callback_delay_max_ms = ms;
    }
    if let Some(r) = args.rest_failure_ratio {
        f.rest_failure_ratio = r;
    }
    if !args.rest_failure_kinds.is_empty() {
        f.rest_failure_kinds = args.rest_failure_kinds;
    }
    if !args.rest_failure_apis.is_empty() {
        f.rest_failure_apis = args.rest_failure_apis;
    }
    f.rest_failure_api_ratios.extend(args.rest_failure_api_ratios);
    if let Some(ms) = args.rest_timeout_ms {
        f.rest_timeout_ms = ms;
    }
    if let Some(applies) = args.rest_timeout_applies {
        f.rest_timeout_applies = applies;
    }
    Ok(config)
}

/// Options of `imbridge emulate legacy`; each overrides the same setting of `--emulator-config`.
#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// Address to listen on, e.g. 127.0.0.1:8082 (default 127.0.0.1:0, a free port, logged at start).
    #[arg(long, env = "IMBRIDGE_LEGACY_EMULATOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML file with a `LegacyEmulatorConfig` (field names as in docs/legacy-contract.md).
    #[arg(long = "emulator-config", env = "IMBRIDGE_LEGACY_EMULATOR_CONFIG")]
    pub emulator_config: Option<PathBuf>,
    /// JSON state file (data and undelivered webhooks): loaded at start, saved periodically and at shutdown.
    #[arg(long, env = "IMBRIDGE_LEGACY_EMULATOR_STATE")]
    pub state: Option<PathBuf>,
    /// Export directory (NDJSON) to load at start when there is no state file.
    #[arg(long, env = "IMBRIDGE_LEGACY_EMULATOR_SEED")]
    pub seed: Option<PathBuf>,
    /// Base URL of imbridge ingest; webhooks go to `<URL>/v1/legacy/events`.
    #[arg(long, env = "IMBRIDGE_LEGACY_INGEST_URL")]
    pub ingest_url: Option<String>,
    /// Secret that signs webhooks.
    #[arg(long, env = "IMBRIDGE_LEGACY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Secret accepted on /v1/apply (repeatable, or comma-separated in the environment, for rotation);
    /// replaces the configured list.
    #[arg(long = "apply-secret", env = "IMBRIDGE_LEGACY_APPLY_SECRETS", value_delimiter = ',', hide_env_values = true)]
    pub apply_secrets: Vec<String>,
    /// Also send webhooks for writes applied with origin "im" (to test ingest's echo drop).
    #[arg(long)]
    pub echo_webhooks: bool,
    /// Write the emulator's data as an export into this directory and exit instead of serving.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

async fn run_legacy(args: LegacyArgs) -> anyhow::Result<ExitCode> {
    use imbridge_legacy_emulator::{LegacyEmulator, LegacyEmulatorConfig};

    let mut config = match &args.emulator_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<LegacyEmulatorConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => LegacyEmulatorConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.state.is_some() {
        config.state_file = args.state;
    }
    if args.seed.is_some() {
        config.seed_dir = args.seed;
    }
    if args.ingest_url.is_some() {
        config.ingest_url = args.ingest_url;
    }
    if let Some(secret) = args.webhook_secret {
        config.webhook_secret = imbridge_legacy::SigningSecret::new(secret);
    }
    if !args.apply_secrets.is_empty() {
        config.apply_secrets = args.apply_secrets.into_iter().map(imbridge_legacy::SigningSecret::new).collect();
    }
    if args.echo_webhooks {
        config.echo_webhooks = true;
    }
    if let Some(dir) = args.export {
        let emulator = LegacyEmulator::new(config).context("legacy emulator")?;
        let counts = emulator.export_to(&dir).context("exporting")?;
        println!("exported to {}: {counts:?}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let shutdown = imbridge_telemetry::shutdown_token();
    imbridge_legacy_emulator::run(config, shutdown).await.context("legacy emulator")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use imbridge_im_emulator::RestFailureKind;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        im: ImArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<EmulatorConfig> {
        let cli = Cli::try_parse_from(std::iter::once("im").chain(args.iter().copied()))?;
        im_config(cli.im)
    }

    #[test]
    fn delivery_and_fault_flags_override_the_config() {
        let d = parse(&[]).expect("defaults");
        assert_eq!(d.callback_concurrency, 8);
        assert_eq!(d.faults, imbridge_im_emulator::Faults::default());
        let c = parse(&[
            "--callback-concurrency=1",
            "--fault-seed=9",
            "--callback-drop-ratio=0.1",
            "--callback-duplicate-ratio=0.05",
            "--callback-delay-ratio=0.5",
            "--callback-delay-max-ms=500",
            "--rest-failure-ratio=0.05",
            "--rest-failure-kinds=http_500,60007",
            "--rest-failure-api=openim/sendmsg",
            "--rest-failure-api=group_open_http_svc/send_group_msg",
            "--rest-failure-api-ratio=openim/importmsg=0.5",
            "--rest-timeout-ms=800",
            "--rest-timeout-applies=false",
        ])
        .expect("flags");
        c.validate().expect("valid");
        let f = &c.faults;
        assert_eq!(c.callback_concurrency, 1);
        assert_eq!((f.seed, f.callback_drop_ratio, f.callback_duplicate_ratio), (9, 0.1, 0.05));
        assert_eq!((f.callback_delay_ratio, f.callback_delay_max_ms), (0.5, 500));
        assert_eq!(f.rest_failure_ratio, 0.05);
        assert_eq!(f.rest_failure_kinds, [RestFailureKind::Http500, RestFailureKind::RateLimited]);
        assert_eq!(f.rest_failure_apis, ["openim/sendmsg", "group_open_http_svc/send_group_msg"]);
        assert_eq!(f.rest_failure_api_ratios["openim/importmsg"], 0.5);
        assert_eq!((f.rest_timeout_ms, f.rest_timeout_applies), (800, false));
        assert!(parse(&["--rest-failure-kinds=http_503"]).is_err(), "unknown kinds are refused");
        assert!(parse(&["--rest-failure-api-ratio=openim/sendmsg"]).is_err(), "RATIO is required");
    }
}
