//! `imbridge export …`: work with an export directory before importing it. `export validate` runs both
//! validation passes and prints counts and `file:line` errors (the same check `import --dry-run` does);
//! `export generate` writes a deterministic sample export for tests and demos (the work is in
//! `imbridge_importer`); `export from-im` writes the export of an existing IM app (`imbridge_exporter`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_importer::{GenerateOptions, ValidateOptions};

use crate::cmd::GlobalArgs;
use crate::cmd::import::Progress;
use crate::config;

/// Arguments of `imbridge export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub command: ExportCommand,
}

/// `imbridge export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Validate an export directory: per-kind counts, errors with file:line, optional JSON report.
    Validate(ValidateArgs),
    /// Write a deterministic, realistic sample export (optionally with bad lines).
    Generate(GenerateArgs),
    /// Read an existing Tencent Cloud IM app (`[old_side.im]`, or `[export.from_im]`) through its query APIs and
    /// write its export:
    /// accounts (from --accounts: IM cannot list them), profiles, friends, 1:1 and group history, groups and
    /// members. Resumable: run the same command again after any interruption.
    FromIm(FromImArgs),
}

/// Options of `imbridge export from-im`.
#[derive(Debug, Args)]
pub struct FromImArgs {
    /// Directory to write into (created if missing). It holds the checkpoint of an interrupted run, which the
    /// same command continues.
    pub dir: PathBuf,
    /// The accounts to export: one user id a line, or an `accounts.ndjson`. IM has no API that lists an
    /// app's accounts; ids the old app does not have are named in the report.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Users, conversations or groups read at once (default: `export.concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Progress display: bars on a terminal, plain lines otherwise (`auto`), or as asked.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

/// Options of `imbridge export validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub export: ExportDirArgs,
}

/// An export directory and how strictly it is read: `export validate` and `import` share them.
#[derive(Debug, Args)]
pub struct ExportDirArgs {
    /// The export directory (`accounts.ndjson[.gz]`, `profiles.ndjson[.gz]`, …; any may be absent).
    pub dir: PathBuf,
    /// Treat any invalid record as fatal: exit non-zero and import nothing (default: report and skip invalid
    /// records).
    #[arg(long)]
    pub strict: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Errors listed per record kind; the rest are counted.
    #[arg(long, default_value_t = 20)]
    pub max_errors: usize,
}

/// How big a generated export is: `export generate` and `bench import` share them.
#[derive(Debug, Args)]
pub struct ExportSizeArgs {
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Distinct friend pairs (about 60% mutual: two lines; the rest one line).
    #[arg(long, default_value_t = 1000)]
    pub friendships: usize,
    /// 1:1 messages.
    #[arg(long, default_value_t = 20_000)]
    pub c2c_messages: usize,
    #[arg(long, default_value_t = 30)]
    pub groups: usize,
    #[arg(long, default_value_t = 5000)]
    pub group_messages: usize,
}

impl ExportSizeArgs {
    /// Generator options of this size.
    pub fn options(&self, seed: u64) -> GenerateOptions {
        GenerateOptions {
            seed,
            users: self.users,
            friendships: self.friendships,
            c2c_messages: self.c2c_messages,
            groups: self.groups,
            group_messages: self.group_messages,
            ..GenerateOptions::default()
        }
    }
}

/// Options of `imbridge export generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write into (created if missing; files of the same names are replaced).
    pub dir: PathBuf,
    /// Seed: the same seed and sizes always give the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub size: ExportSizeArgs,
    /// Invalid lines to inject, of every kind in turn (listed with file:line on output).
    #[arg(long, default_value_t = 0)]
    pub bad_lines: usize,
    /// Write `.ndjson.gz` files.
    #[arg(long)]
    pub gzip: bool,
}

pub async fn run(args: ExportArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ExportCommand::Validate(a) => validate(a),
        ExportCommand::Generate(a) => generate(a),
        ExportCommand::FromIm(a) => from_im(a, global).await,
    }
}

async fn from_im(args: FromImArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let cfg = config::load(global.config.as_deref())?.config;
    let old = cfg.export.from_im.as_ref().or(cfg.old_side.old_im()).context(
        "no IM app to export: set [old_side] kind = \"im\" with [old_side.im] (the old app), or [export.from_im]",
    )?;
    let im = imbridge_im::ImClient::new(old, &prometheus::Registry::new()).context("the old app's IM client")?;
    // With the old app's `quota.coordinate`, the export shares that app's quotas (announced under its SDKAppID)
    // with every other imbridge process calling it, as history: live sync to the old app goes first.
    let deps = imbridge_runtime::Deps::new(cfg.kafka.clone(), cfg.topics.clone(), old.clone());
    let _quota = imbridge_runtime::quota::coordinate(
        &deps,
        &im,
        "export",
        imbridge_im::Priority::History,
        &imbridge_exporter::EXPORT_APIS,
    )
    .context("im quota coordination")?;
    let accounts = imbridge_exporter::read_accounts(&args.accounts)?;
    let options = imbridge_exporter::ExportOptions {
        concurrency: args.concurrency.unwrap_or(cfg.export.concurrency),
        custom_profile_tags: cfg.export.custom_profile_tags.clone(),
        progress: args.progress.mode(),
        progress_every: std::time::Duration::from_secs(5),
        say: Arc::new(|s: &str| println!("{}", s.trim_end())),
    };
    println!("exporting IM app {} ({} accounts listed) into {}", im.sdkappid(), accounts.len(), args.dir.display());
    let report = imbridge_exporter::export_from_im(&args.dir, &accounts, &im, &options)
        .await
        .with_context(|| format!("exporting into {}", args.dir.display()))?;
    print!("{}", report.to_text());
    println!("exported in {:.2}s", report.seconds);
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    tracing::info!(complete = report.is_complete(), "export from IM finished");
    Ok(ExitCode::SUCCESS)
}

fn validate(ValidateArgs { export: args }: ValidateArgs) -> anyhow::Result<ExitCode> {
    let now_ms = Some(imbridge_core::TimestampMs::now().as_millis());
    let options = ValidateOptions { max_errors_per_kind: args.max_errors, now_ms };
    let started = Instant::now();
    let (_, report) = imbridge_importer::check_export(&args.dir, &options, args.strict)
        .with_context(|| format!("validating {}", args.dir.display()))?;
    print!("{}", report.to_text());
    println!("validated in {:.2}s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.report {
        report.write_json(path)?;
        println!("report written to {}", path.display());
    }
    tracing::info!(valid = report.valid, invalid = report.invalid, strict = args.strict, "export validated");
    Ok(if report.may_import() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let options = GenerateOptions { bad_lines: args.bad_lines, gzip: args.gzip, ..args.size.options(args.seed) };
    let started = Instant::now();
    let generated = imbridge_importer::generate(&args.dir, &options)
        .with_context(|| format!("generating into {}", args.dir.display()))?;
    for (kind, path) in &generated.files {
        println!(
            "{:<16} {:>8} valid  {}",
            kind.as_str(),
            generated.valid.get(kind).copied().unwrap_or(0),
            path.display()
        );
    }
    for bad in &generated.bad {
        let field = if bad.field.is_empty() { String::new() } else { format!(" ({})", bad.field) };
        println!("bad line: {}:{} {:?}{field}", bad.kind.file_name(), bad.line, bad.what);
    }
    println!("generated in {:.3}s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
