//! Converting a validated export into import events, per topic, in the order each key needs.
//!
//! Per-key order is the whole contract (see `schemas/topics.md`):
//!
//! - `imbridge.import.accounts`: one `import.account` per user;
//! - `imbridge.import.users`: all `import.profile`s, then all `import.friendship`s grouped by user (so one lane
//!   batch holds a user's friend list: one `friend_import` call per user);
//! - `imbridge.import.c2c`: each conversation's `import.c2c_message`s in legacy order with `msg_seq` 1, 2, …,
//!   then its `import.c2c_read`s, conversation after conversation;
//! - `imbridge.import.groups`: all `import.group`s, then all members grouped by group (one lane batch per
//!   `import_group_member` call), then each group's messages in legacy order with `ordinal` 1, 2, …, each
//!   followed by that group's unread counts.
//!
//! Only one key's order matters, never the order across keys, so streams emit stage by stage. Legacy order is
//! `sent_at`, then position in the file; sorting needs the messages of a key together, so messages are
//! processed in buckets of keys (a hash of the key), each small enough to sort in memory: a bucket re-reads
//! the file and keeps only its keys. With the default bucket size a typical export is one bucket, one read.
//! Friendships and members are grouped by key the same way (their order within a key is file order), so
//! records one IM call can take arrive together.
//!
//! Event ids are `import:<kind>:<natural key>` (see [`EventId::import`]), with `%` and `:` inside a component
//! percent-encoded so that two different keys can never produce the same id.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbridge_core::event::{
    ImportAccount, ImportC2cMessage, ImportC2cRead, ImportFriendship, ImportGroup, ImportGroupMember,
    ImportGroupMessage, ImportMemberUnread, ImportProfile,
};
use imbridge_core::{
    ConversationKey, Element, Envelope, Event, EventId, EventKind, GroupId, Source, TimestampMs, UserId, topics,
};
use serde::de::DeserializeOwned;

use crate::Error;
use crate::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, ExportDir, ExportKind, FieldError, FriendRecord, GroupMemberRecord,
    GroupMessageRecord, GroupRecord, ProfileRecord, parse_record,
};
use crate::validate::{Validation, has_unread_counts, parse_group_type};

/// A stream of import events; an `Err` item means the export could not be read or changed since validation.
pub type EventStream = Box<dyn Iterator<Item = Result<Envelope, Error>> + Send>;

/// How the plan trades memory for passes over the message files.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The most messages sorted in memory at once (about 200–500 bytes each). Exports with more messages are
    /// read once per bucket of keys instead of once.
    pub max_messages_in_memory: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { max_messages_in_memory: 2_000_000 }
    }
}

/// The events a validated export turns into, per topic.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    dir: ExportDir,
    validation: Arc<Validation>,
    options: PlanOptions,
}

impl ImportPlan {
    pub fn new(dir: ExportDir, validation: Arc<Validation>, options: PlanOptions) -> Self {
        Self { dir, validation, options }
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Events per kind that the streams will yield.
    pub fn counts(&self) -> &BTreeMap<EventKind, u64> {
        self.validation.event_counts()
    }

    /// Events per import topic.
    pub fn topic_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut out: BTreeMap<&'static str, u64> = topics::IMPORT_TOPICS.iter().map(|t| (*t, 0)).collect();
        for (kind, n) in self.counts() {
            if let Some(t) = topics::import_topic(*kind) {
                *out.entry(t).or_default() += n;
            }
        }
        out
    }

    /// The stream for one of [`topics::IMPORT_TOPICS`] (by default name).
    pub fn events(&self, topic: &str) -> Result<EventStream, Error> {
        match topic {
            t if t == topics::IMPORT_ACCOUNTS => Ok(self.accounts()),
            t if t == topics::IMPORT_USERS => Ok(self.users()),
            t if t == topics::IMPORT_C2C => Ok(self.c2c()),
            t if t == topics::IMPORT_GROUPS => Ok(self.groups()),
            other => Err(Error::InvalidOption(format!("{other:?} is not an import topic"))),
        }
    }

    /// `imbridge.import.accounts`.
    pub fn accounts(&self) -> EventStream {
        self.convert(ExportKind::Accounts, account_event)
    }

    /// `imbridge.import.users`: profiles, then friendships.
    pub fn users(&self) -> EventStream {
        let profiles = self.convert(ExportKind::Profiles, profile_event);
        let plan = self.clone();
        let buckets = self.buckets(EventKind::ImportFriendship);
        let friendships = (0..buckets).flat_map(move |bucket| plan.sorted_bucket(bucket, buckets, friendships));
        Box::new(profiles.chain(friendships))
    }

