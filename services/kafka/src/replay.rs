//! Replaying: a whole consumer group from a point, or one key (one conversation) from a time.
//!
//! - [`plan`] / [`apply`] reset a stopped consumer group's offsets, so its topics are re-applied from a point.
//!   Apply is idempotent, so a replay of any range leaves the target as it was; this part only moves offsets.
//!   It refuses while the group has active members: librdkafka members would overwrite the reset with their own
//!   commits, and an operator replaying a group that is still running almost always made a mistake.
//! - [`key`] re-applies one key's records from a time through the service's own [`Handler`], without a consumer
//!   group and without touching any other key. It reads only the key's partition (Java-compatible murmur2, as
//!   the producers place it), from the offset for that time up to the group's committed offset: records below
//!   it were already applied (and recorded, for handlers that keep a ledger) before they were committed, so the
//!   replay can only repeat what the idempotent path turns into no-ops or fill in what was dropped; records at or
//!   above it belong to the running group, and re-applying them here could race with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::Failure;

use crate::admin::Admin;
use crate::config::{KafkaConfig, RetryPolicy};
use crate::consumer::Handler;
use crate::error::KafkaError;
use crate::reader::{Start, read_range};
use crate::record::{Outcome, Record};

/// Where to move the group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTo {
    /// The first retained offset of every partition.
    Earliest,
    /// The first offset at or after this time (Unix ms) in every partition.
    Time(i64),
    /// Explicit `(topic, partition, offset)` positions; partitions not named keep their offsets.
    Offsets(Vec<(String, i32, i64)>),
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReset {
    pub topic: String,
    pub partition: i32,
    /// Committed offset now (`None`: the group has none).
    pub old: Option<i64>,
    pub new: i64,
    /// Retained range, for the operator's sanity check.
    pub low: i64,
    pub high: i64,
}

/// Computes the moves without changing anything.
pub async fn plan(
    cfg: &KafkaConfig,
    group: &str,
    topics: &[String],
    to: &ResetTo,
) -> Result<Vec<PartitionReset>, KafkaError> {
    let admin = Admin::new(cfg)?;
    let mut out = Vec::new();
    let mut all_topics: Vec<String> = topics.to_vec();
    if let ResetTo::Offsets(list) = to {
        for (t, _, _) in list {
            if !all_topics.contains(t) {
                all_topics.push(t.clone());
            }
        }
    }
    if all_topics.is_empty() {
        return Err(KafkaError::Config("name at least one topic to replay".into()));
    }
    for topic in &all_topics {
        let offsets = admin.offsets(topic, Some(group)).await?;
        let by_time = match to {
            ResetTo::Time(t) => Some(admin.offsets_for_time(topic, *t).await?),
            _ => None,
        };
        for p in offsets {
            let new = match to {
                ResetTo::Earliest => Some(p.low),
                ResetTo::Time(_) => by_time
                    .as_ref()
                    .and_then(|v| v.iter().find(|(q, _)| *q == p.partition).map(|(_, o)| *o))
                    .or(Some(p.high)),
                ResetTo::Offsets(list) => {
                    list.iter().find(|(t, q, _)| t == topic && *q == p.partition).map(|(_, _, o)| *o)
                }
            };
            let Some(new) = new else { continue };
            if new < p.low || new > p.high {
                return Err(KafkaError::Config(format!(
                    "{topic}:{}: offset {new} is outside the retained range {}..{}",
                    p.partition, p.low, p.high
                )));
            }
            out.push(PartitionReset {
                topic: topic.clone(),
                partition: p.partition,
                old: p.committed,
                new,
                low: p.low,
                high: p.high,
            });
        }
    }
    Ok(out)
}

/// Commits the planned offsets for `group`, refusing while it has members.
pub async fn apply(cfg: &KafkaConfig, group: &str, plan: &[PartitionReset]) -> Result<(), KafkaError> {
    let admin = Admin::new(cfg)?;
    let members = admin.group_members(group).await?;
    if !members.is_empty() {
        return Err(KafkaError::Group {
            group: group.to_owned(),
            reason: format!("has {} active member(s) ({}); stop them first", members.len(), members.join(", ")),
        });
    }
    let offsets: Vec<(String, i32, i64)> = plan.iter().map(|p| (p.topic.clone(), p.partition, p.new)).collect();
    admin.commit_group_offsets(group, &offsets).await
}

