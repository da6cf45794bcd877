//! Watching imbridge: ingest, to-im and to-legacy run as processes against a private Apache Kafka
//! broker this test starts and stops itself (`scripts/kafka.sh` on a free port), with both emulators sending
//! real traffic through them:
//! - legacy users write on the legacy emulator → signed webhooks → ingest → to-im → IM;
//! - app users send on IM (the emulator's simulated client) → callbacks → ingest → to-legacy → legacy, whose
//!   echo webhooks ingest drops;
//! - a poison record is dead-lettered and parks its conversation; IM's sendmsg limit is set below imbridge's
//!   pace, so 60007 answers, retries and rate-limit waits happen.
//!
//! Checked: every service answers `/healthz` and `/readyz`, and its `/metrics` carry the README's metrics with
//! values that moved; JSON logs carry one span per event with its id and conversation; `/readyz` turns 503 on
//! all three when the broker stops (while `/healthz` stays 200), and 200 again when it is back; traffic flows
//! again afterwards; SIGTERM stops each cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use imbridge_e2e::*;
use imbridge_im::{Api, RateSetting};

/// Label pairs a metric series must carry.
type Labels<'a> = &'a [(&'a str, &'a str)];

async fn all(addrs: &[SocketAddr], f: impl AsyncFn(SocketAddr) -> bool) -> bool {
    for a in addrs {
        if !f(*a).await {
            return false;
        }
    }
    true
}

