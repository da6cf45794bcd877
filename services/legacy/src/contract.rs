//! The legacy contract's wire types: one event, a batch of events, and the answers.
//!
//! An event is `{"id","type","time","origin"?, …fields of its type}`; a batch is `{"events":[…]}` with 1 to
//! [`MAX_BATCH_EVENTS`] events. The per-type fields are exactly imbridge-core's payload structs, so a contract
//! event and a canonical event can never disagree on a field name.
//!
//! [`parse_batch`] checks every event on its own and reports all bad ones with their index, because the
//! contract answers a malformed batch with `400 {"errors":[{"index":i,"error":"…"}]}` and accepts nothing.

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::{ConversationKey, Element, EventId, GroupId, TimestampMs, UserId};
use serde::{Deserialize, Serialize};

/// Most events one batch may carry, in either direction.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Longest legacy event id, in bytes. Long enough for imbridge's own derived ids (`im:gevt:<group>:…`).
pub const MAX_EVENT_ID_BYTES: usize = 128;
/// Default request body limit for the legacy → imbridge endpoint (ingest answers 413 above it).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Where a legacy system posts its webhooks on the ingest service.
pub const INGEST_PATH: &str = "/v1/legacy/events";

/// Who wrote an event. Absent means the legacy system itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Written by imbridge (copied from IM): an echo if it ever comes back.
    Im,
    /// Written by the legacy system's own users; the same as leaving `origin` out.
    Legacy,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Im => "im",
            Origin::Legacy => "legacy",
        }
    }
}

/// One event of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractEvent {
    /// The writer's unique id for this event; the idempotency key on both sides.
    pub id: String,
    /// When it happened: Unix milliseconds, or RFC 3339 on input.
    pub time: TimestampMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(flatten)]
    pub data: EventData,
}

/// The type-specific part of an event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventData {
    #[serde(rename = "c2c.message")]
    C2cMessage(C2cMessage),
    #[serde(rename = "group.message")]
    GroupMessage(GroupMessage),
    #[serde(rename = "group.created")]
    GroupCreated(GroupCreated),
    #[serde(rename = "group.updated")]
    GroupUpdated(GroupUpdated),
    #[serde(rename = "group.dismissed")]
    GroupDismissed(GroupDismissed),
    #[serde(rename = "group.members_joined")]
    MembersJoined(MembersJoined),
    #[serde(rename = "group.members_left")]
    MembersLeft(MembersLeft),
}

impl EventData {
    /// The `type` tag as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventData::C2cMessage(_) => "c2c.message",
            EventData::GroupMessage(_) => "group.message",
            EventData::GroupCreated(_) => "group.created",
            EventData::GroupUpdated(_) => "group.updated",
            EventData::GroupDismissed(_) => "group.dismissed",
            EventData::MembersJoined(_) => "group.members_joined",
            EventData::MembersLeft(_) => "group.members_left",
        }
    }

    /// The ordering key, by the same rule as canonical events.
    pub fn conversation(&self) -> ConversationKey {
        match self {
            EventData::C2cMessage(m) => ConversationKey::c2c(&m.from, &m.to),
            EventData::GroupMessage(m) => ConversationKey::group(&m.group_id),
            EventData::GroupCreated(e) => ConversationKey::group(&e.group_id),
            EventData::GroupUpdated(e) => ConversationKey::group(&e.group_id),
            EventData::GroupDismissed(e) => ConversationKey::group(&e.group_id),
            EventData::MembersJoined(e) => ConversationKey::group(&e.group_id),
            EventData::MembersLeft(e) => ConversationKey::group(&e.group_id),
        }
    }

    /// Checks what serde cannot: id rules (the core id types deserialize unchecked), non-empty bodies and
    /// member lists, and an update that changes something.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            EventData::C2cMessage(m) => {
                user("from", &m.from)?;
                user("to", &m.to)?;
                body(&m.body)
            }
            EventData::GroupMessage(m) => {
                group(&m.group_id)?;
                user("from", &m.from)?;
                body(&m.body)
            }
            EventData::GroupCreated(e) => {
                group(&e.group_id)?;
                if e.profile.name.trim().is_empty() {
                    return Err("name is empty".into());
                }
                if let Some(o) = &e.profile.owner {
                    user("owner", o)?;
                }
                e.members.iter().try_for_each(|m| user("members[]", m))
            }
            EventData::GroupUpdated(e) => {
                group(&e.group_id)?;
                if let Some(o) = &e.operator {
                    user("operator", o)?;
                }
                if e.name.is_none() && e.introduction.is_none() && e.notification.is_none() && e.face_url.is_none() {
                    return Err("group.updated changes none of name, introduction, notification, face_url".into());
                }
                if e.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    return Err("name is empty".into());
                }
                Ok(())
            }
            EventData::GroupDismissed(e) => group(&e.group_id),
            EventData::MembersJoined(e) => {
                group(&e.group_id)?;
                members(&e.members)
            }
            EventData::MembersLeft(e) => {
                group(&e.group_id)?;
                members(&e.members)
            }
        }
    }
}

