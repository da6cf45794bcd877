//! The background task that empties the spool into Kafka.
//!
//! It takes a window from the head of the spool (arrival order), enqueues all of it on the idempotent producer
//! in that order (so each partition, hence each conversation, keeps it), and awaits the acknowledgements in the
//! same order. The acknowledged prefix is forgotten ([`super::State::acknowledge`]); from the first failure on,
//! the whole rest of the window is produced again after a backoff, even records acknowledged behind the
//! failure, so the last copy of every conversation's records is in arrival order. Duplicates are harmless: the
//! event ids are deterministic and every consumer is idempotent.

use std::sync::Arc;
use std::time::Duration;

use imbridge_kafka::Producer;
use imbridge_kafka::producer::Outgoing;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Spool, State};

/// Most records produced in one window.
const WINDOW: usize = 500;
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where spooled records go: `topic`, or `old_side_topic` for records spooled under [`OLD_SIDE_KEY_PREFIX`]
/// (callbacks of an old IM app, which are the old side's events).
#[derive(Debug, Clone)]
pub struct Route {
    pub topic: String,
    pub old_side_topic: String,
}

/// Prefix of the spool key of a record bound for the old side's topic (not part of the Kafka key). A
/// conversation key never contains `>`, so a spool written before this prefix existed reads the same.
pub const OLD_SIDE_KEY_PREFIX: &str = "old-side>";

impl Route {
    /// The topic and Kafka key of a spooled record.
    fn of<'a>(&'a self, key: &'a str) -> (&'a str, &'a str) {
        match key.strip_prefix(OLD_SIDE_KEY_PREFIX) {
            Some(k) => (&self.old_side_topic, k),
            None => (&self.topic, key),
        }
    }
}

/// Produces spooled records where `route` says until `stop` fires. Returns when stopped.
pub async fn run(spool: Spool, producer: Producer, route: Route, stop: CancellationToken) {
    let state = spool.state().clone();
    state.delete_spent();
    let mut backoff = MIN_BACKOFF;
    loop {
        let notified = state.notify.notified();
        if state.wants_refill() {
            let s = state.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || s.refill()).await {
                warn!(error = %e, "spool: reading spilled records back failed");
            }
        }
        let window = state.window(WINDOW);
        if window.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = notified => continue,
            }
        }
        let produced = tokio::select! {
            _ = stop.cancelled() => return,
            n = produce(&state, &producer, &route, &window) => n,
        };
        if produced > 0 {
            state.acknowledge(produced);
            debug!(records = produced, "spooled records acknowledged by kafka");
        }
        if produced < window.len() {
            state.metrics.produce_failures.inc();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = MIN_BACKOFF;
        }
    }
}

/// Produces `window` in order; returns how many records from its start Kafka acknowledged.
async fn produce(state: &Arc<State>, producer: &Producer, route: &Route, window: &[super::Pending]) -> usize {
    let mut futs = Vec::with_capacity(window.len());
    for p in window {
        let (topic, key) = route.of(&p.key);
        match producer.enqueue(topic, Outgoing { key: key.as_bytes(), payload: &p.payload, headers: &[] }).await {
            Ok(f) => futs.push((topic, f)),
            Err(e) => {
                warn!(error = %e, seq = p.seq, "spool: kafka refused to enqueue a spooled record; retrying");
                break;
            }
        }
    }
    let mut ok = 0;
    for ((topic, f), p) in futs.into_iter().zip(window) {
        match Producer::await_delivery(topic, f).await {
            Ok(_) => ok += 1,
            Err(e) => {
                warn!(error = %e, seq = p.seq, pending = state.metrics.pending.get(),
                    "spool: kafka did not acknowledge a spooled record; producing again after a backoff");
                break;
            }
        }
    }
    ok
}

/// Waits until the spool is empty or `timeout` passed (shutdown: whatever is left stays on disk).
pub async fn drain(spool: &Spool, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while spool.pending() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = spool.pending();
    if left > 0 {
        info!(records = left, "spool: records left on disk for the next start");
    }
}
