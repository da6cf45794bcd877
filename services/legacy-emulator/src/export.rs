//! The emulator's data as a legacy export (the NDJSON format of `schemas/export/`), and back.
//!
//! [`write_export`] writes one file per record kind (`accounts.ndjson`, `profiles.ndjson`, `friends.ndjson`,
//! `c2c_messages.ndjson`, `c2c_reads.ndjson`, `groups.ndjson`, `group_members.ndjson`,
//! `group_messages.ndjson`) with times as Unix milliseconds and messages in conversation order.
//! [`read_export`] loads such a directory into an empty state (seeding), so `seed → export` reproduces the
//! input records: the round trip the tests check. Both use the export's own record types
//! ([`imbridge_core::export`], in the domain form), the ones the importer reads, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use imbridge_core::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, ExportKind, FriendRecord, GroupMemberRecord, GroupMessageRecord,
    GroupRecord, ProfileRecord, Typed,
};
use imbridge_core::{ConversationKey, GroupId, TimestampMs, UserId};
use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;
use crate::state::{Group, Member, Message, State, User};

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
    fn create(dir: &Path, kind: ExportKind) -> Result<Self, EmulatorError> {
        let path = dir.join(kind.file_name());
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

    let mut f = Ndjson::create(dir, ExportKind::Accounts)?;
    for u in state.users.values() {
        f.write(&AccountRecord::<Typed> {
            user_id: u.user_id.clone(),
            nick: u.nick.clone(),
            face_url: u.face_url.clone(),
        })?;
    }
    counts.accounts = f.finish()?;

    let mut f = Ndjson::create(dir, ExportKind::Profiles)?;
    for p in state.users.values().filter_map(|u| u.profile.as_ref()) {
        f.write(p)?;
    }
    counts.profiles = f.finish()?;

    let mut f = Ndjson::create(dir, ExportKind::Friends)?;
    for record in state.friends.values().flat_map(BTreeMap::values) {
        f.write(record)?;
    }
    counts.friends = f.finish()?;

    let mut f = Ndjson::create(dir, ExportKind::C2cMessages)?;
    for m in state.c2c.values().flatten() {
        let Some(to) = &m.to else { continue };
        f.write(&C2cMessageRecord::<Typed> {
            id: m.id.clone(),
            from: m.from.clone(),
            to: to.clone(),
            sent_at: m.time,
            body: m.body.clone(),
            custom_data: m.custom_data.clone(),
        })?;
    }
    counts.c2c_messages = f.finish()?;

    let mut f = Ndjson::create(dir, ExportKind::C2cReads)?;
    for (user, peers) in &state.reads {
        for (peer, at) in peers {
            f.write(&C2cReadRecord::<Typed> { user_id: user.clone(), peer_id: peer.clone(), read_at: *at })?;
        }
    }
    counts.c2c_reads = f.finish()?;

    let (mut fg, mut fm, mut fmsg) = (
        Ndjson::create(dir, ExportKind::Groups)?,
        Ndjson::create(dir, ExportKind::GroupMembers)?,
        Ndjson::create(dir, ExportKind::GroupMessages)?,
    );
    for g in state.groups.values() {
        let group_id = &g.record.group_id;
        fg.write(&g.record)?;
        for (u, m) in &g.members {
            fm.write(&GroupMemberRecord::<Typed> {
                group_id: group_id.clone(),
                user_id: u.clone(),
                role: Some(m.role),
                joined_at: m.joined_at,
                unread: Some(m.unread),
            })?;
        }
        for m in &g.messages {
            fmsg.write(&GroupMessageRecord::<Typed> {
                id: m.id.clone(),
                group_id: group_id.clone(),
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
    kind: ExportKind,
    mut each: impl FnMut(T) -> Result<(), String>,
) -> Result<(), EmulatorError> {
    let name = kind.file_name();
    let path = dir.join(&name);
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
        let seed_err = |reason: String| EmulatorError::Seed { file: name.clone(), line: i as u64 + 1, reason };
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

    for_each_line(dir, ExportKind::Accounts, |r: AccountRecord<Typed>| {
        check_user("user_id", &r.user_id)?;
        let u = state.users.entry(r.user_id.clone()).or_insert_with(|| User::new(r.user_id, TimestampMs(0)));
        u.nick = r.nick;
        u.face_url = r.face_url;
        counts.accounts += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::Profiles, |r: ProfileRecord<Typed>| {
        let u = state.users.get_mut(&r.user_id).ok_or_else(|| format!("user_id: no account {}", r.user_id))?;
        u.profile = Some(r);
        counts.profiles += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::Friends, |r: FriendRecord<Typed>| {
        for (what, u) in [("user_id", &r.user_id), ("friend_id", &r.friend_id)] {
            if !state.users.contains_key(u) {
                return Err(format!("{what}: no account {u}"));
            }
        }
        state.friends.entry(r.user_id.clone()).or_default().insert(r.friend_id.clone(), r);
        counts.friends += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::C2cMessages, |r: C2cMessageRecord<Typed>| {
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
            time: r.sent_at,
            body: r.body,
            custom_data: r.custom_data,
            origin: None,
        });
        counts.c2c_messages += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::C2cReads, |r: C2cReadRecord<Typed>| {
        state.reads.entry(r.user_id).or_default().insert(r.peer_id, r.read_at);
        counts.c2c_reads += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::Groups, |r: GroupRecord<Typed>| {
        GroupId::parse(r.group_id.as_str()).map_err(|e| format!("group_id: {e}"))?;
        if state.groups.contains_key(&r.group_id) {
            return Err(format!("group_id: {} appears twice", r.group_id));
        }
        state.groups.insert(
            r.group_id.clone(),
            Group {
                record: r,
                profile_updated_at: None,
                origin: None,
                members: BTreeMap::new(),
                departed: BTreeMap::new(),
                messages: Vec::new(),
            },
        );
        counts.groups += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::GroupMembers, |r: GroupMemberRecord<Typed>| {
        let g = state.groups.get_mut(&r.group_id).ok_or_else(|| format!("group_id: no group {}", r.group_id))?;
        g.members.insert(
            r.user_id,
            Member {
                role: r.role.unwrap_or_default(),
                joined_at: r.joined_at,
                unread: r.unread.unwrap_or(0),
                origin: None,
            },
        );
        counts.group_members += 1;
        Ok(())
    })?;
    for_each_line(dir, ExportKind::GroupMessages, |r: GroupMessageRecord<Typed>| {
        state.reserve_id(id_prefix, &r.id);
        let g = state.groups.get_mut(&r.group_id).ok_or_else(|| format!("group_id: no group {}", r.group_id))?;
        if r.body.is_empty() {
            return Err("body has no elements".into());
        }
        g.messages.push(Message {
            id: r.id,
            from: r.from,
            to: None,
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
