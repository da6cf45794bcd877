//! "Where is my message?": finds an event on the topics from the ids a person has (a legacy message id, IM's
//! MsgKey, a group id and MsgSeq, an event id, or a conversation and a time) and says what became of it.
//!
//! The ids derive the way ingest derives them (`imbridge_core::ids`): `legacy:<id>`, `im:c2c:<from>:<MsgKey>`,
//! `im:gmsg:<group>:<MsgSeq>`. When the conversation is known (always for a group message, or given), only its
//! partition is read — the same murmur2 partition the producers chose — and a time bound starts the read at the
//! offset for that time, so a lookup reads one partition's window rather than whole topics.
//!
//! The fate of each occurrence, in order of evidence:
//! 1. a DLQ record with the same original topic, partition and offset → dead-lettered (or parked behind an
//!    earlier failure), with its reason, whether `imbridge dlq replay`/`drop` resolved it, and the command;
//! 2. legacy events: to-im's applied ledger (`imbridge.applied`, key = event id, partition = source partition
//!    modulo the ledger's count) → applied to IM at that time, with IM's MsgKey / MsgSeq;
//! 3. the consuming group's committed offset → past it: finished by the consumer (to-legacy keeps no ledger:
//!    legacy's own `Idempotency-Key` is the event id); before it: still waiting, with how many records ahead.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use imbridge_core::{ConversationKey, Envelope, EventId, TimestampMs};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::dlq::{self, DeadLetterInfo};
use imbridge_kafka::partitioner::partition_for_key;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::record::Record;
use imbridge_to_im::live::LedgerEntry;
use serde::Serialize;

use crate::View;
use crate::error::ConsoleError;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One event id (exact).
    Event(EventId),
    /// A 1:1 message seen on IM by its MsgKey alone (the sender unknown): ids `im:c2c:<any>:<MsgKey>`.
    MsgKey(String),
    /// Everything of one conversation around a time (Unix ms).
    Around { conversation: ConversationKey, at_ms: i64 },
}

/// A parsed lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub target: Target,
    /// The conversation, when known: only its partition is read.
    pub conversation: Option<ConversationKey>,
    /// Read from the offset of this time (Unix ms); `None` = from the earliest retained record.
    pub since_ms: Option<i64>,
    /// Ignore records after this time (Unix ms).
    pub until_ms: Option<i64>,
    /// What the person typed, for the report.
    pub text: String,
}

/// The accepted forms, for `--help` and the page.
pub const SYNTAX: &str = "legacy message id (`m-1` or `legacy:m-1`); IM MsgKey (`123_456_1700000000`, or \
`im:c2c:<from>:<MsgKey>`); group message (`group:<id>#<MsgSeq>` or `im:gmsg:<id>:<MsgSeq>`); import record \
(`import:<kind>:<key>`); conversation and time (`c2c:ann:bob@2026-01-31T12:00:00Z`, `group:team@<time>`)";

