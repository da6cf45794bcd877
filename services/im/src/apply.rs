//! One canonical event → the IM REST call(s) that make an IM app hold the same thing. to-im applies the old
//! side's events to the new app with it; when the old side is itself an IM app, to-legacy applies the new app's
//! events to the old one with it too ([`ImApp`]). Only the admin identity, the origin marker's value and the
//! app differ.
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
//! Every call is made as imbridge's admin identity of the app written to (never `From_Account` on group changes), so IM's callbacks
//! for them carry `Operator_Account` = admin and ingest drops them as echoes. Messages also suppress both send
//! callbacks (`ForbidCallbackControl`) and carry the origin marker in `CloudCustomData` (value `legacy` on the new
//! app, `im` on an old IM app: what the copy came from).
//!
//! Values IM deduplicates on are pure functions of the event, so a retried call is recognised by IM:
//! `MsgRandom` / `Random` = [`imbridge_core::EventId::stable_u32`]; the C2C `MsgSeq` = [`live_msg_seq`] of the
//! event's offset (to-im), or the original message's own `MsgSeq` (copies to an old IM app: [`copied_msg_seq`]). IM sorts C2C messages of the same second by `MsgSeq`, so it must grow with the conversation's
//! order: source offsets do (one conversation = one partition), and the high bit keeps live messages after
//! imported history of the same second (the importer numbers history 1, 2, …).
//!
//! A group create retried after it landed answers 10021 (id in use): done, and the members are added again
//! (adding a member twice answers "already a member"). A destroy retried after it landed answers 10010: done.

use std::future::Future;

use std::sync::Arc;
use std::time::Duration;

use imbridge_core::apply::{AnnounceDismissal, Applied, OldSide};
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_core::event::{
    C2cMessage, GroupCreated, GroupDismissed, GroupMessage, GroupUpdated, MembersJoined, MembersLeft,
};
use imbridge_core::{Envelope, Event, Failure, Source, TimestampMs, UserId};
use prometheus::{IntCounter, IntCounterVec};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::ImError;
use crate::origin::encode_cloud_custom_data_as;
use crate::to_im_body;
use crate::types::MemberAccount;
use crate::types::account::{ACCOUNT_IMPORTED, AccountImportReq, MULTIACCOUNT_IMPORT_MAX, MultiAccountImportReq};
use crate::types::c2c::{FORBID_AFTER_SEND_CALLBACK, FORBID_BEFORE_SEND_CALLBACK, ImportMsgReq, SYNC_LIVE, SendMsgReq};
use crate::types::group::{
    ADD_GROUP_MEMBER_MAX, AddGroupMemberReq, CreateGroupMember, CreateGroupReq, DELETE_GROUP_MEMBER_MAX,
    DeleteGroupMemberReq, DestroyGroupReq, GROUP_MSG_GET_SIMPLE_MAX, GroupMsgGetSimpleReq, GroupSpec,
    ModifyGroupBaseInfoReq, SendGroupMsgReq,
};
use crate::{Api, ImClient};

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

/// Which IM API carries 1:1 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum C2cApi {
    /// `sendmsg` (the default): a real send with offline push; callbacks suppressed with
    /// `ForbidCallbackControl`; IM deduplicates only for 120 s, so the applied ledger guards replays.
    #[default]
    Sendmsg,
    /// `importmsg` with `SyncFromOldSystem` 5 (IM's live-import mode for migrations): counted as unread, never
    /// calls back, deduplicated by IM for good on (MsgSeq, MsgRandom, MsgTimeStamp); no offline push.
    Importmsg,
}

impl C2cApi {
    pub fn as_str(self) -> &'static str {
        match self {
            C2cApi::Sendmsg => "sendmsg",
            C2cApi::Importmsg => "importmsg",
        }
    }
}

/// The counters an [`Applier`] keeps, registered by the service that owns it.
#[derive(Debug, Clone)]
pub struct ApplyMetrics {
    /// History checks before a send that may already have landed, by result: `found`, `absent`.
    pub crash_checks: IntCounterVec,
    /// Accounts imported on first sight.
    pub accounts_imported: IntCounter,
}

impl ApplyMetrics {
    /// Counters registered nowhere (tests, one-off tools).
    pub fn unregistered() -> Self {
        Self {
            crash_checks: IntCounterVec::new(prometheus::Opts::new("crash_checks", "-"), &["result"])
                .unwrap_or_else(|_| unreachable!("valid metric options")),
            accounts_imported: IntCounter::new("accounts_imported", "-")
                .unwrap_or_else(|_| unreachable!("valid metric options")),
        }
    }
}

