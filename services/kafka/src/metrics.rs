//! Consumer-runner metrics, registered on the service's registry under the service's name
//! (`imbridge_<part>_…`). Labels are bounded: outcome names, topic names from configuration, partitions.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Counters and gauges of one ordered consumer.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    /// Records finished, by outcome: `done`, `dead_letter`, `parked`, `malformed`.
    pub records: IntCounterVec,
    /// Handler attempts that asked for a retry (a retry is not a drop: counted apart from outcomes).
    pub retries: IntCounter,
    /// Handler answers that asked to wait for records not yet arrived (a resequencer holding a gap open).
    pub waits: IntCounter,
    /// Handler duration per attempt.
    pub handle_seconds: Histogram,
    /// Records received and not yet finished.
    pub in_flight: IntGauge,
    /// Time the poll loop waited because lanes or the in-flight bound were full.
    pub backpressure_seconds: prometheus::Counter,
    /// Conversations with a dead-lettered event whose later events are being parked.
    pub parked_conversations: IntGauge,
    /// Committed-position lag per partition (high watermark − stored position), refreshed periodically.
    pub lag: IntGaugeVec,
    /// Rebalance events by kind (`assign`, `revoke`).
    pub rebalances: IntCounterVec,
    /// End-to-end latency from the record's timestamp to its finish.
    pub record_age_seconds: HistogramVec,
}

impl ConsumerMetrics {
    pub fn new(registry: &Registry, part: &str) -> Result<Self, prometheus::Error> {
        let p = |n: &str| format!("imbridge_{part}_{n}");
        let records = IntCounterVec::new(Opts::new(p("records_total"), "records finished by outcome"), &["outcome"])?;
        let retries = IntCounter::new(p("retries_total"), "handler attempts that asked for a retry")?;
        let waits = IntCounter::new(p("waits_total"), "handler answers waiting for records not yet arrived")?;
        let handle_seconds = Histogram::with_opts(
            HistogramOpts::new(p("handle_seconds"), "handler duration per attempt")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )?;
        let in_flight = IntGauge::new(p("in_flight"), "records received and not yet finished")?;
        let backpressure_seconds =
            prometheus::Counter::new(p("backpressure_wait_seconds_total"), "time the poll loop waited on full lanes")?;
        let parked_conversations =
            IntGauge::new(p("parked_conversations"), "conversations parked behind a dead-lettered event")?;
        let lag =
            IntGaugeVec::new(Opts::new(p("consumer_lag"), "records behind per partition"), &["topic", "partition"])?;
        let rebalances = IntCounterVec::new(Opts::new(p("rebalances_total"), "rebalance callbacks"), &["kind"])?;
        let record_age_seconds = HistogramVec::new(
            HistogramOpts::new(p("record_age_seconds"), "record timestamp to finish")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["outcome"],
        )?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(waits.clone()))?;
        registry.register(Box::new(handle_seconds.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(backpressure_seconds.clone()))?;
        registry.register(Box::new(parked_conversations.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(rebalances.clone()))?;
        registry.register(Box::new(record_age_seconds.clone()))?;
        Ok(Self {
            records,
            retries,
            waits,
            handle_seconds,
            in_flight,
            backpressure_seconds,
            parked_conversations,
            lag,
            rebalances,
            record_age_seconds,
        })
    }

    /// Metrics on a private registry, for tests and benchmarks that do not expose them.
    pub fn unregistered(part: &str) -> Self {
        // A fresh registry cannot already hold these names, so registration cannot fail.
        Self::new(&Registry::new(), part).unwrap_or_else(|_| unreachable!("fresh registry"))
    }
}
