//! The client against the IM emulator over real HTTP: one end-to-end pass through every API family, so a
//! field-name or envelope mismatch between `imbridge-im` and `imbridge-im-emulator` fails here. (The
//! emulator's own conformance tests go deeper, through the client and through raw HTTP.)

use imbridge_core::Element;
use imbridge_im::types::MemberAccount;
use imbridge_im::types::account::{
    AccountImportReq, MultiAccountImportReq, PortraitGetReq, PortraitSetReq, ProfileItem, ProfileValue, tags,
};
use imbridge_im::types::c2c::{
    AdminSetMsgReadReq, FORBID_AFTER_SEND_CALLBACK, GetC2cUnreadMsgNumReq, ImportMsgReq, SYNC_HISTORY, SYNC_LIVE,
    SendMsgReq,
};
use imbridge_im::types::group::{
    AddGroupMemberReq, CreateGroupReq, DeleteGroupMemberReq, DestroyGroupReq, GroupInfoFilter, GroupSpec,
    ImportGroupMemberReq, ImportGroupMsgItem, ImportGroupMsgReq, ImportGroupReq, ImportMember, ModifyGroupBaseInfoReq,
    SendGroupMsgReq, SetUnreadMsgNumReq,
};
use imbridge_im::types::sns::{FriendImportItem, FriendImportReq};
use imbridge_im::{ImClient, ImConfig, ImError, from_im_body, to_im_body};
use imbridge_im_emulator::EmulatorConfig;
use prometheus::Registry;

fn now() -> i64 {
    imbridge_im::sigcache::unix_now_secs() as i64
}

