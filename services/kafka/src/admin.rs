//! Topic creation and the offset queries that status, replay and tests need.
//!
//! Metadata and offset lookups in librdkafka are blocking calls; the async wrappers run them on the blocking
//! pool so an HTTP handler or a run loop never stalls a runtime worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use tracing::{debug, warn};

use crate::config::KafkaConfig;
use crate::error::KafkaError;

const TIMEOUT: Duration = Duration::from_secs(10);

pub use imbridge_core::topics::TopicSpec;

/// Per-partition numbers of one topic (and optionally one group's committed offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    /// Committed offset of the group asked about; `None` when the group has none for this partition.
    pub committed: Option<i64>,
}

impl PartitionOffsets {
    /// Records not yet consumed by the group (a group with no commit counts everything retained).
    pub fn lag(&self) -> i64 {
        self.lag_after(None)
    }

    /// The same, counting a running member's finished position too when it is further than the commit (see
    /// [`crate::consumer::Progress`]): what remains is after the furthest of the two.
    pub fn lag_after(&self, finished: Option<i64>) -> i64 {
        let done = self.committed.unwrap_or(self.low).max(finished.unwrap_or(self.low)).max(self.low);
        (self.high - done).max(0)
    }
}

/// A topic setting imbridge asks for that an existing topic does not have (it was created earlier, by an older
/// version, or by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDrift {
    pub topic: String,
    pub key: String,
    pub wanted: String,
    /// What the broker reports; `None` when it reports nothing for the key.
    pub actual: Option<String>,
}

impl std::fmt::Display for ConfigDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "topic {} has {}={}, imbridge asks for {} (kafka-configs --alter --entity-type topics --entity-name {} \
             --add-config {}={})",
            self.topic,
            self.key,
            self.actual.as_deref().unwrap_or("(unset)"),
            self.wanted,
            self.topic,
            self.key,
            if self.wanted.contains(',') { format!("[{}]", self.wanted) } else { self.wanted.clone() },
        )
    }
}

/// A setting's value for comparison: list values (`cleanup.policy=compact,delete`) in any order.
fn normalized(value: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
    parts.sort_unstable();
    parts
}

/// Admin and metadata access for one cluster.
pub struct Admin {
    cfg: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    /// One group-less consumer for metadata, watermarks and group listings, reused by every query: creating a
    /// client costs a broker connection, and a status report makes dozens of queries.
    meta: Arc<BaseConsumer>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("bootstrap", &self.cfg.bootstrap_servers).finish_non_exhaustive()
    }
}

