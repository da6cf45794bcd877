//! The live apply's metrics, in one place, on the service's registry. Labels are bounded: `kind` is an event
//! kind's wire name, `outcome` and `result` are the fixed words documented on each field.

use imbridge_telemetry::buckets::{APPLY_SECONDS as LATENCY_BUCKETS, END_TO_END_SECONDS as E2E_BUCKETS};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters, gauges and histograms of the live apply.
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    /// Events finished by kind and outcome: `applied` (IM call made), `skipped` (already in the ledger),
    /// `recovered` (found in IM's history after a crash, recorded without sending), `dead_letter`.
    pub events: IntCounterVec,
    /// Attempts that asked for a retry, by kind (a retry is not a failure: counted apart).
    pub retries: IntCounterVec,
    /// Duration of the IM call(s) of one successful apply, by kind.
    pub apply_seconds: HistogramVec,
    /// Event time on the source → applied to IM, by kind.
    pub end_to_end_seconds: HistogramVec,
    /// Events skipped because the ledger already had them (same as `events{outcome="skipped"}`, kept as a
    /// dedicated counter for dashboards and alerts).
    pub ledger_skips: IntCounter,
    /// An old IM app's messages sent ahead of earlier records of their lane (see `reorder`).
    pub reordered: IntCounter,
    /// Ledger entries known for the assigned partitions.
    pub ledger_entries: IntGauge,
    /// Time to load one partition's ledger on assignment.
    pub ledger_load_seconds: Histogram,
    /// Post-crash history checks, by result: `found` (already in IM), `absent`.
    pub crash_checks: IntCounterVec,
    /// Events that had to wait for their conversation's history import.
    pub history_waits: IntCounter,
    /// How long those events waited.
    pub history_wait_seconds: Histogram,
    /// Events waiting for history right now.
    pub waiting_for_history: IntGauge,
    /// Accounts imported on first sight (unknown to IM when a live event named them).
    pub accounts_imported: IntCounter,
    /// Partitions of the source topic assigned to this instance.
    pub assigned_partitions: IntGauge,
}

impl LiveMetrics {
    /// The applier's own counters, which are these.
    pub fn apply_metrics(&self) -> imbridge_im::apply::ApplyMetrics {
        imbridge_im::apply::ApplyMetrics {
            crash_checks: self.crash_checks.clone(),
            accounts_imported: self.accounts_imported.clone(),
        }
    }

    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new("imbridge_to_im_events_total", "live events finished by kind and outcome"),
            &["kind", "outcome"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new("imbridge_to_im_apply_retries_total", "apply attempts asking for a retry"),
            &["kind"],
        )?;
        let apply_seconds = HistogramVec::new(
            HistogramOpts::new("imbridge_to_im_apply_seconds", "IM call time of one applied event")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let end_to_end_seconds = HistogramVec::new(
            HistogramOpts::new("imbridge_to_im_end_to_end_seconds", "event time on the source to applied on IM")
                .buckets(E2E_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let ledger_skips =
            IntCounter::new("imbridge_to_im_ledger_skips_total", "events skipped: already applied per the ledger")?;
        let reordered = IntCounter::new(
            "imbridge_to_im_reordered_total",
            "old IM app messages sent ahead of records that reached Kafka before them (its order, not arrival)",
        )?;
        let ledger_entries = IntGauge::new("imbridge_to_im_ledger_entries", "ledger entries of assigned partitions")?;
        let ledger_load_seconds = Histogram::with_opts(
            HistogramOpts::new("imbridge_to_im_ledger_load_seconds", "time to load one partition's ledger")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let crash_checks = IntCounterVec::new(
            Opts::new("imbridge_to_im_crash_checks_total", "history checks of a resumed conversation's first event"),
            &["result"],
        )?;
        let history_waits =
            IntCounter::new("imbridge_to_im_history_waits_total", "events that waited for their history import")?;
        let history_wait_seconds = Histogram::with_opts(
            HistogramOpts::new("imbridge_to_im_history_wait_seconds", "time an event waited for its history import")
                .buckets(E2E_BUCKETS.to_vec()),
        )?;
        let waiting_for_history =
            IntGauge::new("imbridge_to_im_waiting_for_history", "events waiting for their history import now")?;
        let accounts_imported =
            IntCounter::new("imbridge_to_im_accounts_imported_total", "accounts imported on first sight")?;
        let assigned_partitions =
            IntGauge::new("imbridge_to_im_assigned_partitions", "source partitions assigned to this instance")?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(apply_seconds.clone()))?;
        registry.register(Box::new(end_to_end_seconds.clone()))?;
        registry.register(Box::new(ledger_skips.clone()))?;
        registry.register(Box::new(reordered.clone()))?;
        registry.register(Box::new(ledger_entries.clone()))?;
        registry.register(Box::new(ledger_load_seconds.clone()))?;
        registry.register(Box::new(crash_checks.clone()))?;
        registry.register(Box::new(history_waits.clone()))?;
        registry.register(Box::new(history_wait_seconds.clone()))?;
        registry.register(Box::new(waiting_for_history.clone()))?;
        registry.register(Box::new(accounts_imported.clone()))?;
        registry.register(Box::new(assigned_partitions.clone()))?;
        Ok(Self {
            events,
            retries,
            apply_seconds,
            end_to_end_seconds,
            ledger_skips,
            reordered,
            ledger_entries,
            ledger_load_seconds,
            crash_checks,
            history_waits,
            history_wait_seconds,
            waiting_for_history,
            accounts_imported,
            assigned_partitions,
        })
    }

    /// Metrics on a private registry (tests).
    pub fn unregistered() -> Self {
        // A fresh registry cannot already hold these names.
        Self::new(&Registry::new()).unwrap_or_else(|_| unreachable!("fresh registry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coexists_with_the_consumer_and_im_metrics_on_one_registry() {
        let r = Registry::new();
        imbridge_kafka::metrics::ConsumerMetrics::new(&r, "to_im").expect("consumer metrics");
        imbridge_im::Metrics::new(&r).expect("im metrics");
        LiveMetrics::new(&r).expect("live metrics register beside them");
    }
}
