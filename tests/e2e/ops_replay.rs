//! Replay changes nothing: to-im and to-legacy run as real processes and apply both directions of
//! several conversations; then
//! 1. `imbridge replay --conversation KEY --since T` re-applies one 1:1 conversation (both directions) and one
//!    group through the services' own handlers while they keep running, and
//! 2. both groups are stopped (SIGTERM: drained, committed, exit 0), reset with
//!    `imbridge replay --group G --to-earliest --yes`, and started again, so every event is delivered again.
//!
//! After each, IM's whole persisted state and legacy's whole state are exactly what they were: no duplicate
//! message, member or group change anywhere — and the emulator saw no new send.

use std::time::Duration;

use imbridge_core::TimestampMs;
use imbridge_e2e::*;

const PAIRS: usize = 4;
const PER_PAIR: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conversation_and_group_replays_leave_both_systems_exactly_as_before() {
    let _turn = turn(module_path!()).await;
    imbridge_testkit::require_kafka!();
    let sb = Sandbox::new("ops-replay", 4);
    let im = spawn_im_with_state(sb.path(), false).await;
    let legacy = spawn_legacy().await;
    let sb = sb.with_im(&im).pipeline(&legacy.apply_url());
    let (topics, to_im_group, to_legacy_group) =
        (&sb.topics, &sb.config.to_im.live.group_id, &sb.config.to_legacy.group_id);
    let config = sb.write_config("imbridge");
    create_topics(topics, 3).await;

    // Legacy side: PAIRS 1:1 conversations and a group's life. IM side: the same pairs answering.
    let since = TimestampMs::now().as_millis() - 1_000;
    let mut from_legacy = Vec::new();
    let mut from_im = Vec::new();
    from_legacy.push(gcreate("g-create", "club", "u0a", "club name", &["u0b", "u1a"]));
    for i in 0..PER_PAIR {
        for p in 0..PAIRS {
            let (a, b) = (format!("u{p}a"), format!("u{p}b"));
            from_legacy.push(c2c(&format!("m-{p}-{i}"), &a, &b, &format!("legacy {p}/{i}")));
            from_im.push(im_c2c(&b, &a, (p * 100 + i) as u32 + 1, &format!("im {p}/{i}")));
        }
        from_legacy.push(gmsg(&format!("g-msg-{i}"), "club", "u0a", &format!("club {i}")));
        if i == 5 {
            from_legacy.push(gjoin("g-join", "club", &["u2a"]));
        }
        if i == 10 {
            from_legacy.push(gupdate("g-rename", "club", Some("Club renamed"), None));
        }
    }
    produce(&topics.legacy_events, &from_legacy).await;
    produce(&topics.im_events, &from_im).await;

    let mut to_im = sb.start(&config, &["to-im"], "to-im-1");
    let mut to_legacy = sb.start(&config, &["to-legacy"], "to-legacy-1");
    let to_im_ops = to_im.to_im_ops().await;
    let to_legacy_ops = to_legacy.to_legacy_ops().await;
    let n_legacy = from_legacy.len() as f64;
    let n_im = from_im.len();
    eventually("every legacy event applied to IM", Duration::from_secs(120), || async {
        metric(&scrape_or_empty(to_im_ops).await, "imbridge_to_im_events_total", &[("outcome", "applied")]) >= n_legacy
    })
    .await;
    eventually("every IM event applied to legacy", Duration::from_secs(120), || async {
        legacy.stats().counters.applied as usize >= n_im
    })
    .await;
    eventually("both groups committed everything", Duration::from_secs(60), || async {
        lag(to_im_group, &topics.legacy_events).await == 0 && lag(to_legacy_group, &topics.im_events).await == 0
    })
    .await;
    eventually("both services ready", Duration::from_secs(30), || async {
        ready(to_im_ops).await && ready(to_legacy_ops).await
    })
    .await;
    let page = scrape_or_empty(to_im_ops).await;
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "dead_letter")]), 0.0, "{page}");
    let im_before = im_state(&im);
    let legacy_before = legacy_state(&legacy);
    let sends_before = im.emulator().stats().requests;
    let duplicates_before = legacy.stats().counters.apply_duplicates;

    // 1. One conversation in both directions, and one group, while the services run.
    let since_arg = since.to_string();
    let (ok, out) = run_cli(&config, &["replay", "--conversation", "c2c:u1a:u1b", "--since", &since_arg]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("to-im:     {PER_PAIR} event(s)")), "{out}");
    assert!(out.contains(&format!("0 applied, {PER_PAIR} already applied")), "{out}");
    assert!(out.contains(&format!("to-legacy: {PER_PAIR} event(s)")), "{out}");
    assert!(out.contains(&format!("0 applied, {PER_PAIR} already there")), "{out}");
    let club_events = PER_PAIR + 3;
    let (ok, out) =
        run_cli(&config, &["replay", "--conversation", "group:club", "--since", &since_arg, "--only", "to-im"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{club_events} event(s)")) && out.contains("0 applied"), "{out}");
    assert!(!out.contains("to-legacy:"), "--only to-im: {out}");
    // A time after everything: nothing to re-apply.
    let later = (TimestampMs::now().as_millis() + 60_000).to_string();
    let (ok, out) = run_cli(&config, &["replay", "--conversation", "c2c:u2a:u2b", "--since", &later]);
    assert!(ok && out.contains("to-im:     0 event(s)"), "{out}");

    assert_same_state("a conversation replay changed IM", &im_before, &im_state(&im));
    assert_same_state("a conversation replay changed legacy", &legacy_before, &legacy_state(&legacy));
    assert_eq!(
        legacy.stats().counters.apply_duplicates - duplicates_before,
        PER_PAIR as u64,
        "the replayed IM events reached legacy, which already had them"
    );
    let sends_after = im.emulator().stats().requests;
    for api in ["openim/sendmsg", "group_open_http_svc/send_group_msg", "group_open_http_svc/create_group"] {
        assert_eq!(sends_after.get(api), sends_before.get(api), "{api} called again by a replay");
    }

    // 2. The whole topics again: stop both groups (graceful), reset them to the beginning, start them again.
    assert!(to_im.terminate().success(), "to-im exits 0 on SIGTERM: {}", to_im.log_text());
    assert!(to_legacy.terminate().success(), "to-legacy exits 0 on SIGTERM: {}", to_legacy.log_text());
    for group in [to_im_group, to_legacy_group] {
        let (ok, out) = run_cli(&config, &["replay", "--group", group, "--to-earliest", "--yes"]);
        assert!(ok, "{out}");
        assert!(out.contains(&format!("group {group} moved")), "{out}");
    }
    assert_eq!(lag(to_im_group, &topics.legacy_events).await, from_legacy.len() as i64);
    assert_eq!(lag(to_legacy_group, &topics.im_events).await, from_im.len() as i64);
    let to_im2 = sb.start(&config, &["to-im"], "to-im-2");
    let to_legacy2 = sb.start(&config, &["to-legacy"], "to-legacy-2");
    let to_im_ops2 = to_im2.to_im_ops().await;
    let _ = to_legacy2.to_legacy_ops().await;
    eventually("both groups re-consumed everything", Duration::from_secs(120), || async {
        lag(to_im_group, &topics.legacy_events).await == 0 && lag(to_legacy_group, &topics.im_events).await == 0
    })
    .await;
    let page = scrape_or_empty(to_im_ops2).await;
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "skipped")]), n_legacy, "{page}");
    assert_eq!(metric(&page, "imbridge_to_im_events_total", &[("outcome", "applied")]), 0.0, "{page}");
    assert_same_state("a whole-topic replay changed IM", &im_before, &im_state(&im));
    assert_same_state("a whole-topic replay changed legacy", &legacy_before, &legacy_state(&legacy));
    let sends_after = im.emulator().stats().requests;
    for api in ["openim/sendmsg", "group_open_http_svc/send_group_msg", "group_open_http_svc/create_group"] {
        assert_eq!(sends_after.get(api), sends_before.get(api), "{api} called again by a replay");
    }
}
