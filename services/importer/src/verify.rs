//! `imbridge verify DIR`: reads IM back through its query APIs and compares it with the export.
//!
//! What is expected is derived from the same import plan the import produced (valid records only), with
//! the same rules the apply follows, so verify and import can never disagree about *what* should be there:
//!
//! | kind | read with | compared |
//! | --- | --- | --- |
//! | accounts | `account_check` | every account `Imported` |
//! | profiles | `portrait_get` | every field the export sets; nick and avatar fall back to the account's |
//! | friends | `friend_get` (paged) | each friendship's presence, AddSource, Remark, lists, AddWording, AddTime; extras |
//! | c2c messages | `admin_getroammsg` (paged) | per conversation, each message found by MsgSeq/MsgRandom: count, order (time, MsgSeq), sender, MsgTimeStamp, body, custom data |
//! | groups | `get_group_info` | type, name, owner, introduction, notification, face, max members, join option, creation time |
//! | group members | `get_group_member_info` (paged) | membership, role, JoinTime (when the import could send it); extras |
//! | group messages | `group_msg_get_simple` (paged) | per group: count, order (MsgSeq), sender, Random, SendTime ([`crate::schedule`]), body |
//! | member unread | `get_group_info` + members' `MsgSeq` | unread = last seq − read seq = min(export unread, messages) (0 without one); not for ChatRoom |
//!
//! C2C read marks have no row: IM exposes no read position, and history imported with `SyncFromOldSystem` 2
//! never counts as unread, so `get_c2c_unread_msg_num` shows 0 whether a read mark was applied or not — a row
//! there could never fail. A read mark becomes visible only through a message that arrives later, which verify
//! cannot send without changing IM; the import report counts each `admin_set_msg_read` IM accepted, and the
//! e2e test of verify probes the read position with such a message.
//!
//! Every comparison counts one item as matched, mismatched, missing or extra; the first differences are kept
//! as examples. Queries run concurrently within each API's client-side quota.

use crate::table::{Align, Table};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::apply::{c2c, groups as g, users};
use futures::stream::{self, StreamExt};
use imbridge_core::event::{
    GroupType, ImportAccount, ImportC2cMessage, ImportFriendship, ImportGroup, ImportGroupMember, ImportGroupMessage,
    ImportProfile, MemberRole,
};
use imbridge_core::{ConversationKey, Envelope, Event, TimestampMs};
use imbridge_im::types::account::{PortraitGetReq, ProfileValue, tags};
use imbridge_im::types::group::{GROUP_PROFILE_FIELDS, GroupInfoFilter, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER};
use imbridge_im::types::sns::{SnsValue, tags as sns_tags};
use imbridge_im::{ImClient, from_im_body};
use serde::{Deserialize, Serialize};

use crate::schedule::SendTimes;
use crate::{Error, ImportPlan, ValidateOptions};

/// How verify runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub validate: ValidateOptions,
    /// Conversations, users or groups read at once.
    pub concurrency: usize,
    /// Differences kept as examples.
    pub max_examples: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { validate: ValidateOptions::default(), concurrency: 32, max_examples: 30 }
    }
}

/// One kind's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCheck {
    pub kind: String,
    /// Items the export says IM must hold.
    pub expected: u64,
    pub matched: u64,
    /// Present, but different (a field, or the position in the conversation).
    pub mismatched: u64,
    pub missing: u64,
    /// In IM but not in the export.
    pub extra: u64,
}

impl KindCheck {
    pub fn is_ok(&self) -> bool {
        self.mismatched == 0 && self.missing == 0 && self.extra == 0 && self.matched == self.expected
    }
}

