//! Reconciliation on the real broker: two emulators in process hold the same chats except for messages written
//! on one side only (as if IM's callback was dropped, or legacy's outbox wiped) — 1:1 and group, both directions.
//! `imbridge reconcile --once --dry-run` reports them and changes nothing; `imbridge reconcile --once` turns them
//! into ordinary events on the event topics; to-im and to-legacy (real processes) apply them; both sides then
//! hold the same messages in the same order, and a second pass finds nothing.
//!
//! Each one-sided message is the latest of its conversation: a repair is applied now, so it lands last on the
//! side that lacked it; an older one would be reported as out of order (order is reported, not repaired).

use std::collections::BTreeMap;
use std::time::Duration;

use imbridge_core::{ConversationKey, Element};
use imbridge_e2e::two_sided::World;
use imbridge_e2e::*;
use imbridge_im::from_im_body;
use imbridge_legacy::{SigningSecret, Window};
use imbridge_reconcile::reconciler::{DIFFERENCE_HEADER, EVIDENCE_HEADER, ORIGIN_HEADER};
use imbridge_reconcile::{Kind, Reconciler, Scope};
use serde_json::Value;

fn texts(body: &[Element]) -> String {
    body.iter()
        .map(|e| match e {
            Element::Text { text } => text.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Both sides' texts of one conversation, each in its own order.
async fn both_sides(w: &World, key: &str) -> (Vec<String>, Vec<String>) {
    let k = ConversationKey::parse(key).expect("key");
    let legacy = w.read_client().conversation(&k, Window::default()).await.expect("legacy read");
    let l = legacy.messages.iter().map(|m| texts(&m.body)).collect();
    let im = match key.split(':').collect::<Vec<_>>().as_slice() {
        ["c2c", a, b] => w
            .client
            .c2c_history(a, b, 0, i64::from(u32::MAX))
            .await
            .expect("history")
            .into_iter()
            .map(|m| texts(&from_im_body(&m.msg_body).expect("body")))
            .collect(),
        ["group", g] => w
            .client
            .group_history(g, false)
            .await
            .expect("history")
            .into_iter()
            .filter(|m| m.is_system_msg.unwrap_or(0) == 0)
            .map(|m| texts(&from_im_body(&m.msg_body).expect("body")))
            .collect(),
        _ => panic!("{key}"),
    };
    (l, im)
}

/// A record's event id and its reconcile headers.
type Seen = (String, BTreeMap<String, String>);

/// (event id, headers) of every record of a topic.
async fn records(topic: &str) -> Vec<Seen> {
    read_all(topic, |r| {
        let id = r.envelope().expect("an ordinary envelope").id.to_string();
        let headers = [ORIGIN_HEADER, DIFFERENCE_HEADER, EVIDENCE_HEADER]
            .iter()
            .filter_map(|h| r.header_str(h).map(|v| ((*h).to_owned(), v.to_owned())))
            .collect();
        (id, headers)
    })
    .await
}

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json report")
}

async fn end_offsets(topic: &str) -> i64 {
    lag("nobody-reads-this", topic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_repairs_one_sided_messages_through_the_pipeline() {
    let _turn = turn(module_path!()).await;
    let sb = Sandbox::new("reconcile", 2);
    let topics = sb.topics.clone();
    create_topics(&topics, 3).await;
    let w = World::start().await;
    w.users(&["ann", "bob", "cy"]).await;
    w.group("crew", "ann", &["bob", "cy"]).await;
    w.group("team", "bob", &["cy"]).await;
    // In step on both sides, as the pipeline left them.
    w.legacy_c2c("ann", "bob", "hello", true).await;
    w.im_c2c("bob", "ann", "hi back", true).await;
    w.im_c2c("cy", "ann", "hey ann", true).await;
    w.legacy_group_msg("crew", "ann", "crew 1", true).await;
    w.im_group_msg("crew", "bob", "crew 2", true).await;
    w.im_group_msg("team", "bob", "team 1", true).await;
    // One side only, latest of each conversation.
    w.legacy_c2c("ann", "bob", "to-im never saw this", false).await;
    w.im_c2c("cy", "ann", "callback dropped", false).await;
    w.legacy_group_msg("crew", "cy", "outbox wiped", false).await;
    w.im_group_msg("team", "cy", "group callback dropped", false).await;
    let mut sb = sb.with_im(&w.im).pipeline(&w.legacy.apply_url());
    sb.config.reconcile.legacy_url = w.legacy.url();
    sb.config.reconcile.legacy_secret = SigningSecret::new(APPLY_SECRET);
    let config = sb.write_config("imbridge");
    let keys = ["c2c:ann:bob", "c2c:ann:cy", "group:crew", "group:team"];
    for k in keys {
        let (l, i) = both_sides(&w, k).await;
        assert_ne!(l, i, "{k} starts out different");
    }

    // Dry run: the differences are reported, nothing is produced or written.
    let legacy_before = w.legacy.stats();
    let dry = sb.file("dry.json");
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--dry-run", "--report", dry.to_str().expect("utf8")]);
    assert!(!ok, "a dry run that found differences exits non-zero: {out}");
    assert!(out.contains("c2c_messages") && out.contains("missing_in_im"), "{out}");
    let r = read_report(&dry);
    for kind in ["c2c_messages", "group_messages"] {
        assert_eq!(r["kinds"][kind]["missing_in_im"], 1, "{kind}: {r}");
        assert_eq!(r["kinds"][kind]["missing_in_legacy"], 1, "{kind}: {r}");
        assert_eq!(r["kinds"][kind]["repaired"], 0, "{kind}: {r}");
    }
    assert_eq!(r["conversations_checked"], 4);
    assert_eq!(end_offsets(&topics.legacy_events).await + end_offsets(&topics.im_events).await, 0, "nothing produced");
    assert_eq!(w.legacy.stats(), legacy_before, "legacy unchanged");
    for k in keys {
        let (l, i) = both_sides(&w, k).await;
        assert_ne!(l, i, "{k} still different after a dry run");
    }

    // One conversation, a window, and what the command refuses.
    let one = sb.file("one.json");
    let (ok, out) = run_cli(
        &config,
        &["reconcile", "--once", "--dry-run", "--conversation", "c2c:ann:cy", "--report", one.to_str().expect("utf8")],
    );
    assert!(!ok, "{out}");
    let r = read_report(&one);
    assert_eq!(
        (r["conversations_checked"].as_u64(), r["kinds"]["c2c_messages"]["missing_in_legacy"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--dry-run", "--since", "2999-01-01T00:00:00Z"]);
    assert!(ok && out.contains("conversations checked: 0"), "nothing after the window start: {out}");
    for (args, why) in [
        (&["reconcile", "--dry-run"][..], "--once"),
        (&["reconcile", "--once", "--conversation", "user:ann"], "names no conversation"),
        (&["reconcile", "--once", "--since", "yesterday"], "yesterday"),
    ] {
        let (ok, out) = run_cli(&config, args);
        assert!(!ok && out.contains(why), "{args:?}: {out}");
    }

    // A real pass: four repair events, then the apply services make both sides equal.
    let rep = sb.file("repair.json");
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--report", rep.to_str().expect("utf8")]);
    assert!(ok, "every difference was repaired: {out}");
    let r = read_report(&rep);
    assert_eq!(r["kinds"]["c2c_messages"]["repaired"], 2, "{r}");
    assert_eq!(r["kinds"]["group_messages"]["repaired"], 2, "{r}");
    assert_eq!(end_offsets(&topics.legacy_events).await, 2, "legacy-origin repairs for to-im");
    assert_eq!(end_offsets(&topics.im_events).await, 2, "IM-origin repairs for to-legacy");
    // Ordinary envelopes with the source's own ids, and the evidence in headers.
    let mut ids = Vec::new();
    for topic in [&topics.legacy_events, &topics.im_events] {
        for (id, headers) in records(topic).await {
            assert_eq!(headers.get(ORIGIN_HEADER).map(String::as_str), Some("reconcile"), "{id}");
            let difference = headers.get(DIFFERENCE_HEADER).cloned().unwrap_or_default();
            let evidence: Value = serde_json::from_str(headers.get(EVIDENCE_HEADER).expect("evidence")).expect("json");
            assert!(evidence["conversation"].is_string() && evidence["item"].is_string(), "{evidence}");
            ids.push((topic.clone(), id, difference));
        }
    }
    ids.sort();
    let expected_prefixes = [
        (&topics.im_events, "im:c2c:cy:", "missing_in_legacy"),
        (&topics.im_events, "im:gmsg:team:", "missing_in_legacy"),
        (&topics.legacy_events, "legacy:", "missing_in_im"),
        (&topics.legacy_events, "legacy:", "missing_in_im"),
    ];
    for ((topic, id, diff), (t, prefix, d)) in ids.iter().zip(expected_prefixes) {
        assert!(topic == t && id.starts_with(prefix) && diff == d, "{topic} {id} {diff}");
    }

    let mut procs = [sb.start(&config, &["to-im"], "to-im"), sb.start(&config, &["to-legacy"], "to-legacy")];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut equal = true;
        for k in keys {
            let (l, i) = both_sides(&w, k).await;
            equal &= l == i;
        }
        if equal {
            break;
        }
        if std::time::Instant::now() > deadline {
            for k in keys {
                eprintln!("{k}: {:?}", both_sides(&w, k).await);
            }
            for log in ["to-im.log", "to-legacy.log"] {
                let text = std::fs::read_to_string(sb.file(log)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {log} (last lines, newest first)\n{}", tail.join("\n"));
            }
            panic!("not converged");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (l, _) = both_sides(&w, "c2c:ann:bob").await;
    assert_eq!(l, ["hello", "hi back", "to-im never saw this"]);
    let (l, _) = both_sides(&w, "group:team").await;
    assert_eq!(l, ["team 1", "group callback dropped"]);

    // A second pass finds nothing, and a repeated repair would be deduplicated anyway.
    let again = sb.file("again.json");
    let (ok, out) = run_cli(&config, &["reconcile", "--once", "--report", again.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    let r = read_report(&again);
    assert!(r["findings"].as_array().is_some_and(Vec::is_empty), "second pass: {r}");
    assert_eq!(r["kinds"]["c2c_messages"]["identical"], 5, "{r}");
    assert_eq!(r["kinds"]["group_messages"]["identical"], 5, "{r}");
    // In process, the library agrees with the command.
    let registry = prometheus::Registry::new();
    let rc = Reconciler {
        im: imbridge_im::ImClient::new(&w.im.client_config(), &registry).expect("client"),
        im_registry: registry,
        legacy: w.read_client(),
        producer: None,
        topics: topics.clone(),
        max_users: 100,
    };
    let report = rc.reconcile_once(&Scope::default(), true).await.expect("pass");
    assert_eq!(report.differences(), 0, "{}", report.table());
    assert_eq!(report.kinds[&Kind::GroupMembers].identical, 5);
    for p in &mut procs {
        p.terminate();
    }
}
