//! `imbridge.import.groups`: `import_group` → `import_group_member` → `import_group_msg` →
//! `set_unread_msg_num`, then the group's done marker.
//!
//! Keyed by group (`group:<id>`); the plan emits each group's records in that order, so per-key order is the
//! dependency chain and different groups proceed independently. Lane batching combines a group's consecutive
//! members (≤ 100 per call) and messages (≤ 7 per call, ascending SendTime).
//!
//! **Group messages are not deduplicated by IM**, but IM refuses a message whose `SendTime` is not strictly
//! after the group's latest message. The importer gives every message a deterministic, strictly increasing
//! SendTime ([`super::headers::SEND_TIME`]: legacy second, pushed forward a second at a time past a
//! same-second predecessor). So "already imported" is decidable from IM alone: the first time this process
//! meets a group's messages it reads the group's newest messages (`group_msg_get_simple`) and treats every
//! record whose SendTime is at or before IM's latest as present — confirmed by its `Random` (= the record's
//! stable hash) when it falls inside the page that was read. Records re-produced after a crash, a replay of
//! the topic and a re-run all land there. After each call the handler advances its view itself.
//!
//! A member's legacy join time becomes `JoinTime` only when strictly after the group's creation (IM fails the
//! member otherwise); the owner is set by `import_group`, so the owner's member line answers "already a member".
//! Importing messages zeroes every member's unread count, hence `set_unread_msg_num` comes after them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use imbridge_core::event::{ApplyJoin, ImportGroup, ImportGroupMember, ImportGroupMessage, MemberRole};
use imbridge_core::{Envelope, Event, EventKind, Failure, TimestampMs};
use imbridge_im::types::group::{
    GROUP_MSG_GET_SIMPLE_MAX, GroupMsgGetSimpleReq, GroupSpec, IMPORT_GROUP_MEMBER_MAX, IMPORT_GROUP_MSG_MAX,
    ImportGroupMemberReq, ImportGroupMsgItem, ImportGroupMsgReq, ImportGroupReq, ImportMember, MEMBER_RESULT_ALREADY,
    MEMBER_RESULT_DONE, ROLE_ADMIN, SetUnreadMsgNumReq,
};
use imbridge_im::{Api, to_im_body};
use imbridge_kafka::{BatchOutcome, Handler, Outcome, Record};
use tracing::{debug, warn};

use super::settled::{SettledCache, batch_outcome};
use super::{ApplyContext, RecordOutcome, header_i64, headers, item_failure, outcome_of, single_outcome, unexpected};

/// IM's answers to `import_group` for a group id that is already taken: 10021 (in use), 10025 (in use and
/// the operator is its owner). For an idempotent import both mean "already present".
pub const GROUP_EXISTS_CODES: [i64; 2] = [10021, 10025];
/// IM's "group does not exist" codes (reading the history of a group that is not there yet).
const GROUP_MISSING_CODES: [i64; 2] = [10010, 10015];
/// `import_group_msg`'s per-message "invalid SendTime" (not after the latest message, or not before now).
const INVALID_SEND_TIME: i64 = 10004;

/// What this process knows of one group's history in IM.
#[derive(Debug, Default, Clone)]
struct History {
    /// SendTime of the newest message IM holds (0: none).
    latest: i64,
    /// Oldest SendTime covered by `randoms` (messages at or after it were read or imported by us).
    window_start: i64,
    /// `Random`s of the messages IM holds from `window_start` on.
    randoms: HashSet<u32>,
}

/// Applies every record kind of the groups topic.
#[derive(Debug)]
pub struct GroupsHandler {
    ctx: Arc<ApplyContext>,
    settled: SettledCache,
    history: Mutex<HashMap<String, History>>,
}

/// The `import_group` request for a group record.
pub fn import_group_request(g: &ImportGroup) -> ImportGroupReq {
    let mut group = GroupSpec::of(&g.group_id, g.group_type, &g.profile);
    group.max_member_count = g.max_members;
    group.apply_join_option = g.apply_join.map(|a| apply_join_value(a).to_owned());
    ImportGroupReq { group, create_time: Some(g.created_at.as_secs()) }
}

