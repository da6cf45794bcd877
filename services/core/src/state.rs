//! Per-conversation migration state, as carried on the compacted `imbridge.conversations` topic.
//!
//! Live writes into a conversation must wait until its history is imported (IM refuses group history older
//! than the group's newest message). The importer records `importing` for every conversation it has history
//! for before producing that history; to-im records `live` when it handles the conversation's
//! `import.conversation_done` marker. A conversation with no record is live.
//!
//! The same record carries one echo hint: IM's `Group.CallbackAfterGroupDestroyed` names no operator, so ingest
//! cannot tell imbridge's own `destroy_group` from another backend's by the payload. to-im therefore announces a
//! dismissal here (`dismissed_by_imbridge`) before it calls IM, and ingest drops the callback that follows.

use serde::{Deserialize, Serialize};

use crate::ids::ConversationKey;
use crate::time::TimestampMs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// History is being imported; live writes wait.
    Importing,
    /// History applied (or none to import): live writes apply.
    Live,
}

/// The value of one `imbridge.conversations` record (key = the conversation key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    pub conversation: ConversationKey,
    pub phase: Phase,
    pub updated_at: TimestampMs,
    /// The import run that set it, when an import did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Set by to-im just before it dismisses the group in IM on behalf of legacy: the dismissal callback that
    /// follows is imbridge's own echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissed_by_imbridge: Option<TimestampMs>,
}
