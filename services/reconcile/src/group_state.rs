//! Repairs of a group's existence and members: a group or a member one side lacks becomes the lifecycle event
//! the side that is right would have sent (decided by [`crate::presence`]), produced like every other repair.
//!
//! Event ids come from the evidence they rest on (the membership's or the group's time on the side that is
//! right), so a repeated repair of one difference is the same event and the apply services' idempotency
//! absorbs it. Times: an addition carries the time the right side made it; a removal IM made at an unknown time
//! carries the time of the check, which is later than every change to-legacy applied for that member (it
//! drops member changes older than one it applied).

use std::collections::{BTreeMap, BTreeSet};

use imbridge_core::event::{GroupCreated, GroupDismissed, LeaveReason, MemberRole, MembersJoined, MembersLeft};
use imbridge_core::export::GroupProfile;
use imbridge_core::{ConversationKey, Envelope, Event, EventId, GroupId, Source, TimestampMs, UserId};
use imbridge_im::types::group::{GroupInfo, GroupMember};
use imbridge_legacy::read::{ConversationAnswer, GroupState};
use serde_json::json;

use crate::error::ReconcileError;
use crate::presence::{self, Verdict};
use crate::reconciler::{GROUP_STATE, Reconciler};
use crate::report::{Difference, Kind, Report};

const ROLES: &str = "a member's role is reported only (no live event sets a role)";
const NO_TYPE: &str = "IM's group type has no legacy equivalent";

/// Which side holds the group once the repairs produced for its existence are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exists {
    pub legacy: bool,
    pub im: bool,
}

fn im_role(role: Option<&str>) -> MemberRole {
    match role {
        Some("Owner") => MemberRole::Owner,
        Some("Admin") => MemberRole::Admin,
        _ => MemberRole::Member,
    }
}

