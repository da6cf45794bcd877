//! Group members and groups one side lacks, repaired through the pipeline: `imbridge reconcile --once` decides
//! which side is right from the evidence both give (IM's `JoinTime` / `CreateTime`, legacy's `left_at`, the
//! origin it recorded) and produces the lifecycle events; to-im and to-legacy (real processes) apply them; both
//! sides then hold the same groups with the same members, and a second pass finds nothing.

use std::time::{Duration, Instant};

use imbridge_e2e::two_sided::World;
use imbridge_e2e::*;
use imbridge_im::types::group::{CreateGroupReq, GroupSpec};
use imbridge_legacy::SigningSecret;
use serde_json::{Value, json};

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json report")
}

/// A group's sorted members on each side (`None` where it does not exist).
async fn members(w: &World, g: &str) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let legacy = w.legacy.emulator().read(|s| {
        s.groups
            .get(&imbridge_core::GroupId::new_unchecked(g))
            .map(|g| g.members.keys().map(|u| u.to_string()).collect())
    });
    (legacy, group_members(&w.client, g).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_repairs_members_and_groups_one_side_lacks() {
    let _turn = turn(module_path!()).await;
    let sb = Sandbox::new("rcgroups", 2);
    create_topics(&sb.topics, 3).await;
    let w = World::start().await;
    w.users(&["ann", "bob", "cy", "dee"]).await;
    w.group("crew", "ann", &["bob"]).await;
    w.group("club", "ann", &[]).await;
    // IM's JoinTime and legacy's leave are whole seconds apart only after a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // IM is right: dee joined crew on IM (callback lost); cy's membership legacy copied from IM was ended on IM.
    w.im_only_member("crew", "dee").await;
    w.apply_one(json!({"id": "im:gevt:crew:join:1:x", "type": "group.members_joined", "time": 1_000, "origin": "im",
        "group_id": "crew", "members": ["cy"]}))
        .await;
    // Legacy is right: bob was kicked from crew on legacy, dee joined club on legacy (neither reached IM).
    w.legacy_post("/api/groups/crew/kick", json!({"operator": "ann", "members": ["bob"]})).await;
    w.legacy_post("/api/groups/club/members", json!({"operator": "ann", "members": ["dee"]})).await;
    // A group IM made whose creation callback was lost (no message: found through IM's group list), and one
    // legacy made that never reached IM.
    w.client
        .create_group(&CreateGroupReq {
            group: GroupSpec {
                group_type: "Public".into(),
                name: "IM only".into(),
                owner_account: Some("ann".into()),
                group_id: Some("imonly".into()),
                ..Default::default()
            },
            member_list: Some(vec![imbridge_im::types::group::CreateGroupMember {
                member_account: "bob".into(),
                ..Default::default()
            }]),
        })
        .await
        .expect("create group");
    w.legacy_post(
        "/api/groups",
        json!({"group_id": "lgonly", "name": "legacy only", "owner": "cy", "members": ["dee"]}),
    )
    .await;
    w.legacy_group_msg("lgonly", "cy", "legacy only", false).await;

    let mut sb = sb.with_im(&w.im).pipeline(&w.legacy.apply_url());
    sb.config.reconcile.legacy_url = w.legacy.url();
    sb.config.reconcile.legacy_secret = SigningSecret::new(APPLY_SECRET);
    let config = sb.write_config("imbridge");
    let rep = sb.file("repair.json");
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--report", rep.to_str().expect("utf8")]);
    assert!(ok, "every difference was repaired: {out}");
    let r = read_report(&rep);
    assert_eq!(r["kinds"]["group_members"]["repaired"], 4, "{out}");
    assert_eq!(r["kinds"]["groups"]["repaired"], 2, "{out}");
    assert_eq!(r["kinds"]["group_messages"]["repaired"], 1, "{out}");

    let mut procs = [sb.start(&config, &["to-im"], "to-im"), sb.start(&config, &["to-legacy"], "to-legacy")];
    let want = [
        ("crew", vec!["ann", "dee"]),
        ("club", vec!["ann", "dee"]),
        ("imonly", vec!["ann", "bob"]),
        ("lgonly", vec!["cy", "dee"]),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = true;
        for (g, m) in &want {
            let m: Vec<String> = m.iter().map(|s| (*s).to_owned()).collect();
            done &= members(&w, g).await == (Some(m.clone()), Some(m));
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            for (g, _) in &want {
                eprintln!("{g}: {:?}", members(&w, g).await);
            }
            panic!("not converged");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(group_texts(&w.client, "lgonly").await, ["legacy only"], "the created group's message followed it");

    let again = sb.file("again.json");
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--report", again.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    let r = read_report(&again);
    assert!(r["findings"].as_array().is_some_and(Vec::is_empty), "second pass: {out}");
    for p in &mut procs {
        p.terminate();
    }
}
