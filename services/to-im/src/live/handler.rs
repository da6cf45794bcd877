//! [`LiveHandler`]: the [`Handler`] the ordered consumer runs for every record of `imbridge.legacy.events`.
//!
//! The runner guarantees one record at a time per conversation, in offset order. For each record, in order:
//! 1. decode the envelope (a poison record is dead-lettered) and refuse kinds that do not belong here;
//! 2. wait for the partition's ledger to be loaded; an event already in it is skipped (`skipped`), and one
//!    applied but not yet written is written now without calling IM again;
//! 3. wait until the conversation is live (history first), without spending a retry attempt;
//! 4. for the first event of the conversation in this assignment that is not in the ledger — the only one a
//!    crash can have left applied-but-unrecorded — look for it in IM's history (`recovered` if found);
//! 5. apply it to IM, then write its ledger entry, then report it done (so its offset may be committed).
//!
//! Errors keep their classification: transient → retry (the runner backs off), permanent → dead letter (the
//! runner parks the conversation's later events behind it). One span per event carries its id and
//! conversation.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imbridge_core::disposition::{Classify, Disposition};
use imbridge_core::{Envelope, Failure, Source, TimestampMs};
use imbridge_im::config::RateSetting;
use imbridge_im::{Api, ImConfig};
use imbridge_kafka::{BatchOutcome, Handler, Outcome, Record};
use imbridge_telemetry::Readiness;
use tracing::{Instrument, debug, info, info_span, warn};

use super::conversations::{ConversationStates, WaitOutcome};
use super::ledger::Ledger;
use super::metrics::LiveMetrics;
use super::reorder::{Item, Step, next_step, old_app_position};
use crate::error::ToImError;
use imbridge_im::apply::{Applier, copied_msg_seq, is_live_kind, live_msg_seq};

/// The IM APIs the live apply calls: the ones whose quota an instance shares with the others of its group.
pub const LIVE_APIS: [Api; 12] = imbridge_im::apply::APPLY_APIS;

/// Readiness check names this service registers.
pub const READY_ASSIGNMENT: &str = "assignment";
pub const READY_CONVERSATIONS: &str = "conversation_states";

/// Applies live legacy events to IM. See the module docs.
#[derive(Debug)]
pub struct LiveHandler {
    pub(crate) source_topic: String,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) states: Arc<ConversationStates>,
    pub(crate) applier: Applier,
    pub(crate) metrics: LiveMetrics,
    /// Registered with [`READY_ASSIGNMENT`] not ready: set once the first partitions are assigned.
    pub(crate) readiness: Readiness,
    pub(crate) quota: Option<QuotaShare>,
    /// When the old side is an IM app: how long its messages wait for earlier ones ([`super::reorder`]).
    pub(crate) reorder_window: Option<Duration>,
}

/// How many records of one conversation the reorder window looks at.
const REORDER_BATCH: usize = 32;

/// This instance's share of IM's per-app quotas: assigned partitions / all partitions of the source topic.
#[derive(Debug)]
pub struct QuotaShare {
    im: imbridge_im::ImClient,
    base: ImConfig,
    total_partitions: usize,
    assigned: Mutex<BTreeSet<i32>>,
}

impl QuotaShare {
    pub fn new(im: imbridge_im::ImClient, base: ImConfig, total_partitions: usize) -> Self {
        Self { im, base, total_partitions: total_partitions.max(1), assigned: Mutex::new(BTreeSet::new()) }
    }

    fn update(&self, add: &[i32], remove: &[i32]) -> usize {
        let n = {
            let mut a = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
            a.extend(add.iter().copied());
            for p in remove {
                a.remove(p);
            }
            a.len()
        };
        // Never zero: a rate of 0 means "unlimited" to the client, and an instance with no partitions makes no
        // calls anyway.
        let share = n.max(1).min(self.total_partitions) as f64 / self.total_partitions as f64;
        for api in LIVE_APIS {
            if let Some(rate) = self.base.rate_for(api).per_sec() {
                self.im.set_rate(api, RateSetting::PerSec(rate * share));
            }
        }
        info!(assigned = n, total = self.total_partitions, share, "im quota share updated");
        n
    }
}

impl LiveHandler {
    fn partitions_of(&self, tps: &[(String, i32)]) -> Vec<i32> {
        tps.iter().filter(|(t, _)| *t == self.source_topic).map(|(_, p)| *p).collect()
    }

    fn finish(&self, env: &Envelope, outcome: &str) {
        self.metrics.events.with_label_values(&[env.kind().as_str(), outcome]).inc();
    }

    fn failed(&self, env: &Envelope, e: &ToImError) -> Outcome {
        let f = Failure::from_error(e);
        match e.disposition() {
            Disposition::Retry => {
                self.metrics.retries.with_label_values(&[env.kind().as_str()]).inc();
                warn!(error = %e, kind = %f.kind, "apply failed; will retry");
                Outcome::Retry(f)
            }
            // Counted by `handle` once it stands: a send ahead of the lane that fails is not dead-lettered.
            Disposition::DeadLetter | Disposition::Drop => {
                warn!(error = %e, kind = %f.kind, "apply failed permanently");
                Outcome::DeadLetter(f)
            }
        }
    }