fn user(field: &str, u: &UserId) -> Result<(), String> {
    UserId::parse(u.as_str()).map(drop).map_err(|e| format!("{field}: {e}"))
}

fn group(g: &GroupId) -> Result<(), String> {
    GroupId::parse(g.as_str()).map(drop).map_err(|e| format!("group_id: {e}"))
}

fn body(b: &[Element]) -> Result<(), String> {
    if b.is_empty() { Err("body has no elements".into()) } else { Ok(()) }
}

fn members(m: &[UserId]) -> Result<(), String> {
    if m.is_empty() {
        return Err("members is empty".into());
    }
    m.iter().try_for_each(|u| user("members[]", u))
}

impl ContractEvent {
    /// The canonical id of an event the legacy system wrote: `legacy:<id>`.
    pub fn event_id(&self) -> EventId {
        EventId::legacy(&self.id)
    }

    pub fn conversation(&self) -> ConversationKey {
        self.data.conversation()
    }

    /// True when imbridge wrote this event: ingest must drop it, or it would travel back to IM.
    pub fn is_echo(&self) -> bool {
        self.origin == Some(Origin::Im)
    }

    /// Everything [`parse_batch`] checks about one event once it has parsed.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("id is empty".into());
        }
        if self.id.len() > MAX_EVENT_ID_BYTES {
            return Err(format!("id is {} bytes, longer than {MAX_EVENT_ID_BYTES}", self.id.len()));
        }
        if self.id.chars().any(char::is_control) {
            return Err("id contains a control character".into());
        }
        if self.time.as_millis() < 0 {
            return Err("time is before 1970".into());
        }
        self.data.validate()
    }

    /// Reads and validates one event from a JSON value.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, String> {
        // serde would read an event from an array by position; an event is an object.
        imbridge_core::json::object(v).map_err(|e| format!("event is {e}"))?;
        let e = ContractEvent::deserialize(v).map_err(|e| e.to_string())?;
        e.validate()?;
        Ok(e)
    }
}

/// `{"events":[…]}` as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub events: Vec<ContractEvent>,
}

impl Batch {
    /// The request body. Serializing these types cannot fail (string keys only, no fallible Serialize).
    pub fn to_json(events: &[ContractEvent]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            events: &'a [ContractEvent],
        }
        serde_json::to_vec(&Out { events }).unwrap_or_default()
    }
}

/// One problem in a rejected batch. `index` is absent when the batch as a whole is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub error: String,
}

/// The `400` answer body: `{"errors":[{"index":i,"error":"…"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsBody {
    pub errors: Vec<IndexedError>,
}

/// The legacy → imbridge `200` answer body: `{"accepted":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedBody {
    pub accepted: usize,
}

