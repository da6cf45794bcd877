//! Every Kafka topic imbridge uses, in one typed list: the logical [`Topic`], its configured name
//! ([`TopicNames`], the `[topics]` section) and how it is created ([`TopicSpec`]). Whatever names, reads, writes
//! or creates a topic goes through this list (see `schemas/topics.md` for what each carries).
//!
//! Several parts create the topics they touch (whichever starts first), so they must all ask for the same
//! thing: a partition count is part of the ordering contract (a key's partition depends on it), and the admin
//! client refuses a topic that exists with fewer partitions than asked for.

use std::collections::BTreeMap;

use crate::EventKind;

/// Real-time event topics keep a week: enough to replay after an incident, bounded for disk.
const EVENT_RETENTION_MS: &str = "604800000";
/// Event topics roll a segment a day, so a record is deleted at most a day after its retention (Kafka deletes
/// whole segments, and the default `segment.ms` of a week would keep some records two weeks).
const EVENT_SEGMENT_MS: &str = "86400000";
/// How long the applied ledger keeps an entry, in ms: the event retention, plus a segment, plus a day. An entry
/// is written after its event, so it outlives every copy of that event that a replay or redelivery could still
/// read; after that, keeping it only grows the topic, every start-up's load and to-im's memory.
pub const APPLIED_RETENTION_MS: u64 = 9 * 86_400_000;
/// The DLQ has few partitions (it is small) and keeps records until they are resolved: the DLQ is also the
/// durable record of which conversations are parked, so retention must never silently unpark one.
const DLQ_PARTITIONS: i32 = 3;

/// A topic imbridge uses, independent of what it is called in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Canonical events from the legacy side (ingest → to-im), keyed by conversation.
    LegacyEvents,
    /// Canonical events from IM callbacks (ingest → to-legacy), keyed by conversation.
    ImEvents,
    /// Import phase 1: `import.account`, keyed `user:<id>`. Everything else depends on accounts existing.
    ImportAccounts,
    /// Import: `import.profile` and `import.friendship`, keyed `user:<id>` (the friend list's owner).
    ImportUsers,
    /// Import: `import.c2c_message` then `import.c2c_read` of each conversation, keyed `c2c:<a>:<b>`.
    ImportC2c,
    /// Import: `import.group`, `import.group_member`, `import.group_message`, `import.member_unread` of each
    /// group in that order, keyed `group:<id>`.
    ImportGroups,
    /// Compacted, one partition: one checkpoint per export (how far producing got), so a re-run after a crash
    /// continues instead of starting over.
    ImportCheckpoints,
    /// Records that can never apply, with headers saying where they came from and why.
    Dlq,
    /// Compacted ledger of applied event ids (key = event id), checked on replay and after a crash.
    Applied,
    /// Compacted: per conversation key, whether its history is still being imported (`importing`) or live
    /// writes may apply (`live`). Written by the importer and its apply; read by to-im live apply and ingest.
    Conversations,
    /// Compacted, one partition: services' health records (ingest heartbeats, reconcile's last sweep).
    Status,
    /// One partition, seconds of retention: every IM caller's demand announcements, from which each computes
    /// the same split of IM's per-app quotas (`docs/quotas.md`).
    Quota,
}

impl Topic {
    /// Every topic, in the order `[topics]` lists them.
    pub const ALL: [Topic; 12] = [
        Topic::LegacyEvents,
        Topic::ImEvents,
        Topic::ImportAccounts,
        Topic::ImportUsers,
        Topic::ImportC2c,
        Topic::ImportGroups,
        Topic::ImportCheckpoints,
        Topic::Dlq,
        Topic::Applied,
        Topic::Conversations,
        Topic::Status,
        Topic::Quota,
    ];

    /// The import topics, in the order their phases ([`ImportPhase`]) may start.
    pub const IMPORT: [Topic; 4] = [Topic::ImportAccounts, Topic::ImportUsers, Topic::ImportC2c, Topic::ImportGroups];

