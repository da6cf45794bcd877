//! The continuous service on the real broker, against two real emulators (no apply services run, so what it
//! repairs stays visible on the topics):
//! - activity: a legacy event whose message IM lacks is checked a delay after it and repaired on the legacy
//!   events topic (origin `reconcile`, evidence headers);
//! - outage: an ingest heartbeat reporting a restart makes it check, at once, a chat that exists on IM only
//!   (its callback was lost) and repair it on the IM events topic, with no event about it anywhere;
//! - sweep: a second service sweeps everything, skips by digest what the first sweep found identical,
//!   records its summary on the status topic (what `imbridge status` shows), and paces IM at its quota share.

use std::time::{Duration, Instant};

use imbridge_core::event::C2cMessage;
use imbridge_core::status::IngestBeat;
use imbridge_core::topics::TopicNames;
use imbridge_core::{ConversationKey, Element, Envelope, Event, EventId, Source, TimestampMs, UserId};
use imbridge_e2e::two_sided::World;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{ConsumerConfig, KafkaConfig, Producer};
use imbridge_legacy::SigningSecret;
use imbridge_reconcile::reconciler::{DIFFERENCE_HEADER, EVIDENCE_HEADER, ORIGIN_HEADER};
use imbridge_reconcile::{Reconcile, ReconcileConfig, ReconcileError};
use imbridge_runtime::{Deps, Running, Service};
use imbridge_testkit::prom::metric;
use tokio_util::sync::CancellationToken;

fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

fn topics() -> TopicNames {
    let u = imbridge_testkit::unique("reconcile-svc");
    TopicNames {
        legacy_events: format!("{u}.legacy"),
        im_events: format!("{u}.im"),
        dlq: format!("{u}.dlq"),
        status: format!("{u}.status"),
        partitions: 3,
        ..TopicNames::default()
    }
}

fn config(w: &World, first_sweep_delay_secs: u64, sweep_interval_secs: u64) -> ReconcileConfig {
    ReconcileConfig {
        legacy_url: w.legacy.url(),
        legacy_secret: SigningSecret::new(imbridge_e2e::APPLY_SECRET),
        listen: "127.0.0.1:0".parse().expect("addr"),
        group_id: imbridge_testkit::unique("reconcile-group"),
        check_delay_ms: 1_000,
        first_sweep_delay_secs,
        sweep_interval_secs,
        outage_gap_ms: 3_000,
        outage_margin_secs: 5,
        consumer: ConsumerConfig {
            auto_offset_reset: "earliest".into(),
            park_after_dead_letter: false,
            drain_timeout_ms: 2_000,
            session_timeout_ms: 10_000,
            ..ConsumerConfig::default()
        },
        ..ReconcileConfig::default()
    }
}

async fn start(w: &World, topics: &TopicNames, cfg: ReconcileConfig, stop: &CancellationToken) -> Svc {
    // The static split under test: reconcile's own share of the read APIs. Shared quotas (`[im.quota]`) replace it
    // while coordinating and are tested with the coordinator (runtime's quota test, `imbridge bench quota`).
    let mut im = w.im.client_config();
    im.quota.coordinate = false;
    let deps = Deps::new(kafka(), topics.clone(), im).with_shutdown(stop.clone());
    Reconcile::build(cfg, &deps).await.expect("reconcile builds").start().await.expect("reconcile starts")
}

type Svc = Running<(), ReconcileError>;

async fn metrics(r: &Svc) -> String {
    reqwest::get(format!("http://{}/metrics", r.addr)).await.expect("metrics").text().await.expect("text")
}

