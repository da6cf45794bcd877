//! Filling a group's seq gap from IM: the messages IM holds for the missing seqs, read with
//! `group_msg_get_simple`, become the same events their lost callbacks would have become (same event id
//! `im:gmsg:<group>:<seq>`, same payload), so legacy cannot tell a filled message from a delivered one and a late
//! callback for it is a harmless duplicate.
//!
//! The same reader answers the one other question callbacks cannot: how the group is now
//! ([`GapFiller::now`]), when two of its changes carry the same millisecond.
//!
//! A seq IM's history does not return, or returns as a system notice, a hole (expired, deleted) or a recalled
//! message, is skipped, never waited for: whether group tips consume seqs visible to REST history is not
//! documented, and either way such a seq carries nothing to sync. Messages sent by imbridge's admin identity or
//! carrying the origin marker are imbridge's own echoes and are skipped as ingest would have dropped them.

use imbridge_core::event::GroupMessage;
use imbridge_core::{Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_im::origin::has_origin_marker;
use imbridge_im::types::group::{GroupMsg, GroupMsgGetSimpleReq};
use imbridge_im::{ImClient, ImError, from_im_body};

use super::ties::ImNow;

/// The most seqs one `group_msg_get_simple` call returns (documented).
const PAGE: u64 = 20;

/// What a fill found for one gap.
#[derive(Debug, Default)]
pub struct Filled {
    /// Events for the missing seqs IM still holds, in seq order.
    pub events: Vec<Envelope>,
    /// Seqs with nothing to sync: not returned, notices, holes, recalled, echoes, unreadable.
    pub skipped: Vec<u64>,
}

/// Reads missing group messages from IM.
#[derive(Debug, Clone)]
pub struct GapFiller {
    client: ImClient,
    admin: String,
}

impl GapFiller {
    pub fn new(client: ImClient, admin_identifier: impl Into<String>) -> Self {
        Self { client, admin: admin_identifier.into() }
    }

    /// The events for seqs `from..=to` of `group`, from IM's history.
    pub async fn fill(&self, group: &GroupId, from: u64, to: u64) -> Result<Filled, ImError> {
        let mut found: Vec<GroupMsg> = Vec::new();
        let mut top = to;
        // Pages walk down from `to` (the API answers "seq ≤ ReqMsgSeq, newest first").
        while top >= from {
            let n = (top - from + 1).min(PAGE);
            let page = self
                .client
                .group_msg_get_simple(&GroupMsgGetSimpleReq {
                    group_id: group.as_str().to_owned(),
                    req_msg_number: n as u32,
                    req_msg_seq: Some(top),
                    with_recalled_msg: None,
                    topic_id: None,
                })
                .await?;
            found.extend(page.rsp_msg_list.into_iter().filter(|m| (from..=top).contains(&m.msg_seq)));
            if top < from + n {
                break;
            }
            top -= n;
        }
        found.sort_by_key(|m| m.msg_seq);
        found.dedup_by_key(|m| m.msg_seq);
        let mut out = Filled::default();
        let mut next = from;
        for m in found {
            out.skipped.extend(next..m.msg_seq);
            next = m.msg_seq + 1;
            match self.event_of(group, &m) {
                Some(env) => out.events.push(env),
                None => out.skipped.push(m.msg_seq),
            }
        }
        out.skipped.extend(next..=to);
        Ok(out)
    }

    /// The group as IM shows it now (members, profile fields): what decides changes IM stamped with the same
    /// millisecond ([`super::ties`]).
    pub async fn now(&self, group: &GroupId) -> Result<ImNow, ImError> {
        let list = self.client.all_group_members(group.as_str(), Some(vec!["Member_Account".to_owned()])).await?;
        let info = self.client.group_infos(&[group.as_str().to_owned()], None).await?;
        let mut now = ImNow { members: list.into_iter().map(|m| m.member_account).collect(), ..Default::default() };
        if let Some(i) = info.into_iter().next() {
            for (name, value) in [
                ("name", i.name),
                ("introduction", i.introduction),
                ("notification", i.notification),
                ("face_url", i.face_url),
            ] {
                now.fields.insert(name, value.unwrap_or_default());
            }
        }
        Ok(now)
    }

    /// The event a callback for `m` would have become; `None` for what has nothing to sync.
    fn event_of(&self, group: &GroupId, m: &GroupMsg) -> Option<Envelope> {
        if m.is_place_msg != 0 || m.is_system_msg.unwrap_or(0) != 0 || m.from_account.is_empty() {
            return None;
        }
        if m.from_account == self.admin || has_origin_marker(m.cloud_custom_data.as_deref()) {
            return None;
        }
        let from = UserId::parse(&m.from_account).ok()?;
        let body = from_im_body(&m.msg_body).ok()?;
        if body.is_empty() {
            return None;
        }
        let event = Event::GroupMessage(GroupMessage {
            group_id: group.clone(),
            from,
            body,
            custom_data: m.cloud_custom_data.clone().filter(|s| !s.is_empty()),
        });
        let (id, time) = (EventId::im_group_message(group, m.msg_seq), TimestampMs::from_secs(m.msg_time_stamp));
        Some(Envelope::recorded_now(id, Source::Im, event.conversation(), time, event))
    }
}
