//! The applier behind the resequencer ([`crate::order`]): one call takes the lane's records of one
//! conversation, lets [`order::plan`] decide what can go now, fills group seq gaps from IM, applies in the
//! planned order through [`LegacyApplier::apply`], records the new order state durably, and only then reports
//! the finished prefix of the lane (in offset order) as done. What cannot go yet is answered with
//! `Outcome::Wait`, so the runner offers the lane again with whatever arrived meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imbridge_core::apply::OldSide;
use imbridge_core::{Envelope, Event, Failure, GroupId, TimestampMs};
use imbridge_kafka::{BatchOutcome, Outcome, Record};
use tracing::{debug, error, info, warn};

use crate::handler::{Item, LegacyApplier, Stop};
use crate::order::{self, ConvOrder, GapFiller, Lane, Memory, OrderConfig, OrderStore, Pending, Slot};
use crate::side::SideError;

/// How long state of members and fields is kept: a change older than this cannot arrive any more (the IM events
/// topic keeps a week).
const STATE_KEEP_MS: i64 = 8 * 24 * 3_600_000;

/// Everything the resequencer needs, shared by the lanes.
#[derive(Debug)]
pub struct Resequencer {
    pub cfg: OrderConfig,
    pub store: Arc<OrderStore>,
    /// `None` without an `[im]` client: a gap past its wait is skipped (logged and counted), never waited for.
    pub filler: Option<GapFiller>,
    pub memory: Memory,
    /// The measured spread of IM's delivery delays: how long timed events are held.
    pub jitter: order::Jitter,
    /// Hold for the whole `reorder_window_ms`, not the adaptive window: the old side orders by arrival.
    pub fixed_window: bool,
}

/// Why a call stopped early.
enum Halt {
    Transient(Failure, Option<Duration>),
    /// Legacy refused an event for good: nothing after it is applied before it is dead-lettered (the runner
    /// then parks the conversation's later records, as without the resequencer).
    Rejected,
    /// Legacy refused an event of a group to-legacy never applied anything to: offered again after this long,
    /// with whatever arrived meanwhile (a creation goes first), until `unknown_group_hold_ms` has passed.
    Held(Duration),
}

/// How often a held group's refused event is offered again.
const HELD_RETRY: Duration = Duration::from_secs(3);

