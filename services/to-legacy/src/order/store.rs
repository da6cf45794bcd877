//! The resequencer's durable state: per conversation, how far its order has been applied to legacy (the group's
//! highest contiguous `MsgSeq`, and the IM time of the newest applied change of each group profile field and
//! each member), so a restart, a rebalance or another instance never re-opens a closed gap or applies an older
//! state over a newer one.
//!
//! Layout: records on the compacted applied-ledger topic (`imbridge.applied`, shared with to-im's ledger and told
//! apart by `target = "legacy_order"`), key `order:<consumer group>:<conversation>`, value a ledger entry whose
//! `ref` is the [`ConvOrder`] JSON. The state belongs to one consumer group: a replay under a new group (a repair
//! after legacy lost data) starts without it and re-sends everything, which legacy deduplicates by event id. Like the ledger, each record goes to **the partition of its conversation's source
//! partition** (modulo the ledger's partition count), so an instance assigned source partition *p* loads only
//! ledger partition *p*, filtered by `topic` and `partition`.
//!
//! Invariants:
//! 1. A conversation's state is written (and acknowledged) after its events were applied and before the handler
//!    reports them done, so the committed offset never gets ahead of the state.
//! 2. A partition's state is loaded on assignment; handlers of that partition wait for the load, and a
//!    partition assigned again gets a fresh load (an older, slower load can never fill a newer assignment).
//! 3. One writer per conversation: partitions are exclusive within the consumer group, and lanes serialize a
//!    conversation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use imbridge_core::TimestampMs;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{KafkaConfig, KafkaError, Producer};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The ledger `target` of the resequencer's records.
pub const TARGET_ORDER: &str = "legacy_order";

/// How far one conversation's order has been applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvOrder {
    /// Group messages: every seq up to this one is applied, skipped as a notice, or was not in IM's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_seq: Option<u64>,
    /// IM time (ms) of the newest applied group message: while a gap is open, the changes IM made after it wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_time: Option<i64>,
    /// Group profile field → IM time (ms) of the newest applied change of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, i64>,
    /// Member → IM time (ms) of the newest applied join or exit of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, i64>,
    /// IM time (ms) of the group's dismissal once applied (cleared by a creation of the same id): an event of the
    /// group the old side refuses after it has nowhere left to go on either side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissed: Option<i64>,
}

/// The ledger-entry shape the record is written in (to-im's loader reads and skips it by `target`).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    applied_at: TimestampMs,
    target: String,
    #[serde(rename = "ref")]
    reference: String,
    topic: Option<String>,
    partition: Option<i32>,
    conversation: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The loaded state of one assignment of one source partition.
#[derive(Debug)]
pub struct PartitionOrder {
    pub source_partition: i32,
    states: Mutex<HashMap<String, ConvOrder>>,
    loaded: watch::Sender<bool>,
    revoked: CancellationToken,
}

impl PartitionOrder {
    pub fn get(&self, conversation: &str) -> ConvOrder {
        lock(&self.states).get(conversation).cloned().unwrap_or_default()
    }

    fn put(&self, conversation: &str, s: ConvOrder) {
        lock(&self.states).insert(conversation.to_owned(), s);
    }

    async fn wait_loaded(&self) -> bool {
        let mut rx = self.loaded.subscribe();
        tokio::select! {
            r = rx.wait_for(|l| *l) => r.is_ok(),
            _ = self.revoked.cancelled() => false,
        }
    }
}

/// The resequencer's state of every assigned partition.
#[derive(Debug)]
pub struct OrderStore {
    kafka: KafkaConfig,
    producer: Producer,
    /// The applied-ledger topic.
    topic: String,
    /// The IM events topic the state is about.
    source_topic: String,
    /// `order:<consumer group>:`, the key prefix of this group's records.
    prefix: String,
    ledger_partitions: i32,
    partitions: Mutex<HashMap<i32, Arc<PartitionOrder>>>,
    runtime: tokio::runtime::Handle,
}

