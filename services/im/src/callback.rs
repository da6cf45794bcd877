//! Callbacks IM POSTs to the app backend (reference §7): the query every callback carries, its optional
//! token signature, and the payloads imbridge consumes.
//!
//! Verify the query first ([`verify_callback_query`]), then parse the body ([`Callback::parse`]). Every
//! payload ignores unknown fields and accepts `EventTime` as a number or a string, because the docs show
//! both. Commands imbridge does not consume parse as [`Callback::Other`] so the receiver can acknowledge
//! them without failing. The structs also serialize, so the emulator sends exactly what the receiver parses.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::body::MsgElement;
use crate::types::group::GroupAtInfo;
use crate::types::{KeyValue, MemberAccount, opt_int_or_string};

/// Largest accepted difference between `RequestTime` and now, in seconds (reference §7.2: one minute).
pub const MAX_REQUEST_AGE_SECS: u64 = 60;

/// `OptPlatform` of events caused by a REST API call (imbridge's own writes, or another backend's).
pub const OPT_PLATFORM_REST: &str = "RESTAPI";

/// The query parameters IM appends to the callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallbackQuery {
    /// The app id (note IM's spelling).
    #[serde(rename = "SdkAppid", default, skip_serializing_if = "Option::is_none")]
    pub sdk_appid: Option<String>,
    #[serde(rename = "CallbackCommand", default, skip_serializing_if = "Option::is_none")]
    pub callback_command: Option<String>,
    #[serde(rename = "contenttype", default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// IP of the client that caused the event.
    #[serde(rename = "ClientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `RESTAPI`, `Web`, `Android`, `iOS`, `Windows`, `Mac`, `iPad`, `Unknown`.
    #[serde(rename = "OptPlatform", default, skip_serializing_if = "Option::is_none")]
    pub opt_platform: Option<String>,
    /// Lower-case hex SHA-256 of token + `RequestTime`, when callback authentication is on.
    #[serde(rename = "Sign", default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<String>,
    /// Unix seconds, when callback authentication is on.
    #[serde(rename = "RequestTime", default, skip_serializing_if = "Option::is_none")]
    pub request_time: Option<String>,
}

impl CallbackQuery {
    /// True when the event was caused by a REST call rather than a client app.
    pub fn is_rest_api(&self) -> bool {
        self.opt_platform.as_deref() == Some(OPT_PLATFORM_REST)
    }
}

/// Why a callback's query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackAuthError {
    #[error("callback has no SdkAppid")]
    MissingSdkAppid,
    #[error("callback SdkAppid {got:?} is not ours ({expected})")]
    SdkAppidMismatch { expected: u64, got: String },
    #[error("callback has no Sign although a token is configured")]
    MissingSign,
    #[error("callback has no RequestTime although a token is configured")]
    MissingRequestTime,
    #[error("callback RequestTime {0:?} is not a Unix time")]
    BadRequestTime(String),
    #[error("callback RequestTime {request_time} is more than 60 s from now ({now})")]
    Stale { request_time: u64, now: u64 },
    #[error("callback Sign does not match")]
    BadSign,
}

/// The key of imbridge's origin marker inside a message's `CloudCustomData` JSON object: to-im writes it on every
/// message it sends, so a callback or a history entry carrying it is imbridge's own echo.
pub const ORIGIN_MARKER_KEY: &str = "imbridge_origin";

/// True when `CloudCustomData` is a JSON object carrying imbridge's origin marker.
pub fn has_origin_marker(cloud_custom_data: Option<&str>) -> bool {
    let Some(s) = cloud_custom_data.map(str::trim).filter(|s| s.starts_with('{')) else { return false };
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s)
        .is_ok_and(|m| m.contains_key(ORIGIN_MARKER_KEY))
}

