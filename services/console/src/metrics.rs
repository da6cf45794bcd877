//! The console's own `/metrics`: what it reads from Kafka each round, as gauges Prometheus can alert on. No
//! service exports the DLQ's state or the parked conversations across all instances (each consumer knows only
//! the conversations it parked itself), so these are the numbers the "DLQ not empty" and "parked conversations"
//! alerts use. Labels are bounded: `group` takes only the consumer groups of the configuration (the two live
//! directions and the import phases), `result` two words.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::collect::Snapshot;

/// Gauges updated after every collection round.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// DLQ records no `imbridge dlq replay` or `drop` resolved yet.
    pub dlq_unresolved: IntGauge,
    /// Records retained on the DLQ topic (resolved ones included until retention removes them).
    pub dlq_depth: IntGauge,
    /// Conversations whose later events wait behind unresolved DLQ records.
    pub parked: IntGauge,
    /// Records behind, per configured consumer group (summed over its topic's partitions).
    pub lag: IntGaugeVec,
    /// Collection rounds, by `result` (`ok`, `kafka_error`: the Kafka gauges then keep the last good values).
    pub rounds: IntCounterVec,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let dlq_unresolved = IntGauge::with_opts(Opts::new(
            "imbridge_console_dlq_unresolved_records",
            "DLQ records not yet resolved by a replay or drop",
        ))?;
        let dlq_depth =
            IntGauge::with_opts(Opts::new("imbridge_console_dlq_depth_records", "records retained on the DLQ topic"))?;
        let parked = IntGauge::with_opts(Opts::new(
            "imbridge_console_parked_conversations",
            "conversations parked behind unresolved DLQ records",
        ))?;
        let lag = IntGaugeVec::new(
            Opts::new("imbridge_console_consumer_lag_records", "records behind per configured consumer group"),
            &["group"],
        )?;
        let rounds = IntCounterVec::new(
            Opts::new("imbridge_console_rounds_total", "collection rounds by whether Kafka could be read"),
            &["result"],
        )?;
        registry.register(Box::new(dlq_unresolved.clone()))?;
        registry.register(Box::new(dlq_depth.clone()))?;
        registry.register(Box::new(parked.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(rounds.clone()))?;
        Ok(Self { dlq_unresolved, dlq_depth, parked, lag, rounds })
    }

    /// Sets the gauges from one round's snapshot. A round that could not read Kafka leaves them at the last
    /// good values (and counts itself in `rounds_total{result="kafka_error"}`; `/readyz` then says so).
    pub fn observe(&self, snap: &Snapshot) {
        if snap.kafka_error.is_some() {
            self.rounds.with_label_values(&["kafka_error"]).inc();
            return;
        }
        self.rounds.with_label_values(&["ok"]).inc();
        self.dlq_unresolved.set(i64::try_from(snap.dlq.unresolved).unwrap_or(i64::MAX));
        self.dlq_depth.set(snap.dlq.depth);
        self.parked.set(i64::try_from(snap.dlq.parked.len()).unwrap_or(i64::MAX));
        let mut by_group: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for g in &snap.groups {
            *by_group.entry(g.group.as_str()).or_default() += g.lag;
        }
        for (group, lag) in by_group {
            self.lag.with_label_values(&[group]).set(lag);
        }
    }
}
