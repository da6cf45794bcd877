//! A user's conversation list (`recentcontact/get_list`, reference §11.14a): which 1:1 and group conversations
//! exist for a user, with the time of each one's latest message — the IM side's cheap digest for
//! reconciliation.

use serde::{Deserialize, Serialize};

/// `AssistFlags` bit 0: the caller understands pinned conversations.
pub const ASSIST_PINNED: u32 = 1;
/// `AssistFlags` bit 1: also list conversations without messages.
pub const ASSIST_EMPTY: u32 = 2;
/// `AssistFlags` bit 2: page pinned conversations too.
pub const ASSIST_PAGE_PINNED: u32 = 4;
/// `SessionItem.Type` of a 1:1 conversation.
pub const SESSION_C2C: u32 = 1;
/// `SessionItem.Type` of a group conversation.
pub const SESSION_GROUP: u32 = 2;

/// Where a `get_list` page starts: the ordinary and the pinned list's cursors. A response's cursor is the next
/// request's; all 0 for the first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecentContactCursor {
    #[serde(rename = "TimeStamp")]
    pub time_stamp: u64,
    #[serde(rename = "StartIndex")]
    pub start_index: u64,
    #[serde(rename = "TopTimeStamp")]
    pub top_time_stamp: u64,
    #[serde(rename = "TopStartIndex")]
    pub top_start_index: u64,
}

/// `get_list` request: every field is required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecentContactGetListReq {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(flatten)]
    pub cursor: RecentContactCursor,
    #[serde(rename = "AssistFlags")]
    pub assist_flags: u32,
}

impl RecentContactGetListReq {
    /// The first page of `user`'s list, with the flags the documented samples send (7).
    pub fn first(user: impl Into<String>) -> Self {
        Self {
            from_account: user.into(),
            assist_flags: ASSIST_PINNED | ASSIST_EMPTY | ASSIST_PAGE_PINNED,
            ..Self::default()
        }
    }
}

/// One conversation of the list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionItem {
    /// [`SESSION_C2C`] or [`SESSION_GROUP`].
    #[serde(rename = "Type")]
    pub kind: u32,
    /// The peer of a 1:1 conversation.
    #[serde(rename = "To_Account", skip_serializing_if = "Option::is_none")]
    pub to_account: Option<String>,
    /// The group of a group conversation.
    #[serde(rename = "GroupId", skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Unix seconds of the conversation's latest message.
    #[serde(rename = "MsgTime")]
    pub msg_time: u64,
    /// 1 when pinned.
    #[serde(rename = "TopFlag")]
    pub top_flag: u32,
}

/// `get_list` response: one page and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecentContactGetListResp {
    #[serde(rename = "SessionItem")]
    pub session_item: Vec<SessionItem>,
    /// 1 when the list is complete.
    #[serde(rename = "CompleteFlag")]
    pub complete_flag: u32,
    #[serde(flatten)]
    pub cursor: RecentContactCursor,
}
