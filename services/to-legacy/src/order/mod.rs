//! The resequencer: IM's callbacks arrive out of order, twice, or not at all, and legacy must still see each
//! conversation the way IM shows it. It sits in front of the apply, inside the ordered consumer's per-conversation
//! lane, and decides which of the lane's records to apply now, in which order, and which to hold.
//!
//! Rules (each conversation on its own; positions come from the event ids and times ingest derived from IM):
//! - **Group messages in `MsgSeq` order, always.** The state keeps the group's highest contiguous seq applied.
//!   A message at the next seq applies at once; one at or below it is a duplicate and is skipped; one above it
//!   opens a gap. A gap that is still open after `gap_wait_ms` is read from IM ([`gap`]) and the missing seqs are
//!   applied (or skipped as notices / not in history), then the held messages follow. The first message of a
//!   group never seen before waits `gap_wait_ms` too, so that earlier seqs still in flight go first.
//! - **1:1 messages and group lifecycle events in IM's time order, within a window.** Each is held until
//!   `reorder_window_ms` after ingest received it, and those released together are applied by IM's (time, seq)
//!   — the `admin_getroammsg` order. One delayed more than the window is applied late rather than lost.
//! - **Never an older state over a newer one.** The state keeps, per group profile field and per member, the IM
//!   time of the newest applied change; an older change of a field or member is dropped from its event (an event
//!   left empty is skipped). Group creation applies at once, ahead of everything held.
//! - **Held is not finished.** A record is reported done only once it (and every record before it in the lane)
//!   was applied or skipped, so its offset is never committed early; the runner's `Outcome::Wait` re-offers the
//!   lane with what arrived meanwhile. Applied-but-not-yet-done records are remembered in memory so they are not
//!   sent twice; after a crash they are sent again and legacy's idempotency by event id absorbs them.
//!
//! The durable part ([`store`]) survives restarts and rebalances; the event ids make a duplicate harmless even
//! when several ingest instances or a replayed spool deliver the same callback again.

pub mod gap;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imbridge_core::{Envelope, Event, Failure};
use serde::{Deserialize, Serialize};

pub use gap::{Filled, GapFiller};
pub use store::{ConvOrder, OrderStore, PartitionOrder};

/// `[to_legacy.order]`: how long gaps and reorderings are waited for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderConfig {
    /// Resequence at all. Off: events apply in the order they reached Kafka (the behaviour before callbacks
    /// could arrive out of order).
    pub enabled: bool,
    /// How long a group's missing seq is waited for before it is read from IM, in milliseconds.
    pub gap_wait_ms: u64,
    /// How long after ingest received it a 1:1 message or group lifecycle event is held so that earlier ones
    /// delayed in flight can still go first, in milliseconds.
    pub reorder_window_ms: u64,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self { enabled: true, gap_wait_ms: 2_000, reorder_window_ms: 1_000 }
    }
}

/// Where an event sits in its conversation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A group message at this `MsgSeq`.
    GroupSeq(u64),
    /// Released `reorder_window_ms` after it reached imbridge (`arrived_ms`, ingest's clock), then applied by
    /// IM's (`time_secs`, `seq`, `time_ms`). The hold is measured on imbridge's clock only, so a skewed IM
    /// clock can neither hold an event for long nor release it early: an earlier change delayed less than the
    /// window behind a later one is in the lane by the time the later one is released.
    Timed { time_ms: i64, seq: u64, arrived_ms: i64 },
    /// Applied at once, ahead of held events (group creation).
    First,
}

impl Slot {
    /// The slot of an IM-origin envelope, from its id (ingest's id rules), IM's time and when ingest got it.
    pub fn of(env: &Envelope) -> Slot {
        let id = env.id.as_str();
        let arrived_ms = env.recorded_at.unwrap_or(env.time).as_millis();
        match &env.event {
            Event::GroupMessage(_) => match id.rsplit(':').next().and_then(|s| s.parse().ok()) {
                Some(seq) if id.starts_with("im:gmsg:") => Slot::GroupSeq(seq),
                _ => Slot::Timed { time_ms: env.time.as_millis(), seq: 0, arrived_ms },
            },
            // `im:c2c:<from>:<MsgSeq>_<MsgRandom>_<MsgTime>`: IM's history orders by time, then MsgSeq.
            Event::C2cMessage(_) => {
                let seq = id.rsplit(':').next().and_then(|k| k.split('_').next()).and_then(|s| s.parse().ok());
                Slot::Timed { time_ms: env.time.as_millis(), seq: seq.unwrap_or(0), arrived_ms }
            }
            Event::GroupCreated(_) => Slot::First,
            _ => Slot::Timed { time_ms: env.time.as_millis(), seq: 0, arrived_ms },
        }
    }

