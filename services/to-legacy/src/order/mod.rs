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
//! - **Messages and changes of a group by IM's time.** A message waits for a held change IM made before it, a
//!   change for a waiting message IM made before it (during a gap: for every change newer than the last applied
//!   message), so a dismissal never overtakes the last messages and a join always precedes the newcomer's first.
//! - **Never an older state over a newer one.** The state keeps, per group profile field and per member, the IM
//!   time of the newest applied change; an older change of a field or member is dropped from its event (an event
//!   left empty is skipped). Group creation applies at once, ahead of everything held; a group with no state and
//!   no creation in the lane waits `gap_wait_ms` once for it.
//! - **Held is not finished.** A record is reported done only once it (and every record before it in the lane)
//!   was applied or skipped, so its offset is never committed early; the runner's `Outcome::Wait` re-offers the
//!   lane with what arrived meanwhile. Applied-but-not-yet-done records are remembered in memory so they are not
//!   sent twice; after a crash they are sent again and legacy's idempotency by event id absorbs them.
//!
//! The durable part ([`store`]) survives restarts and rebalances; the event ids make a duplicate harmless even
//! when several ingest instances or a replayed spool deliver the same callback again.

pub mod gap;
pub mod jitter;
pub mod store;
pub mod ties;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imbridge_core::{Envelope, Event, Failure};
use serde::{Deserialize, Serialize};

pub use gap::{Filled, GapFiller};
pub use jitter::Jitter;
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
    /// The longest a 1:1 message or group lifecycle event is held after ingest received it so that earlier ones
    /// delayed in flight can still go first, in milliseconds: the window of a fresh instance, and the cap of the
    /// adaptive one ([`jitter`]).
    pub reorder_window_ms: u64,
    /// The shortest hold, in milliseconds, to which the adaptive window adds the measured spread of IM's delivery
    /// delays. It covers what the measure cannot see: two callbacks spooled by ingest in the other order than
    /// they were stamped, and records of one lane reaching to-legacy in different fetches. Equal to
    /// `reorder_window_ms`: a fixed window.
    pub reorder_window_min_ms: u64,
    /// How long the events of a group the old side refuses, and to-legacy never applied anything to, are held
    /// before they are dead-lettered, in milliseconds: IM never re-sends the group's lost creation callback, and
    /// the creation reconcile produces (on the same key, so behind them) goes first once it arrives. 0 dead-letters
    /// at once (which parks the group until an operator re-drives it).
    pub unknown_group_hold_ms: u64,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            gap_wait_ms: 2_000,
            reorder_window_ms: 1_000,
            reorder_window_min_ms: 20,
            unknown_group_hold_ms: 180_000,
        }
    }
}

/// The position a group's dismissal takes within its second (group changes carry no seq of their own).
const DISMISSAL_SEQ: u64 = u64::MAX;

/// Where an event sits in its conversation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A group message at this `MsgSeq`, sent at IM's `time_ms`.
    GroupSeq { seq: u64, time_ms: i64 },
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
                Some(seq) if id.starts_with("im:gmsg:") => Slot::GroupSeq { seq, time_ms: env.time.as_millis() },
                _ => Slot::Timed { time_ms: env.time.as_millis(), seq: 0, arrived_ms },
            },
            // `im:c2c:<from>:<MsgSeq>_<MsgRandom>_<MsgTime>`: IM's history orders by time, then MsgSeq.
            Event::C2cMessage(_) => {
                let seq = id.rsplit(':').next().and_then(|k| k.split('_').next()).and_then(|s| s.parse().ok());
                Slot::Timed { time_ms: env.time.as_millis(), seq: seq.unwrap_or(0), arrived_ms }
            }
            Event::GroupCreated(_) => Slot::First,
            // Nothing of a group comes after its dismissal: last among the changes of its second, and after the
            // messages of its millisecond (IM stamps the last message and the dismissal alike).
            Event::GroupDismissed(_) => Slot::Timed { time_ms: env.time.as_millis(), seq: DISMISSAL_SEQ, arrived_ms },
            _ => Slot::Timed { time_ms: env.time.as_millis(), seq: 0, arrived_ms },
        }
    }

    fn sort_key(self) -> (i64, u64, i64) {
        match self {
            Slot::Timed { time_ms, seq, .. } => (time_ms.div_euclid(1000), seq, time_ms),
            Slot::GroupSeq { .. } | Slot::First => (i64::MIN, 0, 0),
        }
    }

    /// Whether this is a group's dismissal.
    fn ends_group(self) -> bool {
        matches!(self, Slot::Timed { seq: DISMISSAL_SEQ, .. })
    }

    /// IM's time of the change (creation: before everything).
    fn time_ms(self) -> i64 {
        match self {
            Slot::GroupSeq { time_ms, .. } | Slot::Timed { time_ms, .. } => time_ms,
            Slot::First => i64::MIN,
        }
    }
}

