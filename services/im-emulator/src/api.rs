//! The catalogue of emulated APIs: their paths, error-code families, documented frequency limits, and which of
//! them a simulated client may call. Everything that routes or limits by API reads it from here.

use serde_json::{Map, Value, json};

/// Error-code family of an IM service: each service answers parse, permission and parameter errors with codes
/// from its own range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `im_open_login_svc` (account APIs, 70xxx).
    Login,
    /// `profile` (40xxx).
    Profile,
    /// `sns` (30xxx).
    Sns,
    /// `openim` (C2C messages, 90xxx / 20xxx).
    OpenIm,
    /// `group_open_http_svc` (10xxx).
    Group,
    /// `recentcontact` (50xxx, UNCONFIRMED).
    RecentContact,
}

impl Family {
    /// The body is not JSON / not an object.
    pub(crate) fn parse_error(self) -> i64 {
        match self {
            Family::Login => 70402,
            Family::Profile => 40001,
            Family::Sns => 30001,
            Family::OpenIm => 90001,
            Family::Group => 10011,
            Family::RecentContact => 50002,
        }
    }

    /// The caller is not an App admin.
    pub(crate) fn needs_admin(self) -> i64 {
        match self {
            Family::Login => 70403,
            Family::Profile => 40004,
            Family::Sns => 30004,
            Family::OpenIm => 90009,
            Family::Group => 10007,
            Family::RecentContact => 50003,
        }
    }

    /// profile and sns answers carry an (always empty) `ErrorDisplay`.
    pub(crate) fn has_error_display(self) -> bool {
        matches!(self, Family::Profile | Family::Sns)
    }
}

macro_rules! apis {
    ($( $variant:ident => $service:literal / $command:literal, $family:ident, $rate:literal, $client:literal; )*) => {
        /// One emulated API (a `service/command` pair).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Api { $( $variant, )* }

        impl Api {
            /// Every emulated API.
            pub const ALL: &'static [Api] = &[ $( Api::$variant, )* ];

            /// The `service/command` key, e.g. `openim/sendmsg`.
            pub fn key(self) -> &'static str {
                match self { $( Api::$variant => concat!($service, "/", $command), )* }
            }

            /// Looks an API up by its `service/command` key.
            pub fn from_key(key: &str) -> Option<Api> {
                match key { $( concat!($service, "/", $command) => Some(Api::$variant), )* _ => None }
            }

            pub(crate) fn family(self) -> Family {
                match self { $( Api::$variant => Family::$family, )* }
            }

            /// The documented default frequency limit, calls per second per SDKAppID.
            pub fn default_rate_per_sec(self) -> u32 {
                match self { $( Api::$variant => $rate, )* }
            }

            /// Whether a simulated client may call it at `/emulator/client/v4/...`.
            pub fn client_allowed(self) -> bool {
                match self { $( Api::$variant => $client, )* }
            }
        }
    };
}

// Rates are the documented per-API limits (reference §1.5, §11.0); destroy_group's 200/s is UNCONFIRMED (the
// norm for group APIs). quit_group is not a REST API at all (§11.12): it exists only for simulated clients.
apis! {
    AccountImport => "im_open_login_svc" / "account_import", Login, 200, false;
    MultiaccountImport => "im_open_login_svc" / "multiaccount_import", Login, 100, false;
    AccountCheck => "im_open_login_svc" / "account_check", Login, 100, false;
    PortraitSet => "profile" / "portrait_set", Profile, 200, false;
    PortraitGet => "profile" / "portrait_get", Profile, 200, false;
    FriendImport => "sns" / "friend_import", Sns, 200, false;
    FriendGet => "sns" / "friend_get", Sns, 200, false;
    ImportMsg => "openim" / "importmsg", OpenIm, 200, false;
    SendMsg => "openim" / "sendmsg", OpenIm, 200, true;
    AdminSetMsgRead => "openim" / "admin_set_msg_read", OpenIm, 200, true;
    AdminGetRoamMsg => "openim" / "admin_getroammsg", OpenIm, 200, false;
    GetC2cUnreadMsgNum => "openim" / "get_c2c_unread_msg_num", OpenIm, 200, false;
    ImportGroup => "group_open_http_svc" / "import_group", Group, 200, false;
    ImportGroupMember => "group_open_http_svc" / "import_group_member", Group, 200, false;
    ImportGroupMsg => "group_open_http_svc" / "import_group_msg", Group, 200, false;
    SetUnreadMsgNum => "group_open_http_svc" / "set_unread_msg_num", Group, 200, false;
    CreateGroup => "group_open_http_svc" / "create_group", Group, 200, true;
    ModifyGroupBaseInfo => "group_open_http_svc" / "modify_group_base_info", Group, 200, true;
    AddGroupMember => "group_open_http_svc" / "add_group_member", Group, 200, true;
    DeleteGroupMember => "group_open_http_svc" / "delete_group_member", Group, 200, true;
    DestroyGroup => "group_open_http_svc" / "destroy_group", Group, 200, true;
    SendGroupMsg => "group_open_http_svc" / "send_group_msg", Group, 200, true;
    GetAppidGroupList => "group_open_http_svc" / "get_appid_group_list", Group, 1, false;
    GetGroupInfo => "group_open_http_svc" / "get_group_info", Group, 200, false;
    GetGroupMemberInfo => "group_open_http_svc" / "get_group_member_info", Group, 200, false;
    GroupMsgGetSimple => "group_open_http_svc" / "group_msg_get_simple", Group, 200, false;
    QuitGroup => "group_open_http_svc" / "quit_group", Group, 200, true;
    RecentContactGetList => "recentcontact" / "get_list", RecentContact, 200, false;
}

