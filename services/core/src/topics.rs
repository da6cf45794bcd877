//! Default topic names (see `schemas/topics.md`). Operators may rename every one in configuration.

/// Canonical events from the legacy side (ingest → to-im), keyed by conversation.
pub const LEGACY_EVENTS: &str = "imbridge.legacy.events";
/// Canonical events from IM callbacks (ingest → to-legacy), keyed by conversation.
pub const IM_EVENTS: &str = "imbridge.im.events";
/// Prefix of the bulk-import topics (`imbridge.import.<phase>`), keyed by entity.
pub const IMPORT_PREFIX: &str = "imbridge.import.";
/// Records that can never apply, with headers saying where they came from and why.
pub const DLQ: &str = "imbridge.dlq";