/// Why an event could not be applied to an IM app.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Im(#[from] ImError),
    /// A kind an IM app is not written with (an import record, a read mark).
    #[error("{kind} events from {source_system} are not applied to IM live")]
    UnexpectedKind { kind: &'static str, source_system: &'static str },
    /// IM accepted the call but refused some members (unknown accounts that could not be imported, a full
    /// group): retrying the same call cannot add them.
    #[error("group {group}: members not added: {members:?}")]
    MembersNotAdded { group: String, members: Vec<String> },
    /// IM accepted a group message but did not store it (`MsgDropReason`, e.g. frequency control).
    #[error("group {group}: message dropped by IM: {reason}")]
    MessageDropped { group: String, reason: String },
    /// The dismissal could not be announced before destroying the group (Kafka away): try again.
    #[error("cannot announce the dismissal: {0}")]
    Announce(String),
}

impl Classify for ApplyError {
    fn disposition(&self) -> Disposition {
        match self {
            ApplyError::Im(e) => e.disposition(),
            ApplyError::MessageDropped { .. } | ApplyError::Announce(_) => Disposition::Retry,
            ApplyError::UnexpectedKind { .. } | ApplyError::MembersNotAdded { .. } => Disposition::DeadLetter,
        }
    }

    fn kind(&self) -> String {
        match self {
            ApplyError::Im(e) => e.kind(),
            ApplyError::UnexpectedKind { .. } => "unexpected_kind".into(),
            ApplyError::MembersNotAdded { .. } => "members_not_added".into(),
            ApplyError::MessageDropped { .. } => "im_message_dropped".into(),
            ApplyError::Announce(_) => "announce".into(),
        }
    }
}

/// The IM APIs an [`Applier`] calls: what a live writer (to-im on the new app, to-legacy on an old IM app)
/// announces when it shares the app's quotas with the other processes calling it.
pub const APPLY_APIS: [Api; 12] = [
    Api::SendMsg,
    Api::ImportMsg,
    Api::SendGroupMsg,
    Api::CreateGroup,
    Api::ModifyGroupBaseInfo,
    Api::DestroyGroup,
    Api::AddGroupMember,
    Api::DeleteGroupMember,
    Api::AdminGetRoamMsg,
    Api::GroupMsgGetSimple,
    Api::MultiAccountImport,
    Api::AccountCheck,
];

/// Whether an event is one an IM app is written with in real time.
pub fn is_live_kind(e: &Event) -> bool {
    matches!(
        e,
        Event::C2cMessage(_)
            | Event::GroupMessage(_)
            | Event::GroupCreated(_)
            | Event::GroupUpdated(_)
            | Event::GroupDismissed(_)
            | Event::MembersJoined(_)
            | Event::MembersLeft(_)
    )
}

/// Turns events into IM calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Applier {
    im: ImClient,
    c2c_api: C2cApi,
    import_unknown_accounts: bool,
    slack_secs: i64,
    metrics: ApplyMetrics,
    dismissals: Option<Arc<dyn AnnounceDismissal>>,
    origin: &'static str,
}

impl Applier {
    pub fn new(
        im: ImClient,
        c2c_api: C2cApi,
        import_unknown_accounts: bool,
        history_check_slack_secs: u64,
        metrics: ApplyMetrics,
    ) -> Self {
        Self {
            im,
            c2c_api,
            import_unknown_accounts,
            slack_secs: i64::try_from(history_check_slack_secs).unwrap_or(i64::MAX / 2),
            metrics,
            dismissals: None,
            origin: crate::origin::ORIGIN_LEGACY,
        }
    }

    /// Announces every dismissal on the conversations topic first (the service always does; tests may not).
    pub fn with_dismissal_notices(mut self, notices: Arc<dyn AnnounceDismissal>) -> Self {
        self.dismissals = Some(notices);
        self
    }

    /// The origin marker's value on what this applier writes (default `legacy`: copies of the old side's
    /// events on the new app; `im` for copies of the new app's events on an old IM app).
    pub fn with_origin(mut self, origin: &'static str) -> Self {
        self.origin = origin;
        self
    }

    pub fn im(&self) -> &ImClient {
        &self.im
    }

