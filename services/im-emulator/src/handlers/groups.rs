//! Groups (`group_open_http_svc`): import, live management, messages, and the read side.
//!
//! Sequence and unread model (reference §6, §11.7–11.9, §11.13):
//! - every group has `NextMsgSeq`, starting at 1, +1 per stored message and, when
//!   `member_notices_consume_seq` is on, per join/leave notice of a live member change;
//! - a member's `MsgSeq` is its read position; its unread count is `(NextMsgSeq - 1) - MsgSeq`;
//! - `import_group_msg` moves every member's read position to the newest seq (unread 0), `set_unread_msg_num`
//!   and `import_group_member`'s `UnreadMsgNum` move one member's position back, a sender reads its own message;
//! - `send_group_msg` dedups on `Random` for 5 minutes: a duplicate answers OK with the first send's `MsgSeq` and
//!   `MsgTime` and fires nothing (UNCONFIRMED; the docs only say "treated as a duplicate").
//!
//! Permissions on the simulated-client path: only members send; only the owner and admins modify or kick (admins
//! cannot kick the owner or other admins); only the owner destroys; any member may invite; the owner cannot quit.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{Ctx, Pending, Prepared, account_exists, expired, forbid_flags};
use crate::api::ApiError;
use crate::config::EmulatorConfig;
use crate::fields::{
    BodyError, check_msg_body, message_size, object, opt_array, opt_str, opt_str_list, opt_u32, opt_u64, req_array,
    req_str, req_u32, req_u64,
};
use crate::state::{Group, GroupMsg, Member, Role, SentGroup, State};

/// Group family: invalid parameter.
const BAD: i64 = 10004;
/// Group family: body not JSON.
const PARSE: i64 = 10011;
/// send_group_msg's dedup window.
const GROUP_DEDUP_MS: u64 = 300_000;
/// The cursor `get_appid_group_list` returns is offset past u32 so it looks (and must be stored) like IM's large
/// opaque values.
const CURSOR_BASE: u64 = 1 << 32;

const GROUP_TYPES: &[&str] = &["Private", "Public", "ChatRoom", "AVChatRoom", "Community"];
const JOIN_OPTIONS: &[&str] = &["FreeAccess", "NeedPermission", "DisableApply"];

fn not_found(id: &str) -> ApiError {
    ApiError::new(10010, format!("group {id} does not exist or was disbanded"))
}

fn group<'a>(st: &'a State, id: &str) -> Result<&'a Group, ApiError> {
    st.groups.get(id).ok_or_else(|| not_found(id))
}

fn group_mut<'a>(st: &'a mut State, id: &str) -> Result<&'a mut Group, ApiError> {
    st.groups.get_mut(id).ok_or_else(|| not_found(id))
}

fn role_of(g: &Group, user: &str) -> Option<Role> {
    g.members.get(user).map(|m| m.role)
}

fn is_manager(g: &Group, user: &str) -> bool {
    matches!(role_of(g, user), Some(Role::Owner | Role::Admin))
}

/// Custom GroupId: printable ASCII, at most 48 bytes, not in the `@TGS#` namespace of generated ids.
fn valid_custom_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 48 && id.bytes().all(|b| (0x20..=0x7e).contains(&b)) && !id.starts_with("@TGS#")
}

/// A fresh `@TGS#…` id (the format beyond the prefix is UNCONFIRMED; this mimics the samples).
fn generate_group_id(st: &State, group_type: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    loop {
        let tail: String = (0..9).map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())])).collect();
        let id = match group_type {
            "Community" => format!("@TGS#_@TGS#c{tail}"),
            "Private" => format!("@TGS#1{tail}"),
            "ChatRoom" => format!("@TGS#3{tail}"),
            "AVChatRoom" => format!("@TGS#a{tail}"),
            _ => format!("@TGS#2{tail}"),
        };
        if !st.groups.contains_key(&id) {
            return id;
        }
    }
}

/// `MsgBody` with the group family's code.
fn group_body(v: Option<&Value>) -> Result<&Vec<Value>, ApiError> {
    check_msg_body(v).map_err(|e| match e {
        BodyError::NotArray => ApiError::new(BAD, "MsgBody must be an array"),
        BodyError::Invalid(why) => ApiError::new(BAD, why),
    })
}

