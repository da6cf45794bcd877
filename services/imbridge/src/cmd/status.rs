//! `imbridge status`: per consumer group (the live groups and the import phases) its members, committed and end
//! offsets and lag per partition; DLQ depth and parked conversations; conversations per migration phase; the
//! last reconciliation sweep of every reconcile instance.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use imbridge_core::ConversationKey;
use imbridge_importer::apply::ImportTopic;

use crate::cmd::GlobalArgs;
use crate::config;

/// Options of `imbridge status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also show this conversation's phase, e.g. `group:team-1` or `c2c:ann:bob`.
    #[arg(long)]
    pub conversation: Option<String>,
    /// A consumer group and the topic it reads, as GROUP=TOPIC (repeatable). Default: to-im's live group on
    /// the legacy events topic, to-legacy's group on the IM events topic, and the import's group of each import
    /// phase on its topic (its progress).
    #[arg(long = "group", value_name = "GROUP=TOPIC")]
    pub groups: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(global.config.as_deref())?.config;
    let conversation =
        args.conversation.as_deref().map(ConversationKey::parse).transpose().context("--conversation")?;
    let groups: Vec<(String, String)> = if args.groups.is_empty() {
        let t = &cfg.topics;
        let mut g = vec![
            (cfg.to_im.live.group_id.clone(), t.legacy_events.clone()),
            (cfg.to_legacy.group_id.clone(), t.im_events.clone()),
        ];
        for (which, topic) in [
            (ImportTopic::Accounts, &t.import_accounts),
            (ImportTopic::Users, &t.import_users),
            (ImportTopic::C2c, &t.import_c2c),
            (ImportTopic::Groups, &t.import_groups),
        ] {
            g.push((cfg.import.group_of(which), topic.clone()));
        }
        g
    } else {
        args.groups
            .iter()
            .map(|g| {
                g.split_once('=')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .with_context(|| format!("--group {g:?} is not GROUP=TOPIC"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let report = imbridge_to_im::status::collect(&cfg.kafka, &cfg.topics, &groups, conversation.as_ref()).await?;
    let sweeps = imbridge_reconcile::sweep::last_sweeps(&cfg.kafka, &cfg.topics.status).await?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("reconcile_sweeps".into(), serde_json::to_value(&sweeps)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.render());
        print!("{}", imbridge_reconcile::sweep::render(&sweeps));
    }
    Ok(ExitCode::SUCCESS)
}
