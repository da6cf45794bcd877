//! One scenario's place, modelled on quickwit's integration-test sandbox: a temporary directory for
//! configurations, logs and state; unique topics and consumer groups on the shared broker; the `imbridge.toml`
//! the parts read, built from the binary's own [`AppConfig`] and serialized (so a renamed key breaks the
//! build here, not a scenario at run time); and imbridge parts started as real processes of the built binary.
//!
//! [`Stack`] starts the whole pipeline wired to both emulators, [`PrivateBroker`] a broker of the scenario's
//! own for the scenarios that stop one (the shared broker is never stopped).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use imbridge::config::AppConfig;
use imbridge_console::{ServiceEndpoint, ServiceKind};
use imbridge_core::topics::TopicNames;
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_kafka::{ConsumerConfig, KafkaConfig};
use imbridge_legacy::SigningSecret;
use imbridge_legacy_emulator::{LegacyEmulatorConfig, RunningLegacyEmulator};
use imbridge_testkit::Proc;
use imbridge_to_legacy::ToLegacyConfig;

use crate::{APPLY_SECRET, WEBHOOK_SECRET};

/// How often the parts probe their dependencies: the scenarios wait on `/readyz` and want it to follow Kafka soon.
const PROBE_INTERVAL_MS: u64 = 300;

/// A temporary directory, unique topics and the configuration every part of one scenario reads.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub topics: TopicNames,
    /// What [`Sandbox::write_config`] writes; scenarios change it before writing (a quota, another group).
    pub config: AppConfig,
}

impl Sandbox {
    /// Topics `<unique name>.<role>` with `partitions` partitions on the shared broker, unique consumer groups,
    /// every part listening on port 0, and consumers that leave their group 6 s after a kill (the broker's
    /// minimum, not 45 s), so restarts rebalance quickly. With `IMBRIDGE_KEEP_LOGS` set, the directory (every process's log) stays after the test.
    pub fn new(name: &str, partitions: i32) -> Sandbox {
        let keep = std::env::var_os("IMBRIDGE_KEEP_LOGS").is_some();
        let dir =
            tempfile::Builder::new().prefix(&format!("{name}-")).disable_cleanup(keep).tempdir().expect("tempdir");
        if keep {
            eprintln!("logs in {}", dir.path().display());
        }
        let topics = crate::unique_topics(name, partitions);
        let mut config = AppConfig { kafka: crate::kafka(), topics: topics.clone(), ..AppConfig::default() };
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let quick_exit = |c: &mut ConsumerConfig| {
            c.session_timeout_ms = 6_000;
            c.drain_timeout_ms = 4_000;
        };
        config.ingest.listen = any_port;
        config.ingest.spool_dir = dir.path().join("ingest-spool");
        config.to_im.ops_listen = any_port;
        config.to_im.live.group_id = imbridge_testkit::unique(&format!("{name}-to-im"));
        quick_exit(&mut config.to_im.live.consumer);
        config.to_legacy.listen = any_port;
        config.to_legacy.group_id = imbridge_testkit::unique(&format!("{name}-to-legacy"));
        quick_exit(&mut config.to_legacy.consumer);
        let import = imbridge_testkit::unique(&format!("{name}-import"));
        config.import.checkpoint_topic = format!("{import}.checkpoints");
        config.import.group_id = import;
        config.console.listen = any_port;
        Sandbox { dir, topics, config }
    }

    /// The IM that every part calls: the emulator `im`.
    pub fn with_im(mut self, im: &RunningEmulator) -> Sandbox {
        self.config.im = im.client_config();
        self
    }

    /// The IM app of an emulator not started yet (its SDKAppID and key, the default admin), for a part that
    /// must start first: ingest, whose URL the emulator calls back.
    pub fn with_im_app(mut self, emulator: &EmulatorConfig) -> Sandbox {
        self.config.im.sdkappid = emulator.sdkappid;
        self.config.im.secret_key = emulator.secret_key.clone();
        self
    }