/// `[{Key, Value}]` of strings.
fn key_values(o: &Map<String, Value>, field: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let Some(items) = opt_array(o, field, BAD)? else { return Ok(None) };
    items
        .iter()
        .map(|kv| match (kv.get("Key").and_then(Value::as_str), kv.get("Value").and_then(Value::as_str)) {
            (Some(k), Some(v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(ApiError::new(BAD, format!("{field} items need string Key and Value"))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A profile string field with its length limit (SDK-documented limits; REST-side limits UNCONFIRMED).
fn profile_str<'a>(o: &'a Map<String, Value>, field: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
    let v = opt_str(o, field, BAD)?;
    if v.is_some_and(|s| s.len() > max) {
        return Err(ApiError::new(BAD, format!("{field} is longer than {max} bytes")));
    }
    Ok(v)
}

/// Fields shared by import_group and create_group, validated.
struct NewGroup {
    id: Option<String>,
    group_type: String,
    name: String,
    owner: Option<String>,
    introduction: String,
    notification: String,
    face_url: String,
    max_member_num: u64,
    apply_join_option: String,
    app_defined_data: Vec<(String, String)>,
}

fn parse_new_group(
    st: &State,
    cfg: &EmulatorConfig,
    o: &Map<String, Value>,
    owner: Option<&str>,
) -> Result<NewGroup, ApiError> {
    let l = &cfg.limits;
    let group_type = req_str(o, "Type", BAD)?;
    if !GROUP_TYPES.contains(&group_type) {
        return Err(ApiError::new(BAD, format!("Type {group_type:?} is not a group type")));
    }
    let name = req_str(o, "Name", BAD)?;
    if name.is_empty() || name.len() > l.group_name_max_bytes {
        return Err(ApiError::new(BAD, format!("Name must be 1 to {} bytes", l.group_name_max_bytes)));
    }
    let id = opt_str(o, "GroupId", BAD)?;
    if let Some(id) = id {
        if !valid_custom_group_id(id) {
            return Err(ApiError::new(10015, "GroupId must be printable ASCII, at most 48 bytes, not @TGS#…"));
        }
        if st.groups.contains_key(id) {
            return Err(ApiError::new(10021, format!("group id {id} is already used")));
        }
    }
    if let Some(owner) = owner {
        if !account_exists(st, cfg, owner) {
            return Err(ApiError::new(10019, format!("Owner_Account {owner} does not exist")));
        }
    }
    let apply = opt_str(o, "ApplyJoinOption", BAD)?;
    if apply.is_some_and(|a| !JOIN_OPTIONS.contains(&a)) {
        return Err(ApiError::new(BAD, "ApplyJoinOption must be FreeAccess, NeedPermission or DisableApply"));
    }
    // Default member caps and join options per type are UNCONFIRMED (plan-dependent).
    let default_max = match group_type {
        "AVChatRoom" => 0,
        "Community" => 100_000,
        _ => 6000,
    };
    let default_apply = match group_type {
        "Public" => "NeedPermission",
        "Private" => "DisableApply",
        _ => "FreeAccess",
    };
    Ok(NewGroup {
        id: id.map(str::to_owned),
        group_type: group_type.to_owned(),
        name: name.to_owned(),
        owner: owner.map(str::to_owned),
        introduction: profile_str(o, "Introduction", l.group_introduction_max_bytes)?.unwrap_or("").to_owned(),
        notification: profile_str(o, "Notification", l.group_notification_max_bytes)?.unwrap_or("").to_owned(),
        face_url: profile_str(o, "FaceUrl", l.group_face_url_max_bytes)?.unwrap_or("").to_owned(),
        max_member_num: opt_u64(o, "MaxMemberCount", BAD)?.unwrap_or(default_max),
        apply_join_option: apply.unwrap_or(default_apply).to_owned(),
        app_defined_data: key_values(o, "AppDefinedData")?.unwrap_or_default(),
    })
}

fn new_member(st: &mut State, account: &str, role: Role, join_time: u64, read_seq: u64) -> Member {
    Member {
        account: account.to_owned(),
        role,
        join_time,
        read_seq,
        last_send_msg_time: 0,
        mute_until: 0,
        name_card: String::new(),
        app_member_defined_data: Vec::new(),
        serial: st.next_serial(),
    }
}

/// Inserts a group built from `g`, created at `create_time`, with the owner as first member.
fn insert_group(st: &mut State, g: NewGroup, create_time: u64) -> String {
    let id = g.id.clone().unwrap_or_else(|| generate_group_id(st, &g.group_type));
    let serial = st.next_serial();
    let mut group = Group {
        id: id.clone(),
        group_type: g.group_type,
        name: g.name,
        owner: g.owner.clone(),
        introduction: g.introduction,
        notification: g.notification,
        face_url: g.face_url,
        max_member_num: g.max_member_num,
        apply_join_option: g.apply_join_option,
        mute_all: false,
        app_defined_data: g.app_defined_data,
        create_time,
        info_seq: 1,
        last_info_time: create_time,
        last_msg_time: 0,
        next_msg_seq: 1,
        members: Default::default(),
        msgs: Vec::new(),
        random_dedup: Default::default(),
        serial,
    };
    if let Some(owner) = &g.owner {
        let m = new_member(st, owner, Role::Owner, create_time, 0);
        group.members.insert(owner.clone(), m);
    }
    st.groups.insert(id.clone(), group);
    id
}

/// `import_group`: no callback, no notification; AVChatRoom refused (10007).
pub(super) fn import_group(st: &mut State, cfg: &EmulatorConfig, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let owner = opt_str(o, "Owner_Account", BAD)?;
    let g = parse_new_group(st, cfg, o, owner)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups cannot be imported"));
    }
    // `CreateTime` 0 means "not set" (UNCONFIRMED): the docs default an omitted time to the request's, and public
    // SDKs send 0 for "none". Storing 1970 instead would make every later "after creation" check pass trivially.
    let create_time = opt_u64(o, "CreateTime", BAD)?.filter(|t| *t != 0).unwrap_or(ctx.now_secs());
    let id = insert_group(st, g, create_time);
    Ok(json!({ "GroupId": id }))
}

/// Whether `t` is after `bound`, strictly when the documented strict rule is on.
fn after(cfg: &EmulatorConfig, t: u64, bound: u64) -> bool {
    if cfg.strict_import_times { t > bound } else { t >= bound }
}

/// An import call's body: its object, `GroupId`, and the list under `key`, which must hold 1 to `max` items (or
/// the call fails with `code`).
fn import_request<'a>(
    body: &'a Value,
    key: &str,
    max: usize,
    code: i64,
) -> Result<(&'a crate::fields::Obj, &'a str, &'a Vec<Value>), ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let list = req_array(o, key, BAD)?;
    if list.is_empty() || list.len() > max {
        return Err(ApiError::new(code, format!("{key} must hold 1 to {max} items")));
    }
    Ok((o, gid, list))
}

/// `import_group_member`: per-member `Result` 0 failed, 1 imported, 2 already a member. `JoinTime` must be
/// after the group's creation and not in the future; `UnreadMsgNum` is clamped to the group's message count.
pub(super) fn import_group_member(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let (_, gid, list) = import_request(body, "MemberList", cfg.limits.import_group_member_max, 10005)?;
    let g = group(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups have no importable members"));
    }
    let (create_time, last_seq, has_unread) = (g.create_time, g.last_seq(), g.has_unread());
    let now = ctx.now_secs();
    let mut results = Vec::new();
    for item in list {
        let account = item.get("Member_Account").and_then(Value::as_str).unwrap_or("");
        let role = match item.get("Role").and_then(Value::as_str) {
            None => Some(Role::Member),
            Some("Admin") => Some(Role::Admin),
            Some("Member") => Some(Role::Member),
            Some(_) => None,
        };
        let join_time = item.get("JoinTime").map(|v| v.as_u64());
        let unread = item.get("UnreadMsgNum").map(|v| v.as_u64());
        let ok_join = match join_time {
            None => Some(now),
            Some(Some(t)) if after(cfg, t, create_time) && t <= now => Some(t),
            Some(_) => None,
        };
        let result = if account.is_empty() || !account_exists(st, cfg, account) {
            0
        } else if st.groups.get(gid).is_some_and(|g| g.members.contains_key(account)) {
            2
        } else if let (Some(role), Some(join_time), false) = (role, ok_join, matches!(unread, Some(None))) {
            let unread = if has_unread { unread.flatten().unwrap_or(0).min(last_seq) } else { 0 };
            let m = new_member(st, account, role, join_time, last_seq - unread);
            group_mut(st, gid)?.members.insert(account.to_owned(), m);
            1
        } else {
            0
        };
        results.push(json!({"Member_Account": account, "Result": result}));
    }
    Ok(json!({ "MemberList": results }))
}

/// `import_group_msg`: ≤ 7 per call; each `SendTime` must be before now and after both the group's creation and
/// its latest message (so the list must ascend, and a replay of already imported messages fails per item rather
/// than duplicating them). After any import every member's unread count is 0.
pub(super) fn import_group_msg(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let (o, gid, list) = import_request(body, "MsgList", cfg.limits.import_group_msg_max, BAD)?;
    let _ = opt_u64(o, "RecentContactFlag", BAD)?;
    let g = group(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups do not support importing messages"));
    }
    let now = ctx.now_secs();
    let mut results = Vec::new();
    let mut imported = false;
    for item in list {
        let send_time = item.get("SendTime").and_then(Value::as_u64);
        let checked = (|| {
            let io = item.as_object().ok_or(BAD)?;
            let from = io.get("From_Account").and_then(Value::as_str).ok_or(BAD)?;
            let t = send_time.ok_or(BAD)?;
            let random = match io.get("Random") {
                None | Some(Value::Null) => rand::random::<u32>(),
                Some(v) => v.as_u64().and_then(|r| u32::try_from(r).ok()).ok_or(BAD)?,
            };
            let msg_body = check_msg_body(io.get("MsgBody")).map_err(|_| BAD)?;
            let ccd = io.get("CloudCustomData").and_then(Value::as_str);
            if message_size(msg_body, ccd) > cfg.limits.import_group_msg_body_max_bytes {
                return Err(80002);
            }
            if !account_exists(st, cfg, from) {
                return Err(BAD);
            }
            let g = st.groups.get(gid).ok_or(10010)?;
            if t >= now || !after(cfg, t, g.create_time) || !after(cfg, t, g.last_msg_time) {
                return Err(BAD);
            }
            Ok((from.to_owned(), t, random, Value::Array(msg_body.clone()), ccd.map(str::to_owned)))
        })();
        match checked {
            Ok((from, t, random, msg_body, ccd)) => {
                let g = group_mut(st, gid)?;
                let seq = g.next_msg_seq;
                g.next_msg_seq += 1;
                g.last_msg_time = t;
                g.msgs.push(GroupMsg {
                    seq,
                    from,
                    time: t,
                    random,
                    body: msg_body,
                    priority: 2,
                    cloud_custom_data: ccd,
                    system: false,
                });
                imported = true;
                results.push(json!({"MsgSeq": seq, "MsgTime": t, "Result": 0}));
            }
            Err(code) => results.push(json!({"MsgSeq": 0, "MsgTime": send_time.unwrap_or(0), "Result": code})),
        }
    }
    if imported {
        let g = group_mut(st, gid)?;
        let last = g.last_seq();
        for m in g.members.values_mut() {
            m.read_seq = last;
        }
    }
    Ok(json!({ "ImportMsgResult": results }))
}

/// `set_unread_msg_num`: moves the member's read position back by the count, clamped to the message count;
/// ChatRoom/AVChatRoom: no effect and no error.
pub(super) fn set_unread_msg_num(st: &mut State, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let account = req_str(o, "Member_Account", BAD)?;
    let n = req_u64(o, "UnreadMsgNum", BAD)?;
    let g = group_mut(st, gid)?;
    if !g.has_unread() {
        return Ok(json!({}));
    }
    let last = g.last_seq();
    let m = g.members.get_mut(account).ok_or_else(|| ApiError::new(BAD, format!("{account} is not a member")))?;
    m.read_seq = last - n.min(last);
    Ok(json!({}))
}

/// A `MemberList` item's account: every member list names members the same way.
fn member_account(item: &Value) -> Result<&str, ApiError> {
    item.get("Member_Account")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(BAD, "MemberList items need Member_Account"))
}

/// Initial members of create_group: (account, role).
fn parse_initial_members(
    st: &State,
    cfg: &EmulatorConfig,
    o: &Map<String, Value>,
    owner: Option<&str>,
) -> Result<Vec<(String, Role)>, ApiError> {
    let Some(list) = opt_array(o, "MemberList", BAD)? else { return Ok(Vec::new()) };
    if list.len() > cfg.limits.create_group_members_max {
        return Err(ApiError::new(10005, format!("at most {} initial members", cfg.limits.create_group_members_max)));
    }
    let mut seen = HashSet::new();
    let mut members = Vec::new();
    for item in list {
        let account = member_account(item)?;
        let role = match item.get("Role").and_then(Value::as_str) {
            None | Some("Member") => Role::Member,
            Some("Admin") => Role::Admin,
            Some(r) => return Err(ApiError::new(BAD, format!("Role {r:?} is not allowed (only Admin)"))),
        };
        // UNCONFIRMED: IM may drop unknown members silently; failing the request surfaces the caller's bug.
        if !account_exists(st, cfg, account) {
            return Err(ApiError::new(10019, format!("Member_Account {account} does not exist")));
        }
        if Some(account) != owner && seen.insert(account) {
            members.push((account.to_owned(), role));
        }
    }
    Ok(members)
}

/// A validated create_group.
struct Create {
    group: NewGroup,
    members: Vec<(String, Role)>,
}

fn parse_create(st: &State, cfg: &EmulatorConfig, ctx: &Ctx, body: &Value) -> Result<Create, ApiError> {
    let o = object(body, PARSE)?;
    // A simulated client creating a group becomes its owner; on REST the owner is optional.
    let owner = if ctx.client { Some(ctx.operator.as_str()) } else { opt_str(o, "Owner_Account", BAD)? };
    let group = parse_new_group(st, cfg, o, owner)?;
    let members = parse_initial_members(st, cfg, o, owner)?;
    if group.group_type == "AVChatRoom" && !members.is_empty() {
        return Err(ApiError::new(10007, "AVChatRoom groups cannot have initial members"));
    }
    Ok(Create { group, members })
}

pub(super) fn prepare_create_group(
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: Value,
) -> Result<Prepared, ApiError> {
    let c = parse_create(st, cfg, ctx, &body)?;
    let members: Vec<Value> = c.members.iter().map(|(a, _)| json!({"Member_Account": a})).collect();
    let before = Pending::new(
        "Group.CallbackBeforeCreateGroup",
        ctx,
        json!({"Operator_Account": ctx.operator, "Owner_Account": c.group.owner.as_deref().unwrap_or(""),
               "Type": c.group.group_type, "Name": c.group.name, "MemberList": members}),
    );
    Ok(Prepared { body, before: Some(before) })
}

/// `create_group`: owner and initial members join at once (no join notices); fires
/// `Group.CallbackAfterCreateGroup` whose `MemberList` lists the initial members other than the owner.
pub(super) fn create_group(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let c = parse_create(st, cfg, ctx, body)?;
    let now = ctx.now_secs();
    let (group_type, name, owner) = (c.group.group_type.clone(), c.group.name.clone(), c.group.owner.clone());
    let (intro, notice) = (c.group.introduction.clone(), c.group.notification.clone());
    let id = insert_group(st, c.group, now);
    for (account, role) in &c.members {
        let m = new_member(st, account, *role, now, 0);
        group_mut(st, &id)?.members.insert(account.clone(), m);
    }
    let members: Vec<Value> = c.members.iter().map(|(a, _)| json!({"Member_Account": a})).collect();
    out.push(Pending::new(
        "Group.CallbackAfterCreateGroup",
        ctx,
        json!({"GroupId": id, "Operator_Account": ctx.operator, "Owner_Account": owner.unwrap_or_default(),
               "Type": group_type, "Name": name, "Introduction": intro, "Notification": notice,
               "MemberList": members}),
    ));
    let mut resp = json!({ "GroupId": id });
    if group_type == "Community" {
        resp["Type"] = json!(group_type);
        resp["HugeGroupFlag"] = json!(0);
    }
    Ok(resp)
}

/// `modify_group_base_info`: fires `Group.CallbackAfterGroupInfoChanged` with the changed fields among Name,
/// Introduction, Notification and FaceUrl (none changed: no callback). On REST, `From_Account` acts as that user.
pub(super) fn modify_group_base_info(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let l = &cfg.limits;
    let gid = req_str(o, "GroupId", BAD)?;
    let acting = if ctx.client { Some(ctx.operator.as_str()) } else { opt_str(o, "From_Account", BAD)? };
    let name = profile_str(o, "Name", l.group_name_max_bytes)?;
    if name == Some("") {
        return Err(ApiError::new(BAD, "Name must not be empty"));
    }
    let intro = profile_str(o, "Introduction", l.group_introduction_max_bytes)?;
    let notice = profile_str(o, "Notification", l.group_notification_max_bytes)?;
    let face = profile_str(o, "FaceUrl", l.group_face_url_max_bytes)?;
    let max_members = opt_u64(o, "MaxMemberNum", BAD)?;
    let apply = opt_str(o, "ApplyJoinOption", BAD)?;
    if apply.is_some_and(|a| !JOIN_OPTIONS.contains(&a)) {
        return Err(ApiError::new(BAD, "ApplyJoinOption must be FreeAccess, NeedPermission or DisableApply"));
    }
    // UNCONFIRMED: older revisions of the docs (and public server SDKs) call the field `ShutUpAllMember`; both
    // names are accepted, and both with different values is a malformed request.
    let mute_field = match (opt_str(o, "MuteAllMember", BAD)?, opt_str(o, "ShutUpAllMember", BAD)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::new(BAD, "MuteAllMember and ShutUpAllMember (its legacy name) disagree"));
        }
        (a, b) => a.or(b),
    };
    let mute = match mute_field {
        None => None,
        Some("On") => Some(true),
        Some("Off") => Some(false),
        Some(_) => return Err(ApiError::new(BAD, "MuteAllMember must be On or Off")),
    };
    let data = key_values(o, "AppDefinedData")?;
    let g = group_mut(st, gid)?;
    if let Some(user) = acting {
        if !is_manager(g, user) {
            return Err(ApiError::new(10007, format!("{user} is neither owner nor admin of {gid}")));
        }
    }
    if max_members.is_some_and(|m| m != 0 && (m as usize) < g.members.len()) {
        return Err(ApiError::new(BAD, "MaxMemberNum is below the current member count"));
    }
    let mut changed = Map::new();
    for (field, value, slot) in [
        ("Name", name, &mut g.name),
        ("Introduction", intro, &mut g.introduction),
        ("Notification", notice, &mut g.notification),
        ("FaceUrl", face, &mut g.face_url),
    ] {
        if let Some(v) = value {
            *slot = v.to_owned();
            changed.insert(field.into(), json!(v));
        }
    }
    if let Some(m) = max_members {
        g.max_member_num = m;
    }
    if let Some(a) = apply {
        g.apply_join_option = a.to_owned();
    }
    if let Some(m) = mute {
        g.mute_all = m;
    }
    if let Some(data) = &data {
        for (k, v) in data {
            // An empty Value deletes the key.
            g.app_defined_data.retain(|(ek, _)| ek != k);
            if !v.is_empty() {
                g.app_defined_data.push((k.clone(), v.clone()));
            }
        }
    }
    let any = !changed.is_empty() || max_members.is_some() || apply.is_some() || mute.is_some() || data.is_some();
    if any {
        g.info_seq += 1;
        g.last_info_time = ctx.now_secs();
    }
    if !changed.is_empty() {
        let mut payload = json!({"GroupId": gid, "Type": g.group_type,
            "Operator_Account": acting.unwrap_or(&ctx.operator)});
        if let Some(p) = payload.as_object_mut() {
            p.extend(changed);
        }
        out.push(Pending::new("Group.CallbackAfterGroupInfoChanged", ctx, payload));
    }
    Ok(json!({}))
}

