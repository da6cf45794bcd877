//! Resumability: `imbridge import` is killed with SIGKILL twice — early (producing, accounts) and in the middle
//! of applying 1:1 and group history — and the same command run again finishes the run. The end state is the
//! one an uninterrupted import gives: `imbridge verify` finds everything, in order, and nothing twice (group
//! message import is not deduplicated by IM, so this is where a naive resume would duplicate).
//!
//! The client's rates for `importmsg` and `import_group_msg` are lowered so the apply lasts long enough to be
//! interrupted at chosen points; the emulator itself runs without limits.

use std::time::Duration;

use imbridge_e2e::import::{World, assert_verified, kinds, small_export};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twice_then_resumed_ends_identical() {
    let _turn = imbridge_e2e::turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let mut w = World::new("import-resume", small_export(900, 500), false).await;
    w.env.insert("IMBRIDGE_IM__RATE_LIMITS__IMPORTMSG".into(), "120".into());
    w.env.insert("IMBRIDGE_IM__RATE_LIMITS__IMPORT_GROUP_MSG".into(), "12".into());
    // Checkpoint often, so the first kill lands between checkpoints of a partly produced stream.
    w.env.insert("IMBRIDGE_IMPORT__CHECKPOINT_INTERVAL_MS".into(), "50".into());

    // Kill 1: as soon as IM has seen the first accounts (producing and apply have both begun).
    let mut child = w.spawn_import("import-1");
    wait_for(&w, "the first multiaccount_import", || w.requests("im_open_login_svc/multiaccount_import") >= 1).await;
    child.kill().expect("kill -9");
    let _ = child.wait();

    // Kill 2: in the middle of 1:1 and group history.
    let mut child = w.spawn_import("import-2");
    wait_for(&w, "history in progress", || {
        w.requests("openim/importmsg") >= 300 && w.requests("group_open_http_svc/import_group_msg") >= 20
    })
    .await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    let group_calls_before = w.requests("group_open_http_svc/import_group_msg");
    assert!(w.requests("openim/importmsg") < 900, "the kill came too late to interrupt the 1:1 history");

    // The same command again: it continues the interrupted run to the end.
    let (status, report) = w.import("import-3").await;
    assert!(status.success(), "resumed import failed: {status}\n{}", w.output("import-3"));
    let report = report.expect("report");
    assert_eq!(report["generation"], 1, "a resume continues the run, it does not start another");
    assert!(report["attempts"].as_u64().expect("attempts") >= 3, "{}", report["attempts"]);
    for (kind, k) in kinds(&report) {
        assert_eq!(k["failed"], 0, "{kind} failed: {}", report["failures"]);
    }
    // Messages imported before the kill are recognised in IM, not sent again.
    let gm = &kinds(&report)["group_message"];
    assert!(gm["imported"].as_u64().expect("n") < gm["records"].as_u64().expect("n"), "{gm}");
    assert!(w.requests("group_open_http_svc/import_group_msg") > group_calls_before);

    let (status, verify) = w.verify("verify").await;
    assert!(status.success(), "verify after the resumed import failed: {status}\n{}", w.output("verify"));
    assert_verified(&verify, "after kill -9 and resume");
}

async fn wait_for(w: &World, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}\n{}", w.output("import-1"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