/// What [`key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReplay {
    pub topic: String,
    /// The key's partition.
    pub partition: i32,
    /// First offset read (the offset for the time asked).
    pub from_offset: i64,
    /// The group's committed offset, where the replay stopped (`None`: the group never committed here, so
    /// nothing was applied yet and nothing is replayed).
    pub until_offset: Option<i64>,
    /// Records of the key in that range.
    pub matched: usize,
    /// Records the handler finished (applied or recognised as already applied).
    pub done: usize,
    /// The record the replay stopped at and why: a permanent failure, or transient ones past the retry policy.
    /// Records after it were not offered (per-key order).
    pub failed: Option<(i64, Failure)>,
}

/// Re-applies `key`'s records of `topic` written at or after `since_ms` (Unix ms), up to `group`'s committed
/// offset, through `handler`, in offset order; transient failures are retried with `retry`. See the module docs.
/// The handler is told the partition was assigned before and revoked after, as the consumer runner would.
pub async fn key<H: Handler>(
    cfg: &KafkaConfig,
    group: &str,
    topic: &str,
    key: &[u8],
    since_ms: i64,
    handler: &H,
    retry: &RetryPolicy,
) -> Result<KeyReplay, KafkaError> {
    let admin = Admin::new(cfg)?;
    let partitions = admin.partition_count(topic).await?;
    if partitions == 0 {
        return Err(KafkaError::Topic { topic: topic.to_owned(), reason: "does not exist".into() });
    }
    let partition = crate::partitioner::partition_for_key(key, partitions);
    // The committed offset first: every record below it was applied before it was committed, so a ledger the
    // handler loads afterwards already holds all of them.
    let marks = admin.offsets(topic, Some(group)).await?;
    let until = marks.iter().find(|m| m.partition == partition).and_then(|m| m.committed);
    let from =
        admin.offsets_for_time(topic, since_ms).await?.into_iter().find(|(p, _)| *p == partition).map_or(0, |(_, o)| o);
    let mut out = KeyReplay {
        topic: topic.to_owned(),
        partition,
        from_offset: from,
        until_offset: until,
        matched: 0,
        done: 0,
        failed: None,
    };
    let Some(until) = until.filter(|u| *u > from) else { return Ok(out) };
    let found: Arc<Mutex<Vec<Record>>> = Arc::default();
    let sink = found.clone();
    let wanted = key.to_vec();
    read_range(cfg, topic, Some(partition), Start::Time(since_ms), move |r| {
        if r.offset >= until {
            return false;
        }
        if r.key.as_deref() == Some(wanted.as_slice())
            && let Ok(mut v) = sink.lock()
        {
            v.push(r);
        }
        true
    })
    .await?;
    let records = found.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    out.matched = records.len();
    let tp = [(topic.to_owned(), partition)];
    handler.partitions_assigned(&tp);
    let result = reapply(handler, &records, retry).await;
    handler.partitions_revoked(&tp);
    out.done = result.0;
    out.failed = result.1;
    Ok(out)
}

/// Offers `records` (one key, in order) to `handler` like the runner's lane does: batches up to the handler's
/// limit, retries with backoff, and stops at the first record that fails for good. Returns how many finished.
async fn reapply<H: Handler>(handler: &H, records: &[Record], retry: &RetryPolicy) -> (usize, Option<(i64, Failure)>) {
    let limit = handler.batch_limit().max(1);
    let mut next = 0usize;
    let mut attempts = 0u32;
    while next < records.len() {
        let batch: Vec<&Record> = records[next..].iter().take(limit).collect();
        let outcome = handler.handle_batch(&batch).await;
        let done = outcome.done.min(batch.len());
        next += done;
        if done > 0 {
            attempts = 0;
        }
        // An outcome past the end of the batch is a handler bug; the runner ignores it too.
        if done == batch.len() {
            continue;
        }
        let failure = match outcome.next {
            None => Failure::new("no_progress", "the handler finished nothing"),
            Some(Outcome::Done) => {
                next += 1;
                attempts = 0;
                continue;
            }
            Some(Outcome::DeadLetter(f)) => return (next, Some((records[next].offset, f))),
            Some(Outcome::Retry(f)) => f,
            // A replay offers every record of the key at once: nothing more will arrive to wait for.
            Some(Outcome::Wait(_)) => {
                return (
                    next,
                    Some((
                        records[next].offset,
                        Failure::new("waiting", "the handler waits for records the replay does not hold"),
                    )),
                );
            }
        };
        attempts += 1;
        if attempts >= retry.max_attempts {
            let f = Failure::new(
                crate::dlq::KIND_RETRIES_EXHAUSTED,
                format!("{attempts} attempts failed; last: {}: {}", failure.kind, failure.reason),
            );
            return (next, Some((records[next].offset, f)));
        }
        tokio::time::sleep(retry.backoff(attempts).min(Duration::from_secs(60))).await;
    }
    (next, None)
}
