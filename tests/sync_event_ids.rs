//! A bug the convergence test found, kept as a regression test: issue 5 names an IM group lifecycle event
//! `im:gevt:<group>:<command>:<EventTime ms>`, so two different changes of the same kind to one group within one
//! millisecond — two members quitting at once, say — shared an id, and every idempotent consumer downstream
//! (to-legacy's apply, the legacy system's idempotency by id) dropped the second as a duplicate: legacy kept a
//! member IM no longer had. The id now ends with a digest of the change (`EventId::im_group_event`).

#[path = "sync_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use imbridge_kafka::reader::{Start, read_range};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_quitting_in_the_same_millisecond_are_two_events() {
    imbridge_testkit::require_kafka!();
    let topics = unique_topics("sync-ids", PARTITIONS);
    create_topics(&topics).await;
    imbridge_kafka::admin::Admin::new(&kafka())
        .expect("admin")
        .ensure_topics(&[imbridge_kafka::admin::TopicSpec::new(&topics.im_events, topics.partitions)])
        .await
        .expect("im events topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("imbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n[topics]\nlegacy_events = \"{}\"\nim_events = \"{}\"\ndlq = \"{}\"\n\
             partitions = {}\n[im]\nsdkappid = 1400000000\nadmin_identifier = \"administrator\"\nsecret_key = \"k\"\n\
             [ingest]\nlisten = \"127.0.0.1:0\"\nlegacy_secret = \"s\"\nspool_dir = \"{}\"\n",
            imbridge_testkit::kafka_bootstrap(),
            topics.legacy_events,
            topics.im_events,
            topics.dlq,
            topics.partitions,
            dir.path().join("ingest-spool").display()
        ),
    )
    .expect("config");
    let ingest = Proc::start(&config, &["ingest"], dir.path().join("ingest.log"));
    let mut addr = None;
    eventually("ingest listening", Duration::from_secs(60), || {
        addr = ingest.log_text().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "ingest listening").then(|| v["addr"].as_str().map(str::to_owned))?
        });
        std::future::ready(addr.is_some())
    })
    .await;
    let url = format!(
        "http://{}/v1/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterMemberExit&contenttype=json\
         &ClientIP=127.0.0.1&OptPlatform=Android",
        addr.expect("addr")
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
        let ids: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>> = Default::default();
        let sink = ids.clone();
        read_range(&kafka(), &topics.im_events, None, Start::Earliest, move |r| {
            sink.lock().expect("lock").insert(r.envelope().expect("envelope").id.as_str().to_owned());
            true
        })
        .await
        .expect("read");
        ids.lock().expect("lock").clone()
    };
    eventually("both exits produced from ingest's spool", Duration::from_secs(30), || async {
        read_ids().await.len() >= 2
    })
    .await;
    let ids = read_ids().await;
    assert_eq!(ids.len(), 2, "two different exits must be two events: {ids:?}");
}
