//! Groups: import (`import_group`, `import_group_member`, `import_group_msg`, `set_unread_msg_num`), live
//! changes (`create_group`, `modify_group_base_info`, `destroy_group`, `add_group_member`,
//! `delete_group_member`, `send_group_msg`) and reads (`get_appid_group_list`, `get_group_info`,
//! `get_group_member_info`, `group_msg_get_simple`) (reference §6, §11.6–11.9).

use imbridge_core::GroupId;
use imbridge_core::event::GroupType;
use imbridge_core::export::GroupProfile;
use serde::{Deserialize, Serialize};

use crate::body::MsgElement;
use crate::types::{KeyValue, MemberAccount};

/// Messages per `import_group_msg` call (documented).
pub const IMPORT_GROUP_MSG_MAX: usize = 7;
/// Members per `import_group_member` call: 100 per the current CN doc, 300 per an English sample; we chunk
/// at the smaller.
pub const IMPORT_GROUP_MEMBER_MAX: usize = 100;
/// Members per `add_group_member` call: 300 (intl doc) vs 20 (current CN doc); we chunk at the smaller.
pub const ADD_GROUP_MEMBER_MAX: usize = 20;
/// Members per `delete_group_member` call (documented).
pub const DELETE_GROUP_MEMBER_MAX: usize = 100;
/// Groups per `get_group_info` call (documented).
pub const GET_GROUP_INFO_MAX: usize = 50;
/// Members per `get_group_member_info` page (current doc: ≤ 200, 100 recommended).
pub const GET_GROUP_MEMBER_INFO_PAGE: u32 = 100;
/// Messages per `group_msg_get_simple` answer (documented).
pub const GROUP_MSG_GET_SIMPLE_MAX: u32 = 20;

/// The `GroupBaseInfoFilter` of a group's profile as an import sets it, plus `NextMsgSeq` (where its history ends):
/// what `imbridge verify` compares and `imbridge export from-im` reads.
pub const GROUP_PROFILE_FIELDS: [&str; 10] = [
    "Type",
    "Name",
    "Owner_Account",
    "Introduction",
    "Notification",
    "FaceUrl",
    "MaxMemberNum",
    "ApplyJoinOption",
    "CreateTime",
    "NextMsgSeq",
];

/// Role name of the owner in member lists.
pub const ROLE_OWNER: &str = "Owner";
/// Role name of an admin; the only role import/create accept.
pub const ROLE_ADMIN: &str = "Admin";
/// Role name of a plain member.
pub const ROLE_MEMBER: &str = "Member";

/// What `import_group` and `create_group` both say of a group: one definition, flattened into each request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupSpec {
    /// `Private`, `Public`, `ChatRoom`, `Community` (import_group refuses AVChatRoom with 10007).
    #[serde(rename = "Type")]
    pub group_type: String,
    #[serde(rename = "Name")]
    pub name: String,
    /// Omitted ⇒ ownerless group.
    #[serde(rename = "Owner_Account", default, skip_serializing_if = "Option::is_none")]
    pub owner_account: Option<String>,
    #[serde(rename = "GroupId", default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(rename = "Introduction", default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(rename = "MaxMemberCount", default, skip_serializing_if = "Option::is_none")]
    pub max_member_count: Option<u32>,
    #[serde(rename = "ApplyJoinOption", default, skip_serializing_if = "Option::is_none")]
    pub apply_join_option: Option<String>,
    #[serde(rename = "AppDefinedData", default, skip_serializing_if = "Option::is_none")]
    pub app_defined_data: Option<Vec<KeyValue>>,
    #[serde(rename = "SupportTopic", default, skip_serializing_if = "Option::is_none")]
    pub support_topic: Option<u32>,
}

impl GroupSpec {
    /// A canonical group as IM takes it: its id, type and profile (the settings IM keeps apart are left unset).
    pub fn of(group_id: &GroupId, group_type: GroupType, profile: &GroupProfile) -> Self {
        Self {
            group_type: group_type.as_str().to_owned(),
            name: profile.name.clone(),
            owner_account: profile.owner.as_ref().map(|o| o.as_str().to_owned()),
            group_id: Some(group_id.as_str().to_owned()),
            introduction: profile.introduction.clone(),
            notification: profile.notification.clone(),
            face_url: profile.face_url.clone(),
            ..Self::default()
        }
    }
}

