//! A rough throughput check of the hot import path (`importmsg` with UserSig verification, JSON parsing and the
//! state lock), with frequency limits off. Ignored by default; run with
//! `cargo test -p imbridge-im-emulator --release --test it throughput -- --ignored --nocapture`.

use std::time::Instant;

use crate::common::{Im, config, text};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn importmsg_throughput() {
    let im = Im::start(config()).await;
    im.accounts(&["ann", "bob"]).await;
    let admin = im.admin();
    let sig = im.running.emulator().usersig(&admin);
    let url = im.url("openim/importmsg", &admin, &sig);
    let total: u32 = 20_000;
    let concurrency: u32 = 32;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let http = im.http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..total).step_by(concurrency as usize) {
                let body = json!({"SyncFromOldSystem": 2, "From_Account": "ann", "To_Account": "bob", "MsgSeq": i,
                    "MsgRandom": i, "MsgTimeStamp": 1_700_000_000 + u64::from(i / 10), "MsgBody": text("hello")});
                let v: serde_json::Value =
                    http.post(&url).body(body.to_string()).send().await.expect("sent").json().await.expect("json");
                assert_eq!(v["ErrorCode"], 0, "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("importmsg: {total} requests in {secs:.2} s = {:.0} req/s", f64::from(total) / secs);
    assert_eq!(im.running.emulator().stats().requests["openim/importmsg"], u64::from(total));
}
