//! Accounts (`im_open_login_svc`), profiles (`profile`) and friend lists (`sns`): the import APIs and their read
//! counterparts. None of them fires a callback, except `portrait_set` when `Profile.CallbackPortraitSet` is
//! explicitly enabled.

use serde_json::{Map, Value, json};

use super::{Ctx, Pending, account_exists};
use crate::api::ApiError;
use crate::config::EmulatorConfig;
use crate::fields::{object, opt_array, opt_str, opt_u64, req_array, req_str, req_u64, valid_user_id};
use crate::state::{Account, Friend, State};

const LOGIN_BAD: i64 = 70402;

/// Adds an account if new; fails with 70398 when the configured account cap is reached.
fn ensure_account<'a>(st: &'a mut State, cfg: &EmulatorConfig, id: &str) -> Result<&'a mut Account, ApiError> {
    if !st.accounts.contains_key(id) {
        if let Some(max) = cfg.max_accounts {
            if st.accounts.len() as u64 >= max {
                return Err(ApiError::new(70398, format!("account count over the limit of {max}")));
            }
        }
    }
    Ok(st.accounts.entry(id.to_owned()).or_default())
}

/// Nick/FaceUrl of the account import APIs, stored as the matching profile tags.
fn import_profile(o: &Map<String, Value>, cfg: &EmulatorConfig) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut tags = Vec::new();
    for (field, tag) in [("Nick", "Tag_Profile_IM_Nick"), ("FaceUrl", "Tag_Profile_IM_Image")] {
        if let Some(v) = opt_str(o, field, LOGIN_BAD)? {
            if v.len() > cfg.limits.profile_value_max_bytes {
                return Err(ApiError::new(40601, format!("{field} is longer than 500 bytes")));
            }
            tags.push((tag, v.to_owned()));
        }
    }
    Ok(tags)
}

/// `account_import`: idempotent; importing an existing UserID again updates Nick/FaceUrl when given.
pub(super) fn account_import(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, LOGIN_BAD)?;
    // UNCONFIRMED: `Identifier` is the field's name in older revisions of IM's docs, and public server SDKs written
    // against the live service still send it, so it is accepted as a synonym; both names with different values is
    // a malformed request.
    let id = match (opt_str(o, "UserID", LOGIN_BAD)?, opt_str(o, "Identifier", LOGIN_BAD)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::new(LOGIN_BAD, "UserID and Identifier (its legacy name) name different accounts"));
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => return Err(ApiError::new(LOGIN_BAD, "UserID is required")),
    };
    if !valid_user_id(id) {
        return Err(ApiError::new(LOGIN_BAD, "UserID must be 1 to 32 bytes of printable ASCII"));
    }
    let tags = import_profile(o, cfg)?;
    let account = ensure_account(st, cfg, id)?;
    for (tag, v) in tags {
        account.profile.insert(tag.to_owned(), json!(v));
    }
    Ok(json!({}))
}

/// `multiaccount_import`: both request shapes; invalid IDs are reported in `FailAccounts`.
pub(super) fn multiaccount_import(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, LOGIN_BAD)?;
    let old = opt_array(o, "Accounts", LOGIN_BAD)?;
    let new = opt_array(o, "AccountList", LOGIN_BAD)?;
    if old.is_none() && new.is_none() {
        return Err(ApiError::new(LOGIN_BAD, "Accounts or AccountList is required"));
    }
    let total = old.map_or(0, Vec::len) + new.map_or(0, Vec::len);
    if total == 0 || total > cfg.limits.multiaccount_import_max {
        return Err(ApiError::new(
            LOGIN_BAD,
            format!("between 1 and {} accounts per request", cfg.limits.multiaccount_import_max),
        ));
    }
    // UNCONFIRMED: with both shapes present we import both (AccountList first).
    let mut fail = Vec::new();
    for item in new.into_iter().flatten() {
        let Some(io) = item.as_object() else {
            fail.push(json!(""));
            continue;
        };
        let id = io.get("UserID").and_then(Value::as_str).unwrap_or("");
        let tags = match import_profile(io, cfg) {
            Ok(t) if valid_user_id(id) => t,
            _ => {
                fail.push(json!(id));
                continue;
            }
        };
        match ensure_account(st, cfg, id) {
            Ok(account) => {
                for (tag, v) in tags {
                    account.profile.insert(tag.to_owned(), json!(v));
                }
            }
            Err(_) => fail.push(json!(id)),
        }
    }
    for item in old.into_iter().flatten() {
        let id = item.as_str().unwrap_or("");
        if !valid_user_id(id) || ensure_account(st, cfg, id).is_err() {
            fail.push(json!(id));
        }
    }
    Ok(json!({ "FailAccounts": fail }))
}

