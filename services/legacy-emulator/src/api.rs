//! The emulator's HTTP surface.
//!
//! - the user-facing REST API (`/api/...`): what an old-app user does; every change is stored and queued as
//!   a signed webhook in one step;
//! - the contract's apply endpoint (`POST /v1/apply`): verified before it is parsed, idempotent by event id;
//! - the contract's signed read endpoints (`POST /v1/read/digests`, `POST /v1/read/conversation`);
//! - read endpoints for tests (`GET /api/...`), `/api/export`, `/api/stats` and `/healthz`.
//!
//! Errors are JSON `{"error":"…"}` with 400 (bad input), 404 (unknown user or group), 403 (not a member),
//! 409 (already exists, owner leaving) or 401 (signature).

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use imbridge_core::event::{Gender, GroupType, ImportFriendship, ImportProfile, LeaveReason, MemberRole};
use imbridge_core::export::GroupProfile;
use imbridge_core::{ConversationKey, Element, GroupId, TimestampMs, UserId};
use imbridge_legacy::read::{
    ACCOUNTS_PATH, AccountState, AccountsAnswer, AccountsRequest, CONVERSATION_PATH, ConversationRequest, DIGESTS_PATH,
    DigestsAnswer, DigestsRequest, MAX_READ_ACCOUNTS,
};
use imbridge_legacy::{ContractEvent, ErrorsBody, IndexedError, Origin, parse_batch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::LegacyEmulator;
use crate::state::{Applied, Group, Message, ProfilePatch, Refusal, State as EmulatorState, User};

/// Every route of the emulator.
pub(crate) fn router(em: LegacyEmulator) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/apply", post(apply))
        .route(DIGESTS_PATH, post(read_digests))
        .route(CONVERSATION_PATH, post(read_conversation))
        .route(ACCOUNTS_PATH, post(read_accounts))
        .route("/api/users", post(create_user).get(list_users))
        .route("/api/users/{user_id}", get(get_user))
        .route("/api/users/{user_id}/friends", get(list_friends))
        .route("/api/friends", post(add_friends))
        .route("/api/messages", post(send_c2c))
        .route("/api/reads", post(mark_read))
        .route("/api/c2c", get(list_c2c))
        .route("/api/c2c/{a}/{b}/messages", get(c2c_messages))
        .route("/api/groups", post(create_group).get(list_groups))
        .route("/api/groups/{group_id}", get(get_group).patch(update_group).delete(dismiss_group))
        .route("/api/groups/{group_id}/members", post(add_members))
        .route("/api/groups/{group_id}/kick", post(kick_members))
        .route("/api/groups/{group_id}/leave", post(leave_group))
        .route("/api/groups/{group_id}/messages", post(send_group).get(group_messages))
        .route("/api/groups/{group_id}/read", post(mark_group_read))
        .route("/api/stats", get(stats))
        .route("/api/export", post(export))
        .with_state(em)
}

/// An error answer: `{"error":"…"}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match &r {
            Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        ApiError(status, r.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, r.body_text())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body that must be an object. axum's `Json` alone would read a struct from an array by
/// position (`["dan"]` as a user named "dan"); this refuses anything but an object, with a reason.
pub(crate) struct ObjectJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ObjectJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            Bytes::from_request(req, state).await.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
        imbridge_core::json::check_object_text(&bytes)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body is {e}")))?;
        let Json(t) = Json::<T>::from_bytes(&bytes)?;
        Ok(ObjectJson(t))
    }
}

/// The answer to a native write: the id and time of the event it queued.
fn created(ev: &ContractEvent) -> Response {
    let mut body = json!({ "id": ev.id, "time": ev.time });
    if let imbridge_legacy::EventData::GroupCreated(c) = &ev.data {
        body["group_id"] = json!(c.group_id);
    }
    (StatusCode::CREATED, Json(body)).into_response()
}

/// A native write that queues one event: runs `change` with the configured id prefix, then answers like
/// [`created`].
fn write_created(
    em: &LegacyEmulator,
    change: impl FnOnce(&mut EmulatorState, &str) -> Result<ContractEvent, Refusal>,
) -> ApiResult<Response> {
    let prefix = em.config().id_prefix.clone();
    let ev = em.write_event(|s| change(s, &prefix))?;
    Ok(created(&ev))
}

// ---- apply (imbridge → legacy) ---------------------------------------------------------------------

/// The answer to an apply: how many events were new and how many were repeats.
#[derive(Debug, Serialize)]
struct ApplyAnswer {
    applied: usize,
    duplicates: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<IndexedError>,
}

