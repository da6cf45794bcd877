//! The legacy contract: the one place that speaks the legacy wire format.
//!
//! Any legacy chat backend integrates with imbridge by speaking this contract (`docs/legacy-contract.md`,
//! JSON Schemas under `schemas/legacy/`). Services never parse a legacy payload themselves; they call this
//! crate:
//!
//! - [`contract`]: the event and batch types ([`ContractEvent`], [`EventData`]), batch parsing with
//!   per-event errors ([`parse_batch`] → `400 {"errors":[{"index":i,"error":"…"}]}`), answer bodies;
//! - [`convert`]: contract event → canonical [`imbridge_core::Envelope`] (ingest) and IM-origin envelope →
//!   contract event with `"origin":"im"` (to-legacy);
//! - [`signature`]: `X-Imbridge-Timestamp` / `X-Imbridge-Signature: v1=…` signing and constant-time
//!   verification with several secrets during rotation;
//! - [`webhook`]: [`receive`] — ingest's whole legacy endpoint check in one call (verify, parse, drop echoes)
//!   with the contract's status and body for a refusal;
//! - [`client`]: [`ApplyClient`], the signed, classified, retrying batch POST (imbridge → legacy; the
//!   reference emulator uses it for its webhooks too), whose [`ApplyError`] implements
//!   [`imbridge_core::disposition::Classify`];
//! - [`old_side`]: [`ApplyClient`] as the pipeline's [`imbridge_core::apply::OldSide`] (the default old system);
//! - [`read`]: the signed read endpoints (per-conversation digests, a conversation's messages and group
//!   state) that reconciliation compares with IM, and [`ReadClient`] to call them.

pub mod client;
pub mod contract;
pub mod convert;
pub mod old_side;
pub mod read;
pub mod signature;
pub mod webhook;

pub use client::{ApplyClient, ApplyConfig, ApplyError, ApplyOutcome, RetryPolicy};
pub use contract::{
    AcceptedBody, Batch, BatchError, ContractEvent, ErrorsBody, EventData, IndexedError, MAX_BATCH_EVENTS, Origin,
    parse_batch,
};
pub use convert::ConvertError;
pub use read::{ReadClient, ReadConfig, ReadError, Window};
pub use signature::{SignatureError, SigningSecret, Verifier, sign, verify};
pub use webhook::{Received, WebhookRejection, receive};
