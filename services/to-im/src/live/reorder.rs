//! Puts an old IM app's messages back in that app's order before they are sent to the new app.
//!
//! When the old side is another IM app (`[old_side] kind = "im"`), its events are IM callbacks: concurrent,
//! unordered, stamped at delivery. The new app orders what to-im sends by arrival, so to-im must send a
//! conversation's messages in the old app's order: 1:1 by (second, `MsgSeq`) — the `admin_getroammsg` order — and
//! group messages by `MsgSeq`. Within a lane (one conversation), the earliest unapplied message (in the old app's
//! order) is sent once it has been here `window` (measured on ingest's clock, `recorded_at`), so that an earlier
//! one delayed in flight by less than that still goes first.
//!
//! Group changes keep their place in the lane, and messages pass them when they are earlier: a profile change,
//! members leaving (what a member sent came before they left) and a dismissal hold no message back; a join holds
//! back the messages of those joining (the join goes ahead of them instead); a creation, or anything that is not
//! the old app's, holds back everything behind it ([`Item`]).
//!
//! A record sent ahead of records before it in the lane is not reported done: the ledger entry written right
//! after its send is what later makes it a skip, when the lane's front reaches it. The crash window therefore
//! holds as before — at most one message per conversation sent without an entry — but it is no longer
//! necessarily the lane's first: the first call of a conversation after an assignment looks up in the new app
//! every unapplied message before the first barrier ([`super::handler`]), not only the first.
//!
//! What this cannot restore: a callback delayed more than the window behind a later one of its conversation
//! is sent after it (never dropped); and a message whose callback the old app never delivered is missing (there
//! is no reconciliation between two IM apps yet).

use std::time::Duration;

use imbridge_core::{Envelope, Event, UserId};

/// How the old IM app's events are named once ingest made them old-side events (`imbridge_im::normalize::
/// as_old_side`): `legacy:` before the IM id.
const OLD_APP_ID: &str = "legacy:im:";

/// Where a message of the old IM app sits in that app's order: (second, `MsgSeq`) for 1:1, (`MsgSeq`, 0) for a
/// group. `None` for every other event (a group change, anything of the legacy contract): it is not reordered.
pub fn old_app_position(env: &Envelope) -> Option<(i64, u64)> {
    let id = env.id.as_str().strip_prefix(OLD_APP_ID)?;
    match &env.event {
        // `c2c:<from>:<MsgSeq>_<MsgRandom>_<MsgTime>`. The second is the message's own `MsgTime`, not the
        // envelope's time: that is the callback's `EventTime`, which IM stamps at delivery.
        Event::C2cMessage(_) => {
            let mut key = id.strip_prefix("c2c:")?.rsplit(':').next()?.split('_');
            let seq = key.next()?.parse().ok()?;
            let secs = key.nth(1).and_then(|t| t.parse().ok()).unwrap_or_else(|| env.time.as_secs());
            Some((secs, seq))
        }
        // `gmsg:<group>:<MsgSeq>`
        Event::GroupMessage(_) => {
            let seq: u64 = id.strip_prefix("gmsg:")?.rsplit(':').next()?.parse().ok()?;
            Some((i64::try_from(seq).ok()?, 0))
        }
        _ => None,
    }
}

/// What one record of a lane means for the order (the lane's records in offset order, up to the batch limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message of the old app not applied yet: `position` in that app's order, `arrived_ms` when ingest got
    /// it (Unix ms), `sender` its `From_Account`.
    Message { position: (i64, u64), arrived_ms: i64, sender: UserId },
    /// Members joining, not applied yet: a message of theirs cannot be sent before it.
    Joined(Vec<UserId>),
    /// Holds no message back: applied already (the ledger skips it), a profile change, members leaving (what
    /// they sent came before), a dismissal (likewise).
    Passable,
    /// Nothing behind it goes ahead of it: a group's creation, anything not from the old app, an undecodable
    /// record.
    Barrier,
}