/// `import_group` request (no callback, no notification).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportGroupReq {
    #[serde(flatten)]
    pub group: GroupSpec,
    /// Unix seconds; default the request time.
    #[serde(rename = "CreateTime", default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
}

/// Response of `import_group`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportGroupResp {
    #[serde(rename = "GroupId")]
    pub group_id: String,
}

/// `import_group_member` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportGroupMemberReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "MemberList")]
    pub member_list: Vec<ImportMember>,
}

/// One member to import.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportMember {
    #[serde(rename = "Member_Account")]
    pub member_account: String,
    /// Only [`ROLE_ADMIN`] is accepted.
    #[serde(rename = "Role", default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Unix seconds; must be after the group's CreateTime and before now, or that member fails.
    #[serde(rename = "JoinTime", default, skip_serializing_if = "Option::is_none")]
    pub join_time: Option<i64>,
    /// Capped at the group's message count.
    #[serde(rename = "UnreadMsgNum", default, skip_serializing_if = "Option::is_none")]
    pub unread_msg_num: Option<u64>,
}

/// Per-member result of `import_group_member` and `add_group_member`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberResult {
    #[serde(rename = "Member_Account")]
    pub member_account: String,
    /// 0 failed, 1 done, 2 already a member (3 = awaiting the invitee, newer docs, UNCONFIRMED).
    #[serde(rename = "Result")]
    pub result: u32,
}

/// `Result` of a member that was not added.
pub const MEMBER_RESULT_FAILED: u32 = 0;
/// `Result` of a member that is now in the group.
pub const MEMBER_RESULT_DONE: u32 = 1;
/// `Result` of a member that already was in the group (success for an idempotent apply).
pub const MEMBER_RESULT_ALREADY: u32 = 2;

/// Response of `import_group_member` and `add_group_member`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberResultsResp {
    #[serde(rename = "MemberList")]
    pub member_list: Vec<MemberResult>,
}

impl MemberResultsResp {
    /// Members that were not added (the call as a whole succeeded).
    pub fn failed(&self) -> impl Iterator<Item = &str> {
        self.member_list.iter().filter(|m| m.result == MEMBER_RESULT_FAILED).map(|m| m.member_account.as_str())
    }
}

/// `import_group_msg` request: at most [`IMPORT_GROUP_MSG_MAX`] messages, ascending `SendTime`, each after
/// the group's creation and latest message and before now. Afterwards every member's unread count is 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportGroupMsgReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    /// 1 = update members' conversation lists.
    #[serde(rename = "RecentContactFlag", default, skip_serializing_if = "Option::is_none")]
    pub recent_contact_flag: Option<u32>,
    #[serde(rename = "MsgList")]
    pub msg_list: Vec<ImportGroupMsgItem>,
}

/// One group message to import.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportGroupMsgItem {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    /// Unix seconds.
    #[serde(rename = "SendTime")]
    pub send_time: i64,
    #[serde(rename = "Random", default, skip_serializing_if = "Option::is_none")]
    pub random: Option<u32>,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "TopicId", default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Whether IM stores it on imported messages is UNCONFIRMED; sent only when set.
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
}

/// Response of `import_group_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportGroupMsgResp {
    /// One entry per message, in request order.
    #[serde(rename = "ImportMsgResult")]
    pub import_msg_result: Vec<ImportMsgResult>,
}

impl ImportGroupMsgResp {
    /// Messages that were not imported, with their index in the request.
    pub fn failed(&self) -> impl Iterator<Item = (usize, &ImportMsgResult)> {
        self.import_msg_result.iter().enumerate().filter(|(_, r)| r.result != 0)
    }
}

