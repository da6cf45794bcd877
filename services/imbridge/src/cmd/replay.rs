//! `imbridge replay --group G …`: move a stopped consumer group back to re-apply a range of its topics.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Args;
use imbridge_core::TimestampMs;
use imbridge_kafka::replay::{self, ResetTo};

use crate::cmd::GlobalArgs;
use crate::config;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_time", "to_offset"])))]
pub struct ReplayArgs {
    /// The consumer group to move (e.g. `imbridge-to-im`). It must be stopped.
    #[arg(long)]
    pub group: String,
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

pub async fn run(args: ReplayArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(global.config.as_deref())?.config;
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
        if args.group.ends_with("to-im") {
            topics.push(cfg.topics.legacy_events.clone());
        } else if args.group.ends_with("to-legacy") {
            topics.push(cfg.topics.im_events.clone());
        } else {
            anyhow::bail!("name the group's topics with --topic");
        }
    }
    let plan = replay::plan(&cfg.kafka, &args.group, &topics, &to).await?;
    println!("{:<36} {:>9} {:>12} {:>12} {:>12}", "topic", "partition", "committed", "new", "end");
    for p in &plan {
        let old = p.old.map_or("-".to_owned(), |o| o.to_string());
        println!("{:<36} {:>9} {:>12} {:>12} {:>12}", p.topic, p.partition, old, p.new, p.high);
    }
    if !args.yes {
        print!("move group {} to these offsets? type yes: ", args.group);
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            println!("nothing changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    replay::apply(&cfg.kafka, &args.group, &plan).await?;
    println!("group {} moved; start its consumers to re-apply", args.group);
    Ok(ExitCode::SUCCESS)
}
