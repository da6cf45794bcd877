//! Forced upgrade from an existing IM app: the old app (1400000001) holds accounts, profiles, friends, 1:1 and
//! group history — seeded through its REST import APIs by `imbridge import`, then live messages from its users
//! that leave some unread. `imbridge export from-im` reads it, is killed with SIGKILL in the middle of the
//! 1:1 history and run again; `imbridge import` writes the export into the new app (1400000002) and
//! `imbridge verify` passes; an export of the new app then holds the same records as the old app's.

use std::time::Duration;

use imbridge_core::export::ExportKind;
use imbridge_e2e::im::app_user_sends;
use imbridge_e2e::im_to_im::{
    NEW_APP, OLD_APP, accounts_file, app_world, checkpoint, export, read_from, records, spawn_export,
};
use imbridge_e2e::import::{assert_verified, small_export};
use imbridge_importer::GenerateOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_im_app_exported_killed_resumed_and_imported_into_another_holds_the_same_data() {
    let _turn = imbridge_e2e::turn(module_path!()).await;
    imbridge_testkit::require_kafka!();

    // The old app, seeded through its import APIs.
    let seed = GenerateOptions { bad_lines: 0, ..small_export(600, 300) };
    let mut old = app_world("im2im-old", OLD_APP, seed).await;
    let (status, report) = old.import("seed").await;
    assert!(status.success(), "seeding the old app failed: {status}\n{}", old.output("seed"));
    assert!(report.is_some(), "seed report");
    let users: Vec<String> = records(&old.export, "accounts.ndjson", &[])
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["user_id"].as_str().expect("id").to_owned()
        })
        .collect();
    // Live traffic of the old app's users: the receiver has not read these.
    for (i, text) in ["live one", "live two"].into_iter().enumerate() {
        app_user_sends(&old.emulator, &users[0], &users[1], text, 900 + i as u32).await;
    }
    let mut listed = users.clone();
    listed.push("ghost-account".into());
    let accounts = accounts_file(&old, &listed);
    let old_app = old.emulator.client_config();
    assert_eq!(old_app.sdkappid, OLD_APP);
    read_from(&mut old, &old_app);
    // Slow the history reads so the kill lands in the middle of them.
    old.env.insert("IMBRIDGE_EXPORT__FROM_IM__RATE_LIMITS__ADMIN_GETROAMMSG".into(), "40".into());

    // Export, killed with SIGKILL in the middle of the 1:1 history, then run again to the end.
    let out = old.dir.path().join("from-im");
    let mut child = spawn_export(&old, &out, &accounts, "export-1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !checkpoint(&out).is_some_and(|(phase, done)| phase == "c2c" && done >= 10) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the export never reached the 1:1 history\n{}",
            old.output("export-1")
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the export ended before the kill\n{}",
            old.output("export-1")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let (phase, done) = checkpoint(&out).expect("checkpoint after the kill");
    assert_eq!(phase, "c2c", "killed in the 1:1 history");
    let (status, report) = export(&old, &out, &accounts, "export-2").await;
    assert!(status.success(), "resumed export failed: {status}\n{}", old.output("export-2"));
    assert!(old.output("export-2").contains("resuming at c2c history"), "{}", old.output("export-2"));
    assert!(done >= 10);

    // The report names what the old app could not give: the account it does not have.
    assert_eq!(report["missing_accounts"], serde_json::json!(["ghost-account"]), "{report}");
    assert_eq!(report["group_seq_missing_total"], 0, "{report}");
    // Every record once: the old app's whole history, no duplicates from the resume.
    let c2c = records(&out, "c2c_messages.ndjson", &[]);
    let want = old.generated.valid[&ExportKind::C2cMessages] + 2;
    assert_eq!(c2c.len() as u64, want, "1:1 messages exported");
    let ids: std::collections::BTreeSet<String> = c2c
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), c2c.len(), "a message exported twice");
    for kind in [
        ExportKind::Accounts,
        ExportKind::Friends,
        ExportKind::Groups,
        ExportKind::GroupMembers,
        ExportKind::GroupMessages,
    ] {
        assert_eq!(
            records(&out, &kind.file_name(), &[]).len() as u64,
            old.generated.valid[&kind],
            "{kind}: the old app's records"
        );
    }

    // Import into the new app, then verify.
    let mut new =
        app_world("im2im-new", NEW_APP, GenerateOptions { users: 2, bad_lines: 0, ..small_export(1, 1) }).await;
    new.export = out.clone();
    let (status, report) = new.import("import").await;
    assert!(status.success(), "import into the new app failed: {status}\n{}", new.output("import"));
    let report = report.expect("import report");
    assert_eq!(report["export"]["invalid"], 0, "the export of an IM app is a valid export: {report}");
    let (status, verify) = new.verify("verify").await;
    assert!(status.success(), "verify failed: {status}\n{}", new.output("verify"));
    assert_verified(&verify, "the new app after importing the old app's export");

    // The two apps hold the same data: an export of the new app has the old app's records (message ids are
    // each app's MsgKeys and seqs).
    let again = new.dir.path().join("from-new");
    let new_app = new.emulator.client_config();
    assert_eq!(new_app.sdkappid, NEW_APP);
    read_from(&mut new, &new_app);
    let accounts_new = accounts_file(&new, &users);
    let (status, _) = export(&new, &again, &accounts_new, "export-new").await;
    assert!(status.success(), "export of the new app failed\n{}", new.output("export-new"));
    for (file, drop) in [
        ("accounts.ndjson", &[][..]),
        ("profiles.ndjson", &[]),
        ("friends.ndjson", &[]),
        ("groups.ndjson", &[]),
        ("group_members.ndjson", &[]),
        ("c2c_messages.ndjson", &["id"]),
        ("group_messages.ndjson", &["id"]),
    ] {
        let (a, b) = (records(&out, file, drop), records(&again, file, drop));
        let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(3).collect();
        assert!(
            a.len() == b.len() && differ.is_empty(),
            "{file}: old {} vs new {} records; first differences {differ:?}",
            a.len(),
            b.len()
        );
    }
}
