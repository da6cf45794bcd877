//! One-to-one messages: `importmsg`, `admin_set_msg_read`, `sendmsg`, `admin_getroammsg`,
//! `get_c2c_unread_msg_num` (reference §5, §11.4–11.5).

use serde::{Deserialize, Serialize};

use crate::body::MsgElement;
use crate::types::opt_int_or_string;

/// `SyncFromOldSystem` for history: not counted unread, not pushed.
pub const SYNC_HISTORY: u32 = 2;
/// `SyncFromOldSystem` for live traffic during the transition: counted unread and pushed.
pub const SYNC_LIVE: u32 = 5;

/// `ForbidCallbackControl` value suppressing the before-send callback of this one message.
pub const FORBID_BEFORE_SEND_CALLBACK: &str = "ForbidBeforeSendMsgCallback";
/// `ForbidCallbackControl` value suppressing the after-send callback of this one message.
pub const FORBID_AFTER_SEND_CALLBACK: &str = "ForbidAfterSendMsgCallback";

/// `SendMsgControl` value: do not count as unread.
pub const NO_UNREAD: &str = "NoUnread";
/// `SendMsgControl` value: do not update the conversation list.
pub const NO_LAST_MSG: &str = "NoLastMsg";

/// `MsgFlagBits` of a recalled message in history reads.
pub const MSG_FLAG_RECALLED: u32 = 8;

/// Most peers `get_c2c_unread_msg_num` takes in one call.
pub const C2C_UNREAD_PEERS_MAX: usize = 10;

/// `importmsg` request. IM dedups per conversation on (`MsgSeq`, `MsgRandom`, `MsgTimeStamp`), first write
/// wins, so derive all three from the legacy message id for replay safety.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportMsgReq {
    /// [`SYNC_HISTORY`] or [`SYNC_LIVE`].
    #[serde(rename = "SyncFromOldSystem")]
    pub sync_from_old_system: u32,
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "To_Account")]
    pub to_account: String,
    /// Random if omitted (then dedup is not stable): always set it.
    #[serde(rename = "MsgSeq", default, skip_serializing_if = "Option::is_none")]
    pub msg_seq: Option<u32>,
    #[serde(rename = "MsgRandom")]
    pub msg_random: u32,
    /// Unix seconds.
    #[serde(rename = "MsgTimeStamp")]
    pub msg_time_stamp: i64,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
}

/// `admin_set_msg_read` request: `report_account` has read everything from `peer_account` up to the time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdminSetMsgReadReq {
    #[serde(rename = "Report_Account")]
    pub report_account: String,
    #[serde(rename = "Peer_Account")]
    pub peer_account: String,
    /// Unix seconds; default now. The two doc pages disagree on its type (String on 1047/38996, Integer on
    /// 269/50349, UNCONFIRMED): we send an Integer, like every other time field of the message service, and
    /// accept either when parsing. Old SDKs spell it `MsgReadedTime`.
    #[serde(
        rename = "MsgReadTime",
        alias = "MsgReadedTime",
        default,
        with = "opt_int_or_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub msg_read_time: Option<i64>,
}

