//! Real-time apply of legacy events (`imbridge.legacy.events`) to IM — coexistence, issue 5.
//!
//! - [`config`]: [`LiveConfig`] (`[to_im.live]`): consumer group, `sendmsg` or `importmsg` for 1:1 messages,
//!   quota sharing, unknown-account import, the ordered consumer's bounds;
//! - apply: one event → the IM call(s) is `imbridge_im::apply::Applier` (shared with to-legacy, which writes an
//!   old IM app with it), with the values IM deduplicates on derived from the event, the origin marker in
//!   `CloudCustomData`, and the post-crash history lookup;
//! - [`ledger`]: the applied-events ledger on the compacted `imbridge.applied` topic — entries share their
//!   source event's partition, so an instance loads only the partitions it is assigned;
//! - [`conversations`]: the mirror of `imbridge.conversations` that holds live writes back until a
//!   conversation's history import was applied;
//! - [`handler`]: the consumer [`Handler`](imbridge_kafka::Handler) tying them together, per event: ledger →
//!   history wait → crash check → apply → ledger entry → done;
//! - [`reorder`]: when the old side is another IM app, its messages sent in that app's order (its callbacks
//!   arrive unordered);
//! - [`metrics`]: [`LiveMetrics`]; [`status`]: the report behind `imbridge status`;
//!
//! The guarantees, and where each is kept:
//! - **Order** — the ordered consumer runs one event per conversation at a time, in offset order (waiting for
//!   history happens inside the conversation's lane); only an old IM app's messages are reordered, within their
//!   lane, by [`reorder`].
//! - **No duplicates** — [`ledger`] invariants 1–4; what is left is IM's own dedup window for a retried call,
//!   which the stable `MsgRandom`/`MsgSeq`/`Random` values fall into.
//! - **No echo** — every call is made as the admin identity and messages suppress both send callbacks and carry
//!   `{"imbridge_origin":"legacy"}`: ingest drops whatever IM still calls back about them.
//! - **History first** — [`conversations`].
//! - **Failures** — transient errors retry with backoff, permanent ones are dead-lettered and the runner parks
//!   the conversation's later events behind them.

pub mod config;
pub mod conversations;
pub mod handler;
pub mod ledger;
pub mod metrics;
pub mod reorder;
pub mod status;

pub use config::{C2cApi, LiveConfig};
pub use conversations::ConversationStates;
pub use handler::LiveHandler;
pub use imbridge_im::apply::{Applier, ApplyMetrics, live_msg_seq};
pub use imbridge_im::origin::{decode_cloud_custom_data, encode_cloud_custom_data};
pub use imbridge_kafka::dismissals::DismissalNotices;
pub use ledger::{Ledger, LedgerEntry};
pub use metrics::LiveMetrics;
