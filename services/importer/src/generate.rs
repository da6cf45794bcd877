//! A deterministic, realistic sample export, for tests, benchmarks and the demo.
//!
//! The same options always produce byte-identical files (our own SplitMix64 generator, a fixed "now"), so a
//! test can name exact lines. The data looks like a real app's: named users with profiles, mutual and one-way
//! friendships, 1:1 conversations mostly between friends with bursts of same-second messages, read marks,
//! groups of every importable type with owners, admins and unread counts, every body element type, times
//! spread over months and written both as Unix ms and as RFC 3339. Files are written in time order with a
//! little local disorder, as real exports have, so legacy-order sorting is exercised. Valid lines are the export's
//! own record types ([`imbridge_core::export`], as written), the ones the importer reads.
//!
//! `bad_lines` injects invalid lines of the kinds in [`BadKind`], each recorded in [`Generated::bad`] with the
//! file, line and field that validation must report.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use imbridge_core::TimestampMs;
use imbridge_core::body::ExportElement;
use imbridge_core::event::{AllowType, ApplyJoin, Gender, MemberRole};
use imbridge_core::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, FriendRecord, GroupMemberRecord, GroupMessageRecord, GroupProfile,
    GroupRecord, ProfileRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::export::ExportKind;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Seed of the pseudo-random generator; the same seed gives the same files.
    pub seed: u64,
    /// Accounts (every one also gets a profile line unless it is one of the ~15% without).
    pub users: usize,
    /// Distinct user pairs that are friends; about 60% are mutual (two lines), the rest one-way (one line).
    pub friendships: usize,
    pub c2c_messages: usize,
    pub groups: usize,
    pub group_messages: usize,
    /// Invalid lines to add on top of the valid ones, cycling through [`BadKind::ALL`].
    pub bad_lines: usize,
    /// Write `.ndjson.gz` instead of `.ndjson`.
    pub gzip: bool,
    /// "Now" in Unix ms: every time is before it. Fixed by default so output never depends on the clock.
    pub end_ms: i64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            users: 200,
            friendships: 1000,
            c2c_messages: 20_000,
            groups: 30,
            group_messages: 5000,
            bad_lines: 0,
            gzip: false,
            // 2025-06-01T00:00:00Z.
            end_ms: 1_748_736_000_000,
        }
    }
}

/// The kinds of invalid line the generator can inject, each caught by a different validation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadKind {
    InvalidJson,
    NotUtf8,
    MissingField,
    UserIdTooLong,
    UnknownAccount,
    UnsupportedGroupType,
    UnknownGroup,
    DuplicateMember,
    DuplicateMessageId,
    BodyTooLarge,
    UnknownElementType,
    BadTime,
    SenderNotMember,
    /// A line that is valid JSON but an array, which serde alone would read as a record by position.
    NotAnObject,
}

impl BadKind {
    pub const ALL: [BadKind; 14] = [
        BadKind::InvalidJson,
        BadKind::NotUtf8,
        BadKind::MissingField,
        BadKind::UserIdTooLong,
        BadKind::UnknownAccount,
        BadKind::UnsupportedGroupType,
        BadKind::UnknownGroup,
        BadKind::DuplicateMember,
        BadKind::DuplicateMessageId,
        BadKind::BodyTooLarge,
        BadKind::UnknownElementType,
        BadKind::BadTime,
        BadKind::SenderNotMember,
        BadKind::NotAnObject,
    ];
}

/// One injected invalid line and what validation must say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    pub what: BadKind,
    pub kind: ExportKind,
    pub line: u64,
    /// The field the error must name (empty: the whole line).
    pub field: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The files, by kind.
    pub files: BTreeMap<ExportKind, PathBuf>,
    /// Valid records per kind.
    pub valid: BTreeMap<ExportKind, u64>,
    /// Injected invalid lines, in file then line order.
    pub bad: Vec<BadLine>,
    /// Members with a non-zero unread count in groups that keep unread counts (not ChatRoom).
    pub unread_counts: u64,
}

/// SplitMix64: tiny, fast, and stable forever (unlike a library RNG whose stream may change between versions).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo { lo } else { lo + self.below((hi - lo) as u64) as i64 }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

