//! `imbridge export from-im DIR`: the phases (see [`Phase`]), each a list of units read concurrently within
//! the old app's quotas and written in unit order, checkpointed so a rerun after `kill -9` continues where
//! the last checkpoint left off and writes the same files.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use imbridge_core::TimestampMs;
use imbridge_core::event::GroupType;
use imbridge_core::export::{AccountRecord, ExportKind};
use imbridge_im::types::account::{ACCOUNT_IMPORTED, PORTRAIT_GET_MAX, PortraitGetReq};
use imbridge_im::types::c2c::GetC2cUnreadMsgNumReq;
use imbridge_im::types::group::{GET_GROUP_INFO_MAX, GROUP_PROFILE_FIELDS, GroupInfoFilter};
use imbridge_im::types::recentcontact::SESSION_C2C;
use imbridge_im::{Api, ImClient};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::checkpoint::{Checkpoint, Files, GroupMeta, Phase};
use crate::convert;
use crate::progress::{Progress, ProgressMode, Say};
use crate::report::{ExportReport, LostHistory, SeqHole, holes};

/// How often, at most, the checkpoint is written while a phase runs (and always at its end).
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// How the export runs.
#[derive(Clone)]
pub struct ExportOptions {
    pub concurrency: usize,
    /// Custom profile field names (without `Tag_Profile_Custom_`).
    pub custom_profile_tags: Vec<String>,
    pub progress: ProgressMode,
    pub progress_every: Duration,
    pub say: Say,
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("concurrency", &self.concurrency)
            .field("custom_profile_tags", &self.custom_profile_tags)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Reads the operator's accounts list: one user id a line (blank lines and `#` comments skipped), or NDJSON
/// lines with a `user_id` (an `accounts.ndjson` of an earlier export). Each id once, in the list's order.
pub fn read_accounts(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::Accounts(format!("{}:{}: {e}", path.display(), i + 1)))?;
            v["user_id"]
                .as_str()
                .ok_or_else(|| Error::Accounts(format!("{}:{}: no \"user_id\"", path.display(), i + 1)))?
                .to_owned()
        } else {
            line.to_owned()
        };
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    Ok(out)
}

/// What one unit found: lines to append and what later phases need.
#[derive(Debug, Default)]
struct Unit {
    lines: Vec<(ExportKind, String)>,
    users: Vec<String>,
    pairs: Vec<(String, String, u64)>,
    group_ids: Vec<String>,
    groups: Vec<(String, GroupMeta)>,
    report: Vec<Finding>,
}

#[derive(Debug)]
enum Finding {
    MissingAccount(String),
    Lost(LostHistory),
    Hole(SeqHole),
    Recalled(u64),
    Notices(u64),
    Skip(String, String),
}

impl Unit {
    fn line(&mut self, kind: ExportKind, record: &impl Serialize) {
        // Records are plain data with string keys: serializing cannot fail.
        self.lines.push((kind, serde_json::to_string(record).unwrap_or_default()));
    }
}

struct Run<'a> {
    dir: &'a Path,
    cp: Checkpoint,
    files: Files,
    progress: Progress,
    last_save: Instant,
    started: Instant,
    seconds_before: f64,
}

impl Run<'_> {
    fn absorb(&mut self, unit: Unit) -> Result<(), Error> {
        let mut by_kind: BTreeMap<ExportKind, Vec<String>> = BTreeMap::new();
        for (kind, line) in unit.lines {
            by_kind.entry(kind).or_default().push(line);
        }
        for (kind, lines) in by_kind {
            self.files.append(kind, &lines)?;
            self.cp.report.count_written(kind.as_str(), lines.len() as u64);
        }
        self.cp.users.extend(unit.users);
        for (a, b, t) in unit.pairs {
            let at = self.cp.pairs.entry(a).or_default().entry(b).or_default();
            *at = (*at).max(t);
        }
        self.cp.group_ids.extend(unit.group_ids);
        self.cp.groups.extend(unit.groups);
        for f in unit.report {
            let r = &mut self.cp.report;
            match f {
                Finding::MissingAccount(id) => r.missing_account(id),
                Finding::Lost(l) => r.lost_history(l),
                Finding::Hole(h) => r.hole(h),
                Finding::Recalled(n) => r.recalled_group_messages += n,
                Finding::Notices(n) => r.group_notices += n,
                Finding::Skip(what, why) => r.skip(what, why),
            }
        }
        self.cp.done += 1;
        Ok(())
    }

    fn save(&mut self) -> Result<(), Error> {
        self.cp.lengths = self.files.sync()?;
        self.cp.report.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        self.cp.save(self.dir)?;
        self.last_save = Instant::now();
        Ok(())
    }

    /// Runs the current phase over `units` (skipping those done), then moves to the next phase.
    async fn phase<U, F, Fut>(&mut self, units: Vec<U>, concurrency: usize, f: F) -> Result<(), Error>
    where
        F: Fn(U) -> Fut,
        Fut: Future<Output = Result<Unit, Error>>,
    {
        let total = units.len() as u64;
        let skip = usize::try_from(self.cp.done).unwrap_or(usize::MAX);
        self.progress.start(self.cp.phase, self.cp.done.min(total), total);
        tracing::info!(phase = self.cp.phase.as_str(), done = self.cp.done, total, "export phase");
        // `buffered` keeps unit order, so the files are the same whatever the concurrency or the resumes.
        let mut results = stream::iter(units.into_iter().skip(skip)).map(f).buffered(concurrency.max(1));
        while let Some(unit) = results.next().await {
            self.absorb(unit?)?;
            self.progress.set(self.cp.done);
            if self.last_save.elapsed() >= SAVE_EVERY {
                self.save()?;
            }
        }
        self.progress.finish_bar();
        self.cp.phase = self.cp.phase.next();
        self.cp.done = 0;
        self.save()
    }
}

