//! The rules of each emulated API, as pure functions over [`State`]: a handler validates the body, changes the
//! state, and lists the callbacks the operation fires. Handlers never await: the caller holds the state lock for
//! exactly one handler call, so every operation is atomic and callbacks are queued in operation order.
//!
//! APIs with a "before" callback (sendmsg, send_group_msg, create_group, add_group_member) also have a
//! `prepare` step run under a read of the state: it validates, fills in server-chosen values (a random MsgSeq) so
//! the callback and the result agree, and builds the before-callback payload.

mod accounts;
mod c2c;
mod groups;
mod recentcontact;

use serde_json::{Value, json};

use crate::api::{Api, ApiError};
use crate::config::EmulatorConfig;
use crate::state::State;

/// Who is calling and how, for one request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The `identifier` of the request: an admin on the REST API, the acting user on the client path.
    pub(crate) operator: String,
    /// `OptPlatform` of callbacks this request causes (`RESTAPI` for REST calls).
    pub(crate) platform: String,
    /// `ClientIP` of callbacks this request causes.
    pub(crate) client_ip: String,
    /// A simulated client, not the REST API: the acting user is forced as sender/operator, permissions apply,
    /// and `ForbidCallbackControl` is ignored.
    pub(crate) client: bool,
    /// Emulated time of the request, Unix milliseconds.
    pub(crate) now_ms: u64,
    /// Members a `Group.CallbackBeforeInviteJoinGroup` answer refused.
    pub(crate) refused_members: Vec<String>,
}

impl Ctx {
    pub(crate) fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }
}

/// A callback an operation fires, before delivery filtering (enabled set, URL configured).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) command: &'static str,
    pub(crate) body: Value,
}

impl Pending {
    fn new(command: &'static str, ctx: &Ctx, mut body: Value) -> Self {
        if let Some(o) = body.as_object_mut() {
            o.insert("CallbackCommand".into(), json!(command));
            // EventTime is documented as integer milliseconds; some samples quote it, we never do.
            o.insert("EventTime".into(), json!(ctx.now_ms));
        }
        Self { command, body }
    }
}

/// What `prepare` found: the (possibly completed) body and the before-callback to ask, if any.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) body: Value,
    pub(crate) before: Option<Pending>,
}

/// Runs the validation and before-callback step of the APIs that have one; others pass through.
pub(crate) fn prepare(
    api: Api,
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: Value,
) -> Result<Prepared, ApiError> {
    match api {
        Api::SendMsg => c2c::prepare_sendmsg(st, cfg, ctx, body),
        Api::SendGroupMsg => groups::prepare_send_group_msg(st, cfg, ctx, body),
        Api::CreateGroup => groups::prepare_create_group(st, cfg, ctx, body),
        Api::AddGroupMember => groups::prepare_add_group_member(st, cfg, ctx, body),
        _ => Ok(Prepared { body, before: None }),
    }
}

/// Whether `api` has a before-callback step.
pub(crate) fn has_prepare(api: Api) -> bool {
    matches!(api, Api::SendMsg | Api::SendGroupMsg | Api::CreateGroup | Api::AddGroupMember)
}

/// Runs one API against the state. Callbacks the operation fires are appended to `out`.
pub(crate) fn handle(
    api: Api,
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    match api {
        Api::AccountImport => accounts::account_import(st, cfg, body),
        Api::MultiaccountImport => accounts::multiaccount_import(st, cfg, body),
        Api::AccountCheck => accounts::account_check(st, cfg, body),
        Api::PortraitSet => accounts::portrait_set(st, cfg, ctx, body, out),
        Api::PortraitGet => accounts::portrait_get(st, cfg, body),
        Api::FriendImport => accounts::friend_import(st, cfg, ctx, body),
        Api::FriendGet => accounts::friend_get(st, cfg, body),
        Api::ImportMsg => c2c::importmsg(st, cfg, body),
        Api::SendMsg => c2c::sendmsg(st, cfg, ctx, body, out),
        Api::AdminSetMsgRead => c2c::admin_set_msg_read(st, cfg, ctx, body, out),
        Api::AdminGetRoamMsg => c2c::admin_getroammsg(st, cfg, ctx, body),
        Api::GetC2cUnreadMsgNum => c2c::get_c2c_unread_msg_num(st, cfg, body),
        Api::ImportGroup => groups::import_group(st, cfg, ctx, body),
        Api::ImportGroupMember => groups::import_group_member(st, cfg, ctx, body),
        Api::ImportGroupMsg => groups::import_group_msg(st, cfg, ctx, body),
        Api::SetUnreadMsgNum => groups::set_unread_msg_num(st, body),
        Api::CreateGroup => groups::create_group(st, cfg, ctx, body, out),
        Api::ModifyGroupBaseInfo => groups::modify_group_base_info(st, cfg, ctx, body, out),
        Api::AddGroupMember => groups::add_group_member(st, cfg, ctx, body, out),
        Api::DeleteGroupMember => groups::delete_group_member(st, cfg, ctx, body, out),
        Api::DestroyGroup => groups::destroy_group(st, ctx, body, out),
        Api::SendGroupMsg => groups::send_group_msg(st, cfg, ctx, body, out),
        Api::QuitGroup => groups::quit_group(st, cfg, ctx, body, out),
        Api::GetAppidGroupList => groups::get_appid_group_list(st, cfg, body),
        Api::GetGroupInfo => groups::get_group_info(st, cfg, body),
        Api::GetGroupMemberInfo => groups::get_group_member_info(st, cfg, body),
        Api::GroupMsgGetSimple => groups::group_msg_get_simple(st, cfg, ctx, body),
        Api::RecentContactGetList => recentcontact::get_list(st, cfg, ctx, body),
    }
}

/// An account exists when it was imported or is a configured admin (admins need no import).
pub(crate) fn account_exists(st: &State, cfg: &EmulatorConfig, id: &str) -> bool {
    st.accounts.contains_key(id) || cfg.admin_identifiers.iter().any(|a| a == id)
}

/// Whether a message stored at `time` (Unix s) is past the roaming window at `now_secs`.
pub(crate) fn expired(cfg: &EmulatorConfig, time: u64, now_secs: u64) -> bool {
    cfg.retention_secs.is_some_and(|r| time.saturating_add(r) < now_secs)
}

/// Reads `ForbidCallbackControl`: (before suppressed, after suppressed). A simulated client cannot suppress.
pub(crate) fn forbid_flags(list: &[String], ctx: &Ctx) -> (bool, bool) {
    if ctx.client {
        return (false, false);
    }
    (list.iter().any(|s| s == "ForbidBeforeSendMsgCallback"), list.iter().any(|s| s == "ForbidAfterSendMsgCallback"))
}