/// Appends a seq-consuming system notice for a live member change, when configured.
fn push_notice(cfg: &EmulatorConfig, g: &mut Group, ctx: &Ctx, members: &[String]) {
    if !cfg.member_notices_consume_seq || members.is_empty() {
        return;
    }
    let seq = g.next_msg_seq;
    g.next_msg_seq += 1;
    // UNCONFIRMED: how REST history shows a notice. IM's REST message format documents eight element types and
    // no group-tips element (the client SDKs build their tips element themselves), and public server SDKs fail
    // on an element type they do not know; so a notice is listed as `IsSystemMsg` 1 with an empty `MsgBody`.
    let body = json!([]);
    g.msgs.push(GroupMsg {
        seq,
        from: ctx.operator.clone(),
        time: ctx.now_secs(),
        random: 0,
        body,
        priority: 2,
        cloud_custom_data: None,
        system: true,
    });
}

/// A validated add_group_member: candidates are existing non-members.
struct Add {
    candidates: Vec<String>,
    /// Every requested account, in request order (each gets a `Result`).
    items: Vec<String>,
    silence: bool,
}

fn parse_add(st: &State, cfg: &EmulatorConfig, ctx: &Ctx, body: &Value) -> Result<Add, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let list = req_array(o, "MemberList", BAD)?;
    if list.is_empty() || list.len() > cfg.limits.add_group_member_max {
        return Err(ApiError::new(
            10005,
            format!("MemberList must hold 1 to {} members", cfg.limits.add_group_member_max),
        ));
    }
    let silence = opt_u64(o, "Silence", BAD)? == Some(1);
    let g = group(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups do not support adding members"));
    }
    if ctx.client && role_of(g, &ctx.operator).is_none() {
        return Err(ApiError::new(10007, format!("{} is not a member of {gid}", ctx.operator)));
    }
    let mut items = Vec::new();
    let mut candidates = Vec::new();
    for item in list {
        let account = member_account(item)?;
        if account_exists(st, cfg, account)
            && !g.members.contains_key(account)
            && !candidates.iter().any(|c| c == account)
        {
            candidates.push(account.to_owned());
        }
        items.push(account.to_owned());
    }
    Ok(Add { candidates, items, silence })
}

