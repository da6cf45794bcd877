//! One legacy event → the IM REST call(s) that make IM hold the same thing.
//!
//! | event | IM | ledger `ref` |
//! | --- | --- | --- |
//! | `c2c.message` | `sendmsg` as the sender (or `importmsg`, `SyncFromOldSystem` 5, when configured) | `MsgKey` |
//! | `group.message` | `send_group_msg` as the sender | group `MsgSeq` |
//! | `group.created` | `create_group` (custom GroupId, owner, ≤ 100 initial members) + `add_group_member` for the rest | `done` / `exists` |
//! | `group.updated` | `modify_group_base_info` with the changed fields | `done` |
//! | `group.dismissed` | `destroy_group` | `done` / `absent` |
//! | `group.members_joined` | `add_group_member`, 20 per call | `done` |
//! | `group.members_left` | `delete_group_member`, 100 per call | `done` |
//!
//! Every call is made as imbridge's admin identity (never `From_Account` on group changes), so IM's callbacks
//! for them carry `Operator_Account` = admin and ingest drops them as echoes. Messages also suppress both send
//! callbacks (`ForbidCallbackControl`) and carry the origin marker in `CloudCustomData`.
//!
//! Values IM deduplicates on are pure functions of the event, so a retried call is recognised by IM:
//! `MsgRandom` / `Random` = [`imbridge_core::EventId::stable_u32`]; the C2C `MsgSeq` = [`live_msg_seq`] of the
//! event's offset. IM sorts C2C messages of the same second by `MsgSeq`, so it must grow with the conversation's
//! order: source offsets do (one conversation = one partition), and the high bit keeps live messages after
//! imported history of the same second (the importer numbers history 1, 2, …).
//!
//! A group create retried after it landed answers 10021 (id in use): done, and the members are added again
//! (adding a member twice answers "already a member"). A destroy retried after it landed answers 10010: done.

use std::future::Future;

use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::state::{ConversationState, Phase};
use imbridge_core::{ConversationKey, Envelope, Event, GroupId, TimestampMs, UserId};
use imbridge_im::ImClient;
use imbridge_im::ImError;
use imbridge_im::to_im_body;
use imbridge_im::types::MemberAccount;
use imbridge_im::types::account::{ACCOUNT_IMPORTED, AccountImportReq, MULTIACCOUNT_IMPORT_MAX, MultiAccountImportReq};
use imbridge_im::types::c2c::{
    FORBID_AFTER_SEND_CALLBACK, FORBID_BEFORE_SEND_CALLBACK, ImportMsgReq, SYNC_LIVE, SendMsgReq,
};
use imbridge_im::types::group::{
    ADD_GROUP_MEMBER_MAX, AddGroupMemberReq, CreateGroupMember, CreateGroupReq, DELETE_GROUP_MEMBER_MAX,
    DeleteGroupMemberReq, DestroyGroupReq, GROUP_MSG_GET_SIMPLE_MAX, GroupMsgGetSimpleReq, GroupSpec,
    ModifyGroupBaseInfoReq, SendGroupMsgReq,
};
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::{KafkaError, Producer};
use tracing::{debug, info};

use super::config::C2cApi;
use super::metrics::LiveMetrics;
use crate::error::ToImError;
pub use imbridge_im::origin::{decode_cloud_custom_data, encode_cloud_custom_data};

/// Initial members per `create_group` (documented sample: 100; the rest are added afterwards).
const CREATE_GROUP_MEMBERS_MAX: usize = 100;
/// IM answers these when a group id is already in use: the create (or an earlier attempt of it) landed.
const GROUP_ID_IN_USE: i64 = 10021;
/// "Group does not exist or was disbanded".
const GROUP_NOT_FOUND: i64 = 10010;
/// Codes that mean "an account named in the request does not exist", per API family.
const SENDMSG_UNKNOWN_ACCOUNT: &[i64] = &[20003, 90048, 70107];
const IMPORTMSG_UNKNOWN_ACCOUNT: &[i64] = &[90008, 90012];
const GROUP_UNKNOWN_ACCOUNT: &[i64] = &[10019];
/// Codes of history reads that mean "nothing can be there" (unknown operator or peer, unknown group).
const HISTORY_NOTHING: &[i64] = &[90008, 90003, 70107, GROUP_NOT_FOUND];

