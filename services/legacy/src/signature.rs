//! Request signatures for both directions of the contract.
//!
//! `X-Imbridge-Timestamp: <unix seconds>` and `X-Imbridge-Signature: v1=<hex HMAC-SHA256(secret,
//! "<timestamp>.<raw body>")>`. Signing the timestamp with the body makes a captured request useless after
//! the tolerance window (default 300 s, either side of now, since clocks drift both ways).
//!
//! Rotation: a verifier holds several secrets and accepts a request signed with any of them, and a signature
//! header may carry several `v1=` values (space or comma separated), so a sender can sign with the old and
//! the new secret while receivers are switched over. Comparison is constant-time (`Mac::verify_slice`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-imbridge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-imbridge-signature";
/// Sent by imbridge on apply requests: the id of the batch's first event.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// How far a timestamp may be from the verifier's clock, in seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// A shared signing secret. Its `Debug` never prints the value, so configs can be logged.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "SigningSecret(<empty>)" } else { "SigningSecret(<redacted>)" })
    }
}

impl AsRef<[u8]> for SigningSecret {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Why a request's signature was refused. Every variant is a `401` on the receiving side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {header} header: {reason}")]
    Malformed { header: &'static str, reason: String },
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    Stale { timestamp: i64, now: i64, tolerance_secs: u64 },
    #[error("signature does not match the body with any configured secret")]
    Mismatch,
}

impl SignatureError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing",
            SignatureError::Malformed { .. } => "malformed",
            SignatureError::Stale { .. } => "stale",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this constructor cannot fail; the fallback is unreachable.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Imbridge-Signature` value for `body` sent at `timestamp_secs`: `v1=<64 hex digits>`.
pub fn sign(secret: impl AsRef<[u8]>, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = mac(secret.as_ref(), &timestamp_secs.to_string(), body).finalize().into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// Both signature headers for a request, ready to attach.
pub fn signature_headers(secret: impl AsRef<[u8]>, timestamp_secs: i64, body: &[u8]) -> [(&'static str, String); 2] {
    [(TIMESTAMP_HEADER, timestamp_secs.to_string()), (SIGNATURE_HEADER, sign(secret, timestamp_secs, body))]
}

/// The current Unix time in seconds.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Verifies a request from its headers. See [`verify_parts`].
pub fn verify<S: AsRef<[u8]>>(
    secrets: &[S],
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let get = |name: &'static str| -> Result<Option<&str>, SignatureError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(Some)
                .map_err(|_| SignatureError::Malformed { header: name, reason: "not visible ASCII".into() }),
        }
    };
    verify_parts(secrets, get(TIMESTAMP_HEADER)?, get(SIGNATURE_HEADER)?, body, now_secs, tolerance_secs)
}

/// Verifies a request from the two header values. Checks, in order: both present, both well formed, the
/// timestamp within `tolerance_secs` of `now_secs`, and one `v1=` signature matching one secret.
pub fn verify_parts<S: AsRef<[u8]>>(
    secrets: &[S],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let ts_raw = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?.trim();
    let sig_raw = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = ts_raw
        .parse()
        .ok()
        .filter(|_| ts_raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| SignatureError::Malformed { header: TIMESTAMP_HEADER, reason: "not Unix seconds".into() })?;
    let mut candidates = Vec::new();
    for part in sig_raw.split([' ', ',']).filter(|p| !p.is_empty()) {
        // Unknown schemes are skipped so a future `v2=` can be sent beside `v1=` without breaking receivers.
        let Some(hex_tag) = part.strip_prefix("v1=") else { continue };
        let tag = hex::decode(hex_tag).ok().filter(|t| t.len() == 32).ok_or_else(|| SignatureError::Malformed {
            header: SIGNATURE_HEADER,
            reason: "v1 value is not 64 hex digits".into(),
        })?;
        candidates.push(tag);
    }
    if candidates.is_empty() {
        return Err(SignatureError::Malformed { header: SIGNATURE_HEADER, reason: "no v1= signature".into() });
    }
    if ts.abs_diff(now_secs) > tolerance_secs {
        return Err(SignatureError::Stale { timestamp: ts, now: now_secs, tolerance_secs });
    }
    // The MAC is computed over the timestamp exactly as sent, so a sender's leading zeros still verify.
    for secret in secrets {
        let m = mac(secret.as_ref(), ts_raw, body);
        if candidates.iter().any(|tag| m.clone().verify_slice(tag).is_ok()) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// A receiver's verification settings, for services that check every request the same way.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<SigningSecret>,
    tolerance_secs: u64,
}

impl Verifier {
    /// Accepts requests signed with any of `secrets` (the current one and any still rotating out).
    pub fn new(secrets: Vec<SigningSecret>, tolerance_secs: u64) -> Self {
        Self { secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(), tolerance_secs }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        verify(&self.secrets, headers, body, now_secs(), self.tolerance_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of docs/legacy-contract.md; keep both in step.
    const SECRET: &str = "whsec_example_1";
    const TS: i64 = 1_700_000_000;
    const BODY: &str = r#"{"events":[{"id":"m-1","type":"c2c.message","time":1700000000123,"from":"ann","to":"bob","body":[{"type":"text","text":"hi"}]}]}"#;
    const SIG: &str = "v1=e77db3afcb3ea123b6ef0d4fecb0ad40b29f57304d35b85dbb3662b92a42f3a5";

    #[test]
    fn worked_example_vector() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIG);
        assert_eq!(verify_parts(&[SECRET], Some("1700000000"), Some(SIG), BODY.as_bytes(), TS + 10, 300), Ok(()));
    }

    #[test]
    fn hmac_primitive_matches_rfc4231() {
        // RFC 4231 test case 2 (key "Jefe"): guards against a wrong hash or key handling underneath `sign`.
        let mut m = HmacSha256::new_from_slice(b"Jefe").expect("key");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn distinct_errors() {
        let b = BODY.as_bytes();
        let ts = "1700000000";
        assert_eq!(
            verify_parts(&[SECRET], None, Some(SIG), b, TS, 300),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(verify_parts(&[SECRET], Some(ts), None, b, TS, 300), Err(SignatureError::Missing(SIGNATURE_HEADER)));
        for bad_ts in ["", "abc", "-5", "1.5", "+17"] {
            let e = verify_parts(&[SECRET], Some(bad_ts), Some(SIG), b, TS, 300).expect_err(bad_ts);
            assert!(matches!(e, SignatureError::Malformed { header: TIMESTAMP_HEADER, .. }), "{bad_ts}: {e:?}");
        }
        for bad_sig in ["", "v1=zz", "v0=abcd", "v1=abcd", "sha256=00"] {
            let e = verify_parts(&[SECRET], Some(ts), Some(bad_sig), b, TS, 300).expect_err(bad_sig);
            assert!(matches!(e, SignatureError::Malformed { header: SIGNATURE_HEADER, .. }), "{bad_sig}: {e:?}");
        }
        assert_eq!(
            verify_parts(&[SECRET], Some(ts), Some(SIG), b, TS + 301, 300),
            Err(SignatureError::Stale { timestamp: TS, now: TS + 301, tolerance_secs: 300 })
        );
        assert!(matches!(
            verify_parts(&[SECRET], Some(ts), Some(SIG), b, TS - 301, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(verify_parts(&[SECRET], Some(ts), Some(SIG), b, TS + 300, 300), Ok(()));
        assert_eq!(verify_parts(&["other"], Some(ts), Some(SIG), b, TS, 300), Err(SignatureError::Mismatch));
        // One changed byte in the body, or a different timestamp, breaks the signature.
        let tampered = BODY.replace("hi", "ho");
        assert_eq!(
            verify_parts(&[SECRET], Some(ts), Some(SIG), tampered.as_bytes(), TS, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_parts(&[SECRET], Some("1700000001"), Some(SIG), b, TS, 300), Err(SignatureError::Mismatch));
        let no_secrets: [&str; 0] = [];
        assert_eq!(verify_parts(&no_secrets, Some(ts), Some(SIG), b, TS, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rotation_any_secret_any_signature() {
        let b = BODY.as_bytes();
        let ts = "1700000000";
        // Receiver knows old and new; sender still signs with the old one.
        assert_eq!(verify_parts(&["new-secret", SECRET], Some(ts), Some(SIG), b, TS, 300), Ok(()));
        // Sender signs with both; receiver knows only the new one.
        let both = format!("{} {}", sign(SECRET, TS, b), sign("new-secret", TS, b));
        assert_eq!(verify_parts(&["new-secret"], Some(ts), Some(&both), b, TS, 300), Ok(()));
        let both_comma = format!("{},{}", sign("new-secret", TS, b), SIG);
        assert_eq!(verify_parts(&[SECRET], Some(ts), Some(&both_comma), b, TS, 300), Ok(()));
        // A future scheme beside v1 is ignored.
        let with_v2 = format!("v2=whatever {SIG}");
        assert_eq!(verify_parts(&[SECRET], Some(ts), Some(&with_v2), b, TS, 300), Ok(()));
    }

    #[test]
    fn verify_reads_headers_case_insensitively() {
        let b = BODY.as_bytes();
        let mut h = HeaderMap::new();
        for (k, v) in signature_headers(SECRET, TS, b) {
            h.insert(k, v.parse().expect("header value"));
        }
        assert_eq!(verify(&[SECRET], &h, b, TS, DEFAULT_TOLERANCE_SECS), Ok(()));
        let v = Verifier::new(vec![SigningSecret::new(SECRET)], 300);
        // The real clock is far from TS, so the verifier refuses it as stale: proves it uses now.
        assert!(matches!(v.verify(&h, b), Err(SignatureError::Stale { .. })));
        assert_eq!(format!("{:?}", SigningSecret::new("s3cr3t")), "SigningSecret(<redacted>)");
    }
}
