//! Validating an export before anything is imported: records against their schema, then references.
//!
//! Files are read once each, in [`ExportKind::ALL`] order, so every reference points at a kind already read
//! and both passes happen in one sweep per file:
//!
//! 1. **Shape and limits** — the line is UTF-8 JSON, deserializes into its record type (errors name the
//!    field), and every value is within IM's limits (id lengths, string byte limits, group types IM can
//!    import, body size as IM will see it).
//! 2. **References** — friends, messages, members and reads point at accounts and groups that exist (and
//!    were not themselves rejected); senders are members; no duplicate ids, members, friendships or reads.
//!    A group whose owner is missing from its members is rejected once the members file has been read, and
//!    its members and messages with it, so nothing half-imports.
//!
//! A bad record is reported once (its first problem) and skipped; [`Validation`] remembers the rejected
//! line numbers so [`crate::plan`] converts exactly the records counted valid. Only id sets are kept in
//! memory, never records.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use imbridge_core::event::{GroupType, MemberRole};
use imbridge_core::{Element, EventKind, GroupId, TimestampMs, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, ExportDir, ExportElement, ExportKind, FieldError, FriendRecord,
    GroupMemberRecord, GroupMessageRecord, GroupRecord, ProfileRecord, parse_record,
};

/// IM rejects a message body over 8 KB (error 93000; `import_group_msg` says "8000 bytes"). We compare the
/// body's IM JSON size, computed by [`im_body_size`], against the smaller figure.
pub const MAX_IM_BODY_BYTES: usize = 8000;
/// Profile string values (nick, location, signature, avatar, custom fields): IM error 40601 above this.
pub const MAX_PROFILE_VALUE_BYTES: usize = 500;
/// Group field limits from IM's SDK documentation (the REST limits may be larger; these are safe).
pub const MAX_GROUP_NAME_BYTES: usize = 30;
pub const MAX_GROUP_INTRODUCTION_BYTES: usize = 240;
pub const MAX_GROUP_NOTIFICATION_BYTES: usize = 300;
pub const MAX_GROUP_FACE_URL_BYTES: usize = 100;
/// Friend fields (`Tag_SNS_IM_*`).
pub const MAX_REMARK_BYTES: usize = 96;
pub const MAX_ADD_WORDING_BYTES: usize = 256;
pub const MAX_ADD_SOURCE_KEYWORD_BYTES: usize = 8;
pub const MAX_FRIEND_GROUPS: usize = 32;
pub const MAX_FRIEND_GROUP_NAME_BYTES: usize = 30;

/// How validation runs.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Errors kept (with file:line) per record kind; the rest are only counted.
    pub max_errors_per_kind: usize,
    /// "Now" in Unix ms: times after it are rejected, because IM refuses imported messages and joins from
    /// the future. `None` skips the check (deterministic tests of old fixtures).
    pub now_ms: Option<i64>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self { max_errors_per_kind: 20, now_ms: None }
    }
}

/// One problem with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub kind: ExportKind,
    /// File name as found (`accounts.ndjson.gz`).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The offending field (`body[2].url`); empty when the line as a whole is wrong.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.message)
        }
    }
}

/// Counts and (capped) errors of one record kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSummary {
    pub kind: ExportKind,
    /// The file read, or `None` when the export has none for this kind.
    pub file: Option<String>,
    pub valid: u64,
    pub invalid: u64,
    /// The first errors, in file order.
    pub errors: Vec<Issue>,
    /// How many more errors there were beyond `errors`.
    pub more_errors: u64,
}

/// The outcome of validating an export.
#[derive(Debug, Clone)]
pub struct Validation {
    summaries: Vec<KindSummary>,
    rejected: HashMap<ExportKind, HashSet<u64>>,
    /// Type of every accepted group: the plan skips unread counts where IM keeps none (ChatRoom).
    group_types: HashMap<String, GroupType>,
    event_counts: BTreeMap<EventKind, u64>,
}

impl Validation {
    /// Per-kind counts and errors, in [`ExportKind::ALL`] order.
    pub fn summaries(&self) -> &[KindSummary] {
        &self.summaries
    }

