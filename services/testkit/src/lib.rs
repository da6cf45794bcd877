//! Helpers shared by integration tests.
//!
//! Tests talk to one real Kafka broker per test run (started by `scripts/test.sh`, or any broker named by
//! `KAFKA_BOOTSTRAP`); each test isolates itself with unique topic and group names rather than its own broker.
//!
//! - [`eventually`]: poll a condition until it holds or a deadline fails the test;
//! - [`prom`]: read values off a Prometheus text page;
//! - [`process`]: imbridge parts as child processes of the built binary ([`Proc`], [`run_cli`]).

pub mod process;
pub mod prom;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use process::{Proc, run_cli};

/// The broker the tests run against. Panics with instructions when none was provided: a test that needs Kafka
/// must fail loudly, never pass by skipping.
pub fn kafka_bootstrap() -> String {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "KAFKA_BOOTSTRAP is not set: run the tests with scripts/test.sh (which starts a local Apache Kafka), \
             or start one with `scripts/kafka.sh start` and export KAFKA_BOOTSTRAP=127.0.0.1:9092"
        ),
    }
}

/// A name no other test (in this or a concurrent run) uses: `<prefix>-<pid>-<n>-<random>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{prefix}-{}-{n}-{r:08x}", std::process::id())
}

/// The repository root (tests run with the package directory as working directory).
pub fn repo_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("scripts").join("kafka.sh").exists() {
        if !dir.pop() {
            panic!("cannot find the repository root (scripts/kafka.sh) above {}", env!("CARGO_MANIFEST_DIR"));
        }
    }
    dir
}

/// Java classpath of the Kafka jars fetched by `scripts/kafka.sh` (for tests that run Kafka's own classes).
pub fn kafka_classpath() -> String {
    if let Ok(cp) = std::env::var("KAFKA_CLASSPATH") {
        return cp;
    }
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/kafka.sh"))
        .arg("classpath")
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/kafka.sh classpath: {e}"));
    assert!(out.status.success(), "scripts/kafka.sh classpath failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The path of a built binary of this workspace (`imbridge`), for tests that start parts as real processes.
pub fn imbridge_bin() -> PathBuf {
    if let Ok(p) = std::env::var("IMBRIDGE_BIN") {
        return PathBuf::from(p);
    }
    let root = repo_root();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    let bin = target.join("debug").join("imbridge");
    assert!(bin.exists(), "{} not built: run `cargo build -p imbridge` first (scripts/test.sh does)", bin.display());
    bin
}

/// Polls `f` every 100 ms until it returns true; fails the test after `timeout`, naming `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