/// The C2C `MsgSeq` of a live message read at `offset`: grows with the conversation's order, stable across
/// redeliveries, and above every history `MsgSeq` the importer assigns (high bit set).
pub fn live_msg_seq(offset: i64) -> u32 {
    0x8000_0000 | ((offset as u64 & 0x7fff_ffff) as u32)
}

/// Where to-im announces its own group dismissals, so ingest drops the callback IM sends back for them
/// (`Group.CallbackAfterGroupDestroyed` names no operator; see `imbridge_core::state`).
#[derive(Debug, Clone)]
pub struct DismissalNotices {
    producer: Producer,
    topic: String,
}

impl DismissalNotices {
    pub fn new(producer: Producer, conversations_topic: impl Into<String>) -> Self {
        Self { producer, topic: conversations_topic.into() }
    }

    /// Written (and acknowledged) before `destroy_group`, so ingest can know it by the time the callback comes.
    async fn announce(&self, group: &GroupId) -> Result<(), KafkaError> {
        let conversation = ConversationKey::group(group);
        let now = TimestampMs::now();
        let state = ConversationState {
            conversation: conversation.clone(),
            phase: Phase::Live,
            updated_at: now,
            run_id: None,
            dismissed_by_imbridge: Some(now),
        };
        // Plain data with string keys: serializing cannot fail.
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        let out = Outgoing { key: conversation.as_str().as_bytes(), payload: &payload, headers: &[] };
        self.producer.send(&self.topic, out).await.map(|_| ())
    }
}

/// Turns events into IM calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Applier {
    im: ImClient,
    c2c_api: C2cApi,
    import_unknown_accounts: bool,
    slack_secs: i64,
    metrics: LiveMetrics,
    dismissals: Option<DismissalNotices>,
}

impl Applier {
    pub fn new(
        im: ImClient,
        c2c_api: C2cApi,
        import_unknown_accounts: bool,
        history_check_slack_secs: u64,
        metrics: LiveMetrics,
    ) -> Self {
        Self {
            im,
            c2c_api,
            import_unknown_accounts,
            slack_secs: i64::try_from(history_check_slack_secs).unwrap_or(i64::MAX / 2),
            metrics,
            dismissals: None,
        }
    }

    /// Announces every dismissal on the conversations topic first (the service always does; tests may not).
    pub fn with_dismissal_notices(mut self, notices: DismissalNotices) -> Self {
        self.dismissals = Some(notices);
        self
    }

    pub fn im(&self) -> &ImClient {
        &self.im
    }

    /// Applies one event read at `offset`; returns the ledger `ref`.
    pub async fn apply(&self, env: &Envelope, offset: i64) -> Result<String, ToImError> {
        match &env.event {
            Event::C2cMessage(m) => self.c2c_message(env, m, offset).await,
            Event::GroupMessage(m) => self.group_message(env, m).await,
            Event::GroupCreated(g) => self.group_created(g).await,
            Event::GroupUpdated(g) => self.group_updated(g).await,
            Event::GroupDismissed(g) => self.group_dismissed(g).await,
            Event::MembersJoined(m) => self.members_joined(m).await,
            Event::MembersLeft(m) => self.members_left(m).await,
            other => Err(ToImError::UnexpectedKind {
                kind: other.kind().as_str(),
                source_system: env.source.as_str(),
                topic: "the live topic".into(),
            }),
        }
    }

    /// Whether a send of this kind could have landed in IM without a ledger entry and would land again if
    /// repeated: messages only (`importmsg` is deduplicated by IM for good; group lifecycle calls are
    /// idempotent as applied here).
    pub fn needs_history_check(&self, env: &Envelope) -> bool {
        match env.event {
            Event::C2cMessage(_) => self.c2c_api == C2cApi::Sendmsg,
            Event::GroupMessage(_) => true,
            _ => false,
        }
    }

