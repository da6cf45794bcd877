//! Realistic callback delivery and injected faults, over real HTTP: concurrent delivery reorders, serial mode
//! keeps order, dropped / duplicated / delayed callbacks follow their ratios and repeat exactly with the same
//! seed (whatever the delivery concurrency), injected REST failures have the documented shapes and change
//! nothing, the control endpoint changes faults at run time, and `/emulator/stats` counts all of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{Im, Sink, assert_code, config, text};
use imbridge_im_emulator::{EmulatorConfig, Faults, RestFailureKind, StatsSnapshot};
use serde_json::{Value, json};

async fn flush(im: &Im) {
    tokio::time::timeout(Duration::from_secs(20), im.running.emulator().flush_callbacks())
        .await
        .expect("callbacks attempted within 20 s");
}

async fn start(sink: &Sink, concurrency: usize, faults: Faults) -> Im {
    let cfg = EmulatorConfig { callback_url: Some(sink.url()), callback_concurrency: concurrency, faults, ..config() };
    let im = Im::start(cfg).await;
    im.accounts(&["ann", "bob"]).await;
    im
}

async fn send(im: &Im, random: u64) -> Value {
    im.call(
        "openim/sendmsg",
        json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": random, "MsgBody": text(&random.to_string())}),
    )
    .await
}

/// The `MsgRandom`s of the received C2C callbacks, in arrival order.
fn arrivals(sink: &Sink) -> Vec<u64> {
    sink.of("C2C.CallbackAfterSendMsg").iter().map(|r| r.body["MsgRandom"].as_u64().expect("MsgRandom")).collect()
}

