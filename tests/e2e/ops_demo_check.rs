//! `imbridge demo check` gives both verdicts, as a real process against real emulators and the real broker. A
//! small world is set up directly (no pipeline runs): two users with the same 1:1 conversation on the legacy
//! emulator and in the IM emulator, the consumer topics, and a stand-in for the three services' `/metrics`
//! pages whose counters say every ingested event was applied. Unchanged, the check says PASS and exits 0; each
//! fault below must make it print FAIL with the reason and exit non-zero:
//! - a conversation that differs (a message missing on IM);
//! - an echo that got through (a message twice on both sides: the comparison alone would call them identical);
//! - a record on the DLQ topic;
//! - lag that stays (an event on legacy's topic that to-im's group never commits);
//! - a DLQ topic that cannot be read (an error, never "0 records").

use imbridge_core::TimestampMs;
use imbridge_e2e::*;
use imbridge_im::MsgElement;
use imbridge_im::types::c2c::{ImportMsgReq, SYNC_HISTORY};
use serde_json::json;

/// What goes wrong in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    ConversationDiffers,
    EchoThrough,
    DlqRecord,
    LagStays,
    DlqUnreadable,
}

/// The 1:1 conversation both systems hold: (from, text); the last two are what the traffic "sent".
const MESSAGES: [(&str, &str); 3] = [("alice", "history 1"), ("bob", "live 2"), ("alice", "live 3")];

/// Every ingested event applied, per the services' counters (what `demo check` reads first).
const INGEST_PAGE: &str = "imbridge_ingest_events_total{source=\"legacy\",kind=\"c2c.message\"} 2\n\
                           imbridge_ingest_events_total{source=\"im\",kind=\"c2c.message\"} 1\n";
const TO_IM_PAGE: &str = "imbridge_to_im_events_total{kind=\"c2c.message\",outcome=\"applied\"} 2\n";
const TO_LEGACY_PAGE: &str = "imbridge_to_legacy_events_total{kind=\"c2c.message\",outcome=\"applied\"} 1\n";

