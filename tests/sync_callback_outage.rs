//! The spool under the two failures IM's fire-once callbacks cannot survive on their own, on a PRIVATE broker
//! this test starts and stops itself (`scripts/kafka.sh` on a free port; the shared broker is never touched):
//!
//! 1. **Broker down for 30 s** while app users send: every callback is answered OK (spooled), none fails at IM,
//!    and once the broker is back every message reaches legacy, once, in order.
//! 2. **ingest killed with `kill -9`** while callbacks wait in its spool (broker down again): restarted on the
//!    same spool, it produces them, and legacy gets every one.
//!
//! ingest runs as a real process (the binary), so the kill is real; to-legacy, IM and legacy run in-process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use imbridge_testkit::eventually;
use imbridge_testkit::process::Proc;
use serde_json::json;
use support::{as_user, free_port, im_text as text, legacy_texts};
use tokio_util::sync::CancellationToken;

#[path = "sync_support.rs"]
mod support;

struct PrivateBroker {
    port: u16,
    script: PathBuf,
}

impl PrivateBroker {
    /// A free port whose successor (the KRaft controller port) is free too.
    fn free_port_pair() -> u16 {
        for _ in 0..50 {
            let a = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = a.local_addr().expect("addr").port();
            drop(a);
            if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                return port;
            }
        }
        panic!("no free port pair");
    }

    fn start() -> Self {
        let b = Self { port: Self::free_port_pair(), script: imbridge_testkit::repo_root().join("scripts/kafka.sh") };
        b.run("start", false);
        b
    }

    fn run(&self, what: &str, keep_data: bool) {
        let status = Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .env("KAFKA_KEEP_DATA", if keep_data { "1" } else { "0" })
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
            .status()
            .expect("run scripts/kafka.sh");
        assert!(status.success(), "scripts/kafka.sh {what} failed on port {}", self.port);
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .status();
    }
}

fn failed_callbacks(im: &imbridge_im_emulator::RunningEmulator) -> u64 {
    im.emulator().stats().callbacks_failed.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_and_a_killed_ingest_lose_no_accepted_callback() {
    support::logs();
    let broker = PrivateBroker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let u = imbridge_testkit::unique("cbout");
    let topics = support::callback_topics(&u);
    let kafka = imbridge_kafka::KafkaConfig::for_bootstrap(broker.bootstrap());
    let legacy = support::applying_legacy().await;
    let legacy_url = legacy.url();

    // ingest as a process on a fixed port (IM's callback URL does not change across its restart).
    let ingest_port = free_port();
    let config = support::ingest_process_config(dir.path(), &broker.bootstrap(), &topics, ingest_port, "");
    let start_ingest = |n: u32| Proc::start(&config, &["ingest"], dir.path().join(format!("ingest-{n}.log")));
    let mut ingest = start_ingest(1);
    let ingest_url = format!("http://127.0.0.1:{ingest_port}");
    support::wait_ready("ingest ready", &ingest_url).await;

    let im = support::im_calling_ingest(&ingest_url).await;

    let stop = CancellationToken::new();
    let mut tl_cfg = support::to_legacy_config(&u, &legacy);
    tl_cfg.consumer.session_timeout_ms = 10_000;
    tl_cfg.consumer.drain_timeout_ms = 4_000;
    let tl_deps = imbridge_to_legacy::Deps::new(kafka.clone(), topics.clone()).with_im(im.client_config());
    let to_legacy = imbridge_to_legacy::start(tl_cfg, tl_deps, stop.clone()).await.expect("to-legacy");

    support::create_club(&im).await;
    eventually("the group exists on legacy", Duration::from_secs(60), || {
        let url = format!("{legacy_url}/api/groups/club");
        async move { reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;

    // 1. The broker is down for 30 s while app users keep sending.
    let mut group_sent = Vec::new();
    let mut c2c_sent = Vec::new();
    broker.run("stop", false);
    let down_at = Instant::now();
    for i in 0..20 {
        let t = format!("outage-g{i:02}");
        as_user(
            &im,
            ["ann", "bob"][i % 2],
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "club", "Random": i, "MsgBody": text(&t)}),
        )
        .await;
        group_sent.push(t);
        if i % 2 == 0 {
            let t = format!("outage-c{i:02}");
            as_user(
                &im,
                "ann",
                "openim/sendmsg",
                json!({"To_Account": "bob", "MsgRandom": 100 + i, "MsgSeq": i + 1, "MsgBody": text(&t)}),
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
    let spooled = reqwest::get(format!("{ingest_url}/metrics")).await.expect("metrics").text().await.expect("text");
    let high_water = imbridge_testkit::prom::sample(&spooled, "imbridge_ingest_spool_high_water_bytes");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    broker.run("start", true);
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
    broker.run("stop", false);
    for i in 0..10 {
        let t = format!("killed-g{i:02}");
        as_user(
            &im,
            ["ann", "bob"][i % 2],
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "club", "Random": 1000 + i, "MsgBody": text(&t)}),
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
    let m = reqwest::get(format!("{ingest_url}/metrics")).await.expect("metrics").text().await.expect("text");
    let pending = imbridge_testkit::prom::sample(&m, "imbridge_ingest_spool_pending_records");
    assert_eq!(pending, 10.0, "the ten callbacks wait in the spool");
    ingest.kill9();
    broker.run("start", true);
    let mut ingest = start_ingest(2);
    eventually("the spooled callbacks reached legacy after the restart", Duration::from_secs(120), || {
        let legacy_url = legacy_url.clone();
        let g = group_sent.len();
        async move { legacy_texts(&legacy_url, "/api/groups/club/messages").await.len() >= g }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(legacy_texts(&legacy_url, "/api/groups/club/messages").await, group_sent, "once each, in order");
    let log = std::fs::read_to_string(dir.path().join("ingest-2.log")).unwrap_or_default();
    assert!(log.contains("recovered records kafka had not acknowledged"), "the restart recovered the spool");
    println!("figures: spool high-water during the 30 s outage {high_water} bytes; 10 records recovered after kill -9");

    stop.cancel();
    to_legacy.wait().await.expect("to-legacy stops");
    ingest.terminate();
}