impl Lookup {
    /// Parses what a person typed. `conversation` narrows the read to one partition; `since`/`until` bound it.
    pub fn parse(
        text: &str,
        conversation: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        window_secs: u64,
    ) -> Result<Lookup, ConsoleError> {
        let q = |m: String| ConsoleError::Query(m);
        let text = text.trim();
        if text.is_empty() {
            return Err(q(format!("nothing to look up; accepted: {SYNTAX}")));
        }
        let time = |s: &str| TimestampMs::parse(s.trim()).map(TimestampMs::as_millis).map_err(q);
        let mut conversation = conversation
            .filter(|c| !c.trim().is_empty())
            .map(|c| ConversationKey::parse(c.trim()).map_err(|e| q(e.to_string())))
            .transpose()?;
        let mut since_ms = since.filter(|s| !s.trim().is_empty()).map(time).transpose()?;
        let mut until_ms = until.filter(|s| !s.trim().is_empty()).map(time).transpose()?;
        let window_ms = i64::try_from(window_secs).unwrap_or(i64::MAX / 2).saturating_mul(1000);
        let target = if let Some((conv, at)) = text.rsplit_once('@').filter(|(c, _)| ConversationKey::parse(c).is_ok())
        {
            let conv = ConversationKey::parse(conv).map_err(|e| q(e.to_string()))?;
            let at_ms = time(at)?;
            since_ms = Some(since_ms.unwrap_or(at_ms - window_ms));
            until_ms = Some(until_ms.unwrap_or(at_ms + window_ms));
            conversation = Some(conv.clone());
            Target::Around { conversation: conv, at_ms }
        } else if let Some((group, seq)) = text.strip_prefix("group:").and_then(|r| r.rsplit_once('#')) {
            let seq: u64 = seq.parse().map_err(|_| q(format!("{seq:?} is not a MsgSeq")))?;
            let g = imbridge_core::GroupId::parse(group).map_err(|e| q(e.to_string()))?;
            conversation = Some(ConversationKey::group(&g));
            Target::Event(EventId::im_group_message(&g, seq))
        } else if let Some(rest) = text.strip_prefix("im:gmsg:") {
            let (group, _) =
                rest.rsplit_once(':').ok_or_else(|| q(format!("{text:?} is not im:gmsg:<group>:<seq>")))?;
            conversation = Some(ConversationKey::group(&imbridge_core::GroupId::new_unchecked(group)));
            Target::Event(EventId::from_raw(text))
        } else if let Some(rest) = text.strip_prefix("im:c2c:") {
            let key = rest.rsplit_once(':').map(|(_, k)| k).unwrap_or(rest);
            if since_ms.is_none() {
                since_ms = msg_key_time_ms(key).map(|t| t - window_ms);
            }
            Target::Event(EventId::from_raw(text))
        } else if is_msg_key(text) {
            if since_ms.is_none() {
                since_ms = msg_key_time_ms(text).map(|t| t - window_ms);
            }
            Target::MsgKey(text.to_owned())
        } else if text.starts_with("import:") || text.starts_with("legacy:") || text.starts_with("im:gevt:") {
            Target::Event(EventId::from_raw(text))
        } else {
            Target::Event(EventId::legacy(text))
        };
        Ok(Lookup { target, conversation, since_ms, until_ms, text: text.to_owned() })
    }
}

/// IM's MsgKey shape: `<MsgSeq>_<MsgRandom>_<MsgTime>`, three decimal numbers.
fn is_msg_key(s: &str) -> bool {
    let parts: Vec<&str> = s.split('_').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The MsgTime (seconds) inside a MsgKey, as ms: the message was sent then, so ingest accepted it after.
fn msg_key_time_ms(key: &str) -> Option<i64> {
    if !is_msg_key(key) {
        return None;
    }
    key.rsplit('_').next()?.parse::<i64>().ok().map(|s| s * 1000)
}

/// Where a lookup read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Searched {
    pub topic: String,
    /// Partitions read (all of them when the conversation was not known).
    pub partitions: Vec<i32>,
    pub from: String,
}

/// What became of one occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Fate {
    /// Applied on the other side.
    Applied {
        /// The consumer group that applied it.
        group: String,
        /// When (from the ledger), if recorded.
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<TimestampMs>,
        /// The target side's id (IM MsgKey, group MsgSeq, `done`), from the ledger.
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// What says so: `ledger` or `committed offset`.
        evidence: String,
    },
    /// On the dead-letter topic: failed itself, or parked behind an earlier failure of its conversation.
    DeadLettered {
        kind: String,
        reason: String,
        attempts: u32,
        /// `<dlq partition>@<dlq offset>`.
        dlq: String,
        /// `replayed`, `dropped`, or `None` while unresolved (the conversation is parked).
        #[serde(skip_serializing_if = "Option::is_none")]
        resolution: Option<String>,
        /// The commands that resolve it.
        commands: Vec<String>,
    },
    /// Not applied yet: the group has not reached it.
    Pending {
        group: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        committed: Option<i64>,
        /// Records of this partition before it that the group still has to finish.
        ahead: i64,
    },
}

