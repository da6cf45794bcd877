//! "Where is my message?" against a real broker: events, a ledger entry, a dead letter and a committed offset are
//! written the way the services write them, and each lookup must find the right record, read only what it has
//! to (one partition when the id names the conversation) and tell its fate from the right evidence.

use imbridge_console::Deps;
use imbridge_console::trace::{Fate, Lookup, lookup};
use imbridge_core::event::{C2cMessage, GroupMessage};
use imbridge_core::topics::TopicNames;
use imbridge_core::{
    ConversationKey, Element, Envelope, Event, EventId, Failure, GroupId, Source, TimestampMs, UserId,
};
use imbridge_kafka::admin::{Admin, TopicSpec};
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::partitioner::partition_for_key;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::record::Record;
use imbridge_kafka::{KafkaConfig, Producer};
use imbridge_to_im::live::LedgerEntry;

const PARTITIONS: i32 = 3;

fn deps() -> Deps {
    let u = imbridge_testkit::unique("console-trace");
    let topics = TopicNames {
        legacy_events: format!("{u}.legacy.events"),
        im_events: format!("{u}.im.events"),
        import_accounts: format!("{u}.import.accounts"),
        import_users: format!("{u}.import.users"),
        import_c2c: format!("{u}.import.c2c"),
        import_groups: format!("{u}.import.groups"),
        dlq: format!("{u}.dlq"),
        applied: format!("{u}.applied"),
        conversations: format!("{u}.conversations"),
        status: format!("{u}.status"),
        partitions: PARTITIONS,
        replication: 1,
    };
    Deps {
        kafka: KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap()),
        topics,
        to_im_group: format!("{u}-to-im"),
        to_legacy_group: format!("{u}-to-legacy"),
        import_groups: vec![],
        checkpoint_topic: format!("{u}.checkpoints"),
        im: imbridge_im::ImConfig::default(),
    }
}

fn text(s: &str) -> Vec<Element> {
    vec![Element::Text { text: s.to_owned() }]
}

fn group_msg(g: &str, seq: u64) -> Envelope {
    let group = GroupId::new_unchecked(g);
    let event = Event::GroupMessage(GroupMessage {
        group_id: group.clone(),
        from: UserId::new_unchecked("ann"),
        body: text(&format!("{g} #{seq}")),
        custom_data: None,
    });
    let t = TimestampMs::now();
    Envelope {
        id: EventId::im_group_message(&group, seq),
        source: Source::Im,
        conversation: event.conversation(),
        time: t,
        recorded_at: Some(t),
        event,
    }
}

fn legacy_msg(id: &str) -> Envelope {
    let event = Event::C2cMessage(C2cMessage {
        from: UserId::new_unchecked("ann"),
        to: UserId::new_unchecked("bob"),
        body: text(id),
        custom_data: None,
    });
    let t = TimestampMs::now();
    Envelope {
        id: EventId::legacy(id),
        source: Source::Legacy,
        conversation: event.conversation(),
        time: t,
        recorded_at: Some(t),
        event,
    }
}

fn find(l: &str) -> Lookup {
    Lookup::parse(l, None, None, None, 300).expect("lookup parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_events_reads_only_their_partition_and_tells_their_fate() {
    let d = deps();
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