    /// Writes the configuration of a to-im process in consumer group `group_id` applying to `im`, as
    /// `<dir>/<group_id>.toml`; returns its path.
    pub fn write_to_im_config(&mut self, im: &RunningEmulator, group_id: &str) -> PathBuf {
        self.config.im = im.client_config();
        self.config.to_im.live.group_id = group_id.to_owned();
        self.write_config(group_id)
    }

    /// The settings of a watched pipeline: legacy webhooks signed with [`WEBHOOK_SECRET`], applies signed with
    /// [`APPLY_SECRET`] to `apply_url`, readiness probed every 300 ms, offsets committed every 200 ms (so lag
    /// reaches 0 soon after the work is done).
    pub fn pipeline(mut self, apply_url: &str) -> Sandbox {
        let c = &mut self.config;
        c.ingest.legacy_secret = SigningSecret::new(WEBHOOK_SECRET);
        c.ingest.readiness_interval_ms = PROBE_INTERVAL_MS;
        c.to_im.probe_interval_ms = PROBE_INTERVAL_MS;
        c.to_im.live.consumer.auto_commit_interval_ms = 200;
        c.to_legacy.apply_url = apply_url.to_owned();
        c.to_legacy.apply_secret = SigningSecret::new(APPLY_SECRET);
        c.to_legacy.readiness_interval_ms = PROBE_INTERVAL_MS;
        c.to_legacy.consumer.auto_commit_interval_ms = 200;
        self
    }

