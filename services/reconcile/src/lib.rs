//! Reconciliation: find every difference between legacy and IM, and repair it through the pipeline.
//!
//! - [`reconciler`]: one pass ([`Reconciler::reconcile_once`]): choose conversations (legacy digests + IM
//!   conversation lists, or the ones asked for), read both sides, compare, produce repair events;
//! - [`compare`]: the cross-system identity of a message and the pure comparison of one conversation;
//! - [`digest`]: skipping conversations whose cheap digests are unchanged since found identical;
//! - [`report`]: the per-kind table and the JSON report;
//! - [`service`]: `imbridge reconcile`, the continuous service: [`activity`] (which conversations had events,
//!   checked after a delay), [`outage`] (ingest's heartbeats → windows to check at once), the slow sweep and
//!   its [`sweep`] summary, within [`quota`] (reconcile's own share of IM's quotas);
//! - [`config`] (`[reconcile]`), [`metrics`] (`imbridge_reconcile_*`), [`error`].
//!
//! Repairs are ordinary events on the ordinary topics (legacy-origin on `imbridge.legacy.events` for what IM
//! lacks, IM-origin on `imbridge.im.events` for what legacy lacks) with `imbridge.origin: reconcile` and the
//! evidence in headers; to-im and to-legacy apply them in conversation order and idempotently. Never a
//! direct write.
//!
//! A pass runs on demand (`imbridge reconcile --once`) or continuously ([`service::Reconcile`], a runtime service).

pub mod activity;
pub mod compare;
pub mod config;
pub mod digest;
pub mod error;
pub mod group_state;
pub mod metrics;
pub mod outage;
pub mod presence;
pub mod quota;
pub mod reconciler;
pub mod report;
pub mod service;
pub mod sweep;

pub use config::ReconcileConfig;
pub use error::ReconcileError;
pub use metrics::{Metrics, Trigger};
pub use reconciler::{Owner, Reconciler, Scope};
pub use report::{Difference, Kind, Report, Row};
pub use service::Reconcile;
