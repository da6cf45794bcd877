//! The legacy contract as an old side ([`imbridge_core::apply::OldSide`]): canonical IM-origin events become
//! contract events (`"origin":"im"`, the event id as `Idempotency-Key`) and go out as one signed batch. The
//! contract's own rules make it idempotent (a repeat answers `409`) and name the first refused event
//! (`{"errors":[{"index":i,…}]}`).

use std::time::Duration;

use imbridge_core::apply::{Applied, OldSide};
use imbridge_core::{Envelope, Failure};

use crate::client::{ApplyClient, ApplyError};
use crate::contract::{ContractEvent, ErrorsBody, MAX_BATCH_EVENTS};

impl OldSide for ApplyClient {
    type Error = ApplyError;

    fn batch_limit(&self) -> usize {
        MAX_BATCH_EVENTS
    }

    fn accepts(&self, env: &Envelope) -> Result<(), Failure> {
        ContractEvent::from_im_envelope(env).map(|_| ()).map_err(|e| Failure::from_error(&ApplyError::Convert(e)))
    }

    async fn apply_once(&self, events: &[Envelope]) -> Result<Applied, ApplyError> {
        let batch = events.iter().map(ContractEvent::from_im_envelope).collect::<Result<Vec<_>, _>>()?;
        let outcome = self.send_once(&batch).await?;
        Ok(Applied { duplicate: outcome.is_duplicate() })
    }

    fn refused_index(&self, error: &ApplyError) -> Option<usize> {
        let ApplyError::Rejected { body, .. } = error else { return None };
        serde_json::from_str::<ErrorsBody>(body).ok()?.errors.iter().filter_map(|x| x.index).min()
    }

    fn retry_after(&self, error: &ApplyError) -> Option<Duration> {
        error.retry_after()
    }

    fn unreachable(&self, error: &ApplyError) -> bool {
        matches!(error, ApplyError::Connect(_) | ApplyError::Timeout(_))
    }
}