async fn apply(State(em): State<LegacyEmulator>, headers: HeaderMap, body: Bytes) -> Response {
    // Signature before anything: an unsigned body is never parsed.
    if let Err(e) = em.verifier().verify(&headers, &body) {
        tracing::warn!(error = %e, "apply refused: bad signature");
        return ApiError(StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let events = match parse_batch(&body) {
        Ok(ev) => ev,
        Err(e) => return (StatusCode::BAD_REQUEST, Json::<ErrorsBody>(e.to_body())).into_response(),
    };
    let fault = em.next_apply_fault();
    if fault == crate::config::ApplyFault::Fail {
        tracing::info!("apply: injected failure");
        return ApiError(StatusCode::SERVICE_UNAVAILABLE, "injected failure (apply_faults)".into()).into_response();
    }
    let echo_webhooks = em.config().echo_webhooks;
    let webhooks = em.webhooks_enabled();
    let answer = em.write(|s| {
        let mut answer = ApplyAnswer { applied: 0, duplicates: 0, errors: Vec::new() };
        for (index, ev) in events.iter().enumerate() {
            match s.apply(ev) {
                Ok(Applied::New) => {
                    answer.applied += 1;
                    // The echo rule: what imbridge wrote must not come back as a new event.
                    if webhooks && (ev.origin != Some(Origin::Im) || echo_webhooks) {
                        s.outbox.push_back(ev.clone());
                    }
                }
                Ok(Applied::Duplicate) => answer.duplicates += 1,
                Err(r) => {
                    // Events before this one stay applied; a redelivery skips them by id.
                    tracing::warn!(event_id = %ev.id, error = %r, "apply refused an event");
                    answer.errors.push(IndexedError { index: Some(index), error: r.to_string() });
                    return (StatusCode::UNPROCESSABLE_ENTITY, Json(answer)).into_response();
                }
            }
        }
        let status = if answer.applied == 0 { StatusCode::CONFLICT } else { StatusCode::OK };
        (status, Json(answer)).into_response()
    });
    if let crate::config::ApplyFault::Stall(d) = fault {
        // Applied, but the caller hears nothing before its timeout: its retry must be a no-op.
        tracing::info!(stall_ms = d.as_millis() as u64, "apply: injected stall after applying");
        tokio::time::sleep(d).await;
    }
    answer
}

/// Verifies a contract read request (same secrets as apply), then parses its body.
fn signed_read<T: DeserializeOwned>(em: &LegacyEmulator, headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    if let Err(e) = em.verifier().verify(headers, body) {
        tracing::warn!(error = %e, "read refused: bad signature");
        return Err(ApiError(StatusCode::UNAUTHORIZED, e.to_string()));
    }
    imbridge_core::json::check_object_text(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn read_digests(State(em): State<LegacyEmulator>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let req: DigestsRequest = signed_read(&em, &headers, &body)?;
    let conversations = em.read(|s| s.digests(req.window()));
    Ok(Json(DigestsAnswer { conversations }).into_response())
}

async fn read_conversation(State(em): State<LegacyEmulator>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let req: ConversationRequest = signed_read(&em, &headers, &body)?;
    // The key's shape was checked when parsing; a `user:` key is valid elsewhere but names no conversation.
    if req.conversation.as_str().starts_with("user:") {
        return Err(ApiError(StatusCode::BAD_REQUEST, "conversation must be c2c:<a>:<b> or group:<id>".into()));
    }
    let answer = em.read(|s| s.read_conversation(&req.conversation, req.window()));
    Ok(Json(answer).into_response())
}

async fn read_accounts(State(em): State<LegacyEmulator>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let req: AccountsRequest = signed_read(&em, &headers, &body)?;
    if req.user_ids.is_empty() || req.user_ids.len() > MAX_READ_ACCOUNTS {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("user_ids must hold 1 to {MAX_READ_ACCOUNTS} users")));
    }
    let mut accounts: Vec<AccountState> = em.read(|s| {
        req.user_ids
            .iter()
            .filter_map(|u| s.users.get(u))
            .map(|u| AccountState { user_id: u.user_id.clone(), nick: u.nick.clone(), face_url: u.face_url.clone() })
            .collect()
    });
    accounts.sort_by(|a, b| a.user_id.as_str().cmp(b.user_id.as_str()));
    accounts.dedup_by(|a, b| a.user_id == b.user_id);
    Ok(Json(AccountsAnswer { accounts }).into_response())
}

// ---- users and friends -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NewUser {
    user_id: String,
    nick: Option<String>,
    face_url: Option<String>,
    gender: Option<Gender>,
    location: Option<String>,
    signature: Option<String>,
}

async fn create_user(
    State(em): State<LegacyEmulator>,
    req: Result<ObjectJson<NewUser>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    let user_id = UserId::parse(r.user_id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("user_id: {e}")))?;
    let has_profile = r.gender.is_some() || r.location.is_some() || r.signature.is_some();
    let profile = has_profile.then(|| ImportProfile {
        user_id: user_id.clone(),
        nick: r.nick.clone(),
        gender: r.gender,
        birthday: None,
        location: r.location,
        signature: r.signature,
        allow_type: None,
        language: None,
        avatar: None,
        level: None,
        role: None,
        custom: Default::default(),
    });
    let user = User { user_id, nick: r.nick, face_url: r.face_url, created_at: TimestampMs::now(), profile };
    em.write(|s| s.put_user(user.clone()));
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn list_users(State(em): State<LegacyEmulator>) -> Json<Vec<User>> {
    Json(em.read(|s| s.users.values().cloned().collect()))
}

async fn get_user(State(em): State<LegacyEmulator>, Path(user_id): Path<String>) -> ApiResult<Json<User>> {
    em.read(|s| s.users.get(&UserId::new_unchecked(user_id.as_str())).cloned())
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no user {user_id}")))
}

#[derive(Debug, Deserialize)]
struct NewFriends {
    user_id: String,
    friend_id: String,
    remark: Option<String>,
}

async fn add_friends(
    State(em): State<LegacyEmulator>,
    req: Result<ObjectJson<NewFriends>, ApiError>,
) -> ApiResult<StatusCode> {
    let ObjectJson(r) = req?;
    em.write(|s| s.add_friends(&r.user_id, &r.friend_id, r.remark, TimestampMs::now()))?;
    Ok(StatusCode::CREATED)
}

/// A user's friends, each as its export line.
async fn list_friends(State(em): State<LegacyEmulator>, Path(user_id): Path<String>) -> Json<Vec<ImportFriendship>> {
    Json(em.read(|s| {
        s.friends
            .get(&UserId::new_unchecked(user_id.as_str()))
            .map(|list| list.values().cloned().collect())
            .unwrap_or_default()
    }))
}

// ---- 1:1 -------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NewMessage {
    from: String,
    to: String,
    body: Vec<Element>,
    custom_data: Option<String>,
}

