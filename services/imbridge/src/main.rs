//! The `imbridge` binary: parses the command line and configuration, sets up telemetry, and calls a part's
//! `run`. Nothing else lives here; every subcommand's work is done by a library crate.

mod cmd;

use imbridge::config;

use clap::{Parser, Subcommand};

/// imbridge moves an app's instant messaging from its existing backend ("legacy") to Tencent Cloud IM and
/// keeps the two in step, through Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "imbridge", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cmd::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Each subcommand is added here by the issue that makes it work (see `cmd/`).
    /// Benchmarks: throughput, latency, CPU and memory beside a baseline (`bench kafka`).
    Bench(cmd::bench::BenchArgs),
    /// The migration console: a live web page of import progress, lag, DLQ, parked conversations, service
    /// health, and "where is my message?" (`--listen ADDR`); runs until SIGTERM/Ctrl-C.
    Console(cmd::console::ConsoleArgs),
    /// Where is my message? Finds an event by legacy id, IM MsgKey, group + MsgSeq or conversation + time: its
    /// topic, partition, offset, when it was accepted and applied, or why it is dead-lettered or parked.
    Trace(cmd::console::TraceArgs),
    /// Configuration tools (`config validate`).
    Config(cmd::config::ConfigArgs),
    /// Demo tools against running emulators and services: live traffic from both apps (`demo traffic`) and a
    /// convergence check (`demo check`).
    Demo(cmd::demo::DemoArgs),
    /// The dead-letter topic: list, show, replay (re-drive in order) or drop unresolved records.
    Dlq(cmd::dlq::DlqArgs),
    /// Re-apply events: reset a stopped consumer group (`--group`), or re-apply one conversation now
    /// (`--conversation KEY --since TIME`).
    Replay(cmd::replay::ReplayArgs),
    /// Run a local emulator of a system imbridge connects (`emulate im`).
    Emulate(cmd::emulate::EmulateArgs),
    /// Export tools: `export validate DIR`, `export generate DIR`, and `export from-im DIR --accounts FILE`
    /// (the export of an existing IM app, for a forced upgrade to a new one).
    Export(cmd::export::ExportArgs),
    /// Tencent Cloud IM tools (`im usersig`).
    Im(cmd::im::ImArgs),
    /// Import a legacy export into IM: validate, produce to the import topics, apply, report (resumable).
    Import(cmd::import::ImportArgs),
    /// Compare legacy and IM per conversation and group and repair the differences through the pipeline
    /// (`reconcile --once [--since T] [--conversation KEY] [--dry-run] [--report FILE]`).
    Reconcile(cmd::reconcile::ReconcileArgs),
    /// Read IM back and compare it with a legacy export: per-kind table, non-zero exit on any mismatch.
    Verify(cmd::verify::VerifyArgs),
    /// Receive legacy webhooks and IM callbacks into Kafka (`--listen`); runs until SIGTERM/Ctrl-C.
    Ingest(cmd::ingest::IngestArgs),
    /// Apply IM events to the legacy system in real time (coexistence); runs until SIGTERM/Ctrl-C.
    ToLegacy(cmd::to_legacy::ToLegacyArgs),
    /// Consumer-group lag, DLQ depth and conversations per migration phase (`--conversation KEY` for one).
    Status(cmd::status::StatusArgs),
    /// Apply legacy events to IM in real time (coexistence); runs until SIGTERM/Ctrl-C.
    ToIm(cmd::to_im::ToImArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _guard = imbridge_telemetry::init_logging(cli.global.log_format, &cli.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imbridge: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Bench(args) => cmd::bench::run(args, &cli.global).await,
            Command::Config(args) => cmd::config::run(args, &cli.global),
            Command::Console(args) => cmd::console::run(args, &cli.global).await,
            Command::Trace(args) => cmd::console::trace(args, &cli.global).await,
            Command::Demo(args) => cmd::demo::run(args, &cli.global).await,
            Command::Dlq(args) => cmd::dlq::run(args, &cli.global).await,
            Command::Replay(args) => cmd::replay::run(args, &cli.global).await,
            Command::Emulate(args) => cmd::emulate::run(args).await,
            Command::Export(args) => cmd::export::run(args, &cli.global).await,
            Command::Im(args) => cmd::im::run(args, &cli.global),
            Command::Import(args) => cmd::import::run(args, &cli.global).await,
            Command::Reconcile(args) => Box::pin(cmd::reconcile::run(args, &cli.global)).await,
            Command::Verify(args) => cmd::verify::run(args, &cli.global).await,
            Command::Ingest(args) => cmd::ingest::run(args, &cli.global).await,
            Command::ToLegacy(args) => cmd::to_legacy::run(args, &cli.global).await,
            Command::Status(args) => cmd::status::run(args, &cli.global).await,
            Command::ToIm(args) => cmd::to_im::run(args, &cli.global).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("imbridge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
