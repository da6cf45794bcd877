//! The closed set of IM REST APIs imbridge calls, with their paths and documented frequency limits.
//!
//! [`Api`] is the bounded label every metric uses, the key of the per-API rate limiters and of the
//! `rate_limits` configuration table, so adding an API here is the only way to call a new one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! apis {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $path:literal, $rate:expr; )*) => {
        /// One IM REST API (`v4/<service>/<command>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Api {
            $( $(#[$doc])* $variant, )*
        }

        impl Api {
            /// Every API, in declaration order (the index of an API in this slice is [`Api::index`]).
            pub const ALL: &'static [Api] = &[$(Api::$variant),*];

            /// The command name, e.g. `importmsg`; used as the metric label and the config key.
            pub fn as_str(self) -> &'static str {
                match self { $(Api::$variant => $name,)* }
            }

            /// The path after `v4/`, e.g. `openim/importmsg`.
            pub fn path(self) -> &'static str {
                match self { $(Api::$variant => $path,)* }
            }

            /// The documented default frequency limit of this API, in calls per second per SDKAppID
            /// (reference §1.5 and §11.0).
            pub fn documented_rate_per_sec(self) -> f64 {
                match self { $(Api::$variant => $rate,)* }
            }
        }

        impl FromStr for Api {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Api::$variant),)*
                    other => Err(format!("unknown IM api {other:?}")),
                }
            }
        }
    };
}

apis! {
    AccountImport => "account_import", "im_open_login_svc/account_import", 200.0;
    MultiAccountImport => "multiaccount_import", "im_open_login_svc/multiaccount_import", 100.0;
    AccountCheck => "account_check", "im_open_login_svc/account_check", 100.0;
    PortraitSet => "portrait_set", "profile/portrait_set", 200.0;
    PortraitGet => "portrait_get", "profile/portrait_get", 200.0;
    FriendImport => "friend_import", "sns/friend_import", 200.0;
    FriendGet => "friend_get", "sns/friend_get", 200.0;
    ImportMsg => "importmsg", "openim/importmsg", 200.0;
    AdminSetMsgRead => "admin_set_msg_read", "openim/admin_set_msg_read", 200.0;
    SendMsg => "sendmsg", "openim/sendmsg", 200.0;
    AdminGetRoamMsg => "admin_getroammsg", "openim/admin_getroammsg", 200.0;
    GetC2cUnreadMsgNum => "get_c2c_unread_msg_num", "openim/get_c2c_unread_msg_num", 200.0;
    ImportGroup => "import_group", "group_open_http_svc/import_group", 200.0;
    ImportGroupMember => "import_group_member", "group_open_http_svc/import_group_member", 200.0;
    ImportGroupMsg => "import_group_msg", "group_open_http_svc/import_group_msg", 200.0;
    SetUnreadMsgNum => "set_unread_msg_num", "group_open_http_svc/set_unread_msg_num", 200.0;
    CreateGroup => "create_group", "group_open_http_svc/create_group", 200.0;
    ModifyGroupBaseInfo => "modify_group_base_info", "group_open_http_svc/modify_group_base_info", 200.0;
    /// The limit is not stated on the page; 200/s is the norm for group APIs (reference §1.5, UNCONFIRMED).
    DestroyGroup => "destroy_group", "group_open_http_svc/destroy_group", 200.0;
    AddGroupMember => "add_group_member", "group_open_http_svc/add_group_member", 200.0;
    DeleteGroupMember => "delete_group_member", "group_open_http_svc/delete_group_member", 200.0;
    SendGroupMsg => "send_group_msg", "group_open_http_svc/send_group_msg", 200.0;
    /// Documented at 1 call per second for the whole app (reference §11.6).
    GetAppidGroupList => "get_appid_group_list", "group_open_http_svc/get_appid_group_list", 1.0;
    GetGroupInfo => "get_group_info", "group_open_http_svc/get_group_info", 200.0;
    GetGroupMemberInfo => "get_group_member_info", "group_open_http_svc/get_group_member_info", 200.0;
    /// 200/s on the current page; an older CN revision said 100/s (reference §11.9).
    GroupMsgGetSimple => "group_msg_get_simple", "group_open_http_svc/group_msg_get_simple", 200.0;
    /// A user's conversation list (reference §11.14a).
    RecentContactGetList => "get_list", "recentcontact/get_list", 200.0;
}

impl Api {
    /// Position in [`Api::ALL`], for array-indexed per-API state.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Api {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Api {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_indexes_agree() {
        for (i, api) in Api::ALL.iter().enumerate() {
            assert_eq!(api.index(), i);
            assert_eq!(api.as_str().parse::<Api>(), Ok(*api));
            assert!(api.path().ends_with(api.as_str()), "{api:?}");
            assert!(api.documented_rate_per_sec() >= 1.0);
        }
        assert_eq!(Api::MultiAccountImport.documented_rate_per_sec(), 100.0);
        assert_eq!(Api::GetAppidGroupList.documented_rate_per_sec(), 1.0);
        assert!("quit_group".parse::<Api>().is_err());
    }
}