/// IM's `ApplyJoinOption` value.
pub fn apply_join_value(a: ApplyJoin) -> &'static str {
    match a {
        ApplyJoin::FreeAccess => "FreeAccess",
        ApplyJoin::NeedPermission => "NeedPermission",
        ApplyJoin::DisableApply => "DisableApply",
    }
}

/// The `JoinTime` to send: the legacy join second when strictly after the group's creation second, else none
/// (IM then records the import time).
pub fn join_time(m: &ImportGroupMember, group_created_secs: Option<i64>) -> Option<i64> {
    let joined = m.joined_at?.as_secs();
    match group_created_secs {
        Some(created) if joined > created => Some(joined),
        _ => None,
    }
}

/// One member of an `import_group_member` call.
pub fn member_item(m: &ImportGroupMember, group_created_secs: Option<i64>) -> ImportMember {
    ImportMember {
        member_account: m.user_id.as_str().to_owned(),
        // Only Admin may be given; the owner is set by import_group and members are the default.
        role: (m.role == MemberRole::Admin).then(|| ROLE_ADMIN.to_owned()),
        join_time: join_time(m, group_created_secs),
        unread_msg_num: None,
    }
}

/// One message of an `import_group_msg` call.
pub fn group_msg_item(env: &Envelope, m: &ImportGroupMessage, send_time: i64) -> ImportGroupMsgItem {
    ImportGroupMsgItem {
        from_account: m.from.as_str().to_owned(),
        send_time,
        random: Some(env.id.stable_u32()),
        msg_body: to_im_body(&m.body),
        topic_id: None,
        cloud_custom_data: None,
    }
}

/// A group message record with what its call needs.
struct Msg<'a> {
    record: &'a Record,
    env: Envelope,
    send_time: i64,
    random: u32,
}

impl GroupsHandler {
    pub fn new(ctx: Arc<ApplyContext>) -> Self {
        Self { ctx, settled: SettledCache::default(), history: Mutex::new(HashMap::new()) }
    }

    fn count(&self, kind: EventKind, o: &Outcome) {
        match o {
            Outcome::Done => self.ctx.stats.record(kind, RecordOutcome::Imported),
            Outcome::DeadLetter(_) => self.ctx.stats.record(kind, RecordOutcome::Failed),
            Outcome::Retry(_) | Outcome::Wait(_) => {}
        }
    }

    async fn group(&self, g: &ImportGroup) -> Outcome {
        match self.ctx.im.import_group(&import_group_request(g)).await {
            Ok(_) => {
                self.ctx.stats.record(EventKind::ImportGroup, RecordOutcome::Imported);
                Outcome::Done
            }
            Err(e) if e.code().is_some_and(|c| GROUP_EXISTS_CODES.contains(&c)) => {
                self.ctx.stats.record(EventKind::ImportGroup, RecordOutcome::AlreadyPresent);
                Outcome::Done
            }
            Err(e) => {
                let o = outcome_of(&e);
                self.count(EventKind::ImportGroup, &o);
                o
            }
        }
    }

