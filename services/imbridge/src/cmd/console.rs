//! `imbridge console`: the migration console (a live web page) and `imbridge trace`, its "where is my message?"
//! lookup on the command line. The work is in `imbridge_console`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use imbridge_importer::apply::ImportTopic;

use crate::cmd::GlobalArgs;
use crate::config::{self, AppConfig};

/// Options of `imbridge console`; each overrides the same `[console]` setting.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address of the page (`console.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Options of `imbridge trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// What to look for: a legacy message id (`m-1`, `legacy:m-1`), an IM MsgKey (`123_456_1700000000`, or
    /// `im:c2c:<from>:<MsgKey>`), a group message (`group:<id>#<MsgSeq>`), an import record (`import:<kind>:<key>`),
    /// or a conversation and a time (`c2c:ann:bob@2026-01-31T12:00:00Z`).
    pub id: String,
    /// The conversation, when known (`c2c:ann:bob`, `group:team`): only its partition is read.
    #[arg(long)]
    pub conversation: Option<String>,
    /// Read from this time on (RFC 3339 or Unix ms). Default: the earliest retained record (a MsgKey bounds it
    /// by its own time).
    #[arg(long)]
    pub since: Option<String>,
    /// Ignore records after this time (RFC 3339 or Unix ms).
    #[arg(long)]
    pub until: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The console's view of the rest of the configuration.
fn deps(c: &AppConfig) -> imbridge_console::Deps {
    imbridge_console::Deps {
        kafka: c.kafka.clone(),
        topics: c.topics.clone(),
        to_im_group: c.to_im.live.group_id.clone(),
        to_legacy_group: c.to_legacy.group_id.clone(),
        import_groups: ImportTopic::ALL.iter().map(|w| (*w, c.import.group_of(*w))).collect(),
        checkpoint_topic: c.import.checkpoint_topic.clone(),
        im: c.im.clone(),
    }
}

pub async fn run(args: ConsoleArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(global.config.as_deref())?;
    let mut c = loaded.config;
    if let Some(a) = args.listen {
        c.console.listen = a;
    }
    tracing::info!(
        config = ?loaded.file, env_overrides = ?loaded.env_overrides, listen = %c.console.listen,
        services = c.console.services.len(), actions = c.console.actions_enabled(), "starting console"
    );
    let shutdown = imbridge_telemetry::shutdown_token();
    let d = deps(&c);
    imbridge_console::run(c.console, d, shutdown).await.context("console")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn trace(args: TraceArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let c = config::load(global.config.as_deref())?.config;
    let lookup = imbridge_console::trace::Lookup::parse(
        &args.id,
        args.conversation.as_deref(),
        args.since.as_deref(),
        args.until.as_deref(),
        c.console.trace_window_secs,
    )?;
    let report = imbridge_console::trace::lookup(&deps(&c), &lookup, c.console.trace_max_records).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    // Not found is an answer, but scripts want to tell it apart.
    Ok(if report.hits.is_empty() { ExitCode::from(4) } else { ExitCode::SUCCESS })
}