impl OrderStore {
    /// Must be called inside the runtime that will run the loads.
    pub fn new(
        kafka: KafkaConfig,
        topic: String,
        source_topic: String,
        consumer_group: &str,
        ledger_partitions: i32,
    ) -> Result<Arc<Self>, KafkaError> {
        Ok(Arc::new(Self {
            prefix: format!("order:{consumer_group}:"),
            producer: Producer::new(&kafka)?,
            kafka,
            topic,
            source_topic,
            ledger_partitions: ledger_partitions.max(1),
            partitions: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// Starts loading newly assigned partitions (called from the rebalance callback: returns at once).
    pub fn assign(self: &Arc<Self>, source_partitions: &[i32]) {
        for &p in source_partitions {
            let (loaded, _) = watch::channel(false);
            let po = Arc::new(PartitionOrder {
                source_partition: p,
                states: Mutex::new(HashMap::new()),
                loaded,
                revoked: CancellationToken::new(),
            });
            if let Some(old) = lock(&self.partitions).insert(p, po.clone()) {
                old.revoked.cancel();
            }
            let this = self.clone();
            self.runtime.spawn(async move { this.load(po).await });
        }
    }

    pub fn revoke(&self, source_partitions: &[i32]) {
        let mut map = lock(&self.partitions);
        for p in source_partitions {
            if let Some(po) = map.remove(p) {
                po.revoked.cancel();
            }
        }
    }

    /// The loaded state of an assigned partition; `None` if it is not (or no longer) assigned here.
    pub async fn ready(&self, source_partition: i32) -> Option<Arc<PartitionOrder>> {
        let po = lock(&self.partitions).get(&source_partition).cloned()?;
        po.wait_loaded().await.then_some(po)
    }

    async fn load(&self, po: Arc<PartitionOrder>) {
        let mut attempt = 0u32;
        loop {
            let found = Arc::new(Mutex::new(HashMap::new()));
            let sink = found.clone();
            let (topic, p, prefix) = (self.source_topic.clone(), po.source_partition, self.prefix.clone());
            let read = read_range(
                &self.kafka,
                &self.topic,
                Some(p.rem_euclid(self.ledger_partitions)),
                Start::Earliest,
                move |r| {
                    let Some(key) = r.key_str().and_then(|k| k.strip_prefix(prefix.as_str())).map(str::to_owned) else {
                        return true;
                    };
                    let mut m = lock(&sink);
                    match r.payload.as_deref().map(serde_json::from_slice::<Entry>) {
                        None => {
                            m.remove(&key);
                        }
                        Some(Ok(e))
                            if e.target == TARGET_ORDER
                                && e.partition == Some(p)
                                && e.topic.as_deref() == Some(&topic) =>
                        {
                            match serde_json::from_str::<ConvOrder>(&e.reference) {
                                Ok(s) => {
                                    m.insert(key, s);
                                }
                                Err(err) => warn!(key = %key, error = %err, "ignoring an unreadable order record"),
                            }
                        }
                        Some(_) => {}
                    }
                    true
                },
            );
            let outcome = tokio::select! {
                r = read => r,
                _ = po.revoked.cancelled() => return,
            };
            match outcome {
                Ok(_) => {
                    let states = std::mem::take(&mut *lock(&found));
                    info!(partition = p, conversations = states.len(), "resequencer state loaded");
                    lock(&po.states).extend(states);
                    po.loaded.send_replace(true);
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    warn!(partition = p, attempt, error = %e, "cannot load the resequencer state yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt.min(10)))) => {}
                        _ = po.revoked.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Records a conversation's state: in memory at once, then durably (waits for Kafka's acknowledgement).
    pub async fn save(&self, po: &PartitionOrder, conversation: &str, state: ConvOrder) -> Result<(), KafkaError> {
        let entry = Entry {
            applied_at: TimestampMs::now(),
            target: TARGET_ORDER.to_owned(),
            reference: serde_json::to_string(&state).unwrap_or_default(),
            topic: Some(self.source_topic.clone()),
            partition: Some(po.source_partition),
            conversation: Some(conversation.to_owned()),
        };
        po.put(conversation, state);
        let payload = serde_json::to_vec(&entry).unwrap_or_default();
        let key = format!("{}{conversation}", self.prefix);
        self.producer
            .send_to_partition(
                &self.topic,
                po.source_partition.rem_euclid(self.ledger_partitions),
                Outgoing { key: key.as_bytes(), payload: &payload, headers: &[] },
            )
            .await
            .map(|_| ())
    }
}