    async fn members(&self, records: &[&Record], members: Vec<ImportGroupMember>) -> BatchOutcome {
        let Some(group_id) = members.first().map(|m| m.group_id.as_str().to_owned()) else {
            return BatchOutcome { done: 0, next: None };
        };
        let items =
            members.iter().zip(records).map(|(m, r)| member_item(m, header_i64(r, headers::GROUP_CREATED))).collect();
        let req = ImportGroupMemberReq { group_id, member_list: items };
        let resp = match self.ctx.im.import_group_member(&req).await {
            Ok(r) => r,
            Err(e) => {
                let o = outcome_of(&e);
                if matches!(o, Outcome::Retry(_)) {
                    return BatchOutcome { done: 0, next: Some(o) };
                }
                self.ctx.stats.add(EventKind::ImportGroupMember, RecordOutcome::Failed, records.len() as u64);
                return batch_outcome(&self.settled, records, vec![o; records.len()]);
            }
        };
        let verdicts = members
            .iter()
            .map(|m| {
                let result = resp.member_list.iter().find(|r| r.member_account == m.user_id.as_str()).map(|r| r.result);
                match result {
                    Some(MEMBER_RESULT_DONE) => {
                        self.ctx.stats.record(EventKind::ImportGroupMember, RecordOutcome::Imported);
                        Outcome::Done
                    }
                    Some(MEMBER_RESULT_ALREADY) => {
                        self.ctx.stats.record(EventKind::ImportGroupMember, RecordOutcome::AlreadyPresent);
                        Outcome::Done
                    }
                    other => {
                        self.ctx.stats.record(EventKind::ImportGroupMember, RecordOutcome::Failed);
                        let detail = match other {
                            Some(r) => format!("Result {r} (not imported: unknown account, or JoinTime refused)"),
                            None => "no result for this member".to_owned(),
                        };
                        item_failure(Api::ImportGroupMember, 0, m.user_id.as_str(), &detail)
                    }
                }
            })
            .collect();
        batch_outcome(&self.settled, records, verdicts)
    }

    /// Reads the group's newest messages from IM into this process's view.
    async fn sync_history(&self, group_id: &str) -> Result<History, Outcome> {
        let req = GroupMsgGetSimpleReq {
            group_id: group_id.to_owned(),
            req_msg_number: GROUP_MSG_GET_SIMPLE_MAX,
            req_msg_seq: None,
            with_recalled_msg: Some(1),
            topic_id: None,
        };
        let h = match self.ctx.im.group_msg_get_simple(&req).await {
            Ok(page) => {
                let times = page.rsp_msg_list.iter().map(|m| m.msg_time_stamp);
                let latest = times.clone().max().unwrap_or(0);
                // A full page may not reach the group's first message: only times from its oldest on are covered.
                let window_start = if page.rsp_msg_list.len() < GROUP_MSG_GET_SIMPLE_MAX as usize {
                    0
                } else {
                    times.min().unwrap_or(0)
                };
                let randoms = page.rsp_msg_list.iter().map(|m| m.msg_random).collect();
                History { latest, window_start, randoms }
            }
            Err(e) if e.code().is_some_and(|c| GROUP_MISSING_CODES.contains(&c)) => History::default(),
            Err(e) => return Err(outcome_of(&e)),
        };
        debug!(group = group_id, latest = h.latest, "group history read from im");
        if let Ok(mut m) = self.history.lock() {
            m.insert(group_id.to_owned(), h.clone());
        }
        Ok(h)
    }

    async fn history_of(&self, group_id: &str) -> Result<History, Outcome> {
        let known = self.history.lock().ok().and_then(|m| m.get(group_id).cloned());
        match known {
            Some(h) => Ok(h),
            None => self.sync_history(group_id).await,
        }
    }

    fn forget_history(&self, group_id: &str) {
        if let Ok(mut m) = self.history.lock() {
            m.remove(group_id);
        }
    }

    fn advance_history(&self, group_id: &str, send_time: i64, random: u32) {
        if let Ok(mut m) = self.history.lock() {
            let h = m.entry(group_id.to_owned()).or_default();
            h.latest = h.latest.max(send_time);
            h.randoms.insert(random);
        }
    }