impl LegacyApplier {
    pub(crate) async fn handle_sequenced(&self, r: &Resequencer, records: &[&Record]) -> BatchOutcome {
        let (mut items, poison) = match self.decode_batch(records) {
            Ok(decoded) => decoded,
            Err(dead) => return dead,
        };
        let Some(first) = items.first() else { return self.dead_letter(None) };
        let conv = first.env.conversation.as_str().to_owned();
        let group = first.env.conversation.group_id().is_some();
        let partition = records.first().map(|r| r.partition).unwrap_or_default();
        let Some(po) = r.store.ready(partition).await else {
            return BatchOutcome {
                done: 0,
                next: Some(Outcome::Retry(Failure::new("revoked", "partition no longer assigned"))),
            };
        };
        let mut state = po.get(&conv);
        let saved = state.clone();
        let mut pending = r.memory.take(&conv);
        let n = items.len();
        let slots: Vec<Slot> = items.iter().map(|i| Slot::of(&i.env)).collect();
        let mut finished: Vec<bool> = items
            .iter()
            .map(|i| pending.applied.contains(i.env.id.as_str()) || pending.rejected.contains_key(i.env.id.as_str()))
            .collect();
        let mut wait = None;
        let mut halt = None;
        let now_ms = TimestampMs::now().as_millis();
        let cfg = OrderConfig {
            reorder_window_ms: if r.fixed_window {
                r.cfg.reorder_window_ms
            } else {
                r.jitter.window_ms(r.cfg.reorder_window_min_ms, r.cfg.reorder_window_ms, now_ms)
            },
            ..r.cfg.clone()
        };
        self.metrics.reorder_window_ms.set(cfg.reorder_window_ms as i64);
        loop {
            let lane = Lane { slots: &slots, finished: &finished, state: &state, group };
            let mut plan = order::plan(lane, &mut pending, TimestampMs::now().as_millis(), Instant::now(), &cfg);
            self.settle_ties(r, &conv, &items, &mut plan.apply).await;
            if let Some((from, to)) = plan.gap_detected {
                self.metrics.gaps_detected.inc();
                info!(conversation = %conv, from, to, "group seq gap; waiting for the missing messages");
            }
            for i in plan.duplicates {
                finished[i] = true;
                pending.applied.insert(items[i].env.id.as_str().to_owned());
                self.metrics.resequenced.with_label_values(&["duplicate"]).inc();
                self.finished(&items[i], "duplicate");
            }
            // Without a fill `after_fill` is meaningless: everything planned goes now.
            let cut = if plan.fill.is_some() { plan.after_fill } else { plan.apply.len() };
            let (before, after) = plan.apply.split_at(cut);
            if let Err(h) =
                self.apply_planned(r, before, &mut items, &slots, &mut finished, &mut state, &mut pending).await
            {
                halt = Some(h);
                break;
            }
            if let Some((from, to)) = plan.fill {
                if let Err(h) = self.fill_gap(r, &conv, from, to, &mut state).await {
                    // Not waited for again: the next call fills at once.
                    pending.gap_since = Some((from, Instant::now() - Duration::from_millis(r.cfg.gap_wait_ms)));
                    halt = Some(h);
                    break;
                }
                if let Err(h) =
                    self.apply_planned(r, after, &mut items, &slots, &mut finished, &mut state, &mut pending).await
                {
                    halt = Some(h);
                    break;
                }
                // The held messages may have run into another gap, or released more.
                continue;
            }
            wait = plan.wait;
            break;
        }
        if state != saved {
            prune(&mut state);
            if let Err(e) = r.store.save(&po, &conv, state).await {
                // Applied events stay remembered in memory; they are reported once the state is durable.
                warn!(conversation = %conv, error = %e, "cannot record the resequencer state; retrying");
                r.memory.put(&conv, pending);
                return BatchOutcome {
                    done: 0,
                    next: Some(Outcome::Retry(Failure::new("order_state", e.to_string()))),
                };
            }
        }
        // The finished prefix, in offset order, is what the runner may commit.
        let mut done = 0;
        while done < n && finished[done] && !pending.rejected.contains_key(items[done].env.id.as_str()) {
            pending.applied.remove(items[done].env.id.as_str());
            // Each record once, when it leaves the lane.
            let env = &items[done].env;
            r.jitter.observe(env.time.as_millis(), env.recorded_at.unwrap_or(env.time).as_millis(), now_ms);
            done += 1;
        }
        let next = if done == n {
            None
        } else if let Some(f) = pending.rejected.remove(items[done].env.id.as_str()) {
            Some(Outcome::DeadLetter(f))
        } else {
            match halt {
                Some(Halt::Transient(f, retry_after)) => {
                    if let Some(ra) = retry_after {
                        self.wait(ra).await;
                    }
                    Some(Outcome::Retry(f))
                }
                Some(Halt::Held(d)) => Some(Outcome::Wait(d)),
                _ => Some(Outcome::Wait(wait.unwrap_or(Duration::from_millis(50)))),
            }
        };
        if done == n && poison.is_some() {
            r.memory.put(&conv, pending);
            self.metrics.events.with_label_values(&["unknown", "malformed"]).inc();
            return BatchOutcome { done, next: poison.map(Outcome::DeadLetter) };
        }
        r.memory.put(&conv, pending);
        BatchOutcome { done, next }
    }

