//! The canonical event envelope and every event kind the pipeline carries.
//!
//! One envelope shape travels on every topic (real-time and import), so the consumer runner, the DLQ and
//! the replay tools treat all of them alike:
//!
//! ```json
//! {"id":"legacy:m-1","source":"legacy","conversation":"c2c:ann:bob","time":1700000000123,
//!  "kind":"c2c.message","payload":{"from":"ann","to":"bob","body":[{"type":"text","text":"hi"}]}}
//! ```
//!
//! `kind` selects the payload type. Real-time kinds (`c2c.message`, `group.*`) flow in both directions;
//! `import.*` kinds are bulk-import records produced by the importer from a legacy export.

use serde::{Deserialize, Serialize};

use crate::body::Element;
use crate::export::{AccountRecord, C2cReadRecord, FriendRecord, GroupProfile, ProfileRecord, Typed};
use crate::ids::{ConversationKey, EventId, GroupId, UserId};
use crate::time::TimestampMs;

/// Which system an event happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Legacy,
    Im,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Legacy => "legacy",
            Source::Im => "im",
        }
    }
}

/// Everything on a Kafka topic is one of these, serialized as JSON, keyed by `conversation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable id derived from the source's own id; the dedup and echo key.
    pub id: EventId,
    pub source: Source,
    /// The ordering key and the Kafka message key.
    pub conversation: ConversationKey,
    /// When it happened on the source.
    pub time: TimestampMs,
    /// When imbridge accepted it (ingest or importer); the start of end-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<TimestampMs>,
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// An event imbridge accepts now (its `recorded_at`), e.g. one a repair writes.
    pub fn recorded_now(
        id: EventId,
        source: Source,
        conversation: ConversationKey,
        time: TimestampMs,
        event: Event,
    ) -> Self {
        Self { id, source, conversation, time, recorded_at: Some(TimestampMs::now()), event }
    }

    pub fn kind(&self) -> EventKind {
        self.event.kind()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these types cannot fail: every map key is a string and no Serialize impl errors.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The payload, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum Event {
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

    #[serde(rename = "import.account")]
    ImportAccount(ImportAccount),
    #[serde(rename = "import.profile")]
    ImportProfile(ImportProfile),
    #[serde(rename = "import.friendship")]
    ImportFriendship(ImportFriendship),
    #[serde(rename = "import.c2c_message")]
    ImportC2cMessage(ImportC2cMessage),
    #[serde(rename = "import.c2c_read")]
    ImportC2cRead(ImportC2cRead),
    #[serde(rename = "import.group")]
    ImportGroup(ImportGroup),
    #[serde(rename = "import.group_member")]
    ImportGroupMember(ImportGroupMember),
    #[serde(rename = "import.group_message")]
    ImportGroupMessage(ImportGroupMessage),
    #[serde(rename = "import.member_unread")]
    ImportMemberUnread(ImportMemberUnread),
    /// Marks the end of one conversation's history import: every earlier record of that key is applied once
    /// this one is handled (per-key order), so live writes into the conversation may start.
    #[serde(rename = "import.conversation_done")]
    ImportConversationDone(ImportConversationDone),
}

/// The `kind` tag as a value: bounded, so it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    C2cMessage,
    GroupMessage,
    GroupCreated,
    GroupUpdated,
    GroupDismissed,
    MembersJoined,
    MembersLeft,
    ImportAccount,
    ImportProfile,
    ImportFriendship,
    ImportC2cMessage,
    ImportC2cRead,
    ImportGroup,
    ImportGroupMember,
    ImportGroupMessage,
    ImportMemberUnread,
    ImportConversationDone,
}

impl EventKind {
    /// The real-time kinds, which flow in both directions.
    pub const REALTIME: [EventKind; 7] = [
        EventKind::C2cMessage,
        EventKind::GroupMessage,
        EventKind::GroupCreated,
        EventKind::GroupUpdated,
        EventKind::GroupDismissed,
        EventKind::MembersJoined,
        EventKind::MembersLeft,
    ];

    /// The bulk-import kinds, in the order an import applies and reports them.
    pub const IMPORT: [EventKind; 10] = [
        EventKind::ImportAccount,
        EventKind::ImportProfile,
        EventKind::ImportFriendship,
        EventKind::ImportC2cMessage,
        EventKind::ImportC2cRead,
        EventKind::ImportGroup,
        EventKind::ImportGroupMember,
        EventKind::ImportGroupMessage,
        EventKind::ImportMemberUnread,
        EventKind::ImportConversationDone,
    ];

