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

pub use imbridge_testkit::prom::metric;
pub use imbridge_testkit::{Proc, eventually, run_cli};

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

/// Topic names no other test uses: every topic `<unique prefix>.<role>`.
pub fn unique_topics(prefix: &str, partitions: i32) -> TopicNames {
    let u = imbridge_testkit::unique(prefix);
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
