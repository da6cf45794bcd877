//! A pass over two real emulators without Kafka: every kind of difference is found and counted, matching copies
//! count as identical, and nothing is written anywhere.

use imbridge_core::ConversationKey;
use imbridge_core::topics::TopicNames;
use imbridge_e2e::two_sided::{self, World};
use imbridge_im::ImClient;
use imbridge_reconcile::{Difference, Kind, Reconciler, Scope};

fn reconciler(w: &World) -> Reconciler {
    let registry = prometheus::Registry::new();
    Reconciler {
        im: ImClient::new(&w.im.client_config(), &registry).expect("client"),
        im_registry: registry,
        legacy: w.read_client(),
        producer: None,
        topics: TopicNames::default(),
        max_users: 100,
    }
}

#[tokio::test]
async fn finds_every_kind_of_difference_and_writes_nothing() {
    let w = World::start().await;
    // In step: two copies each way.
    w.in_step().await;
    // One side only.
    let lost_on_im = w.legacy_c2c("ann", "bob", "dropped by to-im", false).await;
    let lost_on_legacy = w.im_c2c("cy", "ann", "callback dropped", false).await;
    let lost_group_legacy = w.legacy_group_msg("crew", "bob", "outbox wiped", false).await;
    let lost_group_im = w.im_group_msg("crew", "ann", "group callback dropped", false).await;
    w.im_only_member("crew", "dee").await;
    let before = (w.legacy.stats(), w.im.emulator().stats().requests.clone());

    let r = reconciler(&w);
    let report = r.reconcile_once(&Scope::default(), true).await.expect("pass");
    println!("{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // c2c:ann:bob (legacy digest), c2c:ann:cy (found only through ann's IM conversation list), group:crew.
    assert_eq!(report.conversations_checked, 3);
    let c2c = report.kinds[&Kind::C2cMessages];
    assert_eq!((c2c.checked, c2c.identical, c2c.missing_in_im, c2c.missing_in_legacy), (4, 2, 1, 1));
    let g = report.kinds[&Kind::GroupMessages];
    assert_eq!((g.checked, g.identical, g.missing_in_im, g.missing_in_legacy), (4, 2, 1, 1));
    let m = report.kinds[&Kind::GroupMembers];
    assert_eq!((m.checked, m.identical, m.missing_in_legacy), (3, 2, 1));
    assert_eq!(report.kinds[&Kind::GroupProfile].identical, 1);
    assert_eq!(report.repaired(), 0, "a dry run repairs nothing");
    let items: Vec<(Difference, &str, Option<&str>)> = report
        .findings
        .iter()
        .filter(|f| f.kind != Kind::GroupMembers)
        .map(|f| (f.difference, f.item.as_str(), f.repair_event.as_deref()))
        .collect();
    let legacy_event = format!("legacy:{lost_on_im}");
    let group_legacy_event = format!("legacy:{lost_group_legacy}");
    let group_im_event = format!("im:gmsg:crew:{lost_group_im}");
    assert!(items.contains(&(Difference::MissingInIm, lost_on_im.as_str(), Some(legacy_event.as_str()))), "{items:?}");
    assert!(items.iter().any(|(d, _, e)| *d == Difference::MissingInLegacy && *e == Some(lost_on_legacy.as_str())));
    assert!(items.contains(&(Difference::MissingInIm, lost_group_legacy.as_str(), Some(group_legacy_event.as_str()))));
    assert!(items.iter().any(|(d, _, e)| *d == Difference::MissingInLegacy && *e == Some(group_im_event.as_str())));
    assert!(report.im_calls > 0 && report.im_calls < 20, "IM calls spent: {}", report.im_calls);
    // Nothing changed on either side (only reads were made).
    let after = (w.legacy.stats(), w.im.emulator().stats().requests.clone());
    assert_eq!(before.0, after.0);
    let writes = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .filter(|(k, _)| k.contains("send") || k.contains("import") || k.contains("add"))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    assert_eq!(writes(&before.1), writes(&after.1));

    // One conversation only, and the JSON report says the same as the table.
    let one = Scope {
        conversations: vec![ConversationKey::parse("c2c:ann:cy").expect("key")],
        since: None,
        ..Scope::default()
    };
    let report = r.reconcile_once(&one, true).await.expect("pass");
    assert_eq!(report.conversations_checked, 1);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["kinds"]["c2c_messages"]["missing_in_legacy"], 1);
    assert_eq!(json["findings"][0]["not_repaired"], "dry run");
}