/// One record of the event on a topic (an event can be on a topic more than once: a re-drive, a duplicate
/// webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_id: String,
    pub conversation: String,
    pub kind: String,
    pub source: String,
    /// When it happened on its source.
    pub happened_at: TimestampMs,
    /// When ingest (or the importer) accepted it: the envelope's `recorded_at`, else the record's timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<TimestampMs>,
    /// Set when `imbridge dlq replay` put it back (`<dlq partition>@<dlq offset>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven_from: Option<String>,
    pub fate: Fate,
}

/// The answer to one lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceReport {
    pub query: String,
    /// What the query was understood as.
    pub understood: String,
    pub searched: Vec<Searched>,
    /// Records read.
    pub scanned: u64,
    /// The read stopped at the record limit: narrow it with a conversation or a time.
    pub truncated: bool,
    pub hits: Vec<Hit>,
}

/// Runs a lookup against Kafka.
pub async fn lookup(deps: &View, l: &Lookup, max_records: u64) -> Result<TraceReport, ConsoleError> {
    let admin = Admin::new(&deps.kafka)?;
    let t = &deps.topics;
    let all_import =
        || [&t.import_accounts, &t.import_users, &t.import_c2c, &t.import_groups].map(|x| x.clone()).to_vec();
    // Which topics to read, and what to look for on each.
    let plan: Vec<(String, Target)> = match &l.target {
        Target::Event(id) if id.as_str().starts_with("legacy:") => {
            // A legacy message id is also the natural key of that message in a bulk import (its history).
            let raw = &id.as_str()["legacy:".len()..];
            let nk = imbridge_importer::plan::natural_key(&[raw]);
            vec![
                (t.legacy_events.clone(), l.target.clone()),
                (t.import_c2c.clone(), Target::Event(EventId::import("c2c_message", &nk))),
                (t.import_groups.clone(), Target::Event(EventId::import("group_message", &nk))),
            ]
        }
        Target::Event(id) if id.as_str().starts_with("im:") => vec![(t.im_events.clone(), l.target.clone())],
        Target::Event(id) if id.as_str().starts_with("import:") => {
            all_import().into_iter().map(|x| (x, l.target.clone())).collect()
        }
        Target::MsgKey(_) => vec![(t.im_events.clone(), l.target.clone())],
        Target::Event(_) | Target::Around { .. } => {
            vec![(t.legacy_events.clone(), l.target.clone()), (t.im_events.clone(), l.target.clone())]
        }
    };
    let understood = match &l.target {
        Target::Event(id) if id.as_str().starts_with("legacy:") => {
            format!("event {id} (a live legacy event, or the same message imported as history)")
        }
        Target::Event(id) => format!("event {id}"),
        Target::MsgKey(k) => format!("IM 1:1 message with MsgKey {k} (any sender)"),
        Target::Around { conversation, at_ms } => {
            format!("events of {conversation} around {}", TimestampMs(*at_ms))
        }
    };
    let scanned = Arc::new(Mutex::new(0u64));
    let found: Arc<Mutex<Vec<(Record, Envelope)>>> = Arc::default();
    let mut searched = Vec::new();
    let mut truncated = false;
    for (topic, target) in &plan {
        let count = admin.partition_count(topic).await?;
        if count == 0 {
            continue;
        }
        let partition = l.conversation.as_ref().map(|c| partition_for_key(c.as_str().as_bytes(), count));
        searched.push(Searched {
            topic: topic.clone(),
            partitions: partition.map_or_else(|| (0..count).collect(), |p| vec![p]),
            from: l.since_ms.map_or_else(|| "earliest".to_owned(), ms_text),
        });
        let start = l.since_ms.map_or(Start::Earliest, Start::Time);
        let matcher = Matcher::new(target);
        let until = l.until_ms;
        let (scanned2, found2) = (scanned.clone(), found.clone());
        let limit_hit = Arc::new(Mutex::new(false));
        let limit2 = limit_hit.clone();
        read_range(&deps.kafka, topic, partition, start, move |r| {
            let mut n = scanned2.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            if *n > max_records {
                *limit2.lock().unwrap_or_else(|p| p.into_inner()) = true;
                return false;
            }
            if until.is_some_and(|u| r.timestamp_ms.is_some_and(|ts| ts > u)) {
                // One partition read in offset order: nothing later can be inside the window.
                return partition.is_none();
            }
            if let Some(env) = matcher.matches(&r) {
                found2.lock().unwrap_or_else(|p| p.into_inner()).push((r, env));
            }
            true
        })
        .await?;
        truncated |= *limit_hit.lock().unwrap_or_else(|p| p.into_inner());
    }
    let found = std::mem::take(&mut *found.lock().unwrap_or_else(|p| p.into_inner()));
    let mut fates = FateFinder::new(deps, &admin);
    let mut hits = Vec::with_capacity(found.len());
    for (r, env) in found {
        let fate = fates.fate(&r, &env).await?;
        hits.push(Hit {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            event_id: env.id.as_str().to_owned(),
            conversation: env.conversation.as_str().to_owned(),
            kind: env.kind().as_str().to_owned(),
            source: env.source.as_str().to_owned(),
            happened_at: env.time,
            accepted_at: env.recorded_at.or(r.timestamp_ms.map(TimestampMs)),
            redriven_from: r.header_str(dlq::REDRIVEN_FROM).map(str::to_owned),
            fate,
        });
    }
    let scanned = *scanned.lock().unwrap_or_else(|p| p.into_inner());
    Ok(TraceReport { query: l.text.clone(), understood, searched, scanned: scanned.min(max_records), truncated, hits })
}

