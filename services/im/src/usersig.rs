//! UserSig (TLSSigAPIv2): the credential IM expects in every REST call's `usersig` query parameter.
//!
//! A UserSig is a zlib-compressed JSON document carrying an HMAC-SHA256 over four fixed lines
//! (identifier, sdkappid, time, expire), base64-encoded with IM's URL-safe alphabet (`+`→`*`, `/`→`-`, `=`→`_`).
//! [`generate`] follows the official signers byte for byte in the signed content; [`verify`] mirrors the Go
//! library's `VerifyUserSig` check order so the emulator answers exactly like the real service would.

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A decompressed UserSig larger than this is refused: real ones are ~200 bytes, and the cap keeps a
/// zlib bomb sent to the emulator from exhausting memory.
const MAX_DECODED_BYTES: u64 = 16 * 1024;

/// The signed claims inside a UserSig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The UserID the signature was issued for.
    pub identifier: String,
    /// The application the signature belongs to.
    pub sdkappid: u64,
    /// Issue time, Unix seconds.
    pub time: u64,
    /// Lifetime in seconds, counted from `time`.
    pub expire: u64,
}

impl Claims {
    /// Unix second after which the signature is expired (`time + expire`).
    pub fn expires_at(&self) -> u64 {
        self.time.saturating_add(self.expire)
    }
}

/// Why a UserSig was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    /// Not base64 / not zlib / not the expected JSON document.
    #[error("usersig is malformed: {0}")]
    Malformed(String),
    /// The sdkappid inside the signature is not the one of the request.
    #[error("usersig sdkappid {in_sig} does not match request sdkappid {expected}")]
    SdkAppIdMismatch { expected: u64, in_sig: u64 },
    /// The identifier inside the signature is not the one of the request.
    #[error("usersig identifier {in_sig:?} does not match request identifier {expected:?}")]
    IdentifierMismatch { expected: String, in_sig: String },
    /// `now > time + expire`.
    #[error("usersig expired at {expired_at} (now {now})")]
    Expired { expired_at: u64, now: u64 },
    /// The HMAC does not match: wrong key or tampered claims.
    #[error("usersig signature does not verify")]
    BadSignature,
}

impl UserSigError {
    /// The IM error code the real service answers with for this failure.
    ///
    /// UNCONFIRMED mapping (reference §2.1): inferred from the error-code table — 70003 "UserSig parse failure",
    /// 70014 sdkappid mismatch, 70013 identifier mismatch, 70001 expired, 70009 verification failed.
    pub fn im_error_code(&self) -> i64 {
        match self {
            UserSigError::Malformed(_) => 70003,
            UserSigError::SdkAppIdMismatch { .. } => 70014,
            UserSigError::IdentifierMismatch { .. } => 70013,
            UserSigError::Expired { .. } => 70001,
            UserSigError::BadSignature => 70009,
        }
    }
}

/// The four-line content the HMAC covers; every line ends with `\n`, the last one included.
fn content(identifier: &str, sdkappid: u64, time: u64, expire: u64) -> String {
    format!("TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n")
}

/// HMAC-SHA256 over the signed content, or `None` if the MAC rejected the key (it never does: HMAC takes keys of
/// any length; the `Result` exists only for fixed-key MACs).
fn mac(key: &str, identifier: &str, sdkappid: u64, time: u64, expire: u64) -> Option<HmacSha256> {
    // The console secret key is used as its literal UTF-8 bytes, not hex-decoded (reference §2.1).
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(content(identifier, sdkappid, time, expire).as_bytes());
    Some(mac)
}

/// `TLS.sig`: standard base64 (with `+ / =`) of HMAC-SHA256(key, content).
pub fn hmac_sig(key: &str, identifier: &str, sdkappid: u64, time: u64, expire: u64) -> String {
    mac(key, identifier, sdkappid, time, expire).map(|m| STANDARD.encode(m.finalize().into_bytes())).unwrap_or_default()
}

fn to_im_alphabet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

fn from_im_alphabet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect()
}

/// Generates a UserSig for `identifier`, issued at `now_secs`, valid for `expire_secs`.
pub fn generate(sdkappid: u64, key: &str, identifier: &str, expire_secs: u64, now_secs: u64) -> String {
    let sig = hmac_sig(key, identifier, sdkappid, now_secs, expire_secs);
    let doc = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire_secs,
        "TLS.time": now_secs,
        "TLS.sig": sig,
    });
    let json = doc.to_string();
    let mut enc = ZlibEncoder::new(Vec::with_capacity(json.len()), Compression::default());
    // Writing into a Vec cannot fail; fall back to an empty stream (which then fails verification) rather
    // than panic if it ever did.
    let compressed = enc.write_all(json.as_bytes()).and_then(|()| enc.finish()).unwrap_or_default();
    to_im_alphabet(&STANDARD.encode(compressed))
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "TLS.identifier")]
    identifier: String,
    #[serde(rename = "TLS.sdkappid")]
    sdkappid: u64,
    #[serde(rename = "TLS.time")]
    time: u64,
    #[serde(rename = "TLS.expire")]
    expire: u64,
    #[serde(rename = "TLS.sig")]
    sig: String,
    /// Only TRTC's PrivateMapKey uses it; IM never does, but a signature carrying one must include it in the
    /// signed content, so we refuse it rather than verify it wrongly.
    #[serde(rename = "TLS.userbuf", default)]
    userbuf: Option<String>,
}

