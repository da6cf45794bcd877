//! End-to-end scenarios live in this package's `[[test]]` targets; this library holds what they share:
//! ids and bodies, unique topics, the test broker and consumer lag, `/metrics` and `/readyz` of a running part,
//! and (re-exported from `imbridge-testkit`) polling, Prometheus values and imbridge child processes. Each
//! family's own support module (`sync_support.rs`, `ops_support.rs`, `import_support.rs`) adds what only that
//! family needs.

use std::net::SocketAddr;

use imbridge_core::topics::TopicNames;
use imbridge_core::{Element, GroupId, UserId};
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::admin::Admin;
use imbridge_runtime::{Deps, Running, Service};
use tokio_util::sync::CancellationToken;

pub use imbridge_testkit::prom::metric;
pub use imbridge_testkit::{Proc, eventually, run_cli};

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

/// What a service started in this process shares, as the binary builds it: the test broker, `topics`, `im`,
/// a registry of its own, stopped by `stop`.
pub fn deps(topics: &TopicNames, im: imbridge_im::ImConfig, stop: &CancellationToken) -> Deps {
    Deps::new(kafka(), topics.clone(), im).with_shutdown(stop.clone())
}

/// Builds and starts service `S` in this process the way `imbridge <service>` does.
pub async fn start_service<S: Service>(config: S::Config, deps: &Deps) -> Running<S::Output, S::Error> {
    let built = S::build(config, deps).await.unwrap_or_else(|e| panic!("{} builds: {e}", S::NAME));
    built.start().await.unwrap_or_else(|e| panic!("{} starts: {e}", S::NAME))
}

/// Topic names no other test uses: every topic `<unique prefix>.<role>`.
pub fn unique_topics(prefix: &str, partitions: i32) -> TopicNames {
    let u = imbridge_testkit::unique(prefix);
    TopicNames { partitions, ..TopicNames::with_prefix(&u) }
}

pub fn user(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

pub fn group(s: &str) -> GroupId {
    GroupId::parse(s).expect("group id")
}

/// A body of one text element.
pub fn text(s: &str) -> Vec<Element> {
    vec![Element::Text { text: s.to_owned() }]
}

/// Records of `topic` not yet committed by `group` (every partition; a group that never committed counts all;
/// `i64::MAX` while the broker does not answer).
pub async fn lag(group: &str, topic: &str) -> i64 {
    let admin = Admin::new(&kafka()).expect("admin");
    match admin.offsets(topic, Some(group)).await {
        Ok(ps) => ps.iter().map(|p| p.lag()).sum(),
        Err(_) => i64::MAX,
    }
}

/// `/metrics` of a part; fails the test when it does not answer.
pub async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape").text().await.expect("metrics text")
}

/// `/metrics` of a part, or an empty page while it is not answering (a part being killed or restarted).
pub async fn scrape_or_empty(addr: SocketAddr) -> String {
    match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `/readyz` answered 200.
pub async fn ready(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/readyz")).await.is_ok_and(|r| r.status().is_success())
}