async fn not_ready(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/readyz")).await.is_ok_and(|r| r.status().as_u16() == 503)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_and_readiness_follows_kafka() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let broker = PrivateBroker::start();
    let im = spawn_im_with_sendmsg_quota(1).await;
    let mut sb = Sandbox::new("ops-observe", 3).with_im(&im).pipeline("http://127.0.0.1:9/v1/apply");
    sb.config.kafka = broker.kafka();
    // imbridge paces sendmsg at 2/s, IM allows 1/s: waits on imbridge's limiter and 60007 answers both happen.
    sb.config.im.rate_limits.insert(Api::SendMsg, RateSetting::PerSec(2.0));
    let Stack { legacy, config, mut ingest, mut to_im, mut to_legacy, ingest_addr, to_im_addr, to_legacy_addr } =
        Stack::start(&mut sb, &im, "info,imbridge_to_im=debug").await;
    let (topics, groups) = (&sb.topics, (&sb.config.to_im.live.group_id, &sb.config.to_legacy.group_id));
    let addrs = [ingest_addr, to_im_addr, to_legacy_addr];
    eventually("all three healthy and ready", Duration::from_secs(60), || async {
        all(&addrs, healthy).await && all(&addrs, ready).await
    })
    .await;

    // Traffic both ways, and a poison record.
    for u in ["ob1", "ob2", "ob3", "ob4"] {
        legacy_api(&legacy, "/api/users", serde_json::json!({"user_id": u})).await;
    }
    let client = im_client(&im);
    for u in ["ob1", "ob2", "ob3", "ob4"] {
        let req = imbridge_im::types::account::AccountImportReq { user_id: u.into(), nick: None, face_url: None };
        client.account_import(&req).await.expect("account");
    }
    for i in 0..6 {
        let body = serde_json::json!({"from": "ob1", "to": "ob2", "body": [{"type": "text", "text": format!("from legacy {i}")}]});
        legacy_api(&legacy, "/api/messages", body).await;
    }
    for i in 0..4 {
        app_user_sends_retrying(&im, "ob3", "ob4", &format!("from the app {i}"), 9_000 + i).await;
    }
    produce_raw(&broker.kafka(), &topics.legacy_events, b"c2c:poison1:poison2", b"{not an envelope").await;

    let gt0 = |page: &str, name: &str, labels: &[(&str, &str)]| metric(page, name, labels) > 0.0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (i, t, l) = (
            scrape_or_empty(ingest_addr).await,
            scrape_or_empty(to_im_addr).await,
            scrape_or_empty(to_legacy_addr).await,
        );
        let checks = [
            (
                "ingest legacy events",
                gt0(&i, "imbridge_ingest_events_total", &[("source", "legacy"), ("kind", "c2c.message")]),
            ),
            ("ingest im events", gt0(&i, "imbridge_ingest_events_total", &[("source", "im"), ("kind", "c2c.message")])),
            ("ingest echoes", gt0(&i, "imbridge_ingest_echoes_dropped_total", &[("source", "legacy")])),
            (
                "to-im applied",
                metric(&t, "imbridge_to_im_events_total", &[("kind", "c2c.message"), ("outcome", "applied")]) >= 6.0,
            ),
            (
                "to-legacy applied",
                metric(&l, "imbridge_to_legacy_events_total", &[("kind", "c2c.message"), ("outcome", "applied")])
                    >= 4.0,
            ),
            ("to-im dead letter", gt0(&t, "imbridge_to_im_records_total", &[("outcome", "dead_letter")])),
        ];
        if checks.iter().all(|(_, ok)| *ok) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let failed: Vec<&str> = checks.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
            panic!(
                "metrics did not move: {failed:?}\n--- ingest\n{i}\n--- to-im\n{t}\n--- to-legacy\n{l}\nim stats {:?}\nlegacy stats {:?}",
                im.emulator().stats(),
                legacy.stats()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (i, t, l) =
        (scrape_or_empty(ingest_addr).await, scrape_or_empty(to_im_addr).await, scrape_or_empty(to_legacy_addr).await);
    let must_move: &[(&str, &str, Labels)] = &[
        ("ingest", "imbridge_ingest_produce_seconds_count", &[]),
        ("ingest", "imbridge_ingest_requests_total", &[("endpoint", "legacy"), ("status", "200")]),
        ("to-im", "imbridge_to_im_apply_seconds_count", &[("kind", "c2c.message")]),
        ("to-im", "imbridge_to_im_end_to_end_seconds_count", &[("kind", "c2c.message")]),
        ("to-im", "imbridge_to_im_record_age_seconds_count", &[]),
        ("to-im", "imbridge_to_im_parked_conversations", &[]),
        ("to-im", "imbridge_im_calls_total", &[("api", "sendmsg"), ("outcome", "ok")]),
        ("to-im", "imbridge_im_frequency_limited_total", &[("api", "sendmsg"), ("code", "60007")]),
        ("to-im", "imbridge_im_retries_total", &[("api", "sendmsg")]),
        ("to-im", "imbridge_im_rate_limit_wait_seconds_total", &[("api", "sendmsg")]),
        ("to-im", "imbridge_im_rate_limit_per_second", &[("api", "sendmsg")]),
        ("to-legacy", "imbridge_to_legacy_apply_seconds_count", &[("outcome", "applied")]),
        ("to-legacy", "imbridge_to_legacy_end_to_end_seconds_count", &[("kind", "c2c.message")]),
        ("to-legacy", "imbridge_to_legacy_batch_events_count", &[]),
    ];
    for (svc, name, labels) in must_move {
        let page = match *svc {
            "ingest" => &i,
            "to-im" => &t,
            _ => &l,
        };
        assert!(gt0(page, name, labels), "{svc}: {name}{labels:?} did not move:\n{page}");
    }
    assert_eq!(metric(&t, "imbridge_to_im_parked_conversations", &[]), 1.0, "the poison record parks its conversation");
    // Exposed even at zero: DLQ and parking on to-legacy, the lag gauges on both consumers (per partition).
    for name in [
        "imbridge_to_legacy_parked_conversations",
        "imbridge_to_legacy_records_total",
        "imbridge_to_legacy_retries_total",
    ] {
        assert!(l.contains(&format!("\n{name}")), "to-legacy: {name} missing:\n{l}");
    }
    eventually("per-partition lag gauges", Duration::from_secs(30), || async {
        let (t, l) = (scrape_or_empty(to_im_addr).await, scrape_or_empty(to_legacy_addr).await);
        let le = format!("topic=\"{}\"", topics.legacy_events);
        let ie = format!("topic=\"{}\"", topics.im_events);
        t.lines().any(|x| x.starts_with("imbridge_to_im_consumer_lag{") && x.contains(&le))
            && l.lines().any(|x| x.starts_with("imbridge_to_legacy_consumer_lag{") && x.contains(&ie))
    })
    .await;

    // One span per event, with its id and conversation, in the JSON log.
    let spans: Vec<serde_json::Value> =
        to_im.log_lines().into_iter().filter(|v| v["span"]["name"] == "apply").collect();
    assert!(
        spans.iter().any(|v| v["span"]["event_id"].as_str().is_some_and(|id| id.starts_with("legacy:"))
            && v["span"]["conversation"] == "c2c:ob1:ob2"),
        "no apply span with event_id and conversation in {}",
        to_im.log.display()
    );

    // `imbridge status` sees the same picture from Kafka alone: groups with a member each and their lag, the
    // parked conversation and the DLQ behind it.
    let (ok, out) = run_cli(&config, &["status", "--json"]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let group = |g: &str| report["groups"].as_array().and_then(|a| a.iter().find(|x| x["group"] == g)).cloned();
    let live = group(groups.0).expect("to-im group reported");
    assert_eq!(live["partitions"].as_array().map(Vec::len), Some(3), "{live}");
    assert_eq!(report["members"][groups.0].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["members"][groups.1].as_array().map(Vec::len), Some(1), "{report}");
    assert!(group(groups.1).is_some_and(|g| g["topic_exists"] == true), "{report}");
    assert_eq!(report["parked"][0]["conversation"], "c2c:poison1:poison2", "{report}");
    assert_eq!(report["parked"][0]["first_kind"], "malformed", "{report}");
    assert!(report["dlq_unresolved"].as_u64() >= Some(1), "{report}");
    let (ok, text) = run_cli(&config, &["status"]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("group {} on {}: 1 member,", groups.0, topics.legacy_events)), "{text}");
    assert!(text.contains("parked conversations: 1\n  c2c:poison1:poison2"), "{text}");

    // Kafka stops: every service says not ready, but stays healthy (the process is fine).
    broker.stop();
    eventually("all three not ready while Kafka is down", Duration::from_secs(60), || async {
        all(&addrs, not_ready).await
    })
    .await;
    assert!(all(&addrs, healthy).await, "/healthz must not depend on Kafka");
    let body = reqwest::get(format!("http://{to_im_addr}/readyz")).await.expect("readyz").text().await.expect("body");
    assert!(body.contains("kafka not ready"), "{body}");

    // Kafka is back (same data): ready again, and traffic flows again.
    broker.restart();
    eventually("all three ready again", Duration::from_secs(90), || async { all(&addrs, ready).await }).await;
    let before = metric(&scrape_or_empty(to_im_addr).await, "imbridge_to_im_events_total", &[("outcome", "applied")]);
    let body = serde_json::json!({"from": "ob2", "to": "ob1", "body": [{"type": "text", "text": "after the outage"}]});
    legacy_api(&legacy, "/api/messages", body).await;
    eventually("traffic flows after the outage", Duration::from_secs(60), || async {
        metric(&scrape_or_empty(to_im_addr).await, "imbridge_to_im_events_total", &[("outcome", "applied")]) > before
    })
    .await;

    for p in [&mut to_im, &mut to_legacy, &mut ingest] {
        let status = p.terminate();
        assert!(status.success(), "exit 0 on SIGTERM: {status}\n{}", p.log_text());
    }
}
