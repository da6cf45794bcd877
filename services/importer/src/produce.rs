//! Producing an import plan to the import topics: the plan's streams, decorated, acknowledged in order.
//!
//! Decoration adds what apply needs and the plan does not carry:
//! - `recorded_at` (when the importer produced the record) and the header `imbridge.import.run` on every record;
//! - right after the last history record of each conversation (c2c) or group, its `import.conversation_done`
//!   marker, on the same topic and key, so apply sees it after everything else of that key and the
//!   conversation goes live as soon as its own history is in (the survey says how many records each key has);
//! - on group messages, the header `imbridge.import.send_time` ([`crate::schedule`]);
//! - on group members, the header `imbridge.import.group_created` (a join time is sent only when after it).
//!
//! Each stream is a pure function of the export, so its records have stable positions: [`produce_topic`]
//! skips the first `skip` (already acknowledged by an earlier attempt) and reports how many are acknowledged,
//! always a prefix: enqueued in order, their acknowledgements are awaited in order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::apply::headers;
use imbridge_core::event::ImportConversationDone;
use imbridge_core::topics::ImportPhase;
use imbridge_core::{ConversationKey, Envelope, Event, EventId, EventKind, Source, TimestampMs};
use imbridge_kafka::Producer;
use imbridge_kafka::producer::Outgoing;
use tokio::sync::mpsc;

use crate::Error;
use crate::plan::{ImportPlan, natural_key};
use crate::schedule::SendTimes;

/// One record ready to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub envelope: Envelope,
    pub headers: Vec<(&'static str, String)>,
}

/// A decorated stream.
pub type ProducedStream = Box<dyn Iterator<Item = Result<Produced, Error>> + Send>;

/// The done marker of one conversation or group.
pub fn done_marker(conversation: &ConversationKey, records: u64) -> Envelope {
    let event = Event::ImportConversationDone(ImportConversationDone { conversation: conversation.clone(), records });
    Envelope {
        id: EventId::import("conversation_done", &natural_key(&[conversation.as_str()])),
        source: Source::Legacy,
        conversation: conversation.clone(),
        time: TimestampMs(0),
        recorded_at: None,
        event,
    }
}

/// The decorated stream of one import topic. `markers` lists the keys (with their history record counts)
/// that get a done marker after the stream's records: the survey's conversations for c2c, groups for groups.
pub fn topic_stream(
    plan: &ImportPlan,
    which: ImportPhase,
    markers: &BTreeMap<ConversationKey, u64>,
    run_id: &str,
) -> ProducedStream {
    let run = run_id.to_owned();
    let base: Box<dyn Iterator<Item = Result<Envelope, Error>> + Send> = match which {
        ImportPhase::Accounts => plan.accounts(),
        ImportPhase::Users => plan.users(),
        ImportPhase::C2c => plan.c2c(),
        ImportPhase::Groups => plan.groups(),
    };
    // Records still to come per key; a key's marker follows the record that brings it to zero.
    let mut remaining: HashMap<ConversationKey, (u64, u64)> = match which {
        ImportPhase::C2c | ImportPhase::Groups => markers.iter().map(|(k, n)| (k.clone(), (*n, *n))).collect(),
        ImportPhase::Accounts | ImportPhase::Users => HashMap::new(),
    };
    let mut deco = Decorator::default();
    Box::new(base.flat_map(move |item| {
        let mut out = Vec::with_capacity(2);
        match item {
            Ok(env) => {
                let marker = match remaining.get_mut(&env.conversation) {
                    Some((left, total)) => {
                        *left = left.saturating_sub(1);
                        (*left == 0).then(|| done_marker(&env.conversation, *total))
                    }
                    None => None,
                };
                out.push(Ok(deco.decorate(env, &run)));
                if let Some(m) = marker {
                    out.push(Ok(deco.decorate(m, &run)));
                }
            }
            Err(e) => out.push(Err(e)),
        }
        out
    }))
}

/// Per-stream state of the decoration (group creation times, the running SendTime of the current group).
#[derive(Debug, Default)]
struct Decorator {
    created: HashMap<String, i64>,
    send_times: Option<(String, SendTimes)>,
}

impl Decorator {
    fn decorate(&mut self, mut envelope: Envelope, run_id: &str) -> Produced {
        envelope.recorded_at = Some(TimestampMs::now());
        let mut headers = vec![(headers::RUN_ID, run_id.to_owned())];
        match &envelope.event {
            Event::ImportGroup(g) => {
                self.created.insert(g.group_id.as_str().to_owned(), g.created_at.as_secs());
            }
            Event::ImportGroupMember(m) => {
                if let Some(c) = self.created.get(m.group_id.as_str()) {
                    headers.push((headers::GROUP_CREATED, c.to_string()));
                }
            }
            Event::ImportGroupMessage(m) => {
                let group = m.group_id.as_str();
                // The plan numbers each group's messages from 1 in legacy order, contiguously.
                if m.ordinal == 1 || self.send_times.as_ref().is_none_or(|(g, _)| g != group) {
                    let created = self.created.get(group).copied().unwrap_or(0);
                    self.send_times = Some((group.to_owned(), SendTimes::new(created)));
                }
                if let Some((_, s)) = self.send_times.as_mut() {
                    headers.push((headers::SEND_TIME, s.next(m.sent_at.as_secs()).to_string()));
                }
            }
            _ => {}
        }
        Produced { envelope, headers }
    }
}

/// Produces `stream` to `topic`, skipping its first `skip` records, with at most `window` unacknowledged.
/// `acked` counts acknowledged records from the start of the stream (skipped ones included), in order.
/// Returns the stream's length.
pub async fn produce_topic(
    producer: &Producer,
    topic: &str,
    stream: ProducedStream,
    skip: u64,
    window: usize,
    acked: Arc<AtomicU64>,
) -> Result<u64, Error> {
    acked.store(skip, Ordering::Release);
    // Reading, sorting and decorating the export is blocking work: a thread feeds a bounded channel.
    let (tx, mut rx) = mpsc::channel::<Result<Produced, Error>>(1024);
    let reader = tokio::task::spawn_blocking(move || {
        for (i, item) in stream.enumerate() {
            // Skipped records are still decorated above: the SendTime chain needs every earlier message.
            if (i as u64) < skip && item.is_ok() {
                continue;
            }
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    // Delivery futures in production order (the type stays inferred: rdkafka's types live in imbridge-kafka).
    let mut pending = VecDeque::with_capacity(window.min(65_536));
    let mut sent = skip;
    while let Some(item) = rx.recv().await {
        let p = item?;
        let payload = p.envelope.to_json();
        let hdrs: Vec<(&str, &[u8])> = p.headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let out = Outgoing { key: p.envelope.conversation.as_str().as_bytes(), payload: &payload, headers: &hdrs };
        pending.push_back(producer.enqueue(topic, out).await?);
        sent += 1;
        while pending.len() >= window {
            if let Some(f) = pending.pop_front() {
                Producer::await_delivery(topic, f).await?;
                acked.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    while let Some(f) = pending.pop_front() {
        Producer::await_delivery(topic, f).await?;
        acked.fetch_add(1, Ordering::AcqRel);
    }
    reader.await.map_err(|e| Error::InvalidOption(format!("export reader stopped: {e}")))?;
    Ok(sent)
}

/// Records per event kind of a stream's decoration, for tests.
pub fn kinds_of(items: &[Produced]) -> BTreeMap<EventKind, u64> {
    let mut out = BTreeMap::new();
    for p in items {
        *out.entry(p.envelope.kind()).or_default() += 1;
    }
    out
}
