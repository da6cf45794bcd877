//! Domain identifiers and the rules that derive them.
//!
//! Ids are newtypes over `String` so a user id can never be passed where a group id is expected. Every id
//! that imbridge derives is a pure function of the source's own identifiers: replaying a source produces the
//! same ids, which is what makes apply idempotent and echo detection possible.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} bytes, longer than the {max}-byte limit")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what} contains a control character")]
    ControlChar { what: &'static str },
    #[error("conversation key {0:?} is not `c2c:<a>:<b>`, `group:<id>` or `user:<id>`")]
    BadConversationKey(String),
}

fn check(what: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > max {
        return Err(IdError::TooLong { what, len: s.len(), max });
    }
    if s.chars().any(char::is_control) {
        return Err(IdError::ControlChar { what });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest id IM accepts, in bytes.
            pub const MAX_BYTES: usize = $max;

            /// Checks the id against IM's rules (non-empty, at most `MAX_BYTES` bytes, no control chars).
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check($what, &s, $max)?;
                Ok(Self(s))
            }

            /// Wraps a string without checking it, for ids that came from a trusted source (IM itself).
            pub fn new_unchecked(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A user account id, the same on both sides (IM `UserID`, at most 32 bytes).
    UserId,
    "user id",
    32
);
string_id!(
    /// A group id, the same on both sides (IM custom `GroupId`, at most 48 bytes).
    GroupId,
    "group id",
    48
);

/// A stable event id. See the constructors for how each source's ids map to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// An event the legacy system sent, named by the legacy system's own unique id for it.
    pub fn legacy(legacy_event_id: &str) -> Self {
        Self(format!("legacy:{legacy_event_id}"))
    }

    /// A 1:1 message seen on IM, named by IM's `MsgKey` and the sender (a MsgKey is unique per sender).
    pub fn im_c2c(from: &UserId, msg_key: &str) -> Self {
        Self(format!("im:c2c:{from}:{msg_key}"))
    }

    /// A group message seen on IM: the group's `MsgSeq` is unique within the group.
    pub fn im_group_message(group: &GroupId, msg_seq: u64) -> Self {
        Self(format!("im:gmsg:{group}:{msg_seq}"))
    }

    /// A group lifecycle callback from IM (create, modify, join, leave, dismiss): group + command + time, plus a
    /// digest of what changed (`change`: the normalized event's bytes). Time alone is not unique: two members
    /// quitting one group in the same millisecond are two callbacks of one command at one time, and without the
    /// digest every idempotent consumer downstream would drop the second as a duplicate. A replayed callback
    /// carries the same change, so it still maps to the same id.
    pub fn im_group_event(group: &GroupId, command: &str, event_time_ms: i64, change: &[u8]) -> Self {
        let d = Sha256::digest(change);
        Self(format!("im:gevt:{group}:{command}:{event_time_ms}:{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3]))
    }

    /// A bulk-import record, named by its kind and the export's natural key for it.
    pub fn import(kind: &str, natural_key: &str) -> Self {
        Self(format!("import:{kind}:{natural_key}"))
    }

    /// Wraps an id read back from Kafka or from the wire.
    pub fn from_raw(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A 32-bit value derived from the id, stable across runs and machines. Used as IM's `MsgRandom` /
    /// `Random`, so a replayed send carries the same value and falls into IM's dedup rules.
    pub fn stable_u32(&self) -> u32 {
        stable_u32(self.0.as_bytes())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// First four bytes of SHA-256, big-endian: deterministic and well spread.
pub fn stable_u32(bytes: &[u8]) -> u32 {
    let d = Sha256::digest(bytes);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The Kafka key of everything that must stay in order together: one 1:1 conversation or one group.
///
/// `c2c:<smaller user id>:<larger user id>` compares ids by bytes, so both directions of a chat share a
/// key and a partition; `group:<group id>` for groups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationKey(String);

/// What a conversation key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    C2c,
    Group,
    User,
}

impl ConversationKey {
    pub fn c2c(a: &UserId, b: &UserId) -> Self {
        // Byte order, not char order: `str` comparison in Rust is byte-wise, matching the rule.
        let (lo, hi) = if a.as_str() <= b.as_str() { (a, b) } else { (b, a) };
        Self(format!("c2c:{lo}:{hi}"))
    }

    pub fn group(g: &GroupId) -> Self {
        Self(format!("group:{g}"))
    }

    /// The key of records that belong to one user rather than a conversation (accounts, profiles,
    /// friend lists on the import topics): `user:<user id>`.
    pub fn user(u: &UserId) -> Self {
        Self(format!("user:{u}"))
    }

    /// Validates the shape of a key received from outside (a Kafka key, a command-line argument).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = match s.split_once(':') {
            Some(("group" | "user", rest)) => !rest.is_empty(),
            // User ids may themselves contain ':', so only the shape `c2c:x:y` with both non-empty is checked.
            Some(("c2c", rest)) => rest.split_once(':').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()),
            _ => false,
        };
        if ok { Ok(Self(s.to_owned())) } else { Err(IdError::BadConversationKey(s.to_owned())) }
    }

    pub fn kind(&self) -> ConversationKind {
        if self.0.starts_with("group:") {
            ConversationKind::Group
        } else if self.0.starts_with("user:") {
            ConversationKind::User
        } else {
            ConversationKind::C2c
        }
    }

    /// The group a `group:` key names.
    pub fn group_id(&self) -> Option<GroupId> {
        self.0.strip_prefix("group:").map(GroupId::new_unchecked)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<ConversationKey> for String {
    fn from(k: ConversationKey) -> String {
        k.0
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn c2c_key_is_symmetric_and_byte_ordered() {
        assert_eq!(ConversationKey::c2c(&u("bob"), &u("ann")).as_str(), "c2c:ann:bob");
        assert_eq!(ConversationKey::c2c(&u("ann"), &u("bob")).as_str(), "c2c:ann:bob");
        // 'Z' (0x5a) sorts before 'a' (0x61) in byte order.
        assert_eq!(ConversationKey::c2c(&u("alice"), &u("Zed")).as_str(), "c2c:Zed:alice");
        // Multi-byte UTF-8 sorts after ASCII.
        assert_eq!(ConversationKey::c2c(&u("é"), &u("z")).as_str(), "c2c:z:é");
    }

    #[test]
    fn group_key_and_parse() {
        let g = GroupId::parse("team-1").expect("valid");
        let k = ConversationKey::group(&g);
        assert_eq!(k.as_str(), "group:team-1");
        assert_eq!(k.group_id(), Some(g));
        assert_eq!(ConversationKey::parse("group:team-1"), Ok(k));
        assert!(ConversationKey::parse("c2c:a:b").is_ok());
        assert!(ConversationKey::parse("c2c:a").is_err());
        assert!(ConversationKey::parse("dm:a:b").is_err());
        assert!(ConversationKey::parse("group:").is_err());
    }

    #[test]
    fn user_id_limits() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("x".repeat(32)).is_ok());
        assert!(matches!(UserId::parse("x".repeat(33)), Err(IdError::TooLong { len: 33, .. })));
        assert!(UserId::parse("a\nb").is_err());
    }

    #[test]
    fn event_ids_are_deterministic() {
        assert_eq!(EventId::legacy("m-1").as_str(), "legacy:m-1");
        // Golden value (first four bytes of SHA-256 of "legacy:m-1", computed outside Rust): MsgRandom of every
        // import derives from this, so a change of the derivation would re-import everything as new messages.
        assert_eq!(EventId::legacy("m-1").stable_u32(), 76_533_538);
        assert_eq!(stable_u32(b"legacy:m-2"), 2_870_101_930);
        assert_ne!(EventId::legacy("m-1").stable_u32(), EventId::legacy("m-2").stable_u32());
        let g = GroupId::parse("g").expect("valid");
        assert_eq!(EventId::im_group_message(&g, 7).as_str(), "im:gmsg:g:7");
        let a = EventId::im_group_event(&g, "Group.CallbackAfterMemberExit", 5, b"ann");
        assert_eq!(a, EventId::im_group_event(&g, "Group.CallbackAfterMemberExit", 5, b"ann"));
        assert_ne!(a, EventId::im_group_event(&g, "Group.CallbackAfterMemberExit", 5, b"bob"));
        assert!(a.as_str().starts_with("im:gevt:g:Group.CallbackAfterMemberExit:5:"));
    }
}