async fn setup() -> (imbridge_im_emulator::RunningEmulator, ImClient) {
    let emu = imbridge_im_emulator::spawn(EmulatorConfig::default()).await.expect("emulator starts");
    let cfg = ImConfig {
        base_url: emu.base_url(),
        sdkappid: emu.emulator().config().sdkappid,
        secret_key: emu.emulator().config().secret_key.clone(),
        ..ImConfig::default()
    };
    let client = ImClient::new(&cfg, &Registry::new()).expect("client");
    (emu, client)
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn accounts_profiles_friends() {
    let (_emu, c) = setup().await;
    c.account_import(&AccountImportReq { user_id: "ann".into(), nick: Some("Ann".into()), face_url: None })
        .await
        .expect("account_import");
    let multi = c
        .multiaccount_import(&MultiAccountImportReq {
            accounts: None,
            account_list: Some(vec![
                AccountImportReq { user_id: "bob".into(), ..Default::default() },
                AccountImportReq { user_id: "cat".into(), ..Default::default() },
            ]),
        })
        .await
        .expect("multiaccount_import");
    assert!(multi.failed().is_empty());

    let checked = c.check_accounts(&ids(&["ann", "bob", "cat", "nobody"])).await.expect("account_check");
    assert_eq!(checked.len(), 4);
    let not: Vec<_> =
        checked.iter().filter(|i| i.account_status == "NotImported").map(|i| i.user_id.as_str()).collect();
    assert_eq!(not, ["nobody"]);

    c.portrait_set(&PortraitSetReq {
        from_account: "ann".into(),
        profile_item: vec![ProfileItem::string(tags::NICK, "Annie"), ProfileItem::int(tags::LEVEL, 3)],
    })
    .await
    .expect("portrait_set");
    let p = c
        .portrait_get(&PortraitGetReq { to_account: ids(&["ann"]), tag_list: ids(&[tags::NICK, tags::LEVEL]) })
        .await
        .expect("portrait_get");
    let ann = &p.user_profile_item[0];
    assert_eq!(ann.get(tags::NICK), Some(&ProfileValue::Str("Annie".into())));
    assert_eq!(ann.get(tags::LEVEL), Some(&ProfileValue::Int(3)));

    let fr = c
        .friend_import(&FriendImportReq {
            from_account: "ann".into(),
            add_friend_item: ["bob", "cat"]
                .iter()
                .map(|to| FriendImportItem {
                    to_account: (*to).into(),
                    add_source: "AddSource_Type_Web".into(),
                    remark: Some(format!("r-{to}")),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .expect("friend_import");
    assert_eq!(fr.failed().count(), 0);
    let mut friends: Vec<String> =
        c.all_friends("ann").await.expect("friend_get").into_iter().map(|f| f.to_account).collect();
    friends.sort();
    assert_eq!(friends, ["bob", "cat"]);
}

#[tokio::test]
async fn c2c_import_send_read_and_history() {
    let (_emu, c) = setup().await;
    for u in ["ann", "bob"] {
        c.account_import(&AccountImportReq { user_id: u.into(), ..Default::default() }).await.expect("import");
    }
    let t0 = now() - 3600;
    let canonical = vec![
        Element::Text { text: "hello".into() },
        Element::Image { url: "https://cdn.example/a.png".into(), width: Some(10), height: Some(20), size: Some(30) },
        Element::Custom { data: "{\"x\":1}".into(), desc: None, ext: Some("e".into()) },
    ];
    for i in 0..3u32 {
        let req = ImportMsgReq {
            sync_from_old_system: SYNC_HISTORY,
            from_account: if i % 2 == 0 { "ann" } else { "bob" }.into(),
            to_account: if i % 2 == 0 { "bob" } else { "ann" }.into(),
            msg_seq: Some(i + 1),
            msg_random: 1000 + i,
            msg_time_stamp: t0 + i64::from(i),
            msg_body: to_im_body(&canonical),
            cloud_custom_data: Some("origin:legacy".into()),
        };
        c.importmsg(&req).await.expect("importmsg");
        // A replay is deduplicated by IM (first write wins) and still answers OK.
        c.importmsg(&req).await.expect("replayed importmsg");
    }
    // Live import counts as unread for bob.
    c.importmsg(&ImportMsgReq {
        sync_from_old_system: SYNC_LIVE,
        from_account: "ann".into(),
        to_account: "bob".into(),
        msg_seq: Some(9),
        msg_random: 9,
        msg_time_stamp: t0 + 10,
        msg_body: to_im_body(&[Element::Text { text: "live".into() }]),
        cloud_custom_data: None,
    })
    .await
    .expect("live importmsg");

    let sent = c
        .sendmsg(&SendMsgReq {
            from_account: Some("bob".into()),
            to_account: "ann".into(),
            msg_seq: Some(77),
            msg_random: 4242,
            forbid_callback_control: Some(vec![FORBID_AFTER_SEND_CALLBACK.into()]),
            msg_body: to_im_body(&[Element::Text { text: "sent".into() }]),
            ..Default::default()
        })
        .await
        .expect("sendmsg");
    assert!(!sent.msg_key.is_empty());

    let unread = c
        .get_c2c_unread_msg_num(&GetC2cUnreadMsgNumReq { to_account: "bob".into(), peer_account: Some(ids(&["ann"])) })
        .await
        .expect("unread");
    assert_eq!(unread.unread_from("ann"), Some(1), "only the SyncFromOldSystem=5 import is unread");
    c.admin_set_msg_read(&AdminSetMsgReadReq {
        report_account: "bob".into(),
        peer_account: "ann".into(),
        msg_read_time: None,
    })
    .await
    .expect("admin_set_msg_read");
    let unread = c
        .get_c2c_unread_msg_num(&GetC2cUnreadMsgNumReq { to_account: "bob".into(), peer_account: Some(ids(&["ann"])) })
        .await
        .expect("unread");
    assert_eq!(unread.unread_from("ann"), Some(0));

    let hist = c.c2c_history("ann", "bob", t0 - 10, now() + 10).await.expect("admin_getroammsg");
    assert_eq!(hist.len(), 5, "3 history imports (deduplicated) + 1 live import + 1 send");
    assert_eq!(hist[0].msg_seq, 1);
    assert_eq!(from_im_body(&hist[0].msg_body).expect("canonical"), canonical, "body survives the round trip");
    assert_eq!(hist[0].cloud_custom_data.as_deref(), Some("origin:legacy"));
    assert_eq!(hist.last().map(|m| m.msg_key.as_str()), Some(sent.msg_key.as_str()));

    let err = c
        .importmsg(&ImportMsgReq {
            sync_from_old_system: SYNC_HISTORY,
            from_account: "nobody".into(),
            to_account: "bob".into(),
            msg_seq: Some(1),
            msg_random: 1,
            msg_time_stamp: t0,
            msg_body: to_im_body(&[Element::Text { text: "x".into() }]),
            cloud_custom_data: None,
        })
        .await
        .expect_err("unknown sender");
    assert!(matches!(err, ImError::Api { .. }) && !err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn groups_import_live_and_read() {
    let (_emu, c) = setup().await;
    for u in ["ann", "bob", "cat", "dan"] {
        c.account_import(&AccountImportReq { user_id: u.into(), ..Default::default() }).await.expect("import");
    }
    let t0 = now() - 7200;
    let g = c
        .import_group(&ImportGroupReq {
            group: GroupSpec {
                group_type: "Public".into(),
                name: "team".into(),
                owner_account: Some("ann".into()),
                group_id: Some("team-1".into()),
                ..Default::default()
            },
            create_time: Some(t0),
        })
        .await
        .expect("import_group");
    assert_eq!(g.group_id, "team-1");
    let m = c
        .import_group_member(&ImportGroupMemberReq {
            group_id: "team-1".into(),
            member_list: ["bob", "cat"]
                .iter()
                .map(|u| ImportMember { member_account: (*u).into(), join_time: Some(t0 + 1), ..Default::default() })
                .collect(),
        })
        .await
        .expect("import_group_member");
    assert_eq!(m.failed().count(), 0);
    let msgs = c
        .import_group_msg(&ImportGroupMsgReq {
            group_id: "team-1".into(),
            recent_contact_flag: None,
            msg_list: (0..3)
                .map(|i| ImportGroupMsgItem {
                    from_account: "bob".into(),
                    send_time: t0 + 10 + i,
                    random: Some(500 + i as u32),
                    msg_body: to_im_body(&[Element::Text { text: format!("m{i}") }]),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .expect("import_group_msg");
    assert_eq!(msgs.failed().count(), 0);
    assert_eq!(msgs.import_msg_result.len(), 3);
    c.set_unread_msg_num(&SetUnreadMsgNumReq {
        group_id: "team-1".into(),
        member_account: "cat".into(),
        unread_msg_num: 2,
    })
    .await
    .expect("set_unread_msg_num");

    let hist = c.group_history("team-1", false).await.expect("group_msg_get_simple");
    let texts: Vec<String> = hist
        .iter()
        .filter(|m| m.is_place_msg == 0 && !m.msg_body.is_empty())
        .flat_map(|m| from_im_body(&m.msg_body).expect("canonical"))
        .filter_map(|e| match e {
            Element::Text { text } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2"]);

    // Live group changes.
    let created = c
        .create_group(&CreateGroupReq {
            group: GroupSpec {
                group_type: "Private".into(),
                name: "live".into(),
                owner_account: Some("ann".into()),
                group_id: Some("live-1".into()),
                ..Default::default()
            },
            member_list: None,
        })
        .await
        .expect("create_group");
    assert_eq!(created.group_id, "live-1");
    c.modify_group_base_info(&ModifyGroupBaseInfoReq {
        group_id: "live-1".into(),
        name: Some("renamed".into()),
        ..Default::default()
    })
    .await
    .expect("modify_group_base_info");
    let added = c
        .add_group_member(&AddGroupMemberReq {
            group_id: "live-1".into(),
            silence: Some(1),
            member_list: vec![MemberAccount::new("bob"), MemberAccount::new("dan")],
        })
        .await
        .expect("add_group_member");
    assert_eq!(added.failed().count(), 0);
    let sent = c
        .send_group_msg(&SendGroupMsgReq {
            group_id: "live-1".into(),
            random: 31337,
            from_account: Some("bob".into()),
            msg_body: to_im_body(&[Element::Text { text: "hi group".into() }]),
            ..Default::default()
        })
        .await
        .expect("send_group_msg");
    assert!(sent.msg_seq >= 1);
    c.delete_group_member(&DeleteGroupMemberReq {
        group_id: "live-1".into(),
        member_to_del_account: ids(&["dan"]),
        ..Default::default()
    })
    .await
    .expect("delete_group_member");

    let members: Vec<String> = c
        .all_group_members("live-1", None)
        .await
        .expect("get_group_member_info")
        .into_iter()
        .map(|m| m.member_account)
        .collect();
    let mut sorted = members.clone();
    sorted.sort();
    assert_eq!(sorted, ["ann", "bob"]);

    let infos = c
        .group_infos(
            &ids(&["team-1", "live-1", "missing"]),
            Some(GroupInfoFilter {
                group_base_info_filter: Some(ids(&["Type", "Name", "Owner_Account", "MemberNum", "NextMsgSeq"])),
                ..Default::default()
            }),
        )
        .await
        .expect("get_group_info");
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[1].name.as_deref(), Some("renamed"));
    assert_eq!(infos[0].member_num, Some(3));
    assert!(infos[2].error_code != 0, "a missing group fails per item");

    let mut all = c.all_group_ids(None).await.expect("get_appid_group_list");
    all.sort();
    assert_eq!(all, ["live-1", "team-1"]);

    c.destroy_group(&DestroyGroupReq { group_id: "live-1".into() }).await.expect("destroy_group");
    let err = c.destroy_group(&DestroyGroupReq { group_id: "live-1".into() }).await.expect_err("already gone");
    assert!(!err.is_retryable(), "{err:?}");
}