    pub fn summary(&self, kind: ExportKind) -> &KindSummary {
        // `summaries` always holds one entry per kind, in ALL order.
        &self.summaries[ExportKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
    }

    /// True when no record was rejected: the condition `--strict` imports under.
    pub fn is_clean(&self) -> bool {
        self.total_invalid() == 0
    }

    pub fn total_valid(&self) -> u64 {
        self.summaries.iter().map(|s| s.valid).sum()
    }

    pub fn total_invalid(&self) -> u64 {
        self.summaries.iter().map(|s| s.invalid).sum()
    }

    /// Whether the record at `line` of `kind`'s file was rejected.
    pub fn is_rejected(&self, kind: ExportKind, line: u64) -> bool {
        self.rejected.get(&kind).is_some_and(|s| s.contains(&line))
    }

    /// How many events of each kind converting the valid records produces.
    pub fn event_counts(&self) -> &BTreeMap<EventKind, u64> {
        &self.event_counts
    }

    pub(crate) fn group_type(&self, group_id: &str) -> Option<GroupType> {
        self.group_types.get(group_id).copied()
    }

    /// Every issue kept, in kind then file order.
    pub fn issues(&self) -> impl Iterator<Item = &Issue> {
        self.summaries.iter().flat_map(|s| s.errors.iter())
    }
}

/// Validates every file of the export. Fails only when a file cannot be read; bad records are in the result.
pub fn validate(dir: &ExportDir, options: &ValidateOptions) -> Result<Validation, Error> {
    let mut run = Run {
        dir,
        options,
        state: State::default(),
        summaries: ExportKind::ALL
            .iter()
            .map(|&kind| KindSummary {
                kind,
                file: dir.path(kind).map(|_| dir.display_name(kind)),
                valid: 0,
                invalid: 0,
                errors: Vec::new(),
                more_errors: 0,
            })
            .collect(),
        rejected: HashMap::new(),
    };
    run.sweep(ExportKind::Accounts, check_account)?;
    run.sweep(ExportKind::Profiles, check_profile)?;
    run.sweep(ExportKind::Friends, check_friend)?;
    run.sweep(ExportKind::Groups, check_group)?;
    run.sweep(ExportKind::GroupMembers, check_member)?;
    run.reject_groups_without_their_owner();
    run.sweep(ExportKind::C2cMessages, check_c2c_message)?;
    run.sweep(ExportKind::C2cReads, check_c2c_read)?;
    run.sweep(ExportKind::GroupMessages, check_group_message)?;
    Ok(run.finish())
}

// ---- state and driver -----------------------------------------------------------------------------

#[derive(Debug, Default)]
struct State {
    accounts: HashSet<String>,
    profiles: HashSet<String>,
    friendships: HashSet<(String, String)>,
    groups: HashMap<String, GroupInfo>,
    /// Groups that were rejected, with their line, so references to them say why they fail.
    rejected_groups: HashMap<String, u64>,
    c2c_ids: HashSet<Box<str>>,
    group_message_ids: HashSet<Box<str>>,
    reads: HashSet<(String, String)>,
}

#[derive(Debug)]
struct GroupInfo {
    line: u64,
    owner: Option<String>,
    group_type: GroupType,
    created_at: TimestampMs,
    /// Member → (line, counts toward an unread event).
    members: HashMap<String, (u64, bool)>,
}

type Check<T> = fn(&mut State, &ValidateOptions, u64, T) -> Result<(), FieldError>;

struct Run<'a> {
    dir: &'a ExportDir,
    options: &'a ValidateOptions,
    state: State,
    summaries: Vec<KindSummary>,
    rejected: HashMap<ExportKind, HashSet<u64>>,
}

