//! `imbridge status`: where each consumer group stands (members, committed offsets, end offsets, lag — the
//! import phases are groups too), how deep the DLQ is and which conversations are parked behind it, and which
//! conversations are still importing their history — read from Kafka alone (committed offsets, watermarks,
//! group membership, the DLQ, the compacted `imbridge.conversations` topic), so it works whether or not the
//! services are running.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use imbridge_core::ConversationKey;
use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::topics::TopicNames;
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::dlq;
use imbridge_kafka::reader::{Start, read_range};
use serde::Serialize;

use crate::error::ToImError;

/// One partition of a group's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The group's committed offset, `None` when it has never committed on this partition.
    pub committed: Option<i64>,
    /// The high watermark (the offset the next record will get).
    pub end: i64,
    /// Records not yet consumed by the group.
    pub lag: i64,
}

/// One consumer group on one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: String,
    pub topic: String,
    /// `false` when the topic does not exist (nothing to consume yet).
    pub topic_exists: bool,
    pub partitions: Vec<PartitionStatus>,
    pub lag: i64,
}

/// Conversations by migration phase (conversations with no record are live and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PhaseCounts {
    pub importing: u64,
    pub live: u64,
}

/// Everything `imbridge status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub groups: Vec<GroupStatus>,
    pub dlq_topic: String,
    /// Records retained on the DLQ.
    pub dlq_depth: i64,
    pub phases: PhaseCounts,
    /// The conversation asked about and its phase (live when it has no record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationStatus>,
    /// DLQ records no `imbridge dlq replay` or `drop` resolved yet.
    pub dlq_unresolved: u64,
    /// Conversations with unresolved DLQ records: their consumer parks their later events until resolved.
    pub parked: Vec<ParkedConversation>,
    /// Active members (client id and host) of each group asked about, by group; an empty list = stopped.
    pub members: BTreeMap<String, Vec<String>>,
    /// Conversations still importing their history (at most [`IMPORTING_SHOWN`] of them).
    pub importing: Vec<String>,
}

/// How many importing conversations the report names.
pub const IMPORTING_SHOWN: usize = 20;

/// A conversation parked behind dead-lettered records of one source topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedConversation {
    pub conversation: String,
    /// The topic the records came from (which consumer parks it).
    pub topic: String,
    /// Unresolved records (the dead-lettered one and those parked behind it).
    pub records: u64,
    /// Why the first one was dead-lettered.
    pub first_kind: String,
    pub first_reason: String,
}

/// One conversation's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationStatus {
    pub conversation: String,
    pub phase: Phase,
    /// The record behind it, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<ConversationState>,
}

