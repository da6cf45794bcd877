//! `imbridge bench backlog`: what a service costs when it starts on a large backlog, the day after an outage.
//! Each service runs as its own process, the binary itself (`imbridge to-im`), on an input that already holds
//! `events` events (1:1 messages over many conversations): to-im and to-legacy on their input topic, against
//! emulators in this process with their limits off; ingest on its callback spool (the callbacks it accepted
//! while Kafka was away), which it forwards to its topic on the real broker. While it works the backlog down for `secs`, the process's peak RSS
//! (`VmHWM`) and CPU time are read from /proc; the events it finished are its group's committed offsets after a
//! graceful stop. Printed per service beside the memory bound the configuration is meant to keep (`bound_mib`):
//! the consumer's prefetch (`queued.max.messages.kbytes`) and the runner's `max_in_flight` records are what grow
//! with a backlog, everything else is fixed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imbridge_core::event::C2cMessage;
use imbridge_core::topics::TopicNames;
use imbridge_core::{ConversationKey, Element, Envelope, Event, EventId, Source, TimestampMs, UserId};
use imbridge_im::ImConfig;
use imbridge_im::config::RateSetting;
use imbridge_im_emulator::RunningEmulator;
use imbridge_ingest::IngestConfig;
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::producer::Producer;
use imbridge_legacy::SigningSecret;
use imbridge_legacy_emulator::RunningLegacyEmulator;
use imbridge_telemetry::bench::{cpu_times, peak_rss_mib};
use imbridge_to_im::ToImConfig;
use imbridge_to_legacy::ToLegacyConfig;
use tracing::info;

/// Why the bench could not measure.
#[derive(Debug, thiserror::Error)]
#[error("bench backlog: {0}")]
pub struct BenchError(String);

impl BenchError {
    fn new(what: impl std::fmt::Display) -> Self {
        Self(what.to_string())
    }
}

const APPLY_SECRET: &str = "bench-backlog-apply-secret";
/// Envelopes produced per acknowledged batch.
const PRODUCE_CHUNK: usize = 20_000;

/// What `imbridge bench backlog` runs.
#[derive(Debug, Clone)]
pub struct BacklogOptions {
    pub kafka: KafkaConfig,
    /// The imbridge binary the services are started from.
    pub exe: PathBuf,
    /// Events on each service's input topic before it starts.
    pub events: u64,
    pub conversations: usize,
    pub partitions: i32,
    /// How long each service works the backlog down while it is measured.
    pub secs: u64,
    /// The peak RSS a service may reach, in MiB.
    pub bound_mib: f64,
}

/// One service's figures.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    pub name: &'static str,
    pub backlog: u64,
    /// Events finished in the measured time: applied or dead-lettered (committed offsets); for ingest, spooled
    /// records Kafka acknowledged (the spool's watermark).
    pub finished: u64,
    /// Of those, dead-lettered.
    pub dead_lettered: u64,
    /// Messages the target stored in the measured time (IM's 1:1 messages; legacy's applied events; for ingest,
    /// records on its Kafka topic).
    pub stored: u64,
    pub secs: f64,
    pub peak_rss_mib: Option<f64>,
    pub cpu_secs: Option<f64>,
}

impl ServiceFigures {
    fn cpu_per_1000(&self) -> Option<f64> {
        self.cpu_secs.map(|c| c * 1000.0 / self.finished.max(1) as f64)
    }
}

#[derive(Debug, Clone)]
pub struct BacklogReport {
    pub options: BacklogOptions,
    pub produced_per_sec: f64,
    pub services: Vec<ServiceFigures>,
}

