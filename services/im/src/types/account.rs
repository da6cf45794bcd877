//! Accounts and profiles: `account_import`, `multiaccount_import`, `account_check`, `portrait_set`,
//! `portrait_get` (reference §4.1–4.3, §11.1–11.2).

use serde::{Deserialize, Serialize};

/// Most accounts `multiaccount_import` takes in one call.
pub const MULTIACCOUNT_IMPORT_MAX: usize = 100;
/// Most `CheckItem`s `account_check` takes in one call.
pub const ACCOUNT_CHECK_MAX: usize = 100;
/// Most users `portrait_get` takes in one call.
pub const PORTRAIT_GET_MAX: usize = 100;

/// `account_import` request. Importing an existing account again succeeds and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountImportReq {
    /// Older clients sent `Identifier`; the current field is `UserID` (reference §4.1), accepted both ways.
    #[serde(rename = "UserID", alias = "Identifier")]
    pub user_id: String,
    #[serde(rename = "Nick", default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(rename = "FaceUrl", default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
}

/// `multiaccount_import` request. Send `account_list` (new shape, carries Nick/FaceUrl); `accounts` is the
/// older IDs-only shape, kept for the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MultiAccountImportReq {
    #[serde(rename = "Accounts", default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    #[serde(rename = "AccountList", default, skip_serializing_if = "Option::is_none")]
    pub account_list: Option<Vec<AccountImportReq>>,
}

/// `multiaccount_import` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MultiAccountImportResp {
    /// Accounts that were not imported.
    #[serde(rename = "FailAccounts", skip_serializing_if = "Vec::is_empty")]
    pub fail_accounts: Vec<String>,
}

impl MultiAccountImportResp {
    /// The accounts that failed (the call as a whole succeeded).
    pub fn failed(&self) -> &[String] {
        &self.fail_accounts
    }
}

/// `account_check` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountCheckReq {
    #[serde(rename = "CheckItem")]
    pub check_item: Vec<UserIdItem>,
}

impl AccountCheckReq {
    pub fn new<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        Self { check_item: ids.into_iter().map(|id| UserIdItem { user_id: id.into() }).collect() }
    }
}

/// `{"UserID": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserIdItem {
    #[serde(rename = "UserID")]
    pub user_id: String,
}

/// `account_check` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountCheckResp {
    #[serde(rename = "ResultItem")]
    pub result_item: Vec<AccountCheckItem>,
}

/// One checked account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountCheckItem {
    #[serde(rename = "UserID")]
    pub user_id: String,
    /// 0 = checked; non-zero = this item could not be checked (its status is unknown, not "missing").
    #[serde(rename = "ResultCode")]
    pub result_code: i64,
    #[serde(rename = "ResultInfo")]
    pub result_info: String,
    /// `Imported` or `NotImported`.
    #[serde(rename = "AccountStatus")]
    pub account_status: String,
}

/// `AccountStatus` of an imported account.
pub const ACCOUNT_IMPORTED: &str = "Imported";
/// `AccountStatus` of an account IM does not know.
pub const ACCOUNT_NOT_IMPORTED: &str = "NotImported";

impl AccountCheckResp {
    /// Accounts IM knows.
    pub fn imported(&self) -> impl Iterator<Item = &str> {
        self.result_item
            .iter()
            .filter(|i| i.result_code == 0 && i.account_status == ACCOUNT_IMPORTED)
            .map(|i| i.user_id.as_str())
    }

    /// Accounts IM reports as not imported.
    pub fn not_imported(&self) -> impl Iterator<Item = &str> {
        self.result_item
            .iter()
            .filter(|i| i.result_code == 0 && i.account_status == ACCOUNT_NOT_IMPORTED)
            .map(|i| i.user_id.as_str())
    }

    /// Items IM could not check.
    pub fn failed(&self) -> impl Iterator<Item = &AccountCheckItem> {
        self.result_item.iter().filter(|i| i.result_code != 0)
    }
}

/// A profile value: a string (most tags) or an unsigned integer (BirthDay, Language, Level, Role,
/// MsgSettings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProfileValue {
    Int(u64),
    Str(String),
}

/// `{"Tag", "Value"}` of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileItem {
    #[serde(rename = "Tag")]
    pub tag: String,
    #[serde(rename = "Value")]
    pub value: ProfileValue,
}

impl ProfileItem {
    pub fn string(tag: impl Into<String>, value: impl Into<String>) -> Self {
        Self { tag: tag.into(), value: ProfileValue::Str(value.into()) }
    }

    pub fn int(tag: impl Into<String>, value: u64) -> Self {
        Self { tag: tag.into(), value: ProfileValue::Int(value) }
    }
}

/// Standard profile tags (reference §4.3).
pub mod tags {
    pub const NICK: &str = "Tag_Profile_IM_Nick";
    pub const GENDER: &str = "Tag_Profile_IM_Gender";
    pub const BIRTHDAY: &str = "Tag_Profile_IM_BirthDay";
    pub const LOCATION: &str = "Tag_Profile_IM_Location";
    pub const SELF_SIGNATURE: &str = "Tag_Profile_IM_SelfSignature";
    pub const ALLOW_TYPE: &str = "Tag_Profile_IM_AllowType";
    pub const LANGUAGE: &str = "Tag_Profile_IM_Language";
    pub const IMAGE: &str = "Tag_Profile_IM_Image";
    pub const MSG_SETTINGS: &str = "Tag_Profile_IM_MsgSettings";
    pub const ADMIN_FORBID_TYPE: &str = "Tag_Profile_IM_AdminForbidType";
    pub const LEVEL: &str = "Tag_Profile_IM_Level";
    pub const ROLE: &str = "Tag_Profile_IM_Role";
    /// Prefix of app-defined profile tags (configured in the console first).
    pub const CUSTOM_PREFIX: &str = "Tag_Profile_Custom_";
}

