//! One-to-one messages (`openim`): import, live send, read reports, history and unread counts.
//!
//! Dedup rules, as documented:
//! - `importmsg`: permanent, per conversation (either direction) on (MsgSeq, MsgRandom, MsgTimeStamp); the first
//!   write wins and a duplicate answers OK without changing anything;
//! - `sendmsg`: 120 s window on (From_Account, MsgSeq, MsgRandom, CRC32 of the body); a duplicate answers OK
//!   with the first send's `MsgTime`/`MsgKey`, stores nothing and fires no callback (UNCONFIRMED which answer IM
//!   gives; idempotent success is the behaviour its SDKs rely on when they "drop" duplicates).

use serde_json::{Value, json};

use super::{Ctx, Pending, Prepared, account_exists, expired, forbid_flags};
use crate::api::ApiError;
use crate::config::EmulatorConfig;
use crate::fields::{
    BodyError, check_msg_body, message_size, object, opt_array, opt_i64, opt_str, opt_str_list, opt_u32, req_str,
    req_u32, req_u64,
};
use crate::state::{C2cMsg, C2cUnread, SentC2c, State, msg_key, pair_key, sendmsg_dedup_key};

/// sendmsg's dedup window.
const SENDMSG_DEDUP_MS: u64 = 120_000;
/// `MsgLifeTime` cap: 7 days.
const MAX_LIFETIME_SECS: i64 = 604_800;

/// `MsgBody` with openim's codes: 90007 not an array, 90002 invalid content.
fn openim_body(o: &serde_json::Map<String, Value>) -> Result<&Vec<Value>, ApiError> {
    check_msg_body(o.get("MsgBody")).map_err(|e| match e {
        BodyError::NotArray => ApiError::new(90007, "MsgBody must be an array"),
        BodyError::Invalid(why) => ApiError::new(90002, why),
    })
}

fn check_size(cfg: &EmulatorConfig, body: &[Value], ccd: Option<&str>) -> Result<(), ApiError> {
    if message_size(body, ccd) > cfg.limits.msg_body_max_bytes {
        return Err(ApiError::new(93000, "JSON packet too long, keep the message body under 8 KB"));
    }
    Ok(())
}

/// Counts one more unread message from `peer` for `user`, unless it is older than what `user` already read.
fn bump_unread(st: &mut State, user: &str, peer: &str, time: u64) {
    let u = st.unread.entry(user.to_owned()).or_default().entry(peer.to_owned()).or_default();
    if time > u.read_time {
        u.count += 1;
    }
}

/// A user's total C2C unread over all conversations.
pub(super) fn total_unread(st: &State, user: &str) -> u64 {
    st.unread.get(user).map_or(0, |m| m.values().map(|u| u.count).sum())
}

