//! The emulated IM's data: accounts with profiles and friends, C2C conversations with unread counters, groups
//! with members and history, and the dedup windows. Plain data behind one mutex; handlers in `handlers/` own the
//! rules. The whole struct is the `--state` snapshot (JSON), so every map is keyed by a string.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// All emulator state.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct State {
    /// Imported accounts by UserID (admins are implicit and never stored).
    pub(crate) accounts: HashMap<String, Account>,
    /// C2C conversations by [`pair_key`].
    pub(crate) conversations: HashMap<String, Conversation>,
    /// `user -> peer -> unread state` of C2C conversations.
    pub(crate) unread: HashMap<String, HashMap<String, C2cUnread>>,
    /// sendmsg dedup window: [`sendmsg_dedup_key`] -> the first send's result.
    pub(crate) sendmsg_dedup: HashMap<String, SentC2c>,
    /// Groups by GroupId.
    pub(crate) groups: HashMap<String, Group>,
    /// Source of insertion order (messages within a second, members, groups); never reused.
    pub(crate) serial: u64,
    /// Calls answered "OK" as a duplicate of an earlier one and not stored again, per API key (served in
    /// `/emulator/stats`, so a test can tell "sent once" from "sent twice, hidden by IM's dedup").
    #[serde(skip)]
    pub(crate) deduplicated: std::collections::BTreeMap<String, u64>,
}

impl State {
    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Counts one call of `api` answered as a duplicate.
    pub(crate) fn count_duplicate(&mut self, api: &str) {
        *self.deduplicated.entry(api.to_owned()).or_default() += 1;
    }

    /// Rebuilds indexes that are not part of the snapshot.
    pub(crate) fn after_load(&mut self) {
        for conv in self.conversations.values_mut() {
            conv.dedup = conv.msgs.iter().map(|m| (m.seq, m.random, m.time)).collect();
        }
    }
}

/// An imported account.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Account {
    /// Profile tags (`Tag_Profile_IM_*`, `Tag_Profile_Custom_*`) to their values as set.
    pub(crate) profile: HashMap<String, Value>,
    /// One-way friend list in insertion order.
    pub(crate) friends: Vec<Friend>,
    /// Version of the standard friend fields (friend_get's `StandardSequence`).
    pub(crate) standard_sequence: u64,
    /// Version of the custom friend fields (`CustomSequence`).
    pub(crate) custom_sequence: u64,
}

/// One entry of a friend list.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Friend {
    pub(crate) to: String,
    pub(crate) add_source: String,
    pub(crate) remark: Option<String>,
    pub(crate) remark_time: Option<u64>,
    pub(crate) groups: Vec<String>,
    pub(crate) add_wording: Option<String>,
    pub(crate) add_time: u64,
    /// `Tag_SNS_Custom_*` tags and values.
    pub(crate) custom: Vec<(String, Value)>,
}

/// The conversation key of a user pair, independent of direction.
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    // UserIDs are printable ASCII, so a control character cannot occur inside one.
    if a <= b { format!("{a}\u{1}{b}") } else { format!("{b}\u{1}{a}") }
}

/// One C2C conversation: both directions, ordered as IM orders history.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Conversation {
    /// Sorted by (time, seq, serial): IM sorts C2C history by timestamp, then by MsgSeq within a second.
    pub(crate) msgs: Vec<C2cMsg>,
    /// importmsg dedup set (MsgSeq, MsgRandom, MsgTimeStamp); rebuilt from `msgs` on load.
    #[serde(skip)]
    pub(crate) dedup: HashSet<(u32, u32, u64)>,
}

impl Conversation {
    /// Inserts keeping the (time, seq, serial) order; appends in the common in-order case.
    pub(crate) fn insert(&mut self, msg: C2cMsg) {
        self.dedup.insert((msg.seq, msg.random, msg.time));
        let key = (msg.time, msg.seq, msg.serial);
        let pos = self.msgs.partition_point(|m| (m.time, m.seq, m.serial) <= key);
        self.msgs.insert(pos, msg);
    }
}

