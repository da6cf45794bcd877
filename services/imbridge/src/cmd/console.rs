//! `imbridge console`: the migration console (a live web page) and `imbridge trace`, its "where is my message?"
//! lookup on the command line. The work is in `imbridge_console`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use imbridge_core::topics::ImportPhase;

use crate::cmd::{self, GlobalArgs};
use crate::config::{self, AppConfig};

/// Options of `imbridge console`; each overrides the same `[console]` setting.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address of the page (`console.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A TOML file of `[[services]]` tables (name, kind, url) that replaces `[[console.services]]`: a list of
    /// tables cannot be set through `IMBRIDGE_*` variables, so a container mounts one (deploy/console.toml).
    #[arg(long, value_name = "FILE")]
    pub services_file: Option<PathBuf>,
}

/// The file `--services-file` reads.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    services: Vec<imbridge_console::ServiceEndpoint>,
}

/// Reads a `--services-file`; a bad file fails with its name and the line toml names.
fn services_file(path: &Path) -> anyhow::Result<Vec<imbridge_console::ServiceEndpoint>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f: ServicesFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(f.services)
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

/// The consumer groups of the other sections, which the console watches.
fn groups(c: &AppConfig) -> imbridge_console::Groups {
    imbridge_console::Groups {
        to_im: c.to_im.live.group_id.clone(),
        to_legacy: c.to_legacy.group_id.clone(),
        import: ImportPhase::ALL.iter().map(|w| (*w, c.import.group_of(*w))).collect(),
    }
}

/// What the console, the tracer and `imbridge status` read, from the whole configuration.
pub fn view(c: &AppConfig) -> imbridge_console::View {
    imbridge_console::View { kafka: c.kafka.clone(), topics: c.topics.clone(), im: c.im.clone(), groups: groups(c) }
}

pub async fn run(args: ConsoleArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(global.config.as_deref())?;
    let c = &mut loaded.config;
    if let Some(a) = args.listen {
        c.console.listen = a;
    }
    if let Some(f) = &args.services_file {
        c.console.services = services_file(f)?;
    }
    tracing::info!(
        listen = %c.console.listen, services = c.console.services.len(), actions = c.console.actions_enabled(),
        "console configured"
    );
    cmd::serve::<imbridge_console::Console>(loaded, |c| imbridge_console::ConsoleSettings {
        console: c.console.clone(),
        groups: groups(c),
    })
    .await
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
    let report = imbridge_console::trace::lookup(&view(&c), &lookup, c.console.trace_max_records).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    // Not found is an answer, but scripts want to tell it apart.
    Ok(if report.hits.is_empty() { ExitCode::from(4) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_file_reads_the_compose_one_and_names_a_bad_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/console.toml");
        let s = services_file(&root).expect("deploy/console.toml");
        let names: Vec<(&str, &str)> = s.iter().map(|e| (e.name.as_str(), e.url.as_str())).collect();
        assert_eq!(
            names,
            [("ingest", "http://ingest:8080"), ("to-im", "http://to-im:9102"), ("to-legacy", "http://to-legacy:9103")]
        );
        let dir = std::env::temp_dir().join(format!("console-services-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[services]]\nname = \"x\"\nkind = \"to-im\"\nurl = \"http://x:1\"\ncolour = 1\n")
            .expect("write");
        let e = format!("{:#}", services_file(&bad).unwrap_err());
        assert!(e.contains("bad.toml") && e.contains("colour") && e.contains("line 5"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