impl Admin {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let admin = cfg.admin_config().create()?;
        let meta = Arc::new(Self::consumer_for(cfg, None)?);
        Ok(Self { cfg: cfg.clone(), admin, meta })
    }

    /// Creates the topics that are missing. Existing topics are left alone; an existing topic with fewer
    /// partitions than asked is reported, never silently used (ordering depends on the count).
    pub async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), KafkaError> {
        let configs: Vec<Vec<(String, String)>> =
            specs.iter().map(|s| s.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).collect();
        let new: Vec<NewTopic<'_>> = specs
            .iter()
            .zip(&configs)
            .map(|(s, c)| {
                let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication));
                for (k, v) in c {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self.admin.create_topics(new.iter(), &opts).await?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::Topic { topic, reason: format!("create failed: {code}") });
                }
            }
        }
        for s in specs {
            let n = self.wait_for_partitions(&s.name).await?;
            if n < s.partitions {
                return Err(KafkaError::Topic {
                    topic: s.name.clone(),
                    reason: format!("exists with {n} partitions, {} configured", s.partitions),
                });
            }
        }
        // Settings are the operator's to change (a longer retention, say), so a difference is reported, never
        // altered nor refused; and a broker that will not describe configs only loses the report.
        match self.config_drift(specs).await {
            Ok(drift) => {
                for d in drift {
                    warn!(topic = %d.topic, key = %d.key, wanted = %d.wanted, actual = ?d.actual, "{d}");
                }
            }
            Err(e) => debug!(error = %e, "cannot describe topic configs; not checked"),
        }
        Ok(())
    }

    /// The settings of `specs` that their existing topics do not have.
    pub async fn config_drift(&self, specs: &[TopicSpec]) -> Result<Vec<ConfigDrift>, KafkaError> {
        let wanted: Vec<&TopicSpec> = specs.iter().filter(|s| !s.config.is_empty()).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let resources: Vec<ResourceSpecifier<'_>> =
            wanted.iter().map(|s| ResourceSpecifier::Topic(s.name.as_str())).collect();
        let opts = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let described = self.admin.describe_configs(resources.iter(), &opts).await?;
        let mut drift = Vec::new();
        for (spec, result) in wanted.iter().zip(described) {
            let resource = result.map_err(|code| KafkaError::Topic {
                topic: spec.name.clone(),
                reason: format!("describe configs failed: {code}"),
            })?;
            for (key, value) in &spec.config {
                let actual = resource.get(key).and_then(|e| e.value.clone());
                if actual.as_deref().map(normalized) != Some(normalized(value)) {
                    drift.push(ConfigDrift {
                        topic: spec.name.clone(),
                        key: key.clone(),
                        wanted: value.clone(),
                        actual,
                    });
                }
            }
        }
        Ok(drift)
    }

    /// Topic metadata can lag creation by a moment; wait until the partitions are visible.
    async fn wait_for_partitions(&self, topic: &str) -> Result<i32, KafkaError> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match self.partition_count(topic).await {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) => return Err(KafkaError::Topic { topic: topic.to_owned(), reason: "has no partitions".into() }),
                Err(e) => return Err(e),
            }
        }
    }

    /// The shared metadata consumer, or a fresh one bound to `group` (committed offsets are per group).
    fn metadata_consumer(&self, group: Option<&str>) -> Result<Arc<BaseConsumer>, KafkaError> {
        match group {
            None => Ok(self.meta.clone()),
            Some(g) => Ok(Arc::new(Self::consumer_for(&self.cfg, Some(g))?)),
        }
    }

    fn consumer_for(cfg: &KafkaConfig, group: Option<&str>) -> Result<BaseConsumer, KafkaError> {
        let mut c = cfg.admin_config();
        // A consumer used only to read metadata and offsets; it never subscribes, so it never joins the group.
        c.set("group.id", group.unwrap_or("imbridge-metadata"));
        c.set("enable.auto.commit", "false");
        Ok(c.create()?)
    }

    /// Number of partitions of `topic` (0 if it does not exist).
    pub async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        let consumer = self.metadata_consumer(None)?;
        let topic = topic.to_owned();
        blocking(move || {
            let md = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            Ok(md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .unwrap_or(0))
        })
        .await
    }

    /// Low/high watermarks of every partition, plus `group`'s committed offsets when given.
    pub async fn offsets(&self, topic: &str, group: Option<&str>) -> Result<Vec<PartitionOffsets>, KafkaError> {
        let n = self.partition_count(topic).await?;
        if n == 0 {
            return Err(KafkaError::Topic { topic: topic.to_owned(), reason: "does not exist".into() });
        }
        let consumer = self.metadata_consumer(group)?;
        let topic = topic.to_owned();
        let with_group = group.is_some();
        blocking(move || {
            let mut out = Vec::with_capacity(n as usize);
            let mut committed = BTreeMap::new();
            if with_group {
                let mut tpl = TopicPartitionList::new();
                for p in 0..n {
                    tpl.add_partition(&topic, p);
                }
                for e in consumer.committed_offsets(tpl, TIMEOUT)?.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        committed.insert(e.partition(), o);
                    }
                }
            }
            for p in 0..n {
                let (low, high) = consumer.fetch_watermarks(&topic, p, TIMEOUT)?;
                out.push(PartitionOffsets { partition: p, low, high, committed: committed.get(&p).copied() });
            }
            Ok(out)
        })
        .await
    }

    /// For each partition, the earliest offset whose timestamp is at or after `time_ms` (the high watermark when
    /// none is).
    pub async fn offsets_for_time(&self, topic: &str, time_ms: i64) -> Result<Vec<(i32, i64)>, KafkaError> {
        let n = self.partition_count(topic).await?;
        let consumer = self.metadata_consumer(None)?;
        let topic = topic.to_owned();
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..n {
                tpl.add_partition_offset(&topic, p, Offset::Offset(time_ms))?;
            }
            let found = consumer.offsets_for_times(tpl, TIMEOUT)?;
            let mut out = Vec::new();
            for e in found.elements() {
                let off = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => consumer.fetch_watermarks(&topic, e.partition(), TIMEOUT)?.1,
                };
                out.push((e.partition(), off));
            }
            out.sort_unstable();
            Ok(out)
        })
        .await
    }

    /// Commits explicit offsets for a group that has no active members (replay resets).
    pub async fn commit_group_offsets(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<(), KafkaError> {
        let consumer = self.metadata_consumer(Some(group))?;
        let offsets = offsets.to_vec();
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (t, p, o) in &offsets {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
            }
            consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)?;
            Ok(())
        })
        .await
    }

    /// Members currently in `group` (a replay refuses to move a group that has any).
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, KafkaError> {
        let consumer = self.metadata_consumer(None)?;
        let group = group.to_owned();
        blocking(move || {
            let list = consumer.fetch_group_list(Some(&group), TIMEOUT)?;
            Ok(list
                .groups()
                .iter()
                .filter(|g| g.name() == group)
                .flat_map(|g| g.members().iter().map(|m| format!("{} ({})", m.client_id(), m.client_host())))
                .collect())
        })
        .await
    }
}

/// Runs a blocking metadata query on the blocking pool, retrying the answers a broker gives while it settles —
/// right after a topic is created its partitions may briefly have no known leader, and a coordinator may still be
/// loading (about 2 s in all). Anything else — notably an unreachable broker — is returned at once: readiness
/// probes must see Kafka go away without delay.
async fn blocking<T: Send + 'static>(f: impl Fn() -> Result<T, KafkaError> + Send + 'static) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(move || {
        let mut attempt = 0u32;
        loop {
            match f() {
                Err(e) if attempt < 6 && is_settling(&e) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    })
    .await
    .map_err(|e| KafkaError::Timeout(format!("metadata task failed: {e}")))?
}

fn is_settling(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    let KafkaError::Client(c) = e else { return false };
    matches!(
        c.rdkafka_error_code(),
        Some(
            C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::UnknownTopicOrPartition
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(low: i64, high: i64, committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets { partition: 0, low, high, committed }
    }

    #[test]
    fn a_partition_is_done_as_far_as_its_commit_or_its_member_got() {
        assert_eq!(offsets(0, 100, None).lag_after(None), 100, "nothing committed, nothing received");
        assert_eq!(offsets(0, 100, Some(40)).lag(), 60, "a resumed run: the commit counts");
        assert_eq!(offsets(0, 100, Some(40)).lag_after(Some(100)), 0, "finished ahead of the next commit");
        assert_eq!(offsets(0, 100, Some(100)).lag_after(Some(70)), 0, "committed by an earlier attempt");
        assert_eq!(offsets(50, 100, None).lag_after(Some(10)), 50, "retention moved the start");
        assert_eq!(offsets(0, 0, None).lag(), 0, "an empty partition");
    }
}
