//! The same scenarios driven through the real IM client crate (`imbridge_im::ImClient`): its request structs,
//! paging helpers, retries and error classification against the emulator's rules. Together with the raw-HTTP
//! tests this keeps a symmetric bug in client and emulator from hiding.

use imbridge_im::types::MemberAccount;
use imbridge_im::types::account::{
    AccountCheckReq, MultiAccountImportReq, PortraitGetReq, PortraitSetReq, ProfileItem, ProfileValue,
};
use imbridge_im::types::c2c::{
    AdminSetMsgReadReq, GetC2cUnreadMsgNumReq, ImportMsgReq, SYNC_HISTORY, SYNC_LIVE, SendMsgReq,
};
use imbridge_im::types::group::{
    AddGroupMemberReq, CreateGroupReq, DeleteGroupMemberReq, DestroyGroupReq, GroupInfoFilter, GroupSpec,
    ImportGroupMemberReq, ImportGroupMsgItem, ImportGroupMsgReq, ImportGroupReq, ImportMember, SendGroupMsgReq,
    SetUnreadMsgNumReq,
};
use imbridge_im::types::sns::{FriendImportItem, FriendImportReq};
use imbridge_im::{Api, ImClient, MsgElement, RateSetting};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};

fn client(running: &RunningEmulator) -> ImClient {
    ImClient::new(&running.client_config(), &prometheus::Registry::new()).expect("client builds")
}

async fn start(cfg: EmulatorConfig) -> (RunningEmulator, ImClient) {
    let running = imbridge_im_emulator::spawn(cfg).await.expect("emulator");
    let c = client(&running);
    (running, c)
}

async fn accounts(c: &ImClient, ids: &[&str]) {
    let r = c
        .multiaccount_import(&MultiAccountImportReq {
            accounts: Some(ids.iter().map(|s| (*s).to_owned()).collect()),
            account_list: None,
        })
        .await
        .expect("import accounts");
    assert!(r.failed().is_empty());
}