    /// Every kind: the real-time ones, then the import ones.
    pub const ALL: [EventKind; 17] = {
        let mut all = [EventKind::C2cMessage; 17];
        let mut i = 0;
        while i < 17 {
            all[i] = if i < 7 { Self::REALTIME[i] } else { Self::IMPORT[i - 7] };
            i += 1;
        }
        all
    };

    /// The wire name (`c2c.message`, `import.group_member`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::C2cMessage => "c2c.message",
            EventKind::GroupMessage => "group.message",
            EventKind::GroupCreated => "group.created",
            EventKind::GroupUpdated => "group.updated",
            EventKind::GroupDismissed => "group.dismissed",
            EventKind::MembersJoined => "group.members_joined",
            EventKind::MembersLeft => "group.members_left",
            EventKind::ImportAccount => "import.account",
            EventKind::ImportProfile => "import.profile",
            EventKind::ImportFriendship => "import.friendship",
            EventKind::ImportC2cMessage => "import.c2c_message",
            EventKind::ImportC2cRead => "import.c2c_read",
            EventKind::ImportGroup => "import.group",
            EventKind::ImportGroupMember => "import.group_member",
            EventKind::ImportGroupMessage => "import.group_message",
            EventKind::ImportMemberUnread => "import.member_unread",
            EventKind::ImportConversationDone => "import.conversation_done",
        }
    }

    pub fn is_import(self) -> bool {
        self.as_str().starts_with("import.")
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::C2cMessage(_) => EventKind::C2cMessage,
            Event::GroupMessage(_) => EventKind::GroupMessage,
            Event::GroupCreated(_) => EventKind::GroupCreated,
            Event::GroupUpdated(_) => EventKind::GroupUpdated,
            Event::GroupDismissed(_) => EventKind::GroupDismissed,
            Event::MembersJoined(_) => EventKind::MembersJoined,
            Event::MembersLeft(_) => EventKind::MembersLeft,
            Event::ImportAccount(_) => EventKind::ImportAccount,
            Event::ImportProfile(_) => EventKind::ImportProfile,
            Event::ImportFriendship(_) => EventKind::ImportFriendship,
            Event::ImportC2cMessage(_) => EventKind::ImportC2cMessage,
            Event::ImportC2cRead(_) => EventKind::ImportC2cRead,
            Event::ImportGroup(_) => EventKind::ImportGroup,
            Event::ImportGroupMember(_) => EventKind::ImportGroupMember,
            Event::ImportGroupMessage(_) => EventKind::ImportGroupMessage,
            Event::ImportMemberUnread(_) => EventKind::ImportMemberUnread,
            Event::ImportConversationDone(_) => EventKind::ImportConversationDone,
        }
    }

    /// The conversation (ordering key) this event belongs to, by the DESIGN.md rule.
    ///
    /// Accounts, profiles and friendships are keyed by their user so one user's records stay in order.
    pub fn conversation(&self) -> ConversationKey {
        let g = ConversationKey::group;
        match self {
            Event::C2cMessage(m) => ConversationKey::c2c(&m.from, &m.to),
            Event::GroupMessage(m) => g(&m.group_id),
            Event::GroupCreated(e) => g(&e.group_id),
            Event::GroupUpdated(e) => g(&e.group_id),
            Event::GroupDismissed(e) => g(&e.group_id),
            Event::MembersJoined(e) => g(&e.group_id),
            Event::MembersLeft(e) => g(&e.group_id),
            Event::ImportAccount(a) => ConversationKey::user(&a.user_id),
            Event::ImportProfile(p) => ConversationKey::user(&p.user_id),
            Event::ImportFriendship(f) => ConversationKey::user(&f.user_id),
            Event::ImportC2cMessage(m) => ConversationKey::c2c(&m.from, &m.to),
            Event::ImportC2cRead(r) => ConversationKey::c2c(&r.user_id, &r.peer_id),
            Event::ImportGroup(e) => g(&e.group_id),
            Event::ImportGroupMember(e) => g(&e.group_id),
            Event::ImportGroupMessage(e) => g(&e.group_id),
            Event::ImportMemberUnread(e) => g(&e.group_id),
            Event::ImportConversationDone(e) => e.conversation.clone(),
        }
    }
}