/// Per-message result: `Result` 0 ok, 10004 invalid send time, 80001 moderation, 80002 too long.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportMsgResult {
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u64,
    #[serde(rename = "MsgTime")]
    pub msg_time: i64,
    #[serde(rename = "Result")]
    pub result: i64,
}

/// `set_unread_msg_num` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetUnreadMsgNumReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Member_Account")]
    pub member_account: String,
    /// Clamped by IM to the group's message count.
    #[serde(rename = "UnreadMsgNum")]
    pub unread_msg_num: u64,
}

/// `create_group` request (fires `Group.CallbackAfterCreateGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateGroupReq {
    #[serde(flatten)]
    pub group: GroupSpec,
    #[serde(rename = "MemberList", default, skip_serializing_if = "Option::is_none")]
    pub member_list: Option<Vec<CreateGroupMember>>,
}

/// An initial member of `create_group`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateGroupMember {
    #[serde(rename = "Member_Account")]
    pub member_account: String,
    #[serde(rename = "Role", default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(rename = "AppMemberDefinedData", default, skip_serializing_if = "Option::is_none")]
    pub app_member_defined_data: Option<Vec<KeyValue>>,
}

/// Response of `create_group`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateGroupResp {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    /// Community only.
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    /// Community only.
    #[serde(rename = "HugeGroupFlag", skip_serializing_if = "Option::is_none")]
    pub huge_group_flag: Option<u32>,
}

/// `modify_group_base_info` request. Note `MaxMemberNum` here vs `MaxMemberCount` on create/import.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModifyGroupBaseInfoReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Introduction", default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(rename = "MaxMemberNum", default, skip_serializing_if = "Option::is_none")]
    pub max_member_num: Option<u32>,
    #[serde(rename = "ApplyJoinOption", default, skip_serializing_if = "Option::is_none")]
    pub apply_join_option: Option<String>,
    /// `On` / `Off`.
    #[serde(rename = "MuteAllMember", default, skip_serializing_if = "Option::is_none")]
    pub mute_all_member: Option<String>,
    /// Perform the change as this user (newer CN doc).
    #[serde(rename = "From_Account", default, skip_serializing_if = "Option::is_none")]
    pub from_account: Option<String>,
    /// An empty `Value` deletes that key.
    #[serde(rename = "AppDefinedData", default, skip_serializing_if = "Option::is_none")]
    pub app_defined_data: Option<Vec<KeyValue>>,
}

/// `destroy_group` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DestroyGroupReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
}

/// `add_group_member` request (fires `Group.CallbackAfterNewMemberJoin`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddGroupMemberReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    /// 1 = no system notification.
    #[serde(rename = "Silence", default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<u32>,
    #[serde(rename = "MemberList")]
    pub member_list: Vec<MemberAccount>,
}

/// `delete_group_member` request (fires `Group.CallbackAfterMemberExit`, `ExitType: "Kicked"`). Deleting a
/// non-member succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeleteGroupMemberReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "MemberToDel_Account")]
    pub member_to_del_account: Vec<String>,
    /// 1 = only the removed members are notified.
    #[serde(rename = "Silence", default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<u32>,
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `send_group_msg` request. `Random` dedups for 5 minutes: derive it from the event id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SendGroupMsgReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Random")]
    pub random: u32,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    /// Sender; default the admin identity (need not be a member).
    #[serde(rename = "From_Account", default, skip_serializing_if = "Option::is_none")]
    pub from_account: Option<String>,
    /// `High` / `Normal` / `Low`.
    #[serde(rename = "MsgPriority", default, skip_serializing_if = "Option::is_none")]
    pub msg_priority: Option<String>,
    #[serde(rename = "OfflinePushInfo", default, skip_serializing_if = "Option::is_none")]
    pub offline_push_info: Option<serde_json::Value>,
    /// See [`crate::types::c2c::FORBID_AFTER_SEND_CALLBACK`].
    #[serde(rename = "ForbidCallbackControl", default, skip_serializing_if = "Option::is_none")]
    pub forbid_callback_control: Option<Vec<String>>,
    /// 1 = online members only, not stored.
    #[serde(rename = "OnlineOnlyFlag", default, skip_serializing_if = "Option::is_none")]
    pub online_only_flag: Option<u32>,
    #[serde(rename = "SendMsgControl", default, skip_serializing_if = "Option::is_none")]
    pub send_msg_control: Option<Vec<String>>,
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    #[serde(rename = "SupportMessageExtension", default, skip_serializing_if = "Option::is_none")]
    pub support_message_extension: Option<u32>,
    /// Targeted message to ≤ 50 members.
    #[serde(rename = "To_Account", default, skip_serializing_if = "Option::is_none")]
    pub to_account: Option<Vec<String>>,
    #[serde(rename = "TopicId", default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(rename = "GroupAtInfo", default, skip_serializing_if = "Option::is_none")]
    pub group_at_info: Option<Vec<GroupAtInfo>>,
}

