//! `imbridge reconcile --once`: one reconciliation pass — compare legacy and IM per conversation and group,
//! produce repair events onto the pipeline's topics (unless `--dry-run`), print the per-kind table, and
//! optionally write the JSON report. The work is in `imbridge_reconcile`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_reconcile::{Metrics, Reconciler, Scope};

use crate::cmd::GlobalArgs;
use crate::config;

/// Options of `imbridge reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Run one pass and exit (required for now: the continuous service mode is not built yet).
    #[arg(long)]
    pub once: bool,
    /// Compare only messages from this time on (RFC 3339 or Unix milliseconds). Default: everything.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Compare only this conversation (`c2c:<a>:<b>` or `group:<id>`); repeatable. Default: every conversation
    /// active in the window on either side.
    #[arg(long = "conversation", value_name = "KEY")]
    pub conversations: Vec<String>,
    /// Report the differences without producing any repair event.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Base URL of the legacy read endpoints (`reconcile.legacy_url`).
    #[arg(long)]
    pub legacy_url: Option<String>,
}

/// Exit status: 0 when every difference found was repaired (or none was found), 1 otherwise (a dry run that
/// found any, differences no event can repair, conversations that could not be compared).
pub async fn run(args: ReconcileArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if !args.once {
        bail!("only `imbridge reconcile --once` exists so far; the continuous service mode is not built yet");
    }
    let mut c = config::load(global.config.as_deref())?.config;
    if let Some(u) = args.legacy_url {
        c.reconcile.legacy_url = u;
    }
    c.reconcile.validate()?;
    let since = args.since.as_deref().map(TimestampMs::parse).transpose().map_err(anyhow::Error::msg)?;
    let conversations = args
        .conversations
        .iter()
        .map(|k| match ConversationKey::parse(k) {
            Ok(key) if !k.starts_with("user:") => Ok(key),
            Ok(_) => bail!("--conversation {k}: a user key names no conversation"),
            Err(e) => bail!("--conversation {k}: {e}"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let im_registry = prometheus::Registry::new();
    let producer =
        if args.dry_run { None } else { Some(imbridge_kafka::Producer::new(&c.kafka).context("kafka producer")?) };
    let reconciler = Reconciler {
        im: imbridge_im::ImClient::new(&c.im, &im_registry).context("im client")?,
        im_registry,
        legacy: imbridge_legacy::ReadClient::new(c.reconcile.read_config()).context("legacy read client")?,
        producer,
        topics: c.topics,
        max_users: c.reconcile.max_users,
    };
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).context("metrics")?;
    let report = reconciler.reconcile_once(&Scope { conversations, since }, args.dry_run).await?;
    metrics.record(&report);
    print!("{}", report.table());
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let unrepaired = report.differences() - report.repaired();
    Ok(if unrepaired == 0 && report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