    /// Applies batch items `order` in that order; stale changes are trimmed against `state` first.
    #[allow(clippy::too_many_arguments)]
    async fn apply_planned(
        &self,
        r: &Resequencer,
        order: &[usize],
        items: &mut [Item],
        slots: &[Slot],
        finished: &mut [bool],
        state: &mut ConvOrder,
        pending: &mut Pending,
    ) -> Result<(), Halt> {
        let mut idx = Vec::with_capacity(order.len());
        let mut events = Vec::with_capacity(order.len());
        for &i in order {
            match fresh(&items[i].env, state) {
                Fresh::Unchanged => {}
                Fresh::Trimmed(env) => match self.side().accepts(&env) {
                    Ok(()) => items[i].event = *env,
                    Err(e) => {
                        warn!(event_id = %env.id, error = %e, "a trimmed event cannot be applied; sending it whole")
                    }
                },
                Fresh::Stale => {
                    finished[i] = true;
                    pending.applied.insert(items[i].env.id.as_str().to_owned());
                    self.metrics.resequenced.with_label_values(&["stale"]).inc();
                    self.finished(&items[i], "stale");
                    debug!(event_id = %items[i].env.id, "older than what legacy already has; skipped");
                    continue;
                }
            }
            idx.push(i);
            events.push(items[i].event.clone());
        }
        let mut start = 0;
        if start < events.len() {
            self.metrics.batch_events.observe((events.len() - start) as f64);
            let started = Instant::now();
            let (labels, stop) = self.apply(&events[start..]).await;
            let outcome = match &stop {
                None if labels.iter().all(|l| *l == "duplicate") => "duplicate",
                None => "applied",
                Some(Stop::Rejected { .. }) => "rejected",
                Some(Stop::Transient(_)) => "retry",
            };
            self.metrics.apply_seconds.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
            for (k, label) in labels.iter().enumerate() {
                let i = idx[start + k];
                finished[i] = true;
                pending.applied.insert(items[i].env.id.as_str().to_owned());
                record(state, &items[i].env, slots[i]);
                self.finished(&items[i], label);
            }
            start += labels.len();
            match stop {
                None => pending.unknown_since = None,
                Some(Stop::Transient(e)) => return Err(self.halt_of(&e)),
                Some(Stop::Rejected { error, .. }) => {
                    // `apply` confirmed the events before the refused one, so it is the next one. It is
                    // dead-lettered once it reaches the front of the lane; its place in the order is taken.
                    let Some(&i) = idx.get(start) else { return Err(Halt::Rejected) };
                    if state.dismissed.is_some() {
                        // IM delivered it after the dismissal it preceded (concurrent callbacks are stamped at
                        // delivery): the group and its history are gone on both sides, so there is nothing to
                        // apply it to and nothing to keep. Finished, not dead-lettered; the rest goes on.
                        warn!(event_id = %items[i].env.id, error = %error, "refused after the group's dismissal; skipped");
                        finished[i] = true;
                        pending.applied.insert(items[i].env.id.as_str().to_owned());
                        self.metrics.resequenced.with_label_values(&["after_dismissal"]).inc();
                        self.finished(&items[i], "after_dismissal");
                        return Ok(());
                    }
                    if let Some(held) = unknown_group_hold(&r.cfg, &items[i].env, state, pending) {
                        warn!(
                            event_id = %items[i].env.id, error = %error, held_s = held.as_secs(),
                            "legacy refused an event of a group imbridge never applied anything to (its creation \
                             callback may be lost); holding the group for its creation"
                        );
                        self.metrics.unknown_group_holds.inc();
                        return Err(Halt::Held(HELD_RETRY));
                    }
                    warn!(event_id = %items[i].env.id, error = %error, "legacy refused the event; it will be dead-lettered");
                    self.finished(&items[i], "rejected");
                    finished[i] = true;
                    pending.rejected.insert(items[i].env.id.as_str().to_owned(), Failure::from_error(&error));
                    record(state, &items[i].env, slots[i]);
                    return Err(Halt::Rejected);
                }
            }
        }
        Ok(())
    }