fn ms_text(ms: i64) -> String {
    TimestampMs(ms).to_rfc3339()
}

/// Decides cheaply whether a record is the one looked for: a byte search for the id before any JSON parsing.
struct Matcher {
    needle: Option<Vec<u8>>,
    target: Target,
}

impl Matcher {
    fn new(target: &Target) -> Self {
        let needle = match target {
            // The id as a JSON string, quotes included: `"legacy:m-1"` cannot match `"legacy:m-10"`.
            Target::Event(id) => serde_json::to_vec(id.as_str()).ok(),
            Target::MsgKey(k) => Some(format!(":{k}\"").into_bytes()),
            Target::Around { .. } => None,
        };
        Self { needle, target: target.clone() }
    }

    fn matches(&self, r: &Record) -> Option<Envelope> {
        let payload = r.payload.as_deref()?;
        if let Some(n) = &self.needle
            && !payload.windows(n.len()).any(|w| w == n.as_slice())
        {
            return None;
        }
        if let Target::Around { conversation, .. } = &self.target
            && r.key.as_deref() != Some(conversation.as_str().as_bytes())
        {
            return None;
        }
        let env = Envelope::from_json(payload).ok()?;
        let ok = match &self.target {
            Target::Event(id) => env.id == *id,
            Target::MsgKey(k) => env.id.as_str().starts_with("im:c2c:") && env.id.as_str().ends_with(&format!(":{k}")),
            Target::Around { .. } => true,
        };
        ok.then_some(env)
    }
}

/// Looks up fates, reading each DLQ and ledger partition at most once per lookup.
struct FateFinder<'a> {
    deps: &'a View,
    admin: &'a Admin,
    dlq_partitions: Option<i32>,
    dlq: HashMap<i32, Vec<Record>>,
    ledger_partitions: Option<i32>,
    ledger: HashMap<i32, HashMap<String, LedgerEntry>>,
    committed: HashMap<(String, i32), Option<i64>>,
}