/// Serves the three `/metrics` pages; returns their base URL.
async fn metrics_pages() -> String {
    let app = axum::Router::new()
        .route("/ingest", axum::routing::get(|| async { INGEST_PAGE }))
        .route("/to-im", axum::routing::get(|| async { TO_IM_PAGE }))
        .route("/to-legacy", axum::routing::get(|| async { TO_LEGACY_PAGE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Sets up one world with `fault`, runs `imbridge demo check`, returns (exit 0, output).
async fn check(fault: Fault) -> (bool, String) {
    let name = format!("{fault:?}").to_lowercase();
    let im = spawn_im(None).await;
    let legacy = spawn_legacy().await;
    let mut sb = Sandbox::new("demo-check", 2).with_im(&im).pipeline(&legacy.apply_url());
    let topics = sb.topics.clone();
    create_topics(&topics, 3).await;

    let http = reqwest::Client::new();
    let client = im_client(&im);
    import_accounts(&client, &["alice", "bob"]).await;
    let legacy_send = |from: &str, text: &str| {
        let to = if from == "alice" { "bob" } else { "alice" };
        let body = json!({"from": from, "to": to, "body": [{"type": "text", "text": text}]});
        http.post(format!("{}/api/messages", legacy.url())).json(&body).send()
    };
    let im_send = |i: u32, from: &str, text: &str| {
        let to = if from == "alice" { "bob" } else { "alice" };
        let req = ImportMsgReq {
            sync_from_old_system: SYNC_HISTORY,
            from_account: from.to_owned(),
            to_account: to.to_owned(),
            msg_seq: Some(i),
            msg_random: 7_000 + i,
            msg_time_stamp: 1_700_000_000 + i64::from(i),
            msg_body: vec![MsgElement::text(text)],
            cloud_custom_data: None,
        };
        let client = &client;
        async move { client.importmsg(&req).await }
    };
    for u in ["alice", "bob"] {
        let r = http.post(format!("{}/api/users", legacy.url())).json(&json!({"user_id": u})).send().await;
        assert!(r.expect("legacy user").status().is_success());
    }
    let mut seq = 0;
    for (i, (from, text)) in MESSAGES.iter().enumerate() {
        assert!(legacy_send(from, text).await.expect("legacy message").status().is_success());
        if !(fault == Fault::ConversationDiffers && i == 2) {
            seq += 1;
            im_send(seq, from, text).await.expect("importmsg");
        }
        if fault == Fault::EchoThrough && i == 1 {
            // The message came back to each side once more.
            assert!(legacy_send(from, text).await.expect("legacy message").status().is_success());
            seq += 1;
            im_send(seq, from, text).await.expect("importmsg");
        }
    }
    match fault {
        Fault::DlqRecord => {
            produce(&topics.dlq, &[c2c("poison", "alice", "bob", "never applied")]).await;
        }
        Fault::LagStays => {
            produce(&topics.legacy_events, &[c2c("stuck", "alice", "bob", "in flight")]).await;
        }
        // Named in the configuration, never created.
        Fault::DlqUnreadable => sb.config.topics.dlq = imbridge_testkit::unique("demo-check-no-such-dlq"),
        _ => {}
    }
    let config = sb.write_config(&name);
    let summary = json!({
        "users_old_app": 1, "users_new_app": 1, "rounds": 1, "elapsed_secs": 1.0, "catch_up_secs": [0.1],
        "pairs": [{"a": "alice", "b": "bob", "a_side": "legacy", "b_side": "im"}],
        "groups": [], "ops": {}, "refused": [],
        "sent": {"c2c:alice:bob": ["live 2", "live 3"]},
    });
    let summary_path = sb.file(&format!("{name}-summary.json"));
    std::fs::write(&summary_path, summary.to_string()).expect("summary");
    let pages = metrics_pages().await;
    let args = [
        "demo",
        "check",
        "--summary",
        summary_path.to_str().expect("utf8"),
        "--legacy-url",
        &legacy.url(),
        "--ingest-metrics",
        &format!("{pages}/ingest"),
        "--to-im-metrics",
        &format!("{pages}/to-im"),
        "--to-legacy-metrics",
        &format!("{pages}/to-legacy"),
        "--timeout-secs",
        "3",
    ];
    // The CLI blocks; the emulators serve from this runtime's workers meanwhile.
    let config_path = config.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let started = TimestampMs::now();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&config_path, &args)
    })
    .await
    .expect("demo check");
    eprintln!("--- demo check, {fault:?} ({} ms):\n{out}", TimestampMs::now().as_millis() - started.as_millis());
    (ok, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_check_passes_a_converged_run_and_fails_every_fault() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let (ok, out) = check(Fault::None).await;
    assert!(ok, "the untouched world must PASS: {out}");
    assert!(out.contains("RESULT: PASS"), "{out}");
    assert!(out.contains("identical") && out.contains("DLQ topic") && out.contains(": 0 records)"), "{out}");

    for (fault, reason) in [
        (Fault::ConversationDiffers, "1 of 1 conversations differ"),
        (Fault::EchoThrough, "sent messages not there exactly once: \"live 2\" ×2"),
        (Fault::DlqRecord, ": 1 records"),
        (Fault::LagStays, "the pipeline did not catch up"),
        (Fault::DlqUnreadable, "cannot read the DLQ topic"),
    ] {
        let (ok, out) = check(fault).await;
        assert!(!ok, "{fault:?} must exit non-zero: {out}");
        assert!(out.contains("RESULT: FAIL"), "{fault:?}: {out}");
        assert!(out.contains(reason), "{fault:?}: {reason} in {out}");
        assert!(out.lines().any(|l| l.starts_with("FAIL: ")), "{fault:?} names its reason: {out}");
    }
}
