//! The reconciler's metrics, on the registry it is given. Labels are the bounded [`Kind`] and [`Difference`]
//! names only, never a conversation.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::report::{Difference, Report};

#[derive(Debug, Clone)]
pub struct Metrics {
    conversations: IntCounter,
    differences: IntCounterVec,
    repaired: IntCounterVec,
    im_calls: IntCounter,
    passes: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let conversations = IntCounter::new(
            "imbridge_reconcile_conversations_checked_total",
            "conversations and groups compared between legacy and IM",
        )?;
        let differences = IntCounterVec::new(
            Opts::new("imbridge_reconcile_differences_total", "differences found, by kind and difference"),
            &["kind", "difference"],
        )?;
        let repaired = IntCounterVec::new(
            Opts::new("imbridge_reconcile_repaired_total", "differences turned into pipeline events, by kind"),
            &["kind"],
        )?;
        let im_calls = IntCounter::new("imbridge_reconcile_im_calls_total", "IM REST requests made by reconciliation")?;
        let passes = IntCounter::new("imbridge_reconcile_passes_total", "reconciliation passes completed")?;
        registry.register(Box::new(conversations.clone()))?;
        registry.register(Box::new(differences.clone()))?;
        registry.register(Box::new(repaired.clone()))?;
        registry.register(Box::new(im_calls.clone()))?;
        registry.register(Box::new(passes.clone()))?;
        Ok(Self { conversations, differences, repaired, im_calls, passes })
    }

    /// Adds one finished pass.
    pub fn record(&self, report: &Report) {
        self.passes.inc();
        self.conversations.inc_by(report.conversations_checked);
        self.im_calls.inc_by(report.im_calls);
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
        let mut r = Report { conversations_checked: 3, im_calls: 7, ..Report::default() };
        *r.row(Kind::C2cMessages) =
            Row { checked: 4, identical: 2, missing_in_im: 1, missing_in_legacy: 1, repaired: 2, ..Row::default() };
        *r.row(Kind::GroupMembers) = Row { checked: 3, identical: 2, missing_in_legacy: 1, ..Row::default() };
        m.record(&r);
        m.record(&r);
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out).expect("encode");
        let text = String::from_utf8(out).expect("utf8");
        for line in [
            "imbridge_reconcile_conversations_checked_total 6",
            "imbridge_reconcile_im_calls_total 14",
            "imbridge_reconcile_passes_total 2",
            r#"imbridge_reconcile_differences_total{difference="missing_in_im",kind="c2c_messages"} 2"#,
            r#"imbridge_reconcile_differences_total{difference="missing_in_legacy",kind="group_members"} 2"#,
            r#"imbridge_reconcile_repaired_total{kind="c2c_messages"} 4"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains(r#"kind="group_members"} 0"#), "kinds without differences are not exported as zero");
    }
}