/// Why a batch was refused. Every variant means "nothing accepted".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("body is not a JSON object with an `events` array: {0}")]
    Malformed(String),
    #[error("batch has no events")]
    Empty,
    #[error("batch has {0} events; at most {MAX_BATCH_EVENTS} are allowed")]
    TooMany(usize),
    #[error("{} of the batch's events are invalid", .0.len())]
    Invalid(Vec<IndexedError>),
}

impl BatchError {
    /// The `400` body for this refusal.
    pub fn to_body(&self) -> ErrorsBody {
        match self {
            BatchError::Invalid(errors) => ErrorsBody { errors: errors.clone() },
            other => ErrorsBody { errors: vec![IndexedError { index: None, error: other.to_string() }] },
        }
    }
}

/// Parses and validates a whole batch. Every invalid event is reported, not just the first, so the sender
/// can fix them all in one round.
pub fn parse_batch(body: &[u8]) -> Result<Vec<ContractEvent>, BatchError> {
    #[derive(Deserialize)]
    struct Raw {
        events: Vec<serde_json::Value>,
    }
    // `[[…]]` would otherwise read as `{"events":[…]}`.
    imbridge_core::json::check_object_text(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
    let raw: Raw = serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
    if raw.events.is_empty() {
        return Err(BatchError::Empty);
    }
    if raw.events.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooMany(raw.events.len()));
    }
    let mut events = Vec::with_capacity(raw.events.len());
    let mut errors = Vec::new();
    for (i, v) in raw.events.iter().enumerate() {
        match ContractEvent::from_value(v) {
            Ok(e) => events.push(e),
            Err(error) => errors.push(IndexedError { index: Some(i), error }),
        }
    }
    if errors.is_empty() { Ok(events) } else { Err(BatchError::Invalid(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_time_forms_and_writes_ms() {
        let a = ContractEvent::from_value(&json!({"id":"m1","type":"c2c.message","time":1700000000123_i64,
            "from":"ann","to":"bob","body":[{"type":"text","text":"hi"}]}))
        .expect("ms");
        let b = ContractEvent::from_value(&json!({"id":"m1","type":"c2c.message","time":"2023-11-14T22:13:20.123Z",
            "from":"ann","to":"bob","body":[{"type":"text","text":"hi"}]}))
        .expect("rfc3339");
        assert_eq!(a, b);
        let v = serde_json::to_value(&a).expect("ser");
        assert_eq!(v["time"], json!(1700000000123_i64));
        assert_eq!(v["type"], "c2c.message");
        assert!(v.get("origin").is_none());
    }

    #[test]
    fn unknown_fields_are_ignored_but_unknown_types_are_not() {
        let e = ContractEvent::from_value(&json!({"id":"g1","type":"group.dismissed","time":1,"group_id":"g",
            "x_trace":"abc"}));
        assert!(e.is_ok());
        let e = ContractEvent::from_value(&json!({"id":"g1","type":"group.exploded","time":1,"group_id":"g"}));
        assert!(e.expect_err("bad type").contains("group.exploded"));
    }

    #[test]
    fn batch_reports_every_bad_event_with_its_index() {
        let body = json!({"events":[
            {"id":"ok","type":"group.dismissed","time":1,"group_id":"g"},
            {"id":"","type":"group.dismissed","time":1,"group_id":"g"},
            {"id":"b","type":"c2c.message","time":1,"from":"ann","body":[{"type":"text","text":"x"}]},
            {"id":"c","type":"c2c.message","time":1,"from":"ann","to":"bob","body":[]},
            {"id":"d","type":"group.updated","time":1,"group_id":"g"},
            {"id":"e","type":"group.members_joined","time":1,"group_id":"g","members":[]},
            {"id":"f","type":"c2c.message","time":1,"from":"x".repeat(33),"to":"bob",
             "body":[{"type":"text","text":"x"}]},
            {"id":"g","type":"c2c.message","time":"yesterday","from":"ann","to":"bob",
             "body":[{"type":"text","text":"x"}]},
            {"id":"h","type":"group.dismissed","time":1,"group_id":"g","origin":"martians"},
            "not an object",
            {"id":"i","type":"c2c.message","time":1,"from":"ann","to":"bob","body":[{"type":"hologram"}]}
        ]});
        let err = parse_batch(&serde_json::to_vec(&body).expect("ser")).expect_err("invalid");
        let BatchError::Invalid(errors) = err else { panic!("expected per-event errors, got {err:?}") };
        let idx: Vec<_> = errors.iter().map(|e| e.index.expect("indexed")).collect();
        assert_eq!(idx, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert!(errors[0].error.contains("id is empty"), "{errors:?}");
        assert!(errors[1].error.contains("missing field `to`"), "{errors:?}");
        assert!(errors[2].error.contains("body has no elements"), "{errors:?}");
        assert!(errors[3].error.contains("changes none"), "{errors:?}");
        assert!(errors[4].error.contains("members is empty"), "{errors:?}");
        assert!(errors[5].error.contains("from: user id is 33 bytes"), "{errors:?}");
        assert!(errors[6].error.contains("RFC 3339"), "{errors:?}");
        assert!(errors[7].error.contains("martians"), "{errors:?}");
        assert!(errors[8].error.contains("not a JSON object"), "{errors:?}");
        assert!(errors[9].error.contains("hologram"), "{errors:?}");
    }

    #[test]
    fn events_and_batches_must_be_objects() {
        // Positional arrays that serde alone would read as an event (fields in declaration order).
        let event = json!({"id":"a","type":"group.dismissed","time":1,"group_id":"g"});
        let positional = json!(["a", "group.dismissed", 1, "g"]);
        let body = json!({"events": [event.clone(), positional, [], null, 7]});
        let err = parse_batch(&serde_json::to_vec(&body).expect("ser")).expect_err("invalid");
        let BatchError::Invalid(errors) = err else { panic!("expected per-event errors, got {err:?}") };
        let got: Vec<(Option<usize>, &str)> = errors.iter().map(|e| (e.index, e.error.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(1), "event is an array, not a JSON object"),
                (Some(2), "event is an array, not a JSON object"),
                (Some(3), "event is null, not a JSON object"),
                (Some(4), "event is a number, not a JSON object"),
            ]
        );
        // A batch that is an array of events would read as `{"events":[…]}`.
        let err = parse_batch(&serde_json::to_vec(&json!([[event]])).expect("ser")).expect_err("array batch");
        assert_eq!(err, BatchError::Malformed("an array, not a JSON object".into()));
        assert_eq!(err.to_string(), "body is not a JSON object with an `events` array: an array, not a JSON object");
    }

    #[test]
    fn batch_level_errors() {
        assert!(matches!(parse_batch(b"nope"), Err(BatchError::Malformed(_))));
        assert!(matches!(parse_batch(b"{\"evts\":[]}"), Err(BatchError::Malformed(_))));
        assert_eq!(parse_batch(b"{\"events\":[]}"), Err(BatchError::Empty));
        let one = json!({"id":"x","type":"group.dismissed","time":1,"group_id":"g"});
        let many = json!({ "events": vec![one; MAX_BATCH_EVENTS + 1] });
        assert_eq!(parse_batch(&serde_json::to_vec(&many).expect("ser")), Err(BatchError::TooMany(501)));
        let body = serde_json::to_value(BatchError::Empty.to_body()).expect("ser");
        assert_eq!(body, json!({"errors":[{"error":"batch has no events"}]}));
        let body = serde_json::to_value(
            BatchError::Invalid(vec![IndexedError { index: Some(3), error: "bad".into() }]).to_body(),
        )
        .expect("ser");
        assert_eq!(body, json!({"errors":[{"index":3,"error":"bad"}]}));
    }

    #[test]
    fn full_batch_of_500_is_fine() {
        let one = json!({"id":"x","type":"group.dismissed","time":1,"group_id":"g"});
        let body = json!({ "events": vec![one; MAX_BATCH_EVENTS] });
        assert_eq!(parse_batch(&serde_json::to_vec(&body).expect("ser")).expect("ok").len(), 500);
    }
}