/// The APIs an export calls on the old app, one phase after another: what it announces when it shares the old
/// app's quotas with the other imbridge processes of that app (as history, the lowest priority).
pub const EXPORT_APIS: [Api; 10] = [
    Api::AccountCheck,
    Api::PortraitGet,
    Api::FriendGet,
    Api::RecentContactGetList,
    Api::AdminGetRoamMsg,
    Api::GetC2cUnreadMsgNum,
    Api::GetAppidGroupList,
    Api::GetGroupInfo,
    Api::GetGroupMemberInfo,
    Api::GroupMsgGetSimple,
];

/// Exports the old app `im` into `dir` for the accounts in `accounts`; resumes from `dir`'s checkpoint.
pub async fn export_from_im(
    dir: &Path,
    accounts: &[String],
    im: &ImClient,
    o: &ExportOptions,
) -> Result<ExportReport, Error> {
    let digest = hex::encode(Sha256::digest(accounts.join("\n").as_bytes()));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cp = match Checkpoint::load(dir, im.sdkappid(), &digest)? {
        Some(cp) => {
            (o.say)(&format!("export: resuming at {} ({} done)", cp.phase.as_str(), cp.done));
            cp
        }
        None => Checkpoint::new(im.sdkappid(), digest),
    };
    let files = Files::open(dir, &cp.lengths)?;
    let seconds_before = cp.report.seconds;
    let mut run = Run {
        dir,
        cp,
        files,
        progress: Progress::new(o.progress, o.say.clone(), o.progress_every),
        last_save: Instant::now(),
        started: Instant::now(),
        seconds_before,
    };
    let n = o.concurrency;
    // Any message IM holds, even one an emulated clock put ahead of ours.
    let far_future = TimestampMs::now().as_secs() + 10 * 365 * 86_400;
    while run.cp.phase != Phase::Done {
        match run.cp.phase {
            Phase::Accounts => {
                let chunks: Vec<Vec<String>> = accounts.chunks(PORTRAIT_GET_MAX).map(<[String]>::to_vec).collect();
                run.phase(chunks, n, |chunk| accounts_unit(im, chunk, &o.custom_profile_tags)).await?
            }
            Phase::Friends => {
                let users = run.cp.users.clone();
                run.phase(users, n, |u| friends_unit(im, u)).await?
            }
            Phase::Conversations => {
                let users = run.cp.users.clone();
                let known: std::collections::BTreeSet<String> = users.iter().cloned().collect();
                let known = &known;
                run.phase(users, n, |u| conversations_unit(im, u, known)).await?
            }
            Phase::C2c => {
                let pairs: Vec<(String, String, u64)> = run
                    .cp
                    .pairs
                    .iter()
                    .flat_map(|(a, peers)| peers.iter().map(move |(b, t)| (a.clone(), b.clone(), *t)))
                    .collect();
                run.phase(pairs, n, |(a, b, t)| c2c_unit(im, a, b, t, far_future)).await?
            }
            Phase::GroupList => run.phase(vec![()], 1, |()| group_list_unit(im)).await?,
            Phase::Groups => {
                let chunks: Vec<Vec<String>> =
                    run.cp.group_ids.chunks(GET_GROUP_INFO_MAX).map(<[String]>::to_vec).collect();
                run.phase(chunks, n, |chunk| groups_unit(im, chunk)).await?
            }
            Phase::Members => {
                let groups: Vec<(String, GroupMeta)> = run.cp.groups.clone().into_iter().collect();
                run.phase(groups, n, |(g, meta)| members_unit(im, g, meta)).await?
            }
            Phase::GroupMessages => {
                let groups: Vec<(String, GroupMeta)> = run.cp.groups.clone().into_iter().collect();
                run.phase(groups, n, |(g, meta)| group_messages_unit(im, g, meta)).await?
            }
            Phase::Done => {}
        }
    }
    Ok(run.cp.report)
}