impl<'a> FateFinder<'a> {
    fn new(deps: &'a View, admin: &'a Admin) -> Self {
        Self {
            deps,
            admin,
            dlq_partitions: None,
            dlq: HashMap::new(),
            ledger_partitions: None,
            ledger: HashMap::new(),
            committed: HashMap::new(),
        }
    }

    async fn fate(&mut self, r: &Record, env: &Envelope) -> Result<Fate, ConsoleError> {
        let group = self.deps.group_of(&r.topic).unwrap_or_default();
        if let Some(f) = self.dead_lettered(r).await? {
            return Ok(f);
        }
        if r.topic == self.deps.topics.legacy_events
            && let Some(e) = self.ledger_entry(r.partition, env.id.as_str()).await?
        {
            return Ok(Fate::Applied {
                group,
                at: Some(e.applied_at),
                reference: Some(e.reference),
                evidence: "ledger".into(),
            });
        }
        let key = (r.topic.clone(), r.partition);
        let committed = match self.committed.get(&key) {
            Some(c) => *c,
            None => {
                let c = if group.is_empty() {
                    None
                } else {
                    self.admin
                        .offsets(&r.topic, Some(&group))
                        .await?
                        .into_iter()
                        .find(|p| p.partition == r.partition)
                        .and_then(|p| p.committed)
                };
                self.committed.insert(key, c);
                c
            }
        };
        Ok(match committed {
            Some(c) if c > r.offset => {
                Fate::Applied { group, at: None, reference: None, evidence: "committed offset".into() }
            }
            c => Fate::Pending { group, committed: c, ahead: r.offset - c.unwrap_or(0).max(0) },
        })
    }

    async fn dead_lettered(&mut self, r: &Record) -> Result<Option<Fate>, ConsoleError> {
        let dlq_topic = self.deps.topics.dlq.clone();
        let count = match self.dlq_partitions {
            Some(n) => n,
            None => {
                let n = self.admin.partition_count(&dlq_topic).await?;
                self.dlq_partitions = Some(n);
                n
            }
        };
        if count == 0 {
            return Ok(None);
        }
        // Dead-lettered records keep their original key, so they sit on that key's DLQ partition.
        let p = partition_for_key(r.key.as_deref().unwrap_or_default(), count);
        if !self.dlq.contains_key(&p) {
            let sink: Arc<Mutex<Vec<Record>>> = Arc::default();
            let s2 = sink.clone();
            read_range(&self.deps.kafka, &dlq_topic, Some(p), Start::Earliest, move |rec| {
                s2.lock().unwrap_or_else(|p| p.into_inner()).push(rec);
                true
            })
            .await?;
            let recs = std::mem::take(&mut *sink.lock().unwrap_or_else(|p| p.into_inner()));
            self.dlq.insert(p, recs);
        }
        let recs = &self.dlq[&p];
        let Some((dlq_rec, info)) = recs.iter().find_map(|d| {
            DeadLetterInfo::from_record(d)
                .ok()
                .filter(|i| {
                    i.original_topic == r.topic && i.original_partition == r.partition && i.original_offset == r.offset
                })
                .map(|i| (d, i))
        }) else {
            return Ok(None);
        };
        let resolution = recs
            .iter()
            .filter(|m| m.key == dlq_rec.key)
            .filter_map(|m| {
                let how = m.header_str(dlq::RESOLUTION)?;
                let through =
                    m.header_str(dlq::RESOLVED_THROUGH).and_then(|v| v.parse::<i64>().ok()).unwrap_or(m.offset);
                (through >= dlq_rec.offset).then(|| how.to_owned())
            })
            .next();
        let conv = dlq_rec.key_str().unwrap_or_default().to_owned();
        let commands = if resolution.is_none() { dlq_commands(&conv) } else { Vec::new() };
        Ok(Some(Fate::DeadLettered {
            kind: info.kind,
            reason: info.reason,
            attempts: info.attempts,
            dlq: format!("{}@{}", dlq_rec.partition, dlq_rec.offset),
            resolution,
            commands,
        }))
    }

