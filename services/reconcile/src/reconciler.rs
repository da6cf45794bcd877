//! One reconciliation pass: choose the conversations, read both sides, compare, repair through the pipeline.
//!
//! Cheap digests first: the legacy digest list names the conversations with legacy messages in the window, and
//! each of their users' IM conversation lists (`recentcontact/get_list`) adds those with IM messages in it, so
//! a conversation that exists on one side only is still found. Full reads (`admin_getroammsg`,
//! `get_group_info` then `group_msg_get_simple` only when `NextMsgSeq` says there are messages,
//! `get_group_member_info`) happen per chosen conversation.
//!
//! Repairs never write to either system. A message one side lacks becomes the event that side's apply service
//! would have received, with the id the source's own identifiers give it (`legacy:<id>`,
//! `im:c2c:<from>:<MsgKey>`, `im:gmsg:<group>:<MsgSeq>`): a repair of something still in flight is the same event
//! twice, which the apply services' idempotency absorbs. A group or a member one side lacks is created or
//! removed by [`crate::presence`]'s rule ([`crate::group_state`]); a group profile by its change times.
//! Differences that no event can fix (changed content, a copy whose original is gone, roles, the owner) are
//! reported only.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use imbridge_core::event::{C2cMessage, GroupMessage, GroupUpdated};
use imbridge_core::topics::TopicNames;
use imbridge_core::{ConversationKey, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_im::types::account::{ProfileValue, tags};
use imbridge_im::types::recentcontact::{SESSION_C2C, SESSION_GROUP};

use imbridge_im::{ImClient, ImError, MsgElement, from_im_body};
use imbridge_kafka::Producer;
use imbridge_kafka::producer::Outgoing;
use imbridge_legacy::read::{GroupState, StoredMessage};
use imbridge_legacy::{ReadClient, Window};
use prometheus::Registry;

use crate::compare::{MessageDiff, Msg, compare, decode_marker, im_identity_of_legacy_id, legacy_identity};
use crate::digest::{self, Digest, DigestMemory};
use crate::error::ReconcileError;
use crate::report::{Difference, Finding, Kind, Report};

/// Kafka header: who made the event (`reconcile`).
pub const ORIGIN_HEADER: &str = "imbridge.origin";
/// Kafka header: which difference the event repairs (`missing_in_im` / `missing_in_legacy`).
pub const DIFFERENCE_HEADER: &str = "imbridge.reconcile.difference";
/// Kafka header: the evidence, a small JSON object (conversation, kind, what each side showed).
pub const EVIDENCE_HEADER: &str = "imbridge.reconcile.evidence";
/// The value of [`ORIGIN_HEADER`].
pub const ORIGIN_RECONCILE: &str = "reconcile";

/// Why a difference was not repaired.
const CONTENT_DIFFERS: &str = "content differs under the same identity; an event with that id would be deduplicated";
const COPY_OF_GONE_IM: &str = "a copy of an IM message whose original is gone from IM";
const COPY_OF_GONE_LEGACY: &str = "a copy of a legacy message whose original is gone from legacy";
pub(crate) const GROUP_STATE: &str = "group state differences are reported only";
const ACCOUNTS: &str = "accounts are created by the import (or by to-im on first sight with import_unknown_accounts)";
const PROFILES: &str = "no live event carries a user profile";
const PROFILE_TIMES: &str = "which side changed the profile last is unknown (no or equal change times)";
const NO_GROUP_ON_IM: &str = "the group does not exist on IM (see groups)";
const NO_GROUP_ON_LEGACY: &str = "the group does not exist on legacy (see groups)";

/// IM answers these for history of something that cannot exist (unknown operator or peer, unknown group).
const IM_NOTHING: &[i64] = &[90008, 90003, 70107, 10010, 10015];

/// Which conversations an instance takes: its share of a scaled service (by the key's partition).
#[derive(Clone)]
pub struct Owner(Arc<dyn Fn(&ConversationKey) -> bool + Send + Sync>);

impl Owner {
    pub fn new(f: impl Fn(&ConversationKey) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn owns(&self, key: &ConversationKey) -> bool {
        (self.0)(key)
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owner(..)")
    }
}

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these conversations; empty: every conversation active in the window (legacy digests + IM lists).
    pub conversations: Vec<ConversationKey>,
    /// Window start (Unix ms); `None` compares everything.
    pub since: Option<TimestampMs>,
    /// Discover widely: the users of every legacy conversation of all time (not only the window's) have their
    /// IM conversation lists read, and IM's own group list is read, so a chat only IM knows is found even when
    /// its users were quiet on legacy (outages, sweeps).
    pub wide: bool,
    /// Only the conversations this owner takes (discovered ones; explicit ones are always taken).
    pub owner: Option<Owner>,
    /// With a window over all time: skip conversations whose digests are unchanged since found identical, and
    /// remember the ones found identical now.
    pub digests: Option<Arc<DigestMemory>>,
}

/// How a conversation was checked.
enum Checked {
    /// Read in full; the digests seen, when digest skipping applies.
    Full(Option<Digest>),
    /// Skipped: its digests are unchanged since it was found identical.
    ByDigest,
}

/// What discovery learnt besides the conversations: the digests it read on the way.
#[derive(Debug, Default)]
struct Discovered {
    keys: BTreeSet<ConversationKey>,
    /// Legacy `(count, hash)` of every conversation with legacy messages in the window.
    legacy: HashMap<ConversationKey, (u64, String)>,
    /// Latest message time (s) of 1:1 conversations in the users' IM conversation lists.
    im_c2c: HashMap<ConversationKey, u64>,
}

/// Everything a pass needs. The IM client should have its own registry, so [`Report::im_calls`] counts only
/// what reconciliation spent.
pub struct Reconciler {
    pub im: ImClient,
    pub im_registry: Registry,
    pub legacy: ReadClient,
    /// `None` for a dry run.
    pub producer: Option<Producer>,
    pub topics: TopicNames,
    /// Most users whose IM conversation list one pass reads.
    pub max_users: usize,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("topics", &self.topics)
            .field("dry_run_only", &self.producer.is_none())
            .finish_non_exhaustive()
    }
}