/// `importmsg`: never calls back. `SyncFromOldSystem` 2 = history (no unread), 5 = live (unread counted).
pub(super) fn importmsg(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, 90001)?;
    let sync = match o.get("SyncFromOldSystem") {
        Some(v) => v.as_u64().ok_or_else(|| ApiError::new(90030, "SyncFromOldSystem must be an integer"))?,
        None => return Err(ApiError::new(90030, "SyncFromOldSystem is required")),
    };
    // Any other value is illegal [doc]; the legacy 1 (= live) is accepted only when configured (UNCONFIRMED
    // whether IM still takes it). The out-of-range code is UNCONFIRMED; 90030 names the field.
    let live = match sync {
        2 => false,
        5 => true,
        1 if cfg.accept_legacy_sync_from_old_system => true,
        other => return Err(ApiError::new(90030, format!("SyncFromOldSystem {other} is illegal: use 2 or 5"))),
    };
    let from = req_str(o, "From_Account", 90008)?;
    let to = req_str(o, "To_Account", 90003)?;
    let random = req_u32(o, "MsgRandom", 90005)?;
    let time = req_u64(o, "MsgTimeStamp", 90006)?;
    // SDKs fill a random MsgSeq when omitted; without it dedup cannot be stable, as the docs warn.
    let seq = opt_u32(o, "MsgSeq", 90001)?.unwrap_or_else(rand::random);
    let msg_body = openim_body(o)?;
    let ccd = opt_str(o, "CloudCustomData", 90001)?;
    check_size(cfg, msg_body, ccd)?;
    if !account_exists(st, cfg, from) {
        return Err(ApiError::new(90008, format!("From_Account {from} does not exist")));
    }
    if !account_exists(st, cfg, to) {
        return Err(ApiError::new(90012, format!("To_Account {to} is not imported")));
    }
    let key = pair_key(from, to);
    if st.conversations.get(&key).is_some_and(|c| c.dedup.contains(&(seq, random, time))) {
        st.count_duplicate("openim/importmsg");
        return Ok(json!({}));
    }
    let serial = st.next_serial();
    let counts_unread = live && from != to;
    st.conversations.entry(key).or_default().insert(C2cMsg {
        from: from.to_owned(),
        to: to.to_owned(),
        seq,
        random,
        time,
        body: Value::Array(msg_body.clone()),
        cloud_custom_data: ccd.map(str::to_owned),
        serial,
        counts_unread,
        hidden_from_sender: false,
    });
    if counts_unread {
        bump_unread(st, to, from, time);
    }
    Ok(json!({}))
}

/// A validated sendmsg.
struct SendMsg<'a> {
    from: String,
    to: &'a str,
    seq: u32,
    random: u32,
    body: &'a Vec<Value>,
    ccd: Option<&'a str>,
    /// 0 = online only (not stored).
    lifetime_secs: i64,
    hide_from_sender: bool,
    no_unread: bool,
    forbid_before: bool,
    forbid_after: bool,
    dedup_key: String,
}

fn parse_sendmsg<'a>(st: &State, cfg: &EmulatorConfig, ctx: &Ctx, body: &'a Value) -> Result<SendMsg<'a>, ApiError> {
    let o = object(body, 90001)?;
    // A simulated client always sends as itself; the REST API defaults to the admin.
    let from = if ctx.client {
        ctx.operator.clone()
    } else {
        opt_str(o, "From_Account", 90008)?.unwrap_or(&ctx.operator).to_owned()
    };
    let to = req_str(o, "To_Account", 90003)?;
    let random = req_u32(o, "MsgRandom", 90005)?;
    let seq = opt_u32(o, "MsgSeq", 90001)?;
    let msg_body = openim_body(o)?;
    let ccd = opt_str(o, "CloudCustomData", 90001)?;
    let sync_other = opt_i64(o, "SyncOtherMachine", 90031)?;
    // UNCONFIRMED: the docs say both "capped at 7 days" and "90026 invalid"; we cap, and reject negatives.
    let lifetime_secs = match opt_i64(o, "MsgLifeTime", 90044)? {
        None => MAX_LIFETIME_SECS,
        Some(l) if l < 0 => return Err(ApiError::new(90026, "MsgLifeTime must not be negative")),
        Some(l) => l.min(MAX_LIFETIME_SECS),
    };
    let forbid = opt_str_list(o, "ForbidCallbackControl", 90001)?;
    let control = opt_str_list(o, "SendMsgControl", 90001)?;
    check_size(cfg, msg_body, ccd)?;
    // UNCONFIRMED which of 20003/90048 IM answers; 20003 is "sender or recipient invalid or not imported".
    if !account_exists(st, cfg, &from) {
        return Err(ApiError::new(20003, format!("From_Account {from} is not imported")));
    }
    if !account_exists(st, cfg, to) {
        return Err(ApiError::new(20003, format!("To_Account {to} is not imported")));
    }
    let seq = seq.ok_or_else(|| ApiError::new(90001, "MsgSeq missing after prepare"))?;
    let (forbid_before, forbid_after) = forbid_flags(&forbid, ctx);
    let crc = crc32fast::hash(&serde_json::to_vec(msg_body).unwrap_or_default());
    Ok(SendMsg {
        dedup_key: sendmsg_dedup_key(&from, seq, random, crc),
        from,
        to,
        seq,
        random,
        body: msg_body,
        ccd,
        lifetime_secs,
        hide_from_sender: sync_other == Some(2),
        no_unread: control.iter().any(|c| c == "NoUnread"),
        forbid_before,
        forbid_after,
    })
}

