//! Canonical envelopes as ingest writes them: legacy-origin events of every kind, and an IM-side 1:1 message.

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupType, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::export::GroupProfile;
use imbridge_core::{Element, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};

pub fn user(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

pub fn group(s: &str) -> GroupId {
    GroupId::parse(s).expect("group id")
}

/// A body of one text element.
pub fn text(s: &str) -> Vec<Element> {
    vec![Element::Text { text: s.to_owned() }]
}

fn envelope(id: EventId, source: Source, event: Event) -> Envelope {
    let now = TimestampMs::now();
    Envelope { id, source, conversation: event.conversation(), time: now, recorded_at: Some(now), event }
}

/// A legacy-origin envelope as ingest would produce it.
pub fn legacy(id: &str, event: Event) -> Envelope {
    envelope(EventId::legacy(id), Source::Legacy, event)
}

pub fn c2c(id: &str, from: &str, to: &str, body: &str) -> Envelope {
    legacy(id, Event::C2cMessage(C2cMessage { from: user(from), to: user(to), body: text(body), custom_data: None }))
}

pub fn gmsg(id: &str, g: &str, from: &str, body: &str) -> Envelope {
    legacy(
        id,
        Event::GroupMessage(GroupMessage { group_id: group(g), from: user(from), body: text(body), custom_data: None }),
    )
}

pub fn gcreate(id: &str, g: &str, owner: &str, name: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::GroupCreated(GroupCreated {
            group_id: group(g),
            group_type: GroupType::Public,
            profile: GroupProfile { owner: Some(user(owner)), ..GroupProfile::named(name) },
            members: members.iter().map(|m| user(m)).collect(),
        }),
    )
}

pub fn gupdate(id: &str, g: &str, name: Option<&str>, intro: Option<&str>) -> Envelope {
    legacy(
        id,
        Event::GroupUpdated(GroupUpdated {
            group_id: group(g),
            operator: None,
            name: name.map(str::to_owned),
            introduction: intro.map(str::to_owned),
            notification: None,
            face_url: None,
        }),
    )
}

pub fn gjoin(id: &str, g: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::MembersJoined(MembersJoined {
            group_id: group(g),
            members: members.iter().map(|m| user(m)).collect(),
            operator: None,
        }),
    )
}

pub fn gleave(id: &str, g: &str, members: &[&str]) -> Envelope {
    legacy(
        id,
        Event::MembersLeft(MembersLeft {
            group_id: group(g),
            members: members.iter().map(|m| user(m)).collect(),
            reason: None,
            operator: None,
        }),
    )
}

pub fn gdismiss(id: &str, g: &str) -> Envelope {
    legacy(id, Event::GroupDismissed(GroupDismissed { group_id: group(g) }))
}

/// A 1:1 message seen on IM (`C2C.CallbackAfterSendMsg`, id from the sender and MsgKey) as ingest writes it.
pub fn im_c2c(from: &str, to: &str, seq: u32, body: &str) -> Envelope {
    let msg_key = format!("{seq}_{}_{}", 1000 + seq, 1_700_000_000 + seq);
    let event = Event::C2cMessage(C2cMessage { from: user(from), to: user(to), body: text(body), custom_data: None });
    envelope(EventId::im_c2c(&user(from), &msg_key), Source::Im, event)
}