fn im_requests(registry: &Registry) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "imbridge_im_requests_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64))
        .sum()
}

fn nothing_there(e: &ImError) -> bool {
    e.code().is_some_and(|c| IM_NOTHING.contains(&c))
}

impl Reconciler {
    /// One pass over `scope`. With `dry_run` (or no producer) nothing is produced; the report says what would be.
    pub async fn reconcile_once(&self, scope: &Scope, dry_run: bool) -> Result<Report, ReconcileError> {
        let calls_before = im_requests(&self.im_registry);
        let dry_run = dry_run || self.producer.is_none();
        let mut report = Report { dry_run, since_ms: scope.since.map(|t| t.0), ..Report::default() };
        let window = Window::since(scope.since);
        let found = if scope.conversations.is_empty() {
            let mut found = self.discover(window, scope.wide, &mut report).await?;
            if let Some(owner) = &scope.owner {
                found.keys.retain(|k| owner.owns(k));
            }
            found
        } else {
            Discovered { keys: scope.conversations.iter().cloned().collect(), ..Discovered::default() }
        };
        // Digests describe all of a conversation; a windowed read cannot be compared with them.
        let memory = scope.digests.as_deref().filter(|_| scope.since.is_none() && scope.conversations.is_empty());
        for key in &found.keys {
            let findings_before = report.findings.len();
            let legacy_digest = found.legacy.get(key).cloned();
            let result = match key.as_str().split_once(':') {
                Some(("c2c", _)) => {
                    let digest = memory
                        .and(found.im_c2c.get(key))
                        .map(|t| Digest { legacy: legacy_digest.clone(), im: digest::im_c2c(*t) });
                    match (&digest, memory) {
                        (Some(d), Some(m)) if m.unchanged(key, d) => Ok(Checked::ByDigest),
                        _ => self.c2c(key, window, dry_run, &mut report).await.map(|()| Checked::Full(digest)),
                    }
                }
                Some(("group", g)) => {
                    let skip = memory.map(|m| (m, legacy_digest));
                    self.group(key, &GroupId::new_unchecked(g), window, dry_run, &mut report, skip).await
                }
                _ => Err(ReconcileError::Config(format!("{key} is not a c2c or group conversation"))),
            };
            match result {
                Ok(Checked::ByDigest) => {
                    report.conversations_checked += 1;
                    report.identical_by_digest += 1;
                    report.checked_keys.push(key.to_string());
                }
                Ok(Checked::Full(digest)) => {
                    report.conversations_checked += 1;
                    report.checked_keys.push(key.to_string());
                    if let Some(m) = memory {
                        m.record(key, digest.filter(|_| report.findings.len() == findings_before));
                    }
                }
                Err(e) => {
                    tracing::warn!(conversation = %key, error = %e, "cannot reconcile conversation");
                    report.errors.push((key.to_string(), e.to_string()));
                    if let Some(m) = memory {
                        m.record(key, None);
                    }
                }
            }
        }
        if scope.conversations.is_empty() {
            let mut users: BTreeSet<UserId> = found.keys.iter().flat_map(c2c_users).collect();
            if let Some(owner) = &scope.owner {
                users.retain(|u| owner.owns(&ConversationKey::user(u)));
            }
            let users: Vec<UserId> = users.into_iter().take(self.max_users).collect();
            if let Err(e) = self.accounts(&users, dry_run, &mut report).await {
                tracing::warn!(error = %e, "cannot compare accounts");
                report.errors.push(("accounts".into(), e.to_string()));
            }
        }
        report.im_calls = im_requests(&self.im_registry) - calls_before;
        Ok(report)
    }