    /// `imbridge.import.c2c`: per bucket of conversations, each conversation's sorted messages followed by its
    /// read marks (so a conversation's history is complete, and can go live, as soon as its last record is
    /// applied, rather than every read mark waiting for every message); read marks of conversations without
    /// messages close the bucket.
    pub fn c2c(&self) -> EventStream {
        let buckets = self.buckets(EventKind::ImportC2cMessage);
        let plan = self.clone();
        Box::new((0..buckets).flat_map(move |bucket| -> EventStream {
            let reads = plan.convert_filtered(ExportKind::C2cReads, c2c_read_event, move |e| {
                bucket_of(e.conversation.as_str(), buckets) == bucket
            });
            let reads = match by_key(reads) {
                Ok(r) => r,
                Err(e) => return Box::new(std::iter::once(Err(e))),
            };
            let messages = plan.sorted_bucket(bucket, buckets, c2c_messages);
            Box::new(Interleave::new(messages, reads))
        }))
    }

    /// `imbridge.import.groups`: groups, members, then per bucket each group's sorted messages followed by its
    /// members' unread counts (importing messages zeroes them, so they must follow, and only that group's
    /// messages need to); unread counts of groups without messages come last.
    pub fn groups(&self) -> EventStream {
        let buckets = self.buckets(EventKind::ImportGroupMessage);
        let groups = self.convert(ExportKind::Groups, group_event);
        let (p1, p2) = (self.clone(), self.clone());
        let member_buckets = self.buckets(EventKind::ImportGroupMember);
        let members = (0..member_buckets).flat_map(move |b| p1.sorted_bucket(b, member_buckets, group_members));
        let unread = Lazy::new(move || -> EventStream {
            match by_key(p2.unread_counts()) {
                Ok(unread) => {
                    let unread = Arc::new(std::sync::Mutex::new(unread));
                    let rest = Arc::clone(&unread);
                    let plan = p2.clone();
                    let messages = (0..buckets).flat_map(move |bucket| {
                        Interleave::shared(plan.sorted_bucket(bucket, buckets, group_messages), Arc::clone(&unread))
                    });
                    // Whatever no message run took: groups without messages.
                    let left = Lazy::new(move || -> EventStream {
                        let left = rest.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default();
                        Box::new(left.into_values().flatten().map(Ok))
                    });
                    Box::new(messages.chain(left))
                }
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        });
        Box::new(groups.chain(members).chain(unread))
    }

    /// `import.member_unread` of every member with a non-zero unread count in a group that keeps them.
    fn unread_counts(&self) -> EventStream {
        let v = Arc::clone(&self.validation);
        let dir = self.dir.clone();
        Box::new(records::<GroupMemberRecord>(&self.dir, &self.validation, ExportKind::GroupMembers).filter_map(
            move |item| match item {
                Err(e) => Some(Err(e)),
                Ok((line, r)) => {
                    let counted =
                        r.unread.is_some_and(|u| u > 0) && v.group_type(&r.group_id).is_some_and(has_unread_counts);
                    counted.then(|| unread_event(r).map_err(|e| changed(&dir, ExportKind::GroupMembers, line, e)))
                }
            },
        ))
    }

    fn buckets(&self, kind: EventKind) -> u64 {
        let n = self.counts().get(&kind).copied().unwrap_or(0);
        n.div_ceil(self.options.max_messages_in_memory.max(1)).max(1)
    }

    fn convert<T: DeserializeOwned + Send + 'static>(
        &self,
        kind: ExportKind,
        to_event: fn(T) -> Result<Envelope, FieldError>,
    ) -> EventStream {
        self.convert_filtered(kind, to_event, |_| true)
    }