const DAY_MS: i64 = 86_400_000;
const FIRST: [&str; 24] = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Xu", "Yuki", "Zhang", "Amara", "Lars",
];
const LAST: [&str; 12] =
    ["Smith", "Chen", "Garcia", "Müller", "Tanaka", "Okafor", "Rossi", "Kim", "Silva", "Novak", "Haddad", "Li"];
const CITIES: [&str; 8] = ["Shenzhen", "Berlin", "São Paulo", "Lagos", "Tokyo", "Toronto", "Mumbai", "Oslo"];
const WORDS: [&str; 24] = [
    "ok",
    "see you",
    "lunch?",
    "on my way",
    "haha",
    "sounds good",
    "thanks!",
    "where are you",
    "call me",
    "done",
    "nice photo",
    "tomorrow then",
    "running late",
    "👍",
    "good night",
    "what time",
    "sure",
    "let me check",
    "agreed",
    "meeting moved",
    "happy birthday 🎉",
    "got it",
    "can't today",
    "weekend plans?",
];
const ADJ: [&str; 10] =
    ["Weekend", "Night", "Core", "Book", "Family", "Project", "Climbing", "Office", "Alumni", "Chess"];
const NOUN: [&str; 8] = ["Club", "Team", "Crew", "Circle", "Squad", "Room", "Group", "Guild"];
const SOURCES: [&str; 5] = ["Android", "iOS", "Web", "Search", "QRCode"];

struct Files {
    lines: BTreeMap<ExportKind, Vec<Vec<u8>>>,
}

impl Files {
    fn push<T: Serialize>(&mut self, kind: ExportKind, record: &T, times: &TimeForms) {
        self.lines.entry(kind).or_default().push(line(record, times));
    }
    fn len(&self, kind: ExportKind) -> usize {
        self.lines.get(&kind).map_or(0, Vec::len)
    }
}