    /// Its key in `[topics]`.
    pub fn key(self) -> &'static str {
        match self {
            Topic::LegacyEvents => "legacy_events",
            Topic::ImEvents => "im_events",
            Topic::ImportAccounts => "import_accounts",
            Topic::ImportUsers => "import_users",
            Topic::ImportC2c => "import_c2c",
            Topic::ImportGroups => "import_groups",
            Topic::ImportCheckpoints => "import_checkpoints",
            Topic::Dlq => "dlq",
            Topic::Applied => "applied",
            Topic::Conversations => "conversations",
            Topic::Status => "status",
            Topic::Quota => "quota",
        }
    }

    /// Its name when `[topics]` does not rename it.
    pub fn default_name(self) -> &'static str {
        match self {
            Topic::LegacyEvents => "imbridge.legacy.events",
            Topic::ImEvents => "imbridge.im.events",
            Topic::ImportAccounts => "imbridge.import.accounts",
            Topic::ImportUsers => "imbridge.import.users",
            Topic::ImportC2c => "imbridge.import.c2c",
            Topic::ImportGroups => "imbridge.import.groups",
            Topic::ImportCheckpoints => "imbridge.import.checkpoints",
            Topic::Dlq => "imbridge.dlq",
            Topic::Applied => "imbridge.applied",
            Topic::Conversations => "imbridge.conversations",
            Topic::Status => "imbridge.status",
            Topic::Quota => "imbridge.quota",
        }
    }

    /// For an import topic, its phase.
    pub fn import_phase(self) -> Option<ImportPhase> {
        ImportPhase::ALL.into_iter().find(|p| p.topic() == self)
    }

    /// How imbridge creates this topic, named as configured.
    pub fn spec(self, n: &TopicNames) -> TopicSpec {
        let t = TopicSpec::new(n.name(self), n.partitions).replication(n.replication);
        match self {
            Topic::LegacyEvents | Topic::ImEvents => {
                t.with_config("retention.ms", EVENT_RETENTION_MS).with_config("segment.ms", EVENT_SEGMENT_MS)
            }
            Topic::ImportAccounts | Topic::ImportUsers | Topic::ImportC2c | Topic::ImportGroups => t,
            Topic::ImportCheckpoints => {
                TopicSpec::new(n.name(self), 1).replication(n.replication).with_config("cleanup.policy", "compact")
            }
            Topic::Dlq => TopicSpec::new(n.name(self), DLQ_PARTITIONS)
                .replication(n.replication)
                .with_config("retention.ms", "-1"),
            // The applied-ledger's records go to the source event's partition number: as many partitions as
            // the event topics. Compacted: one record per event id; tombstones kept a day for slow readers.
            // Deleted too, once no copy of the event can be read any more (see APPLIED_RETENTION_MS).
            Topic::Applied => t
                .with_config("cleanup.policy", "compact,delete")
                .with_config("retention.ms", &APPLIED_RETENTION_MS.to_string())
                .with_config("min.compaction.lag.ms", "3600000")
                .with_config("delete.retention.ms", "86400000"),
            Topic::Conversations => TopicSpec::new(n.name(self), n.partitions.min(12))
                .replication(n.replication)
                .with_config("cleanup.policy", "compact"),
            // A handful of keys (one per ingest instance, one per reconcile group): one partition keeps every
            // reader's view in one order; compacted so a reader starting late finds each key's latest record.
            Topic::Status => TopicSpec::new(n.name(self), 1)
                .replication(n.replication)
                .with_config("cleanup.policy", "compact")
                .with_config("segment.ms", "3600000"),
            // Readers start a few seconds back and announcements are stale after seconds: a minute of retention
            // in one-minute segments keeps the topic tiny.
            Topic::Quota => TopicSpec::new(n.name(self), 1)
                .replication(n.replication)
                .with_config("retention.ms", "60000")
                .with_config("segment.ms", "60000"),
        }
    }
}

/// A phase of the bulk import: each has its own import topic and consumer group, in this order (accounts
/// first, since everything else depends on them existing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportPhase {
    Accounts,
    Users,
    C2c,
    Groups,
}

impl ImportPhase {
    pub const ALL: [ImportPhase; 4] =
        [ImportPhase::Accounts, ImportPhase::Users, ImportPhase::C2c, ImportPhase::Groups];

