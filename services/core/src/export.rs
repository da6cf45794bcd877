//! The legacy export's records: one definition of every line an export file holds, for every reader and writer.
//!
//! An export is a directory of NDJSON files, one per [`ExportKind`]; `schemas/export/*.schema.json` describes
//! each line. Every record type is generic over a [`Form`], which says how ids, the group type and body elements
//! are held, so the same field list serves both sides of the format:
//!
//! - [`Written`] (the default): as a file holds them, ids and group type as plain strings. The importer reads
//!   this form strictly (line-numbered errors naming the field, then its own validation against IM's limits),
//!   and the sample generator writes it;
//! - [`Typed`]: the domain types. The legacy emulator keeps its data in this form, writes its export from it and
//!   seeds from it (leniently: serde's checks, then the emulator's own); the import events whose payload is
//!   exactly a record (`import.account`, `import.profile`, `import.friendship`, `import.c2c_read`) are these.
//!
//! Field names and optionality are the format's: an absent optional field stays absent on the way back out.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::body::{Element, ExportElement};
use crate::event::{AllowType, ApplyJoin, Gender, GroupType, MemberRole};
use crate::ids::{GroupId, UserId};
use crate::time::TimestampMs;

/// How a record holds the values whose domain type checks something: ids, the group type, body elements.
pub trait Form {
    type UserId: RecordValue;
    type GroupId: RecordValue;
    type GroupType: RecordValue;
    type Element: RecordValue;
}

/// What a record needs of each value it holds (so the records' derives need no bounds of their own).
pub trait RecordValue: fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned {}

impl<T: fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned> RecordValue for T {}

/// Records as an export file holds them, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written;

impl Form for Written {
    type UserId = String;
    type GroupId = String;
    /// Kept a string so an unsupported type (`AVChatRoom`) gets a precise reason.
    type GroupType = String;
    /// Unknown element fields are ignored, as the format promises.
    type Element = ExportElement;
}

/// Records in the domain types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed;

impl Form for Typed {
    type UserId = UserId;
    type GroupId = GroupId;
    type GroupType = GroupType;
    type Element = Element;
}

/// The record kinds of an export, in the order they are validated (each may refer only to earlier ones,
/// except that a group's owner is checked against the members that follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    Accounts,
    Profiles,
    Friends,
    Groups,
    GroupMembers,
    C2cMessages,
    C2cReads,
    GroupMessages,
}

impl ExportKind {
    /// Every kind, in validation order.
    pub const ALL: [ExportKind; 8] = [
        ExportKind::Accounts,
        ExportKind::Profiles,
        ExportKind::Friends,
        ExportKind::Groups,
        ExportKind::GroupMembers,
        ExportKind::C2cMessages,
        ExportKind::C2cReads,
        ExportKind::GroupMessages,
    ];

    /// The file name without extension, which is also the kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Accounts => "accounts",
            ExportKind::Profiles => "profiles",
            ExportKind::Friends => "friends",
            ExportKind::Groups => "groups",
            ExportKind::GroupMembers => "group_members",
            ExportKind::C2cMessages => "c2c_messages",
            ExportKind::C2cReads => "c2c_reads",
            ExportKind::GroupMessages => "group_messages",
        }
    }

    /// `accounts.ndjson`, …
    pub fn file_name(self) -> String {
        format!("{}.ndjson", self.as_str())
    }
}

impl fmt::Display for ExportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `accounts.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct AccountRecord<F: Form = Written> {
    pub user_id: F::UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
}

/// `profiles.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ProfileRecord<F: Form = Written> {
    pub user_id: F::UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    /// `YYYYMMDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_type: Option<AllowType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<u32>,
    /// Custom profile fields, name → value; IM tag `Tag_Profile_Custom_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
}

/// `friends.ndjson`: one direction of a friendship, `user_id`'s list gains `friend_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct FriendRecord<F: Form = Written> {
    pub user_id: F::UserId,
    pub friend_id: F::UserId,
    /// Keyword; IM's `AddSource_Type_<keyword>`.
    pub add_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_wording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<TimestampMs>,
}

/// `c2c_messages.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct C2cMessageRecord<F: Form = Written> {
    pub id: String,
    pub from: F::UserId,
    pub to: F::UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<F::Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
}

/// `c2c_reads.ndjson`: `user_id` has read every message from `peer_id` sent at or before `read_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct C2cReadRecord<F: Form = Written> {
    pub user_id: F::UserId,
    pub peer_id: F::UserId,
    pub read_at: TimestampMs,
}

/// A group's profile: the fields every shape of a group holds alike, flattened into each (`groups.ndjson`, the
/// `group.created` and `import.group` events, the legacy read endpoint's group state). Id and type stay with each
/// shape, because `groups.ndjson` calls the type `type` where the others say `group_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct GroupProfile<F: Form = Typed> {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<F::UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
}

impl<F: Form> GroupProfile<F> {
    /// A profile with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), owner: None, introduction: None, notification: None, face_url: None }
    }

    /// The same profile in another form, its owner converted by `owner`.
    pub fn try_into_form<G: Form, E>(
        self,
        owner: impl FnOnce(F::UserId) -> Result<G::UserId, E>,
    ) -> Result<GroupProfile<G>, E> {
        let Self { name, owner: o, introduction, notification, face_url } = self;
        Ok(GroupProfile { name, owner: o.map(owner).transpose()?, introduction, notification, face_url })
    }
}

/// `groups.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct GroupRecord<F: Form = Written> {
    pub group_id: F::GroupId,
    #[serde(rename = "type")]
    pub group_type: F::GroupType,
    #[serde(flatten)]
    pub profile: GroupProfile<F>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_join: Option<ApplyJoin>,
    pub created_at: TimestampMs,
}

/// `group_members.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct GroupMemberRecord<F: Form = Written> {
    pub group_id: F::GroupId,
    pub user_id: F::UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MemberRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<TimestampMs>,
    /// Messages from others since the member last read the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

/// `group_messages.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct GroupMessageRecord<F: Form = Written> {
    pub id: String,
    pub group_id: F::GroupId,
    pub from: F::UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<F::Element>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_write_the_same_line() {
        let line = r#"{"group_id":"g1","type":"Public","name":"G","owner":"ann","created_at":1700000000000}"#;
        let written: GroupRecord = serde_json::from_str(line).expect("written");
        let typed: GroupRecord<Typed> = serde_json::from_str(line).expect("typed");
        assert_eq!(typed.group_type, GroupType::Public);
        assert_eq!(serde_json::to_string(&written).expect("ser"), line);
        assert_eq!(serde_json::to_string(&typed).expect("ser"), line);
        assert!(serde_json::from_str::<GroupRecord<Typed>>(&line.replace("Public", "AVChatRoom")).is_err());
        assert!(serde_json::from_str::<GroupRecord>(&line.replace("Public", "AVChatRoom")).is_ok());
    }
}