    fn convert_filtered<T: DeserializeOwned + Send + 'static>(
        &self,
        kind: ExportKind,
        to_event: fn(T) -> Result<Envelope, FieldError>,
        keep: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> EventStream {
        let dir = self.dir.clone();
        Box::new(records::<T>(&self.dir, &self.validation, kind).filter_map(move |item| {
            match item.and_then(|(line, r)| to_event(r).map_err(|e| changed(&dir, kind, line, e))) {
                Ok(env) if keep(&env) => Some(Ok(env)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// Reads one bucket of messages, sorts it into legacy order and numbers each key's messages from 1.
    fn sorted_bucket(
        &self,
        bucket: u64,
        buckets: u64,
        read: fn(&ImportPlan, u64, u64) -> Result<Vec<Sortable>, Error>,
    ) -> EventStream {
        let mut items = match read(self, bucket, buckets) {
            Ok(items) => items,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        items.sort_by(|a, b| (&a.key, a.sent_at, a.line).cmp(&(&b.key, b.sent_at, b.line)));
        let mut seq = 0u64;
        let mut previous: Option<ConversationKey> = None;
        let out: Vec<Result<Envelope, Error>> = items
            .into_iter()
            .map(|mut item| {
                if previous.as_ref() != Some(&item.key) {
                    seq = 0;
                    previous = Some(item.key.clone());
                }
                seq += 1;
                match &mut item.envelope.event {
                    // IM's MsgSeq is a u32; a conversation with more messages than that does not exist in practice.
                    Event::ImportC2cMessage(m) => m.msg_seq = u32::try_from(seq).unwrap_or(u32::MAX),
                    Event::ImportGroupMessage(m) => m.ordinal = seq,
                    _ => {}
                }
                Ok(item.envelope)
            })
            .collect();
        Box::new(out.into_iter())
    }
}

/// A message waiting to be sorted: its key, legacy order, and the event (sequence number filled in later).
struct Sortable {
    key: ConversationKey,
    sent_at: TimestampMs,
    line: u64,
    envelope: Envelope,
}

fn c2c_messages(plan: &ImportPlan, bucket: u64, buckets: u64) -> Result<Vec<Sortable>, Error> {
    bucket_messages::<C2cMessageRecord>(plan, ExportKind::C2cMessages, bucket, buckets, c2c_message_event)
}

/// Friendships have no legacy order of their own to keep beyond file order: grouping by user is the point.
fn friendships(plan: &ImportPlan, bucket: u64, buckets: u64) -> Result<Vec<Sortable>, Error> {
    let mut v = bucket_messages::<FriendRecord>(plan, ExportKind::Friends, bucket, buckets, friend_event)?;
    v.iter_mut().for_each(|s| s.sent_at = NO_TIME);
    Ok(v)
}

fn group_members(plan: &ImportPlan, bucket: u64, buckets: u64) -> Result<Vec<Sortable>, Error> {
    let mut v = bucket_messages::<GroupMemberRecord>(plan, ExportKind::GroupMembers, bucket, buckets, member_event)?;
    v.iter_mut().for_each(|s| s.sent_at = NO_TIME);
    Ok(v)
}

fn group_messages(plan: &ImportPlan, bucket: u64, buckets: u64) -> Result<Vec<Sortable>, Error> {
    bucket_messages::<GroupMessageRecord>(plan, ExportKind::GroupMessages, bucket, buckets, group_message_event)
}

fn bucket_messages<T: DeserializeOwned + Send + 'static>(
    plan: &ImportPlan,
    kind: ExportKind,
    bucket: u64,
    buckets: u64,
    to_event: fn(T) -> Result<Envelope, FieldError>,
) -> Result<Vec<Sortable>, Error> {
    let mut out = Vec::new();
    for item in records::<T>(&plan.dir, &plan.validation, kind) {
        let (line, record) = item?;
        let envelope = to_event(record).map_err(|e| changed(&plan.dir, kind, line, e))?;
        if buckets > 1 && bucket_of(envelope.conversation.as_str(), buckets) != bucket {
            continue;
        }
        out.push(Sortable { key: envelope.conversation.clone(), sent_at: envelope.time, line, envelope });
    }
    Ok(out)
}

fn bucket_of(key: &str, buckets: u64) -> u64 {
    if buckets <= 1 {
        return 0;
    }
    // A specified hash (SHA-256 based), not std's unspecified DefaultHasher: the order records are produced in
    // must not change between the build that started an import and the one that resumes it.
    u64::from(imbridge_core::ids::stable_u32(key.as_bytes())) % buckets
}

/// The valid records of one kind with their line numbers. A line that validated but no longer parses means
/// the export changed underneath us: that is an error, never a silent skip.
fn records<T: DeserializeOwned + Send + 'static>(
    dir: &ExportDir,
    validation: &Arc<Validation>,
    kind: ExportKind,
) -> Box<dyn Iterator<Item = Result<(u64, T), Error>> + Send> {
    let lines = match dir.lines(kind) {
        Ok(lines) => lines,
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    let v = Arc::clone(validation);
    let dir = dir.clone();
    Box::new(lines.filter_map(move |line| {
        let line = match line {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        if v.is_rejected(kind, line.number) {
            return None;
        }
        let parsed = line.text.map_err(|m| FieldError::new("", m)).and_then(|t| parse_record::<T>(&t));
        Some(parsed.map(|r| (line.number, r)).map_err(|e| changed(&dir, kind, line.number, e)))
    }))
}

fn changed(dir: &ExportDir, kind: ExportKind, line: u64, e: FieldError) -> Error {
    Error::ExportChanged { path: dir.display_name(kind), line, reason: e.to_string() }
}

/// Records grouped by key, each key's in stream order.
type ByKey = BTreeMap<ConversationKey, Vec<Envelope>>;

fn by_key(stream: EventStream) -> Result<ByKey, Error> {
    let mut out = ByKey::new();
    for item in stream {
        let env = item?;
        out.entry(env.conversation.clone()).or_default().push(env);
    }
    Ok(out)
}

/// A key-contiguous stream with each key's follow-up records (from `after`) inserted right after its run.
/// Owning `after` (c2c: one bucket's read marks), the leftovers close the stream; sharing it (groups: the
/// unread counts of all buckets), the leftovers stay for the caller.
struct Interleave {
    inner: EventStream,
    after: Arc<std::sync::Mutex<ByKey>>,
    drain_rest: bool,
    current: Option<ConversationKey>,
    queue: std::collections::VecDeque<Result<Envelope, Error>>,
    done: bool,
}

impl Interleave {
    fn new(inner: EventStream, after: ByKey) -> Self {
        let after = Arc::new(std::sync::Mutex::new(after));
        Self { inner, after, drain_rest: true, current: None, queue: Default::default(), done: false }
    }

    fn shared(inner: EventStream, after: Arc<std::sync::Mutex<ByKey>>) -> Self {
        Self { inner, after, drain_rest: false, current: None, queue: Default::default(), done: false }
    }

    fn follow_ups(&mut self, key: &ConversationKey) {
        let extra = self.after.lock().ok().and_then(|mut m| m.remove(key)).unwrap_or_default();
        self.queue.extend(extra.into_iter().map(Ok));
    }
}

impl Iterator for Interleave {
    type Item = Result<Envelope, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                Some(Ok(env)) => {
                    if self.current.as_ref() != Some(&env.conversation) {
                        if let Some(prev) = self.current.replace(env.conversation.clone()) {
                            self.follow_ups(&prev);
                        }
                    }
                    self.queue.push_back(Ok(env));
                }
                Some(Err(e)) => self.queue.push_back(Err(e)),
                None => {
                    self.done = true;
                    if let Some(prev) = self.current.take() {
                        self.follow_ups(&prev);
                    }
                    if self.drain_rest {
                        let rest = self.after.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default();
                        self.queue.extend(rest.into_values().flatten().map(Ok));
                    }
                }
            }
        }
    }
}

/// Defers building a stream until it is first polled, so later stages do not open files early.
struct Lazy<F> {
    make: Option<F>,
    stream: Option<EventStream>,
}

impl<F: FnOnce() -> EventStream> Lazy<F> {
    fn new(make: F) -> Self {
        Self { make: Some(make), stream: None }
    }
}

impl<F: FnOnce() -> EventStream> Iterator for Lazy<F> {
    type Item = Result<Envelope, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(make) = self.make.take() {
            self.stream = Some(make());
        }
        self.stream.as_mut()?.next()
    }
}

// ---- record → event -------------------------------------------------------------------------------

/// Joins natural-key components with `:`, escaping `%` and `:` inside them so the result is unambiguous.
pub fn natural_key(parts: &[&str]) -> String {
    parts.iter().map(|p| p.replace('%', "%25").replace(':', "%3A")).collect::<Vec<_>>().join(":")
}

fn uid(field: &str, s: String) -> Result<UserId, FieldError> {
    UserId::parse(s).map_err(|e| FieldError::new(field, e.to_string()))
}

fn gid(field: &str, s: String) -> Result<GroupId, FieldError> {
    GroupId::parse(s).map_err(|e| FieldError::new(field, e.to_string()))
}

fn envelope(kind: &str, natural: String, time: TimestampMs, event: Event) -> Envelope {
    Envelope {
        id: EventId::import(kind, &natural),
        source: Source::Legacy,
        conversation: event.conversation(),
        time,
        recorded_at: None,
        event,
    }
}

/// Records without a time of their own carry 0 ("unknown"); `recorded_at` says when the importer ran.
const NO_TIME: TimestampMs = TimestampMs(0);

fn account_event(r: AccountRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.user_id]);
    let e = ImportAccount { user_id: uid("user_id", r.user_id)?, nick: r.nick, face_url: r.face_url };
    Ok(envelope("account", key, NO_TIME, Event::ImportAccount(e)))
}

fn profile_event(r: ProfileRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.user_id]);
    let e = ImportProfile {
        user_id: uid("user_id", r.user_id)?,
        nick: r.nick,
        gender: r.gender,
        birthday: r.birthday,
        location: r.location,
        signature: r.signature,
        allow_type: r.allow_type,
        language: r.language,
        avatar: r.avatar,
        level: r.level,
        role: r.role,
        // An empty map is no custom field: the event leaves it out, as before.
        custom: r.custom.filter(|c| !c.is_empty()),
    };
    Ok(envelope("profile", key, NO_TIME, Event::ImportProfile(e)))
}

