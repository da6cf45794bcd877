//! Shared pieces of the Kafka plumbing tests: topics, producing test records, waiting.

use std::future::Future;
use std::time::Duration;

use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::{KafkaConfig, Producer};

/// The consumer's own logs (rebalances, commits, drains) in the output of a failing test.
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::new("imbridge_kafka=debug"))
        .try_init();
}

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

pub async fn topic(prefix: &str, partitions: i32) -> String {
    let name = imbridge_testkit::unique(prefix);
    Admin::new(&kafka())
        .expect("admin")
        .ensure_topics(&[TopicSpec::new(&name, partitions)])
        .await
        .expect("create topic");
    name
}

pub fn dlq(topic: &str) -> DlqProducer {
    DlqProducer::new(Producer::new(&kafka()).expect("producer"), topic)
}

pub fn metrics() -> ConsumerMetrics {
    ConsumerMetrics::unregistered("test")
}

/// Produces `keys × per_key` records interleaved (round-robin over keys), payload `"<key>|<seq>"`.
/// Returns (key, seq) → (partition, offset) in production order.
pub async fn produce_interleaved(topic: &str, keys: usize, per_key: usize) -> Vec<(String, usize, i32, i64)> {
    let p = Producer::new(&kafka()).expect("producer");
    let mut futs = Vec::with_capacity(keys * per_key);
    let mut meta = Vec::with_capacity(keys * per_key);
    for seq in 0..per_key {
        for k in 0..keys {
            let key = format!("c2c:user{k:03}:peer{k:03}");
            let payload = format!("{key}|{seq}");
            let f = p
                .enqueue(topic, Outgoing { key: key.as_bytes(), payload: payload.as_bytes(), headers: &[] })
                .await
                .expect("enqueue");
            futs.push(f);
            meta.push((key, seq));
        }
    }
    let mut out = Vec::with_capacity(futs.len());
    for (f, (key, seq)) in futs.into_iter().zip(meta) {
        let d = Producer::await_delivery(topic, f).await.expect("delivered");
        out.push((key, seq, d.partition, d.offset));
    }
    out
}

pub fn parse_payload(p: &[u8]) -> (String, usize) {
    let s = std::str::from_utf8(p).expect("utf8");
    let (k, seq) = s.rsplit_once('|').expect("key|seq");
    (k.to_owned(), seq.parse().expect("seq"))
}

pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls an async query until it returns `want` (the DLQ is read back through Kafka, so it lags a moment).
pub async fn wait_until_async_eq<T, F, Fut>(mut query: F, want: T)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = query().await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
