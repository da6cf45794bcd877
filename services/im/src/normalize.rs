//! IM callback → canonical event: what each of the eight consumed commands becomes, which callbacks are
//! imbridge's own echoes, and which carry nothing to sync. Pure functions, no I/O: the IM side's mirror of
//! the legacy crate's `convert` (contract event → canonical envelope).
//!
//! Event ids are derived from IM's own identifiers (issue 5), so a callback delivered twice names the same event:
//!
//! | command | event | id |
//! | --- | --- | --- |
//! | `C2C.CallbackAfterSendMsg` | `c2c.message` | `im:c2c:<From_Account>:<MsgKey>` |
//! | `Group.CallbackAfterSendMsg` | `group.message` | `im:gmsg:<GroupId>:<MsgSeq>` |
//! | `Group.CallbackAfterCreateGroup` | `group.created` | `im:gevt:<GroupId>:<command>:<EventTime>` |
//! | `Group.CallbackAfterGroupInfoChanged` | `group.updated` | same rule |
//! | `Group.CallbackAfterGroupDestroyed` | `group.dismissed` | same rule |
//! | `Group.CallbackAfterNewMemberJoin` | `group.members_joined` | same rule |
//! | `Group.CallbackAfterMemberExit` | `group.members_left` | same rule |
//! | `C2C.CallbackAfterMsgReport` | nothing: read state has no real-time event kind (counted as `read_report`) |
//!
//! Echoes (counted, never produced):
//! - the operator is imbridge's admin identity (`Operator_Account`; for 1:1 messages the sender): imbridge's
//!   own REST calls, which IM cannot suppress for group lifecycle operations;
//! - a message whose `CloudCustomData` is a JSON object with the key [`ORIGIN_KEY`](crate::origin::ORIGIN_KEY)
//!   (`{"imbridge_origin":"legacy"}`): to-im puts it on every message it sends, in addition to
//!   `ForbidCallbackControl`, so a message is recognised even if a callback slips through;
//! - optionally ([`Echo::rest_dismiss_is_echo`]), a group dismissal caused by a REST call: IM documents no
//!   `Operator_Account` on `Group.CallbackAfterGroupDestroyed`, so imbridge's own `destroy_group` cannot be told
//!   apart from another backend's by the payload alone.
//!
//! Ingest checks every produced event against the legacy contract's own validation before it goes to Kafka,
//! so to-legacy never receives an event the legacy side must refuse for its shape.

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupType, GroupUpdated, LeaveReason, MembersJoined,
    MembersLeft,
};
use imbridge_core::export::GroupProfile;
use imbridge_core::{Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};

use crate::body::from_im_body;
use crate::callback::{
    C2cAfterSendMsg, Callback, CallbackQuery, GroupAfterCreateGroup, GroupAfterMemberExit, GroupAfterSendMsg,
};
use crate::origin::has_origin_marker;
use crate::types::MemberAccount;

/// A well-formed callback whose content cannot become a canonical event (bad id, unmappable body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {reason}")]
pub struct NormalizeError {
    pub command: String,
    pub reason: String,
}

/// How echoes are recognised.
#[derive(Debug, Clone)]
pub struct Echo {
    /// imbridge's dedicated IM admin identity (`im.admin_identifier`).
    pub admin_identifier: String,
    /// Treat a `Group.CallbackAfterGroupDestroyed` without `Operator_Account` whose `OptPlatform` is `RESTAPI`
    /// as imbridge's own (only right when no other backend destroys groups through the REST API).
    pub rest_dismiss_is_echo: bool,
}

/// Why a callback is an echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoReason {
    /// Caused by imbridge's admin identity.
    Operator,
    /// A message carrying imbridge's origin marker.
    OriginMarker,
    /// A REST-caused dismissal, with `rest_dismiss_is_echo`.
    RestDismiss,
}

impl EchoReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EchoReason::Operator => "operator",
            EchoReason::OriginMarker => "origin_marker",
            EchoReason::RestDismiss => "rest_dismiss",
        }
    }
}