#[tokio::test]
async fn accounts_profiles_friends_through_the_client() {
    let (_im, c) = start(EmulatorConfig::default()).await;
    accounts(&c, &["ann", "bob"]).await;
    let checked = c.check_accounts(&["ann".into(), "ghost".into()]).await.expect("check");
    assert_eq!(checked.iter().map(|i| i.account_status.as_str()).collect::<Vec<_>>(), ["Imported", "NotImported"]);
    let r = c.account_check(&AccountCheckReq::new(["bob"])).await.expect("check one");
    assert_eq!(r.imported().collect::<Vec<_>>(), ["bob"]);

    c.portrait_set(&PortraitSetReq {
        from_account: "ann".into(),
        profile_item: vec![
            ProfileItem::string("Tag_Profile_IM_Nick", "Ann"),
            ProfileItem::int("Tag_Profile_IM_Level", 3),
        ],
    })
    .await
    .expect("portrait_set");
    let p = c
        .portrait_get(&PortraitGetReq {
            to_account: vec!["ann".into()],
            tag_list: vec!["Tag_Profile_IM_Nick".into(), "Tag_Profile_IM_Level".into()],
        })
        .await
        .expect("portrait_get");
    let ann = &p.user_profile_item[0];
    assert!(matches!(ann.get("Tag_Profile_IM_Nick"), Some(ProfileValue::Str(s)) if s == "Ann"), "{ann:?}");
    assert!(matches!(ann.get("Tag_Profile_IM_Level"), Some(ProfileValue::Int(3))), "{ann:?}");

    let r = c
        .friend_import(&FriendImportReq {
            from_account: "ann".into(),
            add_friend_item: vec![
                FriendImportItem {
                    to_account: "bob".into(),
                    add_source: "AddSource_Type_Web".into(),
                    remark: Some("B".into()),
                    ..Default::default()
                },
                FriendImportItem {
                    to_account: "ghost".into(),
                    add_source: "AddSource_Type_Web".into(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("friend_import");
    assert_eq!(r.failed().map(|f| f.to_account.as_str()).collect::<Vec<_>>(), ["ghost"]);
    let friends = c.all_friends("ann").await.expect("friends");
    assert_eq!(friends.len(), 1);
    assert_eq!(friends[0].to_account, "bob");
    assert!(friends[0].get("Tag_SNS_IM_Remark").is_some());
}

#[tokio::test]
async fn c2c_import_send_read_through_the_client() {
    let (im, c) = start(EmulatorConfig::default()).await;
    accounts(&c, &["ann", "bob"]).await;
    let t = 1_700_000_000;
    let import = |seq: u32, time: i64, sync: u32, text: &str| ImportMsgReq {
        sync_from_old_system: sync,
        from_account: "ann".into(),
        to_account: "bob".into(),
        msg_seq: Some(seq),
        msg_random: seq * 10,
        msg_time_stamp: time,
        msg_body: vec![MsgElement::text(text)],
        cloud_custom_data: None,
    };
    c.importmsg(&import(2, t, SYNC_HISTORY, "b")).await.expect("import");
    c.importmsg(&import(1, t, SYNC_HISTORY, "a")).await.expect("import");
    c.importmsg(&import(2, t, SYNC_HISTORY, "b replay")).await.expect("duplicate import is OK");
    c.importmsg(&import(3, t + 1, SYNC_LIVE, "c")).await.expect("live import");
    let history = c.c2c_history("bob", "ann", 0, t + 10).await.expect("history");
    let keys: Vec<&str> = history.iter().map(|m| m.msg_key.as_str()).collect();
    assert_eq!(keys, [format!("1_10_{t}"), format!("2_20_{t}"), format!("3_30_{}", t + 1)]);
    let unread = c
        .get_c2c_unread_msg_num(&GetC2cUnreadMsgNumReq {
            to_account: "bob".into(),
            peer_account: Some(vec!["ann".into()]),
        })
        .await
        .expect("unread");
    assert_eq!(unread.unread_from("ann"), Some(1));

    let send = SendMsgReq {
        from_account: Some("ann".into()),
        to_account: "bob".into(),
        msg_seq: Some(9),
        msg_random: 99,
        msg_body: vec![MsgElement::text("live")],
        ..Default::default()
    };
    let first = c.sendmsg(&send).await.expect("send");
    let again = c.sendmsg(&send).await.expect("duplicate send");
    assert_eq!(first, again, "the 120 s window answers the duplicate like the original");
    assert_eq!(first.msg_key, format!("9_99_{}", first.msg_time));
    c.admin_set_msg_read(&AdminSetMsgReadReq {
        report_account: "bob".into(),
        peer_account: "ann".into(),
        msg_read_time: None,
    })
    .await
    .expect("read");
    let all = c
        .get_c2c_unread_msg_num(&GetC2cUnreadMsgNumReq { to_account: "bob".into(), peer_account: None })
        .await
        .expect("unread");
    assert_eq!(all.all_c2c_unread_msg_num, Some(0));

    // Permanent errors surface with their code and are not retried.
    let err = c
        .sendmsg(&SendMsgReq {
            to_account: "ghost".into(),
            msg_random: 1,
            msg_body: vec![MsgElement::text("x")],
            ..Default::default()
        })
        .await
        .expect_err("unknown recipient");
    assert_eq!(err.code(), Some(20003));
    assert!(!err.is_retryable());
    assert_eq!(im.emulator().stats().requests["openim/sendmsg"], 3, "no retry of a permanent error");
}

#[tokio::test]
async fn groups_through_the_client() {
    let (_im, c) = start(EmulatorConfig::default()).await;
    accounts(&c, &["ann", "bob", "cy"]).await;
    let now = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()) as i64;
    let created = now - 10_000;
    let gid = c
        .import_group(&ImportGroupReq {
            group: GroupSpec {
                group_type: "Public".into(),
                name: "team".into(),
                owner_account: Some("ann".into()),
                ..Default::default()
            },
            create_time: Some(created),
        })
        .await
        .expect("import_group")
        .group_id;
    let r = c
        .import_group_member(&ImportGroupMemberReq {
            group_id: gid.clone(),
            member_list: vec![ImportMember {
                member_account: "bob".into(),
                join_time: Some(created + 1),
                ..Default::default()
            }],
        })
        .await
        .expect("members");
    assert_eq!(r.failed().count(), 0);
    let msgs: Vec<ImportGroupMsgItem> = (0..7)
        .map(|i| ImportGroupMsgItem {
            from_account: if i % 2 == 0 { "ann".into() } else { "bob".into() },
            send_time: created + 10 + i,
            random: Some(i as u32),
            msg_body: vec![MsgElement::text(format!("m{i}"))],
            ..Default::default()
        })
        .collect();
    let r = c
        .import_group_msg(&ImportGroupMsgReq {
            group_id: gid.clone(),
            recent_contact_flag: None,
            msg_list: msgs.clone(),
        })
        .await
        .expect("import msgs");
    assert_eq!(r.import_msg_result.iter().map(|x| x.msg_seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
    // Replaying the same batch fails per message (times are no longer after the latest), never duplicates.
    let replay = c
        .import_group_msg(&ImportGroupMsgReq { group_id: gid.clone(), recent_contact_flag: None, msg_list: msgs })
        .await
        .expect("replay");
    assert_eq!(replay.failed().count(), 7);
    c.set_unread_msg_num(&SetUnreadMsgNumReq {
        group_id: gid.clone(),
        member_account: "bob".into(),
        unread_msg_num: 3,
    })
    .await
    .expect("unread");
    let members = c.all_group_members(&gid, None).await.expect("members");
    let bob = members.iter().find(|m| m.member_account == "bob").expect("bob");
    assert_eq!(bob.msg_seq, Some(4), "read position = 7 − 3");
    let history = c.group_history(&gid, false).await.expect("history");
    assert_eq!(history.iter().map(|m| m.msg_seq).collect::<Vec<_>>(), (1..=7).collect::<Vec<u64>>());
    assert_eq!(history[6].msg_time_stamp, created + 16);

    let g = c
        .create_group(&CreateGroupReq {
            group: GroupSpec {
                group_type: "Private".into(),
                name: "live".into(),
                owner_account: Some("ann".into()),
                group_id: Some("live1".into()),
                ..Default::default()
            },
            member_list: None,
        })
        .await
        .expect("create");
    assert_eq!(g.group_id, "live1");
    let err = c
        .create_group(&CreateGroupReq {
            group: GroupSpec {
                group_type: "Private".into(),
                name: "live".into(),
                group_id: Some("live1".into()),
                ..Default::default()
            },
            member_list: None,
        })
        .await
        .expect_err("id in use");
    assert_eq!(err.code(), Some(10021));
    let added = c
        .add_group_member(&AddGroupMemberReq {
            group_id: "live1".into(),
            silence: None,
            member_list: vec![MemberAccount::new("bob"), MemberAccount::new("nobody")],
        })
        .await
        .expect("add");
    assert_eq!(added.failed().collect::<Vec<_>>(), ["nobody"]);
    let send = SendGroupMsgReq {
        group_id: "live1".into(),
        random: 5,
        msg_body: vec![MsgElement::text("hi")],
        from_account: Some("bob".into()),
        ..Default::default()
    };
    let s1 = c.send_group_msg(&send).await.expect("send");
    let s2 = c.send_group_msg(&send).await.expect("duplicate");
    assert_eq!(s1.msg_seq, s2.msg_seq);
    c.delete_group_member(&DeleteGroupMemberReq {
        group_id: "live1".into(),
        member_to_del_account: vec!["bob".into()],
        ..Default::default()
    })
    .await
    .expect("delete");
    let infos = c
        .group_infos(
            &["live1".into(), gid.clone(), "nope".into()],
            Some(GroupInfoFilter {
                group_base_info_filter: Some(vec!["MemberNum".into(), "NextMsgSeq".into()]),
                ..Default::default()
            }),
        )
        .await
        .expect("infos");
    assert_eq!(infos[0].member_num, Some(1));
    assert_eq!(infos[1].next_msg_seq, Some(8));
    assert_eq!(infos[2].error_code, 10010);
    // All group ids: one page at the documented 1/s (the client paces, the emulator enforces).
    let ids = c.all_group_ids(None).await.expect("group ids");
    assert_eq!(ids.len(), 2);
    c.destroy_group(&DestroyGroupReq { group_id: "live1".into() }).await.expect("destroy");
    let err = c.destroy_group(&DestroyGroupReq { group_id: "live1".into() }).await.expect_err("gone");
    assert_eq!(err.code(), Some(10010));
}

#[tokio::test]
async fn the_client_retries_60007() {
    // The emulator allows 5 account_check calls per second; the client is told not to pace itself, so a burst
    // of 10 runs into 60007 and each refused call is retried with backoff until a token is free.
    let mut cfg = EmulatorConfig::default();
    cfg.rate_limit_overrides.insert("im_open_login_svc/account_check".into(), 5);
    let (im, c) = start(cfg).await;
    c.set_rate(Api::AccountCheck, RateSetting::Off);
    for _ in 0..10 {
        c.account_check(&AccountCheckReq::new(["x"])).await.expect("retried until accepted");
    }
    assert!(im.emulator().stats().rate_limited > 0, "the burst did hit the limit");
}
