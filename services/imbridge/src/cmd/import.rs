//! `imbridge import DIR`: validate a legacy export, produce it to the import topics, apply it to IM with the
//! import APIs, wait until everything is applied, print the report. The work is in
//! `imbridge_importer::run`; running the same command again after any interruption continues the run.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use imbridge_importer::ValidateOptions;
use imbridge_importer::progress::ProgressMode;
use imbridge_importer::run::{RunOptions, RunResult};

use crate::cmd::GlobalArgs;
use crate::cmd::export::ExportDirArgs;
use crate::config;

/// Options of `imbridge import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub export: ExportDirArgs,
    /// Validate only: print per-kind counts, errors and the calls the import would take, import nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress display: bars on a terminal, plain lines otherwise (`auto`), or as asked.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Bars,
    Lines,
    Off,
}

impl Progress {
    pub fn mode(self) -> ProgressMode {
        match self {
            Progress::Auto => ProgressMode::Auto,
            Progress::Bars => ProgressMode::Bars,
            Progress::Lines => ProgressMode::Lines,
            Progress::Off => ProgressMode::Off,
        }
    }
}

pub async fn run(args: ImportArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cfg = config::load(global.config.as_deref())?.config;
    let deps = crate::cmd::deps(&cfg).with_shutdown(imbridge_telemetry::shutdown_token());
    let now_ms = Some(imbridge_core::TimestampMs::now().as_millis());
    let options = RunOptions {
        dir: args.export.dir.clone(),
        strict: args.export.strict,
        dry_run: args.dry_run,
        validate: ValidateOptions { max_errors_per_kind: args.export.max_errors, now_ms },
        progress: args.progress.mode(),
        say: Arc::new(|s: &str| println!("{}", s.trim_end())),
        started,
        stats: None,
    };
    let result = imbridge_importer::run::run(&cfg.import, &deps, options)
        .await
        .with_context(|| format!("importing {}", args.export.dir.display()))?;
    match result {
        RunResult::DryRun { report, lower_bound, survey_calls } => {
            println!("calls the import takes per IM API:");
            for (api, n) in &survey_calls.calls {
                println!("  {:<22} {n:>8}", api.as_str());
            }
            println!("lower bound of the import's wall time at the configured rates: {:.2}s", lower_bound.secs);
            if let Some(path) = &args.export.report {
                report.write_json(path)?;
                println!("report written to {}", path.display());
            }
            println!("dry run: nothing imported");
            Ok(ExitCode::SUCCESS)
        }
        RunResult::Refused { report } => {
            if let Some(path) = &args.export.report {
                report.write_json(path)?;
            }
            println!("--strict: invalid records found, nothing imported");
            Ok(ExitCode::from(2))
        }
        RunResult::Imported(report) => {
            print!("{}", report.to_text());
            if let Some(path) = &args.export.report {
                report.write_json(path)?;
                println!("report written to {}", path.display());
            }
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(3) })
        }
    }
}