    async fn messages(&self, records: &[&Record], msgs: Vec<Msg<'_>>) -> BatchOutcome {
        let Some(group_id) = msgs.first().and_then(|m| match &m.env.event {
            Event::ImportGroupMessage(g) => Some(g.group_id.as_str().to_owned()),
            _ => None,
        }) else {
            return BatchOutcome { done: 0, next: None };
        };
        let history = match self.history_of(&group_id).await {
            Ok(h) => h,
            Err(o) => return BatchOutcome { done: 0, next: Some(o) },
        };
        let now = TimestampMs::now().as_secs();
        // Decide record by record: present already, part of this call, or left for the next call.
        let mut verdicts: Vec<Outcome> = Vec::new();
        let mut call: Vec<(usize, &Msg<'_>)> = Vec::new();
        let mut cursor = history.latest;
        for (i, m) in msgs.iter().enumerate() {
            if m.send_time <= history.latest {
                if m.send_time >= history.window_start && !history.randoms.contains(&m.random) {
                    // IM holds a different message at or after this one's time: it can never be imported now.
                    warn!(group = %group_id, send_time = m.send_time, "group history holds another message here");
                    self.ctx.stats.record(EventKind::ImportGroupMessage, RecordOutcome::Failed);
                    verdicts.push(item_failure(
                        Api::ImportGroupMsg,
                        INVALID_SEND_TIME,
                        &m.env.id.to_string(),
                        "IM's history already holds another message at or after this SendTime",
                    ));
                } else {
                    self.ctx.stats.record(EventKind::ImportGroupMessage, RecordOutcome::AlreadyPresent);
                    verdicts.push(Outcome::Done);
                }
                continue;
            }
            if m.send_time <= cursor || m.send_time >= now {
                // Out of order (a re-produced copy behind newer records) or not yet in the past: next call.
                break;
            }
            cursor = m.send_time;
            call.push((i, m));
            verdicts.push(Outcome::Done);
        }
        if call.is_empty() {
            if verdicts.is_empty() {
                // The first record's SendTime is not in the past yet (same-second spreading at the very end of
                // a recent export): wait for the clock.
                return BatchOutcome {
                    done: 0,
                    next: Some(Outcome::Retry(Failure::new(
                        "import_send_time_future",
                        "SendTime is not in the past yet",
                    ))),
                };
            }
            return batch_outcome(&self.settled, &records[..verdicts.len()], verdicts);
        }
        let req = ImportGroupMsgReq {
            group_id: group_id.clone(),
            recent_contact_flag: None,
            msg_list: call.iter().map(|(_, m)| group_msg_item_of(m)).collect(),
        };
        let resp = match self.ctx.im.import_group_msg(&req).await {
            Ok(r) => r,
            Err(e) => {
                // The call may have landed before the error (a lost answer): read IM again next time.
                self.forget_history(&group_id);
                let o = outcome_of(&e);
                let first = call.first().map_or(0, |(i, _)| *i);
                if matches!(o, Outcome::Retry(_)) {
                    verdicts.truncate(first);
                    if verdicts.is_empty() {
                        return BatchOutcome { done: 0, next: Some(o) };
                    }
                    return batch_outcome(&self.settled, &records[..verdicts.len()], verdicts);
                }
                self.ctx.stats.add(EventKind::ImportGroupMessage, RecordOutcome::Failed, call.len() as u64);
                for (i, _) in &call {
                    verdicts[*i] = o.clone();
                }
                return batch_outcome(&self.settled, &records[..verdicts.len()], verdicts);
            }
        };
        let mut resync = false;
        for (n, (i, m)) in call.iter().enumerate() {
            let result = resp.import_msg_result.get(n).map_or(-1, |r| r.result);
            if result == 0 {
                self.ctx.stats.record(EventKind::ImportGroupMessage, RecordOutcome::Imported);
                self.advance_history(&group_id, m.send_time, m.random);
            } else if result == INVALID_SEND_TIME && self.landed_earlier(&group_id, m).await {
                // An earlier attempt of this very call landed (its answer was lost): present, not failed.
                self.ctx.stats.record(EventKind::ImportGroupMessage, RecordOutcome::AlreadyPresent);
            } else {
                resync = true;
                self.ctx.stats.record(EventKind::ImportGroupMessage, RecordOutcome::Failed);
                verdicts[*i] = item_failure(Api::ImportGroupMsg, result, &m.env.id.to_string(), "");
            }
        }
        if resync {
            self.forget_history(&group_id);
        }
        batch_outcome(&self.settled, &records[..verdicts.len()], verdicts)
    }

    /// Whether IM's history holds this message (after an "invalid SendTime" answer).
    async fn landed_earlier(&self, group_id: &str, m: &Msg<'_>) -> bool {
        match self.sync_history(group_id).await {
            Ok(h) => h.randoms.contains(&m.random) && m.send_time <= h.latest,
            Err(_) => false,
        }
    }

    async fn unread(&self, u: &imbridge_core::event::ImportMemberUnread) -> Outcome {
        let req = SetUnreadMsgNumReq {
            group_id: u.group_id.as_str().to_owned(),
            member_account: u.user_id.as_str().to_owned(),
            unread_msg_num: u64::from(u.unread),
        };
        let o = match self.ctx.im.set_unread_msg_num(&req).await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome_of(&e),
        };
        self.count(EventKind::ImportMemberUnread, &o);
        o
    }
}