/// `account_check`: a missing account is a successful item with `NotImported`.
pub(super) fn account_check(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, LOGIN_BAD)?;
    let items = req_array(o, "CheckItem", LOGIN_BAD)?;
    if items.is_empty() || items.len() > cfg.limits.account_check_max {
        return Err(ApiError::new(
            LOGIN_BAD,
            format!("CheckItem must hold 1 to {} items", cfg.limits.account_check_max),
        ));
    }
    let result: Vec<Value> = items
        .iter()
        .map(|item| match item.get("UserID").and_then(Value::as_str) {
            Some(id) => json!({
                "UserID": id, "ResultCode": 0, "ResultInfo": "",
                "AccountStatus": if account_exists(st, cfg, id) { "Imported" } else { "NotImported" },
            }),
            None => {
                json!({"UserID": "", "ResultCode": LOGIN_BAD, "ResultInfo": "UserID is required", "AccountStatus": ""})
            }
        })
        .collect();
    Ok(json!({ "ResultItem": result }))
}

/// How a profile tag's value is typed (reference §4.3).
enum TagKind {
    Str,
    Enum(&'static [&'static str]),
    Uint,
    Custom,
}

fn tag_kind(tag: &str) -> Option<TagKind> {
    Some(match tag {
        "Tag_Profile_IM_Nick" | "Tag_Profile_IM_Location" | "Tag_Profile_IM_SelfSignature" | "Tag_Profile_IM_Image" => {
            TagKind::Str
        }
        "Tag_Profile_IM_Gender" => TagKind::Enum(&["Gender_Type_Unknown", "Gender_Type_Female", "Gender_Type_Male"]),
        "Tag_Profile_IM_AllowType" => {
            TagKind::Enum(&["AllowType_Type_NeedConfirm", "AllowType_Type_AllowAny", "AllowType_Type_DenyAny"])
        }
        "Tag_Profile_IM_AdminForbidType" => TagKind::Enum(&["AdminForbid_Type_None", "AdminForbid_Type_SendOut"]),
        "Tag_Profile_IM_BirthDay"
        | "Tag_Profile_IM_Language"
        | "Tag_Profile_IM_MsgSettings"
        | "Tag_Profile_IM_Level"
        | "Tag_Profile_IM_Role" => TagKind::Uint,
        _ => {
            let name = tag.strip_prefix("Tag_Profile_Custom_")?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            TagKind::Custom
        }
    })
}