    /// Its name: the suffix of its consumer group (`imbridge-import.c2c`) and its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportPhase::Accounts => "accounts",
            ImportPhase::Users => "users",
            ImportPhase::C2c => "c2c",
            ImportPhase::Groups => "groups",
        }
    }

    /// The topic its records travel on.
    pub fn topic(self) -> Topic {
        match self {
            ImportPhase::Accounts => Topic::ImportAccounts,
            ImportPhase::Users => Topic::ImportUsers,
            ImportPhase::C2c => Topic::ImportC2c,
            ImportPhase::Groups => Topic::ImportGroups,
        }
    }

    /// The phase that carries a kind, or `None` for real-time kinds.
    pub fn of_kind(kind: EventKind) -> Option<ImportPhase> {
        use EventKind as K;
        match kind {
            K::ImportAccount => Some(ImportPhase::Accounts),
            K::ImportProfile | K::ImportFriendship => Some(ImportPhase::Users),
            K::ImportC2cMessage | K::ImportC2cRead => Some(ImportPhase::C2c),
            K::ImportGroup | K::ImportGroupMember | K::ImportGroupMessage | K::ImportMemberUnread => {
                Some(ImportPhase::Groups)
            }
            // Follows the conversation's history on that history's own topic (c2c or groups).
            K::ImportConversationDone => None,
            K::C2cMessage
            | K::GroupMessage
            | K::GroupCreated
            | K::GroupUpdated
            | K::GroupDismissed
            | K::MembersJoined
            | K::MembersLeft => None,
        }
    }
}

/// A topic to create: its name, partition count and topic-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic configs such as `cleanup.policy=compact` or `retention.ms`.
    pub config: BTreeMap<String, String>,
    pub replication: i32,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self { name: name.into(), partitions, config: BTreeMap::new(), replication: 1 }
    }

    pub fn with_config(mut self, k: &str, v: &str) -> Self {
        self.config.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn replication(mut self, r: i32) -> Self {
        self.replication = r;
        self
    }
}

/// `[topics]` in imbridge.toml: each [`Topic`]'s name (defaults: [`Topic::default_name`]) and how many
/// partitions and replicas imbridge creates them with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicNames {
    pub legacy_events: String,
    pub im_events: String,
    pub import_accounts: String,
    pub import_users: String,
    pub import_c2c: String,
    pub import_groups: String,
    pub import_checkpoints: String,
    pub dlq: String,
    pub applied: String,
    pub conversations: String,
    pub status: String,
    pub quota: String,
    /// Partitions of the event and import topics when imbridge creates them (more = more parallel apply).
    pub partitions: i32,
    /// Replication factor when imbridge creates topics (1 for a single local broker, 3 in production).
    pub replication: i32,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            legacy_events: Topic::LegacyEvents.default_name().to_owned(),
            im_events: Topic::ImEvents.default_name().to_owned(),
            import_accounts: Topic::ImportAccounts.default_name().to_owned(),
            import_users: Topic::ImportUsers.default_name().to_owned(),
            import_c2c: Topic::ImportC2c.default_name().to_owned(),
            import_groups: Topic::ImportGroups.default_name().to_owned(),
            import_checkpoints: Topic::ImportCheckpoints.default_name().to_owned(),
            dlq: Topic::Dlq.default_name().to_owned(),
            applied: Topic::Applied.default_name().to_owned(),
            conversations: Topic::Conversations.default_name().to_owned(),
            status: Topic::Status.default_name().to_owned(),
            quota: Topic::Quota.default_name().to_owned(),
            partitions: 12,
            replication: 1,
        }
    }
}

impl TopicNames {
    /// The configured name of `topic`.
    pub fn name(&self, topic: Topic) -> &str {
        match topic {
            Topic::LegacyEvents => &self.legacy_events,
            Topic::ImEvents => &self.im_events,
            Topic::ImportAccounts => &self.import_accounts,
            Topic::ImportUsers => &self.import_users,
            Topic::ImportC2c => &self.import_c2c,
            Topic::ImportGroups => &self.import_groups,
            Topic::ImportCheckpoints => &self.import_checkpoints,
            Topic::Dlq => &self.dlq,
            Topic::Applied => &self.applied,
            Topic::Conversations => &self.conversations,
            Topic::Status => &self.status,
            Topic::Quota => &self.quota,
        }
    }

