//! Order per key under concurrency: 50 keys × 2,000 events interleaved across 6 partitions, handled with random
//! delays. Every key's events must be handled in produce order, and different keys must really overlap in time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Record};
use tokio_util::sync::CancellationToken;

const KEYS: usize = 50;
const PER_KEY: usize = 2_000;

#[derive(Default)]
struct Recorder {
    seen: Mutex<HashMap<String, Vec<usize>>>,
    total: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// Per key: how many handler calls were running when this key's call started, summed.
    per_key_running: Mutex<HashMap<String, usize>>,
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Outcome {
        let (key, seq) = crate::common::parse_payload(record.payload.as_deref().expect("payload"));
        assert_eq!(record.key_str(), Some(key.as_str()), "payload key matches record key");
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        *self.per_key_running.lock().expect("lock").entry(key.clone()).or_default() += now - 1;
        // Random delays: most calls yield, some sleep, a few sleep longer — so lanes finish out of step.
        match rand::random_range(0..100u32) {
            0..70 => tokio::task::yield_now().await,
            70..97 => tokio::time::sleep(Duration::from_micros(rand::random_range(100..1_000))).await,
            _ => tokio::time::sleep(Duration::from_millis(rand::random_range(2..6))).await,
        }
        self.seen.lock().expect("lock").entry(key).or_default().push(seq);
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_in_produce_order_with_real_concurrency() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("order", 6).await;
    let produced = crate::common::produce_interleaved(&topic, KEYS, PER_KEY).await;
    let partitions: std::collections::BTreeSet<i32> = produced.iter().map(|p| p.2).collect();
    assert!(partitions.len() >= 4, "keys should spread over the 6 partitions, got {partitions:?}");

    let rec = Arc::new(Recorder::default());
    let group = imbridge_testkit::unique("order-group");
    let consumer = OrderedConsumer::new(
        &crate::common::kafka(),
        &group,
        &[&topic],
        ConsumerConfig::default(),
        rec.clone(),
        crate::common::dlq(&imbridge_testkit::unique("order-dlq")),
        crate::common::metrics(),
    )
    .expect("consumer");
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let r = rec.clone();
    crate::common::wait_until("all events handled", Duration::from_secs(180), || {
        r.total.load(Ordering::SeqCst) >= KEYS * PER_KEY
    })
    .await;
    stop.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(stats.finished, (KEYS * PER_KEY) as u64);
    assert_eq!(stats.dead_lettered, 0);

    let seen = rec.seen.lock().expect("lock");
    assert_eq!(seen.len(), KEYS);
    let expected: Vec<usize> = (0..PER_KEY).collect();
    for (key, seqs) in seen.iter() {
        assert_eq!(seqs, &expected, "key {key} handled out of order or with gaps/duplicates");
    }
    // Concurrency is real: many keys were in their handlers at once, and every key overlapped others.
    let max = rec.max_running.load(Ordering::SeqCst);
    assert!(max >= 8, "at most {max} handlers ran at once; keys did not overlap");
    let per_key = rec.per_key_running.lock().expect("lock");
    for (key, overlaps) in per_key.iter() {
        assert!(*overlaps > 0, "key {key} never overlapped another key");
    }
}
