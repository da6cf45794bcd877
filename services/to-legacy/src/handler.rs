//! The handler the ordered consumer runner calls: a conversation's consecutive IM events → one signed apply
//! request to legacy.
//!
//! Invariants:
//! 1. **One conversation per request, in order.** The runner offers consecutive records of one key (one lane),
//!    in offset order; a request carries a prefix of them, never a record after one that is not yet finished.
//! 2. **Finished means applied.** A record is reported done only after legacy answered 2xx or 409 for a request
//!    containing it. A 400/422 dead-letters exactly the event legacy named (or, when it named none, the first
//!    event that fails on its own); the events before it are confirmed applied first, and the runner parks the
//!    ones after it.
//! 3. **Retries are bounded and honour the server.** Transient answers are retried in the call with jittered
//!    backoff (`Retry-After` is a floor), then handed back to the runner, whose own bounded backoff and
//!    `retries_exhausted` dead-lettering take over. After shutdown began, no new retry starts: the handler
//!    waits to be cancelled at the drain deadline, so the record stays uncommitted and is redelivered instead
//!    of being dead-lettered by a shutdown.
//! 4. **Poison never blocks.** A record that is not an IM-origin real-time envelope is dead-lettered at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imbridge_core::apply::{Applied, OldSide};
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_core::{Envelope, Failure, TimestampMs};
use imbridge_kafka::{BatchOutcome, Handler, Outcome, Record};
use imbridge_legacy::RetryPolicy;
use imbridge_telemetry::Readiness;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::metrics::Metrics;
use crate::side::{Side, SideError};

/// Readiness check: the legacy side answers.
pub const READY_LEGACY: &str = "legacy";
/// Readiness check: this instance received its first partition assignment.
pub const READY_ASSIGNMENT: &str = "assignment";

/// One decoded record: the envelope as it came (for ids, metrics and logs) and the one written to the old
/// side (the same, or trimmed by the resequencer of changes already overtaken).
pub(crate) struct Item {
    pub(crate) env: Envelope,
    pub(crate) event: Envelope,
}

/// Why an apply stopped before the end of its events.
pub(crate) enum Stop {
    /// The old side refused the event at `index` for good.
    Rejected { index: usize, error: SideError },
    /// Transient failures outlasted the in-call retries.
    Transient(SideError),
}

/// Applies IM events to the old side through its adapter ([`Side`]).
#[derive(Debug)]
pub struct LegacyApplier {
    side: Side,
    retry: RetryPolicy,
    batch_max: usize,
    pub(crate) metrics: Metrics,
    readiness: Readiness,
    shutdown: CancellationToken,
    assigned: AtomicBool,
    /// The resequencer; `None` applies records in offset order (replay, `order.enabled = false`).
    pub(crate) order: Option<Arc<crate::sequenced::Resequencer>>,
}

impl LegacyApplier {
    /// `side` makes one attempt per call; `retry` is the in-call policy.
    /// With `order`, records pass the resequencer first; without, they apply in offset order.
    pub fn new(
        side: Side,
        retry: RetryPolicy,
        batch_max: usize,
        metrics: Metrics,
        readiness: Readiness,
        shutdown: CancellationToken,
        order: Option<Arc<crate::sequenced::Resequencer>>,
    ) -> Arc<Self> {
        Arc::new(Self { side, retry, batch_max, metrics, readiness, shutdown, assigned: AtomicBool::new(false), order })
    }

    /// A record → its envelope and contract event; a failure here can never succeed later.
    /// Decodes a batch up to its first undecodable record, returned beside the items before it; when that is the
    /// first, the outcome dead-letters it.
    pub(crate) fn decode_batch(&self, records: &[&Record]) -> Result<(Vec<Item>, Option<Failure>), BatchOutcome> {
        let mut items = Vec::with_capacity(records.len());
        let mut poison = None;
        for r in records {
            match self.decode(r) {
                Ok(item) => items.push(item),
                Err(f) => {
                    poison = Some(f);
                    break;
                }
            }
        }
        if items.is_empty() {
            return Err(self.dead_letter(poison));
        }
        Ok((items, poison))
    }

