//! The old side to-legacy writes to: one variant per kind of old system (`[old_side] kind`), each an
//! [`OldSide`] adapter from the crate that speaks that system. Everything else in to-legacy — the resequencer,
//! in-call retries, dead-lettering, commits — is the same for every kind.
//!
//! | `[old_side] kind` | adapter | idempotency | batch |
//! | --- | --- | --- | --- |
//! | `legacy` | the contract's [`ApplyClient`] | `Idempotency-Key` per event, `409` for a repeat | up to 500 |
//! | `im` | [`ImApp`]: to-im's IM applier on the old app | history lookup before each message | 1 |

use std::time::Duration;

use imbridge_core::apply::{Applied, OldSide};
use imbridge_core::disposition::{Classify, Disposition};
use imbridge_core::{Envelope, Failure};
use imbridge_im::apply::{ApplyError as ImApplyError, ImApp};
use imbridge_legacy::{ApplyClient, ApplyError};

/// The configured old system.
#[derive(Debug, Clone)]
pub enum Side {
    /// The legacy contract's apply endpoint.
    Legacy(ApplyClient),
    /// Another IM app, through its REST API.
    Im(ImApp),
}

/// A failed attempt on the old side, classified by the adapter that made it.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error(transparent)]
    Legacy(#[from] ApplyError),
    #[error(transparent)]
    Im(#[from] ImApplyError),
}

impl Classify for SideError {
    fn disposition(&self) -> Disposition {
        match self {
            SideError::Legacy(e) => e.disposition(),
            SideError::Im(e) => e.disposition(),
        }
    }

    fn kind(&self) -> String {
        match self {
            SideError::Legacy(e) => e.kind(),
            SideError::Im(e) => e.kind(),
        }
    }
}

impl Side {
    /// What the old side is, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Side::Legacy(_) => "legacy",
            Side::Im(_) => "im",
        }
    }
}

impl OldSide for Side {
    type Error = SideError;

    fn batch_limit(&self) -> usize {
        match self {
            Side::Legacy(c) => c.batch_limit(),
            Side::Im(a) => a.batch_limit(),
        }
    }

    fn accepts(&self, env: &Envelope) -> Result<(), Failure> {
        match self {
            Side::Legacy(c) => c.accepts(env),
            Side::Im(a) => a.accepts(env),
        }
    }

    async fn apply_once(&self, events: &[Envelope]) -> Result<Applied, SideError> {
        match self {
            Side::Legacy(c) => Ok(c.apply_once(events).await?),
            Side::Im(a) => Ok(a.apply_once(events).await?),
        }
    }

    fn refused_index(&self, error: &SideError) -> Option<usize> {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => c.refused_index(e),
            (Side::Im(a), SideError::Im(e)) => a.refused_index(e),
            _ => None,
        }
    }

    fn retry_after(&self, error: &SideError) -> Option<Duration> {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => OldSide::retry_after(c, e),
            (Side::Im(a), SideError::Im(e)) => a.retry_after(e),
            _ => None,
        }
    }

    fn unreachable(&self, error: &SideError) -> bool {
        match (self, error) {
            (Side::Legacy(c), SideError::Legacy(e)) => c.unreachable(e),
            (Side::Im(a), SideError::Im(e)) => a.unreachable(e),
            _ => false,
        }
    }
}
