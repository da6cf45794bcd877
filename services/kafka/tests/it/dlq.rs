//! A permanent failure puts the record on the DLQ with every header right; later records of the same key are
//! parked behind it; transient failures that outlast the retry policy are dead-lettered as retries_exhausted.
//! Partition and offset are checked separately, with values that differ, because a known bug swapped them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::{Failure, TimestampMs};
use imbridge_kafka::dlq::{self, DeadLetterInfo};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Producer, Record, RetryPolicy};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Picky {
    attempts: Mutex<HashMap<String, u32>>,
    done: Mutex<Vec<String>>,
}

impl Handler for Picky {
    async fn handle(&self, r: &Record) -> Outcome {
        let p = String::from_utf8(r.payload.clone().unwrap_or_default()).expect("utf8");
        *self.attempts.lock().expect("lock").entry(p.clone()).or_default() += 1;
        if p.starts_with("poison") {
            Outcome::DeadLetter(Failure::new("im_90001", format!("bad body in {p}")))
        } else if p.starts_with("flaky") {
            Outcome::Retry(Failure::new("im_60007", "rate limited"))
        } else {
            self.done.lock().expect("lock").push(p);
            Outcome::Done
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_failure_goes_to_dlq_with_every_header() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("dlq-src", 3).await;
    let dlq_topic = crate::common::topic("dlq", 1).await;
    let producer = Producer::new(&crate::common::kafka()).expect("producer");
    // Filler records push offsets up so that no record's offset equals its partition number.
    let mut sent = HashMap::new();
    let plan: Vec<(&str, String)> = (0..30)
        .map(|i| ("group:filler", format!("ok-{i}")))
        .chain([
            ("group:bad", "ok-before".to_owned()),
            ("group:bad", "poison-1".to_owned()),
            ("group:bad", "ok-after-poison".to_owned()),
            ("group:slow", "flaky-1".to_owned()),
            ("group:other", "ok-other".to_owned()),
        ])
        .collect();
    let started_ms = TimestampMs::now().as_millis();
    for (key, payload) in &plan {
        let d = producer
            .send(&topic, Outgoing { key: key.as_bytes(), payload: payload.as_bytes(), headers: &[("trace", b"t-1")] })
            .await
            .expect("sent");
        sent.insert(payload.clone(), (key.to_string(), d));
    }

    let handler = Arc::new(Picky::default());
    let cfg = ConsumerConfig {
        retry: RetryPolicy { max_attempts: 3, base_backoff_ms: 20, max_backoff_ms: 50 },
        ..Default::default()
    };
    let group = imbridge_testkit::unique("dlq-group");
    let consumer = OrderedConsumer::new(
        &crate::common::kafka(),
        &group,
        &[&topic],
        cfg,
        handler.clone(),
        crate::common::dlq(&dlq_topic),
        crate::common::metrics(),
    )
    .expect("consumer");
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));

    let mut dead: Vec<Record> = Vec::new();
    for _ in 0..200 {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        read_range(&crate::common::kafka(), &dlq_topic, None, Start::Earliest, move |r| {
            g.lock().expect("lock").push(r);
            true
        })
        .await
        .expect("read dlq");
        dead = got.lock().expect("lock").clone();
        if dead.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(dead.len(), 3, "poison, the record parked behind it, and the exhausted flaky one");
    assert_eq!(stats.dead_lettered, 3);

    let by_payload: HashMap<String, (Record, DeadLetterInfo)> = dead
        .into_iter()
        .map(|r| {
            let info = DeadLetterInfo::from_record(&r).expect("dlq headers parse");
            (String::from_utf8(r.payload.clone().unwrap_or_default()).expect("utf8"), (r, info))
        })
        .collect();

    let (rec, info) = &by_payload["poison-1"];
    let (key, d) = &sent["poison-1"];
    assert_ne!(d.partition as i64, d.offset, "test setup: partition and offset must differ");
    assert_eq!(rec.key.as_deref(), Some(key.as_bytes()), "original key kept as the DLQ record key");
    assert_eq!(rec.header_str(dlq::ORIGINAL_TOPIC), Some(topic.as_str()));
    assert_eq!(rec.header_str(dlq::ORIGINAL_PARTITION), Some(d.partition.to_string().as_str()), "partition header");
    assert_eq!(rec.header_str(dlq::ORIGINAL_OFFSET), Some(d.offset.to_string().as_str()), "offset header");
    assert_eq!(rec.header_str(dlq::ORIGINAL_KEY), Some(key.as_str()));
    assert_eq!(rec.header_str(dlq::ERROR_KIND), Some("im_90001"));
    assert_eq!(rec.header_str(dlq::ERROR_REASON), Some("bad body in poison-1"));
    assert_eq!(rec.header_str(dlq::ATTEMPTS), Some("1"));
    assert_eq!(rec.header_str("trace"), Some("t-1"), "original headers kept");
    assert!(
        info.first_failure_ms >= started_ms && info.first_failure_ms <= TimestampMs::now().as_millis(),
        "first failure time {}",
        info.first_failure_ms
    );
    assert_eq!(info.original_partition, d.partition);
    assert_eq!(info.original_offset, d.offset);

    let (_, parked) = &by_payload["ok-after-poison"];
    assert_eq!(parked.kind, dlq::KIND_PARKED);
    assert!(
        parked.reason.contains(&format!("{topic}/{}@{}", d.partition, d.offset)),
        "parked reason names the first: {}",
        parked.reason
    );
    assert_eq!(parked.original_offset, sent["ok-after-poison"].1.offset);

    let (_, flaky) = &by_payload["flaky-1"];
    assert_eq!(flaky.kind, dlq::KIND_RETRIES_EXHAUSTED);
    assert_eq!(flaky.attempts, 3);
    assert!(flaky.reason.contains("im_60007"), "{}", flaky.reason);
    assert_eq!(handler.attempts.lock().expect("lock")["flaky-1"], 3);

    // Other conversations were not blocked, and the parked record was never applied.
    let done = handler.done.lock().expect("lock").clone();
    assert!(done.contains(&"ok-other".to_owned()) && done.contains(&"ok-before".to_owned()));
    assert!(!done.contains(&"ok-after-poison".to_owned()));
    assert_eq!(done.len(), 32);
}