/// The four group types IM can import and sync (AVChatRoom keeps no history and is out of scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupType {
    Private,
    Public,
    ChatRoom,
    Community,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Private => "Private",
            GroupType::Public => "Public",
            GroupType::ChatRoom => "ChatRoom",
            GroupType::Community => "Community",
        }
    }
}

/// How a group admits new members (IM's `ApplyJoinOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApplyJoin {
    FreeAccess,
    NeedPermission,
    DisableApply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    #[default]
    Member,
    Admin,
    Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Quit,
    Kicked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowType {
    NeedConfirm,
    AllowAny,
    DenyAny,
}

// ---- real-time events -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2cMessage {
    pub from: UserId,
    pub to: UserId,
    pub body: Vec<Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMessage {
    pub group_id: GroupId,
    pub from: UserId,
    pub body: Vec<Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCreated {
    pub group_id: GroupId,
    pub group_type: GroupType,
    #[serde(flatten)]
    pub profile: GroupProfile,
    /// Initial members other than the owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<UserId>,
}

/// A profile change: only the fields that changed are present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupUpdated {
    pub group_id: GroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDismissed {
    pub group_id: GroupId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersJoined {
    pub group_id: GroupId,
    pub members: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersLeft {
    pub group_id: GroupId,
    pub members: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<LeaveReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<UserId>,
}

// ---- bulk-import records ----------------------------------------------------------------------

// The records whose payload is exactly an export line are that line in the domain types, so the export format
// and the import topics cannot drift apart.

/// `import.account`: an `accounts.ndjson` line.
pub type ImportAccount = AccountRecord<Typed>;

/// `import.profile`: a `profiles.ndjson` line.
pub type ImportProfile = ProfileRecord<Typed>;

/// `import.friendship`: a `friends.ndjson` line, one direction of a friendship.
pub type ImportFriendship = FriendRecord<Typed>;

/// A 1:1 history message. `msg_seq` follows legacy order within the conversation (assigned by the
/// importer) so IM sorts same-second messages correctly and dedups a re-import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportC2cMessage {
    pub legacy_id: String,
    pub from: UserId,
    pub to: UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    pub msg_seq: u32,
}

/// `import.c2c_read`: a `c2c_reads.ndjson` line.
pub type ImportC2cRead = C2cReadRecord<Typed>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportGroup {
    pub group_id: GroupId,
    pub group_type: GroupType,
    #[serde(flatten)]
    pub profile: GroupProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_join: Option<ApplyJoin>,
    pub created_at: TimestampMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportGroupMember {
    pub group_id: GroupId,
    pub user_id: UserId,
    #[serde(default)]
    pub role: MemberRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<TimestampMs>,
}

/// A group history message; `ordinal` is its 1-based position in the group's legacy order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportGroupMessage {
    pub legacy_id: String,
    pub group_id: GroupId,
    pub from: UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<Element>,
    pub ordinal: u64,
}

/// A member's unread count in a group, set after the group's history (importing messages zeroes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportMemberUnread {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub unread: u32,
}

/// The end of one conversation's (or group's) history import. Produced by the importer after the last
/// history record of that key, on the same topic and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportConversationDone {
    pub conversation: ConversationKey,
    /// History records of this conversation in the import (for reports and verification).
    pub records: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_shape() {
        let from = UserId::parse("bob").expect("valid");
        let to = UserId::parse("ann").expect("valid");
        let ev = Event::C2cMessage(C2cMessage {
            from: from.clone(),
            to: to.clone(),
            body: vec![Element::Text { text: "hi".into() }],
            custom_data: None,
        });
        let env = Envelope {
            id: EventId::legacy("m-1"),
            source: Source::Legacy,
            conversation: ev.conversation(),
            time: TimestampMs(1_700_000_000_123),
            recorded_at: None,
            event: ev,
        };
        let v: serde_json::Value = serde_json::from_slice(&env.to_json()).expect("json");
        assert_eq!(v["kind"], "c2c.message");
        assert_eq!(v["conversation"], "c2c:ann:bob");
        assert_eq!(v["payload"]["from"], "bob");
        assert_eq!(Envelope::from_json(&env.to_json()).expect("parse"), env);
    }

    #[test]
    fn kinds_are_distinct() {
        let names: std::collections::BTreeSet<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert!(EventKind::REALTIME.iter().all(|k| !k.is_import()));
        assert!(EventKind::IMPORT.iter().all(|k| k.is_import()));
    }
}
