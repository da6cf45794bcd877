//! `imbridge demo …`: live traffic from both apps against a running coexistence setup (the two emulators,
//! ingest, to-im, to-legacy), and a convergence check, as `scripts/demo.sh` runs them. Every address comes from
//! the configuration (`--legacy-url` and the `--*-metrics` URLs override). The work is in `imbridge_demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_demo::traffic::{TrafficOptions, TrafficSummary};
use imbridge_demo::{Endpoints, OldIm, Systems};

use crate::cmd::GlobalArgs;
use crate::config;

/// Arguments of `imbridge demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: DemoCommand,
}

/// `imbridge demo` subcommands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Old-app users (the legacy emulator's user API) and new-app users (the IM emulator's client simulation)
    /// chat and change groups, in rounds; waits for both sides to catch up after each round.
    Traffic(TrafficArgs),
    /// Wait until nothing is in flight, report events each way, latency, echoes and dead letters from the
    /// services' metrics, and compare every conversation the traffic touched on both sides. Exit 1 on FAIL.
    Check(CheckArgs),
}

/// Where the two emulators and the services' metrics are; the rest comes from the configuration.
#[derive(Debug, Args)]
pub struct Targets {
    /// The legacy emulator's base URL. Default: the origin of `to_legacy.apply_url`.
    #[arg(long, value_name = "URL")]
    pub legacy_url: Option<String>,
    /// ingest's /metrics URL. Default: from `ingest.listen`.
    #[arg(long, value_name = "URL")]
    pub ingest_metrics: Option<String>,
    /// to-im's /metrics URL. Default: from `to_im.listen`.
    #[arg(long, value_name = "URL")]
    pub to_im_metrics: Option<String>,
    /// to-legacy's /metrics URL. Default: from `to_legacy.listen`.
    #[arg(long, value_name = "URL")]
    pub to_legacy_metrics: Option<String>,
    /// With `[old_side] kind = "im"`: the users of the apps (one id a line, or an `accounts.ndjson`), since IM
    /// cannot list an app's accounts.
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
}

/// Options of `imbridge demo traffic`.
#[derive(Debug, Args)]
pub struct TrafficArgs {
    #[command(flatten)]
    pub targets: Targets,
    /// `small` (~550 operations in ~25 s) or `full` (~1,500 in ~35 s).
    #[arg(long, default_value = "small")]
    pub scale: String,
    /// Rounds (overrides the scale's).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Random seed: the same seed on the same data gives the same traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Write what the traffic did (conversations, operations, messages) as JSON, for `demo check`.
    #[arg(long, value_name = "FILE")]
    pub summary: PathBuf,
}

/// Options of `imbridge demo check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub targets: Targets,
    /// The summary `demo traffic` wrote.
    #[arg(long, value_name = "FILE")]
    pub summary: PathBuf,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Longest wait for the pipeline to catch up, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

pub async fn run(args: DemoArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DemoCommand::Traffic(a) => {
            let sys = Arc::new(systems(&a.targets, global)?);
            let mut opts = TrafficOptions::scale(&a.scale)?;
            opts.seed = a.seed;
            if let Some(r) = a.rounds {
                opts.rounds = r.max(1);
            }
            let summary = imbridge_demo::traffic::run(sys, &opts).await?;
            std::fs::write(&a.summary, serde_json::to_string_pretty(&summary)? + "\n")
                .with_context(|| format!("writing {}", a.summary.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Check(a) => {
            let sys = Arc::new(systems(&a.targets, global)?);
            let text =
                std::fs::read_to_string(&a.summary).with_context(|| format!("reading {}", a.summary.display()))?;
            let summary: TrafficSummary = serde_json::from_str(&text).context("traffic summary")?;
            let report = imbridge_demo::check::run(sys, &summary, Duration::from_secs(a.timeout_secs)).await?;
            if let Some(path) = &a.report {
                std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(if report.pass { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn systems(t: &Targets, global: &GlobalArgs) -> anyhow::Result<Systems> {
    let cfg = config::load(global.config.as_deref())?.config;
    let old_im = match cfg.old_side.old_im() {
        Some(im) => {
            let path = t
                .accounts
                .as_ref()
                .context("the old app is an IM app ([old_side] kind = \"im\"): give --accounts FILE")?;
            Some(OldIm { im: im.clone(), users: imbridge_exporter::read_accounts(path)? })
        }
        None => None,
    };
    let legacy_url = match &t.legacy_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        // The legacy emulator is not part of an IM → IM setup.
        None if old_im.is_some() => String::new(),
        None => {
            let u = origin(&cfg.to_legacy.apply_url)
                .with_context(|| format!("to_legacy.apply_url {:?}: give --legacy-url", cfg.to_legacy.apply_url))?;
            u.to_owned()
        }
    };
    let metrics = |given: &Option<String>, addr: std::net::SocketAddr| {
        given.clone().unwrap_or_else(|| format!("http://{addr}/metrics"))
    };
    Systems::new(Endpoints {
        legacy_url,
        old_im,
        im: cfg.im.clone(),
        kafka: cfg.kafka.clone(),
        topics: cfg.topics.clone(),
        to_im_group: cfg.to_im.live.group_id.clone(),
        to_legacy_group: cfg.to_legacy.group_id.clone(),
        ingest_metrics: metrics(&t.ingest_metrics, cfg.ingest.listen),
        to_im_metrics: metrics(&t.to_im_metrics, cfg.to_im.listen),
        to_legacy_metrics: metrics(&t.to_legacy_metrics, cfg.to_legacy.listen),
    })
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    Some(&url[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_of_the_apply_url() {
        assert_eq!(super::origin("http://127.0.0.1:8082/v1/apply"), Some("http://127.0.0.1:8082"));
        assert_eq!(super::origin("https://legacy.internal"), Some("https://legacy.internal"));
        assert_eq!(super::origin("nope"), None);
    }
}
