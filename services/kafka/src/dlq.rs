//! The dead-letter topic as a contract, and the operator's tools on it.
//!
//! A dead-lettered record keeps its original key and payload byte for byte (so `imbridge dlq replay` can put
//! it back exactly), keeps its original headers, and gains the headers below. Partition and offset are
//! separate headers, each tested on its own: a known bug elsewhere wrote one into the other.
//!
//! The DLQ is also the durable record of which conversations are *parked*: a key with dead-lettered records
//! not yet resolved must not apply later events (they would overtake the failed one). Resolution is itself a
//! record on the DLQ — a marker with [`RESOLUTION`] and [`RESOLVED_THROUGH`] written after `replay` re-produced
//! the key's records to their original topic, or after `drop` — so the state survives restarts and is the same
//! for every consumer instance: a key is parked while it has DLQ records above its last marker. All records of
//! one key share a DLQ partition (same key), so "above" is a plain offset comparison.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use imbridge_core::Failure;

use crate::admin::Admin;
use crate::config::KafkaConfig;
use crate::error::KafkaError;
use crate::producer::{Delivery, Outgoing, Producer};
use crate::reader::{Start, read_range};
use crate::record::Record;

pub const ORIGINAL_TOPIC: &str = "imbridge.original.topic";
pub const ORIGINAL_PARTITION: &str = "imbridge.original.partition";
pub const ORIGINAL_OFFSET: &str = "imbridge.original.offset";
pub const ORIGINAL_KEY: &str = "imbridge.original.key";
pub const ERROR_KIND: &str = "imbridge.error.kind";
pub const ERROR_REASON: &str = "imbridge.error.reason";
pub const ATTEMPTS: &str = "imbridge.attempts";
pub const FIRST_FAILURE_MS: &str = "imbridge.first_failure_ms";

/// On a resolution marker: `replayed` or `dropped`.
pub const RESOLUTION: &str = "imbridge.dlq.resolution";
/// On a resolution marker: the DLQ offset through which the key's records are resolved.
pub const RESOLVED_THROUGH: &str = "imbridge.dlq.resolved_through";
/// On a record re-produced by `replay` to its original topic: `<dlq partition>@<dlq offset>` it came from.
/// A consumer that meets it for a parked key unparks the key: the operator re-drove that conversation.
pub const REDRIVEN_FROM: &str = "imbridge.redriven_from";

/// Every header this crate adds, in order.
pub const HEADERS: [&str; 8] = [
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_KEY,
    ERROR_KIND,
    ERROR_REASON,
    ATTEMPTS,
    FIRST_FAILURE_MS,
];

/// The error kind of events dead-lettered only because an earlier event of their conversation was.
pub const KIND_PARKED: &str = "parked";
/// The error kind of events whose transient failures outlasted the retry policy.
pub const KIND_RETRIES_EXHAUSTED: &str = "retries_exhausted";

/// What the DLQ headers of one record say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub original_key: Option<String>,
    pub kind: String,
    pub reason: String,
    pub attempts: u32,
    pub first_failure_ms: i64,
}

impl DeadLetterInfo {
    /// Reads the headers back from a record consumed from the DLQ.
    pub fn from_record(r: &Record) -> Result<Self, String> {
        let s = |name: &str| r.header_str(name).map(str::to_owned).ok_or_else(|| format!("missing header {name}"));
        let n = |name: &str| -> Result<i64, String> {
            s(name)?.parse::<i64>().map_err(|e| format!("header {name} is not a number: {e}"))
        };
        Ok(Self {
            original_topic: s(ORIGINAL_TOPIC)?,
            original_partition: i32::try_from(n(ORIGINAL_PARTITION)?).map_err(|e| e.to_string())?,
            original_offset: n(ORIGINAL_OFFSET)?,
            original_key: r.header_str(ORIGINAL_KEY).map(str::to_owned),
            kind: s(ERROR_KIND)?,
            reason: s(ERROR_REASON)?,
            attempts: u32::try_from(n(ATTEMPTS)?).map_err(|e| e.to_string())?,
            first_failure_ms: n(FIRST_FAILURE_MS)?,
        })
    }
}

/// Writes records that can never apply to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DlqProducer {
    producer: Producer,
    topic: String,
}

