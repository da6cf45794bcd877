//! to-legacy against the reference legacy emulator over real HTTP, on the real broker: every conversation's
//! events land on legacy in the order they happened on IM, with origin `im`; a refused event (a message to a
//! group legacy does not have) is dead-lettered and its conversation's later events are parked, while other
//! conversations go on; shutdown drains and commits, so a restart re-applies nothing; a replay of the whole
//! topic by a new group changes nothing (legacy answers 409 for what it has).

use std::time::Duration;

use crate::common::{
    APPLY_SECRET, c2c, config, created, deps, group_event, group_msg, joined, left, produce, renamed, start, topics,
};
use imbridge_core::event::GroupDismissed;
use imbridge_core::{ConversationKey, Element, Event, GroupId, UserId};
use imbridge_kafka::admin::Admin;
use imbridge_kafka::dlq::DeadLetterInfo;
use imbridge_legacy::{Origin, SigningSecret};
use imbridge_legacy_emulator::{LegacyEmulatorConfig, RunningLegacyEmulator};
use imbridge_testkit::eventually;
use imbridge_testkit::prom::sample;
use tokio_util::sync::CancellationToken;

const CONVERSATIONS: usize = 4;

/// The reference legacy emulator, accepting to-legacy's signature.
async fn legacy_emulator() -> RunningLegacyEmulator {
    imbridge_legacy_emulator::spawn(LegacyEmulatorConfig {
        apply_secrets: vec![SigningSecret::new(APPLY_SECRET)],
        ..LegacyEmulatorConfig::default()
    })
    .await
    .expect("legacy emulator")
}
const PER_CONVERSATION: u32 = 40;

