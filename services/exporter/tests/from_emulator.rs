//! The export of an emulated IM app: every record kind read back with its details, the gaps named in the
//! report (an account the app lacks, group seqs past retention), and an export interrupted at any point and
//! resumed writes exactly the files of an uninterrupted one.

use std::sync::Arc;
use std::time::Duration;

use imbridge_exporter::{ExportOptions, export_from_im};
use imbridge_im::{Api, ImClient};
use imbridge_im_emulator::EmulatorConfig;
use imbridge_importer::progress::ProgressMode;
use serde_json::{Value, json};

async fn call(im: &ImClient, api: Api, body: Value) -> Value {
    im.call::<Value, Value>(api, &body).await.unwrap_or_else(|e| panic!("{api}: {e}"))
}

fn text(t: &str) -> Value {
    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": t}}])
}

const USERS: usize = 12;

fn user(i: usize) -> String {
    format!("u{i:02}")
}

/// An old app with profiles, friends, 1:1 history (imported and live, some unread), two groups with members,
/// history and a stretch past retention.
async fn seed(im: &ImClient, emulator: &imbridge_im_emulator::Emulator) {
    let ids: Vec<String> = (0..USERS).map(user).collect();
    call(im, Api::MultiAccountImport, json!({"AccountList": ids.iter().map(|u| json!({"UserID": u, "Nick": format!("Nick {u}")})).collect::<Vec<_>>()})).await;
    for (i, u) in ids.iter().enumerate().take(6) {
        let items = json!([
            {"Tag": "Tag_Profile_IM_Gender", "Value": if i % 2 == 0 { "Gender_Type_Female" } else { "Gender_Type_Male" }},
            {"Tag": "Tag_Profile_IM_SelfSignature", "Value": format!("sig {i}")},
            {"Tag": "Tag_Profile_IM_Level", "Value": i as u64 + 1},
            {"Tag": "Tag_Profile_Custom_Hobby", "Value": "chess"}
        ]);
        call(im, Api::PortraitSet, json!({"From_Account": u, "ProfileItem": items})).await;
    }
    for i in 0..USERS - 1 {
        let item = json!([{"To_Account": user(i + 1), "AddSource": "AddSource_Type_Web", "Remark": format!("r{i}"),
                           "GroupName": ["close"], "AddTime": 1_700_000_000 + i as u64}]);
        call(im, Api::FriendImport, json!({"From_Account": user(i), "AddFriendItem": item})).await;
    }
    let now = emulator.now_ms() / 1000;
    for i in 0..USERS - 1 {
        for k in 0..5u64 {
            let (from, to) = if k % 2 == 0 { (user(i), user(i + 1)) } else { (user(i + 1), user(i)) };
            call(im, Api::ImportMsg, json!({"SyncFromOldSystem": 2, "From_Account": from, "To_Account": to,
                "MsgRandom": 1000 + k, "MsgTimeStamp": now - 3600 + k * 60 + i as u64, "MsgBody": text(&format!("m{i}-{k}"))}))
            .await;
        }
    }
    // Live messages leave u01 with two unread from u00.
    for k in 0..2u32 {
        call(
            im,
            Api::SendMsg,
            json!({"From_Account": user(0), "To_Account": user(1), "MsgRandom": 77 + k,
            "MsgBody": text(&format!("live {k}"))}),
        )
        .await;
    }
    for (g, owner) in [("club", 0usize), ("team", 3)] {
        call(
            im,
            Api::ImportGroup,
            json!({"Type": "Public", "GroupId": g, "Name": format!("The {g}"),
            "Owner_Account": user(owner), "Introduction": "hello", "CreateTime": now - 7200}),
        )
        .await;
        let members: Vec<Value> = (0..6)
            .map(|i| {
                json!({"Member_Account": user(owner + i + 1), "Role": if i == 0 { "Admin" } else { "Member" },
                            "JoinTime": now - 7000 + i as u64})
            })
            .collect();
        call(im, Api::ImportGroupMember, json!({"GroupId": g, "MemberList": members})).await;
        let msgs: Vec<Value> = (0..5)
            .map(|k| {
                json!({"From_Account": user(owner + 1 + k % 3), "SendTime": now - 6000 + k as u64, "Random": k,
                            "MsgBody": text(&format!("{g} {k}"))})
            })
            .collect();
        call(im, Api::ImportGroupMsg, json!({"GroupId": g, "MsgList": msgs})).await;
    }
}