fn friend_event(r: FriendRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.user_id, &r.friend_id]);
    let time = r.added_at.unwrap_or(NO_TIME);
    let e = ImportFriendship {
        user_id: uid("user_id", r.user_id)?,
        friend_id: uid("friend_id", r.friend_id)?,
        add_source: r.add_source,
        remark: r.remark,
        groups: r.groups.filter(|g| !g.is_empty()),
        add_wording: r.add_wording,
        added_at: r.added_at,
    };
    Ok(envelope("friendship", key, time, Event::ImportFriendship(e)))
}

fn c2c_message_event(r: C2cMessageRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.id]);
    let e = ImportC2cMessage {
        legacy_id: r.id,
        from: uid("from", r.from)?,
        to: uid("to", r.to)?,
        sent_at: r.sent_at,
        body: r.body.into_iter().map(Element::from).collect(),
        custom_data: r.custom_data,
        msg_seq: 0,
    };
    Ok(envelope("c2c_message", key, r.sent_at, Event::ImportC2cMessage(e)))
}

fn c2c_read_event(r: C2cReadRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.user_id, &r.peer_id]);
    let e =
        ImportC2cRead { user_id: uid("user_id", r.user_id)?, peer_id: uid("peer_id", r.peer_id)?, read_at: r.read_at };
    Ok(envelope("c2c_read", key, r.read_at, Event::ImportC2cRead(e)))
}

