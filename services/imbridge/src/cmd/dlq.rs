//! `imbridge dlq list|show|replay|drop`: the dead-letter topic, for operators.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use imbridge_kafka::dlq::{self, Selection};

use crate::cmd::GlobalArgs;
use crate::config;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub what: DlqWhat,
}

#[derive(Debug, Subcommand)]
pub enum DlqWhat {
    /// Unresolved dead-lettered records per conversation: count, first error kind and reason.
    List,
    /// Every unresolved record of one conversation (or all), with its headers and payload.
    Show {
        /// Conversation key, e.g. `group:team-1` or `c2c:ann:bob`.
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Re-produce unresolved records to their original topics, per conversation in order, and unpark those
    /// conversations. Fix the cause first (apply is idempotent, so a replayed record that already applied is
    /// harmless).
    Replay(Select),
    /// Give up on unresolved records (they are not applied) and unpark their conversations.
    Drop(Select),
}

#[derive(Debug, Args)]
pub struct Select {
    /// Only this conversation key.
    #[arg(long)]
    pub conversation: Option<String>,
    /// Only records that came from this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Every unresolved record (required when no --conversation is given, to avoid accidents).
    #[arg(long)]
    pub all: bool,
}

impl Select {
    fn selection(&self) -> anyhow::Result<Selection> {
        if self.conversation.is_none() && !self.all {
            anyhow::bail!("name a --conversation, or pass --all to act on every unresolved record");
        }
        Ok(Selection {
            key: self.conversation.as_ref().map(|c| c.as_bytes().to_vec()),
            original_topic: self.topic.clone(),
        })
    }
}

pub async fn run(args: DlqArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(global.config.as_deref())?.config;
    let topic = cfg.topics.dlq.clone();
    match args.what {
        DlqWhat::List => {
            let state = dlq::scan(&cfg.kafka, &topic).await?;
            let mut per: Vec<(String, usize, String, String)> = Vec::new();
            for e in &state.unresolved {
                let key = String::from_utf8_lossy(e.record.key.as_deref().unwrap_or_default()).into_owned();
                match per.iter_mut().find(|p| p.0 == key) {
                    Some(p) => p.1 += 1,
                    None => per.push((key, 1, e.info.kind.clone(), e.info.reason.clone())),
                }
            }
            println!(
                "{topic}: {} unresolved, {} resolved, {} unreadable",
                state.unresolved.len(),
                state.resolved,
                state.unreadable
            );
            if !per.is_empty() {
                println!("{:<40} {:>7}  {:<24} first reason", "conversation", "records", "first kind");
                for (k, n, kind, reason) in per {
                    println!("{k:<40} {n:>7}  {kind:<24} {reason}");
                }
            }
        }
        DlqWhat::Show { conversation } => {
            let state = dlq::scan(&cfg.kafka, &topic).await?;
            for e in state
                .unresolved
                .iter()
                .filter(|e| conversation.as_deref().is_none_or(|c| e.record.key.as_deref() == Some(c.as_bytes())))
            {
                println!(
                    "dlq {}@{}  from {}:{}@{}  kind {}  attempts {}  first failure {}\n  reason: {}\n  key: {}\n  payload: {}",
                    e.dlq_partition,
                    e.dlq_offset,
                    e.info.original_topic,
                    e.info.original_partition,
                    e.info.original_offset,
                    e.info.kind,
                    e.info.attempts,
                    imbridge_core::TimestampMs(e.info.first_failure_ms),
                    e.info.reason,
                    String::from_utf8_lossy(e.record.key.as_deref().unwrap_or_default()),
                    String::from_utf8_lossy(e.record.payload.as_deref().unwrap_or_default()),
                );
            }
        }
        DlqWhat::Replay(sel) => {
            let r = dlq::replay(&cfg.kafka, &topic, &sel.selection()?).await?;
            println!("replayed {} record(s) of {} conversation(s)", r.records, r.keys);
        }
        DlqWhat::Drop(sel) => {
            let r = dlq::drop_records(&cfg.kafka, &topic, &sel.selection()?).await?;
            println!("dropped {} record(s) of {} conversation(s)", r.records, r.keys);
        }
    }
    Ok(ExitCode::SUCCESS)
}
