//! The imbridge event model, free of I/O.
//!
//! Everything the pipeline carries through Kafka is defined here, in both directions:
//!
//! - [`ids`]: the domain identifiers ([`UserId`], [`GroupId`], [`EventId`], [`ConversationKey`]) and the
//!   rules that derive them (conversation keys in byte order, event ids from the source's own ids);
//! - [`time`]: [`TimestampMs`], which reads Unix milliseconds or RFC 3339 and always writes milliseconds;
//! - [`body`]: message body elements in imbridge's canonical (export) shape, strict and as exports write them;
//! - [`export`]: the legacy export's records, as a file holds them and in the domain types;
//! - [`event`]: the [`Envelope`] and every real-time [`Event`] kind plus the bulk-import records;
//! - [`state`]: per-conversation migration state (importing / live);
//! - [`status`]: service health records on `imbridge.status` (ingest heartbeats);
//! - [`apply`]: [`apply::OldSide`], the seam every kind of old system is written to through;
//! - [`disposition`]: what a failure means for the pipeline (retry, dead-letter, drop);
//! - [`topics`]: default topic names;
//! - [`json`]: the rule every reader of outside records applies first — the record is a JSON object.
//!
//! The JSON Schemas under `schemas/` describe exactly these types; `tests/schemas.rs` keeps them in step.

pub mod apply;
pub mod body;
pub mod disposition;
pub mod event;
pub mod export;
pub mod ids;
pub mod json;
pub mod state;
pub mod status;
pub mod time;
pub mod topics;

pub use body::Element;
pub use disposition::{Disposition, Failure};
pub use event::{Envelope, Event, EventKind, Source};
pub use ids::{ConversationKey, EventId, GroupId, IdError, UserId};
pub use time::TimestampMs;
