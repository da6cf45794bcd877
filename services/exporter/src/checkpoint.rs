//! How far an export got: `DIR/.from-im.checkpoint.json`, written atomically after the files it describes
//! are on disk, so `kill -9` at any instant leaves a state a rerun continues from.
//!
//! The export runs in phases, each a deterministic list of units (a chunk of accounts, a user, a
//! conversation, a group) whose output is appended in unit order. The checkpoint holds the phase, how many of
//! its units are done, the length of every file at that point, and what earlier phases found that later ones
//! need (the existing users, the conversations, the groups). A rerun truncates every file to its recorded
//! length — dropping whatever the killed run appended after its last checkpoint — and goes on with the next
//! unit, so the result is byte for byte the one an uninterrupted run writes, with no line twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use imbridge_core::export::ExportKind;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::report::ExportReport;

/// The checkpoint's file name in the export directory (the importer reads only the record files).
pub const CHECKPOINT_FILE: &str = ".from-im.checkpoint.json";

/// Bumped when the checkpoint's meaning changes; an older one is refused rather than misread.
const VERSION: u32 = 1;

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `account_check` + `portrait_get`, 100 accounts a unit.
    Accounts,
    /// `friend_get`, a user a unit.
    Friends,
    /// `recentcontact/get_list`, a user a unit: finds the 1:1 conversations.
    Conversations,
    /// `admin_getroammsg` + `get_c2c_unread_msg_num`, a conversation a unit.
    C2c,
    /// `get_appid_group_list`: one unit.
    GroupList,
    /// `get_group_info`, 50 groups a unit.
    Groups,
    /// `get_group_member_info`, a group a unit.
    Members,
    /// `group_msg_get_simple`, a group a unit.
    GroupMessages,
    Done,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Accounts,
        Phase::Friends,
        Phase::Conversations,
        Phase::C2c,
        Phase::GroupList,
        Phase::Groups,
        Phase::Members,
        Phase::GroupMessages,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Accounts => "accounts",
            Phase::Friends => "friends",
            Phase::Conversations => "conversations",
            Phase::C2c => "c2c history",
            Phase::GroupList => "group list",
            Phase::Groups => "groups",
            Phase::Members => "group members",
            Phase::GroupMessages => "group history",
            Phase::Done => "done",
        }
    }

    pub fn next(self) -> Phase {
        Phase::ALL.iter().copied().find(|p| *p > self).unwrap_or(Phase::Done)
    }
}

/// A group the export holds, with what its members and history need to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// The newest MsgSeq (`NextMsgSeq − 1`); `None` for groups without read positions (ChatRoom).
    pub last_seq: Option<u64>,
    /// `NextMsgSeq − 1`, whatever the type: where the history's seq range ends.
    pub top_seq: u64,
}

/// The checkpoint. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The old app; a checkpoint of another app is refused.
    pub sdkappid: u64,
    /// SHA-256 of the accounts list; a changed list is refused.
    pub accounts_digest: String,
    pub phase: Phase,
    /// Units of `phase` done.
    pub done: u64,
    /// Length of every record file when `done` was reached.
    pub lengths: BTreeMap<ExportKind, u64>,
    /// Accounts that exist in the old app, in the list's order.
    pub users: Vec<String>,
    /// 1:1 conversations found, each once (the smaller user id first), with the newest message time the
    /// conversation list gave (Unix seconds).
    pub pairs: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every group id of the app, sorted.
    pub group_ids: Vec<String>,
    /// Groups exported.
    pub groups: BTreeMap<String, GroupMeta>,
    /// What the old app could not give, so far.
    pub report: ExportReport,
}

impl Checkpoint {
    pub fn new(sdkappid: u64, accounts_digest: String) -> Self {
        Self {
            version: VERSION,
            sdkappid,
            accounts_digest,
            phase: Phase::Accounts,
            done: 0,
            lengths: BTreeMap::new(),
            users: Vec::new(),
            pairs: BTreeMap::new(),
            group_ids: Vec::new(),
            groups: BTreeMap::new(),
            report: ExportReport::default(),
        }
    }