#[tokio::test]
async fn changed_content_and_windows() {
    use imbridge_core::{EventId, TimestampMs};
    use imbridge_im::MsgElement;
    use imbridge_im::types::c2c::SendMsgReq;

    let w = World::start().await;
    w.users(&["ann", "bob"]).await;
    w.legacy_c2c("ann", "bob", "same", true).await;
    // A copy on IM under the right identity but with other content.
    let v = w
        .legacy_post(
            "/api/messages",
            serde_json::json!({"from":"ann","to":"bob",
        "body":[{"type":"text","text":"original"}]}),
        )
        .await;
    let id = v["id"].as_str().expect("id").to_owned();
    w.client
        .sendmsg(&SendMsgReq {
            from_account: Some("ann".into()),
            to_account: "bob".into(),
            msg_seq: Some(1000),
            msg_random: EventId::legacy(&id).stable_u32(),
            msg_body: vec![MsgElement::text("edited")],
            cloud_custom_data: Some(two_sided::MARKER.into()),
            ..Default::default()
        })
        .await
        .expect("send");
    let r = reconciler(&w);
    let report = r.reconcile_once(&Scope::default(), false).await.expect("pass");
    let row = report.kinds[&Kind::C2cMessages];
    assert_eq!((row.checked, row.identical, row.different, row.repaired), (2, 1, 1, 0));
    let f = &report.findings[0];
    assert_eq!((f.difference, f.item.as_str()), (Difference::Different, id.as_str()));
    assert!(f.not_repaired.as_deref().is_some_and(|r| r.contains("deduplicated")), "{f:?}");

    // A window after everything: nothing to compare, and no IM conversation list either.
    let later = TimestampMs(TimestampMs::now().0 + 3_600_000);
    let report = r
        .reconcile_once(&Scope { conversations: Vec::new(), since: Some(later), ..Scope::default() }, true)
        .await
        .expect("pass");
    assert_eq!((report.conversations_checked, report.im_calls, report.legacy_calls), (0, 0, 1));
}

/// A group profile difference is repaired from the side that changed its profile last (legacy's
/// `profile_updated_at` against IM's `LastInfoTime`), with an event of that side's origin; the owner is never.
#[tokio::test]
async fn group_profile_the_side_that_changed_last_wins() {
    use imbridge_im::types::group::ModifyGroupBaseInfoReq;
    use serde_json::json;

    let w = World::start().await;
    w.users(&["ann", "bob"]).await;
    w.group("crew", "ann", &["bob"]).await;
    let one = Scope { conversations: vec![ConversationKey::parse("group:crew").expect("key")], ..Scope::default() };
    let profile = |r: &imbridge_reconcile::Report| -> Vec<(String, Option<String>)> {
        r.findings
            .iter()
            .filter(|f| f.kind == Kind::GroupProfile)
            .map(|f| (f.item.clone(), f.repair_event.clone()))
            .collect()
    };
    // IM keeps second resolution: the next change must fall in a later second to be known as later.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let resp = w
        .http
        .patch(format!("{}/api/groups/crew", w.legacy.url()))
        .json(&json!({"name": "Crew (renamed on legacy)"}))
        .send()
        .await
        .expect("patch");
    assert!(resp.status().is_success(), "{}", resp.status());
    let r = reconciler(&w).reconcile_once(&one, true).await.expect("pass");
    let p = profile(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "name");
    assert!(p[0].1.as_deref().is_some_and(|e| e.starts_with("legacy:reconcile:crew:profile:")), "{p:?}");

    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    w.client
        .modify_group_base_info(&ModifyGroupBaseInfoReq {
            group_id: "crew".into(),
            introduction: Some("changed on IM".into()),
            ..Default::default()
        })
        .await
        .expect("modify on im");
    let r = reconciler(&w).reconcile_once(&one, true).await.expect("pass");
    let p = profile(&r);
    // IM changed last: its whole profile is right, for every differing field, in one event.
    assert_eq!(p.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["name", "introduction"], "{p:?}");
    assert!(p.iter().all(|(_, e)| e.as_deref().is_some_and(|e| e.starts_with("im:gevt:crew:reconcile.profile:"))));
    assert_eq!(p[0].1, p[1].1, "one event repairs both");
    assert_eq!(r.kinds[&Kind::GroupProfile].different, 2);
}

