//! Lane batching: a handler may take several consecutive records of one key at once (IM's import_group_msg
//! takes 7, the legacy apply endpoint takes a conversation's batch). Batches hold one key's records in offset
//! order, a partial batch re-offers the rest, a transient failure mid-batch retries from the failed record, and
//! every record is finished exactly once in a clean run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::Failure;
use imbridge_kafka::{BatchOutcome, ConsumerConfig, Handler, OrderedConsumer, Outcome, Record, RetryPolicy};
use tokio_util::sync::CancellationToken;

const KEYS: usize = 10;
const PER_KEY: usize = 300;

#[derive(Default)]
struct Batcher {
    applied: Mutex<HashMap<String, Vec<usize>>>,
    batch_sizes: Mutex<Vec<usize>>,
    calls: AtomicUsize,
    total: AtomicUsize,
}

impl Handler for Batcher {
    async fn handle(&self, _record: &Record) -> Outcome {
        unreachable!("batching handler is called through handle_batch")
    }

    fn batch_limit(&self) -> usize {
        7
    }

    async fn handle_batch(&self, records: &[&Record]) -> BatchOutcome {
        assert!(!records.is_empty() && records.len() <= 7, "batch of {}", records.len());
        let parsed: Vec<(String, usize)> =
            records.iter().map(|r| crate::common::parse_payload(r.payload.as_deref().expect("payload"))).collect();
        for w in parsed.windows(2) {
            assert_eq!(w[0].0, w[1].0, "a batch mixes keys");
            assert_eq!(w[0].1 + 1, w[1].1, "a batch is not consecutive");
        }
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        // Every 5th call applies only part of the batch and reports a transient failure on the next record.
        let take = if call % 5 == 4 && parsed.len() > 1 { parsed.len() / 2 } else { parsed.len() };
        self.batch_sizes.lock().expect("lock").push(parsed.len());
        let mut applied = self.applied.lock().expect("lock");
        for (k, seq) in &parsed[..take] {
            applied.entry(k.clone()).or_default().push(*seq);
        }
        self.total.fetch_add(take, Ordering::SeqCst);
        if take < parsed.len() {
            BatchOutcome { done: take, next: Some(Outcome::Retry(Failure::new("im_60007", "rate limited"))) }
        } else {
            BatchOutcome::all(take)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_are_consecutive_records_of_one_key_each_applied_once() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("batch", 3).await;
    crate::common::produce_interleaved(&topic, KEYS, PER_KEY).await;
    let h = Arc::new(Batcher::default());
    let cfg = ConsumerConfig {
        retry: RetryPolicy { max_attempts: 5, base_backoff_ms: 5, max_backoff_ms: 20 },
        ..Default::default()
    };
    let consumer = OrderedConsumer::new(
        &crate::common::kafka(),
        &imbridge_testkit::unique("batch-group"),
        &[&topic],
        cfg,
        h.clone(),
        crate::common::dlq(&imbridge_testkit::unique("batch-dlq")),
        crate::common::metrics(),
    )
    .expect("consumer");
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let hh = h.clone();
    crate::common::wait_until("all records applied", Duration::from_secs(120), || {
        hh.total.load(Ordering::SeqCst) >= KEYS * PER_KEY
    })
    .await;
    stop.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(stats.finished, (KEYS * PER_KEY) as u64);
    assert_eq!(stats.dead_lettered, 0);
    let applied = h.applied.lock().expect("lock");
    let want: Vec<usize> = (0..PER_KEY).collect();
    for (k, seqs) in applied.iter() {
        assert_eq!(seqs, &want, "key {k}");
    }
    let sizes = h.batch_sizes.lock().expect("lock");
    assert!(sizes.contains(&7), "full batches of 7 happen when records queue up: {:?}", &sizes[..sizes.len().min(30)]);
    assert!(sizes.iter().all(|s| *s <= 7));
}
