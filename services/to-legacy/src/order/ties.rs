//! Joins and exits IM stamped with the same millisecond. `EventTime` is the only order IM's member callbacks
//! carry, and a member invited and quitting within one millisecond (a bot, an admin tool, a fast client) gives two
//! callbacks that say nothing about which came first; arrival order is no answer when deliveries run
//! concurrently. IM's membership now does answer it for what matters: the member's last change must leave legacy
//! as IM is. This module finds such ties among the events about to be applied and puts them in the order IM's
//! current membership implies; the read itself is the caller's ([`super::GapFiller::members`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use imbridge_core::{Envelope, Event};

/// One member's join and exit with the same IM time, among the events planned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tie {
    pub member: String,
    /// Positions in the planned order of the events of the tie's time that join or remove members.
    positions: Vec<usize>,
}

/// The member changes of one IM millisecond: who joined, who left, and where those events are in the plan.
#[derive(Default)]
struct Moment<'a> {
    joined: BTreeSet<&'a str>,
    left: BTreeSet<&'a str>,
    positions: Vec<usize>,
}

/// The ties among `planned` (batch indices in apply order; `env(i)` the event of batch item `i`).
pub fn find<'a>(planned: &[usize], env: impl Fn(usize) -> &'a Envelope) -> Vec<Tie> {
    let mut by_time: BTreeMap<i64, Moment<'a>> = BTreeMap::new();
    for (pos, &i) in planned.iter().enumerate() {
        let e = env(i);
        let (joined, left) = match &e.event {
            Event::MembersJoined(j) => (j.members.iter().map(|m| m.as_str()).collect(), Vec::new()),
            Event::MembersLeft(l) => (Vec::new(), l.members.iter().map(|m| m.as_str()).collect()),
            _ => continue,
        };
        let moment = by_time.entry(e.time.as_millis()).or_default();
        moment.joined.extend(joined);
        moment.left.extend(left);
        moment.positions.push(pos);
    }
    by_time
        .into_values()
        .flat_map(|m| {
            m.joined
                .intersection(&m.left)
                .map(|member| Tie { member: (*member).to_owned(), positions: m.positions.clone() })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Reorders the tie's events so the member's state after them is IM's: a member IM has ends joined (exits
/// first), one it has not ends out (joins first). Other events of that time keep their relative order.
pub fn settle<'a>(planned: &mut [usize], tie: &Tie, in_im: &HashSet<String>, env: impl Fn(usize) -> &'a Envelope) {
    let member_in_im = in_im.contains(&tie.member);
    let touches = |i: usize, joins: bool| match &env(i).event {
        Event::MembersJoined(j) if joins => j.members.iter().any(|m| m.as_str() == tie.member),
        Event::MembersLeft(l) if !joins => l.members.iter().any(|m| m.as_str() == tie.member),
        _ => false,
    };
    let mut indices: Vec<usize> = tie.positions.iter().map(|p| planned[*p]).collect();
    // Last: the change that leaves the member as IM has them.
    indices.sort_by_key(|i| touches(*i, member_in_im));
    for (p, i) in tie.positions.iter().zip(indices) {
        planned[*p] = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbridge_core::event::{MembersJoined, MembersLeft};
    use imbridge_core::{EventId, GroupId, Source, TimestampMs, UserId};

    fn env(event: Event, time: i64) -> Envelope {
        Envelope {
            id: EventId::from_raw(format!("e{time}")),
            source: Source::Im,
            conversation: event.conversation(),
            time: TimestampMs(time),
            recorded_at: None,
            event,
        }
    }

    fn g() -> GroupId {
        GroupId::parse("g1").expect("group")
    }

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("user")
    }

    #[test]
    fn a_join_and_an_exit_in_one_millisecond_end_as_im_is() {
        let exit = env(
            Event::MembersLeft(MembersLeft { group_id: g(), members: vec![u("ann")], reason: None, operator: None }),
            5,
        );
        let join =
            env(Event::MembersJoined(MembersJoined { group_id: g(), members: vec![u("ann")], operator: None }), 5);
        let other =
            env(Event::MembersJoined(MembersJoined { group_id: g(), members: vec![u("bob")], operator: None }), 6);
        let events = [exit, join, other];
        let at = |i: usize| &events[i];
        let ties = find(&[0, 1, 2], at);
        assert_eq!(ties.len(), 1);
        assert_eq!(ties[0].member, "ann");
        // IM no longer has ann: the join goes first, the exit last.
        let mut planned = vec![0, 1, 2];
        settle(&mut planned, &ties[0], &HashSet::new(), at);
        assert_eq!(planned, vec![1, 0, 2]);
        // IM has ann: the exit first, the join last.
        let mut planned = vec![1, 0, 2];
        settle(&mut planned, &ties[0], &["ann".to_owned()].into(), at);
        assert_eq!(planned, vec![0, 1, 2]);
        // Different milliseconds are no tie.
        assert!(find(&[0, 2], at).is_empty());
    }
}
