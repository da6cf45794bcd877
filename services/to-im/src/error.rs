//! [`ToImError`]: every way applying an event to IM can fail, and what the consumer does about it.
//!
//! IM and Kafka failures keep the classification their own crates give them (an IM frequency limit is a retry,
//! a 70107 a dead letter); the variants added here are about the event itself (it does not decode, it does
//! not belong on the topic, IM refused part of it) or about imbridge's own configuration.

use imbridge_core::disposition::{Classify, Disposition};
use imbridge_im::ImError;
use imbridge_kafka::KafkaError;

/// A failed apply (or a service that cannot start).
#[derive(Debug, thiserror::Error)]
pub enum ToImError {
    #[error(transparent)]
    Im(#[from] ImError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The record is not an imbridge envelope (a poison record).
    #[error("record is not an imbridge envelope: {0}")]
    Decode(String),
    /// A kind this consumer does not apply (an import record on the live topic, an IM-origin event).
    #[error("{kind} events from {source_system} do not belong on {topic}")]
    UnexpectedKind { kind: &'static str, source_system: &'static str, topic: String },
    /// IM accepted the call but refused some members (unknown accounts that could not be imported, a full
    /// group): retrying the same call cannot add them.
    #[error("group {group}: members not added: {members:?}")]
    MembersNotAdded { group: String, members: Vec<String> },
    /// IM accepted a group message but did not store it (`MsgDropReason`, e.g. frequency control).
    #[error("group {group}: message dropped by IM: {reason}")]
    MessageDropped { group: String, reason: String },
    /// A dismissal could not be announced to ingest before destroying the group (Kafka away).
    #[error("cannot announce the dismissal: {0}")]
    Announce(String),
    /// The service cannot run with this configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}

impl From<imbridge_im::apply::ApplyError> for ToImError {
    fn from(e: imbridge_im::apply::ApplyError) -> Self {
        use imbridge_im::apply::ApplyError as A;
        match e {
            A::Im(e) => ToImError::Im(e),
            A::UnexpectedKind { kind, source_system } => {
                ToImError::UnexpectedKind { kind, source_system, topic: "the live topic".into() }
            }
            A::MembersNotAdded { group, members } => ToImError::MembersNotAdded { group, members },
            A::MessageDropped { group, reason } => ToImError::MessageDropped { group, reason },
            A::Announce(reason) => ToImError::Announce(reason),
        }
    }
}

impl Classify for ToImError {
    fn disposition(&self) -> Disposition {
        match self {
            ToImError::Im(e) => e.disposition(),
            // Infrastructure: the broker comes back; the event is fine.
            ToImError::Kafka(_) => Disposition::Retry,
            ToImError::MessageDropped { .. } | ToImError::Announce(_) => Disposition::Retry,
            ToImError::Decode(_)
            | ToImError::UnexpectedKind { .. }
            | ToImError::MembersNotAdded { .. }
            | ToImError::Config(_)
            | ToImError::Start(_) => Disposition::DeadLetter,
        }
    }

    fn kind(&self) -> String {
        match self {
            ToImError::Im(e) => e.kind(),
            ToImError::Kafka(e) => e.kind(),
            ToImError::Decode(_) => "malformed".into(),
            ToImError::UnexpectedKind { .. } => "unexpected_kind".into(),
            ToImError::MembersNotAdded { .. } => "members_not_added".into(),
            ToImError::MessageDropped { .. } => "im_message_dropped".into(),
            ToImError::Announce(_) => "announce".into(),
            ToImError::Config(_) => "config".into(),
            ToImError::Start(_) => "start".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbridge_im::Api;

    #[test]
    fn classification_follows_the_source() {
        let im = |code| ToImError::Im(ImError::Api { api: Api::SendMsg, code, info: String::new() });
        assert_eq!(im(60007).disposition(), Disposition::Retry);
        assert_eq!(im(60007).kind(), "im_60007");
        assert_eq!(im(20003).disposition(), Disposition::DeadLetter);
        let dropped = ToImError::MessageDropped { group: "g".into(), reason: "MsgFreqCtrl".into() };
        assert_eq!(dropped.disposition(), Disposition::Retry);
        let members = ToImError::MembersNotAdded { group: "g".into(), members: vec!["x".into()] };
        assert_eq!(members.disposition(), Disposition::DeadLetter);
        assert_eq!(members.kind(), "members_not_added");
    }
}