/// `sendmsg` request. Dedup key on IM's side: sender + `MsgSeq` + `MsgRandom` + CRC32(body) for 120 s, so a
/// retried send with the same values is not delivered twice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SendMsgReq {
    /// 1 = also sync to the sender's devices and roaming; 2 = not to the sender.
    #[serde(rename = "SyncOtherMachine", default, skip_serializing_if = "Option::is_none")]
    pub sync_other_machine: Option<u32>,
    /// Sender; default the admin identity.
    #[serde(rename = "From_Account", default, skip_serializing_if = "Option::is_none")]
    pub from_account: Option<String>,
    #[serde(rename = "To_Account")]
    pub to_account: String,
    /// Offline retention, seconds (max 604800).
    #[serde(rename = "MsgLifeTime", default, skip_serializing_if = "Option::is_none")]
    pub msg_life_time: Option<u32>,
    #[serde(rename = "MsgSeq", default, skip_serializing_if = "Option::is_none")]
    pub msg_seq: Option<u32>,
    #[serde(rename = "MsgRandom")]
    pub msg_random: u32,
    /// [`FORBID_BEFORE_SEND_CALLBACK`], [`FORBID_AFTER_SEND_CALLBACK`].
    #[serde(rename = "ForbidCallbackControl", default, skip_serializing_if = "Option::is_none")]
    pub forbid_callback_control: Option<Vec<String>>,
    /// [`NO_UNREAD`], [`NO_LAST_MSG`], `WithMuteNotifications`, `NoMsgCheck`.
    #[serde(rename = "SendMsgControl", default, skip_serializing_if = "Option::is_none")]
    pub send_msg_control: Option<Vec<String>>,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "CloudCustomData", default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    #[serde(rename = "SupportMessageExtension", default, skip_serializing_if = "Option::is_none")]
    pub support_message_extension: Option<u32>,
    #[serde(rename = "IsNeedReadReceipt", default, skip_serializing_if = "Option::is_none")]
    pub is_need_read_receipt: Option<u32>,
    /// Push options, passed through as IM documents them (reference §3).
    #[serde(rename = "OfflinePushInfo", default, skip_serializing_if = "Option::is_none")]
    pub offline_push_info: Option<serde_json::Value>,
}

/// `sendmsg` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendMsgResp {
    /// Unix seconds.
    #[serde(rename = "MsgTime")]
    pub msg_time: i64,
    /// Opaque message key (every sample is `{MsgSeq}_{MsgRandom}_{MsgTime}`); input of recall.
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
}

/// `admin_getroammsg` request: one C2C conversation as `operator_account` sees it, in a time window.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdminGetRoamMsgReq {
    /// Older revisions named it `From_Account` (accepted when parsing).
    #[serde(rename = "Operator_Account", alias = "From_Account")]
    pub operator_account: String,
    /// Older revisions named it `To_Account`.
    #[serde(rename = "Peer_Account", alias = "To_Account")]
    pub peer_account: String,
    #[serde(rename = "MaxCnt")]
    pub max_cnt: u32,
    /// Window start, Unix seconds (inclusive, inferred).
    #[serde(rename = "MinTime")]
    pub min_time: i64,
    /// Window end, Unix seconds (inclusive, inferred).
    #[serde(rename = "MaxTime")]
    pub max_time: i64,
    /// The previous page's `LastMsgKey` when continuing.
    #[serde(rename = "LastMsgKey", default, skip_serializing_if = "Option::is_none")]
    pub last_msg_key: Option<String>,
}

/// `admin_getroammsg` response: one page, walking from the newest end of the window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminGetRoamMsgResp {
    /// 1 = the whole window has been delivered.
    #[serde(rename = "Complete")]
    pub complete: u32,
    #[serde(rename = "MsgCnt")]
    pub msg_cnt: u32,
    /// Time of the page's oldest message: the next page's `MaxTime`.
    #[serde(rename = "LastMsgTime")]
    pub last_msg_time: i64,
    /// Key of the page's oldest message: the next page's `LastMsgKey`.
    #[serde(rename = "LastMsgKey")]
    pub last_msg_key: String,
    #[serde(rename = "MsgList")]
    pub msg_list: Vec<RoamMsg>,
}

/// A message of C2C history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoamMsg {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u32,
    #[serde(rename = "MsgRandom")]
    pub msg_random: u32,
    /// Unix seconds.
    #[serde(rename = "MsgTimeStamp")]
    pub msg_time_stamp: i64,
    /// 0 normal, [`MSG_FLAG_RECALLED`] recalled.
    #[serde(rename = "MsgFlagBits")]
    pub msg_flag_bits: u32,
    #[serde(rename = "IsPeerRead", skip_serializing_if = "Option::is_none")]
    pub is_peer_read: Option<u32>,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElement>,
    #[serde(rename = "CloudCustomData", skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
}

