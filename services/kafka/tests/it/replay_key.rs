//! Replaying one key (`replay::key`): only that key's records, from the offset for a time up to the group's
//! committed offset, in order, through the handler; a group that never committed replays nothing; a permanent
//! failure stops the replay at that record, and transient ones are retried within the policy.

use std::sync::Mutex;
use std::time::Duration;

use imbridge_core::{Failure, TimestampMs};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::replay;
use imbridge_kafka::{Handler, Outcome, Record, RetryPolicy};

/// Records what it was offered; fails the record with seq `fail_at` (permanently or, with `transient`, always
/// transiently).
#[derive(Default)]
struct Rec {
    seen: Mutex<Vec<(String, usize)>>,
    fail_at: Option<usize>,
    transient: bool,
    assigned: Mutex<Vec<i32>>,
    revoked: Mutex<Vec<i32>>,
}

impl Handler for Rec {
    async fn handle(&self, r: &Record) -> Outcome {
        let (key, seq) = crate::common::parse_payload(r.payload.as_deref().expect("payload"));
        if self.fail_at == Some(seq) {
            let f = Failure::new("test", "refused");
            return if self.transient { Outcome::Retry(f) } else { Outcome::DeadLetter(f) };
        }
        self.seen.lock().expect("lock").push((key, seq));
        Outcome::Done
    }

    fn partitions_assigned(&self, partitions: &[(String, i32)]) {
        self.assigned.lock().expect("lock").extend(partitions.iter().map(|(_, p)| *p));
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.revoked.lock().expect("lock").extend(partitions.iter().map(|(_, p)| *p));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replays_one_key_from_a_time_up_to_the_committed_offset() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("rkey", 3).await;
    let kafka = crate::common::kafka();
    let admin = Admin::new(&kafka).expect("admin");
    // Seqs 0..20 before the time, 20..40 after it; both committed by the group. Then 40..50, not committed yet.
    let before = crate::common::produce_interleaved(&topic, 6, 20).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = TimestampMs::now().as_millis();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let p = imbridge_kafka::Producer::new(&kafka).expect("producer");
    for seq in 20..50 {
        for k in 0..6 {
            let key = format!("c2c:user{k:03}:peer{k:03}");
            let payload = format!("{key}|{seq}");
            p.send(
                &topic,
                imbridge_kafka::producer::Outgoing { key: key.as_bytes(), payload: payload.as_bytes(), headers: &[] },
            )
            .await
            .expect("produce");
        }
        if seq == 39 {
            let group_commits: Vec<(String, i32, i64)> = admin
                .offsets(&topic, None)
                .await
                .expect("offsets")
                .iter()
                .map(|m| (topic.clone(), m.partition, m.high))
                .collect();
            let group = format!("{topic}-group");
            admin.commit_group_offsets(&group, &group_commits).await.expect("commit");
        }
    }
    let group = format!("{topic}-group");
    let key = "c2c:user002:peer002";
    let partition = before.iter().find(|(k, ..)| k == key).map(|(_, _, p, _)| *p).expect("key produced");
    let retry = RetryPolicy { max_attempts: 3, base_backoff_ms: 1, max_backoff_ms: 5 };

    let h = Rec::default();
    let r = replay::key(&kafka, &group, &topic, key.as_bytes(), since, &h, &retry).await.expect("replay");
    let want: Vec<(String, usize)> = (20..40).map(|s| (key.to_owned(), s)).collect();
    assert_eq!(*h.seen.lock().expect("lock"), want, "only this key, from the time, up to the committed offset");
    assert_eq!((r.partition, r.matched, r.done, r.failed.clone()), (partition, 20, 20, None));
    assert!(r.until_offset.is_some_and(|u| u > r.from_offset), "{r:?}");
    assert_eq!(*h.assigned.lock().expect("lock"), vec![partition]);
    assert_eq!(*h.revoked.lock().expect("lock"), vec![partition]);

    // A group that never committed has applied nothing: nothing to re-apply.
    let h = Rec::default();
    let r = replay::key(&kafka, "rkey-never-ran", &topic, key.as_bytes(), since, &h, &retry).await.expect("replay");
    assert_eq!((r.matched, r.done, r.until_offset), (0, 0, None));
    assert!(h.seen.lock().expect("lock").is_empty());

    // A permanent failure stops the replay there: later records are not offered (order).
    let h = Rec { fail_at: Some(25), ..Rec::default() };
    let r = replay::key(&kafka, &group, &topic, key.as_bytes(), since, &h, &retry).await.expect("replay");
    assert_eq!(h.seen.lock().expect("lock").len(), 5);
    assert_eq!(r.done, 5);
    let (_, f) = r.failed.expect("stopped");
    assert_eq!(f.kind, "test");

    // Transient failures are retried within the policy, then reported as exhausted.
    let h = Rec { fail_at: Some(30), transient: true, ..Rec::default() };
    let r = replay::key(&kafka, &group, &topic, key.as_bytes(), since, &h, &retry).await.expect("replay");
    assert_eq!(r.done, 10);
    let (_, f) = r.failed.expect("stopped");
    assert_eq!(f.kind, imbridge_kafka::dlq::KIND_RETRIES_EXHAUSTED);
}
