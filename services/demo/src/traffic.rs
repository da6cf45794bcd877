//! `imbridge demo traffic`: old-app and new-app users chat with each other, in rounds (see the crate docs).
//!
//! The cast: every user of the legacy system; even-numbered ones (sorted by id) stay on the old app, odd ones
//! moved to the new app. The conversations: 1:1 chats between an old-app and a new-app user, between two old-app
//! users and between two new-app users (existing ones, so live messages land behind their imported history);
//! existing groups; groups created during the demo on each app; and two short-lived groups, one dismissed on each
//! app in the last round. Every message text is unique, so the check can count each one on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use imbridge_kafka::admin::Admin;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{LagCheck, Side, Systems, im_text, text_body};

/// How much traffic.
#[derive(Debug, Clone)]
pub struct TrafficOptions {
    pub rounds: u32,
    /// How long one round's operations are spread over.
    pub round: Duration,
    /// 1:1 conversations between an old-app and a new-app user.
    pub mixed_pairs: usize,
    /// 1:1 conversations within one app, per app.
    pub same_app_pairs: usize,
    /// Existing groups that take part.
    pub existing_groups: usize,
    /// Groups created during the demo, per app (plus one short-lived group per app).
    pub new_groups: usize,
    /// Operations per conversation and round, at least and at most.
    pub ops_per_turn: (u32, u32),
    pub seed: u64,
    /// Longest wait for the pipeline to catch up between rounds.
    pub catch_up_timeout: Duration,
}

impl TrafficOptions {
    /// `small`: ~550 operations in ~25 s. `full`: ~1,500 operations in ~35 s.
    pub fn scale(name: &str) -> anyhow::Result<Self> {
        let small = TrafficOptions {
            rounds: 10,
            round: Duration::from_millis(2000),
            mixed_pairs: 6,
            same_app_pairs: 2,
            existing_groups: 4,
            new_groups: 1,
            ops_per_turn: (2, 4),
            seed: 7,
            catch_up_timeout: Duration::from_secs(60),
        };
        match name {
            "small" => Ok(small),
            "full" => Ok(TrafficOptions {
                rounds: 14,
                mixed_pairs: 12,
                same_app_pairs: 4,
                existing_groups: 8,
                new_groups: 2,
                ..small
            }),
            other => anyhow::bail!("unknown scale {other:?} (small or full)"),
        }
    }
}

/// One 1:1 conversation the traffic used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairInfo {
    pub a: String,
    pub b: String,
    pub a_side: Side,
    pub b_side: Side,
}

/// One group the traffic used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupInfo {
    pub id: String,
    /// Set for groups created during the demo.
    pub created_on: Option<Side>,
    pub dismissed_on: Option<Side>,
}

/// What the traffic did; `imbridge demo check` reads it back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrafficSummary {
    pub users_old_app: usize,
    pub users_new_app: usize,
    pub rounds: u32,
    pub elapsed_secs: f64,
    /// Per round: how long the pipeline took to catch up afterwards, in seconds.
    pub catch_up_secs: Vec<f64>,
    pub pairs: Vec<PairInfo>,
    pub groups: Vec<GroupInfo>,
    /// Operations done per app and kind.
    pub ops: BTreeMap<Side, BTreeMap<String, u64>>,
    /// Operations a system refused (nothing happened on either side), with the reason.
    pub refused: Vec<String>,
    /// Every message text sent, per conversation key (`c2c:a:b`, `group:id`).
    pub sent: BTreeMap<String, Vec<String>>,
}

impl TrafficSummary {
    pub fn total_ops(&self) -> u64 {
        self.ops.values().flat_map(|k| k.values()).sum()
    }

    pub fn ops_of(&self, side: Side) -> u64 {
        self.ops.get(&side).map(|k| k.values().sum()).unwrap_or(0)
    }

    fn merge(&mut self, t: Turn) {
        for (side, kind) in t.ops {
            *self.ops.entry(side).or_default().entry(kind.to_owned()).or_default() += 1;
        }
        self.refused.extend(t.refused);
        for (key, text) in t.sent {
            self.sent.entry(key).or_default().push(text);
        }
    }
}

