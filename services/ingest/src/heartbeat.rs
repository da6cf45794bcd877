//! ingest's heartbeat on `imbridge.status`: how reconciliation learns that IM callbacks may have been lost.
//!
//! IM sends each callback once. One that reaches no running ingest (killed, restarting, unreachable) or that
//! ingest must refuse (spool full) is gone, and only reconciliation can find what it carried. So every
//! `heartbeat_interval_ms` ingest writes an [`IngestBeat`] (key `ingest:<instance>`) and records the time in
//! `<spool_dir>/heartbeat`. A process that finds that file at start reports the previous beat as `down_since`:
//! the instance was down from then until it started. Cumulative counters of refused callbacks and failed Kafka
//! writes tell the reader about degraded periods; a gap between beats tells it about Kafka being away (beats
//! could not be written) or a process that died without a successor.

use std::path::{Path, PathBuf};

use prometheus::core::Collector as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imbridge_core::TimestampMs;
use imbridge_core::status::IngestBeat;
use imbridge_kafka::Producer;
use imbridge_kafka::producer::Outgoing;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::server::Shared;

const BEAT_FILE: &str = "heartbeat";

/// The time of the last beat a previous process recorded in `dir`, if any.
pub fn previous_beat(dir: &Path) -> Option<TimestampMs> {
    let text = std::fs::read_to_string(dir.join(BEAT_FILE)).ok()?;
    text.trim().parse::<i64>().ok().map(TimestampMs)
}

fn record_beat(path: &PathBuf, at: TimestampMs) {
    // Not fsynced: losing the last second of it after a power cut only makes the reported outage shorter by
    // one interval, and the margin reconcile adds covers that.
    if let Err(e) = std::fs::write(path, at.0.to_string()) {
        warn!(path = %path.display(), error = %e, "cannot record the heartbeat time");
    }
}

/// Cumulative counts since this process started, read from the service's own metrics.
fn counters(state: &Shared, beat_failures: u64) -> (u64, u64) {
    let refused: u64 = state
        .metrics
        .requests
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            let label = |n: &str| m.get_label().iter().find(|l| l.name() == n).map(|l| l.value().to_owned());
            label("endpoint").as_deref() == Some("im") && label("status").is_some_and(|s| s.starts_with('5'))
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    let webhook_failures = imbridge_telemetry::counter_sum(&state.metrics.rejected, "reason", "kafka_unavailable");
    (refused, webhook_failures + state.spool.produce_failures() + beat_failures)
}

/// Beats every `every` until `shutdown`.
pub(crate) async fn run(
    state: Arc<Shared>,
    producer: Producer,
    topic: String,
    instance: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    let path = state.spool.dir().join(BEAT_FILE);
    let down_since = previous_beat(state.spool.dir());
    let started_at = TimestampMs::now();
    if let Some(t) = down_since {
        info!(instance = %instance, down_since = t.0, "ingest was down since its previous beat");
    }
    let failures = AtomicU64::new(0);
    let key = IngestBeat::key(&instance);
    loop {
        let at = TimestampMs::now();
        record_beat(&path, at);
        let (callbacks_refused, kafka_failures) = counters(&state, failures.load(Ordering::Relaxed));
        let beat =
            IngestBeat { instance: instance.clone(), at, started_at, down_since, callbacks_refused, kafka_failures };
        let payload = serde_json::to_vec(&beat).unwrap_or_default();
        let send = producer.send(&topic, Outgoing { key: key.as_bytes(), payload: &payload, headers: &[] });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(every, send) => match r {
                Ok(Ok(_)) => debug!(instance = %instance, "heartbeat written"),
                Ok(Err(e)) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "cannot write the heartbeat");
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    warn!("heartbeat not acknowledged in time");
                }
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_beat_reads_what_was_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(previous_beat(dir.path()), None);
        record_beat(&dir.path().join(BEAT_FILE), TimestampMs(1234));
        assert_eq!(previous_beat(dir.path()), Some(TimestampMs(1234)));
    }
}