async fn send_c2c(
    State(em): State<LegacyEmulator>,
    req: Result<ObjectJson<NewMessage>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    write_created(&em, |s, prefix| s.send_c2c(prefix, &r.from, &r.to, r.body, r.custom_data, TimestampMs::now()))
}

#[derive(Debug, Deserialize)]
struct NewRead {
    user_id: String,
    peer_id: String,
    /// Defaults to now.
    read_at: Option<TimestampMs>,
}

async fn mark_read(
    State(em): State<LegacyEmulator>,
    req: Result<ObjectJson<NewRead>, ApiError>,
) -> ApiResult<StatusCode> {
    let ObjectJson(r) = req?;
    em.write(|s| s.mark_read(&r.user_id, &r.peer_id, r.read_at.unwrap_or_else(TimestampMs::now)))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct ConversationView {
    conversation: ConversationKey,
    messages: usize,
}

async fn list_c2c(State(em): State<LegacyEmulator>) -> Json<Vec<ConversationView>> {
    Json(
        em.read(|s| {
            s.c2c.iter().map(|(k, m)| ConversationView { conversation: k.clone(), messages: m.len() }).collect()
        }),
    )
}

async fn c2c_messages(State(em): State<LegacyEmulator>, Path((a, b)): Path<(String, String)>) -> ApiResult<Response> {
    let bad = |e: imbridge_core::IdError| ApiError(StatusCode::BAD_REQUEST, e.to_string());
    let key = ConversationKey::c2c(&UserId::parse(a).map_err(bad)?, &UserId::parse(b).map_err(bad)?);
    let messages = em.read(|s| s.c2c.get(&key).cloned().unwrap_or_default());
    Ok(Json(json!({ "conversation": key, "messages": messages })).into_response())
}

// ---- groups ----------------------------------------------------------------------------------------

fn default_group_type() -> GroupType {
    GroupType::Public
}

#[derive(Debug, Deserialize)]
struct NewGroup {
    /// Assigned (`<prefix>-g<n>`) when absent.
    group_id: Option<String>,
    #[serde(default = "default_group_type")]
    group_type: GroupType,
    name: String,
    owner: String,
    introduction: Option<String>,
    notification: Option<String>,
    face_url: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

async fn create_group(
    State(em): State<LegacyEmulator>,
    req: Result<ObjectJson<NewGroup>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    write_created(&em, |s, prefix| {
        s.create_group(
            prefix,
            r.group_id.as_deref(),
            r.group_type,
            r.name,
            &r.owner,
            r.introduction,
            r.notification,
            r.face_url,
            &r.members,
            TimestampMs::now(),
        )
    })
}

#[derive(Debug, Serialize)]
struct MemberView {
    user_id: UserId,
    role: MemberRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_at: Option<TimestampMs>,
    unread: u32,
}

/// A group as the read endpoints show it: profile, members, and how many messages it holds.
#[derive(Debug, Serialize)]
struct GroupView {
    group_id: GroupId,
    group_type: GroupType,
    #[serde(flatten)]
    profile: GroupProfile,
    created_at: TimestampMs,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    members: Vec<MemberView>,
    message_count: usize,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            group_id: g.record.group_id.clone(),
            group_type: g.record.group_type,
            profile: g.record.profile.clone(),
            created_at: g.record.created_at,
            origin: g.origin,
            members: g
                .members
                .iter()
                .map(|(u, m)| MemberView { user_id: u.clone(), role: m.role, joined_at: m.joined_at, unread: m.unread })
                .collect(),
            message_count: g.messages.len(),
        }
    }
}

