//! What the console's tests share: the console's dependencies on the shared broker with topics and groups no
//! other test uses, and envelopes as the services write them.

use imbridge_console::Deps;
use imbridge_core::event::{C2cMessage, GroupMessage};
use imbridge_core::{Element, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_kafka::KafkaConfig;

/// Topics `<unique name>.<role>` with `partitions` partitions, groups `<unique name>-to-im|-to-legacy`.
pub fn deps(name: &str, partitions: i32) -> Deps {
    let u = imbridge_testkit::unique(name);
    let topics = imbridge_testkit::unique_topics(&u, partitions);
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

pub fn text(s: &str) -> Vec<Element> {
    vec![Element::Text { text: s.to_owned() }]
}

fn envelope(id: EventId, source: Source, event: Event) -> Envelope {
    let t = TimestampMs::now();
    Envelope { id, source, conversation: event.conversation(), time: t, recorded_at: Some(t), event }
}

/// A 1:1 message ann → bob from legacy, its text its id.
pub fn legacy_msg(id: &str) -> Envelope {
    let event = Event::C2cMessage(C2cMessage {
        from: UserId::new_unchecked("ann"),
        to: UserId::new_unchecked("bob"),
        body: text(id),
        custom_data: None,
    });
    envelope(EventId::legacy(id), Source::Legacy, event)
}

/// Message `seq` of group `g` from IM, sent by ann.
pub fn group_msg(g: &str, seq: u64) -> Envelope {
    let group = GroupId::new_unchecked(g);
    let event = Event::GroupMessage(GroupMessage {
        group_id: group.clone(),
        from: UserId::new_unchecked("ann"),
        body: text(&format!("{g} #{seq}")),
        custom_data: None,
    });
    envelope(EventId::im_group_message(&group, seq), Source::Im, event)
}
