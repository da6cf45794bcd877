//! to-legacy's own metrics, beside the consumer runner's (`imbridge_to_legacy_records_total`, `…_retries_total`,
//! `…_consumer_lag`, `…_parked_conversations`, registered by `imbridge-kafka`) and the apply client's
//! (`imbridge_legacy_apply_requests_total`). Labels are bounded: event kinds, outcome words, error kinds built from
//! HTTP status codes.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and timings of one to-legacy service.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Events finished, by `kind` and `outcome` (`applied`, `duplicate`, `rejected`, `malformed`).
    pub events: IntCounterVec,
    /// One apply (a batch, retries inside the call included), by `outcome` (`applied`, `duplicate`,
    /// `rejected`, `retry`).
    pub apply_seconds: HistogramVec,
    /// Event time on IM → applied on legacy, by `kind`.
    pub end_to_end_seconds: HistogramVec,
    /// Transient failures retried, by `reason` (`legacy_http_503`, `legacy_timeout`, …).
    pub retries: IntCounterVec,
    /// Events per apply request.
    pub batch_events: Histogram,
    /// Group seq gaps seen (each counted once, whether a late callback or a fill from IM closed it).
    pub gaps_detected: IntCounter,
    /// Gaps still open after `order.gap_wait_ms` and read from IM.
    pub gaps_filled: IntCounter,
    /// Seqs of filled gaps, by `outcome`: `filled` (applied from IM's history) or `skipped` (a notice, a hole,
    /// an echo, or not in IM's history).
    pub gap_messages: IntCounterVec,
    /// Events the resequencer finished without applying, by `reason`: `duplicate` (a seq already applied, a
    /// callback delivered twice), `stale` (every change in it is older than one already applied) or `after_dismissal` (the
    /// old side refused it after the group's dismissal was applied: the group is gone on both sides).
    pub resequenced: IntCounterVec,
    /// Refusals of an event of a group to-legacy never applied anything to, held for the group's creation
    /// instead of dead-lettered (counted each time the held event is refused again).
    pub unknown_group_holds: IntCounter,
    /// The adaptive reorder window now in force (`order.reorder_window_min_ms` … `reorder_window_ms`).
    pub reorder_window_ms: IntGauge,
    /// When the old side is an IM app: history lookups before a message is sent to it, by result (`found`:
    /// already there, not sent again; `absent`).
    pub history_checks: IntCounterVec,
    /// When the old side is an IM app: accounts of the new app imported into the old one on first sight.
    pub accounts_imported: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new("imbridge_to_legacy_events_total", "events finished by kind and outcome"),
            &["kind", "outcome"],
        )?;
        let apply_seconds = HistogramVec::new(
            HistogramOpts::new("imbridge_to_legacy_apply_seconds", "one batch apply, retries inside the call included")
                .buckets(imbridge_telemetry::buckets::APPLY_SECONDS.to_vec()),
            &["outcome"],
        )?;
        let end_to_end_seconds = HistogramVec::new(
            HistogramOpts::new("imbridge_to_legacy_end_to_end_seconds", "event time on IM to applied on legacy")
                .buckets(imbridge_telemetry::buckets::END_TO_END_SECONDS.to_vec()),
            &["kind"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new("imbridge_to_legacy_apply_retries_total", "transient apply failures retried, by reason"),
            &["reason"],
        )?;
        let batch_events = Histogram::with_opts(
            HistogramOpts::new("imbridge_to_legacy_batch_events", "events per apply request")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
        )?;
        let gaps_detected =
            IntCounter::new("imbridge_to_legacy_gaps_detected_total", "group seq gaps seen, each counted once")?;
        let gaps_filled = IntCounter::new("imbridge_to_legacy_gaps_filled_total", "group seq gaps read from IM")?;
        let gap_messages = IntCounterVec::new(
            Opts::new("imbridge_to_legacy_gap_messages_total", "seqs of filled gaps, filled or skipped"),
            &["outcome"],
        )?;
        let unknown_group_holds = IntCounter::new(
            "imbridge_to_legacy_unknown_group_holds_total",
            "refusals held for the creation of a group imbridge never applied anything to",
        )?;
        registry.register(Box::new(unknown_group_holds.clone()))?;
        let resequenced = IntCounterVec::new(
            Opts::new("imbridge_to_legacy_resequenced_total", "events finished without applying, by reason"),
            &["reason"],
        )?;
        let reorder_window_ms = IntGauge::new(
            "imbridge_to_legacy_reorder_window_ms",
            "how long 1:1 messages and group changes are held now (adaptive, from IM's delivery spread)",
        )?;
        registry.register(Box::new(reorder_window_ms.clone()))?;
        let history_checks = IntCounterVec::new(
            Opts::new("imbridge_to_legacy_history_checks_total", "old IM app history lookups before a send"),
            &["result"],
        )?;
        let accounts_imported = IntCounter::new(
            "imbridge_to_legacy_accounts_imported_total",
            "accounts imported into the old IM app on first sight",
        )?;
        registry.register(Box::new(history_checks.clone()))?;
        registry.register(Box::new(accounts_imported.clone()))?;
        registry.register(Box::new(gaps_detected.clone()))?;
        registry.register(Box::new(gaps_filled.clone()))?;
        registry.register(Box::new(gap_messages.clone()))?;
        registry.register(Box::new(resequenced.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(apply_seconds.clone()))?;
        registry.register(Box::new(end_to_end_seconds.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(batch_events.clone()))?;
        Ok(Self {
            events,
            apply_seconds,
            end_to_end_seconds,
            retries,
            batch_events,
            gaps_detected,
            gaps_filled,
            gap_messages,
            resequenced,
            unknown_group_holds,
            reorder_window_ms,
            history_checks,
            accounts_imported,
        })
    }

    /// The counters of the IM applier, when the old side is an IM app.
    pub fn apply(&self) -> imbridge_im::apply::ApplyMetrics {
        imbridge_im::apply::ApplyMetrics {
            crash_checks: self.history_checks.clone(),
            accounts_imported: self.accounts_imported.clone(),
        }
    }
}