async fn list_groups(State(em): State<LegacyEmulator>) -> Json<Vec<GroupView>> {
    Json(em.read(|s| s.groups.values().map(GroupView::from).collect()))
}

fn no_group(g: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no group {g}"))
}

async fn get_group(State(em): State<LegacyEmulator>, Path(group_id): Path<String>) -> ApiResult<Json<GroupView>> {
    em.read(|s| s.groups.get(&GroupId::new_unchecked(group_id.as_str())).map(GroupView::from))
        .map(Json)
        .ok_or_else(|| no_group(&group_id))
}

async fn group_messages(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Vec<Message>>> {
    em.read(|s| s.groups.get(&GroupId::new_unchecked(group_id.as_str())).map(|g| g.messages.clone()))
        .map(Json)
        .ok_or_else(|| no_group(&group_id))
}

#[derive(Debug, Deserialize)]
struct GroupPatch {
    operator: Option<String>,
    name: Option<String>,
    introduction: Option<String>,
    notification: Option<String>,
    face_url: Option<String>,
}

async fn update_group(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<GroupPatch>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    let patch =
        ProfilePatch { name: r.name, introduction: r.introduction, notification: r.notification, face_url: r.face_url };
    write_created(&em, |s, prefix| s.update_group(prefix, &group_id, r.operator.as_deref(), patch, TimestampMs::now()))
}

async fn dismiss_group(State(em): State<LegacyEmulator>, Path(group_id): Path<String>) -> ApiResult<Response> {
    write_created(&em, |s, prefix| s.dismiss_group(prefix, &group_id, TimestampMs::now()))
}

#[derive(Debug, Deserialize)]
struct MembersReq {
    members: Vec<String>,
    operator: Option<String>,
}

async fn add_members(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<MembersReq>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    let prefix = em.config().id_prefix.clone();
    let queue = em.webhooks_enabled();
    let ev = em.write(|s| {
        let ev = s.add_members(&prefix, &group_id, &r.members, r.operator.as_deref(), TimestampMs::now())?;
        if let (Some(ev), true) = (&ev, queue) {
            s.outbox.push_back(ev.clone());
        }
        Ok::<_, Refusal>(ev)
    })?;
    Ok(match ev {
        Some(ev) => created(&ev),
        // Everyone was already in: nothing changed, so there is no event.
        None => (StatusCode::OK, Json(json!({ "id": null }))).into_response(),
    })
}

async fn kick_members(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<MembersReq>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    write_created(&em, |s, prefix| {
        s.remove_members(prefix, &group_id, &r.members, LeaveReason::Kicked, r.operator.as_deref(), TimestampMs::now())
    })
}

#[derive(Debug, Deserialize)]
struct UserReq {
    user_id: String,
}

async fn leave_group(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<UserReq>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    write_created(&em, |s, prefix| {
        s.remove_members(
            prefix,
            &group_id,
            std::slice::from_ref(&r.user_id),
            LeaveReason::Quit,
            None,
            TimestampMs::now(),
        )
    })
}

#[derive(Debug, Deserialize)]
struct NewGroupMessage {
    from: String,
    body: Vec<Element>,
    custom_data: Option<String>,
}

async fn send_group(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<NewGroupMessage>, ApiError>,
) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    write_created(&em, |s, prefix| s.send_group(prefix, &group_id, &r.from, r.body, r.custom_data, TimestampMs::now()))
}

async fn mark_group_read(
    State(em): State<LegacyEmulator>,
    Path(group_id): Path<String>,
    req: Result<ObjectJson<UserReq>, ApiError>,
) -> ApiResult<StatusCode> {
    let ObjectJson(r) = req?;
    em.write(|s| s.mark_group_read(&group_id, &r.user_id))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- operations ------------------------------------------------------------------------------------

async fn stats(State(em): State<LegacyEmulator>) -> Json<crate::state::Stats> {
    Json(em.stats())
}

#[derive(Debug, Deserialize)]
struct ExportReq {
    dir: PathBuf,
}

async fn export(State(em): State<LegacyEmulator>, req: Result<ObjectJson<ExportReq>, ApiError>) -> ApiResult<Response> {
    let ObjectJson(r) = req?;
    let counts = em.export_to(&r.dir).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(counts).into_response())
}