/// Why a valid callback produces no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A command imbridge does not consume (friend, profile, before-callbacks, …).
    UnconsumedCommand,
    /// `C2C.CallbackAfterMsgReport`: read state is imported, not synced in real time.
    ReadReport,
    /// A 1:1 message IM did not deliver (`SendMsgResult` ≠ 0): it is not in IM's history either.
    SendFailed,
    /// An AVChatRoom (no history, out of scope) or an unknown group type.
    UnsupportedGroupType,
    /// A message in a community topic: the legacy contract has no topics.
    TopicMessage,
    /// A profile change touching none of name, introduction, notification, face URL.
    NoSyncedChange,
    /// A join or exit listing no members.
    NoMembers,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::UnconsumedCommand => "unconsumed_command",
            IgnoreReason::ReadReport => "read_report",
            IgnoreReason::SendFailed => "send_failed",
            IgnoreReason::UnsupportedGroupType => "unsupported_group_type",
            IgnoreReason::TopicMessage => "topic_message",
            IgnoreReason::NoSyncedChange => "no_synced_change",
            IgnoreReason::NoMembers => "no_members",
        }
    }
}

/// What a callback becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    Event(Box<Envelope>),
    Echo(EchoReason),
    Ignored(IgnoreReason),
}

/// An event normalized from the callback of an IM app that is the **old** side (`[old_side] kind = "im"`):
/// the same event, as one the old side caused — source `legacy`, so it travels on the old side's topic to
/// to-im — and with its id under `legacy:` (`legacy:im:gmsg:<GroupId>:<MsgSeq>`, …), since the two apps number
/// their messages independently and the same MsgSeq or MsgKey on both must stay two events.
pub fn as_old_side(env: Envelope) -> Envelope {
    Envelope { id: EventId::legacy(env.id.as_str()), source: Source::Legacy, ..env }
}

/// Normalizes a parsed, verified callback. `received_at` is when ingest got it: the envelope's `recorded_at`,
/// and the event time of a group lifecycle callback that carries no `EventTime` (IM documents none as
/// optional, but a missing one must not make the id unstable within one delivery).
pub fn normalize(
    cb: &Callback,
    query: &CallbackQuery,
    echo: &Echo,
    received_at: TimestampMs,
) -> Result<Normalized, NormalizeError> {
    if cb.operator_account().is_some_and(|op| op == echo.admin_identifier) {
        return Ok(Normalized::Echo(EchoReason::Operator));
    }
    let command = cb.command();
    let invalid = |reason: String| NormalizeError { command: command.to_owned(), reason };
    let group_time = TimestampMs(cb.event_time_ms().unwrap_or(received_at.as_millis()));
    let event = match cb {
        Callback::C2cAfterSendMsg(m) => match c2c_message(m, received_at).map_err(invalid)? {
            Ok(env) => return Ok(Normalized::Event(Box::new(env))),
            Err(n) => return Ok(n),
        },
        Callback::GroupAfterSendMsg(m) => match group_message(m, received_at).map_err(invalid)? {
            Ok(env) => return Ok(Normalized::Event(Box::new(env))),
            Err(n) => return Ok(n),
        },
        Callback::C2cAfterMsgReport(_) => return Ok(Normalized::Ignored(IgnoreReason::ReadReport)),
        Callback::Other(_) => return Ok(Normalized::Ignored(IgnoreReason::UnconsumedCommand)),
        Callback::GroupAfterCreateGroup(c) => match group_created(c).map_err(invalid)? {
            Some(ev) => ev,
            None => return Ok(Normalized::Ignored(IgnoreReason::UnsupportedGroupType)),
        },
        Callback::GroupAfterGroupDestroyed(d) => {
            if is_avchatroom(&d.group_type) {
                return Ok(Normalized::Ignored(IgnoreReason::UnsupportedGroupType));
            }
            if echo.rest_dismiss_is_echo && d.operator_account.is_none() && query.is_rest_api() {
                return Ok(Normalized::Echo(EchoReason::RestDismiss));
            }
            Event::GroupDismissed(GroupDismissed { group_id: group(&d.group_id).map_err(invalid)? })
        }
        Callback::GroupAfterGroupInfoChanged(c) => {
            if is_avchatroom(&c.group_type) {
                return Ok(Normalized::Ignored(IgnoreReason::UnsupportedGroupType));
            }
            if c.name.is_none() && c.introduction.is_none() && c.notification.is_none() && c.face_url.is_none() {
                return Ok(Normalized::Ignored(IgnoreReason::NoSyncedChange));
            }
            Event::GroupUpdated(GroupUpdated {
                group_id: group(&c.group_id).map_err(invalid)?,
                operator: opt_user("Operator_Account", &c.operator_account).map_err(invalid)?,
                name: c.name.clone(),
                introduction: c.introduction.clone(),
                notification: c.notification.clone(),
                face_url: c.face_url.clone(),
            })
        }
        Callback::GroupAfterNewMemberJoin(j) => {
            if is_avchatroom(&j.group_type) {
                return Ok(Normalized::Ignored(IgnoreReason::UnsupportedGroupType));
            }
            let members = members("NewMemberList", &j.new_member_list, None).map_err(invalid)?;
            if members.is_empty() {
                return Ok(Normalized::Ignored(IgnoreReason::NoMembers));
            }
            Event::MembersJoined(MembersJoined {
                group_id: group(&j.group_id).map_err(invalid)?,
                members,
                operator: opt_user("Operator_Account", &j.operator_account).map_err(invalid)?,
            })
        }
        Callback::GroupAfterMemberExit(e) => match members_left(e).map_err(invalid)? {
            Ok(ev) => ev,
            Err(n) => return Ok(n),
        },
    };
    let group_id = match &event {
        Event::GroupCreated(e) => e.group_id.clone(),
        Event::GroupUpdated(e) => e.group_id.clone(),
        Event::GroupDismissed(e) => e.group_id.clone(),
        Event::MembersJoined(e) => e.group_id.clone(),
        Event::MembersLeft(e) => e.group_id.clone(),
        _ => return Err(invalid("not a group lifecycle event".into())),
    };
    // Serializing a payload struct cannot fail (string keys only); the bytes name what changed.
    let change = serde_json::to_vec(&event).unwrap_or_default();
    let env = Envelope {
        id: EventId::im_group_event(&group_id, command, group_time.as_millis(), &change),
        source: Source::Im,
        conversation: event.conversation(),
        time: group_time,
        recorded_at: Some(received_at),
        event,
    };
    Ok(Normalized::Event(Box::new(env)))
}

