//! The seam between the pipeline and the old system: [`OldSide`], what to-legacy needs to write the new side's
//! events to whatever the old side is. Two adapters implement it today — the legacy contract's apply client
//! (`imbridge-legacy`) and another Tencent Cloud IM app (`imbridge-im`); a third kind of old system (a vendor's
//! API, a database) is one more implementation, while ordering, retries, dead-lettering and commits stay in
//! to-legacy.
//!
//! The adapter makes one attempt and classifies its failure ([`Classify`]); the caller owns retries, backoff
//! and what to do with a refused event. Every call must be idempotent per event id: a batch is offered again
//! after a transient failure, a crash or a replay, and what already landed must not land twice.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::disposition::{Classify, Failure};
use crate::event::Envelope;
use crate::ids::GroupId;

/// What an [`OldSide::apply_once`] that succeeded did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The old side already had every event of the batch (a replay, a retry after a lost answer): nothing
    /// changed.
    pub duplicate: bool,
}

/// Writes canonical events of the new side to the old system. See the module docs.
pub trait OldSide: Send + Sync {
    type Error: Classify + std::error::Error + Send + Sync + 'static;

    /// Most events one [`OldSide::apply_once`] takes.
    fn batch_limit(&self) -> usize;

    /// Whether the event can ever be applied here; a refusal dead-letters it at once instead of blocking the
    /// events behind it.
    fn accepts(&self, env: &Envelope) -> Result<(), Failure>;

    /// Applies `events` (of one conversation, in this order) with one attempt and no retries of its own.
    fn apply_once(&self, events: &[Envelope]) -> impl Future<Output = Result<Applied, Self::Error>> + Send;

    /// For a refused batch, the index of the first event the old side refused, if it says so (the events
    /// before it were applied).
    fn refused_index(&self, error: &Self::Error) -> Option<usize>;

    /// How long the old side asked the caller to wait before trying again, if it did.
    fn retry_after(&self, error: &Self::Error) -> Option<Duration>;

    /// Whether the failure means the old side cannot be reached at all (for readiness).
    fn unreachable(&self, error: &Self::Error) -> bool;
}

/// Tells ingest, before a group is destroyed, that the dismissal is imbridge's own: IM's callback for it names no
/// operator, so ingest could not otherwise tell it from a user's (to-im and to-legacy announce on the
/// conversations topic).
pub trait AnnounceDismissal: Send + Sync + fmt::Debug {
    /// Returns once the announcement is durable.
    fn announce<'a>(
        &'a self,
        group: &'a GroupId,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}