    fn sort_key(self) -> (i64, u64, i64) {
        match self {
            Slot::Timed { time_ms, seq, .. } => (time_ms.div_euclid(1000), seq, time_ms),
            Slot::GroupSeq(_) | Slot::First => (i64::MIN, 0, 0),
        }
    }
}

/// What the lane's handler should do with its batch now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Batch indices to apply, in this order.
    pub apply: Vec<usize>,
    /// Batch indices finished without applying (duplicates of applied seqs).
    pub duplicates: Vec<usize>,
    /// A gap whose wait is over: seqs `from..=to` must be read from IM before `apply` continues past it.
    pub fill: Option<(u64, u64)>,
    /// With a `fill`: `apply[..after_fill]` goes before it, the rest (the held messages above the gap, then the
    /// released timed events) after it.
    pub after_fill: usize,
    /// Nothing more can move now: offer the batch again after this long.
    pub wait: Option<Duration>,
    /// A gap was seen for the first time (for the metric).
    pub gap_detected: Option<(u64, u64)>,
}

/// What the resequencer remembers between calls of one conversation (in memory only).
#[derive(Debug, Default)]
pub struct Pending {
    /// Ids applied ahead of an earlier record of the lane (not yet reported done).
    pub applied: HashSet<String>,
    /// Ids legacy refused for good while not at the front of the lane: dead-lettered once they are.
    pub rejected: HashMap<String, Failure>,
    /// When the current gap (its first missing seq) was first seen.
    pub gap_since: Option<(u64, Instant)>,
    /// When a group with no known seq first showed a message.
    pub first_seen: Option<Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.rejected.is_empty() && self.gap_since.is_none() && self.first_seen.is_none()
    }
}

/// In-memory per-conversation memory, shared by the lanes of one instance.
#[derive(Debug, Default)]
pub struct Memory {
    map: Mutex<HashMap<String, Pending>>,
}

impl Memory {
    pub fn take(&self, conversation: &str) -> Pending {
        self.map.lock().map(|mut m| m.remove(conversation).unwrap_or_default()).unwrap_or_default()
    }

    pub fn put(&self, conversation: &str, p: Pending) {
        if p.is_empty() {
            return;
        }
        if let Ok(mut m) = self.map.lock() {
            m.insert(conversation.to_owned(), p);
        }
    }
}

