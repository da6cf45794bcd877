//! The emulator's data as a legacy export (issue 4's NDJSON format), and back.
//!
//! [`write_export`] writes one file per record kind (`accounts.ndjson`, `profiles.ndjson`, `friends.ndjson`,
//! `c2c_messages.ndjson`, `c2c_reads.ndjson`, `groups.ndjson`, `group_members.ndjson`,
//! `group_messages.ndjson`) with times as Unix milliseconds and messages in conversation order.
//! [`read_export`] loads such a directory into an empty state (seeding), so `seed → export` reproduces the
//! input records: the round trip the tests check.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use imbridge_core::event::{ApplyJoin, GroupType, ImportAccount, ImportC2cRead, ImportProfile, MemberRole};
use imbridge_core::{ConversationKey, Element, GroupId, TimestampMs, UserId};
use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;
use crate::state::{Friend, Group, Member, Message, State, User};

// A record that has exactly the fields of its import event is that event's payload type, so the two cannot drift.

/// `accounts.ndjson`.
pub type AccountRecord = ImportAccount;

/// `profiles.ndjson`.
pub type ProfileRecord = ImportProfile;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendRecord {
    pub user_id: UserId,
    pub friend_id: UserId,
    #[serde(flatten)]
    pub entry: Friend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2cMessageRecord {
    pub id: String,
    pub from: UserId,
    pub to: UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
}

/// `c2c_reads.ndjson`.
pub type C2cReadRecord = ImportC2cRead;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group_id: GroupId,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_join: Option<ApplyJoin>,
    pub created_at: TimestampMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMemberRecord {
    pub group_id: GroupId,
    pub user_id: UserId,
    #[serde(default)]
    pub role: MemberRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMessageRecord {
    pub id: String,
    pub group_id: GroupId,
    pub from: UserId,
    pub sent_at: TimestampMs,
    pub body: Vec<Element>,
}

/// Lines written per file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCounts {
    pub accounts: u64,
    pub profiles: u64,
    pub friends: u64,
    pub c2c_messages: u64,
    pub c2c_reads: u64,
    pub groups: u64,
    pub group_members: u64,
    pub group_messages: u64,
}

struct Ndjson {
    path: PathBuf,
    out: BufWriter<File>,
    lines: u64,
}

impl Ndjson {
    fn create(dir: &Path, name: &str) -> Result<Self, EmulatorError> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(|source| EmulatorError::Io { path: path.clone(), source })?;
        Ok(Self { path, out: BufWriter::new(file), lines: 0 })
    }

    fn write<T: Serialize>(&mut self, record: &T) -> Result<(), EmulatorError> {
        let io = |source| EmulatorError::Io { path: self.path.clone(), source };
        serde_json::to_writer(&mut self.out, record).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.lines += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, EmulatorError> {
        self.out.flush().map_err(|source| EmulatorError::Io { path: self.path.clone(), source })?;
        Ok(self.lines)
    }
}

/// Writes the whole state as an export into `dir` (created if missing; existing files are replaced).
pub fn write_export(state: &State, dir: &Path) -> Result<ExportCounts, EmulatorError> {
    std::fs::create_dir_all(dir).map_err(|source| EmulatorError::Io { path: dir.to_path_buf(), source })?;
    let mut counts = ExportCounts::default();

    let mut f = Ndjson::create(dir, "accounts.ndjson")?;
    for u in state.users.values() {
        f.write(&AccountRecord { user_id: u.user_id.clone(), nick: u.nick.clone(), face_url: u.face_url.clone() })?;
    }
    counts.accounts = f.finish()?;

    let mut f = Ndjson::create(dir, "profiles.ndjson")?;
    for p in state.users.values().filter_map(|u| u.profile.as_ref()) {
        f.write(p)?;
    }
    counts.profiles = f.finish()?;

    let mut f = Ndjson::create(dir, "friends.ndjson")?;
    for (user, list) in &state.friends {
        for (friend, e) in list {
            f.write(&FriendRecord { user_id: user.clone(), friend_id: friend.clone(), entry: e.clone() })?;
        }
    }
    counts.friends = f.finish()?;

    let mut f = Ndjson::create(dir, "c2c_messages.ndjson")?;
    for m in state.c2c.values().flatten() {
        let Some(to) = &m.to else { continue };
        f.write(&C2cMessageRecord {
            id: m.id.clone(),
            from: m.from.clone(),
            to: to.clone(),
            sent_at: m.time,
            body: m.body.clone(),
            custom_data: m.custom_data.clone(),
        })?;
    }
    counts.c2c_messages = f.finish()?;

    let mut f = Ndjson::create(dir, "c2c_reads.ndjson")?;
    for (user, peers) in &state.reads {
        for (peer, at) in peers {
            f.write(&C2cReadRecord { user_id: user.clone(), peer_id: peer.clone(), read_at: *at })?;
        }
    }
    counts.c2c_reads = f.finish()?;

    let (mut fg, mut fm, mut fmsg) = (
        Ndjson::create(dir, "groups.ndjson")?,
        Ndjson::create(dir, "group_members.ndjson")?,
        Ndjson::create(dir, "group_messages.ndjson")?,
    );
    for g in state.groups.values() {
        fg.write(&GroupRecord {
            group_id: g.group_id.clone(),
            group_type: g.group_type,
            name: g.name.clone(),
            owner: g.owner.clone(),
            introduction: g.introduction.clone(),
            notification: g.notification.clone(),
            face_url: g.face_url.clone(),
            max_members: g.max_members,
            apply_join: g.apply_join,
            created_at: g.created_at,
        })?;
        for (u, m) in &g.members {
            fm.write(&GroupMemberRecord {
                group_id: g.group_id.clone(),
                user_id: u.clone(),
                role: m.role,
                joined_at: m.joined_at,
                unread: Some(m.unread),
            })?;
        }
        for m in &g.messages {
            fmsg.write(&GroupMessageRecord {
                id: m.id.clone(),
                group_id: g.group_id.clone(),
                from: m.from.clone(),
                sent_at: m.time,
                body: m.body.clone(),
            })?;
        }
    }
    counts.groups = fg.finish()?;
    counts.group_members = fm.finish()?;
    counts.group_messages = fmsg.finish()?;
    Ok(counts)
}

/// Calls `each` for every record of `dir/name`; an absent file has none.
fn for_each_line<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
    mut each: impl FnMut(T) -> Result<(), String>,
) -> Result<(), EmulatorError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(EmulatorError::Io { path, source }),
    };
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EmulatorError::Io { path: path.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let seed_err = |reason: String| EmulatorError::Seed { file: name.to_owned(), line: i as u64 + 1, reason };
        imbridge_core::json::check_object_text(line.as_bytes()).map_err(|e| seed_err(format!("the line is {e}")))?;
        let record: T = serde_json::from_str(&line).map_err(|e| seed_err(e.to_string()))?;
        each(record).map_err(seed_err)?;
    }
    Ok(())
}

