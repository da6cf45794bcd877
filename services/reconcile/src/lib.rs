//! Reconciliation: find every difference between legacy and IM, and repair it through the pipeline.
//!
//! - [`reconciler`]: one pass ([`Reconciler::reconcile_once`]): choose conversations (legacy digests + IM
//!   conversation lists, or the ones asked for), read both sides, compare, produce repair events;
//! - [`compare`]: the cross-system identity of a message and the pure comparison of one conversation;
//! - [`report`]: the per-kind table and the JSON report;
//! - [`config`] (`[reconcile]`), [`metrics`] (`imbridge_reconcile_*`), [`error`].
//!
//! Repairs are ordinary events on the ordinary topics (legacy-origin on `imbridge.legacy.events` for what IM
//! lacks, IM-origin on `imbridge.im.events` for what legacy lacks) with `imbridge.origin: reconcile` and the
//! evidence in headers; to-im and to-legacy apply them in conversation order and idempotently. Never a
//! direct write.

pub mod compare;
pub mod config;
pub mod error;
pub mod metrics;
pub mod reconciler;
pub mod report;

use std::time::Duration;

use imbridge_core::TimestampMs;
use tokio_util::sync::CancellationToken;

pub use config::ReconcileConfig;
pub use error::ReconcileError;
pub use metrics::Metrics;
pub use reconciler::{Reconciler, Scope};
pub use report::{Difference, Kind, Report, Row};

/// Service mode: a pass over the last `window_secs` every `interval_secs` until `shutdown`. Each pass is
/// logged and counted; a failed pass is retried at the next interval.
pub async fn run(
    config: ReconcileConfig,
    reconciler: Reconciler,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), ReconcileError> {
    config.validate()?;
    loop {
        let since = TimestampMs(TimestampMs::now().0 - (config.window_secs as i64) * 1000);
        match reconciler.reconcile_once(&Scope { conversations: Vec::new(), since: Some(since) }, false).await {
            Ok(report) => {
                metrics.record(&report);
                tracing::info!(
                    conversations = report.conversations_checked,
                    differences = report.differences(),
                    repaired = report.repaired(),
                    im_calls = report.im_calls,
                    "reconcile pass done"
                );
            }
            Err(e) => tracing::warn!(error = %e, "reconcile pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(config.interval_secs)) => {}
        }
    }
}