    /// to-legacy's settings where a scenario runs it in process beside IM callbacks: a gap in a group's seq is
    /// waited for 1.5 s before IM is asked, and a slow machine gets a 10 s session before a rebalance.
    pub fn to_legacy_in_process(&self) -> ToLegacyConfig {
        let mut c = self.config.to_legacy.clone();
        c.order.gap_wait_ms = 1_500;
        c.consumer.session_timeout_ms = 10_000;
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/<name>`: a log, a report, a state file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `config` as `<dir>/<name>.toml`; returns its path.
    pub fn write(&self, name: &str, config: &AppConfig) -> PathBuf {
        let path = self.file(&format!("{name}.toml"));
        std::fs::write(&path, toml::to_string(config).expect("configuration as TOML")).expect("write config");
        path
    }

    /// Writes [`Sandbox::config`] as `<dir>/<name>.toml`; returns its path.
    pub fn write_config(&self, name: &str) -> PathBuf {
        self.write(name, &self.config)
    }

    /// Starts `imbridge --config <config> <args…>`, its JSON log in `<dir>/<log>.log`.
    pub fn start(&self, config: &Path, args: &[&str], log: &str) -> Proc {
        Proc::start(config, args, self.file(&format!("{log}.log")))
    }
}

/// The pipeline as real processes wired to both emulators: legacy's signed webhooks (and its echoes) and IM's
/// callbacks go to ingest, to-im applies to IM, to-legacy to the legacy emulator.
#[derive(Debug)]
pub struct Stack {
    pub legacy: RunningLegacyEmulator,
    /// The configuration of to-im and to-legacy (and of any command run against the stack).
    pub config: PathBuf,
    pub ingest: Proc,
    pub to_im: Proc,
    pub to_legacy: Proc,
    pub ingest_addr: SocketAddr,
    pub to_im_addr: SocketAddr,
    pub to_legacy_addr: SocketAddr,
}

impl Stack {
    /// Ingest first (the legacy emulator needs its URL), then the legacy emulator, IM's callback URL, and to-im
    /// (logging at `to_im_log_level`) and to-legacy. Returns once each part said where it listens; sets the
    /// sandbox's apply URL.
    pub async fn start(sb: &mut Sandbox, im: &RunningEmulator, to_im_log_level: &str) -> Stack {
        let ingest_config = sb.write_config("ingest");
        let ingest = sb.start(&ingest_config, &["ingest"], "ingest");
        let ingest_addr = ingest.ingest_addr().await;
        let legacy = crate::spawn_legacy_with(LegacyEmulatorConfig {
            ingest_url: Some(format!("http://{ingest_addr}")),
            webhook_secret: SigningSecret::new(WEBHOOK_SECRET),
            echo_webhooks: true,
            ..LegacyEmulatorConfig::default()
        })
        .await;
        im.emulator().set_callback_url(Some(&format!("http://{ingest_addr}/v1/im/callback"))).expect("callback url");
        sb.config.to_legacy.apply_url = legacy.apply_url();
        let config = sb.write_config("imbridge");
        let to_im = Proc::start_logging(&config, &["to-im"], sb.file("to-im.log"), to_im_log_level);
        let to_legacy = sb.start(&config, &["to-legacy"], "to-legacy");
        let to_im_addr = to_im.to_im_ops().await;
        let to_legacy_addr = to_legacy.to_legacy_ops().await;
        Stack { legacy, config, ingest, to_im, to_legacy, ingest_addr, to_im_addr, to_legacy_addr }
    }

    /// ingest, to-im, to-legacy.
    pub fn addrs(&self) -> [SocketAddr; 3] {
        [self.ingest_addr, self.to_im_addr, self.to_legacy_addr]
    }

    /// The three parts as `imbridge console` watches them.
    pub fn services(&self) -> Vec<ServiceEndpoint> {
        let s = |name: &str, kind, addr| ServiceEndpoint { name: name.to_owned(), kind, url: format!("http://{addr}") };
        vec![
            s("ingest", ServiceKind::Ingest, self.ingest_addr),
            s("to-im", ServiceKind::ToIm, self.to_im_addr),
            s("to-legacy", ServiceKind::ToLegacy, self.to_legacy_addr),
        ]
    }

    /// Writes the file `imbridge console --services-file` reads, listing [`Stack::services`]; returns its path.
    pub fn write_services_file(&self, sb: &Sandbox) -> PathBuf {
        let mut file = toml::Table::new();
        file.insert("services".into(), toml::Value::try_from(self.services()).expect("services as TOML"));
        let path = sb.file("console-services.toml");
        std::fs::write(&path, toml::to_string(&file).expect("services file as TOML")).expect("write services file");
        path
    }

    /// Every part answers `/readyz` with 200.
    pub async fn ready(&self) -> bool {
        for a in self.addrs() {
            if !crate::ready(a).await {
                return false;
            }
        }
        true
    }
}

/// A broker of the scenario's own (`scripts/kafka.sh` on a free port pair), stopped on drop.
#[derive(Debug)]
pub struct PrivateBroker {
    port: u16,
    script: PathBuf,
}

impl PrivateBroker {
    /// A free port whose successor (the KRaft controller port) is free too.
    fn free_port_pair() -> u16 {
        for _ in 0..50 {
            let a = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = a.local_addr().expect("addr").port();
            drop(a);
            if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                return port;
            }
        }
        panic!("no free port pair");
    }

    pub fn start() -> Self {
        let b = Self { port: Self::free_port_pair(), script: imbridge_testkit::repo_root().join("scripts/kafka.sh") };
        b.run("start", false);
        b
    }

    /// Stops the broker, its data deleted.
    pub fn stop(&self) {
        self.run("stop", false);
    }

    /// Starts the broker again on its data.
    pub fn restart(&self) {
        self.run("start", true);
    }

    fn run(&self, what: &str, keep_data: bool) {
        let status = self
            .script_command(what)
            .env("KAFKA_KEEP_DATA", if keep_data { "1" } else { "0" })
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
            .status()
            .expect("run scripts/kafka.sh");
        assert!(status.success(), "scripts/kafka.sh {what} failed on port {}", self.port);
    }

    fn script_command(&self, what: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.script)
            .arg(what)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string());
        c
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client configuration of this broker.
    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig::for_bootstrap(self.bootstrap())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.script_command("stop").status();
    }
}
