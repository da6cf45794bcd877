//! The benches that run the whole pipeline in one process, kept apart so that no service crate depends on its
//! siblings or on the emulators to be measured:
//!
//! - [`sync`]: `imbridge bench sync`, real-time sync end to end in both directions beside the targets' raw ceilings;
//! - [`import`]: `imbridge bench import`, the bulk import with IM's limits off and on beside the emulator's raw
//!   `importmsg` ceiling;
//! - [`quota`]: `imbridge bench quota`, live sync, a repair sweep and an import sharing IM's quotas at once;
//! - [`backlog`]: `imbridge bench backlog`, each consuming service as its own process on a large backlog: peak RSS
//!   and CPU per event beside the memory bound.
//!
//! `imbridge bench kafka` (our producer and consumer beside Kafka's own perf tools) needs nothing but rdkafka and
//! lives in `imbridge-kafka`.

pub mod backlog;
pub mod import;
pub mod quota;
pub mod sync;