/// Collects the report: `groups` are (consumer group, topic) pairs.
pub async fn collect(
    kafka: &KafkaConfig,
    topics: &TopicNames,
    groups: &[(String, String)],
    conversation: Option<&ConversationKey>,
) -> Result<StatusReport, ToImError> {
    let admin = Admin::new(kafka)?;
    let mut out = Vec::with_capacity(groups.len());
    for (group, topic) in groups {
        if admin.partition_count(topic).await? == 0 {
            out.push(GroupStatus {
                group: group.clone(),
                topic: topic.clone(),
                topic_exists: false,
                partitions: vec![],
                lag: 0,
            });
            continue;
        }
        let partitions: Vec<PartitionStatus> = admin
            .offsets(topic, Some(group))
            .await?
            .into_iter()
            .map(|p| PartitionStatus { partition: p.partition, committed: p.committed, end: p.high, lag: p.lag() })
            .collect();
        let lag = partitions.iter().map(|p| p.lag).sum();
        out.push(GroupStatus { group: group.clone(), topic: topic.clone(), topic_exists: true, partitions, lag });
    }
    let dlq_depth = if admin.partition_count(&topics.dlq).await? == 0 {
        0
    } else {
        admin.offsets(&topics.dlq, None).await?.iter().map(|p| (p.high - p.low).max(0)).sum()
    };
    let states = if admin.partition_count(&topics.conversations).await? == 0 {
        BTreeMap::new()
    } else {
        read_states(kafka, &topics.conversations).await?
    };
    let mut phases = PhaseCounts::default();
    for s in states.values() {
        match s.phase {
            Phase::Importing => phases.importing += 1,
            Phase::Live => phases.live += 1,
        }
    }
    let mut members = BTreeMap::new();
    for (group, _) in groups {
        if !members.contains_key(group) {
            members.insert(group.clone(), admin.group_members(group).await?);
        }
    }
    let state = dlq::scan(kafka, &topics.dlq).await?;
    let mut parked: Vec<ParkedConversation> = Vec::new();
    for e in &state.unresolved {
        let key = String::from_utf8_lossy(e.record.key.as_deref().unwrap_or_default()).into_owned();
        match parked.iter_mut().find(|p| p.conversation == key && p.topic == e.info.original_topic) {
            Some(p) => p.records += 1,
            None => parked.push(ParkedConversation {
                conversation: key,
                topic: e.info.original_topic.clone(),
                records: 1,
                first_kind: e.info.kind.clone(),
                first_reason: e.info.reason.clone(),
            }),
        }
    }
    let importing: Vec<String> = states
        .iter()
        .filter(|(_, s)| s.phase == Phase::Importing)
        .map(|(k, _)| k.clone())
        .take(IMPORTING_SHOWN)
        .collect();
    let conversation = conversation.map(|c| {
        let record = states.get(c.as_str()).cloned();
        ConversationStatus {
            conversation: c.as_str().to_owned(),
            phase: record.as_ref().map_or(Phase::Live, |r| r.phase),
            record,
        }
    });
    Ok(StatusReport {
        groups: out,
        dlq_topic: topics.dlq.clone(),
        dlq_depth,
        phases,
        conversation,
        dlq_unresolved: state.unresolved.len() as u64,
        parked,
        members,
        importing,
    })
}

/// The latest state of every conversation on the compacted topic.
async fn read_states(kafka: &KafkaConfig, topic: &str) -> Result<BTreeMap<String, ConversationState>, ToImError> {
    let found: std::sync::Arc<std::sync::Mutex<BTreeMap<String, ConversationState>>> = Default::default();
    let sink = found.clone();
    read_range(kafka, topic, None, Start::Earliest, move |r| {
        let Some(key) = r.key_str().map(str::to_owned) else { return true };
        if let Ok(mut m) = sink.lock() {
            match r.payload.as_deref().map(serde_json::from_slice::<ConversationState>) {
                None => {
                    m.remove(&key);
                }
                Some(Ok(s)) => {
                    m.insert(key, s);
                }
                Some(Err(_)) => {}
            }
        }
        true
    })
    .await?;
    let out = found.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default();
    Ok(out)
}