/// The outcome of `imbridge verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub kinds: Vec<KindCheck>,
    /// The first differences found.
    pub examples: Vec<String>,
    /// Differences beyond `examples`.
    pub more: u64,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.kinds.iter().all(KindCheck::is_ok)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        const KINDS: Table = Table(&[
            Align::Left(16),
            Align::Right(9),
            Align::Right(9),
            Align::Right(10),
            Align::Right(8),
            Align::Right(7),
        ]);
        KINDS.row(&mut s, &[&"kind", &"expected", &"matched", &"mismatched", &"missing", &"extra"], "  result");
        for k in &self.kinds {
            let result = if k.is_ok() { "  ok" } else { "  MISMATCH" };
            KINDS.row(&mut s, &[&k.kind, &k.expected, &k.matched, &k.mismatched, &k.missing, &k.extra], result);
        }
        if !self.examples.is_empty() {
            let _ = writeln!(s, "differences:");
            for e in &self.examples {
                let _ = writeln!(s, "  {e}");
            }
            if self.more > 0 {
                let _ = writeln!(s, "  … and {} more", self.more);
            }
        }
        let _ = writeln!(s, "{}", if self.is_ok() { "verify: IM matches the export" } else { "verify: MISMATCH" });
        s
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// What the export says IM must hold (valid records only).
#[derive(Debug, Default)]
struct Expected {
    accounts: Vec<ImportAccount>,
    profiles: HashMap<String, ImportProfile>,
    friends: BTreeMap<String, Vec<ImportFriendship>>,
    c2c: BTreeMap<ConversationKey, Vec<(Envelope, ImportC2cMessage)>>,
    groups: BTreeMap<String, ImportGroup>,
    members: BTreeMap<String, Vec<ImportGroupMember>>,
    /// Per group, in legacy order, with the SendTime IM must show.
    messages: BTreeMap<String, Vec<(Envelope, ImportGroupMessage, i64)>>,
    unread: HashMap<(String, String), u32>,
}

fn expected(plan: &ImportPlan) -> Result<Expected, Error> {
    let mut e = Expected::default();
    for env in plan.accounts() {
        if let Event::ImportAccount(a) = env?.event {
            e.accounts.push(a);
        }
    }
    for env in plan.users() {
        match env?.event {
            Event::ImportProfile(p) => {
                e.profiles.insert(p.user_id.as_str().to_owned(), p);
            }
            Event::ImportFriendship(f) => e.friends.entry(f.user_id.as_str().to_owned()).or_default().push(f),
            _ => {}
        }
    }
    for env in plan.c2c() {
        let env = env?;
        // Read marks (import.c2c_read) have no row: see the module docs.
        if let Event::ImportC2cMessage(m) = &env.event {
            let m = m.clone();
            e.c2c.entry(env.conversation.clone()).or_default().push((env, m));
        }
    }
    let mut send_times: Option<(String, SendTimes)> = None;
    for env in plan.groups() {
        let env = env?;
        match &env.event {
            Event::ImportGroup(gr) => {
                e.groups.insert(gr.group_id.as_str().to_owned(), gr.clone());
            }
            Event::ImportGroupMember(m) => e.members.entry(m.group_id.as_str().to_owned()).or_default().push(m.clone()),
            Event::ImportGroupMessage(m) => {
                let gid = m.group_id.as_str().to_owned();
                if send_times.as_ref().is_none_or(|(x, _)| *x != gid) {
                    let created = e.groups.get(&gid).map_or(0, |gr| gr.created_at.as_secs());
                    send_times = Some((gid.clone(), SendTimes::new(created)));
                }
                let t = send_times.as_mut().map_or(0, |(_, s)| s.next(m.sent_at.as_secs()));
                let m = m.clone();
                e.messages.entry(gid).or_default().push((env, m, t));
            }
            Event::ImportMemberUnread(u) => {
                e.unread.insert((u.group_id.as_str().to_owned(), u.user_id.as_str().to_owned()), u.unread);
            }
            _ => {}
        }
    }
    Ok(e)
}

/// Counts and examples, shared by concurrent checks.
#[derive(Debug)]
struct Tally {
    kinds: Mutex<BTreeMap<&'static str, KindCheck>>,
    examples: Mutex<(Vec<String>, u64)>,
    max_examples: usize,
}

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Matched,
    Mismatched,
    Missing,
    Extra,
}

impl Tally {
    fn new(max_examples: usize) -> Self {
        Self { kinds: Mutex::new(BTreeMap::new()), examples: Mutex::new((Vec::new(), 0)), max_examples }
    }

    fn expect(&self, kind: &'static str, n: u64) {
        if let Ok(mut k) = self.kinds.lock() {
            k.entry(kind).or_insert_with(|| KindCheck { kind: kind.to_owned(), ..KindCheck::default() }).expected += n;
        }
    }

