//! `imbridge verify` fails when IM differs from the export. A generated export is imported (real process, real
//! broker, the IM emulator over real HTTP) and verified clean; then IM is corrupted one item per kind of
//! difference — through IM's own REST API where it can express the change (an extra message, a profile field,
//! an unread count), through the emulator's test-only `tamper()` hooks where it cannot (a message deleted or
//! rewritten, two messages in each other's place, a friend or a member gone, a wrong role) — and verify must
//! report each one in its kind and exit non-zero.
//!
//! verify has no C2C read-state row (IM shows no read position); the read marks the import applied are probed
//! here instead: a live-imported message at a read mark's time must not count as unread for the reader.

use std::collections::{BTreeMap, HashMap};

use imbridge_core::Event;
use imbridge_core::event::{GroupType, MemberRole};
use imbridge_e2e::import::{World, assert_verified, small_export};
use imbridge_im::types::account::{PortraitSetReq, ProfileItem, ProfileValue, tags};
use imbridge_im::types::c2c::{GetC2cUnreadMsgNumReq, ImportMsgReq, SYNC_LIVE};
use imbridge_im::types::group::SetUnreadMsgNumReq;
use imbridge_im::{ImClient, MsgElement};
use imbridge_importer::ValidateOptions;

/// One kind's row of a verify report.
fn row(v: &serde_json::Value, kind: &str) -> (u64, u64, u64, u64, u64) {
    let k = v["kinds"].as_array().expect("kinds").iter().find(|k| k["kind"] == kind).unwrap_or_else(|| {
        panic!("verify has no {kind} row: {v}");
    });
    let n = |f: &str| k[f].as_u64().expect("count");
    (n("expected"), n("matched"), n("mismatched"), n("missing"), n("extra"))
}

fn examples(v: &serde_json::Value) -> Vec<String> {
    v["examples"].as_array().expect("examples").iter().map(|e| e.as_str().expect("text").to_owned()).collect()
}

/// What the export holds, read with the importer's own plan (valid records only, as verify reads it).
#[derive(Default)]
struct Export {
    nicks: Vec<String>,
    friendships: Vec<(String, String)>,
    /// Conversation → (from, to) of its first message and its message count.
    c2c: BTreeMap<String, ((String, String), usize)>,
    reads: Vec<(String, String, i64)>,
    groups: BTreeMap<String, (GroupType, Option<String>)>,
    members: BTreeMap<String, Vec<(String, MemberRole)>>,
    group_messages: HashMap<String, u64>,
    unread: HashMap<(String, String), u64>,
}

