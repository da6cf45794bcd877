//! [`ImError`]: every way an IM call can fail, and what the pipeline should do about it.
//!
//! The retry-or-dead-letter decision is made here, from IM's error code or the transport failure, so no
//! caller re-derives it. The client itself retries [`Disposition::Retry`] errors with backoff before giving
//! up; when it does give up, the same classification tells the consumer to retry the event later.

use imbridge_core::disposition::{Classify, Disposition};

use crate::api::Api;

/// IM error codes that mean "too many requests": back off and try again (reference §1.4, §6).
pub const FREQUENCY_LIMIT_CODES: [i64; 4] = [60007, 60011, 60018, 60019];

/// IM error codes that mean a transient server-side failure (internal error or timeout).
///
/// - 60008 service timeout, 60014 account swap timeout (§1.4);
/// - 70169 / 70202 internal timeout, 70500 internal error (§1.4);
/// - 10002 group internal error, 10006 group rate limit, 10023 group message frequency limit (§6);
/// - 20004 network error, 20005 internal error (sendmsg, §5.3);
/// - 90992 / 90994 / 90995 / 91000 internal errors of the message service (§5.3, §11.4);
/// - 30006 / 30007 sns internal error / timeout, 30008 friend write conflict (§4.4: "use batches", which a
///   retry after the concurrent write finished resolves);
/// - 40006 profile internal error (§4.3).
pub const TRANSIENT_CODES: [i64; 18] = [
    60008, 60014, 70169, 70202, 70500, 10002, 10006, 10023, 20004, 20005, 90992, 90994, 90995, 91000, 30006, 30007,
    30008, 40006,
];

/// 70001: the UserSig in the query expired. Retryable: the client drops its cached signature and signs anew.
pub const USERSIG_EXPIRED: i64 = 70001;

/// Whether an IM error code is worth retrying.
pub fn is_retryable_code(code: i64) -> bool {
    FREQUENCY_LIMIT_CODES.contains(&code) || TRANSIENT_CODES.contains(&code) || code == USERSIG_EXPIRED
}

/// A failed IM call.
#[derive(Debug, thiserror::Error)]
pub enum ImError {
    /// IM answered `ActionStatus: "FAIL"` or a non-zero `ErrorCode`.
    #[error("im {api} failed with {code}: {info}")]
    Api { api: Api, code: i64, info: String },
    /// IM (or a proxy in front of it) answered with a non-200 HTTP status.
    #[error("im {api} answered http {status}: {body}")]
    Http { api: Api, status: u16, body: String },
    /// No answer within the request timeout.
    #[error("im {api} timed out")]
    Timeout { api: Api },
    /// The connection could not be made or broke mid-request.
    #[error("im {api} connection failed: {reason}")]
    Connect { api: Api, reason: String },
    /// HTTP 200 whose body is not the JSON IM documents for this API.
    #[error("im {api} answered a body that does not parse: {reason}")]
    BadResponse { api: Api, reason: String },
    /// A message body element that imbridge cannot map between IM and the canonical shape.
    #[error("message body cannot be mapped: {0}")]
    Body(String),
    /// The client configuration is not usable.
    #[error("im client configuration: {0}")]
    Config(String),
}

impl ImError {
    /// The IM error code, when IM answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ImError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The API the failed call was made to, if any.
    pub fn api(&self) -> Option<Api> {
        match self {
            ImError::Api { api, .. }
            | ImError::Http { api, .. }
            | ImError::Timeout { api }
            | ImError::Connect { api, .. }
            | ImError::BadResponse { api, .. } => Some(*api),
            ImError::Body(_) | ImError::Config(_) => None,
        }
    }

    /// True for IM's frequency-limit codes (60007 and its siblings).
    pub fn is_frequency_limit(&self) -> bool {
        self.code().is_some_and(|c| FREQUENCY_LIMIT_CODES.contains(&c))
    }

    /// True when trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ImError::Api { code, .. } => is_retryable_code(*code),
            // 5xx is a gateway or server failure; 429 is a throttle in front of IM. Other 4xx are our fault.
            ImError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            ImError::Timeout { .. } | ImError::Connect { .. } => true,
            // A 200 whose body we cannot read will read the same next time.
            ImError::BadResponse { .. } | ImError::Body(_) | ImError::Config(_) => false,
        }
    }
}

impl Classify for ImError {
    fn disposition(&self) -> Disposition {
        if self.is_retryable() { Disposition::Retry } else { Disposition::DeadLetter }
    }

    fn kind(&self) -> String {
        match self {
            ImError::Api { code, .. } => format!("im_{code}"),
            ImError::Http { status, .. } => format!("im_http_{status}"),
            ImError::Timeout { .. } => "im_timeout".into(),
            ImError::Connect { .. } => "im_connect".into(),
            ImError::BadResponse { .. } => "im_bad_response".into(),
            ImError::Body(_) => "im_body".into(),
            ImError::Config(_) => "im_config".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_err(code: i64) -> ImError {
        ImError::Api { api: Api::ImportMsg, code, info: String::new() }
    }

    #[test]
    fn classification() {
        for code in [60007, 60011, 60018, 60019, 70169, 70202, 70500, 10002, 20004, 20005, 90992, 91000, 70001] {
            assert_eq!(api_err(code).disposition(), Disposition::Retry, "{code}");
        }
        // bad params, missing account, too long, no permission, moderation, group id in use
        for code in [90001, 90008, 90012, 93000, 70107, 70402, 70403, 10004, 10007, 10010, 80001, 10021, 70009] {
            assert_eq!(api_err(code).disposition(), Disposition::DeadLetter, "{code}");
        }
        assert!(api_err(60007).is_frequency_limit());
        assert_eq!(api_err(60007).kind(), "im_60007");
        let http = |status| ImError::Http { api: Api::SendMsg, status, body: String::new() };
        assert_eq!(http(502).disposition(), Disposition::Retry);
        assert_eq!(http(502).kind(), "im_http_502");
        assert_eq!(http(404).disposition(), Disposition::DeadLetter);
        assert_eq!(ImError::Timeout { api: Api::SendMsg }.kind(), "im_timeout");
        assert_eq!(ImError::Timeout { api: Api::SendMsg }.disposition(), Disposition::Retry);
        let bad = ImError::BadResponse { api: Api::SendMsg, reason: "x".into() };
        assert_eq!(bad.disposition(), Disposition::DeadLetter);
    }
}
