//! Webhook delivery: the outbox drained to ingest, in order, without loss.
//!
//! Invariant: the outbox is one FIFO filled under the state lock in the order changes happen, and this
//! single task is the only one that removes from it, always from the front, only after ingest accepted
//! those events. So per-conversation order (indeed global order) holds, and an event leaves the outbox only
//! when delivered or refused for good. If ingest is down the head batch is retried with backoff, forever,
//! until shutdown; the outbox is part of the state snapshot, so a restart resumes where it stopped.
//!
//! Ingest refuses a whole batch when one event is bad (`400`, nothing accepted). To lose only the bad event,
//! a refused batch is re-sent one event at a time; a single event refused for good is logged, counted
//! (`webhooks_rejected`) and skipped, since retrying it can never succeed.

use imbridge_core::disposition::{Classify, Disposition};
use imbridge_legacy::{ApplyClient, ContractEvent, RetryPolicy};
use tokio_util::sync::CancellationToken;

use crate::LegacyEmulator;

pub(crate) async fn deliver(em: LegacyEmulator, client: ApplyClient, shutdown: CancellationToken) {
    let cfg = em.config();
    let batch_max = cfg.webhook_batch_max;
    let policy = RetryPolicy {
        max_attempts: 0,
        initial_backoff_ms: cfg.webhook_initial_backoff_ms,
        max_backoff_ms: cfg.webhook_max_backoff_ms,
        max_retry_after_ms: cfg.webhook_max_backoff_ms.max(60_000),
    };
    // Events left to send one by one after a refused batch.
    let mut solo = 0usize;
    let mut failures = 0u32;
    loop {
        let take = if solo > 0 { 1 } else { batch_max };
        let batch: Vec<ContractEvent> = em.read(|s| s.outbox.iter().take(take).cloned().collect());
        if batch.is_empty() {
            // `Notify` keeps a permit for a notification sent while we were busy, so none is missed.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = em.outbox_ready().notified() => continue,
            }
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = client.send_once(&batch) => r,
        };
        let n = batch.len();
        match result {
            Ok(_) => {
                failures = 0;
                solo = solo.saturating_sub(n);
                em.write(|s| {
                    s.outbox.drain(..n.min(s.outbox.len()));
                    s.counters.webhooks_delivered += n as u64;
                });
                tracing::debug!(events = n, "webhooks delivered");
            }
            Err(e) if e.disposition() == Disposition::DeadLetter && n > 1 => {
                tracing::warn!(error = %e, events = n, "ingest refused a webhook batch; resending its events one by one");
                solo = n;
            }
            Err(e) if e.disposition() == Disposition::DeadLetter => {
                failures = 0;
                solo = solo.saturating_sub(1);
                tracing::error!(error = %e, event_id = %batch[0].id, "ingest refused a webhook event for good; skipping it");
                em.write(|s| {
                    s.outbox.pop_front();
                    s.counters.webhooks_rejected += 1;
                });
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = policy.delay(failures, e.retry_after());
                tracing::warn!(error = %e, attempt = failures, wait_ms = wait.as_millis() as u64, "webhook failed, retrying");
                em.write(|s| s.counters.webhook_retries += 1);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
