//! `POST /v1/im/callback` over real HTTP against the test broker: query authentication (401 for a foreign
//! `SdkAppid`, a missing, forged or stale `Sign`), every one of the eight consumed callbacks normalized to its
//! canonical event with its id rule (`imbridge_core::EventId`), echoes (imbridge's admin operator, the `CloudCustomData` origin
//! marker) and unconsumed commands answered OK without producing, bad payloads refused without harming the next
//! request — and the IM emulator as the real sender, driven by simulated app users and by the admin.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{ADMIN, CALLBACK_TOKEN, Ingest, SDKAPPID, config};
use imbridge_core::event::{GroupType, LeaveReason};
use imbridge_core::{Element, Envelope, Event, Source, TimestampMs};
use imbridge_ingest::IngestConfig;
use imbridge_legacy::signature::now_secs;
use imbridge_testkit::prom::sample;
use serde_json::{Value, json};

const OK: &str = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#;

fn ok() -> Value {
    serde_json::from_str(OK).expect("json")
}

fn query(appid: &str, command: &str, sign: Option<String>, rt: Option<String>) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("SdkAppid", appid.to_owned()),
        ("CallbackCommand", command.to_owned()),
        ("contenttype", "json".to_owned()),
        ("ClientIP", "10.0.0.1".to_owned()),
        ("OptPlatform", "Android".to_owned()),
    ];
    if let Some(s) = sign {
        q.push(("Sign", s));
    }
    if let Some(t) = rt {
        q.push(("RequestTime", t));
    }
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_foreign_forged_and_stale_callbacks() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(config()).await;
    ing.wait_ready().await;
    let cmd = "Group.CallbackAfterGroupDestroyed";
    let body = json!({"CallbackCommand": cmd, "GroupId":"g1","Type":"Public","Owner_Account":"ann","Name":"n",
        "EventTime": 1_700_000_000_000_i64})
    .to_string()
    .into_bytes();
    let now = now_secs() as u64;
    let good_sign = |t: u64| imbridge_im::callback::sign(CALLBACK_TOKEN, t);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("another app", query("1400000001", cmd, Some(good_sign(now)), Some(now.to_string()))),
        ("no SdkAppid", query("", cmd, Some(good_sign(now)), Some(now.to_string()))[1..].to_vec()),
        ("no Sign", query(&SDKAPPID.to_string(), cmd, None, Some(now.to_string()))),
        ("no RequestTime", query(&SDKAPPID.to_string(), cmd, Some(good_sign(now)), None)),
        (
            "forged Sign",
            query(&SDKAPPID.to_string(), cmd, Some(imbridge_im::callback::sign("guess", now)), Some(now.to_string())),
        ),
        ("stale", query(&SDKAPPID.to_string(), cmd, Some(good_sign(now - 70)), Some((now - 70).to_string()))),
        ("from the future", query(&SDKAPPID.to_string(), cmd, Some(good_sign(now + 70)), Some((now + 70).to_string()))),
    ];
    for (what, q) in &cases {
        let (s, v) = ing.post_callback_query(q, body.clone()).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(v["ActionStatus"], "FAIL", "{what}");
        assert_ne!(v["ErrorCode"], 0, "{what}");
    }
    // Within the 60 s window, in either direction, it is accepted.
    let (s, v) = ing
        .post_callback_query(
            &query(&SDKAPPID.to_string(), cmd, Some(good_sign(now - 55)), Some((now - 55).to_string())),
            body.clone(),
        )
        .await;
    assert_eq!((s, v), (200, ok()));
    ing.settled().await;
    assert!(ing.records(&ing.topics.im_events).await.len() == 1, "only the authenticated callback was produced");
    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="sdkappid",source="im"}"#), 2.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="callback_sign",source="im"}"#), 3.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="callback_stale",source="im"}"#), 2.0);

    // Without a configured token only SdkAppid is checked.
    let open = Ingest::start(IngestConfig { im_callback_token: None, ..config() }).await;
    let (s, v) = open.post_callback_query(&query(&SDKAPPID.to_string(), cmd, None, None), body.clone()).await;
    assert_eq!((s, v), (200, ok()));
    let (s, _) = open.post_callback_query(&query("42", cmd, None, None), body).await;
    assert_eq!(s, 401);
    ing.running.shutdown().await;
    open.running.shutdown().await;
}

