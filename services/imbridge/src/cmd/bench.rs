//! `imbridge bench …`: benchmarks that print throughput, latency, CPU and memory beside a baseline.
//!
//! Kafka comes from the configuration like every service's (`[kafka]`, `IMBRIDGE_KAFKA__…`); `--bootstrap`
//! (or `KAFKA_BOOTSTRAP`) replaces only its `bootstrap_servers`. The Java baseline of `bench kafka` needs Kafka's
//! jars: `--kafka-classpath`/`KAFKA_CLASSPATH`, else `scripts/kafka.sh classpath` found next to the working
//! directory, the binary or the source tree it was built from — so the bench runs from any directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::bench::BenchOptions;

use crate::cmd::GlobalArgs;
use crate::cmd::export::ExportSizeArgs;
use crate::config;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Producer → ordered consumer events/s for 1 KB events, beside Kafka's own ProducerPerformance and
    /// ConsumerPerformance on the same broker, as a ratio.
    Kafka(KafkaBench),
    /// The bulk import: records/s per phase with the IM emulator's limits off beside the emulator's raw
    /// `importmsg` ceiling, then the achieved rate as a fraction of the quota with limits on. CPU and memory.
    Import(ImportBench),
    /// Real-time sync end to end, both directions: latency (source accepted → other side applied) at a steady
    /// rate, maximum sustained rate, beside the target's raw request ceiling measured in the same run.
    Sync(SyncBench),
    /// One quota per IM API shared by live sync, a repair sweep and a bulk import running at once (priorities
    /// live, repair, history; coordination on the broker): live latency alone and shared, each API's calls/s per
    /// part as a fraction of its quota, and the emulator's 60007 answers.
    Quota(QuotaBench),
    /// What each service costs on a large backlog: started as its own process on an input already holding
    /// `--events` events (to-im and to-legacy: their input topic; ingest: its callback spool, as after a Kafka
    /// outage), measured while it works them down: peak RSS beside the bound (`--bound-mib`), CPU seconds per
    /// 1,000 events, events/s.
    Backlog(BacklogBench),
}

#[derive(Debug, Args)]
pub struct BacklogBench {
    /// Kafka bootstrap servers (default: `kafka.bootstrap_servers` of the configuration).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// Events on each service's input (topic or spool) before it starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// 1:1 conversations the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// Partitions of the input topics.
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    /// Seconds each service is measured while it works the backlog down.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// The peak RSS a service may reach, MiB: the bench fails above it.
    #[arg(long, default_value_t = 150.0)]
    pub bound_mib: f64,
}

#[derive(Debug, Args)]
pub struct QuotaBench {
    /// Kafka bootstrap servers (default: `kafka.bootstrap_servers` of the configuration).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// Measured seconds of each phase (live alone, then all three at once).
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Unmeasured seconds for the parts to converge before the shared phase is measured.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    /// Live importmsg calls per second.
    #[arg(long, default_value_t = 40)]
    pub live_rate: u32,
    /// Live admin_getroammsg calls per second.
    #[arg(long, default_value_t = 5)]
    pub live_read_rate: u32,
    /// Concurrent callers of the import and of the repair sweep each.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct SyncBench {
    /// Kafka bootstrap servers (default: `kafka.bootstrap_servers` of the configuration).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// Partitions of the event topics.
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    /// 1:1 conversations per direction.
    #[arg(long, default_value_t = 50)]
    pub conversations: usize,
    /// Groups per direction (of every ten events, four are group messages and one a group rename).
    #[arg(long, default_value_t = 20)]
    pub groups: usize,
    /// Offered rate of the latency phase, events per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Pace the latency phase at this fraction of the direction's raw ceiling (measured first) instead of
    /// `--rate`: `--paced 0.2` is the "p99 at 20% of the ceiling" measurement.
    #[arg(long, value_parser = fraction)]
    pub paced: Option<f64>,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Messages of the throughput burst.
    #[arg(long, default_value_t = 2000)]
    pub burst: usize,
    /// Concurrent senders (burst and raw ceiling).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// IM callbacks the emulator delivers at once (its default, 8). IM sends each from the server that handled the
    /// message, so a busy app's overlap more; more in flight also arrive further out of order, which to-legacy's
    /// resequencer holds for (docs/performance.md).
    #[arg(long, default_value_t = 8)]
    pub callback_concurrency: usize,
    /// Keep IM's documented per-API quotas (200/s for sendmsg) in the emulator and in to-im; the raw ceiling is
    /// still called without imbridge's pacing, so it shows what the quota lets through.
    #[arg(long)]
    pub im_quota: bool,
}

#[derive(Debug, Args)]
pub struct ImportBench {
    /// Kafka bootstrap servers (default: `kafka.bootstrap_servers` of the configuration).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// Seed of the generated export.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The export of the limits-off phase.
    #[command(flatten)]
    pub size: ExportSizeArgs,
    /// 1:1 messages of the limits-on phase (about this / 200 seconds); 0 skips the phase.
    #[arg(long, default_value_t = 6000)]
    pub limits_on_c2c_messages: usize,
    /// Partitions of the benchmark's import topics.
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    /// Requests of the emulator's raw importmsg ceiling.
    #[arg(long, default_value_t = 20_000)]
    pub raw_requests: u64,
    /// Requests in flight during the raw ceiling measurement.
    #[arg(long, default_value_t = 64)]
    pub raw_concurrency: usize,
}