impl Run<'_> {
    fn index(kind: ExportKind) -> usize {
        ExportKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
    }

    fn sweep<T: DeserializeOwned>(&mut self, kind: ExportKind, check: Check<T>) -> Result<(), Error> {
        for line in self.dir.lines(kind)? {
            let line = line?;
            let outcome = line
                .text
                .map_err(|m| FieldError::new("", m))
                .and_then(|text| parse_record::<T>(&text))
                .and_then(|record| check(&mut self.state, self.options, line.number, record));
            match outcome {
                Ok(()) => self.summaries[Self::index(kind)].valid += 1,
                Err(e) => self.reject(kind, line.number, e),
            }
        }
        Ok(())
    }

    fn reject(&mut self, kind: ExportKind, line: u64, e: FieldError) {
        self.rejected.entry(kind).or_default().insert(line);
        let cap = self.options.max_errors_per_kind;
        let file = self.dir.display_name(kind);
        let summary = &mut self.summaries[Self::index(kind)];
        summary.invalid += 1;
        if summary.errors.len() < cap {
            summary.errors.push(Issue { kind, file, line, field: e.field, message: e.message });
        } else {
            summary.more_errors += 1;
        }
    }

    /// IM makes the owner a member of the group it imports; an export whose owner has no member line is
    /// inconsistent, so the group (and everything in it) is refused rather than imported differently.
    fn reject_groups_without_their_owner(&mut self) {
        let mut bad: Vec<(String, u64, String, Vec<u64>)> = Vec::new();
        for (id, g) in &self.state.groups {
            if let Some(owner) = &g.owner {
                if !g.members.contains_key(owner) {
                    let mut member_lines: Vec<u64> = g.members.values().map(|(l, _)| *l).collect();
                    member_lines.sort_unstable();
                    bad.push((id.clone(), g.line, owner.clone(), member_lines));
                }
            }
        }
        bad.sort_by_key(|b| b.1);
        let groups_file = self.dir.display_name(ExportKind::Groups);
        let members_file = self.dir.display_name(ExportKind::GroupMembers);
        for (id, line, owner, member_lines) in bad {
            self.state.groups.remove(&id);
            self.state.rejected_groups.insert(id.clone(), line);
            self.summaries[Self::index(ExportKind::Groups)].valid -= 1;
            self.reject(
                ExportKind::Groups,
                line,
                FieldError::new("owner", format!("owner {owner:?} has no line in {members_file}")),
            );
            for member_line in member_lines {
                self.summaries[Self::index(ExportKind::GroupMembers)].valid -= 1;
                self.reject(
                    ExportKind::GroupMembers,
                    member_line,
                    FieldError::new("group_id", format!("group {id:?} was rejected ({groups_file}:{line})")),
                );
            }
        }
        // Issues were appended out of file order; keep each kind's list sorted by line for readers.
        for kind in [ExportKind::Groups, ExportKind::GroupMembers] {
            self.summaries[Self::index(kind)].errors.sort_by_key(|i| i.line);
        }
    }

    fn finish(self) -> Validation {
        let count = |k: ExportKind| self.summaries[Self::index(k)].valid;
        let unread = self
            .state
            .groups
            .values()
            .filter(|g| has_unread_counts(g.group_type))
            .map(|g| g.members.values().filter(|(_, u)| *u).count() as u64)
            .sum();
        let event_counts = BTreeMap::from([
            (EventKind::ImportAccount, count(ExportKind::Accounts)),
            (EventKind::ImportProfile, count(ExportKind::Profiles)),
            (EventKind::ImportFriendship, count(ExportKind::Friends)),
            (EventKind::ImportC2cMessage, count(ExportKind::C2cMessages)),
            (EventKind::ImportC2cRead, count(ExportKind::C2cReads)),
            (EventKind::ImportGroup, count(ExportKind::Groups)),
            (EventKind::ImportGroupMember, count(ExportKind::GroupMembers)),
            (EventKind::ImportGroupMessage, count(ExportKind::GroupMessages)),
            (EventKind::ImportMemberUnread, unread),
        ]);
        let group_types = self.state.groups.iter().map(|(id, g)| (id.clone(), g.group_type)).collect();
        Validation { summaries: self.summaries, rejected: self.rejected, group_types, event_counts }
    }
}

/// ChatRoom (and AVChatRoom) groups keep no unread counts: `set_unread_msg_num` is a no-op there.
pub(crate) fn has_unread_counts(t: GroupType) -> bool {
    !matches!(t, GroupType::ChatRoom)
}

// ---- field checks ---------------------------------------------------------------------------------