/// What one conversation did in one round.
#[derive(Debug, Default)]
struct Turn {
    ops: Vec<(Side, &'static str)>,
    refused: Vec<String>,
    sent: Vec<(String, String)>,
}

impl Turn {
    fn done(&mut self, side: Side, kind: &'static str, result: anyhow::Result<()>) -> bool {
        match result {
            Ok(()) => {
                self.ops.push((side, kind));
                true
            }
            Err(e) => {
                self.refused.push(format!("{} {kind}: {e:#}", side.label()));
                false
            }
        }
    }
}

struct Cast {
    users: Vec<String>,
}

impl Cast {
    fn side(&self, u: &str) -> Side {
        match self.users.iter().position(|x| x == u) {
            Some(i) if i % 2 == 1 => Side::Im,
            _ => Side::Legacy,
        }
    }

    fn on(&self, side: Side) -> Vec<String> {
        self.users.iter().filter(|u| self.side(u) == side).cloned().collect()
    }
}

struct Pair {
    a: String,
    b: String,
    /// MsgSeq of the new app's next 1:1 message (IM orders a second's messages by it).
    seq: u32,
    n: u32,
}

struct Group {
    id: String,
    owner: String,
    members: BTreeSet<String>,
    /// Created in round 0 by its owner's app.
    create: Option<String>,
    /// Dismissed in the last round by its owner's app.
    dismiss: bool,
    n: u32,
}

enum Conversation {
    Pair(Pair),
    Group(Group),
}

/// Drives the traffic; prints one progress line per round.
pub async fn run(sys: Arc<Systems>, opts: &TrafficOptions) -> anyhow::Result<TrafficSummary> {
    let admin = Admin::new(&sys.ep.kafka).context("kafka admin")?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let cast = Arc::new(Cast { users: sys.old_users().await? });
    let (old, new) = (cast.on(Side::Legacy), cast.on(Side::Im));
    anyhow::ensure!(old.len() >= 4 && new.len() >= 4, "the legacy system needs at least 8 users");
    let mut summary = TrafficSummary {
        users_old_app: old.len(),
        users_new_app: new.len(),
        rounds: opts.rounds,
        ..TrafficSummary::default()
    };

    // 1:1 conversations: existing ones with history first, new pairs when there are not enough.
    let mut existing = sys.old_c2c_list().await?;
    existing.shuffle(&mut rng);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (sa, sb, want) in [
        (Side::Legacy, Side::Im, opts.mixed_pairs),
        (Side::Legacy, Side::Legacy, opts.same_app_pairs),
        (Side::Im, Side::Im, opts.same_app_pairs),
    ] {
        let fits = |a: &str, b: &str| {
            let (x, y) = (cast.side(a), cast.side(b));
            (x, y) == (sa, sb) || (y, x) == (sa, sb)
        };
        let mut picked: Vec<(String, String)> = existing
            .iter()
            .filter(|(a, b, n)| *n > 0 && fits(a, b))
            .map(|(a, b, _)| (a.clone(), b.clone()))
            .take(want)
            .collect();
        while picked.len() < want {
            let a = cast.on(sa).choose(&mut rng).cloned().context("user")?;
            let b = cast.on(sb).choose(&mut rng).cloned().context("user")?;
            let key = if a < b { (a, b) } else { (b, a) };
            if key.0 != key.1 && !picked.contains(&key) && !pairs.contains(&key) {
                picked.push(key);
            }
        }
        pairs.extend(picked);
    }
    let mut convs: Vec<Conversation> = Vec::new();
    for (a, b) in pairs {
        summary.pairs.push(PairInfo { a_side: cast.side(&a), b_side: cast.side(&b), a: a.clone(), b: b.clone() });
        convs.push(Conversation::Pair(Pair { a, b, seq: 0, n: 0 }));
    }

    // Groups: existing ones, new ones on each app, and one short-lived group per app.
    let mut ids = sys.old_group_ids().await?;
    ids.shuffle(&mut rng);
    for id in ids {
        if summary.groups.len() == opts.existing_groups {
            break;
        }
        let Some(g) = sys.old_group(&id).await? else { continue };
        if g.owner.is_empty() || g.members.len() < 3 {
            continue;
        }
        summary.groups.push(GroupInfo { id: id.clone(), created_on: None, dismissed_on: None });
        let members = g.members.keys().cloned().collect();
        convs.push(Conversation::Group(Group { id, owner: g.owner, members, create: None, dismiss: false, n: 0 }));
    }
    for side in [Side::Legacy, Side::Im] {
        let tag = if side == Side::Legacy { "old" } else { "new" };
        for k in 0..=opts.new_groups {
            let short_lived = k == opts.new_groups;
            let id = if short_lived { format!("demo-{tag}-popup") } else { format!("demo-{tag}-{}", k + 1) };
            let owner = cast.on(side).choose(&mut rng).cloned().context("owner")?;
            let mut members: BTreeSet<String> = cast.users.choose_multiple(&mut rng, 4).cloned().collect();
            members.insert(owner.clone());
            let name =
                if short_lived { format!("Pop-up chat ({tag} app)") } else { format!("Demo team {tag} {}", k + 1) };
            summary.groups.push(GroupInfo {
                id: id.clone(),
                created_on: Some(side),
                dismissed_on: short_lived.then_some(side),
            });
            convs.push(Conversation::Group(Group {
                id,
                owner,
                members,
                create: Some(name),
                dismiss: short_lived,
                n: 0,
            }));
        }
    }
    println!(
        "traffic: {} old-app and {} new-app users; {} 1:1 conversations ({} old↔new, {} old↔old, {} new↔new), \
         {} groups ({} existing, {} created now, 2 of them dismissed at the end); {} rounds",
        old.len(),
        new.len(),
        summary.pairs.len(),
        opts.mixed_pairs,
        opts.same_app_pairs,
        opts.same_app_pairs,
        summary.groups.len(),
        opts.existing_groups.min(summary.groups.len()),
        2 * (opts.new_groups + 1),
        opts.rounds
    );

    let started = Instant::now();
    for round in 0..opts.rounds {
        let last = round + 1 == opts.rounds;
        let (old_before, new_before) = (summary.ops_of(Side::Legacy), summary.ops_of(Side::Im));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, conv) in convs.drain(..).enumerate() {
            let (sys, cast) = (sys.clone(), cast.clone());
            let turn_rng = StdRng::seed_from_u64(rng.random());
            let opts = opts.clone();
            // Alternate each conversation's side per round; neighbours start on different sides.
            let side = if (round as usize + i) % 2 == 0 { Side::Legacy } else { Side::Im };
            tasks.spawn(async move {
                let mut turn = Turn::default();
                let conv = match conv {
                    Conversation::Pair(p) => {
                        Conversation::Pair(pair_turn(&sys, &cast, p, side, round, &opts, turn_rng, &mut turn).await)
                    }
                    Conversation::Group(g) => Conversation::Group(
                        group_turn(&sys, &cast, g, side, round, last, &opts, turn_rng, &mut turn).await,
                    ),
                };
                (i, conv, turn)
            });
        }
        let mut back = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (i, conv, turn) = r.context("traffic task")?;
            summary.merge(turn);
            back.push((i, conv));
        }
        back.sort_by_key(|(i, _)| *i);
        convs = back.into_iter().map(|(_, c)| c).collect();
        let caught_up =
            sys.wait_quiet(&admin, LagCheck::IfCountersDisagree, opts.catch_up_timeout).await.context("catching up")?;
        summary.catch_up_secs.push(caught_up.as_secs_f64());
        println!(
            "  round {:>2}/{}: old app {:>3} ops, new app {:>3} ops ({:>4} in all, {:>2} refused); both sides \
             caught up {:.2} s later",
            round + 1,
            opts.rounds,
            summary.ops_of(Side::Legacy) - old_before,
            summary.ops_of(Side::Im) - new_before,
            summary.total_ops(),
            summary.refused.len(),
            caught_up.as_secs_f64(),
        );
        if !last {
            next_second().await;
        }
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Sleeps until shortly after the next whole second.
async fn next_second() {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64 % 1000).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(1000 - ms + 30)).await;
}

