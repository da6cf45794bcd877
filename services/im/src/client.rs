//! [`ImClient`]: the IM REST client every imbridge part uses.
//!
//! One call = wait for the API's rate limiter, POST the JSON body to `{base_url}/v4/{service}/{command}` with
//! the query `sdkappid, identifier, usersig, random, contenttype=json`, then read IM's envelope:
//! `ActionStatus == "FAIL" || ErrorCode != 0` is an [`ImError::Api`]. Retryable failures are retried here with
//! full-jitter exponential backoff up to `retry.max_attempts`; the final error keeps its classification.
//!
//! Retrying a write is safe only because of IM's dedup rules, which the caller must feed: `importmsg` dedups
//! on (MsgSeq, MsgRandom, MsgTimeStamp), `sendmsg` on sender + MsgSeq + MsgRandom + body CRC for 120 s,
//! `send_group_msg` on Random for 5 min. Group lifecycle calls have no dedup: a retried `create_group` whose
//! first attempt landed answers 10021 (group id in use), which callers treat as done.
//!
//! `ImClient` is cheap to clone; clones share the HTTP connection pool, the admin UserSig, the rate limiters
//! and the metrics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::Api;
use crate::config::{ImConfig, RateSetting, RetryConfig};
use crate::error::{ImError, USERSIG_EXPIRED};
use crate::metrics::Metrics;
use crate::ratelimit::{Grant, RateLimits, Usage};
use crate::sigcache::UserSigCache;
use crate::types::EmptyResp;
use crate::types::Envelope;
use crate::types::account::*;
use crate::types::c2c::*;
use crate::types::group::*;
use crate::types::recentcontact::*;
use crate::types::sns::*;

/// How much of a non-200 body is kept in the error (enough for a gateway's message, not a whole page).
const HTTP_ERROR_BODY_CHARS: usize = 200;

/// Messages asked for per `admin_getroammsg` page.
const ROAM_PAGE: u32 = 100;

/// The IM REST client. See the module docs.
#[derive(Clone)]
pub struct ImClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    sdkappid: u64,
    sig: UserSigCache,
    retry: RetryConfig,
    limits: RateLimits,
    metrics: Metrics,
}

impl std::fmt::Debug for ImClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImClient")
            .field("base", &self.inner.base.as_str())
            .field("sdkappid", &self.inner.sdkappid)
            .field("identifier", &self.inner.sig.identifier())
            .finish_non_exhaustive()
    }
}

macro_rules! api_methods {
    ($( $(#[$doc:meta])* $name:ident($req:ty) -> $resp:ty = $api:ident; )*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self, req: &$req) -> Result<$resp, ImError> {
                self.call(Api::$api, req).await
            }
        )*
    };
}

impl ImClient {
    /// Builds a client and registers its metrics on `registry`.
    pub fn new(config: &ImConfig, registry: &Registry) -> Result<Self, ImError> {
        let metrics = Metrics::new(registry).map_err(|e| ImError::Config(format!("metrics: {e}")))?;
        Self::with_metrics(config, metrics)
    }