fn is_duplicate(st: &State, ctx: &Ctx, key: &str) -> Option<SentC2c> {
    st.sendmsg_dedup.get(key).filter(|s| s.expires_ms > ctx.now_ms).cloned()
}

pub(super) fn prepare_sendmsg(
    st: &State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    mut body: Value,
) -> Result<Prepared, ApiError> {
    // The server picks a random MsgSeq when none is given; fix it now so the before-callback, the dedup key and
    // the result all see the same one.
    if let Some(o) = body.as_object_mut() {
        if o.get("MsgSeq").is_none_or(Value::is_null) {
            o.insert("MsgSeq".into(), json!(rand::random::<u32>()));
        }
    }
    let m = parse_sendmsg(st, cfg, ctx, &body)?;
    let before = if m.forbid_before || is_duplicate(st, ctx, &m.dedup_key).is_some() {
        None
    } else {
        let mut payload = json!({
            "From_Account": m.from, "To_Account": m.to, "MsgSeq": m.seq, "MsgRandom": m.random,
            "MsgTime": ctx.now_secs(), "MsgKey": msg_key(m.seq, m.random, ctx.now_secs()),
            "OnlineOnlyFlag": u8::from(m.lifetime_secs == 0), "MsgBody": m.body,
        });
        if let Some(c) = m.ccd {
            payload["CloudCustomData"] = json!(c);
        }
        Some(Pending::new("C2C.CallbackBeforeSendMsg", ctx, payload))
    };
    Ok(Prepared { body, before })
}

/// `sendmsg`: stores the message (unless `MsgLifeTime` 0), counts it unread (unless `NoUnread`), and fires
/// `C2C.CallbackAfterSendMsg` (unless forbidden).
pub(super) fn sendmsg(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let m = parse_sendmsg(st, cfg, ctx, body)?;
    if let Some(first) = is_duplicate(st, ctx, &m.dedup_key) {
        st.count_duplicate("openim/sendmsg");
        return Ok(json!({"MsgTime": first.msg_time, "MsgKey": first.msg_key}));
    }
    let now = ctx.now_secs();
    let key = msg_key(m.seq, m.random, now);
    let serial = st.next_serial();
    // Expired windows are dropped now and then rather than on every call.
    if serial % 4096 == 0 {
        st.sendmsg_dedup.retain(|_, s| s.expires_ms > ctx.now_ms);
    }
    st.sendmsg_dedup.insert(
        m.dedup_key.clone(),
        SentC2c { expires_ms: ctx.now_ms + SENDMSG_DEDUP_MS, msg_time: now, msg_key: key.clone() },
    );
    let stored = m.lifetime_secs != 0;
    let counts_unread = stored && !m.no_unread && m.from != m.to;
    if stored {
        st.conversations.entry(pair_key(&m.from, m.to)).or_default().insert(C2cMsg {
            from: m.from.clone(),
            to: m.to.to_owned(),
            seq: m.seq,
            random: m.random,
            time: now,
            body: Value::Array(m.body.clone()),
            cloud_custom_data: m.ccd.map(str::to_owned),
            serial,
            counts_unread,
            hidden_from_sender: m.hide_from_sender,
        });
    }
    if counts_unread {
        bump_unread(st, m.to, &m.from, now);
    }
    if !m.forbid_after {
        let mut payload = json!({
            "From_Account": m.from, "To_Account": m.to, "MsgSeq": m.seq, "MsgRandom": m.random,
            "MsgTime": now, "MsgKey": key, "OnlineOnlyFlag": u8::from(!stored),
            "SendMsgResult": 0, "ErrorInfo": "send msg succeed", "UnreadMsgNum": total_unread(st, m.to),
            "MsgBody": m.body,
        });
        if let Some(c) = m.ccd {
            payload["CloudCustomData"] = json!(c);
        }
        out.push(Pending::new("C2C.CallbackAfterSendMsg", ctx, payload));
    }
    Ok(json!({"MsgTime": now, "MsgKey": key}))
}

