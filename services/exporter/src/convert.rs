//! What IM's query APIs answer, as export records: the inverse of the importer's mapping from records to IM's
//! import requests, built from the same value tables (`imbridge_importer::apply`) so the two directions can
//! never disagree about a name.

use std::collections::BTreeMap;

use imbridge_core::TimestampMs;
use imbridge_core::body::ExportElement;
use imbridge_core::event::{AllowType, ApplyJoin, Gender, GroupType, MemberRole};
use imbridge_core::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, FriendRecord, GroupMemberRecord, GroupMessageRecord, GroupProfile,
    GroupRecord, ProfileRecord,
};
use imbridge_im::types::account::{ProfileValue, UserProfile, tags};
use imbridge_im::types::c2c::RoamMsg;
use imbridge_im::types::group::{GroupInfo, GroupMember, GroupMsg, ROLE_ADMIN, ROLE_OWNER};
use imbridge_im::types::sns::{Friend, SnsValue, tags as sns_tags};
use imbridge_im::{ImError, from_im_body};
use imbridge_importer::apply::groups::apply_join_value;
use imbridge_importer::apply::users::{add_source_value, allow_type_value, gender_value};

/// The profile tags every export asks for (custom ones are named in the configuration: IM has no API that
/// lists an app's custom tags).
pub const PROFILE_TAGS: [&str; 10] = [
    tags::NICK,
    tags::GENDER,
    tags::BIRTHDAY,
    tags::LOCATION,
    tags::SELF_SIGNATURE,
    tags::ALLOW_TYPE,
    tags::LANGUAGE,
    tags::IMAGE,
    tags::LEVEL,
    tags::ROLE,
];

/// The member fields `get_group_member_info` is asked for.
pub const MEMBER_FIELDS: [&str; 3] = ["Role", "JoinTime", "MsgSeq"];

fn text(v: Option<&ProfileValue>) -> Option<String> {
    match v? {
        ProfileValue::Str(s) if !s.is_empty() => Some(s.clone()),
        ProfileValue::Str(_) => None,
        ProfileValue::Int(i) => Some(i.to_string()),
    }
}

fn number(v: Option<&ProfileValue>) -> Option<u32> {
    match v? {
        ProfileValue::Int(i) => u32::try_from(*i).ok(),
        ProfileValue::Str(s) => s.parse().ok(),
    }
}

/// The account and profile records of one user's `portrait_get` answer. The nick and face belong to the
/// account (what `account_import` sets); everything else to the profile, which is left out when empty.
pub fn account_and_profile(p: &UserProfile, custom: &[String]) -> (AccountRecord, Option<ProfileRecord>) {
    let account = AccountRecord {
        user_id: p.to_account.clone(),
        nick: text(p.get(tags::NICK)),
        face_url: text(p.get(tags::IMAGE)),
    };
    let gender = text(p.get(tags::GENDER))
        .and_then(|s| [Gender::Male, Gender::Female, Gender::Unknown].into_iter().find(|g| gender_value(*g) == s));
    let allow_type = text(p.get(tags::ALLOW_TYPE)).and_then(|s| {
        [AllowType::NeedConfirm, AllowType::AllowAny, AllowType::DenyAny]
            .into_iter()
            .find(|a| allow_type_value(*a) == s)
    });
    let custom: BTreeMap<String, String> = custom
        .iter()
        .filter_map(|name| {
            let value = text(p.get(&format!("{}{name}", tags::CUSTOM_PREFIX)))?;
            Some((name.clone(), value))
        })
        .collect();
    let profile = ProfileRecord {
        user_id: p.to_account.clone(),
        nick: None,
        gender,
        birthday: number(p.get(tags::BIRTHDAY)).filter(|b| *b != 0),
        location: text(p.get(tags::LOCATION)),
        signature: text(p.get(tags::SELF_SIGNATURE)),
        allow_type,
        language: number(p.get(tags::LANGUAGE)).filter(|l| *l != 0),
        avatar: None,
        level: number(p.get(tags::LEVEL)).filter(|l| *l != 0),
        role: number(p.get(tags::ROLE)).filter(|r| *r != 0),
        custom: (!custom.is_empty()).then_some(custom),
    };
    let empty = ProfileRecord { user_id: p.to_account.clone(), ..profile_none() };
    (account, (profile != empty).then_some(profile))
}

fn profile_none() -> ProfileRecord {
    ProfileRecord {
        user_id: String::new(),
        nick: None,
        gender: None,
        birthday: None,
        location: None,
        signature: None,
        allow_type: None,
        language: None,
        avatar: None,
        level: None,
        role: None,
        custom: None,
    }
}

