//! Reconciliation: find every difference between legacy and IM, and repair it through the pipeline.
//!
//! - [`reconciler`]: one pass ([`Reconciler::reconcile_once`]): choose conversations (legacy digests + IM
//!   conversation lists, or the ones asked for), read both sides, compare, produce repair events;
//! - [`compare`]: the cross-system identity of a message and the pure comparison of one conversation;
//! - [`report`]: the per-kind table and the JSON report;
//! - [`config`] (`[reconcile]`), [`metrics`] (`imbridge_reconcile_*`), [`error`].
//!
//! Repairs are ordinary events on the ordinary topics (legacy-origin on `imbridge.legacy.events` for what IM
//! lacks, IM-origin on `imbridge.im.events` for what legacy lacks) with `imbridge.origin: reconcile` and the
//! evidence in headers; to-im and to-legacy apply them in conversation order and idempotently. Never a
//! direct write.
//!
//! Today a pass runs on demand (`imbridge reconcile --once`); the continuous service mode, outage-triggered
//! passes and a reserved share of IM's quotas are still to come.

pub mod compare;
pub mod config;
pub mod error;
pub mod metrics;
pub mod reconciler;
pub mod report;

pub use config::ReconcileConfig;
pub use error::ReconcileError;
pub use metrics::Metrics;
pub use reconciler::{Reconciler, Scope};
pub use report::{Difference, Kind, Report, Row};