fn options() -> ExportOptions {
    ExportOptions {
        concurrency: 4,
        custom_profile_tags: vec!["Hobby".into()],
        progress: ProgressMode::Off,
        progress_every: Duration::from_secs(60),
        say: Arc::new(|_: &str| {}),
    }
}

fn read(dir: &std::path::Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_exported_and_an_interrupted_export_resumes_to_the_same_files() {
    let running = imbridge_im_emulator::spawn(EmulatorConfig {
        sdkappid: 1_400_000_001,
        rate_limits_enabled: false,
        retention_secs: Some(7 * 86_400),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let im = ImClient::new(&running.client_config(), &prometheus::Registry::new()).expect("client");
    seed(&im, running.emulator()).await;
    let mut accounts: Vec<String> = (0..USERS).map(user).collect();
    accounts.push("ghost".into());

    let whole = tempfile::tempdir().expect("dir");
    let report = export_from_im(whole.path(), &accounts, &im, &options()).await.expect("export");
    assert_eq!(report.missing_accounts, vec!["ghost".to_owned()], "{}", report.to_text());
    assert_eq!(report.group_seq_missing_total, 0, "{}", report.to_text());

    let dir = whole.path();
    assert_eq!(read(dir, "accounts.ndjson").len(), USERS);
    assert_eq!(read(dir, "accounts.ndjson")[0], json!({"user_id": "u00", "nick": "Nick u00"}));
    let profiles = read(dir, "profiles.ndjson");
    assert_eq!(profiles.len(), 6);
    assert_eq!(
        profiles[1],
        json!({"user_id": "u01", "gender": "male", "signature": "sig 1", "level": 2, "custom": {"Hobby": "chess"}})
    );
    let friends = read(dir, "friends.ndjson");
    assert_eq!(friends.len(), USERS - 1);
    assert_eq!(
        friends[0],
        json!({"user_id": "u00", "friend_id": "u01", "add_source": "Web", "remark": "r0", "groups": ["close"],
               "added_at": 1_700_000_000_000i64})
    );
    assert_eq!(read(dir, "c2c_messages.ndjson").len(), (USERS - 1) * 5 + 2);
    let reads = read(dir, "c2c_reads.ndjson");
    // u01 has read u00's imported messages but not the two live ones.
    let u01 = reads.iter().find(|r| r["user_id"] == "u01" && r["peer_id"] == "u00").expect("u01's read mark");
    let live = read(dir, "c2c_messages.ndjson").into_iter().find(|m| m["body"][0]["text"] == "live 0").expect("live");
    assert!(u01["read_at"].as_i64() < live["sent_at"].as_i64(), "{u01} vs {live}");
    let groups = read(dir, "groups.ndjson");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["group_id"], "club");
    assert_eq!(groups[0]["introduction"], "hello");
    let members = read(dir, "group_members.ndjson");
    assert_eq!(members.len(), 14, "owner + 6 in each");
    assert!(members.iter().any(|m| m["group_id"] == "club" && m["user_id"] == "u01" && m["role"] == "admin"));
    assert_eq!(read(dir, "group_messages.ndjson").len(), 10);

    // The same export, stopped at many points and resumed each time, ends byte for byte the same.
    let parts = tempfile::tempdir().expect("dir");
    let mut stops = 0;
    let o = options();
    loop {
        let run = export_from_im(parts.path(), &accounts, &im, &o);
        // Longer each time, so every phase (one waits a second for get_appid_group_list's quota) can end.
        match tokio::time::timeout(Duration::from_millis(20 * (stops + 1)), run).await {
            Ok(r) => {
                assert_eq!(r.expect("export").missing_accounts, report.missing_accounts);
                break;
            }
            Err(_) => stops += 1,
        }
        assert!(stops < 200, "the export never finishes when interrupted");
    }
    assert!(stops > 0, "the export was never interrupted");
    for kind in imbridge_core::export::ExportKind::ALL {
        let f = kind.file_name();
        assert_eq!(
            std::fs::read(whole.path().join(&f)).expect("whole"),
            std::fs::read(parts.path().join(&f)).expect("parts"),
            "{f} differs after {stops} interruptions"
        );
    }

    // Past the app's retention, the oldest group seqs are holes the report names.
    running.emulator().advance_clock(Duration::from_secs(8 * 86_400));
    let later = tempfile::tempdir().expect("dir");
    let report = export_from_im(later.path(), &accounts, &im, &options()).await.expect("export");
    assert!(report.group_seq_missing_total >= 10, "{}", report.to_text());
    assert!(report.to_text().contains("holes in MsgSeq"), "{}", report.to_text());
}
