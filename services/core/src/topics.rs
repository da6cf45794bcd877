//! Default topic names (see `schemas/topics.md`). Operators may rename every one in configuration.

/// Canonical events from the legacy side (ingest → to-im), keyed by conversation.
pub const LEGACY_EVENTS: &str = "imbridge.legacy.events";
/// Canonical events from IM callbacks (ingest → to-legacy), keyed by conversation.
pub const IM_EVENTS: &str = "imbridge.im.events";
/// Prefix of the bulk-import topics (`imbridge.import.<phase>`), keyed by entity.
pub const IMPORT_PREFIX: &str = "imbridge.import.";
/// Records that can never apply, with headers saying where they came from and why.
pub const DLQ: &str = "imbridge.dlq";

/// Import phase 1: `import.account`, keyed `user:<id>`. Everything else depends on accounts existing.
pub const IMPORT_ACCOUNTS: &str = "imbridge.import.accounts";
/// Import: `import.profile` and `import.friendship`, keyed `user:<id>` (the friend list's owner).
pub const IMPORT_USERS: &str = "imbridge.import.users";
/// Import: `import.c2c_message` then `import.c2c_read` of each conversation, keyed `c2c:<a>:<b>`.
pub const IMPORT_C2C: &str = "imbridge.import.c2c";
/// Import: `import.group`, `import.group_member`, `import.group_message`, `import.member_unread` of each
/// group in that order, keyed `group:<id>`.
pub const IMPORT_GROUPS: &str = "imbridge.import.groups";
/// Every import topic, in the order their phases may start.
pub const IMPORT_TOPICS: [&str; 4] = [IMPORT_ACCOUNTS, IMPORT_USERS, IMPORT_C2C, IMPORT_GROUPS];
/// Compacted: per conversation key, whether its history is still being imported (`importing`) or live
/// writes may apply (`live`). Written by the importer and to-im's import apply; read by to-im live apply.
pub const CONVERSATIONS: &str = "imbridge.conversations";
/// Compacted: services' health records (ingest heartbeats, reconcile's last sweep), see `status`.
pub const STATUS: &str = "imbridge.status";
/// Compacted ledger of applied event ids (key = event id), checked on replay and after a crash.
pub const APPLIED: &str = "imbridge.applied";

/// Topic names as configured (`[topics]` in imbridge.toml); defaults are the constants above.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicNames {
    pub legacy_events: String,
    pub im_events: String,
    pub import_accounts: String,
    pub import_users: String,
    pub import_c2c: String,
    pub import_groups: String,
    pub dlq: String,
    pub applied: String,
    pub conversations: String,
    pub status: String,
    /// Partitions of the event and import topics when imbridge creates them (more = more parallel apply).
    pub partitions: i32,
    /// Replication factor when imbridge creates topics (1 for a single local broker, 3 in production).
    pub replication: i32,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            legacy_events: LEGACY_EVENTS.to_owned(),
            im_events: IM_EVENTS.to_owned(),
            import_accounts: IMPORT_ACCOUNTS.to_owned(),
            import_users: IMPORT_USERS.to_owned(),
            import_c2c: IMPORT_C2C.to_owned(),
            import_groups: IMPORT_GROUPS.to_owned(),
            dlq: DLQ.to_owned(),
            applied: APPLIED.to_owned(),
            conversations: CONVERSATIONS.to_owned(),
            status: STATUS.to_owned(),
            partitions: 12,
            replication: 1,
        }
    }
}

/// The import topic that carries a kind, or `None` for real-time kinds.
pub fn import_topic(kind: crate::EventKind) -> Option<&'static str> {
    use crate::EventKind as K;
    match kind {
        K::ImportAccount => Some(IMPORT_ACCOUNTS),
        K::ImportProfile | K::ImportFriendship => Some(IMPORT_USERS),
        K::ImportC2cMessage | K::ImportC2cRead => Some(IMPORT_C2C),
        K::ImportGroup | K::ImportGroupMember | K::ImportGroupMessage | K::ImportMemberUnread => Some(IMPORT_GROUPS),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn every_import_kind_has_a_topic_under_the_prefix() {
        for kind in EventKind::ALL {
            let topic = import_topic(kind);
            let expects_topic = kind.is_import() && kind != EventKind::ImportConversationDone;
            assert_eq!(topic.is_some(), expects_topic, "{}", kind.as_str());
            if let Some(t) = topic {
                assert!(t.starts_with(IMPORT_PREFIX) && IMPORT_TOPICS.contains(&t));
            }
        }
    }
}