    /// The outcome of a batch none of whose records can be applied.
    pub(crate) fn dead_letter(&self, poison: Option<Failure>) -> BatchOutcome {
        let f = poison.unwrap_or_else(|| Failure::new("malformed", "empty batch"));
        self.metrics.events.with_label_values(&["unknown", "malformed"]).inc();
        warn!(kind = %f.kind, reason = %f.reason, "record cannot be applied; dead-lettering it");
        BatchOutcome { done: 0, next: Some(Outcome::DeadLetter(f)) }
    }

    pub(crate) fn decode(&self, r: &Record) -> Result<Item, Failure> {
        let env = r.envelope()?;
        self.side.accepts(&env)?;
        Ok(Item { event: env.clone(), env })
    }

    /// The old side this applier writes to.
    pub fn side(&self) -> &Side {
        &self.side
    }

    /// What the old side asked to wait before the next attempt, capped.
    pub(crate) fn retry_after(&self, e: &SideError) -> Option<Duration> {
        self.side.retry_after(e).map(|d| d.min(Duration::from_millis(self.retry.max_retry_after_ms)))
    }

    /// Waits `d`, unless shutdown began: then it never returns, so the runner cancels this lane at its drain
    /// deadline and the record is redelivered after the restart (see invariant 3).
    pub(crate) async fn wait(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.cancelled() => std::future::pending::<()>().await,
        }
    }

    /// One request with in-call retries of transient answers.
    async fn send(&self, events: &[Envelope]) -> Result<Applied, SideError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.side.apply_once(events).await {
                Ok(o) => {
                    self.readiness.set(READY_LEGACY, true);
                    return Ok(o);
                }
                Err(e) => e,
            };
            if err.disposition() != Disposition::Retry {
                // It answered: reachable, whatever it thought of the batch.
                self.readiness.set(READY_LEGACY, true);
                return Err(err);
            }
            if self.side.unreachable(&err) {
                self.readiness.set(READY_LEGACY, false);
            }
            self.metrics.retries.with_label_values(&[&err.kind()]).inc();
            if attempt >= self.retry.max_attempts {
                return Err(err);
            }
            let wait = self.retry.delay(attempt, self.side.retry_after(&err));
            warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, side = self.side.name(), "old-side apply failed; retrying");
            self.wait(wait).await;
        }
    }

    /// Applies `events` in order. Returns the outcome label of every event of the finished prefix
    /// (`applied` or `duplicate`) and why it stopped, if it did.
    pub(crate) async fn apply(&self, events: &[Envelope]) -> (Vec<&'static str>, Option<Stop>) {
        let label = |o: &Applied| if o.duplicate { "duplicate" } else { "applied" };
        let err = match self.send(events).await {
            Ok(o) => return (vec![label(&o); events.len()], None),
            Err(e) if e.disposition() == Disposition::Retry => return (Vec::new(), Some(Stop::Transient(e))),
            Err(e) => e,
        };
        if events.len() == 1 {
            return (Vec::new(), Some(Stop::Rejected { index: 0, error: err }));
        }
        // The contract: legacy applies the events before the one it names, stops, and names it. Re-sending that
        // prefix confirms it (repeats answer 409 or 2xx) instead of trusting a body we cannot verify.
        if let Some(index) = self.side.refused_index(&err).filter(|i| *i < events.len()) {
            if index == 0 {
                return (Vec::new(), Some(Stop::Rejected { index, error: err }));
            }
            match self.send(&events[..index]).await {
                Ok(o) => return (vec![label(&o); index], Some(Stop::Rejected { index, error: err })),
                Err(e) if e.disposition() == Disposition::Retry => return (Vec::new(), Some(Stop::Transient(e))),
                Err(_) => {}
            }
        }
        // Nothing usable named: one event at a time finds the first that cannot apply on its own.
        debug!(error = %err, events = events.len(), "batch refused; applying its events one by one");
        let mut done = Vec::with_capacity(events.len());
        for (index, ev) in events.iter().enumerate() {
            match self.send(std::slice::from_ref(ev)).await {
                Ok(o) => done.push(label(&o)),
                Err(e) if e.disposition() == Disposition::Retry => return (done, Some(Stop::Transient(e))),
                Err(error) => return (done, Some(Stop::Rejected { index, error })),
            }
        }
        (done, None)
    }

    pub(crate) fn finished(&self, item: &Item, outcome: &'static str) {
        let kind = item.env.kind().as_str();
        self.metrics.events.with_label_values(&[kind, outcome]).inc();
        if outcome == "applied" {
            let age_ms = (TimestampMs::now().as_millis() - item.env.time.as_millis()).max(0);
            self.metrics.end_to_end_seconds.with_label_values(&[kind]).observe(age_ms as f64 / 1000.0);
        }
        let span = info_span!("event", event_id = %item.env.id, conversation = %item.env.conversation, kind);
        span.in_scope(|| debug!(outcome, "event finished"));
    }
}