    fn count(&self, kind: &'static str, v: Verdict, n: u64, example: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        if let Ok(mut k) = self.kinds.lock() {
            let c = k.entry(kind).or_insert_with(|| KindCheck { kind: kind.to_owned(), ..KindCheck::default() });
            match v {
                Verdict::Matched => c.matched += n,
                Verdict::Mismatched => c.mismatched += n,
                Verdict::Missing => c.missing += n,
                Verdict::Extra => c.extra += n,
            }
        }
        if !matches!(v, Verdict::Matched)
            && let Ok(mut ex) = self.examples.lock()
        {
            if ex.0.len() < self.max_examples {
                ex.0.push(format!("{kind}: {}", example()));
            } else {
                ex.1 += 1;
            }
        }
    }

    fn ok(&self, kind: &'static str, n: u64) {
        self.count(kind, Verdict::Matched, n, String::new);
    }
}

const ACCOUNTS: &str = "accounts";
const PROFILES: &str = "profiles";
const FRIENDS: &str = "friends";
const C2C: &str = "c2c_messages";
const GROUPS: &str = "groups";
const MEMBERS: &str = "group_members";
const GROUP_MESSAGES: &str = "group_messages";
const UNREAD: &str = "member_unread";
const ORDER: [&str; 8] = [ACCOUNTS, PROFILES, FRIENDS, C2C, GROUPS, MEMBERS, GROUP_MESSAGES, UNREAD];

/// Verifies IM against the export in `dir`.
pub async fn verify(dir: &std::path::Path, im: &ImClient, options: &VerifyOptions) -> Result<VerifyReport, Error> {
    let (plan, _) = {
        let dir = dir.to_path_buf();
        let v = options.validate.clone();
        tokio::task::spawn_blocking(move || crate::check_export(&dir, &v, false))
            .await
            .map_err(|e| Error::Run(format!("validation task failed: {e}")))??
    };
    let e = Arc::new(
        tokio::task::spawn_blocking(move || expected(&plan))
            .await
            .map_err(|e| Error::Run(format!("plan task failed: {e}")))??,
    );
    let t = Arc::new(Tally::new(options.max_examples));
    for k in ORDER {
        t.expect(k, 0);
    }
    let n = options.concurrency.max(1);
    // Each kind uses its own APIs (own quotas): run them side by side.
    let results = futures::join!(
        accounts(im, &e, &t),
        profiles(im, &e, &t),
        friends(im, &e, &t, n),
        c2c_messages(im, &e, &t, n),
        groups(im, &e, &t, n),
    );
    results.0?;
    results.1?;
    results.2?;
    results.3?;
    results.4?;
    let kinds = t.kinds.lock().map(|k| k.clone()).unwrap_or_default();
    let (examples, more) = t.examples.lock().map(|x| x.clone()).unwrap_or_default();
    Ok(VerifyReport { kinds: ORDER.iter().filter_map(|k| kinds.get(k).cloned()).collect(), examples, more })
}

async fn accounts(im: &ImClient, e: &Expected, t: &Tally) -> Result<(), Error> {
    let ids: Vec<String> = e.accounts.iter().map(|a| a.user_id.as_str().to_owned()).collect();
    t.expect(ACCOUNTS, ids.len() as u64);
    let items = im.check_accounts(&ids).await?;
    let imported: BTreeSet<&str> = items
        .iter()
        .filter(|r| r.result_code == 0 && r.account_status == imbridge_im::types::account::ACCOUNT_IMPORTED)
        .map(|r| r.user_id.as_str())
        .collect();
    for id in &ids {
        if imported.contains(id.as_str()) {
            t.ok(ACCOUNTS, 1);
        } else {
            t.count(ACCOUNTS, Verdict::Missing, 1, || format!("{id} is not imported"));
        }
    }
    Ok(())
}

/// The profile tags IM must show for a user: the account's nick/face as a base, the profile's fields on top
/// (the users topic applies after the accounts topic).
fn expected_profile(a: &ImportAccount, p: Option<&ImportProfile>) -> BTreeMap<String, ProfileValue> {
    let mut out = BTreeMap::new();
    if let Some(n) = &a.nick {
        out.insert(tags::NICK.to_owned(), ProfileValue::Str(n.clone()));
    }
    if let Some(f) = &a.face_url {
        out.insert(tags::IMAGE.to_owned(), ProfileValue::Str(f.clone()));
    }
    if let Some(p) = p {
        for item in users::profile_items(p) {
            out.insert(item.tag, item.value);
        }
    }
    out
}