fn user(field: &str, s: &str) -> Result<UserId, String> {
    UserId::parse(s).map_err(|e| format!("{field}: {e}"))
}

fn opt_user(field: &str, s: &str) -> Result<Option<UserId>, String> {
    if s.is_empty() { Ok(None) } else { user(field, s).map(Some) }
}

fn group(s: &str) -> Result<GroupId, String> {
    GroupId::parse(s).map_err(|e| format!("GroupId: {e}"))
}

/// Member ids in order, without repeats and without `skip` (a group's owner is not one of its "members").
fn members(field: &str, list: &[MemberAccount], skip: Option<&UserId>) -> Result<Vec<UserId>, String> {
    let mut out: Vec<UserId> = Vec::with_capacity(list.len());
    for m in list {
        let u = user(field, &m.member_account)?;
        if Some(&u) != skip && !out.contains(&u) {
            out.push(u);
        }
    }
    Ok(out)
}

fn is_avchatroom(group_type: &str) -> bool {
    group_type == "AVChatRoom"
}

/// IM's group type names, including the newer aliases (`Work` = Private, `Meeting` = ChatRoom).
fn group_type(s: &str) -> Option<GroupType> {
    match s {
        "Private" | "Work" => Some(GroupType::Private),
        "Public" => Some(GroupType::Public),
        "ChatRoom" | "Meeting" => Some(GroupType::ChatRoom),
        "Community" => Some(GroupType::Community),
        _ => None,
    }
}

/// A message's time: `EventTime` (ms) when IM sent one, else `MsgTime` (s).
fn message_time(event_time_ms: Option<i64>, msg_time_secs: i64, received_at: TimestampMs) -> TimestampMs {
    match event_time_ms {
        Some(ms) if ms > 0 => TimestampMs(ms),
        _ if msg_time_secs > 0 => TimestampMs::from_secs(msg_time_secs),
        _ => received_at,
    }
}

