//! Bulk-import apply: the records of the four `imbridge.import.*` topics, applied with IM's import APIs.
//!
//! One [`OrderedConsumer`] per import topic, each with its own handler and its own in-flight bound, so one
//! chain never waits behind another's backlog (a DAG, not phases):
//!
//! | topic | handler | IM calls |
//! | --- | --- | --- |
//! | accounts | [`accounts::AccountsHandler`] | `multiaccount_import`, ≤ 100 accounts per call, gathered **across** keys by a coalescer |
//! | users | [`users::UsersHandler`] | `portrait_set` per profile; `friend_import` per user, ≤ 100 friends per call (lane batch) |
//! | c2c | [`c2c::C2cHandler`] | `importmsg` per message (SyncFromOldSystem 2); `admin_set_msg_read` after the conversation's messages |
//! | groups | [`groups::GroupsHandler`] | `import_group` → `import_group_member` (≤ 100) → `import_group_msg` (≤ 7, ascending) → `set_unread_msg_num` |
//!
//! Every topic's records of one key are handled in order (the runner's per-key lanes), so a conversation's
//! read marks follow its messages and a group's unread counts follow its messages (importing messages zeroes
//! them). The importer starts the users, c2c and groups consumers once the accounts topic is fully applied;
//! from then on each API is limited only by its own quota in [`imbridge_im::ImClient`].
//!
//! **Idempotent by construction.** Accounts, profiles, friends, read marks and unread counts are "set"
//! operations; `importmsg` dedups on (MsgSeq, MsgRandom, MsgTimeStamp), all three derived from the record;
//! `import_group` answers 10021 for an existing group and `import_group_member` 2 for an existing member (both
//! "already present"). `import_group_msg` does **not** dedup, so [`groups`] reads what IM already holds before
//! importing a group's messages after a (re)start and skips it (see that module).
//!
//! **Per-item failures** of batch APIs dead-letter only the failed record, with IM's reason; the other
//! records of the call finish normally (see [`settled`]). Import records are independent facts, so a failed
//! one does not park the rest of its conversation (the importer runs these consumers with
//! `park_after_dead_letter = false`).
//!
//! The importer attaches the [`headers`] below to the records it produces; they carry decisions that need
//! the whole export (a group message's `SendTime`), so apply after a restart never has to re-derive them.

pub mod accounts;
pub mod c2c;
pub mod error;
pub mod groups;
pub mod settled;
pub mod state;
pub mod stats;
pub mod users;

use std::sync::Arc;

use imbridge_core::topics::ImportPhase;
use imbridge_core::{Envelope, Failure};
use imbridge_im::{ImClient, ImError};
use imbridge_kafka::consumer::Progress;
use imbridge_kafka::dlq::DlqProducer;
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::{BatchOutcome, ConsumerConfig, Handler, KafkaConfig, OrderedConsumer, Outcome, Record};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use error::ApplyError;
pub use state::ConversationStates;
pub use stats::{ApplyStats, RecordOutcome};

/// Kafka headers the importer sets on import records, read back by the handlers.
pub mod headers {
    /// The import run that produced the record (also kept on the DLQ, so failures are attributed to runs).
    pub const RUN_ID: &str = "imbridge.import.run";
    /// On `import.group_message`: the `SendTime` (Unix seconds) to import it with. IM requires each group
    /// message's SendTime to be strictly greater than the group's latest, so the importer spreads same-second
    /// legacy messages over the following seconds, deterministically (`imbridge_importer::schedule`).
    pub const SEND_TIME: &str = "imbridge.import.send_time";
    /// On `import.group_member`: the group's creation time (Unix seconds); a legacy join time is sent as
    /// `JoinTime` only when strictly after it (IM fails the member otherwise).
    pub const GROUP_CREATED: &str = "imbridge.import.group_created";
}

/// Tuning of the import handlers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportApplyConfig {
    /// How long the accounts coalescer waits for more accounts before calling `multiaccount_import` with a
    /// batch of fewer than 100, in milliseconds. With a backlog batches fill at once and never wait.
    pub accounts_linger_ms: u64,
    /// `multiaccount_import` calls in flight at once (the client's rate limiter still paces them).
    pub accounts_max_concurrent_calls: usize,
}

impl Default for ImportApplyConfig {
    fn default() -> Self {
        Self { accounts_linger_ms: 20, accounts_max_concurrent_calls: 4 }
    }
}

/// What every import handler shares.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub im: ImClient,
    pub stats: ApplyStats,
    pub states: ConversationStates,
    pub config: ImportApplyConfig,
}

