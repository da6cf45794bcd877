//! [`Board`]: a notice board on a short-retention topic — every instance posts its latest notice under its own
//! key and reads everyone's.
//!
//! The IM quota coordination runs on it (every process calling IM posts its demand each second and computes
//! the same allocation from the same notices). A board reads the topic from a few seconds back at start, so it
//! knows the instances already running before it reports being caught up, then follows it. No consumer group:
//! every instance must see every notice. Each notice's age is measured from its record timestamp when it
//! arrives and by the local monotonic clock afterwards, so clock skew between hosts only matters for the notices
//! read at start-up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::admin::{Admin, TopicSpec};
use crate::config::KafkaConfig;
use crate::error::KafkaError;
use crate::producer::{Outgoing, Producer};
use crate::record::Record;

const POLL: Duration = Duration::from_millis(100);

/// Notices older than this are forgotten (no reader cares about them; it bounds the memory of a dead
/// instance's key).
const FORGET: Duration = Duration::from_secs(60);

/// One instance's latest notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// How long ago it was posted.
    pub age: Duration,
}

#[derive(Debug)]
struct Entry {
    payload: Vec<u8>,
    posted: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    notices: Mutex<HashMap<Vec<u8>, Entry>>,
    caught_up: AtomicBool,
    /// A post is in flight: the next one is skipped rather than queued behind an unreachable broker.
    posting: AtomicBool,
}

/// A board on one topic. Cheap to clone.
#[derive(Clone)]
pub struct Board {
    inner: Arc<Inner>,
    producer: Producer,
    topic: String,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").field("topic", &self.topic).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Board {
    /// Starts following `spec`'s topic (created if missing) from `lookback` ago until `shutdown`. Broker
    /// trouble is retried in the background; until the first catch-up, [`Board::notices`] answers `None`.
    pub fn start(
        cfg: &KafkaConfig,
        spec: TopicSpec,
        lookback: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, KafkaError> {
        let producer = Producer::new(cfg)?;
        let inner = Arc::new(Inner::default());
        let board = Self { inner: inner.clone(), producer, topic: spec.name.clone() };
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !shutdown.is_cancelled() {
                match follow(&cfg, &spec, lookback, &inner, &shutdown).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        warn!(topic = %spec.name, error = %e, failures, "cannot follow the board; retrying");
                    }
                }
                let backoff = Duration::from_millis(250u64 << failures.min(5));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        Ok(board)
    }

    /// Posts `payload` under `key`, replacing that key's previous notice. Never waits: the record is sent in
    /// the background, and skipped when the previous one is still in flight (the next post replaces it anyway).
    pub fn post(&self, key: &[u8], payload: Vec<u8>) {
        if self.inner.posting.swap(true, Ordering::AcqRel) {
            debug!(topic = %self.topic, "previous notice still in flight; skipping this one");
            return;
        }
        let (producer, topic, inner, key) =
            (self.producer.clone(), self.topic.clone(), self.inner.clone(), key.to_vec());
        tokio::spawn(async move {
            let r = producer.send(&topic, Outgoing { key: &key, payload: &payload, headers: &[] }).await;
            if let Err(e) = r {
                debug!(topic = %topic, error = %e, "notice not posted");
            }
            inner.posting.store(false, Ordering::Release);
        });
    }

    /// Whether the board has read everything posted before it started ([`Board::notices`] answers from then on).
    pub fn caught_up(&self) -> bool {
        self.inner.caught_up.load(Ordering::Acquire)
    }

    /// Every key's latest notice, or `None` until the board has read what was posted before it started.
    pub fn notices(&self) -> Option<Vec<Notice>> {
        if !self.caught_up() {
            return None;
        }
        let mut map = self.inner.notices.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.posted.elapsed() < FORGET);
        Some(
            map.iter()
                .map(|(k, e)| Notice { key: k.clone(), payload: e.payload.clone(), age: e.posted.elapsed() })
                .collect(),
        )
    }
}

fn record(inner: &Inner, r: Record) {
    let (Some(key), Some(payload)) = (r.key, r.payload) else { return };
    let age_ms = r.timestamp_ms.map_or(0, |t| (now_ms() - t).max(0));
    let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
    let posted = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let mut map = inner.notices.lock().unwrap_or_else(|p| p.into_inner());
    // A notice read late (start-up) must not replace a newer one of the same key.
    if map.get(&key).is_none_or(|e| e.posted <= posted) {
        map.insert(key, Entry { payload, posted });
    }
}

/// Follows the topic until `shutdown` (Ok) or until it cannot start (Err).
async fn follow(
    cfg: &KafkaConfig,
    spec: &TopicSpec,
    lookback: Duration,
    inner: &Arc<Inner>,
    shutdown: &CancellationToken,
) -> Result<(), KafkaError> {
    let admin = Admin::new(cfg)?;
    admin.ensure_topics(std::slice::from_ref(spec)).await?;
    let marks = admin.offsets(&spec.name, None).await?;
    let since = now_ms() - i64::try_from(lookback.as_millis()).unwrap_or(0);
    let starts = admin.offsets_for_time(&spec.name, since).await?;
    let mut c = cfg.admin_config();
    c.set("group.id", "imbridge-board").set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    let mut behind: HashMap<i32, i64> = HashMap::new();
    for m in &marks {
        let from = starts.iter().find(|(p, _)| *p == m.partition).map_or(m.high, |(_, o)| *o).max(m.low);
        tpl.add_partition_offset(&spec.name, m.partition, Offset::Offset(from))?;
        if from < m.high {
            behind.insert(m.partition, m.high);
        }
    }
    consumer.assign(&tpl)?;
    let inner = inner.clone();
    let shutdown = shutdown.clone();
    let topic = spec.name.clone();
    tokio::task::spawn_blocking(move || {
        while !shutdown.is_cancelled() {
            if behind.is_empty() {
                inner.caught_up.store(true, Ordering::Release);
            }
            match consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let r = Record::from_message(&m);
                    if behind.get(&r.partition).is_some_and(|high| r.offset + 1 >= *high) {
                        behind.remove(&r.partition);
                    }
                    record(&inner, r);
                }
                // librdkafka reconnects by itself; notices simply age meanwhile.
                Some(Err(e)) => warn!(topic = %topic, error = %e, "board poll error"),
                None if !behind.is_empty() => crate::reader::drop_reached(&consumer, &mut behind),
                None => {}
            }
        }
    })
    .await
    .map_err(|e| KafkaError::Timeout(format!("board task failed: {e}")))
}
