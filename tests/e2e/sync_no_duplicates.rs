//! No duplicates into IM, whatever happens to to-im: SIGKILL mid-traffic and restart (twice), then a replay of
//! the whole topic from the start — every legacy message is in IM exactly once, in order. The emulator's clock
//! is moved past IM's dedup windows (120 s for `sendmsg`, 5 min for `send_group_msg`) before every restart, so
//! IM's own dedup cannot hide a duplicate: only the applied ledger and the post-crash history check can.
//!
//! A second scenario makes the one window a crash can leave — applied to IM, not yet in the ledger — exact:
//! the previous run's state is reproduced with to-im's own apply code (first message applied and recorded,
//! second applied only), and a fresh to-im must find the second one in IM's history instead of sending it again.

use std::time::Duration;

use imbridge_core::Envelope;
use imbridge_e2e::*;
use imbridge_kafka::admin::Admin;
use imbridge_kafka::producer::Outgoing;
use imbridge_to_im::live::{Applier, C2cApi, LedgerEntry, LiveMetrics, live_msg_seq};

/// Past both of IM's dedup windows.
const PAST_DEDUP: Duration = Duration::from_secs(600);

struct Traffic {
    events: Vec<Envelope>,
    c2c: Vec<((String, String), Vec<String>)>,
    groups: Vec<(String, Vec<String>)>,
}

fn traffic(pairs: usize, groups: usize, per_conversation: usize) -> Traffic {
    let mut t = Traffic { events: Vec::new(), c2c: Vec::new(), groups: Vec::new() };
    for p in 0..pairs {
        t.c2c.push(((format!("a{p:02}"), format!("b{p:02}")), Vec::new()));
    }
    for g in 0..groups {
        let gid = format!("nd-{g:02}");
        t.events.push(gcreate(&format!("{gid}-create"), &gid, &format!("a{g:02}"), &gid, &[&format!("b{g:02}")]));
        t.groups.push((gid, Vec::new()));
    }
    for i in 0..per_conversation {
        for ((a, b), texts) in t.c2c.iter_mut() {
            let (from, to) = if i % 3 == 2 { (b.as_str(), a.as_str()) } else { (a.as_str(), b.as_str()) };
            let body = format!("{a}/{b} {i}");
            t.events.push(c2c(&format!("{a}-{b}-{i}"), from, to, &body));
            texts.push(body);
        }
        for (g, (gid, texts)) in t.groups.iter_mut().enumerate() {
            let from = if i % 2 == 0 { format!("a{g:02}") } else { format!("b{g:02}") };
            let body = format!("{gid} {i}");
            t.events.push(gmsg(&format!("{gid}-{i}"), gid, &from, &body));
            texts.push(body);
        }
    }
    t
}

fn users(pairs: usize) -> Vec<String> {
    (0..pairs).flat_map(|p| [format!("a{p:02}"), format!("b{p:02}")]).collect()
}

async fn assert_exactly_once_in_order(im: &imbridge_im::ImClient, t: &Traffic) {
    for ((a, b), want) in &t.c2c {
        assert_eq!(&c2c_texts(im, a, b).await, want, "c2c {a}/{b}: every message once, in order");
    }
    for (gid, want) in &t.groups {
        assert_eq!(&group_texts(im, gid).await, want, "group {gid}: every message once, in order");
    }
}