pub(super) fn prepare_add_group_member(
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: Value,
) -> Result<Prepared, ApiError> {
    let a = parse_add(st, cfg, ctx, &body)?;
    let before = if a.candidates.is_empty() {
        None
    } else {
        let gid = body.get("GroupId").and_then(Value::as_str).unwrap_or("");
        let group_type = st.groups.get(gid).map(|g| g.group_type.clone()).unwrap_or_default();
        let dest: Vec<Value> = a.candidates.iter().map(|c| json!({"Member_Account": c})).collect();
        Some(Pending::new(
            "Group.CallbackBeforeInviteJoinGroup",
            ctx,
            json!({"GroupId": gid, "Type": group_type, "Operator_Account": ctx.operator, "DestinationMembers": dest}),
        ))
    };
    Ok(Prepared { body, before })
}

/// `add_group_member`: `Result` 0 failed (unknown account, group full, refused), 1 added, 2 already a member;
/// fires `Group.CallbackAfterNewMemberJoin` with `JoinType` `Invited` (UNCONFIRMED value for REST additions).
pub(super) fn add_group_member(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let a = parse_add(st, cfg, ctx, body)?;
    let gid = req_str(object(body, PARSE)?, "GroupId", BAD)?;
    let now = ctx.now_secs();
    let mut added: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for account in &a.items {
        let g = group(st, gid)?;
        let result = if g.members.contains_key(account) {
            if added.contains(account) { 1 } else { 2 }
        } else if !a.candidates.contains(account)
            || ctx.refused_members.contains(account)
            || (g.max_member_num != 0 && g.members.len() as u64 >= g.max_member_num)
        {
            // Unknown account, refused by the invite callback, or the group is full.
            0
        } else {
            let m = new_member(st, account, Role::Member, now, 0);
            group_mut(st, gid)?.members.insert(account.clone(), m);
            added.push(account.clone());
            1
        };
        results.push(json!({"Member_Account": account, "Result": result}));
    }
    let g = group_mut(st, gid)?;
    if !a.silence {
        push_notice(cfg, g, ctx, &added);
    }
    // New members have read everything up to their join (including their own join notice).
    let last = g.last_seq();
    for account in &added {
        if let Some(m) = g.members.get_mut(account) {
            m.read_seq = last;
        }
    }
    if !added.is_empty() {
        out.push(membership_callback(ctx, g, Membership::Joined("Invited"), &added));
    }
    Ok(json!({ "MemberList": results }))
}

