//! to-im: applies legacy events to Tencent Cloud IM in real time (the bulk import's records are applied by
//! `imbridge-importer`'s `apply`).
//!
//! - [`live`]: real-time legacy events of `imbridge.legacy.events` with IM's live APIs (coexistence);
//! - [`service`]: the `imbridge to-im` service — `[to_im]` configuration and [`ToIm`], built and run like every
//!   service (`imbridge_runtime`);
//! - [`replay`]: `imbridge replay --conversation`: one conversation's legacy events again, through the live handler;
//! - [`error`]: [`ToImError`] and its retry / dead-letter classification.

pub mod error;
pub mod live;
pub mod replay;
pub mod service;

pub use error::ToImError;
pub use live::status;
pub use service::{ToIm, ToImConfig};
