//! The reconciler's metrics, on the registry it is given. Labels are the bounded [`Kind`], [`Difference`],
//! trigger and outage-cause names only, never a conversation.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::report::{Difference, Report};

/// What made a pass run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `imbridge reconcile --once`.
    Once,
    /// Conversations with events, a delay after their last one.
    Activity,
    /// The recent window, when the service starts (what a previous process had pending is not known).
    Startup,
    /// Everything touched in an ingest outage.
    Outage,
    /// Conversations reconcile repaired, checked again.
    Verify,
    /// Everything.
    Sweep,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Once => "once",
            Trigger::Activity => "activity",
            Trigger::Startup => "startup",
            Trigger::Outage => "outage",
            Trigger::Verify => "verify",
            Trigger::Sweep => "sweep",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    conversations: IntCounterVec,
    identical_by_digest: IntCounter,
    differences: IntCounterVec,
    repaired: IntCounterVec,
    im_calls: IntCounterVec,
    passes: IntCounterVec,
    errors: IntCounter,
    /// Seconds from a difference first found to a check that no longer finds it.
    pub repair_seconds: Histogram,
    /// Differences found and not seen gone yet.
    pub open_differences: IntGauge,
    /// Conversations waiting for their activity check.
    pub pending: IntGauge,
    /// Outage windows detected from ingest's heartbeats, by cause.
    pub outages: IntCounterVec,
    /// When the last sweep finished (Unix seconds) and how long it took.
    pub last_sweep_timestamp: IntGauge,
    pub last_sweep_duration: IntGauge,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let conversations = IntCounterVec::new(
            Opts::new(
                "imbridge_reconcile_conversations_checked_total",
                "conversations and groups compared between legacy and IM, by trigger",
            ),
            &["trigger"],
        )?;
        let identical_by_digest = IntCounter::new(
            "imbridge_reconcile_identical_by_digest_total",
            "conversations found identical from cheap digests alone, not read in full",
        )?;
        let differences = IntCounterVec::new(
            Opts::new("imbridge_reconcile_differences_total", "differences found, by kind and difference"),
            &["kind", "difference"],
        )?;
        let repaired = IntCounterVec::new(
            Opts::new("imbridge_reconcile_repaired_total", "differences turned into pipeline events, by kind"),
            &["kind"],
        )?;
        let im_calls = IntCounterVec::new(
            Opts::new("imbridge_reconcile_im_calls_total", "IM REST requests made by reconciliation, by trigger"),
            &["trigger"],
        )?;
        let passes = IntCounterVec::new(
            Opts::new("imbridge_reconcile_passes_total", "reconciliation passes completed, by trigger"),
            &["trigger"],
        )?;
        let errors = IntCounter::new(
            "imbridge_reconcile_errors_total",
            "conversations that could not be compared (a side did not answer)",
        )?;
        let repair_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "imbridge_reconcile_repair_seconds",
                "time from a difference first found to the first check that no longer finds it",
            )
            .buckets(vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0]),
        )?;
        let open_differences =
            IntGauge::new("imbridge_reconcile_open_differences", "differences found and not seen gone yet")?;
        let pending = IntGauge::new("imbridge_reconcile_pending_conversations", "conversations waiting for a check")?;
        let outages = IntCounterVec::new(
            Opts::new("imbridge_reconcile_outages_total", "ingest outage windows detected from heartbeats, by cause"),
            &["cause"],
        )?;
        let last_sweep_timestamp = IntGauge::new(
            "imbridge_reconcile_last_sweep_timestamp_seconds",
            "when this instance's last full sweep finished (Unix seconds; 0: none yet)",
        )?;
        let last_sweep_duration =
            IntGauge::new("imbridge_reconcile_last_sweep_duration_seconds", "how long the last full sweep took")?;
        registry.register(Box::new(conversations.clone()))?;
        registry.register(Box::new(identical_by_digest.clone()))?;
        registry.register(Box::new(differences.clone()))?;
        registry.register(Box::new(repaired.clone()))?;
        registry.register(Box::new(im_calls.clone()))?;
        registry.register(Box::new(passes.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(repair_seconds.clone()))?;
        registry.register(Box::new(open_differences.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(outages.clone()))?;
        registry.register(Box::new(last_sweep_timestamp.clone()))?;
        registry.register(Box::new(last_sweep_duration.clone()))?;
        Ok(Self {
            conversations,
            identical_by_digest,
            differences,
            repaired,
            im_calls,
            passes,
            errors,
            repair_seconds,
            open_differences,
            pending,
            outages,
            last_sweep_timestamp,
            last_sweep_duration,
        })
    }

    /// Adds one finished pass.
    pub fn record(&self, trigger: Trigger, report: &Report) {
        let t = trigger.as_str();
        self.passes.with_label_values(&[t]).inc();
        self.conversations.with_label_values(&[t]).inc_by(report.conversations_checked);
        self.im_calls.with_label_values(&[t]).inc_by(report.im_calls);
        self.identical_by_digest.inc_by(report.identical_by_digest);
        self.errors.inc_by(report.errors.len() as u64);
        for (kind, row) in &report.kinds {
            let k = kind.as_str();
            for (d, n) in [
                (Difference::MissingInIm, row.missing_in_im),
                (Difference::MissingInLegacy, row.missing_in_legacy),
                (Difference::Different, row.different),
                (Difference::Order, row.out_of_order),
            ] {
                if n > 0 {
                    self.differences.with_label_values(&[k, d.as_str()]).inc_by(n);
                }
            }
            if row.repaired > 0 {
                self.repaired.with_label_values(&[k]).inc_by(row.repaired);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::report::{Kind, Row};

    #[test]
    fn a_pass_is_counted_by_bounded_labels() {
        let registry = Registry::new();
        let m = Metrics::new(&registry).expect("metrics");
        let mut r = Report { conversations_checked: 3, identical_by_digest: 1, im_calls: 7, ..Report::default() };
        *r.row(Kind::C2cMessages) =
            Row { checked: 4, identical: 2, missing_in_im: 1, missing_in_legacy: 1, repaired: 2, ..Row::default() };
        *r.row(Kind::GroupMembers) = Row { checked: 3, identical: 2, missing_in_legacy: 1, ..Row::default() };
        m.record(Trigger::Sweep, &r);
        m.record(Trigger::Sweep, &r);
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out).expect("encode");
        let text = String::from_utf8(out).expect("utf8");
        for line in [
            r#"imbridge_reconcile_conversations_checked_total{trigger="sweep"} 6"#,
            r#"imbridge_reconcile_im_calls_total{trigger="sweep"} 14"#,
            r#"imbridge_reconcile_passes_total{trigger="sweep"} 2"#,
            "imbridge_reconcile_identical_by_digest_total 2",
            r#"imbridge_reconcile_differences_total{difference="missing_in_im",kind="c2c_messages"} 2"#,
            r#"imbridge_reconcile_differences_total{difference="missing_in_legacy",kind="group_members"} 2"#,
            r#"imbridge_reconcile_repaired_total{kind="c2c_messages"} 4"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains(r#"kind="group_members"} 0"#), "kinds without differences are not exported as zero");
    }
}