fn user_id(field: &str, s: &str) -> Result<(), FieldError> {
    UserId::parse(s).map(drop).map_err(|e| FieldError::new(field, e.to_string()))
}

fn group_id(field: &str, s: &str) -> Result<(), FieldError> {
    GroupId::parse(s).map_err(|e| FieldError::new(field, e.to_string()))?;
    if s.starts_with("@TGS#") {
        // IM's own generated ids start with this; a custom id may not.
        return Err(FieldError::new(field, "group ids may not start with \"@TGS#\" (reserved by IM)"));
    }
    Ok(())
}

fn max_bytes(field: &str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    match value {
        Some(v) if v.len() > max => {
            Err(FieldError::new(field, format!("is {} bytes, longer than IM's {max}-byte limit", v.len())))
        }
        _ => Ok(()),
    }
}

fn not_empty(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() { Err(FieldError::new(field, "must not be empty")) } else { Ok(()) }
}

fn not_future(field: &str, t: TimestampMs, options: &ValidateOptions) -> Result<(), FieldError> {
    match options.now_ms {
        Some(now) if t.as_millis() > now => {
            Err(FieldError::new(field, format!("{t} is in the future; IM refuses imports from the future")))
        }
        _ => Ok(()),
    }
}

fn account_exists(state: &State, field: &str, id: &str) -> Result<(), FieldError> {
    if state.accounts.contains(id) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("no account {id:?} in accounts.ndjson")))
    }
}

fn accepted_group<'s>(state: &'s mut State, field: &str, id: &str) -> Result<&'s mut GroupInfo, FieldError> {
    if let Some(line) = state.rejected_groups.get(id) {
        return Err(FieldError::new(field, format!("group {id:?} was rejected (groups.ndjson:{line})")));
    }
    state.groups.get_mut(id).ok_or_else(|| FieldError::new(field, format!("no group {id:?} in groups.ndjson")))
}

fn check_body(body: &[ExportElement]) -> Result<Vec<Element>, FieldError> {
    if body.is_empty() {
        return Err(FieldError::new("body", "a message needs at least one element"));
    }
    let customs = body.iter().filter(|e| matches!(e, ExportElement::Custom { .. })).count();
    if customs > 1 {
        return Err(FieldError::new("body", format!("{customs} custom elements; IM allows one per message")));
    }
    let elements: Vec<Element> = body.iter().cloned().map(Element::from).collect();
    let size = im_body_size(&elements);
    if size > MAX_IM_BODY_BYTES {
        return Err(FieldError::new(
            "body",
            format!("is {size} bytes as an IM MsgBody, over IM's {MAX_IM_BODY_BYTES}-byte limit"),
        ));
    }
    Ok(elements)
}

