//! `POST /v1/legacy/events` over real HTTP against the test broker: every answer of the contract (401 missing,
//! forged, stale; 413; 400 with indices and nothing accepted; 200 only after Kafka has every event), echo drops,
//! harmless repeats, and the reference legacy emulator's webhooks flowing through into Kafka in order.

use std::time::Duration;

use crate::common::{Ingest, LEGACY_SECRET, config};
use imbridge_core::{Event, EventId, Source, TimestampMs};
use imbridge_ingest::IngestConfig;
use imbridge_legacy::signature::now_secs;
use imbridge_testkit::prom::sample;
use serde_json::{Value, json};

fn text(t: &str) -> Value {
    json!([{ "type": "text", "text": t }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_per_contract_and_accepts_only_after_kafka() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(IngestConfig { max_body_bytes: 8 * 1024, ..config() }).await;
    ing.wait_ready().await;
    let topic = ing.topics.legacy_events.clone();
    let good = json!([
        {"id":"m-1","type":"c2c.message","time":1_700_000_000_123_i64,"from":"bob","to":"ann","body":text("hi")},
        {"id":"g-1","type":"group.created","time":"2023-11-14T22:13:21Z","group_id":"team","group_type":"Public",
         "name":"Team","owner":"ann","members":["bob"]},
        {"id":"echo-1","type":"c2c.message","time":1_700_000_000_500_i64,"origin":"im","from":"ann","to":"bob",
         "body":text("copied from IM")},
        {"id":"g-2","type":"group.message","time":1_700_000_002_000_i64,"group_id":"team","from":"bob",
         "body":text("hello team")},
    ]);
    let body = serde_json::to_vec(&json!({ "events": good })).expect("json");

    // 401: no signature, a forged one, a stale one (and each refused before anything reached Kafka).
    let (s, v, _) = {
        let r = ing.http.post(ing.running.legacy_url()).body(body.clone()).send().await.expect("sent");
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.expect("json"), ())
    };
    assert_eq!(s, 401, "{v}");
    assert!(v["errors"][0]["error"].as_str().expect("reason").contains("missing"), "{v}");
    let (s, v, _) = ing.post_legacy_signed(&body, "not-the-secret", now_secs()).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["errors"][0]["error"].as_str().expect("reason").contains("does not match"), "{v}");
    let (s, v, _) = ing.post_legacy_signed(&body, LEGACY_SECRET, now_secs() - 301).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["errors"][0]["error"].as_str().expect("reason").contains("away from now"), "{v}");
    // 299 s of clock skew is within the tolerance.
    let ts_ok = now_secs() + 299;

    // 413: over the configured limit, even when correctly signed.
    let big: Vec<Value> = (0..40)
        .map(|i| {
            json!({"id": format!("big-{i}"), "type":"c2c.message","time":1,"from":"ann","to":"bob",
            "body": text(&"x".repeat(200))})
        })
        .collect();
    let big_body = serde_json::to_vec(&json!({ "events": big })).expect("json");
    assert!(big_body.len() > 8 * 1024);
    let (s, v, _) = ing.post_legacy_signed(&big_body, LEGACY_SECRET, now_secs()).await;
    assert_eq!(s, 413, "{v}");

    // 400 with every bad event's index; the good events of that batch are not accepted either.
    let bad = json!({"events":[
        {"id":"ok-but-refused","type":"c2c.message","time":1,"from":"ann","to":"bob","body":text("x")},
        {"id":"b1","type":"c2c.message","time":1,"from":"ann","body":text("no to")},
        {"id":"ok-too","type":"group.dismissed","time":1,"group_id":"g"},
        {"id":"b3","type":"group.members_joined","time":1,"group_id":"g","members":[]},
    ]});
    let (s, v, _) = ing.post_legacy_signed(&serde_json::to_vec(&bad).expect("json"), LEGACY_SECRET, now_secs()).await;
    assert_eq!(s, 400, "{v}");
    let idx: Vec<u64> =
        v["errors"].as_array().expect("errors").iter().map(|e| e["index"].as_u64().expect("index")).collect();
    assert_eq!(idx, vec![1, 3], "{v}");
    let (s, v, _) = ing.post_legacy_signed(b"{\"events\":", LEGACY_SECRET, now_secs()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["errors"][0].get("index").is_none(), "a whole-body error has no index: {v}");
    // Arrays are not events or batches, though serde alone would read them by position.
    let positional = json!({"events":[
        {"id":"ok-but-refused","type":"group.dismissed","time":1,"group_id":"g"},
        ["arr","group.dismissed",1,"g"],
    ]});
    let (s, v, _) =
        ing.post_legacy_signed(&serde_json::to_vec(&positional).expect("json"), LEGACY_SECRET, now_secs()).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errors"], json!([{"index": 1, "error": "event is an array, not a JSON object"}]), "{v}");
    let array_batch = json!([[{"id":"arr-batch","type":"group.dismissed","time":1,"group_id":"g"}]]);
    let (s, v, _) =
        ing.post_legacy_signed(&serde_json::to_vec(&array_batch).expect("json"), LEGACY_SECRET, now_secs()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["errors"][0]["error"].as_str().expect("error").contains("an array, not a JSON object"), "{v}");

    // 200 after Kafka acknowledged: the three non-echo events are on the topic when the answer arrives.
    let (s, v, _) = ing.post_legacy_signed(&body, LEGACY_SECRET, ts_ok).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"accepted": 3, "echoes_dropped": 1}));
    let envs = ing.envelopes(&topic).await;
    let ids: Vec<&str> = envs.iter().map(|e| e.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec!["legacy:g-1", "legacy:g-2", "legacy:m-1"], "nothing refused got through: {ids:?}");
    for e in &envs {
        assert_eq!(e.source, Source::Legacy);
        assert!(e.recorded_at.is_some());
    }
    let m1 = envs.iter().find(|e| e.id == EventId::legacy("m-1")).expect("m-1");
    assert_eq!(m1.conversation.as_str(), "c2c:ann:bob");
    assert_eq!(m1.time, TimestampMs(1_700_000_000_123));
    assert!(matches!(&m1.event, Event::C2cMessage(m) if m.from.as_str() == "bob"));
    let g1 = envs.iter().find(|e| e.id == EventId::legacy("g-1")).expect("g-1");
    assert_eq!(g1.time, TimestampMs(1_700_000_001_000), "RFC 3339 normalized to ms");
    // The group's two events share a key, so they are in one partition in the order sent.
    let group_ids: Vec<&str> =
        envs.iter().filter(|e| e.conversation.as_str() == "group:team").map(|e| e.id.as_str()).collect();
    assert_eq!(group_ids, vec!["legacy:g-1", "legacy:g-2"]);

    // The same batch again is harmless: the same stable ids, for downstream dedup.
    let (s, v) = ing.post_legacy(&good).await;
    assert_eq!((s, v), (200, json!({"accepted": 3, "echoes_dropped": 1})));
    let envs = ing.envelopes(&topic).await;
    assert_eq!(envs.len(), 6);
    assert_eq!(envs.iter().filter(|e| e.id == EventId::legacy("m-1")).count(), 2);

    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_events_total{kind="c2c.message",source="legacy"}"#), 2.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_events_total{kind="group.created",source="legacy"}"#), 2.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="origin",source="legacy"}"#), 2.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="signature_missing",source="legacy"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="signature_mismatch",source="legacy"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="signature_stale",source="legacy"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="too_large",source="legacy"}"#), 1.0);
    // Each once more for the positional-array event and the array batch.
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="invalid_event",source="legacy"}"#), 2.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="malformed_batch",source="legacy"}"#), 2.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_produce_seconds_count{outcome="ok",source="legacy"}"#), 2.0);
    assert_eq!(sample(&m, r#"imbridge_ingest_requests_total{endpoint="legacy",status="200"}"#), 2.0);
    ing.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_echo_batch_is_accepted_without_producing() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(config()).await;
    let (s, v) =
        ing.post_legacy(&json!([{"id":"e","type":"group.dismissed","time":1,"group_id":"g","origin":"im"}])).await;
    assert_eq!((s, v), (200, json!({"accepted": 0, "echoes_dropped": 1})));
    ing.wait_ready().await;
    assert!(ing.records(&ing.topics.legacy_events).await.is_empty());
    ing.running.shutdown().await;
}

/// Kafka unreachable: a valid webhook must not be answered 200 (the sender would drop it); 503 + Retry-After.
/// An IM callback, whose sender never retries, is spooled and answered OK instead.
/// Needs no broker: ingest points at a port where nothing listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_outage_answers_503_never_200() {
    let dead = imbridge_kafka::KafkaConfig::for_bootstrap("127.0.0.1:1");
    let cfg = IngestConfig { produce_timeout_ms: 1_500, ..config() };
    let ing = Ingest::start_with(cfg, dead, crate::common::topics()).await;
    let started = std::time::Instant::now();
    let (s, v, h) = ing
        .post_legacy_signed(
            &serde_json::to_vec(&json!({"events":[{"id":"m","type":"c2c.message","time":1,"from":"a","to":"b",
                "body":text("x")}]}))
            .expect("json"),
            LEGACY_SECRET,
            now_secs(),
        )
        .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(h.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(started.elapsed() >= Duration::from_millis(1_400), "answered only after waiting for an ack");
    // An IM callback is different: IM never sends it again, so it is spooled on disk and answered OK at once;
    // it waits there for Kafka (spool.rs follows it to Kafka).
    let started = std::time::Instant::now();
    let (s, v) = ing
        .post_callback(&json!({"CallbackCommand":"Group.CallbackAfterGroupDestroyed","GroupId":"g","Type":"Public",
            "Owner_Account":"ann","Name":"n","EventTime":1_700_000_000_000_i64}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ActionStatus"], "OK");
    assert!(started.elapsed() < Duration::from_millis(1_000), "answered after the fsync, not after kafka");
    assert_eq!(ing.running.service().spool().pending(), 1, "the callback waits in the spool");
    let r = ing.http.get(format!("{}/readyz", ing.running.url())).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    assert!(r.text().await.expect("text").contains("kafka not ready"));
    let h = ing.http.get(format!("{}/healthz", ing.running.url())).send().await.expect("healthz");
    assert_eq!(h.status(), 200, "the process is up even when Kafka is not");
    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_rejected_total{reason="kafka_timeout",source="legacy"}"#), 1.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_events_total{kind="c2c.message",source="legacy"}"#), 0.0);
}

/// The reference legacy emulator as the sender: its user API fires signed webhooks to this ingest, which puts
/// them on Kafka in order; its echo webhooks (writes imbridge applied, `origin: im`) are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_emulator_webhooks_reach_kafka_in_order_and_echoes_are_dropped() {
    imbridge_testkit::require_kafka!();
    let ing = Ingest::start(config()).await;
    ing.wait_ready().await;
    let legacy = imbridge_legacy_emulator::spawn(imbridge_legacy_emulator::LegacyEmulatorConfig {
        ingest_url: Some(ing.running.url()),
        webhook_secret: imbridge_legacy::SigningSecret::new(LEGACY_SECRET),
        apply_secrets: vec![imbridge_legacy::SigningSecret::new("apply")],
        echo_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("legacy emulator");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{}{path}", legacy.url())).json(&body);
        async move {
            let r = req.send().await.expect("sent");
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    };
    for u in ["ann", "bob", "cy"] {
        post("/api/users", json!({"user_id": u})).await;
    }
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 { ("ann", "bob") } else { ("bob", "ann") };
        post("/api/messages", json!({"from": from, "to": to, "body": text(&format!("m{i}"))})).await;
    }
    post("/api/groups", json!({"group_id":"club","name":"Club","owner":"ann","members":["bob"]})).await;
    post("/api/groups/club/members", json!({"members":["cy"]})).await;
    for i in 0..5 {
        post("/api/groups/club/messages", json!({"from":"cy","body": text(&format!("g{i}"))})).await;
    }
    post("/api/groups/club/leave", json!({"user_id":"cy"})).await;
    // A write imbridge applied: with echo webhooks on, it comes back with origin "im" and must be dropped.
    let apply = imbridge_legacy::ApplyClient::new(
        imbridge_legacy::ApplyConfig::new(legacy.apply_url(), imbridge_legacy::SigningSecret::new("apply")),
        &prometheus::Registry::new(),
    )
    .expect("client");
    let copied = imbridge_legacy::ContractEvent::from_value(&json!({"id":"im:c2c:bob:1_2_3","type":"c2c.message",
        "time":1_700_000_000_000_i64,"origin":"im","from":"bob","to":"ann","body":text("from IM")}))
    .expect("event");
    apply.send_once(&[copied]).await.expect("applied");
    assert!(legacy.wait_outbox_empty(Duration::from_secs(30)).await, "webhooks delivered");

    let envs = ing.envelopes(&ing.topics.legacy_events).await;
    let c2c: Vec<String> = envs
        .iter()
        .filter_map(|e| match &e.event {
            Event::C2cMessage(m) => m.body.first().map(|b| format!("{b:?}")),
            _ => None,
        })
        .collect();
    let want: Vec<String> =
        (0..20).map(|i| format!("{:?}", imbridge_core::Element::Text { text: format!("m{i}") })).collect();
    assert_eq!(c2c, want, "1:1 messages in the order sent, the IM copy not among them");
    let kinds: Vec<&str> =
        envs.iter().filter(|e| e.conversation.as_str() == "group:club").map(|e| e.kind().as_str()).collect();
    let mut want = vec!["group.created", "group.members_joined"];
    want.extend(["group.message"; 5]);
    want.push("group.members_left");
    assert_eq!(kinds, want);
    assert!(envs.iter().all(|e| e.source == Source::Legacy && e.id.as_str().starts_with("legacy:")));
    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="origin",source="legacy"}"#), 1.0, "{m}");
    legacy.shutdown().await.expect("legacy stops");
    ing.running.shutdown().await;
}