/// What the lane's handler should do with its batch now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Batch indices to apply, in this order.
    pub apply: Vec<usize>,
    /// Batch indices finished without applying (a seq twice in the batch).
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
    /// When this instance began offering the conversation's current records (wall clock, ms): records that
    /// reached imbridge long before (a restart, a rebalance, a lagging consumer) are held a window from here, not
    /// from their arrival, because the records that arrived just after them may not be fetched yet.
    pub opened_ms: Option<i64>,
    /// When a group with no known seq first showed a message.
    pub first_seen: Option<Instant>,
    /// When the old side first refused an event of this group while to-legacy had applied nothing to it (its
    /// creation may be lost): the hold of `unknown_group_hold_ms` runs from here.
    pub unknown_since: Option<Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.applied.is_empty()
            && self.rejected.is_empty()
            && self.gap_since.is_none()
            && self.first_seen.is_none()
            && self.unknown_since.is_none()
            && self.opened_ms.is_none()
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

/// One call's view of a conversation's lane.
#[derive(Debug, Clone, Copy)]
pub struct Lane<'a> {
    /// Batch item `i`'s slot.
    pub slots: &'a [Slot],
    /// Whether batch item `i` is already applied or skipped (then it is ignored).
    pub finished: &'a [bool],
    /// The conversation's applied order.
    pub state: &'a ConvOrder,
    /// The conversation is a group (its creation may still be on its way).
    pub group: bool,
}

