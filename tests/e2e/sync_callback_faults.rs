//! IM callbacks as unkind as IM's: the emulator delivers 8 at once, drops 10%, delivers 5% twice, delays each up to
//! 500 ms and fails 5% of REST calls. New-app users send group and 1:1 messages; ingest (spool) → Kafka →
//! to-legacy (resequencer, gap fill from IM) → the legacy emulator. Legacy must end with every group message, once,
//! in `MsgSeq` order (dropped callbacks filled from IM's history), and every 1:1 message whose callback was not
//! dropped, once, in IM's order.
//!
//! A group's last message whose callback is dropped leaves no later seq to reveal the gap: such a tail is
//! reconciliation's. The test therefore ends the traffic with one message sent after the faults were switched off.

use std::time::Duration;

use imbridge_e2e::*;
use imbridge_im_emulator::EmulatorConfig;
use imbridge_im_emulator::faults::Faults;
use imbridge_testkit::prom::sample;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const GROUP_MESSAGES: usize = 60;
const C2C_MESSAGES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_duplicated_and_reordered_callbacks_reach_legacy_complete_and_in_order() {
    let _turn = turn(module_path!()).await;
    logs();
    let legacy = spawn_legacy().await;
    let sb = Sandbox::new("cbfaults", 3).pipeline(&legacy.apply_url());
    let (kafka, topics) = (kafka(), sb.topics.clone());

    let ingest_registry = prometheus::Registry::new();
    let emu_defaults = EmulatorConfig::default();
    let mut deps = imbridge_ingest::Deps::new(kafka.clone(), topics.clone(), emu_defaults.sdkappid, "administrator");
    deps.registry = ingest_registry.clone();
    let ingest = imbridge_ingest::spawn(sb.config.ingest.clone(), deps).await.expect("ingest");
    // The realistic default: 8 deliveries in flight. Faults come on once the group exists on both sides.
    let im = spawn_im_with(EmulatorConfig {
        callback_url: Some(ingest.callback_url()),
        rate_limits_enabled: false,
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(im.emulator().config().callback_concurrency, 8);
    let admin = im_client(&im);
    import_accounts(&admin, &["ann", "bob", "cy"]).await;

    let stop = CancellationToken::new();
    let tl_registry = prometheus::Registry::new();
    let mut im_cfg = im.client_config();
    im_cfg.request_timeout_ms = 3_000;
    let tl_deps = imbridge_to_legacy::Deps {
        kafka: kafka.clone(),
        topics: topics.clone(),
        registry: tl_registry.clone(),
        im: Some(im_cfg),
    };
    let mut tl_cfg = sb.to_legacy_in_process();
    tl_cfg.order.reorder_window_ms = 1_500;
    let to_legacy = imbridge_to_legacy::start(tl_cfg, tl_deps, stop.clone()).await.expect("to-legacy");

    let legacy_url = legacy.url();
    as_user(
        &im,
        "ann",
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "ann", "Type": "Public", "GroupId": "club", "Name": "club",
               "MemberList": [{"Member_Account": "bob"}, {"Member_Account": "cy"}]}),
    )
    .await;
    eventually("the group exists on legacy", Duration::from_secs(60), || group_on_legacy(&legacy_url, "club")).await;

    let faults = Faults {
        seed: 11,
        callback_drop_ratio: 0.10,
        callback_duplicate_ratio: 0.05,
        callback_delay_ratio: 1.0,
        callback_delay_max_ms: 500,
        rest_failure_ratio: 0.05,
        // to-legacy's only IM calls are the gap reads, a handful in this run: at 5% none might fail, so they fail
        // more often here, and the assertion below proves the fill survives it.
        rest_failure_api_ratios: [("group_open_http_svc/group_msg_get_simple".to_owned(), 0.5)].into(),
        rest_timeout_ms: 5_000,
        ..Faults::default()
    };
    im.emulator().set_faults(faults.clone()).expect("faults");

    // Traffic: group messages from three members interleaved with a 1:1 conversation in both directions.
    let members = ["ann", "bob", "cy"];
    let mut c2c_sent = 0u32;
    for i in 0..GROUP_MESSAGES {
        let from = members[i % 3];
        as_user(
            &im,
            from,
            "group_open_http_svc/send_group_msg",
            json!({"GroupId": "club", "Random": i, "MsgBody": im_text(&format!("g{i:03}"))}),
        )
        .await;
        if i < C2C_MESSAGES {
            c2c_sent += 1;
            let (from, to) = if i % 4 == 3 { ("bob", "ann") } else { ("ann", "bob") };
            as_user(
                &im,
                from,
                "openim/sendmsg",
                json!({"To_Account": to, "MsgRandom": 7000 + i, "MsgSeq": c2c_sent,
                "MsgBody": im_text(&format!("c{i:03}"))}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let every delayed callback land, then one last group message without faults closes any tail gap.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let figures = im.emulator().stats();
    // Callbacks faultless from here; the gap reads still to come keep failing as before.
    let reads_only =
        Faults { callback_drop_ratio: 0.0, callback_duplicate_ratio: 0.0, callback_delay_max_ms: 0, ..faults };
    im.emulator().set_faults(reads_only).expect("callback faults off");
    as_user(
        &im,
        "ann",
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "club", "Random": 999, "MsgBody": im_text("g-last")}),
    )
    .await;

    let dropped_c2c = figures.callbacks_dropped.get("C2C.CallbackAfterSendMsg").copied().unwrap_or(0) as usize;
    let want_c2c = C2C_MESSAGES - dropped_c2c;
    eventually("legacy caught up", Duration::from_secs(120), || {
        let legacy_url = legacy_url.clone();
        async move {
            legacy_texts(&legacy_url, "/api/groups/club/messages").await.len() > GROUP_MESSAGES
                && legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await.len() >= want_c2c
        }
    })
    .await;
    // Quiet for a moment: anything still to come (a duplicate) would show now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let im_group = group_texts(&admin, "club").await;
    let legacy_group = legacy_texts(&legacy_url, "/api/groups/club/messages").await;
    assert_eq!(im_group.len(), GROUP_MESSAGES + 1, "IM holds every group message");
    assert_eq!(legacy_group, im_group, "every group message, once, in MsgSeq order");

    let im_c2c = c2c_texts(&admin, "ann", "bob").await;
    let legacy_c2c = legacy_texts(&legacy_url, "/api/c2c/ann/bob/messages").await;
    assert_eq!(legacy_c2c.len(), want_c2c, "every 1:1 message whose callback came, once: {legacy_c2c:?}");
    let mut rest = im_c2c.iter();
    for t in &legacy_c2c {
        assert!(rest.any(|x| x == t), "1:1 messages in IM's order: {legacy_c2c:?} vs IM {im_c2c:?}");
    }

    let tl = scrape(to_legacy.ops_addr).await;
    let ing = {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&ingest_registry.gather(), &mut buf).expect("encode");
        String::from_utf8(buf).expect("utf8")
    };
    let total = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    let rest_failed: u64 = im.emulator().stats().rest_faults.values().flat_map(|m| m.values()).sum();
    println!(
        "figures: callbacks dropped {} (1:1 {dropped_c2c}), duplicated {}, delayed {}; REST calls failed {rest_failed}; \
         gaps detected {}, filled {}, gap seqs filled {} / skipped {}; duplicates skipped by the resequencer {}; \
         spool high-water {} bytes",
        total(&figures.callbacks_dropped),
        total(&figures.callbacks_duplicated),
        total(&figures.callbacks_delayed),
        sample(&tl, "imbridge_to_legacy_gaps_detected_total"),
        sample(&tl, "imbridge_to_legacy_gaps_filled_total"),
        sample(&tl, r#"imbridge_to_legacy_gap_messages_total{outcome="filled"}"#),
        sample(&tl, r#"imbridge_to_legacy_gap_messages_total{outcome="skipped"}"#),
        sample(&tl, r#"imbridge_to_legacy_resequenced_total{reason="duplicate"}"#),
        sample(&ing, "imbridge_ingest_spool_high_water_bytes"),
    );
    let gap_reads_failed: u64 = im
        .emulator()
        .stats()
        .rest_faults
        .get("group_open_http_svc/group_msg_get_simple")
        .map(|m| m.values().sum())
        .unwrap_or(0);
    assert!(gap_reads_failed > 0, "some gap reads failed and were retried");
    let dropped_group = figures.callbacks_dropped.get("Group.CallbackAfterSendMsg").copied().unwrap_or(0);
    assert!(dropped_group > 0, "the seed drops some group message callbacks: {figures:?}");
    assert!(
        sample(&tl, r#"imbridge_to_legacy_gap_messages_total{outcome="filled"}"#) >= dropped_group as f64,
        "every dropped group message was filled from IM"
    );
    assert_eq!(sample(&tl, r#"imbridge_to_legacy_records_total{outcome="dead_letter"}"#), 0.0);

    stop.cancel();
    to_legacy.wait().await.expect("to-legacy stops");
    ingest.shutdown().await;
}