    async fn handle_envelope(&self, record: &Record, env: Envelope) -> Outcome {
        if env.source != Source::Legacy || !is_live_kind(&env.event) {
            let e = ToImError::UnexpectedKind {
                kind: env.kind().as_str(),
                source_system: env.source.as_str(),
                topic: record.topic.clone(),
            };
            return self.failed(&env, &e);
        }
        // 2. The ledger of this partition (None: revoked meanwhile; the runner drops the lane's work).
        let Some(pl) = self.ledger.ready(record.partition).await else {
            return Outcome::Retry(Failure::new("revoked", "partition no longer assigned"));
        };
        if let Some(a) = pl.lookup(&env.id) {
            if !a.persisted
                && let Err(e) = self.ledger.record(&pl, &env, record.offset, &a.reference).await
            {
                return self.failed(&env, &e);
            }
            debug!(reference = %a.reference, "already applied; skipped");
            self.metrics.ledger_skips.inc();
            self.finish(&env, "skipped");
            return Outcome::Done;
        }
        // 3. History first.
        self.metrics.waiting_for_history.inc();
        let waited = self.states.wait_live(&env.conversation, pl.revoked()).await;
        self.metrics.waiting_for_history.dec();
        match waited {
            WaitOutcome::Cancelled => return Outcome::Retry(Failure::new("revoked", "partition no longer assigned")),
            WaitOutcome::Live { waited } if waited.as_millis() >= 1 => {
                self.metrics.history_waits.inc();
                self.metrics.history_wait_seconds.observe(waited.as_secs_f64());
                info!(waited_ms = waited.as_millis() as u64, "conversation history imported; applying");
            }
            WaitOutcome::Live { .. } => {}
        }
        // 4. The crash window.
        if !pl.is_resumed(&env.conversation) {
            if self.applier.needs_history_check(&env) {
                match self.applier.find_applied(&env).await {
                    Ok(Some(reference)) => {
                        info!(reference = %reference, "found in IM after a restart; recorded without sending");
                        if let Err(e) = self.ledger.record(&pl, &env, record.offset, &reference).await {
                            return self.failed(&env, &e);
                        }
                        pl.mark_resumed(&env.conversation);
                        self.finish(&env, "recovered");
                        return Outcome::Done;
                    }
                    Ok(None) => {}
                    Err(e) => return self.failed(&env, &e.into()),
                }
            }
            pl.mark_resumed(&env.conversation);
        }
        // 5. Apply, record, done.
        let started = Instant::now();
        // A partition revoked while this send waits (for IM's quota, or a retry backoff) belongs to another
        // instance now, which re-reads this record from the committed offset and sends it itself: this instance
        // must not send it too. The revoke comes after the drain deadline, so only a send still waiting then is
        // abandoned; one already on the wire is covered by the new owner's history check of the conversation's
        // first event (at most one event per conversation is in flight).
        let applied = tokio::select! {
            biased;
            _ = pl.revoked().cancelled() => {
                return Outcome::Retry(Failure::new("revoked", "partition no longer assigned"));
            }
            r = self.applier.apply(&env, c2c_msg_seq(&env, record.offset)) => r,
        };
        let reference = match applied {
            Ok(r) => r,
            Err(e) => return self.failed(&env, &e.into()),
        };
        let kind = env.kind().as_str();
        self.metrics.apply_seconds.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        if let Err(e) = self.ledger.record(&pl, &env, record.offset, &reference).await {
            // Applied but not recorded: the entry stays in memory, and the retry writes it without sending.
            return self.failed(&env, &e);
        }
        let e2e = (TimestampMs::now().as_millis() - env.time.as_millis()).max(0) as f64 / 1000.0;
        self.metrics.end_to_end_seconds.with_label_values(&[kind]).observe(e2e);
        self.finish(&env, "applied");
        debug!(reference = %reference, apply_ms = started.elapsed().as_millis() as u64, "applied");
        Outcome::Done
    }
}

/// The `MsgSeq` a 1:1 copy is sent with. An old IM app's message keeps its own: the new app orders a second's
/// messages by `MsgSeq`, so copies sent within one second keep the old app's order whatever order they were
/// sent in. A legacy message takes one that grows with its offset (above every imported history `MsgSeq`).
fn c2c_msg_seq(env: &Envelope, offset: i64) -> u32 {
    if old_app_position(env).is_some() { copied_msg_seq(env) } else { live_msg_seq(offset) }
}