    async fn ledger_entry(&mut self, source_partition: i32, id: &str) -> Result<Option<LedgerEntry>, ConsoleError> {
        let topic = self.deps.topics.applied.clone();
        let count = match self.ledger_partitions {
            Some(n) => n,
            None => {
                let n = self.admin.partition_count(&topic).await?;
                self.ledger_partitions = Some(n);
                n
            }
        };
        if count == 0 {
            return Ok(None);
        }
        let p = source_partition % count;
        if !self.ledger.contains_key(&p) {
            let sink: Arc<Mutex<HashMap<String, LedgerEntry>>> = Arc::default();
            let s2 = sink.clone();
            let legacy_topic = self.deps.topics.legacy_events.clone();
            read_range(&self.deps.kafka, &topic, Some(p), Start::Earliest, move |rec| {
                let (Some(k), Some(v)) = (rec.key_str(), rec.payload.as_deref()) else { return true };
                if let Ok(e) = serde_json::from_slice::<LedgerEntry>(v)
                    && e.target == imbridge_to_im::live::ledger::TARGET_IM
                    && e.topic.as_deref().is_none_or(|t| t == legacy_topic)
                {
                    s2.lock().unwrap_or_else(|p| p.into_inner()).insert(k.to_owned(), e);
                }
                true
            })
            .await?;
            let m = std::mem::take(&mut *sink.lock().unwrap_or_else(|p| p.into_inner()));
            self.ledger.insert(p, m);
        }
        Ok(self.ledger[&p].get(id).cloned())
    }
}

/// The commands that resolve a parked conversation, as an operator types them.
pub fn dlq_commands(conversation: &str) -> Vec<String> {
    vec![
        format!("imbridge dlq show --conversation {conversation}"),
        format!("imbridge dlq replay --conversation {conversation}"),
        format!("imbridge dlq drop --conversation {conversation}"),
    ]
}

impl TraceReport {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "lookup {:?}: {}", self.query, self.understood);
        for x in &self.searched {
            let _ = writeln!(s, "  read {} partition(s) {:?} from {}", x.topic, x.partitions, x.from);
        }
        let _ = writeln!(
            s,
            "  {} record(s) read{}",
            self.scanned,
            if self.truncated { " (limit reached: narrow the lookup)" } else { "" }
        );
        if self.hits.is_empty() {
            let _ = writeln!(s, "not found");
        }
        for h in &self.hits {
            let _ = writeln!(s, "{} ({}, {}) in {}", h.event_id, h.kind, h.conversation, h.source);
            let _ = writeln!(s, "  {} partition {} offset {}", h.topic, h.partition, h.offset);
            let _ = writeln!(s, "  happened {}", h.happened_at);
            if let Some(a) = h.accepted_at {
                let _ = writeln!(s, "  accepted {a}");
            }
            if let Some(r) = &h.redriven_from {
                let _ = writeln!(s, "  re-driven from the DLQ ({r})");
            }
            let _ = writeln!(s, "  {}", fate_text(&h.fate));
            if let Fate::DeadLettered { commands, .. } = &h.fate {
                for c in commands {
                    let _ = writeln!(s, "    {c}");
                }
            }
        }
        s
    }
}