/// The time fields of one record to write as RFC 3339 rather than Unix ms.
#[derive(Debug, Clone, Default)]
struct TimeForms(Vec<&'static str>);

impl TimeForms {
    /// `ms` as the record's `field`; one time in ten is written as RFC 3339, as exports from some systems do.
    fn time(&mut self, rng: &mut Rng, field: &'static str, ms: i64) -> TimestampMs {
        if rng.chance(10) {
            self.0.push(field);
        }
        TimestampMs(ms)
    }
}

/// One line: the record as JSON (keys in sorted order), with the chosen times in RFC 3339.
fn line<T: Serialize>(record: &T, times: &TimeForms) -> Vec<u8> {
    // Serializing plain data with string keys cannot fail.
    let mut v = serde_json::to_value(record).unwrap_or_default();
    for field in &times.0 {
        if let Some(ms) = v.get(*field).and_then(Value::as_i64) {
            v[*field] = Value::from(TimestampMs(ms).to_rfc3339());
        }
    }
    v.to_string().into_bytes()
}

fn body(rng: &mut Rng, n: u64) -> Vec<ExportElement> {
    let url = |kind: &str, ext: &str| format!("https://cdn.example.com/{kind}/{n:06}.{ext}");
    let text = |rng: &mut Rng| ExportElement::Text { text: rng.pick(&WORDS).to_string() };
    let element = |rng: &mut Rng, t: u64| match t {
        0 => ExportElement::Image {
            url: url("img", "jpg"),
            width: Some(640 + rng.below(1400) as u32),
            height: Some(480 + rng.below(1000) as u32),
            size: Some(20_000 + rng.below(2_000_000)),
        },
        1 => ExportElement::File {
            url: url("files", "pdf"),
            name: format!("report-{n}.pdf"),
            size: 1000 + rng.below(5_000_000),
        },
        2 => ExportElement::Sound {
            url: url("voice", "m4a"),
            seconds: 1 + rng.below(59) as u32,
            size: 3000 + rng.below(90_000),
        },
        3 => ExportElement::Video {
            url: url("video", "mp4"),
            seconds: 2 + rng.below(120) as u32,
            size: 100_000 + rng.below(20_000_000),
            thumb_url: Some(url("video", "jpg")),
        },
        4 => ExportElement::Location {
            latitude: (rng.below(18_000) as f64) / 100.0 - 90.0,
            longitude: (rng.below(36_000) as f64) / 100.0 - 180.0,
            desc: Some(rng.pick(&CITIES).to_string()),
        },
        5 => ExportElement::Face { index: rng.below(200) as i64, data: Some("sticker".into()) },
        6 => ExportElement::Custom {
            data: format!("{{\"card\":\"order\",\"id\":{n}}}"),
            desc: Some("[order]".into()),
            ext: Some("order".into()),
        },
        _ => ExportElement::Image { url: url("img", "png"), width: None, height: None, size: None },
    };
    let roll = rng.below(100);
    if roll < 60 {
        vec![text(rng)]
    } else if roll < 65 {
        // A caption with a picture: more than one element per message.
        let img = element(rng, 0);
        vec![text(rng), img]
    } else {
        let t = rng.below(8);
        vec![element(rng, t)]
    }
}

/// Writes a sample export into `dir` (created if needed). Existing files of the same names are replaced.
pub fn generate(dir: &Path, o: &GenerateOptions) -> Result<Generated, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut rng = Rng(o.seed ^ 0x5EED_1B1D_6E00_0000);
    let mut files = Files { lines: BTreeMap::new() };
    let end = o.end_ms;

    // Accounts and profiles.
    let users: Vec<String> = (1..=o.users).map(|i| format!("u{i:05}")).collect();
    for (i, u) in users.iter().enumerate() {
        let nick = format!("{} {}", FIRST[i % FIRST.len()], LAST[(i / FIRST.len() + i) % LAST.len()]);
        let mut account: AccountRecord = AccountRecord { user_id: u.clone(), nick: None, face_url: None };
        if rng.chance(90) {
            account.nick = Some(nick.clone());
            account.face_url = Some(format!("https://cdn.example.com/avatars/{u}.png"));
        }
        files.push(ExportKind::Accounts, &account, &TimeForms::default());
        if rng.chance(85) {
            let opt = |rng: &mut Rng| rng.chance(70);
            let p: ProfileRecord = ProfileRecord {
                user_id: u.clone(),
                nick: Some(nick),
                gender: opt(&mut rng).then(|| *rng.pick(&[Gender::Male, Gender::Female, Gender::Unknown])),
                birthday: opt(&mut rng).then(|| {
                    19_600_101 + rng.below(45) as u32 * 10_000 + rng.below(12) as u32 * 100 + rng.below(28) as u32
                }),
                location: opt(&mut rng).then(|| rng.pick(&CITIES).to_string()),
                signature: opt(&mut rng).then(|| rng.pick(&WORDS).to_string()),
                allow_type: opt(&mut rng)
                    .then(|| *rng.pick(&[AllowType::NeedConfirm, AllowType::AllowAny, AllowType::DenyAny])),
                language: opt(&mut rng).then(|| rng.below(10) as u32),
                avatar: opt(&mut rng).then(|| format!("https://cdn.example.com/avatars/{u}@2x.png")),
                level: opt(&mut rng).then(|| rng.below(50) as u32),
                role: opt(&mut rng).then(|| rng.below(4) as u32),
                custom: rng.chance(30).then(|| {
                    let hobby = *rng.pick(&["chess", "climbing", "cooking", "film"]);
                    BTreeMap::from([
                        ("Hobby".into(), hobby.into()),
                        ("Tier".into(), rng.pick(&["free", "gold"]).to_string()),
                    ])
                }),
            };
            files.push(ExportKind::Profiles, &p, &TimeForms::default());
        }
    }

    // Friendships: distinct pairs, most mutual.
    let n = users.len();
    let max_pairs = n * n.saturating_sub(1) / 2;
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut pair_list: Vec<(usize, usize)> = Vec::new();
    while pair_list.len() < o.friendships.min(max_pairs) {
        let (a, b) = (rng.index(n), rng.index(n));
        if a != b && pairs.insert((a.min(b), a.max(b))) {
            pair_list.push((a, b));
        }
    }
    for &(a, b) in &pair_list {
        let added = rng.range(end - 700 * DAY_MS, end - DAY_MS);
        let directions: &[(usize, usize)] = if rng.chance(60) { &[(a, b), (b, a)] } else { &[(a, b)] };
        for &(x, y) in directions {
            let mut times = TimeForms::default();
            let f: FriendRecord = FriendRecord {
                user_id: users[x].clone(),
                friend_id: users[y].clone(),
                add_source: rng.pick(&SOURCES).to_string(),
                remark: rng.chance(30).then(|| FIRST[y % FIRST.len()].to_owned()),
                groups: rng.chance(20).then(|| vec![rng.pick(&["family", "work", "school", "gym"]).to_string()]),
                add_wording: rng.chance(25).then(|| format!("hi, it's {}", FIRST[x % FIRST.len()])),
                added_at: rng.chance(80).then(|| times.time(&mut rng, "added_at", added)),
            };
            files.push(ExportKind::Friends, &f, &times);
        }
    }

    // 1:1 messages: conversations mostly between friends; some bursts inside one second.
    let mut conversations: Vec<(usize, usize)> = Vec::new();
    if n >= 2 {
        let wanted = (o.c2c_messages / 15).clamp(1, max_pairs.max(1));
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        let mut attempts = 0;
        while conversations.len() < wanted && attempts < wanted * 20 {
            attempts += 1;
            let (a, b) = if !pair_list.is_empty() && rng.chance(80) {
                *rng.pick(&pair_list)
            } else {
                (rng.index(n), rng.index(n))
            };
            if a != b && seen.insert((a.min(b), a.max(b))) {
                conversations.push((a, b));
            }
        }
    }
    struct Msg<R> {
        time: i64,
        record: R,
        times: TimeForms,
    }
    let mut c2c: Vec<Msg<C2cMessageRecord>> = Vec::with_capacity(o.c2c_messages);
    let mut last_time: Vec<Option<i64>> = vec![None; conversations.len()];
    let mut conv_times: Vec<Vec<i64>> = vec![Vec::new(); conversations.len()];
    for i in 0..if conversations.is_empty() { 0 } else { o.c2c_messages } {
        // Skew: low-numbered conversations are busier, like real chat.
        let c = rng.index(conversations.len()).min(rng.index(conversations.len()));
        let (a, b) = conversations[c];
        let (from, to) = if rng.chance(50) { (a, b) } else { (b, a) };
        let time = match last_time[c] {
            Some(t) if rng.chance(15) => (t + rng.range(0, 900)).min(end - 1),
            _ => rng.range(end - 180 * DAY_MS, end - 60_000),
        };
        last_time[c] = Some(time);
        conv_times[c].push(time);
        let mut times = TimeForms::default();
        let record = C2cMessageRecord {
            // Numbered below, once the file's order is known.
            id: String::new(),
            from: users[from].clone(),
            to: users[to].clone(),
            sent_at: times.time(&mut rng, "sent_at", time),
            body: body(&mut rng, i as u64),
            custom_data: rng.chance(5).then(|| "{\"legacy_flags\":1}".to_owned()),
        };
        c2c.push(Msg { time, record, times });
    }
    c2c.sort_by_key(|m| m.time);
    disorder(&mut rng, &mut c2c);
    for (i, mut m) in c2c.into_iter().enumerate() {
        m.record.id = format!("cm-{:07}", i + 1);
        files.push(ExportKind::C2cMessages, &m.record, &m.times);
    }
    for (c, &(a, b)) in conversations.iter().enumerate() {
        let times = &mut conv_times[c];
        if times.is_empty() || !rng.chance(60) {
            continue;
        }
        times.sort_unstable();
        for (reader, peer) in [(a, b), (b, a)] {
            if rng.chance(70) {
                let t = times[times.len() - 1 - rng.index(times.len().min(5))];
                let mut forms = TimeForms::default();
                let read_at = forms.time(&mut rng, "read_at", t);
                let r: C2cReadRecord =
                    C2cReadRecord { user_id: users[reader].clone(), peer_id: users[peer].clone(), read_at };
                files.push(ExportKind::C2cReads, &r, &forms);
            }
        }
    }

    // Groups, members, group messages.
    struct Group {
        id: String,
        created: i64,
        members: Vec<(usize, i64)>,
        chat_room: bool,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut unread_counts = 0;
    if n >= 1 {
        for g in 1..=o.groups {
            let id = format!("grp-{g:04}");
            let group_type = *rng.pick(&["Private", "Public", "Public", "ChatRoom", "Community"]);
            let created = rng.range(end - 400 * DAY_MS, end - 200 * DAY_MS);
            let owner = rng.index(n);
            let name = format!("{} {}", rng.pick(&ADJ), rng.pick(&NOUN));
            let mut times = TimeForms::default();
            let created_at = times.time(&mut rng, "created_at", created);
            let v: GroupRecord = GroupRecord {
                group_id: id.clone(),
                group_type: group_type.to_owned(),
                profile: GroupProfile {
                    name,
                    owner: Some(users[owner].clone()),
                    introduction: rng.chance(60).then(|| format!("the {} group", *rng.pick(&ADJ))),
                    notification: rng.chance(40).then(|| "be kind; no spam".to_owned()),
                    face_url: rng.chance(50).then(|| format!("https://cdn.example.com/g/{g}.png")),
                },
                max_members: rng.chance(50).then(|| *rng.pick(&[200, 500, 2000])),
                apply_join: rng
                    .chance(50)
                    .then(|| *rng.pick(&[ApplyJoin::FreeAccess, ApplyJoin::NeedPermission, ApplyJoin::DisableApply])),
                created_at,
            };
            files.push(ExportKind::Groups, &v, &times);
            let mut members = vec![(owner, created)];
            let size = (3 + rng.index(38)).min(n);
            let mut in_group: HashSet<usize> = HashSet::from([owner]);
            while members.len() < size {
                let u = rng.index(n);
                if in_group.insert(u) {
                    members.push((u, rng.range(created + 1000, end - 30 * DAY_MS)));
                }
            }
            let chat_room = group_type == "ChatRoom";
            for (k, &(u, joined)) in members.iter().enumerate() {
                let role = if k == 0 {
                    MemberRole::Owner
                } else if rng.chance(10) {
                    MemberRole::Admin
                } else {
                    MemberRole::Member
                };
                let mut times = TimeForms::default();
                let m: GroupMemberRecord = GroupMemberRecord {
                    group_id: id.clone(),
                    user_id: users[u].clone(),
                    role: (k == 0 || rng.chance(85)).then_some(role),
                    joined_at: rng.chance(90).then(|| times.time(&mut rng, "joined_at", joined)),
                    unread: rng.chance(40).then(|| rng.below(30) as u32),
                };
                if m.unread.is_some_and(|u| u > 0) && !chat_room {
                    unread_counts += 1;
                }
                files.push(ExportKind::GroupMembers, &m, &times);
            }
            groups.push(Group { id, created, members, chat_room });
        }
    }
    let mut gmsgs: Vec<Msg<GroupMessageRecord>> = Vec::with_capacity(o.group_messages);
    for i in 0..if groups.is_empty() { 0 } else { o.group_messages } {
        let g = &groups[rng.index(groups.len()).min(rng.index(groups.len()))];
        let &(u, joined) = rng.pick(&g.members);
        let time = rng.range(joined.max(g.created + 1000), end - 60_000);
        let mut times = TimeForms::default();
        let record = GroupMessageRecord {
            id: String::new(),
            group_id: g.id.clone(),
            from: users[u].clone(),
            sent_at: times.time(&mut rng, "sent_at", time),
            body: body(&mut rng, 1_000_000 + i as u64),
        };
        gmsgs.push(Msg { time, record, times });
    }
    gmsgs.sort_by_key(|m| m.time);
    disorder(&mut rng, &mut gmsgs);
    for (i, mut m) in gmsgs.into_iter().enumerate() {
        m.record.id = format!("gm-{:07}", i + 1);
        files.push(ExportKind::GroupMessages, &m.record, &m.times);
    }

    let valid: BTreeMap<ExportKind, u64> = ExportKind::ALL.iter().map(|&k| (k, files.len(k) as u64)).collect();
    let ctx = BadContext {
        users: &users,
        groups: groups.iter().map(|g| (g.id.as_str(), g.members.as_slice(), g.chat_room)).collect(),
    };
    let bad = inject_bad_lines(&mut rng, &mut files, &ctx, o.bad_lines);

    let mut written = BTreeMap::new();
    for kind in ExportKind::ALL {
        let Some(lines) = files.lines.get(&kind) else { continue };
        let name = if o.gzip { format!("{}.gz", kind.file_name()) } else { kind.file_name() };
        let path = dir.join(name);
        // Never leave both forms behind: the reader refuses an ambiguous export.
        let other = if o.gzip { dir.join(kind.file_name()) } else { dir.join(format!("{}.gz", kind.file_name())) };
        if other.exists() {
            std::fs::remove_file(&other).map_err(|source| Error::Io { path: other.clone(), source })?;
        }
        write_lines(&path, lines, o.gzip)?;
        written.insert(kind, path);
    }
    Ok(Generated { files: written, valid, bad, unread_counts })
}

/// Swaps about 2% of neighbours, so files are "mostly" in time order like real exports.
fn disorder<T>(rng: &mut Rng, items: &mut [T]) {
    for i in 1..items.len() {
        if rng.chance(2) {
            items.swap(i - 1, i);
        }
    }
}

fn write_lines(path: &Path, lines: &[Vec<u8>], gzip: bool) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let file = File::create(path).map_err(io)?;
    let mut out: Box<dyn Write> = if gzip {
        Box::new(BufWriter::new(GzEncoder::new(file, Compression::fast())))
    } else {
        Box::new(BufWriter::new(file))
    };
    for line in lines {
        out.write_all(line).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    // Dropping the encoder writes the gzip trailer; flush above surfaced any error first.
    drop(out);
    Ok(())
}

/// A group as bad-line injection sees it: id, members (user index, joined ms), is a ChatRoom.
type GroupView<'a> = (&'a str, &'a [(usize, i64)], bool);

struct BadContext<'a> {
    users: &'a [String],
    groups: Vec<GroupView<'a>>,
}

