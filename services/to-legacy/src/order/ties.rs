//! Group changes IM stamped with the same millisecond. `EventTime` is the only order IM's member and profile
//! callbacks carry, so a member invited and quitting within one millisecond, or a group renamed twice within one
//! (a bot, an admin tool, a fast client), gives callbacks that say nothing about which came first; arrival order
//! is no answer when deliveries run concurrently. IM's state now does answer it for what matters: the last change
//! of a member or a profile field must leave legacy as IM is. This module finds such ties among the events about
//! to be applied and puts them in the order IM's current state implies; the read itself is the caller's
//! ([`super::GapFiller::now`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use imbridge_core::event::GroupUpdated;
use imbridge_core::{Envelope, Event};

/// What a tie is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A member joined and left.
    Member(String),
    /// A profile field (`name`, `introduction`, `notification`, `face_url`) was set to different values.
    Field(&'static str),
}

/// Changes of one subject with the same IM time, among the events planned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tie {
    pub subject: Subject,
    /// Positions in the planned order of the events of the tie's time that change members or the profile.
    positions: Vec<usize>,
}

/// The group as IM shows it now: members, and profile field values.
#[derive(Debug, Default, Clone)]
pub struct ImNow {
    pub members: HashSet<String>,
    pub fields: BTreeMap<&'static str, String>,
}

fn fields(u: &GroupUpdated) -> [(&'static str, Option<&str>); 4] {
    [
        ("name", u.name.as_deref()),
        ("introduction", u.introduction.as_deref()),
        ("notification", u.notification.as_deref()),
        ("face_url", u.face_url.as_deref()),
    ]
}

/// The changes of one IM millisecond.
#[derive(Default)]
struct Moment<'a> {
    joined: BTreeSet<&'a str>,
    left: BTreeSet<&'a str>,
    values: BTreeMap<&'static str, BTreeSet<&'a str>>,
    positions: Vec<usize>,
}

/// The ties among `planned` (batch indices in apply order; `env(i)` the event of batch item `i`).
pub fn find<'a>(planned: &[usize], env: impl Fn(usize) -> &'a Envelope) -> Vec<Tie> {
    let mut by_time: BTreeMap<i64, Moment<'a>> = BTreeMap::new();
    for (pos, &i) in planned.iter().enumerate() {
        let e = env(i);
        let m = match &e.event {
            Event::MembersJoined(_) | Event::MembersLeft(_) | Event::GroupUpdated(_) => {
                by_time.entry(e.time.as_millis()).or_default()
            }
            _ => continue,
        };
        match &e.event {
            Event::MembersJoined(j) => m.joined.extend(j.members.iter().map(|u| u.as_str())),
            Event::MembersLeft(l) => m.left.extend(l.members.iter().map(|u| u.as_str())),
            Event::GroupUpdated(u) => {
                for (name, value) in fields(u) {
                    if let Some(v) = value {
                        m.values.entry(name).or_default().insert(v);
                    }
                }
            }
            _ => {}
        }
        m.positions.push(pos);
    }
    let mut out = Vec::new();
    for m in by_time.into_values() {
        let members = m.joined.intersection(&m.left).map(|u| Subject::Member((*u).to_owned()));
        let changed = m.values.iter().filter(|(_, v)| v.len() > 1).map(|(f, _)| Subject::Field(f));
        out.extend(members.chain(changed).map(|subject| Tie { subject, positions: m.positions.clone() }));
    }
    out
}

/// Reorders the tie's events so the subject's state after them is IM's: a member IM has ends joined, one it has
/// not ends out; a field ends at IM's value. Other events of that time keep their relative order, before them.
pub fn settle<'a>(planned: &mut [usize], tie: &Tie, now: &ImNow, env: impl Fn(usize) -> &'a Envelope) {
    // Whether event `i` leaves the subject as IM has it now (those go last).
    let as_im = |i: usize| match (&tie.subject, &env(i).event) {
        (Subject::Member(m), Event::MembersJoined(j)) => {
            now.members.contains(m) && j.members.iter().any(|u| u.as_str() == m)
        }
        (Subject::Member(m), Event::MembersLeft(l)) => {
            !now.members.contains(m) && l.members.iter().any(|u| u.as_str() == m)
        }
        (Subject::Field(f), Event::GroupUpdated(u)) => {
            fields(u).iter().any(|(name, v)| name == f && v.is_some() && *v == now.fields.get(f).map(String::as_str))
        }
        _ => false,
    };
    let mut indices: Vec<usize> = tie.positions.iter().map(|p| planned[*p]).collect();
    indices.sort_by_key(|i| as_im(*i));
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

    fn rename(name: &str, time: i64) -> Envelope {
        env(
            Event::GroupUpdated(GroupUpdated {
                group_id: g(),
                operator: None,
                name: Some(name.into()),
                introduction: None,
                notification: None,
                face_url: None,
            }),
            time,
        )
    }

    #[test]
    fn a_join_and_an_exit_in_one_millisecond_end_as_im_is() {
        let left = MembersLeft { group_id: g(), members: vec![u("ann")], reason: None, operator: None };
        let exit = env(Event::MembersLeft(left), 5);
        let join =
            env(Event::MembersJoined(MembersJoined { group_id: g(), members: vec![u("ann")], operator: None }), 5);
        let other =
            env(Event::MembersJoined(MembersJoined { group_id: g(), members: vec![u("bob")], operator: None }), 6);
        let events = [exit, join, other];
        let at = |i: usize| &events[i];
        let ties = find(&[0, 1, 2], at);
        assert_eq!(ties.len(), 1);
        assert_eq!(ties[0].subject, Subject::Member("ann".into()));
        // IM no longer has ann: the join goes first, the exit last.
        let mut planned = vec![0, 1, 2];
        settle(&mut planned, &ties[0], &ImNow::default(), at);
        assert_eq!(planned, vec![1, 0, 2]);
        // IM has ann: the exit first, the join last.
        let mut planned = vec![1, 0, 2];
        let now = ImNow { members: ["ann".to_owned()].into(), ..Default::default() };
        settle(&mut planned, &ties[0], &now, at);
        assert_eq!(planned, vec![0, 1, 2]);
        // Different milliseconds are no tie.
        assert!(find(&[0, 2], at).is_empty());
    }

    #[test]
    fn two_renames_in_one_millisecond_end_at_ims_name() {
        let events = [rename("second", 7), rename("first", 7), rename("other", 8)];
        let at = |i: usize| &events[i];
        let ties = find(&[0, 1, 2], at);
        assert_eq!(ties.len(), 1);
        assert_eq!(ties[0].subject, Subject::Field("name"));
        let now = ImNow { fields: [("name", "second".to_owned())].into(), ..Default::default() };
        let mut planned = vec![0, 1, 2];
        settle(&mut planned, &ties[0], &now, at);
        assert_eq!(planned, vec![1, 0, 2]);
        // The same value twice is no tie.
        let same = [rename("x", 7), rename("x", 7)];
        assert!(find(&[0, 1], |i| &same[i]).is_empty());
    }
}
