//! Helpers shared by integration tests.
//!
//! Tests talk to one real Kafka broker per test run (started by `scripts/test.sh`, or any broker named by
//! `KAFKA_BOOTSTRAP`); each test isolates itself with unique topic and group names rather than its own broker.
//! A test that needs the broker starts with [`require_kafka!`]: without `KAFKA_BOOTSTRAP` it prints why and
//! skips, except under `scripts/test.sh`, which sets [`REQUIRE_KAFKA_ENV`] so that nothing is skipped there.
//!
//! - [`eventually`]: poll a condition until it holds or a deadline fails the test;
//! - [`unique`], [`unique_topics`]: names no other test uses;
//! - [`prom`]: read values off a Prometheus text page;
//! - [`process`]: imbridge parts as child processes of the built binary ([`Proc`], [`run_cli`]).

pub mod process;
pub mod prom;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use process::{Proc, run_cli};

use imbridge_core::topics::TopicNames;

/// Set (to anything but empty or `0`) by `scripts/test.sh`: a test that needs a broker and finds none fails
/// instead of skipping, so the full run never passes by skipping.
pub const REQUIRE_KAFKA_ENV: &str = "IMBRIDGE_TEST_REQUIRE_KAFKA";

fn configured_bootstrap() -> Option<String> {
    std::env::var("KAFKA_BOOTSTRAP").ok().filter(|v| !v.trim().is_empty())
}

/// Whether a broker is configured (`KAFKA_BOOTSTRAP`). Without one, prints `skipped: <test>: …` and answers
/// false so the test can return early — a plain `cargo test` on a machine without Kafka runs what it can; with
/// [`REQUIRE_KAFKA_ENV`] set it panics instead. Use it through [`require_kafka!`] at the top of every test that
/// needs the broker.
pub fn kafka_available(test: &str) -> bool {
    if configured_bootstrap().is_some() {
        return true;
    }
    let required = std::env::var(REQUIRE_KAFKA_ENV).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    assert!(
        !required,
        "{test}: KAFKA_BOOTSTRAP is not set but {REQUIRE_KAFKA_ENV} is: this run must not skip broker tests"
    );
    // Straight to stderr, not `eprintln!`: the test harness captures (and hides) a passing test's `eprintln!`.
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped: {test}: KAFKA_BOOTSTRAP not set (this test needs a Kafka broker; scripts/test.sh starts one, or \
         run `scripts/kafka.sh start` and export KAFKA_BOOTSTRAP=127.0.0.1:9092)"
    );
    false
}

/// Returns early from the calling test, saying so, when no Kafka broker is configured (see
/// [`kafka_available`]). The first statement of every test that needs the broker.
#[macro_export]
macro_rules! require_kafka {
    () => {
        if !$crate::kafka_available(concat!(module_path!(), " (", file!(), ":", line!(), ")")) {
            return;
        }
    };
}

/// The broker the tests run against. Panics when none was configured: tests that need Kafka start with
/// [`require_kafka!`], so reaching this without a broker is a test that forgot to say it needs one.
pub fn kafka_bootstrap() -> String {
    match configured_bootstrap() {
        Some(v) => v,
        None => panic!(
            "KAFKA_BOOTSTRAP is not set and this test did not start with imbridge_testkit::require_kafka!(): \
             run the tests with scripts/test.sh (which starts a local Apache Kafka), or start one with \
             `scripts/kafka.sh start` and export KAFKA_BOOTSTRAP=127.0.0.1:9092"
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

/// Topic names no other test uses: every topic `<unique prefix>.<role>`, `partitions` partitions, replication 1.
pub fn unique_topics(prefix: &str, partitions: i32) -> TopicNames {
    let u = unique(prefix);
    TopicNames {
        legacy_events: format!("{u}.legacy.events"),
        im_events: format!("{u}.im.events"),
        import_accounts: format!("{u}.import.accounts"),
        import_users: format!("{u}.import.users"),
        import_c2c: format!("{u}.import.c2c"),
        import_groups: format!("{u}.import.groups"),
        dlq: format!("{u}.dlq"),
        applied: format!("{u}.applied"),
        conversations: format!("{u}.conversations"),
        status: format!("{u}.status"),
        partitions,
        replication: 1,
    }
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