/// `portrait_set`: all items are validated before any is applied.
pub(super) fn portrait_set(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, 40001)?;
    let from = req_str(o, "From_Account", 40001)?;
    let items = req_array(o, "ProfileItem", 40001)?;
    if items.is_empty() {
        return Err(ApiError::new(40001, "ProfileItem must not be empty"));
    }
    if !account_exists(st, cfg, from) {
        return Err(ApiError::new(40003, format!("account {from} does not exist")));
    }
    let max = cfg.limits.profile_value_max_bytes;
    let mut changes = Vec::new();
    for item in items {
        let tag = item.get("Tag").and_then(Value::as_str).ok_or_else(|| ApiError::new(40001, "Tag is required"))?;
        let value = item.get("Value").ok_or_else(|| ApiError::new(40001, format!("{tag}: Value is required")))?;
        let kind = tag_kind(tag).ok_or_else(|| ApiError::new(40009, format!("tag {tag} does not exist")))?;
        let ok = match (&kind, value) {
            (TagKind::Str | TagKind::Custom, Value::String(s)) => {
                if s.len() > max {
                    return Err(ApiError::new(40601, format!("{tag} is longer than {max} bytes")));
                }
                true
            }
            (TagKind::Enum(allowed), Value::String(s)) => allowed.contains(&s.as_str()),
            (TagKind::Uint | TagKind::Custom, v) => v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
            _ => false,
        };
        if !ok {
            return Err(ApiError::new(40001, format!("{tag} has a value of the wrong type or range")));
        }
        changes.push((tag.to_owned(), value.clone()));
    }
    // Admins are implicit accounts; setting their profile creates their record.
    let account = st.accounts.entry(from.to_owned()).or_default();
    for (tag, v) in &changes {
        account.profile.insert(tag.clone(), v.clone());
    }
    let items: Vec<Value> = changes.iter().map(|(t, v)| json!({"Tag": t, "Value": v})).collect();
    // UNCONFIRMED payload (not in the reference): only sent when explicitly enabled.
    out.push(Pending::new(
        "Profile.CallbackPortraitSet",
        ctx,
        json!({"Operator_Account": ctx.operator, "From_Account": from, "ProfileItem": items}),
    ));
    Ok(json!({}))
}

/// `portrait_get`: a non-imported ID fails only its own item (40003, listed in `Fail_Account`); never-set tags
/// are omitted (both UNCONFIRMED).
pub(super) fn portrait_get(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, 40001)?;
    let to = match o.get("To_Account") {
        None => return Err(ApiError::new(40002, "To_Account is required")),
        Some(_) => req_array(o, "To_Account", 40001)?,
    };
    if to.is_empty() || to.len() > cfg.limits.portrait_get_max {
        return Err(ApiError::new(40001, format!("To_Account must hold 1 to {} users", cfg.limits.portrait_get_max)));
    }
    let tags = req_array(o, "TagList", 40001)?;
    let mut tag_names = Vec::new();
    for t in tags {
        let t = t.as_str().ok_or_else(|| ApiError::new(40001, "TagList must hold strings"))?;
        if tag_kind(t).is_none() {
            return Err(ApiError::new(40009, format!("tag {t} does not exist")));
        }
        tag_names.push(t);
    }
    let mut items = Vec::new();
    let mut fail = Vec::new();
    for id in to {
        let id = id.as_str().ok_or_else(|| ApiError::new(40001, "To_Account must hold strings"))?;
        if !account_exists(st, cfg, id) {
            fail.push(json!(id));
            items.push(json!({"To_Account": id, "ResultCode": 40003, "ResultInfo": "account does not exist"}));
            continue;
        }
        let profile = st.accounts.get(id).map(|a| &a.profile);
        let values: Vec<Value> = tag_names
            .iter()
            .filter_map(|t| profile.and_then(|p| p.get(*t)).map(|v| json!({"Tag": t, "Value": v})))
            .collect();
        items.push(json!({"To_Account": id, "ProfileItem": values, "ResultCode": 0, "ResultInfo": ""}));
    }
    let mut resp = json!({ "UserProfileItem": items });
    if !fail.is_empty() {
        resp["Fail_Account"] = json!(fail);
    }
    Ok(resp)
}