async fn profiles(im: &ImClient, e: &Expected, t: &Tally) -> Result<(), Error> {
    let expected: Vec<(String, BTreeMap<String, ProfileValue>)> = e
        .accounts
        .iter()
        .map(|a| (a.user_id.as_str().to_owned(), expected_profile(a, e.profiles.get(a.user_id.as_str()))))
        .filter(|(_, tags)| !tags.is_empty())
        .collect();
    t.expect(PROFILES, expected.len() as u64);
    for chunk in expected.chunks(imbridge_im::types::account::PORTRAIT_GET_MAX) {
        let tag_list: BTreeSet<String> = chunk.iter().flat_map(|(_, m)| m.keys().cloned()).collect();
        let req = PortraitGetReq {
            to_account: chunk.iter().map(|(u, _)| u.clone()).collect(),
            tag_list: tag_list.into_iter().collect(),
        };
        let resp = im.portrait_get(&req).await?;
        for (user, want) in chunk {
            let Some(got) = resp.user_profile_item.iter().find(|p| p.to_account == *user && p.result_code == 0) else {
                t.count(PROFILES, Verdict::Missing, 1, || format!("no profile for {user}"));
                continue;
            };
            let diff: Vec<String> = want
                .iter()
                .filter(|(tag, v)| got.get(tag) != Some(v))
                .map(|(tag, v)| format!("{tag}: want {v:?}, IM has {:?}", got.get(tag)))
                .collect();
            if diff.is_empty() {
                t.ok(PROFILES, 1);
            } else {
                t.count(PROFILES, Verdict::Mismatched, 1, || format!("{user}: {}", diff.join("; ")));
            }
        }
    }
    Ok(())
}

async fn friends(im: &ImClient, e: &Expected, t: &Tally, n: usize) -> Result<(), Error> {
    t.expect(FRIENDS, e.friends.values().map(|v| v.len() as u64).sum());
    let users: Vec<String> = e.accounts.iter().map(|a| a.user_id.as_str().to_owned()).collect();
    let results: Vec<Result<(), Error>> = stream::iter(users)
        .map(|user| async move {
            let got = im.all_friends(&user).await?;
            let want: &[ImportFriendship] = e.friends.get(&user).map_or(&[], Vec::as_slice);
            for f in want {
                let Some(friend) = got.iter().find(|x| x.to_account == f.friend_id.as_str()) else {
                    t.count(FRIENDS, Verdict::Missing, 1, || format!("{user} → {} missing", f.friend_id));
                    continue;
                };
                let item = users::friend_item(f);
                let mut diff = Vec::new();
                let mut check = |tag: &str, want: Option<SnsValue>| {
                    let have = friend.get(tag).cloned();
                    let same = match (&want, &have) {
                        // Unset fields are absent, or empty (UNCONFIRMED which; both mean "not set").
                        (None, None) => true,
                        (None, Some(SnsValue::Str(s))) => s.is_empty(),
                        (None, Some(SnsValue::List(l))) => l.is_empty(),
                        (None, Some(SnsValue::Int(i))) => *i == 0,
                        (Some(w), Some(h)) => w == h,
                        (Some(_), None) => false,
                    };
                    if !same {
                        diff.push(format!("{tag}: want {want:?}, IM has {have:?}"));
                    }
                };
                check(sns_tags::ADD_SOURCE, Some(SnsValue::Str(item.add_source.clone())));
                check(sns_tags::REMARK, item.remark.clone().map(SnsValue::Str));
                check(sns_tags::GROUP, item.group_name.clone().map(SnsValue::List));
                check(sns_tags::ADD_WORDING, item.add_wording.clone().map(SnsValue::Str));
                if let Some(at) = item.add_time {
                    check(sns_tags::ADD_TIME, Some(SnsValue::Int(at)));
                }
                if diff.is_empty() {
                    t.ok(FRIENDS, 1);
                } else {
                    t.count(FRIENDS, Verdict::Mismatched, 1, || {
                        format!("{user} → {}: {}", f.friend_id, diff.join("; "))
                    });
                }
            }
            for x in &got {
                if !want.iter().any(|f| f.friend_id.as_str() == x.to_account) {
                    t.count(FRIENDS, Verdict::Extra, 1, || format!("{user} → {} is not in the export", x.to_account));
                }
            }
            Ok(())
        })
        .buffer_unordered(n)
        .collect()
        .await;
    results.into_iter().collect()
}

