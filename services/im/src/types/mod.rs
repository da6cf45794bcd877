//! Typed request and response bodies of every IM REST API imbridge uses, with serde names exactly as IM
//! spells them.
//!
//! Requests skip unset optional fields (IM treats an absent field differently from a zero). Responses
//! ignore unknown fields and default missing ones, because IM adds fields over time and omits empty lists.
//! Both directions derive `Serialize` and `Deserialize` so the emulator can reuse the same structs.
//!
//! - [`account`]: accounts and profiles (import, check, portrait set/get);
//! - [`sns`]: friend lists (import, paged get);
//! - [`c2c`]: one-to-one messages (import, send, read marks, history, unread counts);
//! - [`group`]: groups, members and group messages;
//! - [`recentcontact`]: a user's conversation list with each conversation's latest message time.

pub mod account;
pub mod c2c;
pub mod group;
pub mod recentcontact;
pub mod sns;

use serde::{Deserialize, Serialize};

/// The common envelope of every IM response (reference §1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Envelope {
    /// `"OK"` or `"FAIL"`.
    #[serde(rename = "ActionStatus")]
    pub action_status: String,
    /// 0 on success.
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    /// Human-readable error, `""` on success.
    #[serde(rename = "ErrorInfo")]
    pub error_info: String,
    /// Present on some profile/sns APIs, usually `""`.
    #[serde(rename = "ErrorDisplay", skip_serializing_if = "Option::is_none")]
    pub error_display: Option<String>,
}

impl Envelope {
    /// A success envelope.
    pub fn ok() -> Self {
        Self { action_status: "OK".into(), error_code: 0, error_info: String::new(), error_display: None }
    }

    /// A failure envelope.
    pub fn fail(code: i64, info: impl Into<String>) -> Self {
        Self { action_status: "FAIL".into(), error_code: code, error_info: info.into(), error_display: None }
    }

    /// IM's own rule (reference §1.3): `ActionStatus == "FAIL" || ErrorCode != 0` is a failure.
    pub fn is_ok(&self) -> bool {
        self.action_status != "FAIL" && self.error_code == 0
    }
}

/// The body of APIs whose response is the envelope alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmptyResp {}

/// A `{"Key", "Value"}` pair (group / member custom data).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// `{"Member_Account": …}`, the element of several member lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberAccount {
    #[serde(rename = "Member_Account")]
    pub member_account: String,
}

impl MemberAccount {
    pub fn new(id: impl Into<String>) -> Self {
        Self { member_account: id.into() }
    }
}

/// Deserializes an optional integer IM sometimes writes as a string (`EventTime`, `MsgReadTime`).
pub mod opt_int_or_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_i64(*n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Str(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Int(n)) => Ok(Some(n)),
            Some(Raw::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            Some(Raw::Float(f)) => Err(serde::de::Error::custom(format!("{f} is not an integer"))),
            Some(Raw::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(Raw::Str(s)) => {
                s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rule() {
        let e: Envelope = serde_json::from_str(
            r#"{"ActionStatus":"FAIL","ErrorInfo":"Fail to Parse json data of body, Please check it","ErrorCode":90001}"#,
        )
        .expect("sample failure");
        assert!(!e.is_ok());
        assert_eq!(e.error_code, 90001);
        let ok: Envelope =
            serde_json::from_str(r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RequestId":"x"}"#)
                .expect("sample ok with unknown field");
        assert!(ok.is_ok());
        // Either signal alone is a failure.
        assert!(!Envelope { action_status: "OK".into(), error_code: 5, ..Envelope::default() }.is_ok());
        assert!(!Envelope { action_status: "FAIL".into(), error_code: 0, ..Envelope::default() }.is_ok());
        assert_eq!(
            serde_json::to_value(Envelope::fail(60007, "x")).expect("ser"),
            serde_json::json!({"ActionStatus":"FAIL","ErrorCode":60007,"ErrorInfo":"x"})
        );
    }

    #[test]
    fn int_or_string() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, with = "opt_int_or_string")]
            t: Option<i64>,
        }
        let p = |s: &str| serde_json::from_str::<T>(s).map(|t| t.t);
        assert_eq!(p(r#"{"t":1670574414123}"#).expect("int"), Some(1_670_574_414_123));
        assert_eq!(p(r#"{"t":"1670574414123"}"#).expect("string"), Some(1_670_574_414_123));
        assert_eq!(p(r#"{}"#).expect("absent"), None);
        assert_eq!(p(r#"{"t":null}"#).expect("null"), None);
        assert!(p(r#"{"t":"soon"}"#).is_err());
    }
}