fn texts(legacy: &RunningLegacyEmulator, a: &str, b: &str) -> Vec<String> {
    let key = ConversationKey::c2c(&crate::common::u(a), &crate::common::u(b));
    legacy.emulator().read(|s| {
        s.c2c
            .get(&key)
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        assert_eq!(m.origin, Some(Origin::Im), "recorded as written by imbridge");
                        match m.body.first() {
                            Some(Element::Text { text }) => text.clone(),
                            other => panic!("unexpected body {other:?}"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applies_each_conversation_in_order_and_parks_behind_a_refused_event() {
    imbridge_testkit::require_kafka!();
    let legacy = legacy_emulator().await;
    let topics = topics();

    // Interleaved traffic: four 1:1 conversations (both directions), one group's life, and a message to a group
    // legacy never heard of followed by more events of that group.
    let mut envs = Vec::new();
    let mut t = 1_700_000_000_000_i64;
    envs.push(created("club", "ann", &["bob"], t));
    for i in 0..PER_CONVERSATION {
        for c in 0..CONVERSATIONS {
            let (a, b) = (format!("u{c}a"), format!("u{c}b"));
            let (from, to) = if i % 3 == 0 { (&b, &a) } else { (&a, &b) };
            envs.push(c2c(from, to, i * 10 + c as u32 + 1, &format!("c{c}-m{i}")));
        }
        if i % 4 == 0 {
            envs.push(group_msg("club", "bob", u64::from(i) + 1, &format!("club-{i}")));
        }
        if i == 10 {
            t += 1;
            envs.push(joined("club", &["cy"], t));
        }
        if i == 20 {
            t += 1;
            envs.push(renamed("club", "Club renamed", t));
        }
        if i == 30 {
            t += 1;
            envs.push(left("club", &["bob"], t));
        }
    }
    envs.push(group_msg("ghost", "ann", 1, "to nowhere"));
    envs.push(group_msg("ghost", "ann", 2, "parked 1"));
    envs.push(joined("ghost", &["bob"], t + 10));
    produce(&topics.im_events, &envs).await;
    let total_ok = envs.len() - 3;

    let cfg = config(&legacy.apply_url());
    let group_id = cfg.group_id.clone();
    let (d, registry) = deps(&topics);
    let stop = CancellationToken::new();
    let running = start(cfg.clone(), d, stop.clone()).await.expect("to-legacy starts");
    let ops = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    eventually("every applicable event applied", Duration::from_secs(90), || {
        let applied = legacy.stats().counters.applied;
        async move { applied as usize >= total_ok }
    })
    .await;
    eventually("the refused event and its parked followers dead-lettered", Duration::from_secs(60), || {
        let dlq = topics.dlq.clone();
        async move { crate::common::records(&dlq).await.len() >= 3 }
    })
    .await;
    eventually("ready", Duration::from_secs(30), || {
        let r = http.get(format!("{ops}/readyz")).send();
        async move { r.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;

    for c in 0..CONVERSATIONS {
        let want: Vec<String> = (0..PER_CONVERSATION).map(|i| format!("c{c}-m{i}")).collect();
        assert_eq!(texts(&legacy, &format!("u{c}a"), &format!("u{c}b")), want, "conversation {c} in IM order");
    }
    let club = legacy
        .emulator()
        .read(|s| s.groups.get(&GroupId::parse("club").expect("id")).cloned())
        .expect("club exists on legacy");
    assert_eq!(club.record.profile.name, "Club renamed");
    let members: Vec<&str> = club.members.keys().map(UserId::as_str).collect();
    assert_eq!(members, vec!["ann", "cy"]);
    let club_msgs: Vec<String> = club.messages.iter().map(|m| format!("{:?}", m.body)).collect();
    let want: Vec<String> = (0..PER_CONVERSATION)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("{:?}", vec![Element::Text { text: format!("club-{i}") }]))
        .collect();
    assert_eq!(club_msgs, want);
    assert!(legacy.emulator().read(|s| !s.groups.contains_key(&GroupId::parse("ghost").expect("id"))));

    let dlq = crate::common::records(&topics.dlq).await;
    assert_eq!(dlq.len(), 3, "the refused event and the two behind it, nothing else");
    let infos: Vec<DeadLetterInfo> = dlq.iter().map(|r| DeadLetterInfo::from_record(r).expect("headers")).collect();
    assert_eq!(infos[0].kind, "legacy_http_422");
    assert!(infos[0].reason.contains("ghost"), "{}", infos[0].reason);
    assert_eq!(infos[1].kind, "parked");
    assert_eq!(infos[2].kind, "parked");
    assert!(
        infos.iter().all(|i| i.original_topic == topics.im_events && i.original_key.as_deref() == Some("group:ghost"))
    );
    assert!(infos[0].original_offset < infos[1].original_offset && infos[1].original_offset < infos[2].original_offset);
    let first = dlq[0].envelope().expect("the original envelope, unchanged");
    assert_eq!(first.id.as_str(), "im:gmsg:ghost:1");

    let m = http.get(format!("{ops}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let applied = sample(&m, r#"imbridge_to_legacy_events_total{kind="c2c.message",outcome="applied"}"#);
    assert_eq!(applied, f64::from(PER_CONVERSATION) * CONVERSATIONS as f64, "{m}");
    assert_eq!(sample(&m, r#"imbridge_to_legacy_events_total{kind="group.message",outcome="rejected"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_to_legacy_records_total{outcome="parked"}"#), 2.0);
    assert!(
        sample(&m, "imbridge_to_legacy_unknown_group_holds_total") >= 1.0,
        "the unknown group was held for its creation before it was dead-lettered: {m}"
    );
    let batches = sample(&m, "imbridge_to_legacy_batch_events_count");
    let batched = sample(&m, "imbridge_to_legacy_batch_events_sum");
    assert!(
        batched > batches,
        "queued events of one conversation travel together: {batched} events in {batches} requests"
    );
    assert!(sample(&m, r#"imbridge_to_legacy_end_to_end_seconds_count{kind="c2c.message"}"#) > 0.0);
    assert!(sample(&m, r#"imbridge_legacy_apply_requests_total{outcome="applied"}"#) > 0.0);
    drop(registry);

    // Graceful shutdown: drained and committed up to the end of every partition.
    stop.cancel();
    let stats = running.wait().await.expect("clean stop");
    assert_eq!(stats.finished as usize, total_ok);
    assert_eq!(stats.dead_lettered, 3);
    let offsets = Admin::new(&crate::common::kafka())
        .expect("admin")
        .offsets(&topics.im_events, Some(&group_id))
        .await
        .expect("offsets");
    for p in &offsets {
        assert_eq!(p.committed, Some(p.high), "partition {} committed to its end", p.partition);
    }

    // A restart of the same group re-applies nothing.
    let before = legacy.stats().counters;
    let stop2 = CancellationToken::new();
    let again = start(cfg.clone(), deps(&topics).0, stop2.clone()).await.expect("restart");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop2.cancel();
    let stats = again.wait().await.expect("clean stop");
    assert_eq!(stats.finished, 0);
    assert_eq!(legacy.stats().counters, before);

    // A replay from the beginning (a new group) changes nothing on legacy: every event is a known id (409).
    let replay = imbridge_to_legacy::ToLegacyConfig { group_id: imbridge_testkit::unique("tolegacy-replay"), ..cfg };
    let stop3 = CancellationToken::new();
    let (d3, reg3) = deps(&topics);
    let r = start(replay, d3, stop3.clone()).await.expect("replay starts");
    let ops3 = format!("http://{}", r.addr);
    eventually("the replay went through the topic", Duration::from_secs(90), || {
        let dups = legacy.stats().counters.apply_duplicates - before.apply_duplicates;
        async move { dups as usize >= total_ok }
    })
    .await;
    let m = http.get(format!("{ops3}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert_eq!(
        sample(&m, r#"imbridge_to_legacy_events_total{kind="c2c.message",outcome="duplicate"}"#),
        f64::from(PER_CONVERSATION) * CONVERSATIONS as f64,
        "{m}"
    );
    stop3.cancel();
    r.wait().await.expect("clean stop");
    drop(reg3);
    assert_eq!(legacy.stats().counters.applied, before.applied, "nothing applied twice");
    for c in 0..CONVERSATIONS {
        assert_eq!(texts(&legacy, &format!("u{c}a"), &format!("u{c}b")).len(), PER_CONVERSATION as usize);
    }
    legacy.shutdown().await.expect("legacy stops");
}

/// A group whose creation never reached to-legacy (IM dropped the callback): legacy refuses its events, and
/// instead of dead-lettering them (which would park the group, and the creation reconcile produces behind them)
/// to-legacy holds them until the creation arrives on the same key, applies it first and then them, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_a_group_whose_creation_is_missing_until_it_arrives() {
    imbridge_testkit::require_kafka!();
    let legacy = legacy_emulator().await;
    let topics = topics();
    let t = 1_700_000_000_000_i64;
    produce(
        &topics.im_events,
        &[group_msg("late", "ann", 1, "first"), joined("late", &["cy"], t + 5), group_msg("late", "cy", 2, "second")],
    )
    .await;
    let mut cfg = config(&legacy.apply_url());
    cfg.order.unknown_group_hold_ms = 120_000;
    let (d, registry) = deps(&topics);
    let stop = CancellationToken::new();
    let running = start(cfg, d, stop.clone()).await.expect("to-legacy starts");
    let metrics_url = format!("http://{}/metrics", running.addr);
    let holds = || async {
        let m = reqwest::get(&metrics_url).await.expect("metrics").text().await.expect("text");
        sample(&m, "imbridge_to_legacy_unknown_group_holds_total")
    };
    eventually("the refused group is held", Duration::from_secs(60), || async { holds().await >= 2.0 }).await;
    assert!(crate::common::records(&topics.dlq).await.is_empty(), "nothing dead-lettered while held");
    let late = GroupId::parse("late").expect("id");
    assert!(legacy.emulator().read(|s| !s.groups.contains_key(&late)));

    // The creation, as reconcile produces it from IM's group info: behind the held events on the same key.
    produce(&topics.im_events, &[created("late", "ann", &["bob"], t)]).await;
    eventually("the group and its held events applied", Duration::from_secs(60), || {
        let n = legacy.emulator().read(|s| s.groups.get(&late).map_or(0, |g| g.messages.len()));
        async move { n == 2 }
    })
    .await;
    let group = legacy.emulator().read(|s| s.groups.get(&late).cloned()).expect("late exists");
    let texts: Vec<String> = group.messages.iter().map(|m| format!("{:?}", m.body)).collect();
    let want: Vec<String> =
        ["first", "second"].iter().map(|x| format!("{:?}", vec![Element::Text { text: (*x).to_owned() }])).collect();
    assert_eq!(texts, want, "the held messages in IM's order, after the creation");
    let members: Vec<&str> = group.members.keys().map(UserId::as_str).collect();
    assert_eq!(members, vec!["ann", "bob", "cy"]);
    assert!(crate::common::records(&topics.dlq).await.is_empty(), "nothing dead-lettered");
    stop.cancel();
    let stats = running.wait().await.expect("clean stop");
    assert_eq!((stats.finished, stats.dead_lettered), (4, 0));
    drop(registry);
    legacy.shutdown().await.expect("legacy stops");
}

/// IM stamps a callback when it delivers it, so with concurrent deliveries a group's last message can come after
/// its dismissal. Legacy refuses it (the group is gone); the group and its history are gone on both sides, so
/// the message is finished as `after_dismissal`, never dead-lettered (which would park the group's key).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_delivered_after_its_groups_dismissal_is_skipped_not_dead_lettered() {
    imbridge_testkit::require_kafka!();
    let legacy = legacy_emulator().await;
    let topics = topics();
    let t = 1_700_000_000_000_i64;
    let mut envs = vec![created("gone", "ann", &["bob"], t), group_msg("gone", "bob", 1, "first")];
    let dismissal = Event::GroupDismissed(GroupDismissed { group_id: GroupId::parse("gone").expect("id") });
    envs.push(group_event("gone", "Group.CallbackAfterGroupDestroyed", t + 10, dismissal));
    tokio::time::sleep(Duration::from_millis(5)).await;
    envs.push(group_msg("gone", "bob", 2, "delivered after the dismissal"));
    produce(&topics.im_events, &envs).await;
    let (d, registry) = deps(&topics);
    let stop = CancellationToken::new();
    let running = start(config(&legacy.apply_url()), d, stop.clone()).await.expect("to-legacy starts");
    let metrics_url = format!("http://{}/metrics", running.addr);
    eventually("the late message finished", Duration::from_secs(60), || async {
        let m = reqwest::get(&metrics_url).await.expect("metrics").text().await.expect("text");
        sample(&m, r#"imbridge_to_legacy_resequenced_total{reason="after_dismissal"}"#) >= 1.0
    })
    .await;
    assert!(legacy.emulator().read(|s| !s.groups.contains_key(&GroupId::parse("gone").expect("id"))), "dismissed");
    stop.cancel();
    let stats = running.wait().await.expect("clean stop");
    assert_eq!((stats.finished, stats.dead_lettered), (4, 0), "all four finished, none dead-lettered");
    assert!(crate::common::records(&topics.dlq).await.is_empty(), "nothing on the DLQ");
    drop(registry);
    legacy.shutdown().await.expect("legacy stops");
}

/// `/readyz` names what is missing: with the legacy side unreachable it says so while Kafka and the assignment
/// are fine, and `/healthz` stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_reports_an_unreachable_legacy_side() {
    imbridge_testkit::require_kafka!();
    let topics = topics();
    produce(&topics.im_events, &[c2c("ann", "bob", 1, "hi")]).await;
    let mut cfg = config("http://127.0.0.1:1/v1/apply");
    // Still retrying when shutdown comes.
    cfg.consumer.retry.max_attempts = 10_000;
    let group = cfg.group_id.clone();
    let stop = CancellationToken::new();
    let running = start(cfg, deps(&topics).0, stop.clone()).await.expect("starts");
    let ops = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    eventually("kafka and assignment ready, legacy not", Duration::from_secs(60), || {
        let r = http.get(format!("{ops}/readyz")).send();
        async move {
            let Ok(r) = r.await else { return false };
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            status == 503
                && body.contains("kafka ok")
                && body.contains("assignment ok")
                && body.contains("legacy not ready")
        }
    })
    .await;
    let h = http.get(format!("{ops}/healthz")).send().await.expect("healthz");
    assert_eq!(h.status(), 200);
    eventually("the event is being retried", Duration::from_secs(30), || {
        let r = http.get(format!("{ops}/metrics")).send();
        async move {
            let m = r.await.expect("metrics").text().await.expect("text");
            sample(&m, r#"imbridge_to_legacy_apply_retries_total{reason="legacy_connect"}"#) >= 3.0
        }
    })
    .await;
    // Shutdown while the event is being retried: no new attempt, no dead letter, nothing committed past it; the
    // wait ends at the drain deadline.
    let started = std::time::Instant::now();
    stop.cancel();
    let stats = running.wait().await.expect("stops even while its only event is being retried");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the drain deadline: {:?}", started.elapsed());
    assert_eq!((stats.finished, stats.dead_lettered), (0, 0));
    assert!(crate::common::records(&topics.dlq).await.is_empty(), "a shutdown never dead-letters");
    let offsets = Admin::new(&crate::common::kafka())
        .expect("admin")
        .offsets(&topics.im_events, Some(&group))
        .await
        .expect("offsets");
    for p in &offsets {
        assert!(p.committed.unwrap_or(p.low) <= p.low, "nothing committed past the unapplied event: {p:?}");
    }
}