/// Starts the consumer of one import topic in the background; it runs until `shutdown` fires, then drains
/// and commits. `group_id` must be stable across runs: its committed offsets are what makes apply resumable.
#[allow(clippy::too_many_arguments)]
pub fn spawn_consumer(
    which: ImportPhase,
    kafka: &KafkaConfig,
    group_id: &str,
    topic: &str,
    consumer: ConsumerConfig,
    ctx: Arc<ApplyContext>,
    dlq: DlqProducer,
    metrics: ConsumerMetrics,
    shutdown: CancellationToken,
) -> Result<(ConsumerTask, Progress), ApplyError> {
    fn spawn<H: Handler>(
        h: H,
        kafka: &KafkaConfig,
        group_id: &str,
        topic: &str,
        consumer: ConsumerConfig,
        dlq: DlqProducer,
        metrics: ConsumerMetrics,
        shutdown: CancellationToken,
    ) -> Result<(ConsumerTask, Progress), ApplyError> {
        let c = OrderedConsumer::new(kafka, group_id, &[topic], consumer, Arc::new(h), dlq, metrics)?;
        let progress = c.progress();
        Ok((tokio::spawn(c.run(shutdown)), progress))
    }
    match which {
        ImportPhase::Accounts => {
            spawn(accounts::AccountsHandler::new(ctx), kafka, group_id, topic, consumer, dlq, metrics, shutdown)
        }
        ImportPhase::Users => {
            spawn(users::UsersHandler::new(ctx), kafka, group_id, topic, consumer, dlq, metrics, shutdown)
        }
        ImportPhase::C2c => spawn(c2c::C2cHandler::new(ctx), kafka, group_id, topic, consumer, dlq, metrics, shutdown),
        ImportPhase::Groups => {
            spawn(groups::GroupsHandler::new(ctx), kafka, group_id, topic, consumer, dlq, metrics, shutdown)
        }
    }
}

/// A running import consumer: its totals when it stops.
pub type ConsumerTask = tokio::task::JoinHandle<Result<imbridge_kafka::consumer::RunStats, imbridge_kafka::KafkaError>>;

/// The consumer settings the import runs with: the runner's defaults, except that a dead-lettered record does
/// not park the rest of its key (import records are independent facts) and offsets are committed often (an
/// interrupted import resumes from them).
pub fn import_consumer_config() -> ConsumerConfig {
    ConsumerConfig { park_after_dead_letter: false, auto_commit_interval_ms: 200, ..ConsumerConfig::default() }
}

/// Decodes a record's envelope; a record that is not one is poison.
pub(crate) fn envelope_of(record: &Record) -> Result<Envelope, Outcome> {
    record.envelope().map_err(Outcome::DeadLetter)
}

/// A batch handler's answer for one record handled alone: the record's own verdict, done, or — when the batch
/// made no progress at all — a retry.
pub(crate) fn single_outcome(out: BatchOutcome) -> Outcome {
    match (out.done, out.next) {
        (_, Some(o)) => o,
        (n, None) if n > 0 => Outcome::Done,
        _ => Outcome::Retry(Failure::new("import_no_progress", "nothing applied")),
    }
}

/// The runner's verdict on a failed IM call, from the error's own classification.
pub(crate) fn outcome_of(e: &ImError) -> Outcome {
    use imbridge_core::disposition::{Classify, Disposition};
    match e.disposition() {
        Disposition::Retry => Outcome::Retry(Failure::from_error(e)),
        Disposition::DeadLetter | Disposition::Drop => Outcome::DeadLetter(Failure::from_error(e)),
    }
}

/// A per-item failure of a batch API, labelled like a whole-call failure of the same code.
pub(crate) fn item_failure(api: imbridge_im::Api, code: i64, what: &str, detail: &str) -> Outcome {
    let reason = if detail.is_empty() {
        format!("im {api} failed for {what} with {code}")
    } else {
        format!("im {api} failed for {what} with {code}: {detail}")
    };
    Outcome::DeadLetter(Failure::new(format!("im_{code}"), reason))
}

/// A record on the wrong topic (or of a kind this handler does not apply) can never apply here.
pub(crate) fn unexpected(kind: &str, topic: &str) -> Outcome {
    Outcome::DeadLetter(Failure::new("unexpected_kind", format!("{kind} records do not belong on {topic}")))
}

/// A header as UTF-8.
pub(crate) fn header_i64(record: &Record, name: &str) -> Option<i64> {
    record.header_str(name).and_then(|v| v.parse().ok())
}
