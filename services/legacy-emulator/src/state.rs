//! The emulated legacy system's data and every change it can make, free of I/O.
//!
//! Two kinds of writes change it:
//!
//! - **native** writes (its own users, through the REST API): each returns the contract event describing
//!   the change, which the caller queues on the webhook outbox in the same critical section, so the outbox
//!   order is the order changes happened in;
//! - **applied** writes (imbridge, through `/v1/apply`): idempotent by event id; the event's `origin` is
//!   recorded on what it created, and an event with `"origin":"im"` is never queued as a webhook (unless
//!   `echo_webhooks` asks for it in tests) — that is how this side prevents echo.
//!
//! Dismissing a group deletes it with its history, as IM's `destroy_group` does, so both sides can compare.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupType, GroupUpdated, ImportFriendship, ImportProfile,
    LeaveReason, MemberRole, MembersJoined, MembersLeft,
};
use imbridge_core::export::{GroupProfile, GroupRecord, Typed};
use imbridge_core::{ConversationKey, Element, GroupId, TimestampMs, UserId};
use imbridge_legacy::read::{
    ConversationAnswer, ConversationDigest, DepartedMember, GroupMemberState, GroupState, MAX_READ_MESSAGES,
    MessageDigest, StoredMessage, Window,
};
use imbridge_legacy::{ContractEvent, EventData, Origin};
use serde::{Deserialize, Serialize};

/// An account, with its profile when it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    pub created_at: TimestampMs,
    /// The export's profile record, kept whole so an export round trip loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ImportProfile>,
}

impl User {
    pub fn new(user_id: UserId, created_at: TimestampMs) -> Self {
        Self { user_id, nick: None, face_url: None, created_at, profile: None }
    }
}

/// A stored 1:1 or group message, as the contract's read endpoints return it.
pub type Message = StoredMessage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub role: MemberRole,
    /// Absent only for seeded members whose export line had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<TimestampMs>,
    /// Messages from others since this member last read the group.
    pub unread: u32,
    /// Who made the membership (`im`: imbridge applied it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A former member's last leave, kept so the read endpoint can say which side changed a membership last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Departed {
    pub left_at: TimestampMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A group: its export line (profile, type, creation) and what the emulator keeps beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    #[serde(flatten)]
    pub record: GroupRecord<Typed>,
    /// When the profile (name, introduction, notification, face URL) last changed: the changing event's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_updated_at: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub members: BTreeMap<UserId, Member>,
    /// Former members (not members now) and their last leave.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub departed: BTreeMap<UserId, Departed>,
    /// In the conversation's order (see [`insert_in_order`]).
    pub messages: Vec<Message>,
}

/// Running totals, for tests and `/api/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Events applied through `/v1/apply` for the first time.
    pub applied: u64,
    /// Events `/v1/apply` had already applied (answered without a second effect).
    pub apply_duplicates: u64,
    /// Events ingest accepted.
    pub webhooks_delivered: u64,
    /// Events ingest refused for good (400/422): a bug on one side, logged and skipped.
    pub webhooks_rejected: u64,
    /// Webhook requests that failed transiently and were retried.
    pub webhook_retries: u64,
}

/// The whole emulated system; also the `--state` snapshot's format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Next number for ids the emulator assigns (`<prefix>-<n>`).
    pub next_seq: u64,
    pub users: BTreeMap<UserId, User>,
    /// user → friend → entry.
    pub friends: BTreeMap<UserId, BTreeMap<UserId, ImportFriendship>>,
    pub c2c: BTreeMap<ConversationKey, Vec<Message>>,
    /// reader → peer → read up to.
    pub reads: BTreeMap<UserId, BTreeMap<UserId, TimestampMs>>,
    pub groups: BTreeMap<GroupId, Group>,
    /// Dismissed groups and when, so a read can say a group is gone on purpose.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dismissed: BTreeMap<GroupId, TimestampMs>,
    /// Ids of every event applied through `/v1/apply`: the idempotency record.
    pub applied_ids: BTreeSet<String>,
    /// Webhook events not yet accepted by ingest, oldest first.
    pub outbox: VecDeque<ContractEvent>,
    pub counters: Counters,
}