impl StatusReport {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for g in &self.groups {
            if !g.topic_exists {
                let _ = writeln!(s, "group {} on {}: topic does not exist yet", g.group, g.topic);
                continue;
            }
            // Progress over what the group has ever been asked to do: an import phase's applied share.
            let end: i64 = g.partitions.iter().map(|p| p.end).sum();
            let done = end - g.lag;
            let pct = if end > 0 { done as f64 * 100.0 / end as f64 } else { 100.0 };
            let running = match self.members.get(&g.group).map(Vec::len) {
                Some(0) => "stopped".to_owned(),
                Some(1) => "1 member".to_owned(),
                Some(n) => format!("{n} members"),
                None => "members unknown".to_owned(),
            };
            let _ = writeln!(
                s,
                "group {} on {}: {running}, {done} of {end} records consumed ({pct:.1}%), lag {}",
                g.group, g.topic, g.lag
            );
            let _ = writeln!(s, "  {:>9}  {:>12}  {:>12}  {:>10}", "partition", "committed", "end", "lag");
            for p in &g.partitions {
                let committed = p.committed.map_or_else(|| "-".to_owned(), |c| c.to_string());
                let _ = writeln!(s, "  {:>9}  {:>12}  {:>12}  {:>10}", p.partition, committed, p.end, p.lag);
            }
        }
        let _ = writeln!(
            s,
            "dlq {}: {} records, {} unresolved (`imbridge dlq list`)",
            self.dlq_topic, self.dlq_depth, self.dlq_unresolved
        );
        let _ = writeln!(s, "parked conversations: {}", self.parked.len());
        for p in &self.parked {
            let _ = writeln!(
                s,
                "  {}  from {}: {} record(s), first {}: {}",
                p.conversation, p.topic, p.records, p.first_kind, p.first_reason
            );
        }
        let _ = writeln!(
            s,
            "conversations: {} importing, {} live (conversations without a record are live)",
            self.phases.importing, self.phases.live
        );
        if !self.importing.is_empty() {
            let more = if self.phases.importing as usize > self.importing.len() { ", …" } else { "" };
            let _ = writeln!(s, "  importing: {}{more}", self.importing.join(", "));
        }
        if let Some(c) = &self.conversation {
            let phase = match c.phase {
                Phase::Importing => "importing",
                Phase::Live => "live",
            };
            match &c.record {
                Some(r) => {
                    let _ = writeln!(
                        s,
                        "conversation {}: {phase} (since {}{})",
                        c.conversation,
                        r.updated_at,
                        r.run_id.as_deref().map(|id| format!(", import run {id}")).unwrap_or_default()
                    );
                }
                None => {
                    let _ = writeln!(s, "conversation {}: {phase} (no record: nothing to import)", c.conversation);
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_part() {
        let r = StatusReport {
            groups: vec![
                GroupStatus {
                    group: "imbridge-to-im".into(),
                    topic: "imbridge.legacy.events".into(),
                    topic_exists: true,
                    partitions: vec![PartitionStatus { partition: 0, committed: Some(5), end: 9, lag: 4 }],
                    lag: 4,
                },
                GroupStatus {
                    group: "imbridge-to-legacy".into(),
                    topic: "imbridge.im.events".into(),
                    topic_exists: false,
                    partitions: vec![],
                    lag: 0,
                },
            ],
            dlq_topic: "imbridge.dlq".into(),
            dlq_depth: 2,
            phases: PhaseCounts { importing: 1, live: 3 },
            conversation: Some(ConversationStatus { conversation: "group:g".into(), phase: Phase::Live, record: None }),
            dlq_unresolved: 1,
            parked: vec![ParkedConversation {
                conversation: "c2c:a:b".into(),
                topic: "imbridge.legacy.events".into(),
                records: 2,
                first_kind: "malformed".into(),
                first_reason: "not an envelope".into(),
            }],
            members: [("imbridge-to-im".to_owned(), vec!["rdkafka (/10.0.0.1)".to_owned()])].into_iter().collect(),
            importing: vec!["group:big".into()],
        };
        let text = r.render();
        assert!(
            text.contains(
                "group imbridge-to-im on imbridge.legacy.events: 1 member, 5 of 9 records consumed (55.6%), lag 4"
            ),
            "{text}"
        );
        assert!(text.contains("2 records, 1 unresolved"), "{text}");
        assert!(
            text.contains("parked conversations: 1\n  c2c:a:b  from imbridge.legacy.events: 2 record(s)"),
            "{text}"
        );
        assert!(text.contains("  importing: group:big"), "{text}");
        assert!(text.contains("topic does not exist yet"));
        assert!(text.contains("dlq imbridge.dlq: 2 records"));
        assert!(text.contains("1 importing, 3 live"));
        assert!(text.contains("conversation group:g: live (no record"));
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["phases"]["importing"], 1);
        assert_eq!(json["parked"][0]["records"], 2);
        assert_eq!(json["members"]["imbridge-to-im"][0], "rdkafka (/10.0.0.1)");
    }
}
