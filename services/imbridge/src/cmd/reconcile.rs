//! `imbridge reconcile`: the continuous reconciliation service (activity, outages, sweeps; until SIGTERM), or
//! with `--once` one pass — compare legacy and IM per conversation and group, produce repair events onto the
//! pipeline's topics (unless `--dry-run`), print the per-kind table, and optionally write the JSON report.
//! The work is in `imbridge_reconcile`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_reconcile::{Metrics, Reconciler, Scope, Trigger};

use crate::cmd::GlobalArgs;
use crate::config;

/// Options of `imbridge reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Run one pass and exit. Without it: the service (activity checks, outage checks, sweeps) until SIGTERM.
    #[arg(long)]
    pub once: bool,
    /// Service: address of /metrics, /healthz, /readyz (`reconcile.listen`).
    #[arg(long, conflicts_with = "once")]
    pub listen: Option<SocketAddr>,
    /// Service: consumer group (`reconcile.group_id`).
    #[arg(long, conflicts_with = "once")]
    pub group: Option<String>,
    /// Compare only messages from this time on (RFC 3339 or Unix milliseconds). Default: everything.
    #[arg(long, value_name = "TIME", requires = "once")]
    pub since: Option<String>,
    /// Compare only this conversation (`c2c:<a>:<b>` or `group:<id>`); repeatable. Default: every conversation
    /// active in the window on either side.
    #[arg(long = "conversation", value_name = "KEY", requires = "once")]
    pub conversations: Vec<String>,
    /// Report the differences without producing any repair event.
    #[arg(long, requires = "once")]
    pub dry_run: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE", requires = "once")]
    pub report: Option<PathBuf>,
    /// Base URL of the legacy read endpoints (`reconcile.legacy_url`).
    #[arg(long)]
    pub legacy_url: Option<String>,
}

/// Exit status: 0 when every difference found was repaired (or none was found), 1 otherwise (a dry run that
/// found any, differences no event can repair, conversations that could not be compared).
pub async fn run(args: ReconcileArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(global.config.as_deref())?;
    let mut c = loaded.config;
    if let Some(u) = args.legacy_url.clone() {
        c.reconcile.legacy_url = u;
    }
    if !args.once {
        if let Some(a) = args.listen {
            c.reconcile.listen = a;
        }
        if let Some(g) = args.group {
            c.reconcile.group_id = g;
        }
        tracing::info!(legacy_url = %c.reconcile.legacy_url, "reconcile service");
        let loaded = config::Loaded { config: c, ..loaded };
        return crate::cmd::serve::<imbridge_reconcile::Reconcile>(loaded, |c| c.reconcile.clone()).await;
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
    let im = imbridge_im::ImClient::new(&c.im, &im_registry).context("im client")?;
    // One process: all of reconcile's share of IM's quotas.
    imbridge_reconcile::quota::apply(&im, &c.im, 1.0);
    // With [im.quota] coordinate, the sweep shares the quotas with the running parts, as repair.
    let deps = imbridge_runtime::Deps::new(c.kafka.clone(), c.topics.clone(), c.im.clone());
    let _quota = imbridge_runtime::quota::coordinate(
        &deps,
        &im,
        "reconcile",
        imbridge_im::Priority::Repair,
        &imbridge_im::RECONCILE_APIS,
    )
    .context("im quota coordination")?;
    let producer =
        if args.dry_run { None } else { Some(imbridge_kafka::Producer::new(&c.kafka).context("kafka producer")?) };
    let reconciler = Reconciler {
        im,
        im_registry,
        legacy: imbridge_legacy::ReadClient::new(c.reconcile.read_config()).context("legacy read client")?,
        producer,
        topics: c.topics,
        max_users: c.reconcile.max_users,
    };
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).context("metrics")?;
    // Without named conversations, IM's own group list is read too: a group only IM has, with no message yet
    // (its creation callback lost), is found like one with activity.
    let scope = Scope { wide: conversations.is_empty(), conversations, since, ..Scope::default() };
    let report = reconciler.reconcile_once(&scope, args.dry_run).await?;
    metrics.record(Trigger::Once, &report);
    print!("{}", report.table());
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let unrepaired = report.differences() - report.repaired();
    Ok(if unrepaired == 0 && report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