/// Decodes a UserSig without checking it: returns its claims and its `TLS.sig`.
pub fn decode(sig: &str) -> Result<(Claims, String), UserSigError> {
    let raw =
        STANDARD.decode(from_im_alphabet(sig.trim())).map_err(|e| UserSigError::Malformed(format!("base64: {e}")))?;
    let mut json = Vec::new();
    ZlibDecoder::new(raw.as_slice())
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| UserSigError::Malformed(format!("zlib: {e}")))?;
    if json.len() as u64 > MAX_DECODED_BYTES {
        return Err(UserSigError::Malformed("decoded document too large".into()));
    }
    let doc: Doc = serde_json::from_slice(&json).map_err(|e| UserSigError::Malformed(format!("json: {e}")))?;
    if doc.userbuf.is_some() {
        return Err(UserSigError::Malformed("TLS.userbuf is not used by IM".into()));
    }
    let claims = Claims { identifier: doc.identifier, sdkappid: doc.sdkappid, time: doc.time, expire: doc.expire };
    Ok((claims, doc.sig))
}

/// Verifies a UserSig for a request made as `identifier` of `sdkappid` at `now_secs`.
///
/// Checks in the order of the official Go verifier (reference §2.1): sdkappid, identifier, expiry, signature —
/// so a request failing several checks gets the same error code as from the real service.
pub fn verify(sig: &str, sdkappid: u64, key: &str, identifier: &str, now_secs: u64) -> Result<Claims, UserSigError> {
    let (claims, tls_sig) = decode(sig)?;
    if claims.sdkappid != sdkappid {
        return Err(UserSigError::SdkAppIdMismatch { expected: sdkappid, in_sig: claims.sdkappid });
    }
    if claims.identifier != identifier {
        return Err(UserSigError::IdentifierMismatch { expected: identifier.to_owned(), in_sig: claims.identifier });
    }
    if now_secs > claims.expires_at() {
        return Err(UserSigError::Expired { expired_at: claims.expires_at(), now: now_secs });
    }
    let given = STANDARD.decode(tls_sig.as_bytes()).map_err(|_| UserSigError::BadSignature)?;
    // verify_slice compares in constant time.
    mac(key, &claims.identifier, claims.sdkappid, claims.time, claims.expire)
        .ok_or(UserSigError::BadSignature)?
        .verify_slice(&given)
        .map_err(|_| UserSigError::BadSignature)?;
    Ok(claims)
}

/// The outcome of checking a UserSig for an operator (`imbridge im usersig --verify`): what it claims, and
/// whether it holds for this app and key at this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The decoded claims, unless the signature does not even decode.
    pub claims: Option<Claims>,
    /// `Ok` when the signature is valid for its own identifier, this sdkappid and key, now.
    pub verdict: Result<(), UserSigError>,
}