/// Messages IM accepted so far (duplicates included), from the emulator's request counters.
fn sends(im: &imbridge_im_emulator::RunningEmulator) -> u64 {
    requests(im, "openim/sendmsg") + requests(im, "group_open_http_svc/send_group_msg")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_traffic_and_replay_from_the_start_apply_each_message_once() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    const PAIRS: usize = 24;
    const GROUPS: usize = 16;
    const PER: usize = 25;
    let mut sb = Sandbox::new("sync-nodup", PARTITIONS);
    let topics = sb.topics.clone();
    create_topics(&topics, topics.partitions).await;
    let im_server = spawn_im(None).await;
    let im = im_client(&im_server);
    let u = users(PAIRS);
    import_accounts(&im, &u.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let t = traffic(PAIRS, GROUPS, PER);
    let messages = (PAIRS + GROUPS) * PER;
    produce(&topics.legacy_events, &t.events).await;

    let group_id = imbridge_testkit::unique("sync-nodup-group");
    let config = sb.write_to_im_config(&im_server, &group_id);
    let log = |n: usize| sb.file(&format!("to-im-{n}.log"));

    // Two crashes at different points of the traffic.
    let mut proc = Proc::start(&config, &["to-im"], log(0));
    for (run, kill_at) in [(1usize, messages as u64 / 4), (2, messages as u64 / 2)] {
        eventually("traffic to reach the kill point", Duration::from_secs(120), || {
            std::future::ready(sends(&im_server) >= kill_at)
        })
        .await;
        proc.kill9();
        let at = sends(&im_server);
        assert!(at < messages as u64, "killed mid-traffic ({at} of {messages} sent)");
        im_server.emulator().advance_clock(PAST_DEDUP);
        proc = Proc::start(&config, &["to-im"], log(run));
    }
    eventually("every event applied and committed", Duration::from_secs(180), || async {
        lag(&group_id, &topics.legacy_events).await == 0
    })
    .await;
    assert_exactly_once_in_order(&im, &t).await;
    let ops = proc.to_im_ops().await;
    let page = scrape(ops).await;
    let resumed = metric(&page, "imbridge_to_im_ledger_skips_total", &[])
        + metric(&page, "imbridge_to_im_events_total", &[("outcome", "recovered")]);
    assert!(resumed > 0.0, "the last run resumed behind applied events: {page}");
    assert!(proc.terminate().success(), "clean exit on SIGTERM");

    // Replay the whole topic from the start: everything is in the ledger, nothing is sent again.
    let admin = Admin::new(&kafka()).expect("admin");
    let lows: Vec<(String, i32, i64)> = admin
        .offsets(&topics.legacy_events, None)
        .await
        .expect("offsets")
        .iter()
        .map(|p| (topics.legacy_events.clone(), p.partition, p.low))
        .collect();
    admin.commit_group_offsets(&group_id, &lows).await.expect("reset to the start");
    assert_eq!(lag(&group_id, &topics.legacy_events).await, t.events.len() as i64);
    im_server.emulator().advance_clock(PAST_DEDUP);
    let before = sends(&im_server);
    let mut proc = Proc::start(&config, &["to-im"], log(9));
    let ops = proc.to_im_ops().await;
    eventually("the replay to finish", Duration::from_secs(120), || async {
        lag(&group_id, &topics.legacy_events).await == 0
    })
    .await;
    let page = scrape(ops).await;
    assert_eq!(
        metric(&page, "imbridge_to_im_ledger_skips_total", &[]),
        t.events.len() as f64,
        "every replayed event skipped by the ledger"
    );
    assert_eq!(sends(&im_server), before, "the replay sent nothing to IM");
    assert_exactly_once_in_order(&im, &t).await;
    assert!(proc.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_crash_window_is_closed_by_a_history_check() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let mut sb = Sandbox::new("sync-window", PARTITIONS);
    let topics = sb.topics.clone();
    create_topics(&topics, topics.partitions).await;
    let im_server = spawn_im(None).await;
    let im = im_client(&im_server);
    import_accounts(&im, &["wa", "wb", "wc"]).await;

    let c2c_events =
        vec![c2c("w-1", "wa", "wb", "one"), c2c("w-2", "wb", "wa", "two"), c2c("w-3", "wa", "wb", "three")];
    let group_events = vec![
        gcreate("wg-create", "wg", "wa", "window", &["wb", "wc"]),
        gmsg("wg-1", "wg", "wb", "g-one"),
        gmsg("wg-2", "wg", "wc", "g-two"),
        gmsg("wg-3", "wg", "wa", "g-three"),
    ];
    let c2c_at = produce(&topics.legacy_events, &c2c_events).await;
    let group_at = produce(&topics.legacy_events, &group_events).await;

    // The state a crash leaves: the previous run applied and recorded the first events, then applied the next
    // one and died before recording it. Reproduced with to-im's own apply code and ledger format.
    let applier = Applier::new(im.clone(), C2cApi::Sendmsg, true, 300, LiveMetrics::unregistered().apply_metrics());
    let producer = imbridge_kafka::Producer::new(&kafka()).expect("producer");
    let record = |env: &Envelope, (partition, offset): (i32, i64), reference: String| {
        let entry = LedgerEntry {
            applied_at: imbridge_core::TimestampMs::now(),
            target: "im".into(),
            reference,
            topic: Some(topics.legacy_events.clone()),
            partition: Some(partition),
            offset: Some(offset),
            conversation: Some(env.conversation.as_str().to_owned()),
        };
        let payload = serde_json::to_vec(&entry).expect("json");
        let key = env.id.as_str().as_bytes().to_vec();
        let producer = producer.clone();
        let topic = topics.applied.clone();
        async move {
            producer
                .send_to_partition(&topic, partition, Outgoing { key: &key, payload: &payload, headers: &[] })
                .await
                .expect("ledger entry")
        }
    };
    let r = applier.apply(&c2c_events[0], live_msg_seq(c2c_at[0].1)).await.expect("apply w-1");
    record(&c2c_events[0], c2c_at[0], r).await;
    applier.apply(&c2c_events[1], live_msg_seq(c2c_at[1].1)).await.expect("apply w-2, never recorded");
    for i in 0..2 {
        let r = applier.apply(&group_events[i], live_msg_seq(group_at[i].1)).await.expect("apply");
        record(&group_events[i], group_at[i], r).await;
    }
    applier.apply(&group_events[2], live_msg_seq(group_at[2].1)).await.expect("apply wg-2, never recorded");
    im_server.emulator().advance_clock(PAST_DEDUP);

    // Control: past the windows IM itself would store a resent message twice.
    let control = c2c("w-control", "wc", "wa", "control");
    applier.apply(&control, live_msg_seq(1)).await.expect("control once");
    im_server.emulator().advance_clock(PAST_DEDUP);
    applier.apply(&control, live_msg_seq(1)).await.expect("control twice");
    assert_eq!(c2c_texts(&im, "wc", "wa").await, vec!["control", "control"], "IM does not dedup past its window");

    let group_id = imbridge_testkit::unique("sync-window-group");
    let config = sb.write_to_im_config(&im_server, &group_id);
    let mut proc = sb.start(&config, &["to-im"], "to-im");
    let ops = proc.to_im_ops().await;
    eventually("everything applied", Duration::from_secs(60), || async {
        lag(&group_id, &topics.legacy_events).await == 0
    })
    .await;
    assert_eq!(c2c_texts(&im, "wa", "wb").await, vec!["one", "two", "three"]);
    assert_eq!(group_texts(&im, "wg").await, vec!["g-one", "g-two", "g-three"]);
    let page = scrape(ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_ledger_skips_total", &[]), 3.0, "w-1, wg-create, wg-1 in the ledger");
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "recovered")]), 2.0, "w-2 and wg-2 found");
    assert_eq!(metric(&page, "imbridge_to_im_crash_checks_total", &[("result", "found")]), 2.0);
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "applied")]), 2.0, "w-3 and wg-3 sent");
    assert!(proc.terminate().success());
}