/// Plans one call. `slots[i]` is batch item `i`'s slot, `finished[i]` whether it is already applied or skipped
/// (then it is ignored). `state` is the conversation's applied order, `now_ms` the wall clock.
pub fn plan(
    slots: &[Slot],
    finished: &[bool],
    state: &ConvOrder,
    pending: &mut Pending,
    now_ms: i64,
    now: Instant,
    cfg: &OrderConfig,
) -> Plan {
    let mut out = Plan::default();
    let gap_wait = Duration::from_millis(cfg.gap_wait_ms);
    let window = cfg.reorder_window_ms as i64;
    let mut wait: Option<Duration> = None;
    let mut hold = |d: Duration| wait = Some(wait.map_or(d, |w: Duration| w.min(d)));

    // Group creation first: messages and changes of the group need it to exist.
    for (i, s) in slots.iter().enumerate() {
        if !finished[i] && *s == Slot::First {
            out.apply.push(i);
        }
    }

    // Timed events released by the window, by IM's (time, seq). Releasing one releases every event of the lane
    // IM ordered before it, even if that one reached imbridge later and its own hold is not over: it is here now.
    let mut candidates: Vec<((i64, u64, i64), usize, i64)> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        if let (false, Slot::Timed { arrived_ms, .. }) = (finished[i], s) {
            candidates.push((s.sort_key(), i, arrived_ms + window));
        }
    }
    let released_up_to = candidates.iter().filter(|(_, _, due)| *due <= now_ms).map(|(k, _, _)| *k).max();
    let mut timed: Vec<((i64, u64, i64), usize)> = Vec::new();
    let mut first_held: Option<usize> = None;
    for (key, i, due) in candidates {
        if released_up_to.is_some_and(|r| key <= r) {
            timed.push((key, i));
        } else {
            hold(Duration::from_millis((due - now_ms).max(1) as u64));
            first_held = Some(first_held.map_or(i, |f: usize| f.min(i)));
        }
    }
    timed.sort();

    // Group messages by seq. A message behind a held lifecycle event (in arrival order) waits for it: a message
    // from a member who has just joined must not reach legacy before the join does.
    let mut seqs: Vec<(u64, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::GroupSeq(q) if !finished[i] && first_held.is_none_or(|h| i < h) => Some((*q, i)),
            _ => None,
        })
        .collect();
    seqs.sort();
    let mut group_apply: Vec<(i64, usize)> = Vec::new();
    let mut expected = state.group_seq.map(|s| s + 1);
    if expected.is_none() && !seqs.is_empty() {
        if slots.iter().enumerate().any(|(i, s)| *s == Slot::First && !finished[i]) {
            // A group created through IM now: its history starts at seq 1.
            expected = Some(1);
        } else {
            let since = *pending.first_seen.get_or_insert(now);
            let waited = now.saturating_duration_since(since);
            if waited >= gap_wait {
                expected = seqs.first().map(|(q, _)| *q);
                pending.first_seen = None;
            } else {
                hold(gap_wait - waited);
            }
        }
    }
    if let Some(mut next) = expected {
        let mut above = Vec::new();
        for (q, i) in seqs {
            if q < next {
                out.duplicates.push(i);
            } else if q == next && above.is_empty() {
                group_apply.push((q as i64, i));
                next += 1;
            } else {
                above.push((q, i));
            }
        }
        // Duplicates within the held part (the same seq twice above the gap).
        above.dedup_by(|b, a| {
            let dup = a.0 == b.0;
            if dup {
                out.duplicates.push(b.1);
            }
            dup
        });
        if let Some(&(low, _)) = above.first() {
            let gap = (next, low - 1);
            let since = match pending.gap_since {
                Some((from, t)) if from == gap.0 => t,
                _ => {
                    pending.gap_since = Some((gap.0, now));
                    out.gap_detected = Some(gap);
                    now
                }
            };
            let waited = now.saturating_duration_since(since);
            if waited >= gap_wait {
                out.fill = Some(gap);
                pending.gap_since = None;
                // After the fill the held messages are contiguous up to the next gap, if any.
                for (n, (q, i)) in (low..).zip(above) {
                    if q != n {
                        break;
                    }
                    group_apply.push((q as i64, i));
                }
            } else {
                hold(gap_wait - waited);
            }
        } else {
            pending.gap_since = None;
        }
    }

    // Symmetrically, a lifecycle event or 1:1 message behind a group message that still waits (for a gap, or for
    // a new group's start) waits with it: a dismissal must not overtake the group's last messages.
    let going: HashSet<usize> = group_apply.iter().map(|(_, i)| *i).collect();
    let first_waiting_message = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            matches!(s, Slot::GroupSeq(_)) && !finished[*i] && !going.contains(i) && !out.duplicates.contains(i)
        })
        .map(|(i, _)| i)
        .min();
    if let Some(w) = first_waiting_message {
        timed.retain(|(_, i)| *i < w);
        if wait.is_none() {
            wait = Some(Duration::from_millis(50));
        }
    }
    // Group messages before a fill stay before it, the held messages after it. Otherwise messages (in seq order)
    // and timed events (in IM's time order) are merged by arrival, so a join still goes before the first message
    // of the new member, and a message before the sender's exit.
    match out.fill {
        Some((from, _)) => {
            let before_fill = group_apply.iter().filter(|(q, _)| (*q as u64) < from).count();
            out.apply.extend(group_apply.iter().take(before_fill).map(|(_, i)| *i));
            out.after_fill = out.apply.len();
            out.apply.extend(group_apply.iter().skip(before_fill).map(|(_, i)| *i));
            out.apply.extend(timed.into_iter().map(|(_, i)| i));
        }
        None => {
            let (mut g, mut t) =
                (group_apply.iter().map(|(_, i)| *i).peekable(), timed.into_iter().map(|(_, i)| i).peekable());
            loop {
                let next = match (g.peek(), t.peek()) {
                    (Some(a), Some(b)) if b < a => t.next(),
                    (Some(_), _) => g.next(),
                    (None, Some(_)) => t.next(),
                    (None, None) => break,
                };
                out.apply.extend(next);
            }
            out.after_fill = out.apply.len();
        }
    }
    out.wait = wait;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OrderConfig {
        OrderConfig { enabled: true, gap_wait_ms: 1000, reorder_window_ms: 500 }
    }

    fn run(slots: &[Slot], state: &ConvOrder, pending: &mut Pending, now: Instant) -> Plan {
        plan(slots, &vec![false; slots.len()], state, pending, 10_000, now, &cfg())
    }

    #[test]
    fn group_messages_go_in_seq_order_and_duplicates_are_skipped() {
        let st = ConvOrder { group_seq: Some(3), ..Default::default() };
        let slots = [Slot::GroupSeq(5), Slot::GroupSeq(4), Slot::GroupSeq(3), Slot::GroupSeq(5), Slot::GroupSeq(6)];
        let p = run(&slots, &st, &mut Pending::default(), Instant::now());
        assert_eq!(p.apply, vec![1, 0, 4]);
        assert_eq!(p.duplicates.len(), 2, "{p:?}");
        assert_eq!(p.wait, None);
        assert_eq!(p.fill, None);
    }

    #[test]
    fn a_gap_is_held_then_filled() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let slots = [Slot::GroupSeq(4), Slot::GroupSeq(2), Slot::GroupSeq(5)];
        let mut pending = Pending::default();
        let t0 = Instant::now();
        let p = run(&slots, &st, &mut pending, t0);
        assert_eq!(p.apply, vec![1], "seq 2 goes, 4 and 5 wait for 3");
        assert_eq!(p.gap_detected, Some((3, 3)));
        assert_eq!(p.wait, Some(Duration::from_millis(1000)));
        // Seq 2 applied meanwhile; the gap stays open past the wait: fill 3, then 4 and 5.
        let st = ConvOrder { group_seq: Some(2), ..Default::default() };
        let finished = [false, true, false];
        let p = plan(&slots, &finished, &st, &mut pending, 10_000, t0 + Duration::from_millis(1001), &cfg());
        assert_eq!(p.fill, Some((3, 3)));
        assert_eq!(p.gap_detected, None, "the same gap is counted once");
        assert_eq!((p.after_fill, p.apply), (0, vec![0, 2]));
    }

    #[test]
    fn a_late_arrival_closes_the_gap_without_a_fill() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let mut pending = Pending::default();
        let t0 = Instant::now();
        let p = run(&[Slot::GroupSeq(3)], &st, &mut pending, t0);
        assert!(p.apply.is_empty() && p.wait.is_some());
        let p = run(&[Slot::GroupSeq(3), Slot::GroupSeq(2)], &st, &mut pending, t0 + Duration::from_millis(300));
        assert_eq!(p.apply, vec![1, 0]);
        assert_eq!(p.fill, None);
        assert!(pending.gap_since.is_none());
    }

    #[test]
    fn an_unknown_group_waits_once_then_starts_at_its_lowest_seq() {
        let mut pending = Pending::default();
        let t0 = Instant::now();
        let p = run(&[Slot::GroupSeq(8)], &ConvOrder::default(), &mut pending, t0);
        assert!(p.apply.is_empty());
        let p = run(
            &[Slot::GroupSeq(8), Slot::GroupSeq(7)],
            &ConvOrder::default(),
            &mut pending,
            t0 + Duration::from_millis(1000),
        );
        assert_eq!(p.apply, vec![1, 0]);
        // A group created now starts at seq 1: seq 2 alone is a gap.
        let p = run(&[Slot::First, Slot::GroupSeq(2)], &ConvOrder::default(), &mut Pending::default(), t0);
        assert_eq!(p.apply, vec![0]);
        assert_eq!(p.gap_detected, Some((1, 1)));
    }

    #[test]
    fn a_message_waits_behind_a_held_join_and_goes_after_a_released_one() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let join = |arrived_ms| Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms };
        // The join arrived first and is still held: the message behind it waits too.
        let p = run(&[Slot::GroupSeq(2), join(9_900), Slot::GroupSeq(3)], &st, &mut Pending::default(), Instant::now());
        assert_eq!(p.apply, vec![0]);
        // Released: join, then the member's message, in arrival order.
        let p = run(&[join(9_000), Slot::GroupSeq(2)], &st, &mut Pending::default(), Instant::now());
        assert_eq!(p.apply, vec![0, 1]);
    }

    #[test]
    fn a_dismissal_waits_behind_a_message_held_by_a_gap() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let dismissal = Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms: 8_000 };
        let p = run(&[Slot::GroupSeq(3), dismissal], &st, &mut Pending::default(), Instant::now());
        assert!(p.apply.is_empty(), "{p:?}");
        assert!(p.wait.is_some());
    }

    #[test]
    fn timed_events_wait_for_the_window_and_go_by_time_then_seq() {
        // IM's clock runs 100 s ahead of ours: the hold is measured on ours (arrival), the order on IM's.
        let t = |time_ms: i64, seq: u64, arrived_ms: i64| Slot::Timed { time_ms: time_ms + 100_000, seq, arrived_ms };
        let slots = [t(9_000, 7, 9_000), t(9_200, 5, 9_300), t(8_100, 9, 9_400), t(10_100, 1, 9_800)];
        let p = run(&slots, &ConvOrder::default(), &mut Pending::default(), Instant::now());
        // Same second (109 s): seq 5 before seq 7; 108.1 s first; the one of 110.1 s arrived at 9.8 s: still held.
        assert_eq!(p.apply, vec![2, 1, 0]);
        assert_eq!(p.wait, Some(Duration::from_millis(300)));
        // An earlier message that arrived after a later one goes with it, before it, even if its own hold is on.
        let slots = [t(9_500, 2, 9_000), t(9_400, 1, 9_700)];
        let p = run(&slots, &ConvOrder::default(), &mut Pending::default(), Instant::now());
        assert_eq!(p.apply, vec![1, 0]);
    }
}