    /// After a crash: whether IM already holds this message (sent by the previous run, which died before
    /// recording it). Returns its ledger `ref` if so.
    pub async fn find_applied(&self, env: &Envelope) -> Result<Option<String>, ToImError> {
        let since = env.recorded_at.unwrap_or(env.time).as_secs().min(env.time.as_secs()) - self.slack_secs;
        let random = env.id.stable_u32();
        let found = match &env.event {
            Event::C2cMessage(m) => {
                let until = TimestampMs::now().as_secs() + 86_400;
                match self.im.c2c_history(m.from.as_str(), m.to.as_str(), since.max(0), until).await {
                    // Matched on sender and MsgRandom (a function of the event id) only, not on MsgSeq: a record
                    // re-driven from the DLQ sits at a new offset, so its MsgSeq differs from the first attempt's.
                    Ok(msgs) => msgs
                        .into_iter()
                        .find(|x| x.msg_random == random && x.from_account == m.from.as_str())
                        .map(|x| x.msg_key),
                    Err(e) if e.code().is_some_and(|c| HISTORY_NOTHING.contains(&c)) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            Event::GroupMessage(m) => self.group_has(m.group_id.as_str(), m.from.as_str(), random, since).await?,
            _ => None,
        };
        self.metrics.crash_checks.with_label_values(&[if found.is_some() { "found" } else { "absent" }]).inc();
        Ok(found)
    }

    /// Walks a group's history from the newest message down to `since` looking for `Random` from `from`.
    async fn group_has(&self, group: &str, from: &str, random: u32, since: i64) -> Result<Option<String>, ToImError> {
        let mut req_seq: Option<u64> = None;
        loop {
            let req = GroupMsgGetSimpleReq {
                group_id: group.to_owned(),
                req_msg_number: GROUP_MSG_GET_SIMPLE_MAX,
                req_msg_seq: req_seq,
                with_recalled_msg: Some(1),
                topic_id: None,
            };
            let page = match self.im.group_msg_get_simple(&req).await {
                Ok(p) => p,
                Err(e) if e.code().is_some_and(|c| HISTORY_NOTHING.contains(&c)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if let Some(m) = page.rsp_msg_list.iter().find(|m| m.msg_random == random && m.from_account == from) {
                return Ok(Some(m.msg_seq.to_string()));
            }
            let Some(min_seq) = page.rsp_msg_list.iter().map(|m| m.msg_seq).min() else { return Ok(None) };
            let oldest = page.rsp_msg_list.iter().map(|m| m.msg_time_stamp).min().unwrap_or(0);
            if min_seq <= 1 || oldest < since {
                return Ok(None);
            }
            req_seq = Some(min_seq - 1);
        }
    }

    async fn c2c_message(&self, env: &Envelope, m: &C2cMessage, offset: i64) -> Result<String, ToImError> {
        let body = to_im_body(&m.body);
        let ccd = encode_cloud_custom_data(m.custom_data.as_deref());
        let seq = live_msg_seq(offset);
        let random = env.id.stable_u32();
        let users = [&m.from, &m.to];
        match self.c2c_api {
            C2cApi::Sendmsg => {
                let req = SendMsgReq {
                    // Stored in the sender's roaming too, so the sender's new-app devices see what they sent and the
                    // post-crash check can find it in the sender's history.
                    sync_other_machine: Some(1),
                    from_account: Some(m.from.as_str().to_owned()),
                    to_account: m.to.as_str().to_owned(),
                    msg_seq: Some(seq),
                    msg_random: random,
                    forbid_callback_control: Some(vec![
                        FORBID_BEFORE_SEND_CALLBACK.to_owned(),
                        FORBID_AFTER_SEND_CALLBACK.to_owned(),
                    ]),
                    msg_body: body,
                    cloud_custom_data: Some(ccd),
                    ..Default::default()
                };
                let resp = self.with_accounts(&users, SENDMSG_UNKNOWN_ACCOUNT, || self.im.sendmsg(&req)).await?;
                Ok(resp.msg_key)
            }
            C2cApi::Importmsg => {
                let time = env.time.as_secs();
                let req = ImportMsgReq {
                    sync_from_old_system: SYNC_LIVE,
                    from_account: m.from.as_str().to_owned(),
                    to_account: m.to.as_str().to_owned(),
                    msg_seq: Some(seq),
                    msg_random: random,
                    msg_time_stamp: time,
                    msg_body: body,
                    cloud_custom_data: Some(ccd),
                };
                self.with_accounts(&users, IMPORTMSG_UNKNOWN_ACCOUNT, || self.im.importmsg(&req)).await?;
                // importmsg answers no key; IM's keys have the shape of its dedup triple.
                Ok(format!("{seq}_{random}_{time}"))
            }
        }
    }

    async fn group_message(&self, env: &Envelope, m: &GroupMessage) -> Result<String, ToImError> {
        let req = SendGroupMsgReq {
            group_id: m.group_id.as_str().to_owned(),
            random: env.id.stable_u32(),
            msg_body: to_im_body(&m.body),
            from_account: Some(m.from.as_str().to_owned()),
            forbid_callback_control: Some(vec![
                FORBID_BEFORE_SEND_CALLBACK.to_owned(),
                FORBID_AFTER_SEND_CALLBACK.to_owned(),
            ]),
            cloud_custom_data: Some(encode_cloud_custom_data(m.custom_data.as_deref())),
            ..Default::default()
        };
        let resp = self.with_accounts(&[&m.from], GROUP_UNKNOWN_ACCOUNT, || self.im.send_group_msg(&req)).await?;
        if let Some(reason) = resp.msg_drop_reason.filter(|r| !r.is_empty()) {
            return Err(ToImError::MessageDropped { group: m.group_id.as_str().to_owned(), reason });
        }
        Ok(resp.msg_seq.to_string())
    }

    async fn group_created(&self, g: &GroupCreated) -> Result<String, ToImError> {
        let profile = &g.profile;
        let members: Vec<&UserId> = g.members.iter().filter(|u| Some(*u) != profile.owner.as_ref()).collect();
        let (initial, rest) = members.split_at(members.len().min(CREATE_GROUP_MEMBERS_MAX));
        let req = CreateGroupReq {
            group: GroupSpec::of(&g.group_id, g.group_type, profile),
            member_list: (!initial.is_empty()).then(|| {
                initial
                    .iter()
                    .map(|u| CreateGroupMember { member_account: u.as_str().to_owned(), ..Default::default() })
                    .collect()
            }),
        };
        let mut everyone: Vec<&UserId> = profile.owner.iter().collect();
        everyone.extend(members.iter().copied());
        let created = self.with_accounts(&everyone, GROUP_UNKNOWN_ACCOUNT, || self.im.create_group(&req)).await;
        match created {
            Ok(_) => {
                self.add_members(g.group_id.as_str(), rest).await?;
                Ok("done".into())
            }
            Err(ToImError::Im(e)) if e.code() == Some(GROUP_ID_IN_USE) => {
                // An earlier attempt landed (or the group came from the import): make sure every member is in.
                info!(group = %g.group_id, "group exists already; adding its initial members again");
                self.add_members(g.group_id.as_str(), &members).await?;
                Ok("exists".into())
            }
            Err(e) => Err(e),
        }
    }

    async fn group_updated(&self, g: &GroupUpdated) -> Result<String, ToImError> {
        let req = ModifyGroupBaseInfoReq {
            group_id: g.group_id.as_str().to_owned(),
            name: g.name.clone(),
            introduction: g.introduction.clone(),
            notification: g.notification.clone(),
            face_url: g.face_url.clone(),
            // Never `From_Account`: the callback would name that user as operator and not be dropped as an echo.
            ..Default::default()
        };
        if req.name.is_none() && req.introduction.is_none() && req.notification.is_none() && req.face_url.is_none() {
            return Ok("noop".into());
        }
        self.im.modify_group_base_info(&req).await?;
        Ok("done".into())
    }

    async fn group_dismissed(&self, g: &GroupDismissed) -> Result<String, ToImError> {
        if let Some(n) = &self.dismissals {
            n.announce(&g.group_id).await?;
        }
        match self.im.destroy_group(&DestroyGroupReq { group_id: g.group_id.as_str().to_owned() }).await {
            Ok(_) => Ok("done".into()),
            // A retried destroy whose first attempt landed: the group is gone, which is what was asked.
            Err(e) if e.code() == Some(GROUP_NOT_FOUND) => Ok("absent".into()),
            Err(e) => Err(e.into()),
        }
    }

    async fn members_joined(&self, m: &MembersJoined) -> Result<String, ToImError> {
        let members: Vec<&UserId> = m.members.iter().collect();
        self.add_members(m.group_id.as_str(), &members).await?;
        Ok("done".into())
    }

    async fn members_left(&self, m: &MembersLeft) -> Result<String, ToImError> {
        for chunk in m.members.chunks(DELETE_GROUP_MEMBER_MAX) {
            let req = DeleteGroupMemberReq {
                group_id: m.group_id.as_str().to_owned(),
                member_to_del_account: chunk.iter().map(|u| u.as_str().to_owned()).collect(),
                ..Default::default()
            };
            // Removing a non-member succeeds, so a repeat is harmless.
            self.im.delete_group_member(&req).await?;
        }
        Ok("done".into())
    }

    /// Adds members in chunks; members IM refused are imported (when configured) and tried once more.
    async fn add_members(&self, group: &str, members: &[&UserId]) -> Result<(), ToImError> {
        let mut failed: Vec<String> = Vec::new();
        for chunk in members.chunks(ADD_GROUP_MEMBER_MAX) {
            failed.extend(self.add_chunk(group, chunk.iter().map(|u| u.as_str().to_owned()).collect()).await?);
        }
        if failed.is_empty() {
            return Ok(());
        }
        if self.import_unknown_accounts {
            let ids: Vec<UserId> = failed.iter().map(UserId::new_unchecked).collect();
            let refs: Vec<&UserId> = ids.iter().collect();
            self.import_accounts(&refs).await?;
            let mut still = Vec::new();
            for chunk in failed.chunks(ADD_GROUP_MEMBER_MAX) {
                still.extend(self.add_chunk(group, chunk.to_vec()).await?);
            }
            failed = still;
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ToImError::MembersNotAdded { group: group.to_owned(), members: failed })
        }
    }

    /// One `add_group_member` call; returns the members IM did not add.
    async fn add_chunk(&self, group: &str, members: Vec<String>) -> Result<Vec<String>, ToImError> {
        let req = AddGroupMemberReq {
            group_id: group.to_owned(),
            silence: None,
            member_list: members.into_iter().map(MemberAccount::new).collect(),
        };
        let resp = self.im.add_group_member(&req).await?;
        Ok(resp.failed().map(str::to_owned).collect())
    }

    /// Runs `call`; if IM says an account it names does not exist (one of `codes`) and importing unknown
    /// accounts is on, imports `users` and runs it once more.
    async fn with_accounts<T, F, Fut>(&self, users: &[&UserId], codes: &[i64], call: F) -> Result<T, ToImError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ImError>>,
    {
        match call().await {
            Err(e) if self.import_unknown_accounts && e.code().is_some_and(|c| codes.contains(&c)) => {
                debug!(error = %e, "unknown account; importing and trying again");
                self.import_accounts(users).await?;
                Ok(call().await?)
            }
            r => Ok(r?),
        }
    }

    /// Imports, by id only (no profile), those of `users` IM does not know.
    async fn import_accounts(&self, users: &[&UserId]) -> Result<(), ToImError> {
        let ids: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        let missing: Vec<UserId> = self
            .im
            .check_accounts(&ids)
            .await?
            .into_iter()
            // An item IM could not check (non-zero ResultCode) is imported too: importing twice is harmless.
            .filter(|c| c.result_code != 0 || c.account_status != ACCOUNT_IMPORTED)
            .map(|c| UserId::new_unchecked(c.user_id))
            .collect();
        for chunk in missing.chunks(MULTIACCOUNT_IMPORT_MAX) {
            let req = MultiAccountImportReq {
                accounts: None,
                account_list: Some(
                    chunk
                        .iter()
                        .map(|u| AccountImportReq { user_id: u.as_str().to_owned(), nick: None, face_url: None })
                        .collect(),
                ),
            };
            let resp = self.im.multiaccount_import(&req).await?;
            let imported = chunk.len().saturating_sub(resp.failed().len());
            self.metrics.accounts_imported.inc_by(imported as u64);
            info!(accounts = imported, failed = ?resp.failed(), "imported unknown accounts on first sight");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_msg_seq_grows_with_offsets_and_sits_above_history() {
        assert_eq!(live_msg_seq(0), 0x8000_0000);
        assert!(live_msg_seq(5) < live_msg_seq(6));
        assert!(live_msg_seq(1_000_000) > 1_000_000);
        // Golden value: the high bit set over the offset; a replay must derive the same MsgSeq as the first send.
        assert_eq!(live_msg_seq(41), 2_147_483_689);
        assert_eq!(live_msg_seq(i64::from(u32::MAX) + 42), 0x8000_0029, "offsets wrap within the low 31 bits");
    }
}