async fn accounts_unit(im: &ImClient, chunk: Vec<String>, custom: &[String]) -> Result<Unit, Error> {
    let mut u = Unit::default();
    let checked = im.check_accounts(&chunk).await?;
    let exists = |id: &str| {
        checked.iter().any(|c| c.user_id == id && c.result_code == 0 && c.account_status == ACCOUNT_IMPORTED)
    };
    let (present, missing): (Vec<String>, Vec<String>) = chunk.into_iter().partition(|id| exists(id));
    u.report.extend(missing.into_iter().map(Finding::MissingAccount));
    if present.is_empty() {
        return Ok(u);
    }
    let mut tag_list: Vec<String> = convert::PROFILE_TAGS.iter().map(|t| (*t).to_owned()).collect();
    tag_list.extend(custom.iter().map(|c| format!("{}{c}", imbridge_im::types::account::tags::CUSTOM_PREFIX)));
    let resp = im.portrait_get(&PortraitGetReq { to_account: present.clone(), tag_list }).await?;
    for id in present {
        let profile = resp.user_profile_item.iter().find(|p| p.to_account == id && p.result_code == 0);
        match profile {
            Some(p) => {
                let (account, profile) = convert::account_and_profile(p, custom);
                u.line(ExportKind::Accounts, &account);
                if let Some(profile) = profile {
                    u.line(ExportKind::Profiles, &profile);
                }
            }
            None => {
                // The account exists (account_check said so) but its profile could not be read: keep the
                // account, say what is missing.
                let account: AccountRecord = AccountRecord { user_id: id.clone(), nick: None, face_url: None };
                u.line(ExportKind::Accounts, &account);
                u.report.push(Finding::Skip(format!("profile of {id}"), "portrait_get did not return it".into()));
            }
        }
        u.users.push(id);
    }
    Ok(u)
}

async fn friends_unit(im: &ImClient, user: String) -> Result<Unit, Error> {
    let mut u = Unit::default();
    for f in im.all_friends(&user).await? {
        u.line(ExportKind::Friends, &convert::friend(&user, &f));
    }
    Ok(u)
}

async fn conversations_unit(
    im: &ImClient,
    user: String,
    known: &std::collections::BTreeSet<String>,
) -> Result<Unit, Error> {
    let mut u = Unit::default();
    for item in im.recent_contacts(&user).await? {
        let Some(peer) = item.to_account.filter(|_| item.kind == SESSION_C2C) else { continue };
        if peer == user {
            continue;
        }
        if !known.contains(&peer) {
            u.report.push(Finding::Skip(
                format!("1:1 conversation {user} ↔ {peer}"),
                format!("{peer} is not an existing account of the accounts list"),
            ));
            continue;
        }
        let (a, b) = if user < peer { (user.clone(), peer) } else { (peer, user.clone()) };
        u.pairs.push((a, b, item.msg_time));
    }
    Ok(u)
}

async fn unread(im: &ImClient, user: &str, peer: &str) -> Result<u64, Error> {
    let req = GetC2cUnreadMsgNumReq { to_account: user.to_owned(), peer_account: Some(vec![peer.to_owned()]) };
    let resp = im.get_c2c_unread_msg_num(&req).await?;
    Ok(resp.c2c_unread_msg_num_list.iter().find(|p| p.peer_account == peer).map_or(0, |p| p.c2c_unread_msg_num))
}