/// `portrait_set` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortraitSetReq {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "ProfileItem")]
    pub profile_item: Vec<ProfileItem>,
}

/// `portrait_get` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortraitGetReq {
    #[serde(rename = "To_Account")]
    pub to_account: Vec<String>,
    #[serde(rename = "TagList")]
    pub tag_list: Vec<String>,
}

/// `portrait_get` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PortraitGetResp {
    #[serde(rename = "UserProfileItem")]
    pub user_profile_item: Vec<UserProfile>,
    /// Only present when at least one user failed.
    #[serde(rename = "Fail_Account", skip_serializing_if = "Vec::is_empty")]
    pub fail_account: Vec<String>,
}

impl PortraitGetResp {
    /// Users whose profile could not be read.
    pub fn failed(&self) -> impl Iterator<Item = &UserProfile> {
        self.user_profile_item.iter().filter(|u| u.result_code != 0)
    }
}

/// One user's profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProfile {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "ProfileItem", skip_serializing_if = "Vec::is_empty")]
    pub profile_item: Vec<ProfileItem>,
    #[serde(rename = "ResultCode")]
    pub result_code: i64,
    #[serde(rename = "ResultInfo")]
    pub result_info: String,
}

impl UserProfile {
    /// The value of one tag, if returned.
    pub fn get(&self, tag: &str) -> Option<&ProfileValue> {
        self.profile_item.iter().find(|p| p.tag == tag).map(|p| &p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn account_requests_serialize_documented_names() {
        let r = AccountImportReq { user_id: "u1".into(), nick: Some("Ann".into()), face_url: None };
        assert_eq!(serde_json::to_value(&r).expect("ser"), json!({"UserID":"u1","Nick":"Ann"}));
        let legacy: AccountImportReq = serde_json::from_value(json!({"Identifier":"test"})).expect("legacy name");
        assert_eq!(legacy.user_id, "test");
        let m = MultiAccountImportReq {
            accounts: None,
            account_list: Some(vec![AccountImportReq {
                user_id: "UserID_001".into(),
                nick: Some("Nick_001".into()),
                face_url: Some("http://x".into()),
            }]),
        };
        assert_eq!(
            serde_json::to_value(&m).expect("ser"),
            json!({"AccountList":[{"UserID":"UserID_001","Nick":"Nick_001","FaceUrl":"http://x"}]})
        );
        assert_eq!(
            serde_json::to_value(AccountCheckReq::new(["u1", "u2"])).expect("ser"),
            json!({"CheckItem":[{"UserID":"u1"},{"UserID":"u2"}]})
        );
    }

    #[test]
    fn account_responses_parse_samples() {
        let r: MultiAccountImportResp = serde_json::from_value(
            json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","FailAccounts":["UserID_002"]}),
        )
        .expect("parse");
        assert_eq!(r.failed(), ["UserID_002"]);
        let c: AccountCheckResp = serde_json::from_value(json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"",
            "ResultItem":[{"UserID":"u1","ResultCode":0,"ResultInfo":"","AccountStatus":"Imported"},
                          {"UserID":"u2","ResultCode":0,"ResultInfo":"","AccountStatus":"NotImported"},
                          {"UserID":"u3","ResultCode":70500,"ResultInfo":"internal"}]}))
        .expect("parse");
        assert_eq!(c.imported().collect::<Vec<_>>(), ["u1"]);
        assert_eq!(c.not_imported().collect::<Vec<_>>(), ["u2"]);
        assert_eq!(c.failed().map(|i| i.user_id.as_str()).collect::<Vec<_>>(), ["u3"]);
    }

    #[test]
    fn portraits() {
        let set = PortraitSetReq {
            from_account: "id".into(),
            profile_item: vec![
                ProfileItem::string(tags::NICK, "MyNickName"),
                ProfileItem::int(tags::BIRTHDAY, 20190419),
            ],
        };
        assert_eq!(
            serde_json::to_value(&set).expect("ser"),
            json!({"From_Account":"id","ProfileItem":[{"Tag":"Tag_Profile_IM_Nick","Value":"MyNickName"},
                {"Tag":"Tag_Profile_IM_BirthDay","Value":20190419}]})
        );
        let get: PortraitGetResp = serde_json::from_value(json!({"UserProfileItem":[
            {"To_Account":"u1","ProfileItem":[{"Tag":"Tag_Profile_IM_Nick","Value":"Ann"},
              {"Tag":"Tag_Profile_IM_Gender","Value":"Gender_Type_Female"},{"Tag":"Tag_Profile_IM_Level","Value":3}],
             "ResultCode":0,"ResultInfo":""},
            {"To_Account":"u2","ResultCode":40006,"ResultInfo":"Err_Profile_PortraitGet_Read_Custom_Data_Fail"}],
            "Fail_Account":["u2"],"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ErrorDisplay":""}))
        .expect("parse sample");
        let u1 = &get.user_profile_item[0];
        assert_eq!(u1.get(tags::NICK), Some(&ProfileValue::Str("Ann".into())));
        assert_eq!(u1.get(tags::LEVEL), Some(&ProfileValue::Int(3)));
        assert_eq!(get.failed().map(|u| u.to_account.as_str()).collect::<Vec<_>>(), ["u2"]);
        assert_eq!(get.fail_account, ["u2"]);
    }
}
