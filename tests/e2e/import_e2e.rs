//! `imbridge import` end to end, as a real process against the real broker and the IM emulator (real HTTP)
//! enforcing IM's documented frequency limits: a generated export with every record kind, every body element
//! type and bad lines → import (invalid lines skipped and reported, zero 60007) → `imbridge verify` passes →
//! the same import again (a new run that re-produces everything) → no duplicates, verify still passes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use imbridge_e2e::import::{World, assert_verified, element_types, kinds, small_export};
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::reader::{Start, read_range};

/// Per conversation key: its first and its last phase on the conversation-state topic.
async fn conversation_states(w: &World) -> BTreeMap<String, (String, String)> {
    let seen: Arc<Mutex<BTreeMap<String, (String, String)>>> = Arc::default();
    let sink = seen.clone();
    let kafka = KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap());
    read_range(&kafka, &format!("{}.conversations", w.prefix), None, Start::Earliest, move |r| {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).expect("state");
        let key = r.key_str().expect("key").to_owned();
        assert_eq!(v["conversation"].as_str(), Some(key.as_str()));
        let phase = v["phase"].as_str().expect("phase").to_owned();
        let mut m = sink.lock().expect("lock");
        let e = m.entry(key).or_insert_with(|| (phase.clone(), phase.clone()));
        e.1 = phase;
        true
    })
    .await
    .expect("read the conversation states");
    seen.lock().expect("lock").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_verify_and_reimport_without_duplicates() {
    let _turn = imbridge_e2e::turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let w = World::new("import-e2e", small_export(600, 300), true).await;
    let types = element_types(&w.export);
    for t in ["text", "image", "file", "sound", "video", "location", "face", "custom"] {
        assert!(types.contains(t), "the generated export lacks {t} elements: {types:?}");
    }
    assert_eq!(w.generated.bad.len(), imbridge_importer::generate::BadKind::ALL.len());

    // First import.
    let (status, report) = w.import("import-1").await;
    assert!(status.success(), "import failed: {status}\n{}", w.output("import-1"));
    let report = report.expect("import report");
    assert_eq!(report["generation"], 1);
    assert_eq!(report["attempts"], 1);
    let export = &report["export"];
    assert!(export["invalid"].as_u64().expect("invalid") >= w.generated.bad.len() as u64);
    for bad in &w.generated.bad {
        let listed = export["kinds"].as_array().expect("kinds").iter().any(|k| {
            k["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["line"] == bad.line && e["kind"] == serde_json::json!(bad.kind))
        });
        assert!(listed, "bad line {:?} at {}:{} is not in the report", bad.what, bad.kind, bad.line);
    }
    let by_kind = kinds(&report);
    let mut skipped = 0;
    for (kind, k) in &by_kind {
        let n = |f: &str| k[f].as_u64().expect("count");
        assert_eq!(n("failed"), 0, "{kind} failed: {}", report["failures"]);
        assert_eq!(n("imported") + n("already_present"), n("records"), "{kind}: {k}");
        assert!(n("records") > 0, "{kind} has no records in the export");
        skipped += n("skipped_invalid");
    }
    assert!(skipped >= w.generated.bad.len() as u64);
    // The groups were new: every message imported, none "already present".
    assert_eq!(by_kind["group_message"]["already_present"], 0);
    assert_eq!(by_kind["group"]["imported"], by_kind["group"]["records"]);
    // Within IM's quotas: no frequency-limit answer, at the emulator or the client.
    assert_eq!(report["frequency_limited"], 0);
    assert_eq!(w.emulator.emulator().stats().rate_limited, 0, "the emulator answered 60007");
    assert!(report["lower_bound"]["secs"].as_f64().expect("bound") > 0.0);
    assert!(report["wall_secs"].as_f64().expect("wall") >= report["lower_bound"]["secs"].as_f64().expect("bound"));
    let group_msgs = w.requests("group_open_http_svc/import_group_msg");

    let (status, verify) = w.verify("verify-1").await;
    assert!(status.success(), "verify failed: {status}\n{}", w.output("verify-1"));
    assert_verified(&verify, "after the first import");

    // Every conversation and group with history went importing → live on the conversation-state topic.
    let states = conversation_states(&w).await;
    let markers = by_kind["conversation_done"]["records"].as_u64().expect("markers");
    assert_eq!(states.len() as u64, markers, "one state per conversation with history");
    let phases: Vec<&String> = states.values().map(|(first, _)| first).collect();
    assert!(phases.iter().all(|p| *p == "importing"), "the first state of each is importing");
    assert!(states.values().all(|(_, last)| last == "live"), "every conversation ends live");

    // The same import again: a new generation, everything produced and applied again, nothing duplicated.
    let (status, report2) = w.import("import-2").await;
    assert!(status.success(), "re-import failed: {status}\n{}", w.output("import-2"));
    let report2 = report2.expect("re-import report");
    assert_eq!(report2["generation"], 2);
    let again = kinds(&report2);
    let records = |k: &str| again[k]["records"].as_u64().expect("records");
    assert_eq!(again["group_message"]["already_present"].as_u64(), Some(records("group_message")));
    assert_eq!(again["group"]["already_present"].as_u64(), Some(records("group")));
    assert_eq!(again["group_member"]["already_present"].as_u64(), Some(records("group_member")));
    assert_eq!(
        w.requests("group_open_http_svc/import_group_msg"),
        group_msgs,
        "group messages already in IM must not be sent again"
    );
    for (kind, k) in &again {
        assert_eq!(k["failed"], 0, "{kind} failed on the re-import: {}", report2["failures"]);
    }
    let (status, verify) = w.verify("verify-2").await;
    assert!(status.success(), "verify after the re-import failed: {status}\n{}", w.output("verify-2"));
    assert_verified(&verify, "after the re-import");
}

/// IM's quota lower than the client's (another tenant of the app, a plan with a smaller quota): 60007 answers
/// are retried (by the client, then by the consumer runner) until everything is in, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequency_limit_answers_are_retried_until_everything_is_in() {
    let _turn = imbridge_e2e::turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let emulator = imbridge_im_emulator::EmulatorConfig {
        rate_limit_overrides: [("openim/importmsg".to_owned(), 40)].into_iter().collect(),
        ..imbridge_im_emulator::EmulatorConfig::default()
    };
    let w = World::with_emulator("import-60007", small_export(300, 100), emulator).await;
    let (status, report) = w.import("import").await;
    assert!(status.success(), "import failed: {status}\n{}", w.output("import"));
    let report = report.expect("report");
    assert!(report["frequency_limited"].as_u64().expect("count") > 0, "the client saw no 60007");
    assert!(w.emulator.emulator().stats().rate_limited > 0);
    for (kind, k) in kinds(&report) {
        assert_eq!(k["failed"], 0, "{kind} failed: {}", report["failures"]);
    }
    let (status, verify) = w.verify("verify").await;
    assert!(status.success(), "verify failed: {status}\n{}", w.output("verify"));
    assert_verified(&verify, "after an import throttled by 60007");
}
