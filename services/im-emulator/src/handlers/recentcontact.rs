//! A user's conversation list (`recentcontact/get_list`, reference §11.14a).
//!
//! Built from the state on every call: the user's 1:1 conversations with a message visible to them, and the
//! groups they are a member of, each with the Unix-second time of its latest message, newest first (then by
//! peer / group id, so pages are stable). The emulator has no pinned conversations: `TopFlag` is always 0 and
//! the pinned cursor is echoed. Empty group conversations are listed only with `AssistFlags` bit 1.
//!
//! Paging (UNCONFIRMED beyond "send back the cursor you got"): pages of [`PAGE`] items; `StartIndex` is the
//! position in the sorted list and `TimeStamp` the `MsgTime` of the page's last item.
//!
//! Error codes are UNCONFIRMED (the page lists none): 50002 for a bad request, 50001 for an unknown account.

use serde_json::{Value, json};

use super::{Ctx, account_exists, expired};
use crate::api::ApiError;
use crate::config::EmulatorConfig;
use crate::fields::{object, req_str, req_u64};
use crate::state::State;

/// Conversations per page.
pub(crate) const PAGE: usize = 100;
const BAD_REQUEST: i64 = 50002;
const UNKNOWN_ACCOUNT: i64 = 50001;
/// `AssistFlags` bit 1: list conversations without messages too.
const ASSIST_EMPTY: u64 = 2;

pub(super) fn get_list(st: &State, cfg: &EmulatorConfig, ctx: &Ctx, body: &Value) -> Result<Value, ApiError> {
    let o = object(body, BAD_REQUEST)?;
    let user = req_str(o, "From_Account", BAD_REQUEST)?;
    // Every field is required by the documentation; a missing one is refused rather than defaulted.
    let _time_stamp = req_u64(o, "TimeStamp", BAD_REQUEST)?;
    let start = req_u64(o, "StartIndex", BAD_REQUEST)?;
    let top_time_stamp = req_u64(o, "TopTimeStamp", BAD_REQUEST)?;
    let top_start = req_u64(o, "TopStartIndex", BAD_REQUEST)?;
    let flags = req_u64(o, "AssistFlags", BAD_REQUEST)?;
    if !account_exists(st, cfg, user) {
        return Err(ApiError::new(UNKNOWN_ACCOUNT, format!("From_Account {user} does not exist")));
    }
    let now = ctx.now_secs();
    // (MsgTime, Type, id)
    let mut items: Vec<(u64, u32, String)> = Vec::new();
    for conv in st.conversations.values() {
        let latest = conv
            .msgs
            .iter()
            .filter(|m| m.from == user || m.to == user)
            .filter(|m| !(m.hidden_from_sender && m.from == user))
            .filter(|m| !expired(cfg, m.time, now))
            .map(|m| (m.time, if m.from == user { &m.to } else { &m.from }))
            .max_by_key(|(t, _)| *t);
        if let Some((time, peer)) = latest {
            items.push((time, 1, peer.clone()));
        }
    }
    for g in st.groups.values().filter(|g| g.members.contains_key(user)) {
        let latest = g.msgs.iter().filter(|m| !m.system && !expired(cfg, m.time, now)).map(|m| m.time).max();
        match latest {
            Some(t) => items.push((t, 2, g.id.clone())),
            None if flags & ASSIST_EMPTY != 0 => items.push((0, 2, g.id.clone())),
            None => {}
        }
    }
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (a.1, &a.2).cmp(&(b.1, &b.2))));
    let from = usize::try_from(start).unwrap_or(usize::MAX).min(items.len());
    let page = &items[from..(from + PAGE).min(items.len())];
    let next = from + page.len();
    let list: Vec<Value> = page
        .iter()
        .map(|(time, kind, id)| match kind {
            1 => json!({"Type": 1, "To_Account": id, "MsgTime": time, "TopFlag": 0}),
            _ => json!({"Type": 2, "GroupId": id, "MsgTime": time, "TopFlag": 0}),
        })
        .collect();
    Ok(json!({
        "SessionItem": list,
        "CompleteFlag": u8::from(next >= items.len()),
        "TimeStamp": page.last().map_or(0, |p| p.0),
        "StartIndex": next,
        "TopTimeStamp": top_time_stamp,
        "TopStartIndex": top_start,
    }))
}