impl Inspection {
    pub fn is_valid(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// Decodes `sig` and verifies it for the identifier it names.
pub fn inspect(sig: &str, sdkappid: u64, key: &str, now_secs: u64) -> Inspection {
    match decode(sig) {
        Err(e) => Inspection { claims: None, verdict: Err(e) },
        Ok((claims, _)) => {
            let verdict = verify(sig, sdkappid, key, &claims.identifier, now_secs).map(|_| ());
            Inspection { claims: Some(claims), verdict }
        }
    }
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |secs: u64| {
            i64::try_from(secs)
                .map(|s| imbridge_core::TimestampMs::from_secs(s).to_rfc3339())
                .unwrap_or_else(|_| secs.to_string())
        };
        match &self.verdict {
            Ok(()) => writeln!(f, "valid")?,
            Err(e) => writeln!(f, "invalid: {e} (IM error {})", e.im_error_code())?,
        }
        if let Some(c) = &self.claims {
            writeln!(f, "identifier: {}", c.identifier)?;
            writeln!(f, "sdkappid:   {}", c.sdkappid)?;
            writeln!(f, "issued:     {} ({})", at(c.time), c.time)?;
            writeln!(f, "expires:    {} ({}, lifetime {} s)", at(c.expires_at()), c.expires_at(), c.expire)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const APP: u64 = 1_400_000_000;
    const T: u64 = 1_700_000_000;

    #[test]
    fn reference_hmac_vectors() {
        assert_eq!(hmac_sig(KEY, "xiaojun", APP, T, 15_552_000), "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4=");
        assert_eq!(hmac_sig(KEY, "administrator", APP, T, 86_400), "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60=");
    }

    #[test]
    fn reference_usersig_decodes_and_verifies() {
        // The reference's UserSig, produced by the official Python signer.
        let sig = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__";
        let (claims, tls) = decode(sig).expect("official sig decodes");
        assert_eq!(claims, Claims { identifier: "xiaojun".into(), sdkappid: APP, time: T, expire: 15_552_000 });
        assert_eq!(tls, "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4=");
        let c = verify(sig, APP, KEY, "xiaojun", T + 10).expect("official sig verifies");
        assert_eq!(c.expires_at(), T + 15_552_000);
    }

    #[test]
    fn generate_decode_verify_round_trip() {
        let sig = generate(APP, KEY, "administrator", 86_400, T);
        assert!(sig.chars().all(|c| c.is_ascii_alphanumeric() || "*-_".contains(c)), "{sig}");
        let (claims, tls) = decode(&sig).expect("decodes");
        assert_eq!(tls, "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60=");
        assert_eq!(claims.identifier, "administrator");
        let c = verify(&sig, APP, KEY, "administrator", T).expect("verifies");
        assert_eq!(c, claims);
        // Valid up to and including the last second.
        assert!(verify(&sig, APP, KEY, "administrator", T + 86_400).is_ok());
    }

    #[test]
    fn failure_cases_in_order() {
        let sig = generate(APP, KEY, "alice", 100, T);
        let e = verify("not*a*sig!", APP, KEY, "alice", T).expect_err("garbage");
        assert!(matches!(e, UserSigError::Malformed(_)));
        assert_eq!(e.im_error_code(), 70003);

        // Valid base64 but not zlib.
        let e = verify("aGVsbG8_", APP, KEY, "alice", T).expect_err("not zlib");
        assert_eq!(e.im_error_code(), 70003);

        // sdkappid checked before everything else, even with a wrong key and expired.
        let e = verify(&sig, APP + 1, "wrong", "bob", T + 1000).expect_err("sdkappid");
        assert_eq!(e, UserSigError::SdkAppIdMismatch { expected: APP + 1, in_sig: APP });
        assert_eq!(e.im_error_code(), 70014);

        let e = verify(&sig, APP, "wrong", "bob", T + 1000).expect_err("identifier");
        assert_eq!(e, UserSigError::IdentifierMismatch { expected: "bob".into(), in_sig: "alice".into() });
        assert_eq!(e.im_error_code(), 70013);

        let e = verify(&sig, APP, "wrong", "alice", T + 101).expect_err("expired");
        assert_eq!(e, UserSigError::Expired { expired_at: T + 100, now: T + 101 });
        assert_eq!(e.im_error_code(), 70001);

        let e = verify(&sig, APP, "wrong", "alice", T).expect_err("bad key");
        assert_eq!(e, UserSigError::BadSignature);
        assert_eq!(e.im_error_code(), 70009);
    }

    #[test]
    fn inspection_reports_claims_and_verdict() {
        let sig = generate(APP, KEY, "alice", 100, T);
        let ok = inspect(&sig, APP, KEY, T + 1);
        assert!(ok.is_valid());
        let text = ok.to_string();
        assert!(text.starts_with("valid\n"), "{text}");
        assert!(text.contains("identifier: alice"), "{text}");
        assert!(text.contains("2023-11-14T22:15:00Z"), "expiry as a date: {text}");
        let expired = inspect(&sig, APP, KEY, T + 101);
        assert_eq!(expired.verdict, Err(UserSigError::Expired { expired_at: T + 100, now: T + 101 }));
        assert!(expired.to_string().contains("IM error 70001"));
        let garbage = inspect("zzz", APP, KEY, T);
        assert!(garbage.claims.is_none() && !garbage.is_valid());
    }

    #[test]
    fn tampered_claims_fail_signature() {
        // Re-sign the document with a longer expire but keep the old TLS.sig: must not verify.
        let good = hmac_sig(KEY, "alice", APP, T, 100);
        let doc = serde_json::json!({"TLS.ver":"2.0","TLS.identifier":"alice","TLS.sdkappid":APP,
            "TLS.expire":999_999,"TLS.time":T,"TLS.sig":good});
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::none());
        enc.write_all(doc.to_string().as_bytes()).expect("write to vec");
        let forged = to_im_alphabet(&STANDARD.encode(enc.finish().expect("finish")));
        assert_eq!(verify(&forged, APP, KEY, "alice", T + 500), Err(UserSigError::BadSignature));
    }
}
