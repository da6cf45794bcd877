//! Reading a topic range without joining a consumer group.
//!
//! Operators' tools (DLQ listing, conversation replay) and the applied-events ledger read "everything from
//! here to the current end" of partitions; a group would commit offsets and rebalance, which they must not.
//! [`follow`] does the same and then keeps following, for small compacted state topics a service mirrors in
//! memory (`imbridge.conversations`); [`follow_forever`] keeps that up across failures.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
    f: impl FnMut(Record) -> bool + Send + 'static,
) -> Result<u64, KafkaError> {
    read_range_with(&Admin::new(cfg)?, cfg, topic, partition, start, f).await
}

/// [`read_range`] with the caller's [`Admin`] for the offsets: a caller that already holds a connected one
/// learns that there is nothing to read without a client's start-up (a fifth of a second).
pub async fn read_range_with(
    admin: &Admin,
    cfg: &KafkaConfig,
    topic: &str,
    partition: Option<i32>,
    start: Start,
    mut f: impl FnMut(Record) -> bool + Send + 'static,
) -> Result<u64, KafkaError> {
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

/// What [`follow`] reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The next record of a partition (offset order per partition).
    Record(Record),
    /// Every record that existed when following began has been reported (sent once).
    CaughtUp,
}

/// Reads every partition of `topic` from the beginning and keeps following it until `shutdown` fires or the
/// receiver is dropped. Records arrive in offset order per partition, then one [`Followed::CaughtUp`] once the
/// high watermarks seen at the start were reached (at once for an empty topic), then whatever is written later.
/// No consumer group: nothing is committed and nothing rebalances. Partitions added later are not followed.
pub async fn follow(
    cfg: &KafkaConfig,
    topic: &str,
    shutdown: CancellationToken,
    capacity: usize,
) -> Result<mpsc::Receiver<Followed>, KafkaError> {
    let admin = Admin::new(cfg)?;
    let marks = admin.offsets(topic, None).await?;
    let mut c = cfg.admin_config();
    c.set("group.id", "imbridge-follower").set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    for m in &marks {
        tpl.add_partition_offset(topic, m.partition, Offset::Offset(m.low))?;
    }
    consumer.assign(&tpl)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let topic = topic.to_owned();
    // Partitions still short of the high watermark they had at the start.
    let mut behind: std::collections::HashMap<i32, i64> =
        marks.iter().filter(|m| m.high > m.low).map(|m| (m.partition, m.high)).collect();
    tokio::task::spawn_blocking(move || {
        let mut caught_up = false;
        // Also stop when the receiver is gone (its owner was dropped), even while nothing arrives.
        while !shutdown.is_cancelled() && !tx.is_closed() {
            if !caught_up && behind.is_empty() {
                caught_up = true;
                if tx.blocking_send(Followed::CaughtUp).is_err() {
                    return;
                }
            }
            match consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let r = Record::from_message(&m);
                    if behind.get(&r.partition).is_some_and(|high| r.offset + 1 >= *high) {
                        behind.remove(&r.partition);
                    }
                    if tx.blocking_send(Followed::Record(r)).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    // Broker unreachable and similar: librdkafka reconnects; keep polling.
                    tracing::warn!(topic = %topic, error = %e, "follower poll error");
                }
                None if !behind.is_empty() => drop_reached(&consumer, &mut behind),
                None => {}
            }
        }
    });
    Ok(rx)
}

/// [`follow`] kept up until `shutdown`: when following cannot start (at start-up the topic may not exist yet),
/// `retry_after(failures, error)` says how long to wait before trying again, and every new start reads the topic
/// from the beginning, so `each` may see a record twice — right for a compacted state topic mirrored in memory,
/// where applying a record again changes nothing. `failures` counts since the last successful start.
pub async fn follow_forever(
    cfg: &KafkaConfig,
    topic: &str,
    shutdown: &CancellationToken,
    mut retry_after: impl FnMut(u32, &KafkaError) -> Duration,
    mut each: impl FnMut(Followed),
) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let mut rx = match follow(cfg, topic, shutdown.clone(), 1024).await {
            Ok(rx) => rx,
            Err(e) => {
                failures += 1;
                tokio::select! {
                    _ = tokio::time::sleep(retry_after(failures, &e)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        failures = 0;
        while let Some(f) = rx.recv().await {
            each(f);
        }
    }
}

/// Forgets the partitions of `behind` (partition → high watermark to reach) whose fetch position reached their
/// watermark. The last offsets below a watermark can be gaps (compaction, transaction markers): such a partition
/// is caught up even though no record at the watermark will ever arrive.
pub(crate) fn drop_reached(consumer: &BaseConsumer, behind: &mut std::collections::HashMap<i32, i64>) {
    if let Ok(pos) = consumer.position() {
        for e in pos.elements() {
            if let Offset::Offset(o) = e.offset()
                && behind.get(&e.partition()).is_some_and(|high| o >= *high)
            {
                behind.remove(&e.partition());
            }
        }
    }
}