    /// The checkpoint in `dir`, if any; refused when it belongs to another app or accounts list.
    pub fn load(dir: &Path, sdkappid: u64, accounts_digest: &str) -> Result<Option<Self>, Error> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let cp: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| Error::Checkpoint(format!("{} is unreadable: {e}", path.display())))?;
        if cp.version != VERSION {
            return Err(Error::Checkpoint(format!("{} has version {}, not {VERSION}", path.display(), cp.version)));
        }
        if cp.sdkappid != sdkappid || cp.accounts_digest != accounts_digest {
            return Err(Error::Checkpoint(format!(
                "{} belongs to an export of another app or accounts list (SDKAppID {}); \
                 export into an empty directory or delete it",
                path.display(),
                cp.sdkappid
            )));
        }
        Ok(Some(cp))
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let text = serde_json::to_vec(self).map_err(|e| Error::Checkpoint(e.to_string()))?;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }
}

/// The record files, opened for appending after being cut back to a checkpoint's lengths.
#[derive(Debug)]
pub struct Files {
    files: BTreeMap<ExportKind, (PathBuf, File, u64)>,
}

impl Files {
    /// Opens every record file in `dir`, cut to `lengths` (absent: empty).
    pub fn open(dir: &Path, lengths: &BTreeMap<ExportKind, u64>) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = BTreeMap::new();
        for kind in ExportKind::ALL {
            let path = dir.join(kind.file_name());
            let len = lengths.get(&kind).copied().unwrap_or(0);
            let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            let actual = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            if actual < len {
                return Err(Error::Checkpoint(format!(
                    "{} is {actual} bytes, shorter than the {len} the checkpoint recorded",
                    path.display()
                )));
            }
            f.set_len(len).map_err(|e| Error::io(&path, e))?;
            files.insert(kind, (path, f, len));
        }
        Ok(Self { files })
    }

    /// Appends lines (each already serialized, without the newline).
    pub fn append(&mut self, kind: ExportKind, lines: &[String]) -> Result<(), Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let Some((path, f, len)) = self.files.get_mut(&kind) else { return Ok(()) };
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf).map_err(|e| Error::io(path, e))?;
        *len += buf.len() as u64;
        Ok(())
    }

    /// Makes everything appended durable and returns the lengths to record.
    pub fn sync(&mut self) -> Result<BTreeMap<ExportKind, u64>, Error> {
        let mut out = BTreeMap::new();
        for (kind, (path, f, len)) in &mut self.files {
            f.sync_data().map_err(|e| Error::io(path, e))?;
            out.insert(*kind, *len);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_cuts_what_the_checkpoint_does_not_cover() {
        let dir = tempfile::tempdir().expect("dir");
        let mut f = Files::open(dir.path(), &BTreeMap::new()).expect("open");
        f.append(ExportKind::Accounts, &["{\"user_id\":\"a\"}".into()]).expect("append");
        let lengths = f.sync().expect("sync");
        f.append(ExportKind::Accounts, &["{\"user_id\":\"b\"}".into()]).expect("append");
        f.sync().expect("sync");
        drop(f);
        let _again = Files::open(dir.path(), &lengths).expect("reopen");
        let text = std::fs::read_to_string(dir.path().join("accounts.ndjson")).expect("read");
        assert_eq!(text, "{\"user_id\":\"a\"}\n");
    }

    #[test]
    fn a_checkpoint_of_another_app_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        Checkpoint::new(1, "x".into()).save(dir.path()).expect("save");
        assert!(Checkpoint::load(dir.path(), 1, "x").expect("load").is_some());
        assert!(Checkpoint::load(dir.path(), 2, "x").is_err());
        assert!(Checkpoint::load(dir.path(), 1, "y").is_err());
        assert_eq!(Phase::Accounts.next(), Phase::Friends);
        assert_eq!(Phase::GroupMessages.next(), Phase::Done);
    }
}