/// `delete_group_member`: non-members are ignored (success); the owner cannot be removed (UNCONFIRMED: 10004,
/// transfer ownership first); AVChatRoom answers 10004 as documented. Fires `Group.CallbackAfterMemberExit`
/// with `ExitType` `Kicked` for the members actually removed.
pub(super) fn delete_group_member(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let list = opt_str_list(o, "MemberToDel_Account", BAD)?;
    if o.get("MemberToDel_Account").is_none() {
        return Err(ApiError::new(BAD, "MemberToDel_Account is required"));
    }
    if list.is_empty() || list.len() > cfg.limits.delete_group_member_max {
        return Err(ApiError::new(
            10005,
            format!("MemberToDel_Account must hold 1 to {} members", cfg.limits.delete_group_member_max),
        ));
    }
    let silence = opt_u64(o, "Silence", BAD)? == Some(1);
    let _reason = opt_str(o, "Reason", BAD)?;
    let g = group_mut(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(BAD, "AVChatRoom groups do not support deleting members"));
    }
    for account in &list {
        let target = role_of(g, account);
        if target == Some(Role::Owner) {
            return Err(ApiError::new(BAD, format!("{account} is the owner and cannot be removed")));
        }
        if ctx.client {
            match role_of(g, &ctx.operator) {
                Some(Role::Owner) => {}
                Some(Role::Admin) if target != Some(Role::Admin) => {}
                _ => {
                    return Err(ApiError::new(10007, format!("{} may not remove {account}", ctx.operator)));
                }
            }
        }
    }
    let mut removed = Vec::new();
    for account in &list {
        if g.members.remove(account).is_some() {
            removed.push(account.clone());
        }
    }
    // Silence 1 notifies only the removed members, so the group history gets no notice.
    if !silence {
        push_notice(cfg, g, ctx, &removed);
    }
    if !removed.is_empty() {
        out.push(membership_callback(ctx, g, Membership::Exited("Kicked"), &removed));
    }
    Ok(json!({}))
}

/// `quit_group` (simulated clients only): the acting user leaves; the owner cannot (10009). Fires
/// `Group.CallbackAfterMemberExit` with `ExitType` `Quit`.
pub(super) fn quit_group(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let g = group_mut(st, gid)?;
    match role_of(g, &ctx.operator) {
        None => return Err(ApiError::new(10007, format!("{} is not a member of {gid}", ctx.operator))),
        Some(Role::Owner) => return Err(ApiError::new(10009, "the owner cannot quit the group")),
        Some(_) => {}
    }
    g.members.remove(&ctx.operator);
    push_notice(cfg, g, ctx, std::slice::from_ref(&ctx.operator));
    out.push(membership_callback(ctx, g, Membership::Exited("Quit"), std::slice::from_ref(&ctx.operator)));
    Ok(json!({}))
}

