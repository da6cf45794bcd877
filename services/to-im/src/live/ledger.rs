//! The applied-events ledger: what the live apply already did to IM, durably, so a redelivered or replayed
//! event is never sent twice (`sendmsg` and `send_group_msg` deduplicate only for minutes).
//!
//! Layout on the compacted `imbridge.applied` topic (see `schemas/topics.md`):
//! - key = the event id; value = [`LedgerEntry`] JSON (`applied_at`, `target`, `ref` = IM's MsgKey / group
//!   MsgSeq / `done`, plus where the event came from: `topic`, `partition`, `offset`, `conversation`);
//! - **partition = the source event's partition** (modulo the ledger's partition count), written explicitly
//!   rather than by key hash. So the entries of one `imbridge.legacy.events` partition sit in one ledger
//!   partition, and an instance that is assigned source partition *p* loads only ledger partition *p* — not the
//!   whole ledger — filtering by `target`, `topic` and `partition` (to-legacy's entries share the topic).
//!
//! Invariants:
//! 1. An entry is written after IM accepted the call and before the handler reports the event done, so before
//!    its offset can be committed. A later delivery of the same event id (redelivery after a crash, a replay, a
//!    duplicate webhook re-produced by ingest) finds it and is skipped.
//! 2. Events of one conversation are applied strictly one after another, and each entry is written before the
//!    next event of that conversation starts. So after a crash at most **one** event per conversation can be
//!    applied without an entry: the first one of that conversation not in the ledger. The handler checks IM's
//!    history for exactly that event ([`PartitionLedger::is_resumed`]) before sending it.
//! 3. Loading happens on assignment, off the rebalance callback: handlers of that partition wait for
//!    [`Ledger::ready`] (a partition revoked meanwhile answers `None`). A partition assigned again gets a fresh
//!    [`PartitionLedger`], so a slow load of an older assignment can never fill a newer one.
//! 4. An entry kept in memory but not yet written ([`Applied::persisted`] false, Kafka briefly down) is written
//!    by the next attempt of that event, which never calls IM again.
//! 5. **Memory grows by 16 bytes per applied event, not by its id.** A written entry is held as a 128-bit keyed
//!    hash of the event id ([`Entries`]): the set of a partition with millions of applied events costs tens of
//!    MiB (the ids and refs themselves would cost ten times that, and they are never read back: a lookup only
//!    asks "applied?"). Only entries still owed to Kafka keep their id and ref.
//! 6. **And it stops growing after `ledger_keep_ms`** (default the topic's own retention,
//!    [`imbridge_core::topics::APPLIED_RETENTION_MS`], 9 days): hashes are kept in one set per day of
//!    `applied_at`, and a day older than that is dropped whole, as Kafka deletes it from the topic. By then no
//!    copy of the event is left to redeliver or replay (event topics keep 7 days, in daily segments), so a
//!    service running for months holds about `ledger_keep_ms` of traffic, not all of it.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use imbridge_core::{ConversationKey, Envelope, EventId, TimestampMs};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{KafkaConfig, Producer};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::LiveMetrics;
use crate::error::ToImError;

/// The `target` of entries this service writes.
pub const TARGET_IM: &str = "im";

/// The value of one ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// When the apply succeeded, Unix ms.
    pub applied_at: TimestampMs,
    /// `im` (to-im) or `legacy` (to-legacy).
    pub target: String,
    /// The target-side id: IM `MsgKey` for 1:1 messages, the group `MsgSeq` for group messages, `done` (or
    /// a short note such as `exists`) for group lifecycle events.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Source topic of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Source partition of the event (the ledger partition is this modulo the ledger's partition count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Source offset of the event, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The event's conversation key, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// What the ledger knows about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// IM's reference, kept while the entry is owed to Kafka (empty once written: it is in the topic).
    pub reference: String,
    /// Written to Kafka (false: applied to IM, the write is still owed).
    pub persisted: bool,
}