/// A pause before each of a turn's `ops` operations, so a round's operations spread over its duration.
async fn pause(rng: &mut StdRng, opts: &TrafficOptions, ops: u32) {
    let slot = opts.round.as_millis() as u64 / u64::from(ops.max(1));
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..slot.max(1)))).await;
}

#[allow(clippy::too_many_arguments)]
async fn pair_turn(
    sys: &Systems,
    cast: &Cast,
    mut p: Pair,
    side: Side,
    round: u32,
    opts: &TrafficOptions,
    mut rng: StdRng,
    turn: &mut Turn,
) -> Pair {
    // The side whose users act this round: in a mixed pair that is one participant; in a same-app pair the app.
    let senders: Vec<String> = [&p.a, &p.b].into_iter().filter(|u| cast.side(u) == side).cloned().collect();
    let (side, senders) =
        if senders.is_empty() { (side.other(), vec![p.a.clone(), p.b.clone()]) } else { (side, senders) };
    let key = format!("c2c:{}:{}", p.a, p.b);
    let ops = rng.random_range(opts.ops_per_turn.0..=opts.ops_per_turn.1);
    for _ in 0..ops {
        pause(&mut rng, opts, ops).await;
        let from = senders.choose(&mut rng).cloned().unwrap_or_default();
        let to = if from == p.a { p.b.clone() } else { p.a.clone() };
        p.n += 1;
        let text = format!("[{} r{}] {from} to {to} #{}", side.label(), round + 1, p.n);
        let result = match side {
            Side::Legacy if !sys.old_is_im() => {
                let body = json!({"from": from, "to": to, "body": text_body(&text)});
                sys.legacy_write(Method::POST, "/api/messages", body).await
            }
            _ => {
                p.seq += 1;
                let body = json!({"To_Account": to, "MsgRandom": rng.random::<u32>(), "MsgSeq": p.seq,
                                  "MsgBody": im_text(&text)});
                sys.app_as(side, &from, "openim/sendmsg", body).await.map(drop)
            }
        };
        if turn.done(side, "1:1 message", result) {
            turn.sent.push((key.clone(), text));
        }
    }
    p
}