    /// Reads seqs `from..=to` of the conversation's group from IM and applies what they hold.
    async fn fill_gap(
        &self,
        r: &Resequencer,
        conv: &str,
        from: u64,
        to: u64,
        state: &mut ConvOrder,
    ) -> Result<(), Halt> {
        let group = conv.strip_prefix("group:").and_then(|g| GroupId::parse(g).ok());
        let (Some(filler), Some(group)) = (&r.filler, group) else {
            warn!(conversation = %conv, from, to, "group seq gap past its wait and no IM client to read it; skipped");
            self.metrics.gap_messages.with_label_values(&["skipped"]).inc_by(to - from + 1);
            state.group_seq = Some(to);
            return Ok(());
        };
        let filled = match filler.fill(&group, from, to).await {
            Ok(f) => f,
            Err(e) if e.is_retryable() => {
                warn!(conversation = %conv, from, to, error = %e, "cannot read the gap from IM; retrying");
                return Err(Halt::Transient(Failure::new("im_gap_fill", e.to_string()), None));
            }
            Err(e) => {
                // IM will never answer differently (the group was dismissed meanwhile, …): holding the
                // conversation for it would block everything behind, so the seqs are skipped, loudly.
                error!(conversation = %conv, from, to, error = %e, "IM refused to read the gap; its seqs are skipped");
                self.metrics.gap_messages.with_label_values(&["skipped"]).inc_by(to - from + 1);
                state.group_seq = Some(to);
                return Ok(());
            }
        };
        let mut applied = 0u64;
        for env in &filled.events {
            let t = env.time.as_millis();
            state.group_time = Some(state.group_time.map_or(t, |s| s.max(t)));
            if self.side().accepts(env).is_err() {
                continue;
            }
            match self.apply(std::slice::from_ref(env)).await {
                (_, None) => applied += 1,
                (_, Some(Stop::Transient(e))) => return Err(self.halt_of(&e)),
                (_, Some(Stop::Rejected { error, .. })) => {
                    // Not a record of ours, so nothing to dead-letter: say so loudly and go on.
                    error!(event_id = %env.id, error = %error, "legacy refused a message read from IM to fill a gap");
                }
            }
        }
        state.group_seq = Some(to);
        self.metrics.gaps_filled.inc();
        self.metrics.gap_messages.with_label_values(&["filled"]).inc_by(applied);
        self.metrics.gap_messages.with_label_values(&["skipped"]).inc_by(filled.skipped.len() as u64);
        info!(conversation = %conv, from, to, filled = applied, skipped = ?filled.skipped, "group seq gap filled from IM");
        Ok(())
    }
}

impl LegacyApplier {
    /// Orders changes of one member or profile field that IM stamped with the same millisecond as IM's state
    /// now implies ([`order::ties`]). Without an IM client, or when IM cannot be read, arrival order stands.
    async fn settle_ties(&self, r: &Resequencer, conv: &str, items: &[Item], planned: &mut [usize]) {
        let ties = order::ties::find(planned, |i| &items[i].env);
        if ties.is_empty() {
            return;
        }
        let group = conv.strip_prefix("group:").and_then(|g| GroupId::parse(g).ok());
        let (Some(filler), Some(group)) = (&r.filler, group) else {
            warn!(conversation = %conv, ?ties, "group changes in one millisecond and no IM client to ask; arrival order");
            return;
        };
        match filler.now(&group).await {
            Ok(now) => {
                for tie in &ties {
                    order::ties::settle(planned, tie, &now, |i| &items[i].env);
                    info!(conversation = %conv, subject = ?tie.subject, "group changes in one millisecond; ordered by IM's state");
                }
            }
            Err(e) => {
                warn!(conversation = %conv, error = %e, "group changes in one millisecond; IM unreadable, arrival order");
            }
        }
    }
}

impl LegacyApplier {
    fn halt_of(&self, e: &SideError) -> Halt {
        Halt::Transient(Failure::from_error(e), self.retry_after(e).map(|d| d.min(Duration::from_secs(60))))
    }
}

/// Whether a refused `env` is held rather than dead-lettered, and for how long it has been: an event of a group
/// (other than its creation or dismissal) that to-legacy has applied nothing to, within `unknown_group_hold_ms`
/// of the group's first refusal. A group imbridge applied anything to was known to legacy, so a refusal there is
/// for another reason and dead-letters at once.
fn unknown_group_hold(cfg: &OrderConfig, env: &Envelope, state: &ConvOrder, pending: &mut Pending) -> Option<Duration> {
    let group_event = env.conversation.group_id().is_some()
        && !matches!(env.event, Event::GroupCreated(_) | Event::GroupDismissed(_));
    let untouched = state.group_seq.is_none() && state.fields.is_empty() && state.members.is_empty();
    if !group_event || !untouched || cfg.unknown_group_hold_ms == 0 {
        return None;
    }
    let since = *pending.unknown_since.get_or_insert_with(Instant::now);
    let held = since.elapsed();
    if held < Duration::from_millis(cfg.unknown_group_hold_ms) {
        Some(held)
    } else {
        pending.unknown_since = None;
        None
    }
}

/// An event checked against what legacy already has.
enum Fresh {
    Unchanged,
    Trimmed(Box<Envelope>),
    Stale,
}

