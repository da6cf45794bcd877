//! A bug the convergence test found, kept as a regression test: the first id rule named an IM group lifecycle event
//! `im:gevt:<group>:<command>:<EventTime ms>`, so two different changes of the same kind to one group within one
//! millisecond — two members quitting at once, say — shared an id, and every idempotent consumer downstream
//! (to-legacy's apply, the legacy system's idempotency by id) dropped the second as a duplicate: legacy kept a
//! member IM no longer had. The id now ends with a digest of the change (`EventId::im_group_event`).

use std::collections::BTreeSet;
use std::time::Duration;

use imbridge_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_quitting_in_the_same_millisecond_are_two_events() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let emulator = imbridge_im_emulator::EmulatorConfig::default();
    let sb = Sandbox::new("sync-ids", PARTITIONS).with_im_app(&emulator).pipeline("http://127.0.0.1:9/v1/apply");
    let topics = sb.topics.clone();
    create_topics(&topics, topics.partitions).await;
    let config = sb.write_config("imbridge");
    let ingest = sb.start(&config, &["ingest"], "ingest");
    let addr = ingest.ingest_addr().await;
    let url = format!(
        "http://{addr}/v1/im/callback?SdkAppid={}&CallbackCommand=Group.CallbackAfterMemberExit&contenttype=json\
         &ClientIP=127.0.0.1&OptPlatform=Android",
        emulator.sdkappid
    );
    let http = reqwest::Client::new();
    for who in ["ann", "bob"] {
        let body = json!({"CallbackCommand": "Group.CallbackAfterMemberExit", "GroupId": "crew", "Type": "Public",
            "ExitType": "Quit", "Operator_Account": who, "ExitMemberList": [{"Member_Account": who}],
            "EventTime": 1_700_000_000_123i64});
        let r = http.post(&url).json(&body).send().await.expect("callback");
        assert!(r.status().is_success(), "{}", r.status());
    }
    // ingest answers IM once a callback is fsynced in its spool and produces it to Kafka right after: read the
    // topic until both have arrived (or the wait ends), then compare.
    let read_ids = || async {
        envelopes(&topics.im_events).await.into_iter().map(|e| e.id.as_str().to_owned()).collect::<BTreeSet<_>>()
    };
    eventually("both exits produced from ingest's spool", Duration::from_secs(30), || async {
        read_ids().await.len() >= 2
    })
    .await;
    let ids = read_ids().await;
    assert_eq!(ids.len(), 2, "two different exits must be two events: {ids:?}");
}
