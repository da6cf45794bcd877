//! The per-partition lag gauge (`imbridge_<part>_consumer_lag`): it shows the records a group has not finished
//! while a handler holds them back, and drops to zero once they are done — refreshed from librdkafka's
//! statistics, without extra requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Record};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

/// Finishes the first ten records of each key at once, the rest only once the gate opens.
struct Gated {
    open: AtomicBool,
}

impl Handler for Gated {
    async fn handle(&self, record: &Record) -> Outcome {
        let (_, seq) = crate::common::parse_payload(record.payload.as_deref().expect("payload"));
        while seq >= 10 && !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Outcome::Done
    }
}

fn lag_sum(m: &ConsumerMetrics, topic: &str, partitions: i32) -> Option<i64> {
    let mut sum = 0;
    for p in 0..partitions {
        let g = m.lag.get_metric_with_label_values(&[topic, &p.to_string()]).ok()?;
        sum += g.get();
    }
    Some(sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_gauge_follows_what_the_group_has_not_finished() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("lag", 2).await;
    // 4 keys × 30 records: 40 finish at once, 80 wait behind the gate.
    crate::common::produce_interleaved(&topic, 4, 30).await;
    let registry = Registry::new();
    let metrics = ConsumerMetrics::new(&registry, "lagtest").expect("metrics");
    let handler = Arc::new(Gated { open: AtomicBool::new(false) });
    let cfg = ConsumerConfig { auto_commit_interval_ms: 200, ..Default::default() };
    let mut kafka = crate::common::kafka();
    // Statistics every second instead of five keep the test short; the mechanism is the same.
    kafka.client.insert("statistics.interval.ms".into(), "1000".into());
    let consumer = OrderedConsumer::new(
        &kafka,
        &imbridge_testkit::unique("lag-group"),
        &[topic.as_str()],
        cfg,
        handler.clone(),
        crate::common::dlq(&imbridge_testkit::unique("lag-dlq")),
        metrics.clone(),
    )
    .expect("consumer");
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));

    // The first ten per key are committed; the 80 held back show as lag (summed over both partitions).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if lag_sum(&metrics, &topic, 2) == Some(80) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag never reached 80: {:?}", lag_sum(&metrics, &topic, 2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = String::from_utf8({
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut buf).expect("encode");
        buf
    })
    .expect("utf8");
    assert!(page.contains(&format!("imbridge_lagtest_consumer_lag{{partition=\"0\",topic=\"{topic}\"}}")), "{page}");

    handler.open.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lag_sum(&metrics, &topic, 2) != Some(0) {
        assert!(tokio::time::Instant::now() < deadline, "lag never returned to 0: {:?}", lag_sum(&metrics, &topic, 2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(stats.finished, 120);
}

/// What a member has finished is visible through its [`Progress`](imbridge_kafka::consumer::Progress) before any
/// commit: held back by the gate, each partition's position stops below its end; once the gate opens, every
/// position reaches the end while nothing has been committed yet (the import waits on this, not on commits).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_shows_finished_positions_ahead_of_commits() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("progress", 2).await;
    let produced = crate::common::produce_interleaved(&topic, 4, 30).await;
    let mut end: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for (_, _, partition, offset) in &produced {
        let e = end.entry(*partition).or_default();
        *e = (*e).max(offset + 1);
    }
    let handler = Arc::new(Gated { open: AtomicBool::new(false) });
    // Auto-commit far beyond the test's length: any position seen is the member's own, not a commit.
    let cfg = ConsumerConfig { auto_commit_interval_ms: 600_000, ..Default::default() };
    let group = imbridge_testkit::unique("progress-group");
    let consumer = OrderedConsumer::new(
        &crate::common::kafka(),
        &group,
        &[topic.as_str()],
        cfg,
        handler.clone(),
        crate::common::dlq(&imbridge_testkit::unique("progress-dlq")),
        ConsumerMetrics::unregistered("progresstest"),
    )
    .expect("consumer");
    let progress = consumer.progress();
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let positions = || -> std::collections::BTreeMap<i32, i64> {
        progress.positions().into_iter().filter(|((t, _), _)| *t == topic).map(|((_, p), o)| (p, o)).collect()
    };

    // The first ten records of each key finish; each partition's position stops at its first held record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = positions();
        let held: std::collections::BTreeMap<i32, i64> = end
            .keys()
            .map(|p| {
                let first_held = produced
                    .iter()
                    .filter(|(_, seq, partition, _)| partition == p && *seq >= 10)
                    .map(|(_, _, _, offset)| *offset)
                    .min()
                    .expect("every partition holds a gated record");
                (*p, first_held)
            })
            .collect();
        if now == held {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "positions {now:?}, expected {held:?} (end {end:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(positions().iter().all(|(p, o)| *o < end[p]), "a position passed a held record: {:?}", positions());

    handler.open.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while positions() != end {
        assert!(tokio::time::Instant::now() < deadline, "positions {:?} never reached the end {end:?}", positions());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = imbridge_kafka::admin::Admin::new(&crate::common::kafka()).expect("admin");
    let committed = admin.offsets(&topic, Some(&group)).await.expect("offsets");
    assert!(
        committed.iter().all(|p| p.committed.is_none_or(|c| c < end[&p.partition])),
        "the end was committed already, so this shows nothing beyond commits: {committed:?}"
    );
    stop.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(stats.finished, 120);
}
