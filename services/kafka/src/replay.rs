//! Resetting a stopped consumer group's offsets, so its topics are re-applied from a point.
//!
//! Apply is idempotent, so a replay of any range leaves the target as it was; this module only moves offsets.
//! It refuses while the group has active members: librdkafka members would overwrite the reset with their own
//! commits, and an operator replaying a group that is still running almost always made a mistake.

use crate::admin::Admin;
use crate::config::KafkaConfig;
use crate::error::KafkaError;

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