impl Api {
    /// Whether it exists on the admin REST API (`quit_group` does not).
    pub fn is_rest(self) -> bool {
        self != Api::QuitGroup
    }

    /// Whether a successful call can change state (used to decide when the state file needs saving).
    pub(crate) fn mutates(self) -> bool {
        !matches!(
            self,
            Api::AccountCheck
                | Api::PortraitGet
                | Api::FriendGet
                | Api::AdminGetRoamMsg
                | Api::GetC2cUnreadMsgNum
                | Api::GetAppidGroupList
                | Api::GetGroupInfo
                | Api::GetGroupMemberInfo
                | Api::GroupMsgGetSimple
                | Api::RecentContactGetList
        )
    }
}

/// An application-level failure, answered with HTTP 200 and `ActionStatus: FAIL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: i64,
    pub(crate) info: String,
}

impl ApiError {
    pub(crate) fn new(code: i64, info: impl Into<String>) -> Self {
        Self { code, info: info.into() }
    }
}

/// Wraps a handler's result in IM's envelope: `ActionStatus`, `ErrorCode`, `ErrorInfo` (+ `ErrorDisplay`).
pub(crate) fn envelope(family: Option<Family>, result: Result<Value, ApiError>) -> Value {
    let mut out = match result {
        Ok(Value::Object(fields)) => {
            let mut m = Map::new();
            m.insert("ActionStatus".into(), json!("OK"));
            m.insert("ErrorCode".into(), json!(0));
            m.insert("ErrorInfo".into(), json!(""));
            m.extend(fields);
            m
        }
        Ok(_) => {
            let mut m = Map::new();
            m.insert("ActionStatus".into(), json!("OK"));
            m.insert("ErrorCode".into(), json!(0));
            m.insert("ErrorInfo".into(), json!(""));
            m
        }
        Err(e) => {
            let mut m = Map::new();
            m.insert("ActionStatus".into(), json!("FAIL"));
            m.insert("ErrorCode".into(), json!(e.code));
            m.insert("ErrorInfo".into(), json!(e.info));
            m
        }
    };
    if family.is_some_and(Family::has_error_display) {
        out.entry("ErrorDisplay").or_insert(json!(""));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_round_trips_its_key() {
        for api in Api::ALL {
            assert_eq!(Api::from_key(api.key()), Some(*api));
        }
        assert_eq!(Api::from_key("openim/nope"), None);
        assert!(!Api::QuitGroup.is_rest() && Api::QuitGroup.client_allowed());
        assert_eq!(Api::GetAppidGroupList.default_rate_per_sec(), 1);
    }

    #[test]
    fn envelope_shapes() {
        let ok = envelope(Some(Family::Profile), Ok(json!({"X": 1})));
        assert_eq!(ok, json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "ErrorDisplay": "", "X": 1}));
        let fail = envelope(Some(Family::OpenIm), Err(ApiError::new(90001, "bad")));
        assert_eq!(fail, json!({"ActionStatus": "FAIL", "ErrorCode": 90001, "ErrorInfo": "bad"}));
    }
}
