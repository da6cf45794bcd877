//! The spool under the two failures IM's fire-once callbacks cannot survive on their own, on a PRIVATE broker
//! this test starts and stops itself (`scripts/kafka.sh` on a free port; the shared broker is never touched):
//!
//! 1. **Broker down for 30 s** while app users send: every callback is answered OK (spooled), none fails at IM,
//!    and once the broker is back every message reaches legacy, once, in order.
//! 2. **ingest killed with `kill -9`** while callbacks wait in its spool (broker down again): restarted on the
//!    same spool, it produces them, and legacy gets every one.
//!
//! ingest runs as a real process (the binary), so the kill is real; to-legacy, IM and legacy run in-process.

use std::time::{Duration, Instant};

use imbridge_e2e::*;
use imbridge_im_emulator::EmulatorConfig;
use imbridge_testkit::prom::sample;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_and_a_killed_ingest_lose_no_accepted_callback() {
    let _turn = turn(module_path!()).await;
    logs();
    let broker = PrivateBroker::start();
    let legacy = spawn_legacy().await;
    let legacy_url = legacy.url();
    let mut sb = Sandbox::new("cbout", 3).with_im_app(&EmulatorConfig::default()).pipeline(&legacy.apply_url());
    sb.config.kafka = broker.kafka();
    let (topics, kafka) = (sb.topics.clone(), broker.kafka());

    // ingest as a process on a fixed port (IM's callback URL does not change across its restart).
    sb.config.ingest.listen = ([127, 0, 0, 1], free_port()).into();
    let config = sb.write_config("imbridge");
    let start_ingest = |n: u32| sb.start(&config, &["ingest"], &format!("ingest-{n}"));
    let mut ingest = start_ingest(1);
    let ingest_addr = sb.config.ingest.listen;
    let ingest_url = format!("http://{ingest_addr}");
    eventually("ingest ready", Duration::from_secs(60), || ready(ingest_addr)).await;

    let im = im_calling_ingest(&ingest_url).await;

    let stop = CancellationToken::new();
    let tl_cfg = sb.to_legacy_in_process();
    let tl_deps = imbridge_to_legacy::Deps::new(kafka.clone(), topics.clone()).with_im(im.client_config());
    let to_legacy = imbridge_to_legacy::start(tl_cfg, tl_deps, stop.clone()).await.expect("to-legacy");

    ann_creates_club(&im).await;
    eventually("the group exists on legacy", Duration::from_secs(60), || group_on_legacy(&legacy_url, "club")).await;

    // 1. The broker is down for 30 s while app users keep sending.
    let mut group_sent = Vec::new();
    let mut c2c_sent = Vec::new();
    broker.stop();
    let down_at = Instant::now();
    for i in 0..20 {
        let t = format!("outage-g{i:02}");
        as_user(
            &im,
            ["ann", "bob"][i % 2],
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "club", "Random": i, "MsgBody": im_text(&t)}),
        )
        .await;
        group_sent.push(t);
        if i % 2 == 0 {
            let t = format!("outage-c{i:02}");
            as_user(
                &im,
                "ann",
                "openim/sendmsg",
                json!({"To_Account": "bob", "MsgRandom": 100 + i, "MsgSeq": i + 1, "MsgBody": im_text(&t)}),
            )
            .await;
            c2c_sent.push(t);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("every callback answered", Duration::from_secs(30), || {
        let pending = im.emulator().stats().callbacks_pending;
        async move { pending == 0 }
    })
    .await;
    assert_eq!(failed_callbacks(&im), 0, "IM saw no failed callback while Kafka was down");
    let spooled = scrape(ingest_addr).await;
    let high_water = sample(&spooled, "imbridge_ingest_spool_high_water_bytes");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    broker.restart();
    eventually("everything sent during the outage reached legacy", Duration::from_secs(120), || {
        let legacy_url = legacy_url.clone();
        let (g, c) = (group_sent.len(), c2c_sent.len());
        async move {
            legacy_texts(&legacy_url, "/api/groups/club/messages").await.len() >= g
                && legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await.len() >= c
        }
    })
    .await;
    assert_eq!(legacy_texts(&legacy_url, "/api/groups/club/messages").await, group_sent, "once each, in order");
    assert_eq!(legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await, c2c_sent, "once each, in order");

    // 2. Callbacks waiting in the spool (broker down again), then kill -9.
    broker.stop();
    for i in 0..10 {
        let t = format!("killed-g{i:02}");
        as_user(
            &im,
            ["ann", "bob"][i % 2],
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "club", "Random": 1000 + i, "MsgBody": im_text(&t)}),
        )
        .await;
        group_sent.push(t);
    }
    eventually("every callback answered", Duration::from_secs(30), || {
        let pending = im.emulator().stats().callbacks_pending;
        async move { pending == 0 }
    })
    .await;
    assert_eq!(failed_callbacks(&im), 0);
    let m = scrape(ingest_addr).await;
    let pending = sample(&m, "imbridge_ingest_spool_pending_records");
    assert_eq!(pending, 10.0, "the ten callbacks wait in the spool");
    ingest.kill9();
    broker.restart();
    let mut ingest = start_ingest(2);
    eventually("the spooled callbacks reached legacy after the restart", Duration::from_secs(120), || {
        let legacy_url = legacy_url.clone();
        let g = group_sent.len();
        async move { legacy_texts(&legacy_url, "/api/groups/club/messages").await.len() >= g }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(legacy_texts(&legacy_url, "/api/groups/club/messages").await, group_sent, "once each, in order");
    let log = std::fs::read_to_string(sb.file("ingest-2.log")).unwrap_or_default();
    assert!(log.contains("recovered records kafka had not acknowledged"), "the restart recovered the spool");
    println!("figures: spool high-water during the 30 s outage {high_water} bytes; 10 records recovered after kill -9");

    stop.cancel();
    to_legacy.wait().await.expect("to-legacy stops");
    ingest.terminate();
}