/// `get_c2c_unread_msg_num` request: the total (no peers) or per conversation (≤ 10 peers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetC2cUnreadMsgNumReq {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Peer_Account", default, skip_serializing_if = "Option::is_none")]
    pub peer_account: Option<Vec<String>>,
}

/// `get_c2c_unread_msg_num` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GetC2cUnreadMsgNumResp {
    /// The total, in the no-peer form.
    #[serde(rename = "AllC2CUnreadMsgNum", skip_serializing_if = "Option::is_none")]
    pub all_c2c_unread_msg_num: Option<u64>,
    #[serde(rename = "C2CUnreadMsgNumList", skip_serializing_if = "Vec::is_empty")]
    pub c2c_unread_msg_num_list: Vec<PeerUnread>,
    /// Per-peer failures (70107: that account does not exist).
    #[serde(rename = "ErrorList", skip_serializing_if = "Vec::is_empty")]
    pub error_list: Vec<PeerError>,
}

impl GetC2cUnreadMsgNumResp {
    /// Peers whose count could not be read.
    pub fn failed(&self) -> &[PeerError] {
        &self.error_list
    }

    /// The unread count of one peer's conversation, if returned.
    pub fn unread_from(&self, peer: &str) -> Option<u64> {
        self.c2c_unread_msg_num_list.iter().find(|p| p.peer_account == peer).map(|p| p.c2c_unread_msg_num)
    }
}

/// Unread count of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerUnread {
    #[serde(rename = "Peer_Account")]
    pub peer_account: String,
    #[serde(rename = "C2CUnreadMsgNum")]
    pub c2c_unread_msg_num: u64,
}

