//! ingest's heartbeat on the status topic: regular beats naming the instance, and after a restart on the same
//! spool, beats that say since when the instance was down (what reconciliation checks at once).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Ingest, config, kafka};
use imbridge_core::status::IngestBeat;
use imbridge_kafka::reader::{Start, read_range};

async fn beats(topic: &str) -> Vec<IngestBeat> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    read_range(&kafka(), topic, None, Start::Earliest, move |r| {
        if let Some(b) = r.payload.as_deref().and_then(|p| serde_json::from_slice::<IngestBeat>(p).ok()) {
            sink.lock().expect("lock").push(b);
        }
        true
    })
    .await
    .unwrap_or_default();
    out.lock().expect("lock").clone()
}

async fn wait_for(topic: &str, what: &str, ok: impl Fn(&[IngestBeat]) -> bool) -> Vec<IngestBeat> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let b = beats(topic).await;
        if ok(&b) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {b:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_and_reports_its_own_downtime_after_a_restart() {
    imbridge_testkit::require_kafka!();
    let mut cfg = config();
    cfg.heartbeat_interval_ms = 200;
    cfg.instance_id = "ingest-a".into();
    let first = Ingest::start(cfg.clone()).await;
    first.wait_ready().await;
    let topic = first.topics.status.clone();
    let b = wait_for(&topic, "two beats", |b| b.len() >= 2).await;
    assert!(b.iter().all(|x| x.instance == "ingest-a" && x.down_since.is_none()), "{b:?}");
    assert_eq!(b[0].callbacks_refused, 0);
    let (kafka, topics) = (first.kafka.clone(), first.topics.clone());
    first.running.shutdown().await;
    let last_before = beats(&topic).await.last().expect("a beat").at;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let second = Ingest::start_with(cfg, kafka, topics).await;
    let b = wait_for(&topic, "a beat of the new process", |b| b.iter().any(|x| x.down_since.is_some())).await;
    let restarted = b.iter().find(|x| x.down_since.is_some()).expect("restarted");
    let down_since = restarted.down_since.expect("down since");
    // The previous process's last beat (recorded on disk, maybe one more than reached Kafka before shutdown).
    assert!(down_since >= last_before && down_since < restarted.started_at, "{restarted:?} last {last_before:?}");
    second.running.shutdown().await;
}