impl LiveHandler {
    /// Handles one record; its kind (`unknown` when undecodable) and the outcome. A dead letter is not counted
    /// here: [`Handler::handle`] counts it, while a send ahead of the lane that fails is only given up on.
    async fn attempt(&self, record: &Record) -> (&'static str, Outcome) {
        let env = match record.envelope() {
            Ok(env) => env,
            Err(f) => {
                warn!(topic = %record.topic, partition = record.partition, offset = record.offset, reason = %f.reason, "undecodable record");
                return ("unknown", Outcome::DeadLetter(f));
            }
        };
        let kind = env.kind().as_str();
        let span = info_span!(
            "apply",
            event_id = %env.id,
            conversation = %env.conversation,
            kind,
            partition = record.partition,
            offset = record.offset,
        );
        (kind, self.handle_envelope(record, env).instrument(span).await)
    }

    /// The lane's next step when the old side is an IM app ([`super::reorder`]). The first call for a
    /// conversation in an assignment also settles the crash window for every unapplied message before the first
    /// barrier: one the previous owner sent ahead of the front and could not record is found in the new app and
    /// recorded, so it is never sent twice.
    async fn reorder_step(&self, records: &[&Record], window: Duration) -> Step {
        let Some(pl) = self.ledger.ready(records[0].partition).await else { return Step::Front };
        // Each record decoded and looked up once: (index, envelope, applied).
        let mut run: Vec<(usize, Envelope, bool)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let Ok(env) = r.envelope() else { break };
            let applied = pl.lookup(&env.id).is_some();
            if Item::of(&env, applied) == Item::Barrier {
                break;
            }
            run.push((i, env, applied));
        }
        // Nothing to reorder, or the front is a skip: the front's own handling says so.
        let Some((_, front, front_applied)) = run.first() else { return Step::Front };
        if *front_applied {
            return Step::Front;
        }
        if !pl.is_resumed(&front.conversation) {
            let conversation = front.conversation.clone();
            for (i, env, applied) in &mut run {
                if *applied || !self.applier.needs_history_check(env) {
                    continue;
                }
                match self.applier.find_applied(env).await {
                    Ok(Some(reference)) => {
                        if let Err(e) = self.ledger.record(&pl, env, records[*i].offset, &reference).await {
                            warn!(event_id = %env.id, error = %e, "cannot record a message found after a restart");
                            return Step::Wait(Duration::from_secs(1));
                        }
                        info!(event_id = %env.id, reference = %reference, "found in IM after a restart; recorded without sending");
                        self.finish(env, "recovered");
                        *applied = true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(event_id = %env.id, error = %e, "history lookup after a restart failed; waiting");
                        return Step::Wait(Duration::from_secs(1));
                    }
                }
            }
            pl.mark_resumed(&conversation);
        }
        let mut items: Vec<Item> = run.iter().map(|(_, env, applied)| Item::of(env, *applied)).collect();
        if run.len() < records.len() {
            items.push(Item::Barrier);
        }
        next_step(&items, TimestampMs::now().as_millis(), window)
    }
}

impl Handler for LiveHandler {
    fn batch_limit(&self) -> usize {
        if self.reorder_window.is_some() { REORDER_BATCH } else { 1 }
    }

    async fn handle_batch(&self, records: &[&Record]) -> BatchOutcome {
        let Some(front) = records.first() else { return BatchOutcome { done: 0, next: None } };
        let step = match self.reorder_window {
            Some(window) => self.reorder_step(records, window).await,
            None => Step::Front,
        };
        let next = match step {
            Step::Front => self.handle(front).await,
            Step::Wait(d) => Outcome::Wait(d),
            Step::Ahead(i) => match self.attempt(records[i]).await.1 {
                // Sent and recorded: the ledger makes it a skip when the lane's front reaches it. Offer the lane
                // again at once for the next one.
                Outcome::Done => {
                    self.metrics.reordered.inc();
                    Outcome::Wait(Duration::ZERO)
                }
                // It cannot go ahead now: the lane goes on in its own order, where failures are classified,
                // retried and dead-lettered as always.
                _ => self.handle(front).await,
            },
        };
        BatchOutcome { done: 0, next: Some(next) }
    }

    async fn handle(&self, record: &Record) -> Outcome {
        let (kind, outcome) = self.attempt(record).await;
        if matches!(outcome, Outcome::DeadLetter(_)) {
            self.metrics.events.with_label_values(&[kind, "dead_letter"]).inc();
        }
        outcome
    }

    fn partitions_assigned(&self, partitions: &[(String, i32)]) {
        let ps = self.partitions_of(partitions);
        self.ledger.assign(&ps);
        if let Some(q) = &self.quota {
            let n = q.update(&ps, &[]);
            self.metrics.assigned_partitions.set(n as i64);
        } else {
            self.metrics.assigned_partitions.add(ps.len() as i64);
        }
        self.readiness.set(READY_ASSIGNMENT, true);
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        let ps = self.partitions_of(partitions);
        self.ledger.revoke(&ps);
        if let Some(q) = &self.quota {
            let n = q.update(&[], &ps);
            self.metrics.assigned_partitions.set(n as i64);
        } else {
            self.metrics.assigned_partitions.sub(ps.len() as i64);
        }
    }
}