/// `AddSource_Type_` followed by 1..=8 ASCII letters.
fn valid_add_source(s: &str) -> bool {
    s.strip_prefix("AddSource_Type_")
        .is_some_and(|k| !k.is_empty() && k.len() <= 8 && k.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// One `AddFriendItem` validated into a friend entry, or its per-item error.
fn parse_friend(item: &Value, now: u64) -> Result<Friend, (String, i64, String)> {
    let to = item.get("To_Account").and_then(Value::as_str).unwrap_or("").to_owned();
    let fail = |code: i64, info: &str| Err((to.clone(), code, info.to_owned()));
    let Some(o) = item.as_object() else { return fail(30001, "item must be an object") };
    let add_source = o.get("AddSource").and_then(Value::as_str).unwrap_or("");
    if !valid_add_source(add_source) {
        return fail(30001, "AddSource must be AddSource_Type_ followed by up to 8 letters");
    }
    let opt = |k: &str| -> Result<Option<String>, ()> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(()),
        }
    };
    let (Ok(remark), Ok(wording)) = (opt("Remark"), opt("AddWording")) else {
        return fail(30001, "Remark and AddWording must be strings");
    };
    if remark.as_ref().is_some_and(|r| r.len() > 96) {
        return fail(30001, "Remark is longer than 96 bytes");
    }
    if wording.as_ref().is_some_and(|w| w.len() > 256) {
        return fail(30001, "AddWording is longer than 256 bytes");
    }
    let mut groups = Vec::new();
    if let Some(g) = o.get("GroupName") {
        let Some(list) = g.as_array() else { return fail(30001, "GroupName must be an array") };
        if list.len() > 32 {
            return fail(30001, "at most 32 friend lists");
        }
        for name in list {
            match name.as_str() {
                Some(n) if !n.is_empty() && n.len() <= 30 => groups.push(n.to_owned()),
                _ => return fail(30001, "friend list names must be 1 to 30 bytes"),
            }
        }
    }
    let time = |k: &str| o.get(k).map(|v| v.as_u64().ok_or(())).transpose();
    let (Ok(add_time), Ok(remark_time)) = (time("AddTime"), time("RemarkTime")) else {
        return fail(30001, "AddTime and RemarkTime must be unsigned integers");
    };
    let mut custom = Vec::new();
    if let Some(c) = o.get("CustomItem") {
        let Some(list) = c.as_array() else { return fail(30001, "CustomItem must be an array") };
        for ci in list {
            let tag = ci.get("Tag").and_then(Value::as_str).unwrap_or("");
            // Custom friend fields are strings only (integers are not supported, reference §11.3).
            match (tag.strip_prefix("Tag_SNS_Custom_"), ci.get("Value")) {
                (Some(k), Some(Value::String(v))) if !k.is_empty() && v.len() <= 500 => {
                    custom.push((tag.to_owned(), json!(v)));
                }
                _ => return fail(30001, "CustomItem needs Tag_SNS_Custom_<key> and a string Value"),
            }
        }
    }
    Ok(Friend {
        to,
        add_source: add_source.to_owned(),
        remark,
        remark_time,
        groups,
        add_wording: wording,
        add_time: add_time.unwrap_or(now),
        custom,
    })
}