/// The ledger of one assignment of one source partition.
#[derive(Debug)]
pub struct PartitionLedger {
    source_partition: i32,
    loaded: watch::Sender<bool>,
    /// Cancelled when this assignment ends (revoke or shutdown).
    revoked: CancellationToken,
    entries: Mutex<Entries>,
    /// Conversations whose first not-yet-applied event of this assignment has been handled.
    resumed: Mutex<HashSet<ConversationKey>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps: a panic elsewhere must not make every later lookup panic too.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PartitionLedger {
    fn new(source_partition: i32, keep_ms: u64) -> Self {
        Self {
            source_partition,
            loaded: watch::Sender::new(false),
            revoked: CancellationToken::new(),
            entries: Mutex::new(Entries::new(keep_ms)),
            resumed: Mutex::new(HashSet::new()),
        }
    }

    pub fn source_partition(&self) -> i32 {
        self.source_partition
    }

    /// Cancelled when this assignment of the partition ends; long waits inside a handler watch it.
    pub fn revoked(&self) -> &CancellationToken {
        &self.revoked
    }

    pub fn lookup(&self, id: &EventId) -> Option<Applied> {
        lock(&self.entries).get(id.as_str())
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the conversation's first event of this assignment that is not in the ledger was handled.
    pub fn is_resumed(&self, conversation: &ConversationKey) -> bool {
        lock(&self.resumed).contains(conversation)
    }

    pub fn mark_resumed(&self, conversation: &ConversationKey) {
        lock(&self.resumed).insert(conversation.clone());
    }

    /// Returns how many older entries this dropped (their day passed `ledger_keep_ms`).
    fn remember(&self, id: &EventId, reference: &str, written_at: Option<TimestampMs>) -> usize {
        lock(&self.entries).insert(id.as_str(), reference, written_at)
    }

    /// Waits until the partition's entries are loaded; false if the assignment ended first.
    async fn wait_loaded(&self) -> bool {
        let mut rx = self.loaded.subscribe();
        tokio::select! {
            r = rx.wait_for(|loaded| *loaded) => r.is_ok(),
            _ = self.revoked.cancelled() => false,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The applied event ids of one partition: written ones as 128-bit keyed hashes grouped by the day they were
/// written, owed ones whole.
#[derive(Debug)]
struct Entries {
    /// Two independent SipHash keys, random per assignment: the hashes never leave this process (every load
    /// rebuilds them from the topic), and two ids share both halves with probability ≈ n² / 2^129 — for a
    /// billion ids, 10^-21.
    keys: (RandomState, RandomState),
    /// Day (Unix ms / 86,400,000 of `applied_at`) → hashes written that day. A lookup probes each day (about
    /// ten); whole days are dropped once older than `keep_ms`.
    written: BTreeMap<i64, HashSet<u128>>,
    /// Applied to IM, entry not yet in Kafka: id → IM's reference (needed to write it).
    owed: HashMap<String, String>,
    keep_ms: u64,
}

impl Entries {
    fn new(keep_ms: u64) -> Self {
        Self { keys: Default::default(), written: BTreeMap::new(), owed: HashMap::new(), keep_ms }
    }

    fn hash(&self, id: &str) -> u128 {
        (u128::from(self.keys.0.hash_one(id)) << 64) | u128::from(self.keys.1.hash_one(id))
    }

    fn get(&self, id: &str) -> Option<Applied> {
        if let Some(reference) = self.owed.get(id) {
            return Some(Applied { reference: reference.clone(), persisted: false });
        }
        let h = self.hash(id);
        self.written.values().any(|day| day.contains(&h)).then(|| Applied { reference: String::new(), persisted: true })
    }

    /// The first day still kept at `now`.
    fn first_kept_day(&self, now: TimestampMs) -> i64 {
        now.0.saturating_sub(i64::try_from(self.keep_ms).unwrap_or(i64::MAX)).div_euclid(DAY_MS)
    }

    /// Records an applied id: owed (`written_at` None) or written at that time. An entry written before the
    /// kept days is not kept (its event can no longer be read); starting a new day drops the days that have
    /// passed. Returns how many entries were dropped.
    fn insert(&mut self, id: &str, reference: &str, written_at: Option<TimestampMs>) -> usize {
        let Some(at) = written_at else {
            self.owed.insert(id.to_owned(), reference.to_owned());
            return 0;
        };
        self.owed.remove(id);
        let first_kept = self.first_kept_day(TimestampMs::now());
        let day = at.0.div_euclid(DAY_MS);
        if day < first_kept {
            return 0;
        }
        let h = self.hash(id);
        let mut dropped = 0;
        if !self.written.contains_key(&day) {
            let kept = self.written.split_off(&first_kept);
            dropped = self.written.values().map(HashSet::len).sum();
            self.written = kept;
        }
        self.written.entry(day).or_default().insert(h);
        dropped
    }

    fn remove(&mut self, id: &str) {
        self.owed.remove(id);
        let h = self.hash(id);
        for day in self.written.values_mut() {
            day.remove(&h);
        }
    }

    fn len(&self) -> usize {
        self.written.values().map(HashSet::len).sum::<usize>() + self.owed.len()
    }
}

/// Every assigned partition's ledger, and the writer.
#[derive(Debug)]
pub struct Ledger {
    kafka: KafkaConfig,
    producer: Producer,
    /// The ledger topic (`imbridge.applied`) and its partition count.
    topic: String,
    ledger_partitions: i32,
    /// The source topic whose events this ledger records (`imbridge.legacy.events`).
    source_topic: String,
    partitions: Mutex<HashMap<i32, Arc<PartitionLedger>>>,
    /// How long an entry is kept in memory (`ledger_keep_ms`).
    keep_ms: u64,
    runtime: tokio::runtime::Handle,
    metrics: LiveMetrics,
}

impl Ledger {
    /// `ledger_partitions` is the partition count of `topic` (at least 1). Must be created inside a runtime.
    pub fn new(
        kafka: KafkaConfig,
        producer: Producer,
        topic: String,
        ledger_partitions: i32,
        source_topic: String,
        keep_ms: u64,
        metrics: LiveMetrics,
    ) -> Self {
        Self {
            kafka,
            producer,
            topic,
            ledger_partitions: ledger_partitions.max(1),
            source_topic,
            partitions: Mutex::new(HashMap::new()),
            keep_ms,
            runtime: tokio::runtime::Handle::current(),
            metrics,
        }
    }

    fn ledger_partition(&self, source_partition: i32) -> i32 {
        source_partition.rem_euclid(self.ledger_partitions)
    }

    /// Starts loading the entries of newly assigned source partitions (called from the rebalance callback:
    /// returns at once, the loading runs in the background).
    pub fn assign(self: &Arc<Self>, source_partitions: &[i32]) {
        for &p in source_partitions {
            let pl = Arc::new(PartitionLedger::new(p, self.keep_ms));
            if let Some(old) = lock(&self.partitions).insert(p, pl.clone()) {
                old.revoked.cancel();
            }
            let this = self.clone();
            self.runtime.spawn(async move { this.load(pl).await });
        }
    }

    /// Forgets revoked partitions; handlers still waiting on them give up.
    pub fn revoke(&self, source_partitions: &[i32]) {
        let mut map = lock(&self.partitions);
        for p in source_partitions {
            if let Some(pl) = map.remove(p) {
                pl.revoked.cancel();
            }
        }
        self.metrics.ledger_entries.set(map.values().map(|pl| pl.len() as i64).sum());
    }

    /// Ends every assignment (shutdown).
    pub fn revoke_all(&self) {
        let all: Vec<i32> = lock(&self.partitions).keys().copied().collect();
        self.revoke(&all);
    }

    /// The loaded ledger of an assigned source partition; `None` if it is not (or no longer) assigned here.
    pub async fn ready(&self, source_partition: i32) -> Option<Arc<PartitionLedger>> {
        let pl = lock(&self.partitions).get(&source_partition).cloned()?;
        pl.wait_loaded().await.then_some(pl)
    }

    /// Reads the partition's entries from the ledger topic, retrying until it succeeds or the assignment ends.
    async fn load(&self, pl: Arc<PartitionLedger>) {
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            // Entries go straight into the partition's set (handlers wait for the load, so none is applied
            // meanwhile); an attempt that fails halfway leaves true entries, and the next one reads them again.
            match self.read_partition(&pl).await {
                Ok(()) => {
                    let n = pl.len();
                    self.metrics.ledger_load_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.ledger_entries.add(n as i64);
                    info!(
                        partition = pl.source_partition,
                        entries = n,
                        ms = started.elapsed().as_millis() as u64,
                        "applied ledger loaded"
                    );
                    pl.loaded.send_replace(true);
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    warn!(partition = pl.source_partition, error = %e, attempt, "cannot load the applied ledger; retrying");
                    let backoff = Duration::from_millis((200u64 << attempt.min(6)).min(10_000));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = pl.revoked.cancelled() => return,
                    }
                }
            }
            if pl.revoked.is_cancelled() {
                return;
            }
        }
    }

    /// Reads every entry of this service for one source partition into `pl` (last record per key wins; a
    /// tombstone forgets).
    async fn read_partition(&self, pl: &Arc<PartitionLedger>) -> Result<(), ToImError> {
        let sink = pl.clone();
        let topic = self.source_topic.clone();
        let source_partition = pl.source_partition;
        read_range(
            &self.kafka,
            &self.topic,
            Some(self.ledger_partition(source_partition)),
            Start::Earliest,
            move |r| {
                let Some(key) = r.key_str() else { return true };
                let mut m = lock(&sink.entries);
                match r.payload.as_deref() {
                    None => m.remove(key),
                    Some(bytes) => match serde_json::from_slice::<LedgerEntry>(bytes) {
                        Ok(e)
                            if e.target == TARGET_IM
                                && e.partition == Some(source_partition)
                                && e.topic.as_deref() == Some(topic.as_str()) =>
                        {
                            m.insert(key, "", Some(e.applied_at));
                        }
                        Ok(_) => {}
                        Err(err) => warn!(key = %key, error = %err, "ignoring an unreadable applied-ledger record"),
                    },
                }
                true
            },
        )
        .await?;
        Ok(())
    }

    /// Records that `env` (read from `source_partition` at `offset`) was applied with `reference`: in memory at
    /// once, then durably. On a write failure the in-memory entry stays unpersisted and the error is returned;
    /// recording it again (the next attempt finds it applied but not persisted) finishes it.
    pub async fn record(
        &self,
        pl: &PartitionLedger,
        env: &Envelope,
        offset: i64,
        reference: &str,
    ) -> Result<(), ToImError> {
        pl.remember(&env.id, reference, None);
        let applied_at = TimestampMs::now();
        let entry = LedgerEntry {
            applied_at,
            target: TARGET_IM.to_owned(),
            reference: reference.to_owned(),
            topic: Some(self.source_topic.clone()),
            partition: Some(pl.source_partition),
            offset: Some(offset),
            conversation: Some(env.conversation.as_str().to_owned()),
        };
        let payload = serde_json::to_vec(&entry).map_err(|e| ToImError::Config(format!("ledger entry: {e}")))?;
        let out = Outgoing { key: env.id.as_str().as_bytes(), payload: &payload, headers: &[] };
        self.producer.send_to_partition(&self.topic, self.ledger_partition(pl.source_partition), out).await?;
        let dropped = pl.remember(&env.id, reference, Some(applied_at));
        self.metrics.ledger_entries.add(1 - dropped as i64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_shape_matches_the_topic_contract() {
        let e = LedgerEntry {
            applied_at: TimestampMs(1_700_000_000_000),
            target: TARGET_IM.into(),
            reference: "7_99_1700000000".into(),
            topic: Some("imbridge.legacy.events".into()),
            partition: Some(3),
            offset: Some(42),
            conversation: Some("c2c:ann:bob".into()),
        };
        let v: serde_json::Value = serde_json::to_value(&e).expect("json");
        assert_eq!(v["applied_at"], 1_700_000_000_000i64);
        assert_eq!(v["target"], "im");
        assert_eq!(v["ref"], "7_99_1700000000");
        assert_eq!(v["partition"], 3);
        // The minimal documented shape (another writer's entry) still reads.
        let min: LedgerEntry =
            serde_json::from_str(r#"{"applied_at":1,"target":"legacy","ref":"done"}"#).expect("minimal");
        assert_eq!(min.partition, None);
    }

    #[test]
    fn resumed_and_entries_are_per_assignment() {
        let pl = PartitionLedger::new(2, imbridge_core::topics::APPLIED_RETENTION_MS);
        let c = ConversationKey::parse("c2c:a:b").expect("key");
        assert!(!pl.is_resumed(&c));
        pl.mark_resumed(&c);
        assert!(pl.is_resumed(&c));
        let id = EventId::legacy("m-1");
        pl.remember(&id, "k", None);
        assert_eq!(pl.lookup(&id), Some(Applied { reference: "k".into(), persisted: false }));
        pl.remember(&id, "k", Some(TimestampMs::now()));
        assert!(pl.lookup(&id).is_some_and(|a| a.persisted));
        assert!(pl.lookup(&EventId::legacy("m-2")).is_none(), "another id is not applied");
        assert_eq!(pl.len(), 1, "written once, held once");
        lock(&pl.entries).remove(id.as_str());
        assert!(pl.lookup(&id).is_none(), "a tombstone forgets");
        let fresh = PartitionLedger::new(2, imbridge_core::topics::APPLIED_RETENTION_MS);
        assert!(!fresh.is_resumed(&c) && fresh.lookup(&id).is_none());
    }

    #[test]
    fn entries_are_kept_for_keep_ms_by_day_then_dropped_whole() {
        let keep_days = 9;
        let mut e = Entries::new(keep_days * DAY_MS as u64);
        let now = TimestampMs::now().0;
        let days_ago = |d: i64| Some(TimestampMs(now - d * DAY_MS));
        // Loaded from the topic: two entries a day over the last nine days, and one long past the horizon.
        for d in 0..keep_days as i64 {
            assert_eq!(e.insert(&format!("old-{d}-a"), "", days_ago(d)), 0);
            assert_eq!(e.insert(&format!("old-{d}-b"), "", days_ago(d)), 0);
        }
        assert_eq!(e.insert("ancient", "", days_ago(30)), 0, "never kept, so nothing to drop");
        assert!(e.get("ancient").is_none(), "an entry older than keep_ms is not kept");
        assert_eq!(e.len(), 18);
        assert!((0..keep_days as i64).all(|d| e.get(&format!("old-{d}-b")).is_some_and(|a| a.persisted)));
        // Owed entries are not bucketed, and a written entry replaces its owed one.
        assert_eq!(e.insert("owed", "7_1_1", None), 0);
        assert_eq!(e.get("owed"), Some(Applied { reference: "7_1_1".into(), persisted: false }));
        assert_eq!(e.insert("owed", "7_1_1", days_ago(0)), 0);
        assert!(e.get("owed").is_some_and(|a| a.persisted));
        assert_eq!(e.len(), 19);
        // As time passes (here: the keep shrinks to four days), the next new day drops every day past it, whole.
        e.keep_ms = 4 * DAY_MS as u64;
        assert_eq!(e.insert("tomorrow", "", Some(TimestampMs(now + DAY_MS))), 2 * 4, "days 5 to 8 ago");
        assert!(e.get("old-5-a").is_none() && e.get("old-8-b").is_none(), "days past the keep are gone");
        assert!(e.get("old-4-a").is_some() && e.get("owed").is_some() && e.get("tomorrow").is_some());
        assert_eq!(e.len(), 2 * 5 + 1 + 1);
        // A tombstone forgets an id whatever its day.
        e.remove("old-2-b");
        assert!(e.get("old-2-b").is_none());
    }
}
