//! `imbridge replay`: re-apply a range of events, in one of two ways.
//!
//! - `--group G --to-earliest|--to-time|--to-offset`: move a stopped consumer group back; its consumers then
//!   re-apply everything from there (idempotently) when they start.
//! - `--conversation KEY --since TIME`: re-apply one conversation's events now, through the services' own
//!   handlers (to-im's live handler for legacy events, to-legacy's applier for IM events), up to each group's
//!   committed offset; nothing else is touched and the services may keep running.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use imbridge_core::{ConversationKey, TimestampMs};
use imbridge_kafka::replay::{self, KeyReplay, ResetTo};

use crate::cmd::GlobalArgs;
use crate::config;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("to").args(["to_earliest", "to_time", "to_offset"])))]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["group", "conversation"])))]
pub struct ReplayArgs {
    /// The consumer group to move (e.g. `imbridge-to-im`). It must be stopped.
    #[arg(long, requires = "to")]
    pub group: Option<String>,
    /// Re-apply one conversation instead (e.g. `c2c:ann:bob`, `group:team-1`), from `--since`.
    #[arg(long, requires = "since", conflicts_with_all = ["to", "topics", "yes"])]
    pub conversation: Option<String>,
    /// With --conversation: the first event time to re-apply (RFC 3339 or Unix ms).
    #[arg(long, requires = "conversation")]
    pub since: Option<String>,
    /// With --conversation: only one direction (default: both that are configured).
    #[arg(long, value_enum, requires = "conversation")]
    pub only: Option<Direction>,
    /// Topics of the group to move (repeatable). Default: the group's usual topic when the group name ends in
    /// `to-im` (legacy events) or `to-legacy` (IM events).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Move to the first retained offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Move to the first offset at or after this time (RFC 3339 or Unix ms).
    #[arg(long)]
    pub to_time: Option<String>,
    /// Move to explicit positions, `topic:partition:offset` (repeatable).
    #[arg(long, num_args = 1..)]
    pub to_offset: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// A direction of the sync, i.e. which service's handler re-applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Legacy events → IM, through to-im's live handler.
    ToIm,
    /// IM events → legacy, through to-legacy's applier.
    ToLegacy,
}

pub async fn run(args: ReplayArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(global.config.as_deref())?.config;
    if let (Some(c), Some(since)) = (&args.conversation, &args.since) {
        return conversation(&cfg, c, since, args.only).await;
    }
    let group = args.group.clone().context("--group or --conversation is required")?;
    let to = if args.to_earliest {
        ResetTo::Earliest
    } else if let Some(t) = &args.to_time {
        ResetTo::Time(TimestampMs::parse(t).map_err(anyhow::Error::msg)?.as_millis())
    } else {
        let mut list = Vec::new();
        for s in &args.to_offset {
            let mut parts = s.rsplitn(3, ':');
            let (Some(o), Some(p), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!("--to-offset {s:?}: expected topic:partition:offset");
            };
            list.push((t.to_owned(), p.parse()?, o.parse()?));
        }
        ResetTo::Offsets(list)
    };
    let mut topics = args.topics.clone();
    if topics.is_empty() && !matches!(to, ResetTo::Offsets(_)) {
        if group == cfg.to_im.live.group_id || group.ends_with("to-im") {
            topics.push(cfg.topics.legacy_events.clone());
        } else if group == cfg.to_legacy.group_id || group.ends_with("to-legacy") {
            topics.push(cfg.topics.im_events.clone());
        } else {
            anyhow::bail!("name the group's topics with --topic");
        }
    }
    let plan = replay::plan(&cfg.kafka, &group, &topics, &to).await?;
    println!("{:<36} {:>9} {:>12} {:>12} {:>12}", "topic", "partition", "committed", "new", "end");
    for p in &plan {
        let old = p.old.map_or("-".to_owned(), |o| o.to_string());
        println!("{:<36} {:>9} {:>12} {:>12} {:>12}", p.topic, p.partition, old, p.new, p.high);
    }
    if !args.yes {
        print!("move group {group} to these offsets? type yes: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            println!("nothing changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    replay::apply(&cfg.kafka, &group, &plan).await?;
    println!("group {group} moved; start its consumers to re-apply");
    Ok(ExitCode::SUCCESS)
}

/// `--conversation KEY --since TIME`: each configured direction re-applies the conversation's events.
async fn conversation(
    cfg: &config::AppConfig,
    key: &str,
    since: &str,
    only: Option<Direction>,
) -> anyhow::Result<ExitCode> {
    let key = ConversationKey::parse(key).context("--conversation")?;
    let since_ms = TimestampMs::parse(since).map_err(anyhow::Error::msg).context("--since")?.as_millis();
    // A conversation parked behind dead-lettered records is the DLQ's to re-drive (`imbridge dlq replay`), in
    // order with what is parked behind it; re-applying around it here would break that order.
    let dlq = imbridge_kafka::dlq::scan(&cfg.kafka, &cfg.topics.dlq).await?;
    let parked = dlq.parked_keys(&[cfg.topics.legacy_events.as_str(), cfg.topics.im_events.as_str()]);
    if let Some(behind) = parked.get(key.as_str().as_bytes()) {
        anyhow::bail!(
            "{key} has unresolved dead-lettered records (first: {behind}): re-drive them with \
             `imbridge dlq replay --conversation {key}` (or drop them with `imbridge dlq drop`) first"
        );
    }
    let deps = crate::cmd::deps(cfg);
    let mut ok = true;
    if only.is_none_or(|d| d == Direction::ToIm) {
        let r = imbridge_to_im::replay::conversation(cfg.to_im.clone(), &deps, &key, since_ms)
            .await
            .context("replay to IM")?;
        println!(
            "to-im:     {}; {} applied, {} already applied, {} found in IM",
            range(&r.key),
            r.applied,
            r.skipped,
            r.recovered
        );
        ok &= report_stop(&r.key);
    }
    if only.is_none_or(|d| d == Direction::ToLegacy) {
        if only.is_none() && cfg.to_legacy.apply_url.is_empty() {
            println!("to-legacy: skipped (to_legacy.apply_url is not configured)");
        } else {
            let r = imbridge_to_legacy::replay::conversation(cfg.to_legacy.clone(), &deps, &key, since_ms)
                .await
                .context("replay to legacy")?;
            println!("to-legacy: {}; {} applied, {} already there", range(&r.key), r.applied, r.duplicate);
            ok &= report_stop(&r.key);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn range(r: &KeyReplay) -> String {
    match r.until_offset {
        Some(until) => {
            format!("{} event(s) of {}:{} offsets {}..{}", r.matched, r.topic, r.partition, r.from_offset, until)
        }
        None => format!("nothing: group never committed on {}:{}", r.topic, r.partition),
    }
}

/// Prints where a replay stopped early; false if it did.
fn report_stop(r: &KeyReplay) -> bool {
    match &r.failed {
        None => true,
        Some((offset, f)) => {
            println!(
                "  stopped at {}:{}@{offset} ({}: {}); {} later event(s) not offered",
                r.topic,
                r.partition,
                f.kind,
                f.reason,
                r.matched.saturating_sub(r.done + 1)
            );
            false
        }
    }
}