/// A membership change as its callback names it: the `JoinType` or `ExitType` value.
enum Membership {
    Joined(&'static str),
    Exited(&'static str),
}

/// `Group.CallbackAfterNewMemberJoin` / `Group.CallbackAfterMemberExit`: one payload shape, the members listed
/// as `{"Member_Account": …}` under `NewMemberList` / `ExitMemberList`.
fn membership_callback(ctx: &Ctx, g: &Group, change: Membership, members: &[String]) -> Pending {
    let list: Vec<Value> = members.iter().map(|m| json!({"Member_Account": m})).collect();
    let (command, kind_field, kind, list_field) = match change {
        Membership::Joined(how) => ("Group.CallbackAfterNewMemberJoin", "JoinType", how, "NewMemberList"),
        Membership::Exited(how) => ("Group.CallbackAfterMemberExit", "ExitType", how, "ExitMemberList"),
    };
    let mut body = json!({"GroupId": g.id, "Type": g.group_type, "Operator_Account": ctx.operator});
    body[kind_field] = json!(kind);
    body[list_field] = json!(list);
    Pending::new(command, ctx, body)
}

/// `destroy_group`: the group and its history are gone (its id may be reused); fires
/// `Group.CallbackAfterGroupDestroyed` (no `MemberList` for Community, as documented).
pub(super) fn destroy_group(
    st: &mut State,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let g = group(st, gid)?;
    if ctx.client && role_of(g, &ctx.operator) != Some(Role::Owner) {
        return Err(ApiError::new(10007, format!("only the owner may disband {gid}")));
    }
    let g = st.groups.remove(gid).ok_or_else(|| not_found(gid))?;
    let mut payload = json!({"GroupId": gid, "Type": g.group_type, "Owner_Account": g.owner.clone().unwrap_or_default(),
        "Name": g.name});
    if g.group_type != "Community" {
        let members: Vec<Value> = g.members_in_order().iter().map(|m| json!({"Member_Account": m.account})).collect();
        payload["MemberList"] = json!(members);
    }
    out.push(Pending::new("Group.CallbackAfterGroupDestroyed", ctx, payload));
    Ok(json!({}))
}

/// A validated send_group_msg.
struct GroupSend<'a> {
    gid: &'a str,
    group_type: String,
    from: String,
    random: u32,
    body: &'a Vec<Value>,
    ccd: Option<&'a str>,
    priority: u8,
    online_only: bool,
    no_unread: bool,
    forbid_before: bool,
    forbid_after: bool,
    at_info: Option<&'a Value>,
    topic: Option<&'a str>,
}

fn parse_group_send<'a>(
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &'a Value,
) -> Result<GroupSend<'a>, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let random = req_u32(o, "Random", BAD)?;
    let msg_body = group_body(o.get("MsgBody"))?;
    let from = if ctx.client {
        ctx.operator.clone()
    } else {
        opt_str(o, "From_Account", BAD)?.unwrap_or(&ctx.operator).to_owned()
    };
    let priority = match opt_str(o, "MsgPriority", BAD)? {
        None | Some("Normal") => 2,
        Some("High") => 1,
        Some("Low") => 3,
        Some("Lowest") => 4,
        Some(p) => return Err(ApiError::new(BAD, format!("MsgPriority {p:?} is not High, Normal, Low or Lowest"))),
    };
    let online_only = opt_u32(o, "OnlineOnlyFlag", BAD)? == Some(1);
    let control = opt_str_list(o, "SendMsgControl", BAD)?;
    let no_unread = control.iter().any(|c| c == "NoUnread");
    if online_only && no_unread {
        return Err(ApiError::new(BAD, "NoUnread cannot be combined with OnlineOnlyFlag 1"));
    }
    let forbid = opt_str_list(o, "ForbidCallbackControl", BAD)?;
    let to = opt_str_list(o, "To_Account", BAD)?;
    if to.len() > 50 {
        return Err(ApiError::new(BAD, "To_Account holds at most 50 members"));
    }
    let ccd = opt_str(o, "CloudCustomData", BAD)?;
    let topic = opt_str(o, "TopicId", BAD)?;
    let at_info = o.get("GroupAtInfo").filter(|v| !v.is_null());
    if message_size(msg_body, ccd) > cfg.limits.msg_body_max_bytes {
        return Err(ApiError::new(93000, "JSON packet too long, keep the message body under 8 KB"));
    }
    let g = group(st, gid)?;
    // UNCONFIRMED code: 10019 "account does not exist". On REST the sender need not be a member.
    if !account_exists(st, cfg, &from) {
        return Err(ApiError::new(10019, format!("From_Account {from} does not exist")));
    }
    if ctx.client {
        let member = g.members.get(&from).ok_or_else(|| ApiError::new(10007, format!("{from} is not a member")))?;
        let muted = member.mute_until > ctx.now_secs() || (g.mute_all && member.role == Role::Member);
        if muted {
            return Err(ApiError::new(10017, format!("{from} is muted in {gid}")));
        }
    }
    let (forbid_before, forbid_after) = forbid_flags(&forbid, ctx);
    Ok(GroupSend {
        gid,
        group_type: g.group_type.clone(),
        from,
        random,
        body: msg_body,
        ccd,
        priority,
        online_only,
        no_unread,
        forbid_before,
        forbid_after,
        at_info,
        topic,
    })
}

fn group_duplicate(st: &State, ctx: &Ctx, gid: &str, random: u32) -> Option<SentGroup> {
    st.groups.get(gid).and_then(|g| g.random_dedup.get(&random)).filter(|s| s.expires_ms > ctx.now_ms).cloned()
}

pub(super) fn prepare_send_group_msg(
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: Value,
) -> Result<Prepared, ApiError> {
    let s = parse_group_send(st, cfg, ctx, &body)?;
    let before = if s.forbid_before || group_duplicate(st, ctx, s.gid, s.random).is_some() {
        None
    } else {
        let mut payload = json!({"GroupId": s.gid, "Type": s.group_type, "From_Account": s.from,
            "Operator_Account": ctx.operator, "Random": s.random, "OnlineOnlyFlag": u8::from(s.online_only),
            "MsgBody": s.body});
        if let Some(c) = s.ccd {
            payload["CloudCustomData"] = json!(c);
        }
        Some(Pending::new("Group.CallbackBeforeSendMsg", ctx, payload))
    };
    Ok(Prepared { body, before })
}

