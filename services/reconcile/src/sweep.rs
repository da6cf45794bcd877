//! The summary of a finished sweep, kept on the compacted `imbridge.status` topic (key
//! `reconcile:sweep:<group>:<instance>`) so `imbridge status` can show the last sweep of every instance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use imbridge_core::TimestampMs;
use imbridge_core::status::SWEEP_KEY_PREFIX;
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::reader::{Start, read_range};
use serde::{Deserialize, Serialize};

use crate::error::ReconcileError;
use crate::report::{Kind, Report, Row};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub group: String,
    pub instance: String,
    pub started_at: TimestampMs,
    pub finished_at: TimestampMs,
    /// The event-topic partitions whose conversations this instance swept, of `partitions_total`.
    pub partitions: Vec<i32>,
    pub partitions_total: i32,
    pub conversations_checked: u64,
    pub identical_by_digest: u64,
    pub differences: u64,
    pub repaired: u64,
    pub errors: u64,
    pub im_calls: u64,
    pub kinds: BTreeMap<Kind, Row>,
}

impl SweepSummary {
    pub fn key(&self) -> String {
        format!("{SWEEP_KEY_PREFIX}{}:{}", self.group, self.instance)
    }

    pub fn from_report(
        group: &str,
        instance: &str,
        started_at: TimestampMs,
        partitions: Vec<i32>,
        partitions_total: i32,
        r: &Report,
    ) -> Self {
        Self {
            group: group.to_owned(),
            instance: instance.to_owned(),
            started_at,
            finished_at: TimestampMs::now(),
            partitions,
            partitions_total,
            conversations_checked: r.conversations_checked,
            identical_by_digest: r.identical_by_digest,
            differences: r.differences(),
            repaired: r.repaired(),
            errors: r.errors.len() as u64,
            im_calls: r.im_calls,
            kinds: r.kinds.clone(),
        }
    }
}

/// The latest sweep summary of every reconcile instance recorded on `topic`, oldest sweep first. A missing
/// topic means no sweep ran yet.
pub async fn last_sweeps(kafka: &KafkaConfig, topic: &str) -> Result<Vec<SweepSummary>, ReconcileError> {
    let latest: Arc<Mutex<BTreeMap<String, SweepSummary>>> = Arc::default();
    let sink = latest.clone();
    let read = read_range(kafka, topic, None, Start::Earliest, move |r| {
        if r.key_str().is_some_and(|k| k.starts_with(SWEEP_KEY_PREFIX))
            && let Some(s) = r.payload.as_deref().and_then(|p| serde_json::from_slice::<SweepSummary>(p).ok())
        {
            sink.lock().unwrap_or_else(|p| p.into_inner()).insert(s.key(), s);
        }
        true
    })
    .await;
    match read {
        Ok(_) => {}
        Err(imbridge_kafka::KafkaError::Topic { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    let mut out: Vec<SweepSummary> = latest.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    out.sort_by_key(|s| s.finished_at.0);
    Ok(out)
}

/// The sweeps as a text section for `imbridge status`.
pub fn render(sweeps: &[SweepSummary]) -> String {
    let mut s = String::from("\nreconcile: last sweep per instance\n");
    if sweeps.is_empty() {
        s.push_str("  none yet (`imbridge reconcile` records one after each full sweep)\n");
        return s;
    }
    let _ = writeln!(
        s,
        "  {:<20} {:<22} {:>10} {:>9} {:>9} {:>9} {:>11} {:>8} {:>8}  partitions",
        "group", "instance", "finished", "took_secs", "checked", "by_digest", "differences", "repaired", "im_calls",
    );
    let now = TimestampMs::now().0;
    for w in sweeps {
        let _ = writeln!(
            s,
            "  {:<20} {:<22} {:>10} {:>9} {:>9} {:>9} {:>11} {:>8} {:>8}  {}/{}",
            w.group,
            w.instance,
            format!("{}s ago", (now - w.finished_at.0).max(0) / 1000),
            (w.finished_at.0 - w.started_at.0).max(0) / 1000,
            w.conversations_checked,
            w.identical_by_digest,
            w.differences,
            w.repaired,
            w.im_calls,
            w.partitions.len(),
            w.partitions_total
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips() {
        let mut r = Report { conversations_checked: 4, identical_by_digest: 3, im_calls: 9, ..Report::default() };
        r.row(Kind::C2cMessages).missing_in_im = 1;
        let s = SweepSummary::from_report("g", "i", TimestampMs(1), vec![0, 2], 3, &r);
        assert_eq!(s.key(), "reconcile:sweep:g:i");
        assert_eq!(s.differences, 1);
        let back: SweepSummary = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        assert_eq!(back, s);
        let text = render(&[s]);
        assert!(text.contains("reconcile: last sweep") && text.contains("2/3"), "{text}");
        assert!(render(&[]).contains("none yet"));
    }
}