/// A per-peer failure.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerError {
    #[serde(rename = "Peer_Account")]
    pub peer_account: String,
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn importmsg_serializes_documented_names() {
        let req = ImportMsgReq {
            sync_from_old_system: SYNC_HISTORY,
            from_account: "lumotuwe1".into(),
            to_account: "lumotuwe2".into(),
            msg_seq: Some(93847636),
            msg_random: 1287657,
            msg_time_stamp: 1557387418,
            msg_body: vec![MsgElement::text("hi, beauty")],
            cloud_custom_data: None,
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ser"),
            json!({"SyncFromOldSystem":2,"From_Account":"lumotuwe1","To_Account":"lumotuwe2","MsgSeq":93847636,
                "MsgRandom":1287657,"MsgTimeStamp":1557387418,
                "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi, beauty"}}]})
        );
    }

    #[test]
    fn set_msg_read_time_is_an_integer_but_reads_either() {
        let r = AdminSetMsgReadReq {
            report_account: "a".into(),
            peer_account: "b".into(),
            msg_read_time: Some(1_700_000_000),
        };
        assert_eq!(
            serde_json::to_value(&r).expect("ser"),
            json!({"Report_Account":"a","Peer_Account":"b","MsgReadTime":1700000000})
        );
        let s: AdminSetMsgReadReq =
            serde_json::from_value(json!({"Report_Account":"a","Peer_Account":"b","MsgReadTime":"1700000000"}))
                .expect("string");
        assert_eq!(s.msg_read_time, Some(1_700_000_000));
        let n: AdminSetMsgReadReq =
            serde_json::from_value(json!({"Report_Account":"a","Peer_Account":"b"})).expect("absent");
        assert_eq!(n.msg_read_time, None);
        assert_eq!(serde_json::to_value(&n).expect("ser"), json!({"Report_Account":"a","Peer_Account":"b"}));
    }

    #[test]
    fn sendmsg_request_and_sample_response() {
        let req = SendMsgReq {
            sync_other_machine: Some(2),
            from_account: Some("lumotuwe1".into()),
            to_account: "lumotuwe2".into(),
            msg_life_time: Some(60),
            msg_seq: Some(93847636),
            msg_random: 1287657,
            forbid_callback_control: Some(vec![FORBID_BEFORE_SEND_CALLBACK.into(), FORBID_AFTER_SEND_CALLBACK.into()]),
            send_msg_control: Some(vec![NO_UNREAD.into()]),
            msg_body: vec![MsgElement::text("hi, beauty")],
            cloud_custom_data: Some("your cloud custom data".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ser"),
            json!({"SyncOtherMachine":2,"From_Account":"lumotuwe1","To_Account":"lumotuwe2","MsgLifeTime":60,
                "MsgSeq":93847636,"MsgRandom":1287657,
                "ForbidCallbackControl":["ForbidBeforeSendMsgCallback","ForbidAfterSendMsgCallback"],
                "SendMsgControl":["NoUnread"],
                "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi, beauty"}}],
                "CloudCustomData":"your cloud custom data"})
        );
        let resp: SendMsgResp = serde_json::from_value(
            json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"MsgTime":1572870301,"MsgKey":"89541_2574206_1572870301"}),
        )
        .expect("sample");
        assert_eq!(resp, SendMsgResp { msg_time: 1572870301, msg_key: "89541_2574206_1572870301".into() });
    }

    #[test]
    fn roam_msg_sample_and_continuation() {
        let first = AdminGetRoamMsgReq {
            operator_account: "bob".into(),
            peer_account: "ann".into(),
            max_cnt: 100,
            min_time: 1700000000,
            max_time: 1700086400,
            last_msg_key: None,
        };
        assert_eq!(
            serde_json::to_value(&first).expect("ser"),
            json!({"Operator_Account":"bob","Peer_Account":"ann","MaxCnt":100,"MinTime":1700000000,"MaxTime":1700086400})
        );
        let legacy: AdminGetRoamMsgReq =
            serde_json::from_value(json!({"From_Account":"bob","To_Account":"ann","MaxCnt":1,"MinTime":0,"MaxTime":1}))
                .expect("legacy names");
        assert_eq!(legacy.operator_account, "bob");
        let r: AdminGetRoamMsgResp = serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "Complete":0,"MsgCnt":2,"LastMsgTime":1700050000,"LastMsgKey":"77_1234_1700050000",
            "MsgList":[
              {"From_Account":"ann","To_Account":"bob","MsgSeq":77,"MsgRandom":1234,"MsgTimeStamp":1700050000,
               "MsgFlagBits":0,"IsPeerRead":0,"MsgKey":"77_1234_1700050000",
               "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}],"CloudCustomData":""},
              {"From_Account":"bob","To_Account":"ann","MsgSeq":78,"MsgRandom":99,"MsgTimeStamp":1700050100,
               "MsgFlagBits":8,"IsPeerRead":0,"MsgKey":"78_99_1700050100",
               "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"oops"}}],"CloudCustomData":""}]}))
        .expect("sample");
        assert_eq!(r.complete, 0);
        assert_eq!(r.msg_list.len(), 2);
        assert_eq!(r.msg_list[1].msg_flag_bits, MSG_FLAG_RECALLED);
        assert_eq!(r.msg_list[0].msg_body, vec![MsgElement::text("hi")]);
    }

    #[test]
    fn unread_samples() {
        let total: GetC2cUnreadMsgNumResp =
            serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"AllC2CUnreadMsgNum":12}))
                .expect("total");
        assert_eq!(total.all_c2c_unread_msg_num, Some(12));
        let per: GetC2cUnreadMsgNumResp =
            serde_json::from_value(json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
            "C2CUnreadMsgNumList":[{"Peer_Account":"bob","C2CUnreadMsgNum":3}],
            "ErrorList":[{"Peer_Account":"carl","ErrorCode":70107}]}))
            .expect("per peer");
        assert_eq!(per.unread_from("bob"), Some(3));
        assert_eq!(per.unread_from("carl"), None);
        assert_eq!(per.failed()[0].error_code, 70107);
        assert_eq!(
            serde_json::to_value(GetC2cUnreadMsgNumReq {
                to_account: "ann".into(),
                peer_account: Some(vec!["bob".into()])
            })
            .expect("ser"),
            json!({"To_Account":"ann","Peer_Account":["bob"]})
        );
    }
}