fn group_event(r: GroupRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.group_id]);
    let e = ImportGroup {
        group_id: gid("group_id", r.group_id)?,
        group_type: parse_group_type(&r.group_type)?,
        profile: r.profile.try_into_form(|o| uid("owner", o))?,
        max_members: r.max_members,
        apply_join: r.apply_join,
        created_at: r.created_at,
    };
    Ok(envelope("group", key, r.created_at, Event::ImportGroup(e)))
}

fn member_event(r: GroupMemberRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.group_id, &r.user_id]);
    let e = ImportGroupMember {
        group_id: gid("group_id", r.group_id)?,
        user_id: uid("user_id", r.user_id)?,
        role: r.role.unwrap_or_default(),
        joined_at: r.joined_at,
    };
    Ok(envelope("group_member", key, r.joined_at.unwrap_or(NO_TIME), Event::ImportGroupMember(e)))
}

fn group_message_event(r: GroupMessageRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.id]);
    let e = ImportGroupMessage {
        legacy_id: r.id,
        group_id: gid("group_id", r.group_id)?,
        from: uid("from", r.from)?,
        sent_at: r.sent_at,
        body: r.body.into_iter().map(Element::from).collect(),
        ordinal: 0,
    };
    Ok(envelope("group_message", key, r.sent_at, Event::ImportGroupMessage(e)))
}

fn unread_event(r: GroupMemberRecord) -> Result<Envelope, FieldError> {
    let key = natural_key(&[&r.group_id, &r.user_id]);
    let e = ImportMemberUnread {
        group_id: gid("group_id", r.group_id)?,
        user_id: uid("user_id", r.user_id)?,
        unread: r.unread.unwrap_or(0),
    };
    Ok(envelope("member_unread", key, NO_TIME, Event::ImportMemberUnread(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_keys_are_unambiguous() {
        assert_eq!(natural_key(&["a", "b"]), "a:b");
        assert_ne!(natural_key(&["a:b", "c"]), natural_key(&["a", "b:c"]));
        assert_eq!(natural_key(&["50%:x"]), "50%25%3Ax");
    }

    #[test]
    fn buckets_partition_keys() {
        // Golden values (first four bytes of SHA-256 of the key, modulo 7, computed outside Rust): a resumed run
        // must read the records in the order the interrupted one did, whichever build runs it.
        for (key, bucket) in [("c2c:a:b", 4), ("group:g1", 5), ("c2c:x:y", 6)] {
            assert_eq!(bucket_of(key, 1), 0);
            assert_eq!(bucket_of(key, 7), bucket, "{key}");
        }
    }
}