/// Inserts `count` invalid lines; returns where each landed. Every bad line refers only to things that exist
/// (or deliberately to one that does not), so it produces exactly one error and no knock-on errors.
fn inject_bad_lines(rng: &mut Rng, files: &mut Files, ctx: &BadContext<'_>, count: usize) -> Vec<BadLine> {
    // (kind, insert before valid-line index, bytes, what, field)
    let mut inserts: Vec<(ExportKind, usize, Vec<u8>, BadKind, &'static str)> = Vec::new();
    for i in 0..count {
        let what = BadKind::ALL[i % BadKind::ALL.len()];
        let made = make_bad(rng, files, ctx, what, i).or_else(|| make_bad(rng, files, ctx, BadKind::InvalidJson, i));
        if let Some(insert) = made {
            inserts.push(insert);
        }
    }
    let mut placed = Vec::new();
    for kind in ExportKind::ALL {
        let mine: Vec<_> = inserts.iter().filter(|x| x.0 == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let valid = files.lines.remove(&kind).unwrap_or_default();
        let mut out = Vec::with_capacity(valid.len() + mine.len());
        for idx in 0..=valid.len() {
            for x in mine.iter().filter(|x| x.1 == idx) {
                out.push(x.2.clone());
                placed.push(BadLine { what: x.3, kind, line: out.len() as u64, field: x.4.to_owned() });
            }
            if let Some(line) = valid.get(idx) {
                out.push(line.clone());
            }
        }
        files.lines.insert(kind, out);
    }
    placed.sort_by_key(|b| (b.kind, b.line));
    placed
}

type Insert = (ExportKind, usize, Vec<u8>, BadKind, &'static str);

fn make_bad(rng: &mut Rng, files: &Files, ctx: &BadContext<'_>, what: BadKind, i: usize) -> Option<Insert> {
    let users = ctx.users;
    let pos = |rng: &mut Rng, kind: ExportKind| rng.index(files.len(kind) + 1);
    let line = |v: Value| v.to_string().into_bytes();
    let some_user = |rng: &mut Rng| users.get(rng.index(users.len())).cloned();
    let text_body = json!([{"type": "text", "text": "hello"}]);
    Some(match what {
        BadKind::InvalidJson => {
            let k = ExportKind::Accounts;
            (k, pos(rng, k), format!("{{\"user_id\": \"broken-{i}\", \"nick\": ").into_bytes(), what, "")
        }
        BadKind::NotAnObject => {
            let k = ExportKind::Accounts;
            (k, pos(rng, k), line(json!([format!("array-{i}"), "an", "object"])), what, "")
        }
        BadKind::NotUtf8 => {
            let k = ExportKind::Profiles;
            let mut bytes = format!("{{\"user_id\": \"{}\", \"nick\": \"", some_user(rng)?).into_bytes();
            bytes.extend_from_slice(b"\xC3\x28\"}");
            (k, pos(rng, k), bytes, what, "")
        }
        BadKind::MissingField => {
            let k = ExportKind::C2cMessages;
            let (a, b) = (some_user(rng)?, some_user(rng)?);
            (
                k,
                pos(rng, k),
                line(json!({"id": format!("bad-missing-{i}"), "from": a, "to": b, "body": text_body})),
                what,
                "sent_at",
            )
        }
        BadKind::UserIdTooLong => {
            let k = ExportKind::Accounts;
            (k, pos(rng, k), line(json!({"user_id": format!("{:x<40}", format!("long-{i}-"))})), what, "user_id")
        }
        BadKind::UnknownAccount => {
            let k = ExportKind::Friends;
            let v = json!({"user_id": some_user(rng)?, "friend_id": format!("ghost-{i}"), "add_source": "Web"});
            (k, pos(rng, k), line(v), what, "friend_id")
        }
        BadKind::UnsupportedGroupType => {
            let k = ExportKind::Groups;
            let v = json!({"group_id": format!("live-{i}"), "type": "AVChatRoom", "name": "Live", "created_at": 1_700_000_000_000_i64});
            (k, pos(rng, k), line(v), what, "type")
        }
        BadKind::UnknownGroup => {
            let k = ExportKind::GroupMembers;
            (
                k,
                pos(rng, k),
                line(json!({"group_id": format!("no-such-group-{i}"), "user_id": some_user(rng)?})),
                what,
                "group_id",
            )
        }
        BadKind::DuplicateMember => {
            let k = ExportKind::GroupMembers;
            let len = files.len(k);
            if len == 0 {
                return None;
            }
            let at = 1 + rng.index(len);
            let original = files.lines.get(&k)?.get(rng.index(at))?.clone();
            (k, at, original, what, "user_id")
        }
        BadKind::DuplicateMessageId => {
            let k = ExportKind::C2cMessages;
            let len = files.len(k);
            if len == 0 {
                return None;
            }
            let at = 1 + rng.index(len);
            let original = files.lines.get(&k)?.get(rng.index(at))?.clone();
            (k, at, original, what, "id")
        }
        BadKind::BodyTooLarge => {
            let k = ExportKind::C2cMessages;
            let (a, b) = (some_user(rng)?, some_user(rng)?);
            if a == b {
                return None;
            }
            let v = json!({"id": format!("bad-big-{i}"), "from": a, "to": b, "sent_at": 1_700_000_000_000_i64,
                           "body": [{"type": "text", "text": "x".repeat(9000)}]});
            (k, pos(rng, k), line(v), what, "body")
        }
        BadKind::UnknownElementType => {
            let k = ExportKind::C2cMessages;
            let (a, b) = (some_user(rng)?, some_user(rng)?);
            let v = json!({"id": format!("bad-elem-{i}"), "from": a, "to": b, "sent_at": 1_700_000_000_000_i64,
                           "body": [{"type": "text", "text": "hi"}, {"type": "hologram", "url": "x"}]});
            (k, pos(rng, k), line(v), what, "body[1].type")
        }
        BadKind::BadTime => {
            let k = ExportKind::C2cReads;
            let (a, b) = (some_user(rng)?, some_user(rng)?);
            (k, pos(rng, k), line(json!({"user_id": a, "peer_id": b, "read_at": "last tuesday"})), what, "read_at")
        }
        BadKind::SenderNotMember => {
            let k = ExportKind::GroupMessages;
            let (gid, members, _) = ctx.groups.iter().find(|g| g.1.len() < users.len())?;
            let outsider = (0..users.len()).find(|u| members.iter().all(|m| m.0 != *u))?;
            let v = json!({"id": format!("bad-sender-{i}"), "group_id": gid, "from": users[outsider],
                           "sent_at": 1_748_000_000_000_i64, "body": text_body});
            (k, pos(rng, k), line(v), what, "from")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_stable() {
        let mut r = Rng(0);
        // SplitMix64's published first output for seed 0.
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
    }
}