impl BacklogReport {
    pub fn render(&self) -> String {
        let o = &self.options;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "backlog: {} events (1:1 messages, {} conversations, {} partitions) on each service's input (its topic; ingest: its spool) \
             before it starts; produced at {:.0}/s; each service measured for {} s as its own process",
            o.events, o.conversations, o.partitions, self.produced_per_sec, o.secs
        );
        let _ = writeln!(
            s,
            "{:<10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>14} {:>12} {:>14}",
            "service", "backlog", "finished", "DLQ", "stored", "events/s", "peak RSS MiB", "bound MiB", "CPU-s/1000 ev"
        );
        for f in &self.services {
            let opt = |v: Option<f64>, p: usize| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.p$}"));
            let _ = writeln!(
                s,
                "{:<10} {:>10} {:>10} {:>8} {:>10} {:>10.0} {:>14} {:>12.0} {:>14}",
                f.name,
                f.backlog,
                f.finished,
                f.dead_lettered,
                f.stored,
                f.finished as f64 / f.secs.max(0.001),
                opt(f.peak_rss_mib, 1),
                o.bound_mib,
                opt(f.cpu_per_1000(), 3),
            );
        }
        s
    }

    /// Why the figures do not stand, if they do not.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.services {
            if f.finished == 0 {
                out.push(format!("{}: finished nothing of its backlog", f.name));
            }
            if f.dead_lettered > 0 {
                out.push(format!("{}: dead-lettered {} events", f.name, f.dead_lettered));
            }
            if f.stored < f.finished.saturating_sub(f.dead_lettered) {
                out.push(format!(
                    "{}: the target stored {} messages, fewer than the {} events finished",
                    f.name,
                    f.stored,
                    f.finished.saturating_sub(f.dead_lettered)
                ));
            }
            match f.peak_rss_mib {
                None => out.push(format!("{}: its peak RSS could not be read", f.name)),
                Some(p) if p > self.options.bound_mib => out.push(format!(
                    "{}: peak RSS {p:.1} MiB is above the bound of {:.0} MiB",
                    f.name, self.options.bound_mib
                )),
                Some(_) => {}
            }
        }
        out
    }
}

/// The service under measure.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ToIm,
    ToLegacy,
    Ingest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ToIm => "to-im",
            Kind::ToLegacy => "to-legacy",
            Kind::Ingest => "ingest",
        }
    }
}

/// Room for the bench's spooled backlog (a million callbacks take ≈ 400 MiB on disk).
const SPOOL_MAX_BYTES: u64 = 4 << 30;

