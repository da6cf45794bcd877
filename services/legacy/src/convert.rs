//! Contract events ↔ canonical envelopes.
//!
//! Legacy → imbridge: a contract event becomes an [`Envelope`] with source `legacy`, id `legacy:<id>` and the
//! conversation key of its payload. imbridge → legacy: an IM-origin envelope becomes a contract event with
//! `"origin":"im"` and the envelope's id as its `id`, so the legacy side can deduplicate on it and must never
//! send it back.

use imbridge_core::event::EventKind;
use imbridge_core::{Envelope, Event, Source, TimestampMs};

use crate::contract::{ContractEvent, EventData, MAX_EVENT_ID_BYTES, Origin};

/// Why an envelope cannot be written to the legacy side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// Writing a legacy-origin event back to legacy would be an echo by construction.
    #[error("event {id} came from {source_name}; only IM-origin events are written to legacy")]
    NotFromIm { id: String, source_name: &'static str },
    /// Bulk-import records only travel to IM.
    #[error("event {id} is a {kind} record, which has no legacy contract form")]
    NotRealtime { id: String, kind: &'static str },
    #[error("event id {id:?} is longer than {MAX_EVENT_ID_BYTES} bytes")]
    IdTooLong { id: String },
}

impl EventData {
    /// The canonical event carrying the same payload.
    pub fn into_event(self) -> Event {
        match self {
            EventData::C2cMessage(p) => Event::C2cMessage(p),
            EventData::GroupMessage(p) => Event::GroupMessage(p),
            EventData::GroupCreated(p) => Event::GroupCreated(p),
            EventData::GroupUpdated(p) => Event::GroupUpdated(p),
            EventData::GroupDismissed(p) => Event::GroupDismissed(p),
            EventData::MembersJoined(p) => Event::MembersJoined(p),
            EventData::MembersLeft(p) => Event::MembersLeft(p),
        }
    }

    /// The contract form of a real-time canonical event; `None` for import records.
    pub fn from_event(event: &Event) -> Option<Self> {
        Some(match event {
            Event::C2cMessage(p) => EventData::C2cMessage(p.clone()),
            Event::GroupMessage(p) => EventData::GroupMessage(p.clone()),
            Event::GroupCreated(p) => EventData::GroupCreated(p.clone()),
            Event::GroupUpdated(p) => EventData::GroupUpdated(p.clone()),
            Event::GroupDismissed(p) => EventData::GroupDismissed(p.clone()),
            Event::MembersJoined(p) => EventData::MembersJoined(p.clone()),
            Event::MembersLeft(p) => EventData::MembersLeft(p.clone()),
            _ => return None,
        })
    }
}

impl ContractEvent {
    /// The canonical envelope ingest produces for an event the legacy system sent. `recorded_at` is when
    /// ingest accepted it (the start of end-to-end latency).
    pub fn into_envelope(self, recorded_at: Option<TimestampMs>) -> Envelope {
        let id = self.event_id();
        let conversation = self.conversation();
        Envelope {
            id,
            source: Source::Legacy,
            conversation,
            time: self.time,
            recorded_at,
            event: self.data.into_event(),
        }
    }

    /// The contract event to-legacy writes for an event seen on IM. Its `id` is the envelope id (derived from
    /// IM's own identifiers), so a replay writes the same id and the legacy side answers 409.
    pub fn from_im_envelope(env: &Envelope) -> Result<Self, ConvertError> {
        let id = env.id.as_str().to_owned();
        if env.source != Source::Im {
            return Err(ConvertError::NotFromIm { id, source_name: env.source.as_str() });
        }
        let Some(data) = EventData::from_event(&env.event) else {
            let kind: EventKind = env.kind();
            return Err(ConvertError::NotRealtime { id, kind: kind.as_str() });
        };
        if id.len() > MAX_EVENT_ID_BYTES {
            return Err(ConvertError::IdTooLong { id });
        }
        Ok(ContractEvent { id, time: env.time, origin: Some(Origin::Im), data })
    }
}

#[cfg(test)]
mod tests {
    use imbridge_core::event::{C2cMessage, GroupType, ImportAccount, MembersLeft};
    use imbridge_core::{ConversationKey, Element, EventId, GroupId, UserId};

    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn legacy_event_becomes_a_legacy_envelope() {
        let e = ContractEvent::from_value(&serde_json::json!({"id":"m-9","type":"c2c.message","time":5000,
            "from":"bob","to":"ann","body":[{"type":"text","text":"hi"}]}))
        .expect("valid");
        let env = e.into_envelope(Some(TimestampMs(6000)));
        assert_eq!(env.id, EventId::legacy("m-9"));
        assert_eq!(env.source, Source::Legacy);
        assert_eq!(env.conversation, ConversationKey::parse("c2c:ann:bob").expect("key"));
        assert_eq!(env.time, TimestampMs(5000));
        assert_eq!(env.recorded_at, Some(TimestampMs(6000)));
        assert_eq!(
            env.event,
            Event::C2cMessage(C2cMessage {
                from: u("bob"),
                to: u("ann"),
                body: vec![Element::Text { text: "hi".into() }],
                custom_data: None
            })
        );
    }

    #[test]
    fn every_group_type_round_trips_through_the_envelope() {
        let g = GroupId::parse("g1").expect("valid");
        let samples = [
            serde_json::json!({"id":"1","type":"group.created","time":1,"group_id":"g1","group_type":"Public",
                "name":"Team","owner":"ann","members":["bob"]}),
            serde_json::json!({"id":"2","type":"group.updated","time":2,"group_id":"g1","name":"Team 2"}),
            serde_json::json!({"id":"3","type":"group.members_joined","time":3,"group_id":"g1","members":["cy"]}),
            serde_json::json!({"id":"4","type":"group.members_left","time":4,"group_id":"g1","members":["cy"],
                "reason":"kicked"}),
            serde_json::json!({"id":"5","type":"group.message","time":5,"group_id":"g1","from":"ann",
                "body":[{"type":"face","index":3}]}),
            serde_json::json!({"id":"6","type":"group.dismissed","time":6,"group_id":"g1"}),
        ];
        for s in samples {
            let e = ContractEvent::from_value(&s).expect("valid");
            let env = e.clone().into_envelope(None);
            assert_eq!(env.conversation, ConversationKey::group(&g));
            assert_eq!(env.kind().as_str(), e.data.type_name());
            assert_eq!(EventData::from_event(&env.event), Some(e.data));
        }
        let created = ContractEvent::from_value(&serde_json::json!({"id":"1","type":"group.created","time":1,
            "group_id":"g1","group_type":"Community","name":"T"}))
        .expect("valid");
        let EventData::GroupCreated(c) = created.data else { panic!("created") };
        assert_eq!(c.group_type, GroupType::Community);
    }

    #[test]
    fn im_envelope_becomes_an_origin_im_event() {
        let g = GroupId::parse("g1").expect("valid");
        let ev = Event::MembersLeft(MembersLeft {
            group_id: g.clone(),
            members: vec![u("bob")],
            reason: None,
            operator: Some(u("ann")),
        });
        let env = Envelope {
            id: EventId::im_group_event(&g, "Group.CallbackAfterMemberExit", 1234, b"jared"),
            source: Source::Im,
            conversation: ev.conversation(),
            time: TimestampMs(1234),
            recorded_at: Some(TimestampMs(1300)),
            event: ev,
        };
        let c = ContractEvent::from_im_envelope(&env).expect("convert");
        assert_eq!(c.id, env.id.as_str(), "the contract id is the envelope id");
        assert!(c.id.starts_with("im:gevt:g1:Group.CallbackAfterMemberExit:1234:"));
        assert_eq!(c.origin, Some(Origin::Im));
        assert!(c.is_echo());
        assert_eq!(c.time, TimestampMs(1234));
        let v = serde_json::to_value(&c).expect("ser");
        assert_eq!(v["origin"], "im");
        assert_eq!(v["type"], "group.members_left");
        assert_eq!(v["members"], serde_json::json!(["bob"]));
        // What to-legacy writes parses back as a valid contract event.
        assert_eq!(ContractEvent::from_value(&v).expect("valid"), c);
    }

    #[test]
    fn refuses_legacy_origin_and_import_records() {
        let ev = Event::ImportAccount(ImportAccount { user_id: u("ann"), nick: None, face_url: None });
        let mut env = Envelope {
            id: EventId::import("account", "ann"),
            source: Source::Im,
            conversation: ev.conversation(),
            time: TimestampMs(1),
            recorded_at: None,
            event: ev,
        };
        assert!(matches!(ContractEvent::from_im_envelope(&env), Err(ConvertError::NotRealtime { .. })));
        env.source = Source::Legacy;
        assert!(matches!(ContractEvent::from_im_envelope(&env), Err(ConvertError::NotFromIm { .. })));
    }
}