/// `send_group_msg`: stores the message with the next `MsgSeq` (online-only messages are not stored and answer
/// `MsgSeq` 0, UNCONFIRMED), the sender reads it, and `Group.CallbackAfterSendMsg` fires unless forbidden.
/// `NoUnread` is approximated: members with nothing unread stay at zero; others' counts still grow.
pub(super) fn send_group_msg(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let s = parse_group_send(st, cfg, ctx, body)?;
    if let Some(first) = group_duplicate(st, ctx, s.gid, s.random) {
        st.count_duplicate("group_open_http_svc/send_group_msg");
        return Ok(json!({"MsgTime": first.msg_time, "MsgSeq": first.msg_seq}));
    }
    let now = ctx.now_secs();
    let g = group_mut(st, s.gid)?;
    let seq = if s.online_only {
        0
    } else {
        let seq = g.next_msg_seq;
        g.next_msg_seq += 1;
        g.last_msg_time = now;
        g.msgs.push(GroupMsg {
            seq,
            from: s.from.clone(),
            time: now,
            random: s.random,
            body: Value::Array(s.body.clone()),
            priority: s.priority,
            cloud_custom_data: s.ccd.map(str::to_owned),
            system: false,
        });
        for m in g.members.values_mut() {
            if m.account == s.from {
                m.read_seq = seq;
                m.last_send_msg_time = now;
            } else if s.no_unread && m.read_seq + 1 == seq {
                m.read_seq = seq;
            }
        }
        seq
    };
    if g.random_dedup.len() >= 4096 {
        g.random_dedup.retain(|_, v| v.expires_ms > ctx.now_ms);
    }
    g.random_dedup.insert(s.random, SentGroup { expires_ms: ctx.now_ms + GROUP_DEDUP_MS, msg_seq: seq, msg_time: now });
    if !s.forbid_after {
        let mut payload = json!({"GroupId": s.gid, "Type": s.group_type, "From_Account": s.from,
            "Operator_Account": ctx.operator, "Random": s.random, "MsgSeq": seq, "MsgTime": now,
            "OnlineOnlyFlag": u8::from(s.online_only), "MsgBody": s.body});
        if let Some(c) = s.ccd {
            payload["CloudCustomData"] = json!(c);
        }
        if let Some(at) = s.at_info {
            payload["GroupAtInfo"] = at.clone();
        }
        if let Some(t) = s.topic {
            payload["TopicId"] = json!(t);
        }
        out.push(Pending::new("Group.CallbackAfterSendMsg", ctx, payload));
    }
    Ok(json!({"MsgTime": now, "MsgSeq": seq}))
}

/// `get_appid_group_list`: groups in creation order; `Next` is an opaque cursor (> u32), 0 when done.
pub(super) fn get_appid_group_list(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let max = cfg.limits.group_list_page_max as u64;
    let limit = opt_u64(o, "Limit", BAD)?.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(ApiError::new(BAD, format!("Limit must be 1 to {max}")));
    }
    let next = opt_u64(o, "Next", BAD)?.unwrap_or(0);
    let after_serial = match next {
        0 => 0,
        n if n > CURSOR_BASE => n - CURSOR_BASE,
        _ => return Err(ApiError::new(BAD, "Next is not a cursor this server returned")),
    };
    let filter = opt_str(o, "GroupType", BAD)?;
    if filter.is_some_and(|t| !GROUP_TYPES.contains(&t) && t != "BChatRoom") {
        return Err(ApiError::new(BAD, "GroupType is not a group type"));
    }
    let mut groups: Vec<&Group> = st.groups.values().filter(|g| filter.is_none_or(|t| g.group_type == t)).collect();
    groups.sort_by_key(|g| g.serial);
    let total = groups.len();
    let rest: Vec<&Group> = groups.into_iter().filter(|g| g.serial > after_serial).collect();
    let page: Vec<&Group> = rest.iter().take(limit as usize).copied().collect();
    let cursor = if rest.len() > page.len() { page.last().map_or(0, |g| g.serial + CURSOR_BASE) } else { 0 };
    let ids: Vec<Value> = page.iter().map(|g| json!({"GroupId": g.id})).collect();
    Ok(json!({"TotalCount": total, "GroupIdList": ids, "Next": cursor}))
}

fn member_json(m: &Member, filter: Option<&[String]>, data_filter: Option<&[String]>) -> Value {
    let want = |f: &str| filter.is_none_or(|list| list.iter().any(|x| x == f));
    let mut v = Map::new();
    v.insert("Member_Account".into(), json!(m.account));
    if want("Role") {
        v.insert("Role".into(), json!(m.role.as_str()));
    }
    if want("JoinTime") {
        v.insert("JoinTime".into(), json!(m.join_time));
    }
    if want("MsgSeq") {
        v.insert("MsgSeq".into(), json!(m.read_seq));
    }
    if want("MsgFlag") {
        v.insert("MsgFlag".into(), json!("AcceptAndNotify"));
    }
    if want("LastSendMsgTime") {
        v.insert("LastSendMsgTime".into(), json!(m.last_send_msg_time));
    }
    if want("MuteUntil") || want("ShutUpUntil") {
        v.insert("MuteUntil".into(), json!(m.mute_until));
    }
    if want("NameCard") {
        v.insert("NameCard".into(), json!(m.name_card));
    }
    let data: Vec<Value> = m
        .app_member_defined_data
        .iter()
        .filter(|(k, _)| data_filter.is_none_or(|f| f.contains(k)))
        .map(|(k, val)| json!({"Key": k, "Value": val}))
        .collect();
    if !data.is_empty() {
        v.insert("AppMemberDefinedData".into(), json!(data));
    }
    Value::Object(v)
}