/// `Sign` for a token and request time: lower-case hex of SHA-256(token + request_time) (reference §7.2;
/// plain concatenation, no HMAC).
pub fn sign(token: &str, request_time: u64) -> String {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update(request_time.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length of a hex SHA-256 is public; only the content must not leak through timing.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a callback's query: `SdkAppid` must be ours (IM requires the receiver to check it); with a token,
/// `Sign` must match and `RequestTime` be within [`MAX_REQUEST_AGE_SECS`] of `now_secs` (replay protection).
pub fn verify_callback_query(
    query: &CallbackQuery,
    expected_sdkappid: u64,
    token: Option<&str>,
    now_secs: u64,
) -> Result<(), CallbackAuthError> {
    let got = query.sdk_appid.as_deref().ok_or(CallbackAuthError::MissingSdkAppid)?;
    if got.trim().parse::<u64>().ok() != Some(expected_sdkappid) {
        return Err(CallbackAuthError::SdkAppidMismatch { expected: expected_sdkappid, got: got.to_owned() });
    }
    let Some(token) = token else { return Ok(()) };
    let given = query.sign.as_deref().ok_or(CallbackAuthError::MissingSign)?;
    let rt_raw = query.request_time.as_deref().ok_or(CallbackAuthError::MissingRequestTime)?;
    let request_time: u64 = rt_raw.trim().parse().map_err(|_| CallbackAuthError::BadRequestTime(rt_raw.to_owned()))?;
    // Sign over the time exactly as sent, so a zero-padded time is not silently re-formatted.
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update(rt_raw.as_bytes());
    let expected = hex::encode(h.finalize());
    if !constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
        return Err(CallbackAuthError::BadSign);
    }
    if now_secs.abs_diff(request_time) > MAX_REQUEST_AGE_SECS {
        return Err(CallbackAuthError::Stale { request_time, now: now_secs });
    }
    Ok(())
}

/// Why a callback body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackParseError {
    #[error("callback body is not a JSON object: {0}")]
    Json(String),
    #[error("callback has no CallbackCommand")]
    MissingCommand,
    #[error("callback command {body:?} in the body differs from {query:?} in the query")]
    CommandMismatch { query: String, body: String },
    #[error("{command} payload: {reason}")]
    Payload { command: String, reason: String },
}

