//! Reading a topic range without joining a consumer group.
//!
//! Operators' tools (DLQ listing, conversation replay) and the applied-events ledger read "everything from
//! here to the current end" of partitions; a group would commit offsets and rebalance, which they must not.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::Admin;
use crate::config::KafkaConfig;
use crate::error::KafkaError;
use crate::record::Record;

const POLL: Duration = Duration::from_millis(200);

/// Where to start reading each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    /// The first offset at or after this time (Unix ms).
    Time(i64),
}

/// Reads `topic` (all partitions, or only `partition`) from `start` up to the high watermark seen when the
/// call began, calling `f` for every record in offset order per partition. Returns the number of records.
/// `f` returns `false` to stop early.
pub async fn read_range(
    cfg: &KafkaConfig,
    topic: &str,
    partition: Option<i32>,
    start: Start,
    mut f: impl FnMut(Record) -> bool + Send + 'static,
) -> Result<u64, KafkaError> {
    let admin = Admin::new(cfg)?;
    let marks = admin.offsets(topic, None).await?;
    let starts: Vec<(i32, i64)> = match start {
        Start::Earliest => marks.iter().map(|m| (m.partition, m.low)).collect(),
        Start::Time(t) => admin.offsets_for_time(topic, t).await?,
    };
    let mut plan = Vec::new();
    for m in &marks {
        if partition.is_some_and(|p| p != m.partition) {
            continue;
        }
        let from = starts.iter().find(|(p, _)| *p == m.partition).map_or(m.low, |(_, o)| *o).max(m.low);
        if from < m.high {
            plan.push((m.partition, from, m.high));
        }
    }
    if plan.is_empty() {
        return Ok(0);
    }
    let mut c = cfg.admin_config();
    c.set("group.id", "imbridge-reader").set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        for (p, from, _) in &plan {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(*from))?;
        }
        consumer.assign(&tpl)?;
        let mut remaining: std::collections::HashMap<i32, i64> = plan.iter().map(|(p, _, h)| (*p, *h)).collect();
        let mut n = 0u64;
        let mut idle = 0u32;
        while !remaining.is_empty() {
            match consumer.poll(POLL) {
                Some(Ok(m)) => {
                    idle = 0;
                    let r = Record::from_message(&m);
                    let Some(high) = remaining.get(&r.partition).copied() else { continue };
                    if r.offset >= high {
                        remaining.remove(&r.partition);
                        continue;
                    }
                    if r.offset + 1 >= high {
                        remaining.remove(&r.partition);
                    }
                    n += 1;
                    if !f(r) {
                        break;
                    }
                }
                Some(Err(e)) => return Err(KafkaError::from(e)),
                None => {
                    // Offsets can have gaps at the end (transaction markers); stop when nothing more comes.
                    idle += 1;
                    if idle > 25 {
                        break;
                    }
                }
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| KafkaError::Timeout(format!("reader task failed: {e}")))?
}
