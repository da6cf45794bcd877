//! TEST-ONLY hooks: change the emulated IM's data behind its back, in ways no REST call can (a stored message
//! rewritten, two messages in each other's place, a friend or a member gone without a notice, a member's role
//! changed).
//!
//! They exist so tests of a checker — `imbridge verify`, which must fail when IM differs from the export — can
//! corrupt IM precisely, one item at a time, without side effects (a REST `delete_group_member` would also
//! consume a group seq for its notice and so change every member's unread count). Nothing in the pipeline or
//! the `imbridge` binary calls them, and they are not reachable over HTTP. Each returns `false` when the
//! named item does not exist, so a test can assert that its corruption actually happened.

use serde_json::Value;

use crate::Emulator;
use crate::state::{Role, pair_key};

/// Direct, unvalidated changes to an emulator's state (see the module docs). From [`Emulator::tamper`].
#[derive(Debug)]
pub struct Tamper<'a> {
    emulator: &'a Emulator,
}

impl Emulator {
    /// TEST-ONLY: hooks that change the data without going through IM's rules (see [`crate::testing`]).
    pub fn tamper(&self) -> Tamper<'_> {
        Tamper { emulator: self }
    }
}

impl Tamper<'_> {
    /// Stored messages of the 1:1 conversation of `a` and `b` (both directions).
    pub fn c2c_len(&self, a: &str, b: &str) -> usize {
        self.emulator.with_state(|st| st.conversations.get(&pair_key(a, b)).map_or(0, |c| c.msgs.len()))
    }

    /// Deletes the `index`-th stored message (IM's order: time, then MsgSeq) of a 1:1 conversation.
    pub fn remove_c2c_message(&self, a: &str, b: &str, index: usize) -> bool {
        self.emulator.with_state(|st| {
            let Some(c) = st.conversations.get_mut(&pair_key(a, b)) else { return false };
            if index >= c.msgs.len() {
                return false;
            }
            let m = c.msgs.remove(index);
            c.dedup.remove(&(m.seq, m.random, m.time));
            true
        })
    }

    /// Replaces the `MsgBody` of the `index`-th stored message of a 1:1 conversation.
    pub fn set_c2c_body(&self, a: &str, b: &str, index: usize, body: Value) -> bool {
        self.emulator.with_state(|st| {
            match st.conversations.get_mut(&pair_key(a, b)).and_then(|c| c.msgs.get_mut(index)) {
                Some(m) => {
                    m.body = body;
                    true
                }
                None => false,
            }
        })
    }

    /// Swaps the timestamps of two stored messages of a 1:1 conversation and re-sorts it, so IM lists each in
    /// the other's place (C2C history is ordered by time, then MsgSeq). `false` also when both have one time.
    pub fn swap_c2c_times(&self, a: &str, b: &str, i: usize, j: usize) -> bool {
        self.emulator.with_state(|st| {
            let Some(c) = st.conversations.get_mut(&pair_key(a, b)) else { return false };
            if i >= c.msgs.len() || j >= c.msgs.len() || c.msgs[i].time == c.msgs[j].time {
                return false;
            }
            let (ti, tj) = (c.msgs[i].time, c.msgs[j].time);
            c.msgs[i].time = tj;
            c.msgs[j].time = ti;
            c.msgs.sort_by_key(|m| (m.time, m.seq, m.serial));
            c.dedup = c.msgs.iter().map(|m| (m.seq, m.random, m.time)).collect();
            true
        })
    }

    /// Stored messages of a group (notices included), in seq order.
    pub fn group_msg_len(&self, group: &str) -> usize {
        self.emulator.with_state(|st| st.groups.get(group).map_or(0, |g| g.msgs.len()))
    }

    /// Swaps two stored group messages' contents (sender, time, Random, body, …) while each keeps its seq, so
    /// the group's history lists them in the wrong order. Indexes count stored messages and notices alike.
    pub fn swap_group_messages(&self, group: &str, i: usize, j: usize) -> bool {
        self.emulator.with_state(|st| {
            let Some(g) = st.groups.get_mut(group) else { return false };
            if i >= g.msgs.len() || j >= g.msgs.len() || i == j {
                return false;
            }
            let (si, sj) = (g.msgs[i].seq, g.msgs[j].seq);
            g.msgs.swap(i, j);
            g.msgs[i].seq = si;
            g.msgs[j].seq = sj;
            true
        })
    }

    /// Removes `friend` from `user`'s friend list (one direction only, as IM stores them).
    pub fn remove_friend(&self, user: &str, friend: &str) -> bool {
        self.emulator.with_state(|st| {
            let Some(a) = st.accounts.get_mut(user) else { return false };
            let before = a.friends.len();
            a.friends.retain(|f| f.to != friend);
            a.friends.len() < before
        })
    }

    /// Removes a member from a group without a notice (no seq consumed, nobody's unread changes).
    pub fn remove_group_member(&self, group: &str, member: &str) -> bool {
        self.emulator.with_state(|st| st.groups.get_mut(group).is_some_and(|g| g.members.remove(member).is_some()))
    }

    /// Sets a member's role: `Owner`, `Admin` or `Member` (anything else is refused with `false`). The group's
    /// owner field is left alone.
    pub fn set_member_role(&self, group: &str, member: &str, role: &str) -> bool {
        let role = match role {
            "Owner" => Role::Owner,
            "Admin" => Role::Admin,
            "Member" => Role::Member,
            _ => return false,
        };
        self.emulator.with_state(|st| match st.groups.get_mut(group).and_then(|g| g.members.get_mut(member)) {
            Some(m) => {
                m.role = role;
                true
            }
            None => false,
        })
    }
}