fn group_msg_item_of(m: &Msg<'_>) -> ImportGroupMsgItem {
    match &m.env.event {
        Event::ImportGroupMessage(g) => group_msg_item(&m.env, g, m.send_time),
        // Only group messages are gathered into a call.
        _ => ImportGroupMsgItem::default(),
    }
}

/// The SendTime of a group message record: the importer's header, or (records produced without it) the legacy
/// send second.
pub fn send_time_of(record: &Record, m: &ImportGroupMessage) -> i64 {
    header_i64(record, headers::SEND_TIME).unwrap_or_else(|| m.sent_at.as_secs())
}

impl Handler for GroupsHandler {
    async fn handle(&self, record: &Record) -> Outcome {
        single_outcome(self.handle_batch(&[record]).await)
    }

    fn batch_limit(&self) -> usize {
        IMPORT_GROUP_MEMBER_MAX
    }

    async fn handle_batch(&self, records: &[&Record]) -> BatchOutcome {
        let (first, env) = match self.settled.first_unsettled(records) {
            Ok(first) => first,
            Err(out) => return out,
        };
        let single = |o: Outcome| BatchOutcome { done: 0, next: Some(o) };
        match env.event {
            Event::ImportGroup(ref g) => single(self.group(g).await),
            Event::ImportGroupMember(m) => {
                let mut members = vec![m];
                for r in &records[1..] {
                    match r.envelope().map(|e| e.event) {
                        Ok(Event::ImportGroupMember(n)) if n.group_id == members[0].group_id => members.push(n),
                        _ => break,
                    }
                }
                let n = members.len();
                self.members(&records[..n], members).await
            }
            Event::ImportGroupMessage(ref m) => {
                let send_time = send_time_of(first, m);
                let random = env.id.stable_u32();
                let group = m.group_id.clone();
                let mut msgs = vec![Msg { record: first, env, send_time, random }];
                for r in &records[1..] {
                    if msgs.len() >= IMPORT_GROUP_MSG_MAX {
                        break;
                    }
                    match r.envelope() {
                        Ok(e) => match &e.event {
                            Event::ImportGroupMessage(g) if g.group_id == group => {
                                let send_time = send_time_of(r, g);
                                let random = e.id.stable_u32();
                                msgs.push(Msg { record: r, env: e, send_time, random });
                            }
                            _ => break,
                        },
                        Err(_) => break,
                    }
                }
                let n = msgs.len();
                debug_assert!(msgs.iter().zip(records).all(|(m, r)| std::ptr::eq(m.record, *r)));
                self.messages(&records[..n], msgs).await
            }
            Event::ImportMemberUnread(ref u) => single(self.unread(u).await),
            Event::ImportConversationDone(ref d) => single(super::c2c::conversation_done(&self.ctx, first, d).await),
            ref other => single(unexpected(other.kind().as_str(), &first.topic)),
        }
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.settled.drop_partitions(partitions);
        // Another instance may import these groups' messages from now on: read IM afresh if they come back.
        if let Ok(mut m) = self.history.lock() {
            m.clear();
        }
    }
}
