//! The console's own `/metrics` against a real broker: a dead-lettered record parks its conversation, and the
//! gauges the "DLQ not empty" and "parked conversations" alerts use must say 1 on the next round, the lag gauge
//! must count the records no group consumed, and a drop must bring both back to 0. `/readyz` and `/healthz`
//! come from the shared ops router.

use std::net::SocketAddr;
use std::time::Duration;

use imbridge_console::ConsoleConfig;
use imbridge_core::Failure;
use imbridge_kafka::Producer;
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::dlq::{self, DlqProducer, Selection};
use imbridge_kafka::record::Record;
use tokio_util::sync::CancellationToken;

use crate::common::{deps, legacy_msg};

/// The value of one series (`name` or `name{labels}`) on a `/metrics` page.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.expect("console answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Waits until every `(series, value)` holds on the console's `/metrics`; returns that page.
async fn metrics_until(addr: SocketAddr, want: &[(&str, f64)]) -> String {
    let mut page = String::new();
    for _ in 0..150 {
        page = get(addr, "/metrics").await.1;
        if want.iter().all(|(s, v)| value(&page, s) == Some(*v)) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {want:?} on /metrics:\n{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_follow_the_dlq_parked_conversations_and_lag() {
    let d = deps("console-metrics", 2);
    let t = d.topics.clone();
    Admin::new(&d.kafka)
        .expect("admin")
        .ensure_topics(&[
            TopicSpec::new(&t.legacy_events, 2),
            TopicSpec::new(&t.im_events, 2),
            TopicSpec::new(&t.dlq, 2),
        ])
        .await
        .expect("topics");
    let p = Producer::new(&d.kafka).expect("producer");
    let first = p.send_envelope(&t.legacy_events, &legacy_msg("m1")).await.expect("produce");
    p.send_envelope(&t.legacy_events, &legacy_msg("m2")).await.expect("produce");

    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        refresh_interval_ms: 200,
        services: vec![],
        ..ConsoleConfig::default()
    };
    let shutdown = CancellationToken::new();
    let console = imbridge_console::start(config, d.clone(), shutdown.clone()).await.expect("console starts");
    let addr = console.addr;
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));

    let to_im_lag = format!("imbridge_console_consumer_lag_records{{group=\"{}\"}}", d.to_im_group);
    let to_legacy_lag = format!("imbridge_console_consumer_lag_records{{group=\"{}\"}}", d.to_legacy_group);
    // Nothing dead-lettered yet; to-im's group consumed nothing of the two records.
    metrics_until(
        addr,
        &[
            ("imbridge_console_dlq_unresolved_records", 0.0),
            ("imbridge_console_parked_conversations", 0.0),
            (&to_im_lag, 2.0),
            (&to_legacy_lag, 0.0),
        ],
    )
    .await;
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!((code, body.as_str()), (200, "kafka ok\n"), "ready once a round read Kafka");

    // The first message is dead-lettered: its conversation is parked.
    let record = Record {
        topic: t.legacy_events.clone(),
        partition: first.partition,
        offset: first.offset,
        key: Some(b"c2c:ann:bob".to_vec()),
        payload: Some(legacy_msg("m1").to_json()),
        timestamp_ms: None,
        headers: vec![],
    };
    DlqProducer::new(p.clone(), &t.dlq)
        .send(&record, &Failure::new("im_90001", "To_Account does not exist"), 3, 1)
        .await
        .expect("dead letter");
    let page = metrics_until(
        addr,
        &[
            ("imbridge_console_dlq_unresolved_records", 1.0),
            ("imbridge_console_dlq_depth_records", 1.0),
            ("imbridge_console_parked_conversations", 1.0),
        ],
    )
    .await;
    assert!(value(&page, "imbridge_console_rounds_total{result=\"ok\"}").is_some_and(|v| v >= 2.0), "{page}");

    // Dropped: nothing unresolved, nothing parked (the record stays on the topic until retention).
    let sel = Selection { key: Some(b"c2c:ann:bob".to_vec()), original_topic: None };
    dlq::drop_records(&d.kafka, &t.dlq, &sel).await.expect("drop");
    metrics_until(
        addr,
        &[("imbridge_console_dlq_unresolved_records", 0.0), ("imbridge_console_parked_conversations", 0.0)],
    )
    .await;

    shutdown.cancel();
    console.join().await;
}
