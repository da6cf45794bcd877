//! "Where is my message?" against a real broker: events, a ledger entry, a dead letter and a committed offset are
//! written the way the services write them, and each lookup must find the right record, read only what it has
//! to (one partition when the id names the conversation) and tell its fate from the right evidence.

use imbridge_console::trace::{Fate, Lookup, lookup};
use imbridge_core::{ConversationKey, Failure, TimestampMs};
use imbridge_kafka::Producer;
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::partitioner::partition_for_key;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::record::Record;
use imbridge_to_im::live::LedgerEntry;

use crate::common::{deps, group_msg, legacy_msg};

const PARTITIONS: i32 = 3;

fn find(l: &str) -> Lookup {
    Lookup::parse(l, None, None, None, 300).expect("lookup parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_events_reads_only_their_partition_and_tells_their_fate() {
    let d = deps("console-trace", PARTITIONS);
    let t = &d.topics;
    Admin::new(&d.kafka)
        .expect("admin")
        .ensure_topics(&[
            TopicSpec::new(&t.legacy_events, PARTITIONS),
            TopicSpec::new(&t.im_events, PARTITIONS),
            TopicSpec::new(&t.dlq, PARTITIONS),
            TopicSpec::new(&t.applied, PARTITIONS).with_config("cleanup.policy", "compact"),
        ])
        .await
        .expect("topics");
    let p = Producer::new(&d.kafka).expect("producer");

    // Five messages of group g1 and one of each of eight other groups (spread over the partitions).
    let mut g1 = Vec::new();
    for seq in 1..=5 {
        g1.push(p.send_envelope(&t.im_events, &group_msg("g1", seq)).await.expect("produce"));
    }
    let mut per_partition = [0u64; PARTITIONS as usize];
    for d in &g1 {
        per_partition[d.partition as usize] += 1;
    }
    for n in 2..10 {
        let dl = p.send_envelope(&t.im_events, &group_msg(&format!("g{n}"), 1)).await.expect("produce");
        per_partition[dl.partition as usize] += 1;
    }
    let g1_partition = partition_for_key(b"group:g1", PARTITIONS);
    assert!(g1.iter().all(|x| x.partition == g1_partition), "the producer and the lookup agree on the partition");
    // to-legacy committed past the second message of g1.
    Admin::new(&d.kafka)
        .expect("admin")
        .commit_group_offsets(&d.to_legacy_group, &[(t.im_events.clone(), g1_partition, g1[2].offset)])
        .await
        .expect("commit");

    // Two legacy messages: one applied to IM (ledger entry), one dead-lettered.
    let a1 = legacy_msg("a1");
    let a1_at = p.send_envelope(&t.legacy_events, &a1).await.expect("produce");
    let a2 = legacy_msg("a2");
    let a2_at = p.send_envelope(&t.legacy_events, &a2).await.expect("produce");
    let entry = LedgerEntry {
        applied_at: TimestampMs(1_700_000_000_000),
        target: "im".into(),
        reference: "11_22_33".into(),
        topic: Some(t.legacy_events.clone()),
        partition: Some(a1_at.partition),
        offset: Some(a1_at.offset),
        conversation: Some("c2c:ann:bob".into()),
    };
    let value = serde_json::to_vec(&entry).expect("json");
    p.send_to_partition(
        &t.applied,
        a1_at.partition % PARTITIONS,
        Outgoing { key: b"legacy:a1", payload: &value, headers: &[] },
    )
    .await
    .expect("ledger entry");
    let a2_record = Record {
        topic: t.legacy_events.clone(),
        partition: a2_at.partition,
        offset: a2_at.offset,
        key: Some(b"c2c:ann:bob".to_vec()),
        payload: Some(a2.to_json()),
        timestamp_ms: None,
        headers: vec![],
    };
    DlqProducer::new(p.clone(), &t.dlq)
        .send(&a2_record, &Failure::new("im_90001", "To_Account does not exist"), 3, 1)
        .await
        .expect("dead letter");

    // A group message by group + MsgSeq: one partition read, applied by the committed offset.
    let r = lookup(&d, &find("group:g1#2"), 1_000_000).await.expect("lookup");
    assert_eq!(r.searched.len(), 1);
    assert_eq!(r.searched[0].partitions, vec![g1_partition]);
    assert_eq!(r.scanned, per_partition[g1_partition as usize], "only the conversation's partition is read");
    assert_eq!(r.hits.len(), 1);
    let h = &r.hits[0];
    assert_eq!((h.event_id.as_str(), h.offset), ("im:gmsg:g1:2", g1[1].offset));
    assert!(matches!(&h.fate, Fate::Applied { evidence, .. } if evidence == "committed offset"), "{:?}", h.fate);
    // One the group has not reached: pending, with what is ahead of it.
    let r = lookup(&d, &find("im:gmsg:g1:5"), 1_000_000).await.expect("lookup");
    match &r.hits[0].fate {
        Fate::Pending { committed, ahead, .. } => {
            assert_eq!(*committed, Some(g1[2].offset));
            assert_eq!(*ahead, g1[4].offset - g1[2].offset);
        }
        other => panic!("expected pending, got {other:?}"),
    }

    // A legacy message id: applied per the ledger, with IM's MsgKey and the time.
    let r = lookup(&d, &find("a1"), 1_000_000).await.expect("lookup");
    let legacy_read = r.searched.iter().find(|s| s.topic == t.legacy_events).expect("legacy topic read");
    assert_eq!(legacy_read.partitions.len(), PARTITIONS as usize, "no conversation given: every partition");
    assert_eq!(r.hits.len(), 1, "{}", r.render());
    match &r.hits[0].fate {
        Fate::Applied { at, reference, evidence, .. } => {
            assert_eq!(
                (*at, reference.as_deref(), evidence.as_str()),
                (Some(entry.applied_at), Some("11_22_33"), "ledger")
            );
        }
        other => panic!("expected applied, got {other:?}"),
    }
    assert_eq!(r.hits[0].accepted_at, a1.recorded_at);
    // The dead-lettered one: why, and the commands that resolve it.
    let r = lookup(&d, &find("legacy:a2"), 1_000_000).await.expect("lookup");
    match &r.hits[0].fate {
        Fate::DeadLettered { kind, reason, resolution, commands, attempts, .. } => {
            assert_eq!((kind.as_str(), reason.as_str(), *attempts), ("im_90001", "To_Account does not exist", 3));
            assert_eq!(*resolution, None);
            assert!(commands.contains(&"imbridge dlq replay --conversation c2c:ann:bob".to_owned()), "{commands:?}");
        }
        other => panic!("expected dead-lettered, got {other:?}"),
    }
    assert!(r.render().contains("dead-lettered (unresolved): im_90001"), "{}", r.render());

    // A conversation around a time: both of its events, nothing of other conversations.
    let at = TimestampMs::now().to_rfc3339();
    let r = lookup(&d, &find(&format!("c2c:ann:bob@{at}")), 1_000_000).await.expect("lookup");
    let ids: Vec<&str> = r.hits.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(ids, ["legacy:a1", "legacy:a2"]);
    assert!(r.hits.iter().all(|h| h.conversation == ConversationKey::parse("c2c:ann:bob").expect("key").as_str()));
    // A window that ends before anything happened finds nothing.
    let r = lookup(&d, &Lookup::parse("c2c:ann:bob@1000", None, None, None, 1).expect("parses"), 1_000_000)
        .await
        .expect("lookup");
    assert!(r.hits.is_empty(), "{}", r.render());
    // Not there at all.
    let r = lookup(&d, &find("no-such-id"), 1_000_000).await.expect("lookup");
    assert!(r.hits.is_empty() && r.render().contains("not found"));
    // The record limit is reported, not silently applied.
    let r = lookup(&d, &find("no-such-id"), 1).await.expect("lookup");
    assert!(r.truncated);
}
