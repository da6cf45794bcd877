//! No loss, no skip: a consumer is killed mid-stream (dropped without a graceful commit) and a new one takes over
//! in the same group. Every event is handled at least once, every key stays in order within each consumer's
//! run, and the committed offset never passes an event that was not handled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_kafka::admin::Admin;
use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Record};
use tokio_util::sync::CancellationToken;

const KEYS: usize = 20;
const PER_KEY: usize = 500;

#[derive(Default)]
struct Recorder {
    /// (partition, offset) of every handled record.
    handled: Mutex<HashSet<(i32, i64)>>,
    order: Mutex<HashMap<String, Vec<usize>>>,
    count: AtomicUsize,
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Outcome {
        let (key, seq) = crate::common::parse_payload(record.payload.as_deref().expect("payload"));
        tokio::time::sleep(Duration::from_micros(rand::random_range(50..600))).await;
        self.order.lock().expect("lock").entry(key).or_default().push(seq);
        self.handled.lock().expect("lock").insert((record.partition, record.offset));
        self.count.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}

fn consumer(topic: &str, group: &str, rec: Arc<Recorder>) -> OrderedConsumer<Recorder> {
    let cfg = ConsumerConfig {
        auto_commit_interval_ms: 200,
        session_timeout_ms: 6_000,
        drain_timeout_ms: 3_000,
        ..Default::default()
    };
    OrderedConsumer::new(
        &crate::common::kafka(),
        group,
        &[topic],
        cfg,
        rec,
        crate::common::dlq(&imbridge_testkit::unique("nl-dlq")),
        crate::common::metrics(),
    )
    .expect("consumer")
}

/// Every offset below a committed offset must have been handled.
async fn assert_commits_cover_handled(
    admin: &Admin,
    topic: &str,
    group: &str,
    rec: &Recorder,
    lows: &BTreeMap<i32, i64>,
) {
    // Read commits first, then the handled set: the set only grows, so this order cannot report a false gap.
    let offsets = admin.offsets(topic, Some(group)).await.expect("offsets");
    let handled = rec.handled.lock().expect("lock").clone();
    for p in offsets {
        if let Some(c) = p.committed {
            let low = lows.get(&p.partition).copied().unwrap_or(0);
            for o in low..c {
                assert!(
                    handled.contains(&(p.partition, o)),
                    "partition {} committed {c} but offset {o} was never handled",
                    p.partition
                );
            }
        }
    }
}

fn assert_in_order(order: &HashMap<String, Vec<usize>>, who: &str) {
    for (key, seqs) in order {
        for w in seqs.windows(2) {
            assert!(w[1] == w[0] + 1, "{who}: key {key} went from {} to {} (out of order or skipped)", w[0], w[1]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_consumer_loses_nothing_and_commits_only_handled_prefix() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("noloss", 4).await;
    let produced = crate::common::produce_interleaved(&topic, KEYS, PER_KEY).await;
    let all: HashSet<(i32, i64)> = produced.iter().map(|p| (p.2, p.3)).collect();
    let mut lows = BTreeMap::new();
    for (_, _, p, o) in &produced {
        let e = lows.entry(*p).or_insert(*o);
        *e = (*e).min(*o);
    }
    let group = imbridge_testkit::unique("noloss-group");
    let admin = Admin::new(&crate::common::kafka()).expect("admin");

    // First consumer: runs until about a third is handled, checking commits as it goes, then is killed.
    let first = Arc::new(Recorder::default());
    let run = tokio::spawn(consumer(&topic, &group, first.clone()).run(CancellationToken::new()));
    let mut checks = 0;
    while first.count.load(Ordering::SeqCst) < KEYS * PER_KEY / 3 {
        assert_commits_cover_handled(&admin, &topic, &group, &first, &lows).await;
        checks += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(checks < 600, "first consumer made no progress");
    }
    run.abort();
    let _ = run.await;
    let killed_at = first.count.load(Ordering::SeqCst);
    assert!(killed_at < KEYS * PER_KEY, "the kill must happen mid-stream");
    assert_commits_cover_handled(&admin, &topic, &group, &first, &lows).await;
    assert_in_order(&first.order.lock().expect("lock"), "first consumer");

    // Second consumer in the same group picks up from the committed offsets.
    let second = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer(&topic, &group, second.clone()).run(stop.clone()));
    let (f, s) = (first.clone(), second.clone());
    crate::common::wait_until("every event handled by one of the two consumers", Duration::from_secs(120), || {
        let a = f.handled.lock().expect("lock");
        let b = s.handled.lock().expect("lock");
        all.iter().all(|x| a.contains(x) || b.contains(x))
    })
    .await;
    stop.cancel();
    run.await.expect("join").expect("run");
    assert_in_order(&second.order.lock().expect("lock"), "second consumer");
    // The second run starts each key no later than right after the first run's last handled event of that key.
    let first_order = first.order.lock().expect("lock").clone();
    for (key, seqs) in second.order.lock().expect("lock").clone().iter() {
        let resumed = seqs[0];
        let handled_before = first_order.get(key).map_or(0, |v| v.last().map_or(0, |l| l + 1));
        assert!(
            resumed <= handled_before,
            "key {key}: second run started at {resumed}, first run had only reached {handled_before}"
        );
    }
    // After a graceful stop everything is committed.
    let offsets = admin.offsets(&topic, Some(&group)).await.expect("offsets");
    for p in offsets {
        assert_eq!(p.committed, Some(p.high), "partition {} not fully committed after graceful stop", p.partition);
    }
}