/// An @-mention.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAtInfo {
    /// 1 = @all.
    #[serde(rename = "GroupAtAllFlag")]
    pub group_at_all_flag: u32,
    #[serde(rename = "GroupAt_Account", default, skip_serializing_if = "Option::is_none")]
    pub group_at_account: Option<String>,
}

/// Response of `send_group_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendGroupMsgResp {
    /// Unix seconds.
    #[serde(rename = "MsgTime")]
    pub msg_time: i64,
    /// The group sequence the message received.
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u64,
    /// e.g. `MsgFreqCtrl`: the message was dropped by frequency control (meaning UNCONFIRMED).
    #[serde(rename = "MsgDropReason", skip_serializing_if = "Option::is_none")]
    pub msg_drop_reason: Option<String>,
}

/// `get_appid_group_list` request (1 call per second for the whole app).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetAppidGroupListReq {
    /// ≤ 10000.
    #[serde(rename = "Limit", default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Cursor from the previous answer; 0 or absent for the first.
    #[serde(rename = "Next", default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    #[serde(rename = "GroupType", default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
}

/// Response of `get_appid_group_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GetAppidGroupListResp {
    #[serde(rename = "TotalCount")]
    pub total_count: u64,
    #[serde(rename = "GroupIdList")]
    pub group_id_list: Vec<GroupIdItem>,
    /// Opaque cursor; 0 = all groups returned.
    #[serde(rename = "Next")]
    pub next: u64,
}

/// `{"GroupId": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupIdItem {
    #[serde(rename = "GroupId")]
    pub group_id: String,
}

/// `get_group_info` request (≤ [`GET_GROUP_INFO_MAX`] groups).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetGroupInfoReq {
    #[serde(rename = "GroupIdList")]
    pub group_id_list: Vec<String>,
    /// Once present, only the listed fields come back; without it the full member list is included.
    #[serde(rename = "ResponseFilter", default, skip_serializing_if = "Option::is_none")]
    pub response_filter: Option<GroupInfoFilter>,
}

/// Field filter of `get_group_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupInfoFilter {
    #[serde(rename = "GroupBaseInfoFilter", default, skip_serializing_if = "Option::is_none")]
    pub group_base_info_filter: Option<Vec<String>>,
    #[serde(rename = "MemberInfoFilter", default, skip_serializing_if = "Option::is_none")]
    pub member_info_filter: Option<Vec<String>>,
    #[serde(rename = "AppDefinedDataFilter_Group", default, skip_serializing_if = "Option::is_none")]
    pub app_defined_data_filter_group: Option<Vec<String>>,
    #[serde(rename = "AppDefinedDataFilter_GroupMember", default, skip_serializing_if = "Option::is_none")]
    pub app_defined_data_filter_group_member: Option<Vec<String>>,
}

/// Response of `get_group_info`; the top-level code is always 0, each group carries its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GetGroupInfoResp {
    #[serde(rename = "GroupInfo")]
    pub group_info: Vec<GroupInfo>,
}

impl GetGroupInfoResp {
    /// Groups IM could not return (missing or disbanded: 10010 or 10015, UNCONFIRMED which).
    pub fn failed(&self) -> impl Iterator<Item = &GroupInfo> {
        self.group_info.iter().filter(|g| g.error_code != 0)
    }
}

