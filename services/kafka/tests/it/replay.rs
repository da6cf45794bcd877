//! Resetting a consumer group: to the beginning, to a time, to explicit offsets; refused while the group runs;
//! after a reset the group re-handles exactly the records from the new position.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_kafka::admin::Admin;
use imbridge_kafka::replay::{self, ResetTo};
use imbridge_kafka::{ConsumerConfig, Handler, OrderedConsumer, Outcome, Record};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Count {
    n: AtomicUsize,
    offsets: Mutex<HashMap<i32, Vec<i64>>>,
}

impl Handler for Count {
    async fn handle(&self, r: &Record) -> Outcome {
        self.offsets.lock().expect("lock").entry(r.partition).or_default().push(r.offset);
        self.n.fetch_add(1, Ordering::SeqCst);
        Outcome::Done
    }
}

fn consumer(topic: &str, group: &str, h: Arc<Count>) -> OrderedConsumer<Count> {
    OrderedConsumer::new(
        &crate::common::kafka(),
        group,
        &[topic],
        ConsumerConfig::default(),
        h,
        crate::common::dlq(&imbridge_testkit::unique("rp-dlq")),
        crate::common::metrics(),
    )
    .expect("consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_moves_offsets_only_when_the_group_is_stopped() {
    imbridge_testkit::require_kafka!();
    let topic = crate::common::topic("replay", 3).await;
    let produced = crate::common::produce_interleaved(&topic, 6, 50).await;
    let total = produced.len();
    let group = imbridge_testkit::unique("replay-group");

    let first = Arc::new(Count::default());
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer(&topic, &group, first.clone()).run(stop.clone()));
    let f = first.clone();
    crate::common::wait_until("first pass", Duration::from_secs(60), || f.n.load(Ordering::SeqCst) >= total).await;

    // While the group runs, a reset is refused.
    let plan = replay::plan(&crate::common::kafka(), &group, std::slice::from_ref(&topic), &ResetTo::Earliest)
        .await
        .expect("plan");
    let refused = replay::apply(&crate::common::kafka(), &group, &plan).await;
    assert!(refused.is_err(), "a running group must not be reset");
    stop.cancel();
    run.await.expect("join").expect("run");

    // Stopped: reset to explicit offsets on one partition, to the beginning elsewhere.
    let p0_mid = produced.iter().filter(|p| p.2 == 0).map(|p| p.3).nth(10).expect("partition 0 has records");
    let mut plan = replay::plan(&crate::common::kafka(), &group, std::slice::from_ref(&topic), &ResetTo::Earliest)
        .await
        .expect("plan");
    for p in &mut plan {
        assert_eq!(p.old, Some(p.high), "fully committed before the reset");
        if p.partition == 0 {
            p.new = p0_mid;
        }
    }
    replay::apply(&crate::common::kafka(), &group, &plan).await.expect("apply");
    let after =
        Admin::new(&crate::common::kafka()).expect("admin").offsets(&topic, Some(&group)).await.expect("offsets");
    for p in &after {
        let want = plan.iter().find(|x| x.partition == p.partition).expect("planned").new;
        assert_eq!(p.committed, Some(want));
    }

    // Running again re-handles exactly the records from the new positions.
    let second = Arc::new(Count::default());
    let expect: usize = after.iter().map(|p| (p.high - p.committed.unwrap_or(0)) as usize).sum();
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer(&topic, &group, second.clone()).run(stop.clone()));
    let s = second.clone();
    crate::common::wait_until("replayed records", Duration::from_secs(60), || s.n.load(Ordering::SeqCst) >= expect)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    run.await.expect("join").expect("run");
    assert_eq!(second.n.load(Ordering::SeqCst), expect);
    // Lanes of different keys run concurrently, so the lowest offset seen, not the first recorded, is where the
    // replay began.
    let lowest = second.offsets.lock().expect("lock").get(&0).and_then(|v| v.iter().min()).copied();
    assert_eq!(lowest, Some(p0_mid), "partition 0 replays from the reset point, nothing before it");

    // Reset by time: a time after everything points at the end (nothing to replay).
    let future =
        replay::plan(&crate::common::kafka(), &group, &[topic], &ResetTo::Time(i64::MAX / 2)).await.expect("plan");
    assert!(future.iter().all(|p| p.new == p.high));
}
