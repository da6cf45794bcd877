//! Friend lists: `friend_import` and the paged `friend_get` (reference §4.4, §11.3).

use serde::{Deserialize, Serialize};

/// Items per `friend_import` call. The limit is UNCONFIRMED (believed 100); we chunk at 100.
pub const FRIEND_IMPORT_MAX: usize = 100;

/// `friend_import` request: one-way friendships, `from_account`'s list gains each `To_Account`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FriendImportReq {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "AddFriendItem")]
    pub add_friend_item: Vec<FriendImportItem>,
}

/// One friend to import.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FriendImportItem {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    /// Must look like `AddSource_Type_<letters, ≤ 8 bytes>`.
    #[serde(rename = "AddSource")]
    pub add_source: String,
    #[serde(rename = "Remark", default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Unix seconds.
    #[serde(rename = "RemarkTime", default, skip_serializing_if = "Option::is_none")]
    pub remark_time: Option<i64>,
    #[serde(rename = "GroupName", default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<Vec<String>>,
    #[serde(rename = "AddWording", default, skip_serializing_if = "Option::is_none")]
    pub add_wording: Option<String>,
    /// Unix seconds.
    #[serde(rename = "AddTime", default, skip_serializing_if = "Option::is_none")]
    pub add_time: Option<i64>,
    #[serde(rename = "CustomItem", default, skip_serializing_if = "Option::is_none")]
    pub custom_item: Option<Vec<SnsItem>>,
}

/// A friend field value: a list of friend-list names, an integer, or a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SnsValue {
    List(Vec<String>),
    Int(i64),
    Str(String),
}

/// `{"Tag", "Value"}` of a friend field (`CustomItem` on import, `ValueItem` on get).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsItem {
    #[serde(rename = "Tag")]
    pub tag: String,
    #[serde(rename = "Value")]
    pub value: SnsValue,
}

/// Standard friend field tags (reference §11.3).
pub mod tags {
    pub const GROUP: &str = "Tag_SNS_IM_Group";
    pub const REMARK: &str = "Tag_SNS_IM_Remark";
    pub const ADD_SOURCE: &str = "Tag_SNS_IM_AddSource";
    pub const ADD_WORDING: &str = "Tag_SNS_IM_AddWording";
    pub const ADD_TIME: &str = "Tag_SNS_IM_AddTime";
    /// Prefix of app-defined friend fields.
    pub const CUSTOM_PREFIX: &str = "Tag_SNS_Custom_";
}

/// `friend_import` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FriendImportResp {
    #[serde(rename = "ResultItem")]
    pub result_item: Vec<FriendResultItem>,
    #[serde(rename = "Fail_Account", skip_serializing_if = "Vec::is_empty")]
    pub fail_account: Vec<String>,
}

impl FriendImportResp {
    /// Friends that were not imported (the call as a whole succeeded).
    pub fn failed(&self) -> impl Iterator<Item = &FriendResultItem> {
        self.result_item.iter().filter(|i| i.result_code != 0)
    }
}

/// Per-friend result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FriendResultItem {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "ResultCode")]
    pub result_code: i64,
    #[serde(rename = "ResultInfo")]
    pub result_info: String,
}

/// `friend_get` request. Leave the sequences unset when paging for verification: equal sequences make IM
/// omit the fields (reference §11.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FriendGetReq {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "StartIndex")]
    pub start_index: u64,
    #[serde(rename = "StandardSequence", default, skip_serializing_if = "Option::is_none")]
    pub standard_sequence: Option<u64>,
    #[serde(rename = "CustomSequence", default, skip_serializing_if = "Option::is_none")]
    pub custom_sequence: Option<u64>,
}

/// `friend_get` response: one page.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FriendGetResp {
    #[serde(rename = "UserDataItem")]
    pub user_data_item: Vec<Friend>,
    #[serde(rename = "StandardSequence")]
    pub standard_sequence: u64,
    #[serde(rename = "CustomSequence")]
    pub custom_sequence: u64,
    #[serde(rename = "FriendNum")]
    pub friend_num: u64,
    /// Non-zero once the whole list has been delivered.
    #[serde(rename = "CompleteFlag")]
    pub complete_flag: u64,
    #[serde(rename = "NextStartIndex")]
    pub next_start_index: u64,
}

/// One friend and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Friend {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "ValueItem")]
    pub value_item: Vec<SnsItem>,
}

impl Friend {
    /// The value of one friend field, if set.
    pub fn get(&self, tag: &str) -> Option<&SnsValue> {
        self.value_item.iter().find(|v| v.tag == tag).map(|v| &v.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn friend_import_serializes_and_parses() {
        let req = FriendImportReq {
            from_account: "id".into(),
            add_friend_item: vec![FriendImportItem {
                to_account: "id1".into(),
                add_source: "AddSource_Type_XXXXXXXX".into(),
                remark: Some("remark1".into()),
                remark_time: Some(1_604_325_483),
                group_name: Some(vec!["Classmates".into()]),
                add_wording: Some("I'm Test1".into()),
                add_time: Some(1_604_325_483),
                custom_item: Some(vec![SnsItem {
                    tag: "Tag_SNS_Custom_testTag".into(),
                    value: SnsValue::Str("x".into()),
                }]),
            }],
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ser"),
            json!({"From_Account":"id","AddFriendItem":[{"To_Account":"id1","AddSource":"AddSource_Type_XXXXXXXX",
                "Remark":"remark1","RemarkTime":1604325483,"GroupName":["Classmates"],"AddWording":"I'm Test1",
                "AddTime":1604325483,"CustomItem":[{"Tag":"Tag_SNS_Custom_testTag","Value":"x"}]}]})
        );
        let resp: FriendImportResp = serde_json::from_value(json!({"ResultItem":[
            {"To_Account":"id1","ResultCode":0,"ResultInfo":""},
            {"To_Account":"id2","ResultCode":30010,"ResultInfo":"Err_SNS_FriendImport_My_Friend_Num_Exceed_Threshold"}],
            "Fail_Account":["id2"],"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ErrorDisplay":""}))
        .expect("parse");
        assert_eq!(resp.failed().map(|i| i.result_code).collect::<Vec<_>>(), [30010]);
    }

    #[test]
    fn friend_get_sample() {
        assert_eq!(
            serde_json::to_value(FriendGetReq { from_account: "u1".into(), start_index: 0, ..Default::default() })
                .expect("ser"),
            json!({"From_Account":"u1","StartIndex":0})
        );
        let r: FriendGetResp = serde_json::from_value(json!({"UserDataItem":[{"To_Account":"u2","ValueItem":[
               {"Tag":"Tag_SNS_IM_AddSource","Value":"AddSource_Type_Web"},
               {"Tag":"Tag_SNS_IM_Remark","Value":"Bob"},
               {"Tag":"Tag_SNS_IM_Group","Value":["work"]},
               {"Tag":"Tag_SNS_IM_AddTime","Value":1700000000}]}],
             "StandardSequence":3,"CustomSequence":0,"FriendNum":1,"CompleteFlag":1,"NextStartIndex":0,
             "ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ErrorDisplay":""}))
        .expect("parse sample");
        let f = &r.user_data_item[0];
        assert_eq!(f.get(tags::GROUP), Some(&SnsValue::List(vec!["work".into()])));
        assert_eq!(f.get(tags::ADD_TIME), Some(&SnsValue::Int(1_700_000_000)));
        assert_eq!(f.get(tags::REMARK), Some(&SnsValue::Str("Bob".into())));
        assert_eq!(r.complete_flag, 1);
    }
}
