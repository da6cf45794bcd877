//! Every topic imbridge creates, with its partition count and settings, in one place.
//!
//! Several parts create the topics they touch (whichever starts first), so they must all ask for the same
//! thing: a partition count is part of the ordering contract (a key's partition depends on it), and the
//! admin client refuses a topic that exists with fewer partitions than asked for.

use imbridge_core::topics::TopicNames;

use crate::admin::{Admin, TopicSpec};
use crate::error::KafkaError;

/// Real-time event topics keep a week: enough to replay after an incident, bounded for disk.
const EVENT_RETENTION_MS: &str = "604800000";
/// The DLQ has few partitions (it is small) and keeps records until they are resolved: the DLQ is also the
/// durable record of which conversations are parked, so retention must never silently unpark one.
const DLQ_PARTITIONS: i32 = 3;

/// The topics imbridge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    LegacyEvents,
    ImEvents,
    ImportAccounts,
    ImportUsers,
    ImportC2c,
    ImportGroups,
    Dlq,
    Applied,
    Conversations,
    Status,
}

impl Topic {
    pub const IMPORT: [Topic; 4] = [Topic::ImportAccounts, Topic::ImportUsers, Topic::ImportC2c, Topic::ImportGroups];

    pub fn name(self, n: &TopicNames) -> &str {
        match self {
            Topic::LegacyEvents => &n.legacy_events,
            Topic::ImEvents => &n.im_events,
            Topic::ImportAccounts => &n.import_accounts,
            Topic::ImportUsers => &n.import_users,
            Topic::ImportC2c => &n.import_c2c,
            Topic::ImportGroups => &n.import_groups,
            Topic::Dlq => &n.dlq,
            Topic::Applied => &n.applied,
            Topic::Conversations => &n.conversations,
            Topic::Status => &n.status,
        }
    }

    /// How imbridge creates this topic.
    pub fn spec(self, n: &TopicNames) -> TopicSpec {
        let t = TopicSpec::new(self.name(n), n.partitions).replication(n.replication);
        match self {
            Topic::LegacyEvents | Topic::ImEvents => t.with_config("retention.ms", EVENT_RETENTION_MS),
            Topic::ImportAccounts | Topic::ImportUsers | Topic::ImportC2c | Topic::ImportGroups => t,
            Topic::Dlq => TopicSpec::new(self.name(n), DLQ_PARTITIONS)
                .replication(n.replication)
                .with_config("retention.ms", "-1"),
            // The applied-ledger's records go to the source event's partition number: as many partitions as
            // the event topics. Compacted: one record per event id; tombstones kept a day for slow readers.
            Topic::Applied => t
                .with_config("cleanup.policy", "compact")
                .with_config("min.compaction.lag.ms", "3600000")
                .with_config("delete.retention.ms", "86400000"),
            Topic::Conversations => TopicSpec::new(self.name(n), n.partitions.min(12))
                .replication(n.replication)
                .with_config("cleanup.policy", "compact"),
            // A handful of keys (one per ingest instance, one per reconcile group): one partition keeps every
            // reader's view in one order; compacted so a reader starting late finds each key's latest record.
            Topic::Status => TopicSpec::new(self.name(n), 1)
                .replication(n.replication)
                .with_config("cleanup.policy", "compact")
                .with_config("segment.ms", "3600000"),
        }
    }
}

/// Creates whichever of `topics` are missing, all with the shared specs.
pub async fn ensure(admin: &Admin, names: &TopicNames, topics: &[Topic]) -> Result<(), KafkaError> {
    let specs: Vec<TopicSpec> = topics.iter().map(|t| t.spec(names)).collect();
    admin.ensure_topics(&specs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_topics_have_one_spec() {
        let n = TopicNames { partitions: 6, ..TopicNames::default() };
        assert_eq!(Topic::Dlq.spec(&n).partitions, 3);
        assert_eq!(Topic::Applied.spec(&n).partitions, 6);
        assert_eq!(Topic::Conversations.spec(&n).config.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!(Topic::LegacyEvents.spec(&n).name, "imbridge.legacy.events");
    }
}