/// Plans one call over `lane`; `now_ms` is the wall clock.
pub fn plan(lane: Lane<'_>, pending: &mut Pending, now_ms: i64, now: Instant, cfg: &OrderConfig) -> Plan {
    let Lane { slots, finished, state, group } = lane;
    let mut out = Plan::default();
    let gap_wait = Duration::from_millis(cfg.gap_wait_ms);
    let window = cfg.reorder_window_ms as i64;
    let mut wait: Option<Duration> = None;
    let mut hold = |d: Duration| wait = Some(wait.map_or(d, |w: Duration| w.min(d)));
    let open = |i: usize| !finished[i];
    let creating = slots.iter().enumerate().any(|(i, s)| *s == Slot::First && open(i));

    // A group with no applied state and no creation in the lane: its creation may still be in flight behind the
    // first callbacks IM fired after it (deliveries run concurrently), and legacy refuses a change or message of
    // a group it does not have. Everything of it waits `gap_wait_ms` once; a group created elsewhere (legacy, or
    // before imbridge) then goes on without it.
    if group && !creating && *state == ConvOrder::default() && (0..slots.len()).any(open) {
        let since = *pending.first_seen.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        if waited < gap_wait {
            out.wait = Some(gap_wait - waited);
            return out;
        }
    }

    // Group creation first: messages and changes of the group need it to exist.
    out.apply.extend((0..slots.len()).filter(|i| open(*i) && slots[*i] == Slot::First));

    // Timed events released by the window, by IM's (time, seq). Releasing one releases every event of the lane
    // IM ordered before it, even if that one reached imbridge later and its own hold is not over: it is here now.
    // A record is in the lane a window after it reached imbridge, or after this instance first offered the lane,
    // whichever is later: only then have the records that arrived just after it surely been fetched too.
    let opened_ms = *pending.opened_ms.get_or_insert(now_ms);
    let mut candidates: Vec<((i64, u64, i64), usize, i64)> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        if let (true, Slot::Timed { arrived_ms, .. }) = (open(i), s) {
            candidates.push((s.sort_key(), i, (*arrived_ms).max(opened_ms) + window));
        }
    }
    let released_up_to = candidates.iter().filter(|(_, _, due)| *due <= now_ms).map(|(k, _, _)| *k).max();
    let mut timed: Vec<((i64, u64, i64), usize)> = Vec::new();
    // The IM time of the oldest change still held.
    let mut held_from: Option<i64> = None;
    for (key, i, due) in candidates {
        if released_up_to.is_some_and(|r| key <= r) {
            timed.push((key, i));
        } else {
            hold(Duration::from_millis((due - now_ms).max(1) as u64));
            held_from = Some(held_from.map_or(key.2, |h: i64| h.min(key.2)));
        }
    }
    timed.sort();

    // Group messages by seq. One IM made after a change that is still held waits for it: a message from a member
    // who has just joined must not reach legacy before the join does.
    let mut seqs: Vec<(u64, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match *s {
            Slot::GroupSeq { seq, time_ms } if open(i) && held_from.is_none_or(|h| time_ms < h) => Some((seq, i)),
            _ => None,
        })
        .collect();
    seqs.sort();
    let mut group_apply: Vec<usize> = Vec::new();
    let mut gap_open = false;
    let mut expected = state.group_seq.map(|s| s + 1);
    if expected.is_none() && !seqs.is_empty() {
        if creating {
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
        let first = next;
        for (q, i) in seqs {
            if q < next && q >= first {
                out.duplicates.push(i);
            } else if q < next {
                // Below what was applied: a redelivery, or a message that was skipped (a gap IM could not fill)
                // and comes back as a reconcile repair. Legacy deduplicates by id and places a message by its time
                // among IM's (the contract's order), so it is applied, not dropped: a repair lands in place.
                group_apply.push(i);
            } else if q == next && above.is_empty() {
                group_apply.push(i);
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
                    group_apply.push(i);
                }
            } else {
                gap_open = true;
                hold(gap_wait - waited);
            }
        } else {
            pending.gap_since = None;
        }
    }

    // Symmetrically, a change IM made after a group message that still waits (for a gap, for a new group's start,
    // for a held change) waits with it: a dismissal must not overtake the group's last messages. While a gap is
    // open the missing messages' times are unknown, only that they follow the last applied one.
    let waiting_from = (0..slots.len())
        .filter(|i| open(*i) && !group_apply.contains(i) && !out.duplicates.contains(i))
        .filter_map(|i| match slots[i] {
            Slot::GroupSeq { time_ms, .. } => Some(time_ms),
            _ => None,
        })
        .min()
        .map(|t| if gap_open { state.group_time.map_or(t, |g| g.min(t)) } else { t });
    if let Some(w) = waiting_from {
        let before = timed.len();
        timed.retain(|(_, i)| slots[*i].time_ms() < w);
        if timed.len() < before && wait.is_none() {
            wait = Some(Duration::from_millis(50));
        }
    }
    // Messages (in seq order) and changes (in IM's time order) are merged by IM's time, arrival order breaking
    // ties except for a dismissal, which goes after everything of its millisecond: a join goes before the new
    // member's first message, a message before its sender's exit, the group's last messages before its dismissal. With a fill, the messages before the gap go first, the rest after it.
    let merge = |msgs: &[usize], changes: &[usize], out: &mut Vec<usize>| {
        let key = |i: usize| (slots[i].time_ms(), slots[i].ends_group(), i);
        let (mut g, mut t) = (msgs.iter().copied().peekable(), changes.iter().copied().peekable());
        loop {
            let next = match (g.peek(), t.peek()) {
                (Some(&a), Some(&b)) if key(b) < key(a) => t.next(),
                (Some(_), _) => g.next(),
                (None, Some(_)) => t.next(),
                (None, None) => break,
            };
            out.extend(next);
        }
    };
    let changes: Vec<usize> = timed.into_iter().map(|(_, i)| i).collect();
    match out.fill {
        Some((from, _)) => {
            let before_fill =
                group_apply.iter().filter(|i| matches!(slots[**i], Slot::GroupSeq { seq, .. } if seq < from)).count();
            out.apply.extend(&group_apply[..before_fill]);
            out.after_fill = out.apply.len();
            merge(&group_apply[before_fill..], &changes, &mut out.apply);
        }
        None => {
            merge(&group_apply, &changes, &mut out.apply);
            out.after_fill = out.apply.len();
        }
    }
    if wait.is_none() {
        // Nothing held: the next records are offered as they arrive.
        pending.opened_ms = None;
    }
    out.wait = wait;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OrderConfig {
        OrderConfig { gap_wait_ms: 1000, reorder_window_ms: 500, reorder_window_min_ms: 500, ..OrderConfig::default() }
    }

    /// A lane offered since long before any of these tests' records arrived.
    fn live() -> Pending {
        Pending { opened_ms: Some(0), ..Default::default() }
    }

    /// A group message at `seq`, sent before every change of these tests (at 8 s + seq ms).
    fn msg(seq: u64) -> Slot {
        Slot::GroupSeq { seq, time_ms: 8_000 + seq as i64 }
    }

    fn run(slots: &[Slot], state: &ConvOrder, pending: &mut Pending, now: Instant) -> Plan {
        let lane = Lane { slots, finished: &vec![false; slots.len()], state, group: true };
        plan(lane, pending, 10_000, now, &cfg())
    }

    fn run_c2c(slots: &[Slot], pending: &mut Pending) -> Plan {
        let lane = Lane { slots, finished: &vec![false; slots.len()], state: &ConvOrder::default(), group: false };
        plan(lane, pending, 10_000, Instant::now(), &cfg())
    }

    #[test]
    fn group_messages_go_in_seq_order_and_duplicates_are_skipped() {
        let st = ConvOrder { group_seq: Some(3), ..Default::default() };
        let slots = [msg(5), msg(4), msg(3), msg(5), msg(6)];
        let p = run(&slots, &st, &mut live(), Instant::now());
        // Seq 3 is below what was applied: applied again (legacy deduplicates it, or places a repaired one).
        assert_eq!(p.apply, vec![2, 1, 0, 4]);
        assert_eq!(p.duplicates.len(), 1, "{p:?}");
        assert_eq!(p.wait, None);
        assert_eq!(p.fill, None);
    }

    #[test]
    fn a_gap_is_held_then_filled() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let slots = [msg(4), msg(2), msg(5)];
        let mut pending = live();
        let t0 = Instant::now();
        let p = run(&slots, &st, &mut pending, t0);
        assert_eq!(p.apply, vec![1], "seq 2 goes, 4 and 5 wait for 3");
        assert_eq!(p.gap_detected, Some((3, 3)));
        assert_eq!(p.wait, Some(Duration::from_millis(1000)));
        // Seq 2 applied meanwhile; the gap stays open past the wait: fill 3, then 4 and 5.
        let st = ConvOrder { group_seq: Some(2), ..Default::default() };
        let finished = [false, true, false];
        let lane = Lane { slots: &slots, finished: &finished, state: &st, group: true };
        let p = plan(lane, &mut pending, 10_000, t0 + Duration::from_millis(1001), &cfg());
        assert_eq!(p.fill, Some((3, 3)));
        assert_eq!(p.gap_detected, None, "the same gap is counted once");
        assert_eq!((p.after_fill, p.apply), (0, vec![0, 2]));
    }

    #[test]
    fn a_late_arrival_closes_the_gap_without_a_fill() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let mut pending = live();
        let t0 = Instant::now();
        let p = run(&[msg(3)], &st, &mut pending, t0);
        assert!(p.apply.is_empty() && p.wait.is_some());
        let p = run(&[msg(3), msg(2)], &st, &mut pending, t0 + Duration::from_millis(300));
        assert_eq!(p.apply, vec![1, 0]);
        assert_eq!(p.fill, None);
        assert!(pending.gap_since.is_none());
    }

    #[test]
    fn an_unknown_group_waits_once_then_starts_at_its_lowest_seq() {
        let mut pending = live();
        let t0 = Instant::now();
        let p = run(&[msg(8)], &ConvOrder::default(), &mut pending, t0);
        assert!(p.apply.is_empty());
        let p = run(&[msg(8), msg(7)], &ConvOrder::default(), &mut pending, t0 + Duration::from_millis(1000));
        assert_eq!(p.apply, vec![1, 0]);
        // A group created now starts at seq 1: seq 2 alone is a gap.
        let p = run(&[Slot::First, msg(2)], &ConvOrder::default(), &mut live(), t0);
        assert_eq!(p.apply, vec![0]);
        assert_eq!(p.gap_detected, Some((1, 1)));
    }

    #[test]
    fn a_message_waits_behind_a_held_join_and_goes_after_a_released_one() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let join = |arrived_ms| Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms };
        // The join arrived first and is still held: the message behind it waits too.
        let later = Slot::GroupSeq { seq: 3, time_ms: 9_500 };
        let p = run(&[msg(2), join(9_900), later], &st, &mut live(), Instant::now());
        assert_eq!(p.apply, vec![0]);
        // Released: join, then the member's message, in arrival order.
        let by_the_new_member = Slot::GroupSeq { seq: 2, time_ms: 9_100 };
        let p = run(&[join(9_000), by_the_new_member], &st, &mut live(), Instant::now());
        assert_eq!(p.apply, vec![0, 1]);
    }

    #[test]
    fn a_dismissal_waits_behind_a_message_held_by_a_gap() {
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let dismissal = Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms: 8_000 };
        let p = run(&[msg(3), dismissal], &st, &mut live(), Instant::now());
        assert!(p.apply.is_empty(), "{p:?}");
        assert!(p.wait.is_some());
    }

    #[test]
    fn timed_events_wait_for_the_window_and_go_by_time_then_seq() {
        // IM's clock runs 100 s ahead of ours: the hold is measured on ours (arrival), the order on IM's.
        let t = |time_ms: i64, seq: u64, arrived_ms: i64| Slot::Timed { time_ms: time_ms + 100_000, seq, arrived_ms };
        let slots = [t(9_000, 7, 9_000), t(9_200, 5, 9_300), t(8_100, 9, 9_400), t(10_100, 1, 9_800)];
        let p = run_c2c(&slots, &mut live());
        // Same second (109 s): seq 5 before seq 7; 108.1 s first; the one of 110.1 s arrived at 9.8 s: still held.
        assert_eq!(p.apply, vec![2, 1, 0]);
        assert_eq!(p.wait, Some(Duration::from_millis(300)));
        // An earlier message that arrived after a later one goes with it, before it, even if its own hold is on.
        let slots = [t(9_500, 2, 9_000), t(9_400, 1, 9_700)];
        let p = run_c2c(&slots, &mut live());
        assert_eq!(p.apply, vec![1, 0]);
    }

    #[test]
    fn a_new_groups_changes_wait_for_its_creation() {
        // Callbacks of a group created through IM arrive concurrently: a join and a rename before the creation.
        let join = Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms: 8_000 };
        let rename = Slot::Timed { time_ms: 9_100, seq: 0, arrived_ms: 8_100 };
        let mut pending = live();
        let t0 = Instant::now();
        let p = run(&[join, rename], &ConvOrder::default(), &mut pending, t0);
        assert!(p.apply.is_empty(), "released by the window, but the group may not exist yet: {p:?}");
        assert_eq!(p.wait, Some(Duration::from_millis(1000)));
        // The creation arrives: it goes first, the rest after it.
        let p = run(&[join, rename, Slot::First], &ConvOrder::default(), &mut pending, t0 + Duration::from_millis(300));
        assert_eq!(p.apply, vec![2, 0, 1]);
        // A group created elsewhere (no creation ever comes) goes on after the wait.
        let mut pending = live();
        assert!(run(&[join], &ConvOrder::default(), &mut pending, t0).apply.is_empty());
        let p = run(&[join], &ConvOrder::default(), &mut pending, t0 + Duration::from_millis(1000));
        assert_eq!(p.apply, vec![0]);
        // A group legacy already has changes from (applied state) does not wait.
        let known = ConvOrder { members: [("u1".to_owned(), 1)].into(), ..Default::default() };
        assert_eq!(run(&[join], &known, &mut live(), t0).apply, vec![0]);
    }

    #[test]
    fn a_message_goes_before_a_later_change_that_arrived_first() {
        // The dismissal's callback overtook the group's last message: IM's times put the message first.
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let dismissal = Slot::Timed { time_ms: 9_000, seq: 0, arrived_ms: 8_000 };
        let last = Slot::GroupSeq { seq: 2, time_ms: 8_900 };
        let p = run(&[dismissal, last], &st, &mut live(), Instant::now());
        assert_eq!(p.apply, vec![1, 0]);
    }

    #[test]
    fn during_a_gap_changes_newer_than_the_last_applied_message_wait() {
        // Seq 2 is missing (a tip, or a lost callback); seq 3 waits for it, and so does a join IM made after seq 1.
        let st = ConvOrder { group_seq: Some(1), group_time: Some(8_001), ..Default::default() };
        let older = Slot::Timed { time_ms: 7_000, seq: 0, arrived_ms: 8_000 };
        let newer = Slot::Timed { time_ms: 8_002, seq: 0, arrived_ms: 8_000 };
        let p = run(&[older, newer, Slot::GroupSeq { seq: 3, time_ms: 8_500 }], &st, &mut live(), Instant::now());
        assert_eq!(p.apply, vec![0], "{p:?}");
        assert!(p.wait.is_some());
    }

    #[test]
    fn after_a_restart_old_records_wait_a_window_for_the_ones_not_fetched_yet() {
        // Both arrived long ago; a fresh instance sees the later one first (the earlier is one fetch behind).
        const LATER: Slot = Slot::Timed { time_ms: 5_200, seq: 8, arrived_ms: 5_000 };
        const EARLIER: Slot = Slot::Timed { time_ms: 5_100, seq: 7, arrived_ms: 5_000 };
        let mut pending = Pending::default();
        let (state, open) = (ConvOrder::default(), [false; 2]);
        let lane = |slots: &'static [Slot], finished| Lane { slots, finished, state: &state, group: false };
        let p = plan(lane(&[LATER], &open[..1]), &mut pending, 10_000, Instant::now(), &cfg());
        assert!(p.apply.is_empty(), "{p:?}");
        assert_eq!(p.wait, Some(Duration::from_millis(500)));
        let p = plan(lane(&[LATER, EARLIER], &open), &mut pending, 10_500, Instant::now(), &cfg());
        assert_eq!(p.apply, vec![1, 0]);
        assert_eq!(pending.opened_ms, None, "nothing held: the next records go as they arrive");
    }

    #[test]
    fn a_dismissal_goes_after_the_messages_of_its_millisecond() {
        // IM stamped the last message and the dismissal alike; the dismissal's callback came first.
        let st = ConvOrder { group_seq: Some(1), ..Default::default() };
        let dismissal = Slot::Timed { time_ms: 9_000, seq: DISMISSAL_SEQ, arrived_ms: 8_000 };
        let last = Slot::GroupSeq { seq: 2, time_ms: 9_000 };
        let p = run(&[dismissal, last], &st, &mut live(), Instant::now());
        assert_eq!(p.apply, vec![1, 0]);
    }
}
