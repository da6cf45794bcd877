//! Ingest's metrics, on the registry the service was given. Every label comes from a bounded set: the source
//! (`legacy`, `im`), the event kind, the endpoint, the status code, and fixed reason words — never an id.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Counters and timings of one ingest service.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Events accepted, by `source` and `kind`: legacy ones acknowledged by Kafka, IM ones fsynced in the spool
    /// (the spool's own metrics say when Kafka took them).
    pub events: IntCounterVec,
    /// Requests (or events inside an accepted request) refused, by `source` and `reason`.
    pub rejected: IntCounterVec,
    /// Echoes of imbridge's own writes dropped, by `source` and `reason` (`origin`, `operator`, `origin_marker`).
    pub echoes: IntCounterVec,
    /// Valid callbacks that carry nothing to sync, by `reason` (`unconsumed_command`, `read_report`, …).
    pub ignored: IntCounterVec,
    /// Time from handing events to the producer to Kafka's acknowledgement, by `source` and `outcome`.
    pub produce_seconds: HistogramVec,
    /// Answers by `endpoint` (`legacy`, `im`) and HTTP `status`.
    pub requests: IntCounterVec,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "imbridge_ingest_events_total",
                "events accepted (legacy: acknowledged by kafka; im: spooled), by source and kind",
            ),
            &["source", "kind"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new("imbridge_ingest_rejected_total", "requests refused, by source and reason"),
            &["source", "reason"],
        )?;
        let echoes = IntCounterVec::new(
            Opts::new("imbridge_ingest_echoes_dropped_total", "echoes of imbridge's own writes dropped"),
            &["source", "reason"],
        )?;
        let ignored = IntCounterVec::new(
            Opts::new("imbridge_ingest_callbacks_ignored_total", "valid callbacks with nothing to sync, by reason"),
            &["reason"],
        )?;
        let produce_seconds = HistogramVec::new(
            HistogramOpts::new("imbridge_ingest_produce_seconds", "events handed to kafka until acknowledged")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["source", "outcome"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new("imbridge_ingest_requests_total", "answers by endpoint and http status"),
            &["endpoint", "status"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(echoes.clone()))?;
        registry.register(Box::new(ignored.clone()))?;
        registry.register(Box::new(produce_seconds.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        Ok(Self { events, rejected, echoes, ignored, produce_seconds, requests })
    }
}