/// `admin_set_msg_read`: everything from the peer at or before `MsgReadTime` (default now) becomes read; fires
/// `C2C.CallbackAfterMsgReport` with the reporter's total unread.
pub(super) fn admin_set_msg_read(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
    out: &mut Vec<Pending>,
) -> Result<Value, ApiError> {
    let o = object(body, 90001)?;
    let report = if ctx.client { ctx.operator.clone() } else { req_str(o, "Report_Account", 90008)?.to_owned() };
    let peer = req_str(o, "Peer_Account", 90003)?;
    // Documented as a String on one page and an Integer on another: accept both.
    let read_time = match o.get("MsgReadTime") {
        None | Some(Value::Null) => ctx.now_secs(),
        Some(Value::String(s)) => {
            s.parse::<u64>().map_err(|_| ApiError::new(90001, "MsgReadTime must be Unix seconds"))?
        }
        Some(v) => v.as_u64().ok_or_else(|| ApiError::new(90001, "MsgReadTime must be Unix seconds"))?,
    };
    if !account_exists(st, cfg, &report) {
        return Err(ApiError::new(90008, format!("Report_Account {report} does not exist")));
    }
    if !account_exists(st, cfg, peer) {
        return Err(ApiError::new(90003, format!("Peer_Account {peer} does not exist")));
    }
    let prev = st.unread.get(&report).and_then(|m| m.get(peer)).map_or(0, |u| u.read_time);
    // A read position never moves backwards.
    let new_read = prev.max(read_time);
    let count = st
        .conversations
        .get(&pair_key(&report, peer))
        .map_or(0, |c| c.msgs.iter().filter(|m| m.counts_unread && m.to == report && m.time > new_read).count());
    st.unread
        .entry(report.clone())
        .or_default()
        .insert(peer.to_owned(), C2cUnread { count: count as u64, read_time: new_read });
    out.push(Pending::new(
        "C2C.CallbackAfterMsgReport",
        ctx,
        json!({"Report_Account": report, "Peer_Account": peer, "LastReadTime": read_time,
               "UnreadMsgNum": total_unread(st, &report)}),
    ));
    Ok(json!({}))
}