fn read_export(w: &World) -> Export {
    let (plan, _) = imbridge_importer::check_export(&w.export, &ValidateOptions::default(), false).expect("plan");
    let mut x = Export::default();
    let streams = [plan.accounts(), plan.users(), plan.c2c(), plan.groups()];
    for env in streams.into_iter().flatten() {
        let env = env.expect("record");
        match env.event {
            Event::ImportAccount(a) if a.nick.is_some() => x.nicks.push(a.user_id.into_string()),
            Event::ImportFriendship(f) => x.friendships.push((f.user_id.into_string(), f.friend_id.into_string())),
            Event::ImportC2cMessage(m) => {
                let e = x
                    .c2c
                    .entry(env.conversation.as_str().to_owned())
                    .or_insert_with(|| ((m.from.as_str().to_owned(), m.to.as_str().to_owned()), 0));
                e.1 += 1;
            }
            Event::ImportC2cRead(r) => {
                x.reads.push((r.user_id.into_string(), r.peer_id.into_string(), r.read_at.as_secs()))
            }
            Event::ImportGroup(g) => {
                x.groups
                    .insert(g.group_id.as_str().to_owned(), (g.group_type, g.profile.owner.map(|o| o.into_string())));
            }
            Event::ImportGroupMember(m) => {
                x.members.entry(m.group_id.as_str().to_owned()).or_default().push((m.user_id.into_string(), m.role))
            }
            Event::ImportGroupMessage(m) => *x.group_messages.entry(m.group_id.as_str().to_owned()).or_default() += 1,
            Event::ImportMemberUnread(u) => {
                x.unread.insert((u.group_id.as_str().to_owned(), u.user_id.into_string()), u64::from(u.unread));
            }
            _ => {}
        }
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_every_kind_of_difference_and_exits_non_zero() {
    let _turn = imbridge_e2e::turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let w = World::new("verify-fails", small_export(600, 300), false).await;
    let (status, report) = w.import("import").await;
    assert!(status.success(), "import failed: {status}\n{}", w.output("import"));
    assert!(report.is_some(), "import wrote no report");
    let (status, clean) = w.verify("verify-clean").await;
    assert!(status.success(), "verify of the untouched import failed: {status}\n{}", w.output("verify-clean"));
    assert_verified(&clean, "before any corruption");
    for kind in ["accounts", "profiles", "friends", "c2c_messages", "groups", "group_members", "group_messages"] {
        assert!(row(&clean, kind).0 > 0, "the export has nothing of {kind}: this test would prove nothing");
    }
    let (_, clean_c2c, ..) = row(&clean, "c2c_messages");

    let x = read_export(&w);
    let emu = w.emulator.emulator();
    let t = emu.tamper();
    let im = ImClient::new(&w.emulator.client_config(), &prometheus::Registry::new()).expect("im client");

    // 1:1 history: four different conversations, the first one holding a read mark.
    let (reader, peer, read_at) = x
        .reads
        .iter()
        .find(|(u, p, _)| x.c2c.contains_key(&conversation(u, p)))
        .cloned()
        .expect("a read mark of a conversation with history");
    let others: Vec<(String, String)> = x
        .c2c
        .iter()
        .filter(|(k, (_, n))| **k != conversation(&reader, &peer) && *n >= 3)
        .map(|(_, (pair, _))| pair.clone())
        .take(3)
        .collect();
    assert_eq!(others.len(), 3, "the export needs three more conversations with history");
    let [(a1, b1), (a2, b2), (a3, b3)] = [&others[0], &others[1], &others[2]];
    // A message missing.
    assert!(t.remove_c2c_message(a1, b1, 0));
    // A message's body changed.
    let tampered = serde_json::json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "tampered"}}]);
    assert!(t.set_c2c_body(a2, b2, 1, tampered));
    // Two messages in each other's place (IM orders 1:1 history by time: their times swapped).
    let last = t.c2c_len(a3, b3) - 1;
    assert!(t.swap_c2c_times(a3, b3, 0, last));
    // Extra messages, through the REST API: a live import from the peer at the reader's read mark (already read
    // if the import applied the mark), and one a second later (unread: the probe can tell the difference).
    for (offset, random) in [(0, 0x5eed_0001), (1, 0x5eed_0002)] {
        im.importmsg(&ImportMsgReq {
            sync_from_old_system: SYNC_LIVE,
            from_account: peer.clone(),
            to_account: reader.clone(),
            msg_seq: Some(random),
            msg_random: random,
            msg_time_stamp: read_at + offset,
            msg_body: vec![MsgElement::text("not in the export")],
            cloud_custom_data: None,
        })
        .await
        .expect("importmsg");
    }
    let unread = im
        .get_c2c_unread_msg_num(&GetC2cUnreadMsgNumReq {
            to_account: reader.clone(),
            peer_account: Some(vec![peer.clone()]),
        })
        .await
        .expect("unread");
    assert_eq!(
        unread.unread_from(&peer),
        Some(1),
        "{reader} read {peer}'s messages up to {read_at}: only the message after it is unread"
    );

    // A profile field changed, through portrait_set.
    let nick_user = x.nicks.first().cloned().expect("an account with a nick");
    let req = PortraitSetReq {
        from_account: nick_user.clone(),
        profile_item: vec![ProfileItem { tag: tags::NICK.to_owned(), value: ProfileValue::Str("tampered".into()) }],
    };
    im.portrait_set(&req).await.expect("portrait_set");

    // A friend missing (one direction of a friendship).
    let (user, friend) = x.friendships.first().cloned().expect("a friendship");
    assert!(t.remove_friend(&user, &friend));

    // Groups: one group that keeps unread counts, with history and three ordinary members.
    let (gid, members) = x
        .groups
        .iter()
        .filter(|(g, (ty, _))| {
            !matches!(ty, GroupType::ChatRoom) && x.group_messages.get(*g).copied().unwrap_or(0) >= 3
        })
        .find_map(|(g, (_, owner))| {
            let plain: Vec<String> = x
                .members
                .get(g)?
                .iter()
                .filter(|(u, r)| Some(u) != owner.as_ref() && matches!(r, MemberRole::Member))
                .map(|(u, _)| u.clone())
                .collect();
            (plain.len() >= 3).then(|| (g.clone(), plain))
        })
        .expect("a group with history and three ordinary members");
    let messages = x.group_messages[&gid];
    // Two messages in each other's place (each keeps its seq).
    assert!(t.group_msg_len(&gid) >= 2);
    assert!(t.swap_group_messages(&gid, 0, 1));
    // A member missing.
    assert!(t.remove_group_member(&gid, &members[0]));
    // A wrong role.
    assert!(t.set_member_role(&gid, &members[1], "Admin"));
    // An unread count off by one, through set_unread_msg_num.
    let want = x.unread.get(&(gid.clone(), members[2].clone())).copied().unwrap_or(0).min(messages);
    let off = if want < messages { want + 1 } else { want - 1 };
    im.set_unread_msg_num(&SetUnreadMsgNumReq {
        group_id: gid.clone(),
        member_account: members[2].clone(),
        unread_msg_num: off,
    })
    .await
    .expect("set_unread_msg_num");

    let (status, v) = w.verify("verify-corrupt").await;
    let out = w.output("verify-corrupt");
    assert_eq!(status.code(), Some(1), "verify must exit 1 on a mismatch: {status}\n{out}");
    assert!(out.contains("verify: MISMATCH"), "{out}");
    let ex = examples(&v);
    let has = |needle: &str| ex.iter().any(|e| e.contains(needle));

    // (expected, matched, mismatched, missing, extra) per kind.
    assert_eq!(row(&v, "accounts"), row(&clean, "accounts"), "accounts were not touched");
    let (e, ..) = row(&v, "profiles");
    assert_eq!(row(&v, "profiles"), (e, e - 1, 1, 0, 0), "profile field changed: {ex:?}");
    assert!(has(&format!("profiles: {nick_user}: {}", tags::NICK)), "{ex:?}");
    let (e, ..) = row(&v, "friends");
    assert_eq!(row(&v, "friends"), (e, e - 1, 0, 1, 0), "friend missing: {ex:?}");
    assert!(has(&format!("friends: {user} → {friend} missing")), "{ex:?}");
    let (e, ..) = row(&v, "c2c_messages");
    // 1 missing; 1 body + 2 out of place = 3 mismatched; 2 extra (the read-mark probes).
    assert_eq!(row(&v, "c2c_messages"), (e, clean_c2c - 4, 3, 1, 2), "1:1 history: {ex:?}");
    assert!(ex.iter().any(|e| e.contains(&conversation(a1, b1)) && e.ends_with("missing")), "{ex:?}");
    assert!(ex.iter().any(|e| e.contains(&conversation(a2, b2)) && e.contains("tampered")), "{ex:?}");
    assert_eq!(ex.iter().filter(|e| e.contains(&conversation(a3, b3)) && e.contains("differs")).count(), 2, "{ex:?}");
    assert!(has(&format!("{}: 2 message(s) in IM not in the export", conversation(&reader, &peer))), "{ex:?}");
    assert_eq!(row(&v, "groups"), row(&clean, "groups"), "group profiles were not touched");
    let (e, ..) = row(&v, "group_members");
    assert_eq!(row(&v, "group_members"), (e, e - 2, 1, 1, 0), "member missing and wrong role: {ex:?}");
    assert!(has(&format!("group_members: {gid}: member {} missing", members[0])), "{ex:?}");
    assert!(has(&format!("group_members: {gid}: {}: role: want Member", members[1])), "{ex:?}");
    let (e, ..) = row(&v, "group_messages");
    // Both swapped messages are found and correct; their order is the one difference.
    assert_eq!(row(&v, "group_messages"), (e, e, 1, 0, 0), "group messages swapped: {ex:?}");
    assert!(has(&format!("group_messages: {gid}: messages out of legacy order")), "{ex:?}");
    let (e, ..) = row(&v, "member_unread");
    // The removed member has no read position any more; the other is off by one.
    assert_eq!(row(&v, "member_unread"), (e, e - 2, 1, 1, 0), "unread: {ex:?}");
    assert!(has(&format!("member_unread: {gid}: {} has {off} unread, want {want}", members[2])), "{ex:?}");
}

/// The conversation key of two users.
fn conversation(a: &str, b: &str) -> String {
    if a <= b { format!("c2c:{a}:{b}") } else { format!("c2c:{b}:{a}") }
}