/// One line saying what became of an occurrence.
pub fn fate_text(f: &Fate) -> String {
    match f {
        Fate::Applied { group, at, reference, evidence } => {
            let at = at.map(|a| format!(" at {a}")).unwrap_or_default();
            let r = reference.as_deref().map(|r| format!(", ref {r}")).unwrap_or_default();
            format!("applied{at}{r} (by {group}; evidence: {evidence})")
        }
        Fate::DeadLettered { kind, reason, attempts, dlq, resolution, .. } => {
            let what = if kind == dlq::KIND_PARKED { "parked" } else { "dead-lettered" };
            let res = resolution.as_deref().map_or_else(|| "unresolved".to_owned(), |r| format!("since {r}"));
            format!("{what} ({res}): {kind}: {reason} (attempts {attempts}, dlq {dlq})")
        }
        Fate::Pending { group, committed, ahead } => {
            let c = committed.map_or_else(|| "nothing committed".to_owned(), |c| format!("committed {c}"));
            format!("not applied yet: {group} has {ahead} record(s) of this partition before it ({c})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Lookup {
        Lookup::parse(s, None, None, None, 300).expect("parses")
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(p("m-1").target, Target::Event(EventId::legacy("m-1")));
        assert_eq!(p("legacy:m-1").target, Target::Event(EventId::legacy("m-1")));
        let g = p("group:team-1#42");
        assert_eq!(g.target, Target::Event(EventId::from_raw("im:gmsg:team-1:42")));
        assert_eq!(g.conversation.as_ref().map(ConversationKey::as_str), Some("group:team-1"));
        assert_eq!(p("im:gmsg:team-1:42").conversation.map(|c| c.as_str().to_owned()).as_deref(), Some("group:team-1"));
        let k = p("5_1005_1700000005");
        assert_eq!(k.target, Target::MsgKey("5_1005_1700000005".into()));
        assert_eq!(k.since_ms, Some(1_700_000_005_000 - 300_000), "MsgTime bounds the read");
        let c = p("im:c2c:ann:5_1005_1700000005");
        assert_eq!(c.target, Target::Event(EventId::from_raw("im:c2c:ann:5_1005_1700000005")));
        let a = p("c2c:ann:bob@2026-01-31T12:00:00Z");
        assert!(matches!(a.target, Target::Around { .. }));
        assert_eq!(a.until_ms.zip(a.since_ms).map(|(u, s)| u - s), Some(600_000));
        assert_eq!(a.conversation.map(|c| c.as_str().to_owned()).as_deref(), Some("c2c:ann:bob"));
        assert!(Lookup::parse("", None, None, None, 1).is_err());
        assert!(Lookup::parse("group:g#x", None, None, None, 1).is_err());
        assert!(Lookup::parse("m-1", Some("dm:x"), None, None, 1).is_err());
        assert!(Lookup::parse("m-1", None, Some("yesterday"), None, 1).is_err());
        let n = Lookup::parse("m-1", Some("c2c:a:b"), Some("1000"), None, 1).expect("narrowed");
        assert_eq!((n.since_ms, n.conversation.map(|c| c.as_str().to_owned())), (Some(1000), Some("c2c:a:b".into())));
    }

    #[test]
    fn matcher_does_not_confuse_prefixes() {
        let env = |id: &str| {
            let e = Envelope {
                id: EventId::from_raw(id),
                source: imbridge_core::Source::Legacy,
                conversation: ConversationKey::parse("c2c:a:b").expect("key"),
                time: TimestampMs::from_secs(1),
                recorded_at: None,
                event: imbridge_core::Event::C2cMessage(imbridge_core::event::C2cMessage {
                    from: imbridge_core::UserId::new_unchecked("a"),
                    to: imbridge_core::UserId::new_unchecked("b"),
                    body: vec![],
                    custom_data: None,
                }),
            };
            Record {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                key: Some(b"c2c:a:b".to_vec()),
                payload: Some(e.to_json()),
                timestamp_ms: Some(1),
                headers: vec![],
            }
        };
        let m = Matcher::new(&Target::Event(EventId::legacy("m-1")));
        assert!(m.matches(&env("legacy:m-1")).is_some());
        assert!(m.matches(&env("legacy:m-10")).is_none());
        let k = Matcher::new(&Target::MsgKey("1_2_3".into()));
        assert!(k.matches(&env("im:c2c:a:1_2_3")).is_some());
        assert!(k.matches(&env("im:c2c:a:11_2_3")).is_none());
    }
}