async fn c2c_unit(im: &ImClient, a: String, b: String, listed: u64, until: i64) -> Result<Unit, Error> {
    let mut u = Unit::default();
    let history = im.c2c_history(&a, &b, 0, until).await?;
    let newest = history.last().map(|m| m.msg_time_stamp);
    if listed > 0 && newest.is_none_or(|t| t < i64::try_from(listed).unwrap_or(i64::MAX)) {
        u.report.push(Finding::Lost(LostHistory {
            user: a.clone(),
            peer: b.clone(),
            listed_msg_time: listed,
            newest_returned: newest,
        }));
    }
    for m in &history {
        match convert::c2c_message(m) {
            Ok(r) => u.line(ExportKind::C2cMessages, &r),
            Err(e) => u.report.push(Finding::Skip(format!("1:1 message {}", m.msg_key), e.to_string())),
        }
    }
    for (user, peer) in [(&a, &b), (&b, &a)] {
        let n = unread(im, user, peer).await?;
        if let Some(r) = convert::c2c_read(user, peer, &history, n) {
            u.line(ExportKind::C2cReads, &r);
        }
    }
    Ok(u)
}

async fn group_list_unit(im: &ImClient) -> Result<Unit, Error> {
    let mut ids = im.all_group_ids(None).await?;
    ids.sort();
    ids.dedup();
    Ok(Unit { group_ids: ids, ..Unit::default() })
}

async fn groups_unit(im: &ImClient, chunk: Vec<String>) -> Result<Unit, Error> {
    let mut u = Unit::default();
    let filter = GroupInfoFilter {
        group_base_info_filter: Some(GROUP_PROFILE_FIELDS.map(str::to_owned).to_vec()),
        ..GroupInfoFilter::default()
    };
    let infos = im.group_infos(&chunk, Some(filter)).await?;
    for gid in chunk {
        let Some(info) = infos.iter().find(|i| i.group_id == gid) else {
            u.report.push(Finding::Skip(format!("group {gid}"), "get_group_info did not return it".into()));
            continue;
        };
        if info.error_code != 0 {
            u.report.push(Finding::Skip(
                format!("group {gid}"),
                format!("get_group_info: {} {}", info.error_code, info.error_info),
            ));
            continue;
        }
        let im_type = info.group_type.clone().unwrap_or_default();
        let Some(kind) = convert::group_type(&im_type) else {
            u.report.push(Finding::Skip(format!("group {gid}"), format!("type {im_type:?} cannot be imported")));
            continue;
        };
        if gid.starts_with("@TGS#") {
            u.report.push(Finding::Skip(
                format!("group {gid}"),
                "an id IM generated; the new app accepts only custom ids on import".into(),
            ));
            continue;
        }
        let top_seq = info.next_msg_seq.unwrap_or(1).saturating_sub(1);
        u.line(ExportKind::Groups, &convert::group(info, kind));
        let last_seq = (kind != GroupType::ChatRoom).then_some(top_seq);
        u.groups.push((gid, GroupMeta { last_seq, top_seq }));
    }
    Ok(u)
}

async fn members_unit(im: &ImClient, gid: String, meta: GroupMeta) -> Result<Unit, Error> {
    let mut u = Unit::default();
    let filter = Some(convert::MEMBER_FIELDS.map(str::to_owned).to_vec());
    for m in im.all_group_members(&gid, filter).await? {
        u.line(ExportKind::GroupMembers, &convert::member(&gid, &m, meta.last_seq));
    }
    Ok(u)
}

/// `IsPlaceMsg` of a recalled message (reference §11.9): its seq is accounted for, its content is gone.
const PLACE_RECALLED: u32 = 2;

async fn group_messages_unit(im: &ImClient, gid: String, meta: GroupMeta) -> Result<Unit, Error> {
    let mut u = Unit::default();
    let history = im.group_history(&gid, true).await?;
    let mut present = Vec::with_capacity(history.len());
    let (mut recalled, mut notices) = (0u64, 0u64);
    for m in &history {
        if m.is_system_msg == Some(1) {
            notices += 1;
            present.push(m.msg_seq);
        } else if m.is_place_msg == PLACE_RECALLED {
            recalled += 1;
            present.push(m.msg_seq);
        } else if m.is_place_msg != 0 {
            // A placeholder for a message IM no longer has (deleted or expired): a hole.
        } else {
            present.push(m.msg_seq);
            match convert::group_message(&gid, m) {
                Ok(r) => u.line(ExportKind::GroupMessages, &r),
                Err(e) => u.report.push(Finding::Skip(format!("group message {gid}#{}", m.msg_seq), e.to_string())),
            }
        }
    }
    present.sort_unstable();
    for (from_seq, to_seq) in holes(&present, meta.top_seq) {
        u.report.push(Finding::Hole(SeqHole { group_id: gid.clone(), from_seq, to_seq }));
    }
    if recalled > 0 {
        u.report.push(Finding::Recalled(recalled));
    }
    if notices > 0 {
        u.report.push(Finding::Notices(notices));
    }
    Ok(u)
}
