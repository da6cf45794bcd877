//! What a handler receives and what it answers.

use imbridge_core::{Envelope, Failure};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

/// An owned copy of one consumed Kafka record. Owned so it can wait in a conversation's lane while the
/// consumer keeps polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Broker or producer timestamp, Unix ms.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    pub(crate) fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            timestamp_ms: m.timestamp().to_millis(),
            headers,
        }
    }

    /// The key as UTF-8 (conversation keys always are); `None` for a missing or non-UTF-8 key.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Decodes the payload as an imbridge [`Envelope`]. A failure here is a poison record: dead-letter it.
    pub fn envelope(&self) -> Result<Envelope, Failure> {
        let payload = self.payload.as_deref().ok_or_else(|| Failure::new("malformed", "record has no payload"))?;
        Envelope::from_json(payload).map_err(|e| Failure::new("malformed", format!("not an imbridge envelope: {e}")))
    }
}

/// A handler's verdict on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, or nothing to do (an echo, already applied): the offset may move past it.
    Done,
    /// Transient failure: the runner retries with backoff, then dead-letters as `retries_exhausted`.
    Retry(Failure),
    /// Can never apply: the runner puts it on the DLQ with the reason and moves on.
    DeadLetter(Failure),
    /// Not yet: the handler is waiting for records of this key that have not arrived (a resequencer holding a
    /// gap open). The runner pauses this long, then offers the batch again together with whatever records of the
    /// key arrived meanwhile. Not a failure: it neither counts as an attempt nor leads to the DLQ.
    Wait(std::time::Duration),
}

/// A handler's verdict on a batch: the first `done` records are finished; `next`, if any, is the verdict on
/// the record right after them. Records beyond are offered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub done: usize,
    pub next: Option<Outcome>,
}

impl BatchOutcome {
    /// All `n` records finished.
    pub fn all(n: usize) -> Self {
        Self { done: n, next: None }
    }
}