fn sum(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

/// Messages ann → bob as IM stores them (bob's view), by `MsgRandom`.
async fn stored(im: &Im) -> Vec<u64> {
    let now = im.now_secs();
    let h = im
        .ok(
            "openim/admin_getroammsg",
            json!({"Operator_Account": "bob", "Peer_Account": "ann", "MaxCnt": 100, "MinTime": 0, "MaxTime": now}),
        )
        .await;
    h["MsgList"].as_array().expect("MsgList").iter().map(|m| m["MsgRandom"].as_u64().expect("MsgRandom")).collect()
}

#[tokio::test]
async fn concurrent_delivery_lets_a_later_callback_overtake() {
    let sink = Sink::start().await;
    // The receiver is slow on the first message only, as one busy backend server would be.
    sink.hold(0, Duration::from_millis(600));
    let im = start(&sink, 8, Faults::default()).await;
    assert_eq!(im.running.emulator().config().callback_concurrency, 8, "concurrent by default");
    for r in 0..5 {
        crate::common::assert_ok(&send(&im, r).await);
    }
    flush(&im).await;
    let got = arrivals(&sink);
    assert_eq!(got.len(), 5);
    assert_eq!(got.last(), Some(&0), "the held first callback arrives last: {got:?}");
    assert_eq!(im.running.emulator().stats().callbacks_pending, 0);
}

#[tokio::test]
async fn serial_mode_waits_for_each_callback() {
    let sink = Sink::start().await;
    sink.hold(0, Duration::from_millis(400));
    let im = start(&sink, 1, Faults::default()).await;
    let t = Instant::now();
    for r in 0..5 {
        crate::common::assert_ok(&send(&im, r).await);
    }
    flush(&im).await;
    assert_eq!(arrivals(&sink), [0, 1, 2, 3, 4], "operation order");
    assert!(t.elapsed() >= Duration::from_millis(400));
}

/// One run of `n` messages with the given faults; what arrived and what the stats say.
async fn run(concurrency: usize, faults: Faults, n: u64) -> (Vec<u64>, StatsSnapshot) {
    let sink = Sink::start().await;
    let im = start(&sink, concurrency, faults).await;
    for r in 0..n {
        crate::common::assert_ok(&send(&im, r).await);
    }
    flush(&im).await;
    (arrivals(&sink), im.running.emulator().stats())
}

#[tokio::test]
async fn dropped_duplicated_and_delayed_callbacks_follow_the_seed() {
    const N: u64 = 400;
    let faults = Faults {
        seed: 42,
        callback_drop_ratio: 0.1,
        callback_duplicate_ratio: 0.05,
        // Short delays: the serial run below waits for each in turn.
        callback_delay_max_ms: 20,
        ..Faults::default()
    };
    let (got, stats) = run(8, faults.clone(), N).await;
    let cmd = "C2C.CallbackAfterSendMsg";
    let dropped = stats.callbacks_dropped.get(cmd).copied().unwrap_or(0);
    let duplicated = stats.callbacks_duplicated.get(cmd).copied().unwrap_or(0);
    // 10% ± a wide margin of 400 draws (σ ≈ 6), 5% likewise (σ ≈ 4.4).
    assert!((20..=60).contains(&dropped), "dropped {dropped}");
    assert!((6..=36).contains(&duplicated), "duplicated {duplicated}");
    assert_eq!(got.len() as u64, N - dropped + duplicated, "every copy sent exactly once, none retried");
    assert_eq!(sum(&stats.callbacks_delivered), got.len() as u64);
    assert_eq!(sum(&stats.callbacks_failed), 0);
    assert_eq!(sum(&stats.callbacks_delayed), got.len() as u64, "delay ratio 1.0 delays every copy");
    assert_eq!(stats.callbacks_pending, 0);
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &got {
        *counts.entry(*r).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, N - dropped);
    assert_eq!(counts.values().filter(|c| **c == 2).count() as u64, duplicated);
    assert!(got.windows(2).any(|w| w[0] > w[1]), "random delays reorder");

    // The same seed decides the same fates, even delivered serially; a different seed does not.
    let (again, stats_again) = run(1, faults.clone(), N).await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    let mut sorted_again = again.clone();
    sorted_again.sort_unstable();
    assert_eq!(sorted, sorted_again, "same seed, same dropped and duplicated callbacks");
    assert_eq!(stats_again.callbacks_dropped, stats.callbacks_dropped);
    assert_eq!(stats_again.callbacks_delayed, stats.callbacks_delayed);
    let serial_order: Vec<u64> = {
        let mut seen = again.clone();
        seen.dedup();
        seen
    };
    assert!(serial_order.windows(2).all(|w| w[0] < w[1]), "serial mode keeps operation order despite delays");
    let (other, _) = run(8, Faults { seed: 43, callback_delay_max_ms: 0, ..faults }, N).await;
    let mut sorted_other = other;
    sorted_other.sort_unstable();
    assert_ne!(sorted, sorted_other);
}

#[tokio::test]
async fn flush_waits_for_delayed_and_duplicated_callbacks() {
    let sink = Sink::start().await;
    let faults = Faults { seed: 1, callback_duplicate_ratio: 1.0, callback_delay_max_ms: 300, ..Faults::default() };
    let im = start(&sink, 8, faults).await;
    for r in 0..10 {
        crate::common::assert_ok(&send(&im, r).await);
    }
    assert!(im.running.emulator().stats().callbacks_pending > 0, "delays keep callbacks pending");
    flush(&im).await;
    assert_eq!(arrivals(&sink).len(), 20, "flush returned only after every copy was attempted");
    let stats = im.running.emulator().stats();
    assert_eq!(stats.callbacks_pending, 0);
    assert_eq!(stats.callbacks_duplicated["C2C.CallbackAfterSendMsg"], 10);
    assert_eq!(stats.callbacks_delivered["C2C.CallbackAfterSendMsg"], 20);
}

/// A raw REST call: HTTP status and body text (or the transport error).
async fn raw(im: &Im, api: &str, body: Value) -> Result<(u16, String), reqwest::Error> {
    let admin = im.admin();
    let url = im.url(api, &admin, &im.running.emulator().usersig(&admin));
    let resp = im.http.post(url).body(body.to_string()).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

fn sendmsg_body(random: u64) -> Value {
    json!({"From_Account": "ann", "To_Account": "bob", "MsgRandom": random, "MsgBody": text("x")})
}

fn failing(kind: RestFailureKind) -> Faults {
    Faults {
        rest_failure_ratio: 1.0,
        rest_failure_kinds: vec![kind],
        rest_failure_apis: vec!["openim/sendmsg".into()],
        rest_timeout_ms: 300,
        ..Faults::default()
    }
}

#[tokio::test]
async fn injected_rest_failures_have_the_documented_shapes_and_change_nothing() {
    let sink = Sink::start().await;
    let im = start(&sink, 8, failing(RestFailureKind::Http500)).await;
    let e = im.running.emulator();

    // http_500: HTTP 500, a plain-text body, nothing stored, no callback.
    let (status, body) = raw(&im, "openim/sendmsg", sendmsg_body(1)).await.expect("answered");
    assert_eq!(status, 500);
    assert!(body.contains("internal server error"), "{body}");
    // Other APIs are not affected.
    im.ok("im_open_login_svc/account_check", json!({"CheckItem": [{"UserID": "ann"}]})).await;

    // 60007: HTTP 200 with IM's envelope, nothing stored.
    e.set_faults(failing(RestFailureKind::RateLimited)).expect("set");
    assert_code(&send(&im, 2).await, 60007);

    // timeout that does not apply: held ~rest_timeout_ms, then cut off without an answer; nothing stored.
    e.set_faults(Faults { rest_timeout_applies: false, ..failing(RestFailureKind::Timeout) }).expect("set");
    let t = Instant::now();
    let r = raw(&im, "openim/sendmsg", sendmsg_body(3)).await;
    assert!(r.is_err(), "no complete answer: {r:?}");
    assert!(t.elapsed() >= Duration::from_millis(300), "held first: {:?}", t.elapsed());
    flush(&im).await;
    assert_eq!(stored(&im).await, Vec::<u64>::new(), "failed calls changed nothing");
    assert!(sink.received().is_empty(), "and fired no callback");

    // timeout that applies (the default): the message is stored and called back, but the caller never hears.
    e.set_faults(failing(RestFailureKind::Timeout)).expect("set");
    assert!(raw(&im, "openim/sendmsg", sendmsg_body(4)).await.is_err());
    flush(&im).await;
    assert_eq!(stored(&im).await, [4]);
    assert_eq!(arrivals(&sink), [4]);

    let stats = e.stats();
    let faults = &stats.rest_faults["openim/sendmsg"];
    assert_eq!(faults["http_500"], 1);
    assert_eq!(faults["60007"], 1);
    assert_eq!(faults["timeout"], 2);
    assert_eq!(stats.rest_faults.len(), 1, "only sendmsg failed");
    assert_eq!(stats.rate_limited, 0, "injected 60007s are not frequency-limit answers");
    assert_eq!(stats.errors[&60007], 1);
}

#[tokio::test]
async fn rest_failures_follow_ratios_and_repeat_with_the_seed() {
    // Every REST API fails 30% of the time, except the unread read (a per-API ratio of 0).
    let faults = Faults {
        seed: 5,
        rest_failure_ratio: 0.3,
        rest_failure_kinds: vec![RestFailureKind::Http500, RestFailureKind::RateLimited],
        rest_failure_api_ratios: BTreeMap::from([("openim/get_c2c_unread_msg_num".to_owned(), 0.0)]),
        ..Faults::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let sink = Sink::start().await;
        let im = start(&sink, 8, Faults::default()).await;
        im.running.emulator().set_faults(faults.clone()).expect("set");
        let mut seen = Vec::new();
        for r in 0..200 {
            let (status, body) = raw(&im, "openim/sendmsg", sendmsg_body(r)).await.expect("answered");
            let code = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["ErrorCode"].as_i64());
            seen.push((status, code));
        }
        let ok = seen.iter().filter(|s| **s == (200, Some(0))).count();
        let failed = seen.len() - ok;
        assert!((35..=85).contains(&failed), "30% of 200 (σ ≈ 6.5): {failed}");
        assert!(seen.contains(&(500, None)) && seen.contains(&(200, Some(60007))), "both kinds occur");
        // Only the successful sends were stored: bob has exactly that many unread.
        let unread = im.ok("openim/get_c2c_unread_msg_num", json!({"To_Account": "bob"})).await;
        assert_eq!(unread["AllC2CUnreadMsgNum"], ok);
        flush(&im).await;
        assert_eq!(arrivals(&sink).len(), ok, "and called back");
        let stats = im.running.emulator().stats();
        assert_eq!(stats.rest_faults["openim/sendmsg"].values().sum::<u64>(), failed as u64);
        assert!(!stats.rest_faults.contains_key("openim/get_c2c_unread_msg_num"));
        outcomes.push(seen);
    }
    assert_eq!(outcomes[0], outcomes[1], "same seed, same calls, same failures");
}

#[tokio::test]
async fn control_endpoint_reads_and_replaces_faults_at_run_time() {
    let sink = Sink::start().await;
    let im = start(&sink, 8, Faults::default()).await;
    let url = format!("{}/emulator/faults", im.base());
    let current: Faults = im.http.get(&url).send().await.expect("get").json().await.expect("json");
    assert_eq!(current, Faults::default());

    // Drop every callback from now on; missing keys take their defaults.
    let resp = im.http.put(&url).json(&json!({"seed": 3, "callback_drop_ratio": 1.0})).send().await.expect("put");
    assert_eq!(resp.status(), 200);
    let now: Faults = resp.json().await.expect("json");
    assert_eq!((now.seed, now.callback_drop_ratio), (3, 1.0));
    assert_eq!(im.running.emulator().faults(), now);
    crate::common::assert_ok(&send(&im, 1).await);
    flush(&im).await;
    assert!(sink.received().is_empty());
    assert_eq!(im.running.emulator().stats().callbacks_dropped["C2C.CallbackAfterSendMsg"], 1);

    // Invalid fault sets are refused with the reason and change nothing.
    for bad in [
        json!({"callback_drop_ratio": 2.0}),
        json!({"rest_failure_kinds": ["http_503"]}),
        json!({"rest_failure_apis": ["openim/nope"]}),
        json!({"no_such_key": 1}),
    ] {
        let resp = im.http.put(&url).json(&bad).send().await.expect("put");
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(!resp.text().await.expect("text").is_empty(), "a reason is given");
    }
    assert_eq!(im.running.emulator().faults(), now);

    // REST failures switched on at run time, then everything off again.
    let resp = im
        .http
        .put(&url)
        .json(&json!({"rest_failure_api_ratios": {"openim/sendmsg": 1.0}, "rest_failure_kinds": ["60007"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    assert_code(&send(&im, 2).await, 60007);
    let resp = im.http.put(&url).json(&json!({})).send().await.expect("put");
    assert_eq!(resp.status(), 200);
    crate::common::assert_ok(&send(&im, 3).await);
    flush(&im).await;
    assert_eq!(arrivals(&sink), [3]);

    // The stats endpoint shows the counters.
    let stats: Value =
        im.http.get(format!("{}/emulator/stats", im.base())).send().await.expect("stats").json().await.expect("json");
    assert_eq!(stats["callbacks_dropped"]["C2C.CallbackAfterSendMsg"], 1);
    assert_eq!(stats["rest_faults"]["openim/sendmsg"]["60007"], 1);
    assert_eq!(stats["callbacks_delivered"]["C2C.CallbackAfterSendMsg"], 1);
    assert_eq!(stats["callbacks_pending"], 0);
}

#[tokio::test]
async fn shutdown_releases_requests_held_by_an_injected_timeout() {
    let sink = Sink::start().await;
    let im = start(&sink, 8, Faults { rest_timeout_ms: 60_000, ..failing(RestFailureKind::Timeout) }).await;
    let admin = im.admin();
    let url = im.url("openim/sendmsg", &admin, &im.running.emulator().usersig(&admin));
    let held = tokio::spawn(im.http.post(url).body(sendmsg_body(1).to_string()).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the request is held");
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), im.running.shutdown())
        .await
        .expect("shutdown is not held up by the 60 s hold")
        .expect("clean shutdown");
    let r = held.await.expect("join");
    assert!(r.is_err(), "cut off without an answer: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
}