/// Waits until `topic` holds a reconcile repair of event `id`; returns its headers.
async fn repair_of(topic: &str, id: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let found = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sink = found.clone();
        let want = id.to_owned();
        read_range(&kafka(), topic, None, Start::Earliest, move |r| {
            let env = r.envelope().ok();
            if env.is_some_and(|e| e.id.to_string() == want) && r.header_str(ORIGIN_HEADER) == Some("reconcile") {
                let h = r.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect();
                *sink.lock().expect("lock") = Some(h);
            }
            true
        })
        .await
        .expect("read topic");
        if let Some(h) = found.lock().expect("lock").take() {
            return h;
        }
        assert!(Instant::now() < deadline, "no reconcile repair of {id} on {topic}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activity_outage_and_sweeps() {
    imbridge_testkit::require_kafka!();
    let w = World::start().await;
    w.in_step().await;
    let topics = topics();

    // Phase 1: no sweep; activity and outage only.
    let stop = CancellationToken::new();
    let svc = start(&w, &topics, config(&w, 3_600, 3_600), &stop).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !svc.readiness.is_ready() {
        assert!(Instant::now() < deadline, "not ready: {:?}", svc.readiness.snapshot());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Activity: legacy wrote a message and ingest produced its event, but IM never got it.
    let lost = w.legacy_c2c("ann", "cy", "to-im never applied this", false).await;
    let key = ConversationKey::c2c(&UserId::new_unchecked("ann"), &UserId::new_unchecked("cy"));
    let env = Envelope {
        id: EventId::legacy(&lost),
        source: Source::Legacy,
        conversation: key.clone(),
        time: TimestampMs::now(),
        recorded_at: Some(TimestampMs::now()),
        event: Event::C2cMessage(C2cMessage {
            from: UserId::new_unchecked("ann"),
            to: UserId::new_unchecked("cy"),
            body: vec![Element::Text { text: "to-im never applied this".into() }],
            custom_data: None,
        }),
    };
    let producer = Producer::new(&kafka()).expect("producer");
    producer.send_envelope(&topics.legacy_events, &env).await.expect("event");
    let h = repair_of(&topics.legacy_events, &format!("legacy:{lost}")).await;
    assert_eq!(header(&h, DIFFERENCE_HEADER), "missing_in_im");
    assert!(header(&h, EVIDENCE_HEADER).contains(key.as_str()), "{h:?}");

    // Outage: an IM chat whose callback was lost while ingest was down; nothing about it reached Kafka.
    let lost_callback = w.im_c2c("dee", "bob", "sent while ingest was down", false).await;
    let now = TimestampMs::now();
    let beat = IngestBeat {
        instance: "ingest-under-test".into(),
        at: now,
        started_at: now,
        down_since: Some(TimestampMs(now.0 - 10_000)),
        callbacks_refused: 0,
        kafka_failures: 0,
    };
    let payload = serde_json::to_vec(&beat).expect("json");
    let beat_key = IngestBeat::key(&beat.instance);
    producer
        .send(&topics.status, Outgoing { key: beat_key.as_bytes(), payload: &payload, headers: &[] })
        .await
        .expect("beat");
    let h = repair_of(&topics.im_events, &lost_callback).await;
    assert_eq!(header(&h, DIFFERENCE_HEADER), "missing_in_legacy");
    let page = metrics(&svc).await;
    assert_eq!(metric(&page, "imbridge_reconcile_outages_total", &[("cause", "restart")]), 1.0, "{page}");
    assert!(metric(&page, "imbridge_reconcile_passes_total", &[("trigger", "outage")]) >= 1.0, "{page}");
    assert!(metric(&page, "imbridge_reconcile_passes_total", &[("trigger", "activity")]) >= 1.0, "{page}");
    assert_eq!(metric(&page, "imbridge_reconcile_passes_total", &[("trigger", "sweep")]), 0.0, "{page}");
    // Its own share: 10% of get_group_info's 200/s, all of it for the only instance.
    let rate = metric(&page, "imbridge_im_rate_limit_per_second", &[("api", "get_group_info")]);
    assert!((rate - 20.0).abs() < 1e-6, "rate {rate}");
    stop.cancel();
    svc.wait().await.expect("reconcile stops");

    // Phase 2: sweeps every 3 s; the second skips what the first found identical.
    let stop = CancellationToken::new();
    let cfg = config(&w, 0, 3);
    let group = cfg.group_id.clone();
    let svc = start(&w, &topics, cfg, &stop).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let sweeps = loop {
        let sweeps = imbridge_reconcile::sweep::last_sweeps(&kafka(), &topics.status).await.expect("sweeps");
        if sweeps.iter().any(|s| s.group == group && s.identical_by_digest > 0) {
            break sweeps;
        }
        assert!(Instant::now() < deadline, "no sweep skipped by digest: {sweeps:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let s = sweeps.iter().find(|s| s.group == group).expect("ours");
    // ann:bob and the group are identical; ann:cy and bob:dee still differ (nothing applies the repairs here).
    assert!(s.identical_by_digest >= 2, "{s:?}");
    assert!(s.differences >= 2 && s.conversations_checked >= 4, "{s:?}");
    assert_eq!(s.partitions.len(), 3);
    let page = metrics(&svc).await;
    assert!(metric(&page, "imbridge_reconcile_identical_by_digest_total", &[]) >= 2.0, "{page}");
    assert!(metric(&page, "imbridge_reconcile_last_sweep_timestamp_seconds", &[]) > 0.0, "{page}");
    let table = imbridge_reconcile::sweep::render(&sweeps);
    println!("{table}");
    assert!(table.contains(&group));
    stop.cancel();
    svc.wait().await.expect("reconcile stops");
}
