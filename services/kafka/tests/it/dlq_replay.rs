//! Parking survives restarts and `dlq replay` re-drives a conversation in order: a poison record parks its
//! conversation; a new consumer (after a restart) keeps parking it, because the DLQ says so; once the cause is
//! fixed, replay re-produces the parked records to the original topic, the consumer unparks on the first of
//! them, and the conversation's events apply in their original order. `drop` gives up on records and unparks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::Failure;
use imbridge_kafka::dlq::{self, Selection};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Producer, Record};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Applier {
    fixed: AtomicBool,
    applied: Mutex<HashMap<String, Vec<String>>>,
}

impl Handler for Applier {
    async fn handle(&self, r: &Record) -> Outcome {
        let p = String::from_utf8(r.payload.clone().unwrap_or_default()).expect("utf8");
        if p.starts_with("poison") && !self.fixed.load(Ordering::SeqCst) {
            return Outcome::DeadLetter(Failure::new("im_90002", "MsgBody invalid"));
        }
        self.applied.lock().expect("lock").entry(r.key_str().unwrap_or("").to_owned()).or_default().push(p);
        Outcome::Done
    }
}

async fn send(topic: &str, key: &str, payload: &str) {
    Producer::new(&crate::common::kafka())
        .expect("producer")
        .send(topic, Outgoing { key: key.as_bytes(), payload: payload.as_bytes(), headers: &[] })
        .await
        .expect("sent");
}

/// Runs a consumer until `cond` holds, then stops it gracefully.
async fn run_until(
    topic: &str,
    dlq_topic: &str,
    group: &str,
    h: Arc<Applier>,
    what: &str,
    cond: impl Fn(&Applier) -> bool,
) {
    // Each phase is a new member of the same group, right after the last one left. Should a member ever fail to
    // leave, the next one waits for the coordinator to expire it: 10 s here instead of the default 45.
    let cfg = ConsumerConfig { session_timeout_ms: 10_000, drain_timeout_ms: 5_000, ..ConsumerConfig::default() };
    let c = OrderedConsumer::new(
        &crate::common::kafka(),
        group,
        &[topic],
        cfg,
        h.clone(),
        crate::common::dlq(dlq_topic),
        crate::common::metrics(),
    )
    .expect("consumer");
    let stop = CancellationToken::new();
    let run = tokio::spawn(c.run(stop.clone()));
    // Generous: a consumer that could not leave the group cleanly is only evicted after its session timeout, and
    // the restarted one waits for that. A record applied twice fails at once, whatever the wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !cond(&h) {
        {
            let applied = h.applied.lock().expect("lock");
            for (key, ps) in applied.iter() {
                let distinct: std::collections::HashSet<&String> = ps.iter().collect();
                assert_eq!(distinct.len(), ps.len(), "{key} applied a record twice (redelivered?): {ps:?}");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; applied so far: {:?}",
            h.applied.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    run.await.expect("join").expect("run");
}

/// Unresolved DLQ records per key, in order (keys may live on different DLQ partitions).
async fn unresolved(dlq_topic: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in dlq::scan(&crate::common::kafka(), dlq_topic).await.expect("scan").unresolved {
        let key = String::from_utf8(e.record.key.clone().unwrap_or_default()).expect("utf8");
        out.entry(key)
            .or_default()
            .push(String::from_utf8(e.record.payload.clone().unwrap_or_default()).expect("utf8"));
    }
    out
}

fn per_key(v: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    v.iter().map(|(k, ps)| (k.to_string(), ps.iter().map(|p| p.to_string()).collect())).collect()
}

fn applied(h: &Applier, key: &str) -> Vec<String> {
    h.applied.lock().expect("lock").get(key).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parking_survives_restart_and_replay_redrives_in_order() {
    imbridge_testkit::require_kafka!();
    crate::common::log_to_test_output();
    let topic = crate::common::topic("redrive", 2).await;
    let dlq_topic = crate::common::topic("redrive-dlq", 2).await;
    let group = imbridge_testkit::unique("redrive-group");
    let h = Arc::new(Applier::default());
    for (k, p) in
        [("group:k", "a"), ("group:k", "poison-b"), ("group:k", "c"), ("group:l", "x"), ("group:m", "poison-m1")]
    {
        send(&topic, k, p).await;
    }
    run_until(&topic, &dlq_topic, &group, h.clone(), "a and x applied", |h| {
        applied(h, "group:l") == ["x"] && applied(h, "group:k") == ["a"]
    })
    .await;
    // The poison record and the one behind it wait on the DLQ, in order.
    crate::common::wait_until_async_eq(
        || unresolved(&dlq_topic),
        per_key(&[("group:k", &["poison-b", "c"]), ("group:m", &["poison-m1"])]),
    )
    .await;

    // After a restart, a new event of the parked conversation is parked too (the DLQ remembers).
    send(&topic, "group:k", "d").await;
    send(&topic, "group:l", "y").await;
    run_until(&topic, &dlq_topic, &group, h.clone(), "y applied", |h| applied(h, "group:l") == ["x", "y"]).await;
    assert_eq!(applied(&h, "group:k"), ["a"], "nothing of k may apply while it is parked");
    crate::common::wait_until_async_eq(
        || unresolved(&dlq_topic),
        per_key(&[("group:k", &["poison-b", "c", "d"]), ("group:m", &["poison-m1"])]),
    )
    .await;

    // The operator fixes the cause and re-drives k; m is given up on.
    h.fixed.store(true, Ordering::SeqCst);
    let r = dlq::replay(
        &crate::common::kafka(),
        &dlq_topic,
        &Selection { key: Some(b"group:k".to_vec()), original_topic: None },
    )
    .await
    .expect("replay");
    assert_eq!((r.keys, r.records), (1, 3));
    let d = dlq::drop_records(
        &crate::common::kafka(),
        &dlq_topic,
        &Selection { key: Some(b"group:m".to_vec()), original_topic: None },
    )
    .await
    .expect("drop");
    assert_eq!((d.keys, d.records), (1, 1));
    assert!(unresolved(&dlq_topic).await.is_empty(), "replayed and dropped records are resolved");

    send(&topic, "group:k", "e").await;
    send(&topic, "group:m", "m2").await;
    run_until(&topic, &dlq_topic, &group, h.clone(), "k re-driven and e applied", |h| {
        applied(h, "group:k").len() >= 5 && applied(h, "group:m") == ["m2"]
    })
    .await;
    assert_eq!(applied(&h, "group:k"), ["a", "poison-b", "c", "d", "e"], "original order kept through the DLQ");
    assert!(unresolved(&dlq_topic).await.is_empty());
    // A replay with nothing left does nothing.
    let again = dlq::replay(&crate::common::kafka(), &dlq_topic, &Selection::default()).await.expect("replay");
    assert_eq!(again, dlq::Resolution::default());
}
