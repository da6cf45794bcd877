//! The IM callback spool on its own and inside ingest: crash recovery with a torn tail, a full spool refusing
//! instead of losing, group commit, per-conversation order through the forwarder to the real broker, and an
//! ingest that answers IM while Kafka is unreachable and delivers everything once Kafka is there.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::{Ingest, config, kafka, records, topics};
use imbridge_core::topics::Topic;
use imbridge_ingest::spool::{Spool, SpoolError, SpoolMetrics, SpoolSettings, forwarder};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::topology;
use imbridge_kafka::{KafkaConfig, Producer};
use imbridge_testkit::prom::sample;
use prometheus::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf).expect("encode");
    String::from_utf8(buf).expect("utf8")
}

fn settings(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolSettings {
    SpoolSettings { dir: dir.to_owned(), max_bytes, segment_bytes, memory_bytes: 16 << 20 }
}

/// Opens the spool, waiting for a dropped previous handle's writer thread to let go of the lock.
async fn reopen(s: SpoolSettings, registry: &Registry) -> Spool {
    let metrics = SpoolMetrics::new(registry).expect("metrics");
    for _ in 0..100 {
        match Spool::open(s.clone(), metrics.clone()) {
            Ok(spool) => return spool,
            Err(SpoolError::Locked(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("open: {e}"),
        }
    }
    panic!("the spool stayed locked");
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_every_acknowledged_record_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(dir.path(), 1 << 20, 1 << 16);
    let spool = reopen(s.clone(), &Registry::new()).await;
    for i in 1..=3u64 {
        assert_eq!(spool.append("c2c:a:b", format!("m{i}").into_bytes()).await.expect("append"), i);
    }
    drop(spool);
    // A crash in the middle of the next write: half a record at the end of the newest segment.
    let newest = segments(dir.path()).pop().expect("a segment");
    let mut f = std::fs::OpenOptions::new().append(true).open(&newest).expect("open");
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 4, 0, 0]).expect("torn write");
    drop(f);
    let registry = Registry::new();
    let spool = reopen(s.clone(), &registry).await;
    assert_eq!(spool.pending(), 3, "the three acknowledged records are back");
    let page = render(&registry);
    assert_eq!(sample(&page, "imbridge_ingest_spool_records_total{event=\"recovered\"}"), 3.0);
    assert_eq!(sample(&page, "imbridge_ingest_spool_records_total{event=\"torn_tail_bytes\"}"), 11.0);
    // 3 × (16-byte header + 2-byte key length + "c2c:a:b" + "mN").
    assert_eq!(std::fs::metadata(&newest).expect("meta").len(), 3 * 27, "cut back to the intact records");
    // New records continue the sequence in a new segment, after the recovered ones.
    assert_eq!(spool.append("c2c:a:b", b"m4".to_vec()).await.expect("append"), 4);
    drop(spool);
    let spool = reopen(s, &Registry::new()).await;
    assert_eq!(spool.pending(), 4, "the tail was cut, so the record after it is readable too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_and_recovers_once_kafka_takes_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new();
    // 8 KiB in 4 KiB segments: ~7 records of 1 KiB.
    let spool = reopen(settings(dir.path(), 8192, 4096), &registry).await;
    let mut accepted = 0;
    let refused = loop {
        match spool.append("group:g1", vec![b'x'; 1000]).await {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the spool never filled");
    };
    assert!(matches!(refused, SpoolError::Full { .. }), "{refused}");
    assert!((6..=8).contains(&accepted), "{accepted} records fit in 8 KiB");
    let page = render(&registry);
    assert_eq!(sample(&page, "imbridge_ingest_spool_full"), 1.0);
    assert_eq!(sample(&page, "imbridge_ingest_spool_records_total{event=\"refused_full\"}"), 1.0);
    assert!(spool.used_bytes() <= 8192);

    // Kafka takes them: the spent segments are deleted and the spool accepts again.
    let fwd = Forwarding::start(&spool, "spool-full").await;
    emptied(&spool, Duration::from_secs(30)).await;
    spool.append("group:g1", vec![b'y'; 1000]).await.expect("accepted again");
    assert!(spool.used_bytes() < 8192, "spent segments were deleted: {}", spool.used_bytes());
    assert_eq!(sample(&render(&registry), "imbridge_ingest_spool_full"), 0.0);
    emptied(&spool, Duration::from_secs(30)).await;
    assert_eq!(fwd.stop_and_read().await.len(), accepted + 1);
}

/// The spool's forwarder to a topic of its own (3 partitions, like the IM events topic) on the real broker.
struct Forwarding {
    kafka: KafkaConfig,
    topic: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarding {
    async fn start(spool: &Spool, name: &str) -> Forwarding {
        let (kafka, topic) = (kafka(), imbridge_testkit::unique(name));
        let admin = Admin::new(&kafka).expect("admin");
        let names = imbridge_core::topics::TopicNames { im_events: topic.clone(), partitions: 3, ..Default::default() };
        topology::ensure(&admin, &names, &[Topic::ImEvents]).await.expect("topic");
        Self::start_on(spool, kafka, topic)
    }

    /// A forwarder to an existing topic (a restarted ingest's).
    fn start_on(spool: &Spool, kafka: KafkaConfig, topic: String) -> Forwarding {
        let stop = CancellationToken::new();
        let producer = Producer::new(&kafka).expect("producer");
        let route = forwarder::Route { topic: topic.clone(), old_side_topic: topic.clone() };
        let task = tokio::spawn(forwarder::run(spool.clone(), producer, route, stop.clone()));
        Forwarding { kafka, topic, stop, task }
    }

    /// Kills the forwarder where it stands, as a crash of ingest would (whatever it had in flight may or may not
    /// reach Kafka); returns the broker and topic for the next one.
    fn crash(self) -> (KafkaConfig, String) {
        self.task.abort();
        (self.kafka, self.topic)
    }

    /// Stops the forwarder; returns every record it produced.
    async fn stop_and_read(self) -> Vec<imbridge_kafka::Record> {
        self.stop.cancel();
        self.task.await.expect("forwarder");
        records(&self.kafka, &self.topic).await
    }
}

/// Waits until the forwarder has handed every spooled record to Kafka.
async fn emptied(spool: &Spool, within: Duration) {
    imbridge_testkit::eventually("the spool emptied", within, || {
        let s = spool.clone();
        async move { s.pending() == 0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs_and_keep_order_per_conversation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new();
    let spool = reopen(settings(dir.path(), 64 << 20, 1 << 20), &registry).await;
    // 20 conversations × 50 records, each conversation appended serially (as one IM sender thread would),
    // all conversations at once.
    let mut tasks = Vec::new();
    for c in 0..20 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                spool.append(&format!("group:g{c}"), format!("{c}:{i}").into_bytes()).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let page = render(&registry);
    let fsyncs = sample(&page, "imbridge_ingest_spool_fsync_seconds_count");
    assert_eq!(sample(&page, "imbridge_ingest_spool_records_total{event=\"appended\"}"), 1000.0);
    assert!(fsyncs < 1000.0, "group commit: {fsyncs} fsyncs for 1000 concurrent appends");
    println!("1000 appends from 20 concurrent writers: {fsyncs} fsyncs");

    // A restart before Kafka saw anything, then the forwarder: every record once (at least), in order per key.
    drop(spool);
    let spool = reopen(settings(dir.path(), 64 << 20, 1 << 20), &Registry::new()).await;
    assert_eq!(spool.pending(), 1000);
    let fwd = Forwarding::start(&spool, "spool-order").await;
    emptied(&spool, Duration::from_secs(60)).await;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for r in fwd.stop_and_read().await {
        let body = String::from_utf8(r.payload.clone().expect("payload")).expect("utf8");
        let (c, i) = body.split_once(':').expect("c:i");
        assert_eq!(r.key_str(), Some(format!("group:g{c}").as_str()));
        per_key.entry(c.to_owned()).or_default().push(i.parse().expect("i"));
    }
    assert_eq!(per_key.len(), 20);
    for (c, seq) in per_key {
        assert_eq!(seq, (0..50).collect::<Vec<_>>(), "conversation {c} in arrival order");
    }
    // Everything acknowledged: a restart re-produces nothing, and the spent segments are gone.
    drop(spool);
    let spool = reopen(settings(dir.path(), 64 << 20, 1 << 20), &Registry::new()).await;
    assert_eq!(spool.pending(), 0);
    assert!(spool.used_bytes() < 1 << 20, "spent segments deleted: {} bytes left", spool.used_bytes());
}

/// A backlog far beyond the memory bound: the records past it wait on disk (the in-memory head stays under the
/// bound, across restarts too) and are read back while new ones keep arriving; a crash half-way through
/// forwarding loses nothing, and the first copy of every record reaches Kafka in arrival order per conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_beyond_the_memory_bound_waits_on_disk_and_arrives_in_order() {
    const BOUND: u64 = 4096;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SpoolSettings { memory_bytes: BOUND, ..settings(dir.path(), 64 << 20, 16 << 10) };
    let append = |spool: Spool, from: u32, to: u32| async move {
        let mut tasks = Vec::new();
        for c in 0..20 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                for i in from..to {
                    spool
                        .append(&format!("group:g{c}"), format!("{c}:{i}:{}", "p".repeat(40)).into_bytes())
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    };
    // The largest record: payload plus key.
    let record = (format!("19:299:{}", "p".repeat(40)).len() + "group:g19".len()) as u64;
    let registry = Registry::new();
    let spool = reopen(s.clone(), &registry).await;
    append(spool.clone(), 0, 150).await;
    assert_eq!(spool.pending(), 3000, "every record is pending, in memory or on disk");
    let held = sample(&render(&registry), "imbridge_ingest_spool_memory_bytes");
    assert!(held > 0.0 && held <= (BOUND + record) as f64, "{held} bytes held in memory, bound {BOUND}");

    // Restarted with the backlog on disk: the same bound.
    drop(spool);
    let registry = Registry::new();
    let spool = reopen(s.clone(), &registry).await;
    assert_eq!(spool.pending(), 3000);
    let held = sample(&render(&registry), "imbridge_ingest_spool_memory_bytes");
    assert!(held > 0.0 && held <= (BOUND + record) as f64, "after recovery: {held} bytes held, bound {BOUND}");

    // Forwarding while 3,000 more arrive (spilled records are read back as new ones are written behind them),
    // then a crash half-way through the backlog.
    let fwd = Forwarding::start(&spool, "spool-spill").await;
    append(spool.clone(), 150, 300).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while spool.pending() > 3000 {
        assert!(tokio::time::Instant::now() < deadline, "the forwarder never got half-way: {}", spool.pending());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (kafka, topic) = fwd.crash();
    drop(spool);

    // Restarted: what Kafka had not acknowledged is pending again, under the same memory bound, and goes on.
    let registry = Registry::new();
    let spool = reopen(s.clone(), &registry).await;
    let left = spool.pending();
    assert!(left > 0 && left < 6000, "the crash came half-way: {left} of 6000 pending after the restart");
    let held = sample(&render(&registry), "imbridge_ingest_spool_memory_bytes");
    assert!(held > 0.0 && held <= (BOUND + record) as f64, "after the crash: {held} bytes held, bound {BOUND}");
    let fwd = Forwarding::start_on(&spool, kafka, topic);
    emptied(&spool, Duration::from_secs(60)).await;
    let held = sample(&render(&registry), "imbridge_ingest_spool_memory_bytes");
    assert_eq!(held, 0.0, "nothing held once everything is acknowledged");

    // Every record reached Kafka; copies produced again after the crash are duplicates (absorbed downstream by
    // the events' ids), never a gap or a reordering of first copies.
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut copies = 0usize;
    for r in fwd.stop_and_read().await {
        copies += 1;
        let body = String::from_utf8(r.payload.clone().expect("payload")).expect("utf8");
        let mut parts = body.split(':');
        let (c, i) = (parts.next().expect("c"), parts.next().expect("i"));
        let seen = per_key.entry(c.to_owned()).or_default();
        let i: u32 = i.parse().expect("i");
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    println!("6000 records, {left} pending after the crash: {copies} copies in Kafka");
    assert_eq!(per_key.len(), 20);
    for (c, seq) in per_key {
        assert_eq!(seq, (0..300).collect::<Vec<_>>(), "conversation {c}: every record, first copies in arrival order");
    }
}

/// ingest with Kafka unreachable still answers IM "OK" (the callback is on disk); started again with Kafka
/// there, it delivers what it accepted. The legacy endpoint keeps answering 503 while Kafka is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callbacks_accepted_while_kafka_is_unreachable_reach_kafka_after_a_restart() {
    let cfg = config();
    let spool_dir = cfg.spool_dir.clone();
    let nowhere = KafkaConfig::for_bootstrap(format!("127.0.0.1:{}", free_port()));
    let names = topics();
    let down = Ingest::start_with(
        imbridge_ingest::IngestConfig { produce_timeout_ms: 1_000, ..cfg.clone() },
        nowhere,
        names.clone(),
    )
    .await;
    let mut sent = Vec::new();
    for seq in 1..=5 {
        let body = json!({"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g-spool","Type":"Public",
            "From_Account":"ann","Operator_Account":"ann","Random":seq,"MsgSeq":seq,"MsgTime":1_700_000_000 + seq,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":format!("m{seq}")}}]});
        let (s, v) = down.post_callback(&body).await;
        assert_eq!(s, 200, "accepted while kafka is away: {v}");
        sent.push(format!("im:gmsg:g-spool:{seq}"));
    }
    let (s, _) = down.post_legacy(&json!([])).await;
    assert!(s == 200 || s == 400, "an empty batch touches no kafka");
    assert_eq!(down.running.service().spool().pending(), 5);
    let page = down.metrics().await;
    assert_eq!(sample(&page, "imbridge_ingest_spool_pending_records"), 5.0);
    down.running.shutdown().await;

    // Same spool, Kafka there now.
    let up = Ingest::start_with(cfg, kafka(), names).await;
    up.wait_ready().await;
    up.settled().await;
    let ids: Vec<String> = up.envelopes(&up.topics.im_events).await.iter().map(|e| e.id.as_str().to_owned()).collect();
    assert_eq!(ids, sent, "every accepted callback, once, in order");
    up.running.shutdown().await;
    assert!(spool_dir.exists());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
