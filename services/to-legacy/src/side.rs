//! The old side to-legacy writes to: one variant per kind of old system (`[old_side] kind`), each an
//! [`OldSide`] adapter from the crate that speaks that system. Everything else in to-legacy — the resequencer,
//! in-call retries, dead-lettering, commits — is the same for every kind.

use std::time::Duration;

use imbridge_core::apply::{Applied, OldSide};
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_core::{Envelope, Failure};
use imbridge_legacy::{ApplyClient, ApplyError};

/// The configured old system.
#[derive(Debug, Clone)]
pub enum Side {
    /// The legacy contract's apply endpoint.
    Legacy(ApplyClient),
}

/// A failed attempt on the old side, classified by the adapter that made it.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error(transparent)]
    Legacy(#[from] ApplyError),
}

impl Classify for SideError {
    fn disposition(&self) -> Disposition {
        match self {
            SideError::Legacy(e) => e.disposition(),
        }
    }

    fn kind(&self) -> String {
        match self {
            SideError::Legacy(e) => e.kind(),
        }
    }
}

impl Side {
    /// What the old side is, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Side::Legacy(_) => "legacy",
        }
    }
}

impl OldSide for Side {
    type Error = SideError;

    fn batch_limit(&self) -> usize {
        match self {
            Side::Legacy(c) => c.batch_limit(),
        }
    }

    fn accepts(&self, env: &Envelope) -> Result<(), Failure> {
        match self {
            Side::Legacy(c) => c.accepts(env),
        }
    }

    async fn apply_once(&self, events: &[Envelope]) -> Result<Applied, SideError> {
        match self {
            Side::Legacy(c) => Ok(c.apply_once(events).await?),
        }
    }

    fn refused_index(&self, error: &SideError) -> Option<usize> {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => c.refused_index(e),
        }
    }

    fn retry_after(&self, error: &SideError) -> Option<Duration> {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => OldSide::retry_after(c, e),
        }
    }

    fn unreachable(&self, error: &SideError) -> bool {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => c.unreachable(e),
        }
    }
}