impl Handler for LegacyApplier {
    async fn handle(&self, record: &Record) -> Outcome {
        let b = self.handle_batch(&[record]).await;
        match (b.done, b.next) {
            (0, Some(o)) => o,
            (_, _) => Outcome::Done,
        }
    }

    fn batch_limit(&self) -> usize {
        self.batch_max.min(self.side.batch_limit()).max(1)
    }

    async fn handle_batch(&self, records: &[&Record]) -> BatchOutcome {
        if let Some(order) = &self.order {
            return self.handle_sequenced(order, records).await;
        }
        let (items, poison) = match self.decode_batch(records) {
            Ok(decoded) => decoded,
            Err(dead) => return dead,
        };
        let Some(first) = items.first() else { return self.dead_letter(None) };
        let span = info_span!("apply", conversation = %first.env.conversation, first_event_id = %first.env.id, events = items.len());
        let events: Vec<Envelope> = items.iter().map(|i| i.event.clone()).collect();
        self.metrics.batch_events.observe(events.len() as f64);
        let started = Instant::now();
        let (done, stop) = self.apply(&events).instrument(span).await;
        for (item, outcome) in items.iter().zip(&done) {
            self.finished(item, outcome);
        }
        let n = done.len();
        let outcome = match &stop {
            None if done.iter().all(|o| *o == "duplicate") => "duplicate",
            None => "applied",
            Some(Stop::Rejected { .. }) => "rejected",
            Some(Stop::Transient(_)) => "retry",
        };
        self.metrics.apply_seconds.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
        match stop {
            // Everything decodable applied; a poison record right after it is dead-lettered now.
            None => match poison {
                Some(f) => {
                    self.metrics.events.with_label_values(&["unknown", "malformed"]).inc();
                    BatchOutcome { done: n, next: Some(Outcome::DeadLetter(f)) }
                }
                None => BatchOutcome::all(n),
            },
            Some(Stop::Rejected { index, error }) => {
                if let Some(item) = items.get(index) {
                    self.finished(item, "rejected");
                    warn!(event_id = %item.env.id, conversation = %item.env.conversation, error = %error, "legacy refused the event; dead-lettering it");
                }
                BatchOutcome { done: n, next: Some(Outcome::DeadLetter(Failure::from_error(&error))) }
            }
            Some(Stop::Transient(error)) => {
                // The runner's own backoff may be shorter than what the server asked for.
                if let Some(ra) = self.retry_after(&error) {
                    self.wait(ra).await;
                }
                BatchOutcome { done: n, next: Some(Outcome::Retry(Failure::from_error(&error))) }
            }
        }
    }

    fn partitions_assigned(&self, partitions: &[(String, i32)]) {
        if let Some(order) = &self.order {
            let ps: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
            order.store.assign(&ps);
        }
        if !partitions.is_empty() && !self.assigned.swap(true, Ordering::AcqRel) {
            self.readiness.set(READY_ASSIGNMENT, true);
        }
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        if let Some(order) = &self.order {
            let ps: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
            order.store.revoke(&ps);
        }
    }
}