#[derive(Debug, Args)]
pub struct KafkaBench {
    /// Kafka bootstrap servers (default: `kafka.bootstrap_servers` of the configuration).
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// Events to produce and consume.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub event_bytes: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Distinct conversation keys.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Java classpath of Kafka's jars for the baseline (default: `scripts/kafka.sh classpath`, the script found
    /// under the working directory, beside the binary or in the source tree it was built from).
    #[arg(long, env = "KAFKA_CLASSPATH")]
    pub kafka_classpath: Option<String>,
    /// Skip the Java baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

/// The configuration's Kafka settings, with `bootstrap` (flag or `KAFKA_BOOTSTRAP`) replacing its servers.
fn kafka_config(global: &GlobalArgs, bootstrap: Option<String>) -> anyhow::Result<KafkaConfig> {
    let mut kafka = config::load(global.config.as_deref())?.config.kafka;
    if let Some(b) = bootstrap {
        kafka.bootstrap_servers = b;
    }
    Ok(kafka)
}

pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Sync(b) => {
            let opts = imbridge_bench::sync::BenchOptions {
                kafka: kafka_config(global, b.bootstrap)?,
                partitions: b.partitions,
                conversations: b.conversations,
                groups: b.groups,
                steady_rate: b.rate,
                paced_fraction: b.paced,
                steady_secs: b.secs,
                burst: b.burst,
                concurrency: b.concurrency,
                callback_concurrency: b.callback_concurrency,
                im_quota: b.im_quota,
                ..imbridge_bench::sync::BenchOptions::default()
            };
            let report = imbridge_bench::sync::run(&opts).await?;
            Ok(conclude(&report.render(), &report.problems()))
        }
        BenchWhat::Import(b) => {
            let opts = imbridge_bench::import::BenchOptions {
                kafka: kafka_config(global, b.bootstrap)?,
                export: b.size.options(b.seed),
                limits_on_c2c_messages: b.limits_on_c2c_messages,
                partitions: b.partitions,
                raw_requests: b.raw_requests,
                raw_concurrency: b.raw_concurrency,
                work_dir: std::env::temp_dir().join(format!("imbridge-bench-import-{}", std::process::id())),
            };
            let report = imbridge_bench::import::run(&opts).await?;
            Ok(conclude(&report.render(), &report.problems()))
        }
        // Taken apart so that a new flag cannot be forgotten here: every field is named or this fails to compile.
        BenchWhat::Quota(QuotaBench { bootstrap, secs, settle_secs, live_rate, live_read_rate, concurrency }) => {
            let kafka = kafka_config(global, bootstrap)?;
            let opts = imbridge_bench::quota::BenchOptions {
                kafka,
                secs,
                settle_secs,
                live_rate,
                live_read_rate,
                concurrency,
            };
            let report = imbridge_bench::quota::run(&opts).await?;
            Ok(conclude(&report.render(), &report.problems()))
        }
        BenchWhat::Backlog(BacklogBench { bootstrap, events, conversations, partitions, secs, bound_mib }) => {
            let kafka = kafka_config(global, bootstrap)?;
            let exe = std::env::current_exe().context("the imbridge binary the services are started from")?;
            let opts = imbridge_bench::backlog::BacklogOptions {
                kafka,
                exe,
                events,
                conversations,
                partitions,
                secs,
                bound_mib,
            };
            let report = imbridge_bench::backlog::run(&opts).await?;
            Ok(conclude(&report.render(), &report.problems()))
        }
        BenchWhat::Kafka(k) => {
            let classpath = if k.no_baseline {
                None
            } else {
                match k.kafka_classpath {
                    Some(cp) => Some(cp),
                    None => Some(kafka_sh_classpath()?),
                }
            };
            let opts = BenchOptions {
                events: k.events,
                event_bytes: k.event_bytes,
                partitions: k.partitions,
                keys: k.keys,
                kafka_classpath: classpath,
            };
            let report = imbridge_kafka::bench::run(&kafka_config(global, k.bootstrap)?, &opts).await?;
            print!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A fraction in (0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 (excluded) and 1")),
    }
}

/// Prints the report; exit 0 when the figures stand, otherwise each reason on stderr and exit 1 (a bench that
/// measured nothing or lost messages must not pass for a result).
fn conclude(rendered: &str, problems: &[String]) -> ExitCode {
    print!("{rendered}");
    for p in problems {
        eprintln!("bench: {p}");
    }
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Kafka's classpath from `scripts/kafka.sh classpath` (which fetches the jars on first use).
fn kafka_sh_classpath() -> anyhow::Result<String> {
    let script = find_kafka_sh().context(
        "cannot find Kafka's jars for the baseline: pass --kafka-classpath or set KAFKA_CLASSPATH (e.g. to the \
         output of scripts/kafka.sh classpath), or use --no-baseline; scripts/kafka.sh was not found under the \
         working directory, beside the binary, or in the source tree it was built from",
    )?;
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("classpath")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} classpath failed ({}): {}; pass --kafka-classpath or use --no-baseline",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `scripts/kafka.sh` under the working directory, under an ancestor of the binary (`target/debug/imbridge`
/// sits inside the repository), or in the source tree the binary was built from.
fn find_kafka_sh() -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    // services/imbridge → the repository root.
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    roots.into_iter().map(|r| r.join("scripts/kafka.sh")).find(|p| p.is_file())
}
