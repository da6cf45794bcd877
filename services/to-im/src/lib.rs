//! to-im: applies events to Tencent Cloud IM.
//!
//! - [`import`]: the bulk-import records of `imbridge.import.*` with IM's import APIs, as a dependency DAG
//!   within IM's per-API quotas (forced-upgrade strategy, and the first half of coexistence);
//! - [`live`]: real-time legacy events of `imbridge.legacy.events` with IM's live APIs (coexistence);
//! - [`service`]: the `imbridge to-im` service — `[to_im]` configuration, topics, ops endpoints, run loop;
//! - [`replay`]: `imbridge replay --conversation`: one conversation's legacy events again, through the live handler;
//! - [`error`]: [`ToImError`] and its retry / dead-letter classification.

pub mod error;
pub mod import;
pub mod live;
pub mod replay;
pub mod service;

pub use error::ToImError;
pub use live::status;
pub use service::{ServiceConfig, ToImConfig};