fn check_user(what: &str, u: &UserId) -> Result<(), String> {
    UserId::parse(u.as_str()).map(drop).map_err(|e| format!("{what}: {e}"))
}

/// Loads an export directory into `state` (meant to be empty). History is not a change, so nothing is
/// queued as a webhook. Ids shaped like the emulator's own (`<prefix>-<n>`) are reserved.
pub fn read_export(state: &mut State, dir: &Path, id_prefix: &str) -> Result<ExportCounts, EmulatorError> {
    if !dir.is_dir() {
        return Err(EmulatorError::Config(format!("seed directory {} does not exist", dir.display())));
    }
    let mut counts = ExportCounts::default();

    for_each_line(dir, "accounts.ndjson", |r: AccountRecord| {
        check_user("user_id", &r.user_id)?;
        let u = state.users.entry(r.user_id.clone()).or_insert_with(|| User::new(r.user_id, TimestampMs(0)));
        u.nick = r.nick;
        u.face_url = r.face_url;
        counts.accounts += 1;
        Ok(())
    })?;
    for_each_line(dir, "profiles.ndjson", |r: ProfileRecord| {
        let u = state.users.get_mut(&r.user_id).ok_or_else(|| format!("user_id: no account {}", r.user_id))?;
        u.profile = Some(r);
        counts.profiles += 1;
        Ok(())
    })?;
    for_each_line(dir, "friends.ndjson", |r: FriendRecord| {
        for (what, u) in [("user_id", &r.user_id), ("friend_id", &r.friend_id)] {
            if !state.users.contains_key(u) {
                return Err(format!("{what}: no account {u}"));
            }
        }
        state.friends.entry(r.user_id).or_default().insert(r.friend_id, r.entry);
        counts.friends += 1;
        Ok(())
    })?;
    for_each_line(dir, "c2c_messages.ndjson", |r: C2cMessageRecord| {
        for (what, u) in [("from", &r.from), ("to", &r.to)] {
            if !state.users.contains_key(u) {
                return Err(format!("{what}: no account {u}"));
            }
        }
        if r.body.is_empty() {
            return Err("body has no elements".into());
        }
        state.reserve_id(id_prefix, &r.id);
        state.c2c.entry(ConversationKey::c2c(&r.from, &r.to)).or_default().push(Message {
            id: r.id,
            from: r.from,
            to: Some(r.to),
            group_id: None,
            time: r.sent_at,
            body: r.body,
            custom_data: r.custom_data,
            origin: None,
        });
        counts.c2c_messages += 1;
        Ok(())
    })?;
    for_each_line(dir, "c2c_reads.ndjson", |r: C2cReadRecord| {
        state.reads.entry(r.user_id).or_default().insert(r.peer_id, r.read_at);
        counts.c2c_reads += 1;
        Ok(())
    })?;
    for_each_line(dir, "groups.ndjson", |r: GroupRecord| {
        GroupId::parse(r.group_id.as_str()).map_err(|e| format!("group_id: {e}"))?;
        if state.groups.contains_key(&r.group_id) {
            return Err(format!("group_id: {} appears twice", r.group_id));
        }
        state.groups.insert(
            r.group_id.clone(),
            Group {
                group_id: r.group_id,
                group_type: r.group_type,
                name: r.name,
                owner: r.owner,
                introduction: r.introduction,
                notification: r.notification,
                face_url: r.face_url,
                max_members: r.max_members,
                apply_join: r.apply_join,
                created_at: r.created_at,
                profile_updated_at: None,
                origin: None,
                members: BTreeMap::new(),
                messages: Vec::new(),
            },
        );
        counts.groups += 1;
        Ok(())
    })?;
    for_each_line(dir, "group_members.ndjson", |r: GroupMemberRecord| {
        let g = state.groups.get_mut(&r.group_id).ok_or_else(|| format!("group_id: no group {}", r.group_id))?;
        g.members.insert(r.user_id, Member { role: r.role, joined_at: r.joined_at, unread: r.unread.unwrap_or(0) });
        counts.group_members += 1;
        Ok(())
    })?;
    for_each_line(dir, "group_messages.ndjson", |r: GroupMessageRecord| {
        state.reserve_id(id_prefix, &r.id);
        let g = state.groups.get_mut(&r.group_id).ok_or_else(|| format!("group_id: no group {}", r.group_id))?;
        if r.body.is_empty() {
            return Err("body has no elements".into());
        }
        g.messages.push(Message {
            id: r.id,
            from: r.from,
            to: None,
            group_id: Some(r.group_id),
            time: r.sent_at,
            body: r.body,
            custom_data: None,
            origin: None,
        });
        counts.group_messages += 1;
        Ok(())
    })?;
    // An export lists messages in any order; a conversation is kept in time order (stable, so the file's
    // order breaks ties, which is the legacy order for same-millisecond messages).
    for msgs in state.c2c.values_mut() {
        msgs.sort_by_key(|m| m.time);
    }
    for g in state.groups.values_mut() {
        g.messages.sort_by_key(|m| m.time);
    }
    Ok(counts)
}