/// Details of one group; fields outside the filter are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupInfo {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    #[serde(rename = "ErrorInfo")]
    pub error_info: String,
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(rename = "Appid", skip_serializing_if = "Option::is_none")]
    pub appid: Option<u64>,
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Introduction", skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// Ownerless groups: absent or `""` (UNCONFIRMED).
    #[serde(rename = "Owner_Account", skip_serializing_if = "Option::is_none")]
    pub owner_account: Option<String>,
    #[serde(rename = "CreateTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    #[serde(rename = "InfoSeq", skip_serializing_if = "Option::is_none")]
    pub info_seq: Option<u64>,
    #[serde(rename = "LastInfoTime", skip_serializing_if = "Option::is_none")]
    pub last_info_time: Option<i64>,
    #[serde(rename = "LastMsgTime", skip_serializing_if = "Option::is_none")]
    pub last_msg_time: Option<i64>,
    /// The seq the next message will get (starts at 1).
    #[serde(rename = "NextMsgSeq", skip_serializing_if = "Option::is_none")]
    pub next_msg_seq: Option<u64>,
    #[serde(rename = "MemberNum", skip_serializing_if = "Option::is_none")]
    pub member_num: Option<u64>,
    #[serde(rename = "MaxMemberNum", skip_serializing_if = "Option::is_none")]
    pub max_member_num: Option<u64>,
    #[serde(rename = "ApplyJoinOption", skip_serializing_if = "Option::is_none")]
    pub apply_join_option: Option<String>,
    /// Older revisions may call it `ShutUpAllMember` (UNCONFIRMED), accepted too.
    #[serde(rename = "MuteAllMember", alias = "ShutUpAllMember", skip_serializing_if = "Option::is_none")]
    pub mute_all_member: Option<String>,
    #[serde(rename = "AppDefinedData", skip_serializing_if = "Option::is_none")]
    pub app_defined_data: Option<Vec<KeyValue>>,
    #[serde(rename = "MemberList", skip_serializing_if = "Option::is_none")]
    pub member_list: Option<Vec<GroupMember>>,
}

/// `get_group_member_info` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetGroupMemberInfoReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Limit", default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// 0-based start (non-Community groups).
    #[serde(rename = "Offset", default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Cursor (Community groups only): `""` first.
    #[serde(rename = "Next", default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Any of `Role`, `JoinTime`, `MsgSeq`, `MsgFlag`, `LastSendMsgTime`, `MuteUntil`, `NameCard`.
    #[serde(rename = "MemberInfoFilter", default, skip_serializing_if = "Option::is_none")]
    pub member_info_filter: Option<Vec<String>>,
    #[serde(rename = "MemberRoleFilter", default, skip_serializing_if = "Option::is_none")]
    pub member_role_filter: Option<Vec<String>>,
    #[serde(rename = "AppDefinedDataFilter_GroupMember", default, skip_serializing_if = "Option::is_none")]
    pub app_defined_data_filter_group_member: Option<Vec<String>>,
}

/// Response of `get_group_member_info`: one page.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GetGroupMemberInfoResp {
    /// Total members of the group, not the page size.
    #[serde(rename = "MemberNum")]
    pub member_num: u64,
    #[serde(rename = "MemberList")]
    pub member_list: Vec<GroupMember>,
    /// Community only.
    #[serde(rename = "Next", skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A member as `get_group_info` / `get_group_member_info` return it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupMember {
    #[serde(rename = "Member_Account")]
    pub member_account: String,
    /// `Owner` / `Admin` / `Member`.
    #[serde(rename = "Role", skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(rename = "JoinTime", skip_serializing_if = "Option::is_none")]
    pub join_time: Option<i64>,
    /// Last group seq this member has read; unread ≈ `NextMsgSeq − 1 − MsgSeq` (UNCONFIRMED inference).
    #[serde(rename = "MsgSeq", skip_serializing_if = "Option::is_none")]
    pub msg_seq: Option<u64>,
    #[serde(rename = "MsgFlag", skip_serializing_if = "Option::is_none")]
    pub msg_flag: Option<String>,
    #[serde(rename = "LastSendMsgTime", skip_serializing_if = "Option::is_none")]
    pub last_send_msg_time: Option<i64>,
    /// Older revisions: `ShutUpUntil`.
    #[serde(rename = "MuteUntil", alias = "ShutUpUntil", skip_serializing_if = "Option::is_none")]
    pub mute_until: Option<i64>,
    #[serde(rename = "NameCard", skip_serializing_if = "Option::is_none")]
    pub name_card: Option<String>,
    #[serde(rename = "AppMemberDefinedData", skip_serializing_if = "Option::is_none")]
    pub app_member_defined_data: Option<Vec<KeyValue>>,
}

