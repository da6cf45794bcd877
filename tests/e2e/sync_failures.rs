//! What to-im does with events that cannot apply, and the `importmsg` alternative for 1:1 messages.
//!
//! - A poison record (not an envelope), an import record on the live topic, and a message to a group IM does not
//!   have (a permanent IM error, 10010) go to the DLQ with their reason; the later events of that group are
//!   parked behind it (never applied out of order); other conversations are not held up.
//! - With `c2c_api = "importmsg"` 1:1 messages use IM's live-import mode: order kept, no callback at all, no
//!   `sendmsg` call.

use std::time::Duration;

use imbridge_core::Event;
use imbridge_core::event::ImportAccount;
use imbridge_e2e::*;
use imbridge_kafka::dlq::DeadLetterInfo;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_to_im::live::C2cApi;
use imbridge_to_im::service::{ServiceConfig, ToImConfig, start};
use tokio_util::sync::CancellationToken;

async fn dead_letters(topic: &str) -> Vec<(String, String)> {
    let out: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let sink = out.clone();
    read_range(&kafka(), topic, None, Start::Earliest, move |r| {
        let info = DeadLetterInfo::from_record(&r).expect("dlq headers");
        sink.lock().expect("lock").push((info.original_key.unwrap_or_default(), info.kind));
        true
    })
    .await
    .expect("read dlq");
    let mut v = out.lock().expect("lock").clone();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_failures_are_dead_lettered_and_park_their_conversation() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let topics = unique_topics("sync-fail", PARTITIONS);
    create_topics(&topics, topics.partitions).await;
    let im_server = spawn_im(None).await;
    let im = im_client(&im_server);
    import_accounts(&im, &["fa", "fb"]).await;

    let producer = imbridge_kafka::Producer::new(&kafka()).expect("producer");
    producer
        .send(&topics.legacy_events, Outgoing { key: b"c2c:px:py", payload: b"{not json", headers: &[] })
        .await
        .expect("poison");
    let import =
        legacy("imp-1", Event::ImportAccount(ImportAccount { user_id: user("fa"), nick: None, face_url: None }));
    produce(
        &topics.legacy_events,
        &[
            import,
            gmsg("ghost-1", "ghost", "fa", "to nowhere"),
            gmsg("ghost-2", "ghost", "fb", "parked behind"),
            c2c("ok-1", "fa", "fb", "still flows"),
            c2c("ok-2", "fb", "fa", "and in order"),
        ],
    )
    .await;

    let shutdown = CancellationToken::new();
    let mut to_im = ToImConfig { ops_listen: "127.0.0.1:0".parse().expect("addr"), ..ToImConfig::default() };
    to_im.live.group_id = imbridge_testkit::unique("sync-fail-group");
    let cfg = ServiceConfig { kafka: kafka(), topics: topics.clone(), im: im_server.client_config(), to_im };
    let running = start(cfg, shutdown.clone()).await.expect("to-im starts");

    eventually("the good conversation applied", Duration::from_secs(60), || async {
        c2c_texts(&im, "fa", "fb").await == ["still flows", "and in order"]
    })
    .await;
    let want = vec![
        ("c2c:px:py".to_owned(), "malformed".to_owned()),
        ("group:ghost".to_owned(), "im_10010".to_owned()),
        ("group:ghost".to_owned(), "parked".to_owned()),
        ("user:fa".to_owned(), "unexpected_kind".to_owned()),
    ];
    eventually("four dead letters", Duration::from_secs(60), || async { dead_letters(&topics.dlq).await == want })
        .await;
    let page = scrape(running.ops_addr).await;
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 3.0, "{page}");
    assert_eq!(metric(&page, "imbridge_to_im_records_total", &[("outcome", "parked")]), 1.0);
    assert_eq!(group_members(&im, "ghost").await, None);
    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn importmsg_mode_keeps_order_and_never_calls_back() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let topics = unique_topics("sync-importmsg", PARTITIONS);
    create_topics(&topics, topics.partitions).await;
    let (cb_url, recorded) = recording_server().await;
    let im_server = spawn_im(Some(cb_url)).await;
    let im = im_client(&im_server);
    import_accounts(&im, &["ia", "ib"]).await;
    let texts: Vec<String> = (0..20).map(|i| format!("imp {i}")).collect();
    let events: Vec<_> =
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i % 2 == 0 { c2c(&format!("im-{i}"), "ia", "ib", t) } else { c2c(&format!("im-{i}"), "ib", "ia", t) }
            })
            .collect();
    produce(&topics.legacy_events, &events).await;

    let shutdown = CancellationToken::new();
    let mut to_im = ToImConfig { ops_listen: "127.0.0.1:0".parse().expect("addr"), ..ToImConfig::default() };
    to_im.live.group_id = imbridge_testkit::unique("sync-importmsg-group");
    to_im.live.c2c_api = C2cApi::Importmsg;
    let cfg = ServiceConfig { kafka: kafka(), topics: topics.clone(), im: im_server.client_config(), to_im };
    let running = start(cfg, shutdown.clone()).await.expect("to-im starts");
    eventually("every message applied", Duration::from_secs(60), || async {
        c2c_texts(&im, "ia", "ib").await == texts
    })
    .await;
    assert_eq!(c2c_texts(&im, "ib", "ia").await, texts);
    let stats = im_server.emulator().stats();
    assert_eq!(stats.requests.get("openim/importmsg").copied(), Some(20));
    assert_eq!(stats.requests.get("openim/sendmsg"), None);
    im_server.emulator().flush_callbacks().await;
    assert!(recorded.all().is_empty(), "importmsg never calls back: {:?}", recorded.all());
    shutdown.cancel();
    running.wait().await.expect("clean stop");
}
