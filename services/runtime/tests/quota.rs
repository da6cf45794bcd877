//! Several quota coordinators on the real broker converge on one allocation: live served, repair before history,
//! the sum under the quota, and a stopped instance's share handed out once its announcements expire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use imbridge_im::{Api, ImClient, ImConfig, Priority, QuotaConfig, RateSetting};
use imbridge_kafka::KafkaConfig;
use imbridge_runtime::Deps;
use imbridge_runtime::quota::coordinate;
use imbridge_testkit::{kafka_bootstrap, require_kafka, unique_topics};

const QUOTA: f64 = 100.0;

fn config() -> ImConfig {
    let mut im = ImConfig {
        sdkappid: 1_400_000_000,
        secret_key: "k".into(),
        // Faster rounds than production, so the test converges in seconds.
        quota: QuotaConfig { period_ms: 200, expire_ms: 800, ..QuotaConfig::default() },
        ..ImConfig::default()
    };
    im.rate_limits.insert(Api::ImportMsg, RateSetting::PerSec(QUOTA));
    im
}

/// Calls `api`'s pacer as fast as it lets through (a saturated caller), or at `rate`, until `stop`.
fn load(im: ImClient, rate: Option<f64>, stop: Arc<AtomicBool>) -> Arc<AtomicU64> {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        let mut tick = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
        while !stop.load(Ordering::Relaxed) {
            if let Some(t) = tick.as_mut() {
                t.tick().await;
            }
            im.wait_for_slot(Api::ImportMsg).await;
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    calls
}

async fn rates(counters: &[&Arc<AtomicU64>], over: Duration) -> Vec<f64> {
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let start = Instant::now();
    tokio::time::sleep(over).await;
    let secs = start.elapsed().as_secs_f64();
    counters.iter().zip(before).map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / secs).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_on_the_broker_converge_by_priority_and_hand_out_a_dead_instances_share() {
    require_kafka!();
    let deps = Deps::new(KafkaConfig::for_bootstrap(kafka_bootstrap()), unique_topics("quota", 1), config());
    let client = || ImClient::new(&deps.im, &prometheus::Registry::new()).expect("client");
    let (live, repair, history) = (client(), client(), client());
    let live_q = coordinate(&deps, &live, "live", Priority::Live, &[Api::ImportMsg]).expect("live").expect("on");
    let repair_q = coordinate(&deps, &repair, "repair", Priority::Repair, &[Api::ImportMsg]).expect("r").expect("on");
    let history_q =
        coordinate(&deps, &history, "import", Priority::History, &[Api::ImportMsg]).expect("h").expect("on");
    // Before anything is known, history and repair start at the small start-up share.
    assert_eq!(history.effective_rate(Api::ImportMsg), RateSetting::PerSec(5.0));

    let stop_all = Arc::new(AtomicBool::new(false));
    let stop_repair = Arc::new(AtomicBool::new(false));
    let live_calls = load(live.clone(), Some(20.0), stop_all.clone());
    let repair_calls = load(repair.clone(), None, stop_repair.clone());
    let history_calls = load(history.clone(), None, stop_all.clone());

    // Converged: live gets its 20/s, repair nearly all the rest, history what repair leaves; never above quota.
    let deadline = Instant::now() + Duration::from_secs(30);
    let converged = loop {
        let r = rates(&[&live_calls, &repair_calls, &history_calls], Duration::from_secs(2)).await;
        let total: f64 = r.iter().sum();
        if r[0] > 18.0 && r[1] > 60.0 && r[1] > 4.0 * r[2] && total > 85.0 && total < QUOTA * 1.02 {
            break r;
        }
        assert!(Instant::now() < deadline, "no convergence within 30 s: live, repair, history = {r:?}");
    };
    eprintln!("converging: live, repair, history = {converged:?}");
    // Settled: the same split again, history holding (almost) nothing while repair is saturated.
    let settled = rates(&[&live_calls, &repair_calls, &history_calls], Duration::from_secs(2)).await;
    eprintln!("settled: live, repair, history = {settled:?}");
    let total: f64 = settled.iter().sum();
    assert!(settled[0] > 18.0 && settled[1] > 65.0 && settled[2] < 5.0, "{settled:?}");
    assert!(total > 88.0 && total < QUOTA * 1.02, "{settled:?}");

    // Repair stops and its coordinator goes away: after its announcements expire, history takes its share.
    stop_repair.store(true, Ordering::Relaxed);
    drop(repair_q);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let r = rates(&[&live_calls, &history_calls], Duration::from_secs(2)).await;
        let total: f64 = r.iter().sum();
        if r[0] > 18.0 && r[1] > 65.0 && total < QUOTA * 1.02 {
            break r;
        }
        assert!(Instant::now() < deadline, "history did not take repair's share: live, history = {r:?}");
    };
    eprintln!("after repair stopped: live, history = {after:?}");
    stop_all.store(true, Ordering::Relaxed);
    drop((live_q, history_q));
}