/// IM's `CloudCustomData` says "none" as absent or empty.
fn same_custom(want: Option<&str>, have: Option<&str>) -> bool {
    want.unwrap_or("") == have.unwrap_or("")
}

async fn c2c_messages(im: &ImClient, e: &Expected, t: &Tally, n: usize) -> Result<(), Error> {
    t.expect(C2C, e.c2c.values().map(|v| v.len() as u64).sum());
    let far_future = TimestampMs::now().as_secs() + 86_400;
    let results: Vec<Result<(), Error>> = stream::iter(e.c2c.iter())
        .map(|(key, msgs)| async move {
            let Some((_, first)) = msgs.first() else { return Ok(()) };
            let (a, b) = (first.from.as_str(), first.to.as_str());
            let got = im.c2c_history(a, b, 0, far_future).await?;
            // Expected order: legacy order, which is (second, msg_seq) by construction.
            let mut want: Vec<(&Envelope, &ImportC2cMessage)> = msgs.iter().map(|(e, m)| (e, m)).collect();
            want.sort_by_key(|(_, m)| (m.sent_at.as_secs(), m.msg_seq));
            // A message is identified by (MsgSeq, MsgRandom), both derived from the legacy message; its time is
            // compared like any other field, so a message IM shows at another time (in another place of the
            // conversation) is "mismatched", not "missing" plus "extra".
            let mut by_key: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
            for (i, m) in got.iter().enumerate() {
                by_key.entry((m.msg_seq, m.msg_random)).or_default().push(i);
            }
            let mut used = vec![false; got.len()];
            let mut matched_positions: Vec<usize> = Vec::new();
            for (env, m) in &want {
                let req = c2c::import_msg_request(env, m);
                let candidates = by_key.get(&(m.msg_seq, req.msg_random)).map_or(&[][..], Vec::as_slice);
                // With several (a re-import under another time), the one at the expected time is the match.
                let pick = candidates
                    .iter()
                    .copied()
                    .find(|i| !used[*i] && got[*i].msg_time_stamp == req.msg_time_stamp)
                    .or_else(|| candidates.iter().copied().find(|i| !used[*i]));
                let Some(i) = pick else {
                    t.count(C2C, Verdict::Missing, 1, || format!("{key}: {} ({}) missing", m.legacy_id, env.id));
                    continue;
                };
                used[i] = true;
                let have = &got[i];
                let body = from_im_body(&have.msg_body);
                let same = have.from_account == m.from.as_str()
                    && have.to_account == m.to.as_str()
                    && have.msg_time_stamp == req.msg_time_stamp
                    && body.as_ref().is_ok_and(|b| *b == m.body)
                    && same_custom(m.custom_data.as_deref(), have.cloud_custom_data.as_deref());
                if same {
                    matched_positions.push(i);
                    t.ok(C2C, 1);
                } else {
                    t.count(C2C, Verdict::Mismatched, 1, || {
                        format!(
                            "{key}: {} differs (from {} to {}, time {} want {}, body {:?})",
                            m.legacy_id,
                            have.from_account,
                            have.to_account,
                            have.msg_time_stamp,
                            req.msg_time_stamp,
                            body
                        )
                    });
                }
            }
            // Order: the matched messages must appear in IM in legacy order.
            if matched_positions.windows(2).any(|w| w[0] > w[1]) {
                let out_of_place = matched_positions.windows(2).filter(|w| w[0] > w[1]).count() as u64;
                t.count(C2C, Verdict::Mismatched, out_of_place, || format!("{key}: messages out of legacy order"));
            }
            let extra = used.iter().filter(|u| !**u).count() as u64;
            t.count(C2C, Verdict::Extra, extra, || format!("{key}: {extra} message(s) in IM not in the export"));
            Ok(())
        })
        .buffer_unordered(n)
        .collect()
        .await;
    results.into_iter().collect()
}

fn role_name(r: MemberRole) -> &'static str {
    match r {
        MemberRole::Owner => ROLE_OWNER,
        MemberRole::Admin => ROLE_ADMIN,
        MemberRole::Member => ROLE_MEMBER,
    }
}