/// A stored C2C message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct C2cMsg {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) seq: u32,
    pub(crate) random: u32,
    /// Unix seconds.
    pub(crate) time: u64,
    /// `MsgBody` exactly as the caller sent it.
    pub(crate) body: Value,
    #[serde(default)]
    pub(crate) cloud_custom_data: Option<String>,
    pub(crate) serial: u64,
    /// Counts toward the recipient's unread (live sends and `SyncFromOldSystem` 5 imports).
    #[serde(default)]
    pub(crate) counts_unread: bool,
    /// Not in the sender's roaming (sendmsg `SyncOtherMachine` 2).
    #[serde(default)]
    pub(crate) hidden_from_sender: bool,
}

impl C2cMsg {
    pub(crate) fn msg_key(&self) -> String {
        msg_key(self.seq, self.random, self.time)
    }
}

/// `{MsgSeq}_{MsgRandom}_{MsgTime}`, the pattern of every documented sample.
pub(crate) fn msg_key(seq: u32, random: u32, time: u64) -> String {
    format!("{seq}_{random}_{time}")
}

/// A user's read state in one C2C conversation.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct C2cUnread {
    /// Messages from the peer counted unread.
    pub(crate) count: u64,
    /// Everything at or before this Unix second is read.
    pub(crate) read_time: u64,
}

/// What the first sendmsg of a dedup key answered, so a duplicate gets the same answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentC2c {
    /// Emulated time (ms) the window closes.
    pub(crate) expires_ms: u64,
    pub(crate) msg_time: u64,
    pub(crate) msg_key: String,
}

pub(crate) fn sendmsg_dedup_key(from: &str, seq: u32, random: u32, crc: u32) -> String {
    format!("{from}\u{1}{seq}\u{1}{random}\u{1}{crc}")
}

/// Member role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
        }
    }
}

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) group_type: String,
    pub(crate) name: String,
    pub(crate) owner: Option<String>,
    pub(crate) introduction: String,
    pub(crate) notification: String,
    pub(crate) face_url: String,
    pub(crate) max_member_num: u64,
    pub(crate) apply_join_option: String,
    pub(crate) mute_all: bool,
    pub(crate) app_defined_data: Vec<(String, String)>,
    /// Unix seconds.
    pub(crate) create_time: u64,
    pub(crate) info_seq: u64,
    pub(crate) last_info_time: u64,
    pub(crate) last_msg_time: u64,
    /// The seq the next message gets; starts at 1.
    pub(crate) next_msg_seq: u64,
    pub(crate) members: HashMap<String, Member>,
    /// Stored messages (and seq-consuming notices) in seq order.
    pub(crate) msgs: Vec<GroupMsg>,
    /// send_group_msg dedup window: Random -> first send's result.
    pub(crate) random_dedup: HashMap<u32, SentGroup>,
    /// Creation order across groups; also the basis of get_appid_group_list's cursor.
    pub(crate) serial: u64,
}

impl Group {
    /// Seq of the latest message (0 when none): a member's unread is `last_seq - read_seq`.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_msg_seq.saturating_sub(1)
    }

    /// Whether this type keeps unread counts (ChatRoom and AVChatRoom do not).
    pub(crate) fn has_unread(&self) -> bool {
        !matches!(self.group_type.as_str(), "ChatRoom" | "AVChatRoom")
    }

    /// Members in join order.
    pub(crate) fn members_in_order(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.serial);
        v
    }
}

/// A group member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Member {
    pub(crate) account: String,
    pub(crate) role: Role,
    /// Unix seconds.
    pub(crate) join_time: u64,
    /// Last seq this member has read (`MsgSeq` in get_group_member_info).
    pub(crate) read_seq: u64,
    pub(crate) last_send_msg_time: u64,
    pub(crate) mute_until: u64,
    pub(crate) name_card: String,
    pub(crate) app_member_defined_data: Vec<(String, String)>,
    /// Join order.
    pub(crate) serial: u64,
}

/// A stored group message or notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupMsg {
    pub(crate) seq: u64,
    pub(crate) from: String,
    /// Unix seconds.
    pub(crate) time: u64,
    pub(crate) random: u32,
    pub(crate) body: Value,
    /// 1 High, 2 Normal, 3 Low, 4 Lowest.
    pub(crate) priority: u8,
    #[serde(default)]
    pub(crate) cloud_custom_data: Option<String>,
    /// A join/leave notice that consumed a seq (IsSystemMsg 1).
    #[serde(default)]
    pub(crate) system: bool,
}

/// What the first send_group_msg of a Random answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentGroup {
    pub(crate) expires_ms: u64,
    pub(crate) msg_seq: u64,
    pub(crate) msg_time: u64,
}
