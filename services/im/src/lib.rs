//! Tencent Cloud IM, as imbridge sees it. Every IM-specific byte of the pipeline lives here.
//!
//! - [`usersig`]: TLSSigAPIv2 UserSig generation and verification (also used by the emulator);
//! - [`sigcache`]: [`UserSigCache`], the admin UserSig signed once and renewed at 80% of its lifetime;
//! - [`config`]: [`ImConfig`] — region base URL, identity, timeouts, retry policy, per-API rates;
//! - [`apply`]: [`apply::Applier`], canonical events → the REST calls that make an app hold them (to-im's live
//!   apply, and [`apply::ImApp`], an IM app as the old side);
//! - [`api`]: [`Api`], the closed set of REST APIs with their paths and documented frequency limits;
//! - [`client`]: [`ImClient`] — one typed method per API, rate limiting, retries, paging helpers;
//! - [`types`]: request/response bodies with IM's exact field names;
//! - [`body`]: IM's `MsgBody` elements and the lossless mapping to canonical [`imbridge_core::Element`]s;
//! - [`callback`]: callback query verification (token `Sign`) and the callback payloads imbridge consumes;
//! - [`normalize`]: callback → canonical event, echo detection (the mirror of the legacy crate's `convert`);
//! - [`origin`]: imbridge's origin marker in `CloudCustomData` (what to-im writes, ingest and reconcile read);
//! - [`error`]: [`ImError`] and its retry / dead-letter classification;
//! - [`ratelimit`], [`metrics`]: per-API token buckets and the client's Prometheus metrics.

pub mod api;
pub mod apply;
pub mod body;
pub mod callback;
pub mod client;
pub mod config;
pub mod error;
pub mod metrics;
pub mod normalize;
pub mod origin;
pub mod ratelimit;
pub mod sigcache;
pub mod types;
pub mod usersig;

pub use api::Api;
pub use body::{MsgElement, from_im_body, to_im_body};
pub use callback::{Callback, CallbackAuthError, CallbackQuery, verify_callback_query};
pub use client::ImClient;
pub use config::{ImConfig, RECONCILE_APIS, RateSetting, RetryConfig};
pub use error::ImError;
pub use metrics::Metrics;
pub use sigcache::UserSigCache;
