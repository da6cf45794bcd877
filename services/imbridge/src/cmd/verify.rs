//! `imbridge verify DIR`: reads IM back through its query APIs and compares it with the legacy export; prints
//! a per-kind table and exits non-zero on any mismatch. The work is in `imbridge_importer::verify`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use imbridge_importer::ValidateOptions;
use imbridge_importer::verify::VerifyOptions;

use crate::cmd::GlobalArgs;
use crate::config;

/// Options of `imbridge verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export directory that was imported.
    pub dir: PathBuf,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Conversations, users or groups read at once (each API stays within its configured quota).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Differences listed; the rest are counted.
    #[arg(long, default_value_t = 30)]
    pub max_examples: usize,
}

pub async fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cfg = config::load(global.config.as_deref())?.config;
    let registry = prometheus::Registry::new();
    let im = imbridge_im::ImClient::new(&cfg.im, &registry).context("im client")?;
    let now_ms = Some(imbridge_core::TimestampMs::now().as_millis());
    let options = VerifyOptions {
        validate: ValidateOptions { max_errors_per_kind: 0, now_ms },
        concurrency: args.concurrency,
        max_examples: args.max_examples,
    };
    let report = imbridge_importer::verify::verify(&args.dir, &im, &options)
        .await
        .with_context(|| format!("verifying {}", args.dir.display()))?;
    print!("{}", report.to_text());
    println!("verified in {:.2}s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