/// `C2C.CallbackAfterSendMsg`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct C2cAfterSendMsg {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "MsgSeq", default)]
    pub msg_seq: u32,
    #[serde(rename = "MsgRandom", default)]
    pub msg_random: u32,
    /// Unix seconds.
    #[serde(rename = "MsgTime", default)]
    pub msg_time: i64,
    #[serde(rename = "MsgKey", default)]
    pub msg_key: String,
    #[serde(rename = "MsgId", default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(rename = "OnlineOnlyFlag", default, skip_serializing_if = "Option::is_none")]
    pub online_only_flag: Option<u32>,
    /// 0 = delivered. The callback fires even when delivery failed.
    #[serde(rename = "SendMsgResult", default, skip_serializing_if = "Option::is_none")]
    pub send_msg_result: Option<i64>,
    #[serde(rename = "ErrorInfo", default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    /// Recipient's total C2C unread (−1 on failure).
    #[serde(rename = "UnreadMsgNum", default, skip_serializing_if = "Option::is_none")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    /// Milliseconds; presence on C2C callbacks is UNCONFIRMED.
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `C2C.CallbackAfterMsgReport`: `report_account` read the conversation with `peer_account`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct C2cAfterMsgReport {
    #[serde(rename = "Report_Account")]
    pub report_account: String,
    #[serde(rename = "Peer_Account")]
    pub peer_account: String,
    /// Unix seconds: everything before it is read.
    #[serde(rename = "LastReadTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub last_read_time: Option<i64>,
    #[serde(rename = "UnreadMsgNum", default, skip_serializing_if = "Option::is_none")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterCreateGroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAfterCreateGroup {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    #[serde(rename = "Operator_Account", default)]
    pub operator_account: String,
    #[serde(rename = "Owner_Account", default)]
    pub owner_account: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Introduction", default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(rename = "MemberList", default)]
    pub member_list: Vec<MemberAccount>,
    #[serde(rename = "UserDefinedDataList", default, skip_serializing_if = "Option::is_none")]
    pub user_defined_data_list: Option<Vec<KeyValue>>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterGroupDestroyed`. No `Operator_Account` is documented; kept if IM sends one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAfterGroupDestroyed {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    #[serde(rename = "Owner_Account", default)]
    pub owner_account: String,
    #[serde(rename = "Operator_Account", default, skip_serializing_if = "Option::is_none")]
    pub operator_account: Option<String>,
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Omitted for Community groups.
    #[serde(rename = "MemberList", default)]
    pub member_list: Vec<MemberAccount>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterGroupInfoChanged`: only the changed fields among name/intro/notification/face.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAfterGroupInfoChanged {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    #[serde(rename = "Operator_Account", default)]
    pub operator_account: String,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Introduction", default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterNewMemberJoin`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAfterNewMemberJoin {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    /// `Apply` or `Invited` (REST `add_group_member`: believed `Invited`, UNCONFIRMED).
    #[serde(rename = "JoinType", default)]
    pub join_type: String,
    #[serde(rename = "Operator_Account", default)]
    pub operator_account: String,
    #[serde(rename = "NewMemberList", default)]
    pub new_member_list: Vec<MemberAccount>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterMemberExit`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupAfterMemberExit {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    /// `Kicked` or `Quit`.
    #[serde(rename = "ExitType", default)]
    pub exit_type: String,
    #[serde(rename = "Operator_Account", default)]
    pub operator_account: String,
    #[serde(rename = "ExitMemberList", default)]
    pub exit_member_list: Vec<MemberAccount>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// `Group.CallbackAfterSendMsg`. Group callbacks call the random field `Random` (C2C: `MsgRandom`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupAfterSendMsg {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default)]
    pub group_type: String,
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "Operator_Account", default)]
    pub operator_account: String,
    #[serde(rename = "Random", default)]
    pub random: u32,
    #[serde(rename = "MsgSeq", default)]
    pub msg_seq: u64,
    #[serde(rename = "MsgId", default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Unix seconds.
    #[serde(rename = "MsgTime", default)]
    pub msg_time: i64,
    #[serde(rename = "OnlineOnlyFlag", default, skip_serializing_if = "Option::is_none")]
    pub online_only_flag: Option<u32>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    #[serde(rename = "TopicId", default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(rename = "GroupAtInfo", default, skip_serializing_if = "Option::is_none")]
    pub group_at_info: Option<Vec<GroupAtInfo>>,
    #[serde(rename = "EventTime", default, with = "opt_int_or_string", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
}

/// A parsed callback, by `CallbackCommand`.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    C2cAfterSendMsg(C2cAfterSendMsg),
    C2cAfterMsgReport(C2cAfterMsgReport),
    GroupAfterCreateGroup(GroupAfterCreateGroup),
    GroupAfterGroupDestroyed(GroupAfterGroupDestroyed),
    GroupAfterGroupInfoChanged(GroupAfterGroupInfoChanged),
    GroupAfterNewMemberJoin(GroupAfterNewMemberJoin),
    GroupAfterMemberExit(GroupAfterMemberExit),
    GroupAfterSendMsg(GroupAfterSendMsg),
    /// A command imbridge does not consume (acknowledge it and move on).
    Other(String),
}

/// The `CallbackCommand` strings imbridge consumes.
pub mod commands {
    pub const C2C_AFTER_SEND_MSG: &str = "C2C.CallbackAfterSendMsg";
    pub const C2C_AFTER_MSG_REPORT: &str = "C2C.CallbackAfterMsgReport";
    pub const GROUP_AFTER_CREATE_GROUP: &str = "Group.CallbackAfterCreateGroup";
    pub const GROUP_AFTER_GROUP_DESTROYED: &str = "Group.CallbackAfterGroupDestroyed";
    pub const GROUP_AFTER_GROUP_INFO_CHANGED: &str = "Group.CallbackAfterGroupInfoChanged";
    pub const GROUP_AFTER_NEW_MEMBER_JOIN: &str = "Group.CallbackAfterNewMemberJoin";
    pub const GROUP_AFTER_MEMBER_EXIT: &str = "Group.CallbackAfterMemberExit";
    pub const GROUP_AFTER_SEND_MSG: &str = "Group.CallbackAfterSendMsg";
}

impl Callback {
    /// Parses a callback body. The command comes from the body's `CallbackCommand`, or from the query when
    /// the body lacks it; if both are present they must agree.
    pub fn parse(body: &[u8], query_command: Option<&str>) -> Result<Self, CallbackParseError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| CallbackParseError::Json(e.to_string()))?;
        let obj = value.as_object().ok_or_else(|| CallbackParseError::Json("not an object".into()))?;
        let body_command = obj.get("CallbackCommand").and_then(|v| v.as_str()).filter(|s| !s.is_empty());
        let command = match (body_command, query_command.filter(|s| !s.is_empty())) {
            (Some(b), Some(q)) if b != q => {
                return Err(CallbackParseError::CommandMismatch { query: q.to_owned(), body: b.to_owned() });
            }
            (Some(c), _) | (None, Some(c)) => c.to_owned(),
            (None, None) => return Err(CallbackParseError::MissingCommand),
        };
        fn payload<T: serde::de::DeserializeOwned>(c: &str, v: serde_json::Value) -> Result<T, CallbackParseError> {
            serde_json::from_value(v)
                .map_err(|e| CallbackParseError::Payload { command: c.to_owned(), reason: e.to_string() })
        }
        use commands::*;
        let c = command.as_str();
        Ok(match c {
            C2C_AFTER_SEND_MSG => Callback::C2cAfterSendMsg(payload(c, value)?),
            C2C_AFTER_MSG_REPORT => Callback::C2cAfterMsgReport(payload(c, value)?),
            GROUP_AFTER_CREATE_GROUP => Callback::GroupAfterCreateGroup(payload(c, value)?),
            GROUP_AFTER_GROUP_DESTROYED => Callback::GroupAfterGroupDestroyed(payload(c, value)?),
            GROUP_AFTER_GROUP_INFO_CHANGED => Callback::GroupAfterGroupInfoChanged(payload(c, value)?),
            GROUP_AFTER_NEW_MEMBER_JOIN => Callback::GroupAfterNewMemberJoin(payload(c, value)?),
            GROUP_AFTER_MEMBER_EXIT => Callback::GroupAfterMemberExit(payload(c, value)?),
            GROUP_AFTER_SEND_MSG => Callback::GroupAfterSendMsg(payload(c, value)?),
            _ => Callback::Other(command),
        })
    }

    /// The `CallbackCommand`.
    pub fn command(&self) -> &str {
        use commands::*;
        match self {
            Callback::C2cAfterSendMsg(_) => C2C_AFTER_SEND_MSG,
            Callback::C2cAfterMsgReport(_) => C2C_AFTER_MSG_REPORT,
            Callback::GroupAfterCreateGroup(_) => GROUP_AFTER_CREATE_GROUP,
            Callback::GroupAfterGroupDestroyed(_) => GROUP_AFTER_GROUP_DESTROYED,
            Callback::GroupAfterGroupInfoChanged(_) => GROUP_AFTER_GROUP_INFO_CHANGED,
            Callback::GroupAfterNewMemberJoin(_) => GROUP_AFTER_NEW_MEMBER_JOIN,
            Callback::GroupAfterMemberExit(_) => GROUP_AFTER_MEMBER_EXIT,
            Callback::GroupAfterSendMsg(_) => GROUP_AFTER_SEND_MSG,
            Callback::Other(c) => c,
        }
    }

    /// Who performed the operation, when the payload says (used to drop imbridge's own echoes).
    pub fn operator_account(&self) -> Option<&str> {
        match self {
            Callback::C2cAfterSendMsg(c) => Some(c.from_account.as_str()),
            Callback::C2cAfterMsgReport(c) => Some(c.report_account.as_str()),
            Callback::GroupAfterCreateGroup(c) => Some(c.operator_account.as_str()),
            Callback::GroupAfterGroupDestroyed(c) => c.operator_account.as_deref(),
            Callback::GroupAfterGroupInfoChanged(c) => Some(c.operator_account.as_str()),
            Callback::GroupAfterNewMemberJoin(c) => Some(c.operator_account.as_str()),
            Callback::GroupAfterMemberExit(c) => Some(c.operator_account.as_str()),
            Callback::GroupAfterSendMsg(c) => Some(c.operator_account.as_str()),
            Callback::Other(_) => None,
        }
        .filter(|s| !s.is_empty())
    }

    /// `EventTime` in milliseconds, when present.
    pub fn event_time_ms(&self) -> Option<i64> {
        match self {
            Callback::C2cAfterSendMsg(c) => c.event_time,
            Callback::C2cAfterMsgReport(c) => c.event_time,
            Callback::GroupAfterCreateGroup(c) => c.event_time,
            Callback::GroupAfterGroupDestroyed(c) => c.event_time,
            Callback::GroupAfterGroupInfoChanged(c) => c.event_time,
            Callback::GroupAfterNewMemberJoin(c) => c.event_time,
            Callback::GroupAfterMemberExit(c) => c.event_time,
            Callback::GroupAfterSendMsg(c) => c.event_time,
            Callback::Other(_) => None,
        }
    }

    /// The JSON body IM would send for this callback, `CallbackCommand` included (for the emulator).
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Callback::C2cAfterSendMsg(c) => serde_json::to_value(c),
            Callback::C2cAfterMsgReport(c) => serde_json::to_value(c),
            Callback::GroupAfterCreateGroup(c) => serde_json::to_value(c),
            Callback::GroupAfterGroupDestroyed(c) => serde_json::to_value(c),
            Callback::GroupAfterGroupInfoChanged(c) => serde_json::to_value(c),
            Callback::GroupAfterNewMemberJoin(c) => serde_json::to_value(c),
            Callback::GroupAfterMemberExit(c) => serde_json::to_value(c),
            Callback::GroupAfterSendMsg(c) => serde_json::to_value(c),
            Callback::Other(_) => Ok(serde_json::Value::Object(Default::default())),
        };
        // These structs only hold strings, numbers and lists, which always serialize.
        let mut v = v.unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        if let Some(obj) = v.as_object_mut() {
            obj.insert("CallbackCommand".into(), self.command().into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(appid: &str, sign: Option<&str>, time: Option<&str>) -> CallbackQuery {
        CallbackQuery {
            sdk_appid: Some(appid.into()),
            callback_command: Some("Group.CallbackAfterNewMemberJoin".into()),
            content_type: Some("json".into()),
            client_ip: Some("127.0.0.1".into()),
            opt_platform: Some("RESTAPI".into()),
            sign: sign.map(Into::into),
            request_time: time.map(Into::into),
        }
    }

    const DOC_SIGN: &str = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061";

    #[test]
    fn reference_sign_vector() {
        assert_eq!(sign("xxxxyyyy", 1669872112), DOC_SIGN);
    }

    #[test]
    fn verifies_query() {
        let now = 1_669_872_112;
        let ok = q("888888", Some(DOC_SIGN), Some("1669872112"));
        assert_eq!(verify_callback_query(&ok, 888888, Some("xxxxyyyy"), now), Ok(()));
        assert_eq!(verify_callback_query(&ok, 888888, Some("xxxxyyyy"), now + 60), Ok(()));
        assert_eq!(verify_callback_query(&ok, 888888, Some("xxxxyyyy"), now - 60), Ok(()));
        // Upper-case hex is the same signature.
        let upper = q("888888", Some(&DOC_SIGN.to_ascii_uppercase()), Some("1669872112"));
        assert_eq!(verify_callback_query(&upper, 888888, Some("xxxxyyyy"), now), Ok(()));
        assert!(ok.is_rest_api());

        assert_eq!(
            verify_callback_query(&ok, 888888, Some("xxxxyyyy"), now + 61),
            Err(CallbackAuthError::Stale { request_time: now, now: now + 61 })
        );
        assert_eq!(verify_callback_query(&ok, 888888, Some("other"), now), Err(CallbackAuthError::BadSign));
        assert_eq!(
            verify_callback_query(&ok, 1, Some("xxxxyyyy"), now),
            Err(CallbackAuthError::SdkAppidMismatch { expected: 1, got: "888888".into() })
        );
        let none = CallbackQuery::default();
        assert_eq!(verify_callback_query(&none, 888888, None, now), Err(CallbackAuthError::MissingSdkAppid));
        // Without a token only the app id is checked.
        assert_eq!(verify_callback_query(&q("888888", None, None), 888888, None, now), Ok(()));
        assert_eq!(
            verify_callback_query(&q("888888", None, Some("1669872112")), 888888, Some("xxxxyyyy"), now),
            Err(CallbackAuthError::MissingSign)
        );
        assert_eq!(
            verify_callback_query(&q("888888", Some(DOC_SIGN), None), 888888, Some("xxxxyyyy"), now),
            Err(CallbackAuthError::MissingRequestTime)
        );
        assert_eq!(
            verify_callback_query(&q("888888", Some(DOC_SIGN), Some("soon")), 888888, Some("xxxxyyyy"), now),
            Err(CallbackAuthError::BadRequestTime("soon".into()))
        );
    }

    #[test]
    fn query_round_trips_through_a_url() {
        let query = q("888888", Some(DOC_SIGN), Some("1669872112"));
        let url = reqwest::Url::parse_with_params(
            "http://x/cb",
            serde_json::to_value(&query)
                .expect("ser")
                .as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
        )
        .expect("url");
        assert!(url.as_str().contains("SdkAppid=888888"));
        assert!(url.as_str().contains("OptPlatform=RESTAPI"));
        assert!(url.as_str().contains("contenttype=json"));
    }

    fn parse(v: serde_json::Value) -> Callback {
        Callback::parse(v.to_string().as_bytes(), None).expect("sample parses")
    }

    #[test]
    fn parses_reference_payload_samples() {
        let c = parse(json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh",
            "MsgSeq":48374,"MsgRandom":2837546,"MsgTime":1557481126,
            "MsgKey":"48374_2837546_1557481126","MsgId":"<client msg id>","OnlineOnlyFlag":1,
            "SendMsgResult":0,"ErrorInfo":"send msg succeed","UnreadMsgNum":7,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],
            "CloudCustomData":"your cloud custom data","EventTime":"1670574414123"}));
        let Callback::C2cAfterSendMsg(m) = &c else { panic!("wrong variant {c:?}") };
        assert_eq!(
            (m.from_account.as_str(), m.msg_seq, m.msg_random, m.msg_time),
            ("jared", 48374, 2837546, 1557481126)
        );
        assert_eq!(m.msg_body, vec![MsgElement::text("red packet")]);
        assert_eq!(c.event_time_ms(), Some(1_670_574_414_123));
        assert_eq!(c.operator_account(), Some("jared"));

        let c = parse(json!({"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"jared",
            "Peer_Account":"Jonh","LastReadTime":1614754606,"UnreadMsgNum":7}));
        assert!(
            matches!(&c, Callback::C2cAfterMsgReport(r) if r.last_read_time == Some(1614754606) && r.peer_account == "Jonh")
        );

        let c = parse(json!({"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":"@TGS#2J4SZEAEL",
            "Operator_Account":"group_root","Owner_Account":"leckie","Type":"Public","Name":"MyFirstGroup",
            "Introduction":"introduction","Notification":"notification",
            "MemberList":[{"Member_Account":"bob"},{"Member_Account":"peter"}],
            "UserDefinedDataList":[{"Key":"UserDefined1","Value":"hello"}],"EventTime":1670574414123i64}));
        let Callback::GroupAfterCreateGroup(g) = &c else { panic!("wrong variant {c:?}") };
        assert_eq!(g.member_list, vec![MemberAccount::new("bob"), MemberAccount::new("peter")]);
        assert_eq!(c.operator_account(), Some("group_root"));
        assert_eq!(c.event_time_ms(), Some(1_670_574_414_123));

        let c = parse(
            json!({"CallbackCommand":"Group.CallbackAfterGroupDestroyed","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Owner_Account":"leckie","Name":"MyFirstGroup",
            "MemberList":[{"Member_Account":"leckie"},{"Member_Account":"peter"}],"EventTime":1670574414123i64}),
        );
        assert!(matches!(&c, Callback::GroupAfterGroupDestroyed(d) if d.member_list.len() == 2));
        assert_eq!(c.operator_account(), None);

        let c = parse(
            json!({"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Operator_Account":"leckie","Notification":"NewNotification","EventTime":1670574414123i64}),
        );
        assert!(matches!(&c, Callback::GroupAfterGroupInfoChanged(i)
            if i.notification.as_deref() == Some("NewNotification") && i.name.is_none()));

        let c = parse(
            json!({"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "JoinType":"Apply","Operator_Account":"leckie",
            "NewMemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":1670574414123i64}),
        );
        assert!(
            matches!(&c, Callback::GroupAfterNewMemberJoin(j) if j.join_type == "Apply" && j.new_member_list.len() == 2)
        );

        let c =
            parse(json!({"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "ExitType":"Kicked","Operator_Account":"leckie",
            "ExitMemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":1670574414123i64}));
        assert!(matches!(&c, Callback::GroupAfterMemberExit(e) if e.exit_type == "Kicked"));

        let c =
            parse(json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "From_Account":"jared","Operator_Account":"admin","Random":123456,"MsgSeq":123,
            "MsgId":"144115233406643804-1727580296-4026038328","MsgTime":1490686222,"OnlineOnlyFlag":1,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}],
            "CloudCustomData":"your cloud custom data","EventTime":1670574414123i64,
            "GroupAtInfo":[{"GroupAtAllFlag":1},{"GroupAtAllFlag":0,"GroupAt_Account":"brennan"}],
            "SomeFutureField":{"x":1}}));
        let Callback::GroupAfterSendMsg(s) = &c else { panic!("wrong variant {c:?}") };
        assert_eq!((s.random, s.msg_seq, s.msg_time), (123456, 123, 1490686222));
        assert_eq!(s.group_at_info.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.operator_account(), Some("admin"));
    }

    #[test]
    fn other_commands_mismatches_and_garbage() {
        let c = Callback::parse(br#"{"CallbackCommand":"Sns.CallbackFriendAdd","PairList":[]}"#, None).expect("other");
        assert_eq!(c, Callback::Other("Sns.CallbackFriendAdd".into()));
        // Command only in the query.
        let c = Callback::parse(
            br#"{"GroupId":"g","Type":"Public","Operator_Account":"a"}"#,
            Some("Group.CallbackAfterGroupInfoChanged"),
        )
        .expect("query command");
        assert_eq!(c.command(), "Group.CallbackAfterGroupInfoChanged");
        assert!(matches!(
            Callback::parse(br#"{"CallbackCommand":"C2C.CallbackAfterMsgReport"}"#, Some("Group.CallbackAfterSendMsg")),
            Err(CallbackParseError::CommandMismatch { .. })
        ));
        assert_eq!(Callback::parse(b"{}", None), Err(CallbackParseError::MissingCommand));
        assert!(matches!(Callback::parse(b"[1]", None), Err(CallbackParseError::Json(_))));
        assert!(matches!(Callback::parse(b"nope", None), Err(CallbackParseError::Json(_))));
        // A consumed command with a missing required field is a payload error, not a silent default.
        assert!(matches!(
            Callback::parse(br#"{"CallbackCommand":"Group.CallbackAfterMemberExit"}"#, None),
            Err(CallbackParseError::Payload { .. })
        ));
    }

    #[test]
    fn emulator_side_serialization_round_trips() {
        let cb = Callback::GroupAfterSendMsg(GroupAfterSendMsg {
            group_id: "g".into(),
            group_type: "Public".into(),
            from_account: "a".into(),
            operator_account: "a".into(),
            random: 7,
            msg_seq: 3,
            msg_time: 1_700_000_000,
            msg_body: vec![MsgElement::text("x")],
            event_time: Some(1_700_000_000_123),
            ..Default::default()
        });
        let v = cb.to_json();
        assert_eq!(v["CallbackCommand"], "Group.CallbackAfterSendMsg");
        assert_eq!(v["EventTime"], 1_700_000_000_123i64, "emitted as an integer");
        assert_eq!(Callback::parse(v.to_string().as_bytes(), None).expect("round trip"), cb);
    }
}