    /// Builds a client reporting to already-registered metrics (several clients, one registry).
    pub fn with_metrics(config: &ImConfig, metrics: Metrics) -> Result<Self, ImError> {
        config.validate()?;
        let mut base = reqwest::Url::parse(&config.base_url).map_err(|e| ImError::Config(format!("base_url: {e}")))?;
        // `Url::join` replaces the last path segment unless the base ends with '/'.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| ImError::Config(format!("http client: {e}")))?;
        for api in Api::ALL {
            metrics.rate_limit.with_label_values(&[api.as_str()]).set(config.rate_for(*api).per_sec().unwrap_or(0.0));
        }
        let sig = UserSigCache::new(
            config.sdkappid,
            config.secret_key.clone(),
            config.admin_identifier.clone(),
            config.usersig_expire_secs,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                sdkappid: config.sdkappid,
                sig,
                retry: config.retry.clone(),
                limits: RateLimits::new(|api| config.rate_for(api)),
                metrics,
            }),
        })
    }

    /// The admin identity every call is made as (callbacks it causes are imbridge's own echoes).
    pub fn admin_identifier(&self) -> &str {
        self.inner.sig.identifier()
    }

    /// The application's SDKAppID.
    pub fn sdkappid(&self) -> u64 {
        self.inner.sdkappid
    }

    /// The client's metrics (shared by clones).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Changes one API's call rate for this client and all its clones, e.g. to this instance's share of the
    /// app-wide quota when the consumer group scales.
    pub fn set_rate(&self, api: Api, rate: RateSetting) {
        tracing::info!(api = api.as_str(), rate = ?rate, "im rate limit changed");
        self.inner.limits.set(api, rate);
        let rate = self.inner.limits.effective(api);
        self.inner.metrics.rate_limit.with_label_values(&[api.as_str()]).set(rate.per_sec().unwrap_or(0.0));
    }

    /// The static call rate of one API (what it is paced at while no quota grant is in force).
    pub fn rate(&self, api: Api) -> RateSetting {
        self.inner.limits.get(api)
    }

    /// Puts the quota coordinator's grant for one API in force (`None`: back to the static rate).
    pub fn grant(&self, api: Api, grant: Option<Grant>) {
        self.inner.limits.grant(api, grant);
        let rate = self.inner.limits.effective(api);
        self.inner.metrics.rate_limit.with_label_values(&[api.as_str()]).set(rate.per_sec().unwrap_or(0.0));
    }

    /// The call rate in force for one API: the coordinator's grant if there is one, else the static rate.
    pub fn effective_rate(&self, api: Api) -> RateSetting {
        self.inner.limits.effective(api)
    }

    /// Waits for a slot of `api` as a call would, without calling: for benches and tests of the pacing.
    pub async fn wait_for_slot(&self, api: Api) -> Duration {
        self.inner.limits.acquire(api).await
    }

    /// Calls let through and time spent waiting for one API so far (the coordinator's demand estimate).
    pub fn usage(&self, api: Api) -> Usage {
        self.inner.limits.usage(api)
    }

    /// Calls any API with any body: rate limit, retries and envelope checks included. The typed methods
    /// below are thin wrappers around this.
    pub async fn call<Q, R>(&self, api: Api, req: &Q) -> Result<R, ImError>
    where
        Q: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let inner = &self.inner;
        let body =
            serde_json::to_vec(req).map_err(|e| ImError::BadResponse { api, reason: format!("request: {e}") })?;
        let max_attempts = inner.retry.max_attempts.max(1);
        let mut attempt = 1u32;
        loop {
            let waited = inner.limits.acquire(api).await;
            if !waited.is_zero() {
                inner.metrics.rate_limit_wait.with_label_values(&[api.as_str()]).inc_by(waited.as_secs_f64());
            }
            let result = self.attempt::<R>(api, &body).await;
            let outcome = outcome_label(&result);
            inner.metrics.requests.with_label_values(&[api.as_str(), outcome]).inc();
            let err = match result {
                Ok(r) => {
                    inner.metrics.calls.with_label_values(&[api.as_str(), outcome]).inc();
                    return Ok(r);
                }
                Err(e) => e,
            };
            if let Some(code) = err.code() {
                inner.metrics.frequency_limited(api, code);
                if code == USERSIG_EXPIRED {
                    // Our cached signature looked valid to us but not to IM (clock skew): sign anew.
                    inner.sig.invalidate();
                }
            }
            if err.is_retryable() && attempt < max_attempts {
                let ceiling = inner.retry.backoff_ceiling_ms(attempt);
                let sleep_ms = if ceiling == 0 { 0 } else { rand::rng().random_range(0..=ceiling) };
                tracing::debug!(api = api.as_str(), attempt, sleep_ms, error = %err, "retrying im call");
                inner.metrics.retries.with_label_values(&[api.as_str()]).inc();
                tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                attempt += 1;
                continue;
            }
            if err.is_retryable() {
                tracing::warn!(api = api.as_str(), attempts = attempt, error = %err, "im call still failing after retries");
            }
            inner.metrics.calls.with_label_values(&[api.as_str(), outcome]).inc();
            return Err(err);
        }
    }

    fn url(&self, api: Api) -> Result<reqwest::Url, ImError> {
        let inner = &self.inner;
        let mut url = inner
            .base
            .join(&format!("v4/{}", api.path()))
            .map_err(|e| ImError::Config(format!("url for {api}: {e}")))?;
        let sig = inner.sig.get();
        url.query_pairs_mut()
            .append_pair("sdkappid", &inner.sdkappid.to_string())
            .append_pair("identifier", inner.sig.identifier())
            .append_pair("usersig", &sig)
            // "identifies this request" (reference §1.1): a fresh value per attempt.
            .append_pair("random", &rand::random::<u32>().to_string())
            .append_pair("contenttype", "json");
        Ok(url)
    }

    async fn attempt<R: DeserializeOwned>(&self, api: Api, body: &[u8]) -> Result<R, ImError> {
        let url = self.url(api)?;
        let start = Instant::now();
        let sent = self
            .inner
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let resp = sent.map_err(|e| transport_error(api, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport_error(api, &e))?;
        self.inner.metrics.request_duration.with_label_values(&[api.as_str()]).observe(start.elapsed().as_secs_f64());
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(HTTP_ERROR_BODY_CHARS).collect();
            return Err(ImError::Http { api, status: status.as_u16(), body: text });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ImError::BadResponse { api, reason: e.to_string() })?;
        let envelope = Envelope::deserialize_from(&value).map_err(|e| ImError::BadResponse { api, reason: e })?;
        if !envelope.is_ok() {
            return Err(ImError::Api { api, code: envelope.error_code, info: envelope.error_info });
        }
        serde_json::from_value(value).map_err(|e| ImError::BadResponse { api, reason: e.to_string() })
    }

    api_methods! {
        /// Imports (or re-imports, idempotently) one account.
        account_import(AccountImportReq) -> EmptyResp = AccountImport;
        /// Imports up to [`MULTIACCOUNT_IMPORT_MAX`] accounts; per-account failures in `failed()`.
        multiaccount_import(MultiAccountImportReq) -> MultiAccountImportResp = MultiAccountImport;
        /// Checks up to [`ACCOUNT_CHECK_MAX`] accounts.
        account_check(AccountCheckReq) -> AccountCheckResp = AccountCheck;
        /// Sets profile fields of one user.
        portrait_set(PortraitSetReq) -> EmptyResp = PortraitSet;
        /// Reads profile fields of up to [`PORTRAIT_GET_MAX`] users.
        portrait_get(PortraitGetReq) -> PortraitGetResp = PortraitGet;
        /// Imports one-way friendships; per-friend failures in `failed()`.
        friend_import(FriendImportReq) -> FriendImportResp = FriendImport;
        /// One page of a user's friend list (see [`ImClient::all_friends`]).
        friend_get(FriendGetReq) -> FriendGetResp = FriendGet;
        /// Imports one C2C message (no callback).
        importmsg(ImportMsgReq) -> EmptyResp = ImportMsg;
        /// Marks a C2C conversation read for one side (fires `C2C.CallbackAfterMsgReport`).
        admin_set_msg_read(AdminSetMsgReadReq) -> EmptyResp = AdminSetMsgRead;
        /// Sends a C2C message (fires the send callbacks unless forbidden).
        sendmsg(SendMsgReq) -> SendMsgResp = SendMsg;
        /// One page of C2C history (see [`ImClient::c2c_history`]).
        admin_getroammsg(AdminGetRoamMsgReq) -> AdminGetRoamMsgResp = AdminGetRoamMsg;
        /// C2C unread counts of one user.
        get_c2c_unread_msg_num(GetC2cUnreadMsgNumReq) -> GetC2cUnreadMsgNumResp = GetC2cUnreadMsgNum;
        /// Imports a group (no callback).
        import_group(ImportGroupReq) -> ImportGroupResp = ImportGroup;
        /// Imports up to [`IMPORT_GROUP_MEMBER_MAX`] members; per-member failures in `failed()`.
        import_group_member(ImportGroupMemberReq) -> MemberResultsResp = ImportGroupMember;
        /// Imports up to [`IMPORT_GROUP_MSG_MAX`] group messages; per-message failures in `failed()`.
        import_group_msg(ImportGroupMsgReq) -> ImportGroupMsgResp = ImportGroupMsg;
        /// Sets one member's unread count (migration only, no callback).
        set_unread_msg_num(SetUnreadMsgNumReq) -> EmptyResp = SetUnreadMsgNum;
        /// Creates a group (fires `Group.CallbackAfterCreateGroup`).
        create_group(CreateGroupReq) -> CreateGroupResp = CreateGroup;
        /// Changes a group's profile.
        modify_group_base_info(ModifyGroupBaseInfoReq) -> EmptyResp = ModifyGroupBaseInfo;
        /// Disbands a group.
        destroy_group(DestroyGroupReq) -> EmptyResp = DestroyGroup;
        /// Adds up to [`ADD_GROUP_MEMBER_MAX`] members; per-member failures in `failed()`.
        add_group_member(AddGroupMemberReq) -> MemberResultsResp = AddGroupMember;
        /// Removes up to [`DELETE_GROUP_MEMBER_MAX`] members (removing a non-member succeeds).
        delete_group_member(DeleteGroupMemberReq) -> EmptyResp = DeleteGroupMember;
        /// Sends a group message (fires the send callbacks unless forbidden).
        send_group_msg(SendGroupMsgReq) -> SendGroupMsgResp = SendGroupMsg;
        /// One page of the app's group ids (see [`ImClient::all_group_ids`]).
        get_appid_group_list(GetAppidGroupListReq) -> GetAppidGroupListResp = GetAppidGroupList;
        /// Details of up to [`GET_GROUP_INFO_MAX`] groups; per-group failures in `failed()`.
        get_group_info(GetGroupInfoReq) -> GetGroupInfoResp = GetGroupInfo;
        /// One page of a group's members (see [`ImClient::all_group_members`]).
        get_group_member_info(GetGroupMemberInfoReq) -> GetGroupMemberInfoResp = GetGroupMemberInfo;
        /// One page of a user's conversation list (see [`ImClient::recent_contacts`]).
        recentcontact_get_list(RecentContactGetListReq) -> RecentContactGetListResp = RecentContactGetList;
        /// One page of group history, newest first (see [`ImClient::group_history`]).
        group_msg_get_simple(GroupMsgGetSimpleReq) -> GroupMsgGetSimpleResp = GroupMsgGetSimple;
    }

    // ---- paging and chunking helpers for the verifier and reconciliation ----

    /// The whole friend list of `from`, following `NextStartIndex` until `CompleteFlag`. Sequences are never
    /// echoed back, so every page carries its fields (reference §11.3).
    pub async fn all_friends(&self, from: &str) -> Result<Vec<Friend>, ImError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let page = self
                .friend_get(&FriendGetReq { from_account: from.to_owned(), start_index: start, ..Default::default() })
                .await?;
            out.extend(page.user_data_item);
            if page.complete_flag != 0 {
                return Ok(out);
            }
            if page.next_start_index <= start {
                return Err(no_progress(
                    Api::FriendGet,
                    format!("NextStartIndex {} after {start}", page.next_start_index),
                ));
            }
            start = page.next_start_index;
        }
    }

    /// Every message of the C2C conversation between `operator` and `peer` with a time in
    /// `[min_time, max_time]` (Unix seconds, inclusive), as `operator` sees it, oldest first (by time, then
    /// MsgSeq), each `MsgKey` once. Pages walk backwards with `MaxTime := LastMsgTime` and `LastMsgKey`
    /// (reference §11.4); in-page order is not relied on.
    pub async fn c2c_history(
        &self,
        operator: &str,
        peer: &str,
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<RoamMsg>, ImError> {
        let mut out: Vec<RoamMsg> = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: (i64, Option<String>) = (max_time, None);
        loop {
            let page = self
                .admin_getroammsg(&AdminGetRoamMsgReq {
                    operator_account: operator.to_owned(),
                    peer_account: peer.to_owned(),
                    max_cnt: ROAM_PAGE,
                    min_time,
                    max_time: cursor.0,
                    last_msg_key: cursor.1.clone(),
                })
                .await?;
            for m in page.msg_list {
                if seen.insert(m.msg_key.clone()) {
                    out.push(m);
                }
            }
            if page.complete == 1 {
                break;
            }
            let next = (page.last_msg_time, Some(page.last_msg_key));
            if next == cursor || next.1.as_deref().is_none_or(str::is_empty) {
                return Err(no_progress(Api::AdminGetRoamMsg, format!("cursor stuck at {:?}", next)));
            }
            cursor = next;
        }
        out.sort_by_key(|m| (m.msg_time_stamp, m.msg_seq));
        Ok(out)
    }

    /// Every stored message of a group, oldest first (ascending `MsgSeq`). Pages of 20 walk down from the
    /// newest with `ReqMsgSeq := smallest seq − 1` until seq 1 (reference §11.9). With `with_recalled`,
    /// recalled messages are included (as `IsPlaceMsg` 2) so they do not leave gaps.
    pub async fn group_history(&self, group_id: &str, with_recalled: bool) -> Result<Vec<GroupMsg>, ImError> {
        let mut out: Vec<GroupMsg> = Vec::new();
        let mut req_seq: Option<u64> = None;
        loop {
            let page = self
                .group_msg_get_simple(&GroupMsgGetSimpleReq {
                    group_id: group_id.to_owned(),
                    req_msg_number: GROUP_MSG_GET_SIMPLE_MAX,
                    req_msg_seq: req_seq,
                    with_recalled_msg: with_recalled.then_some(1),
                    topic_id: None,
                })
                .await?;
            let min_seq = page.rsp_msg_list.iter().map(|m| m.msg_seq).min();
            out.extend(page.rsp_msg_list);
            let next = match (min_seq, req_seq) {
                (Some(min), _) => min.saturating_sub(1),
                // An empty first page: the group has no stored messages.
                (None, None) => break,
                // An empty window in the middle (hidden or expired seqs): step below it; seqs only go down.
                (None, Some(s)) => s.saturating_sub(u64::from(GROUP_MSG_GET_SIMPLE_MAX)),
            };
            if next < 1 {
                break;
            }
            if req_seq.is_some_and(|s| next >= s) {
                return Err(no_progress(Api::GroupMsgGetSimple, format!("ReqMsgSeq {next} after {req_seq:?}")));
            }
            req_seq = Some(next);
        }
        out.sort_by_key(|m| m.msg_seq);
        out.dedup_by_key(|m| m.msg_seq);
        Ok(out)
    }

    /// Every member of a group. Offset paging (100 per page) for ordinary groups; when IM answers with a
    /// `Next` cursor (Community groups), follows it instead.
    pub async fn all_group_members(
        &self,
        group_id: &str,
        member_info_filter: Option<Vec<String>>,
    ) -> Result<Vec<GroupMember>, ImError> {
        let limit = GET_GROUP_MEMBER_INFO_PAGE;
        let mut out: Vec<GroupMember> = Vec::new();
        let mut offset = 0u64;
        let mut next: Option<String> = None;
        loop {
            let page = self
                .get_group_member_info(&GetGroupMemberInfoReq {
                    group_id: group_id.to_owned(),
                    limit: Some(limit),
                    offset: next.is_none().then_some(offset),
                    next: next.clone(),
                    member_info_filter: member_info_filter.clone(),
                    ..Default::default()
                })
                .await?;
            let got = page.member_list.len() as u64;
            out.extend(page.member_list);
            match page.next.filter(|n| !n.is_empty()) {
                Some(n) => {
                    if got == 0 || next.as_deref() == Some(n.as_str()) {
                        break;
                    }
                    next = Some(n);
                }
                None if next.is_some() => break,
                None => {
                    offset += got;
                    if got < u64::from(limit) || offset >= page.member_num {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every group id of the app (optionally of one `GroupType`), following the opaque `Next` cursor until 0.
    /// The API is limited to 1 call per second app-wide; the client's rate limiter paces the pages.
    pub async fn all_group_ids(&self, group_type: Option<&str>) -> Result<Vec<String>, ImError> {
        let mut out = Vec::new();
        let mut next = 0u64;
        let mut seen = HashSet::new();
        loop {
            let page = self
                .get_appid_group_list(&GetAppidGroupListReq {
                    limit: Some(10_000),
                    next: Some(next),
                    group_type: group_type.map(str::to_owned),
                })
                .await?;
            out.extend(page.group_id_list.into_iter().map(|g| g.group_id));
            if page.next == 0 {
                return Ok(out);
            }
            if !seen.insert(page.next) {
                return Err(no_progress(Api::GetAppidGroupList, format!("cursor {} repeated", page.next)));
            }
            next = page.next;
        }
    }

    /// Every conversation of `user` (1:1 and group, empty ones too), following both cursors (ordinary and
    /// pinned) until `CompleteFlag` is 1 (reference §11.14a). Each conversation appears once.
    pub async fn recent_contacts(&self, user: &str) -> Result<Vec<SessionItem>, ImError> {
        let mut out: Vec<SessionItem> = Vec::new();
        let mut seen = HashSet::new();
        let mut req = RecentContactGetListReq::first(user);
        loop {
            let page = self.recentcontact_get_list(&req).await?;
            for item in page.session_item {
                if seen.insert((item.kind, item.to_account.clone(), item.group_id.clone())) {
                    out.push(item);
                }
            }
            if page.complete_flag == 1 {
                return Ok(out);
            }
            let next = page.cursor;
            if next == req.cursor {
                return Err(no_progress(Api::RecentContactGetList, format!("cursor stuck at {next:?}")));
            }
            req.cursor = next;
        }
    }

    /// `account_check` for any number of ids, in chunks of [`ACCOUNT_CHECK_MAX`].
    pub async fn check_accounts(&self, ids: &[String]) -> Result<Vec<AccountCheckItem>, ImError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ACCOUNT_CHECK_MAX) {
            out.extend(self.account_check(&AccountCheckReq::new(chunk.iter().cloned())).await?.result_item);
        }
        Ok(out)
    }

    /// `get_group_info` for any number of groups, in chunks of [`GET_GROUP_INFO_MAX`].
    pub async fn group_infos(
        &self,
        group_ids: &[String],
        filter: Option<GroupInfoFilter>,
    ) -> Result<Vec<GroupInfo>, ImError> {
        let mut out = Vec::with_capacity(group_ids.len());
        for chunk in group_ids.chunks(GET_GROUP_INFO_MAX) {
            let req = GetGroupInfoReq { group_id_list: chunk.to_vec(), response_filter: filter.clone() };
            out.extend(self.get_group_info(&req).await?.group_info);
        }
        Ok(out)
    }
}

fn no_progress(api: Api, what: String) -> ImError {
    ImError::BadResponse { api, reason: format!("paging does not advance: {what}") }
}

fn outcome_label<R>(r: &Result<R, ImError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) if e.is_retryable() => "retryable",
        Err(_) => "permanent",
    }
}

fn transport_error(api: Api, e: &reqwest::Error) -> ImError {
    if e.is_timeout() {
        ImError::Timeout { api }
    } else if e.is_builder() {
        ImError::Config(format!("{api} request: {e}"))
    } else {
        // Connect failures, resets and truncated bodies: the network, not the request, is at fault.
        ImError::Connect { api, reason: error_chain(e) }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Envelope {
    fn deserialize_from(v: &serde_json::Value) -> Result<Self, String> {
        use serde::Deserialize as _;
        if !v.is_object() {
            return Err("response is not a JSON object".into());
        }
        Envelope::deserialize(v).map_err(|e| e.to_string())
    }
}