/// Drops from a group lifecycle event the changes older than ones already applied.
fn fresh(env: &Envelope, state: &ConvOrder) -> Fresh {
    let t = env.time.as_millis();
    let newer = |m: &std::collections::BTreeMap<String, i64>, k: &str| m.get(k).is_some_and(|seen| *seen > t);
    match &env.event {
        Event::GroupUpdated(u) => {
            let mut u2 = u.clone();
            let mut kept = 0;
            for (name, field) in [
                ("name", &mut u2.name),
                ("introduction", &mut u2.introduction),
                ("notification", &mut u2.notification),
                ("face_url", &mut u2.face_url),
            ] {
                if field.is_some() {
                    if newer(&state.fields, name) {
                        *field = None;
                    } else {
                        kept += 1;
                    }
                }
            }
            if kept == 0 {
                Fresh::Stale
            } else if u2 == *u {
                Fresh::Unchanged
            } else {
                Fresh::Trimmed(Box::new(Envelope { event: Event::GroupUpdated(u2), ..env.clone() }))
            }
        }
        Event::MembersJoined(j) => {
            let kept: Vec<_> = j.members.iter().filter(|m| !newer(&state.members, m.as_str())).cloned().collect();
            match kept.len() {
                0 => Fresh::Stale,
                k if k == j.members.len() => Fresh::Unchanged,
                _ => Fresh::Trimmed(Box::new(Envelope {
                    event: Event::MembersJoined(imbridge_core::event::MembersJoined { members: kept, ..j.clone() }),
                    ..env.clone()
                })),
            }
        }
        Event::MembersLeft(l) => {
            let kept: Vec<_> = l.members.iter().filter(|m| !newer(&state.members, m.as_str())).cloned().collect();
            match kept.len() {
                0 => Fresh::Stale,
                k if k == l.members.len() => Fresh::Unchanged,
                _ => Fresh::Trimmed(Box::new(Envelope {
                    event: Event::MembersLeft(imbridge_core::event::MembersLeft { members: kept, ..l.clone() }),
                    ..env.clone()
                })),
            }
        }
        _ => Fresh::Unchanged,
    }
}

/// Moves the conversation's order state past an applied (or dead-lettered) event.
fn record(state: &mut ConvOrder, env: &Envelope, slot: Slot) {
    let t = env.time.as_millis();
    let bump = |m: &mut std::collections::BTreeMap<String, i64>, k: &str| {
        let e = m.entry(k.to_owned()).or_insert(t);
        *e = (*e).max(t);
    };
    match (&env.event, slot) {
        (_, Slot::GroupSeq { seq, time_ms }) => {
            state.group_seq = Some(state.group_seq.map_or(seq, |s| s.max(seq)));
            state.group_time = Some(state.group_time.map_or(time_ms, |s| s.max(time_ms)));
        }
        (Event::GroupUpdated(u), _) => {
            for (name, present) in [
                ("name", u.name.is_some()),
                ("introduction", u.introduction.is_some()),
                ("notification", u.notification.is_some()),
                ("face_url", u.face_url.is_some()),
            ] {
                if present {
                    bump(&mut state.fields, name);
                }
            }
        }
        (Event::MembersJoined(j), _) => j.members.iter().for_each(|m| bump(&mut state.members, m.as_str())),
        (Event::MembersLeft(l), _) => l.members.iter().for_each(|m| bump(&mut state.members, m.as_str())),
        (Event::GroupDismissed(_), _) => state.dismissed = Some(t),
        (Event::GroupCreated(c), _) => {
            state.dismissed = None;
            // A created group's history starts here: its messages begin at seq 1.
            if state.group_seq.is_none() {
                state.group_seq = Some(0);
            }
            for name in ["name", "introduction", "notification", "face_url"] {
                bump(&mut state.fields, name);
            }
            c.members.iter().for_each(|m| bump(&mut state.members, m.as_str()));
        }
        _ => {}
    }
}

/// Forgets member and field times too old for any event still on the topic.
fn prune(state: &mut ConvOrder) {
    let horizon = TimestampMs::now().as_millis() - STATE_KEEP_MS;
    state.members.retain(|_, t| *t >= horizon);
    state.fields.retain(|_, t| *t >= horizon);
}