fn str_list(o: Option<&Value>) -> Result<Option<Vec<String>>, ApiError> {
    match o {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::new(BAD, "filters hold strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::new(BAD, "filters must be arrays of strings")),
    }
}

/// `get_group_info`: per-group `ErrorCode` (10010 for unknown groups, UNCONFIRMED); with a `ResponseFilter` only
/// the listed parts come back.
pub(super) fn get_group_info(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let ids = opt_str_list(o, "GroupIdList", BAD)?;
    if ids.is_empty() || ids.len() > cfg.limits.get_group_info_max {
        return Err(ApiError::new(BAD, format!("GroupIdList must hold 1 to {} groups", cfg.limits.get_group_info_max)));
    }
    let filter = o.get("ResponseFilter").filter(|v| !v.is_null());
    if filter.is_some_and(|f| !f.is_object()) {
        return Err(ApiError::new(BAD, "ResponseFilter must be an object"));
    }
    let base_filter = str_list(filter.and_then(|f| f.get("GroupBaseInfoFilter")))?;
    let member_filter = str_list(filter.and_then(|f| f.get("MemberInfoFilter")))?;
    let group_data_filter = str_list(filter.and_then(|f| f.get("AppDefinedDataFilter_Group")))?;
    let member_data_filter = str_list(filter.and_then(|f| f.get("AppDefinedDataFilter_GroupMember")))?;
    let mut infos = Vec::new();
    for id in &ids {
        let Some(g) = st.groups.get(id) else {
            infos.push(json!({"GroupId": id, "ErrorCode": 10010, "ErrorInfo": "group does not exist"}));
            continue;
        };
        let want = |f: &str| match (&filter, &base_filter) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(list)) => list.iter().any(|x| x == f),
        };
        let av = g.group_type == "AVChatRoom";
        let mut v = Map::new();
        v.insert("GroupId".into(), json!(g.id));
        v.insert("ErrorCode".into(), json!(0));
        v.insert("ErrorInfo".into(), json!(""));
        let fields: [(&str, Value); 16] = [
            ("Type", json!(g.group_type)),
            ("Appid", json!(cfg.sdkappid)),
            ("Name", json!(g.name)),
            ("Introduction", json!(g.introduction)),
            ("Notification", json!(g.notification)),
            ("FaceUrl", json!(g.face_url)),
            // UNCONFIRMED: an ownerless group answers "".
            ("Owner_Account", json!(g.owner.clone().unwrap_or_default())),
            ("CreateTime", json!(g.create_time)),
            ("InfoSeq", json!(g.info_seq)),
            ("LastInfoTime", json!(g.last_info_time)),
            ("LastMsgTime", json!(g.last_msg_time)),
            ("NextMsgSeq", json!(g.next_msg_seq)),
            ("MemberNum", json!(g.members.len())),
            ("MaxMemberNum", json!(g.max_member_num)),
            ("ApplyJoinOption", json!(g.apply_join_option)),
            ("MuteAllMember", json!(if g.mute_all { "On" } else { "Off" })),
        ];
        for (k, val) in fields {
            if want(k) && !(av && k == "MemberNum") {
                v.insert(k.into(), val);
            }
        }
        let want_data = filter.is_none() || group_data_filter.is_some();
        if want_data {
            let data: Vec<Value> = g
                .app_defined_data
                .iter()
                .filter(|(k, _)| group_data_filter.as_ref().is_none_or(|f| f.contains(k)))
                .map(|(k, val)| json!({"Key": k, "Value": val}))
                .collect();
            v.insert("AppDefinedData".into(), json!(data));
        }
        let want_members = filter.is_none() || member_filter.is_some();
        if want_members && !av {
            // The official sample filters with "Account", meaning Member_Account (always present).
            let members: Vec<Value> = g
                .members_in_order()
                .into_iter()
                .map(|m| member_json(m, member_filter.as_deref(), member_data_filter.as_deref()))
                .collect();
            v.insert("MemberList".into(), json!(members));
        }
        infos.push(Value::Object(v));
    }
    Ok(json!({ "GroupInfo": infos }))
}

/// `get_group_member_info`: members in join order, paged by `Offset`/`Limit` (Community: string `Next`, "" at
/// the end); `MemberNum` is the group's total.
pub(super) fn get_group_member_info(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    // `Limit` 0 means "not set" (UNCONFIRMED), as the Go SDK always sends the field: an empty page helps no one.
    let limit = opt_u64(o, "Limit", BAD)?.filter(|l| *l != 0);
    let max = cfg.limits.group_member_page_max as u64;
    if limit.is_some_and(|l| l > max) {
        return Err(ApiError::new(BAD, format!("Limit must be at most {max}")));
    }
    let offset = opt_u64(o, "Offset", BAD)?.unwrap_or(0);
    let next = opt_str(o, "Next", BAD)?;
    let info_filter = str_list(o.get("MemberInfoFilter"))?;
    let role_filter = str_list(o.get("MemberRoleFilter"))?;
    let data_filter = str_list(o.get("AppDefinedDataFilter_GroupMember"))?;
    let g = group(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups do not list members"));
    }
    let community = g.group_type == "Community";
    let start = if community {
        match next {
            None | Some("") => 0,
            Some(n) => n.parse::<u64>().map_err(|_| ApiError::new(BAD, "Next is not a cursor this server returned"))?,
        }
    } else {
        offset
    };
    let members: Vec<&Member> = g
        .members_in_order()
        .into_iter()
        .filter(|m| role_filter.as_ref().is_none_or(|f| f.iter().any(|r| r == m.role.as_str())))
        .collect();
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(members.len());
    let end = limit.map_or(members.len(), |l| start.saturating_add(l as usize).min(members.len()));
    let list: Vec<Value> =
        members[start..end].iter().map(|m| member_json(m, info_filter.as_deref(), data_filter.as_deref())).collect();
    let mut resp = json!({"MemberNum": g.members.len(), "MemberList": list});
    if community {
        resp["Next"] = json!(if end < members.len() { end.to_string() } else { String::new() });
    }
    Ok(resp)
}

/// `group_msg_get_simple`: newest first, at most `limits.group_msg_page_max` per answer, only seqs ≤
/// `ReqMsgSeq`; messages past the roaming window come back as holes (`IsPlaceMsg` 1, empty body), notices with
/// `IsSystemMsg` 1.
pub(super) fn group_msg_get_simple(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let o = object(body, PARSE)?;
    let gid = req_str(o, "GroupId", BAD)?;
    let wanted = req_u64(o, "ReqMsgNumber", BAD)?;
    // `ReqMsgSeq` 0 means "not set" (UNCONFIRMED): seqs start at 1, so 0 bounds nothing a caller could want, the
    // docs' paging stops before it would send 0, and public SDKs send 0 on their first call to mean "newest".
    let req_seq = opt_u64(o, "ReqMsgSeq", BAD)?.filter(|s| *s != 0);
    let _ = opt_u64(o, "WithRecalledMsg", BAD)?;
    if wanted == 0 {
        return Err(ApiError::new(BAD, "ReqMsgNumber must be positive"));
    }
    let g = group(st, gid)?;
    if g.group_type == "AVChatRoom" {
        return Err(ApiError::new(10007, "AVChatRoom groups keep no history"));
    }
    let top = req_seq.unwrap_or(u64::MAX).min(g.last_seq());
    let cap = cfg.limits.group_msg_page_max as u64;
    let count = wanted.min(cap);
    let low = top.saturating_sub(count - 1).max(1);
    let now = ctx.now_secs();
    let list: Vec<Value> = g
        .msgs
        .iter()
        .rev()
        .skip_while(|m| m.seq > top)
        .take_while(|m| m.seq >= low)
        .map(|m| {
            let hole = expired(cfg, m.time, now);
            let mut v = json!({"From_Account": m.from, "IsPlaceMsg": u8::from(hole), "IsSystemMsg": u8::from(m.system),
                "MsgBody": if hole || m.system { json!([]) } else { m.body.clone() }, "MsgPriority": m.priority,
                "MsgRandom": m.random, "MsgSeq": m.seq, "MsgTimeStamp": m.time});
            if let (Some(c), false) = (&m.cloud_custom_data, hole) {
                v["CloudCustomData"] = json!(c);
            }
            v
        })
        .collect();
    let finished = wanted <= cap;
    Ok(json!({"GroupId": gid, "IsFinished": u8::from(finished), "RspMsgList": list}))
}