/// One entry of `user`'s friend list.
pub fn friend(user: &str, f: &Friend) -> FriendRecord {
    let s = |tag: &str| match f.get(tag) {
        Some(SnsValue::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let prefix = add_source_value("");
    let add_source = s(sns_tags::ADD_SOURCE).unwrap_or_default();
    FriendRecord {
        user_id: user.to_owned(),
        friend_id: f.to_account.clone(),
        add_source: add_source.strip_prefix(&prefix).unwrap_or(&add_source).to_owned(),
        remark: s(sns_tags::REMARK),
        groups: match f.get(sns_tags::GROUP) {
            Some(SnsValue::List(l)) if !l.is_empty() => Some(l.clone()),
            _ => None,
        },
        add_wording: s(sns_tags::ADD_WORDING),
        added_at: match f.get(sns_tags::ADD_TIME) {
            Some(SnsValue::Int(t)) if *t > 0 => Some(TimestampMs::from_secs(*t)),
            _ => None,
        },
    }
}

fn body(msg_body: &[imbridge_im::MsgElement]) -> Result<Vec<ExportElement>, ImError> {
    Ok(from_im_body(msg_body)?.into_iter().map(ExportElement::from).collect())
}

/// The id a 1:1 message gets in the export: IM's `MsgKey`, unique within the app.
pub fn c2c_id(m: &RoamMsg) -> String {
    if m.msg_key.is_empty() {
        format!("{}-{}-{}-{}", m.msg_time_stamp, m.msg_seq, m.msg_random, m.from_account)
    } else {
        m.msg_key.clone()
    }
}

/// A stored 1:1 message; `Err` when its body holds an element the export format cannot carry.
pub fn c2c_message(m: &RoamMsg) -> Result<C2cMessageRecord, ImError> {
    Ok(C2cMessageRecord {
        id: c2c_id(m),
        from: m.from_account.clone(),
        to: m.to_account.clone(),
        sent_at: TimestampMs::from_secs(m.msg_time_stamp),
        body: body(&m.msg_body)?,
        custom_data: m.cloud_custom_data.clone().filter(|c| !c.is_empty()),
    })
}

/// `user`'s read position in the conversation with `peer`: IM gives only the number of unread messages, so
/// the position is the newest message from `peer` that is not among the last `unread` ones. `None` when
/// nothing from `peer` was read (or `peer` sent nothing).
pub fn c2c_read(user: &str, peer: &str, history: &[RoamMsg], unread: u64) -> Option<C2cReadRecord> {
    let from_peer: Vec<&RoamMsg> = history.iter().filter(|m| m.from_account == peer && m.to_account == user).collect();
    let read = from_peer.len().checked_sub(usize::try_from(unread).ok()?)?;
    let last = from_peer.get(read.checked_sub(1)?)?;
    Some(C2cReadRecord {
        user_id: user.to_owned(),
        peer_id: peer.to_owned(),
        read_at: TimestampMs::from_secs(last.msg_time_stamp),
    })
}

/// The group types the export format (and so the new app's import) carries; AVChatRoom has no history or
/// members to move.
pub fn group_type(im_type: &str) -> Option<GroupType> {
    [GroupType::Private, GroupType::Public, GroupType::ChatRoom, GroupType::Community]
        .into_iter()
        .find(|t| t.as_str() == im_type)
}

/// One group's `get_group_info` answer.
pub fn group(info: &GroupInfo, kind: GroupType) -> GroupRecord {
    let apply_join = info.apply_join_option.as_deref().and_then(|o| {
        [ApplyJoin::FreeAccess, ApplyJoin::NeedPermission, ApplyJoin::DisableApply]
            .into_iter()
            .find(|a| apply_join_value(*a) == o)
    });
    GroupRecord {
        group_id: info.group_id.clone(),
        group_type: kind.as_str().to_owned(),
        profile: GroupProfile {
            name: info.name.clone().unwrap_or_default(),
            owner: info.owner_account.clone().filter(|o| !o.is_empty()),
            introduction: info.introduction.clone().filter(|s| !s.is_empty()),
            notification: info.notification.clone().filter(|s| !s.is_empty()),
            face_url: info.face_url.clone().filter(|s| !s.is_empty()),
        },
        max_members: info.max_member_num.and_then(|m| u32::try_from(m).ok()).filter(|m| *m > 0),
        apply_join,
        created_at: TimestampMs::from_secs(info.create_time.unwrap_or(0)),
    }
}

/// One member; `last_seq` is the group's newest MsgSeq (its unread count is counted from there, not for
/// ChatRoom groups, which keep no read positions).
pub fn member(group_id: &str, m: &GroupMember, last_seq: Option<u64>) -> GroupMemberRecord {
    let role = match m.role.as_deref() {
        Some(ROLE_OWNER) => MemberRole::Owner,
        Some(ROLE_ADMIN) => MemberRole::Admin,
        _ => MemberRole::Member,
    };
    let unread = match (last_seq, m.msg_seq) {
        (Some(last), Some(read)) => u32::try_from(last.saturating_sub(read)).ok().filter(|u| *u > 0),
        _ => None,
    };
    GroupMemberRecord {
        group_id: group_id.to_owned(),
        user_id: m.member_account.clone(),
        role: Some(role),
        joined_at: m.join_time.filter(|t| *t > 0).map(TimestampMs::from_secs),
        unread,
    }
}

/// A stored group message (not a notice, not a recalled placeholder).
pub fn group_message(group_id: &str, m: &GroupMsg) -> Result<GroupMessageRecord, ImError> {
    Ok(GroupMessageRecord {
        id: format!("{group_id}#{}", m.msg_seq),
        group_id: group_id.to_owned(),
        from: m.from_account.clone(),
        sent_at: TimestampMs::from_secs(m.msg_time_stamp),
        body: body(&m.msg_body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbridge_im::types::account::ProfileItem;
    use imbridge_im::types::sns::SnsItem;

    fn roam(from: &str, to: &str, t: i64) -> RoamMsg {
        RoamMsg { from_account: from.into(), to_account: to.into(), msg_time_stamp: t, ..RoamMsg::default() }
    }

    #[test]
    fn read_position_is_counted_back_from_the_newest_unread() {
        let h = [roam("b", "a", 10), roam("a", "b", 11), roam("b", "a", 12), roam("b", "a", 13)];
        assert_eq!(c2c_read("a", "b", &h, 0).map(|r| r.read_at.as_secs()), Some(13));
        assert_eq!(c2c_read("a", "b", &h, 2).map(|r| r.read_at.as_secs()), Some(10));
        assert_eq!(c2c_read("a", "b", &h, 3), None);
        assert_eq!(c2c_read("b", "a", &h, 0).map(|r| r.read_at.as_secs()), Some(11));
        assert_eq!(c2c_read("a", "b", &[], 0), None);
    }

    #[test]
    fn profile_values_map_back_to_the_export_vocabulary() {
        let p = UserProfile {
            to_account: "ann".into(),
            profile_item: vec![
                ProfileItem::string(tags::NICK, "Ann"),
                ProfileItem::string(tags::GENDER, "Gender_Type_Female"),
                ProfileItem::int(tags::BIRTHDAY, 19900101),
                ProfileItem::string(tags::ALLOW_TYPE, "AllowType_Type_DenyAny"),
                ProfileItem::string("Tag_Profile_Custom_Hobby", "chess"),
            ],
            ..UserProfile::default()
        };
        let (a, prof) = account_and_profile(&p, &["Hobby".into(), "Absent".into()]);
        assert_eq!(a.nick.as_deref(), Some("Ann"));
        let prof = prof.expect("profile");
        assert_eq!(prof.gender, Some(Gender::Female));
        assert_eq!(prof.allow_type, Some(AllowType::DenyAny));
        assert_eq!(prof.birthday, Some(19900101));
        assert_eq!(prof.custom.expect("custom").get("Hobby").map(String::as_str), Some("chess"));
        let bare = UserProfile { to_account: "bob".into(), ..UserProfile::default() };
        assert!(account_and_profile(&bare, &[]).1.is_none());
    }

    #[test]
    fn friend_fields_lose_im_prefixes() {
        let f = Friend {
            to_account: "bob".into(),
            value_item: vec![
                SnsItem { tag: sns_tags::ADD_SOURCE.into(), value: SnsValue::Str("AddSource_Type_Web".into()) },
                SnsItem { tag: sns_tags::REMARK.into(), value: SnsValue::Str(String::new()) },
                SnsItem { tag: sns_tags::GROUP.into(), value: SnsValue::List(vec!["work".into()]) },
                SnsItem { tag: sns_tags::ADD_TIME.into(), value: SnsValue::Int(1_700_000_000) },
            ],
        };
        let r = friend("ann", &f);
        assert_eq!(r.add_source, "Web");
        assert_eq!(r.remark, None);
        assert_eq!(r.groups, Some(vec!["work".to_owned()]));
        assert_eq!(r.added_at, Some(TimestampMs::from_secs(1_700_000_000)));
    }

    #[test]
    fn member_unread_counts_from_the_newest_seq() {
        let m = GroupMember {
            member_account: "ann".into(),
            role: Some(ROLE_ADMIN.into()),
            join_time: Some(1_700_000_100),
            msg_seq: Some(7),
            ..GroupMember::default()
        };
        let r = member("g", &m, Some(10));
        assert_eq!((r.role, r.unread), (Some(MemberRole::Admin), Some(3)));
        assert_eq!(member("g", &m, None).unread, None);
        assert_eq!(member("g", &m, Some(7)).unread, None);
    }
}
