//! What the import scenarios share: a generated export, an IM emulator serving over real HTTP in the test
//! process, and the `imbridge` binary run as a real process against the real broker, configured through the
//! environment (unique topics and groups per scenario).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_importer::generate::{BadKind, Generated};
use imbridge_importer::{GenerateOptions, generate};

/// One scenario's world.
#[derive(Debug)]
pub struct World {
    pub dir: tempfile::TempDir,
    pub export: PathBuf,
    pub generated: Generated,
    pub emulator: RunningEmulator,
    pub prefix: String,
    pub env: BTreeMap<String, String>,
}

/// A small export with every record kind, every body element type and one bad line of every kind.
pub fn small_export(c2c_messages: usize, group_messages: usize) -> GenerateOptions {
    GenerateOptions {
        seed: 7,
        users: 30,
        friendships: 80,
        c2c_messages,
        groups: 6,
        group_messages,
        bad_lines: BadKind::ALL.len(),
        ..GenerateOptions::default()
    }
}

impl World {
    /// Generates the export and starts the emulator (`limits`: whether it answers 60007 beyond the quotas).
    pub async fn new(name: &str, export: GenerateOptions, limits: bool) -> World {
        Self::with_emulator(name, export, EmulatorConfig { rate_limits_enabled: limits, ..EmulatorConfig::default() })
            .await
    }

    /// Like [`World::new`] with a given emulator configuration.
    pub async fn with_emulator(name: &str, export: GenerateOptions, emulator: EmulatorConfig) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let export_dir = dir.path().join("export");
        let generated = generate(&export_dir, &export).expect("generate export");
        let emulator = imbridge_im_emulator::spawn(emulator).await.expect("emulator");
        let prefix = imbridge_testkit::unique(name);
        let c = emulator.client_config();
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        set("IMBRIDGE_KAFKA__BOOTSTRAP_SERVERS", imbridge_testkit::kafka_bootstrap());
        set("IMBRIDGE_IM__BASE_URL", c.base_url.clone());
        set("IMBRIDGE_IM__SDKAPPID", c.sdkappid.to_string());
        set("IMBRIDGE_IM__ADMIN_IDENTIFIER", c.admin_identifier.clone());
        set("IMBRIDGE_IM__SECRET_KEY", c.secret_key.clone());
        for (key, topic) in [
            ("IMPORT_ACCOUNTS", "import.accounts"),
            ("IMPORT_USERS", "import.users"),
            ("IMPORT_C2C", "import.c2c"),
            ("IMPORT_GROUPS", "import.groups"),
            ("DLQ", "dlq"),
            ("CONVERSATIONS", "conversations"),
        ] {
            set(&format!("IMBRIDGE_TOPICS__{key}"), format!("{prefix}.{topic}"));
        }
        set("IMBRIDGE_TOPICS__PARTITIONS", "4".into());
        set("IMBRIDGE_IMPORT__GROUP_ID", format!("{prefix}-import"));
        set("IMBRIDGE_IMPORT__CHECKPOINT_TOPIC", format!("{prefix}.import.checkpoints"));
        World { dir, export: export_dir, generated, emulator, prefix, env }
    }

    /// An `imbridge` command with this world's configuration (and nothing from the developer's environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(imbridge_testkit::imbridge_bin());
        cmd.args(args).arg("--log-format").arg("json");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IMBRIDGE_")) {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).current_dir(self.dir.path());
        cmd
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `imbridge import` in the background, output to `<name>.out` / `<name>.err`.
    pub fn spawn_import(&self, name: &str) -> Child {
        let out = std::fs::File::create(self.log(&format!("{name}.out"))).expect("out");
        let err = std::fs::File::create(self.log(&format!("{name}.err"))).expect("err");
        let report = self.log(&format!("{name}.json"));
        let export = self.export.to_str().expect("utf8 path").to_owned();
        self.command(&["import", &export, "--progress", "lines", "--report", report.to_str().expect("utf8")])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn imbridge import")
    }

    /// Runs `imbridge import` to the end; returns its status and JSON report (when written).
    pub async fn import(&self, name: &str) -> (ExitStatus, Option<serde_json::Value>) {
        let mut child = self.spawn_import(name);
        let status = wait(&mut child, Duration::from_secs(150)).await;
        let report =
            std::fs::read_to_string(self.log(&format!("{name}.json"))).ok().and_then(|s| serde_json::from_str(&s).ok());
        (status, report)
    }

    /// Runs `imbridge verify`; returns its status and JSON result.
    pub async fn verify(&self, name: &str) -> (ExitStatus, serde_json::Value) {
        let report = self.log(&format!("{name}.json"));
        let export = self.export.to_str().expect("utf8 path").to_owned();
        let mut child = self
            .command(&["verify", &export, "--report", report.to_str().expect("utf8")])
            .stdout(Stdio::from(std::fs::File::create(self.log(&format!("{name}.out"))).expect("out")))
            .stderr(Stdio::from(std::fs::File::create(self.log(&format!("{name}.err"))).expect("err")))
            .spawn()
            .expect("spawn imbridge verify");
        let status = wait(&mut child, Duration::from_secs(90)).await;
        let json = std::fs::read_to_string(&report)
            .unwrap_or_else(|_| panic!("{} has no report: {}", name, self.output(name)));
        (status, serde_json::from_str(&json).expect("verify json"))
    }

    /// stdout and the tail of stderr of a finished command, for failure messages.
    pub fn output(&self, name: &str) -> String {
        let out = std::fs::read_to_string(self.log(&format!("{name}.out"))).unwrap_or_default();
        let err = std::fs::read_to_string(self.log(&format!("{name}.err"))).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        format!(
            "--- stdout\n{out}\n--- stderr (last 30 lines)\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Requests the emulator answered for one API (`openim/importmsg`, …).
    pub fn requests(&self, api: &str) -> u64 {
        self.emulator.emulator().stats().requests.get(api).copied().unwrap_or(0)
    }
}

/// Waits for a child without blocking the runtime (the emulator serves from it); kills it past `timeout`.
pub async fn wait(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The per-kind rows of an import report, by kind.
pub fn kinds(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    report["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .map(|k| (k["kind"].as_str().expect("kind").to_owned(), k.clone()))
        .collect()
}

/// Asserts a verify result matched every item of every kind.
pub fn assert_verified(v: &serde_json::Value, context: &str) {
    for k in v["kinds"].as_array().expect("kinds") {
        let n = |f: &str| k[f].as_u64().expect("count");
        assert!(
            n("mismatched") == 0 && n("missing") == 0 && n("extra") == 0 && n("matched") == n("expected"),
            "{context}: {} does not match: {k}\nexamples: {}",
            k["kind"],
            v["examples"]
        );
    }
}

/// Element types used anywhere in an export's message files.
pub fn element_types(export: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for file in ["c2c_messages.ndjson", "group_messages.ndjson"] {
        let text = std::fs::read(export.join(file)).expect("messages file");
        for line in String::from_utf8_lossy(&text).lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                for e in v["body"].as_array().into_iter().flatten() {
                    if let Some(t) = e["type"].as_str() {
                        out.insert(t.to_owned());
                    }
                }
            }
        }
    }
    out
}
