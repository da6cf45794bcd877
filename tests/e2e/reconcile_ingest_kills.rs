//! IM callbacks lost while ingest is killed are found and repaired by the reconcile service, from ingest's
//! heartbeats alone. ingest runs as a real process (the binary) and is killed with `kill -9` three times while
//! app users keep chatting on IM, then restarted after 5–9 s; IM fires every callback once, so everything sent
//! meanwhile never reaches Kafka. The silence of ingest's heartbeats on the status topic, then the restarted
//! ingest reporting its downtime, make the reconcile service (in process, its consumer group on the real broker)
//! check everything touched since, at once, and produce the missing messages as IM-origin events; to-legacy
//! applies them. Each kill comes after the activity checks of the previous chat are done and no sweep runs, so
//! only the outage checks can find what was lost. After each outage legacy holds every message of the group and
//! of the 1:1 chat exactly once, in IM's order. The test prints the figures: messages lost at ingest, repaired,
//! time from the kill to converged, IM calls spent.

use std::time::{Duration, Instant};

use imbridge_e2e::*;
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_legacy::SigningSecret;
use imbridge_reconcile::{Reconcile, ReconcileConfig};
use tokio_util::sync::CancellationToken;

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Sends one group message and, every other time, one 1:1 message, as IM app users.
async fn chat(im: &RunningEmulator, tag: &str, n: usize, g: &mut Vec<String>, c: &mut Vec<String>) {
    for i in 0..n {
        let t = format!("{tag}-g{i:02}");
        app_user_sends_to_group(im, ["ann", "bob"][i % 2], "club", &t, imbridge_core::ids::stable_u32(t.as_bytes()))
            .await;
        g.push(t);
        if i % 2 == 0 {
            let t = format!("{tag}-c{i:02}");
            // IM orders a second's 1:1 messages by MsgSeq: a growing one keeps the send order.
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            app_user_sends_seq(im, "ann", "bob", &t, seq, imbridge_core::ids::stable_u32(t.as_bytes())).await;
            c.push(t);
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outages_of_a_killed_ingest_are_repaired_from_its_heartbeats() {
    imbridge_testkit::require_kafka!();
    let _turn = turn(module_path!()).await;
    logs();
    let legacy = spawn_legacy().await;
    let legacy_url = legacy.url();
    let mut sb = Sandbox::new("rcout", 3).with_im_app(&EmulatorConfig::default()).pipeline(&legacy.apply_url());
    let (topics, kafka) = (sb.topics.clone(), sb.config.kafka.clone());

    // ingest on a fixed port (IM's callback URL stays) and a fixed instance id, beating every 500 ms.
    sb.config.ingest.listen = ([127, 0, 0, 1], free_port()).into();
    sb.config.ingest.heartbeat_interval_ms = 500;
    sb.config.ingest.instance_id = "ingest-under-test".into();
    let config = sb.write_config("imbridge");
    let start_ingest = |n: u32| sb.start(&config, &["ingest"], &format!("ingest-{n}"));
    let ingest_addr = sb.config.ingest.listen;
    let ingest_url = format!("http://{ingest_addr}");
    let mut ingest = start_ingest(0);
    eventually("ingest ready", Duration::from_secs(60), || ready(ingest_addr)).await;

    let im = im_calling_ingest(&ingest_url).await;

    let stop = CancellationToken::new();
    let tl_deps = deps(&kafka, &topics, im.client_config(), &stop);
    let to_legacy = start_service::<imbridge_to_legacy::ToLegacy>(sb.to_legacy_in_process(), &tl_deps).await;

    let mut rc = ReconcileConfig {
        legacy_url: legacy_url.clone(),
        legacy_secret: SigningSecret::new(APPLY_SECRET),
        listen: "127.0.0.1:0".parse().expect("addr"),
        group_id: format!("{}-reconcile", topics.im_events),
        check_delay_ms: 1_500,
        first_sweep_delay_secs: 3_600,
        outage_gap_ms: 3_000,
        outage_margin_secs: 5,
        ..ReconcileConfig::default()
    };
    rc.consumer.session_timeout_ms = 10_000;
    rc.consumer.drain_timeout_ms = 2_000;
    let rc_deps = deps(&kafka, &topics, im.client_config(), &stop);
    let reconcile = start_service::<Reconcile>(rc, &rc_deps).await;

    ann_creates_club(&im).await;
    let (mut group_sent, mut c2c_sent) = (Vec::new(), Vec::new());
    let converged = |g: usize, c: usize| {
        let legacy_url = legacy_url.clone();
        async move {
            legacy_texts(&legacy_url, "/api/groups/club/messages").await.len() >= g
                && legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await.len() >= c
        }
    };
    chat(&im, "live0", 6, &mut group_sent, &mut c2c_sent).await;
    let (g, c) = (group_sent.len(), c2c_sent.len());
    eventually("the first chat reached legacy", Duration::from_secs(60), || converged(g, c)).await;

    let mut lost = 0usize;
    let mut times = Vec::new();
    for (round, down_secs) in [(1u32, 5u64), (2, 7), (3, 9)] {
        // The previous chat's activity checks (1.5 s after its last event) are done before the kill.
        tokio::time::sleep(Duration::from_secs(3)).await;
        ingest.kill9();
        let killed = Instant::now();
        let failed_before: u64 = im.emulator().stats().callbacks_failed.values().sum();
        let (g0, c0) = (group_sent.len(), c2c_sent.len());
        chat(&im, &format!("down{round}"), 8, &mut group_sent, &mut c2c_sent).await;
        lost += group_sent.len() - g0 + c2c_sent.len() - c0;
        eventually("every callback fired", Duration::from_secs(30), || {
            let pending = im.emulator().stats().callbacks_pending;
            async move { pending == 0 }
        })
        .await;
        let failed: u64 = im.emulator().stats().callbacks_failed.values().sum();
        assert!(failed > failed_before, "callbacks failed while ingest was down");
        // Restart after the down time, and meanwhile watch legacy: the silence is an outage before the restart
        // says so.
        let (g, c) = (group_sent.len(), c2c_sent.len());
        let mut restarted = false;
        let mut converged_after = None;
        while !(restarted && converged_after.is_some()) {
            assert!(killed.elapsed() < Duration::from_secs(90), "outage {round} not repaired");
            if converged_after.is_none() && converged(g, c).await {
                converged_after = Some(killed.elapsed());
            }
            if !restarted && killed.elapsed() >= Duration::from_secs(down_secs) {
                ingest = start_ingest(round);
                eventually("ingest ready", Duration::from_secs(60), || ready(ingest_addr)).await;
                restarted = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        times.push(converged_after.unwrap_or_default());
        // Converged means more than "at least": exactly once each, in IM's order, also after the restart's own
        // outage check.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(legacy_texts(&legacy_url, "/api/groups/club/messages").await, group_sent, "round {round}");
        assert_eq!(legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await, c2c_sent, "round {round}");
        // Normal traffic in between.
        chat(&im, &format!("live{round}"), 4, &mut group_sent, &mut c2c_sent).await;
    }
    let (g, c) = (group_sent.len(), c2c_sent.len());
    eventually("the last chat reached legacy", Duration::from_secs(60), || converged(g, c)).await;
    assert_eq!(legacy_texts(&legacy_url, "/api/groups/club/messages").await, group_sent);
    assert_eq!(legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await, c2c_sent);

    let page = scrape(reconcile.addr).await;
    let outages = metric(&page, "imbridge_reconcile_outages_total", &[("cause", "restart")]);
    let repaired = metric(&page, "imbridge_reconcile_repaired_total", &[]);
    let im_calls = metric(&page, "imbridge_reconcile_im_calls_total", &[]);
    let checked = metric(&page, "imbridge_reconcile_conversations_checked_total", &[]);
    assert!(outages >= 3.0, "{page}");
    assert!(metric(&page, "imbridge_reconcile_passes_total", &[("trigger", "outage")]) >= 3.0, "{page}");
    assert_eq!(metric(&page, "imbridge_reconcile_passes_total", &[("trigger", "sweep")]), 0.0, "no sweep helped");
    assert!(repaired >= lost as f64, "every lost message was repaired: {repaired} < {lost}");
    println!(
        "figures: {} messages sent on IM ({lost} while ingest was down, 3 kill -9); outages seen {outages}; \
         repaired {repaired} (a repair seen again is the same event); kill -9 → converged {:?}; reconcile IM calls {im_calls} for {checked} conversation checks",
        group_sent.len() + c2c_sent.len(),
        times
    );

    stop.cancel();
    reconcile.wait().await.expect("reconcile stops");
    to_legacy.wait().await.expect("to-legacy stops");
    ingest.terminate();
}