/// The byte length of the body as IM will receive it: the `MsgBody` JSON array of `{"MsgType","MsgContent"}`
/// objects, with the fields the TIM element types document (reference §3). Media UUIDs are counted at 32
/// hex characters and images with three `ImageInfoArray` entries (original, large, thumbnail), which is what
/// the IM client sends, so the figure is exact for what imbridge sends, not an estimate with a margin.
pub fn im_body_size(body: &[Element]) -> usize {
    use serde_json::json;
    const UUID: &str = "0123456789abcdef0123456789abcdef";
    let elements: Vec<serde_json::Value> = body
        .iter()
        .map(|e| match e {
            Element::Text { text } => json!({"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}),
            Element::Image { url, width, height, size } => {
                let info = |t: u32| {
                    json!({"Type": t, "Size": size.unwrap_or(0), "Width": width.unwrap_or(0),
                           "Height": height.unwrap_or(0), "URL": url})
                };
                json!({"MsgType": "TIMImageElem", "MsgContent": {"UUID": UUID, "ImageFormat": 255,
                       "ImageInfoArray": [info(1), info(2), info(3)]}})
            }
            Element::File { url, name, size } => json!({"MsgType": "TIMFileElem", "MsgContent": {
                "Url": url, "UUID": UUID, "FileSize": size, "FileName": name, "Download_Flag": 2}}),
            Element::Sound { url, seconds, size } => json!({"MsgType": "TIMSoundElem", "MsgContent": {
                "Url": url, "UUID": UUID, "Size": size, "Second": seconds, "Download_Flag": 2}}),
            Element::Video { url, seconds, size, thumb_url } => json!({"MsgType": "TIMVideoFileElem", "MsgContent": {
                "VideoUrl": url, "VideoUUID": UUID, "VideoSize": size, "VideoSecond": seconds, "VideoFormat": "mp4",
                "VideoDownloadFlag": 2, "ThumbUrl": thumb_url.as_deref().unwrap_or(""), "ThumbUUID": UUID,
                "ThumbSize": 0, "ThumbWidth": 0, "ThumbHeight": 0, "ThumbFormat": "JPG", "ThumbDownloadFlag": 2}}),
            Element::Location { latitude, longitude, desc } => json!({"MsgType": "TIMLocationElem", "MsgContent": {
                "Desc": desc.as_deref().unwrap_or(""), "Latitude": latitude, "Longitude": longitude}}),
            Element::Face { index, data } => json!({"MsgType": "TIMFaceElem", "MsgContent": {
                "Index": index, "Data": data.as_deref().unwrap_or("")}}),
            Element::Custom { data, desc, ext } => json!({"MsgType": "TIMCustomElem", "MsgContent": {
                "Data": data, "Desc": desc.as_deref().unwrap_or(""), "Ext": ext.as_deref().unwrap_or(""), "Sound": ""}}),
        })
        .collect();
    serde_json::to_vec(&elements).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// Parses an export group type, with a reason for the types IM cannot import.
pub fn parse_group_type(s: &str) -> Result<GroupType, FieldError> {
    match s {
        "Private" => Ok(GroupType::Private),
        "Public" => Ok(GroupType::Public),
        "ChatRoom" => Ok(GroupType::ChatRoom),
        "Community" => Ok(GroupType::Community),
        "AVChatRoom" => {
            Err(FieldError::new("type", "AVChatRoom groups cannot be imported (IM keeps no history for them)"))
        }
        other => Err(FieldError::new(
            "type",
            format!("unknown group type {other:?}, expected one of Private, Public, ChatRoom, Community"),
        )),
    }
}

fn check_account(state: &mut State, _: &ValidateOptions, _: u64, r: AccountRecord) -> Result<(), FieldError> {
    user_id("user_id", &r.user_id)?;
    max_bytes("nick", r.nick.as_deref(), MAX_PROFILE_VALUE_BYTES)?;
    max_bytes("face_url", r.face_url.as_deref(), MAX_PROFILE_VALUE_BYTES)?;
    if !state.accounts.insert(r.user_id.clone()) {
        return Err(FieldError::new("user_id", format!("duplicate account {:?}", r.user_id)));
    }
    Ok(())
}

fn check_profile(state: &mut State, _: &ValidateOptions, _: u64, r: ProfileRecord) -> Result<(), FieldError> {
    user_id("user_id", &r.user_id)?;
    for (field, value) in
        [("nick", &r.nick), ("location", &r.location), ("signature", &r.signature), ("avatar", &r.avatar)]
    {
        max_bytes(field, value.as_deref(), MAX_PROFILE_VALUE_BYTES)?;
    }
    if let Some(b) = r.birthday {
        let (month, day) = (b / 100 % 100, b % 100);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || b < 10_000_000 {
            return Err(FieldError::new("birthday", format!("{b} is not a date written YYYYMMDD")));
        }
    }
    for (name, value) in r.custom.iter().flatten() {
        let field = format!("custom.{name}");
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(FieldError::new(field, "custom field names may use only A-Z, a-z, 0-9 and _"));
        }
        max_bytes(&field, Some(value), MAX_PROFILE_VALUE_BYTES)?;
    }
    account_exists(state, "user_id", &r.user_id)?;
    if !state.profiles.insert(r.user_id.clone()) {
        return Err(FieldError::new("user_id", format!("duplicate profile for {:?}", r.user_id)));
    }
    Ok(())
}

fn check_friend(state: &mut State, o: &ValidateOptions, _: u64, r: FriendRecord) -> Result<(), FieldError> {
    user_id("user_id", &r.user_id)?;
    user_id("friend_id", &r.friend_id)?;
    if r.add_source.is_empty()
        || r.add_source.len() > MAX_ADD_SOURCE_KEYWORD_BYTES
        || !r.add_source.bytes().all(|c| c.is_ascii_alphabetic())
    {
        return Err(FieldError::new(
            "add_source",
            format!("{:?} is not a keyword of 1-{MAX_ADD_SOURCE_KEYWORD_BYTES} letters", r.add_source),
        ));
    }
    max_bytes("remark", r.remark.as_deref(), MAX_REMARK_BYTES)?;
    max_bytes("add_wording", r.add_wording.as_deref(), MAX_ADD_WORDING_BYTES)?;
    if let Some(groups) = &r.groups {
        if groups.len() > MAX_FRIEND_GROUPS {
            return Err(FieldError::new("groups", format!("{} lists; IM allows {MAX_FRIEND_GROUPS}", groups.len())));
        }
        for (i, g) in groups.iter().enumerate() {
            let field = format!("groups[{i}]");
            not_empty(&field, g)?;
            max_bytes(&field, Some(g), MAX_FRIEND_GROUP_NAME_BYTES)?;
        }
    }
    if let Some(t) = r.added_at {
        not_future("added_at", t, o)?;
    }
    if r.user_id == r.friend_id {
        return Err(FieldError::new("friend_id", "a user cannot be their own friend"));
    }
    account_exists(state, "user_id", &r.user_id)?;
    account_exists(state, "friend_id", &r.friend_id)?;
    if !state.friendships.insert((r.user_id.clone(), r.friend_id.clone())) {
        return Err(FieldError::new(
            "friend_id",
            format!("duplicate friendship {:?} → {:?} (one line per direction)", r.user_id, r.friend_id),
        ));
    }
    Ok(())
}

fn check_group(state: &mut State, o: &ValidateOptions, line: u64, r: GroupRecord) -> Result<(), FieldError> {
    group_id("group_id", &r.group_id)?;
    let group_type = parse_group_type(&r.group_type)?;
    let p = &r.profile;
    not_empty("name", &p.name)?;
    max_bytes("name", Some(&p.name), MAX_GROUP_NAME_BYTES)?;
    max_bytes("introduction", p.introduction.as_deref(), MAX_GROUP_INTRODUCTION_BYTES)?;
    max_bytes("notification", p.notification.as_deref(), MAX_GROUP_NOTIFICATION_BYTES)?;
    max_bytes("face_url", p.face_url.as_deref(), MAX_GROUP_FACE_URL_BYTES)?;
    if r.max_members == Some(0) {
        return Err(FieldError::new("max_members", "must be at least 1"));
    }
    not_future("created_at", r.created_at, o)?;
    if let Some(owner) = &r.profile.owner {
        user_id("owner", owner)?;
        account_exists(state, "owner", owner)?;
    }
    if state.groups.contains_key(&r.group_id) || state.rejected_groups.contains_key(&r.group_id) {
        return Err(FieldError::new("group_id", format!("duplicate group {:?}", r.group_id)));
    }
    let info =
        GroupInfo { line, owner: r.profile.owner, group_type, created_at: r.created_at, members: HashMap::new() };
    state.groups.insert(r.group_id, info);
    Ok(())
}

fn check_member(state: &mut State, o: &ValidateOptions, line: u64, r: GroupMemberRecord) -> Result<(), FieldError> {
    group_id("group_id", &r.group_id)?;
    user_id("user_id", &r.user_id)?;
    if let Some(t) = r.joined_at {
        not_future("joined_at", t, o)?;
    }
    account_exists(state, "user_id", &r.user_id)?;
    let group = accepted_group(state, "group_id", &r.group_id)?;
    if let Some(t) = r.joined_at {
        if t < group.created_at {
            return Err(FieldError::new(
                "joined_at",
                format!("{t} is before the group was created ({})", group.created_at),
            ));
        }
    }
    if r.role == Some(MemberRole::Owner) && group.owner.as_deref() != Some(r.user_id.as_str()) {
        let owner = group.owner.as_deref().map_or("no owner".to_owned(), |o| format!("owner {o:?}"));
        return Err(FieldError::new("role", format!("\"owner\", but the group has {owner}")));
    }
    if group.members.contains_key(&r.user_id) {
        return Err(FieldError::new("user_id", format!("{:?} is already a member of {:?}", r.user_id, r.group_id)));
    }
    group.members.insert(r.user_id, (line, r.unread.is_some_and(|u| u > 0)));
    Ok(())
}

fn check_c2c_message(state: &mut State, o: &ValidateOptions, _: u64, r: C2cMessageRecord) -> Result<(), FieldError> {
    not_empty("id", &r.id)?;
    user_id("from", &r.from)?;
    user_id("to", &r.to)?;
    not_future("sent_at", r.sent_at, o)?;
    if r.sent_at.as_millis() < 0 {
        return Err(FieldError::new("sent_at", "is before 1970"));
    }
    check_body(&r.body)?;
    if r.from == r.to {
        return Err(FieldError::new("to", "a 1:1 message needs two different users"));
    }
    account_exists(state, "from", &r.from)?;
    account_exists(state, "to", &r.to)?;
    if !state.c2c_ids.insert(r.id.clone().into_boxed_str()) {
        return Err(FieldError::new("id", format!("duplicate message id {:?}", r.id)));
    }
    Ok(())
}

fn check_c2c_read(state: &mut State, o: &ValidateOptions, _: u64, r: C2cReadRecord) -> Result<(), FieldError> {
    user_id("user_id", &r.user_id)?;
    user_id("peer_id", &r.peer_id)?;
    not_future("read_at", r.read_at, o)?;
    if r.user_id == r.peer_id {
        return Err(FieldError::new("peer_id", "a read mark needs two different users"));
    }
    account_exists(state, "user_id", &r.user_id)?;
    account_exists(state, "peer_id", &r.peer_id)?;
    if !state.reads.insert((r.user_id.clone(), r.peer_id.clone())) {
        return Err(FieldError::new("peer_id", format!("duplicate read mark of {:?} for {:?}", r.user_id, r.peer_id)));
    }
    Ok(())
}

fn check_group_message(
    state: &mut State,
    o: &ValidateOptions,
    _: u64,
    r: GroupMessageRecord,
) -> Result<(), FieldError> {
    not_empty("id", &r.id)?;
    group_id("group_id", &r.group_id)?;
    user_id("from", &r.from)?;
    not_future("sent_at", r.sent_at, o)?;
    check_body(&r.body)?;
    let group = accepted_group(state, "group_id", &r.group_id)?;
    if !group.members.contains_key(&r.from) {
        return Err(FieldError::new("from", format!("{:?} is not a member of {:?}", r.from, r.group_id)));
    }
    // IM refuses a group message sent at or before the group's creation second.
    if r.sent_at.as_secs() <= group.created_at.as_secs() {
        return Err(FieldError::new(
            "sent_at",
            format!("{} is not after the group was created ({})", r.sent_at, group.created_at),
        ));
    }
    if !state.group_message_ids.insert(r.id.clone().into_boxed_str()) {
        return Err(FieldError::new("id", format!("duplicate message id {:?}", r.id)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_size_counts_the_im_shape() {
        let small = vec![Element::Text { text: "hi".into() }];
        assert_eq!(im_body_size(&small), r#"[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]"#.len());
        // JSON escaping counts: a quote costs two bytes on the wire.
        let quoted = vec![Element::Text { text: "\"".into() }];
        assert_eq!(im_body_size(&quoted), im_body_size(&small));
        let big = vec![Element::Text { text: "x".repeat(MAX_IM_BODY_BYTES) }];
        assert!(im_body_size(&big) > MAX_IM_BODY_BYTES);
        // An image repeats its URL three times (original, large, thumbnail).
        let url = "u".repeat(1000);
        let image = vec![Element::Image { url: url.clone(), width: None, height: None, size: None }];
        assert!(im_body_size(&image) > 3000);
    }

    #[test]
    fn group_types() {
        assert_eq!(parse_group_type("Community"), Ok(GroupType::Community));
        assert!(parse_group_type("AVChatRoom").is_err_and(|e| e.message.contains("AVChatRoom")));
        assert!(parse_group_type("private").is_err());
    }
}
