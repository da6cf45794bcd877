//! imbridge parts as child processes of the built binary ([`crate::imbridge_bin`]), so a test can kill one
//! with SIGKILL (no drain, no commit, no flush) or stop it with SIGTERM, and read its JSON log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::eventually;

/// How long [`Proc::terminate`] waits for an exit after SIGTERM: longer than any drain deadline.
const TERMINATE_WAIT: Duration = Duration::from_secs(40);
/// How long [`Proc::logged_addr`] waits for the line.
const LOGGED_ADDR_WAIT: Duration = Duration::from_secs(60);

/// An imbridge part as a child process, logging JSON lines to `log`. Killed when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `imbridge --config <config> <args…>` at log level `info`, stderr (the log) to `<log>`.
    pub fn start(config: &Path, args: &[&str], log: PathBuf) -> Self {
        Self::start_logging(config, args, log, "info")
    }

    /// [`start`](Self::start) with a log filter of its own (`tracing` syntax).
    pub fn start_logging(config: &Path, args: &[&str], log: PathBuf, level: &str) -> Self {
        let config = config.to_str().expect("utf-8 config path");
        let all: Vec<&str> = ["--config", config].into_iter().chain(args.iter().copied()).collect();
        Self::spawn(&all, log, level)
    }

    /// Starts `imbridge <args…>` without an imbridge.toml (the emulators take their own options).
    pub fn start_args(args: &[&str], log: PathBuf) -> Self {
        Self::spawn(args, log, "info")
    }

    fn spawn(args: &[&str], log: PathBuf, level: &str) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(crate::imbridge_bin())
            .args(["--log-format", "json", "--log-level", level])
            .args(args)
            .env_remove("IMBRIDGE_CONFIG")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn imbridge");
        Self { child, log }
    }

    /// SIGKILL: no drain, no commit, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + TERMINATE_WAIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit {TERMINATE_WAIT:?} after SIGTERM: {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The address field `field` of the first log line with message `message` (the part logs where it listens).
    pub async fn logged_addr(&self, message: &str, field: &str) -> SocketAddr {
        self.logged_addr_where(&[("message", message)], field).await
    }

    /// The address field `field` of the first log line whose fields have the values `matching`.
    async fn logged_addr_where(&self, matching: &[(&str, &str)], field: &str) -> SocketAddr {
        let mut found = None;
        eventually(&format!("{matching:?} in {}", self.log.display()), LOGGED_ADDR_WAIT, || {
            found = self.log_lines().iter().find_map(|v| {
                matching
                    .iter()
                    .all(|(k, want)| v[*k] == *want)
                    .then(|| v[field].as_str().and_then(|a| a.parse().ok()))
                    .flatten()
            });
            std::future::ready(found.is_some())
        })
        .await;
        found.expect("address")
    }

    /// Where the service `name` (`to-im`, …) serves /metrics, /healthz, /readyz: every service logs it the same
    /// way once started (`imbridge_runtime::run`).
    pub async fn service_addr(&self, name: &str) -> SocketAddr {
        self.logged_addr_where(&[("message", "started"), ("service", name)], "addr").await
    }

    /// Where `imbridge to-im` serves /metrics, /healthz, /readyz.
    pub async fn to_im_ops(&self) -> SocketAddr {
        self.service_addr("to-im").await
    }

    /// Where `imbridge to-legacy` serves /metrics, /healthz, /readyz.
    pub async fn to_legacy_ops(&self) -> SocketAddr {
        self.service_addr("to-legacy").await
    }

    /// Where `imbridge ingest` serves its endpoints and /metrics, /healthz, /readyz.
    pub async fn ingest_addr(&self) -> SocketAddr {
        self.service_addr("ingest").await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `imbridge --config <config> <args…>` (log level `warn`) to completion, stdin closed; returns
/// (success, stdout + stderr).
pub fn run_cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::imbridge_bin())
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "--log-level", "warn"])
        .args(args)
        .env_remove("IMBRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run imbridge");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