    /// Accounts and the profile fields both sides hold, for `users`: `account_check` and `portrait_get` on IM,
    /// the accounts read endpoint on legacy. Reported only: no live event creates an account or sets a profile.
    async fn accounts(&self, users: &[UserId], dry_run: bool, report: &mut Report) -> Result<(), ReconcileError> {
        if users.is_empty() {
            return Ok(());
        }
        report.legacy_calls += users.len().div_ceil(imbridge_legacy::read::MAX_READ_ACCOUNTS) as u64;
        let legacy: HashMap<String, imbridge_legacy::read::AccountState> =
            self.legacy.accounts(users).await?.into_iter().map(|a| (a.user_id.to_string(), a)).collect();
        let ids: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let on_im: BTreeSet<String> = self
            .im
            .check_accounts(&ids)
            .await?
            .into_iter()
            .filter(|i| i.result_code == 0 && i.account_status == "Imported")
            .map(|i| i.user_id)
            .collect();
        let both: Vec<String> = ids.iter().filter(|u| legacy.contains_key(*u) && on_im.contains(*u)).cloned().collect();
        let mut profiles = HashMap::new();
        for chunk in both.chunks(imbridge_im::types::account::PORTRAIT_GET_MAX) {
            let req = imbridge_im::types::account::PortraitGetReq {
                to_account: chunk.to_vec(),
                tag_list: vec![tags::NICK.into(), tags::IMAGE.into()],
            };
            for p in self.im.portrait_get(&req).await?.user_profile_item.into_iter().filter(|p| p.result_code == 0) {
                let text = |tag| match p.get(tag) {
                    Some(ProfileValue::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                profiles.insert(p.to_account.clone(), (text(tags::NICK), text(tags::IMAGE)));
            }
        }
        let key = ConversationKey::user;
        for u in users {
            let id = u.to_string();
            report.checked_keys.push(key(u).to_string());
            let row = report.row(Kind::Accounts);
            row.checked += 1;
            let difference = match (legacy.get(&id), on_im.contains(&id)) {
                (Some(_), true) => {
                    row.identical += 1;
                    None
                }
                (Some(_), false) => Some(Difference::MissingInIm),
                (None, true) => Some(Difference::MissingInLegacy),
                (None, false) => {
                    row.identical += 1;
                    None
                }
            };
            if let Some(d) = difference {
                self.finding(report, Kind::Accounts, d, &key(u), &id, Err(ACCOUNTS), dry_run, serde_json::Value::Null)
                    .await?;
            }
            let (Some(l), Some((nick, image))) = (legacy.get(&id), profiles.get(&id)) else { continue };
            let row = report.row(Kind::Profiles);
            row.checked += 1;
            let mut fields = Vec::new();
            if l.nick.as_deref().unwrap_or("") != nick {
                fields.push("nick");
            }
            if l.face_url.as_deref().unwrap_or("") != image {
                fields.push("face_url");
            }
            if fields.is_empty() {
                report.row(Kind::Profiles).identical += 1;
            }
            for f in fields {
                let item = format!("{id}:{f}");
                self.finding(
                    report,
                    Kind::Profiles,
                    Difference::Different,
                    &key(u),
                    &item,
                    Err(PROFILES),
                    dry_run,
                    serde_json::Value::Null,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The conversations with activity in the window on either side (see [`Scope::wide`]).
    async fn discover(&self, window: Window, wide: bool, report: &mut Report) -> Result<Discovered, ReconcileError> {
        report.legacy_calls += 1;
        let digests = self.legacy.digests(window).await?;
        let mut found = Discovered::default();
        for d in digests.conversations {
            found.legacy.insert(d.conversation.clone(), (d.count, d.hash));
            found.keys.insert(d.conversation);
        }
        let mut user_keys: Vec<ConversationKey> = found.keys.iter().cloned().collect();
        if wide && window.since.is_some() {
            report.legacy_calls += 1;
            user_keys = self
                .legacy
                .digests(Window::default())
                .await?
                .conversations
                .into_iter()
                .map(|d| d.conversation)
                .collect();
        }
        let mut users = BTreeSet::new();
        for k in &user_keys {
            if let Some(("c2c", rest)) = k.as_str().split_once(':') {
                // Keys are `c2c:<a>:<b>`; a user id may hold ':', but both halves are users either way.
                if let Some((a, b)) = rest.split_once(':') {
                    users.insert(a.to_owned());
                    users.insert(b.to_owned());
                }
            }
        }
        let since_s = window.since.map_or(0, |t| t.0.div_euclid(1000));
        for user in users.into_iter().take(self.max_users) {
            let list = match self.im.recent_contacts(&user).await {
                Ok(l) => l,
                Err(e) if nothing_there(&e) || e.code() == Some(50001) => continue,
                Err(e) => return Err(e.into()),
            };
            let uid = UserId::new_unchecked(user.as_str());
            for item in list.into_iter().filter(|i| i.msg_time as i64 >= since_s) {
                match (item.kind, item.to_account, item.group_id) {
                    (SESSION_C2C, Some(peer), _) => {
                        let key = ConversationKey::c2c(&uid, &UserId::new_unchecked(peer));
                        let t = found.im_c2c.entry(key.clone()).or_default();
                        *t = (*t).max(item.msg_time);
                        found.keys.insert(key);
                    }
                    (SESSION_GROUP, _, Some(g)) if item.msg_time > 0 => {
                        found.keys.insert(ConversationKey::group(&GroupId::new_unchecked(g)));
                    }
                    _ => {}
                }
            }
        }
        if wide {
            let groups = self.im.all_group_ids(None).await?;
            if window.since.is_none() {
                found.keys.extend(groups.iter().map(|g| ConversationKey::group(&GroupId::new_unchecked(g.as_str()))));
            } else {
                // Only the groups with a message or a change in the window.
                for i in self.im.group_infos(&groups, None).await? {
                    let t = i.last_msg_time.unwrap_or(0).max(i.last_info_time.unwrap_or(0));
                    if i.error_code == 0 && t >= since_s {
                        found.keys.insert(ConversationKey::group(&GroupId::new_unchecked(i.group_id.as_str())));
                    }
                }
            }
        }
        Ok(found)
    }

    async fn c2c(
        &self,
        key: &ConversationKey,
        window: Window,
        dry_run: bool,
        report: &mut Report,
    ) -> Result<(), ReconcileError> {
        let rest = key.as_str().trim_start_matches("c2c:");
        let (a, b) = rest.split_once(':').ok_or_else(|| ReconcileError::Config(format!("bad key {key}")))?;
        report.legacy_calls += 1;
        let legacy = self.legacy.conversation(key, window).await?;
        let min_s = window.since.map_or(0, |t| t.0.div_euclid(1000));
        let max_s = i64::from(u32::MAX);
        let im = match self.im.c2c_history(a, b, min_s, max_s).await {
            Ok(v) => v,
            Err(e) if nothing_there(&e) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let l: Vec<Msg> = legacy.messages.iter().map(legacy_msg).collect();
        let r: Vec<Msg> = im
            .iter()
            .map(|m| {
                let from = &m.from_account;
                let im_id = || EventId::im_c2c(&UserId::new_unchecked(from.as_str()), &m.msg_key).to_string();
                let marker = (m.cloud_custom_data.as_deref(), m.msg_random);
                im_msg(from, marker, &m.msg_body, m.msg_key.clone(), im_id)
            })
            .collect();
        let diff = compare_counted(report, Kind::C2cMessages, &l, &r);
        let sides = Sides { legacy: &legacy.messages, l: &l, r: &r, absent_on_im: None, absent_on_legacy: None };
        let from_legacy = |m: &StoredMessage| {
            let to = m.to.clone().unwrap_or_else(|| UserId::new_unchecked(if m.from.as_str() == a { b } else { a }));
            Event::C2cMessage(C2cMessage {
                from: m.from.clone(),
                to,
                body: m.body.clone(),
                custom_data: m.custom_data.clone(),
            })
        };
        let from_im = |ii: usize| {
            let m = &im[ii];
            let from = UserId::new_unchecked(m.from_account.as_str());
            let id = EventId::im_c2c(&from, &m.msg_key);
            let event = Event::C2cMessage(C2cMessage {
                from,
                to: UserId::new_unchecked(m.to_account.as_str()),
                body: r[ii].body.clone(),
                custom_data: r[ii].custom_data.clone(),
            });
            (m.msg_key.clone(), im_repair(key, id, m.msg_time_stamp, event))
        };
        self.message_findings(report, Kind::C2cMessages, key, dry_run, &diff, sides, from_legacy, from_im).await?;
        Ok(())
    }

    async fn group(
        &self,
        key: &ConversationKey,
        group_id: &GroupId,
        window: Window,
        dry_run: bool,
        report: &mut Report,
        skip: Option<(&DigestMemory, Option<(u64, String)>)>,
    ) -> Result<Checked, ReconcileError> {
        let info = self.im.group_infos(&[group_id.to_string()], None).await?;
        let info = info.into_iter().next().filter(|i| i.error_code == 0);
        let digest = match (&skip, &info) {
            (Some((_, legacy)), Some(i)) => Some(Digest { legacy: legacy.clone(), im: digest::im_group(i) }),
            _ => None,
        };
        if let (Some((memory, _)), Some(d)) = (&skip, &digest)
            && memory.unchanged(key, d)
        {
            return Ok(Checked::ByDigest);
        }
        report.legacy_calls += 1;
        let legacy = self.legacy.conversation(key, window).await?;
        // Existence first: a group one side lacks is created there (or removed from the other) before its
        // messages, which then follow the creation on the same key.
        let exists = self.group_existence(report, key, group_id, &legacy, info.as_ref(), dry_run).await?;
        if let (Some(l), Some(i)) = (&legacy.group, &info) {
            let fields = profile_differences(l, i);
            let profile = report.row(Kind::GroupProfile);
            profile.checked += 1;
            if fields.is_empty() {
                profile.identical += 1;
            }
            // The side that changed its profile last is right (see `profile_repair`); the owner is not a
            // profile field an event can set.
            let (owner, fields): (Vec<&str>, Vec<&str>) = fields.into_iter().partition(|f| *f == "owner");
            let mut repaired_by: Option<EventId> = None;
            for f in fields {
                match &repaired_by {
                    Some(id) => self.also_repaired(report, Kind::GroupProfile, key, f, id, dry_run),
                    None => {
                        let repair = profile_repair(key, group_id, l, i);
                        repaired_by = repair.as_ref().ok().map(|e| e.id.clone());
                        self.finding(
                            report,
                            Kind::GroupProfile,
                            Difference::Different,
                            key,
                            f,
                            repair,
                            dry_run,
                            serde_json::Value::Null,
                        )
                        .await?;
                    }
                }
            }
            for f in owner {
                self.finding(
                    report,
                    Kind::GroupProfile,
                    Difference::Different,
                    key,
                    f,
                    Err(GROUP_STATE),
                    dry_run,
                    serde_json::Value::Null,
                )
                .await?;
            }
            self.members(report, key, group_id, l, dry_run).await?;
        }
        // Messages: `NextMsgSeq` 1 means none were ever sent, so the history read is skipped.
        let since_s = window.since.map_or(0, |t| t.0.div_euclid(1000));
        let im_msgs = match &info {
            Some(i) if i.next_msg_seq.unwrap_or(2) > 1 => match self.im.group_history(group_id.as_str(), false).await {
                Ok(v) => v,
                Err(e) if nothing_there(&e) => Vec::new(),
                Err(e) => return Err(e.into()),
            },
            _ => Vec::new(),
        };
        let im_msgs: Vec<_> = im_msgs
            .into_iter()
            .filter(|m| m.is_place_msg == 0 && m.is_system_msg.unwrap_or(0) == 0 && m.msg_time_stamp >= since_s)
            .collect();
        let l: Vec<Msg> = legacy.messages.iter().map(legacy_msg).collect();
        let r: Vec<Msg> = im_msgs
            .iter()
            .map(|m| {
                let im_id = || EventId::im_group_message(group_id, m.msg_seq).to_string();
                let marker = (m.cloud_custom_data.as_deref(), m.msg_random);
                im_msg(&m.from_account, marker, &m.msg_body, m.msg_seq.to_string(), im_id)
            })
            .collect();
        let diff = compare_counted(report, Kind::GroupMessages, &l, &r);
        // A group IM lacks and reconcile does not create there cannot take a message.
        let sides = Sides {
            legacy: &legacy.messages,
            l: &l,
            r: &r,
            absent_on_im: (!exists.im).then_some(NO_GROUP_ON_IM),
            absent_on_legacy: (!exists.legacy).then_some(NO_GROUP_ON_LEGACY),
        };
        let from_legacy = |m: &StoredMessage| {
            Event::GroupMessage(GroupMessage {
                group_id: group_id.clone(),
                from: m.from.clone(),
                body: m.body.clone(),
                custom_data: m.custom_data.clone(),
            })
        };
        let from_im = |ii: usize| {
            let m = &im_msgs[ii];
            let event = Event::GroupMessage(GroupMessage {
                group_id: group_id.clone(),
                from: UserId::new_unchecked(m.from_account.as_str()),
                body: r[ii].body.clone(),
                custom_data: r[ii].custom_data.clone(),
            });
            let id = EventId::im_group_message(group_id, m.msg_seq);
            (m.msg_seq.to_string(), im_repair(key, id, m.msg_time_stamp, event))
        };
        self.message_findings(report, Kind::GroupMessages, key, dry_run, &diff, sides, from_legacy, from_im).await?;
        Ok(Checked::Full(digest))
    }

    /// The findings of one message comparison: each message a side lacks is repaired from the other side's copy
    /// (`from_legacy` builds the event of a legacy message, `from_im` the item and repair of an IM one), unless it
    /// is itself a copy whose original is gone or the conversation is absent where it is missing.
    #[allow(clippy::too_many_arguments)]
    async fn message_findings(
        &self,
        report: &mut Report,
        kind: Kind,
        key: &ConversationKey,
        dry_run: bool,
        diff: &MessageDiff,
        sides: Sides<'_>,
        from_legacy: impl Fn(&StoredMessage) -> Event,
        from_im: impl Fn(usize) -> (String, Envelope),
    ) -> Result<(), ReconcileError> {
        for &li in &diff.missing_in_im {
            let m = &sides.legacy[li];
            let repair = match (sides.l[li].legacy_origin, sides.absent_on_im) {
                (false, _) => Err(COPY_OF_GONE_IM),
                (true, Some(absent)) => Err(absent),
                (true, None) => Ok(legacy_repair(key, m, from_legacy(m))),
            };
            self.finding(report, kind, Difference::MissingInIm, key, &m.id, repair, dry_run, serde_json::Value::Null)
                .await?;
        }
        for &ii in &diff.missing_in_legacy {
            let (item, envelope) = from_im(ii);
            let repair = match (sides.r[ii].legacy_origin, sides.absent_on_legacy) {
                (true, _) => Err(COPY_OF_GONE_LEGACY),
                (false, Some(absent)) => Err(absent),
                (false, None) => Ok(envelope),
            };
            self.finding(
                report,
                kind,
                Difference::MissingInLegacy,
                key,
                &item,
                repair,
                dry_run,
                serde_json::Value::Null,
            )
            .await?;
        }
        for &(li, _) in &diff.different {
            let id = &sides.legacy[li].id;
            self.finding(
                report,
                kind,
                Difference::Different,
                key,
                id,
                Err(CONTENT_DIFFERS),
                dry_run,
                serde_json::Value::Null,
            )
            .await?;
        }
        Ok(())
    }

    /// Counts one more profile difference that the event `id`, produced for another field, repairs too.
    fn also_repaired(
        &self,
        report: &mut Report,
        kind: Kind,
        key: &ConversationKey,
        item: &str,
        id: &EventId,
        dry_run: bool,
    ) {
        let row = report.row(kind);
        row.different += 1;
        if !dry_run {
            row.repaired += 1;
        }
        report.findings.push(Finding {
            conversation: key.to_string(),
            kind,
            difference: Difference::Different,
            item: item.to_owned(),
            repair_event: Some(id.to_string()),
            not_repaired: dry_run.then(|| "dry run".into()),
        });
    }

    /// Counts one difference and, unless this is a dry run, produces its repair event, with the evidence the repair
    /// rests on (each side's view; `Null` where the difference is the evidence) in the evidence header.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finding(
        &self,
        report: &mut Report,
        kind: Kind,
        difference: Difference,
        key: &ConversationKey,
        item: &str,
        repair: Result<Envelope, &'static str>,
        dry_run: bool,
        seen: serde_json::Value,
    ) -> Result<(), ReconcileError> {
        let row = report.row(kind);
        match difference {
            Difference::MissingInIm => row.missing_in_im += 1,
            Difference::MissingInLegacy => row.missing_in_legacy += 1,
            Difference::Different => row.different += 1,
            Difference::Order => row.out_of_order += 1,
        }
        let mut finding = Finding {
            conversation: key.to_string(),
            kind,
            difference,
            item: item.to_owned(),
            repair_event: None,
            not_repaired: None,
        };
        match (repair, &self.producer) {
            (Err(why), _) => finding.not_repaired = Some(why.into()),
            (Ok(env), _) if dry_run => {
                finding.repair_event = Some(env.id.to_string());
                finding.not_repaired = Some("dry run".into());
            }
            (Ok(env), Some(producer)) => {
                // The topic the event would have arrived on: legacy-origin events feed to-im, IM-origin to-legacy.
                let topic = match env.source {
                    Source::Legacy => &self.topics.legacy_events,
                    Source::Im => &self.topics.im_events,
                };
                let mut evidence = serde_json::json!({
                    "conversation": key.as_str(), "kind": kind.as_str(), "item": item,
                    "checked_at": TimestampMs::now().0,
                });
                if !seen.is_null() {
                    evidence["seen"] = seen;
                }
                let evidence = evidence.to_string();
                let payload = env.to_json();
                let headers: [(&str, &[u8]); 3] = [
                    (ORIGIN_HEADER, ORIGIN_RECONCILE.as_bytes()),
                    (DIFFERENCE_HEADER, difference.as_str().as_bytes()),
                    (EVIDENCE_HEADER, evidence.as_bytes()),
                ];
                producer
                    .send(
                        topic,
                        Outgoing { key: env.conversation.as_str().as_bytes(), payload: &payload, headers: &headers },
                    )
                    .await?;
                tracing::info!(event_id = %env.id, conversation = %key, topic = %topic, difference = difference.as_str(),
                    "reconcile repair produced");
                report.row(kind).repaired += 1;
                finding.repair_event = Some(env.id.to_string());
            }
            (Ok(_), None) => finding.not_repaired = Some("no producer".into()),
        }
        report.findings.push(finding);
        Ok(())
    }
}

/// The two users of a `c2c:<a>:<b>` key (none for other keys).
fn c2c_users(k: &ConversationKey) -> Vec<UserId> {
    match k.as_str().strip_prefix("c2c:").and_then(|rest| rest.split_once(':')) {
        Some((a, b)) => vec![UserId::new_unchecked(a), UserId::new_unchecked(b)],
        None => Vec::new(),
    }
}

/// An IM message as compared. A copy of a legacy message carries the marker in its custom data (`marker`: the
/// custom data and the message's random) and is known by the legacy identity; one written on IM by `im_identity`.
fn im_msg(
    from: &str,
    marker: (Option<&str>, impl std::fmt::Display),
    body: &[MsgElement],
    native_id: String,
    im_identity: impl FnOnce() -> String,
) -> Msg {
    let (ccd, random) = marker;
    let (identity, legacy_origin, custom_data) = match decode_marker(ccd) {
        Some(cd) => (format!("legacy:{from}:{random}"), true, cd),
        None => (im_identity(), false, ccd.filter(|s| !s.is_empty()).map(str::to_owned)),
    };
    Msg {
        identity,
        native_id,
        legacy_origin,
        from: from.to_owned(),
        body: from_im_body(body).unwrap_or_default(),
        custom_data,
    }
}

/// Compares one conversation's messages on both sides and counts what was checked in `kind`'s row.
fn compare_counted(report: &mut Report, kind: Kind, legacy: &[Msg], im: &[Msg]) -> MessageDiff {
    let diff = compare(legacy, im);
    let row = report.row(kind);
    row.checked += (legacy.len() + diff.missing_in_legacy.len()) as u64;
    row.identical += diff.identical as u64;
    row.out_of_order += u64::from(diff.out_of_order);
    diff
}

fn legacy_msg(m: &StoredMessage) -> Msg {
    let (identity, legacy_origin) = match im_identity_of_legacy_id(&m.id) {
        Some(id) => (id.to_owned(), false),
        None => (legacy_identity(m.from.as_str(), &m.id), true),
    };
    Msg {
        identity,
        native_id: m.id.clone(),
        legacy_origin,
        from: m.from.to_string(),
        body: m.body.clone(),
        custom_data: m.custom_data.clone(),
    }
}

/// The repair of a group profile difference: the side that changed its profile last is right, known from
/// legacy's `profile_updated_at` (ms) and IM's `LastInfoTime` (s). A copy is applied when it arrives, so the side
/// that received a change always shows the later time; only a change that never arrived leaves the side that
/// made it later. Within the same second (IM's resolution) the answer is unknown: reported only.
fn profile_repair(
    key: &ConversationKey,
    group_id: &GroupId,
    l: &GroupState,
    i: &imbridge_im::types::group::GroupInfo,
) -> Result<Envelope, &'static str> {
    let (Some(legacy_ms), Some(im_s)) = (l.profile_updated_at, i.last_info_time) else { return Err(PROFILE_TIMES) };
    let text = |s: Option<&str>| Some(s.unwrap_or("").to_owned());
    let (source, time, update) = if legacy_ms.0 >= im_s.saturating_add(1).saturating_mul(1000) {
        let u = GroupUpdated {
            group_id: group_id.clone(),
            operator: None,
            name: Some(l.profile.name.clone()),
            introduction: text(l.profile.introduction.as_deref()),
            notification: text(l.profile.notification.as_deref()),
            face_url: text(l.profile.face_url.as_deref()),
        };
        (Source::Legacy, legacy_ms, u)
    } else if im_s.saturating_mul(1000) > legacy_ms.0 {
        let u = GroupUpdated {
            group_id: group_id.clone(),
            operator: None,
            name: text(i.name.as_deref()),
            introduction: text(i.introduction.as_deref()),
            notification: text(i.notification.as_deref()),
            face_url: text(i.face_url.as_deref()),
        };
        (Source::Im, TimestampMs(im_s.saturating_mul(1000)), u)
    } else {
        return Err(PROFILE_TIMES);
    };
    // Ids from the winning side's change time: a repeated repair of the same change is the same event.
    let id = match source {
        Source::Legacy => EventId::legacy(&format!("reconcile:{group_id}:profile:{}", time.0)),
        Source::Im => {
            let change = serde_json::to_vec(&update).unwrap_or_default();
            EventId::im_group_event(group_id, "reconcile.profile", time.0, &change)
        }
    };
    Ok(Envelope::recorded_now(id, source, key.clone(), time, Event::GroupUpdated(update)))
}

/// The profile fields that differ (absent and empty are the same: IM answers "" for unset text fields).
fn profile_differences(l: &GroupState, i: &imbridge_im::types::group::GroupInfo) -> Vec<&'static str> {
    let l = &l.profile;
    let norm = |s: Option<&str>| s.unwrap_or("").to_owned();
    let mut out = Vec::new();
    if norm(Some(&l.name)) != norm(i.name.as_deref()) {
        out.push("name");
    }
    if norm(l.introduction.as_deref()) != norm(i.introduction.as_deref()) {
        out.push("introduction");
    }
    if norm(l.notification.as_deref()) != norm(i.notification.as_deref()) {
        out.push("notification");
    }
    if norm(l.face_url.as_deref()) != norm(i.face_url.as_deref()) {
        out.push("face_url");
    }
    if l.owner.as_ref().map(|o| o.as_str()) != i.owner_account.as_deref().filter(|o| !o.is_empty()) {
        out.push("owner");
    }
    out
}

/// The repair of a message IM lacks: legacy's message as legacy's own change event carries it.
fn legacy_repair(key: &ConversationKey, m: &StoredMessage, event: Event) -> Envelope {
    Envelope::recorded_now(EventId::legacy(&m.id), Source::Legacy, key.clone(), m.time, event)
}

/// The repair of a message legacy lacks: IM's message at IM's second, as its callback would have carried it.
fn im_repair(key: &ConversationKey, id: EventId, msg_time_stamp: i64, event: Event) -> Envelope {
    Envelope::recorded_now(id, Source::Im, key.clone(), TimestampMs(msg_time_stamp.saturating_mul(1000)), event)
}

/// One conversation's messages as both sides hold them, for [`Reconciler::message_findings`].
struct Sides<'a> {
    /// Legacy's messages, in the order of `l`.
    legacy: &'a [StoredMessage],
    /// Legacy's messages compared.
    l: &'a [Msg],
    /// IM's messages compared.
    r: &'a [Msg],
    /// Why nothing can be repaired on IM (the conversation is not there), if so.
    absent_on_im: Option<&'static str>,
    /// Why nothing can be repaired on legacy, if so.
    absent_on_legacy: Option<&'static str>,
}
