//! The last gate between an IM callback and Kafka: the IM crate's normalization
//! ([`imbridge_im::normalize`]: callback → canonical event, echoes, what carries nothing to sync), then the legacy
//! contract's own validation of the event, so to-legacy never receives an event the legacy side must refuse for
//! its shape.

use imbridge_core::TimestampMs;
use imbridge_im::callback::{Callback, CallbackQuery};
pub use imbridge_im::normalize::{Echo, EchoReason, IgnoreReason, Normalized};
use imbridge_legacy::EventData;

use crate::error::IngestError;

/// Normalizes a parsed, verified callback (see [`imbridge_im::normalize::normalize`]) and checks the event it
/// becomes against the legacy contract.
pub fn normalize(
    cb: &Callback,
    query: &CallbackQuery,
    echo: &Echo,
    received_at: TimestampMs,
) -> Result<Normalized, IngestError> {
    let normalized = imbridge_im::normalize::normalize(cb, query, echo, received_at)
        .map_err(|e| IngestError::CallbackInvalid { command: e.command, reason: e.reason })?;
    let Normalized::Event(env) = normalized else { return Ok(normalized) };
    let invalid = |reason: String| IngestError::CallbackInvalid { command: cb.command().to_owned(), reason };
    let data = EventData::from_event(&env.event).ok_or_else(|| invalid("not a real-time event".into()))?;
    data.validate().map_err(invalid)?;
    if env.id.as_str().len() > imbridge_legacy::contract::MAX_EVENT_ID_BYTES {
        return Err(invalid(format!("derived event id {} is too long", env.id)));
    }
    Ok(Normalized::Event(env))
}