/// `friend_import`: one-way; re-importing an existing friend updates it and succeeds (UNCONFIRMED: makes replay
/// idempotent).
pub(super) fn friend_import(st: &mut State, cfg: &EmulatorConfig, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, 30001)?;
    let from = req_str(o, "From_Account", 30001)?.to_owned();
    let items = req_array(o, "AddFriendItem", 30001)?;
    if items.is_empty() || items.len() > cfg.limits.friend_import_max {
        return Err(ApiError::new(
            30001,
            format!("AddFriendItem must hold 1 to {} items", cfg.limits.friend_import_max),
        ));
    }
    if !account_exists(st, cfg, &from) {
        return Err(ApiError::new(30003, format!("account {from} does not exist")));
    }
    let mut results = Vec::new();
    let mut fail = Vec::new();
    let mut parsed = Vec::new();
    for item in items {
        let r = parse_friend(item, ctx.now_secs()).and_then(|f| {
            if f.to == from {
                Err((f.to, 30001, "cannot add oneself as a friend".into()))
            } else if !account_exists(st, cfg, &f.to) {
                Err((f.to, 30003, "To_Account does not exist".into()))
            } else {
                Ok(f)
            }
        });
        parsed.push(r);
    }
    let account = st.accounts.entry(from).or_default();
    let mut standard_changed = false;
    let mut custom_changed = false;
    for r in parsed {
        match r {
            Ok(f) => {
                let to = f.to.clone();
                if let Some(existing) = account.friends.iter_mut().find(|e| e.to == f.to) {
                    custom_changed |= !f.custom.is_empty();
                    *existing = f;
                    standard_changed = true;
                } else if account.friends.len() >= cfg.limits.friends_per_user_max {
                    fail.push(json!(to));
                    results.push(json!({"To_Account": to, "ResultCode": 30010,
                        "ResultInfo": "Err_SNS_FriendImport_My_Friend_Num_Exceed_Threshold"}));
                    continue;
                } else {
                    custom_changed |= !f.custom.is_empty();
                    account.friends.push(f);
                    standard_changed = true;
                }
                results.push(json!({"To_Account": to, "ResultCode": 0, "ResultInfo": ""}));
            }
            Err((to, code, info)) => {
                fail.push(json!(to));
                results.push(json!({"To_Account": to, "ResultCode": code, "ResultInfo": info}));
            }
        }
    }
    if standard_changed {
        account.standard_sequence += 1;
    }
    if custom_changed {
        account.custom_sequence += 1;
    }
    Ok(json!({ "ResultItem": results, "Fail_Account": fail }))
}

/// `friend_get`: pages of `limits.friend_get_page_size` in insertion order (page size and order UNCONFIRMED).
pub(super) fn friend_get(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, 30001)?;
    let from = req_str(o, "From_Account", 30001)?;
    let start = usize::try_from(req_u64(o, "StartIndex", 30001)?).unwrap_or(usize::MAX);
    let std_seq = opt_u64(o, "StandardSequence", 30001)?;
    let custom_seq = opt_u64(o, "CustomSequence", 30001)?;
    if !account_exists(st, cfg, from) {
        return Err(ApiError::new(30003, format!("account {from} does not exist")));
    }
    let empty = Account::default();
    let account = st.accounts.get(from).unwrap_or(&empty);
    // The sequences are cache validators: an unchanged one means "you already have these fields".
    let send_std = std_seq != Some(account.standard_sequence) || account.standard_sequence == 0;
    let send_custom = custom_seq != Some(account.custom_sequence) || account.custom_sequence == 0;
    let page = cfg.limits.friend_get_page_size;
    let total = account.friends.len();
    let items: Vec<Value> = account
        .friends
        .iter()
        .skip(start)
        .take(page)
        .map(|f| {
            let mut values = Vec::new();
            if send_std {
                values.push(json!({"Tag": "Tag_SNS_IM_AddSource", "Value": f.add_source}));
                if let Some(r) = &f.remark {
                    values.push(json!({"Tag": "Tag_SNS_IM_Remark", "Value": r}));
                }
                if !f.groups.is_empty() {
                    values.push(json!({"Tag": "Tag_SNS_IM_Group", "Value": f.groups}));
                }
                if let Some(w) = &f.add_wording {
                    values.push(json!({"Tag": "Tag_SNS_IM_AddWording", "Value": w}));
                }
                values.push(json!({"Tag": "Tag_SNS_IM_AddTime", "Value": f.add_time}));
            }
            if send_custom {
                for (t, v) in &f.custom {
                    values.push(json!({"Tag": t, "Value": v}));
                }
            }
            json!({"To_Account": f.to, "ValueItem": values})
        })
        .collect();
    let next = start.saturating_add(page);
    let complete = next >= total;
    Ok(json!({
        "UserDataItem": items,
        "StandardSequence": account.standard_sequence,
        "CustomSequence": account.custom_sequence,
        "FriendNum": total,
        "CompleteFlag": u8::from(complete),
        "NextStartIndex": if complete { 0 } else { next },
    }))
}