fn c2c_message(m: &C2cAfterSendMsg, received_at: TimestampMs) -> Result<Result<Envelope, Normalized>, String> {
    if m.send_msg_result.is_some_and(|r| r != 0) {
        return Ok(Err(Normalized::Ignored(IgnoreReason::SendFailed)));
    }
    if has_origin_marker(m.cloud_custom_data.as_deref()) {
        return Ok(Err(Normalized::Echo(EchoReason::OriginMarker)));
    }
    let from = user("From_Account", &m.from_account)?;
    let to = user("To_Account", &m.to_account)?;
    // MsgKey is "<MsgSeq>_<MsgRandom>_<MsgTime>"; rebuild it when IM left it out so the id stays stable.
    let msg_key = if m.msg_key.is_empty() {
        if m.msg_seq == 0 && m.msg_random == 0 {
            return Err("neither MsgKey nor MsgSeq/MsgRandom identify the message".into());
        }
        format!("{}_{}_{}", m.msg_seq, m.msg_random, m.msg_time)
    } else {
        m.msg_key.clone()
    };
    let body = from_im_body(&m.msg_body).map_err(|e| format!("MsgBody: {e}"))?;
    let event = Event::C2cMessage(C2cMessage {
        from: from.clone(),
        to,
        body,
        custom_data: m.cloud_custom_data.clone().filter(|s| !s.is_empty()),
    });
    Ok(Ok(Envelope {
        id: EventId::im_c2c(&from, &msg_key),
        source: Source::Im,
        conversation: event.conversation(),
        time: message_time(m.event_time, m.msg_time, received_at),
        recorded_at: Some(received_at),
        event,
    }))
}

fn group_message(m: &GroupAfterSendMsg, received_at: TimestampMs) -> Result<Result<Envelope, Normalized>, String> {
    if is_avchatroom(&m.group_type) {
        return Ok(Err(Normalized::Ignored(IgnoreReason::UnsupportedGroupType)));
    }
    if m.topic_id.as_deref().is_some_and(|t| !t.is_empty()) {
        return Ok(Err(Normalized::Ignored(IgnoreReason::TopicMessage)));
    }
    if has_origin_marker(m.cloud_custom_data.as_deref()) {
        return Ok(Err(Normalized::Echo(EchoReason::OriginMarker)));
    }
    let group_id = group(&m.group_id)?;
    // MsgSeq is the message's identity within its group; 0 would make every such message the same event.
    if m.msg_seq == 0 {
        return Err("MsgSeq is missing".into());
    }
    let from = user("From_Account", &m.from_account)?;
    let body = from_im_body(&m.msg_body).map_err(|e| format!("MsgBody: {e}"))?;
    let event = Event::GroupMessage(GroupMessage {
        group_id: group_id.clone(),
        from,
        body,
        custom_data: m.cloud_custom_data.clone().filter(|s| !s.is_empty()),
    });
    Ok(Ok(Envelope {
        id: EventId::im_group_message(&group_id, m.msg_seq),
        source: Source::Im,
        conversation: event.conversation(),
        time: message_time(m.event_time, m.msg_time, received_at),
        recorded_at: Some(received_at),
        event,
    }))
}

fn group_created(c: &GroupAfterCreateGroup) -> Result<Option<Event>, String> {
    let Some(group_type) = group_type(&c.group_type) else { return Ok(None) };
    let owner = opt_user("Owner_Account", &c.owner_account)?;
    let members = members("MemberList", &c.member_list, owner.as_ref())?;
    let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
    Ok(Some(Event::GroupCreated(GroupCreated {
        group_id: group(&c.group_id)?,
        group_type,
        profile: GroupProfile {
            name: c.name.clone(),
            owner,
            introduction: nonempty(&c.introduction),
            notification: nonempty(&c.notification),
            face_url: nonempty(&c.face_url),
        },
        members,
    })))
}

fn members_left(e: &GroupAfterMemberExit) -> Result<Result<Event, Normalized>, String> {
    if is_avchatroom(&e.group_type) {
        return Ok(Err(Normalized::Ignored(IgnoreReason::UnsupportedGroupType)));
    }
    let members = members("ExitMemberList", &e.exit_member_list, None)?;
    if members.is_empty() {
        return Ok(Err(Normalized::Ignored(IgnoreReason::NoMembers)));
    }
    let reason = match e.exit_type.as_str() {
        "Kicked" => Some(LeaveReason::Kicked),
        "Quit" => Some(LeaveReason::Quit),
        _ => None,
    };
    Ok(Ok(Event::MembersLeft(MembersLeft {
        group_id: group(&e.group_id)?,
        members,
        reason,
        operator: opt_user("Operator_Account", &e.operator_account)?,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_type_aliases() {
        assert_eq!(group_type("Work"), Some(GroupType::Private));
        assert_eq!(group_type("Meeting"), Some(GroupType::ChatRoom));
        assert_eq!(group_type("AVChatRoom"), None);
    }
}
