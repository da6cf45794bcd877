//! `imbridge.import.c2c`: 1:1 history with `importmsg`, read marks with `admin_set_msg_read`.
//!
//! Keyed by conversation (`c2c:<a>:<b>`); the plan emits a conversation's messages in legacy order, then its
//! read marks, then its `import.conversation_done` marker, so per-key order puts each read mark after the
//! messages it covers and flips the conversation to `live` only when its history is in.
//!
//! `importmsg` is called with `SyncFromOldSystem` 2 (history: not unread, not pushed), `MsgTimeStamp` = the
//! legacy send second, `MsgSeq` = the record's `msg_seq` (1, 2, … in legacy order: IM orders same-second
//! messages by it) and `MsgRandom` = [`imbridge_core::EventId::stable_u32`] of the record's id. IM dedups a
//! conversation's imports on exactly that triple, first write wins, so a replay or a re-run is a no-op.

use std::sync::Arc;

use imbridge_core::event::{ImportC2cMessage, ImportC2cRead, ImportConversationDone};
use imbridge_core::state::Phase;
use imbridge_core::{Envelope, Event, EventKind, Failure};
use imbridge_im::to_im_body;
use imbridge_im::types::c2c::{AdminSetMsgReadReq, ImportMsgReq, SYNC_HISTORY};
use imbridge_kafka::{Handler, Outcome, Record};

use super::{ApplyContext, RecordOutcome, envelope_of, headers, outcome_of, unexpected};

/// Applies `import.c2c_message`, `import.c2c_read` and the conversation's done marker.
#[derive(Debug)]
pub struct C2cHandler {
    ctx: Arc<ApplyContext>,
}

/// The `importmsg` request for one history message (also what `verify` expects IM to hold).
pub fn import_msg_request(env: &Envelope, m: &ImportC2cMessage) -> ImportMsgReq {
    ImportMsgReq {
        sync_from_old_system: SYNC_HISTORY,
        from_account: m.from.as_str().to_owned(),
        to_account: m.to.as_str().to_owned(),
        msg_seq: Some(m.msg_seq),
        msg_random: env.id.stable_u32(),
        msg_time_stamp: m.sent_at.as_secs(),
        msg_body: to_im_body(&m.body),
        cloud_custom_data: m.custom_data.clone(),
    }
}

impl C2cHandler {
    pub fn new(ctx: Arc<ApplyContext>) -> Self {
        Self { ctx }
    }

    fn count(&self, kind: EventKind, o: &Outcome) {
        match o {
            Outcome::Done => self.ctx.stats.record(kind, RecordOutcome::Imported),
            Outcome::DeadLetter(_) => self.ctx.stats.record(kind, RecordOutcome::Failed),
            Outcome::Retry(_) | Outcome::Wait(_) => {}
        }
    }

    async fn message(&self, env: &Envelope, m: &ImportC2cMessage) -> Outcome {
        let o = match self.ctx.im.importmsg(&import_msg_request(env, m)).await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome_of(&e),
        };
        self.count(EventKind::ImportC2cMessage, &o);
        o
    }

    async fn read(&self, r: &ImportC2cRead) -> Outcome {
        let req = AdminSetMsgReadReq {
            report_account: r.user_id.as_str().to_owned(),
            peer_account: r.peer_id.as_str().to_owned(),
            msg_read_time: Some(r.read_at.as_secs()),
        };
        let o = match self.ctx.im.admin_set_msg_read(&req).await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome_of(&e),
        };
        self.count(EventKind::ImportC2cRead, &o);
        o
    }
}

/// Records `live` for a conversation whose history is applied (shared with the groups topic).
pub(crate) async fn conversation_done(ctx: &ApplyContext, record: &Record, d: &ImportConversationDone) -> Outcome {
    let run = record.header_str(headers::RUN_ID);
    match ctx.states.set(&d.conversation, Phase::Live, run).await {
        Ok(()) => {
            ctx.stats.record(EventKind::ImportConversationDone, RecordOutcome::Imported);
            Outcome::Done
        }
        Err(e) => Outcome::Retry(Failure::new("kafka_delivery", format!("cannot record {} live: {e}", d.conversation))),
    }
}

impl Handler for C2cHandler {
    async fn handle(&self, record: &Record) -> Outcome {
        let env = match envelope_of(record) {
            Ok(e) => e,
            Err(o) => return o,
        };
        match &env.event {
            Event::ImportC2cMessage(m) => self.message(&env, m).await,
            Event::ImportC2cRead(r) => self.read(r).await,
            Event::ImportConversationDone(d) => conversation_done(&self.ctx, record, d).await,
            other => unexpected(other.kind().as_str(), &record.topic),
        }
    }
}