    /// Applies one event; a 1:1 message gets `c2c_msg_seq` as its `MsgSeq` (see the module docs). Returns the
    /// ledger `ref`.
    pub async fn apply(&self, env: &Envelope, c2c_msg_seq: u32) -> Result<String, ApplyError> {
        match &env.event {
            Event::C2cMessage(m) => self.c2c_message(env, m, c2c_msg_seq).await,
            Event::GroupMessage(m) => self.group_message(env, m).await,
            Event::GroupCreated(g) => self.group_created(g).await,
            Event::GroupUpdated(g) => self.group_updated(g).await,
            Event::GroupDismissed(g) => self.group_dismissed(g).await,
            Event::MembersJoined(m) => self.members_joined(m).await,
            Event::MembersLeft(m) => self.members_left(m).await,
            other => {
                Err(ApplyError::UnexpectedKind { kind: other.kind().as_str(), source_system: env.source.as_str() })
            }
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
    pub async fn find_applied(&self, env: &Envelope) -> Result<Option<String>, ApplyError> {
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

    /// Whether the app holds the group (not dismissed).
    pub async fn group_exists(&self, group: &imbridge_core::GroupId) -> Result<bool, ApplyError> {
        let infos = self.im.group_infos(&[group.as_str().to_owned()], None).await?;
        Ok(infos.first().is_some_and(|i| i.error_code == 0))
    }

    /// Walks a group's history from the newest message down to `since` looking for `Random` from `from`.
    async fn group_has(&self, group: &str, from: &str, random: u32, since: i64) -> Result<Option<String>, ApplyError> {
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

    async fn c2c_message(&self, env: &Envelope, m: &C2cMessage, seq: u32) -> Result<String, ApplyError> {
        let body = to_im_body(&m.body);
        let ccd = encode_cloud_custom_data_as(self.origin, m.custom_data.as_deref());
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

    async fn group_message(&self, env: &Envelope, m: &GroupMessage) -> Result<String, ApplyError> {
        let req = SendGroupMsgReq {
            group_id: m.group_id.as_str().to_owned(),
            random: env.id.stable_u32(),
            msg_body: to_im_body(&m.body),
            from_account: Some(m.from.as_str().to_owned()),
            forbid_callback_control: Some(vec![
                FORBID_BEFORE_SEND_CALLBACK.to_owned(),
                FORBID_AFTER_SEND_CALLBACK.to_owned(),
            ]),
            cloud_custom_data: Some(encode_cloud_custom_data_as(self.origin, m.custom_data.as_deref())),
            ..Default::default()
        };
        let resp = self.with_accounts(&[&m.from], GROUP_UNKNOWN_ACCOUNT, || self.im.send_group_msg(&req)).await?;
        if let Some(reason) = resp.msg_drop_reason.filter(|r| !r.is_empty()) {
            return Err(ApplyError::MessageDropped { group: m.group_id.as_str().to_owned(), reason });
        }
        Ok(resp.msg_seq.to_string())
    }

    async fn group_created(&self, g: &GroupCreated) -> Result<String, ApplyError> {
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
            Err(ApplyError::Im(e)) if e.code() == Some(GROUP_ID_IN_USE) => {
                // An earlier attempt landed (or the group came from the import): make sure every member is in.
                info!(group = %g.group_id, "group exists already; adding its initial members again");
                self.add_members(g.group_id.as_str(), &members).await?;
                Ok("exists".into())
            }
            Err(e) => Err(e),
        }
    }

    async fn group_updated(&self, g: &GroupUpdated) -> Result<String, ApplyError> {
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

    async fn group_dismissed(&self, g: &GroupDismissed) -> Result<String, ApplyError> {
        if let Some(n) = &self.dismissals {
            n.announce(&g.group_id).await.map_err(ApplyError::Announce)?;
        }
        match self.im.destroy_group(&DestroyGroupReq { group_id: g.group_id.as_str().to_owned() }).await {
            Ok(_) => Ok("done".into()),
            // A retried destroy whose first attempt landed: the group is gone, which is what was asked.
            Err(e) if e.code() == Some(GROUP_NOT_FOUND) => Ok("absent".into()),
            Err(e) => Err(e.into()),
        }
    }

    async fn members_joined(&self, m: &MembersJoined) -> Result<String, ApplyError> {
        let members: Vec<&UserId> = m.members.iter().collect();
        self.add_members(m.group_id.as_str(), &members).await?;
        Ok("done".into())
    }

    async fn members_left(&self, m: &MembersLeft) -> Result<String, ApplyError> {
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
    async fn add_members(&self, group: &str, members: &[&UserId]) -> Result<(), ApplyError> {
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
            Err(ApplyError::MembersNotAdded { group: group.to_owned(), members: failed })
        }
    }

    /// One `add_group_member` call; returns the members IM did not add.
    async fn add_chunk(&self, group: &str, members: Vec<String>) -> Result<Vec<String>, ApplyError> {
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
    async fn with_accounts<T, F, Fut>(&self, users: &[&UserId], codes: &[i64], call: F) -> Result<T, ApplyError>
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
    async fn import_accounts(&self, users: &[&UserId]) -> Result<(), ApplyError> {
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

/// The `MsgSeq` of a 1:1 message copied to an old IM app: the one the sender's client gave it on the new app (the
/// first part of its `MsgKey`, `<MsgSeq>_<MsgRandom>_<MsgTime>`, in the event id `im:c2c:<from>:<MsgKey>`). IM
/// orders a second's 1:1 messages by `MsgSeq`, so copies applied within one second keep the order the new app
/// gives the originals — not the order of the callbacks' `EventTime`, which IM stamps when it delivers them and
/// which concurrent callbacks can invert. Stable across redeliveries and replays. Falls back to the event time's
/// milliseconds (under the high bit) for an id of another shape.
pub fn copied_msg_seq(env: &Envelope) -> u32 {
    // The old app's own messages reach to-im as `legacy:im:c2c:…` (their copies keep their `MsgSeq` too).
    let id = env.id.as_str();
    let key = id.strip_prefix("legacy:").unwrap_or(id).strip_prefix("im:c2c:").and_then(|rest| rest.rsplit(':').next());
    match key.and_then(|k| k.split('_').next()).and_then(|s| s.parse::<u32>().ok()) {
        Some(seq) => seq,
        None => 0x8000_0000 | ((env.time.as_millis() as u64 & 0x7fff_ffff) as u32),
    }
}

/// Another IM app as the old side ([`OldSide`]): the new app's events are written to it by the same
/// [`Applier`] to-im writes the new app with, as the old app's admin identity, with the origin marker `im`.
///
/// Idempotency without a ledger: before each message it looks for the message in the old app's history (sender
/// and `MsgRandom`, a function of the event id) and sends it only when it is not there — so a redelivery after a
/// crash, a retry after a lost answer and a replay from the earliest offset send nothing twice (within the
/// `history_check_slack_secs` window and the old app's history retention). Group changes are idempotent as
/// applied (see the module docs). One event per call: a refused event is exactly the one that was sent.
#[derive(Debug, Clone)]
pub struct ImApp {
    applier: Applier,
}

impl ImApp {
    /// `applier` writes to the old app (its client, its admin identity); its origin marker is set to `im`.
    pub fn new(applier: Applier) -> Self {
        Self { applier: applier.with_origin(crate::origin::ORIGIN_IM) }
    }

    pub fn applier(&self) -> &Applier {
        &self.applier
    }
}

impl OldSide for ImApp {
    type Error = ApplyError;

    fn batch_limit(&self) -> usize {
        1
    }

    fn accepts(&self, env: &Envelope) -> Result<(), Failure> {
        if env.source == Source::Im && is_live_kind(&env.event) {
            return Ok(());
        }
        let e = ApplyError::UnexpectedKind { kind: env.kind().as_str(), source_system: env.source.as_str() };
        Err(Failure::from_error(&e))
    }

    async fn apply_once(&self, events: &[Envelope]) -> Result<Applied, ApplyError> {
        let mut duplicate = !events.is_empty();
        for env in events {
            if self.applier.needs_history_check(env)
                && let Some(found) = self.applier.find_applied(env).await?
            {
                debug!(event_id = %env.id, reference = %found, "already on the old app; not sent again");
                continue;
            }
            // A group that exists was created by an earlier attempt (or a replay's first run): `create_group` with
            // every member is atomic up to its member limit, so nothing is left to do — not even re-adding members
            // who have left since, which a replay of the creation would otherwise do until their exit is replayed.
            if let Event::GroupCreated(g) = &env.event
                && g.members.len() <= CREATE_GROUP_MEMBERS_MAX
                && self.applier.group_exists(&g.group_id).await?
            {
                debug!(event_id = %env.id, group = %g.group_id, "group already on the old app; not created again");
                continue;
            }
            duplicate = false;
            self.applier.apply(env, copied_msg_seq(env)).await?;
        }
        Ok(Applied { duplicate })
    }

    fn refused_index(&self, _error: &ApplyError) -> Option<usize> {
        None
    }

    fn retry_after(&self, _error: &ApplyError) -> Option<Duration> {
        None
    }

    fn unreachable(&self, error: &ApplyError) -> bool {
        matches!(error, ApplyError::Im(ImError::Connect { .. } | ImError::Timeout { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_to_an_old_app_keep_the_senders_msg_seq() {
        let env = |id: &str| Envelope {
            id: imbridge_core::EventId::from_raw(id),
            source: Source::Im,
            conversation: imbridge_core::ConversationKey::c2c(&UserId::new_unchecked("a"), &UserId::new_unchecked("b")),
            time: TimestampMs(1_700_000_000_123),
            recorded_at: None,
            event: Event::C2cMessage(C2cMessage {
                from: UserId::new_unchecked("a"),
                to: UserId::new_unchecked("b"),
                body: vec![],
                custom_data: None,
            }),
        };
        assert_eq!(copied_msg_seq(&env("im:c2c:a:48374_2837546_1557481126")), 48_374);
        assert_eq!(copied_msg_seq(&env("im:c2c:a:odd")), 0x8000_0000 | (1_700_000_000_123_u64 & 0x7fff_ffff) as u32);
    }

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