/// Why a write is refused. Native writes map these to HTTP statuses; applied ones answer 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
}

/// What an apply of one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    New,
    Duplicate,
}

fn parse_user(field: &str, s: &str) -> Result<UserId, Refusal> {
    UserId::parse(s).map_err(|e| Refusal::Invalid(format!("{field}: {e}")))
}

fn parse_group(s: &str) -> Result<GroupId, Refusal> {
    GroupId::parse(s).map_err(|e| Refusal::Invalid(format!("group_id: {e}")))
}

/// A native profile change request: `None` fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub introduction: Option<String>,
    pub notification: Option<String>,
    pub face_url: Option<String>,
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_seq += 1;
        format!("{prefix}-{}", self.next_seq)
    }

    /// Keeps ids the emulator assigns from colliding with seeded ones of the same shape.
    pub fn reserve_id(&mut self, prefix: &str, id: &str) {
        if let Some(n) = id.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')).and_then(|n| n.parse::<u64>().ok()) {
            self.next_seq = self.next_seq.max(n);
        }
    }

    fn user_exists(&self, field: &str, u: &UserId) -> Result<(), Refusal> {
        if self.users.contains_key(u) { Ok(()) } else { Err(Refusal::NotFound(format!("{field}: no user {u}"))) }
    }

    fn group_mut(&mut self, g: &GroupId) -> Result<&mut Group, Refusal> {
        self.groups.get_mut(g).ok_or_else(|| Refusal::NotFound(format!("no group {g}")))
    }

    /// Creates a user if it is not known yet (applied events may name users created on IM).
    fn ensure_user(&mut self, u: &UserId, at: TimestampMs) {
        self.users.entry(u.clone()).or_insert_with(|| User::new(u.clone(), at));
    }

    // ---- native writes ---------------------------------------------------------------------------

    /// Validates a native change, names it with the next id and makes it. Validation comes first so a
    /// refused request does not use up an id.
    fn record(&mut self, prefix: &str, data: EventData, now: TimestampMs) -> Result<ContractEvent, Refusal> {
        data.validate().map_err(Refusal::Invalid)?;
        let ev = ContractEvent { id: self.next_id(prefix), time: now, origin: None, data };
        self.store(&ev);
        Ok(ev)
    }

    /// Creates or replaces a user's account and profile. Accounts have no contract event.
    pub fn put_user(&mut self, user: User) {
        self.users.insert(user.user_id.clone(), user);
    }

    /// Makes two users friends in both directions.
    pub fn add_friends(&mut self, a: &str, b: &str, remark: Option<String>, now: TimestampMs) -> Result<(), Refusal> {
        let (a, b) = (parse_user("user_id", a)?, parse_user("friend_id", b)?);
        if a == b {
            return Err(Refusal::Invalid("a user cannot befriend themself".into()));
        }
        self.user_exists("user_id", &a)?;
        self.user_exists("friend_id", &b)?;
        let entry = |user_id: &UserId, friend_id: &UserId, remark| ImportFriendship {
            user_id: user_id.clone(),
            friend_id: friend_id.clone(),
            add_source: "legacy".into(),
            remark,
            groups: None,
            add_wording: None,
            added_at: Some(now),
        };
        self.friends.entry(a.clone()).or_default().insert(b.clone(), entry(&a, &b, remark));
        self.friends.entry(b.clone()).or_default().insert(a.clone(), entry(&b, &a, None));
        Ok(())
    }

    /// `user` has read everything `peer` sent up to `at`.
    pub fn mark_read(&mut self, user: &str, peer: &str, at: TimestampMs) -> Result<(), Refusal> {
        let (u, p) = (parse_user("user_id", user)?, parse_user("peer_id", peer)?);
        self.user_exists("user_id", &u)?;
        self.user_exists("peer_id", &p)?;
        let slot = self.reads.entry(u).or_default().entry(p).or_default();
        *slot = (*slot).max(at);
        Ok(())
    }

    /// Clears a member's unread count in a group.
    pub fn mark_group_read(&mut self, group: &str, user: &str) -> Result<(), Refusal> {
        let (g, u) = (parse_group(group)?, parse_user("user_id", user)?);
        let grp = self.group_mut(&g)?;
        let m = grp.members.get_mut(&u).ok_or_else(|| Refusal::NotFound(format!("{u} is not in {g}")))?;
        m.unread = 0;
        Ok(())
    }

    pub fn send_c2c(
        &mut self,
        prefix: &str,
        from: &str,
        to: &str,
        body: Vec<Element>,
        custom_data: Option<String>,
        now: TimestampMs,
    ) -> Result<ContractEvent, Refusal> {
        let (from, to) = (parse_user("from", from)?, parse_user("to", to)?);
        self.user_exists("from", &from)?;
        self.user_exists("to", &to)?;
        let data = EventData::C2cMessage(C2cMessage { from, to, body, custom_data });
        self.record(prefix, data, now)
    }

    pub fn send_group(
        &mut self,
        prefix: &str,
        group: &str,
        from: &str,
        body: Vec<Element>,
        custom_data: Option<String>,
        now: TimestampMs,
    ) -> Result<ContractEvent, Refusal> {
        let (group_id, from) = (parse_group(group)?, parse_user("from", from)?);
        let g = self.groups.get(&group_id).ok_or_else(|| Refusal::NotFound(format!("no group {group_id}")))?;
        if !g.members.contains_key(&from) {
            return Err(Refusal::Forbidden(format!("{from} is not a member of {group_id}")));
        }
        self.record(prefix, EventData::GroupMessage(GroupMessage { group_id, from, body, custom_data }), now)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_group(
        &mut self,
        prefix: &str,
        group_id: Option<&str>,
        group_type: GroupType,
        name: String,
        owner: &str,
        introduction: Option<String>,
        notification: Option<String>,
        face_url: Option<String>,
        members: &[String],
        now: TimestampMs,
    ) -> Result<ContractEvent, Refusal> {
        let owner = parse_user("owner", owner)?;
        self.user_exists("owner", &owner)?;
        let mut initial = Vec::new();
        for m in members {
            let u = parse_user("members[]", m)?;
            self.user_exists("members[]", &u)?;
            if u != owner && !initial.contains(&u) {
                initial.push(u);
            }
        }
        let group_id = match group_id {
            Some(g) => parse_group(g)?,
            // Named after the event that creates it, so the id is unique and tells where it came from.
            None => GroupId::new_unchecked(format!("{prefix}-g{}", self.next_seq + 1)),
        };
        if self.groups.contains_key(&group_id) {
            return Err(Refusal::Conflict(format!("group {group_id} already exists")));
        }
        self.record(
            prefix,
            EventData::GroupCreated(GroupCreated {
                group_id,
                group_type,
                profile: GroupProfile { name, owner: Some(owner), introduction, notification, face_url },
                members: initial,
            }),
            now,
        )
    }

    pub fn update_group(
        &mut self,
        prefix: &str,
        group: &str,
        operator: Option<&str>,
        patch: ProfilePatch,
        now: TimestampMs,
    ) -> Result<ContractEvent, Refusal> {
        let group_id = parse_group(group)?;
        let operator = operator.map(|o| parse_user("operator", o)).transpose()?;
        self.group_mut(&group_id)?;
        self.record(
            prefix,
            EventData::GroupUpdated(GroupUpdated {
                group_id,
                operator,
                name: patch.name,
                introduction: patch.introduction,
                notification: patch.notification,
                face_url: patch.face_url,
            }),
            now,
        )
    }

    /// Adds members; `None` when every one of them was already in the group (nothing changed, no event).
    pub fn add_members(
        &mut self,
        prefix: &str,
        group: &str,
        members: &[String],
        operator: Option<&str>,
        now: TimestampMs,
    ) -> Result<Option<ContractEvent>, Refusal> {
        let group_id = parse_group(group)?;
        let operator = operator.map(|o| parse_user("operator", o)).transpose()?;
        let mut new = Vec::new();
        for m in members {
            let u = parse_user("members[]", m)?;
            self.user_exists("members[]", &u)?;
            if !new.contains(&u) {
                new.push(u);
            }
        }
        let g = self.group_mut(&group_id)?;
        new.retain(|u| !g.members.contains_key(u));
        if new.is_empty() {
            return Ok(None);
        }
        self.record(prefix, EventData::MembersJoined(MembersJoined { group_id, members: new, operator }), now).map(Some)
    }

    /// Removes members (kicked by `operator`, or `quit` when a user leaves). The owner cannot leave or be
    /// removed, as in IM: the group must be dismissed instead.
    pub fn remove_members(
        &mut self,
        prefix: &str,
        group: &str,
        members: &[String],
        reason: LeaveReason,
        operator: Option<&str>,
        now: TimestampMs,
    ) -> Result<ContractEvent, Refusal> {
        let group_id = parse_group(group)?;
        let operator = operator.map(|o| parse_user("operator", o)).transpose()?;
        let g = self.group_mut(&group_id)?;
        let mut gone = Vec::new();
        for m in members {
            let u = parse_user("members[]", m)?;
            if !g.members.contains_key(&u) {
                return Err(Refusal::NotFound(format!("{u} is not in {group_id}")));
            }
            if g.record.profile.owner.as_ref() == Some(&u) {
                return Err(Refusal::Conflict(format!("{u} owns {group_id}; dismiss the group instead")));
            }
            if !gone.contains(&u) {
                gone.push(u);
            }
        }
        if gone.is_empty() {
            return Err(Refusal::Invalid("members is empty".into()));
        }
        let data = EventData::MembersLeft(MembersLeft { group_id, members: gone, reason: Some(reason), operator });
        self.record(prefix, data, now)
    }

    pub fn dismiss_group(&mut self, prefix: &str, group: &str, now: TimestampMs) -> Result<ContractEvent, Refusal> {
        let group_id = parse_group(group)?;
        self.group_mut(&group_id)?;
        self.record(prefix, EventData::GroupDismissed(GroupDismissed { group_id }), now)
    }

    // ---- applied writes ----------------------------------------------------------------------------

    /// Applies one contract event written by imbridge. A repeat of an applied id changes nothing.
    ///
    /// Applied events are more lenient than native writes where the other side may legitimately know more:
    /// users created on IM are created here on first sight, and a dismissal of an unknown group is done.
    /// What cannot apply (a message to a group that does not exist) is refused, which the caller answers
    /// with 422 so imbridge dead-letters it.
    pub fn apply(&mut self, ev: &ContractEvent) -> Result<Applied, Refusal> {
        if self.applied_ids.contains(&ev.id) {
            self.counters.apply_duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        match &ev.data {
            EventData::C2cMessage(m) => {
                self.ensure_user(&m.from, ev.time);
                self.ensure_user(&m.to, ev.time);
            }
            EventData::GroupMessage(m) => {
                self.group_mut(&m.group_id)?;
                self.ensure_user(&m.from, ev.time);
            }
            EventData::GroupCreated(c) => {
                if self.groups.contains_key(&c.group_id) {
                    return Err(Refusal::Conflict(format!("group {} already exists", c.group_id)));
                }
                for u in c.profile.owner.iter().chain(&c.members) {
                    self.ensure_user(u, ev.time);
                }
            }
            EventData::GroupUpdated(u) => {
                self.group_mut(&u.group_id)?;
            }
            EventData::GroupDismissed(_) => {}
            EventData::MembersJoined(j) => {
                self.group_mut(&j.group_id)?;
                for u in &j.members {
                    self.ensure_user(u, ev.time);
                }
            }
            EventData::MembersLeft(l) => {
                self.group_mut(&l.group_id)?;
            }
        }
        self.store(ev);
        self.applied_ids.insert(ev.id.clone());
        self.counters.applied += 1;
        Ok(Applied::New)
    }

    /// Makes the change an event describes. Callers have checked that it can apply.
    fn store(&mut self, ev: &ContractEvent) {
        let time = ev.time;
        match &ev.data {
            EventData::C2cMessage(m) => {
                let key = ConversationKey::c2c(&m.from, &m.to);
                insert_in_order(
                    self.c2c.entry(key).or_default(),
                    Message {
                        id: ev.id.clone(),
                        from: m.from.clone(),
                        to: Some(m.to.clone()),
                        time,
                        body: m.body.clone(),
                        custom_data: m.custom_data.clone(),
                        origin: ev.origin,
                    },
                );
            }
            EventData::GroupMessage(m) => {
                if let Some(g) = self.groups.get_mut(&m.group_id) {
                    for (u, member) in g.members.iter_mut() {
                        if *u != m.from {
                            member.unread = member.unread.saturating_add(1);
                        }
                    }
                    insert_in_order(
                        &mut g.messages,
                        Message {
                            id: ev.id.clone(),
                            from: m.from.clone(),
                            to: None,
                            time,
                            body: m.body.clone(),
                            custom_data: m.custom_data.clone(),
                            origin: ev.origin,
                        },
                    );
                }
            }
            EventData::GroupCreated(c) => {
                let mut members = BTreeMap::new();
                let member = |role| Member { role, joined_at: Some(time), unread: 0, origin: ev.origin };
                for u in &c.members {
                    members.insert(u.clone(), member(MemberRole::Member));
                }
                if let Some(o) = &c.profile.owner {
                    members.insert(o.clone(), member(MemberRole::Owner));
                }
                self.dismissed.remove(&c.group_id);
                self.groups.insert(
                    c.group_id.clone(),
                    Group {
                        record: GroupRecord {
                            group_id: c.group_id.clone(),
                            group_type: c.group_type,
                            profile: c.profile.clone(),
                            max_members: None,
                            apply_join: None,
                            created_at: time,
                        },
                        profile_updated_at: Some(time),
                        origin: ev.origin,
                        members,
                        departed: BTreeMap::new(),
                        messages: Vec::new(),
                    },
                );
            }
            EventData::GroupUpdated(u) => {
                if let Some(g) = self.groups.get_mut(&u.group_id) {
                    let p = &mut g.record.profile;
                    if let Some(v) = &u.name {
                        p.name.clone_from(v);
                    }
                    if let Some(v) = &u.introduction {
                        p.introduction = Some(v.clone());
                    }
                    if let Some(v) = &u.notification {
                        p.notification = Some(v.clone());
                    }
                    if let Some(v) = &u.face_url {
                        p.face_url = Some(v.clone());
                    }
                    g.profile_updated_at = Some(time);
                }
            }
            EventData::GroupDismissed(d) => {
                if self.groups.remove(&d.group_id).is_some() {
                    self.dismissed.insert(d.group_id.clone(), time);
                }
            }
            EventData::MembersJoined(j) => {
                if let Some(g) = self.groups.get_mut(&j.group_id) {
                    for u in &j.members {
                        g.departed.remove(u);
                        g.members.entry(u.clone()).or_insert(Member {
                            role: MemberRole::Member,
                            joined_at: Some(time),
                            unread: 0,
                            origin: ev.origin,
                        });
                    }
                }
            }
            EventData::MembersLeft(l) => {
                if let Some(g) = self.groups.get_mut(&l.group_id) {
                    for u in &l.members {
                        if g.members.remove(u).is_some() {
                            g.departed.insert(u.clone(), Departed { left_at: time, origin: ev.origin });
                        }
                    }
                }
            }
        }
    }

    // ---- contract reads -------------------------------------------------------------------------

    /// Digests of every conversation (1:1 and group) with a message in `window`, sorted by key.
    pub fn digests(&self, window: Window) -> Vec<ConversationDigest> {
        let c2c = self.c2c.iter().map(|(k, msgs)| (k.clone(), msgs.as_slice()));
        let groups = self.groups.values().map(|g| (ConversationKey::group(&g.record.group_id), g.messages.as_slice()));
        let mut out: Vec<ConversationDigest> = c2c
            .chain(groups)
            .filter_map(|(key, msgs)| {
                let mut d = MessageDigest::new();
                for m in msgs.iter().filter(|m| window.contains(m.time)) {
                    d.add(&m.id, m.time, &m.from, &m.body);
                }
                let d = d.finish(key);
                (d.count > 0).then_some(d)
            })
            .collect();
        out.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        out
    }

    /// One conversation's messages in `window` (at most [`MAX_READ_MESSAGES`]) and, for a group, its state.
    pub fn read_conversation(&self, conversation: &ConversationKey, window: Window) -> ConversationAnswer {
        let (msgs, group) = match conversation.as_str().split_once(':') {
            Some(("group", g)) => match self.groups.get(&GroupId::new_unchecked(g)) {
                Some(grp) => (grp.messages.as_slice(), Some(group_state(grp))),
                None => (&[][..], None),
            },
            _ => (self.c2c.get(conversation).map(Vec::as_slice).unwrap_or_default(), None),
        };
        let mut in_window = msgs.iter().filter(|m| window.contains(m.time));
        let messages: Vec<StoredMessage> = in_window.by_ref().take(MAX_READ_MESSAGES).cloned().collect();
        let truncated = in_window.next().is_some();
        let dismissed_at = conversation.group_id().and_then(|g| self.dismissed.get(&g).copied());
        ConversationAnswer { conversation: conversation.clone(), messages, truncated, group, dismissed_at }
    }

    /// Totals for `/api/stats`.
    pub fn stats(&self) -> Stats {
        Stats {
            users: self.users.len(),
            friendships: self.friends.values().map(BTreeMap::len).sum(),
            c2c_conversations: self.c2c.len(),
            c2c_messages: self.c2c.values().map(Vec::len).sum(),
            groups: self.groups.len(),
            group_members: self.groups.values().map(|g| g.members.len()).sum(),
            group_messages: self.groups.values().map(|g| g.messages.len()).sum(),
            outbox_pending: self.outbox.len(),
            counters: self.counters,
        }
    }
}

fn group_state(g: &Group) -> GroupState {
    GroupState {
        group_id: g.record.group_id.clone(),
        group_type: g.record.group_type,
        profile: g.record.profile.clone(),
        profile_updated_at: g.profile_updated_at.or(Some(g.record.created_at)),
        // A BTreeMap iterates in key order: members come sorted by user id, as the contract says.
        members: g
            .members
            .iter()
            .map(|(u, m)| GroupMemberState {
                user_id: u.clone(),
                role: m.role,
                joined_at: m.joined_at,
                origin: m.origin,
            })
            .collect(),
        origin: g.origin,
        departed: g
            .departed
            .iter()
            .map(|(u, d)| DepartedMember { user_id: u.clone(), left_at: d.left_at, origin: d.origin })
            .collect(),
    }
}

/// Stores a message at its place in the conversation's order, which the contract fixes: in the order stored,
/// except that a message is placed before the first message *from the same system* (legacy's own, or copies of
/// IM's) whose time falls in a later second. One system's times share a clock, so a late message (a repair, a
/// filled gap) lands where it belongs among its own system's; across the two systems only arrival order means
/// anything (their clocks differ). Seconds: IM's history gives whole seconds, its callbacks milliseconds.
fn insert_in_order(msgs: &mut Vec<Message>, m: Message) {
    let second = m.time.0.div_euclid(1000);
    let from_im = m.origin == Some(Origin::Im);
    let mut pos = msgs.len();
    // The same system's messages are already in this order, so the scan stops at the first one not later.
    for (i, x) in msgs.iter().enumerate().rev() {
        if (x.origin == Some(Origin::Im)) == from_im {
            if x.time.0.div_euclid(1000) > second {
                pos = i;
            } else {
                break;
            }
        }
    }
    msgs.insert(pos, m);
}

/// What `/api/stats` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub users: usize,
    /// Directed friend entries (a mutual friendship counts twice, as in the export).
    pub friendships: usize,
    pub c2c_conversations: usize,
    pub c2c_messages: usize,
    pub groups: usize,
    pub group_members: usize,
    pub group_messages: usize,
    /// Webhook events waiting for ingest.
    pub outbox_pending: usize,
    #[serde(flatten)]
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User::new(UserId::parse(id).expect("valid"), TimestampMs(1))
    }

    fn text(t: &str) -> Vec<Element> {
        vec![Element::Text { text: t.into() }]
    }

    #[test]
    fn native_group_lifecycle_produces_events_in_order() {
        let mut s = State::default();
        for u in ["ann", "bob", "cy"] {
            s.put_user(user(u));
        }
        let now = TimestampMs(10);
        let c = s
            .create_group("lg", Some("g"), GroupType::Public, "G".into(), "ann", None, None, None, &["bob".into()], now)
            .expect("create");
        assert_eq!(c.id, "lg-1");
        assert_eq!(s.groups[&GroupId::new_unchecked("g")].members.len(), 2);
        assert!(s.send_group("lg", "g", "cy", text("x"), None, now).is_err(), "non-member cannot send");
        s.send_group("lg", "g", "bob", text("hi"), None, now).expect("send");
        assert_eq!(s.groups[&GroupId::new_unchecked("g")].members[&UserId::parse("ann").expect("u")].unread, 1);
        assert_eq!(s.add_members("lg", "g", &["bob".into()], None, now).expect("noop"), None);
        s.add_members("lg", "g", &["cy".into()], Some("ann"), now).expect("add").expect("event");
        assert!(matches!(
            s.remove_members("lg", "g", &["ann".into()], LeaveReason::Quit, None, now),
            Err(Refusal::Conflict(_))
        ));
        s.remove_members("lg", "g", &["cy".into()], LeaveReason::Kicked, Some("ann"), now).expect("kick");
        let d = s.dismiss_group("lg", "g", now).expect("dismiss");
        assert_eq!(d.id, "lg-5", "refused requests use no id");
        assert!(s.groups.is_empty());
    }

    #[test]
    fn apply_is_idempotent_and_records_origin() {
        let mut s = State::default();
        let ev = ContractEvent::from_value(&serde_json::json!({"id":"im:c2c:bob:1","type":"c2c.message","time":5,
            "origin":"im","from":"bob","to":"ann","body":[{"type":"text","text":"hi"}]}))
        .expect("valid");
        assert_eq!(s.apply(&ev), Ok(Applied::New));
        assert_eq!(s.apply(&ev), Ok(Applied::Duplicate));
        let msgs = &s.c2c[&ConversationKey::parse("c2c:ann:bob").expect("key")];
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].origin, Some(Origin::Im));
        assert_eq!(s.users.len(), 2, "users seen on IM are created");
        assert_eq!((s.counters.applied, s.counters.apply_duplicates), (1, 1));

        let orphan = ContractEvent::from_value(&serde_json::json!({"id":"x","type":"group.message","time":5,
            "from":"bob","group_id":"nope","body":[{"type":"text","text":"hi"}]}))
        .expect("valid");
        assert!(matches!(s.apply(&orphan), Err(Refusal::NotFound(_))));
        assert!(!s.applied_ids.contains("x"), "a refused event is not recorded as applied");
    }

    #[test]
    fn seeded_ids_are_never_reissued() {
        let mut s = State::default();
        s.reserve_id("lg", "lg-41");
        s.reserve_id("lg", "other-99");
        s.reserve_id("lg", "lg-x");
        assert_eq!(s.next_id("lg"), "lg-42");
    }
}