impl DlqProducer {
    pub fn new(producer: Producer, topic: impl Into<String>) -> Self {
        Self { producer, topic: topic.into() }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Dead-letters `record`, acknowledged by the broker before returning (the caller stores the original
    /// offset only after this succeeded, so a DLQ outage never loses a record).
    pub async fn send(
        &self,
        record: &Record,
        failure: &Failure,
        attempts: u32,
        first_failure_ms: i64,
    ) -> Result<Delivery, KafkaError> {
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = attempts.to_string();
        let first = first_failure_ms.to_string();
        // Header values are bounded so one huge reason cannot make the record too large for the broker.
        let reason = truncate(&failure.reason, 4_000);
        let mut headers: Vec<(&str, &[u8])> = vec![
            (ORIGINAL_TOPIC, record.topic.as_bytes()),
            (ORIGINAL_PARTITION, partition.as_bytes()),
            (ORIGINAL_OFFSET, offset.as_bytes()),
            (ERROR_KIND, failure.kind.as_bytes()),
            (ERROR_REASON, reason.as_bytes()),
            (ATTEMPTS, attempts.as_bytes()),
            (FIRST_FAILURE_MS, first.as_bytes()),
        ];
        if let Some(k) = &record.key {
            headers.push((ORIGINAL_KEY, k.as_slice()));
        }
        for (k, v) in &record.headers {
            // A record re-driven from the DLQ and failing again gets fresh headers, not two copies.
            if !HEADERS.contains(&k.as_str()) && k != REDRIVEN_FROM {
                headers.push((k.as_str(), v.as_slice()));
            }
        }
        let out = Outgoing {
            key: record.key.as_deref().unwrap_or_default(),
            payload: record.payload.as_deref().unwrap_or_default(),
            headers: &headers,
        };
        self.producer.send(&self.topic, out).await
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One unresolved dead-lettered record.
#[derive(Debug, Clone)]
pub struct DlqEntry {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub record: Record,
    pub info: DeadLetterInfo,
}

/// What the DLQ holds now.
#[derive(Debug, Clone, Default)]
pub struct DlqState {
    /// Unresolved records, in DLQ order (per partition by offset; a key's records in their original order).
    pub unresolved: Vec<DlqEntry>,
    /// Records already resolved by a replay or drop marker.
    pub resolved: u64,
    /// Records whose DLQ headers could not be read (written by something else); listed, never replayed.
    pub unreadable: u64,
}

impl DlqState {
    /// Keys parked for consumers of `topics`, with the DLQ position of the first unresolved record.
    pub fn parked_keys(&self, topics: &[&str]) -> HashMap<Vec<u8>, String> {
        let mut out = HashMap::new();
        for e in &self.unresolved {
            if topics.contains(&e.info.original_topic.as_str()) {
                let key = e.record.key.clone().unwrap_or_default();
                out.entry(key).or_insert_with(|| {
                    format!("{}/{}@{}", e.info.original_topic, e.info.original_partition, e.info.original_offset)
                });
            }
        }
        out
    }
}

/// Reads the whole DLQ and applies resolution markers. A missing DLQ topic is an empty DLQ.
pub async fn scan(cfg: &KafkaConfig, dlq_topic: &str) -> Result<DlqState, KafkaError> {
    if Admin::new(cfg)?.partition_count(dlq_topic).await? == 0 {
        return Ok(DlqState::default());
    }
    let all = Arc::new(Mutex::new(Vec::new()));
    let sink = all.clone();
    read_range(cfg, dlq_topic, None, Start::Earliest, move |r| {
        if let Ok(mut v) = sink.lock() {
            v.push(r);
        }
        true
    })
    .await?;
    let records = std::mem::take(&mut *all.lock().map_err(|_| KafkaError::Timeout("dlq scan lock".into()))?);
    // The last marker per (partition, key) says through which offset that key is resolved.
    let mut resolved_through: HashMap<(i32, Vec<u8>), i64> = HashMap::new();
    for r in &records {
        if r.header(RESOLUTION).is_some() {
            let through = r.header_str(RESOLVED_THROUGH).and_then(|v| v.parse::<i64>().ok()).unwrap_or(r.offset);
            let k = (r.partition, r.key.clone().unwrap_or_default());
            let e = resolved_through.entry(k).or_insert(through);
            *e = (*e).max(through);
        }
    }
    let mut state = DlqState::default();
    for r in records {
        if r.header(RESOLUTION).is_some() {
            continue;
        }
        let k = (r.partition, r.key.clone().unwrap_or_default());
        if resolved_through.get(&k).is_some_and(|t| r.offset <= *t) {
            state.resolved += 1;
            continue;
        }
        match DeadLetterInfo::from_record(&r) {
            Ok(info) => {
                state.unresolved.push(DlqEntry { dlq_partition: r.partition, dlq_offset: r.offset, record: r, info })
            }
            Err(_) => state.unreadable += 1,
        }
    }
    state.unresolved.sort_by_key(|e| (e.dlq_partition, e.dlq_offset));
    Ok(state)
}

/// What a replay or drop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Conversations (keys) resolved.
    pub keys: usize,
    /// Records re-produced to their original topics (replay) or discarded (drop).
    pub records: usize,
}

/// Which unresolved records a replay or drop acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this key (conversation); `None` = every key.
    pub key: Option<Vec<u8>>,
    /// Only records that came from this topic; `None` = all.
    pub original_topic: Option<String>,
}

impl Selection {
    fn matches(&self, e: &DlqEntry) -> bool {
        self.key.as_deref().is_none_or(|k| e.record.key.as_deref() == Some(k))
            && self.original_topic.as_deref().is_none_or(|t| e.info.original_topic == t)
    }
}

/// Re-produces every selected unresolved record to its original topic — per key in original order, each key's
/// records acknowledged before its marker is written — then marks the key resolved. Consumers unpark the key when
/// they meet the first re-driven record.
pub async fn replay(cfg: &KafkaConfig, dlq_topic: &str, sel: &Selection) -> Result<Resolution, KafkaError> {
    resolve(cfg, dlq_topic, sel, "replayed").await
}

/// Marks the selected records resolved without re-producing them (they are given up on) and unparks their keys.
pub async fn drop_records(cfg: &KafkaConfig, dlq_topic: &str, sel: &Selection) -> Result<Resolution, KafkaError> {
    resolve(cfg, dlq_topic, sel, "dropped").await
}

/// A key within one DLQ partition.
type PartitionKey = (i32, Vec<u8>);

async fn resolve(cfg: &KafkaConfig, dlq_topic: &str, sel: &Selection, how: &str) -> Result<Resolution, KafkaError> {
    let state = scan(cfg, dlq_topic).await?;
    let producer = Producer::new(cfg)?;
    // Group by (DLQ partition, key), keeping DLQ order: that is the key's original order.
    let mut groups: Vec<(PartitionKey, Vec<&DlqEntry>)> = Vec::new();
    for e in state.unresolved.iter().filter(|e| sel.matches(e)) {
        let k = (e.dlq_partition, e.record.key.clone().unwrap_or_default());
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, v)) => v.push(e),
            None => groups.push((k, vec![e])),
        }
    }
    let mut out = Resolution::default();
    for ((_, key), entries) in &groups {
        if how == "replayed" {
            for e in entries {
                let from = format!("{}@{}", e.dlq_partition, e.dlq_offset);
                let mut headers: Vec<(&str, &[u8])> = e
                    .record
                    .headers
                    .iter()
                    .filter(|(k, _)| !HEADERS.contains(&k.as_str()) && k != REDRIVEN_FROM)
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                headers.push((REDRIVEN_FROM, from.as_bytes()));
                let out_rec = Outgoing {
                    key: e.record.key.as_deref().unwrap_or_default(),
                    payload: e.record.payload.as_deref().unwrap_or_default(),
                    headers: &headers,
                };
                // Awaited one by one: a key's records must land in order, and before the marker.
                producer.send(&e.info.original_topic, out_rec).await?;
            }
        }
        let through = entries.iter().map(|e| e.dlq_offset).max().unwrap_or_default().to_string();
        let marker: [(&str, &[u8]); 2] = [(RESOLUTION, how.as_bytes()), (RESOLVED_THROUGH, through.as_bytes())];
        producer.send(dlq_topic, Outgoing { key, payload: b"", headers: &marker }).await?;
        out.keys += 1;
        out.records += entries.len();
    }
    Ok(out)
}