impl Item {
    /// The item of a decoded record; `applied` when the ledger already has it.
    pub fn of(env: &Envelope, applied: bool) -> Item {
        if applied {
            return Item::Passable;
        }
        if let Some(position) = old_app_position(env) {
            let sender = match &env.event {
                Event::C2cMessage(m) => m.from.clone(),
                Event::GroupMessage(m) => m.from.clone(),
                _ => return Item::Barrier,
            };
            let arrived_ms = env.recorded_at.unwrap_or(env.time).as_millis();
            return Item::Message { position, arrived_ms, sender };
        }
        if !env.id.as_str().starts_with(OLD_APP_ID) {
            return Item::Barrier;
        }
        match &env.event {
            Event::MembersJoined(j) => Item::Joined(j.members.clone()),
            Event::GroupCreated(_) => Item::Barrier,
            _ => Item::Passable,
        }
    }
}

/// What the lane does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Handle the lane's front record as usual.
    Front,
    /// Nothing may go yet: offer the lane again after this long.
    Wait(Duration),
    /// Handle the record at this index (after the front) first.
    Ahead(usize),
}

/// The next step for a lane: the earliest of its unapplied messages before the first barrier (ties: the first
/// in the lane), once it has waited `window` — or the join of its sender that is still ahead of it.
pub fn next_step(items: &[Item], now_ms: i64, window: Duration) -> Step {
    let end = items.iter().position(|i| *i == Item::Barrier).unwrap_or(items.len());
    let earliest = items[..end]
        .iter()
        .enumerate()
        .filter_map(|(index, item)| match item {
            Item::Message { position, arrived_ms, sender } => Some((*position, index, *arrived_ms, sender)),
            _ => None,
        })
        .min_by_key(|(position, index, ..)| (*position, *index));
    let Some((_, index, arrived_ms, sender)) = earliest else { return Step::Front };
    let due = arrived_ms.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
    if now_ms < due {
        return Step::Wait(Duration::from_millis(u64::try_from(due - now_ms).unwrap_or(0)));
    }
    let target = items[..index]
        .iter()
        .position(|item| matches!(item, Item::Joined(members) if members.contains(sender)))
        .unwrap_or(index);
    if target == 0 { Step::Front } else { Step::Ahead(target) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbridge_core::{ConversationKey, EventId, TimestampMs};

    fn m(position: (i64, u64), arrived_ms: i64, sender: &str) -> Item {
        Item::Message { position, arrived_ms, sender: UserId::new_unchecked(sender) }
    }

    #[test]
    fn the_earliest_goes_first_once_it_has_waited_the_window() {
        let w = Duration::from_millis(1_000);
        // The front is later in the old app than the record behind it.
        let items = [m((100, 7), 5_000, "a"), m((100, 3), 5_200, "a")];
        assert_eq!(
            next_step(&items, 5_500, w),
            Step::Wait(Duration::from_millis(700)),
            "the earliest waits its window"
        );
        assert_eq!(next_step(&items, 6_200, w), Step::Ahead(1));
        // Alone, or already the earliest: the front, after its window.
        assert_eq!(next_step(&items[..1], 5_400, w), Step::Wait(Duration::from_millis(600)));
        assert_eq!(next_step(&items[..1], 6_000, w), Step::Front);
        // Seconds before sequence numbers (1:1), then the lane's order for a tie (a duplicate callback).
        let items = [m((101, 1), 0, "a"), m((100, 9), 0, "b"), m((100, 9), 0, "b")];
        assert_eq!(next_step(&items, 10_000, w), Step::Ahead(1));
        assert_eq!(next_step(&[], 0, w), Step::Front, "nothing to reorder");
        assert_eq!(next_step(&[Item::Passable, Item::Barrier], 0, w), Step::Front);
    }

    #[test]
    fn messages_pass_changes_but_not_a_creation_nor_their_senders_join() {
        let w = Duration::from_millis(1_000);
        let joined = |who: &str| Item::Joined(vec![UserId::new_unchecked(who)]);
        // A rename (or anything applied already) between two inverted messages holds neither back.
        let items = [m((8, 0), 0, "a"), Item::Passable, m((7, 0), 0, "a")];
        assert_eq!(next_step(&items, 5_000, w), Step::Ahead(2));
        // Nothing passes a creation: behind it, the earlier message waits its turn.
        let items = [m((8, 0), 0, "a"), Item::Barrier, m((7, 0), 0, "a")];
        assert_eq!(next_step(&items, 5_000, w), Step::Front);
        // A newcomer's first message needs its join first: the join goes ahead, then the message.
        let items = [m((9, 0), 0, "a"), joined("x"), m((8, 0), 0, "x")];
        assert_eq!(next_step(&items, 5_000, w), Step::Ahead(1));
        let items = [joined("x"), m((9, 0), 0, "a"), m((8, 0), 0, "x")];
        assert_eq!(next_step(&items, 5_000, w), Step::Front);
        // Another member's join holds nobody else back.
        let items = [m((9, 0), 0, "a"), joined("y"), m((8, 0), 0, "x")];
        assert_eq!(next_step(&items, 5_000, w), Step::Ahead(2));
    }

    #[test]
    fn positions_come_from_the_old_apps_ids() {
        use imbridge_core::event::{C2cMessage, GroupMessage};
        use imbridge_core::{GroupId, Source, UserId};
        let env = |id: &str, conv: &str, event: Event| Envelope {
            id: EventId::from_raw(id),
            source: Source::Legacy,
            conversation: ConversationKey::parse(conv).expect("key"),
            time: TimestampMs(1_700_000_123_456),
            recorded_at: None,
            event,
        };
        let user = |u: &str| UserId::new_unchecked(u);
        let c2c = C2cMessage { from: user("ann"), to: user("bob"), body: vec![], custom_data: None };
        let gmsg =
            GroupMessage { group_id: GroupId::new_unchecked("g1"), from: user("ann"), body: vec![], custom_data: None };
        assert_eq!(
            old_app_position(&env("legacy:im:c2c:ann:42_99_1700000100", "c2c:ann:bob", Event::C2cMessage(c2c.clone()))),
            Some((1_700_000_100, 42)),
            "MsgTime, not the delivery's EventTime"
        );
        assert_eq!(
            old_app_position(&env("legacy:im:gmsg:g1:17", "group:g1", Event::GroupMessage(gmsg.clone()))),
            Some((17, 0))
        );
        // Changes: a join holds its members' messages back, a creation everything; applied, nothing.
        let joined = imbridge_core::event::MembersJoined {
            group_id: GroupId::new_unchecked("g1"),
            members: vec![user("cy")],
            operator: None,
        };
        let join =
            env("legacy:im:gevt:g1:Group.CallbackAfterNewMemberJoin:1:ab", "group:g1", Event::MembersJoined(joined));
        assert_eq!(Item::of(&join, false), Item::Joined(vec![user("cy")]));
        assert_eq!(Item::of(&join, true), Item::Passable);
        let sent = env("legacy:im:gmsg:g1:18", "group:g1", Event::GroupMessage(gmsg.clone()));
        assert!(matches!(Item::of(&sent, false), Item::Message { position: (18, 0), .. }));
        // The legacy contract's own messages keep their place.
        assert_eq!(Item::of(&env("legacy:m-2", "group:g1", Event::GroupMessage(gmsg.clone())), false), Item::Barrier);
        assert_eq!(old_app_position(&env("legacy:m-1", "c2c:ann:bob", Event::C2cMessage(c2c))), None);
        assert_eq!(old_app_position(&env("legacy:im:gmsg:g1:x", "group:g1", Event::GroupMessage(gmsg))), None);
    }
}