/// `admin_getroammsg`: one conversation from `Operator_Account`'s point of view, newest first across pages,
/// each page listed oldest to newest; `LastMsgTime`/`LastMsgKey` name the page's oldest message.
pub(super) fn admin_getroammsg(
    st: &mut State,
    cfg: &EmulatorConfig,
    ctx: &Ctx,
    body: &Value,
) -> Result<Value, ApiError> {
    let o = object(body, 90001)?;
    // The legacy names From_Account/To_Account are accepted too (reference §11.4).
    let operator = match o.get("Operator_Account") {
        Some(_) => req_str(o, "Operator_Account", 90008)?,
        None => req_str(o, "From_Account", 90008).map_err(|_| ApiError::new(90008, "Operator_Account is required"))?,
    };
    let peer = match o.get("Peer_Account") {
        Some(_) => req_str(o, "Peer_Account", 90003)?,
        None => req_str(o, "To_Account", 90003).map_err(|_| ApiError::new(90003, "Peer_Account is required"))?,
    };
    let max_cnt = req_u64(o, "MaxCnt", 90001)?;
    let min_time = req_u64(o, "MinTime", 90001)?;
    let max_time = req_u64(o, "MaxTime", 90001)?;
    let last_key = opt_str(o, "LastMsgKey", 90001)?.filter(|k| !k.is_empty());
    if max_cnt == 0 {
        return Err(ApiError::new(90001, "MaxCnt must be positive"));
    }
    if !account_exists(st, cfg, operator) {
        return Err(ApiError::new(90008, format!("Operator_Account {operator} does not exist")));
    }
    if !account_exists(st, cfg, peer) {
        return Err(ApiError::new(90003, format!("Peer_Account {peer} does not exist")));
    }
    let now = ctx.now_secs();
    let conv = st.conversations.get(&pair_key(operator, peer));
    // Newest first. Both bounds inclusive (UNCONFIRMED); messages hidden from the operator or past the roaming
    // window are invisible.
    let mut newest_first: Vec<&C2cMsg> = conv
        .map(|c| {
            c.msgs
                .iter()
                .rev()
                .filter(|m| m.time >= min_time && m.time <= max_time)
                .filter(|m| !(m.hidden_from_sender && m.from == operator))
                .filter(|m| !expired(cfg, m.time, now))
                .collect()
        })
        .unwrap_or_default();
    // Continuing: MaxTime is reused inclusively, so skip what was already returned from that same second.
    if let Some(k) = last_key {
        if let Some(pos) = newest_first.iter().position(|m| m.time == max_time && m.msg_key() == k) {
            newest_first.drain(..=pos);
        }
    }
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for m in &newest_first {
        if page.len() as u64 >= max_cnt {
            break;
        }
        let item = json!({
            "From_Account": m.from, "To_Account": m.to, "MsgSeq": m.seq, "MsgRandom": m.random,
            "MsgTimeStamp": m.time, "MsgFlagBits": 0, "IsPeerRead": 0, "MsgKey": m.msg_key(),
            "MsgBody": m.body, "CloudCustomData": m.cloud_custom_data.as_deref().unwrap_or(""),
        });
        let size = serde_json::to_vec(&item).map_or(0, |v| v.len());
        // Always at least one message per page, or a single large message could never be read.
        if !page.is_empty() && bytes + size > cfg.limits.roam_page_max_bytes {
            break;
        }
        bytes += size;
        page.push((m.time, m.msg_key(), item));
    }
    let complete = page.len() == newest_first.len();
    let (last_time, last_key) = page.last().map_or((0, String::new()), |(t, k, _)| (*t, k.clone()));
    let list: Vec<Value> = page.into_iter().rev().map(|(_, _, item)| item).collect();
    Ok(json!({
        "Complete": u8::from(complete),
        "MsgCnt": list.len(),
        "LastMsgTime": last_time,
        "LastMsgKey": last_key,
        "MsgList": list,
    }))
}

/// `get_c2c_unread_msg_num`: the total without `Peer_Account`, per-peer counts with it (unknown peers in
/// `ErrorList` with 70107).
pub(super) fn get_c2c_unread_msg_num(st: &mut State, cfg: &EmulatorConfig, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, 90001)?;
    let user = req_str(o, "To_Account", 90003)?;
    let peers = opt_array(o, "Peer_Account", 90001)?;
    if !account_exists(st, cfg, user) {
        return Err(ApiError::new(90003, format!("To_Account {user} does not exist")));
    }
    let Some(peers) = peers else {
        return Ok(json!({ "AllC2CUnreadMsgNum": total_unread(st, user) }));
    };
    if peers.len() > cfg.limits.c2c_unread_peers_max {
        return Err(ApiError::new(
            90001,
            format!("at most {} Peer_Account per request", cfg.limits.c2c_unread_peers_max),
        ));
    }
    let mut list = Vec::new();
    let mut errors = Vec::new();
    for p in peers {
        let p = p.as_str().ok_or_else(|| ApiError::new(90001, "Peer_Account must hold strings"))?;
        if account_exists(st, cfg, p) {
            let n = st.unread.get(user).and_then(|m| m.get(p)).map_or(0, |u| u.count);
            list.push(json!({"Peer_Account": p, "C2CUnreadMsgNum": n}));
        } else {
            errors.push(json!({"Peer_Account": p, "ErrorCode": 70107}));
        }
    }
    let mut resp = json!({ "C2CUnreadMsgNumList": list });
    if !errors.is_empty() {
        resp["ErrorList"] = json!(errors);
    }
    Ok(resp)
}
