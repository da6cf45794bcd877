//! The receiving side of legacy → imbridge webhooks, in one call, for the ingest service.
//!
//! [`receive`] does what the contract requires before anything is produced to Kafka, in this order:
//! verify the signature (before parsing a byte of the body), parse and validate the whole batch, then set
//! aside echoes (`"origin":"im"`: events imbridge itself wrote). What remains is what ingest produces; its
//! `200 {"accepted":N}` counts every event of the batch, echoes included, because the sender must not resend
//! them either.

use http::HeaderMap;
use imbridge_core::{Envelope, TimestampMs};

use crate::contract::{AcceptedBody, BatchError, ContractEvent, ErrorsBody, parse_batch};
use crate::signature::{SignatureError, Verifier};

/// Why a webhook request is refused; nothing of it is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error(transparent)]
    Unauthorized(#[from] SignatureError),
    #[error(transparent)]
    BadBatch(#[from] BatchError),
}

impl WebhookRejection {
    /// The HTTP status the contract prescribes: 401 or 400.
    pub fn status(&self) -> u16 {
        match self {
            WebhookRejection::Unauthorized(_) => 401,
            WebhookRejection::BadBatch(_) => 400,
        }
    }

    /// The answer body: `{"errors":[{"index":i,"error":"…"}]}` for a bad batch, `{"errors":[{"error":"…"}]}`
    /// for a signature problem.
    pub fn body(&self) -> ErrorsBody {
        match self {
            WebhookRejection::BadBatch(b) => b.to_body(),
            WebhookRejection::Unauthorized(e) => {
                ErrorsBody { errors: vec![crate::contract::IndexedError { index: None, error: e.to_string() }] }
            }
        }
    }

    /// A bounded label for metrics: `missing`, `malformed`, `stale`, `mismatch`, or `bad_batch`.
    pub fn kind(&self) -> &'static str {
        match self {
            WebhookRejection::Unauthorized(e) => e.kind(),
            WebhookRejection::BadBatch(_) => "bad_batch",
        }
    }
}

/// A verified, valid batch split into what to produce and what to drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Events the legacy system's users caused, in batch order.
    pub events: Vec<ContractEvent>,
    /// Events carrying `"origin":"im"`: echoes of imbridge's own writes, dropped (count them).
    pub echoes: usize,
}

impl Received {
    /// The answer once every event is durably written: `{"accepted":N}` with N the whole batch.
    pub fn accepted(&self) -> AcceptedBody {
        AcceptedBody { accepted: self.events.len() + self.echoes }
    }

    /// The canonical envelopes to produce, stamped with the time ingest accepted them.
    pub fn into_envelopes(self, recorded_at: TimestampMs) -> Vec<Envelope> {
        self.events.into_iter().map(|e| e.into_envelope(Some(recorded_at))).collect()
    }
}

/// Verifies, parses and filters one webhook request.
pub fn receive(verifier: &Verifier, headers: &HeaderMap, body: &[u8]) -> Result<Received, WebhookRejection> {
    verifier.verify(headers, body)?;
    let all = parse_batch(body)?;
    let total = all.len();
    let events: Vec<ContractEvent> = all.into_iter().filter(|e| !e.is_echo()).collect();
    Ok(Received { echoes: total - events.len(), events })
}

#[cfg(test)]
mod tests {
    use imbridge_core::{EventId, Source};

    use super::*;
    use crate::signature::{SigningSecret, now_secs, signature_headers};

    fn signed(secret: &str, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in signature_headers(secret, now_secs(), body) {
            h.insert(k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn verifies_then_parses_then_drops_echoes() {
        let v = Verifier::new(vec![SigningSecret::new("s")], 300);
        let body = br#"{"events":[
            {"id":"a","type":"group.dismissed","time":1,"group_id":"g"},
            {"id":"im:gevt:g:x:1","type":"group.dismissed","time":1,"group_id":"g","origin":"im"},
            {"id":"b","type":"group.dismissed","time":2,"group_id":"g","origin":"legacy"}]}"#;
        let r = receive(&v, &signed("s", body), body).expect("valid");
        assert_eq!(r.echoes, 1);
        assert_eq!(r.accepted(), AcceptedBody { accepted: 3 });
        let envs = r.into_envelopes(TimestampMs(99));
        assert_eq!(envs.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [EventId::legacy("a"), EventId::legacy("b")]);
        assert!(envs.iter().all(|e| e.source == Source::Legacy && e.recorded_at == Some(TimestampMs(99))));
    }

    #[test]
    fn signature_is_checked_before_the_body_is_parsed() {
        let v = Verifier::new(vec![SigningSecret::new("s")], 300);
        // Garbage body with a wrong signature: the answer is 401, not 400.
        let e = receive(&v, &signed("wrong", b"garbage"), b"garbage").expect_err("401");
        assert_eq!((e.status(), e.kind()), (401, "mismatch"));
        let e = receive(&v, &HeaderMap::new(), b"garbage").expect_err("401");
        assert_eq!((e.status(), e.kind()), (401, "missing"));
        let e = receive(&v, &signed("s", b"garbage"), b"garbage").expect_err("400");
        assert_eq!((e.status(), e.kind()), (400, "bad_batch"));
        assert!(e.body().errors[0].index.is_none());
    }
}