#[allow(clippy::too_many_arguments)]
async fn group_turn(
    sys: &Systems,
    cast: &Cast,
    mut g: Group,
    side: Side,
    round: u32,
    last: bool,
    opts: &TrafficOptions,
    mut rng: StdRng,
    turn: &mut Turn,
) -> Group {
    let owner_side = cast.side(&g.owner);
    // Creation and dismissal are the owner's, on the owner's app; otherwise a side with members acts.
    let side = if g.create.is_some() || (last && g.dismiss) {
        owner_side
    } else if g.members.iter().any(|m| cast.side(m) == side) {
        side
    } else {
        side.other()
    };
    if let Some(name) = g.create.take() {
        let others: Vec<String> = g.members.iter().filter(|m| **m != g.owner).cloned().collect();
        let result = match side {
            Side::Legacy if !sys.old_is_im() => {
                let body = json!({"group_id": g.id, "group_type": "Public", "name": name, "owner": g.owner,
                                  "introduction": "created during the imbridge demo", "members": others});
                sys.legacy_write(Method::POST, "/api/groups", body).await
            }
            _ => {
                let list: Vec<Value> = others.iter().map(|m| json!({"Member_Account": m})).collect();
                let body = json!({"Type": "Public", "Name": name, "GroupId": g.id,
                                  "Introduction": "created during the imbridge demo", "MemberList": list});
                sys.app_as(side, &g.owner, "group_open_http_svc/create_group", body).await.map(drop)
            }
        };
        turn.done(side, "group created", result);
    }
    let key = format!("group:{}", g.id);
    let ops = rng.random_range(opts.ops_per_turn.0..=opts.ops_per_turn.1);
    for step in 0..ops {
        pause(&mut rng, opts, ops).await;
        let mine: Vec<String> = g.members.iter().filter(|m| cast.side(m) == side).cloned().collect();
        let Some(actor) = mine.choose(&mut rng).cloned() else { break };
        let roll = rng.random_range(0..100);
        if roll < 8 && owner_side == side {
            // The owner renames the group (IM lets only the owner or an admin do it).
            let short: String = g.id.chars().take(16).collect();
            let name = format!("{short} r{}.{step}", round + 1);
            let intro = format!("renamed on the {} in round {}", side.label(), round + 1);
            let result = match side {
                Side::Legacy if !sys.old_is_im() => {
                    let body = json!({"operator": g.owner, "name": name, "introduction": intro});
                    sys.legacy_write(Method::PATCH, &format!("/api/groups/{}", g.id), body).await
                }
                _ => {
                    let body = json!({"GroupId": g.id, "Name": name, "Introduction": intro});
                    sys.app_as(side, &g.owner, "group_open_http_svc/modify_group_base_info", body).await.map(drop)
                }
            };
            turn.done(side, "group renamed", result);
        } else if roll < 17 {
            // A member invites someone.
            let outsiders: Vec<&String> = cast.users.iter().filter(|u| !g.members.contains(*u)).collect();
            let Some(newcomer) = outsiders.choose(&mut rng).map(|u| (*u).clone()) else { continue };
            let result = match side {
                Side::Legacy if !sys.old_is_im() => {
                    let body = json!({"members": [newcomer], "operator": actor});
                    sys.legacy_write(Method::POST, &format!("/api/groups/{}/members", g.id), body).await
                }
                _ => {
                    let body = json!({"GroupId": g.id, "MemberList": [{"Member_Account": newcomer}]});
                    sys.app_as(side, &actor, "group_open_http_svc/add_group_member", body).await.map(drop)
                }
            };
            if turn.done(side, "member joined", result) {
                g.members.insert(newcomer);
            }
        } else if roll < 25 && actor != g.owner && g.members.len() > 3 {
            // A member leaves on their own app.
            let result = match side {
                Side::Legacy if !sys.old_is_im() => {
                    let body = json!({"user_id": actor});
                    sys.legacy_write(Method::POST, &format!("/api/groups/{}/leave", g.id), body).await
                }
                _ => {
                    let body = json!({"GroupId": g.id});
                    sys.app_as(side, &actor, "group_open_http_svc/quit_group", body).await.map(drop)
                }
            };
            if turn.done(side, "member left", result) {
                g.members.remove(&actor);
            }
        } else {
            g.n += 1;
            let text = format!("[{} r{}] {actor} in {} #{}", side.label(), round + 1, g.id, g.n);
            let result = match side {
                Side::Legacy if !sys.old_is_im() => {
                    let body = json!({"from": actor, "body": text_body(&text)});
                    sys.legacy_write(Method::POST, &format!("/api/groups/{}/messages", g.id), body).await
                }
                _ => {
                    let body = json!({"GroupId": g.id, "Random": rng.random::<u32>(), "MsgBody": im_text(&text)});
                    sys.app_as(side, &actor, "group_open_http_svc/send_group_msg", body).await.map(drop)
                }
            };
            if turn.done(side, "group message", result) {
                turn.sent.push((key.clone(), text));
            }
        }
    }
    if last && g.dismiss {
        let result = match side {
            Side::Legacy if !sys.old_is_im() => sys
                .http
                .delete(format!("{}/api/groups/{}", sys.ep.legacy_url, g.id))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map(drop)
                .map_err(anyhow::Error::from),
            _ => sys
                .app_as(side, &g.owner, "group_open_http_svc/destroy_group", json!({"GroupId": g.id}))
                .await
                .map(drop),
        };
        turn.done(side, "group dismissed", result);
    }
    g
}