    /// Every topic named `<prefix>.…` instead of `imbridge.…` (`<prefix>.legacy.events`, `<prefix>.dlq`, …):
    /// topics of their own for a test or a bench on a shared broker.
    pub fn with_prefix(prefix: &str) -> Self {
        let mut n = Self::default();
        for t in Topic::ALL {
            let name = format!("{prefix}{}", t.default_name().trim_start_matches("imbridge"));
            n.set_name(t, name);
        }
        n
    }

    fn set_name(&mut self, topic: Topic, name: String) {
        let slot = match topic {
            Topic::LegacyEvents => &mut self.legacy_events,
            Topic::ImEvents => &mut self.im_events,
            Topic::ImportAccounts => &mut self.import_accounts,
            Topic::ImportUsers => &mut self.import_users,
            Topic::ImportC2c => &mut self.import_c2c,
            Topic::ImportGroups => &mut self.import_groups,
            Topic::ImportCheckpoints => &mut self.import_checkpoints,
            Topic::Dlq => &mut self.dlq,
            Topic::Applied => &mut self.applied,
            Topic::Conversations => &mut self.conversations,
            Topic::Status => &mut self.status,
            Topic::Quota => &mut self.quota,
        };
        *slot = name;
    }

    /// Which topic a configured name is, if any.
    pub fn topic_of(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.name(*t) == name)
    }

    /// Checks the section as a whole: every name set, no two topics sharing one, sane counts.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions < 1 || self.replication < 1 {
            return Err("topics.partitions and topics.replication must be at least 1".into());
        }
        for t in Topic::ALL {
            if self.name(t).trim().is_empty() {
                return Err(format!("topics.{} is empty", t.key()));
            }
            if let Some(other) = Topic::ALL.into_iter().find(|o| *o < t && self.name(*o) == self.name(t)) {
                return Err(format!("topics.{} and topics.{} name the same topic", other.key(), t.key()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_import_kind_has_an_import_topic() {
        for kind in EventKind::ALL {
            let phase = ImportPhase::of_kind(kind);
            let expects_topic = kind.is_import() && kind != EventKind::ImportConversationDone;
            assert_eq!(phase.is_some(), expects_topic, "{}", kind.as_str());
            if let Some(p) = phase {
                assert!(Topic::IMPORT.contains(&p.topic()) && p.topic().import_phase() == Some(p));
            }
        }
    }

    #[test]
    fn shared_topics_have_one_spec() {
        let n = TopicNames { partitions: 6, ..TopicNames::default() };
        assert_eq!(Topic::Dlq.spec(&n).partitions, 3);
        assert_eq!(Topic::Applied.spec(&n).partitions, 6);
        assert_eq!(Topic::ImportCheckpoints.spec(&n).partitions, 1);
        assert_eq!(Topic::Conversations.spec(&n).config.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!(Topic::LegacyEvents.spec(&n).name, "imbridge.legacy.events");
        let ms = |t: Topic, k: &str| t.spec(&n).config.get(k).and_then(|v| v.parse::<u64>().ok()).expect(k);
        for events in [Topic::LegacyEvents, Topic::ImEvents] {
            assert!(
                ms(Topic::Applied, "retention.ms") > ms(events, "retention.ms") + ms(events, "segment.ms"),
                "a ledger entry outlives every copy of its event"
            );
        }
        assert_eq!(ms(Topic::Applied, "retention.ms"), APPLIED_RETENTION_MS);
    }

    #[test]
    fn names_keys_and_defaults_line_up() {
        let n = TopicNames::default();
        let rendered = toml_keys(&n);
        for t in Topic::ALL {
            assert_eq!(n.name(t), t.default_name());
            assert_eq!(n.topic_of(t.default_name()), Some(t));
            assert!(rendered.contains(&t.key().to_owned()), "{} is not a [topics] key", t.key());
        }
        n.validate().expect("defaults are valid");
        let p = TopicNames::with_prefix("t-1");
        assert_eq!(
            (p.name(Topic::LegacyEvents), p.name(Topic::ImportCheckpoints)),
            ("t-1.legacy.events", "t-1.import.checkpoints")
        );
        p.validate().expect("prefixed names are valid");
        let clash = TopicNames { dlq: n.applied.clone(), ..n };
        assert!(clash.validate().unwrap_err().contains("topics.dlq and topics.applied"));
    }

    fn toml_keys(n: &TopicNames) -> Vec<String> {
        match serde_json::to_value(n).expect("json") {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}