fn text(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The event that removes `user` from `group` on the side that lacks the right view.
fn members_left(group_id: &GroupId, user: &str) -> MembersLeft {
    MembersLeft {
        group_id: group_id.clone(),
        members: vec![UserId::new_unchecked(user)],
        reason: Some(LeaveReason::Kicked),
        operator: None,
    }
}

fn members_joined(group_id: &GroupId, user: &str) -> MembersJoined {
    MembersJoined { group_id: group_id.clone(), members: vec![UserId::new_unchecked(user)], operator: None }
}

fn envelope(key: &ConversationKey, id: EventId, source: Source, time: TimestampMs, event: Event) -> Envelope {
    Envelope::recorded_now(id, source, key.clone(), time, event)
}

/// An IM-origin lifecycle event's id, from the group, what it repairs and the evidence time.
fn im_id(group_id: &GroupId, what: &str, time_ms: i64, event: &Event) -> EventId {
    let change = serde_json::to_vec(event).unwrap_or_default();
    EventId::im_group_event(group_id, &format!("reconcile.{what}"), time_ms, &change)
}

impl Reconciler {
    /// A group on one side only: created on the other side, or removed from this one (see [`presence`]).
    /// Answers which side will hold it, so its messages can follow the creation in the same pass.
    pub(crate) async fn group_existence(
        &self,
        report: &mut Report,
        key: &ConversationKey,
        group_id: &GroupId,
        legacy: &ConversationAnswer,
        info: Option<&GroupInfo>,
        dry_run: bool,
    ) -> Result<Exists, ReconcileError> {
        let g = group_id.to_string();
        let exists = Exists { legacy: legacy.group.is_some(), im: info.is_some() };
        report.row(Kind::Groups).checked += 1;
        match (&legacy.group, info) {
            (Some(l), None) => {
                let verdict = presence::legacy_only(l.origin);
                let evidence = json!({"legacy_origin": l.origin.map(|o| o.as_str()), "on_im": false});
                let (repair, exists) = match verdict {
                    Verdict::AddToIm => {
                        let owner = l.profile.owner.clone();
                        let members: Vec<UserId> =
                            l.members.iter().map(|m| m.user_id.clone()).filter(|u| Some(u) != owner.as_ref()).collect();
                        let event = Event::GroupCreated(GroupCreated {
                            group_id: group_id.clone(),
                            group_type: l.group_type,
                            profile: l.profile.clone(),
                            members,
                        });
                        let time = l.profile_updated_at.unwrap_or_else(TimestampMs::now);
                        let id = EventId::legacy(&format!("reconcile:{g}:create"));
                        (Ok(envelope(key, id, Source::Legacy, time, event)), Exists { im: true, ..exists })
                    }
                    _ => {
                        let event = Event::GroupDismissed(GroupDismissed { group_id: group_id.clone() });
                        let id = im_id(group_id, "dismiss", 0, &event);
                        (
                            Ok(envelope(key, id, Source::Im, TimestampMs::now(), event)),
                            Exists { legacy: false, ..exists },
                        )
                    }
                };
                self.finding(report, Kind::Groups, Difference::MissingInIm, key, &g, repair, dry_run, evidence).await?;
                Ok(exists)
            }
            (None, Some(i)) => {
                let evidence = json!({"im_create_time": i.create_time, "legacy_dismissed_at": legacy.dismissed_at});
                let (repair, exists) = match presence::im_only(i.create_time, legacy.dismissed_at) {
                    Verdict::AddToLegacy => match self.im_group_created(key, group_id, i).await? {
                        Ok(env) => (Ok(env), Exists { legacy: true, ..exists }),
                        Err(why) => (Err(why), exists),
                    },
                    Verdict::RemoveFromIm => {
                        let event = Event::GroupDismissed(GroupDismissed { group_id: group_id.clone() });
                        let at = legacy.dismissed_at.unwrap_or_else(TimestampMs::now);
                        let id = EventId::legacy(&format!("reconcile:{g}:dismiss:{}", at.0));
                        (Ok(envelope(key, id, Source::Legacy, at, event)), Exists { im: false, ..exists })
                    }
                    Verdict::Unknown(why) => (Err(why), exists),
                    Verdict::AddToIm | Verdict::RemoveFromLegacy => (Err(GROUP_STATE), exists),
                };
                let d = Difference::MissingInLegacy;
                self.finding(report, Kind::Groups, d, key, &g, repair, dry_run, evidence).await?;
                Ok(exists)
            }
            _ => {
                report.row(Kind::Groups).identical += 1;
                Ok(exists)
            }
        }
    }

    /// The creation IM's dropped callback would have produced: IM's profile, owner and members now.
    async fn im_group_created(
        &self,
        key: &ConversationKey,
        group_id: &GroupId,
        i: &GroupInfo,
    ) -> Result<Result<Envelope, &'static str>, ReconcileError> {
        let Some(group_type) = i.group_type.as_deref().and_then(imbridge_im::normalize::group_type) else {
            return Ok(Err(NO_TYPE));
        };
        let owner = text(i.owner_account.as_deref());
        let members = self.im.all_group_members(group_id.as_str(), None).await?;
        let members: Vec<UserId> = members
            .iter()
            .map(|m| m.member_account.as_str())
            .filter(|m| Some(*m) != owner.as_deref())
            .map(UserId::new_unchecked)
            .collect();
        let event = Event::GroupCreated(GroupCreated {
            group_id: group_id.clone(),
            group_type,
            profile: GroupProfile {
                name: i.name.clone().unwrap_or_default(),
                owner: owner.map(UserId::new_unchecked),
                introduction: text(i.introduction.as_deref()),
                notification: text(i.notification.as_deref()),
                face_url: text(i.face_url.as_deref()),
            },
            members,
        });
        let time = TimestampMs(i.create_time.unwrap_or(0).saturating_mul(1000));
        let id = im_id(group_id, "create", time.0, &event);
        Ok(Ok(envelope(key, id, Source::Im, time, event)))
    }

    /// Members, when both sides have the group: one on a side only is added or removed by [`presence`]'s rule;
    /// a different role is reported.
    pub(crate) async fn members(
        &self,
        report: &mut Report,
        key: &ConversationKey,
        group_id: &GroupId,
        l: &GroupState,
        dry_run: bool,
    ) -> Result<(), ReconcileError> {
        let im_members = self.im.all_group_members(group_id.as_str(), None).await?;
        let on_im: BTreeMap<&str, &GroupMember> = im_members.iter().map(|m| (m.member_account.as_str(), m)).collect();
        let on_legacy: BTreeMap<&str, _> = l.members.iter().map(|m| (m.user_id.as_str(), m)).collect();
        let departed: BTreeMap<&str, _> = l.departed.iter().map(|d| (d.user_id.as_str(), d)).collect();
        let users: BTreeSet<&str> = on_im.keys().chain(on_legacy.keys()).copied().collect();
        for u in users {
            report.row(Kind::GroupMembers).checked += 1;
            let g = group_id.as_str();
            match (on_legacy.get(u), on_im.get(u)) {
                (Some(lm), Some(im)) if lm.role == im_role(im.role.as_deref()) => {
                    report.row(Kind::GroupMembers).identical += 1;
                }
                (Some(_), Some(_)) => {
                    let d = Difference::Different;
                    self.finding(report, Kind::GroupMembers, d, key, u, Err(ROLES), dry_run, json!({})).await?;
                }
                (Some(lm), None) => {
                    let evidence = json!({"legacy_joined_at": lm.joined_at, "legacy_origin": lm.origin.map(|o| o.as_str()),
                        "on_im": false});
                    let repair = match presence::legacy_only(lm.origin) {
                        Verdict::RemoveFromLegacy => {
                            let event = Event::MembersLeft(members_left(group_id, u));
                            let id = im_id(group_id, "leave", lm.joined_at.map_or(0, |t| t.0), &event);
                            Ok(envelope(key, id, Source::Im, TimestampMs::now(), event))
                        }
                        _ => {
                            let at = lm.joined_at.unwrap_or_else(TimestampMs::now);
                            let id = EventId::legacy(&format!("reconcile:{g}:join:{u}:{}", at.0));
                            Ok(envelope(key, id, Source::Legacy, at, Event::MembersJoined(members_joined(group_id, u))))
                        }
                    };
                    let d = Difference::MissingInIm;
                    self.finding(report, Kind::GroupMembers, d, key, u, repair, dry_run, evidence).await?;
                }
                (None, Some(im)) => {
                    let left = departed.get(u).map(|d| d.left_at);
                    let evidence = json!({"im_join_time": im.join_time, "legacy_left_at": left});
                    let repair = match presence::im_only(im.join_time, left) {
                        Verdict::AddToLegacy => {
                            let time = TimestampMs(im.join_time.unwrap_or(0).saturating_mul(1000));
                            let event = Event::MembersJoined(members_joined(group_id, u));
                            let id = im_id(group_id, "join", time.0, &event);
                            // Without IM's join time, now: later than any change to-legacy applied for the member.
                            let time = if time.0 > 0 { time } else { TimestampMs::now() };
                            Ok(envelope(key, id, Source::Im, time, event))
                        }
                        Verdict::RemoveFromIm => {
                            let at = left.unwrap_or_else(TimestampMs::now);
                            let id = EventId::legacy(&format!("reconcile:{g}:leave:{u}:{}", at.0));
                            Ok(envelope(key, id, Source::Legacy, at, Event::MembersLeft(members_left(group_id, u))))
                        }
                        Verdict::Unknown(why) => Err(why),
                        Verdict::AddToIm | Verdict::RemoveFromLegacy => Err(GROUP_STATE),
                    };
                    let d = Difference::MissingInLegacy;
                    self.finding(report, Kind::GroupMembers, d, key, u, repair, dry_run, evidence).await?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}