/// Accounts and profiles of the users of the conversations found: an account on one side only, and a nick that
/// differs, are reported (no live event creates an account or sets a profile).
#[tokio::test]
async fn accounts_and_profiles_are_compared() {
    use imbridge_im::types::account::AccountImportReq;
    use serde_json::json;

    let w = World::start().await;
    w.users(&["ann", "bob"]).await;
    // eve is on legacy only; fay on IM only; ann's nick differs.
    w.legacy_post("/api/users", json!({"user_id": "eve"})).await;
    w.client
        .account_import(&AccountImportReq { user_id: "fay".into(), nick: None, face_url: None })
        .await
        .expect("fay");
    w.client
        .account_import(&AccountImportReq { user_id: "ann".into(), nick: Some("Ann on IM".into()), face_url: None })
        .await
        .expect("ann's nick");
    w.legacy_c2c("ann", "bob", "hello", true).await;
    w.legacy_c2c("eve", "ann", "from legacy only", false).await;
    w.im_c2c("fay", "bob", "from IM only", false).await;
    let report = reconciler(&w).reconcile_once(&Scope::default(), true).await.expect("pass");
    println!("{}", report.table());
    let found: Vec<(Kind, Difference, &str)> = report
        .findings
        .iter()
        .filter(|f| matches!(f.kind, Kind::Accounts | Kind::Profiles))
        .map(|f| (f.kind, f.difference, f.item.as_str()))
        .collect();
    assert_eq!(
        found,
        // In user id order.
        [
            (Kind::Profiles, Difference::Different, "ann:nick"),
            (Kind::Accounts, Difference::MissingInIm, "eve"),
            (Kind::Accounts, Difference::MissingInLegacy, "fay"),
        ],
        "{}",
        report.table()
    );
    let a = report.kinds[&Kind::Accounts];
    assert_eq!((a.checked, a.identical, a.missing_in_im, a.missing_in_legacy), (4, 2, 1, 1));
    let p = report.kinds[&Kind::Profiles];
    assert_eq!((p.checked, p.identical, p.different), (2, 1, 1));
}

#[tokio::test]
async fn members_and_groups_on_one_side_only_are_decided_from_evidence() {
    use imbridge_im::types::group::{CreateGroupReq, GroupSpec};
    use serde_json::json;
    let w = World::start().await;
    w.in_step().await;
    // IM's JoinTime and legacy's leave are compared in whole seconds: the kick below must fall in a later one.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // dee joined on IM, the callback lost: IM is right.
    w.im_only_member("crew", "dee").await;
    // cy joined on IM and reached legacy (imbridge applied it), then left IM with the callback lost: IM is right.
    w.apply_one(json!({"id": "im:gevt:crew:join:1:x", "type": "group.members_joined", "time": 1_000, "origin": "im",
        "group_id": "crew", "members": ["cy"]}))
        .await;
    // bob was kicked on legacy after he joined IM, and the kick never reached IM: legacy is right.
    w.legacy_post("/api/groups/crew/kick", json!({"operator": "ann", "members": ["bob"]})).await;
    w.group("club", "ann", &[]).await;
    w.legacy_group_msg("club", "ann", "in step", true).await;
    // dee joined club on legacy and the join never reached IM: legacy is right.
    w.legacy_post("/api/groups/club/members", json!({"operator": "ann", "members": ["dee"]})).await;
    // A group legacy made that never reached IM, and one IM made whose creation callback was lost.
    w.legacy_post("/api/groups", json!({"group_id": "lgonly", "name": "lgonly", "owner": "ann", "members": ["bob"]}))
        .await;
    w.legacy_group_msg("lgonly", "ann", "legacy only", false).await;
    w.client
        .create_group(&CreateGroupReq {
            group: GroupSpec {
                group_type: "Public".into(),
                name: "imonly".into(),
                owner_account: Some("ann".into()),
                group_id: Some("imonly".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("create group");
    let seq = w.im_group_msg("imonly", "ann", "im only", false).await;

    let report = reconciler(&w).reconcile_once(&Scope::default(), true).await.expect("pass");
    println!("{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let repair = |conversation: &str, kind: Kind, item: &str| {
        report
            .findings
            .iter()
            .find(|f| f.conversation == conversation && f.kind == kind && f.item == item)
            .unwrap_or_else(|| panic!("{conversation} {item}: {:#?}", report.findings))
            .repair_event
            .clone()
            .unwrap_or_default()
    };
    assert!(repair("group:crew", Kind::GroupMembers, "dee").starts_with("im:gevt:crew:reconcile.join:"));
    assert!(repair("group:crew", Kind::GroupMembers, "cy").starts_with("im:gevt:crew:reconcile.leave:"));
    assert!(repair("group:crew", Kind::GroupMembers, "bob").starts_with("legacy:reconcile:crew:leave:bob:"));
    assert!(repair("group:club", Kind::GroupMembers, "dee").starts_with("legacy:reconcile:club:join:dee:"));
    assert_eq!(repair("group:lgonly", Kind::Groups, "lgonly"), "legacy:reconcile:lgonly:create");
    assert!(repair("group:imonly", Kind::Groups, "imonly").starts_with("im:gevt:imonly:reconcile.create:"));
    // The created group's messages follow its creation.
    assert_eq!(repair("group:imonly", Kind::GroupMessages, &seq.to_string()), format!("im:gmsg:imonly:{seq}"));
    let groups = report.kinds[&Kind::Groups];
    assert_eq!((groups.missing_in_im, groups.missing_in_legacy), (1, 1));
    let m = report.kinds[&Kind::GroupMembers];
    assert_eq!(
        (m.missing_in_im, m.missing_in_legacy),
        (2, 2),
        "cy and dee (club) on legacy only, bob and dee on IM only"
    );
    assert_eq!((groups.checked, groups.identical), (4, 2), "crew and club on both sides");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["kinds"]["groups"]["missing_in_legacy"], 1);
}