/// `group_msg_get_simple` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupMsgGetSimpleReq {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    /// ≤ [`GROUP_MSG_GET_SIMPLE_MAX`].
    #[serde(rename = "ReqMsgNumber")]
    pub req_msg_number: u32,
    /// Only messages with seq ≤ this; absent = from the newest.
    #[serde(rename = "ReqMsgSeq", default, skip_serializing_if = "Option::is_none")]
    pub req_msg_seq: Option<u64>,
    /// 1 = include recalled messages (as `IsPlaceMsg` 2).
    #[serde(rename = "WithRecalledMsg", default, skip_serializing_if = "Option::is_none")]
    pub with_recalled_msg: Option<u32>,
    #[serde(rename = "TopicId", default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

/// Response of `group_msg_get_simple`: newest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupMsgGetSimpleResp {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    /// Describes the requested window only, not the end of history.
    #[serde(rename = "IsFinished")]
    pub is_finished: u32,
    #[serde(rename = "RspMsgList")]
    pub rsp_msg_list: Vec<GroupMsg>,
}

/// A group message from history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupMsg {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    /// 0 normal; 1 hole (expired/deleted, empty body); 2 recalled.
    #[serde(rename = "IsPlaceMsg")]
    pub is_place_msg: u32,
    #[serde(rename = "IsSystemMsg", skip_serializing_if = "Option::is_none")]
    pub is_system_msg: Option<u32>,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    /// An integer here (1 High … 4 Lowest), a string on send.
    #[serde(rename = "MsgPriority", skip_serializing_if = "Option::is_none")]
    pub msg_priority: Option<u32>,
    #[serde(rename = "MsgRandom")]
    pub msg_random: u32,
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u64,
    /// Unix seconds (`SendTime` of imported messages).
    #[serde(rename = "MsgTimeStamp")]
    pub msg_time_stamp: i64,
    #[serde(rename = "MsgKey", skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    #[serde(rename = "CloudCustomData", skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn import_group_msg_matches_official_sample() {
        // The official request sample (as embedded in tencent_im_rs's tests).
        let req = ImportGroupMsgReq {
            group_id: "@TGS#2C5SZEAEF".into(),
            recent_contact_flag: Some(1),
            msg_list: vec![
                ImportGroupMsgItem {
                    from_account: "leckie".into(),
                    send_time: 1620808101,
                    random: Some(8912345),
                    msg_body: vec![
                        MsgElement::text("red packet"),
                        MsgElement::Face(crate::body::FaceElem { index: 6, data: Some("abc\u{0}\u{1}".into()) }),
                    ],
                    ..Default::default()
                },
                ImportGroupMsgItem {
                    from_account: "peter".into(),
                    send_time: 1620892821,
                    msg_body: vec![MsgElement::text("red packet")],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ser"),
            json!({"GroupId":"@TGS#2C5SZEAEF","RecentContactFlag":1,"MsgList":[
                {"From_Account":"leckie","SendTime":1620808101,"Random":8912345,"MsgBody":[
                    {"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}},
                    {"MsgType":"TIMFaceElem","MsgContent":{"Index":6,"Data":"abc\u{0000}\u{0001}"}}]},
                {"From_Account":"peter","SendTime":1620892821,"MsgBody":[
                    {"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}]}]})
        );
        let resp: ImportGroupMsgResp = serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "ImportMsgResult":[{"MsgSeq":1,"MsgTime":1620808101,"Result":0},{"MsgSeq":2,"MsgTime":1620892821,"Result":10004}]}))
        .expect("sample");
        assert_eq!(resp.failed().map(|(i, r)| (i, r.result)).collect::<Vec<_>>(), [(1, 10004)]);
    }

    #[test]
    fn member_results() {
        let r: MemberResultsResp = serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "MemberList":[{"Member_Account":"tommy","Result":1},{"Member_Account":"jared","Result":0},
                          {"Member_Account":"peter","Result":2}]}))
        .expect("sample");
        assert_eq!(r.failed().collect::<Vec<_>>(), ["jared"]);
        let req = ImportGroupMemberReq {
            group_id: "@TGS#1S".into(),
            member_list: vec![ImportMember {
                member_account: "bob".into(),
                role: Some(ROLE_ADMIN.into()),
                join_time: Some(1448357837),
                unread_msg_num: Some(5),
            }],
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ser"),
            json!({"GroupId":"@TGS#1S","MemberList":[{"Member_Account":"bob","Role":"Admin","JoinTime":1448357837,"UnreadMsgNum":5}]})
        );
        let add = AddGroupMemberReq {
            group_id: "g".into(),
            silence: Some(1),
            member_list: vec![MemberAccount::new("tommy")],
        };
        assert_eq!(
            serde_json::to_value(&add).expect("ser"),
            json!({"GroupId":"g","Silence":1,"MemberList":[{"Member_Account":"tommy"}]})
        );
        let del = DeleteGroupMemberReq {
            group_id: "g".into(),
            member_to_del_account: vec!["tommy".into()],
            silence: None,
            reason: Some("kick reason".into()),
        };
        assert_eq!(
            serde_json::to_value(&del).expect("ser"),
            json!({"GroupId":"g","MemberToDel_Account":["tommy"],"Reason":"kick reason"})
        );
    }

    #[test]
    fn create_modify_send() {
        let create = CreateGroupReq {
            group: GroupSpec {
                group_type: "Public".into(),
                name: "TestGroup".into(),
                owner_account: Some("leckie".into()),
                group_id: Some("MyFirstGroup".into()),
                app_defined_data: Some(vec![KeyValue { key: "GroupTestData1".into(), value: "xxxxx".into() }]),
                ..Default::default()
            },
            member_list: Some(vec![CreateGroupMember {
                member_account: "bob".into(),
                role: Some("Admin".into()),
                ..Default::default()
            }]),
        };
        assert_eq!(
            serde_json::to_value(&create).expect("ser"),
            json!({"Type":"Public","Name":"TestGroup","Owner_Account":"leckie","GroupId":"MyFirstGroup",
                "AppDefinedData":[{"Key":"GroupTestData1","Value":"xxxxx"}],
                "MemberList":[{"Member_Account":"bob","Role":"Admin"}]})
        );
        let resp: CreateGroupResp = serde_json::from_value(
            json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"GroupId":"@TGS#2J4SZEAEL"}),
        )
        .expect("sample");
        assert_eq!(resp.group_id, "@TGS#2J4SZEAEL");
        let modify = ModifyGroupBaseInfoReq { group_id: "g".into(), max_member_num: Some(500), ..Default::default() };
        assert_eq!(serde_json::to_value(&modify).expect("ser"), json!({"GroupId":"g","MaxMemberNum":500}));
        let send = SendGroupMsgReq {
            group_id: "@TGS#2C5SZEAEF".into(),
            random: 8912345,
            msg_body: vec![MsgElement::text("red packet")],
            from_account: Some("leckie".into()),
            forbid_callback_control: Some(vec![crate::types::c2c::FORBID_AFTER_SEND_CALLBACK.into()]),
            group_at_info: Some(vec![GroupAtInfo { group_at_all_flag: 0, group_at_account: Some("bob".into()) }]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&send).expect("ser"),
            json!({"GroupId":"@TGS#2C5SZEAEF","Random":8912345,
                "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],"From_Account":"leckie",
                "ForbidCallbackControl":["ForbidAfterSendMsgCallback"],
                "GroupAtInfo":[{"GroupAtAllFlag":0,"GroupAt_Account":"bob"}]})
        );
        let r: SendGroupMsgResp = serde_json::from_value(
            json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"MsgTime":1497238162,"MsgSeq":1,"MsgDropReason":"MsgFreqCtrl"}),
        )
        .expect("sample");
        assert_eq!((r.msg_time, r.msg_seq, r.msg_drop_reason.as_deref()), (1497238162, 1, Some("MsgFreqCtrl")));
    }

    #[test]
    fn read_side_samples() {
        let list: GetAppidGroupListResp = serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "TotalCount":2,"GroupIdList":[{"GroupId":"@TGS#2J4SZEAEL"},{"GroupId":"grp_custom_1"}],"Next":4454685361u64}))
        .expect("sample");
        assert_eq!(list.next, 4_454_685_361);
        assert_eq!(list.group_id_list.len(), 2);

        let info_req = GetGroupInfoReq {
            group_id_list: vec!["@TGS#2J4SZEAEL".into()],
            response_filter: Some(GroupInfoFilter {
                group_base_info_filter: Some(vec!["Type".into(), "Name".into()]),
                ..Default::default()
            }),
        };
        assert_eq!(
            serde_json::to_value(&info_req).expect("ser"),
            json!({"GroupIdList":["@TGS#2J4SZEAEL"],"ResponseFilter":{"GroupBaseInfoFilter":["Type","Name"]}})
        );
        let info: GetGroupInfoResp =
            serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"GroupInfo":[
            {"GroupId":"@TGS#2J4SZEAEL","ErrorCode":0,"ErrorInfo":"","Type":"Public","Name":"team",
             "Owner_Account":"ann","CreateTime":1690000000,"MemberNum":3,"NextMsgSeq":58,"ShutUpAllMember":"Off"},
            {"GroupId":"gone","ErrorCode":10010,"ErrorInfo":"group not found"}]}))
            .expect("sample");
        assert_eq!(info.group_info[0].next_msg_seq, Some(58));
        assert_eq!(info.group_info[0].mute_all_member.as_deref(), Some("Off"));
        assert_eq!(info.failed().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["gone"]);

        let members: GetGroupMemberInfoResp =
            serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "MemberNum":3,"MemberList":[
              {"Member_Account":"ann","Role":"Owner","JoinTime":1690000000,"MsgSeq":57},
              {"Member_Account":"bob","Role":"Member","JoinTime":1690000100,"MsgSeq":40,"ShutUpUntil":0}]}))
            .expect("sample");
        assert_eq!(members.member_num, 3);
        assert_eq!(members.member_list[1].msg_seq, Some(40));
        assert_eq!(members.member_list[1].mute_until, Some(0));

        let hist: GroupMsgGetSimpleResp =
            serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "GroupId":"@TGS#2J4SZEAEL","IsFinished":1,"RspMsgList":[
              {"From_Account":"bob","IsPlaceMsg":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"b"}}],
               "MsgPriority":1,"MsgRandom":51083293,"MsgSeq":57,"MsgTimeStamp":1700000300},
              {"From_Account":"ann","IsPlaceMsg":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"a"}}],
               "MsgPriority":1,"MsgRandom":235168582,"MsgSeq":56,"MsgTimeStamp":1700000200}]}))
            .expect("sample");
        assert_eq!(hist.rsp_msg_list.iter().map(|m| m.msg_seq).collect::<Vec<_>>(), [57, 56]);
        assert_eq!(
            serde_json::to_value(GroupMsgGetSimpleReq {
                group_id: "g".into(),
                req_msg_number: 20,
                ..Default::default()
            })
            .expect("ser"),
            json!({"GroupId":"g","ReqMsgNumber":20})
        );
    }
}