pub async fn run(opts: &BacklogOptions) -> Result<BacklogReport, BenchError> {
    let im = imbridge_im_emulator::spawn(imbridge_im_emulator::EmulatorConfig {
        rate_limits_enabled: false,
        ..imbridge_im_emulator::EmulatorConfig::default()
    })
    .await
    .map_err(BenchError::new)?;
    let legacy = imbridge_legacy_emulator::spawn(imbridge_legacy_emulator::LegacyEmulatorConfig {
        apply_secrets: vec![SigningSecret::new(APPLY_SECRET)],
        ..imbridge_legacy_emulator::LegacyEmulatorConfig::default()
    })
    .await
    .map_err(BenchError::new)?;
    let dir = std::env::temp_dir().join(format!("imbridge-bench-backlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(BenchError::new)?;
    let mut services = Vec::new();
    let mut produced = (0u64, Duration::ZERO);
    for kind in [Kind::ToIm, Kind::ToLegacy, Kind::Ingest] {
        let prefix = format!("bench-backlog-{}-{}-{:06x}", kind.name(), std::process::id(), rand::random::<u32>() >> 8);
        let topics = TopicNames { partitions: opts.partitions, ..TopicNames::with_prefix(&prefix) };
        let input = match kind {
            Kind::ToIm => topics.legacy_events.clone(),
            Kind::ToLegacy | Kind::Ingest => topics.im_events.clone(),
        };
        let spool_dir = dir.join(format!("{prefix}-spool"));
        let started = Instant::now();
        match kind {
            Kind::Ingest => spool_backlog(opts, &spool_dir).await?,
            _ => produce_backlog(opts, kind, &input).await?,
        }
        produced = (produced.0 + opts.events, produced.1 + started.elapsed());
        info!(service = kind.name(), events = opts.events, "backlog produced; starting the service");

        let mut im_cfg = im.client_config();
        im_cfg.quota.coordinate = false;
        for api in imbridge_im::apply::APPLY_APIS {
            im_cfg.rate_limits.insert(api, RateSetting::Off);
        }
        let group = format!("{prefix}-group");
        let target = Target { apply_url: legacy.apply_url(), group: group.clone(), spool_dir: spool_dir.clone() };
        let config = write_config(&dir, opts, kind, &topics, &im_cfg, &target)?;
        let log = dir.join(format!("{}.log", kind.name()));
        let stored_before = stored(kind, &im, &legacy, &opts.kafka, &input).await;
        let started = Instant::now();
        let mut child = spawn(&opts.exe, &config, kind, &log)?;
        let pid = child.id();
        let measured = Duration::from_secs(opts.secs);
        while started.elapsed() < measured {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::new(format!(
                    "{} exited early ({status}); its log: {}",
                    kind.name(),
                    log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (peak, cpu) = (peak_rss_mib(Some(pid)), cpu_times(Some(pid)).map(|c| c.own_secs));
        let secs = started.elapsed().as_secs_f64();
        stop(&mut child).await;
        let finished = match kind {
            Kind::Ingest => imbridge_ingest::spool::acknowledged(&spool_dir),
            _ => committed(&opts.kafka, &input, &group).await?,
        };
        let dead_lettered = records(&opts.kafka, &topics.dlq).await;
        let stored = stored(kind, &im, &legacy, &opts.kafka, &input).await - stored_before;
        let _ = std::fs::remove_dir_all(&spool_dir);
        info!(service = kind.name(), finished, peak_rss_mib = ?peak, "measured");
        services.push(ServiceFigures {
            name: kind.name(),
            backlog: opts.events,
            finished,
            dead_lettered,
            stored,
            secs,
            peak_rss_mib: peak,
            cpu_secs: cpu,
        });
    }
    im.shutdown().await.map_err(BenchError::new)?;
    legacy.shutdown().await.map_err(BenchError::new)?;
    let produced_per_sec = produced.0 as f64 / produced.1.as_secs_f64().max(0.001);
    Ok(BacklogReport { options: opts.clone(), produced_per_sec, services })
}

/// `events` 1:1 messages over `conversations` pairs, each conversation's in time order, from the source the
/// service reads (legacy's for to-im, IM's for to-legacy).
async fn produce_backlog(opts: &BacklogOptions, kind: Kind, topic: &str) -> Result<(), BenchError> {
    let admin = Admin::new(&opts.kafka).map_err(BenchError::new)?;
    admin.ensure_topics(&[TopicSpec::new(topic, opts.partitions)]).await.map_err(BenchError::new)?;
    let producer = Producer::new(&opts.kafka).map_err(BenchError::new)?;
    let now = TimestampMs::now().as_millis();
    let start = now - opts.events as i64;
    let conversations = opts.conversations.max(1) as u64;
    let mut i = 0u64;
    while i < opts.events {
        let end = (i + PRODUCE_CHUNK as u64).min(opts.events);
        let envs: Vec<Envelope> = (i..end).map(|n| envelope(kind, n, conversations, start + n as i64)).collect();
        producer.send_envelopes(topic, &envs).await.map_err(BenchError::new)?;
        i = end;
    }
    Ok(())
}

/// The same backlog as IM callbacks ingest accepted while Kafka was away: `events` records in its spool, as its
/// callback handler writes them (the conversation key, the envelope's JSON).
async fn spool_backlog(opts: &BacklogOptions, dir: &Path) -> Result<(), BenchError> {
    use futures::stream::{self, StreamExt};
    use imbridge_ingest::spool::{Spool, SpoolMetrics, SpoolSettings};
    let settings = SpoolSettings {
        dir: dir.to_owned(),
        max_bytes: SPOOL_MAX_BYTES,
        segment_bytes: 8 << 20,
        memory_bytes: 16 << 20,
    };
    let metrics = SpoolMetrics::new(&prometheus::Registry::new()).map_err(BenchError::new)?;
    let spool = Spool::open(settings, metrics).map_err(BenchError::new)?;
    let now = TimestampMs::now().as_millis();
    let start = now - opts.events as i64;
    let conversations = opts.conversations.max(1) as u64;
    // Concurrent appends share fsyncs (group commit), as concurrent callbacks do.
    let appended: Vec<Result<u64, _>> = stream::iter(0..opts.events)
        .map(|n| {
            let spool = spool.clone();
            let env = envelope(Kind::Ingest, n, conversations, start + n as i64);
            async move { spool.append(env.conversation.as_str(), env.to_json()).await }
        })
        .buffered(1024)
        .collect()
        .await;
    if let Some(Err(e)) = appended.into_iter().find(Result::is_err) {
        return Err(BenchError::new(format!("spooling the backlog: {e}")));
    }
    spool.close();
    Ok(())
}

fn envelope(kind: Kind, n: u64, conversations: u64, time_ms: i64) -> Envelope {
    let c = n % conversations;
    let (a, b) = (UserId::new_unchecked(format!("bl-u{}", 2 * c)), UserId::new_unchecked(format!("bl-u{}", 2 * c + 1)));
    let (from, to) = if (n / conversations) % 2 == 0 { (a, b) } else { (b, a) };
    let conversation = ConversationKey::c2c(&from, &to);
    let body = vec![Element::Text { text: format!("backlog message {n}") }];
    let event = Event::C2cMessage(C2cMessage { from: from.clone(), to, body, custom_data: None });
    let (id, source) = match kind {
        Kind::ToIm => (EventId::legacy(&format!("bl-{n}")), Source::Legacy),
        // IM's MsgKey shape, `<MsgSeq>_<MsgRandom>_<MsgTime>`, with a sequence that grows in the conversation.
        Kind::ToLegacy | Kind::Ingest => {
            let key = format!("{}_{}_{}", n / conversations + 1, n % 1_000_000_007, time_ms / 1000);
            (EventId::im_c2c(&from, &key), Source::Im)
        }
    };
    Envelope::recorded_now(id, source, conversation, TimestampMs(time_ms), event)
}

/// Where a service under measure sends its work.
struct Target {
    /// Legacy's apply endpoint (to-legacy).
    apply_url: String,
    /// The consumer group (to-im, to-legacy).
    group: String,
    /// The spool directory holding the backlog (ingest).
    spool_dir: PathBuf,
}

/// The configuration file of one service: the sections it reads, from the config types.
fn write_config(
    dir: &Path,
    opts: &BacklogOptions,
    kind: Kind,
    topics: &TopicNames,
    im: &ImConfig,
    target: &Target,
) -> Result<PathBuf, BenchError> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut table = toml::Table::new();
    let mut put = |section: &str, value: Result<toml::Value, toml::ser::Error>| -> Result<(), BenchError> {
        table.insert(section.to_owned(), value.map_err(BenchError::new)?);
        Ok(())
    };
    put("kafka", toml::Value::try_from(&opts.kafka))?;
    put("topics", toml::Value::try_from(topics))?;
    put("im", toml::Value::try_from(im))?;
    match kind {
        Kind::ToIm => {
            let mut c = ToImConfig { listen, ..ToImConfig::default() };
            c.live.group_id = target.group.clone();
            put("to_im", toml::Value::try_from(&c))?;
        }
        Kind::ToLegacy => {
            let c = ToLegacyConfig {
                listen,
                group_id: target.group.clone(),
                apply_url: target.apply_url.clone(),
                apply_secret: SigningSecret::new(APPLY_SECRET),
                ..ToLegacyConfig::default()
            };
            put("to_legacy", toml::Value::try_from(&c))?;
        }
        Kind::Ingest => {
            let c = IngestConfig {
                listen,
                legacy_secret: SigningSecret::new(APPLY_SECRET),
                spool_dir: target.spool_dir.clone(),
                spool_max_bytes: SPOOL_MAX_BYTES,
                heartbeat_interval_ms: 0,
                ..IngestConfig::default()
            };
            put("ingest", toml::Value::try_from(&c))?;
        }
    }
    let path = dir.join(format!("{}.toml", kind.name()));
    std::fs::write(&path, toml::to_string(&table).map_err(BenchError::new)?).map_err(BenchError::new)?;
    Ok(path)
}

fn spawn(exe: &Path, config: &Path, kind: Kind, log: &Path) -> Result<Child, BenchError> {
    let out = std::fs::File::create(log).map_err(BenchError::new)?;
    let err = out.try_clone().map_err(BenchError::new)?;
    Command::new(exe)
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "--log-level", "warn", kind.name()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| BenchError::new(format!("starting {} {}: {e}", exe.display(), kind.name())))
}

/// SIGTERM, so the service drains and commits; SIGKILL if it has not stopped 30 s later.
async fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Messages the service's target holds: IM's stored 1:1 messages, legacy's applied events, or (ingest) the
/// records on its topic.
async fn stored(
    kind: Kind,
    im: &RunningEmulator,
    legacy: &RunningLegacyEmulator,
    kafka: &KafkaConfig,
    topic: &str,
) -> u64 {
    match kind {
        Kind::ToIm => im.emulator().c2c_messages() as u64,
        Kind::ToLegacy => legacy.stats().counters.applied,
        Kind::Ingest => records(kafka, topic).await,
    }
}

/// Records on `topic` (0 when it does not exist: nothing was ever dead-lettered).
async fn records(kafka: &KafkaConfig, topic: &str) -> u64 {
    let Ok(admin) = Admin::new(kafka) else { return 0 };
    admin.offsets(topic, None).await.map_or(0, |o| o.iter().map(|p| (p.high - p.low).max(0) as u64).sum())
}

/// Events of `topic` the group committed.
async fn committed(kafka: &KafkaConfig, topic: &str, group: &str) -> Result<u64, BenchError> {
    let admin = Admin::new(kafka).map_err(BenchError::new)?;
    let offsets = admin.offsets(topic, Some(group)).await.map_err(BenchError::new)?;
    Ok(offsets.iter().map(|p| p.committed.map_or(0, |c| (c - p.low).max(0) as u64)).sum())
}