async fn groups(im: &ImClient, e: &Expected, t: &Tally, n: usize) -> Result<(), Error> {
    t.expect(GROUPS, e.groups.len() as u64);
    t.expect(MEMBERS, e.members.values().map(|v| v.len() as u64).sum());
    t.expect(GROUP_MESSAGES, e.messages.values().map(|v| v.len() as u64).sum());
    let ids: Vec<String> = e.groups.keys().cloned().collect();
    let filter = GroupInfoFilter {
        group_base_info_filter: Some(GROUP_PROFILE_FIELDS.map(str::to_owned).to_vec()),
        ..GroupInfoFilter::default()
    };
    let infos = im.group_infos(&ids, Some(filter)).await?;
    let results: Vec<Result<(), Error>> = stream::iter(e.groups.iter())
        .map(|(gid, gr)| {
            let info = infos.iter().find(|i| i.group_id == *gid && i.error_code == 0).cloned();
            async move {
                let Some(info) = info else {
                    t.count(GROUPS, Verdict::Missing, 1, || format!("group {gid} missing"));
                    let members = e.members.get(gid).map_or(0, |v| v.len() as u64);
                    t.count(MEMBERS, Verdict::Missing, members, || format!("members of {gid} missing"));
                    let msgs = e.messages.get(gid).map_or(0, |v| v.len() as u64);
                    t.count(GROUP_MESSAGES, Verdict::Missing, msgs, || format!("messages of {gid} missing"));
                    return Ok(());
                };
                check_group_info(t, gid, gr, &info);
                let members =
                    im.all_group_members(gid, Some(vec!["Role".into(), "JoinTime".into(), "MsgSeq".into()])).await?;
                check_members(t, e, gid, gr, &members);
                let history = im.group_history(gid, true).await?;
                check_group_messages(t, e, gid, &history);
                if !matches!(gr.group_type, GroupType::ChatRoom) {
                    let last_seq = info.next_msg_seq.unwrap_or(1).saturating_sub(1);
                    check_unread(t, e, gid, last_seq, &members);
                }
                Ok(())
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    results.into_iter().collect()
}

fn check_group_info(t: &Tally, gid: &str, gr: &ImportGroup, info: &imbridge_im::types::group::GroupInfo) {
    let import = g::import_group_request(gr);
    let req = &import.group;
    let mut diff = Vec::new();
    let mut eq = |what: &str, want: Option<String>, have: Option<String>| {
        if want.is_some() && want != have {
            diff.push(format!("{what}: want {want:?}, IM has {have:?}"));
        }
    };
    eq("Type", Some(req.group_type.clone()), info.group_type.clone());
    eq("Name", Some(req.name.clone()), info.name.clone());
    eq("Owner_Account", req.owner_account.clone(), info.owner_account.clone());
    eq("Introduction", req.introduction.clone(), info.introduction.clone());
    eq("Notification", req.notification.clone(), info.notification.clone());
    eq("FaceUrl", req.face_url.clone(), info.face_url.clone());
    eq("MaxMemberNum", req.max_member_count.map(|m| m.to_string()), info.max_member_num.map(|m| m.to_string()));
    eq("ApplyJoinOption", req.apply_join_option.clone(), info.apply_join_option.clone());
    eq("CreateTime", import.create_time.map(|c| c.to_string()), info.create_time.map(|c| c.to_string()));
    if diff.is_empty() {
        t.ok(GROUPS, 1);
    } else {
        t.count(GROUPS, Verdict::Mismatched, 1, || format!("{gid}: {}", diff.join("; ")));
    }
}

fn check_members(t: &Tally, e: &Expected, gid: &str, gr: &ImportGroup, got: &[imbridge_im::types::group::GroupMember]) {
    let want: &[ImportGroupMember] = e.members.get(gid).map_or(&[], Vec::as_slice);
    let created = gr.created_at.as_secs();
    for m in want {
        let Some(have) = got.iter().find(|x| x.member_account == m.user_id.as_str()) else {
            t.count(MEMBERS, Verdict::Missing, 1, || format!("{gid}: member {} missing", m.user_id));
            continue;
        };
        let is_owner = gr.profile.owner.as_ref() == Some(&m.user_id);
        let role = if is_owner { ROLE_OWNER } else { role_name(m.role) };
        let mut diff = Vec::new();
        if have.role.as_deref() != Some(role) {
            diff.push(format!("role: want {role}, IM has {:?}", have.role));
        }
        // The owner joins at creation (import_group); others carry their legacy time only when IM accepts it.
        if !is_owner
            && let Some(jt) = g::join_time(m, Some(created))
            && have.join_time != Some(jt)
        {
            diff.push(format!("JoinTime: want {jt}, IM has {:?}", have.join_time));
        }
        if diff.is_empty() {
            t.ok(MEMBERS, 1);
        } else {
            t.count(MEMBERS, Verdict::Mismatched, 1, || format!("{gid}: {}: {}", m.user_id, diff.join("; ")));
        }
    }
    for x in got {
        if !want.iter().any(|m| m.user_id.as_str() == x.member_account) {
            t.count(MEMBERS, Verdict::Extra, 1, || format!("{gid}: member {} is not in the export", x.member_account));
        }
    }
}

fn check_group_messages(t: &Tally, e: &Expected, gid: &str, history: &[imbridge_im::types::group::GroupMsg]) {
    let want: &[(Envelope, ImportGroupMessage, i64)] = e.messages.get(gid).map_or(&[], Vec::as_slice);
    // Join/leave notices (`IsSystemMsg` 1) are IM's own, never imported messages.
    let stored: Vec<&imbridge_im::types::group::GroupMsg> =
        history.iter().filter(|m| m.is_place_msg == 0 && m.is_system_msg != Some(1)).collect();
    let mut used = vec![false; stored.len()];
    let mut positions = Vec::new();
    for (env, m, send_time) in want {
        let random = env.id.stable_u32();
        let Some(i) = (0..stored.len()).find(|i| !used[*i] && stored[*i].msg_random == random) else {
            t.count(GROUP_MESSAGES, Verdict::Missing, 1, || format!("{gid}: {} missing", m.legacy_id));
            continue;
        };
        used[i] = true;
        let have = stored[i];
        let body = from_im_body(&have.msg_body);
        let same = have.from_account == m.from.as_str()
            && have.msg_time_stamp == *send_time
            && body.as_ref().is_ok_and(|b| *b == m.body);
        if same {
            positions.push(i);
            t.ok(GROUP_MESSAGES, 1);
        } else {
            t.count(GROUP_MESSAGES, Verdict::Mismatched, 1, || {
                format!(
                    "{gid}: {} differs (from {}, time {} want {send_time}, body {:?})",
                    m.legacy_id, have.from_account, have.msg_time_stamp, body
                )
            });
        }
    }
    // `group_history` lists ascending MsgSeq; legacy order must be preserved.
    let out_of_place = positions.windows(2).filter(|w| w[0] > w[1]).count() as u64;
    t.count(GROUP_MESSAGES, Verdict::Mismatched, out_of_place, || format!("{gid}: messages out of legacy order"));
    let extra = used.iter().filter(|u| !**u).count() as u64;
    t.count(GROUP_MESSAGES, Verdict::Extra, extra, || format!("{gid}: {extra} message(s) in IM not in the export"));
}

fn check_unread(t: &Tally, e: &Expected, gid: &str, last_seq: u64, got: &[imbridge_im::types::group::GroupMember]) {
    let want: &[ImportGroupMember] = e.members.get(gid).map_or(&[], Vec::as_slice);
    let messages = e.messages.get(gid).map_or(0, |v| v.len() as u64);
    t.expect(UNREAD, want.len() as u64);
    for m in want {
        let Some(have) = got.iter().find(|x| x.member_account == m.user_id.as_str()) else {
            t.count(UNREAD, Verdict::Missing, 1, || format!("{gid}: no read position for {}", m.user_id));
            continue;
        };
        // IM clamps the unread count to the group's messages (reference §6.4).
        let expected =
            e.unread.get(&(gid.to_owned(), m.user_id.as_str().to_owned())).map_or(0, |u| u64::from(*u)).min(messages);
        let unread = last_seq.saturating_sub(have.msg_seq.unwrap_or(last_seq));
        if unread == expected {
            t.ok(UNREAD, 1);
        } else {
            t.count(UNREAD, Verdict::Mismatched, 1, || {
                format!("{gid}: {} has {unread} unread, want {expected}", m.user_id)
            });
        }
    }
}
