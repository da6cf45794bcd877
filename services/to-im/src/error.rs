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
    /// The IM applier's own failures (members refused, a message dropped, a dismissal not announced).
    #[error(transparent)]
    Apply(imbridge_im::apply::ApplyError),
    /// The service cannot run with this configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Start(#[from] imbridge_runtime::StartError),
}

impl From<imbridge_im::apply::ApplyError> for ToImError {
    /// IM's own failures stay [`ToImError::Im`] (one classification wherever they come from); a kind the applier
    /// does not write names this consumer's topic.
    fn from(e: imbridge_im::apply::ApplyError) -> Self {
        use imbridge_im::apply::ApplyError as A;
        match e {
            A::Im(e) => ToImError::Im(e),
            A::UnexpectedKind { kind, source_system } => {
                ToImError::UnexpectedKind { kind, source_system, topic: "the live topic".into() }
            }
            other => ToImError::Apply(other),
        }
    }
}

impl Classify for ToImError {
    fn disposition(&self) -> Disposition {
        match self {
            ToImError::Im(e) => e.disposition(),
            // Infrastructure: the broker comes back; the event is fine.
            ToImError::Kafka(_) => Disposition::Retry,
            ToImError::Apply(e) => e.disposition(),
            ToImError::Decode(_) | ToImError::UnexpectedKind { .. } | ToImError::Config(_) | ToImError::Start(_) => {
                Disposition::DeadLetter
            }
        }
    }

    fn kind(&self) -> String {
        match self {
            ToImError::Im(e) => e.kind(),
            ToImError::Kafka(e) => e.kind(),
            ToImError::Decode(_) => "malformed".into(),
            ToImError::UnexpectedKind { .. } => "unexpected_kind".into(),
            ToImError::Apply(e) => e.kind(),
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
        use imbridge_im::apply::ApplyError;
        let dropped = ToImError::from(ApplyError::MessageDropped { group: "g".into(), reason: "MsgFreqCtrl".into() });
        assert_eq!(dropped.disposition(), Disposition::Retry);
        let members = ToImError::from(ApplyError::MembersNotAdded { group: "g".into(), members: vec!["x".into()] });
        assert_eq!(members.disposition(), Disposition::DeadLetter);
        assert_eq!(members.kind(), "members_not_added");
    }
}