fn by_id(envs: &[Envelope]) -> BTreeMap<String, Envelope> {
    envs.iter().map(|e| (e.id.as_str().to_owned(), e.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn normalizes_each_consumed_callback_and_drops_echoes() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(config()).await;
    ing.wait_ready().await;
    let t = 1_700_000_000_123_i64;
    let text = |s: &str| json!([{"MsgType":"TIMTextElem","MsgContent":{"Text": s}}]);
    // Reference §7.6 samples, with ids imbridge accepts.
    let produced = [
        json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh",
            "MsgSeq":48374,"MsgRandom":2837546,"MsgTime":1557481126,"MsgKey":"48374_2837546_1557481126",
            "OnlineOnlyFlag":0,"SendMsgResult":0,"ErrorInfo":"send msg succeed","UnreadMsgNum":7,
            "MsgBody": text("red packet"),"CloudCustomData":"app data","EventTime": t.to_string()}),
        json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "From_Account":"jared","Operator_Account":"jared","Random":123456,"MsgSeq":123,"MsgTime":1490686222,
            "MsgBody": text("hello group"),"EventTime": t + 1}),
        json!({"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":"@TGS#2J4SZEAEL","Operator_Account":"leckie",
            "Owner_Account":"leckie","Type":"Public","Name":"MyFirstGroup","Introduction":"introduction",
            "Notification":"notification","MemberList":[{"Member_Account":"bob"},{"Member_Account":"peter"},
            {"Member_Account":"leckie"}],"EventTime": t + 2}),
        json!({"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Operator_Account":"leckie","Notification":"NewNotification","EventTime": t + 3}),
        json!({"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "JoinType":"Apply","Operator_Account":"leckie",
            "NewMemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime": t + 4}),
        json!({"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "ExitType":"Kicked","Operator_Account":"leckie",
            "ExitMemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime": t + 5}),
        json!({"CallbackCommand":"Group.CallbackAfterGroupDestroyed","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
            "Owner_Account":"leckie","Name":"MyFirstGroup",
            "MemberList":[{"Member_Account":"leckie"},{"Member_Account":"peter"}],"EventTime": t + 6}),
    ];
    for cb in &produced {
        let (s, v) = ing.post_callback(cb).await;
        assert_eq!((s, &v), (200, &ok()), "{cb}");
    }
    // Valid callbacks with nothing to produce, each answered OK.
    let silent = [
        // The eighth consumed command: read state has no real-time event.
        json!({"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"jared","Peer_Account":"Jonh",
            "LastReadTime":1614754606,"UnreadMsgNum":0}),
        // Echoes: caused by imbridge's admin identity, or carrying imbridge's origin marker.
        json!({"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":"copied","Operator_Account": ADMIN,
            "Owner_Account":"ann","Type":"Public","Name":"Copied from legacy","MemberList":[],"EventTime": t}),
        json!({"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"copied","Type":"Public","ExitType":"Kicked",
            "Operator_Account": ADMIN,"ExitMemberList":[{"Member_Account":"bob"}],"EventTime": t}),
        json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"ann","To_Account":"bob","MsgSeq":1,
            "MsgRandom":2,"MsgTime":3,"MsgKey":"1_2_3","MsgBody": text("copied"),
            "CloudCustomData":"{\"imbridge_origin\":\"legacy\",\"custom_data\":\"x\"}"}),
        json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g","Type":"Public","From_Account":"ann",
            "Operator_Account":"ann","Random":1,"MsgSeq":9,"MsgTime":3,"MsgBody": text("copied"),
            "CloudCustomData":"{\"imbridge_origin\":\"legacy\"}"}),
        // Not delivered by IM, an AVChatRoom, a profile change of nothing synced, an unconsumed command.
        json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"ann","To_Account":"bob","MsgSeq":5,
            "MsgRandom":6,"MsgTime":7,"MsgKey":"5_6_7","SendMsgResult":80001,"MsgBody": text("dirty word")}),
        json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#aLIVE","Type":"AVChatRoom",
            "From_Account":"ann","Operator_Account":"ann","Random":1,"MsgSeq":9,"MsgTime":3,"MsgBody": text("live")}),
        json!({"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"g","Type":"Public",
            "Operator_Account":"ann","EventTime": t}),
        json!({"CallbackCommand":"Sns.CallbackFriendAdd","PairList":[],"ClientCmd":"friend_add","EventTime": t}),
    ];
    for cb in &silent {
        let (s, v) = ing.post_callback(cb).await;
        assert_eq!((s, &v), (200, &ok()), "{cb}");
    }
    // Bad payloads: refused with the reason, and the service carries on.
    let bad = [
        (json!({"CallbackCommand":"Group.CallbackAfterMemberExit"}), "GroupId"),
        (
            json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"x".repeat(40),"To_Account":"bob",
            "MsgKey":"1_2_3","MsgBody": text("hi")}),
            "From_Account",
        ),
        (
            json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"ann","To_Account":"bob","MsgKey":"1_2_3",
            "MsgBody":[{"MsgType":"TIMRelayElem","MsgContent":{}}]}),
            "MsgBody",
        ),
        (
            json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g","Type":"Public","From_Account":"ann",
            "Operator_Account":"ann","Random":1,"MsgTime":3,"MsgBody": text("no seq")}),
            "MsgSeq",
        ),
    ];
    for (cb, needle) in &bad {
        let (s, v) = ing.post_callback(cb).await;
        assert_eq!(s, 400, "{cb}: {v}");
        assert!(v["ErrorInfo"].as_str().expect("reason").contains(needle), "{needle}: {v}");
    }
    let q = query(
        &SDKAPPID.to_string(),
        "",
        Some(imbridge_im::callback::sign(CALLBACK_TOKEN, now_secs() as u64)),
        Some(now_secs().to_string()),
    );
    let (s, _) = ing.post_callback_query(&q, b"not json".to_vec()).await;
    assert_eq!(s, 400);
    // A positional array (serde alone would read it as the command's struct) is refused with a reason.
    let q = query(
        &SDKAPPID.to_string(),
        "C2C.CallbackAfterSendMsg",
        Some(imbridge_im::callback::sign(CALLBACK_TOKEN, now_secs() as u64)),
        Some(now_secs().to_string()),
    );
    let array =
        br#"["C2C.CallbackAfterSendMsg","ann","bob","1_2_3",[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}]]"#;
    let (s, v) = ing.post_callback_query(&q, array.to_vec()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["ErrorInfo"].as_str().expect("reason").contains("an array, not a JSON object"), "{v}");

    ing.settled().await;
    let envs = ing.envelopes(&ing.topics.im_events).await;
    assert_eq!(envs.len(), produced.len(), "{envs:#?}");
    assert!(envs.iter().all(|e| e.source == Source::Im && e.recorded_at.is_some()));
    let got = by_id(&envs);
    let g = "@TGS#2J4SZEAEL";
    let c2c = &got["im:c2c:jared:48374_2837546_1557481126"];
    assert_eq!(c2c.conversation.as_str(), "c2c:Jonh:jared");
    assert_eq!(c2c.time, TimestampMs(t), "EventTime, quoted as a string, is the event time");
    let Event::C2cMessage(m) = &c2c.event else { panic!("{c2c:?}") };
    assert_eq!((m.from.as_str(), m.to.as_str()), ("jared", "Jonh"));
    assert_eq!(m.body, vec![Element::Text { text: "red packet".into() }]);
    assert_eq!(m.custom_data.as_deref(), Some("app data"));

    let gm = &got[&format!("im:gmsg:{g}:123")];
    assert_eq!(gm.conversation.as_str(), format!("group:{g}"));
    assert!(matches!(&gm.event, Event::GroupMessage(m) if m.from.as_str() == "jared" && m.body.len() == 1));

    // `im:gevt:<group>:<command>:<time>:<digest of the change>`.
    let gevt = |cmd: &str, dt: i64| {
        let prefix = format!("im:gevt:{g}:{cmd}:{}:", t + dt);
        let found: Vec<_> = got.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        assert_eq!(found.len(), 1, "one event named {prefix}…");
        found[0].1.clone()
    };
    let created = gevt("Group.CallbackAfterCreateGroup", 2);
    let Event::GroupCreated(c) = &created.event else { panic!("{created:?}") };
    assert_eq!(c.group_type, GroupType::Public);
    assert_eq!(c.profile.owner.as_ref().map(|o| o.as_str()), Some("leckie"));
    let members: Vec<&str> = c.members.iter().map(|m| m.as_str()).collect();
    assert_eq!(members, vec!["bob", "peter"], "the owner is not listed among the members");
    assert_eq!(
        (c.profile.introduction.as_deref(), c.profile.notification.as_deref()),
        (Some("introduction"), Some("notification"))
    );
    let updated = gevt("Group.CallbackAfterGroupInfoChanged", 3);
    let Event::GroupUpdated(u) = &updated.event else { panic!("{updated:?}") };
    assert_eq!(u.notification.as_deref(), Some("NewNotification"));
    assert_eq!((u.name.as_ref(), u.operator.as_ref().map(|o| o.as_str())), (None, Some("leckie")));
    let joined = gevt("Group.CallbackAfterNewMemberJoin", 4);
    assert!(matches!(&joined.event, Event::MembersJoined(j) if j.members.len() == 2));
    let left = gevt("Group.CallbackAfterMemberExit", 5);
    assert!(
        matches!(&left.event, Event::MembersLeft(l) if l.reason == Some(LeaveReason::Kicked) && l.members.len() == 2)
    );
    let dismissed = gevt("Group.CallbackAfterGroupDestroyed", 6);
    assert!(matches!(&dismissed.event, Event::GroupDismissed(d) if d.group_id.as_str() == g));
    assert_eq!(dismissed.time, TimestampMs(t + 6));
    // One group's events share a key, so they stay in the order IM sent them.
    let order: Vec<&str> =
        envs.iter().filter(|e| e.conversation.as_str() == format!("group:{g}")).map(|e| e.kind().as_str()).collect();
    assert_eq!(
        order,
        vec![
            "group.message",
            "group.created",
            "group.updated",
            "group.members_joined",
            "group.members_left",
            "group.dismissed"
        ]
    );

    let m = ing.metrics().await;
    for kind in [
        "c2c.message",
        "group.message",
        "group.created",
        "group.updated",
        "group.members_joined",
        "group.members_left",
        "group.dismissed",
    ] {
        assert_eq!(sample(&m, &format!(r#"imbridge_ingest_events_total{{kind="{kind}",source="im"}}"#)), 1.0, "{kind}");
    }
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="operator",source="im"}"#), 2.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="origin_marker",source="im"}"#), 2.0);
    for reason in ["read_report", "send_failed", "unsupported_group_type", "no_synced_change", "unconsumed_command"] {
        assert_eq!(
            sample(&m, &format!(r#"imbridge_ingest_callbacks_ignored_total{{reason="{reason}"}}"#)),
            1.0,
            "{reason}"
        );
    }
    // "not json" and the positional array.
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="callback_malformed",source="im"}"#), 3.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="callback_invalid",source="im"}"#), 3.0);
    ing.running.shutdown().await;
}

/// The IM emulator as the real sender (signed query, its own payloads): app users acting through its client
/// simulation produce events; imbridge's admin writes come back as callbacks and are dropped as echoes, or send
/// none at all (`ForbidCallbackControl`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn im_emulator_callbacks_reach_kafka_and_admin_echoes_do_not() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(config()).await;
    ing.wait_ready().await;
    let im = imbridge_im_emulator::spawn(imbridge_im_emulator::EmulatorConfig {
        callback_url: Some(ing.running.callback_url()),
        callback_token: Some(CALLBACK_TOKEN.to_owned()),
        rate_limits_enabled: false,
        // serial delivery: ordering under concurrent callbacks is covered by the emulator's faults.rs.
        callback_concurrency: 1,
        ..Default::default()
    })
    .await
    .expect("im emulator");
    let e = im.emulator();
    assert_eq!(e.config().sdkappid, SDKAPPID);
    assert_eq!(e.admin_identifier(), ADMIN);
    let http = reqwest::Client::new();
    let call = |user: &str, client: bool, api: &str, body: Value| {
        let url = if client {
            format!(
                "{}/emulator/client/v4/{api}?sdkappid={SDKAPPID}&identifier={user}&usersig={}&platform=iOS",
                im.base_url(),
                e.usersig(user)
            )
        } else {
            format!(
                "{}/v4/{api}?sdkappid={SDKAPPID}&identifier={user}&usersig={}&random=1&contenttype=json",
                im.base_url(),
                e.usersig(user)
            )
        };
        let req = http.post(url).body(body.to_string());
        async move {
            let v: Value = req.send().await.expect("sent").json().await.expect("json");
            assert_eq!(v["ActionStatus"], "OK", "{v}");
            v
        }
    };
    let text = |s: &str| json!([{"MsgType":"TIMTextElem","MsgContent":{"Text": s}}]);
    call(ADMIN, false, "im_open_login_svc/multiaccount_import", json!({"Accounts":["ann","bob","cy"]})).await;
    for i in 0..5u32 {
        call(
            "ann",
            true,
            "openim/sendmsg",
            json!({"To_Account":"bob","MsgRandom": 100 + i,"MsgBody": text(&format!("a{i}"))}),
        )
        .await;
        call(
            "bob",
            true,
            "openim/sendmsg",
            json!({"To_Account":"ann","MsgRandom": 200 + i,"MsgBody": text(&format!("b{i}"))}),
        )
        .await;
    }
    call("bob", true, "openim/admin_set_msg_read", json!({"Peer_Account":"ann"})).await;
    let gid = call(
        "ann",
        true,
        "group_open_http_svc/create_group",
        json!({"Type":"Public","Name":"Club","GroupId":"club","MemberList":[{"Member_Account":"bob"}]}),
    )
    .await["GroupId"]
        .as_str()
        .expect("gid")
        .to_owned();
    call("ann", true, "group_open_http_svc/modify_group_base_info", json!({"GroupId": gid, "Name":"Club 2"})).await;
    call(
        "ann",
        true,
        "group_open_http_svc/add_group_member",
        json!({"GroupId": gid, "MemberList":[{"Member_Account":"cy"}]}),
    )
    .await;
    call(
        "cy",
        true,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": gid, "Random": 7, "MsgBody": text("hi club")}),
    )
    .await;
    call("cy", true, "group_open_http_svc/quit_group", json!({"GroupId": gid})).await;
    // imbridge's own writes (as the admin): suppressed, or echoes by operator or by origin marker.
    call(
        ADMIN,
        false,
        "openim/sendmsg",
        json!({"From_Account":"cy","To_Account":"ann","MsgRandom": 9,
        "MsgBody": text("copied, suppressed"), "CloudCustomData":"{\"imbridge_origin\":\"legacy\"}",
        "ForbidCallbackControl":["ForbidBeforeSendMsgCallback","ForbidAfterSendMsgCallback"]}),
    )
    .await;
    call(
        ADMIN,
        false,
        "openim/sendmsg",
        json!({"From_Account":"cy","To_Account":"ann","MsgRandom": 10,
        "MsgBody": text("copied, marked"), "CloudCustomData":"{\"imbridge_origin\":\"legacy\"}"}),
    )
    .await;
    call(
        ADMIN,
        false,
        "group_open_http_svc/create_group",
        json!({"Type":"Public","Name":"Copied","GroupId":"copied",
        "Owner_Account":"bob"}),
    )
    .await;
    call(
        ADMIN,
        false,
        "group_open_http_svc/add_group_member",
        json!({"GroupId":"copied","MemberList":[{"Member_Account":"cy"}]}),
    )
    .await;
    call(
        ADMIN,
        false,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId":"copied","From_Account":"bob","Random": 3,
        "MsgBody": text("copied"), "CloudCustomData":"{\"imbridge_origin\":\"legacy\"}"}),
    )
    .await;
    call("ann", true, "group_open_http_svc/destroy_group", json!({"GroupId": gid})).await;
    tokio::time::timeout(Duration::from_secs(20), e.flush_callbacks()).await.expect("callbacks delivered");

    ing.settled().await;
    let envs = ing.envelopes(&ing.topics.im_events).await;
    let c2c: Vec<String> = envs
        .iter()
        .filter_map(|env| match &env.event {
            Event::C2cMessage(m) => match m.body.first() {
                Some(Element::Text { text }) => Some(text.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(c2c, vec!["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"], "in order, no admin copies");
    assert!(envs.iter().all(|env| env.id.as_str().starts_with("im:")));
    let club: Vec<&str> = envs
        .iter()
        .filter(|env| env.conversation.as_str() == format!("group:{gid}"))
        .map(|env| env.kind().as_str())
        .collect();
    assert_eq!(
        club,
        vec![
            "group.created",
            "group.updated",
            "group.members_joined",
            "group.message",
            "group.members_left",
            "group.dismissed"
        ]
    );
    assert!(!envs.iter().any(|env| env.conversation.as_str() == "group:copied"), "admin group writes are echoes");
    let left = envs.iter().find(|env| env.kind().as_str() == "group.members_left").expect("left");
    assert!(
        matches!(&left.event, Event::MembersLeft(l) if l.reason == Some(LeaveReason::Quit) && l.members[0].as_str() == "cy")
    );
    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="operator",source="im"}"#), 3.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="origin_marker",source="im"}"#), 1.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_callbacks_ignored_total{reason="read_report"}"#), 1.0);
    assert_eq!(
        sample(&m, r#"imbridge_ingest_rejected_total{reason="callback_sign",source="im"}"#),
        0.0,
        "the emulator signs correctly"
    );
    ing.running.shutdown().await;
}
